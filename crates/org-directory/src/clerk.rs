//! The Clerk adapter: organisations from Clerk's Backend API, app credentials from each
//! organisation's `private_metadata.instant.{appId, adminToken}`.
//!
//! Requests (Clerk Backend API v1):
//! - `GET {base}/v1/organizations?limit=L&offset=K&order_by=%2Bcreated_at`, paged until a page
//!   returns fewer than `L` rows. Oldest first, so an organisation created while the listing
//!   runs lands after the pages already read instead of shifting them (Clerk's default order is
//!   newest first, under which offset paging repeats or skips rows). Rows are deduplicated by
//!   id all the same.
//! - `GET {base}/v1/organizations/{url-encoded id}`.
//!
//! Both with `authorization: Bearer <secret>` and `accept: application/json`. The secret comes
//! from `CLERK_SECRET_KEY` ([`ClerkDirectory::from_env`]) or the caller
//! ([`ClerkDirectory::new`], for a secret read from a file or a test), never from argv; it is
//! scrubbed from any server text quoted in an error.

use http_client::{encode_path_segment, HttpClient, HttpError, ResilienceConfig};
use serde_json::Value;

use crate::{
    AppCredentials, CredentialsOutcome, DirectoryError, Org, OrgDirectory, ResolvedOrg, Secret,
};

/// Clerk's Backend API.
pub const DEFAULT_BASE_URL: &str = "https://api.clerk.com";

/// The one environment variable the secret key is read from.
pub const SECRET_KEY_VARIABLE: &str = "CLERK_SECRET_KEY";

/// Rows per listing page by default; Clerk accepts 1 to 500.
pub const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 500;

/// The limits key every Clerk request counts against: one budget per directory client.
const LIMIT_KEY: &str = "clerk";

/// The shared client's defaults, made gentler: Clerk limits its Backend API per instance (per
/// secret key) to 100 requests per 10 seconds on development instances and 1000 on production
/// ones, so 8 per second stays under either, and a directory lookup is never the hot path.
pub fn default_resilience() -> ResilienceConfig {
    ResilienceConfig {
        timeout: std::time::Duration::from_secs(30),
        max_concurrency: 4,
        max_requests_per_second: Some(8.0),
        max_response_bytes: 32 << 20,
        ..ResilienceConfig::default()
    }
}

/// Longest stretch of a non-JSON error body quoted in an error.
const QUOTED_BODY_LIMIT: usize = 300;

/// The Clerk adapter of [`OrgDirectory`].
pub struct ClerkDirectory {
    base_url: String,
    secret: Secret,
    page_size: usize,
    http: HttpClient,
}

impl std::fmt::Debug for ClerkDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkDirectory")
            .field("base_url", &self.base_url)
            .field("secret", &self.secret)
            .field("page_size", &self.page_size)
            .field("http", &self.http)
            .finish()
    }
}

