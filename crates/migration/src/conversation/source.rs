//! Reading what the backfill needs, page by page (`limit`/`offset` in the default order, the
//! only paging `/admin/query` has), never a whole namespace in one request.
//!
//! Memory holds the tender's awards, the messages of its conversations and the thread rows
//! that touch them, never the app's whole `whatsapp_messages` namespace: that one is scanned
//! page by page for the messages that mention the tender (bodies are not indexed, so the
//! server cannot filter them).

use std::collections::{BTreeMap, BTreeSet};

use instant_api::{AppAuth, InstantApi, QueryRequest};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::schema::{facts, SchemaFacts, WhatsappMessageRef};
use super::{canonical_uuid, ConversationError};

/// An `award_awards` row of the tender.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwardRow {
    pub id: String,
    /// `createdAt` as stored (used only when the award has no message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Value>,
}

/// A `whatsapp_messages` row of one of the tender's conversations. The text is kept for the
/// item it becomes but never written to the evidence (the old script copied whole rows,
/// bodies and provider payloads included, to disk).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRow {
    /// As stored (canonical form checked by the plan).
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    #[serde(skip)]
    pub text: String,
    pub outbound: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Value>,
    /// Whether the text names the tender.
    pub mentions_tender: bool,
    /// Award ids of the tender the text names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions_awards: Vec<String>,
}

/// A `thread_items` row linked to one of the messages (or holding the id the backfill derives
/// for one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemRow {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    pub whatsapp_messages: Vec<String>,
}

/// A `conversation_messages` row naming one of the messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationMessageRow {
    pub id: String,
    pub whatsapp_message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// A `thread_contexts` row whose key is `award_<awardId>` of one of the awards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextRow {
    pub id: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
}

/// A legacy `context_events` row linked to one of the messages: the message already belongs
/// to that event's context, which the migration (not the backfill) moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyEventRow {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub whatsapp_messages: Vec<String>,
}

/// A `thread_threads` row holding one of the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadRow {
    pub id: String,
    pub key: String,
}

/// Everything the plan is computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub tender_id: String,
    pub schema: SchemaFacts,
    pub awards: Vec<AwardRow>,
    /// `whatsapp_messages` rows scanned for a mention of the tender.
    pub scanned_messages: u64,
    /// Messages that mention the tender.
    pub seed_messages: u64,
    pub conversation_ids: Vec<String>,
    /// The messages of those conversations (and mentioning messages without a conversation),
    /// by id.
    pub messages: Vec<MessageRow>,
    pub items: Vec<ItemRow>,
    pub conversation_messages: Vec<ConversationMessageRow>,
    pub contexts: Vec<ContextRow>,
    pub threads: Vec<ThreadRow>,
    /// Legacy `context_contexts` rows holding one of the keys (`thread` is not read).
    pub legacy_contexts: Vec<ContextRow>,
    /// Legacy `context_events` linked to one of the messages (in any context).
    pub legacy_events: Vec<LegacyEventRow>,
    /// Query requests made.
    pub requests: u64,
}

/// Reading knobs.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Rows per page and ids per `$in` list.
    pub page_size: usize,
}

