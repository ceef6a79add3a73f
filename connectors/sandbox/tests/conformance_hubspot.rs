//! Conformance: HubSpot's official Python SDK (`hubspot-api-client`
//! 12.0.0) drives the sandbox, and what it parsed into its typed models must
//! equal what the sandbox holds (admin dump) and the org's ground truth.
//!
//! Needs `<repo>/.venv-conformance` (run `scripts/setup-conformance`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;
use std::process::Command;

use chrono::DateTime;
use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::server::{start, ClockMode, SandboxOptions};
use serde_json::{json, Value};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let py = repo_root().join(".venv-conformance/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/setup-conformance from the repository root to install hubspot-api-client 12.0.0",
        py.display()
    );
    py
}

fn ms(t: &str) -> i64 {
    DateTime::parse_from_rfc3339(t).expect("RFC 3339 time").timestamp_millis()
}

async fn admin_get(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}/__sandbox{path}")).await.expect("admin call").json().await.expect("admin json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_reads_and_writes_what_the_sandbox_holds() {
    let py = python();
    let mut opts = SandboxOptions::new(CrmKind::Hubspot);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads: 40, days: 5, ..OrgConfig::default() };
    let sb = start(opts).await.expect("sandbox starts");
    let base = sb.base_url.clone();

    // Choose a window holding some but not all contacts.
    let dump = admin_get(&base, "/hubspot/objects/contacts").await;
    let live: Vec<Value> = dump["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["archived"] == false && r.get("mergedInto").is_none())
        .cloned()
        .collect();
    let mut times: Vec<i64> = live.iter().map(|r| ms(r["updatedAt"].as_str().expect("updatedAt"))).collect();
    times.sort();
    let (lo, hi) = (times[times.len() / 5], times[4 * times.len() / 5]);
    let in_window: Vec<&Value> =
        live.iter().filter(|r| (lo..hi).contains(&ms(r["updatedAt"].as_str().unwrap_or("")))).collect();
    let mut expected_ids: Vec<u64> =
        in_window.iter().map(|r| r["id"].as_str().unwrap_or("0").parse().unwrap_or(0)).collect();
    expected_ids.sort();
    // At most 4 pages, so the 5-per-second search bucket is reached by the script's own probe.
    let page_limit = expected_ids.len().div_ceil(3).max(1);
    let contact_id = live[0]["id"].as_str().expect("id").to_string();

    let cfg = json!({"host": base, "token": sb.credentials["access_token"], "window_lo_ms": lo, "window_hi_ms": hi, "contact_id": contact_id, "page_limit": page_limit});
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/hubspot_client_check.py");
    let output = tokio::task::spawn_blocking(move || Command::new(py).arg(script).arg(cfg.to_string()).output())
        .await
        .expect("join")
        .expect("python runs");
    assert!(output.status.success(), "the SDK script failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).expect("script prints JSON");

    // Owners: every org user as PERSON with its primary team, every queue as QUEUE.
    let org = admin_get(&base, "/org").await;
    let owners = out["owners"].as_array().expect("owners");
    let users = org["users"].as_array().expect("users");
    let queues = org["queues"].as_array().expect("queues");
    assert_eq!(owners.len(), users.len() + queues.len());
    for u in users {
        let o = owners.iter().find(|o| o["email"] == u["email"]).unwrap_or_else(|| panic!("owner for {}", u["email"]));
        assert_eq!(o["type"], "PERSON");
        assert_eq!(o["teams"][0]["name"], u["team"]);
        assert_eq!(o["teams"][0]["primary"], true);
    }
    assert_eq!(owners.iter().filter(|o| o["type"] == "QUEUE").count(), queues.len());

    // Properties: handoff_key absent, created unique, then listed.
    let before: Vec<&str> =
        out["task_properties_before"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
    assert!(before.contains(&"hs_timestamp") && !before.contains(&"handoff_key"));
    assert_eq!(out["created_property"], json!({"name": "handoff_key", "type": "string", "has_unique_value": true}));
    assert!(out["task_properties_after"].as_array().expect("list").contains(&json!("handoff_key")));

    // Search: every page parsed; the ids, totals and values equal the dump.
    let got: Vec<u64> = out["search"]["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().unwrap_or("0").parse().unwrap_or(0))
        .collect();
    assert_eq!(got, expected_ids);
    assert!(out["search"]["pages"].as_u64().expect("pages") > 1);
    assert!(out["search"]["totals"]
        .as_array()
        .expect("totals")
        .iter()
        .all(|t| t.as_u64() == Some(expected_ids.len() as u64)));
    for r in &in_window {
        let id = r["id"].as_str().expect("id");
        let parsed = &out["search"]["properties"][id];
        assert_eq!(parsed["email"], r["properties"]["email"], "email of {id}");
        assert_eq!(parsed["hubspot_owner_id"], r["properties"]["hubspot_owner_id"], "owner of {id}");
        assert_eq!(
            ms(parsed["updated_at"].as_str().expect("updated_at")),
            ms(r["updatedAt"].as_str().expect("updatedAt"))
        );
    }

    // The search bucket: 5 per second in all, the 6th is the SDK's ApiException 429.
    let pages = out["search"]["pages"].as_u64().expect("pages");
    assert_eq!(pages + out["search_ok_before_429"].as_u64().expect("count"), 5);
    let refused = &out["search_429"];
    assert_eq!(refused["exception"], "ApiException");
    assert_eq!(refused["status"], 429);
    assert_eq!(refused["body"]["policyName"], "SECONDLY");
    assert_eq!(refused["body"]["message"], "You have reached your secondly limit.");

    // Batch-created tasks are in the store with the 204 association to the contact.
    assert_eq!(out["batch_create"]["model"], "BatchResponseSimplePublicObject");
    assert_eq!(out["batch_create"]["status"], "COMPLETE");
    let tasks = admin_get(&base, "/hubspot/objects/tasks").await;
    for r in out["batch_create"]["results"].as_array().expect("results") {
        let held = tasks["results"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["id"] == r["id"])
            .expect("task held by the sandbox");
        assert_eq!(held["properties"]["handoff_key"], r["properties"]["handoff_key"]);
        assert_eq!(held["properties"]["hs_task_subject"], r["properties"]["hs_task_subject"]);
        assert_eq!(held["associations"]["contacts"], json!([{"id": contact_id, "typeId": 204}]));
    }
    assert_eq!(out["batch_create"]["results"].as_array().map(Vec::len), Some(3));
    assert_eq!(out["task_get"]["contacts"], json!([contact_id]));
    assert_eq!(out["task_get"]["handoff_key"], "conf-0");

    // Unique handoff_key and bad token: the SDK's ApiException with the real bodies.
    assert_eq!(out["duplicate_key"]["exception"], "ApiException");
    assert_eq!(out["duplicate_key"]["status"], 409);
    assert_eq!(out["duplicate_key"]["body"]["category"], "CONFLICT");
    // 12.0.0 raises ApiException's 401 subclass.
    assert_eq!(out["bad_token"]["exception"], "UnauthorizedException");
    assert!(out["bad_token"]["mro"].as_array().expect("mro").contains(&json!("ApiException")));
    assert_eq!(out["bad_token"]["status"], 401);
    assert_eq!(out["bad_token"]["body"]["category"], "INVALID_AUTHENTICATION");
    assert_eq!(out["bad_token"]["body"]["status"], "error");

    sb.stop().await;
}

/// The ids of a dump's records of one association target.
fn associated(record: &Value, to: &str) -> Vec<String> {
    let mut ids: Vec<String> = record["associations"][to]
        .as_array()
        .map(|a| a.iter().map(|e| e["id"].as_str().expect("id").to_string()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_drives_the_leads_object_pipelines_and_associations() {
    let py = python();
    let mut opts = SandboxOptions::new(CrmKind::Hubspot);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads: 40, days: 5, ..OrgConfig::default() };
    let sb = start(opts).await.expect("sandbox starts");
    let base = sb.base_url.clone();

    let contacts = admin_get(&base, "/hubspot/objects/contacts").await;
    let contact = contacts["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["archived"] == false && r.get("mergedInto").is_none())
        .expect("a live contact")
        .clone();
    let dump = admin_get(&base, "/hubspot/objects/leads?history=hs_pipeline_stage,hubspot_owner_id").await;
    let live: Vec<&Value> = dump["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["archived"] == false && r.get("mergedInto").is_none())
        .collect();
    assert!(live.len() > 10, "the org's leads are lead records");
    let lead_ids: Vec<String> = live.iter().take(50).map(|r| r["id"].as_str().expect("id").to_string()).collect();

    let cfg = json!({"host": base, "admin_url": sb.admin_url, "token": sb.credentials["access_token"],
        "contact_id": contact["id"], "owner_id": contact["properties"]["hubspot_owner_id"], "lead_ids": lead_ids});
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/hubspot_leads_check.py");
    let output = tokio::task::spawn_blocking(move || Command::new(py).arg(script).arg(cfg.to_string()).output())
        .await
        .expect("join")
        .expect("python runs");
    assert!(output.status.success(), "the SDK script failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).expect("script prints JSON");

    // Pipelines: HubSpot's default lead pipeline, parsed into Pipeline/PipelineStage.
    let pipelines = out["pipelines"].as_array().expect("pipelines");
    assert_eq!(pipelines.len(), 1);
    assert_eq!(
        (pipelines[0]["id"].as_str(), pipelines[0]["label"].as_str()),
        (Some("lead-pipeline-id"), Some("Lead pipeline"))
    );
    let stages = pipelines[0]["stages"].as_array().expect("stages");
    let firsts: Vec<(&str, &str)> =
        stages.iter().take(5).map(|s| (s["id"].as_str().unwrap_or(""), s["label"].as_str().unwrap_or(""))).collect();
    assert_eq!(
        firsts,
        vec![
            ("new-stage-id", "New"),
            ("attempting-stage-id", "Attempting"),
            ("connected-stage-id", "Connected"),
            ("qualified-stage-id", "Qualified"),
            ("unqualified-stage-id", "Disqualified")
        ]
    );
    let stage_ids: Vec<&Value> = stages.iter().map(|s| &s["id"]).collect();
    assert_eq!(out["stage_ids"].as_array().expect("ids").iter().collect::<Vec<_>>(), stage_ids);

    // The created lead: what the SDK parsed is what the sandbox holds.
    let created_id = out["created"]["id"].as_str().expect("created id").to_string();
    assert_eq!(out["created"]["properties"]["hs_object_id"], created_id.as_str());
    assert_eq!(out["created"]["properties"]["hs_lead_name"], "Conformance Lead");
    let after = admin_get(&base, "/hubspot/objects/leads").await;
    let held =
        after["results"].as_array().expect("results").iter().find(|r| r["id"] == created_id.as_str()).expect("held");
    assert_eq!(held["properties"]["hs_pipeline_stage"], "new-stage-id");
    assert_eq!(held["properties"]["hubspot_owner_id"], contact["properties"]["hubspot_owner_id"]);
    assert_eq!(associated(held, "contacts"), vec![contact["id"].as_str().expect("id").to_string()]);

    // Search by stage: every new lead, the created one included, in id order.
    let mut expected: Vec<u64> = after["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["archived"] == false && r.get("mergedInto").is_none())
        .filter(|r| r["properties"]["hs_pipeline_stage"] == "new-stage-id")
        .map(|r| r["id"].as_str().unwrap_or("0").parse().unwrap_or(0))
        .collect();
    expected.sort();
    let got: Vec<u64> = out["search"]["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().unwrap_or("0").parse().unwrap_or(0))
        .collect();
    assert_eq!(got, expected);
    assert!(out["search"]["totals"]
        .as_array()
        .expect("totals")
        .iter()
        .all(|t| t.as_u64() == Some(expected.len() as u64)));

    // Batch read with history: current values and the stage/owner history, newest first.
    for r in &live[..lead_ids.len()] {
        let id = r["id"].as_str().expect("id");
        let parsed = &out["batch_read"][id];
        assert_eq!(parsed["properties"]["hs_pipeline_stage"], r["properties"]["hs_pipeline_stage"], "lead {id}");
        assert_eq!(parsed["properties"]["hs_object_id"], id);
        for p in ["hs_pipeline_stage", "hubspot_owner_id"] {
            let values = |v: &Value| -> Vec<Value> {
                v.as_array().map(|a| a.iter().map(|e| e["value"].clone()).collect()).unwrap_or_default()
            };
            assert_eq!(values(&parsed["history"][p]), values(&r["propertiesWithHistory"][p]), "lead {id} {p}");
        }
        assert!(parsed["history"]["hs_pipeline_stage"][0]["timestamp"].is_string());
        // Engagements of the lead, read through v4 batch reads.
        for to in ["calls", "emails", "meetings", "tasks"] {
            let want = associated(r, to);
            let got: Vec<String> = out["engagements"][to][id]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap_or("").to_string()).collect())
                .unwrap_or_default();
            assert_eq!(got, want, "lead {id} {to}");
        }
    }
    let with_engagements = live[..lead_ids.len()].iter().filter(|r| !associated(r, "calls").is_empty()).count();
    assert!(with_engagements > 0, "some leads have calls");

    // Associations: the primary contact lists both lead→contact types; tasks attach to leads.
    assert_eq!(
        out["lead_contacts"],
        // The SDK types `toObjectId` as a string.
        json!([{"id": contact["id"], "types": [[608, null, "HUBSPOT_DEFINED"], [578, "Primary", "HUBSPOT_DEFINED"]]}])
    );
    assert_eq!(out["task_lead_labels"], json!([[647, null, "HUBSPOT_DEFINED"]]));
    assert_eq!(out["task_to_lead"]["from_type"], "0-27");
    assert_eq!(out["task_to_lead"]["to_type"], "0-136");
    let tasks = admin_get(&base, "/hubspot/objects/tasks").await;
    let task_id = out["task_to_lead"]["task"].as_str().expect("task id");
    let task = tasks["results"].as_array().expect("tasks").iter().find(|t| t["id"] == task_id).expect("task held");
    assert_eq!(task["associations"]["leads"], json!([{"id": created_id, "typeId": 647}]));

    // A portal without the Leads object: the SDK raises with the 403 body.
    let refused = &out["refused"];
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["body"]["category"], "MISSING_SCOPES");
    assert_eq!(refused["body"]["errors"][0]["context"]["requiredGranularScopes"], json!(["crm.objects.leads.read"]));

    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_drives_deals_and_their_associations() {
    let py = python();
    let mut opts = SandboxOptions::new(CrmKind::Hubspot);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads: 40, days: 5, ..OrgConfig::default() };
    let sb = start(opts).await.expect("sandbox starts");
    let base = sb.base_url.clone();
    let contacts = admin_get(&base, "/hubspot/objects/contacts").await;
    let contact = contacts["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["archived"] == false && r.get("mergedInto").is_none())
        .expect("a live contact")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let owner = "70000001";

    let cfg = json!({"host": base, "token": sb.credentials["access_token"], "contact_id": contact, "owner_id": owner});
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/hubspot_deals_check.py");
    let output = tokio::task::spawn_blocking(move || Command::new(py).arg(script).arg(cfg.to_string()).output())
        .await
        .expect("join")
        .expect("python runs");
    assert!(output.status.success(), "the SDK script failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).expect("script prints JSON");

    let properties: Vec<&str> = out["properties"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
    for name in ["dealname", "dealstage", "pipeline", "amount", "closedate", "hubspot_owner_id", "createdate"] {
        assert!(properties.contains(&name), "{name}: {properties:?}");
    }
    let deals: Vec<String> =
        out["deals"].as_array().expect("deals").iter().map(|d| d.as_str().expect("id").to_string()).collect();
    let (first, second) = (&deals[0], &deals[1]);
    assert_eq!(
        out["get_defaults"],
        json!([
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline"
        ])
    );
    assert_eq!(out["get"]["properties"]["hubspot_owner_id"], owner);
    assert_eq!(out["get"]["properties"]["dealstage"], "appointmentscheduled");
    assert_eq!(out["get"]["contacts"], json!([contact]));
    assert_eq!(out["search"], json!(deals), "both deals, a page each, in id order");
    let mut batch = deals.clone();
    batch.sort();
    assert_eq!(out["batch_read"], json!(batch));

    // What the SDK parsed is what the sandbox holds.
    let held = admin_get(&base, "/hubspot/objects/deals").await;
    let held_first = held["results"].as_array().expect("deals").iter().find(|d| d["id"] == *first).expect("held");
    assert_eq!(held_first["associations"]["contacts"], json!([{"id": contact, "typeId": 3}]));
    assert_eq!(held_first["associations"]["meetings"], json!([{"id": out["meeting"], "typeId": 211}]));
    assert_eq!(
        ms(out["get"]["created_at"].as_str().expect("created_at")),
        ms(held_first["createdAt"].as_str().expect("createdAt"))
    );

    assert_eq!(out["deal_contacts"][first], json!([[contact, 3]]));
    assert_eq!(out["deal_contacts"][second], json!([[contact, 3]]));
    assert_eq!(out["contact_deals"][&contact], json!([[first, 4], [second, 4]]));
    let meeting = out["meeting"].as_str().expect("meeting id");
    assert_eq!(out["meeting_deals"][meeting], json!([[first, 212]]));
    assert_eq!(out["meeting_contacts"], json!({}), "a meeting on the deal only has no contact");

    assert_eq!(out["archived"].as_array().map(Vec::len), Some(1));
    assert_eq!(out["archived"][0]["id"], *second);
    assert_eq!(out["archived"][0]["archived"], true);
    assert!(out["archived"][0]["archived_at"].is_string());

    sb.stop().await;
}
