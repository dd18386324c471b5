//! The schema as the TypeScript DSL describes it: `i.schema({entities, links, rooms})`.
//!
//! [`Schema`] is built from the DSL serialisation (what `JSON.stringify(i.schema(…))` gives) and
//! serialises back to exactly that shape. The per-entity `links` map of the serialisation is
//! derived from the link definitions, so it is computed on output and never stored.

use indexmap::IndexMap;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

/// A schema in DSL form.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub entities: IndexMap<String, Entity>,
    pub links: IndexMap<String, Link>,
    /// `rooms` as given (presence definitions are irrelevant to the server). `None` when the
    /// source had no `rooms` key at all (the deprecated `i.graph` form).
    pub rooms: Option<Value>,
}

/// One namespace and its data attributes. The implicit `id` attribute is not listed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entity {
    pub attrs: IndexMap<String, Attr>,
}

/// A data attribute (`i.string().indexed()` and friends).
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub value_type: ValueType,
    /// Required unless `.optional()` or `.clientRequired()`.
    pub required: bool,
    pub indexed: bool,
    pub unique: bool,
    /// The DSL always writes `{}`; kept so JSON input round-trips.
    pub metadata: Map<String, Value>,
}

impl Attr {
    /// The attribute `i.<value_type>()` creates before any modifier: required, not indexed,
    /// not unique.
    pub fn new(value_type: ValueType) -> Self {
        Attr {
            value_type,
            required: true,
            indexed: false,
            unique: false,
            metadata: Map::new(),
        }
    }
}

/// The value types of the DSL. `i.any()` serialises as `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    String,
    Number,
    Boolean,
    Date,
    Json,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Number => "number",
            ValueType::Boolean => "boolean",
            ValueType::Date => "date",
            ValueType::Json => "json",
        }
    }

    /// Parses a DSL value type; `any` is accepted as the alias it is.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "string" => ValueType::String,
            "number" => ValueType::Number,
            "boolean" => ValueType::Boolean,
            "date" => ValueType::Date,
            "json" | "any" => ValueType::Json,
            _ => return None,
        })
    }

    /// The type the server enforces for this value type (`checked-data-type`), if any:
    /// `json` is unchecked.
    pub fn checked_data_type(self) -> Option<&'static str> {
        match self {
            ValueType::Json => None,
            other => Some(other.as_str()),
        }
    }
}

/// `has` of a link end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cardinality {
    One,
    Many,
}

impl Cardinality {
    pub fn as_str(self) -> &'static str {
        match self {
            Cardinality::One => "one",
            Cardinality::Many => "many",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "one" => Some(Cardinality::One),
            "many" => Some(Cardinality::Many),
            _ => None,
        }
    }
}

/// One end of a link definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEnd {
    /// The namespace this end lives on.
    pub on: String,
    pub has: Cardinality,
    pub label: String,
    pub required: Option<bool>,
    /// `onDelete` as written (`"cascade"` is the only value the server knows).
    pub on_delete: Option<String>,
}

/// A link definition `{forward, reverse}`.
#[derive(Debug, Clone)]
pub struct Link {
    pub forward: LinkEnd,
    pub reverse: LinkEnd,
    /// The definition exactly as written. `i.schema` passes link objects through untouched,
    /// so output reproduces them (key order, extra keys) when they came from a source file.
    pub source: Option<Map<String, Value>>,
}

impl PartialEq for Link {
    /// Two links are equal when they define the same thing; how they were spelled is not
    /// part of their meaning.
    fn eq(&self, other: &Self) -> bool {
        self.forward == other.forward && self.reverse == other.reverse
    }
}

impl Link {
    pub fn new(forward: LinkEnd, reverse: LinkEnd) -> Self {
        Link {
            forward,
            reverse,
            source: None,
        }
    }
}

/// A problem found while reading a schema document, with the JSON path where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ShapeError {
    /// Dotted path into the document, e.g. `entities.posts.attrs.title.valueType`.
    pub at: String,
    pub message: String,
}

