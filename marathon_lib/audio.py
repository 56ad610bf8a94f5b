"""Audio decoding: soundfile -> mono -> resample (soxr) -> float32. Bad files raise DataError naming the file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import DataError

# The shortest clip the benchmark runs: one audio token at the 25 tokens/s of the Whisper-style encoders (Qwen,
# Audio-Flamingo-3). Shorter clips give some families no audio token at all and make others' feature
# extractors fail, so they are a data error for every model and method alike.
MIN_AUDIO_SECONDS = 0.04


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
        raise DataError(undecodable(path, err)) from err
    if data.shape[0] == 0:
        raise DataError(f"audio file is empty (0 frames): {path}")
    if not np.isfinite(data).all():
        raise DataError(f"audio file contains NaN or infinite samples: {path}")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sampling_rate:
        mono = soxr.resample(mono, rate, sampling_rate, quality="VHQ").astype(np.float32, copy=False)
    return AudioClip(np.ascontiguousarray(mono), sampling_rate, int(rate), int(data.shape[1]))


def undecodable(path: Path, err: Exception) -> str:
    """The message for an existing file the decoder rejects, with libsndfile's reason minus its "Error opening
    '<path>': " prefix. Some libsndfile builds answer a file they cannot parse with "File does not exist or is not
    a regular file": not the reason when the file is there."""
    reason = getattr(err, "error_string", None) or str(err)
    if path.stat().st_size == 0:
        reason = "the file is empty (0 bytes)"
    elif "does not exist" in reason:
        reason = "no audio format recognised"
    return f"cannot decode {path} (not a valid audio file): {reason.rstrip('.')}"


def file_sha1(path: str | Path) -> str:
    """Content hash of an audio file, recorded per sample so results can be traced to exact inputs."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
