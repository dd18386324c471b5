//! Computing plans: the server's plan (`plan!` / `schemas->ops` / `plan-errors`) and the
//! client-computed overwrite flow.

use std::collections::{HashMap, HashSet};

use indexmap::{IndexMap, IndexSet};
use serde_json::{json, Map, Value};

use super::errors::{PlanError, PlanErrorKind, PlanErrors};
use super::steps::{AttrPayload, DeleteAttr, JobPayload, PlanStep};
use super::system::{is_hidden_system_blob, is_reserved_ident_name, is_system_link};
use super::{new_attr_id, new_ident_id, object, Plan, PlanOptions};
use crate::model::{Attr, Cardinality, Link, Schema};
use crate::server::{AttrKind, Identity, ServerAttr, ServerSchema};

type IdentName = (String, String);

fn ident_name(identity: &Identity) -> IdentName {
    (identity.etype.clone(), identity.label.clone())
}

/// The desired schema as the server sees it before diffing (`remove-system-namespaces` then
/// `defs->schema`): system catalog attributes and exact system links dropped, attributes the
/// server hides on `$` namespaces dropped, namespaces left without attributes dropped (so a
/// namespace with links only gets no `id` attribute, as on the server), and every blob marked
/// with its catalog.
pub fn desired_server_schema(desired: &Schema) -> ServerSchema {
    let mut filtered = desired.clone();
    for (etype, entity) in filtered.entities.iter_mut() {
        entity.attrs.retain(|label, _| {
            !is_reserved_ident_name(etype, label) && !is_hidden_system_blob(etype, label)
        });
    }
    filtered.links.retain(|_, link| !is_system_link(link));
    let mut server = filtered.to_server();
    server.blobs.retain(|_, attrs| !attrs.is_empty());
    for (etype, attrs) in server.blobs.iter_mut() {
        let catalog = if etype.starts_with('$') {
            "system"
        } else {
            "user"
        };
        for attr in attrs.values_mut() {
            attr.catalog = Some(catalog.to_string());
        }
    }
    server
}

/// Plans pushing `desired` onto an app whose schema is `current`, as the server's plan endpoint
/// does: `id` attributes for new namespaces first, then data attributes, then links; additions
/// and updates only (an attribute missing from `desired` is left alone). Refuses with the
/// server's errors when a new attribute collides with an existing one or a cascade is invalid.
///
/// `current` is the pulled schema (`{refs, blobs}`); its attributes are also what collisions
/// are checked against, so a hidden system attribute the pull does not show cannot collide here.
pub fn plan(
    current: &ServerSchema,
    desired: &Schema,
    options: PlanOptions,
) -> Result<Plan, PlanErrors> {
    plan_with_server_schema(current, desired_server_schema(desired), options)
}

/// [`plan`] from a desired schema already in server form (no system filtering is applied).
pub fn plan_with_server_schema(
    current: &ServerSchema,
    new_schema: ServerSchema,
    options: PlanOptions,
) -> Result<Plan, PlanErrors> {
    let steps = schema_ops(current, &new_schema, options);
    let errors = plan_errors(current, &steps);
    if !errors.is_empty() {
        return Err(PlanErrors { errors });
    }
    Ok(Plan {
        steps,
        new_schema,
        current_schema: current.clone(),
    })
}

fn identity_json(id: &str, etype: &str, label: &str) -> Value {
    json!([id, etype, label])
}

fn job(attr: &ServerAttr) -> JobPayload {
    JobPayload::new(
        attr.id.clone().unwrap_or_default(),
        attr.forward_identity.clone(),
    )
}

fn opt_str(value: &Option<String>) -> Value {
    value.as_deref().map_or(Value::Null, Value::from)
}

/// The server's `schemas->ops`. Payload keys are exactly the server's; their order follows the
/// server source (for the ten-key ref payloads the server's own order is hash order, which no
/// client relies on). Steps follow the desired schema's order, where the server follows map
/// iteration order.
fn schema_ops(current: &ServerSchema, new: &ServerSchema, options: PlanOptions) -> Vec<PlanStep> {
    let background = options.supports_background_updates;
    let mut steps = Vec::new();

    // New namespaces get their `id` attribute first.
    for etype in new.blobs.keys() {
        if !current.blobs.contains_key(etype) {
            steps.push(PlanStep::AddAttr(AttrPayload::new(object([
                ("value-type", "blob".into()),
                ("cardinality", "one".into()),
                ("id", new_attr_id(etype, "id").into()),
                (
                    "forward-identity",
                    identity_json(&new_ident_id(etype, "id"), etype, "id"),
                ),
                ("unique?", true.into()),
                ("index?", false.into()),
            ]))));
        }
    }

    for (etype, attrs) in &new.blobs {
        for (label, wanted) in attrs {
            if label == "id" {
                continue;
            }
            let Some(existing) = current.blobs.get(etype).and_then(|attrs| attrs.get(label)) else {
                // New attribute: flags set directly, whatever the background flag.
                let mut fields = object([
                    ("value-type", "blob".into()),
                    ("cardinality", "one".into()),
                    ("id", new_attr_id(etype, label).into()),
                    (
                        "forward-identity",
                        identity_json(&new_ident_id(etype, label), etype, label),
                    ),
                    ("unique?", wanted.unique.into()),
                    ("index?", wanted.index.into()),
                    ("required?", wanted.required.into()),
                ]);
                if let (true, Some(data_type)) = (options.check_types, &wanted.checked_data_type) {
                    fields.insert("checked-data-type".into(), data_type.clone().into());
                }
                steps.push(PlanStep::AddAttr(AttrPayload::new(fields)));
                continue;
            };
            let changed_type =
                options.check_types && wanted.checked_data_type != existing.checked_data_type;
            let changed_unique = wanted.unique != existing.unique;
            let changed_index = wanted.index != existing.index;
            let changed_required = wanted.required != existing.required;
            if (changed_unique || changed_index || changed_required) && !background {
                steps.push(PlanStep::UpdateAttr(AttrPayload::new(object([
                    ("value-type", "blob".into()),
                    ("cardinality", "one".into()),
                    ("id", opt_str(&existing.id)),
                    ("forward-identity", json!(existing.forward_identity)),
                    ("unique?", wanted.unique.into()),
                    ("index?", wanted.index.into()),
                    ("required?", wanted.required.into()),
                ]))));
            }
            if changed_index && background {
                let make = if wanted.index {
                    PlanStep::Index
                } else {
                    PlanStep::RemoveIndex
                };
                steps.push(make(job(existing)));
            }
            if changed_unique && background {
                let make = if wanted.unique {
                    PlanStep::Unique
                } else {
                    PlanStep::RemoveUnique
                };
                steps.push(make(job(existing)));
            }
            if changed_required && background {
                let make = if wanted.required {
                    PlanStep::Required
                } else {
                    PlanStep::RemoveRequired
                };
                steps.push(make(job(existing)));
            }
            if changed_type && !existing.is_system() {
                match &wanted.checked_data_type {
                    Some(data_type) => steps.push(PlanStep::CheckDataType(JobPayload {
                        checked_data_type: Some(data_type.clone()),
                        ..job(existing)
                    })),
                    None => steps.push(PlanStep::RemoveDataType(job(existing))),
                }
            }
        }
    }

    // Links are matched by their four names, not by the printed key of `refs`.
    let existing_refs: HashMap<(IdentName, IdentName), &ServerAttr> = current
        .refs
        .values()
        .filter_map(|attr| {
            let reverse = attr.reverse_identity.as_ref()?;
            Some((
                (ident_name(&attr.forward_identity), ident_name(reverse)),
                attr,
            ))
        })
        .collect();
    for wanted in new.refs.values() {
        let forward = &wanted.forward_identity;
        let Some(reverse) = &wanted.reverse_identity else {
            continue;
        };
        let Some(existing) = existing_refs.get(&(ident_name(forward), ident_name(reverse))) else {
            steps.push(PlanStep::AddAttr(AttrPayload::new(object([
                ("value-type", "ref".into()),
                ("id", new_attr_id(&forward.etype, &forward.label).into()),
                (
                    "forward-identity",
                    identity_json(
                        &new_ident_id(&forward.etype, &forward.label),
                        &forward.etype,
                        &forward.label,
                    ),
                ),
                (
                    "reverse-identity",
                    identity_json(
                        &new_ident_id(&reverse.etype, &reverse.label),
                        &reverse.etype,
                        &reverse.label,
                    ),
                ),
                ("cardinality", wanted.cardinality.as_str().into()),
                ("unique?", wanted.unique.into()),
                ("index?", wanted.index.into()),
                ("required?", wanted.required.into()),
                ("on-delete", opt_str(&wanted.on_delete)),
                ("on-delete-reverse", opt_str(&wanted.on_delete_reverse)),
            ]))));
            continue;
        };
        let changed_required = wanted.required != existing.required;
        let changed_updatable = wanted.cardinality != existing.cardinality
            || wanted.unique != existing.unique
            || wanted.on_delete != existing.on_delete
            || wanted.on_delete_reverse != existing.on_delete_reverse;
        if !changed_required && !changed_updatable {
            continue;
        }
        if changed_required && background {
            let make = if wanted.required {
                PlanStep::Required
            } else {
                PlanStep::RemoveRequired
            };
            steps.push(make(job(existing)));
        }
        if changed_updatable || !background {
            steps.push(PlanStep::UpdateAttr(AttrPayload::new(object([
                ("value-type", "ref".into()),
                ("id", opt_str(&existing.id)),
                ("forward-identity", json!(existing.forward_identity)),
                ("reverse-identity", json!(existing.reverse_identity)),
                ("cardinality", wanted.cardinality.as_str().into()),
                ("unique?", wanted.unique.into()),
                ("index?", wanted.index.into()),
                ("required?", wanted.required.into()),
                ("on-delete", opt_str(&wanted.on_delete)),
                ("on-delete-reverse", opt_str(&wanted.on_delete_reverse)),
            ]))));
        }
    }
    steps
}

