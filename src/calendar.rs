//! Business-time arithmetic.
//!
//! A [`Schedule`] turns a [`BusinessCalendar`] (weekly local-time windows,
//! holidays by local date) into open intervals on the UTC time line, and
//! answers the questions an SLA clock asks: is the desk open now, when does it
//! open next, when is something due N business minutes from now, how much
//! business time lies between two instants, and when does the Nth business day
//! end.
//!
//! # Semantics
//!
//! The rules are those of the `workclock` crate, chosen because they stay
//! correct across DST changes and night shifts (`biz`, behind Zammad, instead
//! keeps or drops a whole night shift by the date it starts on):
//!
//! - **Half-open intervals.** A window `09:00–17:00` is open on
//!   `[09:00, 17:00)`: open at 09:00 sharp, closed at 17:00 sharp.
//! - **After-hours arrivals.** A lead arriving after hours, on a weekend or on
//!   a holiday starts its clock at the next opening:
//!   [`Schedule::add_business`] first moves `start` to
//!   [`Schedule::next_open`], so `add_business(s, 0) == next_open(s)`.
//! - **Due times land on business time.** For a positive duration the result
//!   of `add_business` always lies in `(open, close]` of an open interval: it
//!   may equal a closing instant (due at 17:00 sharp), never a closed instant.
//! - **Civil-date stepping.** The schedule is expanded one local date at a
//!   time, never by adding 86,400 s, so 23 h and 25 h days come out right.
//! - **DST.** A window boundary whose local time does not exist (the
//!   spring-forward gap) moves forward by the length of the gap (02:30 in New
//!   York on a spring-forward Sunday is 03:30 EDT). An ambiguous local time
//!   (fall back) resolves to the earlier instant. This is jiff's "compatible"
//!   disambiguation, and the same as `workclock` and `biz`.
//! - **Night shifts.** A window whose `end <= start` runs past midnight into the
//!   next local date; `start == end` is 24 hours (of local clock time, so 23 h
//!   or 25 h of real time across a DST change). Such a window belongs to the
//!   weekday it starts on.
//! - **Holidays.** A holiday removes its local date's `00:00–24:00` and nothing
//!   else: a night shift starting the evening before a holiday keeps its
//!   pre-midnight part and loses only the part after midnight. A partial
//!   holiday removes `[start, end)` of its date (a missing `start` means 00:00,
//!   a missing `end` means the end of the day).
//! - **Whose zone.** Weekly hours and holidays are read in the schedule's
//!   zone, which [`Schedule::with_time_zone`] can replace by an owner's own
//!   zone (an APAC rep working 09:00–17:00 Sydney time). A holiday written as
//!   a date closes that whole date where the time is counted: a Kolkata rep
//!   on a New York calendar is closed all of Memorial Day in Kolkata, not
//!   from 09:30 IST (New York's midnight) on. A part-day closure is read the
//!   same way, in the owner's local time.
//! - **Bounded searches.** Days with no open time are skipped. Every forward
//!   search gives up after 366 days plus 7 days per holiday (at most 52 of
//!   them: two years in all) without open time and returns
//!   [`CalendarError::NoOpenTime`] rather than looping; a calendar
//!   with no weekly windows at all is rejected by [`Schedule::new`].
//! - **Precision.** Durations count whole seconds: a sub-second part of a
//!   duration passed to `add_business` is dropped, and window and holiday
//!   times must be whole seconds. Instants keep whatever precision they have,
//!   so `business_between(s, add_business(s, d)) == d` holds exactly for
//!   whole-second `d`.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use handoff_model::{BusinessCalendar, Holiday};
use rustc_hash::FxHashMap;

/// Holidays that lengthen a search for open time (by a week each).
const MAX_COUNTED_HOLIDAYS: u32 = 52;

thread_local! {
    static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Each date's weekly windows resolved to UTC, by schedule layout
    /// ([`Schedule::layout`]) and date: resolving a local time in a zone
    /// is the costly part of calendar arithmetic, and the leads judged on
    /// one thread ask about the same few weeks again and again.
    static DAY_WINDOWS: std::cell::RefCell<FxHashMap<(u64, NaiveDate), Spans>> =
        std::cell::RefCell::new(FxHashMap::default());
}

/// Dates a thread remembers the windows of before it starts over.
const REMEMBERED_DAYS: usize = 4_096;

fn label(id: &str, tz: Tz) -> String {
    format!("{id} ({})", tz.name())
}

