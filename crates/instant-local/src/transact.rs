//! `POST /admin/transact`: user-facing steps run as one unit (all or nothing), with the server's
//! semantics and error texts (`admin/model.clj`, `db/transaction.clj`, `db/model/triple.clj`,
//! `db/model/attr.clj`, `util/exception.clj`).
//!
//! The pipeline follows the server's:
//! 1. shape check of the steps (`spec`), entity-id check first;
//! 2. attribute auto-creation (`create-missing-attrs`), or the missing-attributes error;
//! 3. expansion into internal ops (`add-triple`, `deep-merge-triple`, `retract-triple`,
//!    `delete-entity`, `rule-params`, `add-attr`, `delete-attr`), lookups extracted;
//! 4. preprocessing against the data before the transaction: delete lookups resolved,
//!    `on-delete` cascades expanded, system-column and app-status checks, create/update modes;
//! 5. ops grouped by kind, groups run in the order each kind first appears;
//! 6. required attributes checked for every touched entity that still exists.
//!
//! Within the `add-triple` group, lookups see the data as it was before the group (the server
//! runs the group as one SQL statement), and a cardinality-one attribute written several times
//! keeps the last value.

// The error keeps the server's whole envelope by design (see `instant-api`).
#![allow(clippy::result_large_err)]

mod batch;
mod spec;
mod values;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use instant_api::{ApiError, TransactRequest, TransactResponse};
use instant_schema::{AttrKind, Cardinality, Identity, ServerAttr};
use rusqlite::{params, Connection, OptionalExtension};
// Keys are ids and names of one request; a fast hasher matters more here than resistance to
// crafted collisions.
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Map, Value};

use crate::store::{self, sql_error, value_key, App, Store};
use batch::{IdProbe, PendingInserts, TripleRow};
use values::{as_uuid, canonical, storage_text};

/// Runs `request` against `app` as one unit, everything or nothing, through the store's group
/// commit ([`Store::transact`]): the steps are checked before the connection is taken.
pub fn transact(
    store: &Store,
    app: &App,
    request: &TransactRequest,
) -> Result<TransactResponse, ApiError> {
    spec::validate_steps(&request.steps)?;
    let tx_id = store.transact(|conn| Engine::load(conn, app)?.run(request))?;
    Ok(TransactResponse { tx_id })
}

// ---------------------------------------------------------------------------------------------
// Attribute catalogue

#[derive(Debug, Clone)]
struct Attr {
    /// 0 until an attribute created by this transaction is inserted.
    pk: i64,
    id: String,
    etype: String,
    label: String,
    reverse: Option<(String, String)>,
    is_ref: bool,
    card_one: bool,
    unique: bool,
    indexed: bool,
    required: bool,
    checked: Option<String>,
    cascade: bool,
    cascade_reverse: bool,
    system: bool,
    inferred: u8,
    inferred_loaded: u8,
    /// Soft-deleted by this transaction.
    deleted: bool,
    /// The definition to insert, for attributes this transaction creates.
    pending: Option<ServerAttr>,
}

impl Attr {
    fn from_server(pk: i64, attr: &ServerAttr) -> Attr {
        let inferred = values::inferred_bits_from_json(attr.extra.get("inferred-types"));
        Attr {
            pk,
            id: attr.id.clone().unwrap_or_default(),
            etype: attr.forward_identity.etype.clone(),
            label: attr.forward_identity.label.clone(),
            reverse: attr
                .reverse_identity
                .as_ref()
                .map(|r| (r.etype.clone(), r.label.clone())),
            is_ref: attr.is_ref(),
            card_one: attr.cardinality == Cardinality::One,
            unique: attr.unique,
            indexed: attr.index,
            required: attr.required,
            checked: attr.checked_data_type.clone(),
            cascade: attr.on_delete.as_deref() == Some("cascade"),
            cascade_reverse: attr.on_delete_reverse.as_deref() == Some("cascade"),
            system: attr.is_system(),
            inferred,
            inferred_loaded: inferred,
            deleted: false,
            pending: None,
        }
    }

    fn reverse_etype(&self) -> Option<&str> {
        self.reverse.as_ref().map(|(etype, _)| etype.as_str())
    }

    fn dotted(&self) -> String {
        format!("{}.{}", self.etype, self.label)
    }
}

#[derive(Default)]
struct Catalog {
    attrs: Vec<Attr>,
    forward: FxHashMap<String, FxHashMap<String, usize>>,
    reverse: FxHashMap<String, FxHashMap<String, usize>>,
}

impl Catalog {
    fn forward(&self, etype: &str, label: &str) -> Option<usize> {
        self.forward.get(etype)?.get(label).copied()
    }

    fn reverse(&self, etype: &str, label: &str) -> Option<usize> {
        self.reverse.get(etype)?.get(label).copied()
    }

    /// Adds an attribute; `visible` ones are found by name while steps are expanded (the
    /// server expands with the existing and auto-created attributes, not with `add-attr` steps).
    fn push(&mut self, attr: Attr, visible: bool) -> usize {
        let index = self.attrs.len();
        if visible {
            self.forward
                .entry(attr.etype.clone())
                .or_default()
                .entry(attr.label.clone())
                .or_insert(index);
            if let Some((etype, label)) = &attr.reverse {
                self.reverse
                    .entry(etype.clone())
                    .or_default()
                    .entry(label.clone())
                    .or_insert(index);
            }
        }
        self.attrs.push(attr);
        index
    }

    fn add_new(&mut self, server: ServerAttr, visible: bool) -> usize {
        let mut attr = Attr::from_server(0, &server);
        attr.pending = Some(server);
        self.push(attr, visible)
    }
}

/// The live attribute catalogue of an app (what [`store::load_attrs`] reads, in the same
/// order), read straight into [`Attr`]s: every transact reads it, and the transaction needs
/// none of the rest of a `ServerAttr`.
fn load_catalog(conn: &Connection, app_pk: i64) -> rusqlite::Result<Catalog> {
    let mut statement = conn.prepare_cached(
        "SELECT attr_pk, id, etype, label, reverse_etype, reverse_label, value_type, cardinality, \
         is_unique, is_indexed, is_required, checked_data_type, on_delete, on_delete_reverse, \
         catalog, inferred_types FROM attrs WHERE app_pk = ?1 AND deleted_at IS NULL ORDER BY attr_pk",
    )?;
    let mut rows = statement.query([app_pk])?;
    let mut catalog = Catalog::default();
    while let Some(row) = rows.next()? {
        let reverse = match row.get::<_, Option<String>>(4)? {
            Some(etype) => Some((etype, row.get::<_, String>(5)?)),
            None => None,
        };
        let text = |index: usize| row.get_ref(index).map(|value| value.as_str().ok());
        let inferred = match text(15)? {
            Some(names) => {
                values::inferred_bits_from_json(serde_json::from_str::<Value>(names).ok().as_ref())
            }
            None => 0,
        };
        let attr = Attr {
            pk: row.get(0)?,
            id: row.get(1)?,
            etype: row.get(2)?,
            label: row.get(3)?,
            reverse,
            is_ref: text(6)? == Some("ref"),
            card_one: text(7)? != Some("many"),
            unique: row.get(8)?,
            indexed: row.get(9)?,
            required: row.get(10)?,
            checked: row.get(11)?,
            cascade: text(12)? == Some("cascade"),
            cascade_reverse: text(13)? == Some("cascade"),
            system: text(14)? == Some("system"),
            inferred,
            inferred_loaded: inferred,
            deleted: false,
            pending: None,
        };
        catalog.push(attr, true);
    }
    Ok(catalog)
}

fn new_blob_attr(etype: &str, label: &str, unique: bool, index: bool) -> ServerAttr {
    let mut attr = ServerAttr::blob(etype, label);
    attr.id = Some(uuid::Uuid::new_v4().to_string());
    attr.forward_identity.id = Some(uuid::Uuid::new_v4().to_string());
    attr.unique = unique;
    attr.index = index;
    attr.catalog = Some("user".into());
    attr
}

fn new_ref_attr(etype: &str, label: &str, has_one: bool) -> ServerAttr {
    let mut attr = new_blob_attr(etype, label, has_one, has_one);
    attr.value_type = AttrKind::Ref;
    attr.cardinality = if has_one {
        Cardinality::One
    } else {
        Cardinality::Many
    };
    // The label doubles as the target namespace, as the server's `create-ref-attr` does.
    attr.reverse_identity = Some(Identity::new(
        Some(uuid::Uuid::new_v4().to_string()),
        label,
        etype,
    ));
    attr
}

// ---------------------------------------------------------------------------------------------
// Internal ops

/// An entity position: an id, or a lookup `[attr, value]` on a unique attribute. A step
/// makes one op per attribute, all with the same entity: the id is shared, not copied.
#[derive(Debug, Clone, PartialEq)]
enum Eid {
    Id(Rc<str>),
    Lookup(usize, Value),
}

/// A value position: a JSON value (borrowed from the request when it comes from a step), or
/// a lookup resolved to an entity id.
#[derive(Debug, Clone, PartialEq)]
enum Val<'s> {
    Json(Cow<'s, Value>),
    Lookup(usize, Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Default,
    Create,
    Update,
    Upsert,
}

#[derive(Debug, Clone)]
enum Op<'s> {
    AddAttr(usize),
    DeleteAttr(String),
    Add {
        e: Eid,
        a: usize,
        v: Val<'s>,
        mode: Mode,
    },
    Merge {
        e: Eid,
        a: usize,
        v: &'s Value,
        mode: Mode,
    },
    Retract {
        e: Eid,
        a: usize,
        v: Val<'s>,
    },
    Delete {
        e: Eid,
        etype: String,
    },
    RuleParams,
}

