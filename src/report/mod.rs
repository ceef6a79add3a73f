//! The weekly scorecard both teams signed: computed from what the daemon
//! holds (every lead, its history and the engine's clocks), per week, with
//! an optional breakdown by grade, lead source, rep or team.
//!
//! # Which week a number belongs to
//!
//! Weeks are read in the reporting zone (the policy's default calendar) and
//! start on `scorecard.week_starts`. A number belongs to the week its
//! outcome became known, so a closed week's numbers are final when it ends:
//!
//! | metric | case | week of | counts as a hit |
//! |---|---|---|---|
//! | MQLs (vs target, by grade) | a lead meeting the MQL definition with complete data | its MQL time | — |
//! | data completeness | a lead meeting the MQL rule | its MQL time | each required field populated |
//! | routing in window | a routing clock met or breached | assignment (met) or breach | met |
//! | MQL→SAL acceptance | the first decision on an MQL with complete data: accepted, converted or rejected | the decision | accepted or converted |
//! | speed to first touch | a first-touch clock stopped by a touch | the touch | (median and 90th percentile in business minutes, on the owner's calendar) |
//! | first touch in window | a first-touch clock met or breached | the stop (met) or the breach | met |
//! | first touch ended | a lead rejected, closed or converted before any touch: left out of "first touch in window", counted here | the decision | — |
//! | follow-up completion | a lead closed as unresponsive (cadence judged) | the close | full cadence |
//! | disposition in window | a disposition clock met or breached | the decision (met) or the breach | met (the reason code is feedback quality's, not the disposition's) |
//! | feedback quality | the first rejection of an MQL with complete data, once judged | the agreed code (hit) or the grace's end (miss) | an agreed reason code within `disposition.reason_code_grace` of the rejection |
//! | rejection reasons | the same rejections | as feedback quality | (count per code the lead carries) |
//!
//! A lead that qualified after its MQL time (a waived lead completed later)
//! counts from when it qualified.
//! | lead→opportunity | an MQL (cohort) | its MQL time | converted since |
//!
//! Each commitment has a target (from the policy) and the week's actual;
//! a week without cases has no actual and neither meets nor misses.

pub mod graveyard;
mod html;
mod render;
pub mod signals;
pub mod weekly;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use handoff_model::{Lead, Owner, OwnerKind};
use serde::{Deserialize, Serialize};

pub use html::{render_html, render_tv};
pub use render::{render_csv, render_table};

use crate::engine::{self, classify, ClockKind, ClockStatus, Owners, StatusClass, StopCause};
use crate::policy::CompiledPolicy;
use crate::store::{LeadState, StoredLead};

/// How to break the numbers down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Grade,
    Source,
    Rep,
    /// The rep's manager.
    Team,
    /// Who owns the number: marketing (MQLs, data, routing), the SDR who
    /// works the MQL (first touch through disposition and feedback), the AE
    /// after acceptance (discovery, opportunity).
    Role,
}

/// Who a number belongs to, for `--by role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Marketing,
    Sdr,
    Ae,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Marketing => "marketing",
            Role::Sdr => "SDR",
            Role::Ae => "AE",
        }
    }
}

/// hits out of cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Ratio {
    pub hits: u64,
    pub cases: u64,
}

impl Ratio {
    pub fn is_empty(&self) -> bool {
        self.cases == 0
    }

    pub fn rate(&self) -> Option<f64> {
        (self.cases > 0).then(|| self.hits as f64 / self.cases as f64)
    }

    fn add(&mut self, hit: bool) {
        self.cases += 1;
        self.hits += u64::from(hit);
    }
}

/// Median and 90th percentile (nearest rank) of a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

/// The value at `q` (0–1) by nearest rank: the smallest value with at least
/// `q` of the sample at or below it.
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(|a, b| a.total_cmp(b));
        Spread { count: values.len(), median: nearest_rank(&values, 0.5), p90: nearest_rank(&values, 0.9) }
    }
}

