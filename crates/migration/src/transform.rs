//! The transform, pure: typed legacy rows in, thread V1 rows, link intents and report entries
//! out. No clock (`now` is [`Options::now_ms`]), no file, no network.
//!
//! It works in two passes so that memory follows the join, not the data: pass 1 feeds the
//! [`JoinBuilder`] with rows of any namespace in any order (it keeps a fixed-size record of
//! what a join needs per execution, step and event, and a little more per context);
//! [`JoinBuilder::finish`] decides everything that depends on several rows (which rows
//! migrate, derived dates, statuses, current executions, thread ids and keys) into compact
//! tables ([`IdTable`]); pass 2 maps each row on its own with the [`Join`]. No row's content
//! is ever held.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use uuid::Uuid;

use crate::dates::format_millis;
use crate::legacy::parse_uuid;
use crate::model::*;
use crate::rules::Rule;
use crate::{derived_part_id, derived_thread_id};

/// Hashes ids (UUIDs, random in practice) with one folded multiply of their two halves: as
/// well spread as SipHash for such keys, several times faster. The keys are the rows' own ids;
/// a tenant who crafted colliding ids would only slow its own migration down.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(16);
        for chunk in &mut chunks {
            let (a, b) = chunk.split_at(8);
            let a = u64::from_le_bytes(a.try_into().unwrap_or_default());
            let b = u64::from_le_bytes(b.try_into().unwrap_or_default());
            self.0 = fold(
                self.0 ^ a ^ 0x243f_6a88_85a3_08d3,
                b ^ 0x1319_8a2e_0370_7344,
            );
        }
        for byte in chunks.remainder() {
            self.0 = fold(self.0 ^ u64::from(*byte), 0xa409_3822_299f_31d0);
        }
    }

    fn write_usize(&mut self, _len: usize) {
        // Only the slice length prefix of a 16-byte id comes here: nothing to mix.
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// A map keyed by ids, see [`IdHasher`].
pub type IdMap<V> = HashMap<Uuid, V, BuildHasherDefault<IdHasher>>;
/// A set of ids, see [`IdHasher`].
pub type IdSet = HashSet<Uuid, BuildHasherDefault<IdHasher>>;

/// Inputs of the transform besides the rows.
#[derive(Debug, Clone)]
pub struct Options {
    /// "Now" for the liveness policy (epoch ms). `None`: nothing is live, so every
    /// executing/running/streaming status is stale.
    pub now_ms: Option<i64>,
    /// A run whose last activity (updatedAt, else createdAt) is within this of `now` is live.
    pub liveness_window_ms: i64,
    /// `thread_threads` rows that already exist in the target: key -> id (reused).
    pub existing_threads: BTreeMap<String, Uuid>,
    /// `thread_contexts` rows that already exist in the target: key -> id. A legacy context
    /// whose key is held by another id is migrated without it (`thread_context_key_conflict`).
    pub existing_contexts: BTreeMap<String, Uuid>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            now_ms: None,
            liveness_window_ms: 15 * 60 * 1000,
            existing_threads: BTreeMap::new(),
            existing_contexts: BTreeMap::new(),
        }
    }
}

/// What mapping one legacy row produced.
#[derive(Debug, Default)]
pub struct Emitted {
    pub rows: Vec<TargetRow>,
    pub links: Vec<LinkIntent>,
    pub rejects: Vec<Reject>,
    /// The row is not migrated (exactly one `dropped` entry in `rejects` says why).
    pub dropped: bool,
}

impl Emitted {
    fn report(
        &mut self,
        ns: LegacyNamespace,
        id: impl ToString,
        rule: Rule,
        detail: impl Into<String>,
    ) {
        if rule.effect() == crate::Effect::Dropped {
            self.dropped = true;
        }
        self.rejects.push(Reject {
            namespace: ns.to_string(),
            id: id.to_string(),
            rule,
            detail: detail.into(),
        });
    }

    fn issues(&mut self, ns: LegacyNamespace, id: impl ToString, issues: &[FieldIssue]) {
        let id = id.to_string();
        for issue in issues {
            self.report(ns, &id, issue.rule, issue.detail.clone());
        }
    }

    fn link(&mut self, from_ns: TargetNamespace, from_id: Uuid, label: &str, to_id: Uuid) {
        self.links.push(LinkIntent {
            from_ns,
            from_id,
            label: label.to_string(),
            to_id,
        });
    }
}

/// Resolves a has-one link: the valid UUIDs (smallest kept), with reports for the rest.
fn resolve_one(ids: &LinkIds, label: &str, mut report: impl FnMut(Rule, String)) -> Option<Uuid> {
    let mut valid = Vec::new();
    for text in ids {
        match parse_uuid(text) {
            Some((id, normalised)) => {
                if normalised {
                    report(Rule::IdNormalised, format!("{label} {text:?} read as {id}"));
                }
                valid.push(id);
            }
            None => report(
                Rule::LinkInvalidId,
                format!("{label} {text:?} is not a UUID"),
            ),
        }
    }
    valid.sort();
    valid.dedup();
    if valid.len() > 1 {
        let rest: Vec<String> = valid[1..].iter().map(Uuid::to_string).collect();
        report(
            Rule::LinkManyTargets,
            format!(
                "{label} holds {} ids; {} kept, {} dropped",
                valid.len(),
                valid[0],
                rest.join(", ")
            ),
        );
    }
    valid.first().copied()
}

/// Resolves without reporting (pass 1 sees the same answer pass 2 reports on).
fn quiet_one(ids: &LinkIds) -> Option<Uuid> {
    resolve_one(ids, "", |_, _| {})
}

/// A run status, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Running,
    Completed,
    Failed,
    Unknown,
}

fn classify_run(status: Option<&str>) -> Class {
    let Some(status) = status else {
        return Class::Unknown;
    };
    match status.trim().to_ascii_lowercase().as_str() {
        "executing" | "running" | "in_progress" | "in-progress" | "started" | "streaming"
        | "pending" => Class::Running,
        "completed" | "complete" | "done" | "success" | "succeeded" | "finished" | "ok" => {
            Class::Completed
        }
        "failed" | "failure" | "error" | "errored" | "cancelled" | "canceled" | "aborted"
        | "timeout" | "timed_out" => Class::Failed,
        _ => Class::Unknown,
    }
}

fn millis(date: &Option<LegacyDate>) -> Option<i64> {
    date.as_ref().and_then(LegacyDate::millis)
}

/// A required date: the legacy value (reported when repaired), else a derived instant.
fn required_date(
    ns: LegacyNamespace,
    id: &Uuid,
    field: &str,
    date: &Option<LegacyDate>,
    derived: impl FnOnce() -> Option<(i64, String)>,
    out: &mut Emitted,
) -> Option<DateValue> {
    if let Some(LegacyDate::Seconds { seconds, millis }) = date {
        out.report(
            ns,
            id,
            Rule::DateEpochSeconds,
            format!("{field} {seconds} (epoch seconds) read as {millis} ms"),
        );
    }
    if let Some(value) = date.as_ref().and_then(LegacyDate::to_target) {
        return Some(value);
    }
    let was = match date {
        Some(LegacyDate::Invalid(raw)) => format!("invalid ({raw})"),
        _ => "missing".to_string(),
    };
    match derived() {
        Some((ms, from)) => {
            out.report(
                ns,
                id,
                Rule::CreatedAtDerived,
                format!("{field} {was}; {} from {from}", format_millis(ms)),
            );
            Some(DateValue::Millis(ms))
        }
        None => {
            out.report(
                ns,
                id,
                Rule::CreatedAtMissing,
                format!("{field} {was} and nothing to derive it from"),
            );
            None
        }
    }
}

