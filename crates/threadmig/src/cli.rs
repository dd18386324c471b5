//! Every flag of `threadmig`, defined once. Help text and usage errors come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "threadmig",
    version,
    about = "Migrate Ekairos apps from the @ekairos/story model to @ekairos/thread in InstantDB: \
             plan first, gate every mutation, prove the result.",
    after_help = "Exit codes: 0 ok, 1 findings or blocked, 2 usage or runtime error."
)]
pub struct Cli {
    /// Print a machine-readable JSON summary on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load, convert and diff InstantDB schemas (instant.schema.ts or JSON).
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Preflight scan of an application repository: @ekairos/story and @ekairos/thread use,
    /// reactor configuration, surfaces and readiness flags (exit 1 when not ready).
    Scan(ScanArgs),
    /// Story -> thread model plan: legacy vs thread namespaces and APIs in code and in
    /// instant.schema.ts, with the counters the hot-deploy gates read (exit 1 when not ready).
    ModelPlan(ModelPlanArgs),
    /// Serve the embedded InstantDB-compatible engine over HTTP (the real service's routes),
    /// printing its base URL as the first line on stdout; runs until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Read one app's legacy namespaces (and its existing thread_threads) through the Instant
    /// API, paged with limit/offset, into <artifacts>/runs/<run id>/01-extract/ (read-only).
    Extract(ExtractArgs),
    /// Transform extracted legacy rows (story model) into thread V1 rows, link intents and a
    /// reject report in `02-transform/` (pure and deterministic; nothing is sent anywhere).
    Transform(TransformArgs),
    /// Check the data-model §3.4 invariants on the target app after apply, against the run's
    /// 01-extract/ and 02-transform/; writes 04-verify/verify.result.json (read-only; exit 1
    /// when an invariant fails or cannot be checked).
    Verify(VerifyArgs),
    /// Turn a run's 02-transform/ into Instant transact steps (`update` + `link`, no
    /// `delete`), batched in canonical order, in 03-apply/tx-plan.ndjson with its sha256.
    TxPlan(TxPlanArgs),
    /// Apply a run's tx plan to the target app in journaled batches (resumable; a finished
    /// plan is never sent again). Needs --approve <sha256> of the reviewed plan (or typing it
    /// at a terminal prompt); --dry-run shows the plan and the target and sends nothing.
    Apply(ApplyArgs),
    /// Repair `conversation_history_orphan` for one tender: give each of its awards the
    /// context and thread `award_<awardId>` and one thread item per WhatsApp message of its
    /// conversation, link the conversation messages, verify the timeline. Idempotent; exit 1
    /// when rows were rejected or the verification fails.
    BackfillConversations(BackfillConversationsArgs),
    /// Generate a deterministic synthetic legacy (story model) fleet with every edge case of
    /// data-model §5.3 injected, as files and/or into an embedded workspace, with a manifest
    /// of what was injected and what the migration must do with it.
    Gen(GenArgs),
    /// The gated migration of one org (--org) or a wave (--org-ids, --canary first): snapshot,
    /// plan, gates, schema push, extract, transform, tx plan, rehearsal on an embedded copy,
    /// approval of the plan's sha256, apply (journaled, resumable), verify, report, ledger.
    Migrate(MigrateArgs),
    /// The main job on the embedded default, with no credentials and no network: generate a
    /// fleet, plan it, migrate the eligible orgs through the gated sequence (approving each
    /// plan's sha256 on the command line), and show the fleet status and the evidence.
    Demo(DemoArgs),
    /// Check that what the next commands need is available: CLERK_SECRET_KEY (presence only,
    /// never printed) or, with --workspace, an embedded workspace (exit 1 when missing).
    #[command(subcommand)]
    Env(EnvCommand),
    /// Plan the target schema for every organisation (or --org-ids) concurrently, grade and
    /// classify each org, and write schema-plan-org-matrix.{json,md} (read-only; exit 0 when
    /// every org is safe, 1 when not, 2 on error).
    Matrix(MatrixArgs),
    /// Root cause of every matrix row that is not safe; for schema_duplicate_link the legacy
    /// owner, a sanitised trial plan and the two-phase hint. Writes
    /// schema-plan-diagnostics.{json,md} (read-only; exit 1 when a row blocks).
    Diagnose(DiagnoseArgs),
    /// Per-org cases with ordered actions (manual_check / command / human_gate) from the matrix
    /// and its diagnostics; writes migration-case-runbook.{json,md} and the case folders
    /// (exit 1 when a case blocks).
    Runbook(RunbookArgs),
    /// Judge the nine hot-deploy gates on the preflight scan, the model plan and the org
    /// matrix; writes hot-deploy-gates.{json,md}. A missing or unreadable input fails its gates
    /// closed (`missing_input`). Exit 1 when a gate does not pass, also with --allow-unsafe,
    /// which only records which failed gates the operator overrode.
    Gates(GatesArgs),
    /// Migration status per organisation (blocked_plan, planned_only, applied_unverified,
    /// migrated_verified) from the org matrix and the run evidence (hash-checked run folders
    /// and the run ledger); writes migration-status.{json,md} and prints the table.
    Status(StatusArgs),
    /// The non-mutating pre-migration validation bundle of one org: schema and permissions
    /// backups, schema plan, extract, transform, tx plan with sha256, dry run (plan check and
    /// rehearsal on an embedded copy) and the row counts before migration, into
    /// <artifacts>/runs/<run id>/ with reports/pre-migration-validation.<run id>.<org>.json
    /// (exit 1 when the bundle is not ok).
    Validate(ValidateArgs),
    /// The planning pipeline, in process: env check, preflight scan, model plan, org matrix,
    /// diagnostics, runbook, hot-deploy gates, status, and the validation bundle of each
    /// --org-ids org; writes reports/pipeline.<run id>.json (read-only; exit 1 when the wave is
    /// not safe).
    Pipeline(PipelineArgs),
    /// The scenario registry: failure signatures of run reports grouped into scenarios with
    /// their deterministic actions.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// The run ledger: runs, steps, artifacts and reports as migration-domain entities in a
    /// ledger app (the embedded workspace's, or --ledger-app-id). No secret is ever stored.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(Debug, Args)]
pub struct GatesArgs {
    /// Artifacts root: inputs are read from and reports written under it unless the flags
    /// below say otherwise.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The preflight scan (default <artifacts>/preflight/scan.json, from `threadmig scan`).
    #[arg(long, value_name = "FILE")]
    pub preflight: Option<PathBuf>,
    /// The model plan (default <artifacts>/reports/story-thread-model-plan.json, from
    /// `threadmig model-plan`).
    #[arg(long = "model-plan", value_name = "FILE")]
    pub model_plan: Option<PathBuf>,
    /// The org matrix (default <artifacts>/reports/schema-plan-org-matrix.json, from
    /// `threadmig matrix`).
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// The JSON report (default <artifacts>/reports/hot-deploy-gates.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The Markdown report (default <artifacts>/reports/hot-deploy-gates.md).
    #[arg(long = "out-md", value_name = "FILE")]
    pub out_md: Option<PathBuf>,
    /// Run id recorded in the report.
    #[arg(long = "run-id", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Record that the operator proceeds past failed gates (diagnostics only): the report
    /// keeps `ok: false` and lists the overridden gates; gates with a missing input cannot be
    /// overridden.
    #[arg(long = "allow-unsafe")]
    pub allow_unsafe: bool,
}

/// Which ledger app to use when it is not the embedded workspace's.
#[derive(Debug, Clone, Args)]
pub struct LedgerArgs {
    /// An InstantDB app to use as the ledger (with --ledger-token-file) instead of the
    /// embedded workspace's ledger app. The migration-domain schema is pushed to it when it
    /// lacks it (only additive changes).
    #[arg(
        long = "ledger-app-id",
        value_name = "APP_ID",
        requires = "ledger_token_file"
    )]
    pub ledger_app_id: Option<String>,
    /// File holding the ledger app's admin token (`-` reads standard input).
    #[arg(
        long = "ledger-token-file",
        value_name = "FILE",
        requires = "ledger_app_id"
    )]
    pub ledger_token_file: Option<PathBuf>,
}

