//! Windows, reminders and escalation rungs turned into instants on one
//! owner's schedule.
//!
//! A clock's *elapsed time* is business time for business windows and wall
//! time for wall-clock windows, so "75 % of the window" and "2× the window"
//! mean the same share of the time the owner could actually work.

use chrono::{DateTime, Duration, Utc};

use crate::calendar::{CalendarError, Schedule};
use crate::policy::{After, Reminder, Window};

/// When a window that starts at `start` ends.
///
/// - `BusinessSeconds(n)`: `n` seconds of open time, counted from the next
///   opening when `start` is after hours.
/// - `EndOfBusinessDay { days_after }` and `BusinessDays(n)`: the close of
///   the business day `days_after`/`n` business days after the one containing
///   `start` ("same business day" is 0; "2 business days" from a Monday
///   morning is Wednesday's close).
/// - `WallClock(d)`: `start + d`, calendar ignored.
pub fn deadline(schedule: &Schedule, start: DateTime<Utc>, window: &Window) -> Result<DateTime<Utc>, CalendarError> {
    match window {
        Window::BusinessSeconds(secs) => schedule.add_business(start, Duration::seconds(*secs)),
        Window::EndOfBusinessDay { days_after } => schedule.end_of_business_day(start, *days_after),
        Window::BusinessDays(days) => schedule.end_of_business_day(start, *days),
        Window::WallClock(duration) => checked_add(schedule, start, *duration),
    }
}

/// When counting starts: the next opening for business windows (an
/// after-hours arrival waits for the desk), `start` itself for wall clock.
pub fn effective_start(
    schedule: &Schedule,
    start: DateTime<Utc>,
    window: &Window,
) -> Result<DateTime<Utc>, CalendarError> {
    match window {
        Window::WallClock(_) => Ok(start),
        _ => schedule.next_open(start),
    }
}

fn is_wall_clock(window: &Window) -> bool {
    matches!(window, Window::WallClock(_))
}

/// Elapsed clock time in `[from, to)` for a clock measured by `window`.
pub fn elapsed(schedule: &Schedule, window: &Window, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    if is_wall_clock(window) {
        (to - from).max(Duration::zero())
    } else {
        schedule.business_between(from, to)
    }
}

/// The instant `amount` of clock time after `from`.
pub fn advance(
    schedule: &Schedule,
    window: &Window,
    from: DateTime<Utc>,
    amount: Duration,
) -> Result<DateTime<Utc>, CalendarError> {
    if is_wall_clock(window) {
        checked_add(schedule, from, amount)
    } else {
        schedule.add_business(from, amount)
    }
}

fn checked_add(schedule: &Schedule, from: DateTime<Utc>, amount: Duration) -> Result<DateTime<Utc>, CalendarError> {
    from.checked_add_signed(amount)
        .ok_or_else(|| CalendarError::OutOfRange { calendar_id: schedule.id().to_string(), from })
}

fn scale(duration: Duration, factor: f64) -> Duration {
    let secs = (duration.num_seconds() as f64 * factor).round();
    if secs.is_finite() && secs >= 0.0 && secs < i64::MAX as f64 {
        Duration::seconds(secs as i64)
    } else {
        Duration::zero()
    }
}

/// A fixed amount of time from a window, when it has one (a day-based window
/// has no fixed length and cannot be used as "N before the due time").
fn fixed_amount(window: &Window) -> Option<Duration> {
    match window {
        Window::BusinessSeconds(secs) => Some(Duration::seconds(*secs)),
        Window::WallClock(duration) => Some(*duration),
        Window::EndOfBusinessDay { .. } | Window::BusinessDays(_) => None,
    }
}

/// The reminder point of a clock running from `start` (already effective) to
/// `due`, or `None` when the reminder cannot be placed (a day-based "before"
/// amount).
pub fn remind_at(
    schedule: &Schedule,
    window: &Window,
    start: DateTime<Utc>,
    due: DateTime<Utc>,
    reminder: &Reminder,
) -> Result<Option<DateTime<Utc>>, CalendarError> {
    let total = elapsed(schedule, window, start, due);
    let offset = match reminder {
        Reminder::FractionElapsed(share) => scale(total, share.clamp(0.0, 1.0)),
        Reminder::Before(before) => match fixed_amount(before) {
            Some(amount) => (total - amount).max(Duration::zero()),
            None => return Ok(None),
        },
    };
    // Advancing by the whole window would land on the due time itself; keep
    // the reminder strictly before it when there is any time at all.
    advance(schedule, window, start, offset).map(|at| Some(at.min(due)))
}

/// When an escalation rung fires for a clock from `start` (effective) to `due`.
pub fn rung_at(
    schedule: &Schedule,
    window: &Window,
    start: DateTime<Utc>,
    due: DateTime<Utc>,
    after: &After,
) -> Result<DateTime<Utc>, CalendarError> {
    match after {
        After::AtBreach => Ok(due),
        After::Delay(delay) => match delay {
            // A wall-clock delay after a business deadline stays wall clock;
            // a business delay counts the owner's open time after the breach.
            Window::WallClock(duration) => checked_add(schedule, due, *duration),
            other => deadline(schedule, due, other),
        },
        After::WindowMultiple(multiple) => {
            let total = elapsed(schedule, window, start, due);
            let at = advance(schedule, window, start, scale(total, multiple.max(0.0)))?;
            Ok(at.max(due))
        }
    }
}
