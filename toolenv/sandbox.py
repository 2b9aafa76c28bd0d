"""Run one tool call in a fresh, memory-limited subprocess that is killed on timeout.

For tools that run model-written code and for untrusted plug-ins: whatever they do (sleep forever,
allocate without bound, print 100 MB, segfault), the caller gets an outcome back and stays healthy.

Nothing is pickled either way: the callable travels as its import path (module, file, qualified name; a
method's instance is rebuilt by calling its class without arguments, as `tools_from_python` made it), the
arguments as JSON, and the outcome comes back as JSON only, read with a byte cap, because the worker is
not trusted. The worker is `python -m toolenv.sandbox`, a new process (not a fork), so
it inherits no threads or locks from the caller (Ray, torch).

An outcome is a dict: {"ok": true, "result": ...} or {"ok": false, "error": <ErrorKind>, "message": ...}.
"""
from __future__ import annotations

import importlib.util
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from typing import Any, Callable

from toolenv.observation import ErrorKind, OutputTooLarge, encode_result
from toolenv.spec import ToolError

STDERR_TAIL_BYTES = 4096  # what a crash message keeps of the worker's stderr
ENVELOPE_BYTES = 4096  # room for the outcome's own keys (and a message) beyond the result's cap
MAX_MESSAGE_CHARS = 2000  # an untrusted worker's message is cut to this
WORKER_KINDS = {ErrorKind.TOOL_ERROR, ErrorKind.MEMORY_LIMIT, ErrorKind.OUTPUT_TOO_LARGE, ErrorKind.CRASHED}  # kinds a worker may report


