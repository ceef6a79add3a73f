//! The weekly scorecard against an oracle: every number of every week of a
//! simulated month — MQLs by grade, data completeness, routing in window
//! and its median, MQL→SAL acceptance, speed to first touch (median, p90),
//! first touch in window, follow-up completion, disposition in window,
//! feedback quality, rejection reasons, lead→opportunity by grade, and each
//! week's commitments — as handoff's report computes it from what the
//! daemon holds, must equal the number derived here from the generated
//! org's ground truth, for the whole org and broken down by grade and by rep.
//!
//! The oracle never calls handoff's engine, calendar, policy or report code.
//! It reads the policy off `config/demo.toml` by hand (the first test pins
//! every value it relies on), grades leads from their attributes, rebuilds
//! each lead's history from the org's timeline (`LeadCreated`, `Assigned`,
//! `Touch`, `StatusChanged`, `Deleted`, `Merged`) plus the writes handoff
//! itself made to the CRM (its pool reassignments change who owns a lead,
//! read from the sandbox's request log), and measures business time by brute
//! force: a table of every UTC minute saying whether a rep in a given zone
//! is at their desk (Mon–Fri 09:00–17:00 local, minus the default
//! calendar's holidays on the rep's own local dates).
//!
//! The rules the oracle implements by hand include the ones a rep and a
//! manager would dispute: a status change is never a touch (acceptance
//! included), and neither is a sequence email; a lead rejected, closed or
//! converted before any touch and before its due time has its first-touch
//! obligation *ended* — left out of "first touch inside the window" and
//! counted on its own; a rejection inside the disposition window meets it
//! whatever its reason code, and the code is judged for feedback quality
//! 24 hours (the default grace) after the rejection; a lead moved to the
//! pool by handoff's ladder pauses its clocks (a decision while paused is
//! in time, no decision is no outcome).
//!
//! # What the daemon can know
//!
//! Salesforce keeps no ownership or status history the connector reads, so
//! the daemon dates each change at the `SystemModstamp` of the first pull
//! that shows it. The real daemon polls every `sync.interval_secs` (5 s);
//! the simulation cannot tick that often, so it stops the clock at its
//! step, at every deadline the daemon has, and a moment (the lag plus a
//! second) after every org event and after every write handoff makes to a
//! lead — where a 5 s poller would have looked — which gives the daemon a
//! 5 s poller's view. Even then a change would be dated wrongly if the lead
//! were modified again before any pull saw it (two changes inside the lag,
//! or one of handoff's own writes racing it). So the oracle works out, from
//! the timeline, the instants the daemon ticked at and the writes in the
//! request log, which leads' histories a poller could have seen exactly,
//! and compares the history-dependent metrics on those leads only (handoff's
//! report is run over the same subset). Metrics that need no history (MQL
//! volume, data completeness, the opportunity cohort) are compared on the
//! whole org. The test prints which leads were left out (none, with this
//! org) and fails if more than one in twenty are, so the restriction
//! cannot hollow the comparison out. A conversion is dated by
//! `ConvertedDate`, a date only; every conversion here follows an
//! acceptance, which is what the metrics read, and a lead converted without
//! one would be left out too.
//!
//! The org (seed 33) ends with two MQLs still waiting in the inbound queue,
//! whose routing breach must count in the week it fell due although no
//! rep, touch or status change ever makes the daemon look at them again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use handoff::demo::{SimOptions, Simulation};
use handoff::report::{Dimension, Metrics, Ratio, Scorecard, Spread};
use handoff::store::StoredLead;
use handoff_model::{ActivityKind, CrmKind};
use handoff_sandbox::org::{EventKind, LeadStatus, OwnerRef, SynthLead, SynthUser, SyntheticOrg};
use handoff_sandbox::salesforce::materialise::{lead_id, lead_status, queue_id, user_id};
use handoff_sandbox::LoggedRequest;
use serde_json::Value;

// ---------------------------------------------------------------------------
// The policy, as config/demo.toml states it (pinned by `the_oracle_implements_the_demo_policy`).
// ---------------------------------------------------------------------------

/// `sync.lag_secs`: a pull at `now` reads changes up to `now - lag`.
const LAG_SECS: i64 = 2;
const REPORTING_ZONE: Tz = chrono_tz::America::New_York;
const REASON_CODES: [&str; 7] = [
    "wrong_persona",
    "no_budget",
    "bad_timing",
    "bad_contact_data",
    "already_customer",
    "competitor",
    "did_not_meet_criteria",
];
/// `marketing.required_fields`, in order.
const REQUIRED_FIELDS: [&str; 8] =
    ["FirstName", "LastName", "Company", "Title", "Email", "Phone", "LeadSource", "Lead_Score__c"];
const MIN_SCORE: u32 = 50;
/// `marketing.routing_within = "5 minutes"` (wall clock).
const ROUTING_SECS: i64 = 5 * 60;
const CADENCE_TOUCHES: usize = 6;
const CADENCE_DAYS: usize = 10;
/// `disposition.within = "3 business days"`.
const DISPOSITION_DAYS: u32 = 3;
const OUTBOUND_SOURCES: [&str; 2] = ["Outbound", "Purchased List"];
/// `marketing.monthly_volume`.
const MONTHLY_VOLUME: [(&str, u32); 2] = [("A", 40), ("B", 80)];
/// `marketing.min_acceptance_rate = 0.6`, and the scorecard's targets in
/// percent: demo.toml sets none, so the SLA template's defaults hold.
const ACCEPTANCE_PCT: u64 = 60;
const TARGET_PCT: [(&str, u64); 6] = [
    ("marketing.data_completeness", 95),
    ("marketing.routing_in_window", 95),
    ("sales.first_touch_in_window", 90),
    ("sales.follow_up_completion", 90),
    ("sales.disposition_in_window", 95),
    ("sales.feedback_quality", 100),
];

/// A first-touch window of the inbound segment.
#[derive(Debug, Clone, Copy)]
enum Window {
    /// "N business hours": this many seconds of desk time.
    BusinessSecs(i64),
    /// "same business day" (0), "next business day" (1), "N business days":
    /// the close of the Nth business day after the one the clock starts in.
    DayClose(u32),
}

/// `[[policy.segments]] name = "inbound"`, `first_touch`.
fn first_touch_window(grade: &str) -> Window {
    match grade {
        "A" => Window::BusinessSecs(3600),
        "B" => Window::DayClose(0),
        "C" => Window::BusinessSecs(48 * 3600),
        other => panic!("the inbound segment has no first-touch window for grade {other}"),
    }
}

/// What a Salesforce `Status` means under `[policy.statuses]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Open,
    Working,
    Accepted,
    Rejected,
    Closed,
    Converted,
}

impl Class {
    fn of(s: &LeadStatus) -> Class {
        match s {
            LeadStatus::New => Class::Open,
            LeadStatus::Working => Class::Working,
            LeadStatus::Accepted => Class::Accepted,
            LeadStatus::Rejected { .. } => Class::Rejected,
            LeadStatus::ClosedUnresponsive { .. } => Class::Closed,
            LeadStatus::Converted => Class::Converted,
        }
    }

    fn is_decision(self) -> bool {
        matches!(self, Class::Accepted | Class::Rejected | Class::Closed | Class::Converted)
    }
}

fn agreed(code: &str) -> bool {
    REASON_CODES.contains(&code)
}

/// `[policy.definitions]`: no disqualifier, score at least 50, some intent.
fn meets_mql_rule(l: &SynthLead) -> bool {
    let title = l.title.as_deref().unwrap_or("").to_lowercase();
    let email = l.email.to_lowercase();
    let student = l.title.is_some() && title.contains("student");
    let competitor = ["@rivalflow.example", "@leadracer.example"].iter().any(|d| email.contains(d));
    let personal = ["@gmail.", "@yahoo.", "@hotmail.", "@outlook.", "@icloud."].iter().any(|d| email.contains(d));
    let intent = ["demo_request", "pricing_view", "content_download", "webinar"].contains(&l.intent_action.as_str());
    !student && !competitor && !personal && l.score >= MIN_SCORE && intent
}

