"""`imaginarium retriever …`: fine-tune a tool retriever on a run, and compare retrievers by NDCG on held-out queries."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from replay.cli import RedisOption, fail
from toolenv.gold import GOLD_DIR, GoldFormatError

app = typer.Typer(help="Tool retrieval (ToolLLM's API retriever): fine-tune MiniLM on a run, compare BM25, MiniLM "
                       "zero-shot and fine-tuned by NDCG.", no_args_is_help=True)

MODEL_FOLDER = "retriever"  # RUN/retriever/: where `train` saves and `eval --run-dir` looks


@app.command()
def train(
    run_dir: Path = typer.Option(Path("runs/latest"), "--run-dir", help="Run folder whose kept episodes to train on."),
    redis_: Optional[str] = RedisOption,
    table: Optional[str] = typer.Option(None, "--table", "-t", help="Table of kept episodes (default: the only `*-train` table)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Model folder (default: RUN/retriever)."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Passes over the pairs (1: about a minute for 300 pairs on 2 cores)."),
    batch_size: int = typer.Option(16, "--batch-size", min=2, help="Pairs per batch; at most one per tool, the others are its negatives."),
    learning_rate: float = typer.Option(1e-4, "--learning-rate", min=0.0),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fine-tune all-MiniLM-L6-v2 on a run's kept episodes: (query → tool document) pairs, MultipleNegativesRankingLoss."""
    from replay.cli import open_buffer
    from replay.episode import Episode
    from retrieval.base import RetrieverError
    from retrieval.train import fine_tune, training_pairs

    with open_buffer(redis_, run_dir) as buffer:
        if table is None:
            tables = buffer.tables()
            kept = [name for name in tables if name.endswith("-train")]
            if len(kept) != 1:
                fail(f"no single table of kept episodes (`*-train`) in the buffer; tables: {', '.join(tables) or 'none'}: "
                     "pick one with --table")
            table = kept[0]
        buffer.table_config(table)
        episodes = [episode for _, episode in buffer.episodes(table) if isinstance(episode, Episode)]  # corrupt: skipped
    pairs = training_pairs(episodes)
    if not pairs:
        fail(f"table {table!r} holds no episode that called one of its tools ({len(episodes)} episodes): nothing to train on")
    out = out or run_dir / MODEL_FOLDER
    typer.echo(f"training on {len(pairs)} pairs from {len(episodes)} episodes of table {table!r} ...", err=True)
    try:
        summary = fine_tune(pairs, out, epochs, batch_size, learning_rate, seed)
    except RetrieverError as error:
        fail(str(error))
    typer.echo(f"trained on {summary.pairs} pairs ({summary.queries} queries, {summary.tools} tools) in {summary.steps} "
               f"steps, {summary.seconds:.0f} s; saved to {out}\n"
               f"compare: imaginarium retriever eval --model {out}")


@app.command("eval")
def eval_command(
    model: Optional[Path] = typer.Option(None, "--model", help="A fine-tuned retriever (default: RUN/retriever with --run-dir)."),
    tools_from: Optional[list[str]] = typer.Option(None, "--tools-from", metavar="SOURCE",
                                                   help="Tools to rank (repeatable; default: builtin)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder whose fine-tuned retriever to score."),
    gold_dir: Path = typer.Option(GOLD_DIR, "--gold-dir", help="Gold sets (<tool>.jsonl) whose queries are held out; "
                                  "default: the built-in suite's."),
) -> None:
    """NDCG@1/3/5 of BM25, MiniLM zero-shot and (given a model) MiniLM fine-tuned, on queries no model was trained on."""
    from retrieval.base import RetrieverError, open_retriever
    from retrieval.evaluate import KS, evaluate, gold_queries, hold_out
    from retrieval.train import trained_queries
    from toolenv.registry import RegistryError
    from toolenv.sources import DEFAULT_SOURCES, load_registry

    note = ""
    if not gold_dir.is_dir():
        fail(f"--gold-dir {gold_dir}: no such folder")
    if model is None and run_dir is not None:
        if not run_dir.is_dir():
            fail(f"no run folder '{run_dir}'")
        model = run_dir / MODEL_FOLDER
        if not model.is_dir():
            model, note = None, f"no fine-tuned retriever in {run_dir}: `imaginarium retriever train --run-dir {run_dir}` makes one"
    try:
        registry = load_registry(tools_from or DEFAULT_SOURCES)
        queries = gold_queries(registry.names(), gold_dir)
        trained = trained_queries(model) if model is not None else []
    except (RegistryError, GoldFormatError, RetrieverError) as error:
        fail(str(error))
    if not queries:
        fail(f"no gold query in {gold_dir} is for these tools: give --gold-dir with <tool>.jsonl gold sets for them")
    queries, excluded = hold_out(queries, trained)
    if not queries:
        fail(f"every gold query in {gold_dir} is one the fine-tuned retriever was trained on: nothing held out")
    methods = ["bm25", "minilm", *([str(model)] if model is not None else [])]
    try:
        rows = [(retriever.label, evaluate(retriever, queries)) for retriever in (open_retriever(registry, m) for m in methods)]
    except RetrieverError as error:
        fail(str(error))
    tools = len({name for query in queries for name in query.relevant})
    typer.echo(f"held-out queries: {len(queries)} (gold sets of {tools} tools from {gold_dir}), each ranked over all "
               f"{len(registry)} tools" + (f"; excluded {excluded} the fine-tuned retriever was trained on" if model else ""))
    if note:
        typer.echo(note)
    typer.echo("\n| retriever | " + " | ".join(f"NDCG@{k}" for k in KS) + " |")
    typer.echo("|---|" + "---:|" * len(KS))
    for label, scores in rows:
        typer.echo(f"| {label} | " + " | ".join(f"{scores[k]:.3f}" for k in KS) + " |")
