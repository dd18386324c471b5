//! `invalid_admin_token` (`TOK-001`): the server does not accept the app's admin token: an
//! unknown or rotated token (`Record not found: …token`, or a 401), or a token that belongs
//! to another app (`admin-token-mismatch`: the directory pairs the app id with another app's
//! token).

use super::{replan_command, ActionContext, Observation, PlanFailure, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "invalid_admin_token",
    plan_id: "TOK-001",
    blocking: true,
    priority: Priority::Critical,
    title: "The app's admin token is not accepted: rotate it and update the directory",
};

/// Record types of an admin token the server could not find (`instant-user` is what the
/// dashboard routes answer, with a 401, for a token they do not know).
const TOKEN_RECORDS: [&str; 3] = ["token", "app-admin-token", "instant-user"];

pub(super) fn matches(failure: &PlanFailure) -> bool {
    failure.status == 401
        || failure.hint_reason.as_deref() == Some("admin-token-mismatch")
        || failure
            .record_not_found()
            .is_some_and(|record| TOKEN_RECORDS.contains(&record.as_str()))
        || failure
            .message
            .to_ascii_lowercase()
            .contains("record not found: token")
}

pub(super) fn reason(observation: &Observation<'_>, context: &ActionContext<'_>) -> String {
    let app = context.app_id.unwrap_or("(no app id)");
    match observation {
        Observation::PlanFailed(failure)
            if failure.hint_reason.as_deref() == Some("admin-token-mismatch") =>
        {
            format!(
                "the admin token belongs to another app, not {app} (the directory pairs this app id with another app's token)"
            )
        }
        Observation::PlanFailed(failure) => format!(
            "the server does not accept the admin token of app {app} ({})",
            failure.summary()
        ),
        _ => format!("the server does not accept the admin token of app {app}"),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        format!(
            "Rotate the admin token of app `{}` in the Instant dashboard (or find the token that belongs to it).",
            context.app_id.unwrap_or("(no app id)")
        ),
        "Update `privateMetadata.instant.adminToken` (and `appId` if they no longer match) of the org in Clerk.".into(),
        format!("Re-plan this org: {}.", replan_command(context)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_classified, context, failure};
    use super::super::{IssueCode, Observation, PlanFailure};

    #[test]
    fn unknown_rotated_and_foreign_tokens() {
        let mismatch = PlanFailure {
            hint_reason: Some("admin-token-mismatch".into()),
            ..failure(400, "validation-failed", "This admin token does not belong to app a. Admin tokens are bound to a single app.")
        };
        let admin_route = PlanFailure {
            record_type: Some("app-admin-token".into()),
            ..failure(400, "record-not-found", "Record not found: app-admin-token")
        };
        assert_classified(&[
            (
                failure(401, "record-not-found", "Record not found: instant-user"),
                IssueCode::InvalidAdminToken,
            ),
            (
                failure(400, "record-not-found", "Record not found: token"),
                IssueCode::InvalidAdminToken,
            ),
            (admin_route.clone(), IssueCode::InvalidAdminToken),
            (mismatch.clone(), IssueCode::InvalidAdminToken),
            // Words an account mismatch would match do not win over a token problem.
            (
                failure(401, "unauthorized", "Unauthorized"),
                IssueCode::InvalidAdminToken,
            ),
            // An app that is not found is not a token problem.
            (
                failure(400, "record-not-found", "Record not found: app"),
                IssueCode::InstantAppNotFound,
            ),
        ]);
        let reasons: Vec<String> = [mismatch, admin_route]
            .iter()
            .map(|f| IssueCode::InvalidAdminToken.reason(&Observation::PlanFailed(f), &context()))
            .collect();
        expect_test::expect![[r#"
            the admin token belongs to another app, not 7a1c0d1e-0000-4000-8000-000000000001 (the directory pairs this app id with another app's token)
            the server does not accept the admin token of app 7a1c0d1e-0000-4000-8000-000000000001 (400 record-not-found: Record not found: app-admin-token)"#]]
        .assert_eq(&reasons.join("\n"));
    }

    #[test]
    fn markdown() {
        let unknown = failure(401, "record-not-found", "Record not found: instant-user");
        let reason =
            IssueCode::InvalidAdminToken.reason(&Observation::PlanFailed(&unknown), &context());
        insta::assert_snapshot!(IssueCode::InvalidAdminToken.markdown(&context(), &reason));
    }
}
