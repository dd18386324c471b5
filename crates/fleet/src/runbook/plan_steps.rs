//! `plan_critical_steps` and `plan_review_required` cases: the server planned the schema, but
//! some steps can reject or rewrite data (critical) or relax a guarantee (warning). A person
//! prepares the data (or changes the target schema) or signs the plan off.

use super::{ActionKind, CaseContext, RunbookAction};

/// How many steps the check names before pointing at the diagnostics.
const MAX_NAMED: usize = 10;

pub(super) fn actions(case: &CaseContext<'_>) -> Vec<RunbookAction> {
    let steps = &case.diagnostic.notable_steps;
    let mut named: Vec<String> = steps
        .iter()
        .take(MAX_NAMED)
        .map(|step| match &step.target {
            Some(target) => format!(
                "{} `{}` on `{target}`",
                step.severity.as_str(),
                step.step_type
            ),
            None => format!("{} `{}`", step.severity.as_str(), step.step_type),
        })
        .collect();
    if steps.len() > MAX_NAMED {
        named.push(format!(
            "and {} more in the diagnostics",
            steps.len() - MAX_NAMED
        ));
    }
    let listed = if named.is_empty() {
        "the plan's warning and critical steps (see the matrix row)".to_string()
    } else {
        named.join(", ")
    };
    vec![
        RunbookAction::new(
            "01-review-plan-steps",
            "Review the risky plan steps",
            ActionKind::ManualCheck,
            format!("Review {listed}, with each step's action from the diagnostics."),
        ),
        RunbookAction::new(
            "02-prepare-or-sign-off",
            "Prepare the data or sign the plan off",
            ActionKind::HumanGate,
            "Clean the data each critical step needs (dedupe, backfill, coerce types) or change the target schema; a warning-only plan needs a recorded sign-off.",
        ),
        case.replan("03-replan-org", "post-review-org-matrix"),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_commands_are_ours, case, diagnostic, outline};
    use crate::issues::IssueCode;
    use crate::matrix::StepInstruction;
    use instant_schema::severity::Severity;

    fn critical(index: usize, target: &str) -> StepInstruction {
        StepInstruction {
            index,
            step_type: "check-data-type".into(),
            severity: Severity::Critical,
            target: Some(target.into()),
            summary: String::new(),
            action: String::new(),
        }
    }

    #[test]
    fn review_prepare_replan_for_both_codes() {
        for code in [IssueCode::PlanCriticalSteps, IssueCode::PlanReviewRequired] {
            let mut d = diagnostic(code);
            d.notable_steps = (1..=12)
                .map(|i| critical(i, &format!("docs.a{i}")))
                .collect();
            let (case, _) = case(&d);
            assert_commands_are_ours(&case);
            expect_test::expect![[r#"
                01-review-plan-steps manual_check
                02-prepare-or-sign-off human_gate
                03-replan-org command"#]]
            .assert_eq(&outline(&case));
            let details = case.actions[0].details.as_deref().unwrap();
            assert!(
                details.contains("`docs.a10`, and 2 more in the diagnostics"),
                "{details}"
            );
            assert!(!details.contains("docs.a11"));
            assert_eq!(case.blocking, code == IssueCode::PlanCriticalSteps);
        }
    }

    #[test]
    fn markdown() {
        let mut d = diagnostic(IssueCode::PlanCriticalSteps);
        d.notable_steps = vec![critical(3, "document_documents.size")];
        d.root_cause = "1 critical step(s) can reject or rewrite existing data: check-data-type on document_documents.size".into();
        let (_, markdown) = case(&d);
        insta::assert_snapshot!(markdown);
    }
}
