"""What the API's own ASGI middleware share: answering a route's common requests before FastAPI routes them, and
sending the others on with their body (``api/collection.py``'s acknowledgements, ``api/edge.py``'s edge calls)."""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Shortcut:
    """ASGI middleware answering POST requests of one route before FastAPI routes them, where :meth:`answer` can:
    the request's body is read here, and a request it does not answer goes on to the app with that body.

    Routing, dependency solving and the endpoint's machinery cost the event loop as much CPU as a short request's
    own work (an acknowledgement's, an edge call's): the routes whose latency is promised skip them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def matches(self, path: str) -> Any:
        """What :meth:`answer` needs of a path of this route (None: another route's)."""
        raise NotImplementedError

    async def answer(self, request: Request, matched: Any, raw: bytes) -> Response | None:
        """The response to the request whose body is ``raw`` (None: the route answers it)."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = self.matches(route_path(scope)) if scope["type"] == "http" and scope["method"] == "POST" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            raw = await request.body()
        except ClientDisconnect:  # nothing to answer
            return
        response = await self.answer(request, matched, raw)
        if response is None:
            await self.app(scope, replaying(raw, receive), send)
            return
        await response(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The path the routes match: without the root path the server was given (as Starlette's routing reads it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root + "/") else path


def replaying(raw: bytes, receive: Receive) -> Receive:
    """``receive`` whose first message is the body already read."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay
