"""`imaginarium eval`: evaluate a policy on the built-in gold sets and/or an external BFCL-style set;
`compare_command`: the win rate of two saved runs.

`eval_command` prints the markdown table and writes `<suite>.json` and `<suite>.md` into --out. Mistakes
(an unknown strategy, tool or round, an unreadable eval set or report, a missing model) get one line on
stderr and exit 2.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from replay.cli import fail

SUITES = ("builtin",)


def eval_command(
    model: str = typer.Option("default", help="default (SmolLM2-135M-Instruct), tiny, or a model path."),
    strategy: str = typer.Option("react", help="react | react@N | dfsdt"),
    suite: Optional[str] = typer.Option(None, help="builtin: the gold sets (the default unless --eval-set is given)."),
    round: Optional[int] = typer.Option(None, "--round", help="Only the tools of this round."),
    tools: Optional[str] = typer.Option(None, help="Comma-separated tool names (default: every tool with a gold set)."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most N gold queries per tool."),
    distractors: int = typer.Option(0, min=0, help="Offer K other tools of the same round with each query."),
    eval_set: Optional[Path] = typer.Option(None, "--eval-set", help="BFCL-style questions (JSON or JSONL), scored on one call, no search."),
    answers: Optional[Path] = typer.Option(None, help="BFCL-style ground truth for --eval-set."),
    judge_model: Optional[str] = typer.Option(None, help="Judge answers with this model (ToolEval style) instead of the gold rules."),
    judge_k: int = typer.Option(3, min=1, help="LLM judge: verdicts per answer, majority wins."),
    temperature: Optional[float] = typer.Option(None, min=0.0, help="Sampling temperature (default: 0, greedy; 0.7 for react@N)."),
    batch_size: int = typer.Option(16, min=1, help="Queries per batched search."),
    out: Path = typer.Option(Path("runs/eval"), help="Folder for the JSON and markdown reports."),
    seed: int = typer.Option(0, help="Seeds distractors, tool order and sampling: the same seed repeats a run."),
    threads: int = typer.Option(1, min=1, help="Torch threads."),
    config: Optional[Path] = typer.Option(None, "--config", help="Search budget from this experiment config (e.g. a "
                                                                 "run's config.yaml), to score a run's models as it did."),
) -> None:
    """Evaluate a policy: STE's well-formed / API match / argument match / correct, and ToolEval's pass rate."""
    from actors.explorer import make_strategy
    from actors.policy import Sampling
    from actors.search import Budget
    from evaluation.bfcl import EvalSetError, evaluate_eval_set, load_eval_set
    from evaluation.builtin import evaluate, gold_tasks, select_tools
    from evaluation.judges import LLMJudge, rule_judge
    from evaluation.report import builtin_markdown, builtin_report, eval_set_markdown, eval_set_report, write_report
    from toolenv.gold import load_gold_dir
    from toolenv.registry import builtin_registry
    from toolenv.runner import ToolRunner

    # every check that needs no model comes first, so a mistake costs no loading time
    budget = Budget()
    if config is not None:
        from launcher.config import ConfigError, load_config

        try:
            budget = Budget(**load_config(config).explore.budget.model_dump())
        except ConfigError as error:
            fail(str(error))
    try:
        search = make_strategy(strategy, budget)
    except ValueError as error:
        fail(str(error))
    if suite is not None and suite not in SUITES:
        fail(f"unknown suite {suite!r}; suites: {', '.join(SUITES)} (external sets: --eval-set FILE --answers FILE)")
    if (eval_set is None) != (answers is None):
        fail("--eval-set and --answers go together: give both files")
    run_builtin = suite == "builtin" or eval_set is None
    entries = []
    if eval_set is not None:
        try:
            entries = load_eval_set(eval_set, answers)
        except EvalSetError as error:
            fail(str(error))
    if run_builtin:
        registry, gold = builtin_registry(), load_gold_dir()
        try:
            names = select_tools(registry, gold, [n.strip() for n in (tools or "").split(",") if n.strip()], round)
        except ValueError as error:
            fail(str(error))
        tasks = gold_tasks(registry, gold, names, limit, distractors, seed)
    for name in (model, judge_model):
        _check_model(name)

    policy = _load_policy(model, threads)
    judge = rule_judge if judge_model is None else LLMJudge(_load_policy(judge_model, threads), k=judge_k)
    if temperature is None:
        temperature = 0.7 if strategy.startswith("react@") else 0.0
    sampling = Sampling(temperature=temperature, seed=seed)
    meta = dict(model=model, strategy=search.name, seed=seed, temperature=temperature)
    err = Console(stderr=True)  # progress and notes; stdout carries only the tables

    if run_builtin:
        with _progress(err) as progress:
            bar = progress.add_task(f"gold sets, {search.name}", total=len(tasks))
            records = evaluate(policy, search, tasks, ToolRunner(registry), judge, sampling, batch_size,
                               progress=lambda done: progress.update(bar, completed=done))
        report = builtin_report(records, {**meta, "round": round, "distractors": distractors, "limit": limit,
                                          "judge": judge_model or "rules"})
        markdown = builtin_markdown(report)
        typer.echo(markdown)  # plain stdout: a markdown table must not be wrapped to the terminal
        paths = write_report(report, markdown, out, "builtin")
        err.print(f"wrote {paths[0]} and {paths[1]}", highlight=False)
    if entries:
        with _progress(err) as progress:
            bar = progress.add_task(f"{eval_set.name}, one call", total=len(entries))
            set_records = evaluate_eval_set(policy, entries, sampling, batch_size,
                                            progress=lambda done: progress.update(bar, completed=done))
        report = eval_set_report(set_records, {"model": model, "eval set": str(eval_set), "seed": seed})
        markdown = eval_set_markdown(report)
        typer.echo(markdown)
        paths = write_report(report, markdown, out, eval_set.stem)
        err.print(f"wrote {paths[0]} and {paths[1]}", highlight=False)


def _check_model(name: str | None) -> None:
    if name is not None and name not in ("default", "tiny") and not Path(name).is_dir():
        fail(f"no model folder {name!r}: give default, tiny, or the path of a transformers model")


def _load_policy(name: str, threads: int):
    from actors.explorer import make_policy

    try:
        return make_policy(name, threads)
    except (OSError, ValueError) as error:  # a folder that holds no loadable model
        fail(f"cannot load model {name!r}: {' '.join(str(error).split())[:300]}")


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def compare_command(
    run_a: Path = typer.Argument(..., help="builtin.json of run A (written by `imaginarium eval`)."),
    run_b: Path = typer.Argument(..., help="builtin.json of run B, over the same queries."),
    judge_model: Optional[str] = typer.Option(None, help="Prefer answers with this model (ToolEval style) instead of the rule."),
    seed: int = typer.Option(0, help="Seeds which run is shown first to the judge, per query."),
    threads: int = typer.Option(1, min=1, help="Torch threads (with --judge-model)."),
) -> None:
    """Win rate of run A against run B: solved beats unsolved (or an LLM's preference), ties count half."""
    from evaluation.judges import LLMPairJudge, rule_pair_judge, win_rate
    from evaluation.report import load_records, win_rate_markdown

    try:
        records_a, records_b = load_records(run_a), load_records(run_b)
    except ValueError as error:
        fail(str(error))
    _check_model(judge_model)
    judge = rule_pair_judge if judge_model is None else LLMPairJudge(_load_policy(judge_model, threads))
    try:
        result = win_rate(records_a, records_b, judge, seed)
    except ValueError as error:
        fail(f"{run_a} vs {run_b}: {error}")
    typer.echo(win_rate_markdown(result, run_a.parent.name or str(run_a), run_b.parent.name or str(run_b)))
