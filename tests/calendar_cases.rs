//! Worked examples for business-time arithmetic, each expectation computed by
//! hand (the UTC instants are written out; comments give the local reading).
//!
//! 2026 DST dates used: New York springs forward Sun 2026-03-08 02:00 EST →
//! 03:00 EDT and falls back Sun 2026-11-01 02:00 EDT → 01:00 EST; London
//! springs forward Sun 2026-03-29 01:00 GMT → 02:00 BST and falls back Sun
//! 2026-10-25 02:00 BST → 01:00 GMT.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use handoff::calendar::{CalendarError, Schedule};
use handoff_model::{BusinessCalendar, Holiday, WeeklyWindow};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("test instant").with_timezone(&Utc)
}

fn t(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M").expect("test time")
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

fn window(weekday: Weekday, start: &str, end: &str) -> WeeklyWindow {
    WeeklyWindow { weekday, start: t(start), end: t(end) }
}

fn holiday(date: &str) -> Holiday {
    Holiday { date: d(date), name: None, start: None, end: None }
}

fn calendar(id: &str, zone: &str, weekly: Vec<WeeklyWindow>, holidays: Vec<Holiday>) -> Schedule {
    Schedule::new(&BusinessCalendar { id: id.into(), time_zone: zone.into(), weekly, holidays })
        .expect("valid test calendar")
}

const WEEKDAYS: [Weekday; 5] = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];

/// Monday–Friday 09:00–17:00 in `zone`.
fn nine_to_five(zone: &str, holidays: Vec<Holiday>) -> Schedule {
    let weekly = WEEKDAYS.iter().map(|&day| window(day, "09:00", "17:00")).collect();
    calendar("office", zone, weekly, holidays)
}

fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

// ---------------------------------------------------------------- basics

#[test]
fn friday_evening_lead_with_one_business_hour_is_due_monday_ten() {
    let sched = nine_to_five("America/New_York", vec![]);
    // Fri 2026-01-09 18:00 EST.
    let arrived = utc("2026-01-09T23:00:00Z");
    assert!(!sched.is_open(arrived));
    // Opens Mon 2026-01-12 09:00 EST.
    assert_eq!(sched.next_open(arrived).unwrap(), utc("2026-01-12T14:00:00Z"));
    // Due Mon 10:00 EST.
    assert_eq!(sched.add_business(arrived, hours(1)).unwrap(), utc("2026-01-12T15:00:00Z"));
    assert_eq!(sched.add_business(arrived, Duration::zero()).unwrap(), utc("2026-01-12T14:00:00Z"));
}

#[test]
fn intervals_are_half_open_and_due_times_may_equal_closing() {
    let sched = nine_to_five("America/New_York", vec![]);
    // Mon 2026-01-12 09:00 and 17:00 EST.
    let (open, close) = (utc("2026-01-12T14:00:00Z"), utc("2026-01-12T22:00:00Z"));
    assert!(sched.is_open(open));
    assert!(sched.is_open(close - Duration::seconds(1)));
    assert!(!sched.is_open(close));
    // 8 business hours from opening end exactly at 17:00, not at Tue 09:00.
    assert_eq!(sched.add_business(open, hours(8)).unwrap(), close);
    // One more second spills into Tuesday 09:00:01 EST.
    assert_eq!(sched.add_business(open, hours(8) + Duration::seconds(1)).unwrap(), utc("2026-01-13T14:00:01Z"));
}

