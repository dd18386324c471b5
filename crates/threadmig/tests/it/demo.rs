//! The main job (`threadmig demo`): a fresh directory, no credentials, no network; it must
//! end with exit 0, every status state, and the evidence where it says.

use serde_json::Value;

use crate::{temp_dir, threadmig};

#[test]
fn demo_migrates_the_eligible_wave_and_shows_every_status_state() {
    let dir = temp_dir("demo");
    let demo = dir.join("out");
    let run = threadmig(
        &["--json", "demo", "--dir", &demo.to_string_lossy()],
        Some(&dir),
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["ok"], true);
    let mut states: Vec<&str> = summary["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|org| org["status"].as_str().unwrap())
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            "applied_unverified",
            "blocked_plan",
            "blocked_plan",
            "migrated_verified",
            "planned_only"
        ]
    );
    // The transcript shows the commands it ran, and the evidence is where it says.
    assert!(
        run.stdout.contains("$ threadmig migrate "),
        "{}",
        run.stdout
    );
    let status = demo.join("artifacts/reports/migration-status.json");
    assert!(status.is_file());
    assert!(demo
        .join("artifacts/reports/scenario-registry.json")
        .is_file());
    // The orphan org's verify names the one command that completes it.
    let runs = std::fs::read_dir(demo.join("artifacts/runs")).unwrap();
    let details: String = runs
        .filter_map(|entry| {
            std::fs::read_to_string(entry.unwrap().path().join("04-verify/verify.result.json")).ok()
        })
        .collect();
    assert!(
        details.contains("threadmig backfill-conversations --org "),
        "{details}"
    );

    // A second demo replaces its own directory; any other directory is refused.
    let foreign = dir.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("keep.txt"), "mine").unwrap();
    let refused = threadmig(&["demo", "--dir", &foreign.to_string_lossy()], Some(&dir));
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("was not made by `threadmig demo`"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn migrate_records_a_blocked_run_in_a_temporary_ledger_app_without_tokens() {
    use instant_api::{AppAuth, InstantApi, QueryRequest};
    let dir = temp_dir("ledger-temporary");
    let ws = dir.join("ws").to_string_lossy().into_owned();
    let gen = threadmig(
        &[
            "--json",
            "gen",
            "--preset",
            "small",
            "--seed",
            "5",
            "--roles",
            "clean",
            "--orgs",
            "1",
            "--events",
            "40",
            "--content",
            "lean",
            "--workspace",
            &ws,
        ],
        Some(&dir),
    );
    assert_eq!(gen.code, 0, "{}", gen.stderr);
    let gen: Value = serde_json::from_str(&gen.stdout).unwrap();
    let org = gen["orgs"][0]["orgId"].as_str().unwrap().to_string();
    // No preflight scan, model plan or matrix: the gates fail closed, and the run is still
    // recorded in the ledger.
    let run = threadmig(
        &[
            "--json",
            "migrate",
            "--workspace",
            &ws,
            "--org",
            &org,
            "--run-id",
            "lt-1",
            "--dry-run",
            "--ledger-temporary",
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let result = &summary["orgs"][0];
    assert_eq!(result["status"], "blocked");
    assert_eq!(result["outcome"]["stage"], "gates");
    let ledger_app = result["ledgerAppId"].as_str().unwrap().to_string();

    let engine = instant_local::engine::LocalEngine::open(&dir.join("ws")).unwrap();
    let store = engine.store();
    let token = store.app_admin_token(&ledger_app).unwrap().unwrap();
    let target_app = result["appId"].as_str().unwrap();
    let target_token = store.app_admin_token(target_app).unwrap().unwrap();
    let runs = engine
        .query(
            &AppAuth::new(&ledger_app, &token),
            &QueryRequest {
                query: serde_json::json!({"migration_runs": {}, "migration_steps": {}}),
                inference: false,
            },
        )
        .unwrap();
    let text = runs.to_string();
    assert_eq!(
        runs["migration_runs"][0]["summary"]["runId"], "lt-1",
        "{text}"
    );
    // A run stopped by the gates is a failed run, not one still running.
    assert_eq!(runs["migration_runs"][0]["status"], "failed", "{text}");
    assert!(
        !runs["migration_steps"].as_array().unwrap().is_empty(),
        "{text}"
    );
    assert!(!text.contains(&token) && !text.contains(&target_token));
    assert!(!run.stdout.contains(&target_token) && !run.stderr.contains(&target_token));
}
