//! The `InstantApi` over HTTP, as the real service serves it: same paths, headers, bodies,
//! error envelopes and statuses (`server/routes.rs` says how each route reads its request).
//! This is what `threadmig serve` runs and what the official SDKs are tested against.
//!
//! - Generic over `Arc<dyn InstantApi>`: the embedded engine in production, any double in tests.
//! - Engine calls are blocking and run on tokio's blocking pool.
//! - The connection loop is hyper's, so a fault can close a connection without answering and
//!   shutdown can drain open connections (`Server::serve`).
//! - Every request is logged as one line (method, path, status, time, fault): never a header,
//!   a query string or a body, so never a token.
//! - Fault injection ([`faults`]) is off unless configured.

// The port's error keeps the whole server envelope by design (see `instant-api`).
#![allow(clippy::result_large_err)]

pub mod faults;
mod routes;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use instant_api::{ApiError, InstantApi};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use self::faults::{AfterFault, BeforeFault, FaultConfig, FaultInjector};
use self::routes::{error_response, plain_response, unknown_error, BodyRules, RouteState};

/// The default request body limit: 64 MiB (a 500-step batch is far below it).
pub const DEFAULT_BODY_LIMIT: usize = 64 << 20;

/// The default time a request body may take to arrive.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long shutdown waits for in-flight requests before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where request log lines go.
#[derive(Clone, Default)]
pub enum RequestLog {
    Off,
    #[default]
    Stderr,
    /// Kept in memory (tests read them).
    Memory(Arc<Mutex<Vec<String>>>),
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RequestLog::Off => "Off",
            RequestLog::Stderr => "Stderr",
            RequestLog::Memory(_) => "Memory",
        })
    }
}

impl RequestLog {
    fn write(&self, line: String) {
        match self {
            RequestLog::Off => {}
            RequestLog::Stderr => eprintln!("{line}"),
            RequestLog::Memory(lines) => lines
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(line),
        }
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Loopback unless the caller decides otherwise (the CLI asks for an explicit flag).
    pub host: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    pub body_limit: usize,
    /// How long a request body may take to arrive once its head has.
    pub body_timeout: Duration,
    pub faults: FaultConfig,
    pub log: RequestLog,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            faults: FaultConfig::default(),
            log: RequestLog::Stderr,
        }
    }
}

/// What the front middleware shares.
struct Front {
    faults: FaultInjector,
    log: RequestLog,
    body: BodyRules,
}

/// Put on every request by the connection loop: closes that connection, unanswered.
#[derive(Clone)]
struct ConnectionControl {
    close: Arc<Notify>,
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    app: Router,
    addr: SocketAddr,
}