fn shape_err(at: impl Into<String>, message: impl Into<String>) -> ShapeError {
    ShapeError {
        at: at.into(),
        message: message.into(),
    }
}

/// Namespaces the server always has; links may point at them without declaring them.
pub fn is_system_namespace(name: &str) -> bool {
    name.starts_with('$')
}

impl Schema {
    pub fn empty() -> Self {
        Schema {
            entities: IndexMap::new(),
            links: IndexMap::new(),
            rooms: Some(Value::Object(Map::new())),
        }
    }

    /// Reads the DSL serialisation `{entities, links, rooms}`. Each entity's own `links` map is
    /// ignored (it is derived from `links`).
    pub fn from_dsl_json(value: &Value) -> Result<Schema, ShapeError> {
        let root = value.as_object().ok_or_else(|| {
            shape_err(
                "(root)",
                format!("expected an object, found {}", kind(value)),
            )
        })?;
        let entities_value = root
            .get("entities")
            .ok_or_else(|| shape_err("(root)", "missing `entities`"))?;
        let entities_obj = entities_value.as_object().ok_or_else(|| {
            shape_err(
                "entities",
                format!("expected an object, found {}", kind(entities_value)),
            )
        })?;
        let mut entities = IndexMap::new();
        for (name, entity_value) in entities_obj {
            let at = format!("entities.{name}");
            let entity_obj = entity_value.as_object().ok_or_else(|| {
                shape_err(
                    &at,
                    format!("expected an object, found {}", kind(entity_value)),
                )
            })?;
            let mut attrs = IndexMap::new();
            if let Some(attrs_value) = entity_obj.get("attrs") {
                let attrs_obj = attrs_value.as_object().ok_or_else(|| {
                    shape_err(
                        format!("{at}.attrs"),
                        format!("expected an object, found {}", kind(attrs_value)),
                    )
                })?;
                for (label, attr_value) in attrs_obj {
                    let attr = attr_from_dsl(&format!("{at}.attrs.{label}"), attr_value)?;
                    attrs.insert(label.clone(), attr);
                }
            } else {
                return Err(shape_err(&at, "missing `attrs`"));
            }
            entities.insert(name.clone(), Entity { attrs });
        }

        let mut links = IndexMap::new();
        match root.get("links") {
            None | Some(Value::Null) => {}
            Some(Value::Object(links_obj)) => {
                for (name, link_value) in links_obj {
                    links.insert(
                        name.clone(),
                        link_from_dsl(&format!("links.{name}"), link_value)?,
                    );
                }
            }
            Some(other) => {
                return Err(shape_err(
                    "links",
                    format!("expected an object, found {}", kind(other)),
                ))
            }
        }
        let rooms = root.get("rooms").cloned();
        Ok(Schema {
            entities,
            links,
            rooms,
        })
    }

    /// Checks what the DSL itself does not: every link end names a declared namespace (or a
    /// system one), and no two link ends claim the same `<entity>-><label>`, nor a link end the
    /// label of a data attribute. Returns every problem, in definition order.
    pub fn validate(&self) -> Vec<ShapeError> {
        let mut problems = Vec::new();
        // `<entity>-><label>` -> who claimed it first.
        let mut claimed: IndexMap<(String, String), String> = IndexMap::new();
        for (entity, def) in &self.entities {
            for label in def.attrs.keys() {
                claimed.insert(
                    (entity.clone(), label.clone()),
                    format!("attribute `{entity}.{label}`"),
                );
            }
        }
        for (name, link) in &self.links {
            for (side, end) in [("forward", &link.forward), ("reverse", &link.reverse)] {
                let at = format!("links.{name}.{side}");
                if !self.entities.contains_key(&end.on) && !is_system_namespace(&end.on) {
                    problems.push(shape_err(
                        format!("{at}.on"),
                        format!(
                            "link `{name}` points at `{}`, which is not an entity of this schema",
                            end.on
                        ),
                    ));
                }
                let key = (end.on.clone(), end.label.clone());
                match claimed.get(&key) {
                    Some(owner) => problems.push(shape_err(
                        at,
                        format!(
                            "`{}->{}` is claimed twice: by link `{name}` ({side}) and by {owner}",
                            end.on, end.label
                        ),
                    )),
                    None => {
                        claimed.insert(key, format!("link `{name}` ({side})"));
                    }
                }
            }
        }
        problems
    }

