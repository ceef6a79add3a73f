//! From the config file to a live connector: secrets resolved, the policy's
//! fields handed over to be checked against the CRM, rotated refresh tokens
//! kept in a file of their own, and "now" shared with the daemon.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use handoff_model::{Connector, Secret};

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

/// The one secret handoff writes: a refresh token the CRM rotated. It lives
/// in its own file (mode 0600, replaced atomically), never in the state
/// database, logs or errors.
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    pub fn new(state_dir: &Path, crm: &str) -> TokenFile {
        TokenFile { path: state_dir.join("secrets").join(format!("{crm}-refresh-token")) }
    }

    fn read(&self) -> Result<Option<Secret>, String> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => Ok(Some(Secret::new(text.trim_end_matches(['\r', '\n'])))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", self.path.display())),
        }
    }

    /// Writes the token to a temporary file, syncs it, renames it over the
    /// old one and syncs the directory: a crash leaves the old or the new
    /// token, never half of one.
    fn write(&self, token: &Secret) -> Result<(), String> {
        let dir = self.path.parent().ok_or_else(|| "the token path has no directory".to_string())?;
        let fail = |what: &str, e: std::io::Error| format!("cannot {what} in {}: {e}", dir.display());
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(|e| fail("create the secrets directory", e))?;
        let tmp = dir.join(".refresh-token.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| fail("write the token", e))?;
        file.write_all(token.expose().as_bytes()).map_err(|e| fail("write the token", e))?;
        file.sync_all().map_err(|e| fail("sync the token", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail("replace the token", e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl handoff_salesforce::TokenStore for TokenFile {
    fn load(&self) -> Option<Secret> {
        match self.read() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the saved refresh token; using the configured one");
                None
            }
        }
    }

    fn save(&self, refresh_token: &Secret) -> Result<(), String> {
        self.write(refresh_token)
    }
}

impl handoff_hubspot::TokenStore for TokenFile {
    fn load(&self) -> Result<Option<Secret>, String> {
        self.read()
    }

    fn save(&self, refresh_token: &Secret) -> Result<(), String> {
        self.write(refresh_token)
    }
}

/// Builds and authenticates the connector for `config`, reading windows
/// against `now`.
pub async fn connector(config: &Config, now: &SharedNow) -> Result<Arc<dyn Connector>, ConnectError> {
    let fields: Vec<String> = config.policy.referenced_fields().into_iter().collect();
    let state_dir = &config.instance.state_dir;
    match &config.connection {
        Connection::Salesforce(s) => {
            let auth = match &s.auth {
                SalesforceAuth::JwtBearer { client_id, username, private_key } => {
                    handoff_salesforce::SalesforceAuth::JwtBearer {
                        client_id: client_id.clone(),
                        username: username.clone(),
                        private_key_pem: private_key.resolve()?,
                        audience: None,
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
                Arc::new(TokenFile::new(state_dir, "salesforce")),
            );
            settings.instance_url = s.instance_url.clone();
            settings.api_version = format!("v{}", s.api_version.trim_start_matches('v'));
            settings.ca_file = s.ca_file.clone();
            settings.daily_budget_share = s.daily_budget_share;
            settings.lookback = Duration::from_secs(config.sync.lookback_secs);
            settings.lag = Duration::from_secs(config.sync.lag_secs);
            settings.required_lead_fields = fields;
            settings.task_key_field = s.task_key_field.clone();
            // Of the other tracked fields, those whose history the policy reads.
            let wanted = config.policy.history_fields();
            settings.tracked_history = handoff_salesforce::map::TrackedHistory {
                owner: s.history_fields.iter().any(|f| f == "Owner"),
                status: s.history_fields.iter().any(|f| f == "Status"),
                fields: s
                    .history_fields
                    .iter()
                    .filter(|f| wanted.contains(f.trim()))
                    .map(|f| f.trim().to_string())
                    .collect(),
            };
            settings.requests_per_sec = s.requests_per_sec;
            let shared = now.clone();
            settings.clock = Arc::new(move || shared.get());
            let c = handoff_salesforce::connect(settings).await.map_err(handoff_model::ConnectorError::from)?;
            Ok(Arc::new(c))
        }
        Connection::Hubspot(h) => {
            let auth = match &h.auth {
                HubspotAuth::PrivateApp { token } => {
                    handoff_hubspot::HubspotAuth::PrivateApp { token: token.resolve()? }
                }
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
                Arc::new(TokenFile::new(state_dir, "hubspot")),
            );
            settings.clock = Arc::new(NowClock(now.clone()));
            settings.ca_file = h.ca_file.clone();
            settings.daily_budget_share = h.daily_budget_share;
            settings.lag_secs = config.sync.lag_secs;
            settings.lookback_secs = config.sync.lookback_secs;
            settings.managers = config.policy.owners.managers.clone();
            settings.owner_time_zones = h.owner_time_zones.clone();
            settings.extra_contact_properties = fields;
            settings.history_properties = config.policy.history_fields().into_iter().collect();
            settings.create_task_key_property = h.create_task_key_property;
            settings.burst_per_10s = h.burst_per_10s;
            settings.search_per_second = h.search_per_second;
            let c = handoff_hubspot::connect(settings).await.map_err(handoff_model::ConnectorError::from)?;
            c.authenticate().await?;
            Ok(Arc::new(c))
        }
    }
}

struct NowClock(SharedNow);

impl handoff_hubspot::Clock for NowClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.get()
    }
}

/// Makes sure the state directory exists and that it and everything in it
/// are private to the daemon (0700 directories, 0600 files).
pub fn prepare_state_dir(dir: &Path) -> Result<(), ConnectError> {
    let err = |e: std::io::Error| ConnectError::State { path: dir.display().to_string(), message: e.to_string() };
    std::fs::create_dir_all(dir).map_err(err)?;
    crate::store::make_private(dir).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_round_trips_privately_and_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let f = TokenFile::new(dir.path(), "salesforce");
        assert_eq!(f.read().unwrap(), None);
        f.write(&Secret::new("rt-1")).unwrap();
        f.write(&Secret::new("rt-2")).unwrap();
        assert_eq!(f.read().unwrap().map(|s| s.expose().to_string()), Some("rt-2".to_string()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                std::fs::metadata(dir.path().join("secrets/salesforce-refresh-token")).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the daemon's user may read it: {mode:o}");
        }
        assert!(!dir.path().join("secrets/.refresh-token.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secrets")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "the secrets directory is the daemon's alone: {mode:o}");
        }
    }
}
