//! handoff against a hostile CRM: a corrupting proxy on loopback in front
//! of the sandbox answers with each fault a broken or hostile CRM (or a
//! proxy on the way to it) shows, to a daemon backfilling through it. A
//! fault-free twin daemon reads the same sandbox directly.
//!
//! For every fault, on both CRMs:
//! - the process never hangs past its deadlines: each tick ends within
//!   its calls' deadlines, on tokio's paused clock (no test waits for
//!   anything; the proxy's slowness is a timer on the same clock);
//! - requests stay bounded: counted at the proxy, per tick and per second
//!   of (virtual) time, the daemon driven at its own pace (`next_wake`)
//!   with the production pacing;
//! - the fault shows where it should: a bad answer fails its window (an
//!   error recorded, no cursor moved past it), an unreadable record is
//!   quarantined and its lead held while the rest of the org is evaluated,
//!   no secret reaches an error, no request follows a redirect elsewhere;
//! - once the fault clears (and the quarantine is read again, an hour
//!   later), the store holds exactly what the twin's holds: leads,
//!   activities, owners, calendars — nothing lost, nothing twice — and the
//!   CRM holds no task twice.
//!
//! Paused time jumps to the next timer whenever the runtime is idle, also
//! while a loopback exchange is merely in flight; a 5 ms heartbeat bounds
//! each jump, so an exchange costs milliseconds of virtual time against
//! deadlines of seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use handoff::config::{self, Config};
use handoff::daemon::{Daemon, TickReport};
use handoff::demo::{config_table, open_sandbox_limits, Simulation};
use handoff::store::Store;
use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::{ClockMode, RunningSandbox, SandboxOptions};
use serde_json::{json, Value};
use tokio::time::Instant;

/// Every fault the proxy can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    ErrorBody200,
    Html200,
    TruncatedJson,
    WrongFieldTypes,
    NoId,
    OddDates,
    RedirectElsewhere,
    SelfNextPage,
    EndlessPages,
    SlowLoris,
    HugePage,
    Forever(u16),
    TokenEcho,
}

const FAULTS: [Fault; 15] = [
    Fault::ErrorBody200,
    Fault::Html200,
    Fault::TruncatedJson,
    Fault::WrongFieldTypes,
    Fault::NoId,
    Fault::OddDates,
    Fault::RedirectElsewhere,
    Fault::SelfNextPage,
    Fault::EndlessPages,
    Fault::SlowLoris,
    Fault::HugePage,
    Fault::Forever(401),
    Fault::Forever(403),
    Fault::Forever(500),
    Fault::TokenEcho,
];

/// What a request is, as far as the faults care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    /// A read of records: a query page, a search, a listing.
    Data,
    Other,
}

struct ProxyState {
    crm: CrmKind,
    upstream: String,
    elsewhere: String,
    client: reqwest::Client,
    fault: Mutex<Option<Fault>>,
    hits: AtomicUsize,
    endless: AtomicUsize,
    /// Salesforce's endless pages: each made-up locator and the page it repeats.
    endless_pages: Mutex<BTreeMap<String, Value>>,
}

