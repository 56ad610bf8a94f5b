"""`marathon data check ROOT`: is a data root complete and sound before a run spends GPU hours on it?

Per task: the folder used, items in the manifest against the release's published count, audio present /
missing / undecodable, duration min-median-max against the published 90-300 s, sample rates and channels,
and every unusable item by name. Headers are read with soundfile.info (no decode) unless `decode` is asked.
A task whose folder or manifest is missing or unreadable fails the check; per-item gaps are listed (in a
run they become per-sample data errors, never a crashed case).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .dataroot import DataRoot, HubSource, download_hint
from .errors import DataError
from .tasks import TASKS

DURATION_RANGE = (90.0, 300.0)  # seconds: the clip lengths the release publishes
SHOWN_PROBLEMS = 20  # per task on the terminal; --json lists them all


def probe_audio(path: Path, decode: bool = False) -> dict[str, Any]:
    """{status: present|missing|undecodable, seconds, rate, channels, error} from the header (or a decode)."""
    if not path.is_file():
        return {"status": "missing", "error": f"audio file not found: {path}"}
    try:
        info = sf.info(str(path))
        if info.frames <= 0 or info.samplerate <= 0:
            return {"status": "undecodable", "error": f"audio file is empty (0 frames): {path}"}
        if decode:
            data, _ = sf.read(str(path), dtype="float32", always_2d=True)
            if not np.isfinite(data).all():
                return {"status": "undecodable", "error": f"audio file contains NaN or infinite samples: {path}"}
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as err:
        return {"status": "undecodable", "error": f"cannot decode audio file {path}: {err}"}
    return {"status": "present", "seconds": info.frames / info.samplerate, "rate": info.samplerate,
            "channels": info.channels}


def check_task(task: str, root: DataRoot, decode: bool = False, workers: int = 8) -> dict[str, Any]:
    spec = TASKS.get(task)
    result: dict[str, Any] = {"task": task, "published": spec.published}
    try:
        folder = spec.folder(root.path)
        result |= folder.as_dict()
        samples = spec.load(folder.path)  # every published item (no protocol filter)
    except DataError as err:
        hint = f" Download it: {download_hint(HubSource(root.repo_id, root.revision), [task])}" if root.repo_id else ""
        return result | {"status": "manifest error", "error": f"{err}{hint}"}
    usable = [s for s in samples if s.error is None]
    paths = sorted({s.audio_path for s in usable})
    with ThreadPoolExecutor(max_workers=workers) as pool:  # header reads are I/O bound (network file systems)
        probes = dict(zip(paths, pool.map(lambda p: probe_audio(p, decode), paths)))
    problems = [{"sample_id": s.sample_id, "path": None, "problem": "item", "error": s.error}
                for s in samples if s.error is not None]
    audio = Counter()
    seconds, rates, channels = [], Counter(), Counter()
    for sample in usable:
        probe = probes[sample.audio_path]
        audio[probe["status"]] += 1
        if probe["status"] != "present":
            problems.append({"sample_id": sample.sample_id, "path": str(sample.audio_path),
                             "problem": probe["status"], "error": probe["error"]})
            continue
        seconds.append(probe["seconds"])
        rates[str(probe["rate"])] += 1
        channels[str(probe["channels"])] += 1
    low, high = DURATION_RANGE
    duration = {"min": min(seconds, default=None), "median": statistics.median(seconds) if seconds else None,
                "max": max(seconds, default=None), "below": sum(x < low for x in seconds),
                "above": sum(x > high for x in seconds)}
    count_ok = spec.published is None or len(samples) == spec.published
    return result | {
        "status": "gaps" if problems else ("ok" if count_ok else "count off"),
        "items": len(samples), "count_matches": count_ok, "files": len(paths),
        "present": audio["present"], "missing": audio["missing"], "undecodable": audio["undecodable"],
        "item_errors": sum(p["problem"] == "item" for p in problems),
        "duration": duration, "sample_rates": dict(rates), "channels": dict(channels), "problems": problems,
    }


def check_data(root: DataRoot, tasks: Sequence[str], decode: bool = False) -> dict[str, Any]:
    checked = {task: check_task(task, root, decode) for task in tasks}
    return {
        "source": root.source, "path": str(root.path), "commit": root.commit, "decode": decode,
        "duration_range": list(DURATION_RANGE), "tasks": checked,
        "items": sum(c.get("items", 0) for c in checked.values()),
        "published": sum(TASKS.get(task).published or 0 for task in tasks),
        "manifest_errors": [task for task, c in checked.items() if c["status"] == "manifest error"],
    }


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _counter(values: dict[str, int]) -> str:
    return ", ".join(k if len(values) == 1 else f"{k}×{n}" for k, n in sorted(values.items())) or "–"


def check_table(report: dict[str, Any]) -> str:
    low, high = report["duration_range"]
    header = ["task", "folder", "items", "published", "present", "missing", "undecodable", "bad items",
              "seconds min/median/max", f"outside {low:g}-{high:g} s", "Hz", "ch", "status"]
    rows = []
    for task, c in report["tasks"].items():
        if c["status"] == "manifest error":
            rows.append([task, c.get("folder", "–"), "–", str(c["published"] or "–"), *["–"] * 8, "MANIFEST ERROR"])
            continue
        d = c["duration"]
        rows.append([task, c["folder"] + (" (searched)" if c["found_by"] == "search" else ""), str(c["items"]),
                     str(c["published"] or "–"), str(c["present"]), str(c["missing"]), str(c["undecodable"]), str(c["item_errors"]),
                     f"{_seconds(d['min'])} / {_seconds(d['median'])} / {_seconds(d['max'])}",
                     str(d["below"] + d["above"]), _counter(c["sample_rates"]), _counter(c["channels"]),
                     c["status"]])
    rows.append(["all", "", str(report["items"]), str(report["published"]), *[""] * 9])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    where = report["source"] + (f" (commit {report['commit']})" if report["commit"] else "")
    lines = [f"data root: {where} -> {report['path']}", fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    for task, c in report["tasks"].items():
        if c["status"] == "manifest error":
            lines.append(f"{task}: {c['error']}")
            continue
        for problem in c["problems"][:SHOWN_PROBLEMS]:
            lines.append(f"{task} {problem['sample_id']}: {problem['problem']}: {problem['error']}")
        if len(c["problems"]) > SHOWN_PROBLEMS:
            lines.append(f"{task}: {len(c['problems']) - SHOWN_PROBLEMS} more problems (--json lists them all)")
    return "\n".join(lines)