/// Reads everything for `tender_id` (canonical UUID). `progress` gets a line now and then.
pub fn read(
    api: &dyn InstantApi,
    auth: &AppAuth,
    tender_id: &str,
    options: ReadOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Source, ConversationError> {
    let mut reader = Reader {
        api,
        auth,
        page_size: options.page_size.max(1),
        requests: 0,
    };
    let pulled = api
        .schema_pull(auth)
        .map_err(|source| ConversationError::api("schema pull", source))?;
    let schema = facts(&pulled.schema);

    let mut awards = Vec::new();
    reader.each(
        "award_awards",
        Some(json!({"tender.id": tender_id})),
        Map::new(),
        &mut |row| {
            awards.push(AwardRow {
                id: string_id(row),
                created_at: present(row.get("createdAt")),
            });
        },
    )?;
    if awards.is_empty() {
        return Err(ConversationError::NoAwards {
            tender_id: tender_id.to_string(),
            app_id: auth.app_id.clone(),
        });
    }
    awards.sort_by(|a, b| a.id.cmp(&b.id));
    awards.dedup_by(|a, b| a.id == b.id);
    let award_ids: Vec<String> = awards
        .iter()
        .map(|award| canonical_uuid(&award.id).unwrap_or_else(|| award.id.clone()))
        .collect();

    // Pass 1: which conversations mention the tender.
    let mut scanned = 0u64;
    let mut seeds = 0u64;
    let mut conversations = BTreeSet::new();
    let mut messages: BTreeMap<String, MessageRow> = BTreeMap::new();
    reader.each("whatsapp_messages", None, Map::new(), &mut |row| {
        scanned += 1;
        if scanned % 10_000 == 0 {
            progress(&format!("scanned {scanned} whatsapp_messages"));
        }
        let message = message_row(row, tender_id, &award_ids);
        if message.mentions_tender {
            seeds += 1;
            match &message.conversation {
                Some(conversation) => {
                    conversations.insert(conversation.clone());
                }
                None => {
                    messages.insert(message.id.clone(), message);
                }
            }
        }
    })?;
    progress(&format!(
        "scanned {scanned} whatsapp_messages: {seeds} mention the tender, {} conversations",
        conversations.len()
    ));
    if seeds == 0 {
        return Err(ConversationError::NoConversation {
            tender_id: tender_id.to_string(),
            scanned,
        });
    }

    // Pass 2: every message of those conversations.
    let conversation_ids: Vec<String> = conversations.into_iter().collect();
    for chunk in conversation_ids.chunks(reader.in_chunk()) {
        reader.each(
            "whatsapp_messages",
            Some(json!({"conversation": {"$in": chunk}})),
            Map::new(),
            &mut |row| {
                let message = message_row(row, tender_id, &award_ids);
                messages.insert(message.id.clone(), message);
            },
        )?;
    }
    let message_ids: Vec<String> = messages.keys().cloned().collect();
    // A link `where` refuses a value that is not a UUID; such messages are rejected by the plan.
    let uuid_message_ids: Vec<String> = message_ids
        .iter()
        .filter(|id| canonical_uuid(id).as_deref() == Some(id.as_str()))
        .cloned()
        .collect();

    // Thread items already linked to a message, or holding the id derived for one.
    let mut items: BTreeMap<String, ItemRow> = BTreeMap::new();
    let item_children = children(&["context", "thread", "whatsappMessages"]);
    for chunk in uuid_message_ids.chunks(reader.in_chunk()) {
        reader.each(
            "thread_items",
            Some(json!({"whatsappMessages": {"$in": chunk}})),
            item_children.clone(),
            &mut |row| {
                let item = item_row(row);
                items.insert(item.id.clone(), item);
            },
        )?;
        let derived: Vec<String> = chunk
            .iter()
            .map(|id| super::derived_item_id(id).to_string())
            .collect();
        {
            reader.each(
                "thread_items",
                Some(json!({"id": {"$in": derived}})),
                item_children.clone(),
                &mut |row| {
                    let item = item_row(row);
                    items.insert(item.id.clone(), item);
                },
            )?;
        }
    }

    // Conversation messages of those messages.
    let mut conversation_messages: BTreeMap<String, ConversationMessageRow> = BTreeMap::new();
    if schema.whatsapp_message != WhatsappMessageRef::Absent {
        let linked = schema.whatsapp_message == WhatsappMessageRef::Link;
        let labels: &[&str] = if linked {
            &["context", "event", "whatsappMessage"]
        } else {
            &["context", "event"]
        };
        let ids = if linked {
            &uuid_message_ids
        } else {
            &message_ids
        };
        for chunk in ids.chunks(reader.in_chunk()) {
            let wanted: BTreeSet<&str> = chunk.iter().map(String::as_str).collect();
            reader.each(
                "conversation_messages",
                Some(json!({"whatsappMessage": {"$in": chunk}})),
                children(labels),
                &mut |row| {
                    let targets = if linked {
                        link_ids(row.get("whatsappMessage"))
                    } else {
                        row.get("whatsappMessage")
                            .and_then(Value::as_str)
                            .map(|id| vec![id.trim().to_string()])
                            .unwrap_or_default()
                    };
                    let Some(whatsapp_message) =
                        targets.into_iter().find(|id| wanted.contains(id.as_str()))
                    else {
                        return;
                    };
                    let row = ConversationMessageRow {
                        id: string_id(row),
                        whatsapp_message,
                        context: link_ids(row.get("context")).into_iter().next(),
                        event: link_ids(row.get("event")).into_iter().next(),
                    };
                    conversation_messages.insert(row.id.clone(), row);
                },
            )?;
        }
    }

    // Contexts and threads holding the awards' keys.
    let keys: Vec<String> = award_ids.iter().map(|id| super::context_key(id)).collect();
    let mut contexts = Vec::new();
    let mut threads = Vec::new();
    for chunk in keys.chunks(reader.in_chunk()) {
        reader.each(
            "thread_contexts",
            Some(json!({"key": {"$in": chunk}})),
            children(&["thread"]),
            &mut |row| {
                if let Some(key) = row.get("key").and_then(Value::as_str) {
                    contexts.push(ContextRow {
                        id: string_id(row),
                        key: key.to_string(),
                        thread: link_ids(row.get("thread")).into_iter().next(),
                    });
                }
            },
        )?;
        reader.each(
            "thread_threads",
            Some(json!({"key": {"$in": chunk}})),
            Map::new(),
            &mut |row| {
                if let Some(key) = row.get("key").and_then(Value::as_str) {
                    threads.push(ThreadRow {
                        id: string_id(row),
                        key: key.to_string(),
                    });
                }
            },
        )?;
    }
    let mut legacy_contexts = Vec::new();
    for chunk in keys.chunks(reader.in_chunk()) {
        reader.each(
            "context_contexts",
            Some(json!({"key": {"$in": chunk}})),
            Map::new(),
            &mut |row| {
                if let Some(key) = row.get("key").and_then(Value::as_str) {
                    legacy_contexts.push(ContextRow {
                        id: string_id(row),
                        key: key.to_string(),
                        thread: None,
                    });
                }
            },
        )?;
    }
    let mut legacy_events: BTreeMap<String, LegacyEventRow> = BTreeMap::new();
    for chunk in uuid_message_ids.chunks(reader.in_chunk()) {
        reader.each(
            "context_events",
            Some(json!({"whatsappMessages": {"$in": chunk}})),
            children(&["context", "whatsappMessages"]),
            &mut |row| {
                let event = LegacyEventRow {
                    id: string_id(row),
                    context: link_ids(row.get("context")).into_iter().next(),
                    whatsapp_messages: link_ids(row.get("whatsappMessages")),
                };
                legacy_events.insert(event.id.clone(), event);
            },
        )?;
    }
    legacy_contexts.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
    contexts.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
    threads.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));

    Ok(Source {
        tender_id: tender_id.to_string(),
        schema,
        awards,
        scanned_messages: scanned,
        seed_messages: seeds,
        conversation_ids,
        messages: messages.into_values().collect(),
        items: items.into_values().collect(),
        conversation_messages: conversation_messages.into_values().collect(),
        contexts,
        threads,
        legacy_contexts,
        legacy_events: legacy_events.into_values().collect(),
        requests: reader.requests,
    })
}

