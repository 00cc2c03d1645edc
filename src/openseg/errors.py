"""Domain errors. Services raise these; only the API edge turns them into AEP's error bodies."""

from __future__ import annotations

from typing import Any


class OpensegError(Exception):
    """Base of every error a user can cause; ``status`` is the HTTP status the API answers with."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, report: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.report = dict(report or {})
        if field is not None:
            self.report.setdefault("field", field)

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross processes (a request lane's process raises, the API answers): rebuilt from their
        # message and attributes, not through ``__init__``, whose arguments differ from class to class.
        return _rebuild, (type(self), self.args), self.__dict__


def _rebuild(cls: type[OpensegError], args: tuple[Any, ...]) -> OpensegError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    return error


class BadRequest(OpensegError):
    status = 400
    title = "Bad request"


class NotFound(OpensegError):
    status = 404
    title = "Not found"

    @classmethod
    def of(cls, resource: str, resource_id: object) -> NotFound:
        return cls(f"{resource} '{resource_id}' was not found", report={"resource": resource, "id": str(resource_id)})


class Conflict(OpensegError):
    status = 409
    title = "Conflict"


class Unauthorized(OpensegError):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str, *, error_code: str = "401013") -> None:
        super().__init__(detail)
        self.error_code = error_code


class Forbidden(OpensegError):
    status = 403
    title = "Forbidden"

    def __init__(self, detail: str, *, error_code: str = "403010") -> None:
        super().__init__(detail)
        self.error_code = error_code
