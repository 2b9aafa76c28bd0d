"""Tools served by MCP servers, through the official SDK: a command started here (stdio) or a URL (streamable HTTP).

The SDK is async and its callers here are not (the ToolRunner, explorer actors), so each server gets an event
loop on its own daemon thread, where one task holds the client session open for as long as the source is open.

A stdio server starts under a few lines of Python that ask Linux to kill it when the thread that started it
ends (PR_SET_PDEATHSIG), then exec the command: so even a SIGKILL of this process stops the server. It runs
in its own process group, which a normal exit (atexit, toolenv.sources.close_sources) kills by PID after the
SDK's polite shutdown. A server that dies is restarted for the next call; one that cannot be restarted gives
one clear error per call.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import httpx2
from pydantic import ValidationError
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CONNECTION_CLOSED, CallToolResult, EmbeddedResource, PaginatedRequestParams, TextContent, TextResourceContents
from mcp_types import Tool as MCPTool

from toolenv.importers import standardize
from toolenv.observation import ErrorKind
from toolenv.sandbox import MAX_MESSAGE_CHARS, STDERR_TAIL_BYTES, failure_outcome
from toolenv.sources import Source, SourceError, json_or_text, redact
from toolenv.spec import RemoteCall, Tool, ToolSpec
from toolenv.validation import check_spec

STARTUP_TIMEOUT_S = 30.0  # start (or restart), initialize and list the tools
PING_TIMEOUT_S = 2.0  # after a call times out: a server that does not answer a ping either is restarted
CLOSE_TIMEOUT_S = 3.0  # for the SDK's polite shutdown before the process group is killed
EXIT_WAIT_S = 0.5  # for a server that closed the connection to finish exiting, so the message can say it did
MAX_PAGES = 1000  # of tools/list: a server whose cursor never ends is malformed
MAX_MESSAGE_BYTES = 64 * 2**20  # one SSE event over HTTP; results past the output cap are refused after reading

# Run by this interpreter before the server's command: die with the starting thread, report the PID, exec.
_GUARD = (
    "import ctypes, os, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(1, 9) != 0 or os.getppid() != int(sys.argv[2]): sys.exit(70)\n"
    "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


def open_mcp(source: Source) -> tuple[list[Tool], Callable[[], None]]:
    """Connect to the source's server, list its tools, and return them with the function that closes the connection."""
    if source.kind == "mcp":
        if shutil.which(source.argv[0]) is None:
            raise source.fail("command", f"{source.argv[0]!r} is not an executable file or on PATH")
        connection: Connection = StdioConnection(source)
    else:
        connection = HttpConnection(source)
    try:
        listed = connection.start()
        tools = _tools(source, connection, listed)
    except BaseException:
        connection.close()
        raise
    return tools, connection.close