/// `[[policy.grades]]`: the first rule that holds.
fn grade_of(l: &SynthLead) -> Option<&'static str> {
    let title = l.title.as_deref().map(str::to_lowercase);
    let senior = title.as_deref().is_some_and(|t| {
        ["manager", "director", "head of", "vp", "vice president", "chief"].iter().any(|w| t.contains(w))
    });
    let country = l.country.as_deref().is_some_and(|c| {
        ["US", "United States", "GB", "United Kingdom", "CA", "Canada", "AU", "Australia"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(c))
    });
    let fit = l.employees.is_some_and(|e| e >= 25) && country && senior;
    let strong = ["demo_request", "pricing_view"].contains(&l.intent_action.as_str());
    let light = ["content_download", "webinar"].contains(&l.intent_action.as_str());
    if fit && strong {
        Some("A")
    } else if fit && light {
        Some("B")
    } else if strong || light {
        Some("C")
    } else {
        None
    }
}

/// How many of the required fields the lead arrived with.
fn populated_required(l: &SynthLead) -> usize {
    // FirstName, Email, LeadSource and the score are always generated.
    4 + [l.last_name.is_some(), l.company.is_some(), l.title.is_some(), l.phone.is_some()]
        .iter()
        .filter(|p| **p)
        .count()
}

// ---------------------------------------------------------------------------
// Business time, by brute force over a table of minutes.
// ---------------------------------------------------------------------------

/// Whether each UTC minute from `origin` on is desk time for a rep in
/// `zone`. Every boundary (09:00, 17:00, midnight) falls on a whole UTC
/// minute in the zones the org uses, so a minute is open or closed as a
/// whole.
struct Desk {
    zone: Tz,
    origin: DateTime<Utc>,
    open: Vec<bool>,
}

impl Desk {
    fn new(zone: Tz, holidays: &BTreeSet<NaiveDate>, origin: DateTime<Utc>, days: i64) -> Desk {
        let open = (0..days * 1440)
            .map(|k| {
                let t = origin + Duration::minutes(k);
                let local = t.with_timezone(&zone);
                let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
                let minute = local.hour() * 60 + local.minute();
                // A holiday closes the rep's own local date.
                let holiday = holidays.contains(&local.date_naive());
                weekday && (9 * 60..17 * 60).contains(&minute) && !holiday
            })
            .collect();
        Desk { zone, origin, open }
    }

    /// The minute containing `t` and its start.
    fn minute(&self, t: DateTime<Utc>) -> (usize, DateTime<Utc>) {
        let k = (t - self.origin).num_seconds().div_euclid(60);
        let k = usize::try_from(k).expect("instant before the table");
        assert!(k < self.open.len(), "instant {t} beyond the table");
        (k, self.origin + Duration::minutes(k as i64))
    }

    fn is_open(&self, t: DateTime<Utc>) -> bool {
        self.open[self.minute(t).0]
    }

    fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_open(t) {
            return t;
        }
        let (mut k, _) = self.minute(t);
        while !self.open[k] {
            k += 1;
        }
        self.origin + Duration::minutes(k as i64)
    }

    /// Desk time in `[a, b)`, to the second.
    fn between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        let mut cur = a;
        while cur < b {
            let (k, start) = self.minute(cur);
            let next = (start + Duration::minutes(1)).min(b);
            if self.open[k] {
                total += next - cur;
            }
            cur = next;
        }
        total
    }

    /// The instant `secs` of desk time after `start` (counting from the next
    /// opening): it may be a closing instant, never a closed one.
    fn add(&self, start: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
        let mut cur = self.next_open(start);
        let mut left = Duration::seconds(secs);
        loop {
            let (k, m) = self.minute(cur);
            let end = m + Duration::minutes(1);
            if self.open[k] {
                if left <= end - cur {
                    return cur + left;
                }
                left -= end - cur;
            }
            cur = end;
        }
    }

    /// The close (end of the last open minute) of the local date, if it has desk time.
    fn close_of(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        let midnight = |d: NaiveDate| {
            self.zone
                .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
                .earliest()
                .expect("midnight exists")
        };
        let (from, to) = (midnight(date).with_timezone(&Utc), midnight(date + Duration::days(1)).with_timezone(&Utc));
        let mut close = None;
        let mut t = from;
        while t < to {
            if self.is_open(t) {
                close = Some(t + Duration::minutes(1));
            }
            t += Duration::minutes(1);
        }
        close
    }

    /// The close of the business day `days` business days after the one
    /// containing `start` (a start after the close or on a closed day
    /// belongs to the next business day).
    fn day_close(&self, start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let mut date = start.with_timezone(&self.zone).date_naive();
        let mut close = self.close_of(date).filter(|c| start < *c);
        while close.is_none() {
            date += Duration::days(1);
            close = self.close_of(date);
        }
        for _ in 0..days {
            loop {
                date += Duration::days(1);
                if let Some(c) = self.close_of(date) {
                    close = Some(c);
                    break;
                }
            }
        }
        close.expect("a business day")
    }

    fn deadline(&self, start: DateTime<Utc>, window: Window) -> DateTime<Utc> {
        match window {
            Window::BusinessSecs(secs) => self.add(start, secs),
            Window::DayClose(days) => self.day_close(start, days),
        }
    }

    /// Local dates with desk time from the day of `first` through the day of `last`.
    fn business_days(&self, first: DateTime<Utc>, last: DateTime<Utc>) -> usize {
        let mut date = first.with_timezone(&self.zone).date_naive();
        let to = last.with_timezone(&self.zone).date_naive();
        let mut n = 0;
        while date <= to {
            n += usize::from(self.close_of(date).is_some());
            date += Duration::days(1);
        }
        n
    }
}

/// The Monday (reporting zone) starting the week `t` falls in.
fn week_of(t: DateTime<Utc>) -> NaiveDate {
    let d = t.with_timezone(&REPORTING_ZONE).date_naive();
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

/// Local midnight of `date` in the reporting zone.
fn ny_midnight(date: NaiveDate) -> DateTime<Utc> {
    REPORTING_ZONE
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .expect("midnight exists")
        .with_timezone(&Utc)
}

/// Nearest-rank percentile of a sorted sample.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

// ---------------------------------------------------------------------------
// Ground truth: each lead's history in the CRM.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Touch {
    at: DateTime<Utc>,
    /// Salesforce user id of whoever logged it.
    by: String,
}

#[derive(Debug, Clone)]
struct Status {
    at: DateTime<Utc>,
    class: Class,
    /// What `Disqualification_Reason__c` holds after the change.
    reason: Option<Option<String>>,
}

/// A modification of the lead record (its `SystemModstamp` moves).
#[derive(Debug, Clone)]
struct Modification {
    at: DateTime<Utc>,
    /// Made by handoff at a tick (after that tick's pull), not by the org.
    by_handoff: bool,
    /// Changes the owner or the status (history the daemon must date).
    change: bool,
}

#[derive(Debug, Clone, Default)]
struct History {
    created: Option<DateTime<Utc>>,
    /// (from, owner id), oldest first.
    owners: Vec<(DateTime<Utc>, String)>,
    touches: Vec<Touch>,
    statuses: Vec<Status>,
    modifications: Vec<Modification>,
    removed: bool,
    /// Sequence emails logged on the lead (not touches).
    automated: usize,
}

impl History {
    fn created(&self) -> DateTime<Utc> {
        self.created.expect("created")
    }

    fn owner_at(&self, t: DateTime<Utc>) -> Option<&str> {
        self.owners.iter().rev().find(|(from, _)| *from <= t).map(|(_, o)| o.as_str())
    }

    /// Hand-overs to users (never queues), each to a user other than the previous user.
    fn user_assignments(&self) -> Vec<(DateTime<Utc>, &str)> {
        let mut out: Vec<(DateTime<Utc>, &str)> = Vec::new();
        for (at, o) in &self.owners {
            if is_user(o) && out.last().is_none_or(|(_, prev)| prev != o) {
                out.push((*at, o.as_str()));
            }
        }
        out
    }

    /// The user owning the lead at `t`, else the first user given it later.
    fn user_for(&self, t: DateTime<Utc>) -> Option<&str> {
        match self.owner_at(t) {
            Some(o) if is_user(o) => Some(o),
            _ => self.user_assignments().into_iter().find(|(at, _)| *at >= t).map(|(_, o)| o),
        }
    }

    /// Touches that count with `touch_by = "owner"`: by the user owning the
    /// lead at the time, or by anyone while a queue owns it.
    fn counted_touches(&self) -> Vec<&Touch> {
        let mut out: Vec<&Touch> = self
            .touches
            .iter()
            .filter(|t| match self.owner_at(t.at) {
                Some(o) if is_user(o) => t.by == o,
                _ => true,
            })
            .collect();
        out.sort_by_key(|t| t.at);
        out
    }

