//! How fast the daemon takes in an org and how much memory it needs: a
//! backfill of a generated org (every lead, activity and owner through the
//! real connector, store and engine), then a quiet tick. Prints numbers;
//! asserts nothing (timings on a shared machine are not test material).
//!
//! `cargo bench --bench daemon` (set `HANDOFF_BENCH_LEADS` for another size).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::time::Instant;

use handoff::demo::Simulation;
use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::{ClockMode, SandboxOptions};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn run(crm: CrmKind, leads: usize) {
    let mut opts = SandboxOptions::new(crm);
    opts.org = OrgConfig { leads, days: 30, ..OrgConfig::default() };
    opts.clock = ClockMode::Frozen;
    let sb = handoff_sandbox::start(opts).await.expect("sandbox starts");
    let client = reqwest::Client::new();
    let (path, body) = match crm {
        CrmKind::Salesforce => ("salesforce/limits", serde_json::json!({"daily_limit": 50_000_000})),
        CrmKind::Hubspot => (
            "hubspot/limits",
            serde_json::json!({"private_app_burst_per_10s": 10_000_000, "oauth_burst_per_10s": 10_000_000, "search_per_second": 10_000_000, "private_app_daily": 50_000_000}),
        ),
    };
    client.post(format!("{}/{path}", sb.admin_url)).json(&body).send().await.expect("limits");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = handoff::demo::config_for(&sb, dir.path()).expect("config");
    let mut daemon = Simulation::daemon(&config, &sb).await.expect("daemon");
    let calls_before = sb.shared.log.len();
    let started = Instant::now();
    let mut ticks = 0;
    loop {
        let r = daemon.tick().await.expect("tick");
        ticks += 1;
        if r.caught_up {
            break;
        }
    }
    let backfill = started.elapsed();
    let counts = daemon.store().counts().expect("counts");
    let calls = sb.shared.log.len() - calls_before;
    let quiet = Instant::now();
    daemon.tick().await.expect("quiet tick");
    println!(
        "{crm:>10} {leads:>7} leads: backfill {:.1} s in {ticks} ticks ({:.0} leads/s), {} activities, {} actions written, {calls} API calls; quiet tick {:.0} ms; peak RSS {:.0} MiB",
        backfill.as_secs_f64(),
        counts.leads as f64 / backfill.as_secs_f64(),
        counts.activities,
        counts.ledger,
        quiet.elapsed().as_secs_f64() * 1000.0,
        peak_rss_mib().unwrap_or(0.0),
    );
    sb.stop().await;
}

fn main() {
    let leads: usize = std::env::var("HANDOFF_BENCH_LEADS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    for crm in [CrmKind::Salesforce, CrmKind::Hubspot] {
        rt.block_on(run(crm, leads));
    }
}
