//! The runtime against a server on loopback that answers badly: slowly, a
//! byte at a time, forever, too much, elsewhere, with a form echo. Every
//! call ends by its deadline, sends a bounded number of requests, and
//! shows no secret.
//!
//! Time is tokio's paused clock: the server's slowness and the runtime's
//! deadlines are both timers on it, so no test waits and none depends on
//! how fast the machine is. Paused time jumps to the next timer whenever
//! the runtime is idle, including while a loopback exchange is in flight;
//! a 5 ms heartbeat bounds each jump, so an exchange costs a few
//! milliseconds of virtual time against deadlines of seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use handoff_model::{CrmKind, ErrorClass, RetryPolicy, Secret};
use handoff_runtime::{
    http, Bucket, BudgetReset, DailyBudget, Dialect, FormValue, Grant, HttpSettings, MemoryTokenStore, Observed, Raw,
    Refusal, Request, Runtime, RuntimeError, StaticToken, TokenAnswer, TokenManager,
};
use tokio::time::Instant;

/// What the fake server does with every request.
#[derive(Clone, Copy)]
enum Mode {
    /// Accept, then never send the headers.
    NoHeaders,
    /// Headers at once, then a byte of body every 5 s, forever.
    SlowLoris,
    /// An endless body of spaces, chunked.
    Endless,
    /// 302 to another loopback server.
    Elsewhere,
    /// HTTP 500, always.
    Error500,
    /// HTTP 401, always.
    Unauthorized,
    /// 429 with a Retry-After far too large to add to an instant.
    HugeRetryAfter,
    /// The token endpoint echoes the submitted form in an HTML page.
    EchoForm,
}

#[derive(Clone)]
struct Fake {
    mode: Mode,
    hits: Arc<AtomicUsize>,
    elsewhere: String,
}

async fn answer(State(f): State<Fake>, body: String) -> Response {
    f.hits.fetch_add(1, Ordering::SeqCst);
    match f.mode {
        Mode::NoHeaders => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Mode::SlowLoris => {
            let stream = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Some((Ok::<_, std::io::Error>(" "), ()))
            });
            Response::new(Body::from_stream(stream))
        }
        Mode::Endless => {
            let chunk = " ".repeat(64 * 1024);
            let stream = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Response::new(Body::from_stream(stream))
        }
        Mode::Elsewhere => (StatusCode::FOUND, [(header::LOCATION, f.elsewhere.clone())]).into_response(),
        Mode::Error500 => (StatusCode::INTERNAL_SERVER_ERROR, "{}").into_response(),
        Mode::Unauthorized => (StatusCode::UNAUTHORIZED, "{}").into_response(),
        Mode::HugeRetryAfter => {
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "18446744073709551615")], "{}").into_response()
        }
        Mode::EchoForm => {
            (StatusCode::BAD_REQUEST, format!("<html><body><pre>{body}</pre></body></html>")).into_response()
        }
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A loopback server in `mode`, and a second one it may redirect to.
async fn fake(mode: Mode) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let other_hits = Arc::new(AtomicUsize::new(0));
    let other = {
        let hits = other_hits.clone();
        serve(Router::new().route(
            "/{*rest}",
            any(move || {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    "{\"results\": []}"
                }
            }),
        ))
        .await
    };
    // Another host, not only another port: 127.0.0.2 is loopback too.
    let elsewhere = other.replace("127.0.0.1", "localhost") + "/empty";
    let hits = Arc::new(AtomicUsize::new(0));
    let state = Fake { mode, hits: hits.clone(), elsewhere };
    let base =
        serve(Router::new().route("/{*rest}", any(answer)).route("/oauth/token", post(answer)).with_state(state)).await;
    (base, hits, other_hits)
}

/// Keeps a timer at most 5 ms away, so paused time never jumps past a
/// deadline while a loopback exchange is merely in flight.
fn heartbeat() {
    tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}

struct Plain;