    fn decisions(&self) -> Vec<&Status> {
        self.statuses.iter().filter(|s| s.class.is_decision()).collect()
    }

    fn current(&self) -> Option<&Status> {
        self.statuses.last()
    }

    fn reason(&self) -> Option<String> {
        self.statuses.iter().rev().find_map(|s| s.reason.clone()).flatten()
    }

    /// When a queue took the lead from a user (handoff's pool rung): its
    /// clocks pause from then on.
    fn paused_from(&self) -> Option<DateTime<Utc>> {
        let mut had_user = false;
        for (at, o) in &self.owners {
            if is_user(o) {
                had_user = true;
            } else if had_user {
                return Some(*at);
            }
        }
        None
    }

    /// A user took the lead back after a pause (the clocks resumed).
    fn resumed(&self) -> bool {
        self.paused_from().is_some_and(|p| self.owners.iter().any(|(at, o)| *at > p && is_user(o)))
    }
}

fn is_user(owner_id: &str) -> bool {
    owner_id.starts_with("005")
}

fn owner_ref(o: OwnerRef) -> String {
    match o {
        OwnerRef::User(u) => user_id(u),
        OwnerRef::Queue(q) => queue_id(q),
    }
}

/// The org's timeline and handoff's own writes, lead by lead.
fn histories(org: &SyntheticOrg, handoff_writes: &[(DateTime<Utc>, usize, Option<String>)]) -> Vec<History> {
    let mut h: Vec<History> = vec![History::default(); org.leads.len()];
    let modified = |h: &mut History, at, change| h.modifications.push(Modification { at, by_handoff: false, change });
    // Ties keep timeline order; handoff writes at the same instant come after
    // the org's events (the sandbox applies the timeline before serving a request).
    let mut owner_changes: Vec<(DateTime<Utc>, u8, usize, String)> = Vec::new();
    for e in &org.events {
        match &e.kind {
            EventKind::LeadCreated { lead, owner } => {
                h[*lead].created = Some(e.at);
                owner_changes.push((e.at, 0, *lead, owner_ref(*owner)));
                modified(&mut h[*lead], e.at, true);
            }
            EventKind::Assigned { lead, owner } => {
                owner_changes.push((e.at, 0, *lead, owner_ref(*owner)));
                modified(&mut h[*lead], e.at, true);
            }
            EventKind::Touch { lead, by, kind, automated } => {
                // Calls, emails and meetings: all of the inbound segment's touch kinds.
                assert!(matches!(kind, ActivityKind::Call | ActivityKind::Email | ActivityKind::Meeting));
                // A sequence email is not a touch (automated_touches is off).
                if !*automated {
                    h[*lead].touches.push(Touch { at: e.at, by: user_id(*by) });
                } else {
                    h[*lead].automated += 1;
                }
            }
            EventKind::StatusChanged { lead, status } => {
                let reason = match status {
                    LeadStatus::Rejected { reason } | LeadStatus::ClosedUnresponsive { reason } => Some(reason.clone()),
                    _ => None,
                };
                h[*lead].statuses.push(Status { at: e.at, class: Class::of(status), reason });
                modified(&mut h[*lead], e.at, true);
            }
            EventKind::Deleted { lead } => h[*lead].removed = true,
            EventKind::Merged { lead, into } => {
                // Salesforce moves the loser's activities onto the survivor
                // (keeping when they happened) and stamps the survivor.
                h[*lead].removed = true;
                let moved = h[*lead].touches.clone();
                h[*into].touches.extend(moved);
                modified(&mut h[*into], e.at, false);
            }
            // The oracle's orgs have no opportunities.
            EventKind::OpportunityCreated { .. } | EventKind::OpportunityMeeting { .. } => {}
        }
    }
    for (at, index, owner) in handoff_writes {
        if let Some(owner) = owner {
            owner_changes.push((*at, 1, *index, owner.clone()));
        }
        h[*index].modifications.push(Modification { at: *at, by_handoff: true, change: owner.is_some() });
    }
    owner_changes.sort_by_key(|(at, seq, _, _)| (*at, *seq));
    for (at, _, index, owner) in owner_changes {
        let owners = &mut h[index].owners;
        if owners.last().is_none_or(|(_, o)| *o != owner) {
            owners.push((at, owner));
        }
    }
    for x in &mut h {
        x.modifications.sort_by_key(|m| (m.at, m.by_handoff));
    }
    h
}

/// Which of a lead's facts a poller ticking at `ticks` could have dated exactly.
#[derive(Debug, Clone, Copy, Default)]
struct Knowable {
    /// When it first went to a user.
    routing: bool,
    /// Every later owner and status change.
    sales: bool,
}

fn knowable(h: &History, ticks: &[DateTime<Utc>]) -> Knowable {
    let lag = Duration::seconds(LAG_SECS + 1);
    let mods = &h.modifications;
    // A change is dated exactly when some pull shows the record right after
    // it: a tick at least the lag later, before the record changes again
    // (the org's changes apply at their instant; handoff's writes follow the
    // pull of their tick).
    let seen = |k: usize| -> bool {
        let m = &mods[k];
        // A write of handoff's at the same instant stamps the record with
        // that same instant, so the change is still dated right.
        let next = mods[k + 1..].iter().find(|later| !(later.by_handoff && later.at == m.at));
        ticks.iter().any(|t| *t >= m.at + lag && next.is_none_or(|n| if n.by_handoff { *t <= n.at } else { *t < n.at }))
    };
    let changes: Vec<usize> = (0..mods.len()).filter(|k| mods[*k].change).collect();
    let Some((&creation, later)) = changes.split_first() else { return Knowable::default() };
    let later_seen = later.iter().all(|k| seen(*k));
    let created_with_user = h.owners.first().is_some_and(|(_, o)| is_user(o));
    let first_user_at = h.user_assignments().first().map(|(at, _)| *at);
    // The daemon dates the owner it first sees at the creation: harmless when
    // that owner really was there from the start, or when the record went
    // from a queue straight to that user (seen exactly) and nobody touched
    // it in between.
    let creation_ok = seen(creation) || created_with_user;
    let queue_then_user = !seen(creation)
        && !created_with_user
        && later.first().is_some_and(|k| Some(mods[*k].at) == first_user_at && seen(*k))
        && h.touches.iter().all(|t| first_user_at.is_some_and(|u| t.at >= u));
    let routing_changes_seen =
        later.iter().filter(|k| first_user_at.is_some_and(|u| mods[**k].at <= u)).all(|k| seen(*k));
    // A conversion is dated by `ConvertedDate`, a date only: exact enough
    // only when an earlier decision (the acceptance) comes first.
    let conversion_follows_decision = h
        .statuses
        .iter()
        .position(|s| s.class == Class::Converted)
        .is_none_or(|i| h.statuses[..i].iter().any(|s| s.class.is_decision()));
    Knowable {
        routing: created_with_user || (seen(creation) && routing_changes_seen),
        // A lead a user took back from the pool resumes its clocks with the
        // time they had left on the new desk: not modelled here.
        sales: later_seen && (creation_ok || queue_then_user) && conversion_follows_decision && !h.resumed(),
    }
}

// ---------------------------------------------------------------------------
// The oracle: each lead's contributions to the scorecard.
// ---------------------------------------------------------------------------

/// One week's expected numbers for one group.
#[derive(Debug, Clone, Default)]
struct Expected {
    mqls_by_grade: BTreeMap<String, u64>,
    completeness: Ratio,
    routing: Ratio,
    routing_minutes: Vec<f64>,
    acceptance: Ratio,
    touch_minutes: Vec<f64>,
    first_touch: Ratio,
    first_touch_ended: u64,
    follow_up: Ratio,
    disposition: Ratio,
    feedback: Ratio,
    reasons: BTreeMap<String, u64>,
    opportunity: Ratio,
    opportunity_by_grade: BTreeMap<String, Ratio>,
}

fn add(r: &mut Ratio, hit: bool) {
    r.cases += 1;
    r.hits += u64::from(hit);
}

fn spread(mut v: Vec<f64>) -> Spread {
    v.sort_by(|a, b| a.total_cmp(b));
    Spread { count: v.len(), median: percentile(&v, 0.5), p90: percentile(&v, 0.9) }
}

