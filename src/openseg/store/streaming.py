"""The metadata store's side of streaming: connections (``streaming.ports.ConnectionRepository``) and the
datasets messages name (``DatasetLookup``). Each call is its own short transaction; inlets are cached by
id (a connection never changes once created), dataset kinds for a few seconds (a dataset may be deleted)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import or_, select

from openseg.catalog.service import dataset_kind
from openseg.store.db import Database
from openseg.store.models import Dataset, Sandbox, StreamingConnection
from openseg.streaming.model import Connection, DatasetInfo

#: How long a dataset's kind is trusted without reading it again.
DATASET_SECONDS = 5.0


def _connection(row: StreamingConnection, sandbox_name: str) -> Connection:
    return Connection(
        id=row.id, org_id=row.org_id, sandbox_id=row.sandbox_id, sandbox_name=sandbox_name, inlet_id=row.inlet_id,
        name=row.name, description=row.description, dataset_id=row.dataset_id, source_id=row.source_id,
        data_type=row.data_type, authentication_required=row.authentication_required, etag=row.etag,
        created=row.created, updated=row.updated,
    )


class SqlAlchemyStreamingStore:
    """Connections and datasets for streaming, on the metadata store."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._inlets: dict[str, Connection] = {}
        self._datasets: dict[tuple[str, str], tuple[float, DatasetInfo | None]] = {}
        self._lock = threading.Lock()

    def add(self, connection: Connection) -> None:
        with self.db.session() as session:
            session.add(StreamingConnection(
                id=connection.id, org_id=connection.org_id, sandbox_id=connection.sandbox_id,
                inlet_id=connection.inlet_id, name=connection.name, description=connection.description,
                dataset_id=connection.dataset_id, source_id=connection.source_id, data_type=connection.data_type,
                authentication_required=connection.authentication_required, etag=connection.etag,
                created=connection.created, updated=connection.updated,
            ))

    def _find(self, *conditions: object) -> Connection | None:
        with self.db.session() as session:
            found = session.execute(
                select(StreamingConnection, Sandbox.name).join(Sandbox, Sandbox.id == StreamingConnection.sandbox_id)
                .where(*conditions)  # type: ignore[arg-type]
            ).first()
            return None if found is None else _connection(found[0], found[1])

    def get(self, org_id: str, sandbox_id: str, connection_id: str) -> Connection | None:
        return self._find(StreamingConnection.id == connection_id, StreamingConnection.org_id == org_id,
                          StreamingConnection.sandbox_id == sandbox_id)

    def by_inlet(self, inlet_or_connection_id: str) -> Connection | None:
        with self._lock:
            cached = self._inlets.get(inlet_or_connection_id)
        if cached is not None:
            return cached
        found = self._find(or_(StreamingConnection.inlet_id == inlet_or_connection_id,
                               StreamingConnection.id == inlet_or_connection_id))
        if found is not None:
            with self._lock:
                self._inlets[inlet_or_connection_id] = found
        return found

    def kept_inlet(self, inlet_or_connection_id: str) -> Connection | None:
        """The inlet if this store has read it already, else None; never reads the database."""
        with self._lock:
            return self._inlets.get(inlet_or_connection_id)

    def kept(self) -> KeptDatasets:
        """The datasets as far as this store has them fresh (:class:`KeptDatasets`)."""
        return KeptDatasets(self)

    def kept_dataset(self, sandbox_id: str, dataset_id: str) -> DatasetInfo | None:
        """:meth:`dataset` from what this store keeps, never from the database.

        Raises:
            NotKept: the dataset is not kept, or was kept too long ago.
        """
        with self._lock:
            cached = self._datasets.get((sandbox_id, dataset_id))
        if cached is None or cached[0] <= time.monotonic():
            raise NotKept(f"dataset '{dataset_id}' of sandbox '{sandbox_id}'")
        return cached[1]

    def dataset(self, sandbox_id: str, dataset_id: str) -> DatasetInfo | None:
        key = (sandbox_id, dataset_id)
        now = time.monotonic()
        with self._lock:
            cached = self._datasets.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.db.session() as session:
            row = session.get(Dataset, dataset_id)
            info = DatasetInfo(row.id, dataset_kind(row)) if row is not None and row.sandbox_id == sandbox_id else None
        with self._lock:
            self._datasets[key] = (now + DATASET_SECONDS, info)
        return info


class NotKept(LookupError):
    """A lookup that only reads what a store keeps found nothing fresh: the caller reads through the store itself
    (where it may wait on the database)."""


class KeptDatasets:
    """A ``DatasetLookup`` over the datasets a :class:`SqlAlchemyStreamingStore` keeps: it never waits on the
    database, so an event loop may call it (``api/collection.py``); a dataset not kept raises :class:`NotKept`."""

    def __init__(self, store: SqlAlchemyStreamingStore) -> None:
        self.store = store

    def dataset(self, sandbox_id: str, dataset_id: str) -> DatasetInfo | None:
        return self.store.kept_dataset(sandbox_id, dataset_id)
