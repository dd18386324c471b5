//! `threadmig backfill-conversations --org O --tender-id T`: the conversation-history backfill
//! (`migration::conversation`) for one tender, with its evidence in
//! `<artifacts>/runs/<runId>/` and a JSON summary.
//!
//! Evidence (no message text and no token in any of it):
//! * `01-extract/conversation-bridge.source.json`: what was read (ids, dates, counts);
//! * `02-transform/conversation-bridge.tx.json`: the plan, with the steps' sha256;
//! * `03-apply/conversation-bridge.apply.json`: the transactions sent (not in a dry run);
//! * `04-verify/conversation-bridge.verify.json`: the timeline read back (not in a dry run);
//! * `conversation-bridge.report.json`: the summary printed on stdout;
//! * `manifest.json`: stage `backfill-conversations` with orgId, appId and the counts.
//!
//! Exit codes: 0 when every message of the tender is in its award's timeline and verified;
//! 1 when rows were rejected (each listed with its rule) or the verification found a problem
//! (in a dry run: rejections or a schema that lacks what would be written); 2 on an error
//! (unknown tender, missing schema, a failed transaction, an unreachable server). Awards whose
//! conversation still lives in a legacy context (not migrated yet) are listed under `skipped`
//! and do not change the exit code: the migration moves them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use migration::conversation::{
    self, apply, canonical_uuid, plan, read, ConversationError, ReadOptions, Verify,
};
use migration::evidence::{new_run_id, RunDir, Section};
use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::BackfillConversationsArgs;
use crate::connect::connect;
use crate::output::{now_rfc3339, print_json, write_atomic};
use crate::Outcome;

const SOURCE_FILE: &str = "conversation-bridge.source.json";
const TX_FILE: &str = "conversation-bridge.tx.json";
const APPLY_FILE: &str = "conversation-bridge.apply.json";
const VERIFY_FILE: &str = "conversation-bridge.verify.json";
const REPORT_FILE: &str = "conversation-bridge.report.json";

/// Problems shown in the summary's `verify` (all of them are in the verify file).
const SUMMARY_PROBLEMS: usize = 20;

fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).context("serialising evidence")?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

fn verify_summary(verify: Option<&Verify>) -> Value {
    match verify {
        None => json!({"ok": null, "checked": false, "reason": "dry_run"}),
        Some(verify) => {
            let problems: Vec<&String> = verify
                .awards
                .iter()
                .flat_map(|award| &award.problems)
                .take(SUMMARY_PROBLEMS)
                .collect();
            json!({
                "ok": verify.ok,
                "checked": true,
                "timelineItems": verify.timeline_items,
                "expectedItems": verify.expected_items,
                "itemsFound": verify.items_found,
                "expectedConversationMessages": verify.expected_conversation_messages,
                "conversationMessagesLinked": verify.conversation_messages_linked,
                "problems": problems,
            })
        }
    }
}

