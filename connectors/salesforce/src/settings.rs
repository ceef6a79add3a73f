//! What the daemon hands the connector: plain data built from the config file.

use std::sync::Arc;
use std::time::Duration;

use handoff_model::{RetryPolicy, Secret};
pub use handoff_runtime::{Clock, HttpSettings, MemoryTokenStore, SharedClock, TokenStore};

/// How far behind now a window ends by default (the sync lessons' 5 minutes).
pub const DEFAULT_LAG: Duration = Duration::from_secs(5 * 60);
/// How far before the last window a new one starts by default (10 minutes).
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(10 * 60);

/// The Salesforce REST API version every path uses.
pub const DEFAULT_API_VERSION: &str = "v62.0";

/// How the connector obtains an access token.
#[derive(Debug, Clone)]
pub enum SalesforceAuth {
    /// OAuth 2.0 JWT bearer flow: an RS256 assertion signed with the
    /// connected app's private key. Salesforce returns no refresh token; the
    /// connector mints a new assertion whenever it needs a session.
    JwtBearer {
        /// The connected app's consumer key (the JWT `iss`).
        client_id: String,
        /// The integration user's username (the JWT `sub`).
        username: String,
        /// PEM-encoded RSA private key matching the certificate on the app.
        private_key_pem: Secret,
        /// The JWT `aud`: `https://login.salesforce.com`, `https://test.salesforce.com`
        /// or the My Domain URL. `None`: the login URL.
        audience: Option<String>,
    },
    /// OAuth 2.0 refresh-token flow. If the app rotates refresh tokens the
    /// new one is persisted through [`SalesforceSettings::token_store`]
    /// before it is used, so a crash never loses the only valid token.
    RefreshToken {
        client_id: String,
        client_secret: Option<Secret>,
        /// The token the operator configured; the store's copy wins when present.
        refresh_token: Secret,
    },
    /// OAuth 2.0 client-credentials flow (runs as the app's run-as user;
    /// must be posted to the org's My Domain host).
    ClientCredentials { client_id: String, client_secret: Secret },
}

/// Everything the Salesforce connector needs.
#[derive(Clone)]
pub struct SalesforceSettings {
    /// Where tokens are requested: `https://login.salesforce.com`,
    /// `https://test.salesforce.com` or the org's My Domain URL.
    pub login_url: String,
    /// Overrides the `instance_url` of the token answer (rarely needed).
    pub instance_url: Option<String>,
    pub api_version: String,
    pub auth: SalesforceAuth,
    pub token_store: Arc<dyn TokenStore>,
    /// Timeouts, deadlines, the answer size cap and an extra trusted CA
    /// (PEM) for a TLS-intercepting proxy or the sandbox's `--tls`.
    pub http: HttpSettings,
    /// Share (0–1) of the org's daily API limit handoff may use.
    pub daily_budget_share: f64,
    /// How long to stay paused once the budget is reached before asking again
    /// (the org's window is rolling, so usage falls gradually).
    pub budget_recheck: Duration,
    /// Records per query page (`Sforce-Query-Options: batchSize`, 200–2,000).
    pub query_batch_size: u32,
    /// Records per sObject Collections call (at most 200).
    pub write_batch_size: usize,
    /// How far before the last finished window a new window starts, to catch
    /// rows that committed late with an older `SystemModstamp`.
    pub lookback: Duration,
    /// How far behind now a window ends, so in-flight transactions settle.
    pub lag: Duration,
    /// Courtesy pace: requests per second at most.
    pub requests_per_sec: u32,
    pub retry: RetryPolicy,
    /// Lead fields the policy reads or writes; checked against `describe`.
    pub required_lead_fields: Vec<String>,
    /// The External ID field on Task holding handoff's action key.
    pub task_key_field: String,
    /// Lead fields with field history tracking on in the org.
    pub tracked_history: crate::map::TrackedHistory,
    /// Read the opportunity stream and the activities logged on
    /// opportunities (the policy has the AE's commitments). Off, the
    /// opportunity stream answers an empty, finished page without a call.
    pub read_opportunities: bool,
    /// The CRM's "now": windows end at it. Given when the settings are
    /// made, so no connector reads a clock the daemon does not share.
    pub clock: SharedClock,
}

impl SalesforceSettings {
    /// Defaults from the sync lessons: 10 min lookback, 5 min lag, 2,000-row
    /// pages, 200-record writes, a quarter of the daily limit. `clock` is
    /// the CRM's "now" (the daemon's tick instant, a test's simulated clock).
    pub fn new(
        login_url: impl Into<String>,
        auth: SalesforceAuth,
        token_store: Arc<dyn TokenStore>,
        clock: SharedClock,
    ) -> Self {
        SalesforceSettings {
            login_url: login_url.into(),
            instance_url: None,
            api_version: DEFAULT_API_VERSION.to_string(),
            auth,
            token_store,
            http: HttpSettings {
                user_agent: concat!("handoff-salesforce/", env!("CARGO_PKG_VERSION")).to_string(),
                ..HttpSettings::default()
            },
            daily_budget_share: 0.25,
            budget_recheck: Duration::from_secs(15 * 60),
            query_batch_size: 2000,
            write_batch_size: 200,
            lookback: DEFAULT_LOOKBACK,
            lag: DEFAULT_LAG,
            requests_per_sec: 5,
            retry: RetryPolicy::default(),
            required_lead_fields: Vec::new(),
            task_key_field: "Handoff_Key__c".to_string(),
            tracked_history: crate::map::TrackedHistory::default(),
            read_opportunities: false,
            clock,
        }
    }

    /// Reject settings that cannot work, naming the setting and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.daily_budget_share) || self.daily_budget_share.is_nan() {
            return Err(format!(
                "daily_budget_share is {}; set it to a share of the org's daily limit between 0 and 1",
                self.daily_budget_share
            ));
        }
        if !(200..=2000).contains(&self.query_batch_size) {
            return Err(format!("query_batch_size is {}; Salesforce accepts 200 to 2000", self.query_batch_size));
        }
        if !(1..=200).contains(&self.write_batch_size) {
            return Err(format!(
                "write_batch_size is {}; sObject Collections take 1 to 200 records",
                self.write_batch_size
            ));
        }
        if self.requests_per_sec == 0 {
            return Err("requests_per_sec is 0; set at least 1".to_string());
        }
        if url::Url::parse(&self.login_url).is_err() {
            return Err(format!("login_url {:?} is not a URL; use e.g. https://login.salesforce.com", self.login_url));
        }
        if self.task_key_field.is_empty() {
            return Err("task_key_field is empty; name the External ID field on Task (e.g. Handoff_Key__c)".to_string());
        }
        Ok(())
    }
}

impl std::fmt::Debug for SalesforceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceSettings")
            .field("login_url", &self.login_url)
            .field("instance_url", &self.instance_url)
            .field("api_version", &self.api_version)
            .field("auth", &self.auth)
            .field("http", &self.http)
            .field("daily_budget_share", &self.daily_budget_share)
            .field("query_batch_size", &self.query_batch_size)
            .field("write_batch_size", &self.write_batch_size)
            .field("lookback", &self.lookback)
            .field("lag", &self.lag)
            .field("required_lead_fields", &self.required_lead_fields)
            .field("task_key_field", &self.task_key_field)
            .finish_non_exhaustive()
    }
}
