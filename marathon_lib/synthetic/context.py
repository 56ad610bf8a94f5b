"""Where generated files go (the flat layout or the release tree), the per-task random streams, and the
multiple-choice helpers every writer shares."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..tasks import TASKS
from .signal import _finish
from .speech import Voice, _Engine, _speak_fill

GENERATOR_VERSION: str = "1"

TASK_DIRS: tuple[str, ...] = (
    "LibriSpeech", "RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS", "HAD", "VoxCeleb",
)
# Where each dataset's folder goes: the flat layout (one folder per dataset) or the AudioMarathon release tree
# as downloaded, both read from the task specs (tasks.folders.TaskFolders).
LAYOUTS: dict[str, dict[str, str]] = {
    "flat": {TASKS.get(task).folders.flat: TASKS.get(task).folders.flat for task in TASKS},
    "release": {TASKS.get(task).folders.flat: TASKS.get(task).folders.release for task in TASKS},
}
# What else the release tree holds: SLUE audio under its split's folder, VoxCeleb's empty age sibling.
_SLUE_AUDIO = {"flat": "audio", "release": "dev/mixed_concatenated_audio"}
_EMPTY_DIRS = {"flat": (), "release": ("VoxCeleb/concatenated_audio_age",)}

_LETTERS = "ABCDE"
_NOISE_FLOOR = 3e-4  # about -70 dBFS: pads speech without leaving digital silence


# --------------------------------------------------------------------------- multiple choice


def _balanced(rng: np.random.Generator, k: int, n: int) -> list[int]:
    """n indices in range(k) that cycle through seeded permutations (balanced, varied)."""
    out: list[int] = []
    while len(out) < n:
        out.extend(int(i) for i in rng.permutation(k))
    return out[:n]


def _choices(rng: np.random.Generator, correct: str, pool: Sequence[str], k: int,
             position: int) -> list[str]:
    """k distinct options with `correct` at `position` and k-1 distractors from pool."""
    others = [p for p in pool if p != correct]
    options = [others[int(i)] for i in rng.permutation(len(others))[:k - 1]]
    options.insert(position, correct)
    return options


def _choice_fields(options: Sequence[str]) -> dict[str, str]:
    return {f"choice_{letter.lower()}": text for letter, text in zip(_LETTERS, options)}


# --------------------------------------------------------------------------- build context


@dataclass
class _Ctx:
    root: Path
    seconds: float
    n: int
    seed: int
    engine: _Engine
    layout: str = "flat"

    def rng(self, task: str) -> np.random.Generator:
        return np.random.default_rng(self.seed + zlib.crc32(task.encode()))

    def samples(self, sr: int) -> int:
        return round(self.seconds * sr)

    def place(self, rel: str) -> str:
        """"TAU/x.wav" -> the dataset's folder in this layout ("TAU/concatenated_resampled/x.wav")."""
        dataset, sep, rest = rel.partition("/")
        return f"{LAYOUTS[self.layout][dataset]}{sep}{rest}" if dataset in LAYOUTS[self.layout] else rel

    def write_audio(self, rel: str, audio: np.ndarray, sr: int) -> str:
        rel = self.place(rel)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = "FLAC" if rel.endswith(".flac") else "WAV"
        sf.write(path, _finish(audio), sr, format=fmt, subtype="PCM_16")
        return rel

    def write_text(self, rel: str, text: str) -> str:
        rel = self.place(rel)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return rel

    def write_json(self, rel: str, obj: object) -> str:
        return self.write_text(rel, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    def noise_floor(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _NOISE_FLOOR * rng.standard_normal(n)

    def speech(self, rng: np.random.Generator, voice: Voice, sentences: Iterator[str], sr: int,
               lead: Sequence[str] = ()) -> tuple[np.ndarray, list[str]]:
        n = self.samples(sr)
        audio, spoken = _speak_fill(self.engine, voice, sentences, n, sr, lead)
        return audio + self.noise_floor(rng, n), spoken


_MALE = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
_FEMALE = ("f1", "f2", "f3", "f4", "f5")


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]
