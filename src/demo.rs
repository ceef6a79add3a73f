//! `handoff demo`: the whole loop on a fresh machine, no credentials.
//!
//! A sandbox CRM with a generated org starts in-process at the beginning of
//! its timeline, with its clock frozen. The real daemon — the same
//! [`Daemon`] `handoff run` drives, over a real state directory and the
//! real connector speaking HTTP to the sandbox — then runs while the
//! simulation moves the clock forward in steps (stopping at every deadline
//! the daemon has, so reminders and escalations fire when they should), and
//! catches up at every step. The [`Simulation`] is also what the end-to-end
//! tests drive.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use handoff_model::CrmKind;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::{ClockMode, RunningSandbox, SandboxOptions};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{self, Config};
use crate::daemon::{connect, Daemon, SharedNow, TickReport, TimeSource};
use crate::store::Store;

/// The demo's policies: the example SLA against the sandbox org.
pub const SALESFORCE_CONFIG: &str = include_str!("../config/demo.toml");
pub const HUBSPOT_CONFIG: &str = include_str!("../config/demo-hubspot.toml");

/// What turns the HubSpot demo config onto the sandbox portal's lead records
/// (merge it with [`merge_config`]): `lead_object = "leads"`, the pipeline
/// stage as status, HubSpot's own disqualification reason as reason code,
/// the sandbox's stage ids.
pub const HUBSPOT_LEADS_MODE: &str = r#"
[hubspot]
lead_object = "leads"

[policy.fields]
status = "hs_pipeline_stage"
source = "hs_analytics_source"
score = "hubspotscore"
reason_code = "hs_lead_disqualification_reason"
mql_at = "hs_lifecyclestage_marketingqualifiedlead_date"
sla = { grade = "handoff_sla_grade", due_at = "handoff_sla_due", status = "handoff_sla_status", breach_count = "handoff_sla_breach_count" }

[policy.statuses]
open = ["new-stage-id"]
working = ["attempting-stage-id"]
accepted = ["connected-stage-id"]
rejected = ["unqualified-stage-id"]
closed_unresponsive = ["1502380452"]
converted = ["qualified-stage-id"]
"#;

/// [`HUBSPOT_LEADS_MODE`] as a table.
pub fn hubspot_leads_mode() -> anyhow::Result<toml::Table> {
    toml::from_str(HUBSPOT_LEADS_MODE).context("the leads-mode overlay of the HubSpot demo config")
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub crm: CrmKind,
    pub seed: u64,
    pub leads: usize,
    pub days: u32,
    /// Longest simulated time between two ticks (shorter when a deadline
    /// falls inside).
    pub step: Duration,
    /// Where the daemon keeps its state; `None`: a temporary directory.
    pub state_dir: Option<PathBuf>,
    /// Sections merged into the demo config (e.g. `[notify]`), key by key
    /// one level down.
    pub config_extra: Option<toml::Table>,
    /// How the sandbox generates its org beyond seed, leads and days.
    pub org: Option<OrgConfig>,
}

impl SimOptions {
    pub fn new(crm: CrmKind) -> SimOptions {
        SimOptions {
            crm,
            seed: 42,
            leads: 150,
            days: 5,
            step: Duration::minutes(15),
            state_dir: None,
            config_extra: None,
            org: None,
        }
    }
}

/// A sandbox and a daemon wired to it, with simulated time under the
/// simulation's control.
pub struct Simulation {
    pub sandbox: RunningSandbox,
    pub daemon: Daemon,
    pub config: Config,
    /// Where the state lives (kept alive while the simulation is).
    pub state_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub ticks: usize,
    /// Longest simulated time between two stops.
    pub step: Duration,
}