impl Op<'_> {
    fn kind(&self) -> usize {
        match self {
            Op::AddAttr(_) => 0,
            Op::DeleteAttr(_) => 1,
            Op::Add { .. } => 2,
            Op::Merge { .. } => 3,
            Op::Retract { .. } => 4,
            Op::Delete { .. } => 5,
            Op::RuleParams => 6,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The engine of one transact call

struct Engine<'c> {
    /// Used directly only to buffer inserts; every statement goes through [`Engine::db`].
    conn: &'c Connection,
    /// Rows written out before the next statement (see [`batch`]).
    pending: RefCell<PendingInserts>,
    app: &'c App,
    catalog: Catalog,
    now: i64,
    /// Namespaces that have required attributes: only their entities are checked at the end.
    required_etypes: FxHashSet<String>,
    touched: Vec<(String, String)>,
    touched_set: FxHashSet<(String, String)>,
    /// Per namespace, its indexed blob attributes (they get null triples on entity creation).
    indexed_blobs: FxHashMap<String, Vec<usize>>,
    /// The transaction only adds triples (and attributes): nothing it does removes an entity
    /// row or a value, so what it wrote is what the end-of-transaction check would read back.
    only_adds: bool,
    /// Entity rows this transaction created, as (entity, namespace).
    rows_created: FxHashSet<(String, String)>,
    /// The last value this transaction wrote to each required attribute of an entity: non-null
    /// or not. With [`Engine::only_adds`], an entity whose row it created and whose required
    /// attributes it all wrote non-null passes the required check without a query.
    required_written: FxHashMap<(String, usize), bool>,
}

type Res<T> = Result<T, ApiError>;

impl<'c> Engine<'c> {
    fn load(conn: &'c Connection, app: &'c App) -> Res<Engine<'c>> {
        let catalog = load_catalog(conn, app.app_pk).map_err(sql_error)?;
        Ok(Engine {
            conn,
            pending: RefCell::new(PendingInserts::default()),
            app,
            catalog,
            now: store::now_ms(),
            required_etypes: FxHashSet::default(),
            touched: Vec::new(),
            touched_set: FxHashSet::default(),
            indexed_blobs: FxHashMap::default(),
            only_adds: false,
            rows_created: FxHashSet::default(),
            required_written: FxHashMap::default(),
        })
    }

    /// The connection for a statement, after the pending inserts are written: every read
    /// sees what the transaction wrote before it.
    fn db(&self) -> Res<&'c Connection> {
        self.flush_pending()?;
        Ok(self.conn)
    }

    fn flush_pending(&self) -> Res<()> {
        let mut pending = self.pending.borrow_mut();
        if !pending.is_empty() {
            pending
                .flush(self.conn, self.app.app_pk, self.now)
                .map_err(sql_error)?;
        }
        Ok(())
    }

    fn run(mut self, request: &TransactRequest) -> Res<i64> {
        let steps = &request.steps;
        let auto_attrs = self.create_missing_attrs(steps)?;
        if request.throw_on_missing_attrs && !auto_attrs.is_empty() {
            let names: Vec<String> = auto_attrs
                .iter()
                .map(|index| self.catalog.attrs[*index].dotted())
                .collect();
            return Err(ApiError::validation(
                "steps",
                Value::Array(steps.clone()),
                vec![json!({
                    "message": "Attributes are missing in your schema",
                    "hint": {"attributes": names},
                })],
            ));
        }
        let mut ops: Vec<Op> = auto_attrs.into_iter().map(Op::AddAttr).collect();
        // About one op per attribute of a step, plus its `id`: ops are large, so the vector
        // is sized once rather than grown.
        ops.reserve(
            steps
                .iter()
                .map(|step| 1 + step.get(3).and_then(Value::as_object).map_or(0, Map::len))
                .sum(),
        );
        for step in steps {
            self.expand_step(step, &mut ops)?;
        }
        self.check_internal_ops(&ops)?;

        let order = kinds_in_order(&ops);
        let mut ops = self.resolve_delete_lookups(ops)?;
        self.expand_cascades(&mut ops)?;
        self.prevent_system_column_updates(&ops)?;
        let groups = group_by_kind(ops, &order);
        self.only_adds = groups.iter().all(|(kind, _)| matches!(kind, 0 | 2));

        self.assert_write_allowed()?;
        self.validate_mode(&groups)?;
        let tx_id = store::next_tx_id(self.db()?, self.app.app_pk, self.now)?;
        self.refresh_derived();
        for (kind, group) in &groups {
            match kind {
                0 => self.run_add_attrs(group)?,
                1 => self.run_delete_attrs(group)?,
                2 => self.run_add_triples(group)?,
                3 => self.run_merges(group)?,
                4 => self.run_retracts(group)?,
                5 => self.run_deletes(group)?,
                _ => {}
            }
        }
        self.flush_pending()?;
        self.validate_required()?;
        self.flush_inferred_types()?;
        Ok(tx_id)
    }

    /// Recomputes what depends on the catalogue's flags (after attributes change).
    fn refresh_derived(&mut self) {
        self.required_etypes = self
            .catalog
            .attrs
            .iter()
            .filter(|attr| attr.required && !attr.deleted)
            .map(|attr| attr.etype.clone())
            .collect();
        self.indexed_blobs.clear();
        for (index, attr) in self.catalog.attrs.iter().enumerate() {
            if attr.indexed && !attr.is_ref && !attr.deleted && attr.pk != 0 {
                self.indexed_blobs
                    .entry(attr.etype.clone())
                    .or_default()
                    .push(index);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Attribute auto-creation (`create-missing-attrs`)

    fn create_missing_attrs(&mut self, steps: &[Value]) -> Res<Vec<usize>> {
        let mut added = Vec::new();
        // Lookups first, over every step, then the attribute names of each step.
        for step in steps {
            let Some((action, etype, eid, obj)) = step_parts(step) else {
                continue;
            };
            if !matches!(
                action,
                "link" | "unlink" | "create" | "update" | "merge" | "delete"
            ) {
                continue;
            }
            if let Some(pair) = lookup_pair(eid)? {
                self.add_attrs_for_lookup(&pair, etype, &mut added)?;
            }
            if action == "link" {
                if let Some(obj) = obj.and_then(Value::as_object) {
                    for (label, targets) in obj {
                        for target in link_targets(targets) {
                            if let Some(pair) = lookup_pair(&target)? {
                                self.add_ref_lookup_attr(label, etype, &mut added);
                                let link_etype = self.link_target_etype(etype, label);
                                self.add_attrs_for_lookup(&pair, &link_etype, &mut added)?;
                            }
                        }
                    }
                }
            }
        }
        for step in steps {
            let Some((action, etype, _, obj)) = step_parts(step) else {
                continue;
            };
            let updates = matches!(action, "create" | "update" | "merge");
            let links = matches!(action, "link" | "unlink");
            if !updates && !links {
                continue;
            }
            let obj = obj.and_then(Value::as_object);
            // Steps of a bulk write name attributes that exist: one namespace lookup.
            let all_known = self.catalog.forward.get(etype).is_some_and(|labels| {
                labels.contains_key("id")
                    && obj.is_none_or(|obj| obj.keys().all(|label| labels.contains_key(label)))
            });
            if all_known {
                continue;
            }
            if self.catalog.forward(etype, "id").is_none() {
                self.add_auto(new_blob_attr(etype, "id", true, false), &mut added);
            }
            let Some(obj) = obj else {
                continue;
            };
            for label in obj.keys() {
                let forward = self.catalog.forward(etype, label);
                if updates && forward.is_none() {
                    let attr = new_blob_attr(etype, label, label == "id", false);
                    self.add_auto(attr, &mut added);
                } else if links && forward.is_none() && self.catalog.reverse(etype, label).is_none()
                {
                    self.add_auto(new_ref_attr(etype, label, false), &mut added);
                }
            }
        }
        Ok(added)
    }

    fn add_auto(&mut self, attr: ServerAttr, added: &mut Vec<usize>) {
        added.push(self.catalog.add_new(attr, true));
    }

    fn add_ref_lookup_attr(&mut self, label: &str, etype: &str, added: &mut Vec<usize>) {
        if self.catalog.forward(etype, label).is_none()
            && self.catalog.reverse(etype, label).is_none()
        {
            self.add_auto(new_ref_attr(etype, label, true), added);
        }
    }

    fn add_attrs_for_lookup(
        &mut self,
        pair: &(String, Value),
        etype: &str,
        added: &mut Vec<usize>,
    ) -> Res<()> {
        if self.is_ref_lookup(etype, &pair.0) {
            let label = ref_lookup_link_name(pair)?;
            self.add_ref_lookup_attr(&label, etype, added);
        } else if self.catalog.forward(etype, &pair.0).is_none() {
            self.add_auto(new_blob_attr(etype, &pair.0, true, true), added);
        }
        Ok(())
    }

    /// The namespace a link label on `etype` points at (the label itself when unknown).
    fn link_target_etype(&self, etype: &str, label: &str) -> String {
        if let Some(index) = self.catalog.forward(etype, label) {
            if let Some(target) = self.catalog.attrs[index].reverse_etype() {
                return target.to_string();
            }
        }
        if let Some(index) = self.catalog.reverse(etype, label) {
            return self.catalog.attrs[index].etype.clone();
        }
        label.to_string()
    }

    /// Labels may contain `.`, so a dotted label is a link lookup only when no attribute has it.
    fn is_ref_lookup(&self, etype: &str, label: &str) -> bool {
        label.contains('.') && self.catalog.forward(etype, label).is_none()
    }

    // -----------------------------------------------------------------------------------------
    // Expansion (`to-tx-steps`)

    fn expand_step<'s>(&mut self, step: &'s Value, ops: &mut Vec<Op<'s>>) -> Res<()> {
        let items = step.as_array().map(Vec::as_slice).unwrap_or_default();
        let action = items.first().and_then(Value::as_str).unwrap_or_default();
        let etype = items.get(1).and_then(Value::as_str).unwrap_or_default();
        static NULL: Value = Value::Null;
        let eid = items.get(2).unwrap_or(&NULL);
        // `remove-id-from-step`: an `id` key in the attributes is ignored.
        let obj = items
            .get(3)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.as_str() != "id");
        match action {
            "create" | "update" | "merge" => {
                let e = self.entity(etype, eid)?;
                let mode = match action {
                    "create" => Mode::Create,
                    _ => match items.get(4).and_then(|opts| opts.get("upsert")) {
                        Some(Value::Null) | None => Mode::Default,
                        Some(Value::Bool(false)) => Mode::Update,
                        Some(_) => Mode::Upsert,
                    },
                };
                // The namespace's attributes are looked up once for all the step's labels.
                let labels = self.catalog.forward.get(etype);
                let attr_named = |label: &str| {
                    labels
                        .and_then(|labels| labels.get(label).copied())
                        .ok_or_else(|| missing_attr_error(etype, label))
                };
                ops.push(Op::Add {
                    e: e.clone(),
                    a: attr_named("id")?,
                    v: match eid {
                        // The step's own id is the value when it needs no coercion.
                        Value::String(text) if is_canonical_uuid(text) => {
                            Val::Json(Cow::Borrowed(eid))
                        }
                        _ => eid_as_value(&e),
                    },
                    mode,
                });
                for (label, value) in obj {
                    let a = attr_named(label)?;
                    ops.push(if action == "merge" {
                        Op::Merge {
                            e: e.clone(),
                            a,
                            v: value,
                            mode,
                        }
                    } else {
                        Op::Add {
                            e: e.clone(),
                            a,
                            v: Val::Json(Cow::Borrowed(value)),
                            mode,
                        }
                    });
                }
            }
            "link" | "unlink" => {
                let source = self.entity(etype, eid)?;
                if let Eid::Lookup(..) = source {
                    let id_attr = self.attr_named(etype, "id")?;
                    ops.push(Op::Add {
                        e: source.clone(),
                        a: id_attr,
                        v: eid_as_value(&source),
                        mode: Mode::Default,
                    });
                }
                let targets_by_label = items.get(3).and_then(Value::as_object);
                for (label, targets) in targets_by_label.into_iter().flatten() {
                    let forward = self.catalog.forward(etype, label);
                    let reverse = self.catalog.reverse(etype, label);
                    for target in link_targets(targets) {
                        let (e, a, v) = if let Some(a) = forward {
                            let target_etype = self.catalog.attrs[a]
                                .reverse_etype()
                                .unwrap_or_default()
                                .to_string();
                            let v = match self.extract_lookup(&target_etype, &target)? {
                                Eid::Lookup(attr, value) => Val::Lookup(attr, value),
                                Eid::Id(id) => Val::Json(Cow::Owned(Value::String(id.to_string()))),
                            };
                            (source.clone(), a, v)
                        } else if let Some(a) = reverse {
                            let source_etype = self.catalog.attrs[a].etype.clone();
                            let e = self.target_entity(&source_etype, &target)?;
                            (e, a, eid_as_value(&source))
                        } else {
                            return Err(missing_attr_error(etype, label));
                        };
                        ops.push(if action == "link" {
                            Op::Add {
                                e,
                                a,
                                v,
                                mode: Mode::Default,
                            }
                        } else {
                            Op::Retract { e, a, v }
                        });
                    }
                }
            }
            "delete" => {
                let e = self.entity(etype, eid)?;
                ops.push(Op::Delete {
                    e,
                    etype: etype.to_string(),
                });
            }
            "ruleParams" => {
                self.entity(etype, eid)?;
                ops.push(Op::RuleParams);
            }
            "add-attr" => {
                let attr = items.get(1).cloned().unwrap_or_default();
                let server = parse_user_attr(&attr, ops.len())?;
                let index = self.catalog.add_new(server, false);
                ops.push(Op::AddAttr(index));
            }
            "delete-attr" => {
                let id = items.get(1).and_then(Value::as_str).unwrap_or_default();
                ops.push(Op::DeleteAttr(
                    as_uuid(id).unwrap_or_else(|| id.to_string()),
                ));
            }
            other => {
                return Err(ApiError::validation(
                    "action",
                    json!(other),
                    vec![json!({
                        "message": format!("Unsupported action {other}"),
                        "hint": {"value": other},
                    })],
                ))
            }
        }
        Ok(())
    }

    fn attr_named(&self, etype: &str, label: &str) -> Res<usize> {
        self.catalog
            .forward(etype, label)
            .ok_or_else(|| missing_attr_error(etype, label))
    }

    /// The entity of a step (`extract-lookup`); after the shape check it is a UUID or a lookup.
    fn entity(&self, etype: &str, eid: &Value) -> Res<Eid> {
        self.extract_lookup(etype, eid)
    }

    /// A link target used in the entity position (reverse links).
    fn target_entity(&self, etype: &str, target: &Value) -> Res<Eid> {
        self.extract_lookup(etype, target)
    }

    fn extract_lookup(&self, etype: &str, eid: &Value) -> Res<Eid> {
        let Some(pair) = lookup_pair(eid)? else {
            return Ok(Eid::Id(match eid {
                // Client ids are canonical already, as a rule: shared as they are.
                Value::String(text) if is_canonical_uuid(text) => Rc::from(text.as_str()),
                Value::String(text) => as_uuid(text).unwrap_or_else(|| text.clone()).into(),
                other => other.to_string().into(),
            }));
        };
        let label = if self.is_ref_lookup(etype, &pair.0) {
            ref_lookup_link_name(&pair)?
        } else {
            pair.0.clone()
        };
        match self.catalog.forward(etype, &label) {
            Some(index) if self.catalog.attrs[index].unique => Ok(Eid::Lookup(index, pair.1)),
            _ => Err(ApiError::validation(
                "lookup",
                eid.clone(),
                vec![
                    json!({"message": format!("{} is not a unique attribute on {etype}", pair.0)}),
                ],
            )),
        }
    }

    /// The server's second check of internal ops (`tx/validate!`): entity ids and `id` lookups.
    fn check_internal_ops(&self, ops: &[Op]) -> Res<()> {
        // The ops of one step share their entity id: it is checked once.
        let mut checked_id: Option<&Rc<str>> = None;
        for (index, op) in ops.iter().enumerate() {
            let (e, v) = match op {
                Op::Add { e, v, .. } | Op::Retract { e, v, .. } => (Some(e), Some(v)),
                Op::Merge { e, .. } | Op::Delete { e, .. } => (Some(e), None),
                _ => (None, None),
            };
            if let Some(e) = e {
                match e {
                    Eid::Id(id) if checked_id.is_some_and(|known| Rc::ptr_eq(known, id)) => {}
                    Eid::Id(id) if !values::is_uuid_text(id) => {
                        return Err(ApiError::validation(
                            "tx-steps",
                            self.op_json(op),
                            vec![json!({
                                "message": format!("Invalid entity ID '{id}'. Entity IDs must be UUIDs. Use id() or lookup() to generate a valid UUID."),
                                "in": [index, 1],
                            })],
                        ))
                    }
                    Eid::Lookup(attr, value) => self.check_id_lookup(op, index, 1, *attr, value)?,
                    Eid::Id(id) => checked_id = Some(id),
                }
            }
            if let Some(Val::Lookup(attr, value)) = v {
                self.check_id_lookup(op, index, 3, *attr, value)?;
            }
        }
        Ok(())
    }

    fn check_id_lookup(
        &self,
        op: &Op,
        index: usize,
        position: usize,
        attr: usize,
        value: &Value,
    ) -> Res<()> {
        let attr_row = &self.catalog.attrs[attr];
        let is_uuid = value.as_str().is_some_and(values::is_uuid_text);
        if attr_row.label == "id" && !is_uuid {
            return Err(ApiError::validation(
                "tx-steps",
                self.op_json(op),
                vec![json!({
                    "message": format!(
                        "Invalid lookup '[#uuid \"{}\" {}]'. The lookup attribute is '{}', but the lookup value is not a valid UUID.",
                        attr_row.id,
                        values::pr_str(value),
                        attr_row.dotted()
                    ),
                    "in": [index, position],
                })],
            ));
        }
        Ok(())
    }

    fn eid_json(&self, e: &Eid) -> Value {
        match e {
            Eid::Id(id) => json!(&**id),
            Eid::Lookup(attr, value) => json!([self.catalog.attrs[*attr].id, canonical(value)]),
        }
    }

    fn val_json(&self, v: &Val) -> Value {
        match v {
            Val::Json(value) => canonical(value),
            Val::Lookup(attr, value) => json!([self.catalog.attrs[*attr].id, canonical(value)]),
        }
    }

    /// An internal op as the server prints a tx-step vector.
    fn op_json(&self, op: &Op) -> Value {
        let mode_json = |mode: &Mode| match mode {
            Mode::Default => None,
            Mode::Create => Some(json!({"mode": "create"})),
            Mode::Update => Some(json!({"mode": "update"})),
            Mode::Upsert => Some(json!({"mode": "upsert"})),
        };
        let items = match op {
            Op::Add { e, a, v, mode } => {
                let mut out = vec![
                    json!("add-triple"),
                    self.eid_json(e),
                    json!(self.catalog.attrs[*a].id),
                    self.val_json(v),
                ];
                out.extend(mode_json(mode));
                out
            }
            Op::Merge { e, a, v, mode } => {
                let mut out = vec![
                    json!("deep-merge-triple"),
                    self.eid_json(e),
                    json!(self.catalog.attrs[*a].id),
                    canonical(v),
                ];
                out.extend(mode_json(mode));
                out
            }
            Op::Retract { e, a, v } => vec![
                json!("retract-triple"),
                self.eid_json(e),
                json!(self.catalog.attrs[*a].id),
                self.val_json(v),
            ],
            Op::Delete { e, etype } => vec![json!("delete-entity"), self.eid_json(e), json!(etype)],
            Op::AddAttr(index) => vec![
                json!("add-attr"),
                serde_json::to_value(&self.catalog.attrs[*index].pending).unwrap_or_default(),
            ],
            Op::DeleteAttr(id) => vec![json!("delete-attr"), json!(id)],
            Op::RuleParams => vec![json!("rule-params")],
        };
        Value::Array(items)
    }

    /// An op in the server's map form (`mapify-tx-step`), as some error inputs show it.
    fn op_map_json(&self, op: &Op) -> Value {
        match op {
            Op::Add { e, a, v, mode } => {
                let attr = &self.catalog.attrs[*a];
                json!({
                    "op": "add-triple",
                    "eid": self.eid_json(e),
                    "etype": attr.etype,
                    "aid": attr.id,
                    "value": self.val_json(v),
                    "rev-etype": attr.reverse_etype(),
                    "opts": match mode {
                        Mode::Create => json!({"mode": "create"}),
                        Mode::Update => json!({"mode": "update"}),
                        Mode::Upsert => json!({"mode": "upsert"}),
                        Mode::Default => Value::Null,
                    },
                })
            }
            Op::Merge { e, a, v, mode } => {
                let attr = &self.catalog.attrs[*a];
                json!({
                    "op": "deep-merge-triple",
                    "eid": self.eid_json(e),
                    "etype": attr.etype,
                    "aid": attr.id,
                    "value": canonical(v),
                    "rev-etype": attr.reverse_etype(),
                    "opts": match mode {
                        Mode::Create => json!({"mode": "create"}),
                        Mode::Update => json!({"mode": "update"}),
                        Mode::Upsert => json!({"mode": "upsert"}),
                        Mode::Default => Value::Null,
                    },
                })
            }
            other => self.op_json(other),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Preprocessing (before any write, against the data as it was)

    fn resolve_delete_lookups<'s>(&self, ops: Vec<Op<'s>>) -> Res<Vec<Op<'s>>> {
        let by_lookup = |op: &Op| {
            matches!(
                op,
                Op::Delete {
                    e: Eid::Lookup(..),
                    ..
                }
            )
        };
        if !ops.iter().any(by_lookup) {
            return Ok(ops);
        }
        let mut out = Vec::with_capacity(ops.len());
        let mut resolved_deletes = Vec::new();
        for op in ops {
            match op {
                Op::Delete {
                    e: Eid::Lookup(attr, value),
                    etype,
                } => {
                    // A delete through a lookup that matches nothing is a no-op.
                    if let Some(id) = self.resolve_lookup(attr, &value)? {
                        resolved_deletes.push(Op::Delete {
                            e: Eid::Id(id.into()),
                            etype,
                        });
                    }
                }
                other => out.push(other),
            }
        }
        out.extend(resolved_deletes);
        Ok(out)
    }

    /// Adds a delete for every entity reached through `on-delete: cascade` links (targets
    /// deleting their sources) and `on-delete-reverse: cascade` links (sources deleting their
    /// targets), recursively.
    fn expand_cascades(&self, ops: &mut Vec<Op>) -> Res<()> {
        let mut queue: Vec<(String, String)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Delete {
                    e: Eid::Id(id),
                    etype,
                } => Some((id.to_string(), etype.clone())),
                _ => None,
            })
            .collect();
        let cascades: Vec<&Attr> = self
            .catalog
            .attrs
            .iter()
            .filter(|attr| attr.is_ref && attr.pk != 0 && (attr.cascade || attr.cascade_reverse))
            .collect();
        if queue.is_empty() || cascades.is_empty() {
            return Ok(());
        }
        let mut seen: FxHashSet<(String, String)> = queue.iter().cloned().collect();
        let mut sources = self
            .db()?
            .prepare_cached(
                "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                 WHERE t.app_pk = ?1 AND t.ref_id = ?2 AND t.attr_pk = ?3",
            )
            .map_err(sql_error)?;
        let mut targets = self
            .db()?
            .prepare_cached(
                // Pinned: `triples_by_ref` covers the columns too, and the planner would scan it.
                "SELECT ref_id FROM triples INDEXED BY triples_eav WHERE app_pk = ?1 AND entity_pk = \
                 (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2) AND attr_pk = ?3 AND ref_id IS NOT NULL",
            )
            .map_err(sql_error)?;
        while let Some((id, etype)) = queue.pop() {
            for attr in &cascades {
                let mut found: Vec<(String, String)> = Vec::new();
                if attr.cascade && attr.reverse_etype() == Some(etype.as_str()) {
                    let rows = sources
                        .query_map(params![self.app.app_pk, id, attr.pk], |row| row.get(0))
                        .map_err(sql_error)?;
                    for row in rows {
                        found.push((row.map_err(sql_error)?, attr.etype.clone()));
                    }
                }
                if attr.cascade_reverse && attr.etype == etype {
                    let rows = targets
                        .query_map(params![self.app.app_pk, id, attr.pk], |row| row.get(0))
                        .map_err(sql_error)?;
                    let target_etype = attr.reverse_etype().unwrap_or_default().to_string();
                    for row in rows {
                        found.push((row.map_err(sql_error)?, target_etype.clone()));
                    }
                }
                for pair in found {
                    if seen.insert(pair.clone()) {
                        ops.push(Op::Delete {
                            e: Eid::Id(pair.0.as_str().into()),
                            etype: pair.1.clone(),
                        });
                        queue.push(pair);
                    }
                }
            }
        }
        Ok(())
    }

    /// Admins may write system namespaces, except `$files` and `$streams` system columns.
    fn prevent_system_column_updates(&self, ops: &[Op]) -> Res<()> {
        for op in ops {
            let a = match op {
                Op::Add { a, .. } | Op::Merge { a, .. } | Op::Retract { a, .. } => *a,
                _ => continue,
            };
            let attr = &self.catalog.attrs[a];
            if !attr.etype.starts_with('$') {
                continue;
            }
            let value = match op {
                Op::Add { v, .. } | Op::Retract { v, .. } => Some(self.val_json(v)),
                Op::Merge { v, .. } => Some((*v).clone()),
                _ => None,
            };
            let editable = matches!(
                (attr.etype.as_str(), attr.label.as_str()),
                ("$users", "id") | ("$files", "id") | ("$files", "path") | ("$streams", "id")
            );
            let fail = |message: String| {
                ApiError::validation(
                    "tx-step",
                    self.op_json(op),
                    vec![json!({"message": message})],
                )
            };
            if attr.system && !editable && matches!(attr.etype.as_str(), "$files" | "$streams") {
                return Err(fail(format!(
                    "{} is a system column. You aren't allowed to change this directly.",
                    attr.dotted()
                )));
            }
            let stream_path = value
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|path| path.starts_with("$stream/"));
            if attr.etype == "$files" && attr.label == "path" && stream_path {
                return Err(fail("The path for stream files can't be edited.".into()));
            }
        }
        Ok(())
    }

    fn assert_write_allowed(&self) -> Res<()> {
        match self.app.status.as_str() {
            "read-only" => Err(ApiError::new(
                400,
                "app-read-only",
                "This app is in read-only mode.",
                json!({"status": "read-only"}),
            )),
            "disabled" => Err(ApiError::new(
                400,
                "app-disabled",
                "This app is currently disabled.",
                json!({"status": "disabled"}),
            )),
            _ => Ok(()),
        }
    }

    /// `validate-mode`: `create` must not find the entity, `update` (upsert false) must.
    fn validate_mode(&self, groups: &[(usize, Vec<Op>)]) -> Res<()> {
        let checked = || {
            groups
                .iter()
                .flat_map(|(_, group)| group)
                .filter_map(|op| match op {
                    Op::Add { e, a, mode, .. } | Op::Merge { e, a, mode, .. }
                        if matches!(mode, Mode::Create | Mode::Update) =>
                    {
                        Some((op, e, *a, *mode))
                    }
                    _ => None,
                })
        };
        // The entities given by id are looked up together, per namespace.
        let mut ids_by_etype: FxHashMap<&str, Vec<&str>> = FxHashMap::default();
        for (_, e, a, _) in checked() {
            if let Eid::Id(id) = e {
                let etype = self.catalog.attrs[a].etype.as_str();
                ids_by_etype.entry(etype).or_default().push(id);
            }
        }
        let existing = IdProbe::InNamespace
            .matching_per_namespace(self.db()?, self.app.app_pk, ids_by_etype)
            .map_err(sql_error)?;
        let mut creates_existing = Vec::new();
        let mut updates_missing = Vec::new();
        for (op, e, a, mode) in checked() {
            let exists = match e {
                Eid::Id(id) => existing
                    .get(self.catalog.attrs[a].etype.as_str())
                    .is_some_and(|found| found.contains(&**id)),
                Eid::Lookup(attr, value) => self.resolve_lookup(*attr, value)?.is_some(),
            };
            if mode == Mode::Create && exists {
                creates_existing.push(op);
            } else if mode == Mode::Update && !exists {
                updates_missing.push(op);
            }
        }
        for (found, prefix) in [
            (creates_existing, "Creating entities that exist: "),
            (updates_missing, "Updating entities that don't exist: "),
        ] {
            if found.is_empty() {
                continue;
            }
            let eids: Vec<String> = found
                .iter()
                .map(|op| match op {
                    Op::Add { e, .. } | Op::Merge { e, .. } => match e {
                        Eid::Id(id) => id.to_string(),
                        lookup => values::pr_str(&self.eid_json(lookup)),
                    },
                    _ => String::new(),
                })
                .collect();
            return Err(ApiError::validation(
                "tx-step",
                Value::Array(found.iter().map(|op| self.op_map_json(op)).collect()),
                vec![json!({"message": format!("{prefix}{}", eids.join(", "))})],
            ));
        }
        Ok(())
    }

    /// The entity holding `value` for the unique attribute `attr`, in the data as it is now.
    /// A null never matches (unique indexes ignore nulls).
    fn resolve_lookup(&self, attr: usize, value: &Value) -> Res<Option<String>> {
        let attr = &self.catalog.attrs[attr];
        if value.is_null() || attr.pk == 0 {
            return Ok(None);
        }
        // Unique data attributes are in the value index; links are found through their target.
        let (sql, key) = if attr.is_ref {
            (
                "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                 WHERE t.app_pk = ?1 AND t.ref_id = ?3 AND t.attr_pk = ?2 LIMIT 1",
                ref_key(value),
            )
        } else {
            (
                "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                 WHERE t.app_pk = ?1 AND t.attr_pk = ?2 AND t.value = ?3 AND t.av = 1 LIMIT 1",
                storage_text(value),
            )
        };
        let mut statement = self.db()?.prepare_cached(sql).map_err(sql_error)?;
        statement
            .query_row(params![self.app.app_pk, attr.pk, key], |row| row.get(0))
            .optional()
            .map_err(sql_error)
    }

    // -----------------------------------------------------------------------------------------
    // Groups

    fn run_add_attrs(&mut self, group: &[Op]) -> Res<()> {
        for op in group {
            let Op::AddAttr(index) = op else { continue };
            let Some(server) = self.catalog.attrs[*index].pending.clone() else {
                continue;
            };
            self.validate_new_attr(&server)?;
            let pk = store::insert_attr(self.db()?, self.app.app_pk, &server)?;
            self.catalog.attrs[*index].pk = pk;
            let attr = &self.catalog.attrs[*index];
            if attr.indexed && !attr.is_ref {
                // Existing entities of the namespace get a null value for the new indexed
                // attribute, as the server's `attr-model/insert-multi!` writes.
                self.db()?
                    .prepare_cached(
                        "INSERT OR IGNORE INTO triples (app_pk, entity_pk, attr_pk, value, vkey, num, ref_id, av, created_at) \
                         SELECT app_pk, entity_pk, ?3, 'null', 'null', NULL, NULL, 1, ?4 FROM entities WHERE app_pk = ?1 AND etype = ?2",
                    )
                    .and_then(|mut statement| {
                        statement.execute(params![self.app.app_pk, attr.etype, pk, self.now])
                    })
                    .map_err(sql_error)?;
            }
        }
        self.refresh_derived();
        Ok(())
    }

    fn validate_new_attr(&self, server: &ServerAttr) -> Res<()> {
        let input = serde_json::to_value(server).unwrap_or_default();
        let idents = std::iter::once(&server.forward_identity).chain(&server.reverse_identity);
        for ident in idents.clone() {
            let editable = matches!(ident.etype.as_str(), "$users" | "$files" | "$streams");
            if ident.etype.starts_with('$') && !editable {
                return Err(ApiError::validation(
                    "attributes",
                    input,
                    vec![
                        json!({"message": format!("$ is reserved for system tables. You can't create {}", ident.etype)}),
                    ],
                ));
            }
        }
        if server.required {
            let has_entities: bool = self
                .db()?
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM entities WHERE app_pk = ?1 AND etype = ?2) \
                     OR EXISTS (SELECT 1 FROM triples t JOIN attrs a ON a.attr_pk = t.attr_pk \
                                WHERE t.app_pk = ?1 AND a.app_pk = ?1 AND a.etype = ?2)",
                )
                .and_then(|mut statement| {
                    statement.query_row(
                        params![self.app.app_pk, server.forward_identity.etype],
                        |row| row.get(0),
                    )
                })
                .map_err(sql_error)?;
            if has_entities {
                return Err(ApiError::validation(
                    "attributes",
                    input,
                    vec![json!({"message": format!(
                        "Can't create attribute `{}` as required because `{}` already have entities",
                        server.forward_identity.label, server.forward_identity.etype
                    )})],
                ));
            }
        }
        // Forward and reverse names share one namespace per app (the server's unique idents).
        for ident in idents {
            let taken: bool = self
                .db()?
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM attrs WHERE app_pk = ?1 AND deleted_at IS NULL AND \
                     ((etype = ?2 AND label = ?3) OR (reverse_etype = ?2 AND reverse_label = ?3)))",
                )
                .and_then(|mut statement| {
                    statement.query_row(
                        params![self.app.app_pk, ident.etype, ident.label],
                        |row| row.get(0),
                    )
                })
                .map_err(sql_error)?;
            if taken {
                return Err(ApiError::new(
                    400,
                    "record-not-unique",
                    format!("`{}` already exists on `{}`", ident.label, ident.etype),
                    json!({"record-type": "ident", "etype": ident.etype, "label": ident.label}),
                ));
            }
        }
        Ok(())
    }

    fn run_delete_attrs(&mut self, group: &[Op]) -> Res<()> {
        for op in group {
            let Op::DeleteAttr(id) = op else { continue };
            self.db()?
                .prepare_cached(
                    "UPDATE attrs SET deleted_at = ?3, is_indexed = 0, is_required = 0 \
                     WHERE app_pk = ?1 AND id = ?2 AND deleted_at IS NULL",
                )
                .and_then(|mut statement| statement.execute(params![self.app.app_pk, id, self.now]))
                .map_err(sql_error)?;
            for attr in &mut self.catalog.attrs {
                if attr.id == *id {
                    attr.deleted = true;
                    attr.indexed = false;
                    attr.required = false;
                }
            }
        }
        self.refresh_derived();
        Ok(())
    }

    fn live_attr(&self, a: usize) -> Res<&Attr> {
        let attr = &self.catalog.attrs[a];
        if attr.pk == 0 || attr.deleted {
            return Err(sql_raise(&format!(
                "We could not find an attribute with id = '{}'",
                attr.id
            )));
        }
        Ok(attr)
    }

    /// The `add-triple` group, as the server's single `insert-multi!` statement.
    fn run_add_triples(&mut self, group: &[Op]) -> Res<()> {
        // 1. Entity lookups: resolve, or create the entity with its lookup value.
        let mut lookup_refs: Vec<(usize, Value)> = Vec::new();
        let mut lookup_ids: FxHashMap<(usize, String), String> = FxHashMap::default();
        let mut created: Vec<(usize, String, String)> = Vec::new();
        for op in group {
            let Op::Add {
                e: Eid::Lookup(attr, value),
                ..
            } = op
            else {
                continue;
            };
            let key = (*attr, storage_text(value));
            if lookup_ids.contains_key(&key) {
                continue;
            }
            self.live_attr(*attr)?;
            lookup_refs.push((*attr, value.clone()));
            let id = match self.resolve_lookup(*attr, value)? {
                Some(id) => id,
                None => {
                    let attr_row = &self.catalog.attrs[*attr];
                    let id = if attr_row.label == "id" {
                        value.as_str().and_then(as_uuid).unwrap_or_default()
                    } else {
                        uuid::Uuid::new_v4().to_string()
                    };
                    created.push((*attr, key.1.clone(), id.clone()));
                    id
                }
            };
            lookup_ids.insert(key, id);
        }
        // A created lookup entity cannot also have its lookup attribute set by this group.
        for (attr, text, _) in &created {
            let clash = self.catalog.attrs[*attr].card_one
                && group.iter().any(|op| match op {
                    Op::Add {
                        e: Eid::Lookup(e_attr, e_value),
                        a,
                        ..
                    } => e_attr == attr && a == attr && storage_text(e_value) == *text,
                    _ => false,
                });
            if clash {
                return Err(ApiError::validation(
                    "lookup",
                    Value::Array(
                        lookup_refs
                            .iter()
                            .map(|(a, v)| json!([self.catalog.attrs[*a].id, canonical(v)]))
                            .collect(),
                    ),
                    vec![
                        json!({"message": "Updates with lookups can only update the lookup attribute if an entity with the unique attribute value already exists."}),
                    ],
                ));
            }
        }

        // 2. Resolve every triple; value lookups see the data before the group plus the
        //    entities created by lookups above.
        let mut triples: Vec<(&str, usize, Cow<Value>)> = Vec::with_capacity(group.len());
        for op in group {
            let Op::Add { e, a, v, .. } = op else {
                continue;
            };
            let entity = match e {
                Eid::Id(id) => &**id,
                Eid::Lookup(attr, value) => lookup_ids[&(*attr, storage_text(value))].as_str(),
            };
            let value = match v {
                Val::Json(value) => Cow::Borrowed(value.as_ref()),
                Val::Lookup(attr, value) => Cow::Owned({
                    let lookupable = {
                        let target = &self.catalog.attrs[*a];
                        target.is_ref || target.label == "id"
                    };
                    if !lookupable {
                        json!([self.catalog.attrs[*attr].id, value])
                    } else {
                        let key = (*attr, storage_text(value));
                        let found = match lookup_ids.get(&key) {
                            Some(id) => Some(id.clone()),
                            None => self.resolve_lookup(*attr, value)?,
                        };
                        match found {
                            Some(id) => Value::String(id),
                            None => {
                                let attr_row = &self.catalog.attrs[*attr];
                                return Err(ApiError::validation(
                                    "lookup",
                                    json!({
                                        "attribute-id": attr_row.id,
                                        "namespace": attr_row.etype,
                                        "label": attr_row.label,
                                        "value": canonical(value),
                                    }),
                                    vec![
                                        json!({"message": "The entity for the lookup does not exist."}),
                                    ],
                                ));
                            }
                        }
                    }
                }),
            };
            triples.push((entity, *a, value));
        }
        for (_, _, value) in &triples {
            if values::has_null_byte(value) {
                return Err(null_byte_error());
            }
        }

        // 3. Write the lookup values of created entities, then the triples; a cardinality-one
        //    attribute written several times keeps its last value.
        let mut written: FxHashSet<(&str, usize)> =
            FxHashSet::with_capacity_and_hasher(triples.len(), Default::default());
        for (attr, _, id) in &created {
            let value = lookup_refs
                .iter()
                .find(|(a, v)| a == attr && lookup_ids.get(&(*a, storage_text(v))) == Some(id))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            self.write_lookup_value(id, *attr, &value)?;
            written.insert((id.as_str(), *attr));
        }
        let mut last: FxHashMap<(&str, usize), usize> =
            FxHashMap::with_capacity_and_hasher(triples.len(), Default::default());
        for (position, (entity, a, _)) in triples.iter().enumerate() {
            if self.catalog.attrs[*a].card_one {
                last.insert((*entity, *a), position);
            }
        }
        let is_kept = |position: usize, entity: &str, a: usize, card_one: bool| {
            !card_one || last.get(&(entity, a)) == Some(&position)
        };
        // The entity rows go in first, in one batch: nothing in this group reads them, and
        // which ids the group creates decides how their triples are written. Their namespaces
        // are copied out of the catalogue, which the writes below update.
        let mut id_etypes: Vec<(usize, String)> = Vec::new();
        for (_, a, _) in &triples {
            let attr = &self.catalog.attrs[*a];
            if attr.label == "id" && !id_etypes.iter().any(|(known, _)| known == a) {
                id_etypes.push((*a, attr.etype.clone()));
            }
        }
        let etype_of = |a: usize| {
            id_etypes
                .iter()
                .find(|(known, _)| *known == a)
                .map_or("", |(_, etype)| etype.as_str())
        };
        let id_writes: Vec<(&str, &str)> = triples
            .iter()
            .enumerate()
            .filter_map(|(position, (entity, a, _))| {
                let attr = &self.catalog.attrs[*a];
                (attr.label == "id" && is_kept(position, entity, *a, attr.card_one))
                    .then_some((etype_of(*a), *entity))
            })
            .collect();
        let conn = self.db()?;
        let inserted = self
            .pending
            .borrow_mut()
            .insert_entities(conn, self.app.app_pk, self.now, &id_writes)
            .map_err(sql_error)?;
        let mut created_rows = inserted.created;
        // Created entities that held no triple of their namespace before the group: each of
        // their (entity, attribute) pairs of that namespace is written once here, so those
        // triples are plain inserts. Ids new to the app (most ids of a bulk write) hold
        // nothing, so only the others are probed, per namespace: an id that already names an
        // entity of another namespace (a migration keeps the legacy ids) is fresh in this one.
        let mut probed: FxHashMap<&str, Vec<&str>> = FxHashMap::default();
        for (etype, id) in &created_rows {
            if !inserted.new_ids.contains(id) {
                probed.entry(*etype).or_default().push(*id);
            }
        }
        let had_triples = IdProbe::HasTripleIn
            .matching_per_namespace(self.db()?, self.app.app_pk, probed)
            .map_err(sql_error)?;
        // Entities whose row this group created and that held no triple of the namespace:
        // all their triples of the namespace are plain inserts, whatever their position in
        // the group. Keyed by (namespace, id).
        let fresh: FxHashSet<(&str, &str)> = triples
            .iter()
            .enumerate()
            .filter(|(position, (entity, a, _))| {
                let attr = &self.catalog.attrs[*a];
                attr.label == "id"
                    && is_kept(*position, entity, *a, attr.card_one)
                    && created_rows.contains(&(etype_of(*a), *entity))
                    && !had_triples
                        .get(etype_of(*a))
                        .is_some_and(|ids| ids.contains(*entity))
            })
            .map(|(_, (entity, a, _))| (etype_of(*a), *entity))
            .collect();
        // A cardinality-one value of any other entity replaces the stored one if there is
        // one: which (entity, attribute) pairs hold a triple is asked per attribute for all
        // the group's ids at once, instead of an `UPDATE` tried per value.
        let mut replace_ids: FxHashMap<usize, Vec<&str>> = FxHashMap::default();
        for (position, (entity, a, _)) in triples.iter().enumerate() {
            let attr = &self.catalog.attrs[*a];
            if attr.card_one
                && attr.label != "id"
                && !fresh.contains(&(attr.etype.as_str(), *entity))
                && is_kept(position, entity, *a, attr.card_one)
            {
                replace_ids.entry(*a).or_default().push(entity);
            }
        }
        let mut stored: FxHashMap<usize, FxHashSet<String>> = FxHashMap::default();
        for (a, ids) in replace_ids {
            let pk = self.live_attr(a)?.pk;
            let found = IdProbe::HasAttr
                .matching(self.db()?, self.app.app_pk, pk, ids)
                .map_err(sql_error)?;
            stored.insert(a, found);
        }
        let mut new_entities: Vec<(&str, usize)> = Vec::new();
        for (position, (entity, a, value)) in triples.iter().enumerate() {
            let attr = self.live_attr(*a)?;
            if !is_kept(position, entity, *a, attr.card_one) {
                continue;
            }
            if attr.label == "id" {
                let etype = etype_of(*a);
                if created_rows.remove(&(etype, *entity)) {
                    if self.only_adds && self.required_etypes.contains(etype) {
                        self.rows_created
                            .insert((entity.to_string(), etype.to_string()));
                    }
                    if self.indexed_blobs.contains_key(etype) {
                        new_entities.push((entity, *a));
                    }
                    self.touch(entity, etype);
                }
                continue;
            }
            let nothing_stored = fresh.contains(&(attr.etype.as_str(), *entity))
                || (attr.card_one && !stored.get(a).is_some_and(|ids| ids.contains(*entity)));
            self.write_triple(entity, *a, value, nothing_stored)?;
            if self
                .indexed_blobs
                .contains_key(&self.catalog.attrs[*a].etype)
            {
                written.insert((entity, *a));
            }
        }

        // 4. New entities get a null triple for each indexed blob attribute left unset.
        for (entity, id_attr) in new_entities {
            let etype = &self.catalog.attrs[id_attr].etype;
            let indexed = self.indexed_blobs.get(etype).cloned().unwrap_or_default();
            for a in indexed {
                if written.contains(&(entity, a)) {
                    continue;
                }
                let pk = self.catalog.attrs[a].pk;
                if fresh.contains(&(etype.as_str(), entity)) {
                    self.insert_triple(
                        entity,
                        TripleRow {
                            attr_pk: pk,
                            value: "null".into(),
                            num: None,
                            ref_id: None,
                            av: true,
                        },
                    );
                    continue;
                }
                self.db()?
                    .prepare_cached(
                        "INSERT OR IGNORE INTO triples (app_pk, entity_pk, attr_pk, value, vkey, num, ref_id, av, created_at) \
                         SELECT ?1, k.entity_pk, ?3, 'null', 'null', NULL, NULL, 1, ?4 FROM entity_keys k \
                         WHERE k.app_pk = ?1 AND k.entity_id = ?2 AND NOT EXISTS \
                         (SELECT 1 FROM triples WHERE app_pk = ?1 AND entity_pk = k.entity_pk AND attr_pk = ?3)",
                    )
                    .and_then(|mut statement| {
                        statement.execute(params![self.app.app_pk, entity, pk, self.now])
                    })
                    .map_err(sql_error)?;
            }
        }
        Ok(())
    }

    fn touch(&mut self, entity: &str, etype: &str) {
        if self.required_etypes.contains(etype) {
            let key = (entity.to_string(), etype.to_string());
            if self.touched_set.insert(key.clone()) {
                self.touched.push(key);
            }
        }
    }

    /// Writes one triple with the checks of the server's `triples` table: value size for
    /// indexed values, link values, checked data types, then unique values. With
    /// `nothing_stored` the caller knows the entity holds no triple of the attribute, so
    /// nothing needs replacing.
    fn write_triple(
        &mut self,
        entity: &str,
        a: usize,
        value: &Value,
        nothing_stored: bool,
    ) -> Res<()> {
        let attr = self.live_attr(a)?;
        let text = storage_text(value);
        if (attr.is_ref || attr.unique || attr.indexed)
            && values::jsonb_size(value, text.len()) > 1024
        {
            let message = if attr.unique {
                "Value is too large for a unique attribute."
            } else {
                "Value is too large for an indexed attribute."
            };
            return Err(check_violation(attr, entity, value, message, true));
        }
        let mut ref_id = None;
        if attr.is_ref {
            match value.as_str().and_then(as_uuid) {
                Some(uuid) => ref_id = Some(uuid),
                None => {
                    return Err(check_violation(
                        attr,
                        entity,
                        value,
                        "Linked value must be a valid uuid.",
                        false,
                    ))
                }
            }
        }
        let mut num = match value {
            Value::Number(number) => number.as_f64(),
            _ => None,
        };
        if let Some(data_type) = &attr.checked {
            match values::check_data_type(data_type, value) {
                Some(indexed) => {
                    if data_type == "date" {
                        num = indexed;
                    }
                }
                None => {
                    let (_, truncated) = values::error_detail_value(value);
                    let message = if truncated {
                        format!(
                            "Invalid value type for {}. Value must be a {data_type}.",
                            attr.dotted()
                        )
                    } else {
                        format!(
                            "Invalid value type for {}. Value must be a {data_type} but the provided value type is {}.",
                            attr.dotted(),
                            values::json_type(value)
                        )
                    };
                    return Err(check_violation(attr, entity, value, &message, false));
                }
            }
        }
        if attr.unique && !value.is_null() {
            // A unique link (reverse has-one) is checked through its target, a unique data
            // attribute through the value index.
            let (sql, key) = if attr.is_ref {
                (
                    "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                     WHERE t.app_pk = ?1 AND t.ref_id = ?3 AND t.attr_pk = ?2 \
                     AND t.entity_pk IS NOT (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?4) LIMIT 1",
                    ref_key(value),
                )
            } else {
                (
                    "SELECT k.entity_id FROM triples t CROSS JOIN entity_keys k ON k.entity_pk = t.entity_pk \
                     WHERE t.app_pk = ?1 AND t.attr_pk = ?2 AND t.value = ?3 AND t.av = 1 \
                     AND t.entity_pk IS NOT (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?4) LIMIT 1",
                    text.clone(),
                )
            };
            let other: Option<String> = self
                .db()?
                .prepare_cached(sql)
                .and_then(|mut statement| {
                    statement
                        .query_row(params![self.app.app_pk, attr.pk, key, entity], |row| {
                            row.get(0)
                        })
                        .optional()
                })
                .map_err(sql_error)?;
            if other.is_some() {
                let shown = values::jsonb_text(value);
                return Err(ApiError::new(
                    400,
                    "record-not-unique",
                    format!(
                        "`{label}` is a unique attribute on `{etype}` and an entity already exists with `{etype}.{label}` = {shown}",
                        label = attr.label,
                        etype = attr.etype
                    ),
                    json!({
                        "record-type": "triple",
                        "attr-id": attr.id,
                        "etype": attr.etype,
                        "label": attr.label,
                        "value": shown,
                    }),
                ));
            }
        }
        let (pk, card_one, bit) = (attr.pk, attr.card_one, values::inferred_type_bit(value));
        let av = !attr.is_ref && (attr.unique || attr.indexed);
        let app_pk = self.app.app_pk;
        if card_one && !nothing_stored {
            let updated = self
                .db()?
                .prepare_cached(
                    "UPDATE triples SET value = ?4, vkey = ?7, num = ?5, ref_id = ?6 WHERE app_pk = ?1 \
                     AND entity_pk = (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2) AND attr_pk = ?3",
                )
                .and_then(|mut statement| {
                    statement.execute(params![app_pk, entity, pk, text, num, ref_id, value_key(&text)])
                })
                .map_err(sql_error)?;
            if updated == 0 {
                self.insert_triple(
                    entity,
                    TripleRow {
                        attr_pk: pk,
                        value: text,
                        num,
                        ref_id,
                        av,
                    },
                );
            }
        } else {
            self.insert_triple(
                entity,
                TripleRow {
                    attr_pk: pk,
                    value: text,
                    num,
                    ref_id,
                    av,
                },
            );
        }
        self.catalog.attrs[a].inferred |= bit;
        if self.only_adds && self.catalog.attrs[a].required {
            let written = self
                .required_written
                .entry((entity.to_string(), a))
                .or_insert(false);
            // Cardinality many keeps every value: one non-null value stays.
            *written = !value.is_null() || (!card_one && *written);
        }
        if self.required_etypes.contains(&self.catalog.attrs[a].etype) {
            let etype = self.catalog.attrs[a].etype.clone();
            self.touch(entity, &etype);
        }
        Ok(())
    }

    /// Queues a triple insert (`INSERT OR IGNORE`), written before the next statement.
    fn insert_triple(&self, entity: &str, row: TripleRow) {
        self.pending.borrow_mut().push_triple(entity, row);
    }

    /// Resolves an entity lookup in the data as it is now, creating the entity (with its
    /// lookup value) when nothing matches.
    fn lookup_or_create(&mut self, attr: usize, value: &Value) -> Res<String> {
        if let Some(id) = self.resolve_lookup(attr, value)? {
            return Ok(id);
        }
        let id = if self.catalog.attrs[attr].label == "id" {
            value.as_str().and_then(as_uuid).unwrap_or_default()
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        if values::has_null_byte(value) {
            return Err(null_byte_error());
        }
        self.write_lookup_value(&id, attr, value)?;
        Ok(id)
    }

    /// The lookup value of an entity a lookup creates; an `id` lookup creates the entity row,
    /// which stands for the `id` triple.
    fn write_lookup_value(&mut self, id: &str, attr: usize, value: &Value) -> Res<()> {
        let attr_row = self.live_attr(attr)?;
        if attr_row.label != "id" {
            return self.write_triple(id, attr, value, false);
        }
        let etype = attr_row.etype.clone();
        self.pending.borrow_mut().push_entity(&etype, id);
        self.touch(id, &etype);
        Ok(())
    }

    /// The `deep-merge-triple` group: patches merge, in order, into the stored value.
    fn run_merges(&mut self, group: &[Op]) -> Res<()> {
        let mut order: Vec<(String, usize)> = Vec::new();
        let mut patches: FxHashMap<(String, usize), Vec<&Value>> = FxHashMap::default();
        for op in group {
            let Op::Merge { e, a, v, .. } = op else {
                continue;
            };
            let attr = self.live_attr(*a)?;
            if attr.is_ref {
                return Err(sql_raise("merge operation is not supported for links"));
            }
            if values::has_null_byte(v) {
                return Err(null_byte_error());
            }
            let entity = match e {
                Eid::Id(id) => id.to_string(),
                Eid::Lookup(attr, value) => self.lookup_or_create(*attr, value)?,
            };
            let key = (entity, *a);
            let entry = patches.entry(key.clone()).or_default();
            if entry.is_empty() {
                order.push(key);
            }
            entry.push(v);
        }
        for key in order {
            let existing: Option<String> = self
                .db()?
                .prepare_cached(
                    "SELECT value FROM triples WHERE app_pk = ?1 \
                     AND entity_pk = (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2) AND attr_pk = ?3 LIMIT 1",
                )
                .and_then(|mut statement| {
                    statement
                        .query_row(
                            params![self.app.app_pk, key.0, self.catalog.attrs[key.1].pk],
                            |row| row.get(0),
                        )
                        .optional()
                })
                .map_err(sql_error)?;
            let mut merged = existing.and_then(|text| serde_json::from_str::<Value>(&text).ok());
            for patch in &patches[&key] {
                merged = Some(values::deep_merge(merged, &canonical(patch)));
            }
            let merged = merged.unwrap_or_default();
            self.write_triple(&key.0, key.1, &merged, false)?;
        }
        Ok(())
    }

    /// The `retract-triple` group (unlink): lookups resolve in the data as it is now.
    fn run_retracts(&mut self, group: &[Op]) -> Res<()> {
        for op in group {
            let Op::Retract { e, a, v } = op else {
                continue;
            };
            let entity = match e {
                Eid::Id(id) => Some(id.to_string()),
                Eid::Lookup(attr, value) => self.resolve_lookup(*attr, value)?,
            };
            let value = match v {
                Val::Json(value) => Some(value.clone().into_owned()),
                Val::Lookup(attr, value) => self.resolve_lookup(*attr, value)?.map(Value::String),
            };
            let (Some(entity), Some(value)) = (entity, value) else {
                continue;
            };
            let attr = self.live_attr(*a)?;
            let (pk, etype) = (attr.pk, attr.etype.clone());
            let deleted = self
                .db()?
                .prepare_cached(
                    "DELETE FROM triples WHERE app_pk = ?1 \
                     AND entity_pk = (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2) AND attr_pk = ?3 AND vkey = ?4",
                )
                .and_then(|mut statement| {
                    let text = storage_text(&value);
                    statement.execute(params![self.app.app_pk, entity, pk, value_key(&text)])
                })
                .map_err(sql_error)?;
            if deleted > 0 {
                self.touch(&entity, &etype);
            }
        }
        Ok(())
    }

    /// The `delete-entity` group: the entity's triples in its namespace, every link pointing
    /// at it from that namespace's reverse side, and its `id`.
    fn run_deletes(&mut self, group: &[Op]) -> Res<()> {
        let mut done: FxHashSet<(String, String)> = FxHashSet::default();
        for op in group {
            let Op::Delete {
                e: Eid::Id(id),
                etype,
            } = op
            else {
                continue;
            };
            if !done.insert((id.to_string(), etype.clone())) {
                continue;
            }
            let app_pk = self.app.app_pk;
            self.db()?
                .prepare_cached(
                    "DELETE FROM triples WHERE app_pk = ?1 AND entity_pk = \
                     (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2) AND attr_pk IN \
                     (SELECT attr_pk FROM attrs WHERE app_pk = ?1 AND etype = ?3)",
                )
                .and_then(|mut statement| statement.execute(params![app_pk, id, etype]))
                .map_err(sql_error)?;
            let sources: Vec<(String, i64)> = {
                let mut statement = self
                    .db()?
                    .prepare_cached(
                        "DELETE FROM triples WHERE app_pk = ?1 AND ref_id = ?2 AND attr_pk IN \
                         (SELECT attr_pk FROM attrs WHERE app_pk = ?1 AND reverse_etype = ?3) \
                         RETURNING (SELECT entity_id FROM entity_keys k WHERE k.entity_pk = triples.entity_pk), attr_pk",
                    )
                    .map_err(sql_error)?;
                let rows = statement
                    .query_map(params![app_pk, id, etype], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .map_err(sql_error)?;
                rows.collect::<Result<_, _>>().map_err(sql_error)?
            };
            self.db()?
                .prepare_cached(
                    "DELETE FROM entities WHERE app_pk = ?1 AND etype = ?2 AND entity_pk = \
                     (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?3)",
                )
                .and_then(|mut statement| statement.execute(params![app_pk, etype, id]))
                .map_err(sql_error)?;
            self.touch(id, etype);
            for (source, attr_pk) in sources {
                if let Some(attr) = self.catalog.attrs.iter().find(|attr| attr.pk == attr_pk) {
                    let source_etype = attr.etype.clone();
                    self.touch(&source, &source_etype);
                }
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // End of transaction

    /// `validate-required!`: every touched entity that still exists in its namespace must have
    /// a non-null value for each required attribute (and an `id`).
    fn validate_required(&self) -> Res<()> {
        if self.touched.is_empty() {
            return Ok(());
        }
        let mut groups: Vec<((String, String), Vec<Value>)> = Vec::new();
        // What the checks need is asked per namespace (and required attribute) for all the
        // touched ids at once; the records are then built in the order entities were touched.
        let (conn, app_pk) = (self.db()?, self.app.app_pk);
        let mut ids_by_etype: FxHashMap<&str, Vec<&str>> = FxHashMap::default();
        for (entity, etype) in &self.touched {
            ids_by_etype.entry(etype).or_default().push(entity);
        }
        // Entities this transaction created with every required value (see `only_adds`)
        // need no query.
        let mut proven: FxHashSet<(&str, &str)> = FxHashSet::default();
        if self.only_adds {
            for (etype, ids) in ids_by_etype.iter_mut() {
                let required: Vec<usize> = self
                    .catalog
                    .attrs
                    .iter()
                    .enumerate()
                    .filter(|(_, attr)| {
                        attr.etype == *etype
                            && attr.required
                            && attr.label != "id"
                            && attr.pk != 0
                            && !attr.deleted
                    })
                    .map(|(index, _)| index)
                    .collect();
                ids.retain(|id| {
                    let complete = self
                        .rows_created
                        .contains(&(id.to_string(), etype.to_string()))
                        && required.iter().all(|index| {
                            self.required_written
                                .get(&(id.to_string(), *index))
                                .copied()
                                .unwrap_or(false)
                        });
                    if complete {
                        proven.insert((*id, *etype));
                    }
                    !complete
                });
            }
        }
        let mut with_row: FxHashMap<&str, FxHashSet<String>> = FxHashMap::default();
        let mut alive: FxHashMap<&str, FxHashSet<String>> = FxHashMap::default();
        let mut with_value: FxHashMap<usize, FxHashSet<String>> = FxHashMap::default();
        for (etype, ids) in ids_by_etype {
            let rows = IdProbe::HasRow
                .matching(conn, app_pk, etype, ids.iter().copied())
                .map_err(sql_error)?;
            let without_row = ids.iter().copied().filter(|id| !rows.contains(*id));
            let mut living = IdProbe::HasValueIn
                .matching(conn, app_pk, etype, without_row)
                .map_err(sql_error)?;
            living.extend(rows.iter().cloned());
            for (index, attr) in self.catalog.attrs.iter().enumerate() {
                if attr.etype == etype && attr.required && attr.label != "id" && attr.pk != 0 {
                    let alive_ids = ids.iter().copied().filter(|id| living.contains(*id));
                    let found = IdProbe::HasValue
                        .matching(conn, app_pk, attr.pk, alive_ids)
                        .map_err(sql_error)?;
                    with_value.insert(index, found);
                }
            }
            with_row.insert(etype, rows);
            alive.insert(etype, living);
        }
        let mut records = Vec::new();
        for (entity, etype) in &self.touched {
            if proven.contains(&(entity.as_str(), etype.as_str())) {
                continue;
            }
            let has_id = with_row[etype.as_str()].contains(entity);
            if !alive[etype.as_str()].contains(entity) {
                continue;
            }
            for (index, attr) in self.catalog.attrs.iter().enumerate() {
                if attr.etype != *etype || attr.deleted || attr.pk == 0 {
                    continue;
                }
                let missing = if attr.label == "id" {
                    !has_id
                } else if attr.required {
                    !with_value
                        .get(&index)
                        .is_some_and(|found| found.contains(entity))
                } else {
                    false
                };
                if !missing {
                    continue;
                }
                let record = json!({
                    "entity_id": entity,
                    "attr_id": attr.id,
                    "etype": attr.etype,
                    "label": attr.label,
                    "is_required": attr.required,
                });
                records.push(record);
                let key = (attr.etype.clone(), attr.label.clone());
                match groups.iter_mut().find(|(existing, _)| *existing == key) {
                    Some((_, entities)) => entities.push(json!(entity)),
                    None => groups.push((key, vec![json!(entity)])),
                }
            }
        }
        if groups.is_empty() {
            return Ok(());
        }
        let message = groups
            .iter()
            .map(|((etype, label), entities)| {
                let ids: Vec<&str> = entities.iter().filter_map(Value::as_str).collect();
                if ids.len() == 1 {
                    format!("Missing required attribute `{etype}/{label}`: {}", ids[0])
                } else {
                    format!(
                        "Missing required attributes `{etype}/{label}`: {}",
                        ids.join(", ")
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(". ");
        Err(ApiError::new(
            400,
            "validation-failed",
            message,
            json!({"records": records}),
        ))
    }

    fn flush_inferred_types(&self) -> Res<()> {
        for attr in &self.catalog.attrs {
            if attr.pk != 0 && attr.inferred != attr.inferred_loaded {
                self.db()?
                    .prepare_cached(
                        "UPDATE attrs SET inferred_types = ?3 WHERE app_pk = ?1 AND attr_pk = ?2",
                    )
                    .and_then(|mut statement| {
                        statement.execute(params![
                            self.app.app_pk,
                            attr.pk,
                            values::inferred_bits_to_json(attr.inferred)
                        ])
                    })
                    .map_err(sql_error)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// `(action, etype, eid, obj)` of a step with an entity.
fn step_parts(step: &Value) -> Option<(&str, &str, &Value, Option<&Value>)> {
    let items = step.as_array()?;
    Some((
        items.first()?.as_str()?,
        items.get(1)?.as_str()?,
        items.get(2)?,
        items.get(3),
    ))
}

/// The targets of one link label: an array's elements, an object's entries as lookup pairs,
/// or the single value (the server iterates any collection).
fn link_targets(targets: &Value) -> Vec<Value> {
    match targets {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map.iter().map(|(key, value)| json!([key, value])).collect(),
        other => vec![other.clone()],
    }
}

/// `eid->lookup-pair`: the `[label, value]` of a lookup eid, or `None` for a plain id.
fn lookup_pair(eid: &Value) -> Res<Option<(String, Value)>> {
    match eid {
        Value::String(text) if text.starts_with("lookup__") => parse_encoded_lookup(text).map(Some),
        Value::String(_) => Ok(None),
        Value::Array(items) => {
            let label = match items.first() {
                Some(Value::String(label)) => label.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            Ok(Some((label, items.get(1).cloned().unwrap_or_default())))
        }
        Value::Object(map) if map.len() == 1 => {
            let (label, value) = map.iter().next().expect("one entry");
            Ok(Some((label.clone(), value.clone())))
        }
        Value::Object(_) => Err(ApiError::validation(
            "lookup",
            eid.clone(),
            vec![
                json!({"message": "lookup must be an object with a single unique attr and value."}),
            ],
        )),
        _ => Ok(None),
    }
}

/// `lookup__<label>__<json>`, split as Java's `String.split("__")` splits (trailing empty
/// parts dropped), the JSON part rejoined with `__`.
fn parse_encoded_lookup(text: &str) -> Res<(String, Value)> {
    let mut parts: Vec<&str> = text.split("__").collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    let label = parts.get(1).copied().unwrap_or_default().to_string();
    let json_text = parts
        .get(2..)
        .map(|rest| rest.join("__"))
        .unwrap_or_default();
    let trimmed = json_text.trim();
    if trimmed.is_empty() {
        return Ok((label, Value::Null));
    }
    // Like the server's parser, read the first JSON value and ignore what follows.
    let mut stream = serde_json::Deserializer::from_str(trimmed).into_iter::<Value>();
    match stream.next() {
        Some(Ok(value)) => Ok((label, value)),
        _ => Err(ApiError::validation(
            "lookup",
            json!(text),
            vec![json!({
                "message": "lookup value is invalid",
                "hint": {"attribute": label, "value": json_text},
            })],
        )),
    }
}

/// The link label of a `<link>.id` lookup.
fn ref_lookup_link_name(pair: &(String, Value)) -> Res<String> {
    let mut parts: Vec<&str> = pair.0.split('.').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.len() != 2 || parts[1] != "id" {
        return Err(ApiError::validation(
            "lookup",
            json!([pair.0, pair.1]),
            vec![json!({"message": format!("{} is not a valid lookup attribute.", pair.0)})],
        ));
    }
    Ok(parts[0].to_string())
}

/// A UUID in the form [`as_uuid`] gives (lowercase).
fn is_canonical_uuid(text: &str) -> bool {
    values::is_uuid_text(text) && !text.bytes().any(|byte| byte.is_ascii_uppercase())
}

fn eid_as_value(e: &Eid) -> Val<'static> {
    match e {
        Eid::Id(id) => Val::Json(Cow::Owned(Value::String(id.to_string()))),
        Eid::Lookup(attr, value) => Val::Lookup(*attr, value.clone()),
    }
}

/// Only reachable with `throw-on-missing-attrs?` bypassed; kept as the server's SQL raise.
fn missing_attr_error(etype: &str, label: &str) -> ApiError {
    sql_raise(&format!(
        "We could not find an attribute with id = '{etype}.{label}'"
    ))
}

fn sql_raise(message: &str) -> ApiError {
    ApiError::new(
        400,
        "sql-raise",
        format!("Raised Exception: {message}"),
        json!({"table": null, "condition": "raise-exception", "constraint": null}),
    )
}

fn null_byte_error() -> ApiError {
    ApiError::new(
        400,
        "validation-failed",
        "A value in the transaction contains null bytes, which cannot be stored.",
        json!({"table": null, "condition": "untranslatable-character", "constraint": null}),
    )
}

/// The `ref_id` a link value is stored under: the target id, lowercased like stored ids.
fn ref_key(value: &Value) -> String {
    match value {
        Value::String(id) => id.to_ascii_lowercase(),
        other => storage_text(other),
    }
}

/// A `triples` check-constraint violation as `translate-and-throw-psql-exception!` reports it.
fn check_violation(
    attr: &Attr,
    entity: &str,
    value: &Value,
    message: &str,
    too_large: bool,
) -> ApiError {
    let (shown, _) = values::error_detail_value(value);
    let mut hint = json!({
        "namespace": attr.etype,
        "attribute": attr.label,
        "value": shown,
        "checked-data-type": attr.checked,
        "attr-id": attr.id,
        "entity-id": entity,
    });
    if too_large {
        hint["value-too-large?"] = json!(true);
    }
    ApiError::new(400, "validation-failed", message, hint)
}

/// Kinds in the order each first appears (`tx-steps-order`).
fn kinds_in_order(ops: &[Op]) -> Vec<usize> {
    let mut order = Vec::new();
    for op in ops {
        let kind = op.kind();
        if !order.contains(&kind) {
            order.push(kind);
        }
    }
    order
}

fn group_by_kind<'s>(ops: Vec<Op<'s>>, order: &[usize]) -> Vec<(usize, Vec<Op<'s>>)> {
    // One kind (a bulk write): the ops are the group as they are.
    if let [kind] = order {
        if ops.iter().all(|op| op.kind() == *kind) {
            return vec![(*kind, ops)];
        }
    }
    let mut groups: Vec<(usize, Vec<Op<'s>>)> =
        order.iter().map(|kind| (*kind, Vec::new())).collect();
    for op in ops {
        let kind = op.kind();
        match groups.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, group)) => group.push(op),
            None => groups.push((kind, vec![op])),
        }
    }
    groups
}

/// A user `add-attr` step's attribute, checked as the server's `::attr-model/attr` spec
/// checks it (`Validation failed for tx-steps`).
fn parse_user_attr(attr: &Value, index: usize) -> Res<ServerAttr> {
    let fail = |expected: Value, at: Vec<Value>| {
        let mut path = vec![json!(index), json!(1)];
        path.extend(at);
        ApiError::validation(
            "tx-steps",
            json!(["add-attr", attr]),
            vec![json!({"expected": expected, "in": path})],
        )
    };
    let map = attr
        .as_object()
        .ok_or_else(|| fail(json!("map?"), Vec::new()))?;
    let value_type = match map.get("value-type").and_then(Value::as_str) {
        Some("blob") => AttrKind::Blob,
        Some("ref") => AttrKind::Ref,
        Some(_) => return Err(fail(json!(["ref", "blob"]), vec![json!("value-type")])),
        None => {
            return Err(fail(
                json!(["fn", ["%"], ["contains?", "%", "value-type"]]),
                Vec::new(),
            ))
        }
    };
    let mut required_keys = vec!["id", "forward-identity", "cardinality", "unique?", "index?"];
    if value_type == AttrKind::Ref {
        required_keys.push("reverse-identity");
    }
    for key in required_keys {
        if !map.contains_key(key) {
            return Err(fail(
                json!(["fn", ["%"], ["contains?", "%", key]]),
                Vec::new(),
            ));
        }
    }
    let id = map
        .get("id")
        .and_then(Value::as_str)
        .and_then(as_uuid)
        .ok_or_else(|| fail(json!("uuid?"), vec![json!("id")]))?;
    let identity = |key: &str| -> Res<Option<Identity>> {
        let Some(value) = map.get(key) else {
            return Ok(None);
        };
        let parts = value.as_array().filter(|parts| parts.len() == 3);
        let Some(parts) = parts else {
            return Err(fail(json!(["cat", ":id", "uuid?"]), vec![json!(key)]));
        };
        let ident_id = parts[0]
            .as_str()
            .and_then(as_uuid)
            .ok_or_else(|| fail(json!("uuid?"), vec![json!(key), json!(0)]))?;
        let mut names = Vec::new();
        for (position, part) in parts.iter().enumerate().skip(1) {
            match part.as_str() {
                Some(name) if !name.trim().is_empty() => names.push(name.to_string()),
                _ => {
                    return Err(fail(
                        json!("instant.util.spec/non-blank-string"),
                        vec![json!(key), json!(position)],
                    ))
                }
            }
        }
        Ok(Some(Identity::new(
            Some(ident_id),
            names[0].clone(),
            names[1].clone(),
        )))
    };
    let forward_identity =
        identity("forward-identity")?.unwrap_or_else(|| Identity::new(None, "", ""));
    let reverse_identity = identity("reverse-identity")?;
    let cardinality = match map.get("cardinality").and_then(Value::as_str) {
        Some("one") => Cardinality::One,
        Some("many") => Cardinality::Many,
        _ => return Err(fail(json!(["one", "many"]), vec![json!("cardinality")])),
    };
    let flag = |key: &str, needed: bool| -> Res<bool> {
        match map.get(key) {
            Some(Value::Bool(flag)) => Ok(*flag),
            None if !needed => Ok(false),
            _ => Err(fail(json!("boolean?"), vec![json!(key)])),
        }
    };
    let checked_data_type = match map.get("checked-data-type") {
        None | Some(Value::Null) => None,
        Some(Value::String(name))
            if ["string", "number", "boolean", "date"].contains(&name.as_str()) =>
        {
            Some(name.clone())
        }
        Some(_) => {
            return Err(fail(
                json!(["number", "string", "boolean", "date"]),
                vec![json!("checked-data-type")],
            ))
        }
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
    Ok(ServerAttr {
        id: Some(id),
        value_type,
        cardinality,
        forward_identity,
        reverse_identity,
        unique: flag("unique?", true)?,
        index: flag("index?", true)?,
        required: flag("required?", false)?,
        checked_data_type,
        on_delete: text("on-delete"),
        on_delete_reverse: text("on-delete-reverse"),
        catalog: Some("user".into()),
        extra: Map::new(),
    })
}
