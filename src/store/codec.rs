//! How a value is laid out in the store: one format byte, then the value
//! — MessagePack for leads, evaluations, activities and ledger entries
//! (the bulk of a store, read for every lead evaluated), JSON for the rest
//! — as it is, LZ4-compressed, or LZ4-compressed against a dictionary built
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
//! MessagePack keeps JSON's model (struct fields by name, so a field added
//! later with `serde(default)` reads back from an older value) without its
//! text: no escapes to scan, no digits to parse, and timestamps as numbers
//! rather than dates to parse (`handoff_model::stamp`). Side by side at
//! 100,000 generated Salesforce leads (`cargo bench --bench scale`), the
//! stored leads, evaluations and activities came out 14–20 % smaller than
//! as JSON against the JSON dictionaries, the whole state directory 11 %,
//! and judging every lead again took 13–15 % less CPU. Values written as
//! JSON by an older handoff still read back (their format bytes are kept),
//! and are rewritten as MessagePack when a store is upgraded.
//!
//! **A dictionary never changes once released**: every value written with
//! it needs exactly its bytes to be read back. A better dictionary is a new
//! file under a new format byte, beside the old one (the test
//! `dictionaries_are_frozen` holds each to its checksum).

use std::borrow::Cow;

use super::{show_key, StoreError, Tree};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// JSON as it is …
pub(super) const JSON_FORMAT: u8 = 1;
/// … or compressed with LZ4 (block format, the decompressed size first as
/// a little-endian u32), for values of [`COMPRESS_FROM_BYTES`] or more …
pub(super) const LZ4_JSON_FORMAT: u8 = 2;
/// … or compressed the same way against one of the [`DICTIONARIES`], which
/// the format byte names. Schema 5 and earlier wrote these four; they are
/// still read.
const LEADS_V1_FORMAT: u8 = 3;
const STATES_V1_FORMAT: u8 = 4;
const ACTIVITIES_V1_FORMAT: u8 = 5;
const LEDGER_V1_FORMAT: u8 = 6;
/// MessagePack (struct fields by name) as it is, compressed with LZ4 …
const BINARY_FORMAT: u8 = 7;
const LZ4_BINARY_FORMAT: u8 = 8;
/// … or compressed against its tree's dictionary.
const LEADS_V2_FORMAT: u8 = 9;
const STATES_V2_FORMAT: u8 = 10;
const ACTIVITIES_V2_FORMAT: u8 = 11;
const LEDGER_V2_FORMAT: u8 = 12;

/// What the bytes behind a format byte are, once unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Json,
    Binary,
}

/// Format byte, the tree whose values it was built from, what its values
/// are, and its bytes.
///
/// The JSON dictionaries (`*.jsonl`) hold one JSON value a line, every 97th
/// value of that tree (3 leads, 4 evaluations, 6 activities or ledger
/// entries per CRM) from the state directories of two `demo::Simulation`s
/// (600 leads, 6 days, seed 42), one per CRM — generated data, no real
/// org's. The MessagePack ones (`*.msgpack`) are the same values, each read
/// as its type (`StoredLead`, `LeadState`, `Activity`, `LedgerEntry`) and
/// written as the store writes it, one after another.
const DICTIONARIES: [(u8, Tree, Body, &[u8]); 8] = [
    (LEADS_V1_FORMAT, Tree::Leads, Body::Json, include_bytes!("dictionaries/leads.jsonl")),
    (STATES_V1_FORMAT, Tree::States, Body::Json, include_bytes!("dictionaries/states.jsonl")),
    (ACTIVITIES_V1_FORMAT, Tree::Activities, Body::Json, include_bytes!("dictionaries/activities.jsonl")),
    (LEDGER_V1_FORMAT, Tree::Ledger, Body::Json, include_bytes!("dictionaries/ledger.jsonl")),
    (LEADS_V2_FORMAT, Tree::Leads, Body::Binary, include_bytes!("dictionaries/leads.msgpack")),
    (STATES_V2_FORMAT, Tree::States, Body::Binary, include_bytes!("dictionaries/states.msgpack")),
    (ACTIVITIES_V2_FORMAT, Tree::Activities, Body::Binary, include_bytes!("dictionaries/activities.msgpack")),
    (LEDGER_V2_FORMAT, Tree::Ledger, Body::Binary, include_bytes!("dictionaries/ledger.msgpack")),
];

