//! Plan steps: the typed form of the `[type, payload]` pairs of a schema plan.
//!
//! The server sends each step as a two-element array with kebab-case keys. Older scripts read
//! the platform SDK's translated objects instead (`{type, friendlyDescription, attr}` or
//! `{type, friendlyDescription, attrId, forwardIdentity}`); reading only that form turned every
//! raw step into "unknown" and let the gate pass. Both forms are read here, and output is always
//! the wire form.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::{Cardinality, ShapeError};
use crate::server::{AttrKind, Identity, ServerSchema};
use crate::severity::Severity;

/// Wire names of the step types the server and the platform clients produce.
pub mod step_type {
    pub const ADD_ATTR: &str = "add-attr";
    pub const UPDATE_ATTR: &str = "update-attr";
    pub const DELETE_ATTR: &str = "delete-attr";
    pub const INDEX: &str = "index";
    pub const REMOVE_INDEX: &str = "remove-index";
    pub const UNIQUE: &str = "unique";
    pub const REMOVE_UNIQUE: &str = "remove-unique";
    pub const REQUIRED: &str = "required";
    pub const REMOVE_REQUIRED: &str = "remove-required";
    pub const CHECK_DATA_TYPE: &str = "check-data-type";
    pub const REMOVE_DATA_TYPE: &str = "remove-data-type";
}

/// The attribute object of an `add-attr` or `update-attr` step.
///
/// Kept as the exact JSON object (key order, `null`s, keys such as `inferred-types` or
/// `job-id`) because the server and the client send different key sets for the same step and an
/// embedded engine must be able to echo a plan byte for byte. Typed accessors read it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttrPayload {
    fields: Map<String, Value>,
}

impl AttrPayload {
    pub fn new(fields: Map<String, Value>) -> Self {
        AttrPayload { fields }
    }

    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    pub fn into_fields(self) -> Map<String, Value> {
        self.fields
    }

    /// The attribute id (`id`).
    pub fn id(&self) -> Option<&str> {
        self.fields.get("id").and_then(Value::as_str)
    }

    /// `value-type`.
    pub fn kind(&self) -> Option<AttrKind> {
        match self.fields.get("value-type").and_then(Value::as_str)? {
            "blob" => Some(AttrKind::Blob),
            "ref" => Some(AttrKind::Ref),
            _ => None,
        }
    }

    pub fn cardinality(&self) -> Option<Cardinality> {
        self.fields
            .get("cardinality")
            .and_then(Value::as_str)
            .and_then(Cardinality::parse)
    }

    pub fn forward_identity(&self) -> Option<Identity> {
        self.fields
            .get("forward-identity")
            .and_then(identity_from_json)
    }

    pub fn reverse_identity(&self) -> Option<Identity> {
        self.fields
            .get("reverse-identity")
            .and_then(identity_from_json)
    }

    /// A boolean flag such as `unique?`, `index?`, `required?`.
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.fields.get(key).and_then(Value::as_bool)
    }

    pub fn on_delete(&self) -> Option<&str> {
        self.fields.get("on-delete").and_then(Value::as_str)
    }

    pub fn on_delete_reverse(&self) -> Option<&str> {
        self.fields.get("on-delete-reverse").and_then(Value::as_str)
    }

    pub fn checked_data_type(&self) -> Option<&str> {
        self.fields.get("checked-data-type").and_then(Value::as_str)
    }
}

impl Serialize for AttrPayload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields.serialize(serializer)
    }
}

/// The payload of a background-job step (`index`, `unique`, `check-data-type`, …):
/// `{"attr-id", "checked-data-type"?, "forward-identity"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPayload {
    pub attr_id: String,
    pub forward_identity: Identity,
    /// Only on `check-data-type`.
    pub checked_data_type: Option<String>,
    /// Any other key (an applied plan adds `job-id`), written after the known ones.
    pub extra: Map<String, Value>,
}

impl JobPayload {
    pub fn new(attr_id: impl Into<String>, forward_identity: Identity) -> Self {
        JobPayload {
            attr_id: attr_id.into(),
            forward_identity,
            checked_data_type: None,
            extra: Map::new(),
        }
    }
}

