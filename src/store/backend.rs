//! The key-value layer under [`super::Store`]: named trees, ordered keys,
//! atomic durable commits. Two implementations: sled on disk, and a
//! `BTreeMap` for tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{bundle, StoreError};

/// The trees of the store (see the module docs of [`super`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    Meta,
    Cursors,
    Leads,
    Activities,
    /// Schema 3's index (activity id → lead id), emptied on upgrade:
    /// [`Tree::ActivityBuckets`] replaced it.
    ActivityIndex,
    /// Activity id → lead id, in hashed buckets (see `store::activities`).
    ActivityBuckets,
    Owners,
    Calendars,
    Dirty,
    States,
    Deadlines,
    Outbox,
    OutboxKeys,
    Ledger,
    Errors,
    Weekly,
    Messages,
    MessageKeys,
    Quarantine,
    Held,
    OutboxFailed,
    /// New MQLs each rep took per business day (see `policy.capacity`).
    Intake,
    /// Every counted arrival by instant, org-wide (`policy.surge.detect`).
    Arrivals,
    /// Opportunities by id (the AE's commitments).
    Opportunities,
    /// `lead\0opportunity`: which opportunities each lead became.
    LeadOpportunities,
    /// Users' absences the CRM records, by id.
    Absences,
    /// Keys per tree, kept by every commit (see [`Backend::count`]).
    Counts,
    /// Ledger entries about a lead, one value per lead (see `ledger.rs`).
    LeadLedger,
}

