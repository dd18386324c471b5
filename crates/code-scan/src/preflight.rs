//! The preflight readiness report (`artifacts/preflight/scan.json`, anchor §3.4).
//!
//! The anchor's keys are kept (`counts`, `readiness`, `findings` and every field in them);
//! additions are appended: `scanRoot`, `counts.scannedFiles`, `counts.unparsedFiles`,
//! `readiness.allFilesParsed` (part of `overall`), `parseErrors` and `evidence` (every finding
//! with file, line, column and what the syntax was).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::analyze::{Category, Finding, Via};
use crate::markdown::{code, yes_no};
use crate::repo::{FileProblem, FileRole, FileScan, RepoScan};
use crate::surface;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notes {
    pub purpose: String,
    pub scope: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreflightCounts {
    pub story_imports: usize,
    pub thread_imports: usize,
    pub old_apis: usize,
    pub legacy_model_refs: usize,
    pub thread_model_refs: usize,
    pub endpoint_files: usize,
    pub agent_files: usize,
    pub target_agent_endpoints: usize,
    pub endpoint_story_refs: usize,
    pub agent_story_refs: usize,
    pub endpoint_thread_refs: usize,
    pub endpoint_reactor_refs: usize,
    pub agent_thread_refs: usize,
    pub agent_reactor_refs: usize,
    pub endpoint_missing_thread_evidence: usize,
    pub agent_thread_without_reactor: usize,
    /// JS/TS files found (including the ones that did not parse).
    pub scanned_files: usize,
    /// Files that did not parse or could not be read.
    pub unparsed_files: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    pub endpoint_story_free: bool,
    pub agent_story_free: bool,
    pub endpoint_thread_evidence_present: bool,
    pub agent_thread_evidence_present: bool,
    /// Informational: not part of `overall`.
    pub agent_reactor_evidence_present: bool,
    pub target_agent_endpoints_ready: bool,
    pub legacy_model_migrated: bool,
    pub thread_model_evidence_present: bool,
    /// Every JS/TS file parsed (an unparsed file may hide evidence).
    pub all_files_parsed: bool,
    /// All of the above except `agentReactorEvidencePresent`.
    pub overall: bool,
}

/// The anchor's finding lists. The first five hold `file:line:text` lines (repo-relative
/// paths), the surface lists hold repo-relative paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreflightFindings {
    pub story_imports: Vec<String>,
    pub thread_imports: Vec<String>,
    pub old_apis: Vec<String>,
    pub legacy_model_refs: Vec<String>,
    pub thread_model_refs: Vec<String>,
    pub endpoint_story_refs: Vec<String>,
    pub endpoint_thread_refs: Vec<String>,
    pub endpoint_reactor_refs: Vec<String>,
    pub endpoint_missing_thread_evidence: Vec<String>,
    pub agent_story_refs: Vec<String>,
    pub agent_thread_refs: Vec<String>,
    pub agent_reactor_refs: Vec<String>,
    pub agent_thread_without_reactor: Vec<String>,
}

/// A file that did not parse or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParseErrorEntry {
    pub file: String,
    /// 0 when the file could not be read at all.
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// One finding with its file, for the structured `evidence` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceEntry {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub category: Category,
    pub item: String,
    pub detail: String,
    pub text: String,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreflightReport {
    pub created_at: String,
    pub repo: String,
    pub scan_root: String,
    pub notes: Notes,
    pub counts: PreflightCounts,
    pub readiness: Readiness,
    pub findings: PreflightFindings,
    pub parse_errors: Vec<ParseErrorEntry>,
    pub evidence: Vec<EvidenceEntry>,
}

#[derive(Debug, Default, Clone, Copy)]
struct FileFlags {
    story: bool,
    thread: bool,
    reactor: bool,
}

fn flags(file: &FileScan) -> FileFlags {
    let mut flags = FileFlags::default();
    for finding in &file.findings {
        match finding.category {
            Category::StoryImport | Category::StoryApi => flags.story = true,
            Category::ThreadImport | Category::ThreadApi => flags.thread = true,
            Category::Reactor => flags.reactor = true,
            _ => {}
        }
    }
    flags
}

/// `file:line:text` lines of the findings of `category` (code files only for the model
/// categories), one per file and line.
fn lines_of(scan: &RepoScan, categories: &[Category], code_only: bool) -> Vec<String> {
    let mut out = Vec::new();
    for file in &scan.files {
        if code_only && file.role == FileRole::Schema {
            continue;
        }
        let mut seen = BTreeSet::new();
        for finding in &file.findings {
            if categories.contains(&finding.category) && seen.insert(finding.line) {
                out.push(format!("{}:{}:{}", file.path, finding.line, finding.text));
            }
        }
    }
    out
}

