//! The daily digests, composed from the evaluations the store holds.
//!
//! - **Rep**: every lead the rep owns that is still undispositioned (its
//!   disposition clock running, or breached and not yet decided) or has a
//!   sales clock at risk; oldest first (by when it came to sales), each
//!   with the clock that matters most now, its due time in the rep's zone
//!   and a link to the record.
//! - **Manager**: the leads of the people reporting to them with a sales
//!   clock breached and still open, or at risk; by rep, oldest first.
//!
//! Waived leads (below the criteria, incomplete data) carry no obligation
//! and never appear; neither do deleted or merged ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use handoff_model::{Lead, Owner};
use serde::Serialize;

use super::{esc, slack_esc, DigestKind};
use crate::engine::{Clock, ClockKind, ClockStatus};
use crate::store::{LeadState, Store, StoreError, StoredLead};

/// Builds a link to a lead: a template with `{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordUrl(pub String);

impl RecordUrl {
    pub fn salesforce(instance_url: &str) -> RecordUrl {
        RecordUrl(format!("{}/lightning/r/Lead/{{id}}/view", instance_url.trim_end_matches('/')))
    }

    /// A contact's record (`0-1`), or a lead record's (`0-136`) when
    /// `lead_records`.
    pub fn hubspot(portal_id: &str, lead_records: bool) -> RecordUrl {
        let object = if lead_records { "0-136" } else { "0-1" };
        RecordUrl(format!("https://app.hubspot.com/contacts/{portal_id}/record/{object}/{{id}}"))
    }

    pub fn for_lead(&self, id: &str) -> String {
        let encoded: String = id
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.0.replace("{id}", &encoded)
    }
}

/// One lead in a digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub lead_id: String,
    pub label: String,
    pub url: String,
    pub grade: Option<String>,
    pub owner_id: Option<String>,
    pub owner_name: Option<String>,
    /// When the lead came to sales (its disposition clock's start).
    pub since: DateTime<Utc>,
    pub clock: ClockKind,
    pub status: ClockStatus,
    pub due_at: Option<DateTime<Utc>>,
}

/// A digest's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    pub kind: DigestKind,
    pub recipient_id: String,
    pub recipient_name: String,
    pub local_date: NaiveDate,
    #[serde(serialize_with = "ser_tz")]
    pub time_zone: Tz,
    pub as_of: DateTime<Utc>,
    pub rows: Vec<Row>,
}

fn ser_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// The leads and evaluations digests are composed from, indexed by owner.
///
/// Only leads a digest could show are kept (a clock running or an open
/// breach), so the book grows with the open work, not with the org.
pub struct Book<'a> {
    by_owner: HashMap<String, Vec<(StoredLead, LeadState)>>,
    /// Every owner of a lead handoff holds, shown or not.
    holders: BTreeSet<String>,
    owners: HashMap<&'a str, &'a Owner>,
}

