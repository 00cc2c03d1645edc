"""``OPENSEG_LAKE=s3://bucket/prefix``: the lake on an object store (issue #17, "a shared lake"), against a local S3
server (moto). Batches, streamed and exported ones too, are objects under the prefix; builds, jobs, previews,
downloads, queries and deletes read and remove them there, and nothing of the lake is written locally.

The seed's flows of other modules run here again over the S3 lake (imported below), with the same assertions.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer
from pyarrow import fs as pafs

from openseg import failures, lake_files
from openseg.bootstrap import streamer
from openseg.config import Settings
from openseg.container import Services
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.api.test_dataset_preview import test_a_dataset_previews_its_first_records_oldest_batch_first  # noqa: F401
from tests.api.test_definitions import define
from tests.api.test_exports import test_dataset_reflects_the_latest_export, test_seed_export_flow  # noqa: F401
from tests.api.test_profiles import (  # noqa: F401
    test_erase_removes_fragments_and_events,
    test_segment_membership_shows_on_the_profile,
)
from tests.api.test_segment_jobs import test_seed_on_demand_flow  # noqa: F401
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, batches, click, create_inlet, envelope, lake_records
from tests.streaming.test_flush import (  # noqa: F401
    test_a_streamed_fragment_reaches_the_profile_through_the_incremental_refresh,
)

BUCKET = "openseg-lake"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3 server with the bucket, and AWS's credential variables set as a client of it would have them."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"{host}:{port}"
        admin = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1",
                                  allow_bucket_creation=True)
        admin.create_dir(BUCKET)
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", region="us-east-1")


@pytest.fixture
def settings(tmp_path: Path, database_url: str, s3_endpoint: str, request: pytest.FixtureRequest,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every test here (the imported ones too) runs over a lake of its own in the bucket."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    prefix = f"lake-{os.getpid()}-{request.node.name}".replace("[", "-").replace("]", "")
    return Settings.from_env({}, home=home, database_url=database_url,
                             lake=f"s3://{BUCKET}/{prefix}?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1")


def objects(bucket: pafs.S3FileSystem, settings: Settings) -> list[str]:
    """The keys under the lake's prefix, relative to it."""
    root = settings.data_lake.root.removeprefix("s3://")
    found = bucket.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return sorted(info.path.removeprefix(root + "/") for info in found if info.type == pafs.FileType.File)


def local_lake_files(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.home.rglob("*.parquet") if "lake" in p.parts)


def test_batches_are_objects_under_the_prefix_and_nothing_of_the_lake_is_local(
        client: TestClient, org: Org, drain: Callable[[], int], services: Services, bucket: pafs.S3FileSystem) -> None:
    settings = services.settings
    assert settings.data_lake.remote
    dataset_id = create_dataset(client, org.headers())
    batch_id = upload_batch(client, org.headers(), dataset_id, {"people.json": json_lines([person(i) for i in range(5)])})
    drain()
    [key] = objects(bucket, settings)
    sandbox_id = key.partition("/")[0]
    assert key == f"{sandbox_id}/{dataset_id}/{batch_id}/part-00000.parquet"
    assert local_lake_files(settings) == []
    # Data Access lists the file and streams its bytes from the bucket: the object's bytes, exactly.
    [entry] = client.get(f"/data/foundation/export/batches/{batch_id}/files", headers=org.headers()).json()["data"]
    [part] = client.get(f"/data/foundation/export/files/{entry['dataSetFileId']}", headers=org.headers()).json()["data"]
    download = client.get(part["_links"]["self"]["href"], headers=org.headers())
    assert download.status_code == 200
    with bucket.open_input_stream(f"{settings.data_lake.root.removeprefix('s3://')}/{key}") as stream:
        assert download.content == stream.read()
    assert int(download.headers["content-length"]) == int(part["length"]) == len(download.content)
    head = client.head(part["_links"]["self"]["href"], headers=org.headers())
    assert (head.status_code, head.headers["content-length"]) == (200, part["length"])
    assert sorted(r["person"]["name"]["firstName"] for r in pq.read_table(io.BytesIO(download.content)).to_pylist()) == \
        sorted(person(i)["person"]["name"]["firstName"] for i in range(5))
    # The batch preview reads it from the bucket as well.
    preview = client.get(f"/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/preview",
                         headers=org.headers(), params={"format": "parquet"})
    assert preview.status_code == 200, preview.text
    assert len(preview.json()["preview"]["rows"]) == 5