struct Proxy {
    base: String,
    state: Arc<ProxyState>,
    elsewhere_hits: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(sb: &RunningSandbox) -> Proxy {
        let elsewhere_hits = Arc::new(AtomicUsize::new(0));
        let empty = match sb.crm {
            CrmKind::Salesforce => json!({"totalSize": 0, "done": true, "records": []}),
            CrmKind::Hubspot => json!({"results": []}),
        };
        let hits = elsewhere_hits.clone();
        let elsewhere = serve(Router::new().fallback(move || {
            let hits = hits.clone();
            let empty = empty.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                axum::Json(empty)
            }
        }))
        .await;
        let state = Arc::new(ProxyState {
            crm: sb.crm,
            upstream: sb.base_url.clone(),
            // Another host, not just another port.
            elsewhere: elsewhere.replace("127.0.0.1", "localhost"),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            fault: Mutex::new(None),
            hits: AtomicUsize::new(0),
            endless: AtomicUsize::new(0),
            endless_pages: Mutex::new(BTreeMap::new()),
        });
        let base = serve(Router::new().fallback(relay).with_state(state.clone())).await;
        Proxy { base, state, elsewhere_hits }
    }

    fn arm(&self, fault: Option<Fault>) {
        *self.state.fault.lock().unwrap() = fault;
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

fn kind_of(crm: CrmKind, method: &Method, path: &str) -> Kind {
    if path.ends_with("/oauth2/token") || path.ends_with("/oauth/v1/token") {
        return Kind::Token;
    }
    let data = match crm {
        CrmKind::Salesforce => path.contains("/query"),
        CrmKind::Hubspot => {
            path.ends_with("/search")
                || path == "/crm/v3/owners"
                || (*method == Method::GET && path.starts_with("/crm/v3/objects/") && path.matches('/').count() == 4)
        }
    };
    if data {
        Kind::Data
    } else {
        Kind::Other
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// The CRM's error envelope for `status`.
fn refusal(crm: CrmKind, status: u16) -> Value {
    let (sf, hs) = match status {
        401 => ("INVALID_SESSION_ID", "INVALID_AUTHENTICATION"),
        403 => ("INSUFFICIENT_ACCESS_OR_READONLY", "MISSING_SCOPES"),
        _ => ("UNKNOWN_EXCEPTION", "INTERNAL_ERROR"),
    };
    match crm {
        CrmKind::Salesforce => json!([{"message": "refused by the proxy", "errorCode": sf}]),
        CrmKind::Hubspot => {
            json!({"status": "error", "message": "refused by the proxy", "category": hs, "correlationId": "x"})
        }
    }
}

/// The records of a data page: Salesforce's `records`, HubSpot's `results`.
fn records_mut(v: &mut Value) -> Option<&mut Vec<Value>> {
    let key = if v.get("records").is_some() { "records" } else { "results" };
    v.get_mut(key)?.as_array_mut()
}

/// Corrupts every third record of a page as `fault` says.
fn corrupt_records(crm: CrmKind, fault: Fault, page: &mut Value) {
    let Some(records) = records_mut(page) else { return };
    for (i, r) in records.iter_mut().enumerate() {
        if i % 3 != 1 {
            continue;
        }
        let Some(r) = r.as_object_mut() else { continue };
        match (crm, fault) {
            (CrmKind::Salesforce, Fault::WrongFieldTypes) => {
                r.insert("SystemModstamp".into(), json!(1_772_445_600_000u64));
            }
            (CrmKind::Salesforce, Fault::NoId) => {
                r.remove("Id");
            }
            (CrmKind::Salesforce, Fault::OddDates) => {
                r.insert("SystemModstamp".into(), json!("02/03/2026 10:00"));
            }
            (CrmKind::Hubspot, Fault::WrongFieldTypes) => {
                match r.get_mut("properties").and_then(Value::as_object_mut) {
                    Some(props) => {
                        props.insert("hs_object_id".into(), json!(12345));
                    }
                    None => {
                        r.insert("id".into(), json!(12345));
                    }
                }
            }
            (CrmKind::Hubspot, Fault::NoId) => {
                r.remove("id");
            }
            (CrmKind::Hubspot, Fault::OddDates) => {
                if let Some(props) = r.get_mut("properties").and_then(Value::as_object_mut) {
                    for p in ["lastmodifieddate", "hs_lastmodifieddate"] {
                        if props.contains_key(p) {
                            props.insert(p.into(), json!("02.03.2026 10:00"));
                        }
                    }
                }
                if r.contains_key("archivedAt") {
                    r.insert("archivedAt".into(), json!("yesterday"));
                }
            }
            _ => {}
        }
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

async fn relay(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    st.hits.fetch_add(1, Ordering::SeqCst);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX).await.unwrap_or_default();
    let kind = kind_of(st.crm, &method, &path);
    let fault = *st.fault.lock().unwrap();
    match (fault, kind) {
        (Some(Fault::TokenEcho), Kind::Token) => {
            let page =
                format!("<html><body><h1>Bad request</h1><pre>{}</pre></body></html>", String::from_utf8_lossy(&body));
            return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "text/html")], page).into_response();
        }
        (Some(Fault::Forever(status)), Kind::Data | Kind::Other) => {
            return json_response(StatusCode::from_u16(status).unwrap(), &refusal(st.crm, status));
        }
        (Some(Fault::ErrorBody200), Kind::Data) => {
            let err = match st.crm {
                CrmKind::Salesforce => {
                    json!([{"message": "Your query request was running for too long.", "errorCode": "QUERY_TIMEOUT"}])
                }
                CrmKind::Hubspot => {
                    json!({"status": "error", "message": "internal error", "category": "INTERNAL_ERROR"})
                }
            };
            return json_response(StatusCode::OK, &err);
        }
        (Some(Fault::Html200), Kind::Data) => {
            let page = "<html><head><title>Maintenance</title></head><body>We'll be right back.</body></html>";
            return (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], page).into_response();
        }
        (Some(Fault::RedirectElsewhere), Kind::Data) => {
            return (StatusCode::FOUND, [(header::LOCATION, format!("{}/empty", st.elsewhere))]).into_response();
        }
        (Some(Fault::SlowLoris), Kind::Data) => {
            let trickle = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Some((Ok::<_, std::io::Error>(" "), ()))
            });
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(trickle))
                .into_response();
        }
        (Some(Fault::HugePage), Kind::Data) => {
            let chunk = vec![b' '; 1 << 20];
            let endless = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json"), (header::CONTENT_LENGTH, "1073741824")],
                Body::from_stream(endless),
            )
                .into_response();
        }
        (Some(Fault::EndlessPages), Kind::Data) if st.crm == CrmKind::Salesforce && path.contains("/ENDLESS-") => {
            let repeated = st.endless_pages.lock().unwrap().get(&path).cloned();
            let Some(mut page) = repeated else {
                let refused = json!([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]);
                return json_response(StatusCode::BAD_REQUEST, &refused);
            };
            let next = format!("/services/data/v62.0/query/ENDLESS-{}", st.endless.fetch_add(1, Ordering::SeqCst));
            st.endless_pages.lock().unwrap().insert(next.clone(), page.clone());
            page["done"] = json!(false);
            page["nextRecordsUrl"] = json!(next);
            return json_response(StatusCode::OK, &page);
        }
        _ => {}
    }

    // Forward, with the request bent first where the fault needs it.
    let mut body = body.to_vec();
    let mut query = query;
    if st.crm == CrmKind::Hubspot && kind == Kind::Data {
        if matches!(fault, Some(Fault::SelfNextPage | Fault::EndlessPages)) && path.ends_with("/search") {
            // A server that ignores the position: the same page again.
            if let Ok(mut v) = serde_json::from_slice::<Value>(&body) {
                if let Some(filters) = v.pointer_mut("/filterGroups/0/filters").and_then(Value::as_array_mut) {
                    filters.retain(|f| f["propertyName"] != "hs_object_id");
                }
                body = v.to_string().into_bytes();
            }
        }
        if fault == Some(Fault::EndlessPages) && query_param(&query, "after").is_some_and(|a| a.starts_with("endless-"))
        {
            query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k != "after"))
                .finish();
        }
    }
    let url =
        if query.is_empty() { format!("{}{path}", st.upstream) } else { format!("{}{path}?{query}", st.upstream) };
    let mut out = st.client.request(method.clone(), &url).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(v) = headers.get(&name) {
            out = out.header(name, v);
        }
    }
    if let Some(v) = headers.get("sforce-query-options") {
        out = out.header("sforce-query-options", v);
    }
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut keep = HeaderMap::new();
    for (name, value) in resp.headers() {
        let n = name.as_str();
        if n == "x-hubspot-ratelimit-max" {
            // The sandbox behind is opened up (its clock stands still); the
            // daemon is told HubSpot's real burst size, so it paces as in production.
            keep.insert(name.clone(), HeaderValue::from_static("110"));
        } else if n == "content-type" || n == "sforce-limit-info" || n == "retry-after" || n.starts_with("x-hubspot") {
            keep.insert(name.clone(), value.clone());
        }
    }
    let mut bytes = resp.bytes().await.unwrap_or_default().to_vec();

    if kind == Kind::Data && status.is_success() {
        if let Some(fault) = fault {
            if let Ok(mut page) = serde_json::from_slice::<Value>(&bytes) {
                // Business hours and holidays are every lead's: an unreadable
                // one fails the calendars stream (tested by the connector)
                // rather than being quarantined, so the record faults spare them.
                let calendars = query.contains("BusinessHours") || query.contains("Holiday");
                match fault {
                    Fault::WrongFieldTypes | Fault::NoId | Fault::OddDates if !calendars => {
                        corrupt_records(st.crm, fault, &mut page)
                    }
                    Fault::SelfNextPage | Fault::EndlessPages => match st.crm {
                        CrmKind::Salesforce => {
                            let own = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
                            let next = if fault == Fault::SelfNextPage {
                                own
                            } else {
                                let n = st.endless.fetch_add(1, Ordering::SeqCst);
                                let next = format!("/services/data/v62.0/query/ENDLESS-{n}");
                                // The made-up pages repeat this query's own page, forever.
                                st.endless_pages.lock().unwrap().insert(next.clone(), page.clone());
                                next
                            };
                            page["done"] = json!(false);
                            page["nextRecordsUrl"] = json!(next);
                        }
                        CrmKind::Hubspot if !path.ends_with("/search") => {
                            let after = if fault == Fault::SelfNextPage {
                                query_param(&query, "after").unwrap_or_else(|| "self-1".into())
                            } else {
                                format!("endless-{}", st.endless.fetch_add(1, Ordering::SeqCst))
                            };
                            page["paging"] = json!({"next": {"after": after}});
                        }
                        CrmKind::Hubspot => {}
                    },
                    _ => {}
                }
                bytes = page.to_string().into_bytes();
            }
            if fault == Fault::TruncatedJson {
                bytes.truncate(bytes.len() / 2);
            }
        }
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = keep;
    response
}

