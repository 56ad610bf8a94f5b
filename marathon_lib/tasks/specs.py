"""The ten AudioMarathon tasks. Prompt wording is the seed's (Qwen "Others" scripts, seed_spec.md §3);
option order and the letters follow each item's own choices (fixing the seed's fixed-order Vox-age prompt)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from ..registry import Registry
from .base import Sample, TaskSpec
from .loaders import UPPER, interleave_by_target, load_choice_manifest, load_had, load_librispeech, vesus_keep

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


def _task(spec: TaskSpec) -> TaskSpec:
    return TASKS.register(spec.name, spec)


_task(TaskSpec(
    name="LibriSpeech", code="ASR", category=SPEECH_CONTENT, data_dir="LibriSpeech", load=load_librispeech,
    instruction="You are a helpful assistant that transcribes speech audio. Please listen carefully and provide "
    "the exact transcription of what is spoken in the audio.",
    format_prompt=asr_prompt, answer="text", max_new_tokens=ASR_TOKENS,
))
_task(TaskSpec(
    name="RACE", code="SCR", category=SPEECH_CONTENT, data_dir="RACE",
    load=partial(load_choice_manifest, manifest="race_benchmark.json", what="RACE", layout="options",
                 answer_key="answer", path_key="audio_path", id_keys=("article_id", "question_idx"),
                 meta_keys=("article_id", "question_idx")),
    instruction="You are a helpful assistant that analyzes reading comprehension passages with audio narration. "
    "Please listen to the passage and answer the multiple-choice question based on what you heard.",
    format_prompt=race_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS, per_question_options=True,
))
_task(TaskSpec(
    name="SLUE", code="SER", category=SPEECH_CONTENT, data_dir="SLUE",
    load=partial(load_choice_manifest, manifest="merged_audio_data.json", what="SLUE",
                 meta_keys=("task_name", "entity_types", "entity_count")),
    instruction="You are a helpful assistant that analyzes speech audio for named entity recognition. "
    "Please listen carefully and extract the requested named entities from the speech.",
    format_prompt=listen_and_select_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    per_question_options=True,
))
_task(TaskSpec(
    name="TAU", code="ASC", category=AUDIO_CLASSIFICATION, data_dir="TAU",
    load=partial(load_choice_manifest, manifest="acoustic_scene_task_meta.json", what="TAU",
                 meta_keys=("scene_label",)),
    instruction="You are a helpful assistant that analyzes urban soundscape audio to identify acoustic scenes. "
    "Please listen to the audio carefully and classify the scene type.",
    format_prompt=tau_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
))
_task(TaskSpec(
    name="GTZAN", code="MC", category=AUDIO_CLASSIFICATION, data_dir="GTZAN",
    # Qwen/Voxtral scripts read <root>/wav/<path>, Phi-4 reads <root>/<path>: accept both.
    load=partial(load_choice_manifest, manifest="music_genre_classification_meta.json", what="GTZAN",
                 audio_dirs=("wav", ""), meta_keys=("genre_label",)),
    instruction="You are a helpful audio analysis assistant.",
    format_prompt=gtzan_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
))
_task(TaskSpec(
    name="DESED", code="SED", category=AUDIO_CLASSIFICATION, data_dir="DESED",
    load=partial(load_choice_manifest, manifest="desed_sound_event_detection_task.json", what="DESED",
                 layout="choices_dict", items_key="tasks", meta_keys=("task_type", "correct_event")),
    instruction="You are a helpful assistant that analyzes audio to detect and classify sound events. "
    "Please listen carefully and select the most appropriate answer from the given choices.",
    format_prompt=listen_and_select_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    per_question_options=True,
))
_task(TaskSpec(
    name="VESUS", code="ER", category=SPEAKER_INFORMATION, data_dir="VESUS",
    load=partial(load_choice_manifest, manifest="audio_emotion_dataset.json", what="VESUS",
                 id_keys=("uniq_id",), keep=vesus_keep, meta_keys=("emotion_label", "person_id")),
    instruction="You are a helpful assistant that analyzes speech audio to recognize emotions. "
    "Please listen to the voice carefully and identify the emotional state of the speaker.",
    format_prompt=select_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    aliases={"angry": ("anger",), "happy": ("happiness", "joy"), "sad": ("sadness",),
             "fearful": ("fear", "afraid"), "monotone": ("neutral",)},
))
_task(TaskSpec(
    name="HAD", code="SD", category=SPEAKER_INFORMATION, data_dir="HAD", load=load_had,
    instruction="You are a helpful assistant that analyzes audio to determine authenticity.",
    format_prompt=had_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    aliases={"real": ("authentic", "genuine"),
             "fake": ("synthetic", "synthesized", "artificial", "artificially synthesized", "spoofed")},
))
_task(TaskSpec(
    name="VoxAge", code="SAR", category=SPEAKER_INFORMATION, data_dir="VoxCeleb",
    load=partial(load_choice_manifest, manifest="age_classification_task_meta.json", what="VoxCeleb age",
                 n_choices=5, letters=UPPER[:5], id_keys=("uniq_id",), audio_dirs=("wav",),
                 meta_keys=("speaker_id_original", "speaker_age")),
    instruction="You are a helpful assistant that analyzes speech audio to estimate speaker age. "
    "Please listen to the voice carefully and classify the speaker's age group.",
    format_prompt=select_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
))
_task(TaskSpec(
    name="VoxGender", code="SGR", category=SPEAKER_INFORMATION, data_dir="VoxCeleb",
    load=lambda root: interleave_by_target(load_choice_manifest(  # balanced prefix for --sample-limit
        root, manifest="gender_id_task_meta.json", what="VoxCeleb gender", n_choices=2, letters=("a", "b"),
        audio_dirs=("wav",), meta_keys=("speaker_id_original",))),
    instruction="You are a helpful assistant that analyzes speech audio to classify speaker gender. "
    "Please listen to the voice carefully and determine the speaker's gender.",
    format_prompt=gender_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
    aliases={"male": ("man",), "female": ("woman",)},
))

LEADERBOARD_COLUMNS = ("SER", "SCR", "ASR", "SED", "MC", "ASC", "SD", "ER", "SAR", "SGR")  # the seed's order
