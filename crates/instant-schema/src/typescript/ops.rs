//! JavaScript operations on [`Value`]s: property access, enumeration, conversions and
//! `JSON.stringify`. Errors are plain messages; the evaluator adds the source location.

use std::rc::Rc;

use super::value::{
    number_to_json, number_to_string, Class, Function, Method, Object, Opaque, PropertyMap,
    TooDeep, Value,
};

pub(crate) type OpResult<T> = Result<T, OpError>;

/// Why an operation failed.
#[derive(Debug)]
pub(crate) enum OpError {
    /// A plain message; the evaluator prefixes the location of the expression at hand.
    Message(String),
    /// An [`Opaque`] value was used; it carries its own explanation.
    Opaque(Rc<Opaque>),
}

impl From<String> for OpError {
    fn from(message: String) -> Self {
        OpError::Message(message)
    }
}

impl From<&str> for OpError {
    fn from(message: &str) -> Self {
        OpError::Message(message.to_owned())
    }
}

impl OpError {
    /// Prefixes a plain message with what was being done; opaque errors stay as they are.
    pub fn context(self, prefix: &str) -> OpError {
        match self {
            OpError::Message(message) => OpError::Message(format!("{prefix}: {message}")),
            opaque => opaque,
        }
    }
}

pub(crate) fn too_deep(_: TooDeep) -> OpError {
    OpError::Message(format!(
        "value nested more than {} levels deep",
        super::value::MAX_VALUE_DEPTH
    ))
}

/// `value[key]` for a key that is already a property key string.
pub(crate) fn get_property(value: &Value, key: &str) -> OpResult<Value> {
    match value {
        Value::Undefined | Value::Null => {
            Err(format!("cannot read property `{key}` of {}", value.describe()).into())
        }
        Value::Bool(_) | Value::Number(_) | Value::Function(_) => Ok(Value::Undefined),
        Value::String(text) => {
            if key == "length" {
                return Ok(Value::Number(text.encode_utf16().count() as f64));
            }
            match key.parse::<usize>() {
                Ok(index) if index.to_string() == key => string_code_unit(text, index),
                _ => Ok(Value::Undefined),
            }
        }
        Value::Array(array) => {
            if key == "length" {
                return Ok(Value::Number(array.elements.len() as f64));
            }
            match key.parse::<usize>() {
                Ok(index) if index.to_string() == key => Ok(array
                    .elements
                    .get(index)
                    .cloned()
                    .unwrap_or(Value::Undefined)),
                _ => Ok(Value::Undefined),
            }
        }
        Value::Object(object) => {
            if let Some(own) = object.props.get(key) {
                return Ok(own.clone());
            }
            if let Some(method) = Method::of_class(object.class)
                .iter()
                .find(|method| method.name() == key)
            {
                return Ok(Value::Function(Rc::new(Function::Method {
                    receiver: Rc::clone(object),
                    method: *method,
                })));
            }
            if object.class == Class::InstantPackageNamespace {
                return Ok(Value::opaque(
                    None,
                    format!(
                        "`{key}` from an `@instantdb/*` package is not part of the schema DSL; \
                         only `i` can be evaluated without Node"
                    ),
                ));
            }
            Ok(Value::Undefined)
        }
        Value::Opaque(opaque) => Err(OpError::Opaque(Rc::clone(opaque))),
    }
}

/// One UTF-16 code unit of a string as a string, like `"abc"[1]`.
fn string_code_unit(text: &str, index: usize) -> OpResult<Value> {
    let mut units = 0usize;
    for ch in text.chars() {
        let width = ch.len_utf16();
        if index < units + width {
            if width == 1 {
                return Ok(Value::string(ch.encode_utf8(&mut [0; 4])));
            }
            return Err("indexing into a surrogate pair is not supported".into());
        }
        units += width;
    }
    Ok(Value::Undefined)
}

