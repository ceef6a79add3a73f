//! A loopback emulator of the two Slack APIs handoff posts to: an incoming
//! webhook (`POST /services/T…/B…/SECRET`, answering `ok` as text or an
//! error name with a 4xx status) and the Web API's `chat.postMessage`
//! (`POST /api/chat.postMessage` with a bot token, answering HTTP 200 with
//! `{"ok": true, "ts": …}` or `{"ok": false, "error": NAME}`). Either
//! answers 429 with `Retry-After` when a fault says so.
//!
//! Tests drive it in-process: [`SlackSandbox::push_fault`] queues the next
//! answers' faults, [`SlackSandbox::posts`] lists what arrived; `GET
//! /__slack/posts` shows the same as JSON.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use crate::server::SandboxError;

/// The bot token the emulator accepts.
pub const BOT_TOKEN: &str = "xoxb-0000000000-sandbox-bot-token";
/// The channel the emulator knows (besides direct messages to `U…` users).
pub const CHANNEL: &str = "C0SANDBOX1";
const WEBHOOK_PATH: &str = "T0SANDBOX/B0SANDBOX/sandboxwebhooksecret0001";

/// What the next request is answered with instead of success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackFault {
    /// HTTP 429 with this `Retry-After`.
    RateLimited { retry_after_secs: u64 },
    /// `ok: false` with this error name (the webhook: its status and name).
    Error(String),
}

/// A message Slack accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackPost {
    /// `webhook` or `chat.postMessage`.
    pub via: String,
    pub channel: String,
    pub text: String,
    pub blocks: Value,
    pub ts: String,
}

/// What every request is checked against and recorded in.
#[derive(Default)]
struct SlackState {
    posts: Mutex<Vec<SlackPost>>,
    faults: Mutex<VecDeque<SlackFault>>,
    /// Faults for the webhook only (the Web API answers normally).
    webhook_faults: Mutex<VecDeque<SlackFault>>,
    /// Requests answered (accepted or not).
    requests: Mutex<usize>,
}

/// A running emulator.
pub struct SlackSandbox {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The Web API base, `{base_url}/api`.
    pub api_url: String,
    /// A working incoming-webhook URL.
    pub webhook_url: String,
    state: Arc<SlackState>,
    task: tokio::task::JoinHandle<()>,
}

impl SlackSandbox {
    /// The faults answer the next requests, one each, in order.
    pub fn push_fault(&self, fault: SlackFault) {
        lock(&self.state.faults).push_back(fault);
    }

    /// Like [`SlackSandbox::push_fault`], for the incoming webhook only.
    pub fn push_webhook_fault(&self, fault: SlackFault) {
        lock(&self.state.webhook_faults).push_back(fault);
    }

    /// Messages accepted so far, in order.
    pub fn posts(&self) -> Vec<SlackPost> {
        lock(&self.state.posts).clone()
    }

    /// Requests answered so far, failed ones included.
    pub fn requests(&self) -> usize {
        *lock(&self.state.requests)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the emulator on a free loopback port.
pub async fn start() -> Result<SlackSandbox, SandboxError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| SandboxError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| SandboxError::Bind { addr, source })?;
    let state = Arc::new(SlackState::default());
    let app = Router::new()
        .route("/services/{team}/{bot}/{secret}", post(webhook))
        .route("/api/chat.postMessage", post(post_message))
        .route("/__slack/posts", get(list))
        .with_state(state.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the Slack sandbox stopped");
        }
    });
    let base_url = format!("http://{local}");
    Ok(SlackSandbox {
        api_url: format!("{base_url}/api"),
        webhook_url: format!("{base_url}/services/{WEBHOOK_PATH}"),
        base_url,
        state,
        task,
    })
}

fn next_fault(state: &SlackState) -> Option<SlackFault> {
    *lock(&state.requests) += 1;
    lock(&state.faults).pop_front()
}

fn rate_limited(secs: u64) -> Response {
    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], "rate_limited").into_response()
}

fn ts(state: &SlackState) -> String {
    format!("1772409600.{:06}", lock(&state.posts).len() + 1)
}

