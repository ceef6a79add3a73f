//! The Salesforce emulator's Composite resource and Bulk API 2.0 query jobs
//! over HTTP: limits, references, `allOrNone`, collections inside a
//! Composite request, job states, CSV result pages, refused SOQL, and what
//! each costs in the org's allocations.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::server::{start, ClockMode, RunningSandbox, SandboxOptions};
use serde_json::{json, Value};

const V: &str = "/services/data/v62.0";

async fn sandbox(leads: usize) -> RunningSandbox {
    let mut opts = SandboxOptions::new(CrmKind::Salesforce);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads, days: 5, ..OrgConfig::default() };
    start(opts).await.expect("sandbox starts")
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    }
}

impl Client {
    fn new(sb: &RunningSandbox) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: sb.base_url.clone(),
            token: sb.credentials["access_token"].as_str().expect("access_token").to_string(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        Answer { status, headers, text }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn admin_get(&self, path: &str) -> Value {
        self.http.get(format!("{}{path}", self.base)).send().await.expect("admin").json().await.expect("json")
    }

    async fn admin_post(&self, path: &str, body: Value) -> Value {
        let resp = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.expect("admin");
        assert!(resp.status().is_success(), "admin {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn dump(&self, object: &str) -> Vec<Value> {
        let v = self.admin_get(&format!("/__sandbox/salesforce/records/{object}")).await;
        v["records"].as_array().expect("records").clone()
    }

    async fn used_calls(&self) -> u64 {
        let v = self.admin_get("/__sandbox/salesforce/limits").await;
        v["used"].as_u64().expect("used")
    }
}

fn lead_body(last_name: &str) -> Value {
    json!({"LastName": last_name, "Company": "Acme", "Status": "Open - Not Contacted"})
}

#[tokio::test]
async fn composite_chains_references_and_counts_as_one_call() {
    let sb = sandbox(50).await;
    let c = Client::new(&sb);
    let calls_before = c.used_calls().await;
    let log_before = c.admin_get("/__sandbox/requests").await.as_array().unwrap().len();
    let lead_count = c.dump("Lead").await.len();

    let res = c
        .post(
            &format!("{V}/composite"),
            json!({"allOrNone": false, "compositeRequest": [
                {"method": "POST", "url": format!("{V}/sobjects/Lead"), "referenceId": "NewLead", "body": lead_body("Composite")},
                {"method": "GET", "url": format!("{V}/sobjects/Lead/@{{NewLead.id}}?fields=LastName,Company"), "referenceId": "ReadBack"},
                {"method": "POST", "url": format!("{V}/sobjects/Task"), "referenceId": "FirstTouch",
                 "body": {"Subject": "Call", "WhoId": "@{NewLead.id}", "Status": "Not Started", "Priority": "Normal"}},
                {"method": "GET", "url": format!("{V}/query?q=SELECT+Id,WhoId+FROM+Task+WHERE+WhoId='@{{NewLead.id}}'"), "referenceId": "Tasks"},
                {"method": "GET", "url": format!("{V}/sobjects/Lead/@{{Nobody.id}}"), "referenceId": "Dangling"},
            ]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let out = res.json()["compositeResponse"].as_array().unwrap().clone();
    assert_eq!(out.len(), 5);
    let lead_id = out[0]["body"]["id"].as_str().unwrap().to_string();
    assert_eq!(out[0]["httpStatusCode"], 201);
    assert_eq!(out[0]["referenceId"], "NewLead");
    assert_eq!(out[0]["httpHeaders"]["Location"], json!(format!("{V}/sobjects/Lead/{lead_id}")));
    assert_eq!(out[1]["httpStatusCode"], 200);
    assert_eq!(out[1]["body"]["LastName"], "Composite");
    assert_eq!(out[2]["httpStatusCode"], 201);
    assert_eq!(out[3]["body"]["totalSize"], 1);
    assert_eq!(out[3]["body"]["records"][0]["WhoId"], json!(lead_id));
    assert_eq!(out[4]["httpStatusCode"], 400);
    assert_eq!(out[4]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(c.dump("Lead").await.len(), lead_count + 1);

    // One counted call, one log entry, for five subrequests.
    assert_eq!(c.used_calls().await, calls_before + 1);
    let log = c.admin_get("/__sandbox/requests").await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), log_before + 1);
    assert_eq!(log.last().unwrap()["path"], json!(format!("{V}/composite")));
    assert_eq!(log.last().unwrap()["counted"], true);
    sb.stop().await;
}

#[tokio::test]
async fn composite_all_or_none_rolls_every_subrequest_back() {
    let sb = sandbox(50).await;
    let c = Client::new(&sb);
    let leads_before = c.dump("Lead").await;
    let history_before = c.dump("LeadHistory").await.len();
    let victim = leads_before.iter().find(|l| l["IsDeleted"] == false).unwrap()["Id"].as_str().unwrap().to_string();

    let res = c
        .post(
            &format!("{V}/composite"),
            json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": format!("{V}/sobjects/Lead"), "referenceId": "NewLead", "body": lead_body("Rolled")},
                {"method": "PATCH", "url": format!("{V}/sobjects/Lead/{victim}"), "referenceId": "Edit", "body": {"Status": "Working - Contacted"}},
                {"method": "DELETE", "url": format!("{V}/sobjects/Lead/{victim}"), "referenceId": "Gone"},
                {"method": "POST", "url": format!("{V}/sobjects/Lead"), "referenceId": "Bad", "body": {"Nope__c": 1}},
                {"method": "GET", "url": format!("{V}/limits"), "referenceId": "NeverRuns"},
            ]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let out = res.json()["compositeResponse"].as_array().unwrap().clone();
    let halted = json!([{"errorCode": "PROCESSING_HALTED",
        "message": "The transaction was rolled back since another operation in the same transaction failed."}]);
    for i in [0, 1, 2, 4] {
        assert_eq!(out[i]["httpStatusCode"], 400, "{i}");
        assert_eq!(out[i]["body"], halted, "{i}");
    }
    assert_eq!(out[3]["httpStatusCode"], 400);
    assert_eq!(out[3]["body"][0]["errorCode"], "INVALID_FIELD");
    // Nothing stayed: no new lead, the edit and the delete undone, no history rows.
    assert_eq!(c.dump("Lead").await, leads_before);
    assert_eq!(c.dump("LeadHistory").await.len(), history_before);
    let start = "2026-03-01T00:00:00Z";
    let end = "2026-03-07T00:00:00Z";
    let deleted = c.get(&format!("{V}/sobjects/Lead/deleted/?start={start}&end={end}")).await.json();
    assert!(!deleted["deletedRecords"].as_array().unwrap().iter().any(|d| d["id"] == json!(victim)));
    sb.stop().await;
}

#[tokio::test]
async fn collections_inside_composite_behave_as_standalone() {
    let sb = sandbox(50).await;
    let c = Client::new(&sb);
    let lead = c.dump("Lead").await.into_iter().find(|l| l["IsDeleted"] == false).unwrap();
    let who = lead["Id"].as_str().unwrap().to_string();
    let task = |key: &str, subject: &str| {
        json!({"attributes": {"type": "Task"}, "Handoff_Key__c": key, "Subject": subject, "WhoId": who,
               "Status": "Not Started", "Priority": "Normal"})
    };
    let upsert = |records: Vec<Value>, r: &str| {
        json!({"method": "PATCH", "url": format!("{V}/composite/sobjects/Task/Handoff_Key__c"), "referenceId": r,
               "body": {"allOrNone": false, "records": records}})
    };
    let bundle = json!({"allOrNone": false, "compositeRequest": [
        upsert(vec![task("k1", "one"), task("k2", "FAIL-ME two")], "c1"),
        upsert(vec![task("k1", "one again"), task("k3", "three")], "c2"),
    ]});
    c.admin_post("/__sandbox/faults", json!({"kind": "partial_batch_failure", "marker": "FAIL-ME", "count": 1})).await;
    let res = c.post(&format!("{V}/composite"), bundle.clone()).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let out = res.json()["compositeResponse"].as_array().unwrap().clone();
    assert_eq!(out[0]["httpStatusCode"], 200);
    let first = out[0]["body"].as_array().unwrap();
    assert_eq!(first[0]["created"], true);
    assert_eq!(first[1]["success"], false);
    assert_eq!(first[1]["errors"][0]["statusCode"], "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    let second = out[1]["body"].as_array().unwrap();
    assert_eq!(second[0]["created"], false, "k1 already exists: an update");
    assert_eq!(second[0]["id"], first[0]["id"]);
    assert_eq!(second[1]["created"], true);

    // The same collection sent on its own answers the same per-record shape.
    let alone = c
        .call(
            reqwest::Method::PATCH,
            &format!("{V}/composite/sobjects/Task/Handoff_Key__c"),
            Some(json!({"allOrNone": false, "records": [task("k3", "three"), task("k4", "four")]})),
        )
        .await;
    assert_eq!(alone.status, 200);
    let alone = alone.json();
    assert_eq!(alone[0], json!({"id": second[1]["id"], "success": true, "errors": [], "created": false}));
    assert_eq!(alone[1]["created"], true);
    let keyed: Vec<Value> = c.dump("Task").await.into_iter().filter(|t| t["Handoff_Key__c"].is_string()).collect();
    assert_eq!(keyed.len(), 3, "k1, k3, k4: k2 failed");
    sb.stop().await;
}

#[tokio::test]
async fn composite_limits_are_enforced_for_the_whole_request() {
    let sb = sandbox(20).await;
    let c = Client::new(&sb);
    let sub = |url: String, i: usize| json!({"method": "GET", "url": url, "referenceId": format!("r{i}")});
    let many: Vec<Value> = (0..26).map(|i| sub(format!("{V}/limits"), i)).collect();
    let res = c.post(&format!("{V}/composite"), json!({"compositeRequest": many})).await;
    assert_eq!(res.status, 400);
    assert!(res.json()[0]["message"].as_str().unwrap().contains("25"));
    let twenty_five: Vec<Value> = (0..25).map(|i| sub(format!("{V}/limits"), i)).collect();
    assert_eq!(c.post(&format!("{V}/composite"), json!({"compositeRequest": twenty_five})).await.status, 200);
    let queries: Vec<Value> = (0..6).map(|i| sub(format!("{V}/query?q=SELECT+Id+FROM+Lead"), i)).collect();
    let res = c.post(&format!("{V}/composite"), json!({"compositeRequest": queries})).await;
    assert_eq!(res.status, 400);
    assert!(res.json()[0]["message"].as_str().unwrap().contains('5'));
    let five: Vec<Value> = (0..5).map(|i| sub(format!("{V}/query?q=SELECT+Id+FROM+Lead"), i)).collect();
    assert_eq!(c.post(&format!("{V}/composite"), json!({"compositeRequest": five})).await.status, 200);
    sb.stop().await;
}

fn csv_lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn bulk_query_job_runs_pages_and_costs_what_a_real_org_charges() {
    let sb = sandbox(300).await;
    let c = Client::new(&sb);
    let leads = c.dump("Lead").await;
    let live: Vec<&Value> = leads.iter().filter(|l| l["IsDeleted"] == false).collect();
    let limits_before = c.get(&format!("{V}/limits")).await.json();
    assert_eq!(limits_before["DailyBulkApiBatches"], json!({"Max": 15000, "Remaining": 15000}));
    assert_eq!(limits_before["DailyBulkV2QueryJobs"], json!({"Max": 10000, "Remaining": 10000}));
    let calls_before = c.used_calls().await;

    let q = "SELECT Id, LastName, Owner.Name, CreatedDate, IsDeleted FROM Lead ORDER BY Id";
    let created = c.post(&format!("{V}/jobs/query"), json!({"operation": "query", "query": q})).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let job = created.json();
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750") && id.len() == 18, "{id}");
    assert_eq!(job["state"], "UploadComplete");
    assert_eq!((job["operation"].as_str(), job["object"].as_str()), (Some("query"), Some("Lead")));
    assert_eq!((job["contentType"].as_str(), job["apiVersion"].as_f64()), (Some("CSV"), Some(62.0)));
    assert_eq!((job["lineEnding"].as_str(), job["columnDelimiter"].as_str()), (Some("LF"), Some("COMMA")));

    // Results before completion are refused; polls move the job on.
    assert_eq!(c.get(&format!("{V}/jobs/query/{id}/results")).await.status, 400);
    let first = c.get(&format!("{V}/jobs/query/{id}")).await.json();
    assert_eq!(first["state"], "InProgress");
    assert_eq!(first["numberRecordsProcessed"], 0);
    let done = c.get(&format!("{V}/jobs/query/{id}")).await.json();
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(done["numberRecordsProcessed"], json!(live.len()));
    assert_eq!(done["jobType"], "V2Query");

    // Pages of 100 with base64 locators, the last one "null"; every page has the header.
    let mut ids = Vec::new();
    let mut locator = String::new();
    let mut pages = 0;
    loop {
        let mut path = format!("{V}/jobs/query/{id}/results?maxRecords=100");
        if !locator.is_empty() {
            path.push_str(&format!("&locator={locator}"));
        }
        let page = c.get(&path).await;
        assert_eq!(page.status, 200);
        assert!(page.header("content-type").starts_with("text/csv"));
        let lines = csv_lines(&page.text);
        assert_eq!(lines[0], r#""Id","LastName","Owner.Name","CreatedDate","IsDeleted""#);
        let n: usize = page.header("sforce-numberofrecords").parse().unwrap();
        assert_eq!(n, lines.len() - 1);
        for line in &lines[1..] {
            let first_col = line.split(',').next().unwrap().trim_matches('"').to_string();
            ids.push(first_col);
            assert!(line.ends_with(r#","false""#), "{line}");
            assert!(line.contains(".000Z\""), "datetimes in UTC with Z: {line}");
        }
        pages += 1;
        locator = page.header("sforce-locator");
        if locator == "null" {
            break;
        }
        assert_eq!(n, 100);
    }
    // In the query's order (the emulator's ORDER BY Id), every live lead once.
    let mut expected: Vec<String> = live.iter().map(|l| l["Id"].as_str().unwrap().to_string()).collect();
    expected.sort_by_key(|id| id.to_lowercase());
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| id.to_lowercase());
    assert!(sorted == expected, "the bulk result holds {} ids, {} live leads", ids.len(), expected.len());
    assert_eq!(pages, live.len().div_ceil(100));
    // A locator can be read again, as long as the job exists.
    let again = c.get(&format!("{V}/jobs/query/{id}/results?maxRecords=100&locator=MTAw")).await;
    assert_eq!(again.header("sforce-numberofrecords"), "100");
    assert_eq!(c.get(&format!("{V}/jobs/query/{id}/results?maxRecords=0")).await.status, 400);

    // queryAll sees the deleted and merged leads too.
    let all =
        c.post(&format!("{V}/jobs/query"), json!({"operation": "queryAll", "query": "SELECT Id FROM Lead"})).await;
    let all_id = all.json()["id"].as_str().unwrap().to_string();
    c.get(&format!("{V}/jobs/query/{all_id}")).await;
    assert_eq!(c.get(&format!("{V}/jobs/query/{all_id}")).await.json()["numberRecordsProcessed"], json!(leads.len()));
    let whole = c.get(&format!("{V}/jobs/query/{all_id}/results")).await;
    assert_eq!(whole.header("sforce-locator"), "null");
    assert_eq!(whole.header("sforce-numberofrecords"), leads.len().to_string());

    // List, abort, delete.
    let list = c.get(&format!("{V}/jobs/query")).await.json();
    assert_eq!(list["done"], true);
    assert_eq!(list["records"].as_array().unwrap().len(), 2);
    let abort = |job: String| {
        let c = &c;
        async move {
            c.call(reqwest::Method::PATCH, &format!("{V}/jobs/query/{job}"), Some(json!({"state": "Aborted"}))).await
        }
    };
    assert_eq!(abort(id.clone()).await.status, 400, "a complete job cannot be aborted");
    let third = c.post(&format!("{V}/jobs/query"), json!({"operation": "query", "query": "SELECT Id FROM Task"})).await;
    let third_id = third.json()["id"].as_str().unwrap().to_string();
    let aborted = abort(third_id.clone()).await;
    assert_eq!(aborted.status, 200);
    assert_eq!(aborted.json()["state"], "Aborted");
    assert_eq!(c.get(&format!("{V}/jobs/query/{third_id}")).await.json()["state"], "Aborted");
    assert_eq!(c.call(reqwest::Method::DELETE, &format!("{V}/jobs/query/{id}"), None).await.status, 204);
    let gone = c.get(&format!("{V}/jobs/query/{id}")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()[0]["errorCode"], "NOT_FOUND");

    // Three jobs taken from the daily job allocation, none from the batches;
    // every request above was one counted REST call.
    let limits = c.get(&format!("{V}/limits")).await.json();
    assert_eq!(limits["DailyBulkV2QueryJobs"], json!({"Max": 10000, "Remaining": 9997}));
    assert_eq!(limits["DailyBulkApiBatches"], json!({"Max": 15000, "Remaining": 15000}));
    let storage = &limits["DailyBulkV2QueryFileStorageMB"];
    assert_eq!(storage["Max"], 976562);
    assert_eq!(storage["Remaining"], json!(976562 - 2), "two completed jobs, under 1 MB each");
    let log = c.admin_get("/__sandbox/requests").await;
    let bulk_calls =
        log.as_array().unwrap().iter().filter(|r| r["path"].as_str().unwrap_or("").contains("/jobs/query")).count();
    assert!(bulk_calls > 10);
    assert_eq!(c.used_calls().await, calls_before + bulk_calls as u64 + 1, "every bulk call and /limits once more");
    sb.stop().await;
}

#[tokio::test]
async fn bulk_query_refuses_what_bulk_soql_cannot_do() {
    let sb = sandbox(20).await;
    let c = Client::new(&sb);
    for (q, code) in [
        ("SELECT Id, (SELECT Field FROM Histories) FROM Lead", "FEATURENOTENABLED"),
        ("SELECT COUNT() FROM Lead", "FEATURENOTENABLED"),
        ("SELECT Id FROM Lead LIMIT 5 OFFSET 5", "FEATURENOTENABLED"),
        ("SELECT Nope__c FROM Lead", "INVALID_FIELD"),
        ("SELEC Id FROM Lead", "MALFORMED_QUERY"),
    ] {
        let res = c.post(&format!("{V}/jobs/query"), json!({"operation": "query", "query": q})).await;
        assert_eq!(res.status, 400, "{q}: {}", res.text);
        assert_eq!(res.json()[0]["errorCode"], code, "{q}");
    }
    let res = c.post(&format!("{V}/jobs/query"), json!({"operation": "insert", "query": "SELECT Id FROM Lead"})).await;
    assert_eq!((res.status, res.json()[0]["errorCode"].clone()), (400, json!("INVALIDJOB")));
    // None of the refused jobs took from the daily allocation.
    let limits = c.get(&format!("{V}/limits")).await.json();
    assert_eq!(limits["DailyBulkV2QueryJobs"]["Remaining"], 10000);

    // An admin can make the next job fail, and spend the job allocation.
    c.admin_post("/__sandbox/salesforce/bulk", json!({"fail_next": "Query timed out"})).await;
    let job = c.post(&format!("{V}/jobs/query"), json!({"operation": "query", "query": "SELECT Id FROM Lead"})).await;
    let job_id = job.json()["id"].as_str().unwrap().to_string();
    let info = c.get(&format!("{V}/jobs/query/{job_id}")).await.json();
    assert_eq!((info["state"].as_str(), info["errorMessage"].as_str()), (Some("Failed"), Some("Query timed out")));
    c.admin_post("/__sandbox/salesforce/limits", json!({"bulk_v2_query_jobs_used": 10000})).await;
    let res = c.post(&format!("{V}/jobs/query"), json!({"operation": "query", "query": "SELECT Id FROM Lead"})).await;
    assert_eq!((res.status, res.json()[0]["errorCode"].clone()), (400, json!("LIMIT_EXCEEDED")));
    sb.stop().await;
}
