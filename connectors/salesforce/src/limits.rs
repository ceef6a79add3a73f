//! `Sforce-Limit-Info` parsing and the operator's daily budget.
//!
//! Salesforce counts API calls over a rolling 24 hours per org, shared by
//! every integration. The header on each response says where the org
//! stands; the operator allows handoff a share of the limit. At that share
//! the connector stops (not fails) and asks again after a pause, because
//! the rolling window only frees calls gradually.

use std::time::Duration;

use handoff_model::{ApiBudget, Timestamp};

/// The parts of one `Sforce-Limit-Info` header value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitInfo {
    /// `api-usage=used/limit`: the org's daily count.
    pub api_usage: Option<(u64, u64)>,
    /// `per-app-api-usage=used/limit(appName=…)`: this connected app's share, when capped.
    pub per_app_usage: Option<(u64, u64)>,
    /// `api-bursts=used/limit`: the newer short-window burst counter.
    pub api_bursts: Option<(u64, u64)>,
}

/// Parse a header value such as
/// `api-usage=10018/100000; per-app-api-usage=17/250(appName=x); api-bursts=1/750`.
///
/// Tolerant by design: elements are split on `;`, unknown elements are
/// skipped, and a malformed element only loses itself. A strict whole-value
/// pattern is how other clients lost their quota guard when `api-bursts`
/// appeared.
pub fn parse_limit_info(value: &str) -> LimitInfo {
    let mut info = LimitInfo::default();
    for part in value.split(';') {
        let Some((name, rest)) = part.trim().split_once('=') else { continue };
        let counts = rest.split('(').next().unwrap_or(rest);
        let Some(pair) = parse_pair(counts) else { continue };
        match name.trim() {
            "api-usage" => info.api_usage = Some(pair),
            "per-app-api-usage" => info.per_app_usage = Some(pair),
            "api-bursts" => info.api_bursts = Some(pair),
            _ => {}
        }
    }
    info
}

fn parse_pair(s: &str) -> Option<(u64, u64)> {
    let (used, limit) = s.trim().split_once('/')?;
    Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
}

/// The daily budget: the org's count as last reported, the operator's share,
/// and the pause in force when the share is spent.
#[derive(Debug, Clone)]
pub struct DailyBudget {
    share: f64,
    recheck: Duration,
    used: u64,
    limit: u64,
    paused_until: Option<Timestamp>,
}

/// May a request go out now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetGate {
    Open,
    Paused { retry_after: Duration },
}

impl DailyBudget {
    pub fn new(share: f64, recheck: Duration) -> Self {
        DailyBudget { share, recheck, used: 0, limit: 0, paused_until: None }
    }

    /// Calls the operator allows today (the share of the org's limit, rounded down).
    pub fn allowed(&self) -> u64 {
        (self.limit as f64 * self.share).floor() as u64
    }

    /// Check before sending. Past the pause, one request is let through to
    /// read a fresh count; [`DailyBudget::observe`] decides from there.
    pub fn gate(&self, now: Timestamp) -> BudgetGate {
        match self.paused_until {
            Some(until) if until > now => {
                BudgetGate::Paused { retry_after: (until - now).to_std().unwrap_or(Duration::ZERO) }
            }
            _ => BudgetGate::Open,
        }
    }

    /// Feed the counts from a response. Pauses when the share is reached,
    /// resumes when the rolling window has freed calls again.
    pub fn observe(&mut self, info: &LimitInfo, now: Timestamp) {
        let Some((used, limit)) = info.api_usage else { return };
        self.used = used;
        self.limit = limit;
        if limit > 0 && used >= self.allowed() {
            self.pause(now);
        } else {
            self.paused_until = None;
        }
    }

    /// Pause outright: Salesforce refused with `REQUEST_LIMIT_EXCEEDED`.
    pub fn pause(&mut self, now: Timestamp) {
        let recheck = chrono::Duration::from_std(self.recheck).unwrap_or(chrono::Duration::minutes(15));
        self.paused_until = Some(now + recheck);
    }

    pub fn snapshot(&self) -> ApiBudget {
        ApiBudget { used: self.used, limit: self.limit, allowed: self.allowed(), paused_until: self.paused_until }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> Timestamp {
        chrono::Utc.timestamp_opt(1_780_000_000 + secs, 0).single().unwrap_or_default()
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(parse_limit_info("api-usage=10018/100000").api_usage, Some((10018, 100000)));
        let full = parse_limit_info("api-usage=18/5000; per-app-api-usage=17/250(appName=sample-connected-app)");
        assert_eq!(full.api_usage, Some((18, 5000)));
        assert_eq!(full.per_app_usage, Some((17, 250)));
        let bursts = parse_limit_info("api-usage=10018/100000; api-bursts=1/750");
        assert_eq!(bursts.api_usage, Some((10018, 100000)));
        assert_eq!(bursts.api_bursts, Some((1, 750)));
    }

    #[test]
    fn malformed_parts_lose_only_themselves() {
        let info = parse_limit_info("api-usage=abc/100; api-bursts=2/750;;junk");
        assert_eq!(info.api_usage, None);
        assert_eq!(info.api_bursts, Some((2, 750)));
        assert_eq!(parse_limit_info(""), LimitInfo::default());
    }

    #[test]
    fn stops_at_the_share_and_resumes_when_usage_falls() {
        let mut b = DailyBudget::new(0.5, Duration::from_secs(600));
        b.observe(&parse_limit_info("api-usage=499/1000"), at(0));
        assert_eq!(b.gate(at(0)), BudgetGate::Open);
        assert_eq!(b.allowed(), 500);
        b.observe(&parse_limit_info("api-usage=500/1000"), at(10));
        assert_eq!(b.gate(at(20)), BudgetGate::Paused { retry_after: Duration::from_secs(590) });
        assert_eq!(b.snapshot().remaining(), 0);
        // After the pause one request may look again.
        assert_eq!(b.gate(at(610)), BudgetGate::Open);
        b.observe(&parse_limit_info("api-usage=420/1000"), at(611));
        assert_eq!(b.gate(at(611)), BudgetGate::Open);
        assert_eq!(b.snapshot().paused_until, None);
    }

    #[test]
    fn a_refusal_pauses_without_counts() {
        let mut b = DailyBudget::new(1.0, Duration::from_secs(60));
        b.pause(at(0));
        assert!(matches!(b.gate(at(30)), BudgetGate::Paused { .. }));
    }
}
