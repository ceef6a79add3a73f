//! The Salesforce emulator over HTTP: OAuth grants, sessions, the daily
//! allocation, query paging, writes, upsert and the admin routes, with
//! bodies and headers compared to the recorded real responses in
//! `tests/fixtures/salesforce/` and the REST API's documented forms.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::server::{start, ClockMode, RunningSandbox, SandboxOptions};
use serde_json::{json, Value};

const V: &str = "/services/data/v62.0";

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/salesforce").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Fixture files start with one `#` attribution line.
    let body: String = text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The same keys, recursively, ignoring values (shape equality).
fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => match (x.first(), y.first()) {
            (Some(p), Some(q)) => same_shape(p, q),
            _ => true,
        },
        (Value::Null, _) | (_, Value::Null) => true,
        (x, y) => std::mem::discriminant(x) == std::mem::discriminant(y),
    }
}

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
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let json = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("json body") };
        (status, headers, json)
    }

    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}/__sandbox/salesforce{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("admin request");
        assert!(resp.status().is_success(), "admin {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn dump(&self, object: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/__sandbox/salesforce/records/{object}", self.base))
            .send()
            .await
            .expect("dump")
            .json()
            .await
            .expect("dump json");
        v["records"].as_array().expect("records").clone()
    }
}

fn limit_info(h: &reqwest::header::HeaderMap) -> String {
    h.get("sforce-limit-info").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

#[tokio::test]
async fn versions_limits_header_and_session_errors() {
    let sb = sandbox(20).await;
    let c = Client::new(&sb);

    // The versions list needs no session and carries no limit header.
    let resp = reqwest::get(format!("{}/services/data/", sb.base_url)).await.expect("versions");
    assert!(resp.headers().get("sforce-limit-info").is_none());
    let versions: Value = resp.json().await.expect("json");
    assert!(same_shape(&versions, &fixture("versions.json")));
    assert!(versions.as_array().expect("list").iter().any(|v| v["version"] == "62.0"));

    let (status, h, limits) = c.get(&format!("{V}/limits/")).await;
    assert_eq!(status, 200);
    assert_eq!(limit_info(&h), "api-usage=1/15000");
    assert_eq!(limits["DailyApiRequests"], json!({"Max": 15000, "Remaining": 14999}));
    let recorded = fixture("limits.json");
    for key in recorded.as_object().expect("object").keys().filter(|k| k.starts_with("Daily")) {
        if key.contains("Streaming")
            || key.contains("Bulk")
            || key.contains("Workflow")
            || key.contains("ApiRequests")
            || key.contains("Async")
        {
            assert!(limits.get(key).is_some(), "missing {key}");
        }
    }

    // Exhausted allocation: 403 with the real body, not counted.
    c.admin(reqwest::Method::POST, "/limits", json!({"daily_limit": 100, "used": 100})).await;
    let (status, h, body) = c.get(&format!("{V}/limits")).await;
    assert_eq!(status, 403);
    assert_eq!(body, json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]));
    assert_eq!(limit_info(&h), "api-usage=100/100");
    c.admin(reqwest::Method::POST, "/limits", json!({"daily_limit": 1000, "used": 10})).await;
    let (_, h, _) = c.get(&format!("{V}/sobjects/Lead/describe")).await;
    assert_eq!(limit_info(&h), "api-usage=11/1000");

    // Expired and revoked sessions: 401 with the recorded body.
    c.admin(reqwest::Method::POST, "/tokens/expire", json!({})).await;
    let (status, _, body) = c.get(&format!("{V}/limits")).await;
    assert_eq!(status, 401);
    assert_eq!(body, fixture("401-invalid-session-id.json"));
    let fresh = c.admin(reqwest::Method::POST, "/tokens/issue", json!({})).await;
    let c2 = Client { token: fresh["access_token"].as_str().expect("token").to_string(), ..Client::new(&sb) };
    assert_eq!(c2.get(&format!("{V}/limits")).await.0, 200);
    c.admin(reqwest::Method::POST, "/tokens/revoke", json!({})).await;
    assert_eq!(c2.get(&format!("{V}/limits")).await.0, 401);

    // The request log marks which calls counted.
    let log = sb.shared.log.snapshot();
    assert!(log.iter().any(|r| r.path == "/services/data/" && !r.counted));
    assert!(log.iter().any(|r| r.status == 401 && !r.counted));
    assert!(log.iter().any(|r| r.status == 200 && r.counted && r.path.ends_with("/limits/")));
    sb.stop().await;
}