fn text_and_blocks(body: &Value) -> Option<(String, Value)> {
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
    let blocks = body.get("blocks").cloned().unwrap_or(Value::Null);
    (!text.is_empty() || blocks.as_array().is_some_and(|b| !b.is_empty())).then_some((text, blocks))
}

async fn webhook(
    State(state): State<Arc<SlackState>>,
    Path((team, bot, secret)): Path<(String, String, String)>,
    body: String,
) -> Response {
    let fault = next_fault(&state).or_else(|| lock(&state.webhook_faults).pop_front());
    match fault {
        Some(SlackFault::RateLimited { retry_after_secs }) => return rate_limited(retry_after_secs),
        Some(SlackFault::Error(name)) => {
            let status = match name.as_str() {
                "channel_not_found" | "no_service" => StatusCode::NOT_FOUND,
                "channel_is_archived" => StatusCode::GONE,
                "invalid_token" | "action_prohibited" => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            return (status, name).into_response();
        }
        None => {}
    }
    if format!("{team}/{bot}/{secret}") != WEBHOOK_PATH {
        return (StatusCode::NOT_FOUND, "no_service").into_response();
    }
    let Some((text, blocks)) = serde_json::from_str::<Value>(&body).ok().as_ref().and_then(text_and_blocks) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    let post = SlackPost { via: "webhook".into(), channel: CHANNEL.into(), text, blocks, ts: ts(&state) };
    lock(&state.posts).push(post);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "ok").into_response()
}

async fn post_message(State(state): State<Arc<SlackState>>, headers: HeaderMap, body: String) -> Response {
    let fail = |name: &str| Json(json!({"ok": false, "error": name})).into_response();
    match next_fault(&state) {
        Some(SlackFault::RateLimited { retry_after_secs }) => return rate_limited(retry_after_secs),
        Some(SlackFault::Error(name)) => return fail(&name),
        None => {}
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if token.is_empty() {
        return fail("not_authed");
    }
    if token != BOT_TOKEN {
        return fail("invalid_auth");
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else { return fail("invalid_json") };
    let channel = body.get("channel").and_then(Value::as_str).unwrap_or_default().to_string();
    if channel.is_empty() {
        return fail("channel_not_found");
    }
    if channel != CHANNEL && !channel.starts_with('U') {
        return fail("channel_not_found");
    }
    let Some((text, blocks)) = text_and_blocks(&body) else { return fail("no_text") };
    let ts = ts(&state);
    lock(&state.posts).push(SlackPost {
        via: "chat.postMessage".into(),
        channel: channel.clone(),
        text,
        blocks,
        ts: ts.clone(),
    });
    Json(json!({"ok": true, "channel": channel, "ts": ts, "message": {"type": "message", "ts": ts}})).into_response()
}

async fn list(State(state): State<Arc<SlackState>>) -> Json<Vec<SlackPost>> {
    Json(lock(&state.posts).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_shapes_answer_like_slack() {
        let slack = start().await.unwrap_or_else(|e| panic!("{e}"));
        let client = reqwest::Client::new();
        let post = |body: Value, token: &'static str| {
            client.post(format!("{}/chat.postMessage", slack.api_url)).bearer_auth(token).json(&body).send()
        };
        let ok: Value = post(json!({"channel": CHANNEL, "text": "hi"}), BOT_TOKEN).await.unwrap().json().await.unwrap();
        assert_eq!(ok["ok"], true);
        let bad: Value =
            post(json!({"channel": CHANNEL, "text": "hi"}), "xoxb-wrong").await.unwrap().json().await.unwrap();
        assert_eq!(bad["error"], "invalid_auth");
        let nowhere: Value =
            post(json!({"channel": "C404", "text": "hi"}), BOT_TOKEN).await.unwrap().json().await.unwrap();
        assert_eq!(nowhere["error"], "channel_not_found");
        slack.push_fault(SlackFault::RateLimited { retry_after_secs: 7 });
        let limited = client.post(&slack.webhook_url).json(&json!({"text": "x"})).send().await.unwrap();
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()["retry-after"], "7");
        let hook = client.post(&slack.webhook_url).json(&json!({"text": "x"})).send().await.unwrap();
        assert_eq!(hook.text().await.unwrap(), "ok");
        assert_eq!(slack.posts().len(), 2);
        assert_eq!(slack.requests(), 5);
        slack.stop();
    }
}
