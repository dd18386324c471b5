//! Reading the result back the way the esolbay timeline reads it: the context by its key
//! `award_<awardId>`, then `thread_items` whose `context.key` is that key, ordered by
//! `createdAt` (paged). Every expectation of the plan is checked, not merely counted (the old
//! script reported `ok: true` whatever the counts were).

use std::collections::BTreeMap;

use instant_api::{AppAuth, InstantApi};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::plan::Plan;
use super::source::{children, link_ids, string_id, Reader};
use super::ConversationError;
use crate::dates::classify;

/// One award's timeline as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwardVerify {
    pub award_id: String,
    pub context_key: String,
    pub context_id: String,
    pub thread_id: String,
    /// Contexts holding the key (exactly one is expected, the planned one).
    pub contexts_with_key: usize,
    pub thread_linked: bool,
    /// Items the timeline query returns (other items of the context included).
    pub timeline_items: usize,
    pub expected_items: usize,
    /// Expected items found in the timeline with their WhatsApp message and thread linked.
    pub items_found: usize,
    /// Whether the timeline came back in `createdAt` order with every date readable.
    pub ordered: bool,
    pub expected_conversation_messages: usize,
    pub conversation_messages_linked: usize,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    pub ok: bool,
    pub awards: Vec<AwardVerify>,
    pub timeline_items: u64,
    pub expected_items: u64,
    pub items_found: u64,
    pub expected_conversation_messages: u64,
    pub conversation_messages_linked: u64,
    /// Query requests made.
    pub requests: u64,
}

struct TimelineItem {
    thread: Option<String>,
    whatsapp_messages: Vec<String>,
}

/// Checks every award of `plan`.
pub fn verify(
    api: &dyn InstantApi,
    auth: &AppAuth,
    plan: &Plan,
    page_size: usize,
) -> Result<Verify, ConversationError> {
    let mut reader = Reader {
        api,
        auth,
        page_size: page_size.max(1),
        requests: 0,
    };
    let mut awards = Vec::new();
    for award in &plan.awards {
        let mut problems = Vec::new();
        let key = &award.context_key;

        let mut contexts = Vec::new();
        reader.each(
            "thread_contexts",
            Some(json!({"key": key})),
            children(&["thread"]),
            &mut |row| contexts.push((string_id(row), link_ids(row.get("thread")))),
        )?;
        let found = contexts.iter().find(|(id, _)| *id == award.context_id);
        if contexts.len() != 1 || found.is_none() {
            problems.push(format!(
                "context key {key}: expected context {} only, found [{}]",
                award.context_id,
                contexts
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let thread_linked =
            found.is_some_and(|(_, threads)| threads.len() == 1 && threads[0] == award.thread_id);
        if found.is_some() && !thread_linked {
            problems.push(format!(
                "context {} is not linked to thread {}",
                award.context_id, award.thread_id
            ));
        }

        let mut timeline: BTreeMap<String, TimelineItem> = BTreeMap::new();
        let mut previous: Option<i64> = None;
        let mut ordered = true;
        reader.each_ordered(
            "thread_items",
            Some(json!({"context.key": key})),
            Some(json!({"createdAt": "asc"})),
            children(&["thread", "whatsappMessages"]),
            &mut |row: &Map<String, Value>| {
                let millis = row.get("createdAt").and_then(|v| classify(v).millis());
                match (previous, millis) {
                    (_, None) => ordered = false,
                    (Some(before), Some(now)) if now < before => ordered = false,
                    _ => {}
                }
                if millis.is_some() {
                    previous = millis;
                }
                timeline.insert(
                    string_id(row),
                    TimelineItem {
                        thread: link_ids(row.get("thread")).into_iter().next(),
                        whatsapp_messages: link_ids(row.get("whatsappMessages")),
                    },
                );
            },
        )?;
        if !ordered {
            problems.push(format!(
                "timeline of {key} is not in createdAt order (or holds an unreadable date)"
            ));
        }
        let mut items_found = 0;
        for item in &award.items {
            match timeline.get(&item.item_id) {
                None => problems.push(format!(
                    "item {} (whatsapp message {}) is not in the timeline of {key}",
                    item.item_id, item.whatsapp_message_id
                )),
                Some(found) => {
                    let mut good = true;
                    if !found.whatsapp_messages.contains(&item.whatsapp_message_id) {
                        good = false;
                        problems.push(format!(
                            "item {} is not linked to whatsapp message {}",
                            item.item_id, item.whatsapp_message_id
                        ));
                    }
                    if found.thread.as_deref() != Some(award.thread_id.as_str()) {
                        good = false;
                        problems.push(format!(
                            "item {} is not linked to thread {}",
                            item.item_id, award.thread_id
                        ));
                    }
                    if good {
                        items_found += 1;
                    }
                }
            }
        }

        let mut linked = 0;
        let expected: BTreeMap<&str, &str> = award
            .conversation_message_links
            .iter()
            .map(|cm| (cm.id.as_str(), cm.item_id.as_str()))
            .collect();
        let ids: Vec<&str> = expected.keys().copied().collect();
        let mut seen: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
        for chunk in ids.chunks(reader.in_chunk()) {
            reader.each(
                "conversation_messages",
                Some(json!({"id": {"$in": chunk}})),
                children(&["context", "event"]),
                &mut |row| {
                    seen.insert(
                        string_id(row),
                        (
                            link_ids(row.get("context")).into_iter().next(),
                            link_ids(row.get("event")).into_iter().next(),
                        ),
                    );
                },
            )?;
        }
        for (id, item) in &expected {
            match seen.get(*id) {
                Some((Some(context), Some(event)))
                    if *context == award.context_id && event == item =>
                {
                    linked += 1
                }
                other => problems.push(format!(
                    "conversation message {id}: expected context {} and event {item}, found {}",
                    award.context_id,
                    match other {
                        None => "no row".to_string(),
                        Some((context, event)) => format!(
                            "context {} and event {}",
                            context.as_deref().unwrap_or("-"),
                            event.as_deref().unwrap_or("-")
                        ),
                    }
                )),
            }
        }

        awards.push(AwardVerify {
            award_id: award.award_id.clone(),
            context_key: key.clone(),
            context_id: award.context_id.clone(),
            thread_id: award.thread_id.clone(),
            contexts_with_key: contexts.len(),
            thread_linked,
            timeline_items: timeline.len(),
            expected_items: award.items.len(),
            items_found,
            ordered,
            expected_conversation_messages: expected.len(),
            conversation_messages_linked: linked,
            problems,
        });
    }
    let sum = |f: fn(&AwardVerify) -> usize| awards.iter().map(f).sum::<usize>() as u64;
    Ok(Verify {
        ok: awards.iter().all(|award| award.problems.is_empty()),
        timeline_items: sum(|a| a.timeline_items),
        expected_items: sum(|a| a.expected_items),
        items_found: sum(|a| a.items_found),
        expected_conversation_messages: sum(|a| a.expected_conversation_messages),
        conversation_messages_linked: sum(|a| a.conversation_messages_linked),
        requests: reader.requests,
        awards,
    })
}