def run_isolated(
    function: Callable[..., Any], arguments: dict[str, Any], *, timeout_s: float, max_output_bytes: int, memory_bytes: int
) -> dict[str, Any]:
    """Call function(**arguments) in a worker process; return the outcome dict."""
    try:
        payload = json.dumps({"callable": _locate(function), "arguments": arguments, "memory_bytes": memory_bytes,
                              "max_output_bytes": max_output_bytes}).encode()
    except (TypeError, ValueError) as error:
        return failure_outcome(ErrorKind.CRASHED, f"cannot run isolated: {error}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "toolenv.sandbox"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )
    try:
        return _converse(worker, payload, time.monotonic() + timeout_s, timeout_s, max_output_bytes)
    finally:
        _kill(worker)


def _converse(worker: subprocess.Popen, payload: bytes, deadline: float, timeout_s: float, cap: int) -> dict[str, Any]:
    """Send the call, then read both pipes until EOF, the deadline, or the byte cap, whichever comes first."""
    try:
        worker.stdin.write(payload)  # the worker reads all of stdin before doing anything else
        worker.stdin.close()
    except BrokenPipeError:
        pass  # it died at start; its stderr says why
    stdout, stderr_tail, stderr_bytes = bytearray(), b"", 0
    with selectors.DefaultSelector() as selector:
        selector.register(worker.stdout, selectors.EVENT_READ)
        selector.register(worker.stderr, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return failure_outcome(ErrorKind.TIMEOUT, f"no result within {timeout_s:g} s; the call was stopped")
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.fileobj is worker.stdout:
                    stdout += chunk
                else:
                    stderr_bytes += len(chunk)
                    stderr_tail = (stderr_tail + chunk)[-STDERR_TAIL_BYTES:]
                if len(stdout) > cap + ENVELOPE_BYTES or stderr_bytes > cap:
                    return failure_outcome(ErrorKind.OUTPUT_TOO_LARGE, f"output passed the cap of {cap} bytes; the call was stopped")
    try:
        returncode = worker.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:  # it closed its pipes but kept running
        return failure_outcome(ErrorKind.TIMEOUT, f"no result within {timeout_s:g} s; the call was stopped")
    return _read_outcome(bytes(stdout), returncode, stderr_tail.decode(errors="replace"))


def _read_outcome(stdout: bytes, returncode: int, stderr_tail: str) -> dict[str, Any]:
    """Believe the worker's JSON only if it has the outcome's shape; anything else is a crash."""
    try:
        outcome = json.loads(stdout)
    except (json.JSONDecodeError, UnicodeDecodeError):
        outcome = None
    if isinstance(outcome, dict) and outcome.get("ok") is True and "result" in outcome:
        return {"ok": True, "result": outcome["result"]}
    if isinstance(outcome, dict) and outcome.get("ok") is False and outcome.get("error") in WORKER_KINDS:
        return failure_outcome(ErrorKind(outcome["error"]), str(outcome.get("message", ""))[:MAX_MESSAGE_CHARS])
    if "MemoryError" in stderr_tail:
        return failure_outcome(ErrorKind.MEMORY_LIMIT, "ran out of memory")
    how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with status {returncode}"
    last_line = stderr_tail.strip().splitlines()[-1:] or ["no output"]
    return failure_outcome(ErrorKind.CRASHED, f"the tool's worker {how}: {last_line[0][:MAX_MESSAGE_CHARS]}")


def _kill(worker: subprocess.Popen) -> None:
    """Kill the worker and anything it started (its own session), then reap it."""
    if worker.poll() is None:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.wait()
    for pipe in (worker.stdin, worker.stdout, worker.stderr):
        pipe.close()


def _locate(function: Callable[..., Any]) -> dict[str, Any]:
    """Where a worker finds the callable: a module-level function, or a method of a class it can build bare."""
    owner = getattr(function, "__self__", None)
    bound = owner is not None and not isinstance(owner, type)
    qualname = type(owner).__qualname__ if bound else getattr(function, "__qualname__", "")
    module = type(owner).__module__ if bound else getattr(function, "__module__", None)
    if not module or "<" in qualname:  # a lambda or a local function: no name to import it by
        raise TypeError(f"{qualname or function!r} is a lambda or a local function: it cannot be pickled or imported "
                        "in a worker; make it a module-level function or a method")
    return {"module": module, "file": getattr(sys.modules.get(module), "__file__", None), "qualname": qualname,
            "method": function.__name__ if bound else None}


def failure_outcome(error: ErrorKind, message: str) -> dict[str, Any]:
    """The outcome of a call that went wrong (shared with the in-process path in toolenv.runner)."""
    return {"ok": False, "error": str(error), "message": message}


# ---- the worker side -------------------------------------------------------------------------------


def _load_module(name: str, file: str | None) -> None:
    """Import by name, or from its file for a plug-in the parent loaded by path (not on sys.path)."""
    if name in sys.modules:
        return
    if file is None or importlib.util.find_spec(name) is not None:
        importlib.import_module(name)
        return
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _resolve(locator: dict[str, Any]) -> Callable[..., Any]:
    _load_module(locator["module"], locator["file"])
    target: Any = sys.modules[locator["module"]]
    for part in locator["qualname"].split("."):
        target = getattr(target, part)
    return getattr(target(), locator["method"]) if locator["method"] else target


def _limit_memory(extra_bytes: int) -> None:
    """Cap the address space at what the worker holds now (interpreter and tool module) plus the allowance."""
    with open("/proc/self/statm") as statm:
        in_use = int(statm.read().split()[0]) * resource.getpagesize()
    limit = in_use + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # the hard limit too: the tool cannot raise it


def _call(request: dict[str, Any]) -> str:
    """Load, limit, call; return the outcome as JSON text."""
    try:
        function = _resolve(request["callable"])
    except Exception as error:
        return json.dumps(failure_outcome(ErrorKind.CRASHED, f"could not load the tool in its worker: {type(error).__name__}: {error}"))
    _limit_memory(request["memory_bytes"])
    out_of_memory = failure_outcome(ErrorKind.MEMORY_LIMIT, f"ran out of memory (allowance {request['memory_bytes'] // 2**20} MiB)")
    try:
        result = function(**request["arguments"])
    except ToolError as error:
        return json.dumps(failure_outcome(ErrorKind.TOOL_ERROR, str(error)))
    except MemoryError:
        return json.dumps(out_of_memory)
    except Exception as error:
        return json.dumps(failure_outcome(ErrorKind.CRASHED, f"{type(error).__name__}: {error}"))
    try:
        return '{"ok": true, "result": ' + encode_result(result, request["max_output_bytes"]) + "}"
    except OutputTooLarge as error:
        return json.dumps(failure_outcome(ErrorKind.OUTPUT_TOO_LARGE, str(error)))
    except (TypeError, ValueError) as error:
        return json.dumps(failure_outcome(ErrorKind.CRASHED, f"returned a value that is not JSON data: {error}"))
    except MemoryError:
        return json.dumps(out_of_memory)


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    reply = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the tool's prints (Python or C level) go to stderr, which the parent counts and caps
    reply.write(_call(request).encode())
    reply.close()


if __name__ == "__main__":
    main()
