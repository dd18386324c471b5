//! `threadmig diagnose`: the root cause of every matrix row that is not safe
//! (`fleet::diagnose`), written to `schema-plan-diagnostics.{json,md}`. Only duplicate-link
//! rows reach the directory and the server (schema pull and a trial plan, both read-only), so
//! the ports are opened only when such a row exists.
//!
//! Exit codes: 0 no row blocks, 1 some row blocks, 2 the diagnosis could not run (unreadable
//! matrix, a schema other than the matrix's, ports that cannot be opened).

use std::time::Instant;

use anyhow::Context;
use fleet::diagnose::{self, DiagnoseConfig, Ports};
use fleet::matrix::{MatrixReport, TargetSchema};
use serde_json::json;

use super::matrix::{open_ports, read_report, reports_dir, Progress};
use crate::cli::DiagnoseArgs;
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

pub fn run(args: DiagnoseArgs, json: bool) -> anyhow::Result<Outcome> {
    let reports = reports_dir(&args.artifacts);
    let matrix_path = args
        .matrix
        .clone()
        .unwrap_or_else(|| reports.join(fleet::matrix::REPORT_JSON));
    let matrix = read_report(&matrix_path, "matrix report", MatrixReport::from_json)?;
    let schema_source = args
        .schema_file
        .clone()
        .unwrap_or_else(|| matrix.schema_source.clone());
    let target = TargetSchema::load(&schema_source)
        .context("--schema-file (default: the matrix's schemaSource)")?;
    if let Some(run_id) = &args.run_id {
        migration::evidence::validate_run_id(run_id)
            .map_err(|error| anyhow::anyhow!("--run-id: {error}"))?;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| reports.join(diagnose::REPORT_JSON));
    let out_md = args
        .out_md
        .clone()
        .unwrap_or_else(|| reports.join(diagnose::REPORT_MD));
    let networked = diagnose::rows_to_diagnose(&matrix)
        .into_iter()
        .filter(|row| diagnose::needs_ports(row))
        .count();
    let fleet_ports =
        if networked > 0 {
            Some(open_ports(&args.source).with_context(|| {
                format!("{networked} duplicate-link row(s) need the app's schema")
            })?)
        } else {
            None
        };
    let ports = fleet_ports.as_ref().map(|ports| Ports {
        directory: ports.directory.as_ref(),
        api: ports.api.as_ref(),
    });
    let config = DiagnoseConfig {
        matrix_file: matrix_path.display().to_string(),
        created_at: now_rfc3339(),
        run_id: args.run_id.clone(),
        concurrency: usize::try_from(args.concurrency).unwrap_or(16),
    };
    let started = Instant::now();
    let progress = Progress::new("diagnose", "rows");
    let report = diagnose::run_diagnose(&config, &matrix, &target, ports, &|done, total| {
        progress.show(done, total)
    })?;
    progress.finish();
    fleet::matrix::write_report_pair(
        &out,
        &report.to_json_bytes(),
        &out_md,
        &report.to_markdown(),
    )
    .with_context(|| format!("writing {} and {}", out.display(), out_md.display()))?;
    if json {
        print_json(&json!({
            "ok": report.ok,
            "summary": report.summary,
            "outFile": out,
            "outMd": out_md,
            "elapsedMs": started.elapsed().as_millis() as u64,
        }))?;
    } else {
        for d in &report.diagnostics {
            println!(
                "{}  {}  {}",
                d.org.id,
                d.issue_code.as_str(),
                fleet::issues::text::truncate(&d.root_cause, 140)
            );
        }
        println!(
            "{} row(s) diagnosed, {} blocking",
            report.summary.total_failures, report.summary.blocking
        );
        println!("wrote {} and {}", out.display(), out_md.display());
    }
    Ok(if report.ok {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}
