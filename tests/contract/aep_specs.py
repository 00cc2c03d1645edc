"""Adobe's published OpenAPI specs (``../shared/aep-openapi/``), read as the contract openseg is held to.

One ``Operation`` per (method, path) of the seven services openseg speaks, with the path openseg serves it at
(the spec's server path, e.g. ``/data/core/ups``, before the spec's path), the spec's own example request,
and a validator of a response body against the spec's response schema.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

#: The repository's sibling ``shared/`` folder (as in CI: a copy of shared/ beside the clone).
SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "aep-openapi"
SERVICES = ("segmentation", "profile", "catalog", "batch-ingestion", "data-access", "query-service",
            "streaming-ingestion")
METHODS = ("get", "post", "put", "patch", "delete", "head")


@dataclass(frozen=True)
class Operation:
    service: str
    method: str  # upper case
    path: str  # as in the spec, e.g. /segment/definitions/{SEGMENT_ID}
    base: str  # the spec's server path, e.g. /data/core/ups

    @property
    def openseg_path(self) -> str:
        return self.base + ("" if self.path == "/" else self.path)

    @property
    def key(self) -> str:
        return f"{self.method} {self.openseg_path}"

    @property
    def spec(self) -> dict[str, Any]:
        return spec(self.service)["paths"][self.path][self.method.lower()]  # type: ignore[no-any-return]

    def parameters(self) -> list[dict[str, Any]]:
        """The operation's parameters with ``$ref`` resolved (path-level ones first)."""
        document = spec(self.service)
        found = [*document["paths"][self.path].get("parameters", []), *self.spec.get("parameters", [])]
        return [_resolve(document, p) for p in found]

    def success_codes(self) -> list[int]:
        return sorted(int(code) for code in self.spec.get("responses", {}) if str(code).startswith("2"))


@functools.cache
def spec(service: str) -> dict[str, Any]:
    """The service's spec as JSON would read it (YAML's unquoted ``200:`` keys become ``"200"``)."""
    text = (SPEC_DIR / f"{service}.yaml").read_text()
    return _string_keys(yaml.load(text, Loader=_JsonLoader))  # type: ignore[no-any-return]


class _JsonLoader(yaml.SafeLoader):
    """YAML as JSON reads it: ``2024-01-01T00:00:00Z`` stays a string (JSON has no date type)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _string_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _string_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_string_keys(n) for n in node]
    return node


def base_path(service: str) -> str:
    """The path part of the spec's first server, ``//{environment}.adobe.io/data/core/ups`` -> ``/data/core/ups``."""
    url = spec(service)["servers"][0]["url"]
    return urlsplit(url if "//" in url else "//" + url).path.rstrip("/")


def operations() -> list[Operation]:
    """Every operation of the seven specs, in spec order."""
    found = []
    for service in SERVICES:
        base = base_path(service)
        for path, item in spec(service)["paths"].items():
            found.extend(Operation(service, method.upper(), path, base) for method in item if method in METHODS)
    return found


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _pointer(document, node["$ref"])
    return node


def _pointer(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# --- the spec's example request --------------------------------------------------------------------------

def example_of(document: dict[str, Any], schema: Any, depth: int = 0) -> Any:
    """A schema's example: its own ``example``, else one built from its properties' examples (what Adobe's
    API reference pages show as the request sample)."""
    schema = _resolve(document, schema)
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "example" in schema:
        example = copy.deepcopy(schema["example"])
        # An array's example written as its one item (datasetPatchRequestV2's tags: "q2_sales_data" for an
        # array of strings): the list of that item, as the schema types it.
        return [example] if schema.get("type") == "array" and not isinstance(example, list) else example
    for combined in ("allOf", "oneOf", "anyOf"):
        if combined in schema:
            parts = [example_of(document, s, depth + 1) for s in schema[combined]]
            if combined == "allOf" and all(isinstance(p, dict) for p in parts):
                return {k: v for p in parts for k, v in p.items()}
            return next((p for p in parts if p is not None), None)
    if schema.get("type") == "array" or "items" in schema:
        item = example_of(document, schema.get("items", {}), depth + 1)
        return [] if item is None else [item]
    if schema.get("type") == "object" or "properties" in schema:
        built = {name: example_of(document, inner, depth + 1) for name, inner in schema.get("properties", {}).items()}
        return {k: v for k, v in built.items() if v is not None}
    if "enum" in schema:
        return schema["enum"][0]
    return None


def request_body_example(operation: Operation) -> tuple[str, Any] | None:
    """(content type, the example body) of the spec's request, or None when the operation sends none."""
    body = _resolve(spec(operation.service), operation.spec.get("requestBody"))
    if not body:
        return None
    document = spec(operation.service)
    for content_type, media in body.get("content", {}).items():
        if "example" in media:
            return content_type, copy.deepcopy(media["example"])
        if media.get("examples"):
            first = _resolve(document, next(iter(media["examples"].values())))
            return content_type, copy.deepcopy(first.get("value"))
        if "schema" in media:
            return content_type, example_of(document, media["schema"])
    return None


def query_examples(operation: Operation) -> dict[str, Any]:
    """The query parameters the spec gives an example for, with that example."""
    found = {}
    for parameter in operation.parameters():
        if parameter.get("in") != "query":
            continue
        if "example" in parameter:
            found[parameter["name"]] = parameter["example"]
        elif "example" in parameter.get("schema", {}):
            found[parameter["name"]] = parameter["schema"]["example"]
    return found


# --- the spec's response schema ---------------------------------------------------------------------------

def _openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` is JSON Schema's ``null`` type; the rest is read as draft 4."""
    if isinstance(node, list):
        return [_openapi_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _openapi_to_json_schema(v) for k, v in node.items()}
    if converted.pop("nullable", False) is True:
        if isinstance(converted.get("type"), str):
            converted["type"] = [converted["type"], "null"]
        elif "$ref" in converted:
            converted = {"anyOf": [{"$ref": converted.pop("$ref")}, {"type": "null"}], **converted}
    return converted


@functools.cache
def _registry(service: str) -> Registry:
    resource = Resource(contents=_openapi_to_json_schema(spec(service)), specification=DRAFT4)
    return Registry().with_resource(f"urn:aep:{service}", resource)


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def response_schema_pointer(operation: Operation, status: int) -> str | None:
    """A ``$ref`` to the spec's JSON schema of the ``status`` response, or None when it documents no body."""
    document = spec(operation.service)
    response = _resolve(document, operation.spec.get("responses", {}).get(str(status)))
    for content_type, media in (response or {}).get("content", {}).items():
        if "schema" in media:
            parts = ["paths", operation.path, operation.method.lower(), "responses", str(status), "content",
                     content_type, "schema"]
            return f"urn:aep:{operation.service}#/" + "/".join(_escape(p) for p in parts)
    return None


def schema_errors(service: str, schema: dict[str, Any], body: Any) -> list[str]:
    """Every way ``body`` breaks ``schema`` (which may ``$ref`` into the service's spec as ``urn:aep:...``)."""
    validator = jsonschema.Draft4Validator(schema, registry=_registry(service))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:300]}"
            for e in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))]