impl<'a> Book<'a> {
    pub fn new(leads: &[StoredLead], states: &BTreeMap<String, LeadState>, owners: &'a [Owner]) -> Book<'a> {
        let mut book = Book::empty(owners);
        for l in leads {
            book.add(l.clone(), states.get(&l.lead.id).cloned());
        }
        book
    }

    /// The book of what `store` holds, read a slice of leads at a time.
    pub fn from_store(store: &Store, owners: &'a [Owner]) -> Result<Book<'a>, StoreError> {
        let mut book = Book::empty(owners);
        store.each_lead_with_state(|l, s| book.add(l, s))?;
        Ok(book)
    }

    fn empty(owners: &'a [Owner]) -> Book<'a> {
        Book {
            by_owner: HashMap::new(),
            holders: BTreeSet::new(),
            owners: owners.iter().map(|o| (o.id.as_str(), o)).collect(),
        }
    }

    fn add(&mut self, l: StoredLead, state: Option<LeadState>) {
        if l.lead.deleted || l.lead.merged_into.is_some() {
            return;
        }
        let (Some(owner), Some(state)) = (l.lead.owner_id.clone(), state) else { return };
        self.holders.insert(owner.clone());
        if focus(&state).is_some() {
            self.by_owner.entry(owner).or_default().push((l, state));
        }
    }

    /// Whether `owner_id` owns any lead handoff holds.
    pub fn owns_leads(&self, owner_id: &str) -> bool {
        self.holders.contains(owner_id)
    }

    /// Owner ids that own leads, in order.
    pub fn lead_owners(&self) -> Vec<&str> {
        self.holders.iter().map(String::as_str).collect()
    }

    pub fn name_of(&self, owner_id: &str) -> String {
        self.owners.get(owner_id).and_then(|o| o.name.clone()).unwrap_or_else(|| owner_id.to_string())
    }

    fn leads_of(&self, owner_id: &str) -> &[(StoredLead, LeadState)] {
        self.by_owner.get(owner_id).map(Vec::as_slice).unwrap_or_default()
    }
}

fn open_breach(c: &Clock) -> bool {
    c.status == ClockStatus::Breached && c.stopped_at.is_none()
}

fn running(c: &Clock) -> bool {
    matches!(c.status, ClockStatus::Pending | ClockStatus::AtRisk) && c.due_at.is_some()
}

/// The clock to show: an open breach first, then at risk, then running;
/// the earliest due among equals.
fn focus(state: &LeadState) -> Option<&Clock> {
    let rank = |c: &Clock| match c.status {
        ClockStatus::Breached => 0,
        ClockStatus::AtRisk => 1,
        _ => 2,
    };
    state
        .clocks
        .iter()
        .filter(|c| c.kind != ClockKind::Routing && (open_breach(c) || running(c)))
        .min_by_key(|c| (rank(c), c.due_at))
}

/// "First Last (Company)" from the usual name fields of either CRM.
pub fn lead_label(lead: &Lead) -> String {
    let get = |name: &str| {
        lead.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let person = [get("FirstName"), get("LastName")].into_iter().flatten().collect::<Vec<_>>().join(" ");
    match (person.is_empty(), get("Company")) {
        (false, Some(c)) => format!("{person} ({c})"),
        (false, None) => person,
        (true, Some(c)) => c.to_string(),
        (true, None) => format!("lead {}", lead.id),
    }
}

fn row(book: &Book<'_>, l: &StoredLead, s: &LeadState, c: &Clock, urls: &RecordUrl) -> Row {
    let since = s
        .clocks
        .iter()
        .find(|c| c.kind == ClockKind::Disposition)
        .and_then(|d| d.received_at)
        .unwrap_or(l.lead.created_at);
    Row {
        lead_id: l.lead.id.clone(),
        label: lead_label(&l.lead),
        url: urls.for_lead(&l.lead.id),
        grade: s.grade.clone(),
        owner_id: l.lead.owner_id.clone(),
        owner_name: l.lead.owner_id.as_deref().map(|o| book.name_of(o)),
        since,
        clock: c.kind,
        status: c.status,
        due_at: c.due_at,
    }
}

fn usable(l: &StoredLead, s: &LeadState) -> bool {
    s.error.is_none() && s.waived.is_none() && !l.lead.deleted && l.lead.merged_into.is_none()
}

/// The rep's rows: undispositioned or at risk, oldest first.
pub fn rep_rows(book: &Book<'_>, rep: &str, urls: &RecordUrl) -> Vec<Row> {
    let mut rows: Vec<Row> = book
        .leads_of(rep)
        .iter()
        .filter(|(l, s)| usable(l, s))
        .filter_map(|(l, s)| {
            let undispositioned =
                s.clocks.iter().any(|c| c.kind == ClockKind::Disposition && (running(c) || open_breach(c)));
            let at_risk = s.clocks.iter().any(|c| c.kind != ClockKind::Routing && c.status == ClockStatus::AtRisk);
            if !(undispositioned || at_risk) {
                return None;
            }
            focus(s).map(|c| row(book, l, s, c, urls))
        })
        .collect();
    rows.sort_by(|a, b| (a.since, &a.lead_id).cmp(&(b.since, &b.lead_id)));
    rows
}

/// The manager's rows: the team's open breaches and at-risk leads, by rep
/// name, oldest first.
pub fn manager_rows(book: &Book<'_>, team: &[String], urls: &RecordUrl) -> Vec<Row> {
    let mut rows: Vec<Row> = team
        .iter()
        .flat_map(|rep| book.leads_of(rep).iter())
        .filter(|(l, s)| usable(l, s))
        .filter_map(|(l, s)| {
            let hot = s
                .clocks
                .iter()
                .any(|c| c.kind != ClockKind::Routing && (open_breach(c) || c.status == ClockStatus::AtRisk));
            if !hot {
                return None;
            }
            focus(s).map(|c| row(book, l, s, c, urls))
        })
        .collect();
    rows.sort_by(|a, b| (&a.owner_name, a.since, &a.lead_id).cmp(&(&b.owner_name, b.since, &b.lead_id)));
    rows
}

fn clock_words(kind: ClockKind) -> &'static str {
    match kind {
        ClockKind::FirstTouch => "first touch",
        ClockKind::SalDecision => "accept or reject",
        ClockKind::Cadence => "follow-up cadence",
        ClockKind::Disposition => "disposition",
        ClockKind::ReasonCode => "reason code",
        ClockKind::Discovery => "discovery meeting",
        ClockKind::Opportunity => "opportunity",
        ClockKind::Routing => "routing",
    }
}

fn status_words(status: ClockStatus) -> &'static str {
    match status {
        ClockStatus::Breached => "OVERDUE",
        ClockStatus::AtRisk => "at risk",
        ClockStatus::Pending => "open",
        ClockStatus::Met => "met",
        ClockStatus::Waived => "waived",
        ClockStatus::Ended => "ended",
    }
}

fn local(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%a %b %-d %H:%M").to_string()
}

impl Digest {
    pub fn subject(&self, instance: &str) -> String {
        let day = self.local_date.format("%a %b %-d");
        let n = self.rows.len();
        match self.kind {
            DigestKind::Rep if n == 0 => format!("SLA digest {day}: nothing waiting for you ({instance})"),
            DigestKind::Rep => format!("SLA digest {day}: {n} lead(s) waiting for you ({instance})"),
            DigestKind::Manager => {
                let overdue = self.rows.iter().filter(|r| r.status == ClockStatus::Breached).count();
                format!("SLA team digest {day}: {overdue} overdue, {} at risk ({instance})", n - overdue)
            }
        }
    }

    fn intro(&self) -> String {
        match (self.kind, self.rows.is_empty()) {
            (DigestKind::Rep, true) => "Nothing is waiting for you: every lead you own is dispositioned.".into(),
            (DigestKind::Rep, false) => {
                "Your undispositioned and at-risk leads, oldest first. Each needs a logged touch or a disposition (accepted, rejected with a reason code, closed) before it is due.".into()
            }
            (DigestKind::Manager, true) => "Nobody on your team has an overdue or at-risk lead.".into(),
            (DigestKind::Manager, false) => "Your team's overdue and at-risk leads, by rep, oldest first.".into(),
        }
    }

    fn line(&self, r: &Row) -> String {
        let due = r.due_at.map(|d| local(d, self.time_zone)).unwrap_or_else(|| "no due time".into());
        let grade = r.grade.as_deref().map(|g| format!("grade {g} · ")).unwrap_or_default();
        format!("{grade}{} due {due} — {}", clock_words(r.clock), status_words(r.status))
    }

    /// The plain-text part (also the body of a CRM task).
    pub fn text(&self, instance: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.subject(instance));
        let _ = writeln!(out, "For {} · times in {}", self.recipient_name, self.time_zone.name());
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", self.intro());
        let mut last_rep: Option<&str> = None;
        for (i, r) in self.rows.iter().enumerate() {
            if self.kind == DigestKind::Manager && last_rep != r.owner_name.as_deref() {
                last_rep = r.owner_name.as_deref();
                let _ = writeln!(out);
                let _ = writeln!(out, "{}:", r.owner_name.as_deref().unwrap_or("(unassigned)"));
            } else if i == 0 {
                let _ = writeln!(out);
            }
            let _ = writeln!(out, "{:>3}. {}", i + 1, r.label);
            let _ = writeln!(out, "     {}", self.line(r));
            let _ = writeln!(out, "     {}", r.url);
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "As of {}. Sent by handoff, which enforces the lead-handoff SLA both teams signed.",
            local(self.as_of, self.time_zone)
        );
        out
    }

    /// The HTML part: the same content as a table, overdue in red, at risk in amber.
    pub fn html(&self, instance: &str) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><div class=\"wrap\">",
            esc(&self.subject(instance))
        );
        let _ = write!(
            out,
            "<h1>{}</h1><p class=\"sub\">For {} · times in {}</p><p>{}</p>",
            esc(&self.subject(instance)),
            esc(&self.recipient_name),
            esc(self.time_zone.name()),
            esc(&self.intro())
        );
        if !self.rows.is_empty() {
            out.push_str("<table><tr><th>#</th><th>Lead</th>");
            if self.kind == DigestKind::Manager {
                out.push_str("<th>Rep</th>");
            }
            out.push_str("<th>Grade</th><th>Clock</th><th>Due</th><th>Status</th></tr>");
            for (i, r) in self.rows.iter().enumerate() {
                let cls = match r.status {
                    ClockStatus::Breached => "overdue",
                    ClockStatus::AtRisk => "risk",
                    _ => "open",
                };
                let _ = write!(
                    out,
                    "<tr class=\"{cls}\"><td>{}</td><td><a href=\"{}\">{}</a></td>",
                    i + 1,
                    esc(&r.url),
                    esc(&r.label)
                );
                if self.kind == DigestKind::Manager {
                    let _ = write!(out, "<td>{}</td>", esc(r.owner_name.as_deref().unwrap_or("")));
                }
                let _ = write!(
                    out,
                    "<td>{}</td><td>{}</td><td>{}</td><td class=\"st\">{}</td></tr>",
                    esc(r.grade.as_deref().unwrap_or("–")),
                    clock_words(r.clock),
                    esc(&r.due_at.map(|d| local(d, self.time_zone)).unwrap_or_else(|| "–".into())),
                    status_words(r.status)
                );
            }
            out.push_str("</table>");
        }
        let _ = writeln!(
            out,
            "<p class=\"foot\">As of {}. Sent by handoff, which enforces the lead-handoff SLA both teams signed.</p></div></body></html>",
            esc(&local(self.as_of, self.time_zone))
        );
        out
    }

    /// Slack `mrkdwn`.
    pub fn slack(&self, instance: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "*{}*", slack_esc(&self.subject(instance)));
        let _ = writeln!(out, "{}", slack_esc(&self.intro()));
        for r in &self.rows {
            let who = match self.kind {
                DigestKind::Manager => format!("{} · ", slack_esc(r.owner_name.as_deref().unwrap_or(""))),
                DigestKind::Rep => String::new(),
            };
            let _ = writeln!(out, "• <{}|{}> — {who}{}", r.url, slack_esc(&r.label), slack_esc(&self.line(r)));
        }
        out
    }
}