/// Pages through one namespace.
pub(super) struct Reader<'a> {
    pub api: &'a dyn InstantApi,
    pub auth: &'a AppAuth,
    pub page_size: usize,
    pub requests: u64,
}

/// The most ids one `$in` list carries (a long list costs the server one bind parameter per
/// id; Postgres caps them per statement).
const MAX_IN_LIST: usize = 500;

impl Reader<'_> {
    /// Ids per `$in` list: the page size, at most [`MAX_IN_LIST`].
    pub fn in_chunk(&self) -> usize {
        self.page_size.clamp(1, MAX_IN_LIST)
    }

    /// Calls `each` for every row of `namespace` matching `where_clause`, with `children`
    /// expanded, `page_size` rows per request; `order` is kept across pages.
    pub fn each_ordered(
        &mut self,
        namespace: &str,
        where_clause: Option<Value>,
        order: Option<Value>,
        children: Map<String, Value>,
        each: &mut dyn FnMut(&Map<String, Value>),
    ) -> Result<(), ConversationError> {
        let mut offset = 0usize;
        loop {
            let mut options = Map::new();
            if let Some(where_clause) = &where_clause {
                options.insert("where".into(), where_clause.clone());
            }
            if let Some(order) = &order {
                options.insert("order".into(), order.clone());
            }
            options.insert("limit".into(), json!(self.page_size));
            options.insert("offset".into(), json!(offset));
            let mut form = Map::new();
            form.insert("$".into(), Value::Object(options));
            form.extend(children.clone());
            let query = json!({ namespace: form });
            self.requests += 1;
            let result = self
                .api
                .query(
                    self.auth,
                    &QueryRequest {
                        query,
                        inference: false,
                    },
                )
                .map_err(|source| {
                    ConversationError::api(format!("query {namespace} (offset {offset})"), source)
                })?;
            let rows = match result.get(namespace) {
                Some(Value::Array(rows)) => rows,
                _ => {
                    return Err(ConversationError::Shape {
                        what: format!("query {namespace}"),
                        detail: format!("the answer has no `{namespace}` array"),
                    })
                }
            };
            for row in rows {
                if let Value::Object(row) = row {
                    each(row);
                }
            }
            if rows.len() < self.page_size {
                return Ok(());
            }
            offset += rows.len();
        }
    }

    pub fn each(
        &mut self,
        namespace: &str,
        where_clause: Option<Value>,
        children: Map<String, Value>,
        each: &mut dyn FnMut(&Map<String, Value>),
    ) -> Result<(), ConversationError> {
        self.each_ordered(namespace, where_clause, None, children, each)
    }
}

