//! Every other case (`account_mismatch`, `unknown_plan_error`): inspect, fix, re-plan.

use super::{ActionKind, CaseContext, RunbookAction};

pub(super) fn actions(case: &CaseContext<'_>) -> Vec<RunbookAction> {
    let error = case
        .diagnostic
        .plan_error
        .clone()
        .unwrap_or_else(|| case.diagnostic.root_cause.clone());
    vec![
        RunbookAction::new(
            "01-inspect-error",
            "Inspect the error",
            ActionKind::ManualCheck,
            format!("Inspect the failure: {error}"),
        ),
        RunbookAction::new(
            "02-targeted-fix",
            "Apply a targeted fix",
            ActionKind::HumanGate,
            "Decide and apply the fix through the approved process (access request, retry window, schema change); record the approval.",
        ),
        case.replan("03-replan-org", "post-fix-org-matrix"),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_commands_are_ours, case, diagnostic, outline};
    use crate::issues::IssueCode;

    #[test]
    fn inspect_fix_replan_for_the_other_codes() {
        for code in [IssueCode::AccountMismatch, IssueCode::UnknownPlanError] {
            let mut d = diagnostic(code);
            d.plan_error = Some("503 http-error: Service Unavailable".into());
            let (case, _) = case(&d);
            assert_commands_are_ours(&case);
            expect_test::expect![[r#"
                01-inspect-error manual_check
                02-targeted-fix human_gate
                03-replan-org command"#]]
            .assert_eq(&outline(&case));
            assert_eq!(
                case.actions[0].details.as_deref(),
                Some("Inspect the failure: 503 http-error: Service Unavailable")
            );
        }
    }

    #[test]
    fn markdown() {
        let mut d = diagnostic(IssueCode::UnknownPlanError);
        d.plan_error = Some(
            "0 transport: POST /superadmin/apps/x/schema/push/plan: connection refused".into(),
        );
        let (_, markdown) = case(&d);
        insta::assert_snapshot!(markdown);
    }
}