#[test]
fn same_business_day_and_end_of_business_day_plus_two() {
    let sched = nine_to_five("America/New_York", vec![]);
    // Wed 2026-01-14 11:00 EST: same day ends Wed 17:00 EST, +2 ends Fri 17:00 EST.
    let wed_late_morning = utc("2026-01-14T16:00:00Z");
    assert_eq!(sched.end_of_business_day(wed_late_morning, 0).unwrap(), utc("2026-01-14T22:00:00Z"));
    assert_eq!(sched.end_of_business_day(wed_late_morning, 2).unwrap(), utc("2026-01-16T22:00:00Z"));
    // Before opening (Wed 07:00 EST) still counts as Wednesday.
    assert_eq!(sched.end_of_business_day(utc("2026-01-14T12:00:00Z"), 0).unwrap(), utc("2026-01-14T22:00:00Z"));
    // At closing (Wed 17:00 EST) counts from Thursday.
    assert_eq!(sched.end_of_business_day(utc("2026-01-14T22:00:00Z"), 0).unwrap(), utc("2026-01-15T22:00:00Z"));
    // Fri 2026-01-16 18:00 EST: day 0 is Mon 01-19, +2 is Wed 01-21 17:00 EST.
    assert_eq!(sched.end_of_business_day(utc("2026-01-16T23:00:00Z"), 2).unwrap(), utc("2026-01-21T22:00:00Z"));
    // Saturday counts from Monday.
    assert_eq!(sched.end_of_business_day(utc("2026-01-17T15:00:00Z"), 0).unwrap(), utc("2026-01-19T22:00:00Z"));
}

#[test]
fn a_calendar_without_working_time_is_rejected_by_name() {
    let err = Schedule::new(&BusinessCalendar {
        id: "emea-closed".into(),
        time_zone: "Europe/London".into(),
        weekly: vec![],
        holidays: vec![holiday("2026-12-25")],
    })
    .unwrap_err();
    assert_eq!(err, CalendarError::NoWorkingTime { calendar_id: "emea-closed".into() });
    let msg = err.to_string();
    assert!(msg.contains("emea-closed") && msg.contains("add at least one weekly window"), "{msg}");
}

#[test]
fn a_negative_duration_is_an_error() {
    let sched = nine_to_five("UTC", vec![]);
    let err = sched.add_business(utc("2026-01-12T10:00:00Z"), Duration::seconds(-5)).unwrap_err();
    assert_eq!(err, CalendarError::NegativeDuration { calendar_id: "office".into(), duration_secs: -5 });
}

#[test]
fn durations_count_whole_seconds_and_instants_keep_their_precision() {
    let sched = nine_to_five("UTC", vec![]);
    // Mon 2026-01-12 09:00:00.5 + 1.7 s of business time: the 0.7 s is dropped.
    let start = utc("2026-01-12T09:00:00.5Z");
    let due = sched.add_business(start, Duration::milliseconds(1700)).unwrap();
    assert_eq!(due, utc("2026-01-12T09:00:01.5Z"));
    assert_eq!(sched.business_between(start, due), Duration::seconds(1));
    // From 16:59:59.5, 1 s crosses the night: 0.5 s Monday, 0.5 s Tuesday.
    let due = sched.add_business(utc("2026-01-12T16:59:59.5Z"), Duration::seconds(1)).unwrap();
    assert_eq!(due, utc("2026-01-13T09:00:00.5Z"));
}

// ---------------------------------------------------------------- holidays

#[test]
fn a_monday_holiday_is_skipped() {
    // Mon 2026-01-19 closed.
    let sched = nine_to_five("America/New_York", vec![holiday("2026-01-19")]);
    // Fri 2026-01-16 16:30 EST + 1 h = 30 min Friday + 30 min Tuesday → Tue 09:30 EST.
    assert_eq!(sched.add_business(utc("2026-01-16T21:30:00Z"), hours(1)).unwrap(), utc("2026-01-20T14:30:00Z"));
    // Nothing open on Monday local.
    assert!(sched.open_intervals(utc("2026-01-19T05:00:00Z"), utc("2026-01-20T05:00:00Z")).is_empty());
    // A Saturday lead's "same business day" is Tuesday.
    assert_eq!(sched.end_of_business_day(utc("2026-01-17T15:00:00Z"), 0).unwrap(), utc("2026-01-20T22:00:00Z"));
    // Fri 17:00 EST to Wed 09:00 EST is one business day (Tuesday).
    assert_eq!(sched.business_between(utc("2026-01-16T22:00:00Z"), utc("2026-01-21T14:00:00Z")), hours(8));
}

