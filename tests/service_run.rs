//! `service::run` in process, stopped by its own shutdown future: the write
//! in flight when the future fires finishes and is recorded, the HTTP
//! endpoint stops, and the state directory is released (it opens again at
//! once). No signal, no child process, no timing: the sandbox holds the
//! write at a gate until the test has fired the future.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeSet;

use handoff::daemon::service::{self, exit, RunOptions, Signals};
use handoff::store::Store;
use handoff_model::CrmKind;
use serde_json::Value;

/// The lead ids a write request carried: a lead's own id, or the lead a
/// task is about (Salesforce's collections carry both kinds of record).
fn leads_written(crm: CrmKind, body: &Value) -> BTreeSet<String> {
    // Salesforce: one collection, or several inside a Composite request.
    let collections: Vec<&Value> = match body["compositeRequest"].as_array() {
        Some(subrequests) => subrequests.iter().map(|s| &s["body"]).collect(),
        None => vec![body],
    };
    let rows: Vec<&Value> = match crm {
        CrmKind::Salesforce => collections.iter().filter_map(|c| c["records"].as_array()).flatten().collect(),
        CrmKind::Hubspot => body["inputs"].as_array().into_iter().flatten().collect(),
    };
    rows.into_iter()
        .filter_map(|r| match crm {
            CrmKind::Salesforce if r["attributes"]["type"] == "Task" => r["WhoId"].as_str(),
            // Field names are case-insensitive to Salesforce.
            CrmKind::Salesforce => r["Id"].as_str().or(r["id"].as_str()),
            CrmKind::Hubspot => r["id"].as_str(),
        })
        .map(str::to_string)
        .collect()
}

async fn stop_while_writing(crm: CrmKind) {
    // The whole org visible at once: the first tick has SLA fields to write.
    let sb = common::frozen_sandbox(crm, 5, 40, 5, false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sb, dir.path(), 60, |t| {
        let daemon = t.entry("daemon").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let daemon = daemon.as_table_mut().unwrap();
        daemon.insert("metrics_listen".into(), "127.0.0.1:0".into());
        daemon.insert("shutdown_grace_secs".into(), toml::Value::Integer(600));
    });
    // Lead updates: Salesforce sObject collections (alone or in a Composite
    // request), a HubSpot batch update.
    let writes = match crm {
        CrmKind::Salesforce => "/composite",
        CrmKind::Hubspot => "/objects/contacts/batch/update",
    };
    let gate = sb.shared.faults.hold(writes);

    let (fire, fired) = tokio::sync::oneshot::channel::<()>();
    let (signals, _reload) = Signals::new(async move {
        let _ = fired.await;
    });
    let service = tokio::spawn({
        let config = config.clone();
        async move { service::run(&config, RunOptions { once: false }, signals).await }
    });

    gate.wait_held(1).await;
    fire.send(()).unwrap();
    gate.open();
    let code = service.await.unwrap().unwrap_or_else(|e| panic!("{crm}: run failed: {e:#}"));
    assert_eq!(code, exit::OK, "{crm}: the write in flight finished inside the grace");

    // The held write was answered, and what it carried is in the ledger.
    let log = sb.shared.log.snapshot();
    let held: Vec<_> = log.iter().filter(|r| r.path.contains(writes)).collect();
    assert!(!held.is_empty(), "{crm}: the held write never reached the CRM");
    let first = held[0];
    assert!((200..300).contains(&first.status), "{crm}: the held write was answered {}", first.status);
    let written = leads_written(crm, first.body.as_ref().expect("the write's body is logged"));
    assert!(!written.is_empty(), "{crm}: the held write carried no lead");

    // The process-level state is closed: the store opens again at once,
    // which sled refuses while anything still holds it.
    let store = Store::open(&service::store_dir(&handoff::config::load(&config).unwrap()))
        .unwrap_or_else(|e| panic!("{crm}: the state directory is still held: {e}"));
    let ledger: BTreeSet<String> = store.ledger_entries().unwrap().into_iter().map(|(_, e)| e.lead_id).collect();
    let missing: Vec<_> = written.difference(&ledger).collect();
    assert!(missing.is_empty(), "{crm}: written to the CRM but not in the ledger: {missing:?}");

    drop(store);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_run_stops_on_its_future_after_the_write_in_flight() {
    stop_while_writing(CrmKind::Salesforce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_run_stops_on_its_future_after_the_write_in_flight() {
    stop_while_writing(CrmKind::Hubspot).await;
}
