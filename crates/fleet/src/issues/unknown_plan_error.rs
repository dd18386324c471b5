//! `unknown_plan_error` (`GEN-001`): any other failed plan request: the server unreachable
//! after retries, a 5xx, a schema refusal other than a duplicate link (backwards link, cascade
//! on a many link), an answer that is not a plan.

use super::{replan_command, ActionContext, Observation, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "unknown_plan_error",
    plan_id: "GEN-001",
    blocking: true,
    priority: Priority::Medium,
    title: "The plan request failed: inspect the error and fix it before planning again",
};

/// The error type of a failure inside threadmig itself (a panic in an adapter).
pub const INTERNAL: &str = "internal";

pub(super) fn reason(observation: &Observation<'_>) -> String {
    match observation {
        Observation::PlanFailed(failure) if failure.error_type == INTERNAL => {
            format!(
                "planning this org failed inside threadmig (a bug): {}",
                failure.message
            )
        }
        Observation::PlanFailed(failure) if failure.status == 0 => {
            format!("the Instant API could not be reached: {}", failure.message)
        }
        Observation::PlanFailed(failure) if failure.status == 429 || failure.status >= 500 => {
            format!(
                "the server kept failing after retries ({})",
                failure.summary()
            )
        }
        Observation::PlanFailed(failure) => {
            format!(
                "the server refused the plan request ({})",
                failure.summary()
            )
        }
        _ => "the plan request failed".into(),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        "Inspect the error in the row (status, type and message).".into(),
        "Apply a targeted fix (for transport failures and 5xx answers: retry later).".into(),
        format!("Re-plan this org: {}.", replan_command(context)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_classified, context, failure};
    use super::super::{IssueCode, Observation};

    #[test]
    fn everything_else_is_unknown_with_a_reason_per_kind() {
        let cases = [
            (failure(0, "transport", "POST /superadmin/apps/x/schema/push/plan: connection refused"),
             "the Instant API could not be reached: POST /superadmin/apps/x/schema/push/plan: connection refused"),
            (failure(503, "http-error", "Service Unavailable"),
             "the server kept failing after retries (503 http-error: Service Unavailable)"),
            (failure(400, "validation-failed", "Validation failed for schema: a->b: Conflicting link found for attribute."),
             "the server refused the plan request (400 validation-failed: Validation failed for schema: a->b: Conflicting link found for attribute.)"),
        ];
        assert_classified(
            &cases
                .iter()
                .map(|(f, _)| (f.clone(), IssueCode::UnknownPlanError))
                .collect::<Vec<_>>(),
        );
        for (failure, want) in cases {
            assert_eq!(
                IssueCode::UnknownPlanError.reason(&Observation::PlanFailed(&failure), &context()),
                want
            );
        }
    }

    #[test]
    fn markdown() {
        let down = failure(
            0,
            "transport",
            "POST /superadmin/apps/x/schema/push/plan: connection refused",
        );
        let reason =
            IssueCode::UnknownPlanError.reason(&Observation::PlanFailed(&down), &context());
        insta::assert_snapshot!(IssueCode::UnknownPlanError.markdown(&context(), &reason));
    }
}