/// The demo's config for a running sandbox, as TOML: the embedded policy
/// with the sandbox's URL, credentials and a state directory filled in, and
/// local pacing opened up (the sandbox is told to allow it too). Written to
/// a file it is what `handoff run --config` reads (with `sync.clock =
/// "sandbox"` to follow the simulated clock).
pub fn config_table(sandbox: &RunningSandbox, state_dir: &std::path::Path) -> anyhow::Result<toml::Table> {
    let text = match sandbox.crm {
        CrmKind::Salesforce => SALESFORCE_CONFIG,
        CrmKind::Hubspot => HUBSPOT_CONFIG,
    };
    let mut root: toml::Table = text.parse().context("the built-in demo config is not TOML")?;
    let creds = &sandbox.credentials;
    let cred = |key: &str| -> anyhow::Result<String> {
        creds
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("the sandbox gave no `{key}`"))
    };
    let table = |root: &mut toml::Table, name: &str| -> anyhow::Result<toml::Table> {
        root.get(name)
            .and_then(toml::Value::as_table)
            .cloned()
            .with_context(|| format!("the built-in demo config has no [{name}]"))
    };
    let path = |p: &std::path::Path| toml::Value::String(p.display().to_string());
    let mut instance = table(&mut root, "instance")?;
    instance.insert("state_dir".into(), path(&state_dir.join("state")));
    root.insert("instance".into(), instance.into());
    // The sandbox's org is all demonstration: its whole timeline is enforced,
    // even when the daemon first starts at its end.
    let mut sync = root.get("sync").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    let org_start = sandbox.shared.org.config.start_at - chrono::Duration::days(1);
    sync.insert("enforce_from".into(), org_start.to_rfc3339().into());
    root.insert("sync".into(), sync.into());
    match sandbox.crm {
        CrmKind::Salesforce => {
            let mut sf = table(&mut root, "salesforce")?;
            sf.insert("login_url".into(), sandbox.base_url.clone().into());
            sf.insert("instance_url".into(), sandbox.base_url.clone().into());
            match &sandbox.ca_cert {
                Some(ca) => sf.insert("ca_file".into(), path(ca)),
                None => sf.remove("ca_file"),
            };
            sf.insert("requests_per_sec".into(), toml::Value::Integer(10_000));
            let mut auth = toml::Table::new();
            auth.insert("flow".into(), "jwt_bearer".into());
            auth.insert("client_id".into(), cred("client_id")?.into());
            auth.insert("username".into(), cred("username")?.into());
            let mut key = toml::Table::new();
            key.insert("file".into(), cred("jwt_private_key_path")?.into());
            auth.insert("private_key".into(), key.into());
            sf.insert("auth".into(), auth.into());
            root.insert("salesforce".into(), sf.into());
        }
        CrmKind::Hubspot => {
            let mut hs = table(&mut root, "hubspot")?;
            hs.insert("base_url".into(), sandbox.base_url.clone().into());
            match &sandbox.ca_cert {
                Some(ca) => hs.insert("ca_file".into(), path(ca)),
                None => hs.remove("ca_file"),
            };
            hs.insert("burst_per_10s".into(), toml::Value::Integer(10_000));
            hs.insert("search_per_second".into(), toml::Value::Integer(1_000));
            let token_path = state_dir.join("hubspot-token");
            write_private(&token_path, &cred("access_token")?)?;
            let mut auth = toml::Table::new();
            auth.insert("flow".into(), "private_app".into());
            let mut token = toml::Table::new();
            token.insert("file".into(), path(&token_path));
            auth.insert("token".into(), token.into());
            hs.insert("auth".into(), auth.into());
            // HubSpot owners carry no manager and no zone: an operator maps
            // them. The demo maps the generated org's reporting lines.
            let owner_id = |i: usize| (handoff_sandbox::hubspot::state::USER_OWNER_ID_BASE + i as u64).to_string();
            let mut zones = toml::Table::new();
            let mut managers = toml::Table::new();
            for u in &sandbox.shared.org.users {
                zones.insert(owner_id(u.index), u.time_zone.clone().into());
                if let Some(m) = u.manager {
                    managers.insert(owner_id(u.index), owner_id(m).into());
                }
            }
            hs.insert("owner_time_zones".into(), zones.into());
            root.insert("hubspot".into(), hs.into());
            let mut policy = table(&mut root, "policy")?;
            let mut owners = policy.get("owners").and_then(toml::Value::as_table).cloned().unwrap_or_default();
            owners.insert("managers".into(), managers.into());
            policy.insert("owners".into(), owners.into());
            root.insert("policy".into(), policy.into());
        }
    }
    // Reps the org sends on leave: Salesforce records it as out-of-office
    // Events handoff reads; HubSpot keeps no such record, so the policy
    // lists the days.
    let org = &sandbox.shared.org;
    if !org.time_off.is_empty() && sandbox.crm == CrmKind::Hubspot {
        let user_id = |i: usize| match sandbox.crm {
            CrmKind::Salesforce => handoff_sandbox::salesforce::materialise::user_id(i),
            CrmKind::Hubspot => (handoff_sandbox::hubspot::state::USER_OWNER_ID_BASE + i as u64).to_string(),
        };
        let mut policy = table(&mut root, "policy")?;
        let mut owners = policy.get("owners").and_then(toml::Value::as_table).cloned().unwrap_or_default();
        let mut time_off = owners.get("time_off").and_then(toml::Value::as_table).cloned().unwrap_or_default();
        for (rep, first, last) in &org.time_off {
            let entry = time_off.entry(user_id(*rep)).or_insert_with(|| toml::Value::Array(Vec::new()));
            if let toml::Value::Array(days) = entry {
                days.push(format!("{first}..{last}").into());
            }
        }
        owners.insert("time_off".into(), time_off.into());
        policy.insert("owners".into(), owners.into());
        root.insert("policy".into(), policy.into());
    }
    // An org whose conversions make opportunities has the AE's side in
    // the policy: a discovery meeting and the opportunity, from SAL.
    if org.config.opportunities {
        let mut policy = table(&mut root, "policy")?;
        if let Some(toml::Value::Array(segments)) = policy.get_mut("segments") {
            for segment in segments.iter_mut().filter_map(toml::Value::as_table_mut) {
                segment.entry("discovery_within").or_insert_with(|| "5 business days".into());
                segment.entry("opportunity_within").or_insert_with(|| "10 business days".into());
            }
        }
        root.insert("policy".into(), policy.into());
    }
    Ok(root)
}

