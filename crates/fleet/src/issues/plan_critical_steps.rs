//! `plan_critical_steps` (`CRIT-001`): the plan has critical steps (type checks, uniqueness,
//! required values, attribute updates) that can reject or rewrite existing data. Blocking.
//! New: the old matrix called such rows `plan_ok` ("include in the next wave").

use instant_schema::severity::Severity;

use super::{replan_command, ActionContext, Observation, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "plan_critical_steps",
    plan_id: "CRIT-001",
    blocking: true,
    priority: Priority::High,
    title: "Plan has critical steps: prepare the data or change the target schema before the wave",
};

pub(super) fn reason(observation: &Observation<'_>) -> String {
    match observation {
        Observation::Planned { counts, steps, .. } => format!(
            "{} critical step(s) can reject or rewrite existing data: {}",
            counts.critical,
            crate::matrix::name_steps(steps, Severity::Critical, 3)
        ),
        _ => "the plan has critical steps".into(),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        "Work through each critical step's action in the row's instructions (dedupe before `unique`, backfill before `required`, coerce values before `check-data-type`).".into(),
        "Or change the target schema so the step is not needed, and record why.".into(),
        format!(
            "Re-plan this org: {}; it joins the wave only with a safe (or signed-off) plan.",
            replan_command(context)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::context;
    use super::super::{classify, IssueCode, Observation};
    use crate::matrix::StepInstruction;
    use instant_schema::severity::{Gate, Severity, SeverityCounts};

    fn step(index: usize, step_type: &str, target: &str) -> StepInstruction {
        StepInstruction {
            index,
            step_type: step_type.into(),
            severity: Severity::of(step_type),
            target: Some(target.into()),
            summary: String::new(),
            action: String::new(),
        }
    }

    #[test]
    fn any_critical_step_blocks_whatever_else_the_plan_has() {
        let cases: [(&[(&str, &str)], &str); 3] = [
            (&[("unique", "posts.slug")], "1 critical step(s) can reject or rewrite existing data: unique on posts.slug"),
            (
                &[("remove-index", "a.b"), ("check-data-type", "docs.size"), ("add-attr", "c.d")],
                "1 critical step(s) can reject or rewrite existing data: check-data-type on docs.size",
            ),
            (
                &[("required", "a.b"), ("update-attr", "a.c"), ("delete-attr", "a.d"), ("check-data-type", "a.e")],
                "4 critical step(s) can reject or rewrite existing data: required on a.b, update-attr on a.c, delete-attr on a.d (+1 more)",
            ),
        ];
        for (list, want) in cases {
            let steps: Vec<StepInstruction> = list
                .iter()
                .enumerate()
                .map(|(i, (t, target))| step(i + 1, t, target))
                .collect();
            let counts: SeverityCounts = steps.iter().map(|s| s.severity).collect();
            let observation = Observation::Planned {
                counts,
                gate: Gate::from_counts(&counts),
                steps: &steps,
            };
            let code = classify(&observation);
            assert_eq!(code, IssueCode::PlanCriticalSteps);
            assert!(code.blocking());
            assert_eq!(code.reason(&observation, &context()), want);
        }
    }

    #[test]
    fn markdown() {
        let steps = vec![step(1, "check-data-type", "document_documents.size")];
        let counts: SeverityCounts = steps.iter().map(|s| s.severity).collect();
        let observation = Observation::Planned {
            counts,
            gate: Gate::Blocked,
            steps: &steps,
        };
        let reason = IssueCode::PlanCriticalSteps.reason(&observation, &context());
        insta::assert_snapshot!(IssueCode::PlanCriticalSteps.markdown(&context(), &reason));
    }
}
