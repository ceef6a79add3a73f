//! Sending a [`Message`]: SMTP (lettre on rustls) and Slack (incoming
//! webhook or `chat.postMessage`). Every failure comes back classified, with
//! the server's own name for it as `code` (`smtp_451`, `invalid_auth`,
//! `channel_not_found` …) and its text passed through
//! [`handoff_model::redact`].

use std::time::Duration;

use handoff_model::{redact, ErrorClass, Secret, WriteError};
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{json, Value};

use super::settings::{EmailSettings, SlackSettings, TlsMode};
use super::{Delivery, Message};

/// Why a channel could not be set up (at start; the config names the fix).
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("notify.email: {0}")]
    Email(String),
    #[error("notify.slack: {0}")]
    Slack(String),
}

fn failure(class: ErrorClass, code: impl Into<String>, message: impl AsRef<str>) -> WriteError {
    WriteError { class, code: code.into(), message: redact(message.as_ref()) }
}

/// The SMTP channel.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of the Message-IDs (the sender's).
    id_domain: String,
}

impl Email {
    pub fn new(s: &EmailSettings, password: Option<Secret>) -> Result<Email, ChannelError> {
        let err = |m: String| ChannelError::Email(m);
        let from: Mailbox =
            s.from.parse().map_err(|e| err(format!("`from` {:?} is not a sender address: {e}", s.from)))?;
        let server = s.server.trim().to_string();
        let mut params = TlsParameters::builder(server.clone());
        if let Some(ca) = &s.ca_file {
            let pem = std::fs::read(ca).map_err(|e| err(format!("cannot read ca_file {}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| err(format!("ca_file {} is not a PEM certificate: {e}", ca.display())))?;
            params = params.add_root_certificate(cert);
        }
        let tls = match s.tls {
            TlsMode::None => Tls::None,
            mode => {
                let params = params.build_rustls().map_err(|e| err(format!("TLS setup failed: {e}")))?;
                if mode == TlsMode::Implicit {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server)
            .port(s.port())
            .tls(tls)
            .timeout(Some(Duration::from_secs(s.timeout_secs)));
        if let (Some(user), Some(password)) = (&s.username, password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        let id_domain = from.email.domain().to_string();
        Ok(Email { transport: builder.build(), from, id_domain })
    }

    /// Sends `m` to `to`: a plain-text and an HTML part, its key in the
    /// Message-ID, its composition time as the Date. Returns the Message-ID.
    pub async fn send(&self, m: &Message, to: &str) -> Result<String, WriteError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| failure(ErrorClass::NeedsConfig, "bad_address", format!("{to:?} is not an address: {e}")))?;
        let id = format!("<{}@{}>", m.key.as_str().replace(':', "."), self.id_domain);
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(id.clone()))
            .date(std::time::SystemTime::from(m.composed_at))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(m.text.clone()))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(m.html.clone())),
            )
            .map_err(|e| failure(ErrorClass::Permanent, "bad_message", e.to_string()))?;
        match self.transport.send(email).await {
            Ok(_) => Ok(id),
            Err(e) => Err(classify_smtp(&e)),
        }
    }
}

fn classify_smtp(e: &lettre::transport::smtp::Error) -> WriteError {
    let text = e.to_string();
    if let Some(code) = e.status() {
        let n = code.to_string();
        let class = if e.is_transient() {
            ErrorClass::Retryable
        } else if n == "535" || n == "530" || n == "534" {
            ErrorClass::Auth
        } else {
            ErrorClass::Permanent
        };
        return failure(class, format!("smtp_{n}"), text);
    }
    if e.is_tls() {
        return failure(ErrorClass::NeedsConfig, "smtp_tls", text);
    }
    if e.is_timeout() {
        return failure(ErrorClass::Retryable, "smtp_timeout", text);
    }
    failure(ErrorClass::Retryable, "smtp_connection", text)
}

/// The Slack channel.
pub struct Slack {
    client: reqwest::Client,
    webhook_url: Option<Secret>,
    bot_token: Option<Secret>,
    api_url: String,
}

/// Slack's `ok: false` error names, by what they need.
fn classify_slack(name: &str) -> ErrorClass {
    match name {
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" | "invalid_token"
        | "no_service" => ErrorClass::Auth,
        "channel_not_found"
        | "not_in_channel"
        | "is_archived"
        | "channel_is_archived"
        | "missing_scope"
        | "restricted_action"
        | "action_prohibited"
        | "user_not_found"
        | "no_permission" => ErrorClass::NeedsConfig,
        "ratelimited" | "rate_limited" => ErrorClass::RateLimited { retry_after_secs: 60 },
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" | "rollup_error" => {
            ErrorClass::Retryable
        }
        _ => ErrorClass::Permanent,
    }
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(30)
}

