//! The tasks and reassignments the clocks call for: at most one open task
//! per clock, addressed to whoever answers for it now.

use std::collections::{BTreeMap, BTreeSet};

use handoff_model::{Action, ActionKey, ActionKind, TaskPriority, TaskPurpose};

use super::history::first_opportunity;
use super::{keys, rfc3339, Clock, ClockKind, ClockStatus, Ctx};

/// What the clocks call for.
pub(super) struct Planned {
    pub actions: Vec<Action>,
    /// The task keys that should be open now.
    pub open: BTreeSet<ActionKey>,
    /// Per clock key code, why its other tasks are done.
    pub notes: BTreeMap<String, String>,
}

/// One line saying where a clock stands, for the note closing its tasks.
fn close_note(clock: &Clock) -> String {
    let label = clock.kind.label();
    match clock.status {
        ClockStatus::Met => format!("{label} met: {}", clock.reason),
        ClockStatus::Ended => format!("{label} {}", clock.reason),
        ClockStatus::Waived => format!("{label} waived: {}", clock.reason),
        ClockStatus::Breached if clock.stopped_at.is_some() && !clock.flagged => {
            format!("{label} done late: {}", clock.reason)
        }
        _ if clock.paused_since.is_some() => format!("{label} {}", clock.reason),
        ClockStatus::Breached => format!("{label} breached: {}", clock.reason),
        ClockStatus::AtRisk | ClockStatus::Pending => match (&clock.owner_id, &clock.first_owner_id) {
            (Some(owner), Some(first)) if owner != first => format!(
                "the lead is with {owner} since {}: {label} {}",
                clock.owner_since.map(rfc3339).unwrap_or_default(),
                clock.reason
            ),
            _ => format!("{label}: {}", clock.reason),
        },
    }
}

/// Reminders, escalations, flags and pool moves for the clocks: at most one
/// task per clock (the one asking for what is owed now), keyed by who
/// answers for it.
pub(super) fn clock_actions(ctx: &mut Ctx<'_, '_>, clocks: &[Clock]) -> Planned {
    let lead = ctx.lead;
    let version = ctx.policy.version;
    let mut planned = Planned { actions: Vec::new(), open: BTreeSet::new(), notes: BTreeMap::new() };
    // A lead the CRM takes no new activity on (converted in Salesforce):
    // its tasks go on the opportunity it became (the first one still there).
    let on_opportunity = if lead.read_only { first_opportunity(lead).map(|o| o.id.clone()) } else { None };
    for clock in clocks.iter().filter(|c| c.kind.is_sales()) {
        planned.notes.insert(clock.kind.key_code().to_string(), close_note(clock));
        let (Some(received), Some(owner)) = (clock.received_at, clock.owner_id.clone()) else {
            if matches!(clock.status, ClockStatus::AtRisk | ClockStatus::Breached) && clock.paused_since.is_none() {
                ctx.notes.add(|| {
                    format!("{}: no user owns the lead, so no reminder or escalation task", clock.kind.as_str())
                });
            }
            continue;
        };
        if !ctx.policy.enforcement.enforces(received) {
            // A clock of the past (before handoff enforced anything): measured, not acted on.
            continue;
        }
        let code = clock.kind.key_code();
        let later_holder = clock.first_owner_id.as_deref().is_some_and(|first| first != owner);
        let task_key = |what: &str| {
            if later_holder {
                keys::holder_key(&lead.id, code, received, what, &owner, version)
            } else {
                keys::clock_key(&lead.id, code, received, what, version)
            }
        };
        let label = clock.kind.label();
        let mut task: Option<Action> = None;
        match clock.status {
            ClockStatus::Breached if clock.flagged => {
                let subject = match clock.kind {
                    ClockKind::Cadence => {
                        format!("Follow-up cadence incomplete: lead {} was closed too early", lead.id)
                    }
                    ClockKind::ReasonCode => {
                        format!("Reason code missing: give lead {} an agreed reason code", lead.id)
                    }
                    _ => format!("Fix the {label} of lead {}", lead.id),
                };
                task = Some(Action {
                    key: task_key("flag"),
                    lead_id: lead.id.clone(),
                    kind: ActionKind::CreateTask {
                        assignee_id: owner.clone(),
                        subject,
                        body: clock.reason.clone(),
                        due_at: clock.due_at.or(clock.stopped_at).unwrap_or(received),
                        priority: TaskPriority::High,
                        purpose: TaskPurpose::DispositionFlag,
                        on_opportunity: on_opportunity.clone(),
                    },
                });
            }
            ClockStatus::AtRisk => {
                if let Some(due) = clock.due_at {
                    task = Some(Action {
                        key: task_key("rem"),
                        lead_id: lead.id.clone(),
                        kind: ActionKind::CreateTask {
                            assignee_id: owner.clone(),
                            subject: format!("SLA reminder: {label} for lead {} due {}", lead.id, rfc3339(due)),
                            body: clock.reason.clone(),
                            due_at: due,
                            priority: TaskPriority::Normal,
                            purpose: TaskPurpose::Reminder,
                            on_opportunity: on_opportunity.clone(),
                        },
                    });
                }
            }
            ClockStatus::Breached if clock.stopped_at.is_none() => {
                for rung in clock.escalations.iter().filter(|r| r.fired && r.reassign) {
                    if lead.owner_id.as_deref() == Some(rung.to.as_str()) {
                        continue;
                    }
                    // A lead goes to the pool once per clock, whoever had it.
                    let key = keys::clock_key(&lead.id, code, received, &format!("esc{}", rung.level), version);
                    planned.actions.push(Action {
                        key,
                        lead_id: lead.id.clone(),
                        kind: ActionKind::Reassign { to_owner_id: rung.to.clone() },
                    });
                }
                // The latest rung that fired: the manager asked now.
                let latest =
                    clock.escalations.iter().filter(|r| r.fired && !r.reassign).max_by_key(|r| (r.at, r.level));
                if let Some(rung) = latest {
                    task = Some(Action {
                        key: task_key(&format!("esc{}", rung.level)),
                        lead_id: lead.id.clone(),
                        kind: ActionKind::CreateTask {
                            assignee_id: rung.to.clone(),
                            subject: format!("SLA breached: {label} for lead {} (owner {owner})", lead.id),
                            body: format!("Escalation level {}: {}", rung.level, clock.reason),
                            due_at: rung.at,
                            priority: TaskPriority::High,
                            purpose: TaskPurpose::Escalation { level: rung.level },
                            on_opportunity: on_opportunity.clone(),
                        },
                    });
                }
            }
            ClockStatus::Pending if clock.kind == ClockKind::Cadence => {
                // A deferral whose follow-up date has come: the cadence resumes.
                if let Some(resumes) = clock.resumes_at.filter(|at| *at <= ctx.now) {
                    task = Some(Action {
                        key: if later_holder {
                            keys::holder_key(&lead.id, code, resumes, "fup", &owner, version)
                        } else {
                            keys::clock_key(&lead.id, code, resumes, "fup", version)
                        },
                        lead_id: lead.id.clone(),
                        kind: ActionKind::CreateTask {
                            assignee_id: owner.clone(),
                            subject: format!("Follow up on lead {}: its deferral ended {}", lead.id, rfc3339(resumes)),
                            body: clock.reason.clone(),
                            due_at: resumes,
                            priority: TaskPriority::Normal,
                            purpose: TaskPurpose::Reminder,
                            on_opportunity: on_opportunity.clone(),
                        },
                    });
                }
            }
            _ => {}
        }
        if let Some(task) = task {
            planned.open.insert(task.key.clone());
            planned.actions.push(task);
        }
    }
    planned
}
