"""The merged profile store on disk: its files, its schema file, and atomic publication.

Layout (docs/architecture.md, "The merged profile store"), one directory per sandbox and merge policy:
``profiles.parquet``, ``events.parquet`` (and the events appended beside it since: :func:`event_files`),
``identities.parquet``, ``schema.json``; beside the two files looked up by key, ``profiles.arrow`` and
``identities.arrow``, their decoded copies (:func:`openseg.engines.parquet.write_decoded_copy`: every process maps
them instead of decoding the files after each build); plus, added here,
``manifest.json`` (the policy, sources and build statistics) and, under ``identityGraph: none`` or
``dataSetPrecedence``, ``fragments.parquet`` (the unmerged fragments a lookup merges on demand, or the overlay
ranks streamed fragments among: :func:`keeps_fragments`). ``_state/`` holds what only
the builder reads (:data:`EVENT_RIDS_FILE`).

Publication is atomic: the store path is a pointer file naming a complete build directory kept beside it
in ``.<name>.builds/``; a new build is written there in full and then the pointer is replaced whole (written
beside it and swapped in with ``os.replace``, a rename of one small file; on an object store, one PUT of one
object), so a reader sees either the old store or the new one, never a mix. No directory is renamed into place
and no symbolic link is needed, so any shared file system serves, and the protocol is the one an object store
allows. Readers resolve the pointer once per operation (:func:`resolve_store`). The previous build is kept so a
reader that resolved it just before a swap can finish. A store published by an older openseg (a symbolic link,
or a plain directory before that) is still read, and replaced by a pointer at its next publication.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

from openseg.engines.parquet import decoded_copy_path, has_decoded_copy, write_decoded_copy

PROFILES_FILE = "profiles.parquet"
EVENTS_FILE = "events.parquet"
IDENTITIES_FILE = "identities.parquet"
FRAGMENTS_FILE = "fragments.parquet"
SCHEMA_FILE = "schema.json"
MANIFEST_FILE = "manifest.json"
EVENT_RIDS_FILE = "_state/event_rids.parquet"
"""Internal to the builder: the record id of each row of ``events.parquet`` (see :mod:`openseg.profiles.build`)."""
KEPT_BUILDS = 2
#: The files point reads look rows up in by key, which :func:`publish` gives decoded copies.
LOOKUP_FILES = (PROFILES_FILE, IDENTITIES_FILE)
#: Beside ``events.parquet``, the events incremental refreshes appended since it was last written whole, one file
#: per refresh (``events.0001.parquet``, ...), each sorted as it is and with its record ids in ``_state/``.
_APPENDED_EVENTS = "events.{:04d}.parquet"
_APPENDED_RIDS = "_state/event_rids.{:04d}.parquet"
#: The namespace of a profile's primary identity: the one flagged ``primary`` in ``identityMap`` (the first
#: such namespace in map order), else the namespace of ``_profile_id`` as the map spells it, else as
#: ``_profile_id`` spells it. Fixed text over the two columns; see :func:`primary_namespace`. The lambda
#: parameters have names no XDM field or table alias of the build's queries has.
_PRIMARY_NAMESPACE_SQL = """
    coalesce(list_filter(map_entries(identityMap), lambda __entry: list_bool_or(
                 list_transform(__entry.value, lambda __identity: coalesce(__identity."primary", false))))[1].key,
             list_filter(map_keys(identityMap), lambda __key: lower(__key) = split_part(_profile_id, ':', 1))[1],
             split_part(_profile_id, ':', 1))
