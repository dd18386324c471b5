//! Lenient typing of one raw legacy row (one JSON object) into the `Legacy*` structs.
//!
//! Field aliases of the old scripts are accepted (anchor §6.1: `contextId`/`context_id`,
//! `executionId`/`execution_id`, `runId`, `tools`, `toolResults`, …), wrong JSON types are
//! coerced or omitted and recorded as [`FieldIssue`]s, and a row that cannot be typed at all
//! becomes a [`Reject`]. Invalid JSON is not a row problem but a file problem:
//! [`RowError::Syntax`], which the reader turns into one error with the byte offset.

use std::borrow::Cow;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

use crate::dates;
use crate::model::*;
use crate::rules::Rule;

/// Why a row could not be typed.
#[derive(Debug)]
pub enum RowError {
    /// The text is not JSON: the whole input is malformed (offset within the row).
    Syntax {
        offset: usize,
        error: serde_json::Error,
    },
    /// Valid JSON that cannot become a legacy row: reported, not migrated.
    Reject(Reject),
}

/// Parses a UUID in its canonical 8-4-4-4-12 form, tolerating case and surrounding
/// whitespace. Returns the UUID and whether the text was not already canonical.
pub fn parse_uuid(text: &str) -> Option<(Uuid, bool)> {
    let trimmed = text.trim();
    let b = trimmed.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let id = Uuid::try_parse(trimmed).ok()?;
    let canonical = trimmed.len() == text.len() && !b.iter().any(u8::is_ascii_uppercase);
    Some((id, !canonical))
}

/// Byte offset of a serde_json error within a one-line text (line/column are 1-based).
pub fn error_offset(text: &[u8], error: &serde_json::Error) -> usize {
    let mut line = 1;
    let mut offset = 0;
    for (i, byte) in text.iter().enumerate() {
        if line == error.line() {
            offset = i;
            break;
        }
        if *byte == b'\n' {
            line += 1;
            offset = i + 1;
        }
    }
    (offset + error.column().saturating_sub(1)).min(text.len())
}

/// Types one row of `namespace`. `ordinal` is the row's 1-based position in its namespace (for
/// reports about rows without a usable id).
pub fn type_row(
    namespace: LegacyNamespace,
    text: &[u8],
    ordinal: u64,
) -> Result<LegacyRow, RowError> {
    type_row_with(namespace, text, ordinal, true)
}

/// [`type_row`] reduced to what the join reads ([`crate::transform::JoinBuilder`]): the id
/// and the dates, statuses, keys, counters and links it uses; every other attribute (the big
/// JSON ones first) comes back empty, and `issues` is not filled. Fast: the members are only
/// delimited, not validated; the caller must type every row it keeps with [`type_row`] later,
/// which validates it. A row this rejects is checked by the parser first, so a malformed row
/// is always a [`RowError::Syntax`], never a reject; otherwise the values it reads are the
/// ones [`type_row`] reads.
pub fn type_row_light(
    namespace: LegacyNamespace,
    text: &[u8],
    ordinal: u64,
) -> Result<LegacyRow, RowError> {
    let Some(fields) = split_members(text) else {
        return type_row_with(namespace, text, ordinal, false);
    };
    let mut typer = Typer {
        namespace,
        ordinal,
        copy_raw: false,
        issues: Vec::new(),
        ignored: Vec::new(),
    };
    match typer.row(&fields) {
        Ok(row) => Ok(row),
        Err(_) => type_row_with(namespace, text, ordinal, false),
    }
}

/// Delimits the members of a row object without validating their values. `None` when the
/// parser must decide: not an object, a member name with escapes, a string that may hold a
/// lone surrogate escape, a structure it does not recognise.
fn split_members(text: &[u8]) -> Option<Fields<'_>> {
    let mut i = skip_space(text, 0);
    if text.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(text, i + 1);
    let mut fields = Fields(Vec::with_capacity(16));
    if text.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if text.get(i) != Some(&b'"') {
                return None;
            }
            let end = i + 1 + memchr::memchr2(b'"', b'\\', &text[i + 1..])?;
            if text[end] != b'"' {
                return None;
            }
            let name = std::str::from_utf8(&text[i + 1..end]).ok()?;
            i = skip_space(text, end + 1);
            if text.get(i) != Some(&b':') {
                return None;
            }
            i = skip_space(text, i + 1);
            let start = i;
            i = skip_value(text, i)?;
            fields.set(Cow::Borrowed(name), Val::Text(&text[start..i]));
            i = skip_space(text, i);
            match text.get(i) {
                Some(b',') => i = skip_space(text, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_space(text, i) == text.len()).then_some(fields)
}

