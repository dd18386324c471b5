//! Issue codes: what stops an organisation from joining a migration wave, one module per code.
//!
//! Every row of the org matrix gets exactly one code ([`classify`]); the code decides the
//! row's action plan (plan id, blocking, title, steps), the default diagnose actions and the
//! runbook family. Diagnose uses the same [`classify`], so the matrix and the diagnostics
//! never disagree about an org (the old scripts had two precedence orders).
//!
//! The old scripts' codes and plan ids are kept byte for byte. Three codes are new, each for a
//! case the old scripts misreported:
//! - `plan_review_required` (`REV-001`) and `plan_critical_steps` (`CRIT-001`): the server
//!   planned the schema but the plan has warning or critical steps. The old matrix gave every
//!   planned row `plan_ok` / `OK-000` ("include in the next wave") even when its gate was
//!   `blocked`.
//! - `clerk_lookup_error` (`DIR-001`), the old `errorKind` of an organisation the directory
//!   could not resolve (unknown org id, refused secret key, unreachable directory), which the
//!   old matrix classified by grepping its message (a Clerk 401 became `account_mismatch`).
//!
//! Missing credentials and directory failures are blocking, never `review` or safe.

mod account_mismatch;
mod clerk_lookup_error;
mod instant_app_not_found;
mod invalid_admin_token;
mod missing_instant_credentials;
mod plan_critical_steps;
mod plan_ok;
mod plan_review_required;
mod schema_duplicate_link;
pub mod text;
mod unknown_plan_error;

use std::fmt;

use instant_api::ApiError;
use instant_schema::severity::{Gate, SeverityCounts};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use schema_duplicate_link::{duplicate_targets, LinkTarget};
pub use unknown_plan_error::INTERNAL as INTERNAL_ERROR_TYPE;

use crate::matrix::StepInstruction;

/// Why an organisation is (or is not) ready for the next wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IssueCode {
    PlanOk,
    PlanReviewRequired,
    PlanCriticalSteps,
    MissingInstantCredentials,
    ClerkLookupError,
    InvalidAdminToken,
    AccountMismatch,
    SchemaDuplicateLink,
    InstantAppNotFound,
    UnknownPlanError,
}

/// How urgent a case is in the runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    High,
    Medium,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

/// The fixed facts of an issue code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub code: &'static str,
    /// The action plan id (`OK-000`, `SCH-001`, …).
    pub plan_id: &'static str,
    /// Whether the org stays out of the wave until the issue is fixed.
    pub blocking: bool,
    pub priority: Priority,
    pub title: &'static str,
}

/// A plan request the server refused, as classification needs it. Built from the port's
/// [`ApiError`]; never holds a token (the caller scrubs it from the message first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanFailure {
    /// HTTP status; 0 when no answer came (transport failure).
    pub status: u16,
    /// The server's error `type` (`validation-failed`, `record-not-found`, …).
    pub error_type: String,
    pub message: String,
    /// `hint.record-type` of a `record-not-found`.
    pub record_type: Option<String>,
    /// `hint.reason` (`admin-token-mismatch`).
    pub hint_reason: Option<String>,
}

