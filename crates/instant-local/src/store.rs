//! The SQLite store of a workspace: one database file holding many apps, modelled on Instant's
//! own design (an attribute catalogue plus entity-attribute-value rows).
//!
//! Layout (see [`SCHEMA_SQL`]):
//! - `apps`: one row per app, with its admin token.
//! - `attrs`: the attribute catalogue (blob/ref, cardinality, unique, indexed, required, checked
//!   data type, on-delete), soft-deleted with `deleted_at`.
//! - `entity_keys`: one integer key (`entity_pk`) per entity id (UUID) of an app, assigned in
//!   insertion order. `entities` and `triples` are keyed by it rather than by the UUID, so a
//!   new entity's rows are appended to the B-trees instead of landing on random pages; only
//!   this table's `(app_pk, entity_id)` index takes random inserts. Keys are never removed: an
//!   entity exists through its `entities` row or its triples, never through its key alone.
//! - `entities`: one row per entity of a namespace. Instant stores an entity's existence as its
//!   `id` triple; here that triple is this row, and its `created_at` is `serverCreatedAt`, so the
//!   default order (`serverCreatedAt`, then id) is a scan of the `entities_created` index, which
//!   holds the id itself so that ties keep the UUID order.
//! - `triples`: every other value, `value` being the JSON text (`null` for a stored null), with
//!   `num` (numbers, and dates as epoch ms) for comparisons and ordering, and `ref_id` (the
//!   target id of a link, as text: a link may point at an entity that does not exist yet) for
//!   reverse traversal through `triples_by_ref`. **A value is never part of a B-tree key of
//!   unbounded size**: `triples` is a rowid table, unique on `(app_pk, entity_pk, attr_pk,
//!   vkey)` where `vkey` is the value itself when it is short and a digest of it otherwise
//!   (see [`value_key`]). When values were in the key, every seek through a cell holding a
//!   large JSON value read the value's overflow pages, and writes of realistic rows ran at a
//!   fraction of the speed of small ones. `av` is 1 on the triples of unique or indexed
//!   data attributes, and only those are in the value indexes, as only those are in Instant's
//!   `av` index: value-index inserts are most of the cost of a write, and the other attributes
//!   are never looked up by value through an index (where-clauses on them scan the namespace).
//! - `indexing_jobs`: schema jobs, run synchronously and kept for polling.
//! - `orgs`: the workspace's organisation directory (see `directory`): each org, the app it
//!   owns, and whether its credentials are `present`, `missing` or `malformed`, so a generated
//!   or test fleet can hold orgs in every credential state.
//!
//! **Each transact call is all or nothing and answers once committed**: it runs as one savepoint,
//! and calls that arrive together share one commit (see [`Store::transact`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use instant_api::{ApiError, AppAuth};
use instant_schema::{AttrKind, Cardinality, Identity, ServerAttr};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

/// Prepared statements kept per connection: the batched write statements come in a few sizes
/// each, next to the engine's other statements.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// The workspace database file inside a workspace directory.
pub const DATABASE_FILE: &str = "instant.sqlite3";

/// Bumped when [`SCHEMA_SQL`] changes incompatibly; a workspace of another version is refused.
/// There is no in-place upgrade yet: a workspace of an older format is refused with
/// [`StoreError::Format`] and has to be recreated (format 3 introduced integer entity keys,
/// format 4 took the values out of the `triples` key).
pub const FORMAT_VERSION: &str = "4";

pub const SCHEMA_SQL: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS apps (
  app_pk INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  admin_token TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  ephemeral INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'active',
  perms TEXT
);

