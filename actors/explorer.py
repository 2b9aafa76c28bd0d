"""Explorer actors: a policy, the tools, the long-term memory and a buffer client in one Ray actor.

The launcher creates them (`ray.remote(Explorer).options(max_restarts=..., max_concurrency=...)`) and
drives them in one of two ways:
- rounds: it hands them units of work (a list of tools, one STE session each) and sends new weights
  with `load_weights` between units;
- continual: `stream` explores a round's tools until `stop`, selecting each trial's episodes for the
  train table as they arrive; weights sent meanwhile wait until the trial in flight is done, so an
  episode never mixes two versions. The train table's rate limiter holds the push back (backpressure).
Episodes are pushed after every trial, so a crash loses at most the trial in flight.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from actors.exploit import rejection
from actors.search import Budget, FinishRule, make_strategy
from actors.ste import STEConfig, explore
from replay.buffer import RateLimitTimeout


@dataclass(frozen=True)
class ExplorerConfig:
    redis_url: str
    table: str = "explore"
    model: str = "default"  # "default" (SmolLM2-135M-Instruct), "tiny" (random weights, tests), or a path
    endpoint: dict | None = None  # {base_url, model, api_key_env}: explore through an OpenAI-compatible server
    teacher: str = ""  # "": this explorer runs the student; else the teacher's name, recorded in its episodes
    threads: int = 1
    strategy: str = "react"  # react | react@N | dfsdt
    budget: Budget = field(default_factory=Budget)
    finish: FinishRule = field(default_factory=FinishRule)
    ste: STEConfig = field(default_factory=STEConfig)
    tool_sources: tuple[str, ...] = ("builtin",)  # `toolenv.sources` strings, opened in the actor's own process
    tool_rounds: dict[int, list[str]] | None = None  # the config's round → tools, when it names them
    tool_timeout_s: float = 5.0
    push_timeout_s: float | None = None  # None: wait on the rate limiter as long as it takes
    seed: int = 0


@dataclass(frozen=True)
class StreamSelection:
    """The exploitation filter's settings, as `stream` applies them to each trial's episodes."""

    filtered: bool = True  # False: every episode is kept (the ablation "no exploitation filter")
    duplicate_threshold: float = 0.92
    keep_calls_without_answer: bool = False
    max_per_call: int | None = None


class HeldEpisodes:
    """The train table's episodes of some tools, read incrementally: what a new episode is a near-duplicate of."""

    def __init__(self, buffer, table: str, tools: list[str]):
        self.buffer, self.table, self.tools = buffer, table, tools
        self.episodes: dict = {}  # id → Episode

    def refresh(self) -> list:
        from replay.buffer import BufferError, Filters

        for tool in self.tools:
            for episode_id in self.buffer.ids(self.table, Filters(tool=tool)):
                if episode_id not in self.episodes:
                    try:
                        self.episodes[episode_id] = self.buffer.get(self.table, episode_id)
                    except BufferError:  # evicted since it was listed
                        continue
        return list(self.episodes.values())


def make_policy(model: str, threads: int, endpoint: dict | None = None):
    """A policy for a config's model: "default", "tiny" (both built on this node if needed) or a folder; or an
    OpenAI-compatible endpoint ({base_url, model, api_key_env}: the key is read from that variable here)."""
    if endpoint is not None:
        from actors.endpoint import EndpointPolicy

        key_env = endpoint.get("api_key_env")
        return EndpointPolicy(endpoint["base_url"], endpoint["model"], os.environ.get(key_env) if key_env else None)
    from actors.model import load_model, model_folder
    from actors.transformers_policy import TransformersPolicy

    loaded, tokenizer = load_model(model_folder(model))
    return TransformersPolicy(loaded, tokenizer, threads=threads)


