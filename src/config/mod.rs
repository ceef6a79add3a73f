//! The config file: one per CRM instance. Parse, validate, and report every
//! problem at once with its key path, the bad value and the fix.
//!
//! ```toml
//! [instance]    # name, crm = "salesforce" | "hubspot", state_dir
//! [salesforce]  # or [hubspot]: URLs, API version, auth flow, secrets
//! [sync]        # interval_secs, lookback_secs, lag_secs, owners/calendars cadence, clock
//! [daemon]      # metrics address, shutdown grace, outbox batching (optional)
//! [notify]      # daily digests and the weekly summary: email, Slack (optional)
//! [signals]     # when the calibration signals fire (optional)
//! [policy]      # the SLA: see crate::policy
//! ```
//!
//! # How every error is found at once
//!
//! serde stops at the first error, so the file is read in parts: each
//! section, each calendar, criterion, grade rule and segment is deserialized
//! on its own, and an unknown key is reported and then removed so the rest of
//! its part can still be read. Only when every part has been read is the
//! policy compiled ([`crate::policy::compile`]), which adds the semantic
//! checks (durations, operators, references, calendars).
//!
//! Secrets are never written inline: `{ credential = "name" }` (read from
//! `$CREDENTIALS_DIRECTORY/name`, systemd `LoadCredential=`),
//! `{ file = "/path" }` or `{ env = "VAR" }`. They are resolved only when
//! asked ([`SecretSource::resolve`], [`Config::check_local_files`]).

pub mod notify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use handoff_model::{CrmKind, Secret};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::policy::{compile, parse_instant, CompiledPolicy, Condition, Issue, Policy};

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} has {} problem(s):\n{}", issues.len(), issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, issues: Vec<Issue> },
    /// Never carries the secret's value.
    #[error("secret {source_desc}: {message}. Fix: {fix}")]
    Secret { source_desc: String, message: String, fix: String },
}

/// A validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    pub instance: Instance,
    pub connection: Connection,
    pub sync: SyncSettings,
    pub daemon: DaemonSettings,
    /// `[notify]`: digests and the weekly summary; `None`: nothing is pushed.
    pub notify: Option<notify::NotifySettings>,
    /// `[signals]`: when the calibration signals fire.
    pub signals: notify::SignalSettings,
    /// The policy as written, kept for reports that quote the operator.
    pub policy_source: Policy,
    /// The policy the engine runs.
    pub policy: CompiledPolicy,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Names this instance in logs, state and task subjects.
    pub name: String,
    pub crm: CrmKind,
    /// Where the daemon keeps its cursors and action ledger.
    pub state_dir: PathBuf,
}

/// How to reach and authenticate against the CRM.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Salesforce(SalesforceSettings),
    Hubspot(HubspotSettings),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSettings {
    /// Token endpoint host: `https://login.salesforce.com`,
    /// `https://test.salesforce.com` or the org's My Domain.
    #[serde(default = "default_sf_login_url")]
    pub login_url: String,
    /// The org's instance URL; absent: taken from the token response.
    #[serde(default)]
    pub instance_url: Option<String>,
    /// REST API version, e.g. "62.0".
    #[serde(default = "default_sf_api_version")]
    pub api_version: String,
    pub auth: SalesforceAuth,
    /// Extra trusted CA (PEM), e.g. for a TLS-inspecting proxy or the sandbox.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Share (0–1] of the org's daily API limit handoff may use.
    #[serde(default = "default_budget_share")]
    pub daily_budget_share: f64,
    /// The External ID field on Task (Activity) holding handoff's action key,
    /// so a retried task write updates instead of creating a second task.
    #[serde(default = "default_sf_task_key_field")]
    pub task_key_field: String,
    /// Lead fields the org keeps field history for (Setup → Object Manager →
    /// Lead → Set History Tracking): ownership, status and the history of
    /// the fields the policy judges qualification and reason codes by are
    /// read from `LeadHistory` only for these; for the others handoff keeps
    /// the history it observes itself.
    #[serde(default = "default_sf_history_fields")]
    pub history_fields: Vec<String>,
    /// Local courtesy pace (Salesforce itself counts calls per day, not per
    /// second); raise it only against the sandbox.
    #[serde(default = "default_sf_requests_per_sec")]
    pub requests_per_sec: u32,
}

/// Salesforce OAuth flows, chosen by `flow`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "flow", rename_all = "snake_case", deny_unknown_fields)]
pub enum SalesforceAuth {
    /// Server-to-server with a certificate uploaded to the connected app.
    JwtBearer {
        client_id: String,
        username: String,
        private_key: SecretSource,
        /// The assertion's audience (`https://login.salesforce.com`,
        /// `https://test.salesforce.com` or the My Domain URL); absent: the
        /// login URL. Set it when `login_url` goes through a proxy.
        #[serde(default)]
        audience: Option<String>,
    },
    RefreshToken {
        client_id: String,
        client_secret: SecretSource,
        refresh_token: SecretSource,
    },
    ClientCredentials {
        client_id: String,
        client_secret: SecretSource,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotSettings {
    #[serde(default = "default_hs_base_url")]
    pub base_url: String,
    pub auth: HubspotAuth,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_budget_share")]
    pub daily_budget_share: f64,
    /// The operator's consent for handoff to create the unique task
    /// property `handoff_key` when the portal lacks it (otherwise create it
    /// by hand: Settings → Properties → Task, single-line text, unique).
    #[serde(default)]
    pub create_task_key_property: bool,
    /// IANA time zone per owner id (HubSpot owners carry none).
    #[serde(default)]
    pub owner_time_zones: BTreeMap<String, String>,
    /// Local pace for the 10-second burst window until HubSpot reports its
    /// own (`X-HubSpot-RateLimit-Max`).
    #[serde(default = "default_hs_burst_per_10s")]
    pub burst_per_10s: u32,
    /// Local pace for search, which HubSpot limits per second on its own.
    #[serde(default = "default_hs_search_per_second")]
    pub search_per_second: u32,
    /// Which record is the SLA's lead: the contact (every portal) or the
    /// lead record of HubSpot's Leads object (Sales Hub Professional and
    /// Enterprise).
    #[serde(default)]
    pub lead_object: HubspotLeadObject,
}

/// `[hubspot] lead_object`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HubspotLeadObject {
    #[default]
    Contacts,
    Leads,
}

/// HubSpot auth, chosen by `flow`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "flow", rename_all = "snake_case", deny_unknown_fields)]
pub enum HubspotAuth {
    /// A private app's access token.
    PrivateApp { token: SecretSource },
    /// A public app's refresh token.
    Oauth { client_id: String, client_secret: SecretSource, refresh_token: SecretSource },
}

fn default_sf_login_url() -> String {
    "https://login.salesforce.com".to_string()
}

fn default_sf_api_version() -> String {
    "62.0".to_string()
}

fn default_sf_task_key_field() -> String {
    "Handoff_Key__c".to_string()
}

fn default_sf_history_fields() -> Vec<String> {
    vec!["Owner".to_string(), "Status".to_string()]
}

fn default_sf_requests_per_sec() -> u32 {
    10
}

fn default_hs_burst_per_10s() -> u32 {
    100
}

fn default_hs_search_per_second() -> u32 {
    4
}

fn default_hs_base_url() -> String {
    "https://api.hubapi.com".to_string()
}

fn default_budget_share() -> f64 {
    0.25
}

/// Where a secret comes from; never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `$CREDENTIALS_DIRECTORY/<name>` (systemd `LoadCredential=`).
    Credential(String),
    File(PathBuf),
    Env(String),
}