/// One week's numbers for one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub mqls: u64,
    pub mqls_by_grade: BTreeMap<String, u64>,
    /// Required fields populated, out of required fields, over the week's MQL candidates.
    pub data_completeness: Ratio,
    pub routing_in_window: Ratio,
    pub routing_minutes: Spread,
    pub acceptance: Ratio,
    pub first_touch_business_minutes: Spread,
    pub first_touch_in_window: Ratio,
    /// First touches of leads that arrived during a declared surge
    /// (`policy.surge`), judged on their relaxed windows and kept out of
    /// `first_touch_in_window`: volume reps could not control.
    #[serde(default, skip_serializing_if = "Ratio::is_empty")]
    pub first_touch_in_window_surge: Ratio,
    /// First-touch clocks ended by a rejection, close or conversion before
    /// any touch: not in `first_touch_in_window` either way.
    pub first_touch_ended: u64,
    /// The AE's commitments (segments with `discovery_within`,
    /// `opportunity_within`): met or missed, by the week it became known.
    #[serde(default, skip_serializing_if = "Ratio::is_empty")]
    pub discovery_in_window: Ratio,
    #[serde(default, skip_serializing_if = "Ratio::is_empty")]
    pub opportunity_in_window: Ratio,
    pub follow_up_completion: Ratio,
    pub disposition_in_window: Ratio,
    pub feedback_quality: Ratio,
    pub rejection_reasons: BTreeMap<String, u64>,
    pub opportunity: Ratio,
    pub opportunity_by_grade: BTreeMap<String, Ratio>,
}

/// Raw samples gathered before the spreads are computed.
#[derive(Default)]
struct Acc {
    m: Metrics,
    routing_minutes: Vec<f64>,
    touch_minutes: Vec<f64>,
}

/// Which side of the agreement a commitment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Marketing,
    Sales,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Marketing => "marketing",
            Side::Sales => "sales",
        }
    }
}

/// A commitment's week: target, actual, met or missed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Commitment {
    /// Stable id, e.g. `sales.first_touch_in_window`, `marketing.volume.A`.
    pub id: String,
    pub side: Side,
    pub label: String,
    pub target: f64,
    pub actual: Option<f64>,
    /// `None` when the week had no cases.
    pub met: Option<bool>,
    /// Shares (0–1) or counts (volume).
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Share,
    Count,
}

/// One reporting week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// The week's first day (reporting zone).
    pub start: NaiveDate,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The week is still running: its numbers are to date.
    pub partial: bool,
    /// `"all"`, plus one entry per group value when broken down.
    pub groups: BTreeMap<String, Metrics>,
    /// On the whole org (the `"all"` group).
    pub commitments: Vec<Commitment>,
    /// The declared surges (`policy.surge`) the week overlaps, then the
    /// detected ones its leads arrived in, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surges: Vec<String>,
}

/// The scorecard: weeks oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    pub instance: String,
    pub time_zone: String,
    pub generated_at: DateTime<Utc>,
    pub by: Option<Dimension>,
    pub weeks: Vec<Week>,
    /// The calibration signals, when the caller judged them (they need a
    /// longer history than the weeks shown; see [`signals`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals: Option<signals::Signals>,
}

/// A commitment's value as the scorecard prints it (a share or a count).
pub fn commitment_text(c: &Commitment, v: Option<f64>) -> String {
    render::commitment_value(c, v)
}

/// A commitment's target as the scorecard prints it ("≥90%").
pub fn target_description(c: &Commitment) -> String {
    render::target_text(c)
}

/// A value of `unit` as the scorecard prints it.
pub fn value_text(unit: Unit, v: Option<f64>) -> String {
    match unit {
        Unit::Share => render::pct(v),
        Unit::Count => v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into()),
    }
}

/// What the scorecard is computed from.
pub struct Input<'a> {
    pub instance: &'a str,
    pub policy: &'a CompiledPolicy,
    pub leads: &'a [StoredLead],
    pub states: &'a BTreeMap<String, LeadState>,
    pub owners: &'a [Owner],
}

