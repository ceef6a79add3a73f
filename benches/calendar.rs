//! Calendar arithmetic on one thread: 200,000 reminders and due times
//! (`add_business` 16 business hours from a start, then `business_between`
//! them) on a New York weekday calendar, starts spread over two months.
//! Prints the best of seven rounds; run with `cargo bench --bench calendar`.

#![allow(clippy::unwrap_used)] // a bench fails by panicking

use chrono::{Duration, NaiveTime, TimeZone, Utc, Weekday};
use handoff::calendar::Schedule;
use handoff_model::{BusinessCalendar, WeeklyWindow};

fn main() {
    let at = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
    let weekly = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
        .into_iter()
        .map(|weekday| WeeklyWindow { weekday, start: at(9), end: at(17) })
        .collect();
    let calendar = BusinessCalendar { id: "ny".into(), time_zone: "America/New_York".into(), weekly, holidays: vec![] };
    let schedule = Schedule::new(&calendar).unwrap();
    let base = Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap();
    let mut best_secs = f64::MAX;
    let mut total_secs = 0i64;
    for _ in 0..7 {
        let started = std::time::Instant::now();
        for i in 0..200_000i64 {
            let start = base + Duration::minutes((i * 37) % (60 * 24 * 60));
            let due = schedule.add_business(start, Duration::hours(16)).unwrap();
            total_secs += schedule.business_between(start, due).num_seconds();
        }
        best_secs = best_secs.min(started.elapsed().as_secs_f64());
    }
    assert_eq!(total_secs, 7 * 200_000 * 16 * 3600, "every due time is 16 business hours on");
    println!("calendar: 200,000 due times and business spans in {best_secs:.3} s (best of 7)");
}
