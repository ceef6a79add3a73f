//! Bulk API 2.0 query jobs: `/services/data/vXX.X/jobs/query[/{id}[/results]]`.
//!
//! A job runs its query when it is created (the matching ids are fixed
//! then, as a real job's snapshot is), answers `UploadComplete`, and reports
//! `InProgress` to the first polls (one by default; the admin route sets how
//! many) before `JobComplete`, so a client has to poll as against a real org.
//! Results are CSV pages of at most `maxRecords` rows, each with its header
//! row; `Sforce-Locator` names the next page (the base64 of its offset, as
//! real locators are) or is `null` on the last; `Sforce-NumberOfRecords`
//! counts the page's rows. Every call is an ordinary REST request (counted,
//! logged, `Sforce-Limit-Info`); a job also takes one `DailyBulkV2QueryJobs`
//! and, when complete, its result size from `DailyBulkV2QueryFileStorageMB`.
//! Jobs are deleted 7 days (simulated) after they were created, as real
//! terminal jobs are.
//!
//! SOQL the real service refuses in Bulk 2.0 (parent-to-child subqueries,
//! aggregates such as `COUNT()`, `OFFSET`) is refused at creation with a
//! 400; a query the REST API would refuse fails the same way here.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::errors::ApiError;
use super::schema::FieldType;
use super::soql::{self, Bound, SelectItem};
use super::state::SfState;
use super::store::{fmt_datetime, make_id, parse_datetime};

/// Rows in a results page when the client names no `maxRecords` (the real
/// default is not documented; simple-salesforce asks for this many).
pub const DEFAULT_MAX_RECORDS: usize = 50_000;
/// Polls a new job answers `InProgress` to before `JobComplete`.
pub const DEFAULT_POLLS_IN_PROGRESS: u32 = 1;
/// How long a job is kept (real terminal jobs are deleted after 7 days).
const JOB_RETENTION_DAYS: i64 = 7;
const MEGABYTE: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    UploadComplete,
    InProgress,
    JobComplete,
    Aborted,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Aborted => "Aborted",
            JobState::Failed => "Failed",
        }
    }

    fn is_terminal(self) -> bool {
        matches!(self, JobState::JobComplete | JobState::Aborted | JobState::Failed)
    }
}

/// A CSV column delimiter a job may ask for.
fn delimiter(name: &str) -> Option<char> {
    Some(match name {
        "COMMA" => ',',
        "TAB" => '\t',
        "PIPE" => '|',
        "SEMICOLON" => ';',
        "CARET" => '^',
        "BACKQUOTE" => '`',
        _ => return None,
    })
}

#[derive(Debug, Clone)]
pub struct QueryJob {
    pub id: String,
    pub operation: String,
    pub object: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub state: JobState,
    pub api_version: String,
    pub column_delimiter: String,
    pub line_ending: String,
    bound: Bound,
    ids: Vec<String>,
    polls_left: u32,
    error_message: Option<String>,
}

impl QueryJob {
    fn info(&self) -> Value {
        let mut v = self.summary();
        if let Some(m) = v.as_object_mut() {
            let done = self.state == JobState::JobComplete;
            m.insert("numberRecordsProcessed".into(), json!(if done { self.ids.len() } else { 0 }));
            m.insert("retries".into(), json!(0));
            m.insert("totalProcessingTime".into(), json!(if done { 100 } else { 0 }));
            if let Some(e) = &self.error_message {
                m.insert("errorMessage".into(), json!(e));
            }
        }
        v
    }

    /// What `GET /jobs/query` lists for a job.
    fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": fmt_datetime(self.created_at),
            "systemModstamp": fmt_datetime(self.modified_at),
            "state": self.state.as_str(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version.trim_start_matches('v').parse::<f64>().unwrap_or(0.0),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        })
    }
}

