//! `threadmig matrix`: the org matrix (`fleet::matrix`) over the organisation directory and
//! the Instant API named by the flags, written to `schema-plan-org-matrix.{json,md}`.
//!
//! Exit codes: 0 every org is safe, 1 not every org is safe (blocked, review or an empty
//! fleet), 2 the matrix could not run (a schema file that does not load, a workspace that does
//! not open, a missing Clerk secret, a report that cannot be written). One org's failure is a
//! row, never an exit 2.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use fleet::matrix::{self, Connection, MatrixConfig, MatrixReport, TargetSchema};
use instant_api::InstantApi;
use org_directory::OrgDirectory;
use serde_json::json;

use crate::cli::{ConnectArgs, FleetSourceArgs, MatrixArgs};
use crate::connect::{connect, Backend};
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

pub fn run(args: MatrixArgs, json: bool) -> anyhow::Result<Outcome> {
    // The schema is checked before anything reaches a directory or a server.
    let target = TargetSchema::load(&args.schema_file).context("--schema-file")?;
    let org_ids = match &args.org_ids {
        Some(text) => {
            let ids = matrix::parse_org_ids(text);
            if ids.is_empty() {
                bail!("--org-ids {text:?} names no organisation");
            }
            Some(ids)
        }
        None => None,
    };
    if let Some(run_id) = &args.run_id {
        migration::evidence::validate_run_id(run_id)
            .map_err(|error| anyhow::anyhow!("--run-id: {error}"))?;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| reports_dir(&args.artifacts).join(matrix::REPORT_JSON));
    let out_md = args
        .out_md
        .clone()
        .unwrap_or_else(|| reports_dir(&args.artifacts).join(matrix::REPORT_MD));
    let ports = open_ports(&args.source)?;
    let config = MatrixConfig {
        org_ids,
        concurrency: usize::try_from(args.concurrency).unwrap_or(matrix::DEFAULT_CONCURRENCY),
        keep_plan_steps: !args.strip_output,
        env_name: args.env.clone(),
        created_at: now_rfc3339(),
        run_id: args.run_id.clone(),
        connection: ports.connection.clone(),
    };
    let started = Instant::now();
    let progress = Progress::new("matrix", "orgs");
    let report = matrix::run_matrix(
        &config,
        &target,
        ports.directory.as_ref(),
        ports.api.as_ref(),
        &|done, total| progress.show(done, total),
    )?;
    progress.finish();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    matrix::write_report_pair(
        &out,
        &report.to_json_bytes(),
        &out_md,
        &report.to_markdown(),
    )
    .with_context(|| format!("writing {} and {}", out.display(), out_md.display()))?;
    if json {
        print_json(&json!({
            "ok": report.ok,
            "summary": report.summary,
            "outFile": out,
            "instructionsOut": out_md,
            "concurrency": config.concurrency,
            "elapsedMs": elapsed_ms,
        }))?;
    } else {
        print!("{}", table(&report));
        let s = &report.summary;
        println!(
            "{} orgs: {} safe, {} review, {} blocked ({} failed plans, {} without credentials, {} directory errors) in {:.1}s with {} workers",
            s.total_orgs,
            s.safe,
            s.review_required,
            s.blocked,
            s.planned_failed,
            s.missing_instant_credentials,
            s.directory_errors,
            elapsed_ms as f64 / 1000.0,
            config.concurrency
        );
        println!("wave: {}", if report.ok { "safe" } else { "not safe" });
        println!("wrote {} and {}", out.display(), out_md.display());
    }
    Ok(if report.ok {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}

pub(super) fn reports_dir(artifacts: &Path) -> PathBuf {
    artifacts.join("reports")
}

/// The directory and Instant API of a fleet command, and how the report names them.
pub(super) struct FleetPorts {
    pub directory: Arc<dyn OrgDirectory>,
    pub api: Arc<dyn InstantApi>,
    pub connection: Connection,
}

/// The workspace's organisations (engine in process, or over HTTP with --instant-api-uri),
/// or Clerk with CLERK_SECRET_KEY and the Instant API.
pub(super) fn open_ports(source: &FleetSourceArgs) -> anyhow::Result<FleetPorts> {
    let workspace = match &source.workspace {
        Some(dir) => {
            if !dir.is_dir() {
                bail!("--workspace {}: not a directory", dir.display());
            }
            Some(std::path::absolute(dir).unwrap_or_else(|_| dir.clone()))
        }
        None => None,
    };
    let args = ConnectArgs {
        workspace: workspace.clone(),
        org: None,
        app_id: None,
        admin_token_file: None,
        clerk_api_uri: source.clerk_api_uri.clone(),
        http: source.http.clone(),
    };
    let connection = connect(&args, true)?;
    let Some(directory) = connection.directory else {
        bail!("no organisation directory: give --workspace DIR, or set CLERK_SECRET_KEY");
    };
    let instant_api_uri = match &connection.backend {
        Backend::Embedded { workspace } => format!("embedded:{}", workspace.display()),
        Backend::Http { base_url } => base_url.clone(),
    };
    Ok(FleetPorts {
        directory,
        api: connection.api,
        connection: Connection {
            instant_api_uri,
            clerk_api_uri: workspace.is_none().then(|| source.clerk_api_uri.clone()),
            workspace: workspace.map(|dir| dir.display().to_string()),
        },
    })
}

/// Reads a JSON report of one of the fleet commands; errors name the file and the place.
pub(super) fn read_report<T>(
    path: &Path,
    what: &str,
    parse: impl Fn(&str) -> Result<T, serde_json::Error>,
) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the {what}", path.display()))?;
    parse(&text).map_err(|error| {
        anyhow::anyhow!(
            "{}:{}:{}: not a {what}: {error}",
            path.display(),
            error.line(),
            error.column()
        )
    })
}

/// `done/total` on stderr, only when stderr is a terminal.
pub(super) struct Progress {
    show: bool,
    command: &'static str,
    unit: &'static str,
}

impl Progress {
    pub fn new(command: &'static str, unit: &'static str) -> Progress {
        Progress {
            show: std::io::stderr().is_terminal(),
            command,
            unit,
        }
    }

    pub fn show(&self, done: usize, total: usize) {
        if self.show {
            eprint!(
                "\rthreadmig {}: {done}/{total} {}   ",
                self.command, self.unit
            );
        }
    }

    pub fn finish(&self) {
        if self.show {
            eprintln!();
        }
    }
}

/// One line per org: id, gate, issue and reason.
fn table(report: &MatrixReport) -> String {
    use std::fmt::Write as _;
    let width = report
        .rows
        .iter()
        .map(|row| row.org.id.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:<7}  {:<27}  reason",
        "org", "gate", "issue"
    );
    for row in &report.rows {
        let _ = writeln!(
            out,
            "{:<width$}  {:<7}  {:<27}  {}",
            row.org.id,
            row.plan.gate.as_str(),
            row.issue_code().as_str(),
            fleet::issues::text::truncate(&row.reason, 120)
        );
    }
    out
}