/// Numbers schedule layouts (weekly windows in a zone) apart.
static NEXT_LAYOUT: AtomicU64 = AtomicU64::new(0);

fn new_layout() -> u64 {
    NEXT_LAYOUT.fetch_add(1, AtomicOrdering::Relaxed)
}

/// Units of calendar work this thread has done: one per local date
/// expanded, per weekly window resolved on it and per holiday span it was
/// checked against. Work, not time: a test bounds what an evaluation costs
/// with it without racing a clock.
pub fn work_steps() -> u64 {
    STEPS.with(|s| s.get())
}

fn count_steps(n: usize) {
    STEPS.with(|s| s.set(s.get().saturating_add(n as u64)));
}

/// Why a calendar cannot be used, or why a question about it has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error(
        "calendar `{calendar_id}`: unknown time zone `{zone}`; use an IANA zone name such as `America/New_York` or `UTC`"
    )]
    UnknownTimeZone { calendar_id: String, zone: String },

    #[error(
        "calendar `{calendar_id}` has no working time at all; add at least one weekly window (e.g. Monday 09:00–17:00)"
    )]
    NoWorkingTime { calendar_id: String },

    #[error("calendar `{calendar_id}`: the {weekday} window {start}–{end} is invalid: {reason}")]
    InvalidWindow { calendar_id: String, weekday: Weekday, start: NaiveTime, end: NaiveTime, reason: String },

    #[error("calendar `{calendar_id}`: the holiday on {date} is invalid: {reason}")]
    InvalidHoliday { calendar_id: String, date: NaiveDate, reason: String },

    #[error(
        "calendar `{calendar_id}` has no open time within {searched_days} days after {from}; check its weekly hours and holidays"
    )]
    NoOpenTime { calendar_id: String, from: DateTime<Utc>, searched_days: u32 },

    #[error("calendar `{calendar_id}`: a business duration cannot be negative (got {duration_secs} s)")]
    NegativeDuration { calendar_id: String, duration_secs: i64 },

    #[error("calendar `{calendar_id}`: the result lies beyond the supported date range (starting from {from})")]
    OutOfRange { calendar_id: String, from: DateTime<Utc> },
}

/// A validated business calendar ready for arithmetic. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Schedule {
    id: String,
    /// Zone the weekly windows and the holidays are read in.
    weekly_tz: Tz,
    /// The calendar's holidays, validated, for reading them in another zone.
    holidays: Vec<Holiday>,
    /// Windows by weekday, indexed by `Weekday::num_days_from_monday`,
    /// sorted by start time.
    weekly: [Vec<(NaiveTime, NaiveTime)>; 7],
    /// Closed spans removed by holidays (in `weekly_tz`), on the UTC line,
    /// sorted and merged.
    closed: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Days without open time after which a forward search gives up.
    search_limit_days: u32,
    /// Names `weekly` read in `weekly_tz`, which alone decide a date's
    /// resolved windows: schedules sharing it (clones, days off added)
    /// share what each thread remembers of them.
    layout: u64,
    /// `calendar (zone)`, as evaluations name the calendar a clock runs on.
    label: String,
}

/// Which schedule: the calendar, the zone it is read in (an owner's own),
/// and the owner when they have days off of their own.
pub type ScheduleKey = (String, Option<Tz>, Option<String>);

/// Schedules built under one policy, shared by every evaluation under it
/// (across threads): building one parses its calendar and lays out its
/// holidays in a zone, which a lead should not pay for again. A new policy
/// starts a new cache; clones of a policy share theirs.
#[derive(Debug, Clone, Default)]
pub struct ScheduleCache(std::sync::Arc<std::sync::RwLock<FxHashMap<ScheduleKey, std::sync::Arc<Schedule>>>>);

impl ScheduleCache {
    /// The schedule under `key`, built by `build` the first time.
    pub fn get_or_build<E>(
        &self,
        key: &ScheduleKey,
        build: impl FnOnce() -> Result<Schedule, E>,
    ) -> Result<std::sync::Arc<Schedule>, E> {
        if let Some(found) = self.0.read().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(found);
        }
        let built = std::sync::Arc::new(build()?);
        if let Ok(mut m) = self.0.write() {
            m.entry(key.clone()).or_insert_with(|| built.clone());
        }
        Ok(built)
    }
}

