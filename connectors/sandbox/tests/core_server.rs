//! The sandbox server: loopback-only binding, the startup line, TLS with the
//! generated CA, and the generic admin API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::SocketAddr;

use chrono::{DateTime, Duration, Utc};
use handoff_model::CrmKind;
use handoff_sandbox::org::{OrgConfig, TimelineCursor};
use handoff_sandbox::server::{start, ClockMode, SandboxError, SandboxOptions};
use serde_json::{json, Value};

fn small(crm: CrmKind) -> SandboxOptions {
    let mut opts = SandboxOptions::new(crm);
    opts.org = OrgConfig {
        seed: 4,
        leads: 200,
        days: 10,
        start_at: "2026-03-02T00:00:00Z".parse().unwrap(),
        activities_per_lead: None,
    };
    opts.clock = ClockMode::Frozen;
    opts
}

#[tokio::test]
async fn refuses_non_loopback_addresses() {
    for addr in ["0.0.0.0:0", "192.168.1.10:8080", "[::]:0"] {
        let mut opts = small(CrmKind::Salesforce);
        opts.listen = addr.parse::<SocketAddr>().unwrap();
        match start(opts).await {
            Err(SandboxError::NotLoopback { addr: got }) => {
                assert_eq!(got.to_string(), addr.parse::<SocketAddr>().unwrap().to_string());
                let msg = SandboxError::NotLoopback { addr: got }.to_string();
                assert!(msg.contains("loopback") && msg.contains("127.0.0.1"), "{msg}");
            }
            Err(other) => panic!("{addr}: wrong error {other}"),
            Ok(_) => panic!("{addr}: a non-loopback listener was accepted"),
        }
    }
}

#[tokio::test]
async fn startup_line_names_the_urls_and_credentials() {
    for crm in [CrmKind::Salesforce, CrmKind::Hubspot] {
        let sb = start(small(crm)).await.unwrap();
        let line = sb.startup_line();
        assert_eq!(line["crm"], crm.as_str());
        let base = line["base_url"].as_str().unwrap();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        assert_eq!(line["admin_url"], format!("{base}/__sandbox"));
        assert!(line.get("ca_cert").is_none(), "plain HTTP has no CA: {line}");
        if let Value::Object(creds) = &sb.credentials {
            for (k, v) in creds {
                assert_eq!(&line[k], v, "credential {k} missing from the startup line");
            }
        }
        // The line is one line of JSON.
        assert!(!line.to_string().contains('\n'));
        sb.stop().await;
    }
}

#[tokio::test]
async fn tls_serves_with_the_printed_ca_and_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small(CrmKind::Salesforce);
    opts.tls = true;
    opts.work_dir = Some(dir.path().to_path_buf());
    let sb = start(opts).await.unwrap();
    let line = sb.startup_line();
    let base = line["base_url"].as_str().unwrap();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let ca_path = line["ca_cert"].as_str().unwrap();
    assert!(ca_path.starts_with(dir.path().to_str().unwrap()));
    let pem = std::fs::read(ca_path).unwrap();

    let trusting =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).build().unwrap();
    let resp = trusting.get(format!("{base}/__sandbox/clock")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["now"].is_string());

    // Without the CA the handshake must fail: the certificate is not from a public root.
    let plain = reqwest::Client::new();
    assert!(plain.get(format!("{base}/__sandbox/clock")).send().await.is_err());
    sb.stop().await;
}

#[tokio::test]
async fn admin_clock_advances_and_the_timeline_unfolds() {
    let mut opts = small(CrmKind::Hubspot);
    opts.replay = true;
    let sb = start(opts).await.unwrap();
    let http = reqwest::Client::new();
    let clock_url = format!("{}/clock", sb.admin_url);

    let before: Value = http.get(&clock_url).send().await.unwrap().json().await.unwrap();
    let t0: DateTime<Utc> = before["now"].as_str().unwrap().parse().unwrap();
    assert_eq!(t0, sb.shared.org.config.start_at, "replay starts at the beginning");
    let mut cursor = TimelineCursor::default();
    assert!(cursor.due(&sb.shared.org, sb.shared.clock.now()).is_empty());

    let after: Value =
        http.post(&clock_url).json(&json!({ "advance_secs": 3 * 86_400 })).send().await.unwrap().json().await.unwrap();
    let t1: DateTime<Utc> = after["now"].as_str().unwrap().parse().unwrap();
    assert_eq!(t1 - t0, Duration::days(3));
    let due = cursor.due(&sb.shared.org, sb.shared.clock.now());
    assert!(!due.is_empty(), "three days of events became due");
    assert!(due.iter().all(|e| e.at <= t1));

    let to = t1 + Duration::hours(5);
    let jumped: Value = http.post(&clock_url).json(&json!({ "to": to })).send().await.unwrap().json().await.unwrap();
    assert_eq!(jumped["now"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), to);

    // The clock never goes back, and says why.
    let back = http.post(&clock_url).json(&json!({ "to": t0 })).send().await.unwrap();
    assert_eq!(back.status(), 400);
    let err: Value = back.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("back"), "{err}");
    let junk = http.post(&clock_url).body("{\"advance\": 5}").send().await.unwrap();
    assert_eq!(junk.status(), 400);
    sb.stop().await;
}

