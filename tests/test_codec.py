"""The episode record and its msgpack codec: lossless, and strict about what it accepts."""
from __future__ import annotations

import random

import msgspec
import pytest
from factories import make_dfsdt_episode, make_episode

from replay.codec import RecordError, decode, encode
from replay.episode import Episode


def test_every_field_round_trips():
    episode = make_dfsdt_episode()
    decoded = decode(encode(episode))
    assert decoded == episode
    assert decoded.search.nodes[2].messages[0].tool_calls[0].function.arguments == {"city": "City 7", "date": "2023-05-01"}
    assert decoded.outcome.reflection.solved is True
    assert decoded.tags() == ["tool=get_weather", "round=1", "outcome=solved", "version=0"]


def test_content_id_is_stable_and_content_addressed():
    assert make_episode(3).id == make_episode(3).id
    assert make_episode(3).id != make_episode(4).id
    assert len(make_episode(3).id) == 32


def _mutated(change) -> bytes:
    record = msgspec.msgpack.decode(encode(make_episode(1)))
    change(record)
    return msgspec.msgpack.encode(record)


@pytest.mark.parametrize(
    "change, field, words",
    [
        (lambda r: r.__setitem__("round", "two"), "round", "Expected `int`"),
        (lambda r: r["messages"][2].__setitem__("role", "robot"), "messages[2].role", "Invalid enum value 'robot'"),
        (lambda r: r.pop("query"), "query", "is missing"),
        (lambda r: r["outcome"].__setitem__("tool_calls_ok", -1), "outcome.tool_calls_ok", ">= 0"),
        (lambda r: r.__setitem__("schema_version", 99), "schema_version", "unknown schema version 99"),
        (lambda r: r["messages"][2]["tool_calls"][0]["function"].__setitem__("arguments", "not a dict"),
         "messages[2].tool_calls[0].function.arguments", "Expected `object`"),
    ],
)
def test_bad_records_name_the_record_and_the_field(change, field, words):
    with pytest.raises(RecordError) as caught:
        decode(_mutated(change))
    assert caught.value.record == make_episode(1).id
    assert caught.value.field == field
    assert words in str(caught.value)


def test_corrupt_bytes_name_the_key():
    data = encode(make_episode(1))
    with pytest.raises(RecordError, match="episode buffer-key-9: is not a valid msgpack episode map"):
        decode(data[: len(data) // 2], key="buffer-key-9")
    with pytest.raises(RecordError, match="not bytes"):
        decode("a string", key="k")


def test_oversize_records_are_refused_both_ways():
    big = make_episode(1, padding=5000)
    with pytest.raises(RecordError, match="over the 4096-byte record limit"):
        encode(big, max_bytes=4096)
    with pytest.raises(RecordError, match="over the 4096-byte record limit"):
        decode(encode(big), max_bytes=4096)


def test_a_thousand_corrupted_records_raise_only_record_errors():
    """A seeded fuzzer: flips, truncations, insertions and splices never escape as other exceptions."""
    rng = random.Random(7)
    originals = [encode(make_episode(i)) for i in range(10)]
    outcomes = {"decoded": 0, "rejected": 0}
    for case in range(1000):
        data = bytearray(rng.choice(originals))
        kind = case % 4
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            data = data[: rng.randrange(len(data))]
        elif kind == 2:
            at = rng.randrange(len(data))
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        else:
            other = rng.choice(originals)
            data = data[: rng.randrange(len(data))] + other[rng.randrange(len(other)):]
        try:
            episode = decode(bytes(data), key=f"case-{case}")
        except RecordError as error:
            assert str(error).startswith("episode ")
            outcomes["rejected"] += 1
        else:
            assert isinstance(episode, Episode)
            outcomes["decoded"] += 1
    assert outcomes["rejected"] > 500  # most corruptions must be caught, not silently accepted
