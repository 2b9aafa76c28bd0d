"""Tools from an OpenAPI 3 service: each operation a tool, called over HTTP with httpx.

Path, query and JSON-body parameters become one JSON Schema object: a body object's properties sit beside the
path and query parameters, any other body is the argument `body`, and local `$ref`s are inlined so that the
model sees the whole shape. Header and cookie parameters are left to the service and to the source's
`header:` options, which carry authentication. A response is read up to the output cap and the time limit;
a 4xx answer is a tool error (the model can fix its call), a 5xx answer or an unreachable service a crash.
"""
from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urljoin

import httpx2
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from toolenv.importers import standardize
from toolenv.observation import ErrorKind
from toolenv.sandbox import MAX_MESSAGE_CHARS, failure_outcome
from toolenv.sources import Source, json_or_text, redact
from toolenv.spec import RemoteCall, Tool, ToolSpec
from toolenv.validation import check_spec

logger = logging.getLogger(__name__)

METHODS = ("get", "put", "post", "delete", "patch")
LOAD_TIMEOUT_S = 30.0  # fetching the document
JSON_MEDIA = re.compile(r"^application/([\w.+-]+\+)?json$")
DATA_KEYWORDS = {"default", "example", "examples", "enum", "const"}  # their values are data, not schemas
SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions"}  # their keys are names, their values schemas


def open_openapi(source: Source) -> tuple[list[Tool], Callable[[], None]]:
    """Read the document, make a tool of each operation, and return them with the function that closes the HTTP client."""
    headers, secrets = source.headers()
    client = httpx2.Client(headers=headers, follow_redirects=True)
    try:
        document = _load(source, client)
        base_url = _base_url(source, document)
        tools = _tools(source, document, client, base_url, secrets)
    except BaseException:
        client.close()
        raise
    return tools, client.close


def _is_url(location: str) -> bool:
    return re.match(r"^https?://", location) is not None


