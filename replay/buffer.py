"""The experience-replay buffer: named tables of episodes on a real Redis server.

Layout of one table `t` (all keys share the hash tag `{t}`, so a table lives in one slot):

    imag:{t}:config      hash   the table's TableConfig, enforced by the Lua scripts
    imag:{t}:data        hash   id → msgpack episode
    imag:{t}:order       zset   id → insertion sequence (FIFO removal, uniform sampling, listing)
    imag:{t}:prio        zset   id → priority (prioritized sampling, lowest-priority removal)
    imag:{t}:times       hash   id → times sampled
    imag:{t}:tags        hash   id → its group signature, so removal can clean up its index entry
    imag:{t}:grp:<sig>   zset   secondary index: the items of one group signature, id → sequence;
                                a signature is an item's tags, e.g. "tool=get_weather\nround=2\n
                                outcome=solved\nversion=3", so an insert touches one index, not four,
                                and a filter is the union of the groups that carry its tags
    imag:{t}:indexes     set    the group signatures present
    imag:{t}:stats       hash   counters: inserts, samples, duplicates, evicted, expired, …
    imag:{t}:quarantine  hash   corrupt records moved aside: never served, never lost
    imag:{t}:aside       hash   within an insert's MULTI only: what its HSET must not leave behind

Every change that touches several keys is atomic: one Lua script, or (an insert) one MULTI of
scripts and a plain HSET. Payloads never pass through Lua, where copying them in and out cost
three times the HSET itself: an insert writes them beside its index script; a sample's script
draws and counts ids, then one HMGET reads their payloads (an item removed in between is handed
back and drawn again). Batches travel in a few variadic commands.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Iterable, Iterator

import redis

from replay.codec import RecordError, collector_paused, decode, encode
from replay.episode import Episode, TagKey, index_tag, tag_values
from replay.tables import TableConfig

log = logging.getLogger(__name__)

NAMESPACE = "imag"


class BufferError(RuntimeError):
    """A buffer operation that cannot be done; the message says what to fix."""


class RateLimitTimeout(BufferError):
    """The rate limiter kept an insert or a sample waiting past its timeout."""


@dataclass(frozen=True)
class Filters:
    """Secondary-index filters; every given field must match."""

    tool: str | None = None
    round: int | None = None
    outcome: str | None = None
    policy_version: int | None = None

    def tags(self) -> list[str]:
        pairs: list[tuple[TagKey, object]] = [("tool", self.tool), ("round", self.round), ("outcome", self.outcome),
                                              ("version", self.policy_version)]
        return [index_tag(key, value) for key, value in pairs if value is not None]


@dataclass(frozen=True)
class RoundMix:
    """STE's experience replay: `replay_fraction` of each batch from rounds before `current_round`."""

    current_round: int
    replay_fraction: float = 0.1


@dataclass
class InsertResult:
    inserted: int = 0
    duplicates: int = 0
    evicted: int = 0


@dataclass
class Sample:
    id: str
    episode: Episode
    times_sampled: int


@dataclass
class TableStats:
    name: str
    size: int
    max_size: int
    counters: dict[str, int]  # inserts, samples, duplicates, evicted, expired, removed, quarantined
    by_index: dict[str, int]  # index entry (`index_tag`) → items
    by_tool_round: dict[tuple[str, str], int]  # (tool, round) → items
    bytes: int
    quarantined: int
    config: TableConfig = field(repr=False)

    def count(self, key: TagKey, value: object) -> int:
        """Items under one index entry, e.g. `count("round", 3)`; 0 when none carry it."""
        return self.by_index.get(index_tag(key, value), 0)

    def counts(self, key: TagKey) -> dict[str, int]:
        """Items per value of one index, e.g. `counts("outcome")` → {"solved": 12, "unsolved": 3}."""
        return {value: count for tag, count in self.by_index.items() for value in tag_values([tag], key)}


