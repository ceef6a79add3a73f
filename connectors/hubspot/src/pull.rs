//! Reading: one page per call, in finished windows (see [`crate::cursor`]).
//! A contacts page is followed by batch reads of its fresh contacts with
//! the history of owner and lead status (50 per call, HubSpot's limit with
//! history), and, when that history names an owner not seen yet, by the
//! owners listing (for whether each owner is a user or a queue). An
//! engagements page is followed by the association read naming its
//! contacts (and its deals, see [`crate::deals`]), a deals page by the one
//! naming its leads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use handoff_model::{ActivityKind, Deletion, OwnerKind, PullPage, Quarantined, Stream};
use handoff_runtime::PageGuard;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Request;
use crate::cursor::{self, OwnersCursor, RecordsCursor, Sweep, Window};
use crate::error::HubspotError;
use crate::limits::Bucket;
use crate::map::{self, TASK_KEY_PROPERTY};
use crate::wire::{id_string, parse_time, raw_numeric_id, ApiObject, BadRecord, BatchResponse, ObjectPage, OwnerPage};
use crate::HubspotConnector;

/// Archived listings page at HubSpot's list maximum.
const LIST_PAGE: u32 = 100;
/// Most pages of the owners listing (100,000 owners): a listing that goes
/// on past it is a server that never stops naming a next page.
const MAX_OWNER_PAGES: u32 = 1_000;

/// A record as it was read, for the quarantine.
pub(crate) fn echo(o: &ApiObject) -> Value {
    json!({"id": o.id, "properties": o.properties, "createdAt": o.created_at, "updatedAt": o.updated_at, "archived": o.archived})
}
/// Most inputs of a batch read asking for `propertiesWithHistory` (HubSpot
/// refuses more with a 400).
pub const HISTORY_BATCH: usize = 50;
/// Most inputs of a v4 association batch read.
pub const ASSOCIATION_BATCH: usize = 1_000;

fn kind_of(object: &str) -> Option<ActivityKind> {
    map::ENGAGEMENTS.iter().copied().find(|k| map::object_type(*k) == object)
}

