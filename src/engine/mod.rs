//! The pure SLA evaluation engine.
//!
//! [`evaluate`] is a function of (lead, its activities, owners, compiled
//! policy, `now`): it returns the lead's grade, every SLA clock with its
//! status and reason, and the actions the CRM should see, each with a
//! deterministic [`ActionKey`](handoff_model::ActionKey). It does no I/O and
//! never reads the wall clock, so the daemon, `handoff explain` and the tests
//! all get the same answer for the same facts.
//!
//! # Clocks
//!
//! | clock | starts | stops | due |
//! |---|---|---|---|
//! | first touch | MQL time, or the first assignment to a user when the segment says `clock_start = "assignment"` (whichever is later); a reassignment restarts it with `on_reassign = "restart"` | the first call/email/meeting at or after the start, by the owner at that time (anyone with `touch_by = "anyone"`); a disposition before any touch ends it | the grade's window |
//! | SAL decision | first assignment to a user (not before the MQL time) | a status change into accepted/rejected/converted (or closed) | `sal_decision` |
//! | cadence | with the first-touch clock | judged when the lead is closed as unresponsive | ≥ N touches across ≥ M business days |
//! | disposition | with the first-touch clock (never restarted) | a status change into accepted/rejected/closed/converted; rejected and closed need a listed reason code | `disposition_within` |
//! | routing (marketing) | MQL time | first assignment to a user | `marketing.routing_within` |
//!
//! Business time is read in the calendar of the owner the clock belongs to
//! (`owners.calendar_by_owner`, else `owners.default_calendar`), in the
//! owner's own zone when the CRM knows it and `use_owner_time_zone` is on.
//! A lead arriving after hours starts counting at the next opening; the
//! clock still records the arrival as `received_at`.
//!
//! # Decisions worth knowing
//!
//! - **Cadence spread** counts the business days (in the owner's calendar)
//!   from the day of the first touch through the day of the last touch,
//!   inclusive, and counts touches from the clock start up to the close.
//! - **Reminders** go to the owner once a still-running clock passes its
//!   reminder point. A clock that is already breached gets no reminder (the
//!   escalation says more), and a stopped clock gets neither.
//! - **Escalations** fire only for clocks still running past their due time:
//!   a clock stopped late is reported as breached but raises no new tasks.
//!   A rung whose target does not exist (no manager) is served by the next
//!   rung whose target exists, at the earlier rung's time; that later rung
//!   then does not fire again.
//! - **Waived** leads (not an MQL, or missing a required field) carry no sales
//!   obligation: every clock is waived with the reason and the only action is
//!   the SLA-field write-back.
//! - **SLA fields** are written only when they differ from what the lead
//!   holds; the key hashes the new values together with the old ones, so a
//!   value that comes back after changing is written again.

mod history;
pub mod keys;
mod window;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use handoff_model::{Action, ActionKind, Activity, Lead, Owner, TaskPriority, TaskPurpose};
use serde::{Deserialize, Serialize};

use crate::calendar::{CalendarError, Schedule};
use crate::policy::{
    ClockStart, CompiledPolicy, CompiledSegment, EscalationTarget, OnReassign, Qualification, TouchBy, Window,
};

pub use history::{classify, decisions, parse_field_datetime, parse_field_number, Decision, StatusClass};
use history::{is_touch, Ownership};

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
    by_id: HashMap<&'a str, &'a Owner>,
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
    Routing,
}

impl ClockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::FirstTouch => "first_touch",
            ClockKind::SalDecision => "sal_decision",
            ClockKind::Cadence => "cadence",
            ClockKind::Disposition => "disposition",
            ClockKind::Routing => "routing",
        }
    }

    /// Short form used inside action keys.
    fn key_code(self) -> &'static str {
        match self {
            ClockKind::FirstTouch => "ft",
            ClockKind::SalDecision => "sal",
            ClockKind::Cadence => "cad",
            ClockKind::Disposition => "disp",
            ClockKind::Routing => "route",
        }
    }

    /// Sales clocks feed the SLA fields, reminders and escalations; routing
    /// is marketing's and is only reported.
    fn is_sales(self) -> bool {
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
}

impl ClockStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockStatus::Pending => "pending",
            ClockStatus::AtRisk => "at_risk",
            ClockStatus::Met => "met",
            ClockStatus::Breached => "breached",
            ClockStatus::Waived => "waived",
        }
    }

    fn is_running(self) -> bool {
        matches!(self, ClockStatus::Pending | ClockStatus::AtRisk)
    }
}

