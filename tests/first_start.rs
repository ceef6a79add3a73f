//! A first start on an old org measures the past and enforces only the
//! present. The org has two years of history and a graveyard (MQLs never
//! touched or closed, long past every deadline): the first start raises no
//! task and no reassignment for them, writes no SLA field on any historic
//! record, still counts them in the scorecard, and names the backlog by
//! owner. A lead that arrives after the start is enforced as usual. Writes
//! are counted in the sandbox's own request log, on both CRMs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use handoff::demo::{config_table, Simulation};
use handoff_model::CrmKind;
use handoff_sandbox::{LoggedRequest, RunningSandbox};
use serde_json::json;

/// Records the requests from `since` wrote: (tasks created, leads updated).
fn writes(crm: CrmKind, sb: &RunningSandbox, since: usize) -> (usize, usize) {
    let log: Vec<LoggedRequest> = sb.shared.log.snapshot().into_iter().skip(since).filter(|r| r.status < 300).collect();
    match crm {
        CrmKind::Salesforce => {
            let records: Vec<&serde_json::Value> = log.iter().flat_map(|r| r.collection_records()).collect();
            let of = |t: &str| records.iter().filter(|rec| rec["attributes"]["type"] == t).count();
            (of("Task"), of("Lead"))
        }
        CrmKind::Hubspot => {
            let inputs = |path: &str| {
                log.iter()
                    .filter(|r| r.path == path)
                    .filter_map(|r| r.body.as_ref()?.get("inputs")?.as_array().map(Vec::len))
                    .sum::<usize>()
            };
            (inputs("/crm/v3/objects/tasks/batch/create"), inputs("/crm/v3/objects/contacts/batch/update"))
        }
    }
}

/// A new MQL arriving now, like the historic MQL `template` (a copy of its
/// fit and intent, a new identity, qualified now).
async fn add_fresh_mql(crm: CrmKind, sb: &RunningSandbox, template: &str) {
    let now = sb.shared.clock.now().to_rfc3339();
    let http = reqwest::Client::new();
    match crm {
        CrmKind::Salesforce => {
            let url = format!("{}/salesforce/records/Lead", sb.admin_url.trim_end_matches('/'));
            let dump: serde_json::Value = http.get(&url).send().await.expect("dump").json().await.expect("JSON");
            let mut lead = dump["records"]
                .as_array()
                .and_then(|all| all.iter().find(|r| r["Id"] == template))
                .and_then(|r| r.as_object().cloned())
                .expect("the template lead");
            lead.retain(|k, v| {
                !v.is_null()
                    && !k.starts_with("SLA_")
                    && ![
                        "Id",
                        "CreatedDate",
                        "CreatedById",
                        "LastModifiedDate",
                        "LastModifiedById",
                        "SystemModstamp",
                        "IsDeleted",
                        "MasterRecordId",
                        "LastActivityDate",
                        "ConvertedDate",
                        "Disqualification_Reason__c",
                    ]
                    .contains(&k.as_str())
            });
            lead.insert("LastName".into(), json!("Fresh"));
            lead.insert("Email".into(), json!("fresh@now.example"));
            lead.insert("Status".into(), json!("Open - Not Contacted"));
            lead.insert("IsConverted".into(), json!(false));
            lead.insert("MQL_Date__c".into(), json!(now));
            let r = http.post(&url).json(&lead).send().await.expect("create");
            assert!(r.status().is_success(), "creating the new lead: {}", r.status());
        }
        CrmKind::Hubspot => {
            let url = format!("{}/__sandbox/hubspot/objects/contacts", sb.base_url.trim_end_matches('/'));
            let dump: serde_json::Value =
                http.get(format!("{url}?associations=false")).send().await.expect("dump").json().await.expect("JSON");
            let mut props = dump["results"]
                .as_array()
                .and_then(|all| all.iter().find(|r| r["id"] == template))
                .and_then(|r| r["properties"].as_object().cloned())
                .expect("the template contact");
            props.retain(|k, v| {
                !v.is_null()
                    && !k.starts_with("handoff_")
                    && ![
                        "hs_object_id",
                        "createdate",
                        "lastmodifieddate",
                        "hs_merged_object_ids",
                        "disqualification_reason",
                    ]
                    .contains(&k.as_str())
            });
            props.insert("email".into(), json!("fresh@now.example"));
            props.insert("lifecyclestage".into(), json!("marketingqualifiedlead"));
            props.insert("hs_lifecyclestage_marketingqualifiedlead_date".into(), json!(now));
            props.insert("hs_lead_status".into(), json!("NEW"));
            let r = http.post(&url).json(&json!({"properties": props})).send().await.expect("create");
            assert!(r.status().is_success(), "creating the new contact: {}", r.status());
        }
    }
}