CREATE TABLE IF NOT EXISTS txs (
  tx_id INTEGER PRIMARY KEY AUTOINCREMENT,
  app_pk INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS attrs (
  attr_pk INTEGER PRIMARY KEY,
  app_pk INTEGER NOT NULL REFERENCES apps(app_pk) ON DELETE CASCADE,
  id TEXT NOT NULL,
  etype TEXT NOT NULL,
  label TEXT NOT NULL,
  forward_ident TEXT NOT NULL,
  reverse_etype TEXT,
  reverse_label TEXT,
  reverse_ident TEXT,
  value_type TEXT NOT NULL CHECK (value_type IN ('blob', 'ref')),
  cardinality TEXT NOT NULL CHECK (cardinality IN ('one', 'many')),
  is_unique INTEGER NOT NULL DEFAULT 0,
  is_indexed INTEGER NOT NULL DEFAULT 0,
  is_required INTEGER NOT NULL DEFAULT 0,
  checked_data_type TEXT,
  on_delete TEXT,
  on_delete_reverse TEXT,
  catalog TEXT NOT NULL DEFAULT 'user',
  inferred_types TEXT,
  deleted_at INTEGER,
  UNIQUE (app_pk, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS attrs_forward
  ON attrs (app_pk, etype, label) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS attrs_reverse
  ON attrs (app_pk, reverse_etype, reverse_label)
  WHERE reverse_etype IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS entity_keys (
  entity_pk INTEGER PRIMARY KEY,
  app_pk INTEGER NOT NULL,
  entity_id TEXT NOT NULL,
  UNIQUE (app_pk, entity_id)
);

CREATE TABLE IF NOT EXISTS entities (
  app_pk INTEGER NOT NULL,
  etype TEXT NOT NULL,
  entity_pk INTEGER NOT NULL,
  entity_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (app_pk, etype, entity_pk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entities_created
  ON entities (app_pk, etype, created_at, entity_id);

CREATE TABLE IF NOT EXISTS triples (
  app_pk INTEGER NOT NULL,
  entity_pk INTEGER NOT NULL,
  attr_pk INTEGER NOT NULL,
  value TEXT NOT NULL,
  vkey NOT NULL,
  num REAL,
  ref_id TEXT,
  av INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS triples_eav ON triples (app_pk, entity_pk, attr_pk, vkey);
CREATE INDEX IF NOT EXISTS triples_by_value ON triples (app_pk, attr_pk, value, entity_pk) WHERE av = 1;
CREATE INDEX IF NOT EXISTS triples_by_num ON triples (app_pk, attr_pk, num, entity_pk) WHERE av = 1 AND num IS NOT NULL;
CREATE INDEX IF NOT EXISTS triples_by_ref ON triples (app_pk, ref_id, attr_pk, entity_pk) WHERE ref_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS indexing_jobs (
  id TEXT PRIMARY KEY,
  app_pk INTEGER NOT NULL,
  group_id TEXT NOT NULL,
  attr_id TEXT NOT NULL,
  attr_name TEXT NOT NULL,
  job_type TEXT NOT NULL,
  job_status TEXT NOT NULL,
  job_stage TEXT,
  checked_data_type TEXT,
  error TEXT,
  error_data TEXT,
  invalid_unique_value TEXT,
  invalid_triples_sample TEXT,
  work_estimate INTEGER,
  work_completed INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  done_at INTEGER
);
CREATE INDEX IF NOT EXISTS indexing_jobs_group ON indexing_jobs (app_pk, group_id);

CREATE TABLE IF NOT EXISTS orgs (
  org_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  slug TEXT NOT NULL,
  app_id TEXT REFERENCES apps(id),
  credentials TEXT NOT NULL DEFAULT 'present'
    CHECK (credentials IN ('present', 'missing', 'malformed'))
);
"#;

/// Why a workspace could not be opened or used. Every variant names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot create the workspace directory: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a usable workspace database: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: workspace format {found} is not supported (expected {FORMAT_VERSION})")]
    Format { path: PathBuf, found: String },
}

/// An app as the engine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub app_pk: i64,
    pub id: String,
    pub title: String,
    pub created_at: i64,
    pub ephemeral: bool,
    pub status: String,
}

/// One row of the attribute catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrRow {
    pub attr_pk: i64,
    pub attr: ServerAttr,
}

impl AttrRow {
    pub fn id(&self) -> &str {
        self.attr.id.as_deref().unwrap_or_default()
    }
    pub fn etype(&self) -> &str {
        &self.attr.forward_identity.etype
    }
    pub fn label(&self) -> &str {
        &self.attr.forward_identity.label
    }
    pub fn is_ref(&self) -> bool {
        self.attr.is_ref()
    }
}

/// The workspace database. One connection behind a mutex: SQLite serialises writers anyway,
/// and a single connection keeps every transact strictly ordered.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Transact calls that arrive together share one SQLite commit (see [`Store::transact`]).
    group: GroupCommit,
    /// Copies the WAL back into the database file off the write path (file-backed stores);
    /// stopped and joined when the store is dropped.
    checkpointer: Option<Checkpointer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
    }
}

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// WAL size (pages) past which the writer checkpoints itself: the background checkpointer
/// normally keeps the WAL far below it, so this only bounds the WAL when it falls behind.
const WAL_HIGH_WATER_PAGES: i64 = 65_536;

/// The WAL file is cut back to this size (bytes) when it starts over. Below the high-water
/// size, it keeps the size it reached: a WAL cut back under its working size has to grow
/// again by newly allocated file pages, which costs the writer several times what rewriting
/// the file's existing pages does (a bulk write fills tens of MiB of WAL between checkpoints).
const WAL_SIZE_LIMIT: i64 = WAL_HIGH_WATER_PAGES * 4096;

/// A thread with its own connection running `PRAGMA wal_checkpoint(PASSIVE)` every
/// [`CHECKPOINT_INTERVAL`]. Checkpoints on the writer's connection would copy pages and sync
/// the database file inside some transact calls; here they overlap with the writes instead.
/// A passive checkpoint never blocks the writer, and once it has copied the whole WAL the next
/// write starts the WAL over from its beginning.
struct Checkpointer {
    stop: std::sync::Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    /// `None` when no second connection or thread can be had: the writer's high-water
    /// checkpoint then keeps the WAL bounded on its own.
    fn start(path: &Path) -> Option<Checkpointer> {
        let conn = Connection::open(path).ok()?;
        conn.busy_timeout(std::time::Duration::from_millis(100))
            .ok()?;
        let stop = std::sync::Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let (next, _) = wake
                        .wait_timeout(guard, CHECKPOINT_INTERVAL)
                        .unwrap_or_else(|p| p.into_inner());
                    guard = next;
                    if *guard {
                        break;
                    }
                    // A busy or failed checkpoint is retried at the next tick; the writer's
                    // high-water checkpoint bounds the WAL meanwhile.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .ok()?;
        Some(Checkpointer { stop, thread })
    }

    fn stop(self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        let _ = self.thread.join();
    }
}

/// Most transact calls one commit group takes: bounds how long the first of them waits.
pub const GROUP_MEMBERS: usize = 8;

/// The state of group commit (see [`Store::transact`]). Only a thread holding the connection
/// opens, joins or commits a group; the lock order is the connection, then this state.
#[derive(Debug, Default)]
struct GroupCommit {
    state: Mutex<GroupState>,
    /// Signalled when a group is committed (or fails to be).
    committed: std::sync::Condvar,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Debug, Default)]
struct GroupState {
    /// Transact calls waiting for the connection: a group is left open only for them.
    waiting: usize,
    /// The group whose transaction is open on the connection, if any.
    open: Option<OpenGroup>,
    next_group: u64,
    commits: u64,
    /// Outcomes of committed groups that members still wait for.
    waiting_for: std::collections::HashMap<u64, GroupOutcome>,
}

#[derive(Debug)]
struct OpenGroup {
    group: u64,
    members: usize,
}

#[derive(Debug, Default)]
struct GroupOutcome {
    /// Members still to collect the outcome.
    waiting: usize,
    /// `None` until the group is committed.
    outcome: Option<Result<(), ApiError>>,
}

