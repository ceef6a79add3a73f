//! Rep capacity: how many new MQLs a rep takes per business day, and what
//! becomes of a lead above its rep's cap (`policy.capacity`).
//!
//! A lead *arrives* once per MQL: for the user who holds it when its sales
//! clocks start, on the business day (that user's calendar and zone) the
//! first-touch clock starts counting. [`decide`] takes the arrival and the
//! day's loads (what the daemon's intake book counts) and returns the
//! lead's [`Intake`]: kept, kept with a relaxed window, or moved. The
//! daemon decides each arrival once, in the order it judges leads, records
//! it in the lead's state and the book, and queues the move as a
//! `Reassign` action keyed by the arrival, so it happens once.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::{CompiledCapacity, Detection, Overflow};

/// A new MQL reaching a rep: what a cap counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// The sales start of the lead's clocks (its MQL time, or when it
    /// qualified or was accepted, per the segment).
    pub at: DateTime<Utc>,
    pub owner_id: String,
    /// The business day it counts for, in the owner's calendar (their
    /// first working day from the arrival on).
    pub day: NaiveDate,
    /// The owner is on time off between the arrival and that day: the lead
    /// would wait for them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub away: bool,
}

/// What was decided for one arrival; kept in the lead's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intake {
    #[serde(with = "handoff_model::stamp")]
    pub at: DateTime<Utc>,
    pub owner_id: String,
    pub day: NaiveDate,
    /// New MQLs the owner had already taken that day when this one came.
    pub taken_before: u32,
    /// The owner's cap (`None`: uncapped).
    pub cap: Option<u32>,
    /// The owner was away when it came (`policy.owners.when_away`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub away: bool,
    /// `"outcome": "kept" | "relaxed" | "moved" (with "to") | "overflowed"`.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The detected surge it arrived in (`policy.surge.detect`), by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surge: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Within the cap (or uncapped): the rep keeps it.
    Kept,
    /// Above the cap with `overflow = "relax"`: the rep keeps it, and its
    /// first touch gets the relaxed window for its grade.
    Relaxed,
    /// Above the cap: given to `to`.
    Moved { to: String },
    /// Above the cap, and nobody in the group could take it (all at their
    /// cap or away) and no pool is set: the rep keeps it.
    Overflowed,
}

impl Intake {
    /// An arrival nothing was decided for but its counting (no cap, no
    /// fallback: surge detection alone counts arrivals).
    pub fn counted(arrival: &Arrival) -> Intake {
        Intake {
            at: arrival.at,
            owner_id: arrival.owner_id.clone(),
            day: arrival.day,
            taken_before: 0,
            cap: None,
            away: false,
            outcome: Outcome::Kept,
            surge: None,
        }
    }

    /// Whether this decision is the one for `arrival` (the same MQL).
    pub fn is_for(&self, arrival: &Arrival) -> bool {
        self.at == arrival.at && self.owner_id == arrival.owner_id
    }

    /// Who counts the lead in their day's load: the receiving rep, unless
    /// it was moved (then whoever took it).
    pub fn counted_for(&self) -> &str {
        match &self.outcome {
            Outcome::Moved { to } => to,
            _ => &self.owner_id,
        }
    }

    /// In words, for `handoff explain` and the engine's notes.
    pub fn describe(&self) -> String {
        if let (true, Outcome::Moved { to }) = (self.away, &self.outcome) {
            return format!(
                "capacity: {} is away when the lead arrives (policy.owners.time_off); it goes to {to} (when_away = reassign)",
                self.owner_id
            );
        }
        let cap = self.cap.map_or("no cap".to_string(), |c| format!("cap {c}"));
        let had = format!("{} had taken {} new MQLs on {} ({cap})", self.owner_id, self.taken_before, self.day);
        match &self.outcome {
            Outcome::Kept => format!("capacity: {had}; the lead stays with them"),
            Outcome::Relaxed => {
                format!("capacity: {had}; the lead stays with them with the relaxed first-touch window")
            }
            Outcome::Moved { to } => format!("capacity: {had}; the lead goes to {to}"),
            Outcome::Overflowed => {
                format!("capacity: {had}; nobody in the group could take it and no pool is set, so it stays")
            }
        }
    }
}

/// A detected surge's name: the business day it was seen on.
pub fn detected_surge_name(day: NaiveDate) -> String {
    format!("inbound surge detected on {day}")
}

/// What surge detection makes of one arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurgeWatch {
    /// No surge.
    Calm,
    /// With it, `mqls_per_hour` or more new MQLs arrived in the hour up to it.
    AtRate,
    /// Below the rate, but inside the cool-down after an arrival at rate.
    CoolingDown,
}

impl SurgeWatch {
    pub fn is_surge(self) -> bool {
        self != SurgeWatch::Calm
    }
}

