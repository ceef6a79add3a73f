//! The pure SLA evaluation engine.
//!
//! [`evaluate`] is a function of (lead, its activities, owners, compiled
//! policy, `now`): it returns the lead's grade, every SLA clock with its
//! status and reason, and the actions the CRM should see, each with a
//! deterministic [`ActionKey`](handoff_model::ActionKey). It does no I/O and
//! never reads the wall clock, so the daemon, `handoff explain` and the tests
//! all get the same answer for the same facts. It also says why in notes;
//! [`judge`], which the daemon calls, is the same answer without them.
//!
//! # Clocks
//!
//! Every sales clock starts no earlier than the lead *qualified*: its MQL
//! time, or — for a lead waived (incomplete data, below the criteria) that
//! qualifies later — the instant it did, read from the field history (the
//! CRM's where it keeps one, else from when handoff first saw the change).
//!
//! | clock | starts | stops | due |
//! |---|---|---|---|
//! | first touch | the sales start: MQL time, the first assignment to a user (`clock_start = "assignment"`) or SAL acceptance (`"acceptance"`) | the first call/email/meeting at or after the start, by the owner at that time (anyone with `touch_by = "anyone"`; automated ones only with `automated_touches = true`). A status change never stops it, acceptance included; a rejection, close or conversion before any touch *ends* it (status `ended`) | the grade's window |
//! | SAL decision | first assignment to a user (not before the sales start) | a status change into a disposition (accepted, rejected, deferred, converted, closed) | `sal_decision` |
//! | cadence | with the first-touch clock | judged when the lead is closed as unresponsive | ≥ N touches across ≥ M business days, a deferral's rest left out |
//! | disposition | with the first-touch clock | the first disposition (a deferral counts with a readable follow-up date) | `disposition_within` |
//! | reason code | a rejection or unresponsive close | an agreed reason code on the lead | `reason_code_grace` (default 24 hours) |
//! | routing (marketing) | MQL time | first assignment to a user | `marketing.routing_within` |
//! | discovery (AE) | SAL acceptance | a meeting on the lead, when logged or held (whichever first); a rejection, close or conversion first *ends* it | `discovery_within` |
//! | opportunity (AE) | SAL acceptance | the conversion; a rejection or close first ends it | `opportunity_within` |
//!
//! # Whose clock
//!
//! A sales clock belongs to whoever answers for the lead at the time (see
//! [`Holder`]): the user owning it, the intake seat of a queue holding it,
//! or nobody while a seatless queue holds a lead a rep had — its clocks then
//! pause, and resume with the time they had left when a user owns it again.
//! Business time is read on the current holder's calendar, from the clock's
//! start (`on_reassign = "continue"`) or from the reassignment
//! (`"restart"`). Reminders go to the holder, escalations to the holder's
//! managers; a holder who took over a breached clock is escalated only for
//! rungs that fall after they took it.
//!
//! Business time is read in the owner's own zone when the CRM knows it and
//! `use_owner_time_zone` is on, holidays included (on the owner's dates).
//! A lead arriving after hours starts counting at the next opening; the
//! clock still records the arrival as `received_at`.
//!
//! # Tasks
//!
//! A clock has at most one open handoff task: the one asking for what is
//! owed now — a reminder to the holder before the due time, then the
//! escalation of the latest rung that fired, or a flag. Each evaluation says
//! which task keys should be open ([`Evaluation::open_tasks`]) and, per
//! clock, why any other task of that clock is done
//! ([`Evaluation::task_notes`]); the daemon, which knows from its ledger
//! which tasks exist, closes the rest (see `daemon::evaluate`).
//!
//! # Decisions worth knowing
//!
//! - **Cadence spread** counts the business days (in the holder's calendar)
//!   from the day of the first touch through the day of the last touch,
//!   inclusive, less those a deferral rested, and counts touches from the
//!   clock start up to the close (none while deferred).
//! - **Reminders** go to the holder once a still-running clock passes its
//!   reminder point. A breached clock gets no reminder (the escalation says
//!   more), and a stopped clock gets neither.
//! - **Escalations** fire only for clocks still running past their due time:
//!   a clock stopped late is reported as breached but raises no new tasks.
//!   A rung whose target does not exist (no manager) is served by the next
//!   rung whose target exists, at the earlier rung's time; that later rung
//!   then does not fire again.
//! - **Nothing is breached before its due time.** A rejection without a
//!   reason code meets the disposition clock when it is in time; the missing
//!   code is the reason-code clock's, and only breaches (with a flag task)
//!   once its grace has passed. Adding the code inside the grace clears it
//!   without a task.
//! - **Waived** leads (not an MQL, missing a required field, or held for
//!   nurture) carry no sales obligation: every clock is waived with the
//!   reason and the only action is the SLA-field write-back.
//! - **SLA fields** are written only when they differ from what the lead
//!   holds; the key hashes the new values together with the old ones, so a
//!   value that comes back after changing is written again.

