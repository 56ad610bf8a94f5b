"""The ten AudioMarathon tasks. Prompt wording is the seed's (Qwen "Others" scripts, docs/seed.md);
option order and the letters follow each item's own choices (fixing the seed's fixed-order Vox-age prompt).

Folders: each task's folder in the release as downloaded (`Hezep/AudioMarathon`) and in the flat layout.
Published counts: the release's dataset card (6,563 items in all). Protocols: `scripts` applies the
original Qwen scripts' filters; `full` evaluates every published item."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from ..registry import Registry
from .base import PROTOCOLS, Sample, TaskSpec
from .folders import TaskFolders
from .loaders import UPPER, load_choice_manifest, load_had, load_librispeech
from .protocols import BalanceClasses, Exclude, MetaIs

TASKS: Registry[TaskSpec] = Registry("task")

SPEECH_CONTENT = "Speech Content Extraction"
AUDIO_CLASSIFICATION = "Audio Classification"
SPEAKER_INFORMATION = "Speaker Information"

CHOICE_TOKENS = 10  # room for "The answer is C." (the seed used 3-10, which can cut an answer off)
ASR_TOKENS = 1100  # multi-minute transcripts (seed Qwen value; never the seed's silent 1024 cap)


def letter_list(letters: Sequence[str]) -> str:
    """("A","B","C","D") -> "A, B, C, or D" as in the seed's reply instructions."""
    return ", ".join(letters[:-1]) + f", or {letters[-1]}" if len(letters) > 2 else " or ".join(letters)


def options(sample: Sample, sep: str) -> str:
    return "\n".join(f"{letter}{sep} {choice}" for letter, choice in zip(sample.letters, sample.choices))


def asr_prompt(sample: Sample) -> str:
    return (
        "Transcribe this audio accurately. Remove hesitation words like 'um', 'uh'. "
        "Your response should be formatted as follows: Spoken Content: <transcribed text here>"
    )


def race_prompt(sample: Sample) -> str:
    return (
        "Listen to this audio of a passage being read aloud, then answer the multiple-choice question "
        "based solely on the information from the audio.\n\n"
        f"Question: {sample.question}\n\nOptions:\n{options(sample, '.')}\n\n"
        f"Respond with only the letter of the correct option ({letter_list(sample.letters)})."
    )


def listen_and_select_prompt(sample: Sample) -> str:  # SLUE and DESED
    return (
        f"{sample.question}\n\n{options(sample, '.')}\n\n"
        f"Please listen to the audio and select the correct answer. Reply with only the letter ({letter_list(sample.letters)})."
    )


def tau_prompt(sample: Sample) -> str:
    return (
        "Listen to this audio and identify the acoustic scene. Choose the most appropriate option.\n"
        f"{options(sample, ':')}\nRespond with only the letter of your answer ({letter_list(sample.letters)})."
    )


def gtzan_prompt(sample: Sample) -> str:
    return (
        "Listen to this audio segment and identify the music genre based on what you hear.\n\n"
        f"Question: {sample.question}\n\nOptions:\n{options(sample, '.')}\n\n"
        f"Respond with only the letter of the correct option ({letter_list(sample.letters)})."
    )


def select_prompt(sample: Sample) -> str:  # VESUS and Vox age
    return f"{sample.question}\n\n{options(sample, ')')}\n\nPlease select the correct answer ({letter_list(sample.letters)})."


def had_prompt(sample: Sample) -> str:
    real, fake = sample.letters
    return (
        "Listen to this audio clip carefully. Is this audio completely authentic (real) or does it contain any "
        f"artificially synthesized segments (fake)? If it is completely real, answer '{real}'. If it contains any "
        f"fake segments, answer '{fake}'. Answer with only '{real}' or '{fake}'."
    )


def gender_prompt(sample: Sample) -> str:
    (first, second), (a, b) = (c.lower() for c in sample.choices), sample.letters
    return (
        f"Listen to this audio and identify the speaker's gender. Is this a {first} or {second} voice? "
        f"If it is a {first}, answer '{a}'. If it is a {second}, answer '{b}'. Answer with only '{a}' or '{b}'."
    )


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task: the suite's options, cases, data checks, report columns and categories all read TASKS."""
    unknown = set(spec.protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"{spec.name}: protocols {sorted(unknown)} are not among {list(PROTOCOLS)}")
    if spec.code in leaderboard_columns():
        raise ValueError(f"{spec.name}: leaderboard column {spec.code!r} is taken")
    return TASKS.register(spec.name, spec)


