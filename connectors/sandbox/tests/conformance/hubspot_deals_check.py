"""Drive the sandbox's deals with HubSpot's official Python SDK
(hubspot-api-client 12.0.0) and print what the SDK parsed as one JSON object.

Usage: hubspot_deals_check.py '<json config>' where the config holds
host, token, contact_id, owner_id.

Every answer goes through the SDK's typed models (the deals, meetings,
properties and v4 associations clients), so a missing required field or a
wrong type fails here. The Rust test compares what was parsed with the
sandbox's own dump.
"""
import json
import sys

import hubspot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest, PublicFetchAssociationsBatchRequest
from hubspot.crm.deals import (
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
from hubspot.crm.objects.meetings import SimplePublicObjectInputForCreate as MeetingInput


def iso(dt):
    return dt.isoformat() if dt is not None else None


def main():
    cfg = json.loads(sys.argv[1])
    client = hubspot.HubSpot(access_token=cfg["token"], host=cfg["host"])
    out = {}

    out["properties"] = sorted(p.name for p in client.crm.properties.core_api.get_all("deals").results)

    # Two deals on the contact (deal→contact 3); a meeting on the first deal only (meeting→deal 212).
    contact = cfg["contact_id"]
    to_contact = [PublicAssociationsForObject(to=PublicObjectId(id=contact), types=[
        AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=3)])]
    deals = []
    for name in ("Conformance deal", "Conformance deal 2"):
        d = client.crm.deals.basic_api.create(SimplePublicObjectInputForCreate(
            properties={"dealname": name, "dealstage": "appointmentscheduled", "hubspot_owner_id": cfg["owner_id"]},
            associations=to_contact))
        deals.append(d.id)
    out["deals"] = deals
    meeting = client.crm.objects.meetings.basic_api.create(MeetingInput(
        properties={"hs_timestamp": "2026-03-06T10:00:00.000Z", "hs_meeting_title": "Discovery",
                    "hubspot_owner_id": cfg["owner_id"]},
        associations=[PublicAssociationsForObject(to=PublicObjectId(id=deals[0]), types=[
            AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=212)])]))
    out["meeting"] = meeting.id

    # Get by id with the defaults, then with named properties and associations.
    plain = client.crm.deals.basic_api.get_by_id(deals[0])
    out["get_defaults"] = sorted(plain.properties.keys())
    got = client.crm.deals.basic_api.get_by_id(deals[0], properties=["hubspot_owner_id", "dealstage"],
                                               associations=["contacts"])
    out["get"] = {"id": got.id, "properties": got.properties, "created_at": iso(got.created_at),
                  "contacts": [a.id for a in got.associations["contacts"].results] if got.associations else []}

    # A window on hs_lastmodifieddate, paged by id.
    ids, after = [], None
    while True:
        page = client.crm.deals.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[
                Filter(property_name="hs_lastmodifieddate", operator="GTE", value="0"),
                Filter(property_name="hs_object_id", operator="GTE", value=deals[0])])],
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            properties=["hubspot_owner_id", "createdate"], limit=1, after=after))
        ids.extend(r.id for r in page.results)
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    out["search"] = ids

    batch = client.crm.deals.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=i) for i in deals], properties=["dealname"], properties_with_history=[]))
    out["batch_read"] = sorted(r.id for r in batch.results)

    # v4 association reads: deal → contacts, contact → deals, meeting → deals and → contacts.
    v4 = client.crm.associations.v4

    def read(frm, to, ids):
        page = v4.batch_api.get_page(frm, to, BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in ids]))
        return {r._from.id: sorted([str(a.to_object_id), a.association_types[0].type_id] for a in r.to)
                for r in page.results}

    out["deal_contacts"] = read("deals", "contacts", deals)
    out["contact_deals"] = read("contacts", "deals", [contact])
    out["meeting_deals"] = read("meetings", "deals", [meeting.id])
    out["meeting_contacts"] = read("meetings", "contacts", [meeting.id])

    # Archive the second deal: the archived listing names it.
    client.crm.deals.basic_api.archive(deals[1])
    archived = client.crm.deals.basic_api.get_page(limit=100, archived=True)
    out["archived"] = [{"id": r.id, "archived": r.archived, "archived_at": iso(r.archived_at)} for r in archived.results]

    print(json.dumps(out))


if __name__ == "__main__":
    main()
