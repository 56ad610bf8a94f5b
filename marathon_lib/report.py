"""summary.json, leaderboard.md and plots/ from a results directory; merging several results directories;
rescoring from saved sample records."""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .results import SCHEMA_VERSION, ResultsDir, is_base, method_label, now_iso, rewrite_records, write_json
from .tasks import LEADERBOARD_COLUMNS, TASKS

CATEGORY_COLUMNS = {
    "Speech Content Extraction": ("SER", "SCR", "ASR"),
    "Audio Classification": ("SED", "MC", "ASC"),
    "Speaker Information": ("SD", "ER", "SAR", "SGR"),
}
MERGE_FILE = "merged.json"  # provenance of a merged results directory, shown in its leaderboard.md


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


def base_cases(cases: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The unpruned case of each (task, model): the reference for speed-up and accuracy retained."""
    return {(c["task"], c["model"]): c for c in cases if is_base(c)}


def ideal_prefill_fraction(case: dict[str, Any]) -> float | None:
    """(K·S + (N−K)·S') / (N·S): prefill work left when layers ≥ K see S' of the S prompt tokens.

    N comes from the case's `model_layers`; without it (older case files) there is no ideal."""
    layers, tokens = case.get("model_layers"), case["tokens"]
    if not layers or tokens.get("input") is None or tokens.get("audio") is None or tokens.get("audio_kept") is None:
        return None
    if is_base(case):
        return 1.0
    if case.get("press") is not None:  # KV eviction after each layer's attention saves no prefill work
        return None
    s = tokens["input"]
    kept = s - (tokens["audio"] - tokens["audio_kept"])
    k = case["prune_layer"]
    return (k * s + (layers - k) * kept) / (layers * s)


def speedup(case: dict[str, Any], base: dict[str, Any] | None) -> float | None:
    """Realized prefill speed-up of a case over its same-run base case (base prefill / case prefill)."""
    if base is None or not case["timing"].get("prefill_ms") or base["timing"].get("prefill_ms") is None:
        return None
    return base["timing"]["prefill_ms"] / case["timing"]["prefill_ms"]


def retained_rows(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy retained vs base per (model, pruner, layer) and ratio: the paper's efficiency view.

    retained = Σ pruned score / Σ base score × 100 over the tasks that have both (the ratio of the two
    averages), so one task with a near-zero base score cannot blow the figure up."""
    bases = base_cases(cases)
    sums: dict[tuple[str, str, int], dict[float, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for case in cases:
        base = bases.get((case["task"], case["model"]))
        if is_base(case) or base is None:
            continue
        score, base_score = case["metrics"]["score"], base["metrics"]["score"]
        if score is None or base_score is None:
            continue
        pair = sums[(case["model"], case["pruner"], case["prune_layer"])][case["prune_ratio"]]
        pair[0] += score
        pair[1] += base_score
    return [
        {"model": model, "pruner": pruner, "prune_layer": layer,
         "retained": {ratio: (round(100.0 * p / b, 1) if b else None) for ratio, (p, b) in sorted(by_ratio.items())}}
        for (model, pruner, layer), by_ratio in sorted(sums.items())
    ]


def efficiency_rows(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, method): timing and audio tokens averaged over its tasks, speed-up vs the same-run base."""
    bases = base_cases(cases)
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        grouped[(case["model"], method_label(case))].append(case)
    rows = []
    for (model, method), group in sorted(grouped.items()):
        ideal = [ideal_prefill_fraction(c) for c in group]
        rows.append({
            "model": model,
            "method": method,
            "prefill_ms": _avg([c["timing"]["prefill_ms"] for c in group]),
            "speedup": _geomean([speedup(c, bases.get((c["task"], c["model"]))) for c in group]),
            "ideal_speedup": _geomean([1.0 / f if f else None for f in ideal]),
            "decode_ms": _avg([c["timing"]["decode_ms"] for c in group]),
            "decode_tokens_per_s": _avg([c["timing"]["decode_tokens_per_s"] for c in group]),
            "audio_tokens": _avg([c["tokens"]["audio"] for c in group]),
            "audio_kept": _avg([c["tokens"]["audio_kept"] for c in group]),
        })
    return rows


def _avg(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 2) if present else None


def _geomean(values: Sequence[float | None]) -> float | None:
    """Mean of ratios (speed-ups): geometric, so a 2× and a 0.5× task average to 1×."""
    present = [v for v in values if v is not None and v > 0]
    return round(math.exp(sum(map(math.log, present)) / len(present)), 3) if present else None


def _cell(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _best_cells(values: Sequence[float | None]) -> list[str]:
    """Cells of one column, the best (highest) in bold; nothing is bold when every row ties."""
    present = {v for v in values if v is not None}
    best = max(present) if len(present) > 1 else None
    return [f"**{_cell(v)}**" if v is not None and v == best else _cell(v) for v in values]


def leaderboard_markdown(rows: Sequence[dict[str, Any]], cases: Sequence[dict[str, Any]],
                         merged: dict[str, Any] | None = None) -> str:
    header = ["Rank", "Model", "Method", "Avg. Score", *LEADERBOARD_COLUMNS]
    lines = [
        "# AudioMarathon leaderboard",
        "",
        ("Scores are macro-F1 over class names (×100) for the nine choice tasks and 100 − WER for ASR "
         "(the seed's convention); Avg. Score averages the task columns present (k/10 shown when incomplete). "
         "The best value of each column is bold."),
        "",
        *_capped_markdown(cases),
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    avg_cells = _best_cells([row["avg"] for row in rows])
    columns = {c: _best_cells([row["scores"][c] for row in rows]) for c in LEADERBOARD_COLUMNS}
    for i, row in enumerate(rows):
        avg = avg_cells[i] + ("" if row["n_tasks"] == len(LEADERBOARD_COLUMNS) else f" ({row['n_tasks']}/10)")
        cells = [str(i + 1), row["model"], row["method"], avg, *(columns[c][i] for c in LEADERBOARD_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## By category", "", "| Model | Method | " + " | ".join(CATEGORY_COLUMNS) + " |",
              "|---|---|" + "---|" * len(CATEGORY_COLUMNS)]
    for row in rows:
        lines.append(f"| {row['model']} | {row['method']} | "
                     + " | ".join(_cell(row["categories"][c]) for c in CATEGORY_COLUMNS) + " |")
    lines += _efficiency_markdown(cases) + _retained_markdown(cases)
    lines += ["", "## Cases", "",
              ("| Case | n | errors | score | accuracy | parse fail % | prefill ms | decode ms | tok/s | audio tok "
               "| kept |"),
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in sorted(cases, key=lambda c: c["case_id"]):
        m, t, k = case["metrics"], case["timing"], case["tokens"]
        lines.append(
            f"| {case['case_id']} | {m['n']} | {m['n_error']} | {_cell(m['score'])} | {_cell(m.get('accuracy'))} | "
            f"{_cell(m['parse_fail_rate'])} | {_cell(t['prefill_ms'])} | {_cell(t['decode_ms'])} | "
            f"{_cell(t['decode_tokens_per_s'])} | {_cell(k['audio'])} | {_cell(k['audio_kept'])} |"
        )
    if merged is not None:
        lines += _merged_markdown(merged)
    return "\n".join(lines) + "\n"


def _capped_markdown(cases: Sequence[dict[str, Any]]) -> list[str]:
    """One warning per task whose budget a run cut (--max-new-tokens): truncated answers, mostly ASR
    transcripts, score worse than the model would, so they must not be read as comparable."""
    caps: dict[str, set[int]] = defaultdict(set)
    for case in cases:
        if case.get("generation_capped"):
            caps[case["task"]].add(case["max_new_tokens"])
    lines = []
    for task, values in sorted(caps.items()):
        spec = TASKS.get(task)
        metric = "WER" if spec.answer == "text" else "score"
        lines.append(f"- **Generation capped at {'/'.join(map(str, sorted(values)))} new tokens** "
                     f"(`--max-new-tokens`; the task's own budget is {spec.max_new_tokens}): "
                     f"{task} {metric} is not comparable with uncapped runs.")
    return lines + [""] if lines else []


def _efficiency_markdown(cases: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["", "## Efficiency", "",
             ("Means over the method's tasks (speed-ups: geometric means). Speed-up = same-run base prefill ÷ "
              "this prefill, per task; ideal = N·S ÷ (K·S + (N−K)·S') from the prompt tokens S, the tokens S' "
              "left after layer K and the model's N layers (– where the case files do not record N)."),
             "",
             ("| Model | Method | prefill ms | prefill speed-up | ideal | decode ms | decode tok/s | audio tok | kept "
              "| kept % |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in efficiency_rows(cases):
        audio, kept = row["audio_tokens"], row["audio_kept"]
        share = 100.0 * kept / audio if audio and kept is not None else None
        lines.append(
            f"| {row['model']} | {row['method']} | {_cell(row['prefill_ms'])} | {_cell(row['speedup'], 2)} | "
            f"{_cell(row['ideal_speedup'], 2)} | {_cell(row['decode_ms'])} | {_cell(row['decode_tokens_per_s'])} | "
            f"{_cell(audio)} | {_cell(kept)} | {_cell(share)} |"
        )
    return lines


def _retained_markdown(cases: Sequence[dict[str, Any]]) -> list[str]:
    rows = retained_rows(cases)
    ratios = sorted({ratio for row in rows for ratio in row["retained"]})
    lines = ["", "## Accuracy retained vs base (%)", "",
             "Σ score ÷ Σ base score × 100 over the tasks that have a base case in these results."]
    if not rows:
        return lines + ["", "No pruned case has a base case of the same (task, model)."]
    lines += ["", "| Model | Method | " + " | ".join(f"r={r:g}" for r in ratios) + " |",
              "|---|---|" + "---|" * len(ratios)]
    for row in rows:
        lines.append(f"| {row['model']} | {row['pruner']} L{row['prune_layer']} | "
                     + " | ".join(_cell(row["retained"].get(r)) for r in ratios) + " |")
    return lines


def _merged_markdown(merged: dict[str, Any]) -> list[str]:
    lines = ["", "## Merged from", ""] + [f"- `{source}`" for source in merged["sources"]]
    for dup in merged["duplicates"]:
        dropped = ", ".join(f"`{d['source']}` ({d['created']})" for d in dup["dropped"])
        lines.append(f"- {dup['case_id']}: kept `{dup['kept']['source']}` ({dup['kept']['created']}), "
                     f"{dup['rule']}; dropped {dropped}")
    return lines


def write_report(results: ResultsDir, plots: bool = True) -> dict[str, Any]:
    cases = results.read_cases()
    rows = leaderboard_rows(cases)
    merge_path = results.root / MERGE_FILE
    merged = json.loads(merge_path.read_text(encoding="utf-8")) if merge_path.is_file() else None
    summary = {"schema_version": SCHEMA_VERSION, "created": now_iso(), "leaderboard": rows,
               "efficiency": efficiency_rows(cases), "retained": retained_rows(cases), "cases": cases}
    if plots:
        from .plots import write_plots  # matplotlib only when plots are asked for

        summary["plots"] = [str(p.relative_to(results.root)) for p in write_plots(cases, results.root / "plots")]
    write_json(results.root / "summary.json", summary)
    (results.root / "leaderboard.md").write_text(leaderboard_markdown(rows, cases, merged), encoding="utf-8")
    return summary


def merge_newest(sources: Sequence[str | Path], out: ResultsDir) -> dict[str, Any]:
    """Copy the cases (and their sample records) of several results directories into `out`: runs of other
    machines or days, one leaderboard (merge.merge_results instead unions the samples of one sharded run).

    A case id present in several directories keeps the copy with the newest `created`; on a tie the
    directory named later wins. What was dropped is recorded in `out/merged.json` and the leaderboard."""
    if out.cases.is_dir() and any(out.cases.glob("*.json")):
        raise ValueError(f"{out.root} already holds cases: merge into an empty directory")
    chosen: dict[str, tuple[dict[str, Any], ResultsDir]] = {}
    seen: dict[str, list[dict[str, str]]] = defaultdict(list)
    for source in map(ResultsDir, sources):
        if not source.cases.is_dir():
            raise FileNotFoundError(f"not a results directory (no cases/): {source.root}")
        for case in source.read_cases():
            seen[case["case_id"]].append({"source": str(source.root), "created": case["created"]})
            current = chosen.get(case["case_id"])
            if current is None or _created(case) >= _created(current[0]):
                chosen[case["case_id"]] = (case, source)
    out.ensure()
    for case_id, (case, source) in sorted(chosen.items()):
        out.write_case(case)
        if source.sample_path(case_id).is_file():
            shutil.copyfile(source.sample_path(case_id), out.sample_path(case_id))
    duplicates = []
    for case_id, copies in sorted(seen.items()):
        if len(copies) > 1:
            kept = {"source": str(chosen[case_id][1].root), "created": chosen[case_id][0]["created"]}
            dropped = [c for c in copies if c != kept]
            tie = any(_created(d) == _created(kept) for d in dropped)
            duplicates.append({"case_id": case_id, "kept": kept, "dropped": dropped,
                               "rule": "equally new: the directory named last" if tie else "the newest"})
    merged = {"created": now_iso(), "sources": [str(Path(s)) for s in sources],
              "cases": {case_id: str(source.root) for case_id, (_, source) in sorted(chosen.items())},
              "duplicates": duplicates}
    write_json(out.root / MERGE_FILE, merged)
    return merged


def _created(case: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(case["created"])


def rescore(results: ResultsDir) -> list[dict[str, Any]]:
    """Re-parse every saved response with the current parsers and recompute all metrics (no model)."""
    from .runner import CaseSpec, build_case, sample_from_record, score_response  # torch: only rescore needs it

    updated = []
    for case in results.read_cases():
        spec = TASKS.get(case["task"])
        records = []
        for record in results.read_samples(case["case_id"]):
            if record["status"] != "error":
                record = record | score_response(spec, sample_from_record(record), record["response"])
            records.append(record)
        rewrite_records(results.sample_path(case["case_id"]), records)
        # `case |` keeps what only a live run knows (model_layers, n_resumed); the rest is recomputed
        fresh = case | build_case(CaseSpec.from_case(case), spec, records, case["timing"]["warmup_ms"])
        updated.append(results.write_case(fresh) and fresh)
    write_report(results)
    return updated
