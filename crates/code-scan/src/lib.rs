//! Preflight code scan of an Ekairos application repository and the story -> thread model
//! plan.
//!
//! [`scan_repository`] walks the repository (honouring `.gitignore`, in parallel), parses every
//! JS/TS file with `oxc` and records, from the syntax tree, every use of `@ekairos/story` and
//! `@ekairos/thread` (imports, re-exports, `require`, dynamic `import()`, API calls, types),
//! reactor configuration, and references to the legacy and thread InstantDB namespaces. Files
//! that do not parse are listed and scanned as text instead, never skipped.
//!
//! Two reports are derived from one [`RepoScan`]:
//! * [`PreflightReport`], surfaces (endpoint routes, agent surfaces, target agent endpoints)
//!   and readiness flags, the `artifacts/preflight/scan.json` contract;
//! * [`ModelPlan`], legacy vs thread model and API use, the entity mapping and the summary
//!   counters the hot-deploy gates read, the `story-thread-model-plan.json` contract.
//!
//! The crate reads repository files and nothing else: no network, no writes, no clock (the
//! caller supplies the `createdAt` timestamp).

mod analyze;
mod error;
mod markdown;
mod model_plan;
mod preflight;
mod repo;
pub mod surface;

pub use analyze::{
    analyze_source, items, text_scan, Category, FileAnalysis, Finding, ParseFailure, Via,
    LEGACY_NAMESPACES, THREAD_NAMESPACES,
};
pub use error::ScanError;
pub use model_plan::{
    entity_mapping, DeclaredEntity, EntityMapping, Entry, Item, Mapping, ModelFindings, ModelPlan,
    ModelSummary, SchemaReference, SchemaSection, Section,
};
pub use preflight::{
    EvidenceEntry, Notes, ParseErrorEntry, PreflightCounts, PreflightFindings, PreflightReport,
    Readiness,
};
pub use repo::{
    is_schema_file_name, scan_repository, FileProblem, FileRole, FileScan, RepoScan, EXTENSIONS,
};

/// Re-exported so callers of [`analyze_source`] need no direct oxc dependency.
pub use oxc_allocator::Allocator;
pub use oxc_span::SourceType;