/// Every query job, by id.
#[derive(Debug, Clone)]
pub struct QueryJobs {
    jobs: BTreeMap<String, QueryJob>,
    seq: u64,
    /// Polls each new job answers `InProgress` to.
    pub polls_in_progress: u32,
    /// The next job created fails with this message (admin).
    pub fail_next: Option<String>,
}

impl Default for QueryJobs {
    fn default() -> Self {
        QueryJobs { jobs: BTreeMap::new(), seq: 0, polls_in_progress: DEFAULT_POLLS_IN_PROGRESS, fail_next: None }
    }
}

impl QueryJobs {
    fn expire(&mut self, now: DateTime<Utc>) {
        let floor = now - Duration::days(JOB_RETENTION_DAYS);
        self.jobs.retain(|_, j| j.created_at > floor);
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

fn bulk_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

fn not_found() -> ApiError {
    bulk_error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist")
}

fn invalid_state(message: &str) -> ApiError {
    bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOBSTATE", message.to_string())
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// `POST /jobs/query`.
pub fn create(
    st: &mut SfState,
    body: &Value,
    user_id: &str,
    version: &str,
    now: DateTime<Utc>,
) -> Result<Response, ApiError> {
    st.query_jobs.expire(now);
    let text = |k: &str| body.get(k).and_then(Value::as_str);
    let operation = match text("operation") {
        Some(op @ ("query" | "queryAll")) => op.to_string(),
        Some(other) => {
            return Err(bulk_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                format!("InvalidJob : Invalid operation: {other}. Use query or queryAll"),
            ))
        }
        None => return Err(bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", "InvalidJob : operation is required")),
    };
    let Some(q) = text("query") else {
        return Err(bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", "InvalidJob : query is required"));
    };
    let column_delimiter = text("columnDelimiter").unwrap_or("COMMA").to_string();
    if delimiter(&column_delimiter).is_none() {
        return Err(bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            format!("InvalidJob : Invalid column delimiter: {column_delimiter}"),
        ));
    }
    let line_ending = text("lineEnding").unwrap_or("LF").to_string();
    if !matches!(line_ending.as_str(), "LF" | "CRLF") {
        return Err(bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            format!("InvalidJob : Invalid line ending: {line_ending}"),
        ));
    }
    if let Some(ct) = text("contentType").filter(|c| *c != "CSV") {
        return Err(bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            format!("InvalidJob : Invalid content type: {ct}"),
        ));
    }
    let parsed = soql::parse(q)?;
    refuse_unsupported(&parsed)?;
    if !st.bulk_usage.query_jobs.has_room(1, now) {
        return Err(bulk_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "You have reached the maximum number of Bulk API 2.0 query jobs allowed in 24 hours",
        ));
    }
    let bound = soql::bind(st, parsed, now)?.with_deleted(operation == "queryAll");
    let ids = st.matching_ids(&bound)?;
    st.bulk_usage.query_jobs.take(1, now);
    st.query_jobs.seq += 1;
    let id = make_id("750", "Hs4", st.query_jobs.seq);
    let mut job = QueryJob {
        id: id.clone(),
        operation,
        object: bound.object.clone(),
        created_by: user_id.to_string(),
        created_at: now,
        modified_at: now,
        state: JobState::UploadComplete,
        api_version: version.to_string(),
        column_delimiter,
        line_ending,
        bound,
        ids,
        polls_left: st.query_jobs.polls_in_progress,
        error_message: st.query_jobs.fail_next.take(),
    };
    let answer = job.info();
    if job.error_message.is_some() {
        job.state = JobState::Failed;
        job.ids.clear();
    }
    st.query_jobs.jobs.insert(id, job);
    Ok(json_response(StatusCode::OK, answer))
}

/// Bulk 2.0 refuses parent-to-child subqueries, aggregates and `OFFSET`.
fn refuse_unsupported(q: &soql::Query) -> Result<(), ApiError> {
    let refuse = |m: &str| bulk_error(StatusCode::BAD_REQUEST, "FEATURENOTENABLED", m.to_string());
    if q.select.iter().any(|s| matches!(s, SelectItem::Child(_))) {
        return Err(refuse("Aggregate Relationships not supported in Bulk V2 Query with CSV content type"));
    }
    if q.is_count() {
        return Err(refuse("Aggregate queries are not supported in Bulk V2 Query"));
    }
    if q.offset.is_some() {
        return Err(refuse("OFFSET is not supported in Bulk V2 Query"));
    }
    Ok(())
}

