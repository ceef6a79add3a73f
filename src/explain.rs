//! `handoff explain`: evaluate one lead offline and say why.
//!
//! The input is what a pull would have stored — the lead, its activities and
//! the owners — plus the instant to judge at, so an operator can replay a
//! disputed case ("why was I escalated?") without touching the CRM. The
//! report is plain text for people, or the engine's [`Evaluation`] as JSON.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use handoff_model::{ActionKind, Activity, Lead, Owner, TaskPurpose};
use serde::{Deserialize, Serialize};

use crate::engine::{evaluate, Clock, ClockStatus, Evaluation, Owners, StopCause};
use crate::policy::CompiledPolicy;

/// One lead's case, as `handoff explain` reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainInput {
    pub lead: Lead,
    #[serde(default)]
    pub activities: Vec<Activity>,
    #[serde(default)]
    pub owners: Vec<Owner>,
    /// The daemon's capacity decision for the lead (its stored state's).
    #[serde(default)]
    pub intake: Option<crate::engine::capacity::Intake>,
    /// The instant to judge at.
    pub now: DateTime<Utc>,
    /// JSON output instead of the text report.
    #[serde(default)]
    pub json: bool,
}

/// The lead, activities and owners of one case, as stored in a case file:
/// `{ "lead": {…}, "activities": [ … ], "owners": [ … ], "intake": {…} }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub lead: Lead,
    #[serde(default)]
    pub activities: Vec<Activity>,
    #[serde(default)]
    pub owners: Vec<Owner>,
    /// The capacity decision for the lead, as `handoff state` would hold it.
    #[serde(default)]
    pub intake: Option<crate::engine::capacity::Intake>,
}

impl ExplainInput {
    /// Reads a case file (see [`CaseFile`]) and sets the judging instant.
    pub fn from_case_file(path: &Path, now: DateTime<Utc>, json: bool) -> anyhow::Result<ExplainInput> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading case file {}", path.display()))?;
        let case: CaseFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "case file {} is not valid: it must be a JSON object with `lead` (required), `activities`, `owners` and `intake`",
                path.display()
            )
        })?;
        Ok(ExplainInput {
            lead: case.lead,
            activities: case.activities,
            owners: case.owners,
            intake: case.intake,
            now,
            json,
        })
    }
}

/// Evaluates the case under the config's policy and renders the report.
pub fn run(config: &crate::config::Config, input: &ExplainInput) -> anyhow::Result<String> {
    run_with_policy(config.policy(), input)
}

/// [`run`] with an already compiled policy.
pub fn run_with_policy(policy: &CompiledPolicy, input: &ExplainInput) -> anyhow::Result<String> {
    let owners = Owners::new(&input.owners);
    let evaluation = evaluate(&input.lead, &input.activities, &owners, policy, input.intake.as_ref(), input.now)
        .with_context(|| format!("evaluating lead {}", input.lead.id))?;
    if input.json {
        let mut text = serde_json::to_string_pretty(&evaluation).context("rendering the evaluation as JSON")?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(render(policy, input, &evaluation))
    }
}

fn at(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_else(|| "-".to_string())
}

