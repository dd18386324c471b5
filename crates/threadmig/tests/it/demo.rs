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
