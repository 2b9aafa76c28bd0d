"""OpenAPI 3 services as tools: a FastAPI app's own /openapi.json served by uvicorn on a loopback port, imported
and called over HTTP (path, query and body parameters), with limits, error kinds and a secret auth header."""
import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from toolenv.observation import ErrorKind
from toolenv.runner import Limits, ToolRunner
from toolenv.sources import SourceError, close_sources, load_registry

FIXTURES = Path(__file__).parent / "fixtures" / "toolenv"
sys.path.insert(0, str(FIXTURES))
from openapi_app import API_KEY, app  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_sources():
    yield
    close_sources()


@pytest.fixture(scope="module")
def base_url():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def shelf(base_url, monkeypatch) -> ToolRunner:
    monkeypatch.setenv("SHELF_API_KEY", API_KEY)
    return ToolRunner(load_registry([f"openapi:{base_url}/openapi.json header:X-Api-Key=${{SHELF_API_KEY}}"]), Limits(timeout_s=1.0))


def test_each_operation_is_a_tool_with_one_schema(shelf):
    assert shelf.registry.names() == ["get_book", "add_book", "slow", "whoami", "boom"]
    get_book = shelf.registry.get("get_book").spec
    assert get_book.parameters["required"] == ["book_id"]  # path: required; query `fields`: optional
    assert get_book.parameters["properties"]["book_id"] == {"type": "integer"}  # titles dropped
    assert get_book.description.startswith("Get Book\n\nOne book by its id") and get_book.category == "books"
    add_book = shelf.registry.get("add_book").spec.parameters  # the body's fields beside the others, $ref inlined
    assert set(add_book["properties"]) == {"title", "year", "tags"} and add_book["required"] == ["title", "year"]
    assert shelf.registry.get("slow").spec.suite == "book_shelf"


def test_path_query_and_body_parameters_are_sent(shelf):
    assert shelf.call("get_book", {"book_id": 2}).result == {"id": 2, "title": "Solaris", "year": 1961}
    assert shelf.call("get_book", {"book_id": 1, "fields": "title,year"}).result == {"title": "Dune", "year": 1965}
    added = shelf.call("add_book", '{"title": "Ubik", "year": 1969, "tags": ["sf"]}')
    assert added.ok and added.result == {"added": "Ubik", "year": 1969, "tags": ["sf"]}


def test_http_errors_are_tool_errors_or_crashes(shelf):
    missing = shelf.call("get_book", {"book_id": 9})
    assert missing.error == ErrorKind.TOOL_ERROR and missing.message == 'HTTP 404 Not Found: {"detail":"no book 9"}'
    assert shelf.call("boom").error == ErrorKind.CRASHED
    assert shelf.call("add_book", {"title": "Ubik"}).error == ErrorKind.BAD_ARGUMENTS  # checked before any request


def test_a_slow_endpoint_times_out_and_the_next_call_works(shelf):
    slow = shelf.call("slow")
    assert slow.error == ErrorKind.TIMEOUT and slow.elapsed_s < 2.0
    assert shelf.call("get_book", {"book_id": 1}).ok


def test_the_auth_header_is_sent_and_never_shown(shelf):
    observation = shelf.call("whoami")
    assert observation.ok and observation.result["authorized"] is True  # the service got the key
    assert API_KEY not in json.dumps(observation.to_dict()) + observation.content(None)
    assert observation.result["key"] == "[redacted]"


def test_without_the_header_the_service_refuses(base_url):
    refused = ToolRunner(load_registry([f"openapi:{base_url}/openapi.json"])).call("whoami")
    assert refused.error == ErrorKind.TOOL_ERROR and refused.message.startswith("HTTP 401")


def test_a_missing_variable_names_the_header(base_url, monkeypatch):
    monkeypatch.delenv("SHELF_API_KEY", raising=False)
    source = f"openapi:{base_url}/openapi.json header:X-Api-Key=${{SHELF_API_KEY}}"
    with pytest.raises(SourceError) as error:
        load_registry([source])
    assert str(error.value) == f"{source}: field 'header:X-Api-Key': environment variable SHELF_API_KEY is not set"


