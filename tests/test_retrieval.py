"""Tool retrieval: NDCG on a hand-computed case, BM25 and MiniLM on a tiny tool set, the (query → tool) pairs a
run yields, and a retriever fine-tuned on a run beating MiniLM zero-shot on that run's held-out queries, end to end
through `imaginarium retriever train` and `eval`."""
from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
from factories import make_episode
from typer.testing import CliRunner

from replay.buffer import ReplayBuffer
from replay.episode import Episode, FunctionCall, Message, ToolCall
from replay.server import EmbeddedRedis
from replay.tables import TableConfig
from retrieval import open_retriever, tool_document
from retrieval.cli import app
from retrieval.metrics import mean_ndcg, ndcg_at_k
from retrieval.train import training_pairs
from toolenv.gold import GOLD_DIR, GoldEntry, load_gold_dir
from toolenv.registry import builtin_registry
from toolenv.spec import Tool, ToolSpec
from tests.cli_checks import one_error_line


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# ---- NDCG ---------------------------------------------------------------------------------------------


def test_ndcg_of_a_hand_computed_ranking():
    ranked, relevant = ["a", "b", "c", "d", "e"], {"b", "d"}
    # @1: nothing relevant in first place
    assert ndcg_at_k(ranked, relevant, 1) == 0
    # @3: DCG = 1/log2(3) (b at rank 2) = 0.6309; ideal = 1 + 1/log2(3) = 1.6309 (both relevant on top)
    assert ndcg_at_k(ranked, relevant, 3) == pytest.approx(0.6309 / 1.6309, abs=1e-4)  # 0.3869
    # @5: DCG = 1/log2(3) + 1/log2(5) (d at rank 4) = 0.6309 + 0.4307 = 1.0616; same ideal
    assert ndcg_at_k(ranked, relevant, 5) == pytest.approx(1.0616 / 1.6309, abs=1e-4)  # 0.6509
    # one relevant tool at rank 3: 1/log2(4) = 0.5 over an ideal of 1 (k >= 3), 0 before it is reached
    assert [ndcg_at_k(ranked, {"c"}, k) for k in (1, 2, 3, 5)] == [0, 0, 0.5, 0.5]
    # the mean over queries: (0.5 + 1) / 2 at k = 3
    assert mean_ndcg([ranked, ["c", "a"]], [{"c"}, {"c"}], [1, 3]) == {1: 0.5, 3: 0.75}
    assert math.isclose(ndcg_at_k(["x"], {"x"}, 5), 1.0)


# ---- BM25 and MiniLM on a tiny tool set --------------------------------------------------------------


def tool(name: str, description: str, **parameters: str) -> Tool:
    properties = {key: {"type": "string", "description": text} for key, text in parameters.items()}
    return Tool(ToolSpec(name=name, description=description, category="test",
                         parameters={"type": "object", "properties": properties}), run=lambda **_: None)


TINY = [
    tool("get_weather", "Weather forecast of a city: temperature, rain and wind.", city="City name."),
    tool("convert_currency", "Convert an amount of money from one currency to another.",
         amount="Amount of money.", currency="Target currency code, e.g. EUR."),
    tool("count_words", "Count the words and sentences of a text.", text="The text to count."),
]


def test_a_tool_document_holds_name_words_description_and_parameters():
    document = tool_document(TINY[1].spec.openai())
    assert document.splitlines() == ["convert_currency (convert currency)",
                                     "Convert an amount of money from one currency to another.",
                                     "amount: Amount of money.", "currency: Target currency code, e.g. EUR."]


@pytest.mark.parametrize("method", ["bm25", "minilm"])
def test_bm25_and_minilm_rank_the_matching_tool_first(method):
    retriever = open_retriever(TINY, method)
    queries = {"Will it rain in Paris tomorrow, and how much wind?": "get_weather",
               "Convert 20 US dollars to the currency of Japan": "convert_currency",
               "How many words does this text have?": "count_words"}
    assert [ranking[0] for ranking in retriever.top_k(list(queries), 2)] == list(queries.values())
    first = retriever.rank("Will it rain in Paris tomorrow, and how much wind?")
    assert first[0] == "get_weather" and sorted(first) == sorted(t.name for t in TINY)
    assert len(retriever.rank("the of and", k=1)) == 1  # stopwords only: BM25 matches nothing, and still ranks


# ---- a run's pairs, and fine-tuning on them -----------------------------------------------------------