"""
_STAGING_PREFIX = "tmp-"


def keeps_fragments(identity_graph: str, attribute_merge: str) -> bool:
    """Whether a store keeps its fragments unmerged (``fragments.parquet``): under ``identityGraph: none`` a lookup
    merges those carrying its identity; under ``dataSetPrecedence`` the overlay ranks streamed fragments among
    them per attribute, as the next build will (``profiles/overlay.py``)."""
    return identity_graph == "none" or attribute_merge == "dataSetPrecedence"


def event_files(build: Path) -> list[Path]:
    """The files holding a build's events: ``events.parquet``, then the events incremental refreshes appended
    beside it, oldest first. Each is sorted by ``(_profile_id, timestamp, record id)``; a profile's events may
    lie in several of them, so a reader reads them all as one table (a query orders what it needs in order)."""
    return [rows for rows, _ in event_parts(build)]


def event_parts(build: Path) -> list[tuple[Path, Path]]:
    """Each of :func:`event_files` with the builder's file of its rows' record ids (:data:`EVENT_RIDS_FILE`).

    A published build never changes, and every point read of events asks (86 us a listing, 4 % of an edge call):
    the listing of a directory unchanged for :data:`_SETTLED_NS` is kept by its modification time, which any file
    added or removed since moves past it."""
    try:
        changed = os.stat(build).st_mtime_ns
    except FileNotFoundError:
        return _event_parts(build)
    if time.time_ns() - changed < _SETTLED_NS:  # may change again within the clock's tick: listed each time
        return _event_parts(build)
    return list(_settled_event_parts(build, changed))


#: How long a build directory must have been unchanged before :func:`event_parts` keeps its listing: well past the
#: file system's timestamp granularity, so a change after the listing always gives the directory a later time.
_SETTLED_NS = 1_000_000_000


@functools.lru_cache(maxsize=256)
def _settled_event_parts(build: Path, _mtime_ns: int) -> tuple[tuple[Path, Path], ...]:
    return tuple(_event_parts(build))


def _event_parts(build: Path) -> list[tuple[Path, Path]]:
    appended = sorted(build.glob(_APPENDED_EVENTS.replace("{:04d}", "[0-9][0-9][0-9][0-9]")))
    return [(build / EVENTS_FILE, build / EVENT_RIDS_FILE),
            *((path, build / _APPENDED_RIDS.format(int(path.name.split(".")[1]))) for path in appended)]


def events_source(build: Path) -> str | tuple[str, ...]:
    """The build's events as an engine reads them as one relation: ``events.parquet``'s path, or every file of
    :func:`event_files` where refreshes appended some."""
    files = tuple(str(path) for path in event_files(build))
    return files[0] if len(files) == 1 else files


def appended_event_part(build: Path, number: int) -> tuple[Path, Path]:
    """Where the ``number``-th appended events file (from 1) and its record ids are written in ``build``."""
    return build / _APPENDED_EVENTS.format(number), build / _APPENDED_RIDS.format(number)


def primary_namespace(identity_map: exp.Expr | None = None, profile_id: exp.Expr | None = None) -> exp.Expr:
    """The DuckDB expression of a profile's primary-identity namespace (``PRIMARY_NAMESPACE``, which the
    build stores in ``profiles.parquet`` so that jobs counting by namespace need not work it out).

    Args:
        identity_map: The ``identityMap`` column to read (unqualified ``identityMap`` by default).
        profile_id: The ``_profile_id`` column to read (unqualified ``_profile_id`` by default).
    """
    columns = {"identityMap": identity_map, "_profile_id": profile_id}

    def qualify(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and columns.get(node.name) is not None:
            replacement = columns[node.name]
            assert replacement is not None
            return replacement.copy()
        return node

    return exp.maybe_parse(_PRIMARY_NAMESPACE_SQL, dialect="duckdb").transform(qualify)


class StoreNotFoundError(FileNotFoundError):
    """No profile store has been built at this path."""


def builds_dir(store_dir: Path) -> Path:
    """Where the complete builds of ``store_dir`` live."""
    return store_dir.parent / f".{store_dir.name}.builds"


def new_staging_dir(store_dir: Path) -> Path:
    """A fresh, empty directory to write a build into, on the same file system as the store."""
    staging = builds_dir(store_dir) / f"{_STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, store_dir: Path) -> Path:
    """Make a complete build in ``staging`` the store at ``store_dir``, atomically, once its lookup files have their
    decoded copies (linked from the previous build where it kept the file).

    Args:
        staging: A directory from :func:`new_staging_dir` holding every store file.
        store_dir: The store path readers use.

    Returns:
        The build directory the store now points to.
    """
    _decoded_copies(staging, store_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    # Named by time among the builds (what pruning sorts by). Builds of one store are one at a time (the
    # build lock), and nothing reads a build the pointer has not named yet.
    final = staging.with_name(f"{stamp}-{uuid.uuid4().hex[:8]}")
    staging.rename(final)
    _write_pointer(store_dir, final)
    _prune(builds_dir(store_dir), keep=final)
    return final


def _write_pointer(store_dir: Path, build: Path) -> None:
    """Point ``store_dir`` at ``build``: the pointer file is written beside it and replaces it whole."""
    if store_dir.is_dir() and not store_dir.is_symlink():
        # A plain directory from the oldest layout: moved among the builds (named to sort before every real build,
        # so pruning removes it first); this one swap is not atomic.
        store_dir.rename(build.with_name(f"00000000T000000000000Z-legacy-{uuid.uuid4().hex[:8]}"))
    pointer = store_dir.parent / f".{store_dir.name}.pointer-{uuid.uuid4().hex}"
    pointer.write_text(json.dumps({"build": os.path.relpath(build, store_dir.parent)}) + "\n", encoding="utf-8")
    os.replace(pointer, store_dir)  # one file over another (or over an older openseg's symbolic link)


def _pointed(store_dir: Path) -> Path | None:
    """The build directory ``store_dir`` names now (None: nothing published there yet)."""
    try:
        text = store_dir.read_text(encoding="utf-8")
    except IsADirectoryError:  # an older openseg's symbolic link to a build, or its plain directory
        return Path(os.path.realpath(store_dir))
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        relative = json.loads(text)["build"]
    except (ValueError, KeyError, TypeError):
        raise StoreNotFoundError(f"the profile store pointer {store_dir} is not one openseg wrote") from None
    return Path(os.path.realpath(store_dir.parent / relative))


def _decoded_copies(staging: Path, store_dir: Path) -> None:
    """Give each file of :data:`LOOKUP_FILES` in ``staging`` its decoded copy: the previous build's, linked, where
    the file is the previous build's (a refresh that kept it); else written anew."""
    previous = _pointed(store_dir)
    for name in LOOKUP_FILES:
        path = staging / name
        if not path.is_file() or has_decoded_copy(path):
            continue
        earlier = previous / name if previous is not None else None
        if earlier is not None and earlier.is_file() and os.path.samefile(earlier, path) and has_decoded_copy(earlier):
            _link_or_copy(decoded_copy_path(earlier), decoded_copy_path(path))
        else:
            write_decoded_copy(path)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def share_build(build: Path, store_dir: Path, policy: dict[str, object]) -> Path:
    """Publish, as the store at ``store_dir``, the complete ``build`` of another merge policy whose rules build
    the same store: its files hard-linked into a build of this store's own (copied where the file system links
    none), its manifest naming ``policy``. The two stores then share their bytes on disk, and each is pruned and
    replaced on its own as before (a file's bytes go when its last link does).

    Returns:
        The build directory the store now points to.
    """
    staging = new_staging_dir(store_dir)
    for source in sorted(build.rglob("*")):
        target = staging / source.relative_to(build)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif source == build / MANIFEST_FILE:
            manifest = json.loads(source.read_text(encoding="utf-8"))
            target.write_text(json.dumps({**manifest, "policy": policy}, indent=1), encoding="utf-8")
        else:
            _link_or_copy(source, target)
    return publish(staging, store_dir)


