//! The SLA policy as written in the config file: lead definitions, grades,
//! sales and marketing commitments, escalation, calendars and the mapping
//! from canonical concepts to the CRM's field names.
//!
//! Two layers:
//! - the *file shape* ([`Policy`] and friends): serde types, unknown keys
//!   rejected, durations and operators still plain strings;
//! - the *compiled* policy ([`compile`] → [`CompiledPolicy`]): every string
//!   parsed ([`Window`], [`Cond`], [`Reminder`] …), every cross-reference
//!   checked, ready for the engine. Compilation reports every problem at
//!   once as [`Issue`]s naming the key path, the bad value and the fix.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

mod compile;
mod cond;
mod window;

pub use compile::{
    compile, After, CompiledCapacity, CompiledEscalation, CompiledLevel, CompiledMarketing, CompiledPolicy,
    CompiledScorecard, CompiledSegment, CompiledSurge, Detection, Enforcement, EscalationTarget, Overflow,
    Qualification, Reminder, SurgeSpan, MAX_CONDITION_DEPTH, MAX_CONDITION_NODES, MAX_ESCALATION_MULTIPLE,
    MAX_SURGE_PERIODS, SURGE_REASONS,
};
pub use cond::{is_set, parse_instant, Cond, CondValue, Op, Scalar, OP_SPELLINGS};
pub use window::{parse_window, Window, MAX_BUSINESS_DAYS, MAX_BUSINESS_SECS, MAX_WALL_CLOCK_SECS, WINDOW_FIX};

/// One problem in the config file: where, what was there, what is wrong and
/// how to fix it. Printed as one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// Key path, e.g. `policy.segments[1].first_touch.B`.
    pub path: String,
    /// The offending value as written (empty when the key is missing;
    /// `[redacted]` for secrets).
    pub value: String,
    /// What is wrong, in plain words.
    pub message: String,
    /// What to write instead.
    pub fix: String,
}

impl Issue {
    pub fn new(
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Issue {
        Issue { path: path.into(), value: value.into(), message: message.into(), fix: fix.into() }
    }
}

impl fmt::Display for Issue {
    /// One line, through the redactor: an issue quotes the file, and the
    /// file may hold a secret where it does not belong.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = if self.value.is_empty() {
            format!("{}: {}. Fix: {}", self.path, self.message, self.fix)
        } else {
            format!("{} = {}: {}. Fix: {}", self.path, self.value, self.message, self.fix)
        };
        f.write_str(&handoff_model::redact(&line))
    }
}

/// Everything the engine needs to judge a lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Bumped by the operator when the agreed SLA changes; part of every
    /// action key, so a new version may act again on an old lead.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Which CRM fields hold the canonical concepts.
    pub fields: FieldMap,
    /// Which status values mean what.
    pub statuses: StatusMap,
    /// The fixed list of disposition reason codes, as stored in the CRM.
    pub reason_codes: Vec<String>,
    /// Named calendars; owners are linked to one in `owners`.
    pub calendars: BTreeMap<String, CalendarSpec>,
    #[serde(default)]
    pub owners: OwnerSettings,
    /// MQL definition: fit and intent criteria, score, disqualifiers.
    pub definitions: Definitions,
    /// Grades in order; the first whose rule matches is the lead's grade.
    pub grades: Vec<GradeRule>,
    /// Sales commitments, per segment (inbound, outbound …). The first
    /// segment whose `applies_to` matches is used; one must match all
    /// (no `applies_to`), and it must be last.
    pub segments: Vec<Segment>,
    pub marketing: MarketingCommitments,
    pub escalation: EscalationLadder,
    #[serde(default)]
    pub scorecard: ScorecardSettings,
    /// Declared surges (events, launches, campaigns) and the relaxed windows
    /// for leads that arrive during one.
    #[serde(default)]
    pub surge: SurgeProtocol,
    /// How many new MQLs a rep takes a business day, and where the excess
    /// goes.
    #[serde(default)]
    pub capacity: CapacityPolicy,
}

