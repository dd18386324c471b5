//! What can go wrong below the HTTP status: the request could not be built, or no usable
//! response came back. A response with any status, 4xx and 5xx included, is not an error here.

/// Why no response came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The attempt's deadline passed (connecting, sending or reading).
    Timeout,
    /// No connection could be made (refused, unreachable, name not resolved).
    Connect,
    /// The connection broke: reset, or closed before a complete response.
    Connection,
    /// The peer sent something that is not HTTP/1.1.
    Protocol,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Timeout => "timeout",
            TransportKind::Connect => "connect",
            TransportKind::Connection => "connection",
            TransportKind::Protocol => "protocol",
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors name the method and the URL path, never the query string or a header, so they can
/// be printed and logged without leaking a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The request cannot be sent as given (bad URL, header or body). Never retried.
    #[error("invalid request {method} {path}: {reason}")]
    InvalidRequest {
        method: String,
        path: String,
        reason: String,
    },
    /// No usable response after every attempt.
    #[error("{method} {path}: {kind} error after {attempts} attempt(s): {message}")]
    Transport {
        method: String,
        path: String,
        kind: TransportKind,
        message: String,
        attempts: u32,
    },
    /// TLS could not be set up or failed: a configuration problem, never retried.
    #[error("{method} {path}: TLS error: {message}")]
    Tls {
        method: String,
        path: String,
        message: String,
    },
    /// The response body is larger than the configured limit. Never retried.
    #[error("{method} {path}: response body larger than {limit} bytes")]
    ResponseTooLarge {
        method: String,
        path: String,
        limit: u64,
    },
}

impl HttpError {
    /// Attempts made, for a transport failure.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            HttpError::Transport { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// A short machine-readable name of the failure.
    pub fn kind_str(&self) -> &'static str {
        match self {
            HttpError::InvalidRequest { .. } => "invalid-request",
            HttpError::Transport { kind, .. } => kind.as_str(),
            HttpError::Tls { .. } => "tls",
            HttpError::ResponseTooLarge { .. } => "response-too-large",
        }
    }
}
