//! The server's attribute form: `{refs, blobs}` as returned by schema pull and plan
//! (`attrs->schema` on the server), and the conversion from the DSL (`defs->schema`).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{Attr, Cardinality, Entity, Link, LinkEnd, Schema, ShapeError, ValueType};

/// An attribute identity `[identId, etype, label]`. The ident id is `null` in the desired
/// schema of a plan response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub id: Option<String>,
    pub etype: String,
    pub label: String,
}

impl Identity {
    pub fn new(id: Option<String>, etype: impl Into<String>, label: impl Into<String>) -> Self {
        Identity {
            id,
            etype: etype.into(),
            label: label.into(),
        }
    }

    /// `etype.label`, as people write it.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.etype, self.label)
    }
}

impl Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.id, &self.etype, &self.label).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Identity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (id, etype, label) = <(Option<String>, String, String)>::deserialize(deserializer)?;
        Ok(Identity { id, etype, label })
    }
}

/// `value-type` of a server attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrKind {
    Blob,
    Ref,
}

/// One server attribute (`InstantDBAttr`). Unknown keys are kept in `extra` so a pulled schema
/// written back out loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerAttr {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "value-type")]
    pub value_type: AttrKind,
    pub cardinality: Cardinality,
    #[serde(rename = "forward-identity")]
    pub forward_identity: Identity,
    #[serde(
        rename = "reverse-identity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reverse_identity: Option<Identity>,
    #[serde(rename = "unique?", default)]
    pub unique: bool,
    #[serde(rename = "index?", default)]
    pub index: bool,
    #[serde(rename = "required?", default)]
    pub required: bool,
    #[serde(
        rename = "checked-data-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub checked_data_type: Option<String>,
    #[serde(rename = "on-delete", default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<String>,
    #[serde(
        rename = "on-delete-reverse",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub on_delete_reverse: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ServerAttr {
    /// A blob attribute with no flags and no id.
    pub fn blob(etype: &str, label: &str) -> Self {
        ServerAttr {
            id: None,
            value_type: AttrKind::Blob,
            cardinality: Cardinality::One,
            forward_identity: Identity::new(None, etype, label),
            reverse_identity: None,
            unique: false,
            index: false,
            required: false,
            checked_data_type: None,
            on_delete: None,
            on_delete_reverse: None,
            catalog: None,
            extra: Map::new(),
        }
    }

    pub fn is_ref(&self) -> bool {
        self.value_type == AttrKind::Ref
    }

    pub fn is_system(&self) -> bool {
        self.catalog.as_deref() == Some("system")
    }
}

impl Serialize for Cardinality {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Cardinality {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cardinality::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("expected \"one\" or \"many\", found \"{text}\""))
        })
    }
}

/// `{refs, blobs}`: every attribute of an app, blobs grouped by namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerSchema {
    #[serde(default)]
    pub refs: IndexMap<String, ServerAttr>,
    #[serde(default)]
    pub blobs: IndexMap<String, IndexMap<String, ServerAttr>>,
}

impl ServerSchema {
    /// Reads `{refs, blobs}`, naming the attribute at fault on error.
    pub fn from_json(value: &Value) -> Result<ServerSchema, ShapeError> {
        let root = value.as_object().ok_or_else(|| ShapeError {
            at: "(root)".into(),
            message: "expected an object with `refs` and `blobs`".into(),
        })?;
        let mut schema = ServerSchema::default();
        if let Some(refs) = root.get("refs") {
            let refs = refs.as_object().ok_or_else(|| ShapeError {
                at: "refs".into(),
                message: "expected an object".into(),
            })?;
            for (key, attr) in refs {
                let attr = parse_attr(&format!("refs.{key}"), attr)?;
                schema.refs.insert(key.clone(), attr);
            }
        }
        if let Some(blobs) = root.get("blobs") {
            let blobs = blobs.as_object().ok_or_else(|| ShapeError {
                at: "blobs".into(),
                message: "expected an object".into(),
            })?;
            for (etype, attrs) in blobs {
                let attrs = attrs.as_object().ok_or_else(|| ShapeError {
                    at: format!("blobs.{etype}"),
                    message: "expected an object".into(),
                })?;
                let entry = schema.blobs.entry(etype.clone()).or_default();
                for (label, attr) in attrs {
                    entry.insert(
                        label.clone(),
                        parse_attr(&format!("blobs.{etype}.{label}"), attr)?,
                    );
                }
            }
        }
        Ok(schema)
    }

