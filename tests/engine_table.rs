//! Table tests for the SLA engine: every clock and status, the edge cases
//! the policy promises (status changes are not touches, acceptance
//! included; after-hours arrivals; reassignment of every clock under
//! restart and continue; pools with and without an intake seat; holidays
//! on the owner's own dates; the reason-code grace; late qualification;
//! acceptance-started clocks; nurture; deferral; automated activities), the
//! one open task per clock, and the stability of action keys across
//! re-evaluations.
//!
//! The policy is built here from a TOML string; the calendar is New York,
//! Monday to Friday 09:00–17:00, closed on Memorial Day (25 May 2026).
//! March 2026 before the 8th is EST (UTC−5).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::America::New_York;
use handoff::engine::capacity::{decide, Intake, Outcome};
use handoff::engine::{evaluate, judge, ClockKind, ClockStatus, Evaluation, Owners, StopCause};
use handoff::policy::{compile, CompiledPolicy, Policy};
use handoff_model::{
    Action, ActionKind, Activity, ActivityKind, Assignment, FieldChange, Lead, Owner, OwnerKind, StatusChange,
    TaskPurpose,
};
use serde_json::json;

const BASE_POLICY: &str = r#"
version = 3
reason_codes = ["no_budget", "no_response", "bad_fit"]

[fields]
status = "Status"
source = "LeadSource"
score = "Score__c"
reason_code = "Reason__c"
mql_at = "MQL_At__c"
follow_up_at = "Follow_Up__c"

[fields.sla]
grade = "SLA_Grade__c"
due_at = "SLA_Due__c"
status = "SLA_Status__c"
breach_count = "SLA_Breaches__c"

[statuses]
open = ["Open"]
working = ["Working"]
accepted = ["Accepted"]
rejected = ["Rejected"]
closed_unresponsive = ["Closed - No Response"]
converted = ["Converted"]
deferred = ["Deferred"]
nurture = ["Nurture"]

[calendars.ny]
time_zone = "America/New_York"
hours = { mon = ["09:00-17:00"], tue = ["09:00-17:00"], wed = ["09:00-17:00"], thu = ["09:00-17:00"], fri = ["09:00-17:00"] }
holidays = ["2026-05-25 Memorial Day"]

[owners]
default_calendar = "ny"
managers = { u_rep = "u_mgr", u_mgr = "u_vp" }
__OWNERS__

[definitions]
min_score = 50
mql = { criteria = "fit" }

[definitions.criteria]
fit = { field = "Employees", op = ">=", value = 25 }

[definitions.disqualifiers]
competitor = { field = "Company", op = "contains", value = "rivalcorp" }

[[grades]]
name = "A"
when = { field = "Employees", op = ">=", value = 1000 }

[[grades]]
name = "B"
when = { field = "Employees", op = ">=", value = 25 }

[[segments]]
name = "inbound"
__SEGMENT__
first_touch = { A = "1 business hour", B = "same business day" }
__SAL__
cadence = { touches = 3, business_days = 3 }
disposition = { within = "5 business days" }

[marketing]
required_fields = ["Email", "Company"]
routing_within = "5 minutes"

[escalation]
remind_at = "75%"
__LEVELS__
"#;

const TWO_RUNGS: &str =
    r#"levels = [{ after = "0", to = "manager" }, { after = "2 business hours", to = "manager.manager" }]"#;

const SAL: &str = r#"sal_decision = "8 business hours""#;

fn policy_with(segment: &str, levels: &str) -> CompiledPolicy {
    policy_custom(segment, SAL, levels, "")
}

/// The base policy with the segment's extra keys, its SAL decision line,
/// the escalation levels and extra `[owners]` keys.
fn policy_custom(segment: &str, sal: &str, levels: &str, owners: &str) -> CompiledPolicy {
    let text = BASE_POLICY
        .replace("__SEGMENT__", segment)
        .replace("__SAL__", sal)
        .replace("__LEVELS__", levels)
        .replace("__OWNERS__", owners);
    let policy: Policy = toml::from_str(&text).expect("test policy parses");
    match compile(&policy) {
        Ok(compiled) => compiled,
        Err(issues) => panic!("test policy compiles: {issues:#?}"),
    }
}

fn policy() -> CompiledPolicy {
    policy_with(r#"on_reassign = "restart""#, TWO_RUNGS)
}

/// New York local time "YYYY-MM-DD HH:MM" as UTC.
fn ny(local: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").expect("test time");
    New_York.from_local_datetime(&naive).single().expect("unambiguous test time").with_timezone(&Utc)
}

fn owners() -> Vec<Owner> {
    let user = |id: &str, manager: Option<&str>| Owner {
        id: id.to_string(),
        kind: OwnerKind::User,
        name: None,
        email: None,
        manager_id: manager.map(str::to_string),
        time_zone: Some("America/New_York".to_string()),
        active: true,
        modified_at: None,
    };
    let zoned =
        |id: &str, manager: &str, zone: &str| Owner { time_zone: Some(zone.to_string()), ..user(id, Some(manager)) };
    vec![
        user("u_rep", None),
        user("u_other", Some("u_other_mgr")),
        user("u_other_mgr", None),
        user("u_mgr", None),
        user("u_vp", None),
        user("u_orphan", None),
        user("u_seat", Some("u_seat_mgr")),
        user("u_seat_mgr", None),
        zoned("u_kol", "u_mgr", "Asia/Kolkata"),
        zoned("u_syd", "u_mgr", "Australia/Sydney"),
        Owner { kind: OwnerKind::Queue, time_zone: None, ..user("q_inbound", None) },
        Owner { kind: OwnerKind::Queue, time_zone: None, ..user("q_pool", None) },
    ]
}

/// A grade-A MQL from the web, arriving Monday 2 March 2026 10:00 New York,
/// assigned to `u_rep` at once.
fn lead() -> Lead {
    let at = ny("2026-03-02 10:00");
    let fields: BTreeMap<String, serde_json::Value> = [
        ("Employees", json!(5000)),
        ("Score__c", json!(80)),
        ("Email", json!("pat@example.com")),
        ("Company", json!("Example Inc")),
        ("LeadSource", json!("Web")),
        ("Status", json!("Open")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Lead {
        id: "00Q000000000001AAA".to_string(),
        owner_id: Some("u_rep".to_string()),
        fields,
        created_at: at,
        modified_at: at,
        assignments: vec![Assignment { owner_id: "u_rep".to_string(), owner_kind: OwnerKind::User, at }],
        status_changes: Vec::new(),
        field_history: BTreeMap::new(),
        converted_at: None,
        deleted: false,
        merged_into: None,
        opportunities: Vec::new(),
        read_only: false,
    }
}

fn activity(id: &str, kind: ActivityKind, owner: &str, at: DateTime<Utc>) -> Activity {
    Activity {
        id: id.to_string(),
        kind,
        lead_id: "00Q000000000001AAA".to_string(),
        owner_id: Some(owner.to_string()),
        occurred_at: at,
        modified_at: at,
        subject: None,
        direction: None,
        completed: true,
        handoff_key: None,
        automated: false,
        deleted: false,
        opportunity_id: None,
    }
}

/// What the daemon would store for `ev`.
fn state_of(
    ev: &Evaluation,
    policy: &CompiledPolicy,
    now: DateTime<Utc>,
    intake: Option<handoff::engine::capacity::Intake>,
) -> handoff::store::LeadState {
    handoff::store::LeadState {
        evaluated_at: now,
        policy_version: policy.version,
        mql: ev.mql,
        grade: ev.grade.clone(),
        segment: ev.segment.clone(),
        waived: ev.waived.clone(),
        disqualified_by: None,
        clocks: ev.clocks.clone(),
        next_check_at: ev.next_check_at,
        error: None,
        pending_update: None,
        sla_fields: ev.sla_fields.clone(),
        qualified_at: ev.qualified_at,
        intake,
    }
}

/// `lead` as the store holds it, first seen at `first_seen_at`.
fn stored(lead: Lead, first_seen_at: DateTime<Utc>) -> handoff::store::StoredLead {
    handoff::store::StoredLead {
        lead,
        observed_owners: Vec::new(),
        observed_statuses: Vec::new(),
        observed_fields: BTreeMap::new(),
        watched: String::new(),
        first_seen_at,
    }
}

fn run(policy: &CompiledPolicy, lead: &Lead, activities: &[Activity], now: DateTime<Utc>) -> Evaluation {
    let list = owners();
    let owners = Owners::new(&list);
    let ev = evaluate(lead, activities, &owners, policy, None, now).expect("evaluation succeeds");
    // The daemon's evaluation, without notes, concludes exactly the same.
    let judged = judge(lead, activities, &owners, policy, None, now).expect("judging succeeds");
    assert!(judged.notes.is_empty(), "{:?}", judged.notes);
    assert_eq!(judged, Evaluation { notes: Vec::new(), ..ev.clone() }, "{}", lead.id);
    ev
}

fn clock(ev: &Evaluation, kind: ClockKind) -> &handoff::engine::Clock {
    ev.clocks.iter().find(|c| c.kind == kind).unwrap_or_else(|| panic!("no {kind:?} clock in {ev:#?}"))
}

fn tasks(ev: &Evaluation) -> Vec<(&str, &str, &TaskPurpose)> {
    ev.actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::CreateTask { assignee_id, purpose, .. } => {
                Some((a.key.as_str(), assignee_id.as_str(), purpose))
            }
            _ => None,
        })
        .collect()
}

fn subjects(ev: &Evaluation) -> Vec<&str> {
    ev.actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::CreateTask { subject, .. } => Some(subject.as_str()),
            _ => None,
        })
        .collect()
}

fn keys(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.key.as_str().to_string()).collect()
}