/// Without a dictionary, smaller values are kept as they are: compressing
/// them gains next to nothing.
const COMPRESS_FROM_BYTES: usize = 128;
/// No value handoff writes comes near this; a larger size read back is damage.
const MAX_VALUE_BYTES: usize = 64 << 20;

/// Whether `tree`'s values are written as MessagePack.
fn is_binary_tree(tree: Tree) -> bool {
    matches!(tree, Tree::Leads | Tree::States | Tree::Activities | Tree::Ledger | Tree::LeadLedger)
}

/// The body `tree`'s values are written as now.
fn body_for(tree: Tree) -> Body {
    if is_binary_tree(tree) {
        Body::Binary
    } else {
        Body::Json
    }
}

/// The dictionary `body` values of `tree` are written with, if it has one.
fn dictionary_for(tree: Tree, body: Body) -> Option<(u8, &'static [u8])> {
    // A lead's ledger file is a list of ledger entries: their dictionary
    // serves it.
    let tree = if tree == Tree::LeadLedger { Tree::Ledger } else { tree };
    DICTIONARIES.iter().find(|(_, t, b, _)| *t == tree && *b == body).map(|(format, _, _, bytes)| (*format, *bytes))
}

fn dictionary(format: u8) -> Option<(Body, &'static [u8])> {
    DICTIONARIES.iter().find(|(f, _, _, _)| *f == format).map(|(_, _, body, bytes)| (*body, *bytes))
}

pub(super) fn encode<T: Serialize>(tree: Tree, key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
    let err = |e: &dyn std::fmt::Display| StoreError::Format {
        tree: tree.name(),
        key: show_key(key),
        message: format!("cannot encode: {e}"),
    };
    match body_for(tree) {
        Body::Json => Ok(framed(tree, &serde_json::to_vec(value).map_err(|e| err(&e))?)),
        Body::Binary => Ok(pack(tree, Body::Binary, &rmp_serde::to_vec_named(value).map_err(|e| err(&e))?)),
    }
}

/// `body`, a value of `tree` already encoded as MessagePack, as
/// [`encode`] would have stored it.
pub(super) fn packed(tree: Tree, body: &[u8]) -> Vec<u8> {
    debug_assert!(is_binary_tree(tree), "{} is not written as MessagePack", tree.name());
    pack(tree, Body::Binary, body)
}

/// `json` behind its format byte, in the smallest framing `tree` allows
/// for JSON (how the trees not written as MessagePack are written).
pub(super) fn framed(tree: Tree, json: &[u8]) -> Vec<u8> {
    pack(tree, Body::Json, json)
}

/// `body` (of kind `kind`) behind its format byte, against `tree`'s
/// dictionary when that makes it smaller.
fn pack(tree: Tree, kind: Body, body: &[u8]) -> Vec<u8> {
    if let Some((format, dict)) = dictionary_for(tree, kind) {
        let packed = lz4_flex::block::compress_prepend_size_with_dict(body, dict);
        if packed.len() < body.len() {
            return with_format(format, &packed);
        }
    }
    let (plain, lz4) = match kind {
        Body::Json => (JSON_FORMAT, LZ4_JSON_FORMAT),
        Body::Binary => (BINARY_FORMAT, LZ4_BINARY_FORMAT),
    };
    if body.len() < COMPRESS_FROM_BYTES {
        return with_format(plain, body);
    }
    with_format(lz4, &lz4_flex::compress_prepend_size(body))
}

/// `body` behind its format byte.
fn with_format(format: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(format);
    out.extend_from_slice(body);
    out
}

/// `json` framed as handoff did before it had dictionaries.
#[cfg(test)]
pub(super) fn framed_without_dictionary(json: &[u8]) -> Vec<u8> {
    if json.len() < COMPRESS_FROM_BYTES {
        return with_format(JSON_FORMAT, json);
    }
    with_format(LZ4_JSON_FORMAT, &lz4_flex::compress_prepend_size(json))
}

