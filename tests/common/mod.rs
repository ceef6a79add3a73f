//! Shared by the tests that run the `handoff` binary against an in-process
//! sandbox: a config file pointing at it, following its simulated clock.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::{ClockMode, RunningSandbox, SandboxOptions};

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_handoff"))
}

/// A frozen sandbox at the start of its timeline, limits opened for speed.
pub async fn sandbox(crm: CrmKind, seed: u64, leads: usize, days: u32) -> RunningSandbox {
    let mut opts = SandboxOptions::new(crm);
    opts.org = OrgConfig { seed, leads, days, ..OrgConfig::default() };
    opts.clock = ClockMode::Frozen;
    opts.replay = true;
    let sb = handoff_sandbox::start(opts).await.expect("sandbox starts");
    let (path, body) = match crm {
        CrmKind::Salesforce => ("salesforce/limits", serde_json::json!({"daily_limit": 5_000_000})),
        CrmKind::Hubspot => ("hubspot/limits", serde_json::json!({"private_app_burst_per_10s": 1_000_000, "oauth_burst_per_10s": 1_000_000, "search_per_second": 1_000_000})),
    };
    let resp = reqwest::Client::new().post(format!("{}/{path}", sb.admin_url)).json(&body).send().await.expect("admin call");
    assert!(resp.status().is_success());
    sb
}

/// Writes the demo config for `sb` into `dir/handoff.toml`, following the
/// sandbox's clock, and returns its path.
pub fn write_config(sb: &RunningSandbox, dir: &Path, interval_secs: i64, extra: impl FnOnce(&mut toml::Table)) -> PathBuf {
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
