//! No secret value reaches any output. For every auth flow of both CRMs, the
//! daemon runs as a service against the sandbox while its token endpoint
//! answers HTML error pages that echo the submitted form (at the first
//! authentication, and again when the access token expires mid-run), with
//! logs at trace level; then `handoff state`, and `handoff check` on broken
//! files holding an inline secret. Every log line, every notify message
//! (`STATUS=`…), every byte of the state directory and every line those
//! commands print is searched for each secret value and for any stretch of
//! 12 characters of one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handoff_model::CrmKind;
use handoff_sandbox::Fault;

/// The flows, by CRM and `flow` name.
const FLOWS: [(CrmKind, &str); 5] = [
    (CrmKind::Salesforce, "jwt_bearer"),
    (CrmKind::Salesforce, "refresh_token"),
    (CrmKind::Salesforce, "client_credentials"),
    (CrmKind::Hubspot, "private_app"),
    (CrmKind::Hubspot, "oauth"),
];

/// Every secret the sandbox handed out, as values to look for: whole, and
/// each base64 line of the private key.
fn secret_values(sb: &handoff_sandbox::RunningSandbox) -> Vec<String> {
    let c = &sb.credentials;
    let mut out: Vec<String> = ["client_secret", "refresh_token", "access_token"]
        .iter()
        .filter_map(|k| c[*k].as_str().map(str::to_string))
        .collect();
    if let Some(path) = c["jwt_private_key_path"].as_str() {
        let pem = std::fs::read_to_string(path).unwrap();
        out.extend(pem.lines().filter(|l| !l.starts_with("-----") && l.len() > 20).map(str::to_string));
    }
    out
}

/// Writes `value` to `dir/name` (0600) and returns `{ file = … }`.
fn secret_file(dir: &Path, name: &str, value: &str) -> toml::Value {
    let path = dir.join(name);
    std::fs::write(&path, value).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut t = toml::Table::new();
    t.insert("file".into(), path.display().to_string().into());
    toml::Value::Table(t)
}

fn auth_table(sb: &handoff_sandbox::RunningSandbox, flow: &str, creds: &Path) -> toml::Table {
    let c = &sb.credentials;
    let s = |k: &str| c[k].as_str().unwrap().to_string();
    let mut auth = toml::Table::new();
    auth.insert("flow".into(), flow.into());
    match flow {
        "jwt_bearer" => {
            auth.insert("client_id".into(), s("client_id").into());
            auth.insert("username".into(), s("username").into());
            let pem = std::fs::read_to_string(s("jwt_private_key_path")).unwrap();
            auth.insert("private_key".into(), secret_file(creds, "key.pem", &pem));
        }
        "refresh_token" | "oauth" => {
            auth.insert("client_id".into(), s("client_id").into());
            auth.insert("client_secret".into(), secret_file(creds, "client-secret", &s("client_secret")));
            auth.insert("refresh_token".into(), secret_file(creds, "refresh-token", &s("refresh_token")));
        }
        "client_credentials" => {
            auth.insert("client_id".into(), s("client_id").into());
            auth.insert("client_secret".into(), secret_file(creds, "client-secret", &s("client_secret")));
        }
        "private_app" => {
            auth.insert("token".into(), secret_file(creds, "token", &s("access_token")));
        }
        other => panic!("unknown flow {other}"),
    }
    auth
}

/// Every file under `dir`, but the rotated refresh token handoff keeps by
/// design (checked for its mode instead).
fn state_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(p) = pending.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", p.display());
            pending.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
            if p.file_name().is_some_and(|n| n.to_string_lossy().ends_with("-refresh-token")) {
                continue;
            }
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// Fails when `haystack` holds a secret or 12 characters of one (but for
/// stretches where one character fills a third, such as the org id heading
/// a Salesforce session token, which every record id of the org shares).
fn assert_clean(what: &str, haystack: &[u8], secrets: &[String]) {
    const STRETCH: usize = 12;
    let random = |w: &[u8]| w.iter().all(|c| w.iter().filter(|d| *d == c).count() < 4);
    // Every 12-byte stretch of every secret, looked up in one pass.
    let mut stretches = std::collections::HashSet::new();
    for secret in secrets {
        let bytes = secret.as_bytes();
        if bytes.len() < STRETCH {
            assert!(!haystack.windows(bytes.len()).any(|h| h == bytes), "{what} holds a secret");
            continue;
        }
        stretches.extend(bytes.windows(STRETCH).filter(|w| random(w)));
    }
    if let Some((at, w)) = haystack.windows(STRETCH).enumerate().find(|(_, h)| stretches.contains(h)) {
        let text = String::from_utf8_lossy(&haystack[at.saturating_sub(80)..(at + 120).min(haystack.len())]);
        panic!("{what} holds part of a secret ({:?}): …{text}…", String::from_utf8_lossy(w));
    }
}

struct Listener {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Listener {
    fn wait_for(&mut self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            self.socket.set_read_timeout(Some(deadline - Instant::now())).unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.contains(needle);
                self.seen.push(msg);
                if hit {
                    return true;
                }
            }
        }
        false
    }
}

fn handoff(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(common::binary()).args(args).arg("--config").arg(config).env("RUST_LOG", "trace").output().unwrap()
}

