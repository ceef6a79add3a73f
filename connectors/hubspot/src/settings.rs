//! What the daemon hands [`crate::connect`]: a plain struct built from the
//! config file, validated once before any request is made.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use handoff_model::{Secret, Timestamp};

use crate::error::HubspotError;

/// How the connector authenticates.
#[derive(Debug, Clone)]
pub enum HubspotAuth {
    /// A private-app access token (`pat-na1-…`); it does not expire.
    PrivateApp { token: Secret },
    /// A public app's OAuth refresh token, exchanged for 30-minute access
    /// tokens at `token_url` (default `{base_url}/oauth/v1/token`).
    OAuth {
        client_id: String,
        client_secret: Secret,
        /// Used only when the [`TokenStore`] holds no newer one.
        refresh_token: Secret,
        token_url: Option<String>,
    },
}

/// Where a rotated refresh token is kept so the next start can use it.
/// `save` must be atomic (the old token stays valid until the new one is
/// durably stored): losing the only valid refresh token locks handoff out.
pub trait TokenStore: Send + Sync {
    /// The refresh token saved last, if any.
    fn load(&self) -> Result<Option<Secret>, String>;
    fn save(&self, refresh_token: &Secret) -> Result<(), String>;
}

/// A [`TokenStore`] in memory, for tests and one-shot commands.
#[derive(Default)]
pub struct MemoryTokenStore {
    token: Mutex<Option<Secret>>,
    saves: Mutex<u32>,
}

impl MemoryTokenStore {
    /// How many times a token was saved.
    pub fn saves(&self) -> u32 {
        *self.saves.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<Secret>, String> {
        Ok(self.token.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn save(&self, refresh_token: &Secret) -> Result<(), String> {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(refresh_token.clone());
        *self.saves.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Ok(())
    }
}

/// Where "now" comes from. HubSpot stamps records with its own clock, so
/// windows end at the CRM's now; the daemon uses [`SystemClock`], tests the
/// sandbox's simulated clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// Everything the HubSpot connector needs.
#[derive(Clone)]
pub struct HubspotSettings {
    /// `https://api.hubapi.com`, or the sandbox's base URL.
    pub base_url: String,
    pub auth: HubspotAuth,
    pub token_store: Arc<dyn TokenStore>,
    pub clock: Arc<dyn Clock>,
    /// Extra CA certificate (PEM) to trust: the sandbox's `--tls` CA or a
    /// corporate TLS proxy.
    pub ca_file: Option<PathBuf>,
    /// Share (0–1] of the portal's daily API limit handoff may spend.
    pub daily_budget_share: f64,
    /// The portal's daily limit when HubSpot does not report one (OAuth apps
    /// get no `X-HubSpot-RateLimit-Daily` header). `None`: no daily budget.
    pub daily_limit_fallback: Option<u64>,
    /// Results per search page (HubSpot's maximum is 200).
    pub search_page_size: u32,
    /// Records per batch write (HubSpot's maximum is 100).
    pub write_batch_size: u32,
    /// Windows end this long before now: HubSpot's search index shows
    /// writes a few seconds to minutes late.
    pub lag_secs: u64,
    /// Each incremental window starts this long before the previous one
    /// ended, to pick up records indexed later than `lag_secs` allowed for.
    /// Records already delivered in the overlap are not delivered again.
    pub lookback_secs: u64,
    /// How often the archived-records sweep runs (it cannot be filtered by
    /// time, so it lists every archived record).
    pub archived_sweep_secs: u64,
    /// Where a backfill starts. `None`: the beginning of time.
    pub backfill_since: Option<Timestamp>,
    pub request_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Attempts per request before giving up (1 = no retry).
    pub max_attempts: u32,
    /// Local pacing for the 10-second burst bucket until HubSpot reports its
    /// real size in `X-HubSpot-RateLimit-Max`.
    pub burst_per_10s: u32,
    /// Local pacing for search, which has its own per-second limit.
    pub search_per_second: u32,
    /// Owner id → manager owner id. HubSpot has no manager field, so the
    /// policy's escalation chain comes from here.
    pub managers: BTreeMap<String, String>,
    /// Owner id → IANA zone (HubSpot owners carry none).
    pub owner_time_zones: BTreeMap<String, String>,
    /// Contact properties to read besides the ones handoff always reads.
    pub extra_contact_properties: Vec<String>,
    /// Contact properties whose history fills [`Lead::field_history`]
    /// (what the policy qualifies leads by, the reason code), read with
    /// the owner and status history.
    ///
    /// [`Lead::field_history`]: handoff_model::Lead::field_history
    pub history_properties: Vec<String>,
    /// The operator agrees that handoff may create the `handoff_key` task
    /// property when it is missing.
    pub create_task_key_property: bool,
}

impl std::fmt::Debug for HubspotSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubspotSettings")
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("ca_file", &self.ca_file)
            .field("daily_budget_share", &self.daily_budget_share)
            .field("search_page_size", &self.search_page_size)
            .field("write_batch_size", &self.write_batch_size)
            .field("lag_secs", &self.lag_secs)
            .field("lookback_secs", &self.lookback_secs)
            .finish_non_exhaustive()
    }
}

pub const MAX_SEARCH_PAGE: u32 = 200;
pub const MAX_BATCH: u32 = 100;

impl HubspotSettings {
    /// Documented defaults for everything but where and who.
    pub fn new(base_url: impl Into<String>, auth: HubspotAuth, token_store: Arc<dyn TokenStore>) -> Self {
        HubspotSettings {
            base_url: base_url.into(),
            auth,
            token_store,
            clock: Arc::new(SystemClock),
            ca_file: None,
            daily_budget_share: 0.5,
            daily_limit_fallback: None,
            search_page_size: MAX_SEARCH_PAGE,
            write_batch_size: MAX_BATCH,
            lag_secs: 120,
            lookback_secs: 3600,
            archived_sweep_secs: 3600,
            backfill_since: None,
            request_timeout_secs: 30,
            connect_timeout_secs: 10,
            max_attempts: 6,
            burst_per_10s: 100,
            // The older documented figure; the current one is 5.
            search_per_second: 4,
            managers: BTreeMap::new(),
            owner_time_zones: BTreeMap::new(),
            extra_contact_properties: Vec::new(),
            history_properties: Vec::new(),
            create_task_key_property: false,
        }
    }