impl HubspotConnector {
    pub(crate) async fn pull_records(&self, stream: Stream, state: RecordsCursor) -> Result<PullPage, HubspotError> {
        let s = &self.settings;
        let now_ms = s.clock.now().timestamp_millis();
        let lag_ms = s.lag_secs as i64 * 1000;
        let lookback_ms = s.lookback_secs as i64 * 1000;
        let backfill_ms = s.backfill_since.map(|t| t.timestamp_millis()).unwrap_or(0);
        let mut state = state;
        let mut page = PullPage::default();

        if let Some(sweep) = state.sweep.clone() {
            self.sweep_page(stream, &mut state, sweep, &mut page).await?;
            page.has_more = state.sweep.is_some();
            page.cursor = Some(cursor::encode(stream, &state));
            return Ok(page);
        }

        if state.listing.is_some() || self.backfill_lists(stream, &state) {
            return self.list_page(stream, state, now_ms).await;
        }

        let Some(window) = state.next_window(now_ms, lag_ms, lookback_ms, backfill_ms) else {
            // Nothing finished since the last window; maybe sweep archives.
            if state.sweep_due(now_ms, s.archived_sweep_secs as i64 * 1000) {
                self.start_sweep(&mut state, now_ms, lookback_ms, backfill_ms);
                page.has_more = true;
                page.cursor = Some(cursor::encode(stream, &state));
            }
            return Ok(page);
        };
        let objects = self.stream_objects(stream);
        let object = objects[window.object.min(objects.len() - 1)];
        let lead_records = stream == Stream::Leads && self.leads_mode();
        let deals = object == "deals";
        let cursor_text = format!("{}..{} #{}", window.from_ms, window.to_ms, window.last_id.unwrap_or(0));
        // Engagements need their contacts, and deals their leads, from a
        // separate association read, which takes up to 1,000 ids: read that
        // many before asking.
        let most_pages = if kind_of(object).is_some() || deals {
            (ASSOCIATION_BATCH / s.search_page_size.max(1) as usize).max(1)
        } else {
            1
        };
        let (listing, next, full) = self.search_pages(object, &window, &cursor_text, most_pages).await?;
        let window_from = chrono::DateTime::from_timestamp_millis(window.from_ms).unwrap_or_default();

        let ids: Vec<String> = listing.results.iter().filter_map(|r| r.get("id").and_then(id_string)).collect();
        // Engagement id → the lead it is about (a contact, or a lead record).
        let contacts = match kind_of(object) {
            Some(_) if !ids.is_empty() && self.leads_mode() => {
                self.leads_of_engagements(object, &ids, &cursor_text).await?
            }
            Some(_) if !ids.is_empty() => self.contacts_of(object, &ids, &cursor_text).await?,
            _ => BTreeMap::new(),
        };
        // Engagement id → the deal it is logged on (when opportunities are read).
        let deal_of = match kind_of(object) {
            Some(_) if !ids.is_empty() => self.deals_of_engagements(object, &ids, &cursor_text).await?,
            _ => BTreeMap::new(),
        };
        // Deal id → its leads.
        let leads_of_deal = if deals { self.leads_of_deals(&ids, &cursor_text).await? } else { BTreeMap::new() };
        let lead_of = |id: Option<&str>| match kind_of(object) {
            None if deals => id.and_then(|i| leads_of_deal.get(i)).and_then(|leads| leads.first()).cloned(),
            None => id.map(str::to_string),
            Some(_) => id.and_then(|i| contacts.get(i)).cloned(),
        };
        // What this page delivers: records not delivered before in the overlap.
        let mut fresh = Vec::new();
        for record in listing.records() {
            let o = match record {
                Ok(o) => o,
                Err(bad) => {
                    let lead = lead_of(bad.id.as_deref());
                    page.quarantined.push(self.quarantine(stream, object, &cursor_text, bad, lead, window_from));
                    continue;
                }
            };
            if kind_of(object).is_some() && !contacts.contains_key(&o.id) && !deal_of.contains_key(&o.id) {
                // An engagement about no contact (a company's call) and on
                // no deal handoff reads is not about a lead.
                tracing::debug!(connector = "hubspot", object, cursor = %cursor_text, id = %o.id, "not associated with a contact or a deal; not a lead's activity");
                continue;
            }
            let key = match (map::numeric_id(&o), map::modified_at(&o, object)) {
                (Ok(id), Ok(modified)) => (window.object, id, modified.timestamp_millis()),
                (Err(reason), _) | (_, Err(reason)) => {
                    let raw = echo(&o);
                    let bad = BadRecord { raw, id: Some(o.id.clone()), reason };
                    let lead = lead_of(Some(&o.id));
                    page.quarantined.push(self.quarantine(stream, object, &cursor_text, bad, lead, window_from));
                    continue;
                }
            };
            // Leads mode tells a lead record's versions apart once joined
            // with its contact (see `deliver_lead_records`).
            if (lead_records && object == "leads") || !state.was_seen(&key) {
                fresh.push((o, key));
            }
        }
        let mut digests = Vec::new();
        if lead_records {
            self.deliver_lead_records(object, &fresh, &cursor_text, &window, &mut state, &mut page).await?;
            if object == "contacts" {
                for (_, key) in &fresh {
                    state.remember(*key, &window, lookback_ms);
                }
            }
        } else {
            // Contacts handoff's own write modified last: their history stands.
            let contacts_object = object == "contacts";
            let (own, others): (Vec<_>, Vec<_>) = fresh.iter().partition(|(o, key)| {
                contacts_object
                    && !self.history_unavailable.load(Ordering::Relaxed)
                    && self.own_writes.is_own(&o.id, key.2)
                    && self.digests.unchanged(&o.id, self.history_digest(o))
            });
            page.history_not_read.extend(own.iter().map(|(o, _)| o.id.clone()));
            let histories = if contacts_object && !others.is_empty() {
                let ids: Vec<&str> = others.iter().map(|(o, _)| o.id.as_str()).collect();
                self.histories(&ids, &cursor_text).await?
            } else {
                BTreeMap::new()
            };
            let owner_kinds = if histories.is_empty() {
                BTreeMap::new()
            } else {
                let ids: BTreeSet<String> =
                    histories.values().flat_map(map::history_owner_ids).map(str::to_string).collect();
                self.owner_kinds(ids, &cursor_text).await?
            };
            let kind_of_owner = |id: &str| owner_kinds.get(id).copied().unwrap_or(OwnerKind::User);
            for (o, key) in fresh {
                let digest = contacts_object.then(|| self.history_digest(&o));
                let mapped = match kind_of(object) {
                    None if deals => {
                        let leads = leads_of_deal.get(&o.id).map(Vec::as_slice).unwrap_or_default();
                        map::opportunity(&o, leads).map(|opportunity| page.opportunities.push(opportunity))
                    }
                    None => map::lead(&o, "contacts").map(|(mut lead, merges)| {
                        if let Some(h) = histories.get(&o.id) {
                            map::add_history(&mut lead, h, &kind_of_owner, map::STATUS_PROPERTY);
                        }
                        page.leads.push(lead);
                        page.deletions.extend(merges);
                    }),
                    Some(kind) => {
                        let contact = contacts.get(&o.id).map(String::as_str);
                        map::activity(&o, kind, contact, deal_of.get(&o.id).map(String::as_str))
                            .map(|a| page.activities.push(a))
                    }
                };
                match mapped {
                    Ok(()) => {
                        state.remember(key, &window, lookback_ms);
                        if let Some(d) = digest {
                            digests.push((o.id.clone(), d));
                        }
                    }
                    Err(reason) => {
                        let raw = echo(&o);
                        let bad = BadRecord { raw, id: Some(o.id.clone()), reason };
                        let lead = lead_of(Some(&o.id));
                        page.quarantined.push(self.quarantine(stream, object, &cursor_text, bad, lead, window_from));
                    }
                }
            }
        }

        if full {
            state.window = Some(next);
            page.has_more = true;
        } else if window.object + 1 < objects.len() && !(lead_records && window.from_ms <= 0) {
            // (A backfill from the beginning of time on lead records needs
            // no contacts' pass: every lead record was read, each with its
            // contact as it is now.)
            state.window =
                Some(Window { object: window.object + 1, last_id: None, guard: PageGuard::default(), ..window });
            page.has_more = true;
        } else {
            state.finish_window(&window, lookback_ms);
            if stream == Stream::Leads {
                self.own_writes.forget_before(window.to_ms - lookback_ms);
            }
            tracing::debug!(connector = "hubspot", object, cursor = %cursor_text, "window finished");
            if state.sweep_due(now_ms, s.archived_sweep_secs as i64 * 1000) {
                self.start_sweep(&mut state, now_ms, lookback_ms, backfill_ms);
            }
            // The window is done; the next one waits for the next poll
            // (asking again at once would chase the clock forever).
            page.has_more = state.sweep.is_some();
        }
        page.cursor = Some(cursor::encode(stream, &state));
        if stream == Stream::Leads {
            self.digests.stage(page.cursor.as_ref().map(|c| c.0.as_str()), digests);
        }
        Ok(page)
    }

