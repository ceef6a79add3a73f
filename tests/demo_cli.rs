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
