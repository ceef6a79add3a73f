//! What `handoff doctor` reads from a portal (contact and task properties,
//! the token's scopes, owners, counts, the budget) and the properties it
//! may create on the operator's request.

use handoff_model::{
    ConnectorError, CrmKind, FieldInfo, FieldKind, FieldObject, FieldSpec, OrgReport, Scopes, StatusValue,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Request;
use crate::limits::Bucket;
use crate::map::{self, TASK_KEY_PROPERTY};
use crate::{HubspotAuth, HubspotConnector, HubspotError, LeadObject};

/// The scopes the connector's calls need: contacts (and the engagements
/// associated with them) read and written, owners read, the property
/// definitions read.
pub const REQUIRED_SCOPES: [&str; 4] =
    ["crm.objects.contacts.read", "crm.objects.contacts.write", "crm.objects.owners.read", "crm.schemas.contacts.read"];

/// What leads mode needs besides [`REQUIRED_SCOPES`]: lead records read
/// and written.
pub const LEADS_MODE_SCOPES: [&str; 2] = ["crm.objects.leads.read", "crm.objects.leads.write"];

/// What reading opportunities needs besides [`REQUIRED_SCOPES`]: deals
/// read (for the deals, and for the engagements' associations to them).
pub const OPPORTUNITY_SCOPES: [&str; 1] = ["crm.objects.deals.read"];

/// A property definition as `handoff doctor` judges it.
pub fn property_info(def: &Value) -> FieldInfo {
    let crm_type = def.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = match crm_type.as_str() {
        "string" | "phone_number" => FieldKind::Text,
        "enumeration" => FieldKind::Picklist,
        "number" => FieldKind::Number,
        "datetime" => FieldKind::DateTime,
        "date" => FieldKind::Date,
        "bool" => FieldKind::Boolean,
        _ => FieldKind::Other,
    };
    let unique = def.get("hasUniqueValue").and_then(Value::as_bool).unwrap_or(false);
    FieldInfo { kind, crm_type, unique }
}

/// The property definition `create_fields` posts for a field (the lead's
/// fields go onto the object `lead_object` names).
pub fn property_body(f: &FieldSpec, lead_object: LeadObject) -> Value {
    let (kind, field_type) = match f.kind {
        FieldKind::Number => ("number", "number"),
        FieldKind::DateTime => ("datetime", "date"),
        FieldKind::Date => ("date", "date"),
        FieldKind::Boolean => ("bool", "booleancheckbox"),
        FieldKind::Text | FieldKind::Picklist | FieldKind::Other => ("string", "text"),
    };
    let group = match (f.object, lead_object) {
        (FieldObject::Lead, LeadObject::Contacts) => "contactinformation",
        (FieldObject::Lead, LeadObject::Leads) => "lead_information",
        (FieldObject::Task, _) => "task",
    };
    json!({
        "name": f.name,
        "label": f.label,
        "type": kind,
        "fieldType": field_type,
        "groupName": group,
        "description": "Written by handoff (the lead-handoff SLA).",
        "hasUniqueValue": f.unique,
    })
}

fn object_path(object: FieldObject, lead_object: LeadObject) -> &'static str {
    match object {
        FieldObject::Lead => lead_object.object_type(),
        FieldObject::Task => "tasks",
    }
}

/// The property names of a `GET /crm/v3/properties/{object}` answer, judged.
fn property_infos(listing: &Value) -> std::collections::BTreeMap<String, FieldInfo> {
    listing
        .get("results")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter().filter_map(|d| Some((d.get("name")?.as_str()?.to_string(), property_info(d)))).collect()
        })
        .unwrap_or_default()
}

/// The stages of a `GET /crm/v3/pipelines/leads` answer, in display order.
pub fn pipeline_stages(listing: &Value) -> Vec<StatusValue> {
    let mut out = Vec::new();
    for p in listing.get("results").and_then(Value::as_array).into_iter().flatten() {
        let group = p.get("label").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut stages: Vec<&Value> = p.get("stages").and_then(Value::as_array).into_iter().flatten().collect();
        stages.sort_by_key(|s| s.get("displayOrder").and_then(Value::as_i64).unwrap_or(0));
        for s in stages {
            let (Some(id), Some(label)) = (s.get("id").and_then(Value::as_str), s.get("label").and_then(Value::as_str))
            else {
                continue;
            };
            out.push(StatusValue { id: id.to_string(), label: label.to_string(), group: group.clone() });
        }
    }
    out
}

