//! Calibration signals: the patterns the articles say an SLA review should
//! act on, found in the scorecard's closed weeks.
//!
//! | signal | fires when | what the articles suggest |
//! |---|---|---|
//! | `reason_streak` | the same agreed rejection reason is the week's top reason (no tie) `reason_streak_weeks` weeks running | marketing has a specific, data-backed signal to adjust its targeting |
//! | `acceptance_high` | MQL→SAL acceptance above `acceptance_above` in each of the last `acceptance_months` months | raise the volume target or tighten the quality criteria |
//! | `first_touch_always_met` | first touch inside the window met every week of the last `met_weeks` weeks | speed-to-lead is consistently met: consider tightening the window |
//! | `commitment_missed` | one commitment missed every week of the last `missed_weeks` weeks | sustained misses: diagnose the root cause and revisit that commitment |
//!
//! A month is the closed weeks starting in it; only months whose every week
//! has closed count. Next to these, [`Signals::comparisons`] puts each
//! commitment of the latest closed week beside the same week a quarter
//! (13 weeks) and a year (52 weeks) earlier, where the data reaches that far.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::config::notify::SignalSettings;
use handoff_model::Owner;

use crate::policy::CompiledPolicy;
use crate::report::{Commitment, Scorecard, Side, Unit, Week};
use crate::store::{LeadState, Store, StoreError, StoredLead};

/// Weeks a scorecard must span for every signal and the year-ago column.
pub const HISTORY_WEEKS: usize = 66;

/// One signal that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// `reason_streak`, `acceptance_high`, `first_touch_always_met`, `commitment_missed`.
    pub id: String,
    /// The reason code or commitment id it is about, when there is one.
    pub subject: Option<String>,
    /// Whose move it is; `None` for the agreement itself.
    pub side: Option<Side>,
    pub headline: String,
    /// The numbers behind it.
    pub evidence: String,
    /// What the articles suggest doing.
    pub suggestion: String,
}

/// A commitment this week beside a quarter and a year ago.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub id: String,
    pub label: String,
    pub side: Side,
    pub unit: Unit,
    pub this_week: Option<f64>,
    pub quarter_ago: Option<f64>,
    pub year_ago: Option<f64>,
}

/// Everything [`evaluate`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// The latest closed week they were judged on.
    pub week_start: Option<NaiveDate>,
    pub fired: Vec<Signal>,
    pub comparisons: Vec<Comparison>,
    /// Whether any week a quarter / a year back has data.
    pub has_quarter_ago: bool,
    pub has_year_ago: bool,
}

/// A month (year, month) and its acceptance (hits, cases, weeks).
type Month<'a> = (&'a (i32, u32), &'a (u64, u64, usize));

/// Every signal id [`evaluate`] knows, for `/metrics`.
pub const SIGNAL_IDS: [&str; 4] = ["reason_streak", "acceptance_high", "first_touch_always_met", "commitment_missed"];

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// The top agreed rejection reason of a week: the one with strictly the most
/// rejections (a tie has no top). Rejections without a reason code, or with
/// one not on the agreed list, say nothing about targeting.
fn top_reason(week: &Week) -> Option<(String, u64, u64)> {
    let reasons = &week.groups.get("all")?.rejection_reasons;
    let total: u64 = reasons.values().sum();
    let agreed: Vec<(&String, &u64)> = reasons.iter().filter(|(r, _)| !r.starts_with('(')).collect();
    let best = agreed.iter().map(|(_, n)| **n).max()?;
    let mut at_best = agreed.iter().filter(|(_, n)| **n == best);
    let (reason, n) = at_best.next()?;
    if at_best.next().is_some() || best == 0 {
        return None;
    }
    Some(((*reason).clone(), **n, total))
}

fn commitment<'a>(week: &'a Week, id: &str) -> Option<&'a Commitment> {
    week.commitments.iter().find(|c| c.id == id)
}