#[async_trait]
impl Dialect for Plain {
    fn crm(&self) -> CrmKind {
        CrmKind::Hubspot
    }
    async fn pace(&self, _bucket: Bucket) {}
    fn observe(&self, _bucket: Bucket, _raw: &Raw, _seen: &mut Observed<'_>) {}
    fn classify(&self, _bucket: Bucket, raw: &Raw, retry_after: Option<Duration>) -> Refusal {
        let class = match raw.status {
            401 => ErrorClass::Auth,
            429 => ErrorClass::RateLimited {
                retry_after_secs: retry_after.map(handoff_runtime::retry_after::whole_secs).unwrap_or(1),
            },
            500..=599 => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        };
        Refusal { class, code: raw.status.to_string(), message: "refused".into(), daily_limit: false, pause: None }
    }
}

fn settings() -> HttpSettings {
    HttpSettings { max_response_bytes: 1024 * 1024, ..HttpSettings::default() }
}

fn retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 4, ..RetryPolicy::default() }
}

fn runtime(credentials: Arc<dyn handoff_runtime::Credentials>) -> Runtime {
    let s = settings();
    Runtime::new(
        http::build_client(&s).unwrap(),
        s,
        retry(),
        Arc::new(Plain),
        credentials,
        Arc::new(chrono::Utc::now),
        DailyBudget::new(1.0, BudgetReset::UtcMidnight, None),
    )
}

fn static_token(base: &str) -> Arc<dyn handoff_runtime::Credentials> {
    Arc::new(StaticToken::new(Secret::new("static-token-abcdef"), base))
}

