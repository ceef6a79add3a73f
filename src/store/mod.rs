//! The daemon's state: what it pulled, what it concluded, what it owes the
//! CRM and what it already did.
//!
//! Everything lives in named trees of one key-value [`Backend`] (sled in the
//! daemon, memory in unit tests); nothing outside this module knows which.
//! Every change goes through a [`Batch`] that [`Store::commit`] applies
//! atomically and durably (flushed to disk before it returns), so a crash
//! leaves either all of a batch or none of it.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | name | schema version, outbox sequence, policy fingerprint, the [`Sweep`] under way, activities filed |
//! | `cursors` | stream | the connector's opaque [`Cursor`] |
//! | `leads` | lead id | [`StoredLead`]: the record as last pulled plus the history handoff observed |
//! | `activities` | lead id | its [`Activity`]s in id order (see [`activities`]) |
//! | `activity_buckets` | hash of an activity id | `(activity id, lead id)`s: deletions only name the activity |
//! | `owners` | owner id | [`Owner`] |
//! | `calendars` | calendar id | [`BusinessCalendar`] as the CRM holds it |
//! | `dirty` | lead id | why the lead must be evaluated again |
//! | `states` | lead id | [`LeadState`]: the engine's last word on the lead |
//! | `deadlines` | instant, lead id | (empty): when a lead must be looked at again |
//! | `outbox` | sequence | [`OutboxEntry`]: an action not yet confirmed by the CRM |
//! | `outbox_keys` | action key | sequence |
//! | `ledger` | action key | [`LedgerEntry`]: an action the CRM confirmed |
//! | `errors` | sequence | [`ErrorRecord`]: the last problems, for `handoff state` |
//! | `weekly` | commitment, week | [`WeekRecord`]: scorecard results kept for streaks |
//! | `messages` | sequence | [`MessageEntry`]: a digest or summary not yet delivered (see [`messages`]) |
//! | `message_keys` | message key | sequence |
//! | `quarantine` | stream, record | [`QuarantineRecord`]: a record the connector could not map |
//! | `held` | lead id, stream, record | (empty): a lead not judged while a record of its is quarantined |
//! | `outbox_failed` | sequence | (empty): an outbox entry given up on |
//! | `intake` | day, owner, lead id | (empty): a new MQL the owner took that day, for `policy.capacity` (the last week) |
//! | `arrivals` | instant, lead id | one byte, 1 when it came at a surge's rate: new MQLs, for `policy.surge.detect` (the last two days) |
//! | `counts` | tree name | keys in that tree, kept by every commit (see [`Backend`]) |
//! | `lead_ledger` | lead id | the ledger entries about the lead (see [`ledger`]) |
//! | `opportunities` | opportunity id | [`Opportunity`] |
//! | `lead_opportunities` | lead id, opportunity id | (empty): which opportunities a lead became |
//! | `absences` | absence id | [`Absence`]: a user's time off the CRM records |
//!
//! On disk, `leads`, `states`, `activities` and `lead_ledger` are sections
//! of one value per lead (see [`bundle`]): sled's memory follows its keys.
//!
//! Values are versioned: one format byte, then MessagePack (leads,
//! evaluations, activities, ledger entries) or JSON (the rest),
//! LZ4-compressed when that pays, against dictionaries built into handoff
//! (see [`codec`]). A value written by a newer handoff is refused with a
//! message rather than misread.

mod activities;
mod backend;
mod bundle;
mod codec;
mod ledger;
pub mod messages;
mod prior;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use handoff_model::{
    Absence, Action, ActionKey, ActionKind, Activity, Assignment, BusinessCalendar, Cursor, FieldChange, Lead,
    Opportunity, Owner, Quarantined, StatusChange, Stream, TaskPurpose, WriteError,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use activities::{IndexStep, INDEX_STEP_ACTIVITIES};
pub use backend::{dir_bytes, make_private, Backend, Compacted, MemoryBackend, SledBackend, Tree, Write};
pub use messages::MessageEntry;
pub use prior::{Comparison, EncodedState, PriorState};

use codec::{decode, encode};

use crate::engine::{Clock, ClockKind, ClockStatus};

/// The state database's cache unless `daemon.state_cache_mib` says otherwise.
pub const DEFAULT_CACHE_MIB: u64 = 64;
/// Layout of the trees; bumped when a key or value layout changes.
/// 2: the `counts` and `outbox_failed` trees (a schema-1 store gains them
/// when opened).
/// 3: leads, evaluations, activities and ledger entries compressed against
/// a dictionary (a schema-2 store's values are rewritten when opened).
/// 4: a lead's activities in one value, the activity index in buckets
/// (see [`activities`]; a schema-3 store's are moved when opened).
/// 5: a lead's ledger entries in one value (see [`ledger`]; a schema-4
/// store's are moved when opened).
/// 6: leads, evaluations, activities and ledger entries as MessagePack
/// rather than JSON (see [`codec`]; a schema-5 store's are rewritten when
/// opened).
/// 7: a lead's record, evaluation, activities and ledger file in one value
/// of sled's (see [`bundle`]; a schema-6 store's are moved when opened).
/// 8: the activity index in 2^16 buckets rather than 2^19 (see
/// [`activities`]; a schema-7 store's are gathered when opened).
pub const SCHEMA_VERSION: u64 = 8;
/// How many error records `errors` keeps.
const ERRORS_KEPT: usize = 200;

/// The one error type of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state directory {path}: {message}. Check that it exists, that the daemon's user may write it, and that no other handoff process uses it")]
    Open { path: String, message: String },
    #[error("the state database failed while {doing}: {message}")]
    Io { doing: String, message: String },
    #[error("tree `{tree}` key {key}: {message}")]
    Format { tree: &'static str, key: String, message: String },
    #[error("the state directory was written by a newer handoff (schema {found}, this one reads {SCHEMA_VERSION}); run the newer version or start from an empty state directory")]
    Schema { found: u64 },
}

/// A key for messages: text when it is text, hex otherwise.
fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if s.chars().all(|c| !c.is_control() || c == '\0') => s.replace('\0', "/"),
        _ => key.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Millisecond instants as 8 bytes that sort like the instants do.
fn instant_key(at: DateTime<Utc>) -> [u8; 8] {
    ((at.timestamp_millis() as u64) ^ (1 << 63)).to_be_bytes()
}

fn instant_from_key(bytes: &[u8]) -> Option<DateTime<Utc>> {
    let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    DateTime::from_timestamp_millis((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

fn deadline_key(at: DateTime<Utc>, lead_id: &str) -> Vec<u8> {
    let mut key = instant_key(at).to_vec();
    key.extend_from_slice(lead_id.as_bytes());
    key
}

/// `YYYY-MM-DD \0 owner \0`: the keys of one owner's day in `intake`
/// (days first, so the days past are pruned as one range).
fn intake_prefix(owner_id: &str, day: NaiveDate) -> Vec<u8> {
    let mut key = day.format("%Y-%m-%d").to_string().into_bytes();
    key.push(0);
    key.extend_from_slice(owner_id.as_bytes());
    key.push(0);
    key
}

/// How long the intake book keeps a day, and the arrivals an instant: the
/// decisions they fed are in the leads' states; only today's caps and the
/// last hours' surge watch read them.
pub const INTAKE_KEPT_DAYS: i64 = 7;
pub const ARRIVALS_KEPT_HOURS: i64 = 48;
/// Most keys one prune removes (the rest go on the next tick).
const PRUNE_SLICE: usize = 5_000;

/// `lead id, NUL, other id`: a key listing something of a lead's.
fn lead_pair_key(lead_id: &str, other_id: &str) -> Vec<u8> {
    let mut key = lead_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(other_id.as_bytes());
    key
}

/// Where activities logged on an opportunity only are filed (in place of
/// a lead id; no CRM id starts with `@`).
pub fn opportunity_file(opportunity_id: &str) -> String {
    format!("@opportunity:{opportunity_id}")
}

fn lead_prefix(lead_id: &str) -> Vec<u8> {
    let mut key = lead_id.as_bytes().to_vec();
    key.push(0);
    key
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// What [`Store::lead_records`] reads about one lead.
#[derive(Debug)]
pub struct LeadRecords {
    /// Its last evaluation, decoded only as far as it is read.
    pub state: Option<PriorState>,
    /// The lead and its activities ([`Store::lead_case`]).
    pub case: Option<(Lead, Vec<Activity>)>,
    /// Its ledger entries, by key ([`Store::ledger_with_prefix`]).
    pub ledger: Vec<(String, LedgerEntry)>,
}

/// A lead as the daemon keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLead {
    /// The record as last pulled. Its `assignments` and `status_changes` are
    /// the CRM's own field history when the connector could read it.
    pub lead: Lead,
    /// Owners as successive pulls showed them, each dated at the record's
    /// modification time: the history used when the CRM gives none.
    #[serde(default)]
    pub observed_owners: Vec<Assignment>,
    #[serde(default)]
    pub observed_statuses: Vec<StatusChange>,
    /// Changes to the fields whose history the policy reads (what decides
    /// qualification, the reason code) as successive pulls showed them,
    /// each field starting with its value at creation: used for any field
    /// the CRM gives no history of. A field never seen to change has none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub observed_fields: BTreeMap<String, Vec<FieldChange>>,
    /// Fingerprint of everything a human could change (all fields but
    /// handoff's own SLA fields and the modification stamps): an equal
    /// fingerprint on a later pull means the change was our own write.
    pub watched: String,
    #[serde(with = "handoff_model::stamp")]
    pub first_seen_at: DateTime<Utc>,
}

impl StoredLead {
    /// The lead as the engine should judge it: the CRM's history where it
    /// has one, else what handoff observed.
    pub fn for_engine(&self) -> Lead {
        self.clone().into_engine()
    }

    /// [`StoredLead::for_engine`] without copying the record.
    pub fn into_engine(self) -> Lead {
        let mut lead = self.lead;
        if lead.assignments.is_empty() {
            lead.assignments = self.observed_owners;
        }
        if lead.status_changes.is_empty() {
            lead.status_changes = self.observed_statuses;
        }
        for (field, changes) in self.observed_fields {
            lead.field_history.entry(field).or_insert(changes);
        }
        lead
    }
}

/// The engine's last evaluation of a lead, kept for reports, metrics and
/// the deadline index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadState {
    /// When the engine reached this conclusion. An evaluation that
    /// concludes the same ([`LeadState::same_verdict`]) is not stored
    /// again, so this is when the verdict last changed.
    #[serde(with = "handoff_model::stamp")]
    pub evaluated_at: DateTime<Utc>,
    pub policy_version: u32,
    pub mql: bool,
    pub grade: Option<String>,
    pub segment: Option<String>,
    pub waived: Option<String>,
    pub disqualified_by: Option<String>,
    pub clocks: Vec<Clock>,
    /// When the lead must be evaluated again even if nothing changes.
    #[serde(default, with = "handoff_model::stamp::option")]
    pub next_check_at: Option<DateTime<Utc>>,
    /// Set when the lead could not be evaluated (the engine's message).
    #[serde(default)]
    pub error: Option<String>,
    /// Outbox sequence of the lead's queued SLA-field update, so a newer one
    /// can replace it before it is sent.
    #[serde(default)]
    pub pending_update: Option<u64>,
    /// The SLA fields as they should read in the CRM.
    #[serde(default)]
    pub sla_fields: BTreeMap<String, serde_json::Value>,
    /// When the lead qualified, when that was after its MQL time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(with = "handoff_model::stamp::option")]
    pub qualified_at: Option<DateTime<Utc>>,
    /// What `policy.capacity` decided for the lead's latest arrival.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake: Option<crate::engine::capacity::Intake>,
}

impl LeadState {
    /// Whether `other` says the same about the lead as this state: all of
    /// it but when it was reached and under which policy version.
    pub fn same_verdict(&self, other: &LeadState) -> bool {
        // Spelled out so a new field cannot be forgotten here. What is left
        // out is left out of `prior::NOT_THE_VERDICT` too (judging compares
        // stored evaluations as encoded).
        let LeadState {
            evaluated_at: _,
            policy_version: _,
            mql,
            grade,
            segment,
            waived,
            disqualified_by,
            clocks,
            next_check_at,
            error,
            pending_update,
            sla_fields,
            qualified_at,
            intake,
        } = self;
        *mql == other.mql
            && *grade == other.grade
            && *segment == other.segment
            && *waived == other.waived
            && *disqualified_by == other.disqualified_by
            && *clocks == other.clocks
            && *next_check_at == other.next_check_at
            && *error == other.error
            && *pending_update == other.pending_update
            && *sla_fields == other.sla_fields
            && *qualified_at == other.qualified_at
            && *intake == other.intake
    }
}

/// An action handoff owes the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub action: Action,
    pub enqueued_at: DateTime<Utc>,
    /// Write attempts so far.
    pub attempts: u32,
    /// Not sent again before this instant (backoff, `Retry-After`).
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<WriteError>,
    /// Given up on: the error needs an operator (`handoff state` lists it).
    pub failed: bool,
}

/// An action the CRM confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub lead_id: String,
    /// The record the CRM created or updated.
    pub crm_id: String,
    #[serde(with = "handoff_model::stamp")]
    pub done_at: DateTime<Utc>,
    pub kind: ActionSummary,
    pub attempts: u32,
}

/// What an action was, in the ledger (its payload is not kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActionSummary {
    UpdateLead,
    CreateTask {
        assignee_id: String,
        purpose: TaskPurpose,
        /// What the task said, so the note closing it can follow it
        /// (absent for tasks recorded by an older handoff).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    Reassign {
        to_owner_id: String,
    },
    /// A digest or summary delivered by email or Slack (see [`messages`]).
    Message {
        channel: String,
        recipient: String,
    },
    /// A task handoff created was closed.
    CompleteTask {
        task_key: ActionKey,
    },
}

impl ActionSummary {
    pub fn of(action: &Action) -> ActionSummary {
        match &action.kind {
            ActionKind::UpdateLead { .. } => ActionSummary::UpdateLead,
            ActionKind::CreateTask { assignee_id, purpose, body, .. } => ActionSummary::CreateTask {
                assignee_id: assignee_id.clone(),
                purpose: purpose.clone(),
                body: Some(body.clone()),
            },
            ActionKind::Reassign { to_owner_id } => ActionSummary::Reassign { to_owner_id: to_owner_id.clone() },
            ActionKind::CompleteTask { task_key, .. } => ActionSummary::CompleteTask { task_key: task_key.clone() },
        }
    }
}

/// A problem the daemon met, for `handoff state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub at: DateTime<Utc>,
    /// `sync:leads`, `evaluate`, `write` …
    pub phase: String,
    pub message: String,
}

/// One commitment's result for one week, kept so a streak of misses raises
/// its escalation exactly once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekRecord {
    pub week_start: chrono::NaiveDate,
    pub met: bool,
    pub actual: Option<f64>,
    pub target: Option<f64>,
}

/// A record the connector read but could not map, kept until it is read
/// again readable (or re-read on purpose), with the lead it belongs to held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// What the connector said: stream, id, lead, reason, the raw record
    /// (redacted), the window it was read in.
    pub record: Quarantined,
    /// When it was first quarantined.
    pub first_at: DateTime<Utc>,
    /// When it was last read (and still unreadable).
    pub last_at: DateTime<Utc>,
    /// How many times it was read unreadable.
    pub times: u32,
}

/// The key of a quarantined record in its stream: its id, or a digest of
/// its raw text when it has none.
pub fn quarantine_key(q: &Quarantined) -> String {
    match &q.id {
        Some(id) => id.clone(),
        None => format!("#{}", crate::engine::keys::short_hash(&q.raw, 16)),
    }
}