/// One escalation rung as scheduled for a clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    /// 1-based level of the rung whose target is used.
    pub level: u8,
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
    /// The user the clock belongs to (whose calendar and inbox).
    pub owner_id: Option<String>,
    /// The event that started the clock (MQL time, assignment, reassignment).
    pub received_at: Option<DateTime<Utc>>,
    /// When counting began: `received_at`, or the next opening after it.
    pub started_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub remind_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    pub status: ClockStatus,
    /// Why the clock has its status, in words.
    pub reason: String,
    /// The lead was closed in a way the policy does not allow (no agreed
    /// reason code, too few touches): the owner gets a disposition-flag task.
    pub flagged: bool,
    /// Escalation rungs for a running clock past or near its due time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<Rung>,
    /// What stopped the clock, when it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<StopCause>,
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
}

impl Clock {
    fn waived(kind: ClockKind, reason: &str) -> Clock {
        Clock {
            kind,
            owner_id: None,
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
    /// Why, in words.
    pub notes: Vec<String>,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Schedules by (calendar, zone), built once per evaluation.
struct Calendars<'p> {
    policy: &'p CompiledPolicy,
    built: HashMap<(String, Option<Tz>), Schedule>,
}

/// Evaluates one lead. See the module docs for the rules.
pub fn evaluate(
    lead: &Lead,
    activities: &[Activity],
    owners: &Owners<'_>,
    policy: &CompiledPolicy,
    now: DateTime<Utc>,
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
        notes: Vec::new(),
    };
    if lead.deleted || lead.merged_into.is_some() {
        let why = match &lead.merged_into {
            Some(into) => format!("merged into {into}; the surviving record carries the SLA"),
            None => "deleted in the CRM; no clocks and no actions".to_string(),
        };
        ev.notes.push(why);
        return Ok(ev);
    }
    let mut ctx = Ctx {
        lead,
        activities,
        owners,
        policy,
        now,
        calendars: Calendars { policy, built: HashMap::new() },
        ownership: Ownership::new(lead, owners),
        notes: Vec::new(),
    };
    if ctx.ownership.assumed {
        ctx.notes
            .push("no ownership history on the record; the current owner is taken as assigned at creation".to_string());
    }

    let not_mql = judge_mql(&mut ctx, &mut ev);
    ev.grade = policy.grade_for(&lead.fields).map(str::to_string);
    match &ev.grade {
        Some(grade) => ctx.notes.push(format!("grade {grade}: first grade rule that matches")),
        None => ctx.notes.push("no grade rule matches".to_string()),
    }
    let segment = policy.segment_for(&lead.fields);
    ev.segment = segment.map(|s| s.name.clone());

    let missing = policy.missing_required_fields(&lead.fields);
    if let Some(why) = not_mql {
        ev.waived = Some(why);
    } else if !missing.is_empty() {
        ev.waived = Some(format!("incomplete data: missing {}", missing.join(", ")));
    }

    if let Some(why) = ev.waived.clone() {
        ctx.notes.push(format!(
            "waived ({why}): a lead below the agreed criteria or with incomplete data carries no sales obligation"
        ));
        let mut kinds = vec![ClockKind::FirstTouch];
        if segment.is_some_and(|s| s.sal_decision.is_some()) {
            kinds.push(ClockKind::SalDecision);
        }
        kinds.extend([ClockKind::Disposition, ClockKind::Routing]);
        ev.clocks = kinds.into_iter().map(|k| Clock::waived(k, &why)).collect();
    } else {
        match segment {
            Some(segment) => {
                ev.clocks = sales_clocks(&mut ctx, segment, ev.grade.as_deref())?;
            }
            None => ctx.notes.push("no segment applies; the policy needs a final catch-all segment".to_string()),
        }
        ev.clocks.push(routing_clock(&mut ctx)?);
        ev.actions = clock_actions(&mut ctx, &mut ev.clocks)?;
    }

    write_back(&ctx, &mut ev);
    ev.next_check_at = next_check(&ev.clocks, now);
    ev.notes.append(&mut ctx.notes);
    Ok(ev)
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
    let mut calendars = Calendars { policy, built: HashMap::new() };
    calendars.for_owner("(report)", owner_id, owners, &mut Vec::new())
}

struct Ctx<'a, 'p> {
    lead: &'a Lead,
    activities: &'a [Activity],
    owners: &'a Owners<'a>,
    policy: &'p CompiledPolicy,
    now: DateTime<Utc>,
    calendars: Calendars<'p>,
    ownership: Ownership,
    notes: Vec<String>,
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
            ctx.notes
                .push("MQL: no disqualifier matches, the score reaches the minimum and the MQL rule holds".to_string());
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
            ctx.notes.push("the MQL rule, test by test:".to_string());
            ctx.notes.extend(lines.iter().map(|l| format!("  {l}")));
            format!("not an MQL: the MQL rule does not hold ({})", failed.join("; "))
        }
    };
    ctx.notes.push(why.clone());
    Some(why)
}

