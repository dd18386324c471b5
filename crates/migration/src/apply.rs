//! Apply: runs a checked tx plan through the `InstantApi` port, batch by batch, with bounded
//! concurrency and a journal, so that a crash at any moment can be resumed and a finished plan
//! applied again writes nothing.
//!
//! * **Approval.** The plan file is checked and hashed first ([`crate::txplan::check_plan`]);
//!   a plan whose sha256 is not the approved one is refused before anything is sent. While
//!   applying, every batch line is hashed again and compared with the checked one, so a file
//!   changed after the check stops the run instead of sending unapproved steps.
//! * **Phases.** Batches run up to `concurrency` at a time, but batches of different kinds
//!   (entity `update`s, then `link`s, …) are never in flight together: a phase starts when
//!   every batch before it has committed. Links are therefore only sent once every entity of
//!   the plan exists, whatever the server does with a link to a missing entity.
//! * **Journal** (`03-apply/journal.ndjson`): one line per committed batch,
//!   `{"batch", "txId", "steps", "plan"}` (`plan` is the plan's sha256, so a journal is never
//!   read against another plan), appended and fsynced when the server confirms the commit.
//!   A batch committed but not journaled (crash between the two) runs again on resume, which
//!   is safe: every step is an upsert of fixed ids, or a link. A torn last line (crash while
//!   appending) is ignored and cut off; any other unreadable line is an error.
//! * **Resume.** Journaled batches are always skipped. A journal that covers the whole plan
//!   means the plan is applied: nothing is sent (zero transacts). A partial journal means an
//!   earlier apply stopped: it is only continued with `resume`, so an interrupted or failed
//!   apply is never picked up by accident.
//! * **Failures.** A batch the server refuses stops the run cleanly: nothing more is
//!   dispatched, batches already in flight finish and are journaled, and the error names the
//!   batch and the server's message. Apply itself never retries (the HTTP adapter already
//!   retries 429, 5xx and transport failures; a 4xx validation error is final).
//! * **Lock.** `03-apply/.apply.lock` (holding the pid) keeps two applies of one run apart; a
//!   lock left by a process that no longer exists is taken over.
//!
//! Transactions are sent with `throw-on-missing-attrs?`, so a target app without the thread
//! schema refuses the first batch instead of growing attributes the schema never declared.

// The port's error keeps the whole server envelope by design (see `instant-api`).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use instant_api::{ApiError, AppAuth, InstantApi, QueryRequest, TransactRequest};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::io::write_atomic;
use crate::txplan::{check_plan, line_digest, BatchInfo, PlanCheck, PlanError};

pub const JOURNAL_FILE: &str = "journal.ndjson";
pub const RESULT_FILE: &str = "apply.result.json";
pub const LOCK_FILE: &str = ".apply.lock";
/// Batches in flight at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Where apply reads and writes.
#[derive(Debug, Clone)]
pub struct ApplyPaths {
    /// The plan file (`03-apply/tx-plan.ndjson`, or one given by the user).
    pub plan: PathBuf,
    /// `03-apply/`: journal, lock and result.
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The sha256 the user approved; the plan must hash to exactly this.
    pub approved_sha256: String,
    pub allow_destructive: bool,
    /// Batches in flight at once (at least 1).
    pub concurrency: usize,
    /// Continue a plan the journal shows partly applied.
    pub resume: bool,
}

/// The apply summary (`--json`, and the core of `apply.result.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplySummary {
    /// Batches committed by this run.
    pub batches_committed: u64,
    /// Steps of those batches.
    pub steps_applied: u64,
    /// Whether the journal already held batches of this plan when the run started.
    pub resumed: bool,
    /// Batches skipped because the journal held them.
    pub batches_skipped: u64,
    pub sha256: String,
    /// Batches and steps of the whole plan.
    pub batches: u64,
    pub steps: u64,
    /// Every batch of the plan is journaled.
    pub complete: bool,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Progress, reported when the run starts and after every committed batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Batches done (committed by this run or skipped) of `batches_total`.
    pub batches_done: u64,
    pub batches_total: u64,
    /// Steps done (applied or skipped) of `steps_total`.
    pub steps_done: u64,
    pub steps_total: u64,
    /// Steps applied by this run (what the rate is computed from).
    pub steps_applied: u64,
    pub elapsed: Duration,
}