fn quarantine_tree_key(stream: Stream, key: &str) -> Vec<u8> {
    let mut k = stream.as_str().as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn held_key(lead_id: &str, stream: Stream, key: &str) -> Vec<u8> {
    let mut k = lead_prefix(lead_id);
    k.extend_from_slice(&quarantine_tree_key(stream, key));
    k
}

/// A re-evaluation of every evaluated lead, worked through in lead-id order a window
/// at a time: what a policy change or new time off asks for. One `meta`
/// value says how far it got, where marking every lead dirty would write a
/// key per lead and delete it again.
///
/// A first start's backfill ends with one over every stored lead instead
/// ([`Sweep::every_stored_lead`]): its pages mark no lead dirty, since
/// every lead they bring is new (see [`crate::daemon`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    /// Why every lead is evaluated again (for the log and `handoff state`).
    pub why: String,
    /// The last lead id whose new evaluation is committed; `None` before
    /// the first.
    pub after: Option<String>,
    /// Every lead the store holds, evaluated or not (a first start's
    /// backfill), rather than every evaluated lead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub every_stored_lead: bool,
}

/// The `meta` key of the running [`Sweep`].
const SWEEP: &str = "sweep";

/// How much the store holds, for `handoff state` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub leads: usize,
    pub activities: usize,
    pub owners: usize,
    pub dirty: usize,
    pub deadlines: usize,
    pub outbox: usize,
    pub outbox_failed: usize,
    pub ledger: usize,
    /// Digests and summaries waiting for delivery (failed ones included).
    pub messages: usize,
    pub messages_failed: usize,
    /// Records in quarantine, all streams.
    pub quarantined: usize,
    /// Leads held back from evaluation by a quarantined record.
    pub held: usize,
}

/// Backoff before retry `attempt` (1-based) of a retryable write: 30 s,
/// doubling, at most an hour.
pub fn backoff(attempt: u32) -> chrono::Duration {
    let secs = 30i64.saturating_mul(1i64 << attempt.saturating_sub(1).min(16));
    chrono::Duration::seconds(secs.min(3_600))
}

/// The daemon's state, over some [`Backend`].
pub struct Store {
    backend: Box<dyn Backend>,
    /// Held by [`Store::commit`]: what a commit reads to write (the clock
    /// totals, activity and ledger files) cannot change under it.
    commit_lock: std::sync::Mutex<()>,
}

