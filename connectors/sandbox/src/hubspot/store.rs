//! The record store: one [`ObjectStore`] per object type, with a
//! `(lastmodified_ms, id)` index so a windowed search over 100k contacts
//! visits only the window, plus the association graph between records.
//!
//! Pure data: no clock, no HTTP. Times are epoch milliseconds (UTC).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use compact_str::CompactString;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::names;

/// The object types this emulator serves, by their API path name.
pub const OBJECT_TYPES: [&str; 7] = ["contacts", "calls", "emails", "meetings", "tasks", "leads", "deals"];

/// HubSpot's object type ids (`0-1` contacts …), used by v4 association bodies.
pub fn object_type_id(object_type: &str) -> &'static str {
    match object_type {
        "contacts" => "0-1",
        "calls" => "0-48",
        "emails" => "0-49",
        "meetings" => "0-47",
        "tasks" => "0-27",
        "leads" => "0-136",
        "deals" => "0-3",
        _ => "0-0",
    }
}

/// The property holding the last-modified time: `lastmodifieddate` for
/// contacts, `hs_lastmodifieddate` for everything else (filtering contacts on
/// `hs_lastmodifieddate` matches nothing on the real service).
pub fn modified_property(object_type: &str) -> &'static str {
    if object_type == "contacts" {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    }
}

/// The property holding the creation time: `createdate` on contacts and
/// deals, `hs_createdate` on engagements and lead records.
pub fn created_property(object_type: &str) -> &'static str {
    if object_type == "contacts" || object_type == "deals" {
        "createdate"
    } else {
        "hs_createdate"
    }
}

/// One HUBSPOT_DEFINED association type: `from` → `to` with `type_id`,
/// its inverse `reverse_id` (to → from), and the label HubSpot shows for it
/// (`None`: the unlabelled type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssociationType {
    pub from: &'static str,
    pub to: &'static str,
    pub type_id: u32,
    pub reverse_id: u32,
    pub label: Option<&'static str>,
}

const fn assoc(
    from: &'static str,
    to: &'static str,
    type_id: u32,
    reverse_id: u32,
    label: Option<&'static str>,
) -> AssociationType {
    AssociationType { from, to, type_id, reverse_id, label }
}

/// The association types this emulator knows, each pair once (the first
/// type of a pair is the one records are linked with by default).
///
/// Contacts ↔ engagements: HubSpot's documented ids. Lead → contact /
/// call / email / meeting / task (578 primary, 608, 596, 598, 600, 646) are
/// the SDK's `AssociationType` enum; their inverses (contact → lead and
/// engagement → lead) are not published anywhere we trust: the sandbox
/// uses the forward id + 1 and serves them all from
/// `GET /crm/v4/associations/{from}/{to}/labels`, where clients should
/// look them up. Deal → contact / call / email / meeting / task (3, 205,
/// 209, 211, 215) and their inverses (4, 206, 210, 212, 216) are HubSpot's
/// documented ids.
pub const ASSOCIATION_TYPES: [AssociationType; 15] = [
    assoc("contacts", "tasks", 203, 204, None),
    assoc("contacts", "calls", 193, 194, None),
    assoc("contacts", "emails", 197, 198, None),
    assoc("contacts", "meetings", 199, 200, None),
    assoc("leads", "contacts", 578, 579, Some("Primary")),
    assoc("leads", "contacts", 608, 609, None),
    assoc("leads", "calls", 596, 597, None),
    assoc("leads", "emails", 598, 599, None),
    assoc("leads", "meetings", 600, 601, None),
    assoc("leads", "tasks", 646, 647, None),
    assoc("deals", "contacts", 3, 4, None),
    assoc("deals", "calls", 205, 206, None),
    assoc("deals", "emails", 209, 210, None),
    assoc("deals", "meetings", 211, 212, None),
    assoc("deals", "tasks", 215, 216, None),
];

/// Every association type from `from` to `to`, as `(type id, label)`, in
/// either direction of the table.
pub fn association_types(from: &str, to: &str) -> Vec<(u32, Option<&'static str>)> {
    ASSOCIATION_TYPES
        .iter()
        .filter_map(|a| {
            if a.from == from && a.to == to {
                Some((a.type_id, a.label))
            } else if a.to == from && a.from == to {
                Some((a.reverse_id, a.label))
            } else {
                None
            }
        })
        .collect()
}

/// The type id from `from` to `to` a link gets by default, and its inverse.
pub fn association_type_ids(from: &str, to: &str) -> Option<(u32, u32)> {
    typed_association_ids(from, to, None)
}

/// `(forward, reverse)` for the association type `type_id` from `from` to
/// `to` (the default type when `None`); `None` when no such type exists.
pub fn typed_association_ids(from: &str, to: &str, type_id: Option<u32>) -> Option<(u32, u32)> {
    ASSOCIATION_TYPES.iter().find_map(|a| {
        let pair = if a.from == from && a.to == to {
            (a.type_id, a.reverse_id)
        } else if a.to == from && a.from == to {
            (a.reverse_id, a.type_id)
        } else {
            return None;
        };
        type_id.is_none_or(|t| t == pair.0).then_some(pair)
    })
}

