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
