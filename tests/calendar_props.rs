//! Properties of business-time arithmetic over generated calendars: random
//! weekly windows (overnight and 24 h ones included, closed days by absence),
//! random full and partial holidays, five zones with different DST rules (and
//! none), an optional owner zone, and instants and durations spanning
//! 2025–2027 so that every run crosses many DST changes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use handoff::calendar::Schedule;
use handoff_model::{BusinessCalendar, Holiday, WeeklyWindow};
use proptest::prelude::*;

/// 2025-01-01T00:00:00Z and 2028-01-01T00:00:00Z.
const RANGE_START_SECS: i64 = 1_735_689_600;
const RANGE_END_SECS: i64 = 1_830_297_600;

const ZONES: [Tz; 5] = [
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Australia::Sydney,
    chrono_tz::UTC,
];

fn zone() -> impl Strategy<Value = Tz> {
    (0..ZONES.len()).prop_map(|i| ZONES[i])
}

/// Local times on a 5-minute grid, so boundaries often fall exactly on DST
/// transitions and inside their gaps.
fn time_of_day() -> impl Strategy<Value = NaiveTime> {
    (0u32..288).prop_map(|step| NaiveTime::from_hms_opt(step / 12, (step % 12) * 5, 0).expect("valid time"))
}

fn weekday() -> impl Strategy<Value = Weekday> {
    (0u8..7).prop_map(|i| Weekday::try_from(i).expect("valid weekday"))
}

/// Start and end times; `end <= start` makes a night shift, `end == start` 24 h.
fn window() -> impl Strategy<Value = WeeklyWindow> {
    (weekday(), time_of_day(), time_of_day()).prop_map(|(weekday, start, end)| WeeklyWindow { weekday, start, end })
}

fn holiday() -> impl Strategy<Value = Holiday> {
    (0i64..1095, 0u8..4, time_of_day(), time_of_day()).prop_map(|(day, kind, a, b)| {
        let date = NaiveDate::from_ymd_opt(2025, 1, 1).expect("valid date") + Duration::days(day);
        let (start, end) = match kind {
            // Half of the holidays are whole days.
            0 | 1 => (None, None),
            2 => (Some(a), None),
            _ if a < b => (Some(a), Some(b)),
            _ if b < a => (Some(b), Some(a)),
            _ => (None, None),
        };
        Holiday { date, name: None, start, end }
    })
}

#[derive(Debug, Clone)]
struct Case {
    calendar: BusinessCalendar,
    owner_zone: Option<Tz>,
}

impl Case {
    fn schedule(&self) -> Schedule {
        let base = Schedule::new(&self.calendar).expect("generated calendars are valid");
        match self.owner_zone {
            Some(tz) => base.with_time_zone(tz),
            None => base,
        }
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        zone(),
        prop::collection::vec(window(), 1..6),
        prop::collection::vec(holiday(), 0..16),
        prop::option::weighted(0.3, zone()),
    )
        .prop_map(|(tz, weekly, holidays, owner_zone)| Case {
            calendar: BusinessCalendar { id: "generated".into(), time_zone: tz.name().into(), weekly, holidays },
            owner_zone,
        })
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (RANGE_START_SECS..RANGE_END_SECS).prop_map(|secs| Utc.timestamp_opt(secs, 0).single().expect("in range"))
}

/// Mostly short SLA-sized durations, some spanning months of business time.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0i64..4 * 3600).prop_map(Duration::seconds),
        3 => (0i64..80 * 3600).prop_map(Duration::seconds),
        1 => (0i64..1500 * 3600).prop_map(Duration::seconds),
    ]
}

/// Local midnight starting `date` in `tz`. None of the generated zones moves
/// its clocks at midnight, so the time is never skipped or repeated.
fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&date.and_time(NaiveTime::MIN))
        .single()
        .expect("midnight is unambiguous in the generated zones")
        .with_timezone(&Utc)
}

/// Zones without DST, where "open" has a simple independent definition.
const FIXED_ZONES: [Tz; 3] = [chrono_tz::UTC, chrono_tz::Asia::Kolkata, chrono_tz::Asia::Tokyo];

