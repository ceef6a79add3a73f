//! A lead's stored evaluation as judging the lead reads it.
//!
//! Judging a lead reads two fields of its last evaluation at once (the
//! capacity decision and the queued field update) and needs the rest only
//! when the new evaluation concludes something else. After a policy change
//! most leads conclude what they did, and decoding the stored evaluation —
//! its clocks, with their names, ids and words — was the largest part of
//! reading a lead. So [`PriorState`] keeps the stored MessagePack as it is,
//! reads the two fields out of it by skipping the rest, and answers
//! [`PriorState::same_verdict`] by comparing the new evaluation's encoding
//! with the stored one, entry by entry, but for when and under which policy
//! version each was reached. Only a different verdict decodes it.

use serde::de::DeserializeOwned;

use super::codec;
use super::{LeadState, StoreError, Tree};
use crate::engine::capacity::Intake;

/// The stored evaluation of a lead, decoded only as far as it is read.
#[derive(Debug, Clone)]
pub struct PriorState {
    lead_id: String,
    pending_update: Option<u64>,
    intake: Option<Intake>,
    kept: Kept,
}

#[derive(Debug, Clone)]
enum Kept {
    /// MessagePack, decompressed: what this handoff writes.
    Encoded(Vec<u8>),
    /// Decoded at once: JSON, as an older handoff wrote it.
    Decoded(Box<LeadState>),
}

/// The entries [`LeadState::same_verdict`] leaves out.
const NOT_THE_VERDICT: [&[u8]; 2] = [b"evaluated_at", b"policy_version"];

impl PriorState {
    /// Reads the stored value `bytes` of `lead_id`'s evaluation.
    pub(super) fn read(lead_id: &str, bytes: &[u8]) -> Result<PriorState, StoreError> {
        let err = |message: String| unreadable(lead_id, format!("unreadable value: {message}"));
        let Some(body) = codec::binary_body(bytes).map_err(&err)? else {
            let state: LeadState = codec::decode(Tree::States, lead_id.as_bytes(), bytes)?;
            return Ok(PriorState {
                lead_id: lead_id.to_string(),
                pending_update: state.pending_update,
                intake: state.intake.clone(),
                kept: Kept::Decoded(Box::new(state)),
            });
        };
        let mut pending_update = None;
        let mut intake = None;
        for entry in entries(&body).map_err(&err)? {
            match entry.name {
                b"pending_update" => pending_update = value(&body[entry.value.clone()]).map_err(&err)?,
                b"intake" => intake = value(&body[entry.value.clone()]).map_err(&err)?,
                _ => {}
            }
        }
        Ok(PriorState { lead_id: lead_id.to_string(), pending_update, intake, kept: Kept::Encoded(body) })
    }

    /// The outbox sequence of the lead's queued SLA-field update.
    pub fn pending_update(&self) -> Option<u64> {
        self.pending_update
    }

    /// What `policy.capacity` decided for the lead's latest arrival.
    pub fn intake(&self) -> Option<&Intake> {
        self.intake.as_ref()
    }

    /// The whole stored evaluation.
    pub fn decode(&self) -> Result<LeadState, StoreError> {
        match &self.kept {
            Kept::Decoded(state) => Ok((**state).clone()),
            Kept::Encoded(body) => {
                rmp_serde::from_slice(body).map_err(|e| unreadable(&self.lead_id, format!("unreadable value: {e}")))
            }
        }
    }

    /// Whether `state` concludes what the stored evaluation did
    /// ([`LeadState::same_verdict`]). Stored by this handoff, the two are
    /// compared as encoded: the same entries, byte for byte, but for
    /// `evaluated_at` and `policy_version`. Equal bytes decode to equal
    /// values; an evaluation an older handoff encoded differently reads as
    /// changed and is stored again, which is all that costs. A changed
    /// verdict comes with the encoding made to compare, so storing it does
    /// not encode it again.
    pub fn compare(&self, state: &LeadState) -> Result<Comparison, StoreError> {
        let stored = match &self.kept {
            Kept::Decoded(previous) if previous.same_verdict(state) => return Ok(Comparison::Same),
            Kept::Decoded(_) => return Ok(Comparison::Changed(None)),
            Kept::Encoded(body) => body,
        };
        let err = |message: String| unreadable(&self.lead_id, message);
        let new = rmp_serde::to_vec_named(state).map_err(|e| err(format!("cannot encode: {e}")))?;
        let verdict = |body: &[u8]| -> Result<Vec<std::ops::Range<usize>>, String> {
            Ok(entries(body)?.into_iter().filter(|e| !NOT_THE_VERDICT.contains(&e.name)).map(|e| e.whole).collect())
        };
        let (old_entries, new_entries) = (verdict(stored).map_err(&err)?, verdict(&new).map_err(&err)?);
        let same = old_entries.len() == new_entries.len()
            && old_entries.iter().zip(&new_entries).all(|(o, n)| stored[o.clone()] == new[n.clone()]);
        Ok(if same { Comparison::Same } else { Comparison::Changed(Some(EncodedState(new))) })
    }