def kept_episode(i: int, entry: GoldEntry) -> Episode:
    """A kept episode for a gold entry: its query, one call of its tool, as the explorer records one."""
    base = make_episode(i, tool=entry.tool)
    call = ToolCall(id=f"call_{i}", function=FunctionCall(name=entry.tool, arguments=entry.calls[0].argument_values()))
    messages = [base.messages[0], Message(role="user", content=entry.query), Message(role="assistant", tool_calls=[call]),
                Message(role="tool", content="{}", tool_call_id=call.id, name=entry.tool), base.messages[-1]]
    spec = builtin_registry().get(entry.tool).spec.openai()
    return replace(base, tool_specs=[spec], query=entry.query, messages=messages, id="")


def gold_run(run_dir: Path, entries: list[GoldEntry]) -> Path:
    """A run folder whose buffer keeps one episode per entry in `explore-train`, as `imaginarium run` leaves it."""
    with EmbeddedRedis(run_dir) as server:
        buffer = ReplayBuffer(server.url)
        for table in ("explore", "explore-train"):
            buffer.create_table(TableConfig(name=table))
        buffer.insert("explore-train", [kept_episode(i, entry) for i, entry in enumerate(entries)])
    return run_dir


def test_pairs_are_the_explored_tools_an_episode_called_once_per_query():
    entry = load_gold_dir()["get_city_info"][0]
    episode = kept_episode(0, entry)
    finish = ToolCall(id="f", function=FunctionCall(name="Finish", arguments={"final_answer": "x"}))
    with_finish = replace(episode, tool_specs=[*episode.tool_specs, {"type": "function", "function": {"name": "Finish"}}],
                          messages=[*episode.messages, Message(role="assistant", tool_calls=[finish])], id="")
    pairs = training_pairs([episode, with_finish])
    assert [(pair.query, pair.tool) for pair in pairs] == [(entry.query, "get_city_info")]
    assert pairs[0].document == tool_document(builtin_registry().get("get_city_info").spec.openai())


# MiniLM zero-shot ranks these four worst on their gold queries (NDCG@5 0.26 to 0.44 of 0.79 over all 50 tools)
WEAK = ("parse_quantity", "get_city_info", "get_title_details", "get_airport_info")
TRAIN_PER_TOOL = 5


def ndcg_rows(output: str) -> dict[str, list[float]]:
    return {match[1].split(" (")[0]: [float(x) for x in match[2].split(" | ")]
            for match in re.finditer(r"^\| ([^|]+?) \| ([0-9.| ]+?) \|$", output, re.MULTILINE)}


def test_a_retriever_fine_tuned_on_a_run_ranks_its_tools_above_zero_shot_on_held_out_queries(tmp_path):
    gold = load_gold_dir()
    run_dir = gold_run(tmp_path / "run", [entry for name in WEAK for entry in gold[name][:TRAIN_PER_TOOL]])
    result = invoke("train", "--run-dir", str(run_dir), "--epochs", "3", "--batch-size", "4", "--learning-rate", "2e-4")
    assert result.exit_code == 0, result.output
    assert "trained on 20 pairs (20 queries, 4 tools)" in result.stdout
    # held out: the other gold queries of these tools, plus the first training query of each, which eval must drop
    gold_dir = tmp_path / "gold"
    gold_dir.mkdir()
    for name in WEAK:
        lines = [line for line in (GOLD_DIR / f"{name}.jsonl").read_text().splitlines() if line.strip()]
        (gold_dir / f"{name}.jsonl").write_text("\n".join(lines[TRAIN_PER_TOOL:] + lines[:1]) + "\n")
    held_out = sum(len(gold[name]) - TRAIN_PER_TOOL for name in WEAK)
    result = invoke("eval", "--run-dir", str(run_dir), "--gold-dir", str(gold_dir))
    assert result.exit_code == 0, result.output
    assert f"held-out queries: {held_out} (gold sets of 4 tools" in result.stdout
    assert "ranked over all 50 tools; excluded 4 the fine-tuned retriever was trained on" in result.stdout
    rows = ndcg_rows(result.stdout)
    assert set(rows) == {"BM25", "MiniLM zero-shot", "MiniLM fine-tuned"}, result.stdout
    assert all(tuned > zero for tuned, zero in zip(rows["MiniLM fine-tuned"], rows["MiniLM zero-shot"])), result.stdout


def test_user_mistakes_are_one_line(tmp_path):
    assert "no run folder" in one_error_line(invoke("train", "--run-dir", str(tmp_path / "missing")))
    (tmp_path / "model").mkdir()
    assert "training.json" in one_error_line(invoke("eval", "--model", str(tmp_path / "model")))
    empty = gold_run(tmp_path / "empty", [])
    assert "nothing to train on" in one_error_line(invoke("train", "--run-dir", str(empty)))