impl PlanFailure {
    pub fn from_api_error(error: &ApiError) -> PlanFailure {
        let hint_text = |key: &str| {
            error
                .hint
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        PlanFailure {
            status: error.status,
            error_type: error.error_type.clone(),
            message: error.message.clone(),
            record_type: hint_text("record-type"),
            hint_reason: hint_text("reason"),
        }
    }

    /// `Record not found: <type>`, from the hint or, failing that, from the message.
    pub fn record_not_found(&self) -> Option<String> {
        if let Some(record_type) = &self.record_type {
            return Some(record_type.clone());
        }
        let lower = self.message.to_ascii_lowercase();
        let rest = lower.strip_prefix("record not found: ")?;
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        (!word.is_empty()).then_some(word)
    }

    /// `<status> <type>: <message>` on one line.
    pub fn summary(&self) -> String {
        text::one_line(&format!(
            "{} {}: {}",
            self.status, self.error_type, self.message
        ))
    }
}

/// What the matrix observed for one organisation.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    /// The server returned a plan.
    Planned {
        counts: SeverityCounts,
        gate: Gate,
        /// The plan's steps (only warning and critical ones are named in reasons).
        steps: &'a [StepInstruction],
    },
    /// The directory has no usable credentials for the org.
    MissingCredentials { reason: &'a str },
    /// The directory could not answer for the org (or could not list orgs at all).
    DirectoryFailed { error: &'a str },
    /// The server refused the plan request.
    PlanFailed(&'a PlanFailure),
}

/// The codes tried, in order, on a refused plan request; the first that matches wins, else
/// `unknown_plan_error`. Token problems come first because their texts also contain words the
/// account-mismatch check looks for ("unauthorized").
const FAILURE_PRECEDENCE: [IssueCode; 4] = [
    IssueCode::InvalidAdminToken,
    IssueCode::AccountMismatch,
    IssueCode::SchemaDuplicateLink,
    IssueCode::InstantAppNotFound,
];

/// The one issue code of an observation.
pub fn classify(observation: &Observation<'_>) -> IssueCode {
    match observation {
        Observation::Planned { gate, .. } => match gate {
            Gate::Safe => IssueCode::PlanOk,
            Gate::Review => IssueCode::PlanReviewRequired,
            Gate::Blocked => IssueCode::PlanCriticalSteps,
        },
        Observation::MissingCredentials { .. } => IssueCode::MissingInstantCredentials,
        Observation::DirectoryFailed { .. } => IssueCode::ClerkLookupError,
        Observation::PlanFailed(failure) => FAILURE_PRECEDENCE
            .into_iter()
            .find(|code| code.matches(failure))
            .unwrap_or(IssueCode::UnknownPlanError),
    }
}

/// What the action texts of a row may name.
#[derive(Debug, Clone, Copy)]
pub struct ActionContext<'a> {
    pub org_id: &'a str,
    pub app_id: Option<&'a str>,
    /// The target schema as given to the matrix (`builtin:thread-v1` or a path).
    pub schema_source: &'a str,
}

impl IssueCode {
    pub const ALL: [IssueCode; 10] = [
        IssueCode::PlanOk,
        IssueCode::PlanReviewRequired,
        IssueCode::PlanCriticalSteps,
        IssueCode::MissingInstantCredentials,
        IssueCode::ClerkLookupError,
        IssueCode::InvalidAdminToken,
        IssueCode::AccountMismatch,
        IssueCode::SchemaDuplicateLink,
        IssueCode::InstantAppNotFound,
        IssueCode::UnknownPlanError,
    ];

    pub fn spec(self) -> &'static Spec {
        match self {
            IssueCode::PlanOk => &plan_ok::SPEC,
            IssueCode::PlanReviewRequired => &plan_review_required::SPEC,
            IssueCode::PlanCriticalSteps => &plan_critical_steps::SPEC,
            IssueCode::MissingInstantCredentials => &missing_instant_credentials::SPEC,
            IssueCode::ClerkLookupError => &clerk_lookup_error::SPEC,
            IssueCode::InvalidAdminToken => &invalid_admin_token::SPEC,
            IssueCode::AccountMismatch => &account_mismatch::SPEC,
            IssueCode::SchemaDuplicateLink => &schema_duplicate_link::SPEC,
            IssueCode::InstantAppNotFound => &instant_app_not_found::SPEC,
            IssueCode::UnknownPlanError => &unknown_plan_error::SPEC,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.spec().code
    }

    pub fn parse(text: &str) -> Option<IssueCode> {
        IssueCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
    }

    pub fn plan_id(self) -> &'static str {
        self.spec().plan_id
    }

    pub fn blocking(self) -> bool {
        self.spec().blocking
    }

    pub fn priority(self) -> Priority {
        self.spec().priority
    }

    pub fn title(self) -> &'static str {
        self.spec().title
    }

    /// Whether a refused plan request is this issue (only the codes of refusals match).
    fn matches(self, failure: &PlanFailure) -> bool {
        match self {
            IssueCode::InvalidAdminToken => invalid_admin_token::matches(failure),
            IssueCode::AccountMismatch => account_mismatch::matches(failure),
            IssueCode::SchemaDuplicateLink => schema_duplicate_link::matches(failure),
            IssueCode::InstantAppNotFound => instant_app_not_found::matches(failure),
            _ => false,
        }
    }

