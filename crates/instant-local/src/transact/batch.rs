//! Batched SQL for the write path, so that a transact of many entities runs a few statements
//! per batch instead of several per entity:
//! - [`PendingInserts`] buffers `INSERT OR IGNORE` rows and writes them as multi-row
//!   statements, sorted by primary key so that consecutive rows land on neighbouring B-tree
//!   pages (rows with equal keys are identical, so their order does not matter);
//! - [`insert_entities`] inserts entity rows and tells which ones are new;
//! - [`IdProbe`] answers an existence question for many entity ids with one query per chunk.
//!
//! The engine writes the pending rows out before any other statement runs, so every read sees
//! the same data as if each row had been inserted on its own.

use rusqlite::{Connection, Result, Row, Statement, ToSql};
use rustc_hash::FxHashSet;

/// One `triples` row to insert; the app and the time are the transaction's.
#[derive(Debug)]
pub struct TripleRow {
    pub entity_id: String,
    pub attr_pk: i64,
    pub value: String,
    pub num: Option<f64>,
    pub ref_id: Option<String>,
    pub av: bool,
}

/// Rows to insert into `triples` and `entities`, written by [`PendingInserts::flush`].
#[derive(Debug, Default)]
pub struct PendingInserts {
    triples: Vec<TripleRow>,
    /// `(etype, entity_id)`.
    entities: Vec<(String, String)>,
}

/// Rows per multi-row `INSERT`, largest first: a batch is written with as many of the largest
/// statement as fit, then the smaller ones, so only these few statement texts are prepared.
const INSERT_CHUNKS: [usize; 3] = [64, 8, 1];

const TRIPLES_INSERT: &str =
    "INSERT OR IGNORE INTO triples (app_pk, entity_id, attr_pk, value, num, ref_id, av, created_at) VALUES ";
const TRIPLE_PARAMS: usize = 6;

const ENTITIES_INSERT: &str =
    "INSERT OR IGNORE INTO entities (app_pk, etype, entity_id, created_at) VALUES ";
const ENTITY_PARAMS: usize = 2;

impl PendingInserts {
    pub fn is_empty(&self) -> bool {
        self.triples.is_empty() && self.entities.is_empty()
    }

    pub fn push_triple(&mut self, row: TripleRow) {
        self.triples.push(row);
    }

    pub fn push_entity(&mut self, etype: &str, entity_id: &str) {
        self.entities
            .push((etype.to_string(), entity_id.to_string()));
    }

    /// Writes the pending rows (`?1` is the app, `?2` the time of every row).
    pub fn flush(&mut self, conn: &Connection, app_pk: i64, now: i64) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut entities = std::mem::take(&mut self.entities);
        entities.sort_unstable();
        insert_rows(
            conn,
            ENTITIES_INSERT,
            ENTITY_PARAMS,
            &entities,
            app_pk,
            now,
            |statement, first, (etype, id)| {
                statement.raw_bind_parameter(first, etype)?;
                statement.raw_bind_parameter(first + 1, id)
            },
        )?;
        let mut triples = std::mem::take(&mut self.triples);
        triples.sort_unstable_by(|a, b| {
            (a.entity_id.as_str(), a.attr_pk, a.value.as_str()).cmp(&(
                b.entity_id.as_str(),
                b.attr_pk,
                b.value.as_str(),
            ))
        });
        insert_rows(
            conn,
            TRIPLES_INSERT,
            TRIPLE_PARAMS,
            &triples,
            app_pk,
            now,
            |statement, first, row| {
                statement.raw_bind_parameter(first, &row.entity_id)?;
                statement.raw_bind_parameter(first + 1, row.attr_pk)?;
                statement.raw_bind_parameter(first + 2, &row.value)?;
                statement.raw_bind_parameter(first + 3, row.num)?;
                statement.raw_bind_parameter(first + 4, &row.ref_id)?;
                statement.raw_bind_parameter(first + 5, row.av)
            },
        )
    }
}

/// Inserts entity rows `(etype, entity_id)` now, and returns those that were not there yet
/// (`RETURNING` leaves out the rows `OR IGNORE` skips).
pub fn insert_entities(
    conn: &Connection,
    app_pk: i64,
    now: i64,
    rows: &[(&str, &str)],
) -> Result<FxHashSet<(String, String)>> {
    let mut rows = rows.to_vec();
    rows.sort_unstable();
    rows.dedup();
    let mut created = FxHashSet::with_capacity_and_hasher(rows.len(), Default::default());
    insert_rows_returning(
        conn,
        (ENTITIES_INSERT, " RETURNING etype, entity_id"),
        ENTITY_PARAMS,
        &rows,
        app_pk,
        now,
        |statement, first, (etype, id)| {
            statement.raw_bind_parameter(first, etype)?;
            statement.raw_bind_parameter(first + 1, id)
        },
        |row| {
            created.insert((row.get(0)?, row.get(1)?));
            Ok(())
        },
    )?;
    Ok(created)
}

/// Inserts `rows` with multi-row statements of [`INSERT_CHUNKS`] rows. Each row is
/// `(?1, <params_per_row own parameters>, ?2)`; `bind` binds one row's own parameters from the
/// given index on.
fn insert_rows<T>(
    conn: &Connection,
    head: &str,
    params_per_row: usize,
    rows: &[T],
    app_pk: i64,
    now: i64,
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> Result<()>,
) -> Result<()> {
    insert_rows_returning(
        conn,
        (head, ""),
        params_per_row,
        rows,
        app_pk,
        now,
        bind,
        |_| Ok(()),
    )
}

