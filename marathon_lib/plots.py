"""PNG figures of a results directory: score vs prune ratio, prefill speed-up vs ratio (realized and ideal),
a radar of the task scores per model.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot): no global backend state, headless,
nothing left open between calls.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .schema import is_base
from .tables import base_cases, ideal_prefill_fraction, leaderboard_rows, speedup
from .tasks import TASKS, leaderboard_columns

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # methods that score alike still tell apart
BASE_COLOUR = "#555555"


def write_plots(cases: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """All figures for these cases under `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        by_model[case["model"]].append(case)
    for model, group in sorted(by_model.items()):
        if all(is_base(c) for c in group):  # nothing varies with the ratio: the radar shows it
            continue
        name = _file_part(model)
        written.append(_save(score_vs_ratio_figure(model, group), out / f"score_vs_ratio_{name}.png"))
        written.append(_save(speedup_figure(model, group), out / f"prefill_speedup_{name}.png"))
    radar = radar_figure(cases)
    if radar is not None:
        written.append(_save(radar, out / "radar_task_scores.png"))
    return written


def _file_part(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _task_order(cases: Sequence[dict[str, Any]]) -> list[str]:
    """Tasks in the leaderboard's column order (SER SCR ASR | SED MC ASC | SD ER SAR SGR)."""
    order = {code: i for i, code in enumerate(leaderboard_columns())}
    return sorted({c["task"] for c in cases}, key=lambda task: order.get(TASKS.get(task).code, len(order)))


def _grid(n: int, title: str, ylabel: str, xlabel: str) -> tuple[Figure, list[Any]]:
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.4 * cols + 0.6, 3.0 * rows + 0.9), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    for i, ax in enumerate(axes[:n]):
        if i % cols == 0:
            ax.set_ylabel(ylabel)
        if i >= n - cols:
            ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=13)
    return fig, axes[:n]


def _methods(cases: Sequence[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """A fixed colour and marker per (pruner, layer), the same in every panel."""
    keys = sorted({(c["pruner"], c["prune_layer"]) for c in cases if c["pruner"] != "base"})
    return {key: {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}
            for i, key in enumerate(keys)}


def _method_name(key: tuple[str, int], methods: dict[tuple[str, int], dict[str, Any]]) -> str:
    layers = {layer for pruner, layer in methods if pruner == key[0]}
    return key[0] if len(layers) == 1 else f"{key[0]} L{key[1]}"


def _legend(fig: Figure, axes: list[Any]) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), frameon=False)


def score_vs_ratio_figure(model: str, cases: Sequence[dict[str, Any]]) -> Figure:
    """One panel per task: leaderboard score against prune ratio, a line per method starting at base (r = 0)."""
    tasks = _task_order(cases)
    methods = _methods(cases)
    bases = base_cases(cases)
    fig, axes = _grid(len(tasks), f"{model}: score vs audio-token prune ratio", "score", "prune ratio")
    for ax, task in zip(axes, tasks):
        base = bases.get((task, model))
        base_score = base["metrics"]["score"] if base else None
        if base_score is not None:
            ax.axhline(base_score, color=BASE_COLOUR, linestyle=":", linewidth=1.2, label="base")
        for key, style in methods.items():
            points = sorted((c["prune_ratio"], c["metrics"]["score"]) for c in cases
                            if c["task"] == task and (c["pruner"], c["prune_layer"]) == key
                            and c["metrics"]["score"] is not None)
            if base_score is not None:
                points.insert(0, (0.0, base_score))
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, **style, alpha=0.85, label=_method_name(key, methods))
        ax.set_title(f"{task} ({TASKS.get(task).code})")
        ax.set_ylim(-3, 103)
        ax.set_xlim(-0.03, 1.0)
    _legend(fig, axes)
    return fig


def speedup_figure(model: str, cases: Sequence[dict[str, Any]]) -> Figure:
    """One panel per task: realized prefill speed-up over the same-run base against prune ratio, with the
    ideal (K·S + (N−K)·S')/(N·S) line where the cases record the model's layer count N."""
    tasks = _task_order(cases)
    methods = _methods(cases)
    bases = base_cases(cases)
    fig, axes = _grid(len(tasks), f"{model}: prefill speed-up vs prune ratio (realized; dashed: ideal)",
                      "speed-up ×", "prune ratio")
    for ax, task in zip(axes, tasks):
        base = bases.get((task, model))
        pruned = [c for c in cases if c["task"] == task and c["pruner"] != "base"]
        for key, style in methods.items():
            points = sorted((c["prune_ratio"], speedup(c, base)) for c in pruned
                            if (c["pruner"], c["prune_layer"]) == key and speedup(c, base) is not None)
            if points:
                xs, ys = zip(*[(0.0, 1.0), *points])
                ax.plot(xs, ys, **style, alpha=0.85, label=_method_name(key, methods))
        ideal: dict[int, dict[float, float]] = defaultdict(dict)
        for case in pruned:
            fraction = ideal_prefill_fraction(case)
            if fraction:
                ideal[case["prune_layer"]][case["prune_ratio"]] = 1.0 / fraction
        for layer, by_ratio in sorted(ideal.items()):
            xs, ys = zip(*sorted({0.0: 1.0, **by_ratio}.items()))
            label = "ideal" if len(ideal) == 1 else f"ideal L{layer}"
            ax.plot(xs, ys, linestyle="--", color="black", linewidth=1.2, label=label)
        ax.axhline(1.0, color=BASE_COLOUR, linestyle=":", linewidth=1.0)
        ax.set_title(f"{task} ({TASKS.get(task).code})" + ("" if base else " – no base case"))
        ax.set_xlim(-0.03, 1.0)
        ax.set_ylim(bottom=0)
    _legend(fig, axes)
    return fig


def radar_figure(cases: Sequence[dict[str, Any]]) -> Figure | None:
    """The base scores of each model on the task axes they all have; None with fewer than 3 such axes."""
    rows = [row for row in leaderboard_rows(cases) if row["method"] == "base"]
    columns = [c for c in leaderboard_columns() if rows and all(row["scores"][c] is not None for row in rows)]
    if len(columns) < 3:
        return None
    angles = [2 * math.pi * i / len(columns) for i in range(len(columns))]
    fig = Figure(figsize=(6.4, 6.4), layout="constrained")
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_offset(math.pi / 2)  # first task at the top, then clockwise like the paper's radar
    ax.set_theta_direction(-1)
    for i, row in enumerate(sorted(rows, key=lambda r: r["model"])):
        values = [row["scores"][c] for c in columns]
        colour = PALETTE[i % len(PALETTE)]
        ax.plot([*angles, angles[0]], [*values, values[0]], color=colour, linewidth=2, marker="o",
                label=f"{row['model']} (avg {row['avg']:.1f} over {row['n_tasks']} tasks)")
        ax.fill([*angles, angles[0]], [*values, values[0]], color=colour, alpha=0.12)
    ax.set_xticks(angles, columns, fontsize=12)
    ax.set_ylim(0, 100)
    ax.set_yticks([20, 40, 60, 80, 100], ["20", "40", "60", "80", "100"], fontsize=8, color="#666666")
    ax.set_title("Task scores per model (base, no pruning)", fontsize=13, pad=18)
    fig.legend(loc="outside lower center", ncols=min(len(rows), 3), frameon=False)
    return fig
