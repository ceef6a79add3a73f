//! How a value is laid out in the store: one format byte, then JSON —
//! as it is, LZ4-compressed, or LZ4-compressed against a dictionary built
//! into handoff.
//!
//! Most of a stored lead, evaluation, activity or ledger entry is the same
//! from one value to the next: field names, enum words, the shape of an id
//! and of a timestamp. LZ4 on its own finds little of that in one value of
//! a few hundred bytes; with a dictionary of typical values in front, it
//! finds most of it. On a generated org (Salesforce and HubSpot) that cuts
//! leads from about 990 to 500 bytes, evaluations from 1,010 to 460,
//! activities from 220 to 80 and ledger entries from 140 to 55, for a few
//! microseconds more a write.
//!
//! **A dictionary never changes once released**: every value written with
//! it needs exactly its bytes to be read back. A better dictionary is a new
//! file under a new format byte, beside the old one (the test
//! `dictionaries_are_frozen` holds each to its checksum).

use super::{show_key, StoreError, Tree};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// JSON as it is …
pub(super) const JSON_FORMAT: u8 = 1;
/// … or compressed with LZ4 (block format, the decompressed size first as
/// a little-endian u32), for values of [`COMPRESS_FROM_BYTES`] or more …
pub(super) const LZ4_JSON_FORMAT: u8 = 2;
/// … or compressed the same way against one of the [`DICTIONARIES`], which
/// the format byte names.
const LEADS_V1_FORMAT: u8 = 3;
const STATES_V1_FORMAT: u8 = 4;
const ACTIVITIES_V1_FORMAT: u8 = 5;
const LEDGER_V1_FORMAT: u8 = 6;

/// Format byte, the tree whose values it was built from, and its bytes:
/// one JSON value a line, every 97th value of that tree (3 leads, 4
/// evaluations, 6 activities or ledger entries per CRM) from the state
/// directories of two `demo::Simulation`s (600 leads, 6 days, seed 42),
/// one per CRM — generated data, no real org's.
const DICTIONARIES: [(u8, Tree, &[u8]); 4] = [
    (LEADS_V1_FORMAT, Tree::Leads, include_bytes!("dictionaries/leads.jsonl")),
    (STATES_V1_FORMAT, Tree::States, include_bytes!("dictionaries/states.jsonl")),
    (ACTIVITIES_V1_FORMAT, Tree::Activities, include_bytes!("dictionaries/activities.jsonl")),
    (LEDGER_V1_FORMAT, Tree::Ledger, include_bytes!("dictionaries/ledger.jsonl")),
];

/// Without a dictionary, smaller JSON is kept as it is: compressing it
/// gains next to nothing.
const COMPRESS_FROM_BYTES: usize = 128;
/// No value handoff writes comes near this; a larger size read back is damage.
const MAX_VALUE_BYTES: usize = 64 << 20;

/// The dictionary values of `tree` are written with, if it has one.
fn dictionary_for(tree: Tree) -> Option<(u8, &'static [u8])> {
    // A lead's ledger file is a list of ledger entries: their dictionary
    // serves it.
    let tree = if tree == Tree::LeadLedger { Tree::Ledger } else { tree };
    DICTIONARIES.iter().find(|(_, t, _)| *t == tree).map(|(format, _, bytes)| (*format, *bytes))
}

fn dictionary(format: u8) -> Option<&'static [u8]> {
    DICTIONARIES.iter().find(|(f, _, _)| *f == format).map(|(_, _, bytes)| *bytes)
}

pub(super) fn encode<T: Serialize>(tree: Tree, key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(value).map_err(|e| StoreError::Format {
        tree: tree.name(),
        key: show_key(key),
        message: format!("cannot encode: {e}"),
    })?;
    Ok(framed(tree, &json))
}

/// `json` behind its format byte, in the smallest framing `tree` allows.
pub(super) fn framed(tree: Tree, json: &[u8]) -> Vec<u8> {
    if let Some((format, dict)) = dictionary_for(tree) {
        let packed = lz4_flex::block::compress_prepend_size_with_dict(json, dict);
        if packed.len() < json.len() {
            return with_format(format, &packed);
        }
    }
    framed_without_dictionary(json)
}

/// `body` behind its format byte.
fn with_format(format: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(format);
    out.extend_from_slice(body);
    out
}

/// `json` framed as handoff did before it had dictionaries (still how
/// trees without one are written).
pub(super) fn framed_without_dictionary(json: &[u8]) -> Vec<u8> {
    if json.len() < COMPRESS_FROM_BYTES {
        return with_format(JSON_FORMAT, json);
    }
    with_format(LZ4_JSON_FORMAT, &lz4_flex::compress_prepend_size(json))
}

pub(super) fn decode<T: DeserializeOwned>(tree: Tree, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let err = |message: String| StoreError::Format { tree: tree.name(), key: show_key(key), message };
    let json = |json: &[u8]| serde_json::from_slice(json).map_err(|e| err(format!("unreadable value: {e}")));
    match bytes.split_first() {
        Some((&JSON_FORMAT, plain)) => json(plain),
        _ => json(&plain_json(bytes).map_err(err)?),
    }
}

