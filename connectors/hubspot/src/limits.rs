//! HubSpot's side of staying inside its limits: two local pacers (the
//! 10-second burst bucket and search's per-second bucket), what its
//! headers and 429 bodies say, and how that closes the shared runtime's
//! pause gate or spends its daily budget.
//!
//! The pacers run below the documented rates; the headers HubSpot sends
//! (`X-HubSpot-RateLimit-Max`) resize the burst pacer, and a 429 closes
//! the gate so nothing is sent until the CRM's window has passed.
//! Searches carry no rate headers, so a `SECONDLY` 429 itself says the
//! search pacer runs faster than the portal allows (a pacing setting above
//! the account's limit, or another app spending the shared bucket): the
//! pacer drops below what this connector got admitted in that second, and
//! climbs back one step a minute while no refusal comes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use handoff_model::{CrmKind, ErrorClass};
use handoff_runtime::{quota_for, Dialect, Observed, Pacer, Raw, Refusal, Scope};
use tokio::time::Instant;

use crate::wire::{classify, ErrorBody, RateHeaders, RatePolicy};

/// Which of HubSpot's buckets a request draws from. Searches are exempt
/// from the burst bucket and have their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Burst,
    Search,
}

impl Bucket {
    pub fn shared(self) -> handoff_runtime::Bucket {
        match self {
            Bucket::Burst => handoff_runtime::Bucket::Default,
            Bucket::Search => handoff_runtime::Bucket::Search,
        }
    }

    fn of(bucket: handoff_runtime::Bucket) -> Bucket {
        match bucket {
            handoff_runtime::Bucket::Default => Bucket::Burst,
            handoff_runtime::Bucket::Search => Bucket::Search,
        }
    }
}

/// Share of a reported limit the pacer plans for, so network jitter that
/// bunches requests up on arrival cannot tip the CRM's window over.
const PACING_MARGIN: f64 = 0.9;
const BURST_WINDOW: Duration = Duration::from_secs(10);
const SEARCH_WINDOW: Duration = Duration::from_secs(1);
/// How long the search pacer stays at a lowered rate before stepping up.
const SEARCH_RECOVERY: Duration = Duration::from_secs(60);

/// The search pace after a `SECONDLY` refusal: below what was admitted in
/// the refused second (`sent_in_window` counts the refused search too),
/// always lower than the pace that was refused, at least one a second.
pub fn lowered_search_rate(current_per_second: u32, sent_in_window: usize) -> u32 {
    let admitted = sent_in_window.saturating_sub(1) as f64;
    let target = (admitted * PACING_MARGIN).floor() as u32;
    target.min(current_per_second.saturating_sub(1)).max(1)
}

/// The search pacer: its rate now, the configured ceiling, and when the
/// rate last changed.
struct SearchPacer {
    per_second: u32,
    ceiling: u32,
    pacer: Arc<Pacer>,
    changed_at: Option<Instant>,
    /// When each recent search was sent (the last second's worth).
    sent: VecDeque<Instant>,
}

impl SearchPacer {
    fn new(per_second: u32) -> Self {
        SearchPacer {
            per_second,
            ceiling: per_second,
            pacer: Arc::new(Pacer::new(quota_for(per_second, SEARCH_WINDOW))),
            changed_at: None,
            sent: VecDeque::new(),
        }
    }

    fn set_rate(&mut self, per_second: u32, now: Instant) {
        self.per_second = per_second;
        self.pacer = Arc::new(Pacer::new(quota_for(per_second, SEARCH_WINDOW)));
        self.changed_at = Some(now);
    }