def leaderboard_columns() -> tuple[str, ...]:
    """Task codes in leaderboard order: by each spec's `column` (the paper's order: SER SCR ASR | SED MC ASC |
    SD ER SAR SGR), then the tasks without one in the order they were registered."""
    specs = [TASKS.get(name) for name in TASKS]
    placed = sorted((s for s in specs if s.column is not None), key=lambda s: s.column)
    return tuple(s.code for s in placed + [s for s in specs if s.column is None])


def category_columns() -> dict[str, tuple[str, ...]]:
    """Category -> its task codes, in leaderboard order (categories in the order of their first column)."""
    category = {TASKS.get(name).code: TASKS.get(name).category for name in TASKS}
    grouped: dict[str, tuple[str, ...]] = {}
    for code in leaderboard_columns():
        grouped[category[code]] = (*grouped.get(category[code], ()), code)
    return grouped


# The Qwen HAD and gender scripts down-sample the larger class with random.seed(42).
BALANCED = {"scripts": (BalanceClasses(seed=42),)}
RACE_MANIFEST = "race_benchmark.json"
SLUE_MANIFEST = "merged_audio_data.json"
TAU_MANIFEST = "acoustic_scene_task_meta.json"
GTZAN_MANIFEST = "music_genre_classification_meta.json"
DESED_MANIFEST = "desed_sound_event_detection_task.json"
VESUS_MANIFEST = "audio_emotion_dataset.json"
VOX_AGE_MANIFEST = "age_classification_task_meta.json"
VOX_GENDER_MANIFEST = "gender_id_task_meta.json"
VOX_RELEASE = "VoxCeleb/concatenated_audio"  # its sibling concatenated_audio_age/ is empty in the release


