//! Leads mode ([`LeadObject::Leads`]): the SLA's lead is HubSpot's lead
//! record (object `0-136`), not the contact.
//!
//! **Reading.** The leads stream reads two object types over each window:
//! lead records modified in it, then contacts modified in it (a contact's
//! fit, intent or score changing is a new version of its leads). Either
//! way the page's leads are read whole by id: the lead records with the
//! history of owner, stage and the policy's properties (50 per batch read),
//! their primary contacts through one v4 association read, and those
//! contacts with the history of the policy's properties. The contacts'
//! pass first reads the modified time of each lead it found (100 a call)
//! and reads whole only those the window's lead records left out; a
//! backfill from the beginning of time needs no contacts' pass at all (every
//! lead record is read, each with its contact as it is then). Each lead record
//! is joined with its contact ([`map::join_lead_record`]): every property
//! the Leads object defines (read once from the portal's property list)
//! comes from the lead, every other one from the contact. The archived
//! sweep lists archived lead records; merged lead records name their
//! losers in `hs_merged_object_ids`, as contacts do.
//!
//! **Activities.** An engagement is the activity of the lead it is
//! associated with; one associated only with a contact is the activity of
//! that contact's lead (the lowest id when it has several).
//!
//! **Writing.** SLA fields and reassignments are batch updates of lead
//! records; tasks are associated with the lead and with its primary
//! contact, so reps see them on both.
//!
//! Leads mode reads every lead's history again after handoff's own writes
//! (the contacts mode's own-write marks do not apply): more calls, never a
//! missed change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use handoff_model::{OwnerKind, PullPage, Stream};
use serde_json::{json, Value};

use crate::cursor::{RecordsCursor, SeenKey, Window};
use crate::error::HubspotError;
use crate::map::{self, LEAD_RECORD_PROPERTIES, LEAD_STAGE_PROPERTY};
use crate::pull::{ASSOCIATION_BATCH, HISTORY_BATCH};
use crate::settings::LeadObject;
use crate::wire::{id_string, ApiObject, AssociationBatch, AssociationLabels, BadRecord, BatchResponse};
use crate::HubspotConnector;

/// Most inputs of a batch read without history.
const BATCH_READ: usize = 100;
/// `LEAD_TO_PRIMARY_CONTACT` in HubSpot's SDK enum.
const LEAD_TO_PRIMARY_CONTACT: u32 = 578;
/// Most lead → contact pairs remembered for task associations; past it
/// they are dropped (a write then reads the association again).
const MAX_REMEMBERED: usize = 500_000;

/// The lowest of associated records' ids (numerically: shorter first),
/// the one an engagement associated with several is taken to be about.
pub(crate) fn lowest_id(ends: &[(String, Vec<u32>)]) -> Option<String> {
    ends.iter().map(|(id, _)| id.clone()).min_by_key(|id| (id.len(), id.clone()))
}

/// What leads mode learns once and keeps: the Leads object's property
/// names, each lead's primary contact, the task → lead association type.
#[derive(Debug, Default)]
pub struct LeadsModeCache {
    lead_properties: tokio::sync::Mutex<Option<BTreeSet<String>>>,
    contacts: std::sync::Mutex<HashMap<String, String>>,
    task_to_lead: tokio::sync::Mutex<Option<Option<u32>>>,
}

impl LeadsModeCache {
    fn remember_contacts(&self, pairs: &BTreeMap<String, String>) {
        let Ok(mut known) = self.contacts.lock() else { return };
        if known.len() + pairs.len() > MAX_REMEMBERED {
            known.clear();
        }
        known.extend(pairs.iter().map(|(l, c)| (l.clone(), c.clone())));
    }

    fn contact_of(&self, lead: &str) -> Option<String> {
        self.contacts.lock().ok().and_then(|k| k.get(lead).cloned())
    }
}

impl HubspotConnector {
    /// Whether the SLA's lead is the lead record.
    pub(crate) fn leads_mode(&self) -> bool {
        self.settings.lead_object == LeadObject::Leads
    }