pub mod capacity;
mod clocks;
mod history;
pub mod keys;
mod tasks;
mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use handoff_model::{Action, ActionKey, ActionKind, Activity, Lead, Owner};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::calendar::{CalendarError, Schedule};
use crate::policy::{CompiledPolicy, CompiledSegment, Qualification, TouchBy};

pub use clocks::reason_code_given;
pub use history::{
    classify, decisions, parse_field_datetime, parse_field_number, value_at, Decision, Holder, StatusClass,
};
use history::{is_touch, HolderSpan, Ownership};

/// When a policy window starting at `start` ends on `schedule` (reports
/// judge the reason-code grace with it).
pub fn window_deadline(
    schedule: &Schedule,
    start: DateTime<Utc>,
    window: &crate::policy::Window,
) -> Option<DateTime<Utc>> {
    window::deadline(schedule, start, window).ok()
}

/// Why a lead could not be evaluated at all. Bad CRM data degrades to notes
/// wherever a sensible reading exists; these are the cases without one.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("lead {lead_id}: no calendar applies to owner {owner}; set `owners.default_calendar` or map the owner in `owners.calendar_by_owner`")]
    NoCalendar { lead_id: String, owner: String },
    #[error("lead {lead_id}: owner {owner} is mapped to calendar `{calendar}`, which the policy does not define; add it under `calendars` or fix `owners.calendar_by_owner`")]
    UnknownCalendar { lead_id: String, owner: String, calendar: String },
    #[error("lead {lead_id}: {clock} clock: {source}")]
    Calendar {
        lead_id: String,
        clock: &'static str,
        #[source]
        source: CalendarError,
    },
}

/// The owners the CRM knows, by id. Managers come from
/// `policy.owners.managers` first (it overrides and fills in), then from the
/// CRM's manager field.
#[derive(Debug, Clone, Default)]
pub struct Owners<'a> {
    by_id: FxHashMap<&'a str, &'a Owner>,
}

impl<'a> Owners<'a> {
    pub fn new(owners: &'a [Owner]) -> Owners<'a> {
        Owners { by_id: owners.iter().map(|o| (o.id.as_str(), o)).collect() }
    }

    pub fn get(&self, id: &str) -> Option<&'a Owner> {
        self.by_id.get(id).copied()
    }

    /// The manager of `id`: the policy's mapping, else the CRM's field.
    pub fn manager_of(&self, id: &str, policy: &CompiledPolicy) -> Option<String> {
        policy
            .owners
            .managers
            .get(id)
            .cloned()
            .or_else(|| self.get(id).and_then(|o| o.manager_id.clone()))
            .filter(|m| !m.is_empty() && m != id)
    }
}

/// Which SLA clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    FirstTouch,
    SalDecision,
    Cadence,
    Disposition,
    /// An agreed reason code after a rejection or unresponsive close.
    ReasonCode,
    Routing,
    /// The AE's: a discovery meeting booked after SAL acceptance.
    Discovery,
    /// The AE's: the opportunity created (the lead converted) after SAL
    /// acceptance.
    Opportunity,
}

impl ClockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::FirstTouch => "first_touch",
            ClockKind::SalDecision => "sal_decision",
            ClockKind::Cadence => "cadence",
            ClockKind::Disposition => "disposition",
            ClockKind::ReasonCode => "reason_code",
            ClockKind::Routing => "routing",
            ClockKind::Discovery => "discovery",
            ClockKind::Opportunity => "opportunity",
        }
    }

    /// The clock in words, for subjects and notes.
    pub fn label(self) -> &'static str {
        match self {
            ClockKind::FirstTouch => "first touch",
            ClockKind::SalDecision => "SAL decision",
            ClockKind::Cadence => "follow-up cadence",
            ClockKind::Disposition => "disposition",
            ClockKind::ReasonCode => "reason code",
            ClockKind::Routing => "routing",
            ClockKind::Discovery => "discovery meeting",
            ClockKind::Opportunity => "opportunity creation",
        }
    }

    /// Short form used inside action keys.
    pub fn key_code(self) -> &'static str {
        match self {
            ClockKind::FirstTouch => "ft",
            ClockKind::SalDecision => "sal",
            ClockKind::Cadence => "cad",
            ClockKind::Disposition => "disp",
            ClockKind::ReasonCode => "code",
            ClockKind::Routing => "route",
            ClockKind::Discovery => "disc",
            ClockKind::Opportunity => "opp",
        }
    }

    /// The clock a key code names.
    pub fn from_key_code(code: &str) -> Option<ClockKind> {
        [
            ClockKind::FirstTouch,
            ClockKind::SalDecision,
            ClockKind::Cadence,
            ClockKind::Disposition,
            ClockKind::ReasonCode,
            ClockKind::Routing,
            ClockKind::Discovery,
            ClockKind::Opportunity,
        ]
        .into_iter()
        .find(|k| k.key_code() == code)
    }

    /// Sales clocks feed the SLA fields, reminders and escalations; routing
    /// is marketing's and is only reported.
    pub fn is_sales(self) -> bool {
        self != ClockKind::Routing
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockStatus {
    Pending,
    AtRisk,
    Met,
    Breached,
    Waived,
    /// The obligation ended without being met or breached: a lead rejected,
    /// closed or converted before any touch owes no first touch.
    Ended,
}

impl ClockStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockStatus::Pending => "pending",
            ClockStatus::AtRisk => "at_risk",
            ClockStatus::Met => "met",
            ClockStatus::Breached => "breached",
            ClockStatus::Waived => "waived",
            ClockStatus::Ended => "ended",
        }
    }

    pub fn is_running(self) -> bool {
        matches!(self, ClockStatus::Pending | ClockStatus::AtRisk)
    }
}

