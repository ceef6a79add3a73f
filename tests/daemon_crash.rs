//! Exactly once across crashes: the daemon binary is killed with SIGKILL at
//! named crash points of a busy run — after reading a page and after
//! committing it, after judging leads and after committing that, before a
//! write, after the CRM answered it and after recording it — and restarted
//! each time. Every kill lands exactly where it is aimed (the binary is
//! built with the `failpoints` feature and kills itself at the chosen pass
//! through the chosen point; no timer is raced). At the end the CRM must
//! hold exactly the tasks a run without crashes creates: none twice, none
//! missing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt as _;
use std::process::Command;

use chrono::{DateTime, Utc};
use handoff::demo::{sandbox_tasks, Simulation};
use handoff::failpoints;
use handoff_model::CrmKind;

const SEED: u64 = 11;
const LEADS: usize = 240;
const DAYS: u32 = 8;

/// The tasks the sandbox holds, by handoff key with the CRM's lead id
/// replaced by the lead's e-mail (ids differ between two sandboxes when
/// handoff's own tasks take ids in between), and how many of each.
async fn task_counts(sb: &handoff_sandbox::RunningSandbox) -> BTreeMap<String, usize> {
    let client = reqwest::Client::new();
    let mut email_of: BTreeMap<String, String> = BTreeMap::new();
    match sb.crm {
        CrmKind::Salesforce => {
            let body: serde_json::Value = client
                .get(format!("{}/salesforce/records/Lead", sb.admin_url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for r in body["records"].as_array().unwrap() {
                email_of
                    .insert(r["Id"].as_str().unwrap().to_string(), r["Email"].as_str().unwrap_or_default().to_string());
            }
        }
        CrmKind::Hubspot => {
            let body: serde_json::Value = client
                .get(format!("{}/hubspot/objects/contacts", sb.admin_url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for r in body["results"].as_array().unwrap() {
                email_of.insert(
                    r["id"].as_str().unwrap().to_string(),
                    r["properties"]["email"].as_str().unwrap_or_default().to_string(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    for t in sandbox_tasks(sb).await.unwrap() {
        if let Some(k) = t.handoff_key {
            let neutral = match k.split_once(':') {
                Some((lead, rest)) if email_of.contains_key(lead) => format!("{}:{rest}", email_of[lead]),
                _ => k,
            };
            *out.entry(neutral).or_default() += 1;
        }
    }
    out
}

/// What became of a run aimed at a crash point.
#[derive(Debug, PartialEq)]
enum Aimed {
    /// Killed by SIGKILL at the point it was aimed at.
    Killed,
    /// Finished (successfully) without reaching that pass of the point.
    NotReached,
}

/// Runs `handoff run --once` with crash point `point` armed to kill the
/// process at its `pass`-th pass, and checks it died there and nowhere else.
fn run_aimed_at(config: &std::path::Path, point: &str, pass: u64) -> Aimed {
    let out = Command::new(common::binary())
        .args(["run", "--once", "--config"])
        .arg(config)
        .env(failpoints::ENV, format!("{point}={pass}"))
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let marker = format!("failpoint {point} reached (pass {pass}): killing the process");
    match out.status.signal() {
        Some(9) => {
            assert!(stderr.contains(&marker), "killed, but not at {point} pass {pass}: {stderr}");
            assert_eq!(stderr.matches("failpoint ").count(), 1, "one crash point fired: {stderr}");
            Aimed::Killed
        }
        Some(other) => panic!("aimed at {point} pass {pass}, died of signal {other}: {stderr}"),
        None => {
            assert!(out.status.success(), "aimed at {point} pass {pass}, failed without reaching it: {stderr}");
            assert!(!stderr.contains("failpoint "), "{stderr}");
            Aimed::NotReached
        }
    }
}

/// `handoff run --once` to the end; it must succeed.
fn run_to_end(config: &std::path::Path) {
    let out = Command::new(common::binary())
        .args(["run", "--once", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "the restarted daemon failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The instants the runs stop at: every few hours over the timeline.
fn instants(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = start + chrono::Duration::hours(9);
    while t < end {
        out.push(t);
        t += chrono::Duration::minutes(200);
    }
    out.push(end);
    out
}

async fn crash_run(crm: CrmKind) {
    // The run that is killed over and over.
    let sb = common::sandbox(crm, SEED, LEADS, DAYS).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sb, dir.path(), 1, |_| {});
    let stops = instants(sb.shared.org.config.start_at, sb.shared.org.config.end_at());
    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    let mut not_reached: BTreeMap<&str, usize> = BTreeMap::new();
    let mut aim = 0usize;
    for at in &stops {
        sb.shared.clock.advance_to(*at);
        // Two kills per stop, each aimed at the next crash point in turn,
        // then a run to the end. A run reads several pages but judges and
        // writes in one batch at these sizes: pull points are aimed at their
        // first, second or third pass, the others at their first.
        for _ in 0..2 {
            let point = failpoints::ALL[aim % failpoints::ALL.len()];
            let pass = if point.starts_with("pull.") { 1 + (aim / failpoints::ALL.len()) as u64 % 3 } else { 1 };
            aim += 1;
            match run_aimed_at(&config, point, pass) {
                Aimed::Killed => *kills.entry(point).or_default() += 1,
                Aimed::NotReached => *not_reached.entry(point).or_default() += 1,
            }
        }
        run_to_end(&config);
    }
    let total: usize = kills.values().sum();
    println!(
        "{crm}: kills by crash point: {kills:?} ({total} in all, over {} stops); not reached: {not_reached:?}",
        stops.len()
    );
    assert!(total >= 50, "only {total} kills landed: {kills:?}");
    for point in failpoints::ALL {
        assert!(kills.get(point).copied().unwrap_or(0) >= 5, "too few kills at `{point}`: {kills:?}");
    }
    let crashed = task_counts(&sb).await;
    let twice: Vec<_> = crashed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "tasks created twice: {twice:?}");
    assert_eq!(handoff::demo::sandbox_duplicates(&sb).await.unwrap(), 0, "the sandbox finds duplicates");
    {
        let state_dir = handoff::daemon::service::store_dir(&handoff::config::load(&config).unwrap());
        let store = handoff::store::Store::open(&state_dir).unwrap();
        let counts = store.counts().unwrap();
        assert_eq!(counts, store.recount().unwrap(), "{crm}: the counts kept through every kill equal a recount");
        assert_eq!(store.clock_counts().unwrap(), store.recount_clocks().unwrap(), "{crm}: and so do the clock counts");
        assert!(counts.leads > 0 && counts.ledger > 0, "{crm}: {counts:?}");
    }

    // The same org and the same stops, never killed.
    let sb_ref = common::sandbox(crm, SEED, LEADS, DAYS).await;
    let dir_ref = tempfile::tempdir().unwrap();
    let config_ref = handoff::demo::config_for(&sb_ref, dir_ref.path()).unwrap();
    let mut daemon = Simulation::daemon(&config_ref, &sb_ref).await.unwrap();
    for at in &stops {
        sb_ref.shared.clock.advance_to(*at);
        for _ in 0..500 {
            if daemon.tick().await.unwrap().caught_up {
                break;
            }
        }
    }
    let reference = task_counts(&sb_ref).await;
    let crashed_keys: BTreeSet<&String> = crashed.keys().collect();
    let reference_keys: BTreeSet<&String> = reference.keys().collect();
    let missing: Vec<_> = reference_keys.difference(&crashed_keys).collect();
    let extra: Vec<_> = crashed_keys.difference(&reference_keys).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing after crashes: {missing:?}; extra: {extra:?}");
    assert!(reference.len() > 50, "a busy run makes many tasks, not {}", reference.len());
    println!("{crm}: {} tasks, identical with and without crashes", reference.len());
    sb.stop().await;
    sb_ref.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_killed_at_fifty_points_holds_every_task_exactly_once() {
    crash_run(CrmKind::Salesforce).await;
}

/// HubSpot creates are not idempotent: every uncertain create is resolved by
/// looking its `handoff_key` up, which is what these kills exercise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_killed_at_fifty_points_holds_every_task_exactly_once() {
    crash_run(CrmKind::Hubspot).await;
}

/// `handoff run --once` to the end with the log as JSON; returns how many
/// leads its ticks evaluated and its log.
fn run_to_end_counting(config: &std::path::Path) -> (usize, String) {
    let out = Command::new(common::binary())
        .args(["run", "--once", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("HANDOFF_LOG_FORMAT", "json")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the restarted daemon failed: {log}");
    let evaluated = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["message"] == "tick done")
        .map(|e| e["evaluated"].as_u64().unwrap() as usize)
        .sum();
    (evaluated, log)
}

/// A policy change evaluates every lead again in lead-id order, a chunk a
/// commit, recording in each commit how far it got. Killed after its first
/// commit, and again after judging the next chunk but before committing
/// it, the restarted daemon goes on after the last lead whose evaluation
/// was committed: no lead is passed over, and the sweep ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reevaluation_killed_midway_resumes_after_its_last_commit() {
    let sb = common::frozen_sandbox(CrmKind::Salesforce, SEED, 1_300, 3, false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sb, dir.path(), 1, |_| {});
    run_to_end(&config);
    let state_dir = handoff::daemon::service::store_dir(&handoff::config::load(&config).unwrap());
    let ids = {
        let store = handoff::store::Store::open(&state_dir).unwrap();
        assert_eq!((store.counts().unwrap().dirty, store.sweep().unwrap()), (0, None));
        let every_evaluated = handoff::store::Sweep { why: "listing".into(), after: None, every_stored_lead: false };
        store.sweep_ids_after(&every_evaluated, usize::MAX).unwrap()
    };
    assert!(ids.len() > 1_000, "more leads than two commits hold: {}", ids.len());

    let config = common::write_config(&sb, dir.path(), 1, |t| {
        let policy = t.get_mut("policy").and_then(|p| p.as_table_mut()).unwrap();
        let card = policy.entry("scorecard").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        card.as_table_mut().unwrap().insert("consecutive_weeks".into(), 4.into());
    });
    assert_eq!(run_aimed_at(&config, failpoints::EVALUATE_COMMITTED, 1), Aimed::Killed);
    let sweep_after = || {
        let store = handoff::store::Store::open(&state_dir).unwrap();
        let sweep = store.sweep().unwrap().expect("the sweep is under way");
        assert_eq!(sweep.why, "policy changed");
        let after = sweep.after.expect("its first commit moved it");
        ids.iter().position(|id| *id == after).expect("a stored lead") + 1
    };
    let done = sweep_after();
    assert_eq!(done, 500, "the first commit holds the first 500 leads");
    assert_eq!(run_aimed_at(&config, failpoints::EVALUATE_DECIDED, 2), Aimed::Killed);
    assert_eq!(sweep_after(), 1_000, "the restart's first commit, not its second, which was cut");
    let (evaluated, log) = run_to_end_counting(&config);
    assert_eq!(evaluated, ids.len() - 1_000, "every lead after the last commit, once: {log}");
    assert!(log.contains("every lead is evaluated again: done"), "{log}");
    let store = handoff::store::Store::open(&state_dir).unwrap();
    assert_eq!(store.sweep().unwrap(), None);
    assert_eq!(store.counts().unwrap(), store.recount().unwrap());
    sb.stop().await;
}