impl Store {
    /// Opens (creating if needed) the sled database in `dir`, with the
    /// default cache ([`DEFAULT_CACHE_MIB`]).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(dir, DEFAULT_CACHE_MIB)
    }

    /// Opens the database in `dir` with a cache of `cache_mib` MiB
    /// (`daemon.state_cache_mib`).
    pub fn open_with_cache(dir: &Path, cache_mib: u64) -> Result<Store, StoreError> {
        let store = Store::over(Box::new(SledBackend::open(dir, cache_mib.saturating_mul(1 << 20))?));
        store.check_schema()?;
        Ok(store)
    }

    /// Rewrites the database in `dir` compactly (see
    /// [`SledBackend::compact`]); nothing else may have it open.
    pub fn compact(dir: &Path, cache_mib: u64) -> Result<Compacted, StoreError> {
        let done = SledBackend::compact(dir, cache_mib.saturating_mul(1 << 20))?;
        // The copy opens as any store does, counts and all.
        let store = Store::open_with_cache(dir, cache_mib)?;
        let (kept, counted) = (store.counts()?, store.recount()?);
        if kept != counted {
            return Err(StoreError::Io {
                doing: "checking the compacted store".into(),
                message: format!("its counts {kept:?} differ from a recount {counted:?}"),
            });
        }
        Ok(done)
    }

    /// A store that lives in memory only (tests, one-shot tools).
    pub fn in_memory() -> Store {
        Store::over(Box::new(MemoryBackend::default()))
    }

    fn over(backend: Box<dyn Backend>) -> Store {
        Store { backend, commit_lock: std::sync::Mutex::new(()) }
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        match self.meta_u64("schema")? {
            None => {
                let mut batch = Batch::default();
                batch.set_meta_u64("schema", SCHEMA_VERSION);
                self.commit(batch)
            }
            Some(found) if found > SCHEMA_VERSION => Err(StoreError::Schema { found }),
            Some(found) if found < SCHEMA_VERSION => self.upgrade(found),
            Some(_) => Ok(()),
        }
    }

    /// Brings a store written by an older handoff to this schema, step by
    /// step; each step resumes when an earlier open was cut short.
    fn upgrade(&self, found: u64) -> Result<(), StoreError> {
        if found < 7 {
            // First: the steps below read and write these trees where
            // this handoff keeps them.
            tracing::info!(leads = self.backend.count(Tree::Leads)?, "keeping each lead's records in one value (once)");
            self.backend.bundle_leads()?;
        }
        if found < 2 {
            let mut batch = Batch::default();
            self.visit::<OutboxEntry>(Tree::Outbox, SCAN_SLICE, |_, entry| {
                if entry.failed {
                    batch.writes.push(failed_mark(entry.seq));
                }
                Ok(())
            })?;
            self.commit(batch)?;
            let mut batch = Batch::default();
            batch.set_clock_counts(&self.recount_clocks()?);
            self.commit(batch)?;
            // Counted last, so the count includes the marks above.
            self.backend.reset_counts()?;
        }
        if found < 3 {
            // Before dictionaries (and, from schema 1, before compression):
            // every value is framed again as it would be written today. An
            // upgrade cut short resumes here, skipping what it reframed.
            tracing::info!(leads = self.backend.count(Tree::Leads)?, "compressing the stored values again (once)");
            for tree in [Tree::Leads, Tree::Activities, Tree::States, Tree::Outbox, Tree::Ledger, Tree::Messages] {
                self.reframe_tree(tree)?;
            }
        }
        if found < 4 {
            tracing::info!(activities = self.backend.count(Tree::Activities)?, "filing activities per lead (once)");
            self.file_activities_per_lead()?;
        }
        if found < 5 {
            tracing::info!(entries = self.backend.count(Tree::Ledger)?, "filing ledger entries per lead (once)");
            self.file_ledger_per_lead()?;
        }
        if found < 6 {
            // JSON to MessagePack. An upgrade cut short resumes here,
            // skipping what it rewrote.
            tracing::info!(
                leads = self.backend.count(Tree::Leads)?,
                "writing stored records in the binary format (once)"
            );
            for tree in [Tree::Leads, Tree::States, Tree::Activities, Tree::Ledger, Tree::LeadLedger] {
                self.reframe_tree(tree)?;
            }
        }
        if found < 8 {
            tracing::info!(
                buckets = self.backend.count(Tree::ActivityBuckets)?,
                "gathering the activity index into fewer buckets (once)"
            );
            self.slices(Tree::ActivityBuckets, SCAN_SLICE, |entries| {
                let writes = activities::rebucket(self.backend.as_ref(), entries)?;
                if writes.is_empty() {
                    return Ok(());
                }
                self.backend.commit(&writes)
            })?;
        }
        let mut batch = Batch::default();
        batch.set_meta_u64("schema", SCHEMA_VERSION);
        self.commit(batch)?;
        tracing::info!(from = found, to = SCHEMA_VERSION, "state directory upgraded");
        Ok(())
    }

    /// Moves schema 3's activities (one key each, and one index key each)
    /// into files per lead and index buckets (see [`activities`]), a slice
    /// at a time: each commit files a slice and deletes its old keys, so an
    /// upgrade cut short resumes with the keys left.
    fn file_activities_per_lead(&self) -> Result<(), StoreError> {
        self.slices(Tree::Activities, SCAN_SLICE, |entries| {
            let mut batch = Batch::default();
            for (key, value) in entries {
                if !activities::is_schema_three_key(&key) {
                    continue;
                }
                let activity: Activity = decode(Tree::Activities, &key, &value)?;
                batch.put_activity(&activity);
                batch.delete(Tree::Activities, key);
            }
            self.commit(batch)
        })?;
        // Every entry of the old index is in the buckets now.
        loop {
            let entries = self.backend.range(Tree::ActivityIndex, b"", None, SCAN_SLICE)?;
            if entries.is_empty() {
                return Ok(());
            }
            let writes: Vec<Write> =
                entries.into_iter().map(|(key, _)| Write { tree: Tree::ActivityIndex, key, value: None }).collect();
            self.backend.commit(&writes)?;
        }
    }

    /// Moves schema 4's ledger entries about a lead (one key each) into
    /// the lead's file (see [`ledger`]), a slice at a time: each commit
    /// files a slice and deletes its old keys, so an upgrade cut short
    /// resumes with the keys left.
    fn file_ledger_per_lead(&self) -> Result<(), StoreError> {
        self.slices(Tree::Ledger, SCAN_SLICE, |entries| {
            let mut batch = Batch::default();
            for (key, value) in entries {
                let text = String::from_utf8_lossy(&key).into_owned();
                if ledger::file_of(&text).is_none() {
                    continue;
                }
                let entry: LedgerEntry = decode(Tree::Ledger, &key, &value)?;
                batch.record_ledger(&text, &entry);
                batch.delete(Tree::Ledger, key);
            }
            self.commit(batch)
        })
    }

    fn get<T: DeserializeOwned>(&self, tree: Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.backend.get(tree, key)? {
            Some(bytes) => decode(tree, key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn scan<T: DeserializeOwned>(
        &self,
        tree: Tree,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.backend
            .range(tree, from, to, limit)?
            .into_iter()
            .map(|(k, v)| decode(tree, &k, &v).map(|t| (k, t)))
            .collect()
    }

    /// Rewrites the values of `tree` not framed as they would be written
    /// now (see [`codec`]), a slice at a time; what they say is left as it
    /// is.
    fn reframe_tree(&self, tree: Tree) -> Result<(), StoreError> {
        self.slices(tree, SCAN_SLICE, |entries| {
            let mut writes = Vec::new();
            for (key, value) in entries {
                if codec::is_current(tree, &value) {
                    continue;
                }
                let framed = codec::reframed(tree, &key, &value)?;
                if framed != value {
                    writes.push(Write { tree, key, value: Some(framed) });
                }
            }
            if writes.is_empty() {
                return Ok(());
            }
            self.backend.commit(&writes)
        })
    }

    /// Hands `each` the keys and values of `tree` in key order, `slice` at
    /// a time: memory holds one slice, not the tree.
    fn slices(
        &self,
        tree: Tree,
        slice: usize,
        mut each: impl FnMut(backend::Entries) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut from = Vec::new();
        loop {
            let entries = self.backend.range(tree, &from, None, slice)?;
            let Some((last, _)) = entries.last() else { return Ok(()) };
            from = last.clone();
            from.push(0);
            let full = entries.len() == slice;
            each(entries)?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Every key and value of every tree as plain bytes (compressed values
    /// unpacked): what a check for leaked text must read, since the files
    /// on disk hold compressed values.
    pub fn plain_entries(&self) -> Result<Vec<PlainEntry>, StoreError> {
        let mut out = Vec::new();
        for tree in Tree::ALL {
            for (key, value) in self.backend.range(tree, b"", None, usize::MAX)? {
                let plain = match value.first() {
                    Some(&format) if codec::is_compressed(format) => codec::unpacked(&value)
                        .map_err(|message| StoreError::Format { tree: tree.name(), key: show_key(&key), message })?,
                    _ => value,
                };
                out.push((tree.name(), key, plain));
            }
        }
        Ok(out)
    }

    /// Keys and bytes (keys and values as stored) of every tree, walked a
    /// slice at a time: where the state directory's size comes from.
    pub fn footprint(&self) -> Result<Vec<(&'static str, usize, u64)>, StoreError> {
        let mut out = Vec::new();
        for tree in Tree::ALL {
            let (mut keys, mut bytes) = (0usize, 0u64);
            self.slices(tree, SCAN_SLICE, |entries| {
                keys += entries.len();
                bytes += entries.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>();
                Ok(())
            })?;
            out.push((tree.name(), keys, bytes));
        }
        Ok(out)
    }

    /// Calls `each` on every value of `tree` in key order, reading
    /// `slice` keys at a time: memory holds one slice, not the tree.
    fn visit<T: DeserializeOwned>(
        &self,
        tree: Tree,
        slice: usize,
        mut each: impl FnMut(&[u8], T) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.slices(tree, slice, |entries| {
            for (k, v) in entries {
                each(&k, decode(tree, &k, &v)?)?;
            }
            Ok(())
        })
    }

    /// Every lead's last evaluation, one at a time (see [`Store::visit`]).
    pub fn each_state(&self, mut each: impl FnMut(&str, LeadState)) -> Result<(), StoreError> {
        self.visit::<LeadState>(Tree::States, SCAN_SLICE, |k, s| {
            each(&String::from_utf8_lossy(k), s);
            Ok(())
        })
    }

    /// Every lead with its evaluation (none yet for a lead not evaluated),
    /// in id order, a slice at a time (see [`Store::visit`]).
    pub fn each_lead_with_state(&self, mut each: impl FnMut(StoredLead, Option<LeadState>)) -> Result<(), StoreError> {
        self.visit::<StoredLead>(Tree::Leads, SCAN_SLICE, |key, lead| {
            each(lead, self.get::<LeadState>(Tree::States, key)?);
            Ok(())
        })
    }

    /// The re-evaluation of every lead under way, if one is.
    pub fn sweep(&self) -> Result<Option<Sweep>, StoreError> {
        self.get(Tree::Meta, SWEEP.as_bytes())
    }

    /// How many leads have a stored evaluation.
    pub fn evaluated_count(&self) -> Result<usize, StoreError> {
        self.backend.count(Tree::States)
    }

    /// Up to `limit` ids of the leads `sweep` covers after where it got to
    /// (from the first when it has not started), in id order: evaluated
    /// leads (those with a stored evaluation; a lead never evaluated is
    /// dirty, or held until its quarantined record reads well), or every
    /// stored lead for [`Sweep::every_stored_lead`].
    pub fn sweep_ids_after(&self, sweep: &Sweep, limit: usize) -> Result<Vec<String>, StoreError> {
        let from = match &sweep.after {
            Some(id) => lead_prefix(id),
            None => Vec::new(),
        };
        let tree = if sweep.every_stored_lead { Tree::Leads } else { Tree::States };
        Ok(self
            .backend
            .keys(tree, &from, None, limit)?
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }

    fn meta_u64(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.get(Tree::Meta, name.as_bytes())
    }

    pub fn meta_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.get(Tree::Meta, name.as_bytes())
    }

    /// Applies `batch` atomically; durable when this returns.
    pub fn commit(&self, mut batch: Batch) -> Result<(), StoreError> {
        // Commits take turns: what one reads below to write (the totals,
        // the files) cannot change before it is written.
        let _turn = self.commit_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if batch.clock_deltas.values().any(|d| *d != 0) {
            let mut totals = self.clock_counts()?;
            for (key, delta) in std::mem::take(&mut batch.clock_deltas) {
                *totals.entry(key).or_default() += delta;
            }
            batch.set_clock_counts(&totals);
        }
        if !batch.activity_edits.is_empty() {
            let (writes, added) = activities::resolve(self.backend.as_ref(), &batch.activity_edits)?;
            batch.writes.extend(writes);
            self.move_kept_count(&mut batch, activities::ACTIVITY_COUNT, added)?;
        }
        if !batch.ledger_filed.is_empty() {
            let (writes, added) = ledger::resolve(self.backend.as_ref(), &batch.ledger_filed)?;
            batch.writes.extend(writes);
            self.move_kept_count(&mut batch, ledger::FILED_COUNT, added)?;
        }
        if batch.writes.is_empty() {
            return Ok(());
        }
        self.backend.commit(&batch.writes)
    }

    /// Writes into `batch` the count kept in `meta` under `name`, moved by
    /// `added` (commits take turns: nothing moves it in between).
    fn move_kept_count(&self, batch: &mut Batch, name: &str, added: i64) -> Result<(), StoreError> {
        if added != 0 {
            let kept = self.meta_u64(name)?.unwrap_or(0);
            batch.set_meta_u64(name, (kept as i64).saturating_add(added).max(0) as u64);
        }
        Ok(())
    }

    /// Clocks by kind and status over every stored evaluation, as the
    /// commits kept them (`/metrics` reads them at start instead of every
    /// state).
    pub fn clock_counts(&self) -> Result<BTreeMap<(ClockKind, ClockStatus), i64>, StoreError> {
        let stored: Vec<(ClockKind, ClockStatus, i64)> =
            self.get(Tree::Meta, CLOCK_COUNTS.as_bytes())?.unwrap_or_default();
        Ok(stored.into_iter().filter(|(_, _, n)| *n != 0).map(|(k, s, n)| ((k, s), n)).collect())
    }

    /// [`Store::clock_counts`] counted state by state.
    pub fn recount_clocks(&self) -> Result<BTreeMap<(ClockKind, ClockStatus), i64>, StoreError> {
        let mut counts: BTreeMap<(ClockKind, ClockStatus), i64> = BTreeMap::new();
        self.each_state(|_, state| {
            for c in &state.clocks {
                *counts.entry((c.kind, c.status)).or_default() += 1;
            }
        })?;
        Ok(counts)
    }

    pub fn cursor(&self, stream: Stream) -> Result<Option<Cursor>, StoreError> {
        self.get(Tree::Cursors, stream.as_str().as_bytes())
    }

    pub fn lead(&self, id: &str) -> Result<Option<StoredLead>, StoreError> {
        self.get(Tree::Leads, id.as_bytes())
    }

    /// Every lead, in id order (reports; the daemon itself never scans).
    pub fn leads(&self) -> Result<Vec<StoredLead>, StoreError> {
        Ok(self.scan::<StoredLead>(Tree::Leads, b"", None, usize::MAX)?.into_iter().map(|(_, l)| l).collect())
    }

    /// The activities filed under `lead_id`, in id order.
    pub fn activities_of(&self, lead_id: &str) -> Result<Vec<Activity>, StoreError> {
        Ok(self.get(Tree::Activities, lead_id.as_bytes())?.unwrap_or_default())
    }

    /// What the engine judges a lead by: the lead with the opportunities it
    /// became joined in, and its activities with those logged on its
    /// opportunities only. `None` when the lead was never pulled.
    pub fn lead_case(&self, lead_id: &str) -> Result<Option<(Lead, Vec<Activity>)>, StoreError> {
        Ok(self.lead_records(lead_id)?.case)
    }

    /// Everything an evaluation of `lead_id` reads about it: its state,
    /// [`Store::lead_case`] and its ledger entries. Kept under the lead's
    /// id, they are one read of the sled store (see [`bundle`]).
    pub fn lead_records(&self, lead_id: &str) -> Result<LeadRecords, StoreError> {
        self.lead_records_given(lead_id, true)
    }

    /// [`Store::lead_records`] for a reader that knows whether any lead has
    /// become an opportunity ([`Store::any_opportunities`], read once for
    /// many leads): with none, each lead's opportunities are not looked for.
    pub fn lead_records_given(&self, lead_id: &str, any_opportunities: bool) -> Result<LeadRecords, StoreError> {
        const OWN: [Tree; 4] = [Tree::Leads, Tree::States, Tree::Activities, Tree::LeadLedger];
        let key = lead_id.as_bytes();
        fn read<T: DeserializeOwned>(tree: Tree, key: &[u8], bytes: Option<&Vec<u8>>) -> Result<Option<T>, StoreError> {
            bytes.map(|b| decode(tree, key, b)).transpose()
        }
        let values = self.backend.get_each(&OWN, key)?;
        let [stored, state, activities, ledger] = [0, 1, 2, 3].map(|i| values.get(i).and_then(Option::as_ref));
        let state = state.map(|bytes| PriorState::read(lead_id, bytes)).transpose()?;
        let prefix = crate::engine::keys::lead_prefix(lead_id);
        // The lead's ledger file is named by its key segment: its id unless
        // the id had to be hashed.
        let ledger = if ledger::file_of(&prefix) == Some(lead_id) {
            let file: ledger::LedgerFile = read(Tree::LeadLedger, key, ledger)?.unwrap_or_default();
            file.into_iter().filter(|(k, _)| k.starts_with(&prefix)).collect()
        } else {
            self.ledger_with_prefix(&prefix)?
        };
        let Some(stored) = read::<StoredLead>(Tree::Leads, key, stored)? else {
            return Ok(LeadRecords { state, case: None, ledger });
        };
        let mut lead = stored.into_engine();
        let mut activities: Vec<Activity> = read(Tree::Activities, key, activities)?.unwrap_or_default();
        if any_opportunities {
            lead.opportunities = self.opportunities_of(lead_id)?;
        }
        for opportunity in &lead.opportunities {
            activities.extend(self.activities_of(&opportunity_file(&opportunity.id))?);
        }
        Ok(LeadRecords { state, case: Some((lead, activities)), ledger })
    }

    pub fn absence(&self, id: &str) -> Result<Option<Absence>, StoreError> {
        self.get(Tree::Absences, id.as_bytes())
    }

    /// Every absence the CRM records (a few per user and month).
    pub fn absences(&self) -> Result<Vec<Absence>, StoreError> {
        Ok(self.scan::<Absence>(Tree::Absences, b"", None, usize::MAX)?.into_iter().map(|(_, a)| a).collect())
    }

    pub fn opportunity(&self, id: &str) -> Result<Option<Opportunity>, StoreError> {
        self.get(Tree::Opportunities, id.as_bytes())
    }

    /// The opportunities `lead_id` became, in id order.
    pub fn opportunities_of(&self, lead_id: &str) -> Result<Vec<Opportunity>, StoreError> {
        let prefix = lead_prefix(lead_id);
        let end = prefix_end(&prefix);
        let mut out = Vec::new();
        for (key, _) in self.backend.range(Tree::LeadOpportunities, &prefix, end.as_deref(), usize::MAX)? {
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Some(opportunity) = self.opportunity(&id)? {
                out.push(opportunity);
            }
        }
        Ok(out)
    }

    /// Every activity (reports).
    pub fn all_activities(&self) -> Result<Vec<Activity>, StoreError> {
        let mut all = Vec::new();
        self.visit::<Vec<Activity>>(Tree::Activities, SCAN_SLICE, |_, file| {
            all.extend(file);
            Ok(())
        })?;
        Ok(all)
    }

    /// The lead an activity is filed under.
    pub fn activity_lead(&self, activity_id: &str) -> Result<Option<String>, StoreError> {
        let bucket: activities::Bucket =
            self.get(Tree::ActivityBuckets, &activities::bucket(activity_id))?.unwrap_or_default();
        Ok(activities::lead_in(&bucket, activity_id))
    }

    pub fn owner(&self, id: &str) -> Result<Option<Owner>, StoreError> {
        self.get(Tree::Owners, id.as_bytes())
    }

    pub fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        Ok(self.scan::<Owner>(Tree::Owners, b"", None, usize::MAX)?.into_iter().map(|(_, o)| o).collect())
    }

    pub fn calendars(&self) -> Result<Vec<BusinessCalendar>, StoreError> {
        Ok(self.scan::<BusinessCalendar>(Tree::Calendars, b"", None, usize::MAX)?.into_iter().map(|(_, c)| c).collect())
    }

    /// Up to `limit` leads waiting to be evaluated again.
    pub fn dirty(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        Ok(self
            .backend
            .range(Tree::Dirty, b"", None, limit)?
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }

    pub fn state(&self, lead_id: &str) -> Result<Option<LeadState>, StoreError> {
        self.get(Tree::States, lead_id.as_bytes())
    }

    /// Drops the intake book's days and the arrivals too old for any
    /// decision to read (see [`INTAKE_KEPT_DAYS`]), a slice at a time;
    /// returns how many keys went.
    pub fn prune_books(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut batch = Batch::default();
        let oldest_day = (now - chrono::Duration::days(INTAKE_KEPT_DAYS)).date_naive();
        let day_end = oldest_day.format("%Y-%m-%d").to_string().into_bytes();
        for (key, _) in self.backend.range(Tree::Intake, b"", Some(&day_end), PRUNE_SLICE)? {
            batch.delete(Tree::Intake, key);
        }
        let instant_end = instant_key(now - chrono::Duration::hours(ARRIVALS_KEPT_HOURS));
        for (key, _) in self.backend.range(Tree::Arrivals, b"", Some(&instant_end), PRUNE_SLICE)? {
            batch.delete(Tree::Arrivals, key);
        }
        let pruned = batch.len();
        if pruned > 0 {
            self.commit(batch)?;
        }
        Ok(pruned)
    }

    /// The intake book as it stands (the last week at most): new MQLs per
    /// day and owner, oldest day first.
    pub fn intake_book(&self) -> Result<BTreeMap<(NaiveDate, String), u32>, StoreError> {
        let mut out = BTreeMap::new();
        for (key, _) in self.backend.range(Tree::Intake, b"", None, usize::MAX)? {
            let mut parts = key.split(|b| *b == 0);
            let (Some(day), Some(owner)) = (parts.next(), parts.next()) else { continue };
            let Some(day) = std::str::from_utf8(day).ok().and_then(|d| d.parse::<NaiveDate>().ok()) else { continue };
            *out.entry((day, String::from_utf8_lossy(owner).into_owned())).or_default() += 1;
        }
        Ok(out)
    }

    /// The arrivals counted in `[from, to]` (instant, whether it came at a
    /// surge's rate), those `pending` records included.
    pub fn arrivals_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        pending: &Batch,
    ) -> Result<Vec<(DateTime<Utc>, bool)>, StoreError> {
        let end = instant_key(to + chrono::Duration::milliseconds(1));
        let mut out: Vec<(DateTime<Utc>, bool)> = self
            .backend
            .range(Tree::Arrivals, &instant_key(from), Some(&end), usize::MAX)?
            .into_iter()
            .filter_map(|(k, v)| Some((instant_from_key(&k)?, v.first() == Some(&1))))
            .collect();
        out.extend(pending.arrivals_added.iter().filter(|(at, _)| (from..=to).contains(at)));
        Ok(out)
    }

    /// New MQLs `owner_id` took on `day` (see `policy.capacity`), those
    /// `pending` records but has not committed included.
    pub fn intake_load(&self, owner_id: &str, day: NaiveDate, pending: &Batch) -> Result<u32, StoreError> {
        let prefix = intake_prefix(owner_id, day);
        let end = prefix_end(&prefix);
        let stored = self.backend.range(Tree::Intake, &prefix, end.as_deref(), usize::MAX)?.len();
        let added = pending.intake_added.get(&(owner_id.to_string(), day)).copied().unwrap_or(0);
        Ok(u32::try_from(stored).unwrap_or(u32::MAX).saturating_add(added))
    }

    /// Every lead's last evaluation, by lead id.
    pub fn states(&self) -> Result<BTreeMap<String, LeadState>, StoreError> {
        Ok(self
            .scan::<LeadState>(Tree::States, b"", None, usize::MAX)?
            .into_iter()
            .map(|(k, s)| (String::from_utf8_lossy(&k).into_owned(), s))
            .collect())
    }

    /// Up to `limit` leads whose next check is at or before `now`, earliest first.
    pub fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        let end = instant_key(now + chrono::Duration::milliseconds(1));
        Ok(self
            .backend
            .range(Tree::Deadlines, b"", Some(&end), limit)?
            .into_iter()
            .filter_map(|(k, _)| Some((instant_from_key(&k)?, String::from_utf8_lossy(k.get(8..)?).into_owned())))
            .collect())
    }

    /// The earliest deadline in the index.
    pub fn next_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.backend.range(Tree::Deadlines, b"", None, 1)?.first().and_then(|(k, _)| instant_from_key(k)))
    }

    /// Up to `limit` outbox entries that may be sent at `now`, oldest first.
    pub fn outbox_ready(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        let mut from = Vec::new();
        // Failed or backing-off entries are skipped; read in slices so a
        // long tail of those does not cost one huge read.
        loop {
            let slice = self.scan::<OutboxEntry>(Tree::Outbox, &from, None, 1_000)?;
            let Some((last_key, _)) = slice.last() else { break };
            from = last_key.clone();
            from.push(0);
            let full = slice.len() == 1_000;
            out.extend(slice.into_iter().map(|(_, e)| e).filter(|e| !e.failed && e.next_attempt_at <= now));
            if out.len() >= limit || !full {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Every outbox entry, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self.scan::<OutboxEntry>(Tree::Outbox, b"", None, usize::MAX)?.into_iter().map(|(_, e)| e).collect())
    }

    /// The outbox entries given up on, oldest first (read through their
    /// marks: the rest of the outbox is not decoded).
    pub fn failed_outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        for (key, _) in self.backend.range(Tree::OutboxFailed, b"", None, usize::MAX)? {
            if let Some(entry) = self.get::<OutboxEntry>(Tree::Outbox, &key)? {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// The outbox sequence of a queued action.
    pub fn queued(&self, key: &ActionKey) -> Result<Option<u64>, StoreError> {
        self.get(Tree::OutboxKeys, key.as_str().as_bytes())
    }

    pub fn outbox_entry(&self, seq: u64) -> Result<Option<OutboxEntry>, StoreError> {
        self.get(Tree::Outbox, &seq.to_be_bytes())
    }

    pub fn ledger(&self, key: &ActionKey) -> Result<Option<LedgerEntry>, StoreError> {
        match ledger::file_of(key.as_str()) {
            Some(name) => Ok(ledger::find(&self.ledger_file(name)?, key.as_str()).cloned()),
            None => self.get(Tree::Ledger, key.as_str().as_bytes()),
        }
    }

    fn ledger_file(&self, name: &str) -> Result<ledger::LedgerFile, StoreError> {
        Ok(self.get(Tree::LeadLedger, name.as_bytes())?.unwrap_or_default())
    }

    /// Ledger entries whose key starts with `prefix` (every action about
    /// one lead: see `engine::keys::lead_prefix`), by key. A prefix naming
    /// a lead reads that lead's file.
    pub fn ledger_with_prefix(&self, prefix: &str) -> Result<Vec<(String, LedgerEntry)>, StoreError> {
        if let Some(name) = ledger::file_of(prefix) {
            // Every key starting with `prefix` is filed under `name`.
            let mut file = self.ledger_file(name)?;
            file.retain(|(k, _)| k.starts_with(prefix));
            return Ok(file);
        }
        if prefix.contains(':') {
            // Every key starting with `prefix` is kept on its own.
            let end = prefix_end(prefix.as_bytes());
            return Ok(self
                .scan::<LedgerEntry>(Tree::Ledger, prefix.as_bytes(), end.as_deref(), usize::MAX)?
                .into_iter()
                .map(|(k, e)| (String::from_utf8_lossy(&k).into_owned(), e))
                .collect());
        }
        let mut all = self.ledger_entries()?;
        all.retain(|(k, _)| k.starts_with(prefix));
        Ok(all)
    }

    /// Queued actions whose key starts with `prefix`: (key, sequence).
    pub fn queued_with_prefix(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let end = prefix_end(prefix.as_bytes());
        Ok(self
            .scan::<u64>(Tree::OutboxKeys, prefix.as_bytes(), end.as_deref(), usize::MAX)?
            .into_iter()
            .map(|(k, seq)| (String::from_utf8_lossy(&k).into_owned(), seq))
            .collect())
    }

    /// Every ledger entry by action key.
    pub fn ledger_entries(&self) -> Result<Vec<(String, LedgerEntry)>, StoreError> {
        let mut all: Vec<(String, LedgerEntry)> = self
            .scan::<LedgerEntry>(Tree::Ledger, b"", None, usize::MAX)?
            .into_iter()
            .map(|(k, e)| (String::from_utf8_lossy(&k).into_owned(), e))
            .collect();
        self.visit::<ledger::LedgerFile>(Tree::LeadLedger, SCAN_SLICE, |_, file| {
            all.extend(file);
            Ok(())
        })?;
        all.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(all)
    }

    /// The next free outbox sequence number.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.meta_u64("outbox_seq")?.unwrap_or(1))
    }

    /// The last `limit` errors, newest first.
    pub fn errors(&self, limit: usize) -> Result<Vec<ErrorRecord>, StoreError> {
        let mut all: Vec<ErrorRecord> =
            self.scan::<ErrorRecord>(Tree::Errors, b"", None, usize::MAX)?.into_iter().map(|(_, e)| e).collect();
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }

    /// Keys of the error records beyond the newest [`ERRORS_KEPT`].
    fn stale_error_keys(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let keys: Vec<Vec<u8>> =
            self.backend.range(Tree::Errors, b"", None, usize::MAX)?.into_iter().map(|(k, _)| k).collect();
        let excess = keys.len().saturating_sub(ERRORS_KEPT);
        Ok(keys.into_iter().take(excess).collect())
    }

    /// Records an error in its own small commit, trimming old ones.
    pub fn record_error(&self, at: DateTime<Utc>, phase: &str, message: &str) -> Result<(), StoreError> {
        let seq = self.meta_u64("error_seq")?.unwrap_or(1);
        let mut batch = Batch::default();
        batch.put(
            Tree::Errors,
            seq.to_be_bytes().to_vec(),
            &ErrorRecord { at, phase: phase.to_string(), message: handoff_model::redact(message) },
        );
        batch.set_meta_u64("error_seq", seq + 1);
        for key in self.stale_error_keys()? {
            batch.delete(Tree::Errors, key);
        }
        self.commit(batch)
    }

    /// The quarantined record of `stream` under `key`, if any.
    pub fn quarantined(&self, stream: Stream, key: &str) -> Result<Option<QuarantineRecord>, StoreError> {
        self.get(Tree::Quarantine, &quarantine_tree_key(stream, key))
    }

    /// Every quarantined record, by stream and key.
    pub fn quarantine(&self) -> Result<Vec<QuarantineRecord>, StoreError> {
        Ok(self
            .scan::<QuarantineRecord>(Tree::Quarantine, b"", None, usize::MAX)?
            .into_iter()
            .map(|(_, q)| q)
            .collect())
    }

    /// Whether a quarantined record holds `lead_id` back from evaluation.
    pub fn is_held(&self, lead_id: &str) -> Result<bool, StoreError> {
        let prefix = lead_prefix(lead_id);
        let end = prefix_end(&prefix);
        Ok(!self.backend.keys(Tree::Held, &prefix, end.as_deref(), 1)?.is_empty())
    }

    /// Whether any quarantined record holds a lead back (a point read).
    pub fn holds_any(&self) -> Result<bool, StoreError> {
        Ok(self.backend.count(Tree::Held)? > 0)
    }

    /// Whether any lead has become an opportunity (a point read).
    pub fn any_opportunities(&self) -> Result<bool, StoreError> {
        Ok(self.backend.count(Tree::LeadOpportunities)? > 0)
    }

    /// Whether no action waits in the outbox (a point read).
    pub fn outbox_is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.backend.count(Tree::OutboxKeys)? == 0)
    }

    /// Every held lead, in id order.
    pub fn held_leads(&self) -> Result<Vec<String>, StoreError> {
        let mut leads: Vec<String> = self
            .backend
            .range(Tree::Held, b"", None, usize::MAX)?
            .into_iter()
            .filter_map(|(k, _)| k.split(|b| *b == 0).next().map(|l| String::from_utf8_lossy(l).into_owned()))
            .collect();
        leads.dedup();
        Ok(leads)
    }

    pub fn week_record(
        &self,
        commitment: &str,
        week_start: chrono::NaiveDate,
    ) -> Result<Option<WeekRecord>, StoreError> {
        self.get(Tree::Weekly, week_key(commitment, week_start).as_bytes())
    }

    /// How much the store holds, from the counts every commit keeps (point
    /// reads; the message queue and the held leads, both small, are read).
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let activities = self.meta_u64(activities::ACTIVITY_COUNT)?.unwrap_or(0) as usize;
        let filed = self.meta_u64(ledger::FILED_COUNT)?.unwrap_or(0) as usize;
        self.counts_by(|tree| self.backend.count(tree), self.backend.count(Tree::OutboxFailed)?, activities, filed)
    }

    /// [`Store::counts`] counted key by key and entry by entry: what the
    /// kept counts must equal (tests, upgrades).
    pub fn recount(&self) -> Result<Counts, StoreError> {
        let mut outbox_failed = 0;
        self.visit::<OutboxEntry>(Tree::Outbox, SCAN_SLICE, |_, e| {
            outbox_failed += usize::from(e.failed);
            Ok(())
        })?;
        let mut activities = 0;
        self.visit::<Vec<Activity>>(Tree::Activities, SCAN_SLICE, |_, file| {
            activities += file.len();
            Ok(())
        })?;
        let mut filed = 0;
        self.visit::<ledger::LedgerFile>(Tree::LeadLedger, SCAN_SLICE, |_, file| {
            filed += file.len();
            Ok(())
        })?;
        self.counts_by(|tree| self.backend.recount(tree), outbox_failed, activities, filed)
    }

    fn counts_by(
        &self,
        count: impl Fn(Tree) -> Result<usize, StoreError>,
        outbox_failed: usize,
        activities: usize,
        ledger_filed: usize,
    ) -> Result<Counts, StoreError> {
        Ok(Counts {
            leads: count(Tree::Leads)?,
            activities,
            owners: count(Tree::Owners)?,
            dirty: count(Tree::Dirty)?,
            deadlines: count(Tree::Deadlines)?,
            outbox: count(Tree::Outbox)?,
            outbox_failed,
            ledger: count(Tree::Ledger)? + ledger_filed,
            messages: count(Tree::Messages)?,
            messages_failed: self.messages()?.iter().filter(|e| e.failed).count(),
            quarantined: count(Tree::Quarantine)?,
            held: self.held_leads()?.len(),
        })
    }

    /// Records held back because they could not be mapped (the per-stream
    /// quarantine); `run --once` exits with [`crate::exit::QUARANTINED`]
    /// when this is above zero.
    pub fn quarantined_count(&self) -> Result<usize, StoreError> {
        self.backend.count(Tree::Quarantine)
    }

    /// Blocks until everything committed is on disk (commits already are;
    /// this is for shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.backend.flush()
    }
}