/// Keeps a timer at most 5 ms away (see the module docs).
fn heartbeat() {
    tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}

fn set(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut t = table;
    for p in parents {
        t = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new())).as_table_mut().unwrap();
    }
    t.insert(last.to_string(), value);
}

fn write_secret(dir: &Path, name: &str, value: &str) -> toml::Value {
    let path = dir.join(name);
    std::fs::write(&path, value).unwrap();
    let mut t = toml::Table::new();
    t.insert("file".into(), path.display().to_string().into());
    t.into()
}

/// The daemon's config: the demo's, with HubSpot on its OAuth flow (so the
/// token endpoint is in play), through `base` when given, with the
/// production pacing when `paced`.
fn config(sb: &RunningSandbox, dir: &Path, base: Option<&str>, paced: bool) -> Config {
    std::fs::create_dir_all(dir).unwrap();
    let mut t = config_table(sb, dir).unwrap();
    match sb.crm {
        CrmKind::Salesforce => {
            if let Some(base) = base {
                set(&mut t, &["salesforce", "login_url"], base.into());
                set(&mut t, &["salesforce", "instance_url"], base.into());
                // The assertion is for the CRM, whatever is on the way to it.
                set(&mut t, &["salesforce", "auth", "audience"], sb.base_url.clone().into());
            }
            if paced {
                set(&mut t, &["salesforce", "requests_per_sec"], 10.into());
            }
        }
        CrmKind::Hubspot => {
            let cred = |k: &str| sb.credentials[k].as_str().unwrap().to_string();
            let mut auth = toml::Table::new();
            auth.insert("flow".into(), "oauth".into());
            auth.insert("client_id".into(), cred("client_id").into());
            auth.insert("client_secret".into(), write_secret(dir, "client-secret", &cred("client_secret")));
            auth.insert("refresh_token".into(), write_secret(dir, "refresh-token", &cred("refresh_token")));
            set(&mut t, &["hubspot", "auth"], auth.into());
            if let Some(base) = base {
                set(&mut t, &["hubspot", "base_url"], base.into());
            }
            if paced {
                set(&mut t, &["hubspot", "burst_per_10s"], 100.into());
                set(&mut t, &["hubspot", "search_per_second"], 4.into());
            }
        }
    }
    config::parse(&toml::to_string(&t).unwrap()).unwrap_or_else(|issues| panic!("{issues:?}"))
}

