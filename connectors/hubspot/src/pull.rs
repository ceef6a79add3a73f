//! Reading: one page per call, in finished windows (see [`crate::cursor`]).
//! A contacts page is followed by batch reads of its fresh contacts with
//! the history of owner and lead status (50 per call, HubSpot's limit with
//! history), and, when that history names an owner not seen yet, by the
//! owners listing (for whether each owner is a user or a queue).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use handoff_model::{ActivityKind, Deletion, OwnerKind, PullPage, Stream};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Request;
use crate::cursor::{self, OwnersCursor, RecordsCursor, Sweep, Window};
use crate::error::HubspotError;
use crate::limits::Bucket;
use crate::map;
use crate::wire::{id_string, parse_time, ApiObject, AssociationBatch, BatchResponse, ObjectPage, OwnerPage};
use crate::HubspotConnector;

/// Archived listings page at HubSpot's list maximum.
const LIST_PAGE: u32 = 100;
/// Most inputs of a batch read asking for `propertiesWithHistory` (HubSpot
/// refuses more with a 400).
pub const HISTORY_BATCH: usize = 50;

/// The object types a records stream reads, in order.
fn objects(stream: Stream) -> Vec<&'static str> {
    match stream {
        Stream::Leads => vec!["contacts"],
        _ => map::ENGAGEMENTS.iter().map(|k| map::object_type(*k)).collect(),
    }
}

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

        let Some(window) = state.next_window(now_ms, lag_ms, lookback_ms, backfill_ms) else {
            // Nothing finished since the last window; maybe sweep archives.
            if state.sweep_due(now_ms, s.archived_sweep_secs as i64 * 1000) {
                self.start_sweep(&mut state, now_ms, lookback_ms, backfill_ms);
                page.has_more = true;
                page.cursor = Some(cursor::encode(stream, &state));
            }
            return Ok(page);
        };
        let objects = objects(stream);
        let object = objects[window.object.min(objects.len() - 1)];
        let cursor_text = format!("{}..{} #{}", window.from_ms, window.to_ms, window.last_id.unwrap_or(0));
        let results = self.search_window(object, &window, &cursor_text).await?;
        let full = results.len() >= s.search_page_size as usize;

        let mut next = window.clone();
        next.last_id = results.iter().filter_map(|o| map::numeric_id(o).ok()).max().or(window.last_id);
        // What this page delivers: records not delivered before in the overlap.
        let mut fresh = Vec::new();
        for o in &results {
            let (Ok(id), Ok(modified)) = (map::numeric_id(o), map::modified_at(o, object)) else {
                tracing::warn!(connector = "hubspot", object, cursor = %cursor_text, id = %o.id, "skipping a record without a numeric id or modified time");
                continue;
            };
            let key = (window.object, id, modified.timestamp_millis());
            if !state.was_seen(&key) {
                fresh.push((o, key));
            }
        }
        let contacts = match kind_of(object) {
            Some(_) if !fresh.is_empty() => self.contacts_of(object, &results, &cursor_text).await?,
            _ => BTreeMap::new(),
        };
        let histories = match kind_of(object) {
            None if !fresh.is_empty() => {
                let ids: Vec<&str> = fresh.iter().map(|(o, _)| o.id.as_str()).collect();
                self.histories(&ids, &cursor_text).await?
            }
            _ => BTreeMap::new(),
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
            let mapped = match kind_of(object) {
                None => map::lead(o).map(|(mut lead, merges)| {
                    if let Some(h) = histories.get(&o.id) {
                        map::add_history(&mut lead, h, &kind_of_owner);
                    }
                    page.leads.push(lead);
                    page.deletions.extend(merges);
                }),
                Some(kind) => {
                    map::activity(o, kind, contacts.get(&o.id).map(String::as_str)).map(|a| page.activities.push(a))
                }
            };
            match mapped {
                Ok(()) => state.remember(key, &window, lookback_ms),
                Err(reason) => {
                    tracing::info!(connector = "hubspot", object, cursor = %cursor_text, %reason, "record skipped")
                }
            }
        }

        if full {
            state.window = Some(next);
            page.has_more = true;
        } else if window.object + 1 < objects.len() {
            state.window = Some(Window { object: window.object + 1, last_id: None, ..window });
            page.has_more = true;
        } else {
            state.finish_window(&window, lookback_ms);
            tracing::debug!(connector = "hubspot", object, cursor = %cursor_text, "window finished");
            if state.sweep_due(now_ms, s.archived_sweep_secs as i64 * 1000) {
                self.start_sweep(&mut state, now_ms, lookback_ms, backfill_ms);
            }
            // The window is done; the next one waits for the next poll
            // (asking again at once would chase the clock forever).
            page.has_more = state.sweep.is_some();
        }
        page.cursor = Some(cursor::encode(stream, &state));
        Ok(page)
    }

    /// One search page of `object` in `window` after `window.last_id`,
    /// sorted by `hs_object_id`.
    async fn search_window(
        &self,
        object: &str,
        window: &Window,
        cursor: &str,
    ) -> Result<Vec<crate::wire::ApiObject>, HubspotError> {
        let modified = map::modified_property(object);
        let mut filters = vec![
            json!({"propertyName": modified, "operator": "GTE", "value": window.from_ms.to_string()}),
            json!({"propertyName": modified, "operator": "LT", "value": window.to_ms.to_string()}),
        ];
        if let Some(last) = window.last_id {
            filters.push(json!({"propertyName": "hs_object_id", "operator": "GT", "value": last.to_string()}));
        }
        let properties: Vec<String> = match kind_of(object) {
            None => map::CONTACT_PROPERTIES
                .iter()
                .map(|p| p.to_string())
                .chain(self.settings.extra_contact_properties.iter().cloned())
                .collect(),
            Some(kind) => map::engagement_properties(kind).iter().map(|p| p.to_string()).collect(),
        };
        let body = json!({
            "filterGroups": [{"filters": filters}],
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
        let page: ObjectPage = resp.json(&path)?;
        Ok(page.results)
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
                    if !self.history_unavailable.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            connector = "hubspot", object = "contacts", cursor, %category, %message,
                            "property history cannot be read: leads come without ownership and status history, so the daemon keeps its own; grant the app the scope HubSpot names to use the CRM's history"
                        );
                    }
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
    async fn owner_kinds(
        &self,
        ids: BTreeSet<String>,
        cursor: &str,
    ) -> Result<BTreeMap<String, OwnerKind>, HubspotError> {
        let mut known = self.owner_kinds.lock().await;
        if ids.iter().any(|id| !known.contains_key(id)) {
            for archived in [false, true] {
                let mut after: Option<String> = None;
                loop {
                    let listing = self.owner_page(archived, after.as_deref(), cursor).await?;
                    known.extend(listing.results.iter().map(|o| (o.id.clone(), map::owner_kind(o))));
                    match listing.paging.and_then(|p| p.next).map(|n| n.after) {
                        Some(next) => after = Some(next),
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
        let path = "/crm/v3/owners".to_string();
        let resp = self
            .client
            .send(Request {
                method: Method::GET,
                path: path.clone(),
                query,
                body: None,
                bucket: Bucket::Burst,
                idempotent: true,
                object: "owners",
                cursor,
            })
            .await?;
        resp.json(&path)
    }

    /// Engagement id → associated contact id (the lowest when several), in
    /// one v4 batch call per page.
    async fn contacts_of(
        &self,
        object: &str,
        records: &[crate::wire::ApiObject],
        cursor: &str,
    ) -> Result<BTreeMap<String, String>, HubspotError> {
        let inputs: Vec<Value> = records.iter().map(|o| json!({"id": o.id})).collect();
        let body = json!({"inputs": inputs});
        let path = format!("/crm/v4/associations/{object}/contacts/batch/read");
        let resp = self
            .client
            .send(Request {
                method: Method::POST,
                path: path.clone(),
                query: vec![],
                body: Some(&body),
                bucket: Bucket::Burst,
                idempotent: true,
                object,
                cursor,
            })
            .await?;
        let batch: AssociationBatch = resp.json(&path)?;
        let mut out = BTreeMap::new();
        for r in batch.results {
            let Some(from) = id_string(&r.from.id) else { continue };
            let lowest = r.to.iter().filter_map(|t| id_string(&t.to_object_id)).min_by_key(|id| (id.len(), id.clone()));
            if let Some(contact) = lowest {
                out.insert(from, contact);
            }
        }
        Ok(out)
    }

    fn start_sweep(&self, state: &mut RecordsCursor, now_ms: i64, lookback_ms: i64, backfill_ms: i64) {
        let since_ms = state.swept_at_ms.map(|t| t - lookback_ms).unwrap_or(backfill_ms);
        state.sweep = Some(Sweep { object: 0, after: None, since_ms, started_at_ms: now_ms });
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
        let objects = objects(stream);
        let object = objects[sweep.object.min(objects.len() - 1)];
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
        let resp = self
            .client
            .send(Request {
                method: Method::GET,
                path: path.clone(),
                query,
                body: None,
                bucket: Bucket::Burst,
                idempotent: true,
                object,
                cursor: &cursor_text,
            })
            .await?;
        let listing: ObjectPage = resp.json(&path)?;
        for o in &listing.results {
            let Some(at) = o.archived_at.as_deref().and_then(parse_time) else { continue };
            if at.timestamp_millis() >= sweep.since_ms {
                page.deletions.push(Deletion { stream, id: o.id.clone(), merged_into: None, deleted_at: at });
            }
        }
        state.sweep = match listing.next_after() {
            Some(after) => Some(Sweep { after: Some(after.to_string()), ..sweep }),
            None if sweep.object + 1 < objects.len() => Some(Sweep { object: sweep.object + 1, after: None, ..sweep }),
            None => {
                state.swept_at_ms = Some(sweep.started_at_ms);
                None
            }
        };
        Ok(())
    }

    /// Owners, listed in full each cycle: active ones, then archived ones
    /// (reported inactive). One page per call.
    pub(crate) async fn pull_owners(&self, state: OwnersCursor) -> Result<PullPage, HubspotError> {
        let cursor_text = format!("archived={} after {:?}", state.archived, state.after);
        let listing = self.owner_page(state.archived, state.after.as_deref(), &cursor_text).await?;
        self.owner_kinds.lock().await.extend(listing.results.iter().map(|o| (o.id.clone(), map::owner_kind(o))));
        let mut page = PullPage {
            owners: listing
                .results
                .iter()
                .map(|o| map::owner(o, &self.settings.managers, &self.settings.owner_time_zones))
                .collect(),
            ..PullPage::default()
        };
        let next_after = listing.paging.and_then(|p| p.next).map(|n| n.after);
        let next = match (next_after, state.archived) {
            (Some(after), archived) => OwnersCursor { after: Some(after), archived, listed_at_ms: state.listed_at_ms },
            (None, false) => OwnersCursor { after: None, archived: true, listed_at_ms: state.listed_at_ms },
            (None, true) => OwnersCursor {
                after: None,
                archived: false,
                listed_at_ms: Some(self.settings.clock.now().timestamp_millis()),
            },
        };
        page.has_more = next.after.is_some() || next.archived;
        page.cursor = Some(cursor::encode(Stream::Owners, &next));
        Ok(page)
    }
}