impl Tree {
    pub const ALL: [Tree; 28] = [
        Tree::Meta,
        Tree::Cursors,
        Tree::Leads,
        Tree::Activities,
        Tree::ActivityIndex,
        Tree::ActivityBuckets,
        Tree::Owners,
        Tree::Calendars,
        Tree::Dirty,
        Tree::States,
        Tree::Deadlines,
        Tree::Outbox,
        Tree::OutboxKeys,
        Tree::Ledger,
        Tree::Errors,
        Tree::Weekly,
        Tree::Messages,
        Tree::MessageKeys,
        Tree::Quarantine,
        Tree::Held,
        Tree::OutboxFailed,
        Tree::Intake,
        Tree::Arrivals,
        Tree::Opportunities,
        Tree::LeadOpportunities,
        Tree::Absences,
        Tree::Counts,
        Tree::LeadLedger,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Cursors => "cursors",
            Tree::Leads => "leads",
            Tree::Activities => "activities",
            Tree::ActivityIndex => "activity_index",
            Tree::ActivityBuckets => "activity_buckets",
            Tree::Owners => "owners",
            Tree::Calendars => "calendars",
            Tree::Dirty => "dirty",
            Tree::States => "states",
            Tree::Deadlines => "deadlines",
            Tree::Outbox => "outbox",
            Tree::OutboxKeys => "outbox_keys",
            Tree::Ledger => "ledger",
            Tree::Errors => "errors",
            Tree::Weekly => "weekly",
            Tree::Messages => "messages",
            Tree::MessageKeys => "message_keys",
            Tree::Quarantine => "quarantine",
            Tree::Held => "held",
            Tree::OutboxFailed => "outbox_failed",
            Tree::Intake => "intake",
            Tree::Arrivals => "arrivals",
            Tree::Opportunities => "opportunities",
            Tree::LeadOpportunities => "lead_opportunities",
            Tree::Absences => "absences",
            Tree::Counts => "counts",
            Tree::LeadLedger => "lead_ledger",
        }
    }

    fn index(self) -> usize {
        Tree::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// One write of a commit: `value` `None` deletes the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub tree: Tree,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Key-value pairs as a range read returns them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Ordered key-value trees with atomic, durable commits.
///
/// Every commit also keeps the number of keys of each tree it changed, in
/// the [`Tree::Counts`] tree and in the same transaction, so counting is a
/// point read whatever the size of the org (sled's own `len` walks the
/// tree).
pub trait Backend: Send + Sync {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// The value `key` has in each of `trees`, in their order: one read
    /// where the backend keeps them in one value (a lead's bundle).
    fn get_each(&self, trees: &[Tree], key: &[u8]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        trees.iter().map(|tree| self.get(*tree, key)).collect()
    }
    /// Keys in `[from, to)` (`to` `None`: to the end), in order, at most `limit`.
    fn range(&self, tree: Tree, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Entries, StoreError>;
    /// The keys alone of [`Backend::range`], their values not copied.
    fn keys(&self, tree: Tree, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.range(tree, from, to, limit)?.into_iter().map(|(k, _)| k).collect())
    }
    /// The number of keys in `tree`, as the commits kept it.
    fn count(&self, tree: Tree) -> Result<usize, StoreError>;
    /// The number of keys in `tree`, counted one by one (checks, upgrades).
    fn recount(&self, tree: Tree) -> Result<usize, StoreError>;
    /// Replaces every kept count with a recount (a store from before counts
    /// were kept).
    fn reset_counts(&self) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for tree in Tree::ALL.into_iter().filter(|t| *t != Tree::Counts) {
            let n = self.recount(tree)? as u64;
            writes.push(Write {
                tree: Tree::Counts,
                key: tree.name().as_bytes().to_vec(),
                value: Some(n.to_be_bytes().to_vec()),
            });
        }
        self.commit(&writes)
    }
    /// Applies every write or none, and returns once they are on disk.
    fn commit(&self, writes: &[Write]) -> Result<(), StoreError>;
    /// Moves the values of the trees kept in lead bundles (see
    /// [`super::bundle`]) from where an older handoff kept them into the
    /// bundles, a slice per commit (resumable), and returns how many moved.
    /// Nothing to move where the trees were always bundled.
    fn bundle_leads(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
    fn flush(&self) -> Result<(), StoreError>;
}

/// Keys added (positive) or removed by a commit, per tree.
#[derive(Default)]
struct CountDeltas([i64; Tree::ALL.len()]);

impl CountDeltas {
    /// A write to `tree` found the key present (`existed`) and leaves it
    /// present or not (`present`).
    fn note(&mut self, tree: Tree, existed: bool, present: bool) {
        if tree != Tree::Counts {
            self.0[tree.index()] += i64::from(present) - i64::from(existed);
        }
    }

    /// `(counts key, delta)` for every tree that changed.
    fn changed(&self) -> impl Iterator<Item = (&'static [u8], i64)> + '_ {
        Tree::ALL.iter().zip(self.0).filter(|(_, d)| *d != 0).map(|(t, d)| (t.name().as_bytes(), d))
    }
}

fn read_count(bytes: Option<&[u8]>) -> u64 {
    bytes.and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0)
}

fn moved_count(old: Option<&[u8]>, delta: i64) -> [u8; 8] {
    (read_count(old) as i64).saturating_add(delta).max(0).to_be_bytes()
}

fn io(doing: &str) -> impl Fn(sled::Error) -> StoreError + '_ {
    move |e| StoreError::Io { doing: doing.to_string(), message: e.to_string() }
}

/// How long opening waits for sled's file lock when this process itself
/// closed the database, and how often it tries.
const LOCK_WAIT_MS: u64 = 15_000;
const LOCK_RETRY_MS: u64 = 20;

/// Databases this process opened and has since dropped: sled lets go of
/// its file lock from its own flusher thread once the last handle is gone,
/// so reopening one of them (a reload, a restart in the same process) may
/// find the lock still held for a moment, longer on a loaded machine.
static CLOSED_HERE: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

/// Whether opening failed on the file lock: sled words that as an `Other`
/// error naming the lock.
fn lock_held(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("could not acquire lock")
        }
        _ => false,
    }
}

fn closed_here(path: &Path) -> bool {
    CLOSED_HERE.lock().map(|closed| closed.iter().any(|p| p == path)).unwrap_or(false)
}

/// sled 0.34, one tree per [`Tree`] kept on its own, and one holding the
/// lead bundles (see [`super::bundle`]).
pub struct SledBackend {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    path: std::path::PathBuf,
}

