"""The one codec for episodes: msgpack on the wire (never pickle), validated on decode.

Decoding untrusted bytes never raises anything but `RecordError`, whose message names the
record and the field, so a reader can log it, quarantine the record and keep serving.
"""
from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import msgspec

from replay.episode import SCHEMA_VERSION, Episode

DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024


class RecordError(ValueError):
    """A record that cannot be encoded or decoded; `record` and `field` say which and where."""

    def __init__(self, record: str, field: str, reason: str):
        self.record, self.field, self.reason = record, field, reason
        where = f" field '{field}':" if field else ""
        super().__init__(f"episode {record}:{where} {reason}")


@dataclass
class _Header:
    """Read first when a full decode fails, to name the record and check its schema version."""

    schema_version: int = -1
    id: str = "?"


# msgspec raises its own errors, and UnicodeDecodeError (a ValueError) for invalid UTF-8 in strings.
_MALFORMED = (msgspec.MsgspecError, ValueError, RecursionError)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Episode)
_header_decoder = msgspec.msgpack.Decoder(_Header)
_PATH = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_MISSING = re.compile(r"missing required field `(?P<name>[^`]+)`")


def encode(episode: Episode, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> bytes:
    data = _encoder.encode(episode)
    if len(data) > max_bytes:
        raise RecordError(episode.id, "", f"is {len(data)} bytes, over the {max_bytes}-byte record limit")
    return data


def decode(data: bytes, key: str = "?", max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Episode:
    """Bytes → Episode, or `RecordError`. `key` names the record when its own id can't be read."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RecordError(key, "", f"is a {type(data).__name__}, not bytes")
    if len(data) > max_bytes:
        raise RecordError(key, "", f"is {len(data)} bytes, over the {max_bytes}-byte record limit")
    try:
        episode = _decoder.decode(data)
    except _MALFORMED as error:
        raise _explain(data, key, error) from None
    if episode.schema_version != SCHEMA_VERSION:
        raise RecordError(episode.id, "schema_version", _version_reason(episode.schema_version))
    return episode


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a batch of records is decoded.

    A decoded episode is a few dozen containers and none of them can form a cycle, yet each batch
    would trigger the collector many times and promote the whole batch to the old generation, whose
    full collections then walk the process's entire heap: half of sampling time, as measured by
    benchmarks/replay_throughput.py. Paused, a batch the caller drops is freed by reference counting
    and the collector never runs for it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _explain(data: bytes, key: str, error: Exception) -> RecordError:
    """Turn a msgspec error into one that names the record (if its header is readable) and the field."""
    try:
        header = _header_decoder.decode(data)
    except _MALFORMED:
        return RecordError(key, "", f"is not a valid msgpack episode map ({error})")
    record = header.id if header.id != "?" else key
    if header.schema_version not in (-1, SCHEMA_VERSION):
        return RecordError(record, "schema_version", _version_reason(header.schema_version))
    match = _PATH.match(str(error))
    path, reason = (match["path"] or "").lstrip("."), match["reason"]
    missing = _MISSING.search(reason)
    if missing:
        path = f"{path}.{missing['name']}" if path else missing["name"]
        reason = "is missing"
    return RecordError(record, path, reason)


def _version_reason(version: int) -> str:
    return f"unknown schema version {version} (this reader knows {SCHEMA_VERSION})"
