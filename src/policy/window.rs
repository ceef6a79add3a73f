//! Durations as the policy file writes them ("1 business hour", "same
//! business day", "24 hours") and what they mean to the engine.

use std::fmt;

/// How long a commitment allows, measured from its clock start.
///
/// Business units are counted on the owner's calendar (see
/// [`crate::calendar::Schedule`]); wall-clock units ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// This many seconds of open business time
    /// (`Schedule::add_business`). "1 business hour", "60 business minutes".
    BusinessSeconds(i64),
    /// The close of the business day `days_after` business days after the
    /// one the clock starts in (`Schedule::end_of_business_day`).
    /// "same business day" / "end of business day" = 0, "next business day" = 1.
    EndOfBusinessDay { days_after: u32 },
    /// "N business days": the end of the Nth business day after the start
    /// day, i.e. the same instant as `EndOfBusinessDay { days_after: N }`.
    /// Kept apart so reports can say what the operator wrote.
    BusinessDays(u32),
    /// Elapsed real time, ignoring the calendar. "24 hours", "30 minutes".
    WallClock(chrono::Duration),
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::BusinessSeconds(secs) => {
                if secs % 3600 == 0 {
                    plural(f, secs / 3600, "business hour")
                } else if secs % 60 == 0 {
                    plural(f, secs / 60, "business minute")
                } else {
                    plural(f, *secs, "business second")
                }
            }
            Window::EndOfBusinessDay { days_after: 0 } => f.write_str("same business day"),
            Window::EndOfBusinessDay { days_after: 1 } => f.write_str("next business day"),
            Window::EndOfBusinessDay { days_after } => {
                write!(f, "end of the business day {days_after} business days later")
            }
            Window::BusinessDays(days) => plural(f, i64::from(*days), "business day"),
            Window::WallClock(d) => {
                let secs = d.num_seconds();
                if secs % 86_400 == 0 {
                    plural(f, secs / 86_400, "day")
                } else if secs % 3600 == 0 {
                    plural(f, secs / 3600, "hour")
                } else if secs % 60 == 0 {
                    plural(f, secs / 60, "minute")
                } else {
                    plural(f, secs, "second")
                }
            }
        }
    }
}

fn plural(f: &mut fmt::Formatter<'_>, n: i64, unit: &str) -> fmt::Result {
    if n == 1 {
        write!(f, "1 {unit}")
    } else {
        write!(f, "{n} {unit}s")
    }
}

/// The longest business time a policy window may ask for: a working year
/// (52 weeks of 40 hours). Longer is a mistake, and the business-time
/// arithmetic it would ask for grows with it.
pub const MAX_BUSINESS_SECS: i64 = 52 * 40 * 3600;
/// The most business days a window may ask for: a working year (52 × 5).
pub const MAX_BUSINESS_DAYS: u32 = 260;
/// The longest wall-clock window: a year.
pub const MAX_WALL_CLOCK_SECS: i64 = 366 * 86_400;

/// The fix offered for any duration that does not parse.
pub const WINDOW_FIX: &str = "write a positive duration such as \"60 business minutes\", \
\"1 business hour\", \"same business day\", \"next business day\", \"3 business days\" \
or wall-clock \"24 hours\" / \"30 minutes\"";

