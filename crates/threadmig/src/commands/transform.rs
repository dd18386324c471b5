//! `threadmig transform`: legacy rows -> thread V1 rows, links and the reject report.

use std::path::{Path, PathBuf};

use anyhow::Context;
use migration::run::{Config, Input};
use migration::transform::Options;

use crate::cli::TransformArgs;
use crate::output::print_json;
use crate::Outcome;

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
        sort_budget: 96 << 20,
    };
    let summary = migration::run::run(&config)?;
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