#[test]
fn partial_holidays_remove_only_their_hours() {
    let sched = nine_to_five(
        "America/New_York",
        vec![
            // Christmas Eve (Thu): closed from 13:00 to the end of the day.
            Holiday { date: d("2026-12-24"), name: Some("Christmas Eve".into()), start: Some(t("13:00")), end: None },
            holiday("2026-12-25"),
            // New Year's Eve (Thu): closed 12:00–14:00.
            Holiday { date: d("2026-12-31"), name: None, start: Some(t("12:00")), end: Some(t("14:00")) },
        ],
    );
    // Thu 12-24 12:00 EST + 2 h = 1 h Thursday (12–13) + 1 h Monday 12-28 → 10:00 EST.
    assert_eq!(sched.add_business(utc("2026-12-24T17:00:00Z"), hours(2)).unwrap(), utc("2026-12-28T15:00:00Z"));
    // Christmas Eve's business day ends at 13:00 EST.
    assert_eq!(sched.end_of_business_day(utc("2026-12-24T15:00:00Z"), 0).unwrap(), utc("2026-12-24T18:00:00Z"));
    // New Year's Eve: 09–12 and 14–17 EST.
    assert_eq!(
        sched.open_intervals(utc("2026-12-31T05:00:00Z"), utc("2027-01-01T05:00:00Z")),
        vec![
            (utc("2026-12-31T14:00:00Z"), utc("2026-12-31T17:00:00Z")),
            (utc("2026-12-31T19:00:00Z"), utc("2026-12-31T22:00:00Z")),
        ]
    );
    assert!(!sched.is_open(utc("2026-12-31T18:00:00Z")));
}

#[test]
fn a_night_shift_into_a_holiday_loses_only_the_part_after_midnight() {
    // Weeknights 22:00–06:00 New York; New Year's Day (Fri 2027-01-01) closed.
    let weekly = WEEKDAYS.iter().map(|&day| window(day, "22:00", "06:00")).collect();
    let sched = calendar("night-desk", "America/New_York", weekly, vec![holiday("2027-01-01")]);
    // From Thu 2026-12-31 00:00 EST to Sat 2027-01-02 12:00 EST:
    // - Wednesday's shift, 00:00–06:00 Thursday 12-31 (clipped at the start);
    // - Thursday 12-31's shift keeps 22:00–24:00 and loses 01-01 00:00–06:00;
    // - the holiday's own shift (Fri 01-01 22:00) loses 22:00–24:00 and keeps
    //   Sat 01-02 00:00–06:00.
    assert_eq!(
        sched.open_intervals(utc("2026-12-31T05:00:00Z"), utc("2027-01-02T17:00:00Z")),
        vec![
            (utc("2026-12-31T05:00:00Z"), utc("2026-12-31T11:00:00Z")),
            (utc("2027-01-01T03:00:00Z"), utc("2027-01-01T05:00:00Z")),
            (utc("2027-01-02T05:00:00Z"), utc("2027-01-02T11:00:00Z")),
        ]
    );
    // A lead at Thu 12-31 23:00 EST with 3 business hours: 1 h to midnight,
    // then the holiday, then Sat 00:00 EST + 2 h.
    assert_eq!(sched.add_business(utc("2027-01-01T04:00:00Z"), hours(3)).unwrap(), utc("2027-01-02T07:00:00Z"));
    // Thursday's business day ends at the holiday's midnight.
    assert_eq!(sched.end_of_business_day(utc("2027-01-01T04:00:00Z"), 0).unwrap(), utc("2027-01-01T05:00:00Z"));
}

// ---------------------------------------------------------------- DST, New York

/// Sundays 00:00–04:00 (covers 01:00–03:00), Saturdays overnight 22:00–06:00.
fn weekend_desk(zone: &str) -> Schedule {
    calendar(
        "weekend-desk",
        zone,
        vec![window(Weekday::Sun, "00:00", "04:00"), window(Weekday::Sat, "22:00", "06:00")],
        vec![],
    )
}

