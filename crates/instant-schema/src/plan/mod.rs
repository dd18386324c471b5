//! Schema plans: what pushing a schema would change, computed offline exactly as the server
//! computes it, and read back from a server's plan response.
//!
//! - [`plan`] reproduces `POST …/schema/push/plan` (the server plan: additions and updates,
//!   never deletions) including its refusals ([`PlanErrors`]).
//! - [`plan_overwrite`] reproduces the client-computed overwrite flow, the only one that
//!   deletes attributes.
//! - [`parse_plan_response`] reads a real plan response (steps in wire or object form).
//!
//! New attribute and identity ids are UUIDv5 values derived from the namespace and label under
//! [`ID_NAMESPACE`] (the server uses random ids), so the same input always gives a
//! byte-identical plan that can be diffed, reviewed and committed as evidence.

mod diff;
mod errors;
mod instructions;
mod steps;
mod system;

use indexmap::IndexMap;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::model::ShapeError;
use crate::server::{ServerAttr, ServerSchema};
use crate::severity::{Gate, SeverityCounts};

pub use diff::{desired_server_schema, plan, plan_errors, plan_overwrite, plan_with_server_schema};
pub use errors::{PlanError, PlanErrorKind, PlanErrors};
pub use instructions::{action_text, instructions, Instruction};
pub use steps::{step_type, AttrPayload, DeleteAttr, JobPayload, PlanStep};
pub use system::{is_hidden_system_blob, is_reserved_ident_name, is_system_link};

/// The UUIDv5 namespace of every id this crate invents for a plan. Fixed forever: changing it
/// changes every generated plan.
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_93d7_5b18_8e20_4c7a_b1d9_0e35);

/// The id of a new attribute whose forward identity is `etype.label`.
pub fn new_attr_id(etype: &str, label: &str) -> String {
    derived_id("attr", etype, label)
}

/// The id of a new identity `etype.label`.
pub fn new_ident_id(etype: &str, label: &str) -> String {
    derived_id("ident", etype, label)
}

fn derived_id(kind: &str, etype: &str, label: &str) -> String {
    // A JSON array keeps the parts apart whatever characters the names contain.
    let name = Value::from(vec![kind, etype, label]).to_string();
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()).to_string()
}

/// A DSL schema seen as an app that already has it, for diffing two schema files offline: the
/// server form of `schema` (as the server would have derived it on push), each namespace with
/// its `id` attribute, and every attribute and identity given its derived id. A real app's
/// pulled schema carries its own ids and needs none of this.
pub fn existing_app_schema(schema: &crate::model::Schema) -> ServerSchema {
    let mut server = desired_server_schema(schema);
    for (etype, attrs) in server.blobs.iter_mut() {
        if !attrs.contains_key("id") {
            let mut id = ServerAttr::blob(etype, "id");
            id.unique = true;
            id.catalog = attrs.values().next().and_then(|attr| attr.catalog.clone());
            attrs.shift_insert(0, "id".to_string(), id);
        }
    }
    let assign = |attr: &mut ServerAttr| {
        let forward = &mut attr.forward_identity;
        attr.id
            .get_or_insert_with(|| new_attr_id(&forward.etype, &forward.label));
        forward
            .id
            .get_or_insert_with(|| new_ident_id(&forward.etype, &forward.label));
        if let Some(reverse) = attr.reverse_identity.as_mut() {
            reverse
                .id
                .get_or_insert_with(|| new_ident_id(&reverse.etype, &reverse.label));
        }
    };
    server
        .blobs
        .values_mut()
        .flat_map(|attrs| attrs.values_mut())
        .for_each(assign);
    server.refs.values_mut().for_each(assign);
    server
}

/// The two request flags of a plan. The platform SDK always sends both as `true`, hence the
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// `check_types`: plan data-type enforcement (`checked-data-type` on new attributes,
    /// `check-data-type` / `remove-data-type` steps).
    pub check_types: bool,
    /// `supports_background_updates`: flag changes on existing attributes become job steps
    /// (`index`, `unique`, `required`, …) instead of one synchronous `update-attr`.
    pub supports_background_updates: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            check_types: true,
            supports_background_updates: true,
        }
    }
}

/// A computed plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<PlanStep>,
    /// The desired schema in server form, as the server derived it (ids null).
    pub new_schema: ServerSchema,
    pub current_schema: ServerSchema,
}

impl Plan {
    pub fn counts(&self) -> SeverityCounts {
        severity_counts(&self.steps)
    }

    pub fn gate(&self) -> Gate {
        Gate::from_counts(&self.counts())
    }