/// Parses a duration as written in the policy. Case and extra spaces do not
/// matter. Returns a plain-words reason on failure.
pub fn parse_window(text: &str) -> Result<Window, String> {
    let norm = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    match norm.as_str() {
        "same business day" | "end of business day" | "end of the business day" | "end of day" => {
            return Ok(Window::EndOfBusinessDay { days_after: 0 })
        }
        "next business day" | "end of next business day" | "end of the next business day" => {
            return Ok(Window::EndOfBusinessDay { days_after: 1 })
        }
        "" => return Err("the duration is empty".to_string()),
        _ => {}
    }
    let words: Vec<&str> = norm.split(' ').collect();
    let (number, business, unit) = match words.as_slice() {
        [n, "business", unit] => (*n, true, *unit),
        [n, unit] => (*n, false, *unit),
        [n] => {
            // "90m", "2h", "1d"
            let split = n
                .find(|c: char| c.is_ascii_alphabetic())
                .ok_or_else(|| format!("`{text}` has no unit (business hours, business days, hours, minutes ...)"))?;
            let (num, unit) = n.split_at(split);
            (num, false, unit)
        }
        _ => return Err(format!("`{text}` is not a duration this policy understands")),
    };
    let amount: f64 = number.parse().map_err(|_| format!("`{number}` in `{text}` is not a number"))?;
    if !amount.is_finite() || amount <= 0.0 {
        return Err(format!("`{text}` is not a positive duration"));
    }
    if unit == "ms" {
        return Err(format!("`{text}`: milliseconds are too fine for an SLA; use seconds or minutes"));
    }
    let unit_secs: i64 = match unit.trim_end_matches('s') {
        "second" | "sec" | "" if unit.starts_with('s') => 1,
        "minute" | "min" | "m" => 60,
        "hour" | "hr" | "h" => 3600,
        "day" | "d" => 86_400,
        "week" | "wk" | "w" => 7 * 86_400,
        _ => return Err(format!("`{unit}` in `{text}` is not a unit (use minutes, hours or days)")),
    };
    if business && unit_secs == 86_400 {
        if amount.fract() != 0.0 {
            return Err(format!("`{text}`: business days must be a whole number"));
        }
        if amount > f64::from(MAX_BUSINESS_DAYS) {
            return Err(format!(
                "`{text}` is longer than a working year; an SLA window is at most {MAX_BUSINESS_DAYS} business days"
            ));
        }
        // Whole, positive and at most MAX_BUSINESS_DAYS: the cast is exact.
        return Ok(Window::BusinessDays(amount as u32));
    }
    if business && unit_secs > 86_400 {
        return Err(format!("`{text}`: business weeks are ambiguous; write the number of business days"));
    }
    let secs = amount * unit_secs as f64;
    if secs.fract() != 0.0 || secs > 1e12 {
        return Err(format!("`{text}` is not a whole number of seconds"));
    }
    // Whole and bounded above: the cast is exact.
    let secs = secs as i64;
    if business && secs > MAX_BUSINESS_SECS {
        return Err(format!(
            "`{text}` is longer than a working year; an SLA window is at most {} business hours",
            MAX_BUSINESS_SECS / 3600
        ));
    }
    if !business && secs > MAX_WALL_CLOCK_SECS {
        return Err(format!(
            "`{text}` is longer than a year; an SLA window is at most {} days",
            MAX_WALL_CLOCK_SECS / 86_400
        ));
    }
    if business {
        Ok(Window::BusinessSeconds(secs))
    } else {
        Ok(Window::WallClock(chrono::Duration::seconds(secs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn business_units() {
        assert_eq!(parse_window("1 business hour"), Ok(Window::BusinessSeconds(3600)));
        assert_eq!(parse_window("60 business minutes"), Ok(Window::BusinessSeconds(3600)));
        assert_eq!(parse_window("48 Business Hours"), Ok(Window::BusinessSeconds(48 * 3600)));
        assert_eq!(parse_window("1.5 business hours"), Ok(Window::BusinessSeconds(5400)));
        assert_eq!(parse_window("3 business days"), Ok(Window::BusinessDays(3)));
        assert_eq!(parse_window("1 business day"), Ok(Window::BusinessDays(1)));
    }

    #[test]
    fn end_of_day_phrases() {
        for s in ["same business day", "end of business day", "  Same   Business Day "] {
            assert_eq!(parse_window(s), Ok(Window::EndOfBusinessDay { days_after: 0 }), "{s}");
        }
        assert_eq!(parse_window("next business day"), Ok(Window::EndOfBusinessDay { days_after: 1 }));
    }

    #[test]
    fn wall_clock_units() {
        assert_eq!(parse_window("24 hours"), Ok(Window::WallClock(Duration::hours(24))));
        assert_eq!(parse_window("30 minutes"), Ok(Window::WallClock(Duration::minutes(30))));
        assert_eq!(parse_window("5 min"), Ok(Window::WallClock(Duration::minutes(5))));
        assert_eq!(parse_window("2 days"), Ok(Window::WallClock(Duration::days(2))));
        assert_eq!(parse_window("90m"), Ok(Window::WallClock(Duration::minutes(90))));
        assert_eq!(parse_window("45 seconds"), Ok(Window::WallClock(Duration::seconds(45))));
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            "",
            "soon",
            "0 business hours",
            "-1 hours",
            "1 business fortnight",
            "1.5 business days",
            "2 business weeks",
            "one hour",
            "1 hour please now",
            "48",
            "4294967295 business days",
            "261 business days",
            "2081 business hours",
            "367 days",
            "1e11 business minutes",
        ] {
            assert!(parse_window(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in
            ["1 business hour", "90 business minutes", "same business day", "3 business days", "24 hours", "30 minutes"]
        {
            let w = parse_window(s).unwrap();
            assert_eq!(parse_window(&w.to_string()), Ok(w), "{s}");
        }
    }
}
