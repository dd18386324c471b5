//! The rule table: every decision the transform reports, one stable snake_case id each.
//!
//! Every legacy row ends either in the transform output or in the reject report; the report
//! names the rule that decided. The [`Effect`] says what happened to the row:
//!
//! * `dropped`: the row is **not** migrated (counts in `rejected`);
//! * `repaired`: the row is migrated with a value changed, derived or omitted;
//! * `link_dropped`: the row is migrated without one of its links;
//! * `noted`: the row is migrated as is; something about it is worth knowing.
//!
//! Ids are part of the output contract (reports, `rejectsByRule`): never rename one.
//!
//! ## Where data-model.md is silent: the option that loses nothing
//!
//! * **A `thread_contexts` row already holds the key** (another id: the runtime healed the
//!   context before the migration). Overwriting its key would take the live conversation's
//!   key away; keeping the key on the migrated context collides on the unique attribute at
//!   apply. The legacy context is migrated with all its history but without the key (its
//!   thread too), and `thread_context_key_conflict` names both ids and the key: merging the
//!   two is a human decision. A row with the context's own id (an earlier run) is no clash.
//! * **Lone UTF-16 surrogate escapes** (`\ud800` without its pair): valid JSON, not Unicode,
//!   refused by the server, and unreadable as a string (so a plain attribute holding one was
//!   read as null). The escape alone is replaced by U+FFFD (`\ufffd`), the rest of the text
//!   is kept byte for byte, and `invalid_unicode_replaced` names the attribute and the escape.
//! * **An item without `createdAt` that mirrors a WhatsApp message** (a human message with
//!   no execution): the message's own `createdAt` is the item's instant (the mirror is written
//!   when the message arrives), so it comes first, before the execution-derived value of §3.2;
//!   without either the item is not migrated (`created_at_missing`), never dated "now".
//! * **A denormalised id that is not a UUID next to a valid link** (step `executionId`, part
//!   `stepId`): the link wins, as for a mismatch, and the attribute's text is in the report
//!   (`execution_id_mismatch` / `step_id_mismatch`), never dropped silently.
//! * **A denormalised id absent next to its link**: filled from the link and reported
//!   (`attribute_from_link`), the mirror of `link_from_attribute`.
//! * **Rows sharing an id**: the first by text is migrated with *its* links only; the others
//!   are reported (`duplicate_id`) and none of their links is written.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a rule did to the row it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Dropped,
    Repaired,
    LinkDropped,
    Noted,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Dropped => "dropped",
            Effect::Repaired => "repaired",
            Effect::LinkDropped => "link_dropped",
            Effect::Noted => "noted",
        }
    }
}

macro_rules! rules {
    ($($(#[doc = $doc:literal])+ $variant:ident = $id:literal, $effect:ident;)+) => {
        /// A transform rule (see the module documentation for the table).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Rule {
            /// Every rule, in table order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)+];

            /// The stable id (`snake_case`).
            pub fn as_str(self) -> &'static str {
                match self { $(Rule::$variant => $id,)+ }
            }

            pub fn effect(self) -> Effect {
                match self { $(Rule::$variant => Effect::$effect,)+ }
            }

            /// The one-line description.
            pub fn doc(self) -> &'static str {
                match self { $(Rule::$variant => concat!($($doc),+).trim_ascii(),)+ }
            }

            pub fn parse(id: &str) -> Option<Rule> {
                match id { $($id => Some(Rule::$variant),)+ _ => None }
            }
        }
    };
}

