//! `clerk_lookup_error` (`DIR-001`): the organisation directory (Clerk, or the workspace's
//! organisations) could not answer for the org: unknown org id, refused secret key (401),
//! unreachable directory. Blocking. The old scripts had this only as an `errorKind` and
//! classified the row by grepping the message (a Clerk 401 became `account_mismatch`).

use super::{replan_command, ActionContext, Observation, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "clerk_lookup_error",
    plan_id: "DIR-001",
    blocking: true,
    priority: Priority::Critical,
    title: "The organisation directory could not resolve the org: fix the lookup before planning",
};

pub(super) fn reason(observation: &Observation<'_>) -> String {
    match observation {
        Observation::DirectoryFailed { error } => {
            format!("the organisation directory could not resolve the org: {error}")
        }
        _ => "the organisation directory could not resolve the org".into(),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        "Check the org id, and that CLERK_SECRET_KEY is set and accepted (a 401 means the key was refused).".into(),
        "Check the directory is reachable; the row's reason names the failing call.".into(),
        format!("Re-plan this org once the directory answers: {}.", replan_command(context)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::context;
    use super::super::{classify, ActionContext, IssueCode, Observation};
    use org_directory::DirectoryError;

    #[test]
    fn every_directory_failure_is_a_blocking_lookup_error() {
        let errors = [
            DirectoryError::OrgNotFound {
                org_id: "org_nope".into(),
            },
            DirectoryError::Unauthorized {
                status: 401,
                message: "Unauthorized".into(),
            },
            DirectoryError::Transport {
                operation: "GET /v1/organizations/org_x".into(),
                message: "connection refused".into(),
            },
            DirectoryError::MissingSecret {
                variable: "CLERK_SECRET_KEY",
            },
        ];
        let mut reasons = Vec::new();
        for error in errors {
            let text = error.to_string();
            let observation = Observation::DirectoryFailed { error: &text };
            let code = classify(&observation);
            assert_eq!(code, IssueCode::ClerkLookupError);
            assert!(code.blocking());
            reasons.push(code.reason(&observation, &context()));
        }
        expect_test::expect![[r#"
            the organisation directory could not resolve the org: organization org_nope not found
            the organisation directory could not resolve the org: the organisation directory refused the secret key (401): Unauthorized
            the organisation directory could not resolve the org: the organisation directory could not be reached for GET /v1/organizations/org_x: connection refused
            the organisation directory could not resolve the org: CLERK_SECRET_KEY is not set (the organisation directory's secret key comes only from this environment variable)"#]]
        .assert_eq(&reasons.join("\n"));
    }

    #[test]
    fn markdown() {
        let context = ActionContext {
            org_id: "org_nope",
            app_id: None,
            ..context()
        };
        let error = "organization org_nope not found";
        let reason =
            IssueCode::ClerkLookupError.reason(&Observation::DirectoryFailed { error }, &context);
        insta::assert_snapshot!(IssueCode::ClerkLookupError.markdown(&context, &reason));
    }
}