/// The result of a job as CSV bytes, one row per id: every value quoted,
/// nulls as `""`, datetimes in UTC with `Z`.
fn csv_rows(st: &SfState, job: &QueryJob, ids: &[String], with_header: bool) -> String {
    let sep = delimiter(&job.column_delimiter).unwrap_or(',');
    let eol = if job.line_ending == "CRLF" { "\r\n" } else { "\n" };
    let columns = job.bound.column_paths();
    let mut out = String::new();
    let quote = |out: &mut String, s: &str| {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    };
    if with_header {
        for (i, (keys, _)) in columns.iter().enumerate() {
            if i > 0 {
                out.push(sep);
            }
            quote(&mut out, &keys.join("."));
        }
        out.push_str(eol);
    }
    let table = st.table(&job.object);
    for id in ids {
        let Some(rec) = table.and_then(|t| t.get(id)) else { continue };
        let row = job.bound.render(st, id, rec, &job.api_version);
        for (i, (keys, kind)) in columns.iter().enumerate() {
            if i > 0 {
                out.push(sep);
            }
            let mut v = &row;
            for k in keys {
                v = v.get(k).unwrap_or(&Value::Null);
            }
            quote(&mut out, &csv_value(v, *kind));
        }
        out.push_str(eol);
    }
    out
}

fn csv_value(v: &Value, kind: FieldType) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if kind == FieldType::Datetime => parse_datetime(s)
            .map(|dt| dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| s.clone()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn job_mut<'a>(st: &'a mut SfState, id: &str, now: DateTime<Utc>) -> Result<&'a mut QueryJob, ApiError> {
    st.query_jobs.expire(now);
    st.query_jobs.jobs.get_mut(id).ok_or_else(not_found)
}

/// `GET /jobs/query/{id}`: each poll moves a running job on; a job that
/// completes takes its result size from the storage allocation.
pub fn poll(st: &mut SfState, id: &str, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let job = job_mut(st, id, now)?;
    let mut completed = false;
    if matches!(job.state, JobState::UploadComplete | JobState::InProgress) {
        if job.polls_left > 0 {
            job.polls_left -= 1;
            job.state = JobState::InProgress;
        } else {
            job.state = JobState::JobComplete;
            completed = true;
        }
        job.modified_at = now;
    }
    if completed {
        let job = st.query_jobs.jobs.remove(id).ok_or_else(not_found)?;
        let bytes = csv_rows(st, &job, &job.ids, true).len() as u64;
        st.query_jobs.jobs.insert(id.to_string(), job);
        st.bulk_usage.query_storage_mb.take(bytes.div_ceil(MEGABYTE), now);
    }
    let job = st.query_jobs.jobs.get(id).ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, job.info()))
}

/// `PATCH /jobs/query/{id}` with `{"state": "Aborted"}`.
pub fn abort(st: &mut SfState, id: &str, body: &Value, now: DateTime<Utc>) -> Result<Response, ApiError> {
    if body.get("state").and_then(Value::as_str) != Some("Aborted") {
        return Err(bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOBSTATE",
            "A query job can only be set to the state Aborted",
        ));
    }
    let job = job_mut(st, id, now)?;
    if job.state.is_terminal() {
        return Err(invalid_state(&format!("Aborting already {} Job not allowed", job.state.as_str())));
    }
    job.state = JobState::Aborted;
    job.modified_at = now;
    Ok(json_response(StatusCode::OK, job.summary()))
}