fn sign(claims: &Value, key_path: &str) -> String {
    let pem = std::fs::read(key_path).expect("private key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("rsa key");
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), claims, &key).expect("sign")
}

async fn token_call(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp =
        reqwest::Client::new().post(format!("{base}/services/oauth2/token")).form(form).send().await.expect("token");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[tokio::test]
async fn oauth_grants_answer_like_the_token_endpoint() {
    let sb = sandbox(5).await;
    let creds = &sb.credentials;
    let key_path = creds["jwt_private_key_path"].as_str().expect("key path");
    let client_id = creds["client_id"].as_str().expect("client_id");
    let username = creds["username"].as_str().expect("username");
    let now: DateTime<Utc> = sb.shared.clock.now();
    let claims = |aud: &str, exp: i64, sub: &str| json!({"iss": client_id, "sub": sub, "aud": aud, "exp": exp});

    let good = sign(&claims("https://login.salesforce.com", now.timestamp() + 180, username), key_path);
    let (status, body) = token_call(
        &sb.base_url,
        &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &good)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "JWT bearer never returns a refresh token");
    for k in ["access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"] {
        assert!(body.get(k).is_some(), "missing {k} in {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], json!(sb.base_url));
    assert_eq!(body["issued_at"], json!(now.timestamp_millis().to_string()));
    let id = body["id"].as_str().expect("id");
    let parts: Vec<&str> = id.rsplit('/').take(2).collect();
    assert!(parts[0].starts_with("005") && parts[1].starts_with("00D"), "{id}");
    let c = Client { token: body["access_token"].as_str().expect("token").into(), ..Client::new(&sb) };
    assert_eq!(c.get(&format!("{V}/limits")).await.0, 200);

    // Expired assertion, wrong audience, foreign signature.
    let expired = sign(&claims("https://login.salesforce.com", now.timestamp() - 1, username), key_path);
    let (status, body) = token_call(
        &sb.base_url,
        &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &expired)],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let wrong_aud = sign(&claims("https://example.com", now.timestamp() + 60, username), key_path);
    let (status, body) = token_call(
        &sb.base_url,
        &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &wrong_aud)],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let forged = format!("{}x", &good[..good.len() - 1]);
    let (status, body) = token_call(
        &sb.base_url,
        &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &forged)],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // Refresh grant, rotating: the old refresh token dies with the recorded error.
    let c0 = Client::new(&sb);
    c0.admin(reqwest::Method::POST, "/tokens/settings", json!({"rotate_refresh_tokens": true})).await;
    let rt = creds["refresh_token"].as_str().expect("refresh_token");
    let (status, body) =
        token_call(&sb.base_url, &[("grant_type", "refresh_token"), ("refresh_token", rt), ("client_id", client_id)])
            .await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["refresh_token"].as_str().expect("rotated refresh token");
    assert_ne!(rotated, rt);
    let (status, body) =
        token_call(&sb.base_url, &[("grant_type", "refresh_token"), ("refresh_token", rt), ("client_id", client_id)])
            .await;
    assert_eq!(status, 400);
    assert_eq!(body, fixture("refresh-error-expired.json"));

    // Client credentials with HTTP Basic.
    let resp = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", sb.base_url))
        .basic_auth(client_id, creds["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", sb.base_url))
        .basic_auth(client_id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");

    // Sessions time out in simulated time.
    c0.admin(reqwest::Method::POST, "/tokens/settings", json!({"session_timeout_secs": 60})).await;
    let (_, body) = token_call(
        &sb.base_url,
        &[("grant_type", "refresh_token"), ("refresh_token", rotated), ("client_id", client_id)],
    )
    .await;
    let c3 = Client { token: body["access_token"].as_str().expect("token").into(), ..Client::new(&sb) };
    assert_eq!(c3.get(&format!("{V}/limits")).await.0, 200);
    sb.shared.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(c3.get(&format!("{V}/limits")).await.0, 401);
    sb.stop().await;
}

