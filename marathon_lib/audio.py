"""Audio decoding: soundfile -> mono -> resample (soxr) -> float32. Bad files raise DataError naming the file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import DataError


@dataclass(frozen=True)
class AudioClip:
    samples: np.ndarray  # float32, mono, at `sampling_rate`
    sampling_rate: int
    source_rate: int
    source_channels: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sampling_rate


def load_audio(path: str | Path, sampling_rate: int) -> AudioClip:
    """Decode `path`, downmix to mono by channel mean, resample to `sampling_rate` with soxr (VHQ)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise DataError(f"cannot decode audio file {path}: {err}") from err
    if data.shape[0] == 0:
        raise DataError(f"audio file is empty (0 frames): {path}")
    if not np.isfinite(data).all():
        raise DataError(f"audio file contains NaN or infinite samples: {path}")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sampling_rate:
        mono = soxr.resample(mono, rate, sampling_rate, quality="VHQ").astype(np.float32, copy=False)
    return AudioClip(np.ascontiguousarray(mono), sampling_rate, int(rate), int(data.shape[1]))


def file_sha1(path: str | Path) -> str:
    """Content hash of an audio file, recorded per sample so results can be traced to exact inputs."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
