//! `handoff run`: the daemon as a service.
//!
//! Start-up: read and validate the config, open the state directory,
//! authenticate — and only then tell systemd `READY=1`. A CRM or token
//! endpoint that cannot be reached does not end the process: the first
//! authentication is retried with full-jitter backoff (up to
//! [`MAX_CONNECT_BACKOFF_SECS`]), each attempt said in `STATUS=` and the
//! start timeout extended (`EXTEND_TIMEOUT_USEC=`), so an outage never
//! burns through systemd's start limit. Then ticks on the
//! configured interval (sooner when a deadline is near, slower when idle or
//! short of API budget) until SIGTERM/SIGINT, which finishes the write in
//! flight, flushes and exits; SIGHUP re-reads the config and applies it
//! whole if it validates (a broken file is reported and ignored).
//!
//! systemd protocol (`Type=notify`, all no-ops without `NOTIFY_SOCKET`):
//! `READY=1` once serving, `STATUS=` after every tick, `WATCHDOG=1` only
//! while the loop makes progress (pages committed, leads evaluated,
//! actions written) or waits between ticks — never while a tick is stuck —
//! and `STOPPING=1` on the way out.
//!
//! Exit codes ([`exit`]): 0 done; 1 the config or the state directory
//! cannot be used; with `--once`, 3 when actions were given up on, 4 when
//! records are quarantined, 6 when ticks kept failing, 7 when the API
//! budget ran out; in either mode, 5 when the shutdown grace ran out with
//! work in flight.
//!
//! A reload applies the whole new config or none of it: the connector is
//! rebuilt when what it was built from changed, and a change only a
//! restart can make (the instance, the metrics address), or a connector
//! that cannot be built, refuses the new config with the reason.
//!
//! [`run`] takes its stop and reload requests as [`Signals`]: the binary
//! hands it the process's signals ([`Signals::from_os`]), a test its own
//! future and channel. It never exits the process: when the shutdown grace
//! runs out it drops the work in flight (committed work is on disk, the rest
//! is redone at the next start, as after a crash), stops the HTTP endpoint,
//! flushes the store and returns [`exit::GRACE_EXPIRED`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sd_notify::NotifyState;
use tokio::sync::{mpsc, watch, Notify};

use handoff_model::RetryPolicy;

use super::connect::{self, ConnectError, SharedNow, TimeSource};
use super::{Daemon, TickReport};
use crate::config::{self, Config, ConfigError};
use crate::store::Store;

pub use crate::exit;

/// Longest pause between two attempts at the first authentication.
pub const MAX_CONNECT_BACKOFF_SECS: u64 = 300;
/// `--once` gives up on the first authentication after this many attempts.
const ONCE_CONNECT_ATTEMPTS: u32 = 5;
/// Ticks in a row with errors after which `--once` gives up.
const ONCE_FAILED_TICKS: u32 = 5;

/// How a finished `run --once` should exit, from what the store holds:
/// given-up actions first (they need an operator most), then quarantined
/// records.
pub fn once_exit_code(failed_actions: usize, quarantined: usize) -> u8 {
    if failed_actions > 0 {
        exit::ACTIONS_FAILED
    } else if quarantined > 0 {
        exit::QUARANTINED
    } else {
        exit::OK
    }
}

/// How `handoff run` behaves.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run ticks until caught up at the current instant, then exit.
    pub once: bool,
}

/// The state directory's database path.
pub fn store_dir(config: &Config) -> PathBuf {
    config.instance.state_dir.clone()
}

