//! The HubSpot emulator over real HTTP on loopback: auth, search paging and
//! caps, tasks with `handoff_key`, rate limits and their headers, faults,
//! merges, archives and the admin routes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use chrono::{DateTime, Utc};
use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::server::{start, ClockMode, RunningSandbox, SandboxOptions};
use serde_json::{json, Value};

async fn sandbox(leads: usize) -> RunningSandbox {
    let mut opts = SandboxOptions::new(CrmKind::Hubspot);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads, days: 5, ..OrgConfig::default() };
    start(opts).await.expect("sandbox starts")
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(sb: &RunningSandbox) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: sb.base_url.clone(),
            token: sb.credentials["access_token"].as_str().expect("access_token").to_string(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("json body") };
        (status, headers, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, b) = self.call(reqwest::Method::GET, path, None).await;
        (s, b)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, _, b) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (s, b)
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}/__sandbox{}", self.base, path))
            .json(&body)
            .send()
            .await
            .expect("admin");
        assert!(resp.status().is_success(), "admin {path} answered {}", resp.status());
        resp.json().await.expect("admin json")
    }
}

fn ms(t: &str) -> i64 {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc).timestamp_millis()
}

#[tokio::test]
async fn bad_token_gets_hubspots_401_body() {
    let sb = sandbox(5).await;
    let mut c = Client::new(&sb);
    c.token = "pat-na1-wrong".into();
    let (status, body) = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(body["message"].as_str().unwrap().starts_with("Authentication credentials not found."));
    assert!(body["correlationId"].is_string());
    sb.stop().await;
}