fn optional_date(
    ns: LegacyNamespace,
    id: &dyn std::fmt::Display,
    field: &str,
    date: &Option<LegacyDate>,
    out: &mut Emitted,
) -> Option<DateValue> {
    match date {
        Some(LegacyDate::Seconds { seconds, millis }) => {
            out.report(
                ns,
                id.to_string(),
                Rule::DateEpochSeconds,
                format!("{field} {seconds} (epoch seconds) read as {millis} ms"),
            );
        }
        Some(LegacyDate::Invalid(raw)) => {
            out.report(
                ns,
                id.to_string(),
                Rule::DateInvalid,
                format!("{field} {raw} is not a date: omitted"),
            );
        }
        _ => {}
    }
    date.as_ref().and_then(LegacyDate::to_target)
}

// ---------------------------------------------------------------------------------------------
// Pass 1

/// Rows sorted by id, with an index of where each id prefix starts: a lookup is one index
/// read and a binary search over a handful of rows, and a row costs nothing beyond itself
/// (hash tables of millions of rows cost up to twice their content). Ids are random UUIDs in
/// practice; any ids work, uneven ones only make the searched ranges longer.
#[derive(Debug)]
pub struct IdTable<T> {
    rows: Vec<(Uuid, T)>,
    shift: u32,
    starts: Vec<u32>,
}