async fn catch_up(d: &mut Daemon) -> TickReport {
    let mut last = TickReport::default();
    for _ in 0..60 {
        last = d.tick().await.expect("tick");
        if last.caught_up {
            return last;
        }
    }
    panic!("the daemon does not catch up: {:?}", last.errors);
}

/// What the store holds of the CRM: every lead, activity, owner and
/// calendar as read, and what is left waiting.
#[derive(Debug, PartialEq)]
struct Snapshot {
    leads: BTreeMap<String, Value>,
    activities: BTreeMap<String, Value>,
    owners: BTreeMap<String, Value>,
    calendars: Vec<Value>,
}

fn snapshot(store: &Store) -> Snapshot {
    Snapshot {
        leads: store
            .leads()
            .unwrap()
            .into_iter()
            .map(|l| (l.lead.id.clone(), serde_json::to_value(&l.lead).unwrap()))
            .collect(),
        activities: store
            .all_activities()
            .unwrap()
            .into_iter()
            .map(|a| (format!("{}/{}", a.lead_id, a.id), serde_json::to_value(&a).unwrap()))
            .collect(),
        owners: store
            .owners()
            .unwrap()
            .into_iter()
            .map(|o| (o.id.clone(), serde_json::to_value(&o).unwrap()))
            .collect(),
        calendars: store.calendars().unwrap().iter().map(|c| serde_json::to_value(c).unwrap()).collect(),
    }
}