impl Drop for SledBackend {
    fn drop(&mut self) {
        if let Ok(mut closed) = CLOSED_HERE.lock() {
            if !closed.contains(&self.path) {
                closed.push(self.path.clone());
            }
        }
    }
}

impl SledBackend {
    /// Opens (or creates) the database in `dir`. The directory and
    /// everything in it are made private first (see [`make_private`]).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledBackend, StoreError> {
        let open_err = |message: String| StoreError::Open { path: dir.display().to_string(), message };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        make_private(dir).map_err(|e| open_err(format!("cannot make it private: {e}")))?;
        // A compaction running in another process holds the lock (and the
        // database): its unfinished copy is left alone, and the open below
        // is refused as for any other holder.
        if let Some(_lock) = compaction_lock(dir).map_err(|e| open_err(format!("cannot lock {COMPACT_LOCK}: {e}")))? {
            finish_compaction(dir).map_err(|e| open_err(format!("cannot finish an interrupted compaction: {e}")))?;
        }
        let path = dir.join(DB_DIR);
        let config = sled::Config::new()
            .path(&path)
            // A daemon, not a cache: sled's default would take 1 GiB.
            .cache_capacity(cache_bytes);
        // Another process holding the lock is refused at once (the CLI
        // then asks the running daemon); only a database this process
        // closed itself is waited for.
        let wait_ms = if closed_here(&path) { LOCK_WAIT_MS } else { 0 };
        let mut waited_ms = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(e) if lock_held(&e) && waited_ms < wait_ms => {
                    std::thread::sleep(std::time::Duration::from_millis(LOCK_RETRY_MS));
                    waited_ms += LOCK_RETRY_MS;
                }
                Err(e) => return Err(open_err(e.to_string())),
            }
        };
        let trees = physical_names()
            .map(|name| db.open_tree(name).map_err(|e| open_err(format!("tree {name}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SledBackend { db, trees, path })
    }

    /// The sled tree of a tree kept on its own (a bundled tree's own sled
    /// tree is empty once [`Backend::bundle_leads`] has run).
    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree.index()]
    }

    /// `each` over `tree`'s keys in `[from, to)` (`to` `None`: to the end)
    /// and their values (a bundle's section for the trees kept in
    /// bundles), in order, at most `limit`.
    fn walk(
        &self,
        tree: Tree,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        mut each: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        if limit == 0 {
            return Ok(());
        }
        let upper = match to {
            Some(end) => Bound::Excluded(end.to_vec()),
            None => Bound::Unbounded,
        };
        let bounds = (Bound::Included(from.to_vec()), upper);
        if let Some(slot) = bundle::slot_of(tree) {
            let mut taken = 0;
            for item in self.bundles().range::<Vec<u8>, _>(bounds) {
                let (k, stored) = item.map_err(io("scanning"))?;
                if let Some(value) = section(tree, slot, &k, &stored)? {
                    each(&k, value);
                    taken += 1;
                    if taken == limit {
                        break;
                    }
                }
            }
            return Ok(());
        }
        for item in self.tree(tree).range::<Vec<u8>, _>(bounds).take(limit) {
            let (k, v) = item.map_err(io("scanning"))?;
            each(&k, &v);
        }
        Ok(())
    }

    fn bundles(&self) -> &sled::Tree {
        &self.trees[BUNDLES]
    }
}

/// Where the bundles' sled tree sits among [`SledBackend`]'s trees: after
/// one per [`Tree`].
const BUNDLES: usize = Tree::ALL.len();

/// The names of the sled trees, in [`SledBackend`]'s order.
fn physical_names() -> impl Iterator<Item = &'static str> {
    Tree::ALL.iter().map(|t| t.name()).chain([bundle::TREE_NAME])
}

/// `tree`'s section of the bundle `stored` under `key`.
fn section<'a>(tree: Tree, slot: usize, key: &[u8], stored: &'a [u8]) -> Result<Option<&'a [u8]>, StoreError> {
    let sections = bundle::sections(stored).map_err(|message| StoreError::Format {
        tree: tree.name(),
        key: super::show_key(key),
        message,
    })?;
    Ok(sections[slot])
}