pub(super) fn decode<T: DeserializeOwned>(tree: Tree, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let err = |message: String| StoreError::Format { tree: tree.name(), key: show_key(key), message };
    let (body, value) = unpack(bytes).map_err(err)?;
    match body {
        Body::Json => serde_json::from_slice(&value).map_err(|e| err(format!("unreadable value: {e}"))),
        Body::Binary => rmp_serde::from_slice(&value).map_err(|e| err(format!("unreadable value: {e}"))),
    }
}

/// The MessagePack of a value written as MessagePack, decompressed;
/// `None` for a value written as JSON (by an older handoff).
pub(super) fn binary_body(bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
    match unpack(bytes)? {
        (Body::Binary, body) => Ok(Some(body.into_owned())),
        (Body::Json, _) => Ok(None),
    }
}

/// The value behind the format byte, decompressed, and what it is.
fn unpack(bytes: &[u8]) -> Result<(Body, Cow<'_, [u8]>), String> {
    let (format, body) = bytes.split_first().ok_or("empty value")?;
    let claimed = body.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).unwrap_or(u32::MAX);
    match *format {
        JSON_FORMAT => Ok((Body::Json, Cow::Borrowed(body))),
        BINARY_FORMAT => Ok((Body::Binary, Cow::Borrowed(body))),
        other if is_compressed(other) && claimed as usize > MAX_VALUE_BYTES => {
            Err(format!("compressed value claims {claimed} bytes: damaged"))
        }
        LZ4_JSON_FORMAT => whole(lz4_flex::decompress_size_prepended(body), claimed).map(|v| (Body::Json, v.into())),
        LZ4_BINARY_FORMAT => {
            whole(lz4_flex::decompress_size_prepended(body), claimed).map(|v| (Body::Binary, v.into()))
        }
        other => match dictionary(other) {
            Some((kind, dict)) => whole(lz4_flex::block::decompress_size_prepended_with_dict(body, dict), claimed)
                .map(|v| (kind, v.into())),
            None => Err(format!(
                "value format {other} is unknown to this handoff (it reads {JSON_FORMAT} to {}); \
                 was the state directory written by a newer handoff?",
                DICTIONARIES.iter().map(|(f, _, _, _)| *f).max().unwrap_or(LZ4_BINARY_FORMAT)
            )),
        },
    }
}

/// A decompressed value, unless decompressing failed or came out shorter
/// than the size stored in front of it (a value cut short can decompress
/// without error).
fn whole(unpacked: Result<Vec<u8>, lz4_flex::block::DecompressError>, claimed: u32) -> Result<Vec<u8>, String> {
    match unpacked {
        Ok(value) if value.len() == claimed as usize => Ok(value),
        Ok(value) => Err(format!("damaged compressed value: {} bytes of the {claimed} it claims", value.len())),
        Err(e) => Err(format!("damaged compressed value: {e}")),
    }
}

/// The JSON of a value written as JSON, whatever its framing.
pub(super) fn plain_json(bytes: &[u8]) -> Result<Vec<u8>, String> {
    match unpack(bytes)? {
        (Body::Json, json) => Ok(json.into_owned()),
        (Body::Binary, _) => Err("a MessagePack value in a tree written as JSON: damaged".to_string()),
    }
}

/// A stored value decompressed, JSON or MessagePack as it was written (its
/// text — names, ids, words — reads as it is in either).
pub(super) fn unpacked(bytes: &[u8]) -> Result<Vec<u8>, String> {
    unpack(bytes).map(|(_, body)| body.into_owned())
}

/// Whether a value starting with `format` is compressed (the store's own
/// counters and marks are raw bytes, not framed: only what this says is
/// compressed may be unpacked).
pub(super) fn is_compressed(format: u8) -> bool {
    format == LZ4_JSON_FORMAT || format == LZ4_BINARY_FORMAT || dictionary(format).is_some()
}

/// Whether a value starting with `format` is MessagePack, plain or not.
#[cfg(test)]
pub(super) fn is_binary(format: u8) -> bool {
    format == BINARY_FORMAT
        || format == LZ4_BINARY_FORMAT
        || dictionary(format).is_some_and(|(body, _)| body == Body::Binary)
}