#[tokio::test]
async fn query_pages_with_locators_and_late_commits_are_visible() {
    let sb = sandbox(5).await;
    let c = Client::new(&sb);
    let base_ts = "2026-03-02T09:00:00.000Z";
    // 450 leads sharing one SystemModstamp (ties), created through the admin API.
    for i in 0..450 {
        c.admin(
            reqwest::Method::POST,
            "/records/Lead",
            json!({"LastName": format!("Tie{i:03}"), "Company": "Acme", "SystemModstamp": base_ts}),
        )
        .await;
    }
    let q = "SELECT Id, LastName, Owner.Type FROM Lead WHERE SystemModstamp >= 2026-03-02T09:00:00Z AND SystemModstamp <= 2026-03-02T09:00:00Z ORDER BY SystemModstamp, Id";
    let resp = c
        .http
        .get(format!("{}{V}/query", c.base))
        .bearer_auth(&c.token)
        .header("Sforce-Query-Options", "batchSize=200")
        .query(&[("q", q)])
        .send()
        .await
        .expect("query");
    assert_eq!(resp.status().as_u16(), 200);
    let first: Value = resp.json().await.expect("json");
    assert_eq!(first["totalSize"], 450);
    assert_eq!(first["done"], false);
    assert_eq!(first["records"].as_array().expect("records").len(), 200);
    let next = first["nextRecordsUrl"].as_str().expect("nextRecordsUrl");
    assert!(next.starts_with("/services/data/v62.0/query/01g") && next.ends_with("-200"), "{next}");
    assert!(same_shape(
        &first["records"][0]["attributes"],
        &fixture("paginated-first-page.json")["records"][0]["attributes"]
    ));
    assert_eq!(first["records"][0]["Owner"]["Type"], "User");

    let mut ids: Vec<String> =
        first["records"].as_array().expect("r").iter().map(|r| r["Id"].as_str().expect("Id").to_string()).collect();
    let mut url = next.to_string();
    loop {
        let (status, _, page) = c.get(&url).await;
        assert_eq!(status, 200);
        ids.extend(page["records"].as_array().expect("r").iter().map(|r| r["Id"].as_str().expect("Id").to_string()));
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        url = page["nextRecordsUrl"].as_str().expect("next").to_string();
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ties come back ordered by Id");
    assert_eq!(ids.len(), 450);

    // A late-committed row: older modstamp than the newest served, visible now.
    c.admin(
        reqwest::Method::POST,
        "/records/Lead",
        json!({"LastName": "Late", "Company": "Acme", "SystemModstamp": "2026-03-02T08:59:59.999Z"}),
    )
    .await;
    let (_, _, late) = c.get(&format!("{V}/query?q=SELECT+Id,SystemModstamp+FROM+Lead+WHERE+LastName+=+'Late'")).await;
    assert_eq!(late["records"][0]["SystemModstamp"], "2026-03-02T08:59:59.999+0000");

    // Bad SOQL and bad locators.
    let (status, _, body) = c.get(&format!("{V}/query?q=SELECT+Id+FRM+Lead")).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
    assert!(same_shape(&body, &fixture("400-malformed-soql-invalid-type.json")));
    let (status, _, body) = c.get(&format!("{V}/query/01gXXXXXXXXXXXXXXX-2000")).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_QUERY_LOCATOR")));
    sb.stop().await;
}

#[tokio::test]
async fn deleted_and_archived_rows_only_in_query_all_and_replication_windows() {
    let sb = sandbox(5).await;
    let c = Client::new(&sb);
    let now = sb.shared.clock.now();
    let lead = c.admin(reqwest::Method::POST, "/records/Lead", json!({"LastName": "Gone", "Company": "Acme"})).await;
    let lead_id = lead["id"].as_str().expect("id").to_string();
    let task = c
        .admin(reqwest::Method::POST, "/records/Task", json!({"Subject": "Old", "WhoId": lead_id, "IsArchived": true}))
        .await;
    let task_id = task["id"].as_str().expect("id").to_string();
    let (status, _, _) = c.call(reqwest::Method::DELETE, &format!("{V}/sobjects/Lead/{lead_id}"), None).await;
    assert_eq!(status, 204);
    // `deleted`/`updated` cover whole minutes that have passed.
    sb.shared.clock.advance(chrono::Duration::minutes(2));

    let q = format!("SELECT+Id,IsDeleted+FROM+Lead+WHERE+Id+=+'{lead_id}'");
    assert_eq!(c.get(&format!("{V}/query?q={q}")).await.2["totalSize"], 0);
    let all = c.get(&format!("{V}/queryAll?q={q}")).await.2;
    assert_eq!(all["records"][0]["IsDeleted"], true);
    let tq = format!("SELECT+Id+FROM+Task+WHERE+Id+=+'{task_id}'");
    assert_eq!(c.get(&format!("{V}/query?q={tq}")).await.2["totalSize"], 0);
    assert_eq!(c.get(&format!("{V}/queryAll?q={tq}")).await.2["totalSize"], 1);
    let (status, _, body) = c.get(&format!("{V}/sobjects/Lead/{lead_id}")).await;
    assert_eq!(status, 404);
    assert_eq!(body, fixture("404-entity-is-deleted.json"));

    let start = (now - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let end = (now + chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let resp = c
        .http
        .get(format!("{}{V}/sobjects/Lead/deleted/", c.base))
        .bearer_auth(&c.token)
        .query(&[("start", &start), ("end", &end)])
        .send()
        .await
        .expect("deleted");
    let deleted: Value = resp.json().await.expect("json");
    assert!(same_shape(&deleted, &fixture("get-deleted.json")), "{deleted}");
    assert_eq!(deleted["deletedRecords"][0]["id"], json!(lead_id));
    let resp = c
        .http
        .get(format!("{}{V}/sobjects/Lead/updated/", c.base))
        .bearer_auth(&c.token)
        .query(&[("start", &start), ("end", &end)])
        .send()
        .await
        .expect("updated");
    let updated: Value = resp.json().await.expect("json");
    assert!(same_shape(&updated, &fixture("get-updated.json")), "{updated}");
    assert!(!updated["ids"].as_array().expect("ids").contains(&json!(lead_id)), "deleted rows are not 'updated'");
    let too_old = (now - chrono::Duration::days(31)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let resp = c
        .http
        .get(format!("{}{V}/sobjects/Lead/updated/", c.base))
        .bearer_auth(&c.token)
        .query(&[("start", &too_old), ("end", &end)])
        .send()
        .await
        .expect("updated");
    assert_eq!(resp.status().as_u16(), 400);
    sb.stop().await;
}

#[tokio::test]
async fn collections_upsert_and_duplicates() {
    let sb = sandbox(5).await;
    let c = Client::new(&sb);

    // One bad record with allOrNone: the recorded shape, nothing written.
    let before = c.dump("Lead").await.len();
    let body = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Lead"}, "FirstName": "No", "Company": "Acme"},
        {"attributes": {"type": "Lead"}, "LastName": "Ok", "Company": "Acme"}
    ]});
    let (status, _, res) = c.call(reqwest::Method::POST, &format!("{V}/composite/sobjects"), Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(res[0]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(res[0]["errors"][0]["fields"], json!(["LastName"]));
    assert_eq!(res[1], fixture("create-partial-allOrNone.json")[1]);
    assert_eq!(c.dump("Lead").await.len(), before, "rolled back");

    // Without allOrNone the good record lands.
    let body = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Lead"}, "FirstName": "No", "Company": "Acme"},
        {"attributes": {"type": "Lead"}, "LastName": "Ok", "Company": "Acme"}
    ]});
    let (_, _, res) = c.call(reqwest::Method::POST, &format!("{V}/composite/sobjects"), Some(body)).await;
    assert_eq!(res[0]["success"], false);
    assert!(res[0].get("id").is_none());
    assert!(same_shape(&res[1], &fixture("create-success.json")[0]));
    assert_eq!(c.dump("Lead").await.len(), before + 1);

    // 201 records: refused whole.
    let many: Vec<Value> =
        (0..201).map(|i| json!({"attributes": {"type": "Task"}, "Subject": format!("t{i}")})).collect();
    let (status, _, res) =
        c.call(reqwest::Method::POST, &format!("{V}/composite/sobjects"), Some(json!({"records": many}))).await;
    assert_eq!((status, res[0]["errorCode"].as_str()), (400, Some("EXCEEDED_ID_LIMIT")));
    let (status, _, res) =
        c.call(reqwest::Method::POST, &format!("{V}/composite/sobjects"), Some(json!({"records": []}))).await;
    assert_eq!(status, 400);
    assert_eq!(res, fixture("create-400-no-records.json"));

    // Upsert by Handoff_Key__c: 201 then 200, one Task.
    let path = format!("{V}/sobjects/Task/Handoff_Key__c/lead1:first_touch:v1");
    let (status, _, res) = c.call(reqwest::Method::PATCH, &path, Some(json!({"Subject": "Call the lead"}))).await;
    assert_eq!(status, 201);
    assert_eq!(res["created"], true);
    let id = res["id"].as_str().expect("id").to_string();
    let (status, _, res) = c.call(reqwest::Method::PATCH, &path, Some(json!({"Subject": "Call the lead now"}))).await;
    assert_eq!(status, 200);
    assert_eq!(res, json!({"id": id, "success": true, "errors": [], "created": false}));
    let dup = c.admin(reqwest::Method::GET, "/duplicates/tasks", json!({})).await;
    assert_eq!(dup["by_handoff_key"], json!([]));
    // A create with the same key is refused; an admin-made duplicate makes upsert answer 300.
    let (status, _, res) = c
        .call(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Task/"),
            Some(json!({"Subject": "x", "Handoff_Key__c": "lead1:first_touch:v1"})),
        )
        .await;
    assert_eq!((status, res[0]["errorCode"].as_str()), (400, Some("DUPLICATE_VALUE")));
    c.admin(
        reqwest::Method::POST,
        "/records/Task",
        json!({"Subject": "Call the lead now", "Handoff_Key__c": "lead1:first_touch:v1"}),
    )
    .await;
    let (status, _, res) = c.call(reqwest::Method::PATCH, &path, Some(json!({"Subject": "again"}))).await;
    assert_eq!(status, 300);
    assert_eq!(res.as_array().expect("urls").len(), 2);
    let dup = c.admin(reqwest::Method::GET, "/duplicates/tasks", json!({})).await;
    assert_eq!(dup["by_handoff_key"][0]["ids"].as_array().expect("ids").len(), 2);
    let (status, _, res) =
        c.call(reqwest::Method::PATCH, &format!("{V}/sobjects/Task/Nope__c/x"), Some(json!({}))).await;
    assert_eq!(status, 404);
    assert!(same_shape(&res, &fixture("404-upsert-external-id-not-found.json")));

    // Describe shows a custom field an admin adds.
    c.admin(
        reqwest::Method::POST,
        "/fields/Lead",
        json!({"name": "Territory__c", "type": "picklist", "picklistValues": ["EMEA", "AMER"]}),
    )
    .await;
    let (_, _, d) = c.get(&format!("{V}/sobjects/Lead/describe")).await;
    let f =
        d["fields"].as_array().expect("fields").iter().find(|f| f["name"] == "Territory__c").cloned().expect("field");
    assert_eq!(f["custom"], true);
    assert_eq!(f["picklistValues"][1]["value"], "AMER");
    let whizbang = fixture("describe-whizbang.json");
    assert!(same_shape(&d["fields"][0]["name"], &whizbang["fields"][0]["name"]));
    for k in [
        "name",
        "type",
        "nillable",
        "updateable",
        "externalId",
        "unique",
        "custom",
        "picklistValues",
        "referenceTo",
        "relationshipName",
    ] {
        assert!(whizbang["fields"][0].get(k).is_some() && f.get(k).is_some(), "{k}");
    }
    sb.stop().await;
}