/// The server's `plan-errors`: for every `add-attr`, a backwards link, then a taken forward
/// name, then a taken reverse name, then a forward name taken by a data attribute (first match
/// wins); then for every `add-attr`/`update-attr` of a link, a cascade on a `many` end.
pub fn plan_errors(current: &ServerSchema, steps: &[PlanStep]) -> Vec<PlanError> {
    let mut links_by_forward: HashMap<IdentName, Option<IdentName>> = HashMap::new();
    let mut links_by_reverse: HashMap<IdentName, IdentName> = HashMap::new();
    let mut blob_names: HashSet<IdentName> = HashSet::new();
    for attr in current.attrs() {
        let forward = ident_name(&attr.forward_identity);
        if attr.is_ref() {
            let reverse = attr.reverse_identity.as_ref().map(ident_name);
            if let Some(reverse) = &reverse {
                links_by_reverse.insert(reverse.clone(), forward.clone());
            }
            links_by_forward.insert(forward, reverse);
        } else {
            blob_names.insert(forward);
        }
    }
    let taken_by_link = |name: &IdentName| {
        links_by_forward.contains_key(name) || links_by_reverse.contains_key(name)
    };

    let mut errors = Vec::new();
    for step in steps {
        let PlanStep::AddAttr(attr) = step else {
            continue;
        };
        let Some(forward) = attr.forward_identity().as_ref().map(ident_name) else {
            continue;
        };
        let reverse = attr.reverse_identity().as_ref().map(ident_name);
        let existing_forward_of_reverse = links_by_reverse.get(&forward);
        let found = if (reverse.is_some() || existing_forward_of_reverse.is_some())
            && reverse.as_ref() == existing_forward_of_reverse
        {
            Some((PlanErrorKind::Backwards, forward))
        } else if taken_by_link(&forward) {
            Some((PlanErrorKind::Duplicate, forward))
        } else if let Some(reverse) = reverse.filter(|reverse| taken_by_link(reverse)) {
            Some((PlanErrorKind::Duplicate, reverse))
        } else if blob_names.contains(&forward) {
            Some((PlanErrorKind::Duplicate, forward))
        } else {
            None
        };
        if let Some((kind, (etype, label))) = found {
            errors.push(PlanError::new(kind, &etype, &label));
        }
    }
    for step in steps {
        let (PlanStep::AddAttr(attr) | PlanStep::UpdateAttr(attr)) = step else {
            continue;
        };
        if attr.kind() != Some(AttrKind::Ref) {
            continue;
        }
        let name_of = |identity: Option<Identity>| {
            identity
                .map(|identity| (identity.etype, identity.label))
                .unwrap_or_default()
        };
        let target = if attr.cardinality() == Some(Cardinality::Many)
            && attr.on_delete() == Some("cascade")
        {
            Some(name_of(attr.forward_identity()))
        } else if attr.flag("unique?") != Some(true) && attr.on_delete_reverse() == Some("cascade")
        {
            Some(name_of(attr.reverse_identity()))
        } else {
            None
        };
        if let Some((etype, label)) = target {
            errors.push(PlanError::new(PlanErrorKind::CascadeOnMany, &etype, &label));
        }
    }
    errors
}

// ---------------------------------------------------------------------------------------------
// Client-computed overwrite flow

