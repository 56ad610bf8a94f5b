"""TAU acoustic scenes, procedurally from noise beds, babble, vehicles and chimes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..tasks.labels import TAU_SCENES, label_code
from .context import _LETTERS, _balanced, _choice_fields, _choices, _Ctx
from .signal import _add, _band_noise, _decay_tone, _fades, _harmonic, _normalize, _pan, _slow_env

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