/// [`config_table`], validated.
pub fn config_for(sandbox: &RunningSandbox, state_dir: &std::path::Path) -> anyhow::Result<Config> {
    config_with(sandbox, state_dir, None)
}

/// Merges `extra` into `root`: a table into a table key by key, anything
/// else replaced.
pub fn merge_config(root: &mut toml::Table, extra: &toml::Table) {
    for (k, v) in extra {
        match (root.get_mut(k), v) {
            (Some(toml::Value::Table(have)), toml::Value::Table(add)) => {
                for (k2, v2) in add {
                    have.insert(k2.clone(), v2.clone());
                }
            }
            _ => {
                root.insert(k.clone(), v.clone());
            }
        }
    }
}

/// [`config_table`] with `extra` merged in, validated.
pub fn config_with(
    sandbox: &RunningSandbox,
    state_dir: &std::path::Path,
    extra: Option<&toml::Table>,
) -> anyhow::Result<Config> {
    let mut table = config_table(sandbox, state_dir)?;
    if let Some(extra) = extra {
        merge_config(&mut table, extra);
    }
    let text = toml::to_string(&table).context("rendering the demo config")?;
    config::parse(&text).map_err(|issues| {
        anyhow::anyhow!(
            "the built-in demo config is invalid:\n{}",
            issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n")
        )
    })
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Lets the sandbox serve as fast as the simulation asks: its rate limits
/// count simulated time, which stands still inside a tick. Tests that drive
/// a daemon against the sandbox use it too.
pub async fn open_sandbox_limits(sandbox: &RunningSandbox) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let (path, body) = match sandbox.crm {
        CrmKind::Salesforce => ("salesforce/limits", json!({"daily_limit": 5_000_000})),
        CrmKind::Hubspot => (
            "hubspot/limits",
            json!({"private_app_burst_per_10s": 1_000_000, "oauth_burst_per_10s": 1_000_000, "search_per_second": 1_000_000}),
        ),
    };
    let url = format!("{}/{path}", sandbox.admin_url);
    let resp = client.post(&url).json(&body).send().await.with_context(|| format!("POST {url}"))?;
    anyhow::ensure!(resp.status().is_success(), "POST {url}: {}", resp.status());
    Ok(())
}

