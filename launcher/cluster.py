"""Ray, started or joined: local on this machine (loopback only), or a cluster by address."""
from __future__ import annotations

import os
import signal


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join `address` (or RAY_ADDRESS, as set by `ray job submit`), else start Ray locally.

    A local Ray binds 127.0.0.1 because `launcher/__init__.py` sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    before Ray is first imported (set after the import, it has no effect).
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # "local": always a new Ray of our own, never someone else's cluster found on this machine
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    # Ray's own SIGTERM handler aborts the driver; a scheduler's stop should end a run as Ctrl-C does, with
    # the cleanup that runs on the way out (actors killed, Ray and the embedded Redis stopped)
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
