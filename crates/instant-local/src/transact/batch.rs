//! Batched SQL for the write path, so that a transact of many entities runs a few statements
//! per batch instead of several per entity:
//! - [`PendingInserts`] buffers `INSERT OR IGNORE` rows and writes them as multi-row
//!   statements. It first gives their entities keys ([`PendingInserts::resolve_keys`]), in
//!   entity id order, then writes the rows sorted by key, so the rows of new entities append to
//!   the B-trees (rows with equal keys are identical, so their order does not matter);
//! - [`PendingInserts::insert_entities`] inserts entity rows and tells which ones are new, and
//!   which ids are new to the app (their rows need no existence check: nothing refers to a key
//!   before it is assigned);
//! - [`IdProbe`] answers an existence question for many entity ids with one query per chunk.
//!
//! The engine writes the pending rows out before any other statement runs, so every read sees
//! the same data as if each row had been inserted on its own.

use std::sync::OnceLock;

use rusqlite::{Connection, OptionalExtension, Result, Row, Statement, ToSql};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::store::value_key;

/// One `triples` row to insert, but for its entity (see [`PendingInserts::push_triple`]); the
/// app and the time are the transaction's.
#[derive(Debug)]
pub struct TripleRow {
    pub attr_pk: i64,
    pub value: String,
    pub num: Option<f64>,
    pub ref_id: Option<String>,
    pub av: bool,
}

/// Rows to insert into `triples` and `entities`, written by [`PendingInserts::flush`], and the
/// entity keys the transaction has used. Keys are never removed, so the cache stays true for
/// the whole transaction (and it is dropped with it, committed or not).
#[derive(Debug, Default)]
pub struct PendingInserts {
    triples: Vec<(Entity, TripleRow)>,
    /// `(etype, entity_id)`.
    entities: Vec<(String, String)>,
    /// `entity_id` -> `entity_pk`.
    keys: FxHashMap<String, i64>,
}

/// The entity of a pending triple: its key when the transaction knows it already (the entities
/// of a bulk write are keyed before their triples are written), else its id, keyed at flush.
#[derive(Debug)]
enum Entity {
    Key(i64),
    Id(String),
}

/// Rows per multi-row `INSERT`, largest first: a batch is written with as many of the largest
/// statement as fit, then the smaller ones, so only these few statement texts are prepared.
const INSERT_CHUNKS: [usize; 3] = [64, 8, 1];

/// Each tuple is `(?1, <own parameters>, ?2)`: `?1` the app, `?2` the time.
fn plain_tuple<const OWN: usize>(first: usize) -> String {
    let mut tuple = String::from("(?1");
    for param in first..first + OWN {
        tuple.push_str(&format!(", ?{param}"));
    }
    tuple.push_str(", ?2)");
    tuple
}

const TRIPLES_INSERT: &str =
    "INSERT OR IGNORE INTO triples (app_pk, entity_pk, attr_pk, value, vkey, num, ref_id, av, created_at) VALUES ";
const TRIPLE_PARAMS: usize = 7;

const ENTITIES_INSERT: &str =
    "INSERT OR IGNORE INTO entities (app_pk, etype, entity_pk, entity_id, created_at) VALUES ";
const ENTITY_PARAMS: usize = 3;

/// New keys, in the order of the rows. `OR IGNORE` rather than `ON CONFLICT DO NOTHING`: the
/// latter still aborts on a NOT NULL violation, so SQLite would keep a statement journal of
/// every page the multi-row insert touches, and no bound value here can be null.
const KEYS_INSERT: &str = "INSERT OR IGNORE INTO entity_keys (app_pk, entity_id) VALUES ";

fn key_tuple(first: usize) -> String {
    format!("(?1, ?{first})")
}

/// A multi-row `INSERT` and its texts for each of [`INSERT_CHUNKS`] rows, built once: the
/// write path runs these statements several times per transact.
struct InsertSql {
    head: &'static str,
    tuple: Tuple,
    params_per_row: usize,
    returning: &'static str,
    texts: OnceLock<[String; INSERT_CHUNKS.len()]>,
}

