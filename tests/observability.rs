//! What the running daemon shows on its loopback address: a Prometheus
//! scrape that parses by the text-format rules and agrees with the state
//! the daemon keeps, a health check, and the scorecard `handoff report`
//! fetches from it while the daemon holds the state directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use handoff_model::CrmKind;

/// One sample of the exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict reader of the Prometheus text format (0.0.4): every sample's
/// family has HELP and TYPE first, names and labels are well formed, values
/// are numbers, no sample appears twice.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for (i, line) in text.lines().enumerate() {
        let at = |msg: &str| format!("line {}: {msg}: {line}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !name_ok(name) {
                return Err(at("bad metric name in HELP"));
            }
            helped.insert(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(at("unknown type"));
            }
            if typed.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(at("TYPE given twice"));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let value: f64 = value.parse().map_err(|_| at("value is not a number"))?;
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').ok_or_else(|| at("unclosed labels"))?),
            None => (series, ""),
        };
        if !name_ok(name) {
            return Err(at("bad metric name"));
        }
        let family = name.trim_end_matches("_total");
        if !typed.contains_key(name) && !typed.contains_key(family) {
            return Err(at("sample before its TYPE"));
        }
        if !helped.contains(name) {
            return Err(at("sample without HELP"));
        }
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").ok_or_else(|| at("label without =\""))?;
            if !name_ok(key) {
                return Err(at("bad label name"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = None;
            while let Some((j, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, e)) => value.push(e),
                        None => return Err(at("dangling escape")),
                    },
                    '"' => {
                        end = Some(j);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| at("unterminated label value"))?;
            map.insert(key.to_string(), value);
            rest = after[end + 1..].trim_start_matches(',');
        }
        let sample = Sample { name: name.to_string(), labels: map, value };
        if !seen.insert(format!("{name}{:?}", sample.labels)) {
            return Err(at("sample repeated"));
        }
        out.push(sample);
    }
    Ok(out)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_health_and_scorecard_of_a_running_daemon() {
    let sb = common::sandbox(CrmKind::Hubspot, 9, 120, 10).await;
    sb.shared.clock.advance(chrono::Duration::days(8));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = common::write_config(&sb, dir.path(), 1, |t| {
        let mut daemon = toml::Table::new();
        daemon.insert("metrics_listen".into(), format!("127.0.0.1:{port}").into());
        t.insert("daemon".into(), daemon.into());
    });
    let mut child = Command::new(common::binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // Healthy and caught up with the eight days already in the CRM.
    let deadline = Instant::now() + Duration::from_secs(120);
    let health = loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            let ok = r.status().is_success();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            if ok && body["last_tick"]["caught_up"] == serde_json::json!(true) {
                break body;
            }
        }
        assert!(Instant::now() < deadline, "the daemon never reported a caught-up tick");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(health["status"], "ok", "{health}");

    let scrape = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(scrape.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = scrape.text().await.unwrap();
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == name && label.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v)))
            .map(|s| s.value)
            .sum()
    };
    for family in [
        "handoff_clocks",
        "handoff_breached_clocks",
        "handoff_actions_written_total",
        "handoff_outbox_depth",
        "handoff_api_budget_remaining",
        "handoff_sync_lag_seconds",
        "handoff_errors_total",
    ] {
        assert!(samples.iter().any(|s| s.name == family), "{family} missing from the scrape:\n{text}");
    }
    assert!(samples.iter().all(|s| s.labels.get("instance").map(String::as_str) == Some("demo-hubspot")));
    assert_eq!(value("handoff_outbox_depth", None), 0.0, "caught up: nothing left to write");
    assert!(value("handoff_actions_written_total", Some(("kind", "reminder"))) > 0.0);
    assert!(value("handoff_actions_written_total", Some(("kind", "escalation"))) > 0.0);
    let breached = value("handoff_clocks", Some(("status", "breached")));
    assert_eq!(value("handoff_breached_clocks", None), breached);
    for s in samples.iter().filter(|s| s.name == "handoff_sync_lag_seconds") {
        assert!(s.value >= 0.0 && s.value < 3600.0, "{s:?}");
    }

    // The scorecard from the running daemon, and through `handoff report`.
    let card: serde_json::Value =
        http.get(format!("{base}/scorecard?format=json&weeks=3")).send().await.unwrap().json().await.unwrap();
    assert!(!card["weeks"].as_array().unwrap().is_empty(), "{card}");
    // The TV view: the same page full-screen, in large type, refreshing itself.
    let tv = http.get(format!("{base}/scorecard?tv")).send().await.unwrap();
    assert!(tv.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = tv.text().await.unwrap();
    assert!(page.contains("http-equiv=\"refresh\"") && page.contains("<body class=\"tv\">"), "{page}");
    assert!(page.contains("<h2>Signals</h2>") && !page.contains("<h2>Measured</h2>"), "{page}");
    let out = Command::new(common::binary())
        .args(["report", "--config"])
        .arg(&config)
        .args(["--weeks", "3"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        table.contains("handoff scorecard: demo-hubspot") && table.contains("first touch inside the window"),
        "{table}"
    );

    // Stopped, the state it kept agrees with what it reported.
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    let cfg = handoff::config::load(&config).unwrap();
    let store = handoff::store::Store::open(&cfg.instance.state_dir).unwrap();
    let mut clocks: BTreeMap<(String, String), f64> = BTreeMap::new();
    for state in store.states().unwrap().values() {
        for c in &state.clocks {
            *clocks.entry((c.kind.as_str().to_string(), c.status.as_str().to_string())).or_default() += 1.0;
        }
    }
    for ((kind, status), n) in &clocks {
        let scraped: f64 = samples
            .iter()
            .filter(|s| s.name == "handoff_clocks" && s.labels["clock"] == *kind && s.labels["status"] == *status)
            .map(|s| s.value)
            .sum();
        assert_eq!(scraped, *n, "{kind}/{status}: scraped {scraped}, stored {n}");
    }
    assert_eq!(value("handoff_leads", None), store.counts().unwrap().leads as f64);
    sb.stop().await;
}

#[test]
fn the_reader_refuses_what_prometheus_would() {
    assert!(parse_exposition("# HELP a x\n# TYPE a gauge\na 1\n").is_ok());
    assert!(parse_exposition("a 1\n").is_err(), "no TYPE");
    assert!(parse_exposition("# HELP a x\n# TYPE a gauge\na{b=\"c} 1\n").is_err(), "unterminated");
    assert!(parse_exposition("# HELP a x\n# TYPE a gauge\na one\n").is_err(), "not a number");
    assert!(parse_exposition("# HELP a x\n# TYPE a gauge\na 1\na 2\n").is_err(), "repeated");
}