/// One escalation rung as scheduled for a clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    /// 1-based level of the rung whose target is used.
    pub level: u8,
    #[serde(with = "handoff_model::stamp")]
    pub at: DateTime<Utc>,
    /// Who gets it: an owner id (task) or a pool (reassignment).
    pub to: String,
    pub reassign: bool,
    /// Whether `at` has passed while the clock was still running.
    pub fired: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    pub kind: ClockKind,
    /// The user who answers for the clock now (whose calendar and inbox):
    /// the lead's owner, or the intake seat of the queue holding it; none
    /// while the clock is paused or the lead waits for its first user.
    pub owner_id: Option<String>,
    /// The user the clock started with (after its last restart); a task for
    /// anyone else names them in its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_owner_id: Option<String>,
    /// The last user who answered for it: `owner_id`, or while the clock is
    /// paused, the user who had it before (whose calendar it is read on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_owner_id: Option<String>,
    /// Since when `owner_id` (or, paused, nobody) has had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(with = "handoff_model::stamp::option")]
    pub owner_since: Option<DateTime<Utc>>,
    /// The queue holding the lead, when one does (seated or paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// Set while the clock is paused (a seatless queue holds the lead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(with = "handoff_model::stamp::option")]
    pub paused_since: Option<DateTime<Utc>>,
    /// The calendar business time is read on: `id (zone)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// Cadence of a deferred lead: when the deferral ends and the cadence resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(with = "handoff_model::stamp::option")]
    pub resumes_at: Option<DateTime<Utc>>,
    /// The event that started the clock (MQL time, assignment, reassignment).
    #[serde(default, with = "handoff_model::stamp::option")]
    pub received_at: Option<DateTime<Utc>>,
    /// When counting began: `received_at`, or the next opening after it.
    #[serde(default, with = "handoff_model::stamp::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, with = "handoff_model::stamp::option")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default, with = "handoff_model::stamp::option")]
    pub remind_at: Option<DateTime<Utc>>,
    #[serde(default, with = "handoff_model::stamp::option")]
    pub stopped_at: Option<DateTime<Utc>>,
    #[serde(default, with = "handoff_model::stamp::option")]
    pub breached_at: Option<DateTime<Utc>>,
    pub status: ClockStatus,
    /// Why the clock has its status, in words.
    pub reason: String,
    /// The lead was closed in a way the policy does not allow (too few
    /// touches; no agreed reason code once the grace passed): the holder
    /// gets a flag task.
    pub flagged: bool,
    /// Escalation rungs for a running clock past or near its due time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<Rung>,
    /// What stopped the clock, when it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<StopCause>,
    /// The declared surge (`policy.surge`) the clock started in: its
    /// window may be the relaxed one, and the scorecard counts it apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surge: Option<String>,
}

/// What stopped a clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum StopCause {
    /// A logged call, email or meeting.
    Touch { activity_id: String },
    /// The lead's status became this disposition value.
    Status { status: String },
    /// The lead was given to this user.
    Assignment { owner_id: String },
    /// The reason-code field took an agreed code.
    ReasonCode { code: String },
    /// The lead's opportunity was created.
    Opportunity { opportunity_id: String },
}

impl Clock {
    pub(crate) fn waived(kind: ClockKind, reason: &str) -> Clock {
        Clock {
            kind,
            owner_id: None,
            first_owner_id: None,
            last_owner_id: None,
            owner_since: None,
            held_by: None,
            paused_since: None,
            calendar: None,
            resumes_at: None,
            received_at: None,
            started_at: None,
            due_at: None,
            remind_at: None,
            stopped_at: None,
            breached_at: None,
            status: ClockStatus::Waived,
            reason: reason.to_string(),
            flagged: false,
            escalations: Vec::new(),
            stopped_by: None,
            surge: None,
        }
    }

    fn not_started(kind: ClockKind, owner_id: Option<String>, reason: String) -> Clock {
        Clock { status: ClockStatus::Pending, owner_id, reason, ..Clock::waived(kind, "") }
    }
}

