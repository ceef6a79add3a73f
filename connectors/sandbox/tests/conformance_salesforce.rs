//! Conformance: simple-salesforce 1.12.10 drives the Salesforce emulator
//! over HTTPS (it always builds `https://{instance}/services/data/v62.0/…`),
//! and what it parsed must equal what the sandbox holds (admin dumps); the
//! failures must surface as the exception classes it maps the real
//! service's statuses to (401 → `SalesforceExpiredSession`, 403 →
//! `SalesforceRefusedRequest`, 400 → `SalesforceMalformedRequest`).
//!
//! Needs `<repo>/.venv-conformance` (run `scripts/setup-conformance`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

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
        "{} is missing: run scripts/setup-conformance from the repository root to install simple-salesforce 1.12.10",
        py.display()
    );
    py
}

async fn dump(http: &reqwest::Client, base: &str, object: &str) -> Vec<Value> {
    let v: Value = http
        .get(format!("{base}/__sandbox/salesforce/records/{object}"))
        .send()
        .await
        .expect("admin dump")
        .json()
        .await
        .expect("dump json");
    v["records"].as_array().expect("records").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_sees_what_the_sandbox_holds() {
    let py = python();
    let mut opts = SandboxOptions::new(CrmKind::Salesforce);
    opts.clock = ClockMode::Frozen;
    opts.tls = true;
    opts.org = OrgConfig { leads: 600, days: 10, ..OrgConfig::default() };
    let sb = start(opts).await.expect("sandbox starts");
    let ca = sb.ca_cert.clone().expect("TLS sandbox writes a CA");
    let pem = std::fs::read(&ca).expect("CA file");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"))
        .build()
        .expect("client");
    let base = sb.base_url.clone();
    assert!(base.starts_with("https://"));

    let leads_before = dump(&http, &base, "Lead").await;
    let live_before: Vec<&Value> = leads_before.iter().filter(|r| r["IsDeleted"] == false).collect();
    assert!(live_before.len() > 400, "need several 200-row pages, the org has {} live leads", live_before.len());

    let cfg = json!({"instance_url": base, "token": sb.credentials["access_token"], "admin_url": sb.admin_url});
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/simple_salesforce_check.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(py).arg(script).arg(cfg.to_string()).env("REQUESTS_CA_BUNDLE", &ca).output()
    })
    .await
    .expect("join")
    .expect("python runs");
    assert!(
        output.status.success(),
        "the simple-salesforce script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).expect("script prints JSON");

    // query: first page of 200 with a locator URL in the documented form.
    let first = &out["first_page"];
    assert_eq!(first["done"], false);
    assert_eq!(first["count"], 200);
    assert_eq!(first["totalSize"], json!(live_before.len()));
    let next = first["nextRecordsUrl"].as_str().expect("nextRecordsUrl");
    assert!(next.starts_with("/services/data/v62.0/query/01g") && next.ends_with("-200"), "{next}");

    // query_all across pages: exactly the live leads, ordered by (SystemModstamp, Id).
    let got = out["query_all"].as_array().expect("query_all");
    let mut expected: Vec<&Value> = live_before.clone();
    expected.sort_by(|a, b| {
        (a["SystemModstamp"].as_str(), a["Id"].as_str()).cmp(&(b["SystemModstamp"].as_str(), b["Id"].as_str()))
    });
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g["Id"], e["Id"]);
        assert_eq!(g["LastName"], e["LastName"]);
        assert_eq!(g["SystemModstamp"], e["SystemModstamp"]);
        let owner = e["OwnerId"].as_str().expect("OwnerId");
        assert_eq!(g["OwnerType"], json!(if owner.starts_with("00G") { "Queue" } else { "User" }));
    }
    // query_all(include_deleted=True): every lead, deleted and merged ones too.
    let all: BTreeSet<(String, bool)> = out["query_all_deleted"]
        .as_array()
        .expect("deleted")
        .iter()
        .map(|r| (r["Id"].as_str().unwrap_or("").to_string(), r["IsDeleted"] == true))
        .collect();
    let held: BTreeSet<(String, bool)> =
        leads_before.iter().map(|r| (r["Id"].as_str().unwrap_or("").to_string(), r["IsDeleted"] == true)).collect();
    assert_eq!(all, held);

    // Collection insert: one created (and held), one REQUIRED_FIELD_MISSING.
    let coll = out["collection"].as_array().expect("collection");
    assert_eq!(coll[0]["success"], true);
    let new_id = coll[0]["id"].as_str().expect("id");
    assert_eq!(coll[1]["success"], false);
    assert_eq!(coll[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(coll[1]["errors"][0]["fields"], json!(["LastName"]));
    let leads_after = dump(&http, &base, "Lead").await;
    let created = leads_after.iter().find(|r| r["Id"] == json!(new_id)).expect("created lead held");
    assert_eq!(created["Email"], "c@acme.example");
    assert_eq!(leads_after.len(), leads_before.len() + 1);

    // Upsert: 201 then 200, one Task holding the second write.
    assert_eq!(out["upsert_statuses"], json!([201, 200]));
    let key = out["upsert_key"].as_str().expect("key");
    let tasks = dump(&http, &base, "Task").await;
    let keyed: Vec<&Value> = tasks.iter().filter(|t| t["Handoff_Key__c"] == json!(key)).collect();
    assert_eq!(keyed.len(), 1);
    assert_eq!(keyed[0]["Subject"], "Call the lead today");
    assert_eq!(keyed[0]["Priority"], "High");
    assert_eq!(out["task_by_key"]["Id"], keyed[0]["Id"]);
    assert_eq!(out["task_by_key"]["Subject"], "Call the lead today");

    // Limits and the Sforce-Limit-Info header agree.
    let limits = &out["limits"];
    assert_eq!(limits["DailyApiRequests"]["Max"], 15000);
    assert_eq!(limits["total"], 15000);
    let used = limits["used"].as_u64().expect("used");
    assert_eq!(limits["DailyApiRequests"]["Remaining"].as_u64(), Some(15000 - used));
    let counted = sb.shared.log.snapshot().iter().filter(|r| r.counted).count() as u64;
    assert!(used <= counted && used > 5, "used {used}, counted {counted}");

    // Describe carries the custom fields.
    assert_eq!(out["describe"]["Lead_Score__c"], json!({"type": "double", "custom": true, "externalId": false}));
    assert_eq!(out["describe"]["OwnerId"]["type"], "reference");

    // Failures as simple-salesforce's documented exception classes.
    assert_eq!(out["malformed"]["type"], "SalesforceMalformedRequest");
    assert_eq!(out["malformed"]["status"], 400);
    assert_eq!(out["malformed"]["content"][0]["errorCode"], "MALFORMED_QUERY");
    assert_eq!(out["refused"]["type"], "SalesforceRefusedRequest");
    assert_eq!(out["refused"]["status"], 403);
    assert_eq!(
        out["refused"]["content"],
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(out["expired"]["type"], "SalesforceExpiredSession");
    assert_eq!(out["expired"]["status"], 401);
    assert_eq!(
        out["expired"]["content"],
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    sb.stop().await;
}

/// simple-salesforce's `bulk2` drives the Bulk API 2.0 query endpoints
/// (create, poll, CSV pages by `Sforce-Locator`, delete, abort) and its
/// `restful` a Composite request; what it parsed must match the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_bulk2_and_composite() {
    let py = python();
    let mut opts = SandboxOptions::new(CrmKind::Salesforce);
    opts.clock = ClockMode::Frozen;
    opts.tls = true;
    opts.org = OrgConfig { leads: 400, days: 10, ..OrgConfig::default() };
    let sb = start(opts).await.expect("sandbox starts");
    let ca = sb.ca_cert.clone().expect("TLS sandbox writes a CA");
    let pem = std::fs::read(&ca).expect("CA file");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"))
        .build()
        .expect("client");
    let base = sb.base_url.clone();
    let leads = dump(&http, &base, "Lead").await;
    let live: Vec<&Value> = leads.iter().filter(|r| r["IsDeleted"] == false).collect();
    assert!(live.len() > 300, "need several 150-row pages, the org has {} live leads", live.len());

    let cfg = json!({"instance_url": base, "token": sb.credentials["access_token"]});
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/simple_salesforce_bulk2_check.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(py).arg(script).arg(cfg.to_string()).env("REQUESTS_CA_BUNDLE", &ca).output()
    })
    .await
    .expect("join")
    .expect("python runs");
    assert!(output.status.success(), "the bulk2 script failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).expect("script prints JSON");

    // query: every live lead, in pages of 150, values as the sandbox holds them.
    assert_eq!(out["query_chunks"], json!(live.len().div_ceil(150)));
    let got = out["query"].as_array().expect("query rows");
    assert_eq!(got.len(), live.len());
    let held: std::collections::BTreeMap<&str, &Value> =
        live.iter().map(|r| (r["Id"].as_str().unwrap_or(""), *r)).collect();
    for row in got {
        let lead = held.get(row["Id"].as_str().expect("Id")).expect("a live lead");
        assert_eq!(row["LastName"], lead["LastName"]);
        assert_eq!(row["OwnerId"], lead["OwnerId"]);
        assert_eq!(row["IsDeleted"], "false");
        // 2026-03-02T09:00:00.000+0000 is served as 2026-03-02T09:00:00.000Z.
        let stamp = lead["SystemModstamp"].as_str().expect("stamp");
        assert_eq!(row["SystemModstamp"], json!(stamp.replace("+0000", "Z")));
    }
    // query_all: deleted and merged leads too.
    let all = out["query_all"].as_array().expect("query_all rows");
    assert_eq!(all.len(), leads.len());
    assert!(all.iter().any(|r| r["IsDeleted"] == "true"));

    // The documented shapes of each step.
    let created = &out["created"];
    assert_eq!(created["state"], "UploadComplete");
    assert_eq!(created["operation"], "query");
    assert_eq!(created["object"], "Lead");
    assert_eq!(created["contentType"], "CSV");
    assert_eq!(created["concurrencyMode"], "Parallel");
    assert!(created["id"].as_str().unwrap_or("").starts_with("750"));
    let info = &out["job_info"];
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], json!(live.len()));
    assert_eq!(info["jobType"], "V2Query");
    assert_eq!(out["first_page"], json!({"locator": "MTAw", "number_of_records": 100}));
    assert_eq!(out["last_page"], json!({"locator": "", "number_of_records": live.len() - 100}));
    assert_eq!(out["delete"], "no body", "DELETE answers 204 without a body, as documented");
    assert_eq!(out["after_delete"], json!({"type": "SalesforceResourceNotFound", "status": 404}));
    assert_eq!(out["aborted"]["state"], "Aborted");
    assert_eq!(out["refused"]["type"], "SalesforceMalformedRequest");
    assert_eq!(out["refused"]["status"], 400);
    assert_eq!(out["refused"]["content"][0]["errorCode"], "FEATURENOTENABLED");
    let limits = &out["limits"];
    assert_eq!(limits["DailyBulkV2QueryJobs"], json!({"Max": 10000, "Remaining": 10000 - 4}));
    assert_eq!(limits["DailyBulkApiBatches"], json!({"Max": 15000, "Remaining": 15000}));

    // Composite: both created, the task naming the new lead.
    let answers = out["composite"]["compositeResponse"].as_array().expect("compositeResponse");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["httpStatusCode"], 201);
    assert_eq!(answers[1]["httpStatusCode"], 201);
    let lead_id = answers[0]["body"]["id"].as_str().expect("lead id");
    let task_id = answers[1]["body"]["id"].as_str().expect("task id");
    let tasks = dump(&http, &base, "Task").await;
    let task = tasks.iter().find(|t| t["Id"] == json!(task_id)).expect("task held");
    assert_eq!(task["WhoId"], json!(lead_id));
    sb.stop().await;
}
