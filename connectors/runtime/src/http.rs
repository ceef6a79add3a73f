//! The HTTP client both connectors use, and how an answer is read.
//!
//! - A connect timeout, a per-response timeout (no byte for that long: the
//!   headers or the next piece of the body) and a total deadline per
//!   attempt, all on tokio's clock. A server that answers a byte a minute
//!   cannot hold a request past its deadline.
//! - Redirects to another host (scheme, host or port) are refused: the
//!   bearer token must never follow a proxy's `Location` elsewhere, and an
//!   empty page from somewhere else is not the CRM's answer. Redirects on
//!   the CRM's own host are followed, at most [`MAX_REDIRECTS`].
//! - An answer larger than the cap is refused while it is read, before it
//!   fills memory.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::redirect;
use tokio::time::Instant;

use crate::error::RuntimeError;

/// Same-host redirects followed at most.
pub const MAX_REDIRECTS: usize = 3;

/// How long a request may take. Every request of a call (its retries, the
/// waits between them and a login it needs) ends by `call_deadline`, which
/// sits well inside the service's watchdog (`WatchdogSec=3min`; the
/// watchdog is pinged every half of it while the loop makes progress).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    /// No byte for this long (the headers, or the next piece of the body): the attempt fails.
    pub response_timeout: Duration,
    /// One attempt, from sending to the last byte of the answer.
    pub attempt_deadline: Duration,
    /// One call: every attempt, wait and login it takes.
    pub call_deadline: Duration,
    /// Answers larger than this are refused.
    pub max_response_bytes: usize,
    /// An extra trusted CA (PEM): the sandbox's `--tls` CA or a corporate proxy.
    pub ca_file: Option<PathBuf>,
    pub user_agent: String,
}

/// The call deadline handoff uses: 60 s, a third of the unit's 3-minute
/// watchdog (and two thirds of the 90 s between its pings).
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(60);

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(20),
            attempt_deadline: Duration::from_secs(30),
            call_deadline: DEFAULT_CALL_DEADLINE,
            max_response_bytes: 64 * 1024 * 1024,
            ca_file: None,
            user_agent: concat!("handoff/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

impl HttpSettings {
    /// Reject settings that cannot work, naming the setting.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |message: String| Err(RuntimeError::Settings { message });
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() || self.attempt_deadline.is_zero() {
            return bad("timeouts must be positive".into());
        }
        if self.call_deadline < self.attempt_deadline {
            return bad(format!(
                "the call deadline ({:?}) is shorter than one attempt ({:?}); a call must have room for an attempt",
                self.call_deadline, self.attempt_deadline
            ));
        }
        if self.max_response_bytes < 1024 {
            return bad(format!("max_response_bytes is {}; allow at least 1024", self.max_response_bytes));
        }
        Ok(())
    }
}

/// The scheme, host and port of a URL: what a redirect may not change.
fn origin(u: &url::Url) -> (String, Option<String>, Option<u16>) {
    (u.scheme().to_string(), u.host_str().map(str::to_string), u.port_or_known_default())
}

/// Build the client. Timeouts of the attempt are applied by [`read`], on
/// tokio's clock; the connect timeout is the client's own.
pub fn build_client(settings: &HttpSettings) -> Result<reqwest::Client, RuntimeError> {
    settings.validate()?;
    let policy = redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(origin);
        if first.is_some_and(|o| o != origin(attempt.url())) {
            let to = attempt.url().host_str().unwrap_or("?").to_string();
            attempt.error(format!("redirected to another host ({to}); handoff follows no redirect off the CRM's host"))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    });
    let mut b = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .gzip(true)
        .redirect(policy)
        .user_agent(settings.user_agent.clone());
    if let Some(path) = &settings.ca_file {
        let err = |message: String| RuntimeError::CaFile { path: path.display().to_string(), message };
        let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| err(e.to_string()))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| RuntimeError::Settings { message: format!("cannot build the HTTP client: {e}") })
}

/// A client error with its causes (reqwest's own text is often only "error
/// sending request"), without the URL, redacted.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    handoff_model::redact(&text)
}

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Raw {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// Why an attempt got no whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFailure {
    /// Nothing usable came back in time or the connection broke: worth
    /// another attempt. `sent`: the request may have reached the server.
    Transport { message: String, sent: bool },
    /// What came back can never be the CRM's answer (a redirect off the
    /// host, an answer over the cap): another attempt would get the same.
    Refused { message: String },
}

/// Send `request` and read its whole answer, within `deadline` (an
/// instant on tokio's clock), with no silence longer than the response
/// timeout and no more than the size cap.
pub async fn read(
    request: reqwest::RequestBuilder,
    settings: &HttpSettings,
    deadline: Instant,
) -> Result<Raw, ReadFailure> {
    let quiet = settings.response_timeout;
    let until = |d: Instant| Instant::now().checked_add(quiet).map_or(d, |q| q.min(d));
    let timed_out = |what: &str, sent: bool| ReadFailure::Transport {
        message: format!("no answer within the deadline while {what}"),
        sent,
    };
    let send = tokio::time::timeout_at(until(deadline), request.send());
    let resp = match send.await {
        Err(_) => return Err(timed_out("waiting for the headers", true)),
        Ok(Err(e)) if e.is_redirect() => return Err(ReadFailure::Refused { message: describe(e) }),
        Ok(Err(e)) => {
            let sent = !e.is_connect();
            return Err(ReadFailure::Transport { message: describe(e), sent });
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let cap = settings.max_response_bytes;
    if let Some(len) = resp.content_length() {
        if len > cap as u64 {
            return Err(ReadFailure::Refused {
                message: format!("the answer announces {len} bytes, more than the {cap} handoff reads"),
            });
        }
    }
    let mut resp = resp;
    let mut body = Vec::new();
    loop {
        let chunk = match tokio::time::timeout_at(until(deadline), resp.chunk()).await {
            Err(_) => return Err(timed_out("reading the body", true)),
            Ok(Err(e)) => {
                return Err(ReadFailure::Transport {
                    message: format!("the answer broke off: {}", describe(e)),
                    sent: true,
                })
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(c))) => c,
        };
        if body.len() + chunk.len() > cap {
            return Err(ReadFailure::Refused {
                message: format!("the answer is larger than the {cap} bytes handoff reads"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Raw { status, headers, body })
}
