//! A backfill spread over many ticks decides exactly what a backfill in one
//! tick decides. While any stream still has pages to read, a lead's touches
//! may be on a page not read yet: judging its clocks then would escalate a
//! lead its rep did call. So no lead is evaluated in such a tick.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;

use handoff::daemon::TickReport;
use handoff::demo::{config_table, Simulation};
use handoff_model::CrmKind;

const LEADS: usize = 400;
const DAYS: u32 = 12;

/// Backfills with at most `pages_per_tick` pages per stream per tick;
/// returns the tasks it wrote (handoff key → count) and every tick's report.
async fn backfill(crm: CrmKind, pages_per_tick: usize) -> (BTreeMap<String, usize>, Vec<TickReport>) {
    // The whole org at once (the end of its timeline), limits opened so the
    // run is not about the API budget.
    let sb = common::frozen_sandbox(crm, 11, LEADS, DAYS, false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut table = config_table(&sb, dir.path()).expect("demo config");
    let sync = table.entry("sync").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    sync.as_table_mut()
        .expect("[sync] is a table")
        .insert("pages_per_tick".into(), toml::Value::Integer(pages_per_tick as i64));
    let config = handoff::config::parse(&toml::to_string(&table).expect("renders")).expect("valid config");
    let mut daemon = Simulation::daemon(&config, &sb).await.expect("daemon");
    let mut reports = Vec::new();
    for _ in 0..200 {
        let r = daemon.tick().await.expect("tick");
        let done = r.caught_up;
        assert!(r.errors.is_empty(), "{crm} tick errors: {:?}", r.errors);
        assert!(r.paused_until.is_none(), "{crm}: paused on the API budget");
        reports.push(r);
        if done {
            break;
        }
    }
    assert!(reports.last().is_some_and(|r| r.caught_up), "{crm}: not caught up after {} ticks", reports.len());
    // Ids are the same in both runs: same seed, and only this run wrote.
    let mut tasks = BTreeMap::new();
    for t in handoff::demo::sandbox_tasks(&sb).await.expect("tasks") {
        if let Some(k) = t.handoff_key {
            *tasks.entry(k).or_insert(0) += 1;
        }
    }
    sb.stop().await;
    (tasks, reports)
}

/// `min_behind`: ticks that must end with a stream behind (Salesforce reads
/// 2,000 rows a page, so its small org needs fewer one-page ticks).
async fn same_decisions_in_small_ticks(crm: CrmKind, min_behind: usize) {
    let (one_go, first) = backfill(crm, 1_000).await;
    let (small, reports) = backfill(crm, 1).await;
    let behind: Vec<&TickReport> = reports.iter().filter(|r| !r.streams_behind.is_empty()).collect();
    assert!(
        behind.len() >= min_behind,
        "{crm}: one page per tick should leave streams behind for {min_behind}+ ticks, saw {}",
        behind.len()
    );
    for r in &behind {
        assert_eq!(
            (r.evaluated, r.enqueued),
            (0, 0),
            "{crm}: a tick with {:?} behind evaluated leads",
            r.streams_behind
        );
    }
    assert!(first.len() <= 2, "{crm}: the one-go backfill took {} ticks", first.len());
    assert!(one_go.len() > 50, "{crm}: a {LEADS}-lead org makes more than {} tasks", one_go.len());
    let only_small: Vec<_> = small.keys().filter(|k| !one_go.contains_key(*k)).collect();
    let only_one_go: Vec<_> = one_go.keys().filter(|k| !small.contains_key(*k)).collect();
    assert!(
        only_small.is_empty() && only_one_go.is_empty(),
        "{crm}: tasks differ; only in small ticks {only_small:?}, only in one go {only_one_go:?}"
    );
    assert!(small.values().all(|n| *n == 1), "{crm}: a task written twice");
    println!("{crm}: {} tasks; {} ticks with streams behind evaluated nothing", small.len(), behind.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_backfill_in_one_page_ticks_decides_what_one_tick_decides() {
    same_decisions_in_small_ticks(CrmKind::Hubspot, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_backfill_in_one_page_ticks_decides_what_one_tick_decides() {
    same_decisions_in_small_ticks(CrmKind::Salesforce, 1).await;
}