impl Serialize for JobPayload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The server's key order: attr-id, checked-data-type, forward-identity.
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("attr-id", &self.attr_id)?;
        if let Some(data_type) = &self.checked_data_type {
            map.serialize_entry("checked-data-type", data_type)?;
        }
        map.serialize_entry("forward-identity", &self.forward_identity)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A `delete-attr` step. On the wire the payload is the bare attribute id.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteAttr {
    pub attr_id: String,
    /// The identity of the deleted attribute when the producer knew it (the overwrite planner
    /// does). Never on the wire; it only makes descriptions readable without the current schema.
    pub target: Option<Identity>,
}

/// One plan step.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanStep {
    AddAttr(AttrPayload),
    UpdateAttr(AttrPayload),
    DeleteAttr(DeleteAttr),
    Index(JobPayload),
    RemoveIndex(JobPayload),
    Unique(JobPayload),
    RemoveUnique(JobPayload),
    Required(JobPayload),
    RemoveRequired(JobPayload),
    CheckDataType(JobPayload),
    RemoveDataType(JobPayload),
    /// A step type this crate does not know. Kept, never rejected, and graded `review`, so a
    /// newer server cannot make a plan unreadable nor slip a step past the gate. A step without
    /// a type has `step_type == "unknown"`.
    Unknown {
        step_type: String,
        payload: Value,
    },
}

impl PlanStep {
    /// The wire type (`add-attr`, …).
    pub fn step_type(&self) -> &str {
        use step_type::*;
        match self {
            PlanStep::AddAttr(_) => ADD_ATTR,
            PlanStep::UpdateAttr(_) => UPDATE_ATTR,
            PlanStep::DeleteAttr(_) => DELETE_ATTR,
            PlanStep::Index(_) => INDEX,
            PlanStep::RemoveIndex(_) => REMOVE_INDEX,
            PlanStep::Unique(_) => UNIQUE,
            PlanStep::RemoveUnique(_) => REMOVE_UNIQUE,
            PlanStep::Required(_) => REQUIRED,
            PlanStep::RemoveRequired(_) => REMOVE_REQUIRED,
            PlanStep::CheckDataType(_) => CHECK_DATA_TYPE,
            PlanStep::RemoveDataType(_) => REMOVE_DATA_TYPE,
            PlanStep::Unknown { step_type, .. } => step_type,
        }
    }

    /// See [`Severity::of`].
    pub fn severity(&self) -> Severity {
        Severity::of(self.step_type())
    }

    /// The job payload of a background-job step.
    pub fn job(&self) -> Option<&JobPayload> {
        match self {
            PlanStep::Index(job)
            | PlanStep::RemoveIndex(job)
            | PlanStep::Unique(job)
            | PlanStep::RemoveUnique(job)
            | PlanStep::Required(job)
            | PlanStep::RemoveRequired(job)
            | PlanStep::CheckDataType(job)
            | PlanStep::RemoveDataType(job) => Some(job),
            _ => None,
        }
    }

    /// The attribute id the step acts on, when it names one.
    pub fn attr_id(&self) -> Option<&str> {
        match self {
            PlanStep::AddAttr(attr) | PlanStep::UpdateAttr(attr) => attr.id(),
            PlanStep::DeleteAttr(delete) => Some(&delete.attr_id),
            PlanStep::Unknown { .. } => None,
            other => other.job().map(|job| job.attr_id.as_str()),
        }
    }

    /// The forward identity of the attribute the step acts on, from the step alone.
    pub fn target_identity(&self) -> Option<Identity> {
        match self {
            PlanStep::AddAttr(attr) | PlanStep::UpdateAttr(attr) => attr.forward_identity(),
            PlanStep::DeleteAttr(delete) => delete.target.clone(),
            PlanStep::Unknown { payload, .. } => payload
                .get("forward-identity")
                .or_else(|| payload.get("forwardIdentity"))
                .or_else(|| {
                    payload.get("attr").and_then(|a| {
                        a.get("forward-identity")
                            .or_else(|| a.get("forwardIdentity"))
                    })
                })
                .and_then(identity_from_json),
            other => other.job().map(|job| job.forward_identity.clone()),
        }
    }

