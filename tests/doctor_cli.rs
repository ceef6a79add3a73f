//! `handoff doctor` against the sandbox, on both CRMs: a prepared org
//! passes every line; an org prepared with one problem fails exactly that
//! line, with its fix; nothing is written unless asked (`--fix`,
//! `--write-package`), counted in the sandbox's request log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handoff_model::CrmKind;
use handoff_sandbox::RunningSandbox;
use serde_json::{json, Value};

const LEADS: usize = 30;
const DAYS: u32 = 7;

/// A small org, the whole timeline visible, limits open.
async fn org(crm: CrmKind) -> RunningSandbox {
    let sb = common::frozen_sandbox(crm, 7, LEADS, DAYS, false).await;
    if crm == CrmKind::Hubspot {
        // The portal an admin prepared: the task key property exists, unique.
        create_task_key(&sb, true).await;
    }
    sb
}

async fn admin(sb: &RunningSandbox, method: reqwest::Method, path: &str, body: Value) -> Value {
    let url = format!("{}/{path}", sb.admin_url);
    let resp = reqwest::Client::new().request(method, &url).json(&body).send().await.expect("admin request");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

/// Creates `handoff_key` on tasks through the API, as an admin would.
async fn create_task_key(sb: &RunningSandbox, unique: bool) {
    let token = sb.credentials["access_token"].as_str().expect("a private-app token");
    let body = json!({"name": "handoff_key", "label": "Handoff key", "type": "string", "fieldType": "text", "groupName": "task", "hasUniqueValue": unique});
    let resp = reqwest::Client::new()
        .post(format!("{}/crm/v3/properties/tasks", sb.base_url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("property create");
    assert_eq!(resp.status().as_u16(), 201);
}

/// Creates a contact property of another type than the policy wants.
async fn create_contact_property(sb: &RunningSandbox, name: &str, kind: &str) {
    let token = sb.credentials["access_token"].as_str().expect("a private-app token");
    let body =
        json!({"name": name, "label": name, "type": kind, "fieldType": "text", "groupName": "contactinformation"});
    let resp = reqwest::Client::new()
        .post(format!("{}/crm/v3/properties/contacts", sb.base_url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("property create");
    assert_eq!(resp.status().as_u16(), 201);
}

/// Writes the demo config for `sb` into `dir/name/`, changed by `edit`.
fn config(sb: &RunningSandbox, dir: &Path, name: &str, edit: impl FnOnce(&mut toml::Table)) -> PathBuf {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("config dir");
    common::write_config(sb, &dir, 60, edit)
}

/// Runs `handoff doctor --json` with `args`; the exit code and the answer.
async fn doctor(sb: &RunningSandbox, config: &Path, args: &[&str]) -> (i32, Value) {
    admin(sb, reqwest::Method::DELETE, "requests", Value::Null).await;
    let mut cmd = std::process::Command::new(common::binary());
    cmd.arg("doctor").arg("--config").arg(config).arg("--json").args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("joins").expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answer: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("doctor printed no JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().expect("exited"), answer)
}

/// Requests that change the org: anything but reads, token requests,
/// searches and token-info lookups.
async fn writes(sb: &RunningSandbox) -> Vec<String> {
    let log = admin(sb, reqwest::Method::GET, "requests", Value::Null).await;
    log.as_array()
        .expect("a list")
        .iter()
        .filter(|r| r["method"] != "GET")
        .map(|r| format!("{} {}", r["method"].as_str().unwrap_or(""), r["path"].as_str().unwrap_or("")))
        .filter(|r| {
            !(r.contains("/oauth2/token")
                || r.contains("/oauth/v1/token")
                || r.ends_with("/search")
                || r.contains("access-token-info"))
        })
        .collect()
}

/// Calls the CRM counted against its limit since the log was cleared.
async fn counted(sb: &RunningSandbox) -> u64 {
    let log = admin(sb, reqwest::Method::GET, "requests", Value::Null).await;
    log.as_array().expect("a list").iter().filter(|r| r["counted"] == true).count() as u64
}

/// Today's usage that leaves handoff (half of `daily_limit`, the demo
/// config's share) enough for the doctor's own calls, as the run that gave
/// `answer` made them, plus half of what a backfill needs: never stopped
/// by the budget, always short of the backfill.
async fn squeezed_budget(sb: &RunningSandbox, answer: &Value, daily_limit: u64) -> u64 {
    let backfill = answer["org"]["backfill_calls"].as_u64().expect("backfill_calls");
    assert!(backfill >= 2, "{answer:#}");
    let own = counted(sb).await;
    daily_limit / 2 - own - backfill / 2
}

fn statuses(answer: &Value) -> BTreeMap<String, String> {
    answer["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (c["check"].as_str().unwrap_or("").to_string(), c["status"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn line<'a>(answer: &'a Value, check: &str) -> &'a Value {
    answer["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no {check} line in {answer:#}"))
}

/// Every line ok except `check`, which has `status` and a fix.
fn only(answer: &Value, check: &str, status: &str) {
    for (name, got) in statuses(answer) {
        let want = if name == check { status } else { "ok" };
        assert_eq!(got, want, "{name}: {:#}", line(answer, &name));
    }
    let l = line(answer, check);
    assert!(l["fix"].as_str().is_some_and(|f| !f.is_empty()), "{check} has no fix: {l:#}");
}

fn set_pool(table: &mut toml::Table, pool: &str) {
    let levels = table["policy"]["escalation"]["levels"].as_array().expect("levels").clone();
    let mut levels = levels;
    for l in levels.iter_mut() {
        let t = l.as_table_mut().expect("a level");
        if t.get("to").and_then(|v| v.as_str()).is_some_and(|s| s.starts_with("pool:")) {
            t.insert("to".into(), format!("pool:{pool}").into());
        }
    }
    let policy = table.get_mut("policy").and_then(|p| p.as_table_mut()).expect("policy");
    let esc = policy.get_mut("escalation").and_then(|e| e.as_table_mut()).expect("escalation");
    esc.insert("levels".into(), toml::Value::Array(levels));
}

const DELETE: reqwest::Method = reqwest::Method::DELETE;
const POST: reqwest::Method = reqwest::Method::POST;
const PATCH: reqwest::Method = reqwest::Method::PATCH;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_prepared_org_passes_every_line_without_writing() {
    let sb = org(CrmKind::Salesforce).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, answer) = doctor(&sb, &config(&sb, dir.path(), "base", |_| {}), &[]).await;
    for (name, status) in statuses(&answer) {
        assert_eq!(status, "ok", "{name}: {:#}", line(&answer, &name));
    }
    assert_eq!(code, 0, "{answer:#}");
    let checks = statuses(&answer);
    for name in [
        "sla_field.grade",
        "sla_field.due_at",
        "sla_field.status",
        "sla_field.breach_count",
        "policy_fields",
        "task_key",
        "history_tracking",
        "pool.00GHs0000000001MAA",
        "owner_managers",
        "owner_time_zones",
        "api_budget",
    ] {
        assert!(checks.contains_key(name), "no {name} line: {answer:#}");
    }
    // Some generated leads are deleted or merged away by the end.
    let leads = answer["org"]["leads"].as_u64().unwrap();
    assert!(leads > 0 && leads <= LEADS as u64, "{leads}");
    assert!(answer["org"]["activities"].as_u64().unwrap() > 0);
    assert_eq!(writes(&sb).await, Vec::<String>::new());

    // The text checklist: one line per check, then the count.
    let cfg = config(&sb, dir.path(), "base", |_| {});
    let out = std::process::Command::new(common::binary()).arg("doctor").arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), checks.len() + 1, "{text}");
    assert!(lines[..checks.len()].iter().all(|l| l.starts_with("ok    ")), "{text}");
    assert_eq!(lines[checks.len()], format!("0 missing, 0 warning(s), {} check(s)", checks.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_each_problem_fails_exactly_its_line() {
    // An SLA field of the wrong type.
    let sb = org(CrmKind::Salesforce).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sb, dir.path(), "base", |_| {});
    admin(&sb, DELETE, "salesforce/fields/Lead/SLA_Due__c", Value::Null).await;
    admin(&sb, POST, "salesforce/fields/Lead", json!({"name": "SLA_Due__c", "type": "string"})).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "sla_field.due_at", "miss");
    assert_eq!(code, 8);
    admin(&sb, DELETE, "salesforce/fields/Lead/SLA_Due__c", Value::Null).await;
    admin(&sb, POST, "salesforce/fields/Lead", json!({"name": "SLA_Due__c", "type": "datetime"})).await;

    // The task key without External ID.
    admin(&sb, DELETE, "salesforce/fields/Task/Handoff_Key__c", Value::Null).await;
    admin(&sb, POST, "salesforce/fields/Task", json!({"name": "Handoff_Key__c", "type": "string"})).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "task_key", "miss");
    assert!(line(&answer, "task_key")["fix"].as_str().unwrap().contains("External ID"));
    assert_eq!(code, 8);
    admin(&sb, DELETE, "salesforce/fields/Task/Handoff_Key__c", Value::Null).await;
    admin(
        &sb,
        POST,
        "salesforce/fields/Task",
        json!({"name": "Handoff_Key__c", "type": "string", "externalId": true, "unique": true}),
    )
    .await;

    // History not tracked.
    admin(&sb, POST, "salesforce/field-history", json!({"enabled": false})).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "history_tracking", "miss");
    assert_eq!(code, 8);
    admin(&sb, POST, "salesforce/field-history", json!({"enabled": true})).await;

    // History on, but not for Lead Status (FieldDefinition.IsFieldHistoryTracked).
    admin(&sb, POST, "salesforce/field-history", json!({"enabled": true, "fields": ["OwnerId"]})).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "history_tracking", "miss");
    let history = line(&answer, "history_tracking");
    assert!(history["detail"].as_str().unwrap().contains("Lead Status"), "{history:#}");
    assert!(!history["detail"].as_str().unwrap().contains("Lead Owner"), "{history:#}");
    assert_eq!(code, 8);
    admin(&sb, POST, "salesforce/field-history", json!({"enabled": true, "fields": ["OwnerId", "Status"]})).await;

    // A rep without a manager, while the ladder escalates to managers.
    let users = admin(&sb, reqwest::Method::GET, "salesforce/records/User", Value::Null).await;
    let leads = admin(&sb, reqwest::Method::GET, "salesforce/records/Lead", Value::Null).await;
    let is_manager =
        |id: &str| users["records"].as_array().unwrap().iter().any(|o| o["ManagerId"].as_str() == Some(id));
    let rep = leads["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["IsDeleted"] == false)
        .filter_map(|l| l["OwnerId"].as_str())
        .find(|id| id.starts_with("005") && !is_manager(id))
        .expect("a rep owning a lead")
        .to_string();
    admin(&sb, PATCH, &format!("salesforce/records/User/{rep}"), json!({"ManagerId": null})).await;
    // Owners are read in windows ending 5 minutes before now, as in a sync.
    admin(&sb, POST, "clock", json!({"advance_secs": 600})).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "owner_managers", "miss");
    assert!(line(&answer, "owner_managers")["detail"].as_str().unwrap().contains(&rep));
    assert_eq!(code, 8);

    // With no manager rung on the ladder, the same is only a warning.
    let cfg_no_managers = config(&sb, dir.path(), "no-manager-rung", |t| {
        let policy = t.get_mut("policy").and_then(|p| p.as_table_mut()).unwrap();
        let esc = policy.get_mut("escalation").and_then(|e| e.as_table_mut()).unwrap();
        esc.insert(
            "levels".into(),
            toml::Value::Array(vec![toml::Value::Table(toml::toml! { after = "0" to = "pool:00GHs0000000001MAA" })]),
        );
    });
    let (code, answer) = doctor(&sb, &cfg_no_managers, &[]).await;
    only(&answer, "owner_managers", "warn");
    assert_eq!(code, 0);
    let manager =
        users["records"].as_array().unwrap().iter().find(|u| u["Id"] == rep.as_str()).unwrap()["ManagerId"].clone();
    admin(&sb, PATCH, &format!("salesforce/records/User/{rep}"), json!({"ManagerId": manager})).await;
    admin(&sb, POST, "clock", json!({"advance_secs": 600})).await;

    // A ladder pool that is no queue of the org.
    let cfg_pool = config(&sb, dir.path(), "pool", |t| set_pool(t, "00GHs0000000009XAA"));
    let (code, answer) = doctor(&sb, &cfg_pool, &[]).await;
    only(&answer, "pool.00GHs0000000009XAA", "miss");
    assert_eq!(code, 8);

    // Too little budget left today for a backfill.
    let (_, answer) = doctor(&sb, &cfg, &[]).await;
    let used = squeezed_budget(&sb, &answer, 1_000).await;
    admin(&sb, POST, "salesforce/limits", json!({"daily_limit": 1_000, "used": used})).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "api_budget", "miss");
    assert_eq!(code, 8);
    admin(&sb, POST, "salesforce/limits", json!({"daily_limit": 5_000_000, "used": 0})).await;

    // Every check passes again, and none of this wrote anything.
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    assert_eq!(code, 0, "{answer:#}");
    assert_eq!(writes(&sb).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_missing_fields_become_a_metadata_package_and_no_write() {
    let sb = org(CrmKind::Salesforce).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sb, dir.path(), "base", |_| {});
    admin(&sb, DELETE, "salesforce/fields/Lead/SLA_Breach_Count__c", Value::Null).await;
    admin(&sb, DELETE, "salesforce/fields/Task/Handoff_Key__c", Value::Null).await;
    let pkg = dir.path().join("package");
    let (code, answer) = doctor(&sb, &cfg, &["--write-package", pkg.to_str().unwrap()]).await;
    assert_eq!(code, 8);
    let st = statuses(&answer);
    assert_eq!(st["sla_field.breach_count"], "miss");
    assert_eq!(st["task_key"], "miss");
    assert_eq!(st.values().filter(|s| *s != "ok").count(), 2, "{answer:#}");
    assert_eq!(answer["package"], json!(["package.xml", "objects/Lead.object", "objects/Activity.object"]));
    let package = std::fs::read_to_string(pkg.join("package.xml")).unwrap();
    assert!(package.contains("<members>Lead.SLA_Breach_Count__c</members>"), "{package}");
    assert!(package.contains("<members>Activity.Handoff_Key__c</members>"), "{package}");
    let lead = std::fs::read_to_string(pkg.join("objects/Lead.object")).unwrap();
    assert!(
        lead.contains("<fullName>SLA_Breach_Count__c</fullName>") && lead.contains("<type>Number</type>"),
        "{lead}"
    );
    let activity = std::fs::read_to_string(pkg.join("objects/Activity.object")).unwrap();
    assert!(activity.contains("<externalId>true</externalId>"), "{activity}");
    assert_eq!(writes(&sb).await, Vec::<String>::new());
    // --fix is HubSpot's: Salesforce's fields are deployed, and it says so.
    let out =
        std::process::Command::new(common::binary()).args(["doctor", "--fix", "--config"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--write-package"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_prepared_org_passes_every_line_without_writing() {
    let sb = org(CrmKind::Hubspot).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, answer) = doctor(&sb, &config(&sb, dir.path(), "base", |_| {}), &[]).await;
    for (name, status) in statuses(&answer) {
        assert_eq!(status, "ok", "{name}: {:#}", line(&answer, &name));
    }
    assert_eq!(code, 0);
    let checks = statuses(&answer);
    for name in [
        "sla_field.grade",
        "sla_field.due_at",
        "sla_field.status",
        "sla_field.breach_count",
        "policy_fields",
        "task_key",
        "scopes",
        "pool.80000000",
        "owner_managers",
        "owner_time_zones",
        "api_budget",
    ] {
        assert!(checks.contains_key(name), "no {name} line: {answer:#}");
    }
    assert!(!checks.contains_key("history_tracking"));
    let leads = answer["org"]["leads"].as_u64().unwrap();
    assert!(leads > 0 && leads <= LEADS as u64, "{leads}");
    assert_eq!(writes(&sb).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_each_problem_fails_exactly_its_line() {
    let sb = org(CrmKind::Hubspot).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sb, dir.path(), "base", |_| {});

    // An SLA property of the wrong type.
    admin(&sb, DELETE, "hubspot/properties/contacts/handoff_sla_due", Value::Null).await;
    create_contact_property(&sb, "handoff_sla_due", "string").await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "sla_field.due_at", "miss");
    assert_eq!(code, 8);
    admin(&sb, DELETE, "hubspot/properties/contacts/handoff_sla_due", Value::Null).await;
    create_contact_property(&sb, "handoff_sla_due", "datetime").await;

    // The task key without unique values.
    admin(&sb, DELETE, "hubspot/properties/tasks/handoff_key", Value::Null).await;
    create_task_key(&sb, false).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "task_key", "miss");
    assert_eq!(code, 8);
    admin(&sb, DELETE, "hubspot/properties/tasks/handoff_key", Value::Null).await;
    create_task_key(&sb, true).await;

    // A scope missing.
    let scopes = admin(&sb, reqwest::Method::GET, "hubspot/scopes", Value::Null).await;
    let narrowed: Vec<&Value> =
        scopes["scopes"].as_array().unwrap().iter().filter(|s| *s != "crm.objects.owners.read").collect();
    admin(&sb, POST, "hubspot/scopes", json!({"scopes": narrowed})).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "scopes", "miss");
    assert!(line(&answer, "scopes")["detail"].as_str().unwrap().contains("crm.objects.owners.read"));
    assert_eq!(code, 8);
    admin(&sb, POST, "hubspot/scopes", scopes).await;

    // A ladder pool that is no owner of the portal.
    let cfg_pool = config(&sb, dir.path(), "pool", |t| set_pool(t, "89999999"));
    let (code, answer) = doctor(&sb, &cfg_pool, &[]).await;
    only(&answer, "pool.89999999", "miss");
    assert_eq!(code, 8);

    // An owner without a time zone: a warning, and the exit stays 0.
    let cfg_zones = config(&sb, dir.path(), "zones", |t| {
        let hs = t.get_mut("hubspot").and_then(|h| h.as_table_mut()).unwrap();
        let zones = hs.get_mut("owner_time_zones").and_then(|z| z.as_table_mut()).unwrap();
        let first = zones.keys().next().unwrap().clone();
        zones.remove(&first);
    });
    let (code, answer) = doctor(&sb, &cfg_zones, &[]).await;
    only(&answer, "owner_time_zones", "warn");
    assert_eq!(code, 0);

    // Too little budget left today for a backfill.
    let (_, answer) = doctor(&sb, &cfg, &[]).await;
    let used = squeezed_budget(&sb, &answer, 1_000).await;
    admin(&sb, POST, "hubspot/limits", json!({"private_app_daily": 1_000})).await;
    admin(&sb, POST, "hubspot/limits/daily", json!({"used": used})).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "api_budget", "miss");
    assert_eq!(code, 8);

    assert_eq!(writes(&sb).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_fix_creates_the_missing_properties_and_only_those() {
    let sb = org(CrmKind::Hubspot).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sb, dir.path(), "base", |_| {});
    admin(&sb, DELETE, "hubspot/properties/contacts/handoff_sla_breach_count", Value::Null).await;
    admin(&sb, DELETE, "hubspot/properties/tasks/handoff_key", Value::Null).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    assert_eq!(code, 8);
    let st = statuses(&answer);
    assert_eq!((st["sla_field.breach_count"].as_str(), st["task_key"].as_str()), ("miss", "miss"), "{answer:#}");
    assert_eq!(writes(&sb).await, Vec::<String>::new());

    let (code, answer) = doctor(&sb, &cfg, &["--fix"]).await;
    assert_eq!(code, 0, "{answer:#}");
    assert!(statuses(&answer).values().all(|s| s == "ok"), "{answer:#}");
    assert_eq!(answer["fixed"].as_array().unwrap().len(), 2, "{answer:#}");
    assert_eq!(
        writes(&sb).await,
        vec!["POST /crm/v3/properties/contacts".to_string(), "POST /crm/v3/properties/tasks".to_string()]
    );
    let token = sb.credentials["access_token"].as_str().unwrap();
    let key: Value = reqwest::Client::new()
        .get(format!("{}/crm/v3/properties/tasks/handoff_key", sb.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["hasUniqueValue"], true, "{key:#}");
    let due: Value = reqwest::Client::new()
        .get(format!("{}/crm/v3/properties/contacts/handoff_sla_breach_count", sb.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(due["type"], "number", "{due:#}");
}

/// Leads mode: the SLA fields are checked (and created) on the lead
/// records, the leads scopes are required, the portal's lead pipeline
/// stages are listed, and a stage label written where its id belongs is
/// named with the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_leads_mode_checks_the_lead_records_and_lists_the_pipeline_stages() {
    let sb = org(CrmKind::Hubspot).await;
    let dir = tempfile::tempdir().unwrap();
    let leads_mode = |t: &mut toml::Table, working: &str| {
        let overlay = handoff::demo::HUBSPOT_LEADS_MODE.replace("\"attempting-stage-id\"", &format!("{working:?}"));
        handoff::demo::merge_config(t, &toml::from_str(&overlay).unwrap());
    };
    let cfg = config(&sb, dir.path(), "leads", |t| leads_mode(t, "attempting-stage-id"));
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    assert_eq!(code, 0, "{answer:#}");
    let st = line(&answer, "statuses");
    assert_eq!(st["status"], "ok", "{answer:#}");
    let detail = st["detail"].as_str().unwrap();
    assert!(detail.contains("attempting-stage-id (Attempting, Lead pipeline)"), "{detail}");
    let scopes = line(&answer, "scopes")["detail"].as_str().unwrap().to_string();
    assert!(scopes.contains("crm.objects.leads.read") && scopes.contains("crm.objects.leads.write"), "{scopes}");
    let leads = answer["org"]["leads"].as_u64().unwrap();
    assert!(leads > 0 && leads <= LEADS as u64, "lead records counted: {leads}");

    // A label where the id belongs.
    let cfg = config(&sb, dir.path(), "label", |t| leads_mode(t, "Attempting"));
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    assert_eq!(code, 8, "{answer:#}");
    let st = line(&answer, "statuses");
    assert_eq!(st["status"], "miss", "{answer:#}");
    assert!(st["detail"].as_str().unwrap().contains("write its id \"attempting-stage-id\""), "{st:#}");

    // A missing SLA property is created on the lead records.
    let cfg = config(&sb, dir.path(), "fix", |t| leads_mode(t, "attempting-stage-id"));
    admin(&sb, DELETE, "hubspot/properties/leads/handoff_sla_breach_count", Value::Null).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    assert_eq!((code, statuses(&answer)["sla_field.breach_count"].as_str()), (8, "miss"), "{answer:#}");
    let (code, answer) = doctor(&sb, &cfg, &["--fix"]).await;
    assert_eq!(code, 0, "{answer:#}");
    assert_eq!(writes(&sb).await, vec!["POST /crm/v3/properties/leads".to_string()]);
}

/// Writes `value` to `dir/name`, private, and returns `{ file = … }`.
fn secret_file(dir: &Path, name: &str, value: &str) -> toml::Value {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, value).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut t = toml::Table::new();
    t.insert("file".into(), path.display().to_string().into());
    toml::Value::Table(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_oauth_scopes_come_from_the_access_token_metadata() {
    let sb = org(CrmKind::Hubspot).await;
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    let c = sb.credentials.clone();
    let cfg = config(&sb, dir.path(), "oauth", |t| {
        let mut auth = toml::Table::new();
        auth.insert("flow".into(), "oauth".into());
        auth.insert("client_id".into(), c["client_id"].as_str().unwrap().into());
        auth.insert("client_secret".into(), secret_file(&creds, "client-secret", c["client_secret"].as_str().unwrap()));
        auth.insert("refresh_token".into(), secret_file(&creds, "refresh-token", c["refresh_token"].as_str().unwrap()));
        let hs = t.get_mut("hubspot").and_then(|h| h.as_table_mut()).unwrap();
        hs.insert("auth".into(), toml::Value::Table(auth));
    });
    // HubSpot reports no daily limit to an OAuth app: the budget cannot be
    // judged, which is a warning.
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    only(&answer, "api_budget", "warn");
    assert_eq!(code, 0, "{answer:#}");
    let log = admin(&sb, reqwest::Method::GET, "requests", Value::Null).await;
    let paths: Vec<&str> = log.as_array().unwrap().iter().filter_map(|r| r["path"].as_str()).collect();
    assert!(paths.contains(&"/oauth/v1/access-tokens/{token}"), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("private-apps")), "{paths:?}");

    let scopes = admin(&sb, reqwest::Method::GET, "hubspot/scopes", Value::Null).await;
    let narrowed: Vec<&Value> =
        scopes["scopes"].as_array().unwrap().iter().filter(|s| *s != "crm.schemas.contacts.read").collect();
    admin(&sb, POST, "hubspot/scopes", json!({"scopes": narrowed})).await;
    let (code, answer) = doctor(&sb, &cfg, &[]).await;
    let st = statuses(&answer);
    assert_eq!((st["scopes"].as_str(), st["api_budget"].as_str()), ("miss", "warn"), "{answer:#}");
    assert_eq!(st.values().filter(|s| *s == "ok").count(), st.len() - 2, "{answer:#}");
    let scopes_line = line(&answer, "scopes");
    assert!(scopes_line["detail"].as_str().unwrap().contains("crm.schemas.contacts.read"));
    assert!(scopes_line["fix"].as_str().unwrap().contains("reinstall"), "{scopes_line:#}");
    assert_eq!(code, 8);
    assert_eq!(writes(&sb).await, Vec::<String>::new());
}
