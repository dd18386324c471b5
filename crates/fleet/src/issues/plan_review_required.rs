//! `plan_review_required` (`REV-001`): the plan has warning steps (it relaxes a guarantee such
//! as an index or a uniqueness constraint). Not blocking, but a person signs off before the
//! wave. New: the old matrix called such rows `plan_ok`.

use instant_schema::severity::Severity;

use super::{replan_command, ActionContext, Observation, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "plan_review_required",
    plan_id: "REV-001",
    blocking: false,
    priority: Priority::Medium,
    title: "Plan relaxes guarantees: a person signs off the warning steps before the wave",
};

pub(super) fn reason(observation: &Observation<'_>) -> String {
    match observation {
        Observation::Planned { counts, steps, .. } => format!(
            "{} warning step(s) need sign-off: {}",
            counts.warning,
            crate::matrix::name_steps(steps, Severity::Warning, 3)
        ),
        _ => "the plan has warning steps".into(),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        "Review each warning step and the code that relied on the guarantee it removes (the row's instructions say what to check).".into(),
        "Record a person's sign-off on this plan before the org joins the wave.".into(),
        format!("Re-plan after any schema change: {}.", replan_command(context)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::context;
    use super::super::{classify, IssueCode, Observation};
    use crate::matrix::StepInstruction;
    use instant_schema::severity::{Gate, Severity, SeverityCounts};

    fn step(
        index: usize,
        step_type: &str,
        severity: Severity,
        target: Option<&str>,
    ) -> StepInstruction {
        StepInstruction {
            index,
            step_type: step_type.into(),
            severity,
            target: target.map(str::to_string),
            summary: String::new(),
            action: String::new(),
        }
    }

    #[test]
    fn warning_plans_need_review_and_name_their_steps() {
        let steps = vec![
            step(1, "add-attr", Severity::Safe, Some("a.b")),
            step(2, "remove-index", Severity::Warning, Some("posts.title")),
            step(3, "remove-unique", Severity::Warning, None),
            step(4, "remove-required", Severity::Warning, Some("posts.body")),
            step(5, "remove-data-type", Severity::Warning, Some("posts.n")),
        ];
        let counts: SeverityCounts = steps.iter().map(|s| s.severity).collect();
        let observation = Observation::Planned {
            counts,
            gate: Gate::from_counts(&counts),
            steps: &steps,
        };
        let code = classify(&observation);
        assert_eq!(code, IssueCode::PlanReviewRequired);
        assert!(!code.blocking());
        assert_eq!(
            code.reason(&observation, &context()),
            "4 warning step(s) need sign-off: remove-index on posts.title, remove-unique, remove-required on posts.body (+1 more)"
        );
    }

    #[test]
    fn markdown() {
        let steps = vec![step(
            1,
            "remove-index",
            Severity::Warning,
            Some("posts.title"),
        )];
        let counts: SeverityCounts = steps.iter().map(|s| s.severity).collect();
        let observation = Observation::Planned {
            counts,
            gate: Gate::Review,
            steps: &steps,
        };
        let reason = IssueCode::PlanReviewRequired.reason(&observation, &context());
        insta::assert_snapshot!(IssueCode::PlanReviewRequired.markdown(&context(), &reason));
    }
}
