"""Drive the sandbox's Bulk API 2.0 query jobs and Composite resource with
simple-salesforce 1.12.10 (its `bulk2` module and `restful`).

Run by tests/conformance_salesforce.rs with one JSON argument:
{"instance_url", "token"}. REQUESTS_CA_BUNDLE points at the sandbox's CA.
Prints one JSON object with what the client parsed; the Rust test compares
it with the sandbox's admin dumps.
"""

import csv
import io
import json
import sys

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError


def rows(chunks):
    """CSV chunks (each with its header row) as one list of dicts."""
    out = []
    for chunk in chunks:
        out.extend(csv.DictReader(io.StringIO(chunk)))
    return out


def main():
    cfg = json.loads(sys.argv[1])
    sf = Salesforce(instance_url=cfg["instance_url"], session_id=cfg["token"], version="62.0")
    out = {}
    q = "SELECT Id, LastName, OwnerId, IsDeleted, SystemModstamp FROM Lead"

    # The high-level generators: create, wait (polls), page by locator.
    chunks = list(sf.bulk2.Lead.query(q, max_records=150, wait=0.05))
    out["query_chunks"] = len(chunks)
    out["query"] = rows(chunks)
    out["query_all"] = rows(sf.bulk2.Lead.query_all("SELECT Id, IsDeleted FROM Lead", wait=0.05))

    # The low-level client: the documented shapes of each step.
    client = sf.bulk2.Lead._client
    created = client.create_job("query", "SELECT Id FROM Lead")
    out["created"] = created
    job_id = created["id"]
    client.wait_for_job(job_id, True, 0.05)
    out["job_info"] = client.get_job(job_id, True)
    page = client.get_query_results(job_id, "", 100)
    out["first_page"] = {"locator": page["locator"], "number_of_records": page["number_of_records"]}
    last = client.get_query_results(job_id, page["locator"], 1_000_000)
    out["last_page"] = {"locator": last["locator"], "number_of_records": last["number_of_records"]}
    # The real DELETE answers 204 with no body, which this client version
    # tries to parse as JSON; the job is gone all the same.
    try:
        client.delete_job(job_id, True)
        out["delete"] = "json"
    except requests.exceptions.JSONDecodeError:
        out["delete"] = "no body"
    try:
        client.get_job(job_id, True)
        out["after_delete"] = None
    except SalesforceError as e:
        out["after_delete"] = {"type": type(e).__name__, "status": e.status}

    running = client.create_job("query", "SELECT Id FROM Task")
    out["aborted"] = client.abort_job(running["id"], True)

    try:
        client.create_job("query", "SELECT Id, (SELECT Field FROM Histories) FROM Lead")
        out["refused"] = None
    except SalesforceError as e:
        out["refused"] = {"type": type(e).__name__, "status": e.status, "content": e.content}

    out["limits"] = sf.limits()

    # Composite through restful: a lead and a task naming it, in one call.
    composite = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": "/services/data/v62.0/sobjects/Lead",
                "referenceId": "lead",
                "body": {"LastName": "Bulk", "Company": "Acme", "Status": "Open - Not Contacted"},
            },
            {
                "method": "POST",
                "url": "/services/data/v62.0/sobjects/Task",
                "referenceId": "task",
                "body": {"Subject": "Call", "WhoId": "@{lead.id}", "Status": "Not Started", "Priority": "Normal"},
            },
        ],
    }
    out["composite"] = sf.restful("composite", method="POST", data=json.dumps(composite))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
