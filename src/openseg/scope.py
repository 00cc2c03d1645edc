"""The tenancy boundary: the org and sandbox every resource operation is confined to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from openseg.errors import NotFound


class Tenancy(Protocol):
    """An org and a sandbox: a scope, or a resource that lives in one."""

    @property
    def org_id(self) -> str: ...

    @property
    def sandbox_id(self) -> str: ...


#: A stored resource with ``org_id`` and ``sandbox_id``.
Owned = TypeVar("Owned")
Resource = TypeVar("Resource", bound=Tenancy)


def in_scope(found: Resource | None, scope: Tenancy, resource: str, resource_id: object) -> Resource:
    """``found`` when it lives in ``scope``'s org and sandbox; otherwise 404, so that another tenant's resource
    is as absent as one that never existed."""
    if found is None or found.org_id != scope.org_id or found.sandbox_id != scope.sandbox_id:
        raise NotFound.of(resource, resource_id)
    return found


class Session(Protocol):
    """What :meth:`Scope.get` needs of a metadata-store session (a SQLAlchemy session has it)."""

    def get(self, entity: type[Owned], ident: Any, /) -> Owned | None: ...


@dataclass(frozen=True)
class Scope:
    """The org and sandbox every resource operation is confined to."""

    org_id: str
    sandbox_id: str

    def get(self, session: Session, model: type[Owned], resource_id: object, resource: str) -> Owned:
        """The resource with this id, or 404 when it does not exist here (another org or sandbox alike)."""
        found: Any = session.get(model, resource_id)
        return in_scope(found, self, resource, resource_id)  # type: ignore[no-any-return]