/// How systemd names credentials the unit loads from its credentials
/// directory (`LoadCredential=handoff:/etc/handoff/credentials/%i`).
pub const UNIT_CREDENTIAL_PREFIX: &str = "handoff_";

const INLINE_SECRET: &str = "secrets are never written inline in the config file";
const SECRET_FIX: &str = "write { credential = \"NAME\" } (systemd LoadCredential=), { file = \"/absolute/path\" } or { env = \"VARIABLE\" }";

impl SecretSource {
    fn from_toml(value: &toml::Value) -> Result<SecretSource, String> {
        let Some(table) = value.as_table() else {
            // The value is deliberately not echoed: it may be the secret.
            return Err(format!("{INLINE_SECRET}. Fix: {SECRET_FIX}"));
        };
        let mut entries = table.iter();
        let (Some((kind, v)), None) = (entries.next(), entries.next()) else {
            return Err(format!("a secret source has exactly one key. Fix: {SECRET_FIX}"));
        };
        let Some(text) = v.as_str().map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(format!("`{kind}` needs a non-empty string. Fix: {SECRET_FIX}"));
        };
        match kind.as_str() {
            "credential" if text.contains('/') => {
                Err("a credential name cannot contain `/`. Fix: use the name given to LoadCredential=".to_string())
            }
            "credential" => Ok(SecretSource::Credential(text.to_string())),
            "file" if !Path::new(text).is_absolute() => Err(format!(
                "the secret file path `{text}` is relative, so it would depend on the working directory. Fix: write an absolute path"
            )),
            "file" => Ok(SecretSource::File(PathBuf::from(text))),
            "env" => Ok(SecretSource::Env(text.to_string())),
            other => Err(format!("`{other}` is not a secret source. Fix: {SECRET_FIX}")),
        }
    }

    /// Reads the secret now, from the process environment.
    pub fn resolve(&self) -> Result<Secret, ConfigError> {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        self.resolve_with(dir.as_deref(), |name| std::env::var(name).ok())
    }

    /// Reads the secret with an explicit credentials directory and
    /// environment lookup (for tests and callers that sandbox them). A file's
    /// trailing newline is dropped; an empty secret is an error.
    pub fn resolve_with(
        &self,
        credentials_dir: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Secret, ConfigError> {
        let err = |message: String, fix: &str| ConfigError::Secret {
            source_desc: self.describe(),
            message,
            fix: fix.to_string(),
        };
        let value = match self {
            SecretSource::Credential(name) => {
                let dir = credentials_dir.ok_or_else(|| {
                    err(
                        "$CREDENTIALS_DIRECTORY is not set".to_string(),
                        "run under systemd with LoadCredential=NAME:/path, or use { file = … } / { env = … }",
                    )
                })?;
                // The unit loads a whole directory (`LoadCredential=handoff:DIR`),
                // which systemd names `handoff_<file>`; a credential loaded by
                // name (`LoadCredential=NAME:PATH`) keeps its own name.
                let direct = dir.join(name);
                let path = if direct.exists() { direct } else { dir.join(format!("{UNIT_CREDENTIAL_PREFIX}{name}")) };
                read_secret_file(&path).map_err(|e| {
                    err(e, "put the file in /etc/handoff/credentials/<instance>/ (or check the LoadCredential= line of the unit)")
                })?
            }
            SecretSource::File(path) => {
                read_secret_file(path).map_err(|e| err(e, "check the path and that the daemon's user may read it"))?
            }
            SecretSource::Env(var) => env(var)
                .ok_or_else(|| err("the variable is not set".to_string(), "export it in the daemon's environment"))?,
        };
        let trimmed = value.trim_end_matches(['\r', '\n']);
        if trimmed.trim().is_empty() {
            return Err(err("it is empty".to_string(), "put the secret there"));
        }
        Ok(Secret::new(trimmed))
    }

    /// Where the secret comes from, for messages (never its value).
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Credential(name) => format!("credential `{name}`"),
            SecretSource::File(path) => format!("file `{}`", path.display()),
            SecretSource::Env(var) => format!("environment variable `{var}`"),
        }
    }
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        SecretSource::from_toml(&value).map_err(serde::de::Error::custom)
    }
}

/// Pull pacing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// Pause between pulls.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// How far before the cursor each pull re-reads, for rows that become
    /// visible late (equal timestamps, long transactions). Unset: the
    /// connector's own default (Salesforce 600 s, HubSpot 3,600 s, whose
    /// search index shows writes late); see [`Config::lookback_secs`].
    #[serde(default)]
    pub lookback_secs: Option<u64>,
    /// Pulls stop this far short of now, so a window is read only once
    /// settled. Unset: the connector's own default (Salesforce 300 s,
    /// HubSpot 120 s); see [`Config::lag_secs`].
    #[serde(default)]
    pub lag_secs: Option<u64>,
    /// When pulls find nothing, the pause grows up to this (and shrinks back
    /// to `interval_secs` once something changes); it also grows while the
    /// API budget is low.
    #[serde(default = "default_max_interval_secs")]
    pub max_interval_secs: u64,
    /// Owners (and their managers and zones) change rarely: pulled this often.
    #[serde(default = "default_owners_every_secs")]
    pub owners_every_secs: u64,
    /// Business hours and holidays: pulled this often.
    #[serde(default = "default_calendars_every_secs")]
    pub calendars_every_secs: u64,
    /// Pages one stream may read per tick before the others get their
    /// turn; a backfill continues on the next tick. Leads are evaluated only
    /// in a tick that read every stream to its end.
    #[serde(default = "default_pages_per_tick")]
    pub pages_per_tick: usize,
    /// Where "now" comes from: the machine's clock, or — only against
    /// `handoff sandbox` — the sandbox's simulated clock.
    #[serde(default)]
    pub clock: ClockSource,
    /// Clocks that started before this instant (RFC 3339, or a date for its
    /// midnight UTC) are measured for the scorecard but not enforced: no
    /// reminder, escalation, reassignment or flag, and no SLA fields
    /// written on leads wholly of the past. Unset: the daemon's first start
    /// on its state directory, so an old org's backlog does not flood
    /// anyone on day one (`handoff state` lists that backlog).
    #[serde(default)]
    pub enforce_from: Option<String>,
    /// Write SLA fields on leads wholly before `enforce_from` too (each such
    /// write modifies a historic record, which other integrations notice).
    #[serde(default)]
    pub write_back_history: bool,
}

