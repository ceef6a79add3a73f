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

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use handoff_model::{Action, ActionKey, ActionKind, Activity, Lead};

use crate::engine::capacity::{self, Intake, Outcome, SurgeWatch};
use crate::engine::{self, keys, ClockKind, Evaluation, Owners};
use crate::policy::{CompiledPolicy, Overflow};
use crate::store::{
    ActionSummary, Batch, Comparison, LeadRecords, LeadState, LedgerEntry, OutboxEntry, PriorState, Store, StoreError,
};

/// What evaluating one lead changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Evaluated {
    pub enqueued: usize,
    /// Queued field updates replaced by a newer one before they were sent.
    pub superseded: usize,
    /// Task closings queued (part of `enqueued`).
    pub completions: usize,
    /// Queued tasks dropped unsent because they were no longer wanted.
    pub dropped: usize,
    pub failed: bool,
    /// The lead's state before and after, for the metrics (none: not
    /// evaluated, never before, or — both — the verdict did not change).
    pub before: Option<LeadState>,
    pub after: Option<LeadState>,
}

/// What every evaluation of one tick shares.
pub struct Evaluator<'a> {
    pub store: &'a Store,
    pub policy: &'a CompiledPolicy,
    /// Built once for every lead evaluated with it.
    pub owners: &'a Owners<'a>,
    pub now: DateTime<Utc>,
    /// Nothing waited in the outbox when these leads were listed, so none
    /// of them has an action queued: only a lead's own evaluation queues
    /// its actions, and each lead is evaluated once with this evaluator.
    pub outbox_was_empty: bool,
    /// Some lead had become an opportunity when these leads were listed
    /// (only a sync records one, never an evaluation).
    pub any_opportunities: bool,
}

/// A lead the engine has judged, nothing queued yet: what
/// [`Evaluator::judge`] reads and concludes, and [`Evaluator::apply`] turns
/// into writes. Judging only reads, so leads are judged side by side.
pub struct Judged {
    lead_id: String,
    due_at: Option<DateTime<Utc>>,
    /// Its last evaluation, as stored.
    prior: Option<PriorState>,
    verdict: Verdict,
}

impl Judged {
    pub fn lead_id(&self) -> &str {
        &self.lead_id
    }
}

/// Most threads leads are judged on at once.
const MAX_JUDGES: usize = 8;
/// Leads a judging thread takes at a time: small, so that the threads
/// finish a chunk together rather than one waiting on the other's last
/// slow leads.
const PIECE: usize = 20;

/// A lead to judge: its id and the deadline-index entry that brought it.
pub type Work = (String, Option<DateTime<Utc>>);

/// Judges `work` on the machine's cores and hands it back in order, a
/// chunk of about `chunk` leads at a time, to `take` on the calling thread
/// (which applies and commits it); `take` answers whether to go on.
///
/// Judging only reads the store and runs the engine, and the leads of
/// `work` are distinct, so they are independent: threads take
/// [`PIECE`]-lead pieces in turn while `take` works, at most the chunk
/// after the one `take` holds (what is in flight stays two chunks). The
/// chunks come back in `work`'s order, so what is queued, and its
/// numbering, does not depend on the split. After `take` says stop or an
/// error, no new piece is started.
pub fn judge_in_order<E: From<StoreError>>(
    evaluator: &Evaluator<'_>,
    work: &[Work],
    chunk: usize,
    mut take: impl FnMut(&[Work], Vec<Judged>) -> Result<bool, E>,
) -> Result<(), E> {
    let judge_part = |part: &[Work]| -> Result<Vec<Judged>, StoreError> {
        part.iter().map(|(id, due_at)| evaluator.judge(id, *due_at)).collect()
    };
    let per_chunk = chunk.div_ceil(PIECE).max(1);
    let chunk = per_chunk * PIECE;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_JUDGES);
    if workers <= 1 || work.len() <= PIECE {
        for part in work.chunks(chunk) {
            if !take(part, judge_part(part)?)? {
                break;
            }
        }
        return Ok(());
    }
    let pieces: Vec<&[Work]> = work.chunks(PIECE).collect();
    let board = Board::new(2 * per_chunk);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(index) = board.next_piece(pieces.len()) {
                    let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| judge_part(pieces[index])))
                        .unwrap_or_else(|_| {
                            Err(StoreError::Io {
                                doing: "judging leads".to_string(),
                                message: "a judging thread panicked".to_string(),
                            })
                        });
                    board.finished(index, judged);
                }
            });
        }
        // Whatever ends the loop, the threads take no new piece.
        let _stop = StopOnDrop(&board);
        for (number, part) in work.chunks(chunk).enumerate() {
            let first = number * per_chunk;
            let mut judged = Vec::with_capacity(part.len());
            for index in first..(first + per_chunk).min(pieces.len()) {
                judged.extend(board.wait_for(index)?);
            }
            // The next chunk may be judged while this one is taken.
            board.allow_until(first + 2 * per_chunk);
            if !take(part, judged)? {
                break;
            }
        }
        Ok(())
    })
}