pub(crate) fn parse_errors(scan: &RepoScan) -> Vec<ParseErrorEntry> {
    scan.problem_files()
        .map(|file| match &file.problem {
            Some(FileProblem::ParseError(failure)) => ParseErrorEntry {
                file: file.path.clone(),
                line: failure.line,
                column: failure.column,
                message: failure.message.clone(),
            },
            Some(FileProblem::Unreadable { message }) => ParseErrorEntry {
                file: file.path.clone(),
                line: 0,
                column: 0,
                message: message.clone(),
            },
            None => unreachable!("problem_files yields files with a problem"),
        })
        .collect()
}

impl PreflightReport {
    /// Builds the report. `created_at` is the envelope timestamp (RFC 3339), supplied by the
    /// caller so the content stays deterministic.
    pub fn build(scan: &RepoScan, created_at: impl Into<String>) -> Self {
        let mut findings = PreflightFindings {
            story_imports: lines_of(scan, &[Category::StoryImport], false),
            thread_imports: lines_of(scan, &[Category::ThreadImport], false),
            old_apis: lines_of(scan, &[Category::StoryApi], false),
            legacy_model_refs: lines_of(scan, &[Category::LegacyModel], true),
            thread_model_refs: lines_of(scan, &[Category::ThreadModel], true),
            ..PreflightFindings::default()
        };
        let mut endpoint_files = 0;
        let mut agent_files = 0;
        let mut target_agent_endpoints = 0;
        for file in &scan.files {
            let path = &file.path;
            let flags = flags(file);
            if surface::is_endpoint_route(path) {
                endpoint_files += 1;
                let target = surface::is_target_agent_endpoint(path);
                target_agent_endpoints += usize::from(target);
                if flags.story {
                    findings.endpoint_story_refs.push(path.clone());
                }
                if flags.thread {
                    findings.endpoint_thread_refs.push(path.clone());
                }
                if flags.reactor {
                    findings.endpoint_reactor_refs.push(path.clone());
                }
                if target && !(flags.thread || flags.reactor) {
                    findings.endpoint_missing_thread_evidence.push(path.clone());
                }
            }
            if surface::is_agent_surface(path) {
                agent_files += 1;
                if flags.story {
                    findings.agent_story_refs.push(path.clone());
                }
                if flags.thread {
                    findings.agent_thread_refs.push(path.clone());
                }
                if flags.reactor {
                    findings.agent_reactor_refs.push(path.clone());
                }
                if flags.thread && !flags.reactor {
                    findings.agent_thread_without_reactor.push(path.clone());
                }
            }
        }
        let parse_errors = parse_errors(scan);
        let counts = PreflightCounts {
            story_imports: findings.story_imports.len(),
            thread_imports: findings.thread_imports.len(),
            old_apis: findings.old_apis.len(),
            legacy_model_refs: findings.legacy_model_refs.len(),
            thread_model_refs: findings.thread_model_refs.len(),
            endpoint_files,
            agent_files,
            target_agent_endpoints,
            endpoint_story_refs: findings.endpoint_story_refs.len(),
            agent_story_refs: findings.agent_story_refs.len(),
            endpoint_thread_refs: findings.endpoint_thread_refs.len(),
            endpoint_reactor_refs: findings.endpoint_reactor_refs.len(),
            agent_thread_refs: findings.agent_thread_refs.len(),
            agent_reactor_refs: findings.agent_reactor_refs.len(),
            endpoint_missing_thread_evidence: findings.endpoint_missing_thread_evidence.len(),
            agent_thread_without_reactor: findings.agent_thread_without_reactor.len(),
            scanned_files: scan.files.len(),
            unparsed_files: parse_errors.len(),
        };
        let mut readiness = Readiness {
            endpoint_story_free: counts.endpoint_story_refs == 0,
            agent_story_free: counts.agent_story_refs == 0,
            endpoint_thread_evidence_present: counts.endpoint_thread_refs > 0
                || counts.endpoint_reactor_refs > 0,
            agent_thread_evidence_present: counts.agent_thread_refs > 0,
            agent_reactor_evidence_present: counts.agent_reactor_refs > 0,
            target_agent_endpoints_ready: counts.endpoint_missing_thread_evidence == 0,
            legacy_model_migrated: counts.legacy_model_refs == 0,
            thread_model_evidence_present: counts.thread_model_refs > 0,
            all_files_parsed: counts.unparsed_files == 0,
            overall: false,
        };
        readiness.overall = readiness.endpoint_story_free
            && readiness.agent_story_free
            && readiness.endpoint_thread_evidence_present
            && readiness.agent_thread_evidence_present
            && readiness.target_agent_endpoints_ready
            && readiness.legacy_model_migrated
            && readiness.thread_model_evidence_present
            && readiness.all_files_parsed;
        let evidence = scan
            .files
            .iter()
            .flat_map(|file| {
                file.findings
                    .iter()
                    .filter(|f| match f.category {
                        Category::EntityDeclaration => false,
                        // The schema declares the model; model-plan reports it.
                        Category::LegacyModel | Category::ThreadModel => {
                            file.role == FileRole::Code
                        }
                        _ => true,
                    })
                    .map(move |f| evidence_entry(&file.path, f))
            })
            .collect();
        PreflightReport {
            created_at: created_at.into(),
            repo: scan.repo.display().to_string(),
            scan_root: scan.scan_root.clone(),
            notes: Notes {
                purpose: "Static readiness scan of the application for the story -> thread + \
                          reactor migration of endpoint and agent surfaces."
                    .to_owned(),
                scope: format!(
                    "JS/TS files ({}) under '{}' of the repository{}, honouring .gitignore; \
                     findings come from the syntax tree (comments and unrelated strings are \
                     not uses); files that do not parse are listed in parseErrors and scanned \
                     as text.",
                    crate::repo::EXTENSIONS.join(" "),
                    scan.scan_root,
                    if scan.scan_root == "." {
                        ""
                    } else {
                        " plus root-level instant.schema/instant.perms files"
                    },
                ),
            },
            counts,
            readiness,
            findings,
            parse_errors,
            evidence,
        }
    }