/// Judges `card` (weeks oldest first, spanning up to [`HISTORY_WEEKS`]).
pub fn evaluate(card: &Scorecard, settings: &SignalSettings) -> Signals {
    let closed: Vec<&Week> = card.weeks.iter().filter(|w| !w.partial).collect();
    let Some(latest) = closed.last() else {
        return Signals::default();
    };
    let mut fired = Vec::new();

    // 1. The same top rejection reason N weeks running.
    let n = settings.reason_streak_weeks.max(1) as usize;
    if closed.len() >= n {
        let last_n = &closed[closed.len() - n..];
        let tops: Vec<Option<(String, u64, u64)>> = last_n.iter().map(|w| top_reason(w)).collect();
        if let Some(Some((first, _, _))) = tops.first() {
            if tops.iter().all(|t| t.as_ref().is_some_and(|(r, _, _)| r == first)) {
                let counts: Vec<String> = last_n
                    .iter()
                    .zip(&tops)
                    .filter_map(|(w, t)| t.as_ref().map(|(_, k, total)| format!("{}: {k} of {total}", w.start)))
                    .collect();
                fired.push(Signal {
                    id: "reason_streak".into(),
                    subject: Some(first.clone()),
                    side: Some(Side::Marketing),
                    headline: format!("\"{first}\" was the top rejection reason {n} weeks running"),
                    evidence: format!("rejections with that reason, by week: {}", counts.join("; ")),
                    suggestion: "Marketing has a specific, data-backed signal: adjust the targeting (persona, source, criteria) that sends these leads, and review it with sales.".into(),
                });
            }
        }
    }

    // 2. Acceptance above the threshold for M months running.
    let mut months: BTreeMap<(i32, u32), (u64, u64, usize)> = BTreeMap::new();
    for w in &closed {
        let Some(m) = w.groups.get("all") else { continue };
        let e = months.entry((w.start.year(), w.start.month())).or_default();
        e.0 += m.acceptance.hits;
        e.1 += m.acceptance.cases;
        e.2 += 1;
    }
    // The latest month counts only when every week starting in it has closed.
    if let Some((y, mo)) = months.keys().next_back().copied() {
        let next_week = latest.start + Duration::weeks(1);
        if next_week.month() == mo && next_week.year() == y {
            months.remove(&(y, mo));
        }
    }
    // And the first only when its first week is in the card.
    if let (Some((y, mo)), Some(first)) = (months.keys().next().copied(), closed.first()) {
        let before = first.start - Duration::weeks(1);
        if before.month() == mo && before.year() == y {
            months.remove(&(y, mo));
        }
    }
    let m = settings.acceptance_months.max(1) as usize;
    if months.len() >= m {
        let last_m: Vec<Month<'_>> = months.iter().rev().take(m).collect();
        let above = last_m
            .iter()
            .all(|(_, (hits, cases, _))| *cases > 0 && *hits as f64 / *cases as f64 > settings.acceptance_above + 1e-9);
        if above {
            let evidence: Vec<String> = last_m
                .iter()
                .rev()
                .map(|((y, mo), (h, c, _))| format!("{y}-{mo:02}: {} ({h} of {c})", pct(*h as f64 / *c as f64)))
                .collect();
            fired.push(Signal {
                id: "acceptance_high".into(),
                subject: None,
                side: None,
                headline: format!(
                    "MQL→SAL acceptance was above {} for {m} months running",
                    pct(settings.acceptance_above)
                ),
                evidence: evidence.join("; "),
                suggestion: "Sales accepts nearly everything marketing sends: at the quarterly review either raise the volume target or tighten the quality criteria.".into(),
            });
        }
    }

    // 3. First touch met every week of a quarter.
    let q = settings.met_weeks.max(1) as usize;
    if closed.len() >= q {
        let last_q = &closed[closed.len() - q..];
        let met = last_q.iter().all(|w| commitment(w, "sales.first_touch_in_window").and_then(|c| c.met) == Some(true));
        if met {
            let worst = last_q
                .iter()
                .filter_map(|w| commitment(w, "sales.first_touch_in_window").and_then(|c| c.actual))
                .fold(f64::MAX, f64::min);
            fired.push(Signal {
                id: "first_touch_always_met".into(),
                subject: Some("sales.first_touch_in_window".into()),
                side: None,
                headline: format!("First touch inside the window was met every week for {q} weeks"),
                evidence: format!("weeks {} to {}; the weakest week was {}", last_q[0].start, latest.start, pct(worst)),
                suggestion: "Speed-to-lead is consistently met: consider tightening the first-touch window at the quarterly review.".into(),
            });
        }
    }

    // 4. A commitment missed every week of a month.
    let k = settings.missed_weeks.max(1) as usize;
    if closed.len() >= k {
        let last_k = &closed[closed.len() - k..];
        for c in &latest.commitments {
            let series: Vec<Option<&Commitment>> = last_k.iter().map(|w| commitment(w, &c.id)).collect();
            if series.iter().all(|x| x.and_then(|x| x.met) == Some(false)) {
                let values: Vec<String> =
                    series.iter().flatten().map(|x| crate::report::commitment_text(x, x.actual)).collect();
                fired.push(Signal {
                    id: "commitment_missed".into(),
                    subject: Some(c.id.clone()),
                    side: Some(c.side),
                    headline: format!("{} missed \"{}\" every week for {k} weeks", c.side.as_str(), c.label),
                    evidence: format!(
                        "{} against a target of {}",
                        values.join(", "),
                        crate::report::target_description(c)
                    ),
                    suggestion: "Sustained misses are what the SLA review is for: diagnose the root cause (capacity, routing, data), assign an owner and a date, and revisit the commitment if it no longer fits.".into(),
                });
            }
        }
    }

    // The same weeks of the previous quarter and year.
    let by_start: BTreeMap<NaiveDate, &Week> = card.weeks.iter().map(|w| (w.start, w)).collect();
    let quarter = by_start.get(&(latest.start - Duration::weeks(13)));
    let year = by_start.get(&(latest.start - Duration::weeks(52)));
    let comparisons: Vec<Comparison> = latest
        .commitments
        .iter()
        .map(|c| Comparison {
            id: c.id.clone(),
            label: c.label.clone(),
            side: c.side,
            unit: c.unit,
            this_week: c.actual,
            quarter_ago: quarter.and_then(|w| commitment(w, &c.id)).and_then(|x| x.actual),
            year_ago: year.and_then(|w| commitment(w, &c.id)).and_then(|x| x.actual),
        })
        .collect();
    Signals {
        week_start: Some(latest.start),
        has_quarter_ago: quarter.is_some(),
        has_year_ago: year.is_some(),
        fired,
        comparisons,
    }
}

