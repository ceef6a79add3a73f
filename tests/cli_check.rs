//! `handoff check` run as a real process: every shipped config is accepted,
//! and the deliberately broken copy is rejected with each mistake named by
//! its key path.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn handoff_check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("the handoff binary runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_shipped_config_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("config")).expect("config/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = handoff_check(&path);
        assert!(out.status.success(), "{} was rejected:\n{}", path.display(), text(&out));
        assert!(text(&out).contains("OK"), "{}: {}", path.display(), text(&out));
        checked += 1;
    }
    assert!(checked >= 3, "expected the example and demo configs, found {checked}");
}

#[test]
fn the_example_reproduces_the_sla_template() {
    let out = handoff_check(&repo().join("config/salesforce.example.toml"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("grades A/B/C"), "{}", text(&out));
}

#[test]
fn check_explains_who_answers_for_a_lead_the_ladder_moves_to_a_pool() {
    // The Salesforce example's pool has no intake seat, the HubSpot one's has.
    let out = handoff_check(&repo().join("config/salesforce.example.toml"));
    let report = text(&out);
    assert!(
        report.contains("note: policy.escalation.levels[2] moves a lead to pool 00GHs0000000001MAA")
            && report.contains("has no intake seat, so the lead's clocks pause"),
        "{report}"
    );
    let out = handoff_check(&repo().join("config/hubspot.example.toml"));
    let report = text(&out);
    assert!(report.contains("its intake seat 81230001 (policy.owners.intake_seats) gets its reminders"), "{report}");
}

/// The leads-mode example passes, and a contact-mode status field in
/// leads mode (or the other way round) is named with its fix.
#[test]
fn the_leads_mode_example_passes_and_a_status_of_the_other_record_is_refused() {
    let example = repo().join("config/hubspot-leads.example.toml");
    let out = handoff_check(&example);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let source = std::fs::read_to_string(&example).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (from, to, fix) in [
        ("status = \"hs_pipeline_stage\"", "status = \"hs_lead_status\"", "write status = \"hs_pipeline_stage\""),
        ("lead_object = \"leads\"", "lead_object = \"contacts\"", "set lead_object = \"leads\""),
    ] {
        assert!(source.contains(from), "the example has {from}");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, source.replacen(from, to, 1)).unwrap();
        let out = handoff_check(&path);
        let report = text(&out);
        assert_eq!(out.status.code(), Some(1), "{report}");
        assert!(report.contains("policy.fields.status") && report.contains(fix), "{report}");
    }
}

#[test]
fn the_broken_copy_is_rejected_naming_every_mistake() {
    let out = handoff_check(&repo().join("tests/data/config/broken.toml"));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let expected = [
        "salesforce.auth.private_key = [redacted]",
        "sync.intervall_secs",
        "policy.reason_codes",
        "policy.calendars.us_east.time_zone",
        "policy.calendars.emea.hours.fri[0]",
        "policy.calendars.apac.holidays[0]",
        "policy.definitions.criteria.strong_intent.op",
        "policy.grades[1].when.all[0].criteria",
        "policy.segments[0].applies_to.value",
        "policy.segments[0].sal_decison",
        "policy.segments[0].first_touch.A",
        "policy.segments[1].first_touch.D",
        "policy.segments[1].first_touch:",
        "policy.segments[1].cadence.touches",
        "policy.escalation.remind_at",
        "policy.escalation.levels[1].to",
    ];
    for path in expected {
        assert!(report.contains(path), "`{path}` is not named in:\n{report}");
    }
    // One line per problem, each with a fix.
    let problem_lines: Vec<&str> = report.lines().filter(|l| l.contains(". Fix: ")).collect();
    assert_eq!(problem_lines.len(), expected.len(), "{report}");
    // The inline private key never reaches the output.
    assert!(!report.contains("BEGIN PRIVATE KEY"), "{report}");
}

#[test]
fn an_unreadable_file_fails_cleanly() {
    let out = handoff_check(&repo().join("tests/data/config/does-not-exist.toml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("cannot read the config file"), "{}", text(&out));
}

/// `handoff check … | head -0`: the reader is gone before anything is
/// printed. The command ends quietly, as it would have had the reader
/// read it all, rather than panicking ("failed printing to stdout").
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["check", "--config"])
        .arg(repo().join("config/demo.toml"))
        .stdout(writer)
        .output()
        .expect("the handoff binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("failed printing"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}