    /// The per-entity link index `i.schema` builds: for each entity, its forward labels then its
    /// reverse labels, a later definition of the same label replacing the earlier one in place.
    pub fn entity_links(&self, entity: &str) -> IndexMap<String, (String, Cardinality)> {
        let mut forward = IndexMap::new();
        let mut reverse = IndexMap::new();
        for link in self.links.values() {
            if link.forward.on == entity {
                forward.insert(
                    link.forward.label.clone(),
                    (link.reverse.on.clone(), link.forward.has),
                );
            }
            if link.reverse.on == entity {
                reverse.insert(
                    link.reverse.label.clone(),
                    (link.forward.on.clone(), link.reverse.has),
                );
            }
        }
        for (label, target) in reverse {
            forward.insert(label, target);
        }
        forward
    }

    /// The DSL serialisation as a JSON value, key order included.
    pub fn to_dsl_json(&self) -> Value {
        serde_json::to_value(self).expect("a schema always serialises")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn attr_from_dsl(at: &str, value: &Value) -> Result<Attr, ShapeError> {
    let obj = value.as_object().ok_or_else(|| {
        shape_err(
            at,
            format!("expected an attribute object, found {}", kind(value)),
        )
    })?;
    let value_type = match obj.get("valueType") {
        Some(Value::String(text)) => ValueType::parse(text).ok_or_else(|| {
            shape_err(
                format!("{at}.valueType"),
                format!("unknown value type `{text}` (expected string, number, boolean, date, json or any)"),
            )
        })?,
        Some(other) => {
            return Err(shape_err(format!("{at}.valueType"), format!("expected a string, found {}", kind(other))))
        }
        None => return Err(shape_err(at, "missing `valueType`")),
    };
    let flag = |value: Option<&Value>, name: &str| -> Result<Option<bool>, ShapeError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(shape_err(
                format!("{at}.{name}"),
                format!("expected a boolean, found {}", kind(other)),
            )),
        }
    };
    let config = match obj.get("config") {
        None | Some(Value::Null) => None,
        Some(Value::Object(config)) => Some(config),
        Some(other) => {
            return Err(shape_err(
                format!("{at}.config"),
                format!("expected an object, found {}", kind(other)),
            ))
        }
    };
    // The server reads `required` and `config.{indexed,unique}` only; `isIndexed` is the
    // client's copy of `config.indexed` and is used when `config` is absent.
    let required = flag(obj.get("required"), "required")?.unwrap_or(false);
    let indexed = match config {
        Some(config) => flag(config.get("indexed"), "config.indexed")?,
        None => None,
    }
    .or(flag(obj.get("isIndexed"), "isIndexed")?)
    .unwrap_or(false);
    let unique = match config {
        Some(config) => flag(config.get("unique"), "config.unique")?,
        None => None,
    }
    .unwrap_or(false);
    let metadata = match obj.get("metadata") {
        Some(Value::Object(metadata)) => metadata.clone(),
        _ => Map::new(),
    };
    Ok(Attr {
        value_type,
        required,
        indexed,
        unique,
        metadata,
    })
}

