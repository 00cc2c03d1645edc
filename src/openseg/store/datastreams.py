"""The metadata store's side of the edge: datastreams (``streaming.datastreams.DatastreamRepository``) and the
datasets and merge policies they name (``EdgeConfiguration``). Each call is its own short transaction."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from openseg.catalog.service import dataset_kind
from openseg.store.db import Database
from openseg.store.models import Base, Dataset, Sandbox
from openseg.store.models import MergePolicy as MergePolicyRow
from openseg.streaming.datastreams import Datastream, EdgePolicy
from openseg.streaming.model import DatasetInfo


class DatastreamRow(Base):
    """A datastream (migration 0009): the sandbox, events dataset and merge policy of ``/ee/v2`` requests."""

    __tablename__ = "datastreams"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128))
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    dataset_id: Mapped[str] = mapped_column(String(32))
    merge_policy_id: Mapped[str] = mapped_column(String(36))
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


def _datastream(row: DatastreamRow, sandbox_name: str) -> Datastream:
    return Datastream(id=row.id, org_id=row.org_id, sandbox_id=row.sandbox_id, sandbox_name=sandbox_name, name=row.name,
                      description=row.description, dataset_id=row.dataset_id, merge_policy_id=row.merge_policy_id,
                      created=row.created, updated=row.updated)


class SqlAlchemyDatastreams:
    """Datastreams, and the datasets and merge policies they name, on the metadata store."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, datastream: Datastream) -> None:
        with self.db.session() as session:
            session.add(DatastreamRow(
                id=datastream.id, org_id=datastream.org_id, sandbox_id=datastream.sandbox_id, name=datastream.name,
                description=datastream.description, dataset_id=datastream.dataset_id,
                merge_policy_id=datastream.merge_policy_id, created=datastream.created, updated=datastream.updated))

    def get(self, org_id: str, sandbox_id: str | None, datastream_id: str) -> Datastream | None:
        with self.db.session() as session:
            found = session.execute(select(DatastreamRow, Sandbox.name).join(Sandbox, Sandbox.id == DatastreamRow.sandbox_id)
                                    .where(DatastreamRow.id == datastream_id)).first()
            if found is None or found[0].org_id != org_id or sandbox_id not in (None, found[0].sandbox_id):
                return None
            return _datastream(found[0], found[1])

    def in_sandbox(self, org_id: str, sandbox_id: str) -> list[Datastream]:
        with self.db.session() as session:
            rows = session.execute(select(DatastreamRow, Sandbox.name).join(Sandbox, Sandbox.id == DatastreamRow.sandbox_id)
                                   .where(DatastreamRow.org_id == org_id, DatastreamRow.sandbox_id == sandbox_id)
                                   .order_by(DatastreamRow.created, DatastreamRow.id))
            return [_datastream(row, name) for row, name in rows]

    def dataset(self, sandbox_id: str, dataset_id: str) -> DatasetInfo | None:
        with self.db.session() as session:
            row = session.get(Dataset, dataset_id)
            return DatasetInfo(row.id, dataset_kind(row)) if row is not None and row.sandbox_id == sandbox_id else None

    def policies(self, sandbox_id: str) -> list[EdgePolicy]:
        with self.db.session() as session:
            rows = session.scalars(select(MergePolicyRow).where(MergePolicyRow.sandbox_id == sandbox_id)
                                   .order_by(MergePolicyRow.created, MergePolicyRow.id))
            return [EdgePolicy(row.id, row.is_default, row.is_active_on_edge) for row in rows]
