//! `[notify]` and `[signals]` in the config file: their shapes and the
//! checks `handoff check` runs on them (key path, bad value, fix).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveTime;
use handoff_model::CrmKind;
use serde::{Deserialize, Deserializer, Serialize};

use super::{Connection, SecretSource};
use crate::policy::Issue;

/// A local time of day, written "HH:MM".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime(pub NaiveTime);

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        NaiveTime::parse_from_str(text.trim(), "%H:%M").map(LocalTime).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not a time of day. Fix: write it as \"HH:MM\" (24-hour), e.g. \"08:30\""
            ))
        })
    }
}

/// Which daily digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestKind {
    /// A rep's undispositioned and at-risk leads.
    Rep,
    /// A manager's team: open breaches and at-risk leads.
    Manager,
}

/// `[notify]`: present means on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// When the daily digest goes out, in each recipient's own zone, on
    /// their business days.
    #[serde(default = "default_digest_time")]
    pub digest_time: LocalTime,
    /// Which digests to send.
    #[serde(default = "default_digests")]
    pub digests: Vec<DigestKind>,
    /// Send a digest even when nothing waits (the day's "all clear").
    #[serde(default = "yes")]
    pub empty_digests: bool,
    /// Send the weekly summary.
    #[serde(default = "yes")]
    pub summary: bool,
    /// When the summary goes out: the first business day of the new week,
    /// this local time, in the reporting zone.
    #[serde(default = "default_summary_time")]
    pub summary_time: LocalTime,
    /// Email addresses the summary goes to; empty: the leaders of
    /// `policy.scorecard.notify`, by the email the CRM holds for them.
    #[serde(default)]
    pub summary_to: Vec<String>,
    /// Link to a lead, with `{id}` where its CRM id goes. Default: Salesforce
    /// `{instance_url}/lightning/r/Lead/{id}/view`, HubSpot
    /// `https://app.hubspot.com/contacts/{portal}/record/0-1/{id}` (`0-136`
    /// for lead records in leads mode).
    #[serde(default)]
    pub record_url: Option<String>,
    /// The HubSpot portal (hub) id, for links to contacts.
    #[serde(default)]
    pub hubspot_portal_id: Option<String>,
    #[serde(default)]
    pub email: Option<EmailSettings>,
    #[serde(default)]
    pub slack: Option<SlackSettings>,
    /// Per CRM owner id: a different address, a Slack user, or no digests.
    #[serde(default)]
    pub recipients: BTreeMap<String, RecipientOverride>,
}

fn default_digest_time() -> LocalTime {
    LocalTime(NaiveTime::from_hms_opt(8, 30, 0).unwrap_or(NaiveTime::MIN))
}

fn default_summary_time() -> LocalTime {
    LocalTime(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN))
}

fn default_digests() -> Vec<DigestKind> {
    vec![DigestKind::Rep, DigestKind::Manager]
}

fn yes() -> bool {
    true
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (required, never skipped).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No TLS: only to a relay on loopback.
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The SMTP server's host name (also the name its certificate must carry).
    pub server: String,
    /// Default: 587 with STARTTLS, 465 with implicit TLS, 25 without.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// The sender, e.g. "handoff <sla@acme.com>".
    pub from: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// An extra trusted CA (PEM) for the server's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl EmailSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Starttls => 587,
            TlsMode::Implicit => 465,
            TlsMode::None => 25,
        })
    }
}

fn default_timeout_secs() -> u64 {
    30
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// An incoming webhook (a secret: the URL is the credential). The
    /// summary goes to its channel.
    #[serde(default)]
    pub webhook_url: Option<SecretSource>,
    /// A bot token (`xoxb-…`, scope `chat:write`) for `chat.postMessage`:
    /// the summary to `channel`, digests as direct messages to recipients
    /// with a Slack user id (`notify.recipients.ID.slack`).
    #[serde(default)]
    pub bot_token: Option<SecretSource>,
    /// The channel id the summary goes to with a bot token, e.g. "C0123ABCD".
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default = "default_slack_api")]
    pub api_url: String,
    #[serde(default = "default_slack_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_slack_api() -> String {
    "https://slack.com/api".to_string()
}

