//! The calibration signals on generated orgs a year and two weeks long
//! (May 2025 to May 2026), backfilled through the real connector and daemon:
//! one built to trip every signal (`OrgProfile::Calibrated`), one built to
//! trip none (`OrgProfile::Steady`). Each signal shows in the report, the
//! weekly summary and `/metrics`; the same week a quarter and a year back
//! sits beside this one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use chrono::{DateTime, Utc};
use handoff::demo::Simulation;
use handoff::notify::signals::Signals;
use handoff_model::CrmKind;
use handoff_sandbox::org::{OrgConfig, OrgProfile};
use handoff_sandbox::{ClockMode, SandboxOptions};

struct Seen {
    signals: Signals,
    report: String,
    summary: String,
    metrics: String,
}

async fn judge(profile: OrgProfile) -> Seen {
    let mut opts = SandboxOptions::new(CrmKind::Salesforce);
    opts.org = OrgConfig {
        seed: 21,
        leads: 1_000,
        days: 379,
        start_at: "2025-05-11T12:00:00Z".parse::<DateTime<Utc>>().unwrap(),
        profile,
        ..OrgConfig::default()
    };
    opts.clock = ClockMode::Frozen;
    opts.replay = false;
    let sb = handoff_sandbox::start(opts).await.unwrap();
    handoff::demo::open_sandbox_limits(&sb).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut table = handoff::demo::config_table(&sb, dir.path()).unwrap();
    // Volume targets this org's marketing can meet (the demo's are for a
    // bigger funnel), so the only misses are the ones the profile makes.
    let marketing = table["policy"]["marketing"].as_table_mut().unwrap();
    let mut volume = toml::Table::new();
    volume.insert("A".into(), toml::Value::Integer(8));
    volume.insert("B".into(), toml::Value::Integer(16));
    marketing.insert("monthly_volume".into(), volume.into());
    let config = handoff::config::parse(&toml::to_string(&table).unwrap()).unwrap();
    let mut daemon = Simulation::daemon(&config, &sb).await.unwrap();
    for _ in 0..200 {
        if daemon.tick().await.unwrap().caught_up {
            break;
        }
    }
    let store: Arc<handoff::store::Store> = daemon.store().clone();
    let now = sb.shared.clock.now();
    let signals = handoff::report::signals::signals_of(
        &config.policy,
        &store.leads().unwrap(),
        &store.states().unwrap(),
        &store.owners().unwrap(),
        &config.signals,
        now,
    );
    let mut card = handoff::report::from_store("signals", &config.policy, &store, 8, now, None).unwrap();
    card.signals = Some(signals.clone());
    let report = handoff::report::render_table(&card);
    let long = handoff::report::from_store("signals", &config.policy, &store, 66, now, None).unwrap();
    let week = signals.week_start.unwrap();
    let summary = handoff::notify::summary::compose(&long, week, 2, signals.clone()).unwrap().text();
    let metrics = daemon.metrics.render("signals", &store).unwrap();
    sb.stop().await;
    Seen { signals, report, summary, metrics }
}

fn fired(s: &Signals) -> Vec<(String, Option<String>)> {
    s.fired.iter().map(|f| (f.id.clone(), f.subject.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_fire_on_an_org_built_to_trip_them_and_not_on_a_steady_one() {
    let (trip, calm) = tokio::join!(judge(OrgProfile::Calibrated), judge(OrgProfile::Steady));

    let got = fired(&trip.signals);
    for want in [
        ("reason_streak", Some("wrong_persona")),
        ("acceptance_high", None),
        ("first_touch_always_met", Some("sales.first_touch_in_window")),
        ("commitment_missed", Some("marketing.routing_in_window")),
    ] {
        assert!(
            got.iter().any(|(id, subject)| id == want.0 && subject.as_deref() == want.1),
            "{want:?} did not fire: {got:?}\n{}",
            trip.report
        );
    }
    for f in &trip.signals.fired {
        assert!(trip.report.contains(&f.headline), "the report shows {}:\n{}", f.headline, trip.report);
        assert!(trip.summary.contains(&f.headline), "the summary shows {}:\n{}", f.headline, trip.summary);
        assert!(!f.suggestion.is_empty());
        let line = format!(
            "handoff_signal_active{{instance=\"signals\",signal=\"{}\",subject=\"{}\"}} 1",
            f.id,
            f.subject.as_deref().unwrap_or("")
        );
        assert!(trip.metrics.contains(&line), "/metrics has {line}:\n{}", trip.metrics);
    }
    assert!(trip.report.contains("raise the volume target or tighten the quality criteria"));
    assert!(trip.report.contains("consider tightening"));

    assert!(calm.signals.fired.is_empty(), "a steady org trips nothing: {:?}\n{}", fired(&calm.signals), calm.report);
    assert!(calm.report.contains("SIGNALS") && calm.report.contains("none as of the week of"), "{}", calm.report);
    for id in handoff::notify::signals::SIGNAL_IDS {
        let line = format!("handoff_signal_active{{instance=\"signals\",signal=\"{id}\",subject=\"\"}} 0");
        assert!(calm.metrics.contains(&line), "/metrics has {line}");
    }

    // A year of data: this week beside the same week a quarter and a year back.
    for seen in [&trip, &calm] {
        assert!(seen.signals.has_quarter_ago && seen.signals.has_year_ago, "{:?}", seen.signals.comparisons);
        let ft = seen.signals.comparisons.iter().find(|c| c.id == "sales.first_touch_in_window").unwrap();
        assert!(ft.this_week.is_some() && ft.quarter_ago.is_some() && ft.year_ago.is_some(), "{ft:?}");
        assert!(seen.report.contains("quarter ago") && seen.report.contains("year ago"));
    }
}
