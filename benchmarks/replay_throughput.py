"""Replay buffer throughput vs raw Redis, side by side on one server in one run.

    .venv/bin/python benchmarks/replay_throughput.py [--episodes 40000] [--batch 256]

Starts one embedded redis-server (AOF on, as in a real run), measures `redis-benchmark -P 16
-d 1024` SET and GET on it, then the buffer's inserts/s and samples/s of ~1 KiB episodes with
1 and 2 client processes, and prints the ratios buffer / raw.
"""
from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import subprocess
import tempfile
import time

from rich.console import Console
from rich.table import Table

from replay.buffer import ReplayBuffer
from replay.codec import encode
from replay.episode import Episode, FunctionCall, Message, Outcome, Reflection, ToolCall
from replay.server import EmbeddedRedis
from replay.tables import TableConfig

TABLE = "bench"


def one_kib_episode(i: int) -> Episode:
    """A realistic short trial (query, call, result, answer) padded to about 1 KiB encoded."""
    call = ToolCall(id=f"c{i}", function=FunctionCall(name="convert_currency", arguments={"amount": i, "to": "JPY"}))
    messages = [
        Message(role="user", content=f"How many yen is {i} euros at the reference rate?"),
        Message(role="assistant", tool_calls=[call]),
        Message(role="tool", name="convert_currency", tool_call_id=f"c{i}",
                content=f'{{"amount": {i}, "from": "EUR", "to": "JPY", "rate": 156.33, "result": {i * 156.33:.2f}}}'),
        Message(role="assistant", content=f"{i} EUR is {i * 156.33:.2f} JPY at the 2024-01-02 reference rate."),
    ]
    episode = Episode(tools=["convert_currency"], tool_specs=[], round=1 + i % 4, query=messages[0].content,
                      messages=messages, policy_version=i % 3,
                      outcome=Outcome(final_answer=messages[-1].content, tool_calls_ok=1, last_call_ok=True,
                                      reflection=Reflection(solved=True, reason="the amount was converted")))
    pad = 1024 - len(encode(episode))
    episode.messages[0].content += " " * max(pad, 0)
    episode.id = ""
    episode.__post_init__()
    return episode


def raw_redis(port: int, requests: int) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-P", "16", "-d", "1024", "-t", "set,get", "-n", str(requests), "--csv"],
        capture_output=True, text=True, check=True,
    ).stdout
    return {row["test"]: float(row["rps"]) for row in csv.DictReader(io.StringIO(out))}


def _insert_worker(url: str, start: int, count: int, batch: int, go, done) -> None:
    client = ReplayBuffer(url)
    episodes = [one_kib_episode(i) for i in range(start, start + count)]
    go.wait()
    for k in range(0, count, batch):
        client.insert(TABLE, episodes[k : k + batch])
    done.put(time.perf_counter())


def _sample_worker(url: str, count: int, batch: int, seed: int, go, done) -> None:
    client = ReplayBuffer(url, seed=seed)
    go.wait()
    for _ in range(count // batch):
        client.sample(TABLE, batch)
    done.put(time.perf_counter())


def run_clients(target, args_for, clients: int) -> float:
    """Start `clients` processes, release them together, return wall seconds until the last finishes."""
    context = multiprocessing.get_context("spawn")
    go, done = context.Event(), context.Queue()
    processes = [context.Process(target=target, args=(*args_for(c), go, done)) for c in range(clients)]
    for p in processes:
        p.start()
    time.sleep(3.0)  # let them import and build their episodes
    started = time.perf_counter()
    go.set()
    finished = max(done.get(timeout=600) for _ in processes)
    for p in processes:
        p.join()
    return finished - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    console = Console()
    with EmbeddedRedis(tempfile.mkdtemp(prefix="bench-")) as server:
        console.print(f"episode size: {len(encode(one_kib_episode(7)))} bytes encoded; batch {args.batch}")
        raw = raw_redis(server.port, 200_000)
        buffer = ReplayBuffer(server.url)
        rows = []
        for clients in (1, 2):
            buffer.redis.flushdb()
            buffer.create_table(TableConfig(name=TABLE, max_size=10 * args.episodes))
            per = args.episodes // clients
            seconds = run_clients(_insert_worker, lambda c: (server.url, c * per, per, args.batch), clients)
            inserts = per * clients / seconds
            assert buffer.stats(TABLE).size == per * clients, "every insert must land"
            seconds = run_clients(_sample_worker, lambda c: (server.url, per, args.batch, c), clients)
            samples = per * clients / seconds
            rows.append((clients, inserts, samples))
    table = Table(title="replay buffer vs raw redis (items/s, same server, one run)", title_justify="left")
    for column in ("what", "items/s", "ratio to raw"):
        table.add_column(column, justify="left" if column == "what" else "right")
    table.add_row("redis-benchmark SET -P 16 -d 1024", f"{raw['SET']:,.0f}", "1.00")
    table.add_row("redis-benchmark GET -P 16 -d 1024", f"{raw['GET']:,.0f}", "1.00")
    for clients, inserts, samples in rows:
        table.add_row(f"buffer insert, {clients} client(s)", f"{inserts:,.0f}", f"{inserts / raw['SET']:.2f}")
        table.add_row(f"buffer sample, {clients} client(s)", f"{samples:,.0f}", f"{samples / raw['GET']:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
