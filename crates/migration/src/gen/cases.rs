//! The edge cases the generator injects (data-model.md §5.3), each with its stable id, the
//! row kind it is drawn for, its default rate, and what the migration must do with it: the
//! handling and the rule that decides it.
//!
//! Rule ids are stable snake_case. Where the transform's own rule id differs, align it here
//! (one line per case); the manifest carries both the case kind and the rule.

use serde::Serialize;

/// What the migration must do with an injected case. The first five mirror the transform's
/// rule effects (`crate::rules::Effect`): `migrate` means no rule fires at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// Migrated as is; no rule reports it.
    Migrate,
    /// Migrated as is; the rule notes it.
    Noted,
    /// Migrated with a deterministic fix (value changed, derived or omitted), reported.
    Repaired,
    /// Migrated without one of its links, reported.
    LinkDropped,
    /// Not migrated: in the reject report under the rule.
    Dropped,
    /// Not read by the migration's extract (not a source namespace); a dataset file's reader
    /// rejects such rows under `unknown_namespace`.
    Ignore,
    /// Fleet level: blocks the org's schema push until resolved (phase-1 resolution).
    Blocker,
    /// Fleet level: the org cannot be processed (never counts as safe).
    Blocked,
    /// Fleet level: repaired by the conversation-history backfill.
    Backfill,
}

/// Which rows a case's rate is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Context,
    Event,
    Execution,
    Step,
    Part,
    Whatsapp,
    Org,
}

macro_rules! cases {
    ($( $variant:ident = $id:literal, $category:literal, $scope:ident, $rate:expr, $handling:ident, $rule:literal, $engine:expr, $what:literal; )*) => {
        /// Every injected case kind.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CaseKind { $($variant),* }

        impl CaseKind {
            pub const ALL: &'static [CaseKind] = &[$(CaseKind::$variant),*];

            /// Stable snake_case id (manifest `kind`, CLI `--rate-<id with dashes>`).
            pub const fn id(self) -> &'static str { match self { $(CaseKind::$variant => $id),* } }
            /// data-model.md §5.3 category (`fleet` for org-level scenarios).
            pub const fn category(self) -> &'static str { match self { $(CaseKind::$variant => $category),* } }
            pub const fn scope(self) -> Scope { match self { $(CaseKind::$variant => Scope::$scope),* } }
            /// Default rate: per row of the scope (per org for `Org`-scoped leftovers); 0 for fleet roles.
            pub const fn default_rate(self) -> f64 { match self { $(CaseKind::$variant => $rate),* } }
            pub const fn handling(self) -> Handling { match self { $(CaseKind::$variant => Handling::$handling),* } }
            /// The rule that must decide the case.
            pub const fn rule(self) -> &'static str { match self { $(CaseKind::$variant => $rule),* } }
            /// Whether an InstantDB server can hold the case (an id the server would canonicalise
            /// or refuse, a value a unique attribute refuses, a lone surrogate cannot).
            pub const fn engine_compatible(self) -> bool { match self { $(CaseKind::$variant => $engine),* } }
            /// One line saying what is injected.
            pub const fn description(self) -> &'static str { match self { $(CaseKind::$variant => $what),* } }
        }
    };
}

cases! {
    // orphans
    EventWithoutContext = "event_without_context", "orphans", Event, 0.003, Noted, "event_without_context", true,
        "context_events row with no context link: migrated without context/thread links";
    ExecutionWithoutContext = "execution_without_context", "orphans", Execution, 0.003, Dropped, "execution_without_context", true,
        "story_executions row (no steps) with no context link: cannot get its required context/thread";
    StepExecutionLinkMissing = "step_execution_link_missing", "orphans", Step, 0.003, Repaired, "link_from_attribute", true,
        "story_steps row whose executionId names an existing execution but has no execution link";
    StepExecutionAttrMissing = "step_execution_attr_missing", "orphans", Step, 0.003, Repaired, "attribute_from_link", true,
        "story_steps row with an execution link but no executionId attribute";
    PartStepLinkMissing = "part_step_link_missing", "orphans", Part, 0.003, Repaired, "link_from_attribute", true,
        "story_parts row whose stepId names an existing step but has no step link";
    PartStepMissing = "part_step_missing", "orphans", Part, 0.003, Dropped, "part_without_step", true,
        "story_parts row whose stepId names no step and that has no step link";
    ContextWithoutEvents = "context_without_events", "orphans", Context, 0.003, Migrate, "context_without_events", true,
        "context_contexts row with no events and no executions";
    // dangling links
    ExecutionReactionDangling = "execution_reaction_dangling", "dangling_links", Execution, 0.02, LinkDropped, "dangling_link", true,
        "execution whose reaction link names an item that was never saved (failed before the reaction)";
    ExecutionTriggerDangling = "execution_trigger_dangling", "dangling_links", Execution, 0.005, LinkDropped, "dangling_link", true,
        "execution whose trigger link names a missing item";
    CurrentExecutionDangling = "current_execution_dangling", "dangling_links", Context, 0.005, Repaired, "current_execution_derived", true,
        "context whose currentExecution names a missing execution: use the latest execution by createdAt";
    CurrentExecutionStale = "current_execution_stale", "dangling_links", Context, 0.005, Migrate, "current_execution_kept", true,
        "context whose currentExecution is an older execution of its own: the legacy pointer is copied";
    ConversationMessageDangling = "conversation_message_dangling", "dangling_links", Whatsapp, 0.005, Ignore, "conversation_message_whatsapp_missing", true,
        "conversation_messages row whose whatsappMessage names a missing whatsapp_messages row";
    // inconsistent denormalisation
    StepExecutionIdMismatch = "step_execution_id_mismatch", "denormalisation", Step, 0.002, Repaired, "execution_id_mismatch", true,
        "story_steps.executionId names another execution than the execution link: the link wins";
    PartStepIdMismatch = "part_step_id_mismatch", "denormalisation", Part, 0.002, Repaired, "step_id_mismatch", true,
        "story_parts.stepId names another step than the step link: the link wins";
    PartKeyMismatch = "part_key_mismatch", "denormalisation", Part, 0.002, Repaired, "part_key_recomputed", true,
        "story_parts.key differs from `<stepId>:<idx>`: the key is recomputed";
    // duplicate keys
    PartKeyDuplicate = "part_key_duplicate", "duplicate_keys", Part, 0.001, Dropped, "part_key_duplicate", false,
        "two story_parts rows (different ids) with the same key: keep the newest updatedAt, reject the other";
    PartIdxDuplicate = "part_idx_duplicate", "duplicate_keys", Part, 0.001, Dropped, "part_key_duplicate", true,
        "two story_parts of one step with the same idx (stale legacy key on one): recomputed keys collide; keep the newest updatedAt";
    ContextKeyCaseVariant = "context_key_case_variant", "duplicate_keys", Context, 0.001, Migrate, "context_key_near_duplicate", true,
        "two context keys differing only by case or surrounding whitespace: both kept, verbatim";
    ContextKeyEqualsContextId = "context_key_equals_context_id", "duplicate_keys", Context, 0.001, Repaired, "key_conflict", true,
        "a context's key equals the id of a keyless context, whose thread key would be that same id (the case's first id is the keyless context)";
    PreexistingThreadKey = "preexisting_thread_key", "duplicate_keys", Context, 0.001, Noted, "existing_thread_reused", true,
        "a thread_threads row already holds a context's key (runtime self-heal): its id is reused";
    PreexistingThreadContextKey = "preexisting_thread_context_key", "duplicate_keys", Context, 0.001, Repaired, "thread_context_key_conflict", true,
        "a thread_contexts row with another id already holds a context's key (runtime self-heal): the context is migrated without the key (the existing row keeps it), reported";
    // id problems
    IdUppercase = "id_uppercase", "id_problems", Event, 0.002, Repaired, "id_normalised", false,
        "entity id written in upper case (links name it in lower case)";
    IdWhitespace = "id_whitespace", "id_problems", Execution, 0.002, Repaired, "id_normalised", false,
        "entity id with surrounding whitespace";
    AttrIdNotUuid = "attr_id_not_uuid", "id_problems", Step, 0.002, Repaired, "execution_id_mismatch", true,
        "a non-UUID string in an id-bearing attribute (step executionId with a valid link, or eventId)";
    ReactionEventIdFallback = "reaction_event_id_fallback", "id_problems", Step, 0.002, Migrate, "reaction_event_id_copied", true,
        "story_steps.reactionEventId in the runtime fallback form `<epochms>-<hex>`";
    WhatsappIdNotUuid = "whatsapp_message_id_not_uuid", "id_problems", Whatsapp, 0.002, Ignore, "whatsapp_message_id_not_uuid", false,
        "whatsapp_messages row with a non-UUID id (unlinked; the bridge skips it)";
    ConversationIdNotUuid = "conversation_id_not_uuid", "id_problems", Whatsapp, 0.002, Ignore, "conversation_id_opaque", true,
        "whatsapp_messages.conversation is a non-UUID string";
    // nulls / missing required
    CreatedAtMissing = "created_at_missing", "missing_required", Event, 0.003, Repaired, "created_at_derived", true,
        "createdAt absent (contexts, events, executions, steps): derived from neighbours, never now";
    ChannelMissing = "channel_missing", "missing_required", Event, 0.003, Repaired, "channel_defaulted", true,
        "context_events.channel absent: `web`, reported";
    IterationMissing = "iteration_missing", "missing_required", Step, 0.003, Repaired, "iteration_derived", true,
        "story_steps.iteration absent: rank by createdAt within the execution";
    IdxMissing = "idx_missing", "missing_required", Part, 0.003, Dropped, "part_idx_invalid", true,
        "story_parts.idx absent (key `<stepId>:<idx>` intact)";
    StatusNull = "status_null", "missing_required", Execution, 0.003, Repaired, "status_inferred", true,
        "status null (contexts, events, executions, steps): inferred per data-model §3.3";
    ContentNull = "content_null", "missing_required", Event, 0.003, Migrate, "content_verbatim", true,
        "content null on an event or a context";
    ContentWithoutParts = "content_without_parts", "missing_required", Event, 0.003, Migrate, "content_verbatim", true,
        "event content without `parts`";
    PartsNotArray = "parts_not_array", "missing_required", Event, 0.003, Migrate, "content_verbatim", true,
        "event content.parts is an object or a JSON string";
    // dates
    DateEpochMs = "date_epoch_ms", "dates", Event, 0.004, Migrate, "date_verbatim", true,
        "createdAt as epoch milliseconds (a number)";
    DateEpochSeconds = "date_epoch_seconds", "dates", Event, 0.003, Repaired, "date_epoch_seconds", true,
        "createdAt as epoch seconds (a number below 1e11)";
    DateInvalid = "date_invalid", "dates", Event, 0.002, Repaired, "created_at_derived", true,
        "createdAt an unparseable string";
    DateFuture = "date_future", "dates", Event, 0.001, Migrate, "date_verbatim", true,
        "createdAt years after the rest of the history";
    UpdatedBeforeCreated = "updated_before_created", "dates", Execution, 0.002, Migrate, "date_verbatim", true,
        "updatedAt earlier than createdAt";
    CreatedAtTie = "created_at_tie", "dates", Execution, 0.005, Migrate, "created_at_tie_order_by_id", true,
        "trigger and reaction (and extra items) share one millisecond: order by id";
    // numbers
    IdxGap = "idx_gap", "numbers", Part, 0.002, Migrate, "part_idx_kept", true,
        "a step's idx sequence has a gap (never renumbered)";
    IdxNegative = "idx_negative", "numbers", Part, 0.002, Dropped, "part_idx_invalid", true,
        "story_parts.idx negative";
    IdxString = "idx_string", "numbers", Part, 0.002, Repaired, "wrong_type", true,
        "story_parts.idx as a numeric string";
    IterationDuplicate = "iteration_duplicate", "numbers", Step, 0.002, Migrate, "step_iteration_kept", true,
        "two steps of one execution with the same iteration";
    IterationGap = "iteration_gap", "numbers", Step, 0.002, Migrate, "step_iteration_kept", true,
        "an execution's iteration sequence has a gap";
    // statuses
    StatusOutOfVocabulary = "status_out_of_vocabulary", "statuses", Execution, 0.003, Repaired, "status_mapped", true,
        "status outside the vocabulary or mixed case (RUNNING, error, cancelled, done, failed on a context)";
    StatusStaleRunning = "status_stale_running", "statuses", Execution, 0.02, Repaired, "status_stale", true,
        "execution executing / step running / context streaming long after the fact (not live)";
    // huge JSON
    ContentHuge = "content_huge", "huge_json", Event, 0.0005, Migrate, "content_verbatim", true,
        "1-5 MB content (base64 data-URL file part)";
    ContentDeepNesting = "content_deep_nesting", "huge_json", Event, 0.0005, Migrate, "content_verbatim", true,
        "content nested 100 levels deep";
    ItemManyParts = "item_many_parts", "huge_json", Execution, 0.0005, Migrate, "content_verbatim", true,
        "reaction with 1,000+ parts (content.parts and story_parts of one step)";
    // unicode
    UnicodeText = "unicode_text", "unicode", Event, 0.01, Migrate, "content_verbatim", true,
        "emoji/ZWJ, RTL, combining marks, Spanish, BOM prefix, a 10k-char token";
    UnicodeNul = "unicode_nul", "unicode", Event, 0.002, Migrate, "content_verbatim", false,
        "text containing U+0000 (InstantDB refuses null bytes: files only)";
    LoneSurrogate = "lone_surrogate", "unicode", Event, 0.001, Repaired, "invalid_unicode_replaced", false,
        "text containing a lone surrogate escape `\\ud800` (valid JSON text, not valid Unicode; Postgres jsonb refuses it, so a verbatim copy fails at apply)";
    // semantic
    TriggerShared = "trigger_shared", "semantic", Execution, 0.01, Migrate, "item_execution_ambiguous", true,
        "one item is the trigger of several executions (retried turn)";
    ReactionStuckPending = "reaction_stuck_pending", "semantic", Execution, 0.01, Migrate, "item_status_kept", true,
        "reaction item still `pending` although its execution completed";
    ToolPartStateDiverges = "tool_part_state_diverges", "semantic", Part, 0.02, Migrate, "part_verbatim", true,
        "tool part `input-available` in story_parts, `output-available` in the item's content";
    StepEventIdDangling = "step_event_id_dangling", "semantic", Step, 0.02, Migrate, "step_event_id_kept", true,
        "story_steps.eventId names no event (the runtime's fresh id per step)";
    // leftovers
    LeftoverG1Rows = "leftover_g1_rows", "leftovers", Org, 0.25, Ignore, "unknown_namespace", true,
        "G1 story_contexts / story_events rows";
    LeftoverThreadNamespace = "leftover_thread_namespace", "leftovers", Org, 0.25, Ignore, "unknown_namespace", true,
        "rows in a namespace literally called `thread`";
    LeftoverOrganizationLink = "leftover_organization_link", "leftovers", Context, 0.002, Noted, "attribute_ignored", true,
        "context linked to `organizations` (G1 leftover link)";
    LeftoverContextType = "leftover_context_type", "leftovers", Context, 0.01, Noted, "attribute_ignored", true,
        "context_contexts.type set (G1 leftover attribute)";
    // fleet
    ConversationHistoryOrphan = "conversation_history_orphan", "fleet", Org, 0.0, Backfill, "conversation_history_orphan", true,
        "an award's WhatsApp conversation exists but no context `award_<awardId>`: backfill-conversations --tender-id";
    SchemaDuplicateLink = "schema_duplicate_link", "fleet", Org, 0.0, Blocker, "schema_duplicate_link", true,
        "the app already has a link owning `thread_contexts->thread` (to the leftover `thread` namespace)";
    MissingInstantCredentials = "missing_instant_credentials", "fleet", Org, 0.0, Blocked, "missing_instant_credentials", true,
        "the organisation carries no InstantDB app credentials";
}

