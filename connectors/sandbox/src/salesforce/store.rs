//! Records by sObject type, with the indexes queries need.
//!
//! Each type keeps its rows in a `BTreeMap<Id, Record>` plus an index on
//! `(SystemModstamp, Id)`, so the incremental query every connector sends
//! (`WHERE SystemModstamp >= X ORDER BY SystemModstamp, Id`) is a range
//! scan rather than a walk over 100k leads. Rows hold the JSON values
//! Salesforce returns (datetimes as `…T09:00:00.000+0000`) in a compact
//! form ([`Record`]). A row never holds its null fields: a missing field
//! reads as null, and whole-row answers fill them in from the schema.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use compact_str::CompactString;
use serde_json::{Map, Value};

use crate::names::{id as name_id, name as name_of};

/// Longest string a field holds without an allocation of its own: the
/// 28 characters of a stored datetime (`2026-03-02T09:00:00.000+0000`)
/// fit, as do ids (18), dates and most names and picklist values.
const INLINE: usize = 28;

/// One stored field: its name's number and its (non-null) value, in 32
/// bytes. Strings up to [`INLINE`] bytes sit in the entry itself; longer
/// ones, and arrays or objects (which no standard field holds), on the heap.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Bool(u16, bool),
    Int(u16, i64),
    Float(u16, f64),
    Short(u16, u8, [u8; INLINE]),
    Long(u16, Box<str>),
    Other(u16, Box<Value>),
}

impl Entry {
    /// `None` for a null (not stored).
    fn new(name: u16, value: Value) -> Option<Entry> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(b) => Entry::Bool(name, b),
            Value::Number(n) => match (n.as_i64(), n.is_f64()) {
                (Some(i), _) => Entry::Int(name, i),
                (None, true) => Entry::Float(name, n.as_f64().unwrap_or_default()),
                // A u64 beyond i64: kept as it came.
                (None, false) => Entry::Other(name, Box::new(Value::Number(n))),
            },
            Value::String(s) if s.len() <= INLINE => {
                let mut bytes = [0u8; INLINE];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Entry::Short(name, s.len() as u8, bytes)
            }
            Value::String(s) => Entry::Long(name, s.into_boxed_str()),
            other => Entry::Other(name, Box::new(other)),
        })
    }

    fn name(&self) -> u16 {
        match self {
            Entry::Bool(n, _)
            | Entry::Int(n, _)
            | Entry::Float(n, _)
            | Entry::Short(n, _, _)
            | Entry::Long(n, _)
            | Entry::Other(n, _) => *n,
        }
    }

    fn value(&self) -> FieldRef<'_> {
        match self {
            Entry::Bool(_, b) => FieldRef::Bool(*b),
            Entry::Int(_, i) => FieldRef::Int(*i),
            Entry::Float(_, f) => FieldRef::Float(*f),
            // Always whole characters: copied from a `str`.
            Entry::Short(_, len, bytes) => {
                FieldRef::Str(std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default())
            }
            Entry::Long(_, s) => FieldRef::Str(s),
            Entry::Other(_, v) => FieldRef::Other(v),
        }
    }
}

/// A stored field's value, borrowed from its row: what
/// `serde_json::Value` would hold, minus null (a row stores none). The
/// accessors are `Value`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldRef<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// Anything else (a u64 beyond i64, an array, an object).
    Other(&'a Value),
}

impl<'a> FieldRef<'a> {
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            FieldRef::Str(s) => Some(s),
            FieldRef::Other(v) => v.as_str(),
            _ => None,
        }
    }

    pub fn as_bool(self) -> Option<bool> {
        match self {
            FieldRef::Bool(b) => Some(b),
            FieldRef::Other(v) => v.as_bool(),
            _ => None,
        }
    }

    /// As `Value::as_i64`: integers only.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            FieldRef::Int(i) => Some(i),
            FieldRef::Other(v) => v.as_i64(),
            _ => None,
        }
    }

    /// As `Value::as_f64`: any number.
    pub fn as_f64(self) -> Option<f64> {
        match self {
            FieldRef::Int(i) => Some(i as f64),
            FieldRef::Float(f) => Some(f),
            FieldRef::Other(v) => v.as_f64(),
            _ => None,
        }
    }

    /// Never true for a stored field (nulls are not stored); here so a
    /// field reads like a `Value`.
    pub fn is_null(self) -> bool {
        matches!(self, FieldRef::Other(Value::Null))
    }

    /// The value as JSON.
    pub fn to_value(self) -> Value {
        match self {
            FieldRef::Bool(b) => Value::Bool(b),
            FieldRef::Int(i) => Value::from(i),
            FieldRef::Float(f) => Value::from(f),
            FieldRef::Str(s) => Value::String(s.to_string()),
            FieldRef::Other(v) => v.clone(),
        }
    }
}

