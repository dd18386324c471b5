//! `missing_instant_credentials` cases: fill the app id and the token, re-plan. (The old
//! runbook never had these cases: it only looked at errored rows.)

use super::{ActionKind, CaseContext, RunbookAction};

pub(super) fn actions(case: &CaseContext<'_>) -> Vec<RunbookAction> {
    vec![
        RunbookAction::new(
            "01-fill-appid",
            "Fill the app id",
            ActionKind::HumanGate,
            "Set `privateMetadata.instant.appId` of the org in Clerk to the org's InstantDB app (in a workspace: the org's record).",
        ),
        RunbookAction::new(
            "02-fill-token",
            "Fill the admin token",
            ActionKind::HumanGate,
            "Set `privateMetadata.instant.adminToken` to that app's admin token, through the approved process; never in a ticket or a command line.",
        ),
        case.replan("03-replan-org", "post-credentials-org-matrix"),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_commands_are_ours, case, diagnostic, outline};
    use crate::issues::IssueCode;

    #[test]
    fn fill_both_then_replan() {
        let mut d = diagnostic(IssueCode::MissingInstantCredentials);
        d.app_id = None;
        let (case, _) = case(&d);
        assert_commands_are_ours(&case);
        expect_test::expect![[r#"
            01-fill-appid human_gate
            02-fill-token human_gate
            03-replan-org command"#]]
        .assert_eq(&outline(&case));
        assert!(case.blocking);
    }

    #[test]
    fn markdown() {
        let mut d = diagnostic(IssueCode::MissingInstantCredentials);
        d.app_id = None;
        d.root_cause = "no usable Instant credentials: the workspace records no Instant credentials for this organization".into();
        let (_, markdown) = case(&d);
        insta::assert_snapshot!(markdown);
    }
}
