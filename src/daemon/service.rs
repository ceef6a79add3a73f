//! `handoff run`: the daemon as a service.
//!
//! Start-up: read and validate the config, open the state directory,
//! authenticate — and only then tell systemd `READY=1`. Then ticks on the
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
//! A reload applies the whole new config or none of it: the connector is
//! rebuilt when what it was built from changed, and a change only a
//! restart can make (the instance, the metrics address), or a connector
//! that cannot be built, refuses the new config with the reason.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sd_notify::NotifyState;
use tokio::sync::Notify;

use super::connect::{self, SharedNow, TimeSource};
use super::{Daemon, TickReport};
use crate::config::{self, Config, ConfigError};
use crate::store::Store;

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
    let store = Arc::new(Store::open(&store_dir(config)).context("opening the state directory")?);
    let time = TimeSource::for_config(config)?;
    let now = SharedNow::default();
    now.set(time.now().await?);
    let connector = connect::connector(config, &now).await.context("connecting to the CRM")?;
    Ok(Daemon::new(config, connector, store, time, now)?)
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

fn status_line(daemon: &Daemon, report: &TickReport) -> String {
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
    line
}

/// Tracks whether the loop is alive, for the watchdog.
#[derive(Default)]
struct Liveness {
    /// Bumped whenever work is committed or a tick ends.
    progress: AtomicU64,
    /// The loop is between ticks (waiting is healthy).
    waiting: AtomicBool,
}

/// `handoff run --config FILE`.
pub async fn run(config_path: &Path, options: RunOptions) -> anyhow::Result<()> {
    let mut config = load(config_path)?;
    let mut daemon = build(&config).await?;
    let shutdown = daemon.shutdown_flag();
    let wake = Arc::new(Notify::new());
    let reload = Arc::new(AtomicBool::new(false));
    spawn_signal_handler(
        shutdown.clone(),
        reload.clone(),
        wake.clone(),
        config.daemon.shutdown_grace_secs,
        daemon.store().clone(),
    )?;

    if let Some(addr) = config.daemon.metrics_listen {
        crate::http::serve(
            addr,
            config.instance.name.clone(),
            daemon.store().clone(),
            daemon.metrics.clone(),
            daemon.published_policy(),
        )
        .await
        .with_context(|| format!("serving /metrics on {addr}"))?;
    }

    let liveness = Arc::new(Liveness::default());
    spawn_watchdog(liveness.clone(), daemon.metrics.clone());
    notify(&[NotifyState::Ready, NotifyState::Status("authenticated; first sync starting")]);
    tracing::info!(instance = %config.instance.name, crm = %config.instance.crm, "handoff is running");

    let mut idle_ticks = 0u32;
    let mut failed_ticks = 0u32;
    let result = loop {
        if shutdown.load(Ordering::SeqCst) {
            break Ok(());
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
        notify(&[NotifyState::Status(&status_line(&daemon, &report))]);
        idle_ticks = if report.did_work() { 0 } else { idle_ticks.saturating_add(1) };
        failed_ticks = if report.errors.is_empty() { 0 } else { failed_ticks + 1 };
        if options.once {
            if report.caught_up {
                break Ok(());
            }
            if failed_ticks >= 5 {
                break Err(anyhow::anyhow!("5 ticks in a row met errors; last: {}", report.errors.join("; ")));
            }
            if report.paused_until.is_some() {
                break Err(anyhow::anyhow!("the API budget is spent; resume later"));
            }
        }
        let wait = if options.once { Duration::ZERO } else { daemon.next_wake(&report, idle_ticks, failed_ticks)? };
        liveness.waiting.store(true, Ordering::SeqCst);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
        if reload.swap(false, Ordering::SeqCst) {
            // systemd 253+ wants the monotonic time with RELOADING=1.
            match NotifyState::monotonic_usec_now() {
                Ok(mono) => notify(&[NotifyState::Reloading, mono]),
                Err(_) => notify(&[NotifyState::Reloading]),
            }
            match load(config_path) {
                Ok(new) => match daemon.reload(&config, &new).await {
                    Ok(done) => {
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
    notify(&[NotifyState::Stopping]);
    daemon.store().flush().context("flushing the state on the way out")?;
    tracing::info!("handoff stopped");
    result
}

fn spawn_signal_handler(
    shutdown: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    wake: Arc<Notify>,
    grace_secs: u64,
    store: Arc<Store>,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {
                        reload.store(true, Ordering::SeqCst);
                        wake.notify_one();
                        continue;
                    }
                }
                tracing::info!(grace_secs, "stopping: finishing the write in flight");
                notify(&[NotifyState::Stopping]);
                shutdown.store(true, Ordering::SeqCst);
                wake.notify_one();
                tokio::time::sleep(Duration::from_secs(grace_secs)).await;
                // Whatever is still in flight was not committed and will be
                // redone at the next start; committed work is on disk.
                tracing::warn!("the shutdown grace passed; exiting with work in flight");
                let _ = store.flush();
                std::process::exit(0);
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = (&reload, grace_secs, &store);
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.store(true, Ordering::SeqCst);
            wake.notify_one();
        });
    }
    Ok(())
}

/// Pings `WATCHDOG=1` at half the watchdog interval, but only when the loop
/// made progress since the last ping or is waiting between ticks.
fn spawn_watchdog(liveness: Arc<Liveness>, metrics: Arc<crate::metrics::Metrics>) {
    let Some(interval) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) else {
        return;
    };
    let every = (interval / 2).max(Duration::from_millis(50));
    tokio::spawn(async move {
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
    });
}