/// Something done with a value read as its tree's type.
trait WithType {
    type Out;
    fn with<T: DeserializeOwned + Serialize>(self, tree: Tree, key: &[u8], bytes: &[u8]) -> Self::Out;
}

/// `action` on `bytes` read as the type `tree` holds under `key`, for the
/// trees written as MessagePack (`None` for the others).
fn by_type<A: WithType>(tree: Tree, key: &[u8], bytes: &[u8], action: A) -> Option<A::Out> {
    use super::{activities, ledger, LeadState, LedgerEntry, StoredLead};
    use handoff_model::Activity;
    Some(match tree {
        Tree::Leads => action.with::<StoredLead>(tree, key, bytes),
        Tree::States => action.with::<LeadState>(tree, key, bytes),
        // Schema 3 kept one activity a key; later schemas a lead's file.
        Tree::Activities if activities::is_schema_three_key(key) => action.with::<Activity>(tree, key, bytes),
        Tree::Activities => action.with::<Vec<Activity>>(tree, key, bytes),
        Tree::Ledger => action.with::<LedgerEntry>(tree, key, bytes),
        Tree::LeadLedger => action.with::<ledger::LedgerFile>(tree, key, bytes),
        _ => return None,
    })
}

/// Reads a value and writes it as it would be written now.
struct Rewrite;

impl WithType for Rewrite {
    type Out = Result<Vec<u8>, StoreError>;
    fn with<T: DeserializeOwned + Serialize>(self, tree: Tree, key: &[u8], bytes: &[u8]) -> Self::Out {
        encode(tree, key, &decode::<T>(tree, key, bytes)?)
    }
}

/// A stored value of `tree` as the JSON an older handoff wrote for it:
/// read as its type, so that its timestamps come out as text.
#[cfg(test)]
pub(super) fn as_older_json(tree: Tree, key: &[u8], bytes: &[u8]) -> Vec<u8> {
    struct AsJson;
    impl WithType for AsJson {
        type Out = Vec<u8>;
        fn with<T: DeserializeOwned + Serialize>(self, tree: Tree, key: &[u8], bytes: &[u8]) -> Vec<u8> {
            serde_json::to_vec(&decode::<T>(tree, key, bytes).unwrap()).unwrap()
        }
    }
    by_type(tree, key, bytes, AsJson).unwrap_or_else(|| plain_json(bytes).unwrap())
}

/// Whether `bytes` is already framed as it would be written now (an
/// upgrade rewrites the values that are not).
pub(super) fn is_current(tree: Tree, bytes: &[u8]) -> bool {
    let Some(&found) = bytes.first() else { return false };
    let kind = body_for(tree);
    match dictionary_for(tree, kind) {
        Some((format, _)) if found == format => return true,
        _ => {}
    }
    match kind {
        // A small value the dictionary did not shrink stays plain.
        Body::Binary => found == BINARY_FORMAT || found == LZ4_BINARY_FORMAT,
        Body::Json => match found {
            JSON_FORMAT => bytes.len() - 1 < COMPRESS_FROM_BYTES,
            LZ4_JSON_FORMAT => true,
            _ => false,
        },
    }
}