#[test]
fn first_touch_met_by_the_owners_call() {
    let ev = run(
        &policy(),
        &lead(),
        &[activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30"))],
        ny("2026-03-02 12:00"),
    );
    assert!(ev.mql);
    assert_eq!(ev.grade.as_deref(), Some("A"));
    assert_eq!(ev.segment.as_deref(), Some("inbound"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!(ft.status, ClockStatus::Met);
    assert_eq!(ft.due_at, Some(ny("2026-03-02 11:00")));
    assert_eq!(ft.stopped_at, Some(ny("2026-03-02 10:30")));
    assert!(tasks(&ev).is_empty(), "a met clock raises no task: {:?}", ev.actions);
}

#[test]
fn first_touch_states_over_time_without_a_touch() {
    // 1 business hour from 10:00, reminder at 75 % (10:45).
    let table = [
        ("2026-03-02 10:30", ClockStatus::Pending),
        ("2026-03-02 10:45", ClockStatus::AtRisk),
        ("2026-03-02 10:59", ClockStatus::AtRisk),
        ("2026-03-02 11:00", ClockStatus::Breached),
        ("2026-03-03 09:00", ClockStatus::Breached),
    ];
    for (now, want) in table {
        let ev = run(&policy(), &lead(), &[], ny(now));
        let ft = clock(&ev, ClockKind::FirstTouch);
        assert_eq!(ft.status, want, "at {now}: {ft:#?}");
        assert_eq!(ft.remind_at, Some(ny("2026-03-02 10:45")));
    }
}

#[test]
fn a_status_change_alone_does_not_stop_first_touch() {
    let mut lead = lead();
    lead.status_changes.push(StatusChange { status: "Working".to_string(), at: ny("2026-03-02 10:10") });
    lead.fields.insert("Status".to_string(), json!("Working"));
    let ev = run(&policy(), &lead, &[], ny("2026-03-02 11:30"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!(ft.status, ClockStatus::Breached);
    assert_eq!(ft.stopped_at, None);
    assert_eq!(ft.breached_at, Some(ny("2026-03-02 11:00")));
}

#[test]
fn tasks_and_handoffs_own_records_are_not_touches() {
    let mut own = activity("e1", ActivityKind::Email, "u_rep", ny("2026-03-02 10:20"));
    own.handoff_key = Some("00Q000000000001AAA:ft:1:rem:v3".to_string());
    let todo = activity("t1", ActivityKind::Task, "u_rep", ny("2026-03-02 10:25"));
    let mut gone = activity("c9", ActivityKind::Call, "u_rep", ny("2026-03-02 10:26"));
    gone.deleted = true;
    let ev = run(&policy(), &lead(), &[own, todo, gone], ny("2026-03-02 10:50"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!(ft.status, ClockStatus::AtRisk);
    assert_eq!(ft.stopped_at, None);
}

#[test]
fn a_touch_by_someone_else_counts_only_with_touch_by_anyone() {
    let touch = [activity("c1", ActivityKind::Call, "u_other", ny("2026-03-02 10:30"))];
    let table = [(r#"touch_by = "owner""#, ClockStatus::Breached), (r#"touch_by = "anyone""#, ClockStatus::Met)];
    for (segment, want) in table {
        let ev = run(&policy_with(segment, TWO_RUNGS), &lead(), &touch, ny("2026-03-02 11:30"));
        assert_eq!(clock(&ev, ClockKind::FirstTouch).status, want, "{segment}");
    }
}

#[test]
fn an_after_hours_arrival_starts_at_the_next_opening() {
    let mut lead = lead();
    let arrival = ny("2026-03-02 20:00");
    lead.created_at = arrival;
    lead.assignments[0].at = arrival;
    let ev = run(&policy(), &lead, &[], ny("2026-03-03 08:00"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!(ft.received_at, Some(arrival));
    assert_eq!(ft.started_at, Some(ny("2026-03-03 09:00")));
    assert_eq!(ft.due_at, Some(ny("2026-03-03 10:00")));
    assert_eq!(ft.status, ClockStatus::Pending);
    assert_eq!(ev.next_check_at, Some(ny("2026-03-03 09:45")), "next check is the reminder point");
    // A call at 08:30 the next morning is a touch after the arrival: met.
    let early = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-03 08:30"))];
    assert_eq!(
        clock(&run(&policy(), &lead, &early, ny("2026-03-03 12:00")), ClockKind::FirstTouch).status,
        ClockStatus::Met
    );
}

#[test]
fn mql_time_comes_from_the_mapped_field_and_bad_values_degrade() {
    let mut lead = lead();
    lead.fields.insert("MQL_At__c".to_string(), json!("2026-03-02T16:00:00.000+0000")); // 11:00 NY
    let ev = run(&policy(), &lead, &[], ny("2026-03-02 11:30"));
    assert_eq!(clock(&ev, ClockKind::FirstTouch).due_at, Some(ny("2026-03-02 12:00")));

    lead.fields.insert("MQL_At__c".to_string(), json!("last tuesday"));
    let ev = run(&policy(), &lead, &[], ny("2026-03-02 10:30"));
    assert_eq!(clock(&ev, ClockKind::FirstTouch).due_at, Some(ny("2026-03-02 11:00")));
    assert!(ev.notes.iter().any(|n| n.contains("MQL_At__c") && n.contains("not a date-time")), "{:?}", ev.notes);
}

#[test]
fn reassignment_restarts_or_continues_per_policy() {
    let mut lead = lead();
    lead.assignments.push(Assignment {
        owner_id: "u_other".to_string(),
        owner_kind: OwnerKind::User,
        at: ny("2026-03-02 10:40"),
    });
    lead.owner_id = Some("u_other".to_string());
    let now = ny("2026-03-02 11:30");
    let table = [
        (r#"on_reassign = "restart""#, ny("2026-03-02 10:40"), ny("2026-03-02 11:40"), ClockStatus::AtRisk),
        (r#"on_reassign = "continue""#, ny("2026-03-02 10:00"), ny("2026-03-02 11:00"), ClockStatus::Breached),
    ];
    for (segment, start, due, status) in table {
        let ev = run(&policy_with(segment, TWO_RUNGS), &lead, &[], now);
        let ft = clock(&ev, ClockKind::FirstTouch);
        assert_eq!((ft.received_at, ft.due_at, ft.status), (Some(start), Some(due), status), "{segment}");
    }
    // Restarted: the new owner gets the reminder; the old owner's call no longer counts.
    let old_call = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:50"))];
    let ev = run(&policy(), &lead, &old_call, now);
    assert_eq!(clock(&ev, ClockKind::FirstTouch).owner_id.as_deref(), Some("u_other"));
    assert_eq!(clock(&ev, ClockKind::FirstTouch).status, ClockStatus::AtRisk);
    assert!(tasks(&ev).iter().any(|(_, to, p)| *to == "u_other" && **p == TaskPurpose::Reminder), "{:?}", ev.actions);
}

#[test]
fn clock_start_at_assignment_ignores_queues() {
    let mut lead = lead();
    lead.owner_id = Some("q_inbound".to_string());
    lead.assignments = vec![Assignment {
        owner_id: "q_inbound".to_string(),
        owner_kind: OwnerKind::Queue,
        at: ny("2026-03-02 10:00"),
    }];
    let policy = policy_with(r#"clock_start = "assignment""#, TWO_RUNGS);
    let ev = run(&policy, &lead, &[], ny("2026-03-02 12:00"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.status, ft.due_at), (ClockStatus::Pending, None), "a queue does not start the clock");
    assert!(tasks(&ev).is_empty());
    // Routing (marketing) is breached: no user within 5 minutes, but no task.
    assert_eq!(clock(&ev, ClockKind::Routing).status, ClockStatus::Breached);

    lead.assignments.push(Assignment {
        owner_id: "u_rep".to_string(),
        owner_kind: OwnerKind::User,
        at: ny("2026-03-02 13:00"),
    });
    lead.owner_id = Some("u_rep".to_string());
    let ev = run(&policy, &lead, &[], ny("2026-03-02 13:30"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.received_at, ft.due_at), (Some(ny("2026-03-02 13:00")), Some(ny("2026-03-02 14:00"))));
}

#[test]
fn routing_is_reported_without_tasks() {
    let table = [(3, ClockStatus::Met), (9, ClockStatus::Breached)];
    for (minutes, want) in table {
        let mut lead = lead();
        lead.assignments[0].at = lead.created_at + chrono::Duration::minutes(minutes);
        let ev = run(
            &policy(),
            &lead,
            &[activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:20"))],
            ny("2026-03-02 10:30"),
        );
        let routing = clock(&ev, ClockKind::Routing);
        assert_eq!(routing.status, want, "assigned after {minutes} min");
        assert!(ev.actions.iter().all(|a| !a.key.as_str().contains(":route:")), "{:?}", ev.actions);
    }
}

#[test]
fn a_lead_waiting_in_a_queue_is_looked_at_again_when_routing_is_due() {
    // Grade B (same business day): no sales deadline before the evening.
    let mut lead = lead();
    lead.fields.insert("Employees".to_string(), json!(100));
    lead.owner_id = Some("q_inbound".to_string());
    lead.assignments =
        vec![Assignment { owner_id: "q_inbound".to_string(), owner_kind: OwnerKind::Queue, at: lead.created_at }];
    let ev = run(&policy(), &lead, &[], ny("2026-03-02 10:01"));
    assert_eq!(clock(&ev, ClockKind::Routing).status, ClockStatus::Pending);
    // Without this check the breach would stay unrecorded until the lead
    // changed, and the week it falls in would close without it.
    assert_eq!(ev.next_check_at, Some(ny("2026-03-02 10:05")), "the routing due time is the next check");
    let ev = run(&policy(), &lead, &[], ny("2026-03-02 10:05"));
    let routing = clock(&ev, ClockKind::Routing);
    assert_eq!((routing.status, routing.breached_at), (ClockStatus::Breached, Some(ny("2026-03-02 10:05"))));
    assert!(ev.actions.iter().all(|a| !a.key.as_str().contains(":route:")), "routing raises no task: {:?}", ev.actions);
    assert_eq!(
        ev.next_check_at,
        clock(&ev, ClockKind::FirstTouch).remind_at,
        "then only the sales clocks' own instants"
    );
}

#[test]
fn waived_leads_carry_no_sales_obligation() {
    let mut incomplete = lead();
    incomplete.fields.remove("Email");
    incomplete.fields.insert("Company".to_string(), json!("  "));
    let mut competitor = lead();
    competitor.fields.insert("Company".to_string(), json!("RivalCorp Ltd"));
    let mut low_score = lead();
    low_score.fields.insert("Score__c".to_string(), json!("20"));
    let mut small = lead();
    small.fields.insert("Employees".to_string(), json!(10));
    let table: [(&str, Lead, &[&str]); 4] = [
        ("incomplete", incomplete, &["incomplete data", "Email", "Company"]),
        ("competitor", competitor, &["disqualified by `competitor`"]),
        ("low score", low_score, &["not an MQL", "score 20", "Score__c"]),
        ("below criteria", small, &["not an MQL", "Employees"]),
    ];
    for (name, lead, words) in table {
        let ev = run(&policy(), &lead, &[], ny("2026-03-04 12:00"));
        let why = ev.waived.clone().unwrap_or_else(|| panic!("{name}: not waived"));
        for w in words {
            assert!(why.contains(w), "{name}: {why:?} lacks {w:?}");
        }
        assert!(!ev.clocks.is_empty());
        assert!(ev.clocks.iter().all(|c| c.status == ClockStatus::Waived), "{name}: {:#?}", ev.clocks);
        assert!(ev.actions.iter().all(|a| matches!(a.kind, ActionKind::UpdateLead { .. })), "{name}: {:?}", ev.actions);
        assert_eq!(ev.sla_fields.get("SLA_Status__c"), Some(&json!("waived")), "{name}");
    }
}

#[test]
fn deleted_and_merged_leads_have_no_clocks_and_no_actions() {
    let mut deleted = lead();
    deleted.deleted = true;
    let mut merged = lead();
    merged.merged_into = Some("00Q000000000002AAA".to_string());
    for lead in [deleted, merged] {
        let ev = run(&policy(), &lead, &[], ny("2026-03-04 12:00"));
        assert!(ev.clocks.is_empty() && ev.actions.is_empty(), "{ev:#?}");
    }
}

#[test]
fn sal_decision_met_by_acceptance_and_breached_without_one() {
    let mut accepted = lead();
    accepted.status_changes.push(StatusChange { status: "Accepted".to_string(), at: ny("2026-03-02 15:00") });
    accepted.fields.insert("Status".to_string(), json!("Accepted"));
    let ev = run(&policy(), &accepted, &[], ny("2026-03-05 12:00"));
    assert_eq!(clock(&ev, ClockKind::SalDecision).status, ClockStatus::Met);
    assert_eq!(clock(&ev, ClockKind::Disposition).status, ClockStatus::Met);

    // 8 business hours from Monday 10:00 is Tuesday 10:00.
    let ev = run(
        &policy(),
        &lead(),
        &[activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30"))],
        ny("2026-03-03 10:30"),
    );
    let sal = clock(&ev, ClockKind::SalDecision);
    assert_eq!((sal.status, sal.due_at), (ClockStatus::Breached, Some(ny("2026-03-03 10:00"))));
    assert!(tasks(&ev)
        .iter()
        .any(|(k, to, p)| k.contains(":sal:") && *to == "u_mgr" && **p == TaskPurpose::Escalation { level: 1 }));
}

fn closed_unresponsive(touch_times: &[&str]) -> (Lead, Vec<Activity>) {
    let mut lead = lead();
    lead.status_changes.push(StatusChange { status: "Closed - No Response".to_string(), at: ny("2026-03-06 16:00") });
    lead.fields.insert("Status".to_string(), json!("Closed - No Response"));
    lead.fields.insert("Reason__c".to_string(), json!("no_response"));
    let touches = touch_times
        .iter()
        .enumerate()
        .map(|(i, t)| activity(&format!("a{i}"), ActivityKind::Email, "u_rep", ny(t)))
        .collect();
    (lead, touches)
}

#[test]
fn closing_as_unresponsive_needs_the_full_cadence() {
    let table: [(&[&str], ClockStatus); 3] = [
        (&["2026-03-02 10:30", "2026-03-04 11:00", "2026-03-06 09:30"], ClockStatus::Met),
        // Three touches, but all within two business days.
        (&["2026-03-02 10:30", "2026-03-02 15:00", "2026-03-03 11:00"], ClockStatus::Breached),
        // Spread out, but only two touches.
        (&["2026-03-02 10:30", "2026-03-06 09:30"], ClockStatus::Breached),
    ];
    for (times, want) in table {
        let (lead, touches) = closed_unresponsive(times);
        let ev = run(&policy(), &lead, &touches, ny("2026-03-06 17:00"));
        let cadence = clock(&ev, ClockKind::Cadence);
        assert_eq!(cadence.status, want, "{times:?}: {}", cadence.reason);
        let flags: Vec<_> = tasks(&ev).into_iter().filter(|(_, _, p)| **p == TaskPurpose::DispositionFlag).collect();
        if want == ClockStatus::Breached {
            assert_eq!(flags.len(), 1, "{:?}", ev.actions);
            assert_eq!(flags[0].1, "u_rep");
            assert!(flags[0].0.contains(":cad:"));
            assert_eq!(ev.sla_fields.get("SLA_Status__c"), Some(&json!("breached")));
        } else {
            assert!(flags.is_empty(), "{:?}", ev.actions);
        }
    }
}

#[test]
fn a_rejection_in_time_meets_the_disposition_whatever_its_code() {
    // The reason code is its own obligation (with a grace): a rejection
    // inside the window meets the disposition clock, code or none.
    for code in [None, Some("because"), Some("bad_fit")] {
        let mut lead = lead();
        lead.status_changes.push(StatusChange { status: "Rejected".to_string(), at: ny("2026-03-02 11:00") });
        lead.fields.insert("Status".to_string(), json!("Rejected"));
        if let Some(code) = code {
            lead.fields.insert("Reason__c".to_string(), json!(code));
        }
        let calls = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30"))];
        let ev = run(&policy(), &lead, &calls, ny("2026-03-02 12:00"));
        let disposition = clock(&ev, ClockKind::Disposition);
        assert_eq!(disposition.status, ClockStatus::Met, "{code:?}: {}", disposition.reason);
        assert!(!disposition.flagged);
        // Nothing is breached before its due time: inside the grace, even a
        // missing code raises nothing.
        let reason = clock(&ev, ClockKind::ReasonCode);
        let want = if code == Some("bad_fit") { ClockStatus::Met } else { ClockStatus::Pending };
        assert_eq!(reason.status, want, "{code:?}: {}", reason.reason);
        assert_eq!(reason.due_at, Some(ny("2026-03-03 11:00")), "24 hours after the rejection");
        assert!(tasks(&ev).is_empty(), "{code:?}: {:?}", ev.actions);
        assert_ne!(ev.sla_fields.get("SLA_Status__c"), Some(&json!("breached")), "{code:?}");
    }
}

/// A lead rejected Monday 11:00 New York, with `Reason__c` history.
fn rejected(code_history: &[(&str, &str)]) -> Lead {
    let mut lead = lead();
    lead.status_changes.push(StatusChange { status: "Rejected".to_string(), at: ny("2026-03-02 11:00") });
    lead.fields.insert("Status".to_string(), json!("Rejected"));
    if let Some((code, _)) = code_history.last() {
        lead.fields.insert("Reason__c".to_string(), json!(code));
        let mut history = vec![FieldChange { value: json!(null), at: lead.created_at }];
        history.extend(code_history.iter().map(|(code, at)| FieldChange { value: json!(code), at: ny(at) }));
        lead.field_history.insert("Reason__c".to_string(), history);
    }
    lead
}

#[test]
fn a_missing_reason_code_is_flagged_only_after_the_grace_and_clears_silently_inside_it() {
    let calls = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30"))];
    // (code history, judged at, reason-code status, flag task open)
    type Row<'a> = (&'a [(&'a str, &'a str)], &'a str, ClockStatus, bool);
    let table: [Row<'_>; 6] = [
        (&[], "2026-03-02 16:00", ClockStatus::Pending, false),
        (&[], "2026-03-03 10:59", ClockStatus::Pending, false),
        (&[], "2026-03-03 11:00", ClockStatus::Breached, true),
        // Added inside the grace: cleared without a task.
        (&[("bad_fit", "2026-03-02 15:00")], "2026-03-03 12:00", ClockStatus::Met, false),
        // Added after the grace: late, and the flag it raised is done.
        (&[("bad_fit", "2026-03-03 15:00")], "2026-03-03 16:00", ClockStatus::Breached, false),
        // A code that is not one of the agreed ones is no code.
        (&[("because", "2026-03-02 15:00")], "2026-03-03 12:00", ClockStatus::Breached, true),
    ];
    for (history, now, want, flag) in table {
        let ev = run(&policy(), &rejected(history), &calls, ny(now));
        let reason = clock(&ev, ClockKind::ReasonCode);
        assert_eq!(reason.status, want, "{history:?} at {now}: {}", reason.reason);
        assert_eq!(clock(&ev, ClockKind::Disposition).status, ClockStatus::Met);
        let flags: Vec<_> = tasks(&ev).into_iter().filter(|(_, _, p)| **p == TaskPurpose::DispositionFlag).collect();
        assert_eq!(!flags.is_empty(), flag, "{history:?} at {now}: {:?}", ev.actions);
        if flag {
            assert_eq!(flags.len(), 1);
            assert_eq!(flags[0].1, "u_rep");
            assert!(flags[0].0.contains(":code:") && flags[0].0.ends_with(":flag:v3"), "{}", flags[0].0);
            assert!(subjects(&ev).iter().any(|s| s.contains("Reason code missing")), "{:?}", subjects(&ev));
            assert!(ev.open_tasks.iter().any(|k| k.as_str() == flags[0].0));
        } else {
            assert!(ev.open_tasks.iter().all(|k| !k.as_str().contains(":code:")), "{:?}", ev.open_tasks);
        }
        if want == ClockStatus::Breached && !flag {
            assert!(ev.task_notes["code"].contains("done late"), "{:?}", ev.task_notes);
        }
    }
}

#[test]
fn disposition_breaches_when_nothing_is_decided_in_time() {
    // 5 business days from Monday 10:00: the close of Monday 9 March.
    let calls = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30"))];
    let sal_ok = {
        let mut l = lead();
        l.status_changes.push(StatusChange { status: "Working".to_string(), at: ny("2026-03-02 10:31") });
        l
    };
    // 75 % of the 47 business hours have passed by Friday 13:15.
    let ev = run(&policy(), &sal_ok, &calls, ny("2026-03-06 13:00"));
    assert_eq!(clock(&ev, ClockKind::Disposition).status, ClockStatus::Pending);
    let ev = run(&policy(), &sal_ok, &calls, ny("2026-03-09 16:00"));
    assert_eq!(clock(&ev, ClockKind::Disposition).status, ClockStatus::AtRisk);
    assert_eq!(clock(&ev, ClockKind::Disposition).due_at, Some(ny("2026-03-09 17:00")));
    let ev = run(&policy(), &sal_ok, &calls, ny("2026-03-10 09:00"));
    assert_eq!(clock(&ev, ClockKind::Disposition).status, ClockStatus::Breached);
}

#[test]
fn reminder_and_escalation_keys_are_stable_across_evaluations() {
    let at = |now: &str| run(&policy(), &lead(), &[], ny(now));
    let reminder_key = |ev: &Evaluation| -> Vec<String> {
        tasks(ev)
            .into_iter()
            .filter(|(k, _, p)| **p == TaskPurpose::Reminder && k.contains(":ft:"))
            .map(|(k, _, _)| k.to_string())
            .collect()
    };
    let early = at("2026-03-02 10:46");
    let late = at("2026-03-02 10:58");
    assert_eq!(reminder_key(&early).len(), 1);
    assert_eq!(reminder_key(&early), reminder_key(&late));
    assert!(reminder_key(&early)[0].starts_with("00Q000000000001AAA:ft:"));
    assert!(reminder_key(&early)[0].ends_with(":rem:v3"));
    assert_eq!(tasks(&early).iter().find(|(_, _, p)| **p == TaskPurpose::Reminder).map(|t| t.1), Some("u_rep"));

    // Once breached: no reminder, the same level-1 escalation key each time.
    let escalation = |ev: &Evaluation| -> Vec<String> {
        tasks(ev).into_iter().filter(|(k, _, _)| k.contains(":ft:")).map(|(k, _, _)| k.to_string()).collect()
    };
    let b1 = at("2026-03-02 11:01");
    let b2 = at("2026-03-02 12:30");
    assert!(reminder_key(&b1).is_empty());
    assert_eq!(escalation(&b1), escalation(&b2));
    assert_eq!(escalation(&b1).len(), 1);
    assert!(escalation(&b1)[0].ends_with(":esc1:v3"));
    for ev in [&early, &late, &b1, &b2] {
        for key in keys(&ev.actions) {
            assert!(key.len() <= 80 && key.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c)), "{key}");
        }
    }
    // The SLA-field write-back key depends on the values only.
    let update = |ev: &Evaluation| {
        ev.actions.iter().find(|a| matches!(a.kind, ActionKind::UpdateLead { .. })).map(|a| a.key.clone())
    };
    assert_eq!(update(&b1), update(&b2));
    assert_ne!(update(&early), update(&b1));
    assert_eq!(update(&early), update(&late));
}

#[test]
fn sla_fields_already_in_place_are_not_written_again() {
    let ev = run(&policy(), &lead(), &[], ny("2026-03-02 11:30"));
    let mut synced = lead();
    for (name, value) in &ev.sla_fields {
        synced.fields.insert(name.clone(), value.clone());
    }
    assert_eq!(ev.sla_fields.get("SLA_Breaches__c"), Some(&json!(1)));
    assert_eq!(ev.sla_fields.get("SLA_Grade__c"), Some(&json!("A")));
    let again = run(&policy(), &synced, &[], ny("2026-03-02 11:45"));
    assert!(again.actions.iter().all(|a| !matches!(a.kind, ActionKind::UpdateLead { .. })), "{:?}", again.actions);
    assert_eq!(
        keys(&again.actions).iter().filter(|k| k.contains(":esc1:")).count(),
        keys(&ev.actions).iter().filter(|k| k.contains(":esc1:")).count()
    );
}

#[test]
fn level_two_escalates_after_the_further_window() {
    // Due 11:00; level 2 two business hours after the breach, 13:00.
    // One open task per clock: the level-2 task replaces the level-1 one.
    let table: [(&str, &[(&str, u8)]); 3] = [
        ("2026-03-02 11:00", &[("u_mgr", 1)]),
        ("2026-03-02 12:59", &[("u_mgr", 1)]),
        ("2026-03-02 13:00", &[("u_vp", 2)]),
    ];
    for (now, want) in table {
        let ev = run(&policy(), &lead(), &[], ny(now));
        let got: Vec<(&str, u8)> = tasks(&ev)
            .into_iter()
            .filter(|(k, _, _)| k.contains(":ft:"))
            .filter_map(|(_, to, p)| match p {
                TaskPurpose::Escalation { level } => Some((to, *level)),
                _ => None,
            })
            .collect();
        assert_eq!(got, want.to_vec(), "at {now}");
    }
    let ev = run(&policy(), &lead(), &[], ny("2026-03-02 12:00"));
    assert_eq!(ev.next_check_at, Some(ny("2026-03-02 13:00")), "the next rung is the next check");
}

#[test]
fn without_a_manager_the_next_rung_takes_over() {
    let mut lead = lead();
    lead.owner_id = Some("u_orphan".to_string());
    lead.assignments[0].owner_id = "u_orphan".to_string();
    let levels = r#"levels = [{ after = "0", to = "manager" }, { after = "2x", to = "pool:q_inbound" }]"#;
    let ev = run(&policy_with("", levels), &lead, &[], ny("2026-03-02 11:05"));
    let reassign: Vec<_> = ev
        .actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Reassign { to_owner_id } => Some((a.key.as_str(), to_owner_id.as_str())),
            _ => None,
        })
        .filter(|(k, _)| k.contains(":ft:"))
        .collect();
    assert_eq!(reassign.len(), 1, "{:?}", ev.actions);
    assert_eq!(reassign[0].1, "q_inbound");
    assert!(reassign[0].0.ends_with(":esc2:v3"));
    assert!(ev.notes.iter().any(|n| n.contains("no one to go to")), "{:?}", ev.notes);
    assert!(tasks(&ev).iter().all(|(_, _, p)| !matches!(p, TaskPurpose::Escalation { .. })));
}

#[test]
fn a_pool_rung_reassigns_after_twice_the_window() {
    let levels = r#"levels = [{ after = "0", to = "manager" }, { after = "2x", to = "pool:q_inbound" }]"#;
    let policy = policy_with("", levels);
    let reassigned = |now: &str| {
        run(&policy, &lead(), &[], ny(now))
            .actions
            .iter()
            .any(|a| matches!(&a.kind, ActionKind::Reassign { to_owner_id } if to_owner_id == "q_inbound"))
    };
    assert!(!reassigned("2026-03-02 11:59"));
    assert!(reassigned("2026-03-02 12:00"));
}

#[test]
fn an_unknown_owner_degrades_with_a_note() {
    let mut lead = lead();
    lead.owner_id = Some("u_ghost".to_string());
    lead.assignments[0].owner_id = "u_ghost".to_string();
    let ev = run(&policy(), &lead, &[], ny("2026-03-02 11:30"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.status, ft.due_at), (ClockStatus::Breached, Some(ny("2026-03-02 11:00"))), "default calendar");
    assert!(ev.notes.iter().any(|n| n.contains("u_ghost") && n.contains("unknown")), "{:?}", ev.notes);
    assert!(ev.notes.iter().any(|n| n.contains("no one to go to")), "{:?}", ev.notes);
    assert!(tasks(&ev).iter().all(|(_, _, p)| !matches!(p, TaskPurpose::Escalation { .. })), "{:?}", ev.actions);
}

#[test]
fn business_time_is_read_in_the_owners_own_zone() {
    // Monday 10:00 New York is Tuesday 02:00 in Sydney; the Sydney rep's desk
    // opens at 09:00 local (Monday 17:00 New York), so one business hour
    // later is Monday 18:00 New York.
    let mut list = owners();
    list.push(Owner { id: "u_syd".to_string(), time_zone: Some("Australia/Sydney".to_string()), ..list[0].clone() });
    let mut lead = lead();
    lead.owner_id = Some("u_syd".to_string());
    lead.assignments[0].owner_id = "u_syd".to_string();
    let owners = Owners::new(&list);
    let ev = evaluate(&lead, &[], &owners, &policy(), None, ny("2026-03-02 12:00")).expect("evaluates");
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!(ft.started_at, Some(ny("2026-03-02 17:00")));
    assert_eq!(ft.due_at, Some(ny("2026-03-02 18:00")));
    assert_eq!(ft.status, ClockStatus::Pending);
}

#[test]
fn a_rejection_before_any_touch_ends_the_first_touch_clock_rather_than_meeting_it() {
    for (status, word) in [("Rejected", "rejected"), ("Converted", "converted"), ("Closed - No Response", "closed")] {
        // Before the due time (11:00) it ends the obligation; after it, the
        // breach had happened already and stays.
        for (rejected_at, want) in
            [("2026-03-02 10:40", ClockStatus::Ended), ("2026-03-02 14:00", ClockStatus::Breached)]
        {
            let mut lead = lead();
            lead.status_changes.push(StatusChange { status: status.to_string(), at: ny(rejected_at) });
            lead.fields.insert("Status".to_string(), json!(status));
            lead.fields.insert("Reason__c".to_string(), json!("bad_fit"));
            let ev = run(&policy(), &lead, &[], ny("2026-03-03 12:00"));
            let ft = clock(&ev, ClockKind::FirstTouch);
            assert_eq!((ft.status, ft.stopped_at), (want, Some(ny(rejected_at))), "{}", ft.reason);
            assert!(ft.reason.contains(word), "{}", ft.reason);
            if want == ClockStatus::Ended {
                assert!(ft.reason.starts_with("ended:"), "{}", ft.reason);
                assert!(ev.task_notes["ft"].contains("ended"), "{:?}", ev.task_notes);
            } else {
                assert_eq!(ft.breached_at, Some(ny("2026-03-02 11:00")));
            }
            assert!(ft.escalations.is_empty());
            assert!(
                tasks(&ev).iter().all(|(k, _, _)| !k.contains(":ft:")),
                "a decided lead raises no reminder or escalation: {:?}",
                ev.actions
            );
        }
    }
}

#[test]
fn acceptance_is_not_a_touch() {
    let mut lead = lead();
    lead.status_changes.push(StatusChange { status: "Accepted".to_string(), at: ny("2026-03-02 10:20") });
    lead.fields.insert("Status".to_string(), json!("Accepted"));
    let ev = run(&policy(), &lead, &[], ny("2026-03-02 11:30"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.status, ft.stopped_at), (ClockStatus::Breached, None), "{}", ft.reason);
    assert_eq!(clock(&ev, ClockKind::SalDecision).status, ClockStatus::Met);
    assert_eq!(clock(&ev, ClockKind::Disposition).status, ClockStatus::Met);
    assert!(tasks(&ev).iter().any(|(k, to, _)| k.contains(":ft:") && *to == "u_mgr"), "{:?}", ev.actions);
    // The accepted lead is touched later: met or breached by that touch.
    let late_call = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:50"))];
    let ev = run(&policy(), &lead, &late_call, ny("2026-03-02 11:30"));
    assert_eq!(clock(&ev, ClockKind::FirstTouch).status, ClockStatus::Met);
}

// ------------------------------------------------------------------------
// Whose clock: reassignment, pools and intake seats.
// ------------------------------------------------------------------------

/// The lead handed from `u_rep` to `to` at `at`.
fn reassigned(mut lead: Lead, to: &str, kind: OwnerKind, at: &str) -> Lead {
    lead.assignments.push(Assignment { owner_id: to.to_string(), owner_kind: kind, at: ny(at) });
    lead.owner_id = Some(to.to_string());
    lead
}

#[test]
fn every_clock_follows_a_reassignment_under_restart_and_continue() {
    // Assigned to u_rep Monday 10:00, handed to u_other at 10:40, judged at
    // 15:00: first touch (1 business hour) is breached under continue and
    // at risk under restart, as are the others in their own windows.
    let lead = reassigned(lead(), "u_other", OwnerKind::User, "2026-03-02 10:40");
    let now = ny("2026-03-02 15:00");
    // (policy, clock, expected start, expected due)
    let table: [(&str, ClockKind, &str, Option<&str>); 8] = [
        ("restart", ClockKind::FirstTouch, "2026-03-02 10:40", Some("2026-03-02 11:40")),
        ("continue", ClockKind::FirstTouch, "2026-03-02 10:00", Some("2026-03-02 11:00")),
        ("restart", ClockKind::SalDecision, "2026-03-02 10:40", Some("2026-03-03 10:40")),
        ("continue", ClockKind::SalDecision, "2026-03-02 10:00", Some("2026-03-03 10:00")),
        ("restart", ClockKind::Disposition, "2026-03-02 10:40", Some("2026-03-09 17:00")),
        ("continue", ClockKind::Disposition, "2026-03-02 10:00", Some("2026-03-09 17:00")),
        ("restart", ClockKind::Cadence, "2026-03-02 10:40", None),
        ("continue", ClockKind::Cadence, "2026-03-02 10:00", None),
    ];
    for (mode, kind, start, due) in table {
        let policy = policy_with(&format!("on_reassign = \"{mode}\""), TWO_RUNGS);
        let ev = run(&policy, &lead, &[], now);
        let c = clock(&ev, kind);
        let ctx = format!("{mode} {kind:?}: {}", c.reason);
        assert_eq!(c.owner_id.as_deref(), Some("u_other"), "{ctx}");
        assert_eq!(c.owner_since, Some(ny("2026-03-02 10:40")), "{ctx}");
        assert_eq!(c.received_at, Some(ny(start)), "{ctx}");
        assert_eq!(c.due_at, due.map(ny), "{ctx}");
        // Under continue the clock keeps the owner it started with on record
        // (its tasks for u_other name u_other in their key).
        let first = if mode == "continue" { "u_rep" } else { "u_other" };
        assert_eq!(c.first_owner_id.as_deref(), Some(first), "{ctx}");
        // Every task goes to the new owner or the new owner's manager.
        for (key, to, purpose) in tasks(&ev) {
            assert!(matches!(to, "u_other" | "u_other_mgr"), "{ctx}: task {key} for {to}");
            if mode == "continue" && key.contains(&format!(":{}:", ClockKind::FirstTouch.key_code())) {
                assert!(key.contains(":u_other:"), "{ctx}: a later owner's key names them: {key}");
            }
            if matches!(purpose, TaskPurpose::Escalation { .. }) {
                assert_eq!(to, "u_other_mgr", "{ctx}");
            }
        }
    }
    // Restart: first touch at risk with u_other at 11:25; continue: breached
    // and escalated to u_other's manager, not u_rep's.
    let at_risk = run(&policy_with(r#"on_reassign = "restart""#, TWO_RUNGS), &lead, &[], ny("2026-03-02 11:25"));
    assert_eq!(clock(&at_risk, ClockKind::FirstTouch).status, ClockStatus::AtRisk);
    assert!(tasks(&at_risk)
        .iter()
        .any(|(k, to, p)| k.contains(":ft:") && *to == "u_other" && **p == TaskPurpose::Reminder));
    let breached = run(&policy_with(r#"on_reassign = "continue""#, TWO_RUNGS), &lead, &[], ny("2026-03-02 11:25"));
    let esc: Vec<_> = tasks(&breached).into_iter().filter(|(k, _, _)| k.contains(":ft:")).collect();
    assert_eq!(esc.len(), 1, "{esc:?}");
    assert_eq!(esc[0].1, "u_other_mgr");
}

#[test]
fn the_reason_code_clock_follows_a_reassignment_too() {
    let mut lead = rejected(&[]);
    lead = reassigned(lead, "u_other", OwnerKind::User, "2026-03-02 12:00");
    let calls = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30"))];
    let table = [
        ("restart", "2026-03-02 12:00", ClockStatus::Pending),
        ("continue", "2026-03-02 11:00", ClockStatus::Breached),
    ];
    for (mode, start, want) in table {
        let ev =
            run(&policy_with(&format!("on_reassign = \"{mode}\""), TWO_RUNGS), &lead, &calls, ny("2026-03-03 11:30"));
        let c = clock(&ev, ClockKind::ReasonCode);
        assert_eq!((c.received_at, c.status), (Some(ny(start)), want), "{mode}: {}", c.reason);
        assert_eq!(c.owner_id.as_deref(), Some("u_other"));
        let flags: Vec<_> = tasks(&ev).into_iter().filter(|(_, _, p)| **p == TaskPurpose::DispositionFlag).collect();
        if want == ClockStatus::Breached {
            assert_eq!(flags.len(), 1);
            assert_eq!(flags[0].1, "u_other", "the flag goes to whoever owns the lead now");
            assert!(flags[0].0.contains(":code:") && flags[0].0.contains(":u_other:"), "{}", flags[0].0);
        } else {
            assert!(flags.is_empty());
        }
    }
}

#[test]
fn the_new_owners_calendar_counts_after_a_reassignment() {
    // Continue: the first-touch window is read on the new owner's calendar
    // from the original start. Monday 10:00 New York is 20:30 in Kolkata;
    // the Kolkata rep's desk opens Tuesday 09:00 IST (Monday 22:30 New
    // York), so one business hour is due Monday 23:30 New York.
    let lead = reassigned(lead(), "u_kol", OwnerKind::User, "2026-03-02 10:20");
    let ev = run(&policy_with(r#"on_reassign = "continue""#, TWO_RUNGS), &lead, &[], ny("2026-03-02 12:00"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!(ft.due_at, Some(ny("2026-03-02 23:30")), "{}", ft.reason);
    assert_eq!(ft.calendar.as_deref(), Some("ny (Asia/Kolkata)"));
    assert_eq!(ft.status, ClockStatus::Pending);
}

const POOL_LADDER: &str = r#"levels = [{ after = "0", to = "manager" }, { after = "2x", to = "pool:q_pool" }]"#;

#[test]
fn after_a_pool_move_the_former_rep_and_managers_hear_nothing_more() {
    // Breached at 11:00, escalated to u_mgr, moved to the pool at 12:00 (2x).
    let policy = policy_with("", POOL_LADDER);
    let before = run(&policy, &lead(), &[], ny("2026-03-02 12:00"));
    assert!(before
        .actions
        .iter()
        .any(|a| matches!(&a.kind, ActionKind::Reassign { to_owner_id } if to_owner_id == "q_pool")));
    let pooled = reassigned(lead(), "q_pool", OwnerKind::Queue, "2026-03-02 12:00");
    // Days of silence: every clock comes due, nobody is asked.
    for now in ["2026-03-02 12:01", "2026-03-03 10:30", "2026-03-05 12:00", "2026-03-12 12:00"] {
        let ev = run(&policy, &pooled, &[], ny(now));
        assert!(tasks(&ev).is_empty(), "at {now}: {:?}", ev.actions);
        assert!(ev.open_tasks.is_empty(), "at {now}: the earlier tasks are all to be closed: {:?}", ev.open_tasks);
        for c in ev.clocks.iter().filter(|c| c.kind.is_sales() && c.received_at.is_some()) {
            assert_eq!(c.owner_id, None, "at {now}: {:?} belongs to nobody while paused", c.kind);
            assert_eq!(c.held_by.as_deref(), Some("q_pool"));
            assert_eq!(c.paused_since, Some(ny("2026-03-02 12:00")), "at {now}: {:?}", c.kind);
        }
        // Running clocks do not breach while paused; first touch had breached already.
        assert_eq!(clock(&ev, ClockKind::FirstTouch).status, ClockStatus::Breached);
        assert_eq!(clock(&ev, ClockKind::SalDecision).status, ClockStatus::Pending, "at {now}");
        assert_eq!(clock(&ev, ClockKind::Disposition).status, ClockStatus::Pending, "at {now}");
        assert!(ev.task_notes["sal"].contains("paused"), "{:?}", ev.task_notes);
        assert_eq!(ev.next_check_at, None, "nothing to wake up for until someone takes the lead");
    }
    // A rep takes it from the pool a week later: the SAL decision resumes
    // with what it had left at 12:00 (8 business hours from 10:00: 6 left),
    // on the new owner's desk and in their inbox.
    let taken = reassigned(pooled, "u_other", OwnerKind::User, "2026-03-09 09:00");
    let ev = run(&policy_with(r#"on_reassign = "continue""#, POOL_LADDER), &taken, &[], ny("2026-03-09 14:00"));
    let sal = clock(&ev, ClockKind::SalDecision);
    assert_eq!(sal.due_at, Some(ny("2026-03-09 15:00")), "{}", sal.reason);
    assert_eq!(sal.status, ClockStatus::AtRisk);
    assert!(tasks(&ev).iter().all(|(_, to, _)| matches!(*to, "u_other" | "u_other_mgr")), "{:?}", ev.actions);
    // The pool move happened once; taking the lead out does not trigger it again.
    assert!(ev.actions.iter().all(|a| !matches!(a.kind, ActionKind::Reassign { .. })), "{:?}", ev.actions);
}

#[test]
fn a_pool_with_an_intake_seat_hands_the_lead_to_the_seat() {
    let policy = policy_custom("", SAL, POOL_LADDER, r#"intake_seats = { q_pool = "u_seat" }"#);
    let pooled = reassigned(lead(), "q_pool", OwnerKind::Queue, "2026-03-02 12:00");
    // Tuesday: the SAL decision (due Tuesday 10:00) at risk, then breached.
    let at_risk = run(&policy, &pooled, &[], ny("2026-03-03 09:30"));
    let sal = clock(&at_risk, ClockKind::SalDecision);
    assert_eq!((sal.owner_id.as_deref(), sal.held_by.as_deref()), (Some("u_seat"), Some("q_pool")));
    assert_eq!(sal.status, ClockStatus::AtRisk, "{}", sal.reason);
    let got = tasks(&at_risk);
    assert!(
        got.iter().any(|(k, to, p)| k.contains(":sal:")
            && k.contains(":u_seat:")
            && *to == "u_seat"
            && **p == TaskPurpose::Reminder),
        "{got:?}"
    );
    let breached = run(&policy, &pooled, &[], ny("2026-03-03 10:30"));
    for (key, to, _) in tasks(&breached) {
        assert!(matches!(to, "u_seat" | "u_seat_mgr"), "task {key} for {to}");
        assert!(!matches!(to, "u_rep" | "u_mgr" | "u_vp"));
    }
    assert!(tasks(&breached).iter().any(|(k, to, _)| k.contains(":sal:") && *to == "u_seat_mgr"));
    // The seat took over a first touch already escalated: no rung left to fire for it.
    assert!(tasks(&breached).iter().all(|(k, _, _)| !k.contains(":ft:")), "{:?}", breached.actions);
}

// ------------------------------------------------------------------------
// Holidays on the owner's own dates.
// ------------------------------------------------------------------------

#[test]
fn kolkata_and_sydney_owners_are_closed_all_of_a_us_holiday_on_their_own_date() {
    // Memorial Day, Monday 25 May 2026. A lead for the Kolkata rep arrives
    // Monday 09:00 IST (Sunday 23:30 New York); for the Sydney rep Monday
    // 08:00 AEST (Sunday 18:00 New York). Each rep's Monday is closed all
    // day, so one business hour is due at 10:00 their Tuesday — not 09:30
    // IST Tuesday (New York's midnight) nor 10:00 AEST Monday (before New
    // York's Monday began).
    let table = [
        ("u_kol", "2026-05-25T03:30:00Z", "2026-05-26T04:30:00Z"),
        ("u_syd", "2026-05-24T22:00:00Z", "2026-05-26T00:00:00Z"),
    ];
    for (owner, arrived, due) in table {
        let arrived: DateTime<Utc> = arrived.parse().unwrap();
        let mut lead = lead();
        lead.id = "00Q000000000001AAA".to_string();
        lead.created_at = arrived;
        lead.modified_at = arrived;
        lead.owner_id = Some(owner.to_string());
        lead.assignments = vec![Assignment { owner_id: owner.to_string(), owner_kind: OwnerKind::User, at: arrived }];
        let ev = run(&policy(), &lead, &[], arrived + chrono::Duration::hours(1));
        let ft = clock(&ev, ClockKind::FirstTouch);
        assert_eq!(ft.due_at, Some(due.parse().unwrap()), "{owner}: {}", ft.reason);
        assert_eq!(ft.status, ClockStatus::Pending, "{owner}");
    }
}

// ------------------------------------------------------------------------
// Late qualification, acceptance-started clocks, nurture, deferral.
// ------------------------------------------------------------------------

#[test]
fn a_waived_lead_completed_three_days_later_starts_its_clocks_then() {
    // Arrives Monday 10:00 without an email (waived: incomplete data);
    // marketing adds it Thursday 10:00.
    let mut lead = lead();
    lead.field_history.insert(
        "Email".to_string(),
        vec![
            FieldChange { value: json!(null), at: lead.created_at },
            FieldChange { value: json!("pat@example.com"), at: ny("2026-03-05 10:00") },
        ],
    );
    let mut waived = lead.clone();
    waived.fields.remove("Email");
    waived.field_history.get_mut("Email").unwrap().pop();
    let ev = run(&policy(), &waived, &[], ny("2026-03-04 12:00"));
    assert!(ev.waived.as_deref().is_some_and(|w| w.contains("Email")), "{:?}", ev.waived);

    let ev = run(&policy(), &lead, &[], ny("2026-03-05 10:50"));
    assert_eq!(ev.waived, None);
    assert_eq!(ev.qualified_at, Some(ny("2026-03-05 10:00")));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.received_at, ft.due_at), (Some(ny("2026-03-05 10:00")), Some(ny("2026-03-05 11:00"))));
    assert_eq!(ft.status, ClockStatus::AtRisk, "never backdated to Monday: {}", ft.reason);
    assert_eq!(clock(&ev, ClockKind::Disposition).received_at, Some(ny("2026-03-05 10:00")));
    assert_eq!(clock(&ev, ClockKind::Routing).received_at, Some(ny("2026-03-05 10:00")));
    assert!(ev.notes.iter().any(|n| n.contains("qualified late") && n.contains("Email")), "{:?}", ev.notes);
    // A call on Tuesday, while it owed nothing, does not meet Thursday's clock.
    let early = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-03 10:00"))];
    assert_eq!(
        clock(&run(&policy(), &lead, &early, ny("2026-03-05 11:30")), ClockKind::FirstTouch).status,
        ClockStatus::Breached
    );
}

#[test]
fn acceptance_started_clocks_wait_for_sal_acceptance() {
    let policy = policy_custom(r#"clock_start = "acceptance""#, "", TWO_RUNGS, "");
    let ev = run(&policy, &lead(), &[], ny("2026-03-02 16:00"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.status, ft.due_at), (ClockStatus::Pending, None));
    assert!(ft.reason.contains("SAL acceptance"), "{}", ft.reason);
    assert!(ev.clocks.iter().all(|c| c.kind != ClockKind::SalDecision));
    assert!(tasks(&ev).is_empty());

    // Accepted Monday 14:00: first outreach within one business hour of it.
    let mut accepted = lead();
    accepted.status_changes.push(StatusChange { status: "Accepted".to_string(), at: ny("2026-03-02 14:00") });
    accepted.fields.insert("Status".to_string(), json!("Accepted"));
    let ev = run(&policy, &accepted, &[], ny("2026-03-02 14:50"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!(
        (ft.received_at, ft.due_at, ft.status),
        (Some(ny("2026-03-02 14:00")), Some(ny("2026-03-02 15:00")), ClockStatus::AtRisk)
    );
    // The acceptance that started the clocks is not their disposition.
    let disposition = clock(&ev, ClockKind::Disposition);
    assert_eq!((disposition.received_at, disposition.status), (Some(ny("2026-03-02 14:00")), ClockStatus::Pending));
    let call = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 14:30"))];
    assert_eq!(
        clock(&run(&policy, &accepted, &call, ny("2026-03-02 16:00")), ClockKind::FirstTouch).status,
        ClockStatus::Met
    );
}

#[test]
fn a_lead_held_for_nurture_owes_sales_nothing() {
    let mut lead = lead();
    lead.status_changes.push(StatusChange { status: "Nurture".to_string(), at: ny("2026-03-02 10:30") });
    lead.fields.insert("Status".to_string(), json!("Nurture"));
    let ev = run(&policy(), &lead, &[], ny("2026-03-03 12:00"));
    assert!(ev.waived.as_deref().is_some_and(|w| w.contains("nurture") && w.contains("Nurture")), "{:?}", ev.waived);
    assert!(ev.clocks.iter().all(|c| c.status == ClockStatus::Waived));
    assert!(ev.actions.iter().all(|a| matches!(a.kind, ActionKind::UpdateLead { .. })));
    assert!(ev.open_tasks.is_empty());
    assert!(ev.task_notes["ft"].contains("nurture"), "{:?}", ev.task_notes);
    assert_eq!(ev.sla_fields.get("SLA_Status__c"), Some(&json!("waived")));
}

#[test]
fn a_deferred_disposition_rests_the_cadence_until_its_follow_up_date() {
    // Touched Monday and Tuesday, deferred Tuesday 15:00 until Monday 9 March 09:00 (EDT by then).
    let mut lead = lead();
    lead.status_changes.push(StatusChange { status: "Deferred".to_string(), at: ny("2026-03-03 15:00") });
    lead.fields.insert("Status".to_string(), json!("Deferred"));
    lead.fields.insert("Follow_Up__c".to_string(), json!("2026-03-09T13:00:00Z"));
    let touches = [
        activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30")),
        activity("c2", ActivityKind::Email, "u_rep", ny("2026-03-03 11:00")),
        // Logged while deferred: the cadence is resting, it does not count.
        activity("c3", ActivityKind::Email, "u_rep", ny("2026-03-05 11:00")),
    ];
    let ev = run(&policy(), &lead, &touches, ny("2026-03-05 12:00"));
    let disposition = clock(&ev, ClockKind::Disposition);
    assert_eq!(disposition.status, ClockStatus::Met, "a deferral with a follow-up date is a disposition");
    let cadence = clock(&ev, ClockKind::Cadence);
    assert_eq!(cadence.resumes_at, Some(ny("2026-03-09 09:00")));
    assert!(cadence.reason.contains("rests") && cadence.reason.contains("2 of 3 touches"), "{}", cadence.reason);
    assert!(tasks(&ev).is_empty(), "{:?}", ev.actions);
    assert_eq!(ev.next_check_at, Some(ny("2026-03-09 09:00")), "looked at again when the cadence resumes");
    // The follow-up date comes with the lead still deferred: the owner is asked to resume.
    let ev = run(&policy(), &lead, &touches, ny("2026-03-09 09:30"));
    let follow_ups: Vec<_> =
        tasks(&ev).into_iter().filter(|(k, _, _)| k.contains(":cad:") && k.contains(":fup:")).collect();
    assert_eq!(follow_ups.len(), 1, "{:?}", ev.actions);
    assert_eq!(follow_ups[0].1, "u_rep");
    // Without a follow-up date a deferral is no disposition.
    let mut undated = lead.clone();
    undated.fields.remove("Follow_Up__c");
    let ev = run(&policy(), &undated, &touches, ny("2026-03-10 09:00"));
    assert_eq!(clock(&ev, ClockKind::Disposition).status, ClockStatus::Breached);
    assert!(ev.notes.iter().any(|n| n.contains("Follow_Up__c")), "{:?}", ev.notes);
}

#[test]
fn automated_activities_are_not_touches_unless_the_policy_says_so() {
    let mut sequence = activity("e1", ActivityKind::Email, "u_rep", ny("2026-03-02 10:20"));
    sequence.automated = true;
    let table = [("", ClockStatus::Breached), ("automated_touches = true", ClockStatus::Met)];
    for (segment, want) in table {
        let ev =
            run(&policy_with(segment, TWO_RUNGS), &lead(), std::slice::from_ref(&sequence), ny("2026-03-02 11:30"));
        assert_eq!(clock(&ev, ClockKind::FirstTouch).status, want, "{segment:?}");
        if want == ClockStatus::Breached {
            assert!(ev.notes.iter().any(|n| n.contains("e1") && n.contains("automation")), "{:?}", ev.notes);
        }
    }
}

// ------------------------------------------------------------------------
// One open task per clock, closed with a reason.
// ------------------------------------------------------------------------

#[test]
fn a_clock_has_one_open_task_and_says_why_the_others_are_done() {
    let at = |now: &str| run(&policy(), &lead(), &[], ny(now));
    let open_ft = |ev: &Evaluation| -> Vec<String> {
        ev.open_tasks.iter().map(|k| k.as_str().to_string()).filter(|k| k.contains(":ft:")).collect()
    };
    let reminder = at("2026-03-02 10:50");
    assert_eq!(open_ft(&reminder).len(), 1);
    assert!(open_ft(&reminder)[0].ends_with(":rem:v3"));
    let breached = at("2026-03-02 11:10");
    assert_eq!(open_ft(&breached).len(), 1, "the escalation replaces the reminder");
    assert!(open_ft(&breached)[0].ends_with(":esc1:v3"));
    assert!(breached.task_notes["ft"].contains("breached"), "{:?}", breached.task_notes);
    let further = at("2026-03-02 13:10");
    assert_eq!(open_ft(&further).len(), 1);
    assert!(open_ft(&further)[0].ends_with(":esc2:v3"));
    // Met: nothing open, and the note says how it was met.
    let call = [activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 11:30"))];
    let met = run(&policy(), &lead(), &call, ny("2026-03-02 11:40"));
    assert!(open_ft(&met).is_empty());
    assert!(met.task_notes["ft"].contains("done late") && met.task_notes["ft"].contains("c1"), "{:?}", met.task_notes);
    // Every task the engine writes is one it wants open, and every subject names its clock.
    for ev in [&reminder, &breached, &further] {
        for (key, _, _) in tasks(ev) {
            assert!(ev.open_tasks.iter().any(|k| k.as_str() == key), "{key}");
        }
        for subject in subjects(ev) {
            assert!(
                ["first touch", "SAL decision", "disposition", "cadence", "reason code"]
                    .iter()
                    .any(|w| subject.contains(w)),
                "{subject}"
            );
        }
    }
}

#[test]
fn the_owner_a_clock_started_with_keeps_the_key_earlier_versions_wrote() {
    // An upgrade must not send open reminders again: u_rep's reminder key is
    // the one handoff always wrote, only a later owner's names them.
    let ev = run(&policy_with(r#"on_reassign = "continue""#, TWO_RUNGS), &lead(), &[], ny("2026-03-02 10:50"));
    let key = tasks(&ev).into_iter().find(|(k, _, _)| k.contains(":ft:")).map(|(k, _, _)| k.to_string()).unwrap();
    assert_eq!(key, format!("00Q000000000001AAA:ft:{}:rem:v3", ny("2026-03-02 10:00").timestamp()));
    let lead = reassigned(lead(), "u_other", OwnerKind::User, "2026-03-02 10:30");
    let ev = run(&policy_with(r#"on_reassign = "continue""#, TWO_RUNGS), &lead, &[], ny("2026-03-02 10:50"));
    let key = tasks(&ev).into_iter().find(|(k, _, _)| k.contains(":ft:")).map(|(k, _, _)| k.to_string()).unwrap();
    assert_eq!(key, format!("00Q000000000001AAA:ft:{}:rem:u_other:v3", ny("2026-03-02 10:00").timestamp()));
}

/// The base policy with a surge protocol: grade A keeps its hour, B gets
/// two business days, during the declared surges `surges` (TOML array
/// items).
fn surge_policy(surges: &str) -> CompiledPolicy {
    let text = BASE_POLICY
        .replace("__SEGMENT__", r#"on_reassign = "restart""#)
        .replace("__SAL__", SAL)
        .replace("__LEVELS__", TWO_RUNGS)
        .replace("__OWNERS__", "");
    let text = format!("{text}\n[surge]\nfirst_touch = {{ B = \"2 business days\" }}\nperiods = [{surges}]\n");
    let policy: Policy = toml::from_str(&text).expect("test policy parses");
    compile(&policy).unwrap_or_else(|issues| panic!("test policy compiles: {issues:#?}"))
}

/// A grade-B lead (same as [`lead`], 500 employees) arriving at `at`.
fn lead_b(at: DateTime<Utc>) -> Lead {
    let mut l = lead();
    l.fields.insert("Employees".to_string(), json!(500));
    l.created_at = at;
    l.modified_at = at;
    l.assignments[0].at = at;
    l
}

/// Declared surges relax the first-touch window of the grades the protocol
/// names, for leads whose clock starts inside one: a surge that starts
/// after the clock did leaves it alone, one that ends while it runs keeps
/// the relaxed window, and the clock says which surge it started in.
#[test]
fn a_declared_surge_relaxes_the_windows_of_leads_arriving_during_it() {
    // Tuesday 3 March (New York) to Wednesday 4 March, whole days.
    let policy =
        surge_policy(r#"{ name = "Spring launch", reason = "launch", from = "2026-03-03", to = "2026-03-04" }"#);
    let table = [
        // (arrival, due, surge): Monday, before the surge: same business day.
        ("2026-03-02 16:00", "2026-03-02 17:00", None),
        // Tuesday 16:00, inside: two business days (end of Thursday).
        ("2026-03-03 16:00", "2026-03-05 17:00", Some("Spring launch")),
        // Wednesday 16:00, the surge's last day: relaxed, though the surge
        // ends at midnight while the clock runs on.
        ("2026-03-04 16:00", "2026-03-06 17:00", Some("Spring launch")),
        // Thursday, after it: the normal window again.
        ("2026-03-05 10:00", "2026-03-05 17:00", None),
    ];
    for (arrival, due, surge) in table {
        let ev = run(&policy, &lead_b(ny(arrival)), &[], ny("2026-03-02 09:00"));
        assert_eq!(ev.grade.as_deref(), Some("B"));
        let ft = clock(&ev, ClockKind::FirstTouch);
        assert_eq!(ft.due_at, Some(ny(due)), "arrival {arrival}: {ft:#?}");
        assert_eq!(ft.surge.as_deref(), surge, "arrival {arrival}");
        assert_eq!(
            ev.notes.iter().any(|n| n.contains("declared surge `Spring launch`")),
            surge.is_some(),
            "arrival {arrival}: {:?}",
            ev.notes
        );
    }

    // A lead that arrived Monday 16:00 is due Monday 17:00 whether or not a
    // surge starts at 16:30 the same day: the spike came after it.
    let policy = surge_policy(
        r#"{ name = "Webinar", reason = "event", from = "2026-03-02T21:30:00Z", to = "2026-03-03T21:30:00Z" }"#,
    );
    let ev = run(&policy, &lead_b(ny("2026-03-02 16:00")), &[], ny("2026-03-02 18:00"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!(
        (ft.due_at, ft.status, ft.surge.as_deref()),
        (Some(ny("2026-03-02 17:00")), ClockStatus::Breached, None)
    );
    // One arriving inside that surge (16:45) is not breached at 18:00.
    let ev = run(&policy, &lead_b(ny("2026-03-02 16:45")), &[], ny("2026-03-02 18:00"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.status, ft.surge.as_deref()), (ClockStatus::Pending, Some("Webinar")), "{ft:#?}");
    assert_eq!(ft.due_at, Some(ny("2026-03-04 17:00")));
}

/// A grade the protocol leaves out keeps its window inside a surge, and
/// its clock is still marked (the scorecard counts it apart).
#[test]
fn a_grade_the_surge_leaves_out_keeps_its_window_but_is_marked() {
    let policy =
        surge_policy(r#"{ name = "Spring launch", reason = "launch", from = "2026-03-02", to = "2026-03-02" }"#);
    let ev = run(&policy, &lead(), &[], ny("2026-03-02 12:00"));
    assert_eq!(ev.grade.as_deref(), Some("A"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.due_at, ft.status), (Some(ny("2026-03-02 11:00")), ClockStatus::Breached));
    assert_eq!(ft.surge.as_deref(), Some("Spring launch"));
}

/// The scorecard marks the week a declared surge touches and keeps the
/// first touches of leads that arrived during it out of the commitment:
/// a lead missed inside the surge does not count against reps, and shows
/// on its own line.
#[test]
fn the_scorecard_marks_surge_weeks_and_keeps_surge_leads_apart() {
    let policy =
        surge_policy(r#"{ name = "Spring launch", reason = "launch", from = "2026-03-03", to = "2026-03-03" }"#);
    let now = ny("2026-03-06 18:00");
    let mut leads = Vec::new();
    let mut states = BTreeMap::new();
    // Monday: touched in time. Tuesday (surge): never touched, breached on
    // its relaxed window. Wednesday: never touched, breached.
    for (n, arrival, touch) in [
        (1, "2026-03-02 10:00", Some("2026-03-02 11:00")),
        (2, "2026-03-03 10:00", None),
        (3, "2026-03-04 10:00", None),
    ] {
        let mut lead = lead_b(ny(arrival));
        lead.id = format!("L{n}");
        let touches: Vec<Activity> = touch
            .map(|t| Activity {
                lead_id: lead.id.clone(),
                ..activity(&format!("c{n}"), ActivityKind::Call, "u_rep", ny(t))
            })
            .into_iter()
            .collect();
        let ev = run(&policy, &lead, &touches, now);
        let ft = clock(&ev, ClockKind::FirstTouch);
        assert_eq!(ft.status, if touch.is_some() { ClockStatus::Met } else { ClockStatus::Breached }, "L{n}");
        states.insert(lead.id.clone(), state_of(&ev, &policy, now, None));
        leads.push(stored(lead, ny(arrival)));
    }
    let list = owners();
    let input =
        handoff::report::Input { instance: "t", policy: &policy, leads: &leads, states: &states, owners: &list };
    let card = handoff::report::compute(&input, 2, now, None);
    let week = card.weeks.last().unwrap();
    assert_eq!(week.surges, vec!["Spring launch".to_string()]);
    let all = &week.groups["all"];
    // L1 met, L3 missed: the commitment; L2 apart.
    assert_eq!((all.first_touch_in_window.hits, all.first_touch_in_window.cases), (1, 2));
    assert_eq!((all.first_touch_in_window_surge.hits, all.first_touch_in_window_surge.cases), (0, 1));
    let table = handoff::report::render(&card, handoff::report::Format::Table);
    assert!(table.contains("surge leads touched inside the window"), "{table}");
    assert!(table.contains("week of 2026-03-02: Spring launch"), "{table}");
    let csv = handoff::report::render(&card, handoff::report::Format::Csv);
    assert!(csv.contains("2026-03-02,all,surge,Spring launch"), "{csv}");
    assert!(csv.contains("first_touch_in_window_surge,0.0000,0,1"), "{csv}");
    let html = handoff::report::render(&card, handoff::report::Format::Html);
    assert!(html.contains("Surges, declared and detected") && html.contains("Spring launch"), "{html}");
}

/// A rep on leave for three days: their clocks do not run on those days
/// (read on their calendar, like its holidays), so a lead that arrived the
/// afternoon before comes due the morning they are back.
#[test]
fn a_rep_on_leave_for_three_days_pauses_their_clocks() {
    let away = r#"time_off = { u_rep = ["2026-03-03..2026-03-05"] }"#;
    let policy = policy_custom(r#"on_reassign = "restart""#, SAL, TWO_RUNGS, away);
    let mut lead = lead();
    let arrival = ny("2026-03-02 16:30");
    lead.created_at = arrival;
    lead.modified_at = arrival;
    lead.assignments[0].at = arrival;
    // Half an hour on Monday, the other half on Friday morning.
    let ev = run(&policy, &lead, &[], ny("2026-03-04 12:00"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.status, ft.due_at), (ClockStatus::Pending, Some(ny("2026-03-06 09:30"))), "{ft:#?}");
    assert!(ev.notes.iter().any(|n| n.contains("u_rep is away")), "{:?}", ev.notes);
    assert!(tasks(&ev).is_empty(), "nothing is due while the rep is away: {:?}", ev.actions);
    // Without the leave: due Tuesday 09:30, breached by Wednesday.
    let ev = run(&policy_with(r#"on_reassign = "restart""#, TWO_RUNGS), &lead, &[], ny("2026-03-04 12:00"));
    let ft = clock(&ev, ClockKind::FirstTouch);
    assert_eq!((ft.status, ft.due_at), (ClockStatus::Breached, Some(ny("2026-03-03 09:30"))));
    // Back on Friday: breached at 09:30 as any clock.
    let ev = run(&policy, &lead, &[], ny("2026-03-06 10:00"));
    assert_eq!(clock(&ev, ClockKind::FirstTouch).status, ClockStatus::Breached);
}

/// A rep on leave for three days, `when_away = "reassign"`: a lead that
/// arrives while they are away (or the evening before) goes to the
/// fallback once, and its clock restarts with the one who has it; a lead
/// that arrived the morning before stays and waits for them.
#[test]
fn a_rep_on_leave_for_three_days_has_new_leads_reassigned() {
    let away = r#"time_off = { u_rep = ["2026-03-03..2026-03-05"] }
when_away = "reassign"
away_fallback = "u_other""#;
    let policy = policy_custom(r#"on_reassign = "restart""#, SAL, TWO_RUNGS, away);
    let list = owners();
    let owners = Owners::new(&list);
    let arriving = |local: &str| {
        let mut lead = lead();
        let at = ny(local);
        lead.created_at = at;
        lead.modified_at = at;
        lead.assignments[0].at = at;
        lead
    };
    let judge = |lead: &Lead, now| {
        let first = evaluate(lead, &[], &owners, &policy, None, now).unwrap();
        let arrival = first.arrival.clone().expect("counted: leads leave reps who are away");
        let intake = decide(&policy.capacity, &arrival, &|_, _| 0, &|_, _| false).unwrap();
        let ev = evaluate(lead, &[], &owners, &policy, Some(&intake), now).unwrap();
        (arrival, intake, ev)
    };
    // Wednesday, mid-leave: to u_other, keyed by the arrival.
    let lead = arriving("2026-03-04 10:00");
    let (arrival, intake, ev) = judge(&lead, ny("2026-03-04 10:05"));
    assert!(arrival.away);
    assert_eq!(arrival.day.to_string(), "2026-03-06", "it would have waited for Friday");
    assert_eq!(intake.outcome, Outcome::Moved { to: "u_other".into() });
    let key = format!("{}:ft:{}:cap:v3", lead.id, lead.created_at.timestamp());
    assert_eq!(reassignments(&ev), vec![(key, "u_other".to_string())]);
    assert!(ev.notes.iter().any(|n| n.contains("u_rep is away when the lead arrives")), "{:?}", ev.notes);
    // Once u_other has it, their clock restarts at the move: due an hour later.
    let moved = reassigned(lead.clone(), "u_other", OwnerKind::User, "2026-03-04 10:06");
    let after = evaluate(&moved, &[], &owners, &policy, Some(&intake), ny("2026-03-04 10:30")).unwrap();
    assert!(reassignments(&after).is_empty());
    let ft = clock(&after, ClockKind::FirstTouch);
    assert_eq!((ft.owner_id.as_deref(), ft.due_at), (Some("u_other"), Some(ny("2026-03-04 11:06"))));
    // Monday evening, after hours before the leave: away as well.
    let (arrival, intake, _) = judge(&arriving("2026-03-02 18:00"), ny("2026-03-02 18:05"));
    assert!(arrival.away && intake.outcome == Outcome::Moved { to: "u_other".into() });
    // Monday morning: the rep is in; the lead stays (its clock waits out the leave).
    let (arrival, intake, ev) = judge(&arriving("2026-03-02 10:00"), ny("2026-03-02 10:05"));
    assert!(!arrival.away);
    assert_eq!(intake.outcome, Outcome::Kept);
    assert!(reassignments(&ev).is_empty());
}

/// The base policy (restart on reassignment) with a `[capacity]` section.
fn policy_capacity(capacity: &str) -> CompiledPolicy {
    let text = BASE_POLICY
        .replace("__SEGMENT__", r#"on_reassign = "restart""#)
        .replace("__SAL__", SAL)
        .replace("__LEVELS__", TWO_RUNGS)
        .replace("__OWNERS__", r#"time_off = { u_syd = ["2026-03-02"] }"#)
        + "\n[capacity]\n"
        + capacity;
    let policy: Policy = toml::from_str(&text).expect("test policy parses");
    match compile(&policy) {
        Ok(compiled) => compiled,
        Err(issues) => panic!("test policy compiles: {issues:#?}"),
    }
}

/// One day of new MQLs for `u_rep`, arriving a minute apart from 10:00 on
/// Monday 2 March, each judged as the daemon does: the engine finds the
/// arrival, `capacity::decide` takes the day's book, and the lead is judged
/// again under the decision. `book` starts with the loads of other reps.
/// Returns each lead's intake and final evaluation, judged at `now`.
fn a_day_of_arrivals(
    policy: &CompiledPolicy,
    leads: usize,
    book: &mut BTreeMap<String, u32>,
    now: DateTime<Utc>,
) -> Vec<(Lead, Intake, Evaluation)> {
    let list = owners();
    let owners = Owners::new(&list);
    (0..leads)
        .map(|i| {
            let mut lead = lead();
            lead.id = format!("00Q00000000000{i:02}AAA");
            let at = ny("2026-03-02 10:00") + chrono::Duration::minutes(i as i64);
            lead.created_at = at;
            lead.modified_at = at;
            lead.assignments[0].at = at;
            let first = evaluate(&lead, &[], &owners, policy, None, now).unwrap();
            let arrival = first.arrival.clone().expect("a capped policy counts the arrival");
            assert_eq!((arrival.owner_id.as_str(), arrival.at), ("u_rep", at));
            assert_eq!(arrival.day.to_string(), "2026-03-02");
            let load = |owner: &str, _| book.get(owner).copied().unwrap_or(0);
            let away = |owner: &str, day| policy.time_off.get(owner).is_some_and(|d| d.contains(&day));
            let intake = decide(&policy.capacity, &arrival, &load, &away).expect("capped");
            *book.entry(intake.counted_for().to_string()).or_default() += 1;
            let ev = evaluate(&lead, &[], &owners, policy, Some(&intake), now).unwrap();
            (lead, intake, ev)
        })
        .collect()
}

fn reassignments(ev: &Evaluation) -> Vec<(String, String)> {
    ev.actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Reassign { to_owner_id } => Some((a.key.to_string(), to_owner_id.clone())),
            _ => None,
        })
        .collect()
}

/// Over the cap, `overflow = "pool"`: the first two leads of the day stay
/// with the rep; the third and fourth go to the pool, once each (the same
/// key on every evaluation), and once the pool holds one nothing more is
/// asked.
#[test]
fn a_rep_over_the_cap_overflows_to_the_pool() {
    let policy = policy_capacity("new_mqls_per_day = 2\noverflow = \"pool\"\npool = \"q_pool\"\n");
    let mut book = BTreeMap::new();
    let now = ny("2026-03-02 10:10");
    let day = a_day_of_arrivals(&policy, 4, &mut book, now);
    let outcomes: Vec<&Outcome> = day.iter().map(|(_, i, _)| &i.outcome).collect();
    let pool = Outcome::Moved { to: "q_pool".into() };
    assert_eq!(outcomes, vec![&Outcome::Kept, &Outcome::Kept, &pool, &pool]);
    assert_eq!(day.iter().map(|(_, i, _)| i.taken_before).collect::<Vec<_>>(), vec![0, 1, 2, 2]);
    assert_eq!(book, BTreeMap::from([("u_rep".to_string(), 2), ("q_pool".to_string(), 2)]));
    for (lead, intake, ev) in &day {
        let moves = reassignments(ev);
        match intake.outcome {
            Outcome::Kept => assert!(moves.is_empty(), "{moves:?}"),
            _ => {
                let key = format!("{}:ft:{}:cap:v3", lead.id, lead.created_at.timestamp());
                assert_eq!(moves, vec![(key, "q_pool".to_string())]);
                assert!(ev.notes.iter().any(|n| n.contains("u_rep had taken 2 new MQLs on 2026-03-02 (cap 2)")));
                // Judged again later: the same move, the same key.
                let list = owners();
                let again =
                    evaluate(lead, &[], &Owners::new(&list), &policy, Some(intake), now + chrono::Duration::hours(1));
                assert_eq!(reassignments(&again.unwrap()), moves);
                // The pool holds it: nothing more to move.
                let moved = reassigned(lead.clone(), "q_pool", OwnerKind::Queue, "2026-03-02 10:12");
                let after = evaluate(&moved, &[], &Owners::new(&list), &policy, Some(intake), now);
                assert!(reassignments(&after.unwrap()).is_empty());
            }
        }
    }
}

/// Over the cap, `overflow = "least_loaded"`: the excess goes to the rep of
/// the group with the fewest new MQLs that day who is under their cap and
/// not away; when nobody can take it and no pool is set, it stays.
#[test]
fn a_rep_over_the_cap_overflows_to_the_least_loaded_rep() {
    let policy = policy_capacity(
        "new_mqls_per_day = 2\noverflow = \"least_loaded\"\ngroup = [\"u_rep\", \"u_other\", \"u_syd\", \"u_kol\"]\n",
    );
    // u_kol already has one; u_syd is away today.
    let mut book = BTreeMap::from([("u_kol".to_string(), 1)]);
    let day = a_day_of_arrivals(&policy, 7, &mut book, ny("2026-03-02 10:10"));
    let to = |rep: &str| Outcome::Moved { to: rep.to_string() };
    let outcomes: Vec<Outcome> = day.iter().map(|(_, i, _)| i.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Kept,
            Outcome::Kept,
            to("u_other"), // u_other 0, u_kol 1
            to("u_other"), // u_other 1, u_kol 1: the first listed
            to("u_kol"),   // u_other full
            Outcome::Overflowed,
            Outcome::Overflowed,
        ]
    );
    assert_eq!(book.get("u_syd"), None, "no lead went to a rep who is away");
    // u_rep kept two and the two nobody could take.
    let expected = [("u_rep", 4), ("u_other", 2), ("u_kol", 2)];
    assert_eq!(book, expected.iter().map(|(o, n)| (o.to_string(), *n)).collect::<BTreeMap<_, _>>());
    assert_eq!(reassignments(&day[4].2)[0].1, "u_kol");
    assert!(reassignments(&day[5].2).is_empty());
    assert!(day[5].2.notes.iter().any(|n| n.contains("nobody in the group could take it")), "{:?}", day[5].2.notes);
}

/// Over the cap, `overflow = "relax"`: the rep keeps every lead; those
/// above the cap get the relaxed first-touch window for their grade.
#[test]
fn a_rep_over_the_cap_keeps_the_excess_with_the_relaxed_window() {
    let policy =
        policy_capacity("new_mqls_per_day = 2\noverflow = \"relax\"\nfirst_touch = { A = \"4 business hours\" }\n");
    let mut book = BTreeMap::new();
    let day = a_day_of_arrivals(&policy, 3, &mut book, ny("2026-03-02 10:30"));
    let dues: Vec<_> = day.iter().map(|(_, _, ev)| clock(ev, ClockKind::FirstTouch).due_at).collect();
    assert_eq!(dues, vec![Some(ny("2026-03-02 11:00")), Some(ny("2026-03-02 11:01")), Some(ny("2026-03-02 14:02"))]);
    assert_eq!(day[2].1.outcome, Outcome::Relaxed);
    assert!(day.iter().all(|(_, _, ev)| reassignments(ev).is_empty()));
    assert!(day[2].2.notes.iter().any(|n| n.contains("above their daily cap")), "{:?}", day[2].2.notes);
    assert_eq!(book, BTreeMap::from([("u_rep".to_string(), 3)]));
    // Without the decision (a lead judged before the daemon decided), the
    // segment's window holds.
    let list = owners();
    let plain = evaluate(&day[2].0, &[], &Owners::new(&list), &policy, None, ny("2026-03-02 10:30")).unwrap();
    assert_eq!(clock(&plain, ClockKind::FirstTouch).due_at, Some(ny("2026-03-02 11:02")));
}

/// A lead from before `enforce_from` is measured, not counted: no arrival.
#[test]
fn capacity_counts_only_enforced_arrivals() {
    let mut policy = policy_capacity("new_mqls_per_day = 1\noverflow = \"pool\"\npool = \"q_pool\"\n");
    policy.enforcement.from = Some(ny("2026-03-03 00:00"));
    let ev = run(&policy, &lead(), &[], ny("2026-03-02 10:10"));
    assert_eq!(ev.arrival, None);
    policy.enforcement.from = Some(ny("2026-03-01 00:00"));
    assert!(run(&policy, &lead(), &[], ny("2026-03-02 10:10")).arrival.is_some());
    // No cap set: nothing counted.
    assert_eq!(
        run(&policy_with(r#"on_reassign = "restart""#, TWO_RUNGS), &lead(), &[], ny("2026-03-02 10:10")).arrival,
        None
    );
}

/// Detected surges (`policy.surge.detect`, 3 new MQLs an hour, an hour's
/// cool-down): each arrival is watched as the daemon does, once, in order.
/// The third lead in an hour starts the surge and gets the relaxed window;
/// the two before it keep theirs (the surge began while their clocks ran);
/// one inside the cool-down is relaxed too; one after it is not, and the
/// surge leads keep their windows though the surge ended while their
/// clocks ran. The scorecard marks the week and counts them apart.
#[test]
fn a_detected_surge_relaxes_the_windows_of_leads_arriving_in_it() {
    use handoff::engine::capacity::{detected_surge_name, watch_surge, Intake};
    let text = BASE_POLICY
        .replace("__SEGMENT__", r#"on_reassign = "restart""#)
        .replace("__SAL__", SAL)
        .replace("__LEVELS__", TWO_RUNGS)
        .replace("__OWNERS__", "")
        + "\n[surge]\nfirst_touch = { B = \"2 business days\" }\ndetect = { mqls_per_hour = 3, cool_down_minutes = 60 }\n";
    let policy = compile(&toml::from_str::<Policy>(&text).unwrap()).unwrap();
    let detect = policy.surge.detect.unwrap();
    let now = ny("2026-03-02 18:00");
    let list = owners();
    let owners = Owners::new(&list);
    let surge = detected_surge_name(chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
    let table = [
        ("2026-03-02 10:00", "2026-03-02 17:00", None),
        ("2026-03-02 10:20", "2026-03-02 17:00", None),
        ("2026-03-02 10:40", "2026-03-04 17:00", Some(surge.as_str())),
        ("2026-03-02 11:30", "2026-03-04 17:00", Some(surge.as_str())), // cooling down
        ("2026-03-02 12:50", "2026-03-02 17:00", None),
    ];
    let mut seen = Vec::new();
    let (mut leads, mut states) = (Vec::new(), BTreeMap::new());
    for (n, (arrival, due, expected)) in table.into_iter().enumerate() {
        let mut lead = lead_b(ny(arrival));
        lead.id = format!("L{n}");
        let first = evaluate(&lead, &[], &owners, &policy, None, now).unwrap();
        let arrival_found = first.arrival.clone().expect("surge detection counts arrivals");
        let watch = watch_surge(&detect, arrival_found.at, &seen);
        seen.push((arrival_found.at, watch == handoff::engine::capacity::SurgeWatch::AtRate));
        let intake = Intake {
            surge: watch.is_surge().then(|| detected_surge_name(arrival_found.day)),
            ..Intake::counted(&arrival_found)
        };
        let ev = evaluate(&lead, &[], &owners, &policy, Some(&intake), now).unwrap();
        let ft = clock(&ev, ClockKind::FirstTouch);
        assert_eq!((ft.due_at, ft.surge.as_deref()), (Some(ny(due)), expected), "arrival {arrival}");
        assert_eq!(ev.notes.iter().any(|n| n.contains("in a detected surge")), expected.is_some(), "{arrival}");
        states.insert(lead.id.clone(), state_of(&ev, &policy, now, Some(intake)));
        leads.push(stored(lead, ny(arrival)));
    }
    // At 18:00 the three outside the surge are breached; the two in it are not.
    let input =
        handoff::report::Input { instance: "t", policy: &policy, leads: &leads, states: &states, owners: &list };
    let card = handoff::report::compute(&input, 1, now, None);
    let week = card.weeks.last().unwrap();
    assert_eq!(week.surges, vec![surge.clone()]);
    let all = &week.groups["all"];
    assert_eq!((all.first_touch_in_window.hits, all.first_touch_in_window.cases), (0, 3));
    assert!(all.first_touch_in_window_surge.is_empty(), "still running inside their relaxed windows");
    let table = handoff::report::render(&card, handoff::report::Format::Table);
    assert!(table.contains(&format!("week of 2026-03-02: {surge}")), "{table}");
}

/// The AE's commitments, from SAL acceptance (Monday 2 March 15:00): a
/// discovery meeting booked within two business days (due Wednesday 15:00)
/// and the opportunity created within five (due the next Monday 15:00),
/// each reminded and escalated like any clock, keyed `disc` and `opp`.
#[test]
fn ae_clocks_for_discovery_and_the_opportunity_are_met_breached_and_escalated() {
    let ae = r#"on_reassign = "restart"
discovery_within = "16 business hours"
opportunity_within = "40 business hours""#;
    let policy = policy_with(ae, TWO_RUNGS);
    let mut accepted = lead();
    accepted.status_changes.push(StatusChange { status: "Accepted".to_string(), at: ny("2026-03-02 15:00") });
    accepted.fields.insert("Status".to_string(), json!("Accepted"));
    let call = activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30"));

    // Before acceptance: waiting, no task.
    let ev = run(&policy, &lead(), std::slice::from_ref(&call), ny("2026-03-02 12:00"));
    for kind in [ClockKind::Discovery, ClockKind::Opportunity] {
        let c = clock(&ev, kind);
        assert_eq!((c.status, c.started_at), (ClockStatus::Pending, None), "{kind:?}: {c:#?}");
    }

    // A meeting logged Tuesday for Friday: booked Tuesday, in time.
    let mut meeting = activity("m1", ActivityKind::Meeting, "u_rep", ny("2026-03-06 10:00"));
    meeting.modified_at = ny("2026-03-03 09:30");
    let ev = run(&policy, &accepted, &[call.clone(), meeting], ny("2026-03-04 12:00"));
    let disc = clock(&ev, ClockKind::Discovery);
    assert_eq!(
        (disc.status, disc.due_at, disc.stopped_at),
        (ClockStatus::Met, Some(ny("2026-03-04 15:00")), Some(ny("2026-03-03 09:30")))
    );
    assert!(tasks(&ev).iter().all(|(k, _, _)| !k.contains(":disc:")));

    // No meeting: reminded at 75% (Wednesday 11:00), breached Wednesday
    // 15:00 and escalated to the manager, then the next level at 17:00.
    let reminder = run(&policy, &accepted, std::slice::from_ref(&call), ny("2026-03-04 11:30"));
    assert!(tasks(&reminder)
        .iter()
        .any(|(k, to, p)| k.contains(":disc:") && *to == "u_rep" && **p == TaskPurpose::Reminder));
    let ev = run(&policy, &accepted, std::slice::from_ref(&call), ny("2026-03-04 15:30"));
    assert_eq!(clock(&ev, ClockKind::Discovery).status, ClockStatus::Breached);
    assert!(tasks(&ev)
        .iter()
        .any(|(k, to, p)| k.contains(":disc:") && *to == "u_mgr" && **p == TaskPurpose::Escalation { level: 1 }));
    let ev = run(&policy, &accepted, std::slice::from_ref(&call), ny("2026-03-04 17:00"));
    assert!(tasks(&ev)
        .iter()
        .any(|(k, to, p)| k.contains(":disc:") && *to == "u_vp" && **p == TaskPurpose::Escalation { level: 2 }));

    // The opportunity: converted Thursday, in time; never converted,
    // breached the next Monday 15:00 and escalated.
    let mut converted = accepted.clone();
    converted.status_changes.push(StatusChange { status: "Converted".to_string(), at: ny("2026-03-05 10:00") });
    converted.fields.insert("Status".to_string(), json!("Converted"));
    converted.converted_at = Some(ny("2026-03-05 10:00"));
    let ev = run(&policy, &converted, std::slice::from_ref(&call), ny("2026-03-10 12:00"));
    let opp = clock(&ev, ClockKind::Opportunity);
    assert_eq!((opp.status, opp.stopped_at), (ClockStatus::Met, Some(ny("2026-03-05 10:00"))));
    // Converted Thursday with no meeting: the discovery was due Wednesday,
    // and stays breached; converted Tuesday without one, it runs on (a
    // conversion is not a discovery meeting) and is breached too.
    assert_eq!(clock(&ev, ClockKind::Discovery).status, ClockStatus::Breached);
    let mut early = accepted.clone();
    early.status_changes.push(StatusChange { status: "Converted".to_string(), at: ny("2026-03-03 10:00") });
    early.fields.insert("Status".to_string(), json!("Converted"));
    early.converted_at = Some(ny("2026-03-03 10:00"));
    let ev = run(&policy, &early, std::slice::from_ref(&call), ny("2026-03-10 12:00"));
    assert_eq!(clock(&ev, ClockKind::Discovery).status, ClockStatus::Breached);
    assert_eq!(clock(&ev, ClockKind::Opportunity).status, ClockStatus::Met);
    let ev = run(&policy, &accepted, std::slice::from_ref(&call), ny("2026-03-09 15:30"));
    let opp = clock(&ev, ClockKind::Opportunity);
    assert_eq!((opp.status, opp.due_at), (ClockStatus::Breached, Some(ny("2026-03-09 15:00"))));
    assert!(tasks(&ev)
        .iter()
        .any(|(k, to, p)| k.contains(":opp:") && *to == "u_mgr" && **p == TaskPurpose::Escalation { level: 1 }));
    // Rejected after acceptance: both end.
    let mut rejected = accepted.clone();
    rejected.status_changes.push(StatusChange { status: "Rejected".to_string(), at: ny("2026-03-03 10:00") });
    rejected.fields.insert("Status".to_string(), json!("Rejected"));
    rejected.fields.insert("Reason__c".to_string(), json!("bad_fit"));
    let ev = run(&policy, &rejected, std::slice::from_ref(&call), ny("2026-03-10 12:00"));
    for kind in [ClockKind::Discovery, ClockKind::Opportunity] {
        assert_eq!(clock(&ev, kind).status, ClockStatus::Ended, "{kind:?}");
    }
}

/// Once the lead's opportunity exists, its owner (the AE) answers for the
/// AE's clocks: a meeting logged on the opportunity books the discovery,
/// the opportunity's creation meets the opportunity clock (before the
/// lead's status says so), reminders go to its owner and escalations up
/// the owner's line; a deleted opportunity counts for nothing.
#[test]
fn the_opportunitys_owner_answers_for_the_ae_clocks_and_its_meetings_count() {
    let ae = r#"on_reassign = "continue"
discovery_within = "16 business hours"
opportunity_within = "40 business hours""#;
    let policy = policy_with(ae, TWO_RUNGS);
    let mut accepted = lead();
    accepted.status_changes.push(StatusChange { status: "Accepted".to_string(), at: ny("2026-03-02 15:00") });
    accepted.fields.insert("Status".to_string(), json!("Accepted"));
    let call = activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30"));
    // The deal comes Tuesday 10:00, owned by u_other (manager u_other_mgr);
    // the lead's status never moves past Accepted.
    let deal = handoff_model::Opportunity {
        id: "006A".to_string(),
        lead_ids: vec![accepted.id.clone()],
        owner_id: Some("u_other".to_string()),
        created_at: ny("2026-03-03 10:00"),
        modified_at: ny("2026-03-03 10:00"),
        deleted: false,
    };
    let mut with_deal = accepted.clone();
    with_deal.opportunities = vec![deal.clone()];

    // The opportunity clock is met by the deal's creation.
    let ev = run(&policy, &with_deal, std::slice::from_ref(&call), ny("2026-03-10 12:00"));
    let opp = clock(&ev, ClockKind::Opportunity);
    assert_eq!((opp.status, opp.stopped_at), (ClockStatus::Met, Some(ny("2026-03-03 10:00"))), "{opp:#?}");
    assert_eq!(opp.stopped_by, Some(StopCause::Opportunity { opportunity_id: "006A".to_string() }));

    // A meeting logged on the deal only (no lead on it) books the discovery.
    let mut on_deal = activity("m9", ActivityKind::Meeting, "u_other", ny("2026-03-03 14:00"));
    on_deal.lead_id = String::new();
    on_deal.opportunity_id = Some("006A".to_string());
    let ev = run(&policy, &with_deal, &[call.clone(), on_deal.clone()], ny("2026-03-10 12:00"));
    let disc = clock(&ev, ClockKind::Discovery);
    assert_eq!((disc.status, disc.stopped_at), (ClockStatus::Met, Some(ny("2026-03-03 14:00"))), "{disc:#?}");
    assert_eq!(disc.stopped_by, Some(StopCause::Touch { activity_id: "m9".to_string() }));
    // The same meeting on another opportunity counts for nothing.
    let mut elsewhere = on_deal.clone();
    elsewhere.opportunity_id = Some("006B".to_string());
    let ev = run(&policy, &with_deal, &[call.clone(), elsewhere], ny("2026-03-04 15:30"));
    assert_eq!(clock(&ev, ClockKind::Discovery).status, ClockStatus::Breached);

    // No meeting: the reminder (Wednesday 11:00) goes to the deal's owner,
    // the escalation (Wednesday 15:00) to the owner's manager.
    let ev = run(&policy, &with_deal, std::slice::from_ref(&call), ny("2026-03-04 11:30"));
    let disc = clock(&ev, ClockKind::Discovery);
    assert_eq!((disc.status, disc.owner_id.as_deref()), (ClockStatus::AtRisk, Some("u_other")), "{disc:#?}");
    let disc_tasks: Vec<_> = tasks(&ev).into_iter().filter(|(k, _, _)| k.contains(":disc:")).collect();
    assert_eq!(disc_tasks.len(), 1, "{disc_tasks:?}");
    assert_eq!((disc_tasks[0].1, disc_tasks[0].2), ("u_other", &TaskPurpose::Reminder));
    let ev = run(&policy, &with_deal, std::slice::from_ref(&call), ny("2026-03-04 15:30"));
    assert!(
        tasks(&ev).iter().any(|(k, to, p)| k.contains(":disc:")
            && *to == "u_other_mgr"
            && **p == TaskPurpose::Escalation { level: 1 }),
        "{:?}",
        tasks(&ev)
    );
    assert!(tasks(&ev).iter().all(|(_, to, _)| !matches!(*to, "u_rep" | "u_mgr")), "{:?}", tasks(&ev));
    // Converted in Salesforce (the lead is then read-only): the task goes
    // on the opportunity and no SLA field is written; otherwise, on the
    // lead.
    let on_opportunity = |ev: &Evaluation| -> Vec<Option<String>> {
        ev.actions
            .iter()
            .filter_map(|a| match &a.kind {
                ActionKind::CreateTask { on_opportunity, .. } => Some(on_opportunity.clone()),
                _ => None,
            })
            .collect()
    };
    assert!(on_opportunity(&ev).iter().all(Option::is_none), "{:?}", on_opportunity(&ev));
    assert!(ev.actions.iter().any(|a| matches!(a.kind, ActionKind::UpdateLead { .. })));
    let mut converted = with_deal.clone();
    converted.converted_at = Some(ny("2026-03-03 10:00"));
    converted.read_only = true;
    let ev = run(&policy, &converted, std::slice::from_ref(&call), ny("2026-03-04 15:30"));
    let on = on_opportunity(&ev);
    assert!(!on.is_empty() && on.iter().all(|o| o.as_deref() == Some("006A")), "{on:?}");
    assert!(!ev.actions.iter().any(|a| matches!(a.kind, ActionKind::UpdateLead { .. })), "{:?}", ev.actions);
    assert!(ev.notes.iter().any(|n| n.contains("takes no more writes")), "{:?}", ev.notes);
    // Before the deal, the lead's owner answered: Monday evening's clock
    // is the rep's.
    let ev = run(&policy, &with_deal, std::slice::from_ref(&call), ny("2026-03-02 16:00"));
    assert_eq!(clock(&ev, ClockKind::Discovery).owner_id.as_deref(), Some("u_rep"));

    // A deleted deal: neither its creation nor its meetings count.
    let mut gone = with_deal.clone();
    gone.opportunities[0].deleted = true;
    let ev = run(&policy, &gone, &[call.clone(), on_deal], ny("2026-03-10 12:00"));
    assert_eq!(clock(&ev, ClockKind::Opportunity).status, ClockStatus::Breached);
    let disc = clock(&ev, ClockKind::Discovery);
    assert_eq!((disc.status, disc.owner_id.as_deref()), (ClockStatus::Breached, Some("u_rep")));
}

/// The scorecard's AE rows and `--by role`: the AE's clocks count under
/// "AE", the first touch under "SDR", the MQLs under "marketing".
#[test]
fn the_scorecard_shows_the_ae_rows_and_breaks_down_by_role() {
    use handoff::report::{compute, render, Dimension, Format, Input};
    let ae = r#"on_reassign = "restart"
discovery_within = "16 business hours"
opportunity_within = "40 business hours""#;
    let policy = policy_with(ae, TWO_RUNGS);
    let now = ny("2026-03-06 18:00");
    let mut accepted = lead();
    accepted.status_changes.push(StatusChange { status: "Accepted".to_string(), at: ny("2026-03-02 15:00") });
    accepted.fields.insert("Status".to_string(), json!("Accepted"));
    let call = activity("c1", ActivityKind::Call, "u_rep", ny("2026-03-02 10:30"));
    let meeting = activity("m1", ActivityKind::Meeting, "u_rep", ny("2026-03-03 11:00"));
    let ev = run(&policy, &accepted, &[call, meeting], now);
    let state = state_of(&ev, &policy, now, None);
    let states = BTreeMap::from([(accepted.id.clone(), state)]);
    let leads = vec![stored(accepted, ny("2026-03-02 10:00"))];
    let list = owners();
    let input = Input { instance: "t", policy: &policy, leads: &leads, states: &states, owners: &list };
    let card = compute(&input, 1, now, None);
    let all = &card.weeks.last().unwrap().groups["all"];
    assert_eq!((all.discovery_in_window.hits, all.discovery_in_window.cases), (1, 1));
    assert!(all.opportunity_in_window.is_empty(), "still running");
    let table = render(&card, Format::Table);
    assert!(table.contains("AE: discovery booked inside the window"), "{table}");
    assert!(render(&card, Format::Csv).contains("discovery_in_window"));
    let html = render(&card, Format::Html);
    assert!(html.contains("The AE's commitments"), "{html}");

    let by_role = compute(&input, 1, now, Some(Dimension::Role));
    let groups = &by_role.weeks.last().unwrap().groups;
    assert_eq!(groups["AE"].discovery_in_window.cases, 1);
    assert!(groups["AE"].first_touch_in_window.is_empty());
    assert_eq!(groups["SDR"].first_touch_in_window.cases, 1);
    assert!(groups["SDR"].discovery_in_window.is_empty());
    assert_eq!(groups["marketing"].mqls, 1);
}
