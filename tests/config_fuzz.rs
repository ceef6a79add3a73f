//! Config fuzzing: mutated versions of the example config — extreme
//! durations, huge calendars, long and doubling chains of named criteria,
//! deep nesting, wild cadences and escalation multiples, and random damage
//! to the text — must never abort `handoff check` (a stack overflow would
//! take this whole test binary down), and every config it accepts must
//! judge a lead within a fixed budget of calendar work.
//!
//! Work is counted, not timed ([`handoff::calendar::work_steps`]: local
//! dates expanded, weekly windows resolved, holiday spans checked), so the
//! bound holds on a loaded machine. `STEP_BUDGET` is set so that an
//! evaluation at the budget takes well under 100 ms: the
//! `a_step_costs_well_under_the_budget_share` test prints the measured cost
//! per whole evaluation divided by its steps (a few microseconds in a debug
//! build, all of the engine's work included, so 20,000 steps stay under
//! 100 ms),
//! without asserting on time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use chrono::{DateTime, Duration, Utc};
use handoff::calendar::work_steps;
use handoff::engine::{evaluate, Owners};
use handoff_model::{Activity, Lead, Owner};
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../config/salesforce.example.toml");
const CASE: &str = include_str!("data/explain/case.json");

/// Calendar work one lead's evaluation may take at most, at any instant.
const STEP_BUDGET: u64 = 20_000;

/// Where the example writes durations.
const DURATION_KEYS: &[&[&str]] = &[
    &["policy", "segments", "#1", "first_touch", "A"],
    &["policy", "segments", "#1", "first_touch", "C"],
    &["policy", "segments", "#1", "sal_decision"],
    &["policy", "segments", "#1", "disposition", "within"],
    &["policy", "segments", "#0", "first_touch", "A"],
    &["policy", "marketing", "routing_within"],
    &["policy", "escalation", "remind_at"],
    &["policy", "escalation", "levels", "#1", "after"],
];

#[derive(Debug, Clone)]
enum Mutation {
    Duration { key: usize, text: String },
    Hours { calendar: usize, per_day: usize, all_days: bool },
    Holidays { calendar: usize, count: usize, on_mondays: bool },
    CriteriaChain { length: usize },
    CriteriaDoubling { levels: usize },
    DeepNot { depth: usize },
    Cadence { touches: i64, business_days: i64 },
    BigList { items: usize },
    Text { at: usize, delete: usize, insert: String },
}

fn duration_text() -> impl Strategy<Value = String> {
    let numbers = prop::sample::select(vec![
        "0",
        "1",
        "1.5",
        "7",
        "48",
        "259",
        "260",
        "261",
        "2080",
        "2081",
        "8784",
        "100000",
        "4294967295",
        "1e11",
        "-3",
        "NaN",
    ]);
    let units = prop::sample::select(vec![
        "business days",
        "business hours",
        "business minutes",
        "business seconds",
        "hours",
        "days",
        "weeks",
        "x",
        "%",
        "",
    ]);
    prop_oneof![
        (numbers, units).prop_map(|(n, u)| if u == "x" || u == "%" { format!("{n}{u}") } else { format!("{n} {u}") }),
        Just("same business day".to_string()),
        Just("next business day".to_string()),
        "[ -~]{0,12}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..DURATION_KEYS.len(), duration_text()).prop_map(|(key, text)| Mutation::Duration { key, text }),
        (0usize..3, prop::sample::select(vec![0usize, 1, 2, 12, 13, 90, 4_000]), any::<bool>())
            .prop_map(|(calendar, per_day, all_days)| Mutation::Hours { calendar, per_day, all_days }),
        (0usize..3, prop::sample::select(vec![0usize, 10, 499, 500, 501, 4_000]), any::<bool>())
            .prop_map(|(calendar, count, on_mondays)| Mutation::Holidays { calendar, count, on_mondays }),
        prop::sample::select(vec![1usize, 5, 30, 31, 32, 33, 200, 10_000])
            .prop_map(|length| Mutation::CriteriaChain { length }),
        prop::sample::select(vec![1usize, 5, 11, 12, 13, 20, 40])
            .prop_map(|levels| Mutation::CriteriaDoubling { levels }),
        prop::sample::select(vec![1usize, 10, 30, 40, 100, 5_000]).prop_map(|depth| Mutation::DeepNot { depth }),
        (
            prop::sample::select(vec![-1i64, 0, 1, 6, 100, 101, 1 << 32]),
            prop::sample::select(vec![0i64, 1, 10, 260, 261, 1 << 31])
        )
            .prop_map(|(touches, business_days)| Mutation::Cadence { touches, business_days }),
        prop::sample::select(vec![1usize, 1_000, 100_000]).prop_map(|items| Mutation::BigList { items }),
        (0usize..20_000, 0usize..40, "[ -~\n]{0,8}").prop_map(|(at, delete, insert)| Mutation::Text {
            at,
            delete,
            insert
        }),
    ]
}

