//! Applying a pulled page to the store: merge records with what is stored,
//! keep the history the CRM did not give, tell real changes from the echo
//! of handoff's own writes, and mark the leads that must be evaluated.
//!
//! Pure with respect to the network: it reads the store and fills a
//! [`Batch`]; the caller commits the batch together with the page's cursor.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use handoff_model::{
    Activity, Assignment, Deletion, FieldChange, Lead, Opportunity, OwnerKind, PullPage, Quarantined, StatusChange,
    Stream,
};
use serde_json::Value;

use crate::engine::keys::short_hash;
use crate::store::{opportunity_file, quarantine_key, Batch, QuarantineRecord, Store, StoreError, StoredLead};

/// Fields that change with every save and say nothing about the lead.
const STAMP_FIELDS: &[&str] = &[
    "SystemModstamp",
    "LastModifiedDate",
    "LastModifiedById",
    "LastViewedDate",
    "LastReferencedDate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
    "hs_object_id",
];

/// The most bytes one stored field value may take (as JSON). A longer text
/// (a pasted e-mail thread in a description) is cut to this with a note of
/// what was cut; a longer list or object is replaced by that note. Policies
/// compare short values (statuses, sources, sizes, scores); a field this
/// long is never what they judge, and keeping it whole would let one lead
/// grow the store and every evaluation without bound.
pub const MAX_FIELD_VALUE_BYTES: usize = 8 * 1024;

/// `value` within [`MAX_FIELD_VALUE_BYTES`]; `None` when it already is.
fn capped_value(value: &Value) -> Option<Value> {
    let size = match value {
        Value::String(s) => s.len(),
        Value::Array(_) | Value::Object(_) => serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX),
        _ => return None,
    };
    if size <= MAX_FIELD_VALUE_BYTES {
        return None;
    }
    let note = format!("[handoff kept {MAX_FIELD_VALUE_BYTES} of {size} bytes]");
    Some(match value {
        Value::String(s) => {
            let mut end = MAX_FIELD_VALUE_BYTES - note.len();
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(format!("{}{note}", &s[..end]))
        }
        _ => Value::String(note),
    })
}

/// `lead` with every field value within [`MAX_FIELD_VALUE_BYTES`], and the
/// names of the fields that were cut.
fn capped_lead(lead: &Lead) -> (std::borrow::Cow<'_, Lead>, Vec<String>) {
    let cut: Vec<(String, Value)> =
        lead.fields.iter().filter_map(|(k, v)| capped_value(v).map(|c| (k.clone(), c))).collect();
    if cut.is_empty() {
        return (std::borrow::Cow::Borrowed(lead), Vec::new());
    }
    let mut owned = lead.clone();
    let names = cut.iter().map(|(k, _)| k.clone()).collect();
    for (k, v) in cut {
        owned.fields.insert(k, v);
    }
    (std::borrow::Cow::Owned(owned), names)
}

/// What applying a page did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Leads new or changed by someone other than handoff.
    pub leads_changed: usize,
    /// Leads whose only change was handoff's own write-back.
    pub echoes: usize,
    pub activities_changed: usize,
    /// Tasks handoff created, seen again.
    pub own_tasks: usize,
    pub deletions: usize,
    /// Owners new or changed.
    pub owners: usize,
    pub calendars: usize,
    /// Opportunities new or changed.
    pub opportunities: usize,
    /// Absences new, changed or gone.
    pub absences: usize,
    /// Records put in quarantine (or kept there, read unreadable again).
    pub quarantined: usize,
    /// Quarantined records that came back readable.
    pub released: usize,
}

/// How a page's activities reach the activity index (see
/// `store::activities`).
#[derive(Debug, Clone, Copy)]
enum ActivityIndex {
    /// Pointed at their leads as they are filed.
    Kept,
    /// Filed only: a first start's backfill, whose index is built from the
    /// files once every stream is read. `deletions_waiting`: some deletion
    /// waits for it (one an activity filed again overtakes).
    Deferred { deletions_waiting: bool },
}

impl ActivityIndex {
    fn of(store: &Store) -> Result<ActivityIndex, StoreError> {
        Ok(match store.activity_index_deferred()? {
            true => ActivityIndex::Deferred { deletions_waiting: store.any_deletion_waiting()? },
            false => ActivityIndex::Kept,
        })
    }
}

/// Reads the store and the page; writes what changed into `batch`.
pub struct PageApplier<'a> {
    pub store: &'a Store,
    /// Owner kinds by id, to date a queue assignment correctly.
    pub owner_kinds: &'a HashMap<String, OwnerKind>,
    /// handoff's own write-back fields (excluded from the fingerprint).
    pub sla_fields: &'a BTreeSet<String>,
    /// The policy's status field, whose changes are history.
    pub status_field: &'a str,
    /// Other fields whose changes are history (what decides qualification,
    /// the reason code): kept when the CRM gives no history of them.
    pub history_fields: &'a BTreeSet<String>,
    /// When the page is applied (the tick's now), for the quarantine.
    pub now: DateTime<Utc>,
    /// Whether the leads the page touches are marked for evaluation: not
    /// during a first start's backfill, which one sweep over every stored
    /// lead evaluates once it is read (see `Daemon::note_first_sweep`).
    pub marks_dirty: bool,
}

