//! From the config file to a live connector: secrets resolved, the policy's
//! fields handed over to be checked against the CRM, rotated refresh tokens
//! kept in a file of their own (the runtime's `FileTokenStore`), and "now"
//! shared with the daemon: the connector is handed the daemon's clock when
//! it is built.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use handoff_model::Connector;
use handoff_runtime::FileTokenStore;

use crate::config::{ClockSource, Config, ConfigError, Connection, HubspotAuth, SalesforceAuth};

/// Why a connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Secret(#[from] ConfigError),
    #[error(transparent)]
    Connector(#[from] handoff_model::ConnectorError),
    #[error("cannot prepare {path}: {message}")]
    State { path: String, message: String },
    #[error("cannot read the sandbox clock at {url}: {message}. `sync.clock = \"sandbox\"` only works against `handoff sandbox`; use \"system\" for a real CRM")]
    SandboxClock { url: String, message: String },
}

/// The instant the current tick runs at, shared by the daemon and the
/// connector's window arithmetic so both agree on "now".
#[derive(Clone, Default)]
pub struct SharedNow(Arc<AtomicI64>);

impl SharedNow {
    pub fn set(&self, at: DateTime<Utc>) {
        self.0.store(at.timestamp_millis(), Ordering::SeqCst);
    }

