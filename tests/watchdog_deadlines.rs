//! The deadlines of every CRM request sit well inside the unit's watchdog:
//! the service pings `WATCHDOG=1` every half of `WatchdogSec` only when the
//! loop committed something since the last ping, and the loop commits (or
//! records an error) after every connector operation. So no operation may
//! outlast half the watchdog, whatever the CRM does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use handoff_model::Secret;
use handoff_runtime::{HttpSettings, MemoryTokenStore, SystemClock, DEFAULT_OPERATION_DEADLINE};

/// `WatchdogSec=` of the shipped unit, in seconds.
fn watchdog() -> Duration {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/handoff@.service")).unwrap();
    let value = unit.lines().find_map(|l| l.trim().strip_prefix("WatchdogSec=")).expect("the unit sets WatchdogSec");
    let secs = match value.strip_suffix("min") {
        Some(m) => m.parse::<u64>().unwrap() * 60,
        None => value.trim_end_matches('s').parse::<u64>().unwrap(),
    };
    Duration::from_secs(secs)
}

#[test]
fn every_operation_ends_well_before_the_watchdog_misses_a_ping() {
    let ping_every = watchdog() / 2;
    let http = HttpSettings::default();
    assert!(http.attempt_deadline < http.call_deadline);
    assert!(http.response_timeout <= http.attempt_deadline);
    assert!(http.call_deadline <= DEFAULT_OPERATION_DEADLINE);
    assert!(
        DEFAULT_OPERATION_DEADLINE * 6 / 5 <= ping_every,
        "an operation may take {DEFAULT_OPERATION_DEADLINE:?}, the watchdog is pinged every {ping_every:?}"
    );
}

#[test]
fn both_connectors_are_built_with_these_deadlines() {
    let sf = handoff_salesforce::SalesforceSettings::new(
        "https://login.salesforce.com",
        handoff_salesforce::SalesforceAuth::ClientCredentials {
            client_id: "cid".into(),
            client_secret: Secret::new("client-secret-1"),
        },
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let hs = handoff_hubspot::HubspotSettings::new(
        "https://api.hubapi.com",
        handoff_hubspot::HubspotAuth::PrivateApp { token: Secret::new("pat-na1-000000") },
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    for http in [&sf.http, &hs.http] {
        assert_eq!(http.call_deadline, HttpSettings::default().call_deadline);
        assert_eq!(http.attempt_deadline, HttpSettings::default().attempt_deadline);
    }
    // A storm is waited out inside a call only while the call deadline allows.
    assert!(hs.retry_policy().max_rate_limit_wait <= hs.http.call_deadline);
    assert!(sf.retry.max_rate_limit_wait <= sf.http.call_deadline);
}
