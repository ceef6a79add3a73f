//! The connector's cursor: which windows are finished and where the one in
//! progress stands. Serialized to JSON inside [`handoff_model::Cursor`].
//!
//! A window is `[start, end)` on `SystemModstamp`: the start is inclusive
//! (several rows can share one second), the end is `now − lag`, and the
//! next window starts `lookback` before the previous end so rows that
//! committed late with an older stamp are read again. `done_until` only
//! moves when a window's last page of its last object has been read.

use handoff_model::{Cursor, Stream, Timestamp};
use handoff_runtime::PageGuard;
use serde::{Deserialize, Serialize};

use crate::error::SalesforceError;

const CRM_TAG: &str = "salesforce";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfCursor {
    pub crm: String,
    pub v: u32,
    pub stream: Stream,
    /// End of the last finished window (epoch ms, UTC); `None` before the backfill finished.
    pub done_until_ms: Option<i64>,
    /// The window being read, if one is open.
    #[serde(default)]
    pub window: Option<Window>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive lower bound (epoch ms).
    pub start_ms: i64,
    /// Exclusive upper bound (epoch ms).
    pub end_ms: i64,
    /// Which of the stream's objects is being read (e.g. Task, then Event).
    pub phase: usize,
    /// The `nextRecordsUrl` of the page to read next, if mid-query.
    #[serde(default)]
    pub next_url: Option<String>,
    /// The pages of the current object's query so far: no page naming
    /// itself or a recent one, none past the size Salesforce announced.
    #[serde(default)]
    pub guard: PageGuard,
}

impl SfCursor {
    pub fn fresh(stream: Stream) -> Self {
        SfCursor { crm: CRM_TAG.to_string(), v: VERSION, stream, done_until_ms: None, window: None }
    }

    /// Read a stored cursor; anything this connector did not write for this
    /// stream is rejected rather than guessed at.
    pub fn decode(cursor: &Cursor, stream: Stream) -> Result<Self, SalesforceError> {
        let bad = |message: String| SalesforceError::BadCursor { cursor: cursor.0.clone(), message };
        let parsed: SfCursor =
            serde_json::from_str(&cursor.0).map_err(|e| bad(format!("not JSON of the expected shape: {e}")))?;
        if parsed.crm != CRM_TAG {
            return Err(bad(format!("written by the {} connector", parsed.crm)));
        }
        if parsed.v != VERSION {
            return Err(bad(format!("version {} (this connector writes {VERSION})", parsed.v)));
        }
        if parsed.stream != stream {
            return Err(bad(format!("belongs to stream {}, not {}", parsed.stream.as_str(), stream.as_str())));
        }
        if let Some(w) = &parsed.window {
            if w.start_ms > w.end_ms {
                return Err(bad("window starts after it ends".to_string()));
            }
        }
        Ok(parsed)
    }

    pub fn encode(&self) -> Cursor {
        // Serializing plain data cannot fail; fall back to an empty object to stay panic-free.
        Cursor(serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string()))
    }

    /// The window to read now: the open one, or a new one from
    /// `done_until − lookback` (the epoch for a backfill) to `now − lag`;
    /// `None` while nothing finished since the last one.
    pub fn window_or_open(&self, now: Timestamp, lookback_ms: i64, lag_ms: i64) -> Option<Window> {
        if let Some(w) = &self.window {
            return Some(w.clone());
        }
        // SystemModstamp has whole seconds and SOQL literals are written in
        // seconds, so both bounds are whole seconds too.
        let (start_ms, end_ms) = handoff_runtime::window::next_window(
            self.done_until_ms,
            now.timestamp_millis(),
            lag_ms,
            lookback_ms,
            0,
            1000,
        )?;
        Some(Window { start_ms, end_ms, phase: 0, next_url: None, guard: PageGuard::default() })
    }
}

/// A cursor that resumes `stream` as if everything before `since` had been
/// read: the operator's "re-sync from this date".
pub fn since(stream: Stream, since: Timestamp) -> Cursor {
    let mut c = SfCursor::fresh(stream);
    c.done_until_ms = Some(since.timestamp_millis().max(0));
    c.encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn round_trips_and_rejects_foreign_cursors() {
        let mut c = SfCursor::fresh(Stream::Leads);
        c.done_until_ms = Some(1_000);
        c.window = Some(Window {
            start_ms: 0,
            end_ms: 5,
            phase: 1,
            next_url: Some("/services/data/v62.0/query/01g-2000".into()),
            guard: PageGuard::default(),
        });
        let enc = c.encode();
        assert_eq!(SfCursor::decode(&enc, Stream::Leads).ok(), Some(c));
        assert!(matches!(SfCursor::decode(&enc, Stream::Owners), Err(SalesforceError::BadCursor { .. })));
        for garbage in ["", "garbage", r#"{"crm":"hubspot","v":1,"stream":"leads","done_until_ms":null}"#, "42"] {
            assert!(
                matches!(
                    SfCursor::decode(&Cursor(garbage.into()), Stream::Leads),
                    Err(SalesforceError::BadCursor { .. })
                ),
                "{garbage}"
            );
        }
    }

    #[test]
    fn new_window_overlaps_the_last_by_the_lookback_and_lags_now() {
        let now = chrono::Utc.timestamp_opt(10_000, 0).single().unwrap_or_default();
        let mut c = SfCursor::fresh(Stream::Leads);
        let backfill = c.window_or_open(now, 600_000, 300_000).unwrap();
        assert_eq!((backfill.start_ms, backfill.end_ms), (0, 10_000_000 - 300_000));
        c.done_until_ms = Some(9_000_000);
        let next = c.window_or_open(now, 600_000, 300_000).unwrap();
        assert_eq!((next.start_ms, next.end_ms), (8_400_000, 9_700_000));
        c.done_until_ms = Some(9_700_000);
        assert_eq!(c.window_or_open(now, 600_000, 300_000), None, "nothing finished since");
    }
}