impl SyncSettings {
    /// `enforce_from` as an instant, when set and readable.
    pub fn enforce_from_at(&self) -> Option<DateTime<Utc>> {
        self.enforce_from.as_deref().and_then(parse_instant)
    }
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            interval_secs: default_interval_secs(),
            lookback_secs: None,
            lag_secs: None,
            max_interval_secs: default_max_interval_secs(),
            owners_every_secs: default_owners_every_secs(),
            calendars_every_secs: default_calendars_every_secs(),
            pages_per_tick: default_pages_per_tick(),
            clock: ClockSource::System,
            enforce_from: None,
            write_back_history: false,
        }
    }
}

/// The source of "now" for windows, clocks and deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSource {
    #[default]
    System,
    /// `GET {base}/__sandbox/clock` of the sandbox the connection points at.
    Sandbox,
}

fn default_max_interval_secs() -> u64 {
    600
}

fn default_owners_every_secs() -> u64 {
    900
}

fn default_calendars_every_secs() -> u64 {
    3600
}

fn default_pages_per_tick() -> usize {
    50
}

/// How the service runs (all optional).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSettings {
    /// Loopback address serving `/metrics` (Prometheus) and `/healthz`;
    /// absent: not served.
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// On SIGTERM, in-flight writes get this long to finish before exiting.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Actions handed to the connector per write call (it batches further).
    #[serde(default = "default_outbox_batch")]
    pub outbox_batch: usize,
    /// Retryable write failures of one action before it is given up on and
    /// listed by `handoff state`.
    #[serde(default = "default_max_write_attempts")]
    pub max_write_attempts: u32,
    /// Memory the state database may keep as cache, in MiB: most of the
    /// daemon's resident memory at any org size.
    #[serde(default = "default_state_cache_mib")]
    pub state_cache_mib: u64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            metrics_listen: None,
            shutdown_grace_secs: default_shutdown_grace_secs(),
            outbox_batch: default_outbox_batch(),
            max_write_attempts: default_max_write_attempts(),
            state_cache_mib: default_state_cache_mib(),
        }
    }
}

fn default_shutdown_grace_secs() -> u64 {
    20
}

/// Actions per write round: enough to fill Salesforce's Composite requests
/// (five collections of 200) and HubSpot's batches of 100 across kinds.
fn default_outbox_batch() -> usize {
    2_000
}

fn default_state_cache_mib() -> u64 {
    crate::store::DEFAULT_CACHE_MIB
}

fn default_max_write_attempts() -> u32 {
    10
}

fn default_interval_secs() -> u64 {
    60
}

impl Config {
    /// The lag windows end at: `sync.lag_secs` when the operator set it,
    /// else the connector's own default (a generic default would override
    /// HubSpot's, which exists because its search index lags).
    pub fn lag_secs(&self) -> u64 {
        self.sync.lag_secs.unwrap_or(match self.connection {
            Connection::Salesforce(_) => handoff_salesforce::settings::DEFAULT_LAG.as_secs(),
            Connection::Hubspot(_) => handoff_hubspot::settings::DEFAULT_LAG_SECS,
        })
    }

    /// The lookback each window re-reads: `sync.lookback_secs` when set,
    /// else the connector's own default.
    pub fn lookback_secs(&self) -> u64 {
        self.sync.lookback_secs.unwrap_or(match self.connection {
            Connection::Salesforce(_) => handoff_salesforce::settings::DEFAULT_LOOKBACK.as_secs(),
            Connection::Hubspot(_) => handoff_hubspot::settings::DEFAULT_LOOKBACK_SECS,
        })
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text).map_err(|issues| ConfigError::Invalid { path: path.to_path_buf(), issues })
}

const TOP_KEYS: &[&str] = &["instance", "salesforce", "hubspot", "sync", "daemon", "notify", "signals", "policy"];
const POLICY_KEYS: &[&str] = &[
    "version",
    "fields",
    "statuses",
    "reason_codes",
    "calendars",
    "owners",
    "definitions",
    "grades",
    "segments",
    "marketing",
    "escalation",
    "scorecard",
    "surge",
    "capacity",
];
const DEFINITION_KEYS: &[&str] = &["criteria", "mql", "min_score", "disqualifiers"];
/// Keys whose values are (or may be) secrets and are never echoed.
const SECRET_KEYS: &[&str] =
    &["private_key", "client_secret", "refresh_token", "token", "password", "webhook_url", "bot_token"];

