"""The XDM schema: standard fields, inference from Arrow, merging and lookups."""

from __future__ import annotations

import pyarrow as pa
import pytest

from openseg.xdm.schema import FieldKind, FieldType, Schema

STANDARD = Schema.standard()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("person.name.firstName", FieldType.string()),
        ("person.birthDate", FieldType.date()),
        ("homeAddress.stateProvince", FieldType.string()),
        ("loyalty.points", FieldType.number()),
        ("loyalty.joinDate", FieldType.datetime()),  # date-time in the Loyalty Details field group
        ("identityMap.email", FieldType.array(FieldType.object(
            authenticatedState=FieldType.string(), id=FieldType.string(), primary=FieldType.boolean()))),
        ("segmentMembership.ups.abc.status", FieldType.string()),
        ("segmentMembership.ups.abc.lastQualificationTime", FieldType.datetime()),
        ("homeAddress.cuntry", None),
        ("person.birthDate.year", None),
    ],
)
def test_standard_profile_fields(path: str, expected: FieldType | None) -> None:
    assert STANDARD.lookup(path) == expected


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("timestamp", FieldKind.DATETIME), ("eventType", FieldKind.STRING),
        ("commerce.order.priceTotal", FieldKind.NUMBER), ("commerce.purchases.value", FieldKind.NUMBER),
        ("productListItems", FieldKind.ARRAY), ("web.webPageDetails.URL", FieldKind.STRING),
        ("environment.browserDetails.version", FieldKind.STRING), ("channel._type", FieldKind.STRING),
    ],
)
def test_standard_event_fields(path: str, kind: FieldKind) -> None:
    found = STANDARD.lookup(path, event=True)
    assert found is not None and found.kind is kind


def test_array_items_are_not_reached_by_a_path() -> None:
    assert STANDARD.lookup("productListItems.SKU", event=True) is None


def test_from_arrow_infers_and_merges_over_standard() -> None:
    profiles = pa.schema([
        ("_profile_id", pa.string()),
        ("person", pa.struct([("birthDate", pa.string()), ("shoeSize", pa.int32())])),
        ("loyalty", pa.struct([("points", pa.int64())])),
        ("tags", pa.list_(pa.string())),
        ("scores", pa.map_(pa.string(), pa.float64())),
    ])
    events = pa.schema([("timestamp", pa.timestamp("us", tz="UTC")), ("custom", pa.struct([("day", pa.date32())]))])
    schema = Schema.from_arrow(profiles, events)
    assert schema.lookup("person.shoeSize") == FieldType.integer()
    assert schema.lookup("person.birthDate") == FieldType.date()  # text dates keep the standard type
    assert schema.lookup("person.name.lastName") == FieldType.string()
    assert schema.lookup("loyalty.points") == FieldType.number()  # integer data widens to number
    assert schema.lookup("tags") == FieldType.array(FieldType.string())
    assert schema.lookup("scores.math") == FieldType.number()
    assert schema.lookup("_profile_id") is None  # openseg's own columns are not XDM fields
    assert schema.lookup("custom.day", event=True) == FieldType.date()
    assert schema.lookup("eventType", event=True) == FieldType.string()


def test_merge_adds_fields_and_keeps_existing() -> None:
    extra = Schema(FieldType.object(homeAddress=FieldType.object(region=FieldType.string())), FieldType.object())
    merged = STANDARD.merge(extra)
    assert merged.lookup("homeAddress.region") == FieldType.string()
    assert merged.lookup("homeAddress.country") == FieldType.string()


def test_types_describe_themselves() -> None:
    assert FieldType.array(FieldType.object()).describe() == "an array of objects"
    assert FieldType.map(FieldType.array(FieldType.string())).describe() == "a map of arrays of strings"
    assert FieldType.integer().describe() == "an integer"


def test_invalid_types_are_rejected() -> None:
    with pytest.raises(ValueError, match="need an element type"):
        FieldType(FieldKind.ARRAY)
    with pytest.raises(ValueError, match="only objects have fields"):
        FieldType(FieldKind.STRING, fields=(("a", FieldType.string()),))
