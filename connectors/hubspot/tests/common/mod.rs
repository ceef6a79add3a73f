//! Shared set-up for the integration tests: an in-process HubSpot sandbox,
//! connector settings pointing at it, and admin-route helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use handoff_hubspot::{connect, Clock, HubspotAuth, HubspotConnector, HubspotSettings, MemoryTokenStore};
use handoff_model::{Connector, CrmKind, Cursor, Lead, OwnerKind, PullPage, Secret, Stream, Timestamp};
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::{ClockMode, RunningSandbox, SandboxOptions, SimClock};
use serde_json::Value;

/// The sandbox's simulated clock, so windows end at the CRM's "now".
pub struct SandboxClock(pub SimClock);

impl Clock for SandboxClock {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

pub async fn sandbox(leads: usize) -> RunningSandbox {
    let mut opts = SandboxOptions::new(CrmKind::Hubspot);
    opts.org = OrgConfig { leads, ..OrgConfig::default() };
    opts.clock = ClockMode::Ticking;
    handoff_sandbox::start(opts).await.expect("sandbox starts")
}

pub fn cred(sb: &RunningSandbox, key: &str) -> String {
    sb.credentials[key].as_str().unwrap_or_else(|| panic!("sandbox credential {key}")).to_string()
}

/// Settings for a private-app token; tests tweak the rest.
pub fn settings(sb: &RunningSandbox) -> HubspotSettings {
    let mut s = HubspotSettings::new(
        sb.base_url.clone(),
        HubspotAuth::PrivateApp { token: Secret::new(cred(sb, "access_token")) },
        Arc::new(MemoryTokenStore::default()),
        Arc::new(SandboxClock(sb.shared.clock.clone())),
    );
    s.lag_secs = 5;
    s.lookback_secs = 600;
    s.search_per_second = 5;
    s.burst_per_10s = 100;
    s.create_task_key_property = true;
    s.max_attempts = 6;
    s
}

pub fn oauth_settings(sb: &RunningSandbox, store: Arc<MemoryTokenStore>) -> HubspotSettings {
    let mut s = settings(sb);
    s.auth = HubspotAuth::OAuth {
        client_id: cred(sb, "client_id"),
        client_secret: Secret::new(cred(sb, "client_secret")),
        refresh_token: Secret::new(cred(sb, "refresh_token")),
        token_url: None,
    };
    s.token_store = store;
    s
}

pub async fn connector(s: HubspotSettings) -> HubspotConnector {
    connect(s).await.expect("connector builds")
}

/// Pull `stream` until `has_more` is false; every page and the last cursor.
pub async fn drain(c: &HubspotConnector, stream: Stream, cursor: Option<Cursor>) -> (Vec<PullPage>, Option<Cursor>) {
    let mut cursor = cursor;
    let mut pages = Vec::new();
    for _ in 0..100_000 {
        let page = c.pull(stream, cursor.as_ref()).await.expect("pull succeeds");
        if let Some(next) = &page.cursor {
            cursor = Some(next.clone());
        }
        let more = page.has_more;
        pages.push(page);
        if !more {
            return (pages, cursor);
        }
    }
    panic!("the pull never finished");
}

pub async fn admin_get(sb: &RunningSandbox, path: &str) -> Value {
    let r = reqwest::get(format!("{}{path}", sb.base_url)).await.expect("admin GET");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("admin JSON")
}

pub async fn admin_post(sb: &RunningSandbox, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(format!("{}{path}", sb.base_url)).json(&body).send().await.expect("admin POST");
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {path}: {status} {v}");
    v
}

pub async fn admin_delete(sb: &RunningSandbox, path: &str) {
    let r = reqwest::Client::new().delete(format!("{}{path}", sb.base_url)).send().await.expect("admin DELETE");
    assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
}

/// The served requests from index `since` on.
pub async fn requests(sb: &RunningSandbox, since: usize) -> Vec<Value> {
    admin_get(sb, &format!("/__sandbox/requests?since={since}")).await.as_array().cloned().unwrap_or_default()
}

/// Live (not archived, not merged away) records of a type, by id, as the
/// sandbox holds them.
pub async fn live_records(sb: &RunningSandbox, object: &str) -> BTreeMap<String, Value> {
    let dump = admin_get(sb, &format!("/__sandbox/hubspot/objects/{object}")).await;
    dump["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["archived"] == false && r.get("mergedInto").is_none())
        .map(|r| (r["id"].as_str().unwrap_or_default().to_string(), r.clone()))
        .collect()
}

/// The fewest counted calls a scenario can take, in pages: search pages of
/// 200 and history batches of 50 for the records read in a window, listing
/// pages of 50 with their history for a whole portal's contacts, association
/// batches of 1,000 for the engagements read, write batches of 100 for the
/// records written, and listing pages of 100 (the archived sweep and the
/// owners listing, which HubSpot cannot filter by time).
#[derive(Debug, Clone, Copy, Default)]
pub struct LowerBound {
    pub search_pages: usize,
    pub history_batches: usize,
    pub history_list_pages: usize,
    pub association_batches: usize,
    pub list_pages: usize,
    pub write_batches: usize,
}

impl LowerBound {
    /// Reading `n` contacts changed in a window: their search pages and
    /// history batches.
    pub fn leads(n: usize) -> LowerBound {
        LowerBound { search_pages: pages(n, 200), history_batches: n.div_ceil(50), ..LowerBound::default() }
    }

    /// Reading a whole portal's `n` contacts with their history.
    pub fn all_leads(n: usize) -> LowerBound {
        LowerBound { history_list_pages: pages(n, 50), ..LowerBound::default() }
    }

    /// Reading `n` engagements of one type changed in a window: their
    /// search pages and the association batches naming their contacts.
    pub fn engagements(n: usize) -> LowerBound {
        LowerBound { search_pages: pages(n, 200), association_batches: n.div_ceil(1_000), ..LowerBound::default() }
    }

    pub fn calls(&self) -> usize {
        self.search_pages
            + self.history_batches
            + self.history_list_pages
            + self.association_batches
            + self.list_pages
            + self.write_batches
    }
}

impl std::ops::Add for LowerBound {
    type Output = LowerBound;
    fn add(self, o: LowerBound) -> LowerBound {
        LowerBound {
            search_pages: self.search_pages + o.search_pages,
            history_batches: self.history_batches + o.history_batches,
            history_list_pages: self.history_list_pages + o.history_list_pages,
            association_batches: self.association_batches + o.association_batches,
            list_pages: self.list_pages + o.list_pages,
            write_batches: self.write_batches + o.write_batches,
        }
    }
}

/// Pages of `size` that `n` records take; a search or listing that finds
/// nothing still takes one.
pub fn pages(n: usize, size: usize) -> usize {
    n.div_ceil(size).max(1)
}

/// Pages of 100 a full listing of `n` records takes.
pub fn list_pages(n: usize) -> usize {
    pages(n, 100)
}

/// Owners the org has (users and queues).
pub fn owner_count(sb: &RunningSandbox) -> usize {
    sb.shared.org.users.len() + sb.shared.org.queues.len()
}

/// Print `api-calls scenario=… used=N lower_bound=M` and check `used` lies
/// between the bound and `factor` times it.
pub fn report(scenario: &str, used: usize, bound: LowerBound, factor: f64) {
    let lower_bound = bound.calls();
    println!("api-calls scenario={scenario} used={used} lower_bound={lower_bound}");
    assert!(
        used >= lower_bound,
        "{scenario}: {used} calls is below the lower bound {lower_bound} ({bound:?}): the bound or the pull is wrong"
    );
    let ceiling = (lower_bound as f64 * factor).ceil() as usize;
    assert!(
        used <= ceiling,
        "{scenario}: {used} calls, more than {factor} × the lower bound {lower_bound} ({bound:?})"
    );
}

/// Counted calls in the sandbox's request log from index `since` (read in
/// process: a 100,000-contact pull logs thousands of requests).
pub async fn counted_since(sb: &RunningSandbox, since: usize) -> usize {
    log_since(sb, since).iter().filter(|r| r.counted).count()
}

/// The sandbox's request log from index `since`, in process.
pub fn log_since(sb: &RunningSandbox, since: usize) -> Vec<handoff_sandbox::LoggedRequest> {
    let log = sb.shared.log.snapshot();
    log[since.min(log.len())..].to_vec()
}

/// A portal with limits far above HubSpot's, and a connector paced to use
/// them, for tests that measure completeness and call counts rather than
/// pacing (the rate-limit tests keep the real limits).
pub async fn raise_limits(sb: &RunningSandbox, s: &mut HubspotSettings) {
    admin_post(sb, "/__sandbox/hubspot/limits", serde_json::json!({"search_per_second": 2_000, "private_app_burst_per_10s": 200_000, "oauth_burst_per_10s": 200_000})).await;
    s.search_per_second = 1_000;
    s.burst_per_10s = 100_000;
}

/// The records of a type as the sandbox holds them, narrowed to
/// `properties` (and the history of `history`), archived and merged ones
/// too, without their associations.
pub async fn dump(sb: &RunningSandbox, object: &str, properties: &[&str], history: &[&str]) -> Vec<Value> {
    let path = format!(
        "/__sandbox/hubspot/objects/{object}?properties={}&history={}&associations=false",
        properties.join(","),
        history.join(",")
    );
    admin_get(sb, &path).await["results"].as_array().cloned().unwrap_or_default()
}

/// Like [`dump`], with each record's associations.
pub async fn dump_with_associations(sb: &RunningSandbox, object: &str, properties: &[&str]) -> Vec<Value> {
    let path = format!("/__sandbox/hubspot/objects/{object}?properties={}", properties.join(","));
    admin_get(sb, &path).await["results"].as_array().cloned().unwrap_or_default()
}

pub fn is_live(r: &Value) -> bool {
    r["archived"] == false && r.get("mergedInto").is_none()
}

pub async fn admin_patch(sb: &RunningSandbox, path: &str, body: Value) -> Value {
    let r =
        reqwest::Client::new().patch(format!("{}{path}", sb.base_url)).json(&body).send().await.expect("admin PATCH");
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "PATCH {path}: {status} {v}");
    v
}

/// Move the sandbox clock forward.
pub async fn advance(sb: &RunningSandbox, secs: i64) {
    admin_post(sb, "/__sandbox/clock", serde_json::json!({ "advance_secs": secs })).await;
}

/// Leads delivered across pages, checking nothing is delivered twice.
pub fn collect_leads(pages: &[PullPage]) -> BTreeMap<String, Lead> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for l in pages.iter().flat_map(|p| &p.leads) {
        assert!(seen.insert((l.id.clone(), l.modified_at)), "lead {} at {} delivered twice", l.id, l.modified_at);
        out.insert(l.id.clone(), l.clone());
    }
    out
}

