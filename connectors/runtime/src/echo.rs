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
//! digest, 16 bytes in a list sorted by key (16 MiB at a million leads; a
//! hash map of them held 36 MiB, 54 while it grew, and one of id strings
//! three times that).

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
    confirmed: Mutex<SortedDigests>,
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
        self.confirmed.lock().map(|d| d.get(id_key(id)) == Some(digest)).unwrap_or(false)
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
        if confirmed.0.len() + digests.len() > MAX_LEADS {
            *confirmed = SortedDigests::default();
        }
        confirmed.merge(digests);
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

/// (id key, digest) pairs sorted by key, one per key: looked up by binary
/// search, a page merged in place. Merging costs a pass over the list, a
/// few milliseconds a page at a million leads, against a hash map's 20 to
/// 40 bytes an entry (and both tables while it grows).
#[derive(Debug, Default)]
struct SortedDigests(Vec<(u64, u64)>);

impl SortedDigests {
    fn get(&self, key: u64) -> Option<u64> {
        self.0.binary_search_by_key(&key, |(k, _)| *k).ok().map(|i| self.0[i].1)
    }

    /// Adds a page's digests, a later one of a key replacing the earlier.
    fn merge(&mut self, mut page: PageDigests) {
        // Sorted by key with the page's last digest of a key first, kept.
        page.reverse();
        page.sort_by_key(|(k, _)| *k);
        page.dedup_by_key(|(k, _)| *k);
        let mut added = Vec::new();
        for (key, digest) in page {
            match self.0.binary_search_by_key(&key, |(k, _)| *k) {
                Ok(i) => self.0[i].1 = digest,
                Err(_) => added.push((key, digest)),
            }
        }
        if added.is_empty() {
            return;
        }
        // Grown by an eighth at a time, not doubled: the list is most of
        // what a connector keeps.
        let (old_len, new_len) = (self.0.len(), self.0.len() + added.len());
        if self.0.capacity() < new_len {
            self.0.reserve_exact((new_len - old_len).max(old_len / 8));
        }
        self.0.resize(new_len, (0, 0));
        // Merged from the back, in place: the largest of what is left
        // of either goes last.
        let (mut have, mut add) = (old_len, added.len());
        for at in (0..new_len).rev() {
            if add == 0 {
                break;
            }
            if have > 0 && self.0[have - 1].0 > added[add - 1].0 {
                self.0[at] = self.0[have - 1];
                have -= 1;
            } else {
                self.0[at] = added[add - 1];
                add -= 1;
            }
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

    #[test]
    fn merged_pages_read_as_a_map_of_their_last_digests() {
        let mut sorted = SortedDigests::default();
        let mut model = std::collections::HashMap::new();
        // Pages of keys that interleave with, repeat and replace earlier ones.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for page in 0..40u64 {
            let mut digests = Vec::new();
            for i in 0..(page * 7 % 50) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = x % 300;
                digests.push((key, page * 1_000 + i));
                model.insert(key, page * 1_000 + i);
            }
            sorted.merge(digests);
            assert!(sorted.0.windows(2).all(|w| w[0].0 < w[1].0), "sorted, one entry a key");
            assert_eq!(sorted.0.len(), model.len());
            for (key, digest) in &model {
                assert_eq!(sorted.get(*key), Some(*digest), "key {key} after page {page}");
            }
        }
        assert_eq!(sorted.get(300), None);
    }
}