async fn call(rt: &Runtime) -> (Result<handoff_runtime::Response, RuntimeError>, Duration) {
    let start = Instant::now();
    let r = rt.send(Request::get("/crm/v3/objects/contacts", "contacts", "test")).await;
    (r, start.elapsed())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_server_that_never_answers_costs_at_most_the_call_deadline() {
    heartbeat();
    let (base, hits, _) = fake(Mode::NoHeaders).await;
    let rt = runtime(static_token(&base));
    let (r, took) = call(&rt).await;
    assert!(matches!(r, Err(RuntimeError::Transport { .. })), "{r:?}");
    assert!(took <= settings().call_deadline + Duration::from_secs(1), "took {took:?}");
    // Each attempt waits its response timeout (20 s), with backoff between: at most 3 in 60 s.
    let n = hits.load(Ordering::SeqCst);
    assert!((2..=4).contains(&n), "{n} attempts");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_operation_deadline_ends_every_call_inside_it() {
    heartbeat();
    let (base, hits, _) = fake(Mode::NoHeaders).await;
    let rt = runtime(static_token(&base));
    let start = Instant::now();
    let limit = Duration::from_secs(25);
    let r = handoff_runtime::within(limit, async {
        let first = call(&rt).await.0;
        let second = call(&rt).await.0;
        (first, second)
    })
    .await;
    assert!(matches!(r.0, Err(RuntimeError::Transport { .. })), "{:?}", r.0);
    assert!(matches!(r.1, Err(RuntimeError::Transport { .. })), "{:?}", r.1);
    assert!(start.elapsed() <= limit + Duration::from_millis(100), "took {:?}", start.elapsed());
    assert!(hits.load(Ordering::SeqCst) <= 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_slow_loris_body_is_cut_at_the_attempt_deadline() {
    heartbeat();
    let (base, hits, _) = fake(Mode::SlowLoris).await;
    let rt = runtime(static_token(&base));
    let (r, took) = call(&rt).await;
    match r {
        Err(RuntimeError::Transport { message, .. }) => assert!(message.contains("deadline"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(took <= settings().call_deadline + Duration::from_secs(1), "took {took:?}");
    assert!(hits.load(Ordering::SeqCst) <= 2, "an attempt lasts 30 s: at most two in a 60 s call");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_endless_answer_is_refused_at_the_size_cap_and_not_retried() {
    heartbeat();
    let (base, hits, _) = fake(Mode::Endless).await;
    let rt = runtime(static_token(&base));
    match call(&rt).await.0 {
        Err(RuntimeError::Protocol { message, .. }) => assert!(message.contains("larger than"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_redirect_to_another_host_is_refused_and_never_followed() {
    heartbeat();
    let (base, hits, other_hits) = fake(Mode::Elsewhere).await;
    let rt = runtime(static_token(&base));
    match call(&rt).await.0 {
        Err(RuntimeError::Protocol { message, .. }) => assert!(message.contains("another host"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(other_hits.load(Ordering::SeqCst), 0, "the token never went elsewhere");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn errors_forever_cost_the_attempts_of_the_policy_then_stop() {
    heartbeat();
    let (base, hits, _) = fake(Mode::Error500).await;
    let rt = runtime(static_token(&base));
    let (r, took) = call(&rt).await;
    assert!(matches!(r, Err(RuntimeError::Transport { attempts: 4, .. })), "{r:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert!(took <= settings().call_deadline);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_retry_after_too_large_to_add_is_a_stop_not_a_panic() {
    heartbeat();
    let (base, hits, _) = fake(Mode::HugeRetryAfter).await;
    let rt = runtime(static_token(&base));
    match call(&rt).await.0 {
        Err(RuntimeError::Budget { retry_after }) => assert!(retry_after >= Duration::from_secs(3600)),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

struct Refresh {
    base: String,
}

impl Grant for Refresh {
    fn form(
        &self,
        refresh_token: Option<&Secret>,
        _now: handoff_model::Timestamp,
    ) -> Result<Vec<(&'static str, FormValue)>, RuntimeError> {
        Ok(vec![
            ("grant_type", FormValue::Plain("refresh_token".into())),
            ("client_secret", FormValue::Secret(Secret::new("cs-0011223344556677"))),
            ("refresh_token", FormValue::Secret(refresh_token.cloned().unwrap_or_else(|| Secret::new("x")))),
        ])
    }
    fn configured_refresh_token(&self) -> Option<Secret> {
        Some(Secret::new("rt-na1-8899aabbccddeeff"))
    }
    fn base_url(&self, _answer: &TokenAnswer) -> Result<String, RuntimeError> {
        Ok(self.base.clone())
    }
    fn refusal_fix(&self) -> String {
        "re-authorise the app".into()
    }
}

fn tokens(base: &str) -> Arc<dyn handoff_runtime::Credentials> {
    let s = settings();
    Arc::new(
        TokenManager::new(
            Box::new(Refresh { base: base.to_string() }),
            format!("{base}/oauth/token"),
            Arc::new(MemoryTokenStore::new()),
            Arc::new(chrono::Utc::now),
            http::build_client(&s).unwrap(),
            s,
            retry(),
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_token_endpoint_echoing_its_form_shows_no_secret() {
    heartbeat();
    let (base, hits, _) = fake(Mode::EchoForm).await;
    let rt = runtime(tokens(&base));
    let err = call(&rt).await.0.expect_err("the token is refused");
    let text = err.to_string();
    assert!(matches!(err, RuntimeError::Auth { .. }), "{err:?}");
    assert!(text.contains("re-authorise"), "{text}");
    for secret in ["cs-0011223344556677", "rt-na1-8899aabbccddeeff", "0011223344", "8899aabbcc"] {
        assert!(!text.contains(secret), "the error shows {secret}: {text}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a refusal is not retried");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn unauthorised_forever_costs_one_renewal_then_stops() {
    heartbeat();
    let (base, hits, _) = fake(Mode::Unauthorized).await;
    let rt = runtime(static_token(&base));
    let err = call(&rt).await.0.expect_err("refused");
    assert!(matches!(err, RuntimeError::Auth { .. }), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the request, then once more after renewing");
}