/// Where judging threads and the taking thread meet: which piece is next,
/// how far ahead pieces may be started, and the pieces judged and not
/// taken yet.
struct Board {
    state: std::sync::Mutex<BoardState>,
    changed: std::sync::Condvar,
}

struct BoardState {
    next: usize,
    /// Pieces below this may be started.
    until: usize,
    stopped: bool,
    judged: BTreeMap<usize, Result<Vec<Judged>, StoreError>>,
}

impl Board {
    fn new(until: usize) -> Board {
        let state = BoardState { next: 0, until, stopped: false, judged: BTreeMap::new() };
        Board { state: std::sync::Mutex::new(state), changed: std::sync::Condvar::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        // Nothing panics while holding the lock (judging runs outside it).
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: std::sync::MutexGuard<'a, BoardState>) -> std::sync::MutexGuard<'a, BoardState> {
        self.changed.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next piece to judge, waiting while it is too far ahead; `None`
    /// once every piece is started or judging stopped.
    fn next_piece(&self, pieces: usize) -> Option<usize> {
        let mut state = self.lock();
        loop {
            if state.stopped || state.next >= pieces {
                return None;
            }
            if state.next < state.until {
                state.next += 1;
                return Some(state.next - 1);
            }
            state = self.wait(state);
        }
    }

    fn finished(&self, index: usize, judged: Result<Vec<Judged>, StoreError>) {
        self.lock().judged.insert(index, judged);
        self.changed.notify_all();
    }

    /// Piece `index`, once judged. Every piece below `until` is started
    /// and finished by some thread (a panic included), so this returns.
    fn wait_for(&self, index: usize) -> Result<Vec<Judged>, StoreError> {
        let mut state = self.lock();
        loop {
            if let Some(judged) = state.judged.remove(&index) {
                return judged;
            }
            state = self.wait(state);
        }
    }

    fn allow_until(&self, until: usize) {
        self.lock().until = until;
        self.changed.notify_all();
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

struct StopOnDrop<'a>(&'a Board);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

enum Verdict {
    /// Activities for a lead not pulled yet: it is evaluated when it arrives.
    NotPulled,
    Failed(String),
    Decided {
        /// The lead and its activities, kept only when its intake is still
        /// to be decided ([`undecided_arrival`]), which may judge it again;
        /// otherwise freed on the judging thread, not the applying one.
        case: Option<Box<(Lead, Vec<Activity>)>>,
        /// Neither deleted nor merged into another record.
        live: bool,
        /// Handoff's tasks (their keys) completed or deleted in the CRM.
        done_in_crm: BTreeSet<String>,
        evaluation: Box<Evaluation>,
        books: Books,
    },
}

/// The arrival `evaluation` found, if the lead's intake has not been
/// decided for it yet ([`new_intake`] decides it).
fn undecided_arrival<'e>(evaluation: &'e Evaluation, decided: Option<&Intake>) -> Option<&'e capacity::Arrival> {
    let arrival = evaluation.arrival.as_ref()?;
    let decided = decided.is_some_and(|i| i.is_for(arrival));
    (!decided).then_some(arrival)
}

/// What the ledger and the outbox hold about one lead, read while it is
/// judged, off the thread that applies. Only the lead's own evaluation
/// changes them (the writes that fill the ledger run after evaluation), so
/// they are still current when it is applied. A key that does not carry
/// the lead's prefix (a key too long, hashed) is looked up in the store.
struct Books {
    prefix: String,
    ledger: BTreeMap<String, LedgerEntry>,
    /// Queued actions: key → outbox sequence.
    queued: BTreeMap<String, u64>,
    /// The outbox entries of `queued` and of the queued field update.
    entries: BTreeMap<u64, OutboxEntry>,
}

impl Books {
    /// The books of `lead_id`, whose ledger entries are `ledger`.
    /// With `nothing_queued`, the outbox is known to hold nothing of the
    /// lead's and is not read.
    fn read(
        store: &Store,
        lead_id: &str,
        ledger: Vec<(String, LedgerEntry)>,
        pending_update: Option<u64>,
        nothing_queued: bool,
    ) -> Result<Books, StoreError> {
        let prefix = keys::lead_prefix(lead_id);
        let ledger: BTreeMap<String, LedgerEntry> = ledger.into_iter().collect();
        let queued: BTreeMap<String, u64> =
            if nothing_queued { BTreeMap::new() } else { store.queued_with_prefix(&prefix)?.into_iter().collect() };
        let mut entries = BTreeMap::new();
        for seq in queued.values().copied().chain(pending_update) {
            if let Some(entry) = store.outbox_entry(seq)? {
                entries.insert(seq, entry);
            }
        }
        Ok(Books { prefix, ledger, queued, entries })
    }

    fn covers(&self, key: &ActionKey) -> bool {
        key.as_str().starts_with(&self.prefix)
    }

    /// Whether the CRM has the action or it waits in the outbox.
    fn knows(&self, store: &Store, key: &ActionKey) -> Result<bool, StoreError> {
        if self.covers(key) {
            return Ok(self.ledger.contains_key(key.as_str()) || self.queued.contains_key(key.as_str()));
        }
        Ok(store.ledger(key)?.is_some() || store.queued(key)?.is_some())
    }

    /// Whether `action` needs no sending: [`Books::knows`] it, except that a
    /// write-back of SLA fields is done only while it is the lead's latest.
    /// Its key names the values and the CRM's values it replaced, so fields
    /// going A → B → A → B meet B's key again, and the CRM, showing A, must
    /// be written to again.
    fn has(&self, store: &Store, action: &Action) -> Result<bool, StoreError> {
        if !matches!(action.kind, ActionKind::UpdateLead { .. }) || !self.covers(&action.key) {
            return self.knows(store, &action.key);
        }
        if self.queued.contains_key(action.key.as_str()) {
            return Ok(true);
        }
        let latest = self
            .ledger
            .iter()
            .filter(|(_, e)| matches!(e.kind, ActionSummary::UpdateLead))
            .max_by_key(|(key, e)| (e.done_at, *key))
            .map(|(key, _)| key.as_str());
        Ok(latest == Some(action.key.as_str()))
    }

    fn queued(&self, store: &Store, key: &ActionKey) -> Result<Option<u64>, StoreError> {
        if self.covers(key) {
            return Ok(self.queued.get(key.as_str()).copied());
        }
        store.queued(key)
    }

    fn outbox_entry(&self, store: &Store, seq: u64) -> Result<Option<OutboxEntry>, StoreError> {
        match self.entries.get(&seq) {
            Some(entry) => Ok(Some(entry.clone())),
            None => store.outbox_entry(seq),
        }
    }
}

impl Evaluator<'_> {
    /// Reads `lead_id` and what the engine makes of it (no writes).
    pub fn judge(&self, lead_id: &str, due_at: Option<DateTime<Utc>>) -> Result<Judged, StoreError> {
        let LeadRecords { state: prior, case, ledger } =
            self.store.lead_records_given(lead_id, self.any_opportunities)?;
        let verdict = match case {
            None => Verdict::NotPulled,
            Some((lead, activities)) => {
                let intake = prior.as_ref().and_then(|p| p.intake());
                match engine::judge(&lead, &activities, self.owners, self.policy, intake, self.now) {
                    Ok(evaluation) => {
                        let pending_update = prior.as_ref().and_then(|p| p.pending_update());
                        let books = Books::read(self.store, lead_id, ledger, pending_update, self.outbox_was_empty)?;
                        let live = !lead.deleted && lead.merged_into.is_none();
                        let done_in_crm = activities
                            .iter()
                            .filter(|a| a.completed || a.deleted)
                            .filter_map(|a| a.handoff_key.clone())
                            .collect();
                        let case =
                            undecided_arrival(&evaluation, intake).is_some().then(|| Box::new((lead, activities)));
                        Verdict::Decided { case, live, done_in_crm, evaluation: Box::new(evaluation), books }
                    }
                    Err(e) => Verdict::Failed(e.to_string()),
                }
            }
        };
        Ok(Judged { lead_id: lead_id.to_string(), due_at, prior, verdict })
    }

    /// Writes what `judged` decided into `batch`: the lead's [`LeadState`]
    /// (moving its deadline), the new actions (numbered from `next_seq`,
    /// which is advanced); it clears the lead's dirty mark and drops the
    /// deadline-index entry that brought it here, whatever the new one is.
    pub fn apply(&self, judged: Judged, next_seq: &mut u64, batch: &mut Batch) -> Result<Evaluated, StoreError> {
        apply(self, judged, next_seq, batch)
    }
}

fn apply(cx: &Evaluator<'_>, judged: Judged, next_seq: &mut u64, batch: &mut Batch) -> Result<Evaluated, StoreError> {
    let Evaluator { store, policy, now, .. } = *cx;
    let Judged { lead_id, due_at, prior, verdict } = judged;
    let lead_id = lead_id.as_str();
    let prior = prior.as_ref();
    let mut out = Evaluated::default();
    batch.clear_dirty(lead_id);
    if let Some(at) = due_at {
        batch.drop_deadline(at, lead_id);
    }
    let (case, lead_is_live, done_in_crm, evaluation, books) = match verdict {
        Verdict::NotPulled => return Ok(Evaluated { before: prior.map(PriorState::decode).transpose()?, ..out }),
        Verdict::Decided { case, live, done_in_crm, evaluation, books } => (case, live, done_in_crm, evaluation, books),
        Verdict::Failed(error) => {
            let before = prior.map(PriorState::decode).transpose()?;
            let previous = before.as_ref();
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
                error: Some(error),
                pending_update: previous.and_then(|p| p.pending_update),
                sla_fields: previous.map(|p| p.sla_fields.clone()).unwrap_or_default(),
                qualified_at: previous.and_then(|p| p.qualified_at),
                intake: previous.and_then(|p| p.intake.clone()),
            };
            batch.put_state(lead_id, &state, previous);
            return Ok(Evaluated { before, after: Some(state), ..out });
        }
    };
    let decided = match &case {
        Some(case) => new_intake(cx, &case.0, &case.1, &evaluation, prior.and_then(PriorState::intake), batch)?,
        None => None,
    };
    drop(case);
    let (evaluation, intake) = match decided {
        Some((again, intake)) => (again.map(Box::new).unwrap_or(evaluation), Some(intake)),
        None => (evaluation, prior.and_then(PriorState::intake).cloned()),
    };

