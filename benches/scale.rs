//! What a real-size org costs handoff, measured as an operator meets it:
//! `handoff run --once` is spawned (a process of its own, so its CPU and
//! memory are apart from the sandbox's) against a generated org served by
//! the sandbox in this process, three times:
//!
//! 1. **backfill**: an empty state directory takes in the whole org and
//!    writes back what the SLA asks;
//! 2. **policy change**, twice: the policy's fingerprint changes, so every
//!    lead is evaluated again (the pull finds nothing new) — first a change
//!    no lead's verdict feels (nothing is stored again), then one that
//!    moves every timed clock's reminder (their evaluations are stored);
//! 3. **idle**: nothing changed;
//!
//! then `handoff state --compact`, the state directory's size after it, and
//! an idle run on the compacted store.
//!
//! For each it prints wall and CPU time, peak RSS (the process's high-water
//! mark, sampled every 20 ms until it exits), API calls, and after the
//! backfill the state directory's size per lead. Prints numbers; asserts
//! nothing (timings on a shared machine are not test material).
//!
//! `cargo bench --bench scale` (`HANDOFF_BENCH_LEADS=100000,1000000` sets the
//! sizes, `HANDOFF_BENCH_CRMS=salesforce` the CRMs, `HANDOFF_BENCH_ACTIVITIES`
//! the activities per lead, default 5; `HANDOFF_BENCH_WRAP` runs the
//! first policy-change run (`HANDOFF_BENCH_WRAP_PHASE=backfill`: the
//! backfill; `policy change, verdicts`: the second; `idle`: the first idle
//! run; `idle, compact`: the one after `--compact`; several between `;`)
//! under a profiler, e.g. `"perf record -g -o FILE --"` or `"heaptrack -o
//! FILE"`); `HANDOFF_BENCH_STATE_CACHE_MIB` sets `daemon.state_cache_mib`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails by panicking

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::{ClockMode, SandboxOptions};

/// What one `run --once` cost.
struct Run {
    wall: Duration,
    cpu_secs: f64,
    peak_rss_mib: f64,
    exit: Option<i32>,
}

/// CPU seconds (user + system) and peak RSS of a live process, from /proc.
fn sample(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here,
    // in clock ticks (USER_HZ, 100 on Linux).
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((ticks / 100.0, hwm_kib / 1024.0))
}

