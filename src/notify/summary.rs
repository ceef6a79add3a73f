//! The weekly summary for the leadership standup, rendered from the same
//! [`Scorecard`] `handoff report` prints: each commitment of the week with
//! its trend arrow against the week before, every missed (red) line with the
//! side that owns it, the streaks that raised an escalation, a few measured
//! numbers, and the calibration [`signals`](super::signals).

use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::Serialize;

use super::signals::{self, Signals};
use super::{esc, slack_esc};
use crate::report::{self, Commitment, Scorecard, Side, Week};

/// Which way a number moved against the week before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Up,
    Down,
    Flat,
    /// No number the week before.
    New,
}

impl Trend {
    pub fn arrow(self) -> &'static str {
        match self {
            Trend::Up => "↑",
            Trend::Down => "↓",
            Trend::Flat => "→",
            Trend::New => "·",
        }
    }

    fn of(now: Option<f64>, before: Option<f64>, eps: f64) -> Trend {
        match (now, before) {
            (Some(a), Some(b)) if a > b + eps => Trend::Up,
            (Some(a), Some(b)) if a + eps < b => Trend::Down,
            (Some(_), Some(_)) => Trend::Flat,
            _ => Trend::New,
        }
    }
}

/// One commitment in the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub id: String,
    pub side: Side,
    pub label: String,
    pub value: String,
    pub target: String,
    pub met: Option<bool>,
    pub trend: Trend,
    pub previous: String,
    /// Weeks running this commitment has been missed (0 when met).
    pub missed_weeks: u32,
}

/// The summary's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub instance: String,
    pub week_start: NaiveDate,
    pub time_zone: String,
    /// The week is still running (only `handoff demo` shows one).
    pub partial: bool,
    pub lines: Vec<Line>,
    /// Misses long enough to have raised the scorecard escalation.
    pub escalation_weeks: u32,
    pub measured: Vec<(String, String, Trend)>,
    pub signals: Signals,
}

fn streak(card: &Scorecard, upto: usize, id: &str) -> u32 {
    card.weeks[..=upto]
        .iter()
        .rev()
        .take_while(|w| w.commitments.iter().find(|c| c.id == id).and_then(|c| c.met) == Some(false))
        .count() as u32
}

/// The summary of `card`'s week starting `week_start` (the latest closed
/// week for the daemon). `None` when the card has no such week.
pub fn compose(card: &Scorecard, week_start: NaiveDate, escalation_weeks: u32, signals: Signals) -> Option<Summary> {
    let idx = card.weeks.iter().position(|w| w.start == week_start)?;
    let week: &Week = &card.weeks[idx];
    let before: Option<&Week> = idx.checked_sub(1).map(|i| &card.weeks[i]);
    let lines = week
        .commitments
        .iter()
        .map(|c| {
            let prev: Option<&Commitment> = before.and_then(|b| b.commitments.iter().find(|x| x.id == c.id));
            let eps = match c.unit {
                report::Unit::Share => 0.005,
                report::Unit::Count => 0.5,
            };
            Line {
                id: c.id.clone(),
                side: c.side,
                label: c.label.clone(),
                value: report::commitment_text(c, c.actual),
                target: report::target_description(c),
                met: c.met,
                trend: Trend::of(c.actual, prev.and_then(|p| p.actual), eps),
                previous: prev.map(|p| report::commitment_text(p, p.actual)).unwrap_or_else(|| "–".into()),
                missed_weeks: streak(card, idx, &c.id),
            }
        })
        .collect();
    let all = week.groups.get("all");
    let prev_all = before.and_then(|b| b.groups.get("all"));
    let minutes = |v: Option<f64>| match v {
        None => "–".to_string(),
        Some(m) if m < 90.0 => format!("{m:.0} min"),
        Some(m) => format!("{:.1} h", m / 60.0),
    };
    let mut measured = Vec::new();
    if let Some(m) = all {
        let p = prev_all;
        measured.push((
            "MQLs delivered (complete data)".to_string(),
            m.mqls.to_string(),
            Trend::of(Some(m.mqls as f64), p.map(|p| p.mqls as f64), 0.5),
        ));
        measured.push((
            "speed to first touch, median (business)".to_string(),
            minutes(m.first_touch_business_minutes.median),
            Trend::of(
                m.first_touch_business_minutes.median,
                p.and_then(|p| p.first_touch_business_minutes.median),
                0.5,
            ),
        ));
        measured.push((
            "MQL → SAL acceptance".to_string(),
            report::value_text(report::Unit::Share, m.acceptance.rate()),
            Trend::of(m.acceptance.rate(), p.and_then(|p| p.acceptance.rate()), 0.005),
        ));
        measured.push((
            "lead → opportunity (cohort, to date)".to_string(),
            report::value_text(report::Unit::Share, m.opportunity.rate()),
            Trend::of(m.opportunity.rate(), p.and_then(|p| p.opportunity.rate()), 0.005),
        ));
        // A declared surge: its leads' first touches, kept out of the commitment.
        if !week.surges.is_empty() || !m.first_touch_in_window_surge.is_empty() {
            let names = if week.surges.is_empty() { "earlier surge".to_string() } else { week.surges.join(", ") };
            measured.push((
                format!("surge leads touched in window ({names})"),
                report::value_text(report::Unit::Share, m.first_touch_in_window_surge.rate()),
                Trend::of(
                    m.first_touch_in_window_surge.rate(),
                    p.and_then(|p| p.first_touch_in_window_surge.rate()),
                    0.005,
                ),
            ));
        }
    }
    Some(Summary {
        instance: card.instance.clone(),
        week_start,
        time_zone: card.time_zone.clone(),
        partial: week.partial,
        lines,
        escalation_weeks: escalation_weeks.max(1),
        measured,
        signals,
    })
}

