//! The crate's one error type, and its mapping onto the connector trait's.

use std::time::Duration;

use handoff_model::{ConnectorError, CrmKind, ErrorClass};
use handoff_runtime::RuntimeError;

/// What a refused permission means in Salesforce, and the fix.
pub const PERMISSION_FIX: &str = "give the integration user's profile or permission set API access and read/edit access to Lead, Task, Event, User, Group, BusinessHours and Holiday (and field-level access to the fields the policy names)";

#[derive(Debug, thiserror::Error)]
pub enum SalesforceError {
    #[error("invalid Salesforce settings: {0}")]
    Settings(String),
    #[error("authentication failed ({code}): {message}")]
    Auth { code: String, message: String },
    #[error("{message}")]
    NeedsConfig { message: String, fix: String },
    #[error("the operator's share of today's API budget is spent; paused for {retry_after:?}")]
    Budget { retry_after: Duration },
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("{endpoint}: HTTP {status} {code}: {message}")]
    Api { endpoint: String, status: u16, code: String, message: String, class: ErrorClass },
    #[error("{endpoint}: unexpected response: {message}")]
    Protocol { endpoint: String, message: String },
    #[error("cursor {cursor:?} is not a Salesforce cursor: {message}")]
    BadCursor { cursor: String, message: String },
    /// Anything else the shared runtime reported.
    #[error(transparent)]
    Runtime(RuntimeError),
}

impl From<RuntimeError> for SalesforceError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Api { endpoint, status, code, message, class } => {
                SalesforceError::Api { endpoint, status, code, message, class }
            }
            RuntimeError::Budget { retry_after } => SalesforceError::Budget { retry_after },
            RuntimeError::Protocol { endpoint, message } => SalesforceError::Protocol { endpoint, message },
            RuntimeError::NeedsConfig { message, fix } => SalesforceError::NeedsConfig { message, fix },
            other => SalesforceError::Runtime(other),
        }
    }
}

impl From<SalesforceError> for ConnectorError {
    fn from(e: SalesforceError) -> Self {
        let crm = CrmKind::Salesforce;
        match e {
            SalesforceError::Settings(message) => ConnectorError::NeedsConfig {
                crm,
                message,
                fix: "Fix the [salesforce] section of the config file".to_string(),
            },
            SalesforceError::Auth { code, message } => {
                ConnectorError::Auth { crm, message: format!("{code}: {message}") }
            }
            SalesforceError::NeedsConfig { message, fix } => ConnectorError::NeedsConfig { crm, message, fix },
            SalesforceError::Budget { retry_after } => ConnectorError::Budget { crm, retry_after },
            SalesforceError::Transport { endpoint, message } => {
                ConnectorError::Transport { crm, message: format!("{endpoint}: {message}") }
            }
            SalesforceError::Api { endpoint, status, code, message, class } => {
                RuntimeError::Api { endpoint, status, code, message, class }.into_connector(crm, PERMISSION_FIX)
            }
            SalesforceError::Protocol { endpoint, message } => ConnectorError::Protocol { crm, endpoint, message },
            SalesforceError::BadCursor { cursor, message } => ConnectorError::BadCursor { crm, cursor, message },
            SalesforceError::Runtime(e) => e.into_connector(crm, PERMISSION_FIX),
        }
    }
}