    /// The object types a records stream searches, in order.
    pub(crate) fn stream_objects(&self, stream: Stream) -> Vec<&'static str> {
        match stream {
            Stream::Leads if self.leads_mode() => vec!["leads", "contacts"],
            Stream::Leads => vec!["contacts"],
            Stream::Opportunities => vec!["deals"],
            _ => map::ENGAGEMENTS.iter().map(|k| map::object_type(*k)).collect(),
        }
    }

    /// The object types whose archived records a stream's sweep lists: in
    /// leads mode the lead records (a contact's archival is not a lead's).
    pub(crate) fn sweep_objects(&self, stream: Stream) -> Vec<&'static str> {
        match stream {
            Stream::Leads if self.leads_mode() => vec!["leads"],
            _ => self.stream_objects(stream),
        }
    }

    /// One read of the Leads object: a portal without it (Starter, no Sales
    /// Hub seat) or an app without its scopes is refused with the way out.
    pub(crate) async fn check_leads_object(&self) -> Result<(), HubspotError> {
        let got: Result<Value, HubspotError> =
            self.client.get("/crm/v3/objects/leads", vec![("limit", "1".into())], "leads", "authenticate").await;
        match got {
            Ok(_) => Ok(()),
            Err(HubspotError::Api { status: 403, message, .. }) => Err(HubspotError::NeedsConfig {
                message: format!("`lead_object = \"leads\"` but HubSpot refuses to read lead records ({message})"),
                fix: "grant the app the crm.objects.leads.read and crm.objects.leads.write scopes (the Leads object needs Sales Hub Professional or Enterprise), or set `lead_object = \"contacts\"` in [hubspot]".into(),
            }),
            Err(e) => Err(e),
        }
    }

    /// The lead record properties every read asks for in leads mode.
    pub(crate) fn lead_record_properties(&self) -> Vec<String> {
        let mut out: Vec<String> = LEAD_RECORD_PROPERTIES.iter().map(|p| p.to_string()).collect();
        for p in &self.settings.extra_contact_properties {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Deliver the leads a leads-stream page found in leads mode: the lead
    /// records of `fresh` (`object = "leads"`) or of its contacts
    /// (`object = "contacts"`), each joined with its primary contact.
    ///
    /// A version of a lead is the lead record's id with the joined modified
    /// time (the later of the lead's and the contact's): the cursor's
    /// `seen` list holds those, so a lead record found again in a window's
    /// overlap is delivered again only when its contact has changed since.
    /// A window's lead records are read before its contacts, after the
    /// window ended: a lead record modified at or after the window's start
    /// was (or will be, by the next window) delivered with its contact as
    /// read then, so the contacts' pass leaves it.
    pub(crate) async fn deliver_lead_records(
        &self,
        object: &str,
        fresh: &[(ApiObject, SeenKey)],
        cursor: &str,
        window: &Window,
        state: &mut RecordsCursor,
        page: &mut PullPage,
    ) -> Result<(), HubspotError> {
        let window_from = chrono::DateTime::from_timestamp_millis(window.from_ms).unwrap_or_default();
        let lookback_ms = self.settings.lookback_secs as i64 * 1000;
        let found: Vec<String> = fresh.iter().map(|(o, _)| o.id.clone()).collect();
        let lead_ids: BTreeSet<String> = if object == "leads" {
            found.into_iter().collect()
        } else {
            self.associated("contacts", "leads", &found, cursor)
                .await?
                .into_values()
                .flatten()
                .map(|(id, _)| id)
                .collect()
        };
        let mut ids: Vec<String> = lead_ids.into_iter().collect();
        if object == "contacts" && !ids.is_empty() {
            // Only leads the window's own lead records left out: a cheap
            // read of their modified times (100 a call) before the full one.
            let times = self.read_records("leads", &ids, &["hs_lastmodifieddate".to_string()], None, cursor).await?;
            ids.retain(|id| {
                times.get(id).is_some_and(|r| map::modified_at(r, "leads").is_ok_and(|at| at < window_from))
            });
        }
        if ids.is_empty() {
            return Ok(());
        }
        let history = if self.history_unavailable.load(Ordering::Relaxed) {
            None
        } else {
            Some(map::history_properties_with(LEAD_STAGE_PROPERTY, &self.settings.history_properties))
        };
        let leads =
            self.read_records("leads", &ids, &self.lead_record_properties(), history.as_deref(), cursor).await?;
        let contact_of = self.primary_contacts(&ids, cursor).await?;
        let contact_ids: Vec<String> = contact_of.values().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let contact_history = (!self.history_unavailable.load(Ordering::Relaxed))
            .then(|| self.settings.history_properties.clone())
            .filter(|h| !h.is_empty());
        let contacts = self
            .read_records("contacts", &contact_ids, &self.contact_properties(), contact_history.as_deref(), cursor)
            .await?;
        let names = self.lead_property_names(cursor).await?;
        let owner_ids: BTreeSet<String> = leads.values().flat_map(map::history_owner_ids).map(str::to_string).collect();
        let owner_kinds =
            if owner_ids.is_empty() { BTreeMap::new() } else { self.owner_kinds(owner_ids, cursor).await? };
        let kind_of_owner = |id: &str| owner_kinds.get(id).copied().unwrap_or(OwnerKind::User);
        // A lead gone since the search (archived, merged away) is absent:
        // the sweep or its survivor's merge list reports it.
        for id in &ids {
            let Some(record) = leads.get(id) else { continue };
            // Modified since the cheap read: the next window's lead records have it.
            if object == "contacts" && map::modified_at(record, "leads").is_ok_and(|at| at >= window_from) {
                continue;
            }
            let contact = contact_of.get(id).and_then(|c| contacts.get(c));
            let joined = map::join_lead_record(record, contact, &|n| names.contains(n));
            match map::lead(&joined, "leads") {
                Ok((mut lead, merges)) => {
                    let version = match map::numeric_id(record) {
                        Ok(n) => Some((0, n, lead.modified_at.timestamp_millis())),
                        Err(_) => None,
                    };
                    if let Some(key) = version {
                        if state.was_seen(&key) {
                            continue;
                        }
                        state.remember(key, window, lookback_ms);
                    }
                    map::add_history(&mut lead, &joined, &kind_of_owner, LEAD_STAGE_PROPERTY);
                    page.leads.push(lead);
                    page.deletions.extend(merges);
                }
                Err(reason) => {
                    let bad = BadRecord { raw: crate::pull::echo(record), id: Some(id.clone()), reason };
                    page.quarantined.push(self.quarantine(
                        Stream::Leads,
                        "leads",
                        cursor,
                        bad,
                        Some(id.clone()),
                        window_from,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Records of `object` by id, with `properties` and the history of
    /// `history` (`None`: no history), in batch reads. Records gone since
    /// (archived, merged away) are absent. When the portal refuses history
    /// (403, a missing scope) the records are read without it, and history
    /// is not asked for again (logged once).
    async fn read_records(
        &self,
        object: &str,
        ids: &[String],
        properties: &[String],
        history: Option<&[String]>,
        cursor: &str,
    ) -> Result<BTreeMap<String, ApiObject>, HubspotError> {
        let mut out = BTreeMap::new();
        let path = format!("/crm/v3/objects/{object}/batch/read");
        let with_history = history.filter(|_| !self.history_unavailable.load(Ordering::Relaxed));
        let size = if with_history.is_some() { HISTORY_BATCH } else { BATCH_READ };
        for chunk in ids.chunks(size) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
            // A refusal earlier in this read stops asking for history.
            let history: &[String] = match with_history {
                Some(h) if !self.history_unavailable.load(Ordering::Relaxed) => h,
                _ => &[],
            };
            let body = json!({"inputs": inputs, "properties": properties, "propertiesWithHistory": history});
            let answer = match self.client.post_read::<BatchResponse>(&path, &body, object, cursor).await {
                Err(HubspotError::Api { status: 403, category, message, .. }) if !history.is_empty() => {
                    let plain = json!({"inputs": inputs, "properties": properties, "propertiesWithHistory": []});
                    let answer = self.client.post_read::<BatchResponse>(&path, &plain, object, cursor).await?;
                    self.history_refused(cursor, &category, &message);
                    answer
                }
                // None of the ids exists any more.
                Err(HubspotError::Api { status: 404, .. }) => continue,
                other => other?,
            };
            out.extend(answer.results.into_iter().filter(|r| !r.archived).map(|r| (r.id.clone(), r)));
        }
        Ok(out)
    }

    /// `from` id → its associated `to` records as `(id, type ids)`, in v4
    /// batch reads of [`ASSOCIATION_BATCH`] ids.
    pub(crate) async fn associated(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
        cursor: &str,
    ) -> Result<BTreeMap<String, Vec<(String, Vec<u32>)>>, HubspotError> {
        let mut out: BTreeMap<String, Vec<(String, Vec<u32>)>> = BTreeMap::new();
        let path = format!("/crm/v4/associations/{from}/{to}/batch/read");
        for chunk in ids.chunks(ASSOCIATION_BATCH) {
            let body = json!({"inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
            let batch: AssociationBatch = match self.client.post_read(&path, &body, from, cursor).await {
                // None of the ids has such an association.
                Err(HubspotError::Api { status: 404, .. }) => continue,
                other => other?,
            };
            for r in batch.results {
                let Some(from_id) = id_string(&r.from.id) else { continue };
                let ends = out.entry(from_id).or_default();
                for t in r.to {
                    if let Some(id) = id_string(&t.to_object_id) {
                        ends.push((id, t.association_types.iter().filter_map(|a| a.type_id).collect()));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Each lead's primary contact (the association HubSpot labels
    /// "Primary"; else the lowest contact id), remembered for the task
    /// associations of later writes.
    async fn primary_contacts(&self, leads: &[String], cursor: &str) -> Result<BTreeMap<String, String>, HubspotError> {
        let found = self.associated("leads", "contacts", leads, cursor).await?;
        let primary: BTreeMap<String, String> = found
            .into_iter()
            .filter_map(|(lead, ends)| {
                let first = ends.iter().find(|(_, types)| types.contains(&LEAD_TO_PRIMARY_CONTACT)).cloned();
                first.map(|(id, _)| id).or_else(|| lowest_id(&ends)).map(|contact| (lead, contact))
            })
            .collect();
        self.leads_cache.remember_contacts(&primary);
        Ok(primary)
    }

    /// The primary contact of each of `leads`, from memory where a pull
    /// saw it, else read.
    pub(crate) async fn contacts_for_tasks(
        &self,
        leads: &[String],
        cursor: &str,
    ) -> Result<BTreeMap<String, String>, HubspotError> {
        let mut out = BTreeMap::new();
        let mut unknown = Vec::new();
        for lead in leads {
            match self.leads_cache.contact_of(lead) {
                Some(c) => {
                    out.insert(lead.clone(), c);
                }
                None => unknown.push(lead.clone()),
            }
        }
        if !unknown.is_empty() {
            out.extend(self.primary_contacts(&unknown, cursor).await?);
        }
        Ok(out)
    }

    /// Engagement id → the lead it is about: the lead record it is
    /// associated with (the lowest id when several), else the lead of the
    /// contact it is associated with.
    pub(crate) async fn leads_of_engagements(
        &self,
        object: &str,
        ids: &[String],
        cursor: &str,
    ) -> Result<BTreeMap<String, String>, HubspotError> {
        let (mut out, unknown) = self.own_tasks_known(object, ids);
        if unknown.is_empty() {
            return Ok(out);
        }
        let direct = self.associated(object, "leads", &unknown, cursor).await?;
        let mut via_contact = Vec::new();
        for id in unknown {
            match direct.get(&id).and_then(|ends| lowest_id(ends)) {
                Some(lead) => {
                    out.insert(id, lead);
                }
                None => via_contact.push(id),
            }
        }
        if via_contact.is_empty() {
            return Ok(out);
        }
        let contacts = self.associated(object, "contacts", &via_contact, cursor).await?;
        let contact_of: BTreeMap<String, String> =
            contacts.iter().filter_map(|(e, ends)| Some((e.clone(), lowest_id(ends)?))).collect();
        let contact_ids: Vec<String> = contact_of.values().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let leads = self.associated("contacts", "leads", &contact_ids, cursor).await?;
        for (engagement, contact) in contact_of {
            if let Some(lead) = leads.get(&contact).and_then(|ends| lowest_id(ends)) {
                out.insert(engagement, lead);
            }
        }
        Ok(out)
    }

    /// The Leads object's property names, read once. A lead record's
    /// property wins over the contact's of the same name.
    async fn lead_property_names(&self, cursor: &str) -> Result<BTreeSet<String>, HubspotError> {
        let mut cached = self.leads_cache.lead_properties.lock().await;
        if let Some(names) = cached.as_ref() {
            return Ok(names.clone());
        }
        let listing: Value = self.client.get("/crm/v3/properties/leads", vec![], "leads", cursor).await?;
        let names: BTreeSet<String> = listing["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        if names.is_empty() {
            return Err(HubspotError::Protocol {
                endpoint: "GET /crm/v3/properties/leads".into(),
                message: "the portal lists no lead properties".into(),
            });
        }
        *cached = Some(names.clone());
        Ok(names)
    }

    /// The association type that links a task to a lead, looked up once
    /// (HubSpot publishes lead → task, 646, not its inverse). `None` when
    /// the portal names none: tasks are then associated with the contact
    /// only, and still found again through the contact's lead.
    pub(crate) async fn task_to_lead_type(&self) -> Option<u32> {
        let mut cached = self.leads_cache.task_to_lead.lock().await;
        if let Some(known) = *cached {
            return known;
        }
        let got: Result<AssociationLabels, HubspotError> =
            self.client.get("/crm/v4/associations/tasks/leads/labels", vec![], "tasks", "association labels").await;
        match got {
            Ok(labels) => {
                let found = labels
                    .results
                    .iter()
                    .filter(|l| l.category.as_deref().is_none_or(|c| c == "HUBSPOT_DEFINED"))
                    .filter_map(|l| l.type_id)
                    .min();
                *cached = Some(found);
                found
            }
            // Asked again by the next write.
            Err(e) => {
                tracing::warn!(connector = "hubspot", object = "tasks", error = %e, "cannot read the task-to-lead association type; these tasks are associated with the contact only");
                None
            }
        }
    }
}
