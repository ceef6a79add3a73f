//! Evaluating leads and queueing what the engine decided: each action goes
//! into the outbox once, in the same commit as the evaluation that decided
//! it, unless the ledger says the CRM already has it.

use chrono::{DateTime, Utc};
use handoff_model::{ActionKind, Owner};

use crate::engine::{self, Owners};
use crate::policy::CompiledPolicy;
use crate::store::{Batch, LeadState, Store, StoreError};

/// What evaluating one lead changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evaluated {
    pub enqueued: usize,
    /// Queued field updates replaced by a newer one before they were sent.
    pub superseded: usize,
    pub failed: bool,
}

/// What every evaluation of one tick shares.
pub struct Evaluator<'a> {
    pub store: &'a Store,
    pub policy: &'a CompiledPolicy,
    pub owners: &'a [Owner],
    pub now: DateTime<Utc>,
}

impl Evaluator<'_> {
    /// Evaluates `lead_id` and writes the result into `batch`: its
    /// [`LeadState`] (moving its deadline), the new actions (numbered from
    /// `next_seq`, which is advanced), and clears its dirty mark.
    ///
    /// `due_at` is the deadline-index entry that brought the lead here, if
    /// any; it is dropped whatever the new deadline is.
    pub fn evaluate_lead(
        &self,
        lead_id: &str,
        due_at: Option<DateTime<Utc>>,
        next_seq: &mut u64,
        batch: &mut Batch,
    ) -> Result<Evaluated, StoreError> {
        evaluate_lead(self, lead_id, due_at, next_seq, batch)
    }
}

fn evaluate_lead(
    cx: &Evaluator<'_>,
    lead_id: &str,
    due_at: Option<DateTime<Utc>>,
    next_seq: &mut u64,
    batch: &mut Batch,
) -> Result<Evaluated, StoreError> {
    let Evaluator { store, policy, owners, now } = *cx;
    let mut out = Evaluated::default();
    batch.clear_dirty(lead_id);
    if let Some(at) = due_at {
        batch.drop_deadline(at, lead_id);
    }
    let previous = store.state(lead_id)?;
    let Some(stored) = store.lead(lead_id)? else {
        // Activities for a lead not pulled yet: it is evaluated when it arrives.
        return Ok(out);
    };
    let activities = store.activities_of(lead_id)?;
    let lead = stored.for_engine();
    let owners = Owners::new(owners);
    let evaluation = match engine::evaluate(&lead, &activities, &owners, policy, now) {
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
                pending_update: previous.as_ref().and_then(|p| p.pending_update),
                sla_fields: previous.as_ref().map(|p| p.sla_fields.clone()).unwrap_or_default(),
            };
            batch.put_state(lead_id, &state, previous.as_ref());
            return Ok(out);
        }
    };

    let mut pending_update = previous.as_ref().and_then(|p| p.pending_update);
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
    };
    batch.put_state(lead_id, &state, previous.as_ref());
    Ok(out)
}
