//! `threadmig tx-plan` (02-transform -> 03-apply/tx-plan.*) and `threadmig apply` (the plan
//! through the port, journaled; `--dry-run` shows the plan and the target and sends nothing).
//!
//! Approval: applying needs the plan's sha256 as the user approved it, `--approve <sha256>`,
//! or, on a terminal, typed in after the plan summary was shown. Refusals (a plan that is not
//! the approved one, destructive steps without `--allow-destructive`, no approval given at the
//! prompt) exit 1 with nothing applied; errors (bad input, a batch the server refused) exit 2.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use migration::apply::{
    apply, read_journal, ApplyError, ApplyOptions, ApplyPaths, ApplySummary, Progress,
};
use migration::evidence::{RunDir, Section};
use migration::txplan::{build_plan, check_plan, PlanCheck, PlanError, PlanOptions, PLAN_FILE};
use serde_json::{json, Value};

use crate::cli::{ApplyArgs, TxPlanArgs};
use crate::connect::{connect, Backend, ResolvedApp};
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

pub fn run_tx_plan(args: TxPlanArgs, json: bool) -> anyhow::Result<Outcome> {
    let run = RunDir::new(&args.artifacts, &args.run_id)?;
    let (summary, elapsed) = plan_run(&run, args.batch_size)?;
    if json {
        let mut out = serde_json::to_value(&summary)?;
        if let Value::Object(map) = &mut out {
            map.insert(
                "plan".into(),
                json!(run.section(Section::Apply).join(PLAN_FILE)),
            );
            map.insert("elapsedMs".into(), json!(elapsed.as_millis() as u64));
        }
        print_json(&out)?;
    } else {
        println!(
            "tx plan: {} steps ({}) in {} batches of at most {}",
            summary.steps,
            by_op(&summary.steps_by_op),
            summary.batches,
            summary.batch_size
        );
        println!("sha256:  {}", summary.sha256);
        println!(
            "written: {}",
            run.section(Section::Apply).join(PLAN_FILE).display()
        );
    }
    Ok(Outcome::Ok)
}

/// Builds the run's plan and records the `tx-plan` stage.
fn plan_run(
    run: &RunDir,
    batch_size: u64,
) -> anyhow::Result<(migration::txplan::PlanSummary, Duration)> {
    let started = Instant::now();
    let batch_size = usize::try_from(batch_size).context("--batch-size")?;
    let summary = build_plan(
        &run.section(Section::Transform),
        &run.section(Section::Apply),
        &PlanOptions::in_run(batch_size, run.section(Section::Extract)),
    )?;
    let elapsed = started.elapsed();
    run.record_stage(
        "tx-plan",
        json!({
            "status": "planned",
            "steps": summary.steps,
            "batches": summary.batches,
            "sha256": summary.sha256,
            "batchSize": summary.batch_size,
            "stepsByOp": summary.steps_by_op,
        }),
        &[],
        &now_rfc3339(),
    )?;
    Ok((summary, elapsed))
}