/// The label of association type `type_id` (`None` for unlabelled types).
pub fn association_label(type_id: u32) -> Option<&'static str> {
    ASSOCIATION_TYPES.iter().find(|a| a.type_id == type_id || a.reverse_id == type_id).and_then(|a| a.label)
}

/// ISO-8601 with milliseconds and `Z`, as every HubSpot v3 timestamp.
///
/// Written digit by digit for years 0–9999 (chrono formats the rest):
/// responses render several per record, and chrono's formatter dominated a
/// 200-record page in debug builds.
pub fn iso_ms(ms: i64) -> String {
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    if !(0..=9_999).contains(&year) {
        return Utc
            .timestamp_millis_opt(ms)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
            .to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let in_day = ms.rem_euclid(86_400_000);
    let fields = [
        (year, 4, '-'),
        (month, 2, '-'),
        (day, 2, 'T'),
        (in_day / 3_600_000, 2, ':'),
        (in_day / 60_000 % 60, 2, ':'),
        (in_day / 1_000 % 60, 2, '.'),
        (in_day % 1_000, 3, 'Z'),
    ];
    let mut out = String::with_capacity(24);
    for (value, width, after) in fields {
        for place in (0..width).rev() {
            let digit = (value / 10_i64.pow(place)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
        out.push(after);
    }
    out
}

/// The proleptic Gregorian `(year, month, day)` of a day count since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parse a datetime as HubSpot accepts it: epoch milliseconds, RFC 3339, or
/// a bare `YYYY-MM-DD` (midnight UTC).
pub fn parse_time_ms(value: &str) -> Option<i64> {
    let v = value.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// Who set a property value, as `propertiesWithHistory` reports it
/// (`sourceType`, and `sourceId` / `updatedByUserId` where HubSpot sends them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A form submission (how the org's leads arrive).
    Form,
    /// A workflow, such as lead routing.
    Automation,
    /// A person in the HubSpot UI; their HubSpot user id when known.
    CrmUi { user_id: Option<u64> },
    /// An app through the API; `sourceId` is the app id, as recorded real
    /// answers show (`"sourceType": "INTEGRATION", "sourceId": "5670736"`).
    Integration { app_id: u64 },
    /// Computed by HubSpot itself (`hs_last_sales_activity_timestamp` …).
    Calculated,
    /// A CSV import (the admin create route).
    Import,
}

impl Source {
    pub fn source_type(self) -> &'static str {
        match self {
            Source::Form => "FORM",
            Source::Automation => "AUTOMATION_PLATFORM",
            Source::CrmUi { .. } => "CRM_UI",
            Source::Integration { .. } => "INTEGRATION",
            Source::Calculated => "CALCULATED",
            Source::Import => "IMPORT",
        }
    }
}

/// A property name shared by every record that holds it: names are
/// interned once per process (a portal has a few hundred at most).
pub fn intern(name: &str) -> &'static str {
    names::intern(name)
}

/// A record's stored properties: `(name number, value)` pairs in one
/// small vector, 32 bytes each: the name by its process-wide number
/// (`crate::names`), the value inline up to 24 bytes (`CompactString`),
/// which holds most HubSpot values (ids, enumerations, ISO times) without
/// an allocation. What a million-record portal needs to fit in a few GiB;
/// a map of owned strings cost several times as much.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props(Vec<(u16, CompactString)>);

impl Props {
    /// Where `name` is. Compares names, never numbers one: a name a client
    /// only asks about is not added to the process's names.
    fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| names::name(*k) == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|at| self.0[at].1.as_str())
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Set `name` to `value`, replacing any value it had.
    pub fn insert(&mut self, name: &str, value: &str) {
        match self.position(name) {
            Some(at) => self.0[at].1 = CompactString::from(value),
            None => {
                // Grow by one: records gain a property now and then, and a
                // doubled capacity would waste more than the copy costs.
                self.0.reserve_exact(1);
                self.0.push((names::id(name), CompactString::from(value)));
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.position(name)?;
        Some(self.0.swap_remove(at).1.into_string())
    }

    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|(k, _)| names::name(*k))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (names::name(*k), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Props {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut props = Props::default();
        for (k, v) in iter {
            props.insert(k.as_ref(), v.as_ref());
        }
        props.0.shrink_to_fit();
        props
    }
}

impl std::ops::Index<&str> for Props {
    type Output = str;

    fn index(&self, name: &str) -> &str {
        self.get(name).unwrap_or_else(|| panic!("no property {name}"))
    }
}

/// One value a property took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// `""` when the property was cleared.
    pub value: CompactString,
    pub at_ms: i64,
    pub source: Source,
}

impl HistoryEntry {
    /// `{"value", "timestamp", "sourceType", "sourceId"?, "updatedByUserId"?}`,
    /// the keys of recorded real answers.
    pub fn render(&self) -> Value {
        let mut v = json!({"value": self.value.as_str(), "timestamp": iso_ms(self.at_ms), "sourceType": self.source.source_type()});
        match self.source {
            Source::CrmUi { user_id: Some(user) } => {
                v["sourceId"] = json!(format!("userId:{user}"));
                v["updatedByUserId"] = json!(user);
            }
            Source::Integration { app_id } => v["sourceId"] = json!(app_id.to_string()),
            _ => {}
        }
        v
    }
}

/// One CRM record.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: u64,
    /// Stored properties (computed ones such as `hs_object_id` and the
    /// timestamps are added when rendering).
    pub properties: Props,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub archived_at_ms: Option<i64>,
    /// Set when this contact was merged away: the survivor's id.
    pub merged_into: Option<u64>,
    /// Who created the record: the source of every value it was created
    /// with.
    pub created_by: Source,
    /// For each property changed since creation, every value it took,
    /// oldest first (ties in write order), its creation value included.
    /// A property never changed has no entry here: its one value dates
    /// from the creation (see [`Object::history`]). Keeping only changes
    /// holds a 100,000-contact org's history in a few megabytes.
    pub changes: Changes,
}