/// The reporting zone: the policy's default calendar's.
pub fn reporting_zone(policy: &CompiledPolicy) -> Tz {
    policy
        .owners
        .default_calendar
        .as_ref()
        .and_then(|c| policy.calendars.get(c))
        .and_then(|c| c.time_zone.parse().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// The start (local midnight, as an instant) of the week containing `at`.
pub fn week_start(at: DateTime<Utc>, tz: Tz, first_day: Weekday) -> NaiveDate {
    let local = at.with_timezone(&tz).date_naive();
    let back = (7 + local.weekday().num_days_from_monday() - first_day.num_days_from_monday()) % 7;
    local - Duration::days(i64::from(back))
}

/// The instants a week starting on `start` (a local date) begins and ends.
pub fn week_bounds(start: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    (local_midnight(start, tz), local_midnight(start + Duration::days(7), tz))
}

fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    // Midnight always exists in the zones handoff meets; earliest() covers
    // a DST fold, and a gap falls back to the UTC reading.
    tz.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// Computes `weeks` weeks ending with the week that contains `now`.
pub fn compute(input: &Input<'_>, weeks: usize, now: DateTime<Utc>, by: Option<Dimension>) -> Scorecard {
    let mut tally = Tally::new(input.instance, input.policy, input.owners, weeks, now, by);
    for stored in input.leads {
        tally.add(stored.for_engine(), input.states.get(&stored.lead.id));
    }
    tally.finish()
}

/// The scorecard being computed: leads are added one at a time (from a
/// list, or from the store a slice at a time), then the weeks are closed.
struct Tally<'a> {
    instance: &'a str,
    policy: &'a CompiledPolicy,
    tz: Tz,
    now: DateTime<Utc>,
    by: Option<Dimension>,
    /// Every week asked for; those before the first lead are left out at the end.
    starts: Vec<NaiveDate>,
    first_lead_at: Option<DateTime<Utc>>,
    owners: Owners<'a>,
    owner_by_id: HashMap<&'a str, &'a Owner>,
    acc: Vec<BTreeMap<String, Acc>>,
    /// Per week, the detected surges its leads arrived in.
    detected: Vec<BTreeSet<String>>,
    schedules: HashMap<Option<String>, Option<crate::calendar::Schedule>>,
}

impl<'a> Tally<'a> {
    fn new(
        instance: &'a str,
        policy: &'a CompiledPolicy,
        owners: &'a [Owner],
        weeks: usize,
        now: DateTime<Utc>,
        by: Option<Dimension>,
    ) -> Tally<'a> {
        let tz = reporting_zone(policy);
        let this_week = week_start(now, tz, policy.scorecard.week_starts);
        let starts: Vec<NaiveDate> = (0..weeks.max(1)).rev().map(|k| this_week - Duration::weeks(k as i64)).collect();
        Tally {
            instance,
            policy,
            tz,
            now,
            by,
            acc: (0..starts.len()).map(|_| BTreeMap::new()).collect(),
            detected: vec![BTreeSet::new(); starts.len()],
            starts,
            first_lead_at: None,
            owners: Owners::new(owners),
            owner_by_id: owners.iter().map(|o| (o.id.as_str(), o)).collect(),
            schedules: HashMap::new(),
        }
    }

    /// Counts a lead in, as the engine reads it (one not evaluated yet only
    /// dates the first week).
    fn add(&mut self, lead: Lead, state: Option<&LeadState>) {
        let (policy, tz, now, by) = (self.policy, self.tz, self.now, self.by);
        let first_day = policy.scorecard.week_starts;
        self.first_lead_at = Some(self.first_lead_at.map_or(lead.created_at, |f| f.min(lead.created_at)));
        let starts = &self.starts;
        let index_of = |at: DateTime<Utc>| -> Option<usize> {
            let w = week_start(at, tz, first_day);
            starts.binary_search(&w).ok().filter(|_| at <= now)
        };
        let owners = &self.owners;
        let owner_by_id = &self.owner_by_id;
        let acc = &mut self.acc;
        let schedules = &mut self.schedules;
        let Some(state) = state.filter(|s| s.error.is_none()) else { return };
        if lead.deleted || lead.merged_into.is_some() {
            return;
        }
        // Detected surges mark the week their leads arrived in (declared
        // ones mark the weeks they span).
        for clock in state.clocks.iter().filter(|c| c.kind == ClockKind::FirstTouch) {
            let (Some(name), Some(at)) = (&clock.surge, clock.received_at) else { continue };
            if !policy.surge.periods.iter().any(|p| &p.name == name) {
                if let Some(w) = index_of(at) {
                    self.detected[w].insert(name.clone());
                }
            }
        }
        let grade = state.grade.clone().unwrap_or_else(|| "none".to_string());
        let source = lead.field_str(&policy.fields.source).unwrap_or("(none)").to_string();
        let lead_rep =
            lead.owner_id.clone().filter(|o| owner_by_id.get(o.as_str()).is_none_or(|ow| ow.kind == OwnerKind::User));
        let group_of = |rep: Option<&str>, role: Role| -> Option<String> {
            match by? {
                Dimension::Role => Some(role.label().to_string()),
                Dimension::Grade => Some(grade.clone()),
                Dimension::Source => Some(source.clone()),
                Dimension::Rep => {
                    Some(rep.map(|r| owner_label(owner_by_id, r)).unwrap_or_else(|| "(unassigned)".into()))
                }
                Dimension::Team => Some(
                    rep.and_then(|r| owners.manager_of(r, policy))
                        .map(|m| owner_label(owner_by_id, &m))
                        .unwrap_or_else(|| "(no manager)".into()),
                ),
            }
        };
        let mut record = |at: DateTime<Utc>, rep: Option<&str>, role: Role, f: &mut dyn FnMut(&mut Acc)| {
            let Some(w) = index_of(at) else { return };
            f(acc[w].entry("all".to_string()).or_default());
            if let Some(g) = group_of(rep, role) {
                f(acc[w].entry(g).or_default());
            }
        };
        let (mql_at, _) = engine::mql_time(&lead, policy);
        // Counted from when the lead qualified, never backdated.
        let mql_at = state.qualified_at.map_or(mql_at, |q| q.max(mql_at));
        let qualified = state.mql && state.waived.is_none();
        let converted = lead.converted_at.is_some()
            || lead.field_str(&policy.fields.status).and_then(|s| classify(&policy.statuses, s))
                == Some(StatusClass::Converted);

        if state.mql {
            let required = policy.marketing.required_fields.len() as u64;
            let missing = policy.missing_required_fields(&lead.fields).len() as u64;
            record(mql_at, lead_rep.as_deref(), Role::Marketing, &mut |a| {
                a.m.data_completeness.hits += required.saturating_sub(missing);
                a.m.data_completeness.cases += required;
            });
        }
        if qualified {
            record(mql_at, lead_rep.as_deref(), Role::Marketing, &mut |a| {
                a.m.mqls += 1;
                *a.m.mqls_by_grade.entry(grade.clone()).or_default() += 1;
                a.m.opportunity.add(converted);
                a.m.opportunity_by_grade.entry(grade.clone()).or_default().add(converted);
            });
            let (decided, _) = engine::decisions(&lead, &policy.statuses, lead.field_str(&policy.fields.status));
            if let Some(d) = decided.iter().find(|d| d.at >= mql_at && d.class != StatusClass::ClosedUnresponsive) {
                let accepted = matches!(d.class, StatusClass::Accepted | StatusClass::Converted);
                record(d.at, lead_rep.as_deref(), Role::Sdr, &mut |a| a.m.acceptance.add(accepted));
            }
        }

        // Rejections: feedback quality and reasons, on qualified MQLs only
        // (a waived lead carries no sales obligation, its rejection included).
        if qualified {
            let code = lead.field_str(&policy.fields.reason_code).map(str::trim).map(str::to_string);
            let agreed = code.as_deref().is_some_and(|c| policy.reason_codes.contains(c));
            let label = match (&code, agreed) {
                (None, _) => "(none)".to_string(),
                (Some(c), true) => c.clone(),
                (Some(c), false) => format!("(not agreed) {c}"),
            };
            let rejections = lead
                .status_changes
                .iter()
                .filter(|c| c.at >= mql_at && classify(&policy.statuses, &c.status) == Some(StatusClass::Rejected));
            // One rejection per lead: the first (re-rejecting is no new
            // feedback), judged once its grace has passed or its code came.
            if let Some(r) = rejections.min_by_key(|c| c.at) {
                let grace = policy.segment_for(&lead.fields).map(|s| s.reason_code_grace);
                let schedule = schedules
                    .entry(lead_rep.clone())
                    .or_insert_with(|| engine::owner_schedule(policy, owners, lead_rep.as_deref()).ok());
                let due = grace.zip(schedule.as_ref()).and_then(|(g, s)| engine::window_deadline(s, r.at, &g));
                let given = engine::reason_code_given(&lead, &policy.fields.reason_code, &policy.reason_codes, r.at);
                let judged = match (given, due) {
                    (Some((at, _)), Some(due)) if at <= due => Some((at, true)),
                    (_, Some(due)) if due <= now => Some((due, false)),
                    _ => None,
                };
                if let Some((at, hit)) = judged {
                    record(at, lead_rep.as_deref(), Role::Sdr, &mut |a| {
                        a.m.feedback_quality.add(hit);
                        *a.m.rejection_reasons.entry(label.clone()).or_default() += 1;
                    });
                }
            }
        }

        for clock in &state.clocks {
            // A clock paused in a pool is still the last rep's to answer for.
            let rep = clock.owner_id.as_deref().or(clock.last_owner_id.as_deref()).or(lead_rep.as_deref());
            let outcome = match clock.status {
                ClockStatus::Met => clock.stopped_at.map(|at| (at, true)),
                ClockStatus::Breached => clock.breached_at.or(clock.due_at).map(|at| (at, false)),
                _ => None,
            };
            match clock.kind {
                ClockKind::Routing => {
                    if let Some((at, met)) = outcome {
                        let minutes =
                            clock.stopped_at.zip(clock.received_at).map(|(s, r)| (s - r).num_seconds() as f64 / 60.0);
                        record(at, rep, Role::Marketing, &mut |a| {
                            a.m.routing_in_window.add(met);
                            if let Some(m) = minutes {
                                a.routing_minutes.push(m);
                            }
                        });
                    }
                }
                ClockKind::FirstTouch => {
                    if let Some((at, met)) = outcome {
                        match clock.surge {
                            Some(_) => record(at, rep, Role::Sdr, &mut |a| a.m.first_touch_in_window_surge.add(met)),
                            None => record(at, rep, Role::Sdr, &mut |a| a.m.first_touch_in_window.add(met)),
                        }
                    }
                    if let (ClockStatus::Ended, Some(at)) = (clock.status, clock.stopped_at) {
                        record(at, rep, Role::Sdr, &mut |a| a.m.first_touch_ended += 1);
                    }
                    if let (Some(StopCause::Touch { .. }), Some(start), Some(stop)) =
                        (&clock.stopped_by, clock.started_at, clock.stopped_at)
                    {
                        let holder = clock.owner_id.clone().or_else(|| clock.last_owner_id.clone());
                        let schedule = schedules
                            .entry(holder.clone())
                            .or_insert_with(|| engine::owner_schedule(policy, owners, holder.as_deref()).ok());
                        if let Some(s) = schedule {
                            let minutes = s.business_between(start, stop.max(start)).num_seconds() as f64 / 60.0;
                            record(stop, rep, Role::Sdr, &mut |a| a.touch_minutes.push(minutes));
                        }
                    }
                }
                ClockKind::Cadence => {
                    // Judged when the lead is closed as unresponsive: at the close.
                    if let (Some(closed), Some((_, met))) = (clock.stopped_at, outcome) {
                        record(closed, rep, Role::Sdr, &mut |a| a.m.follow_up_completion.add(met));
                    }
                }
                ClockKind::Disposition => {
                    if let Some((at, met)) = outcome {
                        record(at, rep, Role::Sdr, &mut |a| a.m.disposition_in_window.add(met));
                    }
                }
                // Feedback quality is judged from the rejection itself (above).
                ClockKind::Discovery | ClockKind::Opportunity => {
                    if let Some((at, met)) = outcome {
                        let discovery = clock.kind == ClockKind::Discovery;
                        record(at, rep, Role::Ae, &mut |a| match discovery {
                            true => a.m.discovery_in_window.add(met),
                            false => a.m.opportunity_in_window.add(met),
                        });
                    }
                }
                ClockKind::SalDecision | ClockKind::ReasonCode => {}
            }
        }
    }

    fn finish(self) -> Scorecard {
        let Tally { instance, policy, tz, now, by, starts, first_lead_at, acc, detected, .. } = self;
        // Weeks that ended before the first lead handoff knows of say nothing
        // (zero MQLs there is no data, not a miss); the current week always shows.
        let this_week = starts.last().copied();
        let weeks_out: Vec<Week> = starts
            .into_iter()
            .zip(acc.into_iter().zip(detected))
            .filter(|(w, _)| Some(*w) == this_week || first_lead_at.is_some_and(|first| week_bounds(*w, tz).1 > first))
            .map(|(start, (groups, detected))| {
                let start = &start;
                let starts_at = local_midnight(*start, tz);
                let ends_at = local_midnight(*start + Duration::days(7), tz);
                let mut groups: BTreeMap<String, Metrics> = groups
                    .into_iter()
                    .map(|(k, a)| {
                        let mut m = a.m;
                        m.routing_minutes = Spread::of(a.routing_minutes);
                        m.first_touch_business_minutes = Spread::of(a.touch_minutes);
                        (k, m)
                    })
                    .collect();
                groups.entry("all".to_string()).or_default();
                let partial = now < ends_at;
                let elapsed = if partial {
                    ((now - starts_at).num_seconds() as f64 / (ends_at - starts_at).num_seconds() as f64)
                        .clamp(0.0, 1.0)
                } else {
                    1.0
                };
                let commitments = commitments(policy, &groups["all"], elapsed);
                let surges =
                    policy.surge.overlapping(starts_at, ends_at).map(|s| s.name.clone()).chain(detected).collect();
                Week { start: *start, starts_at, ends_at, partial, groups, commitments, surges }
            })
            .collect();
        Scorecard {
            instance: instance.to_string(),
            time_zone: tz.name().to_string(),
            generated_at: now,
            by,
            weeks: weeks_out,
            signals: None,
        }
    }
}

