"""openseg's own standard XDM catalog: the same facts as the shared list, and the checker knows all of them."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pytest

from openseg.pql import PqlError, check, parse
from openseg.xdm.catalog import StandardField, standard_fields, standard_type
from openseg.xdm.schema import FieldKind, FieldType, Schema

SHARED = Path(__file__).resolve().parents[3] / "shared" / "xdm" / "standard-fields.tsv"
KINDS = {"string": FieldKind.STRING, "integer": FieldKind.INTEGER, "number": FieldKind.NUMBER,
         "boolean": FieldKind.BOOLEAN, "date": FieldKind.DATE, "date-time": FieldKind.DATETIME,
         "object": FieldKind.OBJECT, "array": FieldKind.ARRAY, "map": FieldKind.MAP}


def shared_rows() -> list[StandardField]:
    with SHARED.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [StandardField(r["entity"], r["path"], r["type"], r["format"], r["items"], r["status"])  # type: ignore[arg-type]
                for r in rows]


def test_the_catalog_holds_every_shared_row_with_its_type_and_format() -> None:
    assert list(standard_fields()) == shared_rows()
    assert len(standard_fields()) == 3792


def test_the_catalog_ships_inside_the_package() -> None:
    shipped = resources.files("openseg.xdm").joinpath("standard_fields.tsv")
    assert shipped.is_file()
    assert "shared" not in Path(str(shipped)).parts


def _walk(root: FieldType, path: str) -> FieldType | None:
    """The type at a catalog path, stepping into array items at ``[]`` and map values at ``{}``."""
    current: FieldType | None = root
    for segment in path.split("."):
        name = segment.rstrip("[]{}")
        current = current.field(name) if current is not None else None
        for _ in range((len(segment) - len(name)) // 2):
            current = current.of if current is not None else None
    return current


@pytest.mark.parametrize("entity", ["profile", "event"])
def test_the_standard_schema_types_every_catalog_path(entity: str) -> None:
    root = standard_type(entity)  # type: ignore[arg-type]
    wrong = []
    for row in standard_fields():
        if row.entity == entity:
            found = _walk(root, row.path)
            items = found.of.kind.value if found is not None and found.of is not None else ""
            if found is None or found.kind is not KINDS[row.type] or (row.items and items != KINDS[row.items].value):
                wrong.append((row.path, row.type, row.items, found))
    assert wrong == []


@pytest.mark.parametrize(("path", "expected"), [
    ("person.birthYear", FieldType.integer()),
    ("person.birthDate", FieldType.date()),
    ("person.birthDayAndMonth", FieldType.string()),
    ("workAddress.country", FieldType.string()),
    ("workAddress.countryCode", FieldType.string()),
    ("loyalty.lifetimePoints", FieldType.number()),
    ("loyalty.joinDate", FieldType.datetime()),
    ("segmentMembership.ups.seg1.lastQualificationTime", FieldType.datetime()),
])
def test_standard_profile_fields_from_the_catalog(path: str, expected: FieldType) -> None:
    assert Schema.standard().lookup(path) == expected


@pytest.mark.parametrize(("path", "kind"), [
    ("commerce.checkouts.value", FieldKind.NUMBER),
    ("web.webPageDetails.URL", FieldKind.STRING),
    ("environment.browserDetails.userAgent", FieldKind.STRING),
    ("directMarketing.opens.value", FieldKind.NUMBER),
    ("placeContext.POIinteraction.poiDetail.name", FieldKind.STRING),
    ("placeContext.POIinteraction.POIDetail.name", FieldKind.STRING),
])
def test_standard_event_fields_from_the_catalog(path: str, kind: FieldKind) -> None:
    found = Schema.standard().lookup(path, event=True)
    assert found is not None and found.kind is kind


@pytest.mark.parametrize("text", [
    "person.birthYear >= 1985",
    'workAddress.country = "FR"',
    "person.birthDate.getMonth() = 6",
    'homeAddress.countryCode = "US" and loyalty.lifetimePoints > 100',
    'xEvent[directMarketing.opens.value > 0 and web.webPageDetails.URL.contains("sale")].count() > 1',
    'xEvent[productListItems.exists(SKU = "A1")].count() > 0',
])
def test_the_checker_accepts_standard_fields(text: str) -> None:
    check(parse(text))


@pytest.mark.parametrize(("text", "message"), [
    ("person.birthyear = 1990", "unknown field person.birthyear (did you mean person.birthYear?)"),
    ('workAddress.Country = "US"', "unknown field workAddress.Country (did you mean workAddress.country?)"),
    ("person.birthMonth = 6", "unknown field person.birthMonth (did you mean person.birthDayAndMonth?)"),
    ('homeAddress.countryISO = "US"', "unknown field homeAddress.countryISO (did you mean homeAddress.country?)"),
    ('person.birthYear = "1990"', 'person.birthYear is a number; "1990" is a string'),
    ('workAddress.country = 33', "workAddress.country is a string; 33 is a number"),
])
def test_field_names_are_case_sensitive_with_suggestions(text: str, message: str) -> None:
    with pytest.raises(PqlError) as caught:
        check(parse(text), source=text)
    assert caught.value.message == message
