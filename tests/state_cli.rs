//! `handoff state`: what the state directory holds, re-reading a stream from
//! a date (and nothing done twice because of it), and its refusal to touch
//! a state directory the daemon holds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::process::Command;

use handoff_model::CrmKind;

fn handoff(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(common::binary()).args(args).arg("--config").arg(config).env("RUST_LOG", "warn").output().unwrap()
}

/// A generated org four days into its timeline, and the tasks one
/// `run --once` made in it: the sandbox, the config's directory, the config.
async fn ran_once(
    crm: CrmKind,
    seed: u64,
    leads: usize,
) -> (handoff_sandbox::RunningSandbox, tempfile::TempDir, std::path::PathBuf, usize) {
    let sb = common::sandbox(crm, seed, leads, 6).await;
    sb.shared.clock.advance(chrono::Duration::days(4));
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sb, dir.path(), 1, |_| {});
    let run = handoff(&["run", "--once"], &config);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let tasks = handoff::demo::sandbox_tasks(&sb).await.unwrap().len();
    assert!(tasks > 0, "the run made tasks");
    (sb, dir, config, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_shows_the_store_and_a_resync_from_a_date_redoes_nothing() {
    let (sb, _dir, config, tasks_before) = ran_once(CrmKind::Salesforce, 4, 80).await;

    let out = handoff(&["state"], &config);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in
        ["instance demo-salesforce", "leads", "outbox: 0 queued, 0 failed", "cursors:", "leads ", "activities "]
    {
        assert!(text.contains(needle), "`handoff state` lacks {needle:?}:\n{text}");
    }

    let out = handoff(&["state", "--json"], &config);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["counts"]["leads"].as_u64().unwrap() > 0);
    assert!(report["counts"]["ledger"].as_u64().unwrap() > 0);

    // Re-read leads from the timeline's second day.
    let out = handoff(&["state", "--json", "--resync", "leads", "--since", "2026-03-03"], &config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let leads_cursor = report["cursors"].as_array().unwrap().iter().find(|c| c[0] == "leads").unwrap()[1]
        .as_str()
        .unwrap()
        .to_string();
    let cursor: serde_json::Value = serde_json::from_str(&leads_cursor).unwrap();
    assert_eq!(cursor["done_until_ms"], serde_json::json!(1_772_496_000_000i64), "{cursor}");
    let calls_before = sb.shared.log.len();
    let run = handoff(&["run", "--once"], &config);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(sb.shared.log.len() > calls_before, "the re-read reads");
    assert_eq!(handoff::demo::sandbox_duplicates(&sb).await.unwrap(), 0, "a re-read creates nothing twice");
    assert_eq!(
        handoff::demo::sandbox_tasks(&sb).await.unwrap().len(),
        tasks_before,
        "and nothing new: nothing changed"
    );

    // A lead replayed from the state at the instant the daemon last judged
    // it says what the daemon concluded.
    let store = handoff::store::Store::open(&handoff::config::load(&config).unwrap().instance.state_dir).unwrap();
    let (id, state) = store.states().unwrap().into_iter().find(|(_, s)| s.mql && s.waived.is_none()).unwrap();
    drop(store);
    let out = Command::new(common::binary())
        .args(["explain", "--config"])
        .arg(&config)
        .args(["--from-state", &id, "--now", &state.evaluated_at.to_rfc3339(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ev["lead_id"], serde_json::json!(id));
    let replayed: Vec<(String, String)> = ev["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect();
    let stored: Vec<(String, String)> =
        state.clocks.iter().map(|c| (c.kind.as_str().to_string(), c.status.as_str().to_string())).collect();
    assert_eq!(replayed, stored, "explain --from-state replays the daemon's judgement");

    // Compacting keeps everything: the same report, and a run after it
    // redoes nothing.
    let report_before: serde_json::Value =
        serde_json::from_slice(&handoff(&["state", "--json"], &config).stdout).unwrap();
    let out = handoff(&["state", "--compact"], &config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the state database was compacted"), "{text}");
    let report_after: serde_json::Value =
        serde_json::from_slice(&handoff(&["state", "--json"], &config).stdout).unwrap();
    assert_eq!(report_after["counts"], report_before["counts"]);
    assert_eq!(report_after["cursors"], report_before["cursors"]);
    let run = handoff(&["run", "--once"], &config);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(handoff::demo::sandbox_tasks(&sb).await.unwrap().len(), tasks_before, "nothing redone after compacting");

    // A bad date is refused with the forms that work.
    let out = handoff(&["state", "--resync", "leads", "--since", "yesterday"], &config);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2026-03-01"), "{}", String::from_utf8_lossy(&out.stderr));
    sb.stop().await;
}

/// A first start on an org with a backlog (the whole of a two-year org at
/// its end): `handoff state` names the open MQLs past every deadline, by
/// owner, and the start raised no task about them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_names_the_backlog_a_first_start_found_and_left_alone() {
    let sb = common::frozen_sandbox(CrmKind::Hubspot, 9, 150, 730, false).await;
    let dir = tempfile::tempdir().unwrap();
    // The demo enforces its whole timeline; a real first start does not.
    let config = common::write_config(&sb, dir.path(), 1, |t| {
        t.get_mut("sync").and_then(toml::Value::as_table_mut).map(|s| s.remove("enforce_from"));
    });
    let run = handoff(&["run", "--once"], &config);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(handoff::demo::sandbox_tasks(&sb).await.unwrap().len(), 0, "no task about the past");

    let out = handoff(&["state", "--json"], &config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backlog = &report["graveyard"];
    let leads = backlog["leads"].as_u64().unwrap();
    assert!(leads > 0, "{backlog}");
    let by_owner: u64 = backlog["by_owner"].as_object().unwrap().values().filter_map(|v| v.as_u64()).sum();
    assert_eq!(by_owner, leads, "{backlog}");
    let text = String::from_utf8_lossy(&handoff(&["state"], &config).stdout).to_string();
    assert!(
        text.contains(&format!("backlog (measured, not enforced; clean it up in the CRM): {leads} open MQL(s)")),
        "{text}"
    );
    sb.stop().await;
}

/// `handoff state --compact` killed at each step of its swap (copy whole,
/// copy marked, old database moved aside): the next open finishes or
/// undoes it, and nothing is lost — counts, cursors, every stored value —
/// nor done twice by the run after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_killed_at_each_step_loses_nothing() {
    use std::os::unix::process::ExitStatusExt as _;
    let (sb, _dir, config, tasks_before) = ran_once(CrmKind::Hubspot, 5, 60).await;
    let state_dir = handoff::config::load(&config).unwrap().instance.state_dir;
    let stored = || {
        let store = handoff::store::Store::open(&state_dir).unwrap();
        let entries = store.plain_entries().unwrap();
        assert_eq!(store.counts().unwrap(), store.recount().unwrap());
        assert_eq!(store.clock_counts().unwrap(), store.recount_clocks().unwrap());
        entries
    };
    let before = stored();
    assert!(before.len() > 100, "a store worth compacting: {} entries", before.len());

    for point in handoff::failpoints::COMPACTION {
        let out = Command::new(common::binary())
            .args(["state", "--compact", "--config"])
            .arg(&config)
            .env("HANDOFF_FAILPOINTS", format!("{point}=1"))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "{point}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint {point} reached")));
        assert_eq!(stored(), before, "after a kill at {point}, every key and value is there");
    }
    let out = handoff(&["state", "--compact"], &config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stored(), before, "after a whole compaction");

    sb.shared.clock.advance(chrono::Duration::minutes(10));
    let run = handoff(&["run", "--once"], &config);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(handoff::demo::sandbox_duplicates(&sb).await.unwrap(), 0);
    assert!(handoff::demo::sandbox_tasks(&sb).await.unwrap().len() >= tasks_before);
    sb.stop().await;
}