impl GroupState {
    /// Records how `group`'s commit went, for the members waiting for it.
    fn publish(&mut self, group: u64, outcome: Result<(), ApiError>) {
        self.commits += 1;
        if let Some(entry) = self.waiting_for.get_mut(&group) {
            entry.outcome = Some(outcome);
        }
    }

    /// A waiting member's copy of `group`'s outcome, once there is one.
    fn collect(&mut self, group: u64) -> Option<Result<(), ApiError>> {
        let entry = self.waiting_for.get_mut(&group)?;
        let outcome = entry.outcome.clone()?;
        entry.waiting -= 1;
        if entry.waiting == 0 {
            self.waiting_for.remove(&group);
        }
        Some(outcome)
    }
}

/// Commits the open group's transaction; a failed commit is rolled back, so the connection
/// never stays inside a transaction.
fn commit_group(conn: &Connection) -> Result<(), ApiError> {
    conn.execute_batch("COMMIT").map_err(|error| {
        let _ = conn.execute_batch("ROLLBACK");
        sql_error(error)
    })
}

impl Store {
    /// Opens (creating if needed) the workspace in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DATABASE_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let mut store = Store::init(path, conn)?;
        store.checkpointer = Checkpointer::start(&store.path);
        Ok(store)
    }

    /// A private in-memory workspace (tests, rehearsals).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Store::init(path, conn)
    }

    fn init(path: PathBuf, conn: Connection) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        // `journal_mode` answers with a row, so it is read rather than executed.
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_err)?;
        // WAL with `synchronous = NORMAL` is durable across crashes of the process and loses at
        // most the last commits on power loss, as SQLite documents. Checkpoints run in the
        // background (see `Checkpointer`); the writer checkpoints itself only past the
        // high-water mark, and `journal_size_limit` gives the disk back after such a burst
        // (the WAL keeps its working size below it, see `WAL_SIZE_LIMIT`). Clean pages are
        // read through the memory map, so the page cache mostly holds the pages a write
        // dirties: 32 MiB is enough, and SQLite scans the cache's hash table at the end of
        // write transactions, so a larger cache made every commit slower (measured: 256 MiB
        // cost bulk writes 5-13%).
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
             PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY; \
             PRAGMA wal_autocheckpoint = {WAL_HIGH_WATER_PAGES}; \
             PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}; PRAGMA mmap_size = 1073741824;"
        ))
        .map_err(open_err)?;
        // The query planner's stability guarantee: plans never depend on bound values. Without
        // it, a statement whose plan looked at a bound value (the bundled SQLite has STAT4)
        // expires whenever that parameter is bound again, and the engine's cached joins were
        // compiled again on nearly every call (a tenth of a bulk write's time).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(open_err)?;
        // The write path prepares a few sizes of each batched statement; with rusqlite's
        // default cache of 16 statements they would evict each other and be parsed again.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        // The format is checked before the layout is created: the tables of another format
        // may not take this format's indexes.
        let has_meta: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
                [],
                |row| row.get(0),
            )
            .map_err(open_err)?;
        let found: Option<String> = if has_meta {
            conn.query_row("SELECT value FROM meta WHERE key = 'format'", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(open_err)?
        } else {
            None
        };
        match found {
            None => {
                conn.execute_batch(SCHEMA_SQL).map_err(open_err)?;
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('format', ?1)",
                    [FORMAT_VERSION],
                )
                .map_err(open_err)?;
            }
            Some(found) if found == FORMAT_VERSION => {
                conn.execute_batch(SCHEMA_SQL).map_err(open_err)?;
            }
            Some(found) => return Err(StoreError::Format { path, found }),
        }
        Ok(Store {
            path,
            conn: Mutex::new(conn),
            group: GroupCommit::default(),
            checkpointer: None,
        })
    }

    /// The database file (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for one operation at a time, with no transaction open: a commit group
    /// left open for transact calls still on their way is committed first. A panic while
    /// holding it does not poison the store: SQLite rolls back the open transaction when it is
    /// dropped.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        let conn = self.raw_conn();
        let mut state = self.group.lock();
        if let Some(open) = state.open.take() {
            let outcome = commit_group(&conn);
            state.publish(open.group, outcome);
            self.group.committed.notify_all();
        }
        drop(state);
        conn
    }

    /// The connection as it is (a commit group may be open on it).
    fn raw_conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one transact call's `work` as a unit of its own (all of it or none of it), inside a
    /// commit group, and answers once the group is committed. The call that opens a group is
    /// the transaction itself (a failure rolls the transaction back); a call that joins an
    /// open group runs as a savepoint, so that its failure rolls back its own writes only.
    ///
    /// **Group commit.** When other transact calls are waiting for the connection as `work`
    /// ends, the transaction is left open for them (up to [`GROUP_MEMBERS`] calls) and this
    /// call waits; the last one in commits for all, and each call then returns its own result,
    /// or the commit's error. A call therefore never answers before its writes are committed,
    /// calls still run one at a time in arrival order, a failed call leaves no trace (its
    /// savepoint is rolled back) and the others are unaffected; what changes is that a burst of
    /// concurrent calls writes the pages they share to the WAL once instead of once per call.
    /// A call that arrives alone commits at once, as before. Any other use of the connection
    /// ([`Store::conn`]) commits an open group first.
    pub fn transact<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.group.lock().waiting += 1;
        let mut conn = self.raw_conn();
        let mut state = self.group.lock();
        state.waiting -= 1;
        let (group, first) = match &state.open {
            Some(open) => (open.group, false),
            None => {
                conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_error)?;
                state.next_group += 1;
                state.open = Some(OpenGroup {
                    group: state.next_group,
                    members: 0,
                });
                (state.next_group, true)
            }
        };
        drop(state);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if first {
                // Nothing else is in the transaction yet: no savepoint needed (a savepoint
                // copies every page it changes aside, which a lone call would pay for nothing).
                return work(&conn);
            }
            let savepoint = conn.savepoint().map_err(sql_error)?;
            let value = work(&savepoint)?;
            savepoint.commit().map_err(sql_error)?;
            Ok(value)
        }));
        let mut state = self.group.lock();
        if first && !matches!(result, Ok(Ok(_))) {
            // The opening call failed: the transaction holds its writes only. No one else
            // has joined (they need the connection, which this call still holds).
            state.open = None;
            drop(state);
            let _ = conn.execute_batch("ROLLBACK");
            drop(conn);
            return match result {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            };
        }
        let waiting = state.waiting;
        let open = state
            .open
            .as_mut()
            .expect("the group stays open while a member runs");
        open.members += 1;
        // A panicking member commits what the others did and goes on panicking.
        let stay_open = result.is_ok() && waiting > 0 && open.members < GROUP_MEMBERS;
        if !stay_open {
            state.open = None;
            let outcome = commit_group(&conn);
            state.publish(group, outcome.clone());
            self.group.committed.notify_all();
            drop(state);
            drop(conn);
            return match result {
                Ok(result) => outcome.and(result),
                Err(panic) => std::panic::resume_unwind(panic),
            };
        }
        drop(conn);
        let value = match result {
            Ok(Ok(value)) => value,
            // Nothing of this call is in the group: its answer does not wait for the commit.
            Ok(Err(error)) => return Err(error),
            Err(_) => unreachable!("a panicking member commits the group itself"),
        };
        state.waiting_for.entry(group).or_default().waiting += 1;
        loop {
            if let Some(outcome) = state.collect(group) {
                return outcome.map(|()| value);
            }
            state = self
                .group
                .committed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Commit groups so far (commits made for transact calls), for tests and figures.
    pub fn group_commits(&self) -> u64 {
        self.group.lock().commits
    }

    /// Creates an app with a fresh id and admin token.
    pub fn create_app(&self, title: &str, ephemeral: bool) -> Result<(App, String), ApiError> {
        let id = uuid::Uuid::new_v4().to_string();
        let token = uuid::Uuid::new_v4().to_string();
        let created_at = now_ms();
        let conn = self.conn();
        conn.execute(
            "INSERT INTO apps (id, title, admin_token, created_at, ephemeral) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, title, token, created_at, ephemeral],
        )
        .map_err(sql_error)?;
        let app = App {
            app_pk: conn.last_insert_rowid(),
            id,
            title: title.to_string(),
            created_at,
            ephemeral,
            status: "active".into(),
        };
        Ok((app, token))
    }

    /// Every app (for listing a workspace); tokens are not returned.
    pub fn apps(&self) -> Result<Vec<App>, ApiError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(
                "SELECT app_pk, id, title, created_at, ephemeral, status FROM apps ORDER BY app_pk",
            )
            .map_err(sql_error)?;
        let rows = statement
            .query_map([], app_from_row)
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error);
        rows
    }

    /// The admin token of one app, `None` when the workspace has no such app. The workspace
    /// database is where the embedded default keeps app tokens; the run ledger finds its own
    /// app's token here so that no token is ever written anywhere else.
    pub fn app_admin_token(&self, app_id: &str) -> Result<Option<String>, ApiError> {
        Ok(lookup_app(&self.conn(), app_id)?.map(|(_, token)| token))
    }

    /// Authenticates an admin API call (`/admin/query`, `/admin/transact`): the app id and the
    /// token must be UUIDs and the pair must exist.
    pub fn authenticate_admin(&self, auth: &AppAuth) -> Result<App, ApiError> {
        if uuid::Uuid::parse_str(&auth.app_id).is_err() {
            return Err(ApiError::new(
                400,
                "param-malformed",
                "Malformed parameter: [\"headers\" \"app-id\"]",
                json!({"in": ["headers", "app-id"], "original-input": auth.app_id}),
            ));
        }
        check_token_shape(auth)?;
        // The raw connection: reading the apps table does not need an open commit group
        // committed first (transact calls authenticate before they join one).
        let conn = self.raw_conn();
        let app = lookup_app(&conn, &auth.app_id)?;
        match app {
            Some((app, token)) if token == auth.admin_token.expose() => Ok(app),
            _ => {
                let mut extra = Map::new();
                extra.insert(
                    "args".into(),
                    json!([{"app-id": auth.app_id, "token": "<redacted>"}]),
                );
                extra.insert(
                    "message".into(),
                    json!("This admin token may be expired or invalid. Or you may have provided an incorrect app ID."),
                );
                Err(ApiError::record_not_found("app-admin-token", extra))
            }
        }
    }

    /// Authenticates a dashboard or superadmin call (`/dash/apps/:id/…`,
    /// `/superadmin/apps/:id/…`) made with an app admin token.
    pub fn authenticate_dash(&self, auth: &AppAuth) -> Result<App, ApiError> {
        check_token_shape(auth)?;
        let conn = self.conn();
        let owner: Option<String> = conn
            .query_row(
                "SELECT id FROM apps WHERE admin_token = ?1",
                [auth.admin_token.expose()],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql_error)?;
        match owner {
            Some(owner) if owner == auth.app_id => {
                Ok(lookup_app(&conn, &auth.app_id)?.expect("owner exists").0)
            }
            Some(_) => Err(ApiError::new(
                400,
                "validation-failed",
                format!(
                    "This admin token does not belong to app {}. Admin tokens are bound to a single app. Use a personal access token to manage other apps.",
                    auth.app_id
                ),
                json!({"reason": "admin-token-mismatch"}),
            )),
            None => {
                let mut error = ApiError::record_not_found("instant-user", Map::new());
                error.status = 401;
                Err(error)
            }
        }
    }

    /// The live (not deleted) attribute catalogue of an app, in creation order.
    pub fn attrs(&self, conn: &Connection, app_pk: i64) -> Result<Vec<AttrRow>, ApiError> {
        load_attrs(conn, app_pk)
    }
}

