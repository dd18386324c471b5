//! Walking a repository (respecting `.gitignore`, in parallel) and analysing every JS/TS file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};
use oxc_allocator::Allocator;
use oxc_span::SourceType;
use rayon::prelude::*;
use serde::Serialize;

use crate::analyze::{self, items, Category, Finding, ParseFailure, Via};
use crate::error::ScanError;

/// File extensions scanned (case-insensitive).
pub const EXTENSIONS: [&str; 8] = ["ts", "tsx", "mts", "cts", "js", "jsx", "mjs", "cjs"];

/// What a file is for the model plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FileRole {
    /// Application code.
    Code,
    /// `instant.schema.*` or `instant.perms.*`: declares the model rather than using it.
    Schema,
}

/// Why a file has no syntax-tree findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum FileProblem {
    /// The file was read but is not valid JS/TS; its findings come from the text fallback.
    ParseError(ParseFailure),
    /// The file (or a directory) could not be read, or is not UTF-8.
    Unreadable { message: String },
}

/// One scanned file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileScan {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    pub role: FileRole,
    pub problem: Option<FileProblem>,
    /// Sorted by line and column.
    pub findings: Vec<Finding>,
}

/// Every JS/TS file of a repository with its findings, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoScan {
    /// Absolute, canonical repository path.
    pub repo: PathBuf,
    /// `src` when the repository has a `src/` directory (then only `src/` and the root-level
    /// `instant.schema.*`/`instant.perms.*` files are scanned), else `.`.
    pub scan_root: String,
    pub files: Vec<FileScan>,
}

impl RepoScan {
    /// Files with a parse error or that could not be read.
    pub fn problem_files(&self) -> impl Iterator<Item = &FileScan> {
        self.files.iter().filter(|f| f.problem.is_some())
    }
}

/// `instant.schema.ts`, `instant.perms.ts` (any scanned extension).
pub fn is_schema_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["instant.schema.", "instant.perms."].iter().any(|prefix| {
        lower
            .strip_prefix(prefix)
            .is_some_and(|ext| EXTENSIONS.contains(&ext))
    })
}

fn has_scanned_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Walks `repo` and analyses every JS/TS file.
///
/// The walk honours `.gitignore`, `.ignore` and `.git/info/exclude` files inside the
/// repository (also when it is not a git checkout), never the user's global ignore file or
/// ignore files above the repository, skips hidden entries and `node_modules`, and does not
/// follow symbolic links. When `<repo>/src` is a directory the scan is limited to it plus the
/// root-level schema files, as the anchor does. Files are analysed in parallel; the result is
/// sorted by path and does not depend on thread timing.
pub fn scan_repository(repo: &Path) -> Result<RepoScan, ScanError> {
    let metadata = std::fs::metadata(repo).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ScanError::RepoNotFound {
                path: repo.to_path_buf(),
            }
        } else {
            ScanError::Io {
                path: repo.to_path_buf(),
                source,
            }
        }
    })?;
    if !metadata.is_dir() {
        return Err(ScanError::NotADirectory {
            path: repo.to_path_buf(),
        });
    }
    let repo = std::fs::canonicalize(repo).map_err(|source| ScanError::Io {
        path: repo.to_path_buf(),
        source,
    })?;
    let src_only = repo.join("src").is_dir();

    let (paths, walk_errors) = discover(&repo, src_only);

    let mut files: Vec<FileScan> = paths
        .par_iter()
        .map_init(Allocator::default, |allocator, path| {
            scan_file(allocator, &repo, path)
        })
        .collect();
    files.extend(walk_errors.into_iter().map(|(path, message)| FileScan {
        path: path.map_or_else(|| ".".to_owned(), |p| relative(&repo, &p)),
        role: FileRole::Code,
        problem: Some(FileProblem::Unreadable { message }),
        findings: Vec::new(),
    }));
    files.sort_by(|a, b| a.path.cmp(&b.path));

    Ok(RepoScan {
        repo,
        scan_root: if src_only { "src" } else { "." }.to_owned(),
        files,
    })
}

type WalkErrors = Vec<(Option<PathBuf>, String)>;

fn discover(repo: &Path, src_only: bool) -> (Vec<PathBuf>, WalkErrors) {
    let paths = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    WalkBuilder::new(repo)
        .standard_filters(true)
        .parents(false)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            let name = entry.file_name().to_string_lossy();
            if is_dir && name == "node_modules" {
                return false;
            }
            if src_only && entry.depth() == 1 {
                return if is_dir {
                    name == "src"
                } else {
                    is_schema_file_name(&name)
                };
            }
            true
        })
        .build_parallel()
        .run(|| {
            Box::new(|result| {
                match result {
                    Ok(entry) => {
                        if entry.file_type().is_some_and(|t| t.is_file())
                            && has_scanned_extension(entry.path())
                        {
                            paths
                                .lock()
                                .expect("path list lock")
                                .push(entry.into_path());
                        }
                    }
                    Err(err) => {
                        let path = error_path(&err);
                        errors
                            .lock()
                            .expect("error list lock")
                            .push((path, err.to_string()));
                    }
                }
                WalkState::Continue
            })
        });
    let mut paths = paths.into_inner().expect("path list lock");
    paths.sort();
    let mut errors = errors.into_inner().expect("error list lock");
    errors.sort();
    (paths, errors)
}

fn error_path(err: &ignore::Error) -> Option<PathBuf> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        _ => None,
    }
}

fn relative(repo: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(repo).unwrap_or(path);
    let parts: Vec<_> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

fn scan_file(allocator: &mut Allocator, repo: &Path, path: &Path) -> FileScan {
    let rel = relative(repo, path);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let role = if is_schema_file_name(&file_name) {
        FileRole::Schema
    } else {
        FileRole::Code
    };
    let mut scan = FileScan {
        path: rel,
        role,
        problem: None,
        findings: Vec::new(),
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => {
            scan.problem = Some(FileProblem::Unreadable {
                message: format!("cannot read: {err}"),
            });
            return scan;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let lossy = String::from_utf8_lossy(err.as_bytes()).into_owned();
            scan.problem = Some(FileProblem::Unreadable {
                message: format!("not valid UTF-8 ({})", err.utf8_error()),
            });
            scan.findings = analyze::text_scan(&lossy);
            return scan;
        }
    };
    // `SourceType::from_path` knows lower-case extensions only (and `.d.ts` by name).
    let source_type =
        SourceType::from_path(file_name.to_ascii_lowercase()).unwrap_or_else(|_| SourceType::ts());
    let analysis = analyze::analyze_source(allocator, &text, source_type);
    scan.problem = analysis.parse_error.map(FileProblem::ParseError);
    scan.findings = analysis.findings;
    if defines_thread_start_route(&scan.path) {
        scan.findings.insert(
            0,
            Finding {
                line: 1,
                column: 1,
                category: Category::ThreadApi,
                item: items::THREAD_START.to_owned(),
                detail: "route file defines a thread/start endpoint".to_owned(),
                text: scan.path.clone(),
                via: Via::Path,
            },
        );
    }
    scan
}

/// `.../thread/start/route.<ext>`: the file is the thread/start endpoint itself.
fn defines_thread_start_route(rel: &str) -> bool {
    let lower = rel.to_ascii_lowercase();
    let Some((dir, file)) = lower.rsplit_once('/') else {
        return false;
    };
    file.starts_with("route.") && (dir == "thread/start" || dir.ends_with("/thread/start"))
}
