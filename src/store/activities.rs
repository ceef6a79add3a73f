//! How activities are kept: one value per lead (all its activities, in id
//! order) and an index from activity id to lead in 2^16 hashed buckets.
//!
//! sled's memory follows the number of keys it holds, not their bytes (its
//! page table names every node of at most 16 keys, and all of it is loaded
//! when the database opens). At five activities a lead, one key per
//! activity and one index key per activity were two thirds of a store's
//! keys. Filed per lead, they are one key per lead; bucketed, the index is
//! at most 65,536 keys however many activities there are (schema 7 had
//! 2^19 buckets: half a million keys at a million leads, a quarter of the
//! store's, for a handful of entries each).
//!
//! **A first start files first and indexes after.** A bucket holds about
//! fifty entries at a million leads, a few at 100,000: pointing each
//! activity of a backfill at its lead one by one read, decoded, encoded
//! and wrote its whole bucket twice, so the index's cost grew with the
//! square of the org. While a fresh store takes in its first backfill the
//! index is deferred ([`INDEX_DEFERRED`]): activities are filed under
//! their leads only, and [`Store::index_activities_step`] then builds the
//! index from the files, each bucket rewritten once per step of
//! [`INDEX_STEP_ACTIVITIES`]. What the index would have caught meanwhile
//! is caught there: an activity filed under two leads (it moved while the
//! backfill read) stays with the copy modified last; one deleted in the
//! CRM waits under [`waiting_deletion`] until the index can find it.
//!
//! A [`super::Batch`] records activity changes as [`ActivityEdit`]s;
//! [`super::Store::commit`] reads the files and buckets they touch, applies
//! them in order and writes the results in the same transaction as the
//! rest of the batch. That read is outside the transaction: one writer
//! (the sync of one tick, or an upgrade on open) changes activities at a
//! time.

use std::collections::BTreeMap;

use handoff_model::Activity;

use super::backend::{Backend, Tree, Write};
use super::codec::{decode, encode};
use super::{Batch, Store, StoreError};

/// A change to the activities, applied when the batch is committed.
#[derive(Debug, Clone)]
pub(super) enum ActivityEdit {
    /// Files the activity under its `lead_id` (replacing the one with its
    /// id there) and points the index at it.
    Put(Activity),
    /// Files the activity as `Put` does, leaving the index alone: the index
    /// is deferred (see [`INDEX_DEFERRED`]).
    File(Activity),
    /// Takes activity `activity_id` out of `lead_id`'s file; out of the
    /// index too unless `keep_index` (it is being filed elsewhere).
    Remove { lead_id: String, activity_id: String, keep_index: bool },
}

/// The index bucket of `activity_id`: the top 16 bits of its hash, as two
/// big-endian bytes. 2^16 buckets hold about fifty entries each at three
/// million activities (a bucket read or rewritten is about 2 KB), a few in
/// a small org. Stored keys depend on it: it never changes.
pub(super) fn bucket(activity_id: &str) -> Vec<u8> {
    bucket_number(activity_id).to_be_bytes().to_vec()
}

/// [`bucket`] as a number.
fn bucket_number(activity_id: &str) -> u16 {
    (hash(activity_id) >> 48) as u16
}

/// Whether `key` of the activity index is a bucket schema 7 wrote (three
/// bytes: the top 19 bits of the same hash) rather than one of today's.
pub(super) fn is_schema_seven_bucket(key: &[u8]) -> bool {
    key.len() == 3
}

/// FNV-1a of `activity_id`, mixed.
fn hash(activity_id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in activity_id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's high bits hardly move with an id's last characters: mixed
    // (murmur3's finaliser), sequential ids spread over the buckets.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    hash
}

/// One index bucket: `(activity id, lead id)` in activity id order.
pub(super) type Bucket = Vec<(String, String)>;

/// The `meta` key holding how many activities are filed.
pub(super) const ACTIVITY_COUNT: &str = "activity_count";

