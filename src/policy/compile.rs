//! From the file's shape to engine-ready types, with every check a revops
//! engineer could need.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime, Weekday};
use handoff_model::{
    ActivityKind, BusinessCalendar, Holiday, WeeklyWindow, MAX_CALENDARS, MAX_HOLIDAYS, MAX_WEEKLY_WINDOWS,
};
use serde_json::Value as Json;

use super::cond::{parse_instant, Cond, CondValue, Op, Scalar, OP_SPELLINGS};
use super::window::{parse_window, Window, MAX_BUSINESS_DAYS, WINDOW_FIX};
use super::{
    Cadence, CalendarSpec, ClockStart, Condition, FieldMap, Issue, OnReassign, OwnerSettings, Policy, StatusMap,
    TouchBy,
};
use crate::calendar::Schedule;

/// A validated policy, ready for the engine.
///
/// Whether a lead is an MQL is three separate parts, judged in this order
/// (see [`CompiledPolicy::qualify`]): no `disqualifiers` entry matches, the
/// score on `fields.score` reaches `min_score` (when set), and `mql` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPolicy {
    pub version: u32,
    pub fields: FieldMap,
    pub statuses: StatusMap,
    pub reason_codes: BTreeSet<String>,
    /// By name; each was accepted by [`Schedule::new`].
    pub calendars: BTreeMap<String, BusinessCalendar>,
    /// `default_calendar` is always `Some` and names a calendar in `calendars`.
    pub owners: OwnerSettings,
    /// The MQL rule alone, named criteria inlined (no disqualifiers, no score).
    pub mql: Cond,
    /// In file order (alphabetical by name).
    pub disqualifiers: Vec<(String, Cond)>,
    pub min_score: Option<f64>,
    /// In order; the first match is the lead's grade.
    pub grades: Vec<(String, Cond)>,
    /// Plain-words description per grade name, for reports.
    pub grade_descriptions: BTreeMap<String, String>,
    /// In order; the last has no `applies_to`.
    pub segments: Vec<CompiledSegment>,
    pub marketing: CompiledMarketing,
    pub escalation: CompiledEscalation,
    pub scorecard: CompiledScorecard,
    /// Declared surges, sorted by start, and their relaxed windows.
    pub surge: CompiledSurge,
    /// Each owner's days off, sorted (owners with none are absent): closed
    /// days on their schedule.
    pub time_off: BTreeMap<String, Vec<NaiveDate>>,
    /// Caps on new MQLs per rep and business day, and their overflow.
    pub capacity: CompiledCapacity,
    /// The schedules evaluations under this policy built, shared.
    pub schedules: crate::calendar::ScheduleCache,
    /// Which clocks handoff acts on; the daemon sets it from
    /// `sync.enforce_from` (by default, its first start). The policy file
    /// does not say it.
    pub enforcement: Enforcement,
}

impl CompiledPolicy {
    /// Whether the engine reports each lead's arrival for the daemon to
    /// decide: capacity (caps, reps away) or surge detection asks for it.
    pub fn counts_arrivals(&self) -> bool {
        self.capacity.is_on() || self.surge.detect.is_some()
    }

    /// Whether a segment has the AE's commitments: then the connector
    /// reads the opportunity stream and the activities logged on
    /// opportunities, and the daemon joins them to their leads.
    pub fn reads_opportunities(&self) -> bool {
        self.segments.iter().any(|s| s.discovery_within.is_some() || s.opportunity_within.is_some())
    }
}

/// The boundary between the past handoff measures and the present it
/// enforces. A clock that started before `from` is judged and counted in
/// the scorecard, but gets no reminder, escalation, reassignment or flag;
/// a lead none of whose clocks started since (nor the lead itself) gets
/// its SLA fields written only with `write_back_history`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enforcement {
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub write_back_history: bool,
}

impl Enforcement {
    /// Whether something that began at `at` is enforced.
    pub fn enforces(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.from.is_none_or(|from| at >= from)
    }
}

/// `policy.capacity`, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompiledCapacity {
    /// The cap of reps not in `per_owner`; `None`: uncapped.
    pub default_cap: Option<u32>,
    pub per_owner: BTreeMap<String, u32>,
    /// `None` only when no cap is set.
    pub overflow: Option<Overflow>,
    /// Where a new lead goes when its rep is away (`policy.owners.when_away
    /// = "reassign"`); `None`: it waits for them.
    pub away_to: Option<String>,
}

/// Where a lead above its rep's cap goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Overflow {
    /// To this owner (a queue or a user).
    Pool(String),
    /// To the least-loaded rep of `group` under their cap and not away;
    /// when there is none, to `pool`, or nowhere.
    LeastLoaded { group: Vec<String>, pool: Option<String> },
    /// Nowhere: the rep keeps it, with these first-touch windows by grade.
    Relax { first_touch: BTreeMap<String, Window> },
}

/// What `policy.capacity.overflow` may say.
pub const OVERFLOW_MODES: [&str; 3] = ["pool", "least_loaded", "relax"];

impl CompiledCapacity {
    /// Whether arrivals are decided: a cap is set, or new leads leave reps
    /// who are away.
    pub fn is_on(&self) -> bool {
        self.overflow.is_some() || self.away_to.is_some()
    }

    /// The cap of `owner_id`; `None`: uncapped. The pool and the fallback
    /// for reps who are away take what they are sent, whatever the cap of
    /// reps is.
    pub fn cap_for(&self, owner_id: &str) -> Option<u32> {
        let pool = match &self.overflow {
            Some(Overflow::Pool(pool)) | Some(Overflow::LeastLoaded { pool: Some(pool), .. }) => Some(pool.as_str()),
            _ => None,
        };
        if pool == Some(owner_id) || self.away_to.as_deref() == Some(owner_id) {
            return None;
        }
        self.per_owner.get(owner_id).copied().or(self.default_cap)
    }
}

/// The surge protocol, ready for the engine and the scorecard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompiledSurge {
    /// Relaxed first-touch windows by grade (every key is a grade).
    pub first_touch: BTreeMap<String, Window>,
    /// Sorted by start; they may overlap.
    pub periods: Vec<SurgeSpan>,
    /// Detected surges, when the policy asks for them.
    pub detect: Option<Detection>,
}

/// `policy.surge.detect`, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub mqls_per_hour: u32,
    pub cool_down: chrono::Duration,
}

/// Bounds of `policy.surge.detect`.
const MAX_SURGE_RATE: u32 = 100_000;
const MAX_COOL_DOWN_MINUTES: u32 = 24 * 60;

/// One declared surge, as instants: `[from, until)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SurgeSpan {
    pub name: String,
    pub reason: String,
    pub from: chrono::DateTime<chrono::Utc>,
    pub until: chrono::DateTime<chrono::Utc>,
}

/// Why a surge may be declared.
pub const SURGE_REASONS: [&str; 4] = ["event", "launch", "campaign", "other"];
/// Most declared surges a policy holds.
pub const MAX_SURGE_PERIODS: usize = 500;

impl CompiledSurge {
    /// The declared surge `at` falls in (the earliest-starting one when
    /// several overlap).
    pub fn at(&self, at: chrono::DateTime<chrono::Utc>) -> Option<&SurgeSpan> {
        self.periods.iter().take_while(|s| s.from <= at).find(|s| at < s.until)
    }

    /// The declared surges that overlap `[from, until)`.
    pub fn overlapping(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> impl Iterator<Item = &SurgeSpan> {
        self.periods.iter().filter(move |s| s.from < until && from < s.until)
    }
}

/// Sales commitments for one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledSegment {
    pub name: String,
    /// `None` on the final catch-all segment.
    pub applies_to: Option<Cond>,
    pub clock_start: ClockStart,
    pub on_reassign: OnReassign,
    pub touch_by: TouchBy,
    /// Never contains `Task`.
    pub touch_kinds: Vec<ActivityKind>,
    /// Whether activities the CRM marks as automated count as touches.
    pub automated_touches: bool,
    /// One entry per grade.
    pub first_touch: BTreeMap<String, Window>,
    /// Accept/reject decision, counted from assignment to a user.
    pub sal_decision: Option<Window>,
    /// The AE's commitments, counted from SAL acceptance.
    pub discovery_within: Option<Window>,
    pub opportunity_within: Option<Window>,
    /// Both numbers are at least 1.
    pub cadence: Cadence,
    pub disposition_within: Window,
    /// How long after a rejection or close its reason code may follow.
    pub reason_code_grace: Window,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompiledMarketing {
    pub required_fields: Vec<String>,
    /// MQL to assigned to a user (not a queue).
    pub routing_within: Window,
    /// MQLs per month by grade name (every key is a grade).
    pub monthly_volume: BTreeMap<String, u32>,
    /// 0–1.
    pub min_acceptance_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompiledEscalation {
    pub remind: Reminder,
    /// At least one; fired in order.
    pub levels: Vec<CompiledLevel>,
}

/// When the owner is reminded before a due time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reminder {
    /// Once this share of the window (strictly between 0 and 1) has elapsed.
    FractionElapsed(f64),
    /// This long before the due time (business units on the owner's calendar).
    Before(Window),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompiledLevel {
    pub after: After,
    pub to: EscalationTarget,
}

/// When an escalation rung fires, relative to the breached due time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum After {
    /// At the due time itself.
    AtBreach,
    /// This long after the due time.
    Delay(Window),
    /// Once this multiple (≥ 1) of the window has passed since the clock
    /// started: "2x" on a 1-hour window fires 2 business hours after the start.
    WindowMultiple(f64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationTarget {
    /// A task for the owner's manager.
    Manager,
    /// A task for the manager's manager.
    ManagerOfManager,
    /// Reassign the lead to this queue or user id.
    Pool(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompiledScorecard {
    pub consecutive_weeks: u32,
    pub notify: Vec<String>,
    pub week_starts: Weekday,
    /// Each in [0, 1].
    pub targets: super::ScorecardTargets,
}

/// Whether a lead is an MQL, and if not, the first reason why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Qualification {
    /// The named disqualifier matched.
    Disqualified {
        name: String,
    },
    /// The score is missing, not a number, or below the minimum.
    BelowScore {
        score: Option<f64>,
        min_score: f64,
    },
    /// The MQL rule does not hold.
    NotMql,
    Mql,
}

impl CompiledPolicy {
    /// Judges a lead against the MQL definition: disqualifiers first, then
    /// the score, then the MQL rule.
    pub fn qualify(&self, fields: &BTreeMap<String, Json>) -> Qualification {
        if let Some((name, _)) = self.disqualifiers.iter().find(|(_, c)| c.eval(fields)) {
            return Qualification::Disqualified { name: name.clone() };
        }
        if let (Some(min_score), Some(score_field)) = (self.min_score, self.fields.score.as_deref()) {
            let score = fields.get(score_field).and_then(|v| match v {
                Json::Number(n) => n.as_f64(),
                Json::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            });
            if score.is_none_or(|s| s < min_score) {
                return Qualification::BelowScore { score, min_score };
            }
        }
        if self.mql.eval(fields) {
            Qualification::Mql
        } else {
            Qualification::NotMql
        }
    }

    /// Every lead field the policy reads or writes: the mapped concepts, the
    /// SLA write-back fields, the required fields and every field a
    /// condition tests. Connectors read these and check they exist.
    pub fn referenced_fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let f = &self.fields;
        out.extend([f.status.clone(), f.source.clone(), f.reason_code.clone()]);
        out.extend(f.score.iter().chain(f.mql_at.iter()).chain(f.follow_up_at.iter()).cloned());
        out.extend([f.sla.grade.clone(), f.sla.due_at.clone(), f.sla.status.clone(), f.sla.breach_count.clone()]);
        out.extend(self.marketing.required_fields.iter().cloned());
        self.mql.fields_into(&mut out);
        for (_, c) in self.disqualifiers.iter().chain(&self.grades) {
            c.fields_into(&mut out);
        }
        for s in &self.segments {
            if let Some(c) = &s.applies_to {
                c.fields_into(&mut out);
            }
        }
        out.retain(|name| !name.trim().is_empty());
        out
    }

    /// Fields whose history decides when a lead qualified or when its
    /// reason code was given: every field the MQL rule, the disqualifiers,
    /// the score and the required fields read, plus the reason code. The
    /// daemon keeps the history it observes of these.
    pub fn history_fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        out.insert(self.fields.reason_code.clone());
        out.extend(self.fields.score.iter().cloned());
        out.extend(self.marketing.required_fields.iter().cloned());
        self.mql.fields_into(&mut out);
        for (_, c) in &self.disqualifiers {
            c.fields_into(&mut out);
        }
        out.retain(|name| !name.trim().is_empty());
        out
    }

    /// Whether a lead with these fields meets the MQL definition with
    /// complete data: what carries a sales obligation.
    pub fn obliges_sales(&self, fields: &BTreeMap<String, Json>) -> bool {
        self.qualify(fields) == Qualification::Mql && self.missing_required_fields(fields).is_empty()
    }

    /// What `handoff check` says about choices the policy makes implicitly:
    /// who answers for a lead the escalation ladder moves to a pool.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, level) in self.escalation.levels.iter().enumerate() {
            let EscalationTarget::Pool(pool) = &level.to else { continue };
            let path = format!("policy.escalation.levels[{i}]");
            match self.owners.intake_seats.get(pool) {
                Some(seat) => out.push(format!(
                    "{path} moves a lead to pool {pool}: while {pool} holds it, its intake seat {seat} (policy.owners.intake_seats) gets its reminders and escalations, on {seat}'s calendar; the former rep and their managers get nothing more about it"
                )),
                None => out.push(format!(
                    "{path} moves a lead to pool {pool}: {pool} has no intake seat, so the lead's clocks pause while {pool} holds it (no reminders, no escalations, the former rep and their managers get nothing more about it) and resume, with the time they had left, when a user owns it again. To have someone answer for it meanwhile, set policy.owners.intake_seats.\"{pool}\" to a user id"
                )),
            }
        }
        out
    }

