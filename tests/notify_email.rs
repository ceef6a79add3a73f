//! Digests and the weekly summary delivered to a real SMTP server on
//! loopback: aiosmtpd (from `.venv-conformance`, `scripts/setup-conformance`)
//! with STARTTLS and AUTH, fed by the real daemon over a simulated week and
//! a half of a generated Salesforce org.
//!
//! Checked: each digest and the summary arrive once per recipient and
//! period across a daemon restart and a delivery the server refused once
//! (451, retried); a rep's digest lists exactly the leads the org says are
//! undispositioned in their hands at that moment (at-risk ones may come on
//! top), each with its Lightning link; no digest lands on a weekend in the
//! rep's zone; the HTML part renders in headless Chromium with its coloured
//! rows. A second test sends over implicit TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc, Weekday};
use handoff::demo::{SimOptions, Simulation};
use handoff_model::CrmKind;
use handoff_sandbox::org::{EventKind, IntendedGrade, LeadStatus, OwnerRef, SyntheticOrg};
use serde_json::Value;

const LAG_SECS: i64 = 2;
const USER: &str = "handoff-notify";
const PASSWORD: &str = "s3cret-smtp-sandbox-password";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let py = repo_root().join(".venv-conformance/bin/python");
    assert!(py.exists(), "{} is missing: run scripts/setup-conformance (it installs aiosmtpd)", py.display());
    py
}

/// The aiosmtpd process and where it writes what it accepted.
struct SmtpSink {
    child: Child,
    port: u16,
    out: PathBuf,
    fail_file: PathBuf,
    ca: PathBuf,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start(mode: &str) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "handoff smtp test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem() + &ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        let out = dir.path().join("received.jsonl");
        let fail_file = dir.path().join("fail-next");
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/smtp/smtp_sink.py"))
            .args(["--mode", mode, "--user", USER, "--password", PASSWORD])
            .arg("--out")
            .arg(&out)
            .arg("--cert")
            .arg(dir.path().join("cert.pem"))
            .arg("--key")
            .arg(dir.path().join("key.pem"))
            .arg("--fail-file")
            .arg(&fail_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the SMTP sink starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP sink did not start: {line:?}"));
        SmtpSink { child, port, out, fail_file, ca, dir }
    }

    fn fail_next(&self, n: u32) {
        std::fs::write(&self.fail_file, n.to_string()).unwrap();
    }

