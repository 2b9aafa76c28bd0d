"""Gold-set evaluation composed once: a policy's tasks in a setting (oracle tools, distractors, ToolLLM's retrieved
tools, STE's in-context demonstrations) → search → scores → report.

`imaginarium eval` calls `evaluate_gold` in its own process; a run calls it inside `Evaluator`, the Ray actor that
takes published weights like an explorer. `EvalConfig` is the one config of both: a run's `eval:` section, and
the defaults of `imaginarium eval`'s flags.
"""
from __future__ import annotations

import json
from typing import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from actors.search import STRATEGY_PATTERN


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str = Field("react", pattern=STRATEGY_PATTERN)
    limit_per_tool: int = Field(4, ge=1)
    threads: int = Field(1, ge=1)  # the evaluator runs alone (explorers and learner wait), so it may take the cores
    max_new_tokens: int = Field(160, ge=16)  # per turn; a reply cut here is a wrong one
    baseline: bool = True  # also evaluate the base model, for the learning matrix's first row
    # gold sets (JSONL, the built-in sets' format: `imaginarium evalset draft` starts one) for tools of your own;
    # a tool with neither a built-in set nor one of these is explored and learned, not scored
    eval_sets: list[str] = Field(default_factory=list)
    # ToolLLM's "retrieved APIs": each query is offered the top K tools a retriever finds among all the run's tools
    # instead of its gold tools (None: the gold tools, "oracle APIs")
    retrieve_k: int | None = Field(None, ge=1)
    retriever: str = "minilm"  # bm25, minilm, or a folder from `imaginarium retriever train`
    # STE's in-context learning: after the last round, the base model is also scored with the K kept episodes most
    # similar to each query as demonstrations (the report's ICL row, beside the base and fine-tuned models)
    icl_k: int | None = Field(None, ge=1)


def evaluate_gold(policy, strategy, registry, gold: dict, tools: Sequence[str], *, limit: int | None, seed: int,
                  sampling, judge=None, distractors: int = 0, retrieve_k: int | None = None, retriever=None,
                  demonstrations=None, icl_k: int | None = None, batch_size: int = 16, meta: dict | None = None,
                  progress: Callable[[int, int], None] = lambda done, total: None) -> dict:
    """Score `policy` on the gold entries of `tools` (the first `limit` each) and return the report.

    With `retrieve_k` the query sees the `retriever`'s top K tools (a gold tool left out is a miss; the report's
    meta records the retrieval recall); with `icl_k`, the K most similar `demonstrations` that fit half the
    model's context (never its own query's episode, nor one whose query is an evaluation query).
    """
    from evaluation.builtin import evaluate, gold_tasks, with_demonstrations, with_retrieved_tools
    from evaluation.judges import rule_judge
    from evaluation.report import builtin_report
    from toolenv.runner import ToolRunner

    meta = {**(meta or {}), "strategy": strategy.name, "seed": seed, "limit": limit, "distractors": distractors,
            "temperature": sampling.temperature}
    tasks = gold_tasks(registry, gold, tools, limit, distractors, seed)
    if retrieve_k is not None:
        tasks, recall = with_retrieved_tools(tasks, registry, retriever, retrieve_k)
        meta.update({"retrieve": retrieve_k, "retrieval recall": float(f"{recall:.4f}")})
    if icl_k is not None:
        tasks = with_demonstrations(tasks, demonstrations, icl_k, context_fits(policy))
        meta["icl"] = icl_k
    records = evaluate(policy, strategy, tasks, ToolRunner(registry), judge or rule_judge, sampling, batch_size,
                       progress=lambda done: progress(done, len(tasks)))
    return builtin_report(records, meta)


def context_fits(policy) -> Callable[[list], bool]:
    """Whether demonstrations fit half the model's context (the other half is the query, the tools and the
    answer); an endpoint policy has no tokenizer here, so everything fits."""
    tokenizer = getattr(policy, "tokenizer", None)
    if tokenizer is None:
        return lambda messages: True
    config = getattr(getattr(policy, "model", None), "config", None)
    budget = (getattr(config, "max_position_embeddings", 8192) or 8192) // 2

    def fits(messages) -> bool:
        text = [m.content or "" for m in messages] + [json.dumps(call.function.arguments) for m in messages
                                                       for call in m.tool_calls]
        return sum(len(ids) for ids in tokenizer(text).input_ids) <= budget

    return fits


def demonstrations_from(episodes: list):
    """STE's ICL store: kept episodes, embedded once, retrieved by similarity to each query."""
    from actors.embeddings import default_embedder
    from actors.exploit import Demonstrations

    return Demonstrations(episodes, default_embedder())


class Evaluator:
    """A run's evaluation actor: the student's published weights (or the base model's), scored on the gold sets
    of the run's tools with the run's search budget and Finish rule, and `EvalConfig`."""

    def __init__(self, model: str, config: EvalConfig, budget, finish, seed: int = 0,
                 tool_sources: tuple[str, ...] = ("builtin",), tool_rounds: dict | None = None):
        from actors.explorer import make_policy, pin_threads

        pin_threads(config.threads)
        from actors.search import make_strategy
        from evaluation.evalset import by_tool, load_gold_set
        from toolenv.gold import load_gold_dir
        from toolenv.sources import load_tools

        self.config, self.seed = config, seed
        self.policy = make_policy(model, config.threads)
        self.strategy = make_strategy(config.strategy, budget, finish)
        self.registry = load_tools(tool_sources, tool_rounds)
        self.gold = load_gold_dir()
        for path in config.eval_sets:
            self.gold.update(by_tool(load_gold_set(path, self.registry)))
        self.retriever = None
        if config.retrieve_k is not None:
            from retrieval import open_retriever

            self.retriever = open_retriever(list(self.registry), config.retriever)

    def load_weights(self, version: int, state_dict: dict) -> int:
        self.policy.load_weights(version, state_dict)
        return self.policy.version

    def evaluate(self, tools: list[str], icl_from: tuple[str, str] | None = None) -> dict:
        """`imaginarium eval`'s report for the policy's current version. With `icl_from` (Redis URL, train table),
        the table's kept episodes are the demonstrations (`icl_k` of them per query)."""
        from actors.policy import Sampling

        demonstrations = None
        if icl_from is not None:
            from replay.buffer import ReplayBuffer
            from replay.episode import Episode

            url, table = icl_from
            demonstrations = demonstrations_from([episode for _, episode in ReplayBuffer(url).episodes(table)
                                                  if isinstance(episode, Episode)])
        tools = [name for name in tools if name in self.gold]  # a tool of the user's own has no built-in gold set
        return evaluate_gold(self.policy, self.strategy, self.registry, self.gold, tools,
                             limit=self.config.limit_per_tool, seed=self.seed,
                             sampling=Sampling(temperature=0.0, max_new_tokens=self.config.max_new_tokens, seed=self.seed),
                             retrieve_k=self.config.retrieve_k, retriever=self.retriever, demonstrations=demonstrations,
                             icl_k=self.config.icl_k if icl_from is not None else None, batch_size=32,
                             meta={"version": self.policy.version, "judge": "rules"})
