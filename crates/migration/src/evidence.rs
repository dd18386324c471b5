//! The run evidence folder (DESIGN §4): `artifacts/runs/<runId>/` with the sections
//! `01-extract/`, `02-transform/`, `03-apply/`, `04-verify/` and `manifest.json`.
//!
//! The manifest keeps the old scripts' envelope (`runId`, `createdAt`, `updatedAt`, `stages`,
//! `notes`) and adds `artifacts`: every file of the run folder with its sha256 and size, so the
//! evidence can be checked byte for byte. It is rebuilt from the folder's content each time a
//! stage is recorded (never from what a caller claims it wrote), and written atomically.
//! Timestamps live only here, in the envelope, never inside hashed content.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::io::write_atomic;

pub const MANIFEST_FILE: &str = "manifest.json";

/// A section of the run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Extract,
    Transform,
    Apply,
    Verify,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::Extract,
        Section::Transform,
        Section::Apply,
        Section::Verify,
    ];

    pub fn dir_name(self) -> &'static str {
        match self {
            Section::Extract => "01-extract",
            Section::Transform => "02-transform",
            Section::Apply => "03-apply",
            Section::Verify => "04-verify",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("run id {0:?} is not usable as a folder name (use letters, digits, '.', '_', '-'; not starting with '.')")]
    BadRunId(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a run manifest: {message}", path.display())]
    BadManifest { path: PathBuf, message: String },
}

impl EvidenceError {
    fn io(path: &Path, source: io::Error) -> Self {
        EvidenceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Checks that a run id is a plain folder name (the old scripts did not sanitise it).
pub fn validate_run_id(run_id: &str) -> Result<(), EvidenceError> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 128
        && !run_id.starts_with('.')
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EvidenceError::BadRunId(run_id.to_string()))
    }
}

/// A default run id: `<prefix>-<unix ms>` as the old scripts made them (`run-…`, `mig-…`).
pub fn new_run_id(prefix: &str, unix_ms: u128) -> String {
    format!("{prefix}-{unix_ms}")
}

/// One artifact of the run folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Path relative to the run folder, with `/` separators.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub run_id: String,
    pub created_at: String,
    pub updated_at: String,
    /// Stage name (`extract`, `transform`, `tx-plan`, `apply`, `verify`, …) -> what the stage
    /// recorded (its summary, status, flags such as `allowUnsafe`).
    #[serde(default)]
    pub stages: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

/// One run's evidence folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    run_id: String,
    root: PathBuf,
}

impl RunDir {
    /// `<artifacts>/runs/<run_id>` (not created until something is written).
    pub fn new(artifacts: &Path, run_id: &str) -> Result<RunDir, EvidenceError> {
        validate_run_id(run_id)?;
        Ok(RunDir {
            run_id: run_id.to_string(),
            root: artifacts.join("runs").join(run_id),
        })
    }

