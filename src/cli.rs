//! The `handoff` command line.
//!
//! Subcommands:
//! - `check --config FILE`: validate a config file and print every problem,
//!   one line each (key path, bad value, fix). Exit 0 when valid.
//! - `doctor --config FILE [--json] [--fix] [--write-package DIR]`: connect
//!   to the org and check it is ready for the config, one line per check.
//! - `explain --config FILE (--case CASE.json | --lead LEAD.json
//!   [--activities ACTS.json] [--owner OWNER.json]) --now RFC3339 [--json]`:
//!   judge one lead offline and say why.
//! - `run --config FILE [--once]`: the service (see [`crate::daemon::service`]).
//! - `state --config FILE [--json] [--resync STREAM [--since DATE]] [--retry-failed] [--retry-quarantined]`:
//!   what the state directory holds, and repairs.
//! - `demo [--crm salesforce|hubspot] [--days N] [--seed S] [--leads N] [--json]`:
//!   the whole loop against a generated sandbox org.
//! - `report --config FILE [--weeks N] [--format table|csv|json|html] [--by grade|source|rep|team|role]`:
//!   the weekly scorecard.
//! - `sandbox --crm salesforce|hubspot …`: serve a sandbox CRM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use handoff_model::{Activity, Lead, Owner};

use crate::config::{self, Config, ConfigError};
use crate::explain::ExplainInput;

/// Exit code for a config file with problems (clap uses 2 for bad usage).
pub const EXIT_INVALID: u8 = crate::exit::INVALID;

