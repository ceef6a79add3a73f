//! The systemd side: the unit passes `systemd-analyze verify`, and the
//! binary speaks the notify protocol — READY only once it can work,
//! WATCHDOG only while its loop makes progress, STATUS after ticks and
//! STOPPING on SIGTERM, after which it exits cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use handoff_model::CrmKind;

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed here; the unit is not verified");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/handoff@.service")).unwrap();
    // verify checks that the binary exists: point it at the one just built.
    let unit = unit.replace("/usr/bin/handoff", common::binary().to_str().unwrap());
    let path = dir.path().join("handoff@acme.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn the_unit_carries_the_hardening_and_the_protocol() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/handoff@.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecStartPre=/usr/bin/handoff check --secrets --config /etc/handoff/%i.toml",
        "StateDirectory=handoff/%i",
        "ConfigurationDirectory=handoff",
        "LoadCredential=handoff:/etc/handoff/credentials/%i",
        "WatchdogSec=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "UMask=0077",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "the unit lacks `{line}`");
    }
}

/// Messages the service manager would receive, with when they came.
struct Listener {
    socket: UnixDatagram,
    seen: Vec<(Instant, String)>,
}

impl Listener {
    fn next(&mut self, within: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push((Instant::now(), msg.clone()));
                Some(msg)
            }
            Err(_) => None,
        }
    }

    /// Reads until a message containing `needle` arrives.
    fn wait_for(&mut self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(m) = self.next(deadline - Instant::now()) {
                if m.lines().any(|l| l.starts_with(needle)) {
                    return true;
                }
            }
        }
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_speaks_the_notify_protocol() {
    let sb = common::sandbox(CrmKind::Salesforce, 3, 60, 3).await;
    sb.shared.clock.advance(chrono::Duration::hours(30));
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sb, dir.path(), 1, |_| {});
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut listener = Listener { socket, seen: Vec::new() };

    let mut child = Command::new(common::binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "handoff=info,warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log as it comes, so a full pipe never blocks the daemon.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        })
    };
    // The log arrives through a pipe and a reader thread, so a line written
    // just before a notify message may still be in flight: wait for it.
    let logged = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if log.lock().unwrap().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // READY once the config, the store and the first authentication are done.
    assert!(listener.wait_for("READY=1", Duration::from_secs(60)), "no READY=1: {:?}", listener.seen);
    // The loop runs: progress means watchdog pings and a status line.
    assert!(listener.wait_for("WATCHDOG=1", Duration::from_secs(20)), "no WATCHDOG=1: {:?}", listener.seen);
    assert!(
        listener.wait_for("STATUS=last sync", Duration::from_secs(20)),
        "no STATUS after a tick: {:?}",
        listener.seen
    );

    // A request that hangs (the sandbox holds it 3 s): no progress, so no
    // watchdog ping until it completes.
    let waited_pings =
        |l: &Listener| l.seen.iter().filter(|(_, m)| m.contains("WATCHDOG=1")).map(|(t, _)| *t).collect::<Vec<_>>();
    sb.shared.faults.arm(handoff_sandbox::Fault::Latency { count: 1, delay_ms: 3_000 });
    sb.shared.clock.advance(chrono::Duration::minutes(10));
    let armed_at = Instant::now();
    while Instant::now() - armed_at < Duration::from_secs(8) {
        listener.next(Duration::from_millis(200));
    }
    let pings: Vec<Instant> = waited_pings(&listener).into_iter().filter(|t| *t >= armed_at).collect();
    let longest_gap = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    assert!(
        longest_gap >= Duration::from_millis(1_800),
        "pings kept coming while a request hung: gaps up to {longest_gap:?}"
    );
    assert!(
        pings.last().is_some_and(|t| Instant::now() - *t < Duration::from_secs(2)),
        "pings resumed once it answered"
    );

    // SIGHUP with a broken file: refused, the daemon carries on as it was.
    let pid = child.id().to_string();
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("[policy]", "[policy]\nbogus_key = 1")).unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    assert!(listener.wait_for("RELOADING=1", Duration::from_secs(20)), "no RELOADING=1: {:?}", listener.seen);
    assert!(listener.wait_for("READY=1", Duration::from_secs(20)), "no READY=1 after the refused reload");
    assert!(child.try_wait().unwrap().is_none(), "a broken config on reload must not stop the daemon");
    assert!(logged("policy.bogus_key"), "the refused reload names the problem");
    // SIGHUP with a valid new policy: taken.
    std::fs::write(&config, good.replace("version = 1", "version = 2")).unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    assert!(listener.wait_for("RELOADING=1", Duration::from_secs(20)));
    assert!(listener.wait_for("READY=1", Duration::from_secs(20)));
    assert!(listener.wait_for("WATCHDOG=1", Duration::from_secs(20)), "the loop runs on after the reload");
    assert!(logged("every lead is evaluated again"), "a new policy re-evaluates every lead");

    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(listener.wait_for("STOPPING=1", Duration::from_secs(20)), "no STOPPING=1: {:?}", listener.seen);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the daemon did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    reader.join().unwrap();
    let stderr = log.lock().unwrap().clone();
    assert!(status.success(), "exit {status:?}; stderr: {stderr}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_never_gets_ready() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, "[instance]\nname = \"x\"\ncrm = \"salesforce\"\n").unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let out = Command::new(common::binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("instance.state_dir") && stderr.contains("handoff check"), "{stderr}");
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    let got = socket.recv(&mut buf).map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()).unwrap_or_default();
    assert!(!got.contains("READY=1"), "READY sent for a broken config: {got}");
}