/// Shared by the digest and the summary: readable in any mail client,
/// nothing fetched.
pub(crate) const STYLE: &str = r#"
body{margin:0;padding:0;background:#f4f6f8;color:#17202a;font:16px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
.wrap{max-width:860px;margin:0 auto;padding:24px 28px;background:#ffffff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:22px 0 8px}
.sub{color:#5b6b7b;margin:0 0 12px}.foot{color:#5b6b7b;font-size:13px;margin-top:22px}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{padding:7px 9px;text-align:left;border-bottom:1px solid #dde3e9}
th{background:#eef2f5;font-weight:600}a{color:#0b5cad}
tr.overdue td{background:#fde3e3}tr.overdue td.st{color:#b3261e;font-weight:700}
tr.risk td{background:#fff3d6}tr.risk td.st{color:#8a5a00;font-weight:700}
tr.missed td{background:#fde3e3}tr.met td.st{color:#1e7b45;font-weight:700}tr.missed td.st{color:#b3261e;font-weight:700}
.signal{border-left:6px solid #f2a93b;background:#fff8ea;padding:8px 12px;margin:8px 0}
.up{color:#1e7b45}.down{color:#b3261e}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use handoff_model::OwnerKind;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).single().unwrap_or_default()
    }

    fn clock(kind: ClockKind, status: ClockStatus, due: u32, stopped: bool) -> Clock {
        Clock {
            kind,
            owner_id: Some("rep".into()),
            first_owner_id: Some("rep".into()),
            last_owner_id: Some("rep".into()),
            owner_since: None,
            held_by: Some("rep".into()),
            paused_since: None,
            calendar: None,
            resumes_at: None,
            received_at: Some(at(2, due.saturating_sub(5))),
            started_at: Some(at(2, 14)),
            due_at: Some(at(3, due)),
            remind_at: None,
            stopped_at: stopped.then(|| at(3, 10)),
            breached_at: None,
            status,
            reason: String::new(),
            flagged: false,
            escalations: Vec::new(),
            stopped_by: None,
            surge: None,
        }
    }

    fn lead(id: &str, owner: &str, first: &str) -> StoredLead {
        StoredLead {
            lead: Lead {
                id: id.into(),
                owner_id: Some(owner.into()),
                fields: BTreeMap::from([
                    ("FirstName".to_string(), serde_json::json!(first)),
                    ("Company".to_string(), serde_json::json!("Acme")),
                ]),
                created_at: at(2, 9),
                modified_at: at(2, 9),
                assignments: Vec::new(),
                status_changes: Vec::new(),
                converted_at: None,
                deleted: false,
                merged_into: None,
                field_history: BTreeMap::new(),
                opportunities: Vec::new(),
                read_only: false,
            },
            observed_owners: Vec::new(),
            observed_statuses: Vec::new(),
            observed_fields: BTreeMap::new(),
            watched: String::new(),
            first_seen_at: at(2, 9),
        }
    }

    fn state(clocks: Vec<Clock>, waived: bool) -> LeadState {
        LeadState {
            evaluated_at: at(3, 8),
            policy_version: 1,
            mql: true,
            grade: Some("A".into()),
            segment: None,
            waived: waived.then(|| "incomplete data".to_string()),
            disqualified_by: None,
            clocks,
            next_check_at: None,
            error: None,
            pending_update: None,
            sla_fields: BTreeMap::new(),
            qualified_at: None,
            intake: None,
        }
    }

    #[test]
    fn a_rep_sees_open_and_at_risk_leads_oldest_first_and_a_manager_the_hot_ones() {
        use ClockKind::*;
        use ClockStatus::*;
        let leads = vec![
            lead("L1", "rep", "Ann"),
            lead("L2", "rep", "Bob"),
            lead("L3", "rep", "Cid"),
            lead("L4", "rep", "Dee"),
            lead("L5", "other", "Eve"),
        ];
        let states = BTreeMap::from([
            // Open disposition, first touch met: listed, open.
            (
                "L1".to_string(),
                state(vec![clock(FirstTouch, Met, 12, true), clock(Disposition, Pending, 20, false)], false),
            ),
            // First touch breached and still untouched: overdue; came to sales first.
            (
                "L2".to_string(),
                state(vec![clock(FirstTouch, Breached, 10, false), clock(Disposition, Pending, 19, false)], false),
            ),
            // Dispositioned: not listed.
            ("L3".to_string(), state(vec![clock(FirstTouch, Met, 12, true), clock(Disposition, Met, 20, true)], false)),
            // Waived: never listed.
            ("L4".to_string(), state(vec![clock(Disposition, Waived, 20, false)], true)),
            ("L5".to_string(), state(vec![clock(Disposition, AtRisk, 15, false)], false)),
        ]);
        let owners = vec![Owner {
            id: "rep".into(),
            kind: OwnerKind::User,
            name: Some("Rita Rep".into()),
            email: None,
            manager_id: None,
            time_zone: None,
            active: true,
            modified_at: None,
        }];
        let book = Book::new(&leads, &states, &owners);
        let urls = RecordUrl::salesforce("https://acme.my.salesforce.com/");
        let rows = rep_rows(&book, "rep", &urls);
        assert_eq!(rows.iter().map(|r| r.lead_id.as_str()).collect::<Vec<_>>(), ["L2", "L1"], "oldest first");
        assert_eq!((rows[0].clock, rows[0].status), (FirstTouch, Breached));
        assert_eq!(rows[1].url, "https://acme.my.salesforce.com/lightning/r/Lead/L1/view");
        let team = manager_rows(&book, &["rep".to_string(), "other".to_string()], &urls);
        assert_eq!(team.iter().map(|r| r.lead_id.as_str()).collect::<Vec<_>>(), ["L2", "L5"], "by rep name");
        let d = Digest {
            kind: DigestKind::Rep,
            recipient_id: "rep".into(),
            recipient_name: "Rita Rep".into(),
            local_date: NaiveDate::from_ymd_opt(2026, 3, 3).unwrap_or_default(),
            time_zone: chrono_tz::America::New_York,
            as_of: at(3, 13),
            rows,
        };
        let text = d.text("acme");
        assert!(
            text.contains("2 lead(s) waiting") && text.contains("Bob (Acme)") && text.contains("OVERDUE"),
            "{text}"
        );
        assert!(d.html("acme").contains("<a href=\"https://acme.my.salesforce.com/lightning/r/Lead/L2/view\">"));
        assert!(d.slack("acme").contains("<https://acme.my.salesforce.com/lightning/r/Lead/L1/view|Ann (Acme)>"));
    }

    #[test]
    fn hubspot_links_name_the_portal() {
        assert_eq!(
            RecordUrl::hubspot("4412345", false).for_lead("901"),
            "https://app.hubspot.com/contacts/4412345/record/0-1/901"
        );
        assert_eq!(
            RecordUrl::hubspot("4412345", true).for_lead("1902"),
            "https://app.hubspot.com/contacts/4412345/record/0-136/1902"
        );
    }
}
