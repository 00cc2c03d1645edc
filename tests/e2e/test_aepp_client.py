"""Adobe's own Python client for AEP, ``aepp`` (PyPI, installed by ``make test``), runs the seed's flow against a
live openseg server with only the host changed.

How aepp is pointed at openseg, through its configuration only (the README's block, run as printed):
- ``aepp.configure(environment="support", endpoint=BASE)`` is aepp's setting for a platform at another address:
  every class then sends ``BASE + /data/...`` (aepp's ``config.endpoints["global"]``).
- ``accesstoken=`` hands aepp a token minted elsewhere (openseg's ``credentials create``), so aepp does not call
  Adobe IMS. aepp 0.6.0 then reads ``connectionType`` from the config object when it builds its connector (and
  fails with ``KeyError`` when absent): the test sets it to ``"support"`` in that config object, the value aepp
  itself gives a "support" connection. Nothing else of aepp is changed.

The calls are aepp's classes (Catalog, DataIngestion, Segmentation, Profile, DataAccess): each answer is what
aepp returns to its user, asserted exactly where openseg decides it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import aepp
import pyarrow.parquet as pq
import pytest
from aepp import catalog, customerprofile, dataaccess, ingestion, segmentation

from openseg.container import Services
from tests.api.flows import UNION, person
from tests.conftest import make_org
from tests.e2e.server import running_server
from tests.e2e.test_readme import readme_section

PROFILE = "https://ns.adobe.com/xdm/context/profile"
README_SECTION = "Walk-through: the seed's segmentation and export flow"


@pytest.fixture
def connection(services: Services, capsys: pytest.CaptureFixture[str]) -> Iterator[aepp.ConnectObject]:
    """aepp configured for a live openseg server and a new org's credentials, by the README's own block."""
    org = make_org(services)
    with running_server(services) as base:
        (block,) = re.findall(r"```python\n(.*?)```", readme_section(README_SECTION), flags=re.S)
        names: dict[str, Any] = {"IMS_ORG": org.org_id, "API_KEY": org.api_key, "ACCESS_TOKEN": org.token,
                                 "OPENSEG": base}
        exec(block, names)
        assert capsys.readouterr().out == "[]\n"  # a new org has no definitions
        yield names["config"]


def poll(read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    answer = read()
    while not done(answer) and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = read()
    return answer


def test_the_seed_flow_through_aepp(connection: aepp.ConnectObject) -> None:
    assert aepp.__version__ == "0.6.0"
    cat = catalog.Catalog(config=connection)
    ingest = ingestion.DataIngestion(config=connection)
    seg = segmentation.Segmentation(config=connection)
    profiles = customerprofile.Profile(config=connection)
    access = dataaccess.DataAccess(config=connection)

    # Catalog and batch ingestion: a profile dataset and one batch of six people (1, 3 and 5 live in the US).
    created = cat.createDataSet(name="people", schemaId=PROFILE, profileEnabled=True)
    assert len(created) == 1 and created[0].startswith("@/dataSets/")
    people = created[0].split("/")[-1]
    assert cat.getDataSet(people)[people]["tags"]["unifiedProfile"] == ["enabled:true"]
    batch = ingest.createBatch(datasetId=people)
    assert batch["status"] == "loading" and batch["relatedObjects"] == [{"type": "dataSet", "id": people}]
    assert ingest.uploadSmallFile(batchId=batch["id"], datasetId=people, filePath="people.json",
                                  data=[person(i) for i in range(6)]) == {}
    assert ingest.uploadSmallFileFinish(batchId=batch["id"])["id"] == batch["id"]
    ingested = poll(lambda: cat.getBatch(batch["id"])[batch["id"]], lambda b: b["status"] in ("success", "failed"))
    assert (ingested["status"], ingested["recordCount"], ingested["failedRecordCount"]) == ("success", 6, 0)

    # A definition, its preview and estimate, then an on-demand segment job, polled to its end.
    definition = seg.createSegment({
        "name": "US residents", "description": "People whose home is in the US", "ttlInDays": 30,
        "schema": {"name": "_xdm.context.profile"},
        "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "US"'}})
    assert (definition["name"], definition["expression"]["value"]) == ("US residents", 'homeAddress.country = "US"')
    us = definition["id"]
    assert [s["id"] for s in seg.getSegments()] == [us]
    # The worker builds the merged profile store after the batch: until then a preview answers AEP's 409, which
    # the README says to retry.
    preview = poll(lambda: seg.createPreview('homeAddress.country = "US"'), lambda p: p.get("status") != 409)
    assert poll(lambda: seg.getPreview(preview["previewId"]), lambda p: p["state"] != "RUNNING")["state"] == "RESULT_READY"
    assert poll(lambda: seg.getEstimate(preview["previewId"]),
                lambda e: e["state"] != "RUNNING")["estimatedSize"] == 3

    job = seg.createJob([us])
    assert job["status"] in ("NEW", "QUEUED", "PROCESSING")
    assert [s["segmentId"] for s in job["segments"]] == [us]
    ended = poll(lambda: seg.getJob(job["id"]), lambda j: j["status"] in ("SUCCEEDED", "FAILED"))
    assert ended["status"] == "SUCCEEDED", ended
    assert ended["errors"] == []
    assert ended["metrics"]["totalProfiles"] == 6
    assert ended["metrics"]["segmentedProfileCounter"] == {us: 3}
    assert ended["metrics"]["segmentedProfileByStatusCounter"] == {us: {"realized": 3, "existing": 0, "exited": 0}}
    assert [j["id"] for j in seg.getJobs()] == [job["id"]]

    # An export job of the segment's members into a union-schema dataset, read back through Data Access.
    target = cat.createDataSet(data={
        "name": "US export", "schemaRef": {"id": UNION, "contentType": "application/vnd.adobe.xed+json;version=1"},
        "fileDescription": {"persisted": True, "containerFormat": "parquet", "format": "parquet"}})[0].split("/")[-1]
    export = seg.createExport({
        "fields": "identityMap,homeAddress.country", "schema": {"name": "_xdm.context.profile"},
        "destination": {"datasetId": target, "segmentPerBatch": False},
        "filter": {"segments": [{"segmentId": us, "status": ["realized"]}]}})
    assert export["status"] == "NEW" and export["destination"]["datasetId"] == target
    exported = poll(lambda: seg.getExport(export["id"]), lambda e: e["status"] in ("SUCCEEDED", "FAILED"))
    assert exported["status"] == "SUCCEEDED", exported
    assert exported["errors"] == [] and exported["metrics"]["openseg:exportedProfiles"] == 3
    assert [e["id"] for e in seg.getExportJobs()] == [export["id"]]
    (file,) = access.getBatchFiles(exported["destination"]["batchId"])
    assert file["records"] == "3"
    (part,) = access.getFiles(file["dataSetFileId"])["data"]
    rows = pq.read_table(access.getFiles(file["dataSetFileId"], path=part["name"])).to_pylist()
    assert sorted((dict(r["identityMap"])["email"][0]["id"], r["homeAddress"]["country"]) for r in rows) == [
        ("p1@example.com", "US"), ("p3@example.com", "US"), ("p5@example.com", "US")]
    assert sorted(r["identityMap"]["email"][0]["id"] for r in access.getPreview(target)) == [
        "p1@example.com", "p3@example.com", "p5@example.com"]

    # Profile access: one entity, then several at once, each with its segment membership.
    one = profiles.getEntity(entityId="p1@example.com", entityIdNS="email")
    assert list(one) == ["email:p1@example.com"]
    entity = one["email:p1@example.com"]["entity"]
    assert entity["homeAddress"] == {"country": "US", "city": "City1"}
    assert entity["person"]["name"] == {"firstName": "First1", "lastName": "Last1"}
    assert entity["segmentMembership"]["ups"][us]["status"] == "realized", one
    # One default merge policy, which the definition, its job and the lookups all use (the worker's first build
    # and the definition's creation each used to add one when they raced).
    assert [p["id"] for p in profiles.getMergePolicies() if p["default"]] == [definition["mergePolicyId"]]
    assert one["email:p1@example.com"]["mergePolicy"]["id"] == definition["mergePolicyId"]
    several = profiles.getEntities({
        "schema": {"name": "_xdm.context.profile"}, "fields": ["homeAddress"],
        "identities": [{"entityId": f"p{i}@example.com", "entityIdNS": {"code": "email"}} for i in (2, 3)]})
    assert sorted(several) == ["email:p2@example.com", "email:p3@example.com"]
    assert several["email:p2@example.com"]["entity"]["homeAddress"] == {"country": "FR", "city": "City2"}
    assert us not in several["email:p2@example.com"]["entity"].get("segmentMembership", {}).get("ups", {})
    assert several["email:p3@example.com"]["entity"]["segmentMembership"]["ups"][us]["status"] == "realized"

    # The nightly schedule of the seed, created, activated and moved to 02:00 through aepp.
    schedule = seg.createSchedule({"name": "nightly", "type": "batch_segmentation", "properties": {"segments": ["*"]},
                                   "schedule": "0 0 1 * * ?", "state": "inactive"})
    assert (schedule["name"], schedule["state"], schedule["schedule"]) == ("nightly", "inactive", "0 0 1 * * ?")
    assert [s["id"] for s in seg.getSchedules()] == [schedule["id"]]
    assert seg.updateSchedule(schedule["id"], [{"op": "add", "path": "/state", "value": "active"}]) == {}  # 204
    assert seg.updateScheduledBatchSegmentationJob("0 0 2 * * ?") == {}
    updated = seg.getSchedule(schedule["id"])
    assert (updated["state"], updated["schedule"], updated["frequency"]) == ("active", "0 0 2 * * ?", "daily")

    # Deleting the finished jobs removes their records (AEP's "cancel or delete"); the members stay.
    assert seg.deleteJob(job["id"]) == 204
    assert seg.deleteExport(export["id"]) == 200
    assert seg.getJobs() == [] and seg.getExportJobs() == []
    again = profiles.getEntity(entityId="p1@example.com", entityIdNS="email")["email:p1@example.com"]["entity"]
    assert again["segmentMembership"]["ups"][us]["status"] == "realized"
