"""Case metrics from sample records. Every value is in percent (0-100) like the original leaderboard.

Records with status `error` (unusable data or a failed model call) are excluded from the scored set and counted
in `n_error`; records with status `invalid` (unparseable answer) count as wrong.

The headline `score` is monotone on every task: turning a wrong valid answer into an invalid one never raises
it, and turning a wrong or invalid answer into the right one never lowers it (tests_bench/unit/test_metrics.py
checks both over random record sets). Per task it is

- `balanced_accuracy` (the mean over the task's target classes of the share answered right) where the options
  are a fixed class set (TAU, GTZAN, VESUS, HAD, VoxAge, VoxGender);
- `accuracy` where the options are texts of each question (RACE, SLUE, DESED: no class set to average over);
- `word_accuracy` = 100 − WER with each utterance's errors capped at its reference length, for ASR (an
  utterance can cost at most all its words, so an empty answer is never better than any transcript).

docs/metrics.md explains each choice; `seed_*` columns (marathon_lib.seed) are for comparison with the paper.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import jiwer
import numpy as np

from .seed import seed_columns
from .stats import BOOTSTRAP_SEED, Interval, percentile_interval, resample_indices, wilson_interval

if TYPE_CHECKING:
    from .tasks import TaskSpec

# Bump when a metric's definition changes: it is written to every case and enters the resume key (records are
# then rescored from their saved responses, not regenerated).
METRICS_VERSION = "2"

# --------------------------------------------------------------------------- ASR normalisers

# Characters joined by deletion ("don't" -> "dont", "well-known" -> "wellknown"): ASCII and typographic apostrophes
# and hyphens (soft hyphen included).
_DELETED = "'‘’ʼ`´" + "-\u2010\u2011\u00ad"
# Characters that separate words: sentence punctuation, brackets, straight and typographic quotes, dashes
# (figure, en, em, horizontal bar, minus), the ellipsis, and a double hyphen standing for a dash.
_SPACED = r'--+|[.!?,;:"()\[\]{}“”„‟«»‹›\u2012\u2013\u2014\u2015\u2212…/]'


def normalise_transcript(text: str) -> str:
    """The suite's ASR normaliser (the original one, made Unicode-aware): NFKC; lower-case; punctuation,
    quotes and dashes become spaces; apostrophes and hyphens are deleted; every run of whitespace (newline,
    tab, no-break space) is one space. No number or spelling normalisation: `wer_whisper` has those."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(_SPACED, " ", text)
    text = re.sub(f"[{re.escape(_DELETED)}]", "", text)
    return " ".join(text.split())


@cache
def whisper_normaliser() -> Any:
    """transformers' Whisper EnglishTextNormalizer with OpenAI's British->American spelling table. The hub ships
    that table as each Whisper tokenizer's normalizer.json; offline we read the identical file (OpenAI's
    english.json, 1,739 entries) that the whisper-normalizer package ships."""
    from importlib import resources

    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    table = resources.files("whisper_normalizer") / "normalizers" / "english.json"
    return EnglishTextNormalizer(json.loads(table.read_text(encoding="utf-8")))