/// The text report. `fmt::Write` on a `String` cannot fail, so results of
/// `writeln!` are ignored.
fn render(policy: &CompiledPolicy, input: &ExplainInput, ev: &Evaluation) -> String {
    let mut out = String::new();
    let lead = &input.lead;
    let _ = writeln!(out, "Lead {} (policy version {}), judged at {}", lead.id, policy.version, at(Some(input.now)));
    let _ = writeln!(out, "Owner: {}", lead.owner_id.as_deref().unwrap_or("(unassigned)"));
    let _ = writeln!(out, "MQL: {}", if ev.mql { "yes" } else { "no" });
    if let Some(name) = &ev.disqualified_by {
        let _ = writeln!(out, "Disqualified by: {name}");
    }
    match &ev.grade {
        Some(grade) => {
            let description = policy.grade_descriptions.get(grade).map(|d| format!(" ({d})")).unwrap_or_default();
            let _ = writeln!(out, "Grade: {grade}{description}, the first grade rule that matches:");
            if let Some((_, cond)) = policy.grades.iter().find(|(name, _)| name == grade) {
                for line in cond.explain(&lead.fields) {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        None => {
            let _ = writeln!(out, "Grade: none (no grade rule matches)");
        }
    }
    let _ = writeln!(out, "Segment: {}", ev.segment.as_deref().unwrap_or("(none)"));
    if let Some(why) = &ev.waived {
        let _ = writeln!(out, "Waived: {why}");
    }

    let _ = writeln!(out, "\nClocks:");
    for clock in &ev.clocks {
        render_clock(&mut out, clock, &input.owners);
    }

    let _ = writeln!(out, "\nActions ({}):", ev.actions.len());
    if ev.actions.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for action in &ev.actions {
        let what = match &action.kind {
            ActionKind::UpdateLead { fields } => {
                let list: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("update lead: {}", list.join(", "))
            }
            ActionKind::CreateTask { assignee_id, subject, due_at, purpose, .. } => {
                let purpose = match purpose {
                    TaskPurpose::Reminder => "reminder".to_string(),
                    TaskPurpose::Escalation { level } => format!("escalation level {level}"),
                    TaskPurpose::DispositionFlag => "disposition flag".to_string(),
                    TaskPurpose::ScorecardEscalation => "scorecard escalation".to_string(),
                    TaskPurpose::Digest => "daily digest".to_string(),
                    TaskPurpose::WeeklySummary => "weekly summary".to_string(),
                };
                format!("task ({purpose}) for {assignee_id}, due {}: {subject}", at(Some(*due_at)))
            }
            ActionKind::Reassign { to_owner_id } => format!("reassign to {to_owner_id}"),
            ActionKind::CompleteTask { task_key, note, .. } => format!("close task {task_key}: {note}"),
        };
        let _ = writeln!(out, "  [{}] {what}", action.key);
    }
    if !ev.open_tasks.is_empty() {
        let _ = writeln!(out, "\nOpen handoff tasks (one per clock at most; any other is closed):");
        for key in &ev.open_tasks {
            let _ = writeln!(out, "  {key}");
        }
    }

    let _ = writeln!(out, "\nSLA fields:");
    for (name, value) in &ev.sla_fields {
        let _ = writeln!(out, "  {name} = {value}");
    }
    let _ = writeln!(out, "\nNext check: {}", at(ev.next_check_at));
    if !ev.notes.is_empty() {
        let _ = writeln!(out, "\nWhy:");
        for note in &ev.notes {
            let _ = writeln!(out, "  - {note}");
        }
    }
    out
}

/// An owner id with the name the CRM gives it, when known.
fn who(id: &str, owners: &[Owner]) -> String {
    match owners.iter().find(|o| o.id == id).and_then(|o| o.name.as_deref()) {
        Some(name) => format!("{name} ({id})"),
        None => id.to_string(),
    }
}

fn render_clock(out: &mut String, clock: &Clock, owners: &[Owner]) {
    let _ = writeln!(out, "  {}: {}", clock.kind.as_str(), clock.status.as_str().replace('_', " "));
    let _ = writeln!(out, "    reason:   {}", clock.reason);
    if clock.received_at.is_none() && clock.due_at.is_none() {
        if let Some(owner) = &clock.owner_id {
            let _ = writeln!(out, "    whose:    {}", who(owner, owners));
        }
        return;
    }
    // Whose clock it is: the holder, since when, and how they came to it.
    let whose = match (&clock.owner_id, &clock.held_by, clock.paused_since) {
        (_, Some(queue), Some(since)) => {
            format!("nobody: paused since {} while queue {queue} (no intake seat) holds the lead", at(Some(since)))
        }
        (Some(owner), Some(queue), _) => format!("{}, intake seat of queue {queue}", who(owner, owners)),
        (Some(owner), None, _) => who(owner, owners),
        (None, _, _) => "nobody yet (no user owns the lead)".to_string(),
    };
    let since = match (&clock.owner_id, &clock.first_owner_id, clock.owner_since) {
        (Some(owner), Some(first), Some(since)) if owner != first => {
            format!(" since {} (took it over from {})", at(Some(since)), who(first, owners))
        }
        _ => String::new(),
    };
    let _ = writeln!(out, "    whose:    {whose}{since}");
    if let Some(calendar) = &clock.calendar {
        let _ = writeln!(out, "    calendar: {calendar}");
    }
    // Why it is over, when it is.
    let over = match clock.status {
        ClockStatus::Met => Some(format!("met by {}", stop_cause(clock))),
        ClockStatus::Ended => Some(format!("no longer owed (neither met nor breached) after {}", stop_cause(clock))),
        ClockStatus::Breached if clock.stopped_at.is_some() => Some(format!("done late by {}", stop_cause(clock))),
        _ => None,
    };
    if let Some(over) = over {
        let _ = writeln!(out, "    ended:    {over}");
    }
    let _ = writeln!(out, "    received: {}", at(clock.received_at));
    let _ = writeln!(out, "    started:  {}", at(clock.started_at));
    let _ = writeln!(out, "    due:      {}", at(clock.due_at));
    let _ = writeln!(out, "    remind:   {}", at(clock.remind_at));
    let _ = writeln!(out, "    stopped:  {}", at(clock.stopped_at));
    if clock.breached_at.is_some() {
        let _ = writeln!(out, "    breached: {}", at(clock.breached_at));
    }
    if let Some(resumes) = clock.resumes_at {
        let _ = writeln!(out, "    resumes:  {} (the deferral's follow-up date)", at(Some(resumes)));
    }
    for rung in &clock.escalations {
        let action = if rung.reassign { "reassign to" } else { "task for" };
        let state = if rung.fired { "due now" } else { "scheduled" };
        let _ = writeln!(
            out,
            "    escalation level {}: {action} {} at {} ({state})",
            rung.level,
            rung.to,
            at(Some(rung.at))
        );
    }
}

/// What stopped a clock, in words.
fn stop_cause(clock: &Clock) -> String {
    let when = at(clock.stopped_at);
    match &clock.stopped_by {
        Some(StopCause::Touch { activity_id }) => format!("activity {activity_id} at {when}"),
        Some(StopCause::Status { status }) if status.is_empty() => format!("a status change at {when}"),
        Some(StopCause::Status { status }) => format!("status `{status}` at {when}"),
        Some(StopCause::Assignment { owner_id }) => format!("given to {owner_id} at {when}"),
        Some(StopCause::ReasonCode { code }) => format!("reason code `{code}` at {when}"),
        Some(StopCause::Opportunity { opportunity_id }) => format!("opportunity {opportunity_id} created at {when}"),
        None => format!("at {when}"),
    }
}
