//! `instant_app_not_found` cases: check the app, fix the org's app id, re-plan.

use super::{ActionKind, CaseContext, RunbookAction};

pub(super) fn actions(case: &CaseContext<'_>) -> Vec<RunbookAction> {
    vec![
        RunbookAction::new(
            "01-check-appid",
            "Check the app id",
            ActionKind::ManualCheck,
            format!(
                "Check whether app {} exists in Instant and belongs to this org.",
                case.app_id()
            ),
        ),
        RunbookAction::new(
            "02-fix-metadata",
            "Fix the organisation's metadata",
            ActionKind::HumanGate,
            "Fix or clear `privateMetadata.instant.appId` (and its token) of the org in Clerk; record the approval.",
        ),
        case.replan("03-replan-org", "post-app-fix-org-matrix"),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_commands_are_ours, case, diagnostic, outline};
    use crate::issues::IssueCode;

    #[test]
    fn check_fix_replan() {
        let (case, _) = case(&diagnostic(IssueCode::InstantAppNotFound));
        assert_commands_are_ours(&case);
        expect_test::expect![[r#"
            01-check-appid manual_check
            02-fix-metadata human_gate
            03-replan-org command"#]]
        .assert_eq(&outline(&case));
    }

    #[test]
    fn markdown() {
        let (_, markdown) = case(&diagnostic(IssueCode::InstantAppNotFound));
        insta::assert_snapshot!(markdown);
    }
}
