//! `handoff state`: what the state directory holds, and the repairs an
//! operator needs — re-reading a stream (from the start or a date),
//! putting given-up actions back in the outbox, and re-reading the records
//! the connector could not map (the quarantine).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use handoff_model::{CrmKind, Stream};
use serde::Serialize;

use crate::config;
use crate::report::graveyard::Graveyard;
use crate::store::{Batch, Counts, ErrorRecord, MessageEntry, OutboxEntry, QuarantineRecord, Store, Sweep};

#[derive(Debug, Serialize)]
struct Report {
    instance: String,
    crm: CrmKind,
    state_dir: String,
    counts: Counts,
    /// Each stream's cursor as the connector wrote it (opaque, for support).
    cursors: Vec<(Stream, Option<String>)>,
    next_deadline: Option<DateTime<Utc>>,
    /// Every lead being evaluated again (after a policy change), and how far it got.
    sweep: Option<Sweep>,
    /// A first start is reading the CRM: its leads are evaluated, every
    /// one, once every stream is read to its end.
    first_start_reading: bool,
    failed_actions: Vec<OutboxEntry>,
    /// Digests and summaries given up on, with the server's error name.
    failed_messages: Vec<MessageEntry>,
    /// Records the connector could not map; their leads are held.
    quarantined: Vec<QuarantineRecord>,
    errors: Vec<ErrorRecord>,
    /// Open MQLs past their deadline from before enforcement began.
    graveyard: Graveyard,
    /// New MQLs per rep on the latest day of the intake book, against
    /// their caps (`policy.capacity`).
    capacity: Vec<RepDay>,
}

/// One rep's new MQLs on a day, and their cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepDay {
    pub day: chrono::NaiveDate,
    pub owner_id: String,
    pub new_mqls: u32,
    pub cap: Option<u32>,
}

/// The latest day of the intake book, rep by rep (fullest first).
pub fn capacity_today(
    store: &crate::store::Store,
    policy: &crate::policy::CompiledPolicy,
) -> Result<Vec<RepDay>, crate::store::StoreError> {
    let book = store.intake_book()?;
    let Some(latest) = book.keys().map(|(day, _)| *day).max() else { return Ok(Vec::new()) };
    let mut out: Vec<RepDay> = book
        .into_iter()
        .filter(|((day, _), _)| *day == latest)
        .map(|((day, owner_id), new_mqls)| RepDay { day, cap: policy.capacity.cap_for(&owner_id), owner_id, new_mqls })
        .collect();
    out.sort_by(|a, b| b.new_mqls.cmp(&a.new_mqls).then_with(|| a.owner_id.cmp(&b.owner_id)));
    Ok(out)
}

