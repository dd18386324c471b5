//! `account_mismatch` (`ACC-001`): the server denies the token's account access to the app
//! (not a collaborator, permission denied). The org stays in the report, out of the wave.

use super::{replan_command, ActionContext, Observation, PlanFailure, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "account_mismatch",
    plan_id: "ACC-001",
    blocking: true,
    priority: Priority::Medium,
    title: "The app belongs to an account the credentials cannot act for: keep it out of the wave",
};

/// The old matrix's phrases of an access refusal (lower case).
const PHRASES: [&str; 11] = [
    "missing role collaborator",
    "missing role",
    "user-role",
    "permission denied",
    "forbidden",
    "unauthorized",
    "not authorized",
    "not allowed",
    "does not have access",
    "no access",
    "not a member",
];

pub(super) fn matches(failure: &PlanFailure) -> bool {
    let message = failure.message.to_ascii_lowercase();
    failure.error_type == "permission-denied"
        || failure.status == 403
        || PHRASES.iter().any(|phrase| message.contains(phrase))
}

pub(super) fn reason(observation: &Observation<'_>) -> String {
    match observation {
        Observation::PlanFailed(failure) => {
            format!(
                "the server denies access to the app ({})",
                failure.summary()
            )
        }
        _ => "the server denies access to the app".into(),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        "No action now: keep the org in the report and out of this wave.".into(),
        format!(
            "Optionally ask for collaborator access to the app, then re-plan: {}.",
            replan_command(context)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_classified, context, failure};
    use super::super::{IssueCode, Observation};

    #[test]
    fn access_refusals_by_type_status_or_phrase() {
        assert_classified(&[
            (
                failure(
                    400,
                    "permission-denied",
                    "Permission denied: not perms-pull",
                ),
                IssueCode::AccountMismatch,
            ),
            (
                failure(403, "http-error", "nope"),
                IssueCode::AccountMismatch,
            ),
            (
                failure(
                    400,
                    "validation-failed",
                    "Missing role collaborator for app",
                ),
                IssueCode::AccountMismatch,
            ),
            (
                failure(400, "validation-failed", "User is NOT A MEMBER of this org"),
                IssueCode::AccountMismatch,
            ),
            (
                failure(400, "validation-failed", "Validation failed for schema"),
                IssueCode::UnknownPlanError,
            ),
        ]);
        let refused = failure(400, "permission-denied", "Permission denied: not apps-read");
        assert_eq!(
            IssueCode::AccountMismatch.reason(&Observation::PlanFailed(&refused), &context()),
            "the server denies access to the app (400 permission-denied: Permission denied: not apps-read)"
        );
    }

    #[test]
    fn markdown() {
        let refused = failure(400, "permission-denied", "Permission denied: not apps-read");
        let reason =
            IssueCode::AccountMismatch.reason(&Observation::PlanFailed(&refused), &context());
        insta::assert_snapshot!(IssueCode::AccountMismatch.markdown(&context(), &reason));
    }
}
