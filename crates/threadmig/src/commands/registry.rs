//! `threadmig registry update`: the scenario registry (`fleet::registry`) rebuilt from the
//! fleet reports, the run folders and the run ledger, written to
//! `artifacts/reports/scenario-registry.json` and `references/scenario-registry.md`.
//!
//! Exit codes: 0 the registry was written (finding failures is its job, not a failure), 2 a
//! report file named by --reports-glob cannot be used, the ledger cannot be read, or the
//! registry cannot be written.

use anyhow::{bail, Context};
use fleet::registry::{self, Findings, Registry};
use fleet::status;
use serde_json::json;

use crate::cli::RegistryUpdateArgs;
use crate::commands::ledger::{open_ledger, Open};
use crate::output::{now_rfc3339, print_json, write_atomic};
use crate::Outcome;

pub fn run(args: RegistryUpdateArgs, json: bool) -> anyhow::Result<Outcome> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.artifacts.join("reports").join(registry::REPORT_JSON));
    let mut findings = Findings::default();
    findings.scan_reports(&args.artifacts);
    for pattern in &args.reports_glob {
        let files = registry::expand_glob(pattern);
        if files.is_empty() && !pattern.to_string_lossy().contains('*') {
            bail!("--reports-glob {}: no such file", pattern.display());
        }
        for file in files {
            findings.scan_file(&file);
        }
    }
    // A report the update was pointed at and could not read is an error, not a silent skip.
    if let Some(problem) = findings.files.iter().find_map(|file| file.problem.clone()) {
        bail!("{problem}");
    }
    let folders = status::collect_run_folders(&args.artifacts)?;
    let ledger = open_ledger(
        args.source.workspace.as_deref(),
        &args.source.ledger,
        &args.source.http,
        Open::IfPresent,
    )?;
    let mut runs = folders.runs.len();
    let mut ledger_app_id = None;
    findings.scan_runs(&folders);
    if let Some(ledger) = &ledger {
        let snapshot = ledger.snapshot().context("reading the run ledger")?;
        findings.scan_ledger(&snapshot);
        let from_ledger = ledger
            .evidence(&snapshot)
            .context("reading the run ledger")?;
        findings.scan_runs(&from_ledger);
        runs = status::merge_evidence(folders, from_ledger).runs.len();
        ledger_app_id = Some(snapshot.app_id);
    }
    let registry = Registry::build(&findings, runs, ledger_app_id, now_rfc3339());
    let mut body =
        serde_json::to_vec_pretty(&registry.to_json()).context("serialising the registry")?;
    body.push(b'\n');
    write_atomic(&out, &body)?;
    write_atomic(&args.out_md, registry.to_markdown().as_bytes())?;
    if json {
        print_json(&json!({
            "ok": true,
            "filesScanned": registry.files.len(),
            "runsScanned": registry.runs_scanned,
            "scenarios": registry.scenarios.iter().map(|s| json!({
                "scenario": s.scenario,
                "count": s.count,
                "runIds": s.run_ids,
            })).collect::<Vec<_>>(),
            "outFile": out,
            "outMd": args.out_md,
        }))?;
    } else {
        let width = registry
            .scenarios
            .iter()
            .map(|scenario| scenario.scenario.len())
            .max()
            .unwrap_or(0);
        for scenario in &registry.scenarios {
            println!(
                "{:<width$}  {:>5}  {}",
                scenario.scenario, scenario.count, scenario.recommended_action
            );
        }
        println!(
            "{} scenario(s) from {} report file(s) and {} run(s); wrote {} and {}",
            registry.scenarios.len(),
            registry.files.len(),
            registry.runs_scanned,
            out.display(),
            args.out_md.display()
        );
    }
    Ok(Outcome::Ok)
}