/// Parses and validates a config file's text, reporting every problem.
pub fn parse(text: &str) -> Result<Config, Vec<Issue>> {
    let root: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return Err(vec![syntax_issue(text, &e)]),
    };
    let mut issues = Vec::new();
    check_keys(&root, "", TOP_KEYS, &mut issues);

    let instance: Option<Instance> = required(&root, "", "instance", &mut issues);
    if let Some(inst) = &instance {
        if inst.name.trim().is_empty() {
            issues.push(Issue::new(
                "instance.name",
                "\"\"",
                "the instance needs a name",
                "name it, e.g. \"acme-salesforce\"",
            ));
        }
        if inst.state_dir.as_os_str().is_empty() {
            issues.push(Issue::new(
                "instance.state_dir",
                "\"\"",
                "no state directory",
                "write a directory the daemon may write, e.g. \"/var/lib/handoff/acme\"",
            ));
        }
    }
    let connection = instance.as_ref().and_then(|inst| read_connection(&root, inst.crm, &mut issues));
    let sync: Option<SyncSettings> = match root.get("sync") {
        Some(v) => part(v, "sync", &mut issues),
        None => Some(SyncSettings::default()),
    };
    if let Some(s) = &sync {
        if s.interval_secs == 0 {
            issues.push(Issue::new(
                "sync.interval_secs",
                "0",
                "pulling without pause would spend the API budget",
                "write e.g. 60",
            ));
        }
        if s.max_interval_secs < s.interval_secs {
            issues.push(Issue::new(
                "sync.max_interval_secs",
                s.max_interval_secs.to_string(),
                format!("the longest pause is shorter than `interval_secs` ({})", s.interval_secs),
                "write a value at least as large as interval_secs, e.g. 600",
            ));
        }
        if s.pages_per_tick == 0 {
            issues.push(Issue::new("sync.pages_per_tick", "0", "no page could ever be read", "write e.g. 50"));
        }
        if let Some(text) = s.enforce_from.as_deref().filter(|t| parse_instant(t).is_none()) {
            issues.push(Issue::new(
                "sync.enforce_from",
                text,
                "not an instant",
                "write an RFC 3339 time such as \"2026-01-05T00:00:00Z\" or a date such as \"2026-01-05\" (midnight UTC), or leave it out to enforce from the first start",
            ));
        }
        for (key, value) in
            [("owners_every_secs", s.owners_every_secs), ("calendars_every_secs", s.calendars_every_secs)]
        {
            if value == 0 {
                issues.push(Issue::new(
                    format!("sync.{key}"),
                    "0",
                    "pulling this stream without pause would spend the API budget",
                    "write e.g. 900",
                ));
            }
        }
    }
    let daemon: Option<DaemonSettings> = match root.get("daemon") {
        Some(v) => part(v, "daemon", &mut issues),
        None => Some(DaemonSettings::default()),
    };
    if let Some(d) = &daemon {
        if let Some(addr) = d.metrics_listen {
            if !addr.ip().is_loopback() {
                issues.push(Issue::new(
                    "daemon.metrics_listen",
                    addr.to_string(),
                    "metrics are served on loopback only (they name owners and leads)",
                    "write 127.0.0.1:PORT and put a reverse proxy in front if it must be reached from elsewhere",
                ));
            }
        }
        if d.outbox_batch == 0 {
            issues.push(Issue::new("daemon.outbox_batch", "0", "no action could ever be written", "write e.g. 500"));
        }
        if d.max_write_attempts == 0 {
            issues.push(Issue::new(
                "daemon.max_write_attempts",
                "0",
                "no action could ever be written",
                "write e.g. 10",
            ));
        }
        if !(8..=16_384).contains(&d.state_cache_mib) {
            issues.push(Issue::new(
                "daemon.state_cache_mib",
                d.state_cache_mib.to_string(),
                "the state database's cache must be between 8 MiB and 16 GiB",
                "write 64 (the default) or more for an org of millions of leads",
            ));
        }
    }
    let notify: Option<Option<notify::NotifySettings>> = match root.get("notify") {
        Some(v) => part(v, "notify", &mut issues).map(Some),
        None => Some(None),
    };
    if let (Some(Some(n)), Some(inst)) = (&notify, &instance) {
        notify::check(n, inst.crm, connection.as_ref(), &mut issues);
    }
    let signals: Option<notify::SignalSettings> = match root.get("signals") {
        Some(v) => part(v, "signals", &mut issues),
        None => Some(notify::SignalSettings::default()),
    };
    if let Some(s) = &signals {
        notify::check_signals(s, &mut issues);
    }
    let policy_source = match root.get("policy") {
        Some(v) => read_policy(v, &mut issues),
        None => {
            issues.push(Issue::new(
                "policy",
                "",
                "the [policy] section is missing",
                "add the SLA policy; see config/salesforce.example.toml",
            ));
            None
        }
    };
    let policy = match &policy_source {
        Some(p) => match compile(p) {
            Ok(c) => Some(c),
            Err(more) => {
                issues.extend(more);
                None
            }
        },
        None => None,
    };
    if let (Some(Connection::Hubspot(h)), Some(p)) = (&connection, &policy) {
        check_lead_object(h.lead_object, p, &mut issues);
    }
    match (instance, connection, sync, daemon, notify, signals, policy_source, policy) {
        (
            Some(instance),
            Some(connection),
            Some(sync),
            Some(daemon),
            Some(notify),
            Some(signals),
            Some(policy_source),
            Some(policy),
        ) if issues.is_empty() => {
            Ok(Config { instance, connection, sync, daemon, notify, signals, policy_source, policy })
        }
        _ => {
            if issues.is_empty() {
                issues.push(Issue::new("", "", "the file could not be read", "check its sections"));
            }
            Err(issues)
        }
    }
}

impl Config {
    /// The compiled policy the engine runs.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    /// Identifies the policy as written: when it changes, every lead is
    /// evaluated again.
    pub fn policy_fingerprint(&self) -> String {
        let text = serde_json::to_string(&self.policy_source).unwrap_or_default();
        crate::engine::keys::short_hash(&text, 16)
    }

    /// Resolves every secret and checks every local file the connection
    /// names (CA file), as the daemon will at start. Never prints a secret.
    pub fn check_local_files(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        let (prefix, secrets, ca_file): (&str, Vec<(&str, &SecretSource)>, &Option<PathBuf>) = match &self.connection {
            Connection::Salesforce(s) => (
                "salesforce",
                match &s.auth {
                    SalesforceAuth::JwtBearer { private_key, .. } => vec![("auth.private_key", private_key)],
                    SalesforceAuth::RefreshToken { client_secret, refresh_token, .. } => {
                        vec![("auth.client_secret", client_secret), ("auth.refresh_token", refresh_token)]
                    }
                    SalesforceAuth::ClientCredentials { client_secret, .. } => {
                        vec![("auth.client_secret", client_secret)]
                    }
                },
                &s.ca_file,
            ),
            Connection::Hubspot(h) => (
                "hubspot",
                match &h.auth {
                    HubspotAuth::PrivateApp { token } => vec![("auth.token", token)],
                    HubspotAuth::Oauth { client_secret, refresh_token, .. } => {
                        vec![("auth.client_secret", client_secret), ("auth.refresh_token", refresh_token)]
                    }
                },
                &h.ca_file,
            ),
        };
        for (key, source) in secrets {
            if let Err(ConfigError::Secret { message, fix, .. }) = source.resolve() {
                issues.push(Issue::new(format!("{prefix}.{key}"), source.describe(), message, fix));
            }
        }
        if let Some(n) = &self.notify {
            for (key, source) in notify::secrets(n) {
                if let Err(ConfigError::Secret { message, fix, .. }) = source.resolve() {
                    issues.push(Issue::new(key, source.describe(), message, fix));
                }
            }
            if let Some(ca) = n.email.as_ref().and_then(|e| e.ca_file.as_ref()) {
                if let Err(e) = std::fs::read(ca) {
                    issues.push(Issue::new(
                        "notify.email.ca_file",
                        ca.display().to_string(),
                        format!("cannot read it: {e}"),
                        "point it at a readable PEM file or remove the key",
                    ));
                }
            }
        }
        if let Some(ca) = ca_file {
            if let Err(e) = std::fs::read(ca) {
                issues.push(Issue::new(
                    format!("{prefix}.ca_file"),
                    ca.display().to_string(),
                    format!("cannot read it: {e}"),
                    "point it at a readable PEM file or remove the key",
                ));
            }
        }
        issues
    }
}

