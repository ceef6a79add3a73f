//! The loop that makes the SLA happen: sync → evaluate → enforce.
//!
//! One [`Daemon::tick`] is one cycle at one instant ("now", fixed for the
//! whole tick and shared with the connector's window arithmetic):
//!
//! 1. **sync**: pull every stream that is due (leads and activities every
//!    tick, owners and calendars on their own cadence) page by page; each
//!    page is applied and committed together with its cursor and the dirty
//!    marks of the leads it touched, so a crash between pages re-reads at
//!    most one page and loses no work owed
//!    (at most `sync.pages_per_tick` pages per stream; the rest waits for
//!    the next tick). A first start's backfill marks nothing: every lead
//!    it reads is new, and one [`Sweep`] over every stored lead follows it
//!    (see [`Daemon::note_first_sweep`]);
//! 2. **evaluate**, only once every due stream was read to its end (a
//!    touch on an unread page must not become an escalation): every dirty
//!    lead and every lead whose next deadline has passed (the deadline
//!    index, never a scan) goes through the engine, then the next leads of
//!    a [`Sweep`] (after a policy change: every lead, in id order, its
//!    progress committed with each chunk); its state, its new deadline and
//!    the actions the ledger does not know yet are committed together;
//! 3. **enforce**: the outbox is drained in order through the connector and
//!    each outcome recorded (see [`outbox`]);
//! 4. **notify** (with `[notify]`): the digests and the weekly summary that
//!    are due are queued after the evaluation, and delivered after the
//!    outbox (see [`crate::notify`]).
//!
//! The service ([`service`]) repeats ticks on the configured interval; the
//! demo and the tests call [`Daemon::tick`] themselves while they move the
//! sandbox's simulated clock.

pub mod availability;
pub mod connect;
mod evaluate;
pub mod outbox;
pub mod service;
pub mod sync;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use handoff_model::{ApiBudget, Connector, ConnectorError, CrmKind, Owner, OwnerKind, Stream};
use serde::Serialize;

use crate::config::{Config, DaemonSettings, SyncSettings};
use crate::policy::CompiledPolicy;
use crate::policy::Enforcement;

/// Store metadata: when the daemon first started on this state directory.
pub const FIRST_START: &str = "first_started_at";
/// Store metadata: the backlog found at the first full evaluation was logged.
const GRAVEYARD_REPORTED: &str = "graveyard_reported";
/// Store metadata: the fingerprint of the days off the CRM recorded.
const CRM_TIME_OFF: &str = "crm_time_off";
/// Store metadata: `owed` while a first start's backfill reads, its pages
/// marking no lead dirty; `done` once the [`Sweep`] over every stored lead
/// that replaces those marks has started (or for a store that was not
/// empty when this was first recorded).
const FIRST_SWEEP: &str = "first_sweep";
/// The values of [`FIRST_SWEEP`].
const FIRST_SWEEP_OWED: &str = "owed";
const FIRST_SWEEP_DONE: &str = "done";
use crate::store::{Batch, IndexStep, Store, StoreError, Sweep, INDEX_STEP_ACTIVITIES};
pub use connect::{SharedNow, TimeSource};

/// Whether a first start's backfill is reading `store` (its leads wait
/// for the sweep that follows it; see [`Daemon::note_first_sweep`]).
pub fn first_sweep_owed(store: &Store) -> Result<bool, StoreError> {
    Ok(store.meta_text(FIRST_SWEEP)?.as_deref() == Some(FIRST_SWEEP_OWED))
}

/// Leads evaluated per commit. A commit waits for the disk (about 15 ms
/// here) while the next chunk is judged (about 50 µs a lead on two
/// cores): at 500 the wait hides behind the judging, and what the two
/// chunks in flight hold stays small (a crash redoes at most this many).
const EVALUATE_CHUNK: usize = 500;
/// Leads taken from the queue at once: their chunks are judged one ahead
/// of the chunk being committed.
const EVALUATE_WINDOW: usize = 5_000;
/// Leads evaluated per tick at most.
const MAX_EVALUATIONS_PER_TICK: usize = 20_000;
/// Write calls per tick at most.
const MAX_WRITE_ROUNDS: usize = 20;

/// The streams listed whole on their own cadence (`sync.owners_every_secs`,
/// `sync.calendars_every_secs`) rather than every tick.
const LISTED_ON_CADENCE: [Stream; 2] = [Stream::Owners, Stream::Calendars];

/// Each owner's kind (a user or a queue), by id.
fn owner_kinds(owners: &[Owner]) -> HashMap<String, OwnerKind> {
    owners.iter().map(|o| (o.id.clone(), o.kind)).collect()
}

/// Store metadata: when `stream` was last read to its end.
fn read_at_key(stream: Stream) -> String {
    format!("read_at:{}", stream.as_str())
}

/// What one evaluation window takes of the [`Sweep`] under way.
struct SweepWindow {
    /// The sweep as the window found it (where it got to aside).
    sweep: Sweep,
    /// The last lead id the window listed (`None`: none was left).
    last_listed: Option<String>,
    /// Fewer leads were left than the window had room for.
    exhausted: bool,
    /// The listed leads the window judges for the sweep (the others were
    /// dirty or due, and judged earlier in the window).
    ids: std::collections::HashSet<String>,
}

impl SweepWindow {
    /// Records the sweep past `lead_id`.
    fn reached(&self, lead_id: &str, batch: &mut Batch) {
        batch.set_sweep(&Sweep { after: Some(lead_id.to_string()), ..self.sweep.clone() });
    }

    /// Records the sweep past everything the window listed, or ends it.
    fn advance(&self, batch: &mut Batch) {
        match (&self.last_listed, self.exhausted) {
            (Some(last), false) => self.reached(last, batch),
            _ => {
                tracing::info!(why = %self.sweep.why, "every lead is evaluated again: done");
                batch.end_sweep();
            }
        }
    }
}

/// Why a tick could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
    #[error("a batch could not be encoded: {0}")]
    Encode(String),
    #[error(transparent)]
    Notify(#[from] crate::notify::run::NotifyError),
    #[error("the state directory {state_dir} holds leads read as {stored}, but the config reads {configured}: their ids differ, so the old leads' clocks would run on beside the new ones. Start the instance on a fresh state_dir (keep the old one for its history), or set the config back")]
    LeadRecordChanged { state_dir: String, stored: String, configured: String },
}

/// The CRM record a state directory's leads are: a Salesforce Lead, a
/// HubSpot contact, or a HubSpot lead record (leads mode).
pub fn lead_record_kind(config: &Config) -> &'static str {
    match &config.connection {
        crate::config::Connection::Salesforce(_) => "Salesforce Leads",
        crate::config::Connection::Hubspot(h) => match h.lead_object {
            crate::config::HubspotLeadObject::Contacts => "HubSpot contacts",
            crate::config::HubspotLeadObject::Leads => "HubSpot lead records",
        },
    }
}

/// The store's record of which CRM record its leads are ([`lead_record_kind`]).
const LEAD_RECORD_META: &str = "lead_record";

