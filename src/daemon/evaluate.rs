//! Evaluating leads and queueing what the engine decided: each action goes
//! into the outbox once, in the same commit as the evaluation that decided
//! it, unless the ledger says the CRM already has it.
//!
//! The engine also says which of the lead's handoff tasks should be open
//! ([`Evaluation::open_tasks`](crate::engine::Evaluation)). The ledger knows
//! which tasks exist: every other one is closed here — a `CompleteTask`
//! keyed `{task key}:done`, queued before the evaluation's new tasks, with
//! the engine's note on why — unless the CRM shows it done already. A task
//! still waiting in the outbox that is no longer wanted is simply dropped.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use handoff_model::{Action, ActionKey, ActionKind, Activity};

use crate::engine::{self, keys, ClockKind, Evaluation, Owners};
use crate::policy::CompiledPolicy;
use crate::store::{ActionSummary, Batch, LeadState, Store, StoreError};

/// What evaluating one lead changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evaluated {
    pub enqueued: usize,
    /// Queued field updates replaced by a newer one before they were sent.
    pub superseded: usize,
    /// Task closings queued (part of `enqueued`).
    pub completions: usize,
    /// Queued tasks dropped unsent because they were no longer wanted.
    pub dropped: usize,
    pub failed: bool,
}

/// What every evaluation of one tick shares.
pub struct Evaluator<'a> {
    pub store: &'a Store,
    pub policy: &'a CompiledPolicy,
    /// Built once for every lead evaluated with it.
    pub owners: &'a Owners<'a>,
    pub now: DateTime<Utc>,
}

impl Evaluator<'_> {
    /// Evaluates `lead_id` and writes the result into `batch`: its
    /// [`LeadState`] (moving its deadline), the new actions (numbered from
    /// `next_seq`, which is advanced), and clears its dirty mark.
    ///
    /// `due_at` is the deadline-index entry that brought the lead here, if
    /// any; it is dropped whatever the new deadline is. `previous` is the
    /// lead's stored state (read by the caller, who keeps it for the metrics).
    pub fn evaluate_lead(
        &self,
        lead_id: &str,
        due_at: Option<DateTime<Utc>>,
        previous: Option<&LeadState>,
        next_seq: &mut u64,
        batch: &mut Batch,
    ) -> Result<Evaluated, StoreError> {
        evaluate_lead(self, lead_id, due_at, previous, next_seq, batch)
    }
}

fn evaluate_lead(
    cx: &Evaluator<'_>,
    lead_id: &str,
    due_at: Option<DateTime<Utc>>,
    previous: Option<&LeadState>,
    next_seq: &mut u64,
    batch: &mut Batch,
) -> Result<Evaluated, StoreError> {
    let Evaluator { store, policy, owners, now } = *cx;
    let mut out = Evaluated::default();
    batch.clear_dirty(lead_id);
    if let Some(at) = due_at {
        batch.drop_deadline(at, lead_id);
    }
    let Some(stored) = store.lead(lead_id)? else {
        // Activities for a lead not pulled yet: it is evaluated when it arrives.
        return Ok(out);
    };
    let activities = store.activities_of(lead_id)?;
    let lead = stored.into_engine();
    let evaluation = match engine::evaluate(&lead, &activities, owners, policy, now) {
        Ok(e) => e,
        Err(e) => {
            out.failed = true;
            let state = LeadState {
                evaluated_at: now,
                policy_version: policy.version,
                mql: false,
                grade: None,
                segment: None,
                waived: None,
                disqualified_by: None,
                clocks: Vec::new(),
                next_check_at: None,
                error: Some(e.to_string()),
                pending_update: previous.and_then(|p| p.pending_update),
                sla_fields: previous.map(|p| p.sla_fields.clone()).unwrap_or_default(),
                qualified_at: previous.and_then(|p| p.qualified_at),
            };
            batch.put_state(lead_id, &state, previous);
            return Ok(out);
        }
    };

    let mut pending_update = previous.and_then(|p| p.pending_update);
    if !lead.deleted && lead.merged_into.is_none() {
        for action in close_tasks(store, &evaluation, &activities, batch, &mut out)? {
            batch.enqueue(*next_seq, &action, now);
            *next_seq += 1;
            out.enqueued += 1;
            out.completions += 1;
        }
    }
    for action in &evaluation.actions {
        if store.ledger(&action.key)?.is_some() || store.queued(&action.key)?.is_some() {
            continue;
        }
        if matches!(action.kind, ActionKind::UpdateLead { .. }) {
            // The new values say everything the older, unsent ones did.
            if let Some(seq) = pending_update {
                if let Some(old) = store.outbox_entry(seq)? {
                    batch.drop_outbox(&old);
                    out.superseded += 1;
                }
            }
            pending_update = Some(*next_seq);
        }
        batch.enqueue(*next_seq, action, now);
        *next_seq += 1;
        out.enqueued += 1;
    }
    batch.set_next_seq(*next_seq);

    let state = LeadState {
        evaluated_at: now,
        policy_version: policy.version,
        mql: evaluation.mql,
        grade: evaluation.grade,
        segment: evaluation.segment,
        waived: evaluation.waived,
        disqualified_by: evaluation.disqualified_by,
        clocks: evaluation.clocks,
        next_check_at: evaluation.next_check_at,
        error: None,
        pending_update,
        sla_fields: evaluation.sla_fields,
        qualified_at: evaluation.qualified_at,
    };
    batch.put_state(lead_id, &state, previous);
    Ok(out)
}