fn link_end_from_dsl(at: &str, value: Option<&Value>) -> Result<LinkEnd, ShapeError> {
    let value = value.ok_or_else(|| shape_err(at, "missing"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| shape_err(at, format!("expected an object, found {}", kind(value))))?;
    let text = |name: &str| -> Result<String, ShapeError> {
        match obj.get(name) {
            Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
            Some(Value::String(_)) => Err(shape_err(format!("{at}.{name}"), "must not be empty")),
            Some(other) => Err(shape_err(
                format!("{at}.{name}"),
                format!("expected a string, found {}", kind(other)),
            )),
            None => Err(shape_err(at, format!("missing `{name}`"))),
        }
    };
    let on = text("on")?;
    let label = text("label")?;
    let has_text = text("has")?;
    let has = Cardinality::parse(&has_text).ok_or_else(|| {
        shape_err(
            format!("{at}.has"),
            format!("expected \"one\" or \"many\", found \"{has_text}\""),
        )
    })?;
    let required = match obj.get("required") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(shape_err(
                format!("{at}.required"),
                format!("expected a boolean, found {}", kind(other)),
            ))
        }
    };
    let on_delete = match obj.get("onDelete") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text == "cascade" => Some(text.clone()),
        Some(other) => {
            return Err(shape_err(
                format!("{at}.onDelete"),
                format!("expected \"cascade\", found {}", other),
            ))
        }
    };
    Ok(LinkEnd {
        on,
        has,
        label,
        required,
        on_delete,
    })
}

fn link_from_dsl(at: &str, value: &Value) -> Result<Link, ShapeError> {
    let obj = value
        .as_object()
        .ok_or_else(|| shape_err(at, format!("expected a link object, found {}", kind(value))))?;
    Ok(Link {
        forward: link_end_from_dsl(&format!("{at}.forward"), obj.get("forward"))?,
        reverse: link_end_from_dsl(&format!("{at}.reverse"), obj.get("reverse"))?,
        source: Some(obj.clone()),
    })
}

impl Serialize for Schema {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Entities<'a>(&'a Schema);
        impl Serialize for Entities<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.entities.len()))?;
                for (name, entity) in &self.0.entities {
                    map.serialize_entry(
                        name,
                        &EntityOut {
                            attrs: &entity.attrs,
                            links: self.0.entity_links(name),
                        },
                    )?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("entities", &Entities(self))?;
        map.serialize_entry("links", &self.links)?;
        if let Some(rooms) = &self.rooms {
            map.serialize_entry("rooms", rooms)?;
        }
        map.end()
    }
}

struct EntityOut<'a> {
    attrs: &'a IndexMap<String, Attr>,
    links: IndexMap<String, (String, Cardinality)>,
}

impl Serialize for EntityOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct EntityLink<'a>(&'a str, Cardinality);
        impl Serialize for EntityLink<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("entityName", self.0)?;
                map.serialize_entry("cardinality", self.1.as_str())?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("attrs", self.attrs)?;
        let links: IndexMap<&str, EntityLink<'_>> = self
            .links
            .iter()
            .map(|(label, (entity, has))| (label.as_str(), EntityLink(entity, *has)))
            .collect();
        map.serialize_entry("links", &links)?;
        map.end()
    }
}

impl Serialize for Attr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Key order of `DataAttrDef` in `@instantdb/core`.
        struct Config(bool, bool);
        impl Serialize for Config {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("indexed", &self.0)?;
                map.serialize_entry("unique", &self.1)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("valueType", self.value_type.as_str())?;
        map.serialize_entry("required", &self.required)?;
        map.serialize_entry("isIndexed", &self.indexed)?;
        map.serialize_entry("config", &Config(self.indexed, self.unique))?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.end()
    }
}

impl Serialize for Link {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(source) = &self.source {
            return source.serialize(serializer);
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("forward", &self.forward)?;
        map.serialize_entry("reverse", &self.reverse)?;
        map.end()
    }
}

