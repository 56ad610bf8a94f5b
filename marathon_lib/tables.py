"""The numbers behind a report, as plain rows computed from case dicts (and their sample records for the paired
tests): the leaderboard, efficiency, accuracy retained, answerable-without-audio rows. No markdown, no plots:
report.py writes these rows as leaderboard.md and summary.json, plots.py draws them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import ScoreArrays, score_arrays
from .results import ResultsDir
from .schema import is_base, is_control, method_label
from .stats import (
    ALPHA,
    BOOTSTRAP_SEED,
    bootstrap_p_value,
    combined_half_width,
    mcnemar_exact,
    percentile_interval,
    resample_indices,
)
from .tasks import TASKS, category_columns, leaderboard_columns


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
    rows, columns, categories = [], leaderboard_columns(), category_columns()
    for (model, method), by_code in grouped.items():
        scores = {code: case["metrics"]["score"] for code, case in by_code.items()}
        present = [v for v in scores.values() if v is not None]
        widths = {code: half_width(case) for code, case in by_code.items()}
        present_widths = [widths[c] for c, v in scores.items() if v is not None]
        avg_width = None if None in present_widths else combined_half_width(present_widths)
        rows.append({
            "model": model,
            "method": method,
            "scores": {code: scores.get(code) for code in columns},
            "ci_half_width": {code: widths.get(code) for code in columns},
            "avg": round(sum(present) / len(present), 2) if present else None,
            "avg_ci_half_width": None if avg_width is None else round(avg_width, 2),
            "n_tasks": len(present),
            "categories": {
                name: _avg([scores.get(c) for c in cols]) for name, cols in categories.items()
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
            # pruning acts inside the language model: only the LLM share of the prefill can shrink
            "encoder_ms": _avg([c["timing"].get("encoder_ms") for c in group]),
            "llm_prefill_ms": _avg([c["timing"].get("llm_prefill_ms") for c in group]),
            "encoder_share": _share([c["timing"].get("encoder_ms") for c in group],
                                    [c["timing"]["prefill_ms"] for c in group]),
            "speedup": _geomean([speedup(c, bases.get((c["task"], c["model"]))) for c in group]),
            "ideal_speedup": _geomean([1.0 / f if f else None for f in ideal]),
            "decode_ms": _avg([c["timing"]["decode_ms"] for c in group]),
            "decode_tokens_per_s": _avg([c["timing"]["decode_tokens_per_s"] for c in group]),
            "audio_tokens": _avg([c["tokens"]["audio"] for c in group]),
            "audio_kept": _avg([c["tokens"]["audio_kept"] for c in group]),
        })
    return rows


def _share(parts: Sequence[float | None], wholes: Sequence[float | None]) -> float | None:
    """Σ part ÷ Σ whole over the cases that measured both (None where none did)."""
    pairs = [(p, w) for p, w in zip(parts, wholes, strict=True) if p is not None and w]
    return round(sum(p for p, _ in pairs) / sum(w for _, w in pairs), 4) if pairs else None


def _avg(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 2) if present else None


def _geomean(values: Sequence[float | None]) -> float | None:
    """Mean of ratios (speed-ups): geometric, so a 2× and a 0.5× task average to 1×."""
    present = [v for v in values if v is not None and v > 0]
    return round(math.exp(sum(map(math.log, present)) / len(present)), 3) if present else None
