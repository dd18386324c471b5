//! A loopback stand-in for Clerk's Backend API, shaped from its published behaviour:
//! `GET /v1/organizations` with `limit` (1..=500), `offset` and `order_by` (default
//! `-created_at`) answering `{data, total_count}`; `GET /v1/organizations/{id or slug}`;
//! `401 authentication_invalid` for a wrong key; `404 resource_not_found`; Clerk's error body
//! `{"errors":[{message, long_message, code}], "clerk_trace_id"}`. Scripted answers (429 with
//! `Retry-After`, 5xx, garbage) can be queued ahead of the normal ones.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

/// One request as the double saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path as sent, still percent-encoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A canned answer served before normal routing.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Scripted {
    pub fn too_many_requests(retry_after_seconds: u64) -> Scripted {
        Scripted {
            status: 429,
            headers: vec![("retry-after".into(), retry_after_seconds.to_string())],
            body: clerk_error(
                "Too many requests",
                "Too many requests, please retry later",
                "too_many_requests",
            )
            .to_string(),
        }
    }

    pub fn status(status: u16, body: Value) -> Scripted {
        Scripted {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    pub fn raw(status: u16, body: &str) -> Scripted {
        Scripted {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }
}

#[derive(Default)]
struct State {
    /// Organisation objects in creation order (oldest first).
    orgs: Vec<Value>,
    scripted: VecDeque<Scripted>,
    seen: Vec<SeenRequest>,
    /// Answer listings as a bare array instead of `{data, total_count}`.
    bare_array_pages: bool,
}

pub struct ClerkDouble {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

pub fn clerk_error(message: &str, long_message: &str, code: &str) -> Value {
    json!({
        "errors": [{"message": message, "long_message": long_message, "code": code}],
        "clerk_trace_id": "trace-0123456789"
    })
}

/// A Clerk organisation object with the given private metadata.
pub fn organization(id: &str, name: &str, slug: &str, private_metadata: Value) -> Value {
    json!({
        "object": "organization",
        "id": id,
        "name": name,
        "slug": slug,
        "image_url": "https://img.example/org.png",
        "has_image": false,
        "max_allowed_memberships": 5,
        "admin_delete_enabled": true,
        "public_metadata": {},
        "private_metadata": private_metadata,
        "created_at": 1_700_000_000_000u64,
        "updated_at": 1_700_000_000_000u64
    })
}

impl ClerkDouble {
    pub fn start(secret: &str, orgs: Vec<Value>) -> ClerkDouble {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State {
            orgs,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let accept_thread = {
            let state = state.clone();
            let stop = stop.clone();
            let secret = secret.to_string();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    let secret = secret.clone();
                    std::thread::spawn(move || serve_connection(stream, &secret, &state));
                }
            })
        };
        ClerkDouble {
            addr,
            state,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn push_scripted(&self, answer: Scripted) {
        self.lock().scripted.push_back(answer);
    }

    pub fn set_bare_array_pages(&self, bare: bool) {
        self.lock().bare_array_pages = bare;
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ClerkDouble {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_connection(stream: TcpStream, secret: &str, state: &Mutex<State>) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(clone) => clone,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect();
    let request = SeenRequest {
        method,
        path: path.to_string(),
        query,
        headers,
    };
    let answer = {
        let mut state = state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.seen.push(request.clone());
        match state.scripted.pop_front() {
            Some(scripted) => scripted,
            None => route(&request, secret, &state),
        }
    };
    let mut stream = stream;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        answer.status,
        reason_phrase(answer.status),
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(answer.body.as_bytes());
    let _ = stream.flush();
}

fn route(request: &SeenRequest, secret: &str, state: &State) -> Scripted {
    let expected = format!("Bearer {secret}");
    if request.header("authorization") != Some(expected.as_str()) {
        return Scripted::status(
            401,
            clerk_error(
                "Invalid authentication",
                "Unable to authenticate the request, you need to supply an active API key",
                "authentication_invalid",
            ),
        );
    }
    if request.method != "GET" {
        return Scripted::status(
            405,
            clerk_error(
                "Method not allowed",
                "Method not allowed",
                "method_not_allowed",
            ),
        );
    }
    if request.path == "/v1/organizations" {
        return list(request, state);
    }
    match request.path.strip_prefix("/v1/organizations/") {
        Some(encoded) if !encoded.is_empty() && !encoded.contains('/') => {
            let id = percent_decode(encoded);
            let found = state
                .orgs
                .iter()
                .find(|org| org["id"] == id.as_str() || org["slug"] == id.as_str());
            match found {
                Some(org) => Scripted::status(200, org.clone()),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn list(request: &SeenRequest, state: &State) -> Scripted {
    let number = |name: &str, default: usize| -> Result<usize, Scripted> {
        match request.param(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| invalid_param(name)),
        }
    };
    let limit = match number("limit", 10) {
        Ok(limit) if (1..=500).contains(&limit) => limit,
        Ok(_) => return invalid_param("limit"),
        Err(answer) => return answer,
    };
    let offset = match number("offset", 0) {
        Ok(offset) => offset,
        Err(answer) => return answer,
    };
    let mut ordered: Vec<&Value> = state.orgs.iter().collect();
    match request.param("order_by").unwrap_or("-created_at") {
        "+created_at" | "created_at" => {}
        "-created_at" => ordered.reverse(),
        _ => return invalid_param("order_by"),
    }
    let page: Vec<Value> = ordered
        .into_iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect();
    if state.bare_array_pages {
        Scripted::status(200, Value::Array(page))
    } else {
        Scripted::status(200, json!({"data": page, "total_count": state.orgs.len()}))
    }
}

fn invalid_param(name: &str) -> Scripted {
    Scripted::status(
        422,
        clerk_error(
            "is invalid",
            &format!("{name} is invalid"),
            "form_param_value_invalid",
        ),
    )
}

fn not_found() -> Scripted {
    Scripted::status(
        404,
        clerk_error("not found", "Resource not found", "resource_not_found"),
    )
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        index += 1;
                    }
                }
            }
            b'+' => {
                // Query strings may carry a space as `+`; a literal plus arrives as `%2B`.
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
