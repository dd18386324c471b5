//! `threadmig gen`: a deterministic generator of legacy story-model data (data-model.md §5)
//! for a fleet of organisations, with every edge case of §5.3 injected at configurable rates
//! and a manifest of what was injected and what the migration must do with it.
//!
//! * Deterministic: one seed drives a small PRNG of our own ([`rng`]); ids are v4-shaped UUIDs
//!   drawn from it; every timestamp counts from a fixed base ([`time::BASE_TIME_MS`]). The
//!   same configuration gives byte-identical files and manifest.
//! * Streaming: an org is generated context by context ([`org`]) and each row goes straight
//!   to its writers; memory does not grow with the number of rows.
//! * Targets: files in the admin-query shape ([`files`]: one JSON document per org, the old
//!   scripts' dataset shape, or NDJSON per namespace) and/or an InstantDB app per org written
//!   through the `InstantApi` port ([`engine`]).
//!
//! The manifest (`manifest.json`, [`manifest`]) lists per org the rows per namespace and every
//! injected case with its kind, the ids of the rows it concerns and the rule that must decide
//! it ([`cases`]).

pub mod cases;
pub mod engine;
pub mod files;
pub mod manifest;
pub mod ns;
pub mod org;
pub mod rng;
pub mod schema;
pub mod text;
pub mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use cases::{CaseKind, Handling, Rates};
pub use engine::{EngineTarget, OrgRegistration};
pub use files::{FileEntry, FileFormat};
pub use ns::Ns;
pub use text::ContentMode;

/// Size presets (data-model.md §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Small,
    Medium,
    Large,
}

impl Preset {
    pub fn parse(text: &str) -> Option<Preset> {
        match text {
            "small" => Some(Preset::Small),
            "medium" => Some(Preset::Medium),
            "large" => Some(Preset::Large),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::Medium => "medium",
            Preset::Large => "large",
        }
    }

    /// `context_events` over the whole fleet.
    pub fn target_events(self) -> u64 {
        match self {
            Preset::Small => 1_000,
            Preset::Medium => 100_000,
            Preset::Large => 2_000_000,
        }
    }

    pub fn default_orgs(self) -> usize {
        match self {
            Preset::Small => 2,
            Preset::Medium => 12,
            Preset::Large => 50,
        }
    }

    /// Large is lean by default (§5.4: ~3 GB lean against ~10 GB realistic).
    pub fn default_content(self) -> ContentMode {
        match self {
            Preset::Large => ContentMode::Lean,
            _ => ContentMode::Realistic,
        }
    }
}

/// What an organisation of the fleet is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    /// Realistic data with every case injected at its rate (each at least once).
    Standard,
    /// Realistic data, no injected case at all: the migration must reject nothing.
    Clean,
    /// Clean data in an app whose schema already has a link owning `thread_contexts->thread`.
    SchemaConflict,
    /// Clean data plus an award conversation with no context (`conversation_history_orphan`).
    ConversationOrphan,
    /// Clean data; the organisation carries no app credentials.
    MissingCredentials,
}

impl OrgRole {
    pub const ALL: [OrgRole; 5] = [
        OrgRole::Standard,
        OrgRole::Clean,
        OrgRole::SchemaConflict,
        OrgRole::ConversationOrphan,
        OrgRole::MissingCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Standard => "standard",
            OrgRole::Clean => "clean",
            OrgRole::SchemaConflict => "schema-conflict",
            OrgRole::ConversationOrphan => "conversation-orphan",
            OrgRole::MissingCredentials => "missing-credentials",
        }
    }

    pub fn parse(text: &str) -> Option<OrgRole> {
        OrgRole::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// The fleet for the main job (issue #9): one clean org, one `schema_duplicate_link`, one
    /// `conversation_history_orphan`, one with missing credentials.
    pub const PIPELINE: [OrgRole; 4] = [
        OrgRole::Clean,
        OrgRole::SchemaConflict,
        OrgRole::ConversationOrphan,
        OrgRole::MissingCredentials,
    ];
}