/// A cache says nothing about the policy it serves: two policies are equal
/// whatever either has built so far.
impl PartialEq for ScheduleCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Schedule {
    /// Validates `cal` and builds its schedule.
    ///
    /// Rejects an unknown zone, times with fractional seconds, a partial
    /// holiday whose end is not after its start, and a calendar without any
    /// weekly window.
    pub fn new(cal: &BusinessCalendar) -> Result<Schedule, CalendarError> {
        let id = cal.id.clone();
        let tz = Tz::from_str(cal.time_zone.trim())
            .map_err(|_| CalendarError::UnknownTimeZone { calendar_id: id.clone(), zone: cal.time_zone.clone() })?;
        if cal.weekly.is_empty() {
            return Err(CalendarError::NoWorkingTime { calendar_id: id });
        }

        let mut weekly: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        for window in &cal.weekly {
            if !is_whole_second(window.start) || !is_whole_second(window.end) {
                return Err(CalendarError::InvalidWindow {
                    calendar_id: id,
                    weekday: window.weekday,
                    start: window.start,
                    end: window.end,
                    reason: "times must be whole seconds (drop the fraction)".to_string(),
                });
            }
            weekly[window.weekday.num_days_from_monday() as usize].push((window.start, window.end));
        }
        for day in &mut weekly {
            day.sort();
            day.dedup();
        }

        for holiday in &cal.holidays {
            let invalid = |reason: &str| CalendarError::InvalidHoliday {
                calendar_id: id.clone(),
                date: holiday.date,
                reason: reason.to_string(),
            };
            let start = holiday.start.unwrap_or(NaiveTime::MIN);
            if !is_whole_second(start) || !holiday.end.is_none_or(is_whole_second) {
                return Err(invalid("times must be whole seconds (drop the fraction)"));
            }
            if holiday.end.is_some_and(|end| end <= start) {
                return Err(invalid(
                    "a partial holiday's `end` must be after its `start` on the same date; omit `end` to close until midnight",
                ));
            }
        }
        let closed = closed_spans(&id, tz, &cal.holidays)?;

        // Bounds the longest closed stretch of a calendar with weekly windows:
        // each holiday can close at most one more week, and a year is far
        // longer than any window a DST change swallows.
        // Counting at most a year's worth of weekly holidays keeps every
        // search within two years of dates, whatever the holiday list holds:
        // a calendar closed longer than that is broken, and says so.
        let holiday_count = u32::try_from(cal.holidays.len()).unwrap_or(u32::MAX).min(MAX_COUNTED_HOLIDAYS);
        let search_limit_days = 366u32.saturating_add(holiday_count.saturating_mul(7));
        Ok(Schedule {
            label: label(&id, tz),
            id,
            weekly_tz: tz,
            holidays: cal.holidays.clone(),
            weekly,
            closed,
            search_limit_days,
            layout: new_layout(),
        })
    }

    /// The same calendar read in `tz` (an owner's own zone): its weekly hours
    /// and its holidays' dates and times are local times there, so a rep
    /// keeps the region's holidays on their own calendar days.
    pub fn with_time_zone(&self, tz: Tz) -> Schedule {
        // The holidays were validated in `new`; a date chrono cannot place in
        // `tz` (outside its range) closes nothing rather than failing here.
        let closed = closed_spans(&self.id, tz, &self.holidays).unwrap_or_default();
        Schedule { weekly_tz: tz, closed, layout: new_layout(), label: label(&self.id, tz), ..self.clone() }
    }

    /// The same schedule closed all day on `days` as well (an owner's time
    /// off), read in its zone like the holidays.
    pub fn with_days_off(&self, days: &[NaiveDate]) -> Schedule {
        let mut holidays = self.holidays.clone();
        holidays.extend(days.iter().map(|d| Holiday {
            date: *d,
            name: Some("time off".into()),
            start: None,
            end: None,
        }));
        // Whole days always have a place in the zone; one chrono cannot
        // place closes nothing rather than failing here.
        let closed = closed_spans(&self.id, self.weekly_tz, &holidays).unwrap_or_else(|_| self.closed.clone());
        Schedule { holidays, closed, ..self.clone() }
    }

    /// The calendar's id, for logs and errors.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Zone the weekly hours and holidays are read in.
    pub fn time_zone(&self) -> Tz {
        self.weekly_tz
    }

