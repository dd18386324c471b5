//! `threadmig gen`: the deterministic synthetic legacy fleet (files and/or an embedded
//! workspace) and its manifest. The generator lives in `migration::gen`; this module parses
//! the options, wires the workspace's engine and org directory, shows progress and prints the
//! summary.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{bail, Context};
use instant_local::engine::LocalEngine;
use instant_local::store::{OrgCredentials, OrgRecord};
use migration::gen::{
    generate, CaseKind, ContentMode, EngineTarget, FileFormat, GenConfig, OrgRegistration, OrgRole,
    Preset, Progress, Targets,
};
use serde_json::{json, Map, Value};

use crate::cli::GenArgs;
use crate::output;
use crate::Outcome;

pub fn run(args: GenArgs, json: bool) -> anyhow::Result<Outcome> {
    let config = config(&args)?;
    if args.out.is_none() && args.workspace.is_none() {
        bail!("nothing to write: give --out DIR (files) and/or --workspace DIR (embedded engine)");
    }
    let format = FileFormat::parse(&args.format).context("--format")?;
    let manifest_dir = match (&args.out, &args.workspace) {
        (Some(out), _) => out.clone(),
        (None, Some(workspace)) => workspace.join("gen"),
        (None, None) => unreachable!("checked above"),
    };
    let engine = match &args.workspace {
        Some(dir) => Some(LocalEngine::open(dir).map_err(|error| anyhow::anyhow!("{error}"))?),
        None => None,
    };
    let directory = engine.clone();
    let mut register = move |org: OrgRegistration| -> Result<(), String> {
        let Some(engine) = &directory else {
            return Ok(());
        };
        engine
            .store()
            .upsert_org(&OrgRecord {
                org_id: org.org_id,
                name: org.name,
                slug: org.slug,
                app_id: org.app_id,
                credentials: if org.credentials == "present" {
                    OrgCredentials::Present
                } else {
                    OrgCredentials::Missing
                },
            })
            .map_err(|error| error.to_string())
    };
    let mut targets = Targets {
        files: args.out.clone().map(|dir| (dir, format)),
        engine: engine.as_ref().map(|engine| EngineTarget {
            api: engine,
            register: &mut register,
            batch_size: args.batch_size,
        }),
        manifest_dir,
    };
    let started = Instant::now();
    let show = std::io::stderr().is_terminal();
    let mut progress = |p: Progress| {
        if show {
            eprint!(
                "\rthreadmig gen: org {}/{}: {} events of ~{}, {} rows   ",
                p.org_index + 1,
                p.orgs,
                p.events,
                p.target_events,
                p.rows
            );
        }
    };
    // The error names the file or org and ends with its cause: no second copy of the chain.
    let report = generate(&config, &mut targets, &mut progress)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    if show {
        eprintln!();
    }
    let elapsed = started.elapsed();
    let rows = report.total_rows();
    let cases = report.total_cases();
    let injected: u64 = cases.values().sum();
    if json {
        let mut row_map = Map::new();
        for (ns, count) in &rows {
            row_map.insert(ns.name().into(), json!(count));
        }
        let mut case_map = Map::new();
        for (kind, count) in &cases {
            case_map.insert(kind.id().into(), json!(count));
        }
        let orgs: Vec<Value> = report
            .orgs
            .iter()
            .map(|org| {
                json!({
                    "orgId": org.plan.org_id,
                    "slug": org.plan.slug,
                    "role": org.plan.role.as_str(),
                    "credentials": org.credentials,
                    "appId": org.app_id,
                    "events": org.rows.get(&migration::gen::Ns::ContextEvents).copied().unwrap_or(0),
                    "rows": org.rows.values().sum::<u64>(),
                    "cases": org.cases.values().sum::<u64>(),
                    "transactions": org.batches,
                })
            })
            .collect();
        output::print_json(&json!({
            "preset": config.preset.as_str(),
            "seed": config.seed,
            "content": config.content.as_str(),
            "orgs": orgs,
            "rows": row_map,
            "casesInjected": injected,
            "cases": case_map,
            "excludedCases": report.excluded.iter().map(|kind| kind.id()).collect::<Vec<_>>(),
            "out": args.out.as_ref().map(|dir| dir.display().to_string()),
            "format": args.out.as_ref().map(|_| format.as_str()),
            "workspace": args.workspace.as_ref().map(|dir| dir.display().to_string()),
            "manifest": report.manifest.display().to_string(),
            "elapsedMs": elapsed.as_millis() as u64,
        }))?;
    } else {
        let events = rows
            .get(&migration::gen::Ns::ContextEvents)
            .copied()
            .unwrap_or(0);
        let total: u64 = rows.values().sum();
        println!(
            "generated {} orgs: {events} context_events, {total} rows, {injected} cases ({} kinds) in {:.1}s",
            report.orgs.len(),
            cases.len(),
            elapsed.as_secs_f64()
        );
        for (ns, count) in &rows {
            println!("  {:<22} {count}", ns.name());
        }
        if let Some(out) = &args.out {
            println!("files: {} ({})", out.display(), format.as_str());
        }
        if let Some(workspace) = &args.workspace {
            println!("workspace: {}", workspace.display());
        }
        println!("manifest: {}", report.manifest.display());
    }
    Ok(Outcome::Ok)
}

fn config(args: &GenArgs) -> anyhow::Result<GenConfig> {
    let preset = Preset::parse(&args.preset).context("--preset")?;
    let mut config = GenConfig::new(preset, args.seed);
    if let Some(orgs) = args.orgs {
        config.orgs = orgs;
    }
    if let Some(content) = &args.content {
        config.content = match content.as_str() {
            "lean" => ContentMode::Lean,
            _ => ContentMode::Realistic,
        };
    }
    config.roles = if args.pipeline_fleet {
        OrgRole::PIPELINE.to_vec()
    } else {
        args.roles
            .iter()
            .map(|role| {
                OrgRole::parse(role.trim()).with_context(|| {
                    format!(
                        "--roles: unknown role `{role}` (known: {})",
                        OrgRole::ALL.map(OrgRole::as_str).join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    if args.orgs.is_none() && config.roles.len() > config.orgs {
        config.orgs = config.roles.len();
    }
    config.target_events = args.events;
    config.engine_compatible = args.workspace.is_some();
    for (id, rate) in &args.rates.rates {
        let kind = CaseKind::from_id(id).with_context(|| format!("unknown case `{id}`"))?;
        config.rates.set(kind, *rate);
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    config
        .validate()
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(config)
}