    /// Reject settings that cannot work, naming the field and the fix.
    pub fn validate(&self) -> Result<(), HubspotError> {
        let bad = |field, message: String| Err(HubspotError::Settings { field, message });
        match url::Url::parse(&self.base_url) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
            _ => {
                return bad(
                    "base_url",
                    format!("{:?} is not an http(s) URL; use https://api.hubapi.com", self.base_url),
                )
            }
        }
        if !(self.daily_budget_share > 0.0 && self.daily_budget_share <= 1.0) {
            return bad(
                "daily_budget_share",
                format!("{} is not in (0, 1]; 0.5 lets handoff use half the daily limit", self.daily_budget_share),
            );
        }
        if self.search_page_size == 0 || self.search_page_size > MAX_SEARCH_PAGE {
            return bad("search_page_size", format!("{} is not in 1..={MAX_SEARCH_PAGE}", self.search_page_size));
        }
        if self.write_batch_size == 0 || self.write_batch_size > MAX_BATCH {
            return bad("write_batch_size", format!("{} is not in 1..={MAX_BATCH}", self.write_batch_size));
        }
        if self.max_attempts == 0 {
            return bad("max_attempts", "must be at least 1".into());
        }
        if self.burst_per_10s < 2 || self.search_per_second == 0 {
            return bad(
                "burst_per_10s",
                "pacing rates must be positive (burst_per_10s >= 2, search_per_second >= 1)".into(),
            );
        }
        if self.request_timeout_secs == 0 || self.connect_timeout_secs == 0 {
            return bad("request_timeout_secs", "timeouts must be at least one second".into());
        }
        match &self.auth {
            HubspotAuth::PrivateApp { token } if token.is_empty() => bad(
                "auth.token",
                "the private-app token is empty; copy it from HubSpot → Settings → Private apps".into(),
            ),
            HubspotAuth::OAuth { client_id, client_secret, .. } if client_id.is_empty() || client_secret.is_empty() => {
                bad("auth.client_id", "OAuth needs the app's client id and client secret".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HubspotSettings {
        HubspotSettings::new(
            "https://api.hubapi.com",
            HubspotAuth::PrivateApp { token: Secret::new("pat-na1-x") },
            Arc::new(MemoryTokenStore::default()),
        )
    }

    #[test]
    fn defaults_validate_and_bad_values_name_their_field() {
        assert!(settings().validate().is_ok());
        let mut s = settings();
        s.search_page_size = 201;
        assert!(s.validate().unwrap_err().to_string().contains("search_page_size"));
        let mut s = settings();
        s.daily_budget_share = 0.0;
        assert!(s.validate().unwrap_err().to_string().contains("daily_budget_share"));
        let mut s = settings();
        s.base_url = "api.hubapi.com".into();
        assert!(s.validate().unwrap_err().to_string().contains("base_url"));
    }

    #[test]
    fn debug_never_prints_the_token() {
        let s = settings();
        assert!(!format!("{s:?}").contains("pat-na1-x"));
    }
}
