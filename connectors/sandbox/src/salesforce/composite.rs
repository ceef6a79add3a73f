//! `POST /services/data/vXX.X/composite`: up to 25 subrequests in one API
//! call, run in order, each answered as `{"body", "httpHeaders",
//! "httpStatusCode", "referenceId"}` inside `compositeResponse`.
//!
//! - At most 25 subrequests, of which at most 5 may be queries (`query`,
//!   `queryAll`, a `nextRecordsUrl`) or sObject Collections
//!   (`composite/sobjects…`); more is a 400 for the whole request.
//! - `@{referenceId.path}` in a later subrequest's URL or body is replaced
//!   by the value at `path` (`id`, `records[0].Id`) of that earlier answer;
//!   a reference to nothing answers that subrequest 400 `PROCESSING_HALTED`.
//! - `allOrNone: true`: the first subrequest answering ≥ 400 stops the rest
//!   and rolls every change back; the others answer 400 `PROCESSING_HALTED`
//!   (the recorded shape). Without it, each subrequest stands alone.
//! - Subrequests run through the same code as standalone requests, so a
//!   collection inside behaves exactly like `/composite/sobjects` (upsert by
//!   External ID, per-record failures, its own `allOrNone`).
//! - The whole request is one API call and one request-log entry; the
//!   subrequests are not counted again.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::routes::{dispatch, parse_version, percent_decode, Ctx};
use super::state::SfState;

/// Subrequests per Composite request.
pub const MAX_SUBREQUESTS: usize = 25;
/// Of those, queries and sObject Collections operations.
pub const MAX_QUERY_OR_COLLECTION: usize = 5;

const HALTED: &str = "The transaction was rolled back since another operation in the same transaction failed.";

fn halted() -> Value {
    json!([{"errorCode": "PROCESSING_HALTED", "message": HALTED}])
}

fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// Whether a subrequest path (after the version) is a query or a collection.
fn is_query_or_collection(segs: &[String]) -> bool {
    matches!(segs.first().map(String::as_str), Some("query" | "queryAll"))
        || (segs.first().map(String::as_str) == Some("composite")
            && segs.get(1).map(String::as_str) == Some("sobjects"))
}

/// The value `path` (`id`, `records[0].Id`) names in an answer.
fn lookup<'a>(mut v: &'a Value, path: &str) -> Option<&'a Value> {
    for part in path.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            v = v.get(name)?;
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            let n: usize = idx.strip_suffix(']')?.parse().ok()?;
            v = v.get(n)?;
        }
    }
    Some(v)
}