    /// [`PriorState::compare`], told as a yes or no.
    #[cfg(test)]
    pub fn same_verdict(&self, state: &LeadState) -> Result<bool, StoreError> {
        Ok(matches!(self.compare(state)?, Comparison::Same))
    }
}

/// What [`PriorState::compare`] found.
#[derive(Debug)]
pub enum Comparison {
    /// The new evaluation concludes what the stored one did.
    Same,
    /// It concludes something else; with its encoding when one was made.
    Changed(Option<EncodedState>),
}

/// A [`LeadState`] encoded as MessagePack, as the states tree keeps it
/// (before its format byte and any compression): made only by
/// [`PriorState::compare`], from the state it is handed back with.
#[derive(Debug)]
pub struct EncodedState(pub(super) Vec<u8>);

/// What went wrong with `lead_id`'s stored evaluation.
fn unreadable(lead_id: &str, message: String) -> StoreError {
    StoreError::Format { tree: Tree::States.name(), key: super::show_key(lead_id.as_bytes()), message }
}

/// One entry of a MessagePack map: its name, and where its value and the
/// whole entry lie in the body.
struct Entry<'a> {
    name: &'a [u8],
    value: std::ops::Range<usize>,
    whole: std::ops::Range<usize>,
}

/// The entries of the map `body` holds (a struct encoded by name), in
/// order, read without decoding any value.
fn entries(body: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    let mut at = 0;
    let count = match take(body, &mut at, 1)?[0] {
        m @ 0x80..=0x8f => usize::from(m & 0x0f),
        0xde => be(take(body, &mut at, 2)?) as usize,
        0xdf => be(take(body, &mut at, 4)?) as usize,
        m => return Err(format!("not a map (marker {m:#04x})")),
    };
    let mut out = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let start = at;
        let len = match take(body, &mut at, 1)?[0] {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => be(take(body, &mut at, 1)?) as usize,
            0xda => be(take(body, &mut at, 2)?) as usize,
            0xdb => be(take(body, &mut at, 4)?) as usize,
            m => return Err(format!("an entry named by marker {m:#04x}, not a string")),
        };
        let name = take(body, &mut at, len)?;
        let value_at = at;
        skip(body, &mut at)?;
        out.push(Entry { name, value: value_at..at, whole: start..at });
    }
    if at != body.len() {
        return Err(format!("{} bytes after the map", body.len() - at));
    }
    Ok(out)
}

/// Moves `at` past the one MessagePack value starting there (and all it
/// holds), reading only markers and lengths.
fn skip(body: &[u8], at: &mut usize) -> Result<(), String> {
    // Values still to pass: a container adds what it holds.
    let mut left: u64 = 1;
    while left > 0 {
        left -= 1;
        let marker = take(body, at, 1)?[0];
        let (skip_bytes, holds): (usize, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (be(take(body, at, 1)?) as usize, 0),
            0xc5 | 0xda => (be(take(body, at, 2)?) as usize, 0),
            0xc6 | 0xdb => (be(take(body, at, 4)?) as usize, 0),
            0xc7 => (be(take(body, at, 1)?) as usize + 1, 0),
            0xc8 => (be(take(body, at, 2)?) as usize + 1, 0),
            0xc9 => (be(take(body, at, 4)?) as usize + 1, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, be(take(body, at, 2)?)),
            0xdd => (0, be(take(body, at, 4)?)),
            0xde => (0, 2 * be(take(body, at, 2)?)),
            0xdf => (0, 2 * be(take(body, at, 4)?)),
            0xc1 => return Err("marker 0xc1, which MessagePack never uses".to_string()),
        };
        take(body, at, skip_bytes)?;
        // Each value held takes at least a byte: more than remain is damage.
        if holds > (body.len() - *at) as u64 {
            return Err(format!("a container of {holds} values in {} bytes", body.len() - *at));
        }
        left += holds;
    }
    Ok(())
}

