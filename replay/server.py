"""The embedded Redis: when no URL is given, a local `redis-server` with AOF persistence in the run folder.

It binds loopback only, on a free port, and is stopped by PID on exit, on Ctrl-C, and (through
PR_SET_PDEATHSIG) even when the Python process that started it dies abruptly.
"""
from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import redis

from replay.buffer import BufferError

STATE_FILE = "server.json"  # url and pid of the live server, so other commands can find it


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now (the OS may hand it out again once closed: bind it soon)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM to redis-server if we die."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    def __init__(self, run_dir: str | Path, appendfsync: str = "everysec"):
        self.dir = Path(run_dir) / "redis"
        self.appendfsync = appendfsync
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BufferError("redis-server is not installed: run `make install` (or `apt-get install redis-server`)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        command = [
            binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir.resolve()),
            "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
            "--logfile", "redis.log", "--daemonize", "no",
        ]
        # Own session: Ctrl-C reaches us, not the server, so we decide when it stops.
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        atexit.register(self.stop)
        self._wait_until_ready(timeout)
        (self.dir / STATE_FILE).write_text(json.dumps({"url": self.url, "pid": self.process.pid}))
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise BufferError(f"redis-server exited at start (code {self.process.returncode}): {self._log_tail()}")
            try:
                if client.ping():  # answers only once the AOF has been loaded
                    client.close()
                    return
            except redis.BusyLoadingError:
                pass
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise BufferError(f"redis-server did not answer within {timeout:.0f} s: {self._log_tail()}")
            time.sleep(0.02)

    def _log_tail(self) -> str:
        log = self.dir / "redis.log"
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        return lines[-1] if lines else "no log written"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes the AOF and exits), then SIGKILL if it hangs."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        state = self.dir / STATE_FILE
        if state.exists() and json.loads(state.read_text()).get("pid") == process.pid:
            state.unlink()
        atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def live_server_url(run_dir: str | Path) -> str | None:
    """The URL of a server already serving this run folder (e.g. a running experiment), if it answers."""
    state = Path(run_dir) / "redis" / STATE_FILE
    if not state.exists():
        return None
    try:
        info = json.loads(state.read_text())
        os.kill(info["pid"], 0)
        if redis.Redis.from_url(info["url"], socket_connect_timeout=1).ping():
            return info["url"]
    except (OSError, ValueError, KeyError, redis.RedisError):
        pass
    return None


@contextmanager
def redis_url(url: str | None, run_dir: str | Path) -> Iterator[str]:
    """The given URL as is; else the live server of `run_dir`; else an embedded one started for the duration."""
    if url:
        yield url
        return
    live = live_server_url(run_dir)
    if live:
        yield live
        return
    with EmbeddedRedis(run_dir) as server:
        yield server.url
