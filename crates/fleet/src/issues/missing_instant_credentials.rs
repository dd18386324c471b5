//! `missing_instant_credentials` (`CREDS-001`): the organisation directory has no usable app
//! id and admin token for the org (absent, blank or of the wrong shape). Blocking: such an org
//! is never counted safe or "review" (the old matrix counted it as review-required, so the
//! hot-deploy gates let it through).

use super::{replan_command, ActionContext, Observation, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "missing_instant_credentials",
    plan_id: "CREDS-001",
    blocking: true,
    priority: Priority::Critical,
    title: "Org has no usable Instant credentials: fill them in the organisation directory",
};

pub(super) fn reason(observation: &Observation<'_>) -> String {
    match observation {
        Observation::MissingCredentials { reason } => {
            format!("no usable Instant credentials: {reason}")
        }
        _ => "no usable Instant credentials".into(),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        "Populate `privateMetadata.instant.appId` and `privateMetadata.instant.adminToken` of the org in Clerk (in a workspace: the org's record).".into(),
        "Keep the token out of command lines, tickets and reports; threadmig reads it from the directory.".into(),
        format!("Re-plan this org: {}.", replan_command(context)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::context;
    use super::super::{classify, ActionContext, IssueCode, Observation};

    #[test]
    fn missing_and_malformed_credentials_share_the_code_and_block() {
        let cases = [
            ("the workspace records no Instant credentials for this organization",
             "no usable Instant credentials: the workspace records no Instant credentials for this organization"),
            ("privateMetadata.instant.adminToken is a number, expected a string",
             "no usable Instant credentials: privateMetadata.instant.adminToken is a number, expected a string"),
        ];
        for (reason, want) in cases {
            let observation = Observation::MissingCredentials { reason };
            let code = classify(&observation);
            assert_eq!(code, IssueCode::MissingInstantCredentials);
            assert!(code.blocking());
            assert_eq!(code.reason(&observation, &context()), want);
        }
    }

    #[test]
    fn markdown() {
        let context = ActionContext {
            app_id: None,
            ..context()
        };
        let observation = Observation::MissingCredentials {
            reason: "the workspace records no Instant credentials for this organization",
        };
        let reason = IssueCode::MissingInstantCredentials.reason(&observation, &context);
        insta::assert_snapshot!(IssueCode::MissingInstantCredentials.markdown(&context, &reason));
    }
}