    /// The SLA write-back field names.
    pub fn sla_field_names(&self) -> [&str; 4] {
        let s = &self.fields.sla;
        [s.grade.as_str(), s.due_at.as_str(), s.status.as_str(), s.breach_count.as_str()]
    }

    /// The first grade whose rule matches, if any.
    pub fn grade_for(&self, fields: &BTreeMap<String, Json>) -> Option<&str> {
        self.grades.iter().find(|(_, c)| c.eval(fields)).map(|(name, _)| name.as_str())
    }

    /// The first segment that applies (the last one catches every lead).
    pub fn segment_for(&self, fields: &BTreeMap<String, Json>) -> Option<&CompiledSegment> {
        self.segments.iter().find(|s| s.applies_to.as_ref().is_none_or(|c| c.eval(fields)))
    }

    /// Required fields the lead does not carry (see [`super::is_set`]).
    pub fn missing_required_fields(&self, fields: &BTreeMap<String, Json>) -> Vec<&str> {
        self.marketing
            .required_fields
            .iter()
            .filter(|f| !fields.get(f.as_str()).is_some_and(super::is_set))
            .map(String::as_str)
            .collect()
    }

    /// The calendar for an owner: theirs from `owners.calendar_by_owner`,
    /// else the default.
    pub fn calendar_for_owner(&self, owner_id: Option<&str>) -> Option<&BusinessCalendar> {
        let by_owner = owner_id.and_then(|id| self.owners.calendar_by_owner.get(id));
        by_owner.or(self.owners.default_calendar.as_ref()).and_then(|name| self.calendars.get(name))
    }
}

/// Validates `policy` and turns it into engine-ready types, reporting every
/// problem found (not just the first). Paths start with `policy.`.
pub fn compile(policy: &Policy) -> Result<CompiledPolicy, Vec<Issue>> {
    let mut cx = Cx::default();
    let p = "policy";

    if policy.version == 0 {
        cx.issue(
            format!("{p}.version"),
            "0",
            "the version starts at 1",
            "set `version = 1` and bump it whenever the agreed SLA changes",
        );
    }
    check_fields(&mut cx, &policy.fields);
    check_statuses(&mut cx, &policy.statuses);
    if !policy.statuses.deferred.is_empty() && policy.fields.follow_up_at.as_deref().is_none_or(|f| f.trim().is_empty())
    {
        cx.issue(
            format!("{p}.statuses.deferred"),
            format!("{:?}", policy.statuses.deferred),
            "a deferred lead needs a follow-up date, but no field holds one",
            "set `policy.fields.follow_up_at` to the date field reps fill when they defer (e.g. \"Follow_Up_Date__c\"), or remove `deferred`",
        );
    }
    let reason_codes = check_reason_codes(&mut cx, &policy.reason_codes);
    let calendars = compile_calendars(&mut cx, &policy.calendars);
    let owners = compile_owners(&mut cx, &policy.owners, &policy.calendars);

    // Definitions: every named criterion first, so unused ones are checked too.
    let defs = &policy.definitions;
    let mut conds = CondCompiler::new(&defs.criteria);
    for name in defs.criteria.keys() {
        conds.named(&mut cx, name, &format!("{p}.definitions.criteria.{name}"));
    }
    let mql = conds.compile(&mut cx, &defs.mql, &format!("{p}.definitions.mql"));
    let disqualifiers: Vec<(String, Option<Cond>)> = defs
        .disqualifiers
        .iter()
        .map(|(name, c)| (name.clone(), conds.compile(&mut cx, c, &format!("{p}.definitions.disqualifiers.{name}"))))
        .collect();
    if let Some(min) = defs.min_score {
        if !min.is_finite() {
            cx.issue(
                format!("{p}.definitions.min_score"),
                min.to_string(),
                "the minimum score is not a number",
                "write a number such as 85",
            );
        }
        if policy.fields.score.as_deref().is_none_or(|s| s.trim().is_empty()) {
            cx.issue(
                format!("{p}.definitions.min_score"),
                min.to_string(),
                "a minimum score is set but no score field is mapped",
                "set `policy.fields.score` to the CRM field holding the lead score (e.g. \"Lead_Score__c\" or \"hubspotscore\")",
            );
        }
    }

    // Grades.
    let mut grade_names: Vec<String> = Vec::new();
    let mut grades: Vec<(String, Option<Cond>)> = Vec::new();
    let mut grade_descriptions = BTreeMap::new();
    if policy.grades.is_empty() {
        cx.issue(
            format!("{p}.grades"),
            "[]",
            "no grades are defined",
            "add `[[policy.grades]]` rules, e.g. name = \"A\" with a `when` condition",
        );
    }
    for (i, g) in policy.grades.iter().enumerate() {
        let path = format!("{p}.grades[{i}]");
        let name = g.name.trim().to_string();
        if name.is_empty() {
            cx.issue(format!("{path}.name"), "\"\"", "a grade needs a name", "name it, e.g. \"A\"");
        } else if grade_names.contains(&name) {
            cx.issue(
                format!("{path}.name"),
                quoted(&name),
                "this grade name is used twice",
                "give every grade rule its own name",
            );
        } else {
            grade_names.push(name.clone());
        }
        if let Some(d) = &g.description {
            grade_descriptions.insert(name.clone(), d.clone());
        }
        grades.push((name, conds.compile(&mut cx, &g.when, &format!("{path}.when"))));
    }

    let segments = compile_segments(&mut cx, policy, &grade_names, &mut conds);
    let marketing = compile_marketing(&mut cx, policy, &grade_names);
    let escalation = compile_escalation(&mut cx, policy);
    let scorecard = compile_scorecard(&mut cx, policy);
    let surge = compile_surge(&mut cx, policy, &grade_names);
    let time_off = compile_time_off(&mut cx, &policy.owners);
    let capacity = compile_capacity(&mut cx, policy, &grade_names);

    if let Some(cals) = &calendars {
        check_windows_against_calendars(&mut cx, cals);
    }

    let collect = |items: Vec<(String, Option<Cond>)>| -> Option<Vec<(String, Cond)>> {
        items.into_iter().map(|(n, c)| c.map(|c| (n, c))).collect()
    };
    let (
        Some(mql),
        Some(disqualifiers),
        Some(grades),
        Some(segments),
        Some(marketing),
        Some(escalation),
        Some(scorecard),
        Some(owners),
        Some(calendars),
    ) = (mql, collect(disqualifiers), collect(grades), segments, marketing, escalation, scorecard, owners, calendars)
    else {
        return Err(cx.done_err());
    };
    if !cx.issues.is_empty() {
        return Err(cx.issues);
    }
    Ok(CompiledPolicy {
        enforcement: Enforcement::default(),
        version: policy.version,
        fields: policy.fields.clone(),
        statuses: policy.statuses.clone(),
        reason_codes,
        calendars,
        owners,
        mql,
        disqualifiers,
        min_score: defs.min_score,
        grades,
        grade_descriptions,
        segments,
        marketing,
        escalation,
        scorecard,
        surge,
        time_off,
        capacity,
        schedules: crate::calendar::ScheduleCache::default(),
    })
}

/// Most reps `policy.capacity.group` lists.
const MAX_CAPACITY_GROUP: usize = 1_000;

/// `policy.capacity`: caps of at least one, an overflow that names where
/// the excess goes, and nothing its overflow does not read.
fn compile_capacity(cx: &mut Cx, policy: &Policy, grade_names: &[String]) -> CompiledCapacity {
    let p = "policy.capacity";
    let c = &policy.capacity;
    let zero_fix = "a cap is at least 1; a rep who takes no new leads for a while belongs in policy.owners.time_off";
    if c.new_mqls_per_day == Some(0) {
        cx.issue(format!("{p}.new_mqls_per_day"), "0", "a cap of 0 sends every lead elsewhere", zero_fix);
    }
    for (owner, cap) in &c.per_owner {
        if *cap == 0 {
            cx.issue(format!("{p}.per_owner.{owner}"), "0", "a cap of 0 sends every lead elsewhere", zero_fix);
        }
        if owner.trim().is_empty() {
            cx.issue(format!("{p}.per_owner"), "\"\"", "an empty owner id", "write the rep's CRM user id");
        }
    }
    let capped = c.new_mqls_per_day.is_some() || !c.per_owner.is_empty();
    let unread = |cx: &mut Cx, what: &str, value: String, mode: &str| {
        cx.issue(
            format!("{p}.{what}"),
            value,
            format!("only read with overflow = \"{mode}\""),
            format!("remove it, or set overflow = \"{mode}\""),
        );
    };
    let pool = c.pool.as_deref().map(str::trim);
    if pool == Some("") {
        cx.issue(
            format!("{p}.pool"),
            "\"\"",
            "an empty owner id",
            "write the queue's or user's CRM id, or remove `pool`",
        );
    }
    let pool = pool.filter(|p| !p.is_empty()).map(str::to_string);
    let overflow = match c.overflow.as_deref().map(str::trim) {
        None => {
            if capped {
                cx.issue(
                    format!("{p}.overflow"),
                    "",
                    "caps are set but nothing says where a lead above one goes",
                    format!("set overflow to one of: {}", OVERFLOW_MODES.join(", ")),
                );
            } else if c.pool.is_some() || !c.group.is_empty() || !c.first_touch.is_empty() {
                cx.issue(
                    p,
                    "",
                    "pool, group or first_touch is set but no cap is",
                    "set new_mqls_per_day (or per_owner caps) and overflow, or remove the section",
                );
            }
            None
        }
        Some(mode) if !capped => {
            cx.issue(
                format!("{p}.overflow"),
                quoted(mode),
                "an overflow without a cap never applies",
                "set new_mqls_per_day (or per_owner caps), or remove overflow",
            );
            None
        }
        Some("pool") => {
            if !c.group.is_empty() {
                unread(cx, "group", format!("{:?}", c.group), "least_loaded");
            }
            if !c.first_touch.is_empty() {
                unread(cx, "first_touch", String::new(), "relax");
            }
            match pool {
                Some(pool) => Some(Overflow::Pool(pool)),
                None => {
                    cx.issue(
                        format!("{p}.pool"),
                        "",
                        "overflow = \"pool\" needs the pool",
                        "set pool to the CRM id of the queue or user who takes the excess",
                    );
                    None
                }
            }
        }
        Some("least_loaded") => {
            if !c.first_touch.is_empty() {
                unread(cx, "first_touch", String::new(), "relax");
            }
            let mut seen = BTreeSet::new();
            for (i, member) in c.group.iter().enumerate() {
                let path = format!("{p}.group[{i}]");
                if member.trim().is_empty() {
                    cx.issue(path, "\"\"", "an empty owner id", "write the rep's CRM user id");
                } else if !seen.insert(member.trim()) {
                    cx.issue(path, quoted(member), "this rep is listed twice", "list every rep once");
                }
            }
            if seen.len() < 2 {
                cx.issue(
                    format!("{p}.group"),
                    format!("{:?}", c.group),
                    "least_loaded needs at least two reps to choose between",
                    "list the reps (CRM user ids) who share each other's excess",
                );
                None
            } else if c.group.len() > MAX_CAPACITY_GROUP {
                cx.issue(
                    format!("{p}.group"),
                    c.group.len().to_string(),
                    format!("a group lists at most {MAX_CAPACITY_GROUP} reps"),
                    "split the reps into teams, each with its own handoff policy",
                );
                None
            } else {
                Some(Overflow::LeastLoaded { group: c.group.iter().map(|m| m.trim().to_string()).collect(), pool })
            }
        }
        Some("relax") => {
            if c.pool.is_some() {
                unread(cx, "pool", quoted(c.pool.as_deref().unwrap_or_default()), "pool");
            }
            if !c.group.is_empty() {
                unread(cx, "group", format!("{:?}", c.group), "least_loaded");
            }
            let first_touch = relaxed_windows(cx, &format!("{p}.first_touch"), &c.first_touch, grade_names);
            if c.first_touch.is_empty() {
                cx.issue(
                    format!("{p}.first_touch"),
                    "",
                    "overflow = \"relax\" needs the relaxed windows",
                    "give a first-touch window per grade it relaxes, e.g. first_touch = { C = \"2d\" }",
                );
            }
            Some(Overflow::Relax { first_touch })
        }
        Some(other) => {
            cx.issue(
                format!("{p}.overflow"),
                quoted(other),
                "not an overflow",
                format!("use one of: {}", OVERFLOW_MODES.join(", ")),
            );
            None
        }
    };
    let away_to = compile_when_away(cx, &policy.owners);
    CompiledCapacity { default_cap: c.new_mqls_per_day, per_owner: c.per_owner.clone(), overflow, away_to }
}