/// What the workspace records about an organisation's app credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgCredentials {
    /// The org's app exists and its admin token is served.
    Present,
    /// The org carries no credentials (as if its metadata had none).
    Missing,
    /// The org carries credentials of the wrong shape.
    Malformed,
}

impl OrgCredentials {
    pub const fn as_str(self) -> &'static str {
        match self {
            OrgCredentials::Present => "present",
            OrgCredentials::Missing => "missing",
            OrgCredentials::Malformed => "malformed",
        }
    }

    fn parse(text: &str) -> Option<OrgCredentials> {
        match text {
            "present" => Some(OrgCredentials::Present),
            "missing" => Some(OrgCredentials::Missing),
            "malformed" => Some(OrgCredentials::Malformed),
            _ => None,
        }
    }
}

/// One row of the workspace's organisation directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRecord {
    pub org_id: String,
    pub name: String,
    pub slug: String,
    /// The app the org owns, when it has one.
    pub app_id: Option<String>,
    pub credentials: OrgCredentials,
}

impl Store {
    /// Creates or replaces an organisation. Its app, when named, must exist in the workspace.
    pub fn upsert_org(&self, org: &OrgRecord) -> Result<(), ApiError> {
        let conn = self.conn();
        if let Some(app_id) = &org.app_id {
            if lookup_app(&conn, app_id)?.is_none() {
                let mut extra = Map::new();
                extra.insert("app-id".into(), json!(app_id));
                extra.insert("org-id".into(), json!(org.org_id));
                return Err(ApiError::record_not_found("app", extra));
            }
        }
        conn.execute(
            "INSERT INTO orgs (org_id, name, slug, app_id, credentials) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (org_id) DO UPDATE SET name = excluded.name, slug = excluded.slug, \
             app_id = excluded.app_id, credentials = excluded.credentials",
            params![
                org.org_id,
                org.name,
                org.slug,
                org.app_id,
                org.credentials.as_str()
            ],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    /// Every organisation, ordered by id.
    pub fn orgs(&self) -> Result<Vec<OrgRecord>, ApiError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare("SELECT org_id, name, slug, app_id, credentials FROM orgs ORDER BY org_id")
            .map_err(sql_error)?;
        let rows = statement
            .query_map([], org_from_row)
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error);
        rows
    }