impl PageApplier<'_> {
    pub fn apply(&self, page: &PullPage, batch: &mut Batch) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        // Nothing can be released from an empty quarantine (the usual
        // case): one count read spares a lookup per record.
        let any_quarantined = self.store.quarantined_count()? > 0;
        let release = |stream, id: &str, batch: &mut Batch, applied: &mut Applied| -> Result<(), StoreError> {
            match any_quarantined {
                true => self.release(stream, id, batch, applied),
                false => Ok(()),
            }
        };
        for owner in &page.owners {
            release(Stream::Owners, &owner.id, batch, &mut applied)?;
            // Owners are listed in full every cycle (HubSpot has no
            // changed-since filter for them): one as stored is neither
            // written again nor a reason for the daemon to reload them all.
            if self.store.owner(&owner.id)?.as_ref() != Some(owner) {
                batch.put_owner(owner);
                applied.owners += 1;
            }
        }
        for calendar in &page.calendars {
            batch.put_calendar(calendar);
            applied.calendars += 1;
        }
        // A page can carry the same lead twice (lookback overlap): keep the newest.
        let mut newest: BTreeMap<&str, &Lead> = BTreeMap::new();
        for lead in &page.leads {
            match newest.get(lead.id.as_str()) {
                Some(have) if have.modified_at > lead.modified_at => {}
                _ => {
                    newest.insert(lead.id.as_str(), lead);
                }
            }
        }
        for lead in newest.values() {
            release(Stream::Leads, &lead.id, batch, &mut applied)?;
            let without_history = page.history_not_read.contains(&lead.id);
            self.apply_lead(lead, without_history, batch, &mut applied)?;
        }
        for absence in &page.absences {
            if self.store.absence(&absence.id)?.as_ref() != Some(absence) {
                batch.put_absence(absence);
                applied.absences += 1;
            }
        }
        for opportunity in &page.opportunities {
            release(Stream::Opportunities, &opportunity.id, batch, &mut applied)?;
            self.apply_opportunity(opportunity, batch, &mut applied)?;
        }
        let index = if page.activities.is_empty() && page.deletions.is_empty() {
            ActivityIndex::Kept
        } else {
            ActivityIndex::of(self.store)?
        };
        for activity in &page.activities {
            release(Stream::Activities, &activity.id, batch, &mut applied)?;
            self.apply_activity(activity, index, batch, &mut applied)?;
        }
        for deletion in &page.deletions {
            release(deletion.stream, &deletion.id, batch, &mut applied)?;
            self.apply_deletion(deletion, index, batch, &mut applied)?;
        }
        for q in &page.quarantined {
            self.apply_quarantined(q, batch, &mut applied)?;
        }
        Ok(applied)
    }

    /// Keeps an unreadable record and holds the lead it belongs to: not
    /// dropped (the cursor moves past it), not blocking the stream.
    fn apply_quarantined(&self, q: &Quarantined, batch: &mut Batch, applied: &mut Applied) -> Result<(), StoreError> {
        let key = quarantine_key(q);
        let (first_at, times) = match self.store.quarantined(q.stream, &key)? {
            Some(have) => (have.first_at, have.times.saturating_add(1)),
            None => (self.now, 1),
        };
        tracing::warn!(
            stream = q.stream.as_str(),
            record = %key,
            lead = q.lead_id.as_deref().unwrap_or("-"),
            reason = %q.reason,
            "a record could not be read: quarantined, its lead is held (`handoff state` lists it)"
        );
        batch.put_quarantine(&QuarantineRecord { record: q.clone(), first_at, last_at: self.now, times });
        applied.quarantined += 1;
        Ok(())
    }

    /// A record read readable again leaves the quarantine; its lead is
    /// looked at again (still held while another record of its is kept).
    fn release(&self, stream: Stream, id: &str, batch: &mut Batch, applied: &mut Applied) -> Result<(), StoreError> {
        let Some(held) = self.store.quarantined(stream, id)? else { return Ok(()) };
        tracing::info!(stream = stream.as_str(), record = %id, "a quarantined record reads well now; released");
        batch.release_quarantine(&held);
        if let Some(lead) = &held.record.lead_id {
            self.mark(lead, "released from quarantine", batch);
        }
        applied.released += 1;
        Ok(())
    }

    fn kind_of(&self, owner_id: &str) -> OwnerKind {
        self.owner_kinds.get(owner_id).copied().unwrap_or(OwnerKind::User)
    }

    /// Everything but handoff's own fields and the save stamps, hashed.
    pub fn fingerprint(&self, lead: &Lead) -> String {
        let watched: BTreeMap<&String, &Value> = lead
            .fields
            .iter()
            .filter(|(k, _)| !self.sla_fields.contains(k.as_str()) && !STAMP_FIELDS.contains(&k.as_str()))
            .collect();
        let text = serde_json::json!({
            "owner": lead.owner_id,
            "fields": watched,
            "converted": lead.converted_at,
            "deleted": lead.deleted,
            "merged": lead.merged_into,
            "assignments": lead.assignments,
            "statuses": lead.status_changes,
        })
        .to_string();
        short_hash(&text, 32)
    }

    /// handoff's own fields on `lead`, an empty value read as absent.
    fn sla_values<'l>(&self, lead: &'l Lead) -> Vec<Option<&'l Value>> {
        self.sla_fields
            .iter()
            .map(|name| lead.fields.get(name.as_str()).filter(|v| !v.is_null() && v.as_str() != Some("")))
            .collect()
    }

    /// `lead` read without its history (see [`PullPage::history_not_read`]):
    /// the CRM history held for it, extended by any change the read shows,
    /// dated at the modification.
    fn with_held_history(&self, lead: &Lead, have: &Lead) -> Lead {
        let mut merged = lead.clone();
        merged.assignments = have.assignments.clone();
        merged.status_changes = have.status_changes.clone();
        merged.field_history = have.field_history.clone();
        if let Some(owner) = &lead.owner_id {
            if !merged.assignments.is_empty() && have.owner_id.as_ref() != Some(owner) {
                let owner_kind = self.kind_of(owner);
                merged.assignments.push(Assignment { owner_id: owner.clone(), owner_kind, at: lead.modified_at });
            }
        }
        if let Some(status) = lead.field_str(self.status_field) {
            if !merged.status_changes.is_empty() && have.field_str(self.status_field) != Some(status) {
                merged.status_changes.push(StatusChange { status: status.to_string(), at: lead.modified_at });
            }
        }
        for (field, changes) in merged.field_history.iter_mut() {
            let after = lead.fields.get(field).filter(|v| !is_blank(v));
            if !same_value(have.fields.get(field).filter(|v| !is_blank(v)), after) {
                changes.push(FieldChange { value: after.cloned().unwrap_or(Value::Null), at: lead.modified_at });
            }
        }
        merged
    }

    fn apply_lead(
        &self,
        lead: &Lead,
        without_history: bool,
        batch: &mut Batch,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        let (lead, cut) = capped_lead(lead);
        if !cut.is_empty() {
            tracing::warn!(lead = %lead.id, fields = ?cut, max_bytes = MAX_FIELD_VALUE_BYTES, "field values too long to keep whole; cut");
        }
        let stored = self.store.lead(&lead.id)?;
        let held;
        let lead = match &stored {
            Some(have) if without_history => {
                held = self.with_held_history(lead.as_ref(), &have.lead);
                &held
            }
            _ => lead.as_ref(),
        };
        let watched = self.fingerprint(lead);
        let status_field = lead.field_str(self.status_field).map(str::to_string);
        let next = match stored {
            None => {
                let mut observed_owners = Vec::new();
                if let Some(owner) = &lead.owner_id {
                    observed_owners.push(Assignment {
                        owner_id: owner.clone(),
                        owner_kind: self.kind_of(owner),
                        at: lead.created_at,
                    });
                }
                let mut observed_statuses = Vec::new();
                if let Some(status) = &status_field {
                    // Never modified since creation: the status is the one it
                    // was created with. Otherwise all handoff knows is that it
                    // held this status by the last modification.
                    let at = if lead.modified_at == lead.created_at { lead.created_at } else { lead.modified_at };
                    observed_statuses.push(StatusChange { status: status.clone(), at });
                }
                applied.leads_changed += 1;
                self.mark(&lead.id, "new", batch);
                StoredLead {
                    lead: lead.clone(),
                    observed_owners,
                    observed_statuses,
                    observed_fields: BTreeMap::new(),
                    watched,
                    first_seen_at: lead.modified_at,
                }
            }
            Some(mut have) => {
                if have.lead.modified_at > lead.modified_at {
                    // An older version (lookback overlap) changes nothing.
                    return Ok(());
                }
                if let Some(owner) = &lead.owner_id {
                    if have.lead.owner_id.as_ref() != Some(owner) {
                        have.observed_owners.push(Assignment {
                            owner_id: owner.clone(),
                            owner_kind: self.kind_of(owner),
                            at: lead.modified_at,
                        });
                    }
                }
                if let Some(status) = &status_field {
                    if have.lead.field_str(self.status_field) != Some(status.as_str()) {
                        have.observed_statuses.push(StatusChange { status: status.clone(), at: lead.modified_at });
                    }
                }
                for field in self.history_fields {
                    let before = have.lead.fields.get(field).filter(|v| !is_blank(v));
                    let after = lead.fields.get(field).filter(|v| !is_blank(v));
                    if same_value(before, after) {
                        continue;
                    }
                    let changes = have.observed_fields.entry(field.clone()).or_default();
                    if changes.is_empty() {
                        // What the lead held until now, as far as handoff knows: since creation.
                        changes.push(FieldChange {
                            value: before.cloned().unwrap_or(Value::Null),
                            at: have.lead.created_at,
                        });
                    }
                    changes.push(FieldChange { value: after.cloned().unwrap_or(Value::Null), at: lead.modified_at });
                }
                let sla_changed =
                    self.sla_values(&have.lead).into_iter().zip(self.sla_values(lead)).any(|(a, b)| !same_value(a, b));
                if have.watched == watched && !sla_changed {
                    applied.echoes += 1;
                } else {
                    applied.leads_changed += 1;
                    self.mark(&lead.id, if sla_changed { "sla fields edited in the CRM" } else { "changed" }, batch);
                }
                have.lead = lead.clone();
                have.watched = watched;
                have
            }
        };
        batch.put_lead(&next);
        Ok(())
    }

    /// A new or changed opportunity: the leads it came from and those it
    /// no longer does are judged again (its owner answers for the AE's
    /// commitments, its creation meets one).
    fn apply_opportunity(
        &self,
        opportunity: &Opportunity,
        batch: &mut Batch,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        let previous = self.store.opportunity(&opportunity.id)?;
        if previous.as_ref().is_some_and(|p| same_opportunity(p, opportunity)) {
            return Ok(());
        }
        batch.put_opportunity(opportunity, previous.as_ref());
        for o in previous.iter().chain([opportunity]) {
            self.mark_leads_of(o, "opportunity", batch);
        }
        applied.opportunities += 1;
        Ok(())
    }

    fn apply_activity(
        &self,
        activity: &Activity,
        index: ActivityIndex,
        batch: &mut Batch,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        let filed;
        let activity = match (activity.lead_id.is_empty(), &activity.opportunity_id) {
            // Logged on an opportunity only: filed under it.
            (true, Some(opportunity_id)) => {
                filed = Activity { lead_id: opportunity_file(opportunity_id), ..activity.clone() };
                &filed
            }
            _ => activity,
        };
        let capped;
        let activity = match activity.subject.as_ref().and_then(|s| capped_value(&Value::String(s.clone()))) {
            Some(Value::String(short)) => {
                capped = Activity { subject: Some(short), ..activity.clone() };
                &capped
            }
            _ => activity,
        };
        match index {
            ActivityIndex::Kept => {
                if let Some(previous) = self.store.activity_lead(&activity.id)? {
                    if previous != activity.lead_id {
                        // Moved to another lead (a merge re-parents activities).
                        batch.remove_activity(&previous, &activity.id, true);
                        self.mark_filed_dirty(&previous, "activity moved away", batch)?;
                    }
                }
                batch.put_activity(activity);
            }
            // A copy filed under another lead is found when the index is built.
            ActivityIndex::Deferred { deletions_waiting } => {
                let waited = deletions_waiting && self.store.deletion_waits(&activity.id)?;
                batch.file_activity(activity, waited);
            }
        }
        if activity.handoff_key.is_some() {
            // A task handoff created: its own echo, no work.
            applied.own_tasks += 1;
        } else {
            applied.activities_changed += 1;
            self.mark_filed_dirty(&activity.lead_id, "activity", batch)?;
        }
        Ok(())
    }

    fn apply_deletion(
        &self,
        deletion: &Deletion,
        index: ActivityIndex,
        batch: &mut Batch,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        applied.deletions += 1;
        match deletion.stream {
            Stream::Leads => {
                let Some(mut have) = self.store.lead(&deletion.id)? else {
                    // Never seen: nothing to undo.
                    return Ok(());
                };
                if have.lead.deleted && have.lead.merged_into == deletion.merged_into {
                    return Ok(());
                }
                have.lead.deleted = true;
                have.lead.merged_into = deletion.merged_into.clone();
                batch.put_lead(&have);
                self.mark(&deletion.id, "deleted", batch);
                if let Some(survivor) = &deletion.merged_into {
                    self.mark(survivor, "absorbed a merged lead", batch);
                }
            }
            Stream::Activities => {
                if self.store.absence(&deletion.id)?.is_some() {
                    batch.remove_absence(&deletion.id);
                    applied.absences += 1;
                }
                match index {
                    ActivityIndex::Kept => {
                        if let Some(lead_id) = self.store.activity_lead(&deletion.id)? {
                            batch.remove_activity(&lead_id, &deletion.id, false);
                            self.mark_filed_dirty(&lead_id, "activity deleted", batch)?;
                        }
                    }
                    ActivityIndex::Deferred { .. } => batch.wait_with_deletion(&deletion.id),
                }
            }
            Stream::Opportunities => self.apply_opportunity_deletion(&deletion.id, batch)?,
            Stream::Owners | Stream::Calendars => {}
        }
        Ok(())
    }
}

