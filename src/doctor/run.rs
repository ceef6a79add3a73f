//! `handoff doctor`'s I/O: load the config, connect without checking,
//! inspect, judge, and — only when asked — fix (HubSpot properties) or
//! write the metadata package (Salesforce).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use handoff_model::{CrmKind, OrgReport};
use serde_json::json;

use super::{judge, missing_fields, render_text, Line, Status};
use crate::config::{Config, Connection};
use crate::daemon::connect::{self, SharedNow, TimeSource};

/// What `handoff doctor` was asked to do.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    pub config: PathBuf,
    pub json: bool,
    /// HubSpot: create the missing properties.
    pub fix: bool,
    /// Salesforce: write a metadata package of the missing fields here.
    pub write_package: Option<PathBuf>,
}

/// What a run did besides judging.
#[derive(Debug, Default)]
struct Done {
    fixed: Vec<String>,
    package: Vec<String>,
}

/// Runs the doctor for a loaded config; returns the exit code
/// (`exit::OK`, or `exit::DOCTOR_MISSING` when a check is missing).
pub async fn run(config: &Config, options: &DoctorOptions) -> anyhow::Result<u8> {
    match (&config.connection, options.fix, &options.write_package) {
        (Connection::Salesforce(_), true, _) => anyhow::bail!(
            "--fix creates HubSpot properties; Salesforce fields are deployed as metadata: use --write-package DIR and deploy it"
        ),
        (Connection::Hubspot(_), _, Some(_)) => anyhow::bail!(
            "--write-package writes a Salesforce metadata package; for HubSpot use --fix to create the properties"
        ),
        _ => {}
    }
    // A refresh token the CRM rotates while the doctor logs in must be kept
    // where the daemon will look for it, or the daemon's copy is dead.
    connect::prepare_state_dir(&config.instance.state_dir)?;
    let now = SharedNow::default();
    now.set(TimeSource::for_config(config)?.now().await?);
    let connector = connect::unchecked_connector(config, &now).await?;
    let mut report = match connector.inspect().await {
        Ok(r) => r,
        Err(handoff_model::ConnectorError::Budget { retry_after, .. }) => {
            // handoff's share is spent: that is the finding.
            let lines = vec![Line {
                check: "api_budget".into(),
                status: Status::Miss,
                detail: format!(
                    "handoff's share of today's API calls is spent (the CRM allows more in {} min), so the org could not be inspected",
                    retry_after.as_secs().div_ceil(60)
                ),
                fix: Some("start handoff after the daily budget resets, or raise daily_budget_share; then run doctor again".into()),
            }];
            print_lines(options, &lines)?;
            return Ok(crate::exit::DOCTOR_MISSING);
        }
        Err(e) => return Err(e.into()),
    };
    let mut done = Done::default();
    let wanted = missing_fields(config, &report);
    if options.fix && !wanted.is_empty() {
        done.fixed = connector.create_fields(&wanted).await?;
        report = connector.inspect().await?;
    }
    if let Some(dir) = &options.write_package {
        done.package = write_package(config, dir, &wanted)?;
    }
    let lines = judge(config, &report);
    let mut text = String::new();
    if options.json {
        text = format!("{}\n", serde_json::to_string_pretty(&json_output(&report, &lines, &done))?);
    } else {
        for f in &done.fixed {
            text.push_str(&format!("fixed: {f}\n"));
        }
        if let Some(dir) = &options.write_package {
            if done.package.is_empty() {
                text.push_str(&format!("package: nothing is missing, so nothing was written to {}\n", dir.display()));
            } else {
                text.push_str(&format!(
                    "package: wrote {} to {} (deploy it with `sf project deploy start --metadata-dir {}`)\n",
                    done.package.join(", "),
                    dir.display(),
                    dir.display()
                ));
            }
        }
        text.push_str(&render_text(&lines));
    }
    crate::output::emit(&text)?;
    Ok(if lines.iter().any(|l| l.status == Status::Miss) { crate::exit::DOCTOR_MISSING } else { crate::exit::OK })
}

/// The checklist alone, when there is no report to show with it.
fn print_lines(options: &DoctorOptions, lines: &[Line]) -> std::io::Result<()> {
    if options.json {
        let v = json!({
            "ok": !lines.iter().any(|l| l.status == Status::Miss),
            "missing": lines.iter().filter(|l| l.status == Status::Miss).count(),
            "warnings": lines.iter().filter(|l| l.status == Status::Warn).count(),
            "checks": lines,
        });
        crate::output::emit(&format!("{v:#}\n"))
    } else {
        crate::output::emit(&render_text(lines))
    }
}

fn write_package(config: &Config, dir: &Path, wanted: &[handoff_model::FieldSpec]) -> anyhow::Result<Vec<String>> {
    let Connection::Salesforce(s) = &config.connection else { return Ok(Vec::new()) };
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    for (rel, contents) in handoff_salesforce::package::metadata_package(wanted, &s.api_version) {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        written.push(rel);
    }
    Ok(written)
}

fn json_output(report: &OrgReport, lines: &[Line], done: &Done) -> serde_json::Value {
    json!({
        "crm": match report.crm { CrmKind::Salesforce => "salesforce", CrmKind::Hubspot => "hubspot" },
        "ok": !lines.iter().any(|l| l.status == Status::Miss),
        "missing": lines.iter().filter(|l| l.status == Status::Miss).count(),
        "warnings": lines.iter().filter(|l| l.status == Status::Warn).count(),
        "checks": lines,
        "fixed": done.fixed,
        "package": done.package,
        "org": {
            "leads": report.lead_count,
            "activities": report.activity_count,
            "owners": report.owners.len(),
            "backfill_calls": report.backfill_calls,
            "budget": report.budget,
        },
    })
}
