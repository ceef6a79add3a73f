//! Time off the CRM records (Salesforce Events shown as out of office),
//! counted with the policy's own `policy.owners.time_off`: the whole days an
//! absence covers are days off, as if listed in the config. Pure; the
//! daemon merges the result into the policy it judges by.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate, TimeZone};
use chrono_tz::Tz;
use handoff_model::{Absence, Owner};

/// The most days one absence counts for: a mistyped year in an Event is not
/// a decade off.
pub const MAX_DAYS_PER_ABSENCE: i64 = 366;

/// The days `absence` takes off, in `zone` (the user's). An all-day entry
/// covers its calendar dates (Salesforce stores them at midnight GMT and
/// ends them at the midnight after the last, or at the last one's own);
/// a timed one covers each local day it spans from midnight to midnight,
/// so an afternoon away is no day off.
pub fn absence_days(absence: &Absence, zone: Tz) -> Vec<NaiveDate> {
    let (start, end) = (absence.starts_at, absence.ends_at.max(absence.starts_at));
    if absence.all_day {
        let first = start.date_naive();
        let last = (end - Duration::minutes(1)).max(start).date_naive();
        return first.iter_days().take_while(|d| *d <= last).take(MAX_DAYS_PER_ABSENCE as usize).collect();
    }
    let midnight = |d: NaiveDate| zone.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()).earliest();
    let first = start.with_timezone(&zone).date_naive();
    let last = end.with_timezone(&zone).date_naive();
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .take(MAX_DAYS_PER_ABSENCE as usize + 1)
        .filter(|d| match (midnight(*d), d.succ_opt().and_then(midnight)) {
            (Some(from), Some(to)) => from >= start && to <= end,
            _ => false,
        })
        .collect()
}

/// Each user's days off from the CRM's absences, sorted, each once; a
/// user's zone is theirs when the CRM names it, else UTC.
pub fn crm_days_off(absences: &[Absence], owners: &[Owner]) -> BTreeMap<String, Vec<NaiveDate>> {
    let zone_of = |id: &str| -> Tz {
        owners
            .iter()
            .find(|o| o.id == id)
            .and_then(|o| o.time_zone.as_deref())
            .and_then(|z| z.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    };
    let mut days: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
    for a in absences {
        let covered = absence_days(a, zone_of(&a.owner_id));
        if !covered.is_empty() {
            days.entry(a.owner_id.clone()).or_default().extend(covered);
        }
    }
    days.into_iter().map(|(owner, d)| (owner, d.into_iter().collect())).collect()
}

/// The policy's days off with the CRM's added, per user sorted and each
/// once (the shape `CompiledPolicy::time_off` holds).
pub fn merged(
    configured: &BTreeMap<String, Vec<NaiveDate>>,
    crm: &BTreeMap<String, Vec<NaiveDate>>,
) -> BTreeMap<String, Vec<NaiveDate>> {
    let mut out: BTreeMap<String, BTreeSet<NaiveDate>> =
        configured.iter().map(|(k, v)| (k.clone(), v.iter().copied().collect())).collect();
    for (owner, days) in crm {
        out.entry(owner.clone()).or_default().extend(days.iter().copied());
    }
    out.into_iter().map(|(owner, d)| (owner, d.into_iter().collect())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn absence(from: &str, to: &str, all_day: bool) -> Absence {
        Absence {
            id: "00U1".into(),
            owner_id: "005A".into(),
            starts_at: at(from),
            ends_at: at(to),
            all_day,
            modified_at: at(from),
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn all_day_entries_cover_their_dates_whatever_the_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // Ending at the midnight after the last day, or at the last day's own.
        let three = absence("2026-03-03T00:00:00Z", "2026-03-06T00:00:00Z", true);
        assert_eq!(absence_days(&three, ny), [day("2026-03-03"), day("2026-03-04"), day("2026-03-05")]);
        let one = absence("2026-03-03T00:00:00Z", "2026-03-03T00:00:00Z", true);
        assert_eq!(absence_days(&one, ny), [day("2026-03-03")]);
        let years = absence("2026-03-03T00:00:00Z", "2036-03-03T00:00:00Z", true);
        assert_eq!(absence_days(&years, ny).len(), MAX_DAYS_PER_ABSENCE as usize);
    }

    #[test]
    fn timed_entries_cover_the_local_days_they_span_whole() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // Tuesday 00:00 to Thursday 00:00 in New York: Tuesday and Wednesday.
        let two = absence("2026-03-03T05:00:00Z", "2026-03-05T05:00:00Z", false);
        assert_eq!(absence_days(&two, ny), [day("2026-03-03"), day("2026-03-04")]);
        // The same instants in London cover only Wednesday whole.
        let london: Tz = "Europe/London".parse().unwrap();
        assert_eq!(absence_days(&two, london), [day("2026-03-04")]);
        // An afternoon off is no day off.
        let afternoon = absence("2026-03-03T18:00:00Z", "2026-03-03T22:00:00Z", false);
        assert!(absence_days(&afternoon, ny).is_empty());
    }

    #[test]
    fn crm_days_join_the_configured_ones_per_user() {
        let owners = vec![Owner {
            id: "005A".into(),
            kind: handoff_model::OwnerKind::User,
            name: None,
            email: None,
            manager_id: None,
            time_zone: Some("America/New_York".into()),
            active: true,
            modified_at: None,
        }];
        let crm = crm_days_off(&[absence("2026-03-03T05:00:00Z", "2026-03-04T05:00:00Z", false)], &owners);
        assert_eq!(crm, BTreeMap::from([("005A".to_string(), vec![day("2026-03-03")])]));
        let configured = BTreeMap::from([
            ("005A".to_string(), vec![day("2026-03-03"), day("2026-03-10")]),
            ("005B".to_string(), vec![day("2026-03-01")]),
        ]);
        let all = merged(&configured, &crm);
        assert_eq!(all["005A"], [day("2026-03-03"), day("2026-03-10")]);
        assert_eq!(all["005B"], [day("2026-03-01")]);
    }
}
