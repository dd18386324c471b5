//! The `OrgDirectory` port: which customer organisations exist and the credentials of the
//! InstantDB app each one owns.
//!
//! Everything above this port (schema planning per org, the fleet matrix, diagnostics) asks it
//! and nothing else, so the same code runs against Clerk in production ([`clerk`]) and against
//! the embedded workspace in rehearsals and tests (`instant_local::directory`, which implements
//! this trait on the engine's side so that this crate knows nothing of Instant).
//!
//! An organisation without usable credentials is not an error: it is a
//! [`CredentialsOutcome::Missing`] or [`CredentialsOutcome::Malformed`] whose
//! [`IssueCode`] (`missing_instant_credentials`) reports and gates key on, instead of a
//! message someone has to grep later. Errors ([`DirectoryError`]) are reserved for the
//! directory itself failing: a refused key, an unknown org, a broken connection.

pub mod clerk;

use std::fmt;

pub use clerk::ClerkDirectory;

/// An organisation as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub slug: String,
}

/// Secrets (admin tokens) are [`http_client::Secret`]: never shown by `Debug` or `Display`.
pub use http_client::Secret;

/// The InstantDB app an organisation owns and the admin token that acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    pub app_id: String,
    pub admin_token: Secret,
}

/// What the directory knows about an organisation's app credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsOutcome {
    Present(AppCredentials),
    /// Nothing usable is recorded (absent, null or blank values). `reason` names the fields,
    /// never their values.
    Missing {
        reason: String,
    },
    /// Something is recorded but has the wrong shape (a number where a string belongs, an
    /// array where an object belongs). `reason` names the fields and types, never values.
    Malformed {
        reason: String,
    },
}

impl CredentialsOutcome {
    /// The issue code of an outcome that stops work on the org; `None` when credentials are
    /// present.
    pub fn issue_code(&self) -> Option<IssueCode> {
        match self {
            CredentialsOutcome::Present(_) => None,
            CredentialsOutcome::Missing { .. } | CredentialsOutcome::Malformed { .. } => {
                Some(IssueCode::MissingInstantCredentials)
            }
        }
    }

    /// Why credentials are unusable; `None` when they are present.
    pub fn reason(&self) -> Option<&str> {
        match self {
            CredentialsOutcome::Present(_) => None,
            CredentialsOutcome::Missing { reason } | CredentialsOutcome::Malformed { reason } => {
                Some(reason)
            }
        }
    }

    pub fn present(&self) -> Option<&AppCredentials> {
        match self {
            CredentialsOutcome::Present(credentials) => Some(credentials),
            _ => None,
        }
    }

    pub fn into_present(self) -> Option<AppCredentials> {
        match self {
            CredentialsOutcome::Present(credentials) => Some(credentials),
            _ => None,
        }
    }
}

/// Stable issue codes, shared with the reports and gates (the anchor's identifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IssueCode {
    /// The org has no usable Instant app id and admin token.
    MissingInstantCredentials,
}

impl IssueCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            IssueCode::MissingInstantCredentials => "missing_instant_credentials",
        }
    }
}

impl fmt::Display for IssueCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An organisation together with its credentials outcome, as one lookup returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedOrg {
    pub org: Org,
    pub credentials: CredentialsOutcome,
}

/// Why the directory could not answer. No variant ever carries a secret: messages quoted
/// from a server are scrubbed of the key that was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The directory's own secret is not configured.
    #[error("{variable} is not set (the organisation directory's secret key comes only from this environment variable)")]
    MissingSecret { variable: &'static str },
    /// The adapter's configuration is unusable (for example a base URL that is not http(s)).
    #[error("organisation directory configuration: {message}")]
    InvalidConfig { message: String },
    /// The directory refused the secret key (HTTP 401).
    #[error("the organisation directory refused the secret key ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// No organisation has this id.
    #[error("organization {org_id} not found")]
    OrgNotFound { org_id: String },
    /// Any other non-success answer, after retries where the status is retryable.
    #[error("the organisation directory answered {status} for {operation}: {message}{}", trace_suffix(.trace_id))]
    Status {
        operation: String,
        status: u16,
        message: String,
        trace_id: Option<String>,
    },
    /// The request never got an answer (connection refused or reset, timeout), after retries.
    #[error("the organisation directory could not be reached for {operation}: {message}")]
    Transport { operation: String, message: String },
    /// A success answer that is not what the directory's API documents.
    #[error("the organisation directory sent an unexpected answer for {operation}: {message}")]
    InvalidResponse { operation: String, message: String },
    /// The local workspace behind the directory failed.
    #[error("organisation directory storage: {message}")]
    Storage { message: String },
}

