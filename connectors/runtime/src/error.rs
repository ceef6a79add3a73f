//! The crate's one error type, and its mapping onto the daemon's
//! [`ConnectorError`]. Every message here is built from text that already
//! went through [`handoff_model::redact`]: none carries a secret.

use std::time::Duration;

use handoff_model::{ConnectorError, CrmKind, ErrorClass};

/// Why a request (or setting up the runtime) failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{message}")]
    Settings { message: String },
    #[error("cannot read the trusted CA file {path}: {message}; point `ca_file` at a readable PEM certificate")]
    CaFile { path: String, message: String },
    /// Credentials were refused (after the one re-authentication).
    #[error("authentication failed: {message}")]
    Auth { message: String },
    /// An operator must change the CRM or the config.
    #[error("{message}")]
    NeedsConfig { message: String, fix: String },
    /// The daily budget is spent, or the CRM asked for a wait longer than
    /// one call may take: a stop, not a failure.
    #[error("the API budget is spent or the CRM asked to wait; paused for {retry_after:?}")]
    Budget { retry_after: Duration },
    /// No usable answer: connection refused, deadline passed, 5xx after
    /// the retries. `outcome_unknown`: a request that is not safe to send
    /// twice may or may not have been carried out.
    #[error("{endpoint}: request failed after {attempts} attempt(s): {message}")]
    Transport { endpoint: String, attempts: u32, message: String, outcome_unknown: bool },
    /// The CRM refused the request; `class` says what that means.
    #[error("{endpoint}: HTTP {status} {code}: {message}")]
    Api { endpoint: String, status: u16, code: String, message: String, class: ErrorClass },
    /// An answer that is not what the CRM's API promises (HTML, truncated
    /// or wrong-shaped JSON, an error body with a 200, a redirect off the
    /// CRM's host, an answer too large, a page that never ends).
    #[error("{endpoint}: unexpected answer: {message}")]
    Protocol { endpoint: String, message: String },
    #[error("cannot keep the rotated refresh token: {0}")]
    TokenStore(String),
}

impl RuntimeError {
    /// The daemon's view of this error. `needs_config_fix` is the CRM's own
    /// advice for a refused permission (a 403): which scopes or profile
    /// permissions to grant.
    pub fn into_connector(self, crm: CrmKind, needs_config_fix: &str) -> ConnectorError {
        match self {
            RuntimeError::Settings { message } => {
                ConnectorError::NeedsConfig { crm, message, fix: format!("fix the [{crm}] section of the config file") }
            }
            e @ RuntimeError::CaFile { .. } => ConnectorError::NeedsConfig {
                crm,
                message: e.to_string(),
                fix: "set `ca_file` to a readable PEM file or remove it".into(),
            },
            RuntimeError::Auth { message } => ConnectorError::Auth { crm, message },
            RuntimeError::NeedsConfig { message, fix } => ConnectorError::NeedsConfig { crm, message, fix },
            RuntimeError::Budget { retry_after } => ConnectorError::Budget { crm, retry_after },
            e @ RuntimeError::Transport { .. } => ConnectorError::Transport { crm, message: e.to_string() },
            RuntimeError::Api { endpoint, status, code, message, class } => {
                let text = format!("{endpoint}: HTTP {status} {code}: {message}");
                match class {
                    ErrorClass::Auth => ConnectorError::Auth { crm, message: text },
                    ErrorClass::NeedsConfig => {
                        ConnectorError::NeedsConfig { crm, message: text, fix: needs_config_fix.to_string() }
                    }
                    ErrorClass::RateLimited { retry_after_secs } => {
                        ConnectorError::Budget { crm, retry_after: Duration::from_secs(retry_after_secs) }
                    }
                    ErrorClass::Retryable => ConnectorError::Transport { crm, message: text },
                    ErrorClass::Permanent => {
                        ConnectorError::Protocol { crm, endpoint, message: format!("HTTP {status} {code}: {message}") }
                    }
                }
            }
            RuntimeError::Protocol { endpoint, message } => ConnectorError::Protocol { crm, endpoint, message },
            e @ RuntimeError::TokenStore(_) => ConnectorError::NeedsConfig {
                crm,
                message: e.to_string(),
                fix:
                    "check that the state directory is writable; the old refresh token is void once the CRM rotated it"
                        .into(),
            },
        }
    }

    /// Whether a request that is not safe to repeat may have been carried
    /// out anyway (a timeout, a lost answer, a 5xx), as opposed to a clean
    /// refusal.
    pub fn outcome_may_be_unknown(&self) -> bool {
        match self {
            RuntimeError::Transport { .. } => true,
            RuntimeError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_permission_is_a_config_problem_on_every_crm() {
        for crm in [CrmKind::Salesforce, CrmKind::Hubspot] {
            let e = RuntimeError::Api {
                endpoint: "GET /x".into(),
                status: 403,
                code: "MISSING_SCOPES".into(),
                message: "no".into(),
                class: ErrorClass::NeedsConfig,
            };
            match e.into_connector(crm, "grant the scope") {
                ConnectorError::NeedsConfig { fix, .. } => assert_eq!(fix, "grant the scope"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn classes_map_onto_the_daemons_errors() {
        let api = |class| RuntimeError::Api {
            endpoint: "e".into(),
            status: 400,
            code: "C".into(),
            message: "m".into(),
            class,
        };
        let crm = CrmKind::Salesforce;
        assert!(matches!(api(ErrorClass::Auth).into_connector(crm, ""), ConnectorError::Auth { .. }));
        assert!(matches!(api(ErrorClass::Permanent).into_connector(crm, ""), ConnectorError::Protocol { .. }));
        assert!(matches!(api(ErrorClass::Retryable).into_connector(crm, ""), ConnectorError::Transport { .. }));
        assert!(matches!(
            api(ErrorClass::RateLimited { retry_after_secs: 9 }).into_connector(crm, ""),
            ConnectorError::Budget { retry_after, .. } if retry_after == Duration::from_secs(9)
        ));
    }
}