    /// One organisation, `None` when unknown.
    pub fn org(&self, org_id: &str) -> Result<Option<OrgRecord>, ApiError> {
        self.conn()
            .query_row(
                "SELECT org_id, name, slug, app_id, credentials FROM orgs WHERE org_id = ?1",
                [org_id],
                org_from_row,
            )
            .optional()
            .map_err(sql_error)
    }

    /// The admin token of the app an org owns, only for an org whose credentials are
    /// `present` and that has an app; `None` otherwise.
    pub fn org_admin_token(&self, org_id: &str) -> Result<Option<String>, ApiError> {
        self.conn()
            .query_row(
                "SELECT apps.admin_token FROM orgs JOIN apps ON apps.id = orgs.app_id \
                 WHERE orgs.org_id = ?1 AND orgs.credentials = 'present'",
                [org_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql_error)
    }
}

fn org_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<OrgRecord> {
    let credentials: String = row.get(4)?;
    Ok(OrgRecord {
        org_id: row.get(0)?,
        name: row.get(1)?,
        slug: row.get(2)?,
        app_id: row.get(3)?,
        // The column's CHECK admits only the three states; anything else is a hand-edited
        // database, reported as SQLite reports an unreadable value.
        credentials: OrgCredentials::parse(&credentials).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                rusqlite::types::Type::Text,
                format!("unknown org credentials state `{credentials}`").into(),
            )
        })?,
    })
}

fn check_token_shape(auth: &AppAuth) -> Result<(), ApiError> {
    if uuid::Uuid::parse_str(auth.admin_token.expose()).is_err() {
        return Err(ApiError::new(
            400,
            "param-malformed",
            "Malformed parameter: [\"headers\" \"authorization\"]",
            json!({"in": ["headers", "authorization"], "original-input": "<redacted>"}),
        ));
    }
    Ok(())
}

fn app_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        app_pk: row.get(0)?,
        id: row.get(1)?,
        title: row.get(2)?,
        created_at: row.get(3)?,
        ephemeral: row.get(4)?,
        status: row.get(5)?,
    })
}

fn lookup_app(conn: &Connection, id: &str) -> Result<Option<(App, String)>, ApiError> {
    conn.query_row(
        "SELECT app_pk, id, title, created_at, ephemeral, status, admin_token FROM apps WHERE id = ?1",
        [id],
        |row| Ok((app_from_row(row)?, row.get::<_, String>(6)?)),
    )
    .optional()
    .map_err(sql_error)
}

/// The columns [`attr_from_row`] reads, in order.
pub const ATTR_COLUMNS: &str = "attr_pk, id, etype, label, forward_ident, reverse_etype, reverse_label, reverse_ident, value_type, cardinality, is_unique, is_indexed, is_required, checked_data_type, on_delete, on_delete_reverse, catalog, inferred_types";

