"""Case metrics against sklearn / jiwer on hand-written records (design.md "Scoring rules").

All values are percentages. Records with status `error` are excluded from the scored set and counted in
`n_error`; `invalid` records count as wrong and feed `parse_fail_rate`.
"""

from __future__ import annotations

import jiwer
import pytest
from sklearn.metrics import accuracy_score, f1_score

from marathon_lib.metrics import ASR_NORMALISER, asr_metrics, case_metrics, choice_metrics, normalise_transcript


def rec(target, parsed, status="ok", target_letter=None, parsed_letter=None):
    return {"target": target, "parsed": parsed, "status": status, "target_letter": target_letter,
            "parsed_letter": parsed_letter if status == "ok" else None}


# Class names with the letters they had in their (shuffled) samples.
CHOICE_RECORDS = [
    rec("Dog", "Dog", target_letter="A", parsed_letter="A"),
    rec("Dog", "Cat", target_letter="A", parsed_letter="B"),
    rec("Cat", "Cat", target_letter="B", parsed_letter="B"),
    rec("Cat", None, "invalid", target_letter="B"),
    rec("Bird", "Bird", target_letter="C", parsed_letter="C"),
    rec("Bird", "Dog", target_letter="D", parsed_letter="A"),
    rec("Dog", None, "error", target_letter="A"),  # unusable sample: not scored at all
    rec("Cat", None, "error", target_letter="C"),
]


def sklearn_choice_reference(records):
    scored = [r for r in records if r["status"] != "error"]
    y_true = [r["target"] for r in scored]
    y_pred = [r["parsed"] if r["status"] == "ok" else "__INVALID__" for r in scored]
    classes = sorted(set(y_true) | {p for p in y_pred if p != "__INVALID__"})
    valid = [r for r in scored if r["status"] == "ok"]
    t = [r["target_letter"] for r in valid]
    p = [r["parsed_letter"] for r in valid]
    return {
        "accuracy": 100 * accuracy_score(y_true, y_pred),
        "f1": 100 * f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0),
        "seed_f1": 100 * f1_score(t, p, labels=sorted(set(t) | set(p)), average="macro", zero_division=0),
        "parse_fail_rate": 100 * (len(scored) - len(valid)) / len(scored),
    }


def test_choice_metrics_match_sklearn():
    metrics = choice_metrics(CHOICE_RECORDS)
    ref = sklearn_choice_reference(CHOICE_RECORDS)
    assert metrics["n"] == 8 and metrics["n_error"] == 2 and metrics["n_scored"] == 6
    for key, value in ref.items():
        assert metrics[key] == pytest.approx(value, abs=1e-3), key
    assert metrics["score"] == metrics["f1"]


def test_choice_metrics_hand_computed_values():
    """The same records by hand: 3 of 6 scored answers are right (the two error records are not scored)."""
    metrics = choice_metrics(CHOICE_RECORDS)
    assert metrics["accuracy"] == pytest.approx(50.0)
    # Dog: tp1 fp1 fn1 -> 0.5; Cat: tp1 fp1 fn1 -> 0.5; Bird: tp1 fp0 fn1 -> 2/3
    assert metrics["f1"] == pytest.approx(100 * (0.5 + 0.5 + 2 / 3) / 3, abs=1e-3)
    assert metrics["parse_fail_rate"] == pytest.approx(100 / 6, abs=1e-3)


def test_invalid_counts_as_wrong_not_dropped():
    ok = [rec("Dog", "Dog", target_letter="A", parsed_letter="A"),
          rec("Cat", "Cat", target_letter="B", parsed_letter="B")]
    with_invalid = ok + [rec("Dog", None, "invalid", target_letter="A")]
    assert choice_metrics(ok)["accuracy"] == 100.0
    metrics = choice_metrics(with_invalid)
    assert metrics["accuracy"] == pytest.approx(200 / 3, abs=1e-3)
    assert metrics["n_scored"] == 3 and metrics["n_error"] == 0
    assert metrics["parse_fail_rate"] == pytest.approx(100 / 3, abs=1e-3)
    assert metrics["f1"] < 100.0
    # the invalid answer is not a class of its own: only Dog and Cat are averaged
    assert metrics["f1"] == pytest.approx(100 * (2 / 3 + 1.0) / 2, abs=1e-3)
    # the seed's figure ignores invalid answers entirely
    assert metrics["seed_f1"] == 100.0


def test_error_records_are_excluded_and_counted():
    base = [rec("Dog", "Dog", target_letter="A", parsed_letter="A"),
            rec("Cat", "Dog", target_letter="B", parsed_letter="A")]
    with_errors = base + [rec("Cat", None, "error"), rec("Cat", None, "error")]
    a, b = choice_metrics(base), choice_metrics(with_errors)
    for key in ("accuracy", "f1", "seed_f1", "parse_fail_rate", "score"):
        assert a[key] == b[key], key
    assert (b["n"], b["n_error"], b["n_scored"]) == (4, 2, 2)
    assert b["parse_fail_rate"] == 0.0


