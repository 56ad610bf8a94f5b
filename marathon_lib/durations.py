"""`marathon durations`: the duration statistics and buckets of a data root per task, as the original
scripts measured them (docs/seed.md, "Data tools"): each clip's length from its file header, percentiles,
fixed buckets, a table and a stacked histogram. Unusable clips are listed with the reason, never fatal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .audio import undecodable
from .errors import DataError
from .tasks import TASKS

DURATION_BINS: tuple[float, ...] = (0, 2, 5, 10, 15, 20, 25, 30, 35, 45, 60, 90, 120, 180, 300, 600, math.inf)
PERCENTILES = (25, 75, 90, 95, 99)


def clip_seconds(path: Path) -> float:
    """Duration from the file header (soundfile.info), as the seed measured it; DataError when unusable."""
    if not path.is_file():
        raise DataError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise DataError(undecodable(path, err)) from err
    if info.frames <= 0 or info.samplerate <= 0:
        raise DataError(f"audio file is empty (0 frames): {path}")
    return info.frames / info.samplerate


def task_durations(task: str, data_root: Path) -> dict[str, Any]:
    """{durations: {sample_id: seconds}, unusable: [{sample_id, error}]} over the samples the benchmark runs
    (every published item, as the default `full` protocol runs them)."""
    durations: dict[str, float] = {}
    unusable: list[dict[str, Any]] = []
    try:
        samples = TASKS.get(task).samples(data_root)
    except DataError as err:  # the whole task is unusable (no manifest): listed, the other tasks go on
        return {"durations": durations, "unusable": [{"sample_id": None, "error": str(err)}]}
    for sample in samples:
        if sample.error:
            unusable.append({"sample_id": sample.sample_id, "error": sample.error})
            continue
        try:
            durations[sample.sample_id] = clip_seconds(sample.audio_path)
        except DataError as err:
            unusable.append({"sample_id": sample.sample_id, "error": str(err)})
    return {"durations": durations, "unusable": unusable}


def duration_statistics(values: Sequence[float]) -> dict[str, float | int | None]:
    """The seed's `calculate_statistics`: count, mean, median, min, max, std (population), total, percentiles."""
    if not values:
        return {"count": 0, **{k: None for k in ("mean", "median", "min", "max", "std", "total")},
                **{f"p{p}": None for p in PERCENTILES}}
    x = np.asarray(values, dtype=np.float64)
    stats: dict[str, float | int | None] = {
        "count": int(x.size), "mean": float(x.mean()), "median": float(np.median(x)), "min": float(x.min()),
        "max": float(x.max()), "std": float(x.std()), "total": float(x.sum()),
    }
    stats.update({f"p{p}": float(np.percentile(x, p)) for p in PERCENTILES})
    return stats


def bucket_label(lo: float, hi: float) -> str:
    return f"{lo:g}+ s" if math.isinf(hi) else f"{lo:g}-{hi:g} s"


def duration_buckets(values: Sequence[float]) -> dict[str, int]:
    """The seed's `get_duration_distribution`: counts in [lo, hi) over 0, 2, 5, … 300, 600 s, ∞."""
    counts = {bucket_label(lo, hi): 0 for lo, hi in pairwise(DURATION_BINS)}
    for value in values:
        for lo, hi in pairwise(DURATION_BINS):
            if lo <= value < hi:
                counts[bucket_label(lo, hi)] += 1
                break
    return counts


def analyse_durations(data_root: Path, tasks: Sequence[str]) -> dict[str, Any]:
    """Per task and over all tasks: statistics, buckets, every duration and every unusable sample."""
    analysis: dict[str, Any] = {"data_root": str(data_root), "tasks": {}}
    every: list[float] = []
    for task in tasks:
        found = task_durations(task, data_root)
        values = list(found["durations"].values())
        every += values
        analysis["tasks"][task] = {"statistics": duration_statistics(values), "buckets": duration_buckets(values),
                                   **found}
    analysis["all"] = {"statistics": duration_statistics(every), "buckets": duration_buckets(every)}
    return analysis


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def durations_table(analysis: dict[str, Any]) -> str:
    """Statistics per task (seconds; total also in hours), then the bucket counts per task."""
    names = [*analysis["tasks"], "all"]
    blocks = {**analysis["tasks"], "all": analysis["all"]}
    stat_keys = ("mean", "median", "min", "max", "std", *(f"p{p}" for p in PERCENTILES))
    header = ["task", "count", *stat_keys, "total s", "total h", "unusable"]
    rows = [header]
    for name in names:
        s = blocks[name]["statistics"]
        unusable = "" if name == "all" else str(len(blocks[name]["unusable"]))
        total_h = "–" if s["total"] is None else f"{s['total'] / 3600:.2f}"
        rows.append([name, str(s["count"]), *(_seconds(s[k]) for k in stat_keys), _seconds(s["total"]), total_h,
                     unusable])
    buckets = list(analysis["all"]["buckets"])
    rows_b = [["bucket", *names]] + [[b, *(str(blocks[n]["buckets"][b]) for n in names)] for b in buckets]
    return _table(rows) + "\n\nsamples per duration bucket [lo, hi):\n" + _table(rows_b)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def durations_histogram(analysis: dict[str, Any], path: Path) -> Path:
    """Bucket counts as bars stacked by task (one colour per task), one bar per duration bucket."""
    from matplotlib.figure import Figure

    from .plots import PALETTE

    buckets = list(analysis["all"]["buckets"])
    fig = Figure(figsize=(11, 5), layout="constrained")
    ax = fig.add_subplot()
    bottom = np.zeros(len(buckets))
    colours = [*PALETTE, "#7f7f7f", "#bcbd22"]
    for i, (task, block) in enumerate(analysis["tasks"].items()):
        counts = np.array([block["buckets"][b] for b in buckets], dtype=float)
        ax.bar(range(len(buckets)), counts, bottom=bottom, color=colours[i % len(colours)],
               label=f"{task} (n={block['statistics']['count']})")
        bottom += counts
    ax.set_xticks(range(len(buckets)), buckets, rotation=45, ha="right")
    ax.set_xlabel("duration bucket")
    ax.set_ylabel("samples")
    ax.set_title(f"Audio durations: {analysis['data_root']}")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=9, frameon=False)  # beside the bars, never over them
    fig.savefig(path, dpi=110)
    return path
