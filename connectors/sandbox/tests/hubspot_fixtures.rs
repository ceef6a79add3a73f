//! The emulator's bodies have the shapes of recorded real HubSpot responses
//! (`tests/fixtures/hubspot/`, attribution in `ATTRIBUTION.tsv`): every key
//! the real body has, with the same JSON type, and for error bodies exactly
//! the real key set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::server::{start, ClockMode, SandboxOptions};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/hubspot/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .expect("fixture JSON")
}

/// Keys the real service adds that the sandbox has no use for.
const OPTIONAL: [&str; 2] = ["url", "link"];

fn assert_shape(real: &Value, ours: &Value, path: &str) {
    match (real, ours) {
        (Value::Null, _) => {}
        (Value::Object(r), Value::Object(o)) => {
            for (k, rv) in r {
                if OPTIONAL.contains(&k.as_str()) {
                    continue;
                }
                let ov = o.get(k).unwrap_or_else(|| panic!("{path}.{k} is missing; ours: {ours}"));
                // Property maps hold whichever properties were asked for.
                if k == "properties" || k == "context" {
                    assert!(ov.is_object(), "{path}.{k} must be an object");
                    continue;
                }
                assert_shape(rv, ov, &format!("{path}.{k}"));
            }
        }
        (Value::Array(r), Value::Array(o)) => {
            if let (Some(r0), Some(o0)) = (r.first(), o.first()) {
                assert_shape(r0, o0, &format!("{path}[0]"));
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        _ => panic!("{path}: real {real} vs ours {ours}"),
    }
}

fn assert_same_keys(real: &Value, ours: &Value) {
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(keys(ours), keys(real), "ours: {ours}");
    assert_shape(real, ours, "$");
}

#[tokio::test]
async fn bodies_match_the_recorded_shapes() {
    let mut opts = SandboxOptions::new(CrmKind::Hubspot);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads: 12, days: 3, ..OrgConfig::default() };
    let sb = start(opts).await.expect("sandbox starts");
    let http = reqwest::Client::new();
    let token = sb.credentials["access_token"].as_str().expect("token").to_string();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut rb = http.request(method, format!("{}{path}", sb.base_url)).bearer_auth(&token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        async move {
            let r = rb.send().await.expect("request");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };

    let (s, list) = call(reqwest::Method::GET, "/crm/v3/objects/contacts?limit=3", None).await;
    assert_eq!(s, 200);
    assert_shape(&fixture("objects-contacts-list.json"), &list, "$");

    let (s, page1) = call(reqwest::Method::POST, "/crm/v3/objects/contacts/search", Some(json!({"limit": 1}))).await;
    assert_eq!(s, 200);
    assert_shape(&fixture("search-contacts-page-1.json"), &page1, "$");
    let last = (page1["total"].as_u64().expect("total") - 1).to_string();
    let (_, page2) =
        call(reqwest::Method::POST, "/crm/v3/objects/contacts/search", Some(json!({"limit": 1, "after": last}))).await;
    assert_same_keys(&fixture("search-contacts-page-2.json"), &page2);

    let id = list["results"][0]["id"].clone();
    let email = list["results"][0]["properties"]["email"].clone();
    let (s, read) = call(
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/batch/read",
        Some(json!({"inputs": [{"id": id}], "properties": ["email"]})),
    )
    .await;
    assert_eq!(s, 200);
    assert_same_keys(&fixture("objects-contacts-batch-read.json"), &read);

    let fresh = |n: u32| json!({"properties": {"email": format!("fresh{n}@example.com"), "firstname": "Fresh"}});
    let (s, created) =
        call(reqwest::Method::POST, "/crm/v3/objects/contacts/batch/create", Some(json!({"inputs": [fresh(1)]}))).await;
    assert_eq!(s, 201);
    assert_same_keys(&fixture("batch-create-contacts-success.json"), &created);

    let (s, partial) = call(
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/batch/create",
        Some(json!({"inputs": [fresh(2), {"properties": {"email": email}}]})),
    )
    .await;
    assert_eq!(s, 207);
    assert_same_keys(&fixture("batch-create-contacts-207-partial.json"), &partial);
    assert_eq!(partial["errors"][0]["context"]["existingId"][0], id);
    assert_eq!(
        partial["errors"][0]["message"],
        format!("Contact already exists. Existing ID: {}", id.as_str().expect("id"))
    );

    let (s, conflict) = call(
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/batch/create",
        Some(json!({"inputs": [fresh(3), fresh(3)]})),
    )
    .await;
    assert_eq!(s, 409);
    assert_same_keys(&fixture("batch-create-contacts-409-conflict.json"), &conflict);
    assert_eq!(conflict["message"], "Contact already exists");

    let (s, invalid) = call(
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/batch/create",
        Some(json!({"inputs": [{"properties": {"first000name": "x"}}]})),
    )
    .await;
    assert_eq!(s, 400);
    let real = fixture("batch-create-contacts-400-invalid-properties.json");
    assert_same_keys(&real, &invalid);
    assert_eq!(
        invalid["errors"][0],
        json!({"message": "Property \"first000name\" does not exist", "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": ["first000name"]}})
    );

    let (s, unknown) = call(reqwest::Method::POST, "/crm/v3/objects/butterflies/search", Some(json!({}))).await;
    assert_eq!(s, 400);
    assert_same_keys(&fixture("errors-400-search-invalid-object.json"), &unknown);
    assert_eq!(unknown["message"], "Unable to infer object type from: butterflies");

    sb.stop().await;
}
