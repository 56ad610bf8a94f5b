"""summary.json, leaderboard.md and plots/ from a results directory; merging several results directories;
rescoring from saved sample records; paired tests of every method and control against its base case."""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import ScoreArrays, headline_kind, score_arrays
from .results import SCHEMA_VERSION, ResultsDir, is_base, is_control, method_label, now_iso, rewrite_records, write_json
from .stats import (
    ALPHA,
    BOOTSTRAP_SEED,
    bootstrap_p_value,
    combined_half_width,
    mcnemar_exact,
    percentile_interval,
    resample_indices,
)
from .tasks import LEADERBOARD_COLUMNS, TASKS

CATEGORY_COLUMNS = {
    "Speech Content Extraction": ("SER", "SCR", "ASR"),
    "Audio Classification": ("SED", "MC", "ASC"),
    "Speaker Information": ("SD", "ER", "SAR", "SGR"),
}
MERGE_FILE = "merged.json"  # provenance of a merged results directory, shown in its leaderboard.md


def half_width(case: dict[str, Any], key: str = "score") -> float | None:
    """± of a case's metric: half its 95 % interval (None for case files written before intervals existed)."""
    interval = case["metrics"].get(f"{key}_ci")
    return None if not interval else round((interval[1] - interval[0]) / 2, 4)