    fn messages(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.out) {
            Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn password_file(&self) -> PathBuf {
        let p = self.dir.path().join("smtp-password");
        std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
        p
    }

    fn email_table(&self, tls: &str) -> toml::Table {
        let mut email = toml::Table::new();
        email.insert("server".into(), "localhost".into());
        email.insert("port".into(), toml::Value::Integer(i64::from(self.port)));
        email.insert("tls".into(), tls.into());
        email.insert("from".into(), "handoff <sla@handoff-sandbox.example>".into());
        email.insert("username".into(), USER.into());
        let mut password = toml::Table::new();
        password.insert("file".into(), self.password_file().display().to_string().into());
        email.insert("password".into(), password.into());
        email.insert("ca_file".into(), self.ca.display().to_string().into());
        email
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<dg.{recipient}.{yyyymmdd}.{kind}.v1@domain>` back to its parts.
fn key_of(message_id: &str) -> Vec<String> {
    let inner = message_id.trim().trim_start_matches('<').split('@').next().unwrap_or_default();
    inner.split('.').map(str::to_string).collect()
}

/// What the org says about lead `i` at `t` (events visible by then).
struct LeadTruth {
    owner: Option<OwnerRef>,
    decided: bool,
    removed: bool,
}

fn truth_at(org: &SyntheticOrg, t: DateTime<Utc>) -> Vec<LeadTruth> {
    let mut out: Vec<LeadTruth> =
        (0..org.leads.len()).map(|_| LeadTruth { owner: None, decided: false, removed: false }).collect();
    for e in org.events.iter().take_while(|e| e.at <= t - Duration::seconds(LAG_SECS)) {
        match &e.kind {
            EventKind::LeadCreated { lead, owner } | EventKind::Assigned { lead, owner } => {
                out[*lead].owner = Some(*owner)
            }
            EventKind::StatusChanged { lead, status } => {
                if !matches!(status, LeadStatus::New | LeadStatus::Working) {
                    out[*lead].decided = true;
                }
            }
            EventKind::Deleted { lead } | EventKind::Merged { lead, .. } => out[*lead].removed = true,
            EventKind::Touch { .. } | EventKind::OpportunityCreated { .. } | EventKind::OpportunityMeeting { .. } => {}
        }
    }
    out
}

async fn lead_index_by_id(sim: &Simulation) -> BTreeMap<String, usize> {
    let url = format!("{}/salesforce/records/Lead", sim.sandbox.admin_url);
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let org = &sim.sandbox.shared.org;
    let by_email: BTreeMap<String, usize> = org.leads.iter().map(|l| (l.email.to_lowercase(), l.index)).collect();
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let id = r["Id"].as_str()?.to_string();
            let email = r["Email"].as_str()?.to_lowercase();
            Some((id, *by_email.get(&email)?))
        })
        .collect()
}

fn chromium() -> PathBuf {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("headless Chromium is needed to check the digest's HTML part: install Debian's `chromium`");
}

fn screenshot(html: &str, dir: &Path, name: &str) -> (Vec<u8>, usize) {
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, html).unwrap();
    let shot = dir.join(format!("{name}.png"));
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,1400",
        ])
        .arg(format!("--user-data-dir={}", dir.join(format!("profile-{name}")).display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(shot.exists(), "Chromium wrote no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    if let Ok(keep) = std::env::var("HANDOFF_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, format!("{keep}.{name}.png")).unwrap();
    }
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (buf, info.color_type.samples())
}

fn count_colour(pixels: &[u8], channels: usize, rgb: [u8; 3], tol: i32) -> usize {
    pixels.chunks(channels).filter(|p| (0..3).all(|i| (i32::from(p[i]) - i32::from(rgb[i])).abs() <= tol)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_and_the_summary_arrive_once_across_a_restart_and_a_retry() {
    let smtp = SmtpSink::start("starttls");
    let first_rep = handoff_sandbox::salesforce::materialise::user_id(5);
    let mut notify = toml::Table::new();
    notify.insert("digest_time".into(), "08:00".into());
    notify.insert("summary_time".into(), "09:00".into());
    notify.insert("summary_to".into(), toml::Value::Array(vec!["vp.sales@handoff-sandbox.example".into()]));
    notify.insert("email".into(), smtp.email_table("starttls").into());
    let mut recipients = toml::Table::new();
    let mut over = toml::Table::new();
    over.insert("email".into(), "override.rep@handoff-sandbox.example".into());
    recipients.insert(first_rep.clone(), over.into());
    notify.insert("recipients".into(), recipients.into());
    let mut extra = toml::Table::new();
    extra.insert("notify".into(), notify.into());
    let opts = SimOptions {
        crm: CrmKind::Salesforce,
        seed: 11,
        leads: 60,
        days: 8,
        step: Duration::minutes(30),
        config_extra: Some(extra),
        ..SimOptions::new(CrmKind::Salesforce)
    };
    let mut sim = Simulation::start(&opts).await.unwrap();
    // The first delivery is refused once (451): it must come back once.
    smtp.fail_next(1);
    let restart_at = Utc.with_ymd_and_hms(2026, 3, 3, 12, 0, 0).unwrap();
    sim.run_until(restart_at, |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read_to_string(&smtp.fail_file).unwrap().trim(), "0", "the refusal was used");
    let before_restart = smtp.messages().len();
    assert!(before_restart > 0, "digests went out before the restart");
    let mut sim = sim.restart().await.unwrap();
    let end = sim.end_at();
    sim.run_until(end, |_, _| {}).await.unwrap();

    let retried: Vec<u32> = sim
        .daemon
        .store()
        .ledger_entries()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.starts_with("dg:") || k.starts_with("ws:"))
        .map(|(_, e)| e.attempts)
        .collect();
    assert!(retried.contains(&2), "one message needed a second attempt: {retried:?}");
    assert!(sim.daemon.store().messages().unwrap().is_empty(), "every message was delivered");

    let received = smtp.messages();
    let org = sim.sandbox.shared.org.clone();
    let index_of = lead_index_by_id(&sim).await;
    let user_index: BTreeMap<String, usize> =
        org.users.iter().map(|u| (handoff_sandbox::salesforce::materialise::user_id(u.index), u.index)).collect();
    // handoff's own reassignments (the ladder's last rung) move a lead to
    // the pool: the org's timeline does not know them.
    let reassigned_at: BTreeMap<usize, DateTime<Utc>> = sim
        .daemon
        .store()
        .ledger_entries()
        .unwrap()
        .into_iter()
        .filter(|(_, e)| matches!(e.kind, handoff::store::ActionSummary::Reassign { .. }))
        .filter_map(|(_, e)| Some((*index_of.get(&e.lead_id)?, e.done_at)))
        .collect();
    let mut seen: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut rep_digests: BTreeMap<usize, BTreeSet<chrono::NaiveDate>> = BTreeMap::new();
    let mut checked_rows = 0;
    let mut biggest: Option<Value> = None;
    for m in &received {
        assert!(m["tls"].as_bool().unwrap() && m["authenticated"].as_bool().unwrap(), "STARTTLS and AUTH: {m}");
        assert_eq!(m["content_type"], "multipart/alternative");
        assert!(m["text"].is_string() && m["html"].is_string(), "a plain-text and an HTML part");
        let key = key_of(m["message_id"].as_str().unwrap());
        *seen.entry(key.clone()).or_default() += 1;
        if key[0] != "dg" || key[3] != "rep" {
            continue;
        }
        let recipient = &key[1];
        let rep = user_index[recipient];
        let to = m["rcpt_tos"][0].as_str().unwrap();
        if *recipient == first_rep {
            assert_eq!(to, "override.rep@handoff-sandbox.example", "the config's address wins");
        } else {
            assert_eq!(to, org.users[rep].email, "the CRM owner's email");
        }
        let zone: chrono_tz::Tz = org.users[rep].time_zone.parse().unwrap();
        let date = chrono::NaiveDate::parse_from_str(&key[2], "%Y%m%d").unwrap();
        assert!(!matches!(date.weekday(), Weekday::Sat | Weekday::Sun), "a weekend digest in {zone}: {key:?}");
        let sent_at = DateTime::parse_from_rfc2822(m["date"].as_str().unwrap()).unwrap().with_timezone(&Utc);
        assert_eq!(sent_at.with_timezone(&zone).date_naive(), date, "composed on its local date");
        rep_digests.entry(rep).or_default().insert(date);
        // The leads, by their links, against the org's own account.
        let text = m["text"].as_str().unwrap();
        // Each row: a status line, then the record's link.
        let prefix = format!("{}/lightning/r/Lead/", sim.sandbox.base_url);
        let lines: Vec<&str> = text.lines().collect();
        let rows: BTreeMap<usize, &str> = lines
            .iter()
            .enumerate()
            .filter_map(|(j, l)| {
                let id = l.trim().strip_prefix(prefix.as_str())?.strip_suffix("/view")?;
                Some((index_of[id], lines[j - 1]))
            })
            .collect();
        let links: BTreeSet<usize> = rows.keys().copied().collect();
        let truth = truth_at(&org, sent_at);
        let want: BTreeSet<usize> = truth
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                let l = &org.leads[*i];
                t.owner == Some(OwnerRef::User(rep))
                    && reassigned_at.get(i).is_none_or(|at| *at > sent_at)
                    && !t.decided
                    && !t.removed
                    && l.complete
                    && l.intended_grade != IntendedGrade::None
            })
            .map(|(i, _)| i)
            .collect();
        let missing: Vec<_> = want.difference(&links).collect();
        if !missing.is_empty() {
            let id_of: BTreeMap<usize, &String> = index_of.iter().map(|(k, v)| (*v, k)).collect();
            for i in &missing {
                let events: Vec<_> =
                    org.events.iter().filter(|e| format!("{:?}", e.kind).contains(&format!("lead: {i},"))).collect();
                let state = sim.daemon.store().state(id_of[*i]).unwrap();
                eprintln!("lead {i}: {:?}\n events {events:?}\n state now {state:?}", org.leads[**i]);
            }
        }
        assert!(
            missing.is_empty(),
            "rep {rep} at {sent_at}: undispositioned leads missing from the digest: {missing:?}\n{text}"
        );
        for extra in links.difference(&want) {
            assert!(
                rows[extra].ends_with("at risk"),
                "rep {rep}: lead {extra} listed but neither open nor at risk: {}",
                rows[extra]
            );
        }
        checked_rows += want.len();
        if biggest.as_ref().is_none_or(|b| b["text"].as_str().unwrap().len() < text.len()) {
            biggest = Some(m.clone());
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "delivered twice: {dups:?}");
    assert!(checked_rows > 20, "too few leads checked to mean anything: {checked_rows}");

    // One digest per business day for every rep from the day after their
    // first lead to the last full day of the run.
    for (rep, dates) in &rep_digests {
        let zone: chrono_tz::Tz = org.users[*rep].time_zone.parse().unwrap();
        let first = *dates.iter().next().unwrap();
        let last_full = (end - Duration::days(1)).with_timezone(&zone).date_naive();
        let mut d = first + Duration::days(1);
        while d <= last_full {
            let weekend = matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
            assert_eq!(dates.contains(&d), !weekend, "rep {rep} ({zone}) on {d}: {dates:?}");
            d += Duration::days(1);
        }
    }
    assert!(rep_digests.len() >= 5, "digests for most reps: {rep_digests:?}");
    let managers = seen.keys().filter(|k| k[0] == "dg" && k[3] == "mgr").count();
    assert!(managers > 0, "managers got their team digests");

    // One summary per closed week with data (the org starts late on Sunday
    // 1 March in New York, so the week of 23 February has a few hours), each
    // once, to the configured address.
    let summaries: Vec<&Value> =
        received.iter().filter(|m| key_of(m["message_id"].as_str().unwrap())[0] == "ws").collect();
    let weeks: Vec<String> = summaries.iter().map(|m| key_of(m["message_id"].as_str().unwrap())[1].clone()).collect();
    assert_eq!(weeks, ["20260223", "20260302"], "one summary per closed week, in order");
    let s = summaries[1];
    assert_eq!(s["rcpt_tos"][0], "vp.sales@handoff-sandbox.example");
    assert_eq!(s["date"], "Mon, 09 Mar 2026 13:00:00 +0000", "09:00 in New York on the first business day");
    let text = s["text"].as_str().unwrap();
    for part in ["week of Mar 2", "MARKETING COMMITS TO", "RED LINES", "STREAK ESCALATIONS", "SIGNALS"] {
        assert!(s["subject"].as_str().unwrap().contains(part) || text.contains(part), "summary lacks {part}: {text}");
    }
    assert!(text.contains('↑') || text.contains('↓') || text.contains('→'), "trend arrows: {text}");

    // The HTML part as a person sees it.
    let dir = tempfile::tempdir().unwrap();
    let digest = biggest.expect("a rep digest with leads");
    let html = digest["html"].as_str().unwrap();
    for banned in ["<script", "src=\"", "@import"] {
        assert!(!html.contains(banned), "the HTML part must need nothing fetched: {banned}");
    }
    let (pixels, channels) = screenshot(html, dir.path(), "digest");
    let link_blue = count_colour(&pixels, channels, [0x0b, 0x5c, 0xad], 40);
    let rows =
        count_colour(&pixels, channels, [0xfd, 0xe3, 0xe3], 6) + count_colour(&pixels, channels, [0xff, 0xf3, 0xd6], 6);
    let header = count_colour(&pixels, channels, [0xee, 0xf2, 0xf5], 4);
    assert!(link_blue > 200, "the lead links show in link blue ({link_blue} px)");
    assert!(header > 2_000, "the table header shows ({header} px)");
    if html.contains("class=\"overdue\"") || html.contains("class=\"risk\"") {
        assert!(rows > 2_000, "overdue or at-risk rows are coloured ({rows} px)");
    }
    let (pixels, channels) = screenshot(s["html"].as_str().unwrap(), dir.path(), "summary");
    let red_rows = count_colour(&pixels, channels, [0xfd, 0xe3, 0xe3], 6);
    if text.contains("MISSED") {
        assert!(red_rows > 2_000, "red lines are red in the summary ({red_rows} px)");
    }
    sim.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_goes_out_over_implicit_tls() {
    let smtp = SmtpSink::start("implicit");
    let settings: handoff::notify::settings::EmailSettings =
        toml::Value::Table(smtp.email_table("implicit")).try_into().unwrap();
    let password = handoff_model::Secret::new(PASSWORD);
    let email = handoff::notify::channel::Email::new(&settings, Some(password)).unwrap();
    let m = handoff::notify::Message {
        key: handoff_model::ActionKey("dg:005X:20260303:rep:v1".into()),
        kind: handoff::notify::MessageKind::RepDigest,
        recipient: "005X".into(),
        delivery: handoff::notify::Delivery::Email { to: "rep@handoff-sandbox.example".into() },
        subject: "SLA digest".into(),
        text: "plain".into(),
        html: "<p>html</p>".into(),
        slack: String::new(),
        composed_at: Utc.with_ymd_and_hms(2026, 3, 3, 13, 0, 0).unwrap(),
    };
    let id = email.send(&m, "rep@handoff-sandbox.example").await.unwrap();
    assert_eq!(id, "<dg.005X.20260303.rep.v1@handoff-sandbox.example>");
    let got = smtp.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0]["tls"].as_bool().unwrap() && got[0]["authenticated"].as_bool().unwrap());
    assert_eq!(got[0]["text"].as_str().unwrap().trim(), "plain");
}
