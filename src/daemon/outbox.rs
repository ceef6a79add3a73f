//! Draining the outbox through the connector, and recording each outcome.
//!
//! An action leaves the outbox only when the CRM confirmed it (into the
//! ledger) or when it can never succeed (kept, marked failed, for the
//! operator). A crash between the CRM's answer and the commit below leaves
//! the action queued; sending it again is harmless because every write is
//! keyed: tasks carry their action key into the CRM (Salesforce External
//! ID upsert, HubSpot `handoff_key` lookup) and field updates set values.

use chrono::{DateTime, Duration, Utc};
use handoff_model::{ActionKind, ErrorClass, WriteOutcome};

use crate::store::{ActionSummary, Batch, LedgerEntry, OutboxEntry, Store, StoreError};

/// What one round of outcomes did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub written: usize,
    pub retrying: usize,
    pub failed: usize,
}

pub use crate::store::backoff;

/// Actions queued for leads that were deleted or merged away since: the
/// CRM would refuse them, so they are dropped.
pub fn drop_orphans(
    store: &Store,
    entries: Vec<OutboxEntry>,
    batch: &mut Batch,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut keep = Vec::with_capacity(entries.len());
    for entry in entries {
        let gone = match store.lead(&entry.action.lead_id)? {
            Some(l) => l.lead.deleted || l.lead.merged_into.is_some(),
            None => false,
        };
        if gone {
            tracing::info!(key = %entry.action.key, lead = %entry.action.lead_id, "dropping an action for a deleted lead");
            batch.drop_outbox(&entry);
        } else {
            keep.push(entry);
        }
    }
    Ok(keep)
}

/// Whether a failed write says the record it targeted does not exist (any
/// more): Salesforce `ENTITY_IS_DELETED` / `INVALID_CROSS_REFERENCE_KEY` /
/// `NOT_FOUND`, HubSpot `OBJECT_NOT_FOUND`.
fn task_is_gone(e: &handoff_model::WriteError) -> bool {
    matches!(e.class, ErrorClass::Permanent)
        && ["ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND", "OBJECT_NOT_FOUND"]
            .iter()
            .any(|c| e.code.eq_ignore_ascii_case(c))
}

