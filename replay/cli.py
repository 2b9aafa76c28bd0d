"""`imaginarium buffer …`: inspect the replay buffer — what was explored, per tool and round.

Without `--redis`, the buffer of a run folder is opened: the live server of a running
experiment if there is one, else an embedded server started over the folder's saved data.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import redis
import typer
from rich.console import Console
from rich.table import Table

from replay.buffer import BufferError, Filters, ReplayBuffer, RoundMix, Sample, TableStats
from replay.codec import RecordError
from replay.episode import Episode, index_tag, tag_values
from replay.export import read_jsonl, write_jsonl
from replay.render import render_episode
from replay.server import redis_url
from replay.tables import TableConfig

app = typer.Typer(help="Inspect the replay buffer: stats, ls, show, sample, export, import, purge.", no_args_is_help=True)
console = Console()

RedisOption = typer.Option(None, "--redis", envvar="IMAGINARIUM_REDIS_URL",
                           help="Redis URL (redis:// or rediss://, with user:password@ if needed).")
RunDirOption = typer.Option(Path("runs/latest"), "--run-dir", help="Run folder whose buffer to open when no --redis is given.")
TableOption = typer.Option(None, "--table", "-t", help="Table name (default: the only table).")
ToolOption = typer.Option(None, "--tool", help="Only episodes that explored this tool.")
RoundOption = typer.Option(None, "--round", help="Only episodes of this round.")
OutcomeOption = typer.Option(None, "--outcome", help="solved | unsolved | gave_up | unfinished")
VersionOption = typer.Option(None, "--policy-version", help="Only episodes produced by this policy version.")


def fail(message: str) -> None:
    """One line on stderr and exit code 2: user mistakes never get a traceback."""
    from rich.text import Text

    # the message as written: no markup ("[1, 2]"), no emoji (":x" in "nope:x")
    Console(stderr=True).print(Text.assemble(("error: ", "red"), message), highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def open_buffer(url: str | None, run_dir: Path, must_exist: bool = True, seed: int | None = None) -> Iterator[ReplayBuffer]:
    if not url and must_exist and not run_dir.exists():
        fail(f"no run folder '{run_dir}': pass --redis URL or --run-dir DIR")
    try:
        with redis_url(url, run_dir) as resolved:
            buffer = ReplayBuffer(resolved, seed=seed)
            buffer.ping()
            yield buffer
    except (BufferError, RecordError, OSError) as error:
        fail(str(error))
    except redis.RedisError as error:
        fail(f"Redis: {error}")


def pick_table(buffer: ReplayBuffer, table: str | None) -> str:
    if table:
        buffer.table_config(table)
        return table
    tables = buffer.tables()
    if len(tables) == 1:
        return tables[0]
    if not tables:
        fail("the buffer has no tables yet")
    fail(f"the buffer has several tables, pick one with --table: {', '.join(tables)}")


def _filters(tool, round_, outcome, version) -> Filters:
    return Filters(tool=tool, round=round_, outcome=outcome, policy_version=version)


def _episode_table(rows: list[tuple[str, Episode | RecordError, int]], title: str) -> Table:
    table = Table(title=title, title_justify="left", caption="r: round, v: policy version, smp: times sampled")
    for column in ("id", "tools", "r", "outcome", "v", "calls", "smp"):
        table.add_column(column, no_wrap=True, max_width=18)
    table.add_column("query", overflow="fold", min_width=24, ratio=1)
    for episode_id, episode, times in rows:
        if isinstance(episode, RecordError):
            table.add_row(episode_id[:10], "[red]corrupt[/]", "", "", "", "", str(times), str(episode))
            continue
        calls = episode.outcome.tool_calls_ok + episode.outcome.tool_calls_failed
        table.add_row(episode_id[:10], ", ".join(episode.tools), str(episode.round), episode.outcome.label,
                      str(episode.policy_version), str(calls), str(times),
                      episode.query[:120])
    return table


@app.command()
def stats(redis_: Optional[str] = RedisOption, run_dir: Path = RunDirOption, table: Optional[str] = TableOption):
    """Counts per table, tool and round; sizes; sample counts."""
    with open_buffer(redis_, run_dir) as buffer:
        names = [pick_table(buffer, table)] if table else buffer.tables()
        if not names:
            console.print("the buffer is empty: no tables")
            return
        overview = Table(title="tables", title_justify="left")
        for column in ("table", "size", "inserts", "samples", "dups", "evict", "expire", "quar", "MiB"):
            overview.add_column(column, justify="left" if column == "table" else "right", no_wrap=True)
        per_table = []
        for name in names:
            s = buffer.stats(name)
            c = s.counters
            overview.add_row(name, f"{s.size}/{s.max_size}", str(c["inserts"]), str(c["samples"]),
                             str(c["duplicates"]), str(c["evicted"]), str(c["expired"]), str(s.quarantined),
                             f"{s.bytes / 2**20:.1f}")
            per_table.append(s)
        console.print(overview)
        for s in per_table:
            console.print(f"{s.name}: sampler {s.config.sampler}, remover {s.config.remover}, "
                          f"max_times_sampled {s.config.max_times_sampled or 'unlimited'}, "
                          f"rate limiter {s.config.rate_limiter.kind}", highlight=False)
            console.print(_tool_round_matrix(s))
            others = {index_tag(key, value): s.count(key, value)
                      for key in ("outcome", "version") for value in tag_values(s.by_index, key)}
            if others:
                console.print("  " + "   ".join(f"{k}: {v}" for k, v in others.items()), highlight=False)


def _tool_round_matrix(stats: TableStats) -> Table:
    tools = sorted(tag_values(stats.by_index, "tool"))
    rounds = sorted(tag_values(stats.by_index, "round"), key=int)
    matrix = Table(title=f"{stats.name}: episodes per tool and round", title_justify="left")
    matrix.add_column("tool")
    for r in rounds:
        matrix.add_column(f"round {r}", justify="right")
    matrix.add_column("total", justify="right")
    for tool in tools:
        matrix.add_row(tool, *(str(stats.by_tool_round.get((tool, r), 0)) for r in rounds),
                       str(stats.count("tool", tool)))
    return matrix


@app.command("ls")
def list_episodes(
    redis_: Optional[str] = RedisOption, run_dir: Path = RunDirOption, table: Optional[str] = TableOption,
    tool: Optional[str] = ToolOption, round_: Optional[int] = RoundOption, outcome: Optional[str] = OutcomeOption,
    policy_version: Optional[int] = VersionOption,
    limit: int = typer.Option(20, help="How many to list."), offset: int = typer.Option(0, help="Skip this many first."),
):
    """List episodes in insertion order, filtered by tool / round / outcome / policy version."""
    with open_buffer(redis_, run_dir) as buffer:
        name = pick_table(buffer, table)
        rows = list(buffer.episodes(name, _filters(tool, round_, outcome, policy_version), offset, limit))
        times = buffer.times_sampled(name, [i for i, _ in rows])
        console.print(_episode_table([(i, e, t) for (i, e), t in zip(rows, times)], f"{name}: {len(rows)} episodes"))


@app.command()
def show(
    episode_id: str = typer.Argument(..., help="Episode id, or a unique prefix of at least 6 characters."),
    redis_: Optional[str] = RedisOption, run_dir: Path = RunDirOption, table: Optional[str] = TableOption,
    limit: int = typer.Option(1200, help="Clip each message to this many characters."),
):
    """Render one episode as a readable conversation, with its outcome and search tree."""
    with open_buffer(redis_, run_dir) as buffer:
        name = pick_table(buffer, table)
        episode = buffer.get(name, buffer.resolve_id(name, episode_id))
        console.print(render_episode(episode, limit))


@app.command()
def sample(
    redis_: Optional[str] = RedisOption, run_dir: Path = RunDirOption, table: Optional[str] = TableOption,
    n: int = typer.Option(5, "-n", help="How many to draw."),
    tool: Optional[str] = ToolOption, round_: Optional[int] = RoundOption, outcome: Optional[str] = OutcomeOption,
    policy_version: Optional[int] = VersionOption,
    round_mix: Optional[int] = typer.Option(None, help="Draw as the learner of this round does (STE replay)."),
    replay_fraction: float = typer.Option(0.1, help="With --round-mix: the share from earlier rounds."),
    seed: Optional[int] = typer.Option(None, help="Seed the draw to repeat it."),
):
    """Draw episodes by the table's sampler without counting them (inspection does not consume the buffer)."""
    with open_buffer(redis_, run_dir, seed=seed) as buffer:
        name = pick_table(buffer, table)
        mix = RoundMix(round_mix, replay_fraction) if round_mix is not None else None
        filters = _filters(tool, round_, outcome, policy_version)
        drawn: list[Sample] = buffer.sample(name, n, round_mix=mix, filters=filters if filters.tags() else None, peek=True)
        console.print(_episode_table([(s.id, s.episode, s.times_sampled) for s in drawn], f"{name}: {len(drawn)} drawn"))