fn read_connection(root: &toml::Table, crm: CrmKind, issues: &mut Vec<Issue>) -> Option<Connection> {
    let other = match crm {
        CrmKind::Salesforce => "hubspot",
        CrmKind::Hubspot => "salesforce",
    };
    if root.contains_key(other) {
        issues.push(Issue::new(
            other,
            "",
            format!("this file is for a {crm} instance (instance.crm), so a [{other}] section does not belong here"),
            format!("remove [{other}] or write one config file per CRM instance"),
        ));
    }
    match crm {
        CrmKind::Salesforce => {
            let s: SalesforceSettings = required(root, "", "salesforce", issues)?;
            let before = issues.len();
            check_url(&s.login_url, "salesforce.login_url", issues);
            if let Some(u) = &s.instance_url {
                check_url(u, "salesforce.instance_url", issues);
            }
            let v = s.api_version.trim();
            let well_formed = v.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
            });
            if !well_formed {
                issues.push(Issue::new(
                    "salesforce.api_version",
                    format!("{v:?}"),
                    "not a REST API version",
                    "write it as \"62.0\" (no leading v)",
                ));
            }
            check_share(s.daily_budget_share, "salesforce.daily_budget_share", issues);
            check_client_id(&s.auth, issues);
            if s.requests_per_sec == 0 {
                issues.push(Issue::new(
                    "salesforce.requests_per_sec",
                    "0",
                    "no request could ever be sent",
                    "write e.g. 10",
                ));
            }
            if s.task_key_field.trim().is_empty() {
                issues.push(Issue::new(
                    "salesforce.task_key_field",
                    "\"\"",
                    "no External ID field is named for handoff's task keys",
                    "write e.g. \"Handoff_Key__c\" (Text(80), External ID, Unique on Activity)",
                ));
            }
            for (i, f) in s.history_fields.iter().enumerate() {
                if f.trim().is_empty() || !f.trim().chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    issues.push(Issue::new(
                        format!("salesforce.history_fields[{i}]"),
                        format!("{f:?}"),
                        "not a Lead field API name",
                        "list the fields the org tracks by API name, e.g. \"Owner\", \"Status\", \"Phone\" (or [] for none)",
                    ));
                }
            }
            (issues.len() == before).then_some(Connection::Salesforce(s))
        }
        CrmKind::Hubspot => {
            let h: HubspotSettings = required(root, "", "hubspot", issues)?;
            let before = issues.len();
            check_url(&h.base_url, "hubspot.base_url", issues);
            check_share(h.daily_budget_share, "hubspot.daily_budget_share", issues);
            if h.burst_per_10s < 2 || h.search_per_second == 0 {
                issues.push(Issue::new(
                    "hubspot.burst_per_10s",
                    format!("{} / {}", h.burst_per_10s, h.search_per_second),
                    "the local pace must let requests through (burst_per_10s at least 2, search_per_second at least 1)",
                    "remove both keys to use HubSpot's documented limits",
                ));
            }
            for (owner, zone) in &h.owner_time_zones {
                if zone.parse::<chrono_tz::Tz>().is_err() {
                    issues.push(Issue::new(
                        format!("hubspot.owner_time_zones.{owner}"),
                        format!("{zone:?}"),
                        "not an IANA time zone",
                        "write e.g. \"America/New_York\" or \"Europe/London\"",
                    ));
                }
            }
            if let HubspotAuth::Oauth { client_id, .. } = &h.auth {
                if client_id.trim().is_empty() {
                    issues.push(Issue::new(
                        "hubspot.auth.client_id",
                        "\"\"",
                        "the client id is empty",
                        "copy it from the app's Auth settings",
                    ));
                }
            }
            (issues.len() == before).then_some(Connection::Hubspot(h))
        }
    }
}

/// The policy must read the record `lead_object` names: in leads mode the
/// status is the lead's pipeline stage, not the contact's lead status.
fn check_lead_object(object: HubspotLeadObject, policy: &CompiledPolicy, issues: &mut Vec<Issue>) {
    let status = policy.fields.status.trim();
    match object {
        HubspotLeadObject::Leads if status == "hs_lead_status" => issues.push(Issue::new(
            "policy.fields.status",
            format!("{status:?}"),
            "hubspot.lead_object is \"leads\", whose status is the lead record's pipeline stage; hs_lead_status is the contact's",
            "write status = \"hs_pipeline_stage\" and list stage ids in [policy.statuses] (see config/hubspot-leads.example.toml), or set lead_object = \"contacts\"",
        )),
        HubspotLeadObject::Contacts if status == "hs_pipeline_stage" => issues.push(Issue::new(
            "policy.fields.status",
            format!("{status:?}"),
            "hs_pipeline_stage is the status of HubSpot's lead records, but hubspot.lead_object is \"contacts\"",
            "set lead_object = \"leads\" in [hubspot] to run the SLA on lead records, or use the contact's hs_lead_status",
        )),
        _ => {}
    }
}

fn check_client_id(auth: &SalesforceAuth, issues: &mut Vec<Issue>) {
    let (client_id, username) = match auth {
        SalesforceAuth::JwtBearer { client_id, username, .. } => (client_id, Some(username)),
        SalesforceAuth::RefreshToken { client_id, .. } | SalesforceAuth::ClientCredentials { client_id, .. } => {
            (client_id, None)
        }
    };
    if client_id.trim().is_empty() {
        issues.push(Issue::new(
            "salesforce.auth.client_id",
            "\"\"",
            "the consumer key is empty",
            "copy the connected app's consumer key",
        ));
    }
    if username.is_some_and(|u| !u.contains('@')) {
        issues.push(Issue::new(
            "salesforce.auth.username",
            format!("{:?}", username.map(String::as_str).unwrap_or_default()),
            "not a Salesforce username",
            "write the integration user's username, e.g. \"handoff@acme.com\"",
        ));
    }
}

/// https, or plain http to a loopback host (the local sandbox).
fn check_url(url: &str, path: &str, issues: &mut Vec<Issue>) {
    let u = url.trim();
    let rest = u.strip_prefix("https://").or_else(|| {
        u.strip_prefix("http://").filter(|r| ["localhost", "127.0.0.1", "[::1]"].iter().any(|h| r.starts_with(h)))
    });
    let host_ok = rest.is_some_and(|r| {
        let host = r.split(['/', ':']).next().unwrap_or_default();
        !host.is_empty() && !r.contains(char::is_whitespace)
    });
    if !host_ok {
        issues.push(Issue::new(
            path,
            format!("{u:?}"),
            "not an https URL",
            "write e.g. \"https://acme.my.salesforce.com\" (plain http only to localhost)",
        ));
    }
}

fn check_share(share: f64, path: &str, issues: &mut Vec<Issue>) {
    if !(share > 0.0 && share <= 1.0) {
        issues.push(Issue::new(
            path,
            share.to_string(),
            "the share of the daily API limit must be above 0 and at most 1",
            "write e.g. 0.25 to use a quarter of the org's daily calls",
        ));
    }
}

fn read_policy(value: &toml::Value, issues: &mut Vec<Issue>) -> Option<Policy> {
    let Some(t) = value.as_table() else {
        issues.push(Issue::new("policy", value.type_str(), "expected a table", "write a [policy] section"));
        return None;
    };
    check_keys(t, "policy", POLICY_KEYS, issues);
    let p = "policy";
    let version: Option<u32> = match t.get("version") {
        Some(v) => part(v, "policy.version", issues),
        None => Some(1),
    };
    let fields = required(t, p, "fields", issues);
    let statuses = required(t, p, "statuses", issues);
    let reason_codes = required(t, p, "reason_codes", issues);
    let calendars = required_map(t, p, "calendars", issues);
    let owners = optional(t, p, "owners", issues);
    let definitions = read_definitions(t, issues);
    let grades = required_list(t, p, "grades", issues);
    let segments = required_list(t, p, "segments", issues);
    let marketing = required(t, p, "marketing", issues);
    let escalation = required(t, p, "escalation", issues);
    let scorecard = optional(t, p, "scorecard", issues);
    let surge = optional(t, p, "surge", issues);
    let capacity = optional(t, p, "capacity", issues);
    Some(Policy {
        version: version?,
        fields: fields?,
        statuses: statuses?,
        reason_codes: reason_codes?,
        calendars: calendars?,
        owners: owners?,
        definitions: definitions?,
        grades: grades?,
        segments: segments?,
        marketing: marketing?,
        escalation: escalation?,
        scorecard: scorecard?,
        surge: surge?,
        capacity: capacity?,
    })
}

