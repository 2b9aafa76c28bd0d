"""Fine-tuning MiniLM as ToolLLM trains its API retriever: (query → tool document) pairs, in-batch negatives."""
from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from replay.episode import Episode
from retrieval.base import TRAINING_FILE, RetrieverError, tool_document


@dataclass(frozen=True)
class Pair:
    query: str
    tool: str
    document: str


def training_pairs(episodes: Iterable[Episode]) -> list[Pair]:
    """One pair per distinct (query, tool) for each explored tool an episode called, with the document of the spec
    the episode was shown (a helper such as DFSDT's Finish is shown too, but is not a tool to retrieve)."""
    pairs: dict[tuple[str, str], Pair] = {}
    for episode in episodes:
        shown = {spec.get("function", spec)["name"]: spec for spec in episode.tool_specs}
        for message in episode.messages:
            for call in message.tool_calls:
                name = call.function.name
                if name in episode.tools and name in shown:
                    pairs.setdefault((episode.query, name), Pair(episode.query, name, tool_document(shown[name])))
    return list(pairs.values())


def distinct_batches(pairs: Sequence[Pair], size: int, rng: random.Random) -> Iterator[list[Pair]]:
    """Shuffled batches in which no query and no document repeats: the loss takes every other document of a batch
    as a negative, so a second pair of the same tool would teach the model to push its own tool away."""
    pending = list(pairs)
    rng.shuffle(pending)
    while pending:
        batch, rest, seen = [], [], set()
        for pair in pending:
            if len(batch) < size and pair.query not in seen and pair.document not in seen:
                batch.append(pair)
                seen |= {pair.query, pair.document}
            else:
                rest.append(pair)
        yield batch
        pending = rest


@dataclass(frozen=True)
class TrainingSummary:
    pairs: int
    queries: int
    tools: int
    steps: int
    seconds: float


def fine_tune(pairs: Sequence[Pair], out: Path, epochs: int = 1, batch_size: int = 16, learning_rate: float = 1e-4,
              seed: int = 0) -> TrainingSummary:
    """Fine-tune all-MiniLM-L6-v2 with MultipleNegativesRankingLoss and save it to `out`, with the queries it saw
    (TRAINING_FILE) so that evaluation can hold them out. A folder at `out` is replaced only if this wrote it."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from actors.embeddings import Embedder

    if out.exists() and not (out / TRAINING_FILE).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise RetrieverError(f"{out} exists and holds no retriever saved by this command: give another --out")
    if not pairs:
        raise RetrieverError("no (query, tool) pairs to train on")
    start, steps = time.monotonic(), 0
    with torch.random.fork_rng():  # seeded dropout, without reseeding the caller's generator
        torch.manual_seed(seed)
        model = Embedder().model  # a fresh copy: the shared default embedder stays zero-shot
        loss = MultipleNegativesRankingLoss(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
        model.train()
        rng = random.Random(seed)
        for _ in range(epochs):
            for batch in distinct_batches(pairs, batch_size, rng):
                if len(batch) < 2:
                    continue  # no negative in the batch: nothing to learn
                features = [model.preprocess([pair.query for pair in batch]), model.preprocess([pair.document for pair in batch])]
                loss(features, torch.empty(0)).backward()
                optimizer.step()
                optimizer.zero_grad()
                steps += 1
        model.eval()
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(staging))
    queries = sorted({pair.query for pair in pairs})
    summary = TrainingSummary(len(pairs), len(queries), len({pair.tool for pair in pairs}), steps, time.monotonic() - start)
    (staging / TRAINING_FILE).write_text(json.dumps({
        "queries": queries, "tools": sorted({pair.tool for pair in pairs}), "pairs": len(pairs), "steps": steps,
        "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
    }, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return summary


def trained_queries(model: Path) -> list[str]:
    """The queries a saved retriever was trained on."""
    if not (model / TRAINING_FILE).is_file():
        raise RetrieverError(f"{model}: not a retriever saved by `imaginarium retriever train` (no {TRAINING_FILE} in it)")
    try:
        return json.loads((model / TRAINING_FILE).read_text())["queries"]
    except (OSError, ValueError, KeyError) as error:
        raise RetrieverError(f"{model}: cannot read the queries it was trained on from {TRAINING_FILE} ({error})") from None