def _load(source: Source, client: httpx2.Client) -> dict[str, Any]:
    location = source.location
    if _is_url(location):
        try:
            response = client.get(location, timeout=LOAD_TIMEOUT_S)
            response.raise_for_status()
        except httpx2.HTTPError as error:
            raise source.fail("location", f"cannot fetch the document: {type(error).__name__}: {error}") from None
        text = response.text
    else:
        try:
            text = Path(location).read_text()
        except OSError as error:
            raise source.fail("location", f"cannot read {location!r}: {error.strerror}") from None
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise source.fail("location", f"neither JSON nor YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise source.fail("location", "an OpenAPI document is a JSON or YAML object")
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        swagger = " (Swagger 2 documents are not supported)" if "swagger" in document else ""
        raise source.fail("openapi", f'must be an OpenAPI 3 version such as "3.1.0", got {version!r}{swagger}')
    return document


def _base_url(source: Source, document: dict[str, Any]) -> str:
    """The `base_url` option, else the first server (its variables at their defaults), relative to the document's URL."""
    url = source.options.get("base_url")
    if url is None:
        servers = document.get("servers") or [{"url": "/"}]
        server = servers[0] if isinstance(servers, list) and servers else None
        if not isinstance(server, dict) or not isinstance(server.get("url"), str):
            raise source.fail("servers[0].url", "must be a URL")
        url = server["url"]
        for name, variable in (server.get("variables") or {}).items():
            url = url.replace(f"{{{name}}}", str(variable.get("default", "")) if isinstance(variable, dict) else "")
    if _is_url(source.location):
        url = urljoin(source.location, url)
    elif not _is_url(url):
        raise source.fail("servers", f"a document read from a file needs an absolute server URL, got {url!r} (or give base_url=URL)")
    return url.rstrip("/")


def _tools(source: Source, document: dict[str, Any], client: httpx2.Client, base_url: str, secrets: tuple[str, ...]) -> list[Tool]:
    paths = document.get("paths")
    if not isinstance(paths, dict):
        raise source.fail("paths", "must be an object of path items")
    suite = standardize(str((document.get("info") or {}).get("title") or Path(source.location).stem)) or "openapi"
    tools: list[Tool] = []
    for path, item in paths.items():
        where = f"paths.{path}"
        if not isinstance(path, str) or not path.startswith("/") or not isinstance(item, dict):
            raise source.fail(where, "a path starts with / and its item is an object")
        shared = [(_inline(source, document, parameter, at), at) for parameter, at in _list(source, item.get("parameters"), f"{where}.parameters")]
        for method in (method for method in METHODS if method in item):
            tool = _operation(source, document, path, method, item[method], shared, suite, client, base_url, secrets)
            if tool is None:
                continue
            if any(other.name == tool.name for other in tools):
                raise source.fail(f"{where}.{method}.operationId", f"{tool.name!r} names two operations")
            tools.append(tool)
    if not tools:
        raise source.fail("paths", "no operations")
    return tools


def _operation(
    source: Source, document: dict[str, Any], path: str, method: str, operation: Any, shared: list[tuple[Any, str]],
    suite: str, client: httpx2.Client, base_url: str, secrets: tuple[str, ...],
) -> Tool | None:
    """One operation as a tool; None (with a warning) for one whose required body is not JSON."""
    where = f"paths.{path}.{method}"
    if not isinstance(operation, dict):
        raise source.fail(where, "an operation is an object")
    own = [(_inline(source, document, parameter, at), at) for parameter, at in _list(source, operation.get("parameters"), f"{where}.parameters")]
    schema, places = _parameters(source, path, where, shared + own)
    body_required = False
    if "requestBody" in operation:
        body = _inline(source, document, operation["requestBody"], f"{where}.requestBody")
        body_required = isinstance(body, dict) and body.get("required") is True
        if not _add_body(source, where, body, schema, places):
            logger.warning("%s: skipping %s %s: its required request body is not JSON", source.text, method.upper(), path)
            return None
    operation_id = operation.get("operationId")
    if operation_id is not None and not isinstance(operation_id, str):
        raise source.fail(f"{where}.operationId", "must be a string")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", operation_id)[:64] if operation_id else standardize(f"{method}_{path}")[:64]
    description = "\n\n".join(text.strip() for text in (operation.get("summary"), operation.get("description")) if isinstance(text, str) and text.strip())
    tags = operation.get("tags")
    spec = ToolSpec(
        name=name,
        description=description or f"{method.upper()} {path}",
        category=tags[0] if isinstance(tags, list) and tags and isinstance(tags[0], str) else suite,
        parameters=schema,
        suite=suite,
    )
    try:
        check_spec(spec)
    except ValueError as error:
        raise source.fail(where, str(error)) from None
    return Tool(spec, HTTPCall(client, base_url, method, path, places, body_required, secrets))


def _parameters(source: Source, path: str, where: str, parameters: list[tuple[Any, str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The path and query parameters as one object schema, and where each argument goes (path or query)."""
    declared: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}  # the operation's own win over the path's
    for parameter, at in parameters:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str) or not parameter["name"]:
            raise source.fail(f"{at}.name", "missing")
        if parameter.get("in") not in ("path", "query", "header", "cookie"):
            raise source.fail(f"{at}.in", f"must be path, query, header or cookie, got {parameter.get('in')!r}")
        declared[(parameter["name"], parameter["in"])] = (parameter, at)
    properties: dict[str, Any] = {}
    required: list[str] = []
    places: dict[str, str] = {}
    for (name, place), (parameter, at) in declared.items():
        if place not in ("path", "query"):
            continue
        schema = _schema(source, parameter.get("schema", {"type": "string"}), f"{at}.schema")
        if name in properties:
            raise source.fail(f"{at}.name", f"{name!r} is both a path and a query parameter")
        properties[name] = {**schema, "description": parameter["description"]} if isinstance(parameter.get("description"), str) else schema
        places[name] = place
        if place == "path" or parameter.get("required") is True:
            required.append(name)
    for name in re.findall(r"{([^}]+)}", path):
        if places.get(name) != "path":
            raise source.fail(f"{where}.parameters", f"the path parameter {{{name}}} is not declared")
    return {"type": "object", "properties": properties, "required": required}, places


def _add_body(source: Source, where: str, body: Any, schema: dict[str, Any], places: dict[str, str]) -> bool:
    """Add a JSON body's fields beside the parameters (else the whole body as `body`); False for a required
    body that is not JSON, which no tool call can send."""
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, dict):
        raise source.fail(f"{where}.requestBody.content", "must be an object of media types")
    media_type = next((media for media in content if JSON_MEDIA.match(media.split(";")[0].strip())), None)
    required = body.get("required") is True
    if media_type is None:
        return not required
    body_schema = _schema(source, (content[media_type] or {}).get("schema", {}), f"{where}.requestBody.content.{media_type}.schema")
    fields = body_schema.get("properties")
    properties = schema["properties"]
    if isinstance(fields, dict) and fields and not set(fields) & set(properties):
        properties.update(fields)
        places.update(dict.fromkeys(fields, "body"))
        schema["required"] += [name for name in body_schema.get("required", ()) if name in fields] if required else []
    else:
        key = "body" if "body" not in properties else "request_body"
        properties[key], places[key] = body_schema, "json"
        schema["required"] += [key] if required else []
    return True


def _schema(source: Source, schema: Any, where: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise source.fail(where, "must be a JSON Schema object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise source.fail(where, f"not a valid JSON Schema: {error.message}") from None
    return schema


def _list(source: Source, value: Any, where: str) -> list[tuple[Any, str]]:
    """A list field's items, each with where it is (for messages); a missing field is an empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise source.fail(where, "must be a list")
    return [(item, f"{where}[{index}]") for index, item in enumerate(value)]


def _inline(source: Source, document: dict[str, Any], node: Any, where: str, seen: tuple[str, ...] = ()) -> Any:
    """`node` with its local $refs replaced by what they point at (a recursive one by {}: anything), schema titles
    dropped (noise in a prompt), and OpenAPI 3.0's `nullable` and boolean exclusive bounds in JSON Schema's terms."""
    if isinstance(node, list):
        return [_inline(source, document, item, f"{where}[{index}]", seen) for index, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        reference = node["$ref"]
        if not isinstance(reference, str) or not reference.startswith("#/"):
            raise source.fail(f"{where}.$ref", f"only references inside the document (#/...) are supported, got {reference!r}")
        if reference in seen:
            return {}
        target: Any = document
        for part in reference[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise source.fail(f"{where}.$ref", f"{reference!r} points at nothing")
            target = target[part]
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        resolved = _inline(source, document, target, where, (*seen, reference))
        return {**resolved, **_inline(source, document, siblings, where, seen)} if isinstance(resolved, dict) else resolved
    inlined: dict[str, Any] = {}
    for key, value in node.items():
        if key in DATA_KEYWORDS:
            inlined[key] = value
        elif key in SCHEMA_MAPS and isinstance(value, dict):
            inlined[key] = {name: _inline(source, document, schema, f"{where}.{key}.{name}", seen) for name, schema in value.items()}
        elif key != "title":
            inlined[key] = _inline(source, document, value, f"{where}.{key}", seen)
    if inlined.pop("nullable", False) is True and "type" in inlined:
        kinds = inlined["type"] if isinstance(inlined["type"], list) else [inlined["type"]]
        inlined["type"] = [*kinds, "null"]
    for bound in ("minimum", "maximum"):
        exclusive = f"exclusive{bound.capitalize()}"
        flag = inlined.get(exclusive)
        if isinstance(flag, bool):
            del inlined[exclusive]
            if flag and bound in inlined:
                inlined[exclusive] = inlined.pop(bound)
    return inlined


class HTTPCall(RemoteCall):
    """The `run` of one operation: an HTTP request built from the arguments, its response read within the limits."""

    def __init__(self, client: httpx2.Client, base_url: str, method: str, path: str, places: dict[str, str],
                 body_required: bool, secrets: tuple[str, ...]):
        self.client, self.base_url, self.method, self.path = client, base_url, method.upper(), path
        self.places, self.body_required, self.secrets = places, body_required, secrets

    def outcome(self, arguments: dict[str, Any], timeout_s: float, max_output_bytes: int) -> dict[str, Any]:
        path, query, fields = self.path, {}, {}
        body: Any = None
        for name, value in arguments.items():
            place = self.places[name]
            if place == "path":
                path = path.replace(f"{{{name}}}", quote(_query_value(value), safe=""))
            elif place == "query" and value is not None:
                query[name] = [_query_value(item) for item in value] if isinstance(value, list) else _query_value(value)
            elif place == "body":
                fields[name] = value
            elif place == "json":
                body = value
        if fields or (self.body_required and "body" in self.places.values()):
            body = fields
        deadline = time.monotonic() + timeout_s
        try:
            with self.client.stream(self.method, self.base_url + path, params=query, json=body, timeout=timeout_s) as response:
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > max_output_bytes:
                        return failure_outcome(ErrorKind.OUTPUT_TOO_LARGE, f"response passed the cap of {max_output_bytes} bytes")
                    if time.monotonic() > deadline:
                        return failure_outcome(ErrorKind.TIMEOUT, f"no whole response within {timeout_s:g} s; the request was abandoned")
        except httpx2.TimeoutException:
            return failure_outcome(ErrorKind.TIMEOUT, f"no response within {timeout_s:g} s; the request was abandoned")
        except httpx2.HTTPError as error:
            return failure_outcome(ErrorKind.CRASHED, f"could not reach the service at {self.base_url}: {type(error).__name__}: {error}")
        text = redact(data.decode(response.encoding or "utf-8", errors="replace"), self.secrets)
        if response.status_code >= 400:
            kind = ErrorKind.TOOL_ERROR if response.status_code < 500 else ErrorKind.CRASHED
            return failure_outcome(kind, f"HTTP {response.status_code} {response.reason_phrase}: {text}"[:MAX_MESSAGE_CHARS])
        return {"ok": True, "result": json_or_text(text) if text.strip() else None}


def _query_value(value: Any) -> str:
    """A value as it goes into a URL: JSON's spelling for booleans, null and containers, plain text otherwise."""
    return value if isinstance(value, str) else json.dumps(value)