/// Own enumerable string-keyed properties, as `Object.entries`, object spread and
/// `Object.fromEntries` see them. `nullish_ok` selects spread semantics (`{...null}` is `{}`)
/// over `Object.entries(null)` (a TypeError).
pub(crate) fn own_entries(value: &Value, nullish_ok: bool) -> OpResult<Vec<(String, Value)>> {
    match value {
        Value::Undefined | Value::Null if nullish_ok => Ok(Vec::new()),
        Value::Undefined | Value::Null => {
            Err(format!("cannot convert {} to an object", value.describe()).into())
        }
        Value::Bool(_) | Value::Number(_) | Value::Function(_) => Ok(Vec::new()),
        Value::String(text) => {
            let mut entries = Vec::new();
            for (index, ch) in text.chars().enumerate() {
                if ch.len_utf16() != 1 {
                    return Err("spreading strings with characters outside the Basic \
                                Multilingual Plane is not supported"
                        .into());
                }
                entries.push((
                    index.to_string(),
                    Value::string(ch.encode_utf8(&mut [0; 4])),
                ));
            }
            Ok(entries)
        }
        Value::Array(array) => Ok(array
            .elements
            .iter()
            .enumerate()
            .map(|(index, element)| (index.to_string(), element.clone()))
            .collect()),
        Value::Object(object) => {
            if object.class == Class::InstantPackageNamespace {
                return Err("cannot enumerate an `@instantdb/*` module namespace".into());
            }
            Ok(object
                .props
                .iter()
                .map(|(key, value)| (key, value.clone()))
                .collect())
        }
        Value::Opaque(opaque) => Err(OpError::Opaque(Rc::clone(opaque))),
    }
}

/// The elements produced by iterating a value (`[...x]`, `f(...x)`, array patterns).
pub(crate) fn iterate(value: &Value) -> OpResult<Vec<Value>> {
    match value {
        Value::Array(array) => Ok(array.elements.clone()),
        // Strings iterate by code point.
        Value::String(text) => Ok(text
            .chars()
            .map(|ch| Value::string(ch.encode_utf8(&mut [0; 4])))
            .collect()),
        Value::Opaque(opaque) => Err(OpError::Opaque(Rc::clone(opaque))),
        other => Err(format!("{} is not iterable", other.describe()).into()),
    }
}

/// `ToPropertyKey` for computed keys and the link index.
pub(crate) fn to_property_key(value: &Value) -> OpResult<String> {
    to_js_string(value)
}

/// `String(value)` for the values this evaluator can convert.
pub(crate) fn to_js_string(value: &Value) -> OpResult<String> {
    match value {
        Value::Undefined => Ok("undefined".into()),
        Value::Null => Ok("null".into()),
        Value::Bool(value) => Ok(value.to_string()),
        Value::Number(number) => Ok(number_to_string(*number)),
        Value::String(text) => Ok(text.to_string()),
        Value::Array(array) => {
            // Array.prototype.join(","): nullish elements become empty strings.
            let mut parts = Vec::with_capacity(array.elements.len());
            for element in &array.elements {
                parts.push(if element.is_nullish() {
                    String::new()
                } else {
                    to_js_string(element)?
                });
            }
            Ok(parts.join(","))
        }
        Value::Object(object) if object.class != Class::InstantPackageNamespace => {
            if object.props.get("toString").is_some() || object.props.get("valueOf").is_some() {
                return Err(
                    "converting an object with its own `toString`/`valueOf` to a string needs real execution"
                        .into(),
                );
            }
            Ok("[object Object]".into())
        }
        Value::Opaque(opaque) => Err(OpError::Opaque(Rc::clone(opaque))),
        other => Err(format!("cannot convert {} to a string", other.describe()).into()),
    }
}