fn owner_label(owners: &HashMap<&str, &Owner>, id: &str) -> String {
    match owners.get(id).and_then(|o| o.name.as_deref()) {
        Some(name) => format!("{name} ({id})"),
        None => id.to_string(),
    }
}

/// The week's commitments, judged on the whole org. `elapsed` prorates the
/// volume targets of a week still running.
fn commitments(policy: &CompiledPolicy, m: &Metrics, elapsed: f64) -> Vec<Commitment> {
    let t = &policy.scorecard.targets;
    let share = |id: &str, side: Side, label: &str, target: f64, r: &Ratio| {
        let actual = r.rate();
        Commitment {
            id: id.to_string(),
            side,
            label: label.to_string(),
            target,
            actual,
            met: actual.map(|a| a + 1e-9 >= target),
            unit: Unit::Share,
        }
    };
    let mut out = Vec::new();
    for (grade, monthly) in &policy.marketing.monthly_volume {
        // Prorated: a month is 52/12 weeks.
        let target = (f64::from(*monthly) * 12.0 / 52.0 * elapsed * 10.0).round() / 10.0;
        let actual = m.mqls_by_grade.get(grade).copied().unwrap_or(0) as f64;
        out.push(Commitment {
            id: format!("marketing.volume.{grade}"),
            side: Side::Marketing,
            label: format!("{grade} MQLs delivered"),
            target,
            actual: Some(actual),
            met: Some(actual + 1e-9 >= target),
            unit: Unit::Count,
        });
    }
    out.push(share(
        "marketing.data_completeness",
        Side::Marketing,
        "data completeness",
        t.data_completeness,
        &m.data_completeness,
    ));
    out.push(share(
        "marketing.routing_in_window",
        Side::Marketing,
        "routed to a rep in time",
        t.routing_in_window,
        &m.routing_in_window,
    ));
    if let Some(min) = policy.marketing.min_acceptance_rate {
        out.push(share("marketing.acceptance", Side::Marketing, "MQLs accepted by sales (SAL)", min, &m.acceptance));
    }
    out.push(share(
        "sales.first_touch_in_window",
        Side::Sales,
        "first touch inside the window",
        t.first_touch_in_window,
        &m.first_touch_in_window,
    ));
    out.push(share(
        "sales.follow_up_completion",
        Side::Sales,
        "full cadence before closing",
        t.follow_up_completion,
        &m.follow_up_completion,
    ));
    out.push(share(
        "sales.disposition_in_window",
        Side::Sales,
        "dispositioned inside the window",
        t.disposition_in_window,
        &m.disposition_in_window,
    ));
    out.push(share(
        "sales.feedback_quality",
        Side::Sales,
        "rejections with an agreed reason code",
        t.feedback_quality,
        &m.feedback_quality,
    ));
    out
}