/// `bytes` (the value of `tree` under `key`, in any framing) framed as it
/// would be written now. A value of a tree written as MessagePack is read
/// as its type and written again (a record an older handoff wrote as JSON
/// comes out with its timestamps as numbers); any other is framed anew as
/// it is.
pub(super) fn reframed(tree: Tree, key: &[u8], bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    if let Some(rewritten) = by_type(tree, key, bytes, Rewrite) {
        return rewritten;
    }
    let json =
        plain_json(bytes).map_err(|message| StoreError::Format { tree: tree.name(), key: show_key(key), message })?;
    Ok(framed(tree, &json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LeadState, LedgerEntry, StoredLead};
    use handoff_model::Activity;

    /// FNV-1a: a checksum with no dependency, enough to notice an edit.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
    }

    /// Values written with a dictionary can only be read with the same
    /// bytes: a dictionary is never edited, a new one gets a new format byte.
    #[test]
    fn dictionaries_are_frozen() {
        let sums: Vec<(u8, usize, u64)> = DICTIONARIES.iter().map(|(f, _, _, d)| (*f, d.len(), fnv1a(d))).collect();
        assert_eq!(
            sums,
            [
                (3, 12278, 0x2771_5580_195e_2ec4),
                (4, 18163, 0x0cf1_86e5_8dc1_d8c8),
                (5, 3156, 0x00f0_4b46_3f06_0e56),
                (6, 2240, 0x2a9b_1559_4e1c_599a),
                (9, 8695, 0x8980_156d_4cd2_9c54),
                (10, 13119, 0xc460_a744_5426_fb1f),
                (11, 2227, 0x71ba_11d4_cd4d_ad43),
                (12, 1714, 0xe444_3add_8214_eb61),
            ],
            "a released dictionary changed: values written with it would no longer read back"
        );
    }

    /// The dictionary of `tree`'s JSON values, one a line.
    fn json_lines(tree: Tree) -> Vec<&'static str> {
        let (_, dict) = dictionary_for(tree, Body::Json).unwrap();
        std::str::from_utf8(dict).unwrap().lines().collect()
    }

    /// `json`, a value of `tree`, read as its type and written as the
    /// store writes it now (MessagePack) — and read back from that.
    fn as_binary(tree: Tree, json: &str) -> Vec<u8> {
        fn via<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(json: &str) -> Vec<u8> {
            let value: T = serde_json::from_str(json).unwrap();
            let binary = rmp_serde::to_vec_named(&value).unwrap();
            assert_eq!(rmp_serde::from_slice::<T>(&binary).unwrap(), value);
            binary
        }
        match tree {
            Tree::Leads => via::<StoredLead>(json),
            Tree::States => via::<LeadState>(json),
            Tree::Activities => via::<Activity>(json),
            Tree::Ledger => via::<LedgerEntry>(json),
            other => panic!("no dictionary for {}", other.name()),
        }
    }

    const DICTIONARY_TREES: [Tree; 4] = [Tree::Leads, Tree::States, Tree::Activities, Tree::Ledger];

    #[test]
    fn every_dictionary_holds_values_of_its_tree() {
        /// The binary dictionary is the JSON one's values, each read as
        /// its type and written as MessagePack, one after another.
        fn same_values<T: DeserializeOwned + PartialEq + std::fmt::Debug>(tree: Tree) {
            let lines = json_lines(tree);
            let (_, binary) = dictionary_for(tree, Body::Binary).unwrap();
            let mut reader = rmp_serde::Deserializer::new(binary);
            for line in &lines {
                let json: T = serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}", tree.name()));
                assert_eq!(<T as serde::Deserialize>::deserialize(&mut reader).unwrap(), json, "{}", tree.name());
            }
            assert!(reader.get_ref().is_empty(), "{}: nothing after the values", tree.name());
        }
        same_values::<StoredLead>(Tree::Leads);
        same_values::<LeadState>(Tree::States);
        same_values::<Activity>(Tree::Activities);
        same_values::<LedgerEntry>(Tree::Ledger);
        for (_, tree, _, dict) in DICTIONARIES {
            // LZ4 looks back 64 KiB at most; a longer dictionary's head would be dead weight.
            assert!(dict.len() <= 64 << 10, "{}", tree.name());
        }
    }

    /// A value like a dictionary's line, not one of its own.
    fn like(line: &str) -> String {
        line.replace("2026-03-0", "2026-04-1").replace("00Q", "00R")
    }

    /// Each dictionary's own values: framed with it, they read back equal
    /// and come out far smaller than LZ4 alone makes them.
    #[test]
    fn a_dictionary_shrinks_the_values_of_its_tree_and_reads_back() {
        for tree in DICTIONARY_TREES {
            let binary = as_binary(tree, &like(json_lines(tree)[1]));
            let bytes = pack(tree, Body::Binary, &binary);
            assert_eq!(Some(bytes[0]), dictionary_for(tree, Body::Binary).map(|(f, _)| f), "{}", tree.name());
            assert_eq!(unpacked(&bytes).unwrap(), binary);
            assert!(is_current(tree, &bytes));
            let without = with_format(LZ4_BINARY_FORMAT, &lz4_flex::compress_prepend_size(&binary));
            assert!(
                bytes.len() * 2 < without.len(),
                "{}: {} bytes with the dictionary, {} without",
                tree.name(),
                bytes.len(),
                without.len()
            );
        }
    }

    /// What an older handoff wrote (JSON, with its dictionary or without)
    /// reads back as it was, is not current, and is rewritten as
    /// MessagePack that reads back the same.
    #[test]
    fn json_an_older_handoff_wrote_reads_back_and_is_rewritten_as_binary() {
        fn check<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(tree: Tree) {
            // Single activities are schema 3's, under `lead NUL activity`.
            let key: &[u8] = if tree == Tree::Activities { b"L1\0A1" } else { b"k" };
            let json = like(json_lines(tree)[2]);
            let value: T = serde_json::from_str(&json).unwrap();
            for old in [pack(tree, Body::Json, json.as_bytes()), framed_without_dictionary(json.as_bytes())] {
                assert_eq!(decode::<T>(tree, key, &old).unwrap(), value, "{}", tree.name());
                assert!(!is_current(tree, &old), "{}", tree.name());
                let new = reframed(tree, key, &old).unwrap();
                assert!(is_current(tree, &new) && is_binary(new[0]), "{}", tree.name());
                assert_eq!(decode::<T>(tree, key, &new).unwrap(), value, "{}", tree.name());
                assert_eq!(reframed(tree, key, &new).unwrap(), new, "{}: rewritten once", tree.name());
                let back = as_older_json(tree, key, &new);
                assert_eq!(serde_json::from_slice::<T>(&back).unwrap(), value, "{}: as JSON", tree.name());
            }
        }
        check::<StoredLead>(Tree::Leads);
        check::<LeadState>(Tree::States);
        check::<Activity>(Tree::Activities);
        check::<LedgerEntry>(Tree::Ledger);
    }

    /// The trees written as MessagePack are the trees whose type
    /// `by_type` knows (an upgrade rewrites their values through it).
    #[test]
    fn every_binary_tree_has_its_type() {
        struct Nothing;
        impl WithType for Nothing {
            type Out = ();
            fn with<T: DeserializeOwned + Serialize>(self, _: Tree, _: &[u8], _: &[u8]) {}
        }
        for tree in Tree::ALL {
            assert_eq!(is_binary_tree(tree), by_type(tree, b"k", b"", Nothing).is_some(), "{}", tree.name());
        }
    }

    #[test]
    fn a_value_the_dictionary_does_not_shrink_is_kept_plain() {
        assert_eq!(pack(Tree::Ledger, Body::Binary, b"\x07"), b"\x07\x07");
        assert_eq!(framed(Tree::Meta, b"2"), b"\x012");
        let small = encode(Tree::Ledger, b"k", &7u8).unwrap();
        assert_eq!(small, b"\x07\x07");
        assert_eq!(decode::<u8>(Tree::Ledger, b"k", &small).unwrap(), 7);
    }

    #[test]
    fn damaged_and_unknown_values_are_named_not_misread() {
        let binary = as_binary(Tree::States, json_lines(Tree::States)[0]);
        let mut bytes = pack(Tree::States, Body::Binary, &binary);
        bytes.truncate(bytes.len() / 2);
        assert!(plain_json(&bytes).unwrap_err().contains("damaged"));
        let err = decode::<LeadState>(Tree::States, b"L1", &bytes).unwrap_err().to_string();
        assert!(err.contains("states") && err.contains("L1") && err.contains("damaged"), "{err}");
        let err = plain_json(b"\x0d{}").unwrap_err();
        assert!(err.contains("format 13") && err.contains("newer handoff"), "{err}");
        let err = plain_json(b"\x03\xff\xff\xff\x7f").unwrap_err();
        assert!(err.contains("claims"), "{err}");
        // MessagePack that is not the tree's type is named, not misread.
        let err = decode::<LeadState>(Tree::States, b"L1", &[BINARY_FORMAT, 0x07]).unwrap_err().to_string();
        assert!(err.contains("unreadable value"), "{err}");
    }
}