impl InsertSql {
    const fn new(
        head: &'static str,
        tuple: Tuple,
        params_per_row: usize,
        returning: &'static str,
    ) -> InsertSql {
        InsertSql {
            head,
            tuple,
            params_per_row,
            returning,
            texts: OnceLock::new(),
        }
    }

    /// The text for `INSERT_CHUNKS[chunk]` rows.
    fn text(&self, chunk: usize) -> &str {
        &self.texts.get_or_init(|| {
            INSERT_CHUNKS.map(|rows| {
                let mut text = values_sql(self.head, self.tuple, self.params_per_row, rows);
                text.push_str(self.returning);
                text
            })
        })[chunk]
    }
}

static KEYS_SQL: InsertSql = InsertSql::new(KEYS_INSERT, key_tuple, 1, "");
static ENTITIES_SQL: InsertSql = InsertSql::new(
    ENTITIES_INSERT,
    plain_tuple::<ENTITY_PARAMS>,
    ENTITY_PARAMS,
    "",
);
static NEW_ENTITIES_SQL: InsertSql = InsertSql::new(
    ENTITIES_INSERT,
    plain_tuple::<ENTITY_PARAMS>,
    ENTITY_PARAMS,
    " RETURNING etype, entity_pk",
);
static TRIPLES_SQL: InsertSql = InsertSql::new(
    TRIPLES_INSERT,
    plain_tuple::<TRIPLE_PARAMS>,
    TRIPLE_PARAMS,
    "",
);

impl PendingInserts {
    pub fn is_empty(&self) -> bool {
        self.triples.is_empty() && self.entities.is_empty()
    }

    pub fn push_triple(&mut self, entity_id: &str, row: TripleRow) {
        let entity = match self.keys.get(entity_id) {
            Some(pk) => Entity::Key(*pk),
            None => Entity::Id(entity_id.to_string()),
        };
        self.triples.push((entity, row));
    }

    pub fn push_entity(&mut self, etype: &str, entity_id: &str) {
        self.entities
            .push((etype.to_string(), entity_id.to_string()));
    }

