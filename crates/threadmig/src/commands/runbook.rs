//! `threadmig runbook`: per-org cases with ordered actions (`fleet::runbook`) from the matrix
//! and its diagnostics, written to `migration-case-runbook.{json,md}`, with one folder per
//! case for the outputs of its commands. Reads no directory and no server.
//!
//! Exit codes: 0 no blocking case, 1 some case blocks, 2 the runbook could not be built
//! (unreadable reports, diagnostics of another matrix, a schema other than the matrix's).

use anyhow::{bail, Context};
use fleet::diagnose::DiagnosticsReport;
use fleet::matrix::{MatrixReport, TargetSchema};
use fleet::runbook::{self, RunbookConfig};
use serde_json::json;

use super::matrix::{read_report, reports_dir};
use crate::cli::RunbookArgs;
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

pub fn run(args: RunbookArgs, json: bool) -> anyhow::Result<Outcome> {
    let reports = reports_dir(&args.artifacts);
    let matrix_path = args
        .matrix
        .clone()
        .unwrap_or_else(|| reports.join(fleet::matrix::REPORT_JSON));
    let diagnostics_path = args
        .diagnostics
        .clone()
        .unwrap_or_else(|| reports.join(fleet::diagnose::REPORT_JSON));
    let matrix = read_report(&matrix_path, "matrix report", MatrixReport::from_json)?;
    let diagnostics = read_report(
        &diagnostics_path,
        "diagnostics report",
        DiagnosticsReport::from_json,
    )?;
    let schema_file = args
        .schema_file
        .clone()
        .unwrap_or_else(|| matrix.schema_source.clone());
    // The case commands plan this schema: it must load, and be the one the matrix planned.
    let target = TargetSchema::load(&schema_file)
        .context("--schema-file (default: the matrix's schemaSource)")?;
    if !matrix.schema_sha256.is_empty() && target.sha256 != matrix.schema_sha256 {
        bail!(
            "{schema_file} is not the schema the matrix planned (sha256 {} against {}): pass the matrix's schema, or re-run the matrix",
            target.sha256,
            matrix.schema_sha256
        );
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| reports.join(runbook::REPORT_JSON));
    let out_md = args
        .out_md
        .clone()
        .unwrap_or_else(|| reports.join(runbook::REPORT_MD));
    let cases_dir = args
        .cases_dir
        .clone()
        .unwrap_or_else(|| args.artifacts.join("cases"));
    let config = RunbookConfig {
        generated_at: now_rfc3339(),
        matrix_file: matrix_path.display().to_string(),
        diagnostics_file: diagnostics_path.display().to_string(),
        schema_file,
        cases_root: cases_dir.display().to_string(),
    };
    let report = runbook::build_runbook(&config, &matrix, &diagnostics)
        .with_context(|| format!("{}", diagnostics_path.display()))?;
    fleet::matrix::write_report_pair(
        &out,
        &report.to_json_bytes(),
        &out_md,
        &report.to_markdown(),
    )
    .with_context(|| format!("writing {} and {}", out.display(), out_md.display()))?;
    report
        .create_case_dirs()
        .with_context(|| format!("creating the case folders under {}", cases_dir.display()))?;
    if json {
        print_json(&json!({
            "ok": report.ok,
            "summary": report.summary,
            "outFile": out,
            "outMd": out_md,
            "casesRoot": cases_dir,
        }))?;
    } else {
        for case in &report.cases {
            println!(
                "{}  {}  {}  {} action(s)",
                case.case_id,
                case.issue_code.as_str(),
                case.priority.as_str(),
                case.actions.len()
            );
        }
        println!(
            "{} case(s), {} blocking",
            report.summary.total_cases, report.summary.blocking_cases
        );
        println!("wrote {} and {}", out.display(), out_md.display());
    }
    Ok(if report.ok {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}
