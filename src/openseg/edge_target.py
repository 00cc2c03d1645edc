"""The edge's ``EdgeStores`` (``streaming/edge.py``) on the real stores: datastreams and merge policies from the
metadata store; profiles, events and membership as streaming segmentation reads them
(``streaming_target.StoresSegmentationTarget``), so that an edge answer and the streamer's agree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from openseg.profiles.overlay import Part
from openseg.segmentation.streaming import ContinuousDefinition, Pair
from openseg.store.datastreams import SqlAlchemyDatastreams
from openseg.streaming.datastreams import Datastream
from openseg.streaming.edge import is_synchronous
from openseg.streaming.model import DatasetInfo
from openseg.streaming.ports import BaseProfile
from openseg.streaming_target import StoresSegmentationTarget

if TYPE_CHECKING:
    from openseg.container import Services


class StoresEdgeTarget:
    """Args: services: The container (settings, metadata store)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.datastreams = SqlAlchemyDatastreams(services.db)
        self.target = StoresSegmentationTarget(services)

    def datastream(self, org_id: str, sandbox_id: str | None, datastream_id: str) -> Datastream | None:
        return self.target.kept(("datastream", org_id, sandbox_id or "", datastream_id),
                                lambda: self.datastreams.get(org_id, sandbox_id, datastream_id))

    def dataset(self, sandbox_id: str, dataset_id: str) -> DatasetInfo | None:
        return self.target.kept(("dataset", sandbox_id, dataset_id),
                                lambda: self.datastreams.dataset(sandbox_id, dataset_id))

    def active_on_edge(self, sandbox_id: str, policy_id: str) -> bool:
        policies = self.target.kept(("policies", sandbox_id), lambda: self.datastreams.policies(sandbox_id))
        return any(p.id == policy_id and p.is_active_on_edge for p in policies)

    def pinned(self) -> AbstractContextManager[None]:
        return self.target.pinned()

    def synchronous(self, sandbox_id: str, policy_id: str) -> list[ContinuousDefinition]:
        return self.target.kept(("synchronous", sandbox_id, policy_id), lambda: self._synchronous(sandbox_id, policy_id))

    def _synchronous(self, sandbox_id: str, policy_id: str) -> list[ContinuousDefinition]:
        with self.services.uow() as uow:
            definitions = uow.segment_definitions.in_sandbox(sandbox_id)
            uow.commit()
        return [ContinuousDefinition(d.id, d.version, d.merge_policy_id, d.pql,
                                     tuple(str(x) for x in d.dependencies or ()))
                for d in definitions if d.merge_policy_id == policy_id and is_synchronous(d.evaluation_info)]

    def watermark(self, sandbox_id: str, policy_id: str) -> int | None:
        return self.target.watermark(sandbox_id, policy_id)

    def linked(self, sandbox_id: str, policy_id: str) -> bool:
        return self.target.linked(sandbox_id, policy_id)

    def precedence(self, sandbox_id: str, policy_id: str) -> tuple[str, ...]:
        return self.target.precedence(sandbox_id, policy_id)

    def part(self, sandbox_id: str, policy_id: str, namespace: str, identity: str) -> Part | None:
        return self.target.part(sandbox_id, policy_id, namespace, identity)

    def is_profile_source(self, sandbox_id: str, dataset_id: str) -> bool:
        return self.target.is_profile_source(sandbox_id, dataset_id)

    def profiles(self, sandbox_id: str, policy_id: str, profile_ids: Sequence[str],
                 fields: Collection[str] | None = None, since: dt.datetime | None = None) -> dict[str, BaseProfile]:
        return self.target.profiles(sandbox_id, policy_id, profile_ids, fields, since)

    def membership(self, sandbox_id: str, policy_id: str, profile_id: str) -> Mapping[str, Pair]:
        store, state = self.target.membership_to_read(sandbox_id, policy_id)
        return store.lookup(state, [profile_id]).get(profile_id, {})