def test_a_document_from_a_yaml_file_with_a_base_url(base_url, tmp_path):
    path = tmp_path / "shelf.yaml"
    path.write_text(
        "openapi: 3.0.3\ninfo: {title: Shelf}\npaths:\n  /books/{id}:\n    get:\n      operationId: book\n"
        "      parameters:\n        - {name: id, in: path, required: true, schema: {type: integer, nullable: true, minimum: 0, exclusiveMinimum: true}}\n"
    )
    tools = ToolRunner(load_registry([f"openapi:{path} base_url={base_url}"]))
    assert tools.registry.get("book").spec.parameters["properties"]["id"] == {"type": ["integer", "null"], "exclusiveMinimum": 0}
    assert tools.call("book", {"id": 1}).result["title"] == "Dune"  # the path /books/{id} on the service


def document(**fields) -> str:
    base = {"openapi": "3.1.0", "info": {"title": "t"}, "servers": [{"url": "http://127.0.0.1:9"}],
            "paths": {"/a/{x}": {"get": {"operationId": "a", "parameters": [{"name": "x", "in": "path", "schema": {"type": "string"}}]}}}}
    return json.dumps({**base, **fields})


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (json.dumps({"swagger": "2.0", "paths": {}}), "field 'openapi': must be an OpenAPI 3 version such as \"3.1.0\", got None (Swagger 2"),
        ("[1, 2", "field 'location': neither JSON nor YAML"),
        (document(paths=[]), "field 'paths': must be an object of path items"),
        (document(servers=[{"url": "/v1"}]), "field 'servers': a document read from a file needs an absolute server URL"),
        (document(paths={"/a": {"get": {"parameters": [{"in": "query"}]}}}), "field 'paths./a.get.parameters[0].name': missing"),
        (document(paths={"/a": {"get": {"parameters": [{"name": "q", "in": "body"}]}}}), "field 'paths./a.get.parameters[0].in': must be path, query"),
        (document(paths={"/a/{x}": {"get": {}}}), "field 'paths./a/{x}.get.parameters': the path parameter {x} is not declared"),
        (document(paths={"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}}}}),
         "field 'paths./a.post.requestBody.content.application/json.schema.$ref': '#/components/schemas/Nope' points at nothing"),
        (document(paths={"/a": {"get": {"parameters": [{"name": "q", "in": "query", "schema": {"type": "nope"}}]}}}),
         "field 'paths./a.get.parameters[0].schema': not a valid JSON Schema: 'nope' is not valid"),
    ],
)
def test_malformed_documents_are_one_line_naming_source_and_field(tmp_path, text, field):
    path = tmp_path / "api.json"
    path.write_text(text)
    with pytest.raises(SourceError) as error:
        load_registry([f"openapi:{path}"])
    assert str(error.value).startswith(f"openapi:{path}: {field}") and "\n" not in str(error.value)


def test_a_non_object_body_is_one_argument_and_a_form_body_is_skipped(tmp_path):
    path = tmp_path / "api.json"
    path.write_text(json.dumps({"openapi": "3.1.0", "servers": [{"url": "http://127.0.0.1:9"}], "paths": {
        "/tags": {"post": {"operationId": "set_tags", "requestBody": {
            "required": True, "content": {"application/json": {"schema": {"type": "array", "items": {"type": "string"}}}}}}},
        "/upload": {"post": {"operationId": "upload", "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {}}}}}},
    }}))
    registry = load_registry([f"openapi:{path}"])
    assert registry.names() == ["set_tags"]
    assert registry.get("set_tags").spec.parameters == {
        "type": "object", "properties": {"body": {"type": "array", "items": {"type": "string"}}}, "required": ["body"]}
