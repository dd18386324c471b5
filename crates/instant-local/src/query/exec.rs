//! Running planned forms against the store and shaping the result tree
//! (`util/instaql.clj`: `obj-node`, `sort-entries`, `instaql-ref-nodes->object-tree`).
//!
//! Candidates for a top-level form come from an index when one top-level condition allows it
//! (equality or `$in` on a value, an id or a link; a numeric or date comparison), otherwise
//! from the `entities_created` index in `serverCreatedAt` order, which also lets the default
//! order with `limit`/`offset` stop early. The full `where` is then evaluated per candidate.
//!
//! Ordering by an attribute treats an entity without a triple for it as holding `null`: the
//! server joins on the attribute's triples, and keeps a `null` triple for every entity of an
//! indexed attribute, which is the only kind it orders by.

use std::cmp::Ordering;
use std::collections::HashMap;

use instant_api::ApiError;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::dates;
use super::plan::{
    Catalogue, CmpOp, Filter, FormPlan, Matcher, Node, OrderKey, Page, PathTest, Target, Test,
};
use crate::store::sql_error;

/// One stored value as a condition sees it.
struct Stored {
    value: Value,
    num: Option<f64>,
}

/// An entity on its way into the result tree.
struct Entity {
    id: String,
    created_at: i64,
    /// Label, value and `num` of each selected attribute, in catalogue order.
    attrs: Vec<(String, Value, Option<f64>)>,
    children: Vec<(String, Value)>,
}

pub struct Reader<'a> {
    conn: &'a Connection,
    app_pk: i64,
    catalogue: &'a Catalogue,
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

