"""The speech tasks: LibriSpeech, RACE, SLUE, VESUS, HAD and VoxCeleb age and gender (labels carried by
what is said and how)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..tasks.labels import VESUS_EMOTIONS, VOX_AGE_GROUPS
from .context import _FEMALE, _LETTERS, _MALE, _SLUE_AUDIO, _balanced, _choice_fields, _choices, _Ctx, _pick
from .signal import _splice, _trim_silence
from .speech import Voice, _estimate_seconds, _speak, _speak_whole_sentences
from .text import _NARRATIVE, _PARLIAMENT, _SHORT_NARRATIVE, _sentences

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
