//! `threadmig transform`: legacy rows -> thread V1 rows, links and the reject report. Written
//! into a run folder (`…/runs/<runId>/02-transform`), it records the stage `transform` in the
//! run's manifest.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use migration::evidence::RunDir;
use migration::run::{Config, Input, Summary};
use migration::transform::Options;
use serde_json::json;

use crate::cli::TransformArgs;
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

/// Rows being sorted at one time (two cell ranges: one mapped while the other is written).
const SORT_BUDGET: usize = 192 << 20;

pub fn run(args: TransformArgs, json: bool) -> anyhow::Result<Outcome> {
    let now_ms = match &args.now {
        Some(text) => Some(
            migration::dates::parse_iso(text)
                .with_context(|| format!("--now {text:?} is not an RFC 3339 date-time"))?,
        ),
        None => None,
    };
    let input = input_of(&args.input)?;
    let out_dir = transform_dir(&args.out);
    let config = Config {
        input,
        out_dir: out_dir.clone(),
        options: Options {
            now_ms,
            liveness_window_ms: i64::from(args.liveness_minutes) * 60_000,
            ..Options::default()
        },
        sort_budget: SORT_BUDGET,
    };
    let started = Instant::now();
    let summary = migration::run::run(&config)?;
    if let Some(run) = run_folder(&out_dir) {
        record(&run, &summary, started.elapsed().as_millis() as u64)?;
    }
    if json {
        print_json(&summary)?;
    } else {
        let count = |map: &std::collections::BTreeMap<String, u64>| {
            map.iter()
                .map(|(ns, n)| format!("{ns} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("input:    {}", count(&summary.input));
        println!("output:   {}", count(&summary.output));
        println!("links:    {}", summary.links);
        println!("rejected: {} rows not migrated", summary.rejected);
        for (rule, n) in &summary.rejects_by_rule {
            println!("  {rule}: {n}");
        }
        println!("written:  {}", out_dir.display());
    }
    Ok(Outcome::Ok)
}

fn input_of(path: &Path) -> anyhow::Result<Input> {
    let meta = std::fs::metadata(path).with_context(|| format!("--input {}", path.display()))?;
    if meta.is_dir() {
        let extract = path.join("01-extract");
        Ok(Input::ExtractDir(if extract.is_dir() {
            extract
        } else {
            path.to_path_buf()
        }))
    } else {
        Ok(Input::Dataset(path.to_path_buf()))
    }
}

fn transform_dir(out: &Path) -> PathBuf {
    if out.file_name().is_some_and(|name| name == "02-transform") {
        out.to_path_buf()
    } else {
        out.join("02-transform")
    }
}

/// The run folder `02-transform` belongs to, when it is one (`…/runs/<runId>/02-transform`).
fn run_folder(out_dir: &Path) -> Option<RunDir> {
    let run = out_dir.parent()?;
    let runs = run.parent()?;
    if runs.file_name()? != "runs" {
        return None;
    }
    RunDir::at(run).ok()
}

fn record(run: &RunDir, summary: &Summary, elapsed_ms: u64) -> anyhow::Result<()> {
    let record = json!({
        "status": "transformed",
        "input": summary.input,
        "output": summary.output,
        "links": summary.links,
        "rejected": summary.rejected,
        "rejectsByRule": summary.rejects_by_rule,
        "elapsedMs": elapsed_ms,
    });
    run.record_stage("transform", record, &[], &now_rfc3339())
        .with_context(|| format!("{}: recording the transform stage", run.path().display()))?;
    Ok(())
}
