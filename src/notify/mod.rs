//! Pushing the SLA to people: a daily digest per rep and per manager, the
//! weekly summary for the leadership standup, and the calibration signals.
//!
//! A dashboard nobody opens changes nothing; this module sends what the
//! daemon already knows to where people read.
//!
//! - **Daily digests** ([`digest`]): at `notify.digest_time` in each
//!   recipient's own zone, on their business days (their calendar, as the
//!   engine reads it): a rep gets their undispositioned and at-risk leads,
//!   oldest first, each with its due time and a link to the record; a
//!   manager gets the team's open breaches and at-risk leads.
//! - **Weekly summary** ([`summary`]): once a reporting week has closed, on
//!   the next business day at `notify.summary_time`: the scorecard's lines
//!   with trend arrows, every missed line with the side that owns it, the
//!   streak escalations and the [`signals`] — computed by
//!   [`crate::report::compute`], the same numbers `handoff report` shows.
//! - **Channels** ([`channel`]): email over SMTP (STARTTLS or implicit TLS,
//!   a plain-text and an HTML part), Slack (incoming webhook, or a bot token
//!   with `chat.postMessage`); where neither reaches a person the digest
//!   becomes one CRM task for them through the connector, like every other
//!   action.
//!
//! Every message is keyed like an action — (recipient, local date, kind,
//! policy version) for a digest, (week, recipient) for the summary — and
//! goes through an outbox into the ledger ([`crate::store::messages`]), so
//! neither a restart nor a retry sends it twice. [`run`] is what the daemon
//! calls each tick; everything else here is pure.

pub mod channel;
pub mod digest;
pub mod run;
pub mod schedule;
pub mod summary;

use chrono::NaiveDate;
use handoff_model::ActionKey;

pub use run::Notifier;
// The settings live with the rest of the config, the signals with the
// scorecard they read; both are part of what this module pushes.
pub use crate::config::notify as settings;
pub use crate::config::notify::{DigestKind, NotifySettings, SignalSettings};
pub use crate::report::signals;
pub use crate::store::messages::{Delivery, Message, MessageKind};

/// A key segment: ids and dates as they are, anything else hashed.
fn segment(text: &str) -> String {
    if !text.is_empty() && text.len() <= 32 && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        text.to_string()
    } else {
        format!("h{}", crate::engine::keys::short_hash(text, 12))
    }
}

/// `dg:{recipient}:{yyyymmdd}:{rep|mgr}:v{version}`: one digest per
/// recipient, local date and kind under a policy version.
pub fn digest_key(recipient: &str, local_date: NaiveDate, kind: DigestKind, version: u32) -> ActionKey {
    let kind = match kind {
        DigestKind::Rep => "rep",
        DigestKind::Manager => "mgr",
    };
    ActionKey(format!("dg:{}:{}:{kind}:v{version}", segment(recipient), local_date.format("%Y%m%d")))
}

/// `ws:{week yyyymmdd}:{target}:v{version}`: one summary per closed week
/// and target (a leader's id, an email address, `slack`).
pub fn summary_key(week_start: NaiveDate, target: &str, version: u32) -> ActionKey {
    ActionKey(format!("ws:{}:{}:v{version}", week_start.format("%Y%m%d"), segment(target)))
}

/// Minimal HTML escaping for text placed in the HTML part.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Slack `mrkdwn` escaping (`&`, `<`, `>` are its only control characters).
pub(crate) fn slack_esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_recipient_day_kind_and_version() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 3).unwrap_or_default();
        assert_eq!(
            digest_key("005Hs0000000007IAA", d, DigestKind::Rep, 1).as_str(),
            "dg:005Hs0000000007IAA:20260303:rep:v1"
        );
        assert_ne!(digest_key("7", d, DigestKind::Rep, 1), digest_key("7", d, DigestKind::Manager, 1));
        let odd = summary_key(d, "vp.sales@acme.com", 2);
        assert!(odd.as_str().starts_with("ws:20260303:h") && odd.as_str().ends_with(":v2"), "{odd}");
        assert_ne!(odd, summary_key(d, "vp.marketing@acme.com", 2));
    }
}