    /// The matrix row's one-line reason.
    pub fn reason(self, observation: &Observation<'_>, context: &ActionContext<'_>) -> String {
        let text = match self {
            IssueCode::PlanOk => plan_ok::reason(observation),
            IssueCode::PlanReviewRequired => plan_review_required::reason(observation),
            IssueCode::PlanCriticalSteps => plan_critical_steps::reason(observation),
            IssueCode::MissingInstantCredentials => {
                missing_instant_credentials::reason(observation)
            }
            IssueCode::ClerkLookupError => clerk_lookup_error::reason(observation),
            IssueCode::InvalidAdminToken => invalid_admin_token::reason(observation, context),
            IssueCode::AccountMismatch => account_mismatch::reason(observation),
            IssueCode::SchemaDuplicateLink => schema_duplicate_link::reason(observation),
            IssueCode::InstantAppNotFound => instant_app_not_found::reason(observation, context),
            IssueCode::UnknownPlanError => unknown_plan_error::reason(observation),
        };
        text::one_line(&text)
    }

    /// The matrix action plan's steps (the old `buildActionPlan`, with this tool's commands).
    pub fn action_steps(self, context: &ActionContext<'_>) -> Vec<String> {
        match self {
            IssueCode::PlanOk => plan_ok::steps(context),
            IssueCode::PlanReviewRequired => plan_review_required::steps(context),
            IssueCode::PlanCriticalSteps => plan_critical_steps::steps(context),
            IssueCode::MissingInstantCredentials => missing_instant_credentials::steps(context),
            IssueCode::ClerkLookupError => clerk_lookup_error::steps(context),
            IssueCode::InvalidAdminToken => invalid_admin_token::steps(context),
            IssueCode::AccountMismatch => account_mismatch::steps(context),
            IssueCode::SchemaDuplicateLink => schema_duplicate_link::steps(context),
            IssueCode::InstantAppNotFound => instant_app_not_found::steps(context),
            IssueCode::UnknownPlanError => unknown_plan_error::steps(context),
        }
    }

    /// The matrix row's `actionPlan`.
    pub fn action_plan(self, context: &ActionContext<'_>) -> ActionPlan {
        ActionPlan {
            plan_id: self.plan_id().to_string(),
            issue_code: self,
            blocking: self.blocking(),
            title: self.title().to_string(),
            steps: self.action_steps(context),
        }
    }

    /// The row's action plan as a Markdown block (heading, title, reason, numbered steps): the
    /// matrix report's `## Action Plans` section is one block per row that is not safe.
    pub fn markdown(self, context: &ActionContext<'_>, reason: &str) -> String {
        use std::fmt::Write as _;
        let plan = self.action_plan(context);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### `{}`: `{}` {} ({}, {})\n",
            text::cell(context.org_id, 80),
            self.as_str(),
            plan.plan_id,
            if plan.blocking {
                "blocking"
            } else {
                "not blocking"
            },
            self.priority().as_str()
        );
        let _ = writeln!(out, "{}\n", plan.title);
        let _ = writeln!(out, "- Org: `{}`", context.org_id);
        let _ = writeln!(
            out,
            "- App: {}",
            context
                .app_id
                .map(|app| format!("`{app}`"))
                .unwrap_or_else(|| "none".into())
        );
        let _ = writeln!(out, "- Reason: {}\n", text::one_line(reason));
        for (i, step) in plan.steps.iter().enumerate() {
            let _ = writeln!(out, "{}. {step}", i + 1);
        }
        out
    }
}

impl fmt::Display for IssueCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for IssueCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IssueCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        IssueCode::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown issue code `{text}` (known: {})",
                IssueCode::ALL.map(IssueCode::as_str).join(", ")
            ))
        })
    }
}

/// A matrix row's action plan (`{planId, issueCode, blocking, title, steps}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionPlan {
    pub plan_id: String,
    pub issue_code: IssueCode,
    pub blocking: bool,
    pub title: String,
    pub steps: Vec<String>,
}

