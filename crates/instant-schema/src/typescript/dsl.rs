//! The `i` schema builder of `@instantdb/core@1.0.67`, re-implemented over [`Value`]s.
//!
//! Mirrors `dist/esm/schema.js` and `schemaTypes.js` step by step, because the output must
//! equal `JSON.stringify` of the real objects, key order included.

use std::rc::Rc;

use super::ops::{
    get_property, object_with_class, own_entries, plain_object, spread_into, to_property_key,
    OpError, OpResult,
};
use super::value::{BuilderFn, Class, Function, Method, Object, PropertyMap, Value};

/// Keys that an ordinary object inherits from `Object.prototype`. The library indexes links
/// with `index[name] ||= {}` on plain objects, which for these names reaches the shared
/// prototype instead of creating a fresh entry; rather than imitate that, we refuse them.
const OBJECT_PROTOTYPE_KEYS: &[&str] = &[
    "__proto__",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
    "constructor",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toLocaleString",
    "toString",
    "valueOf",
];

/// The `i` object.
pub(crate) fn schema_builder() -> Value {
    let mut props = PropertyMap::new();
    for function in BuilderFn::ALL {
        props.insert(
            function.name(),
            Value::Function(Rc::new(Function::Builder(function))),
        );
    }
    Value::Object(Rc::new(
        Object::new(Class::SchemaBuilder, props).expect("the builder object is shallow"),
    ))
}

pub(crate) fn call_builder(function: BuilderFn, args: &[Value]) -> OpResult<Value> {
    let arg = |index: usize| args.get(index).cloned().unwrap_or(Value::Undefined);
    match function {
        BuilderFn::String => data_attr_def("string"),
        BuilderFn::Number => data_attr_def("number"),
        BuilderFn::Boolean => data_attr_def("boolean"),
        BuilderFn::Date => data_attr_def("date"),
        BuilderFn::Json | BuilderFn::Any => data_attr_def("json"),
        BuilderFn::Entity => {
            let attrs = arg(0);
            if !matches!(attrs, Value::Object(_)) {
                return Err(format!(
                    "`i.entity(...)` expects an object of attributes, got {}",
                    attrs.describe()
                )
                .into());
            }
            entity_def(attrs, plain_object(PropertyMap::new())?)
        }
        BuilderFn::Schema => {
            // function schema({ entities, links, rooms })
            let options = arg(0);
            if !matches!(options, Value::Object(_)) {
                return Err(format!(
                    "`i.schema(...)` expects an object `{{ entities, links, rooms }}`, got {}",
                    options.describe()
                )
                .into());
            }
            let entities = get_property(&options, "entities")?;
            let links = get_property(&options, "links")?;
            let rooms = get_property(&options, "rooms")?;
            let links = if links.is_nullish() {
                plain_object(PropertyMap::new())?
            } else {
                links
            };
            let rooms = if rooms.is_nullish() {
                plain_object(PropertyMap::new())?
            } else {
                rooms
            };
            let entities = enrich_entities_with_links(&entities, &links)?;
            schema_def(entities, links, rooms)
        }
        BuilderFn::Graph => {
            // function graph(entities, links): `rooms` stays undefined.
            let links = arg(1);
            if links.is_nullish() {
                return Err("`i.graph(entities, links)` needs a links object".into());
            }
            let entities = enrich_entities_with_links(&arg(0), &links)?;
            schema_def(entities, links, Value::Undefined)
        }
    }
}

pub(crate) fn call_method(receiver: &Rc<Object>, method: Method) -> OpResult<Value> {
    let this = Value::Object(Rc::clone(receiver));
    let field = |name: &str| get_property(&this, name);
    match method {
        Method::Optional | Method::ClientRequired => new_data_attr_def(
            field("valueType")?,
            Value::Bool(false),
            field("isIndexed")?,
            field("config")?,
        ),
        Method::Unique => {
            let mut config = PropertyMap::new();
            spread_into(&mut config, &field("config")?)?;
            config.insert("unique", Value::Bool(true));
            new_data_attr_def(
                field("valueType")?,
                field("required")?,
                field("isIndexed")?,
                plain_object(config)?,
            )
        }
        Method::Indexed => {
            let mut config = PropertyMap::new();
            spread_into(&mut config, &field("config")?)?;
            config.insert("indexed", Value::Bool(true));
            new_data_attr_def(
                field("valueType")?,
                field("required")?,
                Value::Bool(true),
                plain_object(config)?,
            )
        }
        Method::AsType => entity_def(field("attrs")?, field("links")?),
        Method::WithRoomSchema => schema_def(
            field("entities")?,
            field("links")?,
            plain_object(PropertyMap::new())?,
        ),
    }
}

/// `new DataAttrDef(valueType, true, false)` with the default config.
fn data_attr_def(value_type: &str) -> OpResult<Value> {
    let mut config = PropertyMap::new();
    config.insert("indexed", Value::Bool(false));
    config.insert("unique", Value::Bool(false));
    new_data_attr_def(
        Value::string(value_type),
        Value::Bool(true),
        Value::Bool(false),
        plain_object(config)?,
    )
}

/// `DataAttrDef`'s class fields are defined in declaration order, `metadata = {}` last.
fn new_data_attr_def(
    value_type: Value,
    required: Value,
    is_indexed: Value,
    config: Value,
) -> OpResult<Value> {
    let mut props = PropertyMap::new();
    props.insert("valueType", value_type);
    props.insert("required", required);
    props.insert("isIndexed", is_indexed);
    props.insert("config", config);
    props.insert("metadata", plain_object(PropertyMap::new())?);
    Ok(Value::Object(object_with_class(Class::DataAttrDef, props)?))
}

