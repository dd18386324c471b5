//! Lenient typing of one raw legacy row (one JSON object) into the `Legacy*` structs.
//!
//! Field aliases of the old scripts are accepted (anchor §6.1: `contextId`/`context_id`,
//! `executionId`/`execution_id`, `runId`, `tools`, `toolResults`, …), wrong JSON types are
//! coerced or omitted and recorded as [`FieldIssue`]s, and a row that cannot be typed at all
//! becomes a [`Reject`]. Invalid JSON is not a row problem but a file problem:
//! [`RowError::Syntax`], which the reader turns into one error with the byte offset.

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
    let fields: IndexMap<String, &RawValue> = match serde_json::from_slice(text) {
        Ok(fields) => fields,
        Err(error) if error.classify() == Category::Data => {
            // Valid JSON of the wrong type, unless the text is also broken further on.
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(text) {
                return Err(RowError::Syntax {
                    offset: error_offset(text, &syntax),
                    error: syntax,
                });
            }
            let kind = match text.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b'n') => "null",
                Some(b't' | b'f') => "a boolean",
                _ => "a number",
            };
            return Err(RowError::Reject(Reject {
                namespace: namespace.to_string(),
                id: format!("#{ordinal}"),
                rule: Rule::RowNotObject,
                detail: format!("row {ordinal} is {kind}, not an object"),
            }));
        }
        Err(error) => {
            return Err(RowError::Syntax {
                offset: error_offset(text, &error),
                error,
            })
        }
    };
    let mut typer = Typer {
        namespace,
        ordinal,
        issues: Vec::new(),
        ignored: Vec::new(),
    };
    let row = match namespace {
        LegacyNamespace::ContextContexts => LegacyRow::Context(typer.context(&fields)?),
        LegacyNamespace::ContextEvents => LegacyRow::Event(typer.event(&fields)?),
        LegacyNamespace::StoryExecutions => LegacyRow::Execution(typer.execution(&fields)?),
        LegacyNamespace::StorySteps => LegacyRow::Step(typer.step(&fields)?),
        LegacyNamespace::StoryParts => LegacyRow::Part(typer.part(&fields)?),
    };
    Ok(row)
}

type Fields<'a> = IndexMap<String, &'a RawValue>;

struct Typer {
    namespace: LegacyNamespace,
    ordinal: u64,
    issues: Vec<FieldIssue>,
    ignored: Vec<String>,
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

    fn value(raw: &RawValue) -> Value {
        // A raw value was validated when the row was read: it parses.
        serde_json::from_str(raw.get()).unwrap_or(Value::Null)
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
        let text = match Self::value(raw) {
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

    fn date(&mut self, _field: &str, raw: &RawValue) -> Option<LegacyDate> {
        match Self::value(raw) {
            Value::Null => None,
            value => Some(dates::classify(&value)),
        }
    }

    fn string(&mut self, field: &str, raw: &RawValue) -> Option<String> {
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
    fn id_attr(&mut self, field: &str, raw: &RawValue) -> Option<String> {
        let text = self.string(field, raw)?;
        let trimmed = text.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    }

    fn int(&mut self, field: &str, raw: &RawValue) -> Option<i64> {
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

    fn boolean(&mut self, field: &str, raw: &RawValue) -> Option<bool> {
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

    fn raw(raw: &RawValue) -> Option<Raw> {
        (raw.get() != "null").then(|| minify(raw))
    }

    /// A link as the admin query returns it (`[{id}]`, `{id}`, `"id"`, `["id"]`, `null`).
    fn links(&mut self, field: &str, raw: &RawValue) -> LinkIds {
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
        for (name, raw) in fields {
            match name.as_str() {
                "id" => {}
                "createdAt" => row.created_at = self.date(name, raw),
                "updatedAt" => row.updated_at = self.date(name, raw),
                "key" => row.key = self.string(name, raw),
                "status" => row.status = self.string(name, raw),
                "content" => row.content = Self::raw(raw),
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
        for (name, raw) in fields {
            match name.as_str() {
                "id" => {}
                "channel" => row.channel = self.string(name, raw),
                "createdAt" => row.created_at = self.date(name, raw),
                "type" => row.kind = self.string(name, raw),
                "content" => row.content = Self::raw(raw),
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
        for (name, raw) in fields {
            match name.as_str() {
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
        for (name, raw) in fields {
            let field = name.as_str();
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
                "toolCalls" => calls[0] = Self::raw(raw),
                "tools" => calls[1] = Self::raw(raw),
                "toolExecutionResults" => results[0] = Self::raw(raw),
                "toolResults" => results[1] = Self::raw(raw),
                "toolOutput" => results[2] = Self::raw(raw),
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
        for (name, raw) in fields {
            let field = name.as_str();
            match field {
                "id" => {}
                "key" => row.key = self.string(field, raw),
                "step" => row.step = self.links(field, raw),
                "stepId" | "step_id" => first(&mut row.step_id, self.id_attr(field, raw), field),
                "idx" => row.idx = self.int(field, raw),
                "type" => row.kind = self.string(field, raw),
                "part" => row.part = Self::raw(raw),
                "content" => content = Self::raw(raw),
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
