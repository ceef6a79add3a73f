//! The scorecard as a terminal table and as CSV.

use std::fmt::Write as _;

use super::{Commitment, Metrics, Ratio, Scorecard, Side, Spread, Unit};

/// Eight levels of a block bar, for a trend in one line.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn spark(values: &[Option<f64>]) -> String {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let (lo, hi) = present.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    values
        .iter()
        .map(|v| match v {
            None => ' ',
            Some(v) if hi - lo < 1e-9 => SPARKS[3],
            Some(v) => SPARKS[(((v - lo) / (hi - lo)) * 7.0).round().clamp(0.0, 7.0) as usize],
        })
        .collect()
}

pub(super) fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.0}%", x * 100.0)).unwrap_or_else(|| "–".to_string())
}

fn minutes(v: Option<f64>) -> String {
    match v {
        None => "–".to_string(),
        Some(m) if m < 90.0 => format!("{m:.0}m"),
        Some(m) => format!("{:.1}h", m / 60.0),
    }
}

pub(super) fn commitment_value(c: &Commitment, v: Option<f64>) -> String {
    match c.unit {
        Unit::Share => pct(v),
        Unit::Count => v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into()),
    }
}

pub(super) fn target_text(c: &Commitment) -> String {
    match c.unit {
        Unit::Share => format!("≥{:.0}%", c.target * 100.0),
        Unit::Count => format!("≥{:.1}", c.target),
    }
}

