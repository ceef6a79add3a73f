//! `handoff explain` end to end: the real binary, the example Salesforce
//! config and the sample cases in `tests/data/explain/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn project_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn explain(args: &[&str]) -> Output {
    let config = project_file("config/salesforce.example.toml");
    Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("explain")
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .expect("the handoff binary runs")
}

fn case() -> String {
    project_file("tests/data/explain/case.json").display().to_string()
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_of(output: &Output) -> Value {
    serde_json::from_str(&stdout_of(output)).expect("--json prints one JSON document")
}

fn action_keys(evaluation: &Value) -> Vec<String> {
    evaluation["actions"]
        .as_array()
        .expect("actions is a list")
        .iter()
        .map(|a| a["key"].as_str().expect("every action has a key").to_string())
        .collect()
}

fn clock<'a>(evaluation: &'a Value, kind: &str) -> &'a Value {
    evaluation["clocks"]
        .as_array()
        .expect("clocks is a list")
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} clock in {evaluation:#}"))
}

// The MQL time is 15:00Z (10:00 New York); grade A allows one business
// hour, so first touch is due 16:00Z; "2x" escalates again at 17:00Z and
// "3x" gives the lead to the pool at 18:00Z.
const ESC1: &str = "00QHs00000Ab1cDEAZ:ft:1772463600:esc1:v1";
const ESC2: &str = "00QHs00000Ab1cDEAZ:ft:1772463600:esc2:v1";
const ESC3: &str = "00QHs00000Ab1cDEAZ:ft:1772463600:esc3:v1";

#[test]
fn the_report_explains_a_breach_in_words() {
    let report = stdout_of(&explain(&["--case", &case(), "--now", "2026-03-02T17:30:00Z"]));
    for expected in [
        "Grade: A (fit plus strong intent)",
        "passed: Intent_Action__c in",
        "Segment: inbound",
        "first_touch: breached",
        "due:      2026-03-02T16:00:00Z",
        "stopped:  -",
        // One open task per clock: level 2 replaces level 1.
        &format!("[{ESC2}] task (escalation level 2) for 005Hs00000A0VpSAAV"),
        "Open handoff tasks (one per clock at most; any other is closed):",
        "whose:    Sam Rep (005Hs00000A1b9zAAA)",
        "calendar: us_east (America/New_York)",
        "the status change to `Working - Contacted` at 2026-03-02T15:20:00Z does not count",
        "not by the owner 005Hs00000A1b9zAAA",
        "handoff created it",
        "routing: met",
        "Next check: 2026-03-02T18:00:00Z",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    assert!(!report.contains(ESC3), "the pool rung is not due yet:\n{report}");
    assert!(!report.contains(&format!("[{ESC1}]")), "level 1 is replaced, not written again:\n{report}");
}

/// The sample case with `edit` applied, written to a temporary file.
fn edited_case(dir: &tempfile::TempDir, edit: impl FnOnce(&mut Value)) -> String {
    let mut case: Value = serde_json::from_str(&std::fs::read_to_string(case()).unwrap()).unwrap();
    edit(&mut case);
    let path = dir.path().join("case.json");
    std::fs::write(&path, case.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn each_clock_says_whose_it_is_on_which_calendar_and_why_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    // Rejected at 15:30, before any touch by the owner and before the due time.
    let rejected = edited_case(&dir, |case| {
        case["lead"]["fields"]["Status"] = "Unqualified".into();
        case["lead"]["fields"]["Disqualification_Reason__c"] = "Wrong persona".into();
        case["lead"]["status_changes"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"status": "Unqualified", "at": "2026-03-02T15:30:00Z"}));
    });
    let report = stdout_of(&explain(&["--case", &rejected, "--now", "2026-03-02T17:30:00Z"]));
    for expected in [
        "first_touch: ended",
        "ended:    no longer owed (neither met nor breached) after status `Unqualified` at 2026-03-02T15:30:00Z",
        "reason:   ended: the lead was rejected (status `Unqualified`)",
        "disposition: met",
        "ended:    met by status `Unqualified` at 2026-03-02T15:30:00Z",
        "whose:    Sam Rep (005Hs00000A1b9zAAA)",
        "calendar: us_east (America/New_York)",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    // Moved to the pool at 18:00 (no intake seat): nobody's until a user owns it.
    let pooled = edited_case(&dir, |case| {
        case["lead"]["owner_id"] = "00GHs0000000001MAA".into();
        case["lead"]["assignments"].as_array_mut().unwrap().push(
            serde_json::json!({"owner_id": "00GHs0000000001MAA", "owner_kind": "queue", "at": "2026-03-02T18:00:00Z"}),
        );
    });
    let report = stdout_of(&explain(&["--case", &pooled, "--now", "2026-03-03T15:00:00Z"]));
    assert!(
        report.contains("whose:    nobody: paused since 2026-03-02T18:00:00Z while queue 00GHs0000000001MAA (no intake seat) holds the lead"),
        "{report}"
    );
    assert!(
        report.contains("sal_decision: pending") && report.contains("paused: queue 00GHs0000000001MAA"),
        "{report}"
    );
    let evaluation = json_of(&explain(&["--case", &pooled, "--now", "2026-03-03T15:00:00Z", "--json"]));
    assert_eq!(clock(&evaluation, "sal_decision")["held_by"], "00GHs0000000001MAA");
    assert!(evaluation["open_tasks"].as_array().is_some_and(|t| t.is_empty()), "{evaluation:#}");
}

#[test]
fn json_output_keeps_action_keys_stable_across_re_evaluation() {
    let first = json_of(&explain(&["--case", &case(), "--now", "2026-03-02T17:30:00Z", "--json"]));
    let later = json_of(&explain(&["--case", &case(), "--now", "2026-03-02T17:59:59Z", "--json"]));
    assert_eq!(first["grade"], "A");
    assert_eq!(first["mql"], true);
    assert_eq!(clock(&first, "first_touch")["status"], "breached");
    assert_eq!(clock(&first, "first_touch")["due_at"], "2026-03-02T16:00:00Z");
    assert_eq!(first["sla_fields"]["SLA_Status__c"], "breached");
    assert_eq!(action_keys(&first), action_keys(&later));
    assert!(action_keys(&first).contains(&ESC2.to_string()));
    assert_eq!(first["open_tasks"], serde_json::json!([ESC2]));

    // Past three windows the pool rung fires: a reassignment with its own key.
    let pooled = json_of(&explain(&["--case", &case(), "--now", "2026-03-02T18:00:00Z", "--json"]));
    let reassign = pooled["actions"]
        .as_array()
        .and_then(|list| list.iter().find(|a| a["key"] == ESC3))
        .unwrap_or_else(|| panic!("no pool rung in {pooled:#}"));
    assert_eq!(reassign["kind"]["type"], "reassign");
    assert_eq!(reassign["kind"]["to_owner_id"], "00GHs0000000001MAA");
}

#[test]
fn a_lead_with_incomplete_data_is_waived() {
    let lead = project_file("tests/data/explain/lead_incomplete.json").display().to_string();
    let output = explain(&["--lead", &lead, "--now", "2026-03-04T15:00:00Z"]);
    let report = stdout_of(&output);
    assert!(report.contains("Waived: incomplete data: missing Phone"), "{report}");
    let evaluation = json_of(&explain(&["--lead", &lead, "--now", "2026-03-04T15:00:00Z", "--json"]));
    assert!(evaluation["clocks"]
        .as_array()
        .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["status"] == "waived")));
    let kinds: Vec<&Value> =
        evaluation["actions"].as_array().expect("actions").iter().map(|a| &a["kind"]["type"]).collect();
    assert_eq!(kinds, vec!["update_lead"], "{evaluation:#}");
}