impl Simulation {
    /// Starts the sandbox at the beginning of its timeline (clock frozen)
    /// and the daemon against it.
    pub async fn start(opts: &SimOptions) -> anyhow::Result<Simulation> {
        let mut sb = SandboxOptions::new(opts.crm);
        sb.org =
            OrgConfig { seed: opts.seed, leads: opts.leads, days: opts.days, ..opts.org.clone().unwrap_or_default() };
        sb.clock = ClockMode::Frozen;
        sb.replay = true;
        let sandbox = handoff_sandbox::start(sb).await.context("starting the sandbox CRM")?;
        open_sandbox_limits(&sandbox).await?;
        let (state_dir, temp) = match &opts.state_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("handoff-demo-")
                    .tempdir()
                    .context("creating a temporary state directory")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
        let config = config_with(&sandbox, &state_dir, opts.config_extra.as_ref())?;
        let daemon = Self::daemon(&config, &sandbox).await?;
        Ok(Simulation { sandbox, daemon, config, state_dir, _temp: temp, ticks: 0, step: opts.step })
    }

    /// Stops the daemon and starts a new one on the same state directory
    /// (what a service restart does), the sandbox untouched.
    pub async fn restart(self) -> anyhow::Result<Simulation> {
        let Simulation { sandbox, daemon, config, state_dir, _temp, ticks, step } = self;
        daemon.store().flush()?;
        drop(daemon);
        let daemon = Self::daemon(&config, &sandbox).await?;
        Ok(Simulation { sandbox, daemon, config, state_dir, _temp, ticks, step })
    }

    /// A daemon for `config` reading the sandbox's clock directly.
    pub async fn daemon(config: &Config, sandbox: &RunningSandbox) -> anyhow::Result<Daemon> {
        connect::prepare_state_dir(&config.instance.state_dir)?;
        let store = Arc::new(Store::open(&config.instance.state_dir).context("opening the state directory")?);
        let clock = sandbox.shared.clock.clone();
        let time = TimeSource::Function(Arc::new(move || clock.now()));
        let now = SharedNow::default();
        now.set(sandbox.shared.clock.now());
        let connector = connect::connector(config, &now).await.context("connecting the daemon to the sandbox")?;
        Ok(Daemon::new(config, connector, store, time, now)?)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.sandbox.shared.clock.now()
    }

    pub fn end_at(&self) -> DateTime<Utc> {
        self.sandbox.shared.org.config.end_at()
    }

    /// Ticks until the daemon is caught up at the current instant.
    pub async fn catch_up(&mut self) -> anyhow::Result<TickReport> {
        let mut last = TickReport::default();
        for _ in 0..500 {
            last = self.daemon.tick().await?;
            self.ticks += 1;
            if last.caught_up {
                return Ok(last);
            }
            if last.paused_until.is_some() {
                anyhow::bail!("the daemon paused on the API budget at {:?}", last.now);
            }
        }
        anyhow::bail!("the daemon did not catch up after 500 ticks; last errors: {:?}", last.errors)
    }

    /// The next instant to stop at: a step ahead, or the daemon's next
    /// deadline if sooner.
    pub fn next_stop(&self, until: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
        let now = self.now();
        let mut next = (now + self.step).min(until);
        if let Some(deadline) = self.daemon.store().next_deadline()? {
            if deadline > now && deadline < next {
                next = deadline;
            }
        }
        Ok(next)
    }

    /// Runs the daemon from now to `until`, calling `on_step` after each stop.
    pub async fn run_until(
        &mut self,
        until: DateTime<Utc>,
        mut on_step: impl FnMut(&Simulation, &TickReport),
    ) -> anyhow::Result<()> {
        let report = self.catch_up().await?;
        on_step(self, &report);
        while self.now() < until {
            let next = self.next_stop(until)?;
            self.sandbox.shared.clock.advance_to(next);
            let report = self.catch_up().await?;
            on_step(self, &report);
        }
        Ok(())
    }

    /// What the run did, read from the store and the sandbox.
    pub async fn summary(&self) -> anyhow::Result<DemoSummary> {
        summarise(self).await
    }

    /// The scorecard of every simulated week.
    pub fn scorecard(&self) -> anyhow::Result<crate::report::Scorecard> {
        let from = self.sandbox.shared.org.config.start_at;
        let weeks = ((self.now() - from).num_days() / 7 + 2).clamp(1, 12) as usize;
        Ok(crate::report::from_store(
            &self.config.instance.name,
            &self.config.policy,
            self.daemon.store(),
            weeks,
            self.now(),
            None,
        )?)
    }
}

