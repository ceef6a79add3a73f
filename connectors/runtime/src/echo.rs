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
//! digest, 16 bytes in a [`KeyMap`] (16 MiB at a million leads; a hash map
//! of them held 36 MiB, 54 while it grew, and one of id strings three times
//! that).

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
    confirmed: Mutex<KeyMap>,
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
        if confirmed.len() + digests.len() > MAX_LEADS {
            confirmed.clear();
        }
        // In page order: a later digest of a lead replaces an earlier one.
        for (key, digest) in digests {
            confirmed.insert(key, digest);
        }
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

/// 64-bit keys to 64-bit values in 16 bytes an entry, for the memories a
/// connector keeps per record (a hash map takes 20 to 40 bytes an entry,
/// and both its tables while it grows). Most entries sit in a list sorted
/// by key, found by binary search; new keys wait in a small hash map and
/// join the list, merged in place, once there are a sixteenth as many of
/// them (at least [`MIN_RECENT`]). So an entry is moved about sixteen
/// times in all, where a list kept sorted at every insert would move half
/// of it each time.
#[derive(Debug, Default)]
pub struct KeyMap {
    sorted: Vec<(u64, u64)>,
    /// Keys not in `sorted`.
    recent: HashMap<u64, u64>,
}

/// New keys held apart from the sorted list before they are merged, at
/// least.
const MIN_RECENT: usize = 1_024;

impl KeyMap {
    pub fn get(&self, key: u64) -> Option<u64> {
        match self.recent.get(&key) {
            Some(value) => Some(*value),
            None => self.sorted.binary_search_by_key(&key, |(k, _)| *k).ok().map(|i| self.sorted[i].1),
        }
    }

    /// Sets `key`'s value, replacing any earlier one.
    pub fn insert(&mut self, key: u64, value: u64) {
        if let Ok(i) = self.sorted.binary_search_by_key(&key, |(k, _)| *k) {
            self.sorted[i].1 = value;
            return;
        }
        self.recent.insert(key, value);
        if self.recent.len() >= (self.sorted.len() / 16).max(MIN_RECENT) {
            self.merge_recent();
        }
    }

    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every entry and gives back their memory.
    pub fn clear(&mut self) {
        *self = KeyMap::default();
    }

    /// Keeps the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, u64) -> bool) {
        self.recent.retain(|k, v| keep(*k, *v));
        self.sorted.retain(|(k, v)| keep(*k, *v));
        if self.sorted.len() < self.sorted.capacity() / 2 {
            self.sorted.shrink_to_fit();
        }
    }

    /// Moves the recent keys into the sorted list.
    fn merge_recent(&mut self) {
        let mut added: Vec<(u64, u64)> = self.recent.drain().collect();
        added.sort_unstable_by_key(|(k, _)| *k);
        // Grown by an eighth at a time, not doubled: the list is most of
        // what the memory holds.
        let (old_len, new_len) = (self.sorted.len(), self.sorted.len() + added.len());
        if self.sorted.capacity() < new_len {
            self.sorted.reserve_exact((new_len - old_len).max(old_len / 8));
        }
        self.sorted.resize(new_len, (0, 0));
        // Merged from the back, in place: the largest of what is left of
        // either goes last (the two share no key).
        let (mut have, mut add) = (old_len, added.len());
        for at in (0..new_len).rev() {
            if add == 0 {
                break;
            }
            if have > 0 && self.sorted[have - 1].0 > added[add - 1].0 {
                self.sorted[at] = self.sorted[have - 1];
                have -= 1;
            } else {
                self.sorted[at] = added[add - 1];
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
    fn a_key_map_reads_as_a_map_of_the_last_values() {
        let mut map = KeyMap::default();
        let mut model = std::collections::BTreeMap::new();
        // Keys that interleave with, repeat and replace earlier ones, over
        // enough of them that new keys are merged into the sorted list
        // many times, with some forgotten along the way.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..60u64 {
            for i in 0..(round * 97 % 1_500) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = x % 40_000;
                map.insert(key, round * 10_000 + i);
                model.insert(key, round * 10_000 + i);
            }
            if round % 13 == 12 {
                map.retain(|k, v| (k + v) % 3 != 0);
                model.retain(|k, v| (*k + *v) % 3 != 0);
            }
            assert!(map.sorted.windows(2).all(|w| w[0].0 < w[1].0), "sorted, one entry a key");
            assert!(map.recent.keys().all(|k| map.sorted.binary_search_by_key(k, |(s, _)| *s).is_err()));
            assert_eq!(map.len(), model.len());
            for (key, value) in &model {
                assert_eq!(map.get(*key), Some(*value), "key {key} after round {round}");
            }
        }
        assert!(
            map.sorted.len() > map.len() * 3 / 4,
            "most entries were merged: {} of {}",
            map.sorted.len(),
            map.len()
        );
        assert_eq!(map.get(40_000), None);
        map.clear();
        assert!(map.is_empty() && map.get(*model.keys().next().unwrap()).is_none());
    }
}
