//! What the daemon does each tick: [`Notifier::plan`] queues the digests
//! and the summary that are due and not yet known (by key), in one batch;
//! [`Notifier::drain`] delivers queued messages and records each outcome.
//! [`refresh_signals`] keeps the latest closed week's signals for `/metrics`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use handoff_model::{
    Action, ActionKey, ActionKind, ErrorClass, Owner, OwnerKind, TaskPriority, TaskPurpose, WriteError,
};

use super::channel::{self, ChannelError};
use super::digest::{self, Book, Digest, RecordUrl};
use super::settings::NotifySettings;
use super::{schedule, summary, Delivery, DigestKind, Message, MessageKind, SignalSettings};
use crate::config::{Config, ConfigError, Connection};
use crate::engine::{self, Owners};
use crate::policy::CompiledPolicy;
use crate::report;
use crate::report::signals;
use crate::store::{ActionSummary, Batch, LedgerEntry, MessageEntry, Store, StoreError};

/// The longest task body a CRM takes comfortably (Salesforce: 32,000).
const TASK_BODY_MAX_CHARS: usize = 30_000;
/// Messages sent per tick at most.
const SENDS_PER_TICK: usize = 50;
/// A digest found with nothing to send (its recipient owns no lead, leads
/// no team) is looked at again after leads changed, at most this often:
/// every look reads every lead.
const QUIET_RECHECK_MINUTES: i64 = 15;

/// Why notifications could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Secret(#[from] ConfigError),
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

/// What [`Notifier::plan`] decided.
#[derive(Default)]
pub struct Planned {
    pub batch: Batch,
    pub messages: usize,
    pub tasks: usize,
}

/// What [`Notifier::drain`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
    /// Given-up deliveries, by key and error name.
    pub errors: Vec<String>,
    /// Nothing ready is left.
    pub done: bool,
}

/// The digests and summary of one instance, with its channels.
pub struct Notifier {
    settings: NotifySettings,
    instance: String,
    version: u32,
    urls: RecordUrl,
    email: Option<channel::Email>,
    slack: Option<channel::Slack>,
    /// Digest keys found with nothing to send, and when.
    quiet: HashMap<ActionKey, DateTime<Utc>>,
    /// Leads changed since the last look at the quiet keys.
    changed: bool,
    /// The closed week whose summary needs nothing more.
    summary_done: Option<NaiveDate>,
}

/// The link template for `config`'s CRM.
pub fn record_url(config: &Config, settings: &NotifySettings) -> RecordUrl {
    if let Some(t) = &settings.record_url {
        return RecordUrl(t.clone());
    }
    match &config.connection {
        Connection::Salesforce(s) => RecordUrl::salesforce(s.instance_url.as_deref().unwrap_or(&s.login_url)),
        Connection::Hubspot(h) => RecordUrl::hubspot(
            settings.hubspot_portal_id.as_deref().unwrap_or("0"),
            h.lead_object == crate::config::HubspotLeadObject::Leads,
        ),
    }
}

impl Notifier {
    /// The notifier `[notify]` asks for, channels built and secrets read;
    /// `None` without `[notify]`.
    pub fn from_config(config: &Config) -> Result<Option<Notifier>, NotifyError> {
        let Some(settings) = config.notify.clone() else { return Ok(None) };
        let email = match &settings.email {
            Some(e) => {
                let password = e.password.as_ref().map(|p| p.resolve()).transpose()?;
                Some(channel::Email::new(e, password)?)
            }
            None => None,
        };
        let slack = match &settings.slack {
            Some(s) => {
                let webhook = s.webhook_url.as_ref().map(|w| w.resolve()).transpose()?;
                let token = s.bot_token.as_ref().map(|t| t.resolve()).transpose()?;
                Some(channel::Slack::new(s, webhook, token)?)
            }
            None => None,
        };
        Ok(Some(Notifier {
            urls: record_url(config, &settings),
            settings,
            instance: config.instance.name.clone(),
            version: config.policy.version,
            email,
            slack,
            quiet: HashMap::new(),
            changed: false,
            summary_done: None,
        }))
    }

