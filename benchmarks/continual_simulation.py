"""Scale by simulation: both schedules (`rounds`, `continual`) with N scripted explorers and a learner stand-in,
through the real Redis buffer and real Ray, on the same workload.

    .venv/bin/python benchmarks/continual_simulation.py            # N = 1, 8, 64 (about 4 minutes on 2 cores)
    .venv/bin/python benchmarks/continual_simulation.py --quick    # N = 1, 8, fewer steps (about a minute)
    .venv/bin/python benchmarks/continual_simulation.py --actors 64 --what-if publish,progress,stats,prefetch
    .venv/bin/python benchmarks/continual_simulation.py --actors 64 --profile    # cProfile of the driver

What runs for real: `launcher.run.Rounds` and `launcher.run.Continual` (the schedules, on a `launcher.run.Run`),
`Run.train`, `learner.data.train_loop` / `draw_batch` / `_ready` (sample → staleness → examples → packing → batch),
`learner.publish.publish`, `launcher.explore.plan_units` / `run_units`, `Metrics` (metrics.jsonl and TensorBoard),
an `EmbeddedRedis` with the buffer's Lua scripts and rate limiter, and the explorer actor's own code:
`actors.explorer.Explorer.stream / _push / stop / progress / load_weights / explore / exploit`, in N Ray actors
(threaded, `max_concurrency=4`, `num_cpus=0.01` each), on a local Ray.

What is stood in:
- STE's trials (`actors.ste.explore`: policy, tools, memory): a scripted generator in each explorer process yields
  one episode per session per trial step after `trial_s` s (uniform jitter ± `--jitter`), the explorer's own pushes
  counted in that time, the limiter's backpressure not. Episodes are real `replay.episode.Episode` records (a tool
  call with values the user stated, its result, a grounded final answer; 2.7 KB) that `actors.exploit.rejection`
  keeps. Explorer processes import `actors.explorer` beside a stand-in `actors.policy` (the one module that needs
  torch), so 64 of them take ~60 MB each and start in about half a minute.
- The learner (`LearnerGroup`): `train_step` takes `--step-s`; checkpoints are folders; the weights a tiny object.
  By default the data path (build_examples and packing, not the Redis round trips) is taken as overlapped with the
  step (train_step sleeps step_s less it), as a learner that prepares the next batch during the GPU step would; so
  the learner's step is step_s plus the driver's serial work, whatever the load does to packing. `--serial` takes
  the data path as today's train_loop does (serial) and balances the rates on a measured step instead.
- The evaluator: `evaluate` takes `--eval-s` (default 0) and returns an empty report.
- The tokenizer: `--tokenizer tiny` (default) renders a message as two tokens, so `build_examples` and packing run
  their code on tiny examples. On this machine the real data path costs ~30-80 ms to tokenize and 180-500 ms to pack
  one batch of 16 demo-sized episodes (printed at the start): at this workload's 256 samples/s it would measure the
  packing, not the loop. `--tokenizer memo` (SmolLM2's, each text once) and `real` are there to run it anyway.

Workload (the same for both schedules): `--rounds` rounds of `--tools` tools; per round `--steps` learner steps of
`--batch` episodes and steps × batch / spi episodes explored, all kept (`exploit.filter: false`, no paraphrases).
Balanced rates (`--balance 1`): the explorers' production rate is the learner's nominal consumption rate (batch /
step_s) / spi: trial_s = N × sessions_per_call × step_s × spi / batch. The continual run's train table has the
`sample_to_insert_ratio` limiter (`--spi`, `--min-size`, `--error-buffer`), the rounds run a `min_size` one (the
config refuses the ratio limiter in rounds). `run.report()` (matplotlib) is left out of both.

Measured per N and schedule: wall time (the schedule's rounds and the last evaluations); learner steps; episodes
explored per round; lost episodes (ids whose insert the explorers' buffer client acknowledged, missing from the
explore or the train table); learner idle (time actually held back: from draw_batch's first "not ready" to
"ready", plus the sample's own backoff, ÷ the loops' seconds) beside what the run logs (train_loop's waited_s, which
also counts the stats and sample round trips of draws never held back); learner busy (steps × step_s ÷ wall);
explorer idle (the buffer client's backoff sleeps on inserts ÷ the streams' wall) beside what the explorers report
(`_push`'s waited_s, which also counts every insert's own round trip); samples per insert of the train table and
the limiter's diff (inserts × spi − samples) before every step, against its bounds; CPU cores used by the
explorers, redis-server, the driver and the rest of the machine; the driver's time per learner step by part. A
watchdog stops the explorers if neither table moves for `--stall-s` and reports the stall (a deadlock).

`--what-if` runs proposed changes to the schedule code, patched in this process only, to measure what they buy:
publish (no wait for the explorers' acks), progress (explorer progress collected without blocking the learner),
stats (`ReplayBuffer.stats` in one round trip), prefetch (train_loop draws the next batch while one trains).

The last line, for the largest N:

    lost L; continual/rounds wall R; learner idle I; explorer idle E; samples/insert S (target T)
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import math
import pstats
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import launcher  # noqa: F401  (first: a local Ray on loopback, see launcher/__init__.py)
from replay.buffer import ReplayBuffer

GOALS = {"lost": 0, "wall": 0.55, "learner_idle": 0.05}
TEXT_VARIANTS = 64  # distinct episode texts per tool: the memo tokenizer tokenizes each once


# ---- the explorer side (runs in the explorer actors' processes: light imports only) ------------------------------

def _stand_in_policy_module() -> None:
    """Make `actors.policy` importable without torch/transformers/xgrammar: the explorer code imports it for
    `Sampling`, `Policy` and `Reply` (type hints and defaults); the scripted trials never call a policy."""
    import types
    from dataclasses import make_dataclass

    if "actors.policy" in sys.modules:
        return
    module = types.ModuleType("actors.policy")
    # real types, not strings: this module's annotations are strings, which dataclasses resolve through a module
    # that an explorer process may not have under this name
    Sampling = make_dataclass("Sampling", [("temperature", float, 0.7), ("top_p", float, 0.95),
                                           ("max_new_tokens", int, 256), ("seed", object, None)], frozen=True)

    class Policy:  # a Protocol in the real module
        pass

    class Reply:
        pass

    for cls in (Sampling, Policy, Reply):
        cls.__module__ = "actors.policy"
        setattr(module, cls.__name__, cls)
    sys.modules["actors.policy"] = module


class VersionOnlyPolicy:
    """What the explorer code asks of its policy outside STE: the version it holds, and new weights."""

    def __init__(self) -> None:
        self.version = 0

    def load_weights(self, version: int, state_dict) -> None:
        self.version = version


class CountingBuffer(ReplayBuffer):
    """The explorer's buffer client, recording every episode id an insert acknowledged (returned for)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.acked: dict[str, set[str]] = defaultdict(set)

    def insert(self, table, episodes, *args, **kwargs):
        episodes = list(episodes)
        result = super().insert(table, episodes, *args, **kwargs)
        self.acked[table].update(episode.id for episode in episodes)
        return result