/// The JSON inside a stored value, whatever its framing.
pub(super) fn plain_json(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (format, body) = bytes.split_first().ok_or("empty value")?;
    let claimed = body.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).unwrap_or(u32::MAX);
    let damaged = |e: &dyn std::fmt::Display| format!("damaged compressed value: {e}");
    match *format {
        JSON_FORMAT => Ok(body.to_vec()),
        other if is_compressed(other) && claimed as usize > MAX_VALUE_BYTES => {
            Err(format!("compressed value claims {claimed} bytes: damaged"))
        }
        LZ4_JSON_FORMAT => lz4_flex::decompress_size_prepended(body).map_err(|e| damaged(&e)),
        other => match dictionary(other) {
            Some(dict) => lz4_flex::block::decompress_size_prepended_with_dict(body, dict).map_err(|e| damaged(&e)),
            None => Err(format!(
                "value format {other} is unknown to this handoff (it reads {JSON_FORMAT} to {}); \
                 was the state directory written by a newer handoff?",
                DICTIONARIES.iter().map(|(f, _, _)| *f).max().unwrap_or(LZ4_JSON_FORMAT)
            )),
        },
    }
}

/// Whether a value starting with `format` is compressed (the store's own
/// counters and marks are raw bytes, not framed: only what this says is
/// compressed may be unpacked).
pub(super) fn is_compressed(format: u8) -> bool {
    format == LZ4_JSON_FORMAT || dictionary(format).is_some()
}

/// Whether `bytes` is already framed as [`framed`] would frame it now (an
/// upgrade rewrites the values that are not).
pub(super) fn is_current(tree: Tree, bytes: &[u8]) -> bool {
    match (dictionary_for(tree), bytes.first()) {
        (Some((format, _)), Some(found)) => *found == format,
        (None, Some(&JSON_FORMAT)) => bytes.len() - 1 < COMPRESS_FROM_BYTES,
        (None, Some(&LZ4_JSON_FORMAT)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a: a checksum with no dependency, enough to notice an edit.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
    }

    /// Values written with a dictionary can only be read with the same
    /// bytes: a dictionary is never edited, a new one gets a new format byte.
    #[test]
    fn dictionaries_are_frozen() {
        let sums: Vec<(u8, usize, u64)> = DICTIONARIES.iter().map(|(f, _, d)| (*f, d.len(), fnv1a(d))).collect();
        assert_eq!(
            sums,
            [
                (3, 12278, 0x2771_5580_195e_2ec4),
                (4, 18163, 0x0cf1_86e5_8dc1_d8c8),
                (5, 3156, 0x00f0_4b46_3f06_0e56),
                (6, 2240, 0x2a9b_1559_4e1c_599a),
            ],
            "a released dictionary changed: values written with it would no longer read back"
        );
    }

    #[test]
    fn every_dictionary_holds_json_values_of_its_tree() {
        for (_, tree, dict) in DICTIONARIES {
            let text = std::str::from_utf8(dict).unwrap();
            for line in text.lines() {
                let value: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}", tree.name()));
                assert!(value.is_object(), "{}", tree.name());
            }
            // LZ4 looks back 64 KiB at most; a longer dictionary's head would be dead weight.
            assert!(dict.len() <= 64 << 10, "{}", tree.name());
        }
    }

    /// Each dictionary's own values: framed with it, they read back equal
    /// and come out far smaller than LZ4 alone makes them.
    #[test]
    fn a_dictionary_shrinks_the_values_of_its_tree_and_reads_back() {
        for (format, tree, dict) in DICTIONARIES {
            let line = std::str::from_utf8(dict).unwrap().lines().nth(1).unwrap();
            // A value like the dictionary's, not one of its own lines.
            let value = line.replace("2026-03-0", "2026-04-1").replace("00Q", "00R");
            let bytes = framed(tree, value.as_bytes());
            assert_eq!(bytes[0], format, "{}", tree.name());
            assert_eq!(plain_json(&bytes).unwrap(), value.as_bytes());
            assert!(is_current(tree, &bytes));
            let without = framed_without_dictionary(value.as_bytes());
            assert!(!is_current(tree, &without));
            assert!(
                bytes.len() * 2 < without.len(),
                "{}: {} bytes with the dictionary, {} without",
                tree.name(),
                bytes.len(),
                without.len()
            );
        }
    }

    #[test]
    fn a_value_the_dictionary_does_not_shrink_is_kept_plain() {
        let bytes = framed(Tree::Ledger, b"7");
        assert_eq!(bytes, b"\x017");
        assert_eq!(framed(Tree::Meta, b"2"), b"\x012");
    }

    #[test]
    fn damaged_and_unknown_values_are_named_not_misread() {
        let value = std::str::from_utf8(DICTIONARIES[1].2).unwrap().lines().next().unwrap();
        let mut bytes = framed(Tree::States, value.as_bytes());
        bytes.truncate(bytes.len() / 2);
        assert!(plain_json(&bytes).unwrap_err().contains("damaged"));
        let err = plain_json(b"\x09{}").unwrap_err();
        assert!(err.contains("format 9") && err.contains("newer handoff"), "{err}");
        let err = plain_json(b"\x03\xff\xff\xff\x7f").unwrap_err();
        assert!(err.contains("claims"), "{err}");
    }
}
