//! `threadmig tx-plan` and `threadmig apply`: the plan and its stage, dry run, approval,
//! refusals and their exit codes, idempotency, and a real SIGKILL during apply followed by
//! `--resume`, compared with an uninterrupted run in a second workspace.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use instant_api::{AppAuth, InstantApi, SchemaPushRequest};
use instant_local::engine::LocalEngine;
use instant_schema::{BuiltinSchema, Cardinality, Link, LinkEnd};
use serde_json::Value;

use crate::{copy_dir, env_or, temp_dir, threadmig};

/// One generated org in an embedded workspace, transformed into a run folder, its app
/// carrying the target schema.
struct Org {
    root: PathBuf,
    workspace: PathBuf,
    artifacts: PathBuf,
    run_id: &'static str,
    org_id: String,
}

impl Org {
    fn path(&self, relative: &str) -> PathBuf {
        self.artifacts.join("runs").join(self.run_id).join(relative)
    }

    fn s(path: &Path) -> String {
        path.to_string_lossy().into_owned()
    }

    fn apply_args(&self, extra: &[&str]) -> Vec<String> {
        self.stage_args("apply", extra)
    }

    /// `<command>` of this org's run against its workspace app, then `extra`.
    fn stage_args(&self, command: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            command,
            "--run-id",
            self.run_id,
            "--artifacts",
            &Org::s(&self.artifacts),
            "--workspace",
            &Org::s(&self.workspace),
            "--org",
            &self.org_id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn auth(&self, engine: &LocalEngine) -> AppAuth {
        let app_id = engine
            .store()
            .orgs()
            .unwrap()
            .into_iter()
            .find(|org| org.org_id == self.org_id)
            .and_then(|org| org.app_id)
            .unwrap();
        let token = engine
            .store()
            .org_admin_token(&self.org_id)
            .unwrap()
            .unwrap();
        AppAuth::new(app_id, token)
    }

    /// The content digest of the thread namespaces in the org's app.
    fn digest(&self) -> String {
        let engine = LocalEngine::open(&self.workspace).unwrap();
        let auth = self.auth(&engine);
        let namespaces: Vec<&str> = migration::TargetNamespace::ALL
            .iter()
            .map(|ns| ns.as_str())
            .collect();
        migration::apply::content_digest(&engine, &auth, &namespaces, 500)
            .unwrap()
            .sha256
    }
}

impl Drop for Org {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn run_ok(args: &[&str]) -> Value {
    let run = threadmig(args, None);
    assert_eq!(
        run.code, 0,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null)
}

/// gen (one small org, fewer events) -> transform -> target schema pushed.
fn org(name: &str, events: u32) -> Org {
    let root = temp_dir(&format!("apply-{name}"));
    let workspace = root.join("ws");
    let gen_dir = root.join("gen");
    let artifacts = root.join("artifacts");
    let events = events.to_string();
    let generated = run_ok(&[
        "--json",
        "gen",
        "--preset",
        "small",
        "--seed",
        "21",
        "--orgs",
        "1",
        "--events",
        &events,
        "--workspace",
        &Org::s(&workspace),
        "--out",
        &Org::s(&gen_dir),
        "--format",
        "ndjson",
    ]);
    let org_id = generated["orgs"][0]["orgId"].as_str().unwrap().to_string();
    let slug = generated["orgs"][0]["slug"].as_str().unwrap().to_string();
    let org = Org {
        root,
        workspace,
        artifacts,
        run_id: "run-apply-1",
        org_id,
    };
    run_ok(&[
        "transform",
        "--input",
        &Org::s(&gen_dir.join(&slug)),
        "--out",
        &Org::s(&org.path("")),
    ]);
    let engine = LocalEngine::open(&org.workspace).unwrap();
    let auth = org.auth(&engine);
    push_target_schema(&engine, &auth);
    org
}

/// The app's schema plus thread V1 plus the esolbay link `thread_items.whatsappMessages`.
fn push_target_schema(api: &dyn InstantApi, auth: &AppAuth) {
    let mut schema = api.schema_pull(auth).unwrap().schema.to_dsl();
    let thread = BuiltinSchema::ThreadV1.load().unwrap().dsl().into_owned();
    schema.entities.extend(thread.entities);
    schema.links.extend(thread.links);
    let end = |on: &str, label: &str| LinkEnd {
        on: on.into(),
        has: Cardinality::Many,
        label: label.into(),
        required: None,
        on_delete: None,
    };
    schema.links.insert(
        "threadItemsWhatsappMessages".into(),
        Link::new(
            end("thread_items", "whatsappMessages"),
            end("whatsapp_messages", "threadItems"),
        ),
    );
    api.schema_push(
        auth,
        &SchemaPushRequest {
            schema: schema.to_dsl_json(),
            check_types: false,
            supports_background_updates: false,
        },
    )
    .unwrap();
}

fn journal_batches(org: &Org) -> Vec<u64> {
    migration::apply::read_journal(&org.path("03-apply"))
        .unwrap()
        .entries
        .iter()
        .map(|entry| entry.batch)
        .collect()
}

fn manifest(org: &Org) -> Value {
    serde_json::from_slice(&std::fs::read(org.path("manifest.json")).unwrap()).unwrap()
}

#[test]
fn plan_dry_run_refusals_apply_and_a_second_apply() {
    let org = org("flow", 60);
    let empty = org.digest();
    let run_id = org.run_id;
    let artifacts = Org::s(&org.artifacts);

    // Without an approval, off a terminal: an error naming the flag, nothing sent.
    let args = org.apply_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let unapproved = threadmig(&args, None);
    assert_eq!(unapproved.code, 2, "{}", unapproved.stderr);
    assert!(
        unapproved.stderr.contains("--approve <sha256>"),
        "{}",
        unapproved.stderr
    );

    // tx-plan: the summary on stdout, the stage in the manifest.
    let plan = run_ok(&[
        "--json",
        "tx-plan",
        "--run-id",
        run_id,
        "--artifacts",
        &artifacts,
        "--batch-size",
        "25",
    ]);
    let sha = plan["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    assert!(plan["steps"].as_u64().unwrap() > 100);
    assert_eq!(plan["batchSize"], 25);
    let stage = &manifest(&org)["stages"]["tx-plan"];
    assert_eq!(stage["sha256"], sha.as_str());
    assert_eq!(stage["batches"], plan["batches"]);

    // Dry run: the plan and the target, nothing sent.
    let args = org.apply_args(&["--dry-run"]);
    let mut json_args = vec!["--json"];
    json_args.extend(args.iter().map(String::as_str));
    let dry = run_ok(&json_args);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["sha256"], sha.as_str());
    assert_eq!(dry["steps"], plan["steps"]);
    assert_eq!(dry["batches"], plan["batches"]);
    assert_eq!(dry["stepsByOp"], plan["stepsByOp"]);
    assert_eq!(dry["orgId"], org.org_id.as_str());
    assert_eq!(dry["batchesJournaled"], 0);
    assert!(
        dry["stepsByNamespace"]["thread_items"]["update"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(org.digest(), empty, "the dry run wrote to the target");
    assert!(!org.path("03-apply/journal.ndjson").exists());
    assert_eq!(
        manifest(&org)["stages"]["apply-dry-run"]["sha256"],
        sha.as_str()
    );
    assert!(manifest(&org)["stages"].get("apply").is_none());

    // The wrong sha256: refused, exit 1, nothing sent.
    let wrong = format!("{}0", &sha[..63]);
    let args = org.apply_args(&["--approve", &wrong]);
    let mut json_args = vec!["--json"];
    json_args.extend(args.iter().map(String::as_str));
    let refused = threadmig(&json_args, None);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let out: Value = serde_json::from_str(refused.stdout.trim()).unwrap();
    assert_eq!(out["refused"], "sha256_mismatch");
    assert!(refused.stderr.contains(&sha), "{}", refused.stderr);
    assert_eq!(org.digest(), empty);

    // The approved plan: applied.
    let args = org.apply_args(&["--approve", &sha, "--concurrency", "3"]);
    let mut json_args = vec!["--json"];
    json_args.extend(args.iter().map(String::as_str));
    let applied = run_ok(&json_args);
    assert_eq!(applied["batchesCommitted"], plan["batches"]);
    assert_eq!(applied["stepsApplied"], plan["steps"]);
    assert_eq!(applied["resumed"], false);
    assert_eq!(applied["sha256"], sha.as_str());
    let after = org.digest();
    assert_ne!(after, empty);
    let stage = &manifest(&org)["stages"]["apply"];
    assert_eq!(stage["status"], "applied");
    assert_eq!(stage["orgId"], org.org_id.as_str());
    assert!(stage["appId"].is_string());
    assert_eq!(stage["complete"], true);

    // Again: nothing sent, same data.
    let again = run_ok(&json_args);
    assert_eq!(again["batchesCommitted"], 0);
    assert_eq!(again["batchesSkipped"], plan["batches"]);
    assert_eq!(again["resumed"], true);
    assert_eq!(org.digest(), after);

    // An edited plan file: refused with exit 1, the journal untouched.
    let plan_path = org.path("03-apply/tx-plan.ndjson");
    let mut bytes = std::fs::read(&plan_path).unwrap();
    let at = bytes.iter().position(|b| *b == b'T').unwrap();
    bytes[at] = b't';
    std::fs::write(&plan_path, &bytes).unwrap();
    let journal = std::fs::read(org.path("03-apply/journal.ndjson")).unwrap();
    let refused = threadmig(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("not the approved"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read(org.path("03-apply/journal.ndjson")).unwrap(),
        journal
    );

    // No admin token anywhere in the evidence.
    let engine = LocalEngine::open(&org.workspace).unwrap();
    let token = org.auth(&engine).admin_token.expose().to_string();
    for path in files(&org.path("")) {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(!text.contains(&token), "{} holds the token", path.display());
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A small deterministic-enough delay source (no RNG crate): the clock's nanoseconds.
fn random_ms(max: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos / 7919) % max.max(1)
}

#[test]
fn sigkill_during_apply_then_resume_ends_like_an_uninterrupted_run() {
    let clean = org("clean", 80);
    let killed = org("killed", 80);
    let plan_args = |org: &Org| {
        run_ok(&[
            "--json",
            "tx-plan",
            "--run-id",
            org.run_id,
            "--artifacts",
            &Org::s(&org.artifacts),
            "--batch-size",
            "16",
        ])
    };
    let plan = plan_args(&clean);
    assert_eq!(
        plan_args(&killed)["sha256"],
        plan["sha256"],
        "same data, same plan"
    );
    let sha = plan["sha256"].as_str().unwrap().to_string();
    let batches = plan["batches"].as_u64().unwrap();

    let started = Instant::now();
    let args = clean.apply_args(&["--approve", &sha, "--concurrency", "2"]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let full = started.elapsed();
    let expected = clean.digest();
    eprintln!("uninterrupted apply: {batches} batches in {full:?}");

    // Kill -9 at a few random moments of an apply that is under way (once the journal has
    // grown by a random number of batches, plus a random delay), resuming each time; then
    // let the last resume finish.
    let journal = killed.path("03-apply/journal.ndjson");
    let journaled_lines = || {
        std::fs::read(&journal)
            .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count() as u64)
            .unwrap_or(0)
    };
    let mut points = Vec::new();
    let mut interrupted = 0;
    for round in 0..4u64 {
        let before = journaled_lines();
        let remaining = batches - before;
        let grow = 1 + random_ms(remaining / (5 - round)).min(remaining.saturating_sub(2));
        let delay = Duration::from_millis(random_ms(25));
        let args = killed.apply_args(&["--approve", &sha, "--concurrency", "2", "--resume"]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_threadmig"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + full * 4 + Duration::from_secs(5);
        while journaled_lines() < before + grow
            && child.try_wait().unwrap().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(delay);
        // `kill` is SIGKILL on Unix: no destructor, no flush, no lock release.
        let _ = child.kill();
        let status = child.wait().unwrap();
        let after = journaled_lines();
        points.push((before, grow, delay, after));
        if status.code().is_none() && after < batches {
            interrupted += 1;
        }
    }
    let args = killed.apply_args(&["--approve", &sha, "--concurrency", "2", "--resume"]);
    let mut json_args = vec!["--json"];
    json_args.extend(args.iter().map(String::as_str));
    let finished = run_ok(&json_args);
    assert_eq!(finished["complete"], true, "kill points {points:?}");
    assert_eq!(
        killed.digest(),
        expected,
        "kill points {points:?}: resumed data differs from the uninterrupted run"
    );
    let journaled = journal_batches(&killed);
    let unique: BTreeSet<u64> = journaled.iter().copied().collect();
    assert_eq!(
        unique.len(),
        journaled.len(),
        "a batch journaled twice: {journaled:?}"
    );
    assert_eq!(unique.len() as u64, batches);
    eprintln!("kill points (journaled before, growth awaited, delay, journaled after): {points:?}");
    assert!(
        interrupted >= 3,
        "only {interrupted} kills landed during a run: {points:?} (a clean run takes {full:?})"
    );
}

/// A `thread_contexts` row that already held a legacy context's key (runtime self-heal) was not
/// extracted, so the transform gave the key to the migrated context too and apply failed with
/// `record-not-unique` on `thread_contexts.key`; verify then counted the pre-existing row as
/// one the transform did not write.
#[test]
fn regression_preexisting_thread_context_key_failed_apply() {
    let org = org("ctx-key", 60);
    let artifacts = Org::s(&org.artifacts);
    let run_dir = org.path("");
    // The generator injected the case; the transform reports it (the key stays with the
    // existing row).
    let json_stage = |command: &str, extra: &[&str]| {
        let args = org.stage_args(command, extra);
        let mut json_args = vec!["--json"];
        json_args.extend(args.iter().map(String::as_str));
        run_ok(&json_args)
    };
    let extract = json_stage("extract", &[]);
    assert!(
        extract["namespaces"]["thread_contexts"].as_u64().unwrap() >= 1,
        "{extract}"
    );
    let transform = run_ok(&[
        "--json",
        "transform",
        "--input",
        &Org::s(&run_dir),
        "--out",
        &Org::s(&run_dir),
    ]);
    assert!(
        transform["rejectsByRule"]["thread_context_key_conflict"]
            .as_u64()
            .unwrap()
            >= 1,
        "{transform}"
    );
    let plan = run_ok(&[
        "--json",
        "tx-plan",
        "--run-id",
        org.run_id,
        "--artifacts",
        &artifacts,
    ]);
    let sha = plan["sha256"].as_str().unwrap().to_string();
    let applied = json_stage("apply", &["--approve", &sha]);
    assert_eq!(applied["complete"], true, "{applied}");
    let verified = json_stage("verify", &[]);
    assert_eq!(verified["ok"], true, "{verified}");
}

/// `bench/e2e.sh`: issue 6's end-to-end chain on the embedded engine, each stage a
/// `threadmig` process as a user runs it: gen (E2E_PRESET, default `medium`, E2E_ORGS orgs,
/// default the preset's, E2E_EVENTS context_events, default the preset's) into a workspace, then per org extract -> transform -> tx-plan ->
/// target schema push -> apply (approved) -> verify. Prints the time of every stage summed
/// over the orgs, and fails unless every org verifies.
#[test]
#[ignore = "benchmark: run by bench/e2e.sh in release mode"]
fn figures_end_to_end() {
    let preset: String = env_or("E2E_PRESET", "medium".to_string());
    let orgs: Option<u32> = std::env::var("E2E_ORGS").ok().map(|n| n.parse().unwrap());
    let batch: u32 = env_or("E2E_BATCH", 500);
    let root = temp_dir("e2e-figures");
    let workspace = Org::s(&root.join("ws"));
    let artifacts = Org::s(&root.join("artifacts"));
    let mut totals: Vec<(&str, Duration)> = Vec::new();
    let mut add = |stage: &'static str, took: Duration| match totals
        .iter_mut()
        .find(|(name, _)| *name == stage)
    {
        Some((_, sum)) => *sum += took,
        None => totals.push((stage, took)),
    };
    let timed = |args: &[&str]| {
        let started = Instant::now();
        let out = run_ok(args);
        (out, started.elapsed())
    };
    let whole = Instant::now();
    let mut gen_args = vec![
        "--json",
        "gen",
        "--preset",
        &preset,
        "--seed",
        "11",
        "--roles",
        "clean",
        "--workspace",
        &workspace,
    ];
    let orgs_text = orgs.map(|n| n.to_string());
    if let Some(n) = &orgs_text {
        gen_args.extend(["--orgs", n]);
    }
    let events_text = std::env::var("E2E_EVENTS").ok();
    if let Some(n) = &events_text {
        gen_args.extend(["--events", n]);
    }
    let (generated, took) = timed(&gen_args);
    add("gen", took);
    let mut rows = 0u64;
    let mut steps = 0u64;
    let fleet = generated["orgs"].as_array().unwrap().clone();
    let batch_text = batch.to_string();
    for org in &fleet {
        let org_id = org["orgId"].as_str().unwrap();
        if org["credentials"] != "present" {
            continue;
        }
        rows += org["rows"].as_u64().unwrap();
        let run_id = format!("e2e-{}", org["slug"].as_str().unwrap());
        let run_dir = Org::s(&root.join("artifacts/runs").join(&run_id));
        let common = ["--workspace", &workspace, "--org", org_id];
        let (_, took) = timed(
            &[
                &[
                    "--json",
                    "extract",
                    "--run-id",
                    &run_id,
                    "--artifacts",
                    &artifacts,
                ][..],
                &common,
            ]
            .concat(),
        );
        add("extract", took);
        let (_, took) = timed(&[
            "--json",
            "transform",
            "--input",
            &run_dir,
            "--out",
            &run_dir,
        ]);
        add("transform", took);
        let (plan, took) = timed(&[
            "--json",
            "tx-plan",
            "--run-id",
            &run_id,
            "--artifacts",
            &artifacts,
            "--batch-size",
            &batch_text,
        ]);
        add("tx-plan", took);
        steps += plan["steps"].as_u64().unwrap();
        let sha = plan["sha256"].as_str().unwrap().to_string();
        let started = Instant::now();
        {
            let engine = LocalEngine::open(Path::new(&workspace)).unwrap();
            let app_id = org["appId"].as_str().unwrap().to_string();
            let token = engine.store().org_admin_token(org_id).unwrap().unwrap();
            push_target_schema(&engine, &AppAuth::new(app_id, token));
        }
        add("schema push", started.elapsed());
        if std::env::var_os("E2E_KEEP_BEFORE_APPLY").is_some() {
            // A copy of the workspace as apply finds it, to profile apply on its own.
            let copy = root.join(format!("ws-before-apply-{run_id}"));
            copy_dir(Path::new(&workspace), &copy);
            println!("before apply: {}", copy.display());
        }
        let (applied, took) = timed(
            &[
                &[
                    "--json",
                    "apply",
                    "--run-id",
                    &run_id,
                    "--artifacts",
                    &artifacts,
                ][..],
                &common,
                &["--approve", &sha],
            ]
            .concat(),
        );
        add("apply", took);
        assert_eq!(applied["complete"], true, "{applied}");
        let (verified, took) = timed(
            &[
                &[
                    "--json",
                    "verify",
                    "--run-id",
                    &run_id,
                    "--artifacts",
                    &artifacts,
                ][..],
                &common,
            ]
            .concat(),
        );
        add("verify", took);
        assert_eq!(verified["ok"], true, "{org_id}: {verified}");
    }
    let total = whole.elapsed();
    let stages: Vec<String> = totals
        .iter()
        .map(|(stage, took)| format!("{stage} {:.1} s", took.as_secs_f64()))
        .collect();
    println!(
        "preset {preset}: {} orgs, {rows} legacy rows, {steps} plan steps (batch {batch})\n\
         stages: {}\n\
         end to end: {:.1} s, without gen {:.1} s (target < 60 s)",
        fleet.len(),
        stages.join(", "),
        total.as_secs_f64(),
        (total - totals[0].1).as_secs_f64()
    );
    if std::env::var_os("E2E_KEEP").is_some() {
        println!("kept: {}", root.display());
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
}
