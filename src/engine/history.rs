//! The facts a clock reads from a lead: who owned it when, which activities
//! are touches, and when it was dispositioned.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use handoff_model::{Activity, ActivityKind, Lead, OwnerKind};

use super::Owners;
use crate::policy::StatusMap;

/// What a status value means for the clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Open,
    Working,
    Accepted,
    Rejected,
    ClosedUnresponsive,
    Converted,
    /// Deferred with a follow-up date.
    Deferred,
    /// Held for nurture by marketing: no sales obligation.
    Nurture,
}

impl StatusClass {
    /// Accepted, rejected, closed, converted or deferred: the lead has been decided.
    pub fn is_disposition(self) -> bool {
        matches!(
            self,
            StatusClass::Accepted
                | StatusClass::Rejected
                | StatusClass::ClosedUnresponsive
                | StatusClass::Converted
                | StatusClass::Deferred
        )
    }

    /// Rejected, closed or converted: nobody owes the lead a first touch any more.
    pub fn ends_first_touch(self) -> bool {
        matches!(self, StatusClass::Rejected | StatusClass::ClosedUnresponsive | StatusClass::Converted)
    }

    /// Rejected or closed: the CRM record must carry a reason code.
    pub fn needs_reason(self) -> bool {
        matches!(self, StatusClass::Rejected | StatusClass::ClosedUnresponsive)
    }
}

/// The meaning of `status` under the policy's status map (case-insensitive,
/// as CRMs are loose about picklist case).
pub fn classify(statuses: &StatusMap, status: &str) -> Option<StatusClass> {
    let status = status.trim();
    let hit = |list: &[String]| list.iter().any(|s| s.trim().eq_ignore_ascii_case(status));
    if hit(&statuses.converted) {
        Some(StatusClass::Converted)
    } else if hit(&statuses.accepted) {
        Some(StatusClass::Accepted)
    } else if hit(&statuses.rejected) {
        Some(StatusClass::Rejected)
    } else if hit(&statuses.closed_unresponsive) {
        Some(StatusClass::ClosedUnresponsive)
    } else if hit(&statuses.deferred) {
        Some(StatusClass::Deferred)
    } else if hit(&statuses.nurture) {
        Some(StatusClass::Nurture)
    } else if hit(&statuses.working) {
        Some(StatusClass::Working)
    } else if hit(&statuses.open) {
        Some(StatusClass::Open)
    } else {
        None
    }
}

/// A datetime held in a CRM field: RFC 3339, Salesforce's
/// `2026-03-02T14:00:00.000+0000`, a bare date, or epoch milliseconds
/// (HubSpot), as a string or a number.
pub fn parse_field_datetime(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    match value {
        serde_json::Value::String(s) => {
            let s = s.trim();
            if let Ok(at) = DateTime::parse_from_rfc3339(s) {
                return Some(at.with_timezone(&Utc));
            }
            if let Ok(at) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
                return Some(at.with_timezone(&Utc));
            }
            if let Ok(at) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                return Some(at.and_utc());
            }
            if let Ok(date) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Some(date.and_time(chrono::NaiveTime::MIN).and_utc());
            }
            s.parse::<i64>().ok().and_then(DateTime::from_timestamp_millis)
        }
        serde_json::Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        _ => None,
    }
}

/// A number held in a CRM field, as a JSON number or a numeric string.
pub fn parse_field_number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

/// Ownership over time, as far as the record tells.
pub struct Ownership {
    /// `(owner id, kind, from)`, oldest first.
    spans: Vec<(String, OwnerKind, DateTime<Utc>)>,
    /// Set when the history was missing and the current owner was assumed
    /// to have held the lead since its creation.
    pub assumed: bool,
}

impl Ownership {
    pub fn new(lead: &Lead, owners: &Owners<'_>) -> Ownership {
        let kind_of = |id: &str, recorded: OwnerKind| owners.get(id).map(|o| o.kind).unwrap_or(recorded);
        let mut assignments: Vec<_> = lead.assignments.iter().collect();
        assignments.sort_by_key(|a| a.at);
        let mut spans: Vec<(String, OwnerKind, DateTime<Utc>)> = Vec::new();
        for a in assignments {
            if spans.last().is_some_and(|(id, _, _)| *id == a.owner_id) {
                continue;
            }
            spans.push((a.owner_id.clone(), kind_of(&a.owner_id, a.owner_kind), a.at));
        }
        let mut assumed = false;
        if spans.is_empty() {
            if let Some(id) = &lead.owner_id {
                spans.push((id.clone(), kind_of(id, OwnerKind::User), lead.created_at));
                assumed = true;
            }
        }
        Ownership { spans, assumed }
    }

    /// Who owned the lead at `at` (`None` before the first assignment).
    pub fn owner_at(&self, at: DateTime<Utc>) -> Option<(&str, OwnerKind)> {
        self.spans.iter().rev().find(|(_, _, from)| *from <= at).map(|(id, kind, _)| (id.as_str(), *kind))
    }

    /// Assignments to users (never queues), oldest first, each to a user
    /// other than the previous user owner.
    pub fn user_assignments(&self) -> Vec<(&str, DateTime<Utc>)> {
        let mut out: Vec<(&str, DateTime<Utc>)> = Vec::new();
        for (id, kind, at) in &self.spans {
            if *kind != OwnerKind::User {
                continue;
            }
            if out.last().is_some_and(|(prev, _)| *prev == id.as_str()) {
                continue;
            }
            out.push((id.as_str(), *at));
        }
        out
    }

