"""Columns for comparison with the AudioMarathon paper: the original evaluation scripts' own formulas.

These are never the headline (docs/metrics.md says why). Two columns per case:

- `seed_f1` / `seed_wer`: the original formula of the task applied to *our* parsed answers;
- `seed_e2e`: the original scripts' own answer extractors run on the raw responses, then their formula — what
  the original pipeline would have printed for these very outputs.

The original code is reproduced in behaviour (its quirks included: first A-D character anywhere, substring
tests, letter labels for shuffled options), because the point of these columns is to hold our outputs against
the paper's table. docs/metrics.md describes every extractor and formula in prose.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jiwer
from sklearn.metrics import f1_score

Record = Mapping[str, Any]
LETTERS4 = ("A", "B", "C", "D")
LETTERS5 = ("a", "b", "c", "d", "e")


def _pct(value: float) -> float:
    return round(100.0 * float(value), 4)


def after_assistant(text: str) -> str:
    """Several original scripts decoded the whole sequence and kept what follows the last "assistant\\n"."""
    if "assistant\n" in text:
        text = text[text.rfind("assistant\n") + len("assistant\n"):].strip()
    return text


# --------------------------------------------------------------------------- answer extractors (behaviour of the
# original scripts, rewritten; each returns the original's label: a letter, a class text or "" when undecided)

def first_letter_anywhere(response: str) -> str:
    """RACE: the first A-D character of the upper-cased response ("ANSWER: C" gives A); else undecided."""
    for char in response.strip().upper():
        if char in LETTERS4:
            return char
    return ""


def _any_letter(text: str) -> str:
    match = re.search(r"\b([ABCD])\b", text) or re.search(r"[(\[]?([ABCD])[)\].]?", text)
    return match.group(1) if match else ""


def gtzan_letter(response: str) -> str:
    text = after_assistant(response).strip().upper() if response else ""
    if not text:
        return ""
    if text in LETTERS4:
        return text
    for letter in LETTERS4:
        if text.startswith((f"{letter}.", f"{letter})")) or text.endswith(f" {letter}"):
            return letter
    lowered = text.lower()
    for letter in LETTERS4:
        low = letter.lower()
        if f"option {low}" in lowered or f"choice {low}" in lowered or f"{low})" in lowered:
            return letter
    return _any_letter(text)


def slue_letter(response: str) -> str:
    text = response.strip().upper() if response else ""
    if not text:
        return ""
    if text in LETTERS4:
        return text
    for letter in LETTERS4:
        if text.startswith(letter) and len(text) <= 3:
            return letter
    return _any_letter(text)  # its "option X" step comes after a catch-all and never runs


def desed_letter(response: str) -> str:
    text = after_assistant(response).strip().upper() if response else ""
    if not text:
        return ""
    return text if text in LETTERS4 else _any_letter(text)


def tau_letter(response: str, choices: Sequence[str]) -> str:
    text = after_assistant(response).strip().lower()
    if text in ("a", "b", "c", "d"):
        return text.upper()
    for letter in "abcd":
        if text.startswith((f"{letter}.", f"{letter})", f"{letter}:")):
            return letter.upper()
    for letter in "abcd":
        if any(cue in text for cue in (f"option {letter}", f"choice {letter}", f"{letter})")):
            return letter.upper()
    best, most = "", 0
    for index, choice in enumerate(choices):
        lowered = choice.lower()
        if lowered in text:
            return chr(65 + index)
        overlap = sum(1 for word in lowered.split(" - ")[0].split() if word in text)
        if overlap > most:
            best, most = chr(65 + index), overlap
    return best if best and most > 1 else ""


EMOTION_WORDS = {
    "angry": ("anger", "frustrated", "mad", "furious"),
    "happy": ("joy", "cheerful", "pleased", "delighted"),
    "sad": ("sadness", "melancholy", "depressed", "sorrow"),
    "fearful": ("fear", "anxiety", "scared", "afraid"),
    "monotone": ("flat", "emotionless", "neutral", "bland"),
}


def vesus_letter(response: str, choices: Sequence[str]) -> str:
    text = after_assistant(response).strip().lower()
    for letter in "abcd":
        if text == letter or text.startswith((f"{letter}.", f"{letter})")):
            return letter.upper()
    for letter in "abcd":
        if any(cue in text for cue in (f"option {letter}", f"choice {letter}", f"{letter})", f"({letter})")):
            return letter.upper()
    for index, choice in enumerate(choices[:4]):
        lowered = choice.lower()
        for words in EMOTION_WORDS.values():  # a keyword in the answer and one of the same emotion in the option
            if any(w in text for w in words) and any(w in lowered for w in words):
                return chr(65 + index)
    return ""


HAD_WORDS = {"real": "real", "fake": "fake", "authentic": "real", "synthesized": "fake"}


def had_label(response: str, new_tokens: int | None) -> str:
    """'real' / 'fake' / ''; answers longer than 10 tokens are first cut to their first verdict word."""
    text = after_assistant(response).strip()
    if (new_tokens or 0) > 10:
        word = next((w for w in text.lower().split() if w in HAD_WORDS), None)
        if word is not None:
            text = HAD_WORDS[word]
    text = text.lower().strip()
    for letter, label in (("a", "real"), ("b", "fake")):
        if text == letter or text.startswith((f"{letter}.", f"{letter})")) or text.endswith(f" {letter}"):
            return label
    for letter, label in (("a", "real"), ("b", "fake")):
        if any(cue in text for cue in (f"option {letter}", f"choice {letter}", f"{letter})", f" {letter} ")):
            return label
    if "real" in text and "fake" not in text:
        return "real"
    if "fake" in text and "real" not in text:
        return "fake"
    real = re.search(r"\breal\b|\bauthentic\b|\bgenuine\b|\bcompletely authentic\b", text) is not None
    fake = re.search(r"\bfake\b|\bartificial\b|\bsynthetic\b|\bsynthesized\b|\bcontains.*fake\b", text) is not None
    return "real" if real and not fake else "fake" if fake and not real else ""


def age_label(response: str, choices: Sequence[str]) -> str:
    """VoxCeleb age: returns the option *text* (the original scored group names, not letters)."""
    text = response.lower().strip()
    by_letter = dict(zip(LETTERS5, choices))
    for letter, choice in by_letter.items():
        if text == letter or text.startswith((f"{letter}.", f"{letter})")) or text.endswith(f" {letter}"):
            return choice
    for letter, choice in by_letter.items():
        others = [o for o in by_letter if o != letter]
        if re.search(rf"\b{letter}\b", text) and not any(re.search(rf"\b{o}\b", text) for o in others):
            return choice
    for letter, choice in by_letter.items():
        if any(f"{cue} {letter}" in text for cue in ("option", "choice", "answer")):
            return choice
    named = [choice for choice in by_letter.values() if choice.lower() in text]
    return named[0] if len(named) == 1 else ""


def gender_label(response: str, first: str, second: str) -> str:
    """VoxCeleb gender: the lower-cased option text; "male" is a substring of "female", as it was."""
    text = response.lower().strip()
    a, b = first.lower().strip(), second.lower().strip()
    if text == "a" or text.startswith(("a.", "a)")):
        return a
    if text == "b" or text.startswith(("b.", "b)")):
        return b
    if "option a" in text or "choice a" in text or "a)" in text:
        return a
    if "option b" in text or "choice b" in text or "b)" in text:
        return b
    if a in text and b not in text:
        return a
    if b in text and a not in text:
        return b
    if (a, b) == ("male", "female"):
        male, female = re.search(r"\bmale\b", text) is not None, re.search(r"\bfemale\b", text) is not None
        if male != female:
            return "male" if male else "female"
    return ""


TRANSCRIPT_MARKERS = ("spoken content:", "content:", "transcription:", "transcript:")


def clean_transcript(response: str) -> str:
    """LibriSpeech: the text after the first marker found (up to the marker's next occurrence, as re.split
    left it), placeholders and a leading label removed."""
    response = after_assistant(response)
    if not response.strip():
        return ""
    for marker in TRANSCRIPT_MARKERS:
        if marker in response.lower():
            parts = re.split(re.escape(marker), response, flags=re.IGNORECASE)
            if len(parts) > 1:
                response = parts[1].strip()
                break
    response = response.replace("<transcribed text here>", "")
    response = re.sub(r"<sep>.*?($|<|$)", "", response)
    response = re.sub(r"(?i)^(spoken\s+(?:text|content)|content|transcript|transcription):\s*", "", response.strip())
    return response.strip()


def standardize(text: str) -> str:
    """The original ASR normaliser: lower-case; . ! ? , ; : " ( ) [ ] { } to spaces; ASCII - and ' deleted."""
    text = re.sub(r"[.!?,;:\"()\[\]{}]", " ", text.lower())
    return re.sub(r"\s+", " ", re.sub(r"[\-']", "", text)).strip()