def leaderboard_rows(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, method): the leaderboard score of each task column, its ± and their average.
    Control cases (no_audio) are not methods: they have their own section."""
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for case in cases:
        if not is_control(case):
            grouped[(case["model"], method_label(case))][case["task_code"]] = case
    rows = []
    for (model, method), by_code in grouped.items():
        scores = {code: case["metrics"]["score"] for code, case in by_code.items()}
        present = [v for v in scores.values() if v is not None]
        widths = {code: half_width(case) for code, case in by_code.items()}
        present_widths = [widths[c] for c, v in scores.items() if v is not None]
        avg_width = None if None in present_widths else combined_half_width(present_widths)
        rows.append({
            "model": model,
            "method": method,
            "scores": {code: scores.get(code) for code in LEADERBOARD_COLUMNS},
            "ci_half_width": {code: widths.get(code) for code in LEADERBOARD_COLUMNS},
            "avg": round(sum(present) / len(present), 2) if present else None,
            "avg_ci_half_width": None if avg_width is None else round(avg_width, 2),
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


def method_axis(case: dict[str, Any]) -> tuple[str, str, float] | None:
    """(method, variant, ratio) of a pruned or pressed case for the retained table; None for base and controls."""
    if is_base(case) or is_control(case):
        return None
    if case.get("press") is not None:
        variant = method_label(case).removeprefix(f"press:{case['press']} c={case['compression_ratio']:g}").strip()
        return f"press:{case['press']}", variant, case["compression_ratio"]
    return case["pruner"], f"L{case['prune_layer']}", case["prune_ratio"]


def retained_rows(cases: Sequence[dict[str, Any]], arrays: CaseArrays | None = None) -> list[dict[str, Any]]:
    """Accuracy retained vs base per (model, method, layer or press variant) and ratio: the paper's efficiency view.

    retained = Σ pruned score / Σ base score × 100 over the tasks that have both (the ratio of the two
    averages), so one task with a near-zero base score cannot blow the figure up. With the sample records
    (`arrays`), each cell also gets a paired bootstrap test of Σ score − Σ base score over the same samples."""
    bases = base_cases(cases)
    cells: dict[tuple[str, str, str], dict[float, list[tuple[dict[str, Any], dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(list))
    for case in cases:
        axis, base = method_axis(case), bases.get((case["task"], case["model"]))
        if axis is None or base is None or case["metrics"]["score"] is None or base["metrics"]["score"] is None:
            continue
        method, variant, ratio = axis
        cells[(case["model"], method, variant)][ratio].append((case, base))
    rows = []
    for (model, method, variant), by_ratio in sorted(cells.items()):
        row: dict[str, Any] = {"model": model, "method": method, "variant": variant, "retained": {},
                               "p_value": {}, "significant_drop": {}}
        for ratio, pairs in sorted(by_ratio.items()):
            pruned, base = (sum(c["metrics"]["score"] for c, _ in pairs), sum(b["metrics"]["score"] for _, b in pairs))
            row["retained"][ratio] = round(100.0 * pruned / base, 1) if base else None
            test = aggregate_drop_test([arrays.paired(c, b) for c, b in pairs]) if arrays is not None else None
            row["p_value"][ratio] = None if test is None else round(test["p_value"], 4)
            row["significant_drop"][ratio] = None if test is None else test["significant_drop"]
        rows.append(row)
    return rows


class CaseArrays:
    """Per-sample score arrays of the cases of one results directory, read from their sample records once."""

    def __init__(self, results: ResultsDir) -> None:
        self.results = results
        self.cache: dict[str, ScoreArrays | None] = {}

    def get(self, case: dict[str, Any]) -> ScoreArrays | None:
        if case["case_id"] not in self.cache:
            records = self.results.read_samples(case["case_id"])
            usable = records and all("status" in r and "sample_id" in r for r in records)
            self.cache[case["case_id"]] = score_arrays(TASKS.get(case["task"]), records) if usable else None
        return self.cache[case["case_id"]]

    def paired(self, case: dict[str, Any], base: dict[str, Any]) -> tuple[ScoreArrays, ScoreArrays] | None:
        """Both cases restricted to the samples scored in each, in one order; None without records."""
        mine, theirs = self.get(case), self.get(base)
        if mine is None or theirs is None:
            return None
        shared = sorted(set(mine.sample_ids) & set(theirs.sample_ids))
        return (mine.subset(shared), theirs.subset(shared)) if shared else None


def paired_test(case: ScoreArrays, base: ScoreArrays) -> dict[str, Any]:
    """The case against its base on the same samples. Choice tasks: exact McNemar on per-sample correctness;
    ASR: a seeded paired bootstrap of the headline. A drop is significant when the test rejects at 5 % and the
    difference goes against the case."""
    delta = float(case.score() - base.score())
    result: dict[str, Any] = {"n_paired": case.n, "score": round(float(case.score()), 4),
                              "base_score": round(float(base.score()), 4), "delta": round(delta, 4)}
    if case.kind == "word_accuracy":
        idx = resample_indices(case.n, np.random.default_rng(BOOTSTRAP_SEED))
        deltas = case.score(idx) - base.score(idx)
        p = bootstrap_p_value(deltas)
        low, high = percentile_interval(deltas)
        return result | {"test": "paired_bootstrap", "delta_ci": [round(low, 4), round(high, 4)], "p_value": round(p, 4),
                         "significant_drop": bool(high < 0.0)}
    base_only = int((base.correct & ~case.correct).sum())
    case_only = int((case.correct & ~base.correct).sum())
    p = mcnemar_exact(base_only, case_only)
    return result | {"test": "mcnemar_exact", "base_only_correct": base_only, "case_only_correct": case_only,
                     "p_value": round(p, 4), "significant_drop": bool(p < ALPHA and base_only > case_only)}


def aggregate_drop_test(pairs: Sequence[tuple[ScoreArrays, ScoreArrays] | None]) -> dict[str, Any] | None:
    """Paired bootstrap of Σ case score − Σ base score over several tasks, each resampled over its own paired
    samples (one retained-table cell); None when a task of the cell has no sample records."""
    if not pairs or any(p is None for p in pairs):
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    deltas = np.zeros(0)
    for case, base in pairs:  # type: ignore[misc]
        idx = resample_indices(case.n, rng)
        step = case.score(idx) - base.score(idx)
        deltas = step if not deltas.size else deltas + step
    return {"p_value": bootstrap_p_value(deltas), "significant_drop": bool(percentile_interval(deltas)[1] < 0.0)}


def paired_comparisons(cases: Sequence[dict[str, Any]], arrays: CaseArrays) -> dict[str, dict[str, Any] | None]:
    """`vs_base` of every case: the paired test against the base case of its (task, model), or None."""
    bases = base_cases(cases)
    out: dict[str, dict[str, Any] | None] = {}
    for case in cases:
        base = bases.get((case["task"], case["model"]))
        pair = None if is_base(case) or base is None else arrays.paired(case, base)
        out[case["case_id"]] = None if pair is None else {"base": base["case_id"]} | paired_test(*pair)
    return out


def control_rows(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per control case: its score beside the base score and the chance level (how much of the task is
    answerable without what the control removed), with the paired test against base."""
    bases = base_cases(cases)
    rows = []
    for case in sorted((c for c in cases if is_control(c)), key=lambda c: (c["model"], c["control"], c["task"])):
        base = bases.get((case["task"], case["model"]))
        rows.append({
            "model": case["model"], "control": case["control"], "task": case["task"], "task_code": case["task_code"],
            "score": case["metrics"]["score"], "ci_half_width": half_width(case),
            "base_score": base["metrics"]["score"] if base else None,
            "base_ci_half_width": half_width(base) if base else None,
            "chance": case["metrics"].get("chance"), "vs_base": case.get("vs_base"),
        })
    return rows


