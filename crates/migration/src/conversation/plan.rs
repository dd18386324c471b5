//! The backfill plan: which thread, context, items and links each award needs, computed from
//! what was read. **Pure**: no clock, no I/O; the same source gives the same plan, byte for
//! byte, and the same steps (their sha256 is part of the plan).
//!
//! Fixes over the old script (anchor §3.21, §8.3 #30, §8.5 #38, §8.6 #39–42):
//! * each message goes to exactly one award's timeline (`thread_items.context` is single
//!   valued), decided per conversation: the award whose context (thread or legacy) already
//!   holds one of its messages, else the one award its messages name, else the tender's only
//!   award, else its only award with neither a conversation nor a legacy context; otherwise
//!   the messages are rejected as ambiguous, never linked to every award in turn;
//! * an award whose conversation lives in a legacy context not migrated yet is skipped (the
//!   migration moves it; a context made now would take the key the migrated one needs);
//! * a date that does not parse rejects the message (reported), it is never "now";
//! * ids are UUIDv5 under [`crate::MIGRATION_NS`] (context from its key, thread from the
//!   context, item from its WhatsApp message), existing rows with the key are reused, and
//!   existing rows are never rewritten (only missing links are added);
//! * non-UUID ids are rejected with a rule, never dropped silently;
//! * thread `updatedAt` is the latest message date, not the last-created message's.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::source::{ConversationMessageRow, ItemRow, LegacyEventRow, MessageRow, Source};
use super::{canonical_uuid, context_key, derived_context_id, derived_item_id};
use crate::dates::{classify, format_millis};
use crate::model::{DateValue, LegacyDate};

/// Rule ids of the backfill's decisions (stable snake_case, reported in `rejected` / `notes`).
pub mod rules {
    /// A WhatsApp message whose id is not a UUID: it cannot be linked.
    pub const WHATSAPP_MESSAGE_ID_NOT_UUID: &str = "whatsapp_message_id_not_uuid";
    /// A WhatsApp message whose `createdAt` is missing or does not parse: its place in the
    /// timeline is unknown, so no item is made (never "now").
    pub const WHATSAPP_MESSAGE_DATE_INVALID: &str = "whatsapp_message_date_invalid";
    /// A conversation that cannot be given to exactly one award of the tender.
    pub const CONVERSATION_AWARD_AMBIGUOUS: &str = "conversation_award_ambiguous";
    /// A message already has an item in another context: it is not moved.
    pub const WHATSAPP_MESSAGE_IN_OTHER_CONTEXT: &str = "whatsapp_message_in_other_context";
    /// A conversation message already linked to another context or item: not overwritten.
    pub const CONVERSATION_MESSAGE_LINKED_ELSEWHERE: &str = "conversation_message_linked_elsewhere";
    /// A conversation message whose id is not a UUID.
    pub const CONVERSATION_MESSAGE_ID_NOT_UUID: &str = "conversation_message_id_not_uuid";
    /// An award whose id is not a UUID.
    pub const AWARD_ID_NOT_UUID: &str = "award_id_not_uuid";
    /// A thread or context must be created for an award but no date is known for it (no
    /// message date, no award date).
    pub const AWARD_CREATED_AT_UNKNOWN: &str = "award_created_at_unknown";
    /// Skipped: the award's conversation lives in a legacy context (`context_contexts` with
    /// its key) that is not migrated yet; the migration moves it, with its items' ids. Writing
    /// a context now would take the key the migrated context needs.
    pub const AWARD_CONTEXT_NOT_MIGRATED: &str = "award_context_not_migrated";
    /// Skipped: a conversation that mentions the tender but already lives in a context (thread
    /// or legacy) of none of its awards: it is that context's history, not an orphan.
    pub const CONVERSATION_IN_OTHER_CONTEXT: &str = "conversation_in_other_context";
    /// Noted: a message date in epoch seconds, read as seconds (× 1000).
    pub const WHATSAPP_MESSAGE_DATE_EPOCH_SECONDS: &str = "whatsapp_message_date_epoch_seconds";
    /// Noted: several contexts hold one award key; the first by id is used.
    pub const CONTEXT_KEY_DUPLICATE: &str = "context_key_duplicate";
}

