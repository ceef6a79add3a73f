//! Cursors: what a pull remembers between pages, as JSON inside
//! [`handoff_model::Cursor`]. Pure data and arithmetic, no I/O.
//!
//! A records cursor (leads, activities) reads the CRM in finished time
//! windows `[from, to)` on the modified property, with `to = now − lag`.
//! Inside a window it pages by `hs_object_id > last_id`, sorted by id, so
//! no search ever pages towards HubSpot's 10,000-result cap and a record
//! that changes mid-window cannot shift the pages (offset paging would skip
//! one). Only when a window has been read to its end does `done_until`
//! move to its `to`. The next window starts `lookback` earlier, for records
//! HubSpot indexed late; `seen` remembers what was already delivered in
//! that overlap so it is not delivered twice.

use handoff_model::{CrmKind, Cursor, Stream};
use handoff_runtime::PageGuard;
use serde::{Deserialize, Serialize};

use crate::error::HubspotError;

/// Version of the cursor format; bump when it changes incompatibly.
const VERSION: u32 = 1;
/// Most `seen` entries a cursor carries. Beyond it the oldest are dropped,
/// which can cause a re-delivery (harmless) but never a miss.
const MAX_SEEN: usize = 20_000;

/// A window being read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Which object type of the stream is being read (activities read
    /// calls, emails, meetings and tasks in turn over the same window).
    pub object: usize,
    /// Last `hs_object_id` delivered from this object type in this window.
    pub last_id: Option<u64>,
    /// The pages of this object type so far: each must move past the last.
    #[serde(default)]
    pub guard: PageGuard,
}

/// The archived-records sweep in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    pub object: usize,
    /// HubSpot's paging token for the archived listing.
    pub after: Option<String>,
    /// Report archivals at or after this instant (the previous sweep's
    /// start, minus the lookback).
    pub since_ms: i64,
    pub started_at_ms: i64,
    /// The pages of this object type's listing so far.
    #[serde(default)]
    pub guard: PageGuard,
}

/// A backfill read as a listing rather than by search (see
/// `crate::listing`): where it stands and when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// HubSpot's paging token for the next page.
    pub after: Option<String>,
    /// Everything modified before this instant is in the listing; the
    /// windows after it start here.
    pub started_at_ms: i64,
    /// The pages so far: each must move past the last.
    #[serde(default)]
    pub guard: PageGuard,
}

/// A record delivered in the overlap: `(object, id, modified_ms)`.
pub type SeenKey = (usize, u64, i64);

/// Position in the leads or activities stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsCursor {
    /// Everything modified before this instant has been delivered.
    /// `None`: the backfill has not finished its first window.
    pub done_until_ms: Option<i64>,
    pub window: Option<Window>,
    pub sweep: Option<Sweep>,
    /// When the last archived sweep started.
    pub swept_at_ms: Option<i64>,
    #[serde(default)]
    pub seen: Vec<SeenKey>,
    /// The backfill listing in progress, if the backfill reads one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<Listing>,
}

impl RecordsCursor {
    /// The window to read next: the current one, or a new one from
    /// `done_until − lookback` (or `backfill_from`) to `now − lag`. `None`
    /// when that would be empty (nothing has finished since).
    pub fn next_window(&self, now_ms: i64, lag_ms: i64, lookback_ms: i64, backfill_from_ms: i64) -> Option<Window> {
        if let Some(w) = &self.window {
            return Some(w.clone());
        }
        let (from_ms, to_ms) =
            handoff_runtime::window::next_window(self.done_until_ms, now_ms, lag_ms, lookback_ms, backfill_from_ms, 1)?;
        Some(Window { from_ms, to_ms, object: 0, last_id: None, guard: PageGuard::default() })
    }

    /// Whether `key` was delivered already.
    pub fn was_seen(&self, key: &SeenKey) -> bool {
        self.seen.contains(key)
    }

    /// Remember a record delivered in the part of `window` the next window
    /// will re-read.
    pub fn remember(&mut self, key: SeenKey, window: &Window, lookback_ms: i64) {
        if key.2 >= window.to_ms - lookback_ms && !self.seen.contains(&key) {
            self.seen.push(key);
            if self.seen.len() > MAX_SEEN {
                self.seen.sort_by_key(|k| k.2);
                let excess = self.seen.len() - MAX_SEEN;
                self.seen.drain(..excess);
            }
        }
    }

    /// Remember a record a backfill listing delivered that the first
    /// window (which starts `lookback` before the listing) will read again.
    pub fn remember_listed(&mut self, key: SeenKey, started_at_ms: i64, lookback_ms: i64) {
        if key.2 >= started_at_ms - lookback_ms && self.seen.len() < MAX_SEEN && !self.seen.contains(&key) {
            self.seen.push(key);
        }
    }

    /// The window is read to its end: commit it.
    pub fn finish_window(&mut self, window: &Window, lookback_ms: i64) {
        self.done_until_ms = Some(window.to_ms);
        self.window = None;
        let keep_from = window.to_ms - lookback_ms;
        self.seen.retain(|k| k.2 >= keep_from);
    }

    /// Whether an archived sweep is due.
    pub fn sweep_due(&self, now_ms: i64, every_ms: i64) -> bool {
        self.sweep.is_some() || self.swept_at_ms.is_none_or(|at| now_ms - at >= every_ms)
    }
}