/// The signals as lines of text (report table, summary, digests).
pub fn render_text(s: &Signals) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    match s.week_start {
        None => {
            let _ = writeln!(out, "  (no closed week yet)");
            return out;
        }
        Some(week) => {
            if s.fired.is_empty() {
                let _ = writeln!(out, "  none as of the week of {week}");
            }
        }
    }
    for f in &s.fired {
        let side = f.side.map(|s| format!(" [{}]", s.as_str())).unwrap_or_default();
        let _ = writeln!(out, "  • {}{side}", f.headline);
        let _ = writeln!(out, "    {}", f.evidence);
        let _ = writeln!(out, "    → {}", f.suggestion);
    }
    if s.has_quarter_ago || s.has_year_ago {
        let _ = writeln!(out, "  same week, earlier:{:>25} {:>12} {:>12}", "this week", "quarter ago", "year ago");
        for c in &s.comparisons {
            let v = |x: Option<f64>| crate::report::value_text(c.unit, x);
            let _ = writeln!(
                out,
                "    {:<40} {:>7} {:>12} {:>12}",
                c.label,
                v(c.this_week),
                if s.has_quarter_ago { v(c.quarter_ago) } else { "–".into() },
                if s.has_year_ago { v(c.year_ago) } else { "–".into() }
            );
        }
    }
    out
}

/// The signals of what the store holds at `now` (over [`HISTORY_WEEKS`]).
pub fn signals_of(
    policy: &CompiledPolicy,
    leads: &[StoredLead],
    states: &BTreeMap<String, LeadState>,
    owners: &[Owner],
    settings: &SignalSettings,
    now: DateTime<Utc>,
) -> Signals {
    let card = super::compute(&super::Input { instance: "", policy, leads, states, owners }, HISTORY_WEEKS, now, None);
    evaluate(&card, settings)
}

/// [`signals_of`] what `store` holds, read a slice of leads at a time.
pub fn signals_in_store(
    policy: &CompiledPolicy,
    store: &Store,
    settings: &SignalSettings,
    now: DateTime<Utc>,
) -> Result<Signals, StoreError> {
    let card = super::from_store("", policy, store, HISTORY_WEEKS, now, None)?;
    Ok(evaluate(&card, settings))
}

