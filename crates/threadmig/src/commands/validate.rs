//! `threadmig validate --org O`: the pre-migration validation bundle of one org
//! (`fleet::validate`), read-only on the target: the run folder `<artifacts>/runs/<run id>/`
//! and `reports/pre-migration-validation.<run id>.<org>.json`. The dry run applies the plan
//! to an embedded in-memory copy, never to the target.
//!
//! Exit codes: 0 the bundle is ok, 1 it is not (the report and stderr say why, e.g. an org
//! without usable credentials), 2 it could not run (a schema that does not load, a run folder
//! that already exists, ports that cannot be opened, evidence that cannot be written).

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::{bail, Context};
use fleet::matrix::TargetSchema;
use fleet::validate::{self, Check, Credentials, ValidateOptions, ValidateTarget};
use instant_api::InstantApi;
use instant_local::engine::LocalEngine;
use migration::evidence::{new_run_id, validate_run_id, RunDir};

use crate::cli::ValidateArgs;
use crate::connect::connect;
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

pub fn run(args: ValidateArgs, json: bool) -> anyhow::Result<Outcome> {
    let Some(org) = args.connect.org.clone() else {
        bail!("which organisation? give --org ORG (its credentials come from the organisation directory)");
    };
    let target = TargetSchema::load(&args.schema_file)
        .with_context(|| format!("--schema-file {}", args.schema_file))?;
    let run_id = match &args.run_id {
        Some(id) => id.clone(),
        None => new_run_id("pre-migration", unix_ms()),
    };
    validate_run_id(&run_id).map_err(|error| anyhow::anyhow!("--run-id: {error}"))?;
    let run = RunDir::new(&args.artifacts, &run_id)?;
    validate::check_fresh_run(&run)?;
    let report_path = args.out.clone().unwrap_or_else(|| {
        args.artifacts
            .join("reports")
            .join(validate::report_file_name(&run_id, &org))
    });
    let connection = connect(&args.connect, true)?;
    let credentials = if args.connect.admin_token_file.is_some() {
        Credentials::Present(connection.resolve_app(&args.connect)?.auth)
    } else {
        let Some(directory) = &connection.directory else {
            bail!("no organisation directory: give --workspace DIR, or set CLERK_SECRET_KEY");
        };
        let credentials = validate::resolve_credentials(directory.as_ref(), &org);
        if let (Credentials::Present(auth), Some(app_id)) = (&credentials, &args.connect.app_id) {
            if &auth.app_id != app_id {
                bail!(
                    "organisation {org} owns app {}, not --app-id {app_id}",
                    auth.app_id
                );
            }
        }
        credentials
    };
    let rehearsal_engine = || -> Result<Box<dyn InstantApi>, String> {
        LocalEngine::in_memory()
            .map(|engine| Box::new(engine) as Box<dyn InstantApi>)
            .map_err(|error| error.to_string())
    };
    let options = ValidateOptions {
        page_size: args.page_size as usize,
        batch_size: args.batch_size as usize,
        concurrency: args.concurrency as usize,
        sample_size: args.sample as usize,
        ..ValidateOptions::default()
    };
    let mut observer = Terminal {
        org: org.clone(),
        show: !json && std::io::stderr().is_terminal(),
    };
    let report = validate::validate_org(
        &ValidateTarget {
            api: connection.api.as_ref(),
            credentials: &credentials,
            org_id: &org,
            schema: &target,
            run: &run,
            report_path: &report_path,
            rehearsal_engine: &rehearsal_engine,
        },
        &options,
        &mut observer,
    )
    .with_context(|| format!("organisation {org}: writing the validation evidence"))?;
    if json {
        print_json(&report)?;
    } else {
        for (key, check) in report.validation.items() {
            println!("{key:<14} {:<8} {}", state(check), describe(check));
        }
        println!("bundle: {}", if report.ok { "ok" } else { "NOT ok" });
        println!("evidence: {}", report.artifacts_root.display());
        println!("wrote {}", display(&report_path));
    }
    if !report.ok {
        for reason in &report.reasons {
            eprintln!("threadmig validate: {org}: {reason}");
        }
    }
    Ok(if report.ok {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}

fn state(check: &Check) -> &'static str {
    if check.ok {
        "ok"
    } else if check.skipped.is_some() {
        "skipped"
    } else if check.is_non_blocking_failure() {
        "failed (non-blocking)"
    } else {
        "failed"
    }
}

fn describe(check: &Check) -> String {
    if let Some(error) = &check.error {
        return fleet::issues::text::truncate(error, 160);
    }
    if let Some(reason) = &check.skipped {
        return fleet::issues::text::truncate(reason, 160);
    }
    let keys = [
        "attrs",
        "hasRules",
        "summary",
        "entityCounts",
        "records",
        "total",
        "sha256",
        "parsed",
        "legacyRows",
    ];
    keys.iter()
        .filter_map(|key| check.detail.get(*key).map(|value| format!("{key}={value}")))
        .take(2)
        .map(|text| fleet::issues::text::truncate(&text, 100))
        .collect::<Vec<_>>()
        .join(" ")
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0)
}

/// Item-by-item progress on stderr when it is a terminal.
struct Terminal {
    org: String,
    show: bool,
}

impl validate::Observer for Terminal {
    fn now(&self) -> String {
        now_rfc3339()
    }

    fn item_finished(&mut self, item: &str, check: &Check) {
        if self.show {
            eprintln!("{}: {item:<14} {}", self.org, state(check));
        }
    }
}