impl Expected {
    fn metrics(&self) -> Metrics {
        Metrics {
            mqls: self.mqls_by_grade.values().sum(),
            mqls_by_grade: self.mqls_by_grade.clone(),
            data_completeness: self.completeness,
            routing_in_window: self.routing,
            routing_minutes: spread(self.routing_minutes.clone()),
            acceptance: self.acceptance,
            first_touch_business_minutes: spread(self.touch_minutes.clone()),
            first_touch_in_window: self.first_touch,
            // The demo policy declares no surge.
            first_touch_in_window_surge: Ratio::default(),
            first_touch_ended: self.first_touch_ended,
            // The demo policy sets no AE commitment.
            discovery_in_window: Ratio::default(),
            opportunity_in_window: Ratio::default(),
            follow_up_completion: self.follow_up,
            disposition_in_window: self.disposition,
            feedback_quality: self.feedback,
            rejection_reasons: self.reasons.clone(),
            opportunity: self.opportunity,
            opportunity_by_grade: self.opportunity_by_grade.clone(),
        }
    }
}

/// Expected numbers by week, then group ("all" plus the breakdown's groups).
type Card = BTreeMap<NaiveDate, BTreeMap<String, Expected>>;

struct World<'a> {
    org: &'a SyntheticOrg,
    histories: &'a [History],
    desks: HashMap<String, Desk>,
    /// Users by Salesforce id.
    users: HashMap<String, &'a SynthUser>,
    now: DateTime<Utc>,
}

impl World<'_> {
    /// The desk of the user a clock belongs to (the default calendar's zone when nobody).
    fn desk(&self, owner: Option<&str>) -> &Desk {
        let zone = owner.and_then(|o| self.users.get(o)).map_or(REPORTING_ZONE.name(), |u| u.time_zone.as_str());
        &self.desks[zone]
    }

    fn label(&self, owner: Option<&str>) -> String {
        match owner.and_then(|o| self.users.get(o).map(|u| (o, u))) {
            Some((id, u)) => format!("{} {} ({id})", u.first_name, u.last_name),
            None => "(unassigned)".to_string(),
        }
    }
}

/// Which metrics a lead feeds: the history-free ones, the routing ones, the sales ones.
#[derive(Debug, Clone, Copy)]
struct Feeds {
    volume: bool,
    routing: bool,
    sales: bool,
}

/// Counts per metric over the whole run, for the report and the floor on cases.
#[derive(Debug, Default)]
struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    fn bump(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }
}

fn oracle(w: &World<'_>, feeds: &dyn Fn(usize) -> Feeds, by: Option<Dimension>, tally: &mut Tally) -> Card {
    let mut card: Card = BTreeMap::new();
    for (index, l) in w.org.leads.iter().enumerate() {
        let h = &w.histories[index];
        if h.removed || h.created.is_none() {
            continue;
        }
        let feed = feeds(index);
        let mql_at = h.created();
        let mql = meets_mql_rule(l);
        let complete = populated_required(l) == REQUIRED_FIELDS.len();
        let qualified = mql && complete;
        let grade = grade_of(l).unwrap_or("none").to_string();
        let current_owner = h.owners.last().map(|(_, o)| o.as_str()).filter(|o| is_user(o));
        let group = |rep: Option<&str>| -> Option<String> {
            match by? {
                Dimension::Grade => Some(grade.clone()),
                Dimension::Rep => Some(w.label(rep)),
                other => panic!("the oracle does not break down by {other:?}"),
            }
        };
        let now = w.now;
        let mut record = |at: DateTime<Utc>, rep: Option<&str>, f: &mut dyn FnMut(&mut Expected)| {
            if at > now {
                return;
            }
            let week = card.entry(week_of(at)).or_default();
            f(week.entry("all".into()).or_default());
            if let Some(g) = group(rep) {
                f(week.entry(g).or_default());
            }
        };

        // MQL volume, completeness and the opportunity cohort: the MQL time.
        if mql && feed.volume {
            let populated = populated_required(l) as u64;
            record(mql_at, current_owner, &mut |e| {
                e.completeness.hits += populated;
                e.completeness.cases += REQUIRED_FIELDS.len() as u64;
            });
            tally.bump("completeness (leads)");
        }
        let converted = h.statuses.iter().any(|s| s.class == Class::Converted);
        if qualified && feed.volume {
            record(mql_at, current_owner, &mut |e| {
                *e.mqls_by_grade.entry(grade.clone()).or_default() += 1;
                add(&mut e.opportunity, converted);
                add(e.opportunity_by_grade.entry(grade.clone()).or_default(), converted);
            });
            tally.bump("mqls");
            if converted {
                tally.bump("opportunities");
            }
        }

        // Feedback on rejections, for qualified MQLs (a waived lead carries
        // no sales obligation, its rejection included).
        if qualified && feed.sales {
            if let Some(rejected) = h.statuses.iter().find(|s| s.class == Class::Rejected && s.at >= mql_at) {
                let code = h.reason();
                let label = match &code {
                    None => "(none)".to_string(),
                    Some(c) if agreed(c) => c.clone(),
                    Some(c) => format!("(not agreed) {c}"),
                };
                // Reps give the code with the rejection or not at all: judged
                // then (a hit), or once the 24-hour grace has passed (a miss).
                let ok = code.as_deref().is_some_and(agreed);
                let judged = if ok { rejected.at } else { rejected.at + Duration::hours(24) };
                record(judged, current_owner, &mut |e| {
                    add(&mut e.feedback, ok);
                    *e.reasons.entry(label.clone()).or_default() += 1;
                });
                tally.bump("rejections");
                if !ok && judged <= now {
                    tally.bump("feedback missed after the grace");
                }
            }
        }

        if !qualified {
            continue;
        }
        assert!(
            !OUTBOUND_SOURCES.contains(&l.source.as_str()),
            "lead {index}: the oracle models only the inbound segment, which every MQL of this org falls in"
        );
        let decisions: Vec<&Status> = h.decisions().into_iter().filter(|d| d.at >= mql_at).collect();

        // Routing: MQL time to the first hand-over to a user, 5 wall-clock minutes.
        if feed.routing {
            let due = mql_at + Duration::seconds(ROUTING_SECS);
            match h.user_assignments().first() {
                Some((at, _)) if (*at).max(mql_at) <= now => {
                    let stop = (*at).max(mql_at);
                    let minutes = (stop - mql_at).num_seconds() as f64 / 60.0;
                    let (when, met) = if stop <= due { (stop, true) } else { (due, false) };
                    record(when, current_owner, &mut |e| {
                        add(&mut e.routing, met);
                        e.routing_minutes.push(minutes);
                    });
                    tally.bump("routing");
                }
                _ if now >= due => {
                    record(due, current_owner, &mut |e| add(&mut e.routing, false));
                    tally.bump("routing");
                    tally.bump("routing (never assigned)");
                }
                _ => {}
            }
        }

        if !feed.sales {
            continue;
        }
        // MQL→SAL: the first decision other than closing as unresponsive.
        if let Some(d) = decisions.iter().find(|d| d.class != Class::Closed) {
            let accepted = matches!(d.class, Class::Accepted | Class::Converted);
            record(d.at, current_owner, &mut |e| add(&mut e.acceptance, accepted));
            tally.bump("acceptance");
        }

        // The inbound clocks start at the MQL time and belong to the user
        // holding the lead then (or the first one given it later).
        let base_owner = h.user_for(mql_at).map(str::to_string);
        let touches = h.counted_touches();
        let touch = touches.iter().find(|t| t.at >= mql_at).copied();
        // A rejection, close or conversion before any touch ends the
        // first-touch obligation (acceptance does not: it is no touch).
        let ender = decisions
            .iter()
            .find(|d| {
                matches!(d.class, Class::Rejected | Class::Closed | Class::Converted)
                    && touch.is_none_or(|t| d.at < t.at)
            })
            .copied();
        let ft_stop = ender.map(|d| d.at).or(touch.map(|t| t.at));
        // on_reassign = "continue": the first-touch clock keeps its start and
        // goes to whoever the lead is handed to before it stops.
        let mut ft_owner = base_owner.clone();
        for (at, o) in h.user_assignments() {
            if at > mql_at && ft_stop.is_none_or(|stop| stop >= at) {
                ft_owner = Some(o.to_string());
            }
        }
        let desk = w.desk(ft_owner.as_deref());
        let due = desk.deadline(mql_at, first_touch_window(&grade));
        let rep = ft_owner.as_deref().or(current_owner);
        match (ender, touch) {
            (Some(d), _) if d.at <= due => {
                // Ended in time: in neither side of "first touch in window".
                record(d.at, rep, &mut |e| e.first_touch_ended += 1);
                tally.bump("first touch ended before any touch");
            }
            (Some(_), _) => {
                record(due, rep, &mut |e| add(&mut e.first_touch, false));
                tally.bump("first touch");
            }
            (None, Some(t)) => {
                let stop = t.at;
                let (when, met) = if stop <= due { (stop, true) } else { (due, false) };
                record(when, rep, &mut |e| add(&mut e.first_touch, met));
                tally.bump("first touch");
                let start = desk.next_open(mql_at);
                let minutes = desk.between(start, stop.max(start)).num_seconds() as f64 / 60.0;
                record(stop, rep, &mut |e| e.touch_minutes.push(minutes));
                tally.bump("speed to first touch");
            }
            (None, None) if now >= due => {
                record(due, rep, &mut |e| add(&mut e.first_touch, false));
                tally.bump("first touch");
            }
            (None, None) => {}
        }

        // The later clocks follow the lead's owner too: the user holding it
        // when the clock stops (or now), on that user's desk.
        let holder_at = |t: DateTime<Utc>| -> Option<String> {
            h.user_assignments()
                .iter()
                .rev()
                .find(|(at, _)| *at <= t)
                .map(|(_, o)| o.to_string())
                .or(base_owner.clone())
        };

        // Disposition: 3 business days from the MQL time, met by the first
        // decision inside them whatever its reason code. A pool move before
        // the due time pauses it: a decision while paused is in time, and
        // without one there is no outcome yet.
        let first = decisions.first().copied();
        let disp_owner = holder_at(first.map_or(now, |d| d.at));
        let desk = w.desk(disp_owner.as_deref());
        let rep = disp_owner.as_deref().or(current_owner);
        let due = desk.day_close(mql_at, DISPOSITION_DAYS);
        let paused = h.paused_from().filter(|p| *p >= mql_at && *p < due);
        let outcome = match (first, paused) {
            (Some(d), Some(p)) if d.at >= p => Some((d.at, true)),
            (Some(d), _) => Some(if d.at <= due { (d.at, true) } else { (due, false) }),
            (None, Some(_)) => None,
            (None, None) if now >= due => Some((due, false)),
            (None, None) => None,
        };
        if let Some((when, met)) = outcome {
            record(when, rep, &mut |e| add(&mut e.disposition, met));
            tally.bump("disposition");
            if paused.is_some() {
                tally.bump("disposition paused in the pool");
            }
        }

        // Follow-up: judged when closed as unresponsive, on the desk of the
        // user holding the lead then.
        let current = h.current().map(|s| s.class);
        if current == Some(Class::Closed) {
            let closed = decisions.iter().rev().find(|d| d.class == Class::Closed).map(|d| d.at).expect("a close");
            let cad_owner = holder_at(closed);
            let desk = w.desk(cad_owner.as_deref());
            let rep = cad_owner.as_deref().or(current_owner);
            let counted: Vec<&&Touch> = touches.iter().filter(|t| t.at >= mql_at && t.at <= closed).collect();
            let days = match (counted.first(), counted.last()) {
                (Some(a), Some(b)) => desk.business_days(a.at, b.at),
                _ => 0,
            };
            let full = counted.len() >= CADENCE_TOUCHES && days >= CADENCE_DAYS;
            record(closed, rep, &mut |e| add(&mut e.follow_up, full));
            tally.bump("follow-up");
            if full {
                tally.bump("follow-up (full cadence)");
            }
        }
        if h.automated > 0 {
            tally.bump("leads with sequence emails (not touches)");
        }
    }
    card
}

