//! JavaScript values as far as a declarative schema module needs them.
//!
//! The model follows the parts of JavaScript semantics that decide what
//! `JSON.stringify` prints: own-property key order (array-index keys first, ascending, then
//! string keys in insertion order), `undefined` and functions being skipped, and number
//! formatting. Values are immutable once built (the evaluator supports no assignment), so
//! sharing them through `Rc` is equivalent to JavaScript's reference semantics.

use std::collections::BTreeMap;
use std::rc::Rc;

use indexmap::IndexMap;

use super::SourceLocation;

/// Deepest object/array nesting a value may have; keeps conversion and drop recursion bounded.
pub(crate) const MAX_VALUE_DEPTH: usize = 512;

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(Rc<str>),
    Array(Rc<Array>),
    Object(Rc<Object>),
    Function(Rc<Function>),
    /// A value this evaluator cannot know (for example a binding imported from an npm
    /// package). Holding or passing it around is fine; any use of its contents fails with
    /// the stored reason.
    Opaque(Rc<Opaque>),
}

#[derive(Debug)]
pub(crate) struct Array {
    pub elements: Vec<Value>,
    depth: usize,
}

/// Which constructor produced an object. Own properties are what `JSON.stringify` sees;
/// the class only decides which prototype methods exist (`.optional()`, `.asType()`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Plain,
    /// `@instantdb/core`'s `DataAttrDef` (`i.string()` and friends).
    DataAttrDef,
    /// `EntityDef` (`i.entity(...)`).
    EntityDef,
    /// `InstantSchemaDef` (`i.schema(...)`, `i.graph(...)`).
    InstantSchemaDef,
    /// The `i` object exported by the `@instantdb/*` packages.
    SchemaBuilder,
    /// `import * as ns from '@instantdb/...'`: only `ns.i` is known.
    InstantPackageNamespace,
}

#[derive(Debug)]
pub(crate) struct Object {
    pub class: Class,
    pub props: PropertyMap,
    depth: usize,
}

/// Callable values. Only the schema DSL can actually be called; everything else exists so
/// that it behaves like a function for `JSON.stringify` (skipped) and fails clearly when
/// called.
#[derive(Debug)]
pub(crate) enum Function {
    /// `i.string`, `i.schema`, ...
    Builder(BuilderFn),
    /// A prototype method read from an instance, bound to it (`attr.optional`).
    Method {
        receiver: Rc<Object>,
        method: Method,
    },
    /// A function or class written in the module itself; calling it needs real execution.
    Local { description: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuilderFn {
    Graph,
    Schema,
    Entity,
    String,
    Number,
    Boolean,
    Date,
    Json,
    Any,
}

impl BuilderFn {
    pub const ALL: [BuilderFn; 9] = [
        BuilderFn::Graph,
        BuilderFn::Schema,
        BuilderFn::Entity,
        BuilderFn::String,
        BuilderFn::Number,
        BuilderFn::Boolean,
        BuilderFn::Date,
        BuilderFn::Json,
        BuilderFn::Any,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BuilderFn::Graph => "graph",
            BuilderFn::Schema => "schema",
            BuilderFn::Entity => "entity",
            BuilderFn::String => "string",
            BuilderFn::Number => "number",
            BuilderFn::Boolean => "boolean",
            BuilderFn::Date => "date",
            BuilderFn::Json => "json",
            BuilderFn::Any => "any",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    // DataAttrDef
    Optional,
    ClientRequired,
    Unique,
    Indexed,
    // EntityDef
    AsType,
    // InstantSchemaDef
    WithRoomSchema,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Optional => "optional",
            Method::ClientRequired => "clientRequired",
            Method::Unique => "unique",
            Method::Indexed => "indexed",
            Method::AsType => "asType",
            Method::WithRoomSchema => "withRoomSchema",
        }
    }

    /// The prototype methods of a class, as `@instantdb/core@1.0.67` defines them.
    pub fn of_class(class: Class) -> &'static [Method] {
        match class {
            Class::DataAttrDef => &[
                Method::ClientRequired,
                Method::Optional,
                Method::Unique,
                Method::Indexed,
            ],
            Class::EntityDef => &[Method::AsType],
            Class::InstantSchemaDef => &[Method::WithRoomSchema],
            Class::Plain | Class::SchemaBuilder | Class::InstantPackageNamespace => &[],
        }
    }
}