/// The demo's summary; `--json` prints it as one object.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub crm: CrmKind,
    pub simulated_from: DateTime<Utc>,
    pub simulated_to: DateTime<Utc>,
    pub ticks: usize,
    pub leads: usize,
    pub mqls: usize,
    pub waived: usize,
    /// Clocks by kind, then status.
    pub clocks: std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>>,
    pub reminders: usize,
    pub escalations: usize,
    pub disposition_flags: usize,
    pub reassignments: usize,
    pub sla_field_updates: usize,
    /// Digests and weekly summaries delivered (email, Slack or CRM task).
    pub digests_and_summaries: usize,
    /// Tasks carrying a handoff key that the sandbox holds.
    pub tasks_in_sandbox: usize,
    /// Tasks the sandbox holds twice for one key (there must be none).
    pub duplicate_tasks: usize,
    /// Tasks handoff closed because what they asked for no longer stood
    /// (met, ended, handed to someone else, replaced by a later task), as
    /// its ledger records them.
    pub tasks_completed: usize,
    /// The same, as the sandbox's own task records count them (completed
    /// handoff tasks last changed by the integration user).
    pub sandbox_tasks_completed: usize,
    /// The most handoff tasks ever open at once for one lead and one clock,
    /// from handoff's ledger (one is the promise).
    pub max_open_tasks_per_lead_and_clock: usize,
    /// The same, from the sandbox's task records (created and completed times).
    pub sandbox_max_open_tasks_per_lead_and_clock: usize,
    /// API calls the sandbox counted against the limit.
    pub api_calls: usize,
    pub outbox_left: usize,
    pub failed_actions: usize,
    /// Where to look at the tasks while the sandbox runs.
    pub tasks_url: String,
    pub admin_url: String,
    /// The commitments of each simulated week.
    pub scorecard: Vec<ScorecardWeek>,
}

/// One week of the demo's scorecard.
#[derive(Debug, Clone, Serialize)]
pub struct ScorecardWeek {
    pub week_start: chrono::NaiveDate,
    pub partial: bool,
    pub commitments: Vec<crate::report::Commitment>,
}

async fn summarise(sim: &Simulation) -> anyhow::Result<DemoSummary> {
    use std::collections::BTreeMap;
    let store = sim.daemon.store();
    let states = store.states()?;
    let mut clocks: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for s in states.values() {
        for c in &s.clocks {
            *clocks
                .entry(c.kind.as_str().to_string())
                .or_default()
                .entry(c.status.as_str().to_string())
                .or_default() += 1;
        }
    }
    let mut reminders = 0;
    let mut escalations = 0;
    let mut flags = 0;
    let mut reassignments = 0;
    let mut updates = 0;
    let mut messages = 0;
    let mut completions = 0;
    for (_, e) in store.ledger_entries()? {
        match &e.kind {
            crate::store::ActionSummary::UpdateLead => updates += 1,
            crate::store::ActionSummary::Message { .. } => messages += 1,
            crate::store::ActionSummary::Reassign { .. } => reassignments += 1,
            crate::store::ActionSummary::CompleteTask { .. } => completions += 1,
            crate::store::ActionSummary::CreateTask { purpose, .. } => match purpose {
                handoff_model::TaskPurpose::Reminder => reminders += 1,
                handoff_model::TaskPurpose::Escalation { .. } => escalations += 1,
                handoff_model::TaskPurpose::DispositionFlag => flags += 1,
                handoff_model::TaskPurpose::ScorecardEscalation => escalations += 1,
                handoff_model::TaskPurpose::Digest | handoff_model::TaskPurpose::WeeklySummary => messages += 1,
            },
        }
    }
    let tasks = sandbox_tasks(&sim.sandbox).await?;
    let keyed: Vec<&SandboxTask> = tasks.iter().filter(|t| t.handoff_key.is_some()).collect();
    let duplicate_tasks = sandbox_duplicates(&sim.sandbox).await?;
    let crm_report = sandbox_task_report(&sim.sandbox).await?;
    let count = |v: &Value, k: &str| {
        v[k].as_u64().map(|n| n as usize).with_context(|| format!("the sandbox task report has no `{k}`"))
    };
    let ledger_report = ledger_task_report(store)?;
    let counts = store.counts()?;
    let api_calls = sim.sandbox.shared.log.snapshot().iter().filter(|r| r.counted).count();
    let tasks_url = match sim.sandbox.crm {
        CrmKind::Salesforce => format!("{}/salesforce/records/Task", sim.sandbox.admin_url),
        CrmKind::Hubspot => format!("{}/hubspot/objects/tasks", sim.sandbox.admin_url),
    };
    let card = sim.scorecard()?;
    Ok(DemoSummary {
        scorecard: card
            .weeks
            .iter()
            .map(|w| ScorecardWeek { week_start: w.start, partial: w.partial, commitments: w.commitments.clone() })
            .collect(),
        crm: sim.sandbox.crm,
        simulated_from: sim.sandbox.shared.org.config.start_at,
        simulated_to: sim.now(),
        ticks: sim.ticks,
        leads: states.len(),
        mqls: states.values().filter(|s| s.mql).count(),
        waived: states.values().filter(|s| s.waived.is_some()).count(),
        clocks,
        reminders,
        escalations,
        disposition_flags: flags,
        reassignments,
        sla_field_updates: updates,
        digests_and_summaries: messages,
        tasks_in_sandbox: keyed.len(),
        duplicate_tasks,
        tasks_completed: completions,
        sandbox_tasks_completed: count(&crm_report, "completed_by_integration_user")?,
        max_open_tasks_per_lead_and_clock: count(&ledger_report, "max_open_per_lead_and_clock")?,
        sandbox_max_open_tasks_per_lead_and_clock: count(&crm_report, "max_open_per_lead_and_clock")?,
        api_calls,
        outbox_left: counts.outbox,
        failed_actions: counts.outbox_failed,
        tasks_url,
        admin_url: sim.sandbox.admin_url.clone(),
    })
}

