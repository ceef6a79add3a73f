//! Faults an admin (usually a test) injects into a running emulator.
//!
//! Each emulator asks [`Faults::on_request`] before handling a request and
//! renders the answer in its own CRM's shape (a Salesforce 403
//! `REQUEST_LIMIT_EXCEEDED` body, a HubSpot 429 with `policyName` …).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One armed fault. Count-limited faults disarm themselves when spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer every counted API request with the CRM's rate-limit error until
    /// `until` (simulated time), with `Retry-After` set to the time left.
    RateLimitStorm { until: DateTime<Utc> },
    /// Answer the next `count` requests with HTTP `status` (500, 502, 503 …).
    ServerErrors { count: u32, status: u16 },
    /// Delay the next `count` responses by `delay_ms` of real time.
    Latency { count: u32, delay_ms: u64 },
    /// Within the next write batch(es) that carry `marker`, fail the records
    /// whose fields contain it (per-record error, the rest of the batch
    /// succeeds). `count` such batches are affected; writes without the
    /// marker pass untouched and do not use the fault up.
    PartialBatchFailure { marker: String, count: u32 },
    /// HubSpot: search results only include records modified at least
    /// `lag_secs` ago (the search index lags writes).
    SearchLag { lag_secs: u64 },
    /// Answer the next `count` token-endpoint requests with an HTML error
    /// page (HTTP 502) that echoes the submitted form, secrets and all, as
    /// a misconfigured proxy or gateway in front of a real one may.
    TokenEchoPage { count: u32 },
}

/// What an emulator must do with the current request, before its own logic.
#[derive(Debug, Clone, PartialEq)]
pub enum Injected {
    /// Proceed normally (possibly after an injected delay already slept).
    None,
    /// Answer the CRM's rate-limit error; `retry_after` is the storm's remaining time.
    RateLimited { retry_after: Duration },
    /// Answer this HTTP status with the CRM's generic server-error body.
    ServerError { status: u16 },
}

/// The armed faults, shared by the emulator and the admin API.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Vec<Fault>>>,
    gate: Arc<Mutex<Option<Arc<Gate>>>>,
}

/// A gate a test holds shut in front of the API: requests whose path
/// contains `path_part` wait there, counted, until the test opens it. It
/// lets a test act while a request is known to be in flight, by
/// synchronisation rather than by timing.
pub struct Gate {
    path_part: String,
    held: std::sync::atomic::AtomicUsize,
    arrived: tokio::sync::Notify,
    open: tokio::sync::watch::Sender<bool>,
}