    /// Every attribute, blobs first (namespace by namespace), then refs.
    pub fn attrs(&self) -> impl Iterator<Item = &ServerAttr> {
        self.blobs
            .values()
            .flat_map(|attrs| attrs.values())
            .chain(self.refs.values())
    }

    /// The DSL view of this schema: namespaces and their typed attributes (without `id`), and
    /// one link per ref, named as `instant-cli pull` names them
    /// (`<forwardEtype><CapitalisedForwardLabel>`).
    pub fn to_dsl(&self) -> Schema {
        let mut entities: IndexMap<String, Entity> = IndexMap::new();
        for (etype, attrs) in &self.blobs {
            let entity = entities.entry(etype.clone()).or_default();
            for (label, attr) in attrs {
                if label == "id" {
                    continue;
                }
                let value_type = attr
                    .checked_data_type
                    .as_deref()
                    .and_then(ValueType::parse)
                    .unwrap_or(ValueType::Json);
                entity.attrs.insert(
                    label.clone(),
                    Attr {
                        value_type,
                        required: attr.required,
                        indexed: attr.index,
                        unique: attr.unique,
                        metadata: Map::new(),
                    },
                );
            }
        }
        let mut links = IndexMap::new();
        for attr in self.refs.values() {
            let Some(reverse) = &attr.reverse_identity else {
                continue;
            };
            let forward = &attr.forward_identity;
            for etype in [&forward.etype, &reverse.etype] {
                if !entities.contains_key(etype.as_str()) {
                    entities.insert(etype.clone(), Entity::default());
                }
            }
            let base = format!("{}{}", forward.etype, capitalise(&forward.label));
            let mut name = base.clone();
            let mut n = 2;
            while links.contains_key(&name) {
                name = format!("{base}{n}");
                n += 1;
            }
            links.insert(
                name,
                Link::new(
                    LinkEnd {
                        on: forward.etype.clone(),
                        has: attr.cardinality,
                        label: forward.label.clone(),
                        required: attr.required.then_some(true),
                        on_delete: attr.on_delete.clone(),
                    },
                    LinkEnd {
                        on: reverse.etype.clone(),
                        has: if attr.unique {
                            Cardinality::One
                        } else {
                            Cardinality::Many
                        },
                        label: reverse.label.clone(),
                        required: None,
                        on_delete: attr.on_delete_reverse.clone(),
                    },
                ),
            );
        }
        Schema {
            entities,
            links,
            rooms: Some(Value::Object(Map::new())),
        }
    }
}