    /// `etype.label` of the attribute the step acts on, from the step alone (`None` for a
    /// `delete-attr` or a client `update-attr`, which carry only an id; see [`Self::target_in`]).
    pub fn target(&self) -> Option<String> {
        self.target_identity().map(|identity| identity.dotted())
    }

    /// Like [`Self::target`], resolving a bare attribute id against the current schema.
    pub fn target_in(&self, current: &ServerSchema) -> Option<String> {
        self.target().or_else(|| {
            let id = self.attr_id()?;
            current
                .attrs()
                .find(|attr| attr.id.as_deref() == Some(id))
                .map(|attr| attr.forward_identity.dotted())
        })
    }

    /// The platform SDK's description of the step (`translatePlanStep`).
    pub fn friendly_description(&self) -> String {
        self.describe(self.target())
    }

    /// Like [`Self::friendly_description`], naming id-only steps through the current schema
    /// (what the SDK does with `current-attrs`).
    pub fn friendly_description_in(&self, current: &ServerSchema) -> String {
        self.describe(self.target_in(current))
    }

    fn describe(&self, target: Option<String>) -> String {
        let id_text = || self.attr_id().unwrap_or("(unknown attribute)").to_string();
        let name = target.clone().unwrap_or_else(id_text);
        match self {
            PlanStep::AddAttr(attr) => {
                if attr.kind() == Some(AttrKind::Blob) {
                    match attr.forward_identity() {
                        Some(identity) if identity.label == "id" => {
                            format!("Create new entity {name}.")
                        }
                        _ => format!("Add attribute {name}."),
                    }
                } else {
                    let reverse = attr
                        .reverse_identity()
                        .map(|identity| identity.dotted())
                        .unwrap_or_else(|| "(no reverse)".to_string());
                    format!("Link {name} to {reverse}.")
                }
            }
            PlanStep::UpdateAttr(_) => format!("Update attribute {name}."),
            PlanStep::DeleteAttr(_) => format!("Delete attribute {name}."),
            PlanStep::Index(_) => format!("Add index to {name}."),
            PlanStep::RemoveIndex(_) => format!("Remove index from {name}."),
            PlanStep::Unique(_) => format!("Ensure that {name} is unique."),
            PlanStep::RemoveUnique(_) => format!("Remove uniqueness constraint from {name}."),
            PlanStep::Required(_) => format!("Make {name} a required attribute."),
            PlanStep::RemoveRequired(_) => format!("Allow {name} to be missing or null."),
            PlanStep::CheckDataType(job) => format!(
                "Enforce data type of {name} as type {}.",
                job.checked_data_type.as_deref().unwrap_or("(none)")
            ),
            PlanStep::RemoveDataType(_) => format!("Stop enforcing data type of {name}."),
            PlanStep::Unknown { step_type, .. } => format!("Unknown schema operation {step_type}."),
        }
    }

    /// The payload as it goes on the wire.
    pub fn payload_json(&self) -> Value {
        match self {
            PlanStep::AddAttr(attr) | PlanStep::UpdateAttr(attr) => {
                Value::Object(attr.fields().clone())
            }
            PlanStep::DeleteAttr(delete) => Value::String(delete.attr_id.clone()),
            PlanStep::Unknown { payload, .. } => payload.clone(),
            other => serde_json::to_value(other.job().expect("job step"))
                .expect("job payload serialises"),
        }
    }

    /// `[type, payload]`.
    pub fn to_wire(&self) -> Value {
        Value::Array(vec![
            Value::String(self.step_type().to_string()),
            self.payload_json(),
        ])
    }

