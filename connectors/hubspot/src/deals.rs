//! The opportunity stream ([`HubspotSettings::read_opportunities`]): deals,
//! and the engagements logged on them.
//!
//! **Deals.** The opportunity stream reads deals as the leads stream reads
//! contacts: finished windows on `hs_lastmodifieddate`, each searched in
//! `hs_object_id` order below the 10,000-result cap (see [`crate::cursor`]),
//! then the archived sweep, whose archived deals are deletions of
//! [`Stream::Opportunities`]. Up to five search pages make one pull, so that
//! one v4 association read (deals → contacts, 1,000 ids) names the leads of
//! all of them; in leads mode a second one takes those contacts to their
//! lead records. A deal with no contact comes with no leads. Deals carry no
//! history read: what the engine asks of them (owner, creation) is on the
//! record.
//!
//! **Engagements on deals.** An AE logs the discovery meeting on the deal,
//! often without the contact. With the setting, each engagement page's
//! association read to contacts (or lead records) is joined by one to
//! deals: an engagement then names its deal ([`Activity::opportunity_id`]),
//! and one associated with a deal and no contact is delivered with the
//! empty lead id (the daemon finds the lead through the deal) instead of
//! being left out. handoff's own tasks (on contacts or lead records) need
//! neither read.
//!
//! [`HubspotSettings::read_opportunities`]: crate::HubspotSettings::read_opportunities
//! [`Stream::Opportunities`]: handoff_model::Stream::Opportunities
//! [`Activity::opportunity_id`]: handoff_model::Activity::opportunity_id

use std::collections::{BTreeMap, BTreeSet};

use crate::error::HubspotError;
use crate::lead_records::lowest_id;
use crate::HubspotConnector;

/// Record ids in numeric order (shorter first), each once.
fn in_id_order(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = ids.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
    out.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
    out
}

impl HubspotConnector {
    /// Deal id → the ids of the SLA's leads it is associated with: its
    /// contacts, or in leads mode their lead records, in id order. A deal
    /// with none is absent. One v4 association read per 1,000 deals, and
    /// in leads mode one more per 1,000 of their contacts (none when they
    /// have no contact).
    pub(crate) async fn leads_of_deals(
        &self,
        ids: &[String],
        cursor: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, HubspotError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let contacts: BTreeMap<String, Vec<String>> = self
            .associated("deals", "contacts", ids, cursor)
            .await?
            .into_iter()
            .map(|(deal, ends)| (deal, in_id_order(ends.into_iter().map(|(id, _)| id))))
            .filter(|(_, contacts)| !contacts.is_empty())
            .collect();
        if !self.leads_mode() {
            return Ok(contacts);
        }
        let all: Vec<String> = in_id_order(contacts.values().flatten().cloned());
        if all.is_empty() {
            return Ok(BTreeMap::new());
        }
        let leads = self.associated("contacts", "leads", &all, cursor).await?;
        Ok(contacts
            .into_iter()
            .map(|(deal, contacts)| {
                let of_deal = contacts.iter().filter_map(|c| leads.get(c)).flatten().map(|(id, _)| id.clone());
                (deal, in_id_order(of_deal))
            })
            .filter(|(_, leads)| !leads.is_empty())
            .collect())
    }

    /// Engagement id → the deal it is logged on (the lowest id when
    /// several), in one v4 association read per page, when the connector
    /// reads opportunities; otherwise, for handoff's own tasks, and for an
    /// empty page, no call.
    pub(crate) async fn deals_of_engagements(
        &self,
        object: &str,
        ids: &[String],
        cursor: &str,
    ) -> Result<BTreeMap<String, String>, HubspotError> {
        if !self.settings.read_opportunities {
            return Ok(BTreeMap::new());
        }
        let (_, unknown) = self.own_tasks_known(object, ids);
        if unknown.is_empty() {
            return Ok(BTreeMap::new());
        }
        Ok(self
            .associated(object, "deals", &unknown, cursor)
            .await?
            .into_iter()
            .filter_map(|(engagement, ends)| Some((engagement, lowest_id(&ends)?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_numerically_once_each() {
        let ids = ["1010", "999", "1002", "999"].map(str::to_string);
        assert_eq!(in_id_order(ids), vec!["999".to_string(), "1002".to_string(), "1010".to_string()]);
    }
}
