//! What the sandbox's own task records say about the tasks handoff wrote:
//! how many it closed, and how many were ever open at once for one lead
//! and one clock. Both emulators answer it from their records
//! (`GET /__sandbox/salesforce/tasks/handoff`, `GET
//! /__sandbox/hubspot/tasks/handoff`), so a test or the demo can check
//! handoff's own bookkeeping against the CRM's.
//!
//! A task is handoff's when it carries a handoff key; the key names the
//! clock it is about in its second segment (`{lead}:{clock}:{start}:…`).
//! Scorecard tasks (`sc:…`) are about no lead and are left out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// One task with a handoff key, as an emulator holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub key: String,
    /// The lead (Salesforce `WhoId`) or contact the task is about.
    pub lead: String,
    pub created_at: DateTime<Utc>,
    /// When it was completed (Salesforce `CompletedDateTime`, HubSpot
    /// `hs_task_completion_date`); `None` while open.
    pub completed_at: Option<DateTime<Utc>>,
    /// The last change was made by the API user handoff runs as.
    pub changed_by_integration: bool,
}

/// (lead, clock) → (instant, +1 opened / −1 closed).
type Changes = BTreeMap<(String, String), Vec<(DateTime<Utc>, i32)>>;

/// The clock a handoff key names, if it is a lead's (scorecard
/// escalations, digests and weekly summaries are about no one lead).
fn clock_of(key: &str) -> Option<&str> {
    if ["sc:", "dg:", "ws:"].iter().any(|p| key.starts_with(p)) {
        return None;
    }
    key.split(':').nth(1).filter(|c| !c.is_empty())
}

/// The report: counts, and the most tasks ever open at once per (lead,
/// clock), counting a task closed at the same instant another is created
/// as closed first.
pub fn report(rows: &[TaskRow]) -> Value {
    let mut events: Changes = BTreeMap::new();
    let mut completed = 0usize;
    let mut completed_by_integration = 0usize;
    let mut open_now: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut about_leads = 0usize;
    for r in rows {
        if r.completed_at.is_some() {
            completed += 1;
            if r.changed_by_integration {
                completed_by_integration += 1;
            }
        }
        let Some(clock) = clock_of(&r.key) else { continue };
        about_leads += 1;
        // A task on a converted lead's Opportunity names no lead: its key does.
        let lead = match r.lead.as_str() {
            "" => r.key.split(':').next().unwrap_or_default().to_string(),
            lead => lead.to_string(),
        };
        let group = (lead, clock.to_string());
        let e = events.entry(group.clone()).or_default();
        e.push((r.created_at, 1));
        match r.completed_at {
            Some(done) => e.push((done.max(r.created_at), -1)),
            None => *open_now.entry(group).or_default() += 1,
        }
    }
    let mut max_ever = 0i32;
    let mut over_one = Vec::new();
    for ((lead, clock), mut e) in events {
        // Closings before openings at the same instant.
        e.sort();
        let (mut open, mut max) = (0i32, 0i32);
        for (_, delta) in e {
            open += delta;
            max = max.max(open);
        }
        max_ever = max_ever.max(max);
        if max > 1 {
            over_one.push(json!({"lead": lead, "clock": clock, "max_open": max}));
        }
    }
    json!({
        "tasks": rows.len(),
        "about_leads": about_leads,
        "completed": completed,
        "completed_by_integration_user": completed_by_integration,
        "open": rows.len() - completed,
        "max_open_per_lead_and_clock": max_ever,
        "max_open_now_per_lead_and_clock": open_now.values().copied().max().unwrap_or(0),
        "more_than_one_open": over_one,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(m: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_460_000 + m * 60, 0).unwrap_or_default()
    }

    fn row(key: &str, lead: &str, created: i64, done: Option<i64>) -> TaskRow {
        TaskRow {
            key: key.into(),
            lead: lead.into(),
            created_at: at(created),
            completed_at: done.map(at),
            changed_by_integration: true,
        }
    }

    #[test]
    fn a_task_replaced_at_the_same_instant_is_never_open_beside_its_successor() {
        let rows = [
            row("L1:ft:1:rem:v1", "L1", 0, Some(10)),
            row("L1:ft:1:esc1:v1", "L1", 10, None),
            row("L1:sal:1:rem:v1", "L1", 5, None),
            row("sc:x:20260302:u:v1", "", 0, None),
        ];
        let r = report(&rows);
        assert_eq!(r["max_open_per_lead_and_clock"], 1);
        assert_eq!(r["completed"], 1);
        assert_eq!(r["about_leads"], 3);
        assert_eq!(r["open"], 3);
    }

    #[test]
    fn two_open_tasks_for_one_clock_are_named() {
        let rows = [row("L1:ft:1:rem:v1", "L1", 0, Some(20)), row("L1:ft:1:esc1:v1", "L1", 10, None)];
        let r = report(&rows);
        assert_eq!(r["max_open_per_lead_and_clock"], 2);
        assert_eq!(r["max_open_now_per_lead_and_clock"], 1);
        assert_eq!(r["more_than_one_open"][0]["clock"], "ft");
    }
}