/// The sections of the bundle `stored` (none when there is no bundle),
/// owned, to be changed.
fn owned_sections(stored: Option<&[u8]>) -> Result<Vec<Option<Vec<u8>>>, String> {
    match stored {
        Some(bytes) => Ok(bundle::sections(bytes)?.iter().map(|s| s.map(<[u8]>::to_vec)).collect()),
        None => Ok(vec![None; bundle::BUNDLED.len()]),
    }
}

impl Backend for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(slot) = bundle::slot_of(tree) {
            let Some(stored) = self.bundles().get(key).map_err(io("reading"))? else { return Ok(None) };
            return Ok(section(tree, slot, key, &stored)?.map(<[u8]>::to_vec));
        }
        Ok(self.tree(tree).get(key).map_err(io("reading"))?.map(|v| v.to_vec()))
    }

    fn get_each(&self, trees: &[Tree], key: &[u8]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let slots: Option<Vec<usize>> = trees.iter().map(|tree| bundle::slot_of(*tree)).collect();
        let Some(slots) = slots else { return trees.iter().map(|tree| self.get(*tree, key)).collect() };
        let Some(stored) = self.bundles().get(key).map_err(io("reading"))? else { return Ok(vec![None; trees.len()]) };
        trees
            .iter()
            .zip(slots)
            .map(|(tree, slot)| Ok(section(*tree, slot, key, &stored)?.map(<[u8]>::to_vec)))
            .collect()
    }

    fn range(&self, tree: Tree, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Entries, StoreError> {
        let mut out = Vec::new();
        self.walk(tree, from, to, limit, |k, v| out.push((k.to_vec(), v.to_vec())))?;
        Ok(out)
    }

    fn keys(&self, tree: Tree, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        self.walk(tree, from, to, limit, |k, _| out.push(k.to_vec()))?;
        Ok(out)
    }

    fn count(&self, tree: Tree) -> Result<usize, StoreError> {
        let bytes = self.tree(Tree::Counts).get(tree.name()).map_err(io("reading a count"))?;
        Ok(read_count(bytes.as_deref()) as usize)
    }

    fn recount(&self, tree: Tree) -> Result<usize, StoreError> {
        let Some(slot) = bundle::slot_of(tree) else { return Ok(self.tree(tree).len()) };
        let mut count = 0;
        for item in self.bundles().iter() {
            let (k, stored) = item.map_err(io("counting"))?;
            count += usize::from(section(tree, slot, &k, &stored)?.is_some());
        }
        Ok(count)
    }

    fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        let result: Result<(), TransactionError<String>> = self.trees.as_slice().transaction(|txs| {
            let mut deltas = CountDeltas::default();
            // The bundles this commit changes, as their sections, written
            // once each after every write is applied to them in order.
            let mut bundles: BTreeMap<&[u8], Vec<Option<Vec<u8>>>> = BTreeMap::new();
            for w in writes {
                let key = w.key.as_slice();
                let existed = if let Some(slot) = bundle::slot_of(w.tree) {
                    let sections = match bundles.entry(key) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let stored = txs[BUNDLES].get(key)?;
                            e.insert(owned_sections(stored.as_deref()).map_err(ConflictableTransactionError::Abort)?)
                        }
                    };
                    std::mem::replace(&mut sections[slot], w.value.clone()).is_some()
                } else {
                    let tx = &txs[w.tree.index()];
                    match &w.value {
                        Some(v) => tx.insert(key, v.as_slice())?.is_some(),
                        None => tx.remove(key)?.is_some(),
                    }
                };
                deltas.note(w.tree, existed, w.value.is_some());
            }
            for (key, sections) in &bundles {
                match bundle::bundle(sections) {
                    Some(stored) => txs[BUNDLES].insert(*key, stored)?,
                    None => txs[BUNDLES].remove(*key)?,
                };
            }
            let counts = &txs[Tree::Counts.index()];
            for (name, delta) in deltas.changed() {
                let old = counts.get(name)?;
                counts.insert(name, &moved_count(old.as_deref(), delta)[..])?;
            }
            // Flush when the transaction commits: the batch is on disk
            // before the caller moves on (sled does not do this by default).
            txs[0].flush();
            Ok::<(), ConflictableTransactionError<String>>(())
        });
        result.map_err(|e| StoreError::Io { doing: "committing a batch".to_string(), message: transaction_error(e) })
    }

    fn bundle_leads(&self) -> Result<usize, StoreError> {
        let mut moved = 0;
        for (slot, tree) in bundle::BUNDLED.into_iter().enumerate() {
            let own = self.tree(tree);
            loop {
                let slice = own.iter().take(BUNDLE_SLICE).collect::<Result<Vec<_>, _>>().map_err(io("scanning"))?;
                if slice.is_empty() {
                    break;
                }
                let result: Result<(), TransactionError<String>> =
                    (own, self.bundles()).transaction(|(own, bundles)| {
                        for (key, value) in &slice {
                            let stored = bundles.get(key)?;
                            let mut sections =
                                owned_sections(stored.as_deref()).map_err(ConflictableTransactionError::Abort)?;
                            sections[slot] = Some(value.to_vec());
                            if let Some(stored) = bundle::bundle(&sections) {
                                bundles.insert(key, stored)?;
                            }
                            own.remove(key)?;
                        }
                        bundles.flush();
                        Ok::<(), ConflictableTransactionError<String>>(())
                    });
                result.map_err(|e| StoreError::Io {
                    doing: format!("moving tree `{}` into the lead bundles", tree.name()),
                    message: transaction_error(e),
                })?;
                moved += slice.len();
            }
        }
        Ok(moved)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io("flushing"))
    }
}