impl HubspotConnector {
    async fn get_json(&self, path: String, object: &str) -> Result<Value, HubspotError> {
        self.client.get(&path, vec![], object, "doctor").await
    }

    /// A search with one result: HubSpot's `total` is the count (of every
    /// record, or of a contact owner's).
    async fn count(&self, object: &str, owner: Option<&str>) -> Result<u64, HubspotError> {
        let path = format!("/crm/v3/objects/{object}/search");
        let filters = match owner {
            Some(id) => json!([{"filters": [{"propertyName": "hubspot_owner_id", "operator": "EQ", "value": id}]}]),
            None => json!([]),
        };
        let body = json!({"limit": 1, "filterGroups": filters, "properties": ["hs_object_id"]});
        let resp = self
            .client
            .send(Request {
                method: Method::POST,
                path: path.clone(),
                query: vec![],
                body: Some(&body),
                bucket: Bucket::Search,
                idempotent: true,
                object,
                cursor: "doctor",
            })
            .await?;
        let v: Value = resp.json(&path)?;
        v.get("total").and_then(Value::as_u64).ok_or_else(|| HubspotError::Protocol {
            endpoint: path,
            message: "a search answer without a numeric `total`".into(),
        })
    }

    /// The token's scopes: a private app's from
    /// `POST /oauth/v2/private-apps/get/access-token-info`, an OAuth access
    /// token's from `GET /oauth/v1/access-tokens/{token}`.
    async fn granted_scopes(&self) -> Result<Vec<String>, HubspotError> {
        let token = self.client.access_token().await?;
        let (method, path, body) = match &self.settings.auth {
            HubspotAuth::PrivateApp { .. } => (
                Method::POST,
                "/oauth/v2/private-apps/get/access-token-info".to_string(),
                Some(json!({"tokenKey": token.expose()})),
            ),
            HubspotAuth::OAuth { .. } => (Method::GET, format!("/oauth/v1/access-tokens/{}", token.expose()), None),
        };
        // The path may hold the token: errors name the endpoint, not the path.
        let endpoint = "token info";
        let resp = self
            .client
            .send(Request {
                method,
                path,
                query: vec![],
                body: body.as_ref(),
                bucket: Bucket::Burst,
                idempotent: true,
                object: "scopes",
                cursor: "doctor",
            })
            .await?;
        let v: Value = resp.json(endpoint)?;
        let scopes = v.get("scopes").and_then(Value::as_array).ok_or_else(|| HubspotError::Protocol {
            endpoint: endpoint.into(),
            message: "a token-info answer without a `scopes` list".into(),
        })?;
        Ok(scopes.iter().filter_map(Value::as_str).map(str::to_string).collect())
    }

