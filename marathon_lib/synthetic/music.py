"""GTZAN genres: songs with each genre's instruments, tempo and rhythm."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from ..tasks.labels import GTZAN_GENRES, label_code
from .context import _LETTERS, _balanced, _choice_fields, _choices, _Ctx
from .signal import _add, _band_noise, _decay_tone, _fade_out, _fades, _harmonic, _normalize

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
