//! How a [`Timestamp`] field is written: as RFC 3339 text where the format
//! is meant to be read (JSON: what `handoff state --json` and `explain`
//! print, and what an older store holds), as a number where it is binary
//! (the store's MessagePack): whole seconds since the Unix epoch, or the
//! pair `[seconds, nanoseconds]` when there is a fraction.
//!
//! Reading text back means parsing a date, a time and an offset; a number
//! is read as it is. A record carries a dozen timestamps, and a store reads
//! every lead's record and evaluation when a policy changes.
//!
//! A binary value may also hold the text (a record carried over from JSON
//! as it was): both read back. Use `#[serde(with = "stamp")]`, and for an
//! `Option` `#[serde(default, with = "stamp::option")]` (with `with`, serde
//! no longer reads a missing `Option` field as `None` by itself).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::Timestamp;

pub fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        return at.serialize(serializer);
    }
    match at.timestamp_subsec_nanos() {
        0 => serializer.serialize_i64(at.timestamp()),
        nanos => (at.timestamp(), nanos).serialize(serializer),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
    if deserializer.is_human_readable() {
        return Timestamp::deserialize(deserializer);
    }
    deserializer.deserialize_any(StampVisitor)
}

struct StampVisitor;

impl StampVisitor {
    fn at<E: de::Error>(secs: i64, nanos: u32) -> Result<Timestamp, E> {
        DateTime::<Utc>::from_timestamp(secs, nanos)
            .ok_or_else(|| E::custom(format!("timestamp {secs} s {nanos} ns is out of range")))
    }
}

impl<'de> Visitor<'de> for StampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("seconds since the epoch, [seconds, nanoseconds] or an RFC 3339 timestamp")
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Timestamp, E> {
        Self::at(secs, 0)
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Timestamp, E> {
        let secs = i64::try_from(secs).map_err(|_| E::custom(format!("timestamp {secs} s is out of range")))?;
        Self::at(secs, 0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Timestamp, A::Error> {
        let secs: i64 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let nanos: u32 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Self::at(secs, nanos)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
        text.parse::<Timestamp>().map_err(|e| E::custom(format!("timestamp `{text}`: {e}")))
    }
}

/// The same for an `Option<Timestamp>` field.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Option<Timestamp>, serializer: S) -> Result<S::Ok, S::Error> {
        struct Stamp<'a>(&'a Timestamp);
        impl Serialize for Stamp<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                super::serialize(self.0, serializer)
            }
        }
        match at {
            Some(at) => serializer.serialize_some(&Stamp(at)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
        struct Stamp(Timestamp);
        impl<'de> Deserialize<'de> for Stamp {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                super::deserialize(deserializer).map(Stamp)
            }
        }
        Ok(Option::<Stamp>::deserialize(deserializer)?.map(|s| s.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        #[serde(with = "crate::stamp")]
        at: Timestamp,
        #[serde(default, with = "crate::stamp::option")]
        due_at: Option<Timestamp>,
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn text_for_json_as_chrono_writes_it() {
        let record = Record { at: at("2026-03-02T01:37:22Z"), due_at: Some(at("2026-03-02T09:00:00.250Z")) };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(json, r#"{"at":"2026-03-02T01:37:22Z","due_at":"2026-03-02T09:00:00.250Z"}"#);
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
        // A missing optional field is still `None`.
        let bare: Record = serde_json::from_str(r#"{"at":"2026-03-02T01:37:22Z"}"#).unwrap();
        assert_eq!(bare.due_at, None);
    }

    #[test]
    fn numbers_in_a_binary_format_and_text_still_read() {
        for record in [
            Record { at: at("2026-03-02T01:37:22Z"), due_at: None },
            Record { at: at("1969-12-31T23:59:59.999999999Z"), due_at: Some(at("2026-03-02T09:00:00.250Z")) },
        ] {
            let binary = rmp_serde::to_vec_named(&record).unwrap();
            assert_eq!(rmp_serde::from_slice::<Record>(&binary).unwrap(), record);
        }
        let whole = rmp_serde::to_vec_named(&Record { at: at("2026-03-02T01:37:22Z"), due_at: None }).unwrap();
        // `at` is one 5-byte integer, not 21 bytes of text.
        assert!(whole.len() < 20, "{} bytes", whole.len());
        // Carried over from JSON as text.
        let text = rmp_serde::to_vec_named(&serde_json::json!({"at": "2026-03-02T01:37:22Z", "due_at": null})).unwrap();
        assert_eq!(rmp_serde::from_slice::<Record>(&text).unwrap().at, at("2026-03-02T01:37:22Z"));
        let bad = rmp_serde::to_vec_named(&serde_json::json!({"at": "yesterday"})).unwrap();
        let err = rmp_serde::from_slice::<Record>(&bad).unwrap_err().to_string();
        assert!(err.contains("yesterday"), "{err}");
    }
}