#[tokio::test]
async fn lead_history_over_http_describe_subquery_and_admin() {
    let sb = sandbox(30).await;
    let c = Client::new(&sb);
    let (status, _, d) = c.get(&format!("{V}/sobjects/Lead/describe")).await;
    assert_eq!(status, 200);
    let rels = d["childRelationships"].as_array().expect("childRelationships");
    let hist = rels.iter().find(|r| r["relationshipName"] == "Histories").expect("Histories");
    assert_eq!((hist["childSObject"].as_str(), hist["field"].as_str()), (Some("LeadHistory"), Some("LeadId")));
    let whizbang = fixture("describe-whizbang.json");
    let recorded = whizbang["childRelationships"][0].as_object().expect("recorded child relationship");
    assert!(recorded.keys().all(|k| hist.get(k).is_some()), "a child relationship carries the recorded keys: {hist}");
    let (status, _, hd) = c.get(&format!("{V}/sobjects/LeadHistory/describe")).await;
    assert_eq!(status, 200);
    assert_eq!((hd["keyPrefix"].as_str(), hd["createable"].as_bool()), (Some("017"), Some(false)));
    let names: Vec<&str> = hd["fields"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()).collect();
    for f in ["Id", "LeadId", "Field", "DataType", "OldValue", "NewValue", "CreatedDate", "CreatedById", "IsDeleted"] {
        assert!(names.contains(&f), "{f} in {names:?}");
    }

    // Reassign a lead through the API: its history shows the change, twice.
    let lead = c.dump("Lead").await.into_iter().find(|r| r["IsDeleted"] == false).expect("a live lead");
    let id = lead["Id"].as_str().expect("Id").to_string();
    let users = c.dump("User").await;
    let to = users
        .iter()
        .filter_map(|u| u["Id"].as_str())
        .find(|u| Some(*u) != lead["OwnerId"].as_str())
        .expect("another user");
    let (status, _, _) =
        c.call(reqwest::Method::PATCH, &format!("{V}/sobjects/Lead/{id}"), Some(json!({"OwnerId": to}))).await;
    assert_eq!(status, 204);
    let q = format!(
        "SELECT Id, OwnerId, (SELECT Field, DataType, OldValue, NewValue, CreatedDate FROM Histories WHERE Field IN ('Owner','Status') ORDER BY CreatedDate DESC LIMIT 2) FROM Lead WHERE Id = '{id}'"
    );
    let (status, _, body) = c.get(&format!("{V}/query?q={}", url_encode(&q))).await;
    assert_eq!(status, 200, "{body}");
    let h = &body["records"][0]["Histories"];
    assert_eq!(h["done"], true);
    let rows = h["records"].as_array().expect("records");
    assert_eq!(rows.len(), 2);
    let id_row = rows.iter().find(|r| r["DataType"] == "EntityId").expect("the id row");
    assert_eq!((id_row["Field"].as_str(), id_row["NewValue"].as_str()), (Some("Owner"), Some(to)));
    let name_row = rows.iter().find(|r| r["DataType"] == "Text").expect("the name row");
    let to_name = users.iter().find(|u| u["Id"] == json!(to)).and_then(|u| u["Name"].as_str()).expect("name");
    assert_eq!(name_row["NewValue"].as_str(), Some(to_name));
    assert_eq!(rows[0]["attributes"]["type"], "LeadHistory");

    let (status, _, body) =
        c.get(&format!("{V}/query?q={}", url_encode("SELECT Id, (SELECT Id FROM Historiez) FROM Lead"))).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_TYPE")));

    // History is immutable, through the API and the admin routes alike.
    let hid = c.dump("LeadHistory").await[0]["Id"].as_str().expect("history id").to_string();
    let (status, _, body) = c
        .call(reqwest::Method::PATCH, &format!("{V}/sobjects/LeadHistory/{hid}"), Some(json!({"NewValue": "x"})))
        .await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INSUFFICIENT_ACCESS_OR_READONLY")));
    let resp = c
        .http
        .patch(format!("{}/__sandbox/salesforce/records/LeadHistory/{hid}", c.base))
        .json(&json!({"NewValue": "x"}))
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status().as_u16(), 400);

    // Tracking off: Histories leaves describe and the subquery fails.
    let off = c.admin(reqwest::Method::POST, "/field-history", json!({"enabled": false})).await;
    assert_eq!(off, json!({"enabled": false, "fields": ["OwnerId", "Status"]}));
    let (_, _, d) = c.get(&format!("{V}/sobjects/Lead/describe")).await;
    assert!(d["childRelationships"].as_array().expect("rels").iter().all(|r| r["relationshipName"] != "Histories"));
    let (status, _, body) = c.get(&format!("{V}/query?q={}", url_encode(&q))).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_TYPE")));
    sb.stop().await;
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
