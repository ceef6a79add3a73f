//! The daemon end to end against the sandbox CRMs: a simulated month of a
//! generated org whose rep behaviours are known, run by the real daemon
//! (store, connector, outbox) while the simulation moves the clock.
//!
//! What is checked, per CRM:
//! - the grade and the waiver of every lead match what the generator
//!   intended (ground truth from the org, not from the engine);
//! - rep behaviours show in the clocks: a `fast` rep's leads are touched in
//!   time and never escalated, a `never` rep's are breached;
//! - every clock at risk gets exactly one reminder, every breach exactly one
//!   escalation per rung that fired, met clocks get none, and the CRM holds
//!   no task handoff cannot account for and no task twice;
//! - every reminder and escalation in the CRM is addressed to the user who
//!   owned the lead when it was written (the org's own timeline plus the pool
//!   moves the sandbox received), or to that user's managers;
//! - every task whose clock has since been met or ended, or that no longer
//!   belongs to whoever answers for the lead now, is completed in the CRM;
//!   never more than one handoff task was open at once for a lead and a
//!   clock (the sandbox's own report, from its records' created and
//!   completed times);
//! - the SLA fields on every lead in the CRM read what the engine decided;
//! - with `[notify]` and no email or Slack channel, every rep gets one
//!   digest task per business day in their own zone (none on weekends),
//!   every manager one for their team, and the leaders one weekly summary
//!   per closed week;
//! - both CRMs end with the same tasks, addressed to the same people, open
//!   or completed alike;
//! - HubSpot run on its lead records (`lead_object = "leads"`) ends with
//!   the same tasks, clocks and scorecard as on its contacts, and every
//!   task is associated with its lead record.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, Utc};
use handoff::demo::{sandbox_task_report, sandbox_tasks, SandboxTask, SimOptions, Simulation};
use handoff::engine::{Clock, ClockKind, ClockStatus};
use handoff::store::LeadState;
use handoff_model::CrmKind;
use handoff_sandbox::org::{EventKind, IntendedGrade, OwnerRef, RepBehaviour, SyntheticOrg};
use serde_json::Value;

mod common;
use common::{owner_ref, owner_timelines};

/// The daemon's lag: data newer than this is not visible to a tick.
const LAG: i64 = 2;

/// Keys of tasks that are about no single lead: scorecard escalations,
/// digests and weekly summaries.
fn is_notice_key(key: &str) -> bool {
    key.starts_with("sc:") || key.starts_with("dg:") || key.starts_with("ws:")
}

fn key_code(kind: ClockKind) -> &'static str {
    match kind {
        ClockKind::FirstTouch => "ft",
        ClockKind::SalDecision => "sal",
        ClockKind::Cadence => "cad",
        ClockKind::Disposition => "disp",
        ClockKind::ReasonCode => "code",
        ClockKind::Routing => "route",
        ClockKind::Discovery => "disc",
        ClockKind::Opportunity => "opp",
    }
}

/// What the org says about one lead.
#[derive(Debug, Default)]
struct Truth {
    /// When a user (not a queue) first owned it.
    first_user_at: Option<DateTime<Utc>>,
    first_user: Option<usize>,
    /// Owned by more than one user over time.
    reassigned: bool,
    removed: bool,
}

fn truths(org: &SyntheticOrg) -> Vec<Truth> {
    let mut out: Vec<Truth> = (0..org.leads.len()).map(|_| Truth::default()).collect();
    for e in &org.events {
        let (lead, owner) = match &e.kind {
            EventKind::LeadCreated { lead, owner } | EventKind::Assigned { lead, owner } => (*lead, Some(*owner)),
            EventKind::Deleted { lead } | EventKind::Merged { lead, .. } => {
                out[*lead].removed = true;
                continue;
            }
            _ => continue,
        };
        if let Some(OwnerRef::User(u)) = owner {
            let t = &mut out[lead];
            match t.first_user {
                None => {
                    t.first_user = Some(u);
                    t.first_user_at = Some(e.at);
                }
                Some(first) if first != u => t.reassigned = true,
                _ => {}
            }
        }
    }
    out
}

/// A handoff task key `{lead}:{clock}:{start}:{what}[:{holder}]:v{n}`
/// taken apart: (lead, clock, start, what).
fn parse_key(key: &str) -> Option<(String, String, i64, String)> {
    let parts: Vec<&str> = key.split(':').collect();
    match parts.as_slice() {
        [lead, clock, start, what, v] | [lead, clock, start, what, _, v] if v.starts_with('v') => {
            Some((lead.to_string(), clock.to_string(), start.parse().ok()?, what.to_string()))
        }
        _ => None,
    }
}