/// Where the ledger lives: the embedded workspace's ledger app (created on first record), or
/// an InstantDB app given by id.
#[derive(Debug, Clone, Args)]
pub struct LedgerSourceArgs {
    /// Embedded workspace whose ledger app to use (created there on first record).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub http: InstantHttpArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Artifacts root: the matrix and run folders (<artifacts>/runs/) are read from it and the
    /// reports written under it unless the flags below say otherwise.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The org matrix (default <artifacts>/reports/schema-plan-org-matrix.json).
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// The JSON report (default <artifacts>/reports/migration-status.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The Markdown report (default <artifacts>/reports/migration-status.md).
    #[arg(long = "out-md", value_name = "FILE")]
    pub out_md: Option<PathBuf>,
    /// Run id recorded in the report.
    #[arg(long = "run-id", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Exit 1 unless every organisation is migrated_verified.
    #[arg(long = "require-all-verified")]
    pub require_all_verified: bool,
    #[command(flatten)]
    pub source: LedgerSourceArgs,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Rebuild artifacts/reports/scenario-registry.json and references/scenario-registry.md
    /// from the matrix, diagnostics, pipeline reports, run folders and the ledger.
    Update(RegistryUpdateArgs),
}

#[derive(Debug, Args)]
pub struct RegistryUpdateArgs {
    /// Artifacts root: reports (<artifacts>/reports/) and run folders (<artifacts>/runs/).
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// More report files to read (`*` allowed in the file name, e.g. an old
    /// `reports/migration.temp-domain.*.json`); repeatable.
    #[arg(long = "reports-glob", value_name = "PATTERN")]
    pub reports_glob: Vec<PathBuf>,
    /// The JSON registry (default <artifacts>/reports/scenario-registry.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The Markdown registry.
    #[arg(
        long = "out-md",
        value_name = "FILE",
        default_value = "references/scenario-registry.md"
    )]
    pub out_md: PathBuf,
    #[command(flatten)]
    pub source: LedgerSourceArgs,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Record run folders (their stages, every file of the manifest, hash-checked) and report
    /// files into the ledger; re-recording writes nothing new.
    Record(LedgerRecordArgs),
    /// Show what the ledger holds: runs, their steps, artifacts and reports.
    Show(LedgerShowArgs),
}