rules! {
    // ---- dropped: the row is not migrated ------------------------------------------------
    /// The row is not a JSON object.
    RowNotObject = "row_not_object", Dropped;
    /// The row has no id (absent, null, empty or not a string).
    MissingId = "missing_id", Dropped;
    /// The row's id is not a UUID (8-4-4-4-12 hex).
    InvalidId = "invalid_id", Dropped;
    /// Another row of the namespace has the same id; the first by (id, row text) is kept.
    DuplicateId = "duplicate_id", Dropped;
    /// The namespace is not one of the five legacy namespaces; its rows are not migrated.
    UnknownNamespace = "unknown_namespace", Dropped;
    /// createdAt is missing or invalid and nothing to derive it from (never defaulted to now).
    CreatedAtMissing = "created_at_missing", Dropped;
    /// The execution's context is absent or not migrated (executions must link to a context).
    ExecutionWithoutContext = "execution_without_context", Dropped;
    /// The step's execution (link, else executionId) is absent or not migrated.
    StepWithoutExecution = "step_without_execution", Dropped;
    /// eventId is missing and the execution has no reaction or trigger id to use instead.
    StepEventIdMissing = "step_event_id_missing", Dropped;
    /// The part's step (link, else stepId) is absent or not migrated.
    PartWithoutStep = "part_without_step", Dropped;
    /// idx is missing, negative or not an integer (idx is never renumbered).
    PartIdxInvalid = "part_idx_invalid", Dropped;
    /// Another part has the same key `<stepId>:<idx>`; the newest updatedAt (then smallest id) wins.
    PartKeyDuplicate = "part_key_duplicate", Dropped;

    // ---- repaired: migrated with a value changed, derived or omitted -----------------------
    /// An id had upper-case letters or surrounding whitespace; its canonical form is used.
    IdNormalised = "id_normalised", Repaired;
    /// An attribute had the wrong JSON type; coerced (number to string, numeric string to number) or omitted.
    WrongType = "wrong_type", Repaired;
    /// A date was epoch seconds; converted to epoch milliseconds.
    DateEpochSeconds = "date_epoch_seconds", Repaired;
    /// An optional date (updatedAt) is not a date; omitted.
    DateInvalid = "date_invalid", Repaired;
    /// createdAt missing or invalid; derived from linked rows, never from now: an item from its WhatsApp message, else the execution it triggered or answered; an execution from its trigger item, else its first step; a context from its earliest execution or item; a step from its execution.
    CreatedAtDerived = "created_at_derived", Repaired;
    /// channel is missing; `web` is used.
    ChannelDefaulted = "channel_defaulted", Repaired;
    /// A status synonym or case/space variant mapped onto the thread vocabulary (done -> completed).
    StatusMapped = "status_mapped", Repaired;
    /// executing/running/streaming but not live at `now`: execution/step -> failed, context -> open.
    StatusStale = "status_stale", Repaired;
    /// Status null or unknown; inferred from related rows (data-model §3.3).
    StatusInferred = "status_inferred", Repaired;
    /// Context status `failed` (outside the V1 context enum): context open, thread failed.
    ContextStatusFailed = "context_status_failed", Repaired;
    /// iteration missing; the step's rank by (createdAt, id) within its execution is used.
    IterationDerived = "iteration_derived", Repaired;
    /// eventId missing; the execution's reaction id (else trigger id) is used, never the step id.
    EventIdDerived = "event_id_derived", Repaired;
    /// A link was absent and its id came from a scalar attribute (executionId, stepId, contextId...).
    LinkFromAttribute = "link_from_attribute", Repaired;
    /// step.executionId differs from the execution link (another id, or not a UUID); the link wins and the attribute follows it.
    ExecutionIdMismatch = "execution_id_mismatch", Repaired;
    /// part.stepId differs from the step link (another id, or not a UUID); the link wins and the attribute follows it.
    StepIdMismatch = "step_id_mismatch", Repaired;
    /// The legacy part key differs from `<stepId>:<idx>`; the key is recomputed.
    PartKeyRecomputed = "part_key_recomputed", Repaired;
    /// The part has no id; uuidv5(MIGRATION_NS, "part:" + key) is used.
    PartIdDerived = "part_id_derived", Repaired;
    /// currentExecution absent or dangling; the latest migrated execution by (createdAt, id) is used.
    CurrentExecutionDerived = "current_execution_derived", Repaired;
    /// The context key (or a keyless context's thread key, its id) is already taken by another context (the smallest id keeps it); omitted.
    KeyConflict = "key_conflict", Repaired;
    /// An existing thread_contexts row (another id: a runtime self-heal) holds the context's key; the migrated context and its thread get no key, so the existing row is not overwritten and no history is lost: merging the two is a human decision.
    ThreadContextKeyConflict = "thread_context_key_conflict", Repaired;
    /// A required denormalised attribute (step executionId, part stepId) was absent; it is filled from the link.
    AttributeFromLink = "attribute_from_link", Repaired;
    /// A string held a lone UTF-16 surrogate escape (valid JSON, not Unicode: the server refuses it); it is replaced by U+FFFD, the rest of the text kept.
    InvalidUnicodeReplaced = "invalid_unicode_replaced", Repaired;

    // ---- link dropped: migrated without one of its links -----------------------------------
    /// A link names a row that does not exist or was not migrated; the link is dropped.
    DanglingLink = "dangling_link", LinkDropped;
    /// A link target is not a UUID; the link is dropped.
    LinkInvalidId = "link_invalid_id", LinkDropped;
    /// A has-one link held several ids; the smallest valid one is kept, the others dropped.
    LinkManyTargets = "link_many_targets", LinkDropped;

    // ---- noted: migrated as is ------------------------------------------------------------
    /// Attributes or links without a thread counterpart (G1 `type`, `organization`, ...) are not carried.
    AttributeIgnored = "attribute_ignored", Noted;
    /// An item type outside the known vocabulary; kept as is.
    ItemTypeUnknown = "item_type_unknown", Noted;
    /// The event has no context; the item is migrated without context and thread links.
    EventWithoutContext = "event_without_context", Noted;
    /// A thread_threads row with this key already exists; its id is reused for the context's thread.
    ExistingThreadReused = "existing_thread_reused", Noted;
    /// part is null or absent; the part row is migrated without it (never the whole legacy row).
    PartPayloadMissing = "part_payload_missing", Noted;
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        Rule::parse(&id).ok_or_else(|| serde::de::Error::custom(format!("unknown rule `{id}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_snake_case_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for rule in Rule::ALL {
            let id = rule.as_str();
            assert!(seen.insert(id), "duplicate rule id {id}");
            assert!(
                id.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{id}"
            );
            assert_eq!(Rule::parse(id), Some(*rule));
            assert!(!rule.doc().is_empty());
        }
    }
}