/// The steps of a push with `overwrite: true` (platform SDK) or `instant-cli push`: the client
/// diffs the pulled schema against `desired` itself and sends the steps to `steps/apply`. This
/// is the only flow that produces `delete-attr`: for every attribute and link of `current`
/// that `desired` no longer has (a removed namespace loses its `id` too). System catalog
/// attributes and links (by the current schema's `catalog: "system"` and the known catalog)
/// are never touched.
///
/// Step shapes follow the client: a new attribute is an `add-attr` with all flags false
/// (`catalog: "user"`, `inferred-types: null`) followed by separate `unique`, `required` and
/// `index` steps; a link change is an `update-attr` carrying only `id`, `cardinality` and the
/// `on-delete` values that are set (an absent one clears it on the server).
///
/// Renames are out of scope: a renamed attribute shows up as a `delete-attr` of the old name and
/// an `add-attr` of the new one, which loses the data. Review deletes before applying them.
pub fn plan_overwrite(current: &ServerSchema, desired: &Schema) -> Vec<PlanStep> {
    let mut system: HashSet<IdentName> = HashSet::new();
    for attr in current.attrs().filter(|attr| attr.is_system()) {
        system.insert(ident_name(&attr.forward_identity));
        if let Some(reverse) = &attr.reverse_identity {
            system.insert(ident_name(reverse));
        }
    }
    let is_system = |etype: &str, label: &str| {
        is_reserved_ident_name(etype, label) || system.contains(&(etype.into(), label.into()))
    };
    let mut steps = Vec::new();

    // Namespaces gone from the schema.
    for (etype, attrs) in &current.blobs {
        if desired.entities.contains_key(etype) {
            continue;
        }
        for (label, attr) in attrs {
            if label != "id" && !is_system(etype, label) {
                steps.extend(delete(attr));
            }
        }
        if !is_system(etype, "id") {
            if let Some(id_attr) = attrs.get("id") {
                steps.extend(delete(id_attr));
            }
        }
    }

    // New namespaces.
    for (etype, entity) in &desired.entities {
        if current.blobs.contains_key(etype) {
            continue;
        }
        if !is_system(etype, "id") {
            steps.extend(client_add_attr(NewAttr {
                etype,
                label: "id",
                kind: AttrKind::Blob,
                cardinality: Cardinality::One,
                reverse: None,
                unique: true,
                required: true,
                index: false,
                on_delete: None,
                on_delete_reverse: None,
                checked_data_type: DataType::Omitted,
            }));
        }
        for (label, attr) in &entity.attrs {
            if label != "id" && !is_system(etype, label) {
                steps.extend(client_add_blob(etype, label, attr));
            }
        }
    }

    // Namespaces on both sides.
    for (etype, old_attrs) in &current.blobs {
        let Some(entity) = desired.entities.get(etype) else {
            continue;
        };
        let old_labels: Vec<&String> = old_attrs
            .keys()
            .filter(|label| *label != "id" && !is_system(etype, label))
            .collect();
        for label in &old_labels {
            if let Some(new_attr) = entity.attrs.get(*label) {
                steps.extend(compare_blobs(&old_attrs[*label], new_attr));
            }
        }
        for label in &old_labels {
            if !entity.attrs.contains_key(*label) {
                steps.extend(delete(&old_attrs[*label]));
            }
        }
        for (label, attr) in &entity.attrs {
            if label != "id" && !is_system(etype, label) && !old_attrs.contains_key(label) {
                steps.extend(client_add_blob(etype, label, attr));
            }
        }
    }

    // Links, grouped by `forwardEtype<->reverseEtype` as the client groups them.
    let old_links: Vec<(&ServerAttr, &Identity)> = current
        .refs
        .values()
        .filter_map(|attr| Some((attr, attr.reverse_identity.as_ref()?)))
        .filter(|(attr, _)| !is_system(&attr.forward_identity.etype, &attr.forward_identity.label))
        .collect();
    let new_links: Vec<&Link> = desired
        .links
        .values()
        .filter(|link| !is_system(&link.forward.on, &link.forward.label))
        .collect();
    type Group<'a> = (
        Vec<(&'a ServerAttr, &'a Identity)>,
        IndexMap<String, &'a Link>,
    );
    let mut groups: IndexMap<(String, String), Group<'_>> = IndexMap::new();
    for (attr, reverse) in old_links {
        let key = (attr.forward_identity.etype.clone(), reverse.etype.clone());
        groups.entry(key).or_default().0.push((attr, reverse));
    }
    for link in new_links {
        let key = (link.forward.on.clone(), link.reverse.on.clone());
        let identity = link_identity(
            &link.forward.on,
            &link.forward.label,
            &link.reverse.on,
            &link.reverse.label,
        );
        groups
            .entry(key)
            .or_default()
            .1
            .entry(identity)
            .or_insert(link);
    }
    for (old_group, new_group) in groups.values() {
        let old_identity = |(attr, reverse): &(&ServerAttr, &Identity)| {
            let forward = &attr.forward_identity;
            link_identity(
                &forward.etype,
                &forward.label,
                &reverse.etype,
                &reverse.label,
            )
        };
        let old_identities: IndexSet<String> = old_group.iter().map(old_identity).collect();
        for old in old_group {
            if let Some(new_link) = new_group.get(&old_identity(old)) {
                steps.extend(compare_links(old.0, new_link));
            }
        }
        for old in old_group {
            if !new_group.contains_key(&old_identity(old)) {
                steps.extend(delete(old.0));
            }
        }
        for (identity, link) in new_group {
            if !old_identities.contains(identity) {
                steps.extend(client_add_link(link));
            }
        }
    }
    steps
}

fn link_identity(
    forward_etype: &str,
    forward_label: &str,
    reverse_etype: &str,
    reverse_label: &str,
) -> String {
    format!("{forward_etype}.{forward_label}<->{reverse_etype}.{reverse_label}")
}

fn delete(attr: &ServerAttr) -> Option<PlanStep> {
    Some(PlanStep::DeleteAttr(DeleteAttr {
        attr_id: attr.id.clone()?,
        target: Some(attr.forward_identity.clone()),
    }))
}

/// How the client writes `checked-data-type` on a new attribute.
enum DataType {
    /// Not written (the new namespace's `id`).
    Omitted,
    /// Written, `null` when untyped.
    Value(Option<String>),
}

struct NewAttr<'a> {
    etype: &'a str,
    label: &'a str,
    kind: AttrKind,
    cardinality: Cardinality,
    reverse: Option<(&'a str, &'a str)>,
    unique: bool,
    required: bool,
    index: bool,
    on_delete: Option<&'a str>,
    on_delete_reverse: Option<&'a str>,
    checked_data_type: DataType,
}

