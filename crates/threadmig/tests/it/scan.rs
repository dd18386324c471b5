//! `threadmig scan` and `threadmig model-plan` end to end: files written, stdout JSON, exit
//! codes, and no artifact left behind on error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scan_cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create work folder");
    dir
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create folders");
    std::fs::write(path, content).expect("write fixture");
}

fn threadmig(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_threadmig"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run threadmig")
}

fn story_repo(root: &Path) {
    write(
        root,
        "src/app/api/sales/agent/route.ts",
        "import { createStory } from \"@ekairos/story\";\nexport const POST = createStory({}).handler;\n",
    );
}

fn migrated_repo(root: &Path) {
    write(
        root,
        "src/app/api/sales/agent/route.ts",
        "import { createThread } from \"@ekairos/thread\";\nexport const POST = createThread({}).reactor(createAiReactor()).handler;\n",
    );
    write(
        root,
        "src/components/ekairos/agent/Chat.tsx",
        "import { useThread } from \"@ekairos/thread/react\";\nexport const Chat = () => useThread({ reactor: null });\n",
    );
    write(
        root,
        "src/lib/q.ts",
        "export const q = { thread_threads: { thread_items: {} } };\n",
    );
    write(
        root,
        "instant.schema.ts",
        "import { i } from \"@instantdb/core\";\nexport default i.schema({ entities: { thread_threads: i.entity({}), thread_contexts: i.entity({}), thread_items: i.entity({}), thread_executions: i.entity({}), thread_steps: i.entity({}), thread_parts: i.entity({}) } });\n",
    );
}

fn json_line(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8(output.stdout.clone()).expect("utf-8 stdout");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).expect("stdout is JSON")
}

#[test]
fn scan_of_a_story_repo_reports_findings_with_exit_1() {
    let dir = workdir("story");
    story_repo(&dir.join("app"));
    let output = threadmig(&dir, &["scan", "--repo", "app", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let summary = json_line(&output);
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["ready"], false);
    assert_eq!(summary["readiness"]["endpointStoryFree"], false);
    assert_eq!(summary["counts"]["storyImports"], 1);
    assert_eq!(summary["out"], "artifacts/preflight/scan.json");

    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("artifacts/preflight/scan.json")).expect("scan.json written"),
    )
    .expect("scan.json is JSON");
    assert_eq!(
        report["findings"]["endpointStoryRefs"][0],
        "src/app/api/sales/agent/route.ts"
    );
    let md = std::fs::read_to_string(dir.join("artifacts/preflight/scan.md")).expect("scan.md");
    assert!(md.contains("`src/app/api/sales/agent/route.ts:1:1` import of '@ekairos/story'"));
}

#[test]
fn scan_and_model_plan_of_a_migrated_repo_exit_0() {
    let dir = workdir("migrated");
    migrated_repo(&dir.join("app"));
    let output = threadmig(
        &dir,
        &[
            "scan",
            "--repo",
            "app",
            "--out",
            "out/scan.json",
            "--out-md",
            "out/scan.md",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ready: yes"), "{stdout}");
    assert!(dir.join("out/scan.json").is_file());
    assert!(dir.join("out/scan.md").is_file());

    let output = threadmig(&dir, &["--json", "model-plan", "--repo", "app"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let summary = json_line(&output);
    assert_eq!(summary["summary"]["ready"], true);
    assert_eq!(summary["summary"]["legacyModelMatches"], 0);
    assert_eq!(
        summary["outJson"],
        "artifacts/reports/story-thread-model-plan.json"
    );
    assert!(dir
        .join("artifacts/reports/story-thread-model-plan.json")
        .is_file());
    let md = std::fs::read_to_string(dir.join("artifacts/reports/story-thread-model-plan.md"))
        .expect("plan markdown");
    assert!(md.starts_with("# Story -> Thread Model Migration Plan\n"));
}

#[test]
fn model_plan_of_a_story_repo_exits_1() {
    let dir = workdir("plan-story");
    story_repo(&dir.join("app"));
    let output = threadmig(
        &dir,
        &[
            "model-plan",
            "--repo",
            "app",
            "--out-json",
            "plan.json",
            "--out-md",
            "plan.md",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).expect("plan.json"))
            .expect("JSON");
    assert_eq!(plan["summary"]["legacyApiMatches"], 2);
    assert_eq!(plan["summary"]["ready"], false);
}

#[test]
fn a_missing_repository_is_an_error_and_writes_nothing() {
    let dir = workdir("missing");
    for command in ["scan", "model-plan"] {
        let output = threadmig(&dir, &[command, "--repo", "nope", "--json"]);
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.trim(),
            "threadmig: error: repository nope does not exist",
            "{command}"
        );
        assert!(output.stdout.is_empty());
    }
    let left: Vec<_> = std::fs::read_dir(&dir).expect("read dir").collect();
    assert!(left.is_empty(), "nothing written: {left:?}");
}