/// Reads an `attrs` row selected with [`ATTR_COLUMNS`].
pub fn attr_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AttrRow> {
    let value_type: String = row.get(8)?;
    let cardinality: String = row.get(9)?;
    let reverse_etype: Option<String> = row.get(5)?;
    let reverse_identity = match reverse_etype {
        Some(etype) => Some(Identity::new(row.get(7)?, etype, row.get::<_, String>(6)?)),
        None => None,
    };
    let inferred: Option<String> = row.get(17)?;
    let mut extra = Map::new();
    extra.insert(
        "inferred-types".into(),
        inferred
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null),
    );
    Ok(AttrRow {
        attr_pk: row.get(0)?,
        attr: ServerAttr {
            id: Some(row.get(1)?),
            value_type: if value_type == "ref" {
                AttrKind::Ref
            } else {
                AttrKind::Blob
            },
            cardinality: if cardinality == "many" {
                Cardinality::Many
            } else {
                Cardinality::One
            },
            forward_identity: Identity::new(
                Some(row.get(4)?),
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ),
            reverse_identity,
            unique: row.get(10)?,
            index: row.get(11)?,
            required: row.get(12)?,
            checked_data_type: row.get(13)?,
            on_delete: row.get(14)?,
            on_delete_reverse: row.get(15)?,
            catalog: Some(row.get(16)?),
            extra,
        },
    })
}

/// The live attribute catalogue of an app, in creation order.
pub fn load_attrs(conn: &Connection, app_pk: i64) -> Result<Vec<AttrRow>, ApiError> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {ATTR_COLUMNS} FROM attrs WHERE app_pk = ?1 AND deleted_at IS NULL ORDER BY attr_pk"
        ))
        .map_err(sql_error)?;
    let rows = statement
        .query_map([app_pk], attr_from_row)
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error);
    rows
}

/// Inserts an attribute into the catalogue; returns its `attr_pk`. The caller checks names
/// and flags; the unique indexes on `(etype, label)` are the last line of defence.
pub fn insert_attr(conn: &Connection, app_pk: i64, attr: &ServerAttr) -> Result<i64, ApiError> {
    let reverse = attr.reverse_identity.as_ref();
    let ident = |identity: &Identity| {
        identity
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    };
    conn.prepare_cached(
        "INSERT INTO attrs (app_pk, id, etype, label, forward_ident, reverse_etype, reverse_label, reverse_ident, \
         value_type, cardinality, is_unique, is_indexed, is_required, checked_data_type, on_delete, on_delete_reverse, catalog) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            app_pk,
            attr.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            attr.forward_identity.etype,
            attr.forward_identity.label,
            ident(&attr.forward_identity),
            reverse.map(|r| r.etype.clone()),
            reverse.map(|r| r.label.clone()),
            reverse.map(ident),
            if attr.is_ref() { "ref" } else { "blob" },
            attr.cardinality.as_str(),
            attr.unique,
            attr.index,
            attr.required,
            attr.checked_data_type,
            attr.on_delete,
            attr.on_delete_reverse,
            attr.catalog.as_deref().unwrap_or("user"),
        ])
    })
    .map_err(sql_error)?;
    Ok(conn.last_insert_rowid())
}

/// Values up to this many bytes of JSON text are their own key in `triples_eav`: every link
/// (a quoted UUID is 38 bytes), number, date and short string.
const VERBATIM_KEY_MAX: usize = 64;

/// The key of a stored value (its JSON text) in the unique `triples_eav` index: the text
/// itself when short, else the first 16 bytes of its SHA-256 (a blob, so it never equals a
/// text key). Two values with the same key are treated as one value of the entity's
/// attribute, so the digest must not collide: 128 bits of SHA-256 do not in practice.
pub fn value_key(text: &str) -> ToSqlOutput<'_> {
    use sha2::Digest;
    if text.len() <= VERBATIM_KEY_MAX {
        ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))
    } else {
        let digest = sha2::Sha256::digest(text.as_bytes());
        ToSqlOutput::Owned(rusqlite::types::Value::Blob(digest[..16].to_vec()))
    }
}

/// Whether a triple of `attr` belongs in the value indexes (`triples.av`).
pub fn in_value_index(attr: &ServerAttr) -> bool {
    !attr.is_ref() && (attr.unique || attr.index)
}

/// Brings `triples.av` in line with the attribute's flags after they changed (index, unique,
/// or a data attribute turned into a link). Scans the app's triples once; schema changes are
/// rare next to writes.
pub fn refresh_value_index(conn: &Connection, app_pk: i64, attr_pk: i64) -> Result<(), ApiError> {
    conn.prepare_cached(
        "UPDATE triples SET av = (SELECT CASE WHEN a.value_type = 'blob' AND (a.is_unique OR a.is_indexed) \
         THEN 1 ELSE 0 END FROM attrs a WHERE a.attr_pk = ?2) WHERE app_pk = ?1 AND attr_pk = ?2",
    )
    .and_then(|mut statement| statement.execute(params![app_pk, attr_pk]))
    .map_err(sql_error)?;
    Ok(())
}