/// Slack sections hold at most 3,000 characters: the text in blocks of
/// whole lines under that.
fn blocks(text: &str) -> Value {
    let mut chunks: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if cur.len() + line.len() + 1 > 2_900 && !cur.is_empty() {
            chunks.push(std::mem::take(&mut cur));
        }
        cur.push_str(&line.chars().take(2_900).collect::<String>());
        cur.push('\n');
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    Value::Array(
        chunks
            .into_iter()
            .take(45)
            .map(|c| json!({"type": "section", "text": {"type": "mrkdwn", "text": c}}))
            .collect(),
    )
}

impl Slack {
    pub fn new(
        s: &SlackSettings,
        webhook_url: Option<Secret>,
        bot_token: Option<Secret>,
    ) -> Result<Slack, ChannelError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(s.timeout_secs))
            .build()
            .map_err(|e| ChannelError::Slack(format!("cannot build the HTTP client: {e}")))?;
        Ok(Slack { client, webhook_url, bot_token, api_url: s.api_url.trim_end_matches('/').to_string() })
    }

    pub fn has_bot(&self) -> bool {
        self.bot_token.is_some()
    }

    pub fn has_webhook(&self) -> bool {
        self.webhook_url.is_some()
    }

    /// Posts `m` where its delivery says. Returns Slack's message `ts` (or
    /// `webhook` for a webhook, which returns none).
    pub async fn send(&self, m: &Message) -> Result<String, WriteError> {
        let fallback: String = m.slack.chars().take(3_000).collect();
        match &m.delivery {
            Delivery::SlackWebhook => {
                let Some(url) = &self.webhook_url else {
                    return Err(failure(ErrorClass::NeedsConfig, "no_webhook", "notify.slack.webhook_url is not set"));
                };
                let body = json!({"text": fallback, "blocks": blocks(&m.slack)});
                let resp = slack_send(self.client.post(url.expose()).json(&body)).await?;
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                if status.is_success() {
                    return Ok("webhook".to_string());
                }
                let name = text.split_whitespace().next().unwrap_or("").to_string();
                let class = if status.is_server_error() { ErrorClass::Retryable } else { classify_slack(&name) };
                let code = if name.is_empty() { format!("http_{}", status.as_u16()) } else { name };
                Err(failure(class, code, format!("HTTP {status}: {}", text.chars().take(300).collect::<String>())))
            }
            Delivery::SlackChannel { channel } => {
                let Some(token) = &self.bot_token else {
                    return Err(failure(ErrorClass::NeedsConfig, "no_bot_token", "notify.slack.bot_token is not set"));
                };
                let body =
                    json!({"channel": channel, "text": fallback, "blocks": blocks(&m.slack), "unfurl_links": false});
                let post = self.client.post(format!("{}/chat.postMessage", self.api_url));
                let resp = slack_send(post.bearer_auth(token.expose()).json(&body)).await?;
                let status = resp.status();
                if status.is_server_error() {
                    return Err(failure(
                        ErrorClass::Retryable,
                        format!("http_{}", status.as_u16()),
                        status.to_string(),
                    ));
                }
                let v: Value = resp.json().await.map_err(|e| {
                    failure(ErrorClass::Retryable, "bad_response", format!("chat.postMessage answered no JSON: {e}"))
                })?;
                if v["ok"].as_bool() == Some(true) {
                    return Ok(v["ts"].as_str().unwrap_or("posted").to_string());
                }
                let name = v["error"].as_str().unwrap_or("unknown_error").to_string();
                Err(failure(classify_slack(&name), name.clone(), format!("chat.postMessage to {channel}: {name}")))
            }
            Delivery::Email { .. } => {
                Err(failure(ErrorClass::Permanent, "wrong_channel", "an email message reached the Slack channel"))
            }
        }
    }
}

/// Sends a request to Slack: a connection failure is worth retrying, and
/// a 429 waits out its `Retry-After` (both ways of posting share this).
async fn slack_send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, WriteError> {
    let resp = request
        .send()
        .await
        .map_err(|e| failure(ErrorClass::Retryable, "slack_connection", e.without_url().to_string()))?;
    if resp.status().as_u16() == 429 {
        let secs = retry_after(&resp);
        return Err(failure(
            ErrorClass::RateLimited { retry_after_secs: secs },
            "rate_limited",
            format!("HTTP 429, Retry-After {secs}"),
        ));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_errors_are_classified_by_name() {
        assert_eq!(classify_slack("invalid_auth"), ErrorClass::Auth);
        assert_eq!(classify_slack("channel_not_found"), ErrorClass::NeedsConfig);
        assert_eq!(classify_slack("internal_error"), ErrorClass::Retryable);
        assert_eq!(classify_slack("msg_too_long"), ErrorClass::Permanent);
    }

    #[test]
    fn long_text_is_cut_into_sections_at_line_ends() {
        let text = "x".repeat(100) + "\n";
        let b = blocks(&text.repeat(80));
        let sections = b.as_array().map(Vec::len).unwrap_or(0);
        assert!(sections >= 3, "{sections}");
        assert!(b[0]["text"]["text"].as_str().is_some_and(|t| t.len() <= 2_900 && t.ends_with('\n')));
    }
}
