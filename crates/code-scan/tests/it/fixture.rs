//! Fixture repositories: a temporary folder, files written by the test, and compact
//! renderings of the reports for inline expectations.

use std::path::{Path, PathBuf};

use code_scan::{ModelPlan, PreflightReport, RepoScan};

pub const CREATED_AT: &str = "2025-01-01T00:00:00Z";

pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        Repo {
            dir: tempfile::tempdir().expect("temporary folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str, content: &str) -> &Self {
        self.bytes(rel, content.as_bytes())
    }

    pub fn bytes(&self, rel: &str, content: &[u8]) -> &Self {
        let path: PathBuf = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
        std::fs::write(&path, content).expect("write fixture file");
        self
    }

    pub fn scan(&self) -> RepoScan {
        code_scan::scan_repository(self.path()).expect("scan")
    }

    pub fn preflight(&self) -> PreflightReport {
        PreflightReport::build(&self.scan(), CREATED_AT)
    }

    pub fn model_plan(&self) -> ModelPlan {
        ModelPlan::build(&self.scan(), CREATED_AT)
    }

    /// A report as pretty JSON with the temporary path replaced by `<repo>`.
    pub fn redact(&self, json: &serde_json::Value) -> String {
        let canonical = std::fs::canonicalize(self.path()).expect("canonical path");
        serde_json::to_string_pretty(json)
            .expect("json")
            .replace(&canonical.display().to_string(), "<repo>")
    }
}

/// One line per finding: `path:line:column category item | detail [via]`.
pub fn findings(scan: &RepoScan) -> String {
    let mut out = String::new();
    for file in &scan.files {
        if let Some(problem) = &file.problem {
            out.push_str(&format!(
                "{} PROBLEM {}\n",
                file.path,
                serde_json::to_string(problem).expect("json")
            ));
        }
        for f in &file.findings {
            let via = match f.via {
                code_scan::Via::Syntax => String::new(),
                other => format!(
                    " [{}]",
                    serde_json::to_value(other)
                        .expect("json")
                        .as_str()
                        .expect("str")
                ),
            };
            out.push_str(&format!(
                "{}:{}:{} {} {} | {}{}\n",
                file.path,
                f.line,
                f.column,
                serde_json::to_value(f.category)
                    .expect("json")
                    .as_str()
                    .expect("str"),
                f.item,
                f.detail,
                via
            ));
        }
    }
    out
}

/// `counts` and `readiness` of a preflight report, one `key=value` per line.
pub fn gates(report: &PreflightReport) -> String {
    let value = serde_json::to_value(report).expect("json");
    let mut out = String::new();
    for section in ["counts", "readiness"] {
        for (key, v) in value[section].as_object().expect("object") {
            out.push_str(&format!("{section}.{key}={v}\n"));
        }
    }
    out
}

/// The surface finding lists of a preflight report.
pub fn surfaces(report: &PreflightReport) -> String {
    let value = serde_json::to_value(&report.findings).expect("json");
    let mut out = String::new();
    for (key, v) in value.as_object().expect("object") {
        if key.starts_with("endpoint") || key.starts_with("agent") {
            for path in v.as_array().expect("array") {
                out.push_str(&format!("{key}: {}\n", path.as_str().expect("str")));
            }
        }
    }
    out
}

/// The model-plan summary and per-item match counts.
pub fn plan_summary(plan: &ModelPlan) -> String {
    let mut out = String::new();
    let summary = serde_json::to_value(&plan.summary).expect("json");
    for (key, v) in summary.as_object().expect("object") {
        out.push_str(&format!("summary.{key}={v}\n"));
    }
    for section in &plan.findings.sections {
        for item in section.items.iter().filter(|i| i.matches > 0) {
            out.push_str(&format!(
                "{} / {}: {} in {}\n",
                section.title,
                item.name,
                item.matches,
                item.files.join(", ")
            ));
        }
    }
    for action in &plan.action_items {
        out.push_str(&format!("action: {action}\n"));
    }
    out
}
