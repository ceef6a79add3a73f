//! The record store: one [`ObjectStore`] per object type, with a
//! `(lastmodified_ms, id)` index so a windowed search over 100k contacts
//! visits only the window, plus the association graph between records.
//!
//! Pure data: no clock, no HTTP. Times are epoch milliseconds (UTC).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Map, Value};

/// The object types this emulator serves, by their API path name.
pub const OBJECT_TYPES: [&str; 5] = ["contacts", "calls", "emails", "meetings", "tasks"];

/// HubSpot's object type ids (`0-1` contacts …), used by v4 association bodies.
pub fn object_type_id(object_type: &str) -> &'static str {
    match object_type {
        "contacts" => "0-1",
        "calls" => "0-48",
        "emails" => "0-49",
        "meetings" => "0-47",
        "tasks" => "0-27",
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

/// The property holding the creation time.
pub fn created_property(object_type: &str) -> &'static str {
    if object_type == "contacts" {
        "createdate"
    } else {
        "hs_createdate"
    }
}

/// The HUBSPOT_DEFINED association type id from `from` to `to`, and back.
/// Contacts ↔ engagements only: the types handoff reads and writes.
pub fn association_type_ids(from: &str, to: &str) -> Option<(u32, u32)> {
    let (contact_to, engagement_to) = match (from, to) {
        ("contacts", other) | (other, "contacts") => match other {
            "tasks" => (203, 204),
            "calls" => (193, 194),
            "emails" => (197, 198),
            "meetings" => (199, 200),
            _ => return None,
        },
        _ => return None,
    };
    if from == "contacts" {
        Some((contact_to, engagement_to))
    } else {
        Some((engagement_to, contact_to))
    }
}

/// ISO-8601 with milliseconds and `Z`, as every HubSpot v3 timestamp.
pub fn iso_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
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

/// One CRM record.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: u64,
    /// Stored properties (computed ones such as `hs_object_id` and the
    /// timestamps are added when rendering).
    pub properties: BTreeMap<String, String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub archived_at_ms: Option<i64>,
    /// Set when this contact was merged away: the survivor's id.
    pub merged_into: Option<u64>,
}

impl Object {
    pub fn is_archived(&self) -> bool {
        self.archived_at_ms.is_some()
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
        self.properties.get(name).cloned()
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

/// The properties returned when a request names none.
pub fn default_properties(object_type: &str) -> Vec<String> {
    let names: &[&str] = match object_type {
        "contacts" => &["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
        "tasks" => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        _ => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
    };
    names.iter().map(|s| s.to_string()).collect()
}

/// All records of one type.
#[derive(Debug, Default, Clone)]
pub struct ObjectStore {
    objects: BTreeMap<u64, Object>,
    /// `(updated_at_ms, id)` of every record, archived ones included.
    by_modified: BTreeSet<(i64, u64)>,
}

impl ObjectStore {
    pub fn get(&self, id: u64) -> Option<&Object> {
        self.objects.get(&id)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Insert or replace, keeping the index in step.
    pub fn put(&mut self, obj: Object) {
        if let Some(old) = self.objects.get(&obj.id) {
            self.by_modified.remove(&(old.updated_at_ms, old.id));
        }
        self.by_modified.insert((obj.updated_at_ms, obj.id));
        self.objects.insert(obj.id, obj);
    }

    /// Every record in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    /// Records with `id >= from_id`, in id order (list paging).
    pub fn from_id(&self, from_id: u64) -> impl Iterator<Item = &Object> {
        self.objects.range(from_id..).map(|(_, o)| o)
    }

    /// Records with `from_ms <= updated_at_ms < to_ms` (either bound open
    /// when `None`), in `(updated_at_ms, id)` order, without a full scan.
    pub fn modified_between(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> impl Iterator<Item = &Object> {
        let lower = match from_ms {
            Some(ms) => Bound::Included((ms, 0)),
            None => Bound::Unbounded,
        };
        let upper = match to_ms {
            Some(ms) => Bound::Excluded((ms, 0)),
            None => Bound::Unbounded,
        };
        self.by_modified.range((lower, upper)).filter_map(|(_, id)| self.objects.get(id))
    }

    /// First record whose `name` property equals `value`, archived ones skipped.
    pub fn find_by_property(&self, name: &str, value: &str) -> Option<&Object> {
        self.objects
            .values()
            .find(|o| !o.is_archived() && o.properties.get(name).map(String::as_str) == Some(value))
    }
}

/// A directed association edge's far end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AssocEnd {
    pub to_id: u64,
    pub type_id: u32,
}

/// Associations in both directions: `(from_type, from_id, to_type)` → ends.
#[derive(Debug, Default, Clone)]
pub struct Associations {
    edges: BTreeMap<(String, u64, String), BTreeSet<AssocEnd>>,
}

impl Associations {
    /// Associate both ways with the HUBSPOT_DEFINED types (`type_id` is the
    /// forward type the client sent; the reverse is derived).
    pub fn link(&mut self, from_type: &str, from_id: u64, to_type: &str, to_id: u64) {
        let Some((forward, reverse)) = association_type_ids(from_type, to_type) else {
            return;
        };
        self.edges
            .entry((from_type.to_string(), from_id, to_type.to_string()))
            .or_default()
            .insert(AssocEnd { to_id, type_id: forward });
        self.edges
            .entry((to_type.to_string(), to_id, from_type.to_string()))
            .or_default()
            .insert(AssocEnd { to_id: from_id, type_id: reverse });
    }

    pub fn of(&self, from_type: &str, from_id: u64, to_type: &str) -> Vec<AssocEnd> {
        self.edges
            .get(&(from_type.to_string(), from_id, to_type.to_string()))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Move every edge of `loser` (a contact) onto `survivor`, as a merge does.
    pub fn remap(&mut self, object_type: &str, loser: u64, survivor: u64) {
        let keys: Vec<_> = self.edges.keys().filter(|(t, id, _)| t == object_type && *id == loser).cloned().collect();
        for key in keys {
            let Some(ends) = self.edges.remove(&key) else { continue };
            for end in ends {
                let to_type = key.2.clone();
                if let Some(back) = self.edges.get_mut(&(to_type.clone(), end.to_id, object_type.to_string())) {
                    let moved: Vec<_> = back.iter().filter(|e| e.to_id == loser).copied().collect();
                    for e in moved {
                        back.remove(&e);
                        back.insert(AssocEnd { to_id: survivor, type_id: e.type_id });
                    }
                }
                self.edges
                    .entry((object_type.to_string(), survivor, to_type))
                    .or_default()
                    .insert(end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(id: u64, updated_at_ms: i64) -> Object {
        Object {
            id,
            properties: BTreeMap::new(),
            created_at_ms: 0,
            updated_at_ms,
            archived_at_ms: None,
            merged_into: None,
        }
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
    fn renders_strings_nulls_and_iso_millis() {
        let mut o = obj(7, 1_700_000_000_123);
        o.properties.insert("email".into(), "a@b.c".into());
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
    fn parses_the_time_forms_hubspot_accepts() {
        assert_eq!(parse_time_ms("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_time_ms("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(parse_time_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
