//! What the running daemon tells Prometheus (`/metrics`) and a health check
//! (`/healthz`): counts kept in memory as ticks run, plus a few read from the
//! store at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use handoff_model::{ActionKind, ApiBudget, Stream, TaskPurpose, WriteOutcome};
use serde::Serialize;

use crate::engine::{ClockKind, ClockStatus};
use crate::store::{LeadState, OutboxEntry, Store, StoreError};

/// Counters and gauges of one daemon.
#[derive(Default)]
pub struct Metrics {
    pub pages: AtomicU64,
    pub errors: AtomicU64,
    pub ticks: AtomicU64,
    /// Bumped by every commit of the daemon's: the watchdog's sign of life.
    pub progress: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Current clocks by kind and status (every lead's last evaluation).
    clocks: BTreeMap<(ClockKind, ClockStatus), i64>,
    /// Actions the CRM confirmed, by kind label.
    written: BTreeMap<&'static str, u64>,
    write_failures: u64,
    budget: ApiBudget,
    /// Where each stream's last finished window reached.
    synced_until: BTreeMap<Stream, DateTime<Utc>>,
    last_tick: Option<TickSummary>,
}

/// The last tick, for `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct TickSummary {
    pub now: Option<DateTime<Utc>>,
    pub caught_up: bool,
    pub errors: Vec<String>,
    pub paused_until: Option<DateTime<Utc>>,
}