/// The terminal table: commitments by week with met/missed marks and a
/// trend, the measured numbers under them, and the breakdown when asked.
pub fn render_table(card: &Scorecard) -> String {
    let mut out = String::new();
    let weeks = &card.weeks;
    let _ = writeln!(out, "handoff scorecard: {} (weeks start in {}; * = week to date)", card.instance, card.time_zone);
    let head: Vec<String> =
        weeks.iter().map(|w| format!("{}{}", w.start.format("%m-%d"), if w.partial { "*" } else { "" })).collect();
    let _ = writeln!(
        out,
        "{:<42} {:>7} {}  trend",
        "",
        "target",
        head.iter().map(|h| format!("{h:>8}")).collect::<String>()
    );
    let Some(last) = weeks.last() else { return out };
    // The target column shows a whole week's target (a week to date is
    // judged against its prorated share, which the cells reflect).
    let reference = weeks.iter().rev().find(|w| !w.partial).unwrap_or(last);
    for side in [Side::Marketing, Side::Sales] {
        let _ = writeln!(out, "{}", side.as_str().to_uppercase());
        for c in last.commitments.iter().filter(|c| c.side == side) {
            let shown_target = reference.commitments.iter().find(|x| x.id == c.id).unwrap_or(c);
            let series: Vec<Option<&Commitment>> =
                weeks.iter().map(|w| w.commitments.iter().find(|x| x.id == c.id)).collect();
            let cells: String = series
                .iter()
                .map(|x| match x {
                    Some(x) => {
                        let mark = match x.met {
                            Some(true) => ' ',
                            Some(false) => '✗',
                            None => ' ',
                        };
                        format!("{:>7}{mark}", commitment_value(x, x.actual))
                    }
                    None => format!("{:>8}", "–"),
                })
                .collect();
            let trend = spark(&series.iter().map(|x| x.and_then(|x| x.actual)).collect::<Vec<_>>());
            let _ = writeln!(out, "  {:<40} {:>7} {cells}  {trend}", c.label, target_text(shown_target));
        }
    }
    let all: Vec<&Metrics> = weeks.iter().filter_map(|w| w.groups.get("all")).collect();
    let row = |out: &mut String, label: &str, f: &dyn Fn(&Metrics) -> String| {
        let cells: String = all.iter().map(|m| format!("{:>8}", f(m))).collect();
        let _ = writeln!(out, "  {label:<40} {:>7} {cells}", "");
    };
    let _ = writeln!(out, "MEASURED");
    row(&mut out, "MQLs delivered (complete data)", &|m| m.mqls.to_string());
    row(&mut out, "speed to first touch, median (business)", &|m| minutes(m.first_touch_business_minutes.median));
    row(&mut out, "speed to first touch, p90 (business)", &|m| minutes(m.first_touch_business_minutes.p90));
    row(&mut out, "first touch ended before any touch", &|m| m.first_touch_ended.to_string());
    row(&mut out, "routing time, median", &|m| minutes(m.routing_minutes.median));
    row(&mut out, "lead → opportunity (cohort, to date)", &|m| pct(m.opportunity.rate()));
    // The AE's commitments, when a segment sets them.
    if all.iter().any(|m| !m.discovery_in_window.is_empty() || !m.opportunity_in_window.is_empty()) {
        row(&mut out, "AE: discovery booked inside the window", &|m| pct(m.discovery_in_window.rate()));
        row(&mut out, "AE: opportunity created inside the window", &|m| pct(m.opportunity_in_window.rate()));
    }
    // Surges: the weeks they touch (declared) or their leads arrived in
    // (detected), and their leads' first touches (judged on the relaxed
    // windows, kept out of the commitment above).
    if weeks.iter().any(|w| !w.surges.is_empty()) || all.iter().any(|m| !m.first_touch_in_window_surge.is_empty()) {
        row(&mut out, "surge leads touched inside the window", &|m| pct(m.first_touch_in_window_surge.rate()));
        let _ = writeln!(out, "SURGES");
        for w in weeks.iter().filter(|w| !w.surges.is_empty()) {
            let _ = writeln!(out, "  {} {}", w.start.format("week of %Y-%m-%d:"), w.surges.join(", "));
        }
    }
    let _ = writeln!(out, "REJECTION REASONS ({})", last.start.format("week of %Y-%m-%d"));
    let reasons = &last.groups.get("all").map(|m| m.rejection_reasons.clone()).unwrap_or_default();
    if reasons.is_empty() {
        let _ = writeln!(out, "  (no rejections)");
    }
    for (reason, n) in reasons {
        let _ = writeln!(out, "  {reason:<40} {n:>7}");
    }
    if let Some(signals) = &card.signals {
        let _ = writeln!(out, "SIGNALS");
        out.push_str(&super::signals::render_text(signals));
    }
    if let Some(by) = card.by {
        let _ = writeln!(out, "BY {:?} ({})", by, last.start.format("week of %Y-%m-%d")).map(|_| ());
        let _ = writeln!(
            out,
            "  {:<38} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "", "MQLs", "touch ok", "speed", "cadence", "dispo", "reasons", "opp"
        );
        for (group, m) in last.groups.iter().filter(|(g, _)| g.as_str() != "all") {
            let _ = writeln!(
                out,
                "  {:<38} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                truncate(group, 38),
                m.mqls,
                pct(m.first_touch_in_window.rate()),
                minutes(m.first_touch_business_minutes.median),
                pct(m.follow_up_completion.rate()),
                pct(m.disposition_in_window.rate()),
                pct(m.feedback_quality.rate()),
                pct(m.opportunity.rate()),
            );
        }
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn ratio_rows(rows: &mut Vec<[String; 7]>, week: &str, group: &str, metric: &str, r: &Ratio) {
    rows.push([
        week.into(),
        group.into(),
        metric.into(),
        r.rate().map(|v| format!("{v:.4}")).unwrap_or_default(),
        r.hits.to_string(),
        r.cases.to_string(),
        String::new(),
    ]);
}

fn spread_rows(rows: &mut Vec<[String; 7]>, week: &str, group: &str, metric: &str, s: &Spread) {
    for (q, v) in [("median", s.median), ("p90", s.p90)] {
        rows.push([
            week.into(),
            group.into(),
            format!("{metric}_{q}"),
            v.map(|v| format!("{v:.1}")).unwrap_or_default(),
            String::new(),
            s.count.to_string(),
            String::new(),
        ]);
    }
}

/// Long-format CSV, one row per week, group and metric:
/// `week_start,group,metric,value,hits,cases,target` (commitments carry
/// their target and a `met` row).
pub fn render_csv(card: &Scorecard) -> String {
    let mut rows: Vec<[String; 7]> = Vec::new();
    for w in &card.weeks {
        let week = w.start.to_string();
        for name in &w.surges {
            rows.push([
                week.clone(),
                "all".into(),
                "surge".into(),
                name.clone(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for c in &w.commitments {
            rows.push([
                week.clone(),
                "all".into(),
                c.id.clone(),
                c.actual.map(|v| format!("{v:.4}")).unwrap_or_default(),
                String::new(),
                String::new(),
                format!("{:.4}", c.target),
            ]);
            rows.push([
                week.clone(),
                "all".into(),
                format!("{}.met", c.id),
                c.met.map(|m| m.to_string()).unwrap_or_default(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for (group, m) in &w.groups {
            rows.push([
                week.clone(),
                group.clone(),
                "mqls".into(),
                m.mqls.to_string(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            for (grade, n) in &m.mqls_by_grade {
                rows.push([
                    week.clone(),
                    group.clone(),
                    format!("mqls.{grade}"),
                    n.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
            ratio_rows(&mut rows, &week, group, "data_completeness", &m.data_completeness);
            ratio_rows(&mut rows, &week, group, "routing_in_window", &m.routing_in_window);
            spread_rows(&mut rows, &week, group, "routing_minutes", &m.routing_minutes);
            ratio_rows(&mut rows, &week, group, "acceptance", &m.acceptance);
            spread_rows(&mut rows, &week, group, "first_touch_business_minutes", &m.first_touch_business_minutes);
            ratio_rows(&mut rows, &week, group, "first_touch_in_window", &m.first_touch_in_window);
            if !m.discovery_in_window.is_empty() {
                ratio_rows(&mut rows, &week, group, "discovery_in_window", &m.discovery_in_window);
            }
            if !m.opportunity_in_window.is_empty() {
                ratio_rows(&mut rows, &week, group, "opportunity_in_window", &m.opportunity_in_window);
            }
            if !m.first_touch_in_window_surge.is_empty() {
                ratio_rows(&mut rows, &week, group, "first_touch_in_window_surge", &m.first_touch_in_window_surge);
            }
            rows.push([
                week.clone(),
                group.clone(),
                "first_touch_ended".into(),
                m.first_touch_ended.to_string(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            ratio_rows(&mut rows, &week, group, "follow_up_completion", &m.follow_up_completion);
            ratio_rows(&mut rows, &week, group, "disposition_in_window", &m.disposition_in_window);
            ratio_rows(&mut rows, &week, group, "feedback_quality", &m.feedback_quality);
            for (reason, n) in &m.rejection_reasons {
                rows.push([
                    week.clone(),
                    group.clone(),
                    format!("rejection_reason.{reason}"),
                    n.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
            ratio_rows(&mut rows, &week, group, "opportunity", &m.opportunity);
            for (grade, r) in &m.opportunity_by_grade {
                ratio_rows(&mut rows, &week, group, &format!("opportunity.{grade}"), r);
            }
        }
    }
    let mut out = String::from("week_start,group,metric,value,hits,cases,target\n");
    for r in rows {
        let _ = writeln!(out, "{}", r.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
    }
    out
}
