"""The built-in gold sets: at least 10 entries per tool, each proven by running its own calls, none leaked.

Collects over whatever suites and gold files exist, so it grows with them.
"""
import json

import pytest

from toolenv.gold import GOLD_DIR, check_entry, load_gold_dir, normalize_text
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner

MIN_ENTRIES_PER_TOOL = 10
REGISTRY = builtin_registry()
GOLD = load_gold_dir(GOLD_DIR)  # a malformed file fails here, naming file, line and field
TOOL_NAMES = REGISTRY.names()


@pytest.fixture(scope="module")
def runner():
    return ToolRunner(REGISTRY)


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_every_builtin_tool_has_enough_gold(name):
    assert len(GOLD.get(name, [])) >= MIN_ENTRIES_PER_TOOL, f"{GOLD_DIR / name}.jsonl has {len(GOLD.get(name, []))} entries"


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_every_gold_entry_passes_its_own_check(name, runner):
    failures = [detail for ok, detail in (check_entry(entry, runner) for entry in GOLD.get(name, [])) if not ok]
    assert not failures, "\n".join(failures)


def test_every_gold_file_is_for_a_builtin_tool():
    assert sorted(set(GOLD) - set(TOOL_NAMES)) == []


def test_gold_ids_are_unique_across_files():
    ids = [entry.id for entries in GOLD.values() for entry in entries]
    assert len(ids) == len(set(ids))


def test_gold_queries_never_appear_in_what_exploration_sees():
    """Specs (descriptions and examples) are shown during exploration; gold queries must stay held out."""
    seen_by_exploration = normalize_text(" ".join(json.dumps(tool.spec.openai()) + json.dumps(tool.spec.examples) for tool in REGISTRY))
    leaked = [entry.id for entries in GOLD.values() for entry in entries if normalize_text(entry.query) in seen_by_exploration]
    assert leaked == []