fn read_definitions(policy: &toml::Table, issues: &mut Vec<Issue>) -> Option<crate::policy::Definitions> {
    let p = "policy.definitions";
    let Some(value) = policy.get("definitions") else {
        issues.push(missing("policy", "definitions"));
        return None;
    };
    let Some(t) = value.as_table() else {
        issues.push(Issue::new(p, value.type_str(), "expected a table", "write [policy.definitions]"));
        return None;
    };
    check_keys(t, p, DEFINITION_KEYS, issues);
    let criteria: Option<BTreeMap<String, Condition>> = match t.get("criteria") {
        Some(_) => required_map(t, p, "criteria", issues),
        None => Some(BTreeMap::new()),
    };
    let mql = required(t, p, "mql", issues);
    let min_score = optional::<Option<f64>>(t, p, "min_score", issues);
    let disqualifiers = match t.get("disqualifiers") {
        Some(_) => required_map(t, p, "disqualifiers", issues),
        None => Some(BTreeMap::new()),
    };
    Some(crate::policy::Definitions {
        criteria: criteria?,
        mql: mql?,
        min_score: min_score?,
        disqualifiers: disqualifiers?,
    })
}

fn join_path(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else if key.is_empty() || key == "." {
        base.to_string()
    } else if key.starts_with('[') {
        format!("{base}{key}")
    } else {
        format!("{base}.{key}")
    }
}

fn missing(base: &str, key: &str) -> Issue {
    Issue::new(
        join_path(base, key),
        "",
        format!("required key `{key}` is missing"),
        format!("add `{key}`; see the commented examples in config/"),
    )
}

fn required<T: DeserializeOwned>(t: &toml::Table, base: &str, key: &str, issues: &mut Vec<Issue>) -> Option<T> {
    match t.get(key) {
        Some(v) => part(v, &join_path(base, key), issues),
        None => {
            issues.push(missing(base, key));
            None
        }
    }
}

fn optional<T: DeserializeOwned + Default>(
    t: &toml::Table,
    base: &str,
    key: &str,
    issues: &mut Vec<Issue>,
) -> Option<T> {
    match t.get(key) {
        Some(v) => part(v, &join_path(base, key), issues),
        None => Some(T::default()),
    }
}

/// A table of named entries, each read on its own.
fn required_map<T: DeserializeOwned>(
    t: &toml::Table,
    base: &str,
    key: &str,
    issues: &mut Vec<Issue>,
) -> Option<BTreeMap<String, T>> {
    let path = join_path(base, key);
    let Some(value) = t.get(key) else {
        issues.push(missing(base, key));
        return None;
    };
    let Some(entries) = value.as_table() else {
        issues.push(Issue::new(
            &path,
            value.type_str(),
            "expected a table of named entries",
            format!("write [{path}.NAME] sections"),
        ));
        return None;
    };
    let parts: Vec<(String, Option<T>)> =
        entries.iter().map(|(name, v)| (name.clone(), part(v, &join_path(&path, name), issues))).collect();
    parts.into_iter().map(|(n, v)| v.map(|v| (n, v))).collect()
}

/// An array of entries, each read on its own.
fn required_list<T: DeserializeOwned>(
    t: &toml::Table,
    base: &str,
    key: &str,
    issues: &mut Vec<Issue>,
) -> Option<Vec<T>> {
    let path = join_path(base, key);
    let Some(value) = t.get(key) else {
        issues.push(missing(base, key));
        return None;
    };
    let Some(items) = value.as_array() else {
        issues.push(Issue::new(&path, value.type_str(), "expected a list", format!("write [[{path}]] entries")));
        return None;
    };
    let parts: Vec<Option<T>> =
        items.iter().enumerate().map(|(i, v)| part(v, &format!("{path}[{i}]"), issues)).collect();
    parts.into_iter().collect()
}

fn check_keys(t: &toml::Table, base: &str, allowed: &[&str], issues: &mut Vec<Issue>) {
    for key in t.keys() {
        if !allowed.contains(&key.as_str()) {
            issues.push(unknown_key_issue(&join_path(base, key), key, allowed));
        }
    }
}

fn unknown_key_issue(path: &str, key: &str, allowed: &[&str]) -> Issue {
    let best = allowed
        .iter()
        .map(|a| (strsim::jaro_winkler(key, a), *a))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let fix = match best {
        Some((_, a)) => format!("did you mean `{a}`? Allowed here: {}", allowed.join(", ")),
        None => format!("remove it; allowed here: {}", allowed.join(", ")),
    };
    Issue::new(path, format!("{key:?}"), "unknown key", fix)
}

/// Deserializes one part of the file. An unknown key is reported, removed,
/// and the part read again, so every unknown key in it is reported; any other
/// error is reported and ends the part.
fn part<T: DeserializeOwned>(value: &toml::Value, base: &str, issues: &mut Vec<Issue>) -> Option<T> {
    let mut value = value.clone();
    let first_issue = issues.len();
    // Bounded: each round removes one key.
    for _ in 0..256 {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let inner_path: Vec<String> = err.path().iter().map(|s| s.to_string()).collect();
        let message = err.inner().message().to_string();
        let (issue, removable) = serde_issue(base, &inner_path, &message, &value);
        // A misspelt key (`usrname`) also leaves the real one missing; the
        // "did you mean `username`?" already says it, once is enough.
        let already_suggested =
            message.strip_prefix("missing field `").and_then(|r| r.split('`').next()).is_some_and(|key| {
                issues[first_issue..]
                    .iter()
                    .any(|i| i.message == "unknown key" && i.fix.starts_with(&format!("did you mean `{key}`?")))
            });
        if already_suggested {
            return None;
        }
        issues.push(issue);
        match removable {
            Some(key_path) if remove_key(&mut value, &key_path) => continue,
            _ => return None,
        }
    }
    None
}

