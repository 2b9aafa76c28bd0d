"""MCP tools through the official SDK: a real server (fixtures/toolenv/mcp_server.py) over stdio and over
streamable HTTP, listed and called; servers that crash, hang, flood or fail each give one observation and
the caller goes on; server processes stop with the process that started them, however it ends."""
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from toolenv import cli
from toolenv.observation import ErrorKind
from toolenv.runner import Limits, ToolRunner
from toolenv.sources import SourceError, close_sources, load_registry

FIXTURES = Path(__file__).parent / "fixtures" / "toolenv"
SERVER = FIXTURES / "mcp_server.py"
NAMES = ["city_info", "add", "greet", "crash", "hang", "huge", "pid"]

sys.path.insert(0, str(FIXTURES))
from mcp_server import server  # noqa: E402  (the fixture server, also served in-process over HTTP)


def stdio(*arguments: str) -> str:
    return "mcp:" + shlex.join([sys.executable, str(SERVER), *arguments])


def runner(source: str, timeout_s: float = 5.0) -> ToolRunner:
    return ToolRunner(load_registry([source]), Limits(timeout_s=timeout_s))


def running(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for a parent that does not reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in "ZX"
    except OSError:
        return False


def wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(autouse=True)
def fresh_sources():
    yield
    close_sources()


@pytest.fixture(scope="module")
def http_url():
    """The fixture server over streamable HTTP, on a free loopback port, served by uvicorn in this process."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    uvicorn_server = uvicorn.Server(uvicorn.Config(server(page_size=3).streamable_http_app(), log_level="critical"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    assert wait_until(lambda: uvicorn_server.started)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    uvicorn_server.should_exit = True
    thread.join(5)


def test_a_stdio_server_is_listed_across_pages_and_called():
    tools = runner(stdio("--page-size", "2"))
    assert tools.registry.names() == NAMES  # four pages of two
    city = tools.registry.get("city_info").spec
    assert (city.description, city.suite, city.parameters["required"]) == ("Country and population of a city.", "city_facts", ["city"])
    assert tools.call("city_info", {"city": "Lima"}).result == {"city": "Lima", "country": "Peru", "population": 10_000_000}
    assert tools.call("greet", '{"name": "Bo"}').result == "Hello, Bo!"  # text content that is not JSON stays text
    assert tools.call("add", {"a": 2}).result == 3  # the schema's default for b
    refused = tools.call("add", {"a": "two"})
    assert refused.error == ErrorKind.BAD_ARGUMENTS and "'a' must be of type integer" in refused.message


def test_an_error_result_is_a_tool_error_observation():
    tools = runner(stdio())
    failed = tools.call("city_info", {"city": "Atlantis"})
    assert failed.error == ErrorKind.TOOL_ERROR and "city 'Atlantis' not found" in failed.message
    assert json.loads(failed.content())["error"] == "tool_error"
    assert tools.call("city_info", {"city": "Oslo"}).ok


def test_a_server_that_crashes_mid_call_gives_one_observation_and_is_restarted():
    tools = runner(stdio())
    first = tools.call("pid").result
    crashed = tools.call("crash")
    assert crashed.error == ErrorKind.CRASHED
    assert "closed the connection during the call (its process exited)" in crashed.message and "restarted" in crashed.message
    second = tools.call("pid")
    assert second.ok and second.result != first and not running(first)
    assert tools.call("city_info", {"city": "Lima"}).ok


def test_a_server_that_cannot_be_restarted_gives_one_clear_error(tmp_path):
    tools = runner(stdio("--once", str(tmp_path / "started")))
    assert tools.call("crash").error == ErrorKind.CRASHED
    for _ in range(2):
        started = time.monotonic()
        failed = tools.call("city_info", {"city": "Lima"})
        assert failed.error == ErrorKind.CRASHED and "the MCP server died and could not be restarted" in failed.message
        assert "this server starts only once" in failed.message and "\n" not in failed.message
    assert time.monotonic() - started < 0.5  # the second time without trying again


def test_a_hanging_call_times_out_and_the_server_goes_on():
    tools = runner(stdio(), timeout_s=0.5)
    pid = tools.call("pid").result
    hung = tools.call("hang")
    assert hung.error == ErrorKind.TIMEOUT and "no result within 0.5 s; the request was cancelled" == hung.message
    assert hung.elapsed_s < 2.0
    assert tools.call("pid").result == pid  # the server still answers: nothing was restarted


def test_ten_megabytes_are_capped():
    tools = runner(stdio())
    flooded = tools.call("huge")
    assert flooded.error == ErrorKind.OUTPUT_TOO_LARGE and "1000000 bytes" in flooded.message
    assert tools.call("add", {"a": 1, "b": 2}).result == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--bad-schema",), "field 'tools[0].inputSchema.type': Input should be 'object' (in the tools/list result), got 'array'"),
        (("--no-such-option",), "could not connect: "),
    ],
)
def test_malformed_servers_are_one_line_naming_source_and_field(arguments, message):
    source = stdio(*arguments)
    with pytest.raises(SourceError) as error:
        load_registry([source])
    assert str(error.value).startswith(f"{source}: {message}") and "\n" not in str(error.value)


def test_a_command_that_is_not_there_names_the_command():
    with pytest.raises(SourceError, match=r"^mcp:no-such-mcp-server --x: field 'command': 'no-such-mcp-server' is not an executable"):
        load_registry(["mcp:no-such-mcp-server --x"])


def test_a_server_stops_when_its_sources_close():
    pid = runner(stdio()).call("pid").result
    assert running(pid)
    close_sources()
    assert not running(pid)


def test_a_server_stops_when_the_process_that_started_it_is_killed():
    script = "import sys, time\nfrom toolenv.sources import load_registry\nfrom toolenv.runner import ToolRunner\n" \
             "print(ToolRunner(load_registry([sys.argv[1]])).call('pid').result, flush=True)\ntime.sleep(60)\n"
    holder = subprocess.Popen([sys.executable, "-c", script, stdio()], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(holder.stdout.readline())
        assert running(pid)
        os.kill(holder.pid, signal.SIGKILL)  # no atexit, no cleanup: only the kernel can stop the server now
        holder.wait()
        assert wait_until(lambda: not running(pid)), "the MCP server outlived the process that started it"
    finally:
        holder.kill()
        holder.stdout.close()


def test_a_server_over_streamable_http_is_listed_and_called(http_url, monkeypatch):
    monkeypatch.setenv("MCP_TEST_TOKEN", "t0ken-never-shown")
    tools = runner(f"mcp+{http_url} header:Authorization='Bearer ${{MCP_TEST_TOKEN}}'", timeout_s=0.5)
    assert tools.registry.names() == NAMES  # three pages of up to three
    assert tools.call("city_info", {"city": "Oslo"}).result["country"] == "Norway"
    assert tools.call("city_info", {"city": "Atlantis"}).error == ErrorKind.TOOL_ERROR
    assert tools.call("huge").error == ErrorKind.OUTPUT_TOO_LARGE
    assert tools.call("hang").error == ErrorKind.TIMEOUT
    assert tools.call("greet", {"name": "Ada"}).result == "Hello, Ada!"


def test_an_http_header_from_a_missing_variable_names_the_field(http_url):
    source = f"mcp+{http_url} header:Authorization=${{NO_SUCH_VARIABLE_HERE}}"
    with pytest.raises(SourceError) as error:
        load_registry([source])
    assert str(error.value) == f"{source}: field 'header:Authorization': environment variable NO_SUCH_VARIABLE_HERE is not set"


def test_cli_calls_an_mcp_tool():
    result = CliRunner().invoke(cli.app, ["call", "city_info", '{"city": "Oslo"}', "--tools-from", stdio()])
    assert result.exit_code == 0 and json.loads(result.stdout)["result"]["population"] == 700_000
