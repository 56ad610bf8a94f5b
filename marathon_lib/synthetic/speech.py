"""Speech: espeak-ng voices, or a formant-synthesis fallback when espeak-ng is absent."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile as sf
import soxr

from .signal import _fade_out

# --------------------------------------------------------------------------- speech engines


@dataclass(frozen=True)
class Voice:
    """espeak-ng voice settings; the fallback engine maps them onto F0 and rate."""

    variant: str = "m3"  # espeak variant: m1..m7 male, f1..f5 female
    pitch: int = 50  # -p, 0..99
    speed: int = 160  # -s, words per minute
    amplitude: int = 100  # -a; espeak clips internally above ~120
    pitch_range: str | None = None  # SSML <prosody range>; "0" is monotone

    @property
    def female(self) -> bool:
        return self.variant.startswith("f")


class _Espeak:
    sr = 22050

    def __init__(self, exe: str) -> None:
        self.exe = exe
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
        match = re.search(r"text-to-speech:\s*(\S+)", out)
        self.name = f"espeak-ng {match.group(1) if match else out.strip()}"

    def speak(self, text: str, voice: Voice) -> np.ndarray:
        body = text if voice.pitch_range is None else (
            f'<prosody range="{voice.pitch_range}">{text}</prosody>')
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "speech.wav"
            subprocess.run(
                [self.exe, "-m", "-v", f"en-us+{voice.variant}", "-s", str(voice.speed),
                 "-p", str(voice.pitch), "-a", str(voice.amplitude), "-w", str(wav),
                 f"<speak>{body}</speak>"],
                capture_output=True, check=True)
            audio, sr = sf.read(wav, dtype="float64")
        if sr != self.sr:
            raise RuntimeError(f"espeak-ng wrote {sr} Hz, expected {self.sr}")
        return audio


class _FormantFallback:
    """Speech-like babble: glottal harmonics through vowel formants with a syllable envelope.

    Not intelligible; it only keeps the prosodic carriers (F0, rate, level, range) so that
    every task still builds, and its label-relevant pitch relations stay true, without espeak.
    """

    name = "formant-fallback"
    sr = 16000  # what every speech task writes, so nothing needs resampling
    _VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480),
               (570, 840, 2410), (300, 870, 2240), (660, 1720, 2410))
    _RANGE_OCTAVES: ClassVar[dict[str, float]] = {"0": 0.0, "x-low": 0.1, "low": 0.18, "high": 0.45, "x-high": 0.6}

    def speak(self, text: str, voice: Voice) -> np.ndarray:
        sr = self.sr
        rng = np.random.default_rng(zlib.crc32(repr((text, voice)).encode()))
        f0_base = (205.0 if voice.female else 110.0) * 2 ** ((voice.pitch - 50) / 75)
        swing = self._RANGE_OCTAVES.get(voice.pitch_range or "", 0.3)
        syllable_s = 60.0 / (voice.speed * 1.7)  # about espeak's pace at the same -s
        # (duration, vowel index or -1 for a pause, F0 multiplier) per segment
        segments: list[tuple[float, int, float]] = []
        for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
            words = sentence.split()
            for wi, word in enumerate(words):
                n_syl = max(1, len(re.findall(r"[aeiouy]+", word.lower())))
                for s in range(n_syl):
                    progress = (wi + s / n_syl) / len(words)  # declination over the sentence
                    segments.append((syllable_s * rng.uniform(0.8, 1.2),
                                     int(rng.integers(len(self._VOWELS))),
                                     2 ** (swing * (0.5 - progress + rng.uniform(-0.3, 0.3)))))
                segments.append((0.05, -1, 1.0))
            segments.append((0.35, -1, 1.0))
        lengths = np.array([max(1, int(d * sr)) for d, _, _ in segments])
        f0_mult = np.repeat([m for _, _, m in segments], lengths)
        glide = int(0.036 * sr)  # moving average: F0 glides between syllables instead of jumping
        padded = np.concatenate([np.full(glide, f0_mult[0]), f0_mult, np.full(glide, f0_mult[-1])])
        csum = np.cumsum(padded)
        f0 = f0_base * (csum[2 * glide:] - csum[:-2 * glide]) / (2 * glide)
        # glottal source: one impulse per pitch period, plus a little aspiration noise
        source = np.diff(np.floor(np.cumsum(f0) / sr), prepend=0.0)
        source += 0.03 * rng.standard_normal(len(source))
        # each syllable is filtered on its own (zero-phase FFT filter) and overlap-added
        pad = int(0.02 * sr)
        out = np.zeros(len(source) + 2 * pad)
        responses: dict[tuple[int, int], np.ndarray] = {}
        start = 0
        for length, (_, vowel, _) in zip(lengths, segments):
            if vowel >= 0:
                nfft = 1 << int(np.ceil(np.log2(length + 2 * pad)))
                if (vowel, nfft) not in responses:
                    f = np.fft.rfftfreq(nfft, 1.0 / sr)
                    responses[vowel, nfft] = sum(
                        1 / np.sqrt(1 + ((f - fm) / 40.0) ** 2) for fm in self._VOWELS[vowel]
                    ) / (1 + f / 200.0)
                buf = np.zeros(nfft)
                buf[pad:pad + length] = source[start:start + length] * np.sin(
                    np.pi * np.arange(length) / length) ** 0.7
                filtered = np.fft.irfft(np.fft.rfft(buf) * responses[vowel, nfft], nfft)
                out[start:start + length + 2 * pad] += filtered[:length + 2 * pad]
            start += length
        out = out[pad:pad + len(source)]
        return out / (np.max(np.abs(out)) + 1e-9) * 0.75 * voice.amplitude / 100


_Engine = _Espeak | _FormantFallback


@lru_cache(maxsize=4)
def _espeak_engine(exe: str) -> _Espeak:
    return _Espeak(exe)


def _detect_engine() -> _Engine:
    exe = shutil.which("espeak-ng")
    return _espeak_engine(exe) if exe else _FormantFallback()


def _speak(engine: _Engine, text: str, voice: Voice, sr: int) -> np.ndarray:
    audio = engine.speak(text, voice)
    return audio if sr == engine.sr else soxr.resample(audio, engine.sr, sr)


def _estimate_seconds(sentence: str, voice: Voice) -> float:
    return len(sentence.split()) * 60.0 / voice.speed + 0.4


def _speak_fill(engine: _Engine, voice: Voice, sentences: Iterator[str], n: int, sr: int,
                lead: Sequence[str] = ()) -> tuple[np.ndarray, list[str]]:
    """Speak `lead` (which must fit whole), then more `sentences` until n samples; trim the tail."""
    parts: list[np.ndarray] = []
    spoken: list[str] = []
    if lead:
        parts.append(_speak(engine, " ".join(lead), voice, sr))
        if len(parts[0]) > n:
            raise ValueError(f"{len(parts[0]) / sr:.1f} s of required speech exceed the clip length")
        spoken.extend(lead)
    total = sum(len(p) for p in parts)
    while total < n:
        # one espeak call per batch: process start-up dominates the cost of short calls
        need = (n - total) / sr * 1.1 + 1.0
        batch: list[str] = []
        while need > 0:
            batch.append(next(sentences))
            need -= _estimate_seconds(batch[-1], voice)
        parts.append(_speak(engine, " ".join(batch), voice, sr))
        spoken.extend(batch)
        total += len(parts[-1])
    return _fade_out(np.concatenate(parts)[:n], sr), spoken


def _speak_whole_sentences(engine: _Engine, voice: Voice, sentences: Iterator[str], n: int,
                           sr: int) -> tuple[np.ndarray, list[str]]:
    """Greedily pack whole sentences into n samples so a transcript stays exact."""
    parts: list[np.ndarray] = []
    spoken: list[str] = []
    total = 0
    while True:
        sentence = next(sentences)
        audio = _speak(engine, sentence, voice, sr)
        if total + len(audio) > n:
            break
        parts.append(audio)
        spoken.append(sentence)
        total += len(audio)
    if not spoken:
        raise ValueError("clip too short for a single sentence")
    return np.concatenate(parts + [np.zeros(n - total)]), spoken