/// Caps on the new MQLs a rep receives per business day. A lead counts
/// for the rep who holds it when its first-touch clock starts, on the
/// business day (in that rep's calendar and zone) it starts counting; leads
/// are counted in the order handoff first judges them, and a lead is
/// counted once per MQL. What happens to a lead above its rep's cap is
/// `overflow`'s choice, taken once and kept (`handoff explain` shows it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityPolicy {
    /// The cap of every rep not in `per_owner`; unset: no cap.
    #[serde(default)]
    pub new_mqls_per_day: Option<u32>,
    /// Caps of named reps (owner id to cap), over `new_mqls_per_day`.
    #[serde(default)]
    pub per_owner: BTreeMap<String, u32>,
    /// `pool`: the excess goes to `pool`; `least_loaded`: to the rep of
    /// `group` with the fewest new MQLs that day who is under their cap
    /// and not away (else to `pool` when set, else it stays); `relax`: it
    /// stays with its rep, whose first touch of it gets `first_touch`'s
    /// window for its grade.
    #[serde(default)]
    pub overflow: Option<String>,
    /// Owner id (a queue or a user) the excess goes to.
    #[serde(default)]
    pub pool: Option<String>,
    /// Reps who share each other's excess (owner ids), for `least_loaded`.
    #[serde(default)]
    pub group: Vec<String>,
    /// Relaxed first-touch windows by grade for `relax`; a grade not
    /// listed keeps its segment's window.
    #[serde(default)]
    pub first_touch: BTreeMap<String, String>,
}

/// The surge protocol: periods when inbound volume is known to exceed what
/// reps can take, and the first-touch windows that apply instead to leads
/// whose clock starts inside one. The scorecard marks the weeks they touch
/// and keeps their first touches apart from the commitment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurgeProtocol {
    /// Relaxed first-touch windows by grade; a grade not listed keeps its
    /// segment's window.
    #[serde(default)]
    pub first_touch: BTreeMap<String, String>,
    #[serde(default)]
    pub periods: Vec<SurgePeriod>,
    /// Surges handoff detects itself from the arrivals it counts.
    #[serde(default)]
    pub detect: Option<SurgeDetection>,
}

/// A detected surge: new MQLs arriving faster than `mqls_per_hour` (counted
/// over the hour up to each arrival, across the org). It lasts while they
/// do and `cool_down_minutes` after the last arrival that did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurgeDetection {
    pub mqls_per_hour: u32,
    #[serde(default = "default_cool_down_minutes")]
    pub cool_down_minutes: u32,
}

fn default_cool_down_minutes() -> u32 {
    60
}

/// One declared surge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurgePeriod {
    pub name: String,
    /// `event`, `launch`, `campaign` or `other`.
    pub reason: String,
    /// The first day (`YYYY-MM-DD`, in the default calendar's zone) or an
    /// instant (RFC 3339).
    pub from: String,
    /// The last day, included (`YYYY-MM-DD`), or an instant, excluded.
    pub to: String,
}

fn default_version() -> u32 {
    1
}

/// CRM field names for the concepts the engine reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    /// Lead status (`Status` / `hs_lead_status`).
    pub status: String,
    /// Lead source (`LeadSource` / `hs_analytics_source`).
    pub source: String,
    /// Marketing score, if scoring is used.
    #[serde(default)]
    pub score: Option<String>,
    /// Disposition reason code.
    pub reason_code: String,
    /// When the lead became an MQL; absent: the lead's creation time.
    #[serde(default)]
    pub mql_at: Option<String>,
    /// The follow-up date of a deferred lead (needed when
    /// `statuses.deferred` lists any status).
    #[serde(default)]
    pub follow_up_at: Option<String>,
    /// Where handoff writes its SLA state back.
    pub sla: SlaFields,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaFields {
    pub grade: String,
    pub due_at: String,
    pub status: String,
    pub breach_count: String,
}

/// Status values (as the CRM stores them) by meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusMap {
    /// New, not yet worked.
    pub open: Vec<String>,
    /// Being worked (a status change to one of these is NOT a touch).
    #[serde(default)]
    pub working: Vec<String>,
    /// Sales accepted (SAL).
    pub accepted: Vec<String>,
    /// Sales rejected (needs a reason code).
    pub rejected: Vec<String>,
    /// Closed as unresponsive (needs the full cadence and a reason code).
    pub closed_unresponsive: Vec<String>,
    /// Converted / opportunity created.
    #[serde(default)]
    pub converted: Vec<String>,
    /// Deferred with a follow-up date (`fields.follow_up_at`): a
    /// disposition; the cadence rests until the follow-up date and resumes then.
    #[serde(default)]
    pub deferred: Vec<String>,
    /// Held for nurture by marketing: no sales obligation while the lead
    /// has one of these statuses (its clocks are waived, with the status as
    /// the reason).
    #[serde(default)]
    pub nurture: Vec<String>,
}

/// A calendar in the file: zone, weekly hours, holidays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// IANA zone, e.g. "America/New_York".
    pub time_zone: String,
    /// Weekly hours: day name ("mon" … "sun") to a list of "HH:MM-HH:MM"
    /// windows; a window whose end is not after its start runs past midnight.
    pub hours: BTreeMap<String, Vec<String>>,
    /// Closed dates "YYYY-MM-DD", optionally with a name: "2026-12-25 Christmas".
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// How owners map to calendars and managers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerSettings {
    /// Calendar used when nothing more specific applies (defaults to the
    /// only calendar when there is one).
    #[serde(default)]
    pub default_calendar: Option<String>,
    /// Calendar per owner id.
    #[serde(default)]
    pub calendar_by_owner: BTreeMap<String, String>,
    /// Read weekly hours in the owner's own time zone when the CRM knows it.
    #[serde(default = "default_true")]
    pub use_owner_time_zone: bool,
    /// Manager per owner id, for CRMs without a manager field (HubSpot),
    /// or to override the CRM's.
    #[serde(default)]
    pub managers: BTreeMap<String, String>,
    /// Queue id to the user who answers for the leads that queue holds (its
    /// intake seat): they get those leads' reminders and escalations, on
    /// their own calendar. A queue without a seat pauses the clocks of a
    /// lead it takes from a rep until a user owns the lead again.
    #[serde(default)]
    pub intake_seats: BTreeMap<String, String>,
    /// Days each owner is away (leave, holidays of their own), by owner id:
    /// `"YYYY-MM-DD"` or `"YYYY-MM-DD..YYYY-MM-DD"` (both days included),
    /// read on the owner's calendar in their zone. Their clocks do not run
    /// on those days, as on the calendar's holidays.
    #[serde(default)]
    pub time_off: BTreeMap<String, Vec<String>>,
    /// What becomes of a new MQL that reaches a rep on time off (it arrives
    /// on a day off, or after hours before one): `pause` (the default: their
    /// clocks wait for them) or `reassign` (it goes to `away_fallback`, once).
    #[serde(default)]
    pub when_away: Option<String>,
    /// Owner id (a queue or a user) new leads go to while their rep is away,
    /// with `when_away = "reassign"`.
    #[serde(default)]
    pub away_fallback: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A condition over lead fields. In TOML:
/// `{ field = "NumberOfEmployees", op = ">=", value = 25 }`,
/// `{ all = [ … ] }`, `{ any = [ … ] }`, `{ not = { … } }`,
/// `{ criteria = "fit" }` (a named criterion from `definitions.criteria`).
///
/// Deserialized by hand rather than as an untagged enum, so a mistake gets a
/// message that says which keys were expected instead of "did not match any
/// variant".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Condition {
    All { all: Vec<Condition> },
    Any { any: Vec<Condition> },
    Not { not: Box<Condition> },
    Criteria { criteria: String },
    Field(FieldTest),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldTest {
    /// CRM field API name (any field, custom ones included).
    pub field: String,
    /// One of `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `contains`,
    /// `is set`, `is not set`.
    pub op: String,
    /// Absent for `is set` / `is not set`; a list for `in` / `not in`.
    #[serde(default)]
    pub value: Option<toml::Value>,
}