/// Tasks beyond the first per handoff key, as the sandbox itself counts them
/// (its duplicates report).
pub async fn sandbox_duplicates(sandbox: &RunningSandbox) -> anyhow::Result<usize> {
    let path = match sandbox.crm {
        CrmKind::Salesforce => "salesforce/duplicates/tasks",
        CrmKind::Hubspot => "hubspot/tasks/duplicates",
    };
    let url = format!("{}/{path}", sandbox.admin_url);
    let body: Value = reqwest::Client::new().get(&url).send().await?.error_for_status()?.json().await?;
    let groups = body["by_handoff_key"].as_array().with_context(|| format!("{url} answered without by_handoff_key"))?;
    Ok(groups.iter().map(|g| g["ids"].as_array().map_or(0, |ids| ids.len().saturating_sub(1))).sum())
}

/// The sandbox's own account of handoff's tasks (see
/// [`handoff_sandbox::task_report`]): completed ones and the most open at
/// once per lead and clock, from its task records.
pub async fn sandbox_task_report(sandbox: &RunningSandbox) -> anyhow::Result<Value> {
    let path = match sandbox.crm {
        CrmKind::Salesforce => "salesforce/tasks/handoff",
        CrmKind::Hubspot => "hubspot/tasks/handoff",
    };
    let url = format!("{}/{path}", sandbox.admin_url);
    Ok(reqwest::Client::new().get(&url).send().await?.error_for_status()?.json().await?)
}

/// The same account from handoff's ledger: each task created when its
/// create was confirmed, closed when its closing was.
pub fn ledger_task_report(store: &Store) -> anyhow::Result<Value> {
    use crate::store::ActionSummary;
    let entries = store.ledger_entries()?;
    let closed: std::collections::BTreeMap<&str, DateTime<Utc>> = entries
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            ActionSummary::CompleteTask { task_key } => Some((task_key.as_str(), e.done_at)),
            _ => None,
        })
        .collect();
    let rows: Vec<handoff_sandbox::task_report::TaskRow> = entries
        .iter()
        .filter(|(_, e)| matches!(e.kind, ActionSummary::CreateTask { .. }))
        .map(|(key, e)| handoff_sandbox::task_report::TaskRow {
            key: key.clone(),
            lead: e.lead_id.clone(),
            created_at: e.done_at,
            completed_at: closed.get(key.as_str()).copied(),
            changed_by_integration: true,
        })
        .collect();
    Ok(handoff_sandbox::task_report::report(&rows))
}

