//! `threadmig serve --workspace DIR`: the embedded engine over HTTP, for rehearsals, the
//! official SDKs' conformance tests and reliability tests (fault injection).
//!
//! The first line on stdout is the base URL (`http://127.0.0.1:PORT`; with `--json`, a JSON
//! object with `url`), so a caller that asked for `--port 0` learns the port. Requests are logged
//! on stderr without headers, query strings or bodies: never a token.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use instant_local::engine::LocalEngine;
use instant_local::server::faults::FaultConfig;
use instant_local::server::{shutdown_signal, RequestLog, Server, ServerConfig};
use serde_json::json;

use crate::cli::ServeArgs;
use crate::output;
use crate::Outcome;

pub fn run(args: ServeArgs, json: bool) -> anyhow::Result<Outcome> {
    let host = listen_address(&args.host, args.allow_remote)?;
    // A corrupt or foreign database file is reported with its path (exit 2). The error's own
    // text already ends with its cause, so the cause chain is not printed a second time.
    let engine = LocalEngine::open(&args.workspace).map_err(|error| anyhow::anyhow!("{error}"))?;
    let config = ServerConfig {
        host,
        port: args.port,
        body_limit: args.max_body_bytes,
        faults: fault_config(&args),
        log: if args.quiet {
            RequestLog::Off
        } else {
            RequestLog::Stderr
        },
        ..ServerConfig::default()
    };
    let faults_on = config.faults.is_active();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(Arc::new(engine), config)
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let url = server.url();
        if json {
            output::print_json(&json!({
                "url": url,
                "workspace": args.workspace.display().to_string(),
            }))?;
        } else {
            println!("{url}");
        }
        use std::io::Write as _;
        std::io::stdout().flush().context("writing to stdout")?;
        eprintln!(
            "threadmig serve: workspace {}, listening on {url}{}; Ctrl-C to stop",
            args.workspace.display(),
            if faults_on {
                ", fault injection ON"
            } else {
                ""
            }
        );
        server
            .serve(shutdown_signal())
            .await
            .context("serving HTTP")?;
        eprintln!("threadmig serve: stopped");
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}

/// Loopback by default; anything else only with `--allow-remote`.
fn listen_address(host: &str, allow_remote: bool) -> anyhow::Result<IpAddr> {
    let address = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse::<IpAddr>()
            .with_context(|| format!("--host {host:?} is not an IP address or `localhost`"))?
    };
    if !address.is_loopback() && !allow_remote {
        bail!(
            "--host {host} is not a loopback address; the server has no access control beyond \
             admin tokens, so pass --allow-remote to listen on it anyway"
        );
    }
    Ok(address)
}

fn fault_config(args: &ServeArgs) -> FaultConfig {
    FaultConfig {
        seed: args.fault_seed,
        latency: Duration::from_millis(args.fault_latency_ms),
        rate_429: args.fault_429_rate,
        retry_after_secs: args.fault_retry_after_secs,
        rate_5xx: args.fault_5xx_rate,
        drop_rate: args.fault_drop_rate,
        drop_after_rate: args.fault_drop_after_rate,
        slow_body_rate: args.fault_slow_body_rate,
        slow_body_delay: Duration::from_millis(args.fault_slow_body_delay_ms),
        path_prefixes: args.fault_paths.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_allow_remote() {
        assert!(listen_address("127.0.0.1", false).unwrap().is_loopback());
        assert!(listen_address("localhost", false).unwrap().is_loopback());
        assert!(listen_address("::1", false).unwrap().is_loopback());
        let refused = listen_address("0.0.0.0", false).unwrap_err().to_string();
        assert!(refused.contains("--allow-remote"), "{refused}");
        assert!(listen_address("0.0.0.0", true).is_ok());
        assert!(listen_address("example.com", true).is_err());
    }
}