class Connection(ABC):
    """One MCP server: its event-loop thread, its session, and what it takes to restart it."""

    def __init__(self, source: Source):
        self.source = source
        self.secrets: tuple[str, ...] = ()
        self.server_name = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"mcp {source.location}"[:64], daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._session: ClientSession | None = None
        self._holder: concurrent.futures.Future[None] | None = None
        self._stop = asyncio.Event()
        self._broken = ""  # why the server cannot be restarted, once a restart failed

    @abstractmethod
    def _transport(self) -> AbstractAsyncContextManager[Any]:
        """The SDK transport to the server: its (read, write) streams."""

    def _alive(self) -> bool:
        return self._holder is not None and not self._holder.done()

    def _kill(self) -> None:
        """Stop what the polite shutdown did not (only a process can be killed)."""

    def why(self) -> str:
        """What the server last said about itself (its stderr), for error messages."""
        return ""

    def start(self) -> list[MCPTool]:
        """Connect (a stdio server starts), initialize and list every tool, within STARTUP_TIMEOUT_S."""
        ready: concurrent.futures.Future[tuple[ClientSession, str, list[MCPTool]]] = concurrent.futures.Future()
        self._stop = asyncio.Event()
        self._holder = asyncio.run_coroutine_threadsafe(self._hold(ready), self._loop)
        try:
            self._session, self.server_name, tools = ready.result(STARTUP_TIMEOUT_S)
        except Exception as error:
            why = "" if isinstance(error, SourceError) else self.why()
            self._disconnect()
            if isinstance(error, SourceError):
                raise error from None
            if not ready.done():
                raise SourceError(f"{self.source.text}: no answer to initialize within {STARTUP_TIMEOUT_S:g} s{why}") from None
            raise SourceError(f"{self.source.text}: could not connect: {_describe(error)}{why}") from None
        return tools

    async def _hold(self, ready: concurrent.futures.Future[tuple[ClientSession, str, list[MCPTool]]]) -> None:
        """Open the transport and the session, hand them over, and keep them open until told to stop."""
        step = "initialize"
        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                initialized = await session.initialize()
                step = "tools/list"
                tools = await _list_tools(self.source, session)
                ready.set_result((session, initialized.server_info.name, tools))
                await self._stop.wait()
        except Exception as error:  # before `ready`: the caller raises it; after: the next call sees a dead holder
            cause = _first(error)
            if not ready.done():
                ready.set_exception(_malformed(self.source, step, cause) if isinstance(cause, ValidationError) else cause)

    def _disconnect(self) -> None:
        """End the session (politely, within CLOSE_TIMEOUT_S), then kill whatever is left."""
        self._session = None
        if self._holder is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            try:
                self._holder.result(CLOSE_TIMEOUT_S)
            except (TimeoutError, concurrent.futures.CancelledError):
                self._holder.cancel()
            self._holder = None
        self._kill()

    def close(self) -> None:
        with self._lock:
            self._disconnect()
            self._broken = "the source was closed"
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CLOSE_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def _live_session(self) -> tuple[ClientSession | None, dict[str, Any]]:
        """The session, restarting a server that died; or the failure outcome that says it cannot be had."""
        with self._lock:
            if self._session is not None and self._alive():
                return self._session, {}
            if not self._broken:
                self._disconnect()
                try:
                    self.start()
                except SourceError as error:
                    self._broken = f"the MCP server died and could not be restarted: {error}"
            if self._broken:
                return None, failure_outcome(ErrorKind.CRASHED, self._broken[:MAX_MESSAGE_CHARS])
            return self._session, {}

    def _lost(self, session: ClientSession) -> None:
        """Forget a session whose server died or stopped answering, so the next call restarts it."""
        with self._lock:
            if self._session is session:
                self._disconnect()

    def call(self, name: str, arguments: dict[str, Any], timeout_s: float, max_output_bytes: int) -> dict[str, Any]:
        """One tools/call within the time limit, as an outcome dict; never raises."""
        session, failure = self._live_session()
        if session is None:
            return failure
        future = asyncio.run_coroutine_threadsafe(session.call_tool(name, arguments), self._loop)
        try:
            result = future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            ping = asyncio.run_coroutine_threadsafe(session.send_ping(), self._loop)
            try:
                ping.result(PING_TIMEOUT_S)
                after = "the request was cancelled"
            except Exception:
                ping.cancel()
                self._lost(session)
                after = "the server did not answer a ping either and is restarted for the next call"
            return failure_outcome(ErrorKind.TIMEOUT, f"no result within {timeout_s:g} s; {after}")
        except MCPError as error:
            if error.code != CONNECTION_CLOSED:  # the server answered with a JSON-RPC error: it meant it
                return failure_outcome(ErrorKind.TOOL_ERROR, redact(error.message, self.secrets)[:MAX_MESSAGE_CHARS])
            why = self.why()
            self._lost(session)
            return failure_outcome(ErrorKind.CRASHED, f"the MCP server closed the connection during the call{why}; it is restarted for the next call")
        except Exception as error:  # a transport failure, or a result the SDK refused (against the tool's output schema)
            why = self.why()
            if not self._alive():
                self._lost(session)
            return failure_outcome(ErrorKind.CRASHED, redact(f"the MCP call failed: {_describe(error)}{why}", self.secrets)[:MAX_MESSAGE_CHARS])
        return _outcome(result, max_output_bytes, self.secrets)


