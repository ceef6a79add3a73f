//! The synthetic org: who works there, which leads arrive, and what the reps
//! do with them — a deterministic timeline generated from a seed.
//!
//! The org is CRM-neutral. Each emulator materialises the timeline into its
//! own records as the simulated clock passes each event's time (so a test
//! that advances the clock by a day sees a day of new leads and touches),
//! naming fields and ids the way its CRM does.
//!
//! Because the rep behaviours are chosen here and recorded on each user and
//! lead, tests can derive the expected SLA outcomes from the org itself,
//! independently of handoff's engine.

use chrono::{DateTime, NaiveDate, Utc};
use handoff_model::{ActivityKind, BusinessCalendar};
use serde::{Deserialize, Serialize};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgConfig {
    pub seed: u64,
    pub leads: usize,
    /// Days the timeline spans, starting at `start_at`.
    pub days: u32,
    /// First instant of the timeline (a Monday 00:00 UTC is a good choice).
    pub start_at: DateTime<Utc>,
    /// How the reps work (the default mix, or an org shaped to trip or to
    /// stay clear of the calibration signals).
    #[serde(default)]
    pub profile: OrgProfile,
    /// `Some(n)`: add follow-up activities to closed leads until the org
    /// averages about `n` logged activities per lead (real orgs log several
    /// per lead; the reps' SLA work alone gives about 1.7). The extra
    /// touches come after the lead's final status (rejected, closed or
    /// converted), by its last owner, so no SLA outcome changes, and they
    /// are drawn from a stream of their own, so the rest of the org is the
    /// same as without them. `None` (the default) adds none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activities_per_lead: Option<u32>,
    /// A campaign spike: extra leads arriving on one day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike: Option<Spike>,
    /// Reps on leave: they touch nothing on those days (a lead's work that
    /// fell there waits for their return), and the org lists the days in
    /// [`SyntheticOrg::time_off`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leave: Vec<Leave>,
    /// The AE's side: account executives join the org (one per region,
    /// [`SynthUser::ae`]); every conversion creates an opportunity (a
    /// Salesforce `Opportunity`, a HubSpot deal) owned by the AE of the
    /// rep's region, and most get a discovery meeting logged on the
    /// opportunity a few working days later. Drawn from a stream of their
    /// own: the rest of the org is the same as without them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub opportunities: bool,
}

/// Extra leads arriving on one day of the timeline, in the US working
/// hours (14:00–20:00 UTC), on top of `OrgConfig::leads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spike {
    /// Days after `start_at` (0: the first day).
    pub day: u32,
    pub leads: usize,
}

/// A rep's leave: `days` days from `from_day` days after `start_at`, on
/// the rep's own dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leave {
    /// Which rep: the n-th user who works leads.
    pub rep: usize,
    pub from_day: u32,
    pub days: u32,
}

/// The shape of an org's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgProfile {
    /// Every rep behaviour in a fixed mix (the default).
    #[default]
    Mixed,
    /// Built to trip every calibration signal: every rep touches at once
    /// and decides the next working day; 7 in 8 qualified leads accepted,
    /// every rejection "wrong_persona"; queue routing always late.
    Calibrated,
    /// Built to trip none: the same quick reps, but every fourth week
    /// (New York) they touch a working day late; 3 in 10 leads rejected,
    /// with the week's reason code rotating; routing in time.
    Steady,
}

impl OrgConfig {
    /// The instant the timeline ends (`start_at + days`).
    pub fn end_at(&self) -> DateTime<Utc> {
        self.start_at + chrono::Duration::days(i64::from(self.days))
    }
}

impl Default for OrgConfig {
    /// 1,000 leads over 30 days from Monday 2026-03-02 00:00 UTC, seed 42.
    fn default() -> Self {
        OrgConfig {
            seed: 42,
            leads: 1_000,
            days: 30,
            start_at: DateTime::from_timestamp(1_772_409_600, 0).unwrap_or_default(),
            profile: OrgProfile::Mixed,
            activities_per_lead: None,
            spike: None,
            leave: Vec::new(),
            opportunities: false,
        }
    }
}

/// How a rep works their leads. Chosen per user from the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepBehaviour {
    /// First touch well inside every window, full cadence, reason codes always.
    Fast,
    /// First touch after the window (breaches), otherwise diligent.
    Slow,
    /// Never touches; leads sit until escalated.
    Never,
    /// Touches quickly but stops before the cadence is complete and closes
    /// leads as unresponsive too early.
    StopsEarly,
    /// Rejects leads, often without a reason code.
    SloppyRejecter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthUser {
    /// Index into [`SyntheticOrg::users`]; emulators derive CRM ids from it.
    pub index: usize,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    /// IANA zone.
    pub time_zone: String,
    /// Index of the manager in `users` (managers have managers, up to a VP).
    pub manager: Option<usize>,
    pub team: String,
    /// `None` for managers and AEs, who do not work new leads.
    pub behaviour: Option<RepBehaviour>,
    /// An account executive: owns opportunities, never leads
    /// ([`OrgConfig::opportunities`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ae: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthQueue {
    pub index: usize,
    pub name: String,
}

