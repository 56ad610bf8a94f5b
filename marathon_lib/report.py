"""summary.json and leaderboard.md from a results directory; rescoring from saved sample records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .results import SCHEMA_VERSION, ResultsDir, now_iso, write_json
from .runner import CaseSpec, build_case, sample_from_record, score_response
from .tasks import LEADERBOARD_COLUMNS, TASKS

CATEGORY_COLUMNS = {
    "Speech Content Extraction": ("SER", "SCR", "ASR"),
    "Audio Classification": ("SED", "MC", "ASC"),
    "Speaker Information": ("SD", "ER", "SAR", "SGR"),
}


def method_label(case: dict[str, Any]) -> str:
    return "base" if case["pruner"] == "base" else f"{case['pruner']} r={case['prune_ratio']:g} L{case['prune_layer']}"


def leaderboard_rows(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, method): the leaderboard score of each task column and their average."""
    grouped: dict[tuple[str, str], dict[str, float | None]] = defaultdict(dict)
    for case in cases:
        grouped[(case["model"], method_label(case))][case["task_code"]] = case["metrics"]["score"]
    rows = []
    for (model, method), scores in grouped.items():
        present = [v for v in scores.values() if v is not None]
        rows.append({
            "model": model,
            "method": method,
            "scores": {code: scores.get(code) for code in LEADERBOARD_COLUMNS},
            "avg": round(sum(present) / len(present), 2) if present else None,
            "n_tasks": len(present),
            "categories": {
                name: _avg([scores.get(c) for c in cols]) for name, cols in CATEGORY_COLUMNS.items()
            },
        })
    return sorted(rows, key=lambda r: (-(r["avg"] if r["avg"] is not None else -1), r["model"], r["method"]))


def _avg(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 2) if present else None


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def leaderboard_markdown(rows: Sequence[dict[str, Any]], cases: Sequence[dict[str, Any]]) -> str:
    header = ["Rank", "Model", "Method", "Avg. Score", *LEADERBOARD_COLUMNS]
    lines = [
        "# AudioMarathon leaderboard",
        "",
        "Scores are macro-F1 over class names (×100) for the nine choice tasks and 100 − WER for ASR "
        "(the seed's convention); Avg. Score averages the task columns present (k/10 shown when incomplete).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for rank, row in enumerate(rows, 1):
        avg = _cell(row["avg"]) + ("" if row["n_tasks"] == len(LEADERBOARD_COLUMNS) else f" ({row['n_tasks']}/10)")
        cells = [str(rank), row["model"], row["method"], avg, *(_cell(row["scores"][c]) for c in LEADERBOARD_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## By category", "", "| Model | Method | " + " | ".join(CATEGORY_COLUMNS) + " |",
              "|---|---|" + "---|" * len(CATEGORY_COLUMNS)]
    for row in rows:
        lines.append(f"| {row['model']} | {row['method']} | "
                     + " | ".join(_cell(row["categories"][c]) for c in CATEGORY_COLUMNS) + " |")
    lines += ["", "## Cases", "",
              "| Case | n | errors | score | accuracy | parse fail % | prefill ms | decode ms | tok/s | audio tok | kept |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in sorted(cases, key=lambda c: c["case_id"]):
        m, t, k = case["metrics"], case["timing"], case["tokens"]
        lines.append(
            f"| {case['case_id']} | {m['n']} | {m['n_error']} | {_cell(m['score'])} | {_cell(m.get('accuracy'))} | "
            f"{_cell(m['parse_fail_rate'])} | {_cell(t['prefill_ms'])} | {_cell(t['decode_ms'])} | "
            f"{_cell(t['decode_tokens_per_s'])} | {_cell(k['audio'])} | {_cell(k['audio_kept'])} |"
        )
    return "\n".join(lines) + "\n"


def write_report(results: ResultsDir) -> dict[str, Any]:
    cases = results.read_cases()
    rows = leaderboard_rows(cases)
    summary = {"schema_version": SCHEMA_VERSION, "created": now_iso(), "leaderboard": rows, "cases": cases}
    write_json(results.root / "summary.json", summary)
    (results.root / "leaderboard.md").write_text(leaderboard_markdown(rows, cases), encoding="utf-8")
    return summary


def rescore(results: ResultsDir) -> list[dict[str, Any]]:
    """Re-parse every saved response with the current parsers and recompute all metrics (no model)."""
    updated = []
    for case in results.read_cases():
        spec = TASKS.get(case["task"])
        records = []
        for record in results.read_samples(case["case_id"]):
            if record["status"] != "error":
                record = record | score_response(spec, sample_from_record(record), record["response"])
            records.append(record)
        _rewrite_samples(results, case["case_id"], records)
        fresh = build_case(CaseSpec(case["task"], case["model"], case["pruner"], case["prune_ratio"],
                                    case["prune_layer"]), spec, records, case["timing"]["warmup_ms"])
        updated.append(results.write_case(fresh) and fresh)
    write_report(results)
    return updated


def _rewrite_samples(results: ResultsDir, case_id: str, records: Sequence[dict[str, Any]]) -> None:
    import json
    import os

    path = results.sample_path(case_id)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)