/// Lays the bundles of the sled database in `dir` out as schema 6 kept
/// them, a tree per section, leaving the first `keep_bundled` bundles as
/// they are (an upgrade cut short after moving them); returns how many
/// values it laid out.
#[cfg(test)]
pub(super) fn unbundle(dir: &Path, keep_bundled: usize) -> usize {
    let backend = SledBackend::open(dir, 1 << 20).unwrap();
    let mut laid_out = 0;
    for item in backend.bundles().iter().skip(keep_bundled) {
        let (key, stored) = item.unwrap();
        for (tree, value) in bundle::BUNDLED.into_iter().zip(bundle::sections(&stored).unwrap()) {
            if let Some(value) = value {
                backend.tree(tree).insert(&key, value).unwrap();
                laid_out += 1;
            }
        }
        backend.bundles().remove(&key).unwrap();
    }
    backend.flush().unwrap();
    laid_out
}

/// Values the bundled trees' own sled trees hold in the database in `dir`
/// (none once the upgrade has moved them).
#[cfg(test)]
pub(super) fn unbundled(dir: &Path) -> usize {
    let backend = SledBackend::open(dir, 1 << 20).unwrap();
    bundle::BUNDLED.into_iter().map(|tree| backend.tree(tree).len()).sum()
}

/// Keys a commit of [`Backend::bundle_leads`] moves.
const BUNDLE_SLICE: usize = 1_000;

fn transaction_error(e: TransactionError<String>) -> String {
    match e {
        TransactionError::Abort(message) => message,
        TransactionError::Storage(e) => e.to_string(),
    }
}

/// The database's directory inside the state directory, the copy a
/// compaction builds beside it, the mark saying that copy is whole, and
/// where the old database waits while the copy takes its place.
const DB_DIR: &str = "state.sled";
const COMPACT_DIR: &str = "state.sled.compact";
const COMPACT_DONE: &str = "state.sled.compact.done";
const OLD_DIR: &str = "state.sled.old";
/// Held (flock) by a compaction while it runs.
const COMPACT_LOCK: &str = "compact.lock";