    /// The user owning the lead at `at`, or else the first user it was given
    /// to afterwards: whose calendar and inbox a clock starting at `at` uses.
    pub fn user_for(&self, at: DateTime<Utc>) -> Option<&str> {
        match self.owner_at(at) {
            Some((id, OwnerKind::User)) => Some(id),
            _ => self.user_assignments().into_iter().find(|(_, from)| *from >= at).map(|(id, _)| id),
        }
    }

    /// Who answers for the lead's sales clocks, span by span, oldest first
    /// (see [`Holder`]). `seats` maps queue ids to their intake seats.
    pub fn holders(&self, seats: &BTreeMap<String, String>) -> Vec<HolderSpan> {
        let mut out: Vec<HolderSpan> = Vec::new();
        let mut had_user = false;
        for (id, kind, from) in &self.spans {
            let holder = match kind {
                OwnerKind::User => {
                    had_user = true;
                    Holder::User(id.clone())
                }
                OwnerKind::Queue => match seats.get(id).map(|s| s.trim()).filter(|s| !s.is_empty()) {
                    Some(seat) => Holder::Seat { queue: id.clone(), user: seat.to_string() },
                    None if had_user => Holder::Paused { queue: id.clone() },
                    None => Holder::Unrouted,
                },
            };
            if out.last().is_some_and(|last| last.holder == holder) {
                continue;
            }
            out.push(HolderSpan { from: *from, holder });
        }
        out
    }
}

/// Who answers for a lead's sales clocks while it has one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A user owns the lead: their calendar, their inbox, their managers.
    User(String),
    /// A queue with an intake seat holds it: the seat answers for it.
    Seat { queue: String, user: String },
    /// A queue without a seat holds a lead a user had before (the ladder's
    /// pool, say): its clocks pause until a user owns it again.
    Paused { queue: String },
    /// Waiting for its first user (a routing queue, or no owner yet): the
    /// clocks run, and belong to whoever gets the lead first.
    Unrouted,
}

impl Holder {
    /// The user who answers, if anyone does.
    pub fn user(&self) -> Option<&str> {
        match self {
            Holder::User(u) | Holder::Seat { user: u, .. } => Some(u),
            Holder::Paused { .. } | Holder::Unrouted => None,
        }
    }
}

/// `holder` answers for the lead from `from` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderSpan {
    pub from: DateTime<Utc>,
    pub holder: Holder,
}

/// The opportunity the lead became: the first one created that is still
/// there (ties by id).
pub fn first_opportunity(lead: &handoff_model::Lead) -> Option<&handoff_model::Opportunity> {
    lead.opportunities.iter().filter(|o| !o.deleted).min_by_key(|o| (o.created_at, &o.id))
}

/// The holder at `at` (nobody before the first span).
pub fn holder_at(spans: &[HolderSpan], at: DateTime<Utc>) -> Holder {
    spans.iter().rev().find(|s| s.from <= at).map(|s| s.holder.clone()).unwrap_or(Holder::Unrouted)
}

/// An activity that counts as a touch at all: one of the segment's touch
/// kinds (calls, emails, meetings) on this lead, not deleted, not created
/// by handoff itself, and not sent by automation unless `automated` says
/// such activities count. Tasks never count, and neither does a status
/// change (which is not an activity).
pub fn is_touch(activity: &Activity, lead_id: &str, kinds: &[ActivityKind], automated: bool) -> bool {
    activity.lead_id == lead_id
        && !activity.deleted
        && activity.handoff_key.is_none()
        && activity.kind != ActivityKind::Task
        && kinds.contains(&activity.kind)
        && (automated || !activity.automated)
}

/// The value `field` held at `at`, from its history (oldest first, starting
/// with the value at creation), else its current value.
pub fn value_at<'a>(lead: &'a Lead, field: &str, at: DateTime<Utc>) -> Option<&'a serde_json::Value> {
    match lead.field_history.get(field).filter(|h| !h.is_empty()) {
        Some(history) => {
            let held = history.iter().rev().find(|c| c.at <= at).or(history.first());
            held.map(|c| &c.value)
        }
        None => lead.fields.get(field),
    }
}

/// A status decision: the lead's status became `status` at `at`.
#[derive(Debug, Clone)]
pub struct Decision {
    pub at: DateTime<Utc>,
    pub status: String,
    pub class: StatusClass,
}

/// Every status change into a disposition status, oldest first, plus the
/// conversion time. When the history is empty but the current status is a
/// disposition, the lead's modification time stands in (and `assumed` says so).
pub fn decisions(lead: &Lead, statuses: &StatusMap, current_status: Option<&str>) -> (Vec<Decision>, bool) {
    let mut out: Vec<Decision> = lead
        .status_changes
        .iter()
        .filter_map(|c| {
            let class = classify(statuses, &c.status)?;
            class.is_disposition().then(|| Decision { at: c.at, status: c.status.clone(), class })
        })
        .collect();
    if let Some(at) = lead.converted_at {
        out.push(Decision { at, status: "converted".to_string(), class: StatusClass::Converted });
    }
    let mut assumed = false;
    if out.is_empty() {
        if let Some(status) = current_status {
            if let Some(class) = classify(statuses, status).filter(|c| c.is_disposition()) {
                out.push(Decision { at: lead.modified_at, status: status.to_string(), class });
                assumed = true;
            }
        }
    }
    out.sort_by_key(|d| d.at);
    (out, assumed)
}