impl Progress {
    /// Steps applied per second by this run.
    pub fn steps_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.steps_applied as f64 / seconds
        } else {
            0.0
        }
    }

    /// Time left at the current rate, once there is a rate.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.steps_per_second();
        (rate > 0.0).then(|| {
            Duration::from_secs_f64(self.steps_total.saturating_sub(self.steps_done) as f64 / rate)
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(
        "{}: the plan's sha256 is {actual}, not the approved {approved}: nothing was applied \
         (review the plan again and approve its sha256)",
        plan.display()
    )]
    ShaMismatch {
        plan: PathBuf,
        approved: String,
        actual: String,
    },
    #[error(
        "{}: an earlier apply of this plan committed {committed} of {batches} batches and \
         stopped: continue it with --resume",
        journal.display()
    )]
    Interrupted {
        journal: PathBuf,
        committed: u64,
        batches: u64,
    },
    #[error(
        "{}: records batches of plan {journal_sha256}, not of this plan ({plan_sha256}): use \
         the plan it belongs to, or a new run id",
        journal.display()
    )]
    JournalOfAnotherPlan {
        journal: PathBuf,
        journal_sha256: String,
        plan_sha256: String,
    },
    #[error("{}:{line}: unreadable journal line: {message}", path.display())]
    JournalCorrupt {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "{}: another apply of this run is in progress (pid {pid}); if it is not, remove the \
         lock file",
        path.display()
    )]
    Locked { path: PathBuf, pid: String },
    #[error(
        "batch {batch} of {batches} failed: {error}; it is not journaled, {committed} batch(es) \
         are: fix the cause, then rerun with --resume"
    )]
    Batch {
        batch: u64,
        batches: u64,
        committed: u64,
        error: Box<ApiError>,
    },
    #[error(
        "{}: batch {batch} differs from the plan that was checked and approved (the file \
         changed during apply): stopped",
        plan.display()
    )]
    PlanChanged { plan: PathBuf, batch: u64 },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Usage(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ApplyError + '_ {
    move |source| ApplyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Journal

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JournalEntry {
    pub batch: u64,
    pub tx_id: i64,
    pub steps: u32,
    /// The plan's sha256.
    pub plan: String,
}

/// What a journal file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalState {
    pub entries: Vec<JournalEntry>,
    /// Length of the readable part (the torn tail, if any, starts here).
    pub valid_len: u64,
    /// A torn last line was found (and is ignored).
    pub torn: bool,
}

/// Reads `dir/journal.ndjson` (an absent file is an empty journal).
pub fn read_journal(dir: &Path) -> Result<JournalState, ApplyError> {
    let path = dir.join(JOURNAL_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(JournalState::default()),
        Err(error) => {
            return Err(ApplyError::Io {
                path,
                source: error,
            })
        }
    };
    parse_journal(&path, &bytes)
}

fn parse_journal(path: &Path, bytes: &[u8]) -> Result<JournalState, ApplyError> {
    let mut state = JournalState::default();
    let mut start = 0usize;
    let mut line = 0u64;
    while start < bytes.len() {
        line += 1;
        let end = memchr::memchr(b'\n', &bytes[start..]).map(|i| start + i);
        let text = &bytes[start..end.unwrap_or(bytes.len())];
        let next = end.map_or(bytes.len(), |end| end + 1);
        match serde_json::from_slice::<JournalEntry>(text) {
            Ok(entry) if end.is_some() => {
                state.entries.push(entry);
                state.valid_len = next as u64;
            }
            // The last line, unfinished or unreadable: a crash while appending it.
            _ if next == bytes.len() => {
                state.torn = true;
            }
            Ok(_) => unreachable!("only the last line can lack its newline"),
            Err(error) => {
                return Err(ApplyError::JournalCorrupt {
                    path: path.to_path_buf(),
                    line,
                    message: error.to_string(),
                })
            }
        }
        start = next;
    }
    Ok(state)
}

/// The plan the journal in `dir` belongs to, if it holds any batch.
pub fn journal_plan(dir: &Path) -> Result<Option<String>, ApplyError> {
    Ok(read_journal(dir)?
        .entries
        .first()
        .map(|entry| entry.plan.clone()))
}

/// The journal open for appending, with the batches it holds.
struct Journal {
    file: File,
    path: PathBuf,
    committed: Vec<bool>,
    count: u64,
}