# --------------------------------------------------------------------------- formulas (all in percent)

def letter_f1_fixed(truths: Sequence[str], preds: Sequence[str]) -> float:
    """RACE, GTZAN: macro-F1 with labels A-D fixed (a letter never predicted counts with F1 0), over pairs
    whose prediction is a letter A-D."""
    pairs = [(t, p) for t, p in zip(truths, preds) if t in LETTERS4 and p in LETTERS4]
    if not pairs:
        return 0.0
    t, p = zip(*pairs)
    return _pct(f1_score(t, p, labels=list(LETTERS4), average="macro", zero_division=0))


def letter_f1_present(truths: Sequence[str], preds: Sequence[str]) -> float:
    """SLUE, DESED: macro-F1 over the letters present among the valid (A-D) pairs."""
    pairs = [(t, p) for t, p in zip(truths, preds) if t in LETTERS4 and p in LETTERS4]
    if not pairs:
        return 0.0
    t, p = zip(*pairs)
    return _pct(f1_score(t, p, average="macro", zero_division=0))


def f1_within_target_labels(truths: Sequence[str], preds: Sequence[str]) -> float:
    """TAU, VESUS: only pairs whose prediction is one of the targets' labels count; macro over the labels
    present among those pairs."""
    labels = set(truths)
    pairs = [(t, p) for t, p in zip(truths, preds) if p in labels]
    if not pairs:
        return 0.0
    t, p = zip(*pairs)
    return _pct(f1_score(t, p, average="macro", zero_division=0))


