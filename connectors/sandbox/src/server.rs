//! Listener, TLS and the admin API: [`start`] binds a loopback port, builds
//! the org, asks the chosen emulator for its router and serves it together
//! with the generic admin routes under `/__sandbox/`.
//!
//! The port is bound before anything else so the emulator can be built
//! knowing its own `base_url` (Salesforce hands it out as `instance_url`).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use handoff_model::CrmKind;
use serde_json::json;

use crate::clock::SimClock;
use crate::faults::Faults;
use crate::log::RequestLog;
use crate::org::{OrgConfig, SyntheticOrg};

/// Everything an emulator and the admin API share while serving.
pub struct Shared {
    pub clock: SimClock,
    pub faults: Faults,
    pub log: RequestLog,
    pub org: Arc<SyntheticOrg>,
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    /// Where the sandbox keeps the files it hands to clients (keys, certs).
    pub work_dir: PathBuf,
}

impl Shared {
    /// A `Shared` not attached to any listener, for emulator unit tests that
    /// drive a router directly. The clock starts frozen at `now_at`.
    pub fn detached(org: SyntheticOrg, now_at: DateTime<Utc>, work_dir: PathBuf) -> Self {
        Shared {
            clock: SimClock::frozen(now_at),
            faults: Faults::default(),
            log: RequestLog::default(),
            org: Arc::new(org),
            base_url: "http://127.0.0.1:0".to_string(),
            work_dir,
        }
    }
}

/// Whether simulated time also passes with real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockMode {
    /// Simulated time advances with real time (and jumps when advanced).
    #[default]
    Ticking,
    /// Simulated time only moves through the admin API; tests that compare
    /// timestamps want this.
    Frozen,
}

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub crm: CrmKind,
    /// Must be a loopback address; port 0 picks a free one.
    pub listen: SocketAddr,
    pub org: OrgConfig,
    /// Serve HTTPS with a freshly generated CA + leaf certificate.
    pub tls: bool,
    /// Where keys and certificates go; `None` makes a temporary directory
    /// removed when the sandbox stops.
    pub work_dir: Option<PathBuf>,
    pub clock: ClockMode,
    /// `false`: the clock starts at the end of the timeline and the whole org
    /// is visible at once. `true`: it starts at the beginning and the
    /// timeline unfolds as the clock advances.
    pub replay: bool,
}

impl SandboxOptions {
    /// Plain HTTP on a free loopback port, the default org, ticking clock,
    /// everything visible.
    pub fn new(crm: CrmKind) -> Self {
        SandboxOptions {
            crm,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            org: OrgConfig::default(),
            tls: false,
            work_dir: None,
            clock: ClockMode::Ticking,
            replay: false,
        }
    }
}

/// What an emulator module hands the server.
pub struct Emulator {
    /// The CRM's real paths plus its own admin routes under
    /// `/__sandbox/salesforce/…` or `/__sandbox/hubspot/…`.
    pub router: axum::Router,
    /// What a client needs to authenticate (merged into the startup line).
    pub credentials: serde_json::Value,
}

/// The one error type of this crate.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox only listens on loopback, but --listen was {addr}; use 127.0.0.1:PORT or [::1]:PORT")]
    NotLoopback { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}; pick another port (0 picks a free one)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the sandbox work directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the sandbox TLS certificates: {0}")]
    Tls(String),
    #[error("the {crm} emulator failed to start: {reason}")]
    Emulator { crm: CrmKind, reason: String },
    #[error("invalid org configuration: {0}")]
    Config(String),
    #[error("the sandbox server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A sandbox serving in the background of the current tokio runtime.
pub struct RunningSandbox {
    pub crm: CrmKind,
    pub base_url: String,
    /// `{base_url}/__sandbox`.
    pub admin_url: String,
    pub credentials: serde_json::Value,
    /// The CA certificate (PEM) clients must trust when serving TLS.
    pub ca_cert: Option<PathBuf>,
    pub shared: Arc<Shared>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Kept alive so the temporary work directory outlives the server.
    _temp_dir: Option<tempfile::TempDir>,
}

impl RunningSandbox {
    /// Stop accepting, give open requests a moment, and wait for the server.
    pub async fn stop(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(2)));
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "sandbox server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "sandbox server task failed"),
        }
    }

    /// The one JSON line `handoff sandbox` prints: `crm`, `base_url`,
    /// `admin_url`, `ca_cert` (when TLS) and the emulator's credential keys
    /// at top level.
    pub fn startup_line(&self) -> serde_json::Value {
        let mut line = serde_json::Map::new();
        line.insert("crm".into(), json!(self.crm.as_str()));
        line.insert("base_url".into(), json!(self.base_url));
        line.insert("admin_url".into(), json!(self.admin_url));
        if let Some(ca) = &self.ca_cert {
            line.insert("ca_cert".into(), json!(ca.display().to_string()));
        }
        if let serde_json::Value::Object(creds) = &self.credentials {
            for (k, v) in creds {
                line.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        serde_json::Value::Object(line)
    }
}

/// Refuse anything but loopback: the sandbox hands out tokens and serves
/// fake data, and must never be reachable from another machine.
pub fn check_loopback(addr: SocketAddr) -> Result<(), SandboxError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(SandboxError::NotLoopback { addr })
    }
}