fn trace_suffix(trace_id: &Option<String>) -> String {
    match trace_id {
        Some(trace_id) => format!(" (trace id {trace_id})"),
        None => String::new(),
    }
}

/// The organisations threadmig works on and their app credentials.
pub trait OrgDirectory: Send + Sync {
    /// Every organisation, paged until the directory is exhausted, each once.
    fn list_orgs(&self) -> Result<Vec<Org>, DirectoryError>;

    /// One organisation; an unknown id is [`DirectoryError::OrgNotFound`].
    fn get_org(&self, org_id: &str) -> Result<Org, DirectoryError>;

    /// The org's app credentials; an unknown id is [`DirectoryError::OrgNotFound`].
    fn credentials(&self, org_id: &str) -> Result<CredentialsOutcome, DirectoryError>;

    /// The org and its credentials together. Adapters that learn both from one request
    /// override this so a per-org loop costs one request per org, not two.
    fn resolve(&self, org_id: &str) -> Result<ResolvedOrg, DirectoryError> {
        Ok(ResolvedOrg {
            org: self.get_org(org_id)?,
            credentials: self.credentials(org_id)?,
        })
    }
}

impl<T: OrgDirectory + ?Sized> OrgDirectory for &T {
    fn list_orgs(&self) -> Result<Vec<Org>, DirectoryError> {
        (**self).list_orgs()
    }
    fn get_org(&self, org_id: &str) -> Result<Org, DirectoryError> {
        (**self).get_org(org_id)
    }
    fn credentials(&self, org_id: &str) -> Result<CredentialsOutcome, DirectoryError> {
        (**self).credentials(org_id)
    }
    fn resolve(&self, org_id: &str) -> Result<ResolvedOrg, DirectoryError> {
        (**self).resolve(org_id)
    }
}

impl<T: OrgDirectory + ?Sized> OrgDirectory for Box<T> {
    fn list_orgs(&self) -> Result<Vec<Org>, DirectoryError> {
        (**self).list_orgs()
    }
    fn get_org(&self, org_id: &str) -> Result<Org, DirectoryError> {
        (**self).get_org(org_id)
    }
    fn credentials(&self, org_id: &str) -> Result<CredentialsOutcome, DirectoryError> {
        (**self).credentials(org_id)
    }
    fn resolve(&self, org_id: &str) -> Result<ResolvedOrg, DirectoryError> {
        (**self).resolve(org_id)
    }
}

impl<T: OrgDirectory + ?Sized> OrgDirectory for std::sync::Arc<T> {
    fn list_orgs(&self) -> Result<Vec<Org>, DirectoryError> {
        (**self).list_orgs()
    }
    fn get_org(&self, org_id: &str) -> Result<Org, DirectoryError> {
        (**self).get_org(org_id)
    }
    fn credentials(&self, org_id: &str) -> Result<CredentialsOutcome, DirectoryError> {
        (**self).credentials(org_id)
    }
    fn resolve(&self, org_id: &str) -> Result<ResolvedOrg, DirectoryError> {
        (**self).resolve(org_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let credentials = AppCredentials {
            app_id: "app".into(),
            admin_token: Secret::new("tok-123-very-secret"),
        };
        let shown = format!(
            "{credentials:?} {} {:?}",
            credentials.admin_token,
            CredentialsOutcome::Present(credentials.clone())
        );
        assert!(!shown.contains("tok-123"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(credentials.admin_token.expose(), "tok-123-very-secret");
    }

    #[test]
    fn unusable_credentials_share_one_issue_code() {
        let missing = CredentialsOutcome::Missing {
            reason: "no app".into(),
        };
        let malformed = CredentialsOutcome::Malformed {
            reason: "bad type".into(),
        };
        assert_eq!(
            missing.issue_code().map(IssueCode::as_str),
            Some("missing_instant_credentials")
        );
        assert_eq!(
            malformed.issue_code(),
            Some(IssueCode::MissingInstantCredentials)
        );
        assert_eq!(malformed.reason(), Some("bad type"));
        let present = CredentialsOutcome::Present(AppCredentials {
            app_id: "a".into(),
            admin_token: Secret::new("t"),
        });
        assert_eq!((present.issue_code(), present.reason()), (None, None));
        assert_eq!(
            IssueCode::MissingInstantCredentials.to_string(),
            "missing_instant_credentials"
        );
    }

    #[test]
    fn status_errors_name_operation_and_trace() {
        let error = DirectoryError::Status {
            operation: "GET /v1/organizations".into(),
            status: 500,
            message: "boom".into(),
            trace_id: Some("abc".into()),
        };
        assert_eq!(
            error.to_string(),
            "the organisation directory answered 500 for GET /v1/organizations: boom (trace id abc)"
        );
    }
}