def fake_positive_f1(truths: Sequence[str], preds: Sequence[str]) -> float:
    """HAD: binary F1 with fake as the positive class over every sample; a real clip not answered "real"
    counts as a false "fake", a fake clip not answered "fake" as a miss."""
    tp = sum(t == "fake" and p == "fake" for t, p in zip(truths, preds))
    fp = sum(t == "real" and p != "real" for t, p in zip(truths, preds))
    fn = sum(t == "fake" and p != "fake" for t, p in zip(truths, preds))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return _pct(2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def group_f1(truths: Sequence[str], preds: Sequence[str]) -> float:
    """VoxCeleb age: macro-F1 over the age-group names, labels = every target group, valid pairs only."""
    groups = sorted(set(truths))
    pairs = [(t, p) for t, p in zip(truths, preds) if p in groups]
    if not pairs:
        return 0.0
    t, p = zip(*pairs)
    return _pct(f1_score(t, p, labels=groups, average="macro", zero_division=0))


def gender_weighted_f1(truths: Sequence[str], preds: Sequence[str]) -> float:
    """VoxCeleb gender: weighted F1 over the male/female pairs."""
    pairs = [(t, p) for t, p in zip(truths, preds) if t in ("male", "female") and p in ("male", "female")]
    if not pairs:
        return 0.0
    t, p = zip(*pairs)
    return _pct(f1_score(t, p, average="weighted", zero_division=0))


def mean_utterance_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """LibriSpeech: mean per-utterance WER over pairs with both sides non-empty; a side that the normaliser
    empties scores 100; no such pair: 100."""
    scores = []
    for reference, hypothesis in zip(references, hypotheses):
        if not (reference and hypothesis):
            continue
        ref, hyp = standardize(reference), standardize(hypothesis)
        scores.append(100.0 if not ref or not hyp else 100.0 * jiwer.wer(ref, hyp))
    return round(sum(scores) / len(scores), 4) if scores else 100.0


# --------------------------------------------------------------------------- recipes per task

def _letter(record: Record) -> str:
    return record.get("parsed_letter") or "" if record["status"] == "ok" else ""


def _label(record: Record) -> str:
    return record.get("parsed") or "" if record["status"] == "ok" else ""


@dataclass(frozen=True)
class SeedRecipe:
    """How the original script of one task scored: the truth it compared with, our parsed answer in its label
    space, its own extractor on the raw response, and its formula."""

    truth: Callable[[Record], str]
    ours: Callable[[Record], str]
    extract: Callable[[Record], str]
    formula: Callable[[Sequence[str], Sequence[str]], float]
    column: str = "seed_f1"


def _target_letter(record: Record) -> str:
    return record.get("target_letter") or ""


def _response(record: Record) -> str:
    return record.get("response") or ""


SEED_RECIPES: dict[str, SeedRecipe] = {
    "RACE": SeedRecipe(_target_letter, _letter, lambda r: first_letter_anywhere(_response(r)), letter_f1_fixed),
    "GTZAN": SeedRecipe(_target_letter, _letter, lambda r: gtzan_letter(_response(r)), letter_f1_fixed),
    "SLUE": SeedRecipe(_target_letter, _letter, lambda r: slue_letter(_response(r)), letter_f1_present),
    "DESED": SeedRecipe(_target_letter, _letter, lambda r: desed_letter(_response(r)), letter_f1_present),
    "TAU": SeedRecipe(_target_letter, _letter, lambda r: tau_letter(_response(r), r["choices"]),
                      f1_within_target_labels),
    "VESUS": SeedRecipe(_target_letter, _letter, lambda r: vesus_letter(_response(r), r["choices"]),
                        f1_within_target_labels),
    "HAD": SeedRecipe(lambda r: r["target"].lower(), lambda r: _label(r).lower(),
                      lambda r: had_label(_response(r), (r.get("tokens") or {}).get("new")), fake_positive_f1),
    "VoxAge": SeedRecipe(lambda r: r["target"], _label, lambda r: age_label(_response(r), r["choices"]), group_f1),
    "VoxGender": SeedRecipe(lambda r: r["target"].lower(), lambda r: _label(r).lower(),
                            lambda r: gender_label(_response(r), *r["choices"][:2]), gender_weighted_f1),
    "LibriSpeech": SeedRecipe(lambda r: r["target"], _label, lambda r: clean_transcript(_response(r)),
                              mean_utterance_wer, column="seed_wer"),
}


def seed_columns(task: str, scored: Sequence[Record]) -> dict[str, float | None]:
    """{seed_f1 or seed_wer, seed_e2e} of the scored records (None without records or without a recipe)."""
    recipe = SEED_RECIPES.get(task)
    column = recipe.column if recipe else "seed_f1"
    if recipe is None or not scored:
        return {column: None, "seed_e2e": None}
    truths = [recipe.truth(r) for r in scored]
    return {column: recipe.formula(truths, [recipe.ours(r) for r in scored]),
            "seed_e2e": recipe.formula(truths, [recipe.extract(r) for r in scored])}