/// Points `activity_id` at `lead_id` in `bucket` (its bucket).
fn point(bucket: &mut Bucket, activity_id: String, lead_id: String) {
    match bucket.binary_search_by(|(id, _)| id.cmp(&activity_id)) {
        Ok(i) => bucket[i].1 = lead_id,
        Err(i) => bucket.insert(i, (activity_id, lead_id)),
    }
}

/// Where the lead of `activity_id` is found in its bucket, if it is.
pub(super) fn lead_in(bucket: &Bucket, activity_id: &str) -> Option<String> {
    bucket
        .binary_search_by(|(id, _)| id.as_str().cmp(activity_id))
        .ok()
        .and_then(|i| bucket.get(i))
        .map(|(_, lead)| lead.clone())
}

/// The files and buckets a batch's edits touched, read once each.
#[derive(Default)]
struct Touched {
    files: BTreeMap<String, Vec<Activity>>,
    buckets: BTreeMap<Vec<u8>, Bucket>,
}

impl Touched {
    fn file<'a>(&'a mut self, backend: &dyn Backend, lead_id: &str) -> Result<&'a mut Vec<Activity>, StoreError> {
        read_once(&mut self.files, backend, Tree::Activities, lead_id.to_string(), lead_id.as_bytes())
    }

    fn bucket<'a>(&'a mut self, backend: &dyn Backend, activity_id: &str) -> Result<&'a mut Bucket, StoreError> {
        let key = bucket(activity_id);
        read_once(&mut self.buckets, backend, Tree::ActivityBuckets, key.clone(), &key)
    }
}

/// The value under `key` in `touched`, read from `tree` (empty when absent)
/// the first time it is asked for.
pub(super) fn read_once<'a, K: Ord, V: serde::de::DeserializeOwned + Default>(
    touched: &'a mut BTreeMap<K, V>,
    backend: &dyn Backend,
    tree: Tree,
    at: K,
    key: &[u8],
) -> Result<&'a mut V, StoreError> {
    match touched.entry(at) {
        std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
        std::collections::btree_map::Entry::Vacant(e) => {
            let stored = match backend.get(tree, key)? {
                Some(bytes) => decode::<V>(tree, key, &bytes)?,
                None => V::default(),
            };
            Ok(e.insert(stored))
        }
    }
}

/// Applies `edits` in order to the files and buckets they name, as stored
/// in `backend`, and returns the writes that store the results and the
/// change in the number of activities filed.
pub(super) fn resolve(backend: &dyn Backend, edits: &[ActivityEdit]) -> Result<(Vec<Write>, i64), StoreError> {
    let mut touched = Touched::default();
    let mut added: i64 = 0;
    for edit in edits {
        match edit {
            ActivityEdit::Put(activity) | ActivityEdit::File(activity) => {
                let file = touched.file(backend, &activity.lead_id)?;
                match file.binary_search_by(|a| a.id.cmp(&activity.id)) {
                    Ok(i) => file[i] = activity.clone(),
                    Err(i) => {
                        file.insert(i, activity.clone());
                        added += 1;
                    }
                }
                if matches!(edit, ActivityEdit::Put(_)) {
                    point(touched.bucket(backend, &activity.id)?, activity.id.clone(), activity.lead_id.clone());
                }
            }
            ActivityEdit::Remove { lead_id, activity_id, keep_index } => {
                let file = touched.file(backend, lead_id)?;
                if let Ok(i) = file.binary_search_by(|a| a.id.as_str().cmp(activity_id)) {
                    file.remove(i);
                    added -= 1;
                }
                if !keep_index {
                    let bucket = touched.bucket(backend, activity_id)?;
                    if let Ok(i) = bucket.binary_search_by(|(id, _)| id.as_str().cmp(activity_id)) {
                        bucket.remove(i);
                    }
                }
            }
        }
    }
    let mut writes = Vec::with_capacity(touched.files.len() + touched.buckets.len());
    for (lead_id, file) in touched.files {
        let key = lead_id.into_bytes();
        let value = if file.is_empty() { None } else { Some(encode(Tree::Activities, &key, &file)?) };
        writes.push(Write { tree: Tree::Activities, key, value });
    }
    for (key, bucket) in touched.buckets {
        let value = if bucket.is_empty() { None } else { Some(encode(Tree::ActivityBuckets, &key, &bucket)?) };
        writes.push(Write { tree: Tree::ActivityBuckets, key, value });
    }
    Ok((writes, added))
}