/// Surge detection for a lead arriving at `at`. `earlier` holds the
/// arrivals counted before it (instant, whether it came at the rate) from
/// at least an hour and the cool-down back; later ones are ignored. A
/// surge lasts while arrivals come at the rate and `cool_down` after the
/// last one that did.
pub fn watch_surge(detect: &Detection, at: DateTime<Utc>, earlier: &[(DateTime<Utc>, bool)]) -> SurgeWatch {
    let hour_ago = at - chrono::Duration::hours(1);
    let in_hour = earlier.iter().filter(|(t, _)| *t > hour_ago && *t <= at).count();
    if u32::try_from(in_hour + 1).unwrap_or(u32::MAX) >= detect.mqls_per_hour {
        SurgeWatch::AtRate
    } else if earlier.iter().any(|(t, at_rate)| *at_rate && *t <= at && *t >= at - detect.cool_down) {
        SurgeWatch::CoolingDown
    } else {
        SurgeWatch::Calm
    }
}

/// The intake of `arrival` under `capacity`. `load(owner, day)` is how many
/// new MQLs `owner` holds for `day` so far (kept, relaxed, or moved to
/// them); `away(owner, day)` says whether they are on time off. A lead for
/// a rep who is away goes to the fallback when the policy says so, before
/// any cap. `None` when nothing is counted (no cap, no fallback).
pub fn decide(
    capacity: &CompiledCapacity,
    arrival: &Arrival,
    load: &dyn Fn(&str, NaiveDate) -> u32,
    away: &dyn Fn(&str, NaiveDate) -> bool,
) -> Option<Intake> {
    if !capacity.is_on() {
        return None;
    }
    let owner = arrival.owner_id.as_str();
    let cap = capacity.cap_for(owner);
    let taken_before = load(owner, arrival.day);
    let away_to = capacity.away_to.as_ref().filter(|_| arrival.away);
    let outcome = if let Some(to) = away_to {
        Outcome::Moved { to: to.clone() }
    } else if cap.is_none_or(|c| taken_before < c) {
        Outcome::Kept
    } else {
        let Some(overflow) = &capacity.overflow else { return None };
        match overflow {
            Overflow::Pool(pool) => Outcome::Moved { to: pool.clone() },
            Overflow::Relax { .. } => Outcome::Relaxed,
            Overflow::LeastLoaded { group, pool } => {
                // The rep of the group with the fewest new MQLs that day,
                // under their cap and not away; ties go to the one listed
                // first, so the excess goes round the group.
                let best = group
                    .iter()
                    .filter(|m| m.as_str() != owner && !away(m, arrival.day))
                    .map(|m| (load(m, arrival.day), m))
                    .filter(|(taken, m)| capacity.cap_for(m).is_none_or(|c| *taken < c))
                    .min_by_key(|(taken, _)| *taken);
                match (best, pool) {
                    (Some((_, m)), _) => Outcome::Moved { to: m.clone() },
                    (None, Some(pool)) => Outcome::Moved { to: pool.clone() },
                    (None, None) => Outcome::Overflowed,
                }
            }
        }
    };
    Some(Intake { taken_before, cap, away: away_to.is_some(), outcome, ..Intake::counted(arrival) })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn arrival(owner: &str) -> Arrival {
        Arrival {
            at: "2026-03-02T15:00:00Z".parse().unwrap(),
            owner_id: owner.to_string(),
            day: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            away: false,
        }
    }

    fn capacity(overflow: Overflow) -> CompiledCapacity {
        CompiledCapacity {
            default_cap: Some(2),
            per_owner: BTreeMap::from([("big".to_string(), 5)]),
            overflow: Some(overflow),
            away_to: None,
        }
    }

    fn loads(pairs: &[(&str, u32)]) -> impl Fn(&str, NaiveDate) -> u32 {
        let map: BTreeMap<String, u32> = pairs.iter().map(|(o, n)| (o.to_string(), *n)).collect();
        move |owner, _| map.get(owner).copied().unwrap_or(0)
    }

    fn outcome(c: &CompiledCapacity, owner: &str, load: &[(&str, u32)], away: &[&str]) -> Outcome {
        let away: Vec<String> = away.iter().map(|s| s.to_string()).collect();
        decide(c, &arrival(owner), &loads(load), &|o, _| away.iter().any(|a| a == o)).unwrap().outcome
    }

    #[test]
    fn no_cap_counts_nothing() {
        assert_eq!(decide(&CompiledCapacity::default(), &arrival("a"), &|_, _| 99, &|_, _| false), None);
    }

    #[test]
    fn under_the_cap_the_rep_keeps_it_and_a_per_owner_cap_wins() {
        let c = capacity(Overflow::Pool("pool".into()));
        assert_eq!(outcome(&c, "a", &[("a", 1)], &[]), Outcome::Kept);
        assert_eq!(outcome(&c, "a", &[("a", 2)], &[]), Outcome::Moved { to: "pool".into() });
        assert_eq!(outcome(&c, "big", &[("big", 4)], &[]), Outcome::Kept);
        let intake = decide(&c, &arrival("big"), &loads(&[("big", 5)]), &|_, _| false).unwrap();
        assert_eq!((intake.taken_before, intake.cap), (5, Some(5)));
        assert_eq!(intake.counted_for(), "pool");
    }

    #[test]
    fn least_loaded_picks_the_emptiest_rep_under_cap_and_present() {
        let group = vec!["a".to_string(), "b".to_string(), "c".to_string(), "big".to_string()];
        let c = capacity(Overflow::LeastLoaded { group: group.clone(), pool: None });
        // b and c have one each, big three (under its cap of 5): b, listed first.
        assert_eq!(
            outcome(&c, "a", &[("a", 2), ("b", 1), ("c", 1), ("big", 3)], &[]),
            Outcome::Moved { to: "b".into() }
        );
        // b away: c.
        assert_eq!(
            outcome(&c, "a", &[("a", 2), ("b", 1), ("c", 1), ("big", 3)], &["b"]),
            Outcome::Moved { to: "c".into() }
        );
        // b and c full: big, under its own cap.
        assert_eq!(
            outcome(&c, "a", &[("a", 2), ("b", 2), ("c", 2), ("big", 3)], &[]),
            Outcome::Moved { to: "big".into() }
        );
        // Everybody full, no pool: it stays, and says so.
        assert_eq!(outcome(&c, "a", &[("a", 2), ("b", 2), ("c", 2), ("big", 5)], &[]), Outcome::Overflowed);
        let c = capacity(Overflow::LeastLoaded { group, pool: Some("pool".into()) });
        assert_eq!(
            outcome(&c, "a", &[("a", 2), ("b", 2), ("c", 2), ("big", 5)], &[]),
            Outcome::Moved { to: "pool".into() }
        );
    }

    #[test]
    fn a_lead_for_a_rep_who_is_away_goes_to_the_fallback_before_any_cap() {
        let away = Arrival { away: true, ..arrival("a") };
        let fallback = CompiledCapacity { away_to: Some("cover".into()), ..CompiledCapacity::default() };
        let intake = decide(&fallback, &away, &|_, _| 0, &|_, _| true).unwrap();
        assert_eq!((intake.outcome.clone(), intake.away), (Outcome::Moved { to: "cover".into() }, true));
        assert!(intake.describe().contains("a is away"), "{}", intake.describe());
        // Present: counted, kept (no cap).
        assert_eq!(decide(&fallback, &arrival("a"), &|_, _| 9, &|_, _| false).unwrap().outcome, Outcome::Kept);
        // With caps too: away wins; without a fallback the cap decides.
        let both = CompiledCapacity { away_to: Some("cover".into()), ..capacity(Overflow::Pool("pool".into())) };
        assert_eq!(
            decide(&both, &away, &|_, _| 0, &|_, _| false).unwrap().outcome,
            Outcome::Moved { to: "cover".into() }
        );
        let caps = capacity(Overflow::Pool("pool".into()));
        assert_eq!(decide(&caps, &away, &|_, _| 0, &|_, _| false).unwrap().outcome, Outcome::Kept);
    }

    /// 3 an hour starts a surge; it lasts an hour after the last arrival
    /// that came at that rate, then ends.
    #[test]
    fn a_detected_surge_starts_at_the_rate_and_ends_after_the_cool_down() {
        use SurgeWatch::{AtRate, Calm, CoolingDown};
        let detect = Detection { mqls_per_hour: 3, cool_down: chrono::Duration::minutes(60) };
        let t = |hh_mm: &str| -> DateTime<Utc> { format!("2026-03-02T{hh_mm}:00Z").parse().unwrap() };
        let mut seen: Vec<(DateTime<Utc>, bool)> = Vec::new();
        let mut run = |hh_mm: &str| {
            let watch = watch_surge(&detect, t(hh_mm), &seen);
            seen.push((t(hh_mm), watch == AtRate));
            watch
        };
        let got: Vec<(&str, SurgeWatch)> =
            ["09:00", "09:40", "09:50", "10:45", "11:40", "11:55", "12:00"].iter().map(|h| (*h, run(h))).collect();
        assert_eq!(
            got,
            [
                ("09:00", Calm),
                ("09:40", Calm),
                ("09:50", AtRate),      // three in the hour
                ("10:45", CoolingDown), // two in the hour, 55 minutes after 09:50
                ("11:40", Calm),        // 10:45 was not at the rate: no chain of cool-downs
                ("11:55", Calm),
                ("12:00", AtRate), // 11:40, 11:55 and itself
            ]
        );
    }

    #[test]
    fn relax_keeps_the_lead_above_the_cap() {
        let c = capacity(Overflow::Relax { first_touch: BTreeMap::new() });
        assert_eq!(outcome(&c, "a", &[("a", 1)], &[]), Outcome::Kept);
        assert_eq!(outcome(&c, "a", &[("a", 2)], &[]), Outcome::Relaxed);
        assert_eq!(outcome(&c, "a", &[("a", 7)], &[]), Outcome::Relaxed);
    }
}