fn differences(a: &Snapshot, b: &Snapshot) -> String {
    let mut out = Vec::new();
    for (name, x, y) in
        [("lead", &a.leads, &b.leads), ("activity", &a.activities, &b.activities), ("owner", &a.owners, &b.owners)]
    {
        for (k, v) in x {
            match y.get(k) {
                None => out.push(format!("{name} {k} only in the faulted store")),
                Some(w) if w != v => out.push(format!("{name} {k} differs: {v} vs {w}")),
                _ => {}
            }
        }
        for k in y.keys().filter(|k| !x.contains_key(*k)) {
            out.push(format!("{name} {k} lost (only in the twin)"));
        }
    }
    if a.calendars != b.calendars {
        out.push("calendars differ".into());
    }
    out.truncate(10);
    out.join("\n")
}

/// Every secret value the sandbox handed out, for the leak check.
fn secrets(sb: &RunningSandbox) -> Vec<String> {
    ["client_secret", "refresh_token", "access_token"]
        .iter()
        .filter_map(|k| sb.credentials.get(*k).and_then(Value::as_str).map(str::to_string))
        .filter(|s| s.len() >= 8)
        .collect()
}

async fn expire_tokens(sb: &RunningSandbox) {
    let path = match sb.crm {
        CrmKind::Salesforce => "salesforce/tokens/expire",
        CrmKind::Hubspot => "hubspot/tokens/expire",
    };
    let r = reqwest::Client::new().post(format!("{}/{path}", sb.admin_url)).json(&json!({})).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

/// A tick is at most five connector operations (a pull of each of four
/// streams, one write: the first failing pull of a stream ends it), each
/// ended by its deadline.
const TICK_DEADLINE: Duration = Duration::from_secs(5 * handoff_runtime::DEFAULT_OPERATION_DEADLINE.as_secs());

async fn hostile_suite(crm: CrmKind) {
    heartbeat();
    let mut opts = SandboxOptions::new(crm);
    // More contacts than one HubSpot search page holds, so paging is in play.
    opts.org = OrgConfig { seed: 11, leads: 220, days: 3, ..OrgConfig::default() };
    opts.clock = ClockMode::Frozen;
    let sb = handoff_sandbox::start(opts).await.expect("sandbox");
    open_sandbox_limits(&sb).await.unwrap();
    let proxy = Proxy::start(&sb).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut twin = Simulation::daemon(&config(&sb, &tmp.path().join("twin"), None, false), &sb).await.unwrap();
    catch_up(&mut twin).await;
    // Per-second ceiling at the proxy: the production pacing, plus room for
    // token requests (paced by nothing but the calls that need them).
    let max_rate = match crm {
        CrmKind::Salesforce => 10.0 + 2.0,
        CrmKind::Hubspot => 10.0 + 4.0 + 2.0,
    };

    for fault in FAULTS {
        let dir = tmp.path().join(format!("{fault:?}").to_lowercase().replace(['(', ')'], ""));
        let cfg = config(&sb, &dir, Some(&proxy.base), true);
        let mut faulted = Simulation::daemon(&cfg, &sb).await.unwrap();
        if fault == Fault::TokenEcho {
            expire_tokens(&sb).await;
        }
        proxy.arm(Some(fault));
        let start_hits = proxy.hits();
        let started = Instant::now();
        let mut failed = 0u32;
        let mut errors = Vec::new();
        let mut quarantined = 0;
        let mut held = 0;
        for _ in 0..4 {
            let before = proxy.hits();
            let t0 = Instant::now();
            let report = faulted.tick().await.expect("the tick runs");
            let took = t0.elapsed();
            assert!(took <= TICK_DEADLINE, "{crm} {fault:?}: a tick took {took:?}");
            let sent = proxy.hits() - before;
            assert!(sent <= 4 * 50 + 60, "{crm} {fault:?}: {sent} requests in one tick");
            failed = if report.errors.is_empty() { 0 } else { failed + 1 };
            errors.extend(report.errors.clone());
            quarantined += report.quarantined;
            held = held.max(faulted.store().counts().unwrap().held);
            let wait = faulted.next_wake(&report, 0, failed).unwrap().max(Duration::from_secs(1));
            tokio::time::sleep(wait).await;
            sb.shared.clock.advance(chrono::Duration::from_std(wait).unwrap());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let sent = proxy.hits() - start_hits;
        let rate = sent as f64 / elapsed;
        assert!(rate <= max_rate, "{crm} {fault:?}: {sent} requests in {elapsed:.1} s");

        // The fault shows where it should.
        match fault {
            Fault::WrongFieldTypes | Fault::NoId | Fault::OddDates => {
                assert!(quarantined > 0, "{crm} {fault:?}: nothing was quarantined");
                let store = faulted.store();
                let kept = store.quarantine().unwrap();
                assert!(!kept.is_empty());
                let states = store.states().unwrap();
                // A held lead is not judged from the tick its record was quarantined on.
                for q in &kept {
                    let Some(lead) = &q.record.lead_id else { continue };
                    if let Some(state) = states.get(lead) {
                        assert!(
                            state.evaluated_at < q.first_at,
                            "{crm} {fault:?}: held lead {lead} was judged at {} while held since {}",
                            state.evaluated_at,
                            q.first_at
                        );
                    }
                }
                if fault != Fault::NoId || crm == CrmKind::Salesforce {
                    assert!(held > 0, "{crm} {fault:?}: no lead held");
                }
                assert!(!states.is_empty(), "{crm} {fault:?}: the rest of the org was not evaluated");
            }
            Fault::EndlessPages if crm == CrmKind::Hubspot => {
                // The owners listing never ends: the stream stays behind and nothing is judged on it.
                assert!(faulted.store().states().unwrap().is_empty(), "{crm}: evaluated on an unfinished read");
            }
            _ => {
                // A bad answer fails its window: reported, and nothing is judged on a read that did not end.
                assert!(!errors.is_empty(), "{crm} {fault:?}: no error reported");
                assert!(
                    faulted.store().states().unwrap().is_empty(),
                    "{crm} {fault:?}: evaluated on an unfinished read"
                );
            }
        }
        let recorded: Vec<String> = faulted.store().errors(200).unwrap().into_iter().map(|e| e.message).collect();
        for secret in secrets(&sb) {
            for text in recorded.iter().chain(&errors) {
                assert!(!text.contains(&secret), "{crm} {fault:?}: a secret in an error: {text}");
            }
        }
        if fault == Fault::RedirectElsewhere {
            assert_eq!(proxy.elsewhere_hits.load(Ordering::SeqCst), 0, "{crm}: a redirect was followed");
        }

        // The fault clears; an hour later the quarantine is read again. The
        // two daemons write to one org, so each reads the other's writes:
        // they are compared once neither has anything left to read or write.
        proxy.arm(None);
        sb.shared.clock.advance(chrono::Duration::minutes(61));
        let mut settled = false;
        for _ in 0..10 {
            let a = catch_up(&mut faulted).await;
            let b = catch_up(&mut twin).await;
            sb.shared.clock.advance(chrono::Duration::seconds(10));
            let quiet = |r: &TickReport| r.leads_changed + r.activities_changed + r.deletions + r.enqueued == 0;
            if quiet(&a) && quiet(&b) {
                settled = true;
                break;
            }
        }
        assert!(settled, "{crm} {fault:?}: the two daemons keep finding work in one org");
        let (a, b) = (snapshot(faulted.store()), snapshot(twin.store()));
        assert!(a == b, "{crm} {fault:?}: the store is not the twin's:\n{}", differences(&a, &b));
        assert!(faulted.store().quarantine().unwrap().is_empty(), "{crm} {fault:?}: records left in quarantine");
        assert!(faulted.store().held_leads().unwrap().is_empty());
    }
    if crm == CrmKind::Hubspot {
        let dups: Value =
            reqwest::get(format!("{}/hubspot/tasks/duplicates", sb.admin_url)).await.unwrap().json().await.unwrap();
        assert_eq!(dups["by_handoff_key"].as_array().map(Vec::len), Some(0), "tasks twice: {dups}");
    }
    sb.stop().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn salesforce_through_a_hostile_proxy_loses_nothing_and_never_hangs() {
    hostile_suite(CrmKind::Salesforce).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hubspot_through_a_hostile_proxy_loses_nothing_and_never_hangs() {
    hostile_suite(CrmKind::Hubspot).await;
}
