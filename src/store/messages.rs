//! The message outbox: daily digests and weekly summaries owed to people by
//! email or Slack (see [`crate::notify`]).
//!
//! It works like the action outbox: a message is queued under its key in
//! the same commit that decided it, leaves the queue only into the ledger
//! (delivered) or marked failed (needs an operator), and is never queued
//! twice under one key. One thing differs: a mail server or Slack keeps no
//! idempotency key, so a send whose outcome was never recorded (the process
//! died between the server's answer and the commit) cannot be told apart
//! from one that never left. Such an entry is marked `sending_since` before
//! the send and, found so after a restart, is given up on by name instead of
//! being sent again: a digest arrives at most once, and `handoff state`
//! says which one may not have.

use chrono::{DateTime, Utc};
use handoff_model::{ActionKey, WriteError};
use serde::{Deserialize, Serialize};

use super::{Batch, Store, StoreError, Tree};

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    RepDigest,
    ManagerDigest,
    WeeklySummary,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::RepDigest => "rep_digest",
            MessageKind::ManagerDigest => "manager_digest",
            MessageKind::WeeklySummary => "weekly_summary",
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Delivery {
    Email {
        to: String,
    },
    /// The incoming webhook's own channel.
    SlackWebhook,
    /// `chat.postMessage` to a channel or a user (a direct message).
    SlackChannel {
        channel: String,
    },
}

impl Delivery {
    pub fn channel_name(&self) -> &'static str {
        match self {
            Delivery::Email { .. } => "email",
            Delivery::SlackWebhook | Delivery::SlackChannel { .. } => "slack",
        }
    }

    /// Who it reaches, for the ledger and `handoff state`.
    pub fn address(&self) -> String {
        match self {
            Delivery::Email { to } => to.clone(),
            Delivery::SlackWebhook => "(webhook channel)".to_string(),
            Delivery::SlackChannel { channel } => channel.clone(),
        }
    }
}

/// One message, rendered when it was decided: a retry sends exactly this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub key: ActionKey,
    pub kind: MessageKind,
    /// The CRM owner it is for; empty for a summary to an address or channel.
    pub recipient: String,
    pub delivery: Delivery,
    pub subject: String,
    /// The plain-text part (and the body of a CRM task).
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// Slack `mrkdwn`.
    pub slack: String,
    /// When the content was computed (the email's `Date:`).
    pub composed_at: DateTime<Utc>,
}

/// A message handoff owes a person or a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEntry {
    pub seq: u64,
    pub message: Message,
    pub enqueued_at: DateTime<Utc>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not sent again before this instant (backoff, `Retry-After`).
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<WriteError>,
    /// Given up on: `handoff state` lists it, `--retry-failed` queues it again.
    pub failed: bool,
    /// Set just before a send and cleared with its outcome.
    #[serde(default)]
    pub sending_since: Option<DateTime<Utc>>,
}

impl Store {
    /// Every queued message, oldest first (failed ones included).
    pub fn messages(&self) -> Result<Vec<MessageEntry>, StoreError> {
        Ok(self.scan::<MessageEntry>(Tree::Messages, b"", None, usize::MAX)?.into_iter().map(|(_, e)| e).collect())
    }

    /// Up to `limit` messages that may be sent at `now`, oldest first.
    pub fn messages_ready(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<MessageEntry>, StoreError> {
        let mut ready: Vec<MessageEntry> = self
            .messages()?
            .into_iter()
            .filter(|e| !e.failed && e.sending_since.is_none() && e.next_attempt_at <= now)
            .collect();
        ready.truncate(limit);
        Ok(ready)
    }

    /// The sequence of a queued message.
    pub fn message_queued(&self, key: &ActionKey) -> Result<Option<u64>, StoreError> {
        self.get(Tree::MessageKeys, key.as_str().as_bytes())
    }

    /// The next free message sequence number.
    pub fn next_message_seq(&self) -> Result<u64, StoreError> {
        Ok(self.meta_u64("message_seq")?.unwrap_or(1))
    }

    /// Whether a message or action with this key was delivered or is queued
    /// (in either outbox).
    pub fn known_key(&self, key: &ActionKey) -> Result<bool, StoreError> {
        Ok(self.ledger(key)?.is_some() || self.message_queued(key)?.is_some() || self.queued(key)?.is_some())
    }
}

impl Batch {
    /// Queues `message` under `seq`; the caller bumps the sequence with
    /// [`Batch::set_next_message_seq`].
    pub fn enqueue_message(&mut self, seq: u64, message: &Message, now: DateTime<Utc>) {
        let entry = MessageEntry {
            seq,
            message: message.clone(),
            enqueued_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            failed: false,
            sending_since: None,
        };
        self.put(Tree::Messages, seq.to_be_bytes().to_vec(), &entry);
        self.put(Tree::MessageKeys, message.key.as_str().as_bytes().to_vec(), &seq);
    }

    pub fn set_next_message_seq(&mut self, next: u64) {
        self.set_meta_u64("message_seq", next);
    }

    /// Rewrites a queued message (a send starting, a failed attempt).
    pub fn update_message(&mut self, entry: &MessageEntry) {
        self.put(Tree::Messages, entry.seq.to_be_bytes().to_vec(), entry);
    }

    /// Records a delivered message in the ledger and removes it from the queue.
    pub fn confirm_message(&mut self, entry: &MessageEntry, ledger: &super::LedgerEntry) {
        self.delete(Tree::Messages, entry.seq.to_be_bytes().to_vec());
        self.delete(Tree::MessageKeys, entry.message.key.as_str().as_bytes().to_vec());
        self.record_ledger(entry.message.key.as_str(), ledger);
    }
}