#[derive(Debug, Args)]
pub struct LedgerRecordArgs {
    /// Artifacts root holding runs/<run id>/.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The run to record (repeatable). Without a run folder, the run is recorded from its
    /// --report files alone.
    #[arg(long = "run-id", value_name = "RUN_ID")]
    pub run_ids: Vec<String>,
    /// Record every run folder under <artifacts>/runs/.
    #[arg(long, conflicts_with = "run_ids")]
    pub all: bool,
    /// A report file to record with the run (repeatable; needs exactly one --run-id).
    #[arg(long = "report", value_name = "FILE")]
    pub reports: Vec<PathBuf>,
    #[command(flatten)]
    pub source: LedgerSourceArgs,
}

#[derive(Debug, Args)]
pub struct LedgerShowArgs {
    /// Only this run.
    #[arg(long = "run-id", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    #[command(flatten)]
    pub source: LedgerSourceArgs,
}

/// Where the fleet commands find the organisations and their apps: an embedded workspace
/// (its organisations and, without --instant-api-uri, its engine in process) or Clerk
/// (CLERK_SECRET_KEY) and an InstantDB server.
#[derive(Debug, Clone, Args)]
pub struct FleetSourceArgs {
    /// Embedded workspace (created by `threadmig gen --workspace`): its organisations are the
    /// directory and its engine runs in process, or is reached over HTTP with --instant-api-uri
    /// (`threadmig serve --workspace DIR`).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Base URL of the organisation directory (Clerk Backend API; secret from CLERK_SECRET_KEY).
    #[arg(long = "clerk-api-uri", default_value = "https://api.clerk.com")]
    pub clerk_api_uri: String,
    #[command(flatten)]
    pub http: InstantHttpArgs,
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// The target schema (instant.schema.ts, JSON, or builtin:<name>).
    #[arg(
        long = "schema-file",
        value_name = "SCHEMA",
        default_value = "builtin:thread-v1"
    )]
    pub schema_file: String,
    /// Plan only these organisations (ids separated by `,` or `;`); default: every
    /// organisation of the directory.
    #[arg(long = "org-ids", value_name = "IDS")]
    pub org_ids: Option<String>,
    /// Organisations planned at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Environment name recorded in the report.
    #[arg(long, default_value = "production")]
    pub env: String,
    /// Run id recorded in the report.
    #[arg(long = "run-id", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Artifacts root: the reports go to <DIR>/reports/ unless --out / --out-md say otherwise.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The JSON report (default <artifacts>/reports/schema-plan-org-matrix.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The Markdown report (default <artifacts>/reports/schema-plan-org-matrix.md).
    #[arg(long = "out-md", visible_alias = "instructions-out")]
    pub out_md: Option<PathBuf>,
    /// Leave each plan's steps out of the rows (`rows[].plan.output`); instructions stay.
    #[arg(long)]
    pub strip_output: bool,
    #[command(flatten)]
    pub source: FleetSourceArgs,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// The matrix report (default <artifacts>/reports/schema-plan-org-matrix.json).
    #[arg(long)]
    pub matrix: Option<PathBuf>,
    /// The target schema; default: the matrix's. It must be the schema the matrix planned.
    #[arg(long = "schema-file", value_name = "SCHEMA")]
    pub schema_file: Option<String>,
    /// Rows analysed at once (only duplicate-link rows reach the server).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Run id recorded in the report.
    #[arg(long = "run-id", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Artifacts root: the reports go to <DIR>/reports/ unless --out / --out-md say otherwise.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The JSON report (default <artifacts>/reports/schema-plan-diagnostics.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The Markdown report (default <artifacts>/reports/schema-plan-diagnostics.md).
    #[arg(long = "out-md")]
    pub out_md: Option<PathBuf>,
    #[command(flatten)]
    pub source: FleetSourceArgs,
}