def test_deleting_a_batch_and_a_dataset_removes_their_objects(
        client: TestClient, org: Org, drain: Callable[[], int], services: Services, bucket: pafs.S3FileSystem) -> None:
    first = create_dataset(client, org.headers(), "first")
    second = create_dataset(client, org.headers(), "second")
    kept = upload_batch(client, org.headers(), first, {"a.json": json_lines([person(1)])})
    gone = upload_batch(client, org.headers(), first, {"b.json": json_lines([person(2)])})
    other = upload_batch(client, org.headers(), second, {"c.json": json_lines([person(3)])})
    drain()
    sandbox_id = objects(bucket, services.settings)[0].partition("/")[0]
    assert objects(bucket, services.settings) == sorted(f"{sandbox_id}/{dataset}/{batch}/part-00000.parquet" for dataset, batch in
                                                        ((first, kept), (first, gone), (second, other)))
    assert client.delete(f"/data/foundation/catalog/batches/{gone}", headers=org.headers()).status_code == 200
    assert objects(bucket, services.settings) == sorted(f"{sandbox_id}/{dataset}/{batch}/part-00000.parquet" for dataset, batch in
                                                        ((first, kept), (second, other)))
    assert client.delete(f"/data/foundation/catalog/dataSets/{second}", headers=org.headers()).status_code == 200
    assert objects(bucket, services.settings) == [f"{sandbox_id}/{first}/{kept}/part-00000.parquet"]


def test_query_service_reads_the_sandboxs_objects(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    dataset_id = create_dataset(client, org.headers(), "people")
    upload_batch(client, org.headers(), dataset_id, {"a.json": json_lines([person(i) for i in range(4)])})
    upload_batch(client, org.headers(), dataset_id, {"b.json": json_lines([person(i) for i in range(4, 7)])})
    drain()
    query = client.post("/data/foundation/query/queries", headers=org.headers(),
                        json={"sql": "SELECT count(*) AS n, sum(loyalty.points) AS points FROM people"}).json()
    drain()
    state = client.get(f"/data/foundation/query/queries/{query['id']}", headers=org.headers()).json()
    assert state["state"] == "SUCCESS", state["errors"]
    answer = client.get(f"/data/foundation/query/queries/{query['id']}/results", headers=org.headers()).json()
    assert answer["rows"] == [[7, 210]], answer


def test_streamed_records_reach_the_bucket_as_a_batch(client: TestClient, services: Services, org: Org,
                                                     bucket: pafs.S3FileSystem) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, dataset_id)
    for i in range(3):
        response = client.post(f"/collection/{inlet['auth']['params']['inletId']}", json=envelope(click(i)))
        assert response.status_code == 200, response.text
    assert streamer(services).run_until_idle() == 3
    [batch] = batches(client, org, dataset_id, "success")
    assert [key.partition("/")[2] for key in objects(bucket, services.settings)] == \
        [f"{dataset_id}/{batch['id']}/part-00000.parquet"]
    assert sorted(r["_id"] for r in lake_records(client, org, services.settings.data_lake, dataset_id)) == \
        ["click-0", "click-1", "click-2"]
    assert local_lake_files(services.settings) == []


def test_a_privacy_delete_rewrites_the_objects_without_the_profile(
        client: TestClient, org: Org, drain: Callable[[], int], services: Services) -> None:
    dataset_id = create_dataset(client, org.headers())
    upload_batch(client, org.headers(), dataset_id, {"people.json": json_lines([person(i) for i in range(4)])})
    drain()
    erased = client.delete("/data/core/ups/access/entities", headers=org.headers(),
                           params={"schema.name": "_xdm.context.profile", "entityId": "p2@example.com", "entityIdNS": "email"})
    assert erased.status_code == 202, erased.text
    drain()
    left = lake_records(client, org, services.settings.data_lake, dataset_id)
    assert sorted(dict(r["identityMap"])["email"][0]["id"] for r in left) == ["p0@example.com", "p1@example.com", "p3@example.com"]