/// A tree's name, a key and its value unpacked ([`Store::plain_entries`]).
pub type PlainEntry = (&'static str, Vec<u8>, Vec<u8>);

/// The `meta` key of [`Store::clock_counts`].
const CLOCK_COUNTS: &str = "clock_counts";

/// Keys read per slice when a whole tree is walked.
const SCAN_SLICE: usize = 1_000;

/// The mark that counts an outbox entry as given up on.
fn failed_mark(seq: u64) -> Write {
    Write { tree: Tree::OutboxFailed, key: seq.to_be_bytes().to_vec(), value: Some(Vec::new()) }
}

fn week_key(commitment: &str, week_start: chrono::NaiveDate) -> String {
    format!("{commitment}\0{week_start}")
}

/// Writes to apply together. Built by the daemon, applied by
/// [`Store::commit`]; an encoding failure is remembered and reported there.
#[derive(Default)]
pub struct Batch {
    writes: Vec<Write>,
    error: Option<String>,
    /// Clocks by kind and status the batch's states add (or remove), kept
    /// in `meta` as [`Store::clock_counts`] when it is committed.
    clock_deltas: BTreeMap<(ClockKind, ClockStatus), i64>,
    /// The clocks of each state put in this batch: a second put of the same
    /// lead replaces them, whatever `previous` its caller read.
    put_clocks: std::collections::HashMap<String, Vec<(ClockKind, ClockStatus)>>,
    /// New MQLs recorded in this batch per (owner, day), so decisions taken
    /// before it is committed count them.
    intake_added: BTreeMap<(String, NaiveDate), u32>,
    /// Arrivals recorded in this batch (instant, at a surge's rate).
    arrivals_added: Vec<(DateTime<Utc>, bool)>,
    /// Activity changes, applied to the stored files when committed.
    activity_edits: Vec<activities::ActivityEdit>,
    /// Ledger entries about a lead, filed into its file when committed.
    ledger_filed: Vec<(String, LedgerEntry)>,
    /// Activities whose deletion this batch left waiting for the deferred
    /// activity index.
    deletions_waiting: BTreeSet<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.activity_edits.is_empty() && self.ledger_filed.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writes.len() + self.activity_edits.len() + self.ledger_filed.len()
    }

    fn put<T: Serialize>(&mut self, tree: Tree, key: Vec<u8>, value: &T) {
        match encode(tree, &key, value) {
            Ok(bytes) => self.writes.push(Write { tree, key, value: Some(bytes) }),
            Err(e) => {
                self.error.get_or_insert(e.to_string());
            }
        }
    }

    fn delete(&mut self, tree: Tree, key: Vec<u8>) {
        self.writes.push(Write { tree, key, value: None });
    }

    /// The values this batch writes to the states tree, by lead.
    #[cfg(test)]
    fn state_writes(&self) -> Vec<(&[u8], Option<&[u8]>)> {
        self.writes.iter().filter(|w| w.tree == Tree::States).map(|w| (&w.key[..], w.value.as_deref())).collect()
    }

    /// The first encoding problem, if any (the daemon refuses to commit then).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn set_clock_counts(&mut self, totals: &BTreeMap<(ClockKind, ClockStatus), i64>) {
        let stored: Vec<(ClockKind, ClockStatus, i64)> =
            totals.iter().filter(|(_, n)| **n != 0).map(|((k, s), n)| (*k, *s, *n)).collect();
        self.put(Tree::Meta, CLOCK_COUNTS.as_bytes().to_vec(), &stored);
    }

    fn set_meta_u64(&mut self, name: &str, value: u64) {
        self.put(Tree::Meta, name.as_bytes().to_vec(), &value);
    }

    pub fn set_meta_text(&mut self, name: &str, value: &str) {
        self.put(Tree::Meta, name.as_bytes().to_vec(), &value);
    }

    /// Starts (or moves on) the re-evaluation of every lead.
    pub fn set_sweep(&mut self, sweep: &Sweep) {
        self.put(Tree::Meta, SWEEP.as_bytes().to_vec(), sweep);
    }

    /// Ends the re-evaluation of every lead: the last lead is done.
    pub fn end_sweep(&mut self) {
        self.delete(Tree::Meta, SWEEP.as_bytes().to_vec());
    }

    pub fn set_cursor(&mut self, stream: Stream, cursor: &Cursor) {
        self.put(Tree::Cursors, stream.as_str().as_bytes().to_vec(), cursor);
    }

    pub fn clear_cursor(&mut self, stream: Stream) {
        self.delete(Tree::Cursors, stream.as_str().as_bytes().to_vec());
    }

    pub fn put_lead(&mut self, lead: &StoredLead) {
        self.put(Tree::Leads, lead.lead.id.as_bytes().to_vec(), lead);
    }

    /// Files `activity` under its lead (replacing the one with its id).
    pub fn put_activity(&mut self, activity: &Activity) {
        self.activity_edits.push(activities::ActivityEdit::Put(activity.clone()));
    }

    /// Files `activity` under its lead without pointing the activity index
    /// at it: the index is deferred ([`Store::activity_index_deferred`]),
    /// and built from the files later. `deletion_waited`: the store holds
    /// a waiting deletion of it, which this filing overtakes (as does one
    /// left by this batch).
    pub fn file_activity(&mut self, activity: &Activity, deletion_waited: bool) {
        if self.deletions_waiting.remove(&activity.id) || deletion_waited {
            self.delete(Tree::Meta, activities::waiting_deletion(&activity.id));
        }
        self.activity_edits.push(activities::ActivityEdit::File(activity.clone()));
    }

    /// Leaves the deletion of `activity_id` waiting for the deferred
    /// activity index, which alone knows the lead it is filed under.
    pub fn wait_with_deletion(&mut self, activity_id: &str) {
        self.put(Tree::Meta, activities::waiting_deletion(activity_id), &());
        self.deletions_waiting.insert(activity_id.to_string());
    }

    /// Defers the activity index: a fresh store's first backfill files
    /// activities without it (see [`activities`]).
    pub fn defer_activity_index(&mut self) {
        self.set_meta_text(activities::INDEX_DEFERRED, "");
    }

    /// Removes an activity filed under `lead_id` (it moved or was deleted).
    pub fn remove_activity(&mut self, lead_id: &str, activity_id: &str, keep_index: bool) {
        self.activity_edits.push(activities::ActivityEdit::Remove {
            lead_id: lead_id.to_string(),
            activity_id: activity_id.to_string(),
            keep_index,
        });
    }

    /// Stores an opportunity and moves its leads' index entries from
    /// `previous`'s leads to its own.
    pub fn put_opportunity(&mut self, opportunity: &Opportunity, previous: Option<&Opportunity>) {
        if let Some(previous) = previous {
            for lead in previous.lead_ids.iter().filter(|l| !opportunity.lead_ids.contains(l)) {
                self.delete(Tree::LeadOpportunities, lead_pair_key(lead, &opportunity.id));
            }
        }
        for lead in &opportunity.lead_ids {
            self.put(Tree::LeadOpportunities, lead_pair_key(lead, &opportunity.id), &"");
        }
        self.put(Tree::Opportunities, opportunity.id.as_bytes().to_vec(), opportunity);
    }

    pub fn put_absence(&mut self, absence: &Absence) {
        self.put(Tree::Absences, absence.id.as_bytes().to_vec(), absence);
    }

    pub fn remove_absence(&mut self, id: &str) {
        self.delete(Tree::Absences, id.as_bytes().to_vec());
    }

    pub fn put_owner(&mut self, owner: &Owner) {
        self.put(Tree::Owners, owner.id.as_bytes().to_vec(), owner);
    }

    pub fn put_calendar(&mut self, calendar: &BusinessCalendar) {
        self.put(Tree::Calendars, calendar.id.as_bytes().to_vec(), calendar);
    }

    pub fn mark_dirty(&mut self, lead_id: &str, why: &str) {
        self.put(Tree::Dirty, lead_id.as_bytes().to_vec(), &why);
    }

    pub fn clear_dirty(&mut self, lead_id: &str) {
        self.delete(Tree::Dirty, lead_id.as_bytes().to_vec());
    }

    /// Stores a lead's evaluation and moves its entry in the deadline index
    /// from `previous`'s next check to the new one.
    pub fn put_state(&mut self, lead_id: &str, state: &LeadState, previous: Option<&LeadState>) {
        self.put_compared_state(lead_id, state, previous, None);
    }

    /// [`Batch::put_state`] for a state [`PriorState::compare`] found
    /// changed, with the encoding it made of `state` (if it made one).
    pub fn put_compared_state(
        &mut self,
        lead_id: &str,
        state: &LeadState,
        previous: Option<&LeadState>,
        encoded: Option<EncodedState>,
    ) {
        let clocks: Vec<(ClockKind, ClockStatus)> = state.clocks.iter().map(|c| (c.kind, c.status)).collect();
        let replaced = match self.put_clocks.insert(lead_id.to_string(), clocks.clone()) {
            Some(earlier) => earlier,
            None => previous.iter().flat_map(|p| &p.clocks).map(|c| (c.kind, c.status)).collect(),
        };
        for key in replaced {
            *self.clock_deltas.entry(key).or_default() -= 1;
        }
        for key in clocks {
            *self.clock_deltas.entry(key).or_default() += 1;
        }
        if let Some(old) = previous.and_then(|p| p.next_check_at) {
            if Some(old) != state.next_check_at {
                self.delete(Tree::Deadlines, deadline_key(old, lead_id));
            }
        }
        if let Some(at) = state.next_check_at {
            self.writes.push(Write { tree: Tree::Deadlines, key: deadline_key(at, lead_id), value: Some(Vec::new()) });
        }
        match (&state.error, encoded) {
            // The engine's message may quote a field the CRM sent.
            (Some(e), _) => {
                let clean = LeadState { error: Some(handoff_model::redact(e)), ..state.clone() };
                self.put(Tree::States, lead_id.as_bytes().to_vec(), &clean);
            }
            (None, Some(EncodedState(body))) => self.writes.push(Write {
                tree: Tree::States,
                key: lead_id.as_bytes().to_vec(),
                value: Some(codec::packed(Tree::States, &body)),
            }),
            (None, None) => self.put(Tree::States, lead_id.as_bytes().to_vec(), state),
        }
    }

    /// Leaves a lead's stored evaluation as it is — the new one, `state`,
    /// concluded the same — but puts its deadline entry back when the entry
    /// that brought the lead here (`due_at`, dropped by this batch) was
    /// that one. A lead that came for another reason (dirty, a sweep) keeps
    /// its entry as it is: the stored evaluation's next check is the same,
    /// and writing it again would cost a tree write for nothing.
    pub fn keep_state(&mut self, lead_id: &str, state: &LeadState, due_at: Option<DateTime<Utc>>) {
        if let Some(at) = state.next_check_at.filter(|at| Some(*at) == due_at) {
            self.writes.push(Write { tree: Tree::Deadlines, key: deadline_key(at, lead_id), value: Some(Vec::new()) });
        }
    }

    /// Counts `lead_id` among the new MQLs `owner_id` took on `day` (once:
    /// a second record of the same lead is one key).
    pub fn record_intake(&mut self, owner_id: &str, day: NaiveDate, lead_id: &str) {
        let mut key = intake_prefix(owner_id, day);
        key.extend_from_slice(lead_id.as_bytes());
        if self.writes.iter().any(|w| w.tree == Tree::Intake && w.key == key) {
            return;
        }
        self.writes.push(Write { tree: Tree::Intake, key, value: Some(Vec::new()) });
        *self.intake_added.entry((owner_id.to_string(), day)).or_default() += 1;
    }

    /// Records a counted arrival for surge detection.
    pub fn record_arrival(&mut self, at: DateTime<Utc>, lead_id: &str, at_rate: bool) {
        self.writes.push(Write {
            tree: Tree::Arrivals,
            key: deadline_key(at, lead_id),
            value: Some(vec![u8::from(at_rate)]),
        });
        self.arrivals_added.push((at, at_rate));
    }

    /// Drops a deadline entry (found in the index) that no state points at.
    pub fn drop_deadline(&mut self, at: DateTime<Utc>, lead_id: &str) {
        self.delete(Tree::Deadlines, deadline_key(at, lead_id));
    }

    /// Queues `action` under sequence `seq`; the caller bumps the sequence
    /// with [`Batch::set_next_seq`].
    pub fn enqueue(&mut self, seq: u64, action: &Action, now: DateTime<Utc>) {
        let entry = OutboxEntry {
            seq,
            action: action.clone(),
            enqueued_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            failed: false,
        };
        self.put(Tree::Outbox, seq.to_be_bytes().to_vec(), &entry);
        self.put(Tree::OutboxKeys, action.key.as_str().as_bytes().to_vec(), &seq);
    }

    pub fn set_next_seq(&mut self, next: u64) {
        self.set_meta_u64("outbox_seq", next);
    }

    /// Rewrites an outbox entry (after a failed attempt). The CRM's error
    /// text is kept only as the redactor lets it through.
    pub fn update_outbox(&mut self, entry: &OutboxEntry) {
        match entry.failed {
            true => self.writes.push(failed_mark(entry.seq)),
            false => self.delete(Tree::OutboxFailed, entry.seq.to_be_bytes().to_vec()),
        }
        match &entry.last_error {
            Some(e) => {
                let last_error = Some(WriteError {
                    code: handoff_model::redact(&e.code),
                    message: handoff_model::redact(&e.message),
                    ..e.clone()
                });
                let clean = OutboxEntry { last_error, ..entry.clone() };
                self.put(Tree::Outbox, entry.seq.to_be_bytes().to_vec(), &clean);
            }
            None => self.put(Tree::Outbox, entry.seq.to_be_bytes().to_vec(), entry),
        }
    }

    /// Removes an entry from the outbox without recording it as done (an
    /// update superseded by a newer one, an action on a deleted lead).
    pub fn drop_outbox(&mut self, entry: &OutboxEntry) {
        self.delete(Tree::Outbox, entry.seq.to_be_bytes().to_vec());
        // Whatever `entry` says: an earlier write of this batch may have
        // marked it.
        self.delete(Tree::OutboxFailed, entry.seq.to_be_bytes().to_vec());
        self.delete(Tree::OutboxKeys, entry.action.key.as_str().as_bytes().to_vec());
    }

    /// Records a confirmed action and removes it from the outbox.
    pub fn confirm(&mut self, entry: &OutboxEntry, ledger: &LedgerEntry) {
        self.drop_outbox(entry);
        self.record_ledger(entry.action.key.as_str(), ledger);
    }

    /// Records `entry` in the ledger under `key`: in its lead's file, or
    /// on its own (see [`ledger::file_of`]).
    pub(crate) fn record_ledger(&mut self, key: &str, entry: &LedgerEntry) {
        match ledger::file_of(key) {
            Some(_) => self.ledger_filed.push((key.to_string(), entry.clone())),
            None => self.put(Tree::Ledger, key.as_bytes().to_vec(), entry),
        }
    }

    /// Keeps a quarantined record and holds the lead it belongs to.
    pub fn put_quarantine(&mut self, record: &QuarantineRecord) {
        let q = &record.record;
        let key = quarantine_key(q);
        self.put(Tree::Quarantine, quarantine_tree_key(q.stream, &key), record);
        if let Some(lead) = &q.lead_id {
            self.writes.push(Write { tree: Tree::Held, key: held_key(lead, q.stream, &key), value: Some(Vec::new()) });
        }
    }

    /// Drops a quarantined record (it was read readable, or is read again
    /// on purpose) and its hold on its lead.
    pub fn release_quarantine(&mut self, record: &QuarantineRecord) {
        let q = &record.record;
        let key = quarantine_key(q);
        self.delete(Tree::Quarantine, quarantine_tree_key(q.stream, &key));
        if let Some(lead) = &q.lead_id {
            self.delete(Tree::Held, held_key(lead, q.stream, &key));
        }
    }

    pub fn put_week(&mut self, commitment: &str, record: &WeekRecord) {
        self.put(Tree::Weekly, week_key(commitment, record.week_start).into_bytes(), record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap()
    }

    fn lead(id: &str) -> StoredLead {
        StoredLead {
            lead: Lead {
                id: id.to_string(),
                owner_id: None,
                fields: BTreeMap::new(),
                created_at: at(9),
                modified_at: at(9),
                assignments: Vec::new(),
                status_changes: Vec::new(),
                field_history: BTreeMap::new(),
                converted_at: None,
                deleted: false,
                merged_into: None,
                opportunities: Vec::new(),
                read_only: false,
            },
            observed_owners: Vec::new(),
            observed_statuses: Vec::new(),
            observed_fields: BTreeMap::new(),
            watched: String::new(),
            first_seen_at: at(9),
        }
    }

    fn clock(kind: ClockKind, status: ClockStatus) -> Clock {
        Clock { status, ..Clock::waived(kind, "") }
    }

    fn state(next: Option<DateTime<Utc>>) -> LeadState {
        LeadState {
            evaluated_at: at(9),
            policy_version: 1,
            mql: true,
            grade: Some("A".into()),
            segment: None,
            waived: None,
            disqualified_by: None,
            clocks: Vec::new(),
            next_check_at: next,
            error: None,
            pending_update: None,
            sla_fields: BTreeMap::new(),
            qualified_at: None,
            intake: None,
        }
    }

    fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let sled = Store::open(dir.path()).unwrap();
        vec![(Store::in_memory(), None), (sled, Some(dir))]
    }

    #[cfg(unix)]
    #[test]
    fn the_state_directory_is_made_private_with_everything_in_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(state.join("secrets")).unwrap();
        std::fs::write(state.join("secrets/old-token"), "x").unwrap();
        for (path, mode) in
            [(&state, 0o755), (&state.join("secrets"), 0o755), (&state.join("secrets/old-token"), 0o644)]
        {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let store = Store::open(&state).unwrap();
        let mut batch = Batch::default();
        batch.mark_dirty("L1", "test");
        store.commit(batch).unwrap();
        store.flush().unwrap();
        let mut pending = vec![state.clone()];
        let mut seen = 0;
        while let Some(p) = pending.pop() {
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(mode, 0o700, "{} is {mode:o}", p.display());
                pending.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else {
                assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
            }
            seen += 1;
        }
        assert!(seen > 4, "sled's own files were checked too");
    }

    #[test]
    fn deadlines_move_with_the_state_and_come_due_in_order() {
        for (store, _dir) in stores() {
            let mut b = Batch::default();
            b.put_state("L1", &state(Some(at(12))), None);
            b.put_state("L2", &state(Some(at(10))), None);
            store.commit(b).unwrap();
            assert_eq!(store.next_deadline().unwrap(), Some(at(10)));
            assert_eq!(store.due(at(11), 10).unwrap(), vec![(at(10), "L2".to_string())]);
            // L2 re-evaluated: its deadline moves to 13:00.
            let old = store.state("L2").unwrap();
            let mut b = Batch::default();
            b.put_state("L2", &state(Some(at(13))), old.as_ref());
            store.commit(b).unwrap();
            assert_eq!(store.due(at(12), 10).unwrap(), vec![(at(12), "L1".to_string())]);
            assert_eq!(store.due(at(13), 10).unwrap().len(), 2);
        }
    }

    #[test]
    fn a_verdict_that_did_not_change_keeps_its_state_and_its_deadline() {
        let first = state(Some(at(12)));
        let later = LeadState { evaluated_at: at(11), policy_version: 2, ..first.clone() };
        assert!(first.same_verdict(&later), "when and under which version is not the verdict");
        let moved = LeadState { next_check_at: Some(at(13)), ..later.clone() };
        assert!(!first.same_verdict(&moved));
        let breached = LeadState { clocks: vec![clock(ClockKind::FirstTouch, ClockStatus::Breached)], ..later.clone() };
        assert!(!first.same_verdict(&breached));
        for (store, _dir) in stores() {
            let mut b = Batch::default();
            b.put_state("L1", &first, None);
            store.commit(b).unwrap();
            // The deadline brings the lead back; the evaluation concludes
            // the same: the stored state stays, and so does its deadline.
            let mut b = Batch::default();
            b.drop_deadline(at(12), "L1");
            b.keep_state("L1", &later, Some(at(12)));
            store.commit(b).unwrap();
            assert_eq!(store.state("L1").unwrap(), Some(first.clone()));
            assert_eq!(store.due(at(12), 10).unwrap(), vec![(at(12), "L1".to_string())]);
            assert_eq!(store.counts().unwrap().deadlines, 1);
            // Brought by a sweep, it writes nothing: its entry stays.
            let mut b = Batch::default();
            b.keep_state("L1", &later, None);
            assert!(b.is_empty());
            // Brought by an older entry than its next check: that entry
            // goes, the next check's stays.
            let mut b = Batch::default();
            b.writes.push(Write { tree: Tree::Deadlines, key: deadline_key(at(9), "L1"), value: Some(Vec::new()) });
            store.commit(b).unwrap();
            let mut b = Batch::default();
            b.drop_deadline(at(9), "L1");
            b.keep_state("L1", &later, Some(at(9)));
            store.commit(b).unwrap();
            assert_eq!(store.due(at(12), 10).unwrap(), vec![(at(12), "L1".to_string())]);
            assert_eq!(store.counts().unwrap().deadlines, 1);
        }
    }

    fn act(id: &str, lead: &str) -> Activity {
        Activity {
            id: id.to_string(),
            kind: handoff_model::ActivityKind::Call,
            lead_id: lead.to_string(),
            owner_id: None,
            occurred_at: at(10),
            modified_at: at(10),
            subject: None,
            direction: None,
            completed: false,
            handoff_key: None,
            automated: false,
            deleted: false,
            opportunity_id: None,
        }
    }

    #[test]
    fn activities_are_filed_per_lead_and_leads_sharing_a_prefix_stay_apart() {
        for (store, _dir) in stores() {
            let mut b = Batch::default();
            b.put_lead(&lead("L1"));
            b.put_lead(&lead("L10"));
            b.put_activity(&act("a", "L1"));
            b.put_activity(&act("b", "L10"));
            store.commit(b).unwrap();
            assert_eq!(store.activities_of("L1").unwrap().len(), 1);
            assert_eq!(store.activity_lead("b").unwrap().as_deref(), Some("L10"));
            assert_eq!(store.leads().unwrap().len(), 2);
        }
    }

    /// One read of a lead's records gives what the reads one by one give,
    /// for a lead whose ledger is filed under its id and for one whose id
    /// is hashed into its keys, next to leads with none of it.
    #[test]
    fn a_leads_records_read_together_equal_their_reads_one_by_one() {
        let hashed = format!("00Q{}", "x".repeat(60));
        let entry = |lead_id: &str| LedgerEntry {
            lead_id: lead_id.to_string(),
            crm_id: lead_id.to_string(),
            done_at: at(10),
            kind: ActionSummary::UpdateLead,
            attempts: 1,
        };
        for (store, _dir) in stores() {
            let mut b = Batch::default();
            for id in ["L1", "L10", hashed.as_str()] {
                b.put_lead(&lead(id));
                b.put_activity(&act(&format!("a-{id}"), id));
                b.put_state(id, &state(Some(at(11))), None);
                let prefix = crate::engine::keys::lead_prefix(id);
                b.record_ledger(&format!("{prefix}sla:x:v1"), &entry(id));
            }
            b.put_state("L2", &state(None), None);
            store.commit(b).unwrap();
            for id in ["L1", "L10", hashed.as_str(), "L2", "L3"] {
                let together = store.lead_records(id).unwrap();
                assert_eq!(together.state.map(|p| p.decode().unwrap()), store.state(id).unwrap(), "{id}");
                let ledger = store.ledger_with_prefix(&crate::engine::keys::lead_prefix(id)).unwrap();
                assert_eq!(together.ledger, ledger, "{id}");
                let case = store.lead(id).unwrap().map(|l| (l.into_engine(), store.activities_of(id).unwrap()));
                assert_eq!(together.case, case, "{id}");
                let filed = ["L1", "L10", hashed.as_str()].contains(&id);
                assert_eq!(together.ledger.len(), usize::from(filed), "{id}");
                assert_eq!(together.case.map(|(_, a)| a.len()), filed.then_some(1), "{id}");
            }
        }
    }

    /// The activity changes of one batch apply in order, to what is stored
    /// and to one another: a move, a change, a removal of something never
    /// filed, and the count of activities follows.
    #[test]
    fn activity_changes_in_one_batch_apply_in_order() {
        for (store, _dir) in stores() {
            let mut b = Batch::default();
            b.put_activity(&act("a", "L1"));
            b.put_activity(&act("c", "L1"));
            b.put_activity(&act("b", "L1"));
            store.commit(b).unwrap();
            let ids = |lead: &str| store.activities_of(lead).unwrap().into_iter().map(|a| a.id).collect::<Vec<_>>();
            assert_eq!(ids("L1"), ["a", "b", "c"], "in id order");
            let mut b = Batch::default();
            b.remove_activity("L1", "a", true);
            b.put_activity(&act("a", "L2"));
            b.put_activity(&Activity { subject: Some("moved on".into()), ..act("b", "L1") });
            b.remove_activity("L1", "c", false);
            b.remove_activity("L3", "never", false);
            store.commit(b).unwrap();
            assert_eq!(ids("L1"), ["b"]);
            assert_eq!(ids("L2"), ["a"]);
            assert_eq!(store.activities_of("L1").unwrap()[0].subject.as_deref(), Some("moved on"));
            assert_eq!(store.activity_lead("a").unwrap().as_deref(), Some("L2"));
            assert_eq!(store.activity_lead("c").unwrap(), None);
            assert_eq!(store.counts().unwrap().activities, 2);
            assert_eq!(store.counts().unwrap(), store.recount().unwrap());
            let mut b = Batch::default();
            b.remove_activity("L2", "a", false);
            store.commit(b).unwrap();
            assert!(store.backend.get(Tree::Activities, b"L2").unwrap().is_none(), "an empty file is no key");
            assert_eq!(store.counts().unwrap().activities, 1);
        }
    }

    /// A first start's backfill files activities without the index, which
    /// is built after from the files: the store ends as one that indexed
    /// each activity as it was filed. An activity filed under two leads (it
    /// moved while the backfill read) stays with its later copy, whichever
    /// was read first; a deletion that waited is applied, unless the
    /// activity was filed again after it. So it ends in one step or many,
    /// and with a step done twice (cut short before it recorded how far it
    /// got).
    #[test]
    fn a_deferred_activity_index_is_built_from_the_files_as_if_kept_all_along() {
        let stamped = |id: &str, lead: &str, minutes: i64| Activity {
            modified_at: at(10) + chrono::Duration::minutes(minutes),
            ..act(id, lead)
        };
        for (budget, step_twice) in [(INDEX_STEP_ACTIVITIES, false), (7, false), (7, true), (1, true)] {
            for (store, _dir) in stores() {
                let mut b = Batch::default();
                b.defer_activity_index();
                store.commit(b).unwrap();
                // The listing: 40 activities over 12 leads; a05 is deleted
                // in the page that filed it.
                let mut b = Batch::default();
                for i in 0..40 {
                    b.file_activity(&stamped(&format!("a{i:02}"), &format!("L{:02}", i % 12), 0), false);
                }
                b.wait_with_deletion("a05");
                store.commit(b).unwrap();
                // Deletions for a06 (restored later) and one never filed.
                let mut b = Batch::default();
                b.wait_with_deletion("a06");
                b.wait_with_deletion("never-filed");
                store.commit(b).unwrap();
                // The windows after: a03 moved to L99, a04 read again from a
                // stale copy under L20, a06 restored, a07 deleted and
                // restored in one page.
                assert!(store.any_deletion_waiting().unwrap());
                let mut b = Batch::default();
                b.file_activity(&stamped("a03", "L99", 5), store.deletion_waits("a03").unwrap());
                b.file_activity(&stamped("a04", "L20", -5), store.deletion_waits("a04").unwrap());
                b.file_activity(&stamped("a06", "L06", 6), store.deletion_waits("a06").unwrap());
                b.wait_with_deletion("a07");
                b.file_activity(&stamped("a07", "L07", 7), store.deletion_waits("a07").unwrap());
                store.commit(b).unwrap();
                assert_eq!(store.activity_lead("a01").unwrap(), None, "nothing indexed while deferred");
                assert!(store.activity_index_deferred().unwrap());

                let mut steps = 0;
                loop {
                    let reached = store.meta_text(activities::INDEX_DEFERRED).unwrap();
                    let step = store.index_activities_step(budget).unwrap();
                    steps += 1;
                    if step.done {
                        break;
                    }
                    if step_twice {
                        let mut b = Batch::default();
                        b.set_meta_text(activities::INDEX_DEFERRED, reached.as_deref().unwrap());
                        store.commit(b).unwrap();
                        let again = store.index_activities_step(budget).unwrap();
                        // What the first pass took out is not found again.
                        assert!(again.files <= step.files && again.activities <= step.activities);
                    }
                }
                assert_eq!(steps > 1, budget < 40, "steps: {steps}");
                assert!(!store.activity_index_deferred().unwrap());
                assert!(!store.any_deletion_waiting().unwrap());

                let lead_of = |id: &str| store.activity_lead(id).unwrap();
                let ids = |lead: &str| store.activities_of(lead).unwrap().into_iter().map(|a| a.id).collect::<Vec<_>>();
                assert_eq!(lead_of("a03").as_deref(), Some("L99"), "the later copy stays");
                assert_eq!(ids("L99"), ["a03"]);
                assert!(!ids("L03").contains(&"a03".to_string()), "the earlier copy is taken out");
                assert_eq!(lead_of("a04").as_deref(), Some("L04"), "a stale copy read later does not win");
                assert!(ids("L20").is_empty());
                assert_eq!(lead_of("a05"), None, "deleted");
                assert!(!ids("L05").contains(&"a05".to_string()));
                assert_eq!(lead_of("a06").as_deref(), Some("L06"), "restored after its deletion");
                assert_eq!(lead_of("a07").as_deref(), Some("L07"), "restored in the page that deleted it");
                let all = store.all_activities().unwrap();
                assert_eq!(all.len(), 39);
                for a in &all {
                    assert_eq!(lead_of(&a.id).as_deref(), Some(a.lead_id.as_str()), "{}", a.id);
                }
                assert_eq!(store.counts().unwrap().activities, 39);
                assert_eq!(store.counts().unwrap(), store.recount().unwrap());

                // Kept up to date again: a move is indexed as it is filed.
                let mut b = Batch::default();
                b.remove_activity("L01", "a01", true);
                b.put_activity(&stamped("a01", "L98", 9));
                store.commit(b).unwrap();
                assert_eq!(lead_of("a01").as_deref(), Some("L98"));
                assert!(store.index_activities_step(budget).unwrap().done, "nothing deferred: nothing to build");
            }
        }
    }

    /// A state directory the previous release wrote (schema 3: one key per
    /// activity and one index key per activity) has its activities filed
    /// per lead when opened, every one of them found again by lead and by
    /// id; an upgrade cut short (some already filed) resumes.
    #[test]
    fn a_schema_three_store_has_its_activities_filed_per_lead_on_open() {
        for cut_short in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut all = Vec::new();
            for i in 0..60 {
                let lead_id = if i % 7 == 0 { opportunity_file("006A") } else { format!("L{:02}", i % 23) };
                all.push(Activity { subject: Some(format!("call {i}")), ..act(&format!("00T{i:03}"), &lead_id) });
            }
            {
                let mut old = Vec::new();
                let mut filed = Batch::default();
                for (i, a) in all.iter().enumerate() {
                    if cut_short && i % 3 == 0 {
                        // Filed by the commit before the cut.
                        filed.put_activity(a);
                        continue;
                    }
                    let key = lead_pair_key(&a.lead_id, &a.id);
                    old.push(Write {
                        tree: Tree::Activities,
                        value: Some(encode(Tree::Activities, &key, a).unwrap()),
                        key,
                    });
                    let index = encode(Tree::ActivityIndex, a.id.as_bytes(), &a.lead_id).unwrap();
                    old.push(Write { tree: Tree::ActivityIndex, key: a.id.clone().into_bytes(), value: Some(index) });
                }
                leave_as_schema(dir.path(), 3, filed, old, Stream::Activities);
            }
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.meta_u64("schema").unwrap(), Some(SCHEMA_VERSION));
            assert_eq!(
                store.cursor(Stream::Activities).unwrap(),
                Some(Cursor(format!("c-{}", Stream::Activities.as_str())))
            );
            for a in &all {
                assert_eq!(store.activity_lead(&a.id).unwrap().as_deref(), Some(a.lead_id.as_str()), "{}", a.id);
                assert!(store.activities_of(&a.lead_id).unwrap().contains(a), "{} filed under {}", a.id, a.lead_id);
            }
            let mut read = store.all_activities().unwrap();
            read.sort_by(|x, y| x.id.cmp(&y.id));
            assert_eq!(read, all);
            let keys = store.backend.range(Tree::Activities, b"", None, usize::MAX).unwrap();
            assert_eq!(keys.len(), 24, "one file per lead and one for the opportunity");
            assert!(store.backend.range(Tree::ActivityIndex, b"", None, 1).unwrap().is_empty());
            assert_eq!(store.counts().unwrap().activities, 60);
            assert_eq!(store.counts().unwrap(), store.recount().unwrap());
        }
    }

    fn done(lead_id: &str, crm_id: &str) -> LedgerEntry {
        LedgerEntry {
            lead_id: lead_id.into(),
            crm_id: crm_id.into(),
            done_at: at(9),
            kind: ActionSummary::UpdateLead,
            attempts: 1,
        }
    }

    /// Leaves in `dir` a store as schema `schema` wrote it, an upgrade of it
    /// cut short after committing `filed`: `old` (values as that schema laid
    /// them out), a cursor of `stream` (`c-{stream}`) and the schema number,
    /// written under the upgrade's feet.
    fn leave_as_schema(dir: &Path, schema: u64, filed: Batch, mut old: Vec<Write>, stream: Stream) {
        let store = Store::open(dir).unwrap();
        store.commit(filed).unwrap();
        let mut marks = Batch::default();
        marks.set_cursor(stream, &Cursor(format!("c-{}", stream.as_str())));
        marks.set_meta_u64("schema", schema);
        old.extend(marks.writes);
        store.backend.commit(&old).unwrap();
    }

    /// Thirty leads with their evaluations, one to three activities and a
    /// ledger entry each, a scorecard ledger entry, a cursor and four
    /// outbox items: what the upgrade tests give a store to move.
    fn thirty_leads() -> Batch {
        let mut b = Batch::default();
        b.set_cursor(Stream::Leads, &Cursor("c-leads".into()));
        for i in 0..30u32 {
            let id = format!("L{i:02}");
            b.put_lead(&lead(&id));
            b.put_state(&id, &state(Some(at(10 + i % 5))), None);
            for n in 0..1 + i % 3 {
                b.put_activity(&Activity {
                    kind: handoff_model::ActivityKind::Email,
                    owner_id: Some("005A".into()),
                    subject: Some(format!("Re: pricing {n}")),
                    direction: Some(handoff_model::Direction::Outbound),
                    completed: true,
                    automated: n == 2,
                    ..act(&format!("A{i:02}{n}"), &id)
                });
            }
            b.record_ledger(&format!("{id}:ft:rem:v1"), &done(&id, &format!("00T{i:03}")));
        }
        b.record_ledger("sc:sales.first_touch_in_window:20260302:005U1:v1", &done("", "00T999"));
        for seq in 1..=4 {
            b.enqueue(seq, &reassign(&format!("k{seq}"), "L01"), at(9));
        }
        b.set_next_seq(5);
        b
    }

    /// What the upgrade tests read back of [`thirty_leads`]: every lead,
    /// evaluation, activity file, ledger entry and outbox item, checked
    /// whole (the counts equal a recount).
    fn thirty_leads_read(store: &Store) -> ThirtyLeads {
        let activities: Vec<_> = (0..30).map(|i| store.activities_of(&format!("L{i:02}")).unwrap()).collect();
        let read = ThirtyLeads {
            cursor: store.cursor(Stream::Leads).unwrap(),
            leads: store.leads().unwrap(),
            states: store.states().unwrap(),
            activities,
            ledger: store.ledger_entries().unwrap(),
            outbox: store.outbox().unwrap(),
        };
        assert_eq!(read.cursor, Some(Cursor("c-leads".into())));
        assert_eq!((read.leads.len(), read.states.len()), (30, 30));
        assert_eq!(read.activities.iter().map(Vec::len).sum::<usize>(), 60);
        assert_eq!((read.ledger.len(), read.outbox.len()), (31, 4));
        assert_eq!(store.state("L07").unwrap(), Some(state(Some(at(12)))));
        assert_eq!(store.counts().unwrap(), store.recount().unwrap());
        read
    }

    #[derive(Debug, PartialEq)]
    struct ThirtyLeads {
        cursor: Option<Cursor>,
        leads: Vec<StoredLead>,
        states: BTreeMap<String, LeadState>,
        activities: Vec<Vec<Activity>>,
        ledger: Vec<(String, LedgerEntry)>,
        outbox: Vec<OutboxEntry>,
    }

    /// A schema-7 store keeps its activity index in 2^19 buckets of three
    /// bytes. Opened (also after an earlier open was cut short, some
    /// entries already gathered), every entry is in today's buckets, found
    /// again by its activity id, and every cursor, lead, evaluation,
    /// activity, ledger entry and outbox item reads back as it was.
    #[test]
    fn a_schema_seven_store_has_its_activity_index_gathered_on_open() {
        for cut_short in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (before, entries) = {
                let store = Store::open(dir.path()).unwrap();
                store.commit(thirty_leads()).unwrap();
                let today = store.backend.range(Tree::ActivityBuckets, b"", None, usize::MAX).unwrap();
                let mut entries: Vec<(String, String)> = Vec::new();
                for (key, value) in &today {
                    entries.extend(decode::<activities::Bucket>(Tree::ActivityBuckets, key, value).unwrap());
                }
                // The index as schema 7 laid it out; cut short, every
                // third entry already gathered.
                let mut old: BTreeMap<Vec<u8>, activities::Bucket> = BTreeMap::new();
                let mut gathered: BTreeMap<Vec<u8>, activities::Bucket> = BTreeMap::new();
                for (i, (activity_id, lead_id)) in entries.iter().enumerate() {
                    let (key, into) = if cut_short && i % 3 == 0 {
                        (activities::bucket(activity_id), &mut gathered)
                    } else {
                        (activities::schema_seven_bucket(activity_id), &mut old)
                    };
                    into.entry(key).or_default().push((activity_id.clone(), lead_id.clone()));
                }
                let mut writes: Vec<Write> =
                    today.into_iter().map(|(key, _)| Write { tree: Tree::ActivityBuckets, key, value: None }).collect();
                for (key, bucket) in old.into_iter().chain(gathered) {
                    let value = encode(Tree::ActivityBuckets, &key, &bucket).unwrap();
                    writes.push(Write { tree: Tree::ActivityBuckets, key, value: Some(value) });
                }
                let mut schema = Batch::default();
                schema.set_meta_u64("schema", 7);
                writes.extend(schema.writes);
                store.backend.commit(&writes).unwrap();
                let keys = store.backend.range(Tree::ActivityBuckets, b"", None, usize::MAX).unwrap();
                assert!(keys.iter().any(|(key, _)| activities::is_schema_seven_bucket(key)), "laid out as schema 7");
                (thirty_leads_read(&store), entries)
            };
            assert_eq!(entries.len(), 60);
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.meta_u64("schema").unwrap(), Some(SCHEMA_VERSION));
            assert_eq!(thirty_leads_read(&store), before);
            for (activity_id, lead_id) in &entries {
                assert_eq!(
                    store.activity_lead(activity_id).unwrap().as_deref(),
                    Some(lead_id.as_str()),
                    "{activity_id}"
                );
            }
            let keys = store.backend.range(Tree::ActivityBuckets, b"", None, usize::MAX).unwrap();
            assert!(keys.iter().all(|(key, _)| key.len() == 2), "every schema-7 bucket gathered");
            let held: usize = keys
                .iter()
                .map(|(key, value)| decode::<activities::Bucket>(Tree::ActivityBuckets, key, value).unwrap().len())
                .sum();
            assert_eq!(held, 60, "each entry once");
        }
    }

    /// A schema-6 store keeps a lead's record, evaluation, activities and
    /// ledger file in four trees. Opened (also after an earlier open was
    /// cut short midway), they are moved into one value per lead, and every
    /// cursor, lead, evaluation, activity, ledger entry and outbox item
    /// reads back as it was, the counts equal to a recount.
    #[test]
    fn a_schema_six_store_has_each_leads_records_bundled_on_open() {
        for keep_bundled in [0, 12] {
            let dir = tempfile::tempdir().unwrap();
            let before = {
                let store = Store::open(dir.path()).unwrap();
                store.commit(thirty_leads()).unwrap();
                let mut schema = Batch::default();
                schema.set_meta_u64("schema", 6);
                store.commit(schema).unwrap();
                thirty_leads_read(&store)
            };
            // 30 leads, 30 evaluations, 30 activity files, 30 ledger files.
            assert_eq!(backend::unbundle(dir.path(), keep_bundled), 120 - 4 * keep_bundled);
            assert_eq!(backend::unbundled(dir.path()), 120 - 4 * keep_bundled);
            {
                let store = Store::open(dir.path()).unwrap();
                assert_eq!(store.meta_u64("schema").unwrap(), Some(SCHEMA_VERSION));
                assert_eq!(thirty_leads_read(&store), before);
            }
            assert_eq!(backend::unbundled(dir.path()), 0, "every value moved into the bundles");
        }
    }

    /// A schema-5 store holds leads, evaluations, activities and ledger
    /// entries as JSON. Opened (also after an earlier open was cut short
    /// midway), every one of them is rewritten as MessagePack, and every
    /// cursor, lead, evaluation, activity, ledger entry and outbox item
    /// reads back as it was, the counts equal to a recount.
    #[test]
    fn a_schema_five_store_has_its_records_rewritten_as_binary_on_open() {
        const BINARY_TREES: [Tree; 5] = [Tree::Leads, Tree::States, Tree::Activities, Tree::Ledger, Tree::LeadLedger];
        for cut_short in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let before = {
                let store = Store::open(dir.path()).unwrap();
                store.commit(thirty_leads()).unwrap();
                // What schema 5 wrote: the same values as JSON, framed
                // with the JSON dictionaries.
                let mut old = Vec::new();
                for tree in BINARY_TREES {
                    for (i, (key, value)) in
                        store.backend.range(tree, b"", None, usize::MAX).unwrap().into_iter().enumerate()
                    {
                        assert!(codec::is_binary(value[0]), "{} is written as MessagePack", tree.name());
                        // Cut short: the first leads were already rewritten.
                        if cut_short && tree == Tree::Leads && i < 10 {
                            continue;
                        }
                        let json = codec::as_older_json(tree, &key, &value);
                        old.push(Write { tree, key, value: Some(codec::framed(tree, &json)) });
                    }
                }
                assert!(old.len() >= 80, "leads, states, activities and ledger entries as JSON: {}", old.len());
                let mut schema = Batch::default();
                schema.set_meta_u64("schema", 5);
                old.extend(schema.writes);
                store.backend.commit(&old).unwrap();
                let stale = store.backend.range(Tree::States, b"", None, usize::MAX).unwrap();
                assert!(stale.iter().all(|(_, v)| !codec::is_binary(v[0])), "written as schema 5 did");
                thirty_leads_read(&store)
            };
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.meta_u64("schema").unwrap(), Some(SCHEMA_VERSION));
            for tree in BINARY_TREES {
                let values = store.backend.range(tree, b"", None, usize::MAX).unwrap();
                assert!(!values.is_empty(), "{}", tree.name());
                assert!(
                    values.iter().all(|(_, v)| codec::is_binary(v[0]) && codec::is_current(tree, v)),
                    "{} rewritten",
                    tree.name()
                );
            }
            assert_eq!(thirty_leads_read(&store), before);
        }
    }

    /// A schema-4 store keeps each ledger entry under its own key; opened,
    /// the entries about a lead are filed per lead (also when an earlier
    /// open was cut short after filing some), the others stay where they
    /// are, and every entry reads back by key, by lead and in the walk.
    #[test]
    fn a_schema_four_store_has_its_ledger_filed_per_lead_on_open() {
        for cut_short in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut all: Vec<(String, LedgerEntry)> = Vec::new();
            for i in 0..90u32 {
                let lead_id = format!("L{:02}", i % 17);
                let key = match i % 10 {
                    0 => format!("sc:sales.first_touch_in_window:2026030{}:005U{i}:v1", i % 7),
                    1 => format!("dg:005U{i}:20260302:rep:v1"),
                    _ => format!("{lead_id}:ft:{i}:rem:v1"),
                };
                all.push((key, done(&lead_id, &format!("00T{i:03}"))));
            }
            all.sort_by(|(a, _), (b, _)| a.cmp(b));
            {
                let mut old = Vec::new();
                let mut filed = Batch::default();
                for (i, (key, entry)) in all.iter().enumerate() {
                    if cut_short && i % 3 == 0 && ledger::file_of(key).is_some() {
                        // Filed by the commit before the cut.
                        filed.record_ledger(key, entry);
                        continue;
                    }
                    let value = Some(encode(Tree::Ledger, key.as_bytes(), entry).unwrap());
                    old.push(Write { tree: Tree::Ledger, key: key.clone().into_bytes(), value });
                }
                leave_as_schema(dir.path(), 4, filed, old, Stream::Leads);
            }
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.meta_u64("schema").unwrap(), Some(SCHEMA_VERSION));
            assert_eq!(store.cursor(Stream::Leads).unwrap(), Some(Cursor(format!("c-{}", Stream::Leads.as_str()))));
            for (key, entry) in &all {
                assert_eq!(store.ledger(&ActionKey(key.clone())).unwrap().as_ref(), Some(entry), "{key}");
            }
            assert_eq!(store.ledger_entries().unwrap(), all);
            let about_l03: Vec<_> = all.iter().filter(|(k, _)| k.starts_with("L03:")).cloned().collect();
            assert!(about_l03.len() > 3);
            assert_eq!(store.ledger_with_prefix("L03:").unwrap(), about_l03);
            let scorecard: Vec<_> = all.iter().filter(|(k, _)| k.starts_with("sc:")).cloned().collect();
            assert_eq!(store.ledger_with_prefix("sc:").unwrap(), scorecard);
            let own = store.backend.range(Tree::Ledger, b"", None, usize::MAX).unwrap();
            assert_eq!(own.len(), 18, "scorecard and digest entries stay on their own keys");
            assert_eq!(
                store.backend.range(Tree::LeadLedger, b"", None, usize::MAX).unwrap().len(),
                17,
                "a file a lead"
            );
            assert_eq!(store.counts().unwrap().ledger, 90);
            assert_eq!(store.counts().unwrap(), store.recount().unwrap());
        }
    }

    #[test]
    fn the_outbox_hands_out_ready_entries_in_order_and_confirms_into_the_ledger() {
        for (store, _dir) in stores() {
            let action = |k: &str| Action {
                key: ActionKey(k.to_string()),
                lead_id: "L1".into(),
                kind: ActionKind::Reassign { to_owner_id: "00G".into() },
            };
            let mut b = Batch::default();
            b.enqueue(1, &action("k1"), at(9));
            b.enqueue(2, &action("k2"), at(9));
            b.set_next_seq(3);
            store.commit(b).unwrap();
            assert_eq!(store.next_seq().unwrap(), 3);
            assert_eq!(store.queued(&ActionKey("k2".into())).unwrap(), Some(2));
            let ready = store.outbox_ready(at(9), 10).unwrap();
            assert_eq!(ready.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
            let mut later = ready[0].clone();
            later.attempts = 1;
            later.next_attempt_at = at(11);
            let mut b = Batch::default();
            b.update_outbox(&later);
            b.confirm(
                &ready[1],
                &LedgerEntry {
                    lead_id: "L1".into(),
                    crm_id: "x".into(),
                    done_at: at(9),
                    kind: ActionSummary::of(&ready[1].action),
                    attempts: 1,
                },
            );
            store.commit(b).unwrap();
            assert!(store.outbox_ready(at(10), 10).unwrap().is_empty(), "k1 backs off until 11:00");
            assert_eq!(store.outbox_ready(at(11), 10).unwrap().len(), 1);
            assert!(store.ledger(&ActionKey("k2".into())).unwrap().is_some());
            assert_eq!(store.queued(&ActionKey("k2".into())).unwrap(), None);
        }
    }

    #[test]
    fn a_value_from_a_newer_handoff_is_refused_by_name() {
        let store = Store::in_memory();
        store
            .backend
            .commit(&[Write { tree: Tree::Leads, key: b"L1".to_vec(), value: Some(vec![13, b'{', b'}']) }])
            .unwrap();
        let err = store.lead("L1").unwrap_err().to_string();
        assert!(err.contains("leads") && err.contains("L1") && err.contains("format 13"), "{err}");
    }

    #[test]
    fn a_quarantined_record_holds_its_lead_until_released() {
        for (store, _dir) in stores() {
            let q = |id: Option<&str>, lead: Option<&str>| QuarantineRecord {
                record: Quarantined::new(
                    Stream::Activities,
                    id.map(str::to_string),
                    lead.map(str::to_string),
                    "SystemModstamp is 12, not text",
                    &serde_json::json!({"Id": id, "SystemModstamp": 12}),
                    at(9),
                ),
                first_at: at(10),
                last_at: at(10),
                times: 1,
            };
            let with_lead = q(Some("00T1"), Some("L1"));
            let without_id = q(None, None);
            let mut b = Batch::default();
            b.put_quarantine(&with_lead);
            b.put_quarantine(&without_id);
            store.commit(b).unwrap();
            assert!(store.is_held("L1").unwrap());
            assert!(!store.is_held("L").unwrap(), "a lead id that is a prefix of another is not held");
            assert_eq!(store.held_leads().unwrap(), ["L1"]);
            assert_eq!(store.quarantine().unwrap().len(), 2);
            assert_eq!(store.counts().unwrap().quarantined, 2);
            assert!(store.quarantined(Stream::Activities, "00T1").unwrap().is_some());
            let mut b = Batch::default();
            b.release_quarantine(&with_lead);
            store.commit(b).unwrap();
            assert!(!store.is_held("L1").unwrap());
            assert_eq!(store.quarantine().unwrap(), vec![without_id]);
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut b = Batch::default();
            b.set_meta_u64("schema", SCHEMA_VERSION + 1);
            store.commit(b).unwrap();
        }
        let err = Store::open(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("newer handoff"), "{err}");
    }

    fn reassign(key: &str, lead_id: &str) -> Action {
        Action {
            key: ActionKey(key.to_string()),
            lead_id: lead_id.into(),
            kind: ActionKind::Reassign { to_owner_id: "00G".into() },
        }
    }

    /// Kept counts follow every kind of write: new keys, overwrites, a key
    /// written twice in one batch, deletes of present and absent keys, and
    /// failed outbox entries marked and released.
    #[test]
    fn kept_counts_equal_a_recount_after_every_commit() {
        for (store, _dir) in stores() {
            let mut rng = 7u64;
            let mut next = |n: u64| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (rng >> 33) % n
            };
            let mut seq = 1u64;
            for round in 0..60 {
                let mut b = Batch::default();
                for _ in 0..(1 + next(8)) {
                    let id = format!("L{}", next(12));
                    match next(10) {
                        0 | 1 => b.put_lead(&lead(&id)),
                        2 => b.mark_dirty(&id, "changed"),
                        3 => b.clear_dirty(&id),
                        4 => {
                            let mut st = state(Some(at(1 + next(20) as u32)));
                            let kinds = [ClockKind::FirstTouch, ClockKind::Disposition, ClockKind::Routing];
                            let statuses = [ClockStatus::Pending, ClockStatus::Met, ClockStatus::Breached];
                            for _ in 0..next(3) {
                                st.clocks.push(clock(kinds[next(3) as usize], statuses[next(3) as usize]));
                            }
                            b.put_state(&id, &st, store.state(&id).unwrap().as_ref())
                        }
                        5 => {
                            b.enqueue(seq, &reassign(&format!("k{seq}"), &id), at(9));
                            seq += 1;
                            b.set_next_seq(seq);
                        }
                        6 | 7 => {
                            let queued = store.outbox().unwrap();
                            if let Some(entry) = queued.get(next(queued.len().max(1) as u64) as usize) {
                                let mut e = entry.clone();
                                e.failed = !e.failed;
                                b.update_outbox(&e);
                            }
                        }
                        8 => {
                            if let Some(entry) = store.outbox().unwrap().first() {
                                b.drop_outbox(entry);
                            }
                        }
                        _ => {
                            // Filed under the lead (written again at
                            // times) or kept on its own.
                            let key = match next(4) {
                                0 => format!("sc:c:{}:u:v1", next(3)),
                                _ => format!("{id}:ft:{}:rem:v1", next(3)),
                            };
                            b.record_ledger(&key, &done(&id, "00T"));
                        }
                    }
                }
                store.commit(b).unwrap();
                assert_eq!(store.counts().unwrap(), store.recount().unwrap(), "after round {round}");
                assert_eq!(store.clock_counts().unwrap(), store.recount_clocks().unwrap(), "after round {round}");
            }
            let counts = store.counts().unwrap();
            assert!(
                counts.leads > 5 && counts.outbox > 0 && counts.deadlines > 0 && counts.ledger > 10,
                "the rounds filled the store: {counts:?}"
            );
            assert!(store.clock_counts().unwrap().values().sum::<i64>() > 3, "the rounds stored clocks");
            // One lead stored twice in a batch, each time with the state
            // read before it: the second replaces the first's clocks.
            let stale = store.state("L1").unwrap();
            let mut b = Batch::default();
            let mut first = state(None);
            first.clocks = vec![clock(ClockKind::FirstTouch, ClockStatus::Pending)];
            b.put_state("L1", &first, stale.as_ref());
            let mut second = state(None);
            second.clocks = vec![clock(ClockKind::FirstTouch, ClockStatus::Met)];
            b.put_state("L1", &second, stale.as_ref());
            store.commit(b).unwrap();
            assert_eq!(
                store.clock_counts().unwrap(),
                store.recount_clocks().unwrap(),
                "a lead stored twice in a batch"
            );
        }
    }

    /// A state directory of schema 1 (no kept counts, no marks for failed
    /// actions) is upgraded on open: every cursor, lead, ledger entry and
    /// outbox item is still there, and the counts are right from then on.
    #[test]
    fn a_schema_one_store_is_upgraded_on_open_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut b = Batch::default();
            b.set_cursor(Stream::Leads, &Cursor("c-leads".into()));
            b.set_cursor(Stream::Activities, &Cursor("c-acts".into()));
            for i in 0..30 {
                b.put_lead(&lead(&format!("L{i:02}")));
            }
            for seq in 1..=5 {
                b.enqueue(seq, &reassign(&format!("k{seq}"), "L01"), at(9));
            }
            b.set_next_seq(6);
            b.put(
                Tree::Ledger,
                b"done".to_vec(),
                &LedgerEntry {
                    lead_id: "L02".into(),
                    crm_id: "00T9".into(),
                    done_at: at(9),
                    kind: ActionSummary::UpdateLead,
                    attempts: 1,
                },
            );
            store.commit(b).unwrap();
            let mut failed = store.outbox_entry(3).unwrap().unwrap();
            failed.failed = true;
            let mut b = Batch::default();
            b.update_outbox(&failed);
            store.commit(b).unwrap();
            // What schema 1 wrote: the same trees, without the new ones,
            // and every value plain JSON.
            let mut old = Vec::new();
            for tree in Tree::ALL {
                for (key, value) in store.backend.range(tree, b"", None, usize::MAX).unwrap() {
                    if value.first().is_some_and(|f| codec::is_compressed(*f) || codec::is_binary(*f)) {
                        let mut plain = vec![codec::JSON_FORMAT];
                        plain.extend(codec::as_older_json(tree, &key, &value));
                        old.push(Write { tree, key, value: Some(plain) });
                    }
                }
            }
            assert!(old.len() >= 30, "the leads were compressed, and are written back plain");
            for tree in [Tree::Counts, Tree::OutboxFailed] {
                for (key, _) in store.backend.range(tree, b"", None, usize::MAX).unwrap() {
                    old.push(Write { tree, key, value: None });
                }
            }
            let mut schema = Batch::default();
            schema.set_meta_u64("schema", 1);
            old.extend(schema.writes);
            store.backend.commit(&old).unwrap();
            assert_eq!(store.backend.count(Tree::Leads).unwrap(), 0, "the counts are gone, as in schema 1");
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.meta_u64("schema").unwrap(), Some(SCHEMA_VERSION));
        let plain_leads = store.backend.range(Tree::Leads, b"", None, usize::MAX).unwrap();
        assert!(
            plain_leads.iter().all(|(_, v)| codec::is_current(Tree::Leads, v)),
            "the upgrade compressed every lead"
        );
        assert_eq!(store.cursor(Stream::Leads).unwrap(), Some(Cursor("c-leads".into())));
        assert_eq!(store.cursor(Stream::Activities).unwrap(), Some(Cursor("c-acts".into())));
        assert_eq!(store.leads().unwrap().len(), 30);
        assert_eq!(store.ledger(&ActionKey("done".into())).unwrap().map(|e| e.crm_id), Some("00T9".to_string()));
        assert_eq!(store.outbox().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(store.next_seq().unwrap(), 6);
        let counts = store.counts().unwrap();
        assert_eq!(counts, store.recount().unwrap());
        assert_eq!((counts.leads, counts.outbox, counts.outbox_failed, counts.ledger), (30, 5, 1, 1));
        assert_eq!(store.failed_outbox().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    }

    /// A state directory the previous release wrote (schema 2: values
    /// framed without dictionaries) is upgraded on open: every value is
    /// framed again with its tree's dictionary, and every cursor, lead,
    /// activity, evaluation, outbox item and ledger entry reads back equal.
    /// An upgrade cut short (schema still 2, some values reframed) resumes.
    #[test]
    fn a_schema_two_store_is_reframed_on_open_and_loses_nothing() {
        for cut_short in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let before = {
                let store = Store::open(dir.path()).unwrap();
                let mut b = Batch::default();
                b.set_cursor(Stream::Leads, &Cursor("c-leads".into()));
                b.set_cursor(Stream::Activities, &Cursor("c-acts".into()));
                for i in 0..40 {
                    let id = format!("L{i:02}");
                    b.put_lead(&lead(&id));
                    b.put_state(&id, &state(Some(at(10 + i % 5))), None);
                    b.put_activity(&Activity {
                        id: format!("A{i:02}"),
                        kind: handoff_model::ActivityKind::Call,
                        lead_id: id.clone(),
                        owner_id: Some("005A".into()),
                        occurred_at: at(9),
                        modified_at: at(9),
                        subject: Some("Call".into()),
                        direction: None,
                        completed: true,
                        handoff_key: None,
                        automated: false,
                        deleted: false,
                        opportunity_id: None,
                    });
                }
                for seq in 1..=5 {
                    b.enqueue(seq, &reassign(&format!("k{seq}"), "L01"), at(9));
                }
                b.set_next_seq(6);
                for i in 0..10 {
                    b.put(
                        Tree::Ledger,
                        format!("done-{i}").into_bytes(),
                        &LedgerEntry {
                            lead_id: format!("L{i:02}"),
                            crm_id: format!("00T{i}"),
                            done_at: at(9),
                            kind: ActionSummary::UpdateLead,
                            attempts: 1,
                        },
                    );
                }
                store.commit(b).unwrap();
                // What schema 2 wrote: the same JSON, framed without a dictionary.
                let mut old = Vec::new();
                let mut reframed = 0;
                for tree in Tree::ALL {
                    for (key, value) in store.backend.range(tree, b"", None, usize::MAX).unwrap() {
                        if value.first().is_some_and(|f| {
                            *f == codec::JSON_FORMAT || codec::is_compressed(*f) || codec::is_binary(*f)
                        }) {
                            let json = codec::as_older_json(tree, &key, &value);
                            let framed = codec::framed_without_dictionary(&json);
                            // Cut short: the first leads were already reframed.
                            if framed != value && !(cut_short && tree == Tree::Leads && reframed < 10) {
                                old.push(Write { tree, key, value: Some(framed) });
                            }
                            reframed += usize::from(tree == Tree::Leads);
                        }
                    }
                }
                assert!(old.len() >= 90, "leads, states, activities and ledger entries are framed anew: {}", old.len());
                let mut schema = Batch::default();
                schema.set_meta_u64("schema", 2);
                old.extend(schema.writes);
                store.backend.commit(&old).unwrap();
                let stale = store.backend.range(Tree::States, b"", None, usize::MAX).unwrap();
                assert!(stale.iter().all(|(_, v)| !codec::is_current(Tree::States, v)), "written as schema 2 did");
                (store.leads().unwrap(), store.outbox().unwrap(), store.counts().unwrap())
            };
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.meta_u64("schema").unwrap(), Some(SCHEMA_VERSION));
            for tree in [Tree::Leads, Tree::States, Tree::Activities, Tree::Ledger] {
                let values = store.backend.range(tree, b"", None, usize::MAX).unwrap();
                assert!(!values.is_empty());
                assert!(values.iter().all(|(_, v)| codec::is_current(tree, v)), "{} reframed", tree.name());
            }
            assert_eq!(store.cursor(Stream::Leads).unwrap(), Some(Cursor("c-leads".into())));
            assert_eq!(store.cursor(Stream::Activities).unwrap(), Some(Cursor("c-acts".into())));
            assert_eq!(store.leads().unwrap(), before.0);
            assert_eq!(store.state("L07").unwrap(), Some(state(Some(at(12)))));
            assert_eq!(store.activities_of("L07").unwrap().len(), 1);
            assert_eq!(store.outbox().unwrap(), before.1);
            assert_eq!(store.next_seq().unwrap(), 6);
            for i in 0..10 {
                let entry = store.ledger(&ActionKey(format!("done-{i}"))).unwrap();
                assert_eq!(entry.map(|e| e.crm_id), Some(format!("00T{i}")));
            }
            assert_eq!(store.counts().unwrap(), before.2);
            assert_eq!(store.counts().unwrap(), store.recount().unwrap());
        }
    }

    /// Walking a tree a slice at a time sees every key once, in order,
    /// whether the tree fills its last slice exactly or not.
    #[test]
    fn a_walk_by_slices_sees_every_lead_once() {
        for (store, _dir) in stores() {
            for n in [0usize, 1, 4, 5, 11] {
                let mut b = Batch::default();
                for i in 0..n {
                    b.put_lead(&lead(&format!("W{n:02}-{i:02}")));
                }
                store.commit(b).unwrap();
            }
            let mut seen: Vec<String> = Vec::new();
            store
                .slices(Tree::Leads, 5, |entries| {
                    assert!(entries.len() <= 5);
                    seen.extend(entries.into_iter().map(|(k, _)| String::from_utf8(k).unwrap()));
                    Ok(())
                })
                .unwrap();
            let all: Vec<String> = store.leads().unwrap().into_iter().map(|l| l.lead.id).collect();
            assert_eq!(seen, all);
            assert_eq!(seen.len(), 21);
            // As a sweep reads them: after a lead, never it again; the
            // evaluated ones, or every stored lead (a first start's).
            let mut b = Batch::default();
            let evaluated: Vec<String> = all.iter().step_by(2).cloned().collect();
            for id in &evaluated {
                b.put_state(id, &state(None), None);
            }
            store.commit(b).unwrap();
            for (every_stored_lead, expected) in [(false, &evaluated), (true, &all)] {
                let mut swept: Vec<String> = Vec::new();
                loop {
                    let sweep = Sweep { why: "test".into(), after: swept.last().cloned(), every_stored_lead };
                    let next = store.sweep_ids_after(&sweep, 4).unwrap();
                    if next.is_empty() {
                        break;
                    }
                    swept.extend(next);
                }
                assert_eq!(&swept, expected);
            }
        }
    }

    /// Values are compressed when that pays, read back equal, and a
    /// damaged one is named rather than misread.
    #[test]
    fn stored_values_are_compressed_and_read_back_equal() {
        let mut big = lead("L1");
        for i in 0..20 {
            big.lead.fields.insert(format!("Field{i}__c"), serde_json::json!(format!("value number {i}")));
        }
        let json = serde_json::to_vec(&big).unwrap();
        let bytes = encode(Tree::Leads, b"L1", &big).unwrap();
        assert!(codec::is_current(Tree::Leads, &bytes));
        assert!(bytes.len() * 2 < json.len(), "{} bytes of JSON took {}", json.len(), bytes.len());
        assert_eq!(decode::<StoredLead>(Tree::Leads, b"L1", &bytes).unwrap(), big);
        let small = encode(Tree::Meta, b"schema", &2u64).unwrap();
        assert_eq!(small, b"\x012");
        let mut damaged = bytes.clone();
        damaged.truncate(bytes.len() / 2);
        let err = decode::<StoredLead>(Tree::Leads, b"L1", &damaged).unwrap_err().to_string();
        assert!(err.contains("leads") && err.contains("L1") && err.contains("damaged"), "{err}");
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    /// A store churned by rewrites: every lead written again and again.
    fn churned(dir: &Path) -> Vec<PlainEntry> {
        let store = Store::open(dir).unwrap();
        for round in 0..8 {
            let mut b = Batch::default();
            for i in 0..300 {
                let mut l = lead(&format!("L{i:03}"));
                l.watched = format!("round {round} {}", "x".repeat(200));
                b.put_lead(&l);
                b.put_state(&format!("L{i:03}"), &state(Some(at(1 + round))), None);
            }
            b.set_cursor(Stream::Leads, &Cursor(format!("c{round}")));
            store.commit(b).unwrap();
        }
        let mut b = Batch::default();
        b.enqueue(1, &reassign("k1", "L001"), at(9));
        b.set_next_seq(2);
        store.commit(b).unwrap();
        store.plain_entries().unwrap()
    }

    #[test]
    fn compaction_keeps_every_key_and_value_and_gives_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let before = churned(dir.path());
        let done = Store::compact(dir.path(), 16).unwrap();
        assert!(done.bytes_after < done.bytes_before, "{done:?}");
        // Each lead's record and evaluation are one bundle, one key.
        assert_eq!(done.keys, before.len() - 300);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.plain_entries().unwrap(), before);
        assert_eq!(store.counts().unwrap(), store.recount().unwrap());
        assert_eq!(store.cursor(Stream::Leads).unwrap(), Some(Cursor("c7".into())));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.contains(&"state.sled".to_string()) && names.contains(&"compact.lock".to_string()),
            "nothing of the compaction is left beside the database and its lock: {names:?}"
        );
    }

    /// A disk filling up stops a compaction before it fills: the database
    /// is left as it was, the copy removed, and the message says what to do.
    #[test]
    fn a_compaction_stops_short_of_filling_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let before = churned(dir.path());
        // Asked to keep more free than any disk has: it must stop at once.
        let err = SledBackend::compact_keeping_free(dir.path(), 16 << 20, u64::MAX).unwrap_err().to_string();
        assert!(err.contains("left free") && err.contains("as it was") && err.contains("free some space"), "{err}");
        assert!(!dir.path().join("state.sled.compact").exists(), "the copy is removed");
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.plain_entries().unwrap(), before);
        assert_eq!(store.counts().unwrap(), store.recount().unwrap());
    }

    /// An open while another process compacts leaves that compaction's
    /// copy alone (the lock says it is being written, not abandoned).
    #[test]
    fn an_open_leaves_a_running_compaction_alone() {
        let dir = tempfile::tempdir().unwrap();
        churned(dir.path());
        let copy = dir.path().join("state.sled.compact");
        std::fs::create_dir_all(&copy).unwrap();
        let held = backend::compaction_lock(dir.path()).unwrap().expect("free");
        assert!(backend::compaction_lock(dir.path()).unwrap().is_none(), "a second holder is refused");
        drop(Store::open(dir.path()).unwrap());
        assert!(copy.exists(), "the copy being written was left alone");
        drop(held);
        drop(Store::open(dir.path()).unwrap());
        assert!(!copy.exists(), "once nobody compacts, an unmarked copy is thrown away");
    }

    /// A crash at each step of the swap: a copy not marked whole is thrown
    /// away; a marked one replaces the database whether or not the old one
    /// was moved aside yet.
    #[test]
    fn an_interrupted_compaction_is_finished_or_undone_on_open() {
        for step in ["copy unfinished", "marked, old still in place", "marked, old moved aside"] {
            let dir = tempfile::tempdir().unwrap();
            let before = churned(dir.path());
            let (db, copy) = (dir.path().join("state.sled"), dir.path().join("state.sled.compact"));
            copy_dir(&db, &copy);
            match step {
                "copy unfinished" => {
                    // The copy is garbage: it must never be read.
                    std::fs::write(copy.join("db"), b"half written").unwrap();
                }
                "marked, old still in place" => {
                    std::fs::write(dir.path().join("state.sled.compact.done"), b"").unwrap()
                }
                _ => {
                    std::fs::write(dir.path().join("state.sled.compact.done"), b"").unwrap();
                    std::fs::rename(&db, dir.path().join("state.sled.old")).unwrap();
                }
            }
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.plain_entries().unwrap(), before, "{step}");
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, ["compact.lock", "state.sled"], "{step}");
        }
    }

    #[test]
    fn committed_batches_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut b = Batch::default();
            b.set_cursor(Stream::Leads, &Cursor("c1".into()));
            b.put_lead(&lead("L1"));
            store.commit(b).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.cursor(Stream::Leads).unwrap(), Some(Cursor("c1".into())));
        assert!(store.lead("L1").unwrap().is_some());
    }

    /// The intake book and the arrivals count within a batch before it is
    /// committed, and keep only what a decision can still read.
    #[test]
    fn intake_book_and_arrivals_count_pending_writes_and_are_pruned() {
        let store = Store::in_memory();
        let now: DateTime<Utc> = "2026-03-20T12:00:00Z".parse().unwrap();
        let today = now.date_naive();
        let old_day = today - chrono::Duration::days(INTAKE_KEPT_DAYS + 1);
        let mut batch = Batch::default();
        batch.record_intake("rep", today, "L1");
        batch.record_intake("rep", today, "L1"); // the same lead once
        batch.record_intake("rep", today, "L2");
        batch.record_intake("other", today, "L3");
        batch.record_intake("rep", old_day, "L0");
        assert_eq!(store.intake_load("rep", today, &batch).unwrap(), 2, "pending writes count");
        let old = now - chrono::Duration::hours(ARRIVALS_KEPT_HOURS + 1);
        batch.record_arrival(old, "L0", true);
        batch.record_arrival(now - chrono::Duration::minutes(30), "L1", false);
        let recent = store.arrivals_between(now - chrono::Duration::hours(1), now, &batch).unwrap();
        assert_eq!(recent.len(), 1);
        store.commit(batch).unwrap();
        let empty = Batch::default();
        assert_eq!(store.intake_load("rep", today, &empty).unwrap(), 2);
        assert_eq!(store.intake_load("rep", old_day, &empty).unwrap(), 1);
        assert_eq!(store.prune_books(now).unwrap(), 2, "the old day and the old arrival");
        assert_eq!(store.intake_load("rep", old_day, &empty).unwrap(), 0);
        assert_eq!(store.intake_load("rep", today, &empty).unwrap(), 2);
        assert_eq!(store.intake_load("other", today, &empty).unwrap(), 1);
        assert_eq!(store.arrivals_between(old - chrono::Duration::hours(1), now, &empty).unwrap().len(), 1);
        assert_eq!(store.prune_books(now).unwrap(), 0);
        assert_eq!(store.counts().unwrap(), store.recount().unwrap());
    }
}