/// The value at `path` (`#N` indexes a list), created as a table if absent.
fn slot<'a>(root: &'a mut toml::Value, path: &[&str]) -> Option<&'a mut toml::Value> {
    let mut v = root;
    for seg in path {
        v = match seg.strip_prefix('#') {
            Some(i) => v.as_array_mut()?.get_mut(i.parse::<usize>().ok()?)?,
            None => v.as_table_mut()?.entry(seg.to_string()).or_insert_with(|| toml::Value::Table(Default::default())),
        };
    }
    Some(v)
}

fn calendar_name(i: usize) -> &'static str {
    ["us_east", "emea", "apac"][i % 3]
}

fn window_text(i: usize) -> String {
    let start = (i * 7) % (24 * 60);
    let end = (start + 5 + i % 50) % (24 * 60);
    format!("{:02}:{:02}-{:02}:{:02}", start / 60, start % 60, end / 60, end % 60)
}

/// Applies the structural mutations, renders the file, then applies the
/// textual ones.
fn mutate(mutations: &[Mutation]) -> String {
    let mut root: toml::Value = toml::from_str(EXAMPLE).unwrap();
    for m in mutations {
        match m {
            Mutation::Duration { key, text } => {
                if let Some(v) = slot(&mut root, DURATION_KEYS[*key]) {
                    *v = toml::Value::String(text.clone());
                }
            }
            Mutation::Hours { calendar, per_day, all_days } => {
                let days: &[&str] =
                    if *all_days { &["mon", "tue", "wed", "thu", "fri", "sat", "sun"] } else { &["mon"] };
                let mut hours = toml::Table::new();
                for d in days {
                    let windows = (0..*per_day).map(|i| toml::Value::String(window_text(i))).collect();
                    hours.insert(d.to_string(), toml::Value::Array(windows));
                }
                if let Some(v) = slot(&mut root, &["policy", "calendars", calendar_name(*calendar), "hours"]) {
                    *v = toml::Value::Table(hours);
                }
            }
            Mutation::Holidays { calendar, count, on_mondays } => {
                // 2026-03-02 is a Monday.
                let first = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
                let step = if *on_mondays { 7 } else { 1 };
                let dates = (0..*count)
                    .map(|i| toml::Value::String((first + Duration::days((i * step) as i64)).to_string()))
                    .collect();
                if let Some(v) = slot(&mut root, &["policy", "calendars", calendar_name(*calendar), "holidays"]) {
                    *v = toml::Value::Array(dates);
                }
            }
            Mutation::CriteriaChain { length } => {
                let criteria = slot(&mut root, &["policy", "definitions", "criteria"]).unwrap();
                let t = criteria.as_table_mut().unwrap();
                for i in 0..*length {
                    let mut c = toml::Table::new();
                    c.insert("criteria".into(), toml::Value::String(format!("chain{}", i + 1)));
                    t.insert(format!("chain{i}"), toml::Value::Table(c));
                }
                t.insert(format!("chain{length}"), t["strong_intent"].clone());
                let mql = slot(&mut root, &["policy", "definitions", "mql"]).unwrap();
                *mql = toml::from_str::<toml::Table>("c = { criteria = \"chain0\" }").unwrap()["c"].clone();
            }
            Mutation::CriteriaDoubling { levels } => {
                let criteria = slot(&mut root, &["policy", "definitions", "criteria"]).unwrap();
                let t = criteria.as_table_mut().unwrap();
                t.insert("twice0".into(), t["strong_intent"].clone());
                for i in 1..=*levels {
                    let r = format!("{{ criteria = \"twice{}\" }}", i - 1);
                    let c: toml::Table = toml::from_str(&format!("any = [{r}, {r}]")).unwrap();
                    t.insert(format!("twice{i}"), toml::Value::Table(c));
                }
                let mql = slot(&mut root, &["policy", "definitions", "mql"]).unwrap();
                let text = format!("c = {{ criteria = \"twice{levels}\" }}");
                *mql = toml::from_str::<toml::Table>(&text).unwrap()["c"].clone();
            }
            Mutation::DeepNot { depth } => {
                // Written into the text after rendering: the TOML writer
                // recurses as deeply as the value nests.
                if let Some(v) = slot(&mut root, &["policy", "grades", "#0", "when"]) {
                    *v = toml::Value::String(format!("__DEEP_NOT__{depth}"));
                }
            }
            Mutation::Cadence { touches, business_days } => {
                if let Some(v) = slot(&mut root, &["policy", "segments", "#1", "cadence"]) {
                    let mut t = toml::Table::new();
                    t.insert("touches".into(), toml::Value::Integer(*touches));
                    t.insert("business_days".into(), toml::Value::Integer(*business_days));
                    *v = toml::Value::Table(t);
                }
            }
            Mutation::BigList { items } => {
                if let Some(v) = slot(&mut root, &["policy", "definitions", "criteria", "light_intent", "value"]) {
                    *v = toml::Value::Array((0..*items).map(|i| toml::Value::String(format!("v{i}"))).collect());
                }
            }
            Mutation::Text { .. } => {}
        }
    }
    // A deep nesting the TOML writer itself refuses is as good as refused.
    let mut text = toml::to_string(&root).unwrap_or_else(|_| "[broken".to_string());
    for m in mutations {
        if let Mutation::DeepNot { depth } = m {
            let nested =
                format!("{}{{ criteria = \"strong_intent\" }}{}", "{ not = ".repeat(*depth), " }".repeat(*depth));
            text = text.replacen(&format!("\"__DEEP_NOT__{depth}\""), &nested, 1);
        }
    }
    for m in mutations {
        if let Mutation::Text { at, delete, insert } = m {
            let mut at = (*at).min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + delete).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(at..end, insert);
        }
    }
    text
}

