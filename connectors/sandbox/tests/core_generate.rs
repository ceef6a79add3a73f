//! The synthetic org generator: determinism, coverage of behaviours and
//! grades, and the timeline's invariants.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use handoff_sandbox::generate;
use handoff_sandbox::generate::{COMPETITOR_DOMAINS, FIT_COUNTRIES};
use handoff_sandbox::org::{EventKind, IntendedGrade, LeadStatus, OrgConfig, OwnerRef, RepBehaviour, SyntheticOrg};

fn cfg(seed: u64, leads: usize) -> OrgConfig {
    OrgConfig {
        seed,
        leads,
        days: 30,
        start_at: "2026-03-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap(),
        ..OrgConfig::default()
    }
}

fn lead_owner_behaviours(org: &SyntheticOrg) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for e in &org.events {
        let owner = match &e.kind {
            EventKind::LeadCreated { owner: OwnerRef::User(u), .. }
            | EventKind::Assigned { owner: OwnerRef::User(u), .. } => *u,
            _ => continue,
        };
        if let Some(b) = org.users[owner].behaviour {
            seen.insert(format!("{b:?}"));
        }
    }
    seen
}

#[test]
fn same_seed_same_json_and_different_seed_differs() {
    let a = serde_json::to_string(&generate(&cfg(7, 500))).unwrap();
    let b = serde_json::to_string(&generate(&cfg(7, 500))).unwrap();
    let c = serde_json::to_string(&generate(&cfg(8, 500))).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn every_behaviour_owns_leads_in_small_orgs() {
    let all: BTreeSet<String> = [
        RepBehaviour::Fast,
        RepBehaviour::Slow,
        RepBehaviour::Never,
        RepBehaviour::StopsEarly,
        RepBehaviour::SloppyRejecter,
    ]
    .iter()
    .map(|b| format!("{b:?}"))
    .collect();
    for seed in 0..20 {
        let org = generate(&cfg(seed, 50));
        assert_eq!(lead_owner_behaviours(&org), all, "seed {seed}");
    }
}

#[test]
fn events_are_sorted_and_each_lead_starts_with_its_creation() {
    let org = generate(&cfg(3, 2_000));
    assert!(org.events.windows(2).all(|w| w[0].at <= w[1].at), "events out of order");
    let mut created = vec![false; org.leads.len()];
    let mut gone = vec![false; org.leads.len()];
    for e in &org.events {
        assert!(e.at >= org.config.start_at && e.at < org.config.end_at(), "event outside the timeline: {e:?}");
        let lead = match &e.kind {
            EventKind::LeadCreated { lead, .. } => {
                assert!(!created[*lead], "lead {lead} created twice");
                created[*lead] = true;
                continue;
            }
            EventKind::Assigned { lead, .. }
            | EventKind::Touch { lead, .. }
            | EventKind::StatusChanged { lead, .. }
            | EventKind::OpportunityCreated { lead, .. }
            | EventKind::OpportunityMeeting { lead, .. }
            | EventKind::Deleted { lead } => *lead,
            EventKind::Merged { lead, into } => {
                assert!(created[*into] && !gone[*into], "lead {lead} merged into a missing lead {into}");
                *lead
            }
        };
        assert!(created[lead], "event before creation: {e:?}");
        assert!(!gone[lead], "event after deletion or merge: {e:?}");
        if matches!(e.kind, EventKind::Deleted { .. } | EventKind::Merged { .. }) {
            gone[lead] = true;
        }
    }
    assert_eq!(created.iter().filter(|c| **c).count(), org.leads.len());
    assert!(gone.iter().any(|g| *g), "no deletions or merges in 2,000 leads");
}

#[test]
fn statuses_reassignments_and_rejections_without_reasons_occur() {
    let org = generate(&cfg(11, 2_000));
    let mut kinds = BTreeMap::<&str, usize>::new();
    let mut assigned_to_user = vec![0u32; org.leads.len()];
    for e in &org.events {
        let k = match &e.kind {
            EventKind::StatusChanged { status: LeadStatus::Rejected { reason: None }, .. } => "rejected_no_reason",
            EventKind::StatusChanged { status: LeadStatus::Rejected { reason: Some(_) }, .. } => "rejected_reason",
            EventKind::StatusChanged { status: LeadStatus::ClosedUnresponsive { .. }, .. } => "closed",
            EventKind::StatusChanged { status: LeadStatus::Converted, .. } => "converted",
            EventKind::StatusChanged { status: LeadStatus::Accepted, .. } => "accepted",
            EventKind::Deleted { .. } => "deleted",
            EventKind::Merged { .. } => "merged",
            EventKind::Assigned { lead, owner: OwnerRef::User(_) } => {
                assigned_to_user[*lead] += 1;
                "assigned"
            }
            _ => continue,
        };
        *kinds.entry(k).or_default() += 1;
    }
    for k in
        ["rejected_no_reason", "rejected_reason", "closed", "converted", "accepted", "deleted", "merged", "assigned"]
    {
        assert!(kinds.get(k).copied().unwrap_or(0) > 0, "no {k} events: {kinds:?}");
    }
    assert!(assigned_to_user.iter().any(|n| *n >= 2), "no lead was reassigned");
}

#[test]
fn intended_grades_follow_the_example_policy_rules() {
    let org = generate(&cfg(5, 1_000));
    let manager_words = ["VP", "Director", "Head", "Manager", "Chief"];
    let mut grades = BTreeMap::<String, usize>::new();
    for lead in &org.leads {
        *grades.entry(format!("{:?}", lead.intended_grade)).or_default() += 1;
        let fit = lead.employees.is_some_and(|n| n >= 25)
            && lead.country.as_deref().is_some_and(|c| FIT_COUNTRIES.contains(&c))
            && lead.title.as_deref().is_some_and(|t| manager_words.iter().any(|w| t.contains(w)));
        let title_missing = lead.title.is_none();
        match lead.intended_grade {
            IntendedGrade::A => {
                assert!(fit || title_missing, "A lead without fit: {lead:?}");
                assert!(["demo_request", "pricing_view"].contains(&lead.intent_action.as_str()));
            }
            IntendedGrade::B => {
                assert!(fit || title_missing, "B lead without fit: {lead:?}");
                assert!(["content_download", "webinar"].contains(&lead.intent_action.as_str()));
            }
            IntendedGrade::C => assert!(!fit && lead.score >= 50, "C lead should be a weak fit: {lead:?}"),
            IntendedGrade::None => {
                let domain = lead.email.rsplit('@').next().unwrap();
                let disqualified = lead.score < 50
                    || lead.title.as_deref().is_some_and(|t| t.contains("Student"))
                    || COMPETITOR_DOMAINS.contains(&domain)
                    || ["gmail.com", "yahoo.com"].contains(&domain);
                assert!(disqualified || title_missing, "None lead with no disqualifier: {lead:?}");
            }
        }
        assert_eq!(lead.complete, lead.company.is_some() && lead.title.is_some() && lead.phone.is_some());
    }
    assert_eq!(grades.len(), 4, "{grades:?}");
    let incomplete = org.leads.iter().filter(|l| !l.complete).count();
    assert!((50..=150).contains(&incomplete), "about 10% incomplete, got {incomplete}");
}

#[test]
fn users_have_manager_chains_zones_and_queues_exist() {
    let org = generate(&cfg(1, 50));
    let reps: Vec<_> = org.users.iter().filter(|u| u.behaviour.is_some()).collect();
    assert!(reps.len() >= 6);
    let managers: BTreeSet<usize> = reps.iter().filter_map(|r| r.manager).collect();
    assert!(managers.len() >= 2);
    for r in &reps {
        let mut chain = vec![r.index];
        let mut cur = r.manager;
        while let Some(m) = cur {
            assert!(!chain.contains(&m), "manager cycle");
            chain.push(m);
            cur = org.users[m].manager;
        }
        assert!(chain.len() >= 3, "rep {} should have a manager and a VP above", r.index);
    }
    let zones: BTreeSet<&str> = org.users.iter().map(|u| u.time_zone.as_str()).collect();
    for z in ["America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Kolkata", "Australia/Sydney"] {
        assert!(zones.contains(z), "missing zone {z}");
    }
    let queue_names: Vec<&str> = org.queues.iter().map(|q| q.name.as_str()).collect();
    assert!(queue_names.contains(&"Inbound Queue") && queue_names.contains(&"Nurture Pool"));
}

#[test]
fn calendars_carry_us_and_uk_holidays() {
    let mut c = cfg(1, 10);
    c.start_at = "2026-11-02T00:00:00Z".parse().unwrap();
    c.days = 90;
    let org = generate(&c);
    let default = org.calendars.iter().find(|c| c.id == "default").unwrap();
    assert_eq!(default.time_zone, "America/New_York");
    let dates: Vec<NaiveDate> = default.holidays.iter().map(|h| h.date).collect();
    // Thanksgiving 2026 is Thursday 26 November; 4 July 2027 is a Sunday, observed Monday 5 July.
    assert!(dates.contains(&NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()));
    assert!(dates.contains(&NaiveDate::from_ymd_opt(2027, 7, 5).unwrap()));
    let emea = org.calendars.iter().find(|c| c.id == "emea").unwrap();
    assert_eq!(emea.time_zone, "Europe/London");
    // Christmas 2027 is a Saturday: bank holidays Monday 27 and Tuesday 28.
    let uk: Vec<NaiveDate> = emea.holidays.iter().map(|h| h.date).collect();
    assert!(uk.contains(&NaiveDate::from_ymd_opt(2027, 12, 27).unwrap()));
    assert!(uk.contains(&NaiveDate::from_ymd_opt(2027, 12, 28).unwrap()));
}

#[test]
fn touches_fall_in_the_touching_reps_working_hours() {
    use chrono::{Datelike, Timelike, Weekday};
    let org = generate(&cfg(9, 500));
    let mut touches = 0;
    for e in &org.events {
        if let EventKind::Touch { by, .. } = e.kind {
            let tz: chrono_tz::Tz = org.users[by].time_zone.parse().unwrap();
            let local = e.at.with_timezone(&tz);
            assert!(!matches!(local.weekday(), Weekday::Sat | Weekday::Sun), "weekend touch {e:?}");
            assert!((9..17).contains(&local.hour()), "touch outside 9-17 local: {local} {e:?}");
            touches += 1;
        }
    }
    assert!(touches > 500);
}

#[test]
fn follow_up_activities_reach_the_asked_average_without_changing_the_org() {
    let plain = generate(&OrgConfig { days: 120, ..cfg(9, 3_000) });
    let busy = generate(&OrgConfig { activities_per_lead: Some(5), days: 120, ..cfg(9, 3_000) });
    let touches = |org: &SyntheticOrg| org.events.iter().filter(|e| matches!(e.kind, EventKind::Touch { .. })).count();
    let per_lead = touches(&busy) as f64 / busy.leads.len() as f64;
    assert!((4.5..=5.0).contains(&per_lead), "about 5 activities per lead, got {per_lead:.2}");
    assert!((touches(&plain) as f64 / plain.leads.len() as f64) < 2.5);
    // Everything else is the same org: the plain events are a subsequence of the busy ones.
    assert_eq!(plain.leads, busy.leads);
    assert_eq!(plain.users, busy.users);
    let mut next = 0;
    let mut extras = Vec::new();
    for e in &busy.events {
        if plain.events.get(next) == Some(e) {
            next += 1;
        } else {
            extras.push(e);
        }
    }
    assert_eq!(next, plain.events.len());
    assert!(!extras.is_empty());
    // Each follow-up comes after its lead's last status change, by its last owner.
    let mut closed_at = BTreeMap::new();
    let mut owner = BTreeMap::new();
    for e in &plain.events {
        match e.kind {
            EventKind::StatusChanged { lead, .. } => {
                closed_at.insert(lead, e.at);
            }
            EventKind::LeadCreated { lead, owner: o } | EventKind::Assigned { lead, owner: o } => {
                owner.insert(lead, o);
            }
            _ => {}
        }
    }
    for e in extras {
        let EventKind::Touch { lead, by, .. } = e.kind else { panic!("only touches are added: {e:?}") };
        assert!(closed_at[&lead] < e.at, "lead {lead}: a follow-up before the final status");
        assert_eq!(owner[&lead], OwnerRef::User(by));
    }
}

/// A campaign spike adds its leads on its day; a rep on leave touches and
/// decides nothing on their days away, and the org lists those days.
#[test]
fn a_spike_day_and_a_rep_on_leave() {
    use handoff_sandbox::org::{Leave, Spike};
    let base = OrgConfig { days: 14, ..cfg(5, 300) };
    let plain = generate(&base);
    let org = generate(&OrgConfig {
        spike: Some(Spike { day: 3, leads: 120 }),
        leave: vec![Leave { rep: 1, from_day: 7, days: 3 }],
        ..base.clone()
    });
    assert_eq!(org.leads.len(), 420);
    let created_on = |org: &SyntheticOrg, day: NaiveDate| {
        org.events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::LeadCreated { .. }) && e.at.date_naive() == day)
            .count()
    };
    let spike_day = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
    assert_eq!(created_on(&org, spike_day), created_on(&plain, spike_day) + 120);
    let next_day = spike_day.succ_opt().unwrap();
    assert_eq!(created_on(&org, next_day), created_on(&plain, next_day));

    assert!(plain.time_off.is_empty());
    let reps: Vec<usize> = org.users.iter().filter(|u| u.behaviour.is_some()).map(|u| u.index).collect();
    let (rep, first, last) = org.time_off[0];
    assert_eq!(rep, reps[1]);
    assert_eq!((first.to_string(), last.to_string()), ("2026-03-09".to_string(), "2026-03-11".to_string()));
    let tz: chrono_tz::Tz = org.users[rep].time_zone.parse().unwrap();
    let on_leave = |at: DateTime<Utc>| (first..=last).contains(&at.with_timezone(&tz).date_naive());
    // Who owns each lead, to see whose status changes are whose.
    let mut owner: BTreeMap<usize, Option<usize>> = BTreeMap::new();
    let mut acted_before_leave = 0;
    for e in &org.events {
        match &e.kind {
            EventKind::LeadCreated { lead, owner: o } | EventKind::Assigned { lead, owner: o } => {
                owner.insert(*lead, if let OwnerRef::User(u) = o { Some(*u) } else { None });
            }
            EventKind::Touch { lead, by, .. } => {
                assert!(!(*by == rep && on_leave(e.at)), "lead {lead} touched by the rep on leave at {}", e.at);
                if *by == rep && e.at.with_timezone(&tz).date_naive() < first {
                    acted_before_leave += 1;
                }
            }
            EventKind::StatusChanged { lead, .. } => {
                let by = owner.get(lead).copied().flatten();
                assert!(!(by == Some(rep) && on_leave(e.at)), "lead {lead} decided by the rep on leave at {}", e.at);
            }
            _ => {}
        }
    }
    assert!(acted_before_leave > 0, "the rep works before the leave");
}

