"""Datastreams: what the Edge Network's ``/ee/v2`` routes are configured by (an openseg extension).

In AEP a datastream is made in the Data Collection UI: it names the sandbox, the events dataset that the
Edge Network writes to, and (for edge segmentation and profile lookups) a merge policy that is "Active on
Edge" (``help/segmentation/methods/edge-segmentation.md``). AEP publishes no REST shape for it, so openseg
serves a small one, ``/data/core/edge/datastreams``, scoped by org and sandbox like every other resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from openseg.errors import BadRequest, NotFound, OpensegError
from openseg.streaming.model import DatasetInfo

#: The longest name a datastream keeps (the store's column).
MAX_NAME = 512


class NotActiveOnEdge(OpensegError):
    """The merge policy a datastream would use is not active on edge: AEP evaluates edge segments and answers
    profile lookups only through such a policy (a configuration error, 422, as AEP's ``ConfigurationError``)."""

    status = 422
    title = "Unprocessable entity"


@dataclass(frozen=True)
class Datastream:
    """A datastream: ``/ee/v2/...?dataStreamId=id`` writes events to ``dataset_id`` and evaluates edge segments
    through ``merge_policy_id``, in the datastream's sandbox."""

    id: str
    org_id: str
    sandbox_id: str
    sandbox_name: str
    name: str
    description: str | None
    dataset_id: str
    merge_policy_id: str
    created: int
    updated: int


@dataclass(frozen=True)
class EdgePolicy:
    """What a datastream needs of a merge policy."""

    id: str
    is_default: bool
    is_active_on_edge: bool


class DatastreamRepository(Protocol):
    def add(self, datastream: Datastream) -> None: ...

    def get(self, org_id: str, sandbox_id: str | None, datastream_id: str) -> Datastream | None:
        """The datastream of the org and sandbox (any sandbox of the org when None; None for another
        tenant's)."""
        ...

    def in_sandbox(self, org_id: str, sandbox_id: str) -> list[Datastream]:
        """The sandbox's datastreams, oldest first."""
        ...


class EdgeConfiguration(Protocol):
    """The sandbox's datasets and merge policies, as a datastream names them."""

    def dataset(self, sandbox_id: str, dataset_id: str) -> DatasetInfo | None: ...

    def policies(self, sandbox_id: str) -> Sequence[EdgePolicy]: ...


def _text(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{field}' is required and must be a non-empty string", field=field)
    if len(value) > MAX_NAME:
        raise BadRequest(f"'{field}' is {len(value)} characters long; at most {MAX_NAME} are allowed", field=field)
    return value.strip()


def edge_policy(config: EdgeConfiguration, sandbox_id: str, policy_id: str | None) -> EdgePolicy:
    """The merge policy a datastream uses: the one named, else the sandbox's policy active on edge (its default
    one when several are).

    Raises:
        BadRequest: ``mergePolicyId`` names no policy of the sandbox.
        NotActiveOnEdge: the policy named is not active on edge, or none of the sandbox's is.
    """
    policies = list(config.policies(sandbox_id))
    if policy_id is not None:
        found = next((p for p in policies if p.id == policy_id), None)
        if found is None:
            raise BadRequest(f"merge policy '{policy_id}' does not exist in this sandbox", field="mergePolicyId")
        if not found.is_active_on_edge:
            raise NotActiveOnEdge(f"merge policy '{policy_id}' is not active on edge: edge segmentation needs a "
                                  "merge policy with isActiveOnEdge: true", field="mergePolicyId")
        return found
    active = sorted((p for p in policies if p.is_active_on_edge), key=lambda p: (not p.is_default, p.id))
    if not active:
        raise NotActiveOnEdge("no merge policy of this sandbox is active on edge: create one with "
                              "isActiveOnEdge: true, or name one in 'mergePolicyId'", field="mergePolicyId")
    return active[0]


def create_datastream(repository: DatastreamRepository, config: EdgeConfiguration, org_id: str, sandbox_id: str,
                      sandbox_name: str, body: dict[str, Any], *, datastream_id: str, now: int) -> Datastream:
    """Create a datastream from ``{"name", "description"?, "datasetId", "mergePolicyId"?}``.

    Raises:
        BadRequest: naming the field: no name, a dataset that is not an ExperienceEvent dataset of the sandbox,
            a merge policy the sandbox does not have.
        NotActiveOnEdge: the merge policy (named, or the sandbox's) is not active on edge.
    """
    name = _text(body, "name", required=True)
    assert name is not None
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise BadRequest("'description' must be a string", field="description")
    dataset_id = _text(body, "datasetId", required=True)
    assert dataset_id is not None
    dataset = config.dataset(sandbox_id, dataset_id)
    if dataset is None:
        raise BadRequest(f"dataset '{dataset_id}' does not exist in this sandbox", field="datasetId")
    if dataset.kind != "event":
        raise BadRequest(f"dataset '{dataset_id}' is not an ExperienceEvent dataset: the Edge Network writes "
                         "events", field="datasetId")
    policy = edge_policy(config, sandbox_id, _text(body, "mergePolicyId", required=False))
    datastream = Datastream(id=datastream_id, org_id=org_id, sandbox_id=sandbox_id, sandbox_name=sandbox_name,
                            name=name,
                            description=description, dataset_id=dataset_id, merge_policy_id=policy.id,
                            created=now, updated=now)
    repository.add(datastream)
    return datastream


def get_datastream(repository: DatastreamRepository, org_id: str, sandbox_id: str, datastream_id: str) -> Datastream:
    found = repository.get(org_id, sandbox_id, datastream_id)
    if found is None:
        raise NotFound.of("datastream", datastream_id)
    return found


def datastream_json(datastream: Datastream) -> dict[str, Any]:
    return {"id": datastream.id, "name": datastream.name, "description": datastream.description,
            "imsOrgId": datastream.org_id, "sandboxId": datastream.sandbox_id, "sandboxName": datastream.sandbox_name,
            "datasetId": datastream.dataset_id,
            "mergePolicyId": datastream.merge_policy_id, "created": datastream.created,
            "updated": datastream.updated}
