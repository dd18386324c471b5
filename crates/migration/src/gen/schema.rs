//! The schema each generated app has "as deployed": the legacy story model (`builtin:
//! legacy-story`) as the old apps ran it, plus the esolbay side namespaces, plus what a role
//! needs (leftover namespaces, a partial thread model, a conflicting link).
//!
//! Required flags are dropped: the server never enforced them on rows written before they were
//! declared, which is how apps came to hold rows without `createdAt` or `channel`. The schema is
//! pushed without type checks for the same reason (dates in three formats live side by side).
//! Unique and indexed flags are kept.

use instant_schema::{Attr, BuiltinSchema, Cardinality, Entity, Link, LinkEnd, Schema, ValueType};

use super::GenError;

/// What the as-deployed schema contains beyond the legacy model and esolbay namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemaFeatures {
    /// G1 `story_contexts`/`story_events`, the `thread` namespace, `organizations` and the
    /// `context_contexts.organization` link.
    pub leftovers: bool,
    /// `thread_threads` and `thread_contexts` as thread V1 declares them (a runtime that
    /// already self-healed some contexts), without V1's links.
    pub partial_thread: bool,
    /// `schema_duplicate_link`: `thread_contexts.thread` linked to the leftover `thread`
    /// namespace (reverse `thread.contexts`), which owns the label thread V1 needs.
    pub conflicting_link: bool,
}

fn attr(value_type: ValueType, indexed: bool, unique: bool) -> Attr {
    let mut attr = Attr::new(value_type);
    attr.required = false;
    attr.indexed = indexed;
    attr.unique = unique;
    attr
}

fn entity(attrs: &[(&str, Attr)]) -> Entity {
    let mut entity = Entity::default();
    for (name, value) in attrs {
        entity.attrs.insert((*name).to_string(), value.clone());
    }
    entity
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

/// Builds the as-deployed schema.
pub fn as_deployed(features: SchemaFeatures) -> Result<Schema, GenError> {
    let loaded = BuiltinSchema::LegacyStory
        .load()
        .map_err(|error| GenError::Schema(error.to_string()))?;
    let mut schema = loaded.dsl().into_owned();
    for entity in schema.entities.values_mut() {
        for attr in entity.attrs.values_mut() {
            attr.required = false;
        }
    }
    use ValueType::{Date, Json, Number, String as Str};
    let _ = Number;
    schema.entities.insert(
        "whatsapp_messages".into(),
        entity(&[
            ("body", attr(Str, false, false)),
            ("rawData", attr(Json, false, false)),
            ("conversation", attr(Str, true, false)),
            ("direction", attr(Str, true, false)),
            ("createdAt", attr(Date, true, false)),
            ("updatedAt", attr(Date, false, false)),
        ]),
    );
    schema.entities.insert(
        "conversation_messages".into(),
        entity(&[
            ("whatsappMessage", attr(Str, true, false)),
            ("createdAt", attr(Date, true, false)),
        ]),
    );
    schema.entities.insert(
        "award_awards".into(),
        entity(&[
            ("status", attr(Str, true, false)),
            ("createdAt", attr(Date, false, false)),
        ]),
    );
    schema.entities.insert(
        "tender_tenders".into(),
        entity(&[
            ("title", attr(Str, false, false)),
            ("createdAt", attr(Date, false, false)),
        ]),
    );
    schema.links.insert(
        "contextEventsWhatsappMessages".into(),
        Link::new(
            end("context_events", Cardinality::Many, "whatsappMessages"),
            end("whatsapp_messages", Cardinality::Many, "contextEvents"),
        ),
    );
    schema.links.insert(
        "awardAwardsTender".into(),
        Link::new(
            end("award_awards", Cardinality::One, "tender"),
            end("tender_tenders", Cardinality::Many, "awards"),
        ),
    );
    if features.leftovers || features.conflicting_link {
        schema.entities.insert(
            "thread".into(),
            entity(&[("createdAt", attr(Date, false, false))]),
        );
    }
    if features.leftovers {
        let g1 = entity(&[
            ("createdAt", attr(Date, false, false)),
            ("key", attr(Str, true, true)),
            ("status", attr(Str, true, false)),
            ("content", attr(Json, false, false)),
        ]);
        schema.entities.insert("story_contexts".into(), g1);
        schema.entities.insert(
            "story_events".into(),
            entity(&[
                ("createdAt", attr(Date, true, false)),
                ("type", attr(Str, true, false)),
                ("channel", attr(Str, true, false)),
                ("content", attr(Json, false, false)),
            ]),
        );
        schema.entities.insert(
            "organizations".into(),
            entity(&[
                ("name", attr(Str, false, false)),
                ("createdAt", attr(Date, false, false)),
            ]),
        );
        schema.links.insert(
            "contextContextsOrganization".into(),
            Link::new(
                end("context_contexts", Cardinality::One, "organization"),
                end("organizations", Cardinality::Many, "contextContexts"),
            ),
        );
    }
    if features.partial_thread || features.conflicting_link {
        let thread_v1 = BuiltinSchema::ThreadV1
            .load()
            .map_err(|error| GenError::Schema(error.to_string()))?
            .dsl()
            .into_owned();
        for name in ["thread_threads", "thread_contexts"] {
            if let Some(entity) = thread_v1.entities.get(name) {
                schema.entities.insert(name.into(), entity.clone());
            }
        }
    }
    if features.conflicting_link {
        schema.links.insert(
            "threadContextsLegacyThread".into(),
            Link::new(
                end("thread_contexts", Cardinality::One, "thread"),
                end("thread", Cardinality::Many, "contexts"),
            ),
        );
    }
    let problems = schema.validate();
    if let Some(problem) = problems.first() {
        return Err(GenError::Schema(format!("as-deployed schema: {problem}")));
    }
    Ok(schema)
}

/// Labels that are links (not attributes) on a generated row of `namespace`.
pub fn is_link_label(namespace: &str, label: &str) -> bool {
    matches!(
        (namespace, label),
        ("context_contexts", "currentExecution" | "organization")
            | (
                "context_events",
                "context" | "execution" | "whatsappMessages"
            )
            | ("story_executions", "context" | "trigger" | "reaction")
            | ("story_steps", "execution")
            | ("story_parts", "step")
            | ("award_awards", "tender")
            | ("thread_contexts", "thread")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_validates() {
        for leftovers in [false, true] {
            for partial_thread in [false, true] {
                for conflicting_link in [false, true] {
                    let schema = as_deployed(SchemaFeatures {
                        leftovers,
                        partial_thread,
                        conflicting_link,
                    })
                    .unwrap();
                    assert!(schema.entities.contains_key("context_events"));
                    assert!(!schema.entities["story_steps"].attrs["iteration"].required);
                }
            }
        }
    }
}
