"""Deterministic synthetic datasets in the on-disk formats of the AudioMarathon benchmark.

Every task directory mirrors the layout the original evaluation scripts read, but the audio
is generated here: speech by espeak-ng (or a formant-synthesis fallback when it is absent),
scenes, music and sound events procedurally with numpy. Labels are made true of the audio
wherever a signal can carry them (the spoken fact answers the question, the female voice has
the higher pitch, the dog clip contains barks and nothing else, ...).

Same arguments -> byte-identical files: all randomness comes from
``numpy.random.default_rng(seed + per-task offset)``, the espeak-ng output is deterministic,
and no manifest contains timestamps.

Modules: context.py (file layout, random streams, multiple-choice helpers), speech.py (espeak-ng or a formant
fallback), text.py (sentence banks), signal.py (shared signal helpers), and one module per kind of task:
speech_tasks.py, scenes.py (TAU), music.py (GTZAN), events.py (DESED). Answer labels: tasks/labels.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..paths import build_once
from .context import _EMPTY_DIRS, GENERATOR_VERSION, LAYOUTS, TASK_DIRS, _Ctx
from .events import _write_desed
from .music import _write_gtzan
from .scenes import _write_tau
from .speech import _detect_engine
from .speech_tasks import (
    _write_had,
    _write_librispeech,
    _write_race,
    _write_slue,
    _write_vesus,
    _write_vox_age,
    _write_vox_gender,
)

__all__ = ["GENERATOR_VERSION", "LAYOUTS", "TASK_DIRS", "build_synthetic_datasets", "ensure_synthetic_datasets"]

# --------------------------------------------------------------------------- public API

# (task name in the registry, its data directory, writer)
_WRITERS: tuple[tuple[str, str, Callable[[_Ctx], list[str]]], ...] = (
    ("LibriSpeech", "LibriSpeech", _write_librispeech), ("RACE", "RACE", _write_race), ("SLUE", "SLUE", _write_slue),
    ("TAU", "TAU", _write_tau), ("GTZAN", "GTZAN", _write_gtzan), ("DESED", "DESED", _write_desed),
    ("VESUS", "VESUS", _write_vesus), ("HAD", "HAD", _write_had), ("VoxAge", "VoxCeleb", _write_vox_age),
    ("VoxGender", "VoxCeleb", _write_vox_gender),
)


def build_synthetic_datasets(root: Path, *, seconds: float = 60.0, samples_per_task: int = 3,
                             seed: int = 0, layout: str = "flat", tasks: Sequence[str] | None = None) -> dict:
    """Write the task datasets under root (all 10, or the named `tasks`) in the flat layout or the release tree
    and return (and write) the fixtures manifest (files relative to root, per dataset). A task's files depend
    only on (seed, seconds, samples_per_task, layout), never on which others are built."""
    if seconds <= 0 or samples_per_task < 1:
        raise ValueError("seconds must be > 0 and samples_per_task >= 1")
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    known = [name for name, _, _ in _WRITERS]
    unknown = sorted(set(tasks or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown synthetic task(s) {unknown}; known: {', '.join(known)}")
    writers = [w for w in _WRITERS if tasks is None or w[0] in tasks]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(root, float(seconds), int(samples_per_task), int(seed), _detect_engine(), layout)
    for empty in _EMPTY_DIRS[layout]:
        (root / empty).mkdir(parents=True, exist_ok=True)
    dirs: dict[str, dict] = {d: {"n": 0, "files": []} for d in TASK_DIRS if any(d == w[1] for w in writers)}
    # Threads overlap espeak-ng subprocesses with numpy work; each writer owns its rng and
    # its files, and results are merged in a fixed order, so output stays deterministic.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda entry: entry[2](ctx), writers))
    for (_, task_dir, _), files in zip(writers, results):
        dirs[task_dir]["files"] = sorted(dirs[task_dir]["files"] + files)
        dirs[task_dir]["n"] += sum(f.endswith((".wav", ".flac")) for f in files)
    manifest = {"generator_version": GENERATOR_VERSION, "seconds": ctx.seconds,
                "samples_per_task": ctx.n, "seed": ctx.seed, "speech_engine": ctx.engine.name,
                "layout": layout, "tasks": dirs}
    ctx.write_json("fixtures_manifest.json", manifest)
    return manifest


def _cache_key(seconds: float, samples_per_task: int, seed: int, engine: str, layout: str = "flat") -> str:
    parts: list[object] = [GENERATOR_VERSION, float(seconds), int(samples_per_task), int(seed), engine]
    blob = json.dumps(parts if layout == "flat" else [*parts, layout])  # flat keys stay those of earlier builds
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_synthetic_datasets(cache_root: Path, *, seconds: float = 60.0,
                              samples_per_task: int = 3, seed: int = 0, layout: str = "flat") -> Path:
    """Build once per (version, args, speech engine, layout) under cache_root and return the data root."""
    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    key = _cache_key(seconds, samples_per_task, seed, _detect_engine().name, layout)

    def build(staging: Path) -> str:
        build_synthetic_datasets(staging, seconds=seconds, samples_per_task=samples_per_task, seed=seed,
                                 layout=layout)
        return key + "\n"

    return build_once(cache_root / f"synthetic-{key}", "COMPLETE", build)
