//! `threadmig serve`: starts, prints its URL, answers, stops on SIGTERM; refuses bad setups.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{temp_dir, threadmig};

/// A running `threadmig serve`; killed if the test fails before stopping it.
struct Serving {
    child: Child,
    url: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Serving {
    let mut child = Command::new(env!("CARGO_BIN_EXE_threadmig"))
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting threadmig serve");
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .expect("reading the URL line");
    Serving {
        child,
        url: first_line.trim().to_string(),
    }
}

/// One HTTP/1.1 request; the status and the JSON body.
fn call(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let authority = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\ncontent-type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn serves_the_api_on_a_free_loopback_port_and_stops_on_sigterm() {
    let workspace = temp_dir("serve").join("ws");
    let mut serving = start(&["--workspace", workspace.to_str().unwrap(), "--port", "0"]);
    assert!(
        serving.url.starts_with("http://127.0.0.1:"),
        "{}",
        serving.url
    );
    assert!(workspace.join("instant.sqlite3").exists());

    let (status, created) = call(
        &serving.url,
        "POST",
        "/dash/apps/ephemeral",
        &[],
        r#"{"title":"cli"}"#,
    );
    assert_eq!(status, 200, "{created}");
    let app = created["app"]["id"].as_str().unwrap().to_string();
    let token = created["app"]["admin-token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let (status, result) = call(
        &serving.url,
        "POST",
        "/admin/query",
        &[("app-id", &app), ("authorization", &bearer)],
        r#"{"query":{"posts":{}}}"#,
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result, serde_json::json!({"posts": []}));
    let (status, missing) = call(&serving.url, "GET", "/nope", &[], "");
    assert_eq!(status, 404, "{missing}");

    #[cfg(unix)]
    {
        let pid = serving.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = serving.child.wait().unwrap();
        assert_eq!(status.code(), Some(0));
        let mut stderr = String::new();
        serving
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(stderr.contains("POST /admin/query 200"), "{stderr}");
        assert!(!stderr.contains(&token), "{stderr}");
    }
}

#[test]
fn refuses_a_remote_host_without_allow_remote_and_a_corrupt_workspace() {
    let dir = temp_dir("serve-refusals");
    let remote = threadmig(
        &[
            "serve",
            "--workspace",
            dir.to_str().unwrap(),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        None,
    );
    assert_eq!(remote.code, 2);
    assert!(
        remote.stderr.contains("--allow-remote"),
        "{}",
        remote.stderr
    );

    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    let database = corrupt.join("instant.sqlite3");
    std::fs::write(&database, b"this is not a database, just some bytes padding it out past a header.........................").unwrap();
    let run = threadmig(
        &[
            "serve",
            "--workspace",
            corrupt.to_str().unwrap(),
            "--port",
            "0",
        ],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&*database.to_string_lossy()),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);

    let bad_rate = threadmig(
        &[
            "serve",
            "--workspace",
            dir.to_str().unwrap(),
            "--fault-429-rate",
            "2",
        ],
        None,
    );
    assert_eq!(bad_rate.code, 2);
    assert!(
        bad_rate.stderr.contains("between 0 and 1"),
        "{}",
        bad_rate.stderr
    );
}