#[derive(Debug)]
pub(crate) struct Opaque {
    /// Where the value came from (an import statement, say); `None` reports the use site.
    pub origin: Option<SourceLocation>,
    pub kind: OpaqueKind,
}

#[derive(Debug)]
pub(crate) enum OpaqueKind {
    /// A binding imported from an npm package other than `@instantdb/*`.
    PackageImport { package: String },
    /// Anything else; the message says what and why.
    Unavailable { message: String },
}

/// Own properties in JavaScript enumeration order: array-index keys ascending, then the
/// other string keys in insertion order. Overwriting a key keeps its position.
#[derive(Debug, Default, Clone)]
pub(crate) struct PropertyMap {
    indices: BTreeMap<u32, Value>,
    named: IndexMap<String, Value>,
}

impl PropertyMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key: &str, value: Value) {
        match array_index(key) {
            Some(index) => {
                self.indices.insert(index, value);
            }
            None => {
                if let Some(slot) = self.named.get_mut(key) {
                    *slot = value;
                } else {
                    self.named.insert(key.to_owned(), value);
                }
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match array_index(key) {
            Some(index) => self.indices.get(&index),
            None => self.named.get(key),
        }
    }

    /// Entries in enumeration order.
    pub fn iter(&self) -> impl Iterator<Item = (String, &Value)> {
        self.indices
            .iter()
            .map(|(index, value)| (index.to_string(), value))
            .chain(self.named.iter().map(|(key, value)| (key.clone(), value)))
    }
}

/// A canonical array index ("0", "17", never "01" or "-1"), below 2^32 - 1.
fn array_index(key: &str) -> Option<u32> {
    let bytes = key.as_bytes();
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    let number: u64 = key.parse().ok()?;
    (number < u64::from(u32::MAX)).then_some(number as u32)
}

/// Building a value deeper than [`MAX_VALUE_DEPTH`].
#[derive(Debug)]
pub(crate) struct TooDeep;

impl Value {
    pub fn string(text: &str) -> Value {
        Value::String(Rc::from(text))
    }

    pub fn object(class: Class, props: PropertyMap) -> Result<Value, TooDeep> {
        Ok(Value::Object(Rc::new(Object::new(class, props)?)))
    }

    pub fn array(elements: Vec<Value>) -> Result<Value, TooDeep> {
        let depth = 1 + elements.iter().map(Value::depth).max().unwrap_or(0);
        if depth > MAX_VALUE_DEPTH {
            return Err(TooDeep);
        }
        Ok(Value::Array(Rc::new(Array { elements, depth })))
    }

    pub fn opaque(origin: Option<SourceLocation>, message: String) -> Value {
        Value::Opaque(Rc::new(Opaque {
            origin,
            kind: OpaqueKind::Unavailable { message },
        }))
    }

    fn depth(&self) -> usize {
        match self {
            Value::Array(array) => array.depth,
            Value::Object(object) => object.depth,
            _ => 0,
        }
    }

    pub fn is_nullish(&self) -> bool {
        matches!(self, Value::Undefined | Value::Null)
    }

    /// `typeof value`, for messages and the `typeof` operator.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Undefined => "undefined",
            Value::Null => "object",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) | Value::Object(_) | Value::Opaque(_) => "object",
            Value::Function(_) => "function",
        }
    }

    /// A short human description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Undefined => "undefined".into(),
            Value::Null => "null".into(),
            Value::Bool(value) => format!("boolean {value}"),
            Value::Number(number) => format!("number {}", number_to_string(*number)),
            Value::String(text) => format!("string {:?}", truncate(text, 40)),
            Value::Array(_) => "an array".into(),
            Value::Object(object) => match object.class {
                Class::Plain => "an object".into(),
                Class::DataAttrDef => "an attribute (`i.string()`-like)".into(),
                Class::EntityDef => "an entity (`i.entity(...)`)".into(),
                Class::InstantSchemaDef => "a schema (`i.schema(...)`)".into(),
                Class::SchemaBuilder => "the `i` schema builder".into(),
                Class::InstantPackageNamespace => "an `@instantdb/*` module namespace".into(),
            },
            Value::Function(_) => "a function".into(),
            Value::Opaque(_) => "an unknown value".into(),
        }
    }
}

