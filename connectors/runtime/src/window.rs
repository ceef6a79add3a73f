//! Finished windows, the arithmetic both connectors' cursors share.
//!
//! A stream is read in windows `[from, to)` on the CRM's modification
//! stamp: `to` is `now − lag` (in-flight transactions, a lagging search
//! index), `from` is `lookback` before where the last finished window
//! ended (rows that commit late with an older stamp), or where the
//! backfill starts. A cursor passes `to` only once the window's last page
//! is read; no window opens while nothing finished since the last one.

/// The next window `[from, to)` in epoch milliseconds, or `None` when
/// nothing has finished since `done_until_ms`. `granularity_ms` rounds
/// both bounds down (Salesforce stamps and SOQL literals are whole
/// seconds; 1 keeps milliseconds).
pub fn next_window(
    done_until_ms: Option<i64>,
    now_ms: i64,
    lag_ms: i64,
    lookback_ms: i64,
    backfill_from_ms: i64,
    granularity_ms: i64,
) -> Option<(i64, i64)> {
    let g = granularity_ms.max(1);
    let floor = |ms: i64| ms.saturating_sub(ms.rem_euclid(g));
    let to = floor(now_ms.saturating_sub(lag_ms));
    let from = match done_until_ms {
        Some(done) if to <= done => return None,
        Some(done) => floor(done.saturating_sub(lookback_ms).max(backfill_from_ms)),
        None => floor(backfill_from_ms),
    };
    (to > from).then_some((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn backfill_then_lookback_windows_and_none_while_nothing_finished() {
        assert_eq!(next_window(None, 100 * MIN, 2 * MIN, 10 * MIN, 0, 1), Some((0, 98 * MIN)));
        assert_eq!(next_window(Some(98 * MIN), 100 * MIN, 2 * MIN, 10 * MIN, 0, 1), None);
        assert_eq!(next_window(Some(98 * MIN), 105 * MIN, 2 * MIN, 10 * MIN, 0, 1), Some((88 * MIN, 103 * MIN)));
        assert_eq!(next_window(Some(5 * MIN), 105 * MIN, 2 * MIN, 10 * MIN, 30 * MIN, 1), Some((30 * MIN, 103 * MIN)));
    }

    #[test]
    fn bounds_round_down_to_the_granularity_and_never_overflow() {
        assert_eq!(next_window(None, 10_999, 0, 0, 0, 1000), Some((0, 10_000)));
        assert_eq!(next_window(Some(1_500), 10_999, 0, 1_000, 0, 1000), Some((0, 10_000)));
        assert_eq!(next_window(Some(i64::MIN), i64::MIN, i64::MAX, i64::MAX, 0, 1000), None);
    }
}
