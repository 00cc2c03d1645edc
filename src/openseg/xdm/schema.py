"""XDM field trees: which fields a profile and its ExperienceEvents have, and of what type.

A :class:`Schema` is the standard XDM fields (``Schema.standard()``, from ``catalog.py``) merged with the union schema
inferred from ingested data (``Schema.from_arrow``). The PQL checker validates paths against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache

import pyarrow as pa


class FieldKind(str, Enum):
    """Kinds of field values."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    OBJECT = "object"
    ARRAY = "array"
    MAP = "map"


_ARTICLE = {FieldKind.INTEGER: "an", FieldKind.OBJECT: "an", FieldKind.ARRAY: "an"}


@dataclass(frozen=True, slots=True)
class FieldType:
    """The type of one field: a scalar kind, an object with named fields, or an array/map of a type.

    Attributes:
        kind: The kind.
        of: Element type of an array, value type of a map (keys are strings).
        fields: Named fields of an object, in declaration order.
    """

    kind: FieldKind
    of: FieldType | None = None
    fields: tuple[tuple[str, FieldType], ...] = ()

    def __post_init__(self) -> None:
        if (self.kind in (FieldKind.ARRAY, FieldKind.MAP)) != (self.of is not None):
            raise ValueError(f"{self.kind.value} types need an element type; other kinds have none")
        if self.fields and self.kind is not FieldKind.OBJECT:
            raise ValueError("only objects have fields")

    # -- constructors --------------------------------------------------------------------------------

    @staticmethod
    def string() -> FieldType:
        """A string."""
        return FieldType(FieldKind.STRING)

    @staticmethod
    def integer() -> FieldType:
        """A whole number."""
        return FieldType(FieldKind.INTEGER)

    @staticmethod
    def number() -> FieldType:
        """A number (integer or floating point)."""
        return FieldType(FieldKind.NUMBER)

    @staticmethod
    def boolean() -> FieldType:
        """true or false."""
        return FieldType(FieldKind.BOOLEAN)

    @staticmethod
    def date() -> FieldType:
        """A calendar date."""
        return FieldType(FieldKind.DATE)

    @staticmethod
    def datetime() -> FieldType:
        """A point in time (UTC)."""
        return FieldType(FieldKind.DATETIME)

    @staticmethod
    def array(of: FieldType) -> FieldType:
        """An array of ``of``."""
        return FieldType(FieldKind.ARRAY, of)

    @staticmethod
    def map(of: FieldType) -> FieldType:
        """A map from string keys to ``of``."""
        return FieldType(FieldKind.MAP, of)

    @staticmethod
    def object(fields: Mapping[str, FieldType] | None = None, **more: FieldType) -> FieldType:
        """An object with the given fields."""
        items = {**(fields or {}), **more}
        return FieldType(FieldKind.OBJECT, None, tuple(items.items()))

    # -- reading -------------------------------------------------------------------------------------

    def field(self, name: str) -> FieldType | None:
        """The type of the object field ``name`` (None when absent or not an object)."""
        for key, value in self.fields:
            if key == name:
                return value
        return None

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the object's fields."""
        return tuple(key for key, _ in self.fields)

    @property
    def is_numeric(self) -> bool:
        """Integer or number."""
        return self.kind in (FieldKind.INTEGER, FieldKind.NUMBER)

    @property
    def is_temporal(self) -> bool:
        """Date or datetime."""
        return self.kind in (FieldKind.DATE, FieldKind.DATETIME)

    def describe(self) -> str:
        """The type in words with an article: ``a string``, ``an array of objects``."""
        return f"{_ARTICLE.get(self.kind, 'a')} {self.name()}"

    def name(self) -> str:
        """The type in words: ``string``, ``array of strings``, ``map of arrays of objects``."""
        if self.of is not None:
            return f"{self.kind.value} of {_plural(self.of)}"
        return self.kind.value

    def merge(self, other: FieldType) -> FieldType:
        """The union of two types of one field (objects merge field by field; see ``Schema.merge``)."""
        if self.kind is FieldKind.OBJECT and other.kind is FieldKind.OBJECT:
            merged = dict(self.fields)
            for key, value in other.fields:
                merged[key] = merged[key].merge(value) if key in merged else value
            return FieldType.object(merged)
        if self.kind is other.kind and self.of is not None and other.of is not None:
            return FieldType(self.kind, self.of.merge(other.of))
        if self.is_numeric and other.is_numeric:
            return self if self.kind is FieldKind.NUMBER else other
        # Ingested JSON carries dates as text; the standard field's temporal type stays authoritative.
        if self.is_temporal and other.kind is FieldKind.STRING:
            return self
        if self.kind is FieldKind.DATE and other.kind is FieldKind.DATETIME:
            return other
        if self.kind is FieldKind.DATETIME and other.kind is FieldKind.DATE:
            return self
        return other


def _plural(of: FieldType) -> str:
    name = of.name()
    head, _, rest = name.partition(" ")
    return f"{head}s {rest}".rstrip() if rest else f"{name}s"


