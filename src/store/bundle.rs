//! A lead's bundle: its record, its evaluation, its activities and its
//! ledger file kept in one value of one sled tree, under the lead's id.
//!
//! sled's memory follows the number of keys it holds, not the bytes: a
//! leaf node holds at most 16 keys, and every node's page entry stays in
//! memory once the database is open (see `store::activities`). Four trees
//! keyed by lead id held four keys a lead; bundled, they hold one. The
//! store above still sees four trees ([`Tree::Leads`], [`Tree::States`],
//! [`Tree::Activities`], [`Tree::LeadLedger`]): [`super::backend`] reads a
//! tree's value as its section of the bundle under the same key, and a
//! commit writing sections rewrites the bundles they are in. Each
//! section's bytes are exactly the value the tree would hold on its own
//! (framed by `store::codec`), so nothing above the backend changes. The
//! tests' memory backend keeps the four trees apart: bundles are how sled
//! holds them.
//!
//! The format: a bundle is a sequence of sections in ascending order, each
//! `[section: u8][length: u32, little-endian][bytes]`; a section appears at
//! most once, and a bundle without sections is not stored.

use super::backend::Tree;

/// The trees kept in bundles, in section order: the section number of a
/// tree is its position here plus one. Stored bundles depend on it: append
/// only.
pub(super) const BUNDLED: [Tree; 4] = [Tree::Leads, Tree::States, Tree::Activities, Tree::LeadLedger];

/// The sled tree holding the bundles.
pub(super) const TREE_NAME: &str = "lead_bundles";

/// Where `tree`'s section sits in [`Sections`] (its position in
/// [`BUNDLED`]), `None` for a tree kept on its own.
pub(super) fn slot_of(tree: Tree) -> Option<usize> {
    BUNDLED.iter().position(|t| *t == tree)
}

/// A bundle's sections by slot (slot 0 is section 1).
pub(super) type Sections<'a> = [Option<&'a [u8]>; BUNDLED.len()];

/// What a bundle holds, or what is wrong with it.
pub(super) fn sections(bundle: &[u8]) -> Result<Sections<'_>, String> {
    let mut out: Sections<'_> = [None; BUNDLED.len()];
    let mut rest = bundle;
    let mut last = 0u8;
    while let Some((&section, after)) = rest.split_first() {
        if section <= last || usize::from(section) > BUNDLED.len() {
            return Err(format!("bundle section {section} after section {last}"));
        }
        let (len, after) = after.split_at_checked(4).ok_or("bundle cut short in a section's length")?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (bytes, after) = after
            .split_at_checked(len)
            .ok_or_else(|| format!("bundle section {section} claims {len} bytes, {} are left", after.len()))?;
        out[usize::from(section) - 1] = Some(bytes);
        last = section;
        rest = after;
    }
    Ok(out)
}

/// The bundle holding `sections`; `None` when none is present.
pub(super) fn bundle<S: AsRef<[u8]>>(sections: &[Option<S>]) -> Option<Vec<u8>> {
    if sections.iter().all(Option::is_none) {
        return None;
    }
    let size: usize = sections.iter().flatten().map(|s| 5 + s.as_ref().len()).sum();
    let mut out = Vec::with_capacity(size);
    for (i, bytes) in sections.iter().enumerate() {
        let Some(bytes) = bytes else { continue };
        let bytes = bytes.as_ref();
        out.push(i as u8 + 1);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_tree_has_its_own_section() {
        for (i, tree) in BUNDLED.into_iter().enumerate() {
            assert_eq!(slot_of(tree), Some(i));
        }
        assert_eq!(slot_of(Tree::Deadlines), None);
        assert_eq!(slot_of(Tree::ActivityBuckets), None);
    }

    #[test]
    fn sections_read_back_as_written() {
        let cases: [[Option<&[u8]>; 4]; 5] = [
            [Some(b"lead"), Some(b"state"), Some(b"acts"), Some(b"ledger")],
            [Some(b"lead"), None, None, None],
            [None, None, Some(b"acts"), None],
            [None, Some(b""), None, Some(&[0u8; 300])],
            [Some(&[7u8; 70_000]), None, Some(b"x"), None],
        ];
        for case in cases {
            let stored = bundle(&case).unwrap();
            assert_eq!(sections(&stored).unwrap(), case);
        }
        assert_eq!(bundle::<&[u8]>(&[None, None, None, None]), None);
        // An empty section is still a section.
        assert!(bundle(&[None, Some(b""), None, None]).is_some());
    }

    #[test]
    fn a_damaged_bundle_is_named_not_misread() {
        let good = bundle(&[Some(&b"lead"[..]), Some(b"state"), None, None]).unwrap();
        for cut in 1..good.len() {
            // Every cut either fails or (at a section boundary) reads as
            // fewer sections, never as different bytes.
            if let Ok(read) = sections(&good[..cut]) {
                assert!(read[0].is_none_or(|b| b == b"lead") && read[1].is_none(), "cut at {cut}: {read:?}");
            }
        }
        assert!(sections(&good[..3]).unwrap_err().contains("cut short"));
        assert!(sections(&good[..7]).unwrap_err().contains("claims 4 bytes"));
        let mut repeated = good.clone();
        repeated.extend_from_slice(&good[..9]);
        assert!(sections(&repeated).unwrap_err().contains("section 1 after section 2"));
        assert!(sections(&[9, 0, 0, 0, 0]).unwrap_err().contains("section 9"));
    }
}
