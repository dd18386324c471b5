//! A secret value (admin token, API key) that cannot leak through formatting.

use std::fmt;

/// A credential. `Debug` and `Display` never show the value, so a secret inside any struct,
/// error or log line stays hidden; [`Secret::expose`] is called only where it is sent (a
/// header) or compared.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::new("fake-secret-do-not-use");
        let shown = format!("{secret} {secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("fake-secret-do-not-use"), "{shown}");
        assert_eq!(secret.expose(), "fake-secret-do-not-use");
    }
}