fn default_slack_timeout_secs() -> u64 {
    15
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientOverride {
    /// Used instead of the email the CRM holds.
    #[serde(default)]
    pub email: Option<String>,
    /// Slack user id ("U0123ABCD") for direct messages with a bot token.
    #[serde(default)]
    pub slack: Option<String>,
    /// `false`: this person gets no digests.
    #[serde(default = "yes")]
    pub digests: bool,
}

/// `[signals]`: when the calibration signals fire.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSettings {
    /// The same rejection reason on top this many weeks running.
    #[serde(default = "default_reason_streak_weeks")]
    pub reason_streak_weeks: u32,
    /// MQL→SAL acceptance above this share ...
    #[serde(default = "default_acceptance_above")]
    pub acceptance_above: f64,
    /// ... in each of this many months running.
    #[serde(default = "default_acceptance_months")]
    pub acceptance_months: u32,
    /// First touch met every week this many weeks running (a quarter).
    #[serde(default = "default_met_weeks")]
    pub met_weeks: u32,
    /// A commitment missed every week this many weeks running (a month).
    #[serde(default = "default_missed_weeks")]
    pub missed_weeks: u32,
}

impl Default for SignalSettings {
    fn default() -> Self {
        SignalSettings {
            reason_streak_weeks: default_reason_streak_weeks(),
            acceptance_above: default_acceptance_above(),
            acceptance_months: default_acceptance_months(),
            met_weeks: default_met_weeks(),
            missed_weeks: default_missed_weeks(),
        }
    }
}

fn default_reason_streak_weeks() -> u32 {
    3
}
fn default_acceptance_above() -> f64 {
    0.8
}
fn default_acceptance_months() -> u32 {
    3
}
fn default_met_weeks() -> u32 {
    13
}
fn default_missed_weeks() -> u32 {
    4
}

fn loopback_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

/// https, or plain http to loopback.
fn check_url(url: &str, path: &str, issues: &mut Vec<Issue>) {
    let u = url.trim();
    let rest = u.strip_prefix("https://").or_else(|| {
        u.strip_prefix("http://").filter(|r| loopback_host(r.split(['/', ':']).next().unwrap_or_default()))
    });
    if !rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace)) {
        issues.push(Issue::new(
            path,
            format!("{u:?}"),
            "not an https URL",
            "write e.g. \"https://slack.com/api\" (plain http only to localhost)",
        ));
    }
}

fn check_address(address: &str, path: &str, issues: &mut Vec<Issue>) {
    if address.parse::<lettre::Address>().is_err() {
        issues.push(Issue::new(
            path,
            format!("{address:?}"),
            "not an email address",
            "write e.g. \"vp.sales@acme.com\"",
        ));
    }
}