    /// The key of every id in `ids`, from the cache, the table, or assigned now (new ids get
    /// the next keys in id order). The keys assigned now are added to `assigned`.
    pub fn resolve_keys<'i>(
        &mut self,
        conn: &Connection,
        app_pk: i64,
        ids: impl IntoIterator<Item = &'i str>,
        assigned: &mut FxHashSet<i64>,
    ) -> Result<()> {
        let mut missing: Vec<&str> = ids
            .into_iter()
            .filter(|id| !self.keys.contains_key(*id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        // Most ids a write names first are new: inserting first costs one index descent for
        // those, and only the ids that already had a key are looked up after. When a statement
        // inserts all its rows, their keys are the consecutive rowids ending at the last one
        // (each row takes the largest rowid plus one, and keys are never removed), which the
        // first row's key confirms; a statement that skipped some ids leaves its rows to the
        // lookup.
        let keys = &mut self.keys;
        insert_chunked(
            conn,
            &KEYS_SQL,
            &missing,
            app_pk,
            0,
            |statement, first, id| statement.raw_bind_parameter(first, id),
            |statement, ids| {
                if statement.raw_execute()? != ids.len() {
                    return Ok(());
                }
                let last = conn.last_insert_rowid();
                let first = last - (ids.len() as i64 - 1);
                let first_id: Option<String> = conn
                    .prepare_cached("SELECT entity_id FROM entity_keys WHERE entity_pk = ?1")?
                    .query_row([first], |row| row.get(0))
                    .optional()?;
                if first_id.as_deref() != ids.first().copied() {
                    return Ok(());
                }
                for (pk, id) in (first..).zip(ids) {
                    keys.insert(id.to_string(), pk);
                    assigned.insert(pk);
                }
                Ok(())
            },
        )?;
        let mut existing = conn.prepare_cached(
            "SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2",
        )?;
        for id in missing {
            if !self.keys.contains_key(id) {
                let pk: i64 =
                    existing.query_row(rusqlite::params![app_pk, id], |row| row.get(0))?;
                self.keys.insert(id.to_string(), pk);
            }
        }
        Ok(())
    }

    /// The key of an id given to [`PendingInserts::resolve_keys`] before.
    fn key(&self, id: &str) -> Result<i64> {
        self.keys
            .get(id)
            .copied()
            .ok_or(rusqlite::Error::QueryReturnedNoRows)
    }

    /// Writes the pending rows (`?1` is the app, `?2` the time of every row).
    pub fn flush(&mut self, conn: &Connection, app_pk: i64, now: i64) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let entities = std::mem::take(&mut self.entities);
        let triples = std::mem::take(&mut self.triples);
        self.resolve_keys(
            conn,
            app_pk,
            entities
                .iter()
                .map(|(_, id)| id.as_str())
                .chain(triples.iter().filter_map(|(entity, _)| match entity {
                    Entity::Id(id) => Some(id.as_str()),
                    Entity::Key(_) => None,
                })),
            &mut FxHashSet::default(),
        )?;
        let mut entities: Vec<(&str, i64, &str)> = entities
            .iter()
            .map(|(etype, id)| Ok((etype.as_str(), self.key(id)?, id.as_str())))
            .collect::<Result<_>>()?;
        entities.sort_unstable();
        insert_rows(
            conn,
            &ENTITIES_SQL,
            &entities,
            app_pk,
            now,
            |statement, first, (etype, pk, id)| {
                statement.raw_bind_parameter(first, etype)?;
                statement.raw_bind_parameter(first + 1, pk)?;
                statement.raw_bind_parameter(first + 2, id)
            },
        )?;
        let mut triples: Vec<(i64, &TripleRow)> = triples
            .iter()
            .map(|(entity, row)| {
                let pk = match entity {
                    Entity::Key(pk) => *pk,
                    Entity::Id(id) => self.key(id)?,
                };
                Ok((pk, row))
            })
            .collect::<Result<_>>()?;
        triples.sort_unstable_by(|(a_pk, a), (b_pk, b)| {
            (a_pk, a.attr_pk, a.value.as_str()).cmp(&(b_pk, b.attr_pk, b.value.as_str()))
        });
        insert_rows(
            conn,
            &TRIPLES_SQL,
            &triples,
            app_pk,
            now,
            |statement, first, (pk, row)| {
                statement.raw_bind_parameter(first, pk)?;
                statement.raw_bind_parameter(first + 1, row.attr_pk)?;
                statement.raw_bind_parameter(first + 2, &row.value)?;
                statement.raw_bind_parameter(first + 3, value_key(&row.value))?;
                statement.raw_bind_parameter(first + 4, row.num)?;
                statement.raw_bind_parameter(first + 5, &row.ref_id)?;
                statement.raw_bind_parameter(first + 6, row.av)
            },
        )
    }

    /// Inserts entity rows `(etype, entity_id)` now (after the pending rows), and tells which
    /// were not there yet.
    pub fn insert_entities<'r>(
        &mut self,
        conn: &Connection,
        app_pk: i64,
        now: i64,
        rows: &[(&'r str, &'r str)],
    ) -> Result<InsertedEntities<'r>> {
        self.flush(conn, app_pk, now)?;
        let mut assigned = FxHashSet::default();
        self.resolve_keys(conn, app_pk, rows.iter().map(|(_, id)| *id), &mut assigned)?;
        let mut rows: Vec<(&str, i64, &str)> = rows
            .iter()
            .map(|(etype, id)| Ok((*etype, self.key(id)?, *id)))
            .collect::<Result<_>>()?;
        rows.sort_unstable();
        rows.dedup();
        // An id keyed by this very call had no key before it, and every row refers to its
        // entity by key: nothing is stored for it yet, so its rows are all new. Only the rows
        // of the other ids are asked which ones `OR IGNORE` skips.
        let (new_rows, other_rows): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|(_, pk, _)| assigned.contains(pk));
        let bind = |statement: &mut Statement<'_>, first, (etype, pk, id): &(&str, i64, &str)| {
            statement.raw_bind_parameter(first, etype)?;
            statement.raw_bind_parameter(first + 1, pk)?;
            statement.raw_bind_parameter(first + 2, id)
        };
        insert_rows(conn, &ENTITIES_SQL, &new_rows, app_pk, now, bind)?;
        let mut inserted = InsertedEntities {
            created: FxHashSet::with_capacity_and_hasher(
                new_rows.len() + other_rows.len(),
                Default::default(),
            ),
            new_ids: FxHashSet::with_capacity_and_hasher(new_rows.len(), Default::default()),
        };
        for (etype, _, id) in &new_rows {
            inserted.created.insert((etype, id));
            inserted.new_ids.insert(id);
        }
        let mut returned = Vec::new();
        insert_rows_returning(
            conn,
            &NEW_ENTITIES_SQL,
            &other_rows,
            app_pk,
            now,
            bind,
            |row| {
                returned.push((row.get::<_, String>(0)?, row.get::<_, i64>(1)?));
                Ok(())
            },
        )?;
        for (etype, pk) in returned {
            // `other_rows` is sorted by (etype, key), and a key is one id.
            if let Ok(found) =
                other_rows.binary_search_by(|(e, p, _)| (*e, *p).cmp(&(etype.as_str(), pk)))
            {
                let (etype, _, id) = other_rows[found];
                inserted.created.insert((etype, id));
            }
        }
        Ok(inserted)
    }
}