/// [`Object::changes`]: per changed property, its values. A short vector
/// by name rather than a map: a record changes a handful of properties,
/// and a map's first node alone cost hundreds of bytes per record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes(Vec<(&'static str, Vec<HistoryEntry>)>);

impl Changes {
    /// The values `name` took, if it changed.
    pub fn get(&self, name: &str) -> Option<&Vec<HistoryEntry>> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Replace `name`'s values.
    pub fn insert(&mut self, name: &str, entries: Vec<HistoryEntry>) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = entries,
            None => {
                self.0.reserve_exact(1);
                self.0.push((intern(name), entries));
            }
        }
    }

    /// `name`'s values, made by `first` when it has none yet.
    pub fn get_or_insert_with(
        &mut self,
        name: &str,
        first: impl FnOnce() -> Vec<HistoryEntry>,
    ) -> &mut Vec<HistoryEntry> {
        let at = match self.0.iter().position(|(k, _)| *k == name) {
            Some(at) => at,
            None => {
                self.0.reserve_exact(1);
                self.0.push((intern(name), first()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Object {
    /// A record with no properties yet.
    pub fn new(id: u64, created_at_ms: i64, updated_at_ms: i64, created_by: Source) -> Object {
        Object {
            id,
            properties: Props::default(),
            created_at_ms,
            updated_at_ms,
            archived_at_ms: None,
            merged_into: None,
            created_by,
            changes: Changes::default(),
        }
    }

    pub fn is_archived(&self) -> bool {
        self.archived_at_ms.is_some()
    }

    /// Search sees it: neither archived nor merged away.
    pub fn is_searchable(&self) -> bool {
        self.archived_at_ms.is_none() && self.merged_into.is_none()
    }

    /// The computed numeric properties (`hs_object_id` and the two
    /// timestamps, in epoch ms) without formatting them as strings, which is
    /// what filters and sorts compare.
    pub fn numeric_property(&self, object_type: &str, name: &str) -> Option<i64> {
        if name == "hs_object_id" {
            return i64::try_from(self.id).ok();
        }
        if name == modified_property(object_type) {
            return Some(self.updated_at_ms);
        }
        if name == created_property(object_type) {
            return Some(self.created_at_ms);
        }
        None
    }

    /// The value a filter or a response sees for `name`, computed properties
    /// included.
    pub fn property(&self, object_type: &str, name: &str) -> Option<String> {
        if name == "hs_object_id" {
            return Some(self.id.to_string());
        }
        if name == modified_property(object_type) {
            return Some(iso_ms(self.updated_at_ms));
        }
        if name == created_property(object_type) {
            return Some(iso_ms(self.created_at_ms));
        }
        self.properties.get(name).map(str::to_string)
    }

    /// Set (`Some`) or clear (`None`) a stored property at `at_ms`, by
    /// `source`, recording the change in its history. Writing the value it
    /// already has changes nothing. Does not move `updated_at_ms`: the
    /// caller decides what the write does to the modification time.
    pub fn set(&mut self, name: &str, value: Option<String>, at_ms: i64, source: Source) {
        let old = self.properties.get(name).map(CompactString::from);
        if old.as_deref() == value.as_deref() {
            return;
        }
        let (created_at_ms, created_by) = (self.created_at_ms, self.created_by);
        // On the first change the creation value becomes the oldest entry.
        let entries = self.changes.get_or_insert_with(name, || {
            old.map(|v| vec![HistoryEntry { value: v, at_ms: created_at_ms, source: created_by }]).unwrap_or_default()
        });
        let entry =
            HistoryEntry { value: value.as_deref().map(CompactString::from).unwrap_or_default(), at_ms, source };
        // A write stamped in the past (committed late) still sorts by its time.
        let pos = entries.partition_point(|e| e.at_ms <= at_ms);
        entries.insert(pos, entry);
        match value {
            Some(v) => self.properties.insert(name, &v),
            None => {
                self.properties.remove(name);
            }
        }
    }

    /// Every value `name` took, oldest first: its recorded changes, or its
    /// creation value alone when it never changed. Computed properties have
    /// one entry, their current value.
    pub fn history(&self, object_type: &str, name: &str) -> Vec<HistoryEntry> {
        if let Some(entries) = self.changes.get(name) {
            return entries.clone();
        }
        if let Some(ms) = self.numeric_property(object_type, name) {
            let at_ms =
                if name == "hs_object_id" || name == created_property(object_type) { self.created_at_ms } else { ms };
            let value = self.property(object_type, name).unwrap_or_default();
            return vec![HistoryEntry { value: value.into(), at_ms, source: Source::Calculated }];
        }
        self.properties
            .get(name)
            .map(|v| vec![HistoryEntry { value: v.into(), at_ms: self.created_at_ms, source: self.created_by }])
            .unwrap_or_default()
    }

    /// The `propertiesWithHistory` block for `names`: newest first, as
    /// HubSpot sends it. Properties that never had a value are left out.
    pub fn render_history(&self, object_type: &str, names: &[String]) -> Value {
        let mut block = Map::new();
        for name in names {
            let entries = self.history(object_type, name);
            if !entries.is_empty() {
                block.insert(name.clone(), Value::Array(entries.iter().rev().map(HistoryEntry::render).collect()));
            }
        }
        Value::Object(block)
    }

    /// The `SimplePublicObject` JSON. `requested` lists the properties asked
    /// for (absent ones are `null`, like the real API); `None` means the
    /// type's defaults.
    pub fn render(&self, object_type: &str, requested: &[String]) -> Value {
        let mut props = Map::new();
        for name in requested {
            props.insert(name.clone(), self.property(object_type, name).map(Value::String).unwrap_or(Value::Null));
        }
        let mut v = json!({
            "id": self.id.to_string(),
            "properties": props,
            "createdAt": iso_ms(self.created_at_ms),
            "updatedAt": iso_ms(self.updated_at_ms),
            "archived": self.is_archived(),
        });
        if let Some(at) = self.archived_at_ms {
            v["archivedAt"] = json!(iso_ms(at));
        }
        v
    }
}

/// Append `s` to `out` as a JSON string.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let n = c as u32;
                    out.push_str("\\u00");
                    for nibble in [n >> 4, n & 0xf] {
                        out.push(char::from_digit(nibble, 16).unwrap_or('0'));
                    }
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

impl Object {
    /// Append what [`Object::render`] (plus [`Object::render_history`] for
    /// `history`, when given) would build, as JSON text. The big answers
    /// (search pages, batch reads) are written this way: building and then
    /// serialising a `Value` per record dominated them in debug builds.
    pub fn write_json(&self, out: &mut String, object_type: &str, requested: &[String], history: Option<&[String]>) {
        out.push_str("{\"id\":\"");
        out.push_str(&self.id.to_string());
        out.push_str("\",\"properties\":{");
        for (i, name) in requested.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, name);
            out.push(':');
            match self.property(object_type, name) {
                Some(v) => push_json_str(out, &v),
                None => out.push_str("null"),
            }
        }
        out.push_str("},\"createdAt\":\"");
        out.push_str(&iso_ms(self.created_at_ms));
        out.push_str("\",\"updatedAt\":\"");
        out.push_str(&iso_ms(self.updated_at_ms));
        out.push_str("\",\"archived\":");
        out.push_str(if self.is_archived() { "true" } else { "false" });
        if let Some(at) = self.archived_at_ms {
            out.push_str(",\"archivedAt\":\"");
            out.push_str(&iso_ms(at));
            out.push('"');
        }
        if let Some(names) = history {
            out.push_str(",\"propertiesWithHistory\":{");
            let mut first = true;
            for name in names {
                let entries = self.history(object_type, name);
                if entries.is_empty() {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                push_json_str(out, name);
                out.push_str(":[");
                for (i, e) in entries.iter().rev().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"value\":");
                    push_json_str(out, &e.value);
                    out.push_str(",\"timestamp\":\"");
                    out.push_str(&iso_ms(e.at_ms));
                    out.push_str("\",\"sourceType\":\"");
                    out.push_str(e.source.source_type());
                    out.push('"');
                    match e.source {
                        Source::CrmUi { user_id: Some(user) } => {
                            out.push_str(",\"sourceId\":\"userId:");
                            out.push_str(&user.to_string());
                            out.push_str("\",\"updatedByUserId\":");
                            out.push_str(&user.to_string());
                        }
                        Source::Integration { app_id } => {
                            out.push_str(",\"sourceId\":\"");
                            out.push_str(&app_id.to_string());
                            out.push('"');
                        }
                        _ => {}
                    }
                    out.push('}');
                }
                out.push(']');
            }
            out.push('}');
        }
        out.push('}');
    }
}

/// The properties returned when a request names none.
pub fn default_properties(object_type: &str) -> Vec<String> {
    let names: &[&str] = match object_type {
        "contacts" => &["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
        "tasks" => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        // What `GET /crm/v3/objects/deals` answers with when no property is named.
        "deals" => &[
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline",
        ],
        _ => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
    };
    names.iter().map(|s| s.to_string()).collect()
}

/// All records of one type.
#[derive(Debug, Default, Clone)]
pub struct ObjectStore {
    /// Every record, sorted by id. A sorted vector rather than a map:
    /// ids are handed out in increasing order, so a new record is a push,
    /// and a record costs its own size instead of a tree node's share
    /// (about twice as much).
    objects: Vec<Object>,
    /// The ids of `objects`, in the same order: what a lookup searches,
    /// eight bytes a step instead of a whole record.
    keys: Vec<u64>,
    /// `(updated_at_ms, id)` of every record search can see (not archived,
    /// not merged away), so a windowed search visits only its window.
    searchable: BTreeSet<(i64, u64)>,
    /// The same index as one sorted slice, built on first use after a
    /// change: a search's window is then a plain pass over memory, which a
    /// debug build walks many times faster than the tree.
    sorted: OnceLock<Vec<(i64, u64)>>,
    /// The searchable ids in id order, built on first use after a change: a
    /// window that holds every searchable record (a backfill) pages by
    /// binary search instead of a pass.
    ids: OnceLock<Vec<u64>>,
    /// Indexes on unique properties (contact `email`, `hasUniqueValue`
    /// properties such as a task's `handoff_key`), by property name.
    unique: BTreeMap<String, UniqueIndex>,
}

/// Records by the value of one property: `(hash of the lowercased value,
/// id)` for every record holding it, archived and merged-away ones too
/// (callers filter). A lookup reads the few ids under one hash and compares
/// their values, so finding a task by `handoff_key` costs the same at 10 or
/// 1,000,000 tasks. Lowercased because search compares strings without case;
/// exact lookups compare again.
#[derive(Debug, Default, Clone)]
struct UniqueIndex {
    entries: BTreeSet<(u64, u64)>,
}

fn value_key(value: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same hash on every run.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.to_lowercase().hash(&mut h);
    h.finish()
}

impl ObjectStore {
    /// Where record `id` is, or where it would go.
    fn position(&self, id: u64) -> Result<usize, usize> {
        match self.keys.last() {
            // The common case of a new record: past the last.
            Some(last) if *last < id => Err(self.keys.len()),
            _ => self.keys.binary_search(&id),
        }
    }

    pub fn get(&self, id: u64) -> Option<&Object> {
        self.position(id).ok().map(|at| &self.objects[at])
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Insert or replace, keeping the indexes in step.
    pub fn put(&mut self, obj: Object) {
        let at = self.position(obj.id);
        if let Ok(at) = at {
            let old = &self.objects[at];
            self.searchable.remove(&(old.updated_at_ms, old.id));
            for index in self.unique.iter_mut() {
                if let Some(v) = old.properties.get(index.0) {
                    index.1.entries.remove(&(value_key(v), old.id));
                }
            }
        }
        if obj.is_searchable() {
            self.searchable.insert((obj.updated_at_ms, obj.id));
        }
        for (name, index) in self.unique.iter_mut() {
            if let Some(v) = obj.properties.get(name) {
                index.entries.insert((value_key(v), obj.id));
            }
        }
        self.sorted = OnceLock::new();
        self.ids = OnceLock::new();
        match at {
            Ok(at) => self.objects[at] = obj,
            Err(at) => {
                self.keys.insert(at, obj.id);
                self.objects.insert(at, obj);
            }
        }
    }

    /// Index `name` for lookups by value (once; later calls do nothing).
    /// Builds from the records already held, then follows every change.
    pub fn index_property(&mut self, name: &str) {
        if self.unique.contains_key(name) {
            return;
        }
        let mut index = UniqueIndex::default();
        for o in &self.objects {
            if let Some(v) = o.properties.get(name) {
                index.entries.insert((value_key(v), o.id));
            }
        }
        self.unique.insert(name.to_string(), index);
    }

    /// The records whose `name` equals `value` without regard to case,
    /// archived and merged-away ones included, in id order; `None` when
    /// `name` is not indexed.
    pub fn find_indexed(&self, name: &str, value: &str) -> Option<Vec<&Object>> {
        let index = self.unique.get(name)?;
        let key = value_key(value);
        let lower = value.to_lowercase();
        Some(
            index
                .entries
                .range((key, 0)..=(key, u64::MAX))
                .filter_map(|(_, id)| self.get(*id))
                .filter(|o| o.properties.get(name).is_some_and(|v| v.to_lowercase() == lower))
                .collect(),
        )
    }

    /// Whether `name` has a value index.
    pub fn is_indexed(&self, name: &str) -> bool {
        self.unique.contains_key(name)
    }

    /// Change one record in place (`f` may touch anything but the id),
    /// keeping the index in step. Returns what `f` returned, or `None`
    /// when there is no such record.
    pub fn update<R>(&mut self, id: u64, f: impl FnOnce(&mut Object) -> R) -> Option<R> {
        let at = self.position(id).ok()?;
        let obj = &mut self.objects[at];
        let before = (obj.updated_at_ms, obj.is_searchable());
        let indexed_before: Vec<Option<String>> =
            self.unique.keys().map(|name| obj.properties.get(name).map(str::to_string)).collect();
        let out = f(obj);
        obj.id = id;
        for ((name, index), old) in self.unique.iter_mut().zip(indexed_before) {
            let new = obj.properties.get(name);
            if old.as_deref() != new {
                if let Some(v) = &old {
                    index.entries.remove(&(value_key(v), id));
                }
                if let Some(v) = new {
                    index.entries.insert((value_key(v), id));
                }
            }
        }
        let after = (obj.updated_at_ms, obj.is_searchable());
        if before != after {
            self.searchable.remove(&(before.0, id));
            if after.1 {
                self.searchable.insert((after.0, id));
            }
            self.sorted = OnceLock::new();
            self.ids = OnceLock::new();
        }
        Some(out)
    }

    /// Every record in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Object> {
        self.objects.iter()
    }

    /// Records with `id >= from_id`, in id order (list paging).
    pub fn from_id(&self, from_id: u64) -> impl Iterator<Item = &Object> {
        let start = self.keys.partition_point(|id| *id < from_id);
        self.objects[start..].iter()
    }

    /// `(updated_at_ms, id)` of the searchable records with
    /// `from_ms <= updated_at_ms < to_ms` (either bound open when `None`),
    /// in that order, straight from the index.
    pub fn searchable_between(
        &self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> impl Iterator<Item = (i64, u64)> + '_ {
        let sorted = self.sorted.get_or_init(|| self.searchable.iter().copied().collect());
        let lo = from_ms.map_or(0, |ms| sorted.partition_point(|(t, _)| *t < ms));
        let hi = to_ms.map_or(sorted.len(), |ms| sorted.partition_point(|(t, _)| *t < ms)).max(lo);
        sorted[lo..hi].iter().copied()
    }

    /// The modification times of the oldest and newest searchable records.
    pub fn searchable_span(&self) -> Option<(i64, i64)> {
        let sorted = self.sorted.get_or_init(|| self.searchable.iter().copied().collect());
        Some((sorted.first()?.0, sorted.last()?.0))
    }

    /// Every searchable id, ascending.
    pub fn searchable_ids(&self) -> &[u64] {
        self.ids.get_or_init(|| {
            let mut ids: Vec<u64> = self.searchable.iter().map(|(_, id)| *id).collect();
            ids.sort_unstable();
            ids
        })
    }

    /// The searchable records of [`ObjectStore::searchable_between`].
    pub fn modified_between(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> impl Iterator<Item = &Object> {
        self.searchable_between(from_ms, to_ms).filter_map(|(_, id)| self.get(id))
    }

    /// First record whose `name` property equals `value`, archived ones
    /// skipped: from the value index when `name` has one, else a scan.
    pub fn find_by_property(&self, name: &str, value: &str) -> Option<&Object> {
        if let Some(found) = self.find_indexed(name, value) {
            return found.into_iter().find(|o| !o.is_archived() && o.properties.get(name).is_some_and(|v| v == value));
        }
        self.objects.iter().find(|o| !o.is_archived() && o.properties.get(name) == Some(value))
    }
}

/// A directed association edge's far end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AssocEnd {
    pub to_id: u64,
    pub type_id: u32,
}

/// An object type's position in [`OBJECT_TYPES`] (a compact edge key).
fn type_index(object_type: &str) -> Option<u8> {
    OBJECT_TYPES.iter().position(|t| *t == object_type).and_then(|i| u8::try_from(i).ok())
}

/// Associations in both directions, one ordered set of
/// `(from_type, from_id, to_type, to_id, type_id)` edges (types by their
/// index in [`OBJECT_TYPES`]), so the edges of one record to one type are a
/// contiguous range. One flat set keeps an edge at a few dozen bytes: a map
/// of small sets cost a tree node per record and type, most of the memory of
/// a large org.
#[derive(Debug, Default, Clone)]
pub struct Associations {
    edges: BTreeSet<(u8, u64, u8, u64, u32)>,
}

impl Associations {
    /// Associate both ways with the pair's default HUBSPOT_DEFINED type.
    pub fn link(&mut self, from_type: &str, from_id: u64, to_type: &str, to_id: u64) {
        self.link_typed(from_type, from_id, to_type, to_id, None);
    }

    /// [`Associations::link`] with the type a client named (`type_id` is
    /// the forward type; the default type of the pair when `None`).
    pub fn link_typed(&mut self, from_type: &str, from_id: u64, to_type: &str, to_id: u64, type_id: Option<u32>) {
        let (Some((forward, reverse)), Some(from), Some(to)) =
            (typed_association_ids(from_type, to_type, type_id), type_index(from_type), type_index(to_type))
        else {
            return;
        };
        self.edges.insert((from, from_id, to, to_id, forward));
        self.edges.insert((to, to_id, from, from_id, reverse));
    }

    /// The far ends of `from_id`'s edges to `to_type`, by id then type.
    pub fn of(&self, from_type: &str, from_id: u64, to_type: &str) -> Vec<AssocEnd> {
        let (Some(from), Some(to)) = (type_index(from_type), type_index(to_type)) else {
            return Vec::new();
        };
        self.edges
            .range((from, from_id, to, 0, 0)..=(from, from_id, to, u64::MAX, u32::MAX))
            .map(|e| AssocEnd { to_id: e.3, type_id: e.4 })
            .collect()
    }

    /// Move every edge of `loser` onto `survivor`, as a merge does. Visits
    /// only the loser's edges and their far ends.
    pub fn remap(&mut self, object_type: &str, loser: u64, survivor: u64) {
        let Some(t) = type_index(object_type) else { return };
        let own: Vec<(u8, u64, u8, u64, u32)> =
            self.edges.range((t, loser, 0, 0, 0)..=(t, loser, u8::MAX, u64::MAX, u32::MAX)).copied().collect();
        for edge in own {
            let (_, _, to_type, to_id, type_id) = edge;
            self.edges.remove(&edge);
            self.edges.insert((t, survivor, to_type, to_id, type_id));
            let back: Vec<(u8, u64, u8, u64, u32)> = self
                .edges
                .range((to_type, to_id, t, loser, 0)..=(to_type, to_id, t, loser, u32::MAX))
                .copied()
                .collect();
            for b in back {
                self.edges.remove(&b);
                self.edges.insert((to_type, to_id, t, survivor, b.4));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(id: u64, updated_at_ms: i64) -> Object {
        Object::new(id, 0, updated_at_ms, Source::Form)
    }

    #[test]
    fn modified_window_uses_the_index_and_follows_updates() {
        let mut s = ObjectStore::default();
        s.put(obj(1, 100));
        s.put(obj(2, 200));
        s.put(obj(3, 300));
        let ids: Vec<u64> = s.modified_between(Some(200), Some(300)).map(|o| o.id).collect();
        assert_eq!(ids, vec![2]);
        s.put(obj(1, 250));
        let ids: Vec<u64> = s.modified_between(Some(200), None).map(|o| o.id).collect();
        assert_eq!(ids, vec![2, 1, 3]);
    }

    #[test]
    fn archived_and_merged_records_leave_the_search_index() {
        let mut s = ObjectStore::default();
        s.put(obj(1, 100));
        s.put(obj(2, 200));
        let mut gone = obj(3, 300);
        gone.archived_at_ms = Some(310);
        s.put(gone);
        assert_eq!(s.searchable_between(None, None).collect::<Vec<_>>(), vec![(100, 1), (200, 2)]);
        s.update(2, |o| o.merged_into = Some(1));
        s.update(1, |o| o.updated_at_ms = 400);
        assert_eq!(s.searchable_between(None, None).collect::<Vec<_>>(), vec![(400, 1)]);
        assert_eq!(s.len(), 3, "the records themselves stay");
    }

    #[test]
    fn history_keeps_the_creation_value_then_each_change_newest_first_when_rendered() {
        let mut o = Object::new(9, 1_000, 1_000, Source::Form);
        o.properties.insert("hubspot_owner_id", "80000000");
        o.properties.insert("email", "a@b.c");
        assert!(o.changes.is_empty(), "nothing changed yet");
        o.set("hubspot_owner_id", Some("70000003".into()), 5_000, Source::Automation);
        o.set("hubspot_owner_id", Some("70000003".into()), 6_000, Source::Automation);
        // Committed late: stamped before the automation's write.
        o.set("hubspot_owner_id", Some("70000004".into()), 3_000, Source::CrmUi { user_id: Some(9_000_004) });
        o.set("hs_lead_status", Some("NEW".into()), 2_000, Source::Integration { app_id: 77 });
        o.set("hs_lead_status", None, 7_000, Source::Integration { app_id: 77 });
        let owner: Vec<(String, i64)> =
            o.history("contacts", "hubspot_owner_id").into_iter().map(|e| (e.value.to_string(), e.at_ms)).collect();
        assert_eq!(owner, vec![("80000000".into(), 1_000), ("70000004".into(), 3_000), ("70000003".into(), 5_000)]);
        assert_eq!(&o.properties["hubspot_owner_id"], "70000004", "the last write wins the current value");

        let h = o.render_history(
            "contacts",
            &["hubspot_owner_id".into(), "hs_lead_status".into(), "email".into(), "phone".into()],
        );
        let owner = h["hubspot_owner_id"].as_array().unwrap();
        assert_eq!(owner[0]["value"], "70000003", "newest first");
        assert_eq!(owner[0]["sourceType"], "AUTOMATION_PLATFORM");
        assert!(owner[0].get("sourceId").is_none());
        assert_eq!(owner[1]["sourceType"], "CRM_UI");
        assert_eq!(owner[1]["sourceId"], "userId:9000004");
        assert_eq!(owner[1]["updatedByUserId"], 9_000_004);
        assert_eq!(owner[2]["timestamp"], "1970-01-01T00:00:01.000Z");
        assert_eq!(owner[2]["sourceType"], "FORM");
        let status = h["hs_lead_status"].as_array().unwrap();
        assert_eq!(
            (status[0]["value"].as_str(), status[1]["value"].as_str()),
            (Some(""), Some("NEW")),
            "a clear is an empty value"
        );
        assert_eq!(status[1]["sourceType"], "INTEGRATION");
        assert_eq!(status[1]["sourceId"], "77");
        assert_eq!(h["email"].as_array().unwrap().len(), 1, "never changed: its creation value");
        assert!(h.get("phone").is_none(), "never set: no history");
    }

    #[test]
    fn written_json_is_the_rendered_value() {
        let mut o = Object::new(7, 1_700_000_000_123, 1_700_000_100_000, Source::Form);
        o.properties.insert("email", "a\"b\\c@d.e\n\u{1}é");
        o.set(
            "hubspot_owner_id",
            Some("70000001".into()),
            1_700_000_050_000,
            Source::CrmUi { user_id: Some(9_000_001) },
        );
        o.set("hubspot_owner_id", Some("70000002".into()), 1_700_000_060_000, Source::Integration { app_id: 5 });
        for archived in [None, Some(1_700_000_200_000)] {
            o.archived_at_ms = archived;
            let props: Vec<String> = ["email", "phone", "hubspot_owner_id", "hs_object_id", "lastmodifieddate"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let history: Vec<String> = ["hubspot_owner_id", "email", "phone"].iter().map(|s| s.to_string()).collect();
            let mut text = String::new();
            o.write_json(&mut text, "contacts", &props, Some(&history));
            let mut want = o.render("contacts", &props);
            want["propertiesWithHistory"] = o.render_history("contacts", &history);
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), want, "{text}");
            let mut plain = String::new();
            o.write_json(&mut plain, "contacts", &props, None);
            assert_eq!(serde_json::from_str::<Value>(&plain).unwrap(), o.render("contacts", &props));
        }
    }

    #[test]
    fn renders_strings_nulls_and_iso_millis() {
        let mut o = obj(7, 1_700_000_000_123);
        o.properties.insert("email", "a@b.c");
        let v = o.render("contacts", &["email".into(), "phone".into(), "lastmodifieddate".into()]);
        assert_eq!(v["id"], "7");
        assert_eq!(v["properties"]["email"], "a@b.c");
        assert_eq!(v["properties"]["phone"], Value::Null);
        assert_eq!(v["properties"]["lastmodifieddate"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["updatedAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["archived"], false);
        assert!(v.get("archivedAt").is_none());
    }

    #[test]
    fn links_both_ways_with_the_documented_type_ids_and_remaps_on_merge() {
        let mut a = Associations::default();
        a.link("tasks", 10, "contacts", 1);
        assert_eq!(a.of("tasks", 10, "contacts"), vec![AssocEnd { to_id: 1, type_id: 204 }]);
        assert_eq!(a.of("contacts", 1, "tasks"), vec![AssocEnd { to_id: 10, type_id: 203 }]);
        a.remap("contacts", 1, 2);
        assert_eq!(a.of("tasks", 10, "contacts"), vec![AssocEnd { to_id: 2, type_id: 204 }]);
        assert_eq!(a.of("contacts", 2, "tasks"), vec![AssocEnd { to_id: 10, type_id: 203 }]);
        assert!(a.of("contacts", 1, "tasks").is_empty());
    }

    #[test]
    fn iso_ms_matches_chrono_across_centuries_leap_days_and_negative_times() {
        let chrono_iso =
            |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut samples = vec![
            0,
            -1,
            1,
            951_782_400_000,
            951_868_799_999,
            1_772_409_600_123,
            253_402_300_799_999,
            -62_135_596_800_000,
        ];
        let mut x: i64 = 12_345;
        for _ in 0..2_000 {
            // A fixed LCG: the same spread of instants every run.
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            samples.push(x.rem_euclid(253_402_300_800_000));
        }
        for ms in samples {
            assert_eq!(iso_ms(ms), chrono_iso(ms), "{ms}");
        }
        assert_eq!(iso_ms(253_402_300_800_000), chrono_iso(253_402_300_800_000), "year 10000 falls back to chrono");
    }

    #[test]
    fn parses_the_time_forms_hubspot_accepts() {
        assert_eq!(parse_time_ms("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_time_ms("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(parse_time_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