struct Case {
    lead: Lead,
    activities: Vec<Activity>,
    owners: Vec<Owner>,
}

fn case() -> Case {
    let v: serde_json::Value = serde_json::from_str(CASE).unwrap();
    Case {
        lead: serde_json::from_value(v["lead"].clone()).unwrap(),
        activities: serde_json::from_value(v["activities"].clone()).unwrap(),
        owners: serde_json::from_value(v["owners"].clone()).unwrap(),
    }
}

/// The instants a lead is judged at: soon after it arrived, weeks and a
/// year later (every clock long breached, every rung due).
fn instants(lead: &Lead) -> Vec<DateTime<Utc>> {
    let t = lead.created_at;
    vec![t + Duration::minutes(30), t + Duration::days(3), t + Duration::days(40), t + Duration::days(400)]
}

/// The most calendar work one evaluation of the case took under `text`
/// (`None`: the config was refused).
fn worst_steps(text: &str, case: &Case) -> Option<u64> {
    let config = handoff::config::parse(text).ok()?;
    let owners = Owners::new(&case.owners);
    let mut leads = vec![case.lead.clone()];
    // The same lead still untouched and reassigned, and one closed unresponsive.
    let mut untouched = case.lead.clone();
    untouched.id.push('2');
    leads.push(untouched);
    let mut worst = 0;
    for lead in &leads {
        for now in instants(lead) {
            let before = work_steps();
            let _ = evaluate(lead, &case.activities, &owners, config.policy(), None, now);
            worst = worst.max(work_steps() - before);
        }
    }
    Some(worst)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_configs_never_abort_and_accepted_ones_judge_a_lead_within_budget(
        mutations in prop::collection::vec(mutation(), 1..4)
    ) {
        let text = mutate(&mutations);
        let case = case();
        if let Some(steps) = worst_steps(&text, &case) {
            prop_assert!(steps <= STEP_BUDGET, "an accepted config took {steps} calendar steps for one lead: {mutations:?}");
        }
    }
}

