//! `handoff demo` prints what the digests and the weekly summary would say
//! for its org: no server, no channel, nothing sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::process::Command;

#[test]
fn the_demo_shows_the_digests_and_the_summary() {
    let out = Command::new(common::binary())
        .args(["demo", "--days", "3", "--leads", "40", "--seed", "3"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{text}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("WHAT THE DAILY DIGESTS WOULD SAY"), "{text}");
    let reps = text.matches("SLA digest ").count();
    let teams = text.matches("SLA team digest ").count();
    assert!(reps >= 6 && teams >= 1, "a digest per rep with leads and per manager: {reps} / {teams}\n{text}");
    assert!(text.contains("/lightning/r/Lead/00Q"), "digests link the records:\n{text}");
    assert!(text.contains("WHAT THE WEEKLY SUMMARY WOULD SAY") && text.contains("RED LINES"), "{text}");
    assert!(text.contains("SIGNALS"), "{text}");
}

/// `handoff demo --json` counts the tasks handoff completed and the most
/// ever open at once per lead and clock, from its ledger, and the same two
/// numbers from the sandbox's own task records; they agree.
#[test]
fn the_demo_summary_counts_completed_tasks_and_open_ones_and_the_crm_agrees() {
    for crm in ["salesforce", "hubspot"] {
        let out = Command::new(common::binary())
            .args(["demo", "--crm", crm, "--json", "--days", "6", "--leads", "80", "--seed", "5"])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{crm}: {}", String::from_utf8_lossy(&out.stderr));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{crm}: no {k} in {s}"));
        assert!(n("tasks_completed") > 0, "{crm}: in six days some clock is met or handed over: {s}");
        assert_eq!(n("tasks_completed"), n("sandbox_tasks_completed"), "{crm}: ledger and CRM disagree");
        assert_eq!(n("max_open_tasks_per_lead_and_clock"), 1, "{crm}: {s}");
        assert_eq!(n("sandbox_max_open_tasks_per_lead_and_clock"), 1, "{crm}: {s}");
        assert_eq!(n("duplicate_tasks"), 0, "{crm}: {s}");
    }
}