fn ms_of(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).map(|t| t.timestamp_millis()).unwrap_or_else(|e| panic!("{t}: {e}"))
}

/// A property's values from the sandbox's own history (newest first),
/// oldest first, cleared values and repeats without a change dropped.
pub fn truth_history(entries: &Value) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for e in entries.as_array().into_iter().flatten().rev() {
        let value = e["value"].as_str().unwrap_or_default();
        if value.is_empty() || out.last().is_some_and(|(v, _)| v == value) {
            continue;
        }
        out.push((value.to_string(), ms_of(e["timestamp"].as_str().unwrap_or_default())));
    }
    out
}

/// Check every lead's ownership and status history against the sandbox's
/// record of it (`dumped`: records with `propertiesWithHistory` for owner
/// and lead status). Queues are the org's queue owners (`80000000 + index`,
/// as the sandbox README documents). Returns how many leads were checked.
pub fn check_histories(leads: &BTreeMap<String, Lead>, dumped: &[Value], queues: usize) -> usize {
    check_histories_of(leads, dumped, queues, "hs_lead_status")
}

/// [`check_histories`] with the status in `status_property` (a lead
/// record's `hs_pipeline_stage`).
pub fn check_histories_of(
    leads: &BTreeMap<String, Lead>,
    dumped: &[Value],
    queues: usize,
    status_property: &str,
) -> usize {
    let by_id: BTreeMap<&str, &Value> = dumped.iter().filter_map(|r| r["id"].as_str().map(|id| (id, r))).collect();
    let queue_ids: std::collections::BTreeSet<String> = (0..queues).map(|i| (80_000_000 + i).to_string()).collect();
    for (id, lead) in leads {
        let truth = by_id.get(id.as_str()).unwrap_or_else(|| panic!("lead {id} is not in the sandbox"));
        let owners = truth_history(&truth["propertiesWithHistory"]["hubspot_owner_id"]);
        let got: Vec<(String, i64)> =
            lead.assignments.iter().map(|a| (a.owner_id.clone(), a.at.timestamp_millis())).collect();
        assert_eq!(got, owners, "lead {id}: assignments");
        for a in &lead.assignments {
            let want = if queue_ids.contains(&a.owner_id) { OwnerKind::Queue } else { OwnerKind::User };
            assert_eq!(a.owner_kind, want, "lead {id}: kind of owner {}", a.owner_id);
        }
        assert_eq!(
            lead.assignments.last().map(|a| a.owner_id.as_str()),
            lead.owner_id.as_deref(),
            "lead {id}: the last assignment is the owner"
        );
        let statuses = truth_history(&truth["propertiesWithHistory"][status_property]);
        let got: Vec<(String, i64)> =
            lead.status_changes.iter().map(|s| (s.status.clone(), s.at.timestamp_millis())).collect();
        assert_eq!(got, statuses, "lead {id}: status changes");
    }
    leads.len()
}