    /// `calendar (zone)`: the calendar and the zone it is read in.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether `at` lies inside an open interval (`[open, close)`).
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        matches!(self.next_open(at), Ok(open) if open == at)
    }

    /// The first open instant at or after `at`; `at` itself when open.
    pub fn next_open(&self, at: DateTime<Utc>) -> Result<DateTime<Utc>, CalendarError> {
        let mut pieces = self.pieces_from(at, None);
        match pieces.next() {
            Some((open, _)) => Ok(open),
            None => Err(pieces.stop_error(at)),
        }
    }

    /// The instant `duration` of business time after `start`, counting from
    /// the next opening when `start` is closed. A positive result lies in
    /// `(open, close]` of an open interval; the sub-second part of `duration`
    /// is dropped.
    pub fn add_business(&self, start: DateTime<Utc>, duration: Duration) -> Result<DateTime<Utc>, CalendarError> {
        let mut remaining = Duration::seconds(duration.num_seconds());
        if remaining < Duration::zero() {
            return Err(CalendarError::NegativeDuration {
                calendar_id: self.id.clone(),
                duration_secs: remaining.num_seconds(),
            });
        }
        if remaining.is_zero() {
            return self.next_open(start);
        }
        let mut pieces = self.pieces_from(start, None);
        for (open, close) in pieces.by_ref() {
            let available = close - open;
            if remaining <= available {
                return open
                    .checked_add_signed(remaining)
                    .ok_or_else(|| CalendarError::OutOfRange { calendar_id: self.id.clone(), from: start });
            }
            remaining -= available;
        }
        Err(pieces.stop_error(start))
    }

    /// Open time in `[from, to)`; zero when `to <= from`.
    pub fn business_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        self.pieces_from(from, Some(to))
            .take_while(|(open, _)| *open < to)
            .map(|(open, close)| close.min(to) - open)
            .fold(Duration::zero(), |total, piece| total + piece)
    }

    /// End of the business day `days_after` business days after the one
    /// containing `start` (0 = "same business day"; a start after closing or
    /// on a closed day counts from the next business day).
    ///
    /// A business day is a local date (in the weekly zone) whose windows keep
    /// some open time after holidays; it ends at the latest closing of those
    /// windows, which for a night shift is on the following date. A start
    /// before opening or during a break belongs to that day. When a day's
    /// windows end before an earlier day's (a 24 h shift running past the
    /// next day's early window), the later end wins, so a deadline never
    /// moves backwards as `days_after` grows.
    pub fn end_of_business_day(&self, start: DateTime<Utc>, days_after: u32) -> Result<DateTime<Utc>, CalendarError> {
        let out_of_range = || CalendarError::OutOfRange { calendar_id: self.id.clone(), from: start };
        let no_open_time = || CalendarError::NoOpenTime {
            calendar_id: self.id.clone(),
            from: start,
            searched_days: self.search_limit_days,
        };
        // A night shift started on the previous date may still be running.
        let mut date = self.local_date(start).pred_opt().ok_or_else(out_of_range)?;
        let mut to_skip = days_after;
        let mut idle_days = 0u32;
        let mut latest_end = start;
        loop {
            if let Some(end) = self.business_day_end(date) {
                if end > start {
                    latest_end = latest_end.max(end);
                    if to_skip == 0 {
                        return Ok(latest_end);
                    }
                    to_skip -= 1;
                    idle_days = 0;
                }
            }
            idle_days += 1;
            if idle_days > self.search_limit_days {
                return Err(no_open_time());
            }
            date = date.succ_opt().ok_or_else(out_of_range)?;
        }
    }

    /// Open intervals overlapping `[from, to)`, clipped to it, merged and in
    /// order.
    pub fn open_intervals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if to <= from {
            return Vec::new();
        }
        let pieces = self
            .pieces_from(from, Some(to))
            .take_while(|(open, _)| *open < to)
            .map(|(open, close)| (open, close.min(to)));
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for (open, close) in pieces {
            match merged.last_mut() {
                Some(last) if open <= last.1 => last.1 = last.1.max(close),
                _ => merged.push((open, close)),
            }
        }
        merged
    }

    /// Local date of `at` in the weekly zone.
    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.weekly_tz).date_naive()
    }

    /// `each` over the windows starting on local `date`, resolved to UTC
    /// and sorted, as this thread remembers them.
    fn with_windows<R>(&self, date: NaiveDate, each: impl FnOnce(&[(DateTime<Utc>, DateTime<Utc>)]) -> R) -> R {
        count_steps(1 + self.weekly[weekday_index(date)].len());
        DAY_WINDOWS.with(|days| {
            let mut days = days.borrow_mut();
            let key = (self.layout, date);
            if days.len() >= REMEMBERED_DAYS && !days.contains_key(&key) {
                days.clear();
            }
            let windows = days.entry(key).or_insert_with(|| {
                let mut windows = self.raw_windows(date);
                windows.sort();
                windows
            });
            each(windows)
        })
    }

    /// The windows starting on local `date`, resolved to UTC, unsorted.
    /// Zero-length results (a window swallowed by a DST gap) are dropped.
    fn raw_windows(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let next_date = date.succ_opt();
        self.weekly[weekday_index(date)]
            .iter()
            .filter_map(|&(start, end)| {
                let open = resolve_local(self.weekly_tz, date.and_time(start))?;
                let close_date = if end > start { date } else { next_date? };
                let close = resolve_local(self.weekly_tz, close_date.and_time(end))?;
                (open < close).then_some((open, close))
            })
            .collect()
    }

    /// The latest closing of local `date`'s windows after holidays, or `None`
    /// when holidays (or DST) leave the date without open time.
    fn business_day_end(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        self.with_windows(date, |windows| {
            let mut latest = None;
            for &(open, close) in windows {
                each_open_piece(&self.closed, open, close, |(_, end)| latest = latest.max(Some(end)));
            }
            latest
        })
    }

    /// Disjoint open pieces from `from` on, in order. Adjacent pieces are
    /// not merged (a 24/7 calendar would otherwise never yield one).
    fn pieces_from(&self, from: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Pieces<'_> {
        let first_date = self.local_date(from).pred_opt();
        let last_date = until.and_then(|to| self.local_date(to).succ_opt());
        Pieces {
            schedule: self,
            next_date: first_date,
            last_date,
            covered_until: from,
            raw: VecDeque::new(),
            ready: VecDeque::new(),
            idle_days: 0,
            out_of_range: first_date.is_none(),
        }
    }
}