impl PageApplier<'_> {
    /// Marks `lead_id` for evaluation (unless [`PageApplier::marks_dirty`]
    /// says a sweep will).
    fn mark(&self, lead_id: &str, why: &str, batch: &mut Batch) {
        if self.marks_dirty {
            batch.mark_dirty(lead_id, why);
        }
    }

    /// Marks the leads `opportunity` came from for evaluation.
    fn mark_leads_of(&self, opportunity: &Opportunity, why: &str, batch: &mut Batch) {
        for lead in &opportunity.lead_ids {
            self.mark(lead, why, batch);
        }
    }

    /// Marks the lead an activity is filed under for evaluation: the lead
    /// itself, or the leads of the opportunity it was logged on.
    fn mark_filed_dirty(&self, filed_under: &str, why: &str, batch: &mut Batch) -> Result<(), StoreError> {
        // `mark` would drop the marks too; this spares the opportunity's read.
        if !self.marks_dirty {
            return Ok(());
        }
        match filed_under.strip_prefix(&opportunity_file("")) {
            Some(opportunity_id) => {
                if let Some(opportunity) = self.store.opportunity(opportunity_id)? {
                    self.mark_leads_of(&opportunity, why, batch);
                }
            }
            None => self.mark(filed_under, why, batch),
        }
        Ok(())
    }

    /// An opportunity gone from the CRM: kept, marked deleted (the engine
    /// reads it no more), and its leads are judged again.
    fn apply_opportunity_deletion(&self, id: &str, batch: &mut Batch) -> Result<(), StoreError> {
        let Some(have) = self.store.opportunity(id)? else { return Ok(()) };
        if have.deleted {
            return Ok(());
        }
        let gone = Opportunity { deleted: true, ..have.clone() };
        batch.put_opportunity(&gone, Some(&have));
        self.mark_leads_of(&have, "opportunity deleted", batch);
        Ok(())
    }
}

