//! The crate's one error type, and how it maps onto the daemon's
//! [`ConnectorError`].

use std::time::Duration;

use handoff_model::{ConnectorError, CrmKind, ErrorClass};
use handoff_runtime::RuntimeError;

/// What a refused permission (403) means in HubSpot, and the fix.
pub const SCOPES_FIX: &str = "grant the private/public app the crm.objects.contacts.read/.write, crm.objects.owners.read and crm.schemas.*.write scopes";

/// Why a HubSpot call (or setting up the connector) failed. Messages name
/// the thing that is wrong and how to fix it; they never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum HubspotError {
    #[error("invalid HubSpot settings: {field}: {message}")]
    Settings { field: &'static str, message: String },
    #[error("cannot read the trusted CA file {path}: {message}; point `ca_file` at a PEM certificate")]
    CaFile { path: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("{message}")]
    NeedsConfig { message: String, fix: String },
    #[error("the operator's share of today's API budget is spent; paused for {retry_after:?}")]
    Budget { retry_after: Duration },
    #[error("{endpoint}: request failed after {attempts} attempt(s): {message}")]
    Transport { endpoint: String, attempts: u32, message: String },
    #[error("{endpoint}: unexpected response: {message}")]
    Protocol { endpoint: String, message: String },
    #[error("{endpoint}: HubSpot answered {status} {category}: {message}")]
    Api { endpoint: String, status: u16, category: String, message: String, class: ErrorClass },
    #[error("stored cursor is not one this connector wrote: {message}")]
    BadCursor { cursor: String, message: String },
    #[error("cannot persist the rotated refresh token: {0}; the token store must be writable or the next start cannot authenticate")]
    TokenStore(String),
    /// Anything else the shared runtime reported.
    #[error(transparent)]
    Runtime(RuntimeError),
}

impl From<RuntimeError> for HubspotError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Auth { message } => HubspotError::Auth(message),
            RuntimeError::NeedsConfig { message, fix } => HubspotError::NeedsConfig { message, fix },
            RuntimeError::Budget { retry_after } => HubspotError::Budget { retry_after },
            RuntimeError::Transport { endpoint, attempts, message, .. } => {
                HubspotError::Transport { endpoint, attempts, message }
            }
            RuntimeError::Api { endpoint, status, code, message, class } => {
                HubspotError::Api { endpoint, status, category: code, message, class }
            }
            RuntimeError::Protocol { endpoint, message } => HubspotError::Protocol { endpoint, message },
            RuntimeError::TokenStore(m) => HubspotError::TokenStore(m),
            RuntimeError::CaFile { path, message } => HubspotError::CaFile { path, message },
            other => HubspotError::Runtime(other),
        }
    }
}

impl From<HubspotError> for ConnectorError {
    fn from(e: HubspotError) -> Self {
        let crm = CrmKind::Hubspot;
        match e {
            HubspotError::Auth(message) => ConnectorError::Auth { crm, message },
            HubspotError::NeedsConfig { message, fix } => ConnectorError::NeedsConfig { crm, message, fix },
            HubspotError::Settings { field, message } => ConnectorError::NeedsConfig {
                crm,
                message: format!("setting `{field}`: {message}"),
                fix: format!("fix `{field}` in the hubspot section of the config file"),
            },
            HubspotError::CaFile { .. } => ConnectorError::NeedsConfig {
                crm,
                message: e.to_string(),
                fix: "set `ca_file` to a readable PEM file or remove it".into(),
            },
            HubspotError::TokenStore(_) => ConnectorError::NeedsConfig {
                crm,
                message: e.to_string(),
                fix: "check the state directory is writable".into(),
            },
            HubspotError::Budget { retry_after } => ConnectorError::Budget { crm, retry_after },
            HubspotError::Transport { .. } | HubspotError::Client(_) => {
                ConnectorError::Transport { crm, message: e.to_string() }
            }
            HubspotError::Protocol { endpoint, message } => ConnectorError::Protocol { crm, endpoint, message },
            HubspotError::Api { endpoint, status, category, message, class } => {
                RuntimeError::Api { endpoint, status, code: category, message, class }.into_connector(crm, SCOPES_FIX)
            }
            HubspotError::BadCursor { cursor, message } => ConnectorError::BadCursor { crm, cursor, message },
            HubspotError::Runtime(e) => e.into_connector(crm, SCOPES_FIX),
        }
    }
}