/// Iterator over disjoint open pieces, expanding one local date at a time.
///
/// Windows of date D start no earlier than those of D−1 (local-to-UTC
/// resolution is monotonic), so appending each date's windows sorted by start
/// keeps the whole stream sorted, and clipping each window at the furthest
/// close seen so far removes overlaps without waiting for later dates.
struct Pieces<'a> {
    schedule: &'a Schedule,
    next_date: Option<NaiveDate>,
    last_date: Option<NaiveDate>,
    /// Nothing before this instant is yielded again.
    covered_until: DateTime<Utc>,
    raw: VecDeque<(DateTime<Utc>, DateTime<Utc>)>,
    ready: VecDeque<(DateTime<Utc>, DateTime<Utc>)>,
    /// Dates expanded since the last yielded piece.
    idle_days: u32,
    out_of_range: bool,
}

impl Pieces<'_> {
    /// The error explaining why the iterator ended early.
    fn stop_error(&self, from: DateTime<Utc>) -> CalendarError {
        let calendar_id = self.schedule.id.clone();
        if self.out_of_range {
            CalendarError::OutOfRange { calendar_id, from }
        } else {
            CalendarError::NoOpenTime { calendar_id, from, searched_days: self.schedule.search_limit_days }
        }
    }
}

impl Iterator for Pieces<'_> {
    type Item = (DateTime<Utc>, DateTime<Utc>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(piece) = self.ready.pop_front() {
                self.idle_days = 0;
                return Some(piece);
            }
            if let Some((open, close)) = self.raw.pop_front() {
                let open = open.max(self.covered_until);
                if open < close {
                    self.covered_until = close;
                    let ready = &mut self.ready;
                    each_open_piece(&self.schedule.closed, open, close, |piece| ready.push_back(piece));
                }
                continue;
            }
            let date = self.next_date?;
            if self.last_date.is_some_and(|last| date > last) || self.idle_days > self.schedule.search_limit_days {
                return None;
            }
            self.schedule.with_windows(date, |windows| self.raw.extend(windows.iter().copied()));
            self.idle_days += 1;
            self.next_date = date.succ_opt();
            self.out_of_range = self.next_date.is_none();
        }
    }
}

/// Spans of the UTC line, `[start, end)`.
type Spans = Vec<(DateTime<Utc>, DateTime<Utc>)>;

