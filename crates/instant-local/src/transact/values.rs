//! JSON value helpers that reproduce how the server stores and prints values: Postgres `jsonb`
//! (key order, text output, deep merge), the UUID coercion of transaction steps, Clojure's
//! printer (used in some error texts) and the checked data types.

pub(crate) use crate::dates::parse_date_ms;
use serde_json::{Map, Value};

/// A canonical lowercase UUID when `text` is one (36 characters, dashes at 8/13/18/23, hex
/// elsewhere, any case): the server turns every such string of a transaction into a UUID.
pub fn as_uuid(text: &str) -> Option<String> {
    is_uuid_text(text).then(|| text.to_ascii_lowercase())
}

/// Whether [`as_uuid`] accepts `text`, without making the canonical copy.
pub fn is_uuid_text(text: &str) -> bool {
    // What each of the 36 positions admits: a hex digit, or the dash at 8, 13, 18 and 23.
    const DASH: [bool; 36] = {
        let mut dash = [false; 36];
        dash[8] = true;
        dash[13] = true;
        dash[18] = true;
        dash[23] = true;
        dash
    };
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().zip(DASH).all(|(byte, dash)| {
            if dash {
                *byte == b'-'
            } else {
                byte.is_ascii_hexdigit()
            }
        })
}

/// The value as it is stored: UUID strings lowercased (keys included) and object keys in
/// `jsonb` order (shorter keys first, then bytewise), so that equal values have equal text.
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::String(text) => match as_uuid(text) {
            Some(uuid) => Value::String(uuid),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map
                .iter()
                .map(|(key, item)| {
                    let key = as_uuid(key).unwrap_or_else(|| key.clone());
                    (key, canonical(item))
                })
                .collect();
            entries.sort_by(|(a, _), (b, _)| jsonb_key_order(a, b));
            // A key repeated after UUID coercion keeps its last value, as jsonb does.
            let mut out = Map::new();
            for (key, item) in entries {
                out.insert(key, item);
            }
            Value::Object(out)
        }
        _ => value.clone(),
    }
}

fn jsonb_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// The stored text of a value (the `value` column): compact JSON of [`canonical`], written
/// straight from the value (no canonical copy is built: every write goes through here).
pub fn storage_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(true) => "true".to_string(),
        Value::Bool(false) => "false".to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) if !is_uuid_text(text) => {
            serde_json::to_string(text).unwrap_or_default()
        }
        _ => {
            let mut out = Vec::with_capacity(64);
            write_canonical(value, &mut out);
            // Only JSON text is written, which is UTF-8.
            String::from_utf8(out).unwrap_or_default()
        }
    }
}

