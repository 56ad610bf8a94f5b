"""DESED domestic sound events."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from ..tasks.labels import DESED_EVENTS
from .context import _FEMALE, _LETTERS, _MALE, GENERATOR_VERSION, _balanced, _choices, _Ctx, _pick
from .signal import (
    _add,
    _band_noise,
    _decay_tone,
    _event_times,
    _fades,
    _harmonic,
    _normalize,
    _slow_env,
    _trim_silence,
)
from .speech import Voice, _speak
from .text import _SHORT_NARRATIVE, _sentences

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
