//! Compiled conditions over lead fields and how they are judged.
//!
//! # Comparison semantics
//!
//! A field is **set** when it is present, not `null`, not an empty (or
//! all-blank) string and not an empty list.
//!
//! - A field that is not set fails every test except `is not set`, `!=` and
//!   `not in`, which it passes.
//! - **Numbers**: when both sides read as numbers (a JSON number, or a string
//!   such as `"250"` or `" 1e3 "`), they compare as numbers, so `"0250" = 250`.
//! - **Strings**: otherwise both sides compare as text, trimmed and
//!   case-insensitively (`"united states" = "United States"`). Booleans read
//!   as `true` / `false`. `contains` is a case-insensitive substring test.
//! - **Ordering** (`<`, `<=`, `>`, `>=`): numerically when both sides are
//!   numbers; chronologically when both are dates or datetimes
//!   (`2026-01-31`, RFC 3339); otherwise the test fails.
//! - **Lists**: a field holding a JSON list (a multi-select) passes `=`,
//!   `in` and `contains` when any element does, and `!=` / `not in` when
//!   no element matches. Multi-select picklists stored as `"a;b"` strings are
//!   matched with `contains`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value as Json;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Contains,
    IsSet,
    IsNotSet,
}

/// Every operator as the policy file spells it.
pub const OP_SPELLINGS: &str = "=, !=, <, <=, >, >=, in, not in, contains, is set, is not set";

impl Op {
    /// Parses an operator as written in the file (a few common aliases
    /// are accepted: `==`, `<>`, `not_in`, `is_set`, `is_not_set`).
    pub fn parse(text: &str) -> Option<Op> {
        let norm = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        Some(match norm.as_str() {
            "=" | "==" => Op::Eq,
            "!=" | "<>" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "in" => Op::In,
            "not in" | "not_in" => Op::NotIn,
            "contains" => Op::Contains,
            "is set" | "is_set" => Op::IsSet,
            "is not set" | "is_not_set" => Op::IsNotSet,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::NotIn => "not in",
            Op::Contains => "contains",
            Op::IsSet => "is set",
            Op::IsNotSet => "is not set",
        }
    }
}

/// One literal in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Num(n) => write!(f, "{n}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The right-hand side of a test: none for `is set` / `is not set`, a list
/// for `in` / `not in`, one literal otherwise (compilation guarantees it).
#[derive(Debug, Clone, PartialEq)]
pub enum CondValue {
    None,
    One(Scalar),
    List(Vec<Scalar>),
}

/// A compiled condition: named criteria are inlined, operators parsed and
/// values checked against them.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Test { field: String, op: Op, value: CondValue },
}

impl Cond {
    /// Judges the condition against a lead's fields (CRM API names). An empty
    /// `All` is true, an empty `Any` false.
    pub fn eval(&self, fields: &BTreeMap<String, Json>) -> bool {
        match self {
            Cond::All(items) => items.iter().all(|c| c.eval(fields)),
            Cond::Any(items) => items.iter().any(|c| c.eval(fields)),
            Cond::Not(inner) => !inner.eval(fields),
            Cond::Test { field, op, value } => test(fields.get(field), *op, value),
        }
    }

    /// Every field the condition reads, added to `out`.
    pub fn fields_into(&self, out: &mut std::collections::BTreeSet<String>) {
        match self {
            Cond::All(items) | Cond::Any(items) => items.iter().for_each(|c| c.fields_into(out)),
            Cond::Not(inner) => inner.fields_into(out),
            Cond::Test { field, .. } => {
                out.insert(field.clone());
            }
        }
    }

    /// Says, one line per test or group, which parts passed and which
    /// failed and what the lead's value was. Nested lines are indented by two
    /// spaces per level.
    pub fn explain(&self, fields: &BTreeMap<String, Json>) -> Vec<String> {
        let mut lines = Vec::new();
        self.explain_into(fields, 0, &mut lines);
        lines
    }

    fn explain_into(&self, fields: &BTreeMap<String, Json>, depth: usize, out: &mut Vec<String>) {
        let indent = "  ".repeat(depth);
        let verdict = if self.eval(fields) { "passed" } else { "failed" };
        match self {
            Cond::All(items) | Cond::Any(items) => {
                let kind = if matches!(self, Cond::All(_)) { "all of" } else { "any of" };
                out.push(format!("{indent}{verdict}: {kind}"));
                for item in items {
                    item.explain_into(fields, depth + 1, out);
                }
            }
            Cond::Not(inner) => {
                out.push(format!("{indent}{verdict}: none of"));
                inner.explain_into(fields, depth + 1, out);
            }
            Cond::Test { field, .. } => {
                let actual = match fields.get(field) {
                    Some(v) if is_set(v) => format!("lead has {v}"),
                    Some(v) => format!("lead has {v}, which counts as not set"),
                    None => "field missing on the lead".to_string(),
                };
                out.push(format!("{indent}{verdict}: {self} ({actual})"));
            }
        }
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::All(items) | Cond::Any(items) => {
                let joiner = if matches!(self, Cond::All(_)) { " and " } else { " or " };
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(joiner)?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
            Cond::Not(inner) => write!(f, "not {inner}"),
            Cond::Test { field, op, value } => match value {
                CondValue::None => write!(f, "{field} {}", op.as_str()),
                CondValue::One(v) => write!(f, "{field} {} {v}", op.as_str()),
                CondValue::List(vs) => {
                    write!(f, "{field} {} [", op.as_str())?;
                    for (i, v) in vs.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{v}")?;
                    }
                    f.write_str("]")
                }
            },
        }
    }
}