impl<'a> Reader<'a> {
    pub fn new(conn: &'a Connection, app_pk: i64, catalogue: &'a Catalogue) -> Reader<'a> {
        Reader {
            conn,
            app_pk,
            catalogue,
        }
    }

    fn created_at(&self, etype: &str, id: &str) -> Result<Option<i64>, ApiError> {
        self.conn
            .prepare_cached(
                "SELECT created_at FROM entities WHERE app_pk = ?1 AND etype = ?2 AND entity_pk = \
                 (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?3)",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![self.app_pk, etype, id], |row| row.get(0))
                    .optional()
            })
            .map_err(sql_error)
    }

    fn values(&self, id: &str, attr_pk: i64) -> Result<Vec<Stored>, ApiError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT value, num FROM triples WHERE app_pk = ?1 AND entity_pk = \
                 (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2) AND attr_pk = ?3",
            )
            .map_err(sql_error)?;
        let rows = statement
            .query_map(params![self.app_pk, id, attr_pk], |row| {
                Ok(Stored {
                    value: parse_json(&row.get::<_, String>(0)?),
                    num: row.get(1)?,
                })
            })
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error);
        rows
    }

    /// Entities linked from `id` through `attr_pk`, in the given direction.
    fn linked(&self, id: &str, attr_pk: i64, forward: bool) -> Result<Vec<String>, ApiError> {
        let sql = if forward {
            // Pinned: `triples_by_ref` covers the columns too, and the planner would scan it.
            "SELECT ref_id FROM triples INDEXED BY triples_eav WHERE app_pk = ?1 AND entity_pk = \
             (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2) AND attr_pk = ?3 AND ref_id IS NOT NULL"
        } else {
            "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
             WHERE t.app_pk = ?1 AND t.ref_id = ?2 AND t.attr_pk = ?3"
        };
        let mut statement = self.conn.prepare_cached(sql).map_err(sql_error)?;
        let rows = statement
            .query_map(params![self.app_pk, id, attr_pk], |row| row.get(0))
            .map_err(sql_error)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(sql_error);
        rows
    }

    /// The entities of `etype` linked to `id` through `attr_pk`, with their creation times:
    /// [`Reader::linked`] and [`Reader::created_at`] of each in one statement (a nested query
    /// reads this for every parent row). Ids that are not entities of `etype` are left out.
    fn linked_entities(
        &self,
        id: &str,
        attr_pk: i64,
        forward: bool,
        etype: &str,
    ) -> Result<Vec<(String, i64)>, ApiError> {
        let sql = if forward {
            // Pinned as in `linked`.
            "SELECT k.entity_id, e.created_at FROM triples t INDEXED BY triples_eav \
             CROSS JOIN entity_keys k ON k.app_pk = ?1 AND k.entity_id = t.ref_id \
             CROSS JOIN entities e ON e.app_pk = ?1 AND e.etype = ?4 AND e.entity_pk = k.entity_pk \
             WHERE t.app_pk = ?1 AND t.entity_pk = \
             (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2) \
             AND t.attr_pk = ?3 AND t.ref_id IS NOT NULL"
        } else {
            "SELECT k.entity_id, e.created_at FROM triples t \
             CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
             CROSS JOIN entities e ON e.app_pk = ?1 AND e.etype = ?4 AND e.entity_pk = t.entity_pk \
             WHERE t.app_pk = ?1 AND t.ref_id = ?2 AND t.attr_pk = ?3"
        };
        let mut statement = self.conn.prepare_cached(sql).map_err(sql_error)?;
        let rows = statement
            .query_map(params![self.app_pk, id, attr_pk, etype], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .map_err(sql_error)?
            .collect::<Result<Vec<(String, i64)>, _>>()
            .map_err(sql_error);
        rows
    }

    fn target_values(&self, id: &str, target: &Target) -> Result<Vec<Stored>, ApiError> {
        match target {
            Target::Blob { attr_pk, .. } => self.values(id, *attr_pk),
            Target::Id => Ok(vec![Stored {
                value: Value::String(id.to_string()),
                num: None,
            }]),
            Target::Ref { attr_pk, forward } => Ok(self
                .linked(id, *attr_pk, *forward)?
                .into_iter()
                .map(|other| Stored {
                    value: Value::String(other),
                    num: None,
                })
                .collect()),
        }
    }

    // ---- where ----

    fn matches(&self, filter: &Filter, id: &str) -> Result<bool, ApiError> {
        if !filter.shared.is_empty() {
            let paths: Vec<&PathTest> = filter.shared.iter().collect();
            if !self.satisfy(&paths, 0, 0, id, id, &mut HashMap::new())? {
                return Ok(false);
            }
        }
        for node in &filter.groups {
            if !self.node_matches(node, id)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn node_matches(&self, node: &Node, id: &str) -> Result<bool, ApiError> {
        match node {
            Node::Path(path) => self.satisfy(&[path], 0, 0, id, id, &mut HashMap::new()),
            Node::And(nodes) => {
                for node in nodes {
                    if !self.node_matches(node, id)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Node::Or(nodes) => {
                for node in nodes {
                    if self.node_matches(node, id)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Whether paths `path_index..` hold from `root`, with link variables bound consistently
    /// across paths (backtracking over the linked entities).
    fn satisfy(
        &self,
        paths: &[&PathTest],
        path_index: usize,
        step_index: usize,
        root: &str,
        current: &str,
        bindings: &mut HashMap<(String, usize), String>,
    ) -> Result<bool, ApiError> {
        let Some(path) = paths.get(path_index) else {
            return Ok(true);
        };
        let Some(step) = path.steps.get(step_index) else {
            if !self.test(&path.test, &path.etype, current)? {
                return Ok(false);
            }
            return self.satisfy(paths, path_index + 1, 0, root, root, bindings);
        };
        let next = self.linked(current, step.attr_pk, step.forward)?;
        if let Some(bound) = bindings.get(&step.var).cloned() {
            if !next.contains(&bound) {
                return Ok(false);
            }
            return self.satisfy(paths, path_index, step_index + 1, root, &bound, bindings);
        }
        for candidate in next {
            bindings.insert(step.var.clone(), candidate.clone());
            if self.satisfy(
                paths,
                path_index,
                step_index + 1,
                root,
                &candidate,
                bindings,
            )? {
                return Ok(true);
            }
            bindings.remove(&step.var);
        }
        Ok(false)
    }

    fn test(&self, test: &Test, etype: &str, id: &str) -> Result<bool, ApiError> {
        Ok(match test {
            Test::Eq { target, values } => {
                let stored = self.target_values(id, target)?;
                if matches!(target, Target::Id) && self.created_at(etype, id)?.is_none() {
                    return Ok(false);
                }
                // Indexed attributes hold a `null` triple when unset, so a missing value
                // matches a `null` in `$in` as it does on the server.
                (stored.is_empty() && values.iter().any(|m| matches!(m, Matcher::Null)))
                    || stored
                        .iter()
                        .any(|s| values.iter().any(|m| matcher_matches(m, s)))
            }
            Test::Not { target, value } => {
                if matches!(target, Target::Id) && self.created_at(etype, id)?.is_none() {
                    return Ok(false);
                }
                self.target_values(id, target)?
                    .iter()
                    .any(|s| !matcher_matches(value, s))
            }
            Test::IsNull { target, want_null } => {
                if self.created_at(etype, id)?.is_none() {
                    return Ok(false);
                }
                let has = self
                    .target_values(id, target)?
                    .iter()
                    .any(|s| !s.value.is_null());
                has != *want_null
            }
            Test::Compare {
                target,
                op,
                data_type,
                value,
            } => self.target_values(id, target)?.iter().any(|s| {
                typed_key(data_type, s)
                    .zip(matcher_key(value))
                    .and_then(|(left, right)| left.partial_cmp(&right))
                    .is_some_and(|ordering| match op {
                        CmpOp::Gt => ordering == Ordering::Greater,
                        CmpOp::Gte => ordering != Ordering::Less,
                        CmpOp::Lt => ordering == Ordering::Less,
                        CmpOp::Lte => ordering != Ordering::Greater,
                    })
            }),
            Test::Like {
                target,
                pattern,
                insensitive,
            } => self
                .target_values(id, target)?
                .iter()
                .any(|s| match &s.value {
                    Value::String(text) => like(pattern, text, *insensitive),
                    _ => false,
                }),
        })
    }

    // ---- candidates ----

    /// Entity ids an index gives for one top-level condition, a superset of the matches.
    fn seed(&self, filter: &Filter) -> Result<Option<Vec<String>>, ApiError> {
        for path in filter.shared.iter().filter(|path| path.steps.is_empty()) {
            match &path.test {
                // Only indexed attributes are in the value indexes; a condition on any other
                // attribute is checked on each entity of the namespace instead.
                Test::Eq { target, values }
                    if !values.iter().any(|m| matches!(m, Matcher::Null))
                        && !matches!(target, Target::Blob { indexed: false, .. }) =>
                {
                    let mut ids = Vec::new();
                    for matcher in values {
                        ids.extend(self.ids_equal(target, matcher)?);
                    }
                    return Ok(Some(ids));
                }
                Test::Compare {
                    target:
                        Target::Blob {
                            attr_pk,
                            indexed: true,
                        },
                    op,
                    data_type,
                    value,
                } if data_type == "number" || data_type == "date" => {
                    let Some(bound) = matcher_key(value).and_then(|key| key.as_num()) else {
                        continue;
                    };
                    let sign = match op {
                        CmpOp::Gt => ">",
                        CmpOp::Gte => ">=",
                        CmpOp::Lt => "<",
                        CmpOp::Lte => "<=",
                    };
                    let sql = format!(
                        "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                         WHERE t.app_pk = ?1 AND t.attr_pk = ?2 AND t.av = 1 AND t.num IS NOT NULL AND t.num {sign} ?3"
                    );
                    return self
                        .id_rows(&sql, params![self.app_pk, attr_pk, bound])
                        .map(Some);
                }
                _ => {}
            }
        }
        Ok(None)
    }

    fn id_rows(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<String>, ApiError> {
        let mut statement = self.conn.prepare_cached(sql).map_err(sql_error)?;
        let rows = statement
            .query_map(params, |row| row.get(0))
            .map_err(sql_error)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(sql_error);
        rows
    }

    fn ids_equal(&self, target: &Target, matcher: &Matcher) -> Result<Vec<String>, ApiError> {
        match (target, matcher) {
            (Target::Id, Matcher::Json(Value::String(id))) => Ok(vec![id.clone()]),
            (Target::Id, _) => Ok(Vec::new()),
            (Target::Ref { attr_pk, forward }, Matcher::Json(Value::String(other))) => {
                // `{link: X}` holds for the entities X is linked with, the other way round.
                self.linked(other, *attr_pk, !forward)
            }
            (Target::Ref { .. }, _) => Ok(Vec::new()),
            (Target::Blob { attr_pk, .. }, Matcher::Json(Value::Number(number))) => self.id_rows(
                "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                 WHERE t.app_pk = ?1 AND t.attr_pk = ?2 AND t.av = 1 AND t.num IS NOT NULL AND t.num = ?3",
                params![self.app_pk, attr_pk, number.as_f64()],
            ),
            (Target::Blob { attr_pk, .. }, Matcher::Millis(ms)) => self.id_rows(
                "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                 WHERE t.app_pk = ?1 AND t.attr_pk = ?2 AND t.av = 1 AND t.num IS NOT NULL AND t.num = ?3",
                params![self.app_pk, attr_pk, ms],
            ),
            (Target::Blob { attr_pk, .. }, Matcher::Json(value)) => self.id_rows(
                "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                 WHERE t.app_pk = ?1 AND t.attr_pk = ?2 AND t.av = 1 AND t.value = ?3",
                params![
                    self.app_pk,
                    attr_pk,
                    serde_json::to_string(value).unwrap_or_default()
                ],
            ),
            (Target::Blob { .. }, Matcher::Null) => Ok(Vec::new()),
        }
    }

    // ---- top level ----

    pub fn run_top(&self, plan: &FormPlan, inference: bool) -> Result<Value, ApiError> {
        let Some(etype) = plan
            .etype
            .as_deref()
            .filter(|_| !plan.missing && !plan.aggregate)
        else {
            return Ok(Value::Array(Vec::new()));
        };
        let rows = match self.seed(&plan.filter)? {
            Some(mut ids) => {
                ids.sort();
                ids.dedup();
                let mut rows = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(created_at) = self.created_at(etype, &id)? {
                        if self.matches(&plan.filter, &id)? {
                            rows.push((id, created_at));
                        }
                    }
                }
                self.select_page(plan.page.as_ref(), rows)?
            }
            None => match &plan.page {
                Some(page)
                    if matches!(page.key, OrderKey::CreatedAt)
                        && page.after.is_none()
                        && page.before.is_none() =>
                {
                    self.stream_created(etype, plan, page)?
                }
                page => {
                    let rows = self.stream_all(etype, &plan.filter)?;
                    self.select_page(page.as_ref(), rows)?
                }
            },
        };
        let entities = self.build_entities(plan, etype, rows, inference)?;
        Ok(Value::Array(entities))
    }

    /// Every matching entity, in `serverCreatedAt` order.
    fn stream_all(&self, etype: &str, filter: &Filter) -> Result<Vec<(String, i64)>, ApiError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT entity_id, created_at FROM entities WHERE app_pk = ?1 AND etype = ?2 ORDER BY created_at, entity_id",
            )
            .map_err(sql_error)?;
        let mut rows = statement
            .query(params![self.app_pk, etype])
            .map_err(sql_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sql_error)? {
            let id: String = row.get(0).map_err(sql_error)?;
            if self.matches(filter, &id)? {
                out.push((id, row.get(1).map_err(sql_error)?));
            }
        }
        Ok(out)
    }

    /// The default order with `limit`/`offset`: walk the `entities_created` index in the page's
    /// direction and stop once the page is full.
    fn stream_created(
        &self,
        etype: &str,
        plan: &FormPlan,
        page: &Page,
    ) -> Result<Vec<(String, i64)>, ApiError> {
        let backwards = page.desc != page.last;
        let unfiltered = plan.filter.shared.is_empty() && plan.filter.groups.is_empty();
        if unfiltered {
            // Every row matches: SQLite skips the offset inside the index walk, without a row
            // being read out (paging through a namespace with `offset` would otherwise cost a
            // materialised id per skipped row, quadratic over the pages).
            let sql = if backwards {
                "SELECT entity_id, created_at FROM entities WHERE app_pk = ?1 AND etype = ?2 ORDER BY created_at DESC, entity_id DESC LIMIT ?3 OFFSET ?4"
            } else {
                "SELECT entity_id, created_at FROM entities WHERE app_pk = ?1 AND etype = ?2 ORDER BY created_at, entity_id LIMIT ?3 OFFSET ?4"
            };
            let mut statement = self.conn.prepare_cached(sql).map_err(sql_error)?;
            let limit = page.limit.unwrap_or(-1);
            let offset = page.offset.unwrap_or(0).max(0);
            let rows = statement
                .query_map(params![self.app_pk, etype, limit, offset], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(sql_error)?;
            return rows.collect::<Result<_, _>>().map_err(sql_error);
        }
        let sql = if backwards {
            "SELECT entity_id, created_at FROM entities WHERE app_pk = ?1 AND etype = ?2 ORDER BY created_at DESC, entity_id DESC"
        } else {
            "SELECT entity_id, created_at FROM entities WHERE app_pk = ?1 AND etype = ?2 ORDER BY created_at, entity_id"
        };
        let mut statement = self.conn.prepare_cached(sql).map_err(sql_error)?;
        let mut rows = statement
            .query(params![self.app_pk, etype])
            .map_err(sql_error)?;
        let mut skip = page.offset.unwrap_or(0);
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sql_error)? {
            if page.limit.is_some_and(|limit| out.len() as i64 >= limit) {
                break;
            }
            let id: String = row.get(0).map_err(sql_error)?;
            if !self.matches(&plan.filter, &id)? {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            out.push((id, row.get(1).map_err(sql_error)?));
        }
        Ok(out)
    }

    /// Orders candidates as the page asks, then applies cursors, `offset` and the limit.
    fn select_page(
        &self,
        page: Option<&Page>,
        rows: Vec<(String, i64)>,
    ) -> Result<Vec<(String, i64)>, ApiError> {
        let Some(page) = page else {
            return Ok(rows);
        };
        let mut keyed = Vec::with_capacity(rows.len());
        for (id, created_at) in rows {
            let key = match &page.key {
                OrderKey::CreatedAt => SortKey::Num(created_at as f64),
                OrderKey::Attr { attr_pk, date } => {
                    let stored = self.values(&id, *attr_pk)?;
                    stored
                        .last()
                        .map(|s| sort_key(&s.value, s.num, *date))
                        .unwrap_or(SortKey::Null)
                }
            };
            keyed.push((key, id, created_at));
        }
        // `last` reads the page from the other end; the final sort restores the direction.
        let backwards = page.desc != page.last;
        keyed.sort_by(|a, b| {
            let ordering = compare_keys(&a.0, &a.1, &b.0, &b.1);
            if backwards {
                ordering.reverse()
            } else {
                ordering
            }
        });
        let date = matches!(page.key, OrderKey::Attr { date: true, .. });
        let cursor_key = |cursor: &super::forms::Cursor| -> (SortKey, String) {
            let key = match page.key {
                OrderKey::CreatedAt => cursor
                    .created_at
                    .map(|t| SortKey::Num(t as f64))
                    .unwrap_or(SortKey::Null),
                OrderKey::Attr { .. } => sort_key(&cursor.value, None, date),
            };
            let id = cursor.entity_id.as_str().unwrap_or_default().to_lowercase();
            (key, id)
        };
        let after = page
            .after
            .as_ref()
            .map(|(c, inclusive)| (cursor_key(c), *inclusive));
        let before = page
            .before
            .as_ref()
            .map(|(c, inclusive)| (cursor_key(c), *inclusive));
        let in_direction = |key: &SortKey, id: &str, cursor: &(SortKey, String)| {
            let ordering = compare_keys(key, id, &cursor.0, &cursor.1);
            if page.desc {
                ordering.reverse()
            } else {
                ordering
            }
        };
        let offset = page.offset.unwrap_or(0).max(0) as usize;
        let limit = page.limit.map(|limit| limit.max(0) as usize);
        Ok(keyed
            .into_iter()
            .filter(|(key, id, _)| {
                after.as_ref().is_none_or(|(cursor, inclusive)| {
                    let ordering = in_direction(key, id, cursor);
                    ordering == Ordering::Greater || (*inclusive && ordering == Ordering::Equal)
                }) && before.as_ref().is_none_or(|(cursor, inclusive)| {
                    let ordering = in_direction(key, id, cursor);
                    ordering == Ordering::Less || (*inclusive && ordering == Ordering::Equal)
                })
            })
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .map(|(_, id, created_at)| (id, created_at))
            .collect())
    }

    // ---- entity objects ----

    /// The attributes of `etype` an entity object carries (all but `id`, or the `fields`
    /// asked for), as `(attr_pk, label)`: worked out once per list of entities.
    fn selected_attrs(&self, etype: &str, fields: Option<&Vec<String>>) -> Vec<(i64, String)> {
        self.catalogue
            .entity_attrs(etype)
            .filter(|attr| attr.label() != "id")
            .filter(|attr| fields.is_none_or(|fields| fields.iter().any(|f| f == attr.label())))
            .map(|attr| (attr.attr_pk, attr.label().to_string()))
            .collect()
    }

    fn load_entity(
        &self,
        selected: &[(i64, String)],
        id: String,
        created_at: i64,
    ) -> Result<Entity, ApiError> {
        // One slot per selected attribute; a later triple of the same attribute wins.
        let mut found: Vec<Option<(Value, Option<f64>)>> = vec![None; selected.len()];
        if !selected.is_empty() {
            let mut statement = self
                .conn
                .prepare_cached(
                    "SELECT attr_pk, value, num FROM triples WHERE app_pk = ?1 AND entity_pk = \
                     (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2)",
                )
                .map_err(sql_error)?;
            let mut rows = statement
                .query(params![self.app_pk, id])
                .map_err(sql_error)?;
            while let Some(row) = rows.next().map_err(sql_error)? {
                let attr_pk: i64 = row.get(0).map_err(sql_error)?;
                if let Some(slot) = selected.iter().position(|(pk, _)| *pk == attr_pk) {
                    // Read in place: the values are the bulk of what a query returns.
                    let text = row
                        .get_ref(1)
                        .and_then(|value| value.as_str().map_err(Into::into))
                        .map_err(sql_error)?;
                    found[slot] = Some((parse_json(text), row.get(2).map_err(sql_error)?));
                }
            }
        }
        let attrs = selected
            .iter()
            .zip(found)
            .filter_map(|((_, label), value)| value.map(|(value, num)| (label.clone(), value, num)))
            .collect();
        Ok(Entity {
            id,
            created_at,
            attrs,
            children: Vec::new(),
        })
    }

    fn build_entities(
        &self,
        plan: &FormPlan,
        etype: &str,
        rows: Vec<(String, i64)>,
        inference: bool,
    ) -> Result<Vec<Value>, ApiError> {
        let mut entities = Vec::with_capacity(rows.len());
        let selected = self.selected_attrs(etype, plan.fields.as_ref());
        for (id, created_at) in rows {
            let mut entity = self.load_entity(&selected, id, created_at)?;
            for child in &plan.children {
                let value = self.run_child(child, &entity.id, inference)?;
                entity.children.push((child.form.key.clone(), value));
            }
            entities.push(entity);
        }
        self.sort_entries(plan, etype, &mut entities);
        Ok(entities.into_iter().map(entity_json).collect())
    }

    fn run_child(
        &self,
        child: &super::plan::ChildPlan,
        parent: &str,
        inference: bool,
    ) -> Result<Value, ApiError> {
        let plan = &child.form;
        let singular = inference && child.link.is_some_and(|link| link.singular);
        let empty = if singular {
            Value::Null
        } else {
            Value::Array(Vec::new())
        };
        let (Some(link), Some(etype)) = (child.link, plan.etype.as_deref()) else {
            return Ok(empty);
        };
        if plan.missing || plan.aggregate {
            return Ok(empty);
        }
        let mut linked = self.linked_entities(parent, link.attr_pk, link.forward, etype)?;
        linked.sort();
        linked.dedup();
        let mut rows = Vec::with_capacity(linked.len());
        for (id, created_at) in linked {
            if self.matches(&plan.filter, &id)? {
                rows.push((id, created_at));
            }
        }
        // Child `limit`/`first`/`last` are ignored like on the server (page info is top-level
        // only); child `order` is applied in memory by the final sort.
        let entities = self.build_entities(plan, etype, rows, inference)?;
        if singular {
            return Ok(entities.into_iter().next().unwrap_or(Value::Null));
        }
        Ok(Value::Array(entities))
    }

    /// `sort-entries`: by the ordered field as the entity object holds it (so a `fields` list
    /// without it leaves only the id to order by), then by id; `desc` reverses both.
    fn sort_entries(&self, plan: &FormPlan, etype: &str, entities: &mut [Entity]) {
        let (field, desc) = match &plan.order {
            Some(order) if order.key != "serverCreatedAt" => (Some(order.key.as_str()), order.desc),
            Some(order) => (None, order.desc),
            None => (None, false),
        };
        let date = field.is_some_and(|field| {
            self.catalogue
                .forward(etype, field)
                .is_some_and(|attr| attr.attr.checked_data_type.as_deref() == Some("date"))
        });
        let key_of = |entity: &Entity| match field {
            None => SortKey::Num(entity.created_at as f64),
            Some(field) => entity
                .attrs
                .iter()
                .find(|(label, _, _)| label == field)
                .map(|(_, value, num)| sort_key(value, *num, date))
                .unwrap_or(SortKey::Null),
        };
        entities.sort_by(|a, b| {
            let ordering = compare_keys(&key_of(a), &a.id, &key_of(b), &b.id);
            if desc {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
}

fn entity_json(entity: Entity) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), Value::String(entity.id));
    for (label, value, _) in entity.attrs {
        object.insert(label, value);
    }
    for (label, value) in entity.children {
        // A requested has-one link replaces its id, and children come after attributes.
        object.shift_remove(&label);
        object.insert(label, value);
    }
    Value::Object(object)
}

// ---- values and ordering ----

fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => left == right,
    }
}

fn matcher_matches(matcher: &Matcher, stored: &Stored) -> bool {
    match matcher {
        Matcher::Null => stored.value.is_null(),
        Matcher::Json(value) => json_equal(value, &stored.value),
        Matcher::Millis(ms) => stored_millis(stored) == Some(*ms),
    }
}

fn stored_millis(stored: &Stored) -> Option<f64> {
    stored.num.or_else(|| match &stored.value {
        Value::String(text) => dates::parse_date(text).map(|ms| ms as f64),
        Value::Number(number) => number.as_f64(),
        _ => None,
    })
}

/// A sortable value. Across kinds: null, booleans, numbers, strings, then other JSON (the
/// server cannot compare mixed kinds at all; typed attributes never mix them).
#[derive(Debug, Clone, PartialEq)]
enum SortKey {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Other(String),
}

impl SortKey {
    fn rank(&self) -> u8 {
        match self {
            SortKey::Null => 0,
            SortKey::Bool(_) => 1,
            SortKey::Num(_) => 2,
            SortKey::Str(_) => 3,
            SortKey::Other(_) => 4,
        }
    }

    fn as_num(&self) -> Option<f64> {
        match self {
            SortKey::Num(n) => Some(*n),
            _ => None,
        }
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(match (self, other) {
            (SortKey::Bool(a), SortKey::Bool(b)) => a.cmp(b),
            (SortKey::Num(a), SortKey::Num(b)) => a.total_cmp(b),
            // Java `String.compareTo`: UTF-16 code units.
            (SortKey::Str(a), SortKey::Str(b)) => a.encode_utf16().cmp(b.encode_utf16()),
            (SortKey::Other(a), SortKey::Other(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        })
    }
}

fn sort_key(value: &Value, num: Option<f64>, date: bool) -> SortKey {
    if date {
        let stored = Stored {
            value: value.clone(),
            num,
        };
        return match (value, stored_millis(&stored)) {
            (Value::Null, _) | (_, None) => SortKey::Null,
            (_, Some(ms)) => SortKey::Num(ms),
        };
    }
    match value {
        Value::Null => SortKey::Null,
        Value::Bool(b) => SortKey::Bool(*b),
        Value::Number(n) => SortKey::Num(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => SortKey::Str(s.clone()),
        other => SortKey::Other(other.to_string()),
    }
}

/// Value, then id in Postgres UUID order (byte order of the canonical lowercase text).
fn compare_keys(a: &SortKey, a_id: &str, b: &SortKey, b_id: &str) -> Ordering {
    a.partial_cmp(b)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_id.cmp(b_id))
}

fn typed_key(data_type: &str, stored: &Stored) -> Option<SortKey> {
    match (data_type, &stored.value) {
        (_, Value::Null) => None,
        ("date", _) => stored_millis(stored).map(SortKey::Num),
        ("number", Value::Number(n)) => n.as_f64().map(SortKey::Num),
        ("string", Value::String(s)) => Some(SortKey::Str(s.clone())),
        ("boolean", Value::Bool(b)) => Some(SortKey::Bool(*b)),
        _ => None,
    }
}

fn matcher_key(matcher: &Matcher) -> Option<SortKey> {
    match matcher {
        Matcher::Millis(ms) => Some(SortKey::Num(*ms)),
        Matcher::Json(value) => Some(sort_key(value, None, false)),
        Matcher::Null => None,
    }
}

/// SQL `LIKE` (`ILIKE` when `insensitive`): `%` any run, `_` one character, `\` escapes.
pub fn like(pattern: &str, text: &str, insensitive: bool) -> bool {
    let fold = |s: &str| -> Vec<char> {
        if insensitive {
            s.chars().flat_map(char::to_lowercase).collect()
        } else {
            s.chars().collect()
        }
    };
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Any,
        One,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = fold(pattern).into_iter();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    let text = fold(text);
    // reachable[j]: the tokens read so far can match text[..j].
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for token in tokens {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Any => {
                let mut seen = false;
                for j in 0..=text.len() {
                    seen |= reachable[j];
                    next[j] = seen;
                }
            }
            Token::One => {
                next[1..].copy_from_slice(&reachable[..text.len()]);
            }
            Token::Char(c) => {
                for j in 0..text.len() {
                    next[j + 1] = reachable[j] && text[j] == c;
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}