    /// True when the readiness flags show the application is not ready (story still in use,
    /// thread evidence missing, legacy model still read, or a file could not be parsed).
    pub fn has_findings(&self) -> bool {
        !self.readiness.overall
    }

    /// The Markdown summary, with `file:line` for every finding.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Preflight Scan\n");
        let _ = writeln!(md, "- Generated: {}", self.created_at);
        let _ = writeln!(md, "- Repo: {}", code(&self.repo));
        let _ = writeln!(md, "- Scan root: {}", code(&self.scan_root));
        let _ = writeln!(
            md,
            "- Files scanned: {} ({} did not parse)",
            self.counts.scanned_files, self.counts.unparsed_files
        );
        let _ = writeln!(md, "- Ready: {}\n", yes_no(self.readiness.overall));

        let r = &self.readiness;
        let _ = writeln!(md, "## Readiness\n");
        let _ = writeln!(md, "| flag | value |\n|---|---|");
        for (name, value) in [
            ("endpointStoryFree", r.endpoint_story_free),
            ("agentStoryFree", r.agent_story_free),
            (
                "endpointThreadEvidencePresent",
                r.endpoint_thread_evidence_present,
            ),
            (
                "agentThreadEvidencePresent",
                r.agent_thread_evidence_present,
            ),
            (
                "agentReactorEvidencePresent (informational)",
                r.agent_reactor_evidence_present,
            ),
            ("targetAgentEndpointsReady", r.target_agent_endpoints_ready),
            ("legacyModelMigrated", r.legacy_model_migrated),
            (
                "threadModelEvidencePresent",
                r.thread_model_evidence_present,
            ),
            ("allFilesParsed", r.all_files_parsed),
            ("overall", r.overall),
        ] {
            let _ = writeln!(md, "| {name} | {} |", yes_no(value));
        }

        let c = &self.counts;
        let _ = writeln!(md, "\n## Counts\n");
        let _ = writeln!(md, "| counter | value |\n|---|---|");
        for (name, value) in [
            ("storyImports", c.story_imports),
            ("threadImports", c.thread_imports),
            ("oldApis", c.old_apis),
            ("legacyModelRefs", c.legacy_model_refs),
            ("threadModelRefs", c.thread_model_refs),
            ("endpointFiles", c.endpoint_files),
            ("agentFiles", c.agent_files),
            ("targetAgentEndpoints", c.target_agent_endpoints),
            ("endpointStoryRefs", c.endpoint_story_refs),
            ("agentStoryRefs", c.agent_story_refs),
            ("endpointThreadRefs", c.endpoint_thread_refs),
            ("endpointReactorRefs", c.endpoint_reactor_refs),
            ("agentThreadRefs", c.agent_thread_refs),
            ("agentReactorRefs", c.agent_reactor_refs),
            (
                "endpointMissingThreadEvidence",
                c.endpoint_missing_thread_evidence,
            ),
            ("agentThreadWithoutReactor", c.agent_thread_without_reactor),
            ("scannedFiles", c.scanned_files),
            ("unparsedFiles", c.unparsed_files),
        ] {
            let _ = writeln!(md, "| {name} | {value} |");
        }

