//! HubSpot's Leads object (`0-136`, `/crm/v3/objects/leads`, Sales Hub
//! Professional and Enterprise): the lead pipeline and its stages, the
//! stage each org status maps to, the `hs_v2_date_entered_*` properties,
//! and the refusal a portal without the object answers.
//!
//! Facts (see the crate README for sources): the default lead pipeline is
//! `lead-pipeline-id` ("Lead pipeline") with stages `new-stage-id` (New),
//! `attempting-stage-id` (Attempting), `connected-stage-id` (Connected),
//! `qualified-stage-id` (Qualified) and `unqualified-stage-id`
//! (Disqualified); stage-entry times are `hs_v2_date_entered_<stage>_<n>`
//! with a number each portal picks (custom stages, whose ids are numbers,
//! drop the stage part); a lead needs `hs_lead_name` and a primary contact.

use serde_json::{json, Value};

use super::errors::ApiError;
use super::store::iso_ms;
use crate::org::LeadStatus;

pub const PIPELINE_ID: &str = "lead-pipeline-id";
pub const PIPELINE_LABEL: &str = "Lead pipeline";

/// One stage of the lead pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadStage {
    pub id: &'static str,
    pub label: &'static str,
    /// A closed stage (qualified, disqualified, …).
    pub closed: bool,
    /// The portal's number in the stage's `hs_v2_date_entered_*` name.
    entered_suffix: Option<u64>,
}

/// The sandbox portal's lead pipeline: HubSpot's five default stages, plus
/// one custom stage the portal added for leads closed after an unanswered
/// cadence (as real portals customise theirs), so the org's
/// closed-unresponsive leads keep a status of their own, as contacts do
/// with `BAD_TIMING`. Its id is a number, as custom stage ids are.
pub const STAGES: [LeadStage; 6] = [
    LeadStage { id: "new-stage-id", label: "New", closed: false, entered_suffix: Some(1_502_380_447) },
    LeadStage { id: "attempting-stage-id", label: "Attempting", closed: false, entered_suffix: Some(1_502_380_448) },
    LeadStage { id: "connected-stage-id", label: "Connected", closed: false, entered_suffix: Some(1_502_380_449) },
    LeadStage { id: "qualified-stage-id", label: "Qualified", closed: true, entered_suffix: Some(1_502_380_450) },
    LeadStage { id: "unqualified-stage-id", label: "Disqualified", closed: true, entered_suffix: Some(1_502_380_451) },
    LeadStage { id: "1502380452", label: "Closed - unresponsive", closed: true, entered_suffix: None },
];

pub const NEW_STAGE: &str = "new-stage-id";

/// When the pipeline and its stages were created (the portal's set-up).
const CREATED_AT_MS: i64 = 1_706_745_600_000;

/// The stage a lead of the org is in for `status`.
pub fn stage_for(status: &LeadStatus) -> &'static str {
    match status {
        LeadStatus::New => "new-stage-id",
        LeadStatus::Working => "attempting-stage-id",
        LeadStatus::Accepted => "connected-stage-id",
        LeadStatus::Converted => "qualified-stage-id",
        LeadStatus::Rejected { .. } => "unqualified-stage-id",
        LeadStatus::ClosedUnresponsive { .. } => "1502380452",
    }
}

/// The stage with this id.
pub fn stage(id: &str) -> Option<&'static LeadStage> {
    STAGES.iter().find(|s| s.id == id)
}

/// `hs_v2_date_entered_new_stage_id_1502380447` for a default stage,
/// `hs_v2_date_entered_1502380452` for a custom (numeric) one.
pub fn date_entered_property(stage: &LeadStage) -> String {
    match stage.entered_suffix {
        Some(n) => format!("hs_v2_date_entered_{}_{n}", stage.id.replace('-', "_")),
        None => format!("hs_v2_date_entered_{}", stage.id),
    }
}

/// The label HubSpot gives a stage-entry property.
pub fn date_entered_label(stage: &LeadStage) -> String {
    format!("Date entered \"{} ({PIPELINE_LABEL})\"", stage.label)
}

fn render_stage(s: &LeadStage, order: usize) -> Value {
    let at = iso_ms(CREATED_AT_MS);
    json!({
        "id": s.id,
        "label": s.label,
        "displayOrder": order,
        "metadata": {"isClosed": s.closed.to_string()},
        "createdAt": at,
        "updatedAt": at,
        "archived": false,
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    })
}

/// The `Pipeline` JSON of the lead pipeline.
pub fn pipeline() -> Value {
    let at = iso_ms(CREATED_AT_MS);
    json!({
        "id": PIPELINE_ID,
        "label": PIPELINE_LABEL,
        "displayOrder": 0,
        "stages": stages(),
        "createdAt": at,
        "updatedAt": at,
        "archived": false,
    })
}

/// The stages as `PipelineStage` JSON, in display order.
pub fn stages() -> Vec<Value> {
    STAGES.iter().enumerate().map(|(i, s)| render_stage(s, i)).collect()
}

/// One stage as `PipelineStage` JSON.
pub fn render_stage_by_id(id: &str) -> Option<Value> {
    STAGES.iter().position(|s| s.id == id).map(|i| render_stage(&STAGES[i], i))
}

/// What a portal without the Leads object (Starter, or no Sales Hub seat)
/// answers: the app cannot hold the leads scopes, so every leads call is
/// refused with HubSpot's missing-scope 403, in the shape a live portal
/// sent for another object it lacked (PostHog/posthog#53339:
/// `message`, `errors[].context.requiredGranularScopes`, `links.scopes`).
pub fn unavailable(write: bool) -> ApiError {
    let scope = if write { "crm.objects.leads.write" } else { "crm.objects.leads.read" };
    let mut e = ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
    );
    e.body["errors"] = json!([{
        "message": "One or more of the following scopes are required.",
        "context": {"requiredGranularScopes": [scope]},
    }]);
    e.body["links"] = json!({"scopes": "https://developers.hubspot.com/scopes"});
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_stage_and_every_stage_an_entry_property() {
        for status in [
            LeadStatus::New,
            LeadStatus::Working,
            LeadStatus::Accepted,
            LeadStatus::Converted,
            LeadStatus::Rejected { reason: None },
            LeadStatus::ClosedUnresponsive { reason: None },
        ] {
            assert!(stage(stage_for(&status)).is_some(), "{status:?}");
        }
        let names: Vec<String> = STAGES.iter().map(date_entered_property).collect();
        assert_eq!(names[0], "hs_v2_date_entered_new_stage_id_1502380447");
        assert_eq!(names[5], "hs_v2_date_entered_1502380452");
        let mut distinct = names.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), names.len());
    }

    #[test]
    fn the_refusal_names_the_scope_in_the_recorded_shape() {
        let e = unavailable(true);
        assert_eq!(e.status.as_u16(), 403);
        assert_eq!(e.body["category"], "MISSING_SCOPES");
        assert_eq!(e.body["errors"][0]["context"]["requiredGranularScopes"][0], "crm.objects.leads.write");
        assert!(e.body["correlationId"].is_string());
    }
}