/// A task as the sandbox holds it (read through its admin API).
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxTask {
    pub id: String,
    pub handoff_key: Option<String>,
    pub owner_id: Option<String>,
    pub lead_id: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// When it was completed; `None` while open.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Every task the sandbox holds, with handoff's key when it carries one.
pub async fn sandbox_tasks(sandbox: &RunningSandbox) -> anyhow::Result<Vec<SandboxTask>> {
    let client = reqwest::Client::new();
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let time = |v: &Value, k: &str| v.get(k).and_then(crate::engine::parse_field_datetime);
    match sandbox.crm {
        CrmKind::Salesforce => {
            let url = format!("{}/salesforce/records/Task", sandbox.admin_url);
            let body: Value = client.get(&url).send().await?.error_for_status()?.json().await?;
            Ok(body["records"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .filter(|r| r.get("IsDeleted") != Some(&json!(true)))
                        .map(|r| SandboxTask {
                            id: text(r, "Id").unwrap_or_default(),
                            handoff_key: text(r, "Handoff_Key__c"),
                            owner_id: text(r, "OwnerId"),
                            lead_id: text(r, "WhoId"),
                            subject: text(r, "Subject"),
                            body: text(r, "Description"),
                            created_at: time(r, "CreatedDate"),
                            completed_at: (r.get("IsClosed") == Some(&json!(true)))
                                .then(|| time(r, "CompletedDateTime"))
                                .flatten(),
                        })
                        .collect()
                })
                .unwrap_or_default())
        }
        CrmKind::Hubspot => {
            let url = format!("{}/hubspot/objects/tasks", sandbox.admin_url);
            let body: Value = client.get(&url).send().await?.error_for_status()?.json().await?;
            let rows = body
                .get("results")
                .or_else(|| body.get("records"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Ok(rows
                .iter()
                .filter(|r| r.get("archived") != Some(&json!(true)))
                .map(|r| {
                    let props = &r["properties"];
                    SandboxTask {
                        id: text(r, "id").unwrap_or_default(),
                        handoff_key: text(props, "handoff_key"),
                        owner_id: text(props, "hubspot_owner_id"),
                        // The lead record in leads mode, else the contact.
                        lead_id: r["associations"]["leads"][0]["id"]
                            .as_str()
                            .or_else(|| r["associations"]["contacts"][0]["id"].as_str())
                            .map(str::to_string),
                        subject: text(props, "hs_task_subject"),
                        body: text(props, "hs_task_body"),
                        created_at: time(r, "createdAt"),
                        completed_at: (text(props, "hs_task_status").as_deref() == Some("COMPLETED"))
                            .then(|| time(props, "hs_task_completion_date"))
                            .flatten(),
                    }
                })
                .collect())
        }
    }
}

/// The summary as people read it.
pub fn render_summary(s: &DemoSummary) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let day = |t: DateTime<Utc>| t.format("%a %Y-%m-%d %H:%M UTC").to_string();
    let _ = writeln!(
        out,
        "handoff demo: {} sandbox, {} → {} ({} ticks)",
        s.crm,
        day(s.simulated_from),
        day(s.simulated_to),
        s.ticks
    );
    let _ = writeln!(
        out,
        "  leads seen        {} ({} MQLs; {} waived: not an MQL or incomplete data)",
        s.leads, s.mqls, s.waived
    );
    for (kind, statuses) in &s.clocks {
        let parts: Vec<String> = statuses.iter().map(|(st, n)| format!("{n} {st}")).collect();
        let _ = writeln!(out, "  {:<17} {}", format!("{kind} clocks"), parts.join(", "));
    }
    let _ = writeln!(out, "  reminders         {} (owner, before the due time)", s.reminders);
    let _ = writeln!(out, "  escalations       {} (manager, then the next level, after a breach)", s.escalations);
    let _ = writeln!(out, "  reassignments     {} (to the pool, the ladder's last rung)", s.reassignments);
    let _ = writeln!(
        out,
        "  disposition flags {} (closed without a reason code or with too few touches)",
        s.disposition_flags
    );
    let _ = writeln!(out, "  SLA field updates {}", s.sla_field_updates);
    let _ = writeln!(
        out,
        "  tasks in the CRM  {} carrying a handoff key, {} duplicate(s)",
        s.tasks_in_sandbox, s.duplicate_tasks
    );
    let _ = writeln!(
        out,
        "  tasks completed   {} by handoff when met, ended, handed over or replaced ({} as the CRM's records show)",
        s.tasks_completed, s.sandbox_tasks_completed
    );
    let _ = writeln!(
        out,
        "  open at once      at most {} handoff task(s) per lead and clock ({} as the CRM's records show)",
        s.max_open_tasks_per_lead_and_clock, s.sandbox_max_open_tasks_per_lead_and_clock
    );
    let _ = writeln!(out, "  API calls         {} (as the sandbox counted them)", s.api_calls);
    if s.outbox_left > 0 || s.failed_actions > 0 {
        let _ = writeln!(out, "  outbox            {} left, {} failed", s.outbox_left, s.failed_actions);
    }
    out
}

/// `handoff demo`.
/// What `handoff demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub crm: CrmKind,
    /// Simulated days, 1 to 90.
    pub days: u32,
    pub seed: u64,
    /// Leads generated, 1 to 20,000.
    pub leads: usize,
    /// The summary as JSON instead of words.
    pub json: bool,
    /// Keep serving the metrics and the scorecard afterwards.
    pub serve: bool,
}