/// With opportunities, each region gets an AE; every conversion creates
/// one opportunity owned by the AE of the lead's last owner's team, at the
/// conversion's instant; the discovery meetings on them are the AE's,
/// after the opportunity; everything else is the org without them.
#[test]
fn conversions_create_opportunities_owned_by_the_regions_ae() {
    let plain = generate(&cfg(13, 2_000));
    let org = generate(&OrgConfig { opportunities: true, ..cfg(13, 2_000) });
    let aes: Vec<_> = org.users.iter().filter(|u| u.ae).collect();
    assert_eq!(aes.len(), 4, "one AE per region");
    assert!(aes.iter().all(|u| u.behaviour.is_none() && u.manager.is_some()));
    assert_eq!(org.users.len(), plain.users.len() + aes.len());
    assert_eq!(&org.users[..plain.users.len()], &plain.users[..], "the other users are unchanged");
    let others: Vec<_> = org
        .events
        .iter()
        .filter(|e| !matches!(e.kind, EventKind::OpportunityCreated { .. } | EventKind::OpportunityMeeting { .. }))
        .collect();
    assert_eq!(others, plain.events.iter().collect::<Vec<_>>(), "the rest of the timeline is unchanged");

    let mut owner: BTreeMap<usize, usize> = BTreeMap::new();
    let mut converted: BTreeMap<usize, DateTime<Utc>> = BTreeMap::new();
    let mut opportunity: BTreeMap<usize, (DateTime<Utc>, usize)> = BTreeMap::new();
    let mut meetings = 0;
    for e in &org.events {
        match &e.kind {
            EventKind::LeadCreated { lead, owner: OwnerRef::User(u) }
            | EventKind::Assigned { lead, owner: OwnerRef::User(u) } => {
                owner.insert(*lead, *u);
            }
            EventKind::StatusChanged { lead, status: LeadStatus::Converted } => {
                converted.insert(*lead, e.at);
            }
            EventKind::OpportunityCreated { lead, owner: ae } => {
                assert!(opportunity.insert(*lead, (e.at, *ae)).is_none(), "lead {lead} has two opportunities");
                assert_eq!(converted.get(lead), Some(&e.at), "lead {lead}: created at its conversion");
                assert!(org.users[*ae].ae, "lead {lead}: owned by an AE");
                assert_eq!(org.users[*ae].team, org.users[owner[lead]].team, "lead {lead}: the AE of its region");
            }
            EventKind::OpportunityMeeting { lead, by } => {
                let (created_at, ae) = opportunity[lead];
                assert_eq!(*by, ae, "lead {lead}: the meeting is the AE's");
                assert!(e.at > created_at, "lead {lead}: the meeting comes after the opportunity");
                meetings += 1;
            }
            _ => {}
        }
    }
    assert_eq!(opportunity.len(), converted.len(), "every conversion has an opportunity");
    assert!(converted.len() > 50, "conversions happen: {}", converted.len());
    assert!(meetings > 0 && meetings < opportunity.len(), "most, not all, get a meeting: {meetings}");
}
