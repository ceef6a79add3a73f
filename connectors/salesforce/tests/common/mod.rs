//! What the connector tests share: settings for the in-process sandbox.

use std::sync::Arc;
use std::time::Duration;

use handoff_model::Secret;
use handoff_salesforce::{MemoryTokenStore, SalesforceAuth, SalesforceSettings};
use handoff_sandbox::server::RunningSandbox;

/// Settings that log in to `sb` with its JWT credentials, on its clock,
/// with its limits out of the way (a test measures something else).
pub fn sandbox_settings(sb: &RunningSandbox) -> SalesforceSettings {
    let c = &sb.credentials;
    let key_path = c["jwt_private_key_path"].as_str().expect("key path");
    let auth = SalesforceAuth::JwtBearer {
        client_id: c["client_id"].as_str().expect("client id").to_string(),
        username: c["username"].as_str().expect("username").to_string(),
        private_key_pem: Secret::new(std::fs::read_to_string(key_path).expect("key")),
        audience: c["jwt_audience"].as_str().map(str::to_string),
    };
    let clock = sb.shared.clock.clone();
    let mut s = SalesforceSettings::new(
        sb.base_url.clone(),
        auth,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(move || clock.now()),
    );
    s.requests_per_sec = 1000;
    s.daily_budget_share = 1.0;
    s.retry.base_delay = Duration::from_millis(10);
    s
}