#: The column of ``profiles.parquet`` holding each profile's primary-identity namespace (see
#: ``openseg.profiles.store.primary_namespace``).
PRIMARY_NAMESPACE = "_primaryNamespace"
#: Columns openseg adds to the merged profile and event stores; they are not XDM fields, a source column of
#: one of these names is ignored, and profiles are shown without them.
INTERNAL_COLUMNS = frozenset({"_profile_id", "_sources", "_lastModifiedAt", "_hasProfileRecord", "_ingestTime",
                              PRIMARY_NAMESPACE})


@dataclass(frozen=True, slots=True)
class Schema:
    """The field trees of the merged profile and of its ExperienceEvents."""

    profile: FieldType
    event: FieldType

    def __post_init__(self) -> None:
        if self.profile.kind is not FieldKind.OBJECT or self.event.kind is not FieldKind.OBJECT:
            raise ValueError("profile and event schemas are objects")

    @staticmethod
    def standard() -> Schema:
        """Every standard XDM profile and ExperienceEvent field (``openseg.xdm.catalog``), without any data."""
        return _standard()

    @staticmethod
    def from_arrow(profile_schema: pa.Schema | None, event_schema: pa.Schema | None) -> Schema:
        """The standard schema merged with the union schema inferred from ingested data.

        Args:
            profile_schema: Arrow schema of the merged profiles (or None).
            event_schema: Arrow schema of the events (or None).

        Returns:
            ``Schema.standard()`` with the fields found in the data: a standard field keeps its catalog
            type (ingestion refuses values that do not fit it), every other field has its type in the data.
        """
        return Schema.from_arrow_files([profile_schema] if profile_schema else [], [event_schema] if event_schema else [])

    @staticmethod
    def from_arrow_files(profile_schemas: Iterable[pa.Schema], event_schemas: Iterable[pa.Schema]) -> Schema:
        """The standard schema with the fields of every file (of profiles, of events).

        A standard field keeps its catalog type; a field the standard does not define takes its type in
        the data (where files disagree, the wider type, else the later file's: see ``FieldType.merge``).
        """
        standard = Schema.standard()
        return Schema(_over_standard(standard.profile, _objects_from_arrow(profile_schemas)),
                      _over_standard(standard.event, _objects_from_arrow(event_schemas)))

    def merge(self, other: Schema) -> Schema:
        """This schema with ``other``'s fields added; for a field in both, the wider type wins."""
        return Schema(self.profile.merge(other.profile), self.event.merge(other.event))

    def lookup(self, path: str | Sequence[str], *, event: bool = False) -> FieldType | None:
        """The type at a dotted path of the profile (or of an event), None when there is none.

        Map keys are path segments (``identityMap.email``); array items are not reached by a path.
        """
        segments = path.split(".") if isinstance(path, str) else list(path)
        current: FieldType | None = self.event if event else self.profile
        for segment in segments:
            if current is None:
                return None
            if current.kind is FieldKind.OBJECT:
                current = current.field(segment)
            elif current.kind is FieldKind.MAP:
                current = current.of
            else:
                return None
        return current


@cache
def _standard() -> Schema:
    from openseg.xdm.catalog import standard_type

    return Schema(standard_type("profile"), standard_type("event"))


def _over_standard(standard: FieldType, data: FieldType) -> FieldType:
    """``standard`` with the fields of ``data`` it lacks; where both have a field, the standard type stays."""
    if standard.kind is FieldKind.OBJECT and data.kind is FieldKind.OBJECT:
        merged = dict(standard.fields)
        for key, value in data.fields:
            merged[key] = _over_standard(merged[key], value) if key in merged else value
        return FieldType.object(merged)
    if standard.kind is data.kind and standard.of is not None and data.of is not None:
        return FieldType(standard.kind, _over_standard(standard.of, data.of))
    return standard


def _objects_from_arrow(schemas: Iterable[pa.Schema]) -> FieldType:
    merged = FieldType.object()
    for schema in dict.fromkeys(schemas):  # batches mostly share one schema: convert each distinct one once
        merged = merged.merge(_object_from_arrow(schema))
    return merged


def _object_from_arrow(schema: pa.Schema) -> FieldType:
    return FieldType.object(
        {f.name: _from_arrow(f.type) for f in schema if f.name not in INTERNAL_COLUMNS}
    )


def _from_arrow(dtype: pa.DataType) -> FieldType:
    if pa.types.is_struct(dtype):
        return FieldType.object({dtype.field(i).name: _from_arrow(dtype.field(i).type) for i in range(dtype.num_fields)})
    if pa.types.is_map(dtype):
        return FieldType.map(_from_arrow(dtype.item_type))
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
        return FieldType.array(_from_arrow(dtype.value_type))
    if pa.types.is_boolean(dtype):
        return FieldType.boolean()
    if pa.types.is_integer(dtype):
        return FieldType.integer()
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return FieldType.number()
    if pa.types.is_date(dtype):
        return FieldType.date()
    if pa.types.is_timestamp(dtype):
        return FieldType.datetime()
    return FieldType.string()


def field_paths(field_type: FieldType, prefix: Iterable[str] = ()) -> list[str]:
    """Every dotted leaf path under an object type (maps and arrays are leaves), for suggestions."""
    out: list[str] = []
    for name, child in field_type.fields:
        path = [*prefix, name]
        if child.kind is FieldKind.OBJECT and child.fields:
            out.extend(field_paths(child, path))
        else:
            out.append(".".join(path))
    return out