/// Everything the engine concluded about one lead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub lead_id: String,
    pub mql: bool,
    /// The disqualifier that matched, by name.
    pub disqualified_by: Option<String>,
    pub grade: Option<String>,
    pub segment: Option<String>,
    /// Why the lead carries no sales obligation, when it does not.
    pub waived: Option<String>,
    pub clocks: Vec<Clock>,
    pub actions: Vec<Action>,
    /// The SLA fields as they should read in the CRM (API names).
    pub sla_fields: BTreeMap<String, serde_json::Value>,
    /// The earliest instant after `now` at which evaluating again could
    /// change something (a reminder point, a due time, the next rung).
    pub next_check_at: Option<DateTime<Utc>>,
    /// When the lead qualified, when that was after its MQL time (a waived
    /// lead completed later): its clocks start there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qualified_at: Option<DateTime<Utc>>,
    /// The handoff tasks that should be open now: at most one per clock.
    /// Any other task handoff created for this lead is done.
    pub open_tasks: BTreeSet<ActionKey>,
    /// Per clock (by key code: `ft`, `sal`, `cad`, `disp`, `code`), one line
    /// saying why its other tasks are done, for the note that closes them.
    pub task_notes: BTreeMap<String, String>,
    /// Why, in words.
    pub notes: Vec<String>,
    /// The lead as a new MQL for a rep, when the policy decides arrivals
    /// (`policy.capacity`, `policy.surge.detect`): the daemon decides its
    /// [`capacity::Intake`] once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival: Option<capacity::Arrival>,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Evaluates one lead. See the module docs for the rules.
///
/// `intake` is what the daemon decided for the lead's arrival (capacity,
/// a detected surge; read from its state); it applies when it is for the
/// arrival this evaluation finds.
pub fn evaluate(
    lead: &Lead,
    activities: &[Activity],
    owners: &Owners<'_>,
    policy: &CompiledPolicy,
    intake: Option<&capacity::Intake>,
    now: DateTime<Utc>,
) -> Result<Evaluation, EngineError> {
    evaluate_with(lead, activities, owners, policy, intake, now, Notes::kept())
}

/// [`evaluate`] without [`Evaluation::notes`] (left empty): the same
/// verdict, clocks and actions, without putting the reasoning into words
/// (the daemon's evaluations, which nobody reads the notes of).
pub fn judge(
    lead: &Lead,
    activities: &[Activity],
    owners: &Owners<'_>,
    policy: &CompiledPolicy,
    intake: Option<&capacity::Intake>,
    now: DateTime<Utc>,
) -> Result<Evaluation, EngineError> {
    evaluate_with(lead, activities, owners, policy, intake, now, Notes::dropped())
}

fn evaluate_with(
    lead: &Lead,
    activities: &[Activity],
    owners: &Owners<'_>,
    policy: &CompiledPolicy,
    intake: Option<&capacity::Intake>,
    now: DateTime<Utc>,
    notes: Notes,
) -> Result<Evaluation, EngineError> {
    let mut ev = Evaluation {
        lead_id: lead.id.clone(),
        mql: false,
        disqualified_by: None,
        grade: None,
        segment: None,
        waived: None,
        clocks: Vec::new(),
        actions: Vec::new(),
        sla_fields: BTreeMap::new(),
        next_check_at: None,
        qualified_at: None,
        open_tasks: BTreeSet::new(),
        task_notes: BTreeMap::new(),
        notes: Vec::new(),
        arrival: None,
    };
    if lead.deleted || lead.merged_into.is_some() {
        let why = match &lead.merged_into {
            Some(into) => format!("merged into {into}; the surviving record carries the SLA"),
            None => "deleted in the CRM; no clocks and no actions".to_string(),
        };
        if notes.keep {
            ev.notes.push(why);
        }
        return Ok(ev);
    }
    let ownership = Ownership::new(lead, owners);
    let holders = ownership.holders(&policy.owners.intake_seats);
    let mut ctx = Ctx {
        lead,
        activities,
        owners,
        policy,
        now,
        ownership,
        holders,
        obligation_at: lead.created_at,
        intake,
        arrival: None,
        notes,
    };
    if ctx.ownership.assumed {
        ctx.notes.add(|| {
            "no ownership history on the record; the current owner is taken as assigned at creation".to_string()
        });
    }

    let not_mql = judge_mql(&mut ctx, &mut ev);
    ev.grade = policy.grade_for(&lead.fields).map(str::to_string);
    match &ev.grade {
        Some(grade) => ctx.notes.add(|| format!("grade {grade}: first grade rule that matches")),
        None => ctx.notes.add(|| "no grade rule matches".to_string()),
    }
    let segment = policy.segment_for(&lead.fields);
    ev.segment = segment.map(|s| s.name.clone());

    let missing = policy.missing_required_fields(&lead.fields);
    let nurture = ctx
        .current_status()
        .filter(|s| classify(&policy.statuses, s) == Some(StatusClass::Nurture))
        .map(str::to_string);
    if let Some(why) = not_mql {
        ev.waived = Some(why);
    } else if !missing.is_empty() {
        ev.waived = Some(format!("incomplete data: missing {}", missing.join(", ")));
    } else if let Some(status) = nurture {
        ev.waived = Some(format!("held for nurture (status `{status}`)"));
    }

    if let Some(why) = ev.waived.clone() {
        ctx.notes.add(|| format!(
            "waived ({why}): a lead below the agreed criteria, with incomplete data or held for nurture carries no sales obligation"
        ));
        let mut kinds = vec![ClockKind::FirstTouch];
        if segment.is_some_and(|s| s.sal_decision.is_some()) {
            kinds.push(ClockKind::SalDecision);
        }
        kinds.extend([ClockKind::Disposition, ClockKind::Routing]);
        ev.clocks = kinds.into_iter().map(|k| Clock::waived(k, &why)).collect();
        let note = format!("no sales obligation any more: {why}");
        for kind in [
            ClockKind::FirstTouch,
            ClockKind::SalDecision,
            ClockKind::Cadence,
            ClockKind::Disposition,
            ClockKind::ReasonCode,
            ClockKind::Discovery,
            ClockKind::Opportunity,
        ] {
            ev.task_notes.insert(kind.key_code().to_string(), note.clone());
        }
    } else {
        let (mql_at, note) = mql_time(lead, policy);
        if let Some(note) = note {
            ctx.notes.add(|| note);
        }
        ctx.obligation_at = mql_at;
        if let Some((at, why)) = qualified_since(lead, policy) {
            if at > mql_at {
                ctx.notes.add(|| {
                    format!(
                        "qualified late: {why}; its clocks start at {} (the MQL time {} is not used)",
                        rfc3339(at),
                        rfc3339(mql_at)
                    )
                });
                ctx.obligation_at = at;
                ev.qualified_at = Some(at);
            }
        }
        match segment {
            Some(segment) => {
                ev.clocks = clocks::sales_clocks(&mut ctx, segment, ev.grade.as_deref())?;
            }
            None => ctx.notes.add(|| "no segment applies; the policy needs a final catch-all segment".to_string()),
        }
        ev.clocks.push(clocks::routing_clock(&mut ctx)?);
        let planned = tasks::clock_actions(&mut ctx, &ev.clocks);
        ev.actions = planned.actions;
        ev.open_tasks = planned.open;
        ev.task_notes = planned.notes;
        if let Some(action) = overflow_move(&ctx) {
            ev.actions.push(action);
        }
    }

    ev.arrival = ctx.arrival.take();
    write_back(&ctx, &mut ev);
    ev.next_check_at = next_check(&ev.clocks, now);
    ev.notes.append(&mut ctx.notes.list);
    Ok(ev)
}

