//! `clerk_lookup_error` cases: the directory could not resolve the org (unknown id, refused
//! key, unreachable). For a failed listing (org `*`) the re-plan covers the whole fleet.

use super::{ActionKind, CaseContext, RunbookAction};

pub(super) fn actions(case: &CaseContext<'_>) -> Vec<RunbookAction> {
    vec![
        RunbookAction::new(
            "01-check-directory-access",
            "Check the directory lookup",
            ActionKind::ManualCheck,
            format!(
                "Check that the org id exists and that CLERK_SECRET_KEY is set and accepted; the lookup said: {}",
                case.diagnostic.root_cause
            ),
        ),
        RunbookAction::new(
            "02-fix-directory",
            "Fix the org id or the directory access",
            ActionKind::HumanGate,
            "Correct the org id in the wave, or have the directory key renewed through the approved process.",
        ),
        case.replan("03-replan-org", "post-directory-fix-org-matrix"),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_commands_are_ours, case, diagnostic, outline};
    use crate::issues::IssueCode;
    use crate::matrix::LISTING_ROW_ID;

    #[test]
    fn check_fix_replan_and_a_failed_listing_replans_everything() {
        let (org_case, _) = case(&diagnostic(IssueCode::ClerkLookupError));
        assert_commands_are_ours(&org_case);
        expect_test::expect![[r#"
            01-check-directory-access manual_check
            02-fix-directory human_gate
            03-replan-org command"#]]
        .assert_eq(&outline(&org_case));
        assert!(org_case.actions[2]
            .command
            .as_deref()
            .unwrap()
            .contains("--org-ids org_2abcDEF"));
        let mut listing = diagnostic(IssueCode::ClerkLookupError);
        listing.org.id = LISTING_ROW_ID.into();
        let (listing_case, _) = case(&listing);
        assert_eq!(listing_case.case_id, "case-01-directory");
        assert!(!listing_case.actions[2]
            .command
            .as_deref()
            .unwrap()
            .contains("--org-ids"));
    }

    #[test]
    fn markdown() {
        let mut d = diagnostic(IssueCode::ClerkLookupError);
        d.app_id = None;
        d.root_cause = "the organisation directory could not resolve the org: the organisation directory refused the secret key (401): Unauthorized".into();
        let (_, markdown) = case(&d);
        insta::assert_snapshot!(markdown);
    }
}
