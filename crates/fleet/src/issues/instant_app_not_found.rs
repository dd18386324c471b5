//! `instant_app_not_found` (`APP-404`): the server has no app with the id the directory gives
//! for the org (deleted, or a wrong id in the org's metadata).

use super::{replan_command, ActionContext, Observation, PlanFailure, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "instant_app_not_found",
    plan_id: "APP-404",
    blocking: true,
    priority: Priority::Critical,
    title: "The org's app does not exist in Instant: fix the app id in the directory",
};

pub(super) fn matches(failure: &PlanFailure) -> bool {
    failure.record_not_found().as_deref() == Some("app")
}

pub(super) fn reason(observation: &Observation<'_>, context: &ActionContext<'_>) -> String {
    let app = context.app_id.unwrap_or("(no app id)");
    match observation {
        Observation::PlanFailed(failure) => {
            format!("the server has no app {app} ({})", failure.summary())
        }
        _ => format!("the server has no app {app}"),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        format!(
            "Check whether app `{}` still exists in Instant.",
            context.app_id.unwrap_or("(no app id)")
        ),
        "Fix or clear `privateMetadata.instant.appId` of the org in Clerk.".into(),
        format!("Re-plan this org: {}.", replan_command(context)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_classified, context, failure};
    use super::super::{IssueCode, Observation, PlanFailure};

    #[test]
    fn only_the_app_record_is_an_unknown_app() {
        assert_classified(&[
            (
                failure(400, "record-not-found", "Record not found: app"),
                IssueCode::InstantAppNotFound,
            ),
            (
                PlanFailure {
                    record_type: Some("app".into()),
                    ..failure(400, "record-not-found", "gone")
                },
                IssueCode::InstantAppNotFound,
            ),
            // `app-admin-token` starts like `app` but is a token problem.
            (
                failure(400, "record-not-found", "Record not found: app-admin-token"),
                IssueCode::InvalidAdminToken,
            ),
            (
                failure(400, "record-not-found", "Record not found: indexing-job"),
                IssueCode::UnknownPlanError,
            ),
        ]);
        let gone = failure(400, "record-not-found", "Record not found: app");
        assert_eq!(
            IssueCode::InstantAppNotFound.reason(&Observation::PlanFailed(&gone), &context()),
            "the server has no app 7a1c0d1e-0000-4000-8000-000000000001 (400 record-not-found: Record not found: app)"
        );
    }

    #[test]
    fn markdown() {
        let gone = failure(400, "record-not-found", "Record not found: app");
        let reason =
            IssueCode::InstantAppNotFound.reason(&Observation::PlanFailed(&gone), &context());
        insta::assert_snapshot!(IssueCode::InstantAppNotFound.markdown(&context(), &reason));
    }
}