/// Whether an opportunity reads as before (its modification stamp aside):
/// the lookback delivers the same record again.
fn same_opportunity(a: &Opportunity, b: &Opportunity) -> bool {
    a.lead_ids == b.lead_ids && a.owner_id == b.owner_id && a.created_at == b.created_at && a.deleted == b.deleted
}

fn is_blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

/// Whether two CRM values say the same: empty as absent, numbers as
/// numbers ("0" = 0 = 0.0), datetimes as instants (Salesforce answers
/// `…T15:00:00.000+0000` for the `…T15:00:00Z` handoff wrote).
fn same_value(a: Option<&Value>, b: Option<&Value>) -> bool {
    use crate::engine::{parse_field_datetime, parse_field_number};
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) if a == b => true,
        (Some(a), Some(b)) => {
            if let (Some(x), Some(y)) = (parse_field_number(a), parse_field_number(b)) {
                return x == y;
            }
            // A bare number is not a date here (it would read as epoch ms).
            let textual = |v: &Value| v.as_str().is_some_and(|s| s.contains('-'));
            if textual(a) && textual(b) {
                if let (Some(x), Some(y)) = (parse_field_datetime(a), parse_field_datetime(b)) {
                    return x == y;
                }
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
    }

    fn lead(owner: &str, status: &str, modified: DateTime<Utc>) -> Lead {
        Lead {
            id: "00Q1".into(),
            owner_id: Some(owner.into()),
            fields: BTreeMap::from([
                ("Status".to_string(), json!(status)),
                ("Company".to_string(), json!("Acme")),
                ("SLA_Status__c".to_string(), json!(null)),
                ("SystemModstamp".to_string(), json!(modified.to_rfc3339())),
            ]),
            created_at: at(9, 0),
            modified_at: modified,
            assignments: Vec::new(),
            status_changes: Vec::new(),
            field_history: BTreeMap::new(),
            converted_at: None,
            deleted: false,
            merged_into: None,
            opportunities: Vec::new(),
            read_only: false,
        }
    }

    #[test]
    fn a_huge_field_value_is_kept_cut_to_the_cap() {
        let long = "é".repeat(MAX_FIELD_VALUE_BYTES);
        let cut = capped_value(&json!(long)).unwrap();
        let text = cut.as_str().unwrap();
        assert!(text.len() <= MAX_FIELD_VALUE_BYTES && text.ends_with("bytes]"), "{}", text.len());
        let list = json!((0..5_000).collect::<Vec<_>>());
        assert!(capped_value(&list).unwrap().as_str().unwrap().starts_with("[handoff kept"));
        assert_eq!(capped_value(&json!("short")), None);
        assert_eq!(capped_value(&json!(12)), None);
    }

    fn apply(store: &Store, page: PullPage) -> Applied {
        let kinds = HashMap::from([("00G1".to_string(), OwnerKind::Queue)]);
        let sla = BTreeSet::from(["SLA_Status__c".to_string()]);
        let history = BTreeSet::from(["Company".to_string(), "Reason__c".to_string()]);
        let applier = PageApplier {
            store,
            owner_kinds: &kinds,
            sla_fields: &sla,
            status_field: "Status",
            history_fields: &history,
            now: at(12, 0),
            marks_dirty: true,
        };
        let mut batch = Batch::default();
        let applied = applier.apply(&page, &mut batch).unwrap();
        store.commit(batch).unwrap();
        applied
    }

    fn page(leads: Vec<Lead>) -> PullPage {
        PullPage { leads, ..PullPage::default() }
    }

    #[test]
    fn observed_history_records_each_owner_and_status_change_at_the_modification() {
        let store = Store::in_memory();
        apply(&store, page(vec![lead("00G1", "Open", at(9, 0))]));
        apply(&store, page(vec![lead("005A", "Open", at(9, 4))]));
        apply(&store, page(vec![lead("005A", "Working", at(10, 0))]));
        let stored = store.lead("00Q1").unwrap().unwrap();
        let owners: Vec<(&str, OwnerKind, DateTime<Utc>)> =
            stored.observed_owners.iter().map(|a| (a.owner_id.as_str(), a.owner_kind, a.at)).collect();
        assert_eq!(owners, [("00G1", OwnerKind::Queue, at(9, 0)), ("005A", OwnerKind::User, at(9, 4))]);
        let statuses: Vec<(&str, DateTime<Utc>)> =
            stored.observed_statuses.iter().map(|s| (s.status.as_str(), s.at)).collect();
        assert_eq!(statuses, [("Open", at(9, 0)), ("Working", at(10, 0))]);
        // The CRM's own history wins when the connector read it.
        let mut with_history = stored.lead.clone();
        with_history.assignments =
            vec![Assignment { owner_id: "005A".into(), owner_kind: OwnerKind::User, at: at(9, 2) }];
        let s = StoredLead { lead: with_history, ..stored };
        assert_eq!(s.for_engine().assignments[0].at, at(9, 2));
        assert_eq!(s.for_engine().status_changes.len(), 2, "status history still observed");
    }

    #[test]
    fn watched_fields_keep_the_history_handoff_saw_when_the_crm_gives_none() {
        let store = Store::in_memory();
        let mut first = lead("005A", "Open", at(9, 0));
        first.fields.remove("Company");
        apply(&store, page(vec![first.clone()]));
        assert!(store.lead("00Q1").unwrap().unwrap().observed_fields.is_empty(), "first sight is no change");
        // Marketing fills the company in later: dated at that modification.
        let mut filled = first.clone();
        filled.modified_at = at(11, 0);
        filled.fields.insert("Company".into(), json!("Acme"));
        assert_eq!(apply(&store, page(vec![filled.clone()])).leads_changed, 1);
        // A field nobody watches changes: no history for it.
        let mut other = filled.clone();
        other.modified_at = at(12, 0);
        other.fields.insert("Title".into(), json!("VP"));
        apply(&store, page(vec![other]));
        let stored = store.lead("00Q1").unwrap().unwrap();
        let company: Vec<(serde_json::Value, DateTime<Utc>)> =
            stored.observed_fields["Company"].iter().map(|c| (c.value.clone(), c.at)).collect();
        assert_eq!(company, [(json!(null), at(9, 0)), (json!("Acme"), at(11, 0))]);
        assert_eq!(stored.observed_fields.len(), 1);
        // The engine reads it unless the CRM gave a history of its own.
        assert_eq!(stored.for_engine().field_history["Company"].len(), 2);
        let mut crm = stored.clone();
        crm.lead.field_history.insert("Company".into(), vec![FieldChange { value: json!("Acme"), at: at(9, 30) }]);
        assert_eq!(crm.for_engine().field_history["Company"][0].at, at(9, 30));
    }

    #[test]
    fn our_own_write_back_coming_back_is_an_echo_not_work() {
        let store = Store::in_memory();
        let first = lead("005A", "Open", at(9, 0));
        assert_eq!(apply(&store, page(vec![first.clone()])).leads_changed, 1);
        store
            .commit({
                let mut b = Batch::default();
                b.clear_dirty("00Q1");
                b
            })
            .unwrap();
        // handoff wrote SLA_Status__c and patched its copy (as the outbox does).
        let mut ours = store.lead("00Q1").unwrap().unwrap();
        ours.lead.fields.insert("SLA_Status__c".into(), json!("pending"));
        store
            .commit({
                let mut b = Batch::default();
                b.put_lead(&ours);
                b
            })
            .unwrap();
        let mut echo = first.clone();
        echo.modified_at = at(9, 5);
        echo.fields.insert("SLA_Status__c".into(), json!("pending"));
        echo.fields.insert("SystemModstamp".into(), json!(at(9, 5).to_rfc3339()));
        let applied = apply(&store, page(vec![echo.clone()]));
        assert_eq!((applied.echoes, applied.leads_changed), (1, 0));
        assert!(store.dirty(10).unwrap().is_empty(), "an echo triggers no evaluation");

        // Someone edits the SLA field by hand: that is work.
        let mut edited = echo.clone();
        edited.modified_at = at(9, 6);
        edited.fields.insert("SLA_Status__c".into(), json!("met"));
        assert_eq!(apply(&store, page(vec![edited.clone()])).leads_changed, 1);
        // And a real change is too.
        let mut changed = edited;
        changed.modified_at = at(9, 7);
        changed.fields.insert("Company".into(), json!("Acme Corp"));
        assert_eq!(apply(&store, page(vec![changed])).leads_changed, 1);
        assert_eq!(store.dirty(10).unwrap(), ["00Q1"]);
    }

    #[test]
    fn a_read_without_history_keeps_the_crm_history_and_dates_what_changed() {
        let store = Store::in_memory();
        let mut first = lead("005A", "Open", at(9, 0));
        first.assignments = vec![Assignment { owner_id: "005A".into(), owner_kind: OwnerKind::User, at: at(9, 0) }];
        first.status_changes = vec![StatusChange { status: "Open".into(), at: at(9, 0) }];
        apply(&store, page(vec![first.clone()]));
        store
            .commit({
                let mut b = Batch::default();
                b.clear_dirty("00Q1");
                b
            })
            .unwrap();
        let without_history = |lead: Lead| PullPage {
            history_not_read: [lead.id.clone()].into(),
            leads: vec![lead],
            ..PullPage::default()
        };
        // handoff's own write read back without history: an echo, history intact.
        let mut echo = first.clone();
        echo.modified_at = at(9, 5);
        echo.assignments.clear();
        echo.status_changes.clear();
        let applied = apply(&store, without_history(echo.clone()));
        assert_eq!((applied.echoes, applied.leads_changed), (1, 0));
        let held = store.lead("00Q1").unwrap().unwrap().lead;
        assert_eq!((held.assignments.len(), held.status_changes.len()), (1, 1));
        // A rep's change the write-back followed closely: kept, dated at the read.
        let mut moved = echo;
        moved.modified_at = at(9, 10);
        moved.owner_id = Some("005B".into());
        moved.fields.insert("Status".into(), json!("Working"));
        assert_eq!(apply(&store, without_history(moved)).leads_changed, 1);
        let held = store.lead("00Q1").unwrap().unwrap().lead;
        let owners: Vec<(&str, DateTime<Utc>)> = held.assignments.iter().map(|a| (a.owner_id.as_str(), a.at)).collect();
        assert_eq!(owners, [("005A", at(9, 0)), ("005B", at(9, 10))]);
        let statuses: Vec<(&str, DateTime<Utc>)> =
            held.status_changes.iter().map(|c| (c.status.as_str(), c.at)).collect();
        assert_eq!(statuses, [("Open", at(9, 0)), ("Working", at(9, 10))]);
        assert_eq!(store.dirty(10).unwrap(), ["00Q1"]);
    }

    #[test]
    fn values_compare_as_the_crm_renders_them() {
        assert!(same_value(Some(&json!("2026-03-02T15:00:00Z")), Some(&json!("2026-03-02T15:00:00.000+0000"))));
        assert!(same_value(Some(&json!(0)), Some(&json!("0"))));
        assert!(same_value(Some(&json!(2)), Some(&json!(2.0))));
        assert!(!same_value(Some(&json!("met")), Some(&json!("breached"))));
        assert!(!same_value(Some(&json!("2026-03-02T15:00:00Z")), None));
    }

    #[test]
    fn an_older_copy_from_the_lookback_overlap_changes_nothing() {
        let store = Store::in_memory();
        apply(&store, page(vec![lead("005A", "Working", at(10, 0))]));
        apply(&store, page(vec![lead("005A", "Open", at(9, 30))]));
        assert_eq!(store.lead("00Q1").unwrap().unwrap().lead.field_str("Status"), Some("Working"));
    }

    #[test]
    fn activities_mark_their_lead_and_our_own_tasks_do_not() {
        let store = Store::in_memory();
        let act = |id: &str, lead: &str, key: Option<&str>| Activity {
            id: id.into(),
            kind: handoff_model::ActivityKind::Call,
            lead_id: lead.into(),
            owner_id: Some("005A".into()),
            occurred_at: at(10, 0),
            modified_at: at(10, 0),
            subject: None,
            direction: None,
            completed: false,
            handoff_key: key.map(str::to_string),
            automated: false,
            deleted: false,
            opportunity_id: None,
        };
        let applied = apply(
            &store,
            PullPage { activities: vec![act("c1", "00Q1", None), act("t1", "00Q2", Some("k"))], ..PullPage::default() },
        );
        assert_eq!((applied.activities_changed, applied.own_tasks), (1, 1));
        assert_eq!(store.dirty(10).unwrap(), ["00Q1"]);
        // The call moves to another lead (a merge): both leads are looked at again.
        apply(&store, PullPage { activities: vec![act("c1", "00Q3", None)], ..PullPage::default() });
        assert!(store.activities_of("00Q1").unwrap().is_empty());
        assert_eq!(store.activities_of("00Q3").unwrap().len(), 1);
        // Deleted: gone from its lead.
        apply(
            &store,
            PullPage {
                deletions: vec![Deletion {
                    stream: Stream::Activities,
                    id: "c1".into(),
                    merged_into: None,
                    deleted_at: at(11, 0),
                }],
                ..PullPage::default()
            },
        );
        assert!(store.activities_of("00Q3").unwrap().is_empty());
        assert_eq!(store.activity_lead("c1").unwrap(), None);
    }

    /// Absences are kept by id, counted when new or changed (not when the
    /// lookback reads one again), and go with their Event's deletion.
    #[test]
    fn absences_are_kept_until_their_event_goes() {
        let store = Store::in_memory();
        let away = handoff_model::Absence {
            id: "00U9".into(),
            owner_id: "005A".into(),
            starts_at: at(0, 0),
            ends_at: at(23, 0),
            all_day: true,
            modified_at: at(9, 0),
        };
        let page = || PullPage { absences: vec![away.clone()], ..PullPage::default() };
        assert_eq!(apply(&store, page()).absences, 1);
        assert_eq!(apply(&store, page()).absences, 0, "the same absence again changes nothing");
        assert_eq!(store.absences().unwrap(), std::slice::from_ref(&away));
        let gone = Deletion { stream: Stream::Activities, id: "00U9".into(), merged_into: None, deleted_at: at(11, 0) };
        let applied = apply(&store, PullPage { deletions: vec![gone], ..PullPage::default() });
        assert_eq!(applied.absences, 1);
        assert!(store.absences().unwrap().is_empty());
    }

    /// Owners come round in full every listing: one as stored is not
    /// written again (nor counted, so the daemon does not reload them all);
    /// a change is.
    #[test]
    fn an_owner_listed_again_unchanged_is_not_written_again() {
        let store = Store::in_memory();
        let rep = handoff_model::Owner {
            id: "005A".into(),
            kind: OwnerKind::User,
            name: Some("Ana".into()),
            email: None,
            manager_id: Some("005M".into()),
            time_zone: Some("Europe/Paris".into()),
            active: true,
            modified_at: Some(at(9, 0)),
        };
        let page = |o: &handoff_model::Owner| PullPage { owners: vec![o.clone()], ..PullPage::default() };
        assert_eq!(apply(&store, page(&rep)).owners, 1);
        let applier = PageApplier {
            store: &store,
            owner_kinds: &HashMap::new(),
            sla_fields: &BTreeSet::new(),
            status_field: "Status",
            history_fields: &BTreeSet::new(),
            now: at(12, 0),
            marks_dirty: true,
        };
        let mut batch = Batch::default();
        assert_eq!(applier.apply(&page(&rep), &mut batch).unwrap().owners, 0);
        assert!(batch.is_empty(), "nothing to write for an owner as stored");
        let mut moved = rep.clone();
        moved.manager_id = Some("005N".into());
        assert_eq!(apply(&store, page(&moved)).owners, 1);
        assert_eq!(store.owner("005A").unwrap(), Some(moved));
    }

    /// Opportunities are kept apart and joined to their leads when judged;
    /// a meeting logged on an opportunity only is filed under it and
    /// wakes its leads; a change, a move to another lead and a deletion
    /// wake the leads concerned; the lookback's copy wakes nobody.
    #[test]
    fn opportunities_join_their_leads_and_wake_them() {
        let store = Store::in_memory();
        apply(&store, page(vec![lead("005A", "Accepted", at(10, 0))]));
        store
            .commit({
                let mut b = Batch::default();
                b.clear_dirty("00Q1");
                b
            })
            .unwrap();
        let opp = |leads: &[&str], owner: &str| Opportunity {
            id: "006A".into(),
            lead_ids: leads.iter().map(|l| l.to_string()).collect(),
            owner_id: Some(owner.into()),
            created_at: at(11, 0),
            modified_at: at(11, 0),
            deleted: false,
        };
        let applied = apply(&store, PullPage { opportunities: vec![opp(&["00Q1"], "005AE")], ..PullPage::default() });
        assert_eq!(applied.opportunities, 1);
        assert_eq!(store.dirty(10).unwrap(), ["00Q1"]);
        let meeting = Activity {
            id: "00U1".into(),
            kind: handoff_model::ActivityKind::Meeting,
            lead_id: String::new(),
            opportunity_id: Some("006A".into()),
            owner_id: Some("005AE".into()),
            occurred_at: at(11, 30),
            modified_at: at(11, 30),
            subject: None,
            direction: None,
            completed: false,
            handoff_key: None,
            automated: false,
            deleted: false,
        };
        store
            .commit({
                let mut b = Batch::default();
                b.clear_dirty("00Q1");
                b
            })
            .unwrap();
        apply(&store, PullPage { activities: vec![meeting], ..PullPage::default() });
        assert_eq!(store.dirty(10).unwrap(), ["00Q1"], "the meeting wakes the opportunity's lead");
        let (joined, activities) = store.lead_case("00Q1").unwrap().unwrap();
        assert_eq!(joined.opportunities, vec![opp(&["00Q1"], "005AE")]);
        assert_eq!(activities.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["00U1"]);
        assert_eq!(activities[0].opportunity_id.as_deref(), Some("006A"));

        // The lookback's copy changes nothing and wakes nobody.
        store
            .commit({
                let mut b = Batch::default();
                b.clear_dirty("00Q1");
                b
            })
            .unwrap();
        let applied = apply(&store, PullPage { opportunities: vec![opp(&["00Q1"], "005AE")], ..PullPage::default() });
        assert_eq!((applied.opportunities, store.dirty(10).unwrap().len()), (0, 0));
        // Now it belongs to another lead: both are judged again, and the
        // first one no longer joins it.
        apply(&store, PullPage { opportunities: vec![opp(&["00Q2"], "005AE")], ..PullPage::default() });
        assert_eq!(store.dirty(10).unwrap(), ["00Q1", "00Q2"]);
        assert!(store.opportunities_of("00Q1").unwrap().is_empty());
        assert_eq!(store.opportunities_of("00Q2").unwrap().len(), 1);
        // Deleted: kept, marked, its lead judged again.
        apply(
            &store,
            PullPage {
                deletions: vec![Deletion {
                    stream: Stream::Opportunities,
                    id: "006A".into(),
                    merged_into: None,
                    deleted_at: at(12, 0),
                }],
                ..PullPage::default()
            },
        );
        assert!(store.opportunities_of("00Q2").unwrap()[0].deleted);
    }

    #[test]
    fn an_unreadable_record_is_quarantined_and_released_when_it_reads_well() {
        let store = Store::in_memory();
        let bad = Quarantined::new(
            Stream::Leads,
            Some("00Q1".into()),
            Some("00Q1".into()),
            "Lead 00Q1: SystemModstamp \"yesterday\" is not a datetime",
            &json!({"Id": "00Q1", "SystemModstamp": "yesterday"}),
            at(9, 0),
        );
        let applied = apply(&store, PullPage { quarantined: vec![bad.clone()], ..PullPage::default() });
        assert_eq!(applied.quarantined, 1);
        assert!(store.is_held("00Q1").unwrap());
        assert!(store.dirty(10).unwrap().is_empty(), "a held lead is not queued for evaluation");
        // Read unreadable again: kept once, counted twice.
        apply(&store, PullPage { quarantined: vec![bad], ..PullPage::default() });
        let kept = store.quarantine().unwrap();
        assert_eq!((kept.len(), kept[0].times), (1, 2));
        // The CRM's record reads well now: released, the lead looked at again.
        let applied = apply(&store, page(vec![lead("005A", "Open", at(9, 30))]));
        assert_eq!(applied.released, 1);
        assert!(store.quarantine().unwrap().is_empty());
        assert!(!store.is_held("00Q1").unwrap());
        assert_eq!(store.dirty(10).unwrap(), ["00Q1"]);
    }

    #[test]
    fn a_merge_marks_the_lead_deleted_and_the_survivor_for_evaluation() {
        let store = Store::in_memory();
        apply(&store, page(vec![lead("005A", "Open", at(9, 0))]));
        store
            .commit({
                let mut b = Batch::default();
                b.clear_dirty("00Q1");
                b
            })
            .unwrap();
        apply(
            &store,
            PullPage {
                deletions: vec![Deletion {
                    stream: Stream::Leads,
                    id: "00Q1".into(),
                    merged_into: Some("00Q9".into()),
                    deleted_at: at(12, 0),
                }],
                ..PullPage::default()
            },
        );
        let stored = store.lead("00Q1").unwrap().unwrap();
        assert!(stored.lead.deleted);
        assert_eq!(stored.lead.merged_into.as_deref(), Some("00Q9"));
        assert_eq!(store.dirty(10).unwrap(), ["00Q1", "00Q9"]);
    }
}