impl CaseKind {
    pub fn from_id(id: &str) -> Option<CaseKind> {
        CaseKind::ALL.iter().copied().find(|kind| kind.id() == id)
    }

    /// Cases drawn per row (the rest are fixtures, per-org toggles or fleet roles).
    pub fn is_rated(self) -> bool {
        self.default_rate() > 0.0
    }

    /// Fleet-level cases are org roles, never injected into a standard org's rows.
    pub fn is_fleet(self) -> bool {
        self.category() == "fleet"
    }
}

/// Per-case rates, defaults from the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    rates: Vec<f64>,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            rates: CaseKind::ALL
                .iter()
                .map(|kind| kind.default_rate())
                .collect(),
        }
    }
}

impl Rates {
    /// All zero: a clean org.
    pub fn zero() -> Self {
        Rates {
            rates: vec![0.0; CaseKind::ALL.len()],
        }
    }

    pub fn get(&self, kind: CaseKind) -> f64 {
        self.rates[kind as usize]
    }

    pub fn set(&mut self, kind: CaseKind, rate: f64) {
        self.rates[kind as usize] = rate.clamp(0.0, 1.0);
    }

    /// Every case with its rate, in catalogue order.
    pub fn iter(&self) -> impl Iterator<Item = (CaseKind, f64)> + '_ {
        CaseKind::ALL.iter().map(|kind| (*kind, self.get(*kind)))
    }
}
