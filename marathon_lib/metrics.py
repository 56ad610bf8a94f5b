"""Case metrics from sample records. Every value is in percent (0-100) like the seed's leaderboard.

Records with status `error` (unusable data or a failed model call) are excluded from the scored
set and counted in `n_error`; records with status `invalid` (unparseable answer) count as wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jiwer
from sklearn.metrics import accuracy_score, f1_score

INVALID_CLASS = "<invalid>"

# The documented ASR normaliser (seed `standardize_text`): lower-case; . ! ? , ; : " ( ) [ ] { } become
# spaces; hyphens and apostrophes are deleted ("don't" -> "dont"); whitespace collapses. No number or
# spelling normalisation, so the figures stay comparable with the seed's.
ASR_NORMALISER = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.SubstituteRegexes({r"[.!?,;:\"()\[\]{}]": " ", r"[-'’]": ""}),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def normalise_transcript(text: str) -> str:
    return " ".join(ASR_NORMALISER(text)[0]) if text.strip() else ""


def _pct(value: float) -> float:
    return round(100.0 * float(value), 4)


def choice_metrics(records: Sequence[Mapping]) -> dict:
    scored = [r for r in records if r["status"] != "error"]
    metrics: dict = {"n": len(records), "n_error": len(records) - len(scored), "n_scored": len(scored)}
    if not scored:
        return metrics | {"accuracy": None, "f1": None, "seed_f1": None, "parse_fail_rate": None, "score": None}
    y_true = [r["target"] for r in scored]
    y_pred = [r["parsed"] if r["status"] == "ok" else INVALID_CLASS for r in scored]
    # Macro-F1 over class names; an invalid answer is a miss for its true class and no class's hit.
    labels = sorted(set(y_true) | (set(y_pred) - {INVALID_CLASS}))
    f1 = f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    valid = [r for r in scored if r["status"] == "ok"]
    seed_f1 = None
    if valid:  # the seed's figure: F1 over option letters, valid pairs only
        t, p = [r["target_letter"] for r in valid], [r["parsed_letter"] for r in valid]
        seed_f1 = _pct(f1_score(t, p, labels=sorted(set(t) | set(p)), average="macro", zero_division=0))
    return metrics | {
        "accuracy": _pct(accuracy_score(y_true, y_pred)),
        "f1": _pct(f1),
        "seed_f1": seed_f1,
        "parse_fail_rate": _pct((len(scored) - len(valid)) / len(scored)),
        "score": _pct(f1),
    }


def asr_metrics(records: Sequence[Mapping]) -> dict:
    scored = [r for r in records if r["status"] != "error"]
    metrics: dict = {"n": len(records), "n_error": len(records) - len(scored), "n_scored": len(scored)}
    if not scored:
        return metrics | {"wer": None, "seed_wer": None, "parse_fail_rate": None, "score": None}
    refs = [r["target"] for r in scored]
    hyps = [r["parsed"] or "" for r in scored]  # an invalid (empty) transcript scores as all deletions
    wer = jiwer.wer(refs, hyps, reference_transform=ASR_NORMALISER, hypothesis_transform=ASR_NORMALISER)
    per_utterance = [
        jiwer.wer(ref, hyp, reference_transform=ASR_NORMALISER, hypothesis_transform=ASR_NORMALISER)
        for ref, hyp in zip(refs, hyps)
    ]
    invalid = sum(r["status"] == "invalid" for r in scored)
    return metrics | {
        "wer": _pct(wer),
        "seed_wer": _pct(sum(per_utterance) / len(per_utterance)),
        "parse_fail_rate": _pct(invalid / len(scored)),
        # Leaderboard ASR column = 100 - WER; WER above 100 % (insertions) scores 0, not a negative.
        "score": round(max(0.0, 100.0 - _pct(wer)), 4),
    }


def case_metrics(answer_kind: str, records: Sequence[Mapping]) -> dict:
    return asr_metrics(records) if answer_kind == "text" else choice_metrics(records)
