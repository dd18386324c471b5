//! `schema_duplicate_link` (`SCH-001`): the server refuses the target schema because the live
//! app already has a link (or attribute) owning an `<entity>-><label>` that the target schema
//! gives to another link. Resolved in two phases: phase 1 pushes the target schema without the
//! conflicting links, phase 2 the full schema once the legacy link is retired.

use serde::{Deserialize, Serialize};

use super::{replan_command, ActionContext, Observation, PlanFailure, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "schema_duplicate_link",
    plan_id: "SCH-001",
    blocking: true,
    priority: Priority::High,
    title: "The live schema already owns a label the target schema links: roll out in two phases",
};

/// The server's text for this refusal, lower case.
const DUPLICATE_TEXT: &str = "duplicate entry found for attribute";

pub(super) fn matches(failure: &PlanFailure) -> bool {
    failure
        .message
        .to_ascii_lowercase()
        .contains(DUPLICATE_TEXT)
}

/// An `<entity>-><label>` the server named.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LinkTarget {
    pub entity: String,
    pub label: String,
}

impl LinkTarget {
    /// `entity->label`, as the server writes it.
    pub fn ident(&self) -> String {
        format!("{}->{}", self.entity, self.label)
    }
}

/// Every `<entity>-><label>` the message reports as a duplicate, in order, each once. The
/// server writes one `<entity>-><label>: Duplicate entry found for attribute. …` per collision
/// (joined with `, `); identifiers are `[A-Za-z0-9_$]`.
pub fn duplicate_targets(message: &str) -> Vec<LinkTarget> {
    let lower = message.to_ascii_lowercase();
    let marker = format!(": {DUPLICATE_TEXT}");
    let bytes = message.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
    let mut targets: Vec<LinkTarget> = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find(&marker) {
        let end = from + found;
        from = end + marker.len();
        let mut start = end;
        while start > 0 && is_ident(bytes[start - 1]) {
            start -= 1;
        }
        let label = &message[start..end];
        if label.is_empty() || start < 2 || &bytes[start - 2..start] != b"->" {
            continue;
        }
        let entity_end = start - 2;
        let mut entity_start = entity_end;
        while entity_start > 0 && is_ident(bytes[entity_start - 1]) {
            entity_start -= 1;
        }
        let entity = &message[entity_start..entity_end];
        if entity.is_empty() {
            continue;
        }
        let target = LinkTarget {
            entity: entity.to_string(),
            label: label.to_string(),
        };
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    targets
}

pub(super) fn reason(observation: &Observation<'_>) -> String {
    match observation {
        Observation::PlanFailed(failure) => {
            let targets: Vec<String> = duplicate_targets(&failure.message)
                .iter()
                .map(LinkTarget::ident)
                .collect();
            if targets.is_empty() {
                "the server refuses the target schema: a link label is already taken in the live schema".into()
            } else {
                format!(
                    "the server refuses the target schema: {} already taken by a link or attribute of the live schema",
                    targets.join(", ")
                )
            }
        }
        _ => "the server refuses the target schema: a link label is already taken".into(),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        "Confirm the legacy owner of the conflicting `<entity>-><label>` in the app's pulled schema (`threadmig diagnose` names it and proves the rest of the schema plans cleanly).".into(),
        format!(
            "Roll out in two phases: phase 1 pushes the target schema without the conflicting link(s) (`threadmig schema phase1 --diagnostics <schema-plan-diagnostics.json> --org {}`); phase 2 pushes the full schema once the legacy link is retired.",
            super::text::shell_word(context.org_id)
        ),
        format!("Re-plan this org after each phase: {}.", replan_command(context)),
        "Mark the org ready only after a clean phase-2 plan.".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_classified, context, failure};
    use super::super::{IssueCode, Observation};
    use super::*;

    const DUP: &str = "Duplicate entry found for attribute. Check your schema file for duplicate link definitions.";

    #[test]
    fn duplicate_refusals_and_their_targets() {
        let one = format!("Validation failed for schema: thread_contexts->thread: {DUP}");
        let two = format!(
            "Validation failed for schema: organization_organizations->externalConnections: {DUP}, a$b->c_1: {DUP}, thread_contexts->thread: Conflicting link found for attribute."
        );
        assert_classified(&[
            (
                failure(400, "validation-failed", &one),
                IssueCode::SchemaDuplicateLink,
            ),
            (
                failure(400, "validation-failed", &two.to_uppercase()),
                IssueCode::SchemaDuplicateLink,
            ),
            (
                failure(
                    400,
                    "validation-failed",
                    "Validation failed for schema: a->b: Conflicting link found for attribute.",
                ),
                IssueCode::UnknownPlanError,
            ),
        ]);
        let cases: [(&str, &[&str]); 6] = [
            (&one, &["thread_contexts->thread"]),
            (
                &two,
                &[
                    "organization_organizations->externalConnections",
                    "a$b->c_1",
                ],
            ),
            (&format!("{one}, {one}"), &["thread_contexts->thread"]),
            (&format!("->x: {DUP}"), &[]),
            ("Duplicate entry found for attribute", &[]),
            // Identifiers are ASCII: a non-ASCII character ends one (and never splits a character).
            (&format!("é->x: {DUP}, ée->y: {DUP}"), &["e->y"]),
        ];
        for (message, want) in cases {
            let got: Vec<String> = duplicate_targets(message)
                .iter()
                .map(LinkTarget::ident)
                .collect();
            assert_eq!(got, want, "{message}");
        }
        let refused = failure(400, "validation-failed", &two);
        assert_eq!(
            IssueCode::SchemaDuplicateLink.reason(&Observation::PlanFailed(&refused), &context()),
            "the server refuses the target schema: organization_organizations->externalConnections, a$b->c_1 already taken by a link or attribute of the live schema"
        );
    }

    #[test]
    fn markdown() {
        let refused = failure(
            400,
            "validation-failed",
            &format!("Validation failed for schema: thread_contexts->thread: {DUP}"),
        );
        let reason =
            IssueCode::SchemaDuplicateLink.reason(&Observation::PlanFailed(&refused), &context());
        insta::assert_snapshot!(IssueCode::SchemaDuplicateLink.markdown(&context(), &reason));
    }
}