/// The checks serde cannot make. `connection` is `None` when that section
/// had problems of its own.
pub fn check(n: &NotifySettings, crm: CrmKind, connection: Option<&Connection>, issues: &mut Vec<Issue>) {
    for (i, to) in n.summary_to.iter().enumerate() {
        check_address(to, &format!("notify.summary_to[{i}]"), issues);
    }
    match &n.record_url {
        Some(url) => {
            if !url.contains("{id}") {
                issues.push(Issue::new(
                    "notify.record_url",
                    format!("{url:?}"),
                    "the link has no `{id}` for the lead's CRM id",
                    "write e.g. \"https://acme.lightning.force.com/lightning/r/Lead/{id}/view\"",
                ));
            }
            check_url(&url.replace("{id}", "x"), "notify.record_url", issues);
        }
        None => match (crm, connection) {
            (CrmKind::Salesforce, Some(Connection::Salesforce(s))) if s.instance_url.is_none() => {
                issues.push(Issue::new(
                    "notify.record_url",
                    "",
                    "digests link every lead, but salesforce.instance_url is not set",
                    "set salesforce.instance_url, or notify.record_url with `{id}` for the lead id",
                ))
            }
            (CrmKind::Hubspot, _) if n.hubspot_portal_id.as_deref().is_none_or(|p| p.trim().is_empty()) => {
                issues.push(Issue::new(
                    "notify.hubspot_portal_id",
                    "",
                    "digests link every contact, and a HubSpot link needs the portal (hub) id",
                    "copy it from the account menu (e.g. \"4412345\"), or set notify.record_url",
                ))
            }
            _ => {}
        },
    }
    if let Some(p) = &n.hubspot_portal_id {
        if !p.chars().all(|c| c.is_ascii_digit()) || p.is_empty() {
            issues.push(Issue::new(
                "notify.hubspot_portal_id",
                format!("{p:?}"),
                "a portal id is a number",
                "copy it from the account menu, e.g. \"4412345\"",
            ));
        }
    }
    if let Some(e) = &n.email {
        if e.server.trim().is_empty() || e.server.contains(char::is_whitespace) || e.server.contains("://") {
            issues.push(Issue::new(
                "notify.email.server",
                format!("{:?}", e.server),
                "not a host name",
                "write the SMTP server's host name, e.g. \"smtp.acme.com\"",
            ));
        }
        if e.tls == TlsMode::None && !loopback_host(e.server.trim()) {
            issues.push(Issue::new(
                "notify.email.tls",
                "\"none\"",
                "mail without TLS would carry the password and the digests in the clear",
                "use \"starttls\" or \"implicit\"; \"none\" is only for a relay on 127.0.0.1",
            ));
        }
        if e.from.parse::<lettre::message::Mailbox>().is_err() {
            issues.push(Issue::new(
                "notify.email.from",
                format!("{:?}", e.from),
                "not a sender address",
                "write e.g. \"handoff <sla@acme.com>\" or \"sla@acme.com\"",
            ));
        }
        match (&e.username, &e.password) {
            (Some(_), None) => issues.push(Issue::new(
                "notify.email.password",
                "",
                "a username without a password",
                "add password = { credential = \"smtp-password\" } (or file/env), or remove username",
            )),
            (None, Some(_)) => issues.push(Issue::new(
                "notify.email.username",
                "",
                "a password without a username",
                "add the SMTP username, or remove password",
            )),
            _ => {}
        }
        if e.timeout_secs == 0 {
            issues.push(Issue::new("notify.email.timeout_secs", "0", "every send would time out", "write e.g. 30"));
        }
    }
    if let Some(s) = &n.slack {
        if s.webhook_url.is_none() && s.bot_token.is_none() {
            issues.push(Issue::new(
                "notify.slack",
                "",
                "neither webhook_url nor bot_token is set",
                "add webhook_url = { credential = \"slack-webhook\" } or bot_token = { credential = \"slack-bot-token\" }, or remove [notify.slack]",
            ));
        }
        if s.bot_token.is_some() && s.webhook_url.is_none() && s.channel.is_none() && n.summary {
            issues.push(Issue::new(
                "notify.slack.channel",
                "",
                "with a bot token the summary needs a channel",
                "write the channel id, e.g. channel = \"C0123ABCD\" (the bot must be a member)",
            ));
        }
        check_url(&s.api_url, "notify.slack.api_url", issues);
        if s.timeout_secs == 0 {
            issues.push(Issue::new("notify.slack.timeout_secs", "0", "every post would time out", "write e.g. 15"));
        }
    }
    for (id, r) in &n.recipients {
        if let Some(email) = &r.email {
            check_address(email, &format!("notify.recipients.{id}.email"), issues);
        }
        if let Some(slack) = &r.slack {
            if slack.is_empty() || !slack.chars().all(|c| c.is_ascii_alphanumeric()) {
                issues.push(Issue::new(
                    format!("notify.recipients.{id}.slack"),
                    format!("{slack:?}"),
                    "not a Slack user id",
                    "write the member id from the person's Slack profile, e.g. \"U0123ABCD\"",
                ));
            }
        }
    }
}

/// The checks on `[signals]` serde cannot make.
pub fn check_signals(s: &SignalSettings, issues: &mut Vec<Issue>) {
    for (key, value, fix) in [
        ("reason_streak_weeks", s.reason_streak_weeks, "write e.g. 3"),
        ("acceptance_months", s.acceptance_months, "write e.g. 3"),
        ("met_weeks", s.met_weeks, "write e.g. 13 (a quarter)"),
        ("missed_weeks", s.missed_weeks, "write e.g. 4 (a month)"),
    ] {
        if !(1..=52).contains(&value) {
            issues.push(Issue::new(format!("signals.{key}"), value.to_string(), "must be 1 to 52", fix));
        }
    }
    if !(s.acceptance_above > 0.0 && s.acceptance_above < 1.0) {
        issues.push(Issue::new(
            "signals.acceptance_above",
            s.acceptance_above.to_string(),
            "a share between 0 and 1",
            "write e.g. 0.8",
        ));
    }
}

/// The secrets `[notify]` names, by key path.
pub fn secrets(n: &NotifySettings) -> Vec<(&'static str, &SecretSource)> {
    let mut out = Vec::new();
    if let Some(p) = n.email.as_ref().and_then(|e| e.password.as_ref()) {
        out.push(("notify.email.password", p));
    }
    if let Some(s) = &n.slack {
        if let Some(w) = &s.webhook_url {
            out.push(("notify.slack.webhook_url", w));
        }
        if let Some(t) = &s.bot_token {
            out.push(("notify.slack.bot_token", t));
        }
    }
    out
}
