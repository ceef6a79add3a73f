//! Records by sObject type, with the indexes queries need.
//!
//! Each type keeps its rows in a `BTreeMap<Id, Record>` plus an index on
//! `(SystemModstamp, Id)`, so the incremental query every connector sends
//! (`WHERE SystemModstamp >= X ORDER BY SystemModstamp, Id`) is a range
//! scan rather than a walk over 100k leads. Rows are JSON maps in the
//! shape Salesforce returns them (datetimes as `…T09:00:00.000+0000`). A
//! row need not hold its null fields: a missing field reads as null, and
//! whole-row answers fill them in from the schema.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

pub type Record = Map<String, Value>;

/// Set a field, without allocating its name again when the row already has
/// it (materialising a large org sets millions of fields).
pub fn set(rec: &mut Record, field: &str, value: Value) {
    match rec.get_mut(field) {
        Some(v) => *v = value,
        None => {
            rec.insert(field.to_string(), value);
        }
    }
}

/// Salesforce's datetime rendering: UTC, milliseconds, `+0000`.
pub fn fmt_datetime(at: DateTime<Utc>) -> String {
    use chrono::Timelike;
    // Written digit by digit: every stored row carries several of these, and
    // formatting machinery dominated materialising a large org.
    let mut out = String::with_capacity(28);
    push_date(&mut out, at);
    out.push('T');
    push_digits(&mut out, at.hour(), 2);
    out.push(':');
    push_digits(&mut out, at.minute(), 2);
    out.push(':');
    push_digits(&mut out, at.second(), 2);
    out.push('.');
    push_digits(&mut out, at.timestamp_subsec_millis().min(999), 3);
    out.push_str("+0000");
    out
}

pub fn fmt_date(at: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, at);
    out
}

fn push_date(out: &mut String, at: DateTime<Utc>) {
    use chrono::Datelike;
    push_digits(out, at.year().clamp(0, 9999) as u32, 4);
    out.push('-');
    push_digits(out, at.month(), 2);
    out.push('-');
    push_digits(out, at.day(), 2);
}

