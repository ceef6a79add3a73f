//! Shared by the tests that run against an in-process sandbox: a config
//! file pointing at it, following its simulated clock; who owned each lead
//! when, from the org's timeline and the sandbox's request log.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use handoff_model::CrmKind;
use handoff_sandbox::org::{EventKind, OrgConfig, OwnerRef, SyntheticOrg};
use handoff_sandbox::{ClockMode, RunningSandbox, SandboxOptions};

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_handoff"))
}

/// A frozen sandbox at the start of its timeline, limits opened for speed.
pub async fn sandbox(crm: CrmKind, seed: u64, leads: usize, days: u32) -> RunningSandbox {
    frozen_sandbox(crm, seed, leads, days, true).await
}

/// A frozen sandbox, limits opened for speed: at the start of its timeline
/// with `replay`, otherwise at its end with the whole org visible at once.
pub async fn frozen_sandbox(crm: CrmKind, seed: u64, leads: usize, days: u32, replay: bool) -> RunningSandbox {
    let mut opts = SandboxOptions::new(crm);
    opts.org = OrgConfig { seed, leads, days, ..OrgConfig::default() };
    opts.clock = ClockMode::Frozen;
    opts.replay = replay;
    let sb = handoff_sandbox::start(opts).await.expect("sandbox starts");
    handoff::demo::open_sandbox_limits(&sb).await.expect("the sandbox's limits open");
    sb
}

/// Writes the demo config for `sb` into `dir/handoff.toml`, following the
/// sandbox's clock, and returns its path.
pub fn write_config(
    sb: &RunningSandbox,
    dir: &Path,
    interval_secs: i64,
    extra: impl FnOnce(&mut toml::Table),
) -> PathBuf {
    let mut table = handoff::demo::config_table(sb, dir).expect("demo config");
    let sync = table.entry("sync").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let sync = sync.as_table_mut().expect("[sync] is a table");
    sync.insert("clock".into(), "sandbox".into());
    sync.insert("interval_secs".into(), toml::Value::Integer(interval_secs));
    sync.insert("max_interval_secs".into(), toml::Value::Integer(interval_secs.max(1)));
    extra(&mut table);
    let path = dir.join("handoff.toml");
    std::fs::write(&path, toml::to_string(&table).expect("renders")).expect("writes the config");
    path
}

/// A CRM owner id as the org's owner.
pub fn owner_ref(crm: CrmKind, id: &str) -> Option<OwnerRef> {
    use handoff_sandbox::hubspot::state::{QUEUE_OWNER_ID_BASE, USER_OWNER_ID_BASE};
    use handoff_sandbox::salesforce::materialise::{queue_id, user_id};
    match crm {
        CrmKind::Salesforce => (0..1000).map(OwnerRef::User).chain((0..10).map(OwnerRef::Queue)).find(|o| match o {
            OwnerRef::User(u) => user_id(*u) == id,
            OwnerRef::Queue(q) => queue_id(*q) == id,
        }),
        CrmKind::Hubspot => {
            let n: u64 = id.parse().ok()?;
            if n >= QUEUE_OWNER_ID_BASE {
                Some(OwnerRef::Queue((n - QUEUE_OWNER_ID_BASE) as usize))
            } else {
                n.checked_sub(USER_OWNER_ID_BASE).map(|u| OwnerRef::User(u as usize))
            }
        }
    }
}

/// Who owned each lead when: the org's timeline, plus the owner changes
/// handoff wrote (its pool moves) as the sandbox's request log recorded
/// them. (lead index → [(from, owner)], oldest first.)
pub fn owner_timelines(
    crm: CrmKind,
    org: &SyntheticOrg,
    log: &[handoff_sandbox::LoggedRequest],
    index_of: &dyn Fn(&str) -> Option<usize>,
) -> BTreeMap<usize, Vec<(DateTime<Utc>, OwnerRef)>> {
    let mut changes: Vec<(DateTime<Utc>, u8, usize, OwnerRef)> = Vec::new();
    for e in &org.events {
        if let EventKind::LeadCreated { lead, owner } | EventKind::Assigned { lead, owner } = &e.kind {
            changes.push((e.at, 0, *lead, *owner));
        }
    }
    for r in log.iter().filter(|r| (200..300).contains(&r.status)) {
        let Some(body) = &r.body else { continue };
        let records: Vec<(String, String)> = match crm {
            CrmKind::Salesforce => r
                .collection_records()
                .into_iter()
                .filter(|rec| rec["attributes"]["type"] == "Lead")
                .filter_map(|rec| Some((rec["id"].as_str()?.to_string(), rec["OwnerId"].as_str()?.to_string())))
                .collect(),
            CrmKind::Hubspot
                if r.method == "POST"
                    && (r.path.ends_with("/objects/contacts/batch/update")
                        || r.path.ends_with("/objects/leads/batch/update")) =>
            {
                body["inputs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| {
                        Some((i["id"].as_str()?.to_string(), i["properties"]["hubspot_owner_id"].as_str()?.to_string()))
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        for (lead, owner) in records {
            let (Some(index), Some(owner)) = (index_of(&lead), owner_ref(crm, &owner)) else {
                panic!("{crm}: handoff moved an unknown lead {lead} to an unknown owner {owner}")
            };
            changes.push((r.at, 1, index, owner));
        }
    }
    changes.sort_by_key(|(at, seq, _, _)| (*at, *seq));
    let mut out: BTreeMap<usize, Vec<(DateTime<Utc>, OwnerRef)>> = BTreeMap::new();
    for (at, _, lead, owner) in changes {
        out.entry(lead).or_default().push((at, owner));
    }
    out
}
