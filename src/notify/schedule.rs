//! When a digest or the summary is due: local dates and times in the
//! recipient's own zone and calendar. Pure: a schedule and `now` in, an
//! answer out.
//!
//! A digest is due on a local date that has business time in the
//! recipient's calendar (weekly hours read in their zone, holidays in the
//! calendar's), from `digest_time` until that local date ends: a daemon
//! that was down in the morning sends the day's digest when it comes back,
//! never yesterday's. The summary of a closed week is due from
//! `summary_time` on the first business day of the next week (reporting
//! zone) until that week ends.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::calendar::Schedule;

/// The instant a local date and time names in `tz` (the earlier one in a
/// fold, moved past a gap).
pub fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = date.and_time(time);
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| naive.and_utc()),
    }
}

/// Whether `date` (local to the schedule's zone) has any business time.
pub fn is_business_day(schedule: &Schedule, date: NaiveDate) -> bool {
    let tz = schedule.time_zone();
    let from = local_instant(tz, date, NaiveTime::MIN);
    let to = local_instant(tz, date + Duration::days(1), NaiveTime::MIN);
    !schedule.open_intervals(from, to).is_empty()
}

/// The local date whose digest is due at `now`, if any: today in the
/// schedule's zone, when it is a business day and `at` has passed.
pub fn digest_due(schedule: &Schedule, at: NaiveTime, now: DateTime<Utc>) -> Option<NaiveDate> {
    let tz = schedule.time_zone();
    let today = now.with_timezone(&tz).date_naive();
    (now >= local_instant(tz, today, at) && is_business_day(schedule, today)).then_some(today)
}

/// When the summary of the week before `week_start` (the current week's
/// first local date, in the schedule's zone) is due: `at` on the first
/// business day of the current week (its first day if none has business
/// time).
pub fn summary_due_at(schedule: &Schedule, week_start: NaiveDate, at: NaiveTime) -> DateTime<Utc> {
    let day =
        (0..7).map(|d| week_start + Duration::days(d)).find(|d| is_business_day(schedule, *d)).unwrap_or(week_start);
    local_instant(schedule.time_zone(), day, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;
    use handoff_model::{BusinessCalendar, Holiday, WeeklyWindow};

    fn schedule(zone: &str, holidays: &[NaiveDate]) -> Schedule {
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or(NaiveTime::MIN);
        let cal = BusinessCalendar {
            id: "c".into(),
            time_zone: zone.into(),
            weekly: [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
                .into_iter()
                .map(|weekday| WeeklyWindow { weekday, start: t(9), end: t(17) })
                .collect(),
            holidays: holidays.iter().map(|d| Holiday { date: *d, name: None, start: None, end: None }).collect(),
        };
        Schedule::new(&cal).unwrap_or_else(|e| panic!("{e}"))
    }

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap_or_default()
    }

    fn utc(m: u32, day: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, m, day, h, min, 0).single().unwrap_or_default()
    }

    #[test]
    fn a_digest_is_due_from_its_local_time_on_business_days_only() {
        let at = NaiveTime::from_hms_opt(8, 30, 0).unwrap_or(NaiveTime::MIN);
        let ny = schedule("America/New_York", &[d(5, 25)]);
        // Tue 2026-03-03 08:30 EST is 13:30 UTC.
        assert_eq!(digest_due(&ny, at, utc(3, 3, 13, 29)), None);
        assert_eq!(digest_due(&ny, at, utc(3, 3, 13, 30)), Some(d(3, 3)));
        // Still Tuesday in New York at 03:00 UTC Wednesday.
        assert_eq!(digest_due(&ny, at, utc(3, 4, 3, 0)), Some(d(3, 3)));
        // Saturday, and Memorial Day (a holiday of the calendar).
        assert_eq!(digest_due(&ny, at, utc(3, 7, 15, 0)), None);
        assert_eq!(digest_due(&ny, at, utc(5, 25, 15, 0)), None);
        assert_eq!(digest_due(&ny, at, utc(5, 26, 15, 0)), Some(d(5, 26)));
        // Sydney's Monday morning is Sunday evening in UTC.
        let syd = schedule("Australia/Sydney", &[]);
        assert_eq!(digest_due(&syd, at, utc(3, 1, 22, 0)), Some(d(3, 2)));
        assert_eq!(digest_due(&syd, at, utc(3, 6, 22, 0)), None, "Saturday 09:00 in Sydney");
    }

    #[test]
    fn the_summary_waits_for_the_first_business_day_of_the_week() {
        let at = NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN);
        let ny = schedule("America/New_York", &[d(5, 25)]);
        assert_eq!(summary_due_at(&ny, d(3, 9), at), utc(3, 9, 13, 0));
        assert_eq!(summary_due_at(&ny, d(5, 25), at), utc(5, 26, 13, 0), "Memorial Day moves it to Tuesday");
    }
}
