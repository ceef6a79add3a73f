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
use super::StoreError;

/// A change to the activities, applied when the batch is committed.
#[derive(Debug, Clone)]
pub(super) enum ActivityEdit {
    /// Files the activity under its `lead_id` (replacing the one with its
    /// id there) and points the index at it.
    Put(Activity),
    /// Takes activity `activity_id` out of `lead_id`'s file; out of the
    /// index too unless `keep_index` (it is being filed elsewhere).
    Remove { lead_id: String, activity_id: String, keep_index: bool },
}

/// The index bucket of `activity_id`: the top 16 bits of its hash, as two
/// big-endian bytes. 2^16 buckets hold about fifty entries each at three
/// million activities (a bucket read or rewritten is about 2 KB), a few in
/// a small org. Stored keys depend on it: it never changes.
pub(super) fn bucket(activity_id: &str) -> Vec<u8> {
    let top = (hash(activity_id) >> 48) as u16;
    top.to_be_bytes().to_vec()
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
            ActivityEdit::Put(activity) => {
                let file = touched.file(backend, &activity.lead_id)?;
                match file.binary_search_by(|a| a.id.cmp(&activity.id)) {
                    Ok(i) => file[i] = activity.clone(),
                    Err(i) => {
                        file.insert(i, activity.clone());
                        added += 1;
                    }
                }
                point(touched.bucket(backend, &activity.id)?, activity.id.clone(), activity.lead_id.clone());
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