def efficiency_rows(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, method): timing and audio tokens averaged over its tasks, speed-up vs the same-run base."""
    bases = base_cases(cases)
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        if not is_control(case):  # a control's timing measures another prompt, not a method's saving
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


def _pm(value: float | None, width: float | None) -> str:
    """"72.4 ± 3.1" (the ± is half the 95 % interval); the value alone where no interval is known."""
    return _cell(value) if value is None or width is None else f"{_cell(value)} ± {width:.1f}"


def _best_cells(values: Sequence[float | None], widths: Sequence[float | None] | None = None) -> list[str]:
    """Cells of one column, the best (highest) value in bold; nothing is bold when every row ties."""
    present = {v for v in values if v is not None}
    best = max(present) if len(present) > 1 else None
    widths = widths or [None] * len(values)
    cells = []
    for value, width in zip(values, widths):
        text = f"**{_cell(value)}**" if value is not None and value == best else _cell(value)
        cells.append(text if value is None or width is None else f"{text} ± {width:.1f}")
    return cells


def headline_note() -> str:
    """Which measure each task column shows, and why (docs/metrics.md has the whole argument)."""
    kinds: dict[str, list[str]] = defaultdict(list)
    for name in TASKS.names():
        spec = TASKS.get(name)
        kinds[headline_kind(spec)].append(spec.code)
    return (f"Each column is the task's headline (docs/metrics.md): **balanced accuracy** (mean over the task's "
            f"classes of the share answered right) for {', '.join(kinds['balanced_accuracy'])}, whose options are a "
            f"fixed class set; **accuracy** for {', '.join(kinds['accuracy'])}, whose options are texts of each "
            f"question; **100 − WER** with each utterance's errors limited to its reference length for "
            f"{', '.join(kinds['word_accuracy'])}. An invalid answer counts as wrong and never scores above a wrong "
            "one. ± is half the 95 % interval (Wilson for accuracy, a seeded bootstrap over samples otherwise; for "
            "Avg. Score √Σ±² / k). Avg. Score averages the task columns present (k/10 shown when incomplete). "
            "The best value of each column is bold.")


def leaderboard_markdown(summary: dict[str, Any], merged: dict[str, Any] | None = None) -> str:
    """leaderboard.md from the summary (write_report): leaderboard, categories, efficiency, retained with paired
    marks, controls, cases, the paper's columns."""
    rows, cases = summary["leaderboard"], summary["cases"]
    header = ["Rank", "Model", "Method", "Avg. Score", *LEADERBOARD_COLUMNS]
    lines = [
        "# AudioMarathon leaderboard",
        "",
        headline_note(),
        "",
        *_capped_markdown(cases),
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    avg_cells = _best_cells([row["avg"] for row in rows], [row.get("avg_ci_half_width") for row in rows])
    columns = {c: _best_cells([row["scores"][c] for row in rows],
                              [row.get("ci_half_width", {}).get(c) for row in rows]) for c in LEADERBOARD_COLUMNS}
    for i, row in enumerate(rows):
        avg = avg_cells[i] + ("" if row["n_tasks"] == len(LEADERBOARD_COLUMNS) else f" ({row['n_tasks']}/10)")
        cells = [str(i + 1), row["model"], row["method"], avg, *(columns[c][i] for c in LEADERBOARD_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## By category", "", "| Model | Method | " + " | ".join(CATEGORY_COLUMNS) + " |",
              "|---|---|" + "---|" * len(CATEGORY_COLUMNS)]
    for row in rows:
        lines.append(f"| {row['model']} | {row['method']} | "
                     + " | ".join(_cell(row["categories"][c]) for c in CATEGORY_COLUMNS) + " |")
    lines += _efficiency_markdown(summary["efficiency"]) + _retained_markdown(summary["retained"])
    lines += _controls_markdown(summary["controls"]) + _cases_markdown(cases) + _paper_markdown(cases)
    if merged is not None:
        lines += _merged_markdown(merged)
    return "\n".join(lines) + "\n"


def _vs_base_cell(vs_base: dict[str, Any] | None) -> str:
    """"−3.1 (p 0.012) ↓": headline change against base on the same samples, the paired test's p, a mark when the
    drop is significant at 5 %."""
    if not vs_base:
        return "–"
    mark = " ↓" if vs_base["significant_drop"] else ""
    p = "p < 0.001" if vs_base["p_value"] < 0.001 else f"p {vs_base['p_value']:.3f}"
    return f"{vs_base['delta']:+.1f} ({p}){mark}"


def _cases_markdown(cases: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["", "## Cases", "",
             ("score and accuracy ± half the 95 % interval; vs base = score − base score on the samples both scored, "
              "p of the paired test (exact McNemar on correctness; ASR: paired bootstrap), ↓ a drop significant at "
              "5 %."), "",
             ("| Case | n | errors | score | accuracy | vs base | parse fail % | prefill ms | decode ms | tok/s "
              "| audio tok | kept |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in sorted(cases, key=lambda c: c["case_id"]):
        m, t, k = case["metrics"], case["timing"], case["tokens"]
        lines.append(
            f"| {case['case_id']} | {m['n']} | {m['n_error']} | {_pm(m['score'], half_width(case))} | "
            f"{_pm(m.get('accuracy'), half_width(case, 'accuracy'))} | {_vs_base_cell(case.get('vs_base'))} | "
            f"{_cell(m['parse_fail_rate'])} | {_cell(t['prefill_ms'])} | {_cell(t['decode_ms'])} | "
            f"{_cell(t['decode_tokens_per_s'])} | {_cell(k['audio'])} | {_cell(k['audio_kept'])} |"
        )
    return lines


def _paper_markdown(cases: Sequence[dict[str, Any]]) -> list[str]:
    """The original scripts' figures, for comparison with the paper only."""
    lines = ["", "## For comparison with the paper (not the headline)", "",
             ("The original evaluation scripts' formulas (docs/metrics.md): seed F1 / seed WER on our parsed answers; "
              "seed e2e with the scripts' own answer extractors on the raw responses, i.e. what the original "
              "pipeline would have printed. They reward unparseable answers and are never the leaderboard's score."),
             "", "| Case | seed F1 / seed WER | seed e2e |", "|---|---|---|"]
    for case in sorted(cases, key=lambda c: c["case_id"]):
        m = case["metrics"]
        seed = m.get("seed_wer", m.get("seed_f1"))
        lines.append(f"| {case['case_id']} | {_cell(seed)} | {_cell(m.get('seed_e2e'))} |")
    return lines


def _controls_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["", "## Answerable without audio (controls)", "",
             ("The control cases (`--controls no_audio`: the same prompt with the audio removed) beside the base case "
              "and the chance level of a uniform guess among each sample's options: a task a model scores well above "
              "chance without listening does not measure listening. vs base as in the case table."), "",
             "| Model | Control | Task | control score | base score | chance | vs base |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['control']} | {row['task']} ({row['task_code']}) | "
                     f"{_pm(row['score'], row['ci_half_width'])} | {_pm(row['base_score'], row['base_ci_half_width'])} | "
                     f"{_cell(row['chance'])} | {_vs_base_cell(row['vs_base'])} |")
    return lines


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


def _efficiency_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["", "## Efficiency", "",
             ("Means over the method's tasks (speed-ups: geometric means). Speed-up = same-run base prefill ÷ "
              "this prefill, per task; ideal = N·S ÷ (K·S + (N−K)·S') from the prompt tokens S, the tokens S' "
              "left after layer K and the model's N layers (– where the case files do not record N)."),
             "",
             ("| Model | Method | prefill ms | prefill speed-up | ideal | decode ms | decode tok/s | audio tok | kept "
              "| kept % |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        audio, kept = row["audio_tokens"], row["audio_kept"]
        share = 100.0 * kept / audio if audio and kept is not None else None
        lines.append(
            f"| {row['model']} | {row['method']} | {_cell(row['prefill_ms'])} | {_cell(row['speedup'], 2)} | "
            f"{_cell(row['ideal_speedup'], 2)} | {_cell(row['decode_ms'])} | {_cell(row['decode_tokens_per_s'])} | "
            f"{_cell(audio)} | {_cell(kept)} | {_cell(share)} |"
        )
    return lines


def _retained_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    ratios = sorted({ratio for row in rows for ratio in row["retained"]})
    lines = ["", "## Accuracy retained vs base (%)", "",
             ("Σ score ÷ Σ base score × 100 over the tasks that have a base case in these results. ↓ marks a drop "
              "significant at 5 %: a seeded paired bootstrap of Σ score − Σ base score, each task resampled over the "
              "samples both cases scored (no mark without sample records).")]
    if not rows:
        return lines + ["", "No pruned case has a base case of the same (task, model)."]
    lines += ["", "| Model | Method | " + " | ".join(f"r={r:g}" for r in ratios) + " |",
              "|---|---|" + "---|" * len(ratios)]
    for row in rows:
        cells = [_cell(row["retained"].get(r)) + (" ↓" if row["significant_drop"].get(r) else "") for r in ratios]
        lines.append(f"| {row['model']} | {row['method']} {row['variant']} | " + " | ".join(cells) + " |")
    return lines


def _merged_markdown(merged: dict[str, Any]) -> list[str]:
    lines = ["", "## Merged from", ""] + [f"- `{source}`" for source in merged["sources"]]
    for dup in merged["duplicates"]:
        dropped = ", ".join(f"`{d['source']}` ({d['created']})" for d in dup["dropped"])
        lines.append(f"- {dup['case_id']}: kept `{dup['kept']['source']}` ({dup['kept']['created']}), "
                     f"{dup['rule']}; dropped {dropped}")
    return lines


def write_report(results: ResultsDir, plots: bool = True) -> dict[str, Any]:
    """summary.json and leaderboard.md (and plots/); every case file gets `vs_base`, its paired test against the
    base case of its (task, model) on the same samples (recomputed from the sample records each time)."""
    cases = results.read_cases()
    arrays = CaseArrays(results)
    comparisons = paired_comparisons(cases, arrays)
    for case in cases:
        if "vs_base" not in case or case["vs_base"] != comparisons[case["case_id"]]:
            case["vs_base"] = comparisons[case["case_id"]]
            results.write_case(case)
    merge_path = results.root / MERGE_FILE
    merged = json.loads(merge_path.read_text(encoding="utf-8")) if merge_path.is_file() else None
    summary = {"schema_version": SCHEMA_VERSION, "created": now_iso(), "leaderboard": leaderboard_rows(cases),
               "efficiency": efficiency_rows(cases), "retained": retained_rows(cases, arrays),
               "controls": control_rows(cases), "cases": cases}
    if plots:
        from .plots import write_plots  # matplotlib only when plots are asked for

        summary["plots"] = [str(p.relative_to(results.root)) for p in write_plots(cases, results.root / "plots")]
    write_json(results.root / "summary.json", summary)
    (results.root / "leaderboard.md").write_text(leaderboard_markdown(summary, merged), encoding="utf-8")
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
    """Re-parse every saved response with the current parsers and recompute all metrics (no model). A case keeps
    its `created` (when it ran, what merges call newest) and gets `rescored` (when its metrics were recomputed)."""
    from .runner import CaseSpec, build_case, rescore_record  # torch: only rescore needs it

    updated = []
    for case in results.read_cases():
        spec = TASKS.get(case["task"])
        records = [rescore_record(spec, record) for record in results.read_samples(case["case_id"])]
        rewrite_records(results.sample_path(case["case_id"]), records)
        # `case |` keeps what only a live run knows (model_layers, n_resumed); the rest is recomputed
        fresh = case | build_case(CaseSpec.from_case(case), spec, records, case["timing"]["warmup_ms"]) | {
            "created": case["created"], "rescored": now_iso()}
        updated.append(results.write_case(fresh) and fresh)
    write_report(results)
    return updated