/// `policy.owners.when_away` and its fallback.
fn compile_when_away(cx: &mut Cx, o: &OwnerSettings) -> Option<String> {
    let p = "policy.owners";
    let fallback = o.away_fallback.as_deref().map(str::trim);
    match o.when_away.as_deref().map(str::trim) {
        None | Some("pause") => {
            if let Some(f) = fallback {
                cx.issue(
                    format!("{p}.away_fallback"),
                    quoted(f),
                    "only read with when_away = \"reassign\"",
                    "set when_away = \"reassign\", or remove away_fallback",
                );
            }
            None
        }
        Some("reassign") => match fallback.filter(|f| !f.is_empty()) {
            Some(f) => Some(f.to_string()),
            None => {
                cx.issue(
                    format!("{p}.away_fallback"),
                    quoted(fallback.unwrap_or_default()),
                    "when_away = \"reassign\" needs the owner new leads go to while their rep is away",
                    "set away_fallback to the CRM id of a queue or user",
                );
                None
            }
        },
        Some(other) => {
            cx.issue(
                format!("{p}.when_away"),
                quoted(other),
                "not a choice for a rep who is away",
                "use \"pause\" (their clocks wait for them) or \"reassign\" (new leads go to away_fallback)",
            );
            None
        }
    }
}

/// First-touch windows by grade (a surge's, an overflow's): every key a
/// grade, every value a window.
fn relaxed_windows(
    cx: &mut Cx,
    path: &str,
    windows: &BTreeMap<String, String>,
    grade_names: &[String],
) -> BTreeMap<String, Window> {
    let mut out = BTreeMap::new();
    for (grade, text) in windows {
        let path = format!("{path}.{grade}");
        if !grade_names.contains(grade) {
            cx.issue(
                path.clone(),
                quoted(grade),
                "no grade rule defines this grade",
                format!("use one of the grades: {}", grade_names.join(", ")),
            );
        }
        if let Some(w) = cx.window(path, text) {
            out.insert(grade.clone(), w);
        }
    }
    out
}

/// The surge protocol: known grades with windows, periods with a name, a
/// reason and a start before their end. Days are read in the default
/// calendar's zone (the scorecard's).
fn compile_surge(cx: &mut Cx, policy: &Policy, grade_names: &[String]) -> CompiledSurge {
    let p = "policy.surge";
    let surge = &policy.surge;
    let first_touch = relaxed_windows(cx, &format!("{p}.first_touch"), &surge.first_touch, grade_names);
    let zone = policy
        .owners
        .default_calendar
        .as_ref()
        .and_then(|c| policy.calendars.get(c))
        .or_else(|| (policy.calendars.len() == 1).then(|| policy.calendars.values().next()).flatten())
        .and_then(|c| chrono_tz::Tz::from_str(c.time_zone.trim()).ok())
        .unwrap_or(chrono_tz::UTC);
    if surge.periods.len() > MAX_SURGE_PERIODS {
        cx.issue(
            format!("{p}.periods"),
            surge.periods.len().to_string(),
            format!("a policy declares at most {MAX_SURGE_PERIODS} surges"),
            "remove surges that ended long ago (their weeks stay as they were scored)",
        );
    }
    let mut names = BTreeSet::new();
    let mut periods = Vec::new();
    for (i, s) in surge.periods.iter().enumerate() {
        let path = format!("{p}.periods[{i}]");
        let name = s.name.trim().to_string();
        if name.is_empty() {
            cx.issue(format!("{path}.name"), "\"\"", "a surge needs a name", "name it, e.g. \"Spring launch\"");
        } else if !names.insert(name.clone()) {
            cx.issue(
                format!("{path}.name"),
                quoted(&name),
                "this surge name is used twice",
                "give every surge its own name",
            );
        }
        let reason = s.reason.trim().to_lowercase();
        if !SURGE_REASONS.contains(&reason.as_str()) {
            cx.issue(
                format!("{path}.reason"),
                quoted(&s.reason),
                "not a surge reason",
                format!("write one of {}", SURGE_REASONS.join(", ")),
            );
        }
        let from = surge_bound(cx, &format!("{path}.from"), &s.from, zone, false);
        let until = surge_bound(cx, &format!("{path}.to"), &s.to, zone, true);
        if let (Some(from), Some(until)) = (from, until) {
            if until <= from {
                cx.issue(
                    format!("{path}.to"),
                    quoted(&s.to),
                    format!("the surge ends before it starts ({})", s.from),
                    "write the last day of the surge on or after its first",
                );
            } else if until - from > chrono::Duration::days(92) {
                cx.issue(
                    format!("{path}.to"),
                    quoted(&s.to),
                    "a surge lasts at most 92 days; a longer one is the normal volume, not a surge",
                    "shorten it, or change the windows of the segments instead",
                );
            } else {
                periods.push(SurgeSpan { name, reason, from, until });
            }
        }
    }
    periods.sort_by_key(|s| (s.from, s.until));
    let detect = surge.detect.as_ref().and_then(|d| {
        let mut ok = true;
        if !(2..=MAX_SURGE_RATE).contains(&d.mqls_per_hour) {
            cx.issue(
                format!("{p}.detect.mqls_per_hour"),
                d.mqls_per_hour.to_string(),
                format!("a surge rate is between 2 and {MAX_SURGE_RATE} new MQLs an hour"),
                "set the hourly arrivals above which reps cannot keep up, e.g. 3x a normal busy hour",
            );
            ok = false;
        }
        if d.cool_down_minutes > MAX_COOL_DOWN_MINUTES {
            cx.issue(
                format!("{p}.detect.cool_down_minutes"),
                d.cool_down_minutes.to_string(),
                format!("a cool-down lasts at most {MAX_COOL_DOWN_MINUTES} minutes (a day)"),
                "a longer spell is a declared surge: add it to policy.surge.periods",
            );
            ok = false;
        }
        ok.then(|| Detection {
            mqls_per_hour: d.mqls_per_hour,
            cool_down: chrono::Duration::minutes(i64::from(d.cool_down_minutes)),
        })
    });
    CompiledSurge { first_touch, periods, detect }
}

/// A surge's start (`end = false`) or end: a day in `zone` (its start, or
/// for an end the start of the next day) or an RFC 3339 instant.
fn surge_bound(
    cx: &mut Cx,
    path: &str,
    text: &str,
    zone: chrono_tz::Tz,
    end: bool,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone as _;
    let t = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let day = if end { day.succ_opt()? } else { day };
        let local = day.and_hms_opt(0, 0, 0)?;
        if let Some(at) = zone.from_local_datetime(&local).earliest() {
            return Some(at.with_timezone(&chrono::Utc));
        }
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(at.with_timezone(&chrono::Utc));
    }
    cx.issue(
        path.to_string(),
        quoted(text),
        "not a day or an instant",
        "write a day as \"2026-03-10\" (read in the default calendar's zone) or an instant as \"2026-03-10T14:00:00Z\"",
    );
    None
}

#[derive(Default)]
struct Cx {
    issues: Vec<Issue>,
    /// Every business window the policy asks for, by key path, to be
    /// checked against every calendar once those are known.
    business_windows: Vec<(String, Window)>,
}

/// The longest a business window may take on a calendar, in weeks of that
/// calendar: a year. Bounds the business-time arithmetic of every clock.
pub const MAX_WINDOW_WEEKS: u64 = 53;

/// Open seconds a week and open weekdays of a calendar (overlapping windows
/// counted twice, which only makes the check more lenient).
fn weekly_open(cal: &BusinessCalendar) -> (i64, usize) {
    let secs = cal
        .weekly
        .iter()
        .map(|w| {
            let len = (w.end - w.start).num_seconds();
            if len > 0 {
                len
            } else {
                86_400 + len
            }
        })
        .sum();
    let days: BTreeSet<u32> = cal.weekly.iter().map(|w| w.weekday.num_days_from_monday()).collect();
    (secs, days.len())
}

/// Refuses a business window that some calendar would need more than a year
/// to cover (a window of a few hours on a calendar open an hour a week).
fn check_windows_against_calendars(cx: &mut Cx, calendars: &BTreeMap<String, BusinessCalendar>) {
    let windows = std::mem::take(&mut cx.business_windows);
    for (path, window) in windows {
        for (name, cal) in calendars {
            let (open_secs, open_days) = weekly_open(cal);
            let weeks = match window {
                Window::BusinessSeconds(secs) => (secs as u64).div_ceil(open_secs.max(1) as u64),
                Window::BusinessDays(days) | Window::EndOfBusinessDay { days_after: days } => {
                    u64::from(days).div_ceil(open_days.max(1) as u64)
                }
                Window::WallClock(_) => 0,
            };
            if weeks > MAX_WINDOW_WEEKS {
                cx.issue(
                    path.clone(),
                    quoted(&window.to_string()),
                    format!(
                        "calendar `{name}` is open {:.1} hours on {open_days} day(s) a week, so this window would take about {weeks} weeks; a window must fit in a year of its calendar",
                        open_secs as f64 / 3600.0
                    ),
                    "shorten the window or give the calendar more working hours",
                );
                break;
            }
        }
    }
}

impl Cx {
    fn issue(
        &mut self,
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.issues.push(Issue::new(path, value, message, fix));
    }

    fn done_err(self) -> Vec<Issue> {
        // Every `None` above comes with at least one issue; keep that promise
        // visible rather than returning an empty error list.
        if self.issues.is_empty() {
            vec![Issue::new("policy", "", "the policy could not be compiled", "check the policy section")]
        } else {
            self.issues
        }
    }

    fn window(&mut self, path: String, text: &str) -> Option<Window> {
        match parse_window(text) {
            Ok(w) => {
                self.business_windows.push((path, w));
                Some(w)
            }
            Err(why) => {
                self.issue(path, quoted(text), why, WINDOW_FIX);
                None
            }
        }
    }
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// "did you mean `x`?" when one candidate is close enough.
fn suggest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&wrong.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn check_fields(cx: &mut Cx, f: &FieldMap) {
    let p = "policy.fields";
    let mut named = vec![("status", &f.status), ("source", &f.source), ("reason_code", &f.reason_code)];
    named.extend([
        ("sla.grade", &f.sla.grade),
        ("sla.due_at", &f.sla.due_at),
        ("sla.status", &f.sla.status),
        ("sla.breach_count", &f.sla.breach_count),
    ]);
    for (key, value) in named {
        if value.trim().is_empty() {
            cx.issue(
                format!("{p}.{key}"),
                "\"\"",
                "the CRM field name is empty",
                "write the field's API name, e.g. \"Status\" or \"hs_lead_status\"",
            );
        }
    }
    for (key, value) in [("score", &f.score), ("mql_at", &f.mql_at), ("follow_up_at", &f.follow_up_at)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            cx.issue(
                format!("{p}.{key}"),
                "\"\"",
                "the CRM field name is empty",
                "write the field's API name or remove the key",
            );
        }
    }
}