/// A new transaction id for `app_pk`.
pub fn next_tx_id(conn: &Connection, app_pk: i64, created_at: i64) -> Result<i64, ApiError> {
    conn.prepare_cached("INSERT INTO txs (app_pk, created_at) VALUES (?1, ?2)")
        .and_then(|mut statement| statement.execute(params![app_pk, created_at]))
        .map_err(sql_error)?;
    Ok(conn.last_insert_rowid())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// An unexpected SQLite failure, reported as the server reports an unexpected SQL error.
pub fn sql_error(error: rusqlite::Error) -> ApiError {
    ApiError::new(
        500,
        "sql-exception",
        format!("SQL error: {error}"),
        json!({"debug-uri": null}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: cached joins over `triples` were compiled again on every call, because
    /// their plan had looked at a bound value; the planner's stability guarantee stops that.
    #[test]
    fn cached_statements_are_not_compiled_again_when_rebound() {
        let store = Store::open_in_memory().unwrap();
        let mut conn = store.conn();
        let tx = conn.transaction().unwrap();
        let sql = "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                   WHERE t.app_pk = ?1 AND t.attr_pk = ?2 AND t.value = ?3 AND t.av = 1 AND k.entity_id <> ?4 LIMIT 1";
        for n in 0..20 {
            let mut statement = tx.prepare_cached(sql).unwrap();
            let found: Option<String> = statement
                .query_row(
                    params![1, 2, format!("\"v{n}\""), format!("id{n}")],
                    |row| row.get(0),
                )
                .optional()
                .unwrap();
            assert_eq!(found, None);
        }
        let statement = tx.prepare_cached(sql).unwrap();
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0
        );
    }

    #[test]
    fn apps_authenticate_with_their_own_token_only() {
        let store = Store::open_in_memory().unwrap();
        let (app, token) = store.create_app("one", false).unwrap();
        let (other, other_token) = store.create_app("two", true).unwrap();
        assert_eq!(
            store
                .authenticate_admin(&AppAuth::new(&app.id, &token))
                .unwrap(),
            app
        );

        let wrong = store
            .authenticate_admin(&AppAuth::new(&app.id, &other_token))
            .unwrap_err();
        assert_eq!(
            (wrong.status, wrong.error_type.as_str()),
            (400, "record-not-found")
        );
        assert_eq!(wrong.message, "Record not found: app-admin-token");
        assert!(!wrong.envelope().to_string().contains(&other_token));

        let mismatch = store
            .authenticate_dash(&AppAuth::new(&app.id, &other_token))
            .unwrap_err();
        assert_eq!(mismatch.hint["reason"], "admin-token-mismatch");
        assert!(mismatch.message.starts_with(&format!(
            "This admin token does not belong to app {}.",
            app.id
        )));
        assert_eq!(
            store
                .authenticate_dash(&AppAuth::new(&other.id, &other_token))
                .unwrap(),
            other
        );

        let unknown = store
            .authenticate_dash(&AppAuth::new(&app.id, uuid::Uuid::new_v4().to_string()))
            .unwrap_err();
        assert_eq!(
            (unknown.status, unknown.message.as_str()),
            (401, "Record not found: instant-user")
        );

        let malformed = store
            .authenticate_admin(&AppAuth::new(&app.id, "not-a-uuid"))
            .unwrap_err();
        assert_eq!(malformed.error_type, "param-malformed");
    }

    #[test]
    fn workspace_reopens_and_refuses_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let app_id = {
            let store = Store::open(dir.path()).unwrap();
            store.create_app("kept", false).unwrap().0.id
        };
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.apps().unwrap()[0].id, app_id);
        store
            .conn()
            .execute("UPDATE meta SET value = '99' WHERE key = 'format'", [])
            .unwrap();
        drop(store);
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with(&format!(
                "instant.sqlite3: workspace format 99 is not supported (expected {FORMAT_VERSION})"
            )),
            "{err}"
        );
    }

    #[test]
    fn workspace_of_the_uuid_keyed_format_is_refused_by_format() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Format 2 keyed `entities` and `triples` by the entity UUID.
            let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID; \
                 INSERT INTO meta VALUES ('format', '2'); \
                 CREATE TABLE entities (app_pk INTEGER NOT NULL, etype TEXT NOT NULL, \
                   entity_id TEXT NOT NULL, created_at INTEGER NOT NULL, \
                   PRIMARY KEY (app_pk, etype, entity_id)) WITHOUT ROWID;",
            )
            .unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with(&format!(
                "instant.sqlite3: workspace format 2 is not supported (expected {FORMAT_VERSION})"
            )),
            "{err}"
        );
    }

    #[test]
    fn background_checkpoints_copy_the_wal_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_app("checkpointed", false).unwrap();
        // The writer does not checkpoint below the high-water mark, so the database file only
        // grows past its first pages through the checkpointer.
        let file = dir.path().join(DATABASE_FILE);
        let size = || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while size() < 8 * 4096 && std::time::Instant::now() < deadline {
            std::thread::sleep(CHECKPOINT_INTERVAL / 2);
        }
        assert!(size() >= 8 * 4096, "database file is {} bytes", size());
        // Dropping the store stops the thread; the workspace then reopens with its data.
        drop(store);
        assert_eq!(Store::open(dir.path()).unwrap().apps().unwrap().len(), 1);
    }

    #[test]
    fn corrupted_workspace_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DATABASE_FILE),
            b"this is not a database, just garbage bytes",
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("instant.sqlite3: not a usable workspace database"),
            "{err}"
        );
    }

    #[test]
    fn attribute_catalogue_round_trips() {
        let store = Store::open_in_memory().unwrap();
        let (app, _) = store.create_app("attrs", false).unwrap();
        let conn = store.conn();
        let mut title = ServerAttr::blob("posts", "title");
        title.index = true;
        title.checked_data_type = Some("string".into());
        insert_attr(&conn, app.app_pk, &title).unwrap();
        let rows = load_attrs(&conn, app.app_pk).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].etype(), rows[0].label()), ("posts", "title"));
        assert!(rows[0].attr.index && !rows[0].attr.unique);
        assert_eq!(rows[0].attr.checked_data_type.as_deref(), Some("string"));
        // A second attribute with the same name is refused by the catalogue itself.
        assert!(insert_attr(&conn, app.app_pk, &title).is_err());
    }

    /// A file-backed engine with one app whose `items.code` is unique, holding one committed
    /// item per code of `committed`.
    fn engine_with_unique_code(
        dir: &Path,
        committed: &[&str],
    ) -> (crate::engine::LocalEngine, App) {
        use instant_api::{InstantApi, SchemaPushRequest};
        let engine = crate::engine::LocalEngine::open(dir).unwrap();
        let (app, token) = engine.store().create_app("group commit", false).unwrap();
        let auth = AppAuth::new(&app.id, &token);
        let code = json!({"valueType": "string", "required": false, "isIndexed": true,
                          "config": {"indexed": true, "unique": true}, "metadata": {}});
        engine
            .schema_push(
                &auth,
                &SchemaPushRequest {
                    schema: json!({"entities": {"items": {"attrs": {"code": code}, "links": {}}},
                                   "links": {}, "rooms": {}}),
                    check_types: true,
                    supports_background_updates: true,
                },
            )
            .unwrap();
        if !committed.is_empty() {
            crate::transact::transact(engine.store(), &app, &put_items(committed)).unwrap();
        }
        (engine, app)
    }

    fn put_items(codes: &[&str]) -> instant_api::TransactRequest {
        instant_api::TransactRequest {
            steps: codes
                .iter()
                .map(|code| json!(["update", "items", uuid::Uuid::new_v4().to_string(), {"code": code}]))
                .collect(),
            throw_on_missing_attrs: false,
        }
    }

    /// Items of the app as another connection sees them: what is committed.
    fn committed_items(dir: &Path, app: &App) -> i64 {
        let other = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        other
            .query_row(
                "SELECT count(*) FROM entities WHERE app_pk = ?1 AND etype = 'items'",
                [app.app_pk],
                |row| row.get(0),
            )
            .unwrap()
    }

    /// Waits (up to 20 s) until `ready` holds for the group commit state. The tests keep a
    /// group open with one stand-in waiter; on a timeout it is withdrawn and the group
    /// committed before failing, so that the members answer and the test ends instead of
    /// hanging.
    fn wait_for(store: &Store, what: &str, ready: impl Fn(&GroupState) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !ready(&store.group.lock()) {
            if std::time::Instant::now() >= deadline {
                store.group.lock().waiting -= 1;
                drop(store.conn());
                panic!("timed out waiting for {what}");
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Concurrent transact calls share one commit; none answers before it, a failed one leaves
    /// nothing behind (not even its steps before the failing one), the others are unaffected.
    /// A stand-in waiter keeps the group open until the test commits it through `conn()`, as
    /// any other use of the connection does.
    #[test]
    fn concurrent_transacts_share_one_commit_and_a_failed_one_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, app) = engine_with_unique_code(dir.path(), &["taken"]);
        let store = engine.store();
        let commits_before = store.group_commits();
        store.group.lock().waiting += 1;
        std::thread::scope(|scope| {
            let spawn = |codes: Vec<&'static str>| {
                let app = &app;
                scope.spawn(move || crate::transact::transact(store, app, &put_items(&codes)))
            };
            // The first member opens the group and the failing one joins it (a failing first
            // member is the case of the next test).
            let mut members = vec![spawn(vec!["a"])];
            wait_for(store, "the first member", |state| {
                state.open.as_ref().is_some_and(|open| open.members == 1)
            });
            members.extend([vec!["b", "taken"], vec!["c"], vec!["d"]].map(spawn));
            wait_for(store, "four members", |state| {
                state.open.as_ref().is_some_and(|open| open.members == 4)
            });
            assert_eq!(
                committed_items(dir.path(), &app),
                1,
                "nothing committed yet"
            );
            let answered: Vec<bool> = members.iter().map(|m| m.is_finished()).collect();
            store.group.lock().waiting -= 1;
            drop(store.conn());
            let results: Vec<_> = members.into_iter().map(|m| m.join().unwrap()).collect();
            let failed: Vec<usize> = (0..4).filter(|&n| results[n].is_err()).collect();
            assert_eq!(failed, [1], "{results:?}");
            assert!(
                results[1].as_ref().unwrap_err().message.contains("unique"),
                "{results:?}"
            );
            // Only the failed call could answer before the commit.
            assert!(!answered[0] && !answered[2] && !answered[3], "{answered:?}");
            let mut tx_ids: Vec<i64> = results.iter().flatten().map(|r| r.tx_id).collect();
            tx_ids.dedup();
            assert_eq!(tx_ids.len(), 3, "each call has its own tx id");
        });
        assert_eq!(committed_items(dir.path(), &app), 1 + 3);
        assert_eq!(store.group_commits(), commits_before + 1);
        assert!(store.group.lock().open.is_none());
    }

    /// A member that panics commits what the members before it did (they are answered) and
    /// goes on panicking; the connection is left with no transaction open.
    #[test]
    fn a_panicking_member_commits_the_group_before_it_panics() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, app) = engine_with_unique_code(dir.path(), &[]);
        let store = engine.store();
        store.group.lock().waiting += 1;
        std::thread::scope(|scope| {
            let first =
                scope.spawn(|| crate::transact::transact(store, &app, &put_items(&["kept"])));
            wait_for(store, "the first member", |state| {
                state.open.as_ref().is_some_and(|open| open.members == 1)
            });
            let panicking =
                scope.spawn(|| store.transact(|_| -> Result<(), ApiError> { panic!("boom") }));
            assert!(panicking.join().is_err(), "the panic goes on");
            assert!(first.join().unwrap().is_ok());
        });
        store.group.lock().waiting -= 1;
        assert_eq!(committed_items(dir.path(), &app), 1);
        assert!(store.group.lock().open.is_none());
        crate::transact::transact(store, &app, &put_items(&["after"])).unwrap();
        assert_eq!(committed_items(dir.path(), &app), 2);
    }

    /// The call that opens a group runs without a savepoint: when it fails, the whole
    /// transaction (its writes only) is rolled back and no group is left open, even with
    /// callers waiting; the next call opens a new group.
    #[test]
    fn a_failed_first_member_rolls_back_and_leaves_no_group_open() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, app) = engine_with_unique_code(dir.path(), &["taken"]);
        let store = engine.store();
        let commits_before = store.group_commits();
        store.group.lock().waiting += 1;
        let error =
            crate::transact::transact(store, &app, &put_items(&["new", "taken"])).unwrap_err();
        assert!(error.message.contains("unique"), "{error:?}");
        assert!(store.group.lock().open.is_none());
        assert_eq!(store.group_commits(), commits_before);
        store.group.lock().waiting -= 1;
        crate::transact::transact(store, &app, &put_items(&["next"])).unwrap();
        assert_eq!(
            committed_items(dir.path(), &app),
            2,
            "taken and next; not new"
        );
    }
}
