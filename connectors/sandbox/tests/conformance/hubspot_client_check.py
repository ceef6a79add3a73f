"""Drive the sandbox's HubSpot emulator with HubSpot's official Python SDK
(hubspot-api-client 12.0.0) and print what the SDK parsed as one JSON object.

Usage: hubspot_client_check.py '<json config>' where the config holds
host, token, window_lo_ms, window_hi_ms, contact_id, page_limit.

Every response goes through the SDK's typed models, so a missing required
field or a wrong type fails here. Failures are recorded as the exception
class and HTTP status the SDK raised, for the Rust test to compare.
"""
import json
import sys

import hubspot
from hubspot.crm.contacts import Filter, FilterGroup, PublicObjectSearchRequest
from hubspot.crm.objects.tasks import (
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.properties import PropertyCreate


def failure(e):
    body = getattr(e, "body", None)
    try:
        body = json.loads(body) if body else None
    except (TypeError, ValueError):
        pass
    return {"exception": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
            "status": getattr(e, "status", None), "body": body}


def iso(dt):
    return dt.isoformat() if dt is not None else None


def main():
    cfg = json.loads(sys.argv[1])
    client = hubspot.HubSpot(access_token=cfg["token"], host=cfg["host"])
    out = {}

    # Owners, following paging.
    owners, after = [], None
    while True:
        page = client.crm.owners.owners_api.get_page(limit=100, after=after)
        for o in page.results:
            owners.append({
                "id": o.id, "type": o.type, "email": o.email, "first_name": o.first_name,
                "user_id": o.user_id, "archived": o.archived,
                "teams": [{"id": t.id, "name": t.name, "primary": t.primary} for t in (o.teams or [])],
            })
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    out["owners"] = owners

    # Properties: read, create the unique handoff_key, read again.
    before = client.crm.properties.core_api.get_all("tasks")
    out["task_properties_before"] = sorted(p.name for p in before.results)
    created = client.crm.properties.core_api.create("tasks", PropertyCreate(
        name="handoff_key", label="Handoff key", type="string", field_type="text",
        group_name="taskinformation", has_unique_value=True))
    out["created_property"] = {"name": created.name, "type": created.type, "has_unique_value": created.has_unique_value}
    after_create = client.crm.properties.core_api.get_all("tasks")
    out["task_properties_after"] = sorted(p.name for p in after_create.results)

    # Windowed search with paging, sorted by id.
    ids, totals, props, pages, after = [], [], {}, 0, None
    while True:
        req = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[
                Filter(property_name="lastmodifieddate", operator="GTE", value=str(cfg["window_lo_ms"])),
                Filter(property_name="lastmodifieddate", operator="LT", value=str(cfg["window_hi_ms"])),
            ])],
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            properties=["email", "lastmodifieddate", "hubspot_owner_id"],
            limit=cfg["page_limit"], after=after)
        page = client.crm.contacts.search_api.do_search(public_object_search_request=req)
        pages += 1
        totals.append(page.total)
        for r in page.results:
            ids.append(r.id)
            props[r.id] = {"email": r.properties.get("email"), "updated_at": iso(r.updated_at),
                           "hubspot_owner_id": r.properties.get("hubspot_owner_id")}
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    out["search"] = {"ids": ids, "totals": totals, "pages": pages, "properties": props}

    # The search bucket: keep searching in the same (frozen) second until refused.
    ok = 0
    out["search_429"] = None
    for _ in range(10):
        try:
            client.crm.contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(limit=1))
            ok += 1
        except Exception as e:  # noqa: BLE001 - recorded and asserted by the Rust test
            out["search_429"] = failure(e)
            break
    out["search_ok_before_429"] = ok

    # Batch-create tasks associated with a contact (task→contact type 204).
    contact = cfg["contact_id"]
    assoc = [PublicAssociationsForObject(to=PublicObjectId(id=contact), types=[
        AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=204)])]
    inputs = [SimplePublicObjectBatchInputForCreate(properties={
        "hs_timestamp": "2026-03-06T10:00:00.000Z", "hs_task_subject": f"Follow up {i}",
        "hs_task_status": "NOT_STARTED", "hs_task_type": "CALL", "handoff_key": f"conf-{i}"},
        associations=assoc) for i in range(3)]
    batch = client.crm.objects.tasks.batch_api.create(
        batch_input_simple_public_object_batch_input_for_create=BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
    out["batch_create"] = {
        "model": type(batch).__name__, "status": batch.status,
        "results": [{"id": r.id, "properties": r.properties, "created_at": iso(r.created_at)} for r in batch.results],
    }

    # Read one back with its contact associations.
    first = batch.results[0].id
    task = client.crm.objects.tasks.basic_api.get_by_id(first, properties=["handoff_key"], associations=["contacts"])
    out["task_get"] = {
        "id": task.id, "handoff_key": task.properties.get("handoff_key"),
        "contacts": [a.id for a in task.associations["contacts"].results] if task.associations else [],
    }

    # A second task with the same unique handoff_key is refused.
    try:
        client.crm.objects.tasks.basic_api.create(SimplePublicObjectInputForCreate(
            properties={"hs_timestamp": "2026-03-06T10:00:00.000Z", "handoff_key": "conf-0"}, associations=[]))
        out["duplicate_key"] = None
    except Exception as e:  # noqa: BLE001
        out["duplicate_key"] = failure(e)

    # A bad token surfaces as ApiException 401 with HubSpot's body.
    bad = hubspot.HubSpot(access_token="pat-na1-00000000-0000-0000-0000-000000000000", host=cfg["host"])
    try:
        bad.crm.contacts.basic_api.get_page(limit=1)
        out["bad_token"] = None
    except Exception as e:  # noqa: BLE001
        out["bad_token"] = failure(e)

    print(json.dumps(out))


if __name__ == "__main__":
    main()