    pub(crate) async fn inspect_portal(&self) -> Result<OrgReport, ConnectorError> {
        self.client.authenticate().await?;
        let scopes = self.granted_scopes().await?;
        let contacts = property_infos(&self.get_json("/crm/v3/properties/contacts".into(), "contacts").await?);
        let lead_object = self.settings.lead_object;
        let leads_mode = lead_object == LeadObject::Leads;
        // Leads mode writes onto the lead record and reads what it lacks
        // from the contact.
        let (lead_fields, related_fields, status_values) = if leads_mode {
            let leads = property_infos(&self.get_json("/crm/v3/properties/leads".into(), "leads").await?);
            let stages = pipeline_stages(&self.get_json("/crm/v3/pipelines/leads".into(), "leads").await?);
            (leads, contacts, Some(stages))
        } else {
            (contacts, Default::default(), None)
        };
        let object = lead_object.object_type();
        let task_key = match self.get_json(format!("/crm/v3/properties/tasks/{TASK_KEY_PROPERTY}"), "tasks").await {
            Ok(def) => Some(property_info(&def)),
            Err(HubspotError::Api { status: 404, .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let leads = self.count(object, None).await?;
        let mut activities = 0;
        let mut backfill_calls = 0;
        let page = u64::from(self.settings.search_page_size);
        let pages = handoff_model::inspect::pages;
        for kind in map::ENGAGEMENTS {
            let n = self.count(map::object_type(kind), None).await?;
            activities += n;
            backfill_calls += pages(n, page);
        }
        let owners = handoff_model::inspect::read_owners(self, 10_000).await?;
        let mut leads_by_unmanaged_user = std::collections::BTreeMap::new();
        let unmanaged = handoff_model::inspect::unmanaged_users(&owners);
        for user in unmanaged.into_iter().take(handoff_model::inspect::MAX_OWNER_COUNTS) {
            leads_by_unmanaged_user.insert(user.id.clone(), self.count(object, Some(&user.id)).await?);
        }
        // Contacts by search pages, their history in batches of
        // HISTORY_BATCH, each engagement type by search pages, owners by
        // list pages, the archived sweep and the property checks at start.
        backfill_calls +=
            pages(leads, page) + pages(leads, crate::pull::HISTORY_BATCH as u64) + pages(owners.len() as u64, 100) + 4;
        if leads_mode {
            // Each lead's contact: one association read per 1,000 leads and
            // the contacts with their history, 50 a call.
            backfill_calls += pages(leads, crate::pull::ASSOCIATION_BATCH as u64)
                + pages(leads, crate::pull::HISTORY_BATCH as u64)
                + 2;
        }
        Ok(OrgReport {
            crm: CrmKind::Hubspot,
            lead_fields,
            task_key_field: TASK_KEY_PROPERTY.to_string(),
            task_key,
            history: None,
            scopes: Some(Scopes {
                granted: scopes,
                required: REQUIRED_SCOPES
                    .iter()
                    .chain(if leads_mode { LEADS_MODE_SCOPES.as_slice() } else { &[] })
                    .chain(if self.settings.read_opportunities { OPPORTUNITY_SCOPES.as_slice() } else { &[] })
                    .map(|s| s.to_string())
                    .collect(),
            }),
            owners,
            leads_by_unmanaged_user,
            lead_count: leads,
            activity_count: activities,
            backfill_calls,
            budget: self.client.budget(),
            related_fields,
            status_values,
        })
    }

    pub(crate) async fn create_properties(&self, fields: &[FieldSpec]) -> Result<Vec<String>, HubspotError> {
        let mut done = Vec::new();
        for f in fields {
            let object = object_path(f.object, self.settings.lead_object);
            let path = format!("/crm/v3/properties/{object}");
            let body = property_body(f, self.settings.lead_object);
            self.client
                .send(Request {
                    method: Method::POST,
                    path: path.clone(),
                    query: vec![],
                    body: Some(&body),
                    bucket: Bucket::Burst,
                    idempotent: true,
                    object,
                    cursor: "doctor",
                })
                .await?;
            done.push(format!("created the {object} property `{}` ({})", f.name, f.kind.as_str()));
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_types_map_to_kinds_and_back() {
        let def = json!({"name": "handoff_key", "type": "string", "hasUniqueValue": true});
        assert_eq!(property_info(&def), FieldInfo { kind: FieldKind::Text, crm_type: "string".into(), unique: true });
        assert_eq!(property_info(&json!({"type": "datetime"})).kind, FieldKind::DateTime);
        assert_eq!(property_info(&json!({"type": "number"})).kind, FieldKind::Number);
        let spec = FieldSpec {
            object: FieldObject::Lead,
            name: "handoff_sla_due".into(),
            label: "SLA due".into(),
            kind: FieldKind::DateTime,
            unique: false,
        };
        let body = property_body(&spec, LeadObject::Contacts);
        assert_eq!(body["type"], "datetime");
        assert_eq!(body["fieldType"], "date");
        assert_eq!(body["groupName"], "contactinformation");
        assert_eq!(property_info(&body).kind, FieldKind::DateTime);
        assert_eq!(property_body(&spec, LeadObject::Leads)["groupName"], "lead_information");
    }

    #[test]
    fn lead_pipeline_stages_are_listed_in_display_order() {
        let listing = json!({"results": [{"id": "lead-pipeline-id", "label": "Lead pipeline", "stages": [
            {"id": "attempting-stage-id", "label": "Attempting", "displayOrder": 1},
            {"id": "new-stage-id", "label": "New", "displayOrder": 0},
            {"label": "no id"},
        ]}]});
        let stages = pipeline_stages(&listing);
        let ids: Vec<&str> = stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["new-stage-id", "attempting-stage-id"]);
        assert_eq!(stages[1].label, "Attempting");
        assert_eq!(stages[1].group, "Lead pipeline");
    }
}