fn client_add_attr(new: NewAttr<'_>) -> Vec<PlanStep> {
    let attr_id = new_attr_id(new.etype, new.label);
    // The client reuses the attribute id as the forward identity's id.
    let forward = Identity::new(Some(attr_id.clone()), new.etype, new.label);
    let mut fields: Map<String, Value> = object([
        ("forward-identity", json!(forward)),
        (
            "reverse-identity",
            match new.reverse {
                Some((etype, label)) => identity_json(&new_ident_id(etype, label), etype, label),
                None => Value::Null,
            },
        ),
        ("inferred-types", Value::Null),
        ("value-type", json!(new.kind)),
        ("id", attr_id.clone().into()),
        ("cardinality", new.cardinality.as_str().into()),
        ("index?", false.into()),
        ("required?", false.into()),
        ("unique?", false.into()),
        ("catalog", "user".into()),
    ]);
    if let Some(on_delete) = new.on_delete {
        fields.insert("on-delete".into(), on_delete.into());
    }
    if let Some(on_delete) = new.on_delete_reverse {
        fields.insert("on-delete-reverse".into(), on_delete.into());
    }
    if let DataType::Value(data_type) = new.checked_data_type {
        fields.insert(
            "checked-data-type".into(),
            data_type.map_or(Value::Null, Value::from),
        );
    }
    let mut steps = vec![PlanStep::AddAttr(AttrPayload::new(fields))];
    let job = || JobPayload::new(attr_id.clone(), forward.clone());
    if new.unique {
        steps.push(PlanStep::Unique(job()));
    }
    if new.required {
        steps.push(PlanStep::Required(job()));
    }
    if new.index {
        steps.push(PlanStep::Index(job()));
    }
    steps
}

fn client_add_blob(etype: &str, label: &str, attr: &Attr) -> Vec<PlanStep> {
    client_add_attr(NewAttr {
        etype,
        label,
        kind: AttrKind::Blob,
        cardinality: Cardinality::One,
        reverse: None,
        unique: attr.unique,
        required: attr.required,
        index: attr.indexed,
        on_delete: None,
        on_delete_reverse: None,
        checked_data_type: DataType::Value(attr.value_type.checked_data_type().map(str::to_string)),
    })
}

fn client_add_link(link: &Link) -> Vec<PlanStep> {
    client_add_attr(NewAttr {
        etype: &link.forward.on,
        label: &link.forward.label,
        kind: AttrKind::Ref,
        cardinality: link.forward.has,
        reverse: Some((&link.reverse.on, &link.reverse.label)),
        unique: link.reverse.has == Cardinality::One,
        required: link.forward.required == Some(true),
        index: false,
        on_delete: link.forward.on_delete.as_deref(),
        on_delete_reverse: link.reverse.on_delete.as_deref(),
        checked_data_type: DataType::Value(None),
    })
}

fn compare_blobs(old: &ServerAttr, new: &Attr) -> Vec<PlanStep> {
    let mut steps = Vec::new();
    let old_job = || job(old);
    if old.index != new.indexed {
        steps.push(if new.indexed {
            PlanStep::Index(old_job())
        } else {
            PlanStep::RemoveIndex(old_job())
        });
    }
    if old.unique != new.unique {
        steps.push(if new.unique {
            PlanStep::Unique(old_job())
        } else {
            PlanStep::RemoveUnique(old_job())
        });
    }
    if old.required != new.required {
        steps.push(if new.required {
            PlanStep::Required(old_job())
        } else {
            PlanStep::RemoveRequired(old_job())
        });
    }
    // An untyped attribute reads back as `json`.
    let old_type = old.checked_data_type.as_deref().unwrap_or("json");
    let new_type = new.value_type.as_str();
    if old_type != "json" && new_type == "json" {
        steps.push(PlanStep::RemoveDataType(old_job()));
    } else if old_type != new_type && new_type != "json" {
        steps.push(PlanStep::CheckDataType(JobPayload {
            checked_data_type: Some(new_type.to_string()),
            ..old_job()
        }));
    }
    steps
}