/// The move `policy.capacity` decided for the lead's arrival, while the
/// rep who received it still owns it: once per arrival, keyed by it.
fn overflow_move(ctx: &Ctx<'_, '_>) -> Option<Action> {
    let (arrival, intake) = (ctx.arrival.as_ref()?, ctx.intake?);
    let capacity::Outcome::Moved { to } = &intake.outcome else { return None };
    if !intake.is_for(arrival) || ctx.lead.owner_id.as_deref() != Some(intake.owner_id.as_str()) {
        return None;
    }
    Some(Action {
        key: keys::clock_key(&ctx.lead.id, ClockKind::FirstTouch.key_code(), arrival.at, "cap", ctx.policy.version),
        lead_id: ctx.lead.id.clone(),
        kind: ActionKind::Reassign { to_owner_id: to.clone() },
    })
}

/// When the lead last came to qualify (meet the MQL definition with
/// complete data) and stayed so, from the history of the fields that decide
/// it, with the change that did it in words. `None` when the history shows
/// no change (qualified from creation, as far as anyone knows).
pub fn qualified_since(lead: &Lead, policy: &CompiledPolicy) -> Option<(DateTime<Utc>, String)> {
    let watched = policy.history_fields();
    let mut instants: BTreeSet<DateTime<Utc>> = BTreeSet::new();
    for field in &watched {
        if let Some(history) = lead.field_history.get(field) {
            instants.extend(history.iter().map(|c| c.at).filter(|at| *at > lead.created_at));
        }
    }
    if instants.is_empty() {
        return None;
    }
    let fields_at = |at: DateTime<Utc>| -> BTreeMap<String, serde_json::Value> {
        let mut fields = lead.fields.clone();
        for field in &watched {
            match value_at(lead, field, at) {
                Some(v) => fields.insert(field.clone(), v.clone()),
                None => fields.remove(field),
            };
        }
        fields
    };
    let mut qualified = policy.obliges_sales(&fields_at(lead.created_at));
    let mut since: Option<DateTime<Utc>> = None;
    for at in instants {
        let now_qualified = policy.obliges_sales(&fields_at(at));
        if now_qualified && !qualified {
            since = Some(at);
        }
        qualified = now_qualified;
    }
    let at = since?;
    let before = fields_at(at - chrono::Duration::milliseconds(1));
    let changed: Vec<&str> =
        watched.iter().filter(|f| before.get(f.as_str()) != value_at(lead, f, at)).map(String::as_str).collect();
    Some((
        at,
        format!(
            "it met the MQL definition with complete data only from {} ({} changed then)",
            rfc3339(at),
            changed.join(", ")
        ),
    ))
}