fn by_op(counts: &std::collections::BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run_apply(args: ApplyArgs, json: bool) -> anyhow::Result<Outcome> {
    let run = RunDir::new(&args.artifacts, &args.run_id)?;
    let apply_dir = run.section(Section::Apply);
    let plan_path = match &args.plan {
        Some(path) => path.clone(),
        None => {
            let path = apply_dir.join(PLAN_FILE);
            if !path.exists() {
                let (summary, _) = plan_run(&run, args.batch_size)?;
                if !json {
                    eprintln!(
                        "threadmig apply: built the plan: {} steps in {} batches, sha256 {}",
                        summary.steps, summary.batches, summary.sha256
                    );
                }
            }
            path
        }
    };
    let connection = connect(&args.connect, false)?;
    let app = connection.resolve_app(&args.connect)?;
    let backend = match &connection.backend {
        Backend::Embedded { .. } => "embedded".to_string(),
        Backend::Http { base_url } => base_url.clone(),
    };

    let check = match check_plan(&plan_path, args.allow_destructive) {
        Ok(check) => check,
        Err(error @ (PlanError::Destructive { .. } | PlanError::Unsupported { .. })) => {
            return refused(json, "plan_refused", &error.to_string());
        }
        Err(error) => return Err(error.into()),
    };

    if args.dry_run {
        return dry_run(&args, &run, &plan_path, &check, &app, &backend, json);
    }

    let approved = match &args.approve {
        Some(sha) => sha.clone(),
        None => match confirm(&check, &app, &backend, &plan_path)? {
            Some(sha) => sha,
            None => return refused(json, "not_approved", "not approved: nothing was applied"),
        },
    };

    let show = std::io::stderr().is_terminal();
    let mut on_progress = |p: &Progress| {
        if show {
            eprint!("\r{}", progress_line(p));
        }
    };
    let result = apply(
        connection.api.as_ref(),
        &app.auth,
        &ApplyPaths {
            plan: plan_path.clone(),
            dir: apply_dir.clone(),
        },
        &ApplyOptions {
            approved_sha256: approved,
            allow_destructive: args.allow_destructive,
            concurrency: usize::try_from(args.concurrency).unwrap_or(usize::MAX),
            resume: args.resume,
        },
        &mut on_progress,
    );
    if show {
        eprintln!();
    }
    let stage = |status: &str, summary: Option<&ApplySummary>, error: Option<String>| {
        let mut record = json!({
            "status": status,
            "orgId": app.org_id,
            "appId": app.auth.app_id,
            "backend": backend,
            "plan": plan_path,
            "sha256": check.sha256,
            "batches": check.batch_count(),
            "steps": check.steps,
            "concurrency": args.concurrency,
            "allowDestructive": args.allow_destructive,
        });
        if let (Value::Object(map), Some(summary)) = (&mut record, summary) {
            map.insert("batchesCommitted".into(), json!(summary.batches_committed));
            map.insert("batchesSkipped".into(), json!(summary.batches_skipped));
            map.insert("stepsApplied".into(), json!(summary.steps_applied));
            map.insert("resumed".into(), json!(summary.resumed));
            map.insert("complete".into(), json!(summary.complete));
        }
        if let (Value::Object(map), Some(error)) = (&mut record, error) {
            map.insert("error".into(), json!(error));
        }
        run.record_stage("apply", record, &[], &now_rfc3339())
    };
    match result {
        Ok(summary) => {
            stage("applied", Some(&summary), None)?;
            let rate = rate(summary.steps_applied, summary.elapsed);
            if json {
                let mut out = serde_json::to_value(&summary)?;
                if let Value::Object(map) = &mut out {
                    map.insert("orgId".into(), json!(app.org_id));
                    map.insert("appId".into(), json!(app.auth.app_id));
                    map.insert(
                        "elapsedMs".into(),
                        json!(summary.elapsed.as_millis() as u64),
                    );
                    map.insert("stepsPerSecond".into(), json!(rate.round()));
                }
                print_json(&out)?;
            } else if summary.batches_committed == 0 && summary.complete {
                println!(
                    "already applied: the journal holds all {} batches of plan {}; nothing sent",
                    summary.batches, summary.sha256
                );
            } else {
                println!(
                    "applied {} steps in {} batches to app {} ({} batches already journaled), \
                     {:.0} steps/s",
                    summary.steps_applied,
                    summary.batches_committed,
                    app.auth.app_id,
                    summary.batches_skipped,
                    rate
                );
                println!(
                    "journal: {}",
                    apply_dir.join(migration::apply::JOURNAL_FILE).display()
                );
            }
            Ok(Outcome::Ok)
        }
        Err(error @ ApplyError::ShaMismatch { .. }) => {
            refused(json, "sha256_mismatch", &error.to_string())
        }
        Err(ApplyError::Plan(
            error @ (PlanError::Destructive { .. } | PlanError::Unsupported { .. }),
        )) => refused(json, "plan_refused", &error.to_string()),
        Err(error @ (ApplyError::Batch { .. } | ApplyError::PlanChanged { .. })) => {
            // Part of the plan may be committed: that is evidence.
            stage("failed", None, Some(error.to_string()))?;
            Err(error.into())
        }
        Err(error) => Err(error.into()),
    }
}

fn rate(steps: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        steps as f64 / seconds
    } else {
        0.0
    }
}

/// A refusal: nothing was applied; exit 1.
fn refused(json: bool, code: &str, message: &str) -> anyhow::Result<Outcome> {
    eprintln!("threadmig: refused: {message}");
    if json {
        print_json(&json!({"ok": false, "refused": code, "message": message}))?;
    }
    Ok(Outcome::Findings)
}