/// Present, not null, not blank, not an empty list.
pub fn is_set(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::String(s) => !s.trim().is_empty(),
        Json::Array(a) => !a.is_empty(),
        _ => true,
    }
}

fn test(actual: Option<&Json>, op: Op, value: &CondValue) -> bool {
    let actual = match actual {
        Some(v) if is_set(v) => v,
        _ => return matches!(op, Op::IsNotSet | Op::Ne | Op::NotIn),
    };
    match (op, value) {
        (Op::IsSet, _) => true,
        (Op::IsNotSet, _) => false,
        (Op::Eq, CondValue::One(s)) => any_element(actual, |v| loose_eq(v, s)),
        (Op::Ne, CondValue::One(s)) => !any_element(actual, |v| loose_eq(v, s)),
        (Op::In, CondValue::List(list)) => any_element(actual, |v| list.iter().any(|s| loose_eq(v, s))),
        (Op::NotIn, CondValue::List(list)) => !any_element(actual, |v| list.iter().any(|s| loose_eq(v, s))),
        (Op::Contains, CondValue::One(s)) => {
            let needle = scalar_text(s).to_lowercase();
            any_element(actual, |v| json_text(v).map(|t| t.to_lowercase().contains(&needle)).unwrap_or(false))
        }
        (Op::Lt | Op::Le | Op::Gt | Op::Ge, CondValue::One(s)) => match compare(actual, s) {
            Some(ord) => match op {
                Op::Lt => ord.is_lt(),
                Op::Le => ord.is_le(),
                Op::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            },
            None => false,
        },
        // Shapes compilation never produces (e.g. `in` with one value).
        _ => false,
    }
}

fn any_element(v: &Json, mut pred: impl FnMut(&Json) -> bool) -> bool {
    match v {
        Json::Array(items) => items.iter().any(pred),
        other => pred(other),
    }
}

/// Text form of a JSON scalar; `None` for objects, lists and null.
fn json_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.trim().to_string()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Str(s) => s.trim().to_string(),
        Scalar::Num(n) => n.to_string(),
        Scalar::Bool(b) => b.to_string(),
    }
}

fn json_number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn scalar_number(s: &Scalar) -> Option<f64> {
    match s {
        Scalar::Num(n) => Some(*n),
        Scalar::Str(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        Scalar::Bool(_) => None,
    }
}

fn loose_eq(v: &Json, s: &Scalar) -> bool {
    if let (Some(a), Some(b)) = (json_number(v), scalar_number(s)) {
        return a == b;
    }
    // Text against text, the common case, compares without copying.
    if let (Json::String(a), Scalar::Str(b)) = (v, s) {
        return same_text(a.trim(), b.trim());
    }
    match json_text(v) {
        Some(text) => same_text(&text, &scalar_text(s)),
        None => false,
    }
}

/// `a` and `b` equal once lower-cased.
fn same_text(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

/// Parses a date or datetime: RFC 3339, `YYYY-MM-DDTHH:MM:SS` (taken as UTC;
/// Salesforce's `+0000` offsets included) or a plain `YYYY-MM-DD` (midnight UTC).
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(dt.and_utc());
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc())
}