fn check_statuses(cx: &mut Cx, s: &StatusMap) {
    let p = "policy.statuses";
    let groups: [(&str, &Vec<String>, bool); 8] = [
        ("open", &s.open, true),
        ("working", &s.working, false),
        ("accepted", &s.accepted, true),
        ("rejected", &s.rejected, true),
        ("closed_unresponsive", &s.closed_unresponsive, true),
        ("converted", &s.converted, false),
        ("deferred", &s.deferred, false),
        ("nurture", &s.nurture, false),
    ];
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (key, values, required) in groups {
        if required && values.is_empty() {
            cx.issue(
                format!("{p}.{key}"),
                "[]",
                "no status value is listed",
                "list the status value(s) the CRM uses for this meaning, e.g. [\"Qualified\"]",
            );
        }
        for (i, v) in values.iter().enumerate() {
            if v.trim().is_empty() {
                cx.issue(
                    format!("{p}.{key}[{i}]"),
                    "\"\"",
                    "a status value is empty",
                    "remove it or write the value as the CRM stores it",
                );
            } else if let Some(other) = seen.insert(v.trim().to_lowercase(), key) {
                cx.issue(
                    format!("{p}.{key}[{i}]"),
                    quoted(v),
                    format!("this status is already listed under `{other}`"),
                    "list each status value under one meaning only",
                );
            }
        }
    }
}