fn parse_since(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| {
        format!("--since {text:?} is neither RFC 3339 (2026-03-01T00:00:00Z) nor a date (2026-03-01)")
    })?;
    Ok(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// Runs `handoff state`.
/// What `handoff state` was asked to show and do.
#[derive(Debug, Clone, Default)]
pub struct StateOptions {
    pub config: std::path::PathBuf,
    pub json: bool,
    /// Read this stream again from the start (or from `since`).
    pub resync: Option<Stream>,
    /// A date (`2026-03-01`) or an instant (RFC 3339).
    pub since: Option<String>,
    pub retry_failed: bool,
    pub retry_quarantined: bool,
    /// Rewrite the database compactly first.
    pub compact: bool,
}

pub fn run(args: &StateOptions) -> anyhow::Result<ExitCode> {
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(crate::exit::INVALID));
        }
    };
    let dir = &config.instance.state_dir;
    let stopped_first = || {
        format!(
            "opening {} (if the daemon is running it holds the state; stop it first, e.g. `systemctl stop handoff@{}`)",
            dir.display(),
            config.instance.name
        )
    };
    let mut changed = Vec::new();
    if args.compact {
        let done = Store::compact(dir, config.daemon.state_cache_mib).with_context(stopped_first)?;
        changed.push(format!(
            "the state database was compacted: {:.1} MiB → {:.1} MiB, {} keys kept",
            done.bytes_before as f64 / 1_048_576.0,
            done.bytes_after as f64 / 1_048_576.0,
            done.keys
        ));
    }
    let store = Store::open(dir).with_context(|| {
        format!(
            "opening {} (if the daemon is running it holds the state; stop it first, e.g. `systemctl stop handoff@{}`)",
            dir.display(),
            config.instance.name
        )
    })?;

    if let Some(stream) = args.resync {
        let mut batch = Batch::default();
        match &args.since {
            None => {
                batch.clear_cursor(stream);
                changed.push(format!("{} will be read again from the beginning at the next run", stream.as_str()));
            }
            Some(text) => {
                let since = parse_since(text)?;
                let cursor = crate::daemon::connect::cursor_since(config.instance.crm, stream, since);
                batch.set_cursor(stream, &cursor);
                changed.push(format!(
                    "{} will be read again from {} at the next run",
                    stream.as_str(),
                    since.to_rfc3339()
                ));
            }
        }
        store.commit(batch)?;
    }
    if args.retry_failed {
        let failed: Vec<OutboxEntry> = store.failed_outbox()?;
        let mut batch = Batch::default();
        for mut e in failed.iter().cloned() {
            e.failed = false;
            e.attempts = 0;
            e.next_attempt_at = Utc::now().min(e.next_attempt_at);
            batch.update_outbox(&e);
        }
        store.commit(batch)?;
        changed.push(format!("{} failed action(s) are queued again", failed.len()));
        let failed: Vec<crate::store::MessageEntry> = store.messages()?.into_iter().filter(|e| e.failed).collect();
        let mut batch = Batch::default();
        for mut e in failed.iter().cloned() {
            e.failed = false;
            e.attempts = 0;
            e.sending_since = None;
            e.next_attempt_at = Utc::now().min(e.next_attempt_at);
            batch.update_message(&e);
        }
        store.commit(batch)?;
        changed.push(format!("{} failed message(s) are queued again", failed.len()));
    }
    if args.retry_quarantined {
        let mut batch = Batch::default();
        let n = crate::daemon::reread_quarantine(&store, config.instance.crm, &mut batch)?;
        store.commit(batch)?;
        changed.push(format!("{n} quarantined record(s) will be read again at the next run"));
    }

    let report = Report {
        instance: config.instance.name.clone(),
        crm: config.instance.crm,
        state_dir: dir.display().to_string(),
        counts: store.counts()?,
        cursors: Stream::ALL
            .iter()
            .map(|s| Ok((*s, store.cursor(*s)?.map(|c| c.0))))
            .collect::<Result<_, crate::store::StoreError>>()?,
        next_deadline: store.next_deadline()?,
        sweep: store.sweep()?,
        first_start_reading: crate::daemon::first_sweep_owed(&store)?,
        failed_actions: store.failed_outbox()?.into_iter().map(redacted_entry).collect(),
        failed_messages: store.messages()?.into_iter().filter(|e| e.failed).map(redacted_message).collect(),
        quarantined: store.quarantine()?,
        errors: store.errors(20)?.into_iter().map(redacted_error).collect(),
        graveyard: {
            let first_start = store
                .meta_text(crate::daemon::FIRST_START)?
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc));
            let from = config.sync.enforce_from_at().or(first_start);
            crate::report::graveyard::in_store(&store, from)?
        },
        capacity: capacity_today(&store, &config.policy)?,
    };
    if args.json {
        crate::output::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::output::emit(&render(&report, &changed))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A stored error as it may be shown: its text through the redactor (a
/// state directory written by an older handoff may hold it unredacted).
fn redacted_error(e: ErrorRecord) -> ErrorRecord {
    ErrorRecord { message: handoff_model::redact(&e.message), ..e }
}

fn redacted_entry(mut e: OutboxEntry) -> OutboxEntry {
    if let Some(w) = e.last_error.as_mut() {
        w.code = handoff_model::redact(&w.code);
        w.message = handoff_model::redact(&w.message);
    }
    e
}

fn redacted_message(mut e: MessageEntry) -> MessageEntry {
    if let Some(w) = e.last_error.as_mut() {
        w.code = handoff_model::redact(&w.code);
        w.message = handoff_model::redact(&w.message);
    }
    e
}

fn render(r: &Report, changed: &[String]) -> String {
    let mut out = String::new();
    let c = &r.counts;
    let _ = writeln!(out, "instance {} ({}), state in {}", r.instance, r.crm, r.state_dir);
    for line in changed {
        let _ = writeln!(out, "changed: {line}");
    }
    let _ = writeln!(
        out,
        "store: {} leads, {} activities, {} owners; {} waiting for evaluation; {} deadlines (next {})",
        c.leads,
        c.activities,
        c.owners,
        c.dirty,
        c.deadlines,
        r.next_deadline.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
    );
    if r.first_start_reading {
        let _ = writeln!(out, "first start: reading the CRM; every lead is evaluated once every stream is read");
    }
    if let Some(sweep) = &r.sweep {
        let at = match &sweep.after {
            Some(id) => format!("done up to lead {id}"),
            None => "not started".to_string(),
        };
        let again = if sweep.every_stored_lead { "" } else { " again" };
        let _ = writeln!(out, "every lead is being evaluated{again} ({}): {at}, in lead id order", sweep.why);
    }
    let _ = writeln!(out, "outbox: {} queued, {} failed; ledger: {} actions done", c.outbox, c.outbox_failed, c.ledger);
    if r.graveyard.leads > 0 {
        let _ = writeln!(out, "backlog (measured, not enforced; clean it up in the CRM): {}", r.graveyard.summary(20));
    }
    if let Some(day) = r.capacity.first().map(|d| d.day) {
        let shown: Vec<String> = r
            .capacity
            .iter()
            .take(20)
            .map(|d| match d.cap {
                Some(cap) if d.new_mqls >= cap => format!("{} {}/{cap} (at cap)", d.owner_id, d.new_mqls),
                Some(cap) => format!("{} {}/{cap}", d.owner_id, d.new_mqls),
                None => format!("{} {}", d.owner_id, d.new_mqls),
            })
            .collect();
        let more = r.capacity.len().saturating_sub(shown.len());
        let more = if more > 0 { format!(", {more} more") } else { String::new() };
        let _ = writeln!(out, "new MQLs on {day} by rep (capacity): {}{more}", shown.join(", "));
    }
    let _ = writeln!(out, "messages (digests, summaries): {} queued, {} failed", c.messages, c.messages_failed);
    let _ = writeln!(out, "cursors:");
    for (stream, cursor) in &r.cursors {
        let shown = cursor.as_deref().map(|c| if c.len() > 160 { format!("{}…", &c[..160]) } else { c.to_string() });
        let _ = writeln!(
            out,
            "  {:<10} {}",
            stream.as_str(),
            shown.unwrap_or_else(|| "(not started: the next run backfills)".into())
        );
    }
    if !r.failed_actions.is_empty() {
        let _ = writeln!(out, "failed actions (fix the cause, then `handoff state --retry-failed`):");
        for e in r.failed_actions.iter().take(20) {
            let why = e.last_error.as_ref().map(|w| format!("{} {}", w.code, w.message)).unwrap_or_default();
            let _ = writeln!(out, "  {} (lead {}, {} attempts): {why}", e.action.key, e.action.lead_id, e.attempts);
        }
    }
    if !r.failed_messages.is_empty() {
        let _ = writeln!(out, "failed messages (fix the cause, then `handoff state --retry-failed`):");
        for e in r.failed_messages.iter().take(20) {
            let why = e.last_error.as_ref().map(|w| format!("{} {}", w.code, w.message)).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} ({} to {}, {} attempts): {why}",
                e.message.key,
                e.message.kind.as_str(),
                e.message.delivery.address(),
                e.attempts
            );
        }
    }
    if !r.quarantined.is_empty() {
        let _ = writeln!(
            out,
            "quarantined records: {} ({} leads held; fix them in the CRM, or `handoff state --retry-quarantined` to read them again now):",
            r.quarantined.len(),
            c.held
        );
        for q in r.quarantined.iter().take(50) {
            let rec = &q.record;
            let _ = writeln!(
                out,
                "  {} {} (lead {}; first {}, {} time(s)): {}",
                rec.stream.as_str(),
                rec.id.as_deref().unwrap_or("(no id)"),
                rec.lead_id.as_deref().unwrap_or("-"),
                q.first_at.to_rfc3339(),
                q.times,
                rec.reason
            );
            let raw: String = handoff_model::redact(&rec.raw).chars().take(200).collect();
            let _ = writeln!(out, "      as read: {raw}");
        }
    }
    if !r.errors.is_empty() {
        let _ = writeln!(out, "last errors:");
        for e in &r.errors {
            let _ = writeln!(out, "  {} {}: {}", e.at.to_rfc3339(), e.phase, e.message);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_an_instant() {
        assert_eq!(parse_since("2026-03-01").unwrap().to_rfc3339(), "2026-03-01T00:00:00+00:00");
        assert_eq!(parse_since("2026-03-01T12:00:00Z").unwrap().to_rfc3339(), "2026-03-01T12:00:00+00:00");
        assert!(parse_since("last week").unwrap_err().to_string().contains("--since"));
    }
}