/// Records the connector's outcomes for `entries` (same order) into `batch`.
pub fn record(
    store: &Store,
    entries: &[OutboxEntry],
    outcomes: &[WriteOutcome],
    now: DateTime<Utc>,
    max_attempts: u32,
    batch: &mut Batch,
) -> Result<Recorded, StoreError> {
    let mut out = Recorded::default();
    for (entry, outcome) in entries.iter().zip(outcomes) {
        if outcome.key != entry.action.key {
            // The connector promises input order; a mismatch is a bug worth
            // a loud message, and the entry simply stays queued.
            tracing::error!(expected = %entry.action.key, got = %outcome.key, "write outcome out of order; the action stays queued");
            continue;
        }
        let attempts = entry.attempts + 1;
        // A task to close that the CRM no longer has (deleted by someone)
        // needs nothing more: it counts as done.
        let gone_task = match (&entry.action.kind, &outcome.result) {
            (ActionKind::CompleteTask { task_id, .. }, Err(e)) if task_is_gone(e) => Some(Ok(task_id.clone())),
            _ => None,
        };
        match gone_task.as_ref().unwrap_or(&outcome.result) {
            Ok(crm_id) => {
                out.written += 1;
                batch.confirm(
                    entry,
                    &LedgerEntry {
                        lead_id: entry.action.lead_id.clone(),
                        crm_id: crm_id.clone(),
                        done_at: now,
                        kind: ActionSummary::of(&entry.action),
                        attempts,
                    },
                );
                if let ActionKind::UpdateLead { fields } = &entry.action.kind {
                    // The CRM now holds these values: so does our copy, and
                    // the echo of this write on the next pull is no change.
                    if let Some(mut stored) = store.lead(&entry.action.lead_id)? {
                        for (k, v) in fields {
                            stored.lead.fields.insert(k.clone(), v.clone());
                        }
                        batch.put_lead(&stored);
                    }
                }
            }
            Err(error) => {
                let mut next = entry.clone();
                next.attempts = attempts;
                next.last_error = Some(error.clone());
                match &error.class {
                    ErrorClass::Retryable if attempts < max_attempts => {
                        next.next_attempt_at = now + backoff(attempts);
                        out.retrying += 1;
                    }
                    ErrorClass::RateLimited { retry_after_secs } if attempts < max_attempts => {
                        next.next_attempt_at = now + Duration::seconds(*retry_after_secs as i64).max(backoff(1));
                        out.retrying += 1;
                    }
                    _ => {
                        next.failed = true;
                        out.failed += 1;
                        tracing::warn!(key = %entry.action.key, lead = %entry.action.lead_id, code = %error.code, error = %error.message, "action given up on; see `handoff state`");
                    }
                }
                batch.update_outbox(&next);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use handoff_model::{Action, ActionKey, WriteError};
    use std::collections::BTreeMap;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
    }

    fn queued(store: &Store, keys: &[&str]) -> Vec<OutboxEntry> {
        let mut b = Batch::default();
        for (i, k) in keys.iter().enumerate() {
            let action = Action {
                key: ActionKey(k.to_string()),
                lead_id: "L1".into(),
                kind: ActionKind::UpdateLead {
                    fields: BTreeMap::from([("SLA_Status__c".to_string(), serde_json::json!("met"))]),
                },
            };
            b.enqueue(i as u64 + 1, &action, now());
        }
        store.commit(b).unwrap();
        store.outbox_ready(now(), 10).unwrap()
    }

    fn outcome(key: &str, result: Result<&str, ErrorClass>) -> WriteOutcome {
        WriteOutcome {
            key: ActionKey(key.into()),
            result: result.map(str::to_string).map_err(|class| WriteError {
                class,
                code: "X".into(),
                message: "m".into(),
            }),
        }
    }

    #[test]
    fn outcomes_land_in_the_ledger_back_off_or_give_up() {
        let store = Store::in_memory();
        let entries = queued(&store, &["ok", "retry", "limit", "dead"]);
        let outcomes = [
            outcome("ok", Ok("00Q1")),
            outcome("retry", Err(ErrorClass::Retryable)),
            outcome("limit", Err(ErrorClass::RateLimited { retry_after_secs: 600 })),
            outcome("dead", Err(ErrorClass::Permanent)),
        ];
        let mut b = Batch::default();
        let r = record(&store, &entries, &outcomes, now(), 5, &mut b).unwrap();
        store.commit(b).unwrap();
        assert_eq!((r.written, r.retrying, r.failed), (1, 2, 1));
        assert!(store.ledger(&ActionKey("ok".into())).unwrap().is_some());
        let left: Vec<(String, bool, DateTime<Utc>)> =
            store.outbox().unwrap().into_iter().map(|e| (e.action.key.0, e.failed, e.next_attempt_at)).collect();
        assert_eq!(
            left,
            [
                ("retry".to_string(), false, now() + Duration::seconds(30)),
                ("limit".to_string(), false, now() + Duration::seconds(600)),
                ("dead".to_string(), true, now()),
            ]
        );
    }

    #[test]
    fn a_retryable_failure_is_given_up_after_the_last_attempt() {
        let store = Store::in_memory();
        let mut entries = queued(&store, &["k"]);
        entries[0].attempts = 4;
        let mut b = Batch::default();
        let r = record(&store, &entries, &[outcome("k", Err(ErrorClass::Retryable))], now(), 5, &mut b).unwrap();
        assert_eq!(r.failed, 1);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::seconds(30));
        assert_eq!(backoff(3), Duration::seconds(120));
        assert_eq!(backoff(40), Duration::seconds(3_600));
    }
}