impl Calendars<'_> {
    /// The schedule for `owner_id` (the default calendar when unknown), in
    /// the owner's zone when known and allowed.
    fn for_owner(
        &mut self,
        lead_id: &str,
        owner_id: Option<&str>,
        owners: &Owners<'_>,
        notes: &mut Vec<String>,
    ) -> Result<Schedule, EngineError> {
        let settings = &self.policy.owners;
        let owner_label = owner_id.unwrap_or("(none)").to_string();
        let calendar_id = owner_id
            .and_then(|id| settings.calendar_by_owner.get(id))
            .or(settings.default_calendar.as_ref())
            .cloned()
            .or_else(|| {
                (self.policy.calendars.len() == 1).then(|| self.policy.calendars.keys().next().cloned()).flatten()
            })
            .ok_or_else(|| EngineError::NoCalendar { lead_id: lead_id.to_string(), owner: owner_label.clone() })?;
        let zone = match (settings.use_owner_time_zone, owner_id.and_then(|id| owners.get(id))) {
            (true, Some(owner)) => {
                match owner.time_zone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
                    Some(name) => match Tz::from_str(name) {
                        Ok(tz) => Some(tz),
                        Err(_) => {
                            notes.push(format!("owner {owner_label} has unknown time zone `{name}`; using calendar `{calendar_id}`'s zone"));
                            None
                        }
                    },
                    None => None,
                }
            }
            _ => None,
        };
        let key = (calendar_id.clone(), zone);
        if let Some(schedule) = self.built.get(&key) {
            return Ok(schedule.clone());
        }
        let calendar = self.policy.calendars.get(&calendar_id).ok_or_else(|| EngineError::UnknownCalendar {
            lead_id: lead_id.to_string(),
            owner: owner_label,
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
        self.built.insert(key, schedule.clone());
        Ok(schedule)
    }
}

