//! `threadmig verify`: the data-model §3.4 invariants checked on the target app against the
//! run's evidence; writes `04-verify/verify.result.json` and records stage `verify`. Exit 1 when
//! any invariant failed or could not be checked.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{bail, Context};
use migration::evidence::RunDir;
use migration::verify::{verify, Status, VerifyConfig, RESULT_FILE};
use serde_json::{json, Value};

use crate::cli::VerifyArgs;
use crate::connect::connect;
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

pub fn run(args: VerifyArgs, json: bool) -> anyhow::Result<Outcome> {
    let run = RunDir::new(&args.artifacts, &args.run_id).context("--run-id")?;
    if !run.path().is_dir() {
        bail!(
            "run {} not found: {} is not a directory",
            run.run_id(),
            run.path().display()
        );
    }
    let connection = connect(&args.connect, false)?;
    let app = connection.resolve_app(&args.connect)?;
    // The run's rows came from one app: checking another would compare unrelated data.
    if let Some(manifest) = run.read_manifest()? {
        let extracted_from = manifest
            .stages
            .get("extract")
            .and_then(|stage| stage.get("appId"))
            .and_then(Value::as_str);
        if let Some(extracted_from) = extracted_from {
            if extracted_from != app.auth.app_id {
                bail!(
                    "run {} was extracted from app {extracted_from}, not {}",
                    run.run_id(),
                    app.auth.app_id
                );
            }
        }
    }
    let mut config = VerifyConfig::for_run(run.path(), run.run_id());
    config.sample_size = usize::try_from(args.sample).context("--sample")?;
    config.page_size = usize::try_from(args.page_size).context("--page-size")?;

    let show = std::io::stderr().is_terminal();
    let started = Instant::now();
    let result = verify(
        connection.api.as_ref(),
        &app.auth,
        &config,
        &mut |progress| {
            if show {
                eprint!(
                    "\rverify {:<18} {:>9} rows read",
                    progress.namespace, progress.rows
                );
            }
        },
    );
    if show {
        eprintln!();
    }
    let result = result.with_context(|| format!("verify of run {}", run.run_id()))?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let not_passing: Vec<&str> = result
        .invariants
        .iter()
        .filter(|invariant| invariant.status != Status::Pass)
        .map(|invariant| invariant.id.as_str())
        .collect();
    let result_path = config.out_dir.join(RESULT_FILE);
    run.record_stage(
        "verify",
        json!({
            "status": if result.ok { "verified" } else { "failed" },
            "ok": result.ok,
            "orgId": app.org_id,
            "appId": app.auth.app_id,
            "invariants": result.invariants.len(),
            "pass": result.count(Status::Pass),
            "fail": result.count(Status::Fail),
            "error": result.count(Status::Error),
            "notPassing": not_passing,
            "sample": config.sample_size,
            "elapsedMs": elapsed_ms,
        }),
        &[],
        &now_rfc3339(),
    )?;

    if json {
        print_json(&json!({
            "ok": result.ok,
            "invariants": result.invariants,
            "runId": run.run_id(),
            "orgId": app.org_id,
            "appId": app.auth.app_id,
            "result": result_path,
            "elapsedMs": elapsed_ms,
        }))?;
    } else {
        for invariant in &result.invariants {
            if invariant.status == Status::Pass {
                continue;
            }
            let status = match invariant.status {
                Status::Fail => "FAIL ",
                _ => "ERROR",
            };
            println!(
                "{status} {}: expected {}, actual {}{}",
                invariant.id,
                invariant.expected,
                invariant.actual,
                invariant
                    .detail
                    .as_deref()
                    .map(|detail| format!(" ({detail})"))
                    .unwrap_or_default()
            );
        }
        println!(
            "{}: {} invariants, {} pass, {} fail, {} error ({:.1} s)",
            if result.ok {
                "verified"
            } else {
                "NOT verified"
            },
            result.invariants.len(),
            result.count(Status::Pass),
            result.count(Status::Fail),
            result.count(Status::Error),
            elapsed_ms as f64 / 1000.0
        );
        println!("written:  {}", result_path.display());
    }
    Ok(if result.ok {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}
