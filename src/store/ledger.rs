//! How the ledger is kept: the entries about one lead in one value (its
//! file), the rest (scorecard escalations, digests) one key each.
//!
//! Every action about a lead has a key starting with the lead's segment
//! (`{lead}:…`, see `engine::keys`), and a lead collects a few of them: the
//! SLA-field write-backs, reminders, escalations and the notes closing
//! them. One key each, they were the largest tree of a large store, and
//! sled's memory follows the number of keys it holds (see [`super::activities`]).
//! Filed per lead they are one key a lead, and the evaluation of a lead
//! reads its ledger with one point read instead of a range scan.
//!
//! A [`super::Batch`] records confirmed entries; [`super::Store::commit`]
//! reads the files they go into, adds them and writes the files back in the
//! same transaction as the rest of the batch. That read is outside the
//! transaction: commits are serialised by the store (`Store::commit`).

use std::collections::BTreeMap;

use super::activities::read_once;
use super::backend::{Backend, Tree, Write};
use super::codec::encode;
use super::{LedgerEntry, StoreError};

/// Key prefixes of actions about no lead (`sc:` scorecard escalations,
/// `dg:` digests, `ws:` weekly summaries): kept one key each, since a file
/// per prefix would grow for ever.
const NOT_ABOUT_A_LEAD: [&str; 3] = ["sc", "dg", "ws"];

/// The file an action key's entry is kept in: the lead segment the key
/// starts with; `None` for a key kept on its own (no `:` in it, or one of
/// [`NOT_ABOUT_A_LEAD`]). Stored keys depend on it: it never changes.
pub(super) fn file_of(key: &str) -> Option<&str> {
    let (first, _) = key.split_once(':')?;
    (!first.is_empty() && !NOT_ABOUT_A_LEAD.contains(&first)).then_some(first)
}

/// One lead's ledger: `(action key, entry)` in key order.
pub(super) type LedgerFile = Vec<(String, LedgerEntry)>;

/// The `meta` key holding how many entries the lead files hold (the
/// entries kept on their own are the `ledger` tree's keys).
pub(super) const FILED_COUNT: &str = "ledger_filed_count";

/// The entry under `key` in `file`.
pub(super) fn find<'a>(file: &'a LedgerFile, key: &str) -> Option<&'a LedgerEntry> {
    file.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().and_then(|i| file.get(i)).map(|(_, e)| e)
}

/// Files `entries` (in order: a later entry under the same key replaces an
/// earlier one) into the lead files stored in `backend`, and returns the
/// writes that store the files and how many entries were added.
pub(super) fn resolve(
    backend: &dyn Backend,
    entries: &[(String, LedgerEntry)],
) -> Result<(Vec<Write>, i64), StoreError> {
    let mut files: BTreeMap<&str, LedgerFile> = BTreeMap::new();
    let mut added: i64 = 0;
    for (key, entry) in entries {
        let Some(name) = file_of(key) else { continue };
        let file = read_once(&mut files, backend, Tree::LeadLedger, name, name.as_bytes())?;
        match file.binary_search_by(|(k, _)| k.cmp(key)) {
            Ok(i) => file[i].1 = entry.clone(),
            Err(i) => {
                file.insert(i, (key.clone(), entry.clone()));
                added += 1;
            }
        }
    }
    let mut writes = Vec::with_capacity(files.len());
    for (name, file) in files {
        let key = name.as_bytes().to_vec();
        let value = Some(encode(Tree::LeadLedger, &key, &file)?);
        writes.push(Write { tree: Tree::LeadLedger, key, value });
    }
    Ok((writes, added))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_keys_are_filed_by_their_lead_and_the_rest_kept_alone() {
        // Stored keys depend on these: a change here is a new schema.
        assert_eq!(file_of("00Q5g00000AbCdEFGH:ft:1772460000:esc1:v3"), Some("00Q5g00000AbCdEFGH"));
        assert_eq!(file_of("00Q5g00000AbCdEFGH:ft:1772460000:rem:v1:done"), Some("00Q5g00000AbCdEFGH"));
        assert_eq!(file_of("1234:sla:ab12cd:v2"), Some("1234"));
        assert_eq!(file_of("h0123456789abcdef:ft:1:rem:v1"), Some("h0123456789abcdef"));
        // The keys of actions about no lead, as their makers build them.
        let week = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let leader = "005Hs00000A0VpSAAV";
        let scorecard = crate::engine::keys::scorecard_key("sales.first_touch_in_window", week, leader, 1);
        let digest = crate::notify::digest_key(leader, week, crate::notify::DigestKind::Rep, 1);
        let summary = crate::notify::summary_key(week, "slack", 1);
        for key in [scorecard, digest, summary] {
            assert_eq!(file_of(key.as_str()), None, "{key:?}");
        }
        assert_eq!(file_of("done"), None);
        assert_eq!(file_of(":x"), None);
    }
}