/// Everything that determines the generated fleet.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub preset: Preset,
    pub seed: u64,
    pub orgs: usize,
    /// Rates of standard orgs (other roles inject nothing).
    pub rates: Rates,
    pub content: ContentMode,
    /// Roles of the first orgs, in order; the rest are standard.
    pub roles: Vec<OrgRole>,
    /// Leave out the cases an InstantDB server cannot hold (set when writing a workspace, so
    /// files and workspace hold the same rows).
    pub engine_compatible: bool,
    /// Overrides the preset's fleet-wide `context_events` target.
    pub target_events: Option<u64>,
}

impl GenConfig {
    pub fn new(preset: Preset, seed: u64) -> GenConfig {
        GenConfig {
            preset,
            seed,
            orgs: preset.default_orgs(),
            rates: Rates::default(),
            content: preset.default_content(),
            roles: Vec::new(),
            engine_compatible: false,
            target_events: None,
        }
    }

    /// The rates actually used by standard orgs: engine-incompatible cases off when needed.
    pub fn effective_rates(&self) -> Rates {
        let mut rates = self.rates.clone();
        for kind in CaseKind::ALL {
            if kind.is_fleet() || (self.engine_compatible && !kind.engine_compatible()) {
                rates.set(*kind, 0.0);
            }
        }
        rates
    }

    pub fn validate(&self) -> Result<(), GenError> {
        if self.orgs == 0 {
            return Err(GenError::Invalid("--orgs must be at least 1".into()));
        }
        if self.roles.len() > self.orgs {
            return Err(GenError::Invalid(format!(
                "{} roles given for {} orgs: raise --orgs",
                self.roles.len(),
                self.orgs
            )));
        }
        Ok(())
    }
}

/// One organisation of the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgPlan {
    pub index: usize,
    /// Clerk-shaped (`org_` + 27 characters), derived from the seed.
    pub org_id: String,
    pub name: String,
    pub slug: String,
    pub role: OrgRole,
    pub target_events: u64,
    pub seed: u64,
}

/// The orgs of a fleet: ids and names from the seed, sizes from a Zipf share (s = 1.1).
pub fn plan_fleet(config: &GenConfig) -> Vec<OrgPlan> {
    let total = config
        .target_events
        .unwrap_or(config.preset.target_events());
    let weights: Vec<f64> = (0..config.orgs)
        .map(|rank| 1.0 / ((rank + 1) as f64).powf(1.1))
        .collect();
    let sum: f64 = weights.iter().sum();
    const NAMES: &[&str] = &[
        "acme",
        "andes",
        "pampa",
        "litoral",
        "cuyo",
        "patagonia",
        "norte",
        "delta",
        "sierra",
        "valle",
        "puerto",
        "llanura",
    ];
    (0..config.orgs)
        .map(|index| {
            let seed = rng::derive_seed(config.seed, "org", index as u64);
            let mut rng = rng::Rng::new(rng::derive_seed(config.seed, "org-id", index as u64));
            let id_chars: String = (0..27)
                .map(|_| {
                    const ALPHABET: &[u8] =
                        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
                    ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char
                })
                .collect();
            let base = NAMES[index % NAMES.len()];
            let slug = format!("{base}-{index:02}");
            OrgPlan {
                index,
                org_id: format!("org_{id_chars}"),
                name: format!("{} {index:02} (synthetic)", capitalise(base)),
                slug,
                role: config
                    .roles
                    .get(index)
                    .copied()
                    .unwrap_or(OrgRole::Standard),
                target_events: ((total as f64) * weights[index] / sum).round().max(1.0) as u64,
                seed,
            }
        })
        .collect()
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One injected case, as the manifest lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    pub kind: CaseKind,
    /// The namespace of the first id.
    pub namespace: &'static str,
    /// The rows the case concerns (exactly as written, e.g. an upper-case id stays so).
    pub ids: Vec<String>,
    /// Case-specific facts (field, expected value, ...); `null` when none.
    pub detail: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("org {org}: {message}")]
    Target { org: String, message: String },
    #[error("{0}")]
    Schema(String),
    #[error("{0}")]
    Invalid(String),
}