/// The `meta` key present while the index is deferred (a first start's
/// backfill): activities are filed without it, and it is built from the
/// files once every stream is read. Its value is how far the build got:
/// `>` and the last file indexed, empty before the first.
pub(super) const INDEX_DEFERRED: &str = "activity_index_deferred";
/// Activities gathered per step of the build: 24 bytes each in memory and
/// their ids' bytes (about 5 MiB), and each step rewrites the buckets they
/// fall in once (3.4 million activities, a million leads: 27 steps
/// rewrite most of the index 27 times, where pointing activities one by
/// one rewrote a bucket per activity).
pub const INDEX_STEP_ACTIVITIES: usize = 128_000;
/// Files read per slice of a step.
const FILES_PER_READ: usize = 512;
/// Buckets rewritten per commit of a step (about 2 KB each at a million
/// leads).
const BUCKETS_PER_COMMIT: usize = 512;

/// The `meta` key under which the deletion of `activity_id`, arrived while
/// the index was deferred, waits for it.
pub(super) fn waiting_deletion(activity_id: &str) -> Vec<u8> {
    let mut key = WAITING_DELETIONS.to_vec();
    key.extend_from_slice(activity_id.as_bytes());
    key
}

/// The prefix of [`waiting_deletion`] keys (no meta name holds a NUL).
const WAITING_DELETIONS: &[u8] = b"activity_deleted_unindexed\0";

/// What one step of [`Store::index_activities_step`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexStep {
    /// Lead files read and the activities in them.
    pub files: usize,
    pub activities: usize,
    /// Activities found filed under a second lead: the copy modified
    /// earlier was taken out.
    pub duplicates: usize,
    /// Deletions that waited for the index, applied.
    pub deletions: usize,
    /// The index is whole: activities are indexed as they are filed again.
    pub done: bool,
}

/// An activity found in a file, waiting for its bucket.
struct Found {
    modified_ms: i64,
    /// Its file, as an index into the step's list of files.
    file: u32,
    /// Its id: where it starts in the step's `ids`, and its length.
    id_at: u32,
    id_len: u16,
    bucket: u16,
}

impl Store {
    /// Whether the activity index is deferred (see [`INDEX_DEFERRED`]).
    pub fn activity_index_deferred(&self) -> Result<bool, StoreError> {
        Ok(self.meta_text(INDEX_DEFERRED)?.is_some())
    }

    /// Whether any deletion waits for the deferred index.
    pub fn any_deletion_waiting(&self) -> Result<bool, StoreError> {
        Ok(!self.waiting_deletion_keys(1)?.is_empty())
    }

    /// The `meta` keys of the first `limit` waiting deletions.
    fn waiting_deletion_keys(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.backend.keys(Tree::Meta, WAITING_DELETIONS, super::prefix_end(WAITING_DELETIONS).as_deref(), limit)
    }

    /// Whether the deletion of `activity_id` waits for the deferred index.
    pub fn deletion_waits(&self, activity_id: &str) -> Result<bool, StoreError> {
        Ok(self.backend.get(Tree::Meta, &waiting_deletion(activity_id))?.is_some())
    }

