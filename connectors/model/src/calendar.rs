//! Business hours and holidays as plain data.
//!
//! This is what a CRM provides (Salesforce `BusinessHours` + `Holiday`) or the
//! policy file declares. The arithmetic over it lives in the daemon's
//! `calendar` module.

use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

/// The most calendars handoff keeps for one org (policy calendars, or a
/// CRM's business-hours rows). Far above any real org; a bound keeps the
/// work of reading and storing them bounded.
pub const MAX_CALENDARS: usize = 200;
/// The most weekly windows one calendar may have (a dozen a day).
pub const MAX_WEEKLY_WINDOWS: usize = 84;
/// The most holidays one calendar (or a CRM org) may have: decades of them.
pub const MAX_HOLIDAYS: usize = 500;

/// A named weekly schedule in one time zone, with holidays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessCalendar {
    pub id: String,
    /// IANA zone the weekly hours are read in, unless an owner's zone overrides it.
    pub time_zone: String,
    pub weekly: Vec<WeeklyWindow>,
    #[serde(default)]
    pub holidays: Vec<Holiday>,
}

/// Open from `start` to `end` local time on `weekday`. When `end <= start`
/// the window runs past midnight into the next day (a night shift);
/// `start == end` is a full 24 hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyWindow {
    pub weekday: Weekday,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// A closed day, or a closed part of a day when `start`/`end` are given
/// (local times in the calendar's zone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub date: NaiveDate,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub start: Option<NaiveTime>,
    #[serde(default)]
    pub end: Option<NaiveTime>,
}