impl Gate {
    /// Waits until at least `n` requests have reached the gate.
    pub async fn wait_held(&self, n: usize) {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.held.load(std::sync::atomic::Ordering::SeqCst) >= n {
                return;
            }
            arrived.await;
        }
    }

    /// Requests that reached the gate so far.
    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets every held request (and every later one) through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn arm(&self, fault: Fault) {
        self.lock().push(fault);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Holds requests whose path contains `path_part` until the returned
    /// gate is opened (replacing any gate armed before).
    pub fn hold(&self, path_part: &str) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            path_part: path_part.to_string(),
            held: Default::default(),
            arrived: tokio::sync::Notify::new(),
            open: tokio::sync::watch::Sender::new(false),
        });
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(gate.clone());
        gate
    }

    /// Waits at the armed gate if `path` is one it holds.
    pub async fn pass_gate(&self, path: &str) {
        let gate = self.gate.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(gate) = gate.filter(|g| path.contains(&g.path_part)) else { return };
        let mut open = gate.open.subscribe();
        gate.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        gate.arrived.notify_waiters();
        while !*open.borrow_and_update() {
            if open.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn list(&self) -> Vec<Fault> {
        self.lock().clone()
    }

    /// Decide the fate of a counted API request at simulated time `now`.
    /// Returns the latency to sleep (real time) and what to answer.
    pub fn on_request(&self, now: DateTime<Utc>) -> (Option<Duration>, Injected) {
        let mut faults = self.lock();
        let mut delay = None;
        let mut answer = Injected::None;
        faults.retain_mut(|f| match f {
            Fault::RateLimitStorm { until } => *until > now,
            _ => true,
        });
        for f in faults.iter_mut() {
            match f {
                Fault::Latency { count, delay_ms } if *count > 0 => {
                    *count -= 1;
                    delay = Some(Duration::from_millis(*delay_ms));
                }
                Fault::RateLimitStorm { until } if answer == Injected::None => {
                    let left = (*until - now).to_std().unwrap_or_default();
                    // Round up: a client told "0 s" would retry inside the storm.
                    answer = Injected::RateLimited { retry_after: Duration::from_secs(left.as_secs() + 1) };
                }
                Fault::ServerErrors { count, status } if *count > 0 && answer == Injected::None => {
                    *count -= 1;
                    answer = Injected::ServerError { status: *status };
                }
                _ => {}
            }
        }
        faults.retain(|f| match f {
            Fault::Latency { count, .. } | Fault::ServerErrors { count, .. } => *count > 0,
            _ => true,
        });
        (delay, answer)
    }

    /// For a write whose request body is `body`: the marker whose records
    /// must fail, consuming one use of the fault. A body without the marker
    /// leaves the fault armed.
    pub fn take_batch_failure(&self, body: &[u8]) -> Option<String> {
        let mut faults = self.lock();
        let mut marker = None;
        for f in faults.iter_mut() {
            if let Fault::PartialBatchFailure { marker: m, count } = f {
                if *count > 0 && contains(body, m.as_bytes()) {
                    *count -= 1;
                    marker = Some(m.clone());
                    break;
                }
            }
        }
        faults.retain(|f| !matches!(f, Fault::PartialBatchFailure { count: 0, .. }));
        marker
    }

    /// For a token request with form `body`: the HTML error page to answer
    /// instead, using up one armed [`Fault::TokenEchoPage`].
    pub fn take_token_echo(&self, body: &[u8]) -> Option<String> {
        let mut faults = self.lock();
        let armed = faults.iter_mut().find_map(|f| match f {
            Fault::TokenEchoPage { count } if *count > 0 => Some(count),
            _ => None,
        })?;
        *armed -= 1;
        faults.retain(|f| !matches!(f, Fault::TokenEchoPage { count: 0 }));
        Some(format!(
            "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>\n<p>The upstream token service rejected the request:</p>\n<pre>{}</pre>\n</body></html>\n",
            String::from_utf8_lossy(body)
        ))
    }

    /// HubSpot search lag currently armed.
    pub fn search_lag(&self) -> Option<chrono::Duration> {
        self.lock().iter().find_map(|f| match f {
            Fault::SearchLag { lag_secs } => Some(chrono::Duration::seconds(*lag_secs as i64)),
            _ => None,
        })
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn storm_answers_until_it_ends_and_counts_disarm() {
        let f = Faults::default();
        f.arm(Fault::RateLimitStorm { until: t("2026-03-02T09:00:10Z") });
        f.arm(Fault::ServerErrors { count: 1, status: 503 });
        let (_, a) = f.on_request(t("2026-03-02T09:00:00Z"));
        assert_eq!(a, Injected::RateLimited { retry_after: Duration::from_secs(11) });
        let (_, a) = f.on_request(t("2026-03-02T09:00:11Z"));
        assert_eq!(a, Injected::ServerError { status: 503 });
        let (_, a) = f.on_request(t("2026-03-02T09:00:12Z"));
        assert_eq!(a, Injected::None);
        assert!(f.list().is_empty());
    }

    #[tokio::test]
    async fn a_gate_holds_its_requests_until_opened() {
        let f = Faults::default();
        let gate = f.hold("/composite");
        f.pass_gate("/services/data/v62.0/query").await;
        assert_eq!(gate.held(), 0, "other paths pass");
        let held = tokio::spawn({
            let f = f.clone();
            async move { f.pass_gate("/services/data/v62.0/composite/sobjects").await }
        });
        gate.wait_held(1).await;
        assert!(!held.is_finished());
        gate.open();
        held.await.unwrap();
    }

    #[test]
    fn a_batch_failure_waits_for_a_batch_with_its_marker() {
        let f = Faults::default();
        f.arm(Fault::PartialBatchFailure { marker: "POISON".into(), count: 1 });
        assert_eq!(f.take_batch_failure(br#"{"records":[{"Subject":"fine"}]}"#), None);
        assert_eq!(f.take_batch_failure(br#"{"records":[{"Subject":"POISON pill"}]}"#), Some("POISON".into()));
        assert_eq!(f.take_batch_failure(br#"{"records":[{"Subject":"POISON again"}]}"#), None, "one batch only");
        assert!(f.list().is_empty());
    }
}