    /// Steps per wire type, in order of first appearance (`countsByType`).
    pub fn counts_by_type(&self) -> IndexMap<String, usize> {
        counts_by_type(&self.steps)
    }

    /// `{"steps": [[type, payload], …]}`: what a plan response carries that matters.
    pub fn to_steps_json(&self) -> Value {
        json!({ "steps": self.steps })
    }

    /// `{"new-schema", "current-schema", "steps"}`, the server's response without
    /// `current-attrs`.
    pub fn to_json(&self) -> Value {
        json!({
            "new-schema": self.new_schema,
            "current-schema": self.current_schema,
            "steps": self.steps,
        })
    }
}

/// A plan response as the server returns it (or as a report stored it).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanResponse {
    pub steps: Vec<PlanStep>,
    pub new_schema: Option<ServerSchema>,
    pub current_schema: Option<ServerSchema>,
    pub current_attrs: Option<Vec<ServerAttr>>,
    /// Present on apply responses; kept raw (job rows are DB rows).
    pub indexing_jobs: Option<Value>,
}

impl PlanResponse {
    pub fn counts(&self) -> SeverityCounts {
        severity_counts(&self.steps)
    }

    pub fn gate(&self) -> Gate {
        Gate::from_counts(&self.counts())
    }

    pub fn counts_by_type(&self) -> IndexMap<String, usize> {
        counts_by_type(&self.steps)
    }

    /// The current attributes as a schema, for naming id-only steps: `current-schema` when
    /// present, else one built from `current-attrs`.
    pub fn current_for_lookup(&self) -> ServerSchema {
        if let Some(current) = &self.current_schema {
            return current.clone();
        }
        let mut schema = ServerSchema::default();
        for (i, attr) in self.current_attrs.iter().flatten().enumerate() {
            if attr.is_ref() {
                schema.refs.insert(format!("#{i}"), attr.clone());
            } else {
                schema
                    .blobs
                    .entry(attr.forward_identity.etype.clone())
                    .or_default()
                    .insert(attr.forward_identity.label.clone(), attr.clone());
            }
        }
        schema
    }
}

fn severity_counts(steps: &[PlanStep]) -> SeverityCounts {
    steps.iter().map(PlanStep::severity).collect()
}

fn counts_by_type(steps: &[PlanStep]) -> IndexMap<String, usize> {
    let mut counts = IndexMap::new();
    for step in steps {
        *counts.entry(step.step_type().to_string()).or_insert(0) += 1;
    }
    counts
}

/// Reads `{steps: [...], "new-schema"?, "current-schema"?, "current-attrs"?, "indexing-jobs"?}`.
/// Each step may be in wire form or in the SDK's object form; unknown step types are kept.
pub fn parse_plan_response(value: &Value) -> Result<PlanResponse, ShapeError> {
    let root = value.as_object().ok_or_else(|| ShapeError {
        at: "(root)".into(),
        message: "expected a plan response object with `steps`".into(),
    })?;
    let steps = match root.get("steps") {
        Some(Value::Array(steps)) => steps
            .iter()
            .enumerate()
            .map(|(i, step)| PlanStep::from_json_at(&format!("steps[{i}]"), step))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(ShapeError {
                at: "steps".into(),
                message: "expected an array".into(),
            })
        }
        None => {
            return Err(ShapeError {
                at: "(root)".into(),
                message: "missing `steps`".into(),
            })
        }
    };
    let schema_at = |key: &str| -> Result<Option<ServerSchema>, ShapeError> {
        match root.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => ServerSchema::from_json(value)
                .map(Some)
                .map_err(|e| ShapeError {
                    at: format!("{key}.{}", e.at),
                    message: e.message,
                }),
        }
    };
    let new_schema = schema_at("new-schema")?;
    let current_schema = schema_at("current-schema")?;
    let current_attrs = match root.get("current-attrs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(attrs)) => Some(
            attrs
                .iter()
                .enumerate()
                .map(|(i, attr)| {
                    serde::Deserialize::deserialize(attr).map_err(|e: serde_json::Error| {
                        ShapeError {
                            at: format!("current-attrs[{i}]"),
                            message: e.to_string(),
                        }
                    })
                })
                .collect::<Result<Vec<ServerAttr>, _>>()?,
        ),
        Some(_) => {
            return Err(ShapeError {
                at: "current-attrs".into(),
                message: "expected an array".into(),
            })
        }
    };
    let indexing_jobs = root.get("indexing-jobs").filter(|v| !v.is_null()).cloned();
    Ok(PlanResponse {
        steps,
        new_schema,
        current_schema,
        current_attrs,
        indexing_jobs,
    })
}

/// A JSON object from `(key, value)` pairs, in order.
pub(crate) fn object(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