def index_counts(groups: dict[str, int]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """TableStats' `by_index` (sorted) and `by_tool_round`, from the items of each group signature."""
    by_index: dict[str, int] = {}
    tool_round: dict[tuple[str, str], int] = {}
    for group, count in groups.items():
        tags = group.split("\n")
        for tag in tags:
            by_index[tag] = by_index.get(tag, 0) + count
        rounds = tag_values(tags, "round")
        for tool in tag_values(tags, "tool"):
            for r in rounds:
                tool_round[tool, r] = tool_round.get((tool, r), 0) + count
    return dict(sorted(by_index.items())), tool_round


def _script_sources() -> dict[str, str]:
    lua = resources.files("replay") / "lua"
    common = (lua / "common.lua").read_text()
    names = ["insert", "settle", "sample", "remove", "update_priorities"]
    return {name: common + (lua / f"{name}.lua").read_text() for name in names}


_SOURCES = _script_sources()
_SCRIPT_BYTES = {name: source.encode() for name, source in _SOURCES.items()}


def _resp(*args: bytes) -> bytes:
    """One command in the Redis protocol; hiredis.pack_command took 6x as long on 1 KiB payloads."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


class ReplayBuffer:
    """A client of the buffer; cheap to create, safe to use from one thread (make one per process)."""

    def __init__(self, url: str, namespace: str = NAMESPACE, seed: int | None = None):
        self.url = url
        self.namespace = namespace
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        self._scripts = {name: self.redis.register_script(source) for name, source in _SOURCES.items()}
        self._rng = random.Random(seed)
        self._configs: dict[str, TableConfig] = {}

    # ---- tables -------------------------------------------------------------------------------

    def _prefix(self, table: str) -> str:
        return f"{self.namespace}:{{{table}}}:"

    def ping(self) -> None:
        """Fail with one clear line if the server can't be reached."""
        try:
            self.redis.ping()
        except redis.AuthenticationError as error:
            raise BufferError(f"Redis at {_redacted(self.url)} refused the credentials: {error}") from None
        except redis.RedisError as error:
            raise BufferError(f"cannot reach Redis at {_redacted(self.url)}: {error}") from None

    def create_table(self, config: TableConfig) -> None:
        """Create a table, or attach to an existing one with the same config (a different one is an error)."""
        existing = self.table_config(config.name, required=False)
        if existing is not None and existing != config:
            raise BufferError(
                f"table '{config.name}' exists with a different config; purge --drop it or use the same config"
            )
        spi, min_diff, max_diff = config.rate_limiter.bounds()
        self.redis.hset(
            self._prefix(config.name) + "config",
            mapping={
                "json": config.model_dump_json(),
                "max_size": config.max_size,
                "remover": config.remover,
                "spi": repr(spi),
                "min_size": config.rate_limiter.min_size_to_sample,
                "min_diff": repr(min_diff),
                "max_diff": repr(max_diff),
                "max_times_sampled": config.max_times_sampled,
                # a uniform FIFO table never reads priorities: skip their index on the hot path
                "uses_priority": int(config.sampler == "prioritized" or config.remover == "lowest_priority"),
            },
        )
        self.redis.sadd(f"{self.namespace}:tables", config.name)
        self._configs[config.name] = config

    def table_config(self, table: str, required: bool = True) -> TableConfig | None:
        if table in self._configs:
            return self._configs[table]
        raw = self.redis.hget(self._prefix(table) + "config", "json")
        if raw is None:
            if required:
                known = ", ".join(self.tables()) or "none"
                raise BufferError(f"no table '{table}' in the buffer (tables: {known})")
            return None
        config = TableConfig.model_validate_json(raw)
        self._configs[table] = config
        return config

    def tables(self) -> list[str]:
        return sorted(name.decode() for name in self.redis.smembers(f"{self.namespace}:tables"))

    def drop_table(self, table: str) -> None:
        """Delete a table with its items, config and counters."""
        keys = list(self.redis.scan_iter(match=self._prefix(table).replace("{", "\\{").replace("}", "\\}") + "*"))
        for start in range(0, len(keys), 1000):
            self.redis.delete(*keys[start : start + 1000])
        self.redis.srem(f"{self.namespace}:tables", table)
        self._configs.pop(table, None)

    # ---- insert -------------------------------------------------------------------------------

    def insert(
        self,
        table: str,
        episodes: Iterable[Episode],
        priorities: Iterable[float] | None = None,
        timeout: float | None = None,
        ignore_rate_limiter: bool = False,
    ) -> InsertResult:
        """Insert a batch; already-present ids are skipped (so retries are safe).

        Blocks while the rate limiter holds inserts back (backpressure on explorers), up to `timeout`.
        """
        config = self.table_config(table)
        episodes = list(episodes)
        priorities = [1.0] * len(episodes) if priorities is None else [float(p) for p in priorities]
        if len(priorities) != len(episodes):
            raise BufferError(f"{len(episodes)} episodes but {len(priorities)} priorities")
        ids = [episode.id for episode in episodes]
        payloads = [encode(episode, config.max_record_bytes) for episode in episodes]
        meta: list[str] = []
        for episode, priority in zip(episodes, priorities):
            meta += [episode.id, repr(priority), "\n".join(episode.tags())]
        mode = "ignore" if ignore_rate_limiter else "limit"
        result, deadline, wait = InsertResult(), _deadline(timeout), 0.001
        start, room = 0, len(ids)  # first, the whole batch; once held back, what the limiter has room for
        while start < len(ids):
            if room:
                end = start + room
                processed, inserted, duplicates, evicted = self._insert_once(
                    table, mode, ids[start:end], meta[3 * start : 3 * end], payloads[start:end])
                result.inserted += inserted
                result.duplicates += duplicates
                result.evicted += evicted
                start, wait = start + processed, 0.001
            else:
                wait = _wait_or_timeout(deadline, wait, f"insert into '{table}' held back by the rate limiter")
            if start < len(ids):  # held back: ask without sending payloads
                room = self._room(table, ids[start])
        return result

    def _insert_once(self, table: str, mode: str, ids: list[str], meta: list[str],
                     payloads: list[bytes]) -> tuple[int, int, int, int]:
        """One MULTI: index what the limiter lets in, write the payloads beside (not through) Lua, settle.

        An id repeated within the batch is written once, with its first payload, as the index keeps its first.
        EVAL rather than EVALSHA: a script missing from the server's cache (after a restart) would fail
        inside the MULTI while the HSET still ran, leaving payloads no index points to.
        """
        prefix = self._prefix(table).encode()
        first: dict[str, bytes] = {}
        for key, payload in zip(ids, payloads):
            first.setdefault(key, payload)
        pairs = [item for key, payload in first.items() for item in (key.encode(), payload)]
        packed = b"".join([
            _resp(b"MULTI"),
            _resp(b"EVAL", _SCRIPT_BYTES["insert"], b"1", prefix, mode.encode(), *(m.encode() for m in meta)),
            _resp(b"HSET", prefix + b"data", *pairs),
            _resp(b"EVAL", _SCRIPT_BYTES["settle"], b"1", prefix),
            _resp(b"EXEC"),
        ])
        pool = self.redis.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([packed])
            for _ in range(4):  # OK, then QUEUED three times
                connection.read_response()
            replies = connection.read_response()
        except BaseException:
            connection.disconnect()  # replies may be left unread: never hand this connection out again
            raise
        finally:
            pool.release(connection)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        if replies[0][0] == -1:
            raise BufferError(f"table '{table}' was dropped while inserting")
        processed, inserted, duplicates, evicted = (int(x) for x in replies[0])
        return processed, inserted, duplicates, evicted

    def _room(self, table: str, next_id: str) -> int:
        """How many records, starting at `next_id`, the rate limiter lets in now."""
        reply = self._scripts["insert"](keys=[self._prefix(table)], args=["probe", next_id])
        if reply[0] == -1:
            raise BufferError(f"table '{table}' was dropped while inserting")
        return int(reply[0])

    # ---- sample -------------------------------------------------------------------------------

    def sample(
        self,
        table: str,
        n: int,
        *,
        round_mix: RoundMix | None = None,
        filters: Filters | None = None,
        peek: bool = False,
        timeout: float | None = None,
    ) -> list[Sample]:
        """Draw n episodes with replacement by the table's sampler (or the round mix), blocking on the rate limiter.

        `peek` reads without counting: no sample counts, no max_times_sampled removal, no rate limiting,
        which is what inspection wants. Corrupt records are quarantined with a logged reason and redrawn.
        Returns fewer than n only if the table (or the filtered part) is empty.
        """
        config = self.table_config(table)
        if round_mix is not None and filters is not None and filters.tags():
            raise BufferError("a round mix samples whole rounds; it cannot be combined with filters")
        if round_mix is not None and not 0.0 <= round_mix.replay_fraction <= 1.0:
            raise BufferError(f"replay_fraction must be within [0, 1], got {round_mix.replay_fraction}")
        mode = "mix" if round_mix is not None else config.sampler
        tags = filters.tags() if filters is not None else []
        samples: list[Sample] = []
        data = self._prefix(table) + "data"
        deadline, wait, uncount = _deadline(timeout), 0.001, 0
        while len(samples) < n:
            args = [
                n - len(samples),
                self._rng.getrandbits(48),
                "1" if peek else "0",
                mode,
                repr(config.priority_exponent),
                round_mix.current_round if round_mix else 0,
                repr(round_mix.replay_fraction) if round_mix else "0",
                uncount,
                *tags,
            ]
            reply = self._scripts["sample"](keys=[self._prefix(table)], args=args)
            status, uncount = reply[0], 0
            if status == b"missing":
                raise BufferError(f"table '{table}' was dropped while sampling")
            if status == b"limited":
                wait = _wait_or_timeout(deadline, wait, f"sample from '{table}': {reply[1].decode()}")
                continue
            if len(reply) == 1:
                break  # nothing to draw from
            wait = 0.001
            if status == b"ids":
                keys, times = reply[1::2], reply[2::2]
                payloads = self.redis.hmget(data, keys)
            else:
                keys, payloads, times = reply[1::3], reply[2::3], reply[3::3]
            corrupt = []
            with collector_paused():
                for raw_key, payload, count in zip(keys, payloads, times):
                    if payload is None:
                        uncount += 1  # removed since it was drawn: not served, so its count goes back
                        continue
                    key = raw_key.decode()
                    try:
                        samples.append(Sample(key, decode(payload, key, config.max_record_bytes), count))
                    except RecordError as error:
                        corrupt.append((key, error))
            for key, error in corrupt:
                log.warning("quarantined a corrupt record in table '%s': %s", table, error)
            if corrupt:
                self.quarantine(table, [key for key, _ in corrupt])
        return samples

    # ---- read ---------------------------------------------------------------------------------

    def get(self, table: str, episode_id: str) -> Episode:
        config = self.table_config(table)
        payload = self.redis.hget(self._prefix(table) + "data", episode_id)
        if payload is None:
            raise BufferError(f"no episode '{episode_id}' in table '{table}'")
        return decode(payload, episode_id, config.max_record_bytes)

    def resolve_id(self, table: str, prefix: str) -> str:
        """A full id from a unique prefix of at least 6 characters (as `git` does with hashes)."""
        if self.redis.hexists(self._prefix(table) + "data", prefix):
            return prefix
        if len(prefix) >= 6:
            order = self._prefix(table) + "order"
            matches = [key.decode() for key, _ in self.redis.zscan_iter(order, match=f"{prefix}*")]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise BufferError(f"id prefix '{prefix}' is ambiguous in table '{table}' ({len(matches)} episodes)")
        raise BufferError(f"no episode '{prefix}' in table '{table}'")

    def groups(self, table: str) -> dict[str, int]:
        """Group signature → number of items; the secondary indexes as stored."""
        prefix = self._prefix(table)
        groups = sorted(group.decode() for group in self.redis.smembers(prefix + "indexes"))
        with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.zcard(prefix + "grp:" + group)
            return dict(zip(groups, pipe.execute()))

    def ids(self, table: str, filters: Filters | None = None, offset: int = 0, limit: int | None = None) -> list[str]:
        """Ids in insertion order, restricted to the groups that match the filters."""
        self.table_config(table)
        prefix, tags = self._prefix(table), filters.tags() if filters else []
        stop = -1 if limit is None else offset + limit - 1
        if not tags:
            return [i.decode() for i in self.redis.zrange(prefix + "order", offset, stop)]
        keys = [prefix + "grp:" + group for group in self.groups(table) if set(tags) <= set(group.split("\n"))]
        if not keys:
            return []
        with self.redis.pipeline(transaction=True) as pipe:  # MULTI/EXEC: the temporary key is ours alone
            temp = prefix + f"tmp:ls:{self._rng.getrandbits(32)}"
            pipe.zunionstore(temp, keys, aggregate="MIN")
            pipe.zrange(temp, offset, stop)
            pipe.delete(temp)
            ids = pipe.execute()[1]
        return [i.decode() for i in ids]

    def episodes(
        self, table: str, filters: Filters | None = None, offset: int = 0, limit: int | None = None, batch: int = 256
    ) -> Iterator[tuple[str, Episode | RecordError]]:
        """Stream (id, episode) in insertion order; a corrupt record yields its RecordError instead."""
        config = self.table_config(table)
        ids = self.ids(table, filters, offset, limit)
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            for key, payload in zip(chunk, self.redis.hmget(self._prefix(table) + "data", chunk)):
                if payload is None:
                    continue  # removed since the ids were listed
                try:
                    yield key, decode(payload, key, config.max_record_bytes)
                except RecordError as error:
                    yield key, error

    def times_sampled(self, table: str, ids: list[str]) -> list[int]:
        if not ids:
            return []
        return [int(t or 0) for t in self.redis.hmget(self._prefix(table) + "times", ids)]

    def stats(self, table: str) -> TableStats:
        config = self.table_config(table)
        prefix = self._prefix(table)
        groups = self.groups(table)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(prefix + "order")
            pipe.hgetall(prefix + "stats")
            pipe.memory_usage(prefix + "data", samples=0)
            pipe.hlen(prefix + "quarantine")
            size, counters, memory, quarantined = pipe.execute()
        counters = {k.decode(): int(v) for k, v in counters.items() if k != b"seq"}
        for name in ("inserts", "samples", "duplicates", "evicted", "expired", "removed", "quarantined"):
            counters.setdefault(name, 0)
        return TableStats(table, size, config.max_size, counters, *index_counts(groups), memory or 0, quarantined,
                          config)

    # ---- change -------------------------------------------------------------------------------

    def update_priorities(self, table: str, priorities: dict[str, float]) -> int:
        """Set new priorities (e.g. from the learner's losses); ids no longer in the table are ignored."""
        self.table_config(table)
        args: list[str] = []
        for episode_id, priority in priorities.items():
            if not priority >= 0:
                raise BufferError(f"priority of '{episode_id}' must be >= 0, got {priority}")
            args += [repr(float(priority)), episode_id]
        return int(self._scripts["update_priorities"](keys=[self._prefix(table)], args=args)) if args else 0

    def remove(self, table: str, ids: list[str]) -> int:
        return self._remove(table, ids, "remove")

    def quarantine(self, table: str, ids: list[str]) -> int:
        """Move corrupt records aside: they stop being served but stay readable for a post-mortem."""
        return self._remove(table, ids, "quarantine")

    def _remove(self, table: str, ids: list[str], mode: str) -> int:
        removed = 0
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            removed += int(self._scripts["remove"](keys=[self._prefix(table)], args=[mode, *chunk]))
        return removed

    def purge(self, table: str, filters: Filters | None = None) -> int:
        """Remove every episode matching the filters (all of them without filters); the table stays."""
        ids = self.ids(table, filters)
        return self.remove(table, ids)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _wait_or_timeout(deadline: float | None, wait: float, what: str) -> float:
    """Sleep with exponential backoff (1 ms → 50 ms) or raise once the deadline has passed."""
    if deadline is not None and time.monotonic() + wait > deadline:
        raise RateLimitTimeout(f"{what}; gave up after the timeout")
    time.sleep(wait)
    return min(wait * 2, 0.05)


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1) if "://" in url else ("redis", url)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if user else ':***'}@{host}"