/// `n` in exactly `width` decimal digits (zero-padded; higher digits dropped).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for k in (0..width).rev() {
        let digit = (n / 10u32.pow(k)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Parse a datetime as Salesforce writes it (`+0000`), as RFC 3339 (`Z`,
/// `+00:00`), or with no fraction.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    // Every stored datetime has the one form `fmt_datetime` writes; reading
    // it without the general parser keeps index upkeep and filters cheap.
    if let Some(dt) = parse_stored(s) {
        return Some(dt);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    None
}

/// `YYYY-MM-DDTHH:MM:SS.mmm+0000` exactly, or `None`.
fn parse_stored(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 28
        || &b[23..] != b"+0000"
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let time = date.and_hms_milli_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?)?;
    Some(time.and_utc())
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Round to Salesforce's millisecond precision.
pub fn to_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Render an instant in RFC 3339 with milliseconds (admin dumps).
pub fn rfc3339_millis(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A case-sensitive 15-character id plus Salesforce's 3-character
/// case-safe suffix: `prefix` (3) + `pod` (3) + base62 `n` (9) + suffix.
pub fn make_id(prefix: &str, pod: &str, n: u64) -> String {
    let mut digits = [b'0'; 9];
    let mut v = n;
    for d in digits.iter_mut().rev() {
        *d = BASE62[(v % 62) as usize];
        v /= 62;
    }
    let mut id15 = String::with_capacity(18);
    id15.push_str(prefix);
    id15.push_str(pod);
    id15.push_str(std::str::from_utf8(&digits).unwrap_or("000000000"));
    let suffix = case_safe_suffix(&id15);
    id15.push_str(&suffix);
    id15
}

/// The 18-character id's last three characters: for each 5-character
/// chunk, a bit per uppercase letter (first character lowest), mapped
/// into `A–Z0–5`.
pub fn case_safe_suffix(id15: &str) -> String {
    const MAP: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    id15.as_bytes()
        .chunks(5)
        .take(3)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .fold(0usize, |acc, (i, c)| if c.is_ascii_uppercase() { acc | (1 << i) } else { acc });
            MAP[bits] as char
        })
        .collect()
}

/// Whether `s` looks like an id of this key prefix (15 or 18 characters).
pub fn is_id_with_prefix(s: &str, prefix: &str) -> bool {
    (s.len() == 15 || s.len() == 18) && s.starts_with(prefix) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The 18-character form of a 15- or 18-character id.
pub fn normalise_id(s: &str) -> String {
    if s.len() == 15 {
        format!("{s}{}", case_safe_suffix(s))
    } else {
        s.to_string()
    }
}

/// Rows of one sObject type.
#[derive(Debug, Default, Clone)]
pub struct Table {
    rows: BTreeMap<String, Record>,
    /// `(SystemModstamp ms, Id)` of every row.
    by_modstamp: BTreeSet<(i64, String)>,
    /// Soft-deleted ids and when (for `sobjects/X/deleted`).
    deleted_at: BTreeMap<String, DateTime<Utc>>,
    /// For each indexed reference field (`LeadId`, `WhoId`): parent id →
    /// the ids of the rows naming it, so a child subquery or a merge finds
    /// a lead's rows without a scan.
    by_parent: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// For each unique field (External IDs such as `Handoff_Key__c`): the
    /// lower-cased value → the ids holding it, so an upsert or a uniqueness
    /// check finds its row without a scan (Salesforce compares them
    /// case-insensitively).
    by_unique: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

/// The `SystemModstamp` index key: `None` for rows of objects without the
/// field (history rows never change, so nothing queries them by it).
fn modstamp_of(rec: &Record) -> Option<i64> {
    let v = rec.get("SystemModstamp")?;
    Some(v.as_str().and_then(parse_datetime).map(to_millis).unwrap_or(0))
}

fn ref_of<'a>(rec: &'a Record, field: &str) -> Option<&'a str> {
    rec.get(field).and_then(Value::as_str)
}

/// Where a row is filed: its modstamp key, per parent-indexed field the
/// parent it names, and per unique field its lower-cased value (each in
/// its index's order).
type IndexKeys = (Option<i64>, Vec<Option<String>>, Vec<Option<String>>);

type ValueIndex = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn index_keys(rec: &Record, by_parent: &ValueIndex, by_unique: &ValueIndex) -> IndexKeys {
    (
        modstamp_of(rec),
        by_parent.keys().map(|f| ref_of(rec, f).map(str::to_string)).collect(),
        by_unique.keys().map(|f| ref_of(rec, f).map(str::to_lowercase)).collect(),
    )
}

fn file(index: &mut ValueIndex, values: Vec<Option<String>>, id: &str) {
    for (index, value) in index.values_mut().zip(values) {
        let Some(value) = value else { continue };
        index.entry(value).or_default().insert(id.to_string());
    }
}

fn unfile(index: &mut ValueIndex, values: &[Option<String>], id: &str) {
    for (index, value) in index.values_mut().zip(values) {
        let Some(value) = value else { continue };
        if let Some(set) = index.get_mut(value) {
            set.remove(id);
            if set.is_empty() {
                index.remove(value);
            }
        }
    }
}

impl Table {
    /// A table that indexes rows by the reference fields `parent_fields`.
    pub fn with_parent_index(parent_fields: &[&str]) -> Self {
        Self::with_indexes(parent_fields, &[])
    }

    /// A table that indexes rows by the reference fields `parent_fields` and
    /// by the (case-insensitive) values of `unique_fields`.
    pub fn with_indexes(parent_fields: &[&str], unique_fields: &[&str]) -> Self {
        Table {
            by_parent: parent_fields.iter().map(|f| (f.to_string(), BTreeMap::new())).collect(),
            by_unique: unique_fields.iter().map(|f| (f.to_string(), BTreeMap::new())).collect(),
            ..Table::default()
        }
    }

    fn keys_of(&self, rec: &Record) -> IndexKeys {
        index_keys(rec, &self.by_parent, &self.by_unique)
    }

    fn unindex(&mut self, id: &str, rec: &Record) {
        let keys = self.keys_of(rec);
        self.unindex_keys(id, &keys);
    }

    fn unindex_keys(&mut self, id: &str, keys: &IndexKeys) {
        if let Some(ms) = keys.0 {
            self.by_modstamp.remove(&(ms, id.to_string()));
        }
        unfile(&mut self.by_parent, &keys.1, id);
        unfile(&mut self.by_unique, &keys.2, id);
    }

    /// Ids of the rows whose unique `field` holds `value` (compared
    /// case-insensitively), or `None` when the field is not indexed.
    pub fn with_unique_value(&self, field: &str, value: &str) -> Option<Vec<String>> {
        let index = self.by_unique.get(field)?;
        Some(index.get(&value.to_lowercase()).map(|ids| ids.iter().cloned().collect()).unwrap_or_default())
    }

    /// Ids of the rows whose reference `field` names `parent`, in id order
    /// (empty when the field is not indexed).
    pub fn children_of(&self, field: &str, parent: &str) -> impl Iterator<Item = &String> {
        self.by_parent.get(field).and_then(|index| index.get(parent)).into_iter().flatten()
    }

    /// Whether `field` has a parent index.
    pub fn has_parent_index(&self, field: &str) -> bool {
        self.by_parent.contains_key(field)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        self.rows.get(id)
    }

    /// Insert or replace a row, keeping the modstamp index in step.
    pub fn put(&mut self, id: &str, rec: Record) {
        let keys = self.keys_of(&rec);
        if let Some(old) = self.rows.insert(id.to_string(), rec) {
            self.unindex(id, &old);
        }
        self.index(id, keys);
    }

    fn index(&mut self, id: &str, keys: IndexKeys) {
        if let Some(ms) = keys.0 {
            self.by_modstamp.insert((ms, id.to_string()));
        }
        file(&mut self.by_parent, keys.1, id);
        file(&mut self.by_unique, keys.2, id);
    }

    /// Change a row in place (no copy of the row), keeping every index in step.
    /// Returns whether the row exists.
    pub fn modify(&mut self, id: &str, f: impl FnOnce(&mut Record)) -> bool {
        let Some(rec) = self.rows.get_mut(id) else { return false };
        let before = index_keys(rec, &self.by_parent, &self.by_unique);
        f(rec);
        if index_keys(rec, &self.by_parent, &self.by_unique) != before {
            // An indexed field changed: re-file the row under its new keys.
            self.unindex_keys(id, &before);
            if let Some(rec) = self.rows.remove(id) {
                self.put(id, rec);
            }
        }
        true
    }

    /// Remove a row for good (a rolled-back insert).
    pub fn purge(&mut self, id: &str) {
        if let Some(old) = self.rows.remove(id) {
            self.unindex(id, &old);
        }
        self.deleted_at.remove(id);
    }

    pub fn mark_deleted(&mut self, id: &str, at: DateTime<Utc>) {
        self.deleted_at.insert(id.to_string(), at);
    }

    pub fn undelete_mark(&mut self, id: &str) {
        self.deleted_at.remove(id);
    }

    pub fn deleted_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
        let mut out: Vec<(String, DateTime<Utc>)> = self
            .deleted_at
            .iter()
            .filter(|(_, at)| **at >= start && **at < end)
            .map(|(id, at)| (id.clone(), *at))
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.rows.keys()
    }

    pub fn rows(&self) -> impl Iterator<Item = (&String, &Record)> {
        self.rows.iter()
    }

    /// Ids whose SystemModstamp lies in `[from_ms, to_ms]` (either end
    /// open when `None`), in `(SystemModstamp, Id)` order, lazily.
    pub fn range_by_modstamp(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> impl Iterator<Item = &String> {
        use std::ops::Bound;
        let lo = match from_ms {
            Some(ms) => Bound::Included((ms, String::new())),
            None => Bound::Unbounded,
        };
        let hi = match to_ms {
            // Every id sorts below "\u{7f}".
            Some(ms) => Bound::Included((ms, "\u{7f}".to_string())),
            None => Bound::Unbounded,
        };
        self.by_modstamp.range((lo, hi)).map(|(_, id)| id)
    }

    /// Ids whose SystemModstamp lies in `[from_ms, to_ms]` (either end
    /// open when `None`), in `(SystemModstamp, Id)` order.
    pub fn ids_by_modstamp(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> Vec<String> {
        self.range_by_modstamp(from_ms, to_ms).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_carry_prefix_and_case_safe_suffix() {
        // Known pair from Salesforce's documentation of the algorithm.
        assert_eq!(case_safe_suffix("001A0000006Vm9r"), "IAC");
        let id = make_id("00Q", "Hs0", 61);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("00QHs000000000z"));
        assert!(is_id_with_prefix(&id, "00Q"));
        assert_eq!(normalise_id(&id[..15]), id);
    }

    #[test]
    fn datetimes_round_trip_in_salesforce_form() {
        let at = parse_datetime("2026-03-02T09:00:00.123Z").unwrap();
        assert_eq!(fmt_datetime(at), "2026-03-02T09:00:00.123+0000");
        assert_eq!(fmt_date(at), "2026-03-02");
        let late = parse_datetime("0999-12-31T23:59:59.007Z").unwrap();
        assert_eq!(fmt_datetime(late), "0999-12-31T23:59:59.007+0000");
        assert_eq!(parse_datetime("2026-03-02T09:00:00.123+0000"), Some(at));
        assert_eq!(
            parse_datetime("2026-03-02T10:00:00+01:00").map(fmt_datetime).as_deref(),
            Some("2026-03-02T09:00:00.000+0000")
        );
        // The stored form is read by its own fast path; a near miss falls back or fails.
        assert_eq!(parse_stored("2026-03-02T09:00:00.123+0000"), Some(at));
        assert_eq!(parse_stored("2026-03-02T09:00:00.123Z"), None);
        assert_eq!(parse_stored("2026-02-30T09:00:00.123+0000"), None);
        assert_eq!(
            parse_datetime("2026-03-02T09:00:00.123+0100").map(fmt_datetime).as_deref(),
            Some("2026-03-02T08:00:00.123+0000")
        );
    }

    #[test]
    fn modstamp_index_follows_updates_and_ties_sort_by_id() {
        let mut t = Table::default();
        let rec = |ms: &str| {
            let mut r = Record::new();
            r.insert("SystemModstamp".into(), json!(ms));
            r
        };
        t.put("b", rec("2026-03-02T09:00:00.000+0000"));
        t.put("a", rec("2026-03-02T09:00:00.000+0000"));
        t.put("c", rec("2026-03-02T08:00:00.000+0000"));
        let nine = to_millis(parse_datetime("2026-03-02T09:00:00Z").unwrap());
        assert_eq!(t.ids_by_modstamp(Some(nine), None), vec!["a", "b"]);
        t.put("c", rec("2026-03-02T10:00:00.000+0000"));
        assert_eq!(t.ids_by_modstamp(Some(nine), None), vec!["a", "b", "c"]);
        assert_eq!(t.ids_by_modstamp(None, Some(nine)), vec!["a", "b"]);
    }

    #[test]
    fn parent_index_follows_reparenting_and_purges() {
        let mut t = Table::with_parent_index(&["WhoId"]);
        let rec = |who: &str| {
            let mut r = Record::new();
            r.insert("WhoId".into(), json!(who));
            r
        };
        t.put("t1", rec("00Q1"));
        t.put("t2", rec("00Q1"));
        t.put("t3", rec("00Q2"));
        assert_eq!(t.children_of("WhoId", "00Q1").collect::<Vec<_>>(), vec!["t1", "t2"]);
        t.put("t2", rec("00Q2"));
        assert_eq!(t.children_of("WhoId", "00Q1").collect::<Vec<_>>(), vec!["t1"]);
        assert_eq!(t.children_of("WhoId", "00Q2").collect::<Vec<_>>(), vec!["t2", "t3"]);
        t.purge("t1");
        assert_eq!(t.children_of("WhoId", "00Q1").count(), 0);
        assert_eq!(t.children_of("OwnerId", "00Q2").count(), 0, "unindexed fields have no children");
        assert!(t.has_parent_index("WhoId"));
        // In-place edits re-file a row only when an indexed field moves.
        assert!(t.modify("t3", |r| {
            r.insert("Subject".into(), json!("x"));
        }));
        assert_eq!(t.children_of("WhoId", "00Q2").collect::<Vec<_>>(), vec!["t2", "t3"]);
        assert!(t.modify("t3", |r| {
            r.insert("WhoId".into(), json!("00Q9"));
        }));
        assert_eq!(t.children_of("WhoId", "00Q2").collect::<Vec<_>>(), vec!["t2"]);
        assert_eq!(t.children_of("WhoId", "00Q9").collect::<Vec<_>>(), vec!["t3"]);
        assert!(!t.modify("nope", |_| {}));
    }
}
