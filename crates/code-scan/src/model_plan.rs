//! The story -> thread model plan (`artifacts/reports/story-thread-model-plan.{json,md}`,
//! anchor §3.5): legacy model and API use against thread model and API use, with the summary
//! counters the hot-deploy gates read (§5.6: `legacyModelMatches`, `legacyApiMatches`,
//! `threadApiMatches`, `threadModelMatches`).
//!
//! Namespace references count in code files only; `instant.schema.*` / `instant.perms.*` are
//! reported in their own `schema` section, because the schema legitimately keeps declaring the
//! legacy namespaces during a hot deploy (no legacy data is deleted by default).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::analyze::{items, Category, Via, LEGACY_NAMESPACES, THREAD_NAMESPACES};
use crate::markdown::{code, count, yes_no};
use crate::preflight::{parse_errors, ParseErrorEntry};
use crate::repo::{FileRole, RepoScan};

const ITEM_SAMPLE: usize = 25;
const SECTION_SAMPLE: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityMapping {
    pub from: String,
    pub to: Vec<String>,
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    pub entities: Vec<EntityMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub file: String,
    pub line: u32,
    /// The source line, trimmed.
    pub raw: String,
    pub column: u32,
    pub detail: String,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub name: String,
    /// What is matched (a description of the syntax rule, not a regular expression).
    pub pattern: String,
    pub matches: usize,
    pub files_count: usize,
    pub files: Vec<String>,
    pub entries: Vec<Entry>,
    pub sample: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Section {
    pub title: String,
    pub total_matches: usize,
    pub total_files: usize,
    pub sample: Vec<String>,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelFindings {
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSummary {
    pub legacy_model_matches: usize,
    pub legacy_api_matches: usize,
    pub thread_model_matches: usize,
    pub thread_api_matches: usize,
    /// Informational: not required for `ready`.
    pub reactor_matches: usize,
    /// No legacy model or API use, thread model and API present, every file parsed, and the
    /// schema (when found) declares all thread namespaces.
    pub ready: bool,
    pub scanned_files: usize,
    pub unparsed_files: usize,
    pub schema_files: usize,
    pub schema_legacy_entities: usize,
    pub schema_thread_entities: usize,
    pub schema_missing_thread_entities: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredEntity {
    pub name: String,
    pub file: String,
    pub line: u32,
    /// `legacy`, `thread` or `other`.
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaReference {
    pub name: String,
    pub file: String,
    pub line: u32,
    pub raw: String,
}

/// What `instant.schema.*` / `instant.perms.*` declare and reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSection {
    pub files: Vec<String>,
    pub declared_entities: Vec<DeclaredEntity>,
    pub legacy_entities: Vec<String>,
    pub thread_entities: Vec<String>,
    /// Thread namespaces not declared by any schema file (empty when no schema file exists).
    pub missing_thread_entities: Vec<String>,
    /// Legacy and thread namespace names used in schema/perms files (links, rules).
    pub references: Vec<SchemaReference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPlan {
    pub created_at: String,
    pub repo: String,
    pub scan_root: String,
    pub mapping: Mapping,
    pub findings: ModelFindings,
    pub summary: ModelSummary,
    pub action_items: Vec<String>,
    pub schema: SchemaSection,
    pub parse_errors: Vec<ParseErrorEntry>,
}

/// The fixed legacy -> thread entity mapping.
pub fn entity_mapping() -> Vec<EntityMapping> {
    [
        (
            "context_contexts",
            &["thread_contexts", "thread_threads"][..],
            "One legacy context becomes one thread context plus one thread, linked together.",
        ),
        (
            "context_events",
            &["thread_items"][..],
            "Keep event ids and content parts.",
        ),
        (
            "story_executions",
            &["thread_executions"][..],
            "Keep workflowRunId and status; link the execution to its context and thread.",
        ),
        (
            "story_steps",
            &["thread_steps"][..],
            "Keep iteration, event ids and tool metadata.",
        ),
        (
            "story_parts",
            &["thread_parts"][..],
            "Keep the parts of each step.",
        ),
    ]
    .into_iter()
    .map(|(from, to, notes)| EntityMapping {
        from: from.to_owned(),
        to: to.iter().map(|t| (*t).to_owned()).collect(),
        notes: notes.to_owned(),
    })
    .collect()
}

struct ItemSpec {
    name: &'static str,
    pattern: String,
    category: Category,
}

fn namespace_items(names: &[&'static str], category: Category) -> Vec<ItemSpec> {
    names
        .iter()
        .map(|name| ItemSpec {
            name,
            pattern: format!(
                "{name} as an object/type key, a member (.{name}) or a string literal, in code \
                 files"
            ),
            category,
        })
        .collect()
}

fn api_item(name: &'static str, pattern: &str, category: Category) -> ItemSpec {
    ItemSpec {
        name,
        pattern: pattern.to_owned(),
        category,
    }
}

fn section_specs() -> Vec<(&'static str, Vec<ItemSpec>)> {
    use Category::*;
    vec![
        (
            "Legacy Model",
            namespace_items(&LEGACY_NAMESPACES, LegacyModel),
        ),
        (
            "Legacy API",
            vec![
                api_item(
                    items::STORY_IMPORT,
                    "import, type import, re-export, require() or import() of '@ekairos/story' \
                     or a subpath",
                    StoryImport,
                ),
                api_item(items::USE_STORY, "call useStory(...), also aliased or via a namespace import", StoryApi),
                api_item(items::CREATE_STORY, "call createStory(...), also aliased or via a namespace import", StoryApi),
                api_item(items::STORY_RUNNER, "call storyRunner(...), also aliased or via a namespace import", StoryApi),
                api_item(items::STORY_VALUE, "type use of StoryValue", StoryApi),
                api_item(
                    items::OTHER_STORY_API,
                    "any other export of '@ekairos/story' called, used as a type or as a JSX element",
                    StoryApi,
                ),
            ],
        ),
        (
            "Thread Model",
            namespace_items(&THREAD_NAMESPACES, ThreadModel),
        ),
        (
            "Thread API",
            vec![
                api_item(
                    items::THREAD_IMPORT,
                    "import, type import, re-export, require() or import() of '@ekairos/thread' \
                     or a subpath",
                    ThreadImport,
                ),
                api_item(items::CREATE_THREAD, "call createThread(...), also aliased or via a namespace import", ThreadApi),
                api_item(items::GET_THREAD_RUNTIME, "call getThreadRuntime(...), also aliased or via a namespace import", ThreadApi),
                api_item(
                    items::THREAD_START,
                    "string or template literal naming thread/start, or a .../thread/start/route file",
                    ThreadApi,
                ),
                api_item(
                    items::OTHER_THREAD_API,
                    "any other export of '@ekairos/thread' called or used as a JSX element",
                    ThreadApi,
                ),
            ],
        ),
        (
            "Reactor",
            vec![
                api_item(items::REACTOR_BUILDER, "call .reactor(...)", Reactor),
                api_item(items::REACTOR_FACTORY, "call create<Name>Reactor(...)", Reactor),
                api_item(
                    items::REACTOR_FIELD,
                    "object property reactor (reactor: ..., { reactor }, reactor() {})",
                    Reactor,
                ),
            ],
        ),
    ]
}

fn build_item(scan: &RepoScan, spec: &ItemSpec) -> Item {
    let code_only = matches!(spec.category, Category::LegacyModel | Category::ThreadModel);
    let mut entries = Vec::new();
    for file in &scan.files {
        if code_only && file.role == FileRole::Schema {
            continue;
        }
        let mut seen = BTreeSet::new();
        for f in &file.findings {
            if f.category == spec.category && f.item == spec.name && seen.insert(f.line) {
                entries.push(Entry {
                    file: file.path.clone(),
                    line: f.line,
                    raw: f.text.clone(),
                    column: f.column,
                    detail: f.detail.clone(),
                    via: f.via,
                });
            }
        }
    }
    let files: Vec<String> = entries
        .iter()
        .map(|e| e.file.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let sample = entries
        .iter()
        .take(ITEM_SAMPLE)
        .map(|e| format!("{}:{}", e.file, e.line))
        .collect();
    Item {
        name: spec.name.to_owned(),
        pattern: spec.pattern.clone(),
        matches: entries.len(),
        files_count: files.len(),
        files,
        entries,
        sample,
    }
}

fn build_schema(scan: &RepoScan) -> SchemaSection {
    let mut section = SchemaSection {
        files: Vec::new(),
        declared_entities: Vec::new(),
        legacy_entities: Vec::new(),
        thread_entities: Vec::new(),
        missing_thread_entities: Vec::new(),
        references: Vec::new(),
    };
    let mut legacy = BTreeSet::new();
    let mut thread = BTreeSet::new();
    for file in scan.files.iter().filter(|f| f.role == FileRole::Schema) {
        section.files.push(file.path.clone());
        for f in &file.findings {
            match f.category {
                Category::EntityDeclaration => {
                    let model = if LEGACY_NAMESPACES.contains(&f.item.as_str()) {
                        legacy.insert(f.item.clone());
                        "legacy"
                    } else if THREAD_NAMESPACES.contains(&f.item.as_str()) {
                        thread.insert(f.item.clone());
                        "thread"
                    } else {
                        "other"
                    };
                    section.declared_entities.push(DeclaredEntity {
                        name: f.item.clone(),
                        file: file.path.clone(),
                        line: f.line,
                        model: model.to_owned(),
                    });
                }
                Category::LegacyModel | Category::ThreadModel => {
                    section.references.push(SchemaReference {
                        name: f.item.clone(),
                        file: file.path.clone(),
                        line: f.line,
                        raw: f.text.clone(),
                    });
                }
                _ => {}
            }
        }
    }
    // Entity keys are also namespace references; list only the other uses (links, rules).
    section.references.retain(|r| {
        !section
            .declared_entities
            .iter()
            .any(|d| d.file == r.file && d.line == r.line && d.name == r.name)
    });
    if !section.files.is_empty() {
        section.missing_thread_entities = THREAD_NAMESPACES
            .iter()
            .filter(|name| !thread.contains(**name))
            .map(|name| (*name).to_owned())
            .collect();
    }
    // Keep the canonical namespace order rather than alphabetical.
    section.legacy_entities = LEGACY_NAMESPACES
        .iter()
        .filter(|n| legacy.contains(**n))
        .map(|n| (*n).to_owned())
        .collect();
    section.thread_entities = THREAD_NAMESPACES
        .iter()
        .filter(|n| thread.contains(**n))
        .map(|n| (*n).to_owned())
        .collect();
    section
}

impl ModelPlan {
    /// Builds the plan. `created_at` is the envelope timestamp (RFC 3339), supplied by the
    /// caller so the content stays deterministic.
    pub fn build(scan: &RepoScan, created_at: impl Into<String>) -> Self {
        let sections: Vec<Section> = section_specs()
            .into_iter()
            .map(|(title, specs)| {
                let items: Vec<Item> = specs.iter().map(|spec| build_item(scan, spec)).collect();
                let files: BTreeSet<&String> = items.iter().flat_map(|i| &i.files).collect();
                Section {
                    title: title.to_owned(),
                    total_matches: items.iter().map(|i| i.matches).sum(),
                    total_files: files.len(),
                    sample: items
                        .iter()
                        .flat_map(|i| i.sample.iter().cloned())
                        .take(SECTION_SAMPLE)
                        .collect(),
                    items,
                }
            })
            .collect();
        let total = |title: &str| {
            sections
                .iter()
                .find(|s| s.title == title)
                .map_or(0, |s| s.total_matches)
        };
        let schema = build_schema(scan);
        let parse_errors = parse_errors(scan);
        let mut summary = ModelSummary {
            legacy_model_matches: total("Legacy Model"),
            legacy_api_matches: total("Legacy API"),
            thread_model_matches: total("Thread Model"),
            thread_api_matches: total("Thread API"),
            reactor_matches: total("Reactor"),
            ready: false,
            scanned_files: scan.files.len(),
            unparsed_files: parse_errors.len(),
            schema_files: schema.files.len(),
            schema_legacy_entities: schema.legacy_entities.len(),
            schema_thread_entities: schema.thread_entities.len(),
            schema_missing_thread_entities: schema.missing_thread_entities.len(),
        };
        summary.ready = summary.legacy_model_matches == 0
            && summary.legacy_api_matches == 0
            && summary.thread_model_matches > 0
            && summary.thread_api_matches > 0
            && summary.unparsed_files == 0
            && summary.schema_missing_thread_entities == 0;

        let mut action_items = Vec::new();
        if summary.legacy_model_matches > 0 {
            action_items.push(format!(
                "Write and run a dataset transform for the legacy namespaces the code still \
                 references ({}): extract, transform, apply, verify.",
                count(summary.legacy_model_matches, "reference")
            ));
        }
        if summary.legacy_api_matches > 0 {
            action_items.push(format!(
                "Replace the story runtime APIs (imports of @ekairos/story, useStory, \
                 createStory, storyRunner, StoryValue) with their thread equivalents ({}).",
                count(summary.legacy_api_matches, "use")
            ));
        }
        if summary.thread_model_matches == 0 {
            action_items.push(
                "Add thread model reads/writes (thread_* namespaces): none found in code."
                    .to_owned(),
            );
        }
        if summary.thread_api_matches == 0 {
            action_items.push(
                "Adopt the thread runtime (@ekairos/thread, createThread, getThreadRuntime or \
                 the thread/start endpoint): none found in code."
                    .to_owned(),
            );
        }
        if summary.schema_missing_thread_entities > 0 {
            action_items.push(format!(
                "Declare the missing thread namespaces in the schema: {}.",
                schema.missing_thread_entities.join(", ")
            ));
        }
        if summary.unparsed_files > 0 {
            action_items.push(format!(
                "Fix the {} that do not parse (see parseErrors): their evidence comes from a \
                 text scan only.",
                count(summary.unparsed_files, "file")
            ));
        }
        if summary.schema_files == 0 {
            action_items.push(
                "No instant.schema.* file found in the scan root: the schema side of the model \
                 was not checked."
                    .to_owned(),
            );
        }
        if action_items.is_empty() {
            action_items.push("No gaps detected.".to_owned());
        }

        ModelPlan {
            created_at: created_at.into(),
            repo: scan.repo.display().to_string(),
            scan_root: scan.scan_root.clone(),
            mapping: Mapping {
                entities: entity_mapping(),
            },
            findings: ModelFindings { sections },
            summary,
            action_items,
            schema,
            parse_errors,
        }
    }

    /// True when the plan is not ready (legacy use left, thread use missing, unparsed files or
    /// missing thread namespaces in the schema).
    pub fn has_findings(&self) -> bool {
        !self.summary.ready
    }

    /// The Markdown rendering (anchor headings kept), with `file:line` for every finding.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let s = &self.summary;
        let _ = writeln!(md, "# Story -> Thread Model Migration Plan\n");
        let _ = writeln!(md, "- Generated: {}", self.created_at);
        let _ = writeln!(md, "- Repo: {}", code(&self.repo));
        let _ = writeln!(md, "- Scan root: {}\n", code(&self.scan_root));
        let _ = writeln!(md, "## Summary\n");
        let _ = writeln!(md, "- Legacy model matches: {}", s.legacy_model_matches);
        let _ = writeln!(md, "- Legacy API matches: {}", s.legacy_api_matches);
        let _ = writeln!(md, "- Thread model matches: {}", s.thread_model_matches);
        let _ = writeln!(md, "- Thread API matches: {}", s.thread_api_matches);
        let _ = writeln!(
            md,
            "- Reactor matches (informational): {}",
            s.reactor_matches
        );
        let _ = writeln!(md, "- Ready for thread runtime: {}", yes_no(s.ready));
        let _ = writeln!(
            md,
            "- Files scanned: {} ({} did not parse)\n",
            s.scanned_files, s.unparsed_files
        );

        let _ = writeln!(md, "## Entity Mapping\n");
        let _ = writeln!(md, "| Legacy | Target | Notes |\n|---|---|---|");
        for e in &self.mapping.entities {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                code(&e.from),
                e.to.iter().map(|t| code(t)).collect::<Vec<_>>().join(", "),
                e.notes
            );
        }

        let _ = writeln!(md, "\n## Action Items\n");
        for (i, item) in self.action_items.iter().enumerate() {
            let _ = writeln!(md, "{}. {item}", i + 1);
        }

        let _ = writeln!(md, "\n## Findings");
        for section in &self.findings.sections {
            let _ = writeln!(md, "\n### {}\n", section.title);
            let _ = writeln!(md, "- Matches: {}", section.total_matches);
            let _ = writeln!(md, "- Files: {}", section.total_files);
            if section.total_matches == 0 {
                let _ = writeln!(md, "- Sample: none");
                continue;
            }
            for item in section.items.iter().filter(|i| i.matches > 0) {
                let _ = writeln!(
                    md,
                    "\n#### {} ({} in {})\n",
                    item.name,
                    count(item.matches, "match"),
                    count(item.files_count, "file")
                );
                for e in &item.entries {
                    let _ = writeln!(
                        md,
                        "- {} {}: {}",
                        code(&format!("{}:{}", e.file, e.line)),
                        e.detail,
                        code(&e.raw)
                    );
                }
            }
        }

        let sc = &self.schema;
        let _ = writeln!(md, "\n## Schema\n");
        if sc.files.is_empty() {
            let _ = writeln!(md, "No instant.schema.* / instant.perms.* file found.");
        } else {
            let files: Vec<String> = sc.files.iter().map(|f| code(f)).collect();
            let _ = writeln!(md, "- Files: {}", files.join(", "));
            let list = |names: &[String]| {
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.iter().map(|n| code(n)).collect::<Vec<_>>().join(", ")
                }
            };
            let _ = writeln!(
                md,
                "- Legacy entities declared: {}",
                list(&sc.legacy_entities)
            );
            let _ = writeln!(
                md,
                "- Thread entities declared: {}",
                list(&sc.thread_entities)
            );
            let _ = writeln!(
                md,
                "- Thread entities missing: {}",
                list(&sc.missing_thread_entities)
            );
            for d in &sc.declared_entities {
                let _ = writeln!(
                    md,
                    "- {} declares {} ({})",
                    code(&format!("{}:{}", d.file, d.line)),
                    code(&d.name),
                    d.model
                );
            }
            for r in &sc.references {
                let _ = writeln!(
                    md,
                    "- {} references {}: {}",
                    code(&format!("{}:{}", r.file, r.line)),
                    code(&r.name),
                    code(&r.raw)
                );
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
