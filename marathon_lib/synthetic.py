"""Deterministic synthetic datasets in the on-disk formats of the AudioMarathon benchmark.

Every task directory mirrors the layout the original evaluation scripts read, but the audio
is generated here: speech by espeak-ng (or a formant-synthesis fallback when it is absent),
scenes, music and sound events procedurally with numpy. Labels are made true of the audio
wherever a signal can carry them (the spoken fact answers the question, the female voice has
the higher pitch, the dog clip contains barks and nothing else, ...).

Same arguments -> byte-identical files: all randomness comes from
``numpy.random.default_rng(seed + per-task offset)``, the espeak-ng output is deterministic,
and no manifest contains timestamps.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile as sf
import soxr

from .paths import build_once
from .tasks import TASKS

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

# Multiple-choice texts exactly as the benchmark spells them ("Name - code" where it has codes).
TAU_SCENES: tuple[str, ...] = (
    "Airport - airport",
    "Indoor shopping mall - shopping_mall",
    "Metro station - metro_station",
    "Pedestrian street - street_pedestrian",
    "Public square - public_square",
    "Street with medium level of traffic - street_traffic",
    "Traveling by a tram - tram",
    "Traveling by a bus - bus",
    "Traveling by an underground metro - metro",
    "Urban park - park",
)
GTZAN_GENRES: tuple[str, ...] = (
    "Blues - blues", "Classical - classical", "Country - country", "Disco - disco",
    "Hip-hop - hiphop", "Jazz - jazz", "Metal - metal", "Pop - pop", "Reggae - reggae",
    "Rock - rock",
)
DESED_EVENTS: tuple[str, ...] = (
    "Alarm bell ringing", "Blender", "Cat", "Dishes", "Dog", "Electric shaver/toothbrush",
    "Frying", "Running water", "Speech", "Vacuum cleaner",
)
VESUS_EMOTIONS: tuple[str, ...] = ("angry", "happy", "sad", "fearful", "monotone")
VOX_AGE_GROUPS: tuple[str, ...] = (
    "Young Adult (18-30)", "Early Career (31-40)", "Mid Career (41-50)", "Senior (51-70)",
    "Elderly (71+)",
)

_LETTERS = "ABCDE"
_PEAK = 0.9
_NOISE_FLOOR = 3e-4  # about -70 dBFS: pads speech without leaving digital silence


def label_code(option: str) -> str:
    """'Metro station - metro_station' -> 'metro_station'."""
    return option.rsplit(" - ", 1)[-1]


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


# --------------------------------------------------------------------------- text


_NARRATIVE = (
    ("the old sailor", "a young teacher", "the small boy", "my neighbour", "the quiet student",
     "our captain", "the village doctor", "a tired traveller"),
    ("walked slowly", "looked around carefully", "waited patiently", "spoke softly",
     "worked hard", "sat quietly", "listened closely", "smiled warmly"),
    ("along the river", "near the old bridge", "in the garden", "beside the window",
     "across the valley", "under the tall trees", "at the edge of the town", "inside the library"),
    ("in the morning", "after supper", "before the storm", "during the long winter",
     "on a bright afternoon", "late at night", "every spring", "at dawn"),
)
_SHORT_NARRATIVE = (_NARRATIVE[0], _NARRATIVE[1], _NARRATIVE[3])
_PARLIAMENT = (
    ("we must", "this house should", "the committee will", "our citizens expect us to",
     "member states need to", "the council has agreed to"),
    ("protect", "support", "review", "strengthen", "reform", "improve"),
    ("the common budget", "regional development", "fair working conditions", "clean energy",
     "public health", "food safety", "digital education", "transport networks"),
    ("without further delay", "in the coming years", "for every family", "with great care",
     "as a matter of urgency", "before the next session"),
)


def _sentences(rng: np.random.Generator, banks: Sequence[Sequence[str]]) -> Iterator[str]:
    while True:
        text = " ".join(bank[int(rng.integers(len(bank)))] for bank in banks)
        yield text[0].upper() + text[1:] + "."


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


# --------------------------------------------------------------------------- 1. LibriSpeech

_LIBRI_SPEAKERS = (("1089", "134686", Voice("m3", pitch=45, speed=165)),
                   ("2300", "131720", Voice("f2", pitch=50, speed=165)))


def _write_librispeech(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("LibriSpeech")
    sr = 16000
    files: list[str] = []
    transcripts: dict[tuple[str, str], list[str]] = {}
    for i in range(ctx.n):
        spk, chapter, voice = _LIBRI_SPEAKERS[i % len(_LIBRI_SPEAKERS)]
        utt_id = f"{spk}-{chapter}-{i // len(_LIBRI_SPEAKERS):04d}"
        audio, spoken = _speak_whole_sentences(
            ctx.engine, voice, _sentences(rng, _SHORT_NARRATIVE), ctx.samples(sr), sr)
        words = " ".join(s.rstrip(".") for s in spoken).upper()
        transcripts.setdefault((spk, chapter), []).append(f"{utt_id} {words}")
        audio += ctx.noise_floor(rng, len(audio))
        files.append(ctx.write_audio(f"LibriSpeech/test-clean/{spk}/{chapter}/{utt_id}.flac",
                                     audio, sr))
    for (spk, chapter), lines in transcripts.items():
        rel = f"LibriSpeech/test-clean/{spk}/{chapter}/{spk}-{chapter}.trans.txt"
        files.append(ctx.write_text(rel, "\n".join(lines) + "\n"))
    return files


# --------------------------------------------------------------------------- 2. RACE

_RACE_NAMES = ("Tom", "Lucy", "Jack", "Mary", "Peter", "Linda", "David", "Susan")
_RACE_COLOURS = ("red", "blue", "green", "yellow", "black", "white")
_RACE_THINGS = ("bicycle", "kite", "umbrella", "jacket", "guitar", "camera", "lamp", "schoolbag")
_RACE_PLACES = ("by the seaside", "on a farm", "in the mountains", "at the zoo",
                "on a small island", "in a big city")


def _race_fact(rng: np.random.Generator, kind: int) -> tuple[str, str, str, list[str]]:
    """(fact sentence, question, correct option, option pool) for one of three question kinds."""
    name = _pick(rng, _RACE_NAMES)
    if kind == 0:
        pool = [f"A {c} {t}" for c in _RACE_COLOURS for t in _RACE_THINGS]
        correct = _pick(rng, pool)
        return (f"{name} bought {correct.lower()} at the shop.", f"What did {name} buy?",
                correct, pool)
    if kind == 1:
        pool = [p[0].upper() + p[1:] for p in _RACE_PLACES]
        correct = _pick(rng, pool)
        return (f"Last summer {name} spent the holiday {correct.lower()}.",
                f"Where did {name} spend the holiday?", correct, pool)
    pool = [other for other in _RACE_NAMES if other != name]
    correct = _pick(rng, pool)
    return (f"{name} received a long letter from {correct}.", f"Who sent {name} a letter?",
            correct, pool)


def _fact_lead(rng: np.random.Generator, fact: str, filler: Iterator[str], voice: Voice,
               seconds: float) -> list[str]:
    """Neutral sentences then the fact, placed somewhere in the first half of the clip."""
    avg = _estimate_seconds(next(filler), voice)
    room = int((seconds * 0.5 - _estimate_seconds(fact, voice)) / avg)
    before = int(rng.integers(0, max(0, room) + 1))
    return [next(filler) for _ in range(before)] + [fact]


def _write_race(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("RACE")
    sr = 16000
    files: list[str] = []
    items = []
    kinds = _balanced(rng, 3, ctx.n)
    for i, (kind, pos) in enumerate(zip(kinds, _balanced(rng, 4, ctx.n))):
        subset = "high" if i % 2 == 0 else "middle"
        article_id = f"{subset}{1000 + i}.txt"
        fact, question, correct, pool = _race_fact(rng, kind)
        voice = Voice(_pick(rng, _MALE + _FEMALE), pitch=int(rng.integers(40, 60)), speed=160)
        filler = _sentences(rng, _NARRATIVE)
        lead = _fact_lead(rng, fact, filler, voice, ctx.seconds)
        audio, _ = ctx.speech(rng, voice, filler, sr, lead)
        rel = f"audio/{subset}/{article_id[:-4]}_q0.wav"
        files.append(ctx.write_audio(f"RACE/{rel}", audio, sr))
        options = _choices(rng, correct, pool, 4, pos)
        items.append({"audio_path": rel, "question": question, "options": options,
                      "answer": _LETTERS[pos], "article_id": article_id, "question_idx": 0})
    files.append(ctx.write_json("RACE/race_benchmark.json", items))
    return files


# --------------------------------------------------------------------------- 3. SLUE

_SLUE_CITIES = ("Lisbon", "Warsaw", "Vienna", "Dublin", "Madrid", "Helsinki", "Prague",
                "Athens", "Brussels", "Stockholm", "Budapest", "Copenhagen")
_SLUE_PEOPLE = ("Maria Schmidt", "Jan Kowalski", "Elena Rossi", "Pierre Dubois",
                "Anna Lindberg", "Carlos Romero", "Sofia Petrova", "Thomas Becker")
_SLUE_ORGS = ("European Commission", "Red Cross", "United Nations", "Council of Europe",
              "Central Bank", "World Bank", "Court of Justice", "Senate")
_SLUE_TEMPLATES = ("{person} from {city} spoke for the {org}.",  # short: must fit a 4 s clip
                   "In {city} {person} met the {org}.",
                   "{person} visited {city} with the {org}.")
_SLUE_QUESTIONS = (("Which city is mentioned in the audio?", "PLACE", _SLUE_CITIES),
                   ("Which person is mentioned in the audio?", "PERSON", _SLUE_PEOPLE),
                   ("Which organization is mentioned in the audio?", "ORG", _SLUE_ORGS))


def _write_slue(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("SLUE")
    sr = 16000
    files: list[str] = []
    items = []
    kinds = _balanced(rng, len(_SLUE_QUESTIONS), ctx.n)
    for i, (kind, pos) in enumerate(zip(kinds, _balanced(rng, 4, ctx.n))):
        entities = {"city": _pick(rng, _SLUE_CITIES), "person": _pick(rng, _SLUE_PEOPLE),
                    "org": _pick(rng, _SLUE_ORGS)}
        sentence = _pick(rng, _SLUE_TEMPLATES).format(**entities)
        voice = Voice(_pick(rng, _MALE + _FEMALE), pitch=int(rng.integers(40, 60)), speed=175)
        filler = _sentences(rng, _PARLIAMENT)
        lead = _fact_lead(rng, sentence, filler, voice, ctx.seconds)
        audio, spoken = ctx.speech(rng, voice, filler, sr, lead)
        name = f"slue_synth_{i:05d}.wav"
        folder = _SLUE_AUDIO[ctx.layout]
        files.append(ctx.write_audio(f"SLUE/{folder}/{name}", audio, sr))
        question, _, pool = _SLUE_QUESTIONS[kind]
        correct = entities[("city", "person", "org")[kind]]
        options = _choices(rng, correct, pool, 4, pos)
        items.append({"path": f"{folder}/{name}", "question": question, **_choice_fields(options),
                      "answer_gt": _LETTERS[pos], "task_name": "named_entity_recognition",
                      "dataset_name": "slue-voxpopuli", "entity_count": 3,
                      "entity_types": [t for _, t, _ in _SLUE_QUESTIONS],
                      "source_count": len(spoken), "audio_duration_info": f"{ctx.seconds:.2f}s",
                      "source_folder": folder, "source_file": name, "uniq_id": f"slue_{i:05d}"})
    files.append(ctx.write_json("SLUE/merged_audio_data.json", items))
    return files


# --------------------------------------------------------------------------- 4. TAU scenes


def _babble(rng: np.random.Generator, n: int, sr: int, talkers: int) -> np.ndarray:
    """Crowd murmur: speech-band noise gated at syllable rate, one stream per talker."""
    out = np.zeros((n, 2))
    loop = min(n, 10 * sr)  # a 10 s noise loop under an independent gate does not audibly repeat
    for _ in range(talkers):
        voice = np.roll(np.resize(_band_noise(rng, loop, sr, 200, 3500, -4), n),
                        int(rng.integers(loop)))
        gate = np.clip(_slow_env(rng, n, sr, 8, -0.6, 1.0), 0, None)
        gate *= np.sqrt(gate)  # ** 1.5 sharpens syllable onsets
        out += _pan(voice * gate, rng.uniform(-0.8, 0.8))
    return out / talkers


def _chime(sr: int, notes: Sequence[float]) -> np.ndarray:
    parts = [_decay_tone(sr, [f, 2 * f, 3 * f], [1, 0.3, 0.1], 1.4, 0.45) for f in notes]
    step = int(0.45 * sr)
    out = np.zeros(step * (len(parts) - 1) + len(parts[-1]))
    for j, p in enumerate(parts):
        _add(out, p, j * step)
    return out


def _stereo_bed(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float,
                tilt: float) -> np.ndarray:
    return np.stack([_band_noise(rng, n, sr, lo, hi, tilt) for _ in range(2)], axis=1)


def _place(rng: np.random.Generator, out: np.ndarray, sr: int, make: Callable[[], np.ndarray],
           every: tuple[float, float], gain: float) -> None:
    """Scatter events from make() across the clip with gaps drawn from `every` seconds."""
    t = rng.uniform(0, every[0])
    while t < len(out) / sr:
        _add(out, _pan(make() * gain, rng.uniform(-0.7, 0.7)), int(t * sr))
        t += rng.uniform(*every)


def _scene_airport(rng, n, sr):
    out = 0.5 * _babble(rng, n, sr, 4) + 0.15 * _stereo_bed(rng, n, sr, 40, 2000, -6)
    _place(rng, out, sr, lambda: _chime(sr, (659, 523, 392)), (10, 18), 0.5)
    return out


def _scene_shopping_mall(rng, n, sr):
    out = 0.6 * _babble(rng, n, sr, 6) + 0.05 * _stereo_bed(rng, n, sr, 60, 6000, -3)
    music = np.zeros(n)
    for j, start in enumerate(range(0, n, 2 * sr)):  # background music: chords and a melody
        root = (220, 175, 196, 165)[j % 4]
        _add(music, _decay_tone(sr, [root, root * 1.26, root * 1.5], [1, .7, .7], 2.0, 1.5), start)
        for beat in range(4):
            f = root * 2 * (1, 1.125, 1.26, 1.5, 1.68)[int(rng.integers(5))]
            _add(music, 0.5 * _decay_tone(sr, [f, 2 * f], [1, .3], 0.5, 0.2), start + beat * sr // 2)
    return out + 0.3 * _pan(music, 0.0)


def _scene_metro_station(rng, n, sr):
    out = 0.35 * _babble(rng, n, sr, 3) + 0.1 * _stereo_bed(rng, n, sr, 30, 1000, -6)

    def train() -> np.ndarray:
        m = int(rng.uniform(8, 12) * sr)
        body = _band_noise(rng, m, sr, 30, 600, -6) * np.hanning(m)
        squeal = np.sin(2 * np.pi * rng.uniform(2500, 3500) * np.arange(m) / sr)
        return body + 0.15 * squeal * np.hanning(m) ** 4

    _place(rng, out, sr, train, (14, 22), 0.8)
    _place(rng, out, sr, lambda: _chime(sr, (523, 659, 784)), (15, 25), 0.35)
    return out


def _footsteps(rng, n, sr, walkers):
    out = np.zeros((n, 2))
    step = _band_noise(rng, int(0.06 * sr), sr, 80, 1500) * np.exp(-np.arange(int(0.06 * sr)) / (0.012 * sr))
    for _ in range(walkers):
        period = rng.uniform(0.45, 0.6)
        pan = rng.uniform(-0.8, 0.8)
        t0 = rng.uniform(0, 2)
        for t in np.arange(t0, n / sr, period):
            _add(out, _pan(step * rng.uniform(0.4, 1.0), pan), int(t * sr))
    return out


def _scene_street_pedestrian(rng, n, sr):
    return (0.35 * _babble(rng, n, sr, 3) + 0.5 * _footsteps(rng, n, sr, 4)
            + 0.12 * _stereo_bed(rng, n, sr, 30, 800, -6))


def _scene_public_square(rng, n, sr):
    fountain = 0.25 * _stereo_bed(rng, n, sr, 1000, 9000, 0)
    out = 0.4 * _babble(rng, n, sr, 4) + fountain + 0.1 * _stereo_bed(rng, n, sr, 30, 500, -6)

    def coo() -> np.ndarray:
        m = int(0.5 * sr)
        f0 = 330 * (1 + 0.15 * np.sin(np.pi * np.arange(m) / m))
        return _harmonic(sr, f0, m, [1, .4, .1]) * np.hanning(m) * (1 + np.sin(2 * np.pi * 12 * np.arange(m) / sr)) / 2

    _place(rng, out, sr, coo, (3, 8), 0.25)
    return out


def _scene_street_traffic(rng, n, sr):
    out = 0.45 * _stereo_bed(rng, n, sr, 20, 250, -6)

    def car() -> np.ndarray:
        m = int(rng.uniform(2.5, 4.0) * sr)
        swell = np.hanning(m) ** 2
        f0 = rng.uniform(70, 110) * np.linspace(1.1, 0.9, m)  # Doppler drop as it passes
        engine = _harmonic(sr, f0, m, [1, .6, .4, .3, .2, .1])
        return (_band_noise(rng, m, sr, 100, 2500, -3) + 0.5 * engine) * swell

    def pass_by() -> np.ndarray:
        c = car()
        pan = np.linspace(-0.9, 0.9, len(c)) * rng.choice([-1, 1])  # moving left-right
        angle = (pan + 1) * np.pi / 4
        return np.stack([c * np.cos(angle), c * np.sin(angle)], axis=1)

    t = rng.uniform(0, 2)
    while t < n / sr:
        _add(out, 0.6 * pass_by(), int(t * sr))
        t += rng.uniform(2.0, 5.0)
    _place(rng, out, sr, lambda: _fades(np.sign(np.sin(2 * np.pi * 420 * np.arange(int(0.35 * sr)) / sr)), sr),
           (12, 25), 0.08)
    return out


def _rail(rng, n, sr, level):
    return level * _stereo_bed(rng, n, sr, 30, 1500, -4) * _slow_env(rng, n, sr, 0.3, 0.7, 1.0)[:, None]


def _scene_tram(rng, n, sr):
    out = _rail(rng, n, sr, 0.3)
    t = np.arange(n) / sr
    cycle = 20.0  # accelerate, cruise, brake
    phase = (t % cycle) / cycle
    speed = np.clip(np.minimum(phase / 0.3, (1 - phase) / 0.2), 0, 1)
    whine = _harmonic(sr, 150 + 550 * speed, n, [1, .5, .3]) * (0.2 + 0.8 * speed)
    out += 0.12 * _pan(whine, 0.1)
    _place(rng, out, sr, lambda: _decay_tone(sr, [1250, 3100, 5300], [1, .5, .3], 1.2, 0.3),
           (12, 20), 0.3)
    return out


def _scene_bus(rng, n, sr):
    out = 0.35 * _stereo_bed(rng, n, sr, 25, 500, -6)
    f0 = 38 + 12 * _slow_env(rng, n, sr, 0.15, 0, 1)  # gear changes move the engine note
    hum = _harmonic(sr, f0, n, [1, .8, .6, .5, .35, .25, .15, .1])
    out += 0.3 * _pan(hum, 0.0)

    def door_hiss() -> np.ndarray:
        m = int(1.2 * sr)
        return _band_noise(rng, m, sr, 2000, 8000) * np.exp(-np.arange(m) / (0.4 * sr))

    _place(rng, out, sr, door_hiss, (15, 25), 0.2)
    return out


def _scene_metro(rng, n, sr):
    out = _rail(rng, n, sr, 0.55)
    clack = _band_noise(rng, int(0.05 * sr), sr, 100, 4000) * np.exp(-np.arange(int(0.05 * sr)) / (0.008 * sr))
    period = rng.uniform(0.8, 1.1)  # wheel pairs over rail joints: clack-clack
    for t in np.arange(0.2, n / sr, period):
        for offset in (0.0, 0.12):
            _add(out, _pan(0.9 * clack, 0.0), int((t + offset) * sr))

    def screech() -> np.ndarray:
        m = int(rng.uniform(1.0, 2.5) * sr)
        f = rng.uniform(3000, 4200) * (1 + 0.01 * np.sin(2 * np.pi * 6 * np.arange(m) / sr))
        return _harmonic(sr, f, m, [1]) * np.hanning(m)

    _place(rng, out, sr, screech, (10, 20), 0.08)
    return out


def _scene_park(rng, n, sr):
    wind = _stereo_bed(rng, n, sr, 20, 600, -6) * _slow_env(rng, n, sr, 0.25, 0.2, 1.0)[:, None]
    out = 0.15 * wind + 0.03 * _stereo_bed(rng, n, sr, 2000, 8000, 0)  # leaves

    def song() -> np.ndarray:
        notes = []
        base = rng.uniform(2500, 4500)
        for _ in range(int(rng.integers(3, 9))):
            m = int(rng.uniform(0.05, 0.14) * sr)
            sweep = base * rng.uniform(0.8, 1.2) * np.linspace(1.0, rng.uniform(0.7, 1.4), m)
            notes.append(_harmonic(sr, sweep, m, [1, .15]) * np.hanning(m))
            notes.append(np.zeros(int(rng.uniform(0.03, 0.1) * sr)))
        return np.concatenate(notes)

    _place(rng, out, sr, song, (0.8, 3.0), 0.3)
    return out


_SCENE_SYNTHS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "airport": _scene_airport, "shopping_mall": _scene_shopping_mall,
    "metro_station": _scene_metro_station, "street_pedestrian": _scene_street_pedestrian,
    "public_square": _scene_public_square, "street_traffic": _scene_street_traffic,
    "tram": _scene_tram, "bus": _scene_bus, "metro": _scene_metro, "park": _scene_park,
}


def _tau_relpath(code: str, index: int) -> str:
    """Relative to TAU/; the folder is the full scene code (metro_station is not metro)."""
    return f"audio/{code}/{code}-synth-{index:03d}-a.wav"


def _write_tau(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("TAU")
    sr = 48000
    files: list[str] = []
    items = []
    labels = _balanced(rng, len(TAU_SCENES), ctx.n)
    for i, (label, pos) in enumerate(zip(labels, _balanced(rng, 4, ctx.n))):
        option = TAU_SCENES[label]
        code = label_code(option)
        audio = _normalize(_SCENE_SYNTHS[code](rng, ctx.samples(sr), sr), 0.7)
        rel = _tau_relpath(code, i)
        files.append(ctx.write_audio(f"TAU/{rel}", audio, sr))
        options = _choices(rng, option, TAU_SCENES, 4, pos)
        items.append({"path": rel,
                      "question": "What type of acoustic scene is represented in this audio segment?",
                      **_choice_fields(options), "answer_gt": _LETTERS[pos],
                      "task_name": "acoustic_scene_classification",
                      "dataset_name": "TAU-urban-acoustic-scenes-2020-mobile",
                      "scene_label": code, "uniq_id": f"tau_{i:05d}"})
    files.append(ctx.write_json("TAU/acoustic_scene_task_meta.json", items))
    return files


# --------------------------------------------------------------------------- 5. GTZAN music


def _midi(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


_TIMBRES = {  # harmonic amplitudes and (attack s, decay time constant s or None = sustained)
    "strings": ([1, .5, .33, .25, .2, .16, .12, .1], (0.25, None)),
    "piano": ([1, .45, .25, .12, .08, .05], (0.004, 0.6)),
    "pluck": ([1, .6, .4, .3, .2, .12, .08], (0.003, 0.25)),
    "organ": ([1, .8, .6, 0, .3, 0, 0, .2], (0.01, None)),
    "square": ([1, 0, .33, 0, .2, 0, .14, 0, .11, 0, .09], (0.003, None)),
    "saw": ([1, .5, .33, .25, .2, .17, .14, .12, .11, .1], (0.005, None)),
    "bass": ([1, .35, .1], (0.005, 0.5)),
    "lead": ([1, .3, .15, .05], (0.02, None)),
}


@lru_cache(maxsize=512)
def _note(sr: int, timbre: str, midi: float, length: int) -> np.ndarray:
    """One note (cached: songs repeat the same notes); vibrato on sustained timbres."""
    amps, (attack, tau) = _TIMBRES[timbre]
    t = np.arange(length) / sr
    f0 = _midi(midi) * (1 + (0.003 * np.sin(2 * np.pi * 5.5 * t) if tau is None else 0.0))
    x = _harmonic(sr, f0, length, amps)
    env = np.minimum(1.0, t / attack)
    env = env * (np.exp(-t / tau) if tau else 1.0)
    out = _fades(x * env, sr, 0.02 if tau is None else 0.005)
    out.flags.writeable = False
    return out


def _chord(sr: int, timbre: str, notes: Sequence[float], length: int, strum: float = 0.0) -> np.ndarray:
    out = np.zeros(length + int(strum * sr * len(notes)))
    for j, m in enumerate(notes):
        _add(out, _note(sr, timbre, m, length), int(j * strum * sr))
    return out / len(notes)


def _drum_kit(rng: np.random.Generator, sr: int) -> dict[str, np.ndarray]:
    def burst(lo, hi, dur, tau):
        m = int(dur * sr)
        return _band_noise(rng, m, sr, lo, hi) * np.exp(-np.arange(m) / (tau * sr)) / 3

    t = np.arange(int(0.35 * sr)) / sr
    kick = np.sin(2 * np.pi * np.cumsum(50 + 110 * np.exp(-t / 0.03)) / sr) * np.exp(-t / 0.12)
    ts = np.arange(int(0.2 * sr)) / sr
    snare = burst(1000, 8000, 0.2, 0.05) + 0.5 * np.sin(2 * np.pi * 190 * ts) * np.exp(-ts / 0.03)
    ride_tone = _decay_tone(sr, [3200, 4700, 6100], [.3, .2, .15], 0.8, 0.35)
    return {"kick": kick, "snare": snare, "hat": burst(6000, 10500, 0.06, 0.012),
            "open_hat": burst(5000, 10500, 0.35, 0.12),
            "ride": burst(4000, 10500, 0.8, 0.3) * 0.5 + ride_tone,
            "crash": burst(3000, 10500, 2.0, 0.7)}


class _Song:
    """A beat grid to drop notes and drum hits onto."""

    def __init__(self, rng: np.random.Generator, n: int, sr: int, bpm: float) -> None:
        self.rng, self.sr, self.out = rng, sr, np.zeros(n)
        self.beat = 60.0 / bpm
        self.n_beats = int(n / sr / self.beat) + 1
        self.kit = _drum_kit(rng, sr)

    def hit(self, beat: float, sig: np.ndarray, gain: float) -> None:
        _add(self.out, sig * gain * self.rng.uniform(0.85, 1.0), int(beat * self.beat * self.sr))

    def drum(self, beat: float, name: str, gain: float) -> None:
        self.hit(beat, self.kit[name], gain)

    def note(self, beat: float, timbre: str, midi: float, beats: float, gain: float) -> None:
        self.hit(beat, _note(self.sr, timbre, midi, int(beats * self.beat * self.sr)), gain)

    def chord(self, beat: float, timbre: str, notes: Sequence[float], beats: float, gain: float,
              strum: float = 0.0) -> None:
        self.hit(beat, _chord(self.sr, timbre, notes, int(beats * self.beat * self.sr), strum), gain)

    def bars(self) -> range:
        return range(0, self.n_beats, 4)


def _triad(root: float, minor: bool = False, seventh: bool = False, maj7: bool = False) -> list[float]:
    notes = [root, root + (3 if minor else 4), root + 7]
    if seventh or maj7:
        notes.append(root + (11 if maj7 else 10))
    return notes


def _genre_blues(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(80, 92))
    key = 45 + int(rng.integers(0, 5))
    twelve = (0, 5, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7)
    swing = 2 / 3  # shuffle: the off-beat lands on the third triplet
    for b, bar in enumerate(s.bars()):
        root = key + twelve[b % 12]
        for beat in range(4):
            for off in (0, swing):
                s.chord(bar + beat + off, "piano", _triad(root + 12, seventh=True), 0.3, 0.35)
            walk = (0, 4, 7, 9)[beat]
            s.note(bar + beat, "bass", root - 12 + walk, 0.9, 0.6)
            s.drum(bar + beat, "hat", 0.4)
            s.drum(bar + beat + swing, "hat", 0.3)
        for beat in (0, 2):
            s.drum(bar + beat, "kick", 0.6)
        for beat in (1, 3):
            s.drum(bar + beat, "snare", 0.4)
    return s.out


def _genre_classical(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(60, 72))
    key = 55 + int(rng.integers(0, 5))
    progression = ((0, False), (9, True), (5, False), (7, False))
    scale = (0, 2, 4, 5, 7, 9, 11, 12)
    for b, bar in enumerate(s.bars()):
        degree, minor = progression[b % 4]
        s.chord(bar, "strings", _triad(key + degree - 12, minor) + [key + degree], 4.2, 0.5)
        for beat in range(4):  # a slow melody over the chords, no percussion at all
            s.note(bar + beat, "strings", key + 12 + scale[int(rng.integers(len(scale)))], 1.1, 0.25)
    return s.out


def _genre_country(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(100, 115))
    key = 43 + int(rng.integers(0, 5))
    progression = (0, 5, 7, 0)
    for b, bar in enumerate(s.bars()):
        root = key + progression[b % 4]
        s.note(bar, "bass", root - 12, 0.9, 0.7)  # boom ...
        s.note(bar + 2, "bass", root - 5, 0.9, 0.7)
        for beat in (1, 3):  # ... chick: strummed acoustic chords
            s.chord(bar + beat, "pluck", _triad(root + 12), 0.9, 0.6, strum=0.015)
            s.drum(bar + beat, "snare", 0.25)
        for eighth in range(8):
            s.drum(bar + eighth / 2, "hat", 0.15)
    return s.out


def _genre_disco(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(118, 122))
    key = 45 + int(rng.integers(0, 5))
    progression = (0, 5)
    for b, bar in enumerate(s.bars()):
        root = key + progression[b % 2]
        for beat in range(4):
            s.drum(bar + beat, "kick", 0.8)  # four on the floor
            s.drum(bar + beat + 0.5, "open_hat", 0.35)
            s.note(bar + beat, "bass", root - 12, 0.45, 0.6)  # octave bass
            s.note(bar + beat + 0.5, "bass", root, 0.45, 0.5)
            s.chord(bar + beat + 0.5, "strings", _triad(root + 12, minor=True, seventh=True), 0.4, 0.3)
        for beat in (1, 3):
            s.drum(bar + beat, "snare", 0.5)
    return s.out


def _genre_hiphop(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(85, 95))
    key = 41 + int(rng.integers(0, 5))
    progression = ((0, True), (8, False))
    for b, bar in enumerate(s.bars()):
        root, _ = progression[b % 2]
        for beat in (0, 1.75, 2.5):  # boom-bap kick pattern with a sub bass under it
            s.drum(bar + beat, "kick", 0.9)
            s.note(bar + beat, "bass", key + root - 12, 0.7, 0.8)
        for beat in (1, 3):
            s.drum(bar + beat, "snare", 0.7)
        for eighth in range(8):
            s.drum(bar + eighth / 2 + (0.08 if eighth % 2 else 0), "hat", 0.25)
        s.chord(bar, "piano", _triad(key + root + 12, minor=progression[b % 2][1]), 2.0, 0.25)
    return s.out


def _genre_jazz(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(125, 150))
    key = 48 + int(rng.integers(0, 5))
    ii_v_i = ((2, True, False), (7, False, False), (0, False, True), (0, False, True))
    swing = 2 / 3
    for b, bar in enumerate(s.bars()):
        degree, minor, maj7 = ii_v_i[b % 4]
        root = key + degree
        chord = _triad(root, minor=minor, seventh=not maj7, maj7=maj7)
        for beat in range(4):
            s.drum(bar + beat, "ride", 0.3)  # ding ding-da ding
            s.note(bar + beat, "bass", root - 24 + (0, 3 if minor else 4, 7, 6)[beat], 0.95, 0.6)
        s.drum(bar + 1 + swing, "ride", 0.2)
        s.drum(bar + 3 + swing, "ride", 0.2)
        for beat in (1, 3):
            s.drum(bar + beat, "hat", 0.2)
        s.chord(bar + rng.choice([0.0 + swing, 1 + swing, 2.0]), "piano", chord, 0.6, 0.35)
    return s.out


def _distort(x: np.ndarray, drive: float) -> np.ndarray:
    return np.tanh(drive * x) / np.tanh(drive)


def _genre_metal(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(150, 175))
    guitar = _Song(rng, n, sr, 60 / s.beat)
    key = 40 + int(rng.integers(0, 3))
    riff = (0, 0, 0, 3, 0, 0, 5, 6)
    for b, bar in enumerate(s.bars()):
        for eighth in range(8):
            root = key + riff[eighth] + (7 if b % 4 == 3 else 0)
            guitar.chord(bar + eighth / 2, "square", [root, root + 7, root + 12], 0.45, 1.0)
        for sixteenth in range(16):
            s.drum(bar + sixteenth / 4, "kick", 0.5)  # double bass drum
        for beat in (1, 3):
            s.drum(bar + beat, "snare", 0.7)
        if b % 4 == 0:
            s.drum(bar, "crash", 0.5)
    return s.out + 0.5 * _distort(_normalize(guitar.out, 1.0), 8.0)


def _genre_pop(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(110, 120))
    key = 48 + int(rng.integers(0, 5))
    progression = ((0, False), (7, False), (9, True), (5, False))  # I-V-vi-IV
    pentatonic = (0, 2, 4, 7, 9, 12)
    for b, bar in enumerate(s.bars()):
        degree, minor = progression[b % 4]
        s.chord(bar, "saw", _triad(key + degree, minor), 4.0, 0.18)
        for eighth in range(8):
            s.note(bar + eighth / 2, "bass", key + degree - 24, 0.45, 0.45)
            s.drum(bar + eighth / 2, "hat", 0.2)
        for beat in (0, 2):
            s.drum(bar + beat, "kick", 0.7)
        for beat in (1, 3):
            s.drum(bar + beat, "snare", 0.5)
        for beat in range(4):
            s.note(bar + beat, "lead", key + 12 + pentatonic[int(rng.integers(len(pentatonic)))], 0.9, 0.25)
    return s.out


def _genre_reggae(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(72, 78))
    key = 45 + int(rng.integers(0, 5))
    progression = ((0, False), (5, False), (7, False), (5, False))
    for b, bar in enumerate(s.bars()):
        degree, minor = progression[b % 4]
        root = key + degree
        for beat in range(4):  # the skank: short chords on every off-beat
            s.chord(bar + beat + 0.5, "organ", _triad(root + 12, minor), 0.2, 0.4)
            s.drum(bar + beat + 0.5, "hat", 0.15)
        s.drum(bar + 2, "kick", 0.8)  # one drop: kick and rim together on beat three
        s.drum(bar + 2, "snare", 0.4)
        for beat, step in ((0, 0), (0.75, 7), (1.5, 12), (2.5, 7), (3.25, 5)):
            s.note(bar + beat, "bass", root - 12 + step, 0.6, 0.7)
    return s.out


def _genre_rock(rng, n, sr):
    s = _Song(rng, n, sr, rng.uniform(120, 140))
    guitar = _Song(rng, n, sr, 60 / s.beat)
    key = 45 + int(rng.integers(0, 5))
    progression = (0, 10, 5, 0)  # I-bVII-IV-I
    for b, bar in enumerate(s.bars()):
        root = key + progression[b % 4]
        for eighth in range(8):
            guitar.chord(bar + eighth / 2, "saw", [root, root + 7, root + 12], 0.5, 1.0)
            s.note(bar + eighth / 2, "bass", root - 12, 0.45, 0.4)
            s.drum(bar + eighth / 2, "hat", 0.2)
        for beat in (0, 2, 2.5):
            s.drum(bar + beat, "kick", 0.7)
        for beat in (1, 3):
            s.drum(bar + beat, "snare", 0.6)
        if b % 8 == 0:
            s.drum(bar, "crash", 0.3)
    return s.out + 0.4 * _distort(_normalize(guitar.out, 1.0), 3.0)


_GENRE_SYNTHS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "blues": _genre_blues, "classical": _genre_classical, "country": _genre_country,
    "disco": _genre_disco, "hiphop": _genre_hiphop, "jazz": _genre_jazz, "metal": _genre_metal,
    "pop": _genre_pop, "reggae": _genre_reggae, "rock": _genre_rock,
}


def _write_gtzan(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("GTZAN")
    sr = 22050
    files: list[str] = []
    items = []
    labels = _balanced(rng, len(GTZAN_GENRES), ctx.n)
    for i, (label, pos) in enumerate(zip(labels, _balanced(rng, 4, ctx.n))):
        option = GTZAN_GENRES[label]
        code = label_code(option)
        audio = _fade_out(_normalize(_GENRE_SYNTHS[code](rng, ctx.samples(sr), sr), 0.8), sr, 0.5)
        rel = f"{code}/{code}.{i:05d}.wav"
        files.append(ctx.write_audio(f"GTZAN/wav/{rel}", audio, sr))
        options = _choices(rng, option, GTZAN_GENRES, 4, pos)
        items.append({"path": rel,
                      "question": "What music genre is represented in this audio segment?",
                      **_choice_fields(options), "answer_gt": _LETTERS[pos],
                      "genre_label": code, "uniq_id": f"gtzan_{i:05d}"})
    files.append(ctx.write_json("GTZAN/music_genre_classification_meta.json", items))
    return files


# --------------------------------------------------------------------------- 6. DESED events


def _ev_alarm_bell(rng, sr, length):
    t = np.arange(length) / sr
    f = rng.uniform(800, 1100)
    bell = sum(a * np.sin(2 * np.pi * f * r * t) for r, a in ((1, 1), (2.76, .5), (5.4, .25)))
    strike = np.exp(-(t % (1 / 18)) / 0.02)  # hammer hits the bell ~18 times a second
    return bell * strike


def _ev_blender(rng, sr, length):
    # motor whine whose speed wobbles as the load in the jug changes, over grinding noise
    f0 = rng.uniform(180, 260) * (1 + 0.05 * _slow_env(rng, length, sr, 4, -1, 1))
    motor = _harmonic(sr, f0, length, [1, .8, .7, .6, .5, .4, .35, .3, .25, .2])
    return motor / 3 + 0.3 * _band_noise(rng, length, sr, 500, 6000, -2)


def _ev_cat(rng, sr, length):
    t = np.linspace(0, 1, length)
    f0 = rng.uniform(450, 600) * (1 + 0.5 * np.sin(np.pi * t ** 0.8))  # mi-a-ow contour
    return _harmonic(sr, f0, length, [1, .7, .5, .3, .2]) * np.sin(np.pi * t) ** 0.5


def _ev_dishes(rng, sr, length):
    out = np.zeros(length)
    for _ in range(int(rng.integers(3, 8))):
        freqs = rng.uniform(2000, 7000, 3)
        clink = _decay_tone(sr, freqs, [1, .6, .4], rng.uniform(0.1, 0.3), rng.uniform(0.02, 0.06))
        _add(out, clink, int(rng.uniform(0, max(1, length - len(clink)))))
    return out


def _ev_dog(rng, sr, length):
    out = np.zeros(length)
    t = 0
    while t < length:
        m = int(rng.uniform(0.12, 0.22) * sr)
        f0 = rng.uniform(450, 650) * np.linspace(1.1, 0.8, m)
        bark = _harmonic(sr, f0, m, [1, .8, .6, .4, .3]) / 2 + 0.3 * _band_noise(rng, m, sr, 300, 3000)
        _add(out, bark * np.exp(-np.linspace(0, 4, m)) * np.minimum(1, np.arange(m) / (0.005 * sr)), t)
        t += m + int(rng.uniform(0.15, 0.4) * sr)
    return out


def _ev_shaver(rng, sr, length):
    f0 = rng.uniform(110, 220)
    buzz = _harmonic(sr, f0, length, [1 / k for k in range(1, 40)])
    return buzz * (1 + 0.1 * np.sin(2 * np.pi * 3 * np.arange(length) / sr))


def _ev_frying(rng, sr, length):
    out = 0.15 * _band_noise(rng, length, sr, 3000, 7500)  # sizzle
    pops = (rng.random(length) < 60 / sr) * rng.uniform(-1, 1, length)  # ~60 crackles a second
    return out + np.convolve(pops, np.exp(-np.arange(24) / 3.0), "same")  # short: broadband


def _ev_water(rng, sr, length):
    # babbling stream: many small bubbles (rising, fast-decaying tones) over band-passed noise
    out = 0.2 * _band_noise(rng, length, sr, 400, 4000) * _slow_env(rng, length, sr, 30, 0.5, 1.0)
    m = int(0.03 * sr)
    t = np.arange(m) / sr
    for start in rng.integers(0, max(1, length - m), int(length / sr * 80)):
        f = rng.uniform(500, 2500) * (1 + 40 * t)
        _add(out, np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / rng.uniform(0.004, 0.012))
             * rng.uniform(0.2, 0.6), int(start))
    return out


def _ev_vacuum(rng, sr, length):
    # steady roar plus the high fan whine that distinguishes it from water or frying
    whine = _harmonic(sr, rng.uniform(1100, 1600), length, [1, .3])
    return _band_noise(rng, length, sr, 80, 6000, -3) + 0.6 * whine


_EVENT_SYNTHS: dict[str, tuple[Callable, tuple[float, float]]] = {  # synth, length range (s)
    "Alarm bell ringing": (_ev_alarm_bell, (1.5, 4.0)), "Blender": (_ev_blender, (2.0, 5.0)),
    "Cat": (_ev_cat, (0.6, 1.2)), "Dishes": (_ev_dishes, (1.0, 2.0)), "Dog": (_ev_dog, (0.8, 2.0)),
    "Electric shaver/toothbrush": (_ev_shaver, (2.0, 4.0)), "Frying": (_ev_frying, (3.0, 8.0)),
    "Running water": (_ev_water, (2.0, 6.0)), "Vacuum cleaner": (_ev_vacuum, (3.0, 8.0)),
}


def _desed_clip(ctx: _Ctx, rng: np.random.Generator, event: str, sr: int) -> np.ndarray:
    n = ctx.samples(sr)
    out = 0.003 * _band_noise(rng, n, sr, 50, 4000, -6)  # quiet room tone, no event-like sound
    sentences = _sentences(rng, _SHORT_NARRATIVE)
    synth, lengths = _EVENT_SYNTHS.get(event, (None, (2.0, 3.5)))

    def make(length: int) -> np.ndarray:
        if synth is None:  # Speech: a short utterance, cut to its slot
            voice = Voice(_pick(rng, _MALE + _FEMALE), pitch=int(rng.integers(35, 65)))
            return _trim_silence(_speak(ctx.engine, next(sentences), voice, sr))[:length]
        return synth(rng, sr, length)

    slots = _event_times(rng, ctx.seconds, lambda: rng.uniform(*lengths), (0.5, 3.0))
    for start, length in slots or [(0.0, min(lengths[0], ctx.seconds * 0.8))]:
        sig = _fades(make(int(length * sr)), sr, 0.01)
        _add(out, 0.5 * _normalize(sig, 1.0) * rng.uniform(0.6, 1.0), int(start * sr))
    return out


def _write_desed(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("DESED")
    sr = 16000
    files: list[str] = []
    tasks = []
    labels = _balanced(rng, len(DESED_EVENTS), ctx.n)
    for i, (label, pos) in enumerate(zip(labels, _balanced(rng, 4, ctx.n))):
        event = DESED_EVENTS[label]
        folder = re.sub(r"[^A-Za-z]+", "_", event)  # 'Electric shaver/toothbrush' has a slash
        rel = f"audio/{folder}/desed_synth_{i:05d}_{folder}.wav"
        files.append(ctx.write_audio(f"DESED/{rel}", _desed_clip(ctx, rng, event, sr), sr))
        options = _choices(rng, event, DESED_EVENTS, 4, pos)
        tasks.append({"path": rel, "task_type": "event_identification",
                      "question": "Which sound event can be heard in this audio clip?",
                      "choices": dict(zip(_LETTERS, options)), "answer_gt": _LETTERS[pos],
                      "all_events": [event], "primary_event": event, "correct_event": event,
                      "path_extracted_event": folder, "uniq_id": f"desed_{i:05d}"})
    task_info = {"name": "DESED synthetic sound event identification",
                 "task_type": "event_identification", "num_tasks": len(tasks),
                 "event_classes": list(DESED_EVENTS), "sample_rate": sr,
                 "clip_seconds": ctx.seconds, "generator_version": GENERATOR_VERSION}
    files.append(ctx.write_json("DESED/desed_sound_event_detection_task.json",
                                {"task_info": task_info, "tasks": tasks}))
    return files


# --------------------------------------------------------------------------- 7. VESUS

# Prosody carries the emotion: (pitch, speed, amplitude, SSML range, tremolo depth)
_EMOTION_PROSODY = {
    "angry": (35, 195, 100, "x-high", 0.0),
    "happy": (75, 180, 85, "x-high", 0.0),
    "sad": (25, 110, 40, "x-low", 0.0),
    "fearful": (80, 210, 70, "high", 0.35),
    "monotone": (45, 150, 75, "0", 0.0),
}
_VESUS_VOICES = ("m2", "f1", "m3", "f2", "m4", "f3", "m5", "f4", "m6", "f5")  # person1..person10


def _tremolo(x: np.ndarray, sr: int, rate: float, depth: float) -> np.ndarray:
    return x * (1 - depth / 2 + depth / 2 * np.sin(2 * np.pi * rate * np.arange(len(x)) / sr))


def _write_vesus(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("VESUS")
    sr = 16000
    files: list[str] = []
    items = []
    labels = _balanced(rng, len(VESUS_EMOTIONS), ctx.n)
    for i, (label, pos) in enumerate(zip(labels, _balanced(rng, 4, ctx.n))):
        emotion = VESUS_EMOTIONS[label]
        # the benchmark drops person2 and person10 'happy' recordings; never generate them
        people = [p for p in range(1, 11) if not (emotion == "happy" and p in (2, 10))]
        person = people[int(rng.integers(len(people)))]
        pitch, speed, amplitude, pitch_range, tremolo = _EMOTION_PROSODY[emotion]
        voice = Voice(_VESUS_VOICES[person - 1], pitch, speed, amplitude, pitch_range)
        audio, _ = ctx.speech(rng, voice, _sentences(rng, _NARRATIVE), sr)
        if tremolo:
            audio = _tremolo(audio, sr, 7.0, tremolo)
        rel = f"audio/person{person}/{emotion}/person{person}_{emotion}_{i:05d}.wav"
        files.append(ctx.write_audio(f"VESUS/{rel}", audio, sr))
        options = _choices(rng, emotion.capitalize(), [e.capitalize() for e in VESUS_EMOTIONS], 4, pos)
        items.append({"path": rel, "question": "What emotion is expressed in this audio segment?",
                      **_choice_fields(options), "answer_gt": _LETTERS[pos],
                      "emotion_label": emotion, "person_id": f"person{person}"})
    files.append(ctx.write_json("VESUS/audio_emotion_dataset.json", items))
    return files


# --------------------------------------------------------------------------- 8. HAD


def _write_had(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("HAD")
    sr = 16000
    files: list[str] = []
    for label in ("real", "fake"):
        for i in range(ctx.n):
            female = bool(rng.integers(2))
            voice = Voice(_pick(rng, _FEMALE if female else _MALE), pitch=int(rng.integers(40, 60)))
            audio, _ = ctx.speech(rng, voice, _sentences(rng, _NARRATIVE), sr)
            if label == "fake":
                # half-truth: phrases replaced by a different voice of the opposite sex, its
                # pitch pushed further away (about an octave or more from the original)
                other = Voice(_pick(rng, _MALE if female else _FEMALE),
                              pitch=int(rng.integers(10, 25) if female else rng.integers(75, 95)))
                phrases = _sentences(rng, _NARRATIVE[:3])
                n_seg = max(1, round(ctx.seconds / 15))
                slot = len(audio) // n_seg
                for j in range(n_seg):
                    piece = _trim_silence(_speak(ctx.engine, next(phrases), other, sr))
                    piece = piece[:min(slot // 2, int(3.0 * sr))]
                    start = j * slot + int(rng.integers(0, slot - len(piece)))
                    _splice(audio, piece, start, sr)
            files.append(ctx.write_audio(f"HAD/{label}/HAD_{label}_{i:05d}.wav", audio, sr))
    return files


# --------------------------------------------------------------------------- 9./10. VoxCeleb

# Age carrier (a proxy, not a model of real ageing voices): older groups get a lower espeak
# pitch, a slower rate and growing amplitude tremor. (pitch, speed, tremor depth, age range)
_AGE_PROSODY = (
    (62, 185, 0.0, (18, 30)),
    (55, 172, 0.0, (31, 40)),
    (47, 160, 0.05, (41, 50)),
    (38, 142, 0.15, (51, 70)),
    (28, 120, 0.3, (71, 90)),
)


def _write_vox_age(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("VoxCeleb/age")
    sr = 16000
    files: list[str] = []
    items = []
    for i, group in enumerate(_balanced(rng, len(VOX_AGE_GROUPS), ctx.n)):
        pitch, speed, tremor, (age_lo, age_hi) = _AGE_PROSODY[group]
        speaker = f"id{10501 + i}"
        # one variant per sex: variant timbre and base F0 would otherwise swamp the age cue
        voice = Voice(_pick(rng, ("m3", "f2")), pitch=pitch, speed=speed)
        audio, _ = ctx.speech(rng, voice, _sentences(rng, _NARRATIVE), sr)
        if tremor:
            audio = _tremolo(audio, sr, 5.0, tremor)
        rel = f"{speaker}/00001.wav"
        files.append(ctx.write_audio(f"VoxCeleb/wav/{rel}", audio, sr))
        options = [VOX_AGE_GROUPS[int(j)] for j in rng.permutation(len(VOX_AGE_GROUPS))]
        items.append({"path": rel, "speaker_id_original": speaker,
                      "answer_gt": VOX_AGE_GROUPS[group],
                      "speaker_age": int(rng.integers(age_lo, age_hi + 1)),
                      "question": "What is the age group of the speaker in this audio segment?",
                      **_choice_fields(options)})
    files.append(ctx.write_json("VoxCeleb/age_classification_task_meta.json", items))
    return files


def _write_vox_gender(ctx: _Ctx) -> list[str]:
    rng = ctx.rng("VoxCeleb/gender")
    sr = 16000
    files: list[str] = []
    items = []
    genders = ["Male", "Female"] * ctx.n  # samples_per_task per class keeps them balanced
    order = [genders[int(j)] for j in rng.permutation(len(genders))]
    for i, gender in enumerate(order):
        speaker = f"id{10001 + i}"
        # pitch ranges keep every female voice above every male one
        voice = (Voice(_pick(rng, _MALE), pitch=int(rng.integers(35, 56))) if gender == "Male"
                 else Voice(_pick(rng, _FEMALE), pitch=int(rng.integers(45, 66))))
        audio, _ = ctx.speech(rng, voice, _sentences(rng, _NARRATIVE), sr)
        rel = f"{speaker}/00001.wav"
        files.append(ctx.write_audio(f"VoxCeleb/wav/{rel}", audio, sr))
        items.append({"path": rel,
                      "question": "What is the gender of the speaker in this audio segment?",
                      "choice_a": "Male", "choice_b": "Female", "answer_gt": gender,
                      "speaker_id_original": speaker, "uniq_id": f"vox_gender_{i:05d}"})
    files.append(ctx.write_json("VoxCeleb/gender_id_task_meta.json", items))
    return files


# --------------------------------------------------------------------------- public API

_WRITERS: tuple[tuple[str, Callable[[_Ctx], list[str]]], ...] = (
    ("LibriSpeech", _write_librispeech), ("RACE", _write_race), ("SLUE", _write_slue),
    ("TAU", _write_tau), ("GTZAN", _write_gtzan), ("DESED", _write_desed),
    ("VESUS", _write_vesus), ("HAD", _write_had), ("VoxCeleb", _write_vox_age),
    ("VoxCeleb", _write_vox_gender),
)


def build_synthetic_datasets(root: Path, *, seconds: float = 60.0, samples_per_task: int = 3,
                             seed: int = 0, layout: str = "flat") -> dict:
    """Write all 10 task datasets under root in the flat layout or the release tree and return (and write)
    the fixtures manifest (files relative to root, per dataset)."""
    if seconds <= 0 or samples_per_task < 1:
        raise ValueError("seconds must be > 0 and samples_per_task >= 1")
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(root, float(seconds), int(samples_per_task), int(seed), _detect_engine(), layout)
    for empty in _EMPTY_DIRS[layout]:
        (root / empty).mkdir(parents=True, exist_ok=True)
    tasks: dict[str, dict] = {d: {"n": 0, "files": []} for d in TASK_DIRS}
    # Threads overlap espeak-ng subprocesses with numpy work; each writer owns its rng and
    # its files, and results are merged in a fixed order, so output stays deterministic.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda entry: entry[1](ctx), _WRITERS))
    for (task_dir, _), files in zip(_WRITERS, results):
        tasks[task_dir]["files"] = sorted(tasks[task_dir]["files"] + files)
        tasks[task_dir]["n"] += sum(f.endswith((".wav", ".flac")) for f in files)
    manifest = {"generator_version": GENERATOR_VERSION, "seconds": ctx.seconds,
                "samples_per_task": ctx.n, "seed": ctx.seed, "speech_engine": ctx.engine.name,
                "layout": layout, "tasks": tasks}
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