/// Values over time, oldest first: `(value, epoch ms)`.
pub type Timeline = Vec<(String, i64)>;

/// Each lead's owner and lead-status values over time, from the org's own
/// timeline (not from the emulator's history): oldest first, owners as
/// HubSpot owner ids (`70000000 + user`, `80000000 + queue`) and statuses
/// as the README maps them. Keyed by the lead's email.
pub fn timeline_histories(org: &handoff_sandbox::org::SyntheticOrg) -> BTreeMap<String, (Timeline, Timeline)> {
    use handoff_sandbox::org::{EventKind, LeadStatus, OwnerRef};
    let owner_id = |o: &OwnerRef| match o {
        OwnerRef::User(i) => (70_000_000 + i).to_string(),
        OwnerRef::Queue(i) => (80_000_000 + i).to_string(),
    };
    let push = |v: &mut Vec<(String, i64)>, value: String, at: i64| {
        if v.last().is_none_or(|(last, _)| *last != value) {
            v.push((value, at));
        }
    };
    let mut by_lead: BTreeMap<usize, (Timeline, Timeline)> = BTreeMap::new();
    for e in &org.events {
        let at = e.at.timestamp_millis();
        match &e.kind {
            EventKind::LeadCreated { lead, owner } => {
                let h = by_lead.entry(*lead).or_default();
                push(&mut h.0, owner_id(owner), at);
                push(&mut h.1, "NEW".to_string(), at);
            }
            EventKind::Assigned { lead, owner } => push(&mut by_lead.entry(*lead).or_default().0, owner_id(owner), at),
            EventKind::StatusChanged { lead, status } => {
                let value = match status {
                    LeadStatus::New => "NEW",
                    LeadStatus::Working => "IN_PROGRESS",
                    LeadStatus::Accepted => "CONNECTED",
                    LeadStatus::Rejected { .. } => "UNQUALIFIED",
                    LeadStatus::ClosedUnresponsive { .. } => "BAD_TIMING",
                    LeadStatus::Converted => "OPEN_DEAL",
                };
                push(&mut by_lead.entry(*lead).or_default().1, value.to_string(), at);
            }
            _ => {}
        }
    }
    by_lead.into_iter().filter_map(|(lead, h)| org.leads.get(lead).map(|l| (l.email.clone(), h))).collect()
}