/// The running policy, shared with the HTTP endpoints and replaced on reload.
pub use crate::http::PublishedPolicy;

/// Why a reloaded config was refused; the running config stays whole.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0} cannot change while handoff runs; restart the service to apply the new config")]
    NeedsRestart(String),
    #[error("the new config's connector could not be built, so none of it is applied: {0}")]
    Connect(connect::ConnectError),
    #[error(transparent)]
    Daemon(DaemonError),
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Why the connector was rebuilt (empty: it was kept).
    pub rebuilt_for: Vec<&'static str>,
}

/// What a reload from `old` to `new` must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadPlan {
    /// What changed that the connector is built from (empty: keep it).
    pub rebuild: Vec<&'static str>,
}

/// Decide how `new` can replace `old` while running: `Err` names what
/// only a restart can change (the instance, the metrics address, the
/// shutdown grace, the state cache).
pub fn reload_plan(old: &Config, new: &Config) -> Result<ReloadPlan, String> {
    if old.instance != new.instance {
        return Err("[instance] (name, crm, state_dir)".into());
    }
    if old.daemon.metrics_listen != new.daemon.metrics_listen {
        return Err("daemon.metrics_listen".into());
    }
    if old.daemon.shutdown_grace_secs != new.daemon.shutdown_grace_secs {
        return Err("daemon.shutdown_grace_secs".into());
    }
    if old.daemon.state_cache_mib != new.daemon.state_cache_mib {
        return Err("daemon.state_cache_mib".into());
    }
    let mut rebuild = Vec::new();
    if old.connection != new.connection {
        rebuild.push("the connection settings");
    }
    if old.policy.referenced_fields() != new.policy.referenced_fields() {
        rebuild.push("the fields the policy reads");
    }
    if old.lag_secs() != new.lag_secs() || old.lookback_secs() != new.lookback_secs() {
        rebuild.push("the sync window (lag, lookback)");
    }
    if old.sync.clock != new.sync.clock {
        rebuild.push("the clock");
    }
    if old.policy.owners.managers != new.policy.owners.managers {
        rebuild.push("the owners' managers");
    }
    if old.policy.reads_opportunities() != new.policy.reads_opportunities() {
        rebuild.push("whether opportunities are read (the AE's commitments)");
    }
    if lead_record_kind(old) != lead_record_kind(new) {
        return Err("hubspot.lead_object (the record read as the lead; a state directory holds one kind)".into());
    }
    Ok(ReloadPlan { rebuild })
}

/// What one tick did, for logs, metrics and the demo.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct TickReport {
    pub now: Option<DateTime<Utc>>,
    pub pages: usize,
    pub leads_changed: usize,
    pub echoes: usize,
    pub activities_changed: usize,
    pub deletions: usize,
    pub evaluated: usize,
    pub enqueued: usize,
    pub superseded: usize,
    pub written: usize,
    pub write_retries: usize,
    pub write_failures: usize,
    /// Digests and summaries delivered by email or Slack.
    pub messages_sent: usize,
    /// Records the connector could not map, kept in quarantine this tick.
    pub quarantined: usize,
    /// Leads not evaluated this tick because a record of theirs is quarantined.
    pub held: usize,
    /// Streams that did not finish their window this tick.
    pub streams_behind: Vec<Stream>,
    /// Set when the API budget paused the connector.
    pub paused_until: Option<DateTime<Utc>>,
    pub errors: Vec<String>,
    /// Nothing left to do at this instant: every stream read to its window's
    /// end, no lead waiting, no action ready to send.
    pub caught_up: bool,
}

impl TickReport {
    /// Whether the tick moved anything (for the adaptive interval and the
    /// watchdog).
    pub fn did_work(&self) -> bool {
        self.leads_changed
            + self.activities_changed
            + self.deletions
            + self.enqueued
            + self.written
            + self.messages_sent
            > 0
    }
}

/// One CRM instance's loop.
pub struct Daemon {
    /// The instance's name, for messages that leave handoff.
    instance: String,
    policy: Arc<CompiledPolicy>,
    /// The same policy, for readers outside the loop (`/scorecard`).
    published_policy: PublishedPolicy,
    sync: SyncSettings,
    /// The lag windows end at (the connector's own unless the operator set one).
    lag_secs: u64,
    settings: DaemonSettings,
    connector: Arc<dyn Connector>,
    store: Arc<Store>,
    time: TimeSource,
    now: SharedNow,
    /// When owners and calendars were last read to the end (kept in the
    /// store: a restart does not list them again before they are due).
    last_read: HashMap<Stream, DateTime<Utc>>,
    owners: Vec<Owner>,
    /// The config's own days off (`policy.owners.time_off`), which the
    /// CRM's absences are added to.
    configured_time_off: std::collections::BTreeMap<String, Vec<chrono::NaiveDate>>,
    /// The CRM's days off merged into the policy; `None`: to be read again
    /// (at start, after a reload, when a page changed an absence).
    crm_time_off: Option<std::collections::BTreeMap<String, Vec<chrono::NaiveDate>>>,
    shutdown: Arc<AtomicBool>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Digests and the weekly summary (`[notify]`).
    notifier: Option<crate::notify::Notifier>,
    signals: crate::config::notify::SignalSettings,
    /// A first start's backfill is reading (see [`FIRST_SWEEP`]).
    first_sweep_owed: bool,
}

impl Daemon {
    /// A daemon over an already authenticated connector. `now` must be the
    /// [`SharedNow`] the connector reads its windows against.
    pub fn new(
        config: &Config,
        connector: Arc<dyn Connector>,
        store: Arc<Store>,
        time: TimeSource,
        now: SharedNow,
    ) -> Result<Daemon, DaemonError> {
        let owners = store.owners()?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        metrics.load(&store)?;
        let mut last_read = HashMap::new();
        for stream in LISTED_ON_CADENCE {
            let at = store.meta_text(&read_at_key(stream))?.and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
            if let Some(at) = at {
                last_read.insert(stream, at.with_timezone(&Utc));
            }
        }
        // One copy, shared with the HTTP endpoints (a policy naming every
        // owner's calendar and days off is not small).
        let policy = Arc::new(config.policy.clone());
        let mut daemon = Daemon {
            instance: config.instance.name.clone(),
            policy: policy.clone(),
            published_policy: Arc::new(std::sync::RwLock::new(policy)),
            sync: config.sync.clone(),
            lag_secs: config.lag_secs(),
            settings: config.daemon.clone(),
            connector,
            store,
            time,
            now,
            last_read,
            owners,
            configured_time_off: config.policy.time_off.clone(),
            crm_time_off: None,
            shutdown: Arc::new(AtomicBool::new(false)),
            metrics,
            notifier: crate::notify::Notifier::from_config(config)?,
            signals: config.signals.clone(),
            first_sweep_owed: false,
        };
        daemon.first_sweep_owed = daemon.note_first_sweep()?;
        daemon.note_lead_record(config)?;
        daemon.note_policy(&config.policy_fingerprint())?;
        Ok(daemon)
    }