fn prefix(id: &Uuid) -> u64 {
    let bytes = id.as_bytes();
    u64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

impl<T> IdTable<T> {
    /// From rows in input order: for a repeated id the first row stays.
    pub fn new(mut rows: Vec<(Uuid, T)>) -> IdTable<T> {
        // A stable sort keeps the input order among equal ids.
        rows.sort_by_key(|row| row.0);
        rows.dedup_by(|later, earlier| later.0 == earlier.0);
        rows.shrink_to_fit();
        let bits = (usize::BITS - rows.len().leading_zeros()).clamp(4, 24);
        let shift = 64 - bits;
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        let mut row = 0;
        for bucket in 0..(1u64 << bits) {
            while row < rows.len() && prefix(&rows[row].0) >> shift < bucket {
                row += 1;
            }
            starts.push(row as u32);
        }
        starts.push(rows.len() as u32);
        IdTable {
            rows,
            shift,
            starts,
        }
    }

    pub fn get(&self, id: &Uuid) -> Option<&T> {
        let bucket = (prefix(id) >> self.shift) as usize;
        let range = self.starts[bucket] as usize..self.starts[bucket + 1] as usize;
        let rows = &self.rows[range];
        rows.binary_search_by(|(key, _)| key.cmp(id))
            .ok()
            .map(|i| &rows[i].1)
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        self.get(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Uuid, T)> {
        self.rows.iter()
    }
}

/// A status as written, without an allocation for the usual spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RawStatus {
    Common(&'static str),
    Other(Box<str>),
}

const COMMON_STATUSES: &[&str] = &[
    "open",
    "closed",
    "streaming",
    "executing",
    "running",
    "completed",
    "failed",
    "stored",
    "pending",
];

impl RawStatus {
    fn of(status: &Option<String>) -> Option<RawStatus> {
        let status = status.as_deref()?;
        Some(match COMMON_STATUSES.iter().find(|s| **s == status) {
            Some(common) => RawStatus::Common(common),
            None => RawStatus::Other(status.into()),
        })
    }

    fn as_str(&self) -> &str {
        match self {
            RawStatus::Common(text) => text,
            RawStatus::Other(text) => text,
        }
    }
}

fn raw_str(status: &Option<RawStatus>) -> Option<&str> {
    status.as_ref().map(RawStatus::as_str)
}

/// A time that may be absent, in one word (`i64::MIN` never comes out of a legacy date).
const NO_TIME: i64 = i64::MIN;

fn time(ms: Option<i64>) -> i64 {
    ms.unwrap_or(NO_TIME)
}

fn known(time: i64) -> Option<i64> {
    (time != NO_TIME).then_some(time)
}

#[derive(Debug, Default)]
struct ContextInfo {
    key: Option<String>,
    created: Option<i64>,
    status: Option<String>,
    current: Vec<String>,
}

/// The first ids of an execution's trigger and reaction links as written: a step without
/// eventId copies one. Usually absent or the canonical text of the link's id: two bits each,
/// and only other texts are stored.
#[derive(Debug, Default)]
struct EventTexts {
    /// Per link (trigger, reaction): bit 0 present, bit 1 stored in `other`.
    bits: [u8; 2],
    other: Option<Box<[Option<Box<str>>; 2]>>,
}

impl EventTexts {
    fn of(links: [(&LinkIds, Option<Uuid>); 2]) -> EventTexts {
        let mut texts = EventTexts::default();
        for (which, (ids, resolved)) in links.into_iter().enumerate() {
            let Some(first) = ids.first() else { continue };
            texts.bits[which] = 1;
            if resolved.is_none_or(|id| parse_uuid(first) != Some((id, false))) {
                texts.bits[which] |= 2;
                texts.other.get_or_insert_with(Default::default)[which] =
                    Some(first.as_str().into());
            }
        }
        texts
    }

    fn present(&self, which: usize) -> bool {
        self.bits[which] & 1 != 0
    }

    /// The text of link `which` (0 trigger, 1 reaction), whose resolved id is `resolved`.
    fn text(&self, which: usize, resolved: Option<Uuid>) -> Option<String> {
        if !self.present(which) {
            return None;
        }
        match self.other.as_ref().and_then(|other| other[which].as_ref()) {
            Some(text) => Some(text.to_string()),
            None => resolved.map(|id| id.to_string()),
        }
    }
}

/// What the join keeps of an execution row.
#[derive(Debug)]
struct ExecFact {
    created: i64,
    activity: i64,
    context: Option<Uuid>,
    trigger: Option<Uuid>,
    reaction: Option<Uuid>,
    status: Option<RawStatus>,
    texts: EventTexts,
}

/// What the join keeps of a step row.
#[derive(Debug, Clone, Copy)]
struct StepFact {
    execution: Option<Uuid>,
    created: i64,
    iteration: Option<i64>,
    class: Class,
    continue_loop: Option<bool>,
    event_id: bool,
}

/// What the join keeps of an event row: its own createdAt and whether it is `completed`.
#[derive(Debug, Clone, Copy)]
struct EventFact {
    created: i64,
    completed: bool,
}

/// Pass 1: collects what the join needs, in compact records. Rows may come in any order and
/// from several builders ([`JoinBuilder::merge`], in input order); when a namespace repeats
/// an id, the first row is the one the join sees.
#[derive(Debug, Default)]
pub struct JoinBuilder {
    contexts: IdMap<ContextInfo>,
    executions: Vec<(Uuid, ExecFact)>,
    steps: Vec<(Uuid, StepFact)>,
    events: Vec<(Uuid, EventFact)>,
    /// Earliest own createdAt of the events of each context.
    earliest_event: IdMap<i64>,
    /// WhatsApp messages named by events whose createdAt is unusable.
    wanted_whatsapp: IdSet,
    /// `whatsapp_messages` createdAt (epoch ms), in input order.
    whatsapp_created: Vec<(Uuid, i64)>,
}

/// The execution a step belongs to, and what to report about how it was found.
fn step_execution(row: &LegacyStep) -> (Option<Uuid>, Vec<(Rule, String)>) {
    let mut notes = Vec::new();
    let link = resolve_one(&row.execution, "execution", |rule, detail| {
        notes.push((rule, detail))
    });
    let attr = denormalised(row.execution_id.as_deref(), "executionId", &mut notes);
    match (link, attr) {
        (Some(link), Some(attr)) if link != attr => {
            notes.push((
                Rule::ExecutionIdMismatch,
                format!("executionId {attr} differs from the execution link {link}; the link wins"),
            ));
            (Some(link), notes)
        }
        (Some(link), Some(_)) => (Some(link), notes),
        (Some(link), None) => {
            notes.push(match &row.execution_id {
                Some(text) => (
                    Rule::ExecutionIdMismatch,
                    format!("executionId {text:?} is not a UUID; the execution link {link} wins"),
                ),
                None => (
                    Rule::AttributeFromLink,
                    format!("executionId missing; {link} from the execution link"),
                ),
            });
            (Some(link), notes)
        }
        (None, Some(attr)) => {
            notes.push((
                Rule::LinkFromAttribute,
                format!("no execution link; execution {attr} taken from executionId"),
            ));
            (Some(attr), notes)
        }
        (None, None) => {
            if let Some(text) = &row.execution_id {
                notes.push((
                    Rule::LinkInvalidId,
                    format!("executionId {text:?} is not a UUID"),
                ));
            }
            (None, notes)
        }
    }
}

/// A denormalised id attribute (`executionId`, `stepId`) read as a UUID; an upper-case or
/// padded form is reported, since the attribute written is the canonical one.
fn denormalised(text: Option<&str>, field: &str, notes: &mut Vec<(Rule, String)>) -> Option<Uuid> {
    let (id, normalised) = parse_uuid(text?)?;
    if normalised {
        notes.push((
            Rule::IdNormalised,
            format!("{field} {:?} read as {id}", text.unwrap_or_default()),
        ));
    }
    Some(id)
}

/// The step a part belongs to (link first, else `stepId`), and what to report about it.
fn part_step(row: &LegacyPart) -> (Option<Uuid>, Vec<(Rule, String)>) {
    let mut notes = Vec::new();
    let link = resolve_one(&row.step, "step", |rule, detail| notes.push((rule, detail)));
    let attr = denormalised(row.step_id.as_deref(), "stepId", &mut notes);
    let step = match (link, attr) {
        (Some(link), Some(attr)) if link != attr => {
            notes.push((
                Rule::StepIdMismatch,
                format!("stepId {attr} differs from the step link {link}; the link wins"),
            ));
            Some(link)
        }
        (Some(link), Some(_)) => Some(link),
        (Some(link), None) => {
            notes.push(match &row.step_id {
                Some(text) => (
                    Rule::StepIdMismatch,
                    format!("stepId {text:?} is not a UUID; the step link {link} wins"),
                ),
                None => (
                    Rule::AttributeFromLink,
                    format!("stepId missing; {link} from the step link"),
                ),
            });
            Some(link)
        }
        (None, Some(attr)) => {
            notes.push((
                Rule::LinkFromAttribute,
                format!("no step link; step {attr} taken from stepId"),
            ));
            Some(attr)
        }
        (None, None) => None,
    };
    (step, notes)
}

/// Where a part would land: its step (not checked to be migrated), idx and id (its own, else
/// derived from the key). `None` when the part has no step or no valid idx.
pub fn part_slot(row: &LegacyPart) -> Option<PartSlot> {
    let step = quiet_step(row)?;
    let idx = row.idx.filter(|idx| *idx >= 0)?;
    let id = row
        .id
        .unwrap_or_else(|| derived_part_id(&format!("{step}:{idx}")));
    Some(PartSlot { step, idx, id })
}

fn quiet_step(row: &LegacyPart) -> Option<Uuid> {
    quiet_one(&row.step).or_else(|| {
        row.step_id
            .as_deref()
            .and_then(parse_uuid)
            .map(|(id, _)| id)
    })
}

/// See [`part_slot`]: the key of a part is `<step>:<idx>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSlot {
    pub step: Uuid,
    pub idx: i64,
    pub id: Uuid,
}

impl JoinBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_context(&mut self, row: &LegacyContext) {
        self.contexts.entry(row.id).or_insert_with(|| ContextInfo {
            key: row.key.clone(),
            created: millis(&row.created_at),
            status: row.status.clone(),
            current: row.current_execution.clone(),
        });
    }

    pub fn add_execution(&mut self, row: &LegacyExecution) {
        let created = millis(&row.created_at);
        let trigger = quiet_one(&row.trigger);
        let reaction = quiet_one(&row.reaction);
        self.executions.push((
            row.id,
            ExecFact {
                created: time(created),
                activity: time(millis(&row.updated_at).or(created)),
                context: quiet_one(&row.context),
                trigger,
                reaction,
                status: RawStatus::of(&row.status),
                texts: EventTexts::of([(&row.trigger, trigger), (&row.reaction, reaction)]),
            },
        ));
    }

    pub fn add_step(&mut self, row: &LegacyStep) {
        let (execution, _) = step_execution(row);
        self.steps.push((
            row.id,
            StepFact {
                execution,
                created: time(millis(&row.created_at)),
                iteration: row.iteration,
                class: classify_run(row.status.as_deref()),
                continue_loop: row.continue_loop,
                event_id: row.event_id.is_some(),
            },
        ));
    }

    pub fn add_event(&mut self, row: &LegacyEvent) {
        let created = millis(&row.created_at);
        self.events.push((
            row.id,
            EventFact {
                created: time(created),
                completed: row
                    .status
                    .as_deref()
                    .is_some_and(|s| s.trim().eq_ignore_ascii_case("completed")),
            },
        ));
        match (created, quiet_one(&row.context)) {
            (Some(created), Some(context)) => {
                let earliest = self.earliest_event.entry(context).or_insert(created);
                *earliest = (*earliest).min(created);
            }
            (None, _) => {
                for text in &row.whatsapp_messages {
                    if let Some((id, _)) = parse_uuid(text) {
                        self.wanted_whatsapp.insert(id);
                    }
                }
            }
            _ => {}
        }
    }

    /// A `whatsapp_messages` row's createdAt: an item mirroring that message takes its date
    /// when the item's own is missing.
    pub fn add_whatsapp_message(&mut self, id: Uuid, created_ms: i64) {
        self.whatsapp_created.push((id, created_ms));
    }

    /// Adds what `later` collected (rows after this builder's in the input).
    pub fn merge(&mut self, later: JoinBuilder) {
        for (id, info) in later.contexts {
            self.contexts.entry(id).or_insert(info);
        }
        self.executions.extend(later.executions);
        self.steps.extend(later.steps);
        self.events.extend(later.events);
        self.whatsapp_created.extend(later.whatsapp_created);
        for (context, created) in later.earliest_event {
            let earliest = self.earliest_event.entry(context).or_insert(created);
            *earliest = (*earliest).min(created);
        }
        self.wanted_whatsapp.extend(later.wanted_whatsapp);
    }

    /// Decides everything that depends on several rows.
    pub fn finish(self, options: &Options) -> Join {
        let JoinBuilder {
            contexts,
            executions,
            steps,
            events,
            earliest_event,
            wanted_whatsapp,
            mut whatsapp_created,
        } = self;
        whatsapp_created.retain(|(id, _)| wanted_whatsapp.contains(id));
        let whatsapp_created = IdTable::new(whatsapp_created);
        let live = |activity: i64| match (options.now_ms, known(activity)) {
            (Some(now), Some(at)) => now - at <= options.liveness_window_ms,
            _ => false,
        };
        let executions = IdTable::new(executions);
        let steps = IdTable::new(steps);
        let events = IdTable::new(events);
        let exec_index = |id: &Uuid| {
            let bucket = (prefix(id) >> executions.shift) as usize;
            let start = executions.starts[bucket] as usize;
            let rows = &executions.rows[start..executions.starts[bucket + 1] as usize];
            rows.binary_search_by(|(key, _)| key.cmp(id))
                .ok()
                .map(|i| start + i)
        };

        // 0. What each execution's steps say.
        #[derive(Clone, Copy, Default)]
        struct StepsSay {
            any_failed: bool,
            /// (iteration, createdAt, id, class, continueLoop) of the last step.
            last: Option<(i64, i64, Uuid, Class, Option<bool>)>,
            earliest: Option<i64>,
        }
        let mut say = vec![StepsSay::default(); executions.len()];
        for (id, step) in steps.iter() {
            let Some(index) = step.execution.as_ref().and_then(exec_index) else {
                continue;
            };
            let say = &mut say[index];
            say.any_failed |= step.class == Class::Failed;
            let rank = (
                step.iteration.unwrap_or(-1),
                step.created,
                *id,
                step.class,
                step.continue_loop,
            );
            if say
                .last
                .is_none_or(|last| (last.0, last.1, last.2) < (rank.0, rank.1, rank.2))
            {
                say.last = Some(rank);
            }
            if let Some(created) = known(step.created) {
                say.earliest = Some(say.earliest.map_or(created, |e| e.min(created)));
            }
        }

        // 1. Execution createdAt: own, else the trigger item's, else the first step's.
        let exec_created: Vec<Option<(i64, Option<&'static str>)>> = executions
            .iter()
            .zip(&say)
            .map(|((_, exec), say)| match known(exec.created) {
                Some(ms) => Some((ms, None)),
                None => exec
                    .trigger
                    .and_then(|t| events.get(&t))
                    .and_then(|e| known(e.created))
                    .map(|ms| (ms, Some("the trigger item's createdAt")))
                    .or_else(|| {
                        say.earliest
                            .map(|ms| (ms, Some("the earliest step's createdAt")))
                    }),
            })
            .collect();

        // 2. Context createdAt: own, else the earliest of its executions and events.
        let mut earliest_exec: IdMap<i64> = IdMap::default();
        for ((_, exec), created) in executions.iter().zip(&exec_created) {
            if let (Some(ctx), Some((ms, _))) = (exec.context, created) {
                let e = earliest_exec.entry(ctx).or_insert(*ms);
                *e = (*e).min(*ms);
            }
        }
        let mut ctx_created: IdMap<(i64, Option<String>)> = IdMap::default();
        for (id, ctx) in &contexts {
            let derived = match ctx.created {
                Some(ms) => Some((ms, None)),
                None => match (earliest_exec.get(id), earliest_event.get(id).copied()) {
                    (Some(a), Some(b)) => Some((
                        (*a).min(b),
                        Some("the earliest linked execution or item".to_string()),
                    )),
                    (Some(a), None) => {
                        Some((*a, Some("the earliest linked execution".to_string())))
                    }
                    (None, Some(b)) => Some((b, Some("the earliest linked item".to_string()))),
                    (None, None) => None,
                },
            };
            if let Some(derived) = derived {
                ctx_created.insert(*id, derived);
            }
        }

        // 3. Which executions migrate: a migrated context and a createdAt.
        let exec_migrated: Vec<bool> = executions
            .iter()
            .zip(&exec_created)
            .map(|((_, exec), created)| {
                created.is_some() && exec.context.is_some_and(|c| ctx_created.contains_key(&c))
            })
            .collect();

        // 4. Execution statuses.
        let exec_status: Vec<StatusDecision> = executions
            .iter()
            .zip(&say)
            .map(|((_, exec), say)| {
                let raw = raw_str(&exec.status);
                match classify_run(raw) {
                    Class::Running if live(exec.activity) => {
                        ("executing", mapped(raw, "executing"))
                    }
                    Class::Running => (
                        "failed",
                        Some((
                            Rule::StatusStale,
                            format!(
                                "status {:?} not live at now: failed",
                                raw.unwrap_or_default()
                            ),
                        )),
                    ),
                    Class::Completed => ("completed", mapped(raw, "completed")),
                    Class::Failed => ("failed", mapped(raw, "failed")),
                    Class::Unknown => {
                        let reaction_completed = exec
                            .reaction
                            .and_then(|r| events.get(&r))
                            .is_some_and(|e| e.completed);
                        let last_done = say.last.is_some_and(|(_, _, _, class, cont)| {
                            class == Class::Completed && cont == Some(false)
                        });
                        let (status, why) = if say.any_failed {
                            ("failed", "a step failed")
                        } else if last_done {
                            ("completed", "the last step completed without continuing")
                        } else if reaction_completed {
                            ("completed", "the reaction item is completed")
                        } else {
                            ("failed", "no sign of completion")
                        };
                        (
                            status,
                            Some((
                                Rule::StatusInferred,
                                format!("status {} inferred {status}: {why}", show(raw)),
                            )),
                        )
                    }
                }
            })
            .collect();
        drop(say);

        // 5. Steps: which migrate, and the rank of those without an iteration (by createdAt,
        //    else the execution's, then id, among the steps of a migrated execution).
        let mut migrated_steps: Vec<(Uuid, ())> = Vec::new();
        let mut unranked: IdSet = IdSet::default();
        for (id, step) in steps.iter() {
            let Some(index) = step.execution.as_ref().and_then(exec_index) else {
                continue;
            };
            if !exec_migrated[index] {
                continue;
            }
            if step.iteration.is_none() {
                unranked.insert(executions.rows[index].0);
            }
            let exec = &executions.rows[index].1;
            if step.event_id || exec.texts.present(0) || exec.texts.present(1) {
                migrated_steps.push((*id, ()));
            }
        }
        let mut step_rank: IdMap<i64> = IdMap::default();
        if !unranked.is_empty() {
            let mut by_exec: IdMap<Vec<(i64, Uuid)>> = IdMap::default();
            for (id, step) in steps.iter() {
                let Some(exec) = step.execution.filter(|e| unranked.contains(e)) else {
                    continue;
                };
                let created = known(step.created)
                    .or_else(|| exec_index(&exec).and_then(|i| exec_created[i]).map(|c| c.0))
                    .unwrap_or(i64::MIN);
                by_exec.entry(exec).or_default().push((created, *id));
            }
            for list in by_exec.values_mut() {
                list.sort();
                for (rank, (_, id)) in list.iter().enumerate() {
                    if steps.get(id).is_some_and(|s| s.iteration.is_none()) {
                        step_rank.insert(*id, rank as i64);
                    }
                }
            }
        }
        drop(steps);
        let migrated_steps = IdTable::new(migrated_steps);

        // 6. Events named by executions: does the item exist, what would date it, does it
        //    answer a completed execution, which execution does it belong to.
        let mut named: Vec<(Uuid, bool, u32)> = Vec::with_capacity(executions.len() * 2);
        for (index, (_, exec)) in executions.iter().enumerate() {
            if let Some(event) = exec.trigger {
                named.push((event, true, index as u32));
            }
            if let Some(event) = exec.reaction {
                named.push((event, false, index as u32));
            }
        }
        // By event, then execution id (so nothing depends on the input order).
        named.sort_unstable_by_key(|(event, as_trigger, index)| (*event, !*as_trigger, *index));
        let mut event_decisions: Vec<(Uuid, EventDecision)> = Vec::new();
        let mut derived_created: IdMap<(i64, Uuid)> = IdMap::default();
        for group in named.chunk_by(|a, b| a.0 == b.0) {
            let event = group[0].0;
            let fact = events.get(&event);
            let exec = |index: u32| &executions.rows[index as usize];
            let (triggers, reactions): (Vec<_>, Vec<_>) = group.iter().partition(|n| n.1);
            if fact.is_some_and(|f| known(f.created).is_none()) {
                let earliest = group
                    .iter()
                    .filter_map(|n| exec_created[n.2 as usize].map(|c| (c.0, exec(n.2).0)))
                    .min();
                if let Some(earliest) = earliest {
                    derived_created.insert(event, earliest);
                }
            }
            let reaction_of_completed = reactions
                .iter()
                .any(|n: &&(Uuid, bool, u32)| exec_status[n.2 as usize].0 == "completed");
            let pick = |list: &[&(Uuid, bool, u32)]| {
                let mut migrated = list.iter().filter(|n| exec_migrated[n.2 as usize]);
                match (migrated.next(), migrated.next()) {
                    (Some(one), None) => Some(exec(one.2).0),
                    _ => None,
                }
            };
            event_decisions.push((
                event,
                EventDecision {
                    exists: fact.is_some(),
                    reaction_of_completed,
                    execution: pick(&reactions).or_else(|| pick(&triggers)),
                },
            ));
        }
        drop(named);
        drop(events);
        let event_decisions = IdTable::new(event_decisions);

        // 7. Contexts: latest execution, current execution, status, thread.
        let mut latest: IdMap<(i64, Uuid)> = IdMap::default();
        for (index, (id, exec)) in executions.iter().enumerate() {
            if !exec_migrated[index] {
                continue;
            }
            let (Some(ctx), Some((created, _))) = (exec.context, exec_created[index]) else {
                continue;
            };
            let rank = (created, *id);
            let entry = latest.entry(ctx).or_insert(rank);
            if *entry < rank {
                *entry = rank;
            }
        }
        let status_of = |id: &Uuid| exec_index(id).map_or("failed", |i| exec_status[i].0);
        let is_migrated = |id: &Uuid| exec_index(id).is_some_and(|i| exec_migrated[i]);
        let mut ctx_ids: Vec<Uuid> = ctx_created.keys().copied().collect();
        ctx_ids.sort();
        // Keys: explicit keys first (smallest id keeps a duplicate), then keyless contexts' ids.
        let mut taken: HashMap<String, Uuid> = HashMap::new();
        let mut decisions: IdMap<ContextDecision> = IdMap::default();
        for id in &ctx_ids {
            let ctx = &contexts[id];
            let mut decision = ContextDecision::default();
            if let Some(key) = &ctx.key {
                let existing = options
                    .existing_contexts
                    .get(key)
                    .filter(|existing| *existing != id);
                if let Some(existing) = existing {
                    decision.notes.push((
                        Rule::ThreadContextKeyConflict,
                        format!("key {key:?} is held by the existing thread_contexts row {existing}: the context and its thread are migrated without it"),
                    ));
                } else if let Some(owner) = taken.get(key) {
                    decision.notes.push((
                        Rule::KeyConflict,
                        format!("key {key:?} already belongs to context {owner}: omitted"),
                    ));
                } else {
                    taken.insert(key.clone(), *id);
                    decision.key = Some(key.clone());
                    decision.thread_key = Some(key.clone());
                }
            }
            decisions.insert(*id, decision);
        }
        for id in &ctx_ids {
            let ctx = &contexts[id];
            let Some(decision) = decisions.get_mut(id) else {
                continue;
            };
            if ctx.key.is_none() {
                let key = id.to_string();
                if let Some(owner) = taken.get(&key) {
                    decision.notes.push((Rule::KeyConflict, format!("thread key {key:?} (the context id) is the key of context {owner}: the thread gets no key")));
                } else {
                    taken.insert(key.clone(), *id);
                    decision.thread_key = Some(key);
                }
            }
            decision.thread_id = match decision
                .thread_key
                .as_ref()
                .and_then(|k| options.existing_threads.get(k))
            {
                Some(existing) => {
                    decision.notes.push((
                        Rule::ExistingThreadReused,
                        format!(
                            "thread_threads {existing} already has key {:?}: reused",
                            decision.thread_key.as_deref().unwrap_or_default()
                        ),
                    ));
                    *existing
                }
                None => derived_thread_id(id),
            };
            // Current execution: the legacy pointer if it is a migrated execution.
            let mut notes = Vec::new();
            let pointer = resolve_one(&ctx.current, "currentExecution", |rule, detail| {
                notes.push((rule, detail))
            });
            decision.notes.extend(notes);
            decision.current = match pointer {
                Some(exec) if is_migrated(&exec) => Some(exec),
                other => {
                    let fallback = latest.get(id).map(|(_, exec)| *exec);
                    let why = match other {
                        Some(exec) => {
                            format!("currentExecution {exec} is not a migrated execution")
                        }
                        None => "no currentExecution".to_string(),
                    };
                    match fallback {
                        Some(exec) => decision.notes.push((
                            Rule::CurrentExecutionDerived,
                            format!("{why}; the latest execution {exec} is used"),
                        )),
                        None if other.is_some() => decision
                            .notes
                            .push((Rule::DanglingLink, format!("{why}; dropped"))),
                        None => {}
                    }
                    fallback
                }
            };
            let current_live = decision
                .current
                .is_some_and(|e| status_of(&e) == "executing");
            let latest_failed = latest
                .get(id)
                .is_some_and(|(_, e)| status_of(e) == "failed");
            let raw = ctx.status.as_deref();
            let norm = raw.map(|s| s.trim().to_ascii_lowercase());
            let (status, note, legacy_failed) = match norm.as_deref() {
                None => (
                    "open",
                    Some((Rule::StatusInferred, "status null: open".to_string())),
                    false,
                ),
                Some("open") => ("open", mapped(raw, "open"), false),
                Some("streaming" | "executing") if current_live => {
                    ("streaming", mapped(raw, "streaming"), false)
                }
                Some("streaming" | "executing") => (
                    "open",
                    Some((
                        Rule::StatusStale,
                        format!(
                            "status {:?} but no live current execution at now: open",
                            raw.unwrap_or_default()
                        ),
                    )),
                    false,
                ),
                Some("closed") => ("closed", mapped(raw, "closed"), false),
                Some("failed") => (
                    "open",
                    Some((
                        Rule::ContextStatusFailed,
                        "status \"failed\" is not a context status: open, thread failed"
                            .to_string(),
                    )),
                    true,
                ),
                Some(_) => (
                    "open",
                    Some((
                        Rule::StatusInferred,
                        format!("status {} unknown: open", show(raw)),
                    )),
                    false,
                ),
            };
            decision.status = status;
            decision.notes.extend(note);
            decision.thread_status = if status == "streaming" {
                "streaming"
            } else if latest_failed || legacy_failed {
                "failed"
            } else if status == "closed" {
                "closed"
            } else {
                "open"
            };
            if let Some(created) = ctx_created.get(id) {
                decision.created = created.clone();
            }
        }

        // 8. One record per execution for pass 2.
        let IdTable {
            rows: exec_rows,
            shift,
            starts,
        } = executions;
        let exec_decisions = IdTable {
            rows: exec_rows
                .into_iter()
                .zip(exec_created)
                .zip(exec_status)
                .zip(exec_migrated)
                .map(|((((id, exec), created), status), migrated)| {
                    (
                        id,
                        ExecDecision {
                            migrated,
                            created,
                            status: status.0,
                            status_note: status.1.map(Box::new),
                            trigger: exec.trigger,
                            reaction: exec.reaction,
                            texts: exec.texts,
                        },
                    )
                })
                .collect(),
            shift,
            starts,
        };

        Join {
            contexts: decisions,
            executions: exec_decisions,
            migrated_steps,
            step_rank,
            events: event_decisions,
            event_created: derived_created,
            whatsapp_created,
            now_ms: options.now_ms,
            liveness_window_ms: options.liveness_window_ms,
        }
    }
}

fn show(raw: Option<&str>) -> String {
    match raw {
        Some(raw) => format!("{raw:?}"),
        None => "null".to_string(),
    }
}

/// Reports a status that matched only after trimming, lower-casing or a synonym.
fn mapped(raw: Option<&str>, canonical: &str) -> Option<(Rule, String)> {
    match raw {
        Some(raw) if raw != canonical => Some((
            Rule::StatusMapped,
            format!("status {raw:?} mapped to {canonical}"),
        )),
        _ => None,
    }
}

/// A step's status: its own, normalised, against its execution's final status (a running step
/// of an execution that is not executing is stale) and whether it is live at `now`.
fn step_status(raw: Option<&str>, exec_final: &str, live: bool) -> StatusDecision {
    match classify_run(raw) {
        Class::Running if exec_final == "executing" && live => ("running", mapped(raw, "running")),
        Class::Running => (
            "failed",
            Some((
                Rule::StatusStale,
                format!(
                    "status {:?} not live at now: failed",
                    raw.unwrap_or_default()
                ),
            )),
        ),
        Class::Completed => ("completed", mapped(raw, "completed")),
        Class::Failed => ("failed", mapped(raw, "failed")),
        Class::Unknown => {
            let status = if exec_final == "completed" {
                "completed"
            } else {
                "failed"
            };
            (
                status,
                Some((
                    Rule::StatusInferred,
                    format!(
                        "status {} inferred {status}: the execution is {exec_final}",
                        show(raw)
                    ),
                )),
            )
        }
    }
}

#[derive(Debug, Default)]
struct ContextDecision {
    created: (i64, Option<String>),
    key: Option<String>,
    thread_key: Option<String>,
    thread_id: Uuid,
    current: Option<Uuid>,
    status: &'static str,
    thread_status: &'static str,
    notes: Vec<(Rule, String)>,
}

// ---------------------------------------------------------------------------------------------
// Pass 2

/// A normalised status and, when normalising changed or inferred it, the rule and detail to
/// report.
type StatusDecision = (&'static str, Option<(Rule, String)>);

/// The decisions of pass 1; maps each row on its own.
#[derive(Debug)]
pub struct Join {
    contexts: IdMap<ContextDecision>,
    executions: IdTable<ExecDecision>,
    /// Steps that migrate (a migrated execution, and an eventId or one to derive).
    migrated_steps: IdTable<()>,
    /// Rank of the steps without an iteration.
    step_rank: IdMap<i64>,
    /// Events named by executions.
    events: IdTable<EventDecision>,
    /// For events named by executions without a usable createdAt: the earliest createdAt of
    /// those executions, and which.
    event_created: IdMap<(i64, Uuid)>,
    /// createdAt of the WhatsApp messages named by items without a usable createdAt.
    whatsapp_created: IdTable<i64>,
    now_ms: Option<i64>,
    liveness_window_ms: i64,
}

/// What pass 2 needs about an execution.
#[derive(Debug)]
struct ExecDecision {
    migrated: bool,
    /// createdAt (own or derived), and what a derived one came from.
    created: Option<(i64, Option<&'static str>)>,
    status: &'static str,
    /// What to report about the status, when normalising changed or inferred it.
    status_note: Option<Box<(Rule, String)>>,
    /// The trigger and reaction ids, and their first ids as written (a step without eventId
    /// copies one).
    trigger: Option<Uuid>,
    reaction: Option<Uuid>,
    texts: EventTexts,
}

/// What pass 2 needs about an event named by executions.
#[derive(Debug)]
struct EventDecision {
    /// A `context_events` row has this id.
    exists: bool,
    /// It answers a completed execution.
    reaction_of_completed: bool,
    /// The one migrated execution it answers, else the one migrated execution it triggered.
    execution: Option<Uuid>,
}

const ITEM_TYPES: &[(&str, &str)] = &[
    ("user.message", "input_text"),
    ("assistant.message", "output_text"),
    ("system.message", "ekairos:system"),
];
const THREAD_ITEM_TYPES: &[&str] = &["input_text", "output_text", "ekairos:system"];

impl Join {
    /// The thread id of a migrated context.
    pub fn thread_of(&self, context: &Uuid) -> Option<Uuid> {
        self.contexts.get(context).map(|d| d.thread_id)
    }

    pub fn is_step_migrated(&self, step: &Uuid) -> bool {
        self.migrated_steps.contains(step)
    }

    fn is_exec_migrated(&self, execution: &Uuid) -> bool {
        self.executions.get(execution).is_some_and(|e| e.migrated)
    }

    /// `context_contexts` -> `thread_contexts` + `thread_threads`.
    pub fn context(&self, row: LegacyContext) -> Emitted {
        const NS: LegacyNamespace = LegacyNamespace::ContextContexts;
        let mut out = Emitted::default();
        out.issues(NS, row.id, &row.issues);
        let Some(decision) = self.contexts.get(&row.id) else {
            required_date(NS, &row.id, "createdAt", &row.created_at, || None, &mut out);
            return out;
        };
        let derived = || {
            decision
                .created
                .1
                .clone()
                .map(|from| (decision.created.0, from))
        };
        let Some(created) =
            required_date(NS, &row.id, "createdAt", &row.created_at, derived, &mut out)
        else {
            return out;
        };
        let updated = optional_date(
            NS,
            &row.id as &dyn std::fmt::Display,
            "updatedAt",
            &row.updated_at,
            &mut out,
        );
        for (rule, detail) in &decision.notes {
            out.report(NS, row.id, *rule, detail.clone());
        }
        let name = row.content.as_ref().and_then(|content| {
            #[derive(serde::Deserialize)]
            struct Head {
                title: Option<serde_json::Value>,
            }
            match serde_json::from_str::<Head>(content.get()) {
                Ok(Head {
                    title: Some(serde_json::Value::String(title)),
                }) => Some(title),
                _ => None,
            }
        });
        out.rows.push(TargetRow::Thread(ThreadThreadRow {
            id: decision.thread_id,
            created_at: created.clone(),
            updated_at: updated.clone(),
            key: decision.thread_key.clone(),
            name,
            status: decision.thread_status.to_string(),
        }));
        out.rows.push(TargetRow::Context(ThreadContextRow {
            id: row.id,
            created_at: created,
            updated_at: updated,
            key: decision.key.clone(),
            status: decision.status.to_string(),
            content: row.content,
        }));
        out.link(
            TargetNamespace::ThreadContexts,
            row.id,
            "thread",
            decision.thread_id,
        );
        if let Some(current) = decision.current {
            out.link(
                TargetNamespace::ThreadContexts,
                row.id,
                "currentExecution",
                current,
            );
        }
        out
    }

    /// `story_executions` -> `thread_executions`.
    pub fn execution(&self, row: LegacyExecution) -> Emitted {
        const NS: LegacyNamespace = LegacyNamespace::StoryExecutions;
        let mut out = Emitted::default();
        let id = row.id;
        out.issues(NS, id, &row.issues);
        let mut notes = Vec::new();
        let context = resolve_one(&row.context, "context", |rule, detail| {
            notes.push((rule, detail))
        });
        for (rule, detail) in notes.drain(..) {
            out.report(NS, id, rule, detail);
        }
        let Some(thread) = context.and_then(|c| self.thread_of(&c)) else {
            let why = match context {
                Some(c) => format!("context {c} is not a migrated context"),
                None => "no context".to_string(),
            };
            out.report(NS, id, Rule::ExecutionWithoutContext, why);
            return out;
        };
        let context = context.unwrap();
        let decision = self.executions.get(&id);
        let derived = || {
            decision
                .and_then(|d| d.created.as_ref())
                .and_then(|(ms, from)| from.map(|f| (*ms, f.to_string())))
        };
        let Some(created) = required_date(NS, &id, "createdAt", &row.created_at, derived, &mut out)
        else {
            return out;
        };
        let updated = optional_date(NS, &id, "updatedAt", &row.updated_at, &mut out);
        let (status, note) = decision.map_or(("failed", None), |d| {
            (d.status, d.status_note.as_deref().cloned())
        });
        if let Some((rule, detail)) = note {
            out.report(NS, id, rule, detail);
        }
        out.rows.push(TargetRow::Execution(ThreadExecutionRow {
            id,
            created_at: created,
            updated_at: updated,
            status: status.to_string(),
            workflow_run_id: row.workflow_run_id,
        }));
        out.link(TargetNamespace::ThreadExecutions, id, "context", context);
        out.link(TargetNamespace::ThreadExecutions, id, "thread", thread);
        for (label, ids) in [("trigger", &row.trigger), ("reaction", &row.reaction)] {
            let target = resolve_one(ids, label, |rule, detail| notes.push((rule, detail)));
            if let Some(target) = target {
                if self.events.get(&target).is_some_and(|e| e.exists) {
                    out.link(TargetNamespace::ThreadExecutions, id, label, target);
                } else {
                    notes.push((
                        Rule::DanglingLink,
                        format!("{label} {target}: no such context_events row; link dropped"),
                    ));
                }
            }
        }
        for (rule, detail) in notes {
            out.report(NS, id, rule, detail);
        }
        out
    }

    /// `story_steps` -> `thread_steps`.
    pub fn step(&self, row: LegacyStep) -> Emitted {
        const NS: LegacyNamespace = LegacyNamespace::StorySteps;
        let mut out = Emitted::default();
        let id = row.id;
        out.issues(NS, id, &row.issues);
        let (execution, notes) = step_execution(&row);
        for (rule, detail) in notes {
            out.report(NS, id, rule, detail);
        }
        let exec = execution.and_then(|e| self.executions.get(&e).map(|d| (e, d)));
        let Some((execution, exec)) = exec.filter(|(_, d)| d.migrated) else {
            let why = match execution {
                Some(e) => format!("execution {e} is not a migrated execution"),
                None => "no execution link or executionId".to_string(),
            };
            out.report(NS, id, Rule::StepWithoutExecution, why);
            return out;
        };
        let event_id = match row.event_id.clone() {
            Some(event) => event,
            None => {
                let (trigger, reaction) = (
                    exec.texts.text(0, exec.trigger),
                    exec.texts.text(1, exec.reaction),
                );
                match (reaction, trigger) {
                    (Some(reaction), _) => {
                        out.report(
                            NS,
                            id,
                            Rule::EventIdDerived,
                            format!(
                                "eventId missing; the execution's reaction id {reaction} is used"
                            ),
                        );
                        reaction
                    }
                    (None, Some(trigger)) => {
                        out.report(NS, id, Rule::EventIdDerived, format!("eventId missing; the execution has no reaction, its trigger id {trigger} is used"));
                        trigger
                    }
                    (None, None) => {
                        out.report(
                            NS,
                            id,
                            Rule::StepEventIdMissing,
                            "eventId missing and the execution has no reaction or trigger id",
                        );
                        return out;
                    }
                }
            }
        };
        let derived = || {
            exec.created
                .as_ref()
                .map(|(ms, _)| (*ms, "the execution's createdAt".to_string()))
        };
        let Some(created) = required_date(NS, &id, "createdAt", &row.created_at, derived, &mut out)
        else {
            return out;
        };
        let updated = optional_date(NS, &id, "updatedAt", &row.updated_at, &mut out);
        let iteration = match row.iteration {
            Some(iteration) => iteration,
            None => {
                let rank = self.step_rank.get(&id).copied().unwrap_or(0);
                out.report(
                    NS,
                    id,
                    Rule::IterationDerived,
                    format!("iteration missing; {rank} (rank by createdAt within the execution)"),
                );
                rank
            }
        };
        let activity = millis(&row.updated_at).or(millis(&row.created_at));
        let live = match (self.now_ms, activity) {
            (Some(now), Some(at)) => now - at <= self.liveness_window_ms,
            _ => false,
        };
        let (status, note) = step_status(row.status.as_deref(), exec.status, live);
        if let Some((rule, detail)) = note {
            out.report(NS, id, rule, detail);
        }
        out.rows.push(TargetRow::Step(ThreadStepRow {
            id,
            created_at: created,
            updated_at: updated,
            status: status.to_string(),
            iteration,
            execution_id: execution,
            trigger_event_id: row.trigger_event_id,
            reaction_event_id: row.reaction_event_id,
            event_id,
            tool_calls: row.tool_calls,
            tool_execution_results: row.tool_execution_results,
            continue_loop: row.continue_loop,
            error_text: row.error_text,
        }));
        out.link(TargetNamespace::ThreadSteps, id, "execution", execution);
        out
    }

    /// `context_events` -> `thread_items`.
    pub fn event(&self, row: LegacyEvent) -> Emitted {
        const NS: LegacyNamespace = LegacyNamespace::ContextEvents;
        let mut out = Emitted::default();
        let id = row.id;
        out.issues(NS, id, &row.issues);
        let refs = self.events.get(&id);
        // createdAt: own, else the WhatsApp message the item mirrors (the exact instant),
        // else the execution that triggered or answered with it.
        let derived = || {
            row.whatsapp_messages
                .iter()
                .filter_map(|text| parse_uuid(text))
                .filter_map(|(wa, _)| self.whatsapp_created.get(&wa).map(|ms| (*ms, wa)))
                .min()
                .map(|(ms, wa)| (ms, format!("whatsapp_messages {wa}'s createdAt")))
                .or_else(|| {
                    self.event_created
                        .get(&id)
                        .map(|(ms, exec)| (*ms, format!("execution {exec}'s createdAt")))
                })
        };
        let Some(created) = required_date(NS, &id, "createdAt", &row.created_at, derived, &mut out)
        else {
            return out;
        };
        let channel = match row.channel.as_deref().map(str::trim) {
            Some(channel) if !channel.is_empty() => row.channel.clone().unwrap(),
            _ => {
                out.report(NS, id, Rule::ChannelDefaulted, "channel missing: web");
                "web".to_string()
            }
        };
        let kind = match row.kind.as_deref() {
            Some(kind) => match ITEM_TYPES.iter().find(|(old, _)| *old == kind) {
                Some((_, new)) => Some(new.to_string()),
                None => {
                    if !THREAD_ITEM_TYPES.contains(&kind) {
                        out.report(
                            NS,
                            id,
                            Rule::ItemTypeUnknown,
                            format!("type {kind:?} unknown: kept"),
                        );
                    }
                    Some(kind.to_string())
                }
            },
            None => {
                out.report(NS, id, Rule::ItemTypeUnknown, "no type: none written");
                None
            }
        };
        let reaction_of_completed = refs.is_some_and(|r| r.reaction_of_completed);
        let status = match row.status.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
            Some(s) if matches!(s.as_str(), "stored" | "pending" | "completed") => {
                if let Some((rule, detail)) = mapped(row.status.as_deref(), &s) {
                    out.report(NS, id, rule, detail);
                }
                Some(s)
            }
            other => {
                let status = if reaction_of_completed {
                    "completed"
                } else {
                    "stored"
                };
                let was = match &other {
                    Some(_) => show(row.status.as_deref()),
                    None => "null".to_string(),
                };
                out.report(
                    NS,
                    id,
                    Rule::StatusInferred,
                    format!("status {was} inferred {status}"),
                );
                Some(status.to_string())
            }
        };
        out.rows.push(TargetRow::Item(ThreadItemRow {
            id,
            channel,
            created_at: created,
            kind,
            content: row.content,
            status,
        }));
        const ITEMS: TargetNamespace = TargetNamespace::ThreadItems;
        let mut notes = Vec::new();
        match resolve_one(&row.context, "context", |rule, detail| notes.push((rule, detail))) {
            Some(context) => match self.thread_of(&context) {
                Some(thread) => {
                    out.link(ITEMS, id, "context", context);
                    out.link(ITEMS, id, "thread", thread);
                }
                None => notes.push((Rule::DanglingLink, format!("context {context}: not a migrated context; context and thread links dropped"))),
            },
            None => notes.push((Rule::EventWithoutContext, "no context: migrated without context and thread links".to_string())),
        }
        match resolve_one(&row.execution, "execution", |rule, detail| {
            notes.push((rule, detail))
        }) {
            Some(exec) if self.is_exec_migrated(&exec) => out.link(ITEMS, id, "execution", exec),
            Some(exec) => notes.push((
                Rule::DanglingLink,
                format!("execution {exec}: not a migrated execution; link dropped"),
            )),
            None => {
                // Derived: the one migrated execution this item answers, else the one it triggered.
                if let Some(exec) = refs.and_then(|r| r.execution) {
                    out.link(ITEMS, id, "execution", exec);
                }
            }
        }
        for (label, ids) in [
            ("whatsappMessages", &row.whatsapp_messages),
            ("emails", &row.emails),
        ] {
            let mut targets = Vec::new();
            for text in ids {
                match parse_uuid(text) {
                    Some((target, _)) => targets.push(target),
                    None => notes.push((
                        Rule::LinkInvalidId,
                        format!("{label} {text:?} is not a UUID; link dropped"),
                    )),
                }
            }
            targets.sort();
            targets.dedup();
            for target in targets {
                out.link(ITEMS, id, label, target);
            }
        }
        for (rule, detail) in notes {
            out.report(NS, id, rule, detail);
        }
        out
    }

    /// `story_parts` -> `thread_parts` (before the key de-duplication, which needs all parts
    /// of a key together and is done by the caller on [`ThreadPartRow::key`]).
    pub fn part(&self, row: LegacyPart, ordinal: u64) -> Emitted {
        const NS: LegacyNamespace = LegacyNamespace::StoryParts;
        let mut out = Emitted::default();
        let report_id = row
            .id
            .map(|id| id.to_string())
            .unwrap_or_else(|| format!("#{ordinal}"));
        out.issues(NS, &report_id, &row.issues);
        let (step, notes) = part_step(&row);
        for (rule, detail) in notes {
            out.report(NS, &report_id, rule, detail);
        }
        let Some(step) = step.filter(|s| self.is_step_migrated(s)) else {
            let why = match (step, &row.step_id) {
                (Some(s), _) => format!("step {s} is not a migrated step"),
                (None, Some(text)) => format!("no step link and stepId {text:?} is not a UUID"),
                (None, None) => "no step link or stepId".to_string(),
            };
            out.report(NS, &report_id, Rule::PartWithoutStep, why);
            return out;
        };
        let idx = match row.idx {
            Some(idx) if idx >= 0 => idx,
            Some(idx) => {
                out.report(
                    NS,
                    &report_id,
                    Rule::PartIdxInvalid,
                    format!("idx {idx} is negative"),
                );
                return out;
            }
            None => {
                out.report(
                    NS,
                    &report_id,
                    Rule::PartIdxInvalid,
                    "idx missing or not an integer",
                );
                return out;
            }
        };
        let key = format!("{step}:{idx}");
        match &row.key {
            Some(legacy) if *legacy == key => {}
            Some(legacy) => out.report(
                NS,
                &report_id,
                Rule::PartKeyRecomputed,
                format!("key {legacy:?} recomputed as {key}"),
            ),
            None => out.report(
                NS,
                &report_id,
                Rule::PartKeyRecomputed,
                format!("no key; {key}"),
            ),
        }
        let id = match row.id {
            Some(id) => id,
            None => {
                let id = derived_part_id(&key);
                out.report(
                    NS,
                    &report_id,
                    Rule::PartIdDerived,
                    format!("no id; {id} derived from the key"),
                );
                id
            }
        };
        if row.part.is_none() {
            out.report(
                NS,
                &report_id,
                Rule::PartPayloadMissing,
                "part missing: the row is migrated without it",
            );
        }
        let updated = optional_date(NS, &report_id, "updatedAt", &row.updated_at, &mut out);
        out.rows.push(TargetRow::Part(ThreadPartRow {
            id,
            key,
            step_id: step,
            idx,
            kind: row.kind.or(row.part_type),
            part: row.part,
            updated_at: updated,
        }));
        out.link(TargetNamespace::ThreadParts, id, "step", step);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64, spread: bool) -> Vec<Uuid> {
        (0..n)
            .map(|i| {
                if spread {
                    uuid::Uuid::new_v5(&crate::MIGRATION_NS, &i.to_le_bytes())
                } else {
                    // Ids that differ only at the end, like hand-written fixtures.
                    Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0000 | u128::from(i))
                }
            })
            .collect()
    }

    #[test]
    fn id_table_finds_every_id_keeps_the_first_of_a_repeated_one_and_nothing_else() {
        for spread in [true, false] {
            let all = ids(5000, spread);
            let mut rows: Vec<(Uuid, u64)> = all
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, i as u64))
                .collect();
            rows.push((all[7], 99_999));
            let table = IdTable::new(rows);
            assert_eq!(table.len(), 5000);
            for (i, id) in all.iter().enumerate() {
                assert_eq!(table.get(id), Some(&(i as u64)), "{id}");
            }
            assert_eq!(table.get(&Uuid::nil()), None);
            assert_eq!(table.get(&Uuid::max()), None);
            if spread {
                // Random ids: a lookup searches a handful of rows at most.
                let widest = table.starts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
                assert!(widest <= 12, "{widest}");
            }
        }
    }

    #[test]
    fn id_hasher_spreads_ids_that_differ_in_one_byte() {
        use std::hash::BuildHasher;
        let hasher = BuildHasherDefault::<IdHasher>::default();
        let buckets: HashSet<u64> = ids(4096, false)
            .iter()
            .map(|id| hasher.hash_one(id) & 4095)
            .collect();
        assert!(buckets.len() > 2500, "{}", buckets.len());
    }
}