/// Position in the owners stream: owners are listed in full each cycle
/// (there are few), active ones first, then archived ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnersCursor {
    pub after: Option<String>,
    pub archived: bool,
    /// When the last full listing finished.
    pub listed_at_ms: Option<i64>,
    /// The pages of the current listing so far.
    #[serde(default)]
    pub guard: PageGuard,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<T> {
    crm: CrmKind,
    stream: Stream,
    v: u32,
    state: T,
}

/// Serialize a stream's state into a [`Cursor`].
pub fn encode<T: Serialize>(stream: Stream, state: &T) -> Cursor {
    let env = Envelope { crm: CrmKind::Hubspot, stream, v: VERSION, state };
    // Serializing plain structs of numbers and strings cannot fail.
    Cursor(serde_json::to_string(&env).unwrap_or_default())
}

/// A cursor that resumes `stream` as if everything modified before `since`
/// had been read: the operator's "re-sync from this date". Owners are
/// listed in full anyway.
pub fn since(stream: Stream, since: chrono::DateTime<chrono::Utc>) -> Cursor {
    match stream {
        Stream::Leads | Stream::Activities | Stream::Opportunities => {
            encode(stream, &RecordsCursor { done_until_ms: Some(since.timestamp_millis()), ..RecordsCursor::default() })
        }
        Stream::Owners | Stream::Calendars => encode(stream, &OwnersCursor::default()),
    }
}

/// Read a cursor written by [`encode`] for `stream`; anything else (another
/// CRM's cursor, another stream's, garbage) is a `BadCursor`.
pub fn decode<T: for<'de> Deserialize<'de>>(stream: Stream, cursor: &Cursor) -> Result<T, HubspotError> {
    let bad = |message: String| HubspotError::BadCursor { cursor: cursor.0.chars().take(120).collect(), message };
    let env: Envelope<T> = serde_json::from_str(&cursor.0).map_err(|e| bad(format!("not a HubSpot cursor ({e})")))?;
    if env.crm != CrmKind::Hubspot {
        return Err(bad(format!("written by the {} connector", env.crm)));
    }
    if env.stream != stream {
        return Err(bad(format!("written for the {} stream, not {}", env.stream.as_str(), stream.as_str())));
    }
    if env.v != VERSION {
        return Err(bad(format!("format version {} is not {VERSION}; reset the stream to backfill", env.v)));
    }
    Ok(env.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn backfill_window_then_lookback_windows() {
        let mut c = RecordsCursor::default();
        let w = c.next_window(100 * MIN, 2 * MIN, 10 * MIN, 0).unwrap();
        assert_eq!((w.from_ms, w.to_ms), (0, 98 * MIN));
        c.finish_window(&w, 10 * MIN);
        assert_eq!(c.done_until_ms, Some(98 * MIN));
        // Nothing finished since: no window.
        assert_eq!(c.next_window(100 * MIN, 2 * MIN, 10 * MIN, 0), None);
        let w2 = c.next_window(105 * MIN, 2 * MIN, 10 * MIN, 0).unwrap();
        assert_eq!((w2.from_ms, w2.to_ms), (88 * MIN, 103 * MIN));
    }

    #[test]
    fn overlap_records_are_remembered_and_pruned() {
        let mut c = RecordsCursor::default();
        let w = Window { from_ms: 0, to_ms: 100 * MIN, object: 0, last_id: None, guard: PageGuard::default() };
        c.remember((0, 1, 50 * MIN), &w, 10 * MIN);
        c.remember((0, 2, 95 * MIN), &w, 10 * MIN);
        assert!(!c.was_seen(&(0, 1, 50 * MIN)), "outside the overlap: not kept");
        assert!(c.was_seen(&(0, 2, 95 * MIN)));
        assert!(!c.was_seen(&(0, 2, 96 * MIN)), "a newer version is new");
        c.finish_window(&w, 10 * MIN);
        let w2 = Window { from_ms: 90 * MIN, to_ms: 200 * MIN, object: 0, last_id: None, guard: PageGuard::default() };
        c.finish_window(&w2, 10 * MIN);
        assert!(c.seen.is_empty());
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = RecordsCursor { done_until_ms: Some(5), ..RecordsCursor::default() };
        let enc = encode(Stream::Leads, &c);
        assert_eq!(decode::<RecordsCursor>(Stream::Leads, &enc).unwrap(), c);
        let e = decode::<RecordsCursor>(Stream::Activities, &enc).unwrap_err();
        assert!(e.to_string().contains("leads stream"), "{e}");
        let sf = Cursor(enc.0.replace("\"hubspot\"", "\"salesforce\""));
        assert!(decode::<RecordsCursor>(Stream::Leads, &sf).unwrap_err().to_string().contains("salesforce"));
        assert!(matches!(
            decode::<RecordsCursor>(Stream::Leads, &Cursor("2026-03-01T00:00:00Z".into())),
            Err(HubspotError::BadCursor { .. })
        ));
    }

    #[test]
    fn sweep_runs_first_time_and_then_on_schedule() {
        let mut c = RecordsCursor::default();
        assert!(c.sweep_due(0, 10));
        c.swept_at_ms = Some(100);
        assert!(!c.sweep_due(105, 10));
        assert!(c.sweep_due(110, 10));
    }
}
