"""The build's watermark is what the build read: a streamed batch flushed while a build runs is not in that
build, so the overlay keeps laying its messages over it (and the flusher keeps them in the log)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from openseg.container import Services
from openseg.profiles import service as profile_service
from openseg.store.db import MIGRATIONS, migrate
from openseg.streaming.model import STREAM_SEQ
from tests.api.flows import json_lines, person, upload_batch
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org
from tests.streaming.inlets import batches, create_inlet
from tests.streaming.test_overlay import profile
from tests.streaming.test_streaming_segmentation import PROFILE_SCHEMA, Clock, post, streamer


def test_a_batch_flushed_during_a_build_stays_in_the_overlay_until_a_build_reads_it(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    people = load_people(client, org, drain, [person(1), person(2)])
    post(client, create_inlet(client, org, people), person(1, loyalty={"points": 15}), schema=PROFILE_SCHEMA)
    assert profile(client, org, "email", "p1@example.com")["entity"]["loyalty"] == {"points": 15}
    consumers = streamer(services, Clock())
    refresh = profile_service.refresh_profile_store
    flushed: list[int] = []

    def flush_then_refresh(*args: Any, **kwargs: Any) -> Any:
        # The build has read its sources; the streamer flushes the message into a batch it did not read.
        flushed.append(consumers.run_until_idle())
        return refresh(*args, **kwargs)

    upload_batch(client, org.headers(), people, {"more.json": json_lines([person(3)])})
    assert services.worker is not None and services.worker.run_once()  # the batch ingested: a build is queued
    monkeypatch.setattr(profile_service, "refresh_profile_store", flush_then_refresh)
    assert services.worker.run_once()  # the build, with the flush inside it
    monkeypatch.setattr(profile_service, "refresh_profile_store", refresh)
    assert flushed == [1]
    assert [b["status"] for b in batches(client, org, people)] == ["success", "success", "success"]
    assert profile(client, org, "email", "p3@example.com")["entity"]["loyalty"] == {"points": 30}  # built
    # The build published after the flush does not hold the message: it is still read from the log.
    assert profile(client, org, "email", "p1@example.com")["entity"]["loyalty"] == {"points": 15}
    consumers.run_until_idle()  # a flush prunes only what a build holds
    assert [m.seq for m in services.stream_log().read(0, 10)] == [1]
    assert profile(client, org, "email", "p1@example.com")["entity"]["loyalty"] == {"points": 15}
    drain()  # the build the flushed batch queued reads it
    assert profile(client, org, "email", "p1@example.com")["entity"]["loyalty"] == {"points": 15}
    consumers.run_until_idle()
    assert services.stream_log().read(0, 10) == []
    assert profile(client, org, "email", "p1@example.com")["entity"]["loyalty"] == {"points": 15}


def test_the_migration_gives_existing_builds_the_watermark_of_their_publication_time(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0010")
        connection.execute(text("INSERT INTO orgs (id, created) VALUES ('OLD@AdobeOrg', 1)"))
        connection.execute(text(
            "INSERT INTO sandboxes (id, org_id, name, title, type, is_default, state, created, updated) "
            "VALUES ('s', 'OLD@AdobeOrg', 'prod', 'prod', 'production', true, 'active', 1, 1)"))
        for policy_id, built_at in (("built", 100), ("never", None)):
            connection.execute(text("INSERT INTO profile_stores (merge_policy_id, sandbox_id, policy_version, built_at, "
                                    "stats) VALUES (:id, 's', 1, :built_at, '{}')"), {"id": policy_id, "built_at": built_at})
        for batch_id, origin, completed, last in (("b1", "streaming", 50, 7), ("b2", "streaming", 150, 9),
                                                  ("b3", "ingestion", 60, None)):
            input_format = {"format": "json", **({STREAM_SEQ: {"first": 1, "last": last}} if last else {})}
            connection.execute(text(
                "INSERT INTO batches (id, org_id, sandbox_id, dataset_id, status, input_format, origin, records_read, "
                "records_written, errors, created, updated, completed) VALUES (:id, 'OLD@AdobeOrg', 's', 'd', "
                "'success', :format, :origin, 1, 1, '[]', 1, 1, :completed)"),
                {"id": batch_id, "format": json.dumps(input_format), "origin": origin, "completed": completed})
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT merge_policy_id, stream_watermark FROM profile_stores "
                                       "ORDER BY merge_policy_id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("built", 7), ("never", 0)]
