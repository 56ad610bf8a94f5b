"""PNG figures of a results directory: score vs prune ratio, prefill speed-up vs ratio (realized and ideal),
a radar of the task scores per model.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot): no global backend state, headless,
nothing left open between calls. Every legend and label sits inside its figure (constrained layout, legends
placed outside the axes but inside the canvas); a model keeps one colour in every figure of a report, and a
method one colour and marker in every figure.
"""

from __future__ import annotations

import math
import re
import textwrap
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
# The pruners keep their colour and marker in every figure; methods beyond them take the rest in name order.
METHOD_STYLES = {
    "random": {"color": "#9467bd", "marker": "D"},
    "frame": {"color": "#2ca02c", "marker": "^"},
    "fast_v": {"color": "#d62728", "marker": "s"},
    "dart": {"color": "#1f77b4", "marker": "o"},
}
RATIO_LABEL = "prune ratio (fraction of audio tokens dropped)"
SCORE_LABEL = "score (%)"
LEGEND_WRAP = 48  # characters per legend line: long model names wrap instead of running off the canvas


def model_colours(cases: Sequence[dict[str, Any]]) -> dict[str, str]:
    """One colour per model of a report (models in name order), shared by every figure drawn from it."""
    return {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(sorted({c["model"] for c in cases}))}


def report_figures(cases: Sequence[dict[str, Any]]) -> dict[str, Figure]:
    """Every figure for these cases, by file name."""
    colours = model_colours(cases)
    figures: dict[str, Figure] = {}
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        by_model[case["model"]].append(case)
    for model, group in sorted(by_model.items()):
        if all(is_base(c) for c in group):  # nothing varies with the ratio: the radar shows it
            continue
        name = _file_part(model)
        figures[f"score_vs_ratio_{name}.png"] = score_vs_ratio_figure(model, group, colours[model])
        figures[f"prefill_speedup_{name}.png"] = speedup_figure(model, group, colours[model])
    radar = radar_figure(cases, colours)
    if radar is not None:
        figures["radar_task_scores.png"] = radar
    return figures


def write_plots(cases: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """All figures for these cases under `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    return [_save(fig, out / name) for name, fig in report_figures(cases).items()]


def _file_part(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _wrap(label: str) -> str:
    return "\n".join(textwrap.wrap(label, LEGEND_WRAP, break_long_words=False)) or label


def _task_order(cases: Sequence[dict[str, Any]]) -> list[str]:
    """Tasks in the leaderboard's column order (SER SCR ASR | SED MC ASC | SD ER SAR SGR)."""
    order = {code: i for i, code in enumerate(leaderboard_columns())}
    return sorted({c["task"] for c in cases}, key=lambda task: order.get(TASKS.get(task).code, len(order)))


def _grid(n: int, title: str, ylabel: str, xlabel: str, colour: str) -> tuple[Figure, list[Any]]:
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.4 * cols + 0.6, 3.0 * rows + 1.1), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[:n]:
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=13, color=colour)  # the model's colour, as on the radar
    fig.supxlabel(xlabel)  # once for the grid: a panel is too narrow for the label with its unit
    fig.supylabel(ylabel)
    return fig, axes[:n]


def _methods(cases: Sequence[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """A colour and marker per (pruner, layer): the pruner's own (METHOD_STYLES), the same in every figure."""
    keys = sorted({(c["pruner"], c["prune_layer"]) for c in cases if c["pruner"] != "base"})
    others = sorted({pruner for pruner, _ in keys if pruner not in METHOD_STYLES})
    styles = {}
    for pruner, layer in keys:
        style = METHOD_STYLES.get(pruner)
        if style is None:
            i = len(METHOD_STYLES) + others.index(pruner)
            style = {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}
        layers = sorted({k for p, k in keys if p == pruner})
        dashes = ("-", "--", "-.", ":")
        styles[pruner, layer] = style | {"linestyle": dashes[layers.index(layer) % len(dashes)]}
    return styles


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
    if labels:
        fig.legend(handles, labels, loc="outside right upper", frameon=False)  # clear of the shared axis labels


def score_vs_ratio_figure(model: str, cases: Sequence[dict[str, Any]], colour: str = BASE_COLOUR) -> Figure:
    """One panel per task: leaderboard score against prune ratio, a line per method starting at base (r = 0)."""
    tasks = _task_order(cases)
    methods = _methods(cases)
    bases = base_cases(cases)
    fig, axes = _grid(len(tasks), f"{model}: score vs audio-token prune ratio", SCORE_LABEL, RATIO_LABEL, colour)
    for ax, task in zip(axes, tasks):
        base = bases.get((task, model))
        base_score = base["metrics"]["score"] if base else None
        if base_score is not None:
            ax.axhline(base_score, color=BASE_COLOUR, linestyle=":", linewidth=1.2, label="base (no pruning)")
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


def speedup_figure(model: str, cases: Sequence[dict[str, Any]], colour: str = BASE_COLOUR) -> Figure:
    """One panel per task: realized prefill speed-up over the same-run base against prune ratio, with the
    ideal (K·S + (N−K)·S')/(N·S) line where the cases record the model's layer count N."""
    tasks = _task_order(cases)
    methods = _methods(cases)
    bases = base_cases(cases)
    fig, axes = _grid(len(tasks), f"{model}: prefill speed-up vs prune ratio (realized; dashed: ideal)",
                      "prefill speed-up (× base)", RATIO_LABEL, colour)
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


def radar_figure(cases: Sequence[dict[str, Any]], colours: dict[str, str] | None = None) -> Figure | None:
    """The base scores of each model on the task axes they all have; None with fewer than 3 such axes."""
    rows = [row for row in leaderboard_rows(cases) if row["method"] == "base"]
    columns = [c for c in leaderboard_columns() if rows and all(row["scores"][c] is not None for row in rows)]
    if len(columns) < 3:
        return None
    colours = colours or model_colours(cases)
    angles = [2 * math.pi * i / len(columns) for i in range(len(columns))]
    fig = Figure(figsize=(7.0, 7.0 + 0.35 * len(rows)), layout="constrained")
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_offset(math.pi / 2)  # first task at the top, then clockwise like the paper's radar
    ax.set_theta_direction(-1)
    for row in sorted(rows, key=lambda r: r["model"]):
        values = [row["scores"][c] for c in columns]
        colour = colours[row["model"]]
        ax.plot([*angles, angles[0]], [*values, values[0]], color=colour, linewidth=2, marker="o",
                label=_wrap(f"{row['model']} (avg {row['avg']:.1f} % over {row['n_tasks']} tasks)"))
        ax.fill([*angles, angles[0]], [*values, values[0]], color=colour, alpha=0.12)
    ax.set_xticks(angles, columns, fontsize=12)
    ax.set_ylim(0, 100)
    ax.set_yticks([20, 40, 60, 80, 100], ["20", "40", "60", "80", "100 %"], fontsize=8, color="#666666")
    ax.set_rlabel_position(180 / len(columns))  # radial labels between the first two task axes
    ax.set_title("Task scores per model (%, base, no pruning)", fontsize=13, pad=18)
    fig.legend(loc="outside lower center", ncols=1, frameon=False)  # one model a line: never wider than the canvas
    return fig