class StdioConnection(Connection):
    """A server this process starts: the source's command, in its own process group, its stderr kept in a file."""

    def __init__(self, source: Source):
        super().__init__(source)
        self._folder = tempfile.TemporaryDirectory(prefix="toolenv-mcp-")
        self._stderr = open(Path(self._folder.name, "stderr"), "a")  # the server's, appended to across restarts
        self._pid_file = Path(self._folder.name, "pid")

    @property
    def pid(self) -> int:
        """The running server's PID, as the guard wrote it before exec (0 before that, and once it is killed)."""
        try:
            return int(self._pid_file.read_text())
        except (OSError, ValueError):
            return 0

    def _transport(self) -> AbstractAsyncContextManager[Any]:
        self._pid_file.unlink(missing_ok=True)
        guard = ["-c", _GUARD, str(self._pid_file), str(os.getpid()), *self.source.argv]
        return stdio_client(StdioServerParameters(command=sys.executable, args=guard, env=dict(os.environ)), errlog=self._stderr)

    def _alive(self) -> bool:
        return super()._alive() and _is_child(self.pid)

    def _kill(self) -> None:
        pid = self.pid
        if pid and _is_child(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._pid_file.unlink(missing_ok=True)

    def why(self) -> str:
        pid, deadline = self.pid, time.monotonic() + EXIT_WAIT_S  # a server that closed its pipes is usually exiting
        while pid and _is_child(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(self._stderr.name, "rb") as log:
            log.seek(max(log.seek(0, os.SEEK_END) - STDERR_TAIL_BYTES, 0))
            lines = log.read().decode(errors="replace").strip().splitlines()
        said = ["its process exited"] if pid and not _is_child(pid) else []
        said += [f"its stderr ends: {lines[-1].strip()[:500]}"] if lines else []
        return f" ({'; '.join(said)})" if said else ""

    def close(self) -> None:
        super().close()
        self._stderr.close()
        self._folder.cleanup()


class HttpConnection(Connection):
    """A server at a URL, over streamable HTTP, with the source's headers (their secrets from the environment)."""

    def __init__(self, source: Source):
        headers, secrets = source.headers()  # first: a missing variable fails before a thread starts
        super().__init__(source)
        self._headers, self.secrets = headers, secrets

    @asynccontextmanager
    async def _transport(self) -> AsyncIterator[Any]:
        # no read timeout: a response stream may stay open; each call keeps its own time limit
        async with httpx2.AsyncClient(headers=self._headers, timeout=httpx2.Timeout(STARTUP_TIMEOUT_S, read=None)) as client:
            async with streamable_http_client(self.source.location, http_client=client, max_sse_event_size=MAX_MESSAGE_BYTES) as streams:
                yield streams


class MCPCall(RemoteCall):
    """The `run` of one MCP tool: a tools/call on its server under the server's own name for it."""

    def __init__(self, connection: Connection, name: str):
        self.connection = connection
        self.name = name

    def outcome(self, arguments: dict[str, Any], timeout_s: float, max_output_bytes: int) -> dict[str, Any]:
        return self.connection.call(self.name, arguments, timeout_s, max_output_bytes)


async def _list_tools(source: Source, session: ClientSession) -> list[MCPTool]:
    """Every tool the server offers, following `nextCursor` page by page."""
    tools: list[MCPTool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools
    raise source.fail("nextCursor", f"tools/list still had more pages after {MAX_PAGES}")


def _tools(source: Source, connection: Connection, listed: list[MCPTool]) -> list[Tool]:
    """ToolSpecs for the listed tools; names the model cannot use (dots, slashes) get "_" in their place."""
    suite = standardize(connection.server_name) or "mcp"
    tools: list[Tool] = []
    for index, tool in enumerate(listed):
        where = f"tools[{index}]"
        name = re.sub(r"[^A-Za-z0-9_-]", "_", tool.name)[:64]
        if not name:
            raise source.fail(f"{where}.name", "empty")
        if any(other.name == name for other in tools):
            raise source.fail(f"{where}.name", f"{tool.name!r} gives the tool name {name!r} twice")
        schema = tool.input_schema
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise source.fail(f"{where}.inputSchema", f'{tool.name}: must be a JSON Schema with "type": "object"')
        spec = ToolSpec(name=name, description=(tool.description or tool.title or tool.name).strip(), category=suite, parameters=schema, suite=suite)
        try:
            check_spec(spec)
        except ValueError as error:
            raise source.fail(f"{where}.inputSchema", str(error)) from None
        tools.append(Tool(spec, MCPCall(connection, tool.name)))
    return tools


def _outcome(result: CallToolResult, max_output_bytes: int, secrets: tuple[str, ...]) -> dict[str, Any]:
    """A tools/call result as an outcome: text content as JSON data (or the text), an error result as a tool error."""
    texts = [_text(block) for block in result.content]
    if sum(len(text) for text in texts if text is not None) > max_output_bytes:
        return failure_outcome(ErrorKind.OUTPUT_TOO_LARGE, f"result passed the cap of {max_output_bytes} bytes")
    if result.is_error:
        message = "\n".join(text for text in texts if text) or "the tool reported an error"
        return failure_outcome(ErrorKind.TOOL_ERROR, redact(message, secrets)[:MAX_MESSAGE_CHARS])
    values = [json_or_text(redact(text, secrets)) if text is not None else {"type": block.type, "omitted": "not text"}
              for text, block in zip(texts, result.content)]
    if not values:
        structured = result.structured_content
        return {"ok": True, "result": None if structured is None else json.loads(redact(json.dumps(structured), secrets))}
    return {"ok": True, "result": values[0] if len(values) == 1 else values}


def _text(block: Any) -> str | None:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
        return block.resource.text
    return None  # images, audio, binary resources, links: nothing a text model can read


def _is_child(pid: int) -> bool:
    """Whether `pid` is still this process's running child (not reaped, not a zombie, not a reused PID)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state, parent = stat.rpartition(")")[2].split()[:2]
    return state not in "ZX" and int(parent) == os.getpid()


def _first(error: BaseException) -> BaseException:
    """The first real error inside the SDK's task groups' exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _describe(error: BaseException) -> str:
    error = _first(error)
    return f"{type(error).__name__}: {str(error) or repr(error)}".splitlines()[0]


def _malformed(source: Source, method: str, error: ValidationError) -> SourceError:
    """A result the SDK refused, as the one field that is wrong (wire names: tools[0].inputSchema.type)."""
    problem = error.errors()[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"]).lstrip(".")
    return source.fail(where or method, f"{problem['msg']} (in the {method} result), got {problem.get('input')!r}"[:500])