/// When a lead became an MQL: the mapped `mql_at` field when set and
/// readable, else the lead's creation time (with a note saying why, when
/// the field holds something that is not a date-time).
pub fn mql_time(lead: &Lead, policy: &CompiledPolicy) -> (DateTime<Utc>, Option<String>) {
    if let Some(field) = policy.fields.mql_at.as_deref() {
        match lead.fields.get(field) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => {}
            Some(value) => match parse_field_datetime(value) {
                Some(at) => return (at, None),
                None => {
                    return (
                        lead.created_at,
                        Some(format!("`{field}` holds {value}, which is not a date-time; using the lead's creation time as the MQL time")),
                    )
                }
            },
        }
    }
    (lead.created_at, None)
}

/// The business schedule a clock owned by `owner_id` is measured on: the
/// owner's calendar, in the owner's zone when known and allowed (what every
/// clock of the engine uses; reports measure speed on it too).
pub fn owner_schedule(
    policy: &CompiledPolicy,
    owners: &Owners<'_>,
    owner_id: Option<&str>,
) -> Result<Schedule, EngineError> {
    schedule_for(policy, "(report)", owner_id, owners, &mut Notes::dropped()).map(|s| (*s).clone())
}

struct Ctx<'a, 'p> {
    lead: &'a Lead,
    activities: &'a [Activity],
    owners: &'a Owners<'a>,
    policy: &'p CompiledPolicy,
    now: DateTime<Utc>,
    ownership: Ownership,
    /// Who answers for the sales clocks, span by span.
    holders: Vec<HolderSpan>,
    /// When the lead started to owe sales anything: its MQL time, or when
    /// it qualified if that was later.
    obligation_at: DateTime<Utc>,
    /// The daemon's capacity decision for the lead, as stored.
    intake: Option<&'a capacity::Intake>,
    /// The lead's arrival, once the sales clocks found it.
    arrival: Option<capacity::Arrival>,
    notes: Notes,
}

/// The reasoning of an evaluation in words, put into words only when it is
/// kept: the daemon judges every lead without them.
struct Notes {
    keep: bool,
    list: Vec<String>,
}

impl Notes {
    fn kept() -> Notes {
        Notes { keep: true, list: Vec::new() }
    }

    fn dropped() -> Notes {
        Notes { keep: false, list: Vec::new() }
    }

    /// Adds the note `say` words, if notes are kept.
    fn add(&mut self, say: impl FnOnce() -> String) {
        if self.keep {
            self.list.push(say());
        }
    }

    /// Adds the note unless it is there already.
    fn add_once(&mut self, say: impl FnOnce() -> String) {
        if self.keep {
            let note = say();
            if !self.list.contains(&note) {
                self.list.push(note);
            }
        }
    }

    fn extend(&mut self, lines: impl IntoIterator<Item = String>) {
        if self.keep {
            self.list.extend(lines);
        }
    }
}

/// MQL: no disqualifier matches, the score reaches `min_score`, and the MQL
/// condition holds. Returns why not (naming the failing criterion) when the
/// lead is not an MQL; the full reasoning goes to the notes.
fn judge_mql(ctx: &mut Ctx<'_, '_>, ev: &mut Evaluation) -> Option<String> {
    let lead = ctx.lead;
    let policy = ctx.policy;
    let why = match policy.qualify(&lead.fields) {
        Qualification::Mql => {
            ev.mql = true;
            ctx.notes.add(|| {
                "MQL: no disqualifier matches, the score reaches the minimum and the MQL rule holds".to_string()
            });
            return None;
        }
        Qualification::Disqualified { name } => {
            let why = format!("not an MQL: disqualified by `{name}`");
            ev.disqualified_by = Some(name);
            why
        }
        Qualification::BelowScore { score, min_score } => {
            let field = policy.fields.score.as_deref().unwrap_or("score");
            match score {
                Some(score) => format!("not an MQL: score {score} in `{field}` is below the minimum {min_score}"),
                None => format!("not an MQL: `{field}` is empty or not a number (minimum score {min_score})"),
            }
        }
        Qualification::NotMql => {
            let lines = policy.mql.explain(&lead.fields);
            let failed: Vec<&str> = lines
                .iter()
                .map(|l| l.trim())
                .filter(|l| l.starts_with("failed: ") && !l.ends_with(" of"))
                .map(|l| l.trim_start_matches("failed: "))
                .collect();
            ctx.notes.add(|| "the MQL rule, test by test:".to_string());
            ctx.notes.extend(lines.iter().map(|l| format!("  {l}")));
            format!("not an MQL: the MQL rule does not hold ({})", failed.join("; "))
        }
    };
    ctx.notes.add(|| why.clone());
    Some(why)
}