def word_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) of two normalised transcripts."""
    words = len(reference.split())
    if words == 0:
        return len(hypothesis.split()), 0
    if not hypothesis:
        return words, words
    out = jiwer.process_words(reference, hypothesis)
    return out.substitutions + out.deletions + out.insertions, words


# --------------------------------------------------------------------------- per-sample arrays and the headline

HEADLINES = ("accuracy", "balanced_accuracy", "word_accuracy")


@dataclass(frozen=True)
class ScoreArrays:
    """What a case's headline is computed from, one entry per scored sample: the headline of any resample of
    these samples (bootstrap intervals, paired tests) is `score(indices)`."""

    kind: str  # one of HEADLINES
    sample_ids: tuple[str, ...]
    correct: np.ndarray  # bool; choice tasks (for ASR: the utterance has no error)
    classes: np.ndarray  # int index of the target class (balanced accuracy)
    errors: np.ndarray  # word errors capped at the reference length (ASR)
    words: np.ndarray  # reference words (ASR)

    @property
    def n(self) -> int:
        return len(self.sample_ids)

    def score(self, indices: np.ndarray | None = None) -> np.ndarray:
        """The headline (percent) of the samples at `indices` (…, n); all samples when None."""
        if indices is None:
            indices = np.arange(self.n)
        if self.kind == "accuracy":
            return 100.0 * self.correct[indices].mean(axis=-1)
        if self.kind == "word_accuracy":
            words = self.words[indices].sum(axis=-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(words > 0, 100.0 - 100.0 * self.errors[indices].sum(axis=-1) / words, np.nan)
        classes, correct = self.classes[indices], self.correct[indices]
        recalls = []
        for label in np.unique(self.classes):
            members = (classes == label).sum(axis=-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                recalls.append(np.where(members > 0, ((classes == label) & correct).sum(axis=-1) / members, np.nan))
        return 100.0 * np.nanmean(np.stack(recalls), axis=0)  # classes absent from a resample do not count

    def subset(self, sample_ids: Sequence[str]) -> ScoreArrays:
        """The same arrays restricted to `sample_ids`, in that order (paired tests)."""
        where = {sample_id: i for i, sample_id in enumerate(self.sample_ids)}
        rows = np.array([where[s] for s in sample_ids], dtype=int)
        return ScoreArrays(self.kind, tuple(sample_ids), self.correct[rows], self.classes[rows], self.errors[rows],
                           self.words[rows])


def headline_kind(spec: TaskSpec) -> str:
    if spec.answer == "text":
        return "word_accuracy"
    return "accuracy" if spec.per_question_options else "balanced_accuracy"


def scored_records(records: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in records if r["status"] != "error"]


def is_correct(record: Mapping) -> bool:
    return record["status"] == "ok" and record["parsed"] == record["target"]


def score_arrays(spec: TaskSpec, records: Sequence[Mapping]) -> ScoreArrays:
    scored = scored_records(records)
    kind = headline_kind(spec)
    ids = tuple(str(r["sample_id"]) for r in scored) if all("sample_id" in r for r in scored) else tuple(
        str(i) for i in range(len(scored)))
    n = len(scored)
    errors, words = np.zeros(n), np.zeros(n)
    if kind == "word_accuracy":
        for i, record in enumerate(scored):
            edits, words[i] = word_edits(normalise_transcript(record["target"]),
                                         normalise_transcript(record["parsed"] or ""))
            errors[i] = min(edits, words[i])
        correct = errors == 0
    else:
        correct = np.array([is_correct(r) for r in scored], dtype=bool)
    labels = sorted({r["target"] for r in scored})
    classes = np.array([labels.index(r["target"]) for r in scored], dtype=int)
    return ScoreArrays(kind, ids, correct, classes, errors, words)


def bootstrap_interval(arrays: ScoreArrays, seed: int = BOOTSTRAP_SEED) -> Interval:
    replicates = arrays.score(resample_indices(arrays.n, np.random.default_rng(seed)))
    low, high = percentile_interval(replicates[~np.isnan(replicates)])
    return Interval(low, high, "bootstrap")


def headline_interval(arrays: ScoreArrays) -> Interval:
    """95 %: Wilson where the headline is a proportion (accuracy), a seeded percentile bootstrap otherwise."""
    if arrays.kind == "accuracy":
        low, high = wilson_interval(float(arrays.correct.mean()), arrays.n)
        return Interval(100.0 * low, 100.0 * high, "wilson")
    return bootstrap_interval(arrays)


def _pct(value: float) -> float:
    return round(100.0 * float(value), 4)


def chance_level(spec: TaskSpec, scored: Sequence[Mapping]) -> float | None:
    """The headline a uniform random choice among each sample's options would get in expectation."""
    if spec.answer == "text" or not all(r.get("choices") for r in scored):
        return None
    guess = np.array([1.0 / len(r["choices"]) for r in scored])
    if spec.per_question_options:
        return _pct(guess.mean())
    by_class: dict[str, list[float]] = {}
    for record, p in zip(scored, guess):
        by_class.setdefault(record["target"], []).append(p)
    return _pct(np.mean([np.mean(v) for v in by_class.values()]))


def case_metrics(spec: TaskSpec, records: Sequence[Mapping]) -> dict[str, Any]:
    scored = scored_records(records)
    kind = headline_kind(spec)
    metrics: dict[str, Any] = {"n": len(records), "n_error": len(records) - len(scored), "n_scored": len(scored),
                               "score_metric": kind, "metrics_version": METRICS_VERSION}
    invalid = sum(r["status"] == "invalid" for r in scored)
    metrics["parse_fail_rate"] = _pct(invalid / len(scored)) if scored else None
    metrics |= seed_columns(spec.name, scored)
    if spec.answer == "text":
        metrics |= asr_columns(scored)
    if not scored:
        return metrics | {"score": None, "score_ci": None, "score_ci_method": None, "accuracy": None,
                          "accuracy_ci": None, "balanced_accuracy": None, "chance": None}
    arrays = score_arrays(spec, scored)
    score = float(arrays.score())
    interval = headline_interval(arrays) if not np.isnan(score) else None
    metrics |= {
        "score": None if np.isnan(score) else round(score, 4),
        "score_ci": interval.as_list() if interval else None,
        "score_ci_method": interval.method if interval else None,
    }
    if spec.answer == "text":
        return metrics | {"accuracy": None, "accuracy_ci": None, "balanced_accuracy": None, "chance": None}
    accuracy = float(arrays.correct.mean())
    low, high = wilson_interval(accuracy, arrays.n)
    return metrics | {
        "accuracy": _pct(accuracy),
        "accuracy_ci": [_pct(low), _pct(high)],
        "balanced_accuracy": None if spec.per_question_options else metrics["score"],
        "chance": chance_level(spec, scored),
    }


def asr_columns(scored: Sequence[Mapping]) -> dict[str, float | None]:
    """Corpus WER (uncapped, the conventional figure) under the suite's normaliser and under Whisper's, and the
    capped WER behind the headline."""
    if not scored:
        return {"wer": None, "wer_capped": None, "wer_whisper": None}
    totals = {"wer": [0, 0], "wer_capped": [0, 0], "wer_whisper": [0, 0]}
    whisper = whisper_normaliser()
    for record in scored:
        reference, hypothesis = record["target"], record["parsed"] or ""
        edits, words = word_edits(normalise_transcript(reference), normalise_transcript(hypothesis))
        totals["wer"][0] += edits
        totals["wer_capped"][0] += min(edits, words)
        totals["wer"][1] += words
        totals["wer_capped"][1] += words
        edits, words = word_edits(" ".join(whisper(reference).split()), " ".join(whisper(hypothesis).split()))
        totals["wer_whisper"][0] += edits
        totals["wer_whisper"][1] += words
    return {name: (_pct(e / w) if w else None) for name, (e, w) in totals.items()}
