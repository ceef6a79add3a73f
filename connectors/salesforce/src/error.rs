//! The crate's one error type, and its mapping onto the connector trait's.

use std::time::Duration;

use handoff_model::{ConnectorError, CrmKind};

#[derive(Debug, thiserror::Error)]
pub enum SalesforceError {
    #[error("invalid Salesforce settings: {0}")]
    Settings(String),
    #[error("cannot read the CA file {path}: {message}. Point ca_file at a readable PEM certificate")]
    CaFile { path: String, message: String },
    #[error("authentication failed ({code}): {message}")]
    Auth { code: String, message: String },
    #[error("{message}")]
    NeedsConfig { message: String, fix: String },
    #[error("the operator's share of today's API budget is spent; paused for {retry_after:?}")]
    Budget { retry_after: Duration },
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("{endpoint}: HTTP {status} {code}: {message}")]
    Api { endpoint: String, status: u16, code: String, message: String },
    #[error("{endpoint}: unexpected response: {message}")]
    Protocol { endpoint: String, message: String },
    #[error("cursor {cursor:?} is not a Salesforce cursor: {message}")]
    BadCursor { cursor: String, message: String },
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
            SalesforceError::CaFile { path, message } => ConnectorError::NeedsConfig {
                crm,
                message: format!("cannot read the CA file {path}: {message}"),
                fix: "Point ca_file at a readable PEM certificate".to_string(),
            },
            SalesforceError::Auth { code, message } => {
                ConnectorError::Auth { crm, message: format!("{code}: {message}") }
            }
            SalesforceError::NeedsConfig { message, fix } => ConnectorError::NeedsConfig { crm, message, fix },
            SalesforceError::Budget { retry_after } => ConnectorError::Budget { crm, retry_after },
            SalesforceError::Transport { endpoint, message } => {
                ConnectorError::Transport { crm, message: format!("{endpoint}: {message}") }
            }
            SalesforceError::Api { endpoint, status, code, message } => {
                ConnectorError::Protocol { crm, endpoint, message: format!("HTTP {status} {code}: {message}") }
            }
            SalesforceError::Protocol { endpoint, message } => ConnectorError::Protocol { crm, endpoint, message },
            SalesforceError::BadCursor { cursor, message } => ConnectorError::BadCursor { crm, cursor, message },
        }
    }
}