#[derive(Debug, Parser)]
#[command(
    name = "handoff",
    version,
    about = "Makes the marketing-to-sales lead handoff SLA enforce itself inside Salesforce and HubSpot"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as text or as one JSON object each (logs go to standard
    /// error; `RUST_LOG` sets the level).
    #[arg(long, global = true, value_enum, env = "HANDOFF_LOG_FORMAT", default_value = "text")]
    pub log_format: crate::logging::LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file and report every problem at once.
    Check(CheckArgs),
    /// Connect to the org and check it is ready for this config: fields and
    /// their types, the task key, history tracking, scopes, escalation pools,
    /// owners, the API budget. Read-only unless --fix or --write-package.
    Doctor(DoctorArgs),
    /// Evaluate one lead offline under a config's policy and explain the result.
    Explain(ExplainArgs),
    /// Serve a synthetic Salesforce or HubSpot org on loopback until stopped;
    /// prints one JSON line with the URLs and credentials a client needs.
    Sandbox(SandboxArgs),
    /// Run the daemon: sync, evaluate and enforce until stopped (SIGTERM);
    /// SIGHUP reloads the config.
    Run(RunArgs),
    /// Show what the state directory holds (cursors, outbox, failed actions,
    /// last errors), re-read a stream, or retry failed actions.
    State(StateArgs),
    /// Watch the whole loop on a generated sandbox org: no CRM, no credentials.
    Demo(DemoArgs),
    /// The weekly scorecard both teams agreed on, with trends: a table, CSV,
    /// JSON or a self-contained HTML page.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Weeks to show, ending with the current one (8 to 12 show a trend).
    #[arg(long, default_value_t = 8)]
    pub weeks: usize,
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::report::Format,
    /// Break the numbers down by grade, lead source, rep or team (manager).
    #[arg(long, value_enum)]
    pub by: Option<crate::report::Dimension>,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Report as of this instant (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Run until caught up at the current instant, then exit: 0 when every
    /// stream, evaluation and write is done; 3 when actions were given up
    /// on, 4 when records are quarantined, 5 when the shutdown grace ran
    /// out, 6 when ticks kept failing, 7 when the API budget ran out.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long)]
    pub json: bool,
    /// Forget a stream's position so the next run reads it again: from the
    /// beginning, or from `--since`.
    #[arg(long, value_enum, value_name = "STREAM")]
    pub resync: Option<StreamArg>,
    /// With --resync: read again from this instant (RFC 3339 or YYYY-MM-DD).
    #[arg(long, requires = "resync", value_name = "WHEN")]
    pub since: Option<String>,
    /// Put actions that were given up on back in the outbox.
    #[arg(long)]
    pub retry_failed: bool,
    /// Read every quarantined record again at the next run (each stream
    /// holding one is read again from the window it was seen in).
    #[arg(long)]
    pub retry_quarantined: bool,
    /// Rewrite the state database compactly (the daemon must be stopped):
    /// it keeps overwritten data on disk until then.
    #[arg(long)]
    pub compact: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StreamArg {
    Leads,
    Activities,
    Owners,
    Calendars,
}

impl StreamArg {
    pub fn stream(self) -> handoff_model::Stream {
        match self {
            StreamArg::Leads => handoff_model::Stream::Leads,
            StreamArg::Activities => handoff_model::Stream::Activities,
            StreamArg::Owners => handoff_model::Stream::Owners,
            StreamArg::Calendars => handoff_model::Stream::Calendars,
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, value_enum, default_value = "salesforce")]
    pub crm: SandboxCrm,
    /// Simulated days to run.
    #[arg(long, default_value_t = 5)]
    pub days: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Leads in the generated org (over the whole period).
    #[arg(long, default_value_t = 150)]
    pub leads: usize,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Keep the sandbox serving after the run, to look at the tasks it holds
    /// (until Ctrl-C).
    #[arg(long)]
    pub serve: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Also read every secret and local file the connection names (as the
    /// daemon will at start). Secret values are never printed.
    #[arg(long)]
    pub secrets: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The config file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Print the checklist as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// HubSpot: create the missing SLA properties and the task key property.
    #[arg(long)]
    pub fix: bool,
    /// Salesforce: write a metadata package (package.xml and objects/*.object)
    /// of the missing fields into DIR, for an admin to deploy.
    #[arg(long, value_name = "DIR")]
    pub write_package: Option<PathBuf>,
}

impl DoctorArgs {
    fn options(&self) -> crate::doctor::DoctorOptions {
        crate::doctor::DoctorOptions {
            config: self.config.clone(),
            json: self.json,
            fix: self.fix,
            write_package: self.write_package.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// A case file: `{ "lead": {…}, "activities": [ … ], "owners": [ … ] }`.
    #[arg(long, value_name = "CASE.json", conflicts_with_all = ["lead", "activities", "owner", "from_state"], required_unless_present_any = ["lead", "from_state"])]
    pub case: Option<PathBuf>,
    /// A lead as the daemon holds it in the config's state directory (its
    /// record, history, activities and the owners), by CRM id: replays a
    /// disputed case exactly as the daemon saw it.
    #[arg(long, value_name = "LEAD_ID", conflicts_with_all = ["lead", "activities", "owner"])]
    pub from_state: Option<String>,
    /// The lead as JSON (handoff's CRM-neutral lead).
    #[arg(long, value_name = "LEAD.json")]
    pub lead: Option<PathBuf>,
    /// Its activities as a JSON list.
    #[arg(long, value_name = "ACTS.json", requires = "lead")]
    pub activities: Option<PathBuf>,
    /// The owner(s) as JSON: one owner object or a list (the owner and the
    /// managers above them).
    #[arg(long, value_name = "OWNER.json", requires = "lead")]
    pub owner: Option<PathBuf>,
    /// The instant to judge at, RFC 3339 (e.g. 2026-03-02T15:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    pub now: DateTime<Utc>,
    /// Print the evaluation as JSON instead of the report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Which CRM to emulate.
    #[arg(long, value_enum)]
    pub crm: SandboxCrm,
    /// Loopback address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Seed of the synthetic org (same seed, same org).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Leads in the org.
    #[arg(long, default_value_t = 1_000)]
    pub leads: usize,
    /// Days the org's timeline spans.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Add follow-up activities to closed leads until the org averages
    /// about N per lead (the reps' SLA work alone logs about 1.7).
    #[arg(long, value_name = "N")]
    pub activities_per_lead: Option<u32>,
    /// Serve HTTPS with a generated CA (its PEM path is printed as `ca_cert`).
    #[arg(long)]
    pub tls: bool,
    /// Start the clock at the beginning of the timeline and let it unfold.
    #[arg(long)]
    pub replay: bool,
    /// Move simulated time only through the admin API.
    #[arg(long)]
    pub frozen: bool,
    /// Where to keep keys and certificates (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SandboxCrm {
    Salesforce,
    Hubspot,
}

#[cfg(feature = "sandbox")]
impl SandboxCrm {
    fn kind(self) -> handoff_model::CrmKind {
        match self {
            SandboxCrm::Salesforce => handoff_model::CrmKind::Salesforce,
            SandboxCrm::Hubspot => handoff_model::CrmKind::Hubspot,
        }
    }
}

impl StateArgs {
    fn options(&self) -> crate::state::StateOptions {
        crate::state::StateOptions {
            config: self.config.clone(),
            json: self.json,
            resync: self.resync.map(StreamArg::stream),
            since: self.since.clone(),
            retry_failed: self.retry_failed,
            retry_quarantined: self.retry_quarantined,
            compact: self.compact,
        }
    }
}

impl ReportArgs {
    fn options(&self) -> crate::report::ReportOptions {
        crate::report::ReportOptions {
            config: self.config.clone(),
            weeks: self.weeks,
            format: self.format,
            by: self.by,
            output: self.output.clone(),
            at: self.at,
        }
    }
}

#[cfg(feature = "sandbox")]
impl DemoArgs {
    fn options(&self) -> crate::demo::DemoOptions {
        crate::demo::DemoOptions {
            crm: self.crm.kind(),
            days: self.days,
            seed: self.seed,
            leads: self.leads,
            json: self.json,
            serve: self.serve,
        }
    }
}

#[cfg(feature = "sandbox")]
impl SandboxArgs {
    pub fn options(&self) -> handoff_sandbox::SandboxOptions {
        let mut opts = handoff_sandbox::SandboxOptions::new(self.crm.kind());
        opts.listen = self.listen;
        opts.org.seed = self.seed;
        opts.org.leads = self.leads;
        opts.org.days = self.days;
        opts.org.activities_per_lead = self.activities_per_lead;
        opts.tls = self.tls;
        opts.replay = self.replay;
        opts.work_dir = self.work_dir.clone();
        if self.frozen {
            opts.clock = handoff_sandbox::ClockMode::Frozen;
        }
        opts
    }
}

/// Runs a parsed command line; the result is the process exit code.
/// Output goes to stdout, problems to stderr.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check(&args),
        Command::Doctor(args) => {
            let options = args.options();
            let config = match load_or_report(&options.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let code = runtime()?.block_on(crate::doctor::run(&config, &options))?;
            Ok(ExitCode::from(code))
        }
        Command::Explain(args) => {
            let config = match load_or_report(&args.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let (config, input) = match &args.from_state {
                Some(id) => explain_from_state(config, id, &args)?,
                None => {
                    let input = explain_input(&args)?;
                    (config, input)
                }
            };
            let report = crate::explain::run(&config, &input)?;
            crate::output::emit(&report.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => {
            handoff_sandbox::server::run_blocking(args.options())?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(not(feature = "sandbox"))]
        Command::Sandbox(_) | Command::Demo(_) => Err(anyhow::anyhow!(
            "this build of handoff leaves the sandbox out (built without the `sandbox` feature); `handoff sandbox` and `handoff demo` need a default build"
        )),
        Command::Run(args) => {
            let options = crate::daemon::service::RunOptions { once: args.once };
            let code = runtime()?.block_on(async {
                let signals = crate::daemon::service::Signals::from_os()?;
                crate::daemon::service::run(&args.config, options, signals).await
            })?;
            Ok(ExitCode::from(code))
        }
        Command::State(args) => crate::state::run(&args.options()),
        #[cfg(feature = "sandbox")]
        Command::Demo(args) => runtime()?.block_on(crate::demo::run_cli(&args.options())),
        Command::Report(args) => crate::report::run_cli(&args.options()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// `handoff check`: every problem on its own line, then a count.
pub fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let config = match load_or_report(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if args.secrets {
        let issues = config.check_local_files();
        if !issues.is_empty() {
            for issue in &issues {
                eprintln!("{issue}");
            }
            eprintln!("{}: {} problem(s) with secrets or local files", args.config.display(), issues.len());
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    }
    let p = &config.policy;
    let mut extras = String::new();
    if !p.surge.periods.is_empty() {
        extras.push_str(&format!(", {} declared surge(s)", p.surge.periods.len()));
    }
    if let Some(d) = &p.surge.detect {
        extras.push_str(&format!(", surges detected from {} new MQLs an hour", d.mqls_per_hour));
    }
    if !p.time_off.is_empty() {
        extras.push_str(&format!(", time off for {} owner(s)", p.time_off.len()));
    }
    if let Some(overflow) = &p.capacity.overflow {
        let cap = p.capacity.default_cap.map_or("per rep".to_string(), |c| c.to_string());
        let to = match overflow {
            crate::policy::Overflow::Pool(pool) => format!("the excess to {pool}"),
            crate::policy::Overflow::LeastLoaded { group, .. } => {
                format!("the excess to the least-loaded of {} reps", group.len())
            }
            crate::policy::Overflow::Relax { .. } => "the excess kept with relaxed windows".to_string(),
        };
        extras.push_str(&format!(", capacity {cap} new MQLs a day ({to})"));
    }
    let mut text = format!(
        "{}: OK: instance `{}` ({}), policy version {}, grades {}, segments {}, {} calendar(s){extras}\n",
        args.config.display(),
        config.instance.name,
        config.instance.crm,
        p.version,
        p.grades.iter().map(|(g, _)| g.as_str()).collect::<Vec<_>>().join("/"),
        p.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join("/"),
        p.calendars.len(),
    );
    // Choices the policy makes without saying so: who answers for a lead
    // the ladder moves to a pool.
    for note in p.notes() {
        text.push_str(&format!("note: {note}\n"));
    }
    crate::output::emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Loads a config, or prints why not and returns the exit code to use.
fn load_or_report(path: &Path) -> Result<Config, ExitCode> {
    match config::load(path) {
        Ok(c) => Ok(c),
        Err(ConfigError::Invalid { path, issues }) => {
            for issue in &issues {
                eprintln!("{issue}");
            }
            eprintln!("{}: {} problem(s); fix them and run `handoff check` again", path.display(), issues.len());
            Err(ExitCode::from(EXIT_INVALID))
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {what} file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{what} file {} is not valid {what} JSON", path.display()))
}

/// The lead as the daemon judges it, from its state directory: the policy
/// counts the days off the CRM recorded, as the daemon's does.
fn explain_from_state(mut config: Config, lead_id: &str, args: &ExplainArgs) -> anyhow::Result<(Config, ExplainInput)> {
    let dir = &config.instance.state_dir;
    let store = crate::store::Store::open(dir)
        .with_context(|| format!("opening {} (stop the daemon first, or copy the state directory)", dir.display()))?;
    let (lead, activities) = store
        .lead_case(lead_id)?
        .with_context(|| format!("lead {lead_id} is not in {}; `handoff state` shows what is", dir.display()))?;
    let owners = store.owners()?;
    let crm = crate::daemon::availability::crm_days_off(&store.absences()?, &owners);
    config.policy.time_off = crate::daemon::availability::merged(&config.policy.time_off, &crm);
    let input = ExplainInput {
        lead,
        activities,
        owners,
        intake: store.state(lead_id)?.and_then(|s| s.intake),
        now: args.now,
        json: args.json,
    };
    Ok((config, input))
}

fn explain_input(args: &ExplainArgs) -> anyhow::Result<ExplainInput> {
    if let Some(case) = &args.case {
        return ExplainInput::from_case_file(case, args.now, args.json);
    }
    let lead_path = args.lead.as_deref().context("give --case CASE.json or --lead LEAD.json")?;
    let lead: Lead = read_json(lead_path, "lead")?;
    let activities: Vec<Activity> = match &args.activities {
        Some(p) => read_json(p, "activities")?,
        None => Vec::new(),
    };
    let owners: Vec<Owner> = match &args.owner {
        Some(p) => {
            let value: serde_json::Value = read_json(p, "owner")?;
            if value.is_array() {
                serde_json::from_value(value)
                    .with_context(|| format!("owner file {} is not a list of owners", p.display()))?
            } else {
                vec![serde_json::from_value(value)
                    .with_context(|| format!("owner file {} is not an owner", p.display()))?]
            }
        }
        None => Vec::new(),
    };
    Ok(ExplainInput { lead, activities, owners, intake: None, now: args.now, json: args.json })
}