/// Compact JSON of [`canonical`]`(value)`.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::String(text) => write_canonical_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(std::borrow::Cow<'_, str>, &Value)> = map
                .iter()
                .map(|(key, item)| {
                    let key = match as_uuid(key) {
                        Some(uuid) => uuid.into(),
                        None => key.as_str().into(),
                    };
                    (key, item)
                })
                .collect();
            // Stable: of keys equal after UUID coercion, the last one is kept, as jsonb does.
            entries.sort_by(|(a, _), (b, _)| jsonb_key_order(a, b));
            out.push(b'{');
            let mut first = true;
            for (index, (key, item)) in entries.iter().enumerate() {
                if entries.get(index + 1).is_some_and(|(next, _)| next == key) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                write_canonical_string(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        // Writing JSON into memory cannot fail.
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn write_canonical_string(text: &str, out: &mut Vec<u8>) {
    if is_uuid_text(text) {
        out.push(b'"');
        out.extend(text.bytes().map(|byte| byte.to_ascii_lowercase()));
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// Postgres' text output of a `jsonb` value (`{"a": 1, "b": [1, 2]}`), used where the server
/// quotes a value from a Postgres error detail.
pub fn jsonb_text(value: &Value) -> String {
    let mut out = String::new();
    write_jsonb(&canonical(value), &mut out);
    out
}

fn write_jsonb(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_jsonb(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push_str(": ");
                write_jsonb(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

/// Postgres shortens each column of a "Failing row contains (…)" detail to 64 bytes plus
/// `...`; the server parses the value back when it was not shortened.
pub fn error_detail_value(value: &Value) -> (Value, bool) {
    let text = jsonb_text(value);
    if text.len() <= 64 {
        return (canonical(value), false);
    }
    let mut end = 64;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (Value::String(format!("{}...", &text[..end])), true)
}

/// The JSON type name the server reports (`json-type-of-clj`).
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Bit of the attribute's inferred types (`attr-model/types` order).
pub fn inferred_type_bit(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Bool(_) => 4,
        _ => 8,
    }
}

pub const INFERRED_TYPE_NAMES: [&str; 4] = ["number", "string", "boolean", "json"];

pub fn inferred_bits_from_json(text: Option<&Value>) -> u8 {
    let mut bits = 0;
    if let Some(Value::Array(names)) = text {
        for name in names {
            if let Some(position) = INFERRED_TYPE_NAMES
                .iter()
                .position(|known| Some(*known) == name.as_str())
            {
                bits |= 1 << position;
            }
        }
    }
    bits
}

pub fn inferred_bits_to_json(bits: u8) -> String {
    let names: Vec<&str> = INFERRED_TYPE_NAMES
        .iter()
        .enumerate()
        .filter(|(position, _)| bits & (1 << position) != 0)
        .map(|(_, name)| *name)
        .collect();
    serde_json::to_string(&names).unwrap_or_default()
}

/// Clojure's printed form of a value (`pr-str`), which some server messages embed.
pub fn pr_str(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_string(),
        Value::String(text) => match as_uuid(text) {
            Some(uuid) => format!("#uuid \"{uuid}\""),
            None => serde_json::to_string(text).unwrap_or_default(),
        },
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(pr_str).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(key, item)| format!(
                    "{} {}",
                    serde_json::to_string(key).unwrap_or_default(),
                    pr_str(item)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Whether a JSON string (or key) anywhere in the value holds a NUL character, which `jsonb`
/// cannot store.
pub fn has_null_byte(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(has_null_byte),
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| key.contains('\0') || has_null_byte(item)),
        _ => false,
    }
}

/// `jsonb_deep_merge_many`: each patch merges into the accumulated value.
pub fn deep_merge(base: Option<Value>, patch: &Value) -> Value {
    match (base, patch) {
        (Some(Value::Object(mut base)), Value::Object(patch)) => {
            for (key, item) in patch {
                match (base.get_mut(key), item) {
                    (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                        let merged = deep_merge(Some(existing.take()), item);
                        *existing = merged;
                    }
                    (_, Value::Null) => {
                        base.shift_remove(key);
                    }
                    _ => {
                        base.insert(key.clone(), item.clone());
                    }
                }
            }
            Value::Object(base)
        }
        _ => patch.clone(),
    }
}

/// Whether a value passes the `checked_data_type` constraint, and the number to index it by
/// (epoch milliseconds for dates).
pub fn check_data_type(data_type: &str, value: &Value) -> Option<Option<f64>> {
    match (data_type, value) {
        (_, Value::Null) => Some(None),
        ("string", Value::String(_)) => Some(None),
        ("number", Value::Number(number)) => Some(number.as_f64()),
        ("boolean", Value::Bool(_)) => Some(None),
        ("date", Value::Number(number)) => number.as_f64().filter(|n| n.is_finite()).map(Some),
        ("date", Value::String(text)) => parse_date_ms(text).map(Some),
        ("string" | "number" | "boolean" | "date", _) => None,
        // An unknown type name never comes from the catalogue; accept rather than refuse data.
        _ => Some(value.as_f64()),
    }
}

/// Rough `pg_column_size` of a `jsonb` value: the indexed-value limit is 1024 bytes.
pub fn jsonb_size(value: &Value, text_len: usize) -> usize {
    match value {
        // varlena header, container header and one entry around the string bytes.
        Value::String(text) => text.len() + 12,
        _ => text_len + 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deep_merge_follows_jsonb_deep_merge() {
        let base = json!({"a": {"b": 1, "c": 2}, "d": 3, "e": [1]});
        let merged = deep_merge(
            Some(base),
            &json!({"a": {"c": null, "x": {"y": null}}, "d": null, "e": {"f": 1}}),
        );
        assert_eq!(
            merged,
            json!({"a": {"b": 1, "x": {"y": null}}, "e": {"f": 1}})
        );
        assert_eq!(
            deep_merge(Some(json!(5)), &json!({"a": null})),
            json!({"a": null})
        );
        assert_eq!(deep_merge(None, &json!({"a": 1})), json!({"a": 1}));
        assert_eq!(deep_merge(Some(json!({"a": 1})), &json!("s")), json!("s"));
    }

    #[test]
    fn texts_match_postgres_and_clojure() {
        let value = json!({"bb": [1, "6F9619FF-8B86-D011-B42D-00C04FC964FF"], "a": null});
        assert_eq!(
            jsonb_text(&value),
            r#"{"a": null, "bb": [1, "6f9619ff-8b86-d011-b42d-00c04fc964ff"]}"#
        );
        assert_eq!(
            storage_text(&value),
            r#"{"a":null,"bb":[1,"6f9619ff-8b86-d011-b42d-00c04fc964ff"]}"#
        );
        assert_eq!(
            pr_str(&json!([
                "6f9619ff-8b86-d011-b42d-00c04fc964ff",
                "x",
                1,
                null
            ])),
            "[#uuid \"6f9619ff-8b86-d011-b42d-00c04fc964ff\" \"x\" 1 nil]"
        );
        let long = json!("a".repeat(100));
        let (shown, truncated) = error_detail_value(&long);
        assert!(truncated);
        assert_eq!(shown, json!(format!("\"{}...", "a".repeat(63))));
    }

    #[test]
    fn storage_text_is_the_compact_json_of_the_canonical_value() {
        let values = [
            json!(null),
            json!(true),
            json!(-0.5),
            json!(12345678901234_i64),
            json!("plain \"quoted\" \\ text\n\u{1}é"),
            json!("6F9619FF-8B86-D011-B42D-00C04FC964FF"),
            json!([]),
            json!({}),
            json!([1, "x", [null, {"b": 1, "a": 2}]]),
            json!({"zz": 1, "b": {"dd": [1.5, "6F9619FF-8B86-D011-B42D-00C04FC964FF"], "c": null}, "a": "é"}),
            // Two keys equal once UUIDs are lowercased: the last one wins.
            json!({"6F9619FF-8B86-D011-B42D-00C04FC964FF": 1, "x": 2, "6f9619ff-8b86-d011-b42d-00c04fc964ff": 3}),
            json!({"6f9619ff-8b86-d011-b42d-00c04fc964ff": 3, "6F9619FF-8B86-D011-B42D-00C04FC964FF": 1}),
        ];
        for value in values {
            let expected = match &value {
                Value::Number(number) => number.to_string(),
                other => serde_json::to_string(&canonical(other)).unwrap(),
            };
            assert_eq!(storage_text(&value), expected, "{value}");
        }
        assert_eq!(
            storage_text(
                &json!({"6F9619FF-8B86-D011-B42D-00C04FC964FF": 1, "6f9619ff-8b86-d011-b42d-00c04fc964ff": 3})
            ),
            r#"{"6f9619ff-8b86-d011-b42d-00c04fc964ff":3}"#
        );
    }

    #[test]
    fn dates_parse_like_timestamptz() {
        assert_eq!(parse_date_ms("1970-01-01"), Some(0.0));
        assert_eq!(
            parse_date_ms("2024-02-29T12:00:00Z"),
            Some(1_709_208_000_000.0)
        );
        assert_eq!(
            parse_date_ms("2024-02-29T14:00:00.5+02:00"),
            Some(1_709_208_000_500.0)
        );
        assert_eq!(parse_date_ms("2023-02-29"), None);
        assert_eq!(parse_date_ms("yesterday-ish"), None);
        assert_eq!(check_data_type("date", &json!("nope")), None);
        assert_eq!(check_data_type("number", &json!(2)), Some(Some(2.0)));
        assert_eq!(check_data_type("string", &json!([1])), None);
    }
}