#[derive(Debug, Args)]
pub struct RunbookArgs {
    /// The matrix report (default <artifacts>/reports/schema-plan-org-matrix.json).
    #[arg(long)]
    pub matrix: Option<PathBuf>,
    /// The diagnostics report (default <artifacts>/reports/schema-plan-diagnostics.json).
    #[arg(long)]
    pub diagnostics: Option<PathBuf>,
    /// The target schema the case commands plan; default: the matrix's. It must be the schema
    /// the matrix planned.
    #[arg(long = "schema-file", value_name = "SCHEMA")]
    pub schema_file: Option<String>,
    /// Artifacts root: reports go to <DIR>/reports/, case folders to <DIR>/cases/.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The JSON runbook (default <artifacts>/reports/migration-case-runbook.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The Markdown runbook (default <artifacts>/reports/migration-case-runbook.md).
    #[arg(long = "out-md")]
    pub out_md: Option<PathBuf>,
    /// Where the case folders go (default <artifacts>/cases).
    #[arg(long = "cases-dir", value_name = "DIR")]
    pub cases_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Check the Clerk secret (or the embedded workspace with --workspace).
    Check(EnvCheckArgs),
}

#[derive(Debug, Args)]
pub struct EnvCheckArgs {
    /// Check this embedded workspace instead of the Clerk secret.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Print a schema in the DSL serialisation shape (what `JSON.stringify(i.schema(...))` gives).
    Show(SchemaShowArgs),
    /// Plan the steps that turn the current schema into the desired one, as the server plans them.
    Diff(SchemaDiffArgs),
    /// Generate the phase-1 (transitional) schema for a two-phase duplicate-link resolution.
    Phase1(SchemaPhase1Args),
    /// Ask an InstantDB server (or `threadmig serve`) to plan pushing a schema to one app, and
    /// write the plan JSON and per-step instructions (exit 1 when the gate is not safe).
    Plan(SchemaPlanArgs),
}

#[derive(Debug, Args)]
pub struct SchemaShowArgs {
    /// Schema file: instant.schema.ts (.ts/.mts/.tsx) or JSON (DSL, `{schema: ...}`, or server
    /// `{refs, blobs}`), or a built-in schema: builtin:thread-v1, builtin:legacy-story,
    /// builtin:migration-domain.
    #[arg(value_name = "SCHEMA")]
    pub file: String,
    /// Indent the JSON output.
    #[arg(long)]
    pub pretty: bool,
}

#[derive(Debug, Args)]
pub struct SchemaDiffArgs {
    /// The schema the app has now (any supported format or builtin:<name>; a schema pull gives
    /// the server form, with the app's real attribute ids).
    #[arg(value_name = "CURRENT")]
    pub current: String,
    /// The schema to push (any supported format or builtin:<name>).
    #[arg(value_name = "DESIRED")]
    pub desired: String,
    /// Plan as with `check_types: false`: no data-type steps, no types on new attributes.
    #[arg(long)]
    pub no_check_types: bool,
    /// Plan as with `supports_background_updates: false`: flag changes become one `update-attr`.
    #[arg(long)]
    pub no_background_updates: bool,
}

#[derive(Debug, Args)]
pub struct SchemaPhase1Args {
    /// The full target schema to derive the transitional schema from.
    #[arg(long = "schema-file", value_name = "SCHEMA")]
    pub schema_file: String,
    /// Diagnostics report (`schema-plan-diagnostics.json`) whose successful sanitised plans name links to remove.
    #[arg(long)]
    pub diagnostics: Option<PathBuf>,
    /// Extra link names to remove, separated by `,` or `;`.
    #[arg(long = "remove-links")]
    pub remove_links: Option<String>,
    /// Use only the diagnostics rows of these organisations (repeatable or `,`-separated), so
    /// the transitional schema is specific to one case.
    #[arg(long = "org", value_name = "ORG_ID", value_delimiter = ',')]
    pub orgs: Vec<String>,
    /// Where to write the transitional schema JSON.
    #[arg(long, default_value = "artifacts/reports/schema-phase1.json")]
    pub out: PathBuf,
    /// Where to write the Markdown rationale.
    #[arg(long = "out-md", default_value = "artifacts/reports/schema-phase1.md")]
    pub out_md: PathBuf,
}