/// The users a task written at `at` may go to: whoever owned the lead then
/// (as the daemon could see it, up to its lag before) and their managers.
fn may_receive(
    timeline: &[(DateTime<Utc>, OwnerRef)],
    managers: &BTreeMap<usize, Option<usize>>,
    at: DateTime<Utc>,
) -> BTreeSet<usize> {
    let seen_from = at - Duration::seconds(LAG + 1);
    let mut owners: Vec<OwnerRef> =
        timeline.iter().filter(|(from, _)| *from > seen_from && *from <= at).map(|(_, o)| *o).collect();
    owners.extend(timeline.iter().rev().find(|(from, _)| *from <= seen_from).map(|(_, o)| *o));
    let mut out = BTreeSet::new();
    for o in owners {
        if let OwnerRef::User(u) = o {
            let mut cur = Some(u);
            for _ in 0..3 {
                let Some(c) = cur else { break };
                out.insert(c);
                cur = managers.get(&c).copied().flatten();
            }
        }
    }
    out
}

/// The CRM's leads by id: email and the SLA fields as stored (in leads
/// mode the lead records, with their primary contact's email).
async fn crm_leads(sim: &Simulation, leads_mode: bool) -> BTreeMap<String, (String, BTreeMap<String, Value>)> {
    let client = reqwest::Client::new();
    let mut out = BTreeMap::new();
    match sim.sandbox.crm {
        CrmKind::Salesforce => {
            let url = format!("{}/salesforce/records/Lead", sim.sandbox.admin_url);
            let body: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
            for r in body["records"].as_array().unwrap() {
                let id = r["Id"].as_str().unwrap().to_string();
                let email = r["Email"].as_str().unwrap_or_default().to_lowercase();
                let fields = r.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                out.insert(id, (email, fields));
            }
        }
        CrmKind::Hubspot => {
            let url = format!("{}/hubspot/objects/contacts", sim.sandbox.admin_url);
            let body: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
            let mut email_of = BTreeMap::new();
            for r in body["results"].as_array().unwrap() {
                let id = r["id"].as_str().unwrap().to_string();
                let props = r["properties"].as_object().unwrap();
                let email = props.get("email").and_then(Value::as_str).unwrap_or_default().to_lowercase();
                email_of.insert(id.clone(), email.clone());
                out.insert(id, (email, props.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
            }
            if leads_mode {
                out.clear();
                let url = format!("{}/hubspot/objects/leads", sim.sandbox.admin_url);
                let body: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
                for r in body["results"].as_array().unwrap() {
                    let id = r["id"].as_str().unwrap().to_string();
                    let contact = r["associations"]["contacts"][0]["id"].as_str().unwrap_or_default();
                    let email = email_of.get(contact).cloned().unwrap_or_default();
                    let props = r["properties"].as_object().unwrap();
                    out.insert(id, (email, props.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
                }
            }
        }
    }
    out
}

fn same(a: Option<&Value>, b: &Value) -> bool {
    let a = a.cloned().unwrap_or(Value::Null);
    let blank = |v: &Value| v.is_null() || v.as_str() == Some("");
    if blank(&a) && blank(b) {
        return true;
    }
    if let (Some(x), Some(y)) = (handoff::engine::parse_field_number(&a), handoff::engine::parse_field_number(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        if x == y {
            return true;
        }
        if let (Some(p), Some(q)) =
            (handoff::engine::parse_field_datetime(&a), handoff::engine::parse_field_datetime(b))
        {
            return p == q;
        }
    }
    false
}

/// A clock at the end of a month: (lead index, clock, received, due,
/// stopped, breached, status), times in epoch ms.
type ClockAtEnd = (usize, String, Option<i64>, Option<i64>, Option<i64>, Option<i64>, String);

/// What a month decided, in the org's own terms (lead indexes, user
/// indexes), for comparing the CRMs and HubSpot's two lead objects.
struct Month {
    /// The tasks handoff created: (lead index, clock, start, what, to, completed).
    tasks: BTreeSet<(usize, String, i64, String, String, bool)>,
    /// Every clock at the end. Their reasons name each CRM's own status
    /// values and properties, so they are not compared.
    clocks: BTreeSet<ClockAtEnd>,
    /// The scorecard of the month's weeks, as CSV.
    scorecard: String,
}

/// Runs the month on `crm` (on HubSpot's lead records when `leads_mode`),
/// checks it, and returns what it decided.
async fn month(crm: CrmKind, leads_mode: bool) -> Month {
    let mut notify = toml::Table::new();
    notify.insert("hubspot_portal_id".into(), "4412345".into());
    let mut extra = if leads_mode { handoff::demo::hubspot_leads_mode().unwrap() } else { toml::Table::new() };
    extra.insert("notify".into(), notify.into());
    let opts = SimOptions {
        crm,
        seed: 7,
        leads: 200,
        days: 30,
        step: Duration::minutes(30),
        config_extra: Some(extra),
        ..SimOptions::new(crm)
    };
    let mut sim = Simulation::start(&opts).await.expect("simulation starts");
    let end = sim.end_at();
    // The instants the daemon ran at: what it could have seen, and when.
    let mut ticks: Vec<DateTime<Utc>> = Vec::new();
    sim.run_until(end, |sim, _| ticks.push(sim.now())).await.expect("the month runs");
    let now = sim.now();
    let org = sim.sandbox.shared.org.clone();
    let truth = truths(&org);
    let store = sim.daemon.store().clone();
    let states: BTreeMap<String, LeadState> = store.states().unwrap();
    let counts = store.counts().unwrap();
    assert_eq!(counts, store.recount().unwrap(), "{crm}: the counts kept through the month equal a recount");
    assert_eq!(store.clock_counts().unwrap(), store.recount_clocks().unwrap(), "{crm}: and so do the clock counts");
    assert_eq!(counts.outbox, 0, "everything owed was written");

    let leads = crm_leads(&sim, leads_mode).await;
    let index_by_email: BTreeMap<String, usize> = org.leads.iter().map(|l| (l.email.to_lowercase(), l.index)).collect();
    let index_of = |lead_id: &str| leads.get(lead_id).and_then(|(email, _)| index_by_email.get(email)).copied();

    // Tasks handoff created, by key; none twice.
    let tasks = sandbox_tasks(&sim.sandbox).await.unwrap();
    let task_by_key: BTreeMap<String, &SandboxTask> =
        tasks.iter().filter_map(|t| t.handoff_key.clone().map(|k| (k, t))).collect();
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks.iter().filter_map(|t| t.handoff_key.clone()) {
        *by_key.entry(t).or_default() += 1;
    }
    let dups: Vec<_> = by_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "{crm}: tasks created twice: {dups:?}");
    let mut tasks_of: BTreeMap<(String, String, i64), BTreeSet<String>> = BTreeMap::new();
    // Weekly scorecard escalations: `sc:{commitment}:{streak start}:{leader}:v1`.
    let notices = notices(&sim, &by_key, &ticks);
    let scorecard: BTreeSet<(String, String, String)> = by_key
        .keys()
        .filter_map(|k| k.strip_prefix("sc:"))
        .map(|k| {
            let parts: Vec<&str> = k.split(':').collect();
            assert_eq!(parts.len(), 4, "{crm}: scorecard key sc:{k}");
            (parts[0].to_string(), parts[1].to_string(), parts[2].to_string())
        })
        .collect();
    for (commitment, streak_start, _) in &scorecard {
        // One escalation per streak: the week before a streak's first week
        // was not a miss of the same commitment.
        let start = chrono::NaiveDate::parse_from_str(streak_start, "%Y%m%d").unwrap();
        let first = store.week_record(commitment, start).unwrap().expect("the streak's first week is recorded");
        assert!(!first.met, "{crm}: escalation for {commitment} from a week it met");
        let before = store.week_record(commitment, start - Duration::weeks(1)).unwrap();
        assert!(before.is_none_or(|r| r.met), "{crm}: {commitment} escalated again inside one streak (from {start})");
    }
    for key in by_key.keys().filter(|k| !is_notice_key(k)) {
        let (lead, clock, start, what) =
            parse_key(key).unwrap_or_else(|| panic!("{crm}: task key {key} is not handoff's"));
        tasks_of.entry((lead, clock, start)).or_default().insert(what);
    }

    let managers: BTreeMap<usize, Option<usize>> = org.users.iter().map(|u| (u.index, u.manager)).collect();
    let log = sim.sandbox.shared.log.snapshot();
    let timelines = owner_timelines(crm, &org, &log, &|id| index_of(id));
    let user_of = |id: Option<&str>| match id.and_then(|i| owner_ref(crm, i)) {
        Some(OwnerRef::User(u)) => Some(u),
        _ => None,
    };

    // Every task went to the owner of the lead when it was written, or to
    // that owner's managers (the demo's policy names no intake seat).
    let mut addressed = 0;
    for (key, t) in task_by_key.iter().filter(|(k, _)| !is_notice_key(k)) {
        let (lead, _, _, what) = parse_key(key).unwrap_or_else(|| panic!("{crm}: task key {key} is not handoff's"));
        let Some(index) = index_of(&lead) else { continue };
        let at = t.created_at.unwrap_or_else(|| panic!("{crm}: task {key} has no creation time"));
        let allowed = may_receive(timelines.get(&index).map(Vec::as_slice).unwrap_or_default(), &managers, at);
        let to = user_of(t.owner_id.as_deref());
        assert!(
            to.is_some_and(|u| allowed.contains(&u)),
            "{crm}: task {key} ({what}) written {at} went to {:?}, but the lead's owner then (and managers) were {allowed:?}",
            t.owner_id
        );
        addressed += 1;
    }
    assert!(addressed > 100, "{crm}: only {addressed} tasks checked for their addressee");

    // Tasks clean up after themselves: a task is open only while its clock
    // still asks for it, from whoever answers for the lead now, and never
    // two at once for one lead and clock.
    let mut open_per_clock: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    let mut completed_checked = 0;
    for (key, t) in task_by_key.iter().filter(|(k, _)| !is_notice_key(k)) {
        let Some((lead, code, _, _)) = parse_key(key) else { continue };
        // A deleted or merged lead's tasks go with it (the CRM deletes or moves them).
        if index_of(&lead).is_none_or(|i| truth[i].removed) {
            continue;
        }
        let Some(state) = states.get(&lead) else { continue };
        let clock = state.clocks.iter().find(|c| key_code(c.kind) == code);
        let done = match clock {
            None => true,
            Some(c) => {
                matches!(c.status, ClockStatus::Met | ClockStatus::Ended | ClockStatus::Waived)
                    || (c.stopped_at.is_some() && !c.flagged)
                    || c.paused_since.is_some()
            }
        };
        if done {
            assert!(
                t.completed_at.is_some(),
                "{crm}: task {key} is still open though its clock is done: {:?}",
                clock.map(|c| (c.status, &c.reason))
            );
            assert!(
                t.body.as_deref().is_some_and(|b| b.contains("Closed by handoff:")),
                "{crm}: task {key} was closed without a note"
            );
            completed_checked += 1;
        }
        if t.completed_at.is_none() {
            open_per_clock.entry((lead.clone(), code.clone())).or_default().push(key.as_str());
            if let Some(holder) = clock.and_then(|c| c.owner_id.as_deref()).and_then(|o| user_of(Some(o))) {
                let mut allowed = BTreeSet::from([holder]);
                let mut cur = managers.get(&holder).copied().flatten();
                while let Some(m) = cur {
                    allowed.insert(m);
                    cur = managers.get(&m).copied().flatten();
                }
                let to = user_of(t.owner_id.as_deref());
                assert!(
                    to.is_some_and(|u| allowed.contains(&u)),
                    "{crm}: open task {key} is not with the lead's holder now"
                );
            }
        }
        assert!(
            t.body.as_deref().is_some_and(|b| b.contains("Lead: http")),
            "{crm}: task {key} does not link to its lead"
        );
    }
    let twice: Vec<_> = open_per_clock.iter().filter(|(_, keys)| keys.len() > 1).collect();
    assert!(twice.is_empty(), "{crm}: more than one open task for a lead and clock: {twice:?}");
    assert!(completed_checked >= 20, "{crm}: only {completed_checked} tasks whose clock is done");
    let report = sandbox_task_report(&sim.sandbox).await.unwrap();
    assert_eq!(report["max_open_per_lead_and_clock"], 1, "{crm}: the sandbox saw two open tasks at once: {report}");
    let ledger = handoff::demo::ledger_task_report(&store).unwrap();
    assert_eq!(report["completed"], ledger["completed"], "{crm}: the ledger and the CRM disagree on completions");
    println!(
        "{crm}: {addressed} tasks addressed right, {completed_checked} completed with their clock; CRM report {report}"
    );
    let mut checked = BTreeMap::<&str, usize>::new();
    let mut accounted: BTreeSet<(String, String, i64)> = BTreeSet::new();
    for (lead_id, state) in &states {
        let Some(index) = index_of(lead_id) else { continue };
        let t = &truth[index];
        let synth = &org.leads[index];
        if t.removed {
            continue;
        }
        // Grading and waivers follow the generator's intent.
        if !synth.complete {
            assert!(state.waived.is_some(), "{crm}: lead {index} lacks a required field but is not waived");
        } else {
            let want = match synth.intended_grade {
                IntendedGrade::A => Some("A"),
                IntendedGrade::B => Some("B"),
                IntendedGrade::C => Some("C"),
                IntendedGrade::None => None,
            };
            match want {
                Some(g) => {
                    assert!(state.mql, "{crm}: lead {index} ({g}) is not an MQL: {:?}", state.waived);
                    assert_eq!(state.grade.as_deref(), Some(g), "{crm}: lead {index}");
                }
                None => assert!(!state.mql, "{crm}: lead {index} was meant to fall below the MQL bar"),
            }
            *checked.entry("graded").or_default() += 1;
        }

        // The CRM reads what the engine decided.
        let (_, crm_fields) = &leads[lead_id];
        for (name, want) in &state.sla_fields {
            assert!(
                same(crm_fields.get(name), want),
                "{crm}: lead {lead_id} field {name}: CRM {:?}, engine {want}",
                crm_fields.get(name)
            );
        }

        for clock in state.clocks.iter().filter(|c| c.kind != ClockKind::Routing) {
            let Some(received) = clock.received_at else { continue };
            let id = (lead_id.clone(), key_code(clock.kind).to_string(), received.timestamp());
            accounted.insert(id.clone());
            // A clock paused in a pool (or not yet anyone's) has no one to
            // ask; its earlier tasks are checked closed on the CRM's records.
            if clock.owner_id.is_none() {
                continue;
            }
            let got = tasks_of.get(&id).cloned().unwrap_or_default();
            check_clock(crm, lead_id, clock, t, &managers, &ticks, now, &got, &mut checked);
        }
        if t.first_user.is_some() && !t.reassigned {
            let behaviour = t.first_user.and_then(|u| org.users[u].behaviour);
            let ft = state.clocks.iter().find(|c| c.kind == ClockKind::FirstTouch);
            if let (Some(ft), Some(b), true) = (ft, behaviour, state.mql && state.waived.is_none()) {
                behaviour_check(crm, index, ft, state.grade.as_deref(), b, now, &mut checked);
            }
        }
    }
    // No task handoff cannot account for (older clock incarnations exist
    // only for leads that changed hands).
    for (id, whats) in &tasks_of {
        if accounted.contains(id) {
            continue;
        }
        let index = index_of(&id.0);
        let changed_hands = index.map(|i| truth[i].reassigned || truth[i].removed).unwrap_or(false);
        assert!(
            changed_hands,
            "{crm}: tasks {whats:?} for {id:?} match no clock of the engine's: {:#?}",
            states.get(&id.0).map(|s| (
                s.qualified_at,
                s.clocks.iter().map(|c| (c.kind, c.received_at, c.status, &c.reason)).collect::<Vec<_>>()
            ))
        );
    }
    println!("{crm}: {} leads, {} tasks, checks {checked:?}", states.len(), by_key.len());
    assert!(!scorecard.is_empty(), "{crm}: a month of these reps misses a sales commitment two weeks running");
    let mut neutral: BTreeSet<(usize, String, i64, String, String, bool)> = task_by_key
        .iter()
        .filter(|(k, _)| !is_notice_key(k))
        .filter_map(|(k, t)| {
            let (lead, clock, start, what) = parse_key(k)?;
            let to = format!("{:?}", user_of(t.owner_id.as_deref()));
            Some((index_of(&lead)?, clock, start, what, to, t.completed_at.is_some()))
        })
        .collect();
    // Scorecard escalations compared without the CRM's leader ids.
    neutral.extend(scorecard.iter().map(|(c, week, _)| {
        (usize::MAX, c.clone(), week.parse().unwrap_or(0), "scorecard".to_string(), String::new(), false)
    }));
    // Digests and summaries by user index and date, CRM ids left out.
    neutral.extend(
        notices
            .into_iter()
            .map(|(user, date, kind)| (user, kind, date.into(), "notice".to_string(), String::new(), false)),
    );
    for (what, min) in [("reminder", 5), ("escalation", 5), ("met_quiet", 5), ("graded", 50), ("fast", 3), ("never", 1)]
    {
        assert!(
            checked.get(what).copied().unwrap_or(0) >= min,
            "{crm}: too few `{what}` cases to mean anything: {checked:?}"
        );
    }
    if leads_mode {
        // Tasks are on the lead records (the sandbox's own associations).
        let mut on_lead = 0;
        for (key, t) in task_by_key.iter().filter(|(k, _)| !is_notice_key(k)) {
            let Some((lead, ..)) = parse_key(key) else { continue };
            if index_of(&lead).is_none_or(|i| truth[i].removed) {
                continue;
            }
            assert_eq!(t.lead_id.as_deref(), Some(lead.as_str()), "leads mode: task {key} is not on its lead record");
            on_lead += 1;
        }
        assert!(on_lead > 100, "leads mode: only {on_lead} tasks checked on their lead record");
    }
    let ms = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
    let clocks = states
        .iter()
        .filter_map(|(id, state)| Some((index_of(id)?, state)))
        .flat_map(|(index, state)| {
            state.clocks.iter().map(move |c| {
                let (kind, status) = (format!("{:?}", c.kind), format!("{:?}", c.status));
                (index, kind, ms(c.received_at), ms(c.due_at), ms(c.stopped_at), ms(c.breached_at), status)
            })
        })
        .collect();
    let card = handoff::report::from_store("demo", sim.config.policy(), &store, 6, now, None).unwrap();
    let scorecard = handoff::report::render(&card, handoff::report::Format::Csv);
    sim.sandbox.stop().await;
    Month { tasks: neutral, clocks, scorecard }
}

/// The digest and summary tasks: checked against what the org and the
/// ticks say is due, and returned as (user index, yyyymmdd, kind).
fn notices(
    sim: &Simulation,
    by_key: &BTreeMap<String, usize>,
    ticks: &[DateTime<Utc>],
) -> BTreeSet<(usize, u32, String)> {
    let crm = sim.sandbox.crm;
    let org = &sim.sandbox.shared.org;
    let id_of = |i: usize| match crm {
        CrmKind::Salesforce => handoff_sandbox::salesforce::materialise::user_id(i),
        CrmKind::Hubspot => handoff_sandbox::hubspot::state::owner_id(OwnerRef::User(i)).to_string(),
    };
    let user_of: BTreeMap<String, usize> = org.users.iter().map(|u| (id_of(u.index), u.index)).collect();
    let mut got: BTreeSet<(usize, u32, String)> = BTreeSet::new();
    let mut summaries: BTreeMap<String, usize> = BTreeMap::new();
    for key in by_key.keys() {
        let parts: Vec<&str> = key.split(':').collect();
        match parts.as_slice() {
            ["dg", who, date, kind, _] => {
                let user = user_of[*who];
                assert!(got.insert((user, date.parse().unwrap(), kind.to_string())), "{crm}: digest twice: {key}");
            }
            ["ws", week, _, _] => *summaries.entry(week.to_string()).or_default() += 1,
            _ => {}
        }
    }
    // When each user first owned a lead (visible to a tick).
    let mut first_lead: BTreeMap<usize, DateTime<Utc>> = BTreeMap::new();
    for e in &org.events {
        if let EventKind::LeadCreated { owner: OwnerRef::User(u), .. }
        | EventKind::Assigned { owner: OwnerRef::User(u), .. } = &e.kind
        {
            first_lead.entry(*u).or_insert(e.at + Duration::seconds(LAG));
        }
    }
    let digest_at = chrono::NaiveTime::from_hms_opt(8, 30, 0).unwrap();
    let due = |user: usize, since: DateTime<Utc>| -> BTreeSet<u32> {
        let tz: chrono_tz::Tz = org.users[user].time_zone.parse().unwrap();
        let mut out = BTreeSet::new();
        let first = ticks[0].with_timezone(&tz).date_naive();
        let last = ticks[ticks.len() - 1].with_timezone(&tz).date_naive();
        let mut d = first;
        while d <= last {
            let weekday = !matches!(d.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
            let from = handoff::notify::schedule::local_instant(tz, d, digest_at);
            let to = handoff::notify::schedule::local_instant(tz, d + Duration::days(1), chrono::NaiveTime::MIN);
            if weekday && ticks.iter().any(|t| *t >= from && *t < to && *t >= since) {
                out.insert(d.format("%Y%m%d").to_string().parse().unwrap());
            }
            d += Duration::days(1);
        }
        out
    };
    let mut want: BTreeSet<(usize, u32, String)> = BTreeSet::new();
    for (user, since) in &first_lead {
        want.extend(due(*user, *since).into_iter().map(|d| (*user, d, "rep".to_string())));
    }
    let mut team_since: BTreeMap<usize, DateTime<Utc>> = BTreeMap::new();
    for (user, since) in &first_lead {
        if let Some(m) = org.users[*user].manager {
            let e = team_since.entry(m).or_insert(*since);
            *e = (*e).min(*since);
        }
    }
    for (manager, since) in &team_since {
        want.extend(due(*manager, *since).into_iter().map(|d| (*manager, d, "mgr".to_string())));
    }
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{crm}: digests missing {missing:?}, unexpected {extra:?}");
    assert!(got.iter().filter(|(_, _, k)| k == "rep").count() >= 6 * 20, "{crm}: a month of digests for six reps");
    // A summary for every week that closed with data, one per leader (one
    // leader in the demo policy), sent Monday 09:00 in New York.
    let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let last_tick = ticks[ticks.len() - 1];
    let first_lead_at = org.events.iter().map(|e| e.at).min().unwrap();
    let mut weeks = BTreeMap::new();
    let mut w = first_lead_at.with_timezone(&ny).date_naive();
    while w.weekday() != chrono::Weekday::Mon {
        w -= Duration::days(1);
    }
    loop {
        let send = handoff::notify::schedule::local_instant(
            ny,
            w + Duration::days(7),
            chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        );
        if send > last_tick {
            break;
        }
        weeks.insert(w.format("%Y%m%d").to_string(), 1usize);
        w += Duration::days(7);
    }
    assert_eq!(summaries, weeks, "{crm}: one weekly summary per closed week");
    assert!(summaries.len() >= 4, "{crm}: a month has four weekly summaries");
    println!("{crm}: {} digests, {} summaries", got.len(), summaries.len());
    let mut neutral = got;
    neutral.extend(summaries.keys().map(|w| (usize::MAX, w.parse().unwrap(), "summary".to_string())));
    neutral
}

#[allow(clippy::too_many_arguments)]
fn check_clock(
    crm: CrmKind,
    lead_id: &str,
    clock: &Clock,
    t: &Truth,
    managers: &BTreeMap<usize, Option<usize>>,
    ticks: &[DateTime<Utc>],
    now: DateTime<Utc>,
    got: &BTreeSet<String>,
    checked: &mut BTreeMap<&'static str, usize>,
) {
    let lag = Duration::seconds(LAG);
    let ctx = format!(
        "{crm}: lead {lead_id} {} clock ({:?}, {}) tasks {got:?}",
        clock.kind.as_str(),
        clock.status,
        clock.reason
    );
    // The first tick that could see the lead with a user owning it.
    let first_seen = t.first_user_at.and_then(|a| ticks.iter().copied().find(|tick| *tick >= a + lag));
    // Stopped (touched or decided) visibly before `at`.
    let quiet_before = |at: DateTime<Utc>| clock.stopped_at.is_some_and(|s| s <= at - lag);

    if clock.flagged {
        assert!(got.contains("flag"), "{ctx}: a flagged close needs its flag task");
        *checked.entry("flag").or_default() += 1;
    } else if matches!(clock.status, ClockStatus::Met | ClockStatus::Pending | ClockStatus::AtRisk) {
        // (A flag the clock no longer calls for is closed: checked on the CRM's records.)
        assert!(!got.contains("flag"), "{ctx}: flag task for a clock never closed wrongly");
    }

    // Reminders: a clock the daemon saw still running at its reminder point
    // (or first saw between that point and the due time, still running)
    // gets exactly one; one stopped before it gets none.
    match (clock.remind_at, first_seen) {
        (None, _) => assert!(!got.contains("rem"), "{ctx}: reminded without a reminder point"),
        (Some(remind), _) if quiet_before(remind) => {
            assert!(!got.contains("rem"), "{ctx}: stopped before its reminder point {remind}, yet reminded");
        }
        (Some(remind), Some(seen)) => {
            let looked_at = remind.max(seen);
            let at_risk = looked_at <= now && clock.due_at.is_some_and(|d| looked_at < d) && !quiet_before(looked_at);
            if at_risk {
                assert!(got.contains("rem"), "{ctx}: at risk when looked at ({looked_at}) but no reminder");
                *checked.entry("reminder").or_default() += 1;
            } else if clock.due_at.is_some_and(|d| seen >= d) {
                assert!(!got.contains("rem"), "{ctx}: first seen after its due time, yet reminded");
            }
        }
        (Some(_), None) => {}
    }

    let escalations: BTreeSet<&String> = got.iter().filter(|w| w.starts_with("esc")).collect();
    match clock.status {
        ClockStatus::Met | ClockStatus::Pending | ClockStatus::AtRisk | ClockStatus::Waived | ClockStatus::Ended => {
            assert!(escalations.is_empty(), "{ctx}: escalated without a breach");
            if clock.status == ClockStatus::Met && clock.remind_at.is_some_and(&quiet_before) {
                assert!(got.is_empty(), "{ctx}: met in time, yet tasks exist");
                *checked.entry("met_quiet").or_default() += 1;
            }
        }
        ClockStatus::Breached => {
            let due = clock.due_at.unwrap_or(now);
            // Seen running past its due time: the first rung fired.
            let breach_seen_running = first_seen.is_some_and(|seen| !quiet_before(seen.max(due)))
                && !clock.flagged
                && clock.kind != ClockKind::ReasonCode;
            let has_manager = t.first_user.and_then(|u| managers.get(&u).copied().flatten()).is_some();
            if breach_seen_running && has_manager && !t.reassigned {
                assert!(
                    escalations.contains(&"esc1".to_string()),
                    "{ctx}: breached at {due} while running, but no level-1 escalation"
                );
                *checked.entry("escalation").or_default() += 1;
            }
            if clock.stopped_at.is_none() {
                // Still running: one task per rung that fired (each later
                // one replacing the one before), none for a rung that did not.
                let fired: BTreeSet<String> = clock
                    .escalations
                    .iter()
                    .filter(|r| r.fired && !r.reassign)
                    .map(|r| format!("esc{}", r.level))
                    .collect();
                let have: BTreeSet<String> = escalations.iter().map(|s| s.to_string()).collect();
                if !t.reassigned {
                    assert!(
                        have.is_subset(&fired),
                        "{ctx}: escalation tasks {have:?} for rungs that did not fire ({fired:?})"
                    );
                    let latest =
                        clock.escalations.iter().filter(|r| r.fired && !r.reassign).max_by_key(|r| (r.at, r.level));
                    if let Some(r) = latest {
                        assert!(
                            have.contains(&format!("esc{}", r.level)),
                            "{ctx}: the latest rung that fired has no task"
                        );
                    }
                }
            }
        }
    }
}

/// What the rep behaviours promise. A fast rep calls within 40 working
/// minutes: inside an A lead's business hour and a C lead's 48, but not
/// always inside a B lead's "same business day" (a lead arriving at 16:50
/// is called the next morning).
fn behaviour_check(
    crm: CrmKind,
    index: usize,
    ft: &Clock,
    grade: Option<&str>,
    behaviour: RepBehaviour,
    now: DateTime<Utc>,
    checked: &mut BTreeMap<&'static str, usize>,
) {
    let due_passed = ft.due_at.is_some_and(|d| d <= now);
    match behaviour {
        RepBehaviour::Fast if matches!(grade, Some("A" | "C")) && ft.stopped_at.is_some() => {
            assert_eq!(ft.status, ClockStatus::Met, "{crm}: lead {index} of a fast rep: {}", ft.reason);
            *checked.entry("fast").or_default() += 1;
        }
        RepBehaviour::Never if due_passed => {
            assert_eq!(ft.status, ClockStatus::Breached, "{crm}: lead {index} of a rep who never calls: {}", ft.reason);
            *checked.entry("never").or_default() += 1;
        }
        _ => {}
    }
}

/// The same org on both CRMs, and on HubSpot's lead records: each month
/// checked on its own, and the CRM-neutral engine must have decided the
/// same tasks on all three; HubSpot's two lead objects also end with the
/// same clocks and the same scorecard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_month_on_salesforce_on_hubspot_and_on_hubspot_lead_records() {
    let (sf, hs, hs_leads) =
        tokio::join!(month(CrmKind::Salesforce, false), month(CrmKind::Hubspot, false), month(CrmKind::Hubspot, true));
    let only_sf: Vec<_> = sf.tasks.difference(&hs.tasks).collect();
    let only_hs: Vec<_> = hs.tasks.difference(&sf.tasks).collect();
    assert!(
        only_sf.is_empty() && only_hs.is_empty(),
        "tasks on one CRM only: salesforce {only_sf:?}, hubspot {only_hs:?}"
    );
    assert!(sf.tasks.len() > 100, "a month of 200 leads makes more than {} tasks", sf.tasks.len());
    let only_contacts: Vec<_> = hs.tasks.difference(&hs_leads.tasks).collect();
    let only_leads: Vec<_> = hs_leads.tasks.difference(&hs.tasks).collect();
    assert!(
        only_contacts.is_empty() && only_leads.is_empty(),
        "tasks in one HubSpot mode only: contacts {only_contacts:?}, lead records {only_leads:?}"
    );
    let only_contacts: Vec<_> = hs.clocks.difference(&hs_leads.clocks).collect();
    let only_leads: Vec<_> = hs_leads.clocks.difference(&hs.clocks).collect();
    assert!(
        only_contacts.is_empty() && only_leads.is_empty(),
        "clocks in one HubSpot mode only: contacts {only_contacts:?}, lead records {only_leads:?}"
    );
    assert!(hs.clocks.len() > 200, "only {} clocks compared", hs.clocks.len());
    assert_eq!(hs.scorecard, hs_leads.scorecard, "the scorecard is the same on contacts and on lead records");
}
