//! `threadmig extract`: one app's legacy rows through the Instant API into the run's
//! `01-extract/` (read-only), recorded in the run manifest as stage `extract`.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::Context;
use migration::evidence::{new_run_id, RunDir, Section};
use migration::extract::{extract, ExtractConfig, ExtractSummary};
use serde_json::{json, Value};

use crate::cli::ExtractArgs;
use crate::connect::connect;
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

pub fn run(args: ExtractArgs, json: bool) -> anyhow::Result<Outcome> {
    let run_id = match &args.run_id {
        Some(run_id) => run_id.clone(),
        None => {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_millis())
                .unwrap_or(0);
            new_run_id("run", ms)
        }
    };
    let run = RunDir::new(&args.artifacts, &run_id).context("--run-id")?;
    let connection = connect(&args.connect, false)?;
    let app = connection.resolve_app(&args.connect)?;
    let out = run.create_section(Section::Extract)?;
    let mut config = ExtractConfig::new(&out);
    config.page_size = usize::try_from(args.page_size).context("--page-size")?;

    let show = std::io::stderr().is_terminal();
    let started = Instant::now();
    let result = extract(
        connection.api.as_ref(),
        &app.auth,
        &config,
        &mut |progress| {
            if show {
                eprint!(
                    "\rextract {:<18} {:>9} rows  {:>6} queries",
                    progress.namespace, progress.rows, progress.pages
                );
            }
        },
    );
    if show {
        eprintln!();
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let summary = match result {
        Ok(summary) => summary,
        Err(error) => {
            // The failure is evidence too: the run records it (no partial file was kept).
            let message = format!("app {}: {error}", app.auth.app_id);
            run.record_stage(
                "extract",
                json!({
                    "status": "failed",
                    "orgId": app.org_id,
                    "appId": app.auth.app_id,
                    "error": message,
                    "elapsedMs": elapsed_ms,
                }),
                &[],
                &now_rfc3339(),
            )?;
            anyhow::bail!(message);
        }
    };
    let notes = paging_notes(&summary);
    run.record_stage(
        "extract",
        json!({
            "status": "extracted",
            "orgId": app.org_id,
            "appId": app.auth.app_id,
            "namespaces": summary.namespaces,
            "pages": summary.pages,
            "pageSize": summary.page_size,
            "duplicates": summary.duplicates,
            "recount": summary.recount,
            "elapsedMs": elapsed_ms,
        }),
        &notes,
        &now_rfc3339(),
    )?;

    if json {
        let mut out = serde_json::to_value(&summary)?;
        if let Value::Object(map) = &mut out {
            map.insert("runId".into(), json!(run.run_id()));
            map.insert("orgId".into(), json!(app.org_id));
            map.insert("appId".into(), json!(app.auth.app_id));
            map.insert("elapsedMs".into(), json!(elapsed_ms));
        }
        print_json(&out)?;
    } else {
        println!("run:      {}", run.run_id());
        println!("app:      {}", app.auth.app_id);
        for (namespace, rows) in &summary.namespaces {
            println!("  {namespace:<18} {rows:>9} rows");
        }
        for note in &notes {
            println!("note:     {note}");
        }
        println!(
            "queries:  {} in {:.1} s",
            summary.pages,
            elapsed_ms as f64 / 1000.0
        );
        println!("written:  {}", summary.out.display());
    }
    Ok(Outcome::Ok)
}

/// What offset paging met while the app changed, one line per namespace that met something.
fn paging_notes(summary: &ExtractSummary) -> Vec<String> {
    let mut notes = Vec::new();
    for (namespace, recount) in &summary.recount {
        let duplicates = summary.duplicates.get(namespace).copied().unwrap_or(0);
        if duplicates + recount.recovered + recount.vanished == 0 {
            continue;
        }
        notes.push(format!(
            "extract {namespace}: the app changed while it was read: {duplicates} rows returned twice (kept once), {} missed by the pages and fetched by id, {} deleted meanwhile (kept)",
            recount.recovered, recount.vanished
        ));
    }
    notes
}