fn compare(v: &Json, s: &Scalar) -> Option<std::cmp::Ordering> {
    if let (Some(a), Some(b)) = (json_number(v), scalar_number(s)) {
        return a.partial_cmp(&b);
    }
    let a = json_text(v).and_then(|t| parse_instant(&t))?;
    let b = match s {
        Scalar::Str(t) => parse_instant(t)?,
        _ => return None,
    };
    Some(a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lead(v: Json) -> BTreeMap<String, Json> {
        serde_json::from_value(v).unwrap()
    }

    fn t(field: &str, op: Op, value: CondValue) -> Cond {
        Cond::Test { field: field.into(), op, value }
    }

    fn one(s: Scalar) -> CondValue {
        CondValue::One(s)
    }

    #[test]
    fn numbers_compare_numerically_even_as_strings() {
        let f = lead(json!({"Employees": "0250", "Score": 86.5}));
        assert!(t("Employees", Op::Eq, one(Scalar::Num(250.0))).eval(&f));
        assert!(t("Employees", Op::Ge, one(Scalar::Num(25.0))).eval(&f));
        assert!(!t("Employees", Op::Lt, one(Scalar::Num(25.0))).eval(&f));
        assert!(t("Score", Op::Gt, one(Scalar::Str("85".into()))).eval(&f));
        assert!(!t("Score", Op::Le, one(Scalar::Num(86.0))).eval(&f));
    }

    #[test]
    fn strings_are_case_insensitive() {
        let f = lead(json!({"Country": " united states ", "Intent": "Demo Request;Pricing"}));
        assert!(t("Country", Op::Eq, one(Scalar::Str("United States".into()))).eval(&f));
        assert!(t(
            "Country",
            Op::In,
            CondValue::List(vec![Scalar::Str("UK".into()), Scalar::Str("UNITED STATES".into())])
        )
        .eval(&f));
        assert!(!t("Country", Op::NotIn, CondValue::List(vec![Scalar::Str("united states".into())])).eval(&f));
        assert!(t("Intent", Op::Contains, one(Scalar::Str("pricing".into()))).eval(&f));
        assert!(!t("Intent", Op::Contains, one(Scalar::Str("webinar".into()))).eval(&f));
        // Beyond ASCII too.
        let f = lead(json!({"Country": "ÖSTERREICH"}));
        assert!(t("Country", Op::Eq, one(Scalar::Str("Österreich".into()))).eval(&f));
        assert!(!t("Country", Op::Eq, one(Scalar::Str("Osterreich".into()))).eval(&f));
    }

    #[test]
    fn missing_fields_fail_all_but_negations() {
        let f = lead(json!({"Blank": "  ", "Null": null, "Empty": []}));
        for field in ["Absent", "Blank", "Null", "Empty"] {
            assert!(t(field, Op::IsNotSet, CondValue::None).eval(&f), "{field}");
            assert!(!t(field, Op::IsSet, CondValue::None).eval(&f), "{field}");
            assert!(t(field, Op::Ne, one(Scalar::Str("x".into()))).eval(&f), "{field}");
            assert!(t(field, Op::NotIn, CondValue::List(vec![Scalar::Str("x".into())])).eval(&f), "{field}");
            assert!(!t(field, Op::Eq, one(Scalar::Str("".into()))).eval(&f), "{field}");
            assert!(!t(field, Op::Lt, one(Scalar::Num(1.0))).eval(&f), "{field}");
            assert!(!t(field, Op::Contains, one(Scalar::Str("".into()))).eval(&f), "{field}");
        }
    }

    #[test]
    fn dates_order_chronologically_and_text_does_not_order() {
        let f = lead(json!({"MQL": "2026-03-01T10:00:00.000+0000", "Name": "Zed"}));
        assert!(t("MQL", Op::Ge, one(Scalar::Str("2026-02-28".into()))).eval(&f));
        assert!(!t("MQL", Op::Lt, one(Scalar::Str("2026-03-01T09:00:00Z".into()))).eval(&f));
        assert!(!t("Name", Op::Gt, one(Scalar::Str("Alice".into()))).eval(&f));
    }

    #[test]
    fn lists_and_booleans() {
        let f = lead(json!({"Tags": ["Partner", "Event"], "Opt": true}));
        assert!(t("Tags", Op::Eq, one(Scalar::Str("event".into()))).eval(&f));
        assert!(!t("Tags", Op::Ne, one(Scalar::Str("event".into()))).eval(&f));
        assert!(t("Opt", Op::Eq, one(Scalar::Bool(true))).eval(&f));
        assert!(t("Opt", Op::Eq, one(Scalar::Str("TRUE".into()))).eval(&f));
    }

    #[test]
    fn groups_and_explain() {
        let f = lead(json!({"Employees": 10, "Country": "UK"}));
        let c = Cond::All(vec![
            t("Employees", Op::Ge, one(Scalar::Num(25.0))),
            Cond::Not(Box::new(t("Email", Op::Contains, one(Scalar::Str("@gmail.".into()))))),
            Cond::Any(vec![t("Country", Op::Eq, one(Scalar::Str("uk".into())))]),
        ]);
        assert!(!c.eval(&f));
        let lines = c.explain(&f);
        assert_eq!(lines[0], "failed: all of");
        assert_eq!(lines[1], "  failed: Employees >= 25 (lead has 10)");
        assert_eq!(lines[2], "  passed: none of");
        assert_eq!(lines[3], "    failed: Email contains \"@gmail.\" (field missing on the lead)");
        assert_eq!(lines[5], "    passed: Country = \"uk\" (lead has \"UK\")");
        assert!(Cond::All(vec![]).eval(&f));
        assert!(!Cond::Any(vec![]).eval(&f));
    }

    #[test]
    fn operator_spellings() {
        for (s, op) in [
            ("=", Op::Eq),
            ("==", Op::Eq),
            ("not  in", Op::NotIn),
            ("IS NOT SET", Op::IsNotSet),
            ("contains", Op::Contains),
        ] {
            assert_eq!(Op::parse(s), Some(op), "{s}");
        }
        assert_eq!(Op::parse("=~"), None);
        assert_eq!(Op::parse("like"), None);
    }
}
