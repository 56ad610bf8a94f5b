"""Signal helpers shared by the scene, music and event generators."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

_PEAK = 0.9


# --------------------------------------------------------------------------- signal helpers


def _finish(x: np.ndarray) -> np.ndarray:
    """Guard against NaN and keep the peak at or below _PEAK (never raise the level)."""
    if not np.all(np.isfinite(x)):
        raise ValueError("non-finite samples in generated audio")
    peak = float(np.max(np.abs(x)))
    return x * (_PEAK / peak) if peak > _PEAK else x


def _normalize(x: np.ndarray, peak: float) -> np.ndarray:
    return x * (peak / (np.max(np.abs(x)) + 1e-12))


def _fade_out(x: np.ndarray, sr: int, seconds: float = 0.03) -> np.ndarray:
    m = min(len(x), int(seconds * sr))
    x = x.copy()
    x[len(x) - m:] *= np.linspace(1.0, 0.0, m)
    return x


def _fades(x: np.ndarray, sr: int, seconds: float = 0.005) -> np.ndarray:
    """Short fade in and out so synthesized events start and stop without clicks."""
    m = min(len(x) // 2, max(1, int(seconds * sr)))
    ramp = np.linspace(0.0, 1.0, m)
    x = x.copy()
    x[:m] *= ramp
    x[len(x) - m:] *= ramp[::-1]
    return x


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float,
                tilt_db_per_octave: float = 0.0) -> np.ndarray:
    """Unit-RMS noise shaped in the frequency domain (Butterworth-like band edges, spectral tilt).

    White Gaussian noise has an i.i.d. complex Gaussian spectrum, so the spectrum is drawn
    directly and only one FFT is paid.
    """
    bins = n // 2 + 1
    spec = rng.standard_normal(2 * bins).view(np.complex128)
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), 1.0)
    low, high = (lo / f) ** 2, (f / hi) ** 2
    gain = 1 / np.sqrt((1 + low ** 4) * (1 + high ** 4))
    if tilt_db_per_octave:
        gain *= (f / 1000.0) ** (tilt_db_per_octave / 6.02)
    x = np.fft.irfft(spec * gain, n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _slow_env(rng: np.random.Generator, n: int, sr: int, rate_hz: float, lo: float,
              hi: float) -> np.ndarray:
    """Random envelope between lo and hi, changing about rate_hz times per second."""
    points = max(2, int(n / sr * rate_hz) + 2)
    values = rng.uniform(lo, hi, points)
    return np.interp(np.arange(n), np.linspace(0, n, points), values)


def _add(dst: np.ndarray, sig: np.ndarray, start: int) -> None:
    """Mix sig into dst at start (mono or stereo), dropping what falls outside."""
    if start >= len(dst):
        return
    end = min(len(dst), start + len(sig))
    dst[start:end] += sig[:end - start]


def _pan(sig: np.ndarray, pan: float) -> np.ndarray:
    """Equal-power pan, pan in [-1 (left), 1 (right)]."""
    angle = (pan + 1) * np.pi / 4
    return np.stack([sig * np.cos(angle), sig * np.sin(angle)], axis=1)


def _decay_tone(sr: int, freqs: Sequence[float], amps: Sequence[float], dur: float,
                tau: float) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    x = sum(a * np.sin(2 * np.pi * f * t) for f, a in zip(freqs, amps))
    return _fades(x * np.exp(-t / tau), sr, 0.002)


def _harmonic(sr: int, f0: np.ndarray | float, n: int, amps: Sequence[float]) -> np.ndarray:
    """Harmonic tone following an F0 track (or constant F0); harmonics above Nyquist dropped."""
    f0 = np.broadcast_to(np.asarray(f0, dtype=float), (n,))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    top = float(np.max(f0))
    return sum(a * np.sin((k + 1) * phase) for k, a in enumerate(amps) if (k + 1) * top < sr / 2)


def _event_times(rng: np.random.Generator, seconds: float, event_len: Callable[[], float],
                 gap: tuple[float, float]) -> list[tuple[float, float]]:
    """Non-overlapping (start, length) slots filling the clip with random gaps."""
    slots: list[tuple[float, float]] = []
    t = rng.uniform(0.1, gap[1] / 2)
    while True:
        length = event_len()
        if t + length > seconds:
            break
        slots.append((t, length))
        t += length + rng.uniform(*gap)
    return slots


def _trim_silence(x: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.nonzero(np.abs(x) > threshold)[0]
    return x[loud[0]:loud[-1] + 1] if len(loud) else x


def _splice(base: np.ndarray, insert: np.ndarray, start: int, sr: int) -> None:
    """Overwrite base[start:...] with insert, 10 ms crossfades so the seam does not click."""
    m = min(int(0.01 * sr), len(insert) // 2)
    ramp = np.linspace(0, 1, m)
    seg = insert.copy()
    end = start + len(seg)
    seg[:m] = seg[:m] * ramp + base[start:start + m] * (1 - ramp)
    seg[-m:] = seg[-m:] * ramp[::-1] + base[end - m:end] * ramp
    base[start:end] = seg