fn action_label(kind: &ActionKind) -> &'static str {
    match kind {
        ActionKind::UpdateLead { .. } => "sla_fields",
        ActionKind::Reassign { .. } => "reassignment",
        ActionKind::CompleteTask { .. } => "task_completion",
        ActionKind::CreateTask { purpose, .. } => match purpose {
            TaskPurpose::Reminder => "reminder",
            TaskPurpose::Escalation { .. } => "escalation",
            TaskPurpose::DispositionFlag => "disposition_flag",
            TaskPurpose::ScorecardEscalation => "scorecard_escalation",
            TaskPurpose::Digest => "digest",
            TaskPurpose::WeeklySummary => "weekly_summary",
        },
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the clock counts the store keeps (once, at start).
    pub fn load(&self, store: &Store) -> Result<(), StoreError> {
        let clocks = store.clock_counts()?;
        self.lock().clocks = clocks;
        Ok(())
    }

    /// A lead's evaluation replaced `before` with `after`.
    pub fn replace_state(&self, before: Option<&LeadState>, after: Option<&LeadState>) {
        let mut inner = self.lock();
        for c in before.iter().flat_map(|s| &s.clocks) {
            *inner.clocks.entry((c.kind, c.status)).or_default() -= 1;
        }
        for c in after.iter().flat_map(|s| &s.clocks) {
            *inner.clocks.entry((c.kind, c.status)).or_default() += 1;
        }
    }

    pub fn record_writes(&self, entries: &[OutboxEntry], outcomes: &[WriteOutcome]) {
        let mut inner = self.lock();
        for (e, o) in entries.iter().zip(outcomes) {
            match &o.result {
                Ok(_) => *inner.written.entry(action_label(&e.action.kind)).or_default() += 1,
                Err(_) => inner.write_failures += 1,
            }
        }
    }

    pub fn set_synced(&self, stream: Stream, until: DateTime<Utc>) {
        self.lock().synced_until.insert(stream, until);
    }

    /// A tick ended: its summary (errors redacted here) and the budget left.
    pub fn observe_tick(&self, mut tick: TickSummary, budget: &ApiBudget) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
        tick.errors = tick.errors.iter().map(|e| handoff_model::redact(e)).collect();
        let mut inner = self.lock();
        inner.budget = budget.clone();
        inner.last_tick = Some(tick);
    }

    pub fn last_tick(&self) -> Option<TickSummary> {
        self.lock().last_tick.clone()
    }

    /// Clocks by kind and status, as counted now.
    pub fn clock_counts(&self) -> BTreeMap<(ClockKind, ClockStatus), i64> {
        self.lock().clocks.iter().filter(|(_, n)| **n != 0).map(|(k, n)| (*k, *n)).collect()
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, instance: &str, store: &Store) -> Result<String, StoreError> {
        let counts = store.counts()?;
        let inner = self.lock();
        let mut out = String::new();
        let inst = escape(instance);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };

        family(&mut out, "handoff_clocks", "gauge", "SLA clocks by kind and status, as last evaluated.");
        for ((kind, status), n) in &inner.clocks {
            if *n != 0 {
                let _ = writeln!(
                    out,
                    "handoff_clocks{{instance=\"{inst}\",clock=\"{}\",status=\"{}\"}} {n}",
                    kind.as_str(),
                    status.as_str()
                );
            }
        }
        let breaches: i64 =
            inner.clocks.iter().filter(|((_, s), _)| *s == ClockStatus::Breached).map(|(_, n)| *n).sum();
        family(&mut out, "handoff_breached_clocks", "gauge", "SLA clocks currently breached, all kinds.");
        let _ = writeln!(out, "handoff_breached_clocks{{instance=\"{inst}\"}} {breaches}");

        family(&mut out, "handoff_actions_written_total", "counter", "Actions the CRM confirmed since start, by kind.");
        for label in [
            "sla_fields",
            "reminder",
            "escalation",
            "disposition_flag",
            "reassignment",
            "scorecard_escalation",
            "digest",
            "weekly_summary",
        ] {
            let n = inner.written.get(label).copied().unwrap_or(0);
            let _ = writeln!(out, "handoff_actions_written_total{{instance=\"{inst}\",kind=\"{label}\"}} {n}");
        }
        family(&mut out, "handoff_write_failures_total", "counter", "Action writes the CRM refused since start.");
        let _ = writeln!(out, "handoff_write_failures_total{{instance=\"{inst}\"}} {}", inner.write_failures);

        family(&mut out, "handoff_outbox_depth", "gauge", "Actions waiting to be written (failed ones included).");
        let _ = writeln!(out, "handoff_outbox_depth{{instance=\"{inst}\"}} {}", counts.outbox);
        family(&mut out, "handoff_outbox_failed", "gauge", "Actions given up on, waiting for an operator.");
        let _ = writeln!(out, "handoff_outbox_failed{{instance=\"{inst}\"}} {}", counts.outbox_failed);
        family(&mut out, "handoff_leads", "gauge", "Leads in the local store.");
        let _ = writeln!(out, "handoff_leads{{instance=\"{inst}\"}} {}", counts.leads);
        family(
            &mut out,
            "handoff_quarantined_records",
            "gauge",
            "Records the CRM sent that could not be read, kept in quarantine (see `handoff state`), by stream.",
        );
        let mut by_stream: BTreeMap<Stream, usize> = Stream::ALL.iter().map(|s| (*s, 0)).collect();
        for q in store.quarantine()? {
            *by_stream.entry(q.record.stream).or_default() += 1;
        }
        for (stream, n) in by_stream {
            let _ =
                writeln!(out, "handoff_quarantined_records{{instance=\"{inst}\",stream=\"{}\"}} {n}", stream.as_str());
        }
        family(&mut out, "handoff_held_leads", "gauge", "Leads not evaluated while a record of theirs is quarantined.");
        let _ = writeln!(out, "handoff_held_leads{{instance=\"{inst}\"}} {}", counts.held);

        family(&mut out, "handoff_api_budget_remaining", "gauge", "API calls left in today's operator share.");
        let _ = writeln!(out, "handoff_api_budget_remaining{{instance=\"{inst}\"}} {}", inner.budget.remaining());
        family(&mut out, "handoff_api_budget_used", "gauge", "API calls the CRM counts as used today.");
        let _ = writeln!(out, "handoff_api_budget_used{{instance=\"{inst}\"}} {}", inner.budget.used);

        let now = inner.last_tick.as_ref().and_then(|t| t.now);
        family(
            &mut out,
            "handoff_sync_lag_seconds",
            "gauge",
            "How far behind the last tick's now each stream's finished window is.",
        );
        for (stream, until) in &inner.synced_until {
            let lag = now.map(|n| (n - *until).num_milliseconds() as f64 / 1000.0).unwrap_or(0.0);
            let _ =
                writeln!(out, "handoff_sync_lag_seconds{{instance=\"{inst}\",stream=\"{}\"}} {lag}", stream.as_str());
        }
        if let Ok(Some(signals)) = crate::report::signals::cached_signals(store) {
            family(
                &mut out,
                "handoff_signal_active",
                "gauge",
                "Calibration signals on the latest closed week (1: fired), by signal and what it is about.",
            );
            for id in crate::report::signals::SIGNAL_IDS {
                let fired: Vec<&crate::report::signals::Signal> = signals.fired.iter().filter(|f| f.id == id).collect();
                if fired.is_empty() {
                    let _ =
                        writeln!(out, "handoff_signal_active{{instance=\"{inst}\",signal=\"{id}\",subject=\"\"}} 0");
                }
                for f in fired {
                    let _ = writeln!(
                        out,
                        "handoff_signal_active{{instance=\"{inst}\",signal=\"{id}\",subject=\"{}\"}} 1",
                        escape(f.subject.as_deref().unwrap_or(""))
                    );
                }
            }
        }
        family(&mut out, "handoff_messages_queued", "gauge", "Digests and summaries waiting for delivery.");
        let _ = writeln!(out, "handoff_messages_queued{{instance=\"{inst}\"}} {}", counts.messages);
        family(
            &mut out,
            "handoff_messages_failed",
            "gauge",
            "Digests and summaries given up on (see `handoff state`).",
        );
        let _ = writeln!(out, "handoff_messages_failed{{instance=\"{inst}\"}} {}", counts.messages_failed);
        family(&mut out, "handoff_pages_total", "counter", "Pages pulled since start.");
        let _ = writeln!(out, "handoff_pages_total{{instance=\"{inst}\"}} {}", self.pages.load(Ordering::Relaxed));
        family(&mut out, "handoff_errors_total", "counter", "Problems met since start (see `handoff state`).");
        let _ = writeln!(out, "handoff_errors_total{{instance=\"{inst}\"}} {}", self.errors.load(Ordering::Relaxed));
        family(&mut out, "handoff_ticks_total", "counter", "Sync-evaluate-write cycles since start.");
        let _ = writeln!(out, "handoff_ticks_total{{instance=\"{inst}\"}} {}", self.ticks.load(Ordering::Relaxed));
        Ok(out)
    }
}

/// A label value as Prometheus reads it (through the redactor: a label
/// must never carry a secret, whatever it was built from).
fn escape(value: &str) -> String {
    handoff_model::redact(value).replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