/// Output formats of `handoff report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Html,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

/// Renders `card` in `format`.
pub fn render(card: &Scorecard, format: Format) -> String {
    match format {
        Format::Table => render_table(card),
        Format::Csv => render_csv(card),
        Format::Json => serde_json::to_string_pretty(card)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .unwrap_or_default(),
        Format::Html => render_html(card),
    }
}

/// The scorecard of what `store` holds, read a slice of leads at a time.
pub fn from_store(
    instance: &str,
    policy: &CompiledPolicy,
    store: &crate::store::Store,
    weeks: usize,
    now: DateTime<Utc>,
    by: Option<Dimension>,
) -> Result<Scorecard, crate::store::StoreError> {
    let owners = store.owners()?;
    let mut tally = Tally::new(instance, policy, &owners, weeks, now, by);
    store.each_lead_with_state(|stored, state| tally.add(stored.into_engine(), state.as_ref()))?;
    Ok(tally.finish())
}

/// `handoff report`: from the state directory, or — while the daemon runs
/// and holds it — from the daemon's `/scorecard` endpoint.
/// What `handoff report` was asked for.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub config: std::path::PathBuf,
    /// Weeks shown, 1 to 52.
    pub weeks: usize,
    pub format: Format,
    pub by: Option<Dimension>,
    /// Write here instead of standard output.
    pub output: Option<std::path::PathBuf>,
    /// Judge as of this instant instead of now.
    pub at: Option<DateTime<Utc>>,
}

