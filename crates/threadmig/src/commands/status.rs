//! `threadmig status`: the migration state of every organisation of the matrix
//! (`fleet::status`), from hash-checked run folders and the run ledger, written to
//! `migration-status.{json,md}`, with the table on stdout.
//!
//! Exit codes: 0 the report was written (1 with --require-all-verified when an org is not
//! migrated_verified), 2 the matrix is missing or unreadable, or the ledger cannot be read.

use anyhow::Context;
use fleet::status::{self, LedgerInfo, MatrixInput, MigrationState, StatusReport};
use serde_json::json;

use crate::cli::StatusArgs;
use crate::commands::ledger::{open_ledger, Open};
use crate::output::{now_rfc3339, print_json, write_atomic};
use crate::Outcome;

pub fn run(args: StatusArgs, json: bool) -> anyhow::Result<Outcome> {
    if let Some(run_id) = &args.run_id {
        migration::evidence::validate_run_id(run_id)
            .map_err(|error| anyhow::anyhow!("--run-id: {error}"))?;
    }
    let reports = args.artifacts.join("reports");
    let matrix_path = args
        .matrix
        .clone()
        .unwrap_or_else(|| reports.join("schema-plan-org-matrix.json"));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| reports.join(status::REPORT_JSON));
    let out_md = args
        .out_md
        .clone()
        .unwrap_or_else(|| reports.join(status::REPORT_MD));

    let matrix = MatrixInput::load(&matrix_path)?;
    let folders = status::collect_run_folders(&args.artifacts)?;
    let ledger = open_ledger(
        args.source.workspace.as_deref(),
        &args.source.ledger,
        &args.source.http,
        Open::IfPresent,
    )?;
    let (evidence, ledger_info) = match &ledger {
        Some(ledger) => {
            let snapshot = ledger.snapshot().context("reading the run ledger")?;
            let from_ledger = ledger
                .evidence(&snapshot)
                .context("reading the run ledger")?;
            (
                status::merge_evidence(folders, from_ledger),
                Some(LedgerInfo {
                    app_id: snapshot.app_id.clone(),
                    runs: snapshot.runs.len(),
                }),
            )
        }
        None => (folders, None),
    };
    let report = StatusReport::build(
        &matrix,
        &evidence,
        &args.artifacts,
        ledger_info,
        args.run_id.clone(),
        now_rfc3339(),
    );
    let mut body =
        serde_json::to_vec_pretty(&report.to_json()).context("serialising the status report")?;
    body.push(b'\n');
    write_atomic(&out, &body)?;
    write_atomic(&out_md, report.to_markdown().as_bytes())?;

    let all_verified = report
        .rows
        .iter()
        .all(|row| row.state == MigrationState::MigratedVerified);
    if json {
        print_json(&json!({
            "ok": true,
            "summary": report.summary_json(),
            "rows": report.rows.iter().map(|row| json!({
                "orgId": row.plan.org_id,
                "appId": row.plan.app_id,
                "status": row.state.as_str(),
                "issueCode": row.plan.issue_code,
                "applyRunId": row.apply.as_ref().map(|s| &s.run_id),
                "verifyRunId": row.verify.as_ref().map(|s| &s.run_id),
            })).collect::<Vec<_>>(),
            "rejectedEvidence": report.rejected.len(),
            "ledgerAppId": report.ledger.as_ref().map(|l| &l.app_id),
            "out": out,
            "outMd": out_md,
        }))?;
    } else {
        print_table(&report);
        println!("wrote {} and {}", out.display(), out_md.display());
    }
    Ok(if args.require_all_verified && !all_verified {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

fn print_table(report: &StatusReport) {
    let header = ["ORG", "APP", "STATUS", "ISSUE", "APPLY RUN", "VERIFY RUN"];
    let rows: Vec<[String; 6]> = report
        .rows
        .iter()
        .map(|row| {
            [
                row.plan.org_id.clone(),
                row.plan.app_id.clone().unwrap_or_else(|| "-".into()),
                row.state.as_str().to_string(),
                row.plan.issue_code.clone().unwrap_or_else(|| "-".into()),
                row.apply.as_ref().map_or("-".into(), |s| s.run_id.clone()),
                row.verify.as_ref().map_or("-".into(), |s| s.run_id.clone()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header.to_vec()));
    for row in &rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
    let counts: Vec<String> = MigrationState::ALL
        .iter()
        .map(|state| format!("{} {}", state.as_str(), report.count(*state)))
        .collect();
    println!("{} org(s): {}", report.rows.len(), counts.join(", "));
    if !report.rejected.is_empty() {
        println!(
            "{} run(s) not counted as evidence (see the report's rejectedEvidence)",
            report.rejected.len()
        );
    }
}