def tool_spec(tool: str) -> dict:
    """An OpenAI-style spec with a documentation-sized description (a demo episode is ~3.5 KB)."""
    description = (f"Daily weather of a city on a date ({tool}). " +
                   " ".join(f"The field {word} reports the {word} of the day in the requested units."
                            for word in ("temperature", "humidity", "pressure", "wind", "rain", "snow", "cloud",
                                         "visibility", "sunrise", "sunset", "uv", "dew", "gusts", "storms")))
    return {"type": "function", "function": {
        "name": tool, "description": description,
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "description": "The city, as the user names it."},
                                      "date": {"type": "string", "description": "The day, as YYYY-MM-DD."},
                                      "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric"}},
                       "required": ["city", "date"]}}}


def make_episode(tool: str, round: int, variant: int, *, version: int = 0, actor: str = "explorer-0",
                 session: str = "s0", trial: int = 0, created_at: float = 0.0, generate_s: float = 0.0):
    """A valid, kept ReAct episode (like tests/factories.make_episode, but one `rejection` lets through): the user
    states the values, the assistant calls the tool with them, reads the result and answers from it. Its text is
    one of TEXT_VARIANTS per tool; `created_at`, `actor`, `session` and `trial` make its id unique."""
    from replay.episode import (Episode, FunctionCall, Message, Outcome, Reflection, TokenCounts, ToolCall)

    city, day = f"City {variant}", f"2023-05-{1 + variant % 28:02d}"
    degrees = 5 + variant % 30
    query = f"How warm was it in {city} on {day}? Please give me the temperature in degrees Celsius."
    call = ToolCall(id=f"call_{variant}", function=FunctionCall(name=tool, arguments={"city": city, "date": day}))
    result = json.dumps({"city": city, "date": day, "temperature_c": degrees, "humidity_pct": 40 + variant % 50,
                         "conditions": "partly cloudy with light winds from the west in the afternoon"})
    answer = f"On {day} it was {degrees} °C in {city}, partly cloudy."
    messages = [
        Message(role="system", content="You are a helpful assistant. You can call tools; call one when a request "
                                       "needs data, then answer from what it returned."),
        Message(role="user", content=query),
        Message(role="assistant", content=None, tool_calls=[call]),
        Message(role="tool", content=result, tool_call_id=call.id, name=tool),
        Message(role="assistant", content=answer),
    ]
    return Episode(
        tools=[tool], tool_specs=[tool_spec(tool)], round=round, query=query, messages=messages,
        outcome=Outcome(final_answer=answer, tool_calls_ok=1, last_call_ok=True,
                        reflection=Reflection(solved=True, reason="the answer states the tool's temperature")),
        policy_version=version, session=session, trial=trial, actor=actor, created_at=created_at,
        timings={"generate": round_s(generate_s), "tools": 0.001}, tokens=TokenCounts(prompt=700, completion=60))


def round_s(seconds: float) -> float:
    return float(f"{seconds:.4f}")


def tool_round(tool: str) -> int:
    """The round of a simulated tool, from its name `sim_r<round>_<k>`."""
    return int(tool.split("_")[1][1:])


class ScriptedTrials:
    """Stands in for `actors.ste.explore` in one explorer process: per trial step, one episode per session of the
    unit after `trial_s` (jittered) — the explorer's push of the previous step counted in it, backpressure not."""

    def __init__(self, index: int, seed: int):
        self.index = index
        self.rng = random.Random(seed * 7919 + index)
        self.trial_s = 0.1
        self.jitter = 0.5
        self.explorer = None  # the Explorer whose pushes are timed
        self.count = 0

    def latency(self) -> float:
        return self.trial_s * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def explore(self, policy, registry, runner, tools, config=None, memory=None, strategy=None, actor="", **extra):
        from actors.ste import TrialBatch

        sessions = [uuid.uuid4().hex[:12] for _ in tools]
        spent = 0.0  # the explorer's own work on the previous step (its pushes), part of a trial's time
        for trial in range(config.trials_per_session):
            wait = self.latency()
            time.sleep(max(0.0, wait - spent))
            episodes = []
            for tool, session in zip(tools, sessions):
                self.count += 1
                episodes.append(make_episode(tool, tool_round(tool), self.count % TEXT_VARIANTS,
                                             version=policy.version, actor=actor, session=session, trial=trial,
                                             created_at=time.time() + self.index * 1e-3 + self.count * 1e-9,
                                             generate_s=wait))
            waited_before = self.explorer._progress.get("waited_s", 0.0)
            handed = time.perf_counter()
            yield TrialBatch(episodes, 0)
            held_back = self.explorer._progress.get("waited_s", 0.0) - waited_before
            spent = max(0.0, time.perf_counter() - handed - max(0.0, held_back))


class SimExplorer:
    """An explorer actor: the real `actors.explorer.Explorer` (stream, _push, stop, progress, load_weights, explore,
    exploit) built without a model, tools or memory, exploring with `ScriptedTrials`."""

    def __init__(self, redis_url: str, index: int, seed: int = 0):
        _stand_in_policy_module()
        import actors.explorer as explorer_module

        self.redis_url, self.index, self.seed = redis_url, index, seed
        self.script = ScriptedTrials(index, seed)
        explorer_module.explore = self.script.explore  # STE's trials → scripted ones, in this process only
        self.inner = None
        self.finals: list[dict] = []
        self.blocked_s = 0.0  # the buffer client's backoff sleeps: time an insert was actually held back
        import replay.buffer as buffer_module

        backoff = buffer_module._wait_or_timeout

        def timed_backoff(deadline, wait, what):
            started = time.perf_counter()
            try:
                return backoff(deadline, wait, what)
            finally:
                self.blocked_s += time.perf_counter() - started

        buffer_module._wait_or_timeout = timed_backoff  # accounting only, in this process

    def reset(self, table: str, trial_s: float, jitter: float, trials_per_session: int) -> int:
        """A fresh Explorer for a new run (its explore table, policy version 0, no counters)."""
        from actors.explorer import Explorer, ExplorerConfig
        from actors.ste import STEConfig

        config = ExplorerConfig(redis_url=self.redis_url, table=table, model="scripted",
                                ste=STEConfig(trials_per_session=trials_per_session), seed=self.seed + self.index)
        explorer = Explorer.__new__(Explorer)
        # what Explorer.__init__ sets, less the model, tools, memory and search strategy (scripted trials use none)
        explorer.config, explorer.name = config, f"explorer-{self.index}"
        explorer.policy = VersionOnlyPolicy()
        explorer.registry = explorer.runner = explorer.memory = explorer.strategy = None
        explorer.buffer = CountingBuffer(self.redis_url, seed=config.seed)
        explorer._weights_lock = threading.Lock()
        explorer._streaming = False
        explorer._pending = None
        explorer._stop = threading.Event()
        explorer._progress = Counter()
        self.inner = explorer
        self.script.trial_s, self.script.jitter, self.script.explorer = trial_s, jitter, explorer
        self.finals = []
        self.blocked_s = 0.0
        return self.index

    # the methods the schedules call, as the real actor has them
    def stream(self, round, tools, train_table, selection, sessions_per_call):
        final = self.inner.stream(round, tools, train_table, selection, sessions_per_call)
        self.finals.append(final)
        return final

    def stop(self):
        return self.inner.stop()

    def progress(self):
        return self.inner.progress()

    def load_weights(self, version, state_dict):
        return self.inner.load_weights(version, state_dict)

    def version(self):
        return self.inner.version() if self.inner else 0

    def pid(self) -> int:
        import os

        return os.getpid()

    def explore(self, tools):
        return self.inner.explore(tools)

    def exploit(self, *args):
        return self.inner.exploit(*args)

    # the simulation's own accounting
    def report(self) -> dict:
        return {"acked": {table: sorted(ids) for table, ids in self.inner.buffer.acked.items()},
                "finals": self.finals, "blocked_s": self.blocked_s}