/// `DELETE /jobs/query/{id}`: only a job that is no longer running.
pub fn delete(st: &mut SfState, id: &str, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let job = job_mut(st, id, now)?;
    if job.state == JobState::InProgress {
        return Err(invalid_state("Deleting a job in progress is not allowed; abort it first"));
    }
    st.query_jobs.jobs.remove(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /jobs/query`: every job, as one page.
pub fn list(st: &mut SfState, now: DateTime<Utc>) -> Response {
    st.query_jobs.expire(now);
    let records: Vec<Value> = st.query_jobs.jobs.values().map(QueryJob::summary).collect();
    json_response(StatusCode::OK, json!({"done": true, "records": records, "nextRecordsUrl": null}))
}

fn encode_locator(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(offset.to_string())
}

fn decode_locator(locator: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD.decode(locator.trim_end_matches('=')).ok()?;
    String::from_utf8(raw).ok()?.parse().ok()
}

/// `GET /jobs/query/{id}/results[?locator=&maxRecords=]`.
pub fn results(
    st: &mut SfState,
    id: &str,
    locator: Option<&str>,
    max_records: Option<&str>,
    version: &str,
    now: DateTime<Utc>,
) -> Result<Response, ApiError> {
    job_mut(st, id, now)?;
    // Out of the map while its rows render (they read the rest of the state).
    let job = st.query_jobs.jobs.remove(id).ok_or_else(not_found)?;
    let answer = results_page(st, &job, locator, max_records, version);
    st.query_jobs.jobs.insert(id.to_string(), job);
    answer
}

fn results_page(
    st: &SfState,
    job: &QueryJob,
    locator: Option<&str>,
    max_records: Option<&str>,
    version: &str,
) -> Result<Response, ApiError> {
    if job.api_version != version {
        return Err(bulk_error(
            StatusCode::CONFLICT,
            "INVALIDJOBSTATE",
            format!("Get results with the API version the job was created with: {}", job.api_version),
        ));
    }
    if job.state != JobState::JobComplete {
        return Err(invalid_state(&format!("Job is not complete: its state is {}", job.state.as_str())));
    }
    let max = match max_records {
        None => DEFAULT_MAX_RECORDS,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(bulk_error(
                    StatusCode::BAD_REQUEST,
                    "INVALIDREQUEST",
                    format!("maxRecords must be a positive whole number, not '{s}'"),
                ))
            }
        },
    };
    let offset = match locator.filter(|l| !l.is_empty()) {
        None => 0,
        Some(l) => decode_locator(l)
            .filter(|o| *o <= job.ids.len())
            .ok_or_else(|| bulk_error(StatusCode::BAD_REQUEST, "INVALIDREQUEST", format!("Invalid locator: {l}")))?,
    };
    let end = offset.saturating_add(max).min(job.ids.len());
    let page = &job.ids[offset..end];
    let body = csv_rows(st, job, page, true);
    let next = if end < job.ids.len() { encode_locator(end) } else { "null".to_string() };
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/csv"));
    if let Ok(v) = HeaderValue::from_str(&next) {
        headers.insert("sforce-locator", v);
    }
    headers.insert("sforce-numberofrecords", HeaderValue::from(page.len()));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_are_base64_offsets() {
        assert_eq!(encode_locator(10_000), "MTAwMDA");
        assert_eq!(decode_locator("MTAwMDA"), Some(10_000));
        assert_eq!(decode_locator("MTAwMDA="), Some(10_000));
        assert_eq!(decode_locator("!!"), None);
    }

    #[test]
    fn csv_values_follow_bulk_formatting() {
        assert_eq!(csv_value(&Value::Null, FieldType::String), "");
        assert_eq!(csv_value(&json!("2026-03-02T09:00:00.000+0000"), FieldType::Datetime), "2026-03-02T09:00:00.000Z");
        assert_eq!(csv_value(&json!(true), FieldType::Boolean), "true");
        assert_eq!(csv_value(&json!(75.0), FieldType::Double), "75.0");
        assert_eq!(csv_value(&json!("a \"b\""), FieldType::String), "a \"b\"");
    }
}