    /// Leads changed: a digest found empty may have something now.
    pub fn leads_changed(&mut self) {
        self.changed = true;
    }

    fn override_of(&self, owner_id: &str) -> Option<&super::settings::RecipientOverride> {
        self.settings.recipients.get(owner_id)
    }

    /// How a digest reaches `owner`: email, a Slack direct message, or
    /// `None` (a CRM task).
    fn digest_delivery(&self, owner: &Owner) -> Option<Delivery> {
        let o = self.override_of(&owner.id);
        if self.email.is_some() {
            if let Some(to) = o.and_then(|o| o.email.clone()).or_else(|| owner.email.clone()) {
                return Some(Delivery::Email { to });
            }
        }
        if self.slack.as_ref().is_some_and(|s| s.has_bot()) {
            if let Some(user) = o.and_then(|o| o.slack.clone()) {
                return Some(Delivery::SlackChannel { channel: user });
            }
        }
        None
    }

    /// Queues what is due at `now` and not yet known.
    pub fn plan(
        &mut self,
        store: &Store,
        policy: &CompiledPolicy,
        owners: &[Owner],
        signal_settings: &SignalSettings,
        now: DateTime<Utc>,
    ) -> Result<Planned, StoreError> {
        let mut planned = Planned::default();
        let index = Owners::new(owners);
        self.quiet.retain(|_, at| now - *at < Duration::days(2));
        let recheck = Duration::minutes(QUIET_RECHECK_MINUTES);
        // Digests due now, not yet sent or queued.
        let mut due: Vec<(&Owner, DigestKind, NaiveDate, chrono_tz::Tz, ActionKey)> = Vec::new();
        for owner in owners.iter().filter(|o| o.kind == OwnerKind::User && o.active) {
            if self.override_of(&owner.id).is_some_and(|o| !o.digests) {
                continue;
            }
            let Ok(schedule) = engine::owner_schedule(policy, &index, Some(&owner.id)) else { continue };
            let Some(date) = schedule::digest_due(&schedule, self.settings.digest_time.0, now) else { continue };
            for kind in &self.settings.digests {
                let key = super::digest_key(&owner.id, date, *kind, self.version);
                if self.quiet.get(&key).is_some_and(|at| !self.changed || now - *at < recheck) {
                    continue;
                }
                if store.known_key(&key)? {
                    continue;
                }
                due.push((owner, *kind, date, schedule.time_zone(), key));
            }
        }
        let summary_week = self.summary_week(policy, &index, now);
        if due.is_empty() && summary_week.is_none() {
            return Ok(planned);
        }
        let mut seq = store.next_seq()?;
        let mut message_seq = store.next_message_seq()?;
        if !due.is_empty() {
            self.changed = false;
            let book = Book::from_store(store, owners)?;
            let mut teams: HashMap<String, Vec<String>> = HashMap::new();
            for rep in book.lead_owners() {
                if let Some(m) = index.manager_of(rep, policy) {
                    teams.entry(m).or_default().push(rep.to_string());
                }
            }
            for (owner, kind, date, tz, key) in due {
                let rows = match kind {
                    DigestKind::Rep if book.owns_leads(&owner.id) => digest::rep_rows(&book, &owner.id, &self.urls),
                    DigestKind::Manager => match teams.get(&owner.id) {
                        Some(team) => digest::manager_rows(&book, team, &self.urls),
                        None => {
                            self.quiet.insert(key, now);
                            continue;
                        }
                    },
                    DigestKind::Rep => {
                        self.quiet.insert(key, now);
                        continue;
                    }
                };
                if rows.is_empty() && !self.settings.empty_digests {
                    self.quiet.insert(key, now);
                    continue;
                }
                let d = Digest {
                    kind,
                    recipient_id: owner.id.clone(),
                    recipient_name: book.name_of(&owner.id),
                    local_date: date,
                    time_zone: tz,
                    as_of: now,
                    rows,
                };
                let message_kind = match kind {
                    DigestKind::Rep => MessageKind::RepDigest,
                    DigestKind::Manager => MessageKind::ManagerDigest,
                };
                match self.digest_delivery(owner) {
                    Some(delivery) => {
                        let m = Message {
                            key,
                            kind: message_kind,
                            recipient: owner.id.clone(),
                            delivery,
                            subject: d.subject(&self.instance),
                            text: d.text(&self.instance),
                            html: d.html(&self.instance),
                            slack: d.slack(&self.instance),
                            composed_at: now,
                        };
                        planned.batch.enqueue_message(message_seq, &m, now);
                        message_seq += 1;
                        planned.messages += 1;
                    }
                    None => {
                        let due_at =
                            schedule::local_instant(tz, date, NaiveTime::from_hms_opt(17, 0, 0).unwrap_or_default())
                                .max(now);
                        let action = task(
                            key,
                            &owner.id,
                            d.subject(&self.instance),
                            d.text(&self.instance),
                            due_at,
                            TaskPurpose::Digest,
                        );
                        planned.batch.enqueue(seq, &action, now);
                        seq += 1;
                        planned.tasks += 1;
                    }
                }
            }
        }
        if let Some(week) = summary_week {
            let card = report::from_store(&self.instance, policy, store, signals::HISTORY_WEEKS, now, None)?;
            let found = signals::evaluate(&card, signal_settings);
            match summary::compose(&card, week, policy.scorecard.consecutive_weeks, found) {
                None => {}
                Some(s) => {
                    for (target, delivery) in self.summary_targets(policy, &index) {
                        let key = super::summary_key(week, &target, self.version);
                        if store.known_key(&key)? {
                            continue;
                        }
                        match delivery {
                            Some(delivery) => {
                                let m = Message {
                                    key,
                                    kind: MessageKind::WeeklySummary,
                                    recipient: String::new(),
                                    delivery,
                                    subject: s.subject(),
                                    text: s.text(),
                                    html: s.html(),
                                    slack: s.slack(),
                                    composed_at: now,
                                };
                                planned.batch.enqueue_message(message_seq, &m, now);
                                message_seq += 1;
                                planned.messages += 1;
                            }
                            None => {
                                let action = task(
                                    key,
                                    &target,
                                    s.subject(),
                                    s.text(),
                                    now + Duration::days(1),
                                    TaskPurpose::WeeklySummary,
                                );
                                planned.batch.enqueue(seq, &action, now);
                                seq += 1;
                                planned.tasks += 1;
                            }
                        }
                    }
                }
            }
            self.summary_done = Some(week);
        }
        planned.batch.set_next_seq(seq);
        planned.batch.set_next_message_seq(message_seq);
        if planned.messages + planned.tasks > 0 {
            tracing::info!(messages = planned.messages, tasks = planned.tasks, "digests and summaries queued");
        }
        Ok(planned)
    }