/// The `len` bytes at `at`, moving `at` past them.
fn take<'a>(body: &'a [u8], at: &mut usize, len: usize) -> Result<&'a [u8], String> {
    let end = at.checked_add(len).filter(|end| *end <= body.len()).ok_or("cut short")?;
    let bytes = &body[*at..end];
    *at = end;
    Ok(bytes)
}

/// A big-endian unsigned length of 1, 2 or 4 bytes.
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

fn value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::capacity::Outcome;
    use crate::engine::{Clock, ClockKind, ClockStatus, Rung, StopCause};
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    use std::collections::BTreeMap;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, hour, 0, 0).unwrap()
    }

    /// An evaluation with every optional part filled in.
    fn full() -> LeadState {
        let clock = Clock {
            owner_id: Some("005A".into()),
            first_owner_id: Some("005B".into()),
            last_owner_id: Some("005A".into()),
            owner_since: Some(at(9)),
            held_by: Some("00GQ".into()),
            calendar: Some("default (America/New_York)".into()),
            received_at: Some(at(9)),
            started_at: Some(at(9)),
            due_at: Some(at(13)),
            remind_at: Some(at(12)),
            stopped_at: Some(at(11)),
            status: ClockStatus::Met,
            flagged: true,
            escalations: vec![Rung { level: 1, at: at(14), to: "005M".into(), reassign: false, fired: false }],
            stopped_by: Some(StopCause::Touch { activity_id: "00T1".into() }),
            surge: Some("launch".into()),
            ..Clock::waived(ClockKind::FirstTouch, "touched in 2 business hours")
        };
        LeadState {
            evaluated_at: at(9),
            policy_version: 3,
            mql: true,
            grade: Some("A".into()),
            segment: Some("enterprise".into()),
            waived: None,
            disqualified_by: None,
            clocks: vec![clock.clone(), Clock { kind: ClockKind::Cadence, status: ClockStatus::Pending, ..clock }],
            next_check_at: Some(at(15)),
            error: None,
            pending_update: Some(41),
            sla_fields: BTreeMap::from([("SLA_Grade__c".into(), "A".into()), ("SLA_Breaches__c".into(), 2.into())]),
            qualified_at: Some(at(10)),
            intake: Some(Intake {
                at: at(9),
                owner_id: "005A".into(),
                day: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
                taken_before: 4,
                cap: Some(10),
                away: false,
                outcome: Outcome::Moved { to: "005C".into() },
                surge: None,
            }),
        }
    }

    fn stored(state: &LeadState) -> PriorState {
        PriorState::read("L1", &codec::encode(Tree::States, b"L1", state).unwrap()).unwrap()
    }

    /// A change of one part of the verdict, named.
    type Change = (&'static str, Box<dyn Fn(&mut LeadState)>);

    fn changes() -> Vec<Change> {
        vec![
            ("mql", Box::new(|s| s.mql = false)),
            ("grade", Box::new(|s| s.grade = Some("B".into()))),
            ("segment", Box::new(|s| s.segment = None)),
            ("waived", Box::new(|s| s.waived = Some("duplicate".into()))),
            ("disqualified_by", Box::new(|s| s.disqualified_by = Some("student".into()))),
            ("a clock's status", Box::new(|s| s.clocks[0].status = ClockStatus::Breached)),
            ("a clock's reason", Box::new(|s| s.clocks[0].reason.push('!'))),
            ("a clock's reminder", Box::new(|s| s.clocks[1].remind_at = Some(at(11)))),
            ("a rung fired", Box::new(|s| s.clocks[0].escalations[0].fired = true)),
            ("what stopped it", Box::new(|s| s.clocks[0].stopped_by = None)),
            ("a clock less", Box::new(|s| drop(s.clocks.pop()))),
            ("the clocks' order", Box::new(|s| s.clocks.reverse())),
            ("next_check_at", Box::new(|s| s.next_check_at = None)),
            ("error", Box::new(|s| s.error = Some("bad".into()))),
            ("pending_update", Box::new(|s| s.pending_update = Some(42))),
            ("an SLA field", Box::new(|s| drop(s.sla_fields.insert("SLA_Breaches__c".into(), 3.into())))),
            ("qualified_at", Box::new(|s| s.qualified_at = None)),
            ("intake", Box::new(|s| s.intake = None)),
            ("intake's outcome", Box::new(|s| s.intake.as_mut().unwrap().outcome = Outcome::Kept)),
        ]
    }

    #[test]
    fn the_stored_encoding_tells_a_verdict_as_the_decoded_state_does() {
        let base = full();
        let prior = stored(&base);
        assert_eq!(prior.decode().unwrap(), base);
        let later = LeadState { evaluated_at: at(16), policy_version: 4, ..base.clone() };
        assert!(base.same_verdict(&later));
        assert!(prior.same_verdict(&later).unwrap(), "when and under which version is not the verdict");
        for (what, change) in changes() {
            let mut other = later.clone();
            change(&mut other);
            assert!(!base.same_verdict(&other), "{what}");
            assert!(!prior.same_verdict(&other).unwrap(), "{what} is a change of verdict");
            // And back: stored changed, judged as before.
            assert!(!stored(&other).same_verdict(&base).unwrap(), "{what}, the other way");
            assert!(stored(&other).same_verdict(&other).unwrap(), "{what}: itself");
        }
        let bare = LeadState { clocks: Vec::new(), sla_fields: BTreeMap::new(), intake: None, ..base };
        assert!(stored(&bare).same_verdict(&bare).unwrap());
        assert!(!stored(&bare).same_verdict(&full()).unwrap());
    }

    #[test]
    fn a_changed_verdict_is_stored_as_put_state_would_store_it() {
        let base = full();
        let later = LeadState { evaluated_at: at(16), grade: Some("B".into()), ..base.clone() };
        let Comparison::Changed(Some(encoded)) = stored(&base).compare(&later).unwrap() else {
            panic!("a new grade is a changed verdict, compared as encoded")
        };
        let (mut compared, mut plain) = (crate::store::Batch::default(), crate::store::Batch::default());
        compared.put_compared_state("L1", &later, Some(&base), Some(encoded));
        plain.put_state("L1", &later, Some(&base));
        assert_eq!(compared.state_writes(), plain.state_writes());
        assert_eq!(stored(&later).decode().unwrap(), later);
        // A state with an error is redacted before it is stored, whatever
        // encoding came with it.
        let failed = LeadState { error: Some("bad".into()), ..later.clone() };
        let Comparison::Changed(encoded) = stored(&base).compare(&failed).unwrap() else {
            panic!("an error is a change")
        };
        let (mut compared, mut plain) = (crate::store::Batch::default(), crate::store::Batch::default());
        compared.put_compared_state("L1", &failed, Some(&base), encoded);
        plain.put_state("L1", &failed, Some(&base));
        assert_eq!(compared.state_writes(), plain.state_writes());
    }

    #[test]
    fn what_judging_reads_at_once_is_read_without_decoding_the_rest() {
        let base = full();
        let prior = stored(&base);
        assert_eq!(prior.pending_update(), Some(41));
        assert_eq!(prior.intake(), base.intake.as_ref());
        let bare = LeadState { pending_update: None, intake: None, ..base };
        let prior = stored(&bare);
        assert_eq!((prior.pending_update(), prior.intake()), (None, None));
    }

    #[test]
    fn an_evaluation_an_older_handoff_wrote_as_json_reads_the_same() {
        let base = full();
        let json = codec::framed(Tree::States, &serde_json::to_vec(&base).unwrap());
        let prior = PriorState::read("L1", &json).unwrap();
        assert_eq!(prior.decode().unwrap(), base);
        assert_eq!((prior.pending_update(), prior.intake()), (Some(41), base.intake.as_ref()));
        assert!(prior.same_verdict(&LeadState { evaluated_at: at(16), ..base.clone() }).unwrap());
        assert!(!prior.same_verdict(&LeadState { grade: None, ..base }).unwrap());
    }

    #[test]
    fn a_damaged_evaluation_is_an_error_naming_it() {
        let bytes = rmp_serde::to_vec_named(&full()).unwrap();
        for cut in [1, bytes.len() / 3, bytes.len() - 1] {
            let mut damaged = vec![7u8]; // MessagePack as it is
            damaged.extend_from_slice(&bytes[..cut]);
            let e = PriorState::read("L1", &damaged).unwrap_err().to_string();
            assert!(e.contains("L1") && e.contains("states"), "{e}");
        }
        // A container claiming more than the value holds.
        let e = PriorState::read("L1", &[7, 0x81, 0xa1, b'x', 0xdd, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(e.to_string().contains("container"), "{e}");
    }
}