impl Server {
    /// Binds `config.host:config.port`. Needs a tokio runtime.
    pub async fn bind(api: Arc<dyn InstantApi>, config: ServerConfig) -> io::Result<Server> {
        config
            .faults
            .validate()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let listener = TcpListener::bind(SocketAddr::new(config.host, config.port)).await?;
        let addr = listener.local_addr()?;
        let body = BodyRules {
            limit: config.body_limit,
            timeout: config.body_timeout,
        };
        let routes = routes::router(Arc::new(RouteState { api, body }));
        let front = Arc::new(Front {
            faults: FaultInjector::new(config.faults),
            log: config.log,
            body,
        });
        let app = routes.layer(axum::middleware::from_fn_with_state(front, front_layer));
        Ok(Server {
            listener,
            app,
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`, without a trailing slash (the SDKs append `/admin/…`).
    pub fn url(&self) -> String {
        base_url(self.addr)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (up to a grace period) and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, _peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let control = ConnectionControl {
                close: Arc::new(Notify::new()),
            };
            let close = control.close.clone();
            let router = TowerToHyperService::new(self.app.clone());
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(control.clone());
                    hyper::service::Service::call(&router, request)
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                tokio::select! {
                    _ = connection => {}
                    // Dropping the connection closes the socket without a response.
                    () = close.notified() => {}
                }
            });
        }
        drop(self.listener);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
        Ok(())
    }
}

fn base_url(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(ip) => format!("http://[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("http://{ip}:{}", addr.port()),
    }
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await;
}

/// A server running on its own thread and runtime, for callers without an async runtime
/// (tests, the Rust integration suite). Dropping it shuts it down.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl ServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        base_url(self.addr)
    }

    /// Stops accepting, drains in-flight requests and waits for the server thread.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Binds and serves on a background thread; returns once the port is bound.
pub fn spawn(api: Arc<dyn InstantApi>, config: ServerConfig) -> io::Result<ServerHandle> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("instant-local-http")
        .build()?;
    let server = runtime.block_on(Server::bind(api, config))?;
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("instant-local-server".into())
        .spawn(move || {
            runtime.block_on(server.serve(async {
                let _ = stopped.await;
            }))
        })?;
    Ok(ServerHandle {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

// ---------------------------------------------------------------------------------------------
// The front: faults and the request log

async fn front_layer(State(front): State<Arc<Front>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The path only: no query string, no header, no body, so nothing secret reaches the log.
    let path = request.uri().path().to_string();
    let log = |status: &str, fault: &str| {
        front.log.write(format!(
            "{method} {path} {status} {}ms fault={fault}",
            started.elapsed().as_millis()
        ));
    };
    let Some(decision) = front.faults.next(&path) else {
        let response = next.run(request).await;
        log(response.status().as_str(), "-");
        return response;
    };
    let control = request.extensions().get::<ConnectionControl>().cloned();
    let fault = decision.label();
    let latency = front.faults.config().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    // Before the engine call: a faulted request has no side effect.
    match decision.before {
        BeforeFault::Drop => {
            // Read the request first, so closing sends a clean end of stream, not a reset.
            let mut body = request.into_body();
            let _ = tokio::time::timeout(
                front.body.timeout,
                routes::drain(&mut body, front.body.limit),
            )
            .await;
            log("dropped", fault);
            return close_unanswered(control).await;
        }
        BeforeFault::RateLimited => {
            let response = rate_limited(front.faults.config().retry_after_secs);
            log(response.status().as_str(), fault);
            return response;
        }
        BeforeFault::InternalError => {
            let response = error_response(&unknown_error());
            log(response.status().as_str(), fault);
            return response;
        }
        BeforeFault::Unavailable => {
            // What a proxy in front of the service answers: plain text, not the envelope.
            let response = plain_response(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
            log(response.status().as_str(), fault);
            return response;
        }
        BeforeFault::None => {}
    }

    let response = next.run(request).await;

    // After the engine call: its effect is kept.
    match decision.after {
        AfterFault::Drop => {
            log(
                &format!("dropped-after-{}", response.status().as_str()),
                fault,
            );
            drop(response);
            close_unanswered(control).await
        }
        AfterFault::SlowBody => {
            let response = slow_body(response, front.faults.config().slow_body_delay).await;
            log(response.status().as_str(), fault);
            response
        }
        AfterFault::None => {
            log(response.status().as_str(), fault);
            response
        }
    }
}

/// Closes this request's connection without a response. The returned future never completes:
/// closing the connection drops it.
async fn close_unanswered(control: Option<ConnectionControl>) -> Response {
    match control {
        Some(control) => {
            control.close.notify_one();
            std::future::pending().await
        }
        // Only requests from `Server::serve`'s loop reach here, and they all carry the control.
        None => error_response(&unknown_error()),
    }
}

/// The server's generic rate-limit error (`util/exception.clj` `throw-rate-limited!`), with a
/// `Retry-After` header as a proxy or gateway adds.
fn rate_limited(retry_after_secs: u64) -> Response {
    let error = ApiError::new(
        429,
        "rate-limited",
        "You're making too many requests. Please email support@instantdb.com or ask for help in the Discord.",
        Value::Null,
    );
    let mut response = error_response(&error);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// The same response, its body sent in at most eight chunks (at least 16 bytes each) with
/// `delay` between them.
async fn slow_body(response: Response, delay: Duration) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return error_response(&unknown_error()),
    };
    let chunk = bytes.len().div_ceil(8).max(16);
    Response::from_parts(
        parts,
        Body::new(SlowBody {
            remaining: bytes,
            chunk,
            delay,
            pause: None,
        }),
    )
}

struct SlowBody {
    remaining: Bytes,
    chunk: usize,
    delay: Duration,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HttpBody for SlowBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        if self.remaining.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.chunk.min(self.remaining.len());
        let chunk = self.remaining.split_to(take);
        if !self.remaining.is_empty() {
            self.pause = Some(Box::pin(tokio::time::sleep(self.delay)));
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining.len() as u64)
    }
}