#[derive(Debug, Args)]
pub struct SchemaPlanArgs {
    /// The InstantDB app to plan for.
    #[arg(long = "app-id", value_name = "APP_ID")]
    pub app_id: String,
    /// The schema to push (instant.schema.ts, JSON, or builtin:<name>).
    #[arg(long = "schema-file", value_name = "SCHEMA")]
    pub schema_file: String,
    /// File holding the app's admin token (`-` reads standard input). Tokens are never taken
    /// from the command line.
    #[arg(long = "admin-token-file", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The organisation that owns the app. Without --admin-token-file, the app's credentials
    /// come from the organisation directory (Clerk, secret key from CLERK_SECRET_KEY; or the
    /// embedded workspace's organisations with --workspace).
    #[arg(long, value_name = "ORG_ID")]
    pub org: Option<String>,
    /// Take --org's credentials from this embedded workspace instead of Clerk (the embedded
    /// default: pair it with `--instant-api-uri` of `threadmig serve --workspace DIR`).
    #[arg(long, value_name = "DIR", requires = "org")]
    pub workspace: Option<PathBuf>,
    /// Environment name recorded in the report.
    #[arg(long, default_value = "production")]
    pub env: String,
    /// Where to write the plan JSON.
    #[arg(long, default_value = "artifacts/reports/schema-plan.json")]
    pub out: PathBuf,
    /// Where to write the instructions Markdown.
    #[arg(
        long = "instructions-out",
        default_value = "artifacts/reports/schema-plan.instructions.md"
    )]
    pub instructions_out: PathBuf,
    /// Base URL of the organisation directory (Clerk Backend API).
    #[arg(long = "clerk-api-uri", default_value = "https://api.clerk.com")]
    pub clerk_api_uri: String,
    #[command(flatten)]
    pub http: InstantHttpArgs,
}

/// Which app a command works on and how it is reached: an embedded workspace (engine in
/// process, organisations from the workspace) or a real InstantDB server (credentials from a
/// token file or from Clerk).
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Embedded workspace (created by `threadmig gen --workspace`): its engine runs in process
    /// and its organisations are the directory. With --instant-api-uri, the engine is reached
    /// over HTTP instead (`threadmig serve --workspace DIR`).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// The organisation whose app to use; its credentials come from the organisation directory
    /// (the workspace's, or Clerk with CLERK_SECRET_KEY).
    #[arg(long, value_name = "ORG_ID")]
    pub org: Option<String>,
    /// The InstantDB app to use (with --admin-token-file; with --org it must match the org's app).
    #[arg(long = "app-id", value_name = "APP_ID")]
    pub app_id: Option<String>,
    /// File holding the app's admin token (`-` reads standard input). Tokens are never taken
    /// from the command line.
    #[arg(long = "admin-token-file", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Base URL of the organisation directory (Clerk Backend API).
    #[arg(long = "clerk-api-uri", default_value = "https://api.clerk.com")]
    pub clerk_api_uri: String,
    #[command(flatten)]
    pub http: InstantHttpArgs,
}

/// How threadmig talks to an InstantDB server: where, and how patiently.
#[derive(Debug, Clone, Args)]
pub struct InstantHttpArgs {
    /// Base URL of the InstantDB API (`threadmig serve` prints one for the embedded engine).
    /// Default: https://api.instantdb.com (with --workspace: the workspace's engine, in process).
    #[arg(
        long = "instant-api-uri",
        visible_alias = "api-uri",
        value_name = "URI"
    )]
    pub instant_api_uri: Option<String>,
    /// Seconds one HTTP attempt may take (connect, send, read the answer).
    #[arg(long = "http-timeout-secs", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_timeout_secs: u64,
    /// Retries after a 429, a 5xx, a timeout or a lost connection (never after other errors).
    #[arg(long = "http-max-retries", default_value_t = 6)]
    pub http_max_retries: u32,
    /// Requests in flight at once per app.
    #[arg(long = "http-max-concurrency", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_max_concurrency: u64,
    /// Requests started per second per app (0: no limit).
    #[arg(long = "http-max-rps", default_value_t = 50.0, value_parser = parse_requests_per_second)]
    pub http_max_rps: f64,
}

/// The InstantDB API every command talks to unless told otherwise.
pub const DEFAULT_INSTANT_API_URI: &str = "https://api.instantdb.com";

impl InstantHttpArgs {
    pub fn api_uri(&self) -> &str {
        self.instant_api_uri
            .as_deref()
            .unwrap_or(DEFAULT_INSTANT_API_URI)
    }
}

/// A request rate: a finite number, 0 or more.
fn parse_requests_per_second(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!(
            "expected a number of requests per second (0 or more), got {text:?}"
        )),
    }
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The application repository to scan (its `src/` when it has one).
    #[arg(long)]
    pub repo: PathBuf,
    /// Where to write the JSON report.
    #[arg(long, default_value = "artifacts/preflight/scan.json")]
    pub out: PathBuf,
    /// Where to write the Markdown summary.
    #[arg(long = "out-md", default_value = "artifacts/preflight/scan.md")]
    pub out_md: PathBuf,
}

