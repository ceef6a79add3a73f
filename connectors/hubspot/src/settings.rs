//! What the daemon hands [`crate::connect`]: a plain struct built from the
//! config file, validated once before any request is made.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use handoff_model::{RetryPolicy, Secret, Timestamp};
pub use handoff_runtime::{Clock, HttpSettings, MemoryTokenStore, SharedClock, SystemClock, TokenStore};

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

/// Which HubSpot record is the SLA's lead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeadObject {
    /// The contact (every portal): status in `hs_lead_status`, the SLA
    /// fields written onto the contact.
    #[default]
    Contacts,
    /// The Leads object (`0-136`, Sales Hub Professional and Enterprise):
    /// status is the lead's pipeline stage, the owner is the lead's, the
    /// properties the lead does not have (fit, intent, score) are read from
    /// its primary contact, and the SLA fields and tasks go onto the lead.
    Leads,
}

impl LeadObject {
    /// The object type's path name.
    pub fn object_type(self) -> &'static str {
        match self {
            LeadObject::Contacts => "contacts",
            LeadObject::Leads => "leads",
        }
    }
}

/// Everything the HubSpot connector needs.
#[derive(Clone)]
pub struct HubspotSettings {
    /// `https://api.hubapi.com`, or the sandbox's base URL.
    pub base_url: String,
    pub auth: HubspotAuth,
    pub token_store: Arc<dyn TokenStore>,
    /// The CRM's "now": windows end at it, tokens expire on it. Given when
    /// the settings are made, so no connector reads a clock the daemon does
    /// not share.
    pub clock: SharedClock,
    /// Timeouts, deadlines, the answer size cap and an extra trusted CA
    /// (PEM): the sandbox's `--tls` CA or a corporate TLS proxy.
    pub http: HttpSettings,
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
    /// Which record is the SLA's lead.
    pub lead_object: LeadObject,
    /// Read the deal stream and the engagements logged on deals (the
    /// policy has the AE's commitments). Off, the opportunity stream
    /// answers an empty, finished page without a call.
    pub read_opportunities: bool,
}

impl std::fmt::Debug for HubspotSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubspotSettings")
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("http", &self.http)
            .field("daily_budget_share", &self.daily_budget_share)
            .field("search_page_size", &self.search_page_size)
            .field("write_batch_size", &self.write_batch_size)
            .field("lag_secs", &self.lag_secs)
            .field("lookback_secs", &self.lookback_secs)
            .field("lead_object", &self.lead_object)
            .finish_non_exhaustive()
    }
}

impl HubspotSettings {
    /// Retries: full jitter from 200 ms, as HubSpot's own SDK waits; a
    /// storm is waited out inside the call while the call deadline allows.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_rate_limit_wait: self.http.call_deadline,
        }
    }
}

pub const MAX_SEARCH_PAGE: u32 = 200;
/// HubSpot's search index shows writes seconds to minutes late: windows end
/// two minutes before now by default.
pub const DEFAULT_LAG_SECS: u64 = 120;
/// Each window re-reads the hour before the last one by default, for
/// records indexed later than the lag allowed for.
pub const DEFAULT_LOOKBACK_SECS: u64 = 3600;
pub const MAX_BATCH: u32 = 100;

impl HubspotSettings {
    /// Documented defaults for everything but where, who and when (`clock`:
    /// the CRM's "now").
    pub fn new(
        base_url: impl Into<String>,
        auth: HubspotAuth,
        token_store: Arc<dyn TokenStore>,
        clock: SharedClock,
    ) -> Self {
        HubspotSettings {
            base_url: base_url.into(),
            auth,
            token_store,
            clock,
            http: HttpSettings::default(),
            daily_budget_share: 0.5,
            daily_limit_fallback: None,
            search_page_size: MAX_SEARCH_PAGE,
            write_batch_size: MAX_BATCH,
            lag_secs: DEFAULT_LAG_SECS,
            lookback_secs: DEFAULT_LOOKBACK_SECS,
            archived_sweep_secs: 3600,
            backfill_since: None,
            max_attempts: 6,
            burst_per_10s: 100,
            // The older documented figure; the current one is 5.
            search_per_second: 4,
            managers: BTreeMap::new(),
            owner_time_zones: BTreeMap::new(),
            extra_contact_properties: Vec::new(),
            history_properties: Vec::new(),
            create_task_key_property: false,
            lead_object: LeadObject::Contacts,
            read_opportunities: false,
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
        if let Err(e) = self.http.validate() {
            return bad("http", e.to_string());
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
            Arc::new(SystemClock),
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
