//! Startup and serving numbers for the sandbox: how long generating an org
//! takes, how long `start` takes until the listener accepts, and request
//! latency against a 100,000-lead org. Prints numbers; asserts nothing
//! (timings on a shared machine are not test material).
//!
//! Run: `cargo bench -p handoff-sandbox --bench startup`

use std::time::{Duration, Instant};

use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::server::{start, ClockMode, SandboxOptions};

fn org(leads: usize) -> OrgConfig {
    OrgConfig { leads, ..OrgConfig::default() }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn measure_start(crm: CrmKind, leads: usize) -> anyhow::Result<()> {
    let mut opts = SandboxOptions::new(crm);
    opts.org = org(leads);
    opts.clock = ClockMode::Frozen;
    let t0 = Instant::now();
    let sb = start(opts).await?;
    let started = t0.elapsed();

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
        lines.push(format!("    {label:<24} status {status}  first {:>8.1} ms  then {:>6.2} ms/request", ms(first), ms(each)));
    }
    println!(
        "{:<10} {leads:>7} leads: start {:>8.1} ms ({} events)",
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

fn main() -> anyhow::Result<()> {
    println!("generate (pure):");
    for leads in [10_000, 100_000] {
        let cfg = org(leads);
        let t0 = Instant::now();
        let o = handoff_sandbox::generate(&cfg);
        println!(
            "  {leads:>7} leads: {:>8.1} ms  ({} users, {} events)",
            ms(t0.elapsed()),
            o.users.len(),
            o.events.len()
        );
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