        let _ = writeln!(md, "\n## Findings");
        for (title, categories) in [
            ("Story imports", &[Category::StoryImport][..]),
            ("Story APIs", &[Category::StoryApi][..]),
            ("Thread imports", &[Category::ThreadImport][..]),
            ("Thread APIs", &[Category::ThreadApi][..]),
            ("Reactor configuration", &[Category::Reactor][..]),
            (
                "Legacy model references (code files)",
                &[Category::LegacyModel][..],
            ),
            (
                "Thread model references (code files)",
                &[Category::ThreadModel][..],
            ),
        ] {
            let entries: Vec<&EvidenceEntry> = self
                .evidence
                .iter()
                .filter(|e| categories.contains(&e.category))
                .collect();
            let _ = writeln!(md, "\n### {title} ({})\n", entries.len());
            if entries.is_empty() {
                let _ = writeln!(md, "none");
            }
            for e in entries {
                let _ = writeln!(
                    md,
                    "- {} {}: {}",
                    code(&format!("{}:{}:{}", e.file, e.line, e.column)),
                    e.detail,
                    code(&e.text)
                );
            }
        }

        let _ = writeln!(md, "\n## Surfaces");
        let f = &self.findings;
        for (title, paths, categories) in [
            (
                "Endpoint routes with story references",
                &f.endpoint_story_refs,
                &[Category::StoryImport, Category::StoryApi][..],
            ),
            (
                "Target agent endpoints missing thread evidence",
                &f.endpoint_missing_thread_evidence,
                &[][..],
            ),
            (
                "Endpoint routes with thread references",
                &f.endpoint_thread_refs,
                &[Category::ThreadImport, Category::ThreadApi][..],
            ),
            (
                "Endpoint routes with reactor configuration",
                &f.endpoint_reactor_refs,
                &[Category::Reactor][..],
            ),
            (
                "Agent surfaces with story references",
                &f.agent_story_refs,
                &[Category::StoryImport, Category::StoryApi][..],
            ),
            (
                "Agent surfaces with thread references",
                &f.agent_thread_refs,
                &[Category::ThreadImport, Category::ThreadApi][..],
            ),
            (
                "Agent surfaces with reactor configuration",
                &f.agent_reactor_refs,
                &[Category::Reactor][..],
            ),
            (
                "Agent surfaces with thread but no reactor",
                &f.agent_thread_without_reactor,
                &[][..],
            ),
        ] {
            let _ = writeln!(md, "\n### {title} ({})\n", paths.len());
            if paths.is_empty() {
                let _ = writeln!(md, "none");
            }
            for path in paths {
                let lines: Vec<String> = self
                    .evidence
                    .iter()
                    .filter(|e| &e.file == path && categories.contains(&e.category))
                    .map(|e| e.line.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if lines.is_empty() {
                    let _ = writeln!(md, "- {}", code(path));
                } else {
                    let noun = if lines.len() == 1 { "line" } else { "lines" };
                    let _ = writeln!(md, "- {} ({noun} {})", code(path), lines.join(", "));
                }
            }
        }

        let _ = writeln!(
            md,
            "\n## Files that did not parse ({})\n",
            self.parse_errors.len()
        );
        if self.parse_errors.is_empty() {
            let _ = writeln!(md, "none");
        }
        for e in &self.parse_errors {
            let _ = writeln!(
                md,
                "- {}: {}",
                code(&format!("{}:{}:{}", e.file, e.line, e.column)),
                e.message
            );
        }
        md
    }
}

pub(crate) fn evidence_entry(file: &str, f: &Finding) -> EvidenceEntry {
    EvidenceEntry {
        file: file.to_owned(),
        line: f.line,
        column: f.column,
        category: f.category,
        item: f.item.clone(),
        detail: f.detail.clone(),
        text: f.text.clone(),
        via: f.via,
    }
}