/// `threadmig matrix` re-planning one org, as action texts name it.
pub(crate) fn replan_command(context: &ActionContext<'_>) -> String {
    format!(
        "`threadmig matrix --org-ids {} --schema-file {}`",
        text::shell_word(context.org_id),
        text::shell_word(context.schema_source)
    )
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn context() -> ActionContext<'static> {
        ActionContext {
            org_id: "org_2abcDEF",
            app_id: Some("7a1c0d1e-0000-4000-8000-000000000001"),
            schema_source: "builtin:thread-v1",
        }
    }

    pub fn failure(status: u16, error_type: &str, message: &str) -> PlanFailure {
        PlanFailure {
            status,
            error_type: error_type.into(),
            message: message.into(),
            record_type: None,
            hint_reason: None,
        }
    }

    /// `(observation, expected code)` rows, checked through [`classify`].
    pub fn assert_classified(cases: &[(PlanFailure, IssueCode)]) {
        for (failure, expected) in cases {
            assert_eq!(
                classify(&Observation::PlanFailed(failure)),
                *expected,
                "{failure:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_plan_ids_and_blocking_are_the_documented_table() {
        let table: Vec<String> = IssueCode::ALL
            .iter()
            .map(|code| {
                format!(
                    "{:<28} {:<9} blocking={:<5} {}",
                    code.as_str(),
                    code.plan_id(),
                    code.blocking(),
                    code.priority().as_str()
                )
            })
            .collect();
        expect_test::expect![[r#"
            plan_ok                      OK-000    blocking=false low
            plan_review_required         REV-001   blocking=false medium
            plan_critical_steps          CRIT-001  blocking=true  high
            missing_instant_credentials  CREDS-001 blocking=true  critical
            clerk_lookup_error           DIR-001   blocking=true  critical
            invalid_admin_token          TOK-001   blocking=true  critical
            account_mismatch             ACC-001   blocking=true  medium
            schema_duplicate_link        SCH-001   blocking=true  high
            instant_app_not_found        APP-404   blocking=true  critical
            unknown_plan_error           GEN-001   blocking=true  medium"#]]
        .assert_eq(&table.join("\n"));
        for code in IssueCode::ALL {
            assert_eq!(IssueCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<IssueCode>(&json).unwrap(), code);
        }
        assert!(serde_json::from_str::<IssueCode>("\"nope\"")
            .unwrap_err()
            .to_string()
            .contains("unknown issue code `nope`"));
    }

    #[test]
    fn planned_rows_are_classified_by_gate_and_others_by_kind() {
        let steps: Vec<StepInstruction> = Vec::new();
        let planned = |gate| Observation::Planned {
            counts: SeverityCounts::default(),
            gate,
            steps: &steps,
        };
        assert_eq!(classify(&planned(Gate::Safe)), IssueCode::PlanOk);
        assert_eq!(
            classify(&planned(Gate::Review)),
            IssueCode::PlanReviewRequired
        );
        assert_eq!(
            classify(&planned(Gate::Blocked)),
            IssueCode::PlanCriticalSteps
        );
        assert_eq!(
            classify(&Observation::MissingCredentials { reason: "x" }),
            IssueCode::MissingInstantCredentials
        );
        assert_eq!(
            classify(&Observation::DirectoryFailed { error: "x" }),
            IssueCode::ClerkLookupError
        );
        let unknown = test_support::failure(500, "unknown", "Something went wrong.");
        assert_eq!(
            classify(&Observation::PlanFailed(&unknown)),
            IssueCode::UnknownPlanError
        );
    }

    #[test]
    fn record_not_found_reads_the_hint_then_the_message() {
        let mut failure = test_support::failure(400, "record-not-found", "Record not found: app");
        assert_eq!(failure.record_not_found().as_deref(), Some("app"));
        failure.record_type = Some("app-admin-token".into());
        assert_eq!(
            failure.record_not_found().as_deref(),
            Some("app-admin-token")
        );
        let other = test_support::failure(400, "validation-failed", "Validation failed");
        assert_eq!(other.record_not_found(), None);
        let error = ApiError::record_not_found("instant-user", serde_json::Map::new());
        assert_eq!(
            PlanFailure::from_api_error(&error).record_type.as_deref(),
            Some("instant-user")
        );
    }
}