pub async fn run_cli(args: &DemoOptions) -> anyhow::Result<std::process::ExitCode> {
    let crm = args.crm;
    anyhow::ensure!(args.days >= 1 && args.days <= 90, "--days {} is out of range; use 1 to 90", args.days);
    anyhow::ensure!(args.leads >= 1 && args.leads <= 20_000, "--leads {} is out of range; use 1 to 20000", args.leads);
    let opts = SimOptions { crm, seed: args.seed, leads: args.leads, days: args.days, ..SimOptions::new(crm) };
    if !args.json {
        eprintln!(
            "starting a {crm} sandbox with {} leads over {} simulated days (seed {}) ...",
            opts.leads, opts.days, opts.seed
        );
    }
    let mut sim = Simulation::start(&opts).await?;
    let end = sim.end_at();
    let quiet = args.json;
    let mut last_day = None;
    sim.run_until(end, |sim, _| {
        let today = sim.now().date_naive();
        if quiet || last_day == Some(today) {
            return;
        }
        last_day = Some(today);
        let states = sim.daemon.store().states().unwrap_or_default();
        let breached = states
            .values()
            .flat_map(|s| &s.clocks)
            .filter(|c| c.status == crate::engine::ClockStatus::Breached)
            .count();
        let ledger = sim.daemon.store().counts().map(|c| c.ledger).unwrap_or(0);
        eprintln!(
            "  {}: {} leads, {} clocks breached, {} actions written",
            today.format("%a %Y-%m-%d"),
            states.len(),
            breached,
            ledger
        );
    })
    .await?;
    let summary = sim.summary().await?;
    let (digests, weekly) = crate::notify::run::preview(&sim.config, sim.daemon.store(), sim.now())?;
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        value["digests"] = serde_json::to_value(&digests)?;
        value["weekly_summary"] = serde_json::to_value(&weekly)?;
        crate::output::emit(&format!("{}\n", serde_json::to_string(&value)?))?;
    } else {
        use std::fmt::Write as _;
        let mut text = render_summary(&summary);
        text.push('\n');
        text.push_str(&crate::report::render_table(&sim.scorecard()?));
        text.push('\n');
        let instance = &sim.config.instance.name;
        text.push_str("WHAT THE DAILY DIGESTS WOULD SAY (composed now, not sent; with [notify] they go by email, Slack or CRM task)\n");
        for d in &digests {
            text.push_str("---------------------------------------------------------------------------\n");
            text.push_str(&d.text(instance));
        }
        text.push_str("===========================================================================\n");
        match &weekly {
            Some(w) => {
                text.push_str("WHAT THE WEEKLY SUMMARY WOULD SAY\n");
                text.push_str(&w.text());
            }
            None => text.push_str("(no weekly summary: no lead yet)\n"),
        }
        text.push('\n');
        if args.serve {
            let _ = writeln!(
                text,
                "The sandbox keeps serving: the tasks handoff created are at {} (Ctrl-C to stop).",
                summary.tasks_url
            );
        } else {
            let _ = writeln!(
                text,
                "Run with --serve to keep the sandbox up and look at the tasks it holds ({}).",
                summary.tasks_url
            );
        }
        crate::output::emit(&text)?;
    }
    if args.serve {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    }
    sim.sandbox.stop().await;
    Ok(
        if summary.duplicate_tasks == 0
            && summary.failed_actions == 0
            && summary.sandbox_max_open_tasks_per_lead_and_clock <= 1
        {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::from(1)
        },
    )
}
