//! A loopback HTTP/1.1 server that answers from a script, one thread per connection, and
//! records what it received. Every answer closes its connection, so each attempt is visible.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Action {
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Close the connection without answering.
    Drop,
    /// Wait, then act.
    Delay(Duration, Box<Action>),
}

pub fn reply(status: u16, body: &str) -> Action {
    Action::Reply {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: body.to_string(),
    }
}

pub fn reply_with(status: u16, header: (&'static str, &str), body: &str) -> Action {
    Action::Reply {
        status,
        headers: vec![
            ("content-type", "application/json".into()),
            (header.0, header.1.to_string()),
        ],
        body: body.to_string(),
    }
}

/// What the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

pub struct Scripted {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub peak_in_flight: Arc<AtomicUsize>,
}

impl Scripted {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Serves `script` in order; once it is used up, every request gets `fallback`.
pub fn serve(script: Vec<Action>, fallback: Action) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let received = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak_in_flight = Arc::new(AtomicUsize::new(0));
    {
        let received = received.clone();
        let peak = peak_in_flight.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (script, received, fallback) =
                    (script.clone(), received.clone(), fallback.clone());
                let (in_flight, peak) = (in_flight.clone(), peak.clone());
                std::thread::spawn(move || {
                    let Some(request) = read_request(&stream) else {
                        return;
                    };
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    received.lock().unwrap().push(request);
                    let action = script.lock().unwrap().pop_front().unwrap_or(fallback);
                    // The request stops counting as in flight just before its answer goes out:
                    // the client may send its next request as soon as it has the answer.
                    act(stream, action, &|| {
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    });
                });
            }
        });
    }
    Scripted {
        addr,
        received,
        peak_in_flight,
    }
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    let at = Instant::now();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        target,
        headers,
        body,
        at,
    })
}

fn act(mut stream: TcpStream, action: Action, answering: &dyn Fn()) {
    match action {
        Action::Drop => {
            answering();
            drop(stream)
        }
        Action::Delay(delay, then) => {
            std::thread::sleep(delay);
            act(stream, *then, answering);
        }
        Action::Reply {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            answering();
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    }
}