/// What [`PendingInserts::insert_entities`] did, in the caller's strings.
#[derive(Debug, Default)]
pub struct InsertedEntities<'r> {
    /// `(etype, entity_id)` of the rows that were not there yet.
    pub created: FxHashSet<(&'r str, &'r str)>,
    /// The ids that had no key before the call, so no triple, link or entity row of any
    /// namespace (all of them are among `created`).
    pub new_ids: FxHashSet<&'r str>,
}

/// The text of one row's tuple, given the index of its first own parameter (`?1` is the app,
/// `?2` the time).
type Tuple = fn(usize) -> String;

/// Inserts `rows` with multi-row statements of [`INSERT_CHUNKS`] rows; `bind` binds one
/// row's own parameters from the given index on.
fn insert_rows<T>(
    conn: &Connection,
    sql: &InsertSql,
    rows: &[T],
    app_pk: i64,
    now: i64,
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> Result<()>,
) -> Result<()> {
    insert_chunked(conn, sql, rows, app_pk, now, bind, |statement, _| {
        statement.raw_execute().map(drop)
    })
}

/// [`insert_rows`] for a statement with a `RETURNING` clause, each returned row given to
/// `returned`.
fn insert_rows_returning<T>(
    conn: &Connection,
    sql: &InsertSql,
    rows: &[T],
    app_pk: i64,
    now: i64,
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> Result<()>,
    mut returned: impl FnMut(&Row<'_>) -> Result<()>,
) -> Result<()> {
    insert_chunked(conn, sql, rows, app_pk, now, bind, |statement, _| {
        let mut result = statement.raw_query();
        while let Some(row) = result.next()? {
            returned(row)?;
        }
        Ok(())
    })
}

/// Binds `rows` to multi-row statements of [`INSERT_CHUNKS`] rows (`?1` the app, `?2` the
/// time, `bind` binds one row's own parameters from the given index on), and gives each
/// bound statement and its rows to `run`, which runs it.
fn insert_chunked<T>(
    conn: &Connection,
    sql: &InsertSql,
    rows: &[T],
    app_pk: i64,
    now: i64,
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> Result<()>,
    mut run: impl FnMut(&mut Statement<'_>, &[T]) -> Result<()>,
) -> Result<()> {
    let mut rest = rows;
    for (index, chunk) in INSERT_CHUNKS.into_iter().enumerate() {
        if rest.len() < chunk {
            continue;
        }
        let mut statement = conn.prepare_cached(sql.text(index))?;
        while rest.len() >= chunk {
            let (batch, tail) = rest.split_at(chunk);
            statement.raw_bind_parameter(1, app_pk)?;
            statement.raw_bind_parameter(2, now)?;
            for (index, row) in batch.iter().enumerate() {
                bind(&mut statement, 3 + index * sql.params_per_row, row)?;
            }
            run(&mut statement, batch)?;
            rest = tail;
        }
    }
    Ok(())
}

/// `head` followed by `rows` tuples, row `n`'s own parameters starting at
/// `3 + n * params_per_row`.
fn values_sql(head: &str, tuple: Tuple, params_per_row: usize, rows: usize) -> String {
    let mut sql = String::from(head);
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push_str(&tuple(3 + row * params_per_row));
    }
    sql
}

/// Ids per existence query. The last chunk is padded by repeating its last id, so that one
/// statement text serves every chunk (a repeated id changes nothing in a set of answers).
const PROBE_CHUNK: usize = 128;

/// Which of many entity ids satisfy a condition, one query per [`PROBE_CHUNK`] ids. Each probe
/// has a scope (`?2`): a namespace, or an attribute's `attr_pk` for [`IdProbe::HasValue`] and
/// [`IdProbe::HasAttr`].
#[derive(Debug, Clone, Copy)]
pub enum IdProbe {
    /// The id holds a triple of one of the namespace's attributes (null or not).
    HasTripleIn,
    /// The id has a row in `entities` for the namespace.
    HasRow,
    /// The id exists in the namespace: a row in `entities`, or a triple of one of the
    /// namespace's attributes (`validate-mode`'s notion of an existing entity).
    InNamespace,
    /// The id holds a non-null value of one of the namespace's attributes.
    HasValueIn,
    /// The id holds a non-null value of the attribute.
    HasValue,
    /// The id holds a triple of the attribute, null or not.
    HasAttr,
}

impl IdProbe {
    /// The condition on `keyed.pk`, the key of the id asked about. A null is `vkey = 'null'`
    /// as well as `value = 'null'`, and `vkey` is in `triples_eav`, so no row is read.
    fn condition(self) -> &'static str {
        match self {
            IdProbe::HasTripleIn => {
                "EXISTS (SELECT 1 FROM triples t JOIN attrs a ON a.attr_pk = t.attr_pk \
                 WHERE t.app_pk = ?1 AND t.entity_pk = keyed.pk AND a.etype = ?2)"
            }
            IdProbe::HasRow => {
                "EXISTS (SELECT 1 FROM entities WHERE app_pk = ?1 AND etype = ?2 AND entity_pk = keyed.pk)"
            }
            IdProbe::InNamespace => {
                "EXISTS (SELECT 1 FROM entities WHERE app_pk = ?1 AND etype = ?2 AND entity_pk = keyed.pk) \
                 OR EXISTS (SELECT 1 FROM triples t JOIN attrs a ON a.attr_pk = t.attr_pk \
                            WHERE t.app_pk = ?1 AND t.entity_pk = keyed.pk AND a.etype = ?2)"
            }
            IdProbe::HasValueIn => {
                "EXISTS (SELECT 1 FROM triples t JOIN attrs a ON a.attr_pk = t.attr_pk \
                 WHERE t.app_pk = ?1 AND t.entity_pk = keyed.pk AND a.etype = ?2 AND t.vkey <> 'null')"
            }
            IdProbe::HasValue => {
                "EXISTS (SELECT 1 FROM triples WHERE app_pk = ?1 AND entity_pk = keyed.pk \
                 AND attr_pk = ?2 AND vkey <> 'null')"
            }
            IdProbe::HasAttr => {
                "EXISTS (SELECT 1 FROM triples WHERE app_pk = ?1 AND entity_pk = keyed.pk \
                 AND attr_pk = ?2)"
            }
        }
    }

    /// [`IdProbe::matching`] for ids grouped by namespace, each namespace being the scope of
    /// its own ids: the matching ids of each namespace.
    pub fn matching_per_namespace<'k>(
        self,
        conn: &Connection,
        app_pk: i64,
        ids_by_etype: FxHashMap<&'k str, Vec<&str>>,
    ) -> Result<FxHashMap<&'k str, FxHashSet<String>>> {
        ids_by_etype
            .into_iter()
            .map(|(etype, ids)| Ok((etype, self.matching(conn, app_pk, etype, ids)?)))
            .collect()
    }

    /// The ids among `ids` that satisfy the probe within `scope`.
    pub fn matching<'i>(
        self,
        conn: &Connection,
        app_pk: i64,
        scope: impl ToSql,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Result<FxHashSet<String>> {
        let mut ids: Vec<&str> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let mut found = FxHashSet::default();
        if ids.is_empty() {
            return Ok(found);
        }
        let mut sql = String::from("WITH ids(id) AS (VALUES ");
        for index in 0..PROBE_CHUNK {
            if index > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("(?{})", 3 + index));
        }
        // Every probe needs a row keyed by the id, so ids without a key answer no. `CROSS
        // JOIN` keeps the ids as the outer loop: the planner has no statistics on the few ids
        // and would otherwise scan the keys.
        sql.push_str(
            "), keyed(id, pk) AS (SELECT ids.id, k.entity_pk FROM ids \
             CROSS JOIN entity_keys k ON k.app_pk = ?1 AND k.entity_id = ids.id) \
             SELECT id FROM keyed WHERE ",
        );
        sql.push_str(self.condition());
        let mut statement = conn.prepare_cached(&sql)?;
        for chunk in ids.chunks(PROBE_CHUNK) {
            statement.raw_bind_parameter(1, app_pk)?;
            statement.raw_bind_parameter(2, &scope)?;
            let padding = chunk[chunk.len() - 1];
            for index in 0..PROBE_CHUNK {
                statement.raw_bind_parameter(3 + index, chunk.get(index).unwrap_or(&padding))?;
            }
            let mut rows = statement.raw_query();
            while let Some(row) = rows.next()? {
                found.insert(row.get(0)?);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_sql_numbers_each_rows_own_parameters() {
        assert_eq!(
            values_sql(
                "INSERT INTO t VALUES ",
                |first| format!("(?1, ?{first}, ?{}, ?2)", first + 1),
                2,
                2
            ),
            "INSERT INTO t VALUES (?1, ?3, ?4, ?2),(?1, ?5, ?6, ?2)"
        );
        assert_eq!(
            values_sql(KEYS_INSERT, key_tuple, 1, 2),
            "INSERT OR IGNORE INTO entity_keys (app_pk, entity_id) VALUES (?1, ?3),(?1, ?4)"
        );
        assert_eq!(
            values_sql("INSERT INTO t VALUES ", plain_tuple::<1>, 1, 2),
            "INSERT INTO t VALUES (?1, ?3, ?2),(?1, ?4, ?2)"
        );
    }

    #[test]
    fn flush_writes_every_row_once_across_chunk_sizes() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::SCHEMA_SQL).unwrap();
        let mut pending = PendingInserts::default();
        // 64 + 8 + 1 + 1 rows: every statement size, and a repeated row that must be ignored.
        for n in 0..74 {
            pending.push_entity("items", &format!("id-{n:03}"));
            pending.push_triple(
                &format!("id-{n:03}"),
                TripleRow {
                    attr_pk: 7,
                    value: format!("\"v{n}\""),
                    num: None,
                    ref_id: None,
                    av: n % 2 == 0,
                },
            );
        }
        pending.push_entity("items", "id-000");
        pending.flush(&conn, 1, 99).unwrap();
        let rows = [
            ("items", "id-000"),
            ("items", "id-900"),
            ("others", "id-001"),
            ("items", "id-900"),
        ];
        let inserted = pending.insert_entities(&conn, 1, 99, &rows).unwrap();
        let mut created: Vec<_> = inserted.created.into_iter().collect();
        created.sort_unstable();
        // `id-000` is an `items` entity already; `id-001` is one, but not an `others` one.
        assert_eq!(created, [("items", "id-900"), ("others", "id-001")]);
        // Only the id keyed by that call is new: the flush before it keyed the others.
        let new_ids: Vec<_> = inserted.new_ids.into_iter().collect();
        assert_eq!(new_ids, ["id-900"]);
        assert!(pending.is_empty());
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM entities WHERE app_pk = 1 AND created_at = 99"),
            76
        );
        assert_eq!(
            count("SELECT count(*) FROM triples WHERE app_pk = 1 AND attr_pk = 7"),
            74
        );
        assert_eq!(count("SELECT count(*) FROM triples WHERE av = 1"), 37);
        assert_eq!(
            count(
                "SELECT count(*) FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                 WHERE k.entity_id = 'id-073' AND t.value = '\"v73\"'"
            ),
            1
        );
        // Keys follow the order of the ids: the rows of new entities append.
        assert_eq!(
            count("SELECT entity_pk FROM entity_keys WHERE entity_id = 'id-073'")
                - count("SELECT entity_pk FROM entity_keys WHERE entity_id = 'id-000'"),
            73
        );
    }

    #[test]
    fn keys_are_right_when_a_statement_skips_ids_that_have_one() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::SCHEMA_SQL).unwrap();
        let mut first = PendingInserts::default();
        for n in 0..4 {
            first.push_entity("items", &format!("id-{n}"));
        }
        first.flush(&conn, 1, 1).unwrap();
        // A later transaction: one statement of 8 ids, 4 of which have a key already.
        let ids: Vec<String> = (0..4).chain(90..94).map(|n| format!("id-{n}")).collect();
        let rows: Vec<(&str, &str)> = ids.iter().map(|id| ("items", id.as_str())).collect();
        let mut later = PendingInserts::default();
        let inserted = later.insert_entities(&conn, 1, 2, &rows).unwrap();
        let mut created: Vec<&str> = inserted.created.iter().map(|(_, id)| *id).collect();
        created.sort_unstable();
        assert_eq!(created, ["id-90", "id-91", "id-92", "id-93"]);
        assert!(inserted.new_ids.iter().all(|id| created.contains(id)));
        for id in &ids {
            let stored: i64 = conn
                .query_row(
                    "SELECT entity_pk FROM entity_keys WHERE entity_id = ?1",
                    [id],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(later.key(id).unwrap(), stored, "{id}");
            let entity_pk: i64 = conn
                .query_row(
                    "SELECT entity_pk FROM entities WHERE entity_id = ?1",
                    [id],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(entity_pk, stored, "{id}");
        }
    }

    #[test]
    fn probes_answer_across_padded_chunks() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::SCHEMA_SQL).unwrap();
        let mut pending = PendingInserts::default();
        for n in (0..300).step_by(3) {
            pending.push_entity("items", &format!("id-{n}"));
        }
        pending.flush(&conn, 1, 1).unwrap();
        let ids: Vec<String> = (0..300).map(|n| format!("id-{n}")).collect();
        let found = IdProbe::HasRow
            .matching(&conn, 1, "items", ids.iter().map(String::as_str))
            .unwrap();
        assert_eq!(found.len(), 100);
        assert!(found.contains("id-297") && !found.contains("id-298"));
        let elsewhere = IdProbe::HasRow
            .matching(&conn, 1, "others", ids.iter().map(String::as_str))
            .unwrap();
        assert!(elsewhere.is_empty());
    }
}