def pin_threads(threads: int) -> None:
    """An actor process's CPU threads, set before torch starts its thread pools: two processes with 2 threads
    each on 2 cores run 5-10x slower than with 1 each."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class Explorer:
    def __init__(self, config: ExplorerConfig, name: str):
        pin_threads(config.threads)
        import torch

        torch.manual_seed(config.seed)

        from actors.embeddings import default_embedder
        from actors.memory import LongTermMemory
        from replay.buffer import ReplayBuffer
        from toolenv.sources import load_tools
        from toolenv.runner import Limits, ToolRunner

        self.config = config
        self.name = name
        self.policy = make_policy(config.model, config.threads, config.endpoint)
        self.registry = load_tools(config.tool_sources, config.tool_rounds)
        self.runner = ToolRunner(self.registry, Limits(timeout_s=config.tool_timeout_s))
        self.buffer = ReplayBuffer(config.redis_url, seed=config.seed)
        self.memory = LongTermMemory(self.buffer.redis, default_embedder())
        self.strategy = make_strategy(config.strategy, config.budget, config.finish)
        # continual mode: `load_weights` and `stop` arrive on other threads while `stream` runs
        self._weights_lock = threading.Lock()
        self._streaming = False
        self._pending: tuple[int, dict] | None = None
        self._stop = threading.Event()
        self._progress: Counter = Counter()

    def explore(self, tools: list[str]) -> dict[str, int]:
        """One STE session per tool; returns counts for the progress display."""
        counts = {"episodes": 0, "kept": 0, "solved": 0, "failed": 0, "duplicates": 0}
        for batch in explore(self.policy, self.registry, self.runner, tools, self.config.ste, self.memory,
                             self.strategy, actor=self.name, model=self.config.teacher, seed=self.config.seed):
            counts["failed"] += batch.failed
            if not batch.episodes:
                continue
            result = self.buffer.insert(self.config.table, batch.episodes, timeout=self.config.push_timeout_s)
            counts["episodes"] += result.inserted
            counts["duplicates"] += result.duplicates
            counts["kept"] += sum(rejection(e) is None for e in batch.episodes)
            counts["solved"] += sum(e.outcome.label == "solved" for e in batch.episodes)
        return counts

    def stream(self, round: int, tools: list[str], train_table: str, selection: StreamSelection,
               sessions_per_call: int) -> dict[str, float]:
        """Continual mode: STE sessions over `tools`, round-robin, until `stop()`; every trial's episodes go to
        the explore table, and those the exploitation filter keeps to `train_table`, under its rate limiter.

        Returns the counters of `progress()`, final.
        """
        from actors.embeddings import default_embedder
        from actors.exploit import select

        self._stop.clear()
        self._progress = Counter(started=time.time())
        held = HeldEpisodes(self.buffer, train_table, tools)
        embedder = default_embedder() if selection.filtered else None
        with self._weights_lock:
            self._streaming = True
        try:
            next_tool = 0
            while not self._stop.is_set():
                unit = [tools[(next_tool + i) % len(tools)] for i in range(sessions_per_call)]
                next_tool += sessions_per_call
                for batch in explore(self.policy, self.registry, self.runner, unit, self.config.ste, self.memory,
                                     self.strategy, actor=self.name, model=self.config.teacher, seed=self.config.seed):
                    self._progress["failed"] += batch.failed
                    if batch.episodes:
                        kept = select(batch.episodes, embedder, selection.duplicate_threshold,
                                      selection.keep_calls_without_answer, selection.max_per_call,
                                      held=held.refresh()).kept if selection.filtered else batch.episodes
                        self._push(batch.episodes, train_table, kept)
                    self._take_pending_weights()  # between trials: the next episode runs on the new version
                    if self._stop.is_set():
                        break
        finally:
            with self._weights_lock:
                self._streaming = False
            self._take_pending_weights()
        return self.progress()

    def _push(self, episodes: list, train_table: str, kept: list) -> None:
        """Every episode into the explore table (the record of what was tried, never rate-limited), the kept ones
        into the train table: a held-back insert is retried until it goes in or the stream is stopped. Once
        stopped, what the limiter still holds back stays in the explore table only (acknowledged, never lost):
        forcing it in would push samples per insert below the limiter's bound for good."""
        self._progress["episodes"] += self.buffer.insert(self.config.table, episodes, ignore_rate_limiter=True).inserted
        self._progress["solved"] += sum(e.outcome.label == "solved" for e in episodes)
        self._progress["tokens"] += sum(e.tokens.prompt + e.tokens.completion for e in episodes)
        held_since = None  # idle is time held back, not every insert's own round trip
        while kept:
            try:
                self._progress["kept"] += self.buffer.insert(train_table, kept, timeout=0 if held_since is None else 0.5).inserted
                kept = []
            except RateLimitTimeout:
                held_since = held_since or time.perf_counter()
                if self._stop.is_set():
                    self._progress["held_at_stop"] += len(kept)  # in the explore table; some may have gone in
                    kept = []
        if held_since is not None:
            self._progress["waited_s"] += time.perf_counter() - held_since

    def stop(self) -> None:
        """End `stream` after the trial in flight (its episodes are pushed first)."""
        self._stop.set()

    def progress(self) -> dict[str, float]:
        """Counters of the current or last stream: episodes, kept, solved, failed, tokens, waited_s, wall_s."""
        counters = dict(self._progress)
        counters["wall_s"] = time.time() - counters.pop("started", time.time())
        counters["version"] = self.policy.version
        return counters

    def exploit(self, round: int, target_table: str, duplicate_threshold: float, paraphrases: bool,
                filtered: bool = True, calls_only: bool = False, max_per_call: int | None = None) -> dict[str, int]:
        """STE's exploitation of one round: keep the good episodes, add paraphrases, push them for the learner.

        `filtered=False` keeps every explored episode (the ablation "no exploitation filter"); `calls_only`
        keeps the calls of episodes rejected only for their answer (`actors.exploit.without_answer`);
        `max_per_call` caps the episodes kept per identical set of calls.
        """
        from actors.embeddings import default_embedder
        from collections import Counter

        from actors.exploit import Selection, paraphrase, select
        from replay.buffer import Filters
        from replay.codec import RecordError

        explored = [e for _, e in self.buffer.episodes(self.config.table, Filters(round=round))
                    if not isinstance(e, RecordError)]
        selection = select(explored, default_embedder(), duplicate_threshold, calls_only, max_per_call) if filtered else \
            Selection(explored, Counter())
        extra = paraphrase(self.policy, selection.kept) if paraphrases else []
        result = self.buffer.insert(target_table, selection.kept + extra, ignore_rate_limiter=True)
        return {"explored": len(explored), "kept": len(selection.kept), "paraphrased": len(extra),
                "inserted": result.inserted, **{f"dropped: {k}": v for k, v in selection.dropped.items()}}

    def load_weights(self, version: int, state_dict: dict) -> int:
        """Take policy version `version`: at once between units, or, while streaming, after the trial in flight
        (the stream applies it), so an episode never mixes two versions. Returns the version now announced."""
        if self.config.teacher:
            raise RuntimeError(f"{self.name} runs the teacher {self.config.teacher}: it never takes the student's weights")
        with self._weights_lock:
            if not self._streaming:
                self.policy.load_weights(version, state_dict)
                return version
            self._pending = (version, state_dict)
            return version

    def _take_pending_weights(self) -> None:
        with self._weights_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.policy.load_weights(*pending)

    def version(self) -> int:
        return self.policy.version

    def pid(self) -> int:
        return os.getpid()