fn check_reason_codes(cx: &mut Cx, codes: &[String]) -> BTreeSet<String> {
    let p = "policy.reason_codes";
    if codes.is_empty() {
        cx.issue(
            p,
            "[]",
            "the list of disposition reason codes is empty",
            "list the fixed reason codes, e.g. [\"Wrong persona\", \"No budget\", \"Bad timing\"]",
        );
    }
    let mut out = BTreeSet::new();
    let mut lower = BTreeSet::new();
    for (i, c) in codes.iter().enumerate() {
        if c.trim().is_empty() {
            cx.issue(
                format!("{p}[{i}]"),
                "\"\"",
                "a reason code is empty",
                "remove it or write the code as the CRM picklist stores it",
            );
        } else if !lower.insert(c.trim().to_lowercase()) {
            cx.issue(format!("{p}[{i}]"), quoted(c), "this reason code is listed twice", "list each code once");
        } else {
            out.insert(c.trim().to_string());
        }
    }
    out
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    Some(match text.trim().to_lowercase().as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tues" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thurs" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn parse_time(text: &str) -> Option<NaiveTime> {
    let t = text.trim();
    if t == "24:00" {
        return Some(NaiveTime::MIN);
    }
    NaiveTime::parse_from_str(t, "%H:%M").or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S")).ok()
}

/// Parses "HH:MM-HH:MM" (an en dash works too; "24:00" ends at midnight).
pub(crate) fn parse_time_range(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (a, b) = text.split_once(['-', '–'])?;
    Some((parse_time(a)?, parse_time(b)?))
}

const HOURS_FIX: &str = "write windows as \"HH:MM-HH:MM\" in 24-hour time, e.g. [\"09:00-17:00\"] or [\"09:00-12:00\", \"13:00-17:00\"]; an end at or before the start runs past midnight";

fn compile_calendars(
    cx: &mut Cx,
    specs: &BTreeMap<String, CalendarSpec>,
) -> Option<BTreeMap<String, BusinessCalendar>> {
    if specs.is_empty() {
        cx.issue(
            "policy.calendars",
            "{}",
            "no calendar is defined",
            "add `[policy.calendars.NAME]` with time_zone and hours",
        );
        return None;
    }
    if specs.len() > MAX_CALENDARS {
        cx.issue(
            "policy.calendars",
            format!("{} calendars", specs.len()),
            format!("a policy holds at most {MAX_CALENDARS} calendars"),
            "share calendars between owners (`owners.calendar_by_owner`) instead of one per owner",
        );
        return None;
    }
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (name, spec) in specs {
        match compile_calendar(cx, name, spec) {
            Some(cal) => {
                out.insert(name.clone(), cal);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The most touches a cadence may ask for.
pub const MAX_CADENCE_TOUCHES: u32 = 100;

fn compile_calendar(cx: &mut Cx, name: &str, spec: &CalendarSpec) -> Option<BusinessCalendar> {
    let p = format!("policy.calendars.{name}");
    let before = cx.issues.len();
    let windows: usize = spec.hours.values().map(Vec::len).sum();
    if windows > MAX_WEEKLY_WINDOWS {
        cx.issue(
            format!("{p}.hours"),
            format!("{windows} windows"),
            format!("a calendar holds at most {MAX_WEEKLY_WINDOWS} weekly windows"),
            "merge adjacent windows: one \"09:00-17:00\" instead of eight hours",
        );
        return None;
    }
    if spec.holidays.len() > MAX_HOLIDAYS {
        cx.issue(
            format!("{p}.holidays"),
            format!("{} dates", spec.holidays.len()),
            format!("a calendar holds at most {MAX_HOLIDAYS} holidays"),
            "drop the holidays that lie in the past",
        );
        return None;
    }
    if chrono_tz::Tz::from_str(spec.time_zone.trim()).is_err() {
        let fix = match suggest(spec.time_zone.trim(), chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())) {
            Some(s) => format!("did you mean \"{s}\"? Use an IANA zone name"),
            None => "use an IANA zone name such as \"America/New_York\", \"Europe/London\" or \"UTC\"".to_string(),
        };
        cx.issue(format!("{p}.time_zone"), quoted(&spec.time_zone), "unknown time zone", fix);
    }
    let mut weekly = Vec::new();
    for (day, windows) in &spec.hours {
        let Some(weekday) = parse_weekday(day) else {
            cx.issue(
                format!("{p}.hours.{day}"),
                quoted(day),
                "not a day of the week",
                "use mon, tue, wed, thu, fri, sat or sun",
            );
            continue;
        };
        for (i, w) in windows.iter().enumerate() {
            match parse_time_range(w) {
                Some((start, end)) => weekly.push(WeeklyWindow { weekday, start, end }),
                None => cx.issue(format!("{p}.hours.{day}[{i}]"), quoted(w), "not a time window", HOURS_FIX),
            }
        }
    }
    if weekly.is_empty() && spec.hours.values().all(|w| w.is_empty()) {
        cx.issue(
            format!("{p}.hours"),
            "{}",
            "the calendar has no working hours at all, so no deadline could ever fall due",
            "add weekly hours, e.g. mon = [\"09:00-17:00\"]",
        );
    }
    let mut holidays = Vec::new();
    for (i, h) in spec.holidays.iter().enumerate() {
        match parse_holiday(h) {
            Some(hol) => holidays.push(hol),
            None => cx.issue(
                format!("{p}.holidays[{i}]"),
                quoted(h),
                "not a holiday date",
                "write \"YYYY-MM-DD\", optionally followed by a name (\"2026-12-25 Christmas\") or a closed window (\"2026-12-24 13:00-17:00 Christmas Eve\")",
            ),
        }
    }
    if let Some((from, days)) = longest_closure(&holidays).filter(|(_, days)| *days > MAX_CLOSED_DAYS) {
        cx.issue(
            format!("{p}.holidays"),
            format!("{days} days from {from}"),
            format!("whole-day holidays close {days} days in a row; a calendar closes at most {MAX_CLOSED_DAYS} (longer, nobody answers its leads and every window stretches across the closure)"),
            "keep real holidays only, and give the owners of a longer closure another calendar in policy.owners.calendar_by_owner",
        );
    }
    if cx.issues.len() > before {
        return None;
    }
    let cal = BusinessCalendar { id: name.to_string(), time_zone: spec.time_zone.trim().to_string(), weekly, holidays };
    // The calendar module has the last word on what it can compute with.
    if let Err(e) = Schedule::new(&cal) {
        cx.issue(p, "", e.to_string(), "correct the calendar's hours and holidays");
        return None;
    }
    Some(cal)
}

fn parse_holiday(text: &str) -> Option<Holiday> {
    let t = text.trim();
    let (date_part, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok()?;
    let rest = rest.trim();
    let (first, after_first) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (start, end, name) = match parse_time_range(first) {
        Some((s, e)) => (Some(s), Some(e), after_first.trim()),
        None => (None, None, rest),
    };
    Some(Holiday { date, name: (!name.is_empty()).then(|| name.to_string()), start, end })
}

fn compile_owners(cx: &mut Cx, o: &OwnerSettings, calendars: &BTreeMap<String, CalendarSpec>) -> Option<OwnerSettings> {
    let p = "policy.owners";
    let names = || calendars.keys().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ");
    let mut ok = true;
    let default = match &o.default_calendar {
        Some(name) if calendars.contains_key(name) => Some(name.clone()),
        Some(name) => {
            cx.issue(
                format!("{p}.default_calendar"),
                quoted(name),
                "no calendar has this name",
                format!("use one of {}", names()),
            );
            ok = false;
            None
        }
        None if calendars.len() == 1 => calendars.keys().next().cloned(),
        None => {
            if calendars.len() > 1 {
                cx.issue(
                    format!("{p}.default_calendar"),
                    "",
                    "several calendars are defined but none is the default",
                    format!("set `default_calendar` to one of {}", names()),
                );
            }
            ok = false;
            None
        }
    };
    for (owner, cal) in &o.calendar_by_owner {
        if !calendars.contains_key(cal) {
            cx.issue(
                format!("{p}.calendar_by_owner.{owner}"),
                quoted(cal),
                "no calendar has this name",
                format!("use one of {}", names()),
            );
            ok = false;
        }
    }
    for (owner, manager) in &o.managers {
        if manager.trim().is_empty() {
            cx.issue(
                format!("{p}.managers.{owner}"),
                "\"\"",
                "the manager id is empty",
                "write the manager's owner id or remove the entry",
            );
            ok = false;
        }
    }
    for (queue, seat) in &o.intake_seats {
        if queue.trim().is_empty() {
            cx.issue(
                format!("{p}.intake_seats"),
                quoted(queue),
                "a queue id is empty",
                "key each intake seat by the queue's id, e.g. \"00G5e000001AbCd\" = \"005...\"",
            );
            ok = false;
        }
        if seat.trim().is_empty() {
            cx.issue(
                format!("{p}.intake_seats.{queue}"),
                "\"\"",
                "the intake seat is empty",
                "write the id of the user who answers for the leads this queue holds, or remove the entry (the queue then pauses their clocks)",
            );
            ok = false;
        } else if seat.trim() == queue.trim() {
            cx.issue(
                format!("{p}.intake_seats.{queue}"),
                quoted(seat),
                "a queue cannot be its own intake seat",
                "write the id of a user (not a queue) who answers for the leads this queue holds",
            );
            ok = false;
        }
    }
    ok.then(|| OwnerSettings { default_calendar: default, ..o.clone() })
}

/// Each owner's days off (`policy.owners.time_off`), expanded.
fn compile_time_off(cx: &mut Cx, o: &OwnerSettings) -> BTreeMap<String, Vec<NaiveDate>> {
    o.time_off
        .iter()
        .filter_map(|(owner, entries)| {
            let days = time_off_days(cx, &format!("policy.owners.time_off.{owner}"), entries)?;
            (!days.is_empty()).then(|| (owner.clone(), days))
        })
        .collect()
}

/// Most days in a row whole-day holidays may close a calendar: a month.
pub const MAX_CLOSED_DAYS: i64 = 31;

/// The longest run of consecutive whole-day holidays: its first day and
/// its length in days.
fn longest_closure(holidays: &[Holiday]) -> Option<(NaiveDate, i64)> {
    let days: BTreeSet<NaiveDate> =
        holidays.iter().filter(|h| h.start.is_none() && h.end.is_none()).map(|h| h.date).collect();
    let mut best: Option<(NaiveDate, i64)> = None;
    let mut run: Option<(NaiveDate, NaiveDate)> = None;
    for d in days {
        run = match run {
            Some((first, last)) if last.succ_opt() == Some(d) => Some((first, d)),
            _ => Some((d, d)),
        };
        if let Some((first, last)) = run {
            let len = (last - first).num_days() + 1;
            if best.is_none_or(|(_, b)| len > b) {
                best = Some((first, len));
            }
        }
    }
    best
}

/// Most days of time off an owner may have listed: a few years' leave.
pub const MAX_TIME_OFF_DAYS: usize = 1_000;
/// The longest single stretch of time off, in days.
const MAX_TIME_OFF_SPAN_DAYS: i64 = 366;

/// The days of an owner's `time_off` entries, sorted, each once; `None`
/// (with the issues said) when an entry is unreadable.
fn time_off_days(cx: &mut Cx, path: &str, entries: &[String]) -> Option<Vec<NaiveDate>> {
    let mut days = BTreeSet::new();
    let mut ok = true;
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let text = entry.trim();
        let (first, last) = text.split_once("..").unwrap_or((text, text));
        let day = |t: &str| NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").ok();
        match (day(first), day(last)) {
            (Some(a), Some(b)) if a <= b && (b - a).num_days() < MAX_TIME_OFF_SPAN_DAYS => {
                let mut d = a;
                while d <= b {
                    days.insert(d);
                    d = d.succ_opt().unwrap_or(b + chrono::Duration::days(1));
                }
            }
            (Some(a), Some(b)) if a > b => {
                cx.issue(
                    path,
                    quoted(entry),
                    "the stretch ends before it starts",
                    "write the first day, then \"..\", then the last",
                );
                ok = false;
            }
            (Some(_), Some(_)) => {
                cx.issue(
                    path,
                    quoted(entry),
                    "a stretch of time off lasts at most a year",
                    "split it, or give the owner's leads to someone else",
                );
                ok = false;
            }
            _ => {
                cx.issue(
                    path,
                    quoted(entry),
                    "not a day or a stretch of days",
                    "write \"2026-03-03\" or \"2026-03-03..2026-03-05\" (both days included)",
                );
                ok = false;
            }
        }
    }
    if days.len() > MAX_TIME_OFF_DAYS {
        cx.issue(
            path.to_string(),
            days.len().to_string(),
            format!("at most {MAX_TIME_OFF_DAYS} days of time off per owner"),
            "remove stretches long past",
        );
        ok = false;
    }
    ok.then(|| days.into_iter().collect())
}

/// Compiles conditions, inlining named criteria once each and rejecting
/// unknown names and cycles.
struct CondCompiler<'a> {
    criteria: &'a BTreeMap<String, Condition>,
    /// Finished criteria (`None`: had errors, already reported).
    done: BTreeMap<String, Option<Cond>>,
    /// Criteria being compiled, outermost first.
    stack: Vec<String>,
    reported_cycles: BTreeSet<Vec<String>>,
    /// Conditions (and named criteria) open around the one being compiled.
    depth: usize,
    /// Depth and size problems already reported, by path.
    reported_bounds: BTreeSet<String>,
}

/// How deeply conditions may nest, counting `all`/`any`/`not` and every
/// named criterion a condition refers to (a chain of criteria nests as
/// deeply as it is long). Far above any real policy; a deeper one is a
/// mistake or an attack, and is refused rather than risking the stack.
pub const MAX_CONDITION_DEPTH: usize = 32;

/// How many tests and connectives one compiled condition may hold once its
/// named criteria are inlined (criteria referring to each other twice over
/// would otherwise double the size at every level).
pub const MAX_CONDITION_NODES: usize = 5_000;

/// Tests and connectives in `c`.
fn cond_size(c: &Cond) -> usize {
    match c {
        Cond::All(items) | Cond::Any(items) => 1 + items.iter().map(cond_size).sum::<usize>(),
        Cond::Not(inner) => 1 + cond_size(inner),
        Cond::Test { .. } => 1,
    }
}

impl<'a> CondCompiler<'a> {
    fn new(criteria: &'a BTreeMap<String, Condition>) -> Self {
        CondCompiler {
            criteria,
            done: BTreeMap::new(),
            stack: Vec::new(),
            reported_cycles: BTreeSet::new(),
            depth: 0,
            reported_bounds: BTreeSet::new(),
        }
    }

    /// Reports a condition nesting deeper than [`MAX_CONDITION_DEPTH`] (once).
    fn too_deep(&mut self, cx: &mut Cx, path: &str) {
        let root = path.split(".criteria.").next().unwrap_or(path).to_string();
        if self.reported_bounds.insert(format!("depth {root}")) {
            let chain = if self.stack.is_empty() {
                String::new()
            } else {
                format!(
                    " (through the criteria {})",
                    self.stack.iter().take(6).cloned().collect::<Vec<_>>().join(" → ")
                        + if self.stack.len() > 6 { " → …" } else { "" }
                )
            };
            cx.issue(
                path.to_string(),
                "",
                format!("conditions nest more than {MAX_CONDITION_DEPTH} levels deep{chain}"),
                "flatten the condition: combine tests in one `all`/`any` list instead of chaining criteria or nesting them",
            );
        }
    }

    fn named(&mut self, cx: &mut Cx, name: &str, ref_path: &str) -> Option<Cond> {
        if let Some(done) = self.done.get(name) {
            return done.clone();
        }
        let Some(def) = self.criteria.get(name) else {
            let fix = match suggest(name, self.criteria.keys().map(String::as_str)) {
                Some(s) => format!("did you mean \"{s}\"? Or define it under [policy.definitions.criteria]"),
                None => format!(
                    "define it under [policy.definitions.criteria] or use one of: {}",
                    self.criteria.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            cx.issue(ref_path.to_string(), quoted(name), "no criterion has this name", fix);
            return None;
        };
        if let Some(pos) = self.stack.iter().position(|n| n == name) {
            let mut cycle: Vec<String> = self.stack[pos..].to_vec();
            let mut key = cycle.clone();
            key.sort();
            if self.reported_cycles.insert(key) {
                cycle.push(name.to_string());
                cx.issue(
                    format!("policy.definitions.criteria.{}", self.stack[pos]),
                    "",
                    format!("criteria refer to each other in a cycle: {}", cycle.join(" → ")),
                    "make one of them stand on its own instead of referring back",
                );
            }
            return None;
        }
        if self.depth >= MAX_CONDITION_DEPTH {
            // Not memoised: the same criterion may be fine from a shallower place.
            self.too_deep(cx, ref_path);
            return None;
        }
        self.stack.push(name.to_string());
        self.depth += 1;
        let compiled = self.compile(cx, def, &format!("policy.definitions.criteria.{name}"));
        self.depth -= 1;
        self.stack.pop();
        if compiled.is_none() && self.depth > 0 && self.reported_bounds.iter().any(|r| r.starts_with("depth ")) {
            // Failed only because of where it was reached from: judge it again
            // from its own definition later.
            return None;
        }
        self.done.insert(name.to_string(), compiled.clone());
        compiled
    }

    fn compile(&mut self, cx: &mut Cx, c: &Condition, path: &str) -> Option<Cond> {
        if self.depth >= MAX_CONDITION_DEPTH {
            self.too_deep(cx, path);
            return None;
        }
        self.depth += 1;
        let compiled = match c {
            Condition::All { all } => self.list(cx, all, &format!("{path}.all")).map(Cond::All),
            Condition::Any { any } => self.list(cx, any, &format!("{path}.any")).map(Cond::Any),
            Condition::Not { not } => self.compile(cx, not, &format!("{path}.not")).map(|c| Cond::Not(Box::new(c))),
            Condition::Criteria { criteria } => self.named(cx, criteria, &format!("{path}.criteria")),
            Condition::Field(t) => compile_test(cx, &t.field, &t.op, t.value.as_ref(), path),
        };
        self.depth -= 1;
        compiled
    }

    fn list(&mut self, cx: &mut Cx, items: &[Condition], path: &str) -> Option<Vec<Cond>> {
        let mut out = Vec::with_capacity(items.len());
        let mut size = 1usize;
        let mut ok = true;
        for (i, c) in items.iter().enumerate() {
            match self.compile(cx, c, &format!("{path}[{i}]")) {
                Some(compiled) => {
                    size = size.saturating_add(cond_size(&compiled));
                    if size > MAX_CONDITION_NODES {
                        if self.reported_bounds.insert(format!("size {path}")) {
                            cx.issue(
                                path.to_string(),
                                "",
                                format!("this condition holds more than {MAX_CONDITION_NODES} tests and connectives once its criteria are written out"),
                                "refer to each criterion once, and keep lists of values in one `in` test",
                            );
                        }
                        return None;
                    }
                    out.push(compiled);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

fn scalar(v: &toml::Value) -> Option<Scalar> {
    Some(match v {
        toml::Value::String(s) => Scalar::Str(s.clone()),
        toml::Value::Integer(i) => Scalar::Num(*i as f64),
        toml::Value::Float(f) => Scalar::Num(*f),
        toml::Value::Boolean(b) => Scalar::Bool(*b),
        toml::Value::Datetime(d) => Scalar::Str(d.to_string()),
        _ => return None,
    })
}

fn compile_test(cx: &mut Cx, field: &str, op_text: &str, value: Option<&toml::Value>, path: &str) -> Option<Cond> {
    let mut ok = true;
    if field.trim().is_empty() {
        cx.issue(
            format!("{path}.field"),
            "\"\"",
            "the field name is empty",
            "write the CRM field's API name, e.g. \"NumberOfEmployees\"",
        );
        ok = false;
    }
    let Some(op) = Op::parse(op_text) else {
        cx.issue(format!("{path}.op"), quoted(op_text), "unknown operator", format!("use one of: {OP_SPELLINGS}"));
        return None;
    };
    let vpath = format!("{path}.value");
    let shown = |v: &toml::Value| v.to_string();
    let value = match (op, value) {
        (Op::IsSet | Op::IsNotSet, None) => Some(CondValue::None),
        (Op::IsSet | Op::IsNotSet, Some(v)) => {
            cx.issue(vpath, shown(v), format!("`{}` takes no value", op.as_str()), "remove `value`");
            None
        }
        (_, None) => {
            cx.issue(vpath, "", format!("`{}` needs a value", op.as_str()), "add `value = …`");
            None
        }
        (Op::In | Op::NotIn, Some(toml::Value::Array(items))) => {
            let scalars: Option<Vec<Scalar>> = items.iter().map(scalar).collect();
            match scalars {
                Some(list) if !list.is_empty() => Some(CondValue::List(list)),
                Some(_) => {
                    cx.issue(vpath, "[]", format!("`{}` with an empty list", op.as_str()), "list at least one value");
                    None
                }
                None => {
                    cx.issue(
                        vpath,
                        shown(&toml::Value::Array(items.clone())),
                        "the list may hold only strings, numbers and booleans",
                        "remove nested lists and tables",
                    );
                    None
                }
            }
        }
        (Op::In | Op::NotIn, Some(v)) => {
            cx.issue(
                vpath,
                shown(v),
                format!("`{}` needs a list", op.as_str()),
                format!("write `value = [{}]`", shown(v)),
            );
            None
        }
        (_, Some(toml::Value::Array(items))) => {
            cx.issue(
                vpath,
                shown(&toml::Value::Array(items.clone())),
                format!("`{}` compares with one value, not a list", op.as_str()),
                "use `op = \"in\"` to match any of several values",
            );
            None
        }
        (_, Some(v)) => match scalar(v) {
            None => {
                cx.issue(vpath, shown(v), "a value must be a string, number or boolean", "write a single value");
                None
            }
            Some(s) => {
                let orderable = match &s {
                    Scalar::Num(_) => true,
                    Scalar::Str(t) => t.trim().parse::<f64>().is_ok() || parse_instant(t).is_some(),
                    Scalar::Bool(_) => false,
                };
                if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && !orderable {
                    cx.issue(
                        vpath,
                        shown(v),
                        format!("`{}` compares numbers or dates only", op.as_str()),
                        "write a number (25) or a date (\"2026-01-31\"), or use `=` / `contains` for text",
                    );
                    None
                } else {
                    Some(CondValue::One(s))
                }
            }
        },
    };
    match (ok, value) {
        (true, Some(value)) => Some(Cond::Test { field: field.trim().to_string(), op, value }),
        _ => None,
    }
}

fn compile_segments(
    cx: &mut Cx,
    policy: &Policy,
    grades: &[String],
    conds: &mut CondCompiler<'_>,
) -> Option<Vec<CompiledSegment>> {
    if policy.segments.is_empty() {
        cx.issue(
            "policy.segments",
            "[]",
            "no segment defines the sales commitments",
            "add a `[[policy.segments]]` with first_touch, cadence and disposition",
        );
        return None;
    }
    let last = policy.segments.len() - 1;
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    let mut ok = true;
    for (i, seg) in policy.segments.iter().enumerate() {
        let p = format!("policy.segments[{i}]");
        let before = cx.issues.len();
        if seg.name.trim().is_empty() {
            cx.issue(format!("{p}.name"), "\"\"", "a segment needs a name", "name it, e.g. \"inbound\"");
        } else if !names.insert(seg.name.trim().to_string()) {
            cx.issue(
                format!("{p}.name"),
                quoted(&seg.name),
                "this segment name is used twice",
                "give every segment its own name",
            );
        }
        let applies_to = match (&seg.applies_to, i == last) {
            (Some(_), true) => {
                cx.issue(
                    format!("{p}.applies_to"),
                    "",
                    "the last segment must catch every lead, but it has a condition",
                    "remove `applies_to` from the last segment, or add a final catch-all segment without one",
                );
                None
            }
            (None, false) => {
                cx.issue(
                    format!("{p}.applies_to"),
                    "",
                    "a segment without `applies_to` catches every lead, so the segments after it never apply",
                    "give it an `applies_to` condition or move it last",
                );
                None
            }
            (Some(c), false) => conds.compile(cx, c, &format!("{p}.applies_to")),
            (None, true) => None,
        };
        let mut first_touch = BTreeMap::new();
        for (grade, text) in &seg.first_touch {
            if !grades.contains(grade) {
                let fix = match suggest(grade, grades.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean \"{s}\"? Or add a [[policy.grades]] rule named \"{grade}\""),
                    None => format!(
                        "use one of the grades {} or add a [[policy.grades]] rule named \"{grade}\"",
                        grades.join(", ")
                    ),
                };
                cx.issue(format!("{p}.first_touch.{grade}"), quoted(grade), "no grade rule defines this grade", fix);
            }
            if let Some(w) = cx.window(format!("{p}.first_touch.{grade}"), text) {
                first_touch.insert(grade.clone(), w);
            }
        }
        for grade in grades {
            if !seg.first_touch.contains_key(grade) {
                cx.issue(
                    format!("{p}.first_touch"),
                    "",
                    format!("grade `{grade}` has no first-touch target in this segment"),
                    format!("add `{grade} = \"48 business hours\"` (or the agreed window) under first_touch"),
                );
            }
        }
        let sal_decision = seg.sal_decision.as_deref().map(|t| cx.window(format!("{p}.sal_decision"), t));
        let discovery_within =
            seg.discovery_within.as_deref().and_then(|t| cx.window(format!("{p}.discovery_within"), t));
        let opportunity_within =
            seg.opportunity_within.as_deref().and_then(|t| cx.window(format!("{p}.opportunity_within"), t));
        if seg.clock_start == ClockStart::Acceptance && seg.sal_decision.is_some() {
            cx.issue(
                format!("{p}.sal_decision"),
                quoted(seg.sal_decision.as_deref().unwrap_or_default()),
                "this segment's clocks start at SAL acceptance, so there is no acceptance decision left to time",
                "remove `sal_decision` here and time the decision in the segment that covers leads before acceptance",
            );
        }
        if seg.cadence.touches == 0 {
            cx.issue(
                format!("{p}.cadence.touches"),
                "0",
                "a cadence of zero touches lets any lead be closed untouched",
                "require at least one touch, e.g. touches = 6",
            );
        }
        if seg.cadence.touches > MAX_CADENCE_TOUCHES {
            cx.issue(
                format!("{p}.cadence.touches"),
                seg.cadence.touches.to_string(),
                format!("more than {MAX_CADENCE_TOUCHES} touches is not a cadence a rep can follow"),
                "write the number of touches the teams agreed, e.g. touches = 6",
            );
        }
        if seg.cadence.business_days > MAX_BUSINESS_DAYS {
            cx.issue(
                format!("{p}.cadence.business_days"),
                seg.cadence.business_days.to_string(),
                format!("a cadence spans at most a working year ({MAX_BUSINESS_DAYS} business days)"),
                "write the span the teams agreed, e.g. business_days = 10",
            );
        }
        if seg.cadence.business_days > 0 && seg.cadence.business_days <= MAX_BUSINESS_DAYS {
            cx.business_windows
                .push((format!("{p}.cadence.business_days"), Window::BusinessDays(seg.cadence.business_days)));
        }
        if seg.cadence.business_days == 0 {
            cx.issue(
                format!("{p}.cadence.business_days"),
                "0",
                "the cadence must span at least one business day",
                "write the span, e.g. business_days = 10",
            );
        }
        if seg.touch_kinds.is_empty() {
            cx.issue(
                format!("{p}.touch_kinds"),
                "[]",
                "no activity counts as a touch",
                "remove the key (calls, emails and meetings count) or list some",
            );
        }
        if seg.touch_kinds.contains(&ActivityKind::Task) {
            cx.issue(
                format!("{p}.touch_kinds"),
                "\"task\"",
                "a task is a to-do, not contact with the lead",
                "list only \"call\", \"email\" and \"meeting\"",
            );
        }
        let disposition_within = cx.window(format!("{p}.disposition.within"), &seg.disposition.within);
        let reason_code_grace =
            cx.window(format!("{p}.disposition.reason_code_grace"), &seg.disposition.reason_code_grace);
        if cx.issues.len() > before {
            ok = false;
            continue;
        }
        // No new issue above, so every window that was written parsed.
        if let (Some(disposition_within), Some(reason_code_grace)) = (disposition_within, reason_code_grace) {
            out.push(CompiledSegment {
                name: seg.name.trim().to_string(),
                applies_to,
                clock_start: seg.clock_start,
                on_reassign: seg.on_reassign,
                touch_by: seg.touch_by,
                touch_kinds: seg.touch_kinds.clone(),
                automated_touches: seg.automated_touches,
                first_touch,
                sal_decision: sal_decision.flatten(),
                discovery_within,
                opportunity_within,
                cadence: seg.cadence.clone(),
                disposition_within,
                reason_code_grace,
            });
        } else {
            ok = false;
        }
    }
    ok.then_some(out)
}

fn compile_marketing(cx: &mut Cx, policy: &Policy, grades: &[String]) -> Option<CompiledMarketing> {
    let m = &policy.marketing;
    let p = "policy.marketing";
    let before = cx.issues.len();
    for (i, f) in m.required_fields.iter().enumerate() {
        if f.trim().is_empty() {
            cx.issue(
                format!("{p}.required_fields[{i}]"),
                "\"\"",
                "a required field name is empty",
                "remove it or write the CRM field's API name",
            );
        }
    }
    let routing_within = cx.window(format!("{p}.routing_within"), &m.routing_within);
    for grade in m.monthly_volume.keys() {
        if !grades.contains(grade) {
            cx.issue(
                format!("{p}.monthly_volume.{grade}"),
                quoted(grade),
                "no grade rule defines this grade",
                format!("use one of the grades {}", grades.join(", ")),
            );
        }
    }
    if let Some(rate) = m.min_acceptance_rate {
        if !(0.0..=1.0).contains(&rate) {
            cx.issue(
                format!("{p}.min_acceptance_rate"),
                rate.to_string(),
                "an acceptance rate is a share between 0 and 1",
                "write e.g. 0.6 for 60 %",
            );
        }
    }
    if cx.issues.len() > before {
        return None;
    }
    Some(CompiledMarketing {
        required_fields: m.required_fields.iter().map(|f| f.trim().to_string()).collect(),
        routing_within: routing_within?,
        monthly_volume: m.monthly_volume.clone(),
        min_acceptance_rate: m.min_acceptance_rate,
    })
}

/// Parses `remind_at`: "75%" or a duration before the due time.
pub(crate) fn parse_reminder(text: &str) -> Result<Reminder, String> {
    let t = text.trim();
    if let Some(num) = t.strip_suffix('%') {
        let pct: f64 = num.trim().parse().map_err(|_| format!("`{t}` is not a percentage"))?;
        if !(pct > 0.0 && pct < 100.0) {
            return Err(format!("`{t}` must lie strictly between 0% and 100% of the window"));
        }
        return Ok(Reminder::FractionElapsed(pct / 100.0));
    }
    let without_before = t.strip_suffix("before").unwrap_or(t);
    parse_window(without_before).map(Reminder::Before)
}

/// The latest an escalation rung may come, as a multiple of its window.
pub const MAX_ESCALATION_MULTIPLE: f64 = 10.0;

fn parse_after(text: &str) -> Result<After, String> {
    let t = text.trim().to_lowercase();
    if matches!(t.as_str(), "0" | "at breach" | "breach" | "at due" | "immediately") {
        return Ok(After::AtBreach);
    }
    if let Some(num) = t.strip_suffix('x') {
        let m: f64 = num.trim().parse().map_err(|_| format!("`{text}` is not a multiple such as \"2x\""))?;
        if !(m.is_finite() && m >= 1.0) {
            return Err(format!("`{text}`: a multiple of the window must be at least 1x (1x is the breach itself)"));
        }
        if m > MAX_ESCALATION_MULTIPLE {
            return Err(format!(
                "`{text}`: a rung comes at most {MAX_ESCALATION_MULTIPLE}x the window after its start"
            ));
        }
        return Ok(After::WindowMultiple(m));
    }
    parse_window(&t).map(After::Delay)
}

fn parse_target(text: &str) -> Option<EscalationTarget> {
    let t = text.trim();
    match t.to_lowercase().as_str() {
        "manager" => return Some(EscalationTarget::Manager),
        "manager.manager" => return Some(EscalationTarget::ManagerOfManager),
        _ => {}
    }
    let id = t.strip_prefix("pool:")?.trim();
    (!id.is_empty()).then(|| EscalationTarget::Pool(id.to_string()))
}

fn compile_escalation(cx: &mut Cx, policy: &Policy) -> Option<CompiledEscalation> {
    let e = &policy.escalation;
    let p = "policy.escalation";
    let before = cx.issues.len();
    let remind = match parse_reminder(&e.remind_at) {
        Ok(r) => Some(r),
        Err(why) => {
            cx.issue(format!("{p}.remind_at"), quoted(&e.remind_at), why, "write a share of the window elapsed, e.g. \"75%\", or a time before the due time, e.g. \"15 business minutes\"");
            None
        }
    };
    if e.levels.is_empty() {
        cx.issue(
            format!("{p}.levels"),
            "[]",
            "no escalation level is defined, so a breach would reach nobody",
            "add `[[policy.escalation.levels]]` with after = \"0\" and to = \"manager\"",
        );
    }
    let mut levels = Vec::new();
    for (i, level) in e.levels.iter().enumerate() {
        let lp = format!("{p}.levels[{i}]");
        let after = match parse_after(&level.after) {
            Ok(a) => Some(a),
            Err(why) => {
                cx.issue(format!("{lp}.after"), quoted(&level.after), why, "write \"0\" (at the breach), a delay such as \"4 business hours\", or a multiple of the window such as \"2x\"");
                None
            }
        };
        let to = parse_target(&level.to);
        if to.is_none() {
            cx.issue(
                format!("{lp}.to"),
                quoted(&level.to),
                "not an escalation target",
                "write \"manager\", \"manager.manager\" or \"pool:QUEUE_OR_USER_ID\"",
            );
        }
        if let (Some(after), Some(to)) = (after, to) {
            levels.push(CompiledLevel { after, to });
        }
    }
    if cx.issues.len() > before {
        return None;
    }
    Some(CompiledEscalation { remind: remind?, levels })
}

fn compile_scorecard(cx: &mut Cx, policy: &Policy) -> Option<CompiledScorecard> {
    let s = &policy.scorecard;
    let p = "policy.scorecard";
    let before = cx.issues.len();
    if s.consecutive_weeks == 0 {
        cx.issue(
            format!("{p}.consecutive_weeks"),
            "0",
            "escalating after zero missed weeks means escalating every week",
            "write the agreed number, e.g. 2",
        );
    }
    for (i, id) in s.notify.iter().enumerate() {
        if id.trim().is_empty() {
            cx.issue(
                format!("{p}.notify[{i}]"),
                "\"\"",
                "an owner id is empty",
                "write the leader's owner id or remove the entry",
            );
        }
    }
    let week_starts = parse_weekday(&s.week_starts);
    if week_starts.is_none() {
        cx.issue(
            format!("{p}.week_starts"),
            quoted(&s.week_starts),
            "not a day of the week",
            "use mon, tue, wed, thu, fri, sat or sun",
        );
    }
    let t = &s.targets;
    for (key, value) in [
        ("first_touch_in_window", t.first_touch_in_window),
        ("follow_up_completion", t.follow_up_completion),
        ("disposition_in_window", t.disposition_in_window),
        ("feedback_quality", t.feedback_quality),
        ("data_completeness", t.data_completeness),
        ("routing_in_window", t.routing_in_window),
    ] {
        if !(0.0..=1.0).contains(&value) {
            cx.issue(
                format!("{p}.targets.{key}"),
                value.to_string(),
                "a target is a share between 0 and 1",
                "write e.g. 0.9 for 90 %",
            );
        }
    }
    if cx.issues.len() > before {
        return None;
    }
    Some(CompiledScorecard {
        consecutive_weeks: s.consecutive_weeks,
        notify: s.notify.clone(),
        week_starts: week_starts?,
        targets: s.targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = include_str!("../../config/salesforce.example.toml");

    fn example() -> CompiledPolicy {
        crate::config::parse(EXAMPLE).expect("the example is valid").policy
    }

    /// The issues for the example with `old` replaced by `new`.
    fn issues_after(old: &str, new: &str) -> Vec<Issue> {
        assert!(EXAMPLE.contains(old), "the example no longer contains {old:?}");
        crate::config::parse(&EXAMPLE.replacen(old, new, 1)).err().unwrap_or_default()
    }

    fn paths(issues: &[Issue]) -> Vec<&str> {
        issues.iter().map(|i| i.path.as_str()).collect()
    }

    fn fields(v: serde_json::Value) -> BTreeMap<String, Json> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_example_compiles_to_the_template_numbers() {
        let p = example();
        let inbound = &p.segments[1];
        assert_eq!(inbound.name, "inbound");
        assert_eq!(inbound.applies_to, None);
        assert_eq!(inbound.first_touch["A"], Window::BusinessSeconds(3600));
        assert_eq!(inbound.first_touch["B"], Window::EndOfBusinessDay { days_after: 0 });
        assert_eq!(inbound.first_touch["C"], Window::BusinessSeconds(48 * 3600));
        assert_eq!((inbound.cadence.touches, inbound.cadence.business_days), (6, 10));
        assert_eq!(inbound.disposition_within, Window::BusinessDays(3));
        assert_eq!(inbound.sal_decision, Some(Window::BusinessSeconds(48 * 3600)));
        assert_eq!(p.segments[0].clock_start, ClockStart::Assignment);
        assert_eq!(p.reason_codes.len(), 7);
        assert_eq!(p.scorecard.consecutive_weeks, 2);
        assert_eq!(p.escalation.remind, Reminder::FractionElapsed(0.75));
        let rungs: Vec<(After, EscalationTarget)> =
            p.escalation.levels.iter().map(|l| (l.after, l.to.clone())).collect();
        assert_eq!(rungs[0], (After::AtBreach, EscalationTarget::Manager));
        assert_eq!(rungs[1], (After::WindowMultiple(2.0), EscalationTarget::ManagerOfManager));
        assert!(matches!(rungs[2], (After::WindowMultiple(m), EscalationTarget::Pool(_)) if m == 3.0));
        assert_eq!(p.marketing.routing_within, Window::WallClock(chrono::Duration::minutes(5)));
        assert_eq!(p.owners.default_calendar.as_deref(), Some("us_east"));
        assert_eq!(
            p.calendar_for_owner(Some("005Hs00000A1b2cAAA")).map(|c| c.time_zone.as_str()),
            Some("Europe/London")
        );
        assert_eq!(p.calendar_for_owner(None).map(|c| c.id.as_str()), Some("us_east"));
    }

    #[test]
    fn the_examples_surge_is_a_span_of_whole_days_in_the_default_zone() {
        let p = example();
        let launch = &p.surge.periods[0];
        assert_eq!((launch.name.as_str(), launch.reason.as_str()), ("Spring launch", "launch"));
        // 14 April 00:00 to 17 April 00:00, New York (EDT, UTC-4).
        assert_eq!(launch.from.to_rfc3339(), "2026-04-14T04:00:00+00:00");
        assert_eq!(launch.until.to_rfc3339(), "2026-04-17T04:00:00+00:00");
        assert_eq!(p.surge.first_touch["C"], Window::BusinessDays(4));
        assert!(!p.surge.first_touch.contains_key("A"), "A keeps its window");
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        assert!(p.surge.at(at("2026-04-16T23:00:00-04:00")).is_some());
        assert!(p.surge.at(at("2026-04-17T00:00:00-04:00")).is_none());
        assert_eq!(p.surge.overlapping(at("2026-04-13T00:00:00Z"), at("2026-04-20T00:00:00Z")).count(), 1);
    }

    #[test]
    fn time_off_mistakes_are_named() {
        let old = r#"time_off = { "005Hs00000A1b2cAAA" = ["2026-08-10..2026-08-21"] }"#;
        for (entries, path) in [
            (r#"["2026-03-05..2026-03-03"]"#, "policy.owners.time_off.u1[0]"),
            (r#"["2026-03-03", "March 5th"]"#, "policy.owners.time_off.u1[1]"),
            (r#"["2026-01-01..2027-06-01"]"#, "policy.owners.time_off.u1[0]"),
        ] {
            let issues = issues_after(old, &format!("time_off = {{ u1 = {entries} }}"));
            assert_eq!(paths(&issues), vec![path], "{entries}: {issues:#?}");
        }
        let listed = r#"time_off = { u1 = ["2026-03-03..2026-03-05", "2026-03-04", "2026-04-01"] }"#;
        let ok = crate::config::parse(&EXAMPLE.replacen(old, listed, 1)).expect("valid");
        let days: Vec<String> = ok.policy.time_off["u1"].iter().map(|d| d.to_string()).collect();
        assert_eq!(days, ["2026-03-03", "2026-03-04", "2026-03-05", "2026-04-01"]);
    }

    #[test]
    fn capacity_mistakes_are_named() {
        // The setting, not the comment above it that shows the choices.
        let old = "\noverflow = \"least_loaded\"\n";
        let group = r#"group = ["005Hs00000A1b2cAAA", "005Hs00000A1b3dAAA", "005Hs00000A1b4eAAA"]"#;
        let cases: Vec<(&str, String, Vec<&str>)> = vec![
            ("new_mqls_per_day = 15", "new_mqls_per_day = 0".into(), vec!["policy.capacity.new_mqls_per_day"]),
            (old, "\noverflow = \"backup\"\n".into(), vec!["policy.capacity.overflow"]),
            (old, "\n".into(), vec!["policy.capacity.overflow"]),
            (group, r#"group = ["005Hs00000A1b2cAAA"]"#.into(), vec!["policy.capacity.group"]),
            (
                group,
                r#"group = ["005Hs00000A1b2cAAA", "005Hs00000A1b3dAAA", "005Hs00000A1b2cAAA"]"#.into(),
                vec!["policy.capacity.group[2]"],
            ),
            // `relax` reads neither the group nor the pool, and needs windows.
            (
                old,
                "\noverflow = \"relax\"\n".into(),
                vec!["policy.capacity.pool", "policy.capacity.group", "policy.capacity.first_touch"],
            ),
            (
                r#"pool = "00GHs0000000001MAA"
# With"#,
                r#"pool = ""
# With"#
                    .into(),
                vec!["policy.capacity.pool"],
            ),
            (
                "# first_touch = { B",
                r#"first_touch = { D = "soonish" }
# first_touch = { B"#
                    .into(),
                vec!["policy.capacity.first_touch"],
            ),
            (
                "per_owner = { \"005Hs00000A1b2cAAA\" = 10 }",
                "per_owner = { \"005Hs00000A1b2cAAA\" = 0 }".into(),
                vec!["policy.capacity.per_owner.005Hs00000A1b2cAAA"],
            ),
        ];
        for (old, new, expected) in cases {
            let issues = issues_after(old, &new);
            assert_eq!(paths(&issues), expected, "{new}: {issues:#?}");
            assert!(issues.iter().all(|i| !i.fix.is_empty()), "{issues:#?}");
        }
        // A rep who is away: pause (the default) or reassign to a fallback.
        let old_away = "when_away = \"pause\"\n# away_fallback = \"00GHs0000000001MAA\"";
        for (new, expected) in [
            ("when_away = \"vacation\"", "policy.owners.when_away"),
            ("when_away = \"reassign\"", "policy.owners.away_fallback"),
            ("when_away = \"pause\"\naway_fallback = \"00GHs0000000001MAA\"", "policy.owners.away_fallback"),
        ] {
            let issues = issues_after(old_away, new);
            assert_eq!(paths(&issues), vec![expected], "{new}: {issues:#?}");
        }
        let text = EXAMPLE.replacen(old_away, "when_away = \"reassign\"\naway_fallback = \"00GHs0000000001MAA\"", 1);
        let reassigning = crate::config::parse(&text).expect("valid").policy;
        assert_eq!(reassigning.capacity.away_to.as_deref(), Some("00GHs0000000001MAA"));
        // A relaxed window per grade, checked like any window.
        let relaxed = issues_after(old, "\noverflow = \"relax\"\nfirst_touch = { D = \"soonish\" }\n");
        let relaxed: Vec<&str> = paths(&relaxed).into_iter().filter(|p| p.contains("first_touch")).collect();
        assert_eq!(relaxed, ["policy.capacity.first_touch.D", "policy.capacity.first_touch.D"]);
        // A misspelt section is named, not ignored.
        let text = EXAMPLE.replace("[policy.capacity]", "[policy.capacity_unused]");
        assert!(crate::config::parse(&text).is_err(), "an unknown section is named");
        let policy = example();
        assert_eq!(policy.capacity.cap_for("005Hs00000A1b2cAAA"), Some(10));
        assert_eq!(policy.capacity.cap_for("005Hs00000A1b3dAAA"), Some(15));
        match &policy.capacity.overflow {
            Some(Overflow::LeastLoaded { group, pool }) => {
                assert_eq!(group.len(), 3);
                assert_eq!(pool.as_deref(), Some("00GHs0000000001MAA"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ae_commitment_mistakes_are_named() {
        let old = "discovery_within = \"3 business days\"\nopportunity_within = \"10 business days\"";
        let issues = issues_after(old, "discovery_within = \"soonish\"\nopportunity_within = \"-2 days\"");
        assert_eq!(
            paths(&issues),
            ["policy.segments[1].discovery_within", "policy.segments[1].opportunity_within"],
            "{issues:#?}"
        );
        let inbound = example().segments.into_iter().find(|s| s.name == "inbound").unwrap();
        assert!(inbound.discovery_within.is_some() && inbound.opportunity_within.is_some());
    }

    #[test]
    fn surge_detection_mistakes_are_named() {
        let old = "detect = { mqls_per_hour = 40, cool_down_minutes = 60 }";
        for (new, expected) in [
            ("detect = { mqls_per_hour = 1 }", vec!["policy.surge.detect.mqls_per_hour"]),
            (
                "detect = { mqls_per_hour = 40, cool_down_minutes = 5000 }",
                vec!["policy.surge.detect.cool_down_minutes"],
            ),
        ] {
            let issues = issues_after(old, new);
            assert_eq!(paths(&issues), expected, "{new}: {issues:#?}");
        }
        assert!(!issues_after(old, "detect = { per_hour = 40 }").is_empty(), "an unknown key is named");
        let detect = example().surge.detect.expect("the example detects surges");
        assert_eq!((detect.mqls_per_hour, detect.cool_down), (40, chrono::Duration::minutes(60)));
        let default = crate::config::parse(&EXAMPLE.replacen(old, "detect = { mqls_per_hour = 40 }", 1)).unwrap();
        assert_eq!(default.policy.surge.detect.unwrap().cool_down, chrono::Duration::minutes(60));
    }

    #[test]
    fn surge_mistakes_are_named() {
        let cases = [
            (
                r#"first_touch = { B = "next business day""#,
                r#"first_touch = { D = "next business day""#,
                "policy.surge.first_touch.D",
            ),
            (
                r#"first_touch = { B = "next business day""#,
                r#"first_touch = { B = "soonish""#,
                "policy.surge.first_touch.B",
            ),
            (r#"reason = "launch""#, r#"reason = "hype""#, "policy.surge.periods[0].reason"),
            (r#"from = "2026-04-14""#, r#"from = "14/04/2026""#, "policy.surge.periods[0].from"),
            (r#"to = "2026-04-16""#, r#"to = "2026-04-01""#, "policy.surge.periods[0].to"),
            (r#"to = "2026-04-16""#, r#"to = "2026-09-16""#, "policy.surge.periods[0].to"),
            (r#"name = "Spring launch""#, r#"name = " ""#, "policy.surge.periods[0].name"),
        ];
        for (old, new, path) in cases {
            let issues = issues_after(old, new);
            assert_eq!(paths(&issues), vec![path], "{new}: {issues:#?}");
        }
    }

    #[test]
    fn the_example_grades_and_qualifies_leads() {
        let p = example();
        let a = fields(json!({
            "NumberOfEmployees": 250, "Country": "US", "Title": "VP of Marketing",
            "Intent_Action__c": "Demo Request", "Lead_Score__c": 90, "Email": "ava@northwind.com",
            "LeadSource": "Web"
        }));
        assert_eq!(p.qualify(&a), Qualification::Mql);
        assert_eq!(p.grade_for(&a), Some("A"));
        assert_eq!(p.segment_for(&a).map(|s| s.name.as_str()), Some("inbound"));

        let mut c = a.clone();
        c.insert("Country".into(), json!("France"));
        assert_eq!(p.grade_for(&c), Some("C"));

        let mut b = a.clone();
        b.insert("Intent_Action__c".into(), json!("webinar"));
        b.insert("LeadSource".into(), json!("Purchased List"));
        assert_eq!(p.grade_for(&b), Some("B"));
        assert_eq!(p.segment_for(&b).map(|s| s.name.as_str()), Some("outbound"));

        let mut student = a.clone();
        student.insert("Title".into(), json!("Graduate Student"));
        assert_eq!(p.qualify(&student), Qualification::Disqualified { name: "student".into() });

        let mut gmail = a.clone();
        gmail.insert("Email".into(), json!("ava@GMAIL.com"));
        assert_eq!(p.qualify(&gmail), Qualification::Disqualified { name: "personal_email".into() });

        let mut low = a.clone();
        low.insert("Lead_Score__c".into(), json!("42"));
        assert_eq!(p.qualify(&low), Qualification::BelowScore { score: Some(42.0), min_score: 50.0 });

        let mut no_intent = a.clone();
        no_intent.insert("Intent_Action__c".into(), json!("none"));
        assert_eq!(p.qualify(&no_intent), Qualification::NotMql);
        assert_eq!(p.grade_for(&no_intent), None);

        assert!(p.missing_required_fields(&a).contains(&"Phone"));
        assert!(!p.missing_required_fields(&a).contains(&"Title"));
    }

    #[test]
    fn referenced_fields_cover_mapping_sla_required_and_conditions() {
        let fields = example().referenced_fields();
        for f in [
            "Status",
            "LeadSource",
            "Lead_Score__c",
            "Disqualification_Reason__c",
            "MQL_Date__c",
            "SLA_Grade__c",
            "SLA_Breach_Count__c",
            "Phone",
            "NumberOfEmployees",
            "Intent_Action__c",
            "Title",
            "Email",
            "Country",
        ] {
            assert!(fields.contains(f), "{f} missing from {fields:?}");
        }
        assert!(!fields.contains(""));
    }

    #[test]
    fn criteria_cycles_are_rejected_once() {
        let issues = issues_after(
            "[policy.definitions.criteria.intent]\nany = [{ criteria = \"strong_intent\" }",
            "[policy.definitions.criteria.intent]\nany = [{ criteria = \"loop_a\" }, { criteria = \"strong_intent\" }",
        );
        assert_eq!(paths(&issues), ["policy.definitions.criteria.intent.any[0].criteria"]);
        let cyclic = EXAMPLE.replacen(
            "[policy.definitions.criteria.light_intent]",
            "[policy.definitions.criteria.loop_a]\nall = [{ criteria = \"loop_b\" }]\n\n[policy.definitions.criteria.loop_b]\nany = [{ criteria = \"loop_a\" }]\n\n[policy.definitions.criteria.light_intent]",
            1,
        );
        let issues = crate::config::parse(&cyclic).err().unwrap_or_default();
        let cycles: Vec<&Issue> = issues.iter().filter(|i| i.message.contains("cycle")).collect();
        assert_eq!(cycles.len(), 1, "{issues:?}");
        assert!(cycles[0].message.contains("loop_a → loop_b → loop_a"), "{}", cycles[0]);
    }

    #[test]
    fn the_last_segment_must_catch_all() {
        let issues = issues_after(
            "name = \"inbound\"\n",
            "name = \"inbound\"\napplies_to = { field = \"LeadSource\", op = \"=\", value = \"Web\" }\n",
        );
        assert_eq!(paths(&issues), ["policy.segments[1].applies_to"]);
        let issues = issues_after(
            "applies_to = { field = \"LeadSource\", op = \"in\", value = [\"Outbound\", \"Purchased List\"] }\n",
            "",
        );
        assert_eq!(paths(&issues), ["policy.segments[0].applies_to"]);
    }

    #[test]
    fn operator_value_shapes_are_checked() {
        let set_with_value = issues_after(
            "{ field = \"Title\", op = \"contains\", value = \"director\" }",
            "{ field = \"Title\", op = \"is set\", value = \"director\" }",
        );
        assert_eq!(paths(&set_with_value), ["policy.definitions.criteria.manager_or_above.any[1].value"]);
        let text_order = issues_after(
            "{ field = \"NumberOfEmployees\", op = \">=\", value = 25 }",
            "{ field = \"NumberOfEmployees\", op = \">=\", value = \"many\" }",
        );
        assert_eq!(paths(&text_order), ["policy.definitions.criteria.fit.all[0].value"]);
        let list_eq = issues_after("op = \"contains\"\nvalue = \"student\"", "op = \"=\"\nvalue = [\"student\"]");
        assert_eq!(paths(&list_eq), ["policy.definitions.disqualifiers.student.value"]);
        let shape = issues_after("when = { criteria = \"intent\" }", "when = { criteria = \"intent\", all = [] }");
        assert_eq!(paths(&shape), ["policy.grades[2].when"]);
        assert!(shape[0].message.contains("do not form a condition"), "{}", shape[0]);
    }

    #[test]
    fn references_and_ranges_are_checked() {
        let cases: [(&str, &str, &str); 8] = [
            ("default_calendar = \"us_east\"", "default_calendar = \"us-east\"", "policy.owners.default_calendar"),
            (
                "\"005Hs00000A1b3dAAA\" = \"apac\"",
                "\"005Hs00000A1b3dAAA\" = \"asia\"",
                "policy.owners.calendar_by_owner.005Hs00000A1b3dAAA",
            ),
            (
                "monthly_volume = { A = 40, B = 80 }",
                "monthly_volume = { A = 40, E = 80 }",
                "policy.marketing.monthly_volume.E",
            ),
            ("min_acceptance_rate = 0.6", "min_acceptance_rate = 60.0", "policy.marketing.min_acceptance_rate"),
            ("consecutive_weeks = 2", "consecutive_weeks = 0", "policy.scorecard.consecutive_weeks"),
            ("rejected = [\"Unqualified\"]", "rejected = [\"Qualified\"]", "policy.statuses.rejected[0]"),
            ("score = \"Lead_Score__c\"\n", "", "policy.definitions.min_score"),
            ("after = \"2x\"", "after = \"0.5x\"", "policy.escalation.levels[1].after"),
        ];
        for (old, new, path) in cases {
            assert_eq!(paths(&issues_after(old, new)), [path], "{old} -> {new}");
        }
    }

    #[test]
    fn a_calendar_without_hours_is_rejected() {
        let issues = issues_after(
            "hours = { mon = [\"08:30-17:00\"], tue = [\"08:30-17:00\"], wed = [\"08:30-17:00\"], thu = [\"08:30-17:00\"], fri = [\"08:30-17:00\"] }",
            "hours = {}",
        );
        assert_eq!(paths(&issues), ["policy.calendars.apac.hours"]);
        let bad_day = issues_after("hours = { mon = [\"08:30-17:00\"]", "hours = { mo = [\"08:30-17:00\"]");
        assert_eq!(paths(&bad_day), ["policy.calendars.apac.hours.mo"]);
    }

    #[test]
    fn grades_without_a_target_and_duplicates() {
        let issues = issues_after("name = \"C\"", "name = \"B\"");
        assert_eq!(
            paths(&issues),
            [
                "policy.grades[2].name",
                "policy.segments[0].first_touch.C",
                "policy.segments[1].first_touch.C",
                "policy.surge.first_touch.C"
            ]
        );
    }

    #[test]
    fn new_keys_are_checked_by_name() {
        let cases: [(&str, &str, &str); 5] = [
            (
                "managers = {}",
                "managers = {}\nintake_seats = { \"00GHs0000000001MAA\" = \"\" }",
                "policy.owners.intake_seats.00GHs0000000001MAA",
            ),
            (
                "within = \"3 business days\"\n\n# Inbound",
                "within = \"3 business days\"\nreason_code_grace = \"a day or so\"\n\n# Inbound",
                "policy.segments[0].disposition.reason_code_grace",
            ),
            ("clock_start = \"assignment\"", "clock_start = \"acceptance\"", "policy.segments[0].sal_decision"),
            ("follow_up_at = \"Follow_Up_Date__c\"", "", "policy.statuses.deferred"),
            ("nurture = [\"Recycled - Nurture\"]", "nurture = [\"Qualified\"]", "policy.statuses.nurture[0]"),
        ];
        for (old, new, path) in cases {
            let issues = issues_after(old, new);
            assert_eq!(paths(&issues), [path], "{old} -> {new}: {issues:#?}");
            assert!(!issues[0].fix.is_empty());
        }
    }

    #[test]
    fn check_explains_who_answers_for_a_lead_in_the_pool() {
        let notes = example().notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("policy.escalation.levels[2] moves a lead to pool 00GHs0000000001MAA"),
            "{notes:?}"
        );
        assert!(notes[0].contains("no intake seat") && notes[0].contains("pause"), "{notes:?}");
        let seated = crate::config::parse(&EXAMPLE.replacen(
            "managers = {}",
            "managers = {}\nintake_seats = { \"00GHs0000000001MAA\" = \"005Hs00000A0SeatAA\" }",
            1,
        ))
        .unwrap_or_else(|e| panic!("{e:#?}"))
        .policy;
        let notes = seated.notes();
        assert!(
            notes[0].contains("intake seat 005Hs00000A0SeatAA") && notes[0].contains("gets its reminders"),
            "{notes:?}"
        );
    }

    #[test]
    fn time_ranges() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(parse_time_range("09:00-17:00"), Some((t(9, 0), t(17, 0))));
        assert_eq!(parse_time_range(" 22:00 – 06:00 "), Some((t(22, 0), t(6, 0))));
        assert_eq!(parse_time_range("09:00-24:00"), Some((t(9, 0), t(0, 0))));
        for bad in ["9-5", "09:00", "25:00-26:00", "09:00-17:60", "nine-five"] {
            assert_eq!(parse_time_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn holidays() {
        let h = parse_holiday("2026-12-24 13:00-17:00 Christmas Eve").unwrap();
        assert_eq!(h.date, NaiveDate::from_ymd_opt(2026, 12, 24).unwrap());
        assert_eq!(h.start, NaiveTime::from_hms_opt(13, 0, 0));
        assert_eq!(h.name.as_deref(), Some("Christmas Eve"));
        let h = parse_holiday("2026-01-01").unwrap();
        assert_eq!((h.start, h.name), (None, None));
        assert!(parse_holiday("2026-02-30 Nope").is_none());
        assert!(parse_holiday("25/12/2026").is_none());
    }

    #[test]
    fn reminders_and_rungs() {
        assert_eq!(parse_reminder("75%"), Ok(Reminder::FractionElapsed(0.75)));
        assert_eq!(parse_reminder("15 business minutes before"), Ok(Reminder::Before(Window::BusinessSeconds(900))));
        assert!(parse_reminder("100%").is_err());
        assert!(parse_reminder("0%").is_err());
        assert_eq!(parse_after("0"), Ok(After::AtBreach));
        assert_eq!(parse_after("2x"), Ok(After::WindowMultiple(2.0)));
        assert_eq!(parse_after("4 business hours"), Ok(After::Delay(Window::BusinessSeconds(4 * 3600))));
        assert!(parse_after("0.5x").is_err());
        assert_eq!(parse_target("pool:00G5e000001"), Some(EscalationTarget::Pool("00G5e000001".into())));
        assert_eq!(parse_target("Manager.Manager"), Some(EscalationTarget::ManagerOfManager));
        assert_eq!(parse_target("pool:"), None);
        assert_eq!(parse_target("director"), None);
    }
}
