//! The weekly escalation: when the same side misses the same commitment
//! `scorecard.consecutive_weeks` weeks running, the leaders named in
//! `scorecard.notify` get a task — once per streak. The action key names the
//! streak's first week, so a third missed week finds the task already in the
//! ledger; a met week ends the streak, and the next streak has a new key.

use chrono::{Duration, NaiveDate};
use handoff_model::{Action, ActionKind, TaskPriority, TaskPurpose};

use super::{render, Commitment, Week};
use crate::engine::keys;
use crate::policy::CompiledPolicy;
use crate::store::WeekRecord;

/// The record kept for a commitment's closed week.
pub fn record_of(week: &Week, c: &Commitment) -> WeekRecord {
    WeekRecord { week_start: week.start, met: c.met != Some(false), actual: c.actual, target: Some(c.target) }
}

/// The escalations `week` (closed) raises. `earlier(commitment, week_start)`
/// gives the records of weeks before it.
pub fn escalations(
    policy: &CompiledPolicy,
    instance: &str,
    week: &Week,
    earlier: &dyn Fn(&str, NaiveDate) -> Option<WeekRecord>,
) -> Vec<Action> {
    if !policy.enforcement.enforces(week.ends_at) {
        // A week over before enforcement began is measured, not escalated.
        return Vec::new();
    }
    let needed = policy.scorecard.consecutive_weeks.max(1);
    let mut out = Vec::new();
    for c in week.commitments.iter().filter(|c| c.met == Some(false)) {
        // How many weeks, ending with this one, missed this commitment.
        let mut streak = 1u32;
        let mut first = week.start;
        while streak < needed {
            let before = first - Duration::weeks(1);
            match earlier(&c.id, before) {
                Some(r) if !r.met => {
                    streak += 1;
                    first = before;
                }
                _ => break,
            }
        }
        if streak < needed {
            continue;
        }
        // The streak may be longer than needed: its key is its first week.
        loop {
            let before = first - Duration::weeks(1);
            match earlier(&c.id, before) {
                Some(r) if !r.met => first = before,
                _ => break,
            }
        }
        let side = c.side.as_str();
        for leader in &policy.scorecard.notify {
            out.push(Action {
                key: keys::scorecard_key(&c.id, first, leader, policy.version),
                lead_id: String::new(),
                kind: ActionKind::CreateTask {
                    assignee_id: leader.clone(),
                    subject: format!("SLA scorecard: {side} missed \"{}\" {needed} weeks running", c.label),
                    body: format!(
                        "{instance}: {} was {} against a target of {} in the week of {} and in the {} week(s) before. The agreement says a side missing the same commitment {needed} weeks running is the first item of the next alignment meeting: assign an owner and a date. (`handoff report` shows the trend.)",
                        c.label,
                        render::commitment_value(c, c.actual),
                        render::target_text(c),
                        week.start,
                        needed - 1,
                    ),
                    due_at: week.ends_at + Duration::days(2),
                    priority: TaskPriority::High,
                    purpose: TaskPurpose::ScorecardEscalation,
                    on_opportunity: None,
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::report::{Side, Unit};

    fn policy() -> CompiledPolicy {
        let mut p = crate::config::parse(include_str!("../../config/salesforce.example.toml"))
            .expect("the example is valid")
            .policy;
        p.scorecard.notify = vec!["VP_M".into(), "VP_S".into()];
        p
    }

    fn week(start: NaiveDate, met: bool) -> Week {
        let starts_at = Utc.from_utc_datetime(&start.and_hms_opt(5, 0, 0).unwrap());
        Week {
            start,
            starts_at,
            ends_at: starts_at + Duration::weeks(1),
            partial: false,
            groups: BTreeMap::new(),
            commitments: vec![Commitment {
                id: "sales.first_touch_in_window".into(),
                side: Side::Sales,
                label: "first touch inside the window".into(),
                target: 0.9,
                actual: Some(if met { 0.95 } else { 0.7 }),
                met: Some(met),
                unit: Unit::Share,
            }],
            surges: Vec::new(),
        }
    }

    /// Runs `weeks` (met or missed) through the rule as the daemon does:
    /// records each week, then asks which escalations it raises.
    fn run(weeks: &[bool]) -> Vec<Vec<String>> {
        let p = policy();
        let first = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let mut records: BTreeMap<(String, NaiveDate), WeekRecord> = BTreeMap::new();
        let mut raised = Vec::new();
        for (i, met) in weeks.iter().enumerate() {
            let w = week(first + Duration::weeks(i as i64), *met);
            let lookup = |id: &str, at: NaiveDate| records.get(&(id.to_string(), at)).cloned();
            raised.push(escalations(&p, "acme", &w, &lookup).into_iter().map(|a| a.key.0).collect());
            for c in &w.commitments {
                records.insert((c.id.clone(), w.start), record_of(&w, c));
            }
        }
        raised
    }

    #[test]
    fn two_missed_weeks_raise_one_task_per_leader_and_a_third_the_same_keys() {
        let raised = run(&[false, false, false]);
        assert!(raised[0].is_empty(), "one missed week is not a streak");
        assert_eq!(raised[1].len(), 2, "one task per leader: {:?}", raised[1]);
        // The third week names the same streak: the ledger already has these keys.
        assert_eq!(raised[2], raised[1]);
        assert!(raised[1][0].contains("2026-03-02") || raised[1][0].contains("20260302"), "{:?}", raised[1]);
    }

    #[test]
    fn a_met_week_ends_the_streak_and_the_next_streak_is_new() {
        let raised = run(&[false, false, true, false, false]);
        assert!(raised[2].is_empty() && raised[3].is_empty());
        assert_eq!(raised[4].len(), 2);
        assert_ne!(raised[4], raised[1], "a new streak is a new escalation");
    }

    #[test]
    fn weeks_without_cases_neither_miss_nor_extend() {
        let p = policy();
        let mut w = week(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(), false);
        w.commitments[0].met = None;
        w.commitments[0].actual = None;
        let missed_before = |_: &str, _: NaiveDate| {
            Some(WeekRecord { week_start: NaiveDate::MIN, met: false, actual: None, target: None })
        };
        assert!(escalations(&p, "acme", &w, &missed_before).is_empty());
        assert!(record_of(&w, &w.commitments[0]).met, "no cases is not a miss");
    }
}