    /// Whether a first start's backfill is under way: on an empty store,
    /// the pulls read every lead there is, all of them new, and marking
    /// each dirty (then each again for every activity) would write and
    /// delete a key per lead and per activity — at a million leads, a
    /// sled tree of a million keys (at 300,000 leads the pull peaked 21 MiB
    /// higher with it).
    /// So its pages mark nothing, and once every stream is read to its end
    /// one [`Sweep`] evaluates every stored lead in id order (see
    /// [`Daemon::start_first_sweep`]). Recorded on the first start; a store
    /// that already holds leads or cursors marks them as before.
    fn note_first_sweep(&self) -> Result<bool, DaemonError> {
        if let Some(recorded) = self.store.meta_text(FIRST_SWEEP)? {
            return Ok(recorded == FIRST_SWEEP_OWED);
        }
        let mut fresh = self.store.counts()?.leads == 0 && self.store.evaluated_count()? == 0;
        for stream in Stream::ALL {
            fresh &= self.store.cursor(stream)?.is_none();
        }
        let mut batch = Batch::default();
        batch.set_meta_text(FIRST_SWEEP, if fresh { FIRST_SWEEP_OWED } else { FIRST_SWEEP_DONE });
        if fresh {
            batch.defer_activity_index();
        }
        self.commit(batch)?;
        Ok(fresh)
    }

    /// Once a first start's streams are read to their end: the activity
    /// index its pages deferred is built, then the [`Sweep`] over every
    /// stored lead that stands for the dirty marks they did not write
    /// starts, and from now on pages mark as usual. The sweep starts in
    /// one commit, so a crash either leaves it owed or started; a stop
    /// asked for while the index is built leaves both for the next tick
    /// (`false`: evaluation waits).
    fn start_first_sweep(&mut self) -> Result<bool, DaemonError> {
        if !self.first_sweep_owed {
            return Ok(true);
        }
        if !self.build_activity_index()? {
            return Ok(false);
        }
        let mut batch = Batch::default();
        batch.set_sweep(&Sweep { why: "first start".to_string(), after: None, every_stored_lead: true });
        batch.set_meta_text(FIRST_SWEEP, FIRST_SWEEP_DONE);
        self.commit(batch)?;
        self.first_sweep_owed = false;
        tracing::info!(leads = self.store.counts()?.leads, "every stream read: every lead is evaluated");
        Ok(true)
    }

    /// Builds the activity index a first start deferred (see
    /// `store::activities`), step by step (each step's commits leave the
    /// index right for the files it read); `false` when a stop cut it
    /// short (the next start goes on from there).
    fn build_activity_index(&self) -> Result<bool, DaemonError> {
        if !self.store.activity_index_deferred()? {
            return Ok(true);
        }
        let started = std::time::Instant::now();
        let mut total = IndexStep::default();
        loop {
            if self.stopping() {
                return Ok(false);
            }
            let step = self.store.index_activities_step(INDEX_STEP_ACTIVITIES)?;
            // Committed: the watchdog may be pinged.
            self.metrics.progress.fetch_add(1, Ordering::Relaxed);
            total.files += step.files;
            total.activities += step.activities;
            total.duplicates += step.duplicates;
            total.deletions += step.deletions;
            tracing::debug!(files = total.files, activities = total.activities, "indexing the activities read");
            if step.done {
                tracing::info!(
                    leads = total.files,
                    activities = total.activities,
                    filed_twice = total.duplicates,
                    deletions_applied = total.deletions,
                    secs = started.elapsed().as_secs(),
                    "the activities read are indexed"
                );
                return Ok(true);
            }
        }
    }

    /// Records which CRM record the leads are on the first start, and
    /// refuses a config that reads another kind into the same state
    /// directory. A store written before this was recorded holds the only
    /// kind there was then (Salesforce Leads, HubSpot contacts).
    fn note_lead_record(&self, config: &Config) -> Result<(), DaemonError> {
        let configured = lead_record_kind(config);
        let stored = match self.store.meta_text(LEAD_RECORD_META)? {
            Some(kind) => kind,
            None if self.store.counts()?.leads > 0 => match &config.connection {
                crate::config::Connection::Salesforce(_) => "Salesforce Leads".to_string(),
                crate::config::Connection::Hubspot(_) => "HubSpot contacts".to_string(),
            },
            None => configured.to_string(),
        };
        if stored != configured {
            return Err(DaemonError::LeadRecordChanged {
                state_dir: config.instance.state_dir.display().to_string(),
                stored,
                configured: configured.to_string(),
            });
        }
        if self.store.meta_text(LEAD_RECORD_META)?.is_none() {
            let mut batch = Batch::default();
            batch.set_meta_text(LEAD_RECORD_META, configured);
            self.commit(batch)?;
        }
        Ok(())
    }

