//! Writing: lead updates and reassignments as batch updates of contacts
//! (of lead records in leads mode),
//! tasks as batch creates carrying `handoff_key`, completions as batch
//! updates of tasks (`hs_task_status = COMPLETED`), 100 per call. Every task
//! body ends with a link to the contact's record in HubSpot.
//!
//! Creates are not idempotent in HubSpot. Every task carries its action key
//! in the unique `handoff_key` property and is looked up by that key (a
//! batch read with `idProperty`, which reads the record store directly and
//! so does not suffer the search index's lag) before it is created, and
//! again whenever a create's outcome is unknown: replaying a batch never
//! creates a task twice.

use std::collections::{BTreeMap, BTreeSet};

use handoff_model::{Action, ActionKind, ErrorClass, TaskPriority, WriteError, WriteOutcome};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Request;
use crate::error::HubspotError;
use crate::limits::Bucket;
use crate::map::TASK_KEY_PROPERTY;
use crate::wire::{classify, BatchResponse, ErrorBody};
use crate::HubspotConnector;

/// Task → contact, HUBSPOT_DEFINED.
const TASK_TO_CONTACT: u32 = 204;

/// One record of a batch: which action it serves and what is sent.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub index: usize,
    /// The contact id (updates) or the action key (task creates).
    pub id: String,
    pub body: Value,
}

type Results = BTreeMap<usize, Result<String, WriteError>>;

/// The `objectWriteTraceId` sent with an action's input.
pub fn trace_id(index: usize) -> String {
    format!("a{index}")
}

/// A JSON value as the string HubSpot stores (all property values are strings).
pub fn property_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Split update inputs into batches of at most `size` with no contact twice
/// in one batch (HubSpot refuses a batch with duplicate ids), keeping input
/// order within each contact.
pub(crate) fn plan_batches(inputs: Vec<Input>, size: usize) -> Vec<Vec<Input>> {
    let mut batches: Vec<(BTreeSet<String>, Vec<Input>)> = Vec::new();
    let mut last_batch_of: BTreeMap<String, usize> = BTreeMap::new();
    for input in inputs {
        let min = last_batch_of.get(&input.id).map(|b| b + 1).unwrap_or(0);
        let slot = (min..batches.len()).find(|&b| batches[b].1.len() < size && !batches[b].0.contains(&input.id));
        let b = match slot {
            Some(b) => b,
            None => {
                batches.push((BTreeSet::new(), Vec::new()));
                batches.len() - 1
            }
        };
        batches[b].0.insert(input.id.clone());
        last_batch_of.insert(input.id.clone(), b);
        batches[b].1.push(input);
    }
    batches.into_iter().map(|(_, b)| b).collect()
}

