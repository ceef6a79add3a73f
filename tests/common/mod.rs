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