// ---------------------------------------------------------------------------
// Comparing.
// ---------------------------------------------------------------------------

/// Which fields of [`Metrics`] a comparison covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Volume,
    Routing,
    Sales,
}

/// The commitments a part of the card judges, on the whole group "all":
/// (id, target, actual, met).
fn expected_commitments(part: Part, all: &Metrics, elapsed: f64) -> Vec<(String, f64, Option<f64>, Option<bool>)> {
    let share = |id: &str, pct: u64, r: &Ratio| {
        let actual = (r.cases > 0).then(|| r.hits as f64 / r.cases as f64);
        // "At least pct %", in whole numbers.
        let met = (r.cases > 0).then(|| r.hits * 100 >= pct * r.cases);
        (id.to_string(), pct as f64 / 100.0, actual, met)
    };
    let pct = |id: &str| TARGET_PCT.iter().find(|(k, _)| *k == id).map(|(_, p)| *p).expect("a target");
    match part {
        Part::Volume => {
            let mut out: Vec<_> = MONTHLY_VOLUME
                .iter()
                .map(|(grade, monthly)| {
                    // A month is 52/12 weeks; a running week's share is prorated, to a tenth.
                    let target = (f64::from(*monthly) * 12.0 / 52.0 * elapsed * 10.0).round() / 10.0;
                    let actual = all.mqls_by_grade.get(*grade).copied().unwrap_or(0) as f64;
                    (format!("marketing.volume.{grade}"), target, Some(actual), Some(actual >= target))
                })
                .collect();
            out.push(share("marketing.data_completeness", pct("marketing.data_completeness"), &all.data_completeness));
            out
        }
        Part::Routing => {
            vec![share("marketing.routing_in_window", pct("marketing.routing_in_window"), &all.routing_in_window)]
        }
        Part::Sales => vec![
            share("marketing.acceptance", ACCEPTANCE_PCT, &all.acceptance),
            share("sales.first_touch_in_window", pct("sales.first_touch_in_window"), &all.first_touch_in_window),
            share("sales.follow_up_completion", pct("sales.follow_up_completion"), &all.follow_up_completion),
            share("sales.disposition_in_window", pct("sales.disposition_in_window"), &all.disposition_in_window),
            share("sales.feedback_quality", pct("sales.feedback_quality"), &all.feedback_quality),
        ],
    }
}