    /// Sets where enforcement starts (see [`Enforcement`]), once per policy:
    /// `sync.enforce_from`, else the daemon's first start on this state
    /// directory, recorded at that start.
    fn settle_enforcement(&mut self, now: DateTime<Utc>) -> Result<(), DaemonError> {
        if self.policy.enforcement.from.is_some() {
            return Ok(());
        }
        let from = match self.sync.enforce_from_at() {
            Some(at) => at,
            None => {
                match self.store.meta_text(FIRST_START)?.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()) {
                    Some(at) => at.with_timezone(&Utc),
                    None => {
                        // A state directory a handoff without this line already
                        // filled enforced every clock: it goes on doing so.
                        let fresh = self.store.cursor(Stream::Leads)?.is_none() && self.store.counts()?.leads == 0;
                        let from = if fresh { now } else { DateTime::UNIX_EPOCH };
                        let mut batch = Batch::default();
                        batch.set_meta_text(FIRST_START, &from.to_rfc3339());
                        self.commit(batch)?;
                        if fresh {
                            tracing::info!(enforce_from = %now.to_rfc3339(), "first start on this state directory: clocks that started before now are measured, not enforced (sync.enforce_from says otherwise)");
                        } else {
                            tracing::info!("this state directory predates sync.enforce_from: every clock stays enforced, as before");
                        }
                        from
                    }
                }
            }
        };
        let mut policy = (*self.policy).clone();
        policy.enforcement = Enforcement { from: Some(from), write_back_history: self.sync.write_back_history };
        self.set_policy(policy);
        Ok(())
    }

    /// Adds the days off the CRM records (see [`availability`]) to the
    /// policy's own, when they may have changed; when they did change,
    /// every lead is judged again (a rep's clocks and routing depend on
    /// them), once: the days' fingerprint is kept in the store.
    fn settle_availability(&mut self) -> Result<(), DaemonError> {
        if self.crm_time_off.is_some() {
            return Ok(());
        }
        let crm = availability::crm_days_off(&self.store.absences()?, &self.owners);
        let mut policy = (*self.policy).clone();
        policy.time_off = availability::merged(&self.configured_time_off, &crm);
        self.set_policy(policy);
        let fingerprint = crate::engine::keys::short_hash(&serde_json::to_string(&crm).unwrap_or_default(), 16);
        let before = self.store.meta_text(CRM_TIME_OFF)?;
        if before.as_deref() != Some(fingerprint.as_str()) {
            // None recorded and none found: nothing changed for anyone.
            let mut batch = Batch::default();
            if before.is_some() || !crm.is_empty() {
                let leads = self.sweep_every_lead("time off in the CRM changed", &mut batch)?;
                tracing::info!(
                    users = crm.len(),
                    days = crm.values().map(Vec::len).sum::<usize>(),
                    leads,
                    "time off recorded in the CRM changed; every lead is judged again"
                );
            }
            batch.set_meta_text(CRM_TIME_OFF, &fingerprint);
            self.commit(batch)?;
        }
        self.crm_time_off = Some(crm);
        Ok(())
    }

    /// After the first full evaluation, says once what backlog the org
    /// brought (see [`crate::report::graveyard`]); `handoff state` shows it
    /// any time.
    fn report_graveyard_once(&mut self) -> Result<(), DaemonError> {
        if self.store.meta_text(GRAVEYARD_REPORTED)?.is_some() {
            return Ok(());
        }
        let found = crate::report::graveyard::in_store(&self.store, self.policy.enforcement.from)?;
        if found.leads > 0 {
            tracing::warn!(
                leads = found.leads,
                "backlog found, measured and not enforced (`handoff state` lists it): {}",
                found.summary(10)
            );
        } else {
            tracing::info!("no backlog from before enforcement: {}", found.summary(10));
        }
        let mut batch = Batch::default();
        batch.set_meta_text(GRAVEYARD_REPORTED, &found.leads.to_string());
        self.commit(batch)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.connector
    }

    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    pub fn sync_settings(&self) -> &SyncSettings {
        &self.sync
    }

    pub fn settings(&self) -> &DaemonSettings {
        &self.settings
    }

    /// Set to stop at the next safe point (between pages, evaluation
    /// commits and write calls; a write in flight is finished first).
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    /// Uses `flag` (set by a signal handler installed before the daemon
    /// was built) as the stop request.
    pub fn set_shutdown_flag(&mut self, flag: Arc<AtomicBool>) {
        self.shutdown = flag;
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    pub fn budget(&self) -> ApiBudget {
        self.connector.budget()
    }

    /// Applies a new config whole (SIGHUP), or refuses it with the reason
    /// and keeps running on `old`. The connector is rebuilt (and
    /// authenticated) when what it was built from changed: the connection,
    /// the fields the policy reads, the sync window, the clock, the owners'
    /// managers; if that fails, nothing of the new config is applied. A
    /// different policy re-evaluates every lead.
    pub async fn reload(&mut self, old: &Config, new: &Config) -> Result<ReloadReport, ReloadError> {
        let plan = reload_plan(old, new).map_err(ReloadError::NeedsRestart)?;
        // Everything that can refuse the new config comes before anything of it is applied.
        let notifier = crate::notify::Notifier::from_config(new).map_err(|e| ReloadError::Daemon(e.into()))?;
        if !plan.rebuild.is_empty() {
            let time = TimeSource::for_config(new).map_err(ReloadError::Connect)?;
            let connector = connect::connector(new, &self.now).await.map_err(ReloadError::Connect)?;
            self.connector = connector;
            self.time = time;
        }
        self.set_policy(new.policy.clone());
        self.configured_time_off = new.policy.time_off.clone();
        self.crm_time_off = None;
        self.sync = new.sync.clone();
        self.lag_secs = new.lag_secs();
        self.settings = new.daemon.clone();
        self.notifier = notifier;
        self.signals = new.signals.clone();
        self.note_policy(&new.policy_fingerprint()).map_err(ReloadError::Daemon)?;
        Ok(ReloadReport { rebuilt_for: plan.rebuild })
    }

    /// The policy as the HTTP endpoints should see it: replaced on reload.
    pub fn published_policy(&self) -> PublishedPolicy {
        self.published_policy.clone()
    }

    /// Evaluates every lead again when the policy differs from the one the
    /// store was last evaluated under.
    fn note_policy(&self, fingerprint: &str) -> Result<(), DaemonError> {
        if self.store.meta_text("policy")?.as_deref() == Some(fingerprint) {
            return Ok(());
        }
        let mut batch = Batch::default();
        let leads = self.sweep_every_lead("policy changed", &mut batch)?;
        batch.set_meta_text("policy", fingerprint);
        if leads > 0 {
            tracing::info!(leads, "the policy changed; every lead is evaluated again");
        }
        self.commit(batch)
    }

    /// Starts (in `batch`) a [`Sweep`] that evaluates every evaluated lead
    /// again, from the first, replacing one under way (its leads are judged
    /// again too, under what changed now); returns how many leads it
    /// covers. A lead not evaluated yet is dirty and needs no sweep: a
    /// first start sweeps nothing — except that a first start's own sweep
    /// under way stands for dirty marks, so one replacing it covers every
    /// stored lead as it did.
    fn sweep_every_lead(&self, why: &str, batch: &mut Batch) -> Result<usize, DaemonError> {
        let every_stored_lead = self.store.sweep()?.is_some_and(|s| s.every_stored_lead);
        let leads = match every_stored_lead {
            true => self.store.counts()?.leads,
            false => self.store.evaluated_count()?,
        };
        if leads > 0 {
            batch.set_sweep(&Sweep { why: why.to_string(), after: None, every_stored_lead });
        }
        Ok(leads)
    }

    /// Judges by `policy` from now on, and shows it to the HTTP endpoints.
    fn set_policy(&mut self, policy: CompiledPolicy) {
        self.policy = Arc::new(policy);
        if let Ok(mut published) = self.published_policy.write() {
            *published = self.policy.clone();
        }
    }

    fn commit(&self, batch: Batch) -> Result<(), DaemonError> {
        if let Some(e) = batch.error() {
            return Err(DaemonError::Encode(e.to_string()));
        }
        self.store.commit(batch)?;
        self.metrics.progress.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Logs, stores and reports a problem of this tick. The text may come
    /// from the CRM or a token endpoint: it passes the redactor first.
    fn record_error(&self, report: &mut TickReport, phase: &str, message: String) {
        let message = handoff_model::redact(&message);
        let now = report.now.unwrap_or_default();
        tracing::warn!(phase, error = %message, "tick problem");
        if let Err(e) = self.store.record_error(now, phase, &message) {
            tracing::error!(error = %e, "cannot record an error in the store");
        }
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        // A call that ended by its deadline is the loop moving on, not a
        // stuck loop: the watchdog may be pinged.
        self.metrics.progress.fetch_add(1, Ordering::Relaxed);
        report.errors.push(format!("{phase}: {message}"));
    }

    fn stream_due(&self, stream: Stream, now: DateTime<Utc>) -> bool {
        let every = match stream {
            Stream::Owners => self.sync.owners_every_secs,
            Stream::Calendars => self.sync.calendars_every_secs,
            Stream::Leads | Stream::Activities => return true,
            // Read only for a policy with the AE's commitments.
            Stream::Opportunities => return self.policy.reads_opportunities(),
        };
        // A read recorded after now (a clock set back) does not wait.
        self.last_read.get(&stream).is_none_or(|at| *at > now || now - *at >= Duration::seconds(every as i64))
    }

    /// One cycle at the time source's current instant.
    pub async fn tick(&mut self) -> Result<TickReport, DaemonError> {
        let now = self.time.now().await?;
        self.now.set(now);
        self.settle_enforcement(now)?;
        let mut report = TickReport { now: Some(now), ..TickReport::default() };
        let span = tracing::info_span!("tick", now = %now.to_rfc3339());
        let _enter = span.enter();

        self.reread_quarantine_if_due(now)?;

        let mut streams_finished = true;
        for stream in Stream::ALL {
            if self.stopping() || report.paused_until.is_some() {
                streams_finished = false;
                break;
            }
            if !self.stream_due(stream, now) {
                continue;
            }
            match self.sync_stream(stream, now, &mut report).await? {
                true => {
                    self.last_read.insert(stream, now);
                    if LISTED_ON_CADENCE.contains(&stream) {
                        let mut batch = Batch::default();
                        batch.set_meta_text(&read_at_key(stream), &now.to_rfc3339());
                        self.commit(batch)?;
                    }
                }
                false => {
                    streams_finished = false;
                    report.streams_behind.push(stream);
                }
            }
        }

        // A lead's touches may sit on a page not read yet: judging its clocks
        // before every stream is read to its end would escalate leads whose
        // reps did call. Evaluation waits for a tick that reads them all.
        let evaluations_done = if self.stopping() {
            false
        } else if !streams_finished {
            tracing::debug!(behind = ?report.streams_behind, "streams not read to the end; evaluation waits for the next tick");
            false
        } else {
            self.settle_availability()?;
            self.start_first_sweep()? && self.evaluate_pending(now, &mut report)?
        };
        if evaluations_done && !self.stopping() {
            let pruned = self.store.prune_books(now)?;
            if pruned > 0 {
                tracing::debug!(keys = pruned, "dropped intake and arrival records no decision reads any more");
            }
            self.weekly(now, &mut report)?;
            self.plan_notices(now, &mut report)?;
        }
        let outbox_done = if self.stopping() || report.paused_until.is_some() {
            false
        } else {
            self.drain_outbox(now, &mut report).await?
        };
        let messages_done = match &self.notifier {
            None => true,
            Some(_) if self.stopping() => false,
            Some(n) => {
                let d = n.drain(&self.store, now, self.settings.max_write_attempts).await?;
                report.messages_sent += d.sent;
                self.metrics.errors.fetch_add((d.failed + d.retrying) as u64, Ordering::Relaxed);
                report.errors.extend(d.errors.into_iter().map(|e| format!("notify: {e}")));
                d.done
            }
        };

        report.caught_up =
            streams_finished && evaluations_done && outbox_done && messages_done && report.errors.is_empty();
        if report.caught_up {
            self.report_graveyard_once()?;
        }
        let summary = crate::metrics::TickSummary {
            now: report.now,
            caught_up: report.caught_up,
            errors: report.errors.clone(),
            paused_until: report.paused_until,
        };
        self.metrics.observe_tick(summary, &self.connector.budget());
        tracing::info!(
            pages = report.pages,
            leads_changed = report.leads_changed,
            echoes = report.echoes,
            activities = report.activities_changed,
            evaluated = report.evaluated,
            enqueued = report.enqueued,
            written = report.written,
            failures = report.write_failures,
            behind = ?report.streams_behind,
            caught_up = report.caught_up,
            "tick done"
        );
        Ok(report)
    }

    /// Quarantined records are read again on their own an hour after the
    /// last time they were read unreadable (a fault that cleared, a record
    /// someone fixed without touching it again); `handoff state
    /// --retry-quarantined` does it at once. See [`reread_quarantine`].
    fn reread_quarantine_if_due(&self, now: DateTime<Utc>) -> Result<(), DaemonError> {
        let kept = self.store.quarantine()?;
        let due = kept.iter().map(|q| q.last_at).min().is_some_and(|oldest| now - oldest >= QUARANTINE_REREAD_AFTER);
        if !due {
            return Ok(());
        }
        let mut batch = Batch::default();
        let n = reread_quarantine(&self.store, self.connector.crm(), &mut batch)?;
        tracing::info!(records = n, "reading quarantined records again");
        self.commit(batch)
    }

    /// Reads `stream` page by page. `Ok(true)`: its window was read to the end.
    async fn sync_stream(
        &mut self,
        stream: Stream,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<bool, DaemonError> {
        let mut cursor = self.store.cursor(stream)?;
        let sla_fields: BTreeSet<String> = self.policy.sla_field_names().iter().map(|s| s.to_string()).collect();
        let history_fields = self.policy.history_fields();
        // Built once, not per page: a backfill reads thousands of pages and
        // a large org has thousands of owners.
        let mut kinds = owner_kinds(&self.owners);
        for _ in 0..self.sync.pages_per_tick {
            if self.stopping() {
                return Ok(false);
            }
            tracing::debug!(phase = "pull", stream = stream.as_str(), "pulling a page");
            let page = match self.connector.pull(stream, cursor.as_ref()).await {
                Ok(p) => p,
                Err(ConnectorError::Budget { retry_after, .. }) => {
                    report.paused_until =
                        Some(now + Duration::from_std(retry_after).unwrap_or_else(|_| Duration::minutes(15)));
                    tracing::info!(stream = stream.as_str(), ?retry_after, "API budget reached; pulls pause");
                    return Ok(false);
                }
                Err(e @ ConnectorError::BadCursor { .. }) => {
                    self.record_error(
                        report,
                        &format!("sync:{}", stream.as_str()),
                        format!(
                            "{e}. Fix: `handoff state --config FILE --resync {}` re-reads the stream from the start",
                            stream.as_str()
                        ),
                    );
                    return Ok(false);
                }
                Err(e) => {
                    self.record_error(report, &format!("sync:{}", stream.as_str()), e.to_string());
                    return Ok(false);
                }
            };
            crate::failpoints::hit(crate::failpoints::PULL_FETCHED);
            report.pages += 1;
            self.metrics.pages.fetch_add(1, Ordering::Relaxed);
            let applier = sync::PageApplier {
                store: &self.store,
                owner_kinds: &kinds,
                sla_fields: &sla_fields,
                status_field: &self.policy.fields.status,
                history_fields: &history_fields,
                now,
                marks_dirty: !self.first_sweep_owed,
            };
            let mut batch = Batch::default();
            let applied = applier.apply(&page, &mut batch)?;
            if let Some(c) = &page.cursor {
                batch.set_cursor(stream, c);
            }
            self.commit(batch)?;
            crate::failpoints::hit(crate::failpoints::PULL_COMMITTED);
            report.leads_changed += applied.leads_changed;
            report.echoes += applied.echoes;
            report.activities_changed += applied.activities_changed;
            report.deletions += applied.deletions;
            report.quarantined += applied.quarantined;
            if applied.owners > 0 {
                self.owners = self.store.owners()?;
                kinds = owner_kinds(&self.owners);
            }
            if applied.absences > 0 || applied.owners > 0 {
                self.crm_time_off = None;
            }
            if let Some(c) = page.cursor {
                cursor = Some(c);
            }
            if !page.has_more {
                if let Some(at) = page_window_end(now, self.lag_secs) {
                    self.metrics.set_synced(stream, at);
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Evaluates dirty and due leads, and a [`Sweep`] under way.
    /// `Ok(true)`: none is left waiting.
    ///
    /// Work is taken a window at a time (dirty leads first, then those
    /// whose deadline passed, then the sweep's next leads) and cut into commits of [`EVALUATE_CHUNK`]
    /// leads. The leads of one window are distinct, and judging a lead
    /// reads nothing another lead's commit writes, so the next chunk is
    /// judged (on the other cores) while this one is applied and committed:
    /// the serial part — numbering actions, the ledger look-ups, the commit
    /// — no longer waits for the engine.
    fn evaluate_pending(&mut self, now: DateTime<Utc>, report: &mut TickReport) -> Result<bool, DaemonError> {
        let mut done = 0usize;
        while done < MAX_EVALUATIONS_PER_TICK && !self.stopping() {
            let window = EVALUATE_WINDOW.min(MAX_EVALUATIONS_PER_TICK - done).max(EVALUATE_CHUNK);
            let (mut work, sweep) = self.pending_work(now, window)?;
            if work.is_empty() {
                if let Some(sweep) = sweep {
                    // Nothing listed after its last lead: it is done.
                    let mut batch = Batch::default();
                    sweep.advance(&mut batch);
                    self.commit(batch)?;
                }
                return Ok(true);
            }
            tracing::debug!(phase = "evaluate", leads = work.len(), "evaluating");
            // A lead with a quarantined record is not judged on partial
            // data: it leaves the queue (and the deadline index) until the
            // record is released, which queues it again.
            let mut held = Batch::default();
            let mut held_leads = 0usize;
            let any_held = self.store.holds_any()?;
            work.retain(|(id, due_at)| {
                if !any_held || !matches!(self.store.is_held(id), Ok(true)) {
                    return true;
                }
                held.clear_dirty(id);
                if let Some(at) = due_at {
                    held.drop_deadline(*at, id);
                }
                held_leads += 1;
                false
            });
            if work.is_empty() {
                // Every lead listed was held: the sweep moves past them.
                if let Some(sweep) = &sweep {
                    sweep.advance(&mut held);
                }
            }
            if !held.is_empty() {
                tracing::info!(leads = held_leads, "leads held back while records of theirs are quarantined");
                report.held += held_leads;
                self.commit(held)?;
            }
            done += held_leads + self.evaluate_window(&work, sweep.as_ref(), now, report)?;
        }
        Ok(false)
    }

    /// Up to `limit` leads to evaluate: dirty ones first, then those whose
    /// deadline passed (a lead both dirty and due once, with its deadline),
    /// then the next leads of the [`Sweep`] under way (with what the window
    /// takes of it, `None` when it took nothing).
    fn pending_work(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<(Vec<evaluate::Work>, Option<SweepWindow>), DaemonError> {
        let mut work: Vec<evaluate::Work> = self.store.dirty(limit)?.into_iter().map(|id| (id, None)).collect();
        let mut at_of: HashMap<String, usize> = work.iter().enumerate().map(|(i, (id, _))| (id.clone(), i)).collect();
        if work.len() < limit {
            for (at, id) in self.store.due(now, limit - work.len())? {
                match at_of.get(&id) {
                    Some(&i) => work[i].1 = Some(at),
                    None => {
                        at_of.insert(id.clone(), work.len());
                        work.push((id, Some(at)));
                    }
                }
            }
        }
        let room = limit - work.len().min(limit);
        let Some(sweep) = self.store.sweep()?.filter(|_| room > 0) else { return Ok((work, None)) };
        let listed = self.store.sweep_ids_after(&sweep, room)?;
        let window = SweepWindow {
            sweep,
            last_listed: listed.last().cloned(),
            exhausted: listed.len() < room,
            ids: listed.iter().filter(|id| !at_of.contains_key(*id)).cloned().collect(),
        };
        // A lead already dirty or due is judged once, earlier in the window.
        work.extend(listed.into_iter().filter(|id| !at_of.contains_key(id)).map(|id| (id, None)));
        Ok((work, Some(window)))
    }

    /// Judges, applies and commits `work` chunk by chunk, judging the next
    /// chunk while the current one is applied; stops between chunks when a
    /// stop is asked for. Returns how many leads were evaluated.
    ///
    /// A [`Sweep`] moves on in the commit of the leads it reached: a chunk
    /// holding some of its leads records the last of them, the window's
    /// last chunk everything the window listed (or the end), so a crash or
    /// a stop never passes over a lead whose evaluation is not committed.
    fn evaluate_window(
        &self,
        work: &[evaluate::Work],
        sweep: Option<&SweepWindow>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<usize, DaemonError> {
        let owners = crate::engine::Owners::new(&self.owners);
        let evaluator = evaluate::Evaluator {
            store: &self.store,
            policy: &self.policy,
            owners: &owners,
            now,
            outbox_was_empty: self.store.outbox_is_empty()?,
            any_opportunities: self.store.any_opportunities()?,
        };
        let mut evaluated = 0usize;
        let mut taken = 0usize;
        evaluate::judge_in_order(&evaluator, work, EVALUATE_CHUNK, |chunk, judged| -> Result<bool, DaemonError> {
            let mut seq = self.store.next_seq()?;
            let mut batch = Batch::default();
            let mut changes = Vec::with_capacity(judged.len());
            for judged in judged {
                let id = judged.lead_id().to_string();
                let e = evaluator.apply(judged, &mut seq, &mut batch)?;
                report.evaluated += 1;
                report.enqueued += e.enqueued;
                report.superseded += e.superseded;
                if e.failed {
                    report.errors.push(format!("evaluate: lead {id} could not be evaluated (see `handoff state`)"));
                }
                changes.push((e.before, e.after));
            }
            taken += chunk.len();
            if let Some(sweep) = sweep {
                if taken == work.len() {
                    sweep.advance(&mut batch);
                } else if let Some((id, _)) = chunk.iter().rev().find(|(id, _)| sweep.ids.contains(id)) {
                    sweep.reached(id, &mut batch);
                }
            }
            crate::failpoints::hit(crate::failpoints::EVALUATE_DECIDED);
            self.commit(batch)?;
            crate::failpoints::hit(crate::failpoints::EVALUATE_COMMITTED);
            evaluated += changes.len();
            for (before, after) in changes {
                self.metrics.replace_state(before.as_ref(), after.as_ref());
            }
            Ok(!self.stopping())
        })?;
        Ok(evaluated)
    }

    /// Once a reporting week has closed (plus an hour for late data):
    /// records each commitment's result for it and queues the escalation a
    /// streak of misses raises (see [`crate::report::weekly`]).
    fn weekly(&mut self, now: DateTime<Utc>, report: &mut TickReport) -> Result<(), DaemonError> {
        use crate::report;
        let policy = self.policy.clone();
        let tz = report::reporting_zone(&policy);
        let current = report::week_start(now, tz, policy.scorecard.week_starts);
        let last_closed = current - Duration::weeks(1);
        let (current_start, _) = report::week_bounds(current, tz);
        if now < current_start + Duration::hours(1) {
            return Ok(());
        }
        let recorded = self.store.meta_text("scorecard_week")?.and_then(|t| t.parse::<chrono::NaiveDate>().ok());
        if recorded.is_some_and(|r| r >= last_closed) {
            return Ok(());
        }
        let mut batch = Batch::default();
        batch.set_meta_text("scorecard_week", &last_closed.to_string());
        if self.store.counts()?.leads == 0 {
            return self.commit(batch);
        }
        let weeks = match recorded {
            Some(r) => ((last_closed - r).num_weeks()).clamp(1, 12) as usize,
            None => 12,
        };
        let card = report::from_store("", &policy, &self.store, weeks + 1, now, None)?;
        let closed: Vec<&report::Week> =
            card.weeks.iter().filter(|w| !w.partial && recorded.is_none_or(|r| w.start > r)).collect();
        let mut seq = self.store.next_seq()?;
        let mut fresh: std::collections::BTreeMap<(String, chrono::NaiveDate), crate::store::WeekRecord> =
            Default::default();
        for week in &closed {
            // Only the latest closed week escalates: a daemon catching up on
            // history does not raise streaks long over.
            if week.start == last_closed {
                let lookup = |id: &str, at: chrono::NaiveDate| {
                    fresh.get(&(id.to_string(), at)).cloned().or_else(|| self.store.week_record(id, at).ok().flatten())
                };
                for action in report::weekly::escalations(&policy, &self.instance, week, &lookup) {
                    if self.store.ledger(&action.key)?.is_none() && self.store.queued(&action.key)?.is_none() {
                        batch.enqueue(seq, &action, now);
                        seq += 1;
                        report.enqueued += 1;
                    }
                }
            }
            for c in &week.commitments {
                let record = report::weekly::record_of(week, c);
                batch.put_week(&c.id, &record);
                fresh.insert((c.id.clone(), week.start), record);
            }
        }
        batch.set_next_seq(seq);
        tracing::info!(week = %last_closed, "scorecard week recorded");
        self.commit(batch)
    }

    /// Keeps the signals current and queues the digests and the summary due
    /// now (see [`crate::notify`]), in one commit.
    fn plan_notices(&mut self, now: DateTime<Utc>, report: &mut TickReport) -> Result<(), DaemonError> {
        let batch = crate::notify::run::refresh_signals(&self.store, &self.policy, &self.signals, now)?;
        self.commit(batch)?;
        let Some(notifier) = self.notifier.as_mut() else { return Ok(()) };
        if report.leads_changed + report.deletions > 0 {
            notifier.leads_changed();
        }
        let planned = notifier.plan(&self.store, &self.policy, &self.owners, &self.signals, now)?;
        report.enqueued += planned.messages + planned.tasks;
        self.commit(planned.batch)
    }

    /// Sends ready outbox entries. `Ok(true)`: nothing ready is left.
    async fn drain_outbox(&mut self, now: DateTime<Utc>, report: &mut TickReport) -> Result<bool, DaemonError> {
        for _ in 0..MAX_WRITE_ROUNDS {
            if self.stopping() {
                return Ok(false);
            }
            let ready = self.store.outbox_ready(now, self.settings.outbox_batch)?;
            if ready.is_empty() {
                return Ok(true);
            }
            let mut batch = Batch::default();
            let entries = outbox::drop_orphans(&self.store, ready, &mut batch)?;
            if entries.is_empty() {
                self.commit(batch)?;
                continue;
            }
            let actions: Vec<handoff_model::Action> = entries.iter().map(|e| e.action.clone()).collect();
            tracing::debug!(phase = "write", actions = actions.len(), "writing");
            // Not raced against shutdown: a write in flight is finished and
            // recorded before the daemon stops.
            crate::failpoints::hit(crate::failpoints::WRITE_SENDING);
            match self.connector.write(&actions).await {
                Ok(outcomes) => {
                    crate::failpoints::hit(crate::failpoints::WRITE_ANSWERED);
                    let r = outbox::record(
                        &self.store,
                        &entries,
                        &outcomes,
                        now,
                        self.settings.max_write_attempts,
                        &mut batch,
                    )?;
                    self.commit(batch)?;
                    crate::failpoints::hit(crate::failpoints::WRITE_RECORDED);
                    report.written += r.written;
                    report.write_retries += r.retrying;
                    report.write_failures += r.failed;
                    self.metrics.record_writes(&entries, &outcomes);
                }
                Err(ConnectorError::Budget { retry_after, .. }) => {
                    self.commit(batch)?;
                    report.paused_until =
                        Some(now + Duration::from_std(retry_after).unwrap_or_else(|_| Duration::minutes(15)));
                    return Ok(false);
                }
                Err(e) => {
                    self.commit(batch)?;
                    self.record_error(report, "write", e.to_string());
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }

    /// When the next tick is worth running: the next deadline, or the
    /// interval (longer while idle or low on budget).
    /// `failed_ticks`: ticks in a row that met errors.
    pub fn next_wake(
        &self,
        report: &TickReport,
        idle_ticks: u32,
        failed_ticks: u32,
    ) -> Result<std::time::Duration, DaemonError> {
        let budget = self.connector.budget();
        let secs = wake_after_secs(&Wake {
            interval_secs: self.sync.interval_secs,
            max_interval_secs: self.sync.max_interval_secs,
            idle_ticks,
            failed_ticks,
            caught_up: report.caught_up,
            low_budget: budget.allowed > 0 && budget.remaining() * 10 < budget.allowed,
            now: report.now,
            next_deadline: {
                let lead = self.store.next_deadline()?;
                let notice = self
                    .notifier
                    .as_ref()
                    .and_then(|n| report.now.and_then(|now| n.next_due(&self.policy, &self.owners, now)));
                match (lead, notice) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            },
            paused_until: report.paused_until,
        });
        Ok(std::time::Duration::from_secs(secs))
    }
}

/// How long after a record was last read unreadable the daemon reads it again.
pub const QUARANTINE_REREAD_AFTER: Duration = Duration::hours(1);

/// Reads every quarantined record again: each stream with one is read
/// again from the start of the earliest window one was seen in, and the
/// records leave the quarantine (a record still unreadable comes back to
/// it on the re-read; one that reads well is applied). Their leads are
/// queued again; evaluation waits until the re-read streams are read to
/// their end. Returns how many records are read again.
pub fn reread_quarantine(store: &Store, crm: CrmKind, batch: &mut Batch) -> Result<usize, StoreError> {
    let kept = store.quarantine()?;
    let mut from: HashMap<Stream, DateTime<Utc>> = HashMap::new();
    for q in &kept {
        let at = from.entry(q.record.stream).or_insert(q.record.window_from);
        *at = (*at).min(q.record.window_from);
        batch.release_quarantine(q);
        if let Some(lead) = &q.record.lead_id {
            batch.mark_dirty(lead, "quarantined record read again");
        }
    }
    for (stream, at) in from {
        batch.set_cursor(stream, &connect::cursor_since(crm, stream, at));
    }
    Ok(kept.len())
}

/// What decides the pause before the next tick.
struct Wake {
    interval_secs: u64,
    max_interval_secs: u64,
    /// Ticks in a row that found nothing to do.
    idle_ticks: u32,
    /// Ticks in a row that met errors.
    failed_ticks: u32,
    caught_up: bool,
    /// Less than a tenth of the day's budget share is left.
    low_budget: bool,
    now: Option<DateTime<Utc>>,
    next_deadline: Option<DateTime<Utc>>,
    paused_until: Option<DateTime<Utc>>,
}

/// Seconds to wait: none while work is left; the interval, doubling with
/// each idle tick up to the maximum (the maximum at once when the budget runs
/// low); never past the next deadline; after a tick that met errors, at
/// least the interval, doubling while they go on (a stream that keeps
/// failing is not retried at once, forever); and at least until an
/// API-budget pause ends (but no longer than the maximum, to look again).
fn wake_after_secs(w: &Wake) -> u64 {
    let base = w.interval_secs.max(1);
    let mut secs = if w.caught_up { base.saturating_mul(1u64 << w.idle_ticks.min(6)) } else { 0 };
    if w.low_budget {
        secs = w.max_interval_secs;
    }
    secs = secs.min(w.max_interval_secs);
    if let (Some(now), Some(next)) = (w.now, w.next_deadline) {
        let until = (next - now).num_seconds().max(0) as u64;
        secs = secs.min(until.max(u64::from(w.caught_up)));
    }
    if w.failed_ticks > 0 {
        secs = secs.max(base.saturating_mul(1u64 << (w.failed_ticks - 1).min(6)).min(w.max_interval_secs.max(base)));
    }
    if let (Some(now), Some(paused)) = (w.now, w.paused_until) {
        secs = secs.max((paused - now).num_seconds().max(0) as u64).min(w.max_interval_secs.max(base));
    }
    secs
}

/// The instant a finished window reaches (now minus the lag).
fn page_window_end(now: DateTime<Utc>, lag_secs: u64) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(Duration::seconds(lag_secs as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn wake() -> Wake {
        Wake {
            interval_secs: 60,
            max_interval_secs: 600,
            idle_ticks: 0,
            failed_ticks: 0,
            caught_up: true,
            low_budget: false,
            now: Some(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()),
            next_deadline: None,
            paused_until: None,
        }
    }

    fn example(crm: &str, edit: impl Fn(String) -> String) -> Config {
        let path = format!("{}/config/{crm}.example.toml", env!("CARGO_MANIFEST_DIR"));
        let text = edit(std::fs::read_to_string(&path).unwrap());
        crate::config::parse(&text).unwrap_or_else(|issues| panic!("{issues:?}"))
    }

    #[test]
    fn a_reload_rebuilds_the_connector_only_when_what_it_was_built_from_changed() {
        let old = example("hubspot", |t| t);
        let same = example("hubspot", |t| t);
        assert_eq!(reload_plan(&old, &same), Ok(ReloadPlan { rebuild: vec![] }));

        let new_field = example("hubspot", |t| t.replace("score = \"hubspotscore\"", "score = \"hs_predictivescore\""));
        assert_eq!(reload_plan(&old, &new_field).unwrap().rebuild, ["the fields the policy reads"]);

        let lag = example("hubspot", |t| t.replace("# lag_secs = 120", "lag_secs = 90"));
        assert_eq!(reload_plan(&old, &lag).unwrap().rebuild, ["the sync window (lag, lookback)"]);

        let managers = example("hubspot", |t| t.replace("\"81234567\" = \"81230001\"", "\"81234567\" = \"81230002\""));
        assert_eq!(reload_plan(&old, &managers).unwrap().rebuild, ["the owners' managers"]);

        let moved = example("hubspot", |t| {
            t.replace("state_dir = \"/var/lib/handoff/acme-hubspot\"", "state_dir = \"/tmp/x\"")
        });
        assert!(reload_plan(&old, &moved).unwrap_err().contains("[instance]"));
    }

    #[test]
    fn connector_defaults_for_the_window_are_not_replaced_by_generic_ones() {
        let hubspot = example("hubspot", |t| t);
        assert_eq!((hubspot.lag_secs(), hubspot.lookback_secs()), (120, 3600));
        let salesforce = example("salesforce", |t| t);
        assert_eq!((salesforce.lag_secs(), salesforce.lookback_secs()), (300, 600));
        let set = example("hubspot", |t| t.replace("# lag_secs = 120", "lag_secs = 30"));
        assert_eq!((set.lag_secs(), set.lookback_secs()), (30, 3600), "what the operator sets wins");
    }

    #[test]
    fn the_pause_grows_while_idle_and_runs_out_at_a_deadline() {
        assert_eq!(wake_after_secs(&wake()), 60);
        assert_eq!(wake_after_secs(&Wake { idle_ticks: 2, ..wake() }), 240);
        assert_eq!(wake_after_secs(&Wake { idle_ticks: 10, ..wake() }), 600, "capped");
        assert_eq!(wake_after_secs(&Wake { caught_up: false, ..wake() }), 0, "work left: go on");
        let soon = wake().now.map(|n| n + Duration::seconds(25));
        assert_eq!(wake_after_secs(&Wake { idle_ticks: 3, next_deadline: soon, ..wake() }), 25);
        assert_eq!(wake_after_secs(&Wake { low_budget: true, ..wake() }), 600, "short of budget: slow down");
        let later = wake().now.map(|n| n + Duration::seconds(300));
        assert_eq!(wake_after_secs(&Wake { paused_until: later, ..wake() }), 300, "a budget pause is waited out");
        let much_later = wake().now.map(|n| n + Duration::hours(5));
        assert_eq!(wake_after_secs(&Wake { paused_until: much_later, ..wake() }), 600, "but looked at again");
    }

    #[test]
    fn a_tick_that_met_errors_backs_off_instead_of_retrying_at_once() {
        let failing = Wake { caught_up: false, ..wake() };
        assert_eq!(wake_after_secs(&Wake { failed_ticks: 1, ..failing }), 60);
        assert_eq!(wake_after_secs(&Wake { failed_ticks: 3, ..failing }), 240);
        assert_eq!(wake_after_secs(&Wake { failed_ticks: 30, ..failing }), 600, "capped");
        let soon = wake().now.map(|n| n + Duration::seconds(5));
        assert_eq!(
            wake_after_secs(&Wake { failed_ticks: 1, next_deadline: soon, ..failing }),
            60,
            "a deadline does not hurry a failing tick"
        );
    }
}
