"""Replay buffer throughput vs raw Redis, side by side on one server in one run.

    .venv/bin/python benchmarks/replay_throughput.py [--episodes 40000] [--batch 256] [--sizes 1024 4096]

Starts one embedded redis-server (AOF on, as in a real run). For each episode size, and 1 and 2
client processes, it measures the buffer's inserts/s and samples/s of episodes of about SIZE bytes
encoded, each right after `redis-benchmark -P 16 -d SIZE` SET or GET on the same server, and prints
the ratios buffer / raw. Goal (issue 15): inserts >= 0.2 of SET and samples >= 0.35 of GET.
Ratios, not absolute rates, are what compare across machines and across noisy neighbours.
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
GOALS = {"insert": 0.2, "sample": 0.35}


def sized_episode(i: int, size: int = 1024) -> Episode:
    """A realistic short trial (query, call, result, answer) padded to about `size` bytes encoded."""
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
    pad = size - len(encode(episode))
    episode.messages[0].content += " " * max(pad, 0)
    episode.id = ""
    episode.__post_init__()
    return episode


def raw_redis(port: int, size: int, requests: int) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-P", "16", "-d", str(size), "-t", "set,get", "-n", str(requests), "--csv"],
        capture_output=True, text=True, check=True,
    ).stdout
    return {row["test"]: float(row["rps"]) for row in csv.DictReader(io.StringIO(out))}


def _insert_worker(url: str, start: int, count: int, batch: int, size: int, go, done) -> None:
    client = ReplayBuffer(url)
    episodes = [sized_episode(i, size) for i in range(start, start + count)]
    go.wait()
    for k in range(0, count, batch):
        client.insert(TABLE, episodes[k : k + batch])
    done.put(time.perf_counter())


def _sample_worker(url: str, count: int, batch: int, seed: int, go, done) -> None:
    client = ReplayBuffer(url, seed=seed)
    go.wait()
    for _ in range(count // batch):
        assert len(client.sample(TABLE, batch)) == batch
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


def measure(server: EmbeddedRedis, size: int, episodes: int, batch: int) -> list[tuple[str, float, float]]:
    """(what, items/s, ratio to raw) rows for one episode size. redis-benchmark runs right before each
    buffer phase, so that a ratio compares rates measured seconds apart on a machine others share."""
    buffer = ReplayBuffer(server.url)
    rows = []
    for clients in (1, 2):
        buffer.redis.flushdb()
        buffer.create_table(TableConfig(name=TABLE, max_size=10 * episodes))
        per = episodes // clients
        raw = raw_redis(server.port, size, 200_000)
        seconds = run_clients(_insert_worker, lambda c: (server.url, c * per, per, batch, size), clients)
        inserts = per * clients / seconds
        assert buffer.stats(TABLE).size == per * clients, "every insert must land"
        rows += [(f"redis-benchmark SET -P 16 -d {size}", raw["SET"], 1.0),
                 (f"buffer insert, {clients} client(s)", inserts, inserts / raw["SET"])]
        raw = raw_redis(server.port, size, 200_000)
        seconds = run_clients(_sample_worker, lambda c: (server.url, per, batch, c), clients)
        samples = per * clients / seconds
        rows += [(f"redis-benchmark GET -P 16 -d {size}", raw["GET"], 1.0),
                 (f"buffer sample, {clients} client(s)", samples, samples / raw["GET"])]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096], help="episode sizes, bytes encoded")
    args = parser.parse_args()
    console = Console()
    summary = []
    with EmbeddedRedis(tempfile.mkdtemp(prefix="bench-")) as server:
        for size in args.sizes:
            encoded = len(encode(sized_episode(7, size)))
            rows = measure(server, size, args.episodes, args.batch)
            table = Table(title=f"episodes of {encoded} bytes encoded, batch {args.batch}: buffer vs raw redis "
                                f"(items/s, same server, one run)", title_justify="left")
            for column in ("what", "items/s", "ratio to raw"):
                table.add_column(column, justify="left" if column == "what" else "right")
            for what, rate, ratio in rows:
                table.add_row(what, f"{rate:,.0f}", f"{ratio:.2f}")
            console.print(table)
            ratios = {what: ratio for what, _, ratio in rows if what.startswith("buffer")}
            summary.append(f"{size} B: inserts " + " / ".join(f"{ratios[f'buffer insert, {c} client(s)']:.2f}" for c in (1, 2))
                           + f" of SET (1 / 2 clients; goal {GOALS['insert']}), samples "
                           + " / ".join(f"{ratios[f'buffer sample, {c} client(s)']:.2f}" for c in (1, 2))
                           + f" of GET (goal {GOALS['sample']})")
    for line in summary:
        print(line)  # unwrapped, whatever the terminal's width


if __name__ == "__main__":
    main()