/// `ToNumber` for primitives.
pub(crate) fn to_number(value: &Value) -> OpResult<f64> {
    match value {
        Value::Undefined => Ok(f64::NAN),
        Value::Null => Ok(0.0),
        Value::Bool(value) => Ok(if *value { 1.0 } else { 0.0 }),
        Value::Number(number) => Ok(*number),
        Value::String(text) => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Ok(0.0);
            }
            // Decimal literals only; Rust would also accept "inf"/"nan", JavaScript does not.
            if trimmed
                .chars()
                .all(|ch| ch.is_ascii_digit() || ".eE+-".contains(ch))
            {
                Ok(trimmed.parse().unwrap_or(f64::NAN))
            } else if trimmed == "Infinity" || trimmed == "+Infinity" {
                Ok(f64::INFINITY)
            } else if trimmed == "-Infinity" {
                Ok(f64::NEG_INFINITY)
            } else {
                Err(format!(
                    "converting {} to a number is not supported",
                    value.describe()
                )
                .into())
            }
        }
        Value::Opaque(opaque) => Err(OpError::Opaque(Rc::clone(opaque))),
        other => Err(format!(
            "converting {} to a number is not supported",
            other.describe()
        )
        .into()),
    }
}

/// JavaScript truthiness.
pub(crate) fn is_truthy(value: &Value) -> OpResult<bool> {
    match value {
        Value::Undefined | Value::Null => Ok(false),
        Value::Bool(value) => Ok(*value),
        Value::Number(number) => Ok(*number != 0.0 && !number.is_nan()),
        Value::String(text) => Ok(!text.is_empty()),
        Value::Array(_) | Value::Object(_) | Value::Function(_) => Ok(true),
        Value::Opaque(opaque) => Err(OpError::Opaque(Rc::clone(opaque))),
    }
}

/// `a === b`.
pub(crate) fn strict_equals(left: &Value, right: &Value) -> OpResult<bool> {
    Ok(match (left, right) {
        (Value::Opaque(opaque), _) | (_, Value::Opaque(opaque)) => {
            return Err(OpError::Opaque(Rc::clone(opaque)))
        }
        (Value::Undefined, Value::Undefined) | (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => a == b,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Array(a), Value::Array(b)) => Rc::ptr_eq(a, b),
        (Value::Object(a), Value::Object(b)) => Rc::ptr_eq(a, b),
        (Value::Function(a), Value::Function(b)) => Rc::ptr_eq(a, b),
        _ => false,
    })
}

/// `{...source}` onto `target`.
pub(crate) fn spread_into(target: &mut PropertyMap, source: &Value) -> OpResult<()> {
    for (key, value) in own_entries(source, true)? {
        target.insert(&key, value);
    }
    Ok(())
}

/// A plain object from properties, checking nesting depth.
pub(crate) fn plain_object(props: PropertyMap) -> OpResult<Value> {
    Value::object(Class::Plain, props).map_err(too_deep)
}

pub(crate) fn object_with_class(class: Class, props: PropertyMap) -> OpResult<Rc<Object>> {
    Object::new(class, props).map(Rc::new).map_err(too_deep)
}

/// `JSON.stringify` semantics: `None` is `undefined` (the property is left out).
pub(crate) fn to_json(value: &Value) -> OpResult<Option<serde_json::Value>> {
    Ok(Some(match value {
        Value::Undefined | Value::Function(_) => return Ok(None),
        Value::Null => serde_json::Value::Null,
        Value::Bool(value) => serde_json::Value::Bool(*value),
        Value::Number(number) => number_to_json(*number),
        Value::String(text) => serde_json::Value::String(text.to_string()),
        Value::Array(array) => serde_json::Value::Array(
            array
                .elements
                .iter()
                .map(|element| Ok(to_json(element)?.unwrap_or(serde_json::Value::Null)))
                .collect::<OpResult<_>>()?,
        ),
        Value::Object(object) => {
            if object.class == Class::InstantPackageNamespace {
                return Err("cannot serialise an `@instantdb/*` module namespace".into());
            }
            if let Some(Value::Function(_) | Value::Opaque(_)) = object.props.get("toJSON") {
                return Err("an object with a `toJSON` method needs real execution".into());
            }
            let mut map = serde_json::Map::new();
            for (key, value) in object.props.iter() {
                if let Some(json) = to_json(value)? {
                    map.insert(key, json);
                }
            }
            serde_json::Value::Object(map)
        }
        Value::Opaque(opaque) => return Err(OpError::Opaque(Rc::clone(opaque))),
    }))
}
