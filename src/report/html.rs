//! The scorecard as one self-contained HTML page (no script, no network):
//! a card per commitment with the latest week large, met or missed at a
//! glance, and its trend drawn as SVG against the target. Readable across a
//! sales floor on a TV.

use std::fmt::Write as _;

use super::render::{commitment_value, pct, target_text};
use super::{Commitment, Metrics, Scorecard, Side, Unit};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A trend line of `values` (one per week) with a dashed target line.
fn chart(values: &[Option<f64>], target: Option<f64>, unit: Unit, labels: &[String]) -> String {
    let (w, h, pad_l, pad_r, pad_t, pad_b) = (520.0_f64, 200.0_f64, 56.0, 40.0, 12.0, 28.0);
    let present: Vec<f64> = values.iter().flatten().copied().chain(target).collect();
    let (mut lo, mut hi) = match unit {
        Unit::Share => (0.0, 1.0),
        Unit::Count => (0.0, present.iter().copied().fold(1.0_f64, f64::max) * 1.15),
    };
    if hi - lo < 1e-9 {
        lo -= 0.5;
        hi += 0.5;
    }
    let n = values.len().max(1);
    let x = |i: usize| pad_l + (w - pad_l - pad_r) * if n == 1 { 0.5 } else { i as f64 / (n - 1) as f64 };
    let y = |v: f64| pad_t + (h - pad_t - pad_b) * (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
    let mut svg = String::new();
    let _ = write!(svg, r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="trend">"#);
    for frac in [0.0, 0.5, 1.0] {
        let v = lo + (hi - lo) * frac;
        let label = match unit {
            Unit::Share => format!("{:.0}%", v * 100.0),
            Unit::Count => format!("{v:.0}"),
        };
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{pad_l}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
            w - pad_r,
            pad_l - 6.0,
            y(v) + 5.0,
            y = y(v)
        );
    }
    if let Some(t) = target {
        let _ =
            write!(svg, r#"<line class="target" x1="{pad_l}" x2="{}" y1="{y:.1}" y2="{y:.1}"/>"#, w - pad_r, y = y(t));
    }
    let points: Vec<String> =
        values.iter().enumerate().filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v)))).collect();
    if points.len() > 1 {
        let _ = write!(svg, r#"<polyline class="line" points="{}"/>"#, points.join(" "));
    }
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let miss = target.is_some_and(|t| *v + 1e-9 < t);
            let _ = write!(
                svg,
                r#"<circle class="{}" cx="{:.1}" cy="{:.1}" r="6"/>"#,
                if miss { "dot miss" } else { "dot" },
                x(i),
                y(*v)
            );
        }
        if let Some(l) = labels.get(i) {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x(i),
                h - 6.0,
                esc(l)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn card_html(c: &Commitment, series: &[Option<f64>], labels: &[String]) -> String {
    let state = match c.met {
        Some(true) => ("met", "met"),
        Some(false) => ("missed", "missed"),
        None => ("none", "no cases"),
    };
    format!(
        r#"<section class="card {cls}"><h3>{label}</h3><div class="big">{value}<span class="state">{word}</span></div><div class="target">target {target}</div>{chart}</section>"#,
        cls = state.0,
        label = esc(&c.label),
        value = esc(&commitment_value(c, c.actual)),
        word = state.1,
        target = esc(&target_text(c)),
        chart = chart(series, Some(c.target), c.unit, labels),
    )
}

const STYLE: &str = r#"
body{margin:0;padding:24px 32px;background:#0f1720;color:#e8eef5;font:18px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
h1{font-size:34px;margin:0 0 4px}h2{font-size:26px;margin:28px 0 12px;letter-spacing:.04em;text-transform:uppercase;color:#9fb3c8}
.sub{color:#9fb3c8;margin-bottom:8px}
.grid-cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:18px}
.card{background:#17222e;border-radius:14px;padding:16px 18px;border-left:10px solid #5b6b7b}
.card.met{border-left-color:#2fbf71}.card.missed{border-left-color:#ff5d5d}
.card h3{margin:0;font-size:22px;font-weight:600}
.big{font-size:52px;font-weight:700;margin:4px 0}.state{font-size:20px;margin-left:14px;font-weight:600;color:#9fb3c8}
.card.met .state{color:#2fbf71}.card.missed .state{color:#ff5d5d}
.target{color:#9fb3c8;margin-bottom:6px}
svg.chart{width:100%;height:auto}
.chart .grid{stroke:#2a3948;stroke-width:1}.chart .axis{fill:#9fb3c8;font-size:14px}
.chart .target{stroke:#f2c14e;stroke-width:2.5;stroke-dasharray:8 6}
.chart .line{fill:none;stroke:#5ab0ff;stroke-width:4}
.chart .dot{fill:#5ab0ff}.chart .dot.miss{fill:#ff5d5d}
table{border-collapse:collapse;width:100%;font-size:18px}th,td{padding:6px 10px;text-align:right;border-bottom:1px solid #2a3948}
th:first-child,td:first-child{text-align:left}th{color:#9fb3c8;font-weight:600}
"#;

/// Larger type for a screen across the room; no table of numbers the room
/// cannot read from there.
const TV_STYLE: &str = r#"
body.tv{padding:2vh 2.5vw;font-size:1.6vw;overflow:hidden}
body.tv h1{font-size:3vw}body.tv h2{font-size:2vw;margin:2vh 0 1vh}body.tv .sub{font-size:1.3vw}
body.tv .grid-cards{grid-template-columns:repeat(auto-fill,minmax(30vw,1fr));gap:1.2vw}
body.tv .card h3{font-size:1.8vw}body.tv .big{font-size:4.6vw}body.tv .state{font-size:1.7vw}
body.tv .target{font-size:1.4vw}body.tv .signal{font-size:1.5vw}
.signal{background:#2b2411;border-left:10px solid #f2c14e;border-radius:10px;padding:10px 14px;margin:8px 0}
"#;

/// The whole page.
pub fn render_html(card: &Scorecard) -> String {
    page(card, false)
}

/// The TV view (`/scorecard?tv`): full screen, large type, refreshing
/// itself every minute, the latest week's commitments and the signals.
pub fn render_tv(card: &Scorecard) -> String {
    page(card, true)
}

fn signals_html(out: &mut String, card: &Scorecard) {
    let Some(signals) = &card.signals else { return };
    out.push_str("<h2>Signals</h2>");
    if signals.fired.is_empty() {
        out.push_str("<div class=\"sub\">None this week.</div>");
    }
    for s in &signals.fired {
        let _ = write!(
            out,
            "<div class=\"signal\"><b>{}</b>{}<br>{}<br><i>{}</i></div>",
            esc(&s.headline),
            s.side.map(|x| format!(" [{}]", x.as_str())).unwrap_or_default(),
            esc(&s.evidence),
            esc(&s.suggestion)
        );
    }
    if signals.has_quarter_ago || signals.has_year_ago {
        out.push_str("<h2>Same week, earlier</h2><table><tr><th>commitment</th><th>this week</th><th>a quarter ago</th><th>a year ago</th></tr>");
        for c in &signals.comparisons {
            let v = |x: Option<f64>| esc(&super::value_text(c.unit, x));
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.label),
                v(c.this_week),
                v(c.quarter_ago),
                v(c.year_ago)
            );
        }
        out.push_str("</table>");
    }
}

fn page(card: &Scorecard, tv: bool) -> String {
    let mut out = String::new();
    let labels: Vec<String> =
        card.weeks.iter().map(|w| format!("{}{}", w.start.format("%b %d"), if w.partial { "*" } else { "" })).collect();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{refresh}<title>SLA scorecard · {inst}</title><style>{STYLE}{TV_STYLE}</style></head><body{class}>",
        inst = esc(&card.instance),
        refresh = if tv { "<meta http-equiv=\"refresh\" content=\"60\">" } else { "" },
        class = if tv { " class=\"tv\"" } else { "" },
    );
    let latest = card.weeks.last();
    let _ = write!(
        out,
        "<h1>Marketing ↔ Sales SLA scorecard</h1><div class=\"sub\">{} · {} weeks · weeks start in {} · generated {}{}</div>",
        esc(&card.instance),
        card.weeks.len(),
        esc(&card.time_zone),
        card.generated_at.format("%Y-%m-%d %H:%M UTC"),
        if latest.is_some_and(|w| w.partial) { " · * week to date" } else { "" }
    );
    if let Some(last) = latest {
        for side in [Side::Marketing, Side::Sales] {
            let title = match side {
                Side::Marketing => "Marketing commits to",
                Side::Sales => "Sales commits to",
            };
            let _ = write!(out, "<h2>{title}</h2><div class=\"grid-cards\">");
            for c in last.commitments.iter().filter(|c| c.side == side) {
                let series: Vec<Option<f64>> = card
                    .weeks
                    .iter()
                    .map(|w| w.commitments.iter().find(|x| x.id == c.id).and_then(|x| x.actual))
                    .collect();
                out.push_str(&card_html(c, &series, &labels));
            }
            out.push_str("</div>");
        }
        signals_html(&mut out, card);
        if tv {
            out.push_str("</body></html>\n");
            return out;
        }
        out.push_str("<h2>Measured</h2><div class=\"grid-cards\">");
        let all: Vec<Option<&Metrics>> = card.weeks.iter().map(|w| w.groups.get("all")).collect();
        type Measure = fn(&Metrics) -> Option<f64>;
        let measured: [(&str, Measure, Unit); 3] = [
            ("Speed to first touch, median (business minutes)", |m| m.first_touch_business_minutes.median, Unit::Count),
            ("Lead → opportunity (cohort, to date)", |m| m.opportunity.rate(), Unit::Share),
            ("MQLs delivered (complete data)", |m| Some(m.mqls as f64), Unit::Count),
        ];
        for (label, f, unit) in measured.iter() {
            let series: Vec<Option<f64>> = all.iter().map(|m| m.and_then(f)).collect();
            let now = series.last().copied().flatten();
            let value = match unit {
                Unit::Share => pct(now),
                Unit::Count => now.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into()),
            };
            let _ = write!(
                out,
                r#"<section class="card"><h3>{}</h3><div class="big">{}</div>{}</section>"#,
                esc(label),
                esc(&value),
                chart(&series, None, *unit, &labels)
            );
        }
        out.push_str("</div>");
        // The AE's commitments, week by week, when a segment sets them.
        let ae = |m: &super::Metrics| !m.discovery_in_window.is_empty() || !m.opportunity_in_window.is_empty();
        if card.weeks.iter().filter_map(|w| w.groups.get("all")).any(ae) {
            out.push_str("<h2>The AE's commitments</h2><table><tr><th>week</th><th>discovery booked in window</th><th>opportunity created in window</th></tr>");
            for w in &card.weeks {
                let Some(m) = w.groups.get("all") else { continue };
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    w.start.format("%Y-%m-%d"),
                    pct(m.discovery_in_window.rate()),
                    pct(m.opportunity_in_window.rate())
                );
            }
            out.push_str("</table>");
        }
        let surge_weeks: Vec<&super::Week> = card.weeks.iter().filter(|w| !w.surges.is_empty()).collect();
        if !surge_weeks.is_empty() {
            out.push_str("<h2>Surges, declared and detected</h2><table><tr><th>week</th><th>surges</th><th>surge leads touched in their window</th></tr>");
            for w in surge_weeks {
                let rate = w.groups.get("all").and_then(|m| m.first_touch_in_window_surge.rate());
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    w.start.format("%Y-%m-%d"),
                    esc(&w.surges.join(", ")),
                    pct(rate)
                );
            }
            out.push_str("</table>");
        }
        if let Some(m) = last.groups.get("all") {
            out.push_str("<h2>Rejection reasons this week</h2><table><tr><th>reason</th><th>rejections</th></tr>");
            if m.rejection_reasons.is_empty() {
                out.push_str("<tr><td>(no rejections)</td><td></td></tr>");
            }
            for (reason, n) in &m.rejection_reasons {
                let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", esc(reason));
            }
            out.push_str("</table>");
        }
        if card.by.is_some() {
            let _ = write!(
                out,
                "<h2>By {:?}, this week</h2><table><tr><th></th><th>MQLs</th><th>touched in window</th><th>speed (median)</th><th>full cadence</th><th>dispositioned in window</th><th>reason codes</th><th>→ opportunity</th></tr>",
                card.by.unwrap_or(super::Dimension::Grade)
            );
            for (group, m) in last.groups.iter().filter(|(g, _)| g.as_str() != "all") {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(group),
                    m.mqls,
                    pct(m.first_touch_in_window.rate()),
                    m.first_touch_business_minutes.median.map(|v| format!("{v:.0} min")).unwrap_or_else(|| "–".into()),
                    pct(m.follow_up_completion.rate()),
                    pct(m.disposition_in_window.rate()),
                    pct(m.feedback_quality.rate()),
                    pct(m.opportunity.rate()),
                );
            }
            out.push_str("</table>");
        }
    }
    out.push_str("</body></html>\n");
    out
}
