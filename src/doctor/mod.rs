//! `handoff doctor`: is this org ready for this config? The connector reads
//! the org into a CRM-neutral [`OrgReport`] (`Connector::inspect`, no
//! write call); [`judge`] turns the config and the report into a checklist,
//! one line per check, each miss with its fix. Judging is pure, so both
//! CRMs share it; only the words of a fix name the CRM's own screens.
//! [`run`] does the I/O: connect, inspect, and only when asked create the
//! missing HubSpot properties (`--fix`) or write a Salesforce metadata
//! package (`--write-package DIR`).

pub mod run;

use std::collections::BTreeSet;

use handoff_model::{CrmKind, FieldKind, FieldObject, FieldSpec, OrgReport, OwnerKind};
use serde::Serialize;

use crate::config::{Config, Connection};
use crate::policy::EscalationTarget;

pub use run::{run, DoctorOptions};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Something handoff needs is missing: fix it before `handoff run`.
    Miss,
    /// Worth a look; handoff works without it.
    Warn,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Miss => "MISS",
            Status::Warn => "warn",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// A stable name (`sla_field.due_at`, `task_key`, `pool.00G…`).
    pub check: String,
    pub status: Status,
    /// What was found, in words.
    pub detail: String,
    /// What to do about a miss or a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Line {
    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Line {
        Line { check: check.into(), status: Status::Ok, detail: detail.into(), fix: None }
    }

    fn miss(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Line {
        Line { check: check.into(), status: Status::Miss, detail: detail.into(), fix: Some(fix.into()) }
    }

    fn warn(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Line {
        Line { check: check.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// The SLA write-back fields: (concept, field name, wanted kind).
fn sla_fields(config: &Config) -> [(&'static str, &str, FieldKind); 4] {
    let s = &config.policy.fields.sla;
    [
        ("grade", s.grade.as_str(), FieldKind::Text),
        ("due_at", s.due_at.as_str(), FieldKind::DateTime),
        ("status", s.status.as_str(), FieldKind::Text),
        ("breach_count", s.breach_count.as_str(), FieldKind::Number),
    ]
}

/// Whether a field of `have` kind takes the values handoff writes as `want`.
fn kind_fits(want: FieldKind, have: FieldKind) -> bool {
    match want {
        // Text may also go to a text-like picklist (its values must exist).
        FieldKind::Text => matches!(have, FieldKind::Text | FieldKind::Picklist),
        other => other == have,
    }
}

fn crm_type_name(crm: CrmKind, kind: FieldKind) -> &'static str {
    match (crm, kind) {
        (CrmKind::Salesforce, FieldKind::Text) => "Text(255)",
        (CrmKind::Salesforce, FieldKind::Number) => "Number(18, 0)",
        (CrmKind::Salesforce, FieldKind::DateTime) => "Date/Time",
        (CrmKind::Hubspot, FieldKind::Text) => "single-line text",
        (CrmKind::Hubspot, FieldKind::Number) => "number",
        (CrmKind::Hubspot, FieldKind::DateTime) => "date and time picker",
        (_, k) => k.as_str(),
    }
}

fn create_field_fix(config: &Config, crm: CrmKind, name: &str, kind: FieldKind) -> String {
    let ty = crm_type_name(crm, kind);
    let on_leads = matches!(&config.connection, Connection::Hubspot(h) if h.lead_object == crate::config::HubspotLeadObject::Leads);
    match crm {
        CrmKind::Salesforce => format!(
            "create {name} as {ty} in Setup → Object Manager → Lead → Fields & Relationships and give the integration user edit access, or deploy the package `handoff doctor --write-package DIR` writes"
        ),
        CrmKind::Hubspot if on_leads => format!(
            "run `handoff doctor --fix` to create the lead property {name} ({ty}), or create it in Settings → Properties → Lead properties"
        ),
        CrmKind::Hubspot => format!(
            "run `handoff doctor --fix` to create the contact property {name} ({ty}), or create it in Settings → Properties → Contact properties"
        ),
    }
}

/// The checklist for `config` against what the org looks like.
pub fn judge(config: &Config, report: &OrgReport) -> Vec<Line> {
    let crm = report.crm;
    let mut lines = Vec::new();

    // The SLA fields the policy writes, each with the type it writes.
    for (concept, name, want) in sla_fields(config) {
        let check = format!("sla_field.{concept}");
        match report.lead_fields.get(name) {
            Some(info) if kind_fits(want, info.kind) => {
                lines.push(Line::ok(check, format!("{name} exists ({})", info.crm_type)))
            }
            Some(info) => lines.push(Line::miss(
                check,
                format!("{name} is {} but handoff writes a {} there", info.crm_type, want.as_str()),
                format!(
                    "change {name} to {} (or map policy.fields.sla.{concept} to a {} field)",
                    crm_type_name(crm, want),
                    want.as_str()
                ),
            )),
            None => lines.push(Line::miss(
                check,
                format!("{name} does not exist"),
                create_field_fix(config, crm, name, want),
            )),
        }
    }

    // Every other field the policy reads.
    let sla: BTreeSet<&str> = sla_fields(config).iter().map(|(_, n, _)| *n).collect();
    let missing: Vec<String> = config
        .policy
        .referenced_fields()
        .into_iter()
        .filter(|f| {
            !sla.contains(f.as_str()) && !report.lead_fields.contains_key(f) && !report.related_fields.contains_key(f)
        })
        .collect();
    if missing.is_empty() {
        lines.push(Line::ok("policy_fields", "every lead field the policy reads exists"));
    } else {
        lines.push(Line::miss(
            "policy_fields",
            format!("the policy reads fields the org does not have: {}", missing.join(", ")),
            "create them, or change the policy's field mapping and conditions to fields the org has",
        ));
    }

    // The task key: what makes a retried task write update instead of duplicate.
    let key = &report.task_key_field;
    let line = match (&report.task_key, crm) {
        (Some(info), CrmKind::Salesforce) if info.unique => {
            Line::ok("task_key", format!("Task.{key} is an External ID"))
        }
        (Some(_), CrmKind::Salesforce) => Line::miss(
            "task_key",
            format!("Task.{key} exists but is not an External ID, so a retried task write could create a second task"),
            format!("in Setup → Object Manager → Activity → {key}, tick External ID and Unique"),
        ),
        (None, CrmKind::Salesforce) => Line::miss(
            "task_key",
            format!("Task.{key} does not exist"),
            format!("create {key} on Activity as Text(80), External ID and Unique, or deploy the package `handoff doctor --write-package DIR` writes"),
        ),
        (Some(info), CrmKind::Hubspot) if info.unique => {
            Line::ok("task_key", format!("the task property {key} requires unique values"))
        }
        (Some(_), CrmKind::Hubspot) => Line::miss(
            "task_key",
            format!("the task property {key} does not require unique values, so a replayed task could be created twice"),
            format!("delete {key} in Settings → Properties → Task properties and run `handoff doctor --fix` to create it with unique values"),
        ),
        (None, CrmKind::Hubspot) => Line::miss(
            "task_key",
            format!("the task property {key} does not exist"),
            format!("run `handoff doctor --fix` to create {key} (single-line text, unique values), or set create_task_key_property = true"),
        ),
    };
    lines.push(line);

    // Field history on owner and status (Salesforce).
    if let (Some(history), Connection::Salesforce(s)) = (&report.history, &config.connection) {
        let listed = |f: &str| s.history_fields.iter().any(|h| h.trim() == f);
        let unlisted: Vec<&str> = ["Owner", "Status"].into_iter().filter(|f| !listed(f)).collect();
        let line = if !history.lead_history {
            Line::miss(
                "history_tracking",
                "Lead field history is not tracked (Lead has no Histories), so a backfill cannot date past assignments and status changes",
                "in Setup → Object Manager → Lead → Fields & Relationships → Set History Tracking, enable Lead History and tick Lead Owner and Lead Status",
            )
        } else if let Some(untracked) = history
            .tracked_fields
            .as_ref()
            .map(|t| {
                [("OwnerId", "Lead Owner"), ("Status", "Lead Status")]
                    .into_iter()
                    .filter(|(f, _)| !t.iter().any(|x| x == f))
                    .map(|(_, label)| label)
                    .collect::<Vec<_>>()
            })
            .filter(|u| !u.is_empty())
        {
            Line::miss(
                "history_tracking",
                format!("Lead history is on but not tracked for {}", untracked.join(" and ")),
                format!(
                    "in Setup → Object Manager → Lead → Fields & Relationships → Set History Tracking, tick {}",
                    untracked.join(" and ")
                ),
            )
        } else if !unlisted.is_empty() {
            Line::miss(
                "history_tracking",
                format!("Lead history is tracked but salesforce.history_fields leaves out {}", unlisted.join(" and ")),
                format!(
                    "add {} to salesforce.history_fields",
                    unlisted.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(", ")
                ),
            )
        } else {
            Line::ok("history_tracking", "Lead history is tracked and read for Owner and Status")
        };
        lines.push(line);
    }

    // The status values the policy names, where the org lists them
    // (HubSpot's lead pipelines in leads mode): stage ids, not labels.
    if let Some(values) = &report.status_values {
        lines.push(judge_statuses(&config.policy.statuses, values));
    }

    // The app's scopes (HubSpot).
    if let Some(scopes) = &report.scopes {
        let missing = scopes.missing();
        if missing.is_empty() {
            lines.push(Line::ok(
                "scopes",
                format!("the app holds every scope handoff needs ({})", scopes.required.join(", ")),
            ));
        } else {
            let oauth = matches!(&config.connection, Connection::Hubspot(h) if matches!(h.auth, crate::config::HubspotAuth::Oauth { .. }));
            let fix = if oauth {
                format!(
                    "add {} to the app's scopes and have the portal reinstall it (a new refresh token)",
                    missing.join(", ")
                )
            } else {
                format!("in HubSpot → Development → Legacy apps (Settings → Integrations → Private Apps) → the app → Scopes, add {}", missing.join(", "))
            };
            lines.push(Line::miss("scopes", format!("the app lacks {}", missing.join(", ")), fix));
        }
    }

    // Every queue or pool the escalation ladder moves leads to.
    for (i, level) in config.policy.escalation.levels.iter().enumerate() {
        let EscalationTarget::Pool(pool) = &level.to else { continue };
        let check = format!("pool.{pool}");
        match report.owners.iter().find(|o| &o.id == pool) {
            Some(o) if o.active => {
                let kind = if o.kind == OwnerKind::Queue { "queue" } else { "user" };
                let name = o.name.as_deref().unwrap_or("");
                lines.push(Line::ok(
                    check,
                    format!("policy.escalation.levels[{i}] moves leads to {kind} {pool} {name}").trim_end().to_string(),
                ))
            }
            Some(_) => lines.push(Line::miss(
                check,
                format!("policy.escalation.levels[{i}] moves leads to {pool}, which is inactive"),
                format!("reactivate {pool} or point policy.escalation.levels[{i}].to at an active queue"),
            )),
            None => lines.push(Line::miss(
                check,
                format!("policy.escalation.levels[{i}] moves leads to {pool}, which is no queue or user of this org"),
                format!(
                    "set policy.escalation.levels[{i}].to to \"pool:ID\" with the id of an existing queue (or owner)"
                ),
            )),
        }
    }

    // People: who escalations reach, and in which zone. A manager named
    // in policy.owners.managers counts as one.
    let users: Vec<_> = report.owners.iter().filter(|o| o.kind == OwnerKind::User && o.active).collect();
    let overrides = &config.policy.owners.managers;
    let reps_without: Vec<&str> = handoff_model::inspect::unmanaged_users(&report.owners)
        .into_iter()
        .filter(|o| !overrides.contains_key(&o.id))
        // A user owning no lead (an integration or admin user) leaves no escalation hanging.
        .filter(|o| report.leads_by_unmanaged_user.get(&o.id).is_none_or(|n| *n > 0))
        .map(|o| o.id.as_str())
        .collect();
    let ladder_needs_managers = config
        .policy
        .escalation
        .levels
        .iter()
        .any(|l| matches!(l.to, EscalationTarget::Manager | EscalationTarget::ManagerOfManager));
    let manager_fix = match crm {
        CrmKind::Salesforce => {
            "set Manager on these users (Setup → Users), or name their managers in policy.owners.managers"
        }
        CrmKind::Hubspot => "name their managers in policy.owners.managers (HubSpot owners carry no manager)",
    };
    if reps_without.is_empty() {
        lines.push(Line::ok(
            "owner_managers",
            format!("each of {} active users has a manager, manages others or owns no lead", users.len()),
        ));
    } else if ladder_needs_managers {
        lines.push(Line::miss(
            "owner_managers",
            format!(
                "escalations to a manager have nowhere to go for {} user(s) owning leads without one: {}",
                reps_without.len(),
                list(&reps_without)
            ),
            manager_fix,
        ));
    } else {
        lines.push(Line::warn(
            "owner_managers",
            format!("{} user(s) have no manager: {}", reps_without.len(), list(&reps_without)),
            manager_fix,
        ));
    }
    let zoneless: Vec<&str> = users.iter().filter(|o| o.time_zone.is_none()).map(|o| o.id.as_str()).collect();
    if zoneless.is_empty() {
        lines.push(Line::ok("owner_time_zones", format!("every one of {} users has a time zone", users.len())));
    } else {
        let fix = match crm {
            CrmKind::Salesforce => "set their Time Zone in Setup → Users; meanwhile their calendar's own zone is used",
            CrmKind::Hubspot => "add them to hubspot.owner_time_zones (HubSpot owners carry no zone); meanwhile their calendar's own zone is used",
        };
        lines.push(Line::warn(
            "owner_time_zones",
            format!("{} user(s) have no time zone: {}", zoneless.len(), list(&zoneless)),
            fix,
        ));
    }

    // The API budget against what a backfill of this org costs.
    let budget = &report.budget;
    let detail = format!(
        "a backfill of {} leads and {} activities takes about {} calls; {} of handoff's {} remain today (the org's limit is {}, {} used)",
        report.lead_count,
        report.activity_count,
        report.backfill_calls,
        budget.remaining(),
        budget.allowed,
        budget.limit,
        budget.used
    );
    let share_key = match crm {
        CrmKind::Salesforce => "salesforce.daily_budget_share",
        CrmKind::Hubspot => "hubspot.daily_budget_share",
    };
    if budget.limit == 0 {
        lines.push(Line::warn(
            "api_budget",
            format!("the CRM reported no daily limit to compare with; {detail}"),
            "check the app's daily API limit in the CRM (HubSpot reports none to OAuth apps) against the backfill's calls",
        ));
    } else if budget.remaining() < report.backfill_calls {
        lines.push(Line::miss(
            "api_budget",
            detail,
            format!("start the first run after the daily budget resets, or raise {share_key} (the backfill spreads over days otherwise)"),
        ));
    } else {
        lines.push(Line::ok("api_budget", detail));
    }
    lines
}

/// Every value of `policy.statuses` must be one of the org's: a label
/// written where its id belongs is named with the id to write.
fn judge_statuses(statuses: &crate::policy::StatusMap, values: &[handoff_model::StatusValue]) -> Line {
    let s = statuses;
    let named: Vec<(&str, &String)> = [
        ("open", &s.open),
        ("working", &s.working),
        ("accepted", &s.accepted),
        ("rejected", &s.rejected),
        ("closed_unresponsive", &s.closed_unresponsive),
        ("converted", &s.converted),
        ("deferred", &s.deferred),
        ("nurture", &s.nurture),
    ]
    .into_iter()
    .flat_map(|(meaning, list)| list.iter().map(move |v| (meaning, v)))
    .collect();
    let offered = values.iter().map(|v| format!("{} ({}, {})", v.id, v.label, v.group)).collect::<Vec<_>>().join(", ");
    let mut wrong = Vec::new();
    for (meaning, value) in named {
        if values.iter().any(|v| &v.id == value) {
            continue;
        }
        match values.iter().find(|v| v.label.eq_ignore_ascii_case(value.trim())) {
            Some(v) => wrong.push(format!("{meaning} {value:?} is a stage's label: write its id {:?}", v.id)),
            None => wrong.push(format!("{meaning} {value:?} is no stage of the portal's lead pipelines")),
        }
    }
    if wrong.is_empty() {
        Line::ok("statuses", format!("every value of policy.statuses is a lead pipeline stage: {offered}"))
    } else {
        Line::miss(
            "statuses",
            wrong.join("; "),
            format!("write stage ids in policy.statuses; the portal's stages are {offered}"),
        )
    }
}

fn list(ids: &[&str]) -> String {
    const SHOWN: usize = 10;
    let mut out = ids.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if ids.len() > SHOWN {
        out.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    out
}

/// The fields handoff can create or package: SLA fields and the task key
/// that do not exist at all (a field of the wrong type is the admin's call).
pub fn missing_fields(config: &Config, report: &OrgReport) -> Vec<FieldSpec> {
    let mut out = Vec::new();
    for (concept, name, kind) in sla_fields(config) {
        if !report.lead_fields.contains_key(name) {
            out.push(FieldSpec {
                object: FieldObject::Lead,
                name: name.to_string(),
                label: format!("SLA {}", concept.replace('_', " ")),
                kind,
                unique: false,
            });
        }
    }
    if report.task_key.is_none() {
        out.push(FieldSpec {
            object: FieldObject::Task,
            name: report.task_key_field.clone(),
            label: "Handoff key".into(),
            kind: FieldKind::Text,
            unique: true,
        });
    }
    out
}

/// The checklist as text: one line per check, a fix under each miss or warning.
pub fn render_text(lines: &[Line]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&format!("{:<4}  {}: {}\n", l.status.label(), l.check, l.detail));
        if let Some(fix) = &l.fix {
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    let missing = lines.iter().filter(|l| l.status == Status::Miss).count();
    let warnings = lines.iter().filter(|l| l.status == Status::Warn).count();
    out.push_str(&format!("{missing} missing, {warnings} warning(s), {} check(s)\n", lines.len()));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use handoff_model::{ApiBudget, FieldInfo, HistoryTracking, Owner};

    use super::*;

    fn demo_config() -> Config {
        crate::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml")).unwrap()
    }

    fn user(id: &str, manager: Option<&str>) -> Owner {
        Owner {
            id: id.into(),
            kind: OwnerKind::User,
            name: None,
            email: None,
            manager_id: manager.map(str::to_string),
            time_zone: Some("America/New_York".into()),
            active: true,
            modified_at: None,
        }
    }

    /// An org with everything the demo config needs.
    fn ready(config: &Config) -> OrgReport {
        let field = |kind, crm_type: &str| FieldInfo { kind, crm_type: crm_type.into(), unique: false };
        let mut lead_fields: BTreeMap<String, FieldInfo> =
            config.policy.referenced_fields().into_iter().map(|f| (f, field(FieldKind::Text, "string"))).collect();
        lead_fields.insert("SLA_Due__c".into(), field(FieldKind::DateTime, "datetime"));
        lead_fields.insert("SLA_Breach_Count__c".into(), field(FieldKind::Number, "double"));
        let pool =
            Owner { kind: OwnerKind::Queue, manager_id: None, time_zone: None, ..user("00GHs0000000001MAA", None) };
        OrgReport {
            crm: CrmKind::Salesforce,
            lead_fields,
            task_key_field: "Handoff_Key__c".into(),
            task_key: Some(FieldInfo { kind: FieldKind::Text, crm_type: "string".into(), unique: true }),
            history: Some(HistoryTracking {
                lead_history: true,
                tracked_fields: Some(vec!["OwnerId".into(), "Status".into()]),
            }),
            scopes: None,
            owners: vec![user("vp", None), user("rep", Some("vp")), user("integration", None), pool],
            leads_by_unmanaged_user: BTreeMap::from([("integration".to_string(), 0)]),
            lead_count: 10,
            activity_count: 20,
            backfill_calls: 12,
            budget: ApiBudget { used: 0, limit: 1000, allowed: 500, paused_until: None },
            related_fields: BTreeMap::new(),
            status_values: None,
        }
    }

    fn status_of(lines: &[Line], check: &str) -> Status {
        lines.iter().find(|l| l.check == check).map(|l| l.status).unwrap()
    }

    #[test]
    fn a_ready_org_passes_and_each_change_fails_its_own_line() {
        let config = demo_config();
        let report = ready(&config);
        let lines = judge(&config, &report);
        assert!(lines.iter().all(|l| l.status == Status::Ok), "{lines:#?}");
        assert!(missing_fields(&config, &report).is_empty());

        let mut r = ready(&config);
        r.lead_fields.insert(
            "SLA_Breach_Count__c".into(),
            FieldInfo { kind: FieldKind::Text, crm_type: "string".into(), unique: false },
        );
        assert_eq!(status_of(&judge(&config, &r), "sla_field.breach_count"), Status::Miss);
        // A field of the wrong type is the admin's call: nothing to create.
        assert!(missing_fields(&config, &r).is_empty());

        let mut r = ready(&config);
        r.owners.retain(|o| o.kind != OwnerKind::Queue);
        assert_eq!(status_of(&judge(&config, &r), "pool.00GHs0000000001MAA"), Status::Miss);

        let mut r = ready(&config);
        r.owners.iter_mut().filter(|o| o.kind == OwnerKind::Queue).for_each(|o| o.active = false);
        assert_eq!(status_of(&judge(&config, &r), "pool.00GHs0000000001MAA"), Status::Miss);

        // The integration user owns leads after all: now it is a gap.
        let mut r = ready(&config);
        r.leads_by_unmanaged_user.insert("integration".into(), 3);
        let lines = judge(&config, &r);
        assert_eq!(status_of(&lines, "owner_managers"), Status::Miss);
        assert!(lines.iter().any(|l| l.check == "owner_managers" && l.detail.contains("integration")));

        let mut r = ready(&config);
        r.budget.limit = 0;
        assert_eq!(status_of(&judge(&config, &r), "api_budget"), Status::Warn);

        let mut r = ready(&config);
        r.budget.used = 490;
        assert_eq!(status_of(&judge(&config, &r), "api_budget"), Status::Miss);

        let mut r = ready(&config);
        r.task_key = None;
        r.lead_fields.remove("SLA_Due__c");
        let wanted = missing_fields(&config, &r);
        let names: Vec<&str> = wanted.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["SLA_Due__c", "Handoff_Key__c"]);
        assert!(wanted[1].unique && wanted[1].object == FieldObject::Task);
        assert_eq!(wanted[0].kind, FieldKind::DateTime);
    }

    #[test]
    fn the_text_lists_each_check_with_its_fix_and_counts() {
        let config = demo_config();
        let mut r = ready(&config);
        r.history = Some(HistoryTracking { lead_history: false, tracked_fields: None });
        let text = render_text(&judge(&config, &r));
        assert!(text.contains("MISS  history_tracking: "), "{text}");
        assert!(text.contains("      fix: in Setup → Object Manager → Lead"), "{text}");
        assert!(text.ends_with("1 missing, 0 warning(s), 11 check(s)\n"), "{text}");
    }
}