fn mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "no cases",
    }
}

impl Summary {
    pub fn subject(&self) -> String {
        let missed = self.lines.iter().filter(|l| l.met == Some(false)).count();
        let to_date = if self.partial { " (to date)" } else { "" };
        format!(
            "SLA weekly summary, week of {}{to_date}: {missed} red line(s), {} signal(s) ({})",
            self.week_start.format("%b %-d"),
            self.signals.fired.len(),
            self.instance
        )
    }

    fn red(&self) -> Vec<&Line> {
        self.lines.iter().filter(|l| l.met == Some(false)).collect()
    }

    fn escalated(&self) -> Vec<&Line> {
        self.lines.iter().filter(|l| l.missed_weeks >= self.escalation_weeks).collect()
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.subject());
        let _ = writeln!(out, "Weeks start in {}; arrows compare with the week before.", self.time_zone);
        for side in [Side::Marketing, Side::Sales] {
            let _ = writeln!(out);
            let _ = writeln!(out, "{} COMMITS TO", side.as_str().to_uppercase());
            for l in self.lines.iter().filter(|l| l.side == side) {
                let _ = writeln!(
                    out,
                    "  {} {:<40} {:>6} (target {}, last week {}) {}",
                    l.trend.arrow(),
                    l.label,
                    l.value,
                    l.target,
                    l.previous,
                    mark(l.met)
                );
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "RED LINES (owner: the side that committed)");
        let red = self.red();
        if red.is_empty() {
            let _ = writeln!(out, "  none: every commitment with cases was met");
        }
        for l in red {
            let _ = writeln!(
                out,
                "  [{}] {}: {} against {}, missed {} week(s) running",
                l.side.as_str(),
                l.label,
                l.value,
                l.target,
                l.missed_weeks
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "STREAK ESCALATIONS ({} weeks running or more)", self.escalation_weeks);
        let esc = self.escalated();
        if esc.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for l in esc {
            let _ = writeln!(
                out,
                "  [{}] {}: missed {} weeks running; the named leaders have a task to assign an owner and a date",
                l.side.as_str(),
                l.label,
                l.missed_weeks
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "MEASURED");
        for (label, value, trend) in &self.measured {
            let _ = writeln!(out, "  {} {label:<40} {value:>8}", trend.arrow());
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "SIGNALS");
        out.push_str(&signals::render_text(&self.signals));
        out
    }

    pub fn html(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body><div class=\"wrap\">",
            esc(&self.subject()),
            super::digest::STYLE
        );
        let _ = write!(
            out,
            "<h1>{}</h1><p class=\"sub\">Weeks start in {}; arrows compare with the week before.</p>",
            esc(&self.subject()),
            esc(&self.time_zone)
        );
        for side in [Side::Marketing, Side::Sales] {
            let _ = write!(
                out,
                "<h2>{} commits to</h2><table><tr><th></th><th>Commitment</th><th>This week</th><th>Target</th><th>Last week</th><th>Status</th></tr>",
                if side == Side::Marketing { "Marketing" } else { "Sales" }
            );
            for l in self.lines.iter().filter(|l| l.side == side) {
                let cls = match l.met {
                    Some(true) => "met",
                    Some(false) => "missed",
                    None => "none",
                };
                let dir = match l.trend {
                    Trend::Up => "up",
                    Trend::Down => "down",
                    _ => "flat",
                };
                let _ = write!(
                    out,
                    "<tr class=\"{cls}\"><td class=\"{dir}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"st\">{}</td></tr>",
                    l.trend.arrow(),
                    esc(&l.label),
                    esc(&l.value),
                    esc(&l.target),
                    esc(&l.previous),
                    mark(l.met)
                );
            }
            out.push_str("</table>");
        }
        out.push_str("<h2>Red lines</h2>");
        let red = self.red();
        if red.is_empty() {
            out.push_str("<p>None: every commitment with cases was met.</p>");
        } else {
            out.push_str("<table><tr><th>Owner</th><th>Commitment</th><th>This week</th><th>Weeks running</th></tr>");
            for l in red {
                let _ = write!(
                    out,
                    "<tr class=\"missed\"><td>{}</td><td>{}</td><td class=\"st\">{} against {}</td><td>{}</td></tr>",
                    l.side.as_str(),
                    esc(&l.label),
                    esc(&l.value),
                    esc(&l.target),
                    l.missed_weeks
                );
            }
            out.push_str("</table>");
        }
        let _ = write!(out, "<h2>Streak escalations ({} weeks running or more)</h2>", self.escalation_weeks);
        let escalated = self.escalated();
        if escalated.is_empty() {
            out.push_str("<p>None.</p>");
        }
        for l in escalated {
            let _ = write!(
                out,
                "<p class=\"signal\"><b>{}</b> missed <b>{}</b> {} weeks running: the named leaders have a task to assign an owner and a date.</p>",
                l.side.as_str(),
                esc(&l.label),
                l.missed_weeks
            );
        }
        out.push_str("<h2>Measured</h2><table>");
        for (label, value, trend) in &self.measured {
            let _ = write!(out, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", trend.arrow(), esc(label), esc(value));
        }
        out.push_str("</table><h2>Signals</h2>");
        if self.signals.fired.is_empty() {
            out.push_str("<p>None this week.</p>");
        }
        for s in &self.signals.fired {
            let _ = write!(
                out,
                "<div class=\"signal\"><b>{}</b>{}<br>{}<br><i>{}</i></div>",
                esc(&s.headline),
                s.side.map(|x| format!(" [{}]", x.as_str())).unwrap_or_default(),
                esc(&s.evidence),
                esc(&s.suggestion)
            );
        }
        out.push_str(
            "<p class=\"foot\">From the same numbers as <code>handoff report</code>.</p></div></body></html>\n",
        );
        out
    }

    pub fn slack(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "*{}*", slack_esc(&self.subject()));
        for side in [Side::Marketing, Side::Sales] {
            let _ = writeln!(out, "*{}*", if side == Side::Marketing { "Marketing" } else { "Sales" });
            for l in self.lines.iter().filter(|l| l.side == side) {
                let flag = if l.met == Some(false) { " :red_circle:" } else { "" };
                let _ = writeln!(
                    out,
                    "{} {} *{}* (target {}){flag}",
                    l.trend.arrow(),
                    slack_esc(&l.label),
                    slack_esc(&l.value),
                    slack_esc(&l.target)
                );
            }
        }
        let escalated = self.escalated();
        if !escalated.is_empty() {
            let _ = writeln!(out, "*Streak escalations*");
            for l in escalated {
                let _ = writeln!(
                    out,
                    "• {} missed \"{}\" {} weeks running",
                    l.side.as_str(),
                    slack_esc(&l.label),
                    l.missed_weeks
                );
            }
        }
        if !self.signals.fired.is_empty() {
            let _ = writeln!(out, "*Signals*");
            for s in &self.signals.fired {
                let _ = writeln!(out, "• {} — {}", slack_esc(&s.headline), slack_esc(&s.suggestion));
            }
        }
        out
    }
}