    /// The platform SDK's translated object (`{type, friendlyDescription, attr}`,
    /// `{type, attrId, friendlyDescription}` or `{type, friendlyDescription, attrId,
    /// forwardIdentity, checkedDataType?}`), for reports that kept that shape.
    pub fn to_object_form(&self) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), Value::String(self.step_type().to_string()));
        match self {
            PlanStep::AddAttr(attr) | PlanStep::UpdateAttr(attr) => {
                out.insert(
                    "friendlyDescription".into(),
                    Value::String(self.friendly_description()),
                );
                out.insert("attr".into(), Value::Object(attr.fields().clone()));
            }
            PlanStep::DeleteAttr(delete) => {
                out.insert("attrId".into(), Value::String(delete.attr_id.clone()));
                out.insert(
                    "friendlyDescription".into(),
                    Value::String(self.friendly_description()),
                );
            }
            PlanStep::Unknown { payload, .. } => {
                out.insert(
                    "friendlyDescription".into(),
                    Value::String(self.friendly_description()),
                );
                out.insert("payload".into(), payload.clone());
            }
            other => {
                let job = other.job().expect("job step");
                out.insert(
                    "friendlyDescription".into(),
                    Value::String(self.friendly_description()),
                );
                out.insert("attrId".into(), Value::String(job.attr_id.clone()));
                out.insert(
                    "forwardIdentity".into(),
                    serde_json::to_value(&job.forward_identity).expect("identity serialises"),
                );
                if let Some(data_type) = &job.checked_data_type {
                    out.insert("checkedDataType".into(), Value::String(data_type.clone()));
                }
            }
        }
        Value::Object(out)
    }

    /// Reads one step in either form. Unknown types become [`PlanStep::Unknown`]; a known type
    /// whose payload lacks what the type needs is an error (it cannot be graded honestly).
    pub fn from_json(value: &Value) -> Result<PlanStep, ShapeError> {
        Self::from_json_at("(step)", value)
    }

    /// [`Self::from_json`] with the path used in errors (e.g. `steps[3]`).
    pub fn from_json_at(at: &str, value: &Value) -> Result<PlanStep, ShapeError> {
        match value {
            Value::Array(items) => {
                let Some(Value::String(step_type)) = items.first() else {
                    return Ok(unknown("unknown", value.clone()));
                };
                let payload = items.get(1).cloned().unwrap_or(Value::Null);
                from_wire(at, step_type, payload)
            }
            Value::Object(obj) => from_object(at, obj),
            other => Ok(unknown("unknown", other.clone())),
        }
    }
}

impl<'de> serde::Deserialize<'de> for PlanStep {
    /// Reads either form a step comes in (wire `[type, payload]` or the SDK's object form).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        PlanStep::from_json(&value).map_err(serde::de::Error::custom)
    }
}

impl Serialize for PlanStep {
    /// Always the wire form `[type, payload]`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(2))?;
        seq.serialize_element(self.step_type())?;
        seq.serialize_element(&self.payload_json())?;
        seq.end()
    }
}

fn unknown(step_type: &str, payload: Value) -> PlanStep {
    PlanStep::Unknown {
        step_type: step_type.to_string(),
        payload,
    }
}

fn err(at: impl Into<String>, message: impl Into<String>) -> ShapeError {
    ShapeError {
        at: at.into(),
        message: message.into(),
    }
}

/// `[id, etype, label]` with a string or null id.
pub(crate) fn identity_from_json(value: &Value) -> Option<Identity> {
    let items = value.as_array()?;
    if items.len() != 3 {
        return None;
    }
    let id = match &items[0] {
        Value::String(id) => Some(id.clone()),
        Value::Null => None,
        _ => return None,
    };
    Some(Identity::new(id, items[1].as_str()?, items[2].as_str()?))
}

fn job_constructor(step_type: &str) -> Option<fn(JobPayload) -> PlanStep> {
    use step_type::*;
    Some(match step_type {
        INDEX => PlanStep::Index,
        REMOVE_INDEX => PlanStep::RemoveIndex,
        UNIQUE => PlanStep::Unique,
        REMOVE_UNIQUE => PlanStep::RemoveUnique,
        REQUIRED => PlanStep::Required,
        REMOVE_REQUIRED => PlanStep::RemoveRequired,
        CHECK_DATA_TYPE => PlanStep::CheckDataType,
        REMOVE_DATA_TYPE => PlanStep::RemoveDataType,
        _ => return None,
    })
}