#[derive(Debug, Args)]
pub struct ModelPlanArgs {
    /// The application repository to scan (its `src/` when it has one, plus a root-level
    /// instant.schema.ts).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Where to write the JSON plan.
    #[arg(
        long,
        visible_alias = "out-json",
        default_value = "artifacts/reports/story-thread-model-plan.json"
    )]
    pub out: PathBuf,
    /// Where to write the Markdown plan.
    #[arg(
        long = "out-md",
        default_value = "artifacts/reports/story-thread-model-plan.md"
    )]
    pub out_md: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Workspace directory holding the engine's database (created if missing).
    #[arg(long)]
    pub workspace: PathBuf,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 8888)]
    pub port: u16,
    /// Address to listen on (an IP address or `localhost`).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Allow a non-loopback --host: anyone who can reach it can create apps and read data.
    #[arg(long)]
    pub allow_remote: bool,
    /// Largest accepted request body, in bytes (larger ones get 413).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Do not log requests on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Fault injection: seed of the deterministic fault sequence.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// Fault injection: milliseconds added to every request.
    #[arg(long, default_value_t = 0)]
    pub fault_latency_ms: u64,
    /// Fault injection: share of requests answered 429 rate-limited with Retry-After (0-1).
    #[arg(long = "fault-429-rate", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_429_rate: f64,
    /// Fault injection: seconds in the Retry-After header of an injected 429.
    #[arg(long, default_value_t = 1)]
    pub fault_retry_after_secs: u64,
    /// Fault injection: share of requests answered 500 or 503, before any effect (0-1).
    #[arg(long = "fault-5xx-rate", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_5xx_rate: f64,
    /// Fault injection: share of connections closed without a response, before any effect (0-1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_drop_rate: f64,
    /// Fault injection: share of connections closed without a response after the request took
    /// effect (a committed transaction whose answer is lost) (0-1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_drop_after_rate: f64,
    /// Fault injection: share of responses sent slowly, in chunks with pauses (0-1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_slow_body_rate: f64,
    /// Fault injection: milliseconds between two chunks of a slow body.
    #[arg(long, default_value_t = 20)]
    pub fault_slow_body_delay_ms: u64,
    /// Fault injection: only requests whose path starts with this (repeatable; default all).
    #[arg(long = "fault-path", value_name = "PREFIX")]
    pub fault_paths: Vec<String>,
}

/// A probability between 0 and 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("expected a number between 0 and 1, got {text:?}")),
    }
}

pub fn parse() -> Result<Cli, clap::Error> {
    Cli::try_parse()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Args)]
pub struct TxPlanArgs {
    /// The run whose 02-transform/ is planned (<artifacts>/runs/<run-id>/).
    #[arg(long = "run-id")]
    pub run_id: String,
    /// Root of the evidence folders.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// Steps per transaction batch.
    #[arg(long = "batch-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The run whose plan is applied (<artifacts>/runs/<run-id>/03-apply/; built from its
    /// 02-transform/ when absent). Journal and result go there.
    #[arg(long = "run-id")]
    pub run_id: String,
    /// Root of the evidence folders.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The sha256 of the plan you reviewed (--dry-run shows it). A plan that does not hash to
    /// it is refused (exit 1) and nothing is sent.
    #[arg(long, value_name = "SHA256")]
    pub approve: Option<String>,
    /// Show the plan (steps by op and namespace, batches, sha256) and the target app; send
    /// nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Continue a plan that an earlier apply left partly applied (journaled batches are
    /// skipped).
    #[arg(long)]
    pub resume: bool,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Accept destructive steps (delete, unlink, merge) in the plan.
    #[arg(long = "allow-destructive")]
    pub allow_destructive: bool,
    /// Apply this plan file instead of the run's 03-apply/tx-plan.ndjson.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Steps per batch when the plan has to be built.
    #[arg(long = "batch-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The target schema the bundle plans and transforms for (instant.schema.ts, JSON,
    /// builtin:<name>).
    #[arg(
        long = "schema-file",
        value_name = "SCHEMA",
        default_value = "builtin:thread-v1"
    )]
    pub schema_file: String,
    /// Run id (default `pre-migration-<unix ms>`); the run folder must not exist yet.
    #[arg(long = "run-id", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Artifacts root: the run folder goes to <DIR>/runs/, the report to <DIR>/reports/.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The report (default <artifacts>/reports/pre-migration-validation.<run id>.<org>.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Rows per page of the extract.
    #[arg(long = "page-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub page_size: u64,
    /// Steps per transaction of the tx plan (as `migrate`'s, so the sha256 matches its plan).
    #[arg(long = "batch-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
    /// Batches in flight during the rehearsal on the embedded copy.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Rows per namespace compared field by field on the copy.
    #[arg(long, default_value_t = 200)]
    pub sample: u64,
}