fn load(path: &Path) -> anyhow::Result<Config> {
    match config::load(path) {
        Ok(c) => Ok(c),
        Err(ConfigError::Invalid { path, issues }) => {
            let lines: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
            anyhow::bail!(
                "{} has {} problem(s):\n{}\nRun `handoff check --config {}` after fixing them",
                path.display(),
                issues.len(),
                lines.join("\n"),
                path.display()
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens everything a daemon needs for `config` and authenticates.
pub async fn build(config: &Config) -> anyhow::Result<Daemon> {
    connect::prepare_state_dir(&config.instance.state_dir)?;
    let store = Arc::new(
        Store::open_with_cache(&store_dir(config), config.daemon.state_cache_mib)
            .context("opening the state directory")?,
    );
    let time = TimeSource::for_config(config)?;
    let now = SharedNow::default();
    now.set(time.now().await?);
    let connector = connect::connector(config, &now).await.context("connecting to the CRM")?;
    Ok(Daemon::new(config, connector, store, time, now)?)
}

/// Whether a start-up failure is worth retrying: an unreachable or failing
/// CRM or token endpoint is (it comes back); a missing secret or an
/// unusable state directory is not (the operator must act).
fn retryable(e: &ConnectError) -> bool {
    !matches!(e, ConnectError::Secret(_) | ConnectError::State { .. })
}

/// Builds the daemon, retrying the first authentication (and the time
/// source) with full-jitter backoff while the CRM cannot be reached.
/// `Ok(None)`: asked to stop before it succeeded.
async fn build_with_retry(
    config: &Config,
    options: &RunOptions,
    shutdown: &AtomicBool,
    wake: &Notify,
) -> anyhow::Result<Option<Daemon>> {
    connect::prepare_state_dir(&config.instance.state_dir)?;
    let store = Arc::new(
        Store::open_with_cache(&store_dir(config), config.daemon.state_cache_mib)
            .context("opening the state directory")?,
    );
    let time = TimeSource::for_config(config)?;
    let now = SharedNow::default();
    let backoff = RetryPolicy {
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(MAX_CONNECT_BACKOFF_SECS),
        ..RetryPolicy::default()
    };
    let mut attempt = 0u32;
    loop {
        if shutdown.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let result = async {
            now.set(time.now().await?);
            connect::connector(config, &now).await
        }
        .await;
        let e = match result {
            Ok(connector) => {
                if attempt > 0 {
                    tracing::info!(attempts = attempt + 1, "connected to the CRM");
                }
                return Ok(Some(Daemon::new(config, connector, store, time, now)?));
            }
            Err(e) if !retryable(&e) => return Err(anyhow::Error::new(e).context("connecting to the CRM")),
            Err(e) => e,
        };
        attempt += 1;
        let message = handoff_model::redact(&e.to_string());
        if options.once && attempt >= ONCE_CONNECT_ATTEMPTS {
            anyhow::bail!(RunStop::NotCaughtUp(format!(
                "the CRM could not be reached in {attempt} attempts; last: {message}"
            )));
        }
        // Full jitter, but never less than a second: instances started
        // together spread out, and none spins.
        let wait = backoff.backoff_with(attempt - 1, &mut rand::thread_rng()).max(Duration::from_secs(1));
        tracing::warn!(attempt, retry_in_secs = wait.as_secs(), error = %message, "cannot connect to the CRM yet; retrying");
        let status =
            format!("not connected yet (attempt {attempt}): {message}; retrying in {} s", wait.as_secs().max(1));
        // Start-up takes as long as the outage: keep systemd's start timeout
        // ahead of the next attempt (plus a minute for the attempt itself).
        let extend = (wait + Duration::from_secs(60)).as_micros().min(u128::from(u32::MAX)) as u32;
        notify(&[NotifyState::Status(&status), NotifyState::ExtendTimeoutUsec(extend)]);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
    }
}

/// Why `run` stopped short, mapped to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunStop {
    #[error("{0}")]
    NotCaughtUp(String),
    #[error("{0}")]
    BudgetSpent(String),
}

impl RunStop {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunStop::NotCaughtUp(_) => exit::NOT_CAUGHT_UP,
            RunStop::BudgetSpent(_) => exit::BUDGET_SPENT,
        }
    }
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// The `STATUS=` line after a tick; `retry_in`: the tick met errors and the
/// next one comes after this pause.
fn status_line(daemon: &Daemon, report: &TickReport, retry_in: Option<Duration>) -> String {
    let counts = daemon.store().counts().unwrap_or_default();
    let when = report.now.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
    let mut line = format!(
        "last sync {when}: {} leads, {} evaluated, {} written, outbox {}{}",
        counts.leads,
        report.evaluated,
        report.written,
        counts.outbox,
        if counts.outbox_failed > 0 { format!(" ({} failed)", counts.outbox_failed) } else { String::new() }
    );
    if let Some(p) = report.paused_until {
        line.push_str(&format!(", API budget paused until {}", p.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    if let Some(e) = report.errors.first() {
        line.push_str(&format!(", last error: {e}"));
    }
    if let Some(wait) = retry_in {
        line.push_str(&format!("; retrying in {} s", wait.as_secs()));
    }
    // Any local user can read a unit's status: nothing unredacted goes there.
    handoff_model::redact(&line)
}

/// Tracks whether the loop is alive, for the watchdog.
#[derive(Default)]
struct Liveness {
    /// Bumped whenever work is committed or a tick ends.
    progress: AtomicU64,
    /// The loop is between ticks (waiting is healthy).
    waiting: AtomicBool,
}

/// What asks [`run`] to stop or to re-read its config.
pub struct Signals {
    /// Resolves when the service must stop: the write in flight finishes
    /// (within the config's shutdown grace), then `run` returns.
    pub shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// One message per reload request (SIGHUP).
    pub reloads: mpsc::UnboundedReceiver<()>,
}

impl Signals {
    /// Stop when `shutdown` resolves; reload on each message sent to the
    /// returned sender.
    pub fn new(shutdown: impl Future<Output = ()> + Send + 'static) -> (Signals, mpsc::UnboundedSender<()>) {
        let (tx, reloads) = mpsc::unbounded_channel();
        (Signals { shutdown: Box::pin(shutdown), reloads }, tx)
    }

    /// The process's signals: SIGTERM or SIGINT stop, SIGHUP reloads.
    pub fn from_os() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
            let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
            let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
            let (signals, reload) = Signals::new(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    if reload.send(()).is_err() {
                        break;
                    }
                }
            });
            Ok(signals)
        }
        #[cfg(not(unix))]
        {
            let (signals, _reload) = Signals::new(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            Ok(signals)
        }
    }
}

/// What the loop and the code around it share.
struct Shared {
    /// Set once a stop was asked for: the tick finishes its write in flight
    /// and the loop ends.
    stop: Arc<AtomicBool>,
    /// Set by a reload request, taken by the loop between ticks.
    reload: Arc<AtomicBool>,
    /// Wakes the loop (or the start-up backoff) early.
    wake: Arc<Notify>,
    /// The running config's shutdown grace (a reload may change it).
    grace_secs: Arc<AtomicU64>,
    /// The store, once open: flushed on the way out whatever happened.
    store: std::sync::OnceLock<Arc<Store>>,
    /// Tells the HTTP endpoint to stop.
    http_stop: watch::Sender<bool>,
    /// The HTTP endpoint's task, once serving.
    http: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The watchdog's task, when systemd asked for one.
    watchdog: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// `handoff run --config FILE` until `signals` say stop; the result is the
/// process's exit code ([`exit`]). The service's own tasks (HTTP endpoint,
/// watchdog, reload forwarding) end before it returns and the store is
/// flushed and released.
pub async fn run(config_path: &Path, options: RunOptions, signals: Signals) -> anyhow::Result<u8> {
    let config = load(config_path)?;
    let (http_stop, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        stop: Arc::new(AtomicBool::new(false)),
        reload: Arc::new(AtomicBool::new(false)),
        wake: Arc::new(Notify::new()),
        grace_secs: Arc::new(AtomicU64::new(config.daemon.shutdown_grace_secs)),
        store: std::sync::OnceLock::new(),
        http_stop,
        http: std::sync::Mutex::new(None),
        watchdog: std::sync::Mutex::new(None),
    });
    let Signals { mut shutdown, mut reloads } = signals;
    let forward = {
        let (reload, wake) = (shared.reload.clone(), shared.wake.clone());
        tokio::spawn(async move {
            while reloads.recv().await.is_some() {
                reload.store(true, Ordering::SeqCst);
                wake.notify_one();
            }
        })
    };

    let result = {
        let work = serve(config, config_path, options, &shared);
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r,
            _ = &mut shutdown => {
                let grace_secs = shared.grace_secs.load(Ordering::SeqCst);
                tracing::info!(grace_secs, "stopping: finishing the write in flight");
                notify(&[NotifyState::Stopping]);
                shared.stop.store(true, Ordering::SeqCst);
                shared.wake.notify_one();
                match tokio::time::timeout(Duration::from_secs(grace_secs), &mut work).await {
                    Ok(r) => r,
                    Err(_) => {
                        // What was in flight was not committed and is redone
                        // at the next start; committed work is on disk.
                        tracing::warn!(
                            exit_code = exit::GRACE_EXPIRED,
                            "the shutdown grace passed; stopping with work in flight"
                        );
                        Ok(exit::GRACE_EXPIRED)
                    }
                }
            }
        }
        // The loop (and the daemon it owns) is dropped here.
    };

    forward.abort();
    let _ = shared.http_stop.send(true);
    let http = shared.http.lock().ok().and_then(|mut h| h.take());
    if let Some(http) = http {
        let _ = http.await;
    }
    if let Some(watchdog) = shared.watchdog.lock().ok().and_then(|mut w| w.take()) {
        watchdog.abort();
    }
    notify(&[NotifyState::Stopping]);
    if let Some(store) = shared.store.get() {
        store.flush().context("flushing the state on the way out")?;
    }
    tracing::info!("handoff stopped");
    result
}

/// The service proper: start-up, then ticks until a stop is asked for.
async fn serve(mut config: Config, config_path: &Path, options: RunOptions, shared: &Shared) -> anyhow::Result<u8> {
    let mut daemon = match build_with_retry(&config, &options, &shared.stop, &shared.wake).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            tracing::info!("stopped before the first authentication");
            return Ok(exit::OK);
        }
        Err(e) => match e.downcast::<RunStop>() {
            Ok(stop) => {
                tracing::error!(error = %stop, "giving up");
                return Ok(stop.exit_code());
            }
            Err(e) => return Err(e),
        },
    };
    daemon.set_shutdown_flag(shared.stop.clone());
    let _ = shared.store.set(daemon.store().clone());

    if let Some(addr) = config.daemon.metrics_listen {
        let (_, task) = crate::http::serve(
            addr,
            config.instance.name.clone(),
            daemon.store().clone(),
            daemon.metrics.clone(),
            daemon.published_policy(),
            shared.http_stop.subscribe(),
        )
        .await
        .with_context(|| format!("serving /metrics on {addr}"))?;
        if let Ok(mut slot) = shared.http.lock() {
            *slot = Some(task);
        }
    }

    let liveness = Arc::new(Liveness::default());
    if let Some(task) = spawn_watchdog(liveness.clone(), daemon.metrics.clone()) {
        if let Ok(mut slot) = shared.watchdog.lock() {
            *slot = Some(task);
        }
    }
    notify(&[NotifyState::Ready, NotifyState::Status("authenticated; first sync starting")]);
    tracing::info!(instance = %config.instance.name, crm = %config.instance.crm, "handoff is running");

    let mut idle_ticks = 0u32;
    let mut failed_ticks = 0u32;
    let result: anyhow::Result<u8> = loop {
        if shared.stop.load(Ordering::SeqCst) {
            break Ok(exit::OK);
        }
        liveness.waiting.store(false, Ordering::SeqCst);
        let report = match daemon.tick().await {
            Ok(r) => r,
            Err(e) => {
                // The store failed: nothing below can be trusted to persist.
                break Err(anyhow::Error::new(e).context("the tick could not commit its work"));
            }
        };
        liveness.progress.fetch_add(1, Ordering::SeqCst);
        idle_ticks = if report.did_work() { 0 } else { idle_ticks.saturating_add(1) };
        failed_ticks = if report.errors.is_empty() { 0 } else { failed_ticks + 1 };
        if options.once {
            notify(&[NotifyState::Status(&status_line(&daemon, &report, None))]);
            if report.caught_up {
                let counts = daemon.store().counts()?;
                break Ok(once_exit_code(counts.outbox_failed, daemon.store().quarantined_count()?));
            }
            if failed_ticks >= ONCE_FAILED_TICKS {
                let why = format!("{failed_ticks} ticks in a row met errors; last: {}", report.errors.join("; "));
                tracing::error!(error = %handoff_model::redact(&why), "giving up");
                break Ok(exit::NOT_CAUGHT_UP);
            }
            if report.paused_until.is_some() {
                tracing::error!("the API budget is spent; resume later");
                break Ok(exit::BUDGET_SPENT);
            }
        }
        let wait = if options.once { Duration::ZERO } else { daemon.next_wake(&report, idle_ticks, failed_ticks)? };
        if !options.once {
            let retry_in = (failed_ticks > 0).then_some(wait);
            notify(&[NotifyState::Status(&status_line(&daemon, &report, retry_in))]);
        }
        liveness.waiting.store(true, Ordering::SeqCst);
        if !shared.stop.load(Ordering::SeqCst) {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shared.wake.notified() => {}
            }
        }
        if shared.reload.swap(false, Ordering::SeqCst) {
            // systemd 253+ wants the monotonic time with RELOADING=1.
            match NotifyState::monotonic_usec_now() {
                Ok(mono) => notify(&[NotifyState::Reloading, mono]),
                Err(_) => notify(&[NotifyState::Reloading]),
            }
            match load(config_path) {
                Ok(new) => match daemon.reload(&config, &new).await {
                    Ok(done) => {
                        shared.grace_secs.store(new.daemon.shutdown_grace_secs, Ordering::SeqCst);
                        config = new;
                        if done.rebuilt_for.is_empty() {
                            tracing::info!("config reloaded");
                        } else {
                            tracing::info!(rebuilt_for = ?done.rebuilt_for, "config reloaded; the connector was rebuilt");
                        }
                    }
                    Err(super::ReloadError::Daemon(e)) => {
                        break Err(anyhow::Error::new(e).context("the reload could not commit its work"));
                    }
                    Err(e) => tracing::error!(error = %e, "the new config is refused; keeping the running one"),
                },
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "the new config is invalid; keeping the running one")
                }
            }
            notify(&[NotifyState::Ready]);
        }
    };
    daemon.store().flush().context("flushing the state on the way out")?;
    result
}