class SimEvaluator:
    """The evaluator actor's two methods: weights in, a report out after `eval_s`."""

    def __init__(self, eval_s: float, summary: dict):
        self.eval_s, self.summary, self.version = eval_s, summary, 0

    def load_weights(self, version, state_dict) -> int:
        self.version = version
        return version

    def evaluate(self, names, icl_from=None) -> dict:
        time.sleep(self.eval_s)
        return {"meta": {"version": self.version, "tools": len(names)}, "summary": dict(self.summary),
                "by_round": {}, "by_category": {}, "by_tool": {}}


# ---- the learner side (the driver) -------------------------------------------------------------------------------

def _accounting_ready(ready, learner):
    """learner.data._ready, noting when the learner was actually held back: from its first "not ready" to the next
    "ready" (draw_batch's own waited_s also counts the stats and sample round trips of a draw never held back)."""
    def wrapped(stats, size, current, min_current):
        ok = ready(stats, size, current, min_current)
        now = time.perf_counter()
        if not ok and learner.held_since is None:
            learner.held_since = now
        elif ok and learner.held_since is not None:
            learner.held_s += now - learner.held_since
            learner.held_since = None
        return ok
    return wrapped


class SimLearner:
    """`LearnerGroup`'s methods that the schedules call. `train_step` takes `step_s`; with `overlap` (default) less
    the time the batch's data path took (`data_s`, set by the benchmark's wrapper of draw_batch: its time less the
    limiter's wait), as a learner that prepares the next batch while the GPU works — so the learner's step is
    max(step_s, data path) plus the run's bookkeeping, whatever the load on this shared machine does to the data
    path. It reads the train table's limiter counters (one HMGET, within the step) to record the diff."""

    precision = "stand-in"

    def __init__(self, step_s: float, redis_client, train_table: str, spi: float, overlap: bool = True):
        self.step_s, self.redis, self.spi, self.overlap = step_s, redis_client, spi, overlap
        self.stats_key = f"imag:{{{train_table}}}:stats"
        self.steps, self.busy_s, self.diffs = 0, 0.0, []
        self.data_s = 0.0  # the data path of the batch about to be trained on
        self.data_total_s = 0.0
        self.held_s, self.held_since = 0.0, None  # time the limiter (or min_current) actually held the learner
        self.blocked_s = 0.0  # --what-if prefetch: time the loop waited for a batch

    def train_step(self, inputs) -> float:
        started = time.perf_counter()
        inserts, samples = (int(x or 0) for x in self.redis.hmget(self.stats_key, "inserts", "samples"))
        self.diffs.append(inserts * self.spi - samples)
        overlapped = self.data_s if self.overlap else 0.0
        self.data_total_s += self.data_s
        time.sleep(max(0.0, self.step_s - overlapped - (time.perf_counter() - started)))
        self.steps += 1
        self.busy_s += time.perf_counter() - started
        return 2.0 / (1 + 0.01 * self.steps)

    def state_dict_ref(self):
        import ray

        return ray.put({"step": self.steps})

    def save_checkpoint(self, folder, meta) -> Path:
        path = Path(folder) / f"step-{meta['step']}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "meta.json").write_text(json.dumps(meta))
        return path

    def load_checkpoint(self, folder, tag) -> None:
        pass

    def export_pretrained(self, path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def shutdown(self) -> None:
        pass


class MemoTokenizer:
    """The real tokenizer, each distinct call computed once: `build_examples` sees identical outputs."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._cache: dict = {}

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def apply_chat_template(self, messages, **kwargs):
        key = ("template", json.dumps(messages, sort_keys=True, default=str),
               json.dumps(sorted(kwargs.items()), sort_keys=True, default=str))
        if key not in self._cache:
            self._cache[key] = self._tokenizer.apply_chat_template(messages, **kwargs)
        return self._cache[key]

    def __call__(self, text, **kwargs):
        key = ("encode", text, tuple(sorted(kwargs.items())))
        if key not in self._cache:
            self._cache[key] = self._tokenizer(text, **kwargs)
        return self._cache[key]


class TinyTokenizer:
    """Stands in for the tokenizer (`--tokenizer tiny`): a message renders as its role tag and one content token,
    so `build_examples` and packing run their code on examples of a few tokens and cost almost nothing."""

    is_fast = True
    chat_template = "<role>c per message"
    pad_token_id = 0
    _TOKENS = {"<system>": 1, "<user>": 2, "<assistant>": 3, "<tool>": 4, "c": 5}

    def apply_chat_template(self, messages, tools=None, tokenize=False, add_generation_prompt=False, **kwargs):
        return "".join(f"<{m['role']}>c" for m in messages) + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False, **kwargs):
        import re

        spans = [(m.start(), m.end()) for m in re.finditer(r"<[a-z]+>|c", text)]
        encoding = {"input_ids": [self._TOKENS[text[a:b]] for a, b in spans]}
        if return_offsets_mapping:
            encoding["offset_mapping"] = spans
        return encoding


def data_path_cost(batch: int, max_tokens: int = 1024, repeats: int = 3) -> str:
    """What one batch of demo-sized episodes costs the real data path (SmolLM2 tokenizer, packing), in ms."""
    from actors.model import smollm2_tokenizer
    from learner.examples import build_examples
    from learner.packing import first_fit_decreasing, packed_batch

    tokenizer = smollm2_tokenizer()
    episodes = [make_episode(f"sim_r1_{i % 4}", 1, i, created_at=float(i)) for i in range(batch)]
    build_examples(episodes[:1], tokenizer, max_tokens)
    tokenize = pack = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        examples, _ = build_examples(episodes, tokenizer, max_tokens)
        middle = time.perf_counter()
        packed_batch(first_fit_decreasing(examples, max_tokens), tokenizer.pad_token_id or 0)
        tokenize, pack = tokenize + middle - started, pack + time.perf_counter() - middle
    tokens = sum(len(e) for e in examples)
    return (f"the real data path, one batch of {batch} episodes ({tokens / batch:.0f} tokens each): tokenize "
            f"{1e3 * tokenize / repeats:.0f} ms, pack {1e3 * pack / repeats:.0f} ms")


# ---- timing the driver -------------------------------------------------------------------------------------------

class Clock:
    """Seconds and calls per part of the driver, by wrapping the functions the schedules call; `outer` counts a
    call only when no other timed part encloses it, so that wall − Σ outer is the untimed rest."""

    def __init__(self):
        self.seconds: Counter = Counter()
        self.calls: Counter = Counter()
        self.outer: Counter = Counter()  # the main thread's (a prefetching draw runs beside it)
        self.local = threading.local()

    @property
    def stack(self) -> list[str]:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        return self.local.stack

    def wrap(self, name, function):
        def timed(*args, **kwargs):
            stack = self.stack
            stack.append(name)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                stack.pop()
                self.seconds[name] += elapsed
                self.calls[name] += 1
                if not stack and threading.current_thread() is threading.main_thread():
                    self.outer[name] += elapsed
        return timed


@contextlib.contextmanager
def patched(target, name, replacement):
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield original
    finally:
        setattr(target, name, original)


class Watchdog(threading.Thread):
    """Stops the explorers when neither table has moved for `stall_s`: a schedule that blocks both sides would
    otherwise hang the benchmark. What it saw is reported as a stall."""

    def __init__(self, url: str, tables: list[str], explorers: list, stall_s: float):
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis.from_url(url)
        self.keys = [(f"imag:{{{t}}}:stats", f"imag:{{{t}}}:order") for t in tables]
        self.explorers, self.stall_s = explorers, stall_s
        self.done = threading.Event()
        self.stalls: list[dict] = []

    def snapshot(self) -> tuple:
        values = []
        with self.client.pipeline(transaction=False) as pipe:
            for stats, order in self.keys:
                pipe.hmget(stats, "inserts", "samples")
                pipe.zcard(order)
            for reply in pipe.execute():
                values.append(tuple(reply) if isinstance(reply, list) else reply)
        return tuple(values)

    def run(self) -> None:
        import ray

        last, moved = self.snapshot(), time.monotonic()
        while not self.done.wait(0.5):
            now = self.snapshot()
            if now != last:
                last, moved = now, time.monotonic()
            elif time.monotonic() - moved > self.stall_s:
                self.stalls.append({"after_s": round(self.stall_s, 1), "tables": repr(now)})
                ray.get([explorer.stop.remote() for explorer in self.explorers])
                moved = time.monotonic()


# ---- one run: a schedule over the rounds ---------------------------------------------------------------------------

@dataclass
class Workload:
    rounds: int = 2
    tools: int = 4
    steps: int = 128
    batch: int = 16
    step_s: float = 0.0625
    spi: float = 2.0
    min_size: int = 16
    error_buffer: float = 128.0
    publish_every: int = 16
    checkpoint_every: int = 36
    replay_fraction: float = 0.1
    staleness_cap: int | None = 4
    trials_per_session: int = 4
    sessions_per_call: int = 1
    balance: float = 1.0  # explorers' production rate ÷ (learner consumption rate / spi)
    jitter: float = 0.5
    eval_s: float = 0.0
    stall_s: float = 20.0
    learner_step_s: float | None = None  # --serial: measured by `calibrate` (step_s + data path + bookkeeping)
    overlap: bool = True  # False (--serial): train_step takes step_s after the data path, as train_loop is today

    @property
    def episodes_per_round(self) -> int:
        return self.episodes_per_tool * self.tools

    @property
    def episodes_per_tool(self) -> int:
        return math.ceil(self.steps * self.batch / self.spi / self.tools)

    def trial_s(self, actors: int) -> float:
        """Seconds per trial step (sessions_per_call episodes) of one explorer, for the production rate asked."""
        insert_rate = self.batch / (self.learner_step_s or self.step_s) / self.spi * self.balance
        return actors * self.sessions_per_call / insert_rate

    def tool_names(self) -> dict[int, list[str]]:
        return {r: [f"sim_r{r}_{k}" for k in range(self.tools)] for r in range(1, self.rounds + 1)}


@dataclass
class Result:
    actors: int
    schedule: str
    wall_s: float = 0.0
    steps: list[int] = field(default_factory=list)
    explored: list[int] = field(default_factory=list)
    train_inserts: int = 0
    samples: int = 0
    lost: int = 0
    acked: int = 0
    learner_idle: float = 0.0
    learner_busy: float = 0.0
    learner_idle_s: float = 0.0
    learner_idle_reported: float = 0.0  # what the run logs (train_loop's waited_s ÷ its seconds, metrics.jsonl)
    cores: dict = field(default_factory=dict)  # CPU cores used during the run: explorers, redis, driver, machine
    redis_per_s: dict = field(default_factory=dict)  # redis-server commands per second: all, scripts
    explorer_idle: float = 0.0  # time actually held back by the limiter (the buffer client's backoff) ÷ stream wall
    explorer_idle_reported: float = 0.0  # what the explorers report (Explorer._push's waited_s ÷ wall_s)
    samples_per_insert: float = 0.0
    target: float = 0.0
    diff_range: tuple[float, float] = (0.0, 0.0)
    bounds: tuple[float, float] = (0.0, 0.0)
    stalls: list = field(default_factory=list)
    clock: Clock | None = None
    ended: list[str] = field(default_factory=list)
    profile: object = None
    data_path_s: float = 0.0  # per step: draw_batch less the limiter's wait
    warmup_s: float = 0.0  # per round: the learner's wait for its first batch
    drain_s: float = 0.0  # per round: from the learner's last step to the round's end (explorers finishing)

    @property
    def spi_within(self) -> bool:
        """The train table's diff (inserts × spi − samples) inside the limiter's bounds at the end."""
        diff = self.train_inserts * self.target - self.samples
        return self.bounds[0] <= diff <= self.bounds[1]


def make_config(work: Workload, schedule: str, actors: int, table: str):
    from launcher.config import (BufferSection, EvalConfig, ExperimentConfig, ExploitSection, ExploreSection,
                                 LearnSection, ToolsSection)
    from replay.tables import RateLimiter

    if schedule == "continual":
        limiter = RateLimiter(kind="sample_to_insert_ratio", min_size_to_sample=work.min_size,
                              samples_per_insert=work.spi, error_buffer=work.error_buffer)
    else:
        limiter = RateLimiter(kind="min_size", min_size_to_sample=work.min_size)
    names = work.tool_names()
    return ExperimentConfig(
        name=f"sim-{schedule}-{actors}", schedule=schedule,
        tools=ToolsSection(rounds=list(names), names=names),
        explore=ExploreSection(actors=actors, episodes_per_tool=work.episodes_per_tool,
                               trials_per_session=work.trials_per_session, sessions_per_call=work.sessions_per_call),
        buffer=BufferSection(table=table, max_size=1_000_000, rate_limiter=limiter),
        exploit=ExploitSection(filter=False, paraphrases=False),
        learn=LearnSection(micro_batch=work.batch, steps_per_round=work.steps, publish_every=work.publish_every,
                           checkpoint_every=work.checkpoint_every, replay_fraction=work.replay_fraction,
                           staleness_cap=work.staleness_cap, staleness_policy="downweight", max_tokens=1024,
                           total_steps=max(1000, work.steps * work.rounds)),
        eval=EvalConfig(baseline=False))


def run_schedule(schedule: str, work: Workload, actors: list, evaluator, url: str, tokenizer, root: Path,
                 profile: bool = False, what_if: str | None = None, label: str = "") -> Result:
    import os

    import ray
    from rich.console import Console

    import launcher.run as run_module
    import learner.data as data_module
    from launcher.run import SCHEDULES, Continual, Metrics, Run, RunState
    from replay.tables import TableConfig

    n = len(actors)
    table = f"sim{n}-{schedule}" + (f"-{label}" if label else "")
    config = make_config(work, schedule, n, table)
    run_dir = root / table
    run_dir.mkdir(parents=True, exist_ok=True)
    ray.get([a.reset.remote(table, work.trial_s(n), work.jitter, work.trials_per_session) for a in actors])
    ray.get(evaluator.load_weights.remote(0, None))

    buffer = ReplayBuffer(url, seed=0)
    buffer.create_table(TableConfig(name=config.buffer.table, max_size=config.buffer.max_size))
    buffer.create_table(TableConfig(name=config.buffer.train_table, max_size=config.buffer.max_size,
                                    rate_limiter=config.buffer.rate_limiter))
    what_ifs = set(filter(None, (what_if or "").split(",")))
    unknown = what_ifs - set(WHAT_IFS)
    if unknown:
        raise ValueError(f"unknown --what-if {', '.join(sorted(unknown))}: choose from {', '.join(WHAT_IFS)}")
    learner = SimLearner(work.step_s, buffer.redis, config.buffer.train_table, work.spi,
                         work.overlap and "prefetch" not in what_ifs)
    console = Console(file=(run_dir / "console.txt").open("w"), width=120)
    metrics = Metrics(run_dir)
    state = RunState()
    run = make_run(config=config, run_dir=run_dir, console=console, state=state, metrics=metrics,
                   tools=work.tool_names(), buffer=buffer, learner=learner, explorers=actors, evaluator=evaluator,
                   tokenizer=tokenizer)

    clock = Clock()
    result = Result(n, schedule, clock=clock, target=work.spi if schedule == "continual" else 1.0)
    buffer.stats = _stats_by_table(clock, one_trip_stats(buffer) if "stats" in what_ifs else buffer.stats,
                                   config.buffer.table)
    buffer.sample = clock.wrap("sample", buffer.sample)
    metrics.log = clock.wrap("metrics.log", metrics.log)
    learner.train_step = clock.wrap("train_step", learner.train_step)

    asked: list = []  # --what-if progress: the progress calls sent last time, logged once they have answered

    def log_explorers(run, r, progress=None):
        if progress is not None or "progress" not in what_ifs:
            return Continual._log_explorers(run, r, progress)
        if asked and len(ray.wait(asked, num_returns=len(asked), timeout=0)[0]) == len(asked):
            Continual._log_explorers(run, r, dict(enumerate(ray.get(asked))))
            asked.clear()
        if not asked:
            asked.extend(explorer.progress.remote() for explorer in run.explorers)

    class TimedContinual(Continual):
        @staticmethod
        def _log_explorers(run, r, progress=None):
            return clock.wrap("explorer progress", log_explorers)(run, r, progress)

    schedule_object = TimedContinual() if schedule == "continual" else SCHEDULES[schedule]()
    watchdog = Watchdog(url, [config.buffer.table, config.buffer.train_table], actors, work.stall_s)
    profiler = cProfile.Profile() if profile else None
    send = publish_without_waiting(run_module.publish) if "publish" in what_ifs else run_module.publish
    import replay.buffer as buffer_module

    backoff = buffer_module._wait_or_timeout

    def learner_backoff(deadline, wait, what):  # the driver's only limited call is the learner's sample
        started = time.perf_counter()
        try:
            return backoff(deadline, wait, what)
        finally:
            learner.held_s += time.perf_counter() - started

    pids = {"explorers": ray.get([a.pid.remote() for a in actors]), "redis": [_redis_pid(url)],
            "driver": [os.getpid()]}
    redis_before = _redis_calls(buffer.redis)
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(run_module, "publish", clock.wrap("publish", send)))
        stack.enter_context(patched(buffer_module, "_wait_or_timeout", learner_backoff))
        stack.enter_context(patched(run_module, "draw_batch",
                                    clock.wrap("draw_batch", _recording_data_path(learner, run_module.draw_batch))))
        stack.enter_context(patched(data_module, "build_examples",
                                    clock.wrap("tokenize", data_module.build_examples)))
        stack.enter_context(patched(run_module, "_checkpoint", clock.wrap("checkpoint", run_module._checkpoint)))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))  # run_units' progress bar
        stack.enter_context(patched(data_module, "_ready", _accounting_ready(data_module._ready, learner)))
        if "prefetch" in what_ifs:
            stack.enter_context(patched(run_module, "train_loop", prefetching_train_loop(learner)))
        watchdog.start()
        cpu_before = cpu_seconds(pids)
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        round_ends = {}
        try:
            for r in config.tools.rounds:
                schedule_object.round(run, r)
                round_ends[r] = time.time()
            run.collect_evaluations()
        finally:
            result.wall_s = time.perf_counter() - started
            if hasattr(send, "flush"):
                send.flush()
            cpu_after = cpu_seconds(pids)
            result.cores = {k: (cpu_after[k] - cpu_before[k]) / result.wall_s for k in cpu_after}
            redis_after = _redis_calls(buffer.redis)
            result.redis_per_s = {k: (redis_after.get(k, 0) - redis_before.get(k, 0)) / result.wall_s
                                  for k in redis_after}
            if profiler:
                profiler.disable()
            watchdog.done.set()
            watchdog.join()
    metrics.close()
    console.file.close()
    if profiler:
        result.profile = profiler

    result.stalls = watchdog.stalls
    result.steps = [state.round_steps.get(str(r), 0) for r in config.tools.rounds]
    explore_stats = ReplayBuffer.stats(buffer, config.buffer.table)
    train_stats = ReplayBuffer.stats(buffer, config.buffer.train_table)
    result.explored = [explore_stats.count("round", r) for r in config.tools.rounds]
    result.train_inserts = train_stats.counters["inserts"]
    result.samples = train_stats.counters["samples"]
    result.samples_per_insert = result.samples / max(1, result.train_inserts)
    _, min_diff, max_diff = config.buffer.rate_limiter.bounds()
    result.bounds = (min_diff, max_diff)
    diffs = learner.diffs or [0.0]
    result.diff_range = (min(diffs), max(diffs))
    result.learner_busy = learner.steps * work.step_s / result.wall_s
    result.data_path_s = learner.data_total_s / max(1, learner.steps)

    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    learns = [e for e in events if e["event"] == "learn"]
    loop_s = sum(e["seconds"] for e in learns)
    result.learner_idle_reported = sum(e["idle"] * e["seconds"] for e in learns) / max(loop_s, 1e-9)
    result.learner_idle_s = learner.blocked_s if "prefetch" in what_ifs else learner.held_s
    result.learner_idle = result.learner_idle_s / max(loop_s, 1e-9)
    result.ended = [e["ended"] for e in learns]
    firsts = {}
    for e in events:
        if e["event"] == "train" and e["round"] not in firsts:
            firsts[e["round"]] = e["idle"] * e["seconds"]
    result.warmup_s = sum(firsts.values()) / max(1, len(firsts))
    result.drain_s = sum(round_ends[e["round"]] - e["time"] for e in learns if e["round"] in round_ends) / max(1, len(learns))

    reports = ray.get([a.report.remote() for a in actors])
    finals = [final for report in reports for final in report["finals"]]
    stream_wall = max(1e-9, sum(f["wall_s"] for f in finals))
    result.explorer_idle_reported = sum(f.get("waited_s", 0.0) for f in finals) / stream_wall if finals else 0.0
    result.explorer_idle = sum(report["blocked_s"] for report in reports) / stream_wall if finals else 0.0
    for report in reports:
        for table_name, ids in report["acked"].items():
            result.acked += len(ids)
            result.lost += _missing(buffer, table_name, ids)
    return result


def make_run(**values):
    """`launcher.run.Run` from what the simulation has, by field name: every explorer runs the student here."""
    import dataclasses

    from launcher.run import Run

    values.setdefault("students", values["explorers"])
    names = {f.name for f in dataclasses.fields(Run)}
    return Run(**{key: value for key, value in values.items() if key in names})


def calibrate(work: Workload, url: str, tokenizer, root: Path, steps: int = 24) -> float:
    """Seconds per learner step when the buffer never holds it back: `Run.train` (the rounds schedule's learn
    phase: draw_batch, staleness, examples, packing, train_step, metrics) on a table filled beforehand. It also
    fills the memo tokenizer with every episode text."""
    from rich.console import Console

    from launcher.run import Metrics, Run, RunState
    from replay.buffer import RoundMix
    from replay.tables import TableConfig

    config = make_config(work, "rounds", 1, "calibrate")
    run_dir = root / "calibrate"
    run_dir.mkdir(parents=True, exist_ok=True)
    buffer = ReplayBuffer(url, seed=0)
    buffer.create_table(TableConfig(name=config.buffer.train_table, max_size=config.buffer.max_size,
                                    rate_limiter=config.buffer.rate_limiter))
    tools = work.tool_names()[1]
    buffer.insert(config.buffer.train_table,
                  [make_episode(tool, 1, variant, created_at=time.time()) for tool in tools
                   for variant in range(TEXT_VARIANTS)], ignore_rate_limiter=True)
    learner = SimLearner(work.step_s, buffer.redis, config.buffer.train_table, work.spi, overlap=False)
    metrics = Metrics(run_dir)
    run = make_run(config=config, run_dir=run_dir, console=Console(file=io.StringIO()), state=RunState(),
                   metrics=metrics, tools=work.tool_names(), buffer=buffer, learner=learner, explorers=[],
                   evaluator=None, tokenizer=tokenizer)
    run.train(1, 4, RoundMix(1, 0.0), publish_to=[])  # the first sight of every text (memo) and of the code paths
    run.state.round_steps.clear()
    started = time.perf_counter()
    run.train(1, steps, RoundMix(1, 0.0), publish_to=[])
    seconds = (time.perf_counter() - started) / steps
    metrics.close()
    return seconds


WHAT_IFS = ("publish", "progress", "stats", "prefetch")

STATS_LUA = """
local p = KEYS[1]
local counts = {}
for _, group in ipairs(redis.call('SMEMBERS', p .. 'indexes')) do
  counts[#counts + 1] = group
  counts[#counts + 1] = redis.call('ZCARD', p .. 'grp:' .. group)
end
return {redis.call('ZCARD', p .. 'order'), redis.call('HGETALL', p .. 'stats'), redis.call('HLEN', p .. 'quarantine'),
        counts}
"""


def one_trip_stats(buffer: ReplayBuffer):
    """`ReplayBuffer.stats` in one round trip (--what-if stats): the same TableStats (but `bytes`, which only the
    report reads) from one Lua call, instead of SMEMBERS, a pipeline of ZCARDs and a pipeline of four commands."""
    from replay.buffer import TableStats, index_counts

    script = buffer.redis.register_script(STATS_LUA)

    def stats(table: str) -> TableStats:
        config = buffer.table_config(table)
        size, flat, quarantined, counts = script(keys=[buffer._prefix(table)])
        counters = {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2) if flat[i] != b"seq"}
        for name in ("inserts", "samples", "duplicates", "evicted", "expired", "removed", "quarantined"):
            counters.setdefault(name, 0)
        groups = {counts[i].decode(): int(counts[i + 1]) for i in range(0, len(counts), 2)}
        return TableStats(table, int(size), config.max_size, counters, *index_counts(groups), 0, int(quarantined),
                          config)
    return stats


def publish_without_waiting(publish):
    """`learner.publish.publish` that does not wait for the explorers' acks (--what-if publish): a publication
    first collects the acks of the one before (long arrived by then), so at most one is in flight."""
    import ray

    in_flight: list = []

    def send(version, state_dict, handles):
        if in_flight:
            ray.get(in_flight.pop())
        ref = state_dict if isinstance(state_dict, ray.ObjectRef) else ray.put(state_dict)
        in_flight.append([handle.load_weights.remote(version, ref) for handle in handles])
        return []

    def flush():
        if in_flight:
            ray.get(in_flight.pop())
    send.flush = flush
    return send


def prefetching_train_loop(learner_stand_in):
    """`learner.data.train_loop` drawing the next batch on a thread while the current one trains (--what-if
    prefetch): the same loop otherwise. The learner is idle only while it waits for a batch (`blocked_s`)."""
    from concurrent.futures import ThreadPoolExecutor

    from learner.data import LoopResult, StepRecord
    from replay.buffer import BufferError, RateLimitTimeout

    def train_loop(learner, draw, steps, start=0, *, after_step=lambda record: None, wait_while=lambda: False,
                   poll_s=0.5):
        result = LoopResult(start, "steps")
        loop_started = time.perf_counter()
        step, future = start, None
        with ThreadPoolExecutor(1) as pool:
            while step < steps:
                started = time.perf_counter()
                if future is None:
                    future = pool.submit(draw, poll_s if wait_while() else 0.0)
                try:
                    drawn = future.result()
                except RateLimitTimeout:
                    future = None
                    result.waited_s += time.perf_counter() - started
                    learner_stand_in.blocked_s += time.perf_counter() - started
                    if wait_while():
                        continue
                    result.stopped = "limiter"
                    break
                except BufferError:
                    result.stopped = "empty"
                    break
                future = None
                learner_stand_in.blocked_s += time.perf_counter() - started
                result.waited_s += drawn.waited_s
                if step + 1 < steps:  # the next batch, drawn while this one trains
                    future = pool.submit(draw, poll_s if wait_while() else 0.0)
                if drawn.batch is None:
                    step += 1
                    after_step(StepRecord(step, None, drawn.examples, 0, drawn.episodes, drawn.waited_s,
                                          time.perf_counter() - started, drawn.skipped))
                    continue
                loss = learner.train_step(drawn.batch.model_inputs())
                step += 1
                after_step(StepRecord(step, loss, drawn.examples, int(drawn.batch.label_count), drawn.episodes,
                                      drawn.waited_s, time.perf_counter() - started, drawn.skipped))
        result.steps = step
        result.seconds = time.perf_counter() - loop_started
        return result
    return train_loop


def _recording_data_path(learner: SimLearner, draw_batch):
    """draw_batch, telling the learner stand-in how long the batch's data path took (its time less the limiter's)."""
    def draw(*args, **kwargs):
        started = time.perf_counter()
        drawn = draw_batch(*args, **kwargs)
        learner.data_s = max(0.0, time.perf_counter() - started - drawn.waited_s)
        return drawn
    return draw


def _stats_by_table(clock: Clock, stats, explore_table: str):
    def timed(table):
        name = ("stats explore" if table == explore_table else
                "stats in draw" if "draw_batch" in clock.stack else "stats after step")
        return clock.wrap(name, stats)(table)
    return timed


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each group of processes, and of the whole machine ("machine", from /proc/stat)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for name, group in pids.items():
        total = 0
        for pid in group:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        seconds[name] = total / tick
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    seconds["machine"] = (sum(int(x) for x in cpu[:8]) - int(cpu[3]) - int(cpu[4])) / tick
    return seconds


def _redis_calls(client) -> dict[str, int]:
    """Commands redis-server has run: all, and the Lua scripts (the buffer's inserts and samples, and the
    explorers' polls while the limiter holds their inserts back)."""
    stats = client.info("commandstats")
    scripts = sum(v["calls"] for k, v in stats.items() if k.startswith(("cmdstat_evalsha", "cmdstat_eval")))
    return {"all": sum(v["calls"] for v in stats.values()), "scripts": scripts}


def _redis_pid(url: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).info("server")["process_id"])


def _missing(buffer: ReplayBuffer, table: str, ids: list[str]) -> int:
    key = f"imag:{{{table}}}:order"
    missing = 0
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        missing += sum(score is None for score in buffer.redis.zmscore(key, chunk))
    return missing


# ---- main ------------------------------------------------------------------------------------------------------------

def start_actors(count: int, url: str, eval_s: float) -> tuple[list, object]:
    import ray

    from evaluation.metrics import METRICS

    this = sys.modules[__name__]
    if __name__ != "__main__":  # imported (a test): the actor classes travel by value, not by module name
        ray.cloudpickle.register_pickle_by_value(this)
    remote = ray.remote(SimExplorer).options(num_cpus=0.01, max_concurrency=4, max_restarts=0)
    actors = [remote.remote(url, i) for i in range(count)]
    evaluator = ray.remote(SimEvaluator).options(num_cpus=0.01).remote(eval_s, {"n": 0, **{m: 0.0 for m in METRICS}})
    ray.get([a.version.remote() for a in actors] + [evaluator.load_weights.remote(0, None)], timeout=600)
    return actors, evaluator


class Simulation:
    """Redis, Ray and the actor pool, started once; `run` runs one schedule with the first n explorers."""

    def __init__(self, max_actors: int, tokenizer_kind: str = "tiny", out: Path | None = None, log=print,
                 eval_s: float = 0.0, batch: int = 16, idle_cpu_s: float = 0.0):
        self.max_actors, self.tokenizer_kind, self.log, self.eval_s = max_actors, tokenizer_kind, log, eval_s
        self.idle_cpu_s = idle_cpu_s  # how long to measure the idle explorers' CPU after they start (0: not)
        self.root = Path(out or tempfile.mkdtemp(prefix="continual-sim-"))
        self.batch = batch
        self.runs = 0

    def __enter__(self) -> Simulation:
        from actors.model import smollm2_tokenizer
        from launcher.cluster import start_ray
        from replay.server import EmbeddedRedis

        if self.tokenizer_kind == "tiny":
            self.tokenizer = TinyTokenizer()
        else:
            tokenizer = smollm2_tokenizer()
            self.tokenizer = MemoTokenizer(tokenizer) if self.tokenizer_kind == "memo" else tokenizer
        self.server = EmbeddedRedis(self.root).start()
        try:
            start_ray(num_cpus=2)
            started = time.perf_counter()
            self.pool, self.evaluator = start_actors(self.max_actors, self.server.url, self.eval_s)
            up = time.perf_counter() - started
            idle = ""
            if self.idle_cpu_s:
                import ray

                pids = {"explorers": ray.get([a.pid.remote() for a in self.pool])}
                before, idle_started = cpu_seconds(pids), time.perf_counter()
                time.sleep(self.idle_cpu_s)
                cores = (cpu_seconds(pids)["explorers"] - before["explorers"]) / (time.perf_counter() - idle_started)
                idle = f", {cores:.2f} cores while idle"
            self.log(f"# {self.max_actors} explorer actors up in {up:.1f} s{idle}; run folders in {self.root}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        import ray

        ray.shutdown()
        self.server.stop()

    def prepare(self, work: Workload) -> None:
        """--serial: the learner's step measured; memo: every episode text tokenized once, before any run."""
        if not work.overlap and work.learner_step_s is None:
            work.learner_step_s = calibrate(work, self.server.url, self.tokenizer, self.root)
            self.log(f"# learner step {work.learner_step_s:.4f} s measured ({work.step_s} s train_step + data path "
                     f"and bookkeeping)")
        elif self.tokenizer_kind == "memo":
            from learner.examples import build_examples

            build_examples([make_episode(tool, r, v) for r, tools in work.tool_names().items() for tool in tools
                            for v in range(TEXT_VARIANTS)], self.tokenizer, 1024)

    def run(self, n: int, schedule: str, work: Workload, profile: bool = False, what_if: str | None = None) -> Result:
        self.runs += 1
        return run_schedule(schedule, work, self.pool[:n], self.evaluator, self.server.url, self.tokenizer, self.root,
                            profile=profile, what_if=what_if, label=str(self.runs))


def simulate(counts: list[int], work: Workload, tokenizer_kind: str = "tiny", profile: bool = False,
             out: Path | None = None, log=print, what_if: str | None = None,
             data_path: bool = True) -> list[tuple[Result, Result]]:
    """Both schedules for every N in `counts`, on the same workload: [(rounds, continual), ...]."""
    if tokenizer_kind == "tiny" and data_path:
        log(f"# {data_path_cost(work.batch, repeats=1)}; here --tokenizer tiny: a few tokens per episode")
    results = []
    with Simulation(max(counts), tokenizer_kind, out, log, work.eval_s, idle_cpu_s=3.0) as simulation:
        simulation.prepare(work)
        log(f"# balanced trial step: " + ", ".join(f"N={n}: {work.trial_s(n):.3f} s" for n in sorted(counts)))
        for n in sorted(counts):
            pair = tuple(simulation.run(n, s, work, profile=profile and n == max(counts) and s == "continual",
                                        what_if=what_if) for s in ("rounds", "continual"))
            results.append(pair)
            log(f"# N={n}: rounds {pair[0].wall_s:.1f} s, continual {pair[1].wall_s:.1f} s")
    return results


def table(results: list[tuple[Result, Result]], work: Workload) -> str:
    """Per N and schedule; idle ratios as measured (held back by the limiter: the learner's wait from its first
    not-ready check to ready, the explorers' backoff sleeps) and as the system reports them (rep)."""
    lines = [f"{'N':>3} {'schedule':<9} {'wall s':>6} {'steps':>7} {'explored':>9} {'acked':>5} {'lost':>4} "
             f"{'L idle':>6} {'rep':>5} {'L busy':>6} {'E idle':>6} {'rep':>5} {'s/ins':>5} {'diff min..max':>13} "
             f"{'bounds':>8} {'in':>3} {'stall':>5} {'cores: expl':>11} {'redis':>5} {'driver':>6} {'rest':>5} "
             f"{'all':>5} {'redis cmd/s':>11} {'scripts':>7}"]
    for pair in results:
        for r in pair:
            cores = r.cores or {}
            rest = cores.get("machine", 0) - sum(cores.get(k, 0) for k in ("explorers", "redis", "driver"))
            lines.append(
                f"{r.actors:>3} {r.schedule:<9} {r.wall_s:>6.1f} {'+'.join(map(str, r.steps)):>7} "
                f"{'+'.join(map(str, r.explored)):>9} {r.acked:>5} {r.lost:>4} {r.learner_idle:>6.3f} "
                f"{r.learner_idle_reported:>5.3f} {r.learner_busy:>6.3f} {r.explorer_idle:>6.3f} "
                f"{r.explorer_idle_reported:>5.3f} {r.samples_per_insert:>5.2f} "
                f"{f'{r.diff_range[0]:g}..{r.diff_range[1]:g}':>13} "
                f"{(f'{r.bounds[0]:g}..{r.bounds[1]:g}' if r.schedule == 'continual' else '-'):>8} "
                f"{('yes' if r.spi_within else 'no') if r.schedule == 'continual' else '-':>3} "
                f"{'yes' if r.stalls else 'no':>5} {cores.get('explorers', 0):>11.2f} {cores.get('redis', 0):>5.2f} "
                f"{cores.get('driver', 0):>6.2f} {rest:>5.2f} {cores.get('machine', 0):>5.2f} "
                f"{r.redis_per_s.get('all', 0):>11.0f} {r.redis_per_s.get('scripts', 0):>7.0f}")
    lines.append("")
    lines.append("continual, the driver per learner step (ms): train_step (step_s less the overlapped data path); "
                 "draw_batch, of which: held back (limiter or min_current), the train table's stats, sample, "
                 "build_examples, the rest (staleness, packing); after the step: stats, metrics.log, publish, "
                 "explorer progress (every 2 s); other (wall less all these and the drains: ray.wait in exploring(), "
                 "state, checkpoints); then per round, s: warm-up (the wait for the round's first batch) and drain "
                 "(from the learner's last step to the round's end: explorers finishing their trial in flight)")
    header = ["N", "train", "draw", "held", "stats", "sample", "examples", "rest", "stats", "metrics", "publish",
              "progress", "other", "warm-up", "drain"]
    lines.append(" ".join(f"{h:>8}" for h in header))
    for pair in results:
        r = pair[1]
        steps = max(1, sum(r.steps))
        seconds, outer = r.clock.seconds, r.clock.outer
        ms = lambda name: 1e3 * seconds.get(name, 0.0) / steps
        held = 1e3 * r.learner_idle_s / steps
        rest = ms("draw_batch") - held - ms("stats in draw") - ms("sample") - ms("tokenize")
        other = r.wall_s - sum(outer.values()) - r.drain_s * len(r.steps)
        row = [r.actors, ms("train_step"), ms("draw_batch"), held, ms("stats in draw"), ms("sample"), ms("tokenize"),
               rest, ms("stats after step"), ms("metrics.log"), ms("publish"), ms("explorer progress"),
               1e3 * other / steps, r.warmup_s, r.drain_s]
        lines.append(" ".join(f"{v:>8}" if isinstance(v, int) else f"{v:>8.2f}" for v in row))
    lines.append("calls: " + "; ".join(f"N={pair[1].actors}: " + ", ".join(f"{k} {v}" for k, v in
                                                                          sorted(pair[1].clock.calls.items()))
                                       for pair in results))
    return "\n".join(lines)


def goals(results: list[tuple[Result, Result]]) -> str:
    rounds, continual = results[-1]
    ratio = continual.wall_s / rounds.wall_s
    low, high = (continual.target - continual.bounds[1] / max(1, continual.train_inserts),
                 continual.target - continual.bounds[0] / max(1, continual.train_inserts))
    checks = [("lost 0", rounds.lost + continual.lost == 0), (f"wall <= {GOALS['wall']}", ratio <= GOALS["wall"]),
              (f"learner idle <= {GOALS['learner_idle']}", continual.learner_idle <= GOALS["learner_idle"]),
              (f"samples/insert within the error buffer [{low:.3f}, {high:.3f}]", continual.spi_within),
              ("no stall", not (rounds.stalls or continual.stalls))]
    return (f"# goals at N={continual.actors}: " + "; ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in checks)
            + f" (the system reports learner idle {continual.learner_idle_reported:.3f}, explorer idle "
            f"{continual.explorer_idle_reported:.3f})")


def summary(results: list[tuple[Result, Result]]) -> str:
    rounds, continual = results[-1]
    return (f"lost {rounds.lost + continual.lost}; continual/rounds wall {continual.wall_s / rounds.wall_s:.2f}; "
            f"learner idle {continual.learner_idle:.3f}; explorer idle {continual.explorer_idle:.3f}; "
            f"samples/insert {continual.samples_per_insert:.2f} (target {continual.target:g})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1, 8 and fewer steps: under a minute")
    parser.add_argument("--actors", default=None, help="comma-separated N (default 1,8,64; --quick 1,8)")
    parser.add_argument("--tokenizer", choices=["tiny", "memo", "real"], default="tiny",
                        help="tiny: a stand-in, a few tokens per episode (default); memo: SmolLM2's, each text "
                             "tokenized once; real: SmolLM2's on every episode")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest N's continual run (driver)")
    parser.add_argument("--out", type=Path, default=None, help="run folders here (default: a temporary folder)")
    parser.add_argument("--what-if", default=None,
                        help="comma-separated proposed changes, patched in this process only: publish (no "
                             "wait for the explorers' acks), progress (explorer progress collected without blocking), "
                             "stats (ReplayBuffer.stats in one round trip), prefetch (train_loop draws the next batch "
                             "on a thread while the current one trains)")
    defaults = Workload()
    parser.add_argument("--serial", action="store_true",
                        help="the data path serial with train_step (today's train_loop), rates balanced on the "
                             "learner's step measured beforehand; default: overlapped, balanced on --step-s")
    for name, value in vars(defaults).items():
        if name == "overlap":
            continue
        kind = int if isinstance(value, int) or name == "staleness_cap" else float
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)
    args = parser.parse_args(argv)
    work = Workload(steps=24, checkpoint_every=12) if args.quick else Workload()
    work.overlap = not args.serial
    for name in vars(defaults):
        if name != "overlap" and getattr(args, name) is not None:
            setattr(work, name, getattr(args, name))
    counts = [int(x) for x in (args.actors or ("1,8" if args.quick else "1,8,64")).split(",")]
    print(f"# workload: {work.rounds} rounds x {work.tools} tools; per round {work.steps} steps of {work.batch} "
          f"({work.step_s} s each) and {work.episodes_per_round} episodes; spi {work.spi:g}, min size "
          f"{work.min_size}, error buffer {work.error_buffer:g}; publish every {work.publish_every}; balance "
          f"{work.balance:g}; tokenizer {args.tokenizer}" + (f"; what-if {args.what_if}" if args.what_if else ""),
          flush=True)
    results = simulate(counts, work, args.tokenizer, args.profile, args.out,
                       log=lambda line: print(line, flush=True), what_if=args.what_if, data_path=not args.quick)
    print(table(results, work))
    if args.profile:
        profiled = results[-1][1].profile
        text = io.StringIO()
        pstats.Stats(profiled, stream=text).sort_stats("cumulative").print_stats(25)
        print("\n".join(text.getvalue().splitlines()[:60]))
    print(goals(results))
    print(summary(results))


if __name__ == "__main__":
    main()