const CONDITION_SHAPES: &str = "write `{ field = \"Name\", op = \"=\", value = … }`, \
`{ all = [ … ] }`, `{ any = [ … ] }`, `{ not = { … } }` or `{ criteria = \"name\" }`";

impl Condition {
    /// Reads a condition from its TOML form. The error names the place
    /// inside the condition (`all[1].not`) and what was expected.
    pub fn from_toml(value: &toml::Value) -> Result<Condition, String> {
        Self::from_toml_at(value, "")
    }

    fn from_toml_at(value: &toml::Value, at: &str) -> Result<Condition, String> {
        let here = |msg: String| if at.is_empty() { msg } else { format!("at `{at}`: {msg}") };
        let join = |key: &str| if at.is_empty() { key.to_string() } else { format!("{at}.{key}") };
        let table = value
            .as_table()
            .ok_or_else(|| here(format!("expected a table, found {}. Fix: {CONDITION_SHAPES}", value.type_str())))?;
        let keys: Vec<&str> = table.keys().map(String::as_str).collect();
        let list = |key: &str, v: &toml::Value| -> Result<Vec<Condition>, String> {
            let items = v.as_array().ok_or_else(|| {
                here(format!("`{key}` must be a list of conditions. Fix: write `{key} = [ {{ … }}, {{ … }} ]`"))
            })?;
            items.iter().enumerate().map(|(i, item)| Self::from_toml_at(item, &format!("{}[{i}]", join(key)))).collect()
        };
        match keys.as_slice() {
            ["all"] => Ok(Condition::All { all: list("all", &table["all"])? }),
            ["any"] => Ok(Condition::Any { any: list("any", &table["any"])? }),
            ["not"] => Ok(Condition::Not { not: Box::new(Self::from_toml_at(&table["not"], &join("not"))?) }),
            ["criteria"] => match &table["criteria"] {
                toml::Value::String(name) => Ok(Condition::Criteria { criteria: name.clone() }),
                other => Err(here(format!("`criteria` must be a name, found {}", other.type_str()))),
            },
            _ if table.contains_key("field") || table.contains_key("op") => {
                let unknown: Vec<&str> =
                    keys.iter().copied().filter(|k| !matches!(*k, "field" | "op" | "value")).collect();
                if !unknown.is_empty() {
                    return Err(here(format!(
                        "unknown key(s) {} in a field test. Fix: a test has only `field`, `op` and `value`",
                        unknown.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    )));
                }
                let text = |key: &str| -> Result<String, String> {
                    match table.get(key) {
                        Some(toml::Value::String(s)) => Ok(s.clone()),
                        Some(other) => Err(here(format!("`{key}` must be a string, found {}", other.type_str()))),
                        None => Err(here(format!("a field test needs `{key}`"))),
                    }
                };
                Ok(Condition::Field(FieldTest {
                    field: text("field")?,
                    op: text("op")?,
                    value: table.get("value").cloned(),
                }))
            }
            _ => Err(here(format!(
                "keys {} do not form a condition. Fix: {CONDITION_SHAPES}",
                if keys.is_empty() {
                    "(none)".to_string()
                } else {
                    keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                }
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        Condition::from_toml(&value).map_err(serde::de::Error::custom)
    }
}

/// The MQL definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    /// Named criteria, referenced by `{ criteria = "name" }`. By convention
    /// `fit` (firmographics) and `intent` (behaviour).
    pub criteria: BTreeMap<String, Condition>,
    /// The MQL rule (typically `{ all = [{criteria="fit"}, {criteria="intent"}] }`
    /// or `{ any = … }` to let C leads in on intent alone).
    pub mql: Condition,
    /// Minimum score (on `fields.score`) to be an MQL.
    #[serde(default)]
    pub min_score: Option<f64>,
    /// Named disqualifiers; any match makes the lead not an MQL, whatever else.
    #[serde(default)]
    pub disqualifiers: BTreeMap<String, Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeRule {
    /// "A", "B", "C" …
    pub name: String,
    /// Plain words for reports and explain output.
    #[serde(default)]
    pub description: Option<String>,
    pub when: Condition,
}

/// Sales commitments for one segment of leads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub name: String,
    /// Which leads it covers; absent on the final catch-all segment.
    #[serde(default)]
    pub applies_to: Option<Condition>,
    /// `"mql"` (default), `"assignment"` or `"acceptance"`: the clocks start
    /// at the MQL time, at assignment to a user, or at SAL acceptance (an AE
    /// segment: "first outreach within 4 business hours of acceptance"),
    /// never before the lead qualified.
    #[serde(default)]
    pub clock_start: ClockStart,
    /// What a reassignment to another user does to every running sales
    /// clock: `"restart"` (a fresh window from the reassignment) or
    /// `"continue"` (default: the clock keeps its start, now on the new
    /// owner's calendar and in their inbox).
    #[serde(default)]
    pub on_reassign: OnReassign,
    /// Whose touches count: `"owner"` (default) or `"anyone"`.
    #[serde(default)]
    pub touch_by: TouchBy,
    /// Which logged activities count as a touch (default: call, email,
    /// meeting). A status change never does.
    #[serde(default = "default_touch_kinds")]
    pub touch_kinds: Vec<handoff_model::ActivityKind>,
    /// Whether activities the CRM marks as automated (sequence, cadence,
    /// workflow or list emails) count as touches. Default: they do not.
    #[serde(default)]
    pub automated_touches: bool,
    /// First touch per grade: grade name to a duration such as
    /// "1 business hour", "same business day", "48 business hours",
    /// "2 business days", "24 hours" (wall clock).
    pub first_touch: BTreeMap<String, String>,
    /// Accept/reject decision after assignment, e.g. "48 business hours".
    #[serde(default)]
    pub sal_decision: Option<String>,
    /// The AE's commitment: a discovery meeting booked (a meeting on the
    /// lead, logged or started) within this of SAL acceptance.
    #[serde(default)]
    pub discovery_within: Option<String>,
    /// The AE's commitment: the opportunity created (the lead converted)
    /// within this of SAL acceptance.
    #[serde(default)]
    pub opportunity_within: Option<String>,
    pub cadence: Cadence,
    pub disposition: Disposition,
}

fn default_touch_kinds() -> Vec<handoff_model::ActivityKind> {
    use handoff_model::ActivityKind;
    vec![ActivityKind::Call, ActivityKind::Email, ActivityKind::Meeting]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockStart {
    #[default]
    Mql,
    Assignment,
    Acceptance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnReassign {
    Restart,
    #[default]
    Continue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TouchBy {
    #[default]
    Owner,
    Anyone,
}

/// At least `touches` logged touches across `business_days` business days
/// before a lead may be closed as unresponsive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cadence {
    pub touches: u32,
    pub business_days: u32,
}

/// Every MQL dispositioned (accepted, rejected, deferred, converted or
/// closed) within `within`, e.g. "3 business days". A rejection or close
/// also owes an agreed reason code within `reason_code_grace` of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disposition {
    pub within: String,
    /// How long after a rejection or close the reason code may follow
    /// before the lead is flagged (default "24 hours").
    #[serde(default = "default_reason_code_grace")]
    pub reason_code_grace: String,
}

fn default_reason_code_grace() -> String {
    "24 hours".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketingCommitments {
    /// Fields every MQL must carry; a lead missing one is waived (no sales
    /// obligation) with the missing fields as the reason.
    pub required_fields: Vec<String>,
    /// MQL to assigned to a user (not a queue), e.g. "5 minutes".
    pub routing_within: String,
    /// MQLs per month by grade.
    #[serde(default)]
    pub monthly_volume: BTreeMap<String, u32>,
    /// Minimum share of MQLs sales accepts (0–1).
    #[serde(default)]
    pub min_acceptance_rate: Option<f64>,
}

/// Reminder before a due time, then escalation rungs after a breach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLadder {
    /// When to remind the owner: a share of the window elapsed ("75%") or a
    /// duration before the due time ("15 business minutes").
    pub remind_at: String,
    /// Rungs in order. The first fires at the breach.
    pub levels: Vec<EscalationLevel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    /// After the due time: "0" (at the breach), a duration, or a multiple of
    /// the window ("2x": once twice the window has passed since the start).
    pub after: String,
    /// `"manager"` (the owner's manager), `"manager.manager"` (the next
    /// level), or `"pool:ID"` (reassign the lead to a queue/user ID).
    pub to: String,
}

/// Weekly scorecard escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardSettings {
    /// A side missing the same commitment this many weeks running raises one escalation.
    #[serde(default = "default_weeks")]
    pub consecutive_weeks: u32,
    /// Owner ids of the leaders who get the escalation task.
    #[serde(default)]
    pub notify: Vec<String>,
    /// First day of the reporting week.
    #[serde(default = "default_week_start")]
    pub week_starts: String,
    /// The share each commitment must reach in a week (0–1). Marketing's
    /// volume comes from `marketing.monthly_volume` and its acceptance rate
    /// from `marketing.min_acceptance_rate`.
    #[serde(default)]
    pub targets: ScorecardTargets,
}

impl Default for ScorecardSettings {
    fn default() -> Self {
        ScorecardSettings {
            consecutive_weeks: default_weeks(),
            notify: Vec::new(),
            week_starts: default_week_start(),
            targets: ScorecardTargets::default(),
        }
    }
}

/// Weekly targets, as shares (the defaults are the usual benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardTargets {
    /// First touches inside the window, of first-touch clocks decided that week.
    #[serde(default = "default_first_touch_target")]
    pub first_touch_in_window: f64,
    /// Leads closed as unresponsive only after the full cadence.
    #[serde(default = "default_follow_up_target")]
    pub follow_up_completion: f64,
    /// Dispositions inside the window (with an agreed reason code).
    #[serde(default = "default_disposition_target")]
    pub disposition_in_window: f64,
    /// Rejections carrying an agreed reason code.
    #[serde(default = "default_feedback_target")]
    pub feedback_quality: f64,
    /// Required fields populated, averaged over the week's MQLs.
    #[serde(default = "default_completeness_target")]
    pub data_completeness: f64,
    /// MQLs given to a user inside `marketing.routing_within`.
    #[serde(default = "default_routing_target")]
    pub routing_in_window: f64,
}

impl Default for ScorecardTargets {
    fn default() -> Self {
        ScorecardTargets {
            first_touch_in_window: default_first_touch_target(),
            follow_up_completion: default_follow_up_target(),
            disposition_in_window: default_disposition_target(),
            feedback_quality: default_feedback_target(),
            data_completeness: default_completeness_target(),
            routing_in_window: default_routing_target(),
        }
    }
}

fn default_first_touch_target() -> f64 {
    0.9
}

fn default_follow_up_target() -> f64 {
    0.9
}

fn default_disposition_target() -> f64 {
    0.95
}

fn default_feedback_target() -> f64 {
    1.0
}

fn default_completeness_target() -> f64 {
    0.95
}

fn default_routing_target() -> f64 {
    0.95
}

fn default_weeks() -> u32 {
    2
}

fn default_week_start() -> String {
    "mon".to_string()
}
