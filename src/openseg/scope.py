"""The tenancy boundary: the org and sandbox every resource operation is confined to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from openseg.errors import NotFound

#: A stored resource with ``org_id`` and ``sandbox_id`` columns.
Owned = TypeVar("Owned")


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
        found = session.get(model, resource_id)
        if found is None or found.org_id != self.org_id or found.sandbox_id != self.sandbox_id:  # type: ignore[attr-defined]
            raise NotFound.of(resource, resource_id)
        return found
