//! The backlog an old org brings: open MQLs whose clocks ran out before
//! handoff enforced anything. handoff measures them (the scorecard covers
//! them) but acts on none of them, so revops can clean them up once,
//! deliberately; `handoff state` and the daemon's first full evaluation
//! name them by owner. Pure (lead states in, counts out) but for
//! [`in_store`], which feeds it the stored states a slice at a time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::ClockStatus;
use crate::store::{LeadState, Store, StoreError};

/// Open leads past a deadline from before `enforce_from`, by owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Graveyard {
    pub enforce_from: Option<DateTime<Utc>>,
    pub leads: usize,
    /// Owner id (the user who answers for the clock, or had it last) →
    /// leads; `(no owner)` for leads only a queue holds.
    pub by_owner: BTreeMap<String, usize>,
}

/// The graveyard among `states`: leads with a sales clock that started
/// before `enforce_from`, is breached and is still running.
pub fn graveyard<'a>(
    states: impl IntoIterator<Item = &'a LeadState>,
    enforce_from: Option<DateTime<Utc>>,
) -> Graveyard {
    let mut out = Graveyard { enforce_from, ..Graveyard::default() };
    for state in states {
        out.add(state);
    }
    out
}

/// The graveyard among the stored states, read a slice at a time.
pub fn in_store(store: &Store, enforce_from: Option<DateTime<Utc>>) -> Result<Graveyard, StoreError> {
    let mut out = Graveyard { enforce_from, ..Graveyard::default() };
    store.each_state(|_, state| out.add(&state))?;
    Ok(out)
}

impl Graveyard {
    /// Counts `state` if it belongs to the graveyard.
    fn add(&mut self, state: &LeadState) {
        let Some(from) = self.enforce_from else { return };
        let buried = state.clocks.iter().find(|c| {
            c.kind.is_sales()
                && c.status == ClockStatus::Breached
                && c.stopped_at.is_none()
                && c.received_at.is_some_and(|at| at < from)
        });
        if let Some(clock) = buried {
            self.leads += 1;
            let owner =
                clock.owner_id.clone().or_else(|| clock.last_owner_id.clone()).unwrap_or_else(|| "(no owner)".into());
            *self.by_owner.entry(owner).or_insert(0) += 1;
        }
    }

    /// One line for a log or a terminal, the largest owners first.
    pub fn summary(&self, most_owners: usize) -> String {
        let mut owners: Vec<(&String, &usize)> = self.by_owner.iter().collect();
        owners.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = owners.iter().take(most_owners).map(|(o, n)| format!("{o}: {n}")).collect();
        let more = owners.len().saturating_sub(most_owners);
        format!(
            "{} open MQL(s) past their deadline from before {}{}{}",
            self.leads,
            self.enforce_from.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
            if shown.is_empty() { String::new() } else { format!(" — by owner: {}", shown.join(", ")) },
            if more > 0 { format!(" and {more} more owner(s)") } else { String::new() }
        )
    }
}
