//! Where handoff's API calls go, against the fewest possible: a generated
//! org served by the sandbox (the whole org at once, its clock still), the
//! daemon's backfill with the write-back it decides, a tick right after
//! those writes, and an idle tick. For each phase and stream it prints the
//! calls the sandbox logged, the lower bound for what was read or written,
//! and the wall and CPU time (the in-process sandbox's CPU included).
//! Prints numbers; asserts nothing (the call-count tests assert).
//!
//! `cargo bench --bench api_calls` (`HANDOFF_BENCH_LEADS`, default 100,000;
//! `HANDOFF_BENCH_CRM=salesforce|hubspot|hubspot-leads` for one CRM, the last
//! HubSpot on its lead records (`lead_object = "leads"`); `HANDOFF_BENCH_DUMP=1`
//! prints every call of the backfill).
//!
//! Lower bounds, per stream:
//! - Salesforce reads: pages of 2,000 rows (a query page holds at most
//!   2,000 rows, history rows read with their lead included).
//! - HubSpot leads: the contacts listing with history, 50 a page; an
//!   incremental window: search pages of 200 and history batches of 50. On
//!   lead records the same bound (a record with its history, 50 a call):
//!   what reading each lead's contact costs on top shows against it.
//! - HubSpot activities: search pages of 200 and association reads of 1,000.
//! - Owners and calendars: one call per object (they are few).
//! - Writes: Salesforce, collections of 200 five to a Composite request;
//!   HubSpot, batches of 100.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails by panicking

use std::collections::BTreeMap;
use std::time::Instant;

use handoff::demo::Simulation;
use handoff_model::{ActivityKind, CrmKind};
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::{ClockMode, LoggedRequest, SandboxOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Leads,
    Activities,
    Owners,
    Calendars,
    Writes,
    Other,
    /// Of the calls above, those the CRM refused (4xx/5xx), counted again here.
    Refused,
}

/// Which stream a logged request served. A Salesforce `nextRecordsUrl`
/// belongs to the query before it. On HubSpot lead records (`leads_mode`)
/// the lead records, their contacts and the associations between them
/// serve the leads stream.
fn classify(crm: CrmKind, log: &[LoggedRequest], leads_mode: bool) -> BTreeMap<Kind, usize> {
    let mut out = BTreeMap::new();
    let mut last_query = Kind::Other;
    for r in log.iter().filter(|r| r.counted) {
        let q = r.query.as_deref().unwrap_or("").replace('+', " ").replace("%20", " ");
        let kind = match crm {
            CrmKind::Salesforce => {
                if r.path.ends_with("/query") || r.path.ends_with("/queryAll") {
                    last_query = if q.contains("FROM Lead") {
                        Kind::Leads
                    } else if q.contains("FROM Task") || q.contains("FROM Event") {
                        Kind::Activities
                    } else if q.contains("FROM User") || q.contains("FROM Group") {
                        Kind::Owners
                    } else if q.contains("FROM BusinessHours") || q.contains("FROM Holiday") {
                        Kind::Calendars
                    } else {
                        Kind::Other
                    };
                    last_query
                } else if r.path.contains("/query/") || r.path.contains("/queryAll/") {
                    last_query
                } else if r.path.contains("/composite") || r.method != "GET" {
                    Kind::Writes
                } else {
                    Kind::Other
                }
            }
            CrmKind::Hubspot => {
                let p = r.path.as_str();
                if p.starts_with("/crm/v3/owners") {
                    Kind::Owners
                } else if p.ends_with("/batch/update")
                    || p.ends_with("/batch/create")
                    || p == "/crm/v3/objects/tasks/batch/read"
                {
                    Kind::Writes
                } else if p.starts_with("/crm/v3/objects/contacts")
                    || (leads_mode
                        && (p.starts_with("/crm/v3/objects/leads")
                            || p.starts_with("/crm/v3/properties/leads")
                            || p.starts_with("/crm/v4/associations/leads/contacts")
                            || p.starts_with("/crm/v4/associations/contacts/leads")))
                {
                    Kind::Leads
                } else if p.starts_with("/crm/v3/objects/") || p.starts_with("/crm/v4/associations/") {
                    Kind::Activities
                } else {
                    Kind::Other
                }
            }
        };
        *out.entry(kind).or_insert(0) += 1;
        if r.status >= 400 {
            *out.entry(Kind::Refused).or_insert(0) += 1;
        }
    }
    out
}

/// Seconds of CPU this process has used (user and system).
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return 0.0 };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name).
    (ticks(11) + ticks(12)) / 100.0
}

fn pages(n: usize, size: usize) -> usize {
    n.div_ceil(size).max(1)
}

struct Phase {
    name: &'static str,
    calls: BTreeMap<Kind, usize>,
    bound: BTreeMap<Kind, usize>,
    wall_secs: f64,
    cpu_secs: f64,
    written: usize,
}

fn print(crm: &str, leads: usize, p: &Phase) {
    let total: usize = p.calls.iter().filter(|(k, _)| **k != Kind::Refused).map(|(_, n)| n).sum();
    let bound: usize = p.bound.values().sum();
    println!(
        "{crm:>10} {leads:>7} leads | {:<12} | wall {:>7.1} s | cpu {:>7.1} s | {:>6} actions written | calls {total:>6} (bound {bound:>6})",
        p.name, p.wall_secs, p.cpu_secs, p.written
    );
    for (kind, used) in &p.calls {
        let b = p.bound.get(kind).map_or("-".to_string(), |b| b.to_string());
        println!("{:>36} {kind:?}: {used} calls, bound {b}", "");
    }
}

