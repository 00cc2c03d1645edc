"""No route blocks the event loop: handlers and their dependencies are plain functions (FastAPI runs those
in its thread pool) unless they truly await something or hand their work to a lane (``api/lanes.py``), and
those hand every other step to a thread."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

#: The only coroutine functions a route may reach, each with what it awaits.
ASYNC_ALLOWED = {
    "openseg.api.deps.raw_body": "awaits the request body; parsing and the handler run in the thread pool",
    "openseg.api.deps.services": "returns the app's services: no I/O, and no thread pool hop for every request",
    "openseg.api.collection.collect": "awaits the log's commit, or hands the acknowledgement to its lane",
    "openseg.api.collection.collect_batch": "hands the acknowledgements to their lane",
    "openseg.api.edge.interact": "hands the edge segmentation to its lane",
    "openseg.api.edge.collect": "hands the events to the edge lane",
    "openseg.api.access.get_entities": "hands the lookup to its lane",
    "openseg.api.access.post_entities": "hands the lookups to their lane",
    "openseg.api.ingest.upload_file": "streams an upload of any size to disk chunk by chunk",
    "openseg.api.ingest.upload_file_part": "streams one part of a large file to disk chunk by chunk",
}

#: Calls an allowed coroutine may make on the event loop itself: none of them waits on a disk, a
#: database or an engine. Everything else must be awaited or handed to ``run_in_threadpool``.
LOOP_SAFE_CALLS = {"scope_of", "with_name", "bytearray", "bytes", "len", "clear", "stream", "body", "Response",
                   "BadRequest",
                   # a lane's handler reads its request's query and shapes its response from the lane's answer
                   "_request", "_silent", "multi_items", "_problem", "_respond", "mark",
                   # an acknowledgement on the loop: only what is kept in memory (test_collection.py holds it to
                   # that), and the log's hand-off of the entry to its writer thread (a lock and a notify)
                   "_acknowledged_here", "open_stream_log", "submit", "isinstance", "JSONResponse"}
#: Coroutines the allowed ones await (not routes themselves), held to the same rule.
AWAITED_HELPERS = ("openseg.api.ingest._receive", "openseg.api.edge._log")


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for dependency in dependant.dependencies:
        yield from _calls(dependency)


def _name(call: Callable[..., Any]) -> str:
    return f"{call.__module__}.{call.__qualname__}"


def _coroutines(app: FastAPI) -> dict[str, Callable[..., Any]]:
    found = {}
    for context in iter_route_contexts(app.routes):  # into included routers too
        route = context.original_route
        if isinstance(route, APIRoute):
            for call in _calls(route.dependant):
                if inspect.iscoroutinefunction(call):
                    found[_name(call)] = call
    return found


def test_route_handlers_and_dependencies_are_plain_functions(app: FastAPI) -> None:
    coroutines = _coroutines(app)
    assert sorted(set(coroutines) - set(ASYNC_ALLOWED)) == []
    assert sorted(set(ASYNC_ALLOWED) - set(coroutines)) == []  # the list stays as short as the truth


def _called_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


#: What hands work to a thread: ``run_in_threadpool`` (FastAPI's pool) and ``run_in`` (a lane, api/lanes.py).
HAND_OFFS = {"run_in_threadpool", "run_in"}


def _blocking_calls(function: Callable[..., Any]) -> list[str]:
    """Calls in the body of ``function`` that run on the event loop: neither awaited, nor handed to a thread
    (a nested function counts as handed only when an awaited hand-off takes it), nor in :data:`LOOP_SAFE_CALLS`."""
    definition = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    assert isinstance(definition, ast.AsyncFunctionDef)
    off_loop: set[int] = set()
    handed: set[str] = set()
    for node in ast.walk(definition):
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
            off_loop.add(id(node.value))
            if _called_name(node.value) in HAND_OFFS:
                off_loop.update(id(inner) for inner in ast.walk(node.value) if isinstance(inner, ast.Call))
                handed.update(arg.id for arg in node.value.args if isinstance(arg, ast.Name))
        if isinstance(node, ast.AsyncFor) and isinstance(node.iter, ast.Call):
            off_loop.add(id(node.iter))
    nested = [statement for statement in definition.body if isinstance(statement, ast.FunctionDef)]
    unhanded = [f"line {n.lineno}: {n.name} is never handed to a thread" for n in nested if n.name not in handed]
    calls = [node for statement in definition.body if not isinstance(statement, ast.FunctionDef)
             for node in ast.walk(statement) if isinstance(node, ast.Call)]
    return unhanded + [f"line {node.lineno}: {ast.unparse(node)}" for node in calls
                       if id(node) not in off_loop and _called_name(node) not in LOOP_SAFE_CALLS]


def test_allowed_coroutines_hand_every_blocking_step_to_the_thread_pool(app: FastAPI) -> None:
    for name, function in _coroutines(app).items():
        assert _blocking_calls(function) == [], name
    for name in AWAITED_HELPERS:
        module, _, attribute = name.rpartition(".")
        assert _blocking_calls(getattr(importlib.import_module(module), attribute)) == [], name
