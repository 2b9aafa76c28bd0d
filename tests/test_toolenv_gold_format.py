"""Gold sets: the loader's errors name file, line and field; the match rules; checking an entry by running it."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolenv.gold import (
    Expected,
    GoldCall,
    GoldFormatError,
    call_matches,
    check_entry,
    load_gold,
    match_value,
    normalize_text,
    value_at,
)
from toolenv.spec import Tool, ToolError, ToolSpec


def forecast(city, days=2):
    if city == "Atlantis":
        raise ToolError("city 'Atlantis' not found")
    return {"city": city.title(), "days": [{"day": n, "high_c": 20.5 + n} for n in range(days)]}


FORECAST = Tool(
    ToolSpec(
        "get_forecast",
        "Daily forecast.",
        "Weather",
        {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "default": 2}}, "required": ["city"]},
    ),
    forecast,
)


def entry(**overrides):
    record = {
        "id": "get_forecast-01",
        "tool": "get_forecast",
        "query": "How warm will it be in Oslo the day after tomorrow?",
        "calls": [{"name": "get_forecast", "arguments": {"city": {"value": "oslo", "match": "normalized"}, "days": {"value": 3, "match": "exact"}}}],
        "answer": {"value": 22.5, "path": "days.2.high_c", "match": "numeric", "tolerance": 0.01},
    }
    record.update(overrides)
    return record


def write_gold(tmp_path, *records, name="get_forecast"):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(record if isinstance(record, str) else json.dumps(record) for record in records) + "\n")
    return path


def test_a_valid_file_loads_and_its_entries_check_out(tmp_path):
    entries = load_gold(write_gold(tmp_path, entry(), "", entry(id="get_forecast-02", answer=None)))
    assert [e.id for e in entries] == ["get_forecast-01", "get_forecast-02"]
    assert entries[0].calls[0].argument_values() == {"city": "oslo", "days": 3}
    assert check_entry(entries[0], [FORECAST]) == (True, "get_forecast-01: ok")
    assert check_entry(entries[1], [FORECAST])[0]


def test_a_wrong_answer_or_a_failing_call_fails_the_check(tmp_path):
    wrong, failing = load_gold(write_gold(
        tmp_path,
        entry(answer={"value": 30, "path": "days.2.high_c", "match": "numeric"}),
        entry(id="get_forecast-02", calls=[{"name": "get_forecast", "arguments": {"city": {"value": "Atlantis", "match": "exact"}}}]),
    ))
    ok, detail = check_entry(wrong, [FORECAST])
    assert not ok and "expected 30" in detail and "got 22.5" in detail
    ok, detail = check_entry(failing, [FORECAST])
    assert not ok and "tool_error: city 'Atlantis' not found" in detail


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ("{not json", "not JSON"),
        (entry(query=""), "field 'query': must be a non-empty string"),
        (entry(calls=[]), "field 'calls': must be a non-empty list"),
        ({k: v for k, v in entry().items() if k != "id"}, "field 'id': missing"),
        (entry(notes="x"), "field 'notes': unknown field"),
        (entry(tool="get_weather"), "field 'tool': 'get_weather' in a file for 'get_forecast'"),
        (entry(calls=[{"name": "get_forecast", "arguments": {"city": {"value": "Oslo", "match": "fuzzy"}}}]), "field 'calls.0.arguments.city.match': must be one of"),
        (entry(calls=[{"name": "get_forecast", "arguments": {"city": "Oslo"}}]), "field 'calls.0.arguments.city': must be an object"),
        (entry(answer={"value": 1, "match": "exact", "tolerance": 0.1}), "field 'answer.tolerance'"),
        (entry(answer={"value": "many", "match": "numeric"}), "field 'answer.value': a numeric match needs a number"),
        (entry(answer={"value": "a", "match": "set"}), "field 'answer.value': a set match needs a list"),
        (entry(answer={"value": 1, "match": "exact", "path": 3}), "field 'answer.path'"),
    ],
)
def test_a_malformed_line_names_file_line_and_field(tmp_path, record, field):
    path = write_gold(tmp_path, entry(id="get_forecast-00"), record)
    with pytest.raises(GoldFormatError) as caught:
        load_gold(path)
    assert str(caught.value).startswith(f"{path}:2: ") and field in str(caught.value)


def test_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(GoldFormatError, match=":2: field 'id': 'get_forecast-01' appears twice"):
        load_gold(write_gold(tmp_path, entry(), entry()))


@pytest.mark.parametrize(
    ("expected", "actual", "rule", "tolerance", "matches"),
    [
        ({"a": [1, "x"]}, {"a": [1.0, "x"]}, "exact", None, True),
        (1, True, "exact", None, False),
        ("Paris", "paris", "exact", None, False),
        ("New York, NY", "  new york ny ", "normalized", None, True),
        ("São Paulo", "sao paulo", "normalized", None, False),
        (42, "42", "normalized", None, True),
        (["Oslo", 3], ["OSLO!", 3.0000001], "normalized", None, True),
        (3.14159, 3.1416, "numeric", 1e-4, True),
        (3.14159, 3.15, "numeric", 1e-4, False),
        (0, 1e-9, "numeric", 1e-6, True),
        ([1.0, 2.0], [1.0, 2.0000001], "numeric", 1e-6, True),
        (100, "100.0", "numeric", None, True),
        (100, None, "numeric", None, False),
        (["b", "A"], ["a", "B", "a"], "set", None, True),
        (["a", "b"], ["a"], "set", None, False),
        ("a", ["a"], "set", None, False),
        ("Paris", "The capital is Paris, France.", "contains", None, True),
        ("cat", "a category", "contains", None, False),
        ("22.5", {"high_c": 22.5}, "contains", None, True),
    ],
)
def test_match_rules(expected, actual, rule, tolerance, matches):
    assert match_value(expected, actual, rule, tolerance if tolerance is not None else 1e-6) is matches


def test_an_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="unknown match rule"):
        match_value(1, 1, "fuzzy")


def test_normalize_text():
    assert normalize_text("  Hello,\tWorld!  ") == "hello world"


def test_value_at_follows_keys_and_indexes():
    data = {"days": [{"high": 1}, {"high": 2}]}
    assert value_at(data, "") is data
    assert value_at(data, "days.1.high") == 2 and value_at(data, "days.-1.high") == 2
    with pytest.raises(LookupError, match="no '5'"):
        value_at(data, "days.5.high")


def test_call_matches_compares_under_each_argument_rule_and_counts_defaults():
    gold = GoldCall("get_forecast", {"city": Expected("Oslo", "normalized"), "days": Expected(2, "exact")})
    assert call_matches(gold, "get_forecast", '{"city": "oslo", "days": 2}') == (True, "matches")
    assert call_matches(gold, "get_forecast", {"city": "OSLO"}, FORECAST.spec)[0]  # days left at its default, 2
    assert not call_matches(gold, "get_forecast", {"city": "OSLO"})[0]  # without the spec, days is missing
    assert call_matches(gold, "get_weather", {"city": "Oslo", "days": 2}) == (False, "called 'get_weather', expected 'get_forecast'")
    assert call_matches(gold, "get_forecast", {"city": "Bergen", "days": 2})[1].startswith("argument 'city': expected 'Oslo'")
    assert call_matches(gold, "get_forecast", {"city": "Oslo", "days": 2, "hourly": True}) == (False, "unexpected argument 'hourly'")
    assert not call_matches(gold, "get_forecast", "{oops")[0]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_every_json_value_matches_itself(value):
    assert match_value(value, value, "exact") and match_value(value, value, "normalized")


@given(st.lists(JSON_VALUES, max_size=6), st.randoms())
def test_a_set_match_ignores_order(items, random):
    shuffled = list(items)
    random.shuffle(shuffled)
    assert match_value(items, shuffled, "set")