/// Replace every `@{ref.path}` in `text`; `Err` names the first reference
/// that resolves to nothing.
fn substitute(text: &str, answers: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let reference = &after[..end];
        let (name, path) = reference.split_once('.').unwrap_or((reference, ""));
        let value = answers.get(name).and_then(|body| if path.is_empty() { Some(body) } else { lookup(body, path) });
        match value {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Null) | None => return Err(reference.to_string()),
            Some(other) => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn substitute_value(v: &Value, answers: &Map<String, Value>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(substitute(s, answers)?),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| substitute_value(i, answers)).collect::<Result<_, _>>()?)
        }
        Value::Object(m) => Value::Object(
            m.iter().map(|(k, v)| Ok((k.clone(), substitute_value(v, answers)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// A Composite subrequest as sent.
struct Sub {
    method: Method,
    url: String,
    reference_id: String,
    body: Option<Value>,
}

fn parse_subrequests(body: &Value) -> Result<Vec<Sub>, ApiError> {
    let list = body.get("compositeRequest").and_then(Value::as_array).ok_or_else(|| {
        bad_request("JSON_PARSER_ERROR", "The request body must have a compositeRequest array of subrequests")
    })?;
    if list.is_empty() {
        return Err(bad_request("INVALID_INPUT", "compositeRequest must hold at least one subrequest"));
    }
    if list.len() > MAX_SUBREQUESTS {
        return Err(bad_request(
            "LIMIT_EXCEEDED",
            format!("A composite request can hold at most {MAX_SUBREQUESTS} subrequests, not {}", list.len()),
        ));
    }
    let mut subs: Vec<Sub> = Vec::with_capacity(list.len());
    for item in list {
        let field = |k: &str| item.get(k).and_then(Value::as_str);
        let method = field("method")
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .ok_or_else(|| bad_request("INVALID_INPUT", "Each subrequest needs a method (GET, POST, PATCH, DELETE)"))?;
        let url = field("url").ok_or_else(|| bad_request("INVALID_INPUT", "Each subrequest needs a url"))?;
        let reference_id =
            field("referenceId").ok_or_else(|| bad_request("INVALID_INPUT", "Each subrequest needs a referenceId"))?;
        if subs.iter().any(|s| s.reference_id == reference_id) {
            return Err(bad_request("INVALID_INPUT", format!("Duplicate referenceId provided: {reference_id}")));
        }
        subs.push(Sub {
            method,
            url: url.to_string(),
            reference_id: reference_id.to_string(),
            body: item.get("body").cloned(),
        });
    }
    let heavy = subs.iter().filter(|s| is_query_or_collection(&path_segments(&s.url))).count();
    if heavy > MAX_QUERY_OR_COLLECTION {
        return Err(bad_request(
            "LIMIT_EXCEEDED",
            format!(
                "A composite request can hold at most {MAX_QUERY_OR_COLLECTION} query or sObject Collections subrequests, not {heavy}"
            ),
        ));
    }
    Ok(subs)
}

/// `/services/data/v62.0/sobjects/Lead?x=1` → `["v62.0", "sobjects", "Lead"]`.
fn path_segments(url: &str) -> Vec<String> {
    let path = url.split('?').next().unwrap_or("");
    let mut segs: Vec<String> =
        path.trim_start_matches("/services/data").split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    if !segs.is_empty() {
        segs.remove(0);
    }
    segs
}

/// One answer: status, headers and JSON body.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Value,
}

fn read_response(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    // Handler bodies are already buffered: this completes at once.
    let bytes = futures::executor::block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).unwrap_or_default();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    (status, body)
}

fn run_one(st: &mut SfState, ctx: &Ctx<'_>, sub: &Sub, answers: &Map<String, Value>) -> Answer {
    let halted_ref = |reference: String| Answer {
        status: StatusCode::BAD_REQUEST,
        location: None,
        body: json!([{"errorCode": "PROCESSING_HALTED", "message": format!(
            "Invalid reference specified. No value for {reference} found in {}. Provided referenceId ids are case-sensitive.",
            reference.split('.').next().unwrap_or("")
        )}]),
    };
    let url = match substitute(&sub.url, answers) {
        Ok(u) => u,
        Err(r) => return halted_ref(r),
    };
    let body = match sub.body.as_ref().map(|b| substitute_value(b, answers)).transpose() {
        Ok(b) => b,
        Err(r) => return halted_ref(r),
    };
    let version_seg = url.split('?').next().unwrap_or("").trim_start_matches("/services/data/");
    let version = version_seg.split('/').next().and_then(parse_version);
    let (Some(version), true) = (version, url.starts_with("/services/data/")) else {
        return Answer { status: StatusCode::NOT_FOUND, location: None, body: ApiError::not_found().body() };
    };
    let segs = path_segments(&url);
    if segs.first().map(String::as_str) == Some("composite") && segs.len() == 1 {
        return Answer {
            status: StatusCode::BAD_REQUEST,
            location: None,
            body: bad_request("INVALID_INPUT", "A composite request cannot hold another composite request").body(),
        };
    }
    let query: Vec<(String, String)> = url
        .split_once('?')
        .map(|(_, q)| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let sub_ctx = Ctx {
        user_id: ctx.user_id.clone(),
        now: ctx.now,
        version: &version,
        query,
        headers: ctx.headers,
        fail_marker: ctx.fail_marker.clone(),
    };
    let bytes = Bytes::from(body.map(|b| b.to_string()).unwrap_or_default());
    let resp = match dispatch(st, &sub_ctx, &sub.method, &segs, &bytes) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let (status, body) = read_response(resp);
    let location = (status == StatusCode::CREATED)
        .then(|| body.get("id").and_then(Value::as_str).map(str::to_string))
        .flatten()
        .and_then(|id| segs.get(1).map(|object| format!("/services/data/{version}/sobjects/{object}/{id}")));
    Answer { status, location, body }
}

fn render(reference_id: &str, status: StatusCode, location: Option<&str>, body: Value) -> Value {
    let headers = match location {
        Some(l) => json!({"Location": l}),
        None => json!({}),
    };
    json!({"body": body, "httpHeaders": headers, "httpStatusCode": status.as_u16(), "referenceId": reference_id})
}

/// `POST /composite`.
pub fn run(st: &mut SfState, ctx: &Ctx<'_>, body: &Bytes) -> Result<Response, ApiError> {
    let request: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::json_parser(format!("Unexpected character: {e}")))?;
    let all_or_none = request.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let subs = parse_subrequests(&request)?;
    if all_or_none {
        st.begin_journal();
    }
    let mut answers: Map<String, Value> = Map::new();
    let mut done: Vec<(usize, Answer)> = Vec::new();
    let mut failed_at: Option<usize> = None;
    for (i, sub) in subs.iter().enumerate() {
        let answer = run_one(st, ctx, sub, &answers);
        let failed = answer.status.as_u16() >= 400;
        if answer.status.is_success() {
            answers.insert(sub.reference_id.clone(), answer.body.clone());
        }
        done.push((i, answer));
        if failed && all_or_none {
            failed_at = Some(i);
            break;
        }
    }
    let responses: Vec<Value> = if let Some(failed) = failed_at {
        let undo = st.end_journal();
        st.rollback(undo);
        subs.iter()
            .enumerate()
            .map(|(i, sub)| match done.iter().find(|(j, _)| *j == i) {
                Some((_, a)) if i == failed => render(&sub.reference_id, a.status, None, a.body.clone()),
                _ => render(&sub.reference_id, StatusCode::BAD_REQUEST, None, halted()),
            })
            .collect()
    } else {
        if all_or_none {
            st.end_journal();
        }
        done.into_iter().map(|(i, a)| render(&subs[i].reference_id, a.status, a.location.as_deref(), a.body)).collect()
    };
    Ok((StatusCode::OK, Json(json!({"compositeResponse": responses}))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_through_fields_and_indexes() {
        let mut answers = Map::new();
        answers.insert("NewLead".into(), json!({"id": "00Q1", "success": true}));
        answers.insert("Q".into(), json!({"records": [{"Id": "00Q2", "N": 3}]}));
        assert_eq!(substitute("/sobjects/Lead/@{NewLead.id}", &answers).unwrap(), "/sobjects/Lead/00Q1");
        assert_eq!(substitute("@{Q.records[0].Id}-@{Q.records[0].N}", &answers).unwrap(), "00Q2-3");
        assert_eq!(substitute("@{Missing.id}", &answers), Err("Missing.id".to_string()));
        assert_eq!(substitute("@{Q.records[5].Id}", &answers), Err("Q.records[5].Id".to_string()));
        let body = substitute_value(&json!({"WhoId": "@{NewLead.id}", "n": 1}), &answers).unwrap();
        assert_eq!(body, json!({"WhoId": "00Q1", "n": 1}));
    }

    #[test]
    fn too_many_subrequests_or_heavy_ones_are_refused() {
        let sub = |url: &str, r: usize| json!({"method": "GET", "url": url, "referenceId": format!("r{r}")});
        let many: Vec<Value> = (0..26).map(|i| sub("/services/data/v62.0/limits", i)).collect();
        let e = parse_subrequests(&json!({"compositeRequest": many})).err().unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let queries: Vec<Value> = (0..6).map(|i| sub("/services/data/v62.0/query?q=SELECT+Id+FROM+Lead", i)).collect();
        assert!(parse_subrequests(&json!({"compositeRequest": queries})).is_err());
        let five: Vec<Value> = (0..5).map(|i| sub("/services/data/v62.0/composite/sobjects", i)).collect();
        assert_eq!(parse_subrequests(&json!({"compositeRequest": five})).unwrap().len(), 5);
        let dup = vec![sub("/services/data/v62.0/limits", 1), sub("/services/data/v62.0/limits", 1)];
        assert!(parse_subrequests(&json!({"compositeRequest": dup})).is_err());
    }
}