impl PartialEq<Value> for FieldRef<'_> {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (FieldRef::Bool(a), Value::Bool(b)) => a == b,
            (FieldRef::Str(a), Value::String(b)) => a == b,
            (FieldRef::Int(_) | FieldRef::Float(_), Value::Number(_)) => self.to_value() == *other,
            (FieldRef::Other(a), b) => *a == b,
            _ => false,
        }
    }
}

/// One row: its non-null fields, sorted by name (so rows iterate, and
/// serialise, in the order a `serde_json::Map` would), each a 32-byte
/// `Entry` naming its field by number (`crate::names`). A Lead of
/// 27 fields takes under 900 bytes; as a `serde_json::Map` of owned names
/// and values it took about three times as much, and materialising it
/// allocated once per name and value.
///
/// Reads borrow a [`FieldRef`] (`Value`'s accessors, no copy);
/// [`Record::value`] makes the JSON value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    entries: Vec<Entry>,
}

impl Record {
    pub fn new() -> Self {
        Record::default()
    }

    /// Where `name` is, or where it would go.
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| name_of(e.name()).cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<FieldRef<'_>> {
        self.find(name).ok().map(|at| self.entries[at].value())
    }

    /// The field as JSON (`null` when not set).
    pub fn value(&self, name: &str) -> Value {
        self.get(name).map_or(Value::Null, FieldRef::to_value)
    }

    /// The field's text, if it holds a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(FieldRef::as_str)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Set `name` to `value`; a null clears it.
    pub fn insert(&mut self, name: &str, value: Value) {
        match (self.find(name), Entry::new(name_id(name), value)) {
            (Ok(at), Some(entry)) => self.entries[at] = entry,
            (Ok(at), None) => {
                self.entries.remove(at);
            }
            (Err(at), Some(entry)) => {
                // Rows are shrunk to fit when stored; a field added later
                // grows a stored row by a few entries, not by doubling.
                if self.entries.len() == self.entries.capacity() && self.entries.len() >= 16 {
                    self.entries.reserve_exact(4);
                }
                self.entries.insert(at, entry);
            }
            (Err(_), None) => {}
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let at = self.find(name).ok()?;
        Some(self.entries.remove(at).value().to_value())
    }

    /// `(name, value)` of every stored field, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, FieldRef<'_>)> + '_ {
        self.entries.iter().map(|e| (name_of(e.name()), e.value()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| name_of(e.name()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drop spare capacity (a row about to be stored).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }

    /// The row as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter().map(|(k, v)| (k.to_string(), v.to_value())).collect()
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Record {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut rec = Record::new();
        for (k, v) in iter {
            rec.insert(k.as_ref(), v);
        }
        rec
    }
}

/// Set a field (a null clears it).
pub fn set(rec: &mut Record, field: &str, value: Value) {
    rec.insert(field, value);
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

/// A row id in an index: Salesforce's 18 characters fit inline, so an
/// index entry needs no allocation of its own.
pub type Id = CompactString;

/// For each indexed field, `(value, id)` of every row holding a value, in
/// one ordered set: the rows with one value are a contiguous range, in id
/// order. One flat set costs an entry per row; a map of small sets cost a
/// tree node per value.
type ValueIndex = BTreeMap<String, BTreeSet<(CompactString, Id)>>;

/// Rows of one sObject type.
#[derive(Debug, Default, Clone)]
pub struct Table {
    rows: BTreeMap<Id, Record>,
    /// `(SystemModstamp ms, Id)` of every row.
    by_modstamp: BTreeSet<(i64, Id)>,
    /// Soft-deleted ids and when (for `sobjects/X/deleted`).
    deleted_at: BTreeMap<Id, DateTime<Utc>>,
    /// For each indexed reference field (`LeadId`, `WhoId`): `(parent id,
    /// id)` of the rows naming a parent, so a child subquery or a merge
    /// finds a lead's rows without a scan.
    by_parent: ValueIndex,
    /// For each unique field (External IDs such as `Handoff_Key__c`):
    /// `(lower-cased value, id)`, so an upsert or a uniqueness check finds
    /// its row without a scan (Salesforce compares them
    /// case-insensitively).
    by_unique: ValueIndex,
}

/// The `SystemModstamp` index key: `None` for rows of objects without the
/// field (history rows never change, so nothing queries them by it).
fn modstamp_of(rec: &Record) -> Option<i64> {
    let v = rec.get("SystemModstamp")?;
    Some(v.as_str().and_then(parse_datetime).map(to_millis).unwrap_or(0))
}

fn ref_of<'a>(rec: &'a Record, field: &str) -> Option<&'a str> {
    rec.get_str(field)
}

/// Where a row is filed: its modstamp key, per parent-indexed field the
/// parent it names, and per unique field its lower-cased value (each in
/// its index's order).
type IndexKeys = (Option<i64>, Vec<Option<CompactString>>, Vec<Option<CompactString>>);

fn index_keys(rec: &Record, by_parent: &ValueIndex, by_unique: &ValueIndex) -> IndexKeys {
    (
        modstamp_of(rec),
        by_parent.keys().map(|f| ref_of(rec, f).map(CompactString::from)).collect(),
        by_unique.keys().map(|f| ref_of(rec, f).map(|v| CompactString::from(v.to_lowercase()))).collect(),
    )
}

fn file(index: &mut ValueIndex, values: Vec<Option<CompactString>>, id: &str) {
    for (index, value) in index.values_mut().zip(values) {
        let Some(value) = value else { continue };
        index.insert((value, Id::from(id)));
    }
}

fn unfile(index: &mut ValueIndex, values: &[Option<CompactString>], id: &str) {
    for (index, value) in index.values_mut().zip(values) {
        let Some(value) = value else { continue };
        index.remove(&(value.clone(), Id::from(id)));
    }
}

/// The ids filed under `value` in one field's index, in id order.
fn ids_with(index: &BTreeSet<(CompactString, Id)>, value: CompactString) -> impl Iterator<Item = &str> {
    let start = (value.clone(), Id::default());
    index.range(start..).take_while(move |(v, _)| *v == value).map(|(_, id)| id.as_str())
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
            by_parent: parent_fields.iter().map(|f| (f.to_string(), BTreeSet::new())).collect(),
            by_unique: unique_fields.iter().map(|f| (f.to_string(), BTreeSet::new())).collect(),
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
            self.by_modstamp.remove(&(ms, Id::from(id)));
        }
        unfile(&mut self.by_parent, &keys.1, id);
        unfile(&mut self.by_unique, &keys.2, id);
    }

    /// Ids of the rows whose unique `field` holds `value` (compared
    /// case-insensitively), or `None` when the field is not indexed.
    pub fn with_unique_value(&self, field: &str, value: &str) -> Option<Vec<String>> {
        let index = self.by_unique.get(field)?;
        Some(ids_with(index, value.to_lowercase().into()).map(str::to_string).collect())
    }

    /// Ids of the rows whose reference `field` names `parent`, in id order
    /// (empty when the field is not indexed).
    pub fn children_of(&self, field: &str, parent: &str) -> impl Iterator<Item = &str> {
        let parent = CompactString::from(parent);
        self.by_parent.get(field).into_iter().flat_map(move |index| ids_with(index, parent.clone()))
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
    pub fn put(&mut self, id: &str, mut rec: Record) {
        rec.shrink_to_fit();
        let keys = self.keys_of(&rec);
        if let Some(old) = self.rows.insert(Id::from(id), rec) {
            self.unindex(id, &old);
        }
        self.index(id, keys);
    }

    fn index(&mut self, id: &str, keys: IndexKeys) {
        if let Some(ms) = keys.0 {
            self.by_modstamp.insert((ms, Id::from(id)));
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
        let after = index_keys(rec, &self.by_parent, &self.by_unique);
        if after != before {
            // An indexed field changed: re-file the row under its new keys.
            self.unindex_keys(id, &before);
            self.index(id, after);
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
        self.deleted_at.insert(Id::from(id), at);
    }

    pub fn undelete_mark(&mut self, id: &str) {
        self.deleted_at.remove(id);
    }

    pub fn deleted_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
        let mut out: Vec<(String, DateTime<Utc>)> = self
            .deleted_at
            .iter()
            .filter(|(_, at)| **at >= start && **at < end)
            .map(|(id, at)| (id.to_string(), *at))
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rows.keys().map(Id::as_str)
    }

    pub fn rows(&self) -> impl Iterator<Item = (&str, &Record)> {
        self.rows.iter().map(|(id, r)| (id.as_str(), r))
    }

    /// Ids whose SystemModstamp lies in `[from_ms, to_ms]` (either end
    /// open when `None`), in `(SystemModstamp, Id)` order, lazily.
    pub fn range_by_modstamp(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> impl Iterator<Item = &str> {
        use std::ops::Bound;
        let lo = match from_ms {
            Some(ms) => Bound::Included((ms, Id::default())),
            None => Bound::Unbounded,
        };
        let hi = match to_ms {
            // Every id sorts below "\u{7f}".
            Some(ms) => Bound::Included((ms, Id::from("\u{7f}"))),
            None => Bound::Unbounded,
        };
        self.by_modstamp.range((lo, hi)).map(|(_, id)| id.as_str())
    }

    /// Ids whose SystemModstamp lies in `[from_ms, to_ms]` (either end
    /// open when `None`), in `(SystemModstamp, Id)` order.
    pub fn ids_by_modstamp(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> Vec<String> {
        self.range_by_modstamp(from_ms, to_ms).map(str::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stored_field_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn records_hold_json_values_by_name_without_their_nulls() {
        let long = "a-company-name-longer-than-an-entry-holds.example";
        let mut r: Record = [
            ("Status", json!("Open")),
            ("CreatedDate", json!("2026-03-02T09:00:00.000+0000")),
            ("Amount", json!(6000.0)),
            ("DurationInMinutes", json!(30)),
            ("Big", json!(u64::MAX)),
            ("IsDeleted", json!(false)),
            ("Company", json!(long)),
            ("List", json!([1, "x"])),
            ("Title", Value::Null),
        ]
        .into_iter()
        .collect();
        assert_eq!(r.len(), 8, "nulls are not stored");
        assert!(!r.contains_key("Title"));
        assert_eq!(r.value("Title"), Value::Null);
        assert_eq!(r.get_str("CreatedDate"), Some("2026-03-02T09:00:00.000+0000"));
        assert_eq!(r.get_str("Company"), Some(long));
        assert_eq!(r.get("IsDeleted"), Some(FieldRef::Bool(false)));
        assert_eq!(r.get("DurationInMinutes").and_then(FieldRef::as_i64), Some(30));
        assert_eq!(r.get("DurationInMinutes").and_then(FieldRef::as_f64), Some(30.0));
        assert_eq!(r.get("Amount").and_then(FieldRef::as_i64), None, "as Value: a float is no i64");
        // Numbers keep their JSON form: an integer stays one, a float too.
        let text = Value::Object(r.to_map()).to_string();
        assert_eq!(
            text,
            format!(
                r#"{{"Amount":6000.0,"Big":{},"Company":"{long}","CreatedDate":"2026-03-02T09:00:00.000+0000","DurationInMinutes":30,"IsDeleted":false,"List":[1,"x"],"Status":"Open"}}"#,
                u64::MAX
            ),
            "by name, as a serde_json map"
        );
        assert_eq!(
            r.keys().collect::<Vec<_>>(),
            ["Amount", "Big", "Company", "CreatedDate", "DurationInMinutes", "IsDeleted", "List", "Status"]
        );
        r.insert("Status", json!("Working"));
        assert_eq!(r.get_str("Status"), Some("Working"));
        r.insert("Status", Value::Null);
        assert_eq!(r.get("Status"), None, "a null clears");
        assert_eq!(r.remove("Company"), Some(json!(long)));
        assert_eq!(r.len(), 6);
        assert!(r.get("Amount").is_some_and(|v| v == json!(6000.0)));
    }

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
            r.insert("SystemModstamp", json!(ms));
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
            r.insert("WhoId", json!(who));
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
            r.insert("Subject", json!("x"));
        }));
        assert_eq!(t.children_of("WhoId", "00Q2").collect::<Vec<_>>(), vec!["t2", "t3"]);
        assert!(t.modify("t3", |r| {
            r.insert("WhoId", json!("00Q9"));
        }));
        assert_eq!(t.children_of("WhoId", "00Q2").collect::<Vec<_>>(), vec!["t2"]);
        assert_eq!(t.children_of("WhoId", "00Q9").collect::<Vec<_>>(), vec!["t3"]);
        assert!(!t.modify("nope", |_| {}));
    }
}