fn write_error(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> WriteError {
    WriteError { class, code: code.into(), message: message.into() }
}

/// Spread a 200/207 batch answer over its inputs. `key_of` says which input
/// a result belongs to; errors name their inputs in `context.ids` (updates)
/// or `context.objectWriteTraceId` (creates). Inputs nothing speaks for are
/// returned to be retried one by one.
pub(crate) fn attribute(
    inputs: &[Input],
    resp: &BatchResponse,
    status: u16,
    key_of: &dyn Fn(&crate::wire::ApiObject) -> Option<String>,
    out: &mut Results,
) -> Vec<Input> {
    let by_id: BTreeMap<&str, &Input> = inputs.iter().map(|i| (i.id.as_str(), i)).collect();
    // Traces are `a{action index}`; a bare number is a position in the
    // batch, which is how some answers name an input they did not trace.
    let by_trace: BTreeMap<String, &Input> = inputs
        .iter()
        .map(|i| (trace_id(i.index), i))
        .chain(inputs.iter().enumerate().map(|(pos, i)| (pos.to_string(), i)))
        .collect();
    for r in &resp.results {
        let input = r
            .object_write_trace_id
            .as_ref()
            .and_then(|t| by_trace.get(t).copied())
            .or_else(|| key_of(r).and_then(|k| by_id.get(k.as_str()).copied()));
        if let Some(i) = input {
            out.insert(i.index, Ok(r.id.clone()));
        }
    }
    let mut unattributed = Vec::new();
    for e in &resp.errors {
        let class = classify(if status == 207 { 400 } else { status }, e);
        let class = if e.category.as_deref() == Some("OBJECT_NOT_FOUND") { ErrorClass::Permanent } else { class };
        let named: Vec<&Input> = e
            .context_strings("ids")
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).copied())
            .chain(e.context_strings("objectWriteTraceId").iter().filter_map(|t| by_trace.get(t).copied()))
            .collect();
        if named.is_empty() {
            unattributed.push(e);
        }
        for i in named {
            out.entry(i.index).or_insert_with(|| Err(write_error(class.clone(), e.code(), e.message.clone())));
        }
    }
    let missing: Vec<Input> = inputs.iter().filter(|i| !out.contains_key(&i.index)).cloned().collect();
    if missing.len() == 1 && unattributed.len() == 1 {
        let e = unattributed[0];
        out.insert(missing[0].index, Err(write_error(classify(400, e), e.code(), e.message.clone())));
        return Vec::new();
    }
    missing
}