def test_a_publish_replaces_what_an_unfinished_attempt_left_under_the_prefix(
        services: Services, bucket: pafs.S3FileSystem, tmp_path: Path) -> None:
    data_lake = services.settings.data_lake
    location = data_lake.location("prod", "ds", "batch-1")
    stale = location.removeprefix("s3://")
    pq.write_table(pa.table({"x": [0]}), f"{stale}/part-00000.parquet", filesystem=bucket)
    pq.write_table(pa.table({"x": [0]}), f"{stale}/part-00007.parquet", filesystem=bucket)
    staged = data_lake.stage(location, services.settings.staging)
    pq.write_table(pa.table({"x": [1, 2]}), staged.path / "part-00000.parquet")
    staged.publish()
    assert objects(bucket, services.settings) == ["prod/ds/batch-1/part-00000.parquet"]
    assert lake_files.parquet_file(f"{location}/part-00000.parquet").read().to_pydict() == {"x": [1, 2]}
    assert lake_files.stat(f"{location}/part-00000.parquet")[0] > 0
    assert not staged.path.exists()  # the local copy is gone once uploaded
    # A discarded stage uploads nothing.
    other = data_lake.stage(data_lake.location("prod", "ds", "batch-2"), services.settings.staging)
    pq.write_table(pa.table({"x": [3]}), other.path / "part-00000.parquet")
    other.discard()
    assert objects(bucket, services.settings) == ["prod/ds/batch-1/part-00000.parquet"]
    assert not other.path.exists()


def test_the_lake_setting_is_checked_at_start_up(s3_endpoint: str, tmp_path: Path) -> None:
    options = f"?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    settings = Settings.from_env({"OPENSEG_HOME": str(tmp_path), "OPENSEG_LAKE": f"s3://{BUCKET}/team/lake{options}"})
    assert settings.data_lake.root == f"s3://{BUCKET}/team/lake"
    # The worker process openseg serve starts reads the same lake back.
    assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(ValueError, match="names no bucket"):
        Settings.from_env({"OPENSEG_HOME": str(tmp_path), "OPENSEG_LAKE": "s3:///lake"})
    with pytest.raises(ValueError, match="OPENSEG_LAKE: .*query parameter"):
        Settings.from_env({"OPENSEG_HOME": str(tmp_path), "OPENSEG_LAKE": f"s3://{BUCKET}/lake?colour=blue"})
    with pytest.raises(ValueError, match="OPENSEG_ENGINE=spark"):
        Settings.from_env({"OPENSEG_HOME": str(tmp_path), "OPENSEG_LAKE": f"s3://{BUCKET}/lake{options}",
                           "OPENSEG_ENGINE": "spark"})
    with pytest.raises(ValueError, match="gs:// URIs are not supported"):
        Settings.from_env({"OPENSEG_HOME": str(tmp_path), "OPENSEG_LAKE": "gs://bucket/lake"})


@pytest.mark.parametrize("shown", ["s3://openseg-lake/team/lake", "openseg-lake/team/lake"])
def test_a_failure_names_the_batch_and_dataset_not_the_objects_key(shown: str) -> None:
    error = OSError(f"When reading '{shown}/sandbox-1/ds-7/batch-3/part-00000.parquet': connection reset")
    assert failures.describe(error, "s3://openseg-lake/team/lake") == \
        "OSError: When reading 'a file of batch 'batch-3' (dataset 'ds-7')': connection reset"


def test_definitions_are_checked_without_a_round_trip_per_object(
        client: TestClient, org: Org, drain: Callable[[], int], monkeypatch: pytest.MonkeyPatch) -> None:
    dataset_id = create_dataset(client, org.headers())
    for i in range(3):
        upload_batch(client, org.headers(), dataset_id, {"p.json": json_lines([person(i)])})
    drain()
    assert define(client, org, "first", 'loyalty.points > 5')["id"]
    stats: list[str] = []
    real_stat = lake_files.stat
    monkeypatch.setattr(lake_files, "stat", lambda location: stats.append(location) or real_stat(location))
    assert define(client, org, "second", 'homeAddress.country = "US"')["id"]
    bad = client.post("/data/core/ups/segment/definitions", headers=org.headers(), json={
        "name": "bad", "schema": {"name": "_xdm.context.profile"},
        "expression": {"type": "PQL", "format": "pql/text", "value": "loyalty.colour = 1"}})
    assert bad.status_code == 400 and "loyalty.colour" in bad.text
    assert stats == []