#[tokio::test]
async fn non_replay_starts_at_the_end_with_everything_due() {
    let sb = start(small(CrmKind::Salesforce)).await.unwrap();
    assert_eq!(sb.shared.clock.now(), sb.shared.org.config.end_at());
    let mut cursor = TimelineCursor::default();
    assert_eq!(cursor.due(&sb.shared.org, sb.shared.clock.now()).len(), sb.shared.org.events.len());
    sb.stop().await;
}

#[tokio::test]
async fn admin_faults_requests_and_org_routes() {
    let sb = start(small(CrmKind::Salesforce)).await.unwrap();
    let http = reqwest::Client::new();
    let faults = format!("{}/faults", sb.admin_url);

    let armed =
        http.post(&faults).json(&json!({ "kind": "server_errors", "count": 2, "status": 503 })).send().await.unwrap();
    assert_eq!(armed.status(), 201);
    let list: Value = http.get(&faults).send().await.unwrap().json().await.unwrap();
    assert_eq!(list, json!([{ "kind": "server_errors", "count": 2, "status": 503 }]));
    assert_eq!(sb.shared.faults.list().len(), 1);
    let bad = http.post(&faults).json(&json!({ "kind": "meteor_strike" })).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(http.delete(&faults).send().await.unwrap().status(), 204);
    assert!(sb.shared.faults.list().is_empty());

    let now = sb.shared.clock.now();
    for path in ["/a", "/b", "/c"] {
        sb.shared.log.push(handoff_sandbox::LoggedRequest {
            at: now,
            method: "GET".into(),
            path: path.into(),
            query: None,
            status: 200,
            counted: true,
            body: None,
        });
    }
    let requests = format!("{}/requests", sb.admin_url);
    let tail: Value = http.get(format!("{requests}?since=1")).send().await.unwrap().json().await.unwrap();
    let paths: Vec<&str> = tail.as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/b", "/c"]);
    assert_eq!(http.delete(&requests).send().await.unwrap().status(), 204);
    assert!(sb.shared.log.is_empty());

    let org: Value = http.get(format!("{}/org", sb.admin_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(org["leads"].as_array().unwrap().len(), 200);
    assert_eq!(org["config"]["seed"], 4);
    sb.stop().await;
}

#[tokio::test]
async fn advancing_the_clock_changes_what_the_crm_api_returns() {
    let mut opts = small(CrmKind::Hubspot);
    opts.replay = true;
    let sb = start(opts).await.unwrap();
    let http = reqwest::Client::new();
    let token = sb.credentials["access_token"].as_str().unwrap().to_string();
    let contacts = format!("{}/crm/v3/objects/contacts?limit=100", sb.base_url);
    let count = |body: Value| body["results"].as_array().map(Vec::len).unwrap();

    let first: Value = http.get(&contacts).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(count(first), 0, "nothing has arrived at the start of the timeline");

    http.post(format!("{}/clock", sb.admin_url)).json(&json!({ "advance_secs": 10 * 86_400 })).send().await.unwrap();
    let later: Value = http.get(&contacts).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert!(count(later) > 0, "ten days of leads should be visible");

    // Both API requests were recorded; the admin call was not.
    let log = sb.shared.log.snapshot();
    let api: Vec<_> = log.iter().filter(|r| r.path == "/crm/v3/objects/contacts").collect();
    assert_eq!(api.len(), 2, "{log:?}");
    assert!(log.iter().all(|r| !r.path.starts_with("/__sandbox/clock")));
    sb.stop().await;
}