fn compare_links(old: &ServerAttr, new: &Link) -> Vec<PlanStep> {
    let mut steps = Vec::new();
    let old_job = || job(old);
    let new_unique = new.reverse.has == Cardinality::One;
    if !old.unique && new_unique {
        steps.push(PlanStep::Unique(old_job()));
    }
    if old.unique && !new_unique {
        steps.push(PlanStep::RemoveUnique(old_job()));
    }
    let new_required = new.forward.required == Some(true);
    if old.required != new_required {
        steps.push(if new_required {
            PlanStep::Required(old_job())
        } else {
            PlanStep::RemoveRequired(old_job())
        });
    }
    // Only `cascade` exists; anything else reads back as unset.
    let cascade = |value: &Option<String>| value.as_deref() == Some("cascade");
    if cascade(&old.on_delete) != cascade(&new.forward.on_delete)
        || cascade(&old.on_delete_reverse) != cascade(&new.reverse.on_delete)
        || old.cardinality != new.forward.has
    {
        let mut fields = object([
            ("id", opt_str(&old.id)),
            ("cardinality", new.forward.has.as_str().into()),
        ]);
        if let Some(on_delete) = &new.forward.on_delete {
            fields.insert("on-delete".into(), on_delete.clone().into());
        }
        if let Some(on_delete) = &new.reverse.on_delete {
            fields.insert("on-delete-reverse".into(), on_delete.clone().into());
        }
        steps.push(PlanStep::UpdateAttr(AttrPayload::new(fields)));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{new_attr_id, new_ident_id, parse_plan_response};
    use crate::severity::Gate;
    use expect_test::{expect, Expect};

    /// The app as pulled: `posts` (title, body, slug, legacy), `profiles`, the link
    /// `posts.author <-> profiles.posts`, and the system `$users` attributes.
    fn current() -> ServerSchema {
        ServerSchema::from_json(&json!({
            "refs": {
                "[\"posts\" \"author\" \"profiles\" \"posts\"]": {
                    "id": "L-author", "value-type": "ref", "cardinality": "one",
                    "forward-identity": ["F-author", "posts", "author"],
                    "reverse-identity": ["R-author", "profiles", "posts"],
                    "unique?": false, "index?": false, "required?": false, "catalog": "user"},
                "[\"$users\" \"linkedPrimaryUser\" \"$users\" \"linkedGuestUsers\"]": {
                    "id": "S-lpu", "value-type": "ref", "cardinality": "one",
                    "forward-identity": ["S-f", "$users", "linkedPrimaryUser"],
                    "reverse-identity": ["S-r", "$users", "linkedGuestUsers"],
                    "unique?": false, "index?": false, "required?": false,
                    "on-delete": "cascade", "catalog": "system"}
            },
            "blobs": {
                "posts": {
                    "id": {"id": "P-id", "value-type": "blob", "cardinality": "one",
                           "forward-identity": ["I-id", "posts", "id"], "unique?": true, "index?": false, "catalog": "user"},
                    "title": {"id": "P-title", "value-type": "blob", "cardinality": "one",
                              "forward-identity": ["I-title", "posts", "title"], "unique?": false, "index?": false,
                              "required?": true, "checked-data-type": "string", "catalog": "user"},
                    "body": {"id": "P-body", "value-type": "blob", "cardinality": "one",
                             "forward-identity": ["I-body", "posts", "body"], "unique?": false, "index?": false,
                             "required?": false, "catalog": "user"},
                    "slug": {"id": "P-slug", "value-type": "blob", "cardinality": "one",
                             "forward-identity": ["I-slug", "posts", "slug"], "unique?": true, "index?": true,
                             "required?": true, "checked-data-type": "string", "catalog": "user"},
                    "legacy": {"id": "P-legacy", "value-type": "blob", "cardinality": "one",
                               "forward-identity": ["I-legacy", "posts", "legacy"], "unique?": false, "index?": false,
                               "required?": false, "catalog": "user"}
                },
                "profiles": {
                    "id": {"id": "Q-id", "value-type": "blob", "cardinality": "one",
                           "forward-identity": ["J-id", "profiles", "id"], "unique?": true, "index?": false, "catalog": "user"},
                    "name": {"id": "Q-name", "value-type": "blob", "cardinality": "one",
                             "forward-identity": ["J-name", "profiles", "name"], "unique?": false, "index?": false,
                             "required?": false, "checked-data-type": "string", "catalog": "user"}
                },
                "$users": {
                    "id": {"id": "S-id", "value-type": "blob", "cardinality": "one",
                           "forward-identity": ["S-i", "$users", "id"], "unique?": true, "index?": true, "catalog": "system"},
                    "email": {"id": "S-email", "value-type": "blob", "cardinality": "one",
                              "forward-identity": ["S-e", "$users", "email"], "unique?": true, "index?": true,
                              "checked-data-type": "string", "catalog": "system"},
                    "nickname": {"id": "U-nick", "value-type": "blob", "cardinality": "one",
                                 "forward-identity": ["U-n", "$users", "nickname"], "unique?": false, "index?": false,
                                 "catalog": "user"}
                }
            }
        }))
        .unwrap()
    }

    fn string(extra: Value) -> Value {
        let mut attr = json!({"valueType": "string", "required": true, "isIndexed": false,
                              "config": {"indexed": false, "unique": false}, "metadata": {}});
        for (k, v) in extra.as_object().unwrap() {
            match k.as_str() {
                "indexed" | "unique" => {
                    attr["config"][k] = v.clone();
                    if k == "indexed" {
                        attr["isIndexed"] = v.clone();
                    }
                }
                _ => attr[k] = v.clone(),
            }
        }
        attr
    }

    /// The current app exactly, in DSL form (so only what a test changes is planned).
    fn unchanged() -> Value {
        json!({
            "entities": {
                "posts": {"attrs": {
                    "title": string(json!({})),
                    "body": string(json!({"valueType": "json", "required": false})),
                    "slug": string(json!({"indexed": true, "unique": true})),
                    "legacy": string(json!({"valueType": "json", "required": false}))}},
                "profiles": {"attrs": {"name": string(json!({"required": false}))}},
                "$users": {"attrs": {
                    "email": string(json!({"indexed": true, "unique": true, "required": false})),
                    "nickname": string(json!({"valueType": "json", "required": false}))}}
            },
            "links": {
                "postsAuthor": {"forward": {"on": "posts", "has": "one", "label": "author"},
                                "reverse": {"on": "profiles", "has": "many", "label": "posts"}},
                "$usersLinkedPrimaryUser": {
                    "forward": {"on": "$users", "has": "one", "label": "linkedPrimaryUser"},
                    "reverse": {"on": "$users", "has": "many", "label": "linkedGuestUsers"}}
            },
            "rooms": {}
        })
    }

    fn desired(edit: impl FnOnce(&mut Value)) -> Schema {
        let mut doc = unchanged();
        edit(&mut doc);
        Schema::from_dsl_json(&doc).unwrap()
    }

    const ON: PlanOptions = PlanOptions {
        check_types: true,
        supports_background_updates: true,
    };
    const OFF: PlanOptions = PlanOptions {
        check_types: false,
        supports_background_updates: false,
    };

    /// One step per line in wire form, generated ids shown as `@attr:e.l` / `@ident:e.l`.
    fn render(steps: &[PlanStep]) -> String {
        let names = [
            ("comments", "id"),
            ("comments", "text"),
            ("comments", "post"),
            ("posts", "comments"),
            ("posts", "summary"),
            ("posts", "author"),
            ("profiles", "posts"),
            ("profiles", "name"),
            ("$users", "bio"),
            ("tags", "id"),
            ("tags", "label"),
        ];
        steps
            .iter()
            .map(|step| {
                let mut line = serde_json::to_string(step).unwrap();
                for (etype, label) in names {
                    line = line.replace(
                        &new_attr_id(etype, label),
                        &format!("@attr:{etype}.{label}"),
                    );
                    line = line.replace(
                        &new_ident_id(etype, label),
                        &format!("@ident:{etype}.{label}"),
                    );
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check(current: &ServerSchema, desired: &Schema, options: PlanOptions, expected: Expect) {
        match plan(current, desired, options) {
            Ok(plan) => expected.assert_eq(&render(&plan.steps)),
            Err(errors) => expected.assert_eq(&errors.to_string()),
        }
    }

    #[test]
    fn unchanged_schema_plans_nothing() {
        check(&current(), &desired(|_| {}), ON, expect![""]);
        check(&current(), &desired(|_| {}), OFF, expect![""]);
    }

    #[test]
    fn new_namespace_attribute_and_link_are_added() {
        let wanted = desired(|doc| {
            doc["entities"]["comments"] =
                json!({"attrs": {"text": string(json!({"indexed": true}))}});
            doc["entities"]["posts"]["attrs"]["summary"] =
                string(json!({"valueType": "json", "required": false}));
            doc["links"]["commentsPost"] = json!({
                "forward": {"on": "comments", "has": "one", "label": "post", "onDelete": "cascade"},
                "reverse": {"on": "posts", "has": "many", "label": "comments"}});
        });
        check(
            &current(),
            &wanted,
            ON,
            expect![[r#"
            ["add-attr",{"value-type":"blob","cardinality":"one","id":"@attr:comments.id","forward-identity":["@ident:comments.id","comments","id"],"unique?":true,"index?":false}]
            ["add-attr",{"value-type":"blob","cardinality":"one","id":"@attr:posts.summary","forward-identity":["@ident:posts.summary","posts","summary"],"unique?":false,"index?":false,"required?":false}]
            ["add-attr",{"value-type":"blob","cardinality":"one","id":"@attr:comments.text","forward-identity":["@ident:comments.text","comments","text"],"unique?":false,"index?":true,"required?":true,"checked-data-type":"string"}]
            ["add-attr",{"value-type":"ref","id":"@attr:comments.post","forward-identity":["@ident:comments.post","comments","post"],"reverse-identity":["@ident:posts.comments","posts","comments"],"cardinality":"one","unique?":false,"index?":false,"required?":false,"on-delete":"cascade","on-delete-reverse":null}]"#]],
        );
        // Without `check_types` the new attribute carries no type.
        let plan = plan(&current(), &wanted, OFF).unwrap();
        assert_eq!(plan.steps[2].to_wire()[1].get("checked-data-type"), None);
        expect![[r#"
            Create new entity comments.id.
            Add attribute posts.summary.
            Add attribute comments.text.
            Link comments.post to posts.comments."#]]
        .assert_eq(
            &plan
                .steps
                .iter()
                .map(PlanStep::friendly_description)
                .collect::<Vec<_>>()
                .join("\n"),
        );
        assert_eq!(plan.gate(), Gate::Safe);
    }

    #[test]
    fn blob_flag_changes_are_jobs_with_background_updates() {
        let wanted = desired(|doc| {
            let attrs = &mut doc["entities"]["posts"]["attrs"];
            attrs["title"] = string(json!({"indexed": true, "unique": true, "required": false}));
            attrs["slug"] = string(json!({"valueType": "number"}));
            attrs["body"] = string(json!({"required": true}));
            doc["entities"]["profiles"]["attrs"]["name"] =
                string(json!({"valueType": "json", "required": false}));
        });
        check(
            &current(),
            &wanted,
            ON,
            expect![[r#"
            ["index",{"attr-id":"P-title","forward-identity":["I-title","posts","title"]}]
            ["unique",{"attr-id":"P-title","forward-identity":["I-title","posts","title"]}]
            ["remove-required",{"attr-id":"P-title","forward-identity":["I-title","posts","title"]}]
            ["required",{"attr-id":"P-body","forward-identity":["I-body","posts","body"]}]
            ["check-data-type",{"attr-id":"P-body","checked-data-type":"string","forward-identity":["I-body","posts","body"]}]
            ["remove-index",{"attr-id":"P-slug","forward-identity":["I-slug","posts","slug"]}]
            ["remove-unique",{"attr-id":"P-slug","forward-identity":["I-slug","posts","slug"]}]
            ["check-data-type",{"attr-id":"P-slug","checked-data-type":"number","forward-identity":["I-slug","posts","slug"]}]
            ["remove-data-type",{"attr-id":"Q-name","forward-identity":["J-name","profiles","name"]}]"#]],
        );
        // Without background updates: one synchronous update-attr per attribute, no type steps.
        check(
            &current(),
            &wanted,
            OFF,
            expect![[r#"
            ["update-attr",{"value-type":"blob","cardinality":"one","id":"P-title","forward-identity":["I-title","posts","title"],"unique?":true,"index?":true,"required?":false}]
            ["update-attr",{"value-type":"blob","cardinality":"one","id":"P-body","forward-identity":["I-body","posts","body"],"unique?":false,"index?":false,"required?":true}]
            ["update-attr",{"value-type":"blob","cardinality":"one","id":"P-slug","forward-identity":["I-slug","posts","slug"],"unique?":false,"index?":false,"required?":true}]"#]],
        );
        // Types checked, background updates off: update-attr plus the type jobs.
        let mixed = PlanOptions {
            check_types: true,
            supports_background_updates: false,
        };
        let plan = plan(&current(), &wanted, mixed).unwrap();
        expect![[r#"{"update-attr": 3, "check-data-type": 2, "remove-data-type": 1}"#]]
            .assert_eq(&format!("{:?}", plan.counts_by_type()));
        assert_eq!(plan.gate(), Gate::Blocked);
    }

    #[test]
    fn link_changes_update_the_ref() {
        // Cardinality (one -> many) plus a cascade on the reverse end, which `has: "many"`:
        // the server refuses the update.
        let wanted = desired(|doc| {
            doc["links"]["postsAuthor"] = json!({
                "forward": {"on": "posts", "has": "many", "label": "author"},
                "reverse": {"on": "profiles", "has": "many", "label": "posts", "onDelete": "cascade"}});
        });
        check(&current(), &wanted, ON, expect!["Validation failed for schema: profiles->posts: Cascade delete is only possible on links with `has: 'one'`. Check your full schema in the dashboard: https://www.instantdb.com/dash?s=main&t=explorer"]);
        // The same change with a valid cascade (reverse `has: "one"`).
        let wanted = desired(|doc| {
            doc["links"]["postsAuthor"] = json!({
                "forward": {"on": "posts", "has": "many", "label": "author"},
                "reverse": {"on": "profiles", "has": "one", "label": "posts", "onDelete": "cascade"}});
        });
        check(
            &current(),
            &wanted,
            OFF,
            expect![[
                r#"["update-attr",{"value-type":"ref","id":"L-author","forward-identity":["F-author","posts","author"],"reverse-identity":["R-author","profiles","posts"],"cardinality":"many","unique?":true,"index?":false,"required?":false,"on-delete":null,"on-delete-reverse":"cascade"}]"#
            ]],
        );
        let wanted = desired(|doc| {
            doc["links"]["postsAuthor"] = json!({
                "forward": {"on": "posts", "has": "one", "label": "author", "onDelete": "cascade", "required": true},
                "reverse": {"on": "profiles", "has": "one", "label": "posts"}});
        });
        check(
            &current(),
            &wanted,
            ON,
            expect![[r#"
            ["required",{"attr-id":"L-author","forward-identity":["F-author","posts","author"]}]
            ["update-attr",{"value-type":"ref","id":"L-author","forward-identity":["F-author","posts","author"],"reverse-identity":["R-author","profiles","posts"],"cardinality":"one","unique?":true,"index?":false,"required?":true,"on-delete":"cascade","on-delete-reverse":null}]"#]],
        );
        // Only `required` changed: a job with background updates, an update-attr without.
        let wanted = desired(|doc| {
            doc["links"]["postsAuthor"]["forward"]["required"] = json!(true);
        });
        check(
            &current(),
            &wanted,
            ON,
            expect![[
                r#"["required",{"attr-id":"L-author","forward-identity":["F-author","posts","author"]}]"#
            ]],
        );
        check(
            &current(),
            &wanted,
            OFF,
            expect![[
                r#"["update-attr",{"value-type":"ref","id":"L-author","forward-identity":["F-author","posts","author"],"reverse-identity":["R-author","profiles","posts"],"cardinality":"one","unique?":false,"index?":false,"required?":true,"on-delete":null,"on-delete-reverse":null}]"#
            ]],
        );
    }

    #[test]
    fn system_attributes_and_links_are_ignored() {
        let mut current = current();
        // An attribute the server reserves by flag shows up with `catalog: "system"`.
        let mut role = ServerAttr::blob("$users", "role");
        role.id = Some("S-role".into());
        role.catalog = Some("system".into());
        current.blobs["$users"].insert("role".into(), role);
        let wanted = desired(|doc| {
            let users = &mut doc["entities"]["$users"]["attrs"];
            users["email"] = string(json!({"valueType": "number"})); // reserved: dropped
            users["role"] = string(json!({"required": false})); // system catalog: no type step
            users["bio"] = string(json!({"required": false})); // a user attribute: added
            doc["entities"]["$magicCodes"] = json!({"attrs": {"extra": string(json!({}))}});
            // hidden
        });
        check(
            &current,
            &wanted,
            ON,
            expect![[
                r#"["add-attr",{"value-type":"blob","cardinality":"one","id":"@attr:$users.bio","forward-identity":["@ident:$users.bio","$users","bio"],"unique?":false,"index?":false,"required?":false,"checked-data-type":"string"}]"#
            ]],
        );
        let new_schema = desired_server_schema(&wanted);
        assert!(!new_schema.blobs.contains_key("$magicCodes"));
        // The exact system link definition is dropped; `postsAuthor` stays.
        assert_eq!(new_schema.refs.len(), 1);
        assert!(!new_schema
            .refs
            .values()
            .any(|r| r.forward_identity.etype == "$users"));
        assert!(!new_schema.blobs["$users"].contains_key("email"));
    }

    #[test]
    fn duplicate_link_is_refused_with_the_server_text() {
        // The live app has another link owning `organization_organizations->externalConnections`.
        let current = ServerSchema::from_json(&json!({
            "refs": {"live": {
                "id": "L1", "value-type": "ref", "cardinality": "many",
                "forward-identity": ["F1", "organization_organizations", "externalConnections"],
                "reverse-identity": ["R1", "integration_connections", "organization"],
                "unique?": true, "index?": false, "required?": false}},
            "blobs": {
                "organization_organizations": {"id": {"id": "O", "value-type": "blob", "cardinality": "one",
                    "forward-identity": ["OI", "organization_organizations", "id"], "unique?": true, "index?": false}},
                "integration_connections": {"id": {"id": "C", "value-type": "blob", "cardinality": "one",
                    "forward-identity": ["CI", "integration_connections", "id"], "unique?": true, "index?": false}}}
        }))
        .unwrap();
        let wanted = Schema::from_dsl_json(&json!({
            "entities": {"organization_organizations": {"attrs": {}}, "external_connections": {"attrs": {}}},
            "links": {"organizationExternalConnections": {
                "forward": {"on": "organization_organizations", "has": "many", "label": "externalConnections"},
                "reverse": {"on": "external_connections", "has": "one", "label": "organization"}}}
        }))
        .unwrap();
        let errors = plan(&current, &wanted, ON).unwrap_err();
        expect![[r#"organization_organizations->externalConnections: Duplicate entry found for attribute. Check your schema file for duplicate link definitions. If it's not in the schema file, it may have been generated by the backend. Check your full schema in the dashboard: https://www.instantdb.com/dash?s=main&t=explorer"#]]
        .assert_eq(&errors.errors[0].message);
        assert_eq!(errors.errors.len(), 1);
        assert_eq!(errors.errors[0].kind, PlanErrorKind::Duplicate);
        assert_eq!(
            errors.errors[0].ident_name(),
            "organization_organizations->externalConnections"
        );
        assert_eq!(errors.gate(), Gate::Blocked);
        expect![[r#"{"type":"validation-failed","message":"Validation failed for schema: organization_organizations->externalConnections: Duplicate entry found for attribute. Check your schema file for duplicate link definitions. If it's not in the schema file, it may have been generated by the backend. Check your full schema in the dashboard: https://www.instantdb.com/dash?s=main&t=explorer","hint":{"data-type":"schema","input":"plan","errors":[{"in":["schema"],"message":"organization_organizations->externalConnections: Duplicate entry found for attribute. Check your schema file for duplicate link definitions. If it's not in the schema file, it may have been generated by the backend. Check your full schema in the dashboard: https://www.instantdb.com/dash?s=main&t=explorer"}]}}"#]]
        .assert_eq(&errors.to_envelope().to_string());
    }

    #[test]
    fn other_collisions_and_cascades() {
        let wanted = desired(|doc| {
            // Existing link swapped: backwards.
            doc["links"]["swapped"] = json!({
                "forward": {"on": "profiles", "has": "many", "label": "posts"},
                "reverse": {"on": "posts", "has": "one", "label": "author"}});
            // Reverse end taken by the existing link.
            doc["links"]["reverseTaken"] = json!({
                "forward": {"on": "tags", "has": "many", "label": "profiles"},
                "reverse": {"on": "profiles", "has": "many", "label": "posts"}});
            // Forward end taken by a data attribute.
            doc["links"]["blobTaken"] = json!({
                "forward": {"on": "posts", "has": "one", "label": "title"},
                "reverse": {"on": "tags", "has": "many", "label": "titled"}});
            // Cascade on a many end, both directions.
            doc["links"]["cascadeMany"] = json!({
                "forward": {"on": "tags", "has": "many", "label": "items", "onDelete": "cascade"},
                "reverse": {"on": "posts", "has": "many", "label": "tags", "onDelete": "cascade"}});
            doc["links"]["cascadeReverse"] = json!({
                "forward": {"on": "tags", "has": "one", "label": "owner"},
                "reverse": {"on": "profiles", "has": "many", "label": "tags", "onDelete": "cascade"}});
            doc["entities"]["tags"] = json!({"attrs": {"label": string(json!({}))}});
        });
        let errors = plan(&current(), &wanted, ON).unwrap_err();
        let lines: Vec<String> = errors
            .errors
            .iter()
            .map(|e| {
                let text = e
                    .message
                    .strip_prefix(&format!("{}: ", e.ident_name()))
                    .unwrap();
                format!(
                    "{:?} {} | {}",
                    e.kind,
                    e.ident_name(),
                    text.split(". ").next().unwrap()
                )
            })
            .collect();
        expect![[r#"
            Backwards profiles->posts | Conflicting link found for attribute
            Duplicate profiles->posts | Duplicate entry found for attribute
            Duplicate posts->title | Duplicate entry found for attribute
            CascadeOnMany tags->items | Cascade delete is only possible on links with `has: 'one'`
            CascadeOnMany profiles->tags | Cascade delete is only possible on links with `has: 'one'`"#]]
        .assert_eq(&lines.join("\n"));
        expect![[r#"profiles->posts: Conflicting link found for attribute. It's possible that you already have a link with the same label names, but in the reverse direction. We cannot automatically swap the direction of the link. To fix this, can: a) swap the `forward` and `reverse` parameters for this link in your schema file, or b) delete the existing link in the dashboard.Check your full schema in the dashboard for a link with the same label names: https://www.instantdb.com/dash?s=main&t=explorer"#]]
        .assert_eq(&errors.errors[0].message);
        assert!(errors
            .to_string()
            .starts_with("Validation failed for schema: profiles->posts: Conflicting"));
        assert!(errors
            .to_string()
            .contains("explorer, profiles->posts: Duplicate"));
    }

    #[test]
    fn plans_are_deterministic() {
        let wanted = desired(|doc| {
            doc["entities"]["tags"] = json!({"attrs": {"label": string(json!({"unique": true}))}});
        });
        let first = plan(&current(), &wanted, ON).unwrap().to_json().to_string();
        let second = plan(&current(), &wanted, ON).unwrap().to_json().to_string();
        assert_eq!(first, second);
        expect!["1de7dd7e-03ba-51c9-ab50-af5f6a2d2011"].assert_eq(&new_attr_id("tags", "label"));
        let plan = plan(&current(), &wanted, ON).unwrap();
        let response = parse_plan_response(&plan.to_steps_json()).unwrap();
        assert_eq!(response.steps, plan.steps);
        expect![[r#"{"id":null,"value-type":"blob","cardinality":"one","forward-identity":[null,"tags","label"],"unique?":true,"index?":false,"required?":true,"checked-data-type":"string","catalog":"user"}"#]]
        .assert_eq(&plan.to_json()["new-schema"]["blobs"]["tags"]["label"].to_string());
    }

    #[test]
    fn overwrite_deletes_what_the_schema_no_longer_has() {
        let wanted = desired(|doc| {
            let entities = doc["entities"].as_object_mut().unwrap();
            entities.remove("profiles");
            entities["posts"]["attrs"]
                .as_object_mut()
                .unwrap()
                .remove("legacy");
            entities["posts"]["attrs"]["title"] =
                string(json!({"indexed": true, "valueType": "number"}));
            entities.remove("$users");
            entities.insert(
                "tags".into(),
                json!({"attrs": {"label": string(json!({"unique": true}))}}),
            );
            let links = doc["links"].as_object_mut().unwrap();
            links.remove("postsAuthor");
            links.remove("$usersLinkedPrimaryUser");
            links.insert(
                "postsAuthor2".into(),
                json!({
                "forward": {"on": "posts", "has": "one", "label": "author", "onDelete": "cascade"},
                "reverse": {"on": "profiles", "has": "one", "label": "posts"}}),
            );
        });
        let steps = plan_overwrite(&current(), &wanted);
        expect![[r#"
            ["delete-attr","Q-name"]
            ["delete-attr","Q-id"]
            ["delete-attr","U-nick"]
            ["add-attr",{"forward-identity":["@attr:tags.id","tags","id"],"reverse-identity":null,"inferred-types":null,"value-type":"blob","id":"@attr:tags.id","cardinality":"one","index?":false,"required?":false,"unique?":false,"catalog":"user"}]
            ["unique",{"attr-id":"@attr:tags.id","forward-identity":["@attr:tags.id","tags","id"]}]
            ["required",{"attr-id":"@attr:tags.id","forward-identity":["@attr:tags.id","tags","id"]}]
            ["add-attr",{"forward-identity":["@attr:tags.label","tags","label"],"reverse-identity":null,"inferred-types":null,"value-type":"blob","id":"@attr:tags.label","cardinality":"one","index?":false,"required?":false,"unique?":false,"catalog":"user","checked-data-type":"string"}]
            ["unique",{"attr-id":"@attr:tags.label","forward-identity":["@attr:tags.label","tags","label"]}]
            ["required",{"attr-id":"@attr:tags.label","forward-identity":["@attr:tags.label","tags","label"]}]
            ["index",{"attr-id":"P-title","forward-identity":["I-title","posts","title"]}]
            ["check-data-type",{"attr-id":"P-title","checked-data-type":"number","forward-identity":["I-title","posts","title"]}]
            ["delete-attr","P-legacy"]
            ["unique",{"attr-id":"L-author","forward-identity":["F-author","posts","author"]}]
            ["update-attr",{"id":"L-author","cardinality":"one","on-delete":"cascade"}]"#]]
        .assert_eq(&render(&steps));
        expect![[r#"
            Delete attribute profiles.name.
            Delete attribute profiles.id.
            Delete attribute $users.nickname.
            Update attribute posts.author."#]]
        .assert_eq(
            &steps
                .iter()
                .filter(|s| matches!(s, PlanStep::DeleteAttr(_) | PlanStep::UpdateAttr(_)))
                .take(3)
                .map(PlanStep::friendly_description)
                .chain(std::iter::once(
                    steps.last().unwrap().friendly_description_in(&current()),
                ))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        // A link that is gone is deleted; system attributes and links never are.
        let gone = desired(|doc| {
            doc["links"].as_object_mut().unwrap().remove("postsAuthor");
        });
        expect![[r#"["delete-attr","L-author"]"#]]
            .assert_eq(&render(&plan_overwrite(&current(), &gone)));
        let severities: SeverityList = plan_overwrite(&current(), &gone)
            .iter()
            .map(PlanStep::severity)
            .collect();
        assert_eq!(severities.0, vec![crate::severity::Severity::Critical]);
    }

    struct SeverityList(Vec<crate::severity::Severity>);
    impl FromIterator<crate::severity::Severity> for SeverityList {
        fn from_iter<I: IntoIterator<Item = crate::severity::Severity>>(iter: I) -> Self {
            SeverityList(iter.into_iter().collect())
        }
    }

    #[test]
    fn plan_response_is_read_with_its_schemas() {
        let response = json!({
            "new-schema": {"refs": {}, "blobs": {"posts": {"title": {"id": null, "value-type": "blob", "cardinality": "one",
                "forward-identity": [null, "posts", "title"], "unique?": false, "index?": true, "required?": true,
                "checked-data-type": "string", "catalog": "user"}}}},
            "current-schema": serde_json::to_value(current()).unwrap(),
            "current-attrs": [{"id": "P-legacy", "value-type": "blob", "cardinality": "one",
                               "forward-identity": ["I-legacy", "posts", "legacy"], "unique?": false, "index?": false,
                               "inferred-types": ["string"], "catalog": "user"}],
            "steps": [["index", {"attr-id": "P-title", "forward-identity": ["I-title", "posts", "title"]}],
                      ["delete-attr", "P-legacy"]],
            "indexing-jobs": null
        });
        let parsed = parse_plan_response(&response).unwrap();
        assert_eq!(parsed.current_attrs.as_ref().unwrap().len(), 1);
        assert!(parsed.indexing_jobs.is_none());
        let lookup = parsed.current_for_lookup();
        expect![[r#"
            index safe posts.title
            delete-attr critical posts.legacy
            gate=blocked counts={"critical":1,"warning":0,"review":0,"safe":1}"#]]
        .assert_eq(&format!(
            "{}\ngate={} counts={}",
            parsed
                .steps
                .iter()
                .map(|s| format!(
                    "{} {} {}",
                    s.step_type(),
                    s.severity().as_str(),
                    s.target_in(&lookup).unwrap()
                ))
                .collect::<Vec<_>>()
                .join("\n"),
            parsed.gate().as_str(),
            serde_json::to_string(&parsed.counts()).unwrap()
        ));
        expect!["(root): missing `steps`"]
            .assert_eq(&parse_plan_response(&json!({})).unwrap_err().to_string());
        expect!["current-schema.blobs.posts.title: missing field `cardinality`"].assert_eq(
            &parse_plan_response(
                &json!({"steps": [], "current-schema": {"blobs": {"posts": {"title": {
                "value-type": "blob", "forward-identity": [null, "posts", "title"]}}}}}),
            )
            .unwrap_err()
            .to_string(),
        );
    }
}