#[test]
fn new_york_spring_forward() {
    let sched = weekend_desk("America/New_York");
    // Sat 03-07 22:00 EST = 03:00Z; the Sunday window 00:00 EST–04:00 EDT and
    // the overnight shift end 06:00 EDT = 10:00Z; 7 h of real time in all.
    let day = sched.open_intervals(utc("2026-03-07T05:00:00Z"), utc("2026-03-09T04:00:00Z"));
    assert_eq!(day, vec![(utc("2026-03-08T03:00:00Z"), utc("2026-03-08T10:00:00Z"))]);
    assert_eq!(sched.business_between(utc("2026-03-07T05:00:00Z"), utc("2026-03-09T04:00:00Z")), hours(7));

    // Sunday 00:00–04:00 alone is 3 h on this day.
    let sunday = calendar("sun", "America/New_York", vec![window(Weekday::Sun, "00:00", "04:00")], vec![]);
    assert_eq!(
        sunday.open_intervals(utc("2026-03-08T00:00:00Z"), utc("2026-03-09T00:00:00Z")),
        vec![(utc("2026-03-08T05:00:00Z"), utc("2026-03-08T08:00:00Z"))]
    );
    // 2 business hours from 00:00 EST is 03:00 EDT (02:00 never happens).
    assert_eq!(sunday.add_business(utc("2026-03-08T05:00:00Z"), hours(2)).unwrap(), utc("2026-03-08T07:00:00Z"));

    // Saturday overnight alone: 22:00 EST → 06:00 EDT is 7 h.
    let saturday = calendar("sat", "America/New_York", vec![window(Weekday::Sat, "22:00", "06:00")], vec![]);
    assert_eq!(
        saturday.open_intervals(utc("2026-03-07T12:00:00Z"), utc("2026-03-08T20:00:00Z")),
        vec![(utc("2026-03-08T03:00:00Z"), utc("2026-03-08T10:00:00Z"))]
    );
}