pub fn run(args: BackfillConversationsArgs, json: bool) -> anyhow::Result<Outcome> {
    let tender_id = canonical_uuid(&args.tender_id)
        .ok_or_else(|| ConversationError::InvalidTenderId(args.tender_id.clone()))?;
    let run_id = match &args.run_id {
        Some(id) => id.clone(),
        None => {
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.as_millis())
                .unwrap_or(0);
            new_run_id(conversation::RUN_ID_PREFIX, ms)
        }
    };
    let run_dir = RunDir::new(&args.artifacts, &run_id).context("--run-id")?;
    let connection = connect(&args.connect, false)?;
    let app = connection.resolve_app(&args.connect)?;
    let api = connection.api.as_ref();
    let auth = &app.auth;
    let org = app.org_id.clone();
    let page_size = usize::try_from(args.page_size).unwrap_or(usize::MAX);
    let batch_size = usize::try_from(args.batch_size).unwrap_or(usize::MAX);

    let show_progress = std::io::stderr().is_terminal();
    let mut progress = |line: &str| {
        if show_progress {
            eprintln!("backfill-conversations: {line}");
        }
    };
    let where_ = match &org {
        Some(org) => format!("organisation {org} (app {})", auth.app_id),
        None => format!("app {}", auth.app_id),
    };
    let source = read(
        api,
        auth,
        &tender_id,
        ReadOptions { page_size },
        &mut progress,
    )
    .with_context(|| where_.clone())?;
    let plan = plan(&source);

    // The stage record and the summary share these.
    let record = |status: &str, extra: Value| {
        let mut record = json!({
            "status": status,
            "orgId": org,
            "appId": auth.app_id,
            "tenderId": tender_id,
            "dryRun": args.dry_run,
            "stepsSha256": plan.steps_sha256,
            "counts": plan.counts,
        });
        if let (Some(record), Value::Object(extra)) = (record.as_object_mut(), extra) {
            record.extend(extra);
        }
        record
    };
    let finish = |status: &str, extra: Value, notes: &[String]| -> anyhow::Result<()> {
        run_dir
            .record_stage(
                conversation::STAGE,
                record(status, extra),
                notes,
                &now_rfc3339(),
            )
            .with_context(|| {
                format!("recording the run manifest in {}", run_dir.path().display())
            })?;
        Ok(())
    };

    let extract = run_dir.create_section(Section::Extract)?;
    write_json(&extract.join(SOURCE_FILE), &source)?;
    let transform = run_dir.create_section(Section::Transform)?;
    write_json(&transform.join(TX_FILE), &plan)?;

    let (applied, verify) = if args.dry_run {
        (None, None)
    } else {
        let applied = match apply(api, auth, &plan, batch_size) {
            Ok(applied) => applied,
            Err(error) => {
                finish("failed", json!({"error": error.to_string()}), &[])?;
                return Err(error).with_context(|| where_.clone());
            }
        };
        let apply_dir = run_dir.create_section(Section::Apply)?;
        write_json(&apply_dir.join(APPLY_FILE), &applied)?;
        if let Some(failure) = &applied.failed {
            let message = format!(
                "{where_}: transaction of steps {}..{} of {} failed ({} batches applied before it; \
                 running the command again completes the backfill): {}",
                failure.from,
                failure.to,
                plan.step_count,
                applied.batches.len(),
                failure.error
            );
            finish("failed", json!({"error": message}), &[])?;
            anyhow::bail!(message);
        }
        let verify = match conversation::verify(api, auth, &plan, page_size) {
            Ok(verify) => verify,
            Err(error) => {
                finish("failed", json!({"error": error.to_string()}), &[])?;
                return Err(error).with_context(|| where_.clone());
            }
        };
        let verify_dir = run_dir.create_section(Section::Verify)?;
        write_json(&verify_dir.join(VERIFY_FILE), &verify)?;
        (Some(applied), Some(verify))
    };

    let counts = plan.counts;
    let mut rejected_by_rule: BTreeMap<&str, u64> = BTreeMap::new();
    for decision in &plan.rejected {
        *rejected_by_rule.entry(decision.rule).or_default() += 1;
    }
    let awards: Vec<Value> = plan
        .awards
        .iter()
        .map(|award| {
            json!({
                "awardId": award.award_id,
                "contextKey": award.context_key,
                "contextId": award.context_id,
                "threadId": award.thread_id,
                "context": award.context,
                "thread": award.thread,
                "whatsappMessages": award.whatsapp_messages,
                "conversationMessages": award.conversation_messages,
                "itemsCreated": award.items_created,
                "itemsExisting": award.items_existing,
            })
        })
        .collect();
    let findings = counts.rejected > 0
        || verify.as_ref().is_some_and(|verify| !verify.ok)
        || (args.dry_run && !plan.schema_missing.is_empty());
    let status = match (args.dry_run, findings) {
        (true, _) => "planned",
        (false, false) => "backfilled_verified",
        (false, true) => "backfilled_with_findings",
    };
    let summary = json!({
        "org": org,
        "appId": auth.app_id,
        "tenderId": tender_id,
        "dryRun": args.dry_run,
        "status": status,
        "awards": awards,
        "conversationIds": source.conversation_ids.len(),
        "messages": counts.messages,
        "conversationMessages": counts.conversation_messages,
        "threadsCreated": counts.threads_created,
        "contextsCreated": counts.contexts_created,
        "itemsCreated": counts.items_created,
        "itemsExisting": counts.items_existing,
        "linksCreated": counts.links_created,
        "rejected": counts.rejected,
        "rejectedByRule": rejected_by_rule,
        "skipped": plan.skipped,
        "schemaMissing": plan.schema_missing,
        "tx": {
            "steps": plan.step_count,
            "stepsSha256": plan.steps_sha256,
            "batches": applied.as_ref().map(|applied| applied.batches.len()),
        },
        "verify": verify_summary(verify.as_ref()),
        "runId": run_id,
        "evidence": run_dir.path().display().to_string(),
    });
    write_json(&run_dir.path().join(REPORT_FILE), &summary)?;
    let notes: Vec<String> = if args.dry_run {
        vec![format!(
            "{}: dry run, nothing was written to app {}",
            conversation::STAGE,
            auth.app_id
        )]
    } else {
        Vec::new()
    };
    finish(
        status,
        json!({"verifyOk": verify.as_ref().map(|verify| verify.ok), "rejectedByRule": rejected_by_rule}),
        &notes,
    )?;

    if json {
        print_json(&summary)?;
    } else {
        let verb = if args.dry_run {
            "would create"
        } else {
            "created"
        };
        println!(
            "tender {tender_id}: {} awards, {} messages in {} conversations ({where_})",
            counts.awards,
            counts.messages,
            source.conversation_ids.len()
        );
        for award in &plan.awards {
            println!(
                "  {}: context {} ({:?}), thread {} ({:?}), {} items created, {} existing",
                award.context_key,
                award.context_id,
                award.context,
                award.thread_id,
                award.thread,
                award.items_created,
                award.items_existing
            );
        }
        println!(
            "{verb}: {} threads, {} contexts, {} items, {} links; {} items already there",
            counts.threads_created,
            counts.contexts_created,
            counts.items_created,
            counts.links_created,
            counts.items_existing
        );
        if !plan.schema_missing.is_empty() {
            println!("schema lacks: {}", plan.schema_missing.join(", "));
        }
        for decision in &plan.skipped {
            println!(
                "skipped: {} {}: {} ({})",
                decision.namespace, decision.id, decision.rule, decision.detail
            );
        }
        println!("rejected: {}", counts.rejected);
        for decision in &plan.rejected {
            println!(
                "  {} {}: {} ({})",
                decision.namespace, decision.id, decision.rule, decision.detail
            );
        }
        match &verify {
            Some(verify) => {
                println!(
                    "verify: {} ({} of {} items in the timelines, {} of {} conversation messages linked)",
                    if verify.ok { "ok" } else { "FAILED" },
                    verify.items_found,
                    verify.expected_items,
                    verify.conversation_messages_linked,
                    verify.expected_conversation_messages
                );
                for problem in verify.awards.iter().flat_map(|award| &award.problems) {
                    println!("  {problem}");
                }
            }
            None => println!("verify: not run (dry run)"),
        }
        println!("evidence: {}", run_dir.path().display());
    }
    Ok(if findings {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}