impl<'a> Ctx<'a, '_> {
    fn schedule(&mut self, owner_id: Option<&str>) -> Result<Schedule, EngineError> {
        self.calendars.for_owner(&self.lead.id, owner_id, self.owners, &mut self.notes)
    }

    /// Wraps a calendar failure with the lead and clock it happened on.
    fn calendar_error(&self, kind: ClockKind) -> impl Fn(CalendarError) -> EngineError {
        let lead_id = self.lead.id.clone();
        move |source| EngineError::Calendar { lead_id: lead_id.clone(), clock: kind.as_str(), source }
    }

    /// MQL time (see [`mql_time`]); an unreadable field is noted.
    fn mql_at(&mut self) -> DateTime<Utc> {
        let (at, note) = mql_time(self.lead, self.policy);
        if let Some(note) = note {
            self.notes.push(note);
        }
        at
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
            .filter(|a| is_touch(a, &self.lead.id, &segment.touch_kinds))
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

/// Status of a clock from its times.
fn judge(
    due: DateTime<Utc>,
    remind: Option<DateTime<Utc>>,
    stopped: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (ClockStatus, Option<DateTime<Utc>>) {
    match stopped {
        Some(stop) if stop <= due => (ClockStatus::Met, None),
        Some(_) => (ClockStatus::Breached, Some(due)),
        None if now >= due => (ClockStatus::Breached, Some(due)),
        None if remind.is_some_and(|r| now >= r) => (ClockStatus::AtRisk, None),
        None => (ClockStatus::Pending, None),
    }
}

/// A timed clock from `received_at` on `owner`'s schedule, stopped at `stopped`.
#[allow(clippy::too_many_arguments)]
fn timed_clock(
    ctx: &mut Ctx<'_, '_>,
    kind: ClockKind,
    owner: Option<String>,
    received_at: DateTime<Utc>,
    window: &Window,
    stopped: Option<DateTime<Utc>>,
    stop_reason: &str,
    running_reason: &str,
) -> Result<Clock, EngineError> {
    let schedule = ctx.schedule(owner.as_deref())?;
    let err = ctx.calendar_error(kind);
    let started = window::effective_start(&schedule, received_at, window).map_err(&err)?;
    let due = window::deadline(&schedule, received_at, window).map_err(&err)?;
    let remind = window::remind_at(&schedule, window, started, due, &ctx.policy.escalation.remind).map_err(&err)?;
    let (status, breached_at) = judge(due, remind, stopped, ctx.now);
    let reason = match (status, stopped) {
        (ClockStatus::Met, Some(stop)) => format!("{stop_reason} at {} (due {})", rfc3339(stop), rfc3339(due)),
        (ClockStatus::Breached, Some(stop)) => {
            format!("{stop_reason} at {}, after the due time {}", rfc3339(stop), rfc3339(due))
        }
        (ClockStatus::Breached, None) => format!("{running_reason}; due {} has passed", rfc3339(due)),
        (ClockStatus::AtRisk, _) => format!(
            "{running_reason}; reminder point {} has passed, due {}",
            remind.map(rfc3339).unwrap_or_default(),
            rfc3339(due)
        ),
        _ => format!("{running_reason}; due {}", rfc3339(due)),
    };
    if started != received_at {
        ctx.notes.push(format!(
            "{}: arrived {} outside business hours; counting starts at the next opening {}",
            kind.as_str(),
            rfc3339(received_at),
            rfc3339(started)
        ));
    }
    let mut clock = Clock {
        kind,
        owner_id: owner,
        received_at: Some(received_at),
        started_at: Some(started),
        due_at: Some(due),
        remind_at: remind,
        stopped_at: stopped,
        breached_at,
        status,
        reason,
        flagged: false,
        escalations: Vec::new(),
        stopped_by: None,
    };
    if stopped.is_none() {
        clock.escalations = ladder(ctx, &schedule, window, &clock)?;
    }
    Ok(clock)
}

/// The escalation rungs of a running clock. A rung without a target hands
/// its turn to the next rung that has one.
fn ladder(
    ctx: &mut Ctx<'_, '_>,
    schedule: &Schedule,
    window: &Window,
    clock: &Clock,
) -> Result<Vec<Rung>, EngineError> {
    let (Some(started), Some(due)) = (clock.started_at, clock.due_at) else { return Ok(Vec::new()) };
    let owner = clock.owner_id.as_deref();
    let policy = ctx.policy;
    let targets: Vec<Option<(String, bool)>> = policy
        .escalation
        .levels
        .iter()
        .map(|level| match &level.to {
            EscalationTarget::Manager => owner.and_then(|o| ctx.owners.manager_of(o, policy)).map(|m| (m, false)),
            EscalationTarget::ManagerOfManager => owner
                .and_then(|o| ctx.owners.manager_of(o, policy))
                .and_then(|m| ctx.owners.manager_of(&m, policy))
                .map(|m| (m, false)),
            EscalationTarget::Pool(pool) => Some((pool.clone(), true)),
        })
        .collect();
    let mut consumed = BTreeSet::new();
    let mut rungs = Vec::new();
    for (index, level) in policy.escalation.levels.iter().enumerate() {
        if consumed.contains(&index) {
            continue;
        }
        let at =
            window::rung_at(schedule, window, started, due, &level.after).map_err(ctx.calendar_error(clock.kind))?;
        let chosen = (index..targets.len()).find(|j| !consumed.contains(j) && targets[*j].is_some());
        let Some(j) = chosen else {
            ctx.notes.push(format!(
                "{}: escalation level {} has no one to go to (owner {} has no manager and no later rung exists)",
                clock.kind.as_str(),
                index + 1,
                owner.unwrap_or("(none)")
            ));
            break;
        };
        if j != index {
            ctx.notes.push(format!(
                "{}: escalation level {} has no one to go to ({}); level {} takes its turn",
                clock.kind.as_str(),
                index + 1,
                describe_target(&level.to),
                j + 1
            ));
        }
        consumed.insert(j);
        let Some((to, reassign)) = targets[j].clone() else { continue };
        let level_number = u8::try_from(j + 1).unwrap_or(u8::MAX);
        rungs.push(Rung { level: level_number, at, to, reassign, fired: ctx.now >= at });
    }
    Ok(rungs)
}

fn describe_target(target: &EscalationTarget) -> String {
    match target {
        EscalationTarget::Manager => "the owner's manager".to_string(),
        EscalationTarget::ManagerOfManager => "the manager's manager".to_string(),
        EscalationTarget::Pool(pool) => format!("pool {pool}"),
    }
}

fn sales_clocks(
    ctx: &mut Ctx<'_, '_>,
    segment: &CompiledSegment,
    grade: Option<&str>,
) -> Result<Vec<Clock>, EngineError> {
    let mql_at = ctx.mql_at();
    let user_assignments: Vec<(String, DateTime<Utc>)> =
        ctx.ownership.user_assignments().into_iter().map(|(id, at)| (id.to_string(), at)).collect();
    let first_user = user_assignments.first().cloned();
    let mut clocks = Vec::new();

    // The sales start: MQL time, or the first assignment to a user if later
    // (queue ownership does not start it).
    let base_start = match segment.clock_start {
        ClockStart::Mql => Some(mql_at),
        ClockStart::Assignment => first_user.as_ref().map(|(_, at)| (*at).max(mql_at)),
    };
    let Some(base_start) = base_start else {
        let why = "waiting for assignment to a user (clock_start = assignment)".to_string();
        clocks.push(Clock::not_started(ClockKind::FirstTouch, None, why.clone()));
        if segment.sal_decision.is_some() {
            clocks.push(Clock::not_started(ClockKind::SalDecision, None, why.clone()));
        }
        clocks.push(Clock::not_started(ClockKind::Disposition, None, why));
        return Ok(clocks);
    };
    let base_owner = ctx.ownership.user_for(base_start).map(str::to_string);
    if let Some(owner) = base_owner.as_deref() {
        if ctx.owners.get(owner).is_none() {
            ctx.notes.push(format!("owner {owner} is unknown to the CRM pull; default calendar, no manager"));
        }
    }
    let touches = ctx.touches(segment);

    // First touch, following reassignments when the segment restarts.
    let mut ft_start = base_start;
    let mut ft_owner = base_owner.clone();
    // Each reassignment is looked at once, in order: `seen_until` only grows.
    let mut seen_until = base_start;
    let stop = loop {
        let touch = touches.iter().find(|a| a.occurred_at >= ft_start).copied();
        let reassignment =
            user_assignments.iter().find(|(id, at)| *at > seen_until && Some(id) != ft_owner.as_ref()).cloned();
        match reassignment {
            Some((id, at)) if touch.is_none_or(|t| t.occurred_at >= at) => {
                seen_until = at;
                match segment.on_reassign {
                    OnReassign::Restart => {
                        ctx.notes.push(format!(
                            "first_touch: reassigned to {id} at {} before any touch; the clock restarts (on_reassign = restart)",
                            rfc3339(at)
                        ));
                        ft_start = at;
                    }
                    OnReassign::Continue => ctx.notes.push(format!(
                        "first_touch: reassigned to {id} at {}; the clock keeps its original start and now belongs to {id} (on_reassign = continue)",
                        rfc3339(at)
                    )),
                }
                ft_owner = Some(id);
            }
            _ => break touch,
        }
    };
    let current_status = ctx.current_status().map(str::to_string);
    let (decided, assumed) = decisions(ctx.lead, &ctx.policy.statuses, current_status.as_deref());
    if assumed {
        ctx.notes
            .push("no status history on the record; the decision is dated at the lead's last modification".to_string());
    }
    let decided: Vec<Decision> = decided.into_iter().filter(|d| d.at >= mql_at).collect();

    if stop.is_none() {
        explain_non_touches(ctx, segment, ft_start);
    }
    match grade.and_then(|g| segment.first_touch.get(g)) {
        Some(window) => {
            let window = *window;
            // A disposition before any touch ends the obligation: nobody
            // should be chased to call a lead already rejected or converted.
            let ended = decided.first().filter(|d| stop.is_none_or(|a| d.at < a.occurred_at));
            let (stopped_at, stop_reason, stopped_by) = match (ended, stop) {
                (Some(d), _) => (
                    Some(d.at),
                    format!("no touch; the lead was dispositioned as `{}`", d.status),
                    Some(StopCause::Status { status: d.status.clone() }),
                ),
                (None, Some(a)) => (
                    Some(a.occurred_at),
                    format!(
                        "touched: {} {} by {}",
                        a.kind.as_str(),
                        a.id,
                        a.owner_id.as_deref().unwrap_or("(unknown)")
                    ),
                    Some(StopCause::Touch { activity_id: a.id.clone() }),
                ),
                (None, None) => (None, String::new(), None),
            };
            let running = match segment.touch_by {
                TouchBy::Owner => "no call, email or meeting by the owner yet",
                TouchBy::Anyone => "no call, email or meeting yet",
            };
            let mut clock = timed_clock(
                ctx,
                ClockKind::FirstTouch,
                ft_owner.clone(),
                ft_start,
                &window,
                stopped_at,
                &stop_reason,
                running,
            )?;
            clock.stopped_by = stopped_by;
            clocks.push(clock);
        }
        None => {
            let why = match grade {
                Some(g) => format!("segment `{}` sets no first-touch window for grade {g}", segment.name),
                None => "the lead has no grade, so no first-touch window applies".to_string(),
            };
            ctx.notes.push(format!("first_touch: {why}"));
            clocks.push(Clock::not_started(ClockKind::FirstTouch, ft_owner.clone(), why));
        }
    }

    // SAL decision: from the first assignment to a user.
    if let Some(window) = segment.sal_decision {
        match &first_user {
            Some((owner, at)) => {
                let start = (*at).max(mql_at);
                // Accepted, rejected or converted is the decision; a lead closed
                // as unresponsive is decided too (the disposition clock judges it).
                let stop = decided.first();
                let mut clock = timed_clock(
                    ctx,
                    ClockKind::SalDecision,
                    Some(owner.clone()),
                    start,
                    &window,
                    stop.map(|d| d.at),
                    &format!("status became `{}`", stop.map(|d| d.status.as_str()).unwrap_or_default()),
                    "not yet accepted or rejected",
                )?;
                clock.stopped_by = stop.map(|d| StopCause::Status { status: d.status.clone() });
                clocks.push(clock);
            }
            None => clocks.push(Clock::not_started(
                ClockKind::SalDecision,
                None,
                "starts at the first assignment to a user; none yet".to_string(),
            )),
        }
    }

    let current_class = current_status.as_deref().and_then(|s| classify(&ctx.policy.statuses, s));

    // Cadence: judged when the lead is closed as unresponsive.
    clocks.push(cadence_clock(ctx, segment, base_start, base_owner.clone(), &touches, &decided, current_class)?);

    // Disposition: within the window from the sales start; rejected and
    // closed need a listed reason code.
    let stop = decided.first();
    let mut clock = timed_clock(
        ctx,
        ClockKind::Disposition,
        base_owner,
        base_start,
        &segment.disposition_within,
        stop.map(|d| d.at),
        &format!("status became `{}`", stop.map(|d| d.status.as_str()).unwrap_or_default()),
        "not yet accepted, rejected, closed or converted",
    )?;
    clock.stopped_by = stop.map(|d| StopCause::Status { status: d.status.clone() });
    if let Some(class) = current_class.filter(|c| c.needs_reason()) {
        let field = &ctx.policy.fields.reason_code;
        let code = ctx.lead.field_str(field).map(str::trim);
        let problem = match code {
            None => Some(format!(
                "status `{}` needs a reason code in `{field}`, which is empty",
                current_status.as_deref().unwrap_or_default()
            )),
            Some(code) if !ctx.policy.reason_codes.iter().any(|c| c == code) => Some(format!(
                "reason code `{code}` in `{field}` is not one of the agreed codes ({})",
                ctx.policy.reason_codes.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            let at = decided.iter().rev().find(|d| d.class == class).map(|d| d.at).or(clock.stopped_at);
            clock.status = ClockStatus::Breached;
            clock.breached_at = at.or(clock.due_at);
            clock.stopped_at = at;
            clock.escalations.clear();
            clock.flagged = true;
            clock.reason = problem;
        }
    }
    clocks.push(clock);
    Ok(clocks)
}

/// Says why each activity and status change since `start` did not stop the
/// first-touch clock, so a disputed breach can be read off the notes.
fn explain_non_touches(ctx: &mut Ctx<'_, '_>, segment: &CompiledSegment, start: DateTime<Utc>) {
    let mut lines = Vec::new();
    for a in ctx.activities.iter().filter(|a| a.lead_id == ctx.lead.id && a.occurred_at >= start) {
        let why = if a.deleted {
            "it was deleted".to_string()
        } else if a.handoff_key.is_some() {
            "handoff created it".to_string()
        } else if !segment.touch_kinds.contains(&a.kind) || a.kind == handoff_model::ActivityKind::Task {
            format!("a {} is not a touch", a.kind.as_str())
        } else if segment.touch_by == TouchBy::Owner {
            match ctx.ownership.owner_at(a.occurred_at) {
                Some((owner, handoff_model::OwnerKind::User)) if a.owner_id.as_deref() != Some(owner) => format!(
                    "it was logged by {}, not by the owner {owner} (touch_by = owner)",
                    a.owner_id.as_deref().unwrap_or("(nobody)")
                ),
                _ => continue,
            }
        } else {
            continue;
        };
        lines.push(format!(
            "first_touch: {} {} at {} does not count: {why}",
            a.kind.as_str(),
            a.id,
            rfc3339(a.occurred_at)
        ));
    }
    for change in ctx.lead.status_changes.iter().filter(|c| c.at >= start) {
        lines.push(format!(
            "first_touch: the status change to `{}` at {} does not count: a status change is not a touch",
            change.status,
            rfc3339(change.at)
        ));
    }
    ctx.notes.extend(lines);
}

fn cadence_clock(
    ctx: &mut Ctx<'_, '_>,
    segment: &CompiledSegment,
    start: DateTime<Utc>,
    owner: Option<String>,
    touches: &[&Activity],
    decided: &[Decision],
    current_class: Option<StatusClass>,
) -> Result<Clock, EngineError> {
    let needed_touches = segment.cadence.touches;
    let needed_days = segment.cadence.business_days;
    let closed_at = (current_class == Some(StatusClass::ClosedUnresponsive))
        .then(|| decided.iter().rev().find(|d| d.class == StatusClass::ClosedUnresponsive).map(|d| d.at))
        .flatten();
    let until = closed_at.unwrap_or(ctx.now);
    let counted: Vec<&Activity> =
        touches.iter().copied().filter(|a| a.occurred_at >= start && a.occurred_at <= until).collect();
    let schedule = ctx.schedule(owner.as_deref())?;
    let days = match (counted.first(), counted.last()) {
        (Some(first), Some(last)) => business_days_spanned(&schedule, first.occurred_at, last.occurred_at),
        _ => 0,
    };
    let tally = format!("{} of {needed_touches} touches across {days} of {needed_days} business days", counted.len());
    let mut clock = Clock {
        kind: ClockKind::Cadence,
        owner_id: owner,
        received_at: Some(start),
        started_at: Some(start),
        status: ClockStatus::Pending,
        reason: format!("{tally} so far; judged when the lead is closed as unresponsive"),
        ..Clock::waived(ClockKind::Cadence, "")
    };
    if let Some(closed) = closed_at {
        clock.stopped_at = Some(closed);
        clock.stopped_by =
            current_class.map(|_| StopCause::Status { status: ctx.current_status().unwrap_or("closed").to_string() });
        let enough = counted.len() as u64 >= u64::from(needed_touches) && days >= needed_days;
        if enough {
            clock.status = ClockStatus::Met;
            clock.reason = format!("closed as unresponsive after {tally}");
        } else {
            clock.status = ClockStatus::Breached;
            clock.breached_at = Some(closed);
            clock.flagged = true;
            clock.reason = format!("closed as unresponsive after only {tally}");
        }
    }
    Ok(clock)
}

/// Business days (local dates with open time in `schedule`) from the day of
/// `first` through the day of `last`, inclusive.
fn business_days_spanned(schedule: &Schedule, first: DateTime<Utc>, last: DateTime<Utc>) -> u32 {
    let tz = schedule.time_zone();
    let day_start = |date: chrono::NaiveDate| tz.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN)).earliest();
    let first_date = first.with_timezone(&tz).date_naive();
    let last_date = last.with_timezone(&tz).date_naive();
    let (Some(from), Some(to)) = (day_start(first_date), last_date.succ_opt().and_then(day_start)) else {
        return 0;
    };
    let dates: BTreeSet<chrono::NaiveDate> = schedule
        .open_intervals(from.with_timezone(&Utc), to.with_timezone(&Utc))
        .into_iter()
        .map(|(open, _)| open.with_timezone(&tz).date_naive())
        .collect();
    u32::try_from(dates.len()).unwrap_or(u32::MAX)
}

/// Marketing's routing clock: MQL time to the first assignment to a user.
fn routing_clock(ctx: &mut Ctx<'_, '_>) -> Result<Clock, EngineError> {
    let mql_at = ctx.mql_at();
    let assigned = ctx.ownership.user_assignments().first().map(|(id, at)| (id.to_string(), *at));
    let window = ctx.policy.marketing.routing_within;
    let mut clock = timed_clock(
        ctx,
        ClockKind::Routing,
        None,
        mql_at,
        &window,
        assigned.as_ref().map(|(_, at)| (*at).max(mql_at)),
        &format!("assigned to {}", assigned.as_ref().map(|(id, _)| id.as_str()).unwrap_or_default()),
        "not yet assigned to a user",
    )?;
    clock.escalations.clear();
    clock.remind_at = None;
    clock.stopped_by = assigned.map(|(owner_id, _)| StopCause::Assignment { owner_id });
    if clock.status == ClockStatus::AtRisk {
        clock.status = ClockStatus::Pending;
    }
    Ok(clock)
}

/// Reminders, escalations and disposition flags for the clocks.
fn clock_actions(ctx: &mut Ctx<'_, '_>, clocks: &mut [Clock]) -> Result<Vec<Action>, EngineError> {
    let lead = ctx.lead;
    let version = ctx.policy.version;
    let mut actions = Vec::new();
    for clock in clocks.iter().filter(|c| c.kind.is_sales()) {
        let (Some(received), Some(owner)) = (clock.received_at, clock.owner_id.clone()) else {
            if clock.status == ClockStatus::AtRisk || clock.status == ClockStatus::Breached {
                ctx.notes
                    .push(format!("{}: no user owns the lead, so no reminder or escalation task", clock.kind.as_str()));
            }
            continue;
        };
        let key = |what: &str| keys::clock_key(&lead.id, clock.kind.key_code(), received, what, version);
        let label = clock.kind.as_str().replace('_', " ");
        match (clock.kind, clock.status) {
            (_, ClockStatus::Breached) if clock.flagged => {
                actions.push(Action {
                    key: key("flag"),
                    lead_id: lead.id.clone(),
                    kind: ActionKind::CreateTask {
                        assignee_id: owner,
                        subject: format!("Fix the disposition of lead {}", lead.id),
                        body: clock.reason.clone(),
                        due_at: clock.stopped_at.unwrap_or(received),
                        priority: TaskPriority::High,
                        purpose: TaskPurpose::DispositionFlag,
                    },
                });
            }
            (_, ClockStatus::AtRisk) => {
                let Some(due) = clock.due_at else { continue };
                actions.push(Action {
                    key: key("rem"),
                    lead_id: lead.id.clone(),
                    kind: ActionKind::CreateTask {
                        assignee_id: owner,
                        subject: format!("SLA reminder: {label} for lead {} due {}", lead.id, rfc3339(due)),
                        body: clock.reason.clone(),
                        due_at: due,
                        priority: TaskPriority::Normal,
                        purpose: TaskPurpose::Reminder,
                    },
                });
            }
            (_, ClockStatus::Breached) if clock.stopped_at.is_none() => {
                for rung in clock.escalations.iter().filter(|r| r.fired) {
                    let what = format!("esc{}", rung.level);
                    let kind = if rung.reassign {
                        if lead.owner_id.as_deref() == Some(rung.to.as_str()) {
                            continue;
                        }
                        ActionKind::Reassign { to_owner_id: rung.to.clone() }
                    } else {
                        ActionKind::CreateTask {
                            assignee_id: rung.to.clone(),
                            subject: format!("SLA breached: {label} for lead {} (owner {owner})", lead.id),
                            body: format!("Escalation level {}: {}", rung.level, clock.reason),
                            due_at: rung.at,
                            priority: TaskPriority::High,
                            purpose: TaskPurpose::Escalation { level: rung.level },
                        }
                    };
                    actions.push(Action { key: key(&what), lead_id: lead.id.clone(), kind });
                }
            }
            _ => {}
        }
    }
    Ok(actions)
}

/// The SLA fields as they should read, and an `UpdateLead` when the lead
/// does not already read so.
fn write_back(ctx: &Ctx<'_, '_>, ev: &mut Evaluation) {
    let names = &ctx.policy.fields.sla;
    let sales: Vec<&Clock> = ev.clocks.iter().filter(|c| c.kind.is_sales()).collect();
    let running_due = sales.iter().filter(|c| c.status.is_running()).filter_map(|c| c.due_at).min();
    let breaches = sales.iter().filter(|c| c.status == ClockStatus::Breached).count();
    let status = if ev.waived.is_some() {
        ClockStatus::Waived
    } else if breaches > 0 {
        ClockStatus::Breached
    } else if sales.iter().any(|c| c.status == ClockStatus::AtRisk) {
        ClockStatus::AtRisk
    } else if sales.iter().any(|c| c.status == ClockStatus::Pending && c.due_at.is_some()) {
        ClockStatus::Pending
    } else {
        ClockStatus::Met
    };
    let desired: BTreeMap<String, serde_json::Value> = [
        (names.grade.clone(), ev.grade.clone().map(serde_json::Value::String).unwrap_or(serde_json::Value::Null)),
        (
            names.due_at.clone(),
            running_due.map(|d| serde_json::Value::String(rfc3339(d))).unwrap_or(serde_json::Value::Null),
        ),
        (names.status.clone(), serde_json::Value::String(status.as_str().to_string())),
        (names.breach_count.clone(), serde_json::Value::from(breaches as u64)),
    ]
    .into_iter()
    .collect();
    let lead = ctx.lead;
    let differs = desired.iter().any(|(name, want)| !same_value(lead.fields.get(name), want));
    if differs {
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
            }
            ClockStatus::Breached if clock.stopped_at.is_none() && clock.kind.is_sales() => {
                candidates.extend(clock.escalations.iter().map(|r| r.at));
            }
            _ => {}
        }
    }
    candidates.into_iter().filter(|at| *at > now).min()
}