fn parse_attr(at: &str, value: &Value) -> Result<ServerAttr, ShapeError> {
    ServerAttr::deserialize(value).map_err(|err| ShapeError {
        at: at.to_string(),
        message: err.to_string(),
    })
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Schema {
    /// The attributes the server derives from this schema (`defs->schema`), without ids: one
    /// blob per data attribute and one ref per link. `id` attributes are not included; the
    /// planner adds them for new namespaces.
    pub fn to_server(&self) -> ServerSchema {
        let mut server = ServerSchema::default();
        for (etype, entity) in &self.entities {
            let blobs = server.blobs.entry(etype.clone()).or_default();
            for (label, attr) in &entity.attrs {
                let mut blob = ServerAttr::blob(etype, label);
                blob.unique = attr.unique;
                blob.index = attr.indexed;
                blob.required = attr.required;
                blob.checked_data_type = attr.value_type.checked_data_type().map(str::to_string);
                blobs.insert(label.clone(), blob);
            }
        }
        for link in self.links.values() {
            let forward = Identity::new(None, &link.forward.on, &link.forward.label);
            let reverse = Identity::new(None, &link.reverse.on, &link.reverse.label);
            let key = ref_key(&forward, &reverse);
            server.refs.insert(
                key,
                ServerAttr {
                    id: None,
                    value_type: AttrKind::Ref,
                    cardinality: link.forward.has,
                    forward_identity: forward,
                    reverse_identity: Some(reverse),
                    unique: link.reverse.has == Cardinality::One,
                    index: false,
                    required: link.forward.required == Some(true),
                    checked_data_type: None,
                    on_delete: link.forward.on_delete.clone(),
                    on_delete_reverse: link.reverse.on_delete.clone(),
                    catalog: None,
                    extra: Map::new(),
                },
            );
        }
        server
    }
}

/// The key the server gives a ref in `refs`: the printed vector of its four names.
pub fn ref_key(forward: &Identity, reverse: &Identity) -> String {
    format!(
        "[\"{}\" \"{}\" \"{}\" \"{}\"]",
        forward.etype, forward.label, reverse.etype, reverse.label
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use serde_json::json;

    fn pulled() -> Value {
        json!({
            "refs": {
                "[\"todos\" \"owner\" \"users\" \"todos\"]": {
                    "id": "a1", "value-type": "ref", "cardinality": "one",
                    "forward-identity": ["f1", "todos", "owner"],
                    "reverse-identity": ["r1", "users", "todos"],
                    "unique?": false, "index?": false, "required?": true,
                    "on-delete": "cascade", "catalog": "user"}
            },
            "blobs": {
                "todos": {
                    "id": {"id": "a2", "value-type": "blob", "cardinality": "one",
                           "forward-identity": ["f2", "todos", "id"], "unique?": true, "index?": false, "required?": false},
                    "title": {"id": "a3", "value-type": "blob", "cardinality": "one",
                              "forward-identity": ["f3", "todos", "title"], "unique?": false, "index?": true,
                              "required?": true, "checked-data-type": "string", "inferred-types": ["string"]}
                }
            }
        })
    }

    #[test]
    fn server_form_reads_and_converts_to_dsl() {
        let server = ServerSchema::from_json(&pulled()).unwrap();
        assert_eq!(
            server.blobs["todos"]["title"].extra["inferred-types"],
            json!(["string"])
        );
        let dsl = server.to_dsl();
        expect![[r#"{"entities":{"todos":{"attrs":{"title":{"valueType":"string","required":true,"isIndexed":true,"config":{"indexed":true,"unique":false},"metadata":{}}},"links":{"owner":{"entityName":"users","cardinality":"one"}}},"users":{"attrs":{},"links":{"todos":{"entityName":"todos","cardinality":"many"}}}},"links":{"todosOwner":{"forward":{"on":"todos","has":"one","label":"owner","required":true,"onDelete":"cascade"},"reverse":{"on":"users","has":"many","label":"todos"}}},"rooms":{}}"#]]
        .assert_eq(&serde_json::to_string(&dsl).unwrap());
    }

    #[test]
    fn dsl_to_server_follows_defs_to_schema() {
        let dsl = ServerSchema::from_json(&pulled()).unwrap().to_dsl();
        let server = dsl.to_server();
        expect![[r#"{"refs":{"[\"todos\" \"owner\" \"users\" \"todos\"]":{"id":null,"value-type":"ref","cardinality":"one","forward-identity":[null,"todos","owner"],"reverse-identity":[null,"users","todos"],"unique?":false,"index?":false,"required?":true,"on-delete":"cascade"}},"blobs":{"todos":{"title":{"id":null,"value-type":"blob","cardinality":"one","forward-identity":[null,"todos","title"],"unique?":false,"index?":true,"required?":true,"checked-data-type":"string"}},"users":{}}}"#]]
        .assert_eq(&serde_json::to_string(&server).unwrap());
    }

    #[test]
    fn malformed_server_attr_names_its_key() {
        let mut doc = pulled();
        doc["blobs"]["todos"]["title"]["cardinality"] = json!("lots");
        let err = ServerSchema::from_json(&doc).unwrap_err();
        expect![[r#"blobs.todos.title: expected "one" or "many", found "lots""#]]
            .assert_eq(&err.to_string());
    }
}
