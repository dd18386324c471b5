//! Repositories that cannot be scanned at all.

use code_scan::{scan_repository, ScanError};

use crate::fixture::Repo;

#[test]
fn missing_repository_is_an_error() {
    let repo = Repo::new();
    let missing = repo.path().join("nope");
    let err = scan_repository(&missing).expect_err("missing repo");
    assert!(matches!(err, ScanError::RepoNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("repository {} does not exist", missing.display())
    );
}

#[test]
fn a_file_is_not_a_repository() {
    let repo = Repo::new();
    repo.file("a.ts", "");
    let err = scan_repository(&repo.path().join("a.ts")).expect_err("not a dir");
    assert!(matches!(err, ScanError::NotADirectory { .. }), "{err:?}");
}

#[test]
fn an_empty_repository_scans_to_nothing() {
    let repo = Repo::new();
    let scan = repo.scan();
    assert!(scan.files.is_empty());
    let report = repo.preflight();
    assert!(!report.readiness.overall, "no thread evidence is not ready");
    assert!(report.readiness.all_files_parsed);
}