/// The compaction lock of `dir`, or `None` when another process holds it.
pub(super) fn compaction_lock(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(COMPACT_LOCK))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// sled's keys copied (a lead's bundle is one).
    pub keys: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl SledBackend {
    /// Rewrites the database in `dir` into a fresh copy and puts the copy
    /// in its place: sled appends, and keeps what was overwritten until its
    /// segments are reclaimed, so a store that took in a large org holds
    /// several times its data. The copy is checked key for key before it
    /// replaces anything; a crash at any point leaves the old database or
    /// the whole copy, and the next open finishes the swap.
    pub fn compact(dir: &Path, cache_bytes: u64) -> Result<Compacted, StoreError> {
        SledBackend::compact_keeping_free(dir, cache_bytes, COMPACT_KEEP_FREE_BYTES)
    }

    /// [`SledBackend::compact`], stopping (the database as it was, the
    /// copy removed) whenever less than `keep_free_bytes` is left free on
    /// the disk: the copy needs room beside the database, and a full disk
    /// would also stop the daemon's own writes.
    pub(super) fn compact_keeping_free(
        dir: &Path,
        cache_bytes: u64,
        keep_free_bytes: u64,
    ) -> Result<Compacted, StoreError> {
        let fail = |doing: &str, e: &dyn std::fmt::Display| StoreError::Io {
            doing: format!("compacting {}: {doing}", dir.display()),
            message: e.to_string(),
        };
        let old = SledBackend::open(dir, cache_bytes)?;
        let Some(_lock) = compaction_lock(dir).map_err(|e| fail("locking", &e))? else {
            return Err(fail("locking", &"another handoff is compacting it"));
        };
        let bytes_before = dir_bytes(&dir.join(DB_DIR));
        let copy_path = dir.join(COMPACT_DIR);
        let room = |copied_keys: usize| -> Result<(), StoreError> {
            match free_bytes(dir) {
                Some(free) if free < keep_free_bytes => {
                    let _ = std::fs::remove_dir_all(&copy_path);
                    Err(fail(
                        "checking free space",
                        &format!(
                            "stopped after copying {copied_keys} keys: {} MiB is left free on its disk, and a \
                             compaction keeps at least {} MiB free. The database is as it was and the copy is \
                             removed; free some space (the copy needs up to the live data, about half of the \
                             {} MiB the database takes now) and run it again",
                            free >> 20,
                            keep_free_bytes >> 20,
                            bytes_before >> 20
                        ),
                    ))
                }
                _ => Ok(()),
            }
        };
        room(0)?;
        if copy_path.exists() {
            std::fs::remove_dir_all(&copy_path).map_err(|e| fail("removing an unfinished copy", &e))?;
        }
        let copy = sled::Config::new()
            .path(&copy_path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| fail("creating the copy", &e))?;
        let mut keys = 0;
        for (name, from) in physical_names().zip(&old.trees) {
            let to = copy.open_tree(name).map_err(|e| fail("creating a tree", &e))?;
            let mut batch = sled::Batch::default();
            let (mut in_batch, mut in_tree) = (0, 0);
            for item in from.iter() {
                let (k, v) = item.map_err(|e| fail("reading", &e))?;
                batch.insert(k, v);
                in_batch += 1;
                in_tree += 1;
                if in_batch == 10_000 {
                    to.apply_batch(std::mem::take(&mut batch)).map_err(|e| fail("writing the copy", &e))?;
                    in_batch = 0;
                    room(keys + in_tree)?;
                }
            }
            to.apply_batch(batch).map_err(|e| fail("writing the copy", &e))?;
            let copied = to.len();
            if copied != in_tree {
                return Err(fail(name, &format!("the copy holds {copied} keys, not {in_tree}")));
            }
            keys += in_tree;
        }
        copy.flush().map_err(|e| fail("flushing the copy", &e))?;
        drop(copy);
        drop(old);
        crate::failpoints::hit(crate::failpoints::COMPACT_COPIED);
        // From here the copy is whole: the mark makes any later open finish
        // the swap rather than throw the copy away.
        let mark = dir.join(COMPACT_DONE);
        std::fs::write(&mark, b"").map_err(|e| fail("marking the copy whole", &e))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail("syncing the directory", &e))?;
        crate::failpoints::hit(crate::failpoints::COMPACT_MARKED);
        finish_compaction(dir).map_err(|e| fail("swapping the copy in", &e))?;
        Ok(Compacted { keys, bytes_before, bytes_after: dir_bytes(&dir.join(DB_DIR)) })
    }
}