/// Who owns a lead at some point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "index", rename_all = "snake_case")]
pub enum OwnerRef {
    User(usize),
    Queue(usize),
}

/// The grade the generator intended (ground truth for grading tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IntendedGrade {
    A,
    B,
    C,
    /// Below the MQL bar (disqualified or too weak).
    None,
}

/// A lead's static attributes at arrival. Fields a lead lacks (incomplete
/// data) are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthLead {
    pub index: usize,
    pub first_name: String,
    pub last_name: Option<String>,
    pub email: String,
    pub company: Option<String>,
    pub title: Option<String>,
    pub employees: Option<u32>,
    pub industry: Option<String>,
    /// ISO 3166 alpha-2.
    pub country: Option<String>,
    pub phone: Option<String>,
    /// "Web", "Demo Request", "Content Download", "Event", "Outbound" …
    pub source: String,
    /// The intent action that made it an MQL: "demo_request", "pricing_view",
    /// "content_download", "webinar", "none".
    pub intent_action: String,
    /// Marketing's lead score, 0–100.
    pub score: u32,
    pub intended_grade: IntendedGrade,
    /// Whether every field the example policy requires is present.
    pub complete: bool,
}

/// A lead's status, CRM-neutral. Emulators map it to their picklists
/// (Salesforce `Status`, HubSpot `hs_lead_status` / `lifecyclestage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LeadStatus {
    New,
    Working,
    /// Sales accepted (SAL).
    Accepted,
    /// Sales rejected; `reason` is one of the policy's reason codes, or
    /// `None` when the rep gave none.
    Rejected {
        reason: Option<String>,
    },
    /// Closed as unresponsive after follow-up.
    ClosedUnresponsive {
        reason: Option<String>,
    },
    /// Converted to an opportunity.
    Converted,
}

/// Something that happens in the org at [`OrgEvent::at`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The lead enters the CRM, owned by `owner`.
    LeadCreated { lead: usize, owner: OwnerRef },
    /// The lead moves to another owner.
    Assigned { lead: usize, owner: OwnerRef },
    /// A logged call, email or meeting by `by` (normally the owner).
    /// `automated`: sent by a sequence or list email on the rep's behalf
    /// (the CRM marks it so: Salesforce `TaskSubtype = ListEmail`, HubSpot
    /// `hs_sequence_id`), not a touch the rep made.
    Touch {
        lead: usize,
        by: usize,
        kind: ActivityKind,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        automated: bool,
    },
    /// The status field changes (without any activity being logged).
    StatusChanged { lead: usize, status: LeadStatus },
    /// The lead's opportunity is created, owned by the AE `owner` (a user
    /// index): Salesforce's conversion makes an `Opportunity` (the lead's
    /// `ConvertedOpportunityId`), HubSpot a deal associated with the
    /// contact. Comes at the instant of the lead's `Converted` status.
    OpportunityCreated { lead: usize, owner: usize },
    /// A meeting logged on the lead's opportunity (not on the lead) by
    /// `by`: Salesforce an `Event` whose `WhatId` is the opportunity,
    /// HubSpot a meeting associated with the deal only.
    OpportunityMeeting { lead: usize, by: usize },
    /// Deleted (Salesforce recycle bin / HubSpot archive).
    Deleted { lead: usize },
    /// `lead` merged into `into`, which survives.
    Merged { lead: usize, into: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgEvent {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The whole generated org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticOrg {
    pub config: OrgConfig,
    pub users: Vec<SynthUser>,
    pub queues: Vec<SynthQueue>,
    /// The org's default business hours and holidays (and regional ones).
    pub calendars: Vec<BusinessCalendar>,
    pub leads: Vec<SynthLead>,
    /// Sorted by `at` (ties keep generation order).
    pub events: Vec<OrgEvent>,
    /// Reps' days away (`OrgConfig::leave`): user index, first and last day
    /// (both included) in the rep's zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_off: Vec<(usize, NaiveDate, NaiveDate)>,
}

/// How far an emulator has applied the org timeline. Emulators keep one and
/// call [`TimelineCursor::due`] before each request, so materialising costs
/// only the events that became due since the last request, never a scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineCursor {
    next: usize,
}

impl TimelineCursor {
    /// The events with `at <= now` not handed out before, in timeline order;
    /// marks them applied.
    pub fn due<'a>(&mut self, org: &'a SyntheticOrg, now: DateTime<Utc>) -> &'a [OrgEvent] {
        let start = self.next.min(org.events.len());
        let end = start + org.events[start..].partition_point(|e| e.at <= now);
        self.next = end;
        &org.events[start..end]
    }

    /// How many events have been applied.
    pub fn applied(&self) -> usize {
        self.next
    }
}