/// Pings `WATCHDOG=1` at half the watchdog interval, but only when the loop
/// made progress since the last ping or is waiting between ticks.
fn spawn_watchdog(
    liveness: Arc<Liveness>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled().filter(|d| !d.is_zero())?;
    let every = (interval / 2).max(Duration::from_millis(50));
    Some(tokio::spawn(async move {
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(every).await;
            let progress = liveness.progress.load(Ordering::SeqCst) + metrics.progress.load(Ordering::Relaxed);
            if progress != last || liveness.waiting.load(Ordering::SeqCst) {
                notify(&[NotifyState::Watchdog]);
                last = progress;
            } else {
                tracing::warn!("no progress since the last watchdog ping; not pinging");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_once_run_says_what_needs_an_operator() {
        assert_eq!(once_exit_code(0, 0), exit::OK);
        assert_eq!(once_exit_code(2, 0), exit::ACTIONS_FAILED);
        assert_eq!(once_exit_code(0, 7), exit::QUARANTINED);
        assert_eq!(once_exit_code(1, 1), exit::ACTIONS_FAILED, "given-up actions come first");
        let codes = [
            exit::OK,
            exit::INVALID,
            exit::ACTIONS_FAILED,
            exit::QUARANTINED,
            exit::GRACE_EXPIRED,
            exit::NOT_CAUGHT_UP,
        ];
        let distinct: std::collections::BTreeSet<u8> = codes.iter().copied().chain([exit::BUDGET_SPENT]).collect();
        assert_eq!(distinct.len(), codes.len() + 1, "every reason has its own code");
        assert!(!distinct.contains(&2), "2 is clap's, for a bad command line");
    }

    #[test]
    fn an_outage_is_retried_but_a_missing_secret_is_not() {
        let outage = ConnectError::Connector(handoff_model::ConnectorError::Transport {
            crm: handoff_model::CrmKind::Hubspot,
            message: "token endpoint: HTTP 503".into(),
        });
        assert!(retryable(&outage));
        let state = ConnectError::State { path: "/x".into(), message: "read-only file system".into() };
        assert!(!retryable(&state));
    }
}
