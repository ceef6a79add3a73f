//! A tick right after handoff's own writes reads no more than an idle tick.
//!
//! The SLA fields handoff writes modify every lead it judges, and the tasks
//! it creates are new activities: the next window finds all of them. They
//! are its echoes, so reading their history (Salesforce's history subquery,
//! HubSpot's batch reads with `propertiesWithHistory`) or asking which
//! contact its own tasks belong to would spend calls on nothing. Calls are
//! counted by the sandbox's own request log, on both CRMs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use handoff::demo::{config_table, SimOptions, Simulation};
use handoff_model::CrmKind;
use handoff_sandbox::LoggedRequest;

/// The reads of the leads and activities streams' windows: what an echo
/// can cost. Owners, calendars, HubSpot's archived sweep (each on its own
/// schedule) and the writes' own key look-ups are left out.
fn window_read(crm: CrmKind, r: &LoggedRequest) -> bool {
    if !r.counted {
        return false;
    }
    let query = r.query.as_deref().unwrap_or("").replace('+', " ").replace("%20", " ");
    match crm {
        CrmKind::Salesforce => {
            let first_page = r.path.ends_with("/query") || r.path.ends_with("/queryAll");
            let next_page = r.path.contains("/query/") || r.path.contains("/queryAll/");
            let is_query = r.method == "GET" && (first_page || next_page);
            let window = ["FROM Lead", "FROM Task", "FROM Event"].iter().any(|f| query.contains(f));
            is_query && (window || next_page)
        }
        CrmKind::Hubspot => {
            let association_read = r.path.starts_with("/crm/v4/associations/") && r.path.ends_with("/batch/read");
            let post_read =
                r.path.ends_with("/search") || r.path == "/crm/v3/objects/contacts/batch/read" || association_read;
            (r.method == "POST" && post_read)
                || (r.method == "GET" && r.path == "/crm/v3/objects/contacts" && !query.contains("archived=true"))
        }
    }
}

fn window_reads_since(crm: CrmKind, sb: &handoff_sandbox::RunningSandbox, since: usize) -> usize {
    sb.shared.log.snapshot().iter().skip(since).filter(|r| window_read(crm, r)).count()
}

/// Leads handoff gave a new owner in the requests logged from `since`.
fn reassigned_since(crm: CrmKind, sb: &handoff_sandbox::RunningSandbox, since: usize) -> usize {
    let log = sb.shared.log.snapshot();
    let writes = log.iter().skip(since).filter(|r| r.method != "GET");
    match crm {
        CrmKind::Salesforce => writes
            .flat_map(|r| r.collection_records())
            .filter(|rec| rec["attributes"]["type"] == "Lead" && rec.get("OwnerId").is_some())
            .count(),
        CrmKind::Hubspot => writes
            .filter(|r| r.path == "/crm/v3/objects/contacts/batch/update")
            .filter_map(|r| r.body.as_ref()?.get("inputs")?.as_array().cloned())
            .flatten()
            .filter(|input| input["properties"].get("hubspot_owner_id").is_some())
            .count(),
    }
}