fn from_wire(at: &str, step_type: &str, payload: Value) -> Result<PlanStep, ShapeError> {
    use step_type::*;
    match step_type {
        ADD_ATTR | UPDATE_ATTR => {
            let Value::Object(fields) = payload else {
                return Err(err(at, format!("`{step_type}` needs an attribute object")));
            };
            let attr = AttrPayload::new(fields);
            Ok(if step_type == ADD_ATTR {
                PlanStep::AddAttr(attr)
            } else {
                PlanStep::UpdateAttr(attr)
            })
        }
        DELETE_ATTR => match payload {
            Value::String(attr_id) => Ok(PlanStep::DeleteAttr(DeleteAttr {
                attr_id,
                target: None,
            })),
            _ => Err(err(at, "`delete-attr` needs the attribute id as a string")),
        },
        _ => match job_constructor(step_type) {
            Some(make) => {
                let Value::Object(fields) = payload else {
                    return Err(err(at, format!("`{step_type}` needs an object payload")));
                };
                Ok(make(job_from_fields(at, step_type, fields)?))
            }
            None => Ok(unknown(step_type, payload)),
        },
    }
}

fn job_from_fields(
    at: &str,
    step_type: &str,
    mut fields: Map<String, Value>,
) -> Result<JobPayload, ShapeError> {
    let attr_id = match fields.shift_remove("attr-id") {
        Some(Value::String(id)) => id,
        _ => {
            return Err(err(
                at,
                format!("`{step_type}` needs `attr-id` as a string"),
            ))
        }
    };
    let forward_identity = fields
        .shift_remove("forward-identity")
        .as_ref()
        .and_then(identity_from_json)
        .ok_or_else(|| {
            err(
                at,
                format!("`{step_type}` needs `forward-identity` as [id, etype, label]"),
            )
        })?;
    let checked_data_type = match fields.shift_remove("checked-data-type") {
        Some(Value::String(data_type)) => Some(data_type),
        _ => None,
    };
    Ok(JobPayload {
        attr_id,
        forward_identity,
        checked_data_type,
        extra: fields,
    })
}

/// camelCase spellings the old scripts assumed, and the wire key each stands for.
const CAMEL_KEYS: &[(&str, &str)] = &[
    ("valueType", "value-type"),
    ("forwardIdentity", "forward-identity"),
    ("reverseIdentity", "reverse-identity"),
    ("checkedDataType", "checked-data-type"),
    ("onDelete", "on-delete"),
    ("onDeleteReverse", "on-delete-reverse"),
    ("inferredTypes", "inferred-types"),
    ("attrId", "attr-id"),
];

fn to_wire_keys(obj: &Map<String, Value>) -> Map<String, Value> {
    obj.iter()
        .map(|(key, value)| {
            let key = CAMEL_KEYS
                .iter()
                .find(|(camel, _)| camel == key)
                .map(|(_, wire)| wire.to_string())
                .unwrap_or_else(|| key.clone());
            (key, value.clone())
        })
        .collect()
}