/// The bound for the backfill of what the store now holds.
fn backfill_bound(crm: CrmKind, sim: &handoff::daemon::Daemon, written: usize) -> BTreeMap<Kind, usize> {
    let store = sim.store();
    let leads = store.leads().expect("leads");
    let activities = store.all_activities().expect("activities");
    let mut bound = BTreeMap::new();
    match crm {
        CrmKind::Salesforce => {
            // At least a row per lead (history rows, when read with their
            // lead, take room in the page too).
            bound.insert(Kind::Leads, pages(leads.len(), 2_000));
            let events = activities.iter().filter(|a| a.kind == ActivityKind::Meeting).count();
            bound.insert(Kind::Activities, pages(activities.len() - events, 2_000) + pages(events, 2_000));
            bound.insert(Kind::Owners, 2);
            bound.insert(Kind::Calendars, 2);
            bound.insert(Kind::Writes, written.div_ceil(200).div_ceil(5));
        }
        CrmKind::Hubspot => {
            bound.insert(Kind::Leads, pages(leads.len(), 50));
            let mut acts = 0;
            for kind in [ActivityKind::Call, ActivityKind::Email, ActivityKind::Meeting, ActivityKind::Task] {
                let n = activities.iter().filter(|a| a.kind == kind && a.handoff_key.is_none()).count();
                acts += pages(n, 200) + n.div_ceil(1_000);
            }
            bound.insert(Kind::Activities, acts);
            bound.insert(Kind::Owners, 2);
            bound.insert(Kind::Writes, written.div_ceil(100));
        }
    }
    bound
}

async fn run(crm: CrmKind, leads: usize, leads_mode: bool) {
    let mut opts = SandboxOptions::new(crm);
    opts.org = OrgConfig { leads, days: 30, ..OrgConfig::default() };
    opts.clock = ClockMode::Frozen;
    opts.replay = false;
    let sb = handoff_sandbox::start(opts).await.expect("sandbox starts");
    handoff::demo::open_sandbox_limits(&sb).await.expect("limits open");
    let dir = tempfile::tempdir().expect("temp dir");
    let overlay = leads_mode.then(|| handoff::demo::hubspot_leads_mode().expect("the leads-mode overlay"));
    let config = handoff::demo::config_with(&sb, dir.path(), overlay.as_ref()).expect("config");
    let mut daemon = Simulation::daemon(&config, &sb).await.expect("daemon");

    let mut phases = Vec::new();
    // Backfill, and the write-back it decides, at one instant.
    let (start, wall, cpu) = (sb.shared.log.len(), Instant::now(), cpu_secs());
    let mut written = 0;
    loop {
        let r = daemon.tick().await.expect("tick");
        written += r.written;
        if r.caught_up {
            break;
        }
    }
    let calls = classify(crm, &sb.shared.log.snapshot()[start..], leads_mode);
    if std::env::var("HANDOFF_BENCH_DUMP").is_ok() {
        for r in &sb.shared.log.snapshot()[start..] {
            let q = r.query.as_deref().unwrap_or("").replace('+', " ").replace("%20", " ");
            println!("{} {} {}", r.status, r.path, &q[..q.len().min(160)]);
        }
    }
    let bound = backfill_bound(crm, &daemon, written);
    phases.push(Phase {
        name: "backfill",
        calls,
        bound,
        wall_secs: wall.elapsed().as_secs_f64(),
        cpu_secs: cpu_secs() - cpu,
        written,
    });
    // Then ticks five minutes apart: right after writes, and idle.
    let mut wrote_before = true;
    // Until both kinds of tick were seen (a large org's clocks keep some
    // ticks writing for a while).
    for _ in 0..48 {
        if phases.iter().any(|p| p.name == "idle") && phases.iter().any(|p| p.name == "after-writes") {
            break;
        }
        sb.shared.clock.advance(chrono::Duration::minutes(5));
        let (start, wall, cpu) = (sb.shared.log.len(), Instant::now(), cpu_secs());
        // Ticks at this instant until caught up (a window of echoes can
        // take several ticks of pages).
        let mut r = daemon.tick().await.expect("tick");
        let mut written = r.written;
        while !r.caught_up {
            r = daemon.tick().await.expect("tick");
            written += r.written;
        }
        let name = if wrote_before { "after-writes" } else { "idle" };
        wrote_before = written > 0;
        if phases.iter().any(|p| p.name == name) {
            continue;
        }
        let calls = classify(crm, &sb.shared.log.snapshot()[start..], leads_mode);
        // Nobody else changed anything: the bound is a window's one empty
        // page per object read.
        let mut bound = BTreeMap::new();
        match crm {
            CrmKind::Salesforce => {
                bound.insert(Kind::Leads, 1);
                bound.insert(Kind::Activities, 2);
            }
            CrmKind::Hubspot => {
                bound.insert(Kind::Leads, 1);
                bound.insert(Kind::Activities, 4);
            }
        }
        phases.push(Phase {
            name,
            calls,
            bound,
            wall_secs: wall.elapsed().as_secs_f64(),
            cpu_secs: cpu_secs() - cpu,
            written,
        });
    }
    for p in &phases {
        print(if leads_mode { "hubspot-leads" } else { crm.as_str() }, leads, p);
    }
    sb.stop().await;
}

fn main() {
    let leads: usize = std::env::var("HANDOFF_BENCH_LEADS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let only = std::env::var("HANDOFF_BENCH_CRM").ok();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    for (name, crm, leads_mode) in [
        ("salesforce", CrmKind::Salesforce, false),
        ("hubspot", CrmKind::Hubspot, false),
        ("hubspot-leads", CrmKind::Hubspot, true),
    ] {
        if only.as_deref().is_some_and(|o| o != name) || (only.is_none() && leads_mode) {
            continue;
        }
        rt.block_on(run(crm, leads, leads_mode));
    }
}