async fn run_flow(crm: CrmKind, flow: &str, json_logs: bool) {
    let sb = common::sandbox(crm, 5, 40, 3).await;
    sb.shared.clock.advance(chrono::Duration::hours(30));
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    let section = match crm {
        CrmKind::Salesforce => "salesforce",
        CrmKind::Hubspot => "hubspot",
    };
    let auth = auth_table(&sb, flow, &creds);
    let config = common::write_config(&sb, dir.path(), 1, |t| {
        t[section].as_table_mut().unwrap().insert("auth".into(), toml::Value::Table(auth));
    });
    let state_dir = handoff::config::load(&config).unwrap().instance.state_dir;
    // The demo's private-app token file is not this test's business.
    let _ = std::fs::remove_file(state_dir.join("hubspot-token"));
    let secrets = secret_values(&sb);

    // The first authentication meets echo pages.
    sb.shared.faults.arm(Fault::TokenEchoPage { count: 2 });
    let socket_path = dir.path().join("notify.sock");
    let mut listener = Listener { socket: UnixDatagram::bind(&socket_path).unwrap(), seen: Vec::new() };
    let mut child = Command::new(common::binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "trace")
        .env("HANDOFF_LOG_FORMAT", if json_logs { "json" } else { "text" })
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::<u8>::new()));
    let reader = {
        let log = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap();
                l.extend_from_slice(line.as_bytes());
                l.push(b'\n');
            }
        })
    };
    assert!(listener.wait_for("READY=1", Duration::from_secs(120)), "never ready: {:?}", listener.seen);
    assert!(listener.wait_for("STATUS=last sync", Duration::from_secs(60)), "no tick: {:?}", listener.seen);
    // The access token expires mid-run and its renewal meets echo pages.
    sb.shared.faults.arm(Fault::TokenEchoPage { count: 2 });
    sb.shared.clock.advance(chrono::Duration::hours(3));
    let deadline = Instant::now() + Duration::from_secs(90);
    while flow != "private_app"
        && sb.shared.faults.list().iter().any(|f| matches!(f, Fault::TokenEchoPage { .. }))
        && Instant::now() < deadline
    {
        listener.wait_for("STATUS=", Duration::from_secs(1));
    }
    for _ in 0..2 {
        assert!(listener.wait_for("STATUS=last sync", Duration::from_secs(90)), "no tick: {:?}", listener.seen);
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(status.success(), "{crm}/{flow}: exit {status:?}: {}", String::from_utf8_lossy(&log));

    if flow != "private_app" {
        assert!(
            sb.shared.faults.list().iter().all(|f| !matches!(f, Fault::TokenEchoPage { .. })),
            "{crm}/{flow}: the echo pages were all served"
        );
    }
    let mut outputs: Vec<(String, Vec<u8>)> = vec![("the trace log".into(), log)];
    outputs.push(("the notify messages".into(), listener.seen.join("\n").into_bytes()));
    for (path, bytes) in state_bytes(&state_dir) {
        outputs.push((format!("state file {}", path.display()), bytes));
    }
    // The files hold most values compressed: read them unpacked too.
    {
        let store =
            handoff::store::Store::open(&handoff::daemon::service::store_dir(&handoff::config::load(&config).unwrap()))
                .unwrap();
        let values = store.plain_entries().unwrap();
        assert!(values.iter().any(|(tree, _, _)| *tree == "leads"), "{crm}/{flow}: the store holds leads");
        for (tree, key, value) in values {
            outputs.push((format!("stored {tree} {}", String::from_utf8_lossy(&key)), [key, value].concat()));
        }
    }
    for args in [&["state"][..], &["state", "--json"][..], &["check", "--secrets"][..]] {
        let out = handoff(args, &config);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push((format!("handoff {args:?}"), [out.stdout, out.stderr].concat()));
    }
    // `handoff check` on broken files holding the secrets inline.
    let good = std::fs::read_to_string(&config).unwrap();
    for (i, secret) in secrets.iter().enumerate() {
        for broken in [
            format!("{good}\n[{section}.extra]\nclient_secret = \"{secret}\n"),
            format!("{good}\n[x]\ntoken = {secret}\n"),
            good.replacen("[sync]", &format!("[sync]\nrefresh_token = \"{secret}\"\n"), 1),
        ] {
            let path = dir.path().join(format!("broken-{i}.toml"));
            std::fs::write(&path, broken).unwrap();
            let out = handoff(&["check", "--secrets"], &path);
            assert!(!out.status.success(), "a broken file passed");
            outputs.push((format!("handoff check on {}", path.display()), [out.stdout, out.stderr].concat()));
        }
    }
    for (what, bytes) in &outputs {
        assert_clean(&format!("{crm}/{flow}: {what}"), bytes, &secrets);
    }
    let page_logged = String::from_utf8_lossy(&outputs[0].1).contains("Bad Gateway");
    println!(
        "{crm}/{flow}: {} outputs, {} secrets, none shown (echo page text in the log: {page_logged})",
        outputs.len(),
        secrets.len()
    );
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_of_any_salesforce_flow_holds_a_secret() {
    for (i, (crm, flow)) in FLOWS.iter().filter(|(c, _)| *c == CrmKind::Salesforce).enumerate() {
        run_flow(*crm, flow, i % 2 == 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_of_any_hubspot_flow_holds_a_secret() {
    for (i, (crm, flow)) in FLOWS.iter().filter(|(c, _)| *c == CrmKind::Hubspot).enumerate() {
        run_flow(*crm, flow, i % 2 == 1).await;
    }
}
