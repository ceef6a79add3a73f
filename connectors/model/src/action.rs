//! What the engine wants done in the CRM.
//!
//! Every action carries an [`ActionKey`] derived only from what it is about
//! (lead, clock, threshold, escalation level, policy version) — never from
//! wall-clock time — so re-evaluating the same lead produces the same key and
//! the daemon's ledger, plus the key written into the CRM record, make the
//! action happen exactly once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Deterministic identity of an action, safe to use as a CRM external id
/// (ASCII letters, digits, `-`, `_`, `.`, `:`; at most 80 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionKey(pub String);

impl ActionKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ActionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub key: ActionKey,
    /// The lead the action is about.
    pub lead_id: String,
    pub kind: ActionKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActionKind {
    /// Write SLA fields on the lead (CRM API names, values as JSON).
    UpdateLead { fields: BTreeMap<String, serde_json::Value> },
    /// Create a task assigned to `assignee_id`, linked to the lead.
    CreateTask {
        assignee_id: String,
        subject: String,
        body: String,
        due_at: Timestamp,
        priority: TaskPriority,
        purpose: TaskPurpose,
        /// Log it on this opportunity rather than on the lead: a lead
        /// Salesforce converted takes no new activity
        /// (`CANNOT_UPDATE_CONVERTED_LEAD`), so a task about it goes on the
        /// Opportunity it became (`WhatId`). HubSpot's contact stays
        /// writable: there the task stays on the contact.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_opportunity: Option<String>,
    },
    /// Give the lead to another owner (a pool or queue), the last rung of an
    /// escalation ladder.
    Reassign { to_owner_id: String },
    /// Close a task handoff created (Salesforce `Status = Completed`,
    /// HubSpot `hs_task_status = COMPLETED`) because what it asked for no
    /// longer stands: its clock was met or ended, the lead changed hands, or
    /// a later task about the same clock took its place.
    CompleteTask {
        /// The action key the task was created with (its external id).
        task_key: ActionKey,
        /// The CRM's id of the task, as the create's outcome reported it.
        task_id: String,
        /// One line saying why, for the person who had the task.
        note: String,
        /// The task's description as it should read: what it said, then the note.
        body: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskPriority {
    Normal,
    High,
}

/// Why a task exists; reports count tasks by purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "purpose", rename_all = "snake_case")]
pub enum TaskPurpose {
    /// Before a due time, to the owner.
    Reminder,
    /// After a breach; level 1 is the owner's manager, 2 the next level.
    Escalation { level: u8 },
    /// A closed lead without a reason code or with too few touches.
    DispositionFlag,
    /// A scorecard commitment missed weeks running, to the named leaders.
    ScorecardEscalation,
    /// The daily SLA digest of a rep or a manager, where no email or Slack
    /// channel reaches them.
    Digest,
    /// The weekly SLA summary to a leader, where no email or Slack channel
    /// is configured.
    WeeklySummary,
}
