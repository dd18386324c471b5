//! The binary's contract: help, version, usage errors and exit codes.

use crate::threadmig;

#[test]
fn version_and_help_exit_zero() {
    let version = threadmig(&["--version"], None);
    assert_eq!(version.code, 0);
    assert_eq!(
        version.stdout.trim(),
        format!("threadmig {}", env!("CARGO_PKG_VERSION"))
    );

    let help = threadmig(&["--help"], None);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("schema"), "{}", help.stdout);
    assert!(help
        .stdout
        .contains("Exit codes: 0 ok, 1 findings or blocked, 2 usage or runtime error"));

    let schema_help = threadmig(&["schema", "--help"], None);
    assert_eq!(schema_help.code, 0);
    for command in ["show", "diff", "phase1"] {
        assert!(
            schema_help.stdout.contains(command),
            "{}",
            schema_help.stdout
        );
    }
}

#[test]
fn usage_errors_exit_two() {
    let none = threadmig(&[], None);
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("Usage"), "{}", none.stderr);

    let unknown = threadmig(&["schema", "show", "--no-such-flag", "x.json"], None);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("--no-such-flag"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn env_check_reports_a_missing_clerk_secret_and_never_prints_a_present_one() {
    // The harness removes CLERK_SECRET_KEY from the child's environment.
    let missing = threadmig(&["env", "check"], None);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("CLERK_SECRET_KEY is not set"),
        "{}",
        missing.stderr
    );

    let secret = "sk_test_FAKE_env_check_0000";
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_threadmig"))
        .args(["--json", "env", "check"])
        .env("CLERK_SECRET_KEY", secret)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["required"], serde_json::json!(["CLERK_SECRET_KEY"]));
    assert!(!stdout.contains(secret) && !String::from_utf8_lossy(&output.stderr).contains(secret));
}

#[test]
fn env_check_of_a_missing_workspace_names_it() {
    let dir = crate::temp_dir("env-check").join("absent");
    let run = threadmig(
        &["env", "check", "--workspace", &dir.to_string_lossy()],
        None,
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}
