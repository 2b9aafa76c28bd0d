"""Reports: one JSON document (summary, breakdowns, every record) and a markdown table to read.

The JSON keeps the per-query records, so two runs can be compared later (win rate) and a failure
can be read back call by call; the markdown is what a person pastes into a results table.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from evaluation.bfcl import EvalSetRecord, summarize_eval_set
from evaluation.judges import WinRate
from evaluation.metrics import METRICS, breakdown, summarize
from evaluation.records import Flags, QueryRecord, Turn
from toolenv.gold import Expected, GoldAnswer, GoldCall, GoldEntry

HEADERS = {"n": "n", "well_formed": "well-formed %", "api_match": "API match %", "argument_match": "argument match %",
           "exec_match": "exec match %", "correct": "correct %", "answered": "answered %", "pass_rate": "pass rate %"}


def builtin_report(records: Sequence[QueryRecord], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "summary": asdict(summarize(records)),
        "by_round": {key: asdict(value) for key, value in  # tools of your own may belong to no round
                     breakdown([record for record in records if record.round is not None], "round").items()},
        "by_category": {key: asdict(value) for key, value in breakdown(records, "category").items()},
        "by_tool": {key: asdict(value) for key, value in breakdown(records, "tool").items()},
        "records": [record.to_json() for record in records],
    }


def eval_set_report(records: Sequence[EvalSetRecord], meta: dict[str, Any]) -> dict[str, Any]:
    return {"meta": meta, "summary": summarize_eval_set(records), "records": [asdict(record) for record in records]}


def builtin_markdown(report: dict[str, Any]) -> str:
    """One table: all queries, then each round, category and tool; each percentage with its 95% bootstrap
    interval in brackets (a report saved before there were intervals shows none)."""
    rows = [("**all**", report["summary"])]
    for key, label in (("by_round", "round {}"), ("by_category", "{}"), ("by_tool", "`{}`")):
        rows += [(label.format(name), summary) for name, summary in report[key].items()]
    return _title(report) + _table(["", HEADERS["n"], *(HEADERS[c] for c in METRICS)],
                                   [[name, str(summary["n"]), *(score_cell(summary, c) for c in METRICS)]
                                    for name, summary in rows])


def score_cell(summary: dict[str, Any], metric: str) -> str:
    """A percentage and, when the summary has it, its 95% bootstrap interval: "50.0 [20.0–80.0]"."""
    low_high = summary.get("ci95", {}).get(metric)
    return _cell(summary[metric]) + (f" [{low_high[0]:.1f}–{low_high[1]:.1f}]" if low_high else "")


def eval_set_markdown(report: dict[str, Any]) -> str:
    columns = list(report["summary"])
    return _title(report) + _table([HEADERS[c] for c in columns], [[_cell(report["summary"][c]) for c in columns]])


def win_rate_markdown(result: WinRate, name_a: str = "A", name_b: str = "B") -> str:
    return _table(["", "wins", "losses", "ties", "n", "win rate %"],
                  [[f"{name_a} vs {name_b}", str(result.wins), str(result.losses), str(result.ties), str(result.n),
                    _cell(result.rate)]])


def write_report(report: dict[str, Any], markdown: str, out_dir: str | Path, name: str) -> list[Path]:
    """`<name>.json` and `<name>.md` in out_dir (created if missing); returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    markdown_path.write_text(markdown)
    return [json_path, markdown_path]


def load_records(path: str | Path) -> list[QueryRecord]:
    """The scored records of a saved builtin report, e.g. to compute the win rate of two saved runs.

    ValueError naming the file when it is not such a report.
    """
    try:
        return [_record(item) for item in json.loads(Path(path).read_text())["records"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a builtin evaluation report ({type(error).__name__}: {error})") from None


def _record(item: dict[str, Any]) -> QueryRecord:
    gold = item["gold"]
    calls = tuple(GoldCall(call["name"], {key: Expected(**rule) for key, rule in call["arguments"].items()})
                  for call in gold["calls"])
    answer = None if gold["answer"] is None else GoldAnswer(**gold["answer"])
    return QueryRecord(**{
        **item,
        "gold": GoldEntry(gold["id"], gold["tool"], gold["query"], calls, answer, gold["source"], gold.get("draft", False)),
        "turns": tuple(Turn(**turn) for turn in item["turns"]),
        "flags": None if item["flags"] is None else Flags(**item["flags"]),
    })


def _title(report: dict[str, Any]) -> str:
    meta = ", ".join(f"{key} {', '.join(map(str, value)) if isinstance(value, list) else value}"
                     for key, value in report["meta"].items() if value not in (None, "", []))
    return f"Evaluation: {meta}\n\n" if meta else ""


def _table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---", *("---:" for _ in header[1:])]
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n"


def _cell(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)
