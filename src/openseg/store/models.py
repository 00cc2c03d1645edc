"""Metadata tables (SQLAlchemy 2). Schema changes go through Alembic migrations in ``migrations/``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Org(Base):
    __tablename__ = "orgs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created: Mapped[int] = mapped_column(BigInteger)


class Sandbox(Base):
    __tablename__ = "sandboxes"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(32))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(32), default="active")
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class Credential(Base):
    """An API key and its access token, both stored as SHA-256 hashes."""

    __tablename__ = "credentials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[int] = mapped_column(BigInteger)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    schema_ref: Mapped[dict[str, Any]] = mapped_column(JSON)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    file_description: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    aspect: Mapped[str | None] = mapped_column(String(64), nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[str] = mapped_column(String(16), default="1.0.0")
    last_batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_batch_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    input_format: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    origin: Mapped[str] = mapped_column(String(32), default="ingestion")
    records_read: Mapped[int] = mapped_column(BigInteger, default=0)
    records_written: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    started: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    completed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Bytes uploaded, records that failed, and what Catalog's PUT / PATCH keep verbatim (tags, externalId,
    # availableDates, replay...). Null on batches ingested before revision 0006.
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_records: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tags: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class StagedFile(Base):
    """A file uploaded to a batch that has not been completed yet."""

    __tablename__ = "staged_files"
    __table_args__ = (UniqueConstraint("batch_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    path: Mapped[str] = mapped_column(Text)
    length: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[int] = mapped_column(BigInteger)


class DataFile(Base):
    """A Parquet file of a successful batch in the lake, served by Data Access."""

    __tablename__ = "data_files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[str] = mapped_column(String(32), index=True)
    sandbox_id: Mapped[str] = mapped_column(String(36))
    org_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(512))
    path: Mapped[str] = mapped_column(Text)
    length: Mapped[int] = mapped_column(BigInteger)
    records: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[int] = mapped_column(BigInteger)


class WorkItem(Base):
    """A unit of queued work (batch processing, segment jobs, exports...) taken by a worker."""

    __tablename__ = "work_items"
    __table_args__ = (Index("ix_work_items_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    ref_id: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class MergePolicy(Base):
    __tablename__ = "merge_policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    schema_name: Mapped[str] = mapped_column(String(128))
    identity_graph: Mapped[str] = mapped_column(String(16))
    attribute_merge: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active_on_edge: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class ProfileStore(Base):
    """The merged profile store built for one merge policy, and the membership it currently holds."""

    __tablename__ = "profile_stores"

    merge_policy_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sandbox_id: Mapped[str] = mapped_column(String(36), index=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    policy_version: Mapped[int] = mapped_column(Integer, default=0)
    built_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    membership_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    membership_job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    stream_watermark: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class SegmentDefinition(Base):
    __tablename__ = "segment_definitions"
    __table_args__ = (UniqueConstraint("sandbox_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    expression: Mapped[dict[str, Any]] = mapped_column(JSON)
    pql: Mapped[str] = mapped_column(Text)
    schema_name: Mapped[str] = mapped_column(String(128))
    merge_policy_id: Mapped[str] = mapped_column(String(36), index=True)
    ttl_in_days: Mapped[int] = mapped_column(Integer, default=30)
    evaluation_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dependencies: Mapped[list[Any]] = mapped_column(JSON, default=list)
    lifecycle_state: Mapped[str] = mapped_column(String(16), default="published")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    payload_schema: Mapped[str | None] = mapped_column(Text, nullable=True)
    streaming_opt_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SegmentDefinitionVersion(Base):
    __tablename__ = "segment_definition_versions"

    definition_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    expression: Mapped[dict[str, Any]] = mapped_column(JSON)
    pql: Mapped[str] = mapped_column(Text)
    merge_policy_id: Mapped[str] = mapped_column(String(36))
    created: Mapped[int] = mapped_column(BigInteger)


class SegmentJob(Base):
    __tablename__ = "segment_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    compute_job_id: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    segments: Mapped[list[Any]] = mapped_column(JSON)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    origin: Mapped[str] = mapped_column(String(64), default="api")
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    type: Mapped[str] = mapped_column(String(32))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    schedule: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    #: When the current cron and state took effect: fires before it are not owed.
    effective_from: Mapped[int] = mapped_column(BigInteger)
    last_fire: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_run: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    next_run: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class ExportJob(Base):
    __tablename__ = "export_jobs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    destination: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    origin: Mapped[str] = mapped_column(String(64), default="api")
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class Query(Base):
    """A Query Service query and, once run, where its result rows are kept."""

    __tablename__ = "queries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    sql: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    row_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    result_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    elapsed_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    #: The query definition as accepted (AEP's ``request``: dbName, sql, name, description).
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The credentials that submitted it (openseg has no users: AEP's ``userId`` is the credential's id).
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Soft-deleted (``PATCH {"op": "soft_delete"}``): left out of the list, still readable by id.
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Preview(Base):
    """A segment preview and its estimate (UPS ``/preview``, ``/estimate``)."""

    __tablename__ = "previews"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class StreamingConnection(Base):
    """A Flow Service streaming connection: an inlet (64 hex characters) bound to a dataset."""

    __tablename__ = "streaming_connections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    sandbox_id: Mapped[str] = mapped_column(ForeignKey("sandboxes.id"), index=True)
    inlet_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    dataset_id: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(512))
    data_type: Mapped[str] = mapped_column(String(16))
    authentication_required: Mapped[bool] = mapped_column(Boolean, default=False)
    etag: Mapped[str] = mapped_column(String(64))
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class StreamOffset(Base):
    """How far a consumer of a stream log has got (``consumer`` names the consumer and the log); written in
    the same transaction as what the consumer applied, so nothing is applied twice."""

    __tablename__ = "stream_offsets"

    consumer: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class MetadataGeneration(Base):
    """One row (``id`` 1): a counter raised by every commit that changes lasting metadata
    (``db.VOLATILE_TABLES`` lists what does not count), so a process may keep what it read until it moves."""

    __tablename__ = "metadata_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)