impl GenError {
    pub fn io(path: &Path, source: std::io::Error) -> GenError {
        GenError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What one org produced.
#[derive(Debug, Clone)]
pub struct OrgSummary {
    pub plan: OrgPlan,
    pub rows: BTreeMap<Ns, u64>,
    pub cases: BTreeMap<CaseKind, u64>,
    /// Rows the migration must reject, per namespace (cases whose handling is `dropped`).
    pub rejected: BTreeMap<Ns, u64>,
    pub files: Vec<FileEntry>,
    /// The app written in the workspace (not part of the manifest: app ids are the server's).
    pub app_id: Option<String>,
    pub credentials: &'static str,
    pub batches: u64,
    pub steps: u64,
}

/// Progress, reported every few thousand rows and at the end of each org.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub org_index: usize,
    pub orgs: usize,
    pub rows: u64,
    pub events: u64,
    pub target_events: u64,
}

/// Where the fleet goes.
pub struct Targets<'a> {
    /// Files: one directory per org under `dir`.
    pub files: Option<(PathBuf, FileFormat)>,
    /// An InstantDB server (the embedded engine or a real one) and the org directory.
    pub engine: Option<EngineTarget<'a>>,
    /// Where `manifest.json` is written.
    pub manifest_dir: PathBuf,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct GenReport {
    pub orgs: Vec<OrgSummary>,
    pub manifest: PathBuf,
    pub excluded: Vec<CaseKind>,
}

impl GenReport {
    pub fn total_rows(&self) -> BTreeMap<Ns, u64> {
        let mut total = BTreeMap::new();
        for org in &self.orgs {
            for (ns, count) in &org.rows {
                *total.entry(*ns).or_insert(0) += count;
            }
        }
        total
    }

    pub fn total_cases(&self) -> BTreeMap<CaseKind, u64> {
        let mut total = BTreeMap::new();
        for org in &self.orgs {
            for (kind, count) in &org.cases {
                *total.entry(*kind).or_insert(0) += count;
            }
        }
        total
    }
}

/// Counts rows and cases, spools cases for the manifest, and forwards rows to the writers.
struct Recorder<'a, 'b> {
    files: Option<&'a mut files::OrgFiles>,
    engine: Option<&'a mut engine::EngineWriter<'b>>,
    cases: &'a mut manifest::CaseSpool,
    rows: BTreeMap<Ns, u64>,
    case_counts: BTreeMap<CaseKind, u64>,
    rejected: BTreeMap<Ns, u64>,
    total_rows: u64,
    progress: &'a mut dyn FnMut(Progress),
    org_index: usize,
    orgs: usize,
    target_events: u64,
}

impl org::Emit for Recorder<'_, '_> {
    fn row(&mut self, ns: Ns, row: serde_json::Map<String, Value>) -> Result<(), GenError> {
        *self.rows.entry(ns).or_insert(0) += 1;
        self.total_rows += 1;
        if let Some(files) = self.files.as_deref_mut() {
            files.row(ns, &row)?;
        }
        if let Some(engine) = self.engine.as_deref_mut() {
            engine.row(ns, row)?;
        }
        if self.total_rows % 20_000 == 0 {
            (self.progress)(Progress {
                org_index: self.org_index,
                orgs: self.orgs,
                rows: self.total_rows,
                events: self.rows.get(&Ns::ContextEvents).copied().unwrap_or(0),
                target_events: self.target_events,
            });
        }
        Ok(())
    }

    fn case(&mut self, case: CaseRecord) -> Result<(), GenError> {
        *self.case_counts.entry(case.kind).or_insert(0) += 1;
        if case.kind.handling() == Handling::Dropped {
            if let Some(ns) = Ns::from_name(case.namespace) {
                *self.rejected.entry(ns).or_insert(0) += 1;
            }
        }
        self.cases.write(&case)
    }

