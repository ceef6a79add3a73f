//! SIGHUP's work against the sandbox CRMs: a reload applies the whole new
//! config (a changed window or policy rebuilds the connector, which then
//! serves the next ticks) or refuses it with the reason and keeps running
//! on the old one whole (a connection that does not work, a change only a
//! restart can make).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use handoff::config::{self, Config};
use handoff::daemon::ReloadError;
use handoff::demo::{config_table, SimOptions, Simulation};
use handoff_model::CrmKind;

fn reparse(table: &toml::Table) -> Config {
    config::parse(&toml::to_string(table).unwrap()).unwrap_or_else(|issues| panic!("{issues:?}"))
}

fn set(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut t = table;
    for p in parents {
        t = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new())).as_table_mut().unwrap();
    }
    t.insert(last.to_string(), value);
}

async fn reload_on(crm: CrmKind) {
    let opts = SimOptions { leads: 30, days: 2, ..SimOptions::new(crm) };
    let mut sim = Simulation::start(&opts).await.expect("simulation starts");
    // The org's leads come in first: every lead is evaluated again below.
    let end = sim.end_at();
    sim.run_until(end, |_, _| {}).await.expect("the org's timeline runs");
    let old = sim.config.clone();
    let table = config_table(&sim.sandbox, &sim.state_dir).unwrap();
    let section = match crm {
        CrmKind::Salesforce => "salesforce",
        CrmKind::Hubspot => "hubspot",
    };

    // The same file again: applied, nothing rebuilt.
    let same = reparse(&table);
    let done = sim.daemon.reload(&old, &same).await.expect("an unchanged config reloads");
    assert!(done.rebuilt_for.is_empty(), "{:?}", done.rebuilt_for);

    // A connection that does not work: refused whole, the old one runs on.
    let mut broken = table.clone();
    let url_key = if crm == CrmKind::Salesforce { "login_url" } else { "base_url" };
    set(&mut broken, &[section, url_key], "http://127.0.0.1:9".into());
    if crm == CrmKind::Salesforce {
        set(&mut broken, &[section, "instance_url"], "http://127.0.0.1:9".into());
    }
    set(&mut broken, &["sync", "lag_secs"], 7.into());
    let broken = reparse(&broken);
    match sim.daemon.reload(&old, &broken).await {
        Err(ReloadError::Connect(e)) => assert!(!e.to_string().is_empty()),
        other => panic!("a connection that fails refuses the reload: {other:?}"),
    }
    assert_eq!(sim.daemon.sync_settings(), &old.sync, "nothing of the refused config is applied");
    sim.sandbox.shared.clock.advance(chrono::Duration::minutes(30));
    let r = sim.catch_up().await.expect("the old connector still serves");
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    // A new window and a new policy version: applied whole, the connector rebuilt.
    let mut window = table.clone();
    set(&mut window, &["sync", "lag_secs"], 3.into());
    set(&mut window, &["sync", "lookback_secs"], 120.into());
    let new = reparse(&window);
    let done = sim.daemon.reload(&old, &new).await.expect("a working new window reloads");
    assert_eq!(done.rebuilt_for, ["the sync window (lag, lookback)"]);
    assert_eq!(sim.daemon.sync_settings().lag_secs, Some(3));
    sim.sandbox.shared.clock.advance(chrono::Duration::minutes(30));
    let r = sim.catch_up().await.expect("the rebuilt connector serves");
    assert!(r.errors.is_empty() && r.caught_up, "{r:?}");

    // A new policy: every lead is evaluated again, and the kept counts
    // still equal a recount.
    let leads = sim.daemon.store().counts().unwrap().leads;
    assert!(leads >= 20, "{crm}: {leads} leads to evaluate again");
    let mut policy = window.clone();
    set(&mut policy, &["policy", "scorecard", "consecutive_weeks"], 4.into());
    let changed = reparse(&policy);
    sim.daemon.reload(&new, &changed).await.expect("a new policy reloads");
    let sweep = sim.daemon.store().sweep().unwrap().expect("every lead is to be evaluated again");
    assert_eq!((sweep.why.as_str(), sweep.after), ("policy changed", None));
    let r = sim.catch_up().await.expect("the new policy evaluates");
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(r.evaluated >= sim.daemon.store().counts().unwrap().leads, "every lead was evaluated again: {r:?}");
    let store = sim.daemon.store().clone();
    assert_eq!(store.sweep().unwrap(), None, "the sweep is done");
    assert_eq!(store.counts().unwrap().dirty, 0);
    assert_eq!(store.counts().unwrap(), store.recount().unwrap(), "{crm}: counts after a reload");
    assert_eq!(store.clock_counts().unwrap(), store.recount_clocks().unwrap(), "{crm}: clock counts after a reload");

    // What only a restart can change is refused with its name.
    let mut moved = window.clone();
    set(&mut moved, &["instance", "state_dir"], sim.state_dir.join("elsewhere").display().to_string().into());
    match sim.daemon.reload(&new, &reparse(&moved)).await {
        Err(e @ ReloadError::NeedsRestart(_)) => assert!(e.to_string().contains("[instance]"), "{e}"),
        other => panic!("moving the state needs a restart: {other:?}"),
    }
    sim.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_reload_is_applied_whole_or_refused_whole() {
    reload_on(CrmKind::Salesforce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_reload_is_applied_whole_or_refused_whole() {
    reload_on(CrmKind::Hubspot).await;
}

/// One state directory holds one kind of lead record: moving a HubSpot
/// instance from contacts to lead records is refused by a reload (it needs
/// a restart) and then by the start, naming the fix, and the contacts'
/// state is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_hubspot_to_lead_records_on_a_used_state_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SimOptions {
        leads: 30,
        days: 2,
        state_dir: Some(dir.path().join("state")),
        ..SimOptions::new(CrmKind::Hubspot)
    };
    let overlay = handoff::demo::hubspot_leads_mode().unwrap();
    // The first daemon, closed (its store with it) at the end of the block.
    let leads = {
        let mut sim = Simulation::start(&opts).await.expect("simulation starts");
        sim.sandbox.shared.clock.advance(chrono::Duration::days(1));
        sim.catch_up().await.expect("a day's catch-up");
        let leads = sim.daemon.store().counts().unwrap().leads;
        assert!(leads > 0);
        let old = sim.config.clone();
        let mut table = config_table(&sim.sandbox, &sim.state_dir).unwrap();
        handoff::demo::merge_config(&mut table, &overlay);
        match sim.daemon.reload(&old, &reparse(&table)).await {
            Err(e @ ReloadError::NeedsRestart(_)) => assert!(e.to_string().contains("hubspot.lead_object"), "{e}"),
            other => panic!("changing the lead object needs a restart: {other:?}"),
        }
        sim.sandbox.stop().await;
        leads
    };

    let moved = SimOptions { config_extra: Some(overlay), ..opts.clone() };
    let refused = Simulation::start(&moved).await.err().expect("the start is refused");
    let text = format!("{refused:#}");
    assert!(
        text.contains("HubSpot contacts") && text.contains("HubSpot lead records") && text.contains("fresh state_dir"),
        "{text}"
    );
    let again = Simulation::start(&opts).await.expect("the contacts config still starts");
    assert_eq!(again.daemon.store().counts().unwrap().leads, leads, "nothing of the contacts' state was touched");
    again.sandbox.stop().await;
}
