"""Drive the sandbox's Salesforce emulator with simple-salesforce 1.12.10.

Run by tests/conformance_salesforce.rs with one JSON argument:
{"instance_url", "token", "admin_url"}. REQUESTS_CA_BUNDLE points at the
sandbox's CA. Prints one JSON object with what the client parsed; the Rust
test compares it with the sandbox's admin dumps.
"""

import json
import sys

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError


def admin(cfg, path, body):
    r = requests.post(cfg["admin_url"] + path, json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def failure(call):
    """Run `call`, expecting a simple-salesforce exception; describe it."""
    try:
        call()
    except SalesforceError as e:
        return {"type": type(e).__name__, "status": e.status, "content": e.content}
    return {"type": None}


def main():
    cfg = json.loads(sys.argv[1])
    sf = Salesforce(instance_url=cfg["instance_url"], session_id=cfg["token"], version="62.0")
    out = {}

    # query_all follows nextRecordsUrl; a small batch size forces several pages.
    small = {"Sforce-Query-Options": "batchSize=200"}
    q = "SELECT Id, LastName, Owner.Type, SystemModstamp FROM Lead ORDER BY SystemModstamp, Id"
    first = sf.query(q, headers=small)
    out["first_page"] = {"done": first["done"], "totalSize": first["totalSize"],
                         "nextRecordsUrl": first.get("nextRecordsUrl"), "count": len(first["records"])}
    live = sf.query_all(q, headers=small)
    out["query_all"] = [{"Id": r["Id"], "LastName": r["LastName"], "OwnerType": (r["Owner"] or {}).get("Type"),
                         "SystemModstamp": r["SystemModstamp"]} for r in live["records"]]
    everything = sf.query_all("SELECT Id, IsDeleted, MasterRecordId FROM Lead", include_deleted=True, headers=small)
    out["query_all_deleted"] = [{"Id": r["Id"], "IsDeleted": r["IsDeleted"], "MasterRecordId": r["MasterRecordId"]}
                                for r in everything["records"]]

    # A collection insert with one failing record (no LastName).
    out["collection"] = sf.restful("composite/sobjects", method="POST", json={
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Lead"}, "LastName": "Conformance", "Company": "Acme", "Email": "c@acme.example"},
            {"attributes": {"type": "Lead"}, "FirstName": "Nameless", "Company": "Acme"},
        ],
    })

    # Upsert by external id: created, then updated, never duplicated.
    key = "conformance:lead:first_touch:v1"
    out["upsert_statuses"] = [
        sf.Task.upsert("Handoff_Key__c/" + key, {"Subject": "Call the lead", "Status": "Not Started"}),
        sf.Task.upsert("Handoff_Key__c/" + key, {"Subject": "Call the lead today", "Priority": "High"}),
    ]
    out["upsert_key"] = key
    out["task_by_key"] = sf.Task.get_by_custom_id("Handoff_Key__c", key)

    # Limits, and the usage simple-salesforce parsed from Sforce-Limit-Info.
    limits = sf.limits()
    usage = sf.api_usage["api-usage"]
    out["limits"] = {"DailyApiRequests": limits["DailyApiRequests"], "used": usage.used, "total": usage.total}

    describe = sf.Lead.describe()
    out["describe"] = {f["name"]: {"type": f["type"], "custom": f["custom"], "externalId": f["externalId"]}
                       for f in describe["fields"]}

    out["malformed"] = failure(lambda: sf.query("SELECT Id FRM Lead"))

    admin(cfg, "/salesforce/limits", {"daily_limit": 5000, "used": 5000})
    out["refused"] = failure(lambda: sf.query("SELECT Id FROM Lead LIMIT 1"))
    admin(cfg, "/salesforce/limits", {"daily_limit": 15000, "used": 0})

    admin(cfg, "/salesforce/tokens/expire", {})
    out["expired"] = failure(lambda: sf.query("SELECT Id FROM Lead LIMIT 1"))

    print(json.dumps(out))


if __name__ == "__main__":
    main()
