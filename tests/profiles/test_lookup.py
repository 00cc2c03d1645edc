"""Reading a built store: profiles by identity, field projection, events with paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from openseg.profiles import (
    InvalidCursorError,
    MergePolicySpec,
    events_cursor,
    get_events,
    get_profile,
    get_profile_identities,
    resolve_profile_id,
)

from .conftest import ENGINE, Lake, ids

DAY = datetime(2024, 1, 1)


@pytest.fixture
def store(lake: Lake) -> Path:
    lake.add(
        "profile",
        [
            {
                "identityMap": ids(("email", "a@x"), ("ECID", "1"), primary="a@x"),
                "person": {"name": {"firstName": "Ann", "lastName": "Lee"}, "gender": None},
                "homeAddress": {"country": "US", "city": "NYC"},
            }
        ],
        ingest=DAY,
    )
    lake.add(
        "event",
        [
            {
                "_id": f"e{i}",
                "timestamp": DAY + timedelta(days=i % 3, hours=i),
                "eventType": "web",
                "identityMap": ids(("ECID", "1")),
                "web": {"page": f"p{i}"},
            }
            for i in range(5)
        ],
        dataset="ds-web",
        ingest=DAY + timedelta(days=9),
    )
    path, _ = lake.build()
    return path


def test_a_profile_is_found_by_any_identity(store: Path) -> None:
    profile = get_profile(store, "ecid", "1", engine=ENGINE)
    assert profile == {
        "_profile_id": "ecid:1",
        "person": {"name": {"firstName": "Ann", "lastName": "Lee"}},
        "homeAddress": {"country": "US", "city": "NYC"},
        "identityMap": {"ECID": [{"id": "1", "primary": False}], "email": [{"id": "a@x", "primary": True}]},
        "_sources": ["ds-crm"],
        "_lastModifiedAt": DAY,
        "_hasProfileRecord": True,
        "_primaryNamespace": "email",
    }
    assert get_profile(store, "EMAIL", "a@x", engine=ENGINE) == profile


def test_unknown_identities_find_nothing(store: Path) -> None:
    assert get_profile(store, "email", "A@x", engine=ENGINE) is None
    assert get_profile_identities(store, "phone", "1", engine=ENGINE) is None
    assert resolve_profile_id(store, "email", "nobody", engine=ENGINE) is None


def test_fields_select_paths_and_keep_identities(store: Path) -> None:
    profile = get_profile(store, "email", "a@x", fields=["person.name.firstName", "homeAddress", "nope.x"], engine=ENGINE)
    assert profile is not None
    assert {k: v for k, v in profile.items() if not k.startswith("_") and k != "identityMap"} == {
        "person": {"name": {"firstName": "Ann"}},
        "homeAddress": {"country": "US", "city": "NYC"},
    }
    assert profile["identityMap"]["email"] == [{"id": "a@x", "primary": True}]


def test_profile_identities_are_listed_by_key(store: Path) -> None:
    assert get_profile_identities(store, "Email", "a@x", engine=ENGINE) == [("ECID", "1"), ("email", "a@x")]


def _ids(events: list[dict[str, object]]) -> list[object]:
    return [e["_id"] for e in events]


def test_events_page_in_time_order_with_a_cursor(store: Path) -> None:
    everything = _ids(get_events(store, "ecid:1", engine=ENGINE))
    assert everything == ["e0", "e3", "e1", "e4", "e2"]
    first = get_events(store, "ecid:1", limit=2, engine=ENGINE)
    second = get_events(store, "ecid:1", limit=2, after=events_cursor(first[-1]), engine=ENGINE)
    third = get_events(store, "ecid:1", limit=2, after=events_cursor(second[-1]), engine=ENGINE)
    assert (_ids(first), _ids(second), _ids(third)) == (["e0", "e3"], ["e1", "e4"], ["e2"])
    assert first[0] == {
        "_id": "e0",
        "timestamp": DAY,
        "eventType": "web",
        "identityMap": {"ECID": [{"id": "1", "primary": False}]},
        "web": {"page": "p0"},
        "_ingestTime": DAY + timedelta(days=9),
    }


def test_events_newest_first_and_within_a_window(store: Path) -> None:
    newest = get_events(store, "ecid:1", order="-timestamp", limit=3, engine=ENGINE)
    assert _ids(newest) == ["e2", "e4", "e1"]
    assert _ids(get_events(store, "ecid:1", order="-timestamp", after=events_cursor(newest[-1]), engine=ENGINE)) == [
        "e3",
        "e0",
    ]
    window = get_events(store, "ecid:1", start=datetime(2024, 1, 2, tzinfo=UTC), end=DAY + timedelta(days=2), engine=ENGINE)
    assert _ids(window) == ["e1", "e4"]


def test_events_of_an_unknown_profile_are_empty(store: Path) -> None:
    assert get_events(store, "email:nobody", engine=ENGINE) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"limit": 0}, ValueError, "limit: must be at least 1"),
        (
            {"order": "timestamp desc"},
            ValueError,
            "order: 'timestamp desc' is not 'timestamp' or '-timestamp'",
        ),
        ({"after": "not-a-cursor"}, InvalidCursorError, "not an events cursor: 'not-a-cursor'"),
    ],
)
def test_invalid_event_requests_are_rejected(
    store: Path, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        get_events(store, "ecid:1", **kwargs, engine=ENGINE)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_identity_graph_none_profile_without_fragments_is_the_event_only_one(lake: Lake) -> None:
    lake.add("event", [{"_id": "e", "timestamp": DAY, "identityMap": ids(("ECID", "5"))}])
    store, _ = lake.build(MergePolicySpec("mp-none", identity_graph="none"))
    assert get_profile(store, "ECID", "5", engine=ENGINE) == {
        "_profile_id": "ecid:5",
        "identityMap": {"ECID": [{"id": "5", "primary": False}]},
        "_sources": [],
        "_lastModifiedAt": DAY,
        "_hasProfileRecord": False,
            "_primaryNamespace": "ECID",
    }
    assert get_profile_identities(store, "ecid", "5", engine=ENGINE) == [("ECID", "5")]