/// Check every lead's assignments and status changes against the org's
/// timeline, finding each lead by its email. Returns how many were checked.
pub fn check_histories_against_timeline(
    leads: &BTreeMap<String, Lead>,
    org: &handoff_sandbox::org::SyntheticOrg,
) -> usize {
    let truth = timeline_histories(org);
    for (id, lead) in leads {
        let email = lead.field_str("email").unwrap_or_else(|| panic!("lead {id} has no email"));
        let (owners, statuses) = truth.get(email).unwrap_or_else(|| panic!("lead {id} ({email}) is not in the org"));
        let got: Vec<(String, i64)> =
            lead.assignments.iter().map(|a| (a.owner_id.clone(), a.at.timestamp_millis())).collect();
        assert_eq!(&got, owners, "lead {id}: assignments");
        for a in &lead.assignments {
            let want = if a.owner_id.starts_with('8') { OwnerKind::Queue } else { OwnerKind::User };
            assert_eq!(a.owner_kind, want, "lead {id}: kind of owner {}", a.owner_id);
        }
        let got: Vec<(String, i64)> =
            lead.status_changes.iter().map(|s| (s.status.clone(), s.at.timestamp_millis())).collect();
        assert_eq!(&got, statuses, "lead {id}: status changes");
    }
    leads.len()
}
