//! What the backfill writes, checked against the app's schema before anything is written, and
//! the schema fragment that declares it.
//!
//! The old script posted its steps without `throw-on-missing-attrs?`, so on an app without the
//! thread model the server auto-created every attribute, untyped, and every link with the
//! *label* as the target namespace (`thread_items.whatsappMessages` pointing at a namespace
//! called `whatsappMessages`). The backfill refuses that: the target schema (thread V1 plus the
//! esolbay links below) must be pushed first, through the gated schema push.

use instant_schema::{BuiltinSchema, Cardinality, Link, LinkEnd, Schema, ServerAttr, ServerSchema};

/// A data attribute the backfill writes: `(namespace, attribute)`.
pub const REQUIRED_ATTRS: &[(&str, &str)] = &[
    ("thread_threads", "key"),
    ("thread_threads", "name"),
    ("thread_threads", "status"),
    ("thread_threads", "createdAt"),
    ("thread_threads", "updatedAt"),
    ("thread_contexts", "key"),
    ("thread_contexts", "status"),
    ("thread_contexts", "content"),
    ("thread_contexts", "createdAt"),
    ("thread_contexts", "updatedAt"),
    ("thread_items", "channel"),
    ("thread_items", "type"),
    ("thread_items", "status"),
    ("thread_items", "content"),
    ("thread_items", "createdAt"),
];

/// A link the backfill writes: `(namespace, label, target namespace)`. The label may be the
/// forward or the reverse end of the link, as `link` steps accept either.
pub const REQUIRED_LINKS: &[(&str, &str, &str)] = &[
    ("thread_contexts", "thread", "thread_threads"),
    ("thread_items", "context", "thread_contexts"),
    ("thread_items", "thread", "thread_threads"),
    ("thread_items", "whatsappMessages", "whatsapp_messages"),
    ("conversation_messages", "context", "thread_contexts"),
    ("conversation_messages", "event", "thread_items"),
];

/// How `conversation_messages.whatsappMessage` is stored in this app (data-model §1.4: the old
/// script read it as a scalar and verified it as a link; which one it is must come from the
/// schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhatsappMessageRef {
    /// A string attribute holding the WhatsApp message id.
    Attribute,
    /// A link to `whatsapp_messages`.
    Link,
    /// Not declared: no conversation message can name a WhatsApp message.
    Absent,
}

/// What the app's schema says about the backfill.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaFacts {
    /// Attributes and links the backfill would write that the app does not declare
    /// (`thread_items.createdAt`, `thread_items.whatsappMessages -> whatsapp_messages`).
    pub missing: Vec<String>,
    pub whatsapp_message: WhatsappMessageRef,
}

fn is_link_to(attr: &ServerAttr, etype: &str, label: &str, target: &str) -> bool {
    if !attr.is_ref() {
        return false;
    }
    let forward = &attr.forward_identity;
    let Some(reverse) = &attr.reverse_identity else {
        return false;
    };
    (forward.etype == etype && forward.label == label && reverse.etype == target)
        || (reverse.etype == etype && reverse.label == label && forward.etype == target)
}

/// Reads the facts from the app's schema (schema pull).
pub fn facts(schema: &ServerSchema) -> SchemaFacts {
    let attrs: Vec<&ServerAttr> = schema.attrs().collect();
    let mut missing = Vec::new();
    for (etype, label) in REQUIRED_ATTRS {
        let declared = attrs.iter().any(|attr| {
            !attr.is_ref()
                && attr.forward_identity.etype == *etype
                && attr.forward_identity.label == *label
        });
        if !declared {
            missing.push(format!("{etype}.{label}"));
        }
    }
    for (etype, label, target) in REQUIRED_LINKS {
        if !attrs
            .iter()
            .any(|attr| is_link_to(attr, etype, label, target))
        {
            missing.push(format!("{etype}.{label} -> {target}"));
        }
    }
    let whatsapp_message = if attrs.iter().any(|attr| {
        is_link_to(
            attr,
            "conversation_messages",
            "whatsappMessage",
            "whatsapp_messages",
        )
    }) {
        WhatsappMessageRef::Link
    } else if attrs.iter().any(|attr| {
        !attr.is_ref()
            && attr.forward_identity.etype == "conversation_messages"
            && attr.forward_identity.label == "whatsappMessage"
    }) {
        WhatsappMessageRef::Attribute
    } else {
        WhatsappMessageRef::Absent
    };
    SchemaFacts {
        missing,
        whatsapp_message,
    }
}

fn end(on: &str, has: Cardinality, label: &str) -> LinkEnd {
    LinkEnd {
        on: on.into(),
        has,
        label: label.into(),
        required: None,
        on_delete: None,
    }
}

/// The esolbay links the timeline and the backfill need besides thread V1 (data-model §2.2:
/// declared by the app, outside the thread package), with the reverse labels the old script's
/// verify query read (`thread_contexts.messages`, `thread_items.message`). Reverse ends are
/// `many` so that two conversation messages of one WhatsApp message can both point at its item.
pub fn bridge_links() -> Vec<(&'static str, Link)> {
    vec![
        (
            "threadItemsWhatsappMessages",
            Link::new(
                end("thread_items", Cardinality::Many, "whatsappMessages"),
                end("whatsapp_messages", Cardinality::Many, "threadItems"),
            ),
        ),
        (
            "conversationMessagesContext",
            Link::new(
                end("conversation_messages", Cardinality::One, "context"),
                end("thread_contexts", Cardinality::Many, "messages"),
            ),
        ),
        (
            "conversationMessagesEvent",
            Link::new(
                end("conversation_messages", Cardinality::One, "event"),
                end("thread_items", Cardinality::Many, "message"),
            ),
        ),
    ]
}

/// Adds what the backfill needs to `schema`: thread V1's entities and links where `schema`
/// lacks them, the esolbay namespaces the links end on, and [`bridge_links`]. Existing
/// definitions are kept as they are. Returns the problems [`Schema::validate`] finds.
pub fn add_bridge_schema(schema: &mut Schema) -> Result<(), String> {
    let thread_v1 = BuiltinSchema::ThreadV1
        .load()
        .map_err(|error| error.to_string())?
        .dsl()
        .into_owned();
    for (name, entity) in thread_v1.entities {
        schema.entities.entry(name).or_insert(entity);
    }
    for (name, link) in thread_v1.links {
        schema.links.entry(name).or_insert(link);
    }
    for name in ["whatsapp_messages", "conversation_messages"] {
        schema.entities.entry(name.to_string()).or_default();
    }
    for (name, link) in bridge_links() {
        schema.links.entry(name.to_string()).or_insert(link);
    }
    let problems = schema.validate();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_schema_declares_everything_the_backfill_writes() {
        let mut schema = Schema {
            entities: Default::default(),
            links: Default::default(),
            rooms: None,
        };
        add_bridge_schema(&mut schema).unwrap();
        let facts = facts(&schema.to_server());
        assert_eq!(facts.missing, Vec::<String>::new());
        assert_eq!(facts.whatsapp_message, WhatsappMessageRef::Absent);
    }

    #[test]
    fn an_app_without_the_thread_model_lacks_every_requirement() {
        let facts = facts(&ServerSchema::default());
        assert_eq!(
            facts.missing.len(),
            REQUIRED_ATTRS.len() + REQUIRED_LINKS.len()
        );
        assert!(facts
            .missing
            .contains(&"thread_items.whatsappMessages -> whatsapp_messages".to_string()));
    }
}
