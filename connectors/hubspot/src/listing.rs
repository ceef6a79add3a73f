//! The cheapest reads of contacts.
//!
//! **Backfill as a listing.** Search pages hold 200 contacts but carry no
//! history, so a search backfill reads every contact twice: its search
//! page, then a batch read with `propertiesWithHistory` (50 per call). The
//! plain listing (`GET /crm/v3/objects/contacts`) returns both at once, 50
//! per page when history is asked for: a quarter fewer calls, and none of
//! them against search's own rate limit. A listing cannot be filtered by
//! time, so it serves the backfill of a whole portal only (no
//! `backfill_since`); everything modified after it started is read by the
//! search windows that follow.
//!
//! **handoff's own writes.** Every SLA-field update modifies the contact,
//! so the next window finds it again. The update's answer says when the
//! write landed; a contact found modified at exactly that instant was last
//! modified by handoff, so its history is as it was and is not read again
//! (the page says so in `PullPage::history_not_read`). The marks live in
//! memory: after a restart the first windows read those histories, which
//! costs calls, never correctness.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use handoff_model::{OwnerKind, PullPage, Stream};
use handoff_runtime::echo::{id_key, KeyMap};
use handoff_runtime::PageGuard;

use crate::cursor::{self, Listing, RecordsCursor};
use crate::error::HubspotError;
use crate::map;
use crate::wire::{ApiObject, ObjectPage};
use crate::HubspotConnector;

/// Most records a listing page holds when it carries history (HubSpot's
/// spec: "usage of this parameter will reduce the maximum number of objects
/// that can be read by a single request"; 50, as for batch reads).
pub const LIST_PAGE_WITH_HISTORY: u32 = 50;
/// Most records a plain listing page holds.
pub const LIST_PAGE: u32 = 100;
/// Most own-write marks, and most tasks, kept; past it they are dropped
/// (the next windows then read those histories and associations: more
/// calls, nothing missed). Each finished window forgets the marks it
/// passed, so only a burst of more writes than this between two windows
/// (a first start, a policy change on a large portal) meets the cap: a
/// quarter of a million is 4 MiB a map (at a million contacts, the
/// backfill peaked at 254 MiB with it, 258 with half a million).
const MAX_MARKS: usize = 250_000;

/// What handoff's own writes left behind: when each contact was last
/// updated by them (contact id's [`id_key`] → modified, epoch ms), and the contact of
/// each task they created (task id → contact id), so reading those tasks
/// back needs no association read. Both are [`KeyMap`]s, 16 bytes an
/// entry: a backfill of a large portal fills them to their cap, where hash
/// maps of the id strings took over 60 MiB.
#[derive(Debug, Default)]
pub struct OwnWrites {
    marks: std::sync::Mutex<KeyMap>,
    tasks: std::sync::Mutex<KeyMap>,
}

/// A HubSpot record id as the number it is (`hs_object_id`). An id that
/// does not read back as the same text (not a number, a leading zero) is
/// not remembered: what it would have saved is read instead.
fn numeric_id(id: &str) -> Option<u64> {
    id.parse::<u64>().ok().filter(|n| n.to_string() == id)
}

impl OwnWrites {
    /// Remember what an update's answer says each contact now is.
    pub fn record(&self, written: &[ApiObject]) {
        let Ok(mut marks) = self.marks.lock() else { return };
        if marks.len() + written.len() > MAX_MARKS {
            marks.clear();
        }
        for o in written {
            if let Ok(at) = map::modified_at(o, "contacts") {
                marks.insert(id_key(&o.id), at.timestamp_millis() as u64);
            }
        }
    }

    /// Whether `id` was last modified by handoff's write at `modified_ms`.
    pub fn is_own(&self, id: &str, modified_ms: i64) -> bool {
        self.marks.lock().map(|m| m.get(id_key(id)) == Some(modified_ms as u64)).unwrap_or(false)
    }

    /// Remember the contact a task handoff created (or found) is about.
    pub fn record_task(&self, task_id: &str, contact_id: &str) {
        let (Some(task), Some(contact)) = (numeric_id(task_id), numeric_id(contact_id)) else { return };
        let Ok(mut tasks) = self.tasks.lock() else { return };
        if tasks.len() >= MAX_MARKS {
            tasks.clear();
        }
        tasks.insert(task, contact);
    }

    /// The contact of a task handoff created, if this process remembers it.
    pub fn contact_of_task(&self, task_id: &str) -> Option<String> {
        let task = numeric_id(task_id)?;
        self.tasks.lock().ok()?.get(task).map(|contact| contact.to_string())
    }

    /// Forget marks no window can still find: modified before `ms`.
    pub fn forget_before(&self, ms: i64) {
        if let Ok(mut marks) = self.marks.lock() {
            marks.retain(|_, at| at as i64 >= ms);
        }
    }
}

impl HubspotConnector {
    /// Whether this leads stream's backfill reads the listing: a whole
    /// portal (no `backfill_since`), before its first window.
    pub(crate) fn backfill_lists(&self, stream: Stream, state: &RecordsCursor) -> bool {
        // Leads mode reads lead records with their contacts: by search.
        stream == Stream::Leads
            && !self.leads_mode()
            && self.settings.backfill_since.is_none()
            && state.done_until_ms.is_none()
            && state.window.is_none()
            && state.sweep.is_none()
    }

