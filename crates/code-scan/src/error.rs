//! Errors that stop a scan. Problems with single files (unreadable, not UTF-8, syntax errors)
//! are not errors: they are listed in the reports.

use std::path::PathBuf;

/// Why a repository could not be scanned at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The repository path does not exist.
    #[error("repository {} does not exist", path.display())]
    RepoNotFound { path: PathBuf },
    /// The repository path exists but is not a directory.
    #[error("repository {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// The repository path could not be inspected.
    #[error("cannot read repository {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