/// `leads`: enough that re-reading handoff's echoes with their history
/// would take more pages than a window without them (Salesforce pages
/// hold 2,000 rows, history rows included; HubSpot reads history 50 at a time).
async fn a_tick_after_writes_reads_no_more_than_an_idle_tick(crm: CrmKind, leads: usize) {
    // The whole org at once (the end of its timeline), its clock still: the
    // only changes after the backfill are handoff's own.
    let sb = common::frozen_sandbox(crm, 21, leads, 10, false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut table = config_table(&sb, dir.path()).expect("demo config");
    let sync = table.entry("sync").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let sync = sync.as_table_mut().expect("[sync] is a table");
    // Owners and calendars on a daily schedule: not in the ticks compared.
    sync.insert("owners_every_secs".into(), toml::Value::Integer(86_400));
    sync.insert("calendars_every_secs".into(), toml::Value::Integer(86_400));
    let config = handoff::config::parse(&toml::to_string(&table).expect("renders")).expect("valid config");
    let mut daemon = Simulation::daemon(&config, &sb).await.expect("daemon");

    // The backfill, and the write-back it decides.
    let mut written = 0;
    for _ in 0..50 {
        let r = daemon.tick().await.expect("tick");
        assert!(r.errors.is_empty(), "{crm}: {:?}", r.errors);
        written += r.written;
        if r.caught_up {
            break;
        }
    }
    assert!(written > 100, "{crm}: the backfill wrote SLA fields and tasks ({written} writes)");

    // Then a tick every five minutes: its window reads, and whether the tick
    // before it wrote. A lead handoff reassigned is read with its history
    // (someone may have given it that owner first, and the CRM's history
    // says when): one read per history batch (Salesforce 200 leads,
    // HubSpot 50) is its due, not an echo's cost.
    let history_batch = match crm {
        CrmKind::Salesforce => 200,
        CrmKind::Hubspot => 50,
    };
    let mut after_writes = Vec::new();
    let mut idle = Vec::new();
    let mut wrote_before = true;
    let mut reassigned_before = reassigned_since(crm, &sb, 0);
    let mut first_echoes = None;
    for _ in 0..12 {
        sb.shared.clock.advance(chrono::Duration::minutes(5));
        let start = sb.shared.log.len();
        let r = daemon.tick().await.expect("tick");
        assert!(r.errors.is_empty(), "{crm}: {:?}", r.errors);
        let reads = window_reads_since(crm, &sb, start).saturating_sub(reassigned_before.div_ceil(history_batch));
        first_echoes.get_or_insert(r.echoes + r.leads_changed);
        if wrote_before {
            after_writes.push(reads);
        } else {
            idle.push(reads);
        }
        wrote_before = r.written > 0;
        reassigned_before = reassigned_since(crm, &sb, start);
    }
    println!("{crm}: window reads after handoff's writes {after_writes:?}, idle {idle:?}");
    assert!(first_echoes.unwrap_or(0) > 0, "{crm}: the tick after the backfill read handoff's write-back back");
    assert!(!after_writes.is_empty() && !idle.is_empty(), "{crm}: both kinds of tick ran");
    assert!(idle.iter().all(|n| *n > 0), "{crm}: every tick reads its windows (the count sees them)");
    let most_after = after_writes.iter().max().copied().unwrap_or(0);
    let fewest_idle = idle.iter().min().copied().unwrap_or(0);
    assert!(
        most_after <= fewest_idle,
        "{crm}: a tick after writes read {most_after} times, an idle tick {fewest_idle}"
    );
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_tick_after_its_own_writes_reads_no_more_than_an_idle_tick() {
    a_tick_after_writes_reads_no_more_than_an_idle_tick(CrmKind::Salesforce, 2_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_tick_after_its_own_writes_reads_no_more_than_an_idle_tick() {
    a_tick_after_writes_reads_no_more_than_an_idle_tick(CrmKind::Hubspot, 150).await;
}

/// Whether `r` lists the CRM's owners (users and queues).
fn owners_listing(crm: CrmKind, r: &LoggedRequest) -> bool {
    let query = r.query.as_deref().unwrap_or("").replace('+', " ").replace("%20", " ");
    match crm {
        CrmKind::Salesforce => r.method == "GET" && query.contains("FROM User"),
        CrmKind::Hubspot => r.method == "GET" && r.path.starts_with("/crm/v3/owners"),
    }
}

/// Owners are listed whole on their own cadence (`sync.owners_every_secs`,
/// 15 minutes here), and a restart keeps to it: a daemon started again five
/// minutes after the last listing lists no owner, and lists them again once
/// the cadence comes round.
async fn a_restart_keeps_the_owners_cadence(crm: CrmKind) {
    let opts = SimOptions { leads: 20, days: 1, ..SimOptions::new(crm) };
    let mut sim = Simulation::start(&opts).await.unwrap();
    sim.catch_up().await.unwrap();
    assert_eq!(sim.config.sync.owners_every_secs, 900);
    let listings = |sb: &handoff_sandbox::RunningSandbox, since: usize| {
        sb.shared.log.snapshot().iter().skip(since).filter(|r| owners_listing(crm, r)).count()
    };
    assert!(listings(&sim.sandbox, 0) > 0, "{crm}: the first start lists the owners");
    let since = sim.sandbox.shared.log.len();
    let mut sim = sim.restart().await.unwrap();
    sim.sandbox.shared.clock.advance(chrono::Duration::minutes(5));
    sim.catch_up().await.unwrap();
    assert_eq!(listings(&sim.sandbox, since), 0, "{crm}: listed five minutes ago, before the restart");
    sim.sandbox.shared.clock.advance(chrono::Duration::minutes(11));
    sim.catch_up().await.unwrap();
    assert!(listings(&sim.sandbox, since) > 0, "{crm}: due again sixteen minutes on");
    sim.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_restart_keeps_the_owners_cadence() {
    a_restart_keeps_the_owners_cadence(CrmKind::Salesforce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_restart_keeps_the_owners_cadence() {
    a_restart_keeps_the_owners_cadence(CrmKind::Hubspot).await;
}