    /// Builds the deferred activity index a step further: the activities
    /// of the next files, up to about [`INDEX_STEP_ACTIVITIES`], pointed
    /// at their leads, in commits that each leave the index right for what
    /// they cover (a step cut short is done again, to the same result).
    /// After the last file, the deletions that waited are applied and the
    /// index is kept up to date again. Nothing to do when it is not
    /// deferred.
    pub fn index_activities_step(&self, budget: usize) -> Result<IndexStep, StoreError> {
        let mut step = IndexStep::default();
        let Some(after) = self.meta_text(INDEX_DEFERRED)? else {
            step.done = true;
            return Ok(step);
        };
        // The first key after the last file indexed.
        let mut from = match after.strip_prefix('>') {
            Some(last) => [last.as_bytes(), &[0]].concat(),
            None => Vec::new(),
        };
        // Sized once (each doubling would copy what it holds): a step
        // gathers its budget, or what is filed if that is less.
        let expected = budget.min(self.meta_u64(ACTIVITY_COUNT)?.unwrap_or(0) as usize);
        let mut files: Vec<String> = Vec::new();
        let mut found: Vec<Found> = Vec::with_capacity(expected);
        // Every id found, one after the other (a string each would take
        // twice the memory).
        let mut ids = String::with_capacity(expected * 20);
        let mut read_all = false;
        // A file holds an activity at least.
        let per_read = FILES_PER_READ.min(budget).max(1);
        while found.len() < budget.max(1) && !read_all {
            let slice = self.backend.range(Tree::Activities, &from, None, per_read)?;
            read_all = slice.len() < per_read;
            for (key, bytes) in slice {
                let filed: Vec<Activity> = decode(Tree::Activities, &key, &bytes)?;
                let unreadable = |message: &str| StoreError::Format {
                    tree: Tree::Activities.name(),
                    key: super::show_key(&key),
                    message: message.to_string(),
                };
                let file = files.len() as u32;
                for a in filed {
                    let (Ok(id_at), Ok(id_len)) = (u32::try_from(ids.len()), u16::try_from(a.id.len())) else {
                        return Err(unreadable("an activity id longer than 65,535 bytes"));
                    };
                    ids.push_str(&a.id);
                    found.push(Found {
                        modified_ms: a.modified_at.timestamp_millis(),
                        file,
                        id_at,
                        id_len,
                        bucket: bucket_number(&a.id),
                    });
                }
                let name = String::from_utf8(key.clone())
                    .map_err(|_| unreadable("a lead's file under a key that is not text"))?;
                files.push(name);
                from = key;
                from.push(0);
            }
        }
        step.files = files.len();
        step.activities = found.len();
        // By bucket, each in file order (a stable sort).
        found.sort_by_key(|f| f.bucket);
        let mut batch = Batch::default();
        let mut buckets = 0;
        for group in found.chunk_by(|a, b| a.bucket == b.bucket) {
            let key = group[0].bucket.to_be_bytes().to_vec();
            let mut bucket: Bucket = self.get(Tree::ActivityBuckets, &key)?.unwrap_or_default();
            for f in group {
                let file = &files[f.file as usize];
                let activity_id = &ids[f.id_at as usize..f.id_at as usize + usize::from(f.id_len)];
                match lead_in(&bucket, activity_id) {
                    Some(indexed) if indexed == *file => {}
                    Some(other) => {
                        // Filed under two leads: it moved while the backfill read.
                        step.duplicates += 1;
                        let other_copy = self.activities_of(&other)?.into_iter().find(|a| a.id == activity_id);
                        match other_copy {
                            Some(kept) if kept.modified_at.timestamp_millis() >= f.modified_ms => {
                                batch.remove_activity(file, activity_id, true);
                            }
                            Some(_) => {
                                batch.remove_activity(&other, activity_id, true);
                                point(&mut bucket, activity_id.to_string(), file.clone());
                            }
                            // The index named a file that no longer holds it.
                            None => point(&mut bucket, activity_id.to_string(), file.clone()),
                        }
                    }
                    None => point(&mut bucket, activity_id.to_string(), file.clone()),
                }
            }
            batch.put(Tree::ActivityBuckets, key, &bucket);
            buckets += 1;
            if buckets % BUCKETS_PER_COMMIT == 0 {
                self.commit(std::mem::take(&mut batch))?;
            }
        }
        if !read_all {
            if let Some(last) = files.last() {
                batch.set_meta_text(INDEX_DEFERRED, &format!(">{last}"));
            }
            self.commit(batch)?;
            return Ok(step);
        }
        self.commit(batch)?;
        // The index is whole: the deletions that waited for it can find
        // their files.
        loop {
            let waiting = self.waiting_deletion_keys(SLICE)?;
            if waiting.is_empty() {
                break;
            }
            let mut batch = Batch::default();
            for key in waiting {
                let activity_id = String::from_utf8_lossy(&key[WAITING_DELETIONS.len()..]).into_owned();
                if let Some(lead_id) = self.activity_lead(&activity_id)? {
                    batch.remove_activity(&lead_id, &activity_id, false);
                    step.deletions += 1;
                }
                batch.delete(Tree::Meta, key);
            }
            self.commit(batch)?;
        }
        let mut batch = Batch::default();
        batch.delete(Tree::Meta, INDEX_DEFERRED.as_bytes().to_vec());
        self.commit(batch)?;
        step.done = true;
        Ok(step)
    }
}