fn from_object(at: &str, obj: &Map<String, Value>) -> Result<PlanStep, ShapeError> {
    use step_type::*;
    let step_type = match obj.get("type") {
        Some(Value::String(step_type)) if !step_type.is_empty() => step_type.as_str(),
        _ => return Ok(unknown("unknown", Value::Object(obj.clone()))),
    };
    // The step's own fields, without the translation's bookkeeping.
    let mut own: Map<String, Value> = obj
        .iter()
        .filter(|(key, _)| {
            !matches!(
                key.as_str(),
                "type" | "friendlyDescription" | "backgroundJob"
            )
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    match step_type {
        ADD_ATTR | UPDATE_ATTR => {
            let fields = match own.get("attr") {
                Some(Value::Object(attr)) => to_wire_keys(attr),
                Some(_) => return Err(err(format!("{at}.attr"), "expected an object")),
                None => to_wire_keys(&own),
            };
            from_wire(at, step_type, Value::Object(fields))
        }
        DELETE_ATTR => {
            let id = own
                .get("attrId")
                .or_else(|| own.get("attr-id"))
                .or_else(|| own.get("attr").filter(|attr| attr.is_string()))
                .or_else(|| own.get("attr").and_then(|attr| attr.get("id")))
                .cloned()
                .unwrap_or(Value::Null);
            from_wire(at, step_type, id)
        }
        _ if job_constructor(step_type).is_some() => {
            // `{attrId, forwardIdentity, checkedDataType}`; a nested `attr` may stand in for them.
            if let Some(Value::Object(attr)) = own.shift_remove("attr") {
                let attr = to_wire_keys(&attr);
                if let Some(id) = attr.get("id") {
                    own.entry("attr-id").or_insert_with(|| id.clone());
                }
                if let Some(identity) = attr.get("forward-identity") {
                    own.entry("forward-identity")
                        .or_insert_with(|| identity.clone());
                }
            }
            from_wire(at, step_type, Value::Object(to_wire_keys(&own)))
        }
        _ => Ok(unknown(step_type, Value::Object(obj.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use serde_json::json;

    fn wire_steps() -> Value {
        json!([
            ["add-attr", {"value-type": "blob", "cardinality": "one", "id": "a1",
                          "forward-identity": ["i1", "posts", "id"], "unique?": true, "index?": false}],
            ["add-attr", {"value-type": "blob", "cardinality": "one", "id": "a2",
                          "forward-identity": ["i2", "posts", "title"], "unique?": false, "index?": true,
                          "required?": true, "checked-data-type": "string"}],
            ["add-attr", {"value-type": "ref", "id": "a3", "forward-identity": ["i3", "posts", "author"],
                          "reverse-identity": ["i4", "profiles", "posts"], "cardinality": "one",
                          "unique?": false, "index?": false, "required?": false,
                          "on-delete": null, "on-delete-reverse": null}],
            ["update-attr", {"value-type": "blob", "cardinality": "one", "id": "a5",
                             "forward-identity": ["i5", "posts", "body"], "unique?": false, "index?": false, "required?": false}],
            ["delete-attr", "a6"],
            ["index", {"attr-id": "a7", "forward-identity": ["i7", "posts", "slug"]}],
            ["remove-index", {"attr-id": "a7", "forward-identity": ["i7", "posts", "slug"]}],
            ["unique", {"attr-id": "a7", "forward-identity": ["i7", "posts", "slug"]}],
            ["remove-unique", {"attr-id": "a7", "forward-identity": ["i7", "posts", "slug"]}],
            ["required", {"attr-id": "a7", "forward-identity": ["i7", "posts", "slug"]}],
            ["remove-required", {"attr-id": "a7", "forward-identity": ["i7", "posts", "slug"]}],
            ["check-data-type", {"attr-id": "a7", "checked-data-type": "number", "forward-identity": ["i7", "posts", "slug"]}],
            ["remove-data-type", {"attr-id": "a7", "forward-identity": ["i7", "posts", "slug"], "job-id": "j1"}],
            ["rename-namespace", {"from": "a", "to": "b"}]
        ])
    }

    fn parse_all(value: &Value) -> Vec<PlanStep> {
        value
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, step)| PlanStep::from_json_at(&format!("steps[{i}]"), step).unwrap())
            .collect()
    }

    #[test]
    fn wire_form_round_trips_byte_for_byte() {
        let steps = parse_all(&wire_steps());
        assert_eq!(
            serde_json::to_string(&steps).unwrap(),
            serde_json::to_string(&wire_steps()).unwrap()
        );
    }

    #[test]
    fn object_form_reads_back_to_the_same_steps() {
        let steps = parse_all(&wire_steps());
        let objects: Vec<Value> = steps.iter().map(PlanStep::to_object_form).collect();
        let reread = parse_all(&Value::Array(objects.clone()));
        // Unknown steps keep the object they were read from; everything else is identical.
        for (before, after) in steps.iter().zip(&reread) {
            match (before, after) {
                (PlanStep::Unknown { .. }, _) => assert_eq!(after.step_type(), before.step_type()),
                // The SDK's objects do not carry the `job-id` an applied plan adds.
                _ if before.job().is_some_and(|job| !job.extra.is_empty()) => {
                    let mut job = before.job().unwrap().clone();
                    job.extra.clear();
                    assert_eq!(after.job(), Some(&job));
                }
                _ => assert_eq!(before, after),
            }
        }
        expect![[r#"{"type":"check-data-type","friendlyDescription":"Enforce data type of posts.slug as type number.","attrId":"a7","forwardIdentity":["i7","posts","slug"],"checkedDataType":"number"}"#]]
        .assert_eq(&objects[11].to_string());
    }

    #[test]
    fn object_form_as_the_old_scripts_assumed() {
        let old = json!([
            {"type": "add-attr", "friendlyDescription": "Add attribute thread_items.channel.",
             "attr": {"valueType": "blob", "cardinality": "one", "id": "x1",
                      "forwardIdentity": ["f1", "thread_items", "channel"], "unique?": false}},
            {"type": "unique", "friendlyDescription": "…", "attrId": "x2",
             "forwardIdentity": ["f2", "thread_threads", "key"]},
            {"type": "delete-attr", "friendlyDescription": "Delete attribute story_events.kind.", "attrId": "x3"},
            {"friendlyDescription": "no type at all"}
        ]);
        let steps = parse_all(&old);
        let lines: Vec<String> = steps
            .iter()
            .map(|step| {
                format!(
                    "{} {} {:?} {}",
                    step.step_type(),
                    step.severity().as_str(),
                    step.target(),
                    step.to_wire()
                )
            })
            .collect();
        expect![[r#"
            add-attr safe Some("thread_items.channel") ["add-attr",{"value-type":"blob","cardinality":"one","id":"x1","forward-identity":["f1","thread_items","channel"],"unique?":false}]
            unique critical Some("thread_threads.key") ["unique",{"attr-id":"x2","forward-identity":["f2","thread_threads","key"]}]
            delete-attr critical None ["delete-attr","x3"]
            unknown review None ["unknown",{"friendlyDescription":"no type at all"}]"#]]
        .assert_eq(&lines.join("\n"));
    }

    #[test]
    fn friendly_descriptions_follow_the_platform_sdk() {
        let current = ServerSchema::from_json(&json!({"blobs": {"posts": {"legacy": {
            "id": "a6", "value-type": "blob", "cardinality": "one",
            "forward-identity": ["i6", "posts", "legacy"]}}}}))
        .unwrap();
        let lines: Vec<String> = parse_all(&wire_steps())
            .iter()
            .map(|step| step.friendly_description_in(&current))
            .collect();
        expect![[r#"
            Create new entity posts.id.
            Add attribute posts.title.
            Link posts.author to profiles.posts.
            Update attribute posts.body.
            Delete attribute posts.legacy.
            Add index to posts.slug.
            Remove index from posts.slug.
            Ensure that posts.slug is unique.
            Remove uniqueness constraint from posts.slug.
            Make posts.slug a required attribute.
            Allow posts.slug to be missing or null.
            Enforce data type of posts.slug as type number.
            Stop enforcing data type of posts.slug.
            Unknown schema operation rename-namespace."#]]
        .assert_eq(&lines.join("\n"));
        // Without the current schema a delete names the id, as the SDK does.
        expect!["Delete attribute a6."]
            .assert_eq(&parse_all(&wire_steps())[4].friendly_description());
    }

    #[test]
    fn malformed_known_steps_are_errors_with_their_path() {
        let bad = json!([["index", {"forward-identity": ["i", "posts", "slug"]}], ["delete-attr", {"id": "x"}]]);
        let errors: Vec<String> = bad
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, step)| {
                PlanStep::from_json_at(&format!("steps[{i}]"), step)
                    .unwrap_err()
                    .to_string()
            })
            .collect();
        expect![[r#"
            [
                "steps[0]: `index` needs `attr-id` as a string",
                "steps[1]: `delete-attr` needs the attribute id as a string",
            ]
        "#]]
        .assert_debug_eq(&errors);
    }
}