/// How a conversation was given to an award.
pub mod attribution {
    /// Items (or legacy events) of its messages already sit in that award's context.
    pub const EXISTING_CONTEXT: &str = "existing_context";
    /// Its messages name that award (and no other of the tender).
    pub const AWARD_MENTIONED: &str = "award_mentioned";
    /// The tender has only that award.
    pub const SINGLE_AWARD: &str = "single_award";
    /// That award is the tender's only one with no conversation and no legacy context.
    pub const SINGLE_REMAINING_AWARD: &str = "single_remaining_award";
    /// Not given to any award (its messages are rejected).
    pub const AMBIGUOUS: &str = "ambiguous";
    /// Left where it is: it belongs to a context of none of the tender's awards.
    pub const ELSEWHERE: &str = "elsewhere";
}

/// A row the backfill did not use (or used with a fix), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub namespace: &'static str,
    pub id: String,
    pub rule: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Created,
    Existing,
}

/// One message's item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemPlan {
    pub item_id: String,
    pub whatsapp_message_id: String,
    pub created_at: DateValue,
    #[serde(rename = "type")]
    pub item_type: &'static str,
    pub disposition: Disposition,
    /// Link labels this run adds on the item.
    pub links_added: Vec<&'static str>,
}

/// One conversation message's links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageLinkPlan {
    pub id: String,
    pub whatsapp_message_id: String,
    pub item_id: String,
    /// Link labels this run adds (`context`, `event`).
    pub links_added: Vec<&'static str>,
}

/// One award's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwardPlan {
    pub award_id: String,
    pub context_key: String,
    pub context_id: String,
    pub thread_id: String,
    pub context: Disposition,
    pub thread: Disposition,
    /// Messages given to this award (items created or found).
    pub whatsapp_messages: usize,
    pub conversation_messages: usize,
    pub items_created: usize,
    pub items_existing: usize,
    pub items: Vec<ItemPlan>,
    pub conversation_message_links: Vec<MessageLinkPlan>,
}

/// One conversation and the award it went to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationPlan {
    /// The conversation id, or `message:<id>` for a mentioning message without one.
    pub conversation: String,
    pub award_id: Option<String>,
    pub attribution: &'static str,
    pub messages: usize,
}

/// Link triples added, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkCounts {
    pub context_thread: u64,
    pub item_context: u64,
    pub item_thread: u64,
    pub item_whatsapp_message: u64,
    pub message_context: u64,
    pub message_event: u64,
}

impl LinkCounts {
    pub fn total(&self) -> u64 {
        self.context_thread
            + self.item_context
            + self.item_thread
            + self.item_whatsapp_message
            + self.message_context
            + self.message_event
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub awards: u64,
    pub messages: u64,
    pub conversation_messages: u64,
    pub threads_created: u64,
    pub contexts_created: u64,
    pub items_created: u64,
    pub items_existing: u64,
    pub links_created: u64,
    pub links: LinkCounts,
    pub rejected: u64,
    pub skipped: u64,
}

/// The plan (the evidence file `conversation-bridge.tx.json` without the steps' text).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub tender_id: String,
    /// What the app's schema lacks for these writes (apply refuses while not empty).
    pub schema_missing: Vec<String>,
    pub counts: Counts,
    pub awards: Vec<AwardPlan>,
    pub conversations: Vec<ConversationPlan>,
    pub rejected: Vec<Decision>,
    /// Awards left to the migration (not an error: nothing of theirs is lost).
    pub skipped: Vec<Decision>,
    pub notes: Vec<Decision>,
    pub step_count: usize,
    /// sha256 of the JSON array of every step, in order.
    pub steps_sha256: String,
    /// Steps in groups that must share a transaction (an entity and its links).
    #[serde(skip)]
    pub step_groups: Vec<Vec<Value>>,
}

impl Plan {
    pub fn steps(&self) -> impl Iterator<Item = &Value> {
        self.step_groups.iter().flatten()
    }
}

/// A usable message.
struct Message<'a> {
    id: String,
    millis: i64,
    created_at: DateValue,
    updated_millis: Option<i64>,
    row: &'a MessageRow,
}