pub fn run_cli(args: &ReportOptions) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    let config = match crate::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(std::process::ExitCode::from(crate::exit::INVALID));
        }
    };
    anyhow::ensure!(
        (1..=52).contains(&args.weeks),
        "--weeks {} is out of range; use 1 to 52 (8 to 12 show a trend)",
        args.weeks
    );
    let text = match crate::store::Store::open(&config.instance.state_dir) {
        Ok(store) => {
            let now = args.at.unwrap_or_else(Utc::now);
            let mut card = from_store(&config.instance.name, &config.policy, &store, args.weeks, now, args.by)?;
            card.signals = Some(signals::signals_in_store(&config.policy, &store, &config.signals, now)?);
            render(&card, args.format)
        }
        Err(open_error) => match config.daemon.metrics_listen {
            Some(addr) => {
                let url = format!(
                    "http://{addr}/scorecard?weeks={}&format={}{}",
                    args.weeks,
                    format_name(args.format),
                    args.by.map(|b| format!("&by={}", dimension_name(b))).unwrap_or_default()
                );
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime
                    .block_on(async {
                        let resp = reqwest::get(&url).await?.error_for_status()?;
                        resp.text().await
                    })
                    .with_context(|| format!("the state directory is in use ({open_error}) and the running daemon did not answer {url}"))?
            }
            None => anyhow::bail!(
                "{open_error}. While the daemon runs it holds the state: set `daemon.metrics_listen` so `handoff report` can ask it, or stop it first"
            ),
        },
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("scorecard written to {}", path.display());
        }
        None => crate::output::emit(&text)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn format_name(f: Format) -> &'static str {
    match f {
        Format::Table => "table",
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Html => "html",
    }
}

pub fn dimension_name(d: Dimension) -> &'static str {
    match d {
        Dimension::Grade => "grade",
        Dimension::Source => "source",
        Dimension::Rep => "rep",
        Dimension::Team => "team",
        Dimension::Role => "role",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(nearest_rank(&v, 0.5), Some(5.0));
        assert_eq!(nearest_rank(&v, 0.9), Some(9.0));
        assert_eq!(nearest_rank(&[7.0], 0.9), Some(7.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn weeks_start_on_the_configured_day_in_the_reporting_zone() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // Monday 2026-03-02 03:00 UTC is still Sunday evening in New York.
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 3, 0, 0).unwrap();
        assert_eq!(week_start(at, tz, Weekday::Mon), NaiveDate::from_ymd_opt(2026, 2, 23).unwrap());
        assert_eq!(week_start(at, tz, Weekday::Sun), NaiveDate::from_ymd_opt(2026, 3, 1).unwrap());
        let later = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
        assert_eq!(week_start(later, tz, Weekday::Mon), NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
    }
}