    let mut pending_update = prior.and_then(PriorState::pending_update);
    if lead_is_live {
        for action in close_tasks(store, &books, &evaluation, &done_in_crm, batch, &mut out)? {
            batch.enqueue(*next_seq, &action, now);
            *next_seq += 1;
            out.enqueued += 1;
            out.completions += 1;
        }
    }
    for action in &evaluation.actions {
        if books.has(store, action)? {
            continue;
        }
        if matches!(action.kind, ActionKind::UpdateLead { .. }) {
            // The new values say everything the older, unsent ones did.
            if let Some(seq) = pending_update {
                if let Some(old) = books.outbox_entry(store, seq)? {
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
        intake,
    };
    // A verdict that did not change is not written again (a policy change
    // most leads' verdicts do not feel, a deadline that changed nothing),
    // and the metrics, which count verdicts, do not move.
    let encoded = match prior.map(|p| p.compare(&state)).transpose()? {
        Some(Comparison::Same) => {
            batch.keep_state(lead_id, &state, due_at);
            return Ok(out);
        }
        Some(Comparison::Changed(encoded)) => encoded,
        None => None,
    };
    let before = prior.map(PriorState::decode).transpose()?;
    batch.put_compared_state(lead_id, &state, before.as_ref(), encoded);
    Ok(Evaluated { before, after: Some(state), ..out })
}

/// The decision for a lead that arrived at a rep and has none yet: its
/// capacity (`policy.capacity`, recorded in the day's book in `batch`) and
/// whether it came in a detected surge (`policy.surge.detect`, recorded
/// with the org's arrivals), with the lead judged again under it when it
/// is not simply kept (a relaxed window, a move, a surge). Decisions are
/// taken here, one lead at a time in the tick's order, so two leads judged
/// side by side cannot both take a rep's last place of the day.
fn new_intake(
    cx: &Evaluator<'_>,
    lead: &Lead,
    activities: &[Activity],
    evaluation: &Evaluation,
    decided: Option<&Intake>,
    batch: &mut Batch,
) -> Result<Option<(Option<Evaluation>, Intake)>, StoreError> {
    let Some(arrival) = undecided_arrival(evaluation, decided) else { return Ok(None) };
    let policy = cx.policy;
    // The day's loads a capacity decision reads: the rep's, and the group's.
    let mut loads = BTreeMap::new();
    if policy.capacity.is_on() {
        let group = match &policy.capacity.overflow {
            Some(Overflow::LeastLoaded { group, .. }) => group.as_slice(),
            _ => &[],
        };
        for owner in std::iter::once(&arrival.owner_id).chain(group) {
            loads.insert(owner.as_str(), cx.store.intake_load(owner, arrival.day, batch)?);
        }
    }
    let load = |owner: &str, _day| loads.get(owner).copied().unwrap_or(0);
    let away = |owner: &str, day| policy.time_off.get(owner).is_some_and(|days| days.binary_search(&day).is_ok());
    let mut intake = capacity::decide(&policy.capacity, arrival, &load, &away);
    if let Some(decided) = &intake {
        batch.record_intake(decided.counted_for(), decided.day, &lead.id);
    }
    if let Some(detect) = &policy.surge.detect {
        let since = arrival.at - chrono::Duration::hours(1) - detect.cool_down;
        let earlier = cx.store.arrivals_between(since, arrival.at, batch)?;
        let watch = capacity::watch_surge(detect, arrival.at, &earlier);
        batch.record_arrival(arrival.at, &lead.id, watch == SurgeWatch::AtRate);
        let counted = intake.get_or_insert_with(|| Intake::counted(arrival));
        counted.surge = watch.is_surge().then(|| capacity::detected_surge_name(arrival.day));
    }
    let Some(intake) = intake else { return Ok(None) };
    if intake.outcome == Outcome::Kept && intake.surge.is_none() {
        return Ok(Some((None, intake)));
    }
    // The decision changes what the engine concludes; an error here was an
    // error a moment ago too, and the first evaluation stands.
    let again = engine::judge(lead, activities, cx.owners, policy, Some(&intake), cx.now).ok();
    Ok(Some((again, intake)))
}

/// The lead's handoff tasks the engine no longer wants open: a closing
/// action for each one the CRM holds open, and unsent creates dropped from
/// the outbox (into `batch`).
fn close_tasks(
    store: &Store,
    books: &Books,
    evaluation: &Evaluation,
    done_in_crm: &BTreeSet<String>,
    batch: &mut Batch,
    out: &mut Evaluated,
) -> Result<Vec<Action>, StoreError> {
    let open = &evaluation.open_tasks;
    // Queued but not sent: a create no longer wanted is dropped, and a
    // closing of a task wanted again is too.
    for (key, seq) in &books.queued {
        let Some(entry) = books.entries.get(seq) else { continue };
        let unwanted = match &entry.action.kind {
            ActionKind::CreateTask { .. } => !open.contains(&entry.action.key),
            ActionKind::CompleteTask { task_key, .. } => open.contains(task_key),
            _ => false,
        };
        if unwanted {
            tracing::debug!(key = %key, "dropping a queued task change no longer wanted");
            batch.drop_outbox(entry);
            out.dropped += 1;
        }
    }
    let ledger = &books.ledger;
    let closed: BTreeSet<&ActionKey> = ledger
        .values()
        .filter_map(|e| match &e.kind {
            ActionSummary::CompleteTask { task_key } => Some(task_key),
            _ => None,
        })
        .collect();
    // Tasks someone already completed in the CRM need nothing more.
    let mut closings = Vec::new();
    for (key, entry) in ledger {
        let ActionSummary::CreateTask { body, .. } = &entry.kind else { continue };
        let task_key = ActionKey(key.clone());
        if open.contains(&task_key) || closed.contains(&task_key) || done_in_crm.contains(key) {
            continue;
        }
        let done = keys::completion_key(&task_key);
        if books.queued(store, &done)?.is_some() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Leads come back judged in the order they were given, in chunks of
    /// the size asked for, however they were split over threads: what is
    /// queued is numbered in that order. Once the taker says stop, nothing
    /// more comes back.
    #[test]
    fn leads_are_judged_in_the_order_given() {
        let config = crate::config::parse(include_str!("../../config/salesforce.example.toml")).expect("valid");
        let store = Store::in_memory();
        let owners = Owners::new(&[]);
        let evaluator = Evaluator {
            store: &store,
            policy: &config.policy,
            owners: &owners,
            now: Utc::now(),
            outbox_was_empty: true,
            any_opportunities: true,
        };
        let work: Vec<Work> = (0..503).rev().map(|i| (format!("L{i:04}"), None)).collect();
        let given: Vec<&str> = work.iter().map(|(id, _)| id.as_str()).collect();
        for chunk in [1, PIECE, 3 * PIECE + 1, 10_000] {
            let mut order = Vec::new();
            let mut sizes = Vec::new();
            judge_in_order(&evaluator, &work, chunk, |part, judged| -> Result<bool, StoreError> {
                assert_eq!(part.len(), judged.len());
                sizes.push(judged.len());
                order.extend(judged.iter().map(|j| j.lead_id().to_string()));
                Ok(true)
            })
            .unwrap();
            assert_eq!(order, given, "chunks of {chunk}");
            let whole = chunk.div_ceil(PIECE) * PIECE;
            assert!(sizes[..sizes.len() - 1].iter().all(|&n| n == whole), "chunks of {chunk}: {sizes:?}");
        }
        let mut taken = 0;
        judge_in_order(&evaluator, &work, 100, |_, judged| -> Result<bool, StoreError> {
            taken += judged.len();
            Ok(taken < 200)
        })
        .unwrap();
        assert_eq!(taken, 200, "nothing is taken after a stop");
    }

    /// SLA fields that go A → B → A → B: the fourth write-back has the
    /// second's key (B over A), and is sent again; the latest write, and
    /// any task, stays known.
    #[test]
    fn a_write_back_is_done_only_while_it_is_the_latest() {
        let store = Store::in_memory();
        let at = |h: u32| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 2, h, 0, 0).unwrap();
        let entry = |kind: ActionSummary, h: u32| LedgerEntry {
            lead_id: "L1".into(),
            crm_id: "L1".into(),
            done_at: at(h),
            kind,
            attempts: 1,
        };
        let mut batch = Batch::default();
        // A over nothing, B over A, A over B: each confirmed in turn.
        batch.record_ledger("L1:sla:a-over-none:v1", &entry(ActionSummary::UpdateLead, 9));
        batch.record_ledger("L1:sla:b-over-a:v1", &entry(ActionSummary::UpdateLead, 10));
        batch.record_ledger("L1:sla:a-over-b:v1", &entry(ActionSummary::UpdateLead, 11));
        let task = ActionSummary::CreateTask {
            assignee_id: "u1".into(),
            purpose: handoff_model::TaskPurpose::Reminder,
            body: None,
        };
        batch.record_ledger("L1:ft:1:rem:v1", &entry(task, 9));
        store.commit(batch).unwrap();
        let ledger = store.lead_records("L1").unwrap().ledger;
        let books = Books::read(&store, "L1", ledger, None, false).unwrap();
        let update = |key: &str| Action {
            key: ActionKey(key.into()),
            lead_id: "L1".into(),
            kind: ActionKind::UpdateLead { fields: BTreeMap::new() },
        };
        assert!(!books.has(&store, &update("L1:sla:b-over-a:v1")).unwrap(), "B over A again is written");
        assert!(!books.has(&store, &update("L1:sla:a-over-none:v1")).unwrap());
        assert!(books.has(&store, &update("L1:sla:a-over-b:v1")).unwrap(), "the latest write is done");
        assert!(!books.has(&store, &update("L1:sla:new:v1")).unwrap());
        let reminder = Action {
            key: ActionKey("L1:ft:1:rem:v1".into()),
            lead_id: "L1".into(),
            kind: ActionKind::Reassign { to_owner_id: "00G".into() },
        };
        assert!(books.has(&store, &reminder).unwrap(), "any other action is done once");
    }
}