impl Serialize for LinkEnd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("on", &self.on)?;
        map.serialize_entry("has", self.has.as_str())?;
        map.serialize_entry("label", &self.label)?;
        if let Some(required) = self.required {
            map.serialize_entry("required", &required)?;
        }
        if let Some(on_delete) = &self.on_delete {
            map.serialize_entry("onDelete", on_delete)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use serde_json::json;

    fn todos() -> Value {
        json!({
            "entities": {
                "todos": {"attrs": {
                    "title": {"valueType": "string", "required": true, "isIndexed": true,
                              "config": {"indexed": true, "unique": false}, "metadata": {}},
                    "done": {"valueType": "boolean", "required": false, "isIndexed": false,
                             "config": {"indexed": false, "unique": false}, "metadata": {}}},
                    "links": {}},
                "users": {"attrs": {"email": {"valueType": "string", "required": true, "isIndexed": true,
                          "config": {"indexed": true, "unique": true}, "metadata": {}}}, "links": {}}
            },
            "links": {"todoOwner": {
                "forward": {"on": "todos", "has": "one", "label": "owner", "onDelete": "cascade"},
                "reverse": {"on": "users", "has": "many", "label": "todos"}}},
            "rooms": {}
        })
    }

    #[test]
    fn dsl_json_round_trips_with_derived_entity_links() {
        let schema = Schema::from_dsl_json(&todos()).unwrap();
        expect![[r#"{"entities":{"todos":{"attrs":{"title":{"valueType":"string","required":true,"isIndexed":true,"config":{"indexed":true,"unique":false},"metadata":{}},"done":{"valueType":"boolean","required":false,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}},"links":{"owner":{"entityName":"users","cardinality":"one"}}},"users":{"attrs":{"email":{"valueType":"string","required":true,"isIndexed":true,"config":{"indexed":true,"unique":true},"metadata":{}}},"links":{"todos":{"entityName":"todos","cardinality":"many"}}}},"links":{"todoOwner":{"forward":{"on":"todos","has":"one","label":"owner","onDelete":"cascade"},"reverse":{"on":"users","has":"many","label":"todos"}}},"rooms":{}}"#]]
        .assert_eq(&serde_json::to_string(&schema).unwrap());
    }

    #[test]
    fn unknown_value_type_is_named_with_its_path() {
        let mut doc = todos();
        doc["entities"]["todos"]["attrs"]["title"]["valueType"] = json!("text");
        let err = Schema::from_dsl_json(&doc).unwrap_err();
        expect!["entities.todos.attrs.title.valueType: unknown value type `text` (expected string, number, boolean, date, json or any)"]
            .assert_eq(&err.to_string());
    }

    #[test]
    fn validate_reports_unknown_link_target_and_double_claims() {
        let mut doc = todos();
        doc["links"]["second"] = json!({
            "forward": {"on": "todos", "has": "one", "label": "owner"},
            "reverse": {"on": "people", "has": "many", "label": "todos"}});
        doc["links"]["third"] = json!({
            "forward": {"on": "todos", "has": "one", "label": "title"},
            "reverse": {"on": "$users", "has": "many", "label": "todos"}});
        let schema = Schema::from_dsl_json(&doc).unwrap();
        let problems: Vec<String> = schema.validate().iter().map(ToString::to_string).collect();
        expect![[r#"
            [
                "links.second.forward: `todos->owner` is claimed twice: by link `second` (forward) and by link `todoOwner` (forward)",
                "links.second.reverse.on: link `second` points at `people`, which is not an entity of this schema",
                "links.third.forward: `todos->title` is claimed twice: by link `third` (forward) and by attribute `todos.title`",
            ]
        "#]]
        .assert_debug_eq(&problems);
    }

    #[test]
    fn bad_link_shapes_are_named() {
        let mut doc = todos();
        doc["links"]["todoOwner"]["forward"]["has"] = json!("several");
        let err = Schema::from_dsl_json(&doc).unwrap_err();
        expect![[r#"links.todoOwner.forward.has: expected "one" or "many", found "several""#]]
            .assert_eq(&err.to_string());
    }
}
