//! The row model: legacy rows as extract gives them, target rows as apply writes them, link
//! intents and reject entries. **These types are the contract between extract, gen, transform,
//! plan, apply and verify; keep them stable.**
//!
//! On disk every row is one JSON object per line (NDJSON), one file per namespace:
//!
//! * legacy rows (`01-extract/<namespace>.ndjson`) are admin-query rows: attributes plus linked
//!   ids, a link being `[{"id": …}]` (or `{"id": …}`, `"…"`, `["…"]`: all accepted). They are
//!   read leniently by [`crate::legacy`] into the typed `Legacy*` structs below, which keep what
//!   was wrong with the row in `issues` instead of failing; a row that cannot be typed at all
//!   (not an object, no usable id) becomes a [`Reject`].
//! * target rows (`02-transform/<namespace>.ndjson`) are the attributes to `update`, with `id`;
//!   absent attributes are omitted (never `null`). Links are separate [`LinkIntent`]s in
//!   `02-transform/links.ndjson`.
//!
//! Big JSON attributes (`content`, `part`, `toolCalls`, `toolExecutionResults`) are kept as raw
//! JSON text ([`Raw`]) and copied verbatim: never re-parsed, never rewritten. Read target rows
//! with `serde_json::from_slice`/`from_str` on one line (raw values cannot come from a reader).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::rules::Rule;

/// A JSON value kept as its exact source text.
pub type Raw = Box<RawValue>;

/// The five legacy (`@ekairos/story`, G2) namespaces, in the order the transform reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacyNamespace {
    ContextContexts,
    ContextEvents,
    StoryExecutions,
    StorySteps,
    StoryParts,
}

impl LegacyNamespace {
    pub const ALL: [LegacyNamespace; 5] = [
        LegacyNamespace::ContextContexts,
        LegacyNamespace::ContextEvents,
        LegacyNamespace::StoryExecutions,
        LegacyNamespace::StorySteps,
        LegacyNamespace::StoryParts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LegacyNamespace::ContextContexts => "context_contexts",
            LegacyNamespace::ContextEvents => "context_events",
            LegacyNamespace::StoryExecutions => "story_executions",
            LegacyNamespace::StorySteps => "story_steps",
            LegacyNamespace::StoryParts => "story_parts",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|ns| ns.as_str() == name)
    }

    /// The target namespace that receives this namespace's rows (contexts also derive a
    /// `thread_threads` row each).
    pub fn target(self) -> TargetNamespace {
        match self {
            LegacyNamespace::ContextContexts => TargetNamespace::ThreadContexts,
            LegacyNamespace::ContextEvents => TargetNamespace::ThreadItems,
            LegacyNamespace::StoryExecutions => TargetNamespace::ThreadExecutions,
            LegacyNamespace::StorySteps => TargetNamespace::ThreadSteps,
            LegacyNamespace::StoryParts => TargetNamespace::ThreadParts,
        }
    }

    /// The NDJSON file name (`<namespace>.ndjson`).
    pub fn file_name(self) -> String {
        format!("{}.ndjson", self.as_str())
    }
}

impl fmt::Display for LegacyNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The six thread V1 namespaces the transform writes, in canonical (alphabetical) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetNamespace {
    ThreadContexts,
    ThreadExecutions,
    ThreadItems,
    ThreadParts,
    ThreadSteps,
    ThreadThreads,
}

impl TargetNamespace {
    pub const ALL: [TargetNamespace; 6] = [
        TargetNamespace::ThreadContexts,
        TargetNamespace::ThreadExecutions,
        TargetNamespace::ThreadItems,
        TargetNamespace::ThreadParts,
        TargetNamespace::ThreadSteps,
        TargetNamespace::ThreadThreads,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetNamespace::ThreadContexts => "thread_contexts",
            TargetNamespace::ThreadExecutions => "thread_executions",
            TargetNamespace::ThreadItems => "thread_items",
            TargetNamespace::ThreadParts => "thread_parts",
            TargetNamespace::ThreadSteps => "thread_steps",
            TargetNamespace::ThreadThreads => "thread_threads",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|ns| ns.as_str() == name)
    }

    /// The NDJSON file name in `02-transform/` (`<namespace>.ndjson`).
    pub fn file_name(self) -> String {
        format!("{}.ndjson", self.as_str())
    }
}

impl fmt::Display for TargetNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Dates

/// A legacy `date` attribute as found. Instant accepts ISO strings and epoch milliseconds, so
/// both occur; the other variants are what the reader recognised as wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyDate {
    /// An ISO 8601 / RFC 3339 string, kept verbatim, with its instant in epoch milliseconds.
    Text { text: String, millis: i64 },
    /// Epoch milliseconds (a number ≥ 10¹¹, i.e. after 1973-03-03).
    Millis(i64),
    /// A positive number below 10¹¹: epoch **seconds** written by mistake. `millis` is the
    /// repaired value (× 1000).
    Seconds { seconds: i64, millis: i64 },
    /// Anything else (unparsable string, zero or negative number, bool, object): its JSON text.
    Invalid(String),
}