/// The lead's handoff tasks the engine no longer wants open: a closing
/// action for each one the CRM holds open, and unsent creates dropped from
/// the outbox (into `batch`).
fn close_tasks(
    store: &Store,
    evaluation: &Evaluation,
    activities: &[Activity],
    batch: &mut Batch,
    out: &mut Evaluated,
) -> Result<Vec<Action>, StoreError> {
    let prefix = keys::lead_prefix(&evaluation.lead_id);
    let open = &evaluation.open_tasks;
    // Queued but not sent: a create no longer wanted is dropped, and a
    // closing of a task wanted again is too.
    for (key, seq) in store.queued_with_prefix(&prefix)? {
        let Some(entry) = store.outbox_entry(seq)? else { continue };
        let unwanted = match &entry.action.kind {
            ActionKind::CreateTask { .. } => !open.contains(&entry.action.key),
            ActionKind::CompleteTask { task_key, .. } => open.contains(task_key),
            _ => false,
        };
        if unwanted {
            tracing::debug!(key = %key, "dropping a queued task change no longer wanted");
            batch.drop_outbox(&entry);
            out.dropped += 1;
        }
    }
    let ledger = store.ledger_with_prefix(&prefix)?;
    let closed: BTreeSet<&ActionKey> = ledger
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            ActionSummary::CompleteTask { task_key } => Some(task_key),
            _ => None,
        })
        .collect();
    // Tasks someone already completed in the CRM need nothing more.
    let done_in_crm: BTreeSet<&str> =
        activities.iter().filter(|a| a.completed || a.deleted).filter_map(|a| a.handoff_key.as_deref()).collect();
    let mut closings = Vec::new();
    for (key, entry) in &ledger {
        let ActionSummary::CreateTask { body, .. } = &entry.kind else { continue };
        let task_key = ActionKey(key.clone());
        if open.contains(&task_key) || closed.contains(&task_key) || done_in_crm.contains(key.as_str()) {
            continue;
        }
        let done = keys::completion_key(&task_key);
        if store.queued(&done)?.is_some() {
            continue;
        }
        let note = format!("Closed by handoff: {}", task_note(evaluation, key));
        let body = match body.as_deref().filter(|b| !b.is_empty()) {
            Some(text) => format!("{text}\n\n{note}"),
            None => note.clone(),
        };
        closings.push(Action {
            key: done,
            lead_id: evaluation.lead_id.clone(),
            kind: ActionKind::CompleteTask { task_key, task_id: entry.crm_id.clone(), note, body },
        });
    }
    Ok(closings)
}

/// Why the task under `key` is done: the engine's note for its clock (the
/// key's second segment), else why the lead owes nothing.
fn task_note(evaluation: &Evaluation, key: &str) -> String {
    let code = key.split(':').nth(1).unwrap_or_default();
    if let Some(note) = evaluation.task_notes.get(code) {
        return note.clone();
    }
    match (&evaluation.waived, ClockKind::from_key_code(code)) {
        (Some(why), _) => format!("no sales obligation any more: {why}"),
        (None, Some(kind)) => format!("the lead no longer has a {} clock", kind.label()),
        (None, None) => "the lead's SLA no longer asks for it".to_string(),
    }
}
