"""The standard XDM catalog: every field of the XDM Individual Profile and ExperienceEvent classes and of
their standard field groups, with its type.

``standard_fields.tsv`` (shipped with the package) holds one row per (entity, path): the columns
``entity, path, type, format, items, status`` of the list extracted from Adobe's public XDM schemas
(github.com/adobe/xdm, CC BY 4.0, © Adobe; the extraction's rules are in the project's
``shared/xdm/README.md``). Paths are in AEP's compatibility-mode form: ``[]`` marks the items of an
array (``productListItems[].SKU``), ``{}`` the values of a map under any key (``identityMap{}[].id``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

from openseg.xdm.schema import FieldKind, FieldType

Entity = Literal["profile", "event"]
ENTITIES: tuple[Entity, ...] = ("profile", "event")
CATALOG_FILE = "standard_fields.tsv"

_SCALARS = {
    "string": FieldKind.STRING, "integer": FieldKind.INTEGER, "number": FieldKind.NUMBER,
    "boolean": FieldKind.BOOLEAN, "date": FieldKind.DATE, "date-time": FieldKind.DATETIME,
}
_CONTAINERS = {"[]": FieldKind.ARRAY, "{}": FieldKind.MAP}


@dataclass(frozen=True, slots=True)
class StandardField:
    """One row of the catalog.

    Attributes:
        entity: ``profile`` or ``event``.
        path: The compatibility-mode path (``person.birthDate``, ``productListItems[].SKU``).
        type: ``string``, ``integer``, ``number``, ``boolean``, ``date``, ``date-time``, ``object``,
            ``array`` or ``map``.
        format: The JSON-schema format (``date``, ``uri-reference`` ...), empty when none.
        items: The item type of an array, the value type of a map; empty otherwise.
        status: ``stable``, ``experimental`` or ``deprecated``.
    """

    entity: Entity
    path: str
    type: str
    format: str
    items: str
    status: str


@cache
def standard_fields() -> tuple[StandardField, ...]:
    """Every row of the catalog, in file order."""
    text = resources.files("openseg.xdm").joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    return tuple(
        StandardField(entity=_entity(row["entity"]), path=row["path"], type=row["type"], format=row["format"],
                      items=row["items"], status=row["status"])
        for row in rows
    )


def _entity(value: str) -> Entity:
    if value == "profile":
        return "profile"
    if value == "event":
        return "event"
    raise ValueError(f"{CATALOG_FILE}: unknown entity {value!r}")


@cache
def standard_type(entity: Entity) -> FieldType:
    """The object type of a profile (or an ExperienceEvent) made of every standard field of the catalog."""
    root = _Node(kind="object")
    for row in standard_fields():
        if row.entity == entity:
            node = root
            for segment in row.path.split("."):
                name, containers = _split(segment)
                node = node.children.setdefault(name, _Node())
                for _ in containers:
                    node = node.element()
            node.kind, node.items = row.type, row.items
    return root.to_type()


def _split(segment: str) -> tuple[str, list[str]]:
    """``identityMap{}[]`` -> (``identityMap``, [``{}``, ``[]``])."""
    containers: list[str] = []
    while segment[-2:] in _CONTAINERS:
        containers.insert(0, segment[-2:])
        segment = segment[:-2]
    return segment, containers


@dataclass
class _Node:
    """A field while the tree is assembled: its kind comes from its row, or for an array item or a map
    value, from the container's ``items`` (objects are also recognised by their children)."""

    kind: str = ""
    items: str = ""
    children: dict[str, _Node] = field(default_factory=dict)
    item: _Node | None = None

    def element(self) -> _Node:
        if self.item is None:
            self.item = _Node()
        return self.item

    def to_type(self) -> FieldType:
        if self.kind in _SCALARS:
            return FieldType(_SCALARS[self.kind])
        if self.kind in ("array", "map"):
            element = self.element()
            element.kind = element.kind or self.items
            return FieldType(FieldKind.ARRAY if self.kind == "array" else FieldKind.MAP, element.to_type())
        # An object, or a container's item the catalog describes only by its children.
        return FieldType.object({name: child.to_type() for name, child in self.children.items()})