/// The signals cached by the daemon, if any.
pub fn cached_signals(store: &Store) -> Result<Option<Signals>, StoreError> {
    Ok(store.meta_text("signals")?.and_then(|t| serde_json::from_str(&t).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Metrics, Ratio};
    use chrono::TimeZone;

    fn week(start: NaiveDate, f: impl Fn(&mut Metrics, &mut Vec<Commitment>)) -> Week {
        let at = Utc.from_utc_datetime(&start.and_hms_opt(5, 0, 0).unwrap_or_default());
        let mut m = Metrics::default();
        let mut cs = vec![Commitment {
            id: "sales.first_touch_in_window".into(),
            side: Side::Sales,
            label: "first touch inside the window".into(),
            target: 0.9,
            actual: Some(0.95),
            met: Some(true),
            unit: Unit::Share,
        }];
        f(&mut m, &mut cs);
        Week {
            start,
            starts_at: at,
            ends_at: at + Duration::weeks(1),
            partial: false,
            groups: BTreeMap::from([("all".to_string(), m)]),
            commitments: cs,
            surges: Vec::new(),
        }
    }

    fn card(weeks: Vec<Week>) -> Scorecard {
        Scorecard {
            instance: "t".into(),
            time_zone: "UTC".into(),
            generated_at: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
            by: None,
            weeks,
            signals: None,
        }
    }

    fn monday(k: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default() + Duration::weeks(k)
    }

    fn ids(s: &Signals) -> Vec<&str> {
        s.fired.iter().map(|f| f.id.as_str()).collect()
    }

    #[test]
    fn a_reason_on_top_three_weeks_running_fires_and_a_tie_breaks_it() {
        let reasons = |r: &[(&str, u64)]| {
            let r: BTreeMap<String, u64> = r.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            move |m: &mut Metrics, cs: &mut Vec<Commitment>| {
                m.rejection_reasons = r.clone();
                cs[0].met = Some(false);
            }
        };
        let s = SignalSettings::default();
        let streak = card(vec![
            week(monday(0), reasons(&[("wrong_persona", 3), ("no_budget", 1)])),
            week(monday(1), reasons(&[("wrong_persona", 2), ("(none)", 5)])),
            week(monday(2), reasons(&[("wrong_persona", 4)])),
        ]);
        let got = evaluate(&streak, &s);
        assert!(got.fired.iter().any(|f| f.id == "reason_streak" && f.subject.as_deref() == Some("wrong_persona")));
        let tie = card(vec![
            week(monday(0), reasons(&[("wrong_persona", 3)])),
            week(monday(1), reasons(&[("wrong_persona", 2), ("no_budget", 2)])),
            week(monday(2), reasons(&[("wrong_persona", 4)])),
        ]);
        assert!(!ids(&evaluate(&tie, &s)).contains(&"reason_streak"));
    }

    #[test]
    fn acceptance_counts_whole_months_only() {
        let accept = |hits: u64, cases: u64| {
            move |m: &mut Metrics, _: &mut Vec<Commitment>| m.acceptance = Ratio { hits, cases }
        };
        let s = SignalSettings::default();
        // Jan 5 .. Apr 27: Jan, Feb, Mar complete; April still running.
        let weeks: Vec<Week> = (0..17).map(|k| week(monday(k), accept(9, 10))).collect();
        assert!(ids(&evaluate(&card(weeks.clone()), &s)).contains(&"acceptance_high"));
        let mut dip = weeks;
        dip[6] = week(monday(6), accept(1, 10)); // a February week
        assert!(!ids(&evaluate(&card(dip), &s)).contains(&"acceptance_high"));
        let short: Vec<Week> = (0..8).map(|k| week(monday(k), accept(9, 10))).collect();
        assert!(!ids(&evaluate(&card(short), &s)).contains(&"acceptance_high"), "two months are not three");
    }

    #[test]
    fn first_touch_met_for_a_quarter_and_a_month_of_misses() {
        let s = SignalSettings::default();
        let met: Vec<Week> = (0..13).map(|k| week(monday(k), |_, _| {})).collect();
        assert!(ids(&evaluate(&card(met.clone()), &s)).contains(&"first_touch_always_met"));
        assert!(!ids(&evaluate(&card(met[1..].to_vec()), &s)).contains(&"first_touch_always_met"));
        let miss = |m: bool| move |_: &mut Metrics, cs: &mut Vec<Commitment>| cs[0].met = Some(m);
        let missed: Vec<Week> = (0..4).map(|k| week(monday(k), miss(false))).collect();
        let got = evaluate(&card(missed), &s);
        assert!(got.fired.iter().any(|f| f.id == "commitment_missed" && f.side == Some(Side::Sales)), "{got:?}");
        let broken: Vec<Week> = (0..4).map(|k| week(monday(k), miss(k == 2))).collect();
        assert!(!ids(&evaluate(&card(broken), &s)).contains(&"commitment_missed"));
    }

    #[test]
    fn comparisons_reach_back_only_as_far_as_the_data() {
        let s = SignalSettings::default();
        let weeks: Vec<Week> = (0..20).map(|k| week(monday(k), |_, _| {})).collect();
        let got = evaluate(&card(weeks), &s);
        assert!(got.has_quarter_ago && !got.has_year_ago);
        assert_eq!(got.comparisons[0].quarter_ago, Some(0.95));
        assert_eq!(got.comparisons[0].year_ago, None);
    }
}
