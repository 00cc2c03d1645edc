"""What the API's own ASGI middleware share: the path a route matches, and a request's body handed on after
the middleware read it (``api/collection.py``'s acknowledgements and ``api/edge.py``'s edge calls answer their
routes' common requests before FastAPI routes them, and send the others on)."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope


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