    /// A record that cannot be mapped: kept, not skipped (the cursor is
    /// about to move past it) and not allowed to block the stream; the
    /// daemon holds the lead it belongs to.
    pub(crate) fn quarantine(
        &self,
        stream: Stream,
        object: &str,
        cursor: &str,
        bad: BadRecord,
        lead_id: Option<String>,
        window_from: chrono::DateTime<chrono::Utc>,
    ) -> Quarantined {
        let id = bad.id.clone().unwrap_or_else(|| "?".into());
        tracing::warn!(connector = "hubspot", object, cursor, record = %id, reason = %bad.reason, "record quarantined");
        Quarantined::new(stream, bad.id, lead_id, format!("{object} {id}: {}", bad.reason), &bad.raw, window_from)
    }

    /// The contact properties every read asks for.
    pub(crate) fn contact_properties(&self) -> Vec<String> {
        map::CONTACT_PROPERTIES
            .iter()
            .map(|p| p.to_string())
            .chain(self.settings.extra_contact_properties.iter().cloned())
            .collect()
    }

    /// A digest of the values a contact's history follows (see
    /// [`handoff_runtime::echo::HistoryDigests`]).
    pub(crate) fn history_digest(&self, o: &ApiObject) -> u64 {
        let names = map::history_properties(&self.settings.history_properties);
        handoff_runtime::echo::HistoryDigests::digest(names.iter().map(|n| o.prop(n)))
    }

    /// Property history was refused (403, a missing scope): from now on
    /// leads come without it and the daemon keeps its own. Logged once.
    pub(crate) fn history_refused(&self, cursor: &str, category: &str, message: &str) {
        if !self.history_unavailable.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                connector = "hubspot", object = "contacts", cursor, %category, %message,
                "property history cannot be read: leads come without ownership and status history, so the daemon keeps its own; grant the app the scope HubSpot names to use the CRM's history"
            );
        }
    }

    /// Up to `most` search pages of `object` in `window` from its
    /// `last_id`, stopping after a page that is not full: the records, the
    /// window moved past them, and whether the last page was full (more
    /// may remain).
    async fn search_pages(
        &self,
        object: &str,
        window: &Window,
        cursor: &str,
        most: usize,
    ) -> Result<(ObjectPage, Window, bool), HubspotError> {
        let mut at = window.clone();
        let mut results = Vec::new();
        let mut full = false;
        for _ in 0..most.max(1) {
            let listing = self.search_window(object, &at, cursor).await?;
            full = listing.results.len() >= self.settings.search_page_size as usize;
            let mut next = at.clone();
            // Every record with a numeric id holds its keyset position, readable or not.
            next.last_id = listing.results.iter().filter_map(raw_numeric_id).max().or(at.last_id);
            if full {
                if at.last_id.is_none() {
                    next.guard = PageGuard::default();
                    if let Some(total) = listing.total {
                        next.guard.expect(total);
                    }
                }
                next.guard.advance_keyset(at.last_id, next.last_id, listing.results.len()).map_err(|message| {
                    HubspotError::Protocol { endpoint: format!("POST /crm/v3/objects/{object}/search"), message }
                })?;
            }
            results.extend(listing.results);
            at = next;
            if !full {
                break;
            }
        }
        Ok((ObjectPage { total: None, results, paging: None }, at, full))
    }

    /// One search page of `object` in `window` after `window.last_id`,
    /// sorted by `hs_object_id`.
    async fn search_window(&self, object: &str, window: &Window, cursor: &str) -> Result<ObjectPage, HubspotError> {
        let modified = map::modified_property(object);
        let mut filters = vec![
            json!({"propertyName": modified, "operator": "GTE", "value": window.from_ms.to_string()}),
            json!({"propertyName": modified, "operator": "LT", "value": window.to_ms.to_string()}),
        ];
        if let Some(last) = window.last_id {
            filters.push(json!({"propertyName": "hs_object_id", "operator": "GT", "value": last.to_string()}));
        }
        let properties: Vec<String> = match kind_of(object) {
            None if object == "deals" => map::DEAL_PROPERTIES.iter().map(|p| p.to_string()).collect(),
            // Leads mode reads the page's leads whole by id afterwards.
            None if self.leads_mode() => vec!["hs_object_id".into(), modified.into()],
            None => self.contact_properties(),
            Some(kind) => map::engagement_properties(kind).iter().map(|p| p.to_string()).collect(),
        };
        let groups = if object == "tasks" {
            // handoff's own open tasks are its echoes (the ledger knows
            // them): read tasks others logged, and any handoff task once it
            // is completed (by a rep or by handoff).
            let mut others = filters.clone();
            others.push(json!({"propertyName": TASK_KEY_PROPERTY, "operator": "NOT_HAS_PROPERTY"}));
            let mut completed = filters;
            completed.push(json!({"propertyName": TASK_KEY_PROPERTY, "operator": "HAS_PROPERTY"}));
            completed.push(json!({"propertyName": "hs_task_status", "operator": "EQ", "value": "COMPLETED"}));
            vec![json!({"filters": others}), json!({"filters": completed})]
        } else {
            vec![json!({"filters": filters})]
        };
        let body = json!({
            "filterGroups": groups,
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": properties,
            "limit": self.settings.search_page_size,
        });
        let path = format!("/crm/v3/objects/{object}/search");
        let resp = self
            .client
            .send(Request {
                method: Method::POST,
                path: path.clone(),
                query: vec![],
                body: Some(&body),
                bucket: Bucket::Search,
                idempotent: true,
                object,
                cursor,
            })
            .await?;
        resp.json(&path)
    }

    /// Contact id → the contact read with the history of its owner and lead
    /// status, in batches of [`HISTORY_BATCH`]. Contacts gone since the
    /// search (archived, merged) are simply absent. When the portal refuses
    /// history (403, a missing scope) the answer is empty from then on,
    /// logged once: leads come without history and the daemon keeps its own.
    async fn histories(&self, ids: &[&str], cursor: &str) -> Result<BTreeMap<String, ApiObject>, HubspotError> {
        let mut out = BTreeMap::new();
        if self.history_unavailable.load(Ordering::Relaxed) {
            return Ok(out);
        }
        let path = "/crm/v3/objects/contacts/batch/read".to_string();
        for chunk in ids.chunks(HISTORY_BATCH) {
            let body = json!({
                "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                "properties": ["hs_object_id"],
                "propertiesWithHistory": map::history_properties(&self.settings.history_properties),
            });
            let sent = self
                .client
                .send(Request {
                    method: Method::POST,
                    path: path.clone(),
                    query: vec![],
                    body: Some(&body),
                    bucket: Bucket::Burst,
                    idempotent: true,
                    object: "contacts",
                    cursor,
                })
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(HubspotError::Api { status: 403, category, message, .. }) => {
                    self.history_refused(cursor, &category, &message);
                    return Ok(BTreeMap::new());
                }
                Err(e) => return Err(e),
            };
            let batch: BatchResponse = resp.json(&path)?;
            out.extend(batch.results.into_iter().map(|r| (r.id.clone(), r)));
        }
        Ok(out)
    }

    /// Whether each of `ids` is a user or a queue. Unknown ids send the
    /// owners listing once (active and archived owners); an id the listing
    /// does not know either is taken for a user and not looked up again.
    pub(crate) async fn owner_kinds(
        &self,
        ids: BTreeSet<String>,
        cursor: &str,
    ) -> Result<BTreeMap<String, OwnerKind>, HubspotError> {
        let mut known = self.owner_kinds.lock().await;
        if ids.iter().any(|id| !known.contains_key(id)) {
            for archived in [false, true] {
                let mut after: Option<String> = None;
                let mut guard = PageGuard { cap: Some(MAX_OWNER_PAGES), ..PageGuard::default() };
                loop {
                    let listing = self.owner_page(archived, after.as_deref(), cursor).await?;
                    known.extend(listing.owners().into_iter().flatten().map(|o| (o.id.clone(), map::owner_kind(&o))));
                    match listing.next_after() {
                        Some(next) => {
                            let rows = listing.results.len();
                            guard.advance(after.as_deref(), next, rows).map_err(|message| HubspotError::Protocol {
                                endpoint: "GET /crm/v3/owners".into(),
                                message,
                            })?;
                            after = Some(next.to_string());
                        }
                        None => break,
                    }
                }
            }
            for id in ids.iter().filter(|id| !known.contains_key(*id)).cloned().collect::<Vec<_>>() {
                tracing::info!(connector = "hubspot", object = "owners", cursor, owner = %id, "an ownership history names an owner HubSpot does not list; taking it for a user");
                known.insert(id, OwnerKind::User);
            }
        }
        Ok(ids.into_iter().filter_map(|id| known.get(&id).map(|k| (id, *k))).collect())
    }

    async fn owner_page(&self, archived: bool, after: Option<&str>, cursor: &str) -> Result<OwnerPage, HubspotError> {
        let mut query = vec![("limit", LIST_PAGE.to_string()), ("archived", archived.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        self.client.get("/crm/v3/owners", query, "owners", cursor).await
    }

    /// Of `ids` (of `object`), the tasks handoff created itself, whose lead
    /// this process remembers (task id → lead id), and the rest.
    pub(crate) fn own_tasks_known(&self, object: &str, ids: &[String]) -> (BTreeMap<String, String>, Vec<String>) {
        let mut known = BTreeMap::new();
        let mut unknown = Vec::new();
        for id in ids {
            match self.own_writes.contact_of_task(id).filter(|_| object == "tasks") {
                Some(lead) => {
                    known.insert(id.clone(), lead);
                }
                None => unknown.push(id.clone()),
            }
        }
        (known, unknown)
    }

    /// Engagement id → associated contact id (the lowest when several), in
    /// one v4 batch call per page.
    async fn contacts_of(
        &self,
        object: &str,
        ids: &[String],
        cursor: &str,
    ) -> Result<BTreeMap<String, String>, HubspotError> {
        let (mut out, unknown) = self.own_tasks_known(object, ids);
        if unknown.is_empty() {
            return Ok(out);
        }
        for (engagement, ends) in self.associated(object, "contacts", &unknown, cursor).await? {
            if let Some(contact) = crate::lead_records::lowest_id(&ends) {
                out.insert(engagement, contact);
            }
        }
        Ok(out)
    }

    fn start_sweep(&self, state: &mut RecordsCursor, now_ms: i64, lookback_ms: i64, backfill_ms: i64) {
        let since_ms = state.swept_at_ms.map(|t| t - lookback_ms).unwrap_or(backfill_ms);
        state.sweep =
            Some(Sweep { object: 0, after: None, since_ms, started_at_ms: now_ms, guard: PageGuard::default() });
    }

    /// One page of the archived listing. Archiving does not touch the
    /// modified time and search never returns archived records, so this is
    /// the only way to see deletions; the listing cannot be filtered by
    /// time, so archivals before `since_ms` are dropped here.
    async fn sweep_page(
        &self,
        stream: Stream,
        state: &mut RecordsCursor,
        sweep: Sweep,
        page: &mut PullPage,
    ) -> Result<(), HubspotError> {
        let objects = self.sweep_objects(stream);
        let object = objects[sweep.object.min(objects.len() - 1)];
        let path = format!("/crm/v3/objects/{object}");
        let mut sweep = sweep;
        let listing: ObjectPage = match self.archived_page(object, &sweep).await {
            // A paging token HubSpot no longer takes (or never issued):
            // list this object's archive again from its start.
            Err(HubspotError::Api { status: 400, .. }) if sweep.after.is_some() => {
                tracing::warn!(
                    connector = "hubspot",
                    object,
                    "archived listing position refused; listing it again from the start"
                );
                sweep.after = None;
                sweep
                    .guard
                    .restart()
                    .map_err(|message| HubspotError::Protocol { endpoint: format!("GET {path}"), message })?;
                self.archived_page(object, &sweep).await?
            }
            other => other?,
        };
        let window_from = chrono::DateTime::from_timestamp_millis(sweep.since_ms).unwrap_or_default();
        for record in listing.records() {
            let o = match record {
                Ok(o) => o,
                Err(bad) => {
                    let lead = if stream == Stream::Leads { bad.id.clone() } else { None };
                    page.quarantined.push(self.quarantine(stream, object, "archived", bad, lead, window_from));
                    continue;
                }
            };
            let Some(at) = o.archived_at.as_deref().and_then(parse_time) else {
                let lead = if stream == Stream::Leads { Some(o.id.clone()) } else { None };
                let bad = BadRecord {
                    raw: echo(&o),
                    id: Some(o.id.clone()),
                    reason: "archivedAt is missing or unreadable".into(),
                };
                page.quarantined.push(self.quarantine(stream, object, "archived", bad, lead, window_from));
                continue;
            };
            if at.timestamp_millis() >= sweep.since_ms {
                page.deletions.push(Deletion { stream, id: o.id.clone(), merged_into: None, deleted_at: at });
            }
        }
        state.sweep = match listing.next_after() {
            Some(after) => {
                let mut guard = sweep.guard.clone();
                guard
                    .advance(sweep.after.as_deref(), after, listing.results.len())
                    .map_err(|message| HubspotError::Protocol { endpoint: format!("GET {path}"), message })?;
                Some(Sweep { after: Some(after.to_string()), guard, ..sweep })
            }
            None if sweep.object + 1 < objects.len() => {
                Some(Sweep { object: sweep.object + 1, after: None, guard: PageGuard::default(), ..sweep })
            }
            None => {
                state.swept_at_ms = Some(sweep.started_at_ms);
                None
            }
        };
        Ok(())
    }

    async fn archived_page(&self, object: &str, sweep: &Sweep) -> Result<ObjectPage, HubspotError> {
        let mut query = vec![
            ("archived", "true".to_string()),
            ("limit", LIST_PAGE.to_string()),
            ("properties", "hs_object_id".to_string()),
        ];
        if let Some(after) = &sweep.after {
            query.push(("after", after.clone()));
        }
        let cursor_text = format!("archived since {} after {:?}", sweep.since_ms, sweep.after);
        let path = format!("/crm/v3/objects/{object}");
        self.client.get(&path, query, object, &cursor_text).await
    }

    /// Owners, listed in full each cycle: active ones, then archived ones
    /// (reported inactive). One page per call. An owner that cannot be read
    /// is quarantined; the next full listing reads it again.
    pub(crate) async fn pull_owners(&self, state: OwnersCursor) -> Result<PullPage, HubspotError> {
        let cursor_text = format!("archived={} after {:?}", state.archived, state.after);
        let mut state = state;
        let listing = match self.owner_page(state.archived, state.after.as_deref(), &cursor_text).await {
            Err(HubspotError::Api { status: 400, .. }) if state.after.is_some() => {
                tracing::warn!(
                    connector = "hubspot",
                    object = "owners",
                    "owners listing position refused; listing again from the start"
                );
                let mut guard = state.guard.clone();
                guard
                    .restart()
                    .map_err(|message| HubspotError::Protocol { endpoint: "GET /crm/v3/owners".into(), message })?;
                state = OwnersCursor { listed_at_ms: state.listed_at_ms, guard, ..OwnersCursor::default() };
                self.owner_page(state.archived, None, &cursor_text).await?
            }
            other => other?,
        };
        let mut page = PullPage::default();
        let window_from = state.listed_at_ms.and_then(chrono::DateTime::from_timestamp_millis).unwrap_or_default();
        let mut kinds = Vec::new();
        for owner in listing.owners() {
            let owner = owner.and_then(|o| match o.updated_at.as_deref().filter(|t| !t.is_empty()) {
                Some(t) if parse_time(t).is_none() => Err(BadRecord {
                    raw: listing.results.iter().find(|r| r["id"] == o.id.as_str()).cloned().unwrap_or_default(),
                    id: Some(o.id.clone()),
                    reason: format!("updatedAt {t:?} is not a time"),
                }),
                _ => Ok(o),
            });
            match owner {
                Ok(o) => {
                    kinds.push((o.id.clone(), map::owner_kind(&o)));
                    page.owners.push(map::owner(&o, &self.settings.managers, &self.settings.owner_time_zones));
                }
                Err(bad) => page.quarantined.push(self.quarantine(
                    Stream::Owners,
                    "owners",
                    &cursor_text,
                    bad,
                    None,
                    window_from,
                )),
            }
        }
        self.owner_kinds.lock().await.extend(kinds);
        let mut guard = state.guard.clone();
        guard.cap = guard.cap.or(Some(MAX_OWNER_PAGES));
        let next = match (listing.next_after(), state.archived) {
            (Some(after), archived) => {
                guard
                    .advance(state.after.as_deref(), after, listing.results.len())
                    .map_err(|message| HubspotError::Protocol { endpoint: "GET /crm/v3/owners".into(), message })?;
                OwnersCursor { after: Some(after.to_string()), archived, listed_at_ms: state.listed_at_ms, guard }
            }
            (None, false) => OwnersCursor {
                after: None,
                archived: true,
                listed_at_ms: state.listed_at_ms,
                guard: PageGuard::default(),
            },
            (None, true) => OwnersCursor {
                after: None,
                archived: false,
                listed_at_ms: Some(self.settings.clock.now().timestamp_millis()),
                guard: PageGuard::default(),
            },
        };
        page.has_more = next.after.is_some() || next.archived;
        page.cursor = Some(cursor::encode(Stream::Owners, &next));
        Ok(page)
    }
}