impl ClerkDirectory {
    /// A directory at `base_url` (trailing slashes trimmed) authenticating with `secret`.
    pub fn new(base_url: &str, secret: Secret) -> Result<ClerkDirectory, DirectoryError> {
        let base_url = normalise_base_url(base_url)?;
        if secret.expose().trim().is_empty() {
            return Err(DirectoryError::InvalidConfig {
                message: "the Clerk secret key is empty".into(),
            });
        }
        let http = HttpClient::new(default_resilience()).map_err(|error| {
            DirectoryError::InvalidConfig {
                message: error.to_string(),
            }
        })?;
        Ok(ClerkDirectory {
            http,
            base_url,
            secret,
            page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// Replaces the HTTP client (timeouts, retries, limits). Clones of one client share their
    /// limits, so a directory and other adapters may share one budget when that is wanted.
    pub fn with_http_client(mut self, http: HttpClient) -> ClerkDirectory {
        self.http = http;
        self
    }

    /// Replaces the resilience settings with `config`.
    pub fn with_resilience(
        self,
        config: ResilienceConfig,
    ) -> Result<ClerkDirectory, DirectoryError> {
        let http = HttpClient::new(config).map_err(|error| DirectoryError::InvalidConfig {
            message: error.to_string(),
        })?;
        Ok(self.with_http_client(http))
    }

    /// A directory at `base_url` whose secret key is `CLERK_SECRET_KEY`, the only variable
    /// read. Unset or blank is [`DirectoryError::MissingSecret`]; surrounding whitespace (a
    /// trailing newline from a secrets file piped into the variable) is dropped.
    pub fn from_env(base_url: &str) -> Result<ClerkDirectory, DirectoryError> {
        let missing = DirectoryError::MissingSecret {
            variable: SECRET_KEY_VARIABLE,
        };
        let value = std::env::var(SECRET_KEY_VARIABLE).map_err(|_| missing.clone())?;
        let value = value.trim();
        if value.is_empty() {
            return Err(missing);
        }
        ClerkDirectory::new(base_url, Secret::new(value))
    }

    /// Rows per listing page, clamped to Clerk's 1..=500.
    pub fn with_page_size(mut self, page_size: usize) -> ClerkDirectory {
        self.page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// `GET {base}{path}`, answered with its JSON body or a typed error. Retries (429 with
    /// `Retry-After`, 5xx, timeouts, dropped connections) and limits are the shared client's.
    fn get_json(&self, operation: &str, path: &str) -> Result<Value, DirectoryError> {
        let reply = self
            .http
            .get(format!("{}{path}", self.base_url))
            .bearer(self.secret.expose())
            .header("accept", "application/json")
            .limit_key(LIMIT_KEY)
            .send()
            .map_err(|error| match error {
                HttpError::InvalidRequest { .. } => DirectoryError::InvalidConfig {
                    message: self.scrub(&error.to_string()),
                },
                other => DirectoryError::Transport {
                    operation: operation.to_string(),
                    message: self.scrub(&other.to_string()),
                },
            })?;
        if reply.is_success() {
            return reply
                .json()
                .map_err(|error| DirectoryError::InvalidResponse {
                    operation: operation.to_string(),
                    message: format!("the body is not JSON ({error})"),
                });
        }
        let (message, trace_id) = self.error_message(&reply.text());
        Err(match reply.status {
            401 => DirectoryError::Unauthorized {
                status: reply.status,
                message,
            },
            status => DirectoryError::Status {
                operation: operation.to_string(),
                status,
                message,
                trace_id,
            },
        })
    }

    /// The message of a Clerk error body (`{"errors":[{message, long_message, code}],
    /// "clerk_trace_id"}`), or the start of a body in any other shape.
    fn error_message(&self, body: &str) -> (String, Option<String>) {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let trace_id = parsed
            .as_ref()
            .and_then(|value| value.get("clerk_trace_id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let first = parsed
            .as_ref()
            .and_then(|value| value.get("errors"))
            .and_then(Value::as_array)
            .and_then(|errors| errors.first());
        let message = match first {
            Some(error) => {
                let text = ["long_message", "message"]
                    .iter()
                    .find_map(|key| error.get(*key).and_then(Value::as_str))
                    .unwrap_or("no message");
                match error.get("code").and_then(Value::as_str) {
                    Some(code) => format!("{text} [{code}]"),
                    None => text.to_string(),
                }
            }
            None if body.trim().is_empty() => "empty body".to_string(),
            None => {
                let body = body.trim();
                let mut end = body.len().min(QUOTED_BODY_LIMIT);
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                let ellipsis = if end < body.len() { "…" } else { "" };
                format!("{}{ellipsis}", &body[..end])
            }
        };
        (self.scrub(&message), trace_id.map(|id| self.scrub(&id)))
    }

    /// `text` with every occurrence of the secret key replaced, for text that came from the
    /// server or the transport and is about to enter an error.
    fn scrub(&self, text: &str) -> String {
        let secret = self.secret.expose();
        if secret.is_empty() {
            text.to_string()
        } else {
            text.replace(secret, "<redacted>")
        }
    }

    fn fetch_org(&self, org_id: &str) -> Result<Value, DirectoryError> {
        let org_id = org_id.trim();
        if org_id.is_empty() {
            return Err(DirectoryError::OrgNotFound {
                org_id: String::new(),
            });
        }
        let path = format!("/v1/organizations/{}", encode_path_segment(org_id));
        let operation = format!("GET /v1/organizations/{org_id}");
        let body = self
            .get_json(&operation, &path)
            .map_err(|error| match error {
                DirectoryError::Status { status: 404, .. } => DirectoryError::OrgNotFound {
                    org_id: org_id.to_string(),
                },
                other => other,
            })?;
        if !body.is_object() {
            return Err(DirectoryError::InvalidResponse {
                operation,
                message: format!("expected an organization object, got {}", type_name(&body)),
            });
        }
        Ok(body)
    }
}

impl OrgDirectory for ClerkDirectory {
    fn list_orgs(&self) -> Result<Vec<Org>, DirectoryError> {
        let limit = self.page_size;
        let mut orgs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut offset = 0usize;
        loop {
            let path =
                format!("/v1/organizations?limit={limit}&offset={offset}&order_by=%2Bcreated_at");
            let operation = format!("GET /v1/organizations (offset {offset})");
            let body = self.get_json(&operation, &path)?;
            let rows = page_rows(&body).map_err(|message| DirectoryError::InvalidResponse {
                operation: operation.clone(),
                message,
            })?;
            let mut new_rows = 0usize;
            for (index, row) in rows.iter().enumerate() {
                let org =
                    org_from_json(row).map_err(|message| DirectoryError::InvalidResponse {
                        operation: operation.clone(),
                        message: format!("row {}: {message}", offset + index),
                    })?;
                if seen.insert(org.id.clone()) {
                    orgs.push(org);
                    new_rows += 1;
                }
            }
            tracing::debug!(
                offset,
                rows = rows.len(),
                new_rows,
                "clerk organizations page"
            );
            if rows.len() < limit {
                return Ok(orgs);
            }
            // A full page of organisations already seen means the server ignores `offset`;
            // asking again would loop forever.
            if new_rows == 0 {
                return Err(DirectoryError::InvalidResponse {
                    operation,
                    message:
                        "a full page repeated organizations already listed; paging does not advance"
                            .into(),
                });
            }
            offset += rows.len();
        }
    }

    fn get_org(&self, org_id: &str) -> Result<Org, DirectoryError> {
        Ok(self.resolve(org_id)?.org)
    }

    fn credentials(&self, org_id: &str) -> Result<CredentialsOutcome, DirectoryError> {
        Ok(self.resolve(org_id)?.credentials)
    }

    fn resolve(&self, org_id: &str) -> Result<ResolvedOrg, DirectoryError> {
        let body = self.fetch_org(org_id)?;
        let org = org_from_json(&body).map_err(|message| DirectoryError::InvalidResponse {
            operation: format!("GET /v1/organizations/{}", org_id.trim()),
            message,
        })?;
        Ok(ResolvedOrg {
            org,
            credentials: credentials_from_org(&body),
        })
    }
}

/// The rows of a listing page: Clerk answers `{data: [...], total_count}`; a bare array is
/// accepted too (older API versions and some proxies).
fn page_rows(body: &Value) -> Result<&[Value], String> {
    match body {
        Value::Array(rows) => Ok(rows),
        Value::Object(object) => match object.get("data") {
            Some(Value::Array(rows)) => Ok(rows),
            Some(other) => Err(format!("`data` is {}, not an array", type_name(other))),
            None => Err("expected an array or an object with a `data` array".into()),
        },
        other => Err(format!(
            "expected an array or an object with a `data` array, got {}",
            type_name(other)
        )),
    }
}

/// An organisation object's id (required), name and slug (empty when absent or null: Clerk
/// allows organisations without a slug).
fn org_from_json(value: &Value) -> Result<Org, String> {
    let id = match value.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_string(),
        Some(other) => {
            return Err(format!(
                "`id` is {}, not a non-empty string",
                type_name(other)
            ))
        }
        None => return Err("the organization has no `id`".into()),
    };
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(Org {
        id,
        name: text("name"),
        slug: text("slug"),
    })
}

/// The credentials of an organisation object: `private_metadata` when it is an object, else
/// `privateMetadata`; then its `instant` object; then `appId` and `adminToken`, strings,
/// trimmed. Reasons name fields and types, never values (a mistyped token is still a token).
pub fn credentials_from_org(org: &Value) -> CredentialsOutcome {
    let candidates = ["private_metadata", "privateMetadata"];
    let metadata = candidates.iter().find_map(|key| match org.get(*key) {
        Some(Value::Object(object)) => Some((*key, object)),
        _ => None,
    });
    let (metadata_key, metadata) = match metadata {
        Some(found) => found,
        None => {
            let wrong = candidates.iter().find_map(|key| match org.get(*key) {
                Some(Value::Null) | None => None,
                Some(other) => Some((*key, other)),
            });
            return match wrong {
                Some((key, value)) => CredentialsOutcome::Malformed {
                    reason: format!("{key} is {}, not an object", type_name(value)),
                },
                None => CredentialsOutcome::Missing {
                    reason: "the organization has no private metadata".into(),
                },
            };
        }
    };
    let instant = match metadata.get("instant") {
        None | Some(Value::Null) => {
            return CredentialsOutcome::Missing {
                reason: format!("{metadata_key} has no `instant` entry"),
            }
        }
        Some(Value::Object(instant)) => instant,
        Some(other) => {
            return CredentialsOutcome::Malformed {
                reason: format!(
                    "{metadata_key}.instant is {}, not an object",
                    type_name(other)
                ),
            }
        }
    };
    let mut missing = Vec::new();
    let mut malformed = Vec::new();
    let mut field = |key: &str| -> Option<String> {
        let path = format!("{metadata_key}.instant.{key}");
        match instant.get(key) {
            None | Some(Value::Null) => {
                missing.push(format!("{path} is absent"));
                None
            }
            Some(Value::String(text)) if text.trim().is_empty() => {
                missing.push(format!("{path} is blank"));
                None
            }
            Some(Value::String(text)) => Some(text.trim().to_string()),
            Some(other) => {
                malformed.push(format!("{path} is {}, not a string", type_name(other)));
                None
            }
        }
    };
    let app_id = field("appId");
    let admin_token = field("adminToken");
    match (app_id, admin_token) {
        (Some(app_id), Some(admin_token)) => CredentialsOutcome::Present(AppCredentials {
            app_id,
            admin_token: Secret::new(admin_token),
        }),
        _ if !malformed.is_empty() => {
            malformed.extend(missing);
            CredentialsOutcome::Malformed {
                reason: malformed.join("; "),
            }
        }
        _ => CredentialsOutcome::Missing {
            reason: missing.join("; "),
        },
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn normalise_base_url(base_url: &str) -> Result<String, DirectoryError> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let lower = trimmed.to_ascii_lowercase();
    let host = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match host {
        Some(host) if !host.is_empty() => Ok(trimmed.to_string()),
        _ => Err(DirectoryError::InvalidConfig {
            message: format!("the Clerk API URL `{trimmed}` is not an http(s) URL"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(org: Value) -> CredentialsOutcome {
        credentials_from_org(&org)
    }

    #[test]
    fn credentials_are_read_trimmed_from_either_metadata_key() {
        let present = outcome(
            json!({"private_metadata": {"instant": {"appId": " a1 ", "adminToken": "\tt1\n"}}}),
        );
        let credentials = present.present().unwrap();
        assert_eq!(
            (
                credentials.app_id.as_str(),
                credentials.admin_token.expose()
            ),
            ("a1", "t1")
        );
        // `private_metadata` that is not an object falls back to `privateMetadata`.
        let camel = outcome(
            json!({"private_metadata": null, "privateMetadata": {"instant": {"appId": "a2", "adminToken": "t2"}}}),
        );
        assert_eq!(camel.present().unwrap().app_id, "a2");
    }

    #[test]
    fn unusable_credentials_say_why_without_values() {
        let cases = [
            (json!({}), "Missing", "the organization has no private metadata"),
            (json!({"private_metadata": {}}), "Missing", "private_metadata has no `instant` entry"),
            (json!({"private_metadata": "x"}), "Malformed", "private_metadata is a string, not an object"),
            (json!({"privateMetadata": {"instant": []}}), "Malformed", "privateMetadata.instant is an array, not an object"),
            (json!({"private_metadata": {"instant": {"appId": "a"}}}), "Missing", "private_metadata.instant.adminToken is absent"),
            (json!({"private_metadata": {"instant": {"appId": "  ", "adminToken": "t"}}}), "Missing", "private_metadata.instant.appId is blank"),
            (json!({"private_metadata": {"instant": {"appId": "a", "adminToken": 12345}}}), "Malformed", "private_metadata.instant.adminToken is a number, not a string"),
            (json!({"private_metadata": {"instant": {"appId": true}}}), "Malformed", "private_metadata.instant.appId is a boolean, not a string; private_metadata.instant.adminToken is absent"),
        ];
        for (org, kind, reason) in cases {
            let result = outcome(org.clone());
            let got_kind = match &result {
                CredentialsOutcome::Present(_) => "Present",
                CredentialsOutcome::Missing { .. } => "Missing",
                CredentialsOutcome::Malformed { .. } => "Malformed",
            };
            assert_eq!((got_kind, result.reason()), (kind, Some(reason)), "{org}");
            assert!(!result.reason().unwrap().contains("12345"));
        }
    }

    #[test]
    fn base_urls_are_normalised_or_refused() {
        assert_eq!(
            normalise_base_url("https://api.clerk.com///").unwrap(),
            "https://api.clerk.com"
        );
        assert_eq!(
            normalise_base_url(" http://127.0.0.1:9/ ").unwrap(),
            "http://127.0.0.1:9"
        );
        for bad in ["", "/", "ftp://x", "api.clerk.com", "https://"] {
            assert!(
                matches!(
                    normalise_base_url(bad),
                    Err(DirectoryError::InvalidConfig { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn listing_pages_accept_both_shapes() {
        assert_eq!(page_rows(&json!([{"id": "a"}])).unwrap().len(), 1);
        assert_eq!(
            page_rows(&json!({"data": [{"id": "a"}, {"id": "b"}], "total_count": 2}))
                .unwrap()
                .len(),
            2
        );
        assert!(page_rows(&json!({"data": {}})).is_err());
        assert!(page_rows(&json!("x")).is_err());
        assert_eq!(
            org_from_json(&json!({"id": "org_1", "name": "Acme", "slug": null})).unwrap(),
            Org {
                id: "org_1".into(),
                name: "Acme".into(),
                slug: String::new()
            }
        );
        assert!(org_from_json(&json!({"id": 5})).is_err());
    }
}