fn skip_space(text: &[u8], mut i: usize) -> usize {
    while matches!(text.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end of the value starting at `i`.
fn skip_value(text: &[u8], i: usize) -> Option<usize> {
    match text.get(i)? {
        b'"' => skip_string(text, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *text.get(j)? {
                    b'"' => {
                        j = skip_string(text, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let n = text[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(text.len() - i);
            (n > 0).then_some(i + n)
        }
    }
}

/// The end of the string starting at `i` (its opening quote); `None` when it may hold a lone
/// surrogate escape (the parser repairs and reports those).
fn skip_string(text: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        let k = j + memchr::memchr2(b'"', b'\\', &text[j..])?;
        if text[k] == b'"' {
            return Some(k + 1);
        }
        if text.get(k + 1) == Some(&b'u') {
            match hex4(text, k + 2) {
                Some(0xD800..=0xDBFF) => {
                    let low = text.get(k + 6) == Some(&b'\\')
                        && text.get(k + 7) == Some(&b'u')
                        && hex4(text, k + 8).is_some_and(|u| (0xDC00..=0xDFFF).contains(&u));
                    if !low {
                        return None;
                    }
                    j = k + 12;
                    continue;
                }
                Some(0xDC00..=0xDFFF) => return None,
                _ => {}
            }
        }
        j = k + 2;
    }
}

fn type_row_with(
    namespace: LegacyNamespace,
    text: &[u8],
    ordinal: u64,
    copy_raw: bool,
) -> Result<LegacyRow, RowError> {
    let Ok(text) = std::str::from_utf8(text) else {
        // Not UTF-8: the byte reader gives the parser's own error and position.
        return Err(not_an_object(namespace, text, ordinal));
    };
    let repaired;
    let source = match repair_lone_surrogates(text) {
        Some(fixed) => {
            repaired = fixed;
            repaired.as_str()
        }
        None => text,
    };
    let fields: Fields = match serde_json::from_str(source) {
        Ok(fields) => fields,
        Err(_) => return Err(not_an_object(namespace, source.as_bytes(), ordinal)),
    };
    let mut typer = Typer {
        namespace,
        ordinal,
        copy_raw,
        issues: Vec::new(),
        ignored: Vec::new(),
    };
    if source.len() == text.len() && !std::ptr::eq(source, text) {
        typer.note_replaced_surrogates(text, source, &fields);
    }
    typer.row(&fields)
}

/// Why `text` did not read as an object: a syntax error (with its offset) or valid JSON of
/// another type.
fn not_an_object(namespace: LegacyNamespace, text: &[u8], ordinal: u64) -> RowError {
    let error = match serde_json::from_slice::<serde::de::IgnoredAny>(text) {
        Err(error) => error,
        Ok(_) => match serde_json::from_slice::<IndexMap<String, &RawValue>>(text) {
            Err(error) if error.classify() != Category::Data => error,
            // Valid JSON of the wrong type.
            _ => {
                let kind = match text.iter().find(|b| !b.is_ascii_whitespace()) {
                    Some(b'[') => "an array",
                    Some(b'"') => "a string",
                    Some(b'n') => "null",
                    Some(b't' | b'f') => "a boolean",
                    _ => "a number",
                };
                return RowError::Reject(Reject {
                    namespace: namespace.to_string(),
                    id: format!("#{ordinal}"),
                    rule: Rule::RowNotObject,
                    detail: format!("row {ordinal} is {kind}, not an object"),
                });
            }
        },
    };
    RowError::Syntax {
        offset: error_offset(text, &error),
        error,
    }
}

/// The members of one row object in first-appearance order. A repeated member keeps its
/// first position and takes its last value (what an object reader that overwrites does).
struct Fields<'a>(Vec<(Cow<'a, str>, Val<'a>)>);

/// A member's value: validated by the parser ([`type_row`]), or only delimited
/// ([`type_row_light`], whose rows the full parse validates later).
#[derive(Clone, Copy)]
enum Val<'a> {
    Raw(&'a RawValue),
    Text(&'a [u8]),
}

impl<'a> Val<'a> {
    /// The value's JSON text. A delimited value that is not UTF-8 reads as `null`: the full
    /// parse reports that row as malformed.
    fn get(&self) -> &'a str {
        match self {
            Val::Raw(raw) => raw.get(),
            Val::Text(bytes) => std::str::from_utf8(bytes).unwrap_or("null"),
        }
    }
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<Val<'a>> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, raw)| *raw)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, Val<'a>)> + '_ {
        self.0.iter().map(|(key, raw)| (key.as_ref(), *raw))
    }

    fn set(&mut self, name: Cow<'a, str>, value: Val<'a>) {
        match self.0.iter_mut().find(|(key, _)| *key == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields<'de>, A::Error> {
                let mut fields = Fields(Vec::with_capacity(16));
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.set(key, Val::Raw(value));
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A member name, borrowed from the row text unless it holds escapes.
struct KeySeed;

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The text between the quotes of a JSON string literal without escapes (most strings):
/// exactly its value, no decoding needed.
fn plain_string(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (memchr::memchr(b'\\', inner.as_bytes()).is_none()).then_some(inner)
}

/// A link in the admin query's usual shape, `[]`, `null` or `[{"id":"…"},…]` with plain ids
/// that are not blank, read without the general parser; `None` for anything else.
fn plain_links(text: &str) -> Option<LinkIds> {
    let bytes = text.as_bytes();
    if text == "null" {
        return Some(Vec::new());
    }
    let mut i = skip_space(bytes, 0);
    if bytes.get(i) != Some(&b'[') {
        return None;
    }
    let mut ids = Vec::new();
    i = skip_space(bytes, i + 1);
    if bytes.get(i) == Some(&b']') {
        return (skip_space(bytes, i + 1) == bytes.len()).then_some(ids);
    }
    loop {
        let expect = |i: usize, byte: u8| -> Option<usize> {
            (bytes.get(i) == Some(&byte)).then(|| skip_space(bytes, i + 1))
        };
        i = expect(i, b'{')?;
        if bytes.get(i..i + 4) != Some(b"\"id\"") {
            return None;
        }
        i = expect(skip_space(bytes, i + 4), b':')?;
        let start = i;
        let end = skip_string(bytes, i)?;
        let id = plain_string(&text[start..end])?.trim();
        if id.is_empty() {
            return None;
        }
        ids.push(id.to_string());
        i = expect(skip_space(bytes, end), b'}')?;
        match bytes.get(i) {
            Some(b',') => i = skip_space(bytes, i + 1),
            Some(b']') => return (skip_space(bytes, i + 1) == bytes.len()).then_some(ids),
            _ => return None,
        }
    }
}

/// A JSON integer literal in canonical form (`0`, `-12`, `1735689600000`) that fits an i64:
/// read directly; anything else (fractions, exponents, huge values) goes through the parser.
fn integer_literal(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text).as_bytes();
    let canonical = !digits.is_empty()
        && digits.len() <= 18
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || (digits.len() == 1 && !text.starts_with('-')));
    canonical.then(|| text.parse().ok()).flatten()
}

/// `text` with every lone UTF-16 surrogate escape (`\ud800` without its low half, or a lone
/// `\udc00`) replaced by `\ufffd`, or `None` when there is none. JSON allows such escapes;
/// Unicode (and so every server that stores text as UTF-8) does not. The replacement has the
/// same length, so byte offsets are unchanged.
pub fn repair_lone_surrogates(text: &str) -> Option<String> {
    let positions = lone_surrogate_escapes(text.as_bytes());
    if positions.is_empty() {
        return None;
    }
    let mut bytes = text.as_bytes().to_vec();
    for at in positions {
        bytes[at..at + 6].copy_from_slice(b"\\ufffd");
    }
    // Six ASCII bytes replaced by six ASCII bytes: still UTF-8.
    Some(
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// The lone surrogate escapes of `text`, as written (for messages).
fn lone_surrogates(text: &str) -> Vec<&str> {
    lone_surrogate_escapes(text.as_bytes())
        .into_iter()
        .map(|at| &text[at..at + 6])
        .collect()
}

/// Where each lone surrogate escape starts (its backslash).
fn lone_surrogate_escapes(bytes: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(offset) = memchr::memchr(b'\\', &bytes[i..]) {
        let at = i + offset;
        if bytes.get(at + 1) != Some(&b'u') {
            // Any other escape, `\\` included, is two bytes.
            i = at + 2;
            continue;
        }
        let Some(unit) = hex4(bytes, at + 2) else {
            i = at + 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF => {
                let paired = bytes.get(at + 6) == Some(&b'\\')
                    && bytes.get(at + 7) == Some(&b'u')
                    && hex4(bytes, at + 8).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low));
                if paired {
                    i = at + 12;
                    continue;
                }
                found.push(at);
            }
            0xDC00..=0xDFFF => found.push(at),
            _ => {}
        }
        i = at + 6;
    }
    found
}

fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

struct Typer {
    namespace: LegacyNamespace,
    ordinal: u64,
    /// Copy the big JSON attributes (false: a join's view of the row).
    copy_raw: bool,
    issues: Vec<FieldIssue>,
    ignored: Vec<String>,
}

/// The attributes and links the join reads (everything else is skipped by a light typing).
fn joined(namespace: LegacyNamespace, name: &str) -> bool {
    let names: &[&str] = match namespace {
        LegacyNamespace::ContextContexts => {
            &["id", "createdAt", "key", "status", "currentExecution"]
        }
        LegacyNamespace::ContextEvents => &[
            "id",
            "createdAt",
            "status",
            "context",
            "contextId",
            "context_id",
            "whatsappMessages",
        ],
        LegacyNamespace::StoryExecutions => &[
            "id",
            "createdAt",
            "updatedAt",
            "status",
            "context",
            "contextId",
            "context_id",
            "trigger",
            "triggerEventId",
            "trigger_event_id",
            "reaction",
            "reactionEventId",
            "reaction_event_id",
        ],
        LegacyNamespace::StorySteps => &[
            "id",
            "createdAt",
            "updatedAt",
            "status",
            "iteration",
            "execution",
            "executionId",
            "execution_id",
            "eventId",
            "event_id",
            "continueLoop",
        ],
        LegacyNamespace::StoryParts => &["id", "step", "stepId", "step_id", "idx", "updatedAt"],
    };
    names.contains(&name)
}

/// Query-only expansions of reverse links: known, carried by the forward side, not reported.
const REVERSE_LABELS: &[&str] = &[
    "events",
    "executions",
    "currentOf",
    "executionsAsTrigger",
    "executionsAsReaction",
    "steps",
    "parts",
    "items",
];

impl Typer {
    fn row(&mut self, fields: &Fields) -> Result<LegacyRow, RowError> {
        Ok(match self.namespace {
            LegacyNamespace::ContextContexts => LegacyRow::Context(self.context(fields)?),
            LegacyNamespace::ContextEvents => LegacyRow::Event(self.event(fields)?),
            LegacyNamespace::StoryExecutions => LegacyRow::Execution(self.execution(fields)?),
            LegacyNamespace::StorySteps => LegacyRow::Step(self.step(fields)?),
            LegacyNamespace::StoryParts => LegacyRow::Part(self.part(fields)?),
        })
    }

    fn issue(&mut self, field: &str, rule: Rule, detail: String) {
        self.issues.push(FieldIssue {
            field: field.to_string(),
            rule,
            detail,
        });
    }

    fn take_issues(&mut self) -> Vec<FieldIssue> {
        if !self.ignored.is_empty() {
            let names = self.ignored.join(", ");
            self.issue("", Rule::AttributeIgnored, format!("not carried: {names}"));
            self.ignored.clear();
        }
        std::mem::take(&mut self.issues)
    }

    fn reject(&self, id: String, rule: Rule, detail: String) -> RowError {
        RowError::Reject(Reject {
            namespace: self.namespace.to_string(),
            id,
            rule,
            detail,
        })
    }

    fn value(raw: Val) -> Value {
        // A raw value was validated when the row was read, and its lone surrogates (the one
        // thing a validated raw value can hold that a `Value` cannot) were replaced: it parses.
        serde_json::from_str(raw.get()).unwrap_or(Value::Null)
    }

    /// Reports each member whose text held lone surrogate escapes (`original` is the row as
    /// read, `repaired` the same row with the escapes replaced, byte for byte aligned).
    fn note_replaced_surrogates(&mut self, original: &str, repaired: &str, fields: &Fields) {
        let base = repaired.as_ptr() as usize;
        let mut any = false;
        for (name, raw) in fields.iter() {
            let start = raw.get().as_ptr() as usize - base;
            let was = &original[start..start + raw.get().len()];
            let escapes = lone_surrogates(was);
            if !escapes.is_empty() {
                any = true;
                let field = if name.is_empty() { "\"\"" } else { name };
                self.issue(
                    name,
                    Rule::InvalidUnicodeReplaced,
                    format!(
                        "{field} held the lone surrogate escape {} (not Unicode): replaced by U+FFFD",
                        escapes.join(", ")
                    ),
                );
            }
        }
        if !any {
            // The escapes were in member names.
            self.issue(
                "",
                Rule::InvalidUnicodeReplaced,
                format!(
                    "a member name held the lone surrogate escape {} (not Unicode): replaced by U+FFFD",
                    lone_surrogates(original).join(", ")
                ),
            );
        }
    }

    fn own_id(&mut self, fields: &Fields) -> Result<Uuid, RowError> {
        let ordinal = self.ordinal;
        let Some(raw) = fields.get("id") else {
            return Err(self.reject(
                format!("#{ordinal}"),
                Rule::MissingId,
                format!("row {ordinal} has no id"),
            ));
        };
        let value = match plain_string(raw.get()) {
            Some(text) => Value::String(text.to_string()),
            None => Self::value(raw),
        };
        let text = match value {
            Value::String(text) if !text.trim().is_empty() => text,
            other => {
                return Err(self.reject(
                    format!("#{ordinal}"),
                    Rule::MissingId,
                    format!("row {ordinal}: id is {other}, not a non-empty string"),
                ))
            }
        };
        match parse_uuid(&text) {
            Some((id, normalised)) => {
                if normalised {
                    self.issue(
                        "id",
                        Rule::IdNormalised,
                        format!("id {text:?} read as {id}"),
                    );
                }
                Ok(id)
            }
            None => Err(self.reject(
                text.trim().to_string(),
                Rule::InvalidId,
                format!("id {text:?} is not a UUID"),
            )),
        }
    }

    fn date(&mut self, _field: &str, raw: Val) -> Option<LegacyDate> {
        let text = raw.get();
        if let Some(inner) = plain_string(text) {
            return Some(dates::classify_str(inner, text));
        }
        if let Some(millis) = integer_literal(text) {
            return Some(dates::classify_integer(millis, text));
        }
        match Self::value(raw) {
            Value::Null => None,
            value => Some(dates::classify(&value)),
        }
    }

    fn string(&mut self, field: &str, raw: Val) -> Option<String> {
        if let Some(text) = plain_string(raw.get()) {
            return Some(text.to_string());
        }
        match Self::value(raw) {
            Value::Null => None,
            Value::String(text) => Some(text),
            value @ (Value::Number(_) | Value::Bool(_)) => {
                let text = value.to_string();
                self.issue(
                    field,
                    Rule::WrongType,
                    format!("{field} {text} read as the string {text:?}"),
                );
                Some(text)
            }
            value => {
                let kind = if value.is_array() {
                    "an array"
                } else {
                    "an object"
                };
                self.issue(
                    field,
                    Rule::WrongType,
                    format!("{field} is {kind}, not a string: omitted"),
                );
                None
            }
        }
    }

    /// A scalar id attribute (`executionId`, `eventId`, …): trimmed, empty = absent.
    fn id_attr(&mut self, field: &str, raw: Val) -> Option<String> {
        let text = self.string(field, raw)?;
        let trimmed = text.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    }

    fn int(&mut self, field: &str, raw: Val) -> Option<i64> {
        if let Some(n) = integer_literal(raw.get()) {
            return Some(n);
        }
        let value = Self::value(raw);
        match &value {
            Value::Null => None,
            Value::Number(number) => {
                if let Some(n) = number.as_i64() {
                    return Some(n);
                }
                match number.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
                    _ => {
                        self.issue(
                            field,
                            Rule::WrongType,
                            format!("{field} {value} is not an integer: omitted"),
                        );
                        None
                    }
                }
            }
            Value::String(text) => match text.trim().parse::<i64>() {
                Ok(n) => {
                    self.issue(
                        field,
                        Rule::WrongType,
                        format!("{field} {value} read as the number {n}"),
                    );
                    Some(n)
                }
                Err(_) => {
                    self.issue(
                        field,
                        Rule::WrongType,
                        format!("{field} {value} is not a number: omitted"),
                    );
                    None
                }
            },
            _ => {
                self.issue(
                    field,
                    Rule::WrongType,
                    format!("{field} {value} is not a number: omitted"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, field: &str, raw: Val) -> Option<bool> {
        match Self::value(raw) {
            Value::Null => None,
            Value::Bool(b) => Some(b),
            value => {
                self.issue(
                    field,
                    Rule::WrongType,
                    format!("{field} {value} is not a boolean: omitted"),
                );
                None
            }
        }
    }

    fn raw(&self, raw: Val) -> Option<Raw> {
        match raw {
            Val::Raw(raw) if self.copy_raw && raw.get() != "null" => Some(minify(raw)),
            _ => None,
        }
    }

    /// A link as the admin query returns it (`[{id}]`, `{id}`, `"id"`, `["id"]`, `null`).
    fn links(&mut self, field: &str, raw: Val) -> LinkIds {
        if let Some(ids) = plain_links(raw.get()) {
            return ids;
        }
        let mut ids = Vec::new();
        let mut bad = false;
        let mut push = |value: &Value, ids: &mut Vec<String>| match value {
            Value::String(text) if !text.trim().is_empty() => ids.push(text.trim().to_string()),
            Value::Object(map) => match map.get("id") {
                Some(Value::String(text)) if !text.trim().is_empty() => {
                    ids.push(text.trim().to_string())
                }
                _ => bad = true,
            },
            _ => bad = true,
        };
        match Self::value(raw) {
            Value::Null => {}
            Value::Array(items) => items.iter().for_each(|item| push(item, &mut ids)),
            value => push(&value, &mut ids),
        }
        if bad {
            self.issue(
                field,
                Rule::WrongType,
                format!("link {field} holds entries without an id: ignored"),
            );
        }
        ids
    }

    fn ignore(&mut self, field: &str) {
        if !REVERSE_LABELS.contains(&field) {
            self.ignored.push(field.to_string());
        }
    }

    fn context(&mut self, fields: &Fields) -> Result<LegacyContext, RowError> {
        let id = self.own_id(fields)?;
        let mut row = LegacyContext {
            id,
            created_at: None,
            updated_at: None,
            key: None,
            status: None,
            content: None,
            current_execution: Vec::new(),
            issues: Vec::new(),
        };
        for (name, raw) in fields.iter() {
            if !self.copy_raw && !joined(self.namespace, name) {
                continue;
            }
            match name {
                "id" => {}
                "createdAt" => row.created_at = self.date(name, raw),
                "updatedAt" => row.updated_at = self.date(name, raw),
                "key" => row.key = self.string(name, raw),
                "status" => row.status = self.string(name, raw),
                "content" => row.content = self.raw(raw),
                "currentExecution" => row.current_execution = self.links(name, raw),
                _ => self.ignore(name),
            }
        }
        row.issues = self.take_issues();
        Ok(row)
    }

    fn event(&mut self, fields: &Fields) -> Result<LegacyEvent, RowError> {
        let id = self.own_id(fields)?;
        let mut row = LegacyEvent {
            id,
            channel: None,
            created_at: None,
            kind: None,
            content: None,
            status: None,
            context: Vec::new(),
            execution: Vec::new(),
            whatsapp_messages: Vec::new(),
            emails: Vec::new(),
            issues: Vec::new(),
        };
        let mut context_attr = None;
        let mut execution_attr = None;
        for (name, raw) in fields.iter() {
            if !self.copy_raw && !joined(self.namespace, name) {
                continue;
            }
            match name {
                "id" => {}
                "channel" => row.channel = self.string(name, raw),
                "createdAt" => row.created_at = self.date(name, raw),
                "type" => row.kind = self.string(name, raw),
                "content" => row.content = self.raw(raw),
                "status" => row.status = self.string(name, raw),
                "context" => row.context = self.links(name, raw),
                "execution" => row.execution = self.links(name, raw),
                "whatsappMessages" => row.whatsapp_messages = self.links(name, raw),
                "emails" => row.emails = self.links(name, raw),
                "contextId" | "context_id" => {
                    first(&mut context_attr, self.id_attr(name, raw), name)
                }
                "executionId" | "execution_id" => {
                    first(&mut execution_attr, self.id_attr(name, raw), name)
                }
                _ => self.ignore(name),
            }
        }
        self.link_fallback(&mut row.context, context_attr, "context");
        self.link_fallback(&mut row.execution, execution_attr, "execution");
        row.issues = self.take_issues();
        Ok(row)
    }

    fn execution(&mut self, fields: &Fields) -> Result<LegacyExecution, RowError> {
        let id = self.own_id(fields)?;
        let mut row = LegacyExecution {
            id,
            created_at: None,
            updated_at: None,
            status: None,
            workflow_run_id: None,
            context: Vec::new(),
            trigger: Vec::new(),
            reaction: Vec::new(),
            issues: Vec::new(),
        };
        let (mut context_attr, mut trigger_attr, mut reaction_attr) = (None, None, None);
        let mut run_ids: [Option<String>; 3] = [None, None, None];
        for (name, raw) in fields.iter() {
            if !self.copy_raw && !joined(self.namespace, name) {
                continue;
            }
            match name {
                "id" => {}
                "createdAt" => row.created_at = self.date(name, raw),
                "updatedAt" => row.updated_at = self.date(name, raw),
                "status" => row.status = self.string(name, raw),
                "workflowRunId" => run_ids[0] = self.id_attr(name, raw),
                "runId" => run_ids[1] = self.id_attr(name, raw),
                "workflow_run_id" => run_ids[2] = self.id_attr(name, raw),
                "context" => row.context = self.links(name, raw),
                "trigger" => row.trigger = self.links(name, raw),
                "reaction" => row.reaction = self.links(name, raw),
                "contextId" | "context_id" => {
                    first(&mut context_attr, self.id_attr(name, raw), name)
                }
                "triggerEventId" | "trigger_event_id" => {
                    first(&mut trigger_attr, self.id_attr(name, raw), name)
                }
                "reactionEventId" | "reaction_event_id" => {
                    first(&mut reaction_attr, self.id_attr(name, raw), name)
                }
                _ => self.ignore(name),
            }
        }
        row.workflow_run_id = run_ids.into_iter().flatten().next();
        self.link_fallback(&mut row.context, context_attr, "context");
        self.link_fallback(&mut row.trigger, trigger_attr, "trigger");
        self.link_fallback(&mut row.reaction, reaction_attr, "reaction");
        row.issues = self.take_issues();
        Ok(row)
    }

    fn step(&mut self, fields: &Fields) -> Result<LegacyStep, RowError> {
        let id = self.own_id(fields)?;
        let mut row = LegacyStep {
            id,
            created_at: None,
            updated_at: None,
            status: None,
            iteration: None,
            execution: Vec::new(),
            execution_id: None,
            trigger_event_id: None,
            reaction_event_id: None,
            event_id: None,
            tool_calls: None,
            tool_execution_results: None,
            continue_loop: None,
            error_text: None,
            issues: Vec::new(),
        };
        let mut trigger_link = Vec::new();
        let mut reaction_link = Vec::new();
        let mut results: [Option<Raw>; 3] = [None, None, None];
        let mut calls: [Option<Raw>; 2] = [None, None];
        let mut errors: [Option<String>; 2] = [None, None];
        for (name, raw) in fields.iter() {
            if !self.copy_raw && !joined(self.namespace, name) {
                continue;
            }
            let field = name;
            match field {
                "id" => {}
                "createdAt" => row.created_at = self.date(field, raw),
                "updatedAt" => row.updated_at = self.date(field, raw),
                "status" => row.status = self.string(field, raw),
                "iteration" => row.iteration = self.int(field, raw),
                "execution" => row.execution = self.links(field, raw),
                "executionId" | "execution_id" => {
                    first(&mut row.execution_id, self.id_attr(field, raw), field)
                }
                "triggerEventId" | "trigger_event_id" => {
                    first(&mut row.trigger_event_id, self.id_attr(field, raw), field)
                }
                "reactionEventId" | "reaction_event_id" => {
                    first(&mut row.reaction_event_id, self.id_attr(field, raw), field)
                }
                "eventId" | "event_id" => first(&mut row.event_id, self.id_attr(field, raw), field),
                "trigger" => trigger_link = self.links(field, raw),
                "reaction" => reaction_link = self.links(field, raw),
                "toolCalls" => calls[0] = self.raw(raw),
                "tools" => calls[1] = self.raw(raw),
                "toolExecutionResults" => results[0] = self.raw(raw),
                "toolResults" => results[1] = self.raw(raw),
                "toolOutput" => results[2] = self.raw(raw),
                "continueLoop" => row.continue_loop = self.boolean(field, raw),
                "errorText" => errors[0] = self.string(field, raw),
                "error" => match Self::value(raw) {
                    Value::String(text) => errors[1] = Some(text),
                    Value::Null => {}
                    _ => self.ignore(field),
                },
                _ => self.ignore(field),
            }
        }
        row.tool_calls = calls.into_iter().flatten().next();
        row.tool_execution_results = results.into_iter().flatten().next();
        row.error_text = errors.into_iter().flatten().next();
        // Scalar attributes first, then the links (anchor §3.14 step 4).
        if row.trigger_event_id.is_none() {
            row.trigger_event_id = trigger_link.into_iter().next();
        }
        if row.reaction_event_id.is_none() {
            row.reaction_event_id = reaction_link.into_iter().next();
        }
        row.issues = self.take_issues();
        Ok(row)
    }

    fn part(&mut self, fields: &Fields) -> Result<LegacyPart, RowError> {
        let id = if fields.get("id").is_some_and(|raw| raw.get() != "null") {
            Some(self.own_id(fields)?)
        } else {
            None
        };
        let mut row = LegacyPart {
            id,
            key: None,
            step: Vec::new(),
            step_id: None,
            idx: None,
            kind: None,
            part: None,
            part_type: None,
            updated_at: None,
            issues: Vec::new(),
        };
        let mut content = None;
        for (name, raw) in fields.iter() {
            if !self.copy_raw && !joined(self.namespace, name) {
                continue;
            }
            let field = name;
            match field {
                "id" => {}
                "key" => row.key = self.string(field, raw),
                "step" => row.step = self.links(field, raw),
                "stepId" | "step_id" => first(&mut row.step_id, self.id_attr(field, raw), field),
                "idx" => row.idx = self.int(field, raw),
                "type" => row.kind = self.string(field, raw),
                "part" => row.part = self.raw(raw),
                "content" => content = self.raw(raw),
                "updatedAt" => row.updated_at = self.date(field, raw),
                _ => self.ignore(field),
            }
        }
        if row.part.is_none() {
            // The old scripts' `part ?? content` (never the whole row).
            row.part = content;
        }
        if let (None, Some(part)) = (&row.kind, &row.part) {
            #[derive(Deserialize)]
            struct Head {
                #[serde(rename = "type")]
                kind: Option<Value>,
            }
            if let Ok(Head {
                kind: Some(Value::String(kind)),
            }) = serde_json::from_str(part.get())
            {
                row.part_type = Some(kind);
            }
        }
        row.issues = self.take_issues();
        Ok(row)
    }

    /// A link given only as a scalar alias attribute: use it, and say so.
    fn link_fallback(&mut self, link: &mut LinkIds, attr: Option<String>, label: &str) {
        if link.is_empty() {
            if let Some(id) = attr {
                self.issue(
                    label,
                    Rule::LinkFromAttribute,
                    format!("no {label} link; {label} {id} taken from the attribute"),
                );
                link.push(id);
            }
        }
    }
}

/// Keeps the first non-empty value among aliases.
fn first(slot: &mut Option<String>, value: Option<String>, _field: &str) {
    if slot.is_none() {
        *slot = value;
    }
}

/// The raw value without insignificant whitespace, so the output does not depend on how the
/// input was formatted (the value itself is copied verbatim: strings and numbers untouched).
pub fn minify(raw: &RawValue) -> Raw {
    let text = raw.get().as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                // Skip the string: to the next unescaped quote.
                i += 1;
                while let Some(j) = memchr::memchr2(b'"', b'\\', &text[i..]) {
                    if text[i + j] == b'\\' {
                        i += j + 2;
                    } else {
                        i += j + 1;
                        break;
                    }
                }
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                let buf = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
                buf.extend_from_slice(&text[copied..i]);
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    match out {
        None => raw.to_owned(),
        Some(mut buf) => {
            buf.extend_from_slice(&text[copied..]);
            // Removing whitespace between tokens keeps valid JSON valid.
            let text = String::from_utf8(buf).expect("whitespace removal keeps UTF-8");
            RawValue::from_string(text).expect("whitespace removal keeps JSON valid")
        }
    }
}
