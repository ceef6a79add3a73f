//! Parsing recorded Salesforce responses (see fixtures/ATTRIBUTION.tsv).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use handoff_model::ErrorClass;
use handoff_runtime::auth::{describe_refusal, parse_token_answer};
use handoff_salesforce::wire::{
    classify_record_error, classify_response, parse_error_body, Describe, Failure, QueryPage, SaveResult,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn token_answer_without_refresh_token() {
    let t = parse_token_answer(fixture("oauth_token-success.json").as_bytes()).expect("parses");
    assert_eq!(t.instance_url.as_deref(), Some("https://na1.salesforce.com"));
    assert!(t.access_token.expose().starts_with("00Dx0000000BV7z!"));
    assert!(t.refresh_token.is_none());
    assert_eq!(t.expires_in, None, "Salesforce says nothing of the token's lifetime");
}

#[test]
fn expired_refresh_token_is_invalid_grant() {
    let e = describe_refusal(fixture("oauth_refresh-error-expired.json").as_bytes());
    assert_eq!(e, "invalid_grant: expired access/refresh token");
}

#[test]
fn expired_session_asks_for_reauthentication() {
    let e = parse_error_body(fixture("errors_401-invalid-session-id.json").as_bytes());
    assert_eq!(e.error_code, "INVALID_SESSION_ID");
    assert_eq!(classify_response(401, &e, None), Failure::Class(ErrorClass::Auth));
}

#[test]
fn unknown_field_needs_config() {
    let e = parse_error_body(fixture("errors_400-unknown-field.json").as_bytes());
    assert_eq!(e.error_code, "INVALID_FIELD");
    assert!(e.message.contains("AccountNumer"));
    assert_eq!(classify_response(400, &e, None), Failure::Class(ErrorClass::NeedsConfig));
}

#[test]
fn query_pages_chain_through_next_records_url() {
    let first: QueryPage = serde_json::from_str(&fixture("query_paginated-first-page.json")).expect("parses");
    assert!(!first.done);
    assert_eq!(first.next_records_url.as_deref(), Some("/services/data/v26.0/query/01gD"));
    let last: QueryPage = serde_json::from_str(&fixture("query_paginated-last-page.json")).expect("parses");
    assert!(last.done);
    assert_eq!(last.next_records_url, None);
    let empty: QueryPage = serde_json::from_str(&fixture("query_empty.json")).expect("parses");
    assert!(empty.done && empty.records.is_empty());
    let rows: QueryPage = serde_json::from_str(&fixture("query_contacts-20-rows.json")).expect("parses");
    assert_eq!(rows.records.len(), 20);
    assert_eq!(rows.total_size, 20);
}

#[test]
fn per_record_results_are_classified() {
    let partial: Vec<SaveResult> =
        serde_json::from_str(&fixture("composite-sobjects_create-partial-allOrNone.json")).expect("parses");
    let errors: Vec<_> = partial.iter().map(|r| classify_record_error(&r.errors[0])).collect();
    assert_eq!(errors[0].code, "REQUIRED_FIELD_MISSING");
    assert_eq!(errors[0].class, ErrorClass::Permanent);
    assert!(errors[0].message.contains("LastName"));
    assert_eq!(errors[1].class, ErrorClass::Retryable, "a rolled-back sibling is worth another try");

    let update: Vec<SaveResult> =
        serde_json::from_str(&fixture("composite-sobjects_update-partial-allOrNone.json")).expect("parses");
    assert_eq!(classify_record_error(&update[1].errors[0]).class, ErrorClass::NeedsConfig);

    let ok: Vec<SaveResult> = serde_json::from_str(&fixture("composite-sobjects_create-success.json")).expect("parses");
    assert!(ok.iter().all(|r| r.success && r.id.is_some()));
}

#[test]
fn single_save_result_with_a_malformed_id() {
    let r: SaveResult =
        serde_json::from_str(&fixture("sobject_write-success-false-malformed-id.json")).expect("parses");
    assert!(!r.success);
    let e = classify_record_error(&r.errors[0]);
    assert_eq!(e.class, ErrorClass::Permanent);
}

#[test]
fn describe_lists_field_names() {
    let d: Describe = serde_json::from_str(&fixture("sobject_describe-whizbang.json")).expect("parses");
    assert_eq!(d.name, "Whizbang");
    assert!(d.fields.iter().any(|f| f.name == "SystemModstamp"));
    assert!(d.fields.iter().all(|f| !f.external_id));
    // Child relationships, some unnamed (null), tell whether history can be read.
    assert!(d.has_child_relationship("Attachments"));
    assert!(d.child_relationships.iter().any(|c| c.relationship_name.is_none()));
    assert!(!d.has_child_relationship("Histories"));
}