/// Completes or undoes a compaction found half done in `dir`: with the
/// mark, the whole copy replaces the database; without it, the copy is
/// unfinished and removed. Nothing to do in a directory without one.
fn finish_compaction(dir: &Path) -> std::io::Result<()> {
    let (db, copy, mark, old) = (dir.join(DB_DIR), dir.join(COMPACT_DIR), dir.join(COMPACT_DONE), dir.join(OLD_DIR));
    if mark.exists() {
        if copy.exists() {
            if db.exists() {
                if old.exists() {
                    std::fs::remove_dir_all(&old)?;
                }
                std::fs::rename(&db, &old)?;
                crate::failpoints::hit(crate::failpoints::COMPACT_MOVED);
            }
            std::fs::rename(&copy, &db)?;
        }
        std::fs::File::open(dir)?.sync_all()?;
        std::fs::remove_file(&mark)?;
    } else if copy.exists() {
        std::fs::remove_dir_all(&copy)?;
    }
    if old.exists() && db.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Free space a compaction leaves on the state directory's disk, at least.
const COMPACT_KEEP_FREE_BYTES: u64 = 256 << 20;

/// Bytes an unprivileged process may still write on the disk holding
/// `dir` (`None`: the system would not say).
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The bytes of every file under `dir` (a state directory's size on disk).
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).into_iter().flatten().flatten().map(|e| e.path()));
        } else {
            total += meta.len();
        }
    }
    total
}

/// Makes the state directory private to the daemon's user: from now on
/// this process creates files 0600 and directories 0700 (its umask becomes
/// 077, so the files sled makes as it runs are private too), and whatever
/// the directory already holds is brought to those modes (a directory made
/// by an older handoff had 0755 and 0644).
pub fn make_private(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let mut pending = vec![dir.to_path_buf()];
        while let Some(path) = pending.pop() {
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.file_type().is_symlink() {
                continue;
            }
            let want = if meta.is_dir() { 0o700 } else { 0o600 };
            if meta.permissions().mode() & 0o777 != want {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
            }
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    pending.push(entry?.path());
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

type MemoryTrees = BTreeMap<(Tree, Vec<u8>), Vec<u8>>;

/// Trees in memory, for tests.
#[derive(Default)]
pub struct MemoryBackend {
    trees: Mutex<MemoryTrees>,
}

impl MemoryBackend {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryTrees> {
        self.trees.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backend for MemoryBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(&(tree, key.to_vec())).cloned())
    }

    fn range(&self, tree: Tree, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Entries, StoreError> {
        let map = self.lock();
        let lower = Bound::Included((tree, from.to_vec()));
        let upper = match to {
            Some(end) => Bound::Excluded((tree, end.to_vec())),
            None => match Tree::ALL.get(tree.index() + 1) {
                Some(next) => Bound::Excluded((*next, Vec::new())),
                None => Bound::Unbounded,
            },
        };
        Ok(map.range((lower, upper)).take(limit).map(|((_, k), v)| (k.clone(), v.clone())).collect())
    }

    fn count(&self, tree: Tree) -> Result<usize, StoreError> {
        let map = self.lock();
        Ok(read_count(map.get(&(Tree::Counts, tree.name().as_bytes().to_vec())).map(Vec::as_slice)) as usize)
    }

    fn recount(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.lock().keys().filter(|(t, _)| *t == tree).count())
    }

    fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut map = self.lock();
        let mut deltas = CountDeltas::default();
        for w in writes {
            let existed = match &w.value {
                Some(v) => map.insert((w.tree, w.key.clone()), v.clone()).is_some(),
                None => map.remove(&(w.tree, w.key.clone())).is_some(),
            };
            deltas.note(w.tree, existed, w.value.is_some());
        }
        for (name, delta) in deltas.changed() {
            let key = (Tree::Counts, name.to_vec());
            let moved = moved_count(map.get(&key).map(Vec::as_slice), delta);
            map.insert(key, moved.to_vec());
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