#[test]
fn a_broken_case_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken-case.json");
    std::fs::write(&path, r#"{ "lead": { "id": "00Q" } }"#).expect("write");
    let output = explain(&["--case", &path.display().to_string(), "--now", "2026-03-02T17:30:00Z"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken-case.json"), "{stderr}");
}

/// The example policy caps new MQLs per rep: `--json` shows the lead's
/// arrival, and a case carrying the daemon's decision for it (as
/// `--from-state` reads it from the lead's state) explains the move and
/// asks for it once.
#[test]
fn a_capacity_decision_is_explained_with_its_move() {
    let now = "2026-03-02T15:10:00Z";
    let evaluation = json_of(&explain(&["--case", &case(), "--now", now, "--json"]));
    let arrival = evaluation["arrival"].clone();
    assert_eq!(arrival["owner_id"], "005Hs00000A1b9zAAA", "{evaluation:#}");
    assert!(action_keys(&evaluation).iter().all(|k| !k.contains(":cap:")), "no decision, no move");
    let dir = tempfile::tempdir().unwrap();
    let decided = edited_case(&dir, |case| {
        case["intake"] = serde_json::json!({
            "at": arrival["at"],
            "owner_id": arrival["owner_id"],
            "day": arrival["day"],
            "taken_before": 15,
            "cap": 15,
            "outcome": "moved",
            "to": "005Hs00000A1b3dAAA",
        });
    });
    let report = stdout_of(&explain(&["--case", &decided, "--now", now]));
    assert!(
        report.contains("005Hs00000A1b9zAAA had taken 15 new MQLs") && report.contains("goes to 005Hs00000A1b3dAAA"),
        "{report}"
    );
    let evaluation = json_of(&explain(&["--case", &decided, "--now", now, "--json"]));
    let moves: Vec<String> = action_keys(&evaluation).into_iter().filter(|k| k.contains(":cap:")).collect();
    assert_eq!(moves.len(), 1, "{evaluation:#}");
}