/// Largest org the sandbox agrees to generate (memory stays around a few GB).
pub const MAX_LEADS: usize = 2_000_000;

/// Reject org sizes that cannot make a useful timeline.
pub fn check_org_config(cfg: &OrgConfig) -> Result<(), SandboxError> {
    if cfg.days == 0 {
        return Err(SandboxError::Config("--days must be at least 1 (the timeline needs a span)".into()));
    }
    if cfg.days > 3_650 {
        return Err(SandboxError::Config(format!("--days {} is more than ten years; use 3650 or fewer", cfg.days)));
    }
    if cfg.leads > MAX_LEADS {
        return Err(SandboxError::Config(format!(
            "--leads {} is more than the sandbox serves; use {MAX_LEADS} or fewer",
            cfg.leads
        )));
    }
    Ok(())
}

/// Generate the org, bind, build the emulator and start serving in the
/// background. Returns once the listener accepts connections.
pub async fn start(opts: SandboxOptions) -> Result<RunningSandbox, SandboxError> {
    check_org_config(&opts.org)?;
    let org = crate::generate::generate(&opts.org);
    start_with_org(opts, org).await
}

/// [`start`] over an org made elsewhere (a generated one whose timeline a
/// test edited, say) instead of one generated from `opts.org`, which is
/// then ignored. `org.events` must stay sorted by `at`.
pub async fn start_with_org(opts: SandboxOptions, org: SyntheticOrg) -> Result<RunningSandbox, SandboxError> {
    check_loopback(opts.listen)?;
    let listener = TcpListener::bind(opts.listen).map_err(|source| SandboxError::Bind { addr: opts.listen, source })?;
    listener.set_nonblocking(true).map_err(|source| SandboxError::Bind { addr: opts.listen, source })?;
    let local = listener.local_addr().map_err(|source| SandboxError::Bind { addr: opts.listen, source })?;

    let (temp_dir, work_dir) = match &opts.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| SandboxError::WorkDir { path: dir.clone(), source })?;
            (None, dir.clone())
        }
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("handoff-sandbox-")
                .tempdir()
                .map_err(|source| SandboxError::WorkDir { path: std::env::temp_dir(), source })?;
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    };

    let start_at = if opts.replay { org.config.start_at } else { org.config.end_at() };
    let clock = match opts.clock {
        ClockMode::Ticking => SimClock::new(start_at),
        ClockMode::Frozen => SimClock::frozen(start_at),
    };
    let scheme = if opts.tls { "https" } else { "http" };
    let base_url = format!("{scheme}://{local}");
    let shared = Arc::new(Shared {
        clock,
        faults: Faults::default(),
        log: RequestLog::default(),
        org: Arc::new(org),
        base_url: base_url.clone(),
        work_dir: work_dir.clone(),
    });

    let emulator = match opts.crm {
        CrmKind::Salesforce => crate::salesforce::build(shared.clone())?,
        CrmKind::Hubspot => crate::hubspot::build(shared.clone())?,
    };
    let router = crate::admin::router(shared.clone()).merge(emulator.router);

    let handle = axum_server::Handle::new();
    let (task, ca_cert) = if opts.tls {
        let material = crate::tls::generate(&work_dir)?;
        let config = axum_server::tls_rustls::RustlsConfig::from_config(material.server_config);
        let server = axum_server::from_tcp_rustls(listener, config).handle(handle.clone());
        (tokio::spawn(server.serve(router.into_make_service())), Some(material.ca_cert_path))
    } else {
        let server = axum_server::from_tcp(listener).handle(handle.clone());
        (tokio::spawn(server.serve(router.into_make_service())), None)
    };
    // `listening` resolves once the accept loop runs, or `None` if the
    // server gave up first (its error is then in the task).
    if handle.listening().await.is_none() {
        return Err(match task.await {
            Ok(Err(e)) => SandboxError::Serve(e),
            _ => SandboxError::Serve(std::io::Error::other("the listener closed before accepting")),
        });
    }

    Ok(RunningSandbox {
        crm: opts.crm,
        admin_url: format!("{base_url}/__sandbox"),
        base_url,
        credentials: emulator.credentials,
        ca_cert,
        shared,
        handle,
        task,
        _temp_dir: temp_dir,
    })
}

/// Start, print the startup line on stdout, and serve until SIGINT or
/// SIGTERM — what `handoff sandbox` runs.
pub async fn run_until_signal(opts: SandboxOptions) -> Result<(), SandboxError> {
    let running = start(opts).await?;
    println!("{}", running.startup_line());
    wait_for_signal().await.map_err(SandboxError::Serve)?;
    running.stop().await;
    Ok(())
}

/// [`run_until_signal`] on a runtime of its own, for synchronous callers
/// such as the `handoff sandbox` subcommand.
pub fn run_blocking(opts: SandboxOptions) -> Result<(), SandboxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(SandboxError::Serve)?;
    runtime.block_on(run_until_signal(opts))
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
