"""Orgs, sandboxes and credentials: who may call, and where their resources live."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from openseg.clock import new_uuid, now_ms
from openseg.store.models import Credential, Org, Sandbox

DEFAULT_SANDBOX = "prod"


def hash_secret(value: str) -> str:
    """Keys and tokens are random 256-bit strings, so an unsalted SHA-256 is a safe digest for lookups."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedCredentials:
    api_key: str
    access_token: str
    org_id: str
    sandbox_name: str

    def to_json(self) -> dict[str, str]:
        return {
            "apiKey": self.api_key,
            "accessToken": self.access_token,
            "imsOrgId": self.org_id,
            "sandboxName": self.sandbox_name,
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
    return sandbox


def find_sandbox(session: Session, org_id: str, name: str) -> Sandbox | None:
    return session.scalars(select(Sandbox).where(Sandbox.org_id == org_id, Sandbox.name == name)).first()


def list_sandboxes(session: Session, org_id: str) -> list[Sandbox]:
    return list(session.scalars(select(Sandbox).where(Sandbox.org_id == org_id).order_by(Sandbox.created)))


def issue_credentials(session: Session, org_id: str, sandbox_name: str = DEFAULT_SANDBOX) -> IssuedCredentials:
    """Create the org and sandbox when missing, and a new API key + access token for the org."""
    ensure_org(session, org_id)
    if find_sandbox(session, org_id, sandbox_name) is None:
        create_sandbox(session, org_id, sandbox_name)
    api_key = "osk_" + secrets.token_urlsafe(24)
    token = "ost_" + secrets.token_urlsafe(32)
    session.add(
        Credential(
            id=new_uuid(), org_id=org_id, api_key_hash=hash_secret(api_key), token_hash=hash_secret(token),
            created=now_ms(),
        )
    )
    session.flush()
    return IssuedCredentials(api_key=api_key, access_token=token, org_id=org_id, sandbox_name=sandbox_name)


def credential_for_token(session: Session, token: str) -> Credential | None:
    return session.scalars(select(Credential).where(Credential.token_hash == hash_secret(token))).first()