fn conversation_of(row: &MessageRow) -> String {
    match &row.conversation {
        Some(conversation) => conversation.clone(),
        None => format!("message:{}", row.id),
    }
}

/// Computes the plan.
pub fn plan(source: &Source) -> Plan {
    let mut rejected = Vec::new();
    let mut notes = Vec::new();

    // Awards.
    let mut awards: Vec<(String, Option<i64>)> = Vec::new();
    for award in &source.awards {
        match canonical_uuid(&award.id) {
            Some(id) => {
                let millis = award.created_at.as_ref().and_then(|v| classify(v).millis());
                awards.push((id, millis));
            }
            None => rejected.push(Decision {
                namespace: "award_awards",
                id: award.id.clone(),
                rule: rules::AWARD_ID_NOT_UUID,
                detail: "the award id is not a UUID".into(),
            }),
        }
    }
    awards.sort();
    awards.dedup_by(|a, b| a.0 == b.0);
    let award_ids: Vec<&str> = awards.iter().map(|(id, _)| id.as_str()).collect();

    // Messages: usable ones, by conversation.
    let mut usable: BTreeMap<String, Vec<Message<'_>>> = BTreeMap::new();
    let mut by_conversation: BTreeMap<String, Vec<&MessageRow>> = BTreeMap::new();
    for row in &source.messages {
        by_conversation
            .entry(conversation_of(row))
            .or_default()
            .push(row);
        let Some(id) = canonical_uuid(&row.id) else {
            rejected.push(Decision {
                namespace: "whatsapp_messages",
                id: row.id.clone(),
                rule: rules::WHATSAPP_MESSAGE_ID_NOT_UUID,
                detail: "the message id is not a UUID".into(),
            });
            continue;
        };
        let date = row.created_at.as_ref().map(classify);
        let (millis, created_at) = match &date {
            Some(date) => match (date.millis(), date.to_target()) {
                (Some(millis), Some(target)) => (millis, target),
                _ => {
                    rejected.push(Decision {
                        namespace: "whatsapp_messages",
                        id,
                        rule: rules::WHATSAPP_MESSAGE_DATE_INVALID,
                        detail: format!(
                            "createdAt {} does not parse",
                            row.created_at
                                .as_ref()
                                .map(Value::to_string)
                                .unwrap_or_default()
                        ),
                    });
                    continue;
                }
            },
            None => {
                rejected.push(Decision {
                    namespace: "whatsapp_messages",
                    id,
                    rule: rules::WHATSAPP_MESSAGE_DATE_INVALID,
                    detail: "createdAt is missing".into(),
                });
                continue;
            }
        };
        if let Some(LegacyDate::Seconds { seconds, millis }) = &date {
            notes.push(Decision {
                namespace: "whatsapp_messages",
                id: id.clone(),
                rule: rules::WHATSAPP_MESSAGE_DATE_EPOCH_SECONDS,
                detail: format!("createdAt {seconds} read as {millis} ms"),
            });
        }
        let updated_millis = row.updated_at.as_ref().and_then(|v| classify(v).millis());
        usable
            .entry(conversation_of(row))
            .or_default()
            .push(Message {
                id,
                millis,
                created_at,
                updated_millis,
                row,
            });
    }
    let earliest_message = usable.values().flatten().map(|m| m.millis).min();

    // Existing rows.
    let mut items_by_message: BTreeMap<&str, Vec<&ItemRow>> = BTreeMap::new();
    let mut items_by_id: BTreeMap<&str, &ItemRow> = BTreeMap::new();
    for item in &source.items {
        items_by_id.insert(item.id.as_str(), item);
        for message in &item.whatsapp_messages {
            items_by_message
                .entry(message.as_str())
                .or_default()
                .push(item);
        }
    }
    let mut contexts_by_key: BTreeMap<&str, &super::source::ContextRow> = BTreeMap::new();
    for context in &source.contexts {
        if contexts_by_key.contains_key(context.key.as_str()) {
            notes.push(Decision {
                namespace: "thread_contexts",
                id: context.id.clone(),
                rule: rules::CONTEXT_KEY_DUPLICATE,
                detail: format!("another context holds key {} too", context.key),
            });
            continue;
        }
        contexts_by_key.insert(context.key.as_str(), context);
    }
    let award_of_context: BTreeMap<&str, &str> = contexts_by_key
        .iter()
        .filter_map(|(key, context)| {
            let award = key.strip_prefix("award_")?;
            award_ids
                .iter()
                .find(|id| **id == award)
                .map(|id| (context.id.as_str(), *id))
        })
        .collect();
    let mut threads_by_key: BTreeMap<&str, &str> = BTreeMap::new();
    for thread in &source.threads {
        threads_by_key
            .entry(thread.key.as_str())
            .or_insert(thread.id.as_str());
    }
    let mut cms_by_message: BTreeMap<&str, Vec<&ConversationMessageRow>> = BTreeMap::new();
    for cm in &source.conversation_messages {
        cms_by_message
            .entry(cm.whatsapp_message.as_str())
            .or_default()
            .push(cm);
    }

    // Conversations -> awards. First what the data says (a context already holding the
    // conversation, an award named in it), then the tender's only award, or its only award
    // that has neither a conversation nor a legacy context.
    let mut legacy_award_of_context: BTreeMap<&str, &str> = BTreeMap::new();
    for context in &source.legacy_contexts {
        if let Some(award) = context
            .key
            .strip_prefix("award_")
            .and_then(|award| award_ids.iter().find(|id| **id == award))
        {
            legacy_award_of_context.insert(context.id.as_str(), award);
        }
    }
    let legacy_awards: BTreeSet<&str> = legacy_award_of_context.values().copied().collect();
    let migrated_awards: BTreeSet<&str> = award_of_context.values().copied().collect();
    let mut legacy_events_by_message: BTreeMap<&str, Vec<&LegacyEventRow>> = BTreeMap::new();
    for event in &source.legacy_events {
        for message in &event.whatsapp_messages {
            legacy_events_by_message
                .entry(message.as_str())
                .or_default()
                .push(event);
        }
    }
    enum Attributed<'s> {
        To(&'s str, &'static str),
        Ambiguous(Vec<&'s str>),
        /// Already in contexts that are none of the tender's awards.
        Elsewhere(Vec<&'s str>),
    }
    let mut decided: BTreeMap<&str, Option<Attributed<'_>>> = BTreeMap::new();
    for (conversation, rows) in &by_conversation {
        let mut owners = BTreeSet::new();
        let mut foreign = BTreeSet::new();
        let mut mentioned = BTreeSet::new();
        for row in rows {
            let id = canonical_uuid(&row.id).unwrap_or_else(|| row.id.clone());
            let derived = derived_item_id(&id).to_string();
            let item_contexts = items_by_message
                .get(id.as_str())
                .into_iter()
                .flatten()
                .copied()
                .chain(items_by_id.get(derived.as_str()).copied())
                .filter_map(|item| item.context.as_deref())
                .map(|context| (context, award_of_context.get(context)));
            let event_contexts = legacy_events_by_message
                .get(id.as_str())
                .into_iter()
                .flatten()
                .filter_map(|event| event.context.as_deref())
                .map(|context| (context, legacy_award_of_context.get(context)));
            for (context, award) in item_contexts.chain(event_contexts) {
                match award {
                    Some(award) => {
                        owners.insert(*award);
                    }
                    None => {
                        foreign.insert(context);
                    }
                }
            }
            for award in &row.mentions_awards {
                if let Some(id) = award_ids.iter().find(|id| **id == award.as_str()) {
                    mentioned.insert(*id);
                }
            }
        }
        let decision = if owners.len() > 1 {
            Some(Attributed::Ambiguous(owners.into_iter().collect()))
        } else if let Some(owner) = owners.first() {
            Some(Attributed::To(owner, attribution::EXISTING_CONTEXT))
        } else if !foreign.is_empty() {
            Some(Attributed::Elsewhere(foreign.into_iter().collect()))
        } else if mentioned.len() > 1 {
            Some(Attributed::Ambiguous(mentioned.into_iter().collect()))
        } else {
            mentioned
                .first()
                .map(|award| Attributed::To(award, attribution::AWARD_MENTIONED))
        };
        decided.insert(conversation.as_str(), decision);
    }
    let claimed: BTreeSet<&str> = decided
        .values()
        .filter_map(|decision| match decision {
            Some(Attributed::To(award, _)) => Some(*award),
            _ => None,
        })
        .collect();
    let remaining: Vec<&str> = award_ids
        .iter()
        .copied()
        .filter(|award| !claimed.contains(award) && !legacy_awards.contains(award))
        .collect();
    let mut conversations = Vec::new();
    let mut skipped = Vec::new();
    let mut per_award: BTreeMap<&str, Vec<Message<'_>>> = BTreeMap::new();
    for (conversation, rows) in &by_conversation {
        let messages = usable.remove(conversation).unwrap_or_default();
        let decision = match decided.remove(conversation.as_str()).flatten() {
            Some(decision) => decision,
            None if award_ids.len() == 1 => Attributed::To(award_ids[0], attribution::SINGLE_AWARD),
            None if remaining.len() == 1 => {
                Attributed::To(remaining[0], attribution::SINGLE_REMAINING_AWARD)
            }
            None if remaining.is_empty() => Attributed::Ambiguous(award_ids.clone()),
            None => Attributed::Ambiguous(remaining.clone()),
        };
        let (award_id, how) = match &decision {
            Attributed::To(award, how) => (Some(award.to_string()), *how),
            Attributed::Ambiguous(_) => (None, attribution::AMBIGUOUS),
            Attributed::Elsewhere(_) => (None, attribution::ELSEWHERE),
        };
        conversations.push(ConversationPlan {
            conversation: conversation.clone(),
            award_id,
            attribution: how,
            messages: rows.len(),
        });
        match decision {
            Attributed::To(award, _) => per_award.entry(award).or_default().extend(messages),
            Attributed::Ambiguous(candidates) => {
                for message in messages {
                    rejected.push(Decision {
                        namespace: "whatsapp_messages",
                        id: message.id,
                        rule: rules::CONVERSATION_AWARD_AMBIGUOUS,
                        detail: format!(
                            "conversation {conversation} fits awards [{}]",
                            candidates.join(", ")
                        ),
                    });
                }
            }
            Attributed::Elsewhere(contexts) => skipped.push(Decision {
                namespace: "conversations",
                id: conversation.clone(),
                rule: rules::CONVERSATION_IN_OTHER_CONTEXT,
                detail: format!(
                    "its {} messages already belong to context(s) [{}], none of the tender's awards",
                    rows.len(),
                    contexts.join(", ")
                ),
            }),
        }
    }

    // Awards -> steps.
    let mut counts = Counts {
        awards: awards.len() as u64,
        ..Counts::default()
    };
    let mut step_groups: Vec<Vec<Value>> = Vec::new();
    let mut award_plans = Vec::new();
    for (award_id, award_millis) in &awards {
        let key = context_key(award_id);
        let mut messages = per_award.remove(award_id.as_str()).unwrap_or_default();
        if legacy_awards.contains(award_id.as_str()) && !migrated_awards.contains(award_id.as_str())
        {
            skipped.push(Decision {
                namespace: "award_awards",
                id: award_id.clone(),
                rule: rules::AWARD_CONTEXT_NOT_MIGRATED,
                detail: format!(
                    "legacy context {key} is not migrated yet; its {} messages move with it",
                    messages.len()
                ),
            });
            continue;
        }
        messages.sort_by(|a, b| (a.millis, &a.id).cmp(&(b.millis, &b.id)));
        let existing_context = contexts_by_key.get(key.as_str()).copied();
        let context_id = existing_context
            .map(|context| context.id.clone())
            .unwrap_or_else(|| derived_context_id(&key).to_string());
        let (thread_id, thread) = match existing_context.and_then(|c| c.thread.clone()) {
            Some(thread) => (thread, Disposition::Existing),
            None => match threads_by_key.get(key.as_str()) {
                Some(thread) => (thread.to_string(), Disposition::Existing),
                None => match uuid::Uuid::parse_str(&context_id) {
                    Ok(context) => (
                        crate::derived_thread_id(&context).to_string(),
                        Disposition::Created,
                    ),
                    // An existing context id the engine handed back is always a UUID.
                    Err(_) => (
                        crate::derived_thread_id(&derived_context_id(&key)).to_string(),
                        Disposition::Created,
                    ),
                },
            },
        };
        let context = if existing_context.is_some() {
            Disposition::Existing
        } else {
            Disposition::Created
        };
        let needs_date = context == Disposition::Created || thread == Disposition::Created;
        let created_millis = match (
            messages
                .first()
                .map(|m| m.millis)
                .or(*award_millis)
                .or(earliest_message),
            needs_date,
        ) {
            (Some(millis), _) => millis,
            // Nothing is created, so no date is written.
            (None, false) => 0,
            (None, true) => {
                rejected.push(Decision {
                    namespace: "award_awards",
                    id: award_id.clone(),
                    rule: rules::AWARD_CREATED_AT_UNKNOWN,
                    detail: format!("no message and no award date to date context {key}"),
                });
                continue;
            }
        };
        let updated_millis = messages
            .iter()
            .map(|m| m.updated_millis.map_or(m.millis, |u| u.max(m.millis)))
            .max()
            .unwrap_or(created_millis)
            .max(created_millis);
        let created_text = format_millis(created_millis);
        let updated_text = format_millis(updated_millis);

        let mut head = Vec::new();
        if thread == Disposition::Created {
            counts.threads_created += 1;
            head.push(json!(["update", "thread_threads", thread_id, {
                "key": key, "name": key, "status": "open",
                "createdAt": created_text, "updatedAt": updated_text,
            }]));
        }
        if context == Disposition::Created {
            counts.contexts_created += 1;
            head.push(json!(["update", "thread_contexts", context_id, {
                "key": key, "status": "open", "content": {},
                "createdAt": created_text, "updatedAt": updated_text,
            }]));
        }
        if existing_context.and_then(|c| c.thread.as_ref()).is_none() {
            counts.links.context_thread += 1;
            head.push(json!(["link", "thread_contexts", context_id, {"thread": thread_id}]));
        }
        if !head.is_empty() {
            step_groups.push(head);
        }

        let mut item_plans = Vec::new();
        let mut message_links = Vec::new();
        for message in &messages {
            let derived = derived_item_id(&message.id).to_string();
            let mut linked: Vec<&ItemRow> = items_by_message
                .get(message.id.as_str())
                .into_iter()
                .flatten()
                .copied()
                .chain(items_by_id.get(derived.as_str()).copied())
                .collect();
            linked.sort_by(|a, b| a.id.cmp(&b.id));
            linked.dedup_by(|a, b| a.id == b.id);
            let in_place = linked
                .iter()
                .find(|item| item.context.as_deref() == Some(context_id.as_str()))
                .or_else(|| linked.iter().find(|item| item.context.is_none()));
            let item_type = if message.row.outbound {
                "output_text"
            } else {
                "input_text"
            };
            let mut group = Vec::new();
            let mut link = Map::new();
            let (item_id, disposition) = match in_place {
                Some(item) => {
                    if item.context.is_none() {
                        link.insert("context".into(), json!(context_id));
                    }
                    if item.thread.is_none() {
                        link.insert("thread".into(), json!(thread_id));
                    }
                    if !item.whatsapp_messages.contains(&message.id) {
                        link.insert("whatsappMessages".into(), json!([message.id]));
                    }
                    counts.items_existing += 1;
                    (item.id.clone(), Disposition::Existing)
                }
                None if !linked.is_empty() => {
                    rejected.push(Decision {
                        namespace: "whatsapp_messages",
                        id: message.id.clone(),
                        rule: rules::WHATSAPP_MESSAGE_IN_OTHER_CONTEXT,
                        detail: format!(
                            "item {} sits in context {}, not {context_id}",
                            linked[0].id,
                            linked[0].context.as_deref().unwrap_or_default()
                        ),
                    });
                    continue;
                }
                None => {
                    let text = &message.row.text;
                    group.push(json!(["update", "thread_items", derived, {
                        "channel": "whatsapp",
                        "type": item_type,
                        "status": "stored",
                        "content": {"text": text, "parts": [{"type": "text", "text": text}]},
                        "createdAt": message.created_at,
                    }]));
                    link.insert("context".into(), json!(context_id));
                    link.insert("thread".into(), json!(thread_id));
                    link.insert("whatsappMessages".into(), json!([message.id]));
                    counts.items_created += 1;
                    (derived.clone(), Disposition::Created)
                }
            };
            let mut links_added = Vec::new();
            for (label, count) in [
                ("context", &mut counts.links.item_context),
                ("thread", &mut counts.links.item_thread),
                ("whatsappMessages", &mut counts.links.item_whatsapp_message),
            ] {
                if link.contains_key(label) {
                    *count += 1;
                    links_added.push(label);
                }
            }
            if !link.is_empty() {
                group.push(json!(["link", "thread_items", item_id, link]));
            }
            if !group.is_empty() {
                step_groups.push(group);
            }
            item_plans.push(ItemPlan {
                item_id: item_id.clone(),
                whatsapp_message_id: message.id.clone(),
                created_at: message.created_at.clone(),
                item_type,
                disposition,
                links_added,
            });

            let mut cms: Vec<&ConversationMessageRow> = cms_by_message
                .get(message.row.id.as_str())
                .cloned()
                .unwrap_or_default();
            cms.sort_by(|a, b| a.id.cmp(&b.id));
            for cm in cms {
                let Some(cm_id) = canonical_uuid(&cm.id) else {
                    rejected.push(Decision {
                        namespace: "conversation_messages",
                        id: cm.id.clone(),
                        rule: rules::CONVERSATION_MESSAGE_ID_NOT_UUID,
                        detail: "the conversation message id is not a UUID".into(),
                    });
                    continue;
                };
                let context_conflict = cm
                    .context
                    .as_deref()
                    .is_some_and(|linked| linked != context_id);
                let event_conflict = cm.event.as_deref().is_some_and(|linked| linked != item_id);
                if context_conflict || event_conflict {
                    rejected.push(Decision {
                        namespace: "conversation_messages",
                        id: cm_id,
                        rule: rules::CONVERSATION_MESSAGE_LINKED_ELSEWHERE,
                        detail: format!(
                            "linked to context {} and event {}; expected {context_id} and {item_id}",
                            cm.context.as_deref().unwrap_or("-"),
                            cm.event.as_deref().unwrap_or("-")
                        ),
                    });
                    continue;
                }
                let mut link = Map::new();
                let mut links_added = Vec::new();
                if cm.context.is_none() {
                    link.insert("context".into(), json!(context_id));
                    counts.links.message_context += 1;
                    links_added.push("context");
                }
                if cm.event.is_none() {
                    link.insert("event".into(), json!(item_id));
                    counts.links.message_event += 1;
                    links_added.push("event");
                }
                if !link.is_empty() {
                    step_groups.push(vec![json!(["link", "conversation_messages", cm_id, link])]);
                }
                message_links.push(MessageLinkPlan {
                    id: cm_id,
                    whatsapp_message_id: message.id.clone(),
                    item_id: item_id.clone(),
                    links_added,
                });
            }
        }
        counts.messages += item_plans.len() as u64;
        counts.conversation_messages += message_links.len() as u64;
        award_plans.push(AwardPlan {
            award_id: award_id.clone(),
            context_key: key,
            context_id,
            thread_id,
            context,
            thread,
            whatsapp_messages: item_plans.len(),
            conversation_messages: message_links.len(),
            items_created: item_plans
                .iter()
                .filter(|item| item.disposition == Disposition::Created)
                .count(),
            items_existing: item_plans
                .iter()
                .filter(|item| item.disposition == Disposition::Existing)
                .count(),
            items: item_plans,
            conversation_message_links: message_links,
        });
    }
    counts.links_created = counts.links.total();
    counts.rejected = rejected.len() as u64;
    counts.skipped = skipped.len() as u64;
    let steps: Vec<&Value> = step_groups.iter().flatten().collect();
    let steps_sha256 = crate::evidence::sha256_hex(
        &serde_json::to_vec(&steps).expect("JSON values always serialise"),
    );
    Plan {
        tender_id: source.tender_id.clone(),
        schema_missing: source.schema.missing.clone(),
        counts,
        awards: award_plans,
        conversations,
        rejected,
        skipped,
        notes,
        step_count: steps.len(),
        steps_sha256,
        step_groups,
    }
}