    fn end_chunk(&mut self) -> Result<(), GenError> {
        if let Some(engine) = self.engine.as_deref_mut() {
            engine.end_chunk()?;
        }
        Ok(())
    }
}

/// The settings and schema of one org.
pub fn org_settings(
    config: &GenConfig,
    plan: &OrgPlan,
) -> (org::OrgSettings, schema::SchemaFeatures) {
    let standard = plan.role == OrgRole::Standard;
    let rates = if standard {
        config.effective_rates()
    } else {
        Rates::zero()
    };
    let features = schema::SchemaFeatures {
        leftovers: standard,
        partial_thread: standard,
        conflicting_link: plan.role == OrgRole::SchemaConflict,
    };
    (
        org::OrgSettings {
            rates,
            fixtures: standard,
            content: config.content,
        },
        features,
    )
}

/// Generates the fleet into the targets and writes the manifest.
pub fn generate(
    config: &GenConfig,
    targets: &mut Targets<'_>,
    progress: &mut dyn FnMut(Progress),
) -> Result<GenReport, GenError> {
    config.validate()?;
    let plans = plan_fleet(config);
    std::fs::create_dir_all(&targets.manifest_dir)
        .map_err(|error| GenError::io(&targets.manifest_dir, error))?;
    let mut summaries = Vec::new();
    let mut spools = Vec::new();
    // Rows are made on this thread and written by each org's writer thread (see `engine`),
    // which the org's `finish` joins (the scope joins it on an early error).
    std::thread::scope(|scope| -> Result<(), GenError> {
        for plan in &plans {
            let (settings, features) = org_settings(config, plan);
            let deployed = schema::as_deployed(features)?;
            let mut spool = manifest::CaseSpool::create(&targets.manifest_dir, plan.index)?;
            let mut org_files = match &targets.files {
                Some((dir, format)) => Some(files::OrgFiles::create(dir, &plan.slug, *format)?),
                None => None,
            };
            let mut writer = match targets.engine.as_mut() {
                Some(target) if plan.role != OrgRole::MissingCredentials => Some(
                    engine::EngineWriter::create(target, plan, &deployed, scope)?,
                ),
                _ => None,
            };
            let mut recorder = Recorder {
                files: org_files.as_mut(),
                engine: writer.as_mut(),
                cases: &mut spool,
                rows: BTreeMap::new(),
                case_counts: BTreeMap::new(),
                rejected: BTreeMap::new(),
                total_rows: 0,
                progress: &mut *progress,
                org_index: plan.index,
                orgs: plans.len(),
                target_events: plan.target_events,
            };
            if plan.role == OrgRole::MissingCredentials {
                org::Emit::case(
                    &mut recorder,
                    CaseRecord {
                        kind: CaseKind::MissingInstantCredentials,
                        namespace: "organizations",
                        ids: vec![plan.org_id.clone()],
                        detail: serde_json::json!({"credentials": "missing"}),
                    },
                )?;
            }
            org::OrgGen::new(plan, &settings, &mut recorder).run()?;
            let rows = std::mem::take(&mut recorder.rows);
            let cases = std::mem::take(&mut recorder.case_counts);
            let rejected = std::mem::take(&mut recorder.rejected);
            let total_rows = recorder.total_rows;
            drop(recorder);
            (progress)(Progress {
                org_index: plan.index,
                orgs: plans.len(),
                rows: total_rows,
                events: rows.get(&Ns::ContextEvents).copied().unwrap_or(0),
                target_events: plan.target_events,
            });
            let files = match org_files {
                Some(org_files) => org_files.finish(&deployed)?,
                None => Vec::new(),
            };
            let (app_id, batches, steps) = match writer {
                Some(writer) => {
                    let (app_id, batches, steps) = writer.finish()?;
                    (Some(app_id), batches, steps)
                }
                None => (None, 0, 0),
            };
            let credentials = if plan.role == OrgRole::MissingCredentials {
                "missing"
            } else {
                "present"
            };
            if let Some(target) = targets.engine.as_mut() {
                (target.register)(OrgRegistration {
                    org_id: plan.org_id.clone(),
                    name: plan.name.clone(),
                    slug: plan.slug.clone(),
                    app_id: app_id.clone(),
                    credentials,
                })
                .map_err(|message| GenError::Target {
                    org: plan.org_id.clone(),
                    message,
                })?;
            }
            spools.push(spool.finish()?);
            summaries.push(OrgSummary {
                plan: plan.clone(),
                rows,
                cases,
                rejected,
                files,
                app_id,
                credentials,
                batches,
                steps,
            });
        }
        Ok(())
    })?;
    let excluded: Vec<CaseKind> = CaseKind::ALL
        .iter()
        .copied()
        .filter(|kind| config.engine_compatible && !kind.engine_compatible())
        .collect();
    let manifest = manifest::write(config, targets, &summaries, &spools, &excluded)?;
    for spool in spools {
        let _ = std::fs::remove_file(spool);
    }
    Ok(GenReport {
        orgs: summaries,
        manifest,
        excluded,
    })
}