impl LegacyDate {
    /// The instant in epoch milliseconds, when the value is usable.
    pub fn millis(&self) -> Option<i64> {
        match self {
            LegacyDate::Text { millis, .. }
            | LegacyDate::Millis(millis)
            | LegacyDate::Seconds { millis, .. } => Some(*millis),
            LegacyDate::Invalid(_) => None,
        }
    }

    /// The value written to the target: the legacy value itself when it was valid (so
    /// `createdAt` is preserved exactly), the repaired milliseconds for epoch seconds, nothing
    /// for an invalid value.
    pub fn to_target(&self) -> Option<DateValue> {
        match self {
            LegacyDate::Text { text, .. } => Some(DateValue::Text(text.clone())),
            LegacyDate::Millis(millis) | LegacyDate::Seconds { millis, .. } => {
                Some(DateValue::Millis(*millis))
            }
            LegacyDate::Invalid(_) => None,
        }
    }
}

/// A target `date` attribute: ISO text (kept from the legacy row) or epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DateValue {
    Millis(i64),
    Text(String),
}

// ---------------------------------------------------------------------------------------------
// Legacy rows

/// Something the lenient reader found wrong with one attribute of a row it could still type:
/// the attribute was coerced (number → string, numeric string → number), normalised (id case
/// and whitespace) or ignored (wrong JSON type, attribute without a thread counterpart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// The attribute or link label as found in the row (`createdAt`, `context_id`, …).
    pub field: String,
    pub rule: Rule,
    pub detail: String,
}

/// The ids a link holds, as found (trimmed, otherwise unchecked: they may not be UUIDs). A link
/// comes from the admin query's `[{id}]` arrays, or from a scalar alias attribute.
pub type LinkIds = Vec<String>;

/// `context_contexts` row.
#[derive(Debug, Clone)]
pub struct LegacyContext {
    pub id: Uuid,
    pub created_at: Option<LegacyDate>,
    pub updated_at: Option<LegacyDate>,
    pub key: Option<String>,
    pub status: Option<String>,
    pub content: Option<Raw>,
    /// Link `currentExecution` → `story_executions`.
    pub current_execution: LinkIds,
    pub issues: Vec<FieldIssue>,
}

/// `context_events` row.
#[derive(Debug, Clone)]
pub struct LegacyEvent {
    pub id: Uuid,
    pub channel: Option<String>,
    pub created_at: Option<LegacyDate>,
    /// Attribute `type`.
    pub kind: Option<String>,
    pub content: Option<Raw>,
    pub status: Option<String>,
    /// Link `context` → `context_contexts`, else the alias attributes `contextId` / `context_id`.
    pub context: LinkIds,
    /// Link `execution` → `story_executions`, else `executionId` / `execution_id`.
    pub execution: LinkIds,
    /// Esolbay link `whatsappMessages` (ids of `whatsapp_messages` rows).
    pub whatsapp_messages: LinkIds,
    /// Esolbay link `emails`.
    pub emails: LinkIds,
    pub issues: Vec<FieldIssue>,
}

/// `story_executions` row.
#[derive(Debug, Clone)]
pub struct LegacyExecution {
    pub id: Uuid,
    pub created_at: Option<LegacyDate>,
    pub updated_at: Option<LegacyDate>,
    pub status: Option<String>,
    /// First non-empty of `workflowRunId`, `runId`, `workflow_run_id`.
    pub workflow_run_id: Option<String>,
    /// Link `context`, else `contextId` / `context_id`.
    pub context: LinkIds,
    /// Link `trigger` → `context_events`, else `triggerEventId` / `trigger_event_id`.
    pub trigger: LinkIds,
    /// Link `reaction` → `context_events`, else `reactionEventId` / `reaction_event_id`.
    pub reaction: LinkIds,
    pub issues: Vec<FieldIssue>,
}

/// `story_steps` row.
#[derive(Debug, Clone)]
pub struct LegacyStep {
    pub id: Uuid,
    pub created_at: Option<LegacyDate>,
    pub updated_at: Option<LegacyDate>,
    pub status: Option<String>,
    pub iteration: Option<i64>,
    /// Link `execution` → `story_executions` (the link only).
    pub execution: LinkIds,
    /// Attribute `executionId` (alias `execution_id`), the denormalised copy of the link.
    pub execution_id: Option<String>,
    /// `triggerEventId` / `trigger_event_id`.
    pub trigger_event_id: Option<String>,
    /// `reactionEventId` / `reaction_event_id`.
    pub reaction_event_id: Option<String>,
    /// `eventId` / `event_id`.
    pub event_id: Option<String>,
    /// `toolCalls` (alias `tools`).
    pub tool_calls: Option<Raw>,
    /// `toolExecutionResults` (aliases `toolResults`, `toolOutput`).
    pub tool_execution_results: Option<Raw>,
    pub continue_loop: Option<bool>,
    /// `errorText` (alias `error` when a string).
    pub error_text: Option<String>,
    pub issues: Vec<FieldIssue>,
}