/// The schedule for `owner_id` (the default calendar when unknown), in the
/// owner's zone when known and allowed, from the policy's shared cache.
fn schedule_for(
    policy: &CompiledPolicy,
    lead_id: &str,
    owner_id: Option<&str>,
    owners: &Owners<'_>,
    notes: &mut Notes,
) -> Result<Arc<Schedule>, EngineError> {
    let settings = &policy.owners;
    let owner_label = owner_id.unwrap_or("(none)").to_string();
    let calendar_id = owner_id
        .and_then(|id| settings.calendar_by_owner.get(id))
        .or(settings.default_calendar.as_ref())
        .cloned()
        .or_else(|| (policy.calendars.len() == 1).then(|| policy.calendars.keys().next().cloned()).flatten())
        .ok_or_else(|| EngineError::NoCalendar { lead_id: lead_id.to_string(), owner: owner_label.clone() })?;
    let zone = match (settings.use_owner_time_zone, owner_id.and_then(|id| owners.get(id))) {
        (true, Some(owner)) => match owner.time_zone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
            Some(name) => match Tz::from_str(name) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    notes.add(|| {
                        format!(
                            "owner {owner_label} has unknown time zone `{name}`; using calendar `{calendar_id}`'s zone"
                        )
                    });
                    None
                }
            },
            None => None,
        },
        _ => None,
    };
    // An owner with time off has a schedule of their own.
    let days_off = owner_id.and_then(|id| policy.time_off.get(id));
    if let Some(days) = days_off {
        notes.add_once(|| {
            format!(
                "owner {owner_label} is away on {} listed day(s) (policy.owners.time_off): their clocks do not run then",
                days.len()
            )
        });
    }
    let key = (calendar_id.clone(), zone, days_off.and(owner_id).map(str::to_string));
    policy.schedules.get_or_build(&key, || {
        let calendar = policy.calendars.get(&calendar_id).ok_or_else(|| EngineError::UnknownCalendar {
            lead_id: lead_id.to_string(),
            owner: owner_label.clone(),
            calendar: calendar_id.clone(),
        })?;
        let base = Schedule::new(calendar).map_err(|source| EngineError::Calendar {
            lead_id: lead_id.to_string(),
            clock: "calendar",
            source,
        })?;
        let schedule = match zone {
            Some(tz) => base.with_time_zone(tz),
            None => base,
        };
        Ok(match days_off {
            Some(days) => schedule.with_days_off(days),
            None => schedule,
        })
    })
}

impl<'a> Ctx<'a, '_> {
    fn schedule(&mut self, owner_id: Option<&str>) -> Result<Arc<Schedule>, EngineError> {
        schedule_for(self.policy, &self.lead.id, owner_id, self.owners, &mut self.notes)
    }

    /// The decisions that count for the sales clocks: status changes into a
    /// disposition at or after the obligation began. A deferral counts only
    /// with a readable follow-up date.
    fn decisions(&mut self) -> Vec<Decision> {
        let current = self.current_status().map(str::to_string);
        let (decided, assumed) = decisions(self.lead, &self.policy.statuses, current.as_deref());
        if assumed {
            self.notes.add(|| {
                "no status history on the record; the decision is dated at the lead's last modification".to_string()
            });
        }
        let follow_up = self.follow_up_at();
        let from = self.obligation_at;
        let mut out = Vec::new();
        for d in decided.into_iter().filter(|d| d.at >= from) {
            if d.class == StatusClass::Deferred && follow_up.is_none() {
                let field = self.policy.fields.follow_up_at.as_deref().unwrap_or("follow_up_at");
                self.notes.add(|| format!(
                    "status `{}` at {} defers the lead, but `{field}` holds no follow-up date, so it is not a disposition",
                    d.status,
                    rfc3339(d.at)
                ));
                continue;
            }
            out.push(d);
        }
        out
    }

    /// The follow-up date of a deferred lead, when the policy maps the field
    /// and the lead holds a readable date.
    fn follow_up_at(&self) -> Option<DateTime<Utc>> {
        let field = self.policy.fields.follow_up_at.as_deref()?;
        self.lead.fields.get(field).and_then(parse_field_datetime)
    }

    /// The label of a schedule: `calendar (zone)`.
    fn calendar_label(schedule: &Schedule) -> String {
        schedule.label().to_string()
    }

    /// Wraps a calendar failure with the lead and clock it happened on.
    fn calendar_error(&self, kind: ClockKind) -> impl Fn(CalendarError) -> EngineError {
        let lead_id = self.lead.id.clone();
        move |source| EngineError::Calendar { lead_id: lead_id.clone(), clock: kind.as_str(), source }
    }

    fn current_status(&self) -> Option<&str> {
        self.lead.field_str(&self.policy.fields.status)
    }

    /// Touches that count for a clock owned as the record shows over time.
    fn touches(&self, segment: &CompiledSegment) -> Vec<&'a Activity> {
        let touch_by = segment.touch_by;
        let activities: &'a [Activity] = self.activities;
        let mut out: Vec<&'a Activity> = activities
            .iter()
            .filter(|a| is_touch(a, &self.lead.id, &segment.touch_kinds, segment.automated_touches))
            .filter(|a| match touch_by {
                TouchBy::Anyone => true,
                TouchBy::Owner => match self.ownership.owner_at(a.occurred_at) {
                    Some((owner, handoff_model::OwnerKind::User)) => a.owner_id.as_deref() == Some(owner),
                    // Owned by a queue (or nobody): any named rep working it counts.
                    _ => a.owner_id.is_some(),
                },
            })
            .collect();
        out.sort_by_key(|a| (a.occurred_at, a.id.clone()));
        out
    }
}