#[tokio::test]
async fn windowed_search_pages_by_id_and_matches_the_dump() {
    let sb = sandbox(60).await;
    let c = Client::new(&sb);
    let dump = c.admin(reqwest::Method::GET, "/hubspot/objects/contacts", json!({})).await;
    let live: Vec<&Value> = dump["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["archived"] == false && r.get("mergedInto").is_none())
        .collect();
    assert!(live.len() > 20, "the org should hold contacts");
    let mut times: Vec<i64> = live.iter().map(|r| ms(r["updatedAt"].as_str().unwrap())).collect();
    times.sort();
    let (lo, hi) = (times[times.len() / 4], times[3 * times.len() / 4]);
    let mut expected: Vec<u64> = live
        .iter()
        .filter(|r| (lo..hi).contains(&ms(r["updatedAt"].as_str().unwrap())))
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    expected.sort();

    let mut got = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({
            "filterGroups": [{"filters": [
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": lo.to_string()},
                {"propertyName": "lastmodifieddate", "operator": "LT", "value": hi.to_string()}
            ]}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": ["email", "lastmodifieddate"],
            "limit": 4
        });
        if let Some(a) = &after {
            body["after"] = json!(a);
        }
        let (status, page) = c.post("/crm/v3/objects/contacts/search", body).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"].as_u64().unwrap() as usize, expected.len());
        for r in page["results"].as_array().unwrap() {
            got.push(r["id"].as_str().unwrap().parse::<u64>().unwrap());
            assert!(r["properties"]["email"].is_string());
        }
        pages += 1;
        // Searches are limited to 5 per second and the clock is frozen.
        c.admin(reqwest::Method::POST, "/clock", json!({"advance_secs": 1})).await;
        match page.pointer("/paging/next/after").and_then(Value::as_str) {
            Some(a) => after = Some(a.to_string()),
            None => break,
        }
    }
    assert_eq!(got, expected);
    assert!(pages > 1);

    let (status, body) = c.post("/crm/v3/objects/contacts/search", json!({"after": "10000", "limit": 10})).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    sb.stop().await;
}

#[tokio::test]
async fn handoff_key_property_tasks_and_duplicates() {
    let sb = sandbox(5).await;
    let c = Client::new(&sb);
    let (status, prop) = c
        .post(
            "/crm/v3/properties/tasks",
            json!({"name": "handoff_key", "label": "Handoff key", "type": "string", "fieldType": "text", "groupName": "task", "hasUniqueValue": true}),
        )
        .await;
    assert_eq!(status, 201, "{prop}");
    assert_eq!(prop["hasUniqueValue"], true);
    let (status, again) = c
        .post(
            "/crm/v3/properties/tasks",
            json!({"name": "handoff_key", "label": "x", "type": "string", "fieldType": "text", "groupName": "task"}),
        )
        .await;
    assert_eq!(status, 409, "{again}");

    let (_, contacts) = c.get("/crm/v3/objects/contacts?limit=1").await;
    let contact = contacts["results"][0]["id"].as_str().unwrap().to_string();
    let task = |key: &str| {
        json!({"properties": {"hs_timestamp": "2026-03-06T10:00:00.000Z", "hs_task_subject": "Call the lead", "handoff_key": key, "hs_task_status": "NOT_STARTED"},
               "associations": [{"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]}]})
    };
    let (status, created) = c.post("/crm/v3/objects/tasks", task("k-1")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["properties"]["handoff_key"], "k-1");
    let (status, dup) = c.post("/crm/v3/objects/tasks", task("k-1")).await;
    assert_eq!(status, 409);
    assert_eq!(dup["category"], "CONFLICT");
    assert!(dup["message"].as_str().unwrap().contains(&id));

    let (status, found) = c
        .post("/crm/v3/objects/tasks/search", json!({"filterGroups": [{"filters": [{"propertyName": "handoff_key", "operator": "EQ", "value": "k-1"}]}], "properties": ["handoff_key"]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(found["total"], 1);
    assert_eq!(found["results"][0]["id"], id.as_str());

    let (_, with_assoc) = c.get(&format!("/crm/v3/objects/tasks/{id}?associations=contacts")).await;
    assert_eq!(with_assoc["associations"]["contacts"]["results"][0]["id"], contact.as_str());
    let (_, v4) = c.get(&format!("/crm/v4/objects/tasks/{id}/associations/contacts")).await;
    assert_eq!(v4["results"][0]["toObjectId"].to_string(), contact);
    assert_eq!(v4["results"][0]["associationTypes"][0]["typeId"], 204);

    let (status, _) = c.post("/crm/v3/objects/tasks", json!({"properties": {"hs_task_subject": "no due date"}})).await;
    assert_eq!(status, 400);
    let bad_type = json!({"properties": {"hs_timestamp": "1772700000000"}, "associations": [{"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 9999}]}]});
    assert_eq!(c.post("/crm/v3/objects/tasks", bad_type).await.0, 400);

    // A duplicate written behind the API's back shows up in the admin view.
    c.admin(reqwest::Method::POST, "/hubspot/objects/tasks", json!({"properties": {"handoff_key": "k-1", "hs_task_subject": "Call the lead"}, "associations": [{"to_type": "contacts", "to_id": contact}]})).await;
    let dups = c.admin(reqwest::Method::GET, "/hubspot/tasks/duplicates", json!({})).await;
    assert_eq!(dups["by_handoff_key"][0]["handoff_key"], "k-1");
    assert_eq!(dups["by_handoff_key"][0]["ids"].as_array().unwrap().len(), 2);
    assert_eq!(dups["by_subject_and_contact"][0]["contact_id"], contact.as_str());
    sb.stop().await;
}

#[tokio::test]
async fn burst_search_and_daily_limits_answer_429_with_policy_and_headers() {
    let sb = sandbox(3).await;
    let c = Client::new(&sb);
    let (status, headers, _) = c.call(reqwest::Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-hubspot-ratelimit-max"], "190");
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "189");
    assert_eq!(headers["x-hubspot-ratelimit-interval-milliseconds"], "10000");
    assert_eq!(headers["x-hubspot-ratelimit-daily"], "650000");
    assert_eq!(headers["x-hubspot-ratelimit-daily-remaining"], "649999");

    for _ in 0..5 {
        assert_eq!(c.post("/crm/v3/objects/contacts/search", json!({})).await.0, 200);
    }
    let (status, body) = c.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "SECONDLY");
    assert_eq!(body["message"], "You have reached your secondly limit.");

    for _ in 0..189 {
        assert_eq!(c.get("/crm/v3/owners").await.0, 200);
    }
    let (status, headers, body) = c.call(reqwest::Method::GET, "/crm/v3/owners", None).await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "0");

    c.admin(reqwest::Method::POST, "/clock", json!({"advance_secs": 11})).await;
    assert_eq!(c.get("/crm/v3/owners").await.0, 200);
    c.admin(reqwest::Method::POST, "/hubspot/limits/daily", json!({"used": 650000})).await;
    let (status, body) = c.get("/crm/v3/owners").await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "DAILY");
    assert_eq!(body["message"], "You have reached your daily limit.");
    sb.stop().await;
}

#[tokio::test]
async fn search_lag_hides_fresh_writes_from_search_but_not_from_get() {
    let sb = sandbox(5).await;
    let c = Client::new(&sb);
    let (_, list) = c.get("/crm/v3/objects/contacts?limit=1&properties=email").await;
    let id = list["results"][0]["id"].as_str().unwrap().to_string();
    c.admin(reqwest::Method::POST, "/faults", json!({"kind": "search_lag", "lag_secs": 30})).await;
    let (status, _, _) = c
        .call(
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(json!({"properties": {"handoff_sla_status": "breached"}})),
        )
        .await;
    assert_eq!(status, 200);
    let q = json!({"filterGroups": [{"filters": [{"propertyName": "handoff_sla_status", "operator": "EQ", "value": "breached"}]}]});
    assert_eq!(c.post("/crm/v3/objects/contacts/search", q.clone()).await.1["total"], 0);
    let (_, got) = c.get(&format!("/crm/v3/objects/contacts/{id}?properties=handoff_sla_status")).await;
    assert_eq!(got["properties"]["handoff_sla_status"], "breached");
    c.admin(reqwest::Method::POST, "/clock", json!({"advance_secs": 31})).await;
    assert_eq!(c.post("/crm/v3/objects/contacts/search", q).await.1["total"], 1);
    sb.stop().await;
}

#[tokio::test]
async fn merge_archive_and_batch_partial_failure() {
    let sb = sandbox(6).await;
    let c = Client::new(&sb);
    let (_, list) = c.get("/crm/v3/objects/contacts?limit=3").await;
    let ids: Vec<String> =
        list["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let (status, merged) =
        c.post("/crm/v3/objects/contacts/merge", json!({"primaryObjectId": ids[0], "objectIdToMerge": ids[1]})).await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["properties"]["hs_merged_object_ids"], ids[1].as_str());
    let (status, via_loser) = c.get(&format!("/crm/v3/objects/contacts/{}", ids[1])).await;
    assert_eq!(status, 200);
    assert_eq!(via_loser["id"], ids[0].as_str());

    let (status, _, _) = c.call(reqwest::Method::DELETE, &format!("/crm/v3/objects/contacts/{}", ids[2]), None).await;
    assert_eq!(status, 204);
    let (_, archived) = c.get("/crm/v3/objects/contacts?archived=true&limit=100").await;
    let rec = archived["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == ids[2].as_str())
        .expect("archived contact listed");
    assert_eq!(rec["archived"], true);
    assert!(rec["archivedAt"].is_string());
    assert_eq!(c.get(&format!("/crm/v3/objects/contacts/{}", ids[2])).await.0, 404);

    c.admin(reqwest::Method::POST, "/faults", json!({"kind": "partial_batch_failure", "marker": "FAILME", "count": 1}))
        .await;
    let inputs: Vec<Value> = (0..3)
        .map(|i| json!({"properties": {"hs_timestamp": "1772700000000", "hs_task_subject": if i == 1 { "FAILME".to_string() } else { format!("t{i}") }}}))
        .collect();
    let (status, body) = c.post("/crm/v3/objects/tasks/batch/create", json!({"inputs": inputs})).await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["errors"][0]["status"], "error");

    let too_many: Vec<Value> = (0..101).map(|_| json!({"properties": {"hs_timestamp": "1772700000000"}})).collect();
    assert_eq!(c.post("/crm/v3/objects/tasks/batch/create", json!({"inputs": too_many})).await.0, 400);

    let (status, read) = c
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": ids[0]}, {"id": "999999999"}], "properties": ["email"]}),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(read["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(read["errors"][0]["context"]["ids"][0], "999999999");
    sb.stop().await;
}

#[tokio::test]
async fn oauth_refresh_then_expiry_and_revocation() {
    let sb = sandbox(3).await;
    let c = Client::new(&sb);
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", sb.credentials["client_id"].as_str().unwrap()),
        ("client_secret", sb.credentials["client_secret"].as_str().unwrap()),
        ("refresh_token", sb.credentials["refresh_token"].as_str().unwrap()),
    ];
    let resp = c.http.post(format!("{}/oauth/v1/token", sb.base_url)).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let tok: Value = resp.json().await.unwrap();
    assert_eq!(tok["expires_in"], 1800);
    let oauth =
        Client { http: c.http.clone(), base: c.base.clone(), token: tok["access_token"].as_str().unwrap().to_string() };
    let (status, headers, _) = oauth.call(reqwest::Method::GET, "/crm/v3/owners", None).await;
    assert_eq!(status, 200);
    assert!(headers.get("x-hubspot-ratelimit-daily").is_none(), "OAuth calls carry no daily headers");
    c.admin(reqwest::Method::POST, "/clock", json!({"advance_secs": 1801})).await;
    let (status, body) = oauth.get("/crm/v3/owners").await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");

    c.admin(reqwest::Method::POST, "/hubspot/tokens/revoke", json!({})).await;
    let (status, body) = c.get("/crm/v3/owners").await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    sb.stop().await;
}

#[tokio::test]
async fn engagements_list_with_contacts_and_versioned_paths_and_option_checks() {
    let sb = sandbox(40).await;
    let c = Client::new(&sb);
    let dump = c.admin(reqwest::Method::GET, "/hubspot/objects/calls", json!({})).await;
    let held: Vec<&Value> = dump["results"].as_array().unwrap().iter().filter(|r| r["archived"] == false).collect();
    assert!(!held.is_empty(), "the org logs calls");

    // Page through calls with their contact associations; compare with the dump.
    let mut seen = Vec::new();
    let mut path =
        "/crm/objects/2026-03/calls?limit=7&associations=contacts&properties=hs_timestamp,hubspot_owner_id".to_string();
    loop {
        let (status, page) = c.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for r in page["results"].as_array().unwrap() {
            let d = held.iter().find(|d| d["id"] == r["id"]).expect("listed call is held");
            assert_eq!(r["properties"]["hs_timestamp"], d["properties"]["hs_timestamp"]);
            let contact = &d["associations"]["contacts"][0]["id"];
            assert_eq!(&r["associations"]["contacts"]["results"][0]["id"], contact);
            assert_eq!(r["associations"]["contacts"]["results"][0]["type"], "call_to_contact");
            seen.push(r["id"].clone());
        }
        match page.pointer("/paging/next/after").and_then(Value::as_str) {
            Some(a) => {
                path = format!("/crm/v3/objects/calls?limit=7&associations=contacts&properties=hs_timestamp&after={a}")
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), held.len());

    let (_, list) = c.get("/crm/v3/objects/contacts?limit=1").await;
    let id = list["results"][0]["id"].as_str().unwrap().to_string();
    let (status, _, body) = c
        .call(
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(json!({"properties": {"hs_lead_status": "MAYBE"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("INVALID_OPTION"));
    let (status, _, body) = c
        .call(
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(json!({"properties": {"nope": "1"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
    sb.stop().await;
}

#[tokio::test]
async fn property_history_over_http_late_writes_merges_and_the_admin_dump() {
    let sb = sandbox(30).await;
    let c = Client::new(&sb);
    let (_, list) = c.get("/crm/v3/objects/contacts?limit=2").await;
    let ids: Vec<String> =
        list["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let (a, b) = (&ids[0], &ids[1]);

    // A write committed late: stamped an hour ago, it sorts into the past.
    let clock = c.admin(reqwest::Method::GET, "/clock", json!({})).await;
    let now = ms(clock["now"].as_str().unwrap());
    let hour_ago = chrono::DateTime::from_timestamp_millis(now - 3_600_000).unwrap().to_rfc3339();
    let r = c
        .http
        .patch(format!("{}/__sandbox/hubspot/objects/contacts/{a}", c.base))
        .json(&json!({"properties": {"hs_lead_status": "ATTEMPTED_TO_CONTACT"}, "updated_at": hour_ago}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // The SDKs send list parameters repeated rather than comma-separated.
    let (status, got) = c
        .get(&format!(
            "/crm/v3/objects/contacts/{a}?propertiesWithHistory=hs_lead_status&propertiesWithHistory=hubspot_owner_id"
        ))
        .await;
    assert_eq!(status, 200, "{got}");
    let status_history = got["propertiesWithHistory"]["hs_lead_status"].as_array().unwrap();
    let late =
        status_history.iter().find(|e| e["value"] == "ATTEMPTED_TO_CONTACT").expect("the late write is in the history");
    assert_eq!(ms(late["timestamp"].as_str().unwrap()), now - 3_600_000);
    assert_eq!(late["sourceType"], "CRM_UI");
    let times: Vec<i64> = status_history.iter().map(|e| ms(e["timestamp"].as_str().unwrap())).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    assert!(got["propertiesWithHistory"]["hubspot_owner_id"].is_array());

    // A merge: the survivor keeps its own history; the loser's id answers with it.
    let (_, before) = c.get(&format!("/crm/v3/objects/contacts/{a}?propertiesWithHistory=hubspot_owner_id")).await;
    let (status, _) =
        c.post("/crm/v3/objects/contacts/merge", json!({"primaryObjectId": a, "objectIdToMerge": b})).await;
    assert_eq!(status, 200);
    let (_, after) = c.get(&format!("/crm/v3/objects/contacts/{b}?propertiesWithHistory=hubspot_owner_id")).await;
    assert_eq!(after["id"], a.as_str());
    assert_eq!(after["propertiesWithHistory"]["hubspot_owner_id"], before["propertiesWithHistory"]["hubspot_owner_id"]);

    // The admin dump can be narrowed and carries history as ground truth.
    let dump = c
        .admin(
            reqwest::Method::GET,
            "/hubspot/objects/contacts?properties=hs_lead_status&history=hs_lead_status",
            json!({}),
        )
        .await;
    let rec = dump["results"].as_array().unwrap().iter().find(|r| r["id"] == a.as_str()).unwrap();
    assert_eq!(rec["properties"].as_object().unwrap().len(), 1);
    assert_eq!(rec["propertiesWithHistory"]["hs_lead_status"], got["propertiesWithHistory"]["hs_lead_status"]);

    // A bulk edit: many records, one instant.
    let (_, more) = c.get("/crm/v3/objects/contacts?limit=5").await;
    let bulk: Vec<String> =
        more["results"].as_array().unwrap().iter().skip(2).map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let edited = c
        .admin(
            reqwest::Method::POST,
            "/hubspot/objects/contacts/bulk_update",
            json!({"ids": bulk, "properties": {"industry": "Bulk"}}),
        )
        .await;
    assert_eq!(edited["updated"], 3);
    for id in &bulk {
        let (_, r) = c.get(&format!("/crm/v3/objects/contacts/{id}?properties=industry")).await;
        assert_eq!(
            (r["properties"]["industry"].as_str(), r["updatedAt"].as_str()),
            (Some("Bulk"), edited["updatedAt"].as_str())
        );
    }

    // Withheld history: 403 MISSING_SCOPES until given back.
    c.admin(reqwest::Method::POST, "/hubspot/history", json!({"readable": false})).await;
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": a}], "propertiesWithHistory": ["hs_lead_status"]}),
        )
        .await;
    assert_eq!((status, body["category"].as_str()), (403, Some("MISSING_SCOPES")));
    c.admin(reqwest::Method::POST, "/hubspot/history", json!({"readable": true})).await;
    let (status, _) = c
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": a}], "propertiesWithHistory": ["hs_lead_status"]}),
        )
        .await;
    assert_eq!(status, 200);
    sb.stop().await;
}

#[tokio::test]
async fn a_lost_response_applies_the_write_and_answers_a_gateway_error() {
    let sb = sandbox(5).await;
    let c = Client::new(&sb);
    let armed =
        c.admin(reqwest::Method::POST, "/hubspot/faults/lost_response", json!({"count": 1, "status": 502})).await;
    assert_eq!(armed["lost_response"]["count"], 1);
    // Reads do not use the fault up.
    assert_eq!(c.post("/crm/v3/objects/tasks/batch/read", json!({"inputs": [{"id": "1"}]})).await.0, 207);
    let task = json!({"inputs": [{"properties": {"hs_timestamp": "1772700000000", "hs_task_subject": "lost"}}]});
    let (status, body) = c.post("/crm/v3/objects/tasks/batch/create", task.clone()).await;
    assert_eq!((status, body["category"].as_str()), (502, Some("INTERNAL_ERROR")));
    let dump = c.admin(reqwest::Method::GET, "/hubspot/objects/tasks?properties=hs_task_subject", json!({})).await;
    let lost: Vec<&Value> =
        dump["results"].as_array().unwrap().iter().filter(|r| r["properties"]["hs_task_subject"] == "lost").collect();
    assert_eq!(lost.len(), 1, "the write landed although its answer was lost");
    // Spent: the next write answers normally.
    assert_eq!(c.post("/crm/v3/objects/tasks/batch/create", task).await.0, 201);

    let resp = c
        .http
        .post(format!("{}/__sandbox/hubspot/faults/lost_response", c.base))
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "status or delay_ms is required");

    // Limits can be raised for tests that measure something other than pacing.
    let limits = c
        .admin(
            reqwest::Method::POST,
            "/hubspot/limits",
            json!({"search_per_second": 50, "private_app_burst_per_10s": 1000}),
        )
        .await;
    assert_eq!(
        (limits["search_per_second"].as_u64(), limits["private_app_burst_per_10s"].as_u64()),
        (Some(50), Some(1000))
    );
    for _ in 0..20 {
        assert_eq!(c.post("/crm/v3/objects/contacts/search", json!({})).await.0, 200);
    }
    sb.stop().await;
}