    /// The next instant after `now` at which a digest or the summary comes
    /// due, so the service wakes for it rather than at its next pause.
    pub fn next_due(&self, policy: &CompiledPolicy, owners: &[Owner], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let index = Owners::new(owners);
        let at = self.settings.digest_time.0;
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| {
            if t > now && next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        if !self.settings.digests.is_empty() {
            let mut zones: Vec<chrono_tz::Tz> = owners
                .iter()
                .filter(|o| o.kind == OwnerKind::User && o.active)
                .filter_map(|o| engine::owner_schedule(policy, &index, Some(&o.id)).ok().map(|s| s.time_zone()))
                .collect();
            zones.sort_by_key(|z| z.name());
            zones.dedup();
            for tz in zones {
                let today = now.with_timezone(&tz).date_naive();
                for d in [today, today + Duration::days(1)] {
                    consider(schedule::local_instant(tz, d, at));
                }
            }
        }
        if self.settings.summary {
            let tz = report::reporting_zone(policy);
            let current = report::week_start(now, tz, policy.scorecard.week_starts);
            if let Ok(sched) = engine::owner_schedule(policy, &index, None) {
                let sched = sched.with_time_zone(tz);
                for w in [current, current + Duration::weeks(1)] {
                    consider(schedule::summary_due_at(&sched, w, self.settings.summary_time.0));
                }
            }
        }
        next
    }

    /// The closed week whose summary is due at `now` and not yet handled.
    fn summary_week(&self, policy: &CompiledPolicy, index: &Owners<'_>, now: DateTime<Utc>) -> Option<NaiveDate> {
        if !self.settings.summary {
            return None;
        }
        let tz = report::reporting_zone(policy);
        let current = report::week_start(now, tz, policy.scorecard.week_starts);
        let closed = current - Duration::weeks(1);
        if self.summary_done == Some(closed) {
            return None;
        }
        let sched = engine::owner_schedule(policy, index, None).ok()?.with_time_zone(tz);
        (now >= schedule::summary_due_at(&sched, current, self.settings.summary_time.0)).then_some(closed)
    }

    /// Where the summary goes: (key target, delivery); `None` delivery is a
    /// CRM task for that leader.
    fn summary_targets(&self, policy: &CompiledPolicy, index: &Owners<'_>) -> Vec<(String, Option<Delivery>)> {
        let mut out = Vec::new();
        if self.email.is_some() {
            let to: Vec<String> = if self.settings.summary_to.is_empty() {
                policy
                    .scorecard
                    .notify
                    .iter()
                    .filter_map(|id| {
                        self.override_of(id)
                            .and_then(|o| o.email.clone())
                            .or_else(|| index.get(id).and_then(|o| o.email.clone()))
                    })
                    .collect()
            } else {
                self.settings.summary_to.clone()
            };
            out.extend(to.into_iter().map(|a| (a.clone(), Some(Delivery::Email { to: a }))));
        }
        if let (Some(slack), Some(s)) = (&self.slack, &self.settings.slack) {
            if slack.has_webhook() {
                out.push(("slack".to_string(), Some(Delivery::SlackWebhook)));
            } else if let Some(channel) = &s.channel {
                out.push(("slack".to_string(), Some(Delivery::SlackChannel { channel: channel.clone() })));
            }
        }
        if self.email.is_none() && self.slack.is_none() {
            out.extend(policy.scorecard.notify.iter().map(|leader| (leader.clone(), None)));
        }
        out
    }

    /// Delivers ready messages; records each outcome in its own commit.
    pub async fn drain(&self, store: &Store, now: DateTime<Utc>, max_attempts: u32) -> Result<Drained, StoreError> {
        let mut out = Drained::default();
        // A send whose outcome was never recorded: the process stopped
        // mid-send. It may have arrived; it is not sent again unasked.
        for mut e in store.messages()?.into_iter().filter(|e| e.sending_since.is_some() && !e.failed) {
            e.sending_since = None;
            e.failed = true;
            e.last_error = Some(WriteError {
                class: ErrorClass::Permanent,
                code: "interrupted".into(),
                message: "handoff stopped while sending this; it may have arrived. `handoff state --retry-failed` sends it again".into(),
            });
            let line = format!("{} to {}: interrupted mid-send", e.message.key, e.message.delivery.address());
            tracing::warn!(key = %e.message.key, "a message was being sent when handoff stopped; not sent again");
            store.record_error(now, &format!("notify:{}", e.message.delivery.channel_name()), &line)?;
            let mut b = Batch::default();
            b.update_message(&e);
            store.commit(b)?;
            out.failed += 1;
            out.errors.push(line);
        }
        let ready = store.messages_ready(now, SENDS_PER_TICK)?;
        let full = ready.len() == SENDS_PER_TICK;
        for entry in ready {
            let mut sending = entry.clone();
            sending.attempts += 1;
            sending.sending_since = Some(now);
            let mut b = Batch::default();
            b.update_message(&sending);
            store.commit(b)?;
            let result = self.send(&sending).await;
            let mut b = Batch::default();
            match result {
                Ok(id) => {
                    b.confirm_message(
                        &sending,
                        &LedgerEntry {
                            lead_id: String::new(),
                            crm_id: id,
                            done_at: now,
                            kind: ActionSummary::Message {
                                channel: sending.message.delivery.channel_name().to_string(),
                                recipient: sending.message.delivery.address(),
                            },
                            attempts: sending.attempts,
                        },
                    );
                    out.sent += 1;
                }
                Err(error) => {
                    let mut next = sending.clone();
                    next.sending_since = None;
                    let channel = sending.message.delivery.channel_name();
                    let line = format!(
                        "{} to {}: {}: {}",
                        sending.message.key,
                        sending.message.delivery.address(),
                        error.code,
                        error.message
                    );
                    match &error.class {
                        ErrorClass::Retryable if next.attempts < max_attempts => {
                            next.next_attempt_at = now + crate::store::backoff(next.attempts);
                            out.retrying += 1;
                            tracing::warn!(channel, code = %error.code, error = %error.message, key = %sending.message.key, "delivery failed; retrying later");
                        }
                        ErrorClass::RateLimited { retry_after_secs } if next.attempts < max_attempts => {
                            next.next_attempt_at = now + Duration::seconds(*retry_after_secs as i64);
                            out.retrying += 1;
                            tracing::warn!(channel, code = %error.code, retry_after_secs, key = %sending.message.key, "delivery rate-limited; retrying after the server's delay");
                        }
                        _ => {
                            next.failed = true;
                            out.failed += 1;
                            tracing::warn!(channel, code = %error.code, error = %error.message, key = %sending.message.key, "delivery given up on; see `handoff state`");
                            out.errors.push(line.clone());
                        }
                    }
                    store.record_error(now, &format!("notify:{channel}"), &line)?;
                    next.last_error = Some(error);
                    b.update_message(&next);
                }
            }
            store.commit(b)?;
        }
        out.done = !full;
        Ok(out)
    }

    async fn send(&self, e: &MessageEntry) -> Result<String, WriteError> {
        let missing = |what: &str| WriteError {
            class: ErrorClass::NeedsConfig,
            code: "channel_removed".into(),
            message: format!("{what} is no longer configured; configure it again or drop the message"),
        };
        match &e.message.delivery {
            Delivery::Email { to } => match &self.email {
                Some(email) => email.send(&e.message, to).await,
                None => Err(missing("notify.email")),
            },
            Delivery::SlackWebhook | Delivery::SlackChannel { .. } => match &self.slack {
                Some(slack) => slack.send(&e.message).await,
                None => Err(missing("notify.slack")),
            },
        }
    }
}

fn task(
    key: ActionKey,
    assignee: &str,
    subject: String,
    body: String,
    due_at: DateTime<Utc>,
    purpose: TaskPurpose,
) -> Action {
    Action {
        key,
        lead_id: String::new(),
        kind: ActionKind::CreateTask {
            assignee_id: assignee.to_string(),
            subject: subject.chars().take(250).collect(),
            body: body.chars().take(TASK_BODY_MAX_CHARS).collect(),
            due_at,
            priority: TaskPriority::Normal,
            purpose,
            on_opportunity: None,
        },
    }
}

/// Recomputes the latest closed week's signals when that week changed (or
/// nothing is cached yet), for `/metrics` and `/scorecard`. Empty batch when
/// the cache is current.
pub fn refresh_signals(
    store: &Store,
    policy: &CompiledPolicy,
    settings: &SignalSettings,
    now: DateTime<Utc>,
) -> Result<Batch, StoreError> {
    let tz = report::reporting_zone(policy);
    let closed = report::week_start(now, tz, policy.scorecard.week_starts) - Duration::weeks(1);
    let mut batch = Batch::default();
    if store.meta_text("signals_week")?.as_deref() == Some(closed.to_string().as_str()) {
        return Ok(batch);
    }
    let found = report::signals::signals_in_store(policy, store, settings, now)?;
    batch.set_meta_text("signals", &serde_json::to_string(&found).unwrap_or_default());
    batch.set_meta_text("signals_week", &closed.to_string());
    Ok(batch)
}

/// What today's digests and the latest summary would say, composed but not
/// sent (`handoff demo`): every rep and manager with leads, the digest of
/// their local date at `now`, and the summary of the latest closed week
/// (the week to date when none has closed).
pub fn preview(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<(Vec<Digest>, Option<summary::Summary>), StoreError> {
    let policy = &config.policy;
    let owners = store.owners()?;
    let index = Owners::new(&owners);
    let book = Book::from_store(store, &owners)?;
    let default_settings;
    let settings = match &config.notify {
        Some(s) => s,
        None => {
            let parsed: Result<NotifySettings, _> = toml::from_str("");
            match parsed {
                Ok(s) => {
                    default_settings = s;
                    &default_settings
                }
                Err(_) => return Ok((Vec::new(), None)),
            }
        }
    };
    let urls = record_url(config, settings);
    let mut teams: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rep in book.lead_owners() {
        if let Some(m) = index.manager_of(rep, policy) {
            teams.entry(m).or_default().push(rep.to_string());
        }
    }
    let mut digests = Vec::new();
    let mut add = |id: &str, kind: DigestKind, rows: Vec<digest::Row>| {
        let tz = engine::owner_schedule(policy, &index, Some(id)).map(|s| s.time_zone()).unwrap_or(chrono_tz::UTC);
        digests.push(Digest {
            kind,
            recipient_id: id.to_string(),
            recipient_name: book.name_of(id),
            local_date: now.with_timezone(&tz).date_naive(),
            time_zone: tz,
            as_of: now,
            rows,
        });
    };
    for rep in book.lead_owners() {
        if index.get(rep).is_some_and(|o| o.kind == OwnerKind::User) {
            add(rep, DigestKind::Rep, digest::rep_rows(&book, rep, &urls));
        }
    }
    for (manager, team) in &teams {
        add(manager, DigestKind::Manager, digest::manager_rows(&book, team, &urls));
    }
    let card = report::from_store(&config.instance.name, policy, store, signals::HISTORY_WEEKS, now, None)?;
    let week = card.weeks.iter().rev().find(|w| !w.partial).or(card.weeks.last()).map(|w| w.start);
    let found = signals::evaluate(&card, &config.signals);
    let summary = week.and_then(|w| summary::compose(&card, w, policy.scorecard.consecutive_weeks, found));
    Ok((digests, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_service_wakes_for_the_next_digest_in_any_zone() {
        let mut config = crate::config::parse(include_str!("../../config/salesforce.example.toml")).expect("valid");
        if let Some(n) = config.notify.as_mut() {
            n.email = None;
            n.slack = None;
        }
        let notifier = Notifier::from_config(&config).expect("no secrets to read").expect("[notify] is set");
        let user = |id: &str, zone: &str| Owner {
            id: id.into(),
            kind: OwnerKind::User,
            name: None,
            email: None,
            manager_id: None,
            time_zone: Some(zone.into()),
            active: true,
            modified_at: None,
        };
        let owners = vec![user("ny", "America/New_York"), user("ldn", "Europe/London")];
        // Tuesday 3 March 2026, 12:00 UTC: London's 08:30 has passed, New
        // York's (13:30 UTC) has not.
        let now = Utc.with_ymd_and_hms(2026, 3, 3, 12, 0, 0).single().expect("valid");
        let next = notifier.next_due(&config.policy, &owners, now);
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 3, 3, 13, 30, 0).single());
    }
}