fn fixed_zone() -> impl Strategy<Value = Tz> {
    (0..FIXED_ZONES.len()).prop_map(|i| FIXED_ZONES[i])
}

fn fixed_zone_case() -> impl Strategy<Value = Case> {
    (
        fixed_zone(),
        prop::collection::vec(window(), 1..6),
        prop::collection::vec(holiday(), 0..16),
        prop::option::of(fixed_zone()),
    )
        .prop_map(|(tz, weekly, holidays, owner_zone)| Case {
            calendar: BusinessCalendar { id: "fixed".into(), time_zone: tz.name().into(), weekly, holidays },
            owner_zone,
        })
}

/// Whether `at` is open, straight from the definitions, for zones without
/// DST: some window started at most a day ago (local) covers it, and its
/// local date (in the zone the hours are read in) is not closed by a holiday.
fn oracle_is_open(case: &Case, at: DateTime<Utc>) -> bool {
    let calendar_tz: Tz = case.calendar.time_zone.parse().expect("generated zone");
    let weekly_tz = case.owner_zone.unwrap_or(calendar_tz);
    let local = at.with_timezone(&weekly_tz).naive_local();
    let in_window = case.calendar.weekly.iter().any(|w| {
        [local.date(), local.date() - Duration::days(1)].into_iter().any(|date| {
            if date.weekday() != w.weekday {
                return false;
            }
            let open = date.and_time(w.start);
            let length = if w.end > w.start { w.end - w.start } else { Duration::days(1) - (w.start - w.end) };
            open <= local && local < open + length
        })
    });
    let on_holiday = case.calendar.holidays.iter().any(|h| {
        h.date == local.date()
            && h.start.is_none_or(|start| local.time() >= start)
            && h.end.is_none_or(|end| local.time() < end)
    });
    in_window && !on_holiday
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Property 1: adding business time and measuring it back agree exactly.
    #[test]
    fn round_trip(case in case(), start in instant(), d in duration()) {
        let sched = case.schedule();
        let due = sched.add_business(start, d).expect("a calendar with weekly windows always opens again");
        prop_assert!(due >= start);
        prop_assert_eq!(sched.business_between(start, due), d);
    }

    /// The round trip also holds for instants with a sub-second part.
    #[test]
    fn round_trip_with_sub_second_starts(case in case(), start in instant(), nanos in 1u32..1_000_000_000, d in duration()) {
        let sched = case.schedule();
        let start = start + Duration::nanoseconds(i64::from(nanos));
        let due = sched.add_business(start, d).expect("opens again");
        prop_assert_eq!(sched.business_between(start, due), d);
    }

    /// Property 2: later starts and longer durations never give earlier due times.
    #[test]
    fn monotonic(case in case(), s1 in instant(), s2 in instant(), d1 in duration(), d2 in duration()) {
        let sched = case.schedule();
        let (s1, s2) = (s1.min(s2), s1.max(s2));
        let (d1, d2) = (d1.min(d2), d1.max(d2));
        let add = |s, d| sched.add_business(s, d).expect("opens again");
        prop_assert!(add(s1, d1) <= add(s1, d2));
        prop_assert!(add(s1, d1) <= add(s2, d1));
    }

    /// Property 3: a due time is never in closed time: it lies in `(open,
    /// close]` of an open interval. A zero duration gives the next opening.
    #[test]
    fn due_times_lie_in_business_hours(case in case(), start in instant(), d in duration()) {
        let sched = case.schedule();
        let due = sched.add_business(start, d).expect("opens again");
        let opening = sched.next_open(start).expect("opens again");
        prop_assert!(sched.is_open(opening));
        prop_assert_eq!(sched.business_between(start, opening), Duration::zero());
        if d.is_zero() {
            prop_assert_eq!(due, opening);
        } else {
            prop_assert!(sched.is_open(due - Duration::seconds(1)), "due {} follows closed time", due);
            let intervals = sched.open_intervals(opening, due + Duration::days(2));
            prop_assert!(
                intervals.iter().any(|&(open, close)| open < due && due <= close),
                "due {} is in no (open, close] of {:?}", due, intervals
            );
        }
    }

    /// Property 4: business time over consecutive spans adds up.
    #[test]
    fn business_between_is_additive(case in case(), a in instant(), gap1 in 0i64..90 * 86_400, gap2 in 0i64..90 * 86_400) {
        let sched = case.schedule();
        let b = a + Duration::seconds(gap1);
        let c = b + Duration::seconds(gap2);
        prop_assert_eq!(sched.business_between(a, b) + sched.business_between(b, c), sched.business_between(a, c));
        prop_assert_eq!(sched.business_between(c, a), Duration::zero());
    }

    /// Property 5: no open interval touches a full-day holiday's local date
    /// (read in the zone the hours are read in: the owner's, when one applies).
    #[test]
    fn full_day_holidays_are_closed(case in case()) {
        let sched = case.schedule();
        let zone = sched.time_zone();
        for holiday in case.calendar.holidays.iter().filter(|h| h.start.is_none() && h.end.is_none()) {
            let day_start = local_midnight(zone, holiday.date);
            let day_end = local_midnight(zone, holiday.date + Duration::days(1));
            let around = sched.open_intervals(day_start - Duration::days(2), day_end + Duration::days(2));
            for &(open, close) in &around {
                prop_assert!(close <= day_start || open >= day_end,
                    "({}, {}) overlaps the holiday {}", open, close, holiday.date);
            }
            prop_assert!(!sched.is_open(day_start));
            prop_assert_eq!(sched.business_between(day_start, day_end), Duration::zero());
        }
    }

    /// The interval list agrees with `is_open` and `business_between`, and is
    /// merged (sorted, non-empty, neither overlapping nor touching).
    #[test]
    fn open_intervals_agree_with_the_other_queries(case in case(), from in instant(), span_secs in 1i64..21 * 86_400, probe_secs in 0i64..21 * 86_400) {
        let sched = case.schedule();
        let to = from + Duration::seconds(span_secs);
        let intervals = sched.open_intervals(from, to);
        let total = intervals.iter().fold(Duration::zero(), |sum, &(open, close)| sum + (close - open));
        prop_assert_eq!(total, sched.business_between(from, to));
        for pair in intervals.windows(2) {
            prop_assert!(pair[0].1 < pair[1].0, "not merged: {:?}", pair);
        }
        for &(open, close) in &intervals {
            prop_assert!(from <= open && open < close && close <= to);
        }
        let probe = from + Duration::seconds(probe_secs % span_secs);
        let inside = intervals.iter().any(|&(open, close)| open <= probe && probe < close);
        prop_assert_eq!(sched.is_open(probe), inside);
    }

    /// Without DST, `is_open` and `business_between` match a direct reading
    /// of the calendar at every 5-minute step (all boundaries lie on that
    /// grid, including Kolkata's +05:30).
    #[test]
    fn matches_the_definition_where_there_is_no_dst(case in fixed_zone_case(), from_step in 0i64..(RANGE_END_SECS - RANGE_START_SECS) / 300, steps in 1i64..(10 * 288)) {
        let sched = case.schedule();
        let at_step = |step: i64| Utc.timestamp_opt(RANGE_START_SECS + step * 300, 0).single().expect("in range");
        let from = at_step(from_step);
        let to = at_step(from_step + steps);
        let mut open_steps = 0;
        for step in from_step..from_step + steps {
            let at = at_step(step);
            let expected = oracle_is_open(&case, at);
            prop_assert_eq!(sched.is_open(at), expected, "at {}", at);
            open_steps += i32::from(expected);
        }
        prop_assert_eq!(sched.business_between(from, to), Duration::minutes(5 * i64::from(open_steps)));
    }

    /// Business-day ends are later than the start, never decrease with the
    /// day count, and close open time.
    #[test]
    fn business_day_ends_advance(case in case(), start in instant(), days in 0u32..10) {
        let sched = case.schedule();
        let end = sched.end_of_business_day(start, days).expect("opens again");
        let next = sched.end_of_business_day(start, days + 1).expect("opens again");
        prop_assert!(start < end && end <= next);
        prop_assert!(sched.is_open(end - Duration::seconds(1)));
        prop_assert!(sched.is_open(next - Duration::seconds(1)));
    }
}
