//! Telling handoff's own write-back from everyone else's changes without
//! re-reading history.
//!
//! A record whose last modification was handoff's own write (Salesforce:
//! `LastModifiedById` is the integration user; HubSpot: the modified time
//! its update answered) need not have its history read again, unless
//! someone changed what the history is about just before that write (the
//! write then hides their change behind its own stamp). So each connector
//! remembers, per lead it delivered, a digest of the values its history
//! follows (owner, status, the tracked policy fields): an echo whose digest
//! is unchanged skips the history read; one whose digest moved, or a lead
//! this process has not delivered yet (after a restart), reads it.
//!
//! What is remembered per lead is two numbers: the id's [`id_key`] and the
//! digest, 16 bytes in the map (about 32 MiB at a million leads, where a
//! map of id strings held three times that).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Most leads remembered; past it the memory starts over (histories are
/// then read again: more calls, never a wrong history).
const MAX_LEADS: usize = 2_000_000;

/// A page's digests: (lead id key, digest) for each lead it delivered.
type PageDigests = Vec<(u64, u64)>;

/// A record id as the number a per-record memory keeps instead of the
/// string: 64 bits of a hash (SipHash with fixed keys). Two ids
/// of one org share a key with a chance of about one in 10^7 at two million
/// ids, and a memory keyed by it is one that may only save calls (a
/// digest or a mark must match as well), so a shared key costs at worst a
/// read the memory would have saved or, with odds of one in 2^64 more, a
/// history not read again.
pub fn id_key(id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// Lead id → digest of its history-bearing values when last delivered and
/// kept: a page's digests count only once the daemon asks for the page
/// after it with the cursor that page returned (it stores a page and its
/// cursor together, so that is its receipt). A page it did not keep (a
/// tick that failed after the read, a crash) leaves nothing behind, and a
/// record quarantined from a page is never staged.
#[derive(Debug, Default)]
pub struct HistoryDigests {
    confirmed: Mutex<HashMap<u64, u64>>,
    /// The last page's digests, and the cursor it returned.
    staged: Mutex<Option<(String, PageDigests)>>,
}

impl HistoryDigests {
    /// The digest of `values`, in order (`None` for an empty value).
    pub fn digest<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for v in values {
            v.filter(|s| !s.is_empty()).hash(&mut h);
        }
        h.finish()
    }

    /// Whether `id` was delivered, and kept, with these values last.
    pub fn unchanged(&self, id: &str, digest: u64) -> bool {
        self.confirmed.lock().map(|d| d.get(&id_key(id)) == Some(&digest)).unwrap_or(false)
    }

    /// A pull of the leads stream starts from `cursor`: if it is the one
    /// the last page returned, that page was kept and its digests count.
    pub fn pulling_from(&self, cursor: Option<&str>) {
        let Ok(mut staged) = self.staged.lock() else { return };
        let Some((returned, digests)) = staged.take() else { return };
        if cursor != Some(returned.as_str()) {
            return;
        }
        let Ok(mut confirmed) = self.confirmed.lock() else { return };
        if confirmed.len() + digests.len() > MAX_LEADS {
            confirmed.clear();
        }
        confirmed.extend(digests);
    }

    /// The digests of a page about to be returned with `cursor`: (lead
    /// id, digest) for each lead it delivered.
    pub fn stage(&self, cursor: Option<&str>, digests: Vec<(String, u64)>) {
        if let (Ok(mut staged), Some(cursor)) = (self.staged.lock(), cursor) {
            let digests = digests.into_iter().map(|(id, digest)| (id_key(&id), digest)).collect();
            *staged = Some((cursor.to_string(), digests));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_is_one_whose_history_values_did_not_move_in_a_page_kept() {
        let d = HistoryDigests::default();
        let before = HistoryDigests::digest([Some("005A"), Some("Open")]);
        assert!(!d.unchanged("00Q1", before), "never delivered: read its history");
        d.stage(Some("c1"), vec![("00Q1".into(), before)]);
        assert!(!d.unchanged("00Q1", before), "delivered but not known to be kept");
        d.pulling_from(Some("c1"));
        assert!(d.unchanged("00Q1", before), "the next pull came from the page's cursor: kept");
        let moved = HistoryDigests::digest([Some("005B"), Some("Open")]);
        assert!(!d.unchanged("00Q1", moved), "a new owner behind handoff's stamp: read its history");
        // A page the daemon did not keep: the next pull starts from the old cursor.
        d.stage(Some("c2"), vec![("00Q2".into(), before)]);
        d.pulling_from(Some("c1"));
        assert!(!d.unchanged("00Q2", before));
        assert_eq!(HistoryDigests::digest([None, Some("Open")]), HistoryDigests::digest([Some(""), Some("Open")]));
    }
}