/// The spans `holidays` close, read as local dates and times in `tz`,
/// sorted and merged. Each holiday was checked by [`Schedule::new`].
fn closed_spans(calendar_id: &str, tz: Tz, holidays: &[Holiday]) -> Result<Spans, CalendarError> {
    let mut closed = Vec::with_capacity(holidays.len());
    for holiday in holidays {
        let out_of_range = || CalendarError::InvalidHoliday {
            calendar_id: calendar_id.to_string(),
            date: holiday.date,
            reason: "the date is out of range".to_string(),
        };
        let start_local = holiday.date.and_time(holiday.start.unwrap_or(NaiveTime::MIN));
        let end_local = match holiday.end {
            Some(end) => holiday.date.and_time(end),
            None => next_midnight(holiday.date).ok_or_else(out_of_range)?,
        };
        let (Some(from), Some(to)) = (resolve_local(tz, start_local), resolve_local(tz, end_local)) else {
            return Err(out_of_range());
        };
        // A partial holiday inside a DST gap can be empty.
        if from < to {
            closed.push((from, to));
        }
    }
    closed.sort();
    Ok(merge_sorted(closed))
}

/// `[open, close)` minus the sorted, merged `closed` spans.
#[cfg(test)]
fn subtract_closed(
    closed: &[(DateTime<Utc>, DateTime<Utc>)],
    open: DateTime<Utc>,
    close: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut pieces = Vec::new();
    each_open_piece(closed, open, close, |piece| pieces.push(piece));
    pieces
}

/// `each` over the pieces of `[open, close)` outside the sorted, merged
/// `closed` spans, in order (no list built: most windows meet no holiday).
fn each_open_piece(
    closed: &[(DateTime<Utc>, DateTime<Utc>)],
    open: DateTime<Utc>,
    close: DateTime<Utc>,
    mut each: impl FnMut((DateTime<Utc>, DateTime<Utc>)),
) {
    let mut cursor = open;
    let first = closed.partition_point(|&(_, end)| end <= open);
    for &(hole_start, hole_end) in closed[first..].iter().take_while(|&&(start, _)| start < close) {
        count_steps(1);
        if hole_start > cursor {
            each((cursor, hole_start));
        }
        cursor = cursor.max(hole_end);
    }
    if cursor < close {
        each((cursor, close));
    }
}

/// Merges overlapping or touching spans of a list sorted by start.
fn merge_sorted(spans: Vec<(DateTime<Utc>, DateTime<Utc>)>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Resolves a local wall-clock time in `tz` to UTC with "compatible"
/// disambiguation: the earlier instant when ambiguous, and when the time falls
/// in a gap, the offset in force before the gap (which moves the instant
/// forward by the gap's length). `None` only outside chrono's date range.
fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(earlier, later) => Some(earlier.min(later).with_timezone(&Utc)),
        chrono::LocalResult::None => {
            // Walk back to the last local time before the gap; gaps are at
            // most a day long (Samoa skipped 2011-12-30).
            let step = Duration::minutes(15);
            let mut probe = local;
            for _ in 0..(4 * 50) {
                probe = probe.checked_sub_signed(step)?;
                let offset = match tz.offset_from_local_datetime(&probe) {
                    chrono::LocalResult::Single(offset) => offset,
                    chrono::LocalResult::Ambiguous(_, later) => later,
                    chrono::LocalResult::None => continue,
                };
                let offset_secs = i64::from(offset.fix().local_minus_utc());
                let utc = local.checked_sub_signed(Duration::seconds(offset_secs))?;
                return Some(utc.and_utc());
            }
            None
        }
    }
}

/// The local midnight that ends `date`.
fn next_midnight(date: NaiveDate) -> Option<NaiveDateTime> {
    Some(date.succ_opt()?.and_time(NaiveTime::MIN))
}

fn is_whole_second(time: NaiveTime) -> bool {
    time.nanosecond() == 0
}