def test_seed_f1_is_letter_f1_over_valid_pairs():
    """Letters are mapped through each sample's choices: letter-F1 and class-F1 disagree here."""
    records = [
        rec("Dog", "Dog", target_letter="A", parsed_letter="A"),
        rec("Cat", "Cat", target_letter="A", parsed_letter="A"),
        rec("Dog", "Cat", target_letter="B", parsed_letter="A"),
    ]
    metrics = choice_metrics(records)
    # classes: Dog P1 R.5 F2/3, Cat P.5 R1 F2/3 -> 66.67; letters: A P2/3 R1 F.8, B F0 -> 40
    assert metrics["f1"] == pytest.approx(200 / 3, abs=1e-3)
    assert metrics["seed_f1"] == pytest.approx(40.0, abs=1e-3)
    assert metrics["accuracy"] == pytest.approx(200 / 3, abs=1e-3)
    assert metrics["score"] == metrics["f1"] != metrics["seed_f1"]


def test_seed_f1_none_when_nothing_valid():
    metrics = choice_metrics([rec("Dog", None, "invalid", target_letter="A")])
    assert metrics["seed_f1"] is None
    assert metrics["accuracy"] == 0.0 and metrics["f1"] == 0.0 and metrics["parse_fail_rate"] == 100.0


def test_all_error_case_has_no_scores():
    for metrics in (choice_metrics([rec("Dog", None, "error")]), asr_metrics([rec("a b", None, "error")])):
        assert metrics["n"] == 1 and metrics["n_error"] == 1 and metrics["n_scored"] == 0
        assert metrics["score"] is None and metrics["parse_fail_rate"] is None


def test_metrics_are_percentages():
    metrics = choice_metrics(CHOICE_RECORDS)
    for key in ("accuracy", "f1", "seed_f1", "parse_fail_rate", "score"):
        assert 0.0 <= metrics[key] <= 100.0
    perfect = choice_metrics([rec("Dog", "Dog", target_letter="A", parsed_letter="A")])
    assert perfect["accuracy"] == 100.0 and perfect["f1"] == 100.0 and perfect["seed_f1"] == 100.0


# --------------------------------------------------------------------------- ASR

ASR_RECORDS = [
    rec("He said: \"Don't go!\"", "he said dont go"),  # 0 errors after normalisation
    rec("The quick brown fox jumps", "the quick brown box jumps over"),  # 1 sub + 1 ins / 5
    rec("Mr. Smith-Jones arrived at noon.", "mister smithjones arrived at noon"),  # 1 sub / 5
    rec("One two three", None, "invalid"),  # empty transcript: 3 deletions
    rec("not scored at all", None, "error"),
]


def _jiwer_reference(records):
    scored = [r for r in records if r["status"] != "error"]
    refs, hyps = [r["target"] for r in scored], [r["parsed"] or "" for r in scored]
    corpus = jiwer.wer(refs, hyps, reference_transform=ASR_NORMALISER, hypothesis_transform=ASR_NORMALISER)
    per = [jiwer.wer(r, h, reference_transform=ASR_NORMALISER, hypothesis_transform=ASR_NORMALISER)
           for r, h in zip(refs, hyps)]
    return 100 * corpus, 100 * sum(per) / len(per)


def test_asr_metrics_match_jiwer():
    metrics = asr_metrics(ASR_RECORDS)
    corpus, mean = _jiwer_reference(ASR_RECORDS)
    assert metrics["wer"] == pytest.approx(corpus, abs=1e-3)
    assert metrics["seed_wer"] == pytest.approx(mean, abs=1e-3)
    assert (metrics["n"], metrics["n_error"], metrics["n_scored"]) == (5, 1, 4)
    assert metrics["parse_fail_rate"] == 25.0


def test_asr_metrics_hand_computed():
    metrics = asr_metrics(ASR_RECORDS)
    # corpus: (0 + 2 + 1 + 3) errors / (4 + 5 + 5 + 3) reference words
    assert metrics["wer"] == pytest.approx(100 * 6 / 17, abs=1e-3)
    # seed: mean of 0, 2/5, 1/5, 1
    assert metrics["seed_wer"] == pytest.approx(100 * (0 + 0.4 + 0.2 + 1.0) / 4, abs=1e-3)
    assert metrics["wer"] != metrics["seed_wer"]
    assert metrics["score"] == pytest.approx(100 - 100 * 6 / 17, abs=1e-3)


def test_asr_score_is_clipped_at_zero():
    metrics = asr_metrics([rec("hello", "hello there my good friend")])  # 4 insertions on 1 word
    assert metrics["wer"] == pytest.approx(400.0)
    assert metrics["score"] == 0.0


def test_asr_perfect_and_case_metrics_dispatch():
    records = [rec("Hello, World!", "hello world")]
    assert asr_metrics(records)["wer"] == 0.0 and asr_metrics(records)["score"] == 100.0
    assert case_metrics("text", records) == asr_metrics(records)
    choice = [rec("Dog", "Dog", target_letter="A", parsed_letter="A")]
    assert case_metrics("choice", choice) == choice_metrics(choice)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Don't stop, Mr. Smith-Jones!", "dont stop mr smithjones"),
        ("HELLO   World", "hello world"),
        ("a (b) [c] {d}; e: f? g!", "a b c d e f g"),
        ("\"quoted\" text.", "quoted text"),
        ("rock’n’roll", "rocknroll"),
        ("It is 10 o'clock", "it is 10 oclock"),  # no number normalisation
        ("   ", ""),
        ("", ""),
    ],
)
def test_normaliser(text, expected):
    assert normalise_transcript(text) == expected