    /// A run folder given by its path (`…/runs/<runId>`); the run id is its last component.
    pub fn at(root: &Path) -> Result<RunDir, EvidenceError> {
        let run_id = root
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        validate_run_id(&run_id)?;
        Ok(RunDir {
            run_id,
            root: root.to_path_buf(),
        })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The section's folder (not created).
    pub fn section(&self, section: Section) -> PathBuf {
        self.root.join(section.dir_name())
    }

    /// The section's folder, created.
    pub fn create_section(&self, section: Section) -> Result<PathBuf, EvidenceError> {
        let dir = self.section(section);
        std::fs::create_dir_all(&dir).map_err(|e| EvidenceError::io(&dir, e))?;
        Ok(dir)
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(MANIFEST_FILE)
    }

    /// The manifest as it is on disk, if any.
    pub fn read_manifest(&self) -> Result<Option<Manifest>, EvidenceError> {
        let path = self.manifest_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(EvidenceError::io(&path, err)),
        };
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|err| EvidenceError::BadManifest {
                path,
                message: err.to_string(),
            })
    }

    /// Records `stage` (replacing an earlier record of the same stage), appends `notes`,
    /// re-hashes every file of the run folder and writes the manifest atomically. `now` is the
    /// RFC 3339 time of the envelope (the caller owns the clock).
    pub fn record_stage(
        &self,
        stage: &str,
        record: serde_json::Value,
        notes: &[String],
        now: &str,
    ) -> Result<Manifest, EvidenceError> {
        std::fs::create_dir_all(&self.root).map_err(|e| EvidenceError::io(&self.root, e))?;
        let mut manifest = self.read_manifest()?.unwrap_or_else(|| Manifest {
            run_id: self.run_id.clone(),
            created_at: now.to_string(),
            updated_at: now.to_string(),
            stages: BTreeMap::new(),
            notes: Vec::new(),
            artifacts: Vec::new(),
        });
        manifest.run_id = self.run_id.clone();
        manifest.updated_at = now.to_string();
        manifest.stages.insert(stage.to_string(), record);
        manifest.notes.extend(notes.iter().cloned());
        manifest.artifacts = scan(&self.root, Some(&mut HashCache::load(&self.root)))?;
        let mut bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        bytes.push(b'\n');
        let path = self.manifest_path();
        write_atomic(&path, &bytes).map_err(|e| EvidenceError::io(&path, e))?;
        Ok(manifest)
    }
}

/// Every regular file under `root` except the manifest, the hash cache and temporary files
/// (`.…tmp`), sorted by relative path, with its sha256 and size. Every file is read and hashed:
/// this is what checks the evidence against its manifest.
pub fn scan_artifacts(root: &Path) -> Result<Vec<Artifact>, EvidenceError> {
    scan(root, None)
}

