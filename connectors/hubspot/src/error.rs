//! The crate's one error type, and how it maps onto the daemon's
//! [`ConnectorError`].

use std::time::Duration;

use handoff_model::{ConnectorError, CrmKind};

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
    Api { endpoint: String, status: u16, category: String, message: String },
    #[error("stored cursor is not one this connector wrote: {message}")]
    BadCursor { cursor: String, message: String },
    #[error("cannot persist the rotated refresh token: {0}; the token store must be writable or the next start cannot authenticate")]
    TokenStore(String),
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
            HubspotError::Api { ref endpoint, status, .. } => {
                if status == 401 {
                    ConnectorError::Auth { crm, message: e.to_string() }
                } else if status == 403 {
                    ConnectorError::NeedsConfig {
                        crm,
                        message: e.to_string(),
                        fix: "grant the private/public app the crm.objects.contacts.read/.write, crm.objects.owners.read and crm.schemas.*.write scopes".into(),
                    }
                } else {
                    ConnectorError::Protocol { crm, endpoint: endpoint.clone(), message: e.to_string() }
                }
            }
            HubspotError::BadCursor { cursor, message } => ConnectorError::BadCursor { crm, cursor, message },
        }
    }
}
