"""Orgs, sandboxes and credentials: who may call, and where their resources live."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openseg.clock import new_uuid, now_ms
from openseg.profiles.model import MergePolicy
from openseg.store.models import Credential, Org, Sandbox
from openseg.store.models import MergePolicy as MergePolicyRow

DEFAULT_SANDBOX = "prod"


def hash_secret(value: str) -> str:
    """Keys and tokens are random 256-bit strings, so an unsalted SHA-256 is a safe digest for lookups."""
    return hashlib.sha256(value.encode()).hexdigest()


#: Separates a sandbox-scoped access token's random part from the sandbox it is scoped to: the random part
#: (``secrets.token_urlsafe``) holds no dot, so the first dot starts the sandbox name. The stored hash covers
#: the whole token, so the scope cannot be changed without making the token unknown. (The scope lives in the
#: token rather than in a column so that no migration is needed; a ``credentials.sandbox`` column would do
#: the same.)
_SCOPE_SEPARATOR = "."


@dataclass(frozen=True)
class IssuedCredentials:
    api_key: str
    access_token: str
    org_id: str
    sandbox_name: str
    sandbox_only: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "apiKey": self.api_key,
            "accessToken": self.access_token,
            "imsOrgId": self.org_id,
            "sandboxName": self.sandbox_name,
            "openseg:sandboxOnly": self.sandbox_only,
        }


def ensure_org(session: Session, org_id: str) -> Org:
    """Create the org (with its default ``prod`` sandbox) if it does not exist yet."""
    org = session.get(Org, org_id)
    if org is None:
        org = Org(id=org_id, created=now_ms())
        session.add(org)
        session.flush()
        create_sandbox(session, org_id, DEFAULT_SANDBOX, title="Production", type_="production", default=True)
    return org


def create_sandbox(
    session: Session, org_id: str, name: str, *, title: str | None = None, type_: str = "development",
    default: bool = False,
) -> Sandbox:
    now = now_ms()
    sandbox = Sandbox(
        id=new_uuid(), org_id=org_id, name=name, title=title or name, type=type_, is_default=default,
        state="active", created=now, updated=now,
    )
    session.add(sandbox)
    session.flush()
    # The sandbox's default merge policy is born with it, in the same transaction: created lazily on first need
    # instead, the worker's first profile build and a concurrent request each found none and each added one,
    # leaving two defaults (lookups read one, definitions were bound to the other).
    policy = MergePolicy.default_for(org_id, sandbox.id, policy_id=new_uuid(), now=now)
    session.add(MergePolicyRow(**asdict(policy)))
    session.flush()
    return sandbox


def find_sandbox(session: Session, org_id: str, name: str) -> Sandbox | None:
    return session.scalars(select(Sandbox).where(Sandbox.org_id == org_id, Sandbox.name == name)).first()


def list_sandboxes(session: Session, org_id: str) -> list[Sandbox]:
    return list(session.scalars(select(Sandbox).where(Sandbox.org_id == org_id).order_by(Sandbox.created)))


def issue_credentials(session: Session, org_id: str, sandbox_name: str = DEFAULT_SANDBOX, *,
                      sandbox_only: bool = False) -> IssuedCredentials:
    """Create the org and sandbox when missing, and a new API key + access token.

    Args:
        session: the metadata-store session.
        org_id: the IMS org the credentials belong to.
        sandbox_name: the sandbox to create when missing (and to scope to with ``sandbox_only``).
        sandbox_only: scope the credentials to ``sandbox_name``: any other sandbox of the org answers 403.
            Without it they reach every sandbox of the org, as an AEP integration with access to all does.

    Returns:
        The API key and access token (shown once: only their hashes are stored).
    """
    ensure_org(session, org_id)
    if find_sandbox(session, org_id, sandbox_name) is None:
        create_sandbox(session, org_id, sandbox_name)
    api_key = "osk_" + secrets.token_urlsafe(24)
    token = "ost_" + secrets.token_urlsafe(32)
    if sandbox_only:
        token += _SCOPE_SEPARATOR + sandbox_name
    session.add(
        Credential(
            id=new_uuid(), org_id=org_id, api_key_hash=hash_secret(api_key), token_hash=hash_secret(token),
            created=now_ms(),
        )
    )
    session.flush()
    return IssuedCredentials(api_key=api_key, access_token=token, org_id=org_id, sandbox_name=sandbox_name,
                             sandbox_only=sandbox_only)


def credential_for_token(session: Session, token: str) -> Credential | None:
    return session.scalars(select(Credential).where(Credential.token_hash == hash_secret(token))).first()


def token_sandbox(token: str) -> str | None:
    """The sandbox an access token is scoped to, or None for an org-wide token (call once the token is known)."""
    _, separator, sandbox = token.partition(_SCOPE_SEPARATOR)
    return sandbox if separator else None