/// [`scan_artifacts`], taking the hash of a file that has not changed since an earlier stage
/// hashed it from `cache` (see [`HashCache`]), and leaving the cache updated on disk.
fn scan(root: &Path, mut cache: Option<&mut HashCache>) -> Result<Vec<Artifact>, EvidenceError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| EvidenceError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| EvidenceError::io(&dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type().map_err(|e| EvidenceError::io(&path, e))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if !kind.is_file() || (name.starts_with('.') && name.ends_with(".tmp")) {
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .expect("walked below root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if relative == MANIFEST_FILE || relative == HASH_CACHE_FILE {
                continue;
            }
            let (sha256, bytes) = match cache.as_deref_mut() {
                Some(cache) => cache.sha256_file(&path, &relative)?,
                None => sha256_file(&path)?,
            };
            out.push(Artifact {
                path: relative,
                sha256,
                bytes,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(cache) = cache {
        cache.save(root, &out);
    }
    Ok(out)
}

/// The hash cache of a run folder (`.artifact-hashes.json`, never listed in the manifest).
pub const HASH_CACHE_FILE: &str = ".artifact-hashes.json";

/// How much older than the moment it was hashed a file's last change must be for its hash to
/// be kept: file times come from a coarse clock, so a file changed again right after it was
/// hashed could otherwise show the same change time.
const RACY_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The hashes [`RunDir::record_stage`] computed before, so that each stage does not hash again
/// what the earlier stages wrote (without it, a run's extract files were read and hashed by
/// all five stages: a tenth of a whole migration's CPU time).
///
/// **An entry is only used for the very file it was computed from, unchanged**: same device,
/// inode, size and change time (`ctime`, which the kernel sets at every write, truncation,
/// rename or metadata change, and which user tools cannot set back), and only if that change
/// time was at least [`RACY_MARGIN`] older than the hashing. Anything else is read and hashed
/// again. The cache is an optimisation only: a missing, unreadable or foreign cache file is
/// ignored, and failing to write it is not an error. Evidence checks ([`scan_artifacts`])
/// never use it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct HashCache {
    version: u32,
    files: BTreeMap<String, CachedHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedHash {
    dev: u64,
    ino: u64,
    bytes: u64,
    ctime_ns: i128,
    sha256: String,
}

const HASH_CACHE_VERSION: u32 = 1;

impl HashCache {
    fn load(root: &Path) -> HashCache {
        std::fs::read(root.join(HASH_CACHE_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<HashCache>(&bytes).ok())
            .filter(|cache| cache.version == HASH_CACHE_VERSION)
            .unwrap_or_default()
    }

    /// The sha256 and size of `path` (`relative` in the run folder): from the cache when the
    /// file is the one hashed before, otherwise read, hashed and remembered if it is old enough.
    fn sha256_file(&mut self, path: &Path, relative: &str) -> Result<(String, u64), EvidenceError> {
        let before = file_identity(path);
        if let (Some(identity), Some(cached)) = (&before, self.files.get(relative)) {
            if identity.matches(cached) {
                return Ok((cached.sha256.clone(), cached.bytes));
            }
        }
        let hashed_at = std::time::SystemTime::now();
        let (sha256, bytes) = sha256_file(path)?;
        let after = file_identity(path);
        // Kept only when nothing changed while the file was read and its last change is
        // well before the hashing started.
        match (before, after) {
            (Some(before), Some(after))
                if before == after
                    && after.bytes == bytes
                    && after.changed_before(hashed_at, RACY_MARGIN) =>
            {
                self.files.insert(
                    relative.to_string(),
                    CachedHash {
                        dev: after.dev,
                        ino: after.ino,
                        bytes,
                        ctime_ns: after.ctime_ns,
                        sha256: sha256.clone(),
                    },
                );
            }
            _ => {
                self.files.remove(relative);
            }
        }
        Ok((sha256, bytes))
    }

    /// Writes the cache for the files just listed (entries of files that are gone are
    /// dropped). Best effort: a cache that cannot be written only costs hashing again.
    fn save(&mut self, root: &Path, listed: &[Artifact]) {
        self.version = HASH_CACHE_VERSION;
        let listed: std::collections::BTreeSet<&str> =
            listed.iter().map(|a| a.path.as_str()).collect();
        self.files.retain(|path, _| listed.contains(path.as_str()));
        if let Ok(bytes) = serde_json::to_vec(&*self) {
            let _ = write_atomic(&root.join(HASH_CACHE_FILE), &bytes);
        }
    }
}

/// What identifies one version of a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    bytes: u64,
    ctime_ns: i128,
}

impl FileIdentity {
    fn matches(&self, cached: &CachedHash) -> bool {
        self.dev == cached.dev
            && self.ino == cached.ino
            && self.bytes == cached.bytes
            && self.ctime_ns == cached.ctime_ns
    }

    fn changed_before(&self, instant: std::time::SystemTime, margin: std::time::Duration) -> bool {
        let Ok(since_epoch) = instant.duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        self.ctime_ns + margin.as_nanos() as i128 <= since_epoch.as_nanos() as i128
    }
}

#[cfg(unix)]
fn file_identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileIdentity {
        dev: meta.dev(),
        ino: meta.ino(),
        bytes: meta.len(),
        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
    })
}

/// Without a change time the kernel maintains, nothing is cached.
#[cfg(not(unix))]
fn file_identity(_path: &Path) -> Option<FileIdentity> {
    None
}

/// The lowercase hex sha256 of a file and its size, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64), EvidenceError> {
    let mut file = std::fs::File::open(path).map_err(|e| EvidenceError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| EvidenceError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

/// The lowercase hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_that_escape_the_runs_folder_are_refused() {
        for bad in ["", "../x", ".hidden", "a/b", "a b", "é"] {
            assert!(validate_run_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["run-1795305251000", "mig_2.a-b"] {
            validate_run_id(good).unwrap();
        }
    }

    #[test]
    fn manifest_lists_every_file_with_its_hash_and_keeps_stages() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path(), "run-1").unwrap();
        let dir = run.create_section(Section::Transform).unwrap();
        std::fs::write(dir.join("summary.json"), b"{}").unwrap();
        std::fs::write(dir.join(".x.1.tmp"), b"partial").unwrap();
        run.record_stage("transform", serde_json::json!({"rejected": 0}), &[], "T1")
            .unwrap();
        let manifest = run
            .record_stage(
                "verify",
                serde_json::json!({"ok": true}),
                &["n".into()],
                "T2",
            )
            .unwrap();
        assert_eq!(manifest.created_at, "T1");
        assert_eq!(manifest.updated_at, "T2");
        assert_eq!(
            manifest.stages.keys().collect::<Vec<_>>(),
            ["transform", "verify"]
        );
        assert_eq!(manifest.notes, ["n"]);
        assert_eq!(
            manifest.artifacts,
            vec![Artifact {
                path: "02-transform/summary.json".into(),
                sha256: sha256_hex(b"{}"),
                bytes: 2,
            }]
        );
        let reread = run.read_manifest().unwrap().unwrap();
        assert_eq!(reread.artifacts, manifest.artifacts);
    }

    fn cached_entry(root: &Path, relative: &str) -> Option<CachedHash> {
        HashCache::load(root).files.get(relative).cloned()
    }

    #[cfg(unix)]
    #[test]
    fn a_stage_reuses_the_hash_of_an_unchanged_file_and_hashes_a_changed_one_again() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path(), "run-1").unwrap();
        let dir = run.create_section(Section::Extract).unwrap();
        let rows = dir.join("rows.ndjson");
        std::fs::write(&rows, b"one").unwrap();
        let path = "01-extract/rows.ndjson";

        // Just written: too recent to be trusted later, so hashed but not remembered.
        let first = run
            .record_stage("extract", serde_json::json!({}), &[], "T1")
            .unwrap();
        assert_eq!(first.artifacts[0].sha256, sha256_hex(b"one"));
        assert_eq!(cached_entry(run.path(), path), None);

        std::thread::sleep(RACY_MARGIN + std::time::Duration::from_millis(200));
        run.record_stage("transform", serde_json::json!({}), &[], "T2")
            .unwrap();
        let remembered = cached_entry(run.path(), path).expect("an old enough file is cached");
        assert_eq!(remembered.sha256, sha256_hex(b"one"));

        // The next stage takes the remembered hash without reading the file: a planted value
        // shows through (and only there: the evidence check reads every file).
        let mut cache = HashCache::load(run.path());
        cache.files.get_mut(path).unwrap().sha256 = "planted".into();
        let planted = serde_json::to_vec(&cache).unwrap();
        std::fs::write(run.path().join(HASH_CACHE_FILE), planted).unwrap();
        let reused = run
            .record_stage("verify", serde_json::json!({}), &[], "T3")
            .unwrap();
        assert_eq!(reused.artifacts[0].sha256, "planted");
        assert_eq!(
            scan_artifacts(run.path()).unwrap()[0].sha256,
            sha256_hex(b"one")
        );

        // Rewritten in place with the same size, at once: the change time moved, so the file
        // is read again.
        std::fs::write(&rows, b"two").unwrap();
        let changed = run
            .record_stage("verify", serde_json::json!({}), &[], "T4")
            .unwrap();
        assert_eq!(changed.artifacts[0].sha256, sha256_hex(b"two"));
        assert_eq!(changed.artifacts.len(), 1, "the cache file is not evidence");

        // A cache that is not one is ignored.
        std::fs::write(run.path().join(HASH_CACHE_FILE), b"{not json").unwrap();
        let again = run
            .record_stage("verify", serde_json::json!({}), &[], "T5")
            .unwrap();
        assert_eq!(again.artifacts[0].sha256, sha256_hex(b"two"));
    }
}
