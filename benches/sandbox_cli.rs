//! How fast `handoff sandbox` is ready, measured the way a user meets it:
//! the binary is spawned, and the clock stops when its JSON line (base URL
//! and credentials) arrives on stdout — by then the listener accepts. Then
//! the org is read end to end through the public API (Salesforce: one SOQL
//! query followed across every `nextRecordsUrl`; HubSpot: the contacts list
//! followed across every `after`), to show a 100,000-lead org is served and
//! not just generated. Prints numbers; asserts nothing (timings on a shared
//! machine are not test material).
//!
//! `cargo bench --bench sandbox_cli` (`HANDOFF_BENCH_RUNS` sets how many
//! starts are timed per size; default 5).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Started {
    child: Child,
    line: Value,
    ready_after: Duration,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(crm: &str, leads: usize) -> Started {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["sandbox", "--crm", crm, "--leads", &leads.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn handoff sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("read the JSON line");
    let ready_after = t0.elapsed();
    let line: Value = serde_json::from_str(&first).expect("the first line is JSON");
    Started { child, line, ready_after }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// One page, which must be a success: a refused page would end the read
/// early and make the count meaningless.
async fn get(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let resp = http.get(url).bearer_auth(token).send().await.expect("request");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert!(status.is_success(), "{url}: {status} {body}");
    serde_json::from_str(&body).expect("a JSON page")
}

/// Read every lead through the API; returns (records, requests).
async fn read_all(crm: &str, line: &Value) -> (usize, usize) {
    let http = reqwest::Client::new();
    let base = text(line, "base_url");
    let token = text(line, "access_token");
    let (mut records, mut requests) = (0usize, 0usize);
    match crm {
        "salesforce" => {
            let version = text(line, "api_version");
            let mut url = format!("{base}/services/data/v{version}/query?q=SELECT+Id,Status,OwnerId+FROM+Lead");
            loop {
                let page = get(&http, &url, &token).await;
                requests += 1;
                records += page["records"].as_array().map_or(0, Vec::len);
                match page.get("nextRecordsUrl").and_then(Value::as_str) {
                    Some(next) => url = format!("{base}{next}"),
                    None => break,
                }
            }
        }
        _ => {
            // A private app may send 190 requests per 10 s; this reads the
            // emulator's serving speed, not HubSpot's limit, so lift it.
            let limits = serde_json::json!({"private_app_burst_per_10s": 1_000_000, "private_app_daily": 10_000_000});
            let admin = text(line, "admin_url");
            let r = http.post(format!("{admin}/hubspot/limits")).json(&limits).send().await.expect("limits");
            assert!(r.status().is_success(), "raising the portal's limits: {}", r.status());
            let mut after: Option<String> = None;
            loop {
                let mut url =
                    format!("{base}/crm/v3/objects/contacts?limit=100&properties=lifecyclestage,hubspot_owner_id");
                if let Some(a) = &after {
                    url.push_str("&after=");
                    url.push_str(a);
                }
                let page = get(&http, &url, &token).await;
                requests += 1;
                records += page["results"].as_array().map_or(0, Vec::len);
                match page.pointer("/paging/next/after").and_then(Value::as_str) {
                    Some(a) => after = Some(a.to_string()),
                    None => break,
                }
            }
        }
    }
    (records, requests)
}

fn main() {
    let runs: usize = std::env::var("HANDOFF_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("handoff sandbox: spawn → JSON line on stdout (listener accepting), {runs} starts per size");
    for crm in ["salesforce", "hubspot"] {
        for leads in [10_000usize, 100_000] {
            let mut took: Vec<Duration> = Vec::new();
            let mut last = None;
            for _ in 0..runs {
                let s = start(crm, leads);
                took.push(s.ready_after);
                last = Some(s);
            }
            took.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let s = last.expect("at least one run");
            let t1 = Instant::now();
            let (records, requests) = rt.block_on(read_all(crm, &s.line));
            let read = t1.elapsed();
            println!(
                "  {crm:<10} {leads:>7} leads: ready min {:>7.0} ms, median {:>7.0} ms, max {:>7.0} ms; \
                 read {records} leads in {requests} requests, {:.1} s",
                ms(took[0]),
                ms(took[took.len() / 2]),
                ms(took[took.len() - 1]),
                read.as_secs_f64(),
            );
        }
    }
}
