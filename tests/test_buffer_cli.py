"""`imaginarium buffer …` as a user drives it: readable output, one-line errors, no tracebacks."""
from __future__ import annotations

import json

import pytest
from factories import make_dfsdt_episode, make_episode
from typer.testing import CliRunner

from launcher.cli import app
from replay.tables import TableConfig

runner = CliRunner()


def run(*args, input=None):
    result = runner.invoke(app, ["buffer", *args], input=input)
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    return result


def one_line_error(result) -> str:
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def filled(buffer):
    buffer.create_table(TableConfig(name="explore"))
    episodes = [make_episode(i, round=1 + i % 2, tool=["get_weather", "convert_units"][i % 2], solved=i % 3 > 0)
                for i in range(12)] + [make_dfsdt_episode()]
    buffer.insert("explore", episodes)
    return buffer, episodes


def test_stats_shows_tables_and_the_tool_round_matrix(filled):
    buffer, _ = filled
    result = run("stats", "--redis", buffer.url)
    assert result.exit_code == 0
    assert "explore" in result.stdout and "episodes per tool and round" in result.stdout
    assert "convert_units" in result.stdout and "round 2" in result.stdout


def test_ls_filters_and_show_renders_a_conversation(filled):
    buffer, episodes = filled
    result = run("ls", "--redis", buffer.url, "--tool", "convert_units", "--limit", "50")
    assert result.exit_code == 0 and "6 episodes" in result.stdout and "get_weather" not in result.stdout
    dfsdt = episodes[-1]
    shown = run("show", dfsdt.id[:8], "--redis", buffer.url)
    assert shown.exit_code == 0
    for text in ("imagined query", "tool result: get_weather", "call get_weather", "dfsdt: 4 nodes", "backtracks", "✓"):
        assert text in shown.stdout


def test_sample_peeks_without_consuming(filled):
    buffer, _ = filled
    result = run("sample", "--redis", buffer.url, "-n", "4", "--round-mix", "2", "--replay-fraction", "0.5", "--seed", "3")
    assert result.exit_code == 0 and "4 drawn" in result.stdout
    assert buffer.stats("explore").counters["samples"] == 0


def test_export_import_and_purge(filled, tmp_path):
    buffer, episodes = filled
    path = tmp_path / "out.jsonl"
    assert run("export", str(path), "--redis", buffer.url).exit_code == 0
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == len(episodes) and {"messages", "tools", "imaginarium"} <= set(lines[0])
    result = run("import", str(path), "--redis", buffer.url, "--table", "copy")
    assert result.exit_code == 0 and f"{len(episodes)} new" in result.stdout
    assert run("import", str(path), "--redis", buffer.url, "--table", "copy").stdout.count("already present") == 1
    # purge asks first; "n" keeps everything
    declined = run("purge", "--redis", buffer.url, "--table", "copy", "--round", "1", input="n\n")
    assert declined.exit_code == 1 and buffer.stats("copy").size == len(episodes)
    assert run("purge", "--redis", buffer.url, "--table", "copy", "--round", "1", "--yes").exit_code == 0
    assert buffer.stats("copy").by_index.get("round=1") is None and buffer.stats("copy").size == 6
    assert run("purge", "--redis", buffer.url, "--table", "copy", "--drop", "--yes").exit_code == 0
    assert buffer.tables() == ["explore"]


def test_errors_are_one_line(buffer, tmp_path):
    assert "no tables" in run("stats", "--redis", buffer.url).stdout  # an empty buffer is not an error
    assert "has no tables yet" in one_line_error(run("ls", "--redis", buffer.url))
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in one_line_error(run("stats", "--redis", "redis://127.0.0.1:1/0"))
    assert "no run folder" in one_line_error(run("stats", "--run-dir", str(tmp_path / "nowhere")))
    buffer.create_table(TableConfig(name="explore"))
    assert "no episode 'deadbeef'" in one_line_error(run("show", "deadbeef", "--redis", buffer.url))
    assert "no table 'other'" in one_line_error(run("ls", "--redis", buffer.url, "--table", "other"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert f"{bad}:1" in one_line_error(run("import", str(bad), "--redis", buffer.url))
    assert "no such file" in one_line_error(run("import", str(tmp_path / "missing.jsonl"), "--redis", buffer.url))


def test_run_dir_opens_the_saved_buffer_of_a_finished_run(tmp_path):
    """With no URL, the buffer of a run folder is served from its AOF by an embedded server."""
    path = tmp_path / "episodes.jsonl"
    from replay.export import write_jsonl

    write_jsonl([make_episode(i) for i in range(3)], path)
    run_dir = tmp_path / "run"
    assert run("import", str(path), "--run-dir", str(run_dir)).exit_code == 0  # its server stops afterwards
    result = run("ls", "--run-dir", str(run_dir))
    assert result.exit_code == 0 and "3 episodes" in result.stdout