impl Object {
    pub fn new(class: Class, props: PropertyMap) -> Result<Object, TooDeep> {
        let depth = 1 + props
            .iter()
            .map(|(_, value)| value.depth())
            .max()
            .unwrap_or(0);
        if depth > MAX_VALUE_DEPTH {
            return Err(TooDeep);
        }
        Ok(Object {
            class,
            props,
            depth,
        })
    }
}

pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

/// `Number.prototype.toString()` (radix 10), as used for property keys and templates.
pub(crate) fn number_to_string(number: f64) -> String {
    if number.is_nan() {
        return "NaN".into();
    }
    if number == 0.0 {
        return "0".into();
    }
    if number.is_infinite() {
        return if number > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .into();
    }
    if number < 0.0 {
        return format!("-{}", number_to_string(-number));
    }
    // Rust's `{:e}` prints the shortest round-tripping digits, like ECMAScript requires;
    // only the layout rules differ (ECMA-262 Number::toString, steps with k, n).
    let scientific = format!("{number:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let k = digits.len() as i64;
    let n = exponent + 1;
    if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let sign = if n > 0 { "+" } else { "-" };
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        format!("{first}{rest}e{sign}{}", (n - 1).abs())
    }
}

/// A JavaScript number as `JSON.stringify` writes it: non-finite numbers as `null`, and
/// integral numbers below 1e21 (which JavaScript prints as plain digits) as JSON integers
/// whenever they fit one, so the value equals what parsing Node's output gives.
pub(crate) fn number_to_json(number: f64) -> serde_json::Value {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if !number.is_finite() {
        return serde_json::Value::Null;
    }
    if number.fract() == 0.0 && number.abs() < 1e21 {
        // `-0.0 >= 0.0`, so negative zero prints as 0, as in JavaScript.
        if (0.0..TWO_POW_64).contains(&number) {
            return serde_json::Value::Number((number as u64).into());
        }
        if (-TWO_POW_63..0.0).contains(&number) {
            return serde_json::Value::Number((number as i64).into());
        }
    }
    serde_json::Number::from_f64(number)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_javascript() {
        let cases = [
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (-0.0, "0"),
            (123e-20, "1.23e-18"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (0.1 + 0.2, "0.30000000000000004"),
            (100.0, "100"),
            (1e20, "100000000000000000000"),
            (12.5, "12.5"),
            (-3.25, "-3.25"),
            (f64::INFINITY, "Infinity"),
        ];
        for (number, expected) in cases {
            assert_eq!(number_to_string(number), expected, "{number:?}");
        }
    }

    #[test]
    fn integral_numbers_become_json_integers() {
        let cases = [
            (-0.0, "0"),
            (3.0, "3"),
            (-7.0, "-7"),
            (9_007_199_254_740_994.0, "9007199254740994"),
            (1.5, "1.5"),
            (f64::NAN, "null"),
            (f64::NEG_INFINITY, "null"),
        ];
        for (number, expected) in cases {
            assert_eq!(number_to_json(number).to_string(), expected, "{number:?}");
        }
    }

    #[test]
    fn array_index_keys_sort_first() {
        let mut map = PropertyMap::new();
        for key in ["b", "10", "a", "2", "01", "4294967295", "4294967294"] {
            map.insert(key, Value::Null);
        }
        let keys: Vec<String> = map.iter().map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            ["2", "10", "4294967294", "b", "a", "01", "4294967295"]
        );
    }
}