async fn first_start_measures_the_past_and_enforces_the_present(crm: CrmKind) {
    // Two years of an org, seen whole at its end.
    let sb = common::frozen_sandbox(crm, 17, 200, 730, false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut table = config_table(&sb, dir.path()).expect("demo config");
    // The demo enforces its whole timeline; a real first start does not.
    table.get_mut("sync").and_then(toml::Value::as_table_mut).expect("[sync]").remove("enforce_from");
    let config = handoff::config::parse(&toml::to_string(&table).expect("renders")).expect("valid config");
    let mut daemon = Simulation::daemon(&config, &sb).await.expect("daemon");
    let started = sb.shared.clock.now();

    for _ in 0..50 {
        let r = daemon.tick().await.expect("tick");
        assert!(r.errors.is_empty(), "{crm}: {:?}", r.errors);
        if r.caught_up {
            break;
        }
    }
    let (tasks, lead_writes) = writes(crm, &sb, 0);
    assert_eq!(
        (tasks, lead_writes),
        (0, 0),
        "{crm}: the first start wrote {tasks} task(s) and {lead_writes} lead update(s)"
    );

    // The past is judged: breached clocks, a graveyard by owner.
    let store = daemon.store();
    let states = store.states().expect("states");
    let breached =
        states.values().flat_map(|s| &s.clocks).filter(|c| c.status == handoff::engine::ClockStatus::Breached).count();
    assert!(breached > 10, "{crm}: the history's breaches are measured ({breached})");
    let graveyard = handoff::report::graveyard::graveyard(states.values(), Some(started));
    assert!(graveyard.leads > 0, "{crm}: the org's graveyard is found");
    assert!(!graveyard.by_owner.is_empty());
    assert_eq!(graveyard.by_owner.values().sum::<usize>(), graveyard.leads);
    // The scorecard covers the history: its weeks count MQLs.
    let weeks = 104;
    let scorecard =
        handoff::report::from_store("first-start", daemon.policy(), store, weeks, started, None).expect("scorecard");
    let mqls: u64 = scorecard.weeks.iter().filter_map(|w| w.groups.get("all")).map(|m| m.mqls).sum();
    assert!(mqls > 50, "{crm}: the scorecard counts the history's MQLs ({mqls})");

    // The present is enforced: a lead arriving now gets its SLA fields and,
    // once its window runs short, a reminder.
    let since = sb.shared.log.len();
    let template = states.iter().find(|(_, s)| s.mql).map(|(id, _)| id.clone()).expect("an MQL in the history");
    add_fresh_mql(crm, &sb, &template).await;
    for _ in 0..(3 * 24 * 2) {
        sb.shared.clock.advance(chrono::Duration::minutes(30));
        let r = daemon.tick().await.expect("tick");
        assert!(r.errors.is_empty(), "{crm}: {:?}", r.errors);
    }
    let (tasks, lead_writes) = writes(crm, &sb, since);
    assert!(lead_writes > 0, "{crm}: the new lead's SLA fields are written");
    assert!(tasks > 0, "{crm}: the new lead's clocks raise tasks");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_first_start_measures_the_past_and_enforces_the_present() {
    first_start_measures_the_past_and_enforces_the_present(CrmKind::Salesforce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_first_start_measures_the_past_and_enforces_the_present() {
    first_start_measures_the_past_and_enforces_the_present(CrmKind::Hubspot).await;
}

/// A state directory filled before `sync.enforce_from` existed enforced
/// every clock; left unset after an upgrade, it goes on doing so (rather
/// than taking the upgrade for a first start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_from_before_the_setting_keeps_enforcing_every_clock() {
    let sb = common::frozen_sandbox(CrmKind::Salesforce, 23, 60, 30, false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut table = config_table(&sb, dir.path()).expect("demo config");
    let config = handoff::config::parse(&toml::to_string(&table).expect("renders")).expect("valid config");
    {
        let mut daemon = Simulation::daemon(&config, &sb).await.expect("daemon");
        for _ in 0..20 {
            if daemon.tick().await.expect("tick").caught_up {
                break;
            }
        }
        assert!(daemon.store().counts().expect("counts").leads > 0);
        assert_eq!(daemon.store().meta_text(handoff::daemon::FIRST_START).expect("meta"), None);
    }
    table.get_mut("sync").and_then(toml::Value::as_table_mut).expect("[sync]").remove("enforce_from");
    let upgraded = handoff::config::parse(&toml::to_string(&table).expect("renders")).expect("valid config");
    let mut daemon = Simulation::daemon(&upgraded, &sb).await.expect("daemon");
    daemon.tick().await.expect("tick");
    assert_eq!(daemon.policy().enforcement.from, Some(chrono::DateTime::UNIX_EPOCH), "every clock stays enforced");
    sb.stop().await;
}

/// A first start on an org whose CRM records time off judges each lead
/// once: the time off is read before any lead is evaluated, so there is no
/// evaluated lead to judge again under it, and no sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_with_time_off_in_the_crm_judges_each_lead_once() {
    use handoff_sandbox::org::{Leave, OrgConfig};
    let mut opts = handoff_sandbox::SandboxOptions::new(CrmKind::Salesforce);
    opts.org = OrgConfig {
        seed: 5,
        leads: 120,
        days: 10,
        leave: vec![Leave { rep: 0, from_day: 1, days: 2 }],
        ..OrgConfig::default()
    };
    opts.clock = handoff_sandbox::ClockMode::Frozen;
    opts.replay = false;
    let sb = handoff_sandbox::start(opts).await.unwrap();
    handoff::demo::open_sandbox_limits(&sb).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = handoff::demo::config_for(&sb, dir.path()).unwrap();
    let mut daemon = Simulation::daemon(&config, &sb).await.unwrap();
    let mut evaluated = 0;
    for _ in 0..50 {
        let r = daemon.tick().await.unwrap();
        evaluated += r.evaluated;
        if r.caught_up {
            break;
        }
    }
    let store = daemon.store();
    assert!(!store.absences().unwrap().is_empty(), "the CRM records time off");
    assert_eq!(store.sweep().unwrap(), None);
    let leads = store.evaluated_count().unwrap();
    assert!(leads > 100, "{leads}");
    assert_eq!(evaluated, leads, "each lead judged once");
    sb.stop().await;
}

/// A first start's backfill marks no lead dirty (every lead it reads is
/// new: a million marks, and a million deletes, for nothing) and files
/// activities without indexing them, through a restart in the middle; once
/// every stream is read, the index is built and one sweep evaluates
/// every stored lead exactly once, and from then on a lead that changes is
/// marked and judged as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_marks_no_lead_dirty_and_then_judges_every_lead_once() {
    // HubSpot lists contacts with history 50 a page: 400 leads are pages.
    let sb = common::frozen_sandbox(CrmKind::Hubspot, 29, 400, 40, false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut table = config_table(&sb, dir.path()).expect("demo config");
    let sync = table.get_mut("sync").and_then(toml::Value::as_table_mut).expect("[sync]");
    sync.insert("pages_per_tick".into(), toml::Value::Integer(2));
    let text = toml::to_string(&table).expect("renders");
    let config = handoff::config::parse(&text).expect("valid config");
    let config_path = dir.path().join("handoff.toml");
    std::fs::write(&config_path, &text).expect("writes the config");

    let mut evaluated = 0;
    let mut reading_ticks = 0;
    let mut caught_up = false;
    // Two daemons on one state directory: a restart halfway through.
    for run in 0..2 {
        if run == 1 {
            // Between the two, `handoff state` says the first start is reading.
            let out = std::process::Command::new(common::binary())
                .args(["state", "--config"])
                .arg(&config_path)
                .env("RUST_LOG", "warn")
                .output()
                .expect("runs");
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert!(
                shown.contains("first start: reading the CRM; every lead is evaluated once every stream is read"),
                "{shown}"
            );
        }
        let mut daemon = Simulation::daemon(&config, &sb).await.expect("daemon");
        for _ in 0..100 {
            let r = daemon.tick().await.expect("tick");
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            evaluated += r.evaluated;
            let store = daemon.store();
            if !r.streams_behind.is_empty() {
                reading_ticks += 1;
                assert_eq!(r.evaluated, 0, "nothing is judged before every stream is read");
                assert_eq!(store.counts().expect("counts").dirty, 0, "the backfill marks no lead dirty");
                assert_eq!(store.sweep().expect("sweep"), None);
                assert!(store.counts().expect("counts").leads > 0);
                assert!(store.activity_index_deferred().expect("meta"), "activities are filed, not indexed");
            }
            if r.caught_up {
                caught_up = true;
                break;
            }
            if run == 0 && reading_ticks == 2 {
                break;
            }
        }
        if caught_up {
            let store = daemon.store().clone();
            let leads = store.counts().expect("counts").leads;
            assert!(!handoff::daemon::first_sweep_owed(&store).expect("meta"), "`handoff state` says it no more");
            assert!(reading_ticks > 2, "the backfill took several ticks: {reading_ticks}");
            assert_eq!(store.sweep().expect("sweep"), None, "the first sweep ended");
            assert_eq!(store.evaluated_count().expect("evaluated"), leads, "every stored lead is evaluated");
            assert_eq!(evaluated, leads, "each lead judged once");
            // The activity index was built before the sweep: every activity
            // filed is found by its id, under the lead it is filed with.
            assert!(!store.activity_index_deferred().expect("meta"));
            let activities = store.all_activities().expect("activities");
            assert!(activities.len() > leads, "the org's activities are read: {}", activities.len());
            for a in &activities {
                assert_eq!(store.activity_lead(&a.id).expect("index").as_deref(), Some(a.lead_id.as_str()), "{}", a.id);
            }
            assert_eq!(store.counts().expect("counts"), store.recount().expect("recount"));

            // After the first start: a new lead is marked, and judged.
            let template = store.states().expect("states").keys().next().cloned().expect("a lead");
            add_fresh_mql(CrmKind::Hubspot, &sb, &template).await;
            for _ in 0..4 {
                sb.shared.clock.advance(chrono::Duration::minutes(30));
                let r = daemon.tick().await.expect("tick");
                assert!(r.errors.is_empty(), "{:?}", r.errors);
            }
            assert_eq!(store.counts().expect("counts").leads, leads + 1);
            assert_eq!(store.evaluated_count().expect("evaluated"), leads + 1, "the new lead is judged");
            assert_eq!(store.counts().expect("counts").dirty, 0);
        }
    }
    assert!(caught_up, "the first start caught up");
    sb.stop().await;
}
