//! `Retry-After`, read safely: whole seconds or an HTTP date, never
//! negative, never more than [`MAX_RETRY_AFTER`], so no server value can
//! overflow the arithmetic that adds it to an instant.

use std::time::Duration;

use handoff_model::Timestamp;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest wait a server may ask for (HubSpot's daily limit resets at
/// most a day later); anything beyond is read as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Parse a `Retry-After` value at `now` (the CRM's clock, for dates).
pub fn parse(value: &str, now: Timestamp) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: a number too large for u64 is still "very long".
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&chrono::Utc);
    let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The `Retry-After` header of a response, if any and readable.
pub fn from_headers(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    parse(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
}

/// `d` in whole seconds, rounded up (a wait of 0.2 s is one second, not none).
pub fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).single().unwrap_or_default()
    }

    #[test]
    fn seconds_and_dates_are_read_and_clamped() {
        assert_eq!(parse(" 20 ", now()), Some(Duration::from_secs(20)));
        assert_eq!(parse("Wed, 21 Oct 2015 07:28:00 GMT", now()), Some(Duration::from_secs(60)));
        assert_eq!(parse("Wed, 21 Oct 2015 07:00:00 GMT", now()), Some(Duration::ZERO), "a date in the past");
        assert_eq!(parse("18446744073709551615", now()), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("99999999999999999999999999", now()), Some(MAX_RETRY_AFTER), "beyond u64");
        assert_eq!(parse("Fri, 31 Dec 9999 23:59:59 GMT", now()), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("-5", now()), None);
        assert_eq!(parse("soon", now()), None);
        assert_eq!(parse("", now()), None);
    }

    #[test]
    fn a_clamped_wait_can_be_added_to_an_instant() {
        let wait = parse("18446744073709551615", now()).unwrap_or_default();
        assert!(tokio::time::Instant::now().checked_add(wait).is_some());
        assert!(chrono::Duration::from_std(wait).is_ok());
        assert_eq!(whole_secs(Duration::from_millis(200)), 1);
        assert_eq!(whole_secs(Duration::from_secs(3)), 3);
    }
}
