use std::path::{Path, PathBuf};

use migration::run::{run, Config, Input, Summary};
use migration::transform::Options;
use migration::{LegacyNamespace, TargetNamespace};

pub struct Outcome {
    pub summary: Summary,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

pub fn transform(dataset: &str, options: Options, sort_budget: usize) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("dataset.json");
    std::fs::write(&input, dataset).unwrap();
    let dir = tmp.path().join("run").join("02-transform");
    let summary = run(&Config {
        input: Input::Dataset(input),
        out_dir: dir.clone(),
        options,
        sort_budget,
    })
    .unwrap();
    Outcome {
        summary,
        dir,
        _tmp: tmp,
    }
}

/// Every output file, in a stable order, for expectations and byte comparisons.
pub fn render(dir: &Path) -> String {
    let mut out = String::new();
    let mut names: Vec<String> = TargetNamespace::ALL
        .iter()
        .map(|ns| ns.file_name())
        .collect();
    names.push("links.ndjson".into());
    names.push("rejects.ndjson".into());
    for name in names {
        out.push_str(&format!("== {name}\n"));
        out.push_str(&std::fs::read_to_string(dir.join(&name)).unwrap());
    }
    out
}

pub fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Every legacy row is either in the output or in the reject report as not migrated.
pub fn assert_accounting(summary: &Summary, dir: &Path) {
    for ns in LegacyNamespace::ALL {
        let input = summary.input.get(ns.as_str()).copied().unwrap_or(0);
        let output = summary
            .output
            .get(ns.target().as_str())
            .copied()
            .unwrap_or(0);
        let dropped = summary.dropped.get(ns.as_str()).copied().unwrap_or(0);
        assert_eq!(
            input,
            output + dropped,
            "{ns}: {input} in, {output} out, {dropped} rejected"
        );
    }
    // The thread rows follow the contexts one to one.
    assert_eq!(
        summary.output.get("thread_threads"),
        summary.output.get("thread_contexts")
    );
    // The report holds exactly one `dropped` entry per rejected row.
    let rejects = std::fs::read_to_string(dir.join("rejects.ndjson")).unwrap();
    let dropped_entries = rejects
        .lines()
        .map(|l| serde_json::from_str::<migration::Reject>(l).unwrap())
        .filter(|r| r.rule.effect() == migration::Effect::Dropped)
        .count() as u64;
    assert_eq!(dropped_entries, summary.rejected);
    // Row files hold exactly what the summary says, each id once, in id order.
    for ns in TargetNamespace::ALL {
        let text = std::fs::read_to_string(dir.join(ns.file_name())).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids.len() as u64, summary.output[ns.as_str()], "{ns}");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{ns} not strictly ordered by id"
        );
    }
}