@app.command("export")
def export(
    path: Path = typer.Argument(..., help="JSONL file to write (OpenAI/HF chat format with tools)."),
    redis_: Optional[str] = RedisOption, run_dir: Path = RunDirOption, table: Optional[str] = TableOption,
    tool: Optional[str] = ToolOption, round_: Optional[int] = RoundOption, outcome: Optional[str] = OutcomeOption,
    policy_version: Optional[int] = VersionOption,
):
    """Write episodes as JSONL that TRL and LLaMA-Factory read; `import` reads it back losslessly."""
    with open_buffer(redis_, run_dir) as buffer:
        name = pick_table(buffer, table)
        skipped: list[str] = []

        def good() -> Iterator[Episode]:
            for episode_id, episode in buffer.episodes(name, _filters(tool, round_, outcome, policy_version)):
                if isinstance(episode, RecordError):
                    skipped.append(str(episode))
                else:
                    yield episode

        count = write_jsonl(good(), path)
        console.print(f"wrote {count} episodes from '{name}' to {path}")
        for reason in skipped:
            console.print(f"[yellow]skipped corrupt record:[/] {reason}", highlight=False)


@app.command("import")
def import_(
    path: Path = typer.Argument(..., help="JSONL file written by `export`."),
    redis_: Optional[str] = RedisOption, run_dir: Path = RunDirOption,
    table: str = typer.Option("explore", "--table", "-t", help="Table to import into (created if missing)."),
    max_size: int = typer.Option(100_000, help="max_size of the table if it is created."),
):
    """Read an export back into a table; episodes already present are skipped."""
    if not path.exists():
        fail(f"no such file: {path}")
    with open_buffer(redis_, run_dir, must_exist=False) as buffer:
        if buffer.table_config(table, required=False) is None:
            buffer.create_table(TableConfig(name=table, max_size=max_size))
        batch, total = [], {"inserted": 0, "duplicates": 0, "evicted": 0}
        for episode in read_jsonl(path):
            batch.append(episode)
            if len(batch) == 256:
                _add(total, buffer.insert(table, batch, ignore_rate_limiter=True))
                batch = []
        _add(total, buffer.insert(table, batch, ignore_rate_limiter=True))
        console.print(f"imported into '{table}': {total['inserted']} new, {total['duplicates']} already present, "
                      f"{total['evicted']} evicted by max_size")


def _add(total: dict[str, int], result) -> None:
    for key in total:
        total[key] += getattr(result, key)


@app.command()
def purge(
    redis_: Optional[str] = RedisOption, run_dir: Path = RunDirOption, table: Optional[str] = TableOption,
    tool: Optional[str] = ToolOption, round_: Optional[int] = RoundOption, outcome: Optional[str] = OutcomeOption,
    policy_version: Optional[int] = VersionOption,
    drop: bool = typer.Option(False, help="Also delete the table itself (config and counters)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
):
    """Remove episodes matching the filters (all of the table's without filters)."""
    with open_buffer(redis_, run_dir) as buffer:
        name = pick_table(buffer, table)
        filters = _filters(tool, round_, outcome, policy_version)
        if drop and filters.tags():
            fail("--drop deletes the whole table; it cannot be combined with filters")
        count = len(buffer.ids(name, filters))
        what = f"table '{name}' and its {count} episodes" if drop else f"{count} episodes from '{name}'"
        if not yes:
            typer.confirm(f"Delete {what}?", abort=True)
        if drop:
            buffer.drop_table(name)
        else:
            buffer.purge(name, filters)
        console.print(f"deleted {what}")
