//! Shared set-up for the integration tests: an in-process HubSpot sandbox,
//! connector settings pointing at it, and admin-route helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use handoff_hubspot::{connect, Clock, HubspotAuth, HubspotConnector, HubspotSettings, MemoryTokenStore};
use handoff_model::{Connector, CrmKind, Cursor, PullPage, Secret, Stream, Timestamp};
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::{ClockMode, RunningSandbox, SandboxOptions, SimClock};
use serde_json::Value;

/// The sandbox's simulated clock, so windows end at the CRM's "now".
pub struct SandboxClock(pub SimClock);

impl Clock for SandboxClock {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

pub async fn sandbox(leads: usize) -> RunningSandbox {
    let mut opts = SandboxOptions::new(CrmKind::Hubspot);
    opts.org = OrgConfig { leads, ..OrgConfig::default() };
    opts.clock = ClockMode::Ticking;
    handoff_sandbox::start(opts).await.expect("sandbox starts")
}

pub fn cred(sb: &RunningSandbox, key: &str) -> String {
    sb.credentials[key].as_str().unwrap_or_else(|| panic!("sandbox credential {key}")).to_string()
}

/// Settings for a private-app token; tests tweak the rest.
pub fn settings(sb: &RunningSandbox) -> HubspotSettings {
    let mut s = HubspotSettings::new(
        sb.base_url.clone(),
        HubspotAuth::PrivateApp { token: Secret::new(cred(sb, "access_token")) },
        Arc::new(MemoryTokenStore::default()),
    );
    s.clock = Arc::new(SandboxClock(sb.shared.clock.clone()));
    s.lag_secs = 5;
    s.lookback_secs = 600;
    s.search_per_second = 5;
    s.burst_per_10s = 100;
    s.create_task_key_property = true;
    s.max_attempts = 6;
    s
}

pub fn oauth_settings(sb: &RunningSandbox, store: Arc<MemoryTokenStore>) -> HubspotSettings {
    let mut s = settings(sb);
    s.auth = HubspotAuth::OAuth {
        client_id: cred(sb, "client_id"),
        client_secret: Secret::new(cred(sb, "client_secret")),
        refresh_token: Secret::new(cred(sb, "refresh_token")),
        token_url: None,
    };
    s.token_store = store;
    s
}

pub async fn connector(s: HubspotSettings) -> HubspotConnector {
    connect(s).await.expect("connector builds")
}

/// Pull `stream` until `has_more` is false; every page and the last cursor.
pub async fn drain(c: &HubspotConnector, stream: Stream, cursor: Option<Cursor>) -> (Vec<PullPage>, Option<Cursor>) {
    let mut cursor = cursor;
    let mut pages = Vec::new();
    for _ in 0..100_000 {
        let page = c.pull(stream, cursor.as_ref()).await.expect("pull succeeds");
        if let Some(next) = &page.cursor {
            cursor = Some(next.clone());
        }
        let more = page.has_more;
        pages.push(page);
        if !more {
            return (pages, cursor);
        }
    }
    panic!("the pull never finished");
}

pub async fn admin_get(sb: &RunningSandbox, path: &str) -> Value {
    let r = reqwest::get(format!("{}{path}", sb.base_url)).await.expect("admin GET");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("admin JSON")
}

pub async fn admin_post(sb: &RunningSandbox, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(format!("{}{path}", sb.base_url)).json(&body).send().await.expect("admin POST");
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {path}: {status} {v}");
    v
}

pub async fn admin_delete(sb: &RunningSandbox, path: &str) {
    let r = reqwest::Client::new().delete(format!("{}{path}", sb.base_url)).send().await.expect("admin DELETE");
    assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
}

/// The served requests from index `since` on.
pub async fn requests(sb: &RunningSandbox, since: usize) -> Vec<Value> {
    admin_get(sb, &format!("/__sandbox/requests?since={since}")).await.as_array().cloned().unwrap_or_default()
}

/// Counted API calls in `log`, by `METHOD path-prefix`.
pub fn counted_calls(log: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in log.iter().filter(|r| r["counted"] == true) {
        let path = r["path"].as_str().unwrap_or("");
        let kind = if path.ends_with("/search") {
            "search"
        } else if path.contains("/batch/") {
            "batch"
        } else {
            "other"
        };
        *out.entry(kind.to_string()).or_insert(0) += 1;
    }
    out
}

/// Live (not archived, not merged away) records of a type, by id, as the
/// sandbox holds them.
pub async fn live_records(sb: &RunningSandbox, object: &str) -> BTreeMap<String, Value> {
    let dump = admin_get(sb, &format!("/__sandbox/hubspot/objects/{object}")).await;
    dump["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["archived"] == false && r.get("mergedInto").is_none())
        .map(|r| (r["id"].as_str().unwrap_or_default().to_string(), r.clone()))
        .collect()
}

pub fn print_calls(scenario: &str, used: usize, lower_bound: usize) {
    println!("{scenario}: {used} API calls (lower bound {lower_bound})");
}

pub async fn admin_patch(sb: &RunningSandbox, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new().patch(format!("{}{path}", sb.base_url)).json(&body).send().await.expect("admin PATCH");
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "PATCH {path}: {status} {v}");
    v
}

/// Move the sandbox clock forward.
pub async fn advance(sb: &RunningSandbox, secs: i64) {
    admin_post(sb, "/__sandbox/clock", serde_json::json!({ "advance_secs": secs })).await;
}