/// Child forms that fetch only the linked ids.
pub(super) fn children(labels: &[&str]) -> Map<String, Value> {
    labels
        .iter()
        .map(|label| ((*label).to_string(), json!({"$": {"fields": ["id"]}})))
        .collect()
}

/// The ids of a link child (`[{id}, …]`; an object or a bare id string also read).
pub(super) fn link_ids(value: Option<&Value>) -> Vec<String> {
    let one = |value: &Value| match value {
        Value::Object(row) => row.get("id").and_then(Value::as_str).map(str::to_string),
        Value::String(id) => Some(id.clone()),
        _ => None,
    };
    let mut ids: Vec<String> = match value {
        Some(Value::Array(rows)) => rows.iter().filter_map(one).collect(),
        Some(other) => one(other).into_iter().collect(),
        None => Vec::new(),
    };
    ids.sort();
    ids
}

pub(super) fn string_id(row: &Map<String, Value>) -> String {
    match row.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn present(value: Option<&Value>) -> Option<Value> {
    value.filter(|value| !value.is_null()).cloned()
}

/// The text of a message: trimmed `body`, else trimmed `rawData.Body` / `rawData.body`
/// (`rawData` may be an object or a JSON string of one).
fn message_text(row: &Map<String, Value>) -> String {
    if let Some(body) = row.get("body").and_then(Value::as_str) {
        if !body.trim().is_empty() {
            return body.trim().to_string();
        }
    }
    let raw = match row.get("rawData") {
        Some(Value::String(text)) => serde_json::from_str::<Value>(text).ok(),
        Some(other) => Some(other.clone()),
        None => None,
    };
    for key in ["Body", "body"] {
        if let Some(text) = raw
            .as_ref()
            .and_then(|raw| raw.get(key))
            .and_then(Value::as_str)
        {
            if !text.trim().is_empty() {
                return text.trim().to_string();
            }
        }
    }
    String::new()
}

/// Whether `text` names the UUID `id` as a whole token, in any letter case. The old script's
/// case-sensitive substring test missed upper-case ids and matched ids inside longer tokens.
pub fn mentions(text: &str, id: &str) -> bool {
    let haystack = text.to_ascii_lowercase();
    let needle = id.to_ascii_lowercase();
    if needle.is_empty() {
        return false;
    }
    let bytes = haystack.as_bytes();
    let is_token = |b: u8| b.is_ascii_hexdigit() || b == b'-';
    let mut start = 0;
    while let Some(found) = haystack[start..].find(&needle) {
        let at = start + found;
        let end = at + needle.len();
        let before_ok = at == 0 || !is_token(bytes[at - 1]);
        let after_ok = end == bytes.len() || !is_token(bytes[end]);
        if before_ok && after_ok {
            return true;
        }
        start = at + 1;
    }
    false
}

fn message_row(row: &Map<String, Value>, tender_id: &str, award_ids: &[String]) -> MessageRow {
    let text = message_text(row);
    let conversation = match row.get("conversation") {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.trim().to_string()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    let outbound = row
        .get("direction")
        .and_then(Value::as_str)
        .is_some_and(|direction| direction.trim().eq_ignore_ascii_case("outbound"));
    let mentions_awards = award_ids
        .iter()
        .filter(|award| mentions(&text, award))
        .cloned()
        .collect();
    MessageRow {
        id: string_id(row),
        conversation,
        mentions_tender: mentions(&text, tender_id),
        text,
        outbound,
        created_at: present(row.get("createdAt")),
        updated_at: present(row.get("updatedAt")),
        mentions_awards,
    }
}

fn item_row(row: &Map<String, Value>) -> ItemRow {
    ItemRow {
        id: string_id(row),
        context: link_ids(row.get("context")).into_iter().next(),
        thread: link_ids(row.get("thread")).into_iter().next(),
        whatsapp_messages: link_ids(row.get("whatsappMessages")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mention_is_a_whole_id_in_any_case() {
        let id = "8f0e4c1a-3b2d-4e5f-9a6b-7c8d9e0f1a2b";
        assert!(mentions(&format!("Licitación {id}: hola"), id));
        assert!(mentions(&id.to_uppercase(), id));
        assert!(!mentions(&format!("a{id}"), id));
        assert!(!mentions(&format!("{id}-1"), id));
        assert!(!mentions("nothing here", id));
        assert!(mentions(&format!("ñ{id}"), id));
        assert!(mentions(&format!("b{id} and ({id})"), id));
    }

    #[test]
    fn the_text_falls_back_to_the_provider_payload() {
        let row = json!({"id": "a", "body": "  ", "rawData": "{\"Body\": \" hola \"}"});
        assert_eq!(message_text(row.as_object().unwrap()), "hola");
        let row = json!({"id": "a", "rawData": {"body": "x"}});
        assert_eq!(message_text(row.as_object().unwrap()), "x");
    }
}