/// Each named bound is refused with its key path, without aborting.
#[test]
fn each_bound_is_refused_by_name() {
    let cases: Vec<(Vec<Mutation>, &str)> = vec![
        (
            vec![Mutation::Duration { key: 0, text: "4294967295 business days".into() }],
            "policy.segments[1].first_touch.A",
        ),
        (
            vec![Mutation::Duration { key: 3, text: "261 business days".into() }],
            "policy.segments[1].disposition.within",
        ),
        (vec![Mutation::CriteriaChain { length: 10_000 }], "policy.definitions"),
        (vec![Mutation::CriteriaDoubling { levels: 40 }], "policy.definitions.criteria"),
        (vec![Mutation::DeepNot { depth: 40 }], "policy.grades[0].when"),
        (vec![Mutation::Hours { calendar: 0, per_day: 90, all_days: false }], "policy.calendars.us_east.hours"),
        (vec![Mutation::Holidays { calendar: 1, count: 4_000, on_mondays: false }], "policy.calendars.emea.holidays"),
        (vec![Mutation::Holidays { calendar: 0, count: 499, on_mondays: false }], "policy.calendars.us_east.holidays"),
        (vec![Mutation::Holidays { calendar: 0, count: 32, on_mondays: false }], "policy.calendars.us_east.holidays"),
        (vec![Mutation::Cadence { touches: 101, business_days: 10 }], "policy.segments[1].cadence.touches"),
        (vec![Mutation::Duration { key: 7, text: "1000x".into() }], "policy.escalation.levels[1].after"),
        (
            vec![
                Mutation::Hours { calendar: 0, per_day: 1, all_days: false },
                Mutation::Duration { key: 2, text: "2000 business hours".into() },
            ],
            "policy.segments[1].sal_decision",
        ),
    ];
    for (mutations, path) in cases {
        let issues = handoff::config::parse(&mutate(&mutations)).err().unwrap_or_default();
        assert!(
            issues.iter().any(|i| i.path.starts_with(path)),
            "{mutations:?} should be refused at {path}: {:?}",
            issues.iter().map(|i| i.to_string()).collect::<Vec<_>>()
        );
    }
}

/// The worst accepted calendar the bounds allow (a dozen windows on one
/// day, every one of those days a holiday for a decade, a window that takes
/// a year of it) stays inside the budget; its cost per step is printed.
#[test]
fn a_step_costs_well_under_the_budget_share() {
    let text = mutate(&[
        Mutation::Hours { calendar: 0, per_day: 12, all_days: false },
        Mutation::Holidays { calendar: 0, count: 500, on_mondays: true },
        Mutation::Duration { key: 3, text: "40 business days".into() },
    ]);
    let case = case();
    let accepted = handoff::config::parse(&text).is_ok();
    let started = std::time::Instant::now();
    let steps = worst_steps(&text, &case);
    let spent = started.elapsed();
    if let Some(steps) = steps {
        println!(
            "worst case: {steps} steps per lead; {:.0} ns per step here (budget {STEP_BUDGET} steps)",
            spent.as_nanos() as f64 / (steps.max(1) * 8) as f64
        );
        assert!(steps <= STEP_BUDGET, "{steps}");
    }
    println!("accepted: {accepted}");
}