/// [`insert_rows`] with a `RETURNING` clause (`sql.1`), each returned row given to `returned`.
#[allow(clippy::too_many_arguments)]
fn insert_rows_returning<T>(
    conn: &Connection,
    sql: (&str, &str),
    params_per_row: usize,
    rows: &[T],
    app_pk: i64,
    now: i64,
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> Result<()>,
    mut returned: impl FnMut(&Row<'_>) -> Result<()>,
) -> Result<()> {
    let (head, returning) = sql;
    let mut rest = rows;
    for chunk in INSERT_CHUNKS {
        if rest.len() < chunk {
            continue;
        }
        let mut text = values_sql(head, params_per_row, chunk);
        text.push_str(returning);
        let mut statement = conn.prepare_cached(&text)?;
        while rest.len() >= chunk {
            let (batch, tail) = rest.split_at(chunk);
            statement.raw_bind_parameter(1, app_pk)?;
            statement.raw_bind_parameter(2, now)?;
            for (index, row) in batch.iter().enumerate() {
                bind(&mut statement, 3 + index * params_per_row, row)?;
            }
            let mut result = statement.raw_query();
            while let Some(row) = result.next()? {
                returned(row)?;
            }
            rest = tail;
        }
    }
    Ok(())
}

/// `head` followed by `rows` tuples `(?1, ?3, ?4, …, ?2)`.
fn values_sql(head: &str, params_per_row: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (8 + 6 * params_per_row));
    sql.push_str(head);
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push_str("(?1");
        for param in 0..params_per_row {
            sql.push_str(&format!(", ?{}", 3 + row * params_per_row + param));
        }
        sql.push_str(", ?2)");
    }
    sql
}

/// Ids per existence query. The last chunk is padded by repeating its last id, so that one
/// statement text serves every chunk (a repeated id changes nothing in a set of answers).
const PROBE_CHUNK: usize = 128;

/// Which of many entity ids satisfy a condition, one query per [`PROBE_CHUNK`] ids. Each probe
/// has a scope (`?2`): a namespace, or an attribute's `attr_pk` for [`IdProbe::HasValue`].
#[derive(Debug, Clone, Copy)]
pub enum IdProbe {
    /// The id has at least one triple, in any namespace (scope unused).
    HasTriple,
    /// The id has a row in `entities` for the namespace.
    HasRow,
    /// The id exists in the namespace: a row in `entities`, or a triple of one of the
    /// namespace's attributes (`validate-mode`'s notion of an existing entity).
    InNamespace,
    /// The id holds a non-null value of one of the namespace's attributes.
    HasValueIn,
    /// The id holds a non-null value of the attribute.
    HasValue,
}

impl IdProbe {
    fn condition(self) -> &'static str {
        match self {
            IdProbe::HasTriple => {
                "EXISTS (SELECT 1 FROM triples WHERE app_pk = ?1 AND entity_id = ids.id)"
            }
            IdProbe::HasRow => {
                "EXISTS (SELECT 1 FROM entities WHERE app_pk = ?1 AND etype = ?2 AND entity_id = ids.id)"
            }
            IdProbe::InNamespace => {
                "EXISTS (SELECT 1 FROM entities WHERE app_pk = ?1 AND etype = ?2 AND entity_id = ids.id) \
                 OR EXISTS (SELECT 1 FROM triples t JOIN attrs a ON a.attr_pk = t.attr_pk \
                            WHERE t.app_pk = ?1 AND t.entity_id = ids.id AND a.etype = ?2)"
            }
            IdProbe::HasValueIn => {
                "EXISTS (SELECT 1 FROM triples t JOIN attrs a ON a.attr_pk = t.attr_pk \
                 WHERE t.app_pk = ?1 AND t.entity_id = ids.id AND a.etype = ?2 AND t.value <> 'null')"
            }
            IdProbe::HasValue => {
                "EXISTS (SELECT 1 FROM triples WHERE app_pk = ?1 AND entity_id = ids.id \
                 AND attr_pk = ?2 AND value <> 'null')"
            }
        }
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
        sql.push_str(") SELECT id FROM ids WHERE ");
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
            values_sql("INSERT INTO t VALUES ", 2, 2),
            "INSERT INTO t VALUES (?1, ?3, ?4, ?2),(?1, ?5, ?6, ?2)"
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
            pending.push_triple(TripleRow {
                entity_id: format!("id-{n:03}"),
                attr_pk: 7,
                value: format!("\"v{n}\""),
                num: None,
                ref_id: None,
                av: n % 2 == 0,
            });
        }
        pending.push_entity("items", "id-000");
        pending.flush(&conn, 1, 99).unwrap();
        let created = insert_entities(&conn, 1, 99, &[("items", "id-000"), ("items", "id-900")]);
        let created: Vec<_> = created.unwrap().into_iter().collect();
        assert_eq!(created, [("items".to_string(), "id-900".to_string())]);
        assert!(pending.is_empty());
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM entities WHERE app_pk = 1 AND created_at = 99"),
            75
        );
        assert_eq!(
            count("SELECT count(*) FROM triples WHERE app_pk = 1 AND attr_pk = 7"),
            74
        );
        assert_eq!(count("SELECT count(*) FROM triples WHERE av = 1"), 37);
        assert_eq!(
            count("SELECT count(*) FROM triples WHERE entity_id = 'id-073' AND value = '\"v73\"'"),
            1
        );
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
