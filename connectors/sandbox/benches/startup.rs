//! Startup and serving numbers for the sandbox: how long generating an org
//! takes, how long `start` takes until the listener accepts, and request
//! latency against a 100,000-lead org. Prints wall and CPU time (on a
//! shared machine the second is the one to compare); asserts nothing
//! (timings on a shared machine are not test material).
//!
//! Run: `cargo bench -p handoff-sandbox --bench startup`
//!
//! Scale: `HANDOFF_BENCH_SCALE=1000000 cargo bench -p handoff-sandbox --bench startup`
//! measures only a Salesforce org of that many leads with about 5
//! activities each: generation, materialisation and `start` until the
//! listener accepts, with the process's resident memory after each step and
//! its peak (`VmRSS`, `VmHWM`). One size per run, so the peak is that org's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::server::{start, ClockMode, SandboxOptions};

#[path = "support/memory.rs"]
mod memory;
use memory::rss_mib;

fn org(leads: usize) -> OrgConfig {
    OrgConfig { leads, ..OrgConfig::default() }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU time this process has used (all threads, user + system), from
/// `/proc/self/stat` (Linux; clock ticks, assumed 100 per second). On a
/// shared machine wall time mostly measures the neighbours; CPU time
/// measures the work. `None` where there is no procfs.
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
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

async fn measure_start(crm: CrmKind, leads: usize) -> anyhow::Result<()> {
    let mut opts = SandboxOptions::new(crm);
    opts.org = org(leads);
    opts.clock = ClockMode::Frozen;
    let c0 = cpu_ms();
    let t0 = Instant::now();
    let sb = start(opts).await?;
    let started = t0.elapsed();
    let started_cpu = cpu_since(c0);

    let http = reqwest::Client::new();
    let probes = probe_paths(crm);
    let mut lines = Vec::new();
    for (label, path) in probes {
        let url = format!("{}{}", sb.base_url, path);
        // First request may materialise the whole timeline.
        let t1 = Instant::now();
        let status = http.get(&url).bearer_auth(token(&sb.credentials)).send().await?.status();
        let first = t1.elapsed();
        let n = 50;
        let t2 = Instant::now();
        for _ in 0..n {
            http.get(&url).bearer_auth(token(&sb.credentials)).send().await?;
        }
        let each = t2.elapsed() / n;
        lines.push(format!(
            "    {label:<24} status {status}  first {:>8.1} ms  then {:>6.2} ms/request",
            ms(first),
            ms(each)
        ));
    }
    println!(
        "{:<10} {leads:>7} leads: start {:>8.1} ms, {started_cpu} ({} events)",
        crm.as_str(),
        ms(started),
        sb.shared.org.events.len()
    );
    for l in lines {
        println!("{l}");
    }
    sb.stop().await;
    Ok(())
}

fn token(creds: &serde_json::Value) -> String {
    creds.get("access_token").and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

fn probe_paths(crm: CrmKind) -> Vec<(&'static str, &'static str)> {
    let mut paths = vec![("admin clock", "/__sandbox/clock")];
    match crm {
        CrmKind::Salesforce => paths.push((
            "SOQL lead page",
            "/services/data/v59.0/query?q=SELECT+Id,Status,OwnerId+FROM+Lead+ORDER+BY+SystemModstamp+LIMIT+200",
        )),
        CrmKind::Hubspot => paths.push(("contacts page", "/crm/v3/objects/contacts?limit=100")),
    }
    paths
}

fn memory() -> String {
    let (rss, peak) = rss_mib();
    format!("rss {rss:>7.0} MiB, peak {peak:>7.0} MiB")
}

/// A Salesforce org of `leads` leads with about 5 activities each.
fn measure_scale(leads: usize) -> anyhow::Result<()> {
    let cfg = OrgConfig { leads, days: 730, activities_per_lead: Some(5), ..OrgConfig::default() };
    println!("salesforce at scale: {leads} leads, 730 days, about 5 activities per lead");
    println!("  before:       {}", memory());
    let c0 = cpu_ms();
    let t0 = Instant::now();
    let o = handoff_sandbox::generate(&cfg);
    let touches = o.events.iter().filter(|e| matches!(e.kind, handoff_sandbox::org::EventKind::Touch { .. })).count();
    println!(
        "  generate:     {:>8.1} s, {}  ({} events, {:.2} activities per lead)  {}",
        t0.elapsed().as_secs_f64(),
        cpu_since(c0),
        o.events.len(),
        touches as f64 / leads as f64,
        memory()
    );
    drop(o);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut opts = SandboxOptions::new(CrmKind::Salesforce);
        opts.org = cfg.clone();
        opts.clock = ClockMode::Frozen;
        let c0 = cpu_ms();
        let t0 = Instant::now();
        let sb = start(opts).await?;
        println!(
            "  start:        {:>8.1} s, {}  (generate + materialise + keys, until the listener accepts)  {}",
            t0.elapsed().as_secs_f64(),
            cpu_since(c0),
            memory()
        );
        let http = reqwest::Client::new();
        for (label, path) in probe_paths(CrmKind::Salesforce) {
            let t1 = Instant::now();
            let status =
                http.get(format!("{}{path}", sb.base_url)).bearer_auth(token(&sb.credentials)).send().await?.status();
            println!("    {label:<24} status {status}  {:>8.1} ms", ms(t1.elapsed()));
        }
        println!("  serving:      {}", memory());
        sb.stop().await;
        anyhow::Ok(())
    })?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if let Some(leads) = std::env::var("HANDOFF_BENCH_SCALE").ok().and_then(|v| v.parse::<usize>().ok()) {
        return measure_scale(leads);
    }
    println!("generate (pure):");
    for leads in [10_000, 100_000] {
        let cfg = org(leads);
        let c0 = cpu_ms();
        let t0 = Instant::now();
        let o = handoff_sandbox::generate(&cfg);
        println!(
            "  {leads:>7} leads: {:>8.1} ms, {}  ({} users, {} events)",
            ms(t0.elapsed()),
            cpu_since(c0),
            o.users.len(),
            o.events.len()
        );
    }
    println!("salesforce materialise (pure: seed + whole timeline, no keys, no listener):");
    for leads in [10_000, 100_000] {
        let o = handoff_sandbox::generate(&org(leads));
        let app = handoff_sandbox::salesforce::oauth::AppConfig {
            client_id: String::new(),
            client_secret: String::new(),
            username: "bench@example.com".into(),
            user_id: handoff_sandbox::salesforce::materialise::integration_user_id(),
            org_id: String::new(),
            jwt_public_key_pem: String::new(),
            audiences: Vec::new(),
            instance_url: String::new(),
        };
        let c0 = cpu_ms();
        let t0 = Instant::now();
        let mut st = handoff_sandbox::salesforce::state::SfState::new(app);
        handoff_sandbox::salesforce::materialise::seed(&mut st, &o);
        handoff_sandbox::salesforce::materialise::catch_up(&mut st, &o, o.config.end_at());
        let took = t0.elapsed();
        let took_cpu = cpu_since(c0);
        let history = st.table("LeadHistory").map_or(0, |t| t.len());
        drop(st);
        println!("  {leads:>7} leads: {:>8.1} ms, {took_cpu}  ({history} history rows)", ms(took));
    }
    let rt = tokio::runtime::Runtime::new()?;
    println!("start + serve:");
    for crm in [CrmKind::Salesforce, CrmKind::Hubspot] {
        for leads in [10_000, 100_000] {
            rt.block_on(measure_start(crm, leads))?;
        }
    }
    Ok(())
}