/// What `threadmig pipeline` runs. Only planning: execution is `threadmig migrate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PipelineMode {
    Planning,
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// What to run: planning and pre-migration validation (the only mode; nothing is mutated).
    #[arg(long, value_enum, default_value = "planning")]
    pub mode: PipelineMode,
    /// Run id recorded by every step (default `mig-<unix ms>`); the run folder must not exist.
    #[arg(long = "run-id", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// The application repository the preflight scan and the model plan read.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// The target schema (default <repo>/instant.schema.ts; builtin:<name> allowed).
    #[arg(long = "schema-file", value_name = "SCHEMA")]
    pub schema_file: Option<String>,
    /// Plan only these organisations (ids separated by `,` or `;`) and validate each one's
    /// pre-migration bundle; without it every organisation is planned and none validated.
    #[arg(long = "org-ids", value_name = "IDS")]
    pub org_ids: Option<String>,
    /// Passed to the hot-deploy gates, which record the failed gates as overridden; the
    /// pipeline still reports the wave as not safe.
    #[arg(long = "allow-unsafe")]
    pub allow_unsafe: bool,
    /// Go on after a step fails (steps that need its output are still skipped).
    #[arg(long = "continue-on-error")]
    pub continue_on_error: bool,
    /// Artifacts root: reports go to <DIR>/reports/, run folders to <DIR>/runs/.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// Organisations planned (and rows diagnosed) at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Environment name recorded in the matrix.
    #[arg(long, default_value = "production")]
    pub env: String,
    /// Steps per transaction of each validation's tx plan.
    #[arg(long = "batch-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
    /// Rows per page of each validation's extract.
    #[arg(long = "page-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub page_size: u64,
    #[command(flatten)]
    pub source: FleetSourceArgs,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo puts its workspace, application repository and evidence. An earlier
    /// demo's directory is replaced; any other non-empty directory is refused.
    #[arg(long, value_name = "DIR", default_value = "threadmig-demo")]
    pub dir: PathBuf,
    /// Seed of the generated fleet (the same seed gives the same fleet and the same plans).
    #[arg(long, default_value_t = 20261122)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// A wave: these organisations (ids separated by `,` or `;`), one after the other, each in
    /// its own run folder `<run-id>.<org>`.
    #[arg(long = "org-ids", value_name = "IDS")]
    pub org_ids: Option<String>,
    /// Migrate this organisation of --org-ids first; with no --continue-on-error, its failure
    /// stops the wave.
    #[arg(long, value_name = "ORG_ID")]
    pub canary: Option<String>,
    /// The target schema pushed before the data moves (instant.schema.ts, JSON, builtin:<name>).
    #[arg(
        long = "schema-file",
        value_name = "SCHEMA",
        default_value = "builtin:thread-v1"
    )]
    pub schema_file: String,
    /// Run id (default `mig-<unix ms>`). Re-running with the same id resumes: a plan already
    /// journaled in its 03-apply/ is continued, not rebuilt.
    #[arg(long = "run-id")]
    pub run_id: Option<String>,
    /// Root of the evidence folders and fleet reports (the gates read the preflight scan, the
    /// model plan and the matrix from it).
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The sha256 of the tx plan you approved (a run without it stops after the rehearsal and
    /// prints the hash). Repeat it for a wave: each org's plan needs its own hash.
    #[arg(long, value_name = "SHA256")]
    pub approve: Vec<String>,
    /// Stop before any mutation of the target: plan, extract, transform, tx plan and
    /// rehearsal only; no schema push, no apply.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Let failed gates and a non-safe plan through (for diagnostics). Recorded in the
    /// evidence; a gate whose input is missing still blocks.
    #[arg(long = "allow-unsafe")]
    pub allow_unsafe: bool,
    /// Accept destructive steps in the tx plan.
    #[arg(long = "allow-destructive")]
    pub allow_destructive: bool,
    /// Go on with the next organisation of the wave after one fails.
    #[arg(long = "continue-on-error")]
    pub continue_on_error: bool,
    /// Batches in flight at once during apply.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Steps per transaction of the tx plan.
    #[arg(long = "batch-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
    /// Rows per page of the extract.
    #[arg(long = "page-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub page_size: u64,
    /// Rows per namespace compared field by field by verify.
    #[arg(long, default_value_t = 200)]
    pub sample: u64,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Record the runs in a new temporary InstantDB app created through the port (where
    /// --instant-api-uri points) instead of the workspace's ledger or --ledger-app-id. Its id is
    /// printed; its token is kept in memory only, never written.
    #[arg(long = "ledger-temporary", conflicts_with = "ledger_app_id")]
    pub ledger_temporary: bool,
}

#[derive(Debug, Args)]
pub struct BackfillConversationsArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The tender (a UUID) whose awards' conversations to backfill.
    #[arg(long = "tender-id", value_name = "TENDER_ID")]
    pub tender_id: String,
    /// Run id (default `conversation-bridge-<unix ms>`); evidence goes to
    /// <artifacts>/runs/<run id>/.
    #[arg(long = "run-id")]
    pub run_id: Option<String>,
    /// Plan only: read and write the plan evidence, send no transaction.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Artifacts root.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// Rows per query page (and ids per `$in` list).
    #[arg(long = "page-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub page_size: u64,
    /// Steps per transaction.
    #[arg(long = "batch-size", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Run id (default `run-<unix ms>`); the rows go to <artifacts>/runs/<run id>/01-extract/.
    #[arg(long = "run-id")]
    pub run_id: Option<String>,
    /// Root of the evidence folders.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Rows per query (pages in the server's default order).
    #[arg(long = "page-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub page_size: u64,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The run to verify (<artifacts>/runs/<run id>/, with 01-extract/ and 02-transform/).
    #[arg(long = "run-id")]
    pub run_id: String,
    /// Root of the evidence folders.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Rows per namespace compared field by field (a sample seeded by the run id, so the
    /// same run always compares the same rows).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub sample: u64,
    /// Rows per query when reading the target.
    #[arg(long = "page-size", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub page_size: u64,
}

