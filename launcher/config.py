"""The experiment config: one YAML file, validated on load; a mistake is one line naming the key."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from actors.search import STRATEGY_PATTERN, Budget, FinishRule
from actors.ste import STEConfig
from evaluation.evaluator import EvalConfig
from learner.config import LearnerConfig
from replay.tables import RateLimiter
from toolenv.sources import SourceError, load_tools, tools_by_round


class ConfigError(ValueError):
    """A config that cannot run; the message is one line: file, key, what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RedisSection(_Strict):
    url: str | None = None  # None: an embedded redis-server with AOF in the run folder


class RaySection(_Strict):
    address: str | None = None  # None: local Ray (or RAY_ADDRESS, as `ray job submit` sets it)
    num_cpus: int | None = Field(None, ge=1)


class ModelSection(_Strict):
    path: str = "default"  # "default" (SmolLM2-135M-Instruct from its PyPI wheel), "tiny" (tests), or a folder


class ToolsSection(_Strict):
    # where tools come from (`toolenv.sources`): builtin, python:…, openai:…, toolbench:…, mcp:…, mcp+http(s)://…,
    # openapi:…; every explorer and the evaluator open the same sources in their own process
    sources: list[str] = Field(default_factory=lambda: ["builtin"], min_length=1)
    # the rounds to run: [1, 2] (the built-in suite's own rounds), or {1: [names or globs], 2: [...]} across sources
    rounds: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    per_round: int | None = Field(None, ge=1)  # the first N tools of each round (all if None)
    # round → its tools to learn, by name or glob (None: the suite's order); `rounds` as a mapping sets it
    names: dict[int, list[str]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _rounds_as_mapping(cls, data):
        """`rounds: {1: [...], 2: [...]}` is `rounds: [1, 2]` with `names`: one representation inside."""
        if isinstance(data, dict) and isinstance(data.get("rounds"), dict):
            if data.get("names") is not None:
                raise ValueError("tools.rounds as a mapping already names each round's tools: drop tools.names")
            data = {**data, "names": data["rounds"], "rounds": sorted(data["rounds"])}
        return data

    def by_round(self, registry) -> dict[int, list[str]]:
        """The tools each round explores and is evaluated on: those named (globs resolved across sources), else the
        round's in the suite's order."""
        if self.names is not None:
            named = tools_by_round(registry, {r: self.names[r] for r in self.rounds})
            return {r: named[r][: self.per_round] for r in self.rounds}
        return {r: [tool.name for tool in registry.by_round(r)][: self.per_round] for r in self.rounds}


class Endpoint(_Strict):
    """An OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp, OpenAI, `actors.serve`)."""

    base_url: str = Field(pattern=r"^https?://")
    model: str
    api_key_env: str | None = None  # the environment variable holding the key: never written into the run


class TeacherEndpoint(_Strict):
    endpoint: Endpoint


class ExploreSection(STEConfig):
    """STE's settings (`STEConfig`'s keys, flat) and the explorers': who explores, how many, with what search."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    # who explores: None, the student (`model.path`, which the learner trains and publishes to); or a teacher
    # ("default", a folder, or {endpoint: {...}}) that explores for the student and never takes its weights
    model: str | TeacherEndpoint | None = None
    actors: int = Field(2, ge=1)
    threads: int = Field(1, ge=1)
    episodes_per_tool: int = Field(8, ge=1)
    sessions_per_call: int = Field(2, ge=1)
    strategy: str = Field("react", pattern=STRATEGY_PATTERN)
    budget: Budget = Field(default_factory=Budget)
    finish: FinishRule = Field(default_factory=FinishRule)
    max_restarts: int = Field(3, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)  # Ray custom resources, e.g. {"explorer": 1}

    def ste(self) -> STEConfig:
        return STEConfig.model_validate(self.model_dump(include=set(STEConfig.model_fields)))


class BufferSection(_Strict):
    table: str = Field("explore", pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # every explored episode; `<table>-train`: kept
    max_size: int = Field(100_000, ge=1)
    # guards `<table>-train`, the table the learner samples (the explore table is a record, never rate-limited)
    rate_limiter: RateLimiter = Field(default_factory=RateLimiter)

    @property
    def train_table(self) -> str:
        return f"{self.table}-train"


class ExploitSection(_Strict):
    filter: bool = True  # STE's filter (answered, calls succeeded, reflection says solved, no near-duplicates)
    paraphrases: bool = True
    # keep the calls of an episode whose calls are right but whose answer is not grounded (small models)
    keep_calls_without_answer: bool = False
    max_per_call: int | None = Field(None, ge=1)  # episodes kept per identical set of calls (small models repeat values)
    duplicate_threshold: float = Field(0.92, gt=0, le=1)


class LearnSection(LearnerConfig):
    steps_per_round: int = Field(40, ge=1)
    # at most this many passes over a round's new episodes (None: always steps_per_round): a round that kept
    # one episode is not trained on it steps_per_round × batch times
    max_epochs: float | None = Field(None, gt=0)
    max_tokens: int = Field(1024, ge=128)  # per training example (never cuts a tool call)
    # from round 2 on, also train round r from the end of round r-1 without replay, and evaluate that branch:
    # the learning matrix with and without replay, side by side (costs one more training and evaluation per round)
    compare_no_replay: bool = False

    def learner_config(self) -> LearnerConfig:
        return LearnerConfig(**self.model_dump(exclude={"steps_per_round", "max_epochs", "max_tokens", "compare_no_replay"}))


class ExperimentConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    seed: int = 0
    # rounds: per round explore → exploit → learn → evaluate, one after another (STE's protocol);
    # continual: explorers, the exploitation filter and the learner run at once under the train table's limiter
    schedule: Literal["rounds", "continual"] = "rounds"
    redis: RedisSection = Field(default_factory=RedisSection)
    ray: RaySection = Field(default_factory=RaySection)
    model: ModelSection = Field(default_factory=ModelSection)
    tools: ToolsSection = Field(default_factory=ToolsSection)
    explore: ExploreSection = Field(default_factory=ExploreSection)
    buffer: BufferSection = Field(default_factory=BufferSection)
    exploit: ExploitSection = Field(default_factory=ExploitSection)
    learn: LearnSection = Field(default_factory=LearnSection)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _possible(self) -> ExperimentConfig:
        if sorted(set(self.tools.rounds)) != self.tools.rounds:
            raise ValueError(f"tools.rounds must be increasing without repeats, got {self.tools.rounds}")
        unlisted = [r for r in self.tools.rounds if self.tools.names is not None and not self.tools.names.get(r)]
        if unlisted:
            raise ValueError(f"tools.names: no tools listed for round {unlisted[0]}")
        if self.learn.publish_every > self.learn.steps_per_round:
            raise ValueError(f"learn.publish_every ({self.learn.publish_every}) exceeds learn.steps_per_round "
                             f"({self.learn.steps_per_round}): explorers would never get new weights")
        if self.learn.gpus_per_rank == 0 and self.learn.ranks * self.learn.threads > 64:
            raise ValueError("learn.ranks × learn.threads over 64 CPU threads: set learn.gpus_per_rank for GPU ranks")
        if self.explore.model is not None and self.learn.staleness_cap is not None:
            raise ValueError("learn.staleness_cap: a teacher (explore.model) explores with its own weights, never a "
                             "student version, so its episodes have no staleness: leave the cap unset")
        limiter, batch = self.buffer.rate_limiter, self.learn.batch_size
        if limiter.kind == "sample_to_insert_ratio" and self.schedule == "rounds":
            raise ValueError("buffer.rate_limiter: sample_to_insert_ratio needs schedule: continual (in rounds the "
                             "learner samples after exploring has ended, so no insert could release it)")
        if limiter.kind == "min_size" and self.schedule == "continual":
            raise ValueError("buffer.rate_limiter: schedule continual needs kind sample_to_insert_ratio (under min_size "
                             "the learner would spend its round's steps on the first episodes to arrive)")
        if limiter.kind == "sample_to_insert_ratio" and 2 * limiter.error_buffer < batch:
            raise ValueError(f"buffer.rate_limiter.error_buffer: {limiter.error_buffer} lets the learner run at most "
                             f"{2 * limiter.error_buffer:g} samples ahead, less than one batch of {batch} "
                             "(learn.micro_batch × ranks × grad_accum): both sides would wait forever")
        return self


def load_config(path: str | Path, registry=None) -> ExperimentConfig:
    """Read and validate; every problem becomes ConfigError with `file: key: message`.

    With the tool `registry` (`tools_registry(config)` opens the config's own sources), also that every round has
    its tools and the learner can start.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ConfigError(f"{path}: {key + ': ' if key else ''}{message}{more}") from None
    if registry is not None:
        check_config(path, config, registry)
    return config


def check_config(path: str | Path, config: ExperimentConfig, registry) -> None:
    """What needs the tools: every round has its tools, and the learner can start."""
    try:
        _check_tools(Path(path), config.tools, registry)
    except SourceError as error:
        raise ConfigError(f"{path}: {error}") from None
    _check_limiter_reachable(Path(path), config, registry)


def tools_registry(config: ExperimentConfig, path: str | Path = "config") -> object:
    """The tools of the config's sources, each named tool carrying its configured round (one line on failure)."""
    try:
        return load_tools(config.tools.sources, config.tools.names)
    except SourceError as error:
        raise ConfigError(f"{path}: tools.sources: {error}") from None


def _check_limiter_reachable(path: Path, config: ExperimentConfig, registry) -> None:
    """The learner's first sample waits for `min_size_to_sample` kept episodes: refused if round one explores fewer."""
    first = config.tools.rounds[0]
    explored = config.explore.episodes_per_tool * len(config.tools.by_round(registry)[first])
    need = config.buffer.rate_limiter.min_size_to_sample
    if need > explored:
        raise ConfigError(f"{path}: buffer.rate_limiter.min_size_to_sample: {need} exceeds the {explored} episodes "
                          f"round {first} explores (explore.episodes_per_tool × its tools): the learner could never start")


def _check_tools(path: Path, tools: ToolsSection, registry) -> None:
    if tools.names is None:
        available = registry.rounds()
        missing = [r for r in tools.rounds if r not in available]
        if missing:
            raise ConfigError(f"{path}: tools.rounds: no round {missing[0]} in the suite "
                              f"(rounds: {', '.join(map(str, available))}); or name each round's tools: "
                              "tools.rounds: {1: [names or globs], …}")
        return
    tools.by_round(registry)  # every name known, every glob matching, no tool in two rounds
    for r, names in tools.names.items():
        if len(set(names)) != len(names):
            raise ConfigError(f"{path}: tools.names.{r}: a tool is listed twice")