/// Index of a date's weekday in [`Schedule::weekly`].
fn weekday_index(date: NaiveDate) -> usize {
    date.weekday().num_days_from_monday() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_model::WeeklyWindow;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn gap_times_move_forward_by_the_gap() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 02:30 does not exist on 2026-03-08; compatible = 03:30 EDT = 07:30Z.
        assert_eq!(resolve_local(ny, local("2026-03-08 02:30")), Some(utc("2026-03-08T07:30:00Z")));
        // Lord Howe moves by 30 minutes.
        let lh: Tz = "Australia/Lord_Howe".parse().unwrap();
        let gap = resolve_local(lh, local("2026-10-04 02:15")).unwrap();
        assert_eq!(gap, utc("2026-10-03T15:45:00Z"));
    }

    /// What a thread remembers of one schedule's dates never answers for
    /// another layout: the same calendar read in another zone, on a thread
    /// that has just worked through the first one's dates, answers as on a
    /// thread that remembers nothing; added days off share the hours and
    /// still close their day.
    #[test]
    fn remembered_hours_belong_to_their_layout() {
        let nine_to_five = |weekday| WeeklyWindow {
            weekday,
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        };
        let cal = BusinessCalendar {
            id: "ny".into(),
            time_zone: "America/New_York".into(),
            weekly: [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
                .into_iter()
                .map(nine_to_five)
                .collect(),
            holidays: Vec::new(),
        };
        let new_york = Schedule::new(&cal).unwrap();
        let london = new_york.with_time_zone("Europe/London".parse().unwrap());
        fn ask(s: &Schedule) -> (DateTime<Utc>, Duration, DateTime<Utc>) {
            let monday = utc("2026-03-02T12:00:00Z");
            (
                s.add_business(monday, Duration::hours(20)).unwrap(),
                s.business_between(monday, monday + Duration::days(9)),
                s.end_of_business_day(monday, 3).unwrap(),
            )
        }
        let fresh = |s: &Schedule| {
            let s = s.clone();
            std::thread::spawn(move || ask(&s)).join().unwrap()
        };
        let in_new_york = ask(&new_york);
        assert_eq!(in_new_york.0, utc("2026-03-04T18:00:00Z"));
        let in_london = ask(&london);
        assert_eq!(in_london, fresh(&london));
        assert_ne!(in_london, in_new_york);
        assert_eq!(in_london.0, utc("2026-03-04T16:00:00Z"));
        let away = new_york.with_days_off(&[NaiveDate::from_ymd_opt(2026, 3, 3).unwrap()]);
        assert_eq!(ask(&away), fresh(&away));
        assert_eq!(ask(&away).0, utc("2026-03-05T18:00:00Z"), "Tuesday is off");
        assert_eq!(ask(&new_york), in_new_york);
    }

    #[test]
    fn ambiguous_times_take_the_earlier_instant() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 01:30 happens twice on 2026-11-01: first at EDT (-4).
        assert_eq!(resolve_local(ny, local("2026-11-01 01:30")), Some(utc("2026-11-01T05:30:00Z")));
    }

    #[test]
    fn subtracting_holes_keeps_the_rest() {
        let closed = vec![
            (utc("2026-01-01T10:00:00Z"), utc("2026-01-01T11:00:00Z")),
            (utc("2026-01-01T12:00:00Z"), utc("2026-01-01T13:00:00Z")),
        ];
        let pieces = subtract_closed(&closed, utc("2026-01-01T09:00:00Z"), utc("2026-01-01T12:30:00Z"));
        assert_eq!(
            pieces,
            vec![
                (utc("2026-01-01T09:00:00Z"), utc("2026-01-01T10:00:00Z")),
                (utc("2026-01-01T11:00:00Z"), utc("2026-01-01T12:00:00Z")),
            ]
        );
    }

    #[test]
    fn a_partial_holiday_ending_before_it_starts_is_rejected() {
        let cal = BusinessCalendar {
            id: "emea".into(),
            time_zone: "Europe/London".into(),
            weekly: vec![WeeklyWindow {
                weekday: Weekday::Mon,
                start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            }],
            holidays: vec![Holiday {
                date: NaiveDate::from_ymd_opt(2026, 12, 24).unwrap(),
                name: None,
                start: NaiveTime::from_hms_opt(13, 0, 0),
                end: NaiveTime::from_hms_opt(12, 0, 0),
            }],
        };
        let err = Schedule::new(&cal).unwrap_err();
        assert!(matches!(err, CalendarError::InvalidHoliday { .. }), "{err:?}");
        assert!(err.to_string().contains("emea"));
    }

    #[test]
    fn an_unknown_zone_is_named_in_the_error() {
        let cal =
            BusinessCalendar { id: "us".into(), time_zone: "America/Nowhere".into(), weekly: vec![], holidays: vec![] };
        let msg = Schedule::new(&cal).unwrap_err().to_string();
        assert!(msg.contains("`us`") && msg.contains("America/Nowhere"), "{msg}");
    }
}