/// `story_parts` row. The id may be absent: the transform derives one from the key.
#[derive(Debug, Clone)]
pub struct LegacyPart {
    pub id: Option<Uuid>,
    pub key: Option<String>,
    /// Link `step` → `story_steps` (the link only).
    pub step: LinkIds,
    /// Attribute `stepId` (alias `step_id`).
    pub step_id: Option<String>,
    pub idx: Option<i64>,
    /// Attribute `type`.
    pub kind: Option<String>,
    pub part: Option<Raw>,
    /// `part.type` when `part` is an object with a string `type` (fallback for `kind`).
    pub part_type: Option<String>,
    pub updated_at: Option<LegacyDate>,
    pub issues: Vec<FieldIssue>,
}

/// One typed legacy row of any namespace.
#[derive(Debug, Clone)]
pub enum LegacyRow {
    Context(LegacyContext),
    Event(LegacyEvent),
    Execution(LegacyExecution),
    Step(LegacyStep),
    Part(LegacyPart),
}

// ---------------------------------------------------------------------------------------------
// Target rows (thread V1)

/// `thread_threads` row (derived, one per migrated context).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadThreadRow {
    pub id: Uuid,
    pub created_at: DateValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: String,
}

/// `thread_contexts` row (same id as the legacy context, key kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadContextRow {
    pub id: Uuid,
    pub created_at: DateValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Raw>,
}

/// `thread_items` row (same id as the legacy event).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadItemRow {
    pub id: Uuid,
    pub channel: String,
    pub created_at: DateValue,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Raw>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `thread_executions` row (same id).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadExecutionRow {
    pub id: Uuid,
    pub created_at: DateValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateValue>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_run_id: Option<String>,
}

/// `thread_steps` row (same id; V1 attributes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStepRow {
    pub id: Uuid,
    pub created_at: DateValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateValue>,
    pub status: String,
    pub iteration: i64,
    pub execution_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction_event_id: Option<String>,
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Raw>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_execution_results: Option<Raw>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_loop: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_text: Option<String>,
}

/// `thread_parts` row (same id, key recomputed `<stepId>:<idx>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadPartRow {
    pub id: Uuid,
    pub key: String,
    pub step_id: Uuid,
    pub idx: i64,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Raw>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateValue>,
}

/// One target row of any namespace.
#[derive(Debug, Clone)]
pub enum TargetRow {
    Thread(ThreadThreadRow),
    Context(ThreadContextRow),
    Item(ThreadItemRow),
    Execution(ThreadExecutionRow),
    Step(ThreadStepRow),
    Part(ThreadPartRow),
}

impl TargetRow {
    pub fn namespace(&self) -> TargetNamespace {
        match self {
            TargetRow::Thread(_) => TargetNamespace::ThreadThreads,
            TargetRow::Context(_) => TargetNamespace::ThreadContexts,
            TargetRow::Item(_) => TargetNamespace::ThreadItems,
            TargetRow::Execution(_) => TargetNamespace::ThreadExecutions,
            TargetRow::Step(_) => TargetNamespace::ThreadSteps,
            TargetRow::Part(_) => TargetNamespace::ThreadParts,
        }
    }

    pub fn id(&self) -> Uuid {
        match self {
            TargetRow::Thread(row) => row.id,
            TargetRow::Context(row) => row.id,
            TargetRow::Item(row) => row.id,
            TargetRow::Execution(row) => row.id,
            TargetRow::Step(row) => row.id,
            TargetRow::Part(row) => row.id,
        }
    }

    /// The row as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let result = match self {
            TargetRow::Thread(row) => serde_json::to_vec(row),
            TargetRow::Context(row) => serde_json::to_vec(row),
            TargetRow::Item(row) => serde_json::to_vec(row),
            TargetRow::Execution(row) => serde_json::to_vec(row),
            TargetRow::Step(row) => serde_json::to_vec(row),
            TargetRow::Part(row) => serde_json::to_vec(row),
        };
        // Serialising these structs cannot fail: string keys, no floats, raw values already valid.
        result.expect("target rows serialise")
    }
}

/// A link to create: `<from_ns>[from_id].<label> = to_id` (forward label of thread V1, or the
/// esolbay labels `whatsappMessages` / `emails` on `thread_items`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkIntent {
    pub from_ns: TargetNamespace,
    pub from_id: Uuid,
    pub label: String,
    pub to_id: Uuid,
}

/// One entry of the reject report: a legacy row that was not migrated, or was migrated with a
/// repair, or lost a link, and the rule that decided it ([`Rule::effect`] says which).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reject {
    /// Legacy namespace of the row (or the unknown namespace's name).
    pub namespace: String,
    /// The row's id as found (trimmed); `#<n>` (1-based position in its namespace) when the row
    /// has no usable id.
    pub id: String,
    pub rule: Rule,
    pub detail: String,
}
