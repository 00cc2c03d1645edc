"""Request context: the caller's org and sandbox (AEP gateway headers), and the services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, RootModel, ValidationError

from openseg.api.json_input import parse_json
from openseg.api.validation import bad_request
from openseg.container import Services
from openseg.errors import BadRequest, Forbidden, NotFound, OpensegError, Unauthorized
from openseg.store import tenancy
from openseg.store.tenancy import hash_secret

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class SandboxRef:
    id: str
    name: str
    type: str
    default: bool

    def to_json(self) -> dict[str, Any]:
        """The ``sandbox`` object AEP puts on schedules, definitions and jobs."""
        return {"sandboxId": self.id, "sandboxName": self.name, "type": self.type, "default": self.default}


@dataclass(frozen=True)
class Caller:
    org_id: str
    #: The one sandbox the credentials may use, or None for credentials that reach every sandbox of the org.
    sandbox_only: str | None = None
    #: The id of the credentials used (not a secret): who submitted a query (the Query Service's ``userId``).
    credential_id: str | None = None


class SandboxForbidden(OpensegError):
    """Credentials scoped to one sandbox used in another: a 403 in AEP's error body (not the gateway's, which
    is about the key and org)."""

    status = 403
    title = "Forbidden"


@dataclass(frozen=True)
class Tenant:
    """An authenticated caller inside one sandbox: every resource lookup is scoped by both."""

    org_id: str
    sandbox: SandboxRef
    credential_id: str | None = None


async def services(request: Request) -> Services:
    # async: FastAPI runs a plain dependency in its thread pool, a hop every request would pay for nothing.
    return request.app.state.services  # type: ignore[no-any-return]


def caller(request: Request, svc: Services = Depends(services)) -> Caller:
    """Authenticate the AEP gateway headers: bearer token, API key and org."""
    return _authenticate(request, svc)


def tenant(request: Request, svc: Services = Depends(services)) -> Tenant:
    """The authenticated caller's sandbox from ``x-sandbox-name`` (absent means the default ``prod``, as in
    AEP). Credentials and sandboxes are kept while no commit changes lasting metadata (``Services.lasting``):
    a status poll is mostly this, and costs one small query then."""
    name = request.headers.get("x-sandbox-name") or tenancy.DEFAULT_SANDBOX
    who = _authenticate(request, svc)
    if who.sandbox_only is not None and who.sandbox_only != name:
        raise SandboxForbidden(f"these credentials are scoped to sandbox '{who.sandbox_only}': they cannot "
                               f"access sandbox '{name}'", field="x-sandbox-name")
    ref = svc.lasting(("sandbox", who.org_id, name), lambda: _sandbox(svc, who.org_id, name))
    if ref is None:
        raise NotFound(f"sandbox '{name}' does not exist in org '{who.org_id}'", field="x-sandbox-name")
    return Tenant(org_id=who.org_id, sandbox=ref, credential_id=who.credential_id)


@dataclass(frozen=True)
class _Credential:
    """What authentication reads of a credential (never its secrets, only their digests)."""

    id: str
    org_id: str
    api_key_hash: str


def _credential(svc: Services, token: str) -> _Credential | None:
    with svc.db.session() as session:
        found = tenancy.credential_for_token(session, token)
        return None if found is None else _Credential(found.id, found.org_id, found.api_key_hash)


def _sandbox(svc: Services, org_id: str, name: str) -> SandboxRef | None:
    with svc.db.session() as session:
        found = tenancy.find_sandbox(session, org_id, name)
        return None if found is None else SandboxRef(id=found.id, name=found.name, type=found.type,
                                                     default=found.is_default)


def _authenticate(request: Request, svc: Services) -> Caller:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Oauth token is not valid: send 'Authorization: Bearer <access token>'")
    api_key = request.headers.get("x-api-key", "")
    if not api_key:
        raise Unauthorized("Api Key is missing: send the 'x-api-key' header", error_code="401001")
    org_id = request.headers.get("x-gw-ims-org-id", "")
    credential = svc.lasting(("credential", hash_secret(token.strip())), lambda: _credential(svc, token.strip()))
    if credential is None:
        raise Unauthorized("Oauth token is not valid")
    if credential.api_key_hash != hash_secret(api_key):
        raise Unauthorized("Api Key is invalid for this access token", error_code="401001")
    if not org_id:
        raise Unauthorized("x-gw-ims-org-id header is missing", error_code="401002")
    if credential.org_id != org_id:
        raise Forbidden(f"Api Key is not allowed to access org '{org_id}'")
    _refuse_nul(request)
    return Caller(org_id=org_id, sandbox_only=tenancy.token_sandbox(token.strip()), credential_id=credential.id)


def _refuse_nul(request: Request) -> None:
    """A NUL in a path or query parameter is a 400: PostgreSQL cannot store it and file names cannot hold it."""
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if isinstance(value, str) and "\x00" in value:
            raise BadRequest(f"'{name}' holds a NUL character (%00)", field=name)


async def raw_body(request: Request) -> bytes:
    """The request body's bytes: the one awaiting dependency, so that handlers can be plain functions
    (FastAPI runs those in its thread pool, off the event loop)."""
    return await request.body()


def json_body(raw: bytes = Depends(raw_body)) -> Any:
    """The request body as JSON, whatever Content-Type says (AEP clients vary), checked by ``parse_json``.

    A dependency (``body: Any = Depends(json_body)``), declared after the tenant so that authentication
    errors come first; parsed in the thread pool like the handler.
    """
    if not raw.strip():
        raise BadRequest("the request body is empty; a JSON body is required", field="body")
    return parse_json(raw)


class AnyJsonObject(RootModel[dict[str, Any]]):
    """A JSON object of any fields: how /openapi.json describes a body read by ``json_object``."""


def json_object(body: Any = Depends(json_body)) -> dict[str, Any]:
    """The request body as a JSON object (400 naming ``body`` otherwise); a dependency like ``json_body``, for a
    body without a model of its own yet (``typed_body`` is the way: it describes and bounds the fields)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    return body


json_object.body_model = AnyJsonObject  # type: ignore[attr-defined]


def parse_model(model: type[Model], data: Any) -> Model:
    """Validate ``data`` into ``model``; errors name the field in AEP's 400 body (``api/validation.py``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise bad_request(exc.errors()) from exc


def typed_body(model: type[Model]) -> Any:
    """A dependency giving the body as ``model`` (``body: Model = typed_body(Model)``), read by ``json_body``
    (any Content-Type, strict UTF-8, bounded nesting) and then validated; ``/openapi.json`` describes the
    body by ``model`` (``api/openapi.py``). Declared after the tenant, like ``json_body``.

    FastAPI's own body parameters are not used: they would read the body on the event loop, before
    authentication, and only when Content-Type says JSON.
    """

    def read_body(document: Any = Depends(json_body)) -> Model:
        return parse_model(model, document)

    read_body.body_model = model  # type: ignore[attr-defined]
    return Depends(read_body)


def body_model(call: Any) -> type[BaseModel] | None:
    """The model a ``typed_body`` dependency validates, or None for any other callable."""
    found = getattr(call, "body_model", None)
    return found if isinstance(found, type) and issubclass(found, BaseModel) else None


def query_bool(value: str | None, name: str, default: bool = False) -> bool:
    """Query booleans as AEP clients send them: true/True/false/False (and 1/0)."""
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"query parameter '{name}' must be true or false, not '{value}'", field=name)