register_task(TaskSpec(
    name="LibriSpeech", code="ASR", category=SPEECH_CONTENT, column=3, load=load_librispeech, published=204,
    folders=TaskFolders(release="librispeech-long", flat="LibriSpeech", marker=("test-clean/",)),
    instruction="You are a helpful assistant that transcribes speech audio. Please listen carefully and provide "
    "the exact transcription of what is spoken in the audio.",
    format_prompt=asr_prompt, answer="text", max_new_tokens=ASR_TOKENS,
))
register_task(TaskSpec(
    name="RACE", code="SCR", category=SPEECH_CONTENT, column=2, published=820,
    folders=TaskFolders(release="race_audio", flat="RACE", marker=(RACE_MANIFEST,)),
    load=partial(load_choice_manifest, manifest=RACE_MANIFEST, what="RACE", layout="options",
                 answer_key="answer", path_key="audio_path", id_keys=("article_id", "question_idx"),
                 meta_keys=("article_id", "question_idx")),
    instruction="You are a helpful assistant that analyzes reading comprehension passages with audio narration. "
    "Please listen to the passage and answer the multiple-choice question based on what you heard.",
    format_prompt=race_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS, per_question_options=True,
))
register_task(TaskSpec(
    name="SLUE", code="SER", category=SPEECH_CONTENT, column=1, published=490,
    folders=TaskFolders(release="SLUE", flat="SLUE", marker=(SLUE_MANIFEST,)),
    load=partial(load_choice_manifest, manifest=SLUE_MANIFEST, what="SLUE",
                 meta_keys=("task_name", "entity_types", "entity_count")),
    instruction="You are a helpful assistant that analyzes speech audio for named entity recognition. "
    "Please listen carefully and extract the requested named entities from the speech.",
    format_prompt=listen_and_select_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    per_question_options=True,
))
register_task(TaskSpec(
    name="TAU", code="ASC", category=AUDIO_CLASSIFICATION, column=6, published=1145,
    folders=TaskFolders(release="TAU/concatenated_resampled", flat="TAU", marker=(TAU_MANIFEST,)),
    load=partial(load_choice_manifest, manifest=TAU_MANIFEST, what="TAU",
                 meta_keys=("scene_label",)),
    instruction="You are a helpful assistant that analyzes urban soundscape audio to identify acoustic scenes. "
    "Please listen to the audio carefully and classify the scene type.",
    format_prompt=tau_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
))
register_task(TaskSpec(
    name="GTZAN", code="MC", category=AUDIO_CLASSIFICATION, column=5, published=120,
    folders=TaskFolders(release="GTZAN/concatenated_audio", flat="GTZAN", marker=(GTZAN_MANIFEST,)),
    # Qwen/Voxtral scripts read <root>/wav/<path>, Phi-4 reads <root>/<path>: accept both.
    load=partial(load_choice_manifest, manifest=GTZAN_MANIFEST, what="GTZAN",
                 audio_dirs=("wav", ""), meta_keys=("genre_label",)),
    instruction="You are a helpful audio analysis assistant.",
    format_prompt=gtzan_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
))
register_task(TaskSpec(
    name="DESED", code="SED", category=AUDIO_CLASSIFICATION, column=4, published=254,
    folders=TaskFolders(release="DESED/DESED_dataset/concatenated_audio", flat="DESED", marker=(DESED_MANIFEST,)),
    load=partial(load_choice_manifest, manifest=DESED_MANIFEST, what="DESED",
                 layout="choices_dict", items_key="tasks", meta_keys=("task_type", "correct_event")),
    instruction="You are a helpful assistant that analyzes audio to detect and classify sound events. "
    "Please listen carefully and select the most appropriate answer from the given choices.",
    format_prompt=listen_and_select_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    per_question_options=True,
))
register_task(TaskSpec(
    name="VESUS", code="ER", category=SPEAKER_INFORMATION, column=8, published=185,
    folders=TaskFolders(release="VESUS", flat="VESUS", marker=(VESUS_MANIFEST,)),
    load=partial(load_choice_manifest, manifest=VESUS_MANIFEST, what="VESUS",
                 id_keys=("uniq_id",), meta_keys=("emotion_label", "person_id")),
    # the Qwen VESUS scripts drop "happy" for persons 2 and 10 ("person2", 2 and "2" alike)
    protocols={"scripts": (Exclude((MetaIs("person_id", ("2", "10"), digits=True),
                                    MetaIs("emotion_label", ("happy",)))),)},
    instruction="You are a helpful assistant that analyzes speech audio to recognize emotions. "
    "Please listen to the voice carefully and identify the emotional state of the speaker.",
    format_prompt=select_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    aliases={"angry": ("anger",), "happy": ("happiness", "joy"), "sad": ("sadness",),
             "fearful": ("fear", "afraid"), "monotone": ("neutral",)},
))
register_task(TaskSpec(
    name="HAD", code="SD", category=SPEAKER_INFORMATION, column=7, load=load_had, published=776,
    folders=TaskFolders(release="HAD/concatenated_audio", flat="HAD", marker=("real/", "fake/")),
    protocols=BALANCED, interleave=True,
    instruction="You are a helpful assistant that analyzes audio to determine authenticity.",
    format_prompt=had_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    aliases={"real": ("authentic", "genuine"),
             "fake": ("synthetic", "synthesized", "artificial", "artificially synthesized", "spoofed")},
))
register_task(TaskSpec(
    name="VoxAge", code="SAR", category=SPEAKER_INFORMATION, column=9, published=959,
    folders=TaskFolders(release=VOX_RELEASE, flat="VoxCeleb", marker=(VOX_AGE_MANIFEST,)),
    load=partial(load_choice_manifest, manifest=VOX_AGE_MANIFEST, what="VoxCeleb age",
                 n_choices=5, letters=UPPER[:5], id_keys=("uniq_id",), audio_dirs=("wav",),
                 meta_keys=("speaker_id_original", "speaker_age")),
    instruction="You are a helpful assistant that analyzes speech audio to estimate speaker age. "
    "Please listen to the voice carefully and classify the speaker's age group.",
    format_prompt=select_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
))
register_task(TaskSpec(
    name="VoxGender", code="SGR", category=SPEAKER_INFORMATION, column=10, published=1614,
    folders=TaskFolders(release=VOX_RELEASE, flat="VoxCeleb", marker=(VOX_GENDER_MANIFEST,)),
    load=partial(load_choice_manifest, manifest=VOX_GENDER_MANIFEST, what="VoxCeleb gender", n_choices=2,
                 letters=("a", "b"), audio_dirs=("wav",), meta_keys=("speaker_id_original",)),
    protocols=BALANCED, interleave=True,
    instruction="You are a helpful assistant that analyzes speech audio to classify speaker gender. "
    "Please listen to the voice carefully and determine the speaker's gender.",
    format_prompt=gender_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    aliases={"male": ("man",), "female": ("woman",)},
))