/// Waiting deletions applied per commit.
const SLICE: usize = 1_000;

/// Moves the entries of schema 7's buckets among `entries` (a slice of the
/// index, in key order) into today's buckets: the writes that store the
/// merged buckets and delete the old ones, for one commit, so an upgrade
/// cut short resumes with the old buckets left. Today's buckets among
/// `entries` are left as they are.
pub(super) fn rebucket(backend: &dyn Backend, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<Write>, StoreError> {
    let mut touched = Touched::default();
    let mut writes = Vec::new();
    for (key, value) in entries {
        if !is_schema_seven_bucket(&key) {
            continue;
        }
        let old: Bucket = decode(Tree::ActivityBuckets, &key, &value)?;
        for (activity_id, lead_id) in old {
            point(touched.bucket(backend, &activity_id)?, activity_id, lead_id);
        }
        writes.push(Write { tree: Tree::ActivityBuckets, key, value: None });
    }
    for (key, bucket) in touched.buckets {
        let value = encode(Tree::ActivityBuckets, &key, &bucket)?;
        writes.push(Write { tree: Tree::ActivityBuckets, key, value: Some(value) });
    }
    Ok(writes)
}

/// Schema 7's bucket of `activity_id` (the top 19 bits of the same hash,
/// three bytes): what the upgrade tests lay out.
#[cfg(test)]
pub(super) fn schema_seven_bucket(activity_id: &str) -> Vec<u8> {
    let top = (hash(activity_id) >> 45) as u32;
    top.to_be_bytes()[1..].to_vec()
}

/// Whether `key` of the activities tree is one schema 3 wrote (`lead id,
/// NUL, activity id`: one activity) rather than a lead's file (no CRM id
/// holds a NUL).
pub(super) fn is_schema_three_key(key: &[u8]) -> bool {
    key.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_two_bytes_stable_and_spread() {
        // Stored keys depend on these: a change here is a new schema.
        assert_eq!(bucket(""), [0xef, 0xd0]);
        assert_eq!(bucket("a"), [0x82, 0xa2]);
        // Schema 7's keys, as its stores hold them.
        assert_eq!(schema_seven_bucket(""), [0x07, 0x7e, 0x80]);
        assert_eq!(schema_seven_bucket("a"), [0x04, 0x15, 0x15]);
        assert!(is_schema_seven_bucket(&schema_seven_bucket("a")) && !is_schema_seven_bucket(&bucket("a")));
        // 10,000 sequential ids thrown at random into 65,536 buckets would
        // land in about 9,260 distinct ones.
        let ids: Vec<String> = (0..10_000).map(|i| format!("00T{i:015}")).collect();
        let distinct: std::collections::BTreeSet<Vec<u8>> = ids.iter().map(|id| bucket(id)).collect();
        assert!(distinct.len() > 9_150, "10,000 sequential ids share buckets: {} distinct", distinct.len());
    }
}