/// Turns serde's message into an issue; for an unknown key, also returns the
/// path (inside the part) of the key to remove.
fn serde_issue(base: &str, inner: &[String], message: &str, value: &toml::Value) -> (Issue, Option<Vec<String>>) {
    let mut segments: Vec<String> = inner.iter().filter(|s| s.as_str() != "?").cloned().collect();
    let render = |segs: &[String]| segs.iter().fold(base.to_string(), |acc, s| join_path(&acc, s));
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let allowed = backticked(expected);
        // The path may or may not already end with the unknown key.
        if segments.last().map(String::as_str) != Some(key) {
            segments.push(key.to_string());
        }
        let allowed_refs: Vec<&str> = allowed.iter().map(String::as_str).collect();
        let issue = unknown_key_issue(&render(&segments), key, &allowed_refs);
        return (issue, Some(segments));
    }
    // Internally tagged enums (the auth flows) lose the path below the
    // enum; an inline secret is found again by its key.
    if message.starts_with(INLINE_SECRET) {
        if let Some(t) = lookup(value, &segments).and_then(toml::Value::as_table) {
            if let Some(key) =
                t.iter().find(|(k, v)| SECRET_KEYS.contains(&k.as_str()) && !v.is_table()).map(|(k, _)| k)
            {
                segments.push(key.clone());
            }
        }
    }
    let path = render(&segments);
    let shown = match lookup(value, &segments) {
        _ if segments.iter().any(|s| SECRET_KEYS.contains(&s.as_str())) => "[redacted]".to_string(),
        Some(v) if holds_secret(v) => "[redacted]".to_string(),
        Some(v) => truncate(&v.to_string()),
        None => String::new(),
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        return (missing(&path, key), None);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (variant, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let allowed = backticked(expected);
        let fix = match allowed
            .iter()
            .map(|a| (strsim::jaro_winkler(variant, a), a))
            .filter(|(s, _)| *s > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
        {
            Some((_, a)) => format!("did you mean \"{a}\"? Allowed: {}", allowed.join(", ")),
            None => format!("use one of: {}", allowed.join(", ")),
        };
        return (Issue::new(path, format!("{variant:?}"), "not an allowed value", fix), None);
    }
    if let Some((what, fix)) = message.split_once(". Fix: ") {
        return (Issue::new(path, shown, what, fix), None);
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        // serde's own wording can quote the value; say it without it.
        let expected = message.rsplit_once(", expected ").map(|(_, e)| e).unwrap_or("another type");
        return (
            Issue::new(
                path,
                shown,
                format!("wrong type of value, expected {expected}"),
                format!("write {expected} here"),
            ),
            None,
        );
    }
    (Issue::new(path, shown, message, "see the commented examples in config/"), None)
}

/// Whether a value is or contains a key whose value may be a secret.
fn holds_secret(v: &toml::Value) -> bool {
    match v {
        toml::Value::Table(t) => t.iter().any(|(k, v)| SECRET_KEYS.contains(&k.as_str()) || holds_secret(v)),
        toml::Value::Array(a) => a.iter().any(holds_secret),
        _ => false,
    }
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.to_string()
    }
}

fn lookup<'a>(value: &'a toml::Value, segments: &[String]) -> Option<&'a toml::Value> {
    segments.iter().try_fold(value, |v, seg| match seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(idx) => v.as_array()?.get(idx.parse::<usize>().ok()?),
        None => v.as_table()?.get(seg),
    })
}

fn remove_key(value: &mut toml::Value, segments: &[String]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut v = value;
    for seg in parents {
        v = match seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(idx) => match idx.parse::<usize>().ok().and_then(|i| v.as_array_mut()?.get_mut(i)) {
                Some(x) => x,
                None => return false,
            },
            None => match v.as_table_mut().and_then(|t| t.get_mut(seg)) {
                Some(x) => x,
                None => return false,
            },
        };
    }
    v.as_table_mut().is_some_and(|t| t.remove(last).is_some())
}

fn syntax_issue(text: &str, e: &toml::de::Error) -> Issue {
    let (line_no, shown) = match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let line_no = text[..start].matches('\n').count() + 1;
            (line_no, shown_line(text, line_no))
        }
        None => (0, String::new()),
    };
    // toml's message may quote the text it stopped at: keep only its first
    // line (the description), never the quoted source.
    let message = e.message().trim().lines().next().unwrap_or_default().to_string();
    Issue::new(
        format!("line {line_no}"),
        shown,
        format!("TOML syntax error: {message}"),
        "correct the syntax on that line (strings need quotes, tables [name], lists [a, b])",
    )
}

/// Whether a key name may hold a secret (the config's own secret keys and
/// anything named like one).
fn secret_like_key(key: &str) -> bool {
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'').to_ascii_lowercase();
    let last = key.rsplit('.').next().unwrap_or(&key).trim();
    SECRET_KEYS.contains(&last)
        || handoff_model::redact::SECRET_FIELD_NAMES.contains(&last)
        || ["secret", "token", "password", "private", "credential"].iter().any(|w| last.contains(w))
}

