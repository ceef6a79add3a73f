"""Drive the sandbox's Leads object with HubSpot's official Python SDK
(hubspot-api-client 12.0.0) and print what the SDK parsed as one JSON object.

Usage: hubspot_leads_check.py '<json config>' where the config holds
host, admin_url, token, contact_id, owner_id.

Every answer goes through the SDK's typed models (the leads, pipelines and
v4 associations clients), so a missing required field or a wrong type fails
here. The Rust test compares what was parsed with the sandbox's own dump.
"""
import json
import sys
import urllib.request

import hubspot
from hubspot.crm.associations.v4 import AssociationSpec as V4AssociationSpec
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest, PublicFetchAssociationsBatchRequest
from hubspot.crm.objects.leads import (
    AssociationSpec,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicAssociationsForObject,
    PublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.tasks import SimplePublicObjectInputForCreate as TaskInput


def failure(e):
    body = getattr(e, "body", None)
    try:
        body = json.loads(body) if body else None
    except (TypeError, ValueError):
        pass
    return {"exception": type(e).__name__, "status": getattr(e, "status", None), "body": body}


def iso(dt):
    return dt.isoformat() if dt is not None else None


def main():
    cfg = json.loads(sys.argv[1])
    client = hubspot.HubSpot(access_token=cfg["token"], host=cfg["host"])
    out = {}

    # Pipelines and stages.
    pipelines = client.crm.pipelines.pipelines_api.get_all("leads")
    out["pipelines"] = [{
        "id": p.id, "label": p.label, "archived": p.archived,
        "stages": [{"id": s.id, "label": s.label, "display_order": s.display_order, "metadata": s.metadata}
                   for s in p.stages],
    } for p in pipelines.results]
    stages = client.crm.pipelines.pipeline_stages_api.get_all("leads", "lead-pipeline-id")
    out["stage_ids"] = [s.id for s in stages.results]

    # Create a lead for a contact (primary association, 578).
    contact = cfg["contact_id"]
    created = client.crm.objects.leads.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"hs_lead_name": "Conformance Lead", "hubspot_owner_id": cfg["owner_id"]},
        associations=[PublicAssociationsForObject(to=PublicObjectId(id=contact), types=[
            AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=578)])]))
    out["created"] = {"id": created.id, "properties": created.properties, "created_at": iso(created.created_at)}

    # Search leads by stage, paging to the end.
    ids, totals, after = [], [], None
    while True:
        page = client.crm.objects.leads.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[
                Filter(property_name="hs_pipeline_stage", operator="EQ", value="new-stage-id")])],
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            properties=["hs_lead_name", "hs_pipeline_stage", "hubspot_owner_id"], limit=100, after=after))
        totals.append(page.total)
        ids.extend(r.id for r in page.results)
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    out["search"] = {"ids": ids, "totals": totals}

    # Batch read with history.
    batch = client.crm.objects.leads.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=i) for i in cfg["lead_ids"]],
        properties=["hs_pipeline_stage", "hubspot_owner_id", "hs_lead_disqualification_reason"],
        properties_with_history=["hs_pipeline_stage", "hubspot_owner_id"]))
    out["batch_read"] = {r.id: {
        "properties": r.properties,
        "history": {k: [{"value": v.value, "timestamp": iso(v.timestamp), "source_type": v.source_type} for v in vs]
                    for k, vs in (r.properties_with_history or {}).items()},
    } for r in batch.results}

    # Associations: the lead's contact (v4 get), its engagements (v4 batch
    # read), the labels, and a task associated with the lead.
    v4 = client.crm.associations.v4
    to_contacts = v4.basic_api.get_page("leads", created.id, "contacts")
    out["lead_contacts"] = [{"id": r.to_object_id,
                             "types": [[t.type_id, t.label, t.category] for t in r.association_types]}
                            for r in to_contacts.results]
    labels = v4.schema.definitions_api.get_all("tasks", "leads")
    out["task_lead_labels"] = [[t.type_id, t.label, t.category] for t in labels.results]
    engagements = {}
    for to in ("calls", "emails", "meetings", "tasks"):
        read = v4.batch_api.get_page("leads", to, BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in cfg["lead_ids"]]))
        engagements[to] = {r._from.id: sorted(str(a.to_object_id) for a in r.to) for r in read.results}
    out["engagements"] = engagements
    task = client.crm.objects.tasks.basic_api.create(TaskInput(
        properties={"hs_timestamp": "2026-03-06T10:00:00.000Z", "hs_task_subject": "Call the lead"}, associations=[]))
    pair = v4.basic_api.create("tasks", task.id, "leads", created.id, [
        V4AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=out["task_lead_labels"][0][0])])
    out["task_to_lead"] = {"task": task.id, "from": pair.from_object_id, "to": pair.to_object_id,
                           "from_type": pair.from_object_type_id, "to_type": pair.to_object_type_id}

    # A portal without the Leads object: the SDK's ApiException 403.
    req = urllib.request.Request(cfg["admin_url"] + "/hubspot/portal", data=b'{"leads_object": false}',
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req).read()
    try:
        client.crm.objects.leads.basic_api.get_page(limit=1)
        out["refused"] = None
    except Exception as e:  # noqa: BLE001 - recorded and asserted by the Rust test
        out["refused"] = failure(e)

    print(json.dumps(out))


if __name__ == "__main__":
    main()