fn run_once(config: &Path, wrapper: Option<&str>) -> Run {
    let started = Instant::now();
    let handoff = env!("CARGO_BIN_EXE_handoff");
    let wrapper: Vec<&str> = wrapper.map(|w| w.split_whitespace().collect()).unwrap_or_default();
    // Wrapped, its CPU and memory are the wrapper's, not handoff's alone.
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(handoff);
            c
        }
        None => Command::new(handoff),
    };
    // Its warnings and errors go to a file beside the config, shown when
    // the run does not finish cleanly.
    let log_path = config.with_file_name("handoff-run.log");
    let log = std::fs::File::create(&log_path).expect("creates the run's log");
    let mut child = command
        .args(["run", "--once", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("handoff starts");
    let mut last = (0.0, 0.0);
    let status = loop {
        if let Some(s) = sample(child.id()) {
            last = s;
        }
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.code() != Some(0) {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("handoff run --once exited {status}; the last lines it logged:");
        for line in &lines[lines.len().saturating_sub(5)..] {
            eprintln!("  {line}");
        }
    }
    Run { wall: started.elapsed(), cpu_secs: last.0, peak_rss_mib: last.1, exit: status.code() }
}

fn print(crm: CrmKind, leads: usize, phase: &str, run: &Run, calls: usize, extra: &str) {
    println!(
        "{crm:>10} {leads:>8} leads | {phase:<13} | wall {:>7.1} s | CPU {:>7.1} s | peak RSS {:>6.0} MiB | {calls:>6} API calls | exit {} {extra}",
        run.wall.as_secs_f64(),
        run.cpu_secs,
        run.peak_rss_mib,
        run.exit.map(|c| c.to_string()).unwrap_or_else(|| "signal".into()),
    );
}

async fn measure(crm: CrmKind, leads: usize, activities_per_lead: u32) {
    let mut opts = SandboxOptions::new(crm);
    opts.org = OrgConfig { leads, days: 30, activities_per_lead: Some(activities_per_lead), ..OrgConfig::default() };
    opts.clock = ClockMode::Frozen;
    let generated = Instant::now();
    let sb = handoff_sandbox::start(opts).await.expect("sandbox starts");
    let generated = generated.elapsed();
    // The sandbox's limits are raised: this measures handoff, not waiting.
    let (path, body) = match crm {
        CrmKind::Salesforce => ("salesforce/limits", serde_json::json!({"daily_limit": 50_000_000})),
        CrmKind::Hubspot => (
            "hubspot/limits",
            serde_json::json!({"private_app_burst_per_10s": 10_000_000, "oauth_burst_per_10s": 10_000_000, "search_per_second": 10_000_000, "private_app_daily": 50_000_000}),
        ),
    };
    reqwest::Client::new().post(format!("{}/{path}", sb.admin_url)).json(&body).send().await.expect("limits");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut table = handoff::demo::config_table(&sb, dir.path()).expect("config");
    let sync = table.entry("sync").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    sync.as_table_mut().expect("[sync] is a table").insert("clock".into(), "sandbox".into());
    if let Some(mib) = std::env::var("HANDOFF_BENCH_STATE_CACHE_MIB").ok().and_then(|v| v.parse::<i64>().ok()) {
        let daemon = table.entry("daemon").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        daemon.as_table_mut().expect("[daemon] is a table").insert("state_cache_mib".into(), mib.into());
    }
    let config = dir.path().join("handoff.toml");
    std::fs::write(&config, toml::to_string(&table).expect("renders")).expect("writes the config");
    let state_dir = handoff::daemon::service::store_dir(&handoff::config::load(&config).expect("the config loads"));
    println!(
        "{crm:>10} {leads:>8} leads | org of {} timeline events generated and served in {:.1} s",
        sb.shared.org.events.len(),
        generated.as_secs_f64()
    );

    let calls = || sb.shared.log.len();
    let before = calls();
    let wrapper = std::env::var("HANDOFF_BENCH_WRAP").ok();
    let wrapped = |phase: &str| {
        let wanted = std::env::var("HANDOFF_BENCH_WRAP_PHASE").unwrap_or_else(|_| "policy change".into());
        wrapper.as_deref().filter(|_| wanted.split(';').any(|w| w.trim() == phase))
    };
    let backfill = tokio::task::block_in_place(|| run_once(&config, wrapped("backfill")));
    let state = handoff::store::dir_bytes(&state_dir);
    print(
        crm,
        leads,
        "backfill",
        &backfill,
        calls() - before,
        &format!("| state {:.0} MiB, {:.0} bytes per lead", state as f64 / 1048576.0, state as f64 / leads as f64),
    );

    {
        let store = handoff::store::Store::open(&state_dir).expect("the state directory opens");
        let trees: Vec<String> = store
            .footprint()
            .expect("footprint")
            .into_iter()
            .filter(|(_, keys, _)| *keys > 0)
            .map(|(name, keys, bytes)| format!("{name} {keys} keys {:.0} B/lead", bytes as f64 / leads as f64))
            .collect();
        println!("{crm:>10} {leads:>8} leads | stored: {}", trees.join(", "));
    }

    // A policy change every lead is evaluated again for, which changes no
    // lead's verdict (the weekly escalation streak is not something this
    // org reaches): nothing is stored again.
    let policy = table.get_mut("policy").and_then(|p| p.as_table_mut()).expect("[policy]");
    let scorecard = policy.entry("scorecard").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    scorecard.as_table_mut().expect("[policy.scorecard]").insert("consecutive_weeks".into(), toml::Value::Integer(5));
    std::fs::write(&config, toml::to_string(&table).expect("renders")).expect("writes the config");
    let before = calls();
    let change = tokio::task::block_in_place(|| run_once(&config, wrapped("policy change")));
    print(crm, leads, "policy change", &change, calls() - before, "| no verdict changes");

    // One that moves every timed clock's reminder: every evaluation with
    // such a clock is stored again.
    let policy = table.get_mut("policy").and_then(|p| p.as_table_mut()).expect("[policy]");
    let escalation = policy.entry("escalation").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    escalation.as_table_mut().expect("[policy.escalation]").insert("remind_at".into(), "80%".into());
    std::fs::write(&config, toml::to_string(&table).expect("renders")).expect("writes the config");
    let before = calls();
    let change = tokio::task::block_in_place(|| run_once(&config, wrapped("policy change, verdicts")));
    print(crm, leads, "policy change", &change, calls() - before, "| reminders moved");

    let before = calls();
    let idle = tokio::task::block_in_place(|| run_once(&config, wrapped("idle")));
    print(crm, leads, "idle", &idle, calls() - before, "");

    let started = Instant::now();
    let compact = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["state", "--compact", "--config"])
        .arg(&config)
        .output()
        .expect("handoff state --compact runs");
    let state = handoff::store::dir_bytes(&state_dir);
    println!(
        "{crm:>10} {leads:>8} leads | compact       | wall {:>7.1} s | exit {} | state {:.0} MiB, {:.0} bytes per lead",
        started.elapsed().as_secs_f64(),
        compact.status.code().map(|c| c.to_string()).unwrap_or_else(|| "signal".into()),
        state as f64 / 1048576.0,
        state as f64 / leads as f64
    );
    let before = calls();
    let idle = tokio::task::block_in_place(|| run_once(&config, wrapped("idle, compact")));
    print(crm, leads, "idle, compact", &idle, calls() - before, "");
    let own = sample(std::process::id()).map_or(0.0, |(_, rss)| rss);
    println!("{crm:>10} {leads:>8} leads | the sandbox (this process): peak RSS {own:.0} MiB so far");
    sb.stop().await;
}

fn main() {
    let sizes: Vec<usize> = std::env::var("HANDOFF_BENCH_LEADS")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect();
    let crms: Vec<CrmKind> = std::env::var("HANDOFF_BENCH_CRMS")
        .unwrap_or_else(|_| "salesforce,hubspot".into())
        .split(',')
        .filter_map(|s| match s.trim() {
            "salesforce" => Some(CrmKind::Salesforce),
            "hubspot" => Some(CrmKind::Hubspot),
            _ => None,
        })
        .collect();
    let activities: u32 = std::env::var("HANDOFF_BENCH_ACTIVITIES").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    for leads in sizes {
        for crm in &crms {
            rt.block_on(measure(*crm, leads, activities));
        }
    }
}