    /// One page of the backfill listing: contacts with their history.
    pub(crate) async fn list_page(
        &self,
        stream: Stream,
        mut state: RecordsCursor,
        now_ms: i64,
    ) -> Result<PullPage, HubspotError> {
        let mut listing = state.listing.take().unwrap_or(Listing {
            after: None,
            started_at_ms: now_ms,
            guard: PageGuard::for_listing(LIST_PAGE_WITH_HISTORY),
        });
        // A listing begun by an older handoff carries the windows' cap,
        // which ends a portal's listing at half a million contacts.
        listing.guard.cap = listing.guard.cap.max(Some(handoff_runtime::paging::listing_cap(LIST_PAGE_WITH_HISTORY)));
        let cursor_text = format!("backfill listing after {:?}", listing.after);
        let lookback_ms = self.settings.lookback_secs as i64 * 1000;
        let answer = match self.contacts_listing(listing.after.as_deref(), &cursor_text).await {
            // A paging token HubSpot no longer takes (or never issued): list
            // again from the start (what was delivered is delivered again,
            // harmlessly), unless that keeps happening.
            Err(HubspotError::Api { status: 400, .. }) if listing.after.is_some() => {
                tracing::warn!(
                    connector = "hubspot",
                    object = "contacts",
                    "listing position refused; listing again from the start"
                );
                listing.after = None;
                listing.guard.restart().map_err(|message| HubspotError::Protocol {
                    endpoint: "GET /crm/v3/objects/contacts".into(),
                    message,
                })?;
                self.contacts_listing(None, &cursor_text).await?
            }
            other => other?,
        };
        let mut page = PullPage::default();
        let window_from = chrono::DateTime::UNIX_EPOCH;
        let mut read = Vec::new();
        for record in answer.records() {
            match record {
                Ok(o) => read.push(o),
                Err(bad) => {
                    let lead = bad.id.clone();
                    page.quarantined.push(self.quarantine(stream, "contacts", &cursor_text, bad, lead, window_from));
                }
            }
        }
        let owner_ids: BTreeSet<String> = read.iter().flat_map(map::history_owner_ids).map(str::to_string).collect();
        let owner_kinds: BTreeMap<String, OwnerKind> =
            if owner_ids.is_empty() { BTreeMap::new() } else { self.owner_kinds(owner_ids, &cursor_text).await? };
        let kind_of_owner = |id: &str| owner_kinds.get(id).copied().unwrap_or(OwnerKind::User);
        let mut digests = Vec::new();
        for o in read {
            match map::lead(&o, "contacts") {
                Ok((mut lead, merges)) => {
                    digests.push((o.id.clone(), self.history_digest(&o)));
                    if let Ok(id) = map::numeric_id(&o) {
                        let key = (0, id, lead.modified_at.timestamp_millis());
                        state.remember_listed(key, listing.started_at_ms, lookback_ms);
                    }
                    if !o.properties_with_history.is_empty() {
                        map::add_history(&mut lead, &o, &kind_of_owner, map::STATUS_PROPERTY);
                    }
                    page.leads.push(lead);
                    page.deletions.extend(merges);
                }
                Err(reason) => {
                    let bad = crate::wire::BadRecord { raw: crate::pull::echo(&o), id: Some(o.id.clone()), reason };
                    let lead = Some(o.id.clone());
                    page.quarantined.push(self.quarantine(stream, "contacts", &cursor_text, bad, lead, window_from));
                }
            }
        }
        match answer.next_after() {
            Some(next) => {
                let mut guard = listing.guard.clone();
                guard.advance(listing.after.as_deref(), next, answer.results.len()).map_err(|message| {
                    HubspotError::Protocol { endpoint: "GET /crm/v3/objects/contacts".into(), message }
                })?;
                state.listing = Some(Listing { after: Some(next.to_string()), guard, ..listing });
                page.has_more = true;
            }
            None => {
                // Everything modified before the listing started is read;
                // the search windows take over from there.
                state.done_until_ms = Some(listing.started_at_ms);
                // Archivals before the listing concern nothing delivered.
                state.swept_at_ms = Some(listing.started_at_ms);
                tracing::debug!(connector = "hubspot", object = "contacts", "backfill listing finished");
                page.has_more = false;
            }
        }
        page.cursor = Some(cursor::encode(stream, &state));
        self.digests.stage(page.cursor.as_ref().map(|c| c.0.as_str()), digests);
        Ok(page)
    }

    /// `GET /crm/v3/objects/contacts` after `after`, with history unless the
    /// portal refuses it (then without, from then on, as for batch reads).
    async fn contacts_listing(&self, after: Option<&str>, cursor: &str) -> Result<ObjectPage, HubspotError> {
        if self.history_unavailable.load(Ordering::Relaxed) {
            return self.listing(after, None, cursor).await;
        }
        let history = map::history_properties(&self.settings.history_properties).join(",");
        match self.listing(after, Some(&history), cursor).await {
            Err(HubspotError::Api { status: 403, category, message, .. }) => {
                // Only a refusal the plain listing does not share is about
                // history (a portal refusing everything is not).
                let plain = self.listing(after, None, cursor).await?;
                self.history_refused(cursor, &category, &message);
                Ok(plain)
            }
            other => other,
        }
    }

    /// One page of the contacts listing, with the history of `history`.
    async fn listing(
        &self,
        after: Option<&str>,
        history: Option<&str>,
        cursor: &str,
    ) -> Result<ObjectPage, HubspotError> {
        let path = "/crm/v3/objects/contacts".to_string();
        let limit = if history.is_some() { LIST_PAGE_WITH_HISTORY } else { LIST_PAGE };
        let mut query = vec![
            ("limit", limit.to_string()),
            ("archived", "false".to_string()),
            ("properties", self.contact_properties().join(",")),
        ];
        if let Some(history) = history {
            query.push(("propertiesWithHistory", history.to_string()));
        }
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        self.client.get(&path, query, "contacts", cursor).await
    }
}