#[derive(Debug, Args)]
pub struct TransformArgs {
    /// The legacy rows: a dataset file in the old scripts' shape (one admin-query JSON document,
    /// bare or wrapped in `{data}` / `{payload: {data}}`), an extract directory of
    /// `<namespace>.ndjson` files, or a run directory holding `01-extract/`.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write: a run directory (writes its `02-transform/`) or a `02-transform`
    /// directory itself.
    #[arg(long)]
    pub out: PathBuf,
    /// "Now" for the liveness policy, RFC 3339 (e.g. the extract time). Executing/running/
    /// streaming rows active within --liveness-minutes of it stay live; without it none is live
    /// (all become failed/open). The clock is never read.
    #[arg(long)]
    pub now: Option<String>,
    /// The liveness window in minutes.
    #[arg(long, default_value_t = 15)]
    pub liveness_minutes: u32,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Size: small (~1k context_events, 2 orgs), medium (~100k, 12 orgs), large (~2M, 50 orgs).
    #[arg(long, value_parser = ["small", "medium", "large"])]
    pub preset: String,
    /// The seed: the same seed and options give byte-identical files and manifest.
    #[arg(long)]
    pub seed: u64,
    /// Number of organisations (default: the preset's).
    #[arg(long)]
    pub orgs: Option<usize>,
    /// Write files (one directory per org) and manifest.json here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write into this embedded workspace (created if missing): one app per org with the
    /// legacy schema, orgs registered in its directory. The manifest goes to --out, else to
    /// <workspace>/gen/.
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// File format: one admin-query JSON document per org, or NDJSON per namespace.
    #[arg(long, default_value = "json", value_parser = ["json", "ndjson"])]
    pub format: String,
    /// Content sizes (default: realistic, lean for large).
    #[arg(long, value_parser = ["realistic", "lean"])]
    pub content: Option<String>,
    /// Roles of the first orgs, comma-separated: standard, clean, schema-conflict,
    /// conversation-orphan, missing-credentials (the rest are standard).
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// The main job's fleet: clean, schema-conflict, conversation-orphan, missing-credentials
    /// as the first four orgs (same as --roles with those four).
    #[arg(long, conflicts_with = "roles")]
    pub pipeline_fleet: bool,
    /// Override the preset's fleet-wide number of context_events.
    #[arg(long)]
    pub events: Option<u64>,
    /// Steps per transaction when writing a workspace (the generator's own batching: larger
    /// transactions write the same data faster).
    #[arg(long, default_value_t = 2000)]
    pub batch_size: usize,
    #[command(flatten)]
    pub rates: GenRateArgs,
}

/// `--rate-<case> R` for every injected case (`--rate-event-without-context 0.01`), built
/// from the case catalogue so a new case gets its flag.
#[derive(Debug, Clone, Default)]
pub struct GenRateArgs {
    /// (case id, rate) as given.
    pub rates: Vec<(String, f64)>,
}

impl clap::FromArgMatches for GenRateArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = GenRateArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for kind in migration::gen::CaseKind::ALL
            .iter()
            .filter(|kind| !kind.is_fleet())
        {
            if let Some(rate) = matches.get_one::<f64>(kind.id()) {
                self.rates.push((kind.id().to_string(), *rate));
            }
        }
        Ok(())
    }
}

impl clap::Args for GenRateArgs {
    fn augment_args(mut command: clap::Command) -> clap::Command {
        for kind in migration::gen::CaseKind::ALL
            .iter()
            .filter(|kind| !kind.is_fleet())
        {
            // clap keeps argument names as `&'static str`; the catalogue is fixed, so these few
            // strings live as long as the process anyway.
            let long: &'static str =
                Box::leak(format!("rate-{}", kind.id().replace('_', "-")).into_boxed_str());
            let help: &'static str = Box::leak(
                format!("{} (default {})", kind.description(), kind.default_rate())
                    .into_boxed_str(),
            );
            command = command.arg(
                clap::Arg::new(kind.id())
                    .long(long)
                    .value_name("RATE")
                    .value_parser(parse_rate)
                    .help(help)
                    .help_heading("Case rates"),
            );
        }
        command
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}
