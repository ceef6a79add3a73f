//! The HubSpot emulator at scale: how long generating, materialising and
//! starting take for orgs of 10,000, 100,000 and 1,000,000 leads, how much
//! memory the materialised portal holds, and what typical requests cost
//! against it. Prints wall time, this process's CPU time and resident
//! memory; asserts nothing (timings and memory on a shared machine are not
//! test material).
//!
//! Run: `cargo bench -p handoff-sandbox --bench hubspot_scale`
//! (`HUBSPOT_BENCH_LEADS=10000,100000` picks the sizes).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails by panicking

use std::time::{Duration, Instant};

use handoff_model::CrmKind;
use handoff_sandbox::hubspot::state::HubState;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::server::{start, ClockMode, SandboxOptions};
use serde_json::{json, Value};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU time this process has used (user + system), from `/proc/self/stat`
/// (clock ticks, assumed 100 per second); `None` without procfs.
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

fn cpu_since(start: Option<f64>) -> String {
    match (start, cpu_ms()) {
        (Some(a), Some(b)) => format!("cpu {:>8.0} ms", b - a),
        _ => "cpu        ? ms".to_string(),
    }
}

/// This process's resident memory in MiB (`VmRSS`), from `/proc/self/status`.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn sizes() -> Vec<usize> {
    std::env::var("HUBSPOT_BENCH_LEADS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

async fn timed(
    http: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> String {
    let t = Instant::now();
    let mut rb = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.expect("request");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("body").len();
    format!("{status} {bytes:>7} B {:>8.1} ms", ms(t.elapsed()))
}

async fn serve(leads: usize) -> anyhow::Result<()> {
    let base_rss = rss_mib();
    let mut opts = SandboxOptions::new(CrmKind::Hubspot);
    opts.org = OrgConfig { leads, ..OrgConfig::default() };
    opts.clock = ClockMode::Frozen;
    let c0 = cpu_ms();
    let t0 = Instant::now();
    let sb = start(opts).await?;
    println!(
        "  {leads:>8} leads: start (generate + materialise + listen) {:>9.1} ms, {}, RSS +{:.0} MiB",
        ms(t0.elapsed()),
        cpu_since(c0),
        rss_mib() - base_rss
    );
    let http = reqwest::Client::new();
    let token = sb.credentials["access_token"].as_str().unwrap_or_default().to_string();
    // A portal with limits that do not pace a bench.
    http.post(format!("{}/hubspot/limits", sb.admin_url))
        .json(&json!({"private_app_burst_per_10s": 1_000_000, "search_per_second": 1_000_000, "private_app_daily": 100_000_000}))
        .send()
        .await?;
    let base = sb.base_url.clone();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let probes: Vec<(&str, reqwest::Method, String, Option<Value>)> = vec![
        (
            "contacts page of 100",
            get.clone(),
            format!("{base}/crm/v3/objects/contacts?limit=100&properties=email,hubspot_owner_id"),
            None,
        ),
        (
            "contacts + history (50)",
            get.clone(),
            format!("{base}/crm/v3/objects/contacts?limit=100&propertiesWithHistory=hubspot_owner_id,hs_lead_status"),
            None,
        ),
        (
            "leads page of 100",
            get.clone(),
            format!("{base}/crm/v3/objects/leads?limit=100&properties=hs_pipeline_stage"),
            None,
        ),
        (
            "search window, 200",
            post.clone(),
            format!("{base}/crm/v3/objects/contacts/search"),
            Some(
                json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}, {"propertyName": "hs_object_id", "operator": "GT", "value": "0"}]}], "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}], "limit": 200}),
            ),
        ),
        (
            "search leads by stage",
            post.clone(),
            format!("{base}/crm/v3/objects/leads/search"),
            Some(
                json!({"filterGroups": [{"filters": [{"propertyName": "hs_pipeline_stage", "operator": "EQ", "value": "attempting-stage-id"}]}], "limit": 100}),
            ),
        ),
        (
            "v4 calls of 1,000 contacts",
            post.clone(),
            format!("{base}/crm/v4/associations/contacts/calls/batch/read"),
            Some(
                json!({"inputs": (0..1_000u64).map(|i| json!({"id": (1_001 + 2 * i).to_string()})).collect::<Vec<_>>()}),
            ),
        ),
    ];
    for (label, method, url, body) in probes {
        let first = timed(&http, &token, method.clone(), url.clone(), body.clone()).await;
        let then = timed(&http, &token, method, url, body).await;
        println!("      {label:<28} first {first}   then {then}");
    }
    println!("      RSS serving: +{:.0} MiB", rss_mib() - base_rss);
    sb.stop().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let sizes = sizes();
    println!("generate + materialise (pure: the whole timeline into HubSpot records, no listener):");
    for &leads in &sizes {
        let base_rss = rss_mib();
        let c0 = cpu_ms();
        let t0 = Instant::now();
        let org = handoff_sandbox::generate(&OrgConfig { leads, ..OrgConfig::default() });
        let generated = t0.elapsed();
        let generated_cpu = cpu_since(c0);
        let org_rss = rss_mib() - base_rss;
        let c1 = cpu_ms();
        let t1 = Instant::now();
        let mut st = HubState::new();
        st.materialise(&org, org.config.end_at());
        let took = t1.elapsed();
        let took_cpu = cpu_since(c1);
        let portal_rss = rss_mib() - base_rss - org_rss;
        let counts: Vec<String> = st.stores.iter().map(|(t, s)| format!("{t} {}", s.len())).collect();
        println!(
            "  {leads:>8} leads: generate {:>9.1} ms, {generated_cpu}, RSS +{org_rss:.0} MiB ({} events)",
            ms(generated),
            org.events.len()
        );
        println!(
            "                   materialise {:>6.1} ms, {took_cpu}, RSS +{portal_rss:.0} MiB ({})",
            ms(took),
            counts.join(", ")
        );
        drop(st);
        drop(org);
    }
    let rt = tokio::runtime::Runtime::new()?;
    println!("start + serve:");
    for &leads in &sizes {
        rt.block_on(serve(leads))?;
    }
    Ok(())
}