/// Line `line_no` (1-based) of a file that does not parse, as a syntax
/// error may show it: the key and `= [redacted]` when the line assigns a
/// secret-like key, or continues a value (a multi-line string or list) that
/// such a key started; only the key when the line's value cannot be told
/// apart; the line itself otherwise.
fn shown_line(text: &str, line_no: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(line) = lines.get(line_no.saturating_sub(1)).map(|l| l.trim()) else {
        return String::new();
    };
    let assignment = |l: &str| -> Option<String> {
        let l = l.trim();
        if l.starts_with('#') || l.starts_with('[') {
            return None;
        }
        let (key, _) = l.split_once('=')?;
        let key = key.trim();
        let bare = key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' '));
        (bare && !key.is_empty()).then(|| key.to_string())
    };
    if let Some(key) = assignment(line) {
        return if secret_like_key(&key) { format!("{key} = [redacted]") } else { truncate(line) };
    }
    // A line that assigns nothing continues the value of the last key above
    // it (or is a table header, a comment, or stray text).
    if line.starts_with('[') && !line.contains('=') && !line.contains('"') {
        return truncate(line);
    }
    let owner = lines[..line_no.saturating_sub(1)]
        .iter()
        .rev()
        .find_map(|l| if l.trim().starts_with('[') { Some(None) } else { assignment(l).map(Some) })
        .flatten();
    match owner {
        Some(key) if secret_like_key(&key) => format!("(inside the value of `{key}`: [redacted])"),
        _ => truncate(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_sources() {
        let v: toml::Value = toml::from_str("a = { credential = \"sf-key\" }\nb = { env = \"HS_TOKEN\" }\nc = \"inline-value\"\nd = { file = \"rel/path\" }").unwrap();
        assert_eq!(SecretSource::from_toml(&v["a"]), Ok(SecretSource::Credential("sf-key".into())));
        assert_eq!(SecretSource::from_toml(&v["b"]), Ok(SecretSource::Env("HS_TOKEN".into())));
        let inline = SecretSource::from_toml(&v["c"]).unwrap_err();
        assert!(inline.contains("never written inline") && !inline.contains("inline-value"), "{inline}");
        assert!(SecretSource::from_toml(&v["d"]).unwrap_err().contains("relative"));
    }

    #[test]
    fn secrets_resolve_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "s3cr3t\n").unwrap();
        let s = SecretSource::Credential("tok".into()).resolve_with(Some(dir.path()), |_| None).unwrap();
        assert_eq!(s.expose(), "s3cr3t");
        let env = SecretSource::Env("X".into()).resolve_with(None, |n| (n == "X").then(|| "v".to_string())).unwrap();
        assert_eq!(env.expose(), "v");
        std::fs::write(dir.path().join("handoff_key"), "from-the-unit-directory\n").unwrap();
        let s = SecretSource::Credential("key".into()).resolve_with(Some(dir.path()), |_| None).unwrap();
        assert_eq!(s.expose(), "from-the-unit-directory", "the unit's directory form prefixes handoff_");
        let err = SecretSource::Credential("tok".into()).resolve_with(None, |_| None).unwrap_err();
        assert!(err.to_string().contains("CREDENTIALS_DIRECTORY"), "{err}");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let err = SecretSource::File(dir.path().join("empty")).resolve_with(None, |_| None).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn every_unknown_key_in_a_part_is_reported() {
        let v: toml::Value = toml::from_str("interval_secs = 5\nintervall = 3\nlagg_secs = 1").unwrap();
        let mut issues = Vec::new();
        let s: Option<SyncSettings> = part(&v, "sync", &mut issues);
        assert_eq!(s.map(|s| s.interval_secs), Some(5));
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["sync.intervall", "sync.lagg_secs"]);
        assert!(issues[1].fix.contains("did you mean `lag_secs`"), "{}", issues[1]);
    }

    const EXAMPLE: &str = include_str!("../../config/salesforce.example.toml");

    fn paths_after(old: &str, new: &str) -> Vec<String> {
        assert!(EXAMPLE.contains(old), "the example no longer contains {old:?}");
        parse(&EXAMPLE.replacen(old, new, 1)).err().unwrap_or_default().into_iter().map(|i| i.path).collect()
    }

    #[test]
    fn policy_keys_match_the_policy_type() {
        // The loader reads the policy key by key; a field added to `Policy`
        // must be added to POLICY_KEYS too.
        let config = parse(EXAMPLE).expect("the example is valid");
        let value = toml::Value::try_from(&config.policy_source).expect("a policy serializes");
        let mut keys: Vec<&str> = value.as_table().expect("a table").keys().map(String::as_str).collect();
        let mut expected = POLICY_KEYS.to_vec();
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn connection_mistakes_name_their_keys() {
        assert_eq!(
            paths_after("username = \"handoff-integration@acme.com\"", "usrname = \"x@acme.com\""),
            ["salesforce.auth.usrname"]
        );
        assert_eq!(paths_after("flow = \"jwt_bearer\"", "flow = \"jwt\""), ["salesforce.auth.flow"]);
        assert_eq!(paths_after("api_version = \"62.0\"", "api_version = \"v62\""), ["salesforce.api_version"]);
        assert_eq!(paths_after("state_cache_mib = 64", "state_cache_mib = 2"), ["daemon.state_cache_mib"]);
        assert!(paths_after("state_cache_mib = 64", "state_cache_mib = 512").is_empty());
        assert_eq!(
            paths_after("daily_budget_share = 0.2", "daily_budget_share = 2.0"),
            ["salesforce.daily_budget_share"]
        );
        assert_eq!(
            paths_after("history_fields = [\"Owner\", \"Status\"]", "history_fields = [\"Owner\", \"Lead Source\"]"),
            ["salesforce.history_fields[1]"]
        );
        assert_eq!(
            paths_after("login_url = \"https://login.salesforce.com\"", "login_url = \"http://login.salesforce.com\""),
            ["salesforce.login_url"]
        );
        assert_eq!(paths_after("[sync]", "[hubspot]\nbase_url = \"https://api.hubapi.com\"\n\n[sync]"), ["hubspot"]);
        assert_eq!(paths_after("crm = \"salesforce\"", "crm = \"salesforse\""), ["instance.crm"]);
        assert_eq!(paths_after("[policy]\n", "[policy]\ngrade_rules = []\n"), ["policy.grade_rules"]);
    }

    #[test]
    fn notify_mistakes_name_their_keys_and_fixes() {
        assert_eq!(paths_after("digest_time = \"08:30\"", "digest_time = \"8.30am\""), ["notify.digest_time"]);
        assert_eq!(paths_after("\ntls = \"starttls\"", "\ntls = \"none\""), ["notify.email.tls"]);
        assert_eq!(paths_after("from = \"handoff <sla@acme.com>\"", "from = \"sla at acme\""), ["notify.email.from"]);
        assert_eq!(paths_after("username = \"sla@acme.com\"\n", ""), ["notify.email.username"]);
        assert_eq!(
            paths_after("channel = \"C0123ABCD\"", "chanel = \"C0123ABCD\""),
            ["notify.slack.chanel", "notify.slack.channel"]
        );
        assert_eq!(
            paths_after("summary_to = [\"revops@acme.com\"]", "summary_to = [\"revops\"]"),
            ["notify.summary_to[0]"]
        );
        assert_eq!(paths_after("met_weeks = 13", "met_weeks = 0"), ["signals.met_weeks"]);
        assert_eq!(
            paths_after("instance_url = \"https://acme.my.salesforce.com\"\n", ""),
            ["notify.record_url"],
            "a digest link needs the instance URL"
        );
        let inline = paths_after("bot_token = { credential = \"slack-bot-token\" }", "bot_token = \"xoxb-123-secret\"");
        assert_eq!(inline, ["notify.slack.bot_token"]);
        let text =
            EXAMPLE.replacen("bot_token = { credential = \"slack-bot-token\" }", "bot_token = \"xoxb-123-secret\"", 1);
        let shown: Vec<String> = parse(&text).unwrap_err().iter().map(|i| i.to_string()).collect();
        assert!(!shown.concat().contains("xoxb-123-secret"), "{shown:?}");
    }

    #[test]
    fn secrets_are_redacted_wherever_they_are_misplaced() {
        let text = EXAMPLE.replacen(
            "private_key = { credential = \"salesforce-jwt-key\" }",
            "private_key = { credential = \"k\", value = \"hunter2\" }",
            1,
        );
        let issues = parse(&text).unwrap_err();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].path, "salesforce.auth");
        assert!(!issues[0].to_string().contains("hunter2"), "{}", issues[0]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let issues = parse("[instance]\nname = \"x\"\ncrm = salesforce\n").unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path, "line 3");
        assert!(issues[0].to_string().contains("crm = salesforce"), "{}", issues[0]);
    }

    #[test]
    fn a_syntax_error_never_shows_a_secret() {
        let secret = "Zq8-inline-secret-4471";
        let cases = [
            format!("[hubspot.auth]\nflow = \"oauth\"\nclient_secret = \"{secret}\nrefresh_token = 1\n"),
            format!("[hubspot.auth]\ntoken = {secret}\n"),
            format!("[salesforce.auth]\nprivate_key = \"\"\"\n-----BEGIN KEY-----\n{secret}\n-----END\n\"\" x\n"),
            format!("[x]\n\"refresh_token\" = \"{secret}\" junk\n"),
            format!("[x]\npassword = [\"{secret}\",\n"),
            format!("[x]\napi_secret = '{secret}\n"),
        ];
        for text in cases {
            let issues = parse(&text).unwrap_err();
            let shown: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
            assert!(!shown.iter().any(|l| l.contains("inline-secret")), "{text}\n=> {shown:?}");
            assert!(shown.iter().any(|l| l.starts_with("line ")), "{shown:?}");
        }
    }
}