#[test]
fn new_york_small_hours_window_is_one_hour_in_march_and_three_in_november() {
    let sched = calendar("smh", "America/New_York", vec![window(Weekday::Sun, "01:00", "03:00")], vec![]);
    // 2026-03-08: 01:00 EST = 06:00Z to 03:00 EDT = 07:00Z.
    assert_eq!(
        sched.open_intervals(utc("2026-03-08T00:00:00Z"), utc("2026-03-09T00:00:00Z")),
        vec![(utc("2026-03-08T06:00:00Z"), utc("2026-03-08T07:00:00Z"))]
    );
    // 2026-11-01: 01:00 EDT (first occurrence) = 05:00Z to 03:00 EST = 08:00Z.
    assert_eq!(
        sched.open_intervals(utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z")),
        vec![(utc("2026-11-01T05:00:00Z"), utc("2026-11-01T08:00:00Z"))]
    );
    // The second 01:30 (EST, 06:30Z) is open: the window runs until 03:00 EST.
    assert!(sched.is_open(utc("2026-11-01T06:30:00Z")));
}

#[test]
fn new_york_window_inside_the_gap_moves_forward_by_the_gap() {
    // 02:00–02:30 does not exist on 2026-03-08; both ends move one hour on:
    // 03:00–03:30 EDT = 07:00Z–07:30Z.
    let sched = calendar("gap", "America/New_York", vec![window(Weekday::Sun, "02:00", "02:30")], vec![]);
    assert_eq!(
        sched.open_intervals(utc("2026-03-08T00:00:00Z"), utc("2026-03-09T00:00:00Z")),
        vec![(utc("2026-03-08T07:00:00Z"), utc("2026-03-08T07:30:00Z"))]
    );
    // From Sat 2026-03-07 noon EST the next opening is that 03:00 EDT.
    assert_eq!(sched.next_open(utc("2026-03-07T17:00:00Z")).unwrap(), utc("2026-03-08T07:00:00Z"));
}

#[test]
fn new_york_fall_back() {
    let sched = weekend_desk("America/New_York");
    // Sat 10-31 22:00 EDT = 02:00Z; 06:00 EST on Sunday = 11:00Z: 9 h.
    let span = (utc("2026-10-31T04:00:00Z"), utc("2026-11-02T05:00:00Z"));
    assert_eq!(sched.open_intervals(span.0, span.1), vec![(utc("2026-11-01T02:00:00Z"), utc("2026-11-01T11:00:00Z"))]);
    assert_eq!(sched.business_between(span.0, span.1), hours(9));

    // Sunday 00:00 EDT (04:00Z) – 04:00 EST (09:00Z) is 5 h.
    let sunday = calendar("sun", "America/New_York", vec![window(Weekday::Sun, "00:00", "04:00")], vec![]);
    assert_eq!(
        sunday.open_intervals(utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z")),
        vec![(utc("2026-11-01T04:00:00Z"), utc("2026-11-01T09:00:00Z"))]
    );
    // 5 h from opening is exactly closing; 5 h + 1 s is next Sunday 00:00:01 EST.
    assert_eq!(sunday.add_business(utc("2026-11-01T04:00:00Z"), hours(5)).unwrap(), utc("2026-11-01T09:00:00Z"));
    assert_eq!(
        sunday.add_business(utc("2026-11-01T04:00:00Z"), hours(5) + Duration::seconds(1)).unwrap(),
        utc("2026-11-08T05:00:01Z")
    );
    // A window starting at the ambiguous 01:30 starts at its first occurrence (EDT).
    let ambiguous = calendar("amb", "America/New_York", vec![window(Weekday::Sun, "01:30", "03:00")], vec![]);
    assert_eq!(
        ambiguous.open_intervals(utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z")),
        vec![(utc("2026-11-01T05:30:00Z"), utc("2026-11-01T08:00:00Z"))]
    );
}

#[test]
fn twenty_four_hour_windows_last_23_and_25_hours_on_dst_weekends() {
    let sched = calendar("allday", "America/New_York", vec![window(Weekday::Sat, "12:00", "12:00")], vec![]);
    // Sat 03-07 12:00 EST (17:00Z) → Sun 12:00 EDT (16:00Z): 23 h.
    assert_eq!(
        sched.open_intervals(utc("2026-03-07T00:00:00Z"), utc("2026-03-09T00:00:00Z")),
        vec![(utc("2026-03-07T17:00:00Z"), utc("2026-03-08T16:00:00Z"))]
    );
    // Sat 10-31 12:00 EDT (16:00Z) → Sun 12:00 EST (17:00Z): 25 h.
    assert_eq!(sched.business_between(utc("2026-10-31T00:00:00Z"), utc("2026-11-02T00:00:00Z")), hours(25));
}

// ---------------------------------------------------------------- DST, London

#[test]
fn london_spring_forward() {
    let sched = weekend_desk("Europe/London");
    // Sat 03-28 22:00 GMT (22:00Z) → Sun 06:00 BST (05:00Z): 7 h.
    let span = (utc("2026-03-28T00:00:00Z"), utc("2026-03-30T00:00:00Z"));
    assert_eq!(sched.open_intervals(span.0, span.1), vec![(utc("2026-03-28T22:00:00Z"), utc("2026-03-29T05:00:00Z"))]);
    // Sunday 01:00–03:00 local: 01:00 is in the gap → 02:00 BST = 01:00Z;
    // 03:00 BST = 02:00Z: one real hour.
    let small_hours = calendar("smh", "Europe/London", vec![window(Weekday::Sun, "01:00", "03:00")], vec![]);
    assert_eq!(
        small_hours.open_intervals(span.0, span.1),
        vec![(utc("2026-03-29T01:00:00Z"), utc("2026-03-29T02:00:00Z"))]
    );
    // 00:00 GMT + 1 h 30 business minutes on the Sunday 00:00–04:00 window is 02:30 BST.
    let sunday = calendar("sun", "Europe/London", vec![window(Weekday::Sun, "00:00", "04:00")], vec![]);
    assert_eq!(
        sunday.add_business(utc("2026-03-29T00:00:00Z"), Duration::minutes(90)).unwrap(),
        utc("2026-03-29T01:30:00Z")
    );
    assert_eq!(sunday.business_between(span.0, span.1), hours(3));
}

#[test]
fn london_fall_back() {
    let sched = weekend_desk("Europe/London");
    // Sat 10-24 22:00 BST (21:00Z) → Sun 06:00 GMT (06:00Z): 9 h.
    let span = (utc("2026-10-24T00:00:00Z"), utc("2026-10-26T00:00:00Z"));
    assert_eq!(sched.open_intervals(span.0, span.1), vec![(utc("2026-10-24T21:00:00Z"), utc("2026-10-25T06:00:00Z"))]);
    // Sunday 01:00–03:00: 01:00 is ambiguous → first (BST) = 00:00Z; 03:00 GMT = 03:00Z: 3 h.
    let small_hours = calendar("smh", "Europe/London", vec![window(Weekday::Sun, "01:00", "03:00")], vec![]);
    assert_eq!(small_hours.business_between(span.0, span.1), hours(3));
    // 2 h 30 from 01:00 BST lands on 02:30 GMT (the clock passed 01:xx twice).
    assert_eq!(
        small_hours.add_business(utc("2026-10-25T00:00:00Z"), Duration::minutes(150)).unwrap(),
        utc("2026-10-25T02:30:00Z")
    );
}

// ---------------------------------------------------------------- owner zones

#[test]
fn an_apac_rep_reads_weekly_hours_in_their_own_zone() {
    // The US calendar, with Martin Luther King Day (Mon 2027-01-18) closed.
    let us = nine_to_five("America/New_York", vec![holiday("2027-01-18")]);
    let sydney = us.with_time_zone(chrono_tz::Australia::Sydney);
    assert_eq!(sydney.time_zone(), chrono_tz::Australia::Sydney);
    assert_eq!(sydney.id(), "office");

    // Mon 2027-01-11 08:00 AEDT (+11) = Sun 21:00Z; +1 h → Mon 10:00 AEDT = 23:00Z.
    let arrived = utc("2027-01-10T21:00:00Z");
    assert_eq!(sydney.add_business(arrived, hours(1)).unwrap(), utc("2027-01-10T23:00:00Z"));
    // The New York schedule would still be closed (Sunday 17:00 EST).
    assert!(!us.is_open(utc("2027-01-10T22:00:00Z")));
    assert!(sydney.is_open(utc("2027-01-10T22:00:00Z")));

    // The holiday falls on the rep's own Monday 18 January: Sydney is
    // closed all of it and open all of Tuesday, 09:00–17:00 AEDT.
    let monday_sydney = utc("2027-01-17T13:00:00Z"); // Mon 00:00 AEDT
    let wednesday_sydney = utc("2027-01-19T13:00:00Z"); // Wed 00:00 AEDT
    assert_eq!(
        sydney.open_intervals(monday_sydney, wednesday_sydney),
        vec![(utc("2027-01-18T22:00:00Z"), utc("2027-01-19T06:00:00Z"))]
    );
}

#[test]
fn a_holiday_closes_the_whole_local_date_of_a_kolkata_rep() {
    // Memorial Day 2026 (Mon 25 May) on the US calendar, read by a rep in
    // Kolkata (UTC+05:30, no DST): closed all of Monday in Kolkata, not
    // 09:30–24:00 IST (New York's day) with 09:00–09:30 left open.
    let us = nine_to_five("America/New_York", vec![holiday("2026-05-25")]);
    let kolkata = us.with_time_zone(chrono_tz::Asia::Kolkata);
    let monday = utc("2026-05-24T18:30:00Z"); // Mon 00:00 IST
    let tuesday = utc("2026-05-25T18:30:00Z"); // Tue 00:00 IST
    assert!(kolkata.open_intervals(monday, tuesday).is_empty());
    // Friday 16:30 IST + 1 business hour: 30 minutes on Friday, then Tuesday 09:30.
    assert_eq!(kolkata.add_business(utc("2026-05-22T11:00:00Z"), hours(1)).unwrap(), utc("2026-05-26T04:00:00Z"));
    // A part-day closure is read in the rep's zone too.
    let weekly = WEEKDAYS.iter().map(|&day| window(day, "09:00", "17:00")).collect();
    let christmas_eve = Holiday { start: Some(t("13:00")), ..holiday("2026-12-24") };
    let sched =
        calendar("us", "America/New_York", weekly, vec![christmas_eve]).with_time_zone(chrono_tz::Asia::Kolkata);
    let thursday = utc("2026-12-23T18:30:00Z"); // Thu 24 Dec 00:00 IST
    assert_eq!(
        sched.open_intervals(thursday, thursday + hours(24)),
        vec![(utc("2026-12-24T03:30:00Z"), utc("2026-12-24T07:30:00Z"))],
        "open 09:00–13:00 IST"
    );
}