/// The SLA fields as they should read, and an `UpdateLead` when the lead
/// does not already read so.
fn write_back(ctx: &Ctx<'_, '_>, ev: &mut Evaluation) {
    let names = &ctx.policy.fields.sla;
    let sales: Vec<&Clock> = ev.clocks.iter().filter(|c| c.kind.is_sales()).collect();
    let running_due = sales.iter().filter(|c| c.status.is_running()).filter_map(|c| c.due_at).min();
    let breaches = sales.iter().filter(|c| c.status == ClockStatus::Breached).count();
    let status = if ev.waived.is_some() {
        ClockStatus::Waived.as_str()
    } else if breaches > 0 {
        ClockStatus::Breached.as_str()
    } else if sales.iter().any(|c| c.status == ClockStatus::AtRisk) {
        ClockStatus::AtRisk.as_str()
    } else if sales.iter().any(|c| c.status == ClockStatus::Pending && c.due_at.is_some()) {
        ClockStatus::Pending.as_str()
    } else if sales.iter().any(|c| c.paused_since.is_some()) {
        // Held by a queue without an intake seat: nothing is owed until a
        // user owns the lead again.
        "paused"
    } else {
        ClockStatus::Met.as_str()
    };
    let desired: BTreeMap<String, serde_json::Value> = [
        (names.grade.clone(), ev.grade.clone().map(serde_json::Value::String).unwrap_or(serde_json::Value::Null)),
        (
            names.due_at.clone(),
            running_due.map(|d| serde_json::Value::String(rfc3339(d))).unwrap_or(serde_json::Value::Null),
        ),
        (names.status.clone(), serde_json::Value::String(status.to_string())),
        (names.breach_count.clone(), serde_json::Value::from(breaches as u64)),
    ]
    .into_iter()
    .collect();
    let lead = ctx.lead;
    let differs = desired.iter().any(|(name, want)| !same_value(lead.fields.get(name), want));
    // A lead wholly of the past keeps its CRM fields unless the operator asked
    // for them (writing every historic record wakes every other integration).
    let enforcement = &ctx.policy.enforcement;
    let of_the_present = enforcement.enforces(lead.created_at)
        || ev.clocks.iter().filter_map(|c| c.received_at).any(|at| enforcement.enforces(at));
    if lead.read_only {
        if differs && ctx.notes.keep {
            ev.notes.push(
                "the CRM takes no more writes on this record (a converted lead): its SLA fields stay as they are"
                    .to_string(),
            );
        }
    } else if differs && (of_the_present || enforcement.write_back_history) {
        let current: BTreeMap<&String, Option<&serde_json::Value>> =
            desired.keys().map(|name| (name, lead.fields.get(name))).collect();
        let fingerprint = format!(
            "{}|{}",
            serde_json::to_string(&desired).unwrap_or_default(),
            serde_json::to_string(&current).unwrap_or_default()
        );
        ev.actions.push(Action {
            key: keys::fields_key(&lead.id, &keys::short_hash(&fingerprint, 12), ctx.policy.version),
            lead_id: lead.id.clone(),
            kind: ActionKind::UpdateLead { fields: desired.clone() },
        });
    }
    ev.sla_fields = desired;
}

/// Whether a CRM value already equals the wanted one (dates compared as
/// instants, numbers as numbers, empty strings as null).
fn same_value(have: Option<&serde_json::Value>, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    let have = match have {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(v) => v.clone(),
    };
    match (&have, want) {
        (Value::Null, Value::Null) => true,
        (Value::String(a), Value::String(b)) if a == b => true,
        (_, Value::Number(b)) => parse_field_number(&have).zip(b.as_f64()).is_some_and(|(a, b)| a == b),
        (Value::String(_), Value::String(b)) => {
            match (parse_field_datetime(&have), DateTime::parse_from_rfc3339(b).ok()) {
                (Some(a), Some(b)) => a == b.with_timezone(&Utc),
                _ => false,
            }
        }
        _ => false,
    }
}

/// The earliest future instant where a clock changes state or a rung fires.
///
/// Routing raises no task, but its breach counts in the week of its due
/// time: a lead still waiting for a rep is looked at again then, so the
/// stored state (and a closed week's scorecard) holds the breach without
/// waiting for the lead to change.
fn next_check(clocks: &[Clock], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut candidates = Vec::new();
    for clock in clocks {
        match clock.status {
            ClockStatus::Pending | ClockStatus::AtRisk => {
                candidates.extend(clock.remind_at);
                candidates.extend(clock.due_at);
                candidates.extend(clock.resumes_at);
            }
            ClockStatus::Breached if clock.stopped_at.is_none() && clock.kind.is_sales() => {
                candidates.extend(clock.escalations.iter().map(|r| r.at));
            }
            _ => {}
        }
    }
    candidates.into_iter().filter(|at| *at > now).min()
}