impl HubspotConnector {
    pub(crate) async fn write_actions(&self, actions: &[Action]) -> Result<Vec<WriteOutcome>, HubspotError> {
        let mut out: Results = BTreeMap::new();
        let mut updates = Vec::new();
        let mut completions = Vec::new();
        let mut tasks = Vec::new();
        let needs_link = actions.iter().any(|a| {
            matches!(a.kind, ActionKind::CreateTask { .. } | ActionKind::CompleteTask { .. }) && !a.lead_id.is_empty()
        });
        let link_base = if needs_link { self.contact_link_base().await } else { None };
        // Leads mode: a task is associated with the lead record and with its
        // primary contact, so reps see it on both.
        let (task_to_lead, contact_of) = if self.leads_mode() {
            let leads: Vec<String> = actions
                .iter()
                .filter(|a| matches!(a.kind, ActionKind::CreateTask { .. }) && !a.lead_id.is_empty())
                .map(|a| a.lead_id.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if leads.is_empty() {
                (None, BTreeMap::new())
            } else {
                (self.task_to_lead_type().await, self.contacts_for_tasks(&leads, "task associations").await?)
            }
        } else {
            (None, BTreeMap::new())
        };
        let lead_object = self.settings.lead_object.object_type();
        let with_link = |body: &str, lead_id: &str| match (&link_base, lead_id.is_empty()) {
            (Some(base), false) => format!("{body}\n\nLead: {base}{lead_id}"),
            _ => body.to_string(),
        };
        for (index, a) in actions.iter().enumerate() {
            match &a.kind {
                ActionKind::UpdateLead { fields } => {
                    let props: serde_json::Map<String, Value> =
                        fields.iter().map(|(k, v)| (k.clone(), Value::String(property_value(v)))).collect();
                    updates.push(Input {
                        index,
                        id: a.lead_id.clone(),
                        body: json!({"id": a.lead_id, "properties": props, "objectWriteTraceId": trace_id(index)}),
                    });
                }
                ActionKind::Reassign { to_owner_id } => updates.push(Input {
                    index,
                    id: a.lead_id.clone(),
                    body: json!({"id": a.lead_id, "properties": {"hubspot_owner_id": to_owner_id}, "objectWriteTraceId": trace_id(index)}),
                }),
                ActionKind::CompleteTask { task_id, body, .. } => completions.push(Input {
                    index,
                    id: task_id.clone(),
                    body: json!({
                        "id": task_id,
                        "properties": {"hs_task_status": "COMPLETED", "hs_task_body": with_link(body, &a.lead_id)},
                        "objectWriteTraceId": trace_id(index),
                    }),
                }),
                ActionKind::CreateTask { assignee_id, subject, body, due_at, priority, .. } => {
                    let priority = match priority {
                        TaskPriority::High => "HIGH",
                        TaskPriority::Normal => "MEDIUM",
                    };
                    // A task about no one lead (a scorecard escalation) is
                    // created without an association.
                    // Ids are strings, as HubSpot's spec has them (live
                    // HubSpot also takes numbers). The lead comes first: it is
                    // whom the task is about when it is read back.
                    let associate = |id: &str, type_id: u32| {
                        json!({"to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]})
                    };
                    let associations: Vec<Value> = if a.lead_id.is_empty() {
                        Vec::new()
                    } else if self.leads_mode() {
                        let lead = task_to_lead.map(|t| associate(&a.lead_id, t));
                        let contact = contact_of.get(&a.lead_id).map(|c| associate(c, TASK_TO_CONTACT));
                        lead.into_iter().chain(contact).collect()
                    } else {
                        vec![associate(&a.lead_id, TASK_TO_CONTACT)]
                    };
                    tasks.push(Input {
                        index,
                        id: a.key.0.clone(),
                        body: json!({
                            "properties": {
                                "hs_timestamp": due_at.timestamp_millis().to_string(),
                                "hs_task_subject": subject,
                                "hs_task_body": with_link(body, &a.lead_id),
                                "hubspot_owner_id": assignee_id,
                                "hs_task_status": "NOT_STARTED",
                                "hs_task_priority": priority,
                                "hs_task_type": "TODO",
                                TASK_KEY_PROPERTY: a.key.0,
                            },
                            "associations": associations,
                            "objectWriteTraceId": trace_id(index),
                        }),
                    });
                }
            }
        }
        let size = self.settings.write_batch_size as usize;
        for batch in plan_batches(updates, size) {
            self.update_batch(batch, lead_object, &mut out).await?;
        }
        // Before the creates: a task a new one replaces is closed first.
        for batch in plan_batches(completions, size) {
            self.update_batch(batch, "tasks", &mut out).await?;
        }
        if !tasks.is_empty() {
            match self.ensure_task_key_property().await {
                Ok(()) => self.create_tasks(tasks, size, &mut out).await?,
                Err(HubspotError::NeedsConfig { message, fix }) => {
                    for t in tasks {
                        out.insert(
                            t.index,
                            Err(write_error(
                                ErrorClass::NeedsConfig,
                                "PROPERTY_DOESNT_EXIST",
                                format!("{message}. {fix}"),
                            )),
                        );
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(actions
            .iter()
            .enumerate()
            .map(|(i, a)| WriteOutcome {
                key: a.key.clone(),
                result: out.remove(&i).unwrap_or_else(|| {
                    Err(write_error(ErrorClass::Retryable, "NOT_ATTEMPTED", "the write stopped before this action"))
                }),
            })
            .collect())
    }

    /// The start of a lead's record URL in HubSpot's app
    /// (`https://{uiDomain}/contacts/{portalId}/record/0-1/` for a contact,
    /// `…/record/0-136/` for a lead record), from the
    /// account details, asked once. `None` when they cannot be read: task
    /// bodies then go without the link rather than not at all.
    pub(crate) async fn contact_link_base(&self) -> Option<String> {
        let mut cached = self.contact_link.lock().await;
        if let Some(known) = cached.as_ref() {
            return known.clone();
        }
        let got: Result<Value, HubspotError> =
            self.client.get("/account-info/v3/details", vec![], "account-info", "details").await;
        let object_type_id = match self.settings.lead_object {
            crate::settings::LeadObject::Contacts => "0-1",
            crate::settings::LeadObject::Leads => "0-136",
        };
        let base = match got {
            Ok(details) => record_link_base(&details, object_type_id),
            Err(e) => {
                tracing::warn!(connector = "hubspot", object = "account-info", error = %e, "cannot read the account details; task bodies go without a link to the contact");
                None
            }
        };
        *cached = Some(base.clone());
        base
    }

    /// Batch update of `object` records; a batch refused as a whole is split
    /// in halves until the bad record is alone, so the others still land.
    async fn update_batch(
        &self,
        batch: Vec<Input>,
        object: &'static str,
        out: &mut Results,
    ) -> Result<(), HubspotError> {
        let mut queue = vec![batch];
        while let Some(batch) = queue.pop() {
            if batch.is_empty() {
                continue;
            }
            let body = json!({"inputs": batch.iter().map(|i| i.body.clone()).collect::<Vec<_>>()});
            let path = format!("/crm/v3/objects/{object}/batch/update");
            let cursor = format!("{} record(s)", batch.len());
            let sent = self
                .client
                .send(Request {
                    method: Method::POST,
                    path: path.clone(),
                    query: vec![],
                    body: Some(&body),
                    bucket: Bucket::Burst,
                    idempotent: true,
                    object,
                    cursor: &cursor,
                })
                .await;
            match sent {
                Ok(resp) => {
                    let parsed: BatchResponse = resp.json(&path)?;
                    if object == "contacts" {
                        self.own_writes.record(&parsed.results);
                    }
                    let rest = attribute(&batch, &parsed, resp.status, &|r| Some(r.id.clone()), out);
                    queue.extend(rest.into_iter().map(|i| vec![i]));
                }
                Err(e) => self.split_or_record(batch, e, &mut queue, out)?,
            }
        }
        Ok(())
    }

    /// A whole batch failed with `e`: split it, record the error on a single
    /// record, or stop the write (budget).
    fn split_or_record(
        &self,
        mut batch: Vec<Input>,
        e: HubspotError,
        queue: &mut Vec<Vec<Input>>,
        out: &mut Results,
    ) -> Result<(), HubspotError> {
        let (class, code, message) = match e {
            HubspotError::Api { status, category, message, .. } => {
                let body =
                    ErrorBody { category: Some(category.clone()), message: message.clone(), ..ErrorBody::default() };
                let class = classify(status, &body);
                let class = if category == "PROPERTY_DOESNT_EXIST" { ErrorClass::NeedsConfig } else { class };
                (class, category, message)
            }
            HubspotError::Transport { message, .. } => (ErrorClass::Retryable, "TRANSPORT".to_string(), message),
            HubspotError::Auth(message) => (ErrorClass::Auth, "INVALID_AUTHENTICATION".to_string(), message),
            other => return Err(other),
        };
        if batch.len() > 1 && matches!(class, ErrorClass::Permanent | ErrorClass::NeedsConfig) {
            let half = batch.split_off(batch.len() / 2);
            queue.push(half);
            queue.push(batch);
            return Ok(());
        }
        for i in batch {
            out.insert(i.index, Err(write_error(class.clone(), code.clone(), message.clone())));
        }
        Ok(())
    }

    /// Create the tasks whose key is not in HubSpot yet.
    async fn create_tasks(&self, tasks: Vec<Input>, size: usize, out: &mut Results) -> Result<(), HubspotError> {
        // The same key twice in one write is one task.
        let mut first_of: BTreeMap<String, usize> = BTreeMap::new();
        let mut unique = Vec::new();
        let mut repeats = Vec::new();
        for t in tasks {
            match first_of.get(&t.id) {
                Some(&first) => repeats.push((t.index, first)),
                None => {
                    first_of.insert(t.id.clone(), t.index);
                    unique.push(t);
                }
            }
        }
        let mut queue: Vec<Vec<Input>> = unique.chunks(size).map(|c| c.to_vec()).collect();
        queue.reverse();
        let mut uncertain_rounds = 0u32;
        while let Some(batch) = queue.pop() {
            let found = self.lookup_tasks(&batch).await?;
            let mut missing = Vec::new();
            for t in batch {
                match found.get(&t.id) {
                    Some(id) => {
                        self.remember_task(id, &t);
                        out.insert(t.index, Ok(id.clone()));
                    }
                    None => missing.push(t),
                }
            }
            if missing.is_empty() {
                continue;
            }
            let body = json!({"inputs": missing.iter().map(|i| i.body.clone()).collect::<Vec<_>>()});
            let path = "/crm/v3/objects/tasks/batch/create".to_string();
            let cursor = format!("{} task(s)", missing.len());
            let sent = self
                .client
                .send(Request {
                    method: Method::POST,
                    path: path.clone(),
                    query: vec![],
                    body: Some(&body),
                    bucket: Bucket::Burst,
                    idempotent: false,
                    object: "tasks",
                    cursor: &cursor,
                })
                .await;
            match sent {
                Ok(resp) => {
                    let parsed: BatchResponse = resp.json(&path)?;
                    let key_of = |r: &crate::wire::ApiObject| r.prop(TASK_KEY_PROPERTY).map(str::to_string);
                    let rest = attribute(&missing, &parsed, resp.status, &key_of, out);
                    for i in &missing {
                        if let Some(Ok(id)) = out.get(&i.index) {
                            self.remember_task(id, i);
                        }
                    }
                    queue.extend(rest.into_iter().map(|i| vec![i]));
                    // A key conflict means the task exists after all (created
                    // by an earlier attempt): take its id.
                    let conflicted: Vec<Input> = missing
                        .iter()
                        .filter(|i| matches!(out.get(&i.index), Some(Err(e)) if e.code == "CONFLICT"))
                        .cloned()
                        .collect();
                    if !conflicted.is_empty() {
                        for (key, id) in self.lookup_tasks(&conflicted).await? {
                            for i in conflicted.iter().filter(|i| i.id == key) {
                                self.remember_task(&id, i);
                                out.insert(i.index, Ok(id.clone()));
                            }
                        }
                    }
                }
                Err(e) if uncertain_rounds + 1 < self.settings.max_attempts && is_uncertain(&e) => {
                    // The create may or may not have happened: look up again, then retry.
                    uncertain_rounds += 1;
                    tracing::warn!(connector = "hubspot", object = "tasks", cursor = %cursor, error = %e, "task create outcome unknown; looking the keys up before retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(uncertain_rounds))).await;
                    queue.push(missing);
                }
                Err(e) => self.split_or_record(missing, e, &mut queue, out)?,
            }
        }
        for (index, first) in repeats {
            if let Some(r) = out.get(&first).cloned() {
                out.insert(index, r);
            }
        }
        Ok(())
    }

    /// Remember which lead (contact, or lead record in leads mode) the task
    /// `task_id` (created from `input`) is about, from the first association
    /// the create named.
    fn remember_task(&self, task_id: &str, input: &Input) {
        let contact = input.body["associations"].as_array().and_then(|a| a.first()).and_then(|a| {
            a["to"]["id"].as_str().map(str::to_string).or_else(|| a["to"]["id"].as_u64().map(|n| n.to_string()))
        });
        if let Some(contact) = contact {
            self.own_writes.record_task(task_id, &contact);
        }
    }

    /// Existing tasks by `handoff_key`: key → task id.
    async fn lookup_tasks(&self, batch: &[Input]) -> Result<BTreeMap<String, String>, HubspotError> {
        // `propertiesWithHistory` is required by HubSpot's spec (and its SDKs), if empty.
        let body = json!({
            "idProperty": TASK_KEY_PROPERTY,
            "properties": [TASK_KEY_PROPERTY],
            "propertiesWithHistory": [],
            "inputs": batch.iter().map(|i| json!({"id": i.id})).collect::<Vec<_>>(),
        });
        let path = "/crm/v3/objects/tasks/batch/read".to_string();
        let cursor = format!("lookup {} key(s)", batch.len());
        let resp = self
            .client
            .send(Request {
                method: Method::POST,
                path: path.clone(),
                query: vec![],
                body: Some(&body),
                bucket: Bucket::Burst,
                idempotent: true,
                object: "tasks",
                cursor: &cursor,
            })
            .await;
        let resp = match resp {
            Ok(r) => r,
            // None of the keys exists: HubSpot answers 404 for the batch.
            Err(HubspotError::Api { status: 404, .. }) => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        };
        let parsed: BatchResponse = resp.json(&path)?;
        Ok(parsed
            .results
            .iter()
            .filter_map(|r| r.prop(TASK_KEY_PROPERTY).map(|k| (k.to_string(), r.id.clone())))
            .collect())
    }

    /// Make sure tasks have the unique `handoff_key` property, creating it
    /// only with the operator's consent. Checked once per connector.
    pub(crate) async fn ensure_task_key_property(&self) -> Result<(), HubspotError> {
        let mut checked = self.task_property_checked.lock().await;
        if *checked {
            return Ok(());
        }
        let path = format!("/crm/v3/properties/tasks/{TASK_KEY_PROPERTY}");
        let got = self
            .client
            .send(Request {
                method: Method::GET,
                path: path.clone(),
                query: vec![],
                body: None,
                bucket: Bucket::Burst,
                idempotent: true,
                object: "tasks",
                cursor: "property",
            })
            .await;
        match got {
            Ok(resp) => {
                let def: Value = resp.json(&path)?;
                if def.get("hasUniqueValue").and_then(Value::as_bool) != Some(true) {
                    return Err(HubspotError::NeedsConfig {
                        message: format!("the task property `{TASK_KEY_PROPERTY}` exists but does not require unique values, so a replayed task could be created twice"),
                        fix: format!("recreate `{TASK_KEY_PROPERTY}` on tasks with \"Require unique values\" switched on"),
                    });
                }
            }
            Err(HubspotError::Api { status: 404, .. }) if self.settings.create_task_key_property => {
                let body = json!({
                    "name": TASK_KEY_PROPERTY,
                    "label": "Handoff key",
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "task",
                    "description": "Set by handoff: the action that created this task, so it is never created twice.",
                    "hasUniqueValue": true,
                });
                let create = "/crm/v3/properties/tasks".to_string();
                tracing::info!(connector = "hubspot", object = "tasks", cursor = "property", "creating the handoff_key task property (allowed by create_task_key_property)");
                self.client
                    .send(Request { method: Method::POST, path: create, query: vec![], body: Some(&body), bucket: Bucket::Burst, idempotent: true, object: "tasks", cursor: "property" })
                    .await?;
            }
            Err(HubspotError::Api { status: 404, .. }) => {
                return Err(HubspotError::NeedsConfig {
                    message: format!("the task property `{TASK_KEY_PROPERTY}` does not exist in HubSpot; handoff needs it to create each task exactly once"),
                    fix: format!(
                        "set `create_task_key_property = true` in the hubspot settings to let handoff create it, or create a single-line text task property `{TASK_KEY_PROPERTY}` with unique values yourself"
                    ),
                })
            }
            Err(e) => return Err(e),
        }
        *checked = true;
        Ok(())
    }
}

/// The record URL prefix from an account-details answer
/// (`{"portalId": 123, "uiDomain": "app.hubspot.com", …}`) for records of
/// `object_type_id` (`0-1` contacts, `0-136` leads).
pub fn record_link_base(details: &Value, object_type_id: &str) -> Option<String> {
    let portal = details.get("portalId").and_then(Value::as_u64)?;
    let domain = details
        .get("uiDomain")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .unwrap_or("app.hubspot.com");
    Some(format!("https://{domain}/contacts/{portal}/record/{object_type_id}/"))
}

/// Whether a failed create may have happened anyway (timeout, lost
/// response, 5xx) as opposed to a clean refusal.
fn is_uncertain(e: &HubspotError) -> bool {
    match e {
        HubspotError::Transport { .. } => true,
        HubspotError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(index: usize, id: &str) -> Input {
        Input { index, id: id.to_string(), body: json!({"id": id}) }
    }

    #[test]
    fn batches_never_hold_a_contact_twice_and_respect_the_size() {
        let inputs = vec![input(0, "a"), input(1, "a"), input(2, "b"), input(3, "c"), input(4, "a")];
        let batches = plan_batches(inputs, 2);
        for b in &batches {
            assert!(b.len() <= 2);
            let ids: BTreeSet<_> = b.iter().map(|i| i.id.clone()).collect();
            assert_eq!(ids.len(), b.len(), "{b:?}");
        }
        // Each contact's updates keep their order across batches.
        let order: Vec<usize> = batches.iter().flatten().filter(|i| i.id == "a").map(|i| i.index).collect();
        assert_eq!(order, vec![0, 1, 4]);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 5);
    }

    fn fixture(name: &str) -> BatchResponse {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn recorded_207_create_splits_into_one_success_and_one_conflict() {
        // The recorded error names its input by batch position ("0").
        let inputs = vec![input(3, "lily@hubspot.com"), input(8, "siena.dyer@hubspot.com")];
        let mut out = Results::new();
        let key_of = |r: &crate::wire::ApiObject| r.prop("email").map(str::to_string);
        let rest = attribute(&inputs, &fixture("batch-create-contacts-207-partial.json"), 207, &key_of, &mut out);
        assert!(rest.is_empty());
        assert_eq!(out[&8], Ok("171596044870".to_string()));
        let err = out[&3].clone().unwrap_err();
        assert_eq!((err.class, err.code.as_str()), (ErrorClass::Permanent, "CONFLICT"));
        assert!(err.message.contains("171591000198"));
    }

    #[test]
    fn recorded_207_update_names_the_missing_id() {
        let inputs = vec![input(0, "171591000199"), input(1, "unknownIdentifier888"), input(2, "555")];
        let mut out = Results::new();
        let rest = attribute(
            &inputs,
            &fixture("batch-update-contacts-207-partial.json"),
            207,
            &|r| Some(r.id.clone()),
            &mut out,
        );
        assert_eq!(out[&0], Ok("171591000199".to_string()));
        assert_eq!(out[&1].clone().unwrap_err().code, "OBJECT_NOT_FOUND");
        // Nothing speaks for "555": it is handed back to be retried alone.
        assert_eq!(rest.iter().map(|i| i.index).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn the_contact_link_names_the_portal_and_its_data_centre() {
        let eu = json!({"portalId": 12345678, "uiDomain": "app-eu1.hubspot.com", "dataHostingLocation": "eu1"});
        assert_eq!(
            record_link_base(&eu, "0-1").as_deref(),
            Some("https://app-eu1.hubspot.com/contacts/12345678/record/0-1/")
        );
        let bare = json!({"portalId": 42});
        assert_eq!(record_link_base(&bare, "0-1").as_deref(), Some("https://app.hubspot.com/contacts/42/record/0-1/"));
        assert_eq!(record_link_base(&json!({"uiDomain": "app.hubspot.com"}), "0-1"), None);
        let odd = json!({"portalId": 7, "uiDomain": "evil.example/x?"});
        assert_eq!(
            record_link_base(&odd, "0-136").as_deref(),
            Some("https://app.hubspot.com/contacts/7/record/0-136/")
        );
    }

    #[test]
    fn property_values_are_strings() {
        assert_eq!(property_value(&json!(3)), "3");
        assert_eq!(property_value(&json!("A")), "A");
        assert_eq!(property_value(&Value::Null), "");
        assert_eq!(property_value(&json!(true)), "true");
    }
}
