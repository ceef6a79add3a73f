//! A string that never prints.

use serde::{Deserialize, Deserializer};

/// A credential (token, client secret, private key). `Debug` and `Display`
/// print `[redacted]`; the value is reachable only through [`Secret::expose`],
/// so it cannot reach a log line, an error message or a state file by accident.
/// It deliberately does not implement `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value` and registers it with the [redactor](crate::redact), so
    /// no text that echoes it can reach an output.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        crate::redact::register(&value);
        Secret(value)
    }

    /// The raw value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s} {s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn is_known_to_the_redactor() {
        let s = Secret::new("a-client-secret-4411");
        assert_eq!(crate::redact::redact(&format!("form: x={}", s.expose())), "form: x=[redacted]");
    }
}