    fn forget_before(&mut self, now: Instant) {
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= SEARCH_WINDOW) {
            self.sent.pop_front();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// HubSpot's dialect of the shared send loop.
pub struct HubspotDialect {
    burst: RwLock<(u32, Arc<Pacer>)>,
    search: Mutex<SearchPacer>,
}

impl HubspotDialect {
    pub fn new(burst_per_10s: u32, search_per_second: u32) -> Self {
        HubspotDialect {
            burst: RwLock::new((burst_per_10s, Arc::new(Pacer::new(quota_for(burst_per_10s, BURST_WINDOW))))),
            search: Mutex::new(SearchPacer::new(search_per_second)),
        }
    }

    /// The search pacer's current rate per second.
    pub fn search_per_second(&self) -> u32 {
        lock(&self.search).per_second
    }

    /// A `SECONDLY` refusal of a search: pace searches below what got through.
    fn slow_search(&self) {
        let mut p = lock(&self.search);
        let now = Instant::now();
        p.forget_before(now);
        let lowered = lowered_search_rate(p.per_second, p.sent.len());
        tracing::warn!(
            connector = "hubspot",
            refused_at_per_second = p.per_second,
            search_per_second = lowered,
            "search refused with SECONDLY; slowing the search pacer"
        );
        p.set_rate(lowered, now);
    }
}

#[async_trait]
impl Dialect for HubspotDialect {
    fn crm(&self) -> CrmKind {
        CrmKind::Hubspot
    }

    async fn pace(&self, bucket: handoff_runtime::Bucket) {
        match Bucket::of(bucket) {
            Bucket::Burst => {
                let pacer = self.burst.read().unwrap_or_else(|e| e.into_inner()).1.clone();
                pacer.until_ready().await;
            }
            Bucket::Search => {
                let pacer = {
                    let mut p = lock(&self.search);
                    let now = Instant::now();
                    if p.per_second < p.ceiling && p.changed_at.is_none_or(|t| now.duration_since(t) >= SEARCH_RECOVERY)
                    {
                        let up = p.per_second + 1;
                        tracing::debug!(
                            connector = "hubspot",
                            search_per_second = up,
                            "raising the search pacer again"
                        );
                        p.set_rate(up, now);
                    }
                    p.pacer.clone()
                };
                pacer.until_ready().await;
                let mut p = lock(&self.search);
                let now = Instant::now();
                p.forget_before(now);
                p.sent.push_back(now);
            }
        }
    }

    fn observe(&self, bucket: handoff_runtime::Bucket, raw: &Raw, seen: &mut Observed<'_>) {
        let h = RateHeaders::parse(&raw.headers);
        if let (Some(limit), Some(remaining)) = (h.daily, h.daily_remaining) {
            seen.budget.observe(limit.saturating_sub(remaining), limit, seen.now);
        }
        if Bucket::of(bucket) != Bucket::Burst {
            return;
        }
        if let Some(max) = h.max {
            let target = ((max as f64) * PACING_MARGIN).floor() as u32;
            let mut w = self.burst.write().unwrap_or_else(|e| e.into_inner());
            if target >= 2 && target != w.0 {
                tracing::debug!(
                    connector = "hubspot",
                    reported_max = max,
                    pacing_per_10s = target,
                    "resizing the burst pacer"
                );
                *w = (target, Arc::new(Pacer::new(quota_for(target, BURST_WINDOW))));
            }
        }
        if h.remaining == Some(0) {
            let wait = Duration::from_millis(h.interval_ms.unwrap_or(10_000).min(60_000));
            seen.gate.pause(Scope::Bucket(bucket), wait);
        }
    }

    fn classify(&self, bucket: handoff_runtime::Bucket, raw: &Raw, retry_after: Option<Duration>) -> Refusal {
        let err = ErrorBody::parse(&raw.body);
        let code = err.code();
        if raw.status != 429 {
            return Refusal {
                class: classify(raw.status, &err),
                code,
                message: err.message,
                daily_limit: false,
                pause: None,
            };
        }
        let policy = RatePolicy::from_body(&err);
        let own = Bucket::of(bucket);
        let (pause, default_secs) = match policy {
            RatePolicy::Daily => (None, 0),
            RatePolicy::Secondly => {
                if own == Bucket::Search {
                    self.slow_search();
                }
                let pause = match retry_after {
                    Some(d) => (Scope::All, d),
                    None => (Scope::Bucket(handoff_runtime::Bucket::Search), SEARCH_WINDOW),
                };
                (Some(pause), 1)
            }
            RatePolicy::TenSecondly => {
                let pause = match retry_after {
                    Some(d) => (Scope::All, d),
                    None => (Scope::Bucket(bucket), BURST_WINDOW),
                };
                (Some(pause), 10)
            }
        };
        let secs = retry_after.map(handoff_runtime::retry_after::whole_secs).unwrap_or(default_secs);
        Refusal {
            class: ErrorClass::RateLimited { retry_after_secs: secs },
            code,
            message: err.message,
            daily_limit: policy == RatePolicy::Daily,
            pause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_runtime::{BudgetReset, DailyBudget, PauseGate};
    use reqwest::header::{HeaderMap, HeaderValue};

    fn raw(status: u16, headers: &[(&'static str, &str)], body: &str) -> Raw {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Raw { status, headers: h, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn a_secondly_refusal_lowers_the_search_pace_below_what_got_through() {
        // Sent 6 in the refused second: 5 got through, so plan for fewer.
        assert_eq!(lowered_search_rate(20, 6), 4);
        assert_eq!(lowered_search_rate(5, 6), 4);
        // Another app spent the bucket: only ours was refused.
        assert_eq!(lowered_search_rate(5, 1), 1);
        assert_eq!(lowered_search_rate(1, 0), 1);
        // Never faster than the refused pace, even when many got through.
        assert_eq!(lowered_search_rate(4, 30), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn secondly_refusals_pause_search_only_and_slow_it_down() {
        let d = HubspotDialect::new(100, 20);
        for _ in 0..6 {
            d.pace(handoff_runtime::Bucket::Search).await;
        }
        assert_eq!(d.search_per_second(), 20);
        let r = d.classify(
            handoff_runtime::Bucket::Search,
            &raw(
                429,
                &[],
                r#"{"status":"error","message":"You have reached your secondly limit.","policyName":"SECONDLY"}"#,
            ),
            None,
        );
        assert_eq!(d.search_per_second(), 4);
        assert_eq!(r.pause, Some((Scope::Bucket(handoff_runtime::Bucket::Search), SEARCH_WINDOW)));
        assert_eq!(r.class, ErrorClass::RateLimited { retry_after_secs: 1 });
        assert!(!r.daily_limit);
    }

    #[test]
    fn retry_after_closes_every_bucket_and_a_daily_refusal_spends_the_budget() {
        let d = HubspotDialect::new(100, 5);
        let ten = r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","policyName":"TEN_SECONDLY_ROLLING"}"#;
        let r = d.classify(handoff_runtime::Bucket::Default, &raw(429, &[], ten), Some(Duration::from_millis(300)));
        assert_eq!(r.pause, Some((Scope::All, Duration::from_millis(300))));
        assert_eq!(r.class, ErrorClass::RateLimited { retry_after_secs: 1 });
        let daily = r#"{"status":"error","message":"You have reached your daily limit.","policyName":"DAILY"}"#;
        assert!(d.classify(handoff_runtime::Bucket::Default, &raw(429, &[], daily), None).daily_limit);
    }

    #[test]
    fn headers_feed_the_budget_and_a_spent_window_closes_its_bucket() {
        let d = HubspotDialect::new(100, 5);
        let mut budget = DailyBudget::new(0.5, BudgetReset::UtcMidnight, None);
        let gate = PauseGate::default();
        let now = chrono::Utc::now();
        let headers = [
            ("x-hubspot-ratelimit-daily", "1000"),
            ("x-hubspot-ratelimit-daily-remaining", "500"),
            ("x-hubspot-ratelimit-remaining", "0"),
            ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
        ];
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            d.observe(
                handoff_runtime::Bucket::Default,
                &raw(200, &headers, "{}"),
                &mut Observed { budget: &mut budget, gate: &gate, now },
            );
            assert!(gate.open_at(handoff_runtime::Bucket::Default).is_some());
            assert!(gate.open_at(handoff_runtime::Bucket::Search).is_none());
        });
        let b = budget.snapshot(now);
        assert_eq!((b.used, b.limit, b.allowed), (500, 1000, 500));
        assert!(budget.gate(now).is_err(), "at the share the budget stops");
    }
}
