//! `invalid_admin_token` cases: rotate the token, update the directory, re-plan.

use super::{ActionKind, CaseContext, RunbookAction};

pub(super) fn actions(case: &CaseContext<'_>) -> Vec<RunbookAction> {
    vec![
        RunbookAction::new(
            "01-rotate-token",
            "Rotate the admin token",
            ActionKind::HumanGate,
            format!(
                "Rotate the admin token of app {} in the Instant dashboard (or find the token that belongs to it); record who did it.",
                case.app_id()
            ),
        ),
        RunbookAction::new(
            "02-update-clerk",
            "Update the organisation's metadata",
            ActionKind::HumanGate,
            "Store the token in `privateMetadata.instant.adminToken` of the org in Clerk (and fix `appId` if it names another app); never paste it in a ticket or a command line.",
        ),
        case.replan("03-replan-org", "post-token-rotation-org-matrix"),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_commands_are_ours, case, diagnostic, outline};
    use crate::issues::IssueCode;

    #[test]
    fn rotate_update_replan() {
        let (case, _) = case(&diagnostic(IssueCode::InvalidAdminToken));
        assert_commands_are_ours(&case);
        expect_test::expect![[r#"
            01-rotate-token human_gate
            02-update-clerk human_gate
            03-replan-org command"#]]
        .assert_eq(&outline(&case));
        assert!(case.actions[2].command.as_deref().unwrap().ends_with(
            "--out-md artifacts/cases/case-01-org-2abcdef/post-token-rotation-org-matrix.md"
        ));
    }

    #[test]
    fn markdown() {
        let (_, markdown) = case(&diagnostic(IssueCode::InvalidAdminToken));
        insta::assert_snapshot!(markdown);
    }
}