fn dry_run(
    args: &ApplyArgs,
    run: &RunDir,
    plan_path: &Path,
    check: &PlanCheck,
    app: &ResolvedApp,
    backend: &str,
    json: bool,
) -> anyhow::Result<Outcome> {
    let journal = read_journal(&run.section(Section::Apply))?;
    let journaled = journal
        .entries
        .iter()
        .filter(|entry| entry.plan == check.sha256)
        .map(|entry| entry.batch)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let summary = json!({
        "dryRun": true,
        "sha256": check.sha256,
        "steps": check.steps,
        "batches": check.batch_count(),
        "largestBatch": check.largest_batch,
        "stepsByOp": check.steps_by_op,
        "stepsByNamespace": check.steps_by_namespace,
        "destructive": check.destructive,
        "orgId": app.org_id,
        "appId": app.auth.app_id,
        "backend": backend,
        "plan": plan_path,
        "batchesJournaled": journaled,
    });
    run.record_stage(
        "apply-dry-run",
        json!({
            "status": "reviewed",
            "orgId": app.org_id,
            "appId": app.auth.app_id,
            "sha256": check.sha256,
            "steps": check.steps,
            "batches": check.batch_count(),
            "allowDestructive": args.allow_destructive,
        }),
        &[],
        &now_rfc3339(),
    )?;
    if json {
        print_json(&summary)?;
    } else {
        print!("{}", plan_text(check, app, backend, plan_path));
        println!(
            "journal: {journaled} of {} batches committed",
            check.batch_count()
        );
        println!(
            "nothing was sent. To apply: threadmig apply … --approve {}",
            check.sha256
        );
    }
    Ok(Outcome::Ok)
}

/// The plan as a person reviews it before approving.
fn plan_text(check: &PlanCheck, app: &ResolvedApp, backend: &str, plan_path: &Path) -> String {
    let mut out = String::new();
    out.push_str(&format!("plan:    {}\n", plan_path.display()));
    out.push_str(&format!("sha256:  {}\n", check.sha256));
    out.push_str(&format!(
        "target:  app {}{} ({backend})\n",
        app.auth.app_id,
        app.org_id
            .as_deref()
            .map(|org| format!(" of organisation {org}"))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "steps:   {} in {} batches (largest {}): {}\n",
        check.steps,
        check.batch_count(),
        check.largest_batch,
        by_op(&check.steps_by_op)
    ));
    for (ns, ops) in &check.steps_by_namespace {
        out.push_str(&format!("  {ns:<20} {}\n", by_op(ops)));
    }
    if !check.destructive.is_empty() {
        out.push_str(&format!("DESTRUCTIVE: {}\n", by_op(&check.destructive)));
    }
    out
}

/// Interactive approval on a terminal: the plan is shown, the user types its sha256 (the first
/// 12 characters suffice). `None` when the user does not approve.
fn confirm(
    check: &PlanCheck,
    app: &ResolvedApp,
    backend: &str,
    plan_path: &Path,
) -> anyhow::Result<Option<String>> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!(
            "apply writes to app {}: give --approve <sha256> with the sha256 of the plan you \
             reviewed (threadmig apply --dry-run shows the plan and its sha256)",
            app.auth.app_id
        );
    }
    let mut stderr = std::io::stderr().lock();
    write!(
        stderr,
        "{}Type the plan's sha256 (its first 12 characters are enough) to apply it: ",
        plan_text(check, app, backend, plan_path)
    )?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim().to_ascii_lowercase();
    Ok((answer.len() >= 12 && check.sha256.starts_with(&answer)).then(|| check.sha256.clone()))
}

fn progress_line(p: &Progress) -> String {
    const WIDTH: u64 = 24;
    let filled = (p.batches_done * WIDTH)
        .checked_div(p.batches_total)
        .unwrap_or(WIDTH) as usize;
    let eta = match p.eta() {
        Some(eta) => format!("ETA {}s", eta.as_secs()),
        None => "ETA -".to_string(),
    };
    format!(
        "threadmig apply [{}{}] {}/{} batches, {}/{} steps, {:.0} steps/s, {eta}   ",
        "#".repeat(filled),
        " ".repeat(WIDTH as usize - filled.min(WIDTH as usize)),
        p.batches_done,
        p.batches_total,
        p.steps_done,
        p.steps_total,
        p.steps_per_second()
    )
}