def _prune(builds: Path, keep: Path) -> None:
    complete = sorted(p for p in builds.iterdir() if p.is_dir() and not p.name.startswith(_STAGING_PREFIX))
    stale = [p for p in complete if p != keep][: max(0, len(complete) - KEPT_BUILDS)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


def resolve_store(store_dir: Path | str) -> Path:
    """The build directory a store path points to now.

    Raises:
        StoreNotFoundError: If no store was built there.
    """
    resolved = _pointed(Path(store_dir))
    if resolved is None or not (resolved / MANIFEST_FILE).is_file():
        raise StoreNotFoundError(f"no profile store at {store_dir}")
    return resolved


def read_manifest(store_dir: Path | str) -> dict[str, Any]:
    """The manifest of a built store (policy, sources, statistics)."""
    with open(resolve_store(store_dir) / MANIFEST_FILE, encoding="utf-8") as handle:
        manifest: dict[str, Any] = json.load(handle)
    return manifest


# --- schema.json ---------------------------------------------------------------------------------
# Primitive types are written as pyarrow's own names; nested types as objects, so the PQL checker can
# read the file without pyarrow if it needs to.


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    """A schema as a JSON-ready list of ``{"name", "type"}`` fields."""
    return [{"name": f.name, "type": _type_to_json(f.type)} for f in schema]


def schema_from_json(fields: list[dict[str, Any]]) -> pa.Schema:
    """Inverse of :func:`schema_to_json`."""
    return pa.schema([pa.field(f["name"], _type_from_json(f["type"])) for f in fields])


def _type_to_json(data_type: pa.DataType) -> Any:
    if pa.types.is_struct(data_type):
        children = [data_type.field(i) for i in range(data_type.num_fields)]
        return {"struct": [{"name": c.name, "type": _type_to_json(c.type)} for c in children]}
    if pa.types.is_map(data_type):
        return {"map": {"key": _type_to_json(data_type.key_type), "value": _type_to_json(data_type.item_type)}}
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return {"list": _type_to_json(data_type.value_type)}
    if pa.types.is_decimal(data_type):
        return {"decimal": {"precision": data_type.precision, "scale": data_type.scale}}
    if pa.types.is_timestamp(data_type):
        return {"timestamp": {"unit": data_type.unit, "tz": data_type.tz}}
    return str(data_type)


def _type_from_json(value: Any) -> pa.DataType:
    if isinstance(value, str):
        return pa.type_for_alias(value)
    if "struct" in value:
        return pa.struct([pa.field(c["name"], _type_from_json(c["type"])) for c in value["struct"]])
    if "map" in value:
        return pa.map_(_type_from_json(value["map"]["key"]), _type_from_json(value["map"]["value"]))
    if "list" in value:
        return pa.list_(_type_from_json(value["list"]))
    if "decimal" in value:
        return pa.decimal128(value["decimal"]["precision"], value["decimal"]["scale"])
    if "timestamp" in value:
        return pa.timestamp(value["timestamp"]["unit"], value["timestamp"]["tz"])
    raise ValueError(f"unknown type in schema.json: {value!r}")


def write_schema(path: Path, profile: pa.Schema, event: pa.Schema) -> None:
    """Write ``schema.json``: the Arrow schemas of ``profiles.parquet`` and ``events.parquet``."""
    document = {"profile": schema_to_json(profile), "event": schema_to_json(event)}
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")


def read_schema(store_dir: Path | str) -> dict[str, pa.Schema]:
    """The union schemas of a built store: ``{"profile": ..., "event": ...}``."""
    with open(resolve_store(store_dir) / SCHEMA_FILE, encoding="utf-8") as handle:
        document = json.load(handle)
    return {kind: schema_from_json(fields) for kind, fields in document.items()}