fn compare(part: Part, by: Option<Dimension>, handoff: &Scorecard, expected: &Card, problems: &mut Vec<String>) {
    for week in &handoff.weeks {
        let empty = BTreeMap::new();
        let want_groups = expected.get(&week.start).unwrap_or(&empty);
        let (starts, ends) = (ny_midnight(week.start), ny_midnight(week.start + Duration::days(7)));
        if (week.starts_at, week.ends_at, week.partial) != (starts, ends, handoff.generated_at < ends)
            || week.start.weekday() != Weekday::Mon
        {
            problems.push(format!(
                "week {}: bounds {} – {} (partial {}), oracle {starts} – {ends}",
                week.start, week.starts_at, week.ends_at, week.partial
            ));
        }
        let elapsed = ((handoff.generated_at - starts).num_seconds() as f64 / (ends - starts).num_seconds() as f64)
            .clamp(0.0, 1.0);
        let want_all = want_groups.get("all").map(Expected::metrics).unwrap_or_default();
        for (id, target, actual, met) in expected_commitments(part, &want_all, elapsed) {
            let have = week.commitments.iter().find(|c| c.id == id).map(|c| (c.target, c.actual, c.met));
            if have != Some((target, actual, met)) {
                problems.push(format!(
                    "week {} commitment {id}: handoff {have:?}, oracle {:?}",
                    week.start,
                    (target, actual, met)
                ));
            }
        }
        let groups: BTreeSet<&String> = week.groups.keys().chain(want_groups.keys()).collect();
        for g in groups {
            let have = week.groups.get(g).cloned().unwrap_or_default();
            let want = want_groups.get(g).map(Expected::metrics).unwrap_or_default();
            let mut check = |what: &str, a: String, b: String| {
                if a != b {
                    problems.push(format!("week {} {by:?} group {g:?} {what}: handoff {a}, oracle {b}", week.start));
                }
            };
            match part {
                Part::Volume => {
                    check("mqls", format!("{}", have.mqls), format!("{}", want.mqls));
                    check("mqls by grade", format!("{:?}", have.mqls_by_grade), format!("{:?}", want.mqls_by_grade));
                    check(
                        "data completeness",
                        format!("{:?}", have.data_completeness),
                        format!("{:?}", want.data_completeness),
                    );
                    check("opportunity", format!("{:?}", have.opportunity), format!("{:?}", want.opportunity));
                    check(
                        "opportunity by grade",
                        format!("{:?}", have.opportunity_by_grade),
                        format!("{:?}", want.opportunity_by_grade),
                    );
                }
                Part::Routing => {
                    check(
                        "routing in window",
                        format!("{:?}", have.routing_in_window),
                        format!("{:?}", want.routing_in_window),
                    );
                    check(
                        "routing minutes",
                        format!("{:?}", have.routing_minutes),
                        format!("{:?}", want.routing_minutes),
                    );
                }
                Part::Sales => {
                    check("acceptance", format!("{:?}", have.acceptance), format!("{:?}", want.acceptance));
                    check(
                        "first touch business minutes",
                        format!("{:?}", have.first_touch_business_minutes),
                        format!("{:?}", want.first_touch_business_minutes),
                    );
                    check(
                        "first touch in window",
                        format!("{:?}", have.first_touch_in_window),
                        format!("{:?}", want.first_touch_in_window),
                    );
                    check(
                        "first touch ended before any touch",
                        format!("{}", have.first_touch_ended),
                        format!("{}", want.first_touch_ended),
                    );
                    check(
                        "follow-up completion",
                        format!("{:?}", have.follow_up_completion),
                        format!("{:?}", want.follow_up_completion),
                    );
                    check(
                        "disposition in window",
                        format!("{:?}", have.disposition_in_window),
                        format!("{:?}", want.disposition_in_window),
                    );
                    check(
                        "feedback quality",
                        format!("{:?}", have.feedback_quality),
                        format!("{:?}", want.feedback_quality),
                    );
                    check(
                        "rejection reasons",
                        format!("{:?}", have.rejection_reasons),
                        format!("{:?}", want.rejection_reasons),
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The policy the oracle implements is the demo's.
// ---------------------------------------------------------------------------

/// Everything of config/demo.toml the oracle's constants and rules encode,
/// as the oracle reads it. A change to the demo policy fails here, naming
/// the table, rather than as a puzzling mismatch in the month.
const ORACLE_READS: &str = r#"
[sync]
lag_secs = 2

[policy]
reason_codes = ["wrong_persona", "no_budget", "bad_timing", "bad_contact_data", "already_customer", "competitor", "did_not_meet_criteria"]

[policy.fields]
status = "Status"
source = "LeadSource"
score = "Lead_Score__c"
reason_code = "Disqualification_Reason__c"
mql_at = "MQL_Date__c"
sla = { grade = "SLA_Grade__c", due_at = "SLA_Due__c", status = "SLA_Status__c", breach_count = "SLA_Breach_Count__c" }

[policy.statuses]
open = ["Open - Not Contacted"]
working = ["Working - Contacted"]
accepted = ["Qualified"]
rejected = ["Unqualified"]
closed_unresponsive = ["Closed - Not Converted"]
converted = ["Closed - Converted"]

[policy.owners]
default_calendar = "default"
use_owner_time_zone = true
calendar_by_owner = {}
managers = {}

[policy.definitions]
mql = { criteria = "intent" }
min_score = 50

[policy.definitions.criteria.fit]
all = [
  { field = "NumberOfEmployees", op = ">=", value = 25 },
  { field = "Country", op = "in", value = ["US", "United States", "GB", "United Kingdom", "CA", "Canada", "AU", "Australia"] },
  { criteria = "manager_or_above" },
]

[policy.definitions.criteria.manager_or_above]
any = [
  { field = "Title", op = "contains", value = "manager" },
  { field = "Title", op = "contains", value = "director" },
  { field = "Title", op = "contains", value = "head of" },
  { field = "Title", op = "contains", value = "vp" },
  { field = "Title", op = "contains", value = "vice president" },
  { field = "Title", op = "contains", value = "chief" },
]

[policy.definitions.criteria.strong_intent]
field = "Intent_Action__c"
op = "in"
value = ["demo_request", "pricing_view"]

[policy.definitions.criteria.light_intent]
field = "Intent_Action__c"
op = "in"
value = ["content_download", "webinar"]

[policy.definitions.criteria.intent]
any = [{ criteria = "strong_intent" }, { criteria = "light_intent" }]

[policy.definitions.disqualifiers.student]
field = "Title"
op = "contains"
value = "student"

[policy.definitions.disqualifiers.competitor]
any = [
  { field = "Email", op = "contains", value = "@rivalflow.example" },
  { field = "Email", op = "contains", value = "@leadracer.example" },
]

[policy.definitions.disqualifiers.personal_email]
any = [
  { field = "Email", op = "contains", value = "@gmail." },
  { field = "Email", op = "contains", value = "@yahoo." },
  { field = "Email", op = "contains", value = "@hotmail." },
  { field = "Email", op = "contains", value = "@outlook." },
  { field = "Email", op = "contains", value = "@icloud." },
]

[[policy.grades]]
name = "A"
description = "fit plus strong intent"
when = { all = [{ criteria = "fit" }, { criteria = "strong_intent" }] }

[[policy.grades]]
name = "B"
description = "fit, lighter intent"
when = { all = [{ criteria = "fit" }, { criteria = "light_intent" }] }

[[policy.grades]]
name = "C"
description = "intent, weaker fit"
when = { criteria = "intent" }

[[policy.segments]]
name = "outbound"
applies_to = { field = "LeadSource", op = "in", value = ["Outbound", "Purchased List"] }
clock_start = "assignment"
on_reassign = "restart"
touch_by = "owner"
sal_decision = "48 business hours"
first_touch = { A = "same business day", B = "next business day", C = "3 business days" }
cadence = { touches = 6, business_days = 10 }
disposition = { within = "3 business days" }

[[policy.segments]]
name = "inbound"
clock_start = "mql"
on_reassign = "continue"
touch_by = "owner"
touch_kinds = ["call", "email", "meeting"]
sal_decision = "48 business hours"
first_touch = { A = "1 business hour", B = "same business day", C = "48 business hours" }
cadence = { touches = 6, business_days = 10 }
disposition = { within = "3 business days" }

[policy.marketing]
required_fields = ["FirstName", "LastName", "Company", "Title", "Email", "Phone", "LeadSource", "Lead_Score__c"]
routing_within = "5 minutes"
monthly_volume = { A = 40, B = 80 }
min_acceptance_rate = 0.6
"#;

#[test]
fn the_oracle_implements_the_demo_policy() {
    let demo: toml::Table = handoff::demo::SALESFORCE_CONFIG.parse().expect("demo.toml parses");
    let reads: toml::Table = ORACLE_READS.parse().expect("the oracle's reading parses");
    let at = |t: &toml::Table, path: &[&str]| -> Option<toml::Value> {
        let mut v = toml::Value::Table(t.clone());
        for key in path {
            v = v.get(key)?.clone();
        }
        Some(v)
    };
    for path in [
        &["sync", "lag_secs"][..],
        &["policy", "reason_codes"],
        &["policy", "fields"],
        &["policy", "statuses"],
        &["policy", "owners"],
        &["policy", "definitions"],
        &["policy", "grades"],
        &["policy", "segments"],
        &["policy", "marketing"],
    ] {
        assert_eq!(
            at(&demo, path),
            at(&reads, path),
            "demo.toml's {} is not what the oracle implements",
            path.join(".")
        );
    }
    // Weeks from Monday in the default calendar's zone; the template's targets.
    assert_eq!(
        at(&demo, &["policy", "scorecard", "week_starts"]).and_then(|v| v.as_str().map(str::to_string)).as_deref(),
        Some("mon")
    );
    assert_eq!(at(&demo, &["policy", "scorecard", "targets"]), None, "the oracle assumes the template's targets");
    // The default calendar: Mon–Fri 09:00–17:00 New York, the org's US holidays.
    let default = at(&demo, &["policy", "calendars", "default"]).expect("a default calendar");
    assert_eq!(default.get("time_zone").and_then(|v| v.as_str()), Some(REPORTING_ZONE.name()));
    let hours = default.get("hours").and_then(|v| v.as_table()).expect("hours");
    let days: Vec<&str> = hours.keys().map(String::as_str).collect();
    assert_eq!(BTreeSet::from_iter(days), BTreeSet::from(["mon", "tue", "wed", "thu", "fri"]));
    assert!(hours.values().all(|v| v.as_array().is_some_and(|a| a.len() == 1 && a[0].as_str() == Some("09:00-17:00"))));
    let listed: BTreeSet<NaiveDate> = default
        .get("holidays")
        .and_then(|v| v.as_array())
        .expect("holidays")
        .iter()
        .map(|h| NaiveDate::parse_from_str(&h.as_str().expect("text")[..10], "%Y-%m-%d").expect("a date"))
        .collect();
    let org: BTreeSet<NaiveDate> = handoff_sandbox::generate::us_holidays(2026).iter().map(|h| h.date).collect();
    assert_eq!(listed, org, "the policy's holidays are the org's");
    // The sandbox writes the statuses the oracle classifies.
    for (status, list) in [
        (LeadStatus::New, "open"),
        (LeadStatus::Working, "working"),
        (LeadStatus::Accepted, "accepted"),
        (LeadStatus::Rejected { reason: None }, "rejected"),
        (LeadStatus::ClosedUnresponsive { reason: None }, "closed_unresponsive"),
        (LeadStatus::Converted, "converted"),
    ] {
        let values = at(&demo, &["policy", "statuses", list]).expect("a status list");
        assert!(
            values.as_array().is_some_and(|a| a.iter().any(|v| v.as_str() == Some(lead_status(&status)))),
            "{list}"
        );
    }
    // The constants the oracle uses are these values.
    assert_eq!(REASON_CODES.len(), 7);
    assert_eq!(REQUIRED_FIELDS.len(), 8);
    assert_eq!((MIN_SCORE, ROUTING_SECS, CADENCE_TOUCHES, CADENCE_DAYS, DISPOSITION_DAYS), (50, 300, 6, 10, 3));
}

/// The month simulated holds no US holiday, so the oracle's own desk
/// arithmetic is checked by hand here, around Memorial Day and across the
/// spring clock changes.
#[test]
fn the_oracles_desk_time_by_hand() {
    let holidays: BTreeSet<NaiveDate> = handoff_sandbox::generate::us_holidays(2026).iter().map(|h| h.date).collect();
    let utc = |s: &str| DateTime::parse_from_rfc3339(s).expect("a time").with_timezone(&Utc);
    let origin = utc("2026-03-01T00:00:00Z");
    let ny = Desk::new(REPORTING_ZONE, &holidays, origin, 100);
    // Friday 22 May 16:00 EDT to Tuesday 26 May 10:00 EDT: Monday is Memorial Day.
    assert_eq!(ny.between(utc("2026-05-22T20:00:00Z"), utc("2026-05-26T14:00:00Z")), Duration::hours(2));
    assert_eq!(ny.add(utc("2026-05-22T20:30:00Z"), 3600), utc("2026-05-26T13:30:00Z"));
    assert_eq!(
        ny.add(utc("2026-05-22T20:00:00Z"), 3600),
        utc("2026-05-22T21:00:00Z"),
        "due at the close, not at the next opening"
    );
    assert_eq!(ny.next_open(utc("2026-05-23T12:00:00Z")), utc("2026-05-26T13:00:00Z"));
    assert_eq!(
        ny.day_close(utc("2026-05-23T12:00:00Z"), 0),
        utc("2026-05-26T21:00:00Z"),
        "a weekend start belongs to the next business day"
    );
    assert_eq!(
        ny.day_close(utc("2026-05-22T22:00:00Z"), 1),
        utc("2026-05-27T21:00:00Z"),
        "after the close: from the next business day"
    );
    assert_eq!(
        ny.day_close(utc("2026-05-22T12:00:00Z"), 3),
        utc("2026-05-28T21:00:00Z"),
        "before the opening: that day"
    );
    assert_eq!(ny.business_days(utc("2026-05-22T14:00:00Z"), utc("2026-05-26T14:00:00Z")), 2);
    // New York springs forward on 8 March: 09:00 is 14:00 UTC before, 13:00 after.
    assert_eq!(ny.between(utc("2026-03-06T14:00:00Z"), utc("2026-03-09T14:00:00Z")), Duration::hours(9));
    // A Sydney rep keeps Sydney hours and the holiday falls on their own
    // Monday 25 May: closed all of it, open all of Tuesday from 09:00 AEST.
    let sydney = Desk::new(chrono_tz::Australia::Sydney, &holidays, origin, 100);
    assert_eq!(sydney.close_of(NaiveDate::from_ymd_opt(2026, 5, 25).expect("date")), None);
    assert_eq!(sydney.next_open(utc("2026-05-24T22:00:00Z")), utc("2026-05-25T23:00:00Z"));
    assert_eq!(sydney.close_of(NaiveDate::from_ymd_opt(2026, 5, 26).expect("date")), Some(utc("2026-05-26T07:00:00Z")));
    // Sydney falls back on 5 April: 09:00 is 22:00 UTC (AEDT) before, 23:00 (AEST) after.
    assert_eq!(sydney.next_open(utc("2026-04-03T10:00:00Z")), utc("2026-04-05T23:00:00Z"));
    assert_eq!(
        week_of(utc("2026-03-02T03:00:00Z")),
        NaiveDate::from_ymd_opt(2026, 2, 23).expect("date"),
        "Sunday evening in New York"
    );
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9), Some(9.0));
}

// ---------------------------------------------------------------------------
// Running the month.
// ---------------------------------------------------------------------------

/// Handoff's writes to leads, from the sandbox's request log: (when, lead
/// index, the owner it set if it reassigned).
fn lead_writes(
    log: &[LoggedRequest],
    index_of: &HashMap<String, usize>,
) -> Vec<(DateTime<Utc>, usize, Option<String>)> {
    let mut out = Vec::new();
    for r in log {
        if !(200..300).contains(&r.status) {
            continue;
        }
        for rec in r.collection_records() {
            if rec["attributes"]["type"] != "Lead" {
                continue;
            }
            let id = rec["id"].as_str().expect("a lead update names its record");
            let index = *index_of.get(id).unwrap_or_else(|| panic!("handoff wrote to an unknown lead {id}"));
            out.push((r.at, index, rec.get("OwnerId").and_then(Value::as_str).map(str::to_string)));
        }
    }
    out
}

/// The scorecard handoff's report computes over `leads` of what the store holds.
fn handoff_card(sim: &Simulation, leads: &[StoredLead], weeks: usize, by: Option<Dimension>) -> Scorecard {
    let store = sim.daemon.store();
    let states = store.states().expect("states");
    let owners = store.owners().expect("owners");
    let input = handoff::report::Input {
        instance: "oracle",
        policy: &sim.config.policy,
        leads,
        states: &states,
        owners: &owners,
    };
    handoff::report::compute(&input, weeks, sim.now(), by)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scorecard_number_matches_the_org_it_was_computed_from() {
    let started = std::time::Instant::now();
    let crm = CrmKind::Salesforce;
    let opts = SimOptions { crm, seed: 33, leads: 250, days: 28, step: Duration::hours(1), ..SimOptions::new(crm) };
    let mut sim = Simulation::start(&opts).await.expect("the simulation starts");
    let org = sim.sandbox.shared.org.clone();
    // Run on to the end of the reporting week the timeline ends in, so
    // every week on the card is closed (the org is quiet after its end).
    let last_week = week_of(sim.end_at() - Duration::seconds(1));
    let until = ny_midnight(last_week + Duration::days(7));
    // Where a 5 s poller would have looked: just past each org event, and
    // just past each of handoff's own writes to a lead.
    let look = |at: DateTime<Utc>| at + Duration::seconds(LAG_SECS + 1);
    let mut looks: BTreeSet<DateTime<Utc>> = org.events.iter().map(|e| look(e.at)).collect();
    let mut ticks = Vec::new();
    // The sandbox's request log, drained tick by tick: handoff's lead writes.
    let mut writes_logged = Vec::new();
    while ticks.last().is_none_or(|t| *t < until) {
        if !ticks.is_empty() {
            let now = sim.now();
            let mut next = sim.next_stop(until).expect("next stop");
            if let Some(l) = looks.range(now + Duration::milliseconds(1)..).next() {
                next = next.min(*l);
            }
            sim.sandbox.shared.clock.advance_to(next);
        }
        sim.catch_up().await.expect("the daemon catches up");
        ticks.push(sim.now());
        let log = sim.sandbox.shared.log.snapshot();
        sim.sandbox.shared.log.clear();
        let before = writes_logged.len();
        writes_logged.extend(log.into_iter().filter(|r| !r.collection_records().is_empty()));
        if writes_logged.len() > before {
            looks.insert(look(sim.now()));
        }
    }
    let simulated = started.elapsed();
    let now = sim.now();
    assert_eq!(sim.daemon.store().counts().expect("counts").outbox, 0, "everything owed was written");

    // Ground truth.
    let index_of: HashMap<String, usize> = (0..org.leads.len()).map(|i| (lead_id(i), i)).collect();
    let writes = lead_writes(&writes_logged, &index_of);
    let histories = histories(&org, &writes);
    let default_calendar = org.calendars.iter().find(|c| c.id == "default").expect("the org's default calendar");
    assert_eq!(default_calendar.time_zone, REPORTING_ZONE.name());
    assert!(default_calendar.holidays.iter().all(|h| h.start.is_none() && h.end.is_none()), "whole-day holidays only");
    let holidays: BTreeSet<NaiveDate> = default_calendar.holidays.iter().map(|h| h.date).collect();
    let origin = org.config.start_at - Duration::days(1);
    let mut desks = HashMap::new();
    for zone in org.users.iter().map(|u| u.time_zone.clone()).chain([REPORTING_ZONE.name().to_string()]) {
        let tz: Tz = zone.parse().expect("an IANA zone");
        desks.entry(zone).or_insert_with(|| Desk::new(tz, &holidays, origin, i64::from(org.config.days) + 45));
    }
    let users: HashMap<String, &SynthUser> = org.users.iter().map(|u| (user_id(u.index), u)).collect();
    let world = World { org: &org, histories: &histories, desks, users, now };

    // The CRM agrees with the history rebuilt for it.
    let dump: Value = reqwest::get(format!("{}/salesforce/records/Lead", sim.sandbox.admin_url))
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    for r in dump["records"].as_array().expect("records") {
        let index = index_of[r["Id"].as_str().expect("Id")];
        let h = &histories[index];
        if h.removed {
            continue;
        }
        assert_eq!(r["OwnerId"].as_str(), h.owners.last().map(|(_, o)| o.as_str()), "lead {index}: owner");
        let status = h.statuses.last().map(|s| s.class);
        let crm_status = r["Status"].as_str().expect("Status");
        let want = org.events.iter().rev().find_map(|e| match &e.kind {
            EventKind::StatusChanged { lead, status } if *lead == index => Some(lead_status(status)),
            _ => None,
        });
        assert_eq!(Some(crm_status), Some(want.unwrap_or("Open - Not Contacted")), "lead {index}: status {status:?}");
    }

    // Grading and qualification follow the generator's intent, and the
    // daemon evaluated every lead.
    let states = sim.daemon.store().states().expect("states");
    for (index, l) in org.leads.iter().enumerate() {
        let h = &histories[index];
        if h.removed || h.created.is_none() {
            continue;
        }
        let want = match l.intended_grade {
            handoff_sandbox::org::IntendedGrade::A => Some("A"),
            handoff_sandbox::org::IntendedGrade::B => Some("B"),
            handoff_sandbox::org::IntendedGrade::C => Some("C"),
            handoff_sandbox::org::IntendedGrade::None => None,
        };
        assert_eq!(populated_required(l) == REQUIRED_FIELDS.len(), l.complete, "lead {index}: completeness");
        if l.complete {
            assert_eq!(meets_mql_rule(l).then(|| grade_of(l)).flatten(), want, "lead {index}: the oracle's grading");
        }
        let state = states.get(&lead_id(index)).unwrap_or_else(|| panic!("lead {index} was never evaluated"));
        assert!(state.error.is_none(), "lead {index}: {:?}", state.error);
    }

    // Which histories a poller could have seen exactly.
    let known: Vec<Knowable> = histories.iter().map(|h| knowable(h, &ticks)).collect();
    let live: Vec<usize> =
        (0..org.leads.len()).filter(|i| !histories[*i].removed && histories[*i].created.is_some()).collect();
    let qualified: Vec<usize> = live
        .iter()
        .copied()
        .filter(|i| meets_mql_rule(&org.leads[*i]) && populated_required(&org.leads[*i]) == REQUIRED_FIELDS.len())
        .collect();
    let unknown_routing: Vec<usize> = qualified.iter().copied().filter(|i| !known[*i].routing).collect();
    let unknown_sales: Vec<usize> = live.iter().copied().filter(|i| !known[*i].sales).collect();
    println!(
        "{} leads ({} removed), {} MQLs; {} ticks; left out: routing {:?}, sales {:?}",
        org.leads.len(),
        org.leads.len() - live.len(),
        qualified.len(),
        ticks.len(),
        unknown_routing,
        unknown_sales
    );
    assert!(
        unknown_routing.len() * 20 <= qualified.len(),
        "too many MQLs whose routing the daemon could not see: {unknown_routing:?}"
    );
    assert!(
        unknown_sales.len() * 20 <= live.len(),
        "too many leads whose history the daemon could not see: {unknown_sales:?}"
    );

    let stored = sim.daemon.store().leads().expect("leads");
    let subset = |keep: &dyn Fn(usize) -> bool| -> Vec<StoredLead> {
        stored.iter().filter(|s| index_of.get(&s.lead.id).is_some_and(|i| keep(*i))).cloned().collect()
    };
    let weeks = ((week_of(now) - week_of(org.config.start_at)).num_days() / 7 + 1) as usize;
    let mut problems = Vec::new();
    let mut tally = Tally::default();
    for part in [Part::Volume, Part::Routing, Part::Sales] {
        // Each part on the leads whose facts it needs are knowable (handoff's
        // report over the same leads).
        let feeds = |i: usize| match part {
            Part::Volume => Feeds { volume: true, routing: false, sales: false },
            Part::Routing => Feeds { volume: false, routing: known[i].routing, sales: false },
            Part::Sales => Feeds { volume: false, routing: false, sales: known[i].sales },
        };
        let leads = match part {
            Part::Volume => stored.clone(),
            Part::Routing => subset(&|i| known[i].routing),
            Part::Sales => subset(&|i| known[i].sales),
        };
        for by in [Some(Dimension::Grade), Some(Dimension::Rep)] {
            let have = handoff_card(&sim, &leads, weeks, by);
            assert!(have.weeks.iter().filter(|w| !w.partial).count() >= 4, "four closed weeks on the card");
            // The tally counts each lead once: on the grade breakdown.
            let mut scratch = Tally::default();
            let want = oracle(&world, &feeds, by, if by == Some(Dimension::Grade) { &mut tally } else { &mut scratch });
            compare(part, by, &have, &want, &mut problems);
        }
    }
    // The card the daemon serves is the same computation over everything it holds.
    let served = sim.scorecard().expect("the scorecard");
    let all = handoff_card(&sim, &stored, served.weeks.len(), None);
    assert_eq!(served.weeks, all.weeks, "the served scorecard is the report over the whole store");

    println!("cases over the run: {:?}", tally.0);
    println!("simulated in {simulated:?}, checked in {:?}", started.elapsed() - simulated);
    for w in &all.weeks {
        let m = &w.groups["all"];
        println!(
            "week {}{}: mqls {} routing {:?} acceptance {:?} first touch {:?} speed {:?}/{:?} follow-up {:?} disposition {:?} feedback {:?}",
            w.start,
            if w.partial { "*" } else { "" },
            m.mqls,
            m.routing_in_window,
            m.acceptance,
            m.first_touch_in_window,
            m.first_touch_business_minutes.median,
            m.first_touch_business_minutes.p90,
            m.follow_up_completion,
            m.disposition_in_window,
            m.feedback_quality
        );
    }
    assert!(
        problems.is_empty(),
        "{} scorecard numbers differ from the oracle:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Enough cases that agreement means something.
    for (what, min) in [
        ("mqls", 120),
        ("completeness (leads)", 130),
        ("opportunities", 5),
        ("routing", 120),
        ("acceptance", 40),
        ("first touch", 100),
        ("speed to first touch", 60),
        ("disposition", 100),
        ("follow-up", 10),
        ("follow-up (full cadence)", 2),
        ("first touch ended before any touch", 2),
        ("feedback missed after the grace", 3),
        ("leads with sequence emails (not touches)", 20),
        ("routing (never assigned)", 1),
        ("rejections", 15),
    ] {
        let n = tally.0.get(what).copied().unwrap_or(0);
        assert!(n >= min, "only {n} `{what}` cases; the org is too small to mean anything: {:?}", tally.0);
    }
    sim.sandbox.stop().await;
}