    pub fn get(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// The connector's clock is the tick's instant.
impl handoff_runtime::Clock for SharedNow {
    fn now(&self) -> DateTime<Utc> {
        self.get()
    }
}

/// Where each tick's "now" comes from.
pub enum TimeSource {
    System,
    /// The simulated clock of a `handoff sandbox` (its admin API).
    Sandbox {
        client: reqwest::Client,
        url: String,
    },
    /// Any function (in-process tests and the demo read the sandbox's clock directly).
    Function(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>),
}

impl TimeSource {
    /// The time source a config asks for.
    pub fn for_config(config: &Config) -> Result<TimeSource, ConnectError> {
        match config.sync.clock {
            ClockSource::System => Ok(TimeSource::System),
            ClockSource::Sandbox => {
                let (base, ca) = match &config.connection {
                    Connection::Salesforce(s) => (s.login_url.clone(), s.ca_file.clone()),
                    Connection::Hubspot(h) => (h.base_url.clone(), h.ca_file.clone()),
                };
                let url = format!("{}/__sandbox/clock", base.trim_end_matches('/'));
                let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
                if let Some(path) = ca {
                    let pem = std::fs::read(&path).map_err(|e| ConnectError::SandboxClock {
                        url: url.clone(),
                        message: format!("CA file {}: {e}", path.display()),
                    })?;
                    let cert = reqwest::Certificate::from_pem(&pem)
                        .map_err(|e| ConnectError::SandboxClock { url: url.clone(), message: e.to_string() })?;
                    builder = builder.add_root_certificate(cert);
                }
                let client = builder
                    .build()
                    .map_err(|e| ConnectError::SandboxClock { url: url.clone(), message: e.to_string() })?;
                Ok(TimeSource::Sandbox { client, url })
            }
        }
    }

    pub async fn now(&self) -> Result<DateTime<Utc>, ConnectError> {
        match self {
            TimeSource::System => Ok(Utc::now()),
            TimeSource::Function(f) => Ok(f()),
            TimeSource::Sandbox { client, url } => {
                let err = |message: String| ConnectError::SandboxClock { url: url.clone(), message };
                let resp = client.get(url).send().await.map_err(|e| err(e.to_string()))?;
                if !resp.status().is_success() {
                    return Err(err(format!("HTTP {}", resp.status())));
                }
                let body: serde_json::Value = resp.json().await.map_err(|e| err(e.to_string()))?;
                body.get("now")
                    .and_then(|v| v.as_str())
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or_else(|| err(format!("no `now` in {body}")))
            }
        }
    }
}

/// Builds and authenticates the connector for `config`, reading windows
/// against `now`.
pub async fn connector(config: &Config, now: &SharedNow) -> Result<Arc<dyn Connector>, ConnectError> {
    match &config.connection {
        Connection::Salesforce(_) => {
            let settings = salesforce_settings(config, now)?;
            let c = handoff_salesforce::connect(settings).await.map_err(handoff_model::ConnectorError::from)?;
            Ok(Arc::new(c))
        }
        Connection::Hubspot(_) => {
            let c = handoff_hubspot::connect(hubspot_settings(config, now)?)
                .await
                .map_err(handoff_model::ConnectorError::from)?;
            c.authenticate().await?;
            Ok(Arc::new(c))
        }
    }
}

/// The connector for `config`, logged in but with the org not checked and
/// nothing created in it (`handoff doctor` reports what is missing rather
/// than stopping at the first miss, and writes only when asked).
pub async fn unchecked_connector(config: &Config, now: &SharedNow) -> Result<Arc<dyn Connector>, ConnectError> {
    match &config.connection {
        Connection::Salesforce(_) => {
            let settings = salesforce_settings(config, now)?;
            let c =
                handoff_salesforce::connect_unchecked(settings).await.map_err(handoff_model::ConnectorError::from)?;
            Ok(Arc::new(c))
        }
        Connection::Hubspot(_) => {
            let mut settings = hubspot_settings(config, now)?;
            settings.create_task_key_property = false;
            let c = handoff_hubspot::connect(settings).await.map_err(handoff_model::ConnectorError::from)?;
            Ok(Arc::new(c))
        }
    }
}

fn salesforce_settings(
    config: &Config,
    now: &SharedNow,
) -> Result<handoff_salesforce::SalesforceSettings, ConnectError> {
    let Connection::Salesforce(s) = &config.connection else {
        return Err(ConnectError::State {
            path: "[salesforce]".into(),
            message: "the config is not for Salesforce".into(),
        });
    };
    let fields: Vec<String> = config.policy.referenced_fields().into_iter().collect();
    let state_dir = &config.instance.state_dir;
    let auth = match &s.auth {
        SalesforceAuth::JwtBearer { client_id, username, private_key, audience } => {
            handoff_salesforce::SalesforceAuth::JwtBearer {
                client_id: client_id.clone(),
                username: username.clone(),
                private_key_pem: private_key.resolve()?,
                audience: audience.clone(),
            }
        }
        SalesforceAuth::RefreshToken { client_id, client_secret, refresh_token } => {
            handoff_salesforce::SalesforceAuth::RefreshToken {
                client_id: client_id.clone(),
                client_secret: Some(client_secret.resolve()?),
                refresh_token: refresh_token.resolve()?,
            }
        }
        SalesforceAuth::ClientCredentials { client_id, client_secret } => {
            handoff_salesforce::SalesforceAuth::ClientCredentials {
                client_id: client_id.clone(),
                client_secret: client_secret.resolve()?,
            }
        }
    };
    let mut settings = handoff_salesforce::SalesforceSettings::new(
        s.login_url.clone(),
        auth,
        Arc::new(FileTokenStore::new(state_dir, "salesforce")),
        Arc::new(now.clone()),
    );
    settings.instance_url = s.instance_url.clone();
    settings.api_version = format!("v{}", s.api_version.trim_start_matches('v'));
    settings.http.ca_file = s.ca_file.clone();
    settings.daily_budget_share = s.daily_budget_share;
    settings.lookback = Duration::from_secs(config.lookback_secs());
    settings.lag = Duration::from_secs(config.lag_secs());
    settings.required_lead_fields = fields;
    settings.task_key_field = s.task_key_field.clone();
    // Of the other tracked fields, those whose history the policy reads.
    let wanted = config.policy.history_fields();
    settings.tracked_history = handoff_salesforce::map::TrackedHistory {
        owner: s.history_fields.iter().any(|f| f == "Owner"),
        status: s.history_fields.iter().any(|f| f == "Status"),
        fields: s.history_fields.iter().filter(|f| wanted.contains(f.trim())).map(|f| f.trim().to_string()).collect(),
    };
    settings.requests_per_sec = s.requests_per_sec;
    settings.read_opportunities = config.policy.reads_opportunities();
    Ok(settings)
}

fn hubspot_settings(config: &Config, now: &SharedNow) -> Result<handoff_hubspot::HubspotSettings, ConnectError> {
    let Connection::Hubspot(h) = &config.connection else {
        return Err(ConnectError::State { path: "[hubspot]".into(), message: "the config is not for HubSpot".into() });
    };
    let fields: Vec<String> = config.policy.referenced_fields().into_iter().collect();
    let state_dir = &config.instance.state_dir;
    let auth = match &h.auth {
        HubspotAuth::PrivateApp { token } => handoff_hubspot::HubspotAuth::PrivateApp { token: token.resolve()? },
        HubspotAuth::Oauth { client_id, client_secret, refresh_token } => handoff_hubspot::HubspotAuth::OAuth {
            client_id: client_id.clone(),
            client_secret: client_secret.resolve()?,
            refresh_token: refresh_token.resolve()?,
            token_url: None,
        },
    };
    let mut settings = handoff_hubspot::HubspotSettings::new(
        h.base_url.clone(),
        auth,
        Arc::new(FileTokenStore::new(state_dir, "hubspot")),
        Arc::new(now.clone()),
    );
    settings.http.ca_file = h.ca_file.clone();
    settings.daily_budget_share = h.daily_budget_share;
    settings.lag_secs = config.lag_secs();
    settings.lookback_secs = config.lookback_secs();
    settings.managers = config.policy.owners.managers.clone();
    settings.owner_time_zones = h.owner_time_zones.clone();
    settings.extra_contact_properties = fields;
    settings.history_properties = config.policy.history_fields().into_iter().collect();
    settings.create_task_key_property = h.create_task_key_property;
    settings.read_opportunities = config.policy.reads_opportunities();
    settings.burst_per_10s = h.burst_per_10s;
    settings.search_per_second = h.search_per_second;
    settings.lead_object = match h.lead_object {
        crate::config::HubspotLeadObject::Contacts => handoff_hubspot::LeadObject::Contacts,
        crate::config::HubspotLeadObject::Leads => handoff_hubspot::LeadObject::Leads,
    };
    Ok(settings)
}

/// A cursor that reads `stream` again as if everything before `at` had
/// been read (the operator's re-sync from a date, a quarantine re-read).
pub fn cursor_since(
    crm: handoff_model::CrmKind,
    stream: handoff_model::Stream,
    at: DateTime<Utc>,
) -> handoff_model::Cursor {
    match crm {
        handoff_model::CrmKind::Salesforce => handoff_salesforce::cursor::since(stream, at),
        handoff_model::CrmKind::Hubspot => handoff_hubspot::cursor::since(stream, at),
    }
}

/// Makes sure the state directory exists and that it and everything in it
/// are private to the daemon (0700 directories, 0600 files).
pub fn prepare_state_dir(dir: &Path) -> Result<(), ConnectError> {
    let err = |e: std::io::Error| ConnectError::State { path: dir.display().to_string(), message: e.to_string() };
    std::fs::create_dir_all(dir).map_err(err)?;
    crate::store::make_private(dir).map_err(err)
}