fn entity_def(attrs: Value, links: Value) -> OpResult<Value> {
    let mut props = PropertyMap::new();
    props.insert("attrs", attrs);
    props.insert("links", links);
    Ok(Value::Object(object_with_class(Class::EntityDef, props)?))
}

fn schema_def(entities: Value, links: Value, rooms: Value) -> OpResult<Value> {
    let mut props = PropertyMap::new();
    props.insert("entities", entities);
    props.insert("links", links);
    props.insert("rooms", rooms);
    Ok(Value::Object(object_with_class(
        Class::InstantSchemaDef,
        props,
    )?))
}

/// A name used as a key of the library's plain-object link index.
fn index_key(value: &Value, what: &str) -> OpResult<String> {
    if !matches!(value, Value::String(_) | Value::Number(_)) {
        return Err(format!("`{what}` must be a string, got {}", value.describe()).into());
    }
    let key = to_property_key(value)?;
    if OBJECT_PROTOTYPE_KEYS.contains(&key.as_str()) {
        return Err(format!(
            "`{what}` is `{key}`, a built-in JavaScript property name that \
             `@instantdb/core` cannot index reliably"
        )
        .into());
    }
    Ok(key)
}

/// One side of the link index: entity name -> label -> `{entityName, cardinality}`.
#[derive(Default)]
struct LinkIndex {
    by_entity: indexmap::IndexMap<String, PropertyMap>,
}

impl LinkIndex {
    fn ensure(&mut self, entity: &str) {
        self.by_entity.entry(entity.to_owned()).or_default();
    }

    fn set(&mut self, entity: &str, label: &str, value: Value) {
        self.by_entity
            .entry(entity.to_owned())
            .or_default()
            .insert(label, value);
    }
}

/// `enrichEntitiesWithLinks(entities, links)`.
fn enrich_entities_with_links(entities: &Value, links: &Value) -> OpResult<Value> {
    if !matches!(links, Value::Object(_) | Value::Array(_)) {
        return Err(format!(
            "`links` must be an object of link definitions, got {}",
            links.describe()
        )
        .into());
    }
    if !matches!(entities, Value::Object(_)) {
        return Err(format!(
            "`entities` must be an object of `i.entity(...)` definitions, got {}",
            entities.describe()
        )
        .into());
    }
    let mut forward_index = LinkIndex::default();
    let mut reverse_index = LinkIndex::default();
    for (link_name, link_def) in own_entries(links, false)? {
        let side = |name: &str| -> OpResult<Value> {
            let side = get_property(&link_def, name)
                .map_err(|error| error.context(&format!("link `{link_name}`")))?;
            if !matches!(side, Value::Object(_)) {
                return Err(format!(
                    "link `{link_name}`: `{name}` must be an object {{ on, has, label }}, got {}",
                    side.describe()
                )
                .into());
            }
            Ok(side)
        };
        let forward = side("forward")?;
        let reverse = side("reverse")?;
        let in_link = |error: OpError| error.context(&format!("link `{link_name}`"));
        let forward_on = get_property(&forward, "on")?;
        let reverse_on = get_property(&reverse, "on")?;
        let forward_on_key = index_key(&forward_on, "forward.on").map_err(in_link)?;
        let reverse_on_key = index_key(&reverse_on, "reverse.on").map_err(in_link)?;
        forward_index.ensure(&forward_on_key);
        reverse_index.ensure(&reverse_on_key);

        let forward_label =
            index_key(&get_property(&forward, "label")?, "forward.label").map_err(in_link)?;
        let mut forward_attr = PropertyMap::new();
        forward_attr.insert("entityName", reverse_on.clone());
        forward_attr.insert("cardinality", get_property(&forward, "has")?);
        forward_index.set(&forward_on_key, &forward_label, plain_object(forward_attr)?);

        let reverse_label =
            index_key(&get_property(&reverse, "label")?, "reverse.label").map_err(in_link)?;
        let mut reverse_attr = PropertyMap::new();
        reverse_attr.insert("entityName", forward_on.clone());
        reverse_attr.insert("cardinality", get_property(&reverse, "has")?);
        reverse_index.set(&reverse_on_key, &reverse_label, plain_object(reverse_attr)?);
    }

    // Object.fromEntries(Object.entries(entities).map(([name, def]) => [name,
    //   new EntityDef(def.attrs, { ...fwd[name], ...rev[name] })]))
    let mut enriched = PropertyMap::new();
    for (name, def) in own_entries(entities, false).map_err(|error| error.context("`entities`"))? {
        if !matches!(def, Value::Object(_)) {
            return Err(format!(
                "entity `{name}` must be an `i.entity(...)`, got {}",
                def.describe()
            )
            .into());
        }
        let attrs = get_property(&def, "attrs")?;
        let mut links = PropertyMap::new();
        for index in [&forward_index, &reverse_index] {
            if let Some(labels) = index.by_entity.get(&name) {
                for (label, value) in labels.iter() {
                    links.insert(&label, value.clone());
                }
            }
        }
        enriched.insert(&name, entity_def(attrs, plain_object(links)?)?);
    }
    plain_object(enriched)
}