impl Journal {
    fn open(dir: &Path, plan: &PlanCheck) -> Result<(Journal, bool), ApplyError> {
        let path = dir.join(JOURNAL_FILE);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        if !existed {
            sync_dir(dir);
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err(&path))?;
        let state = parse_journal(&path, &bytes)?;
        if state.torn {
            // Cut the torn tail so the next entry starts on a line of its own.
            file.set_len(state.valid_len).map_err(io_err(&path))?;
            file.sync_data().map_err(io_err(&path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
        let batches = plan.batches.len();
        let mut committed = vec![false; batches];
        let mut count = 0;
        for (index, entry) in state.entries.iter().enumerate() {
            if entry.plan != plan.sha256 {
                return Err(ApplyError::JournalOfAnotherPlan {
                    journal: path,
                    journal_sha256: entry.plan.clone(),
                    plan_sha256: plan.sha256.clone(),
                });
            }
            let slot = usize::try_from(entry.batch)
                .ok()
                .and_then(|batch| batch.checked_sub(1))
                .filter(|slot| *slot < batches)
                .ok_or_else(|| ApplyError::JournalCorrupt {
                    path: path.clone(),
                    line: index as u64 + 1,
                    message: format!("batch {} is not in the plan", entry.batch),
                })?;
            if !committed[slot] {
                committed[slot] = true;
                count += 1;
            }
        }
        Ok((
            Journal {
                file,
                path,
                committed,
                count,
            },
            state.torn,
        ))
    }

    fn contains(&self, batch: u64) -> bool {
        self.committed[(batch - 1) as usize]
    }

    fn append(&mut self, entry: &JournalEntry) -> Result<(), ApplyError> {
        let mut line = serde_json::to_vec(entry).expect("journal entries serialise");
        line.push(b'\n');
        self.file.write_all(&line).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))?;
        let slot = (entry.batch - 1) as usize;
        if !self.committed[slot] {
            self.committed[slot] = true;
            self.count += 1;
        }
        Ok(())
    }
}

/// Makes a new directory entry durable (best effort: not every platform can sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

// ---------------------------------------------------------------------------------------------
// Lock

struct Lock {
    path: PathBuf,
}

impl Lock {
    fn acquire(dir: &Path) -> Result<Lock, ApplyError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(std::process::id().to_string().as_bytes())
                        .map_err(io_err(&path))?;
                    return Ok(Lock { path });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path).unwrap_or_default();
                    let pid = pid.trim().to_string();
                    if process_is_gone(&pid) {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    return Err(ApplyError::Locked { path, pid });
                }
                Err(error) => {
                    return Err(ApplyError::Io {
                        path,
                        source: error,
                    })
                }
            }
        }
        Err(ApplyError::Locked {
            pid: std::fs::read_to_string(&path).unwrap_or_default(),
            path,
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the process that wrote a lock is certainly gone (then its lock is stale). Only
/// Linux can tell (through `/proc`); elsewhere a lock is kept until removed by hand.
fn process_is_gone(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<u32>() else {
        // An empty or garbled lock: its writer died before finishing it.
        return true;
    };
    if pid == std::process::id() {
        return false;
    }
    let proc = Path::new("/proc");
    cfg!(target_os = "linux") && proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

// ---------------------------------------------------------------------------------------------
// Apply

/// Whether `approved` names the plan's sha256 (case and surrounding space ignored).
pub fn sha_matches(approved: &str, actual: &str) -> bool {
    let approved = approved.trim();
    approved.len() == 64 && approved.eq_ignore_ascii_case(actual)
}

struct Job {
    batch: u64,
    steps: Vec<Value>,
    count: u32,
}

struct Done {
    batch: u64,
    count: u32,
    result: Result<i64, ApiError>,
}

#[derive(Deserialize)]
struct BatchLine<'a> {
    #[serde(borrow)]
    steps: Vec<&'a RawValue>,
}

/// Applies the plan at `paths.plan` to the app of `auth`. See the module docs.
pub fn apply(
    api: &dyn InstantApi,
    auth: &AppAuth,
    paths: &ApplyPaths,
    options: &ApplyOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ApplySummary, ApplyError> {
    if options.concurrency == 0 {
        return Err(ApplyError::Usage(
            "the concurrency must be at least 1".into(),
        ));
    }
    let plan = check_plan(&paths.plan, options.allow_destructive)?;
    if !sha_matches(&options.approved_sha256, &plan.sha256) {
        return Err(ApplyError::ShaMismatch {
            plan: paths.plan.clone(),
            approved: options.approved_sha256.trim().to_string(),
            actual: plan.sha256.clone(),
        });
    }
    let _lock = Lock::acquire(&paths.dir)?;
    let (mut journal, _torn) = Journal::open(&paths.dir, &plan)?;
    let batches = plan.batch_count();
    let already = journal.count;
    if already > 0 && already < batches && !options.resume {
        return Err(ApplyError::Interrupted {
            journal: journal.path.clone(),
            committed: already,
            batches,
        });
    }

    let started = Instant::now();
    let skipped_steps: u64 = plan
        .batches
        .iter()
        .filter(|info| journal.contains(info.batch))
        .map(|info| u64::from(info.steps))
        .sum();
    let mut state = RunState {
        progress: Progress {
            batches_done: already,
            batches_total: batches,
            steps_done: skipped_steps,
            steps_total: plan.steps,
            steps_applied: 0,
            elapsed: Duration::ZERO,
        },
        committed: 0,
        failure: None,
    };
    progress(&state.progress);

    if already < batches {
        run_batches(
            api,
            auth,
            paths,
            options,
            &plan,
            &mut journal,
            &mut state,
            progress,
            started,
        );
    }

    let summary = ApplySummary {
        batches_committed: state.committed,
        steps_applied: state.progress.steps_applied,
        resumed: already > 0,
        batches_skipped: already,
        sha256: plan.sha256.clone(),
        batches,
        steps: plan.steps,
        complete: journal.count == batches,
        elapsed: started.elapsed(),
    };
    let failure = state.failure.take();
    write_result(paths, auth, &summary, failure.as_ref())?;
    match failure {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}

struct RunState {
    progress: Progress,
    committed: u64,
    failure: Option<ApplyError>,
}

impl RunState {
    fn fail(&mut self, error: ApplyError) {
        self.failure.get_or_insert(error);
    }
}

#[allow(clippy::too_many_arguments)]
fn run_batches(
    api: &dyn InstantApi,
    auth: &AppAuth,
    paths: &ApplyPaths,
    options: &ApplyOptions,
    plan: &PlanCheck,
    journal: &mut Journal,
    state: &mut RunState,
    progress: &mut dyn FnMut(&Progress),
    started: Instant,
) {
    let batches = plan.batch_count();
    let file = match File::open(&paths.plan) {
        Ok(file) => file,
        Err(error) => return state.fail(io_err(&paths.plan)(error)),
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();

    std::thread::scope(|scope| {
        for _ in 0..options.concurrency {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            scope.spawn(move || loop {
                let job = match job_rx.lock() {
                    Ok(receiver) => receiver.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                let request = TransactRequest {
                    steps: job.steps,
                    throw_on_missing_attrs: true,
                };
                let result = catch_unwind(AssertUnwindSafe(|| api.transact(auth, &request)))
                    .unwrap_or_else(|_| {
                        Err(ApiError::new(
                            0,
                            "adapter-panic",
                            "the Instant API adapter panicked; the batch may or may not be \
                             committed",
                            Value::Null,
                        ))
                    })
                    .map(|response| response.tx_id);
                let done = Done {
                    batch: job.batch,
                    count: job.count,
                    result,
                };
                if done_tx.send(done).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);

        let mut in_flight = 0usize;
        let mut handle = |done: Done, state: &mut RunState, journal: &mut Journal| match done.result
        {
            Ok(tx_id) => {
                let entry = JournalEntry {
                    batch: done.batch,
                    tx_id,
                    steps: done.count,
                    plan: plan.sha256.clone(),
                };
                if let Err(error) = journal.append(&entry) {
                    return state.fail(error);
                }
                state.committed += 1;
                state.progress.batches_done += 1;
                state.progress.steps_done += u64::from(done.count);
                state.progress.steps_applied += u64::from(done.count);
                state.progress.elapsed = started.elapsed();
                progress(&state.progress);
            }
            Err(error) => state.fail(ApplyError::Batch {
                batch: done.batch,
                batches,
                committed: 0,
                error: Box::new(error),
            }),
        };

        let mut line = Vec::with_capacity(1 << 20);
        let mut last_kind: Option<u8> = None;
        for info in &plan.batches {
            if state.failure.is_some() {
                break;
            }
            if let Err(error) = read_batch_line(&mut reader, &mut line, info, &paths.plan) {
                state.fail(error);
                break;
            }
            if journal.contains(info.batch) {
                continue;
            }
            let must_drain = last_kind.is_some_and(|kind| kind != info.kind);
            while in_flight > 0 && (must_drain || in_flight >= options.concurrency) {
                let Ok(done) = done_rx.recv() else { break };
                in_flight -= 1;
                handle(done, state, journal);
            }
            if state.failure.is_some() {
                break;
            }
            let steps = match parse_steps(&line) {
                Ok(steps) => steps,
                Err(error) => {
                    state.fail(ApplyError::Usage(format!(
                        "{}: batch {}: {error}",
                        paths.plan.display(),
                        info.batch
                    )));
                    break;
                }
            };
            let job = Job {
                batch: info.batch,
                steps,
                count: info.steps,
            };
            if job_tx.send(job).is_err() {
                break;
            }
            in_flight += 1;
            last_kind = Some(info.kind);
        }
        drop(job_tx);
        while in_flight > 0 {
            let Ok(done) = done_rx.recv() else { break };
            in_flight -= 1;
            handle(done, state, journal);
        }
    });
    if let Some(ApplyError::Batch { committed, .. }) = &mut state.failure {
        *committed = journal.count;
    }
}

/// Reads the next plan line and checks it is the one that was checked and approved.
fn read_batch_line(
    reader: &mut BufReader<File>,
    line: &mut Vec<u8>,
    info: &BatchInfo,
    plan: &Path,
) -> Result<(), ApplyError> {
    line.clear();
    reader.read_until(b'\n', line).map_err(io_err(plan))?;
    if line_digest(line) != info.digest {
        return Err(ApplyError::PlanChanged {
            plan: plan.to_path_buf(),
            batch: info.batch,
        });
    }
    Ok(())
}

fn parse_steps(line: &[u8]) -> Result<Vec<Value>, serde_json::Error> {
    let batch: BatchLine = serde_json::from_slice(line)?;
    batch
        .steps
        .iter()
        .map(|raw| serde_json::from_str(raw.get()))
        .collect()
}

fn write_result(
    paths: &ApplyPaths,
    auth: &AppAuth,
    summary: &ApplySummary,
    failure: Option<&ApplyError>,
) -> Result<(), ApplyError> {
    let error = failure.map(|failure| match failure {
        ApplyError::Batch { batch, error, .. } => json!({
            "batch": batch,
            "status": error.status,
            "type": error.error_type,
            "message": error.message,
        }),
        other => json!({"message": other.to_string()}),
    });
    let mut document = serde_json::to_value(summary).expect("the summary serialises");
    if let Value::Object(map) = &mut document {
        map.insert("ok".into(), json!(failure.is_none()));
        map.insert("appId".into(), json!(auth.app_id));
        map.insert("error".into(), error.unwrap_or(Value::Null));
    }
    let mut bytes = serde_json::to_vec_pretty(&document).expect("the result serialises");
    bytes.push(b'\n');
    let path = paths.dir.join(RESULT_FILE);
    write_atomic(&path, &bytes).map_err(io_err(&path))
}

// ---------------------------------------------------------------------------------------------
// Content digest

/// A digest of what an app holds in some namespaces: attributes and forward links of every
/// entity, independent of the order the server returns them in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentDigest {
    /// Per namespace: rows and their digest.
    pub namespaces: BTreeMap<String, NamespaceDigest>,
    /// sha256 over the namespace digests.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceDigest {
    pub rows: u64,
    pub sha256: String,
}

/// Reads every entity of `namespaces` (paged with `limit`/`offset`, forward links as sorted
/// id lists) and digests them. Each row is hashed as canonical JSON (keys sorted); the row
/// hashes are summed (a multiset hash), so the server's row order does not matter. For
/// comparing two stores (a resumed apply and a clean one), not a defence against crafted
/// collisions.
pub fn content_digest(
    api: &dyn InstantApi,
    auth: &AppAuth,
    namespaces: &[&str],
    page: usize,
) -> Result<ContentDigest, ApiError> {
    let page = page.max(1);
    let schema = api.schema_pull(auth)?.schema;
    let mut out = BTreeMap::new();
    for ns in namespaces {
        let mut labels: Vec<String> = schema
            .refs
            .values()
            .filter(|attr| attr.forward_identity.etype == *ns)
            .map(|attr| attr.forward_identity.label.clone())
            .collect();
        labels.sort();
        labels.dedup();
        let mut sum = [0u64; 4];
        let mut rows = 0u64;
        let mut offset = 0usize;
        loop {
            let mut node = serde_json::Map::new();
            node.insert("$".into(), json!({"limit": page, "offset": offset}));
            for label in &labels {
                node.insert(label.clone(), json!({"$": {"fields": ["id"]}}));
            }
            let result = api.query(
                auth,
                &QueryRequest {
                    query: json!({ *ns: Value::Object(node) }),
                    inference: false,
                },
            )?;
            let batch = result
                .get(*ns)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for mut row in batch.iter().cloned() {
                if let Value::Object(map) = &mut row {
                    for label in &labels {
                        if let Some(linked) = map.get_mut(label) {
                            *linked = linked_ids(linked);
                        }
                    }
                }
                let digest = Sha256::digest(canonical_json(&row).as_bytes());
                for (lane, chunk) in sum.iter_mut().zip(digest.chunks(8)) {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(chunk);
                    *lane = lane.wrapping_add(u64::from_le_bytes(word));
                }
                rows += 1;
            }
            if batch.len() < page {
                break;
            }
            offset += page;
        }
        let mut hasher = Sha256::new();
        hasher.update(ns.as_bytes());
        hasher.update(rows.to_le_bytes());
        for lane in sum {
            hasher.update(lane.to_le_bytes());
        }
        out.insert(
            ns.to_string(),
            NamespaceDigest {
                rows,
                sha256: hex(&hasher.finalize()),
            },
        );
    }
    let mut hasher = Sha256::new();
    for (ns, digest) in &out {
        hasher.update(format!("{ns}:{}:{}\n", digest.rows, digest.sha256));
    }
    Ok(ContentDigest {
        namespaces: out,
        sha256: hex(&hasher.finalize()),
    })
}

fn linked_ids(value: &Value) -> Value {
    let mut ids: Vec<String> = match value {
        Value::Array(items) => items
            .iter()
            .filter_map(|item| item.get("id").and_then(Value::as_str).map(str::to_string))
            .collect(),
        Value::Object(item) => item
            .get("id")
            .and_then(Value::as_str)
            .map(|id| vec![id.to_string()])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    ids.sort();
    json!(ids)
}

/// JSON with object keys sorted at every level.
pub fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (index, key) in keys.into_iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(key).expect("strings serialise"));
                    out.push(':');
                    write(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(batch: u64) -> String {
        format!("{{\"batch\":{batch},\"txId\":{batch},\"steps\":3,\"plan\":\"p\"}}\n")
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_torn_middle_line_is_an_error() {
        let path = Path::new("journal.ndjson");
        let whole = format!("{}{}", entry(1), entry(2));
        let state = parse_journal(path, whole.as_bytes()).unwrap();
        assert_eq!(state.entries.len(), 2);
        assert!(!state.torn);
        assert_eq!(state.valid_len, whole.len() as u64);

        for cut in 1..entry(3).len() {
            let torn = format!("{whole}{}", &entry(3)[..cut]);
            let state = parse_journal(path, torn.as_bytes()).unwrap();
            assert_eq!(
                state.entries.iter().map(|e| e.batch).collect::<Vec<_>>(),
                [1, 2],
                "cut at {cut}"
            );
            assert!(state.torn);
            assert_eq!(state.valid_len, whole.len() as u64);
        }

        let corrupt = format!("{}{{\"batch\":\n{}", entry(1), entry(2));
        let error = parse_journal(path, corrupt.as_bytes()).unwrap_err();
        assert!(
            matches!(error, ApplyError::JournalCorrupt { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn approval_needs_the_whole_sha256() {
        let sha = "ab".repeat(32);
        assert!(sha_matches(&sha, &sha));
        assert!(sha_matches(&format!(" {} ", sha.to_uppercase()), &sha));
        assert!(!sha_matches(&sha[..12], &sha));
        assert!(!sha_matches("", &sha));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = json!({"b": 1, "a": {"d": [2, {"f": 1, "e": 0}], "c": null}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}"#
        );
    }
}
