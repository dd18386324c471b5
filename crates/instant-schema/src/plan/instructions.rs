//! What a person or an agent has to do about each step of a plan before applying it: the
//! per-step instructions of a schema-plan report (`index, type, severity, target, summary,
//! action`), kept beside the severity table they build on.

use serde::Serialize;

use super::PlanStep;
use crate::server::ServerSchema;
use crate::severity::Severity;

/// One step as a plan report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// 1-based position in the plan.
    pub index: usize,
    #[serde(rename = "type")]
    pub step_type: String,
    pub severity: Severity,
    /// `etype.label`, when the step names one.
    pub target: Option<String>,
    /// The step's friendly description.
    pub summary: String,
    pub action: String,
}

/// The instructions for `steps`, naming attributes through `current` where a step carries only
/// an id.
pub fn instructions(steps: &[PlanStep], current: &ServerSchema) -> Vec<Instruction> {
    steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let target = step.target_in(current);
            Instruction {
                index: index + 1,
                step_type: step.step_type().to_string(),
                severity: step.severity(),
                action: action_text(step.step_type(), target.as_deref()),
                target,
                summary: step.friendly_description_in(current),
            }
        })
        .collect()
}

/// What to do about a step of this type before applying it; the target is appended when known.
pub fn action_text(step_type: &str, target: Option<&str>) -> String {
    let text = match step_type {
        "add-attr" => "No backfill by default; add one if readers need a non-null value",
        "update-attr" => {
            "Write a value transform and keep old and new readers compatible during the change"
        }
        "delete-attr" => "Snapshot the data first, remove code references, keep the rollback data",
        "index" => "Watch indexing time and query latency while the index builds",
        "remove-index" => "Review the query paths that used the index for regressions",
        "unique" => "Detect duplicates, dedupe them, and block the apply until the data is clean",
        "remove-unique" => "Check the business rules that relied on uniqueness",
        "required" => "Backfill missing values and fail if nulls remain",
        "remove-required" => "Relax the validators that assumed a value",
        "check-data-type" => {
            "Scan and coerce value types in the transform, and verify them after the apply"
        }
        "remove-data-type" => "Document why, and keep validating values at run time",
        _ => "Review this step by hand: the tool does not know it",
    };
    match target {
        Some(target) => format!("{text} ({target})."),
        None => format!("{text}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_step_type_has_its_own_action() {
        let known = [
            "add-attr",
            "update-attr",
            "delete-attr",
            "index",
            "remove-index",
            "unique",
            "remove-unique",
            "required",
            "remove-required",
            "check-data-type",
            "remove-data-type",
        ];
        let unknown = action_text("something-new", None);
        let mut seen = std::collections::HashSet::new();
        for step_type in known {
            let text = action_text(step_type, Some("posts.title"));
            assert!(text.ends_with("(posts.title)."), "{text}");
            assert_ne!(action_text(step_type, None), unknown, "{step_type}");
            assert!(seen.insert(text), "{step_type} shares its action");
        }
    }
}
