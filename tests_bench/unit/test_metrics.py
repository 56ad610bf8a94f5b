"""Case metrics: the headline per task kind (hand-computed values and the two monotonicity properties over random
record sets), intervals, the ASR normalisers, and the columns for comparison with the paper against an independent
implementation of the original scripts' formulas on mixed answer sets.

All values are percentages. Records with status `error` are excluded from the scored set and counted in `n_error`;
`invalid` records count as wrong and feed `parse_fail_rate`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import count

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from marathon_lib.metrics import (
    METRICS_VERSION,
    case_metrics,
    normalise_transcript,
    score_arrays,
    whisper_normaliser,
)
from marathon_lib.seed import SEED_RECIPES
from marathon_lib.stats import mcnemar_exact, wilson_interval, wilson_lower_bound
from marathon_lib.tasks import TASKS

LETTERS = ("A", "B", "C", "D", "E")
SAMPLE_IDS = count()


def rec(target, parsed, status="ok", choices=("Dog", "Cat", "Bird", "Fish"), sample_id=None, response=None,
        letters=None):
    """A scored record as runner.score_response leaves it."""
    letters = letters or LETTERS[: len(choices)]
    letter_of = dict(zip(choices, letters))
    return {"sample_id": sample_id or f"s{next(SAMPLE_IDS)}", "target": target, "parsed": parsed if status == "ok" else None,
            "status": status, "target_letter": letter_of.get(target),
            "parsed_letter": letter_of.get(parsed) if status == "ok" else None, "choices": list(choices),
            "letters": list(letters), "response": response if response is not None else (parsed or ""),
            "correct": status == "ok" and parsed == target}


# --------------------------------------------------------------------------- headline by hand

def test_class_tasks_score_balanced_accuracy():
    records = [rec("Dog", "Dog"), rec("Dog", "Cat"), rec("Dog", "Dog"), rec("Dog", None, "invalid"),
               rec("Cat", "Cat"), rec("Bird", "Dog"), rec("Cat", None, "error")]
    metrics = case_metrics(TASKS.get("TAU"), records)
    # recall Dog 2/4, Cat 1/1, Bird 0/1 -> (0.5 + 1 + 0) / 3; accuracy 3/6; the error record is not scored
    assert metrics["score"] == pytest.approx(50.0) and metrics["balanced_accuracy"] == metrics["score"]
    assert metrics["accuracy"] == pytest.approx(50.0)
    assert (metrics["n"], metrics["n_error"], metrics["n_scored"]) == (7, 1, 6)
    assert metrics["parse_fail_rate"] == pytest.approx(100 / 6, abs=1e-3)
    assert metrics["score_metric"] == "balanced_accuracy" and metrics["metrics_version"] == METRICS_VERSION
    assert metrics["chance"] == pytest.approx(25.0)  # four options per sample


def test_per_question_option_tasks_score_accuracy():
    """RACE/SLUE/DESED options are texts of each question, not classes: the headline is plain accuracy."""
    for task in ("RACE", "SLUE", "DESED"):
        assert TASKS.get(task).per_question_options
        records = [rec("Dog", "Dog"), rec("Dog", "Cat"), rec("Cat", "Cat"), rec("Bird", None, "invalid")]
        metrics = case_metrics(TASKS.get(task), records)
        assert metrics["score"] == metrics["accuracy"] == 50.0
        assert metrics["score_metric"] == "accuracy" and metrics["balanced_accuracy"] is None
        assert metrics["score_ci"] == metrics["accuracy_ci"] and metrics["score_ci_method"] == "wilson"
    assert {t for t in TASKS.names() if TASKS.get(t).per_question_options} == {"RACE", "SLUE", "DESED"}


def test_junk_never_beats_guessing():
    """The issue's finding: turning wrong answers into unparseable ones raised the old macro-F1 (34.4 -> 68.9 on
    RACE). With the headline it can only stay or fall, on every task kind."""
    wrong = [rec("Dog", "Dog"), rec("Cat", "Cat"), rec("Bird", "Bird"), rec("Dog", "Cat"), rec("Cat", "Bird"),
             rec("Bird", "Dog"), rec("Fish", "Dog")]
    junk = [r if r["correct"] else rec(r["target"], None, "invalid") for r in wrong]
    for task in ("TAU", "RACE", "DESED", "VESUS"):
        spec = TASKS.get(task)
        assert case_metrics(spec, junk)["score"] <= case_metrics(spec, wrong)["score"], task


def test_the_property_would_reject_the_old_headline():
    """Macro-F1 over class names with invalid answers as mere misses (the old `score`) fails property (a) below on
    this record set: the same wrong answer made unparseable frees a class from its false positive."""
    from sklearn.metrics import f1_score

    def old_f1(records):
        y_true = [r["target"] for r in records]
        y_pred = [r["parsed"] if r["status"] == "ok" else "<invalid>" for r in records]
        return f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro", zero_division=0)

    records = [rec("Dog", "Dog"), rec("Cat", "Cat"), rec("Cat", "Dog")]
    junk = records[:2] + [rec("Cat", None, "invalid")]
    assert old_f1(junk) > old_f1(records)
    assert _score("TAU", junk) <= _score("TAU", records)


def test_asr_headline_caps_each_utterance_at_its_length():
    records = [
        {"sample_id": "1", "target": "He said: \"Don't go!\"", "parsed": "he said dont go", "status": "ok"},
        {"sample_id": "2", "target": "The quick brown fox jumps", "parsed": "the quick brown box jumps over",
         "status": "ok"},  # 1 sub + 1 ins / 5
        {"sample_id": "3", "target": "hello", "parsed": "hello there my good friend", "status": "ok"},  # 4 ins / 1
        {"sample_id": "4", "target": "One two three", "parsed": None, "status": "invalid"},  # 3 deletions
        {"sample_id": "5", "target": "not scored at all", "parsed": None, "status": "error"},
    ]
    metrics = case_metrics(TASKS.get("LibriSpeech"), records)
    assert metrics["wer"] == pytest.approx(100 * (0 + 2 + 4 + 3) / 13, abs=1e-3)  # corpus WER, uncapped
    assert metrics["wer_capped"] == pytest.approx(100 * (0 + 2 + 1 + 3) / 13, abs=1e-3)
    assert metrics["score"] == pytest.approx(100 - metrics["wer_capped"], abs=1e-3)
    assert metrics["score_metric"] == "word_accuracy" and metrics["accuracy"] is None
    assert (metrics["n"], metrics["n_error"], metrics["n_scored"]) == (5, 1, 4)
    assert metrics["parse_fail_rate"] == 25.0
    assert 0.0 <= metrics["score_ci"][0] <= metrics["score"] <= metrics["score_ci"][1] <= 100.0


def test_all_error_case_has_no_scores():
    for task in ("TAU", "RACE", "LibriSpeech"):
        metrics = case_metrics(TASKS.get(task), [rec("Dog", None, "error")])
        assert metrics["n"] == 1 and metrics["n_error"] == 1 and metrics["n_scored"] == 0
        assert metrics["score"] is None and metrics["parse_fail_rate"] is None and metrics["score_ci"] is None


# --------------------------------------------------------------------------- monotonicity properties
# (a) a wrong valid answer turned invalid never raises the headline; (b) a wrong or invalid answer turned right
# never lowers it. Per task kind: class tasks with fixed class sets (TAU 10 scenes / 4 options, GTZAN, VESUS,
# VoxAge 5 groups), binary a/b tasks (HAD, VoxGender), per-question-option tasks (RACE, SLUE, DESED), ASR.

PROPERTY = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
CLASS_SETS = {"TAU": [f"scene{i}" for i in range(10)], "GTZAN": [f"genre{i}" for i in range(10)],
              "VESUS": ["angry", "happy", "sad", "fearful", "monotone"], "VoxAge": [f"group{i}" for i in range(5)],
              "HAD": ["real", "fake"], "VoxGender": ["Male", "Female"]}
N_OPTIONS = {"TAU": 4, "GTZAN": 4, "VESUS": 4, "VoxAge": 5, "HAD": 2, "VoxGender": 2}


@st.composite
def choice_records(draw, task: str):
    """A random scored record set of a choice task: each sample right, wrong (a valid other option) or invalid."""
    n = draw(st.integers(1, 30))
    records = []
    for i in range(n):
        if task in CLASS_SETS:
            pool = CLASS_SETS[task]
            options = draw(st.permutations(pool))[: N_OPTIONS[task]]
        else:  # per-question options: one-off texts
            options = [f"q{i} option {k} {draw(st.text('xyz', max_size=2))}" for k in range(4)]
        target = draw(st.sampled_from(options))
        outcome = draw(st.sampled_from(["right", "wrong", "invalid"]))
        others = [o for o in options if o != target]
        parsed = target if outcome == "right" else draw(st.sampled_from(others)) if outcome == "wrong" else None
        records.append(rec(target, parsed, "invalid" if parsed is None else "ok", tuple(options), f"s{i}"))
    return records


def _score(task: str, records: list[dict]) -> float:
    return case_metrics(TASKS.get(task), records)["score"]


def _replace(records: list[dict], index: int, parsed: str | None) -> list[dict]:
    old = records[index]
    new = rec(old["target"], parsed, "invalid" if parsed is None else "ok", tuple(old["choices"]), old["sample_id"])
    return records[:index] + [new] + records[index + 1:]


CHOICE_PROPERTY_TASKS = [*CLASS_SETS, "RACE", "SLUE", "DESED"]


@pytest.mark.parametrize("task", CHOICE_PROPERTY_TASKS)
@PROPERTY
@given(data=st.data())
def test_invalid_never_beats_a_wrong_answer(task: str, data):
    records = data.draw(choice_records(task))
    wrong = [i for i, r in enumerate(records) if r["status"] == "ok" and not r["correct"]]
    assume(wrong)
    index = data.draw(st.sampled_from(wrong))
    assert _score(task, _replace(records, index, None)) <= _score(task, records)


@pytest.mark.parametrize("task", CHOICE_PROPERTY_TASKS)
@PROPERTY
@given(data=st.data())
def test_a_right_answer_never_lowers_the_score(task: str, data):
    records = data.draw(choice_records(task))
    not_right = [i for i, r in enumerate(records) if not r["correct"]]
    assume(not_right)
    index = data.draw(st.sampled_from(not_right))
    assert _score(task, _replace(records, index, records[index]["target"])) >= _score(task, records)


VOCAB = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away"]


@st.composite
def asr_records(draw):
    n = draw(st.integers(1, 12))
    records = []
    for i in range(n):
        reference = " ".join(draw(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=8)))
        outcome = draw(st.sampled_from(["right", "wrong", "invalid"]))
        hypothesis = (reference if outcome == "right" else None if outcome == "invalid" else
                      " ".join(draw(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=20))))
        assume(hypothesis != reference or outcome == "right")
        records.append({"sample_id": f"u{i}", "target": reference, "parsed": hypothesis,
                        "status": "invalid" if hypothesis is None else "ok"})
    return records


@PROPERTY
@given(data=st.data())
def test_asr_invalid_never_beats_a_wrong_transcript(data):
    records = data.draw(asr_records())
    wrong = [i for i, r in enumerate(records) if r["status"] == "ok" and r["parsed"] != r["target"]]
    assume(wrong)
    index = data.draw(st.sampled_from(wrong))
    worse = [dict(r) for r in records]
    worse[index] |= {"parsed": None, "status": "invalid"}
    assert _score("LibriSpeech", worse) <= _score("LibriSpeech", records)


@PROPERTY
@given(data=st.data())
def test_asr_right_transcript_never_lowers_the_score(data):
    records = data.draw(asr_records())
    not_right = [i for i, r in enumerate(records) if r["parsed"] != r["target"]]
    assume(not_right)
    index = data.draw(st.sampled_from(not_right))
    better = [dict(r) for r in records]
    better[index] |= {"parsed": records[index]["target"], "status": "ok"}
    assert _score("LibriSpeech", better) >= _score("LibriSpeech", records)


# --------------------------------------------------------------------------- intervals

def test_wilson_interval_known_values():
    low, high = wilson_interval(0.5, 10)
    assert (low, high) == (pytest.approx(0.23659, abs=1e-4), pytest.approx(0.76341, abs=1e-4))
    assert wilson_interval(0.0, 20)[0] == 0.0 and wilson_interval(1.0, 20)[1] == 1.0
    assert wilson_lower_bound(0.8, 100) == pytest.approx(0.72669, abs=1e-5)  # the gate's one-sided bound


def test_every_headline_has_a_reproducible_interval_that_narrows_with_n():
    small = [rec("Dog", "Dog" if i < 4 else "Cat", sample_id=f"a{i}") for i in range(6)] + [
        rec("Cat", "Cat" if i < 2 else "Dog", sample_id=f"b{i}") for i in range(4)]
    large = [dict(r, sample_id=f"{r['sample_id']}-{k}") for k in range(10) for r in small]
    for task in ("TAU", "RACE"):
        a, b = case_metrics(TASKS.get(task), small), case_metrics(TASKS.get(task), large)
        assert a["score_ci"][0] <= a["score"] <= a["score_ci"][1]
        assert b["score_ci"][1] - b["score_ci"][0] < a["score_ci"][1] - a["score_ci"][0]
        assert case_metrics(TASKS.get(task), small) == a  # seeded: the same records give the same interval
        assert a["accuracy_ci"][0] <= a["accuracy"] <= a["accuracy_ci"][1]
    assert case_metrics(TASKS.get("TAU"), small)["score_ci_method"] == "bootstrap"


def test_bootstrap_replicates_use_the_headline_definition():
    records = [rec("Dog", "Dog", sample_id="1"), rec("Dog", "Cat", sample_id="2"), rec("Cat", "Cat", sample_id="3")]
    arrays = score_arrays(TASKS.get("TAU"), records)
    assert float(arrays.score()) == pytest.approx(75.0)  # (1/2 + 1) / 2
    idx = np.array([[0, 1, 2], [2, 2, 2], [0, 0, 1]])
    assert arrays.score(idx).tolist() == pytest.approx([75.0, 100.0, 200 / 3])  # absent classes do not count


def test_mcnemar_exact():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 * 0.5 ** 10)
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)
    assert mcnemar_exact(9, 3) == pytest.approx(0.14599, abs=1e-4)


# --------------------------------------------------------------------------- ASR normalisers

@pytest.mark.parametrize(
    "text,expected",
    [
        ("Don't stop, Mr. Smith-Jones!", "dont stop mr smithjones"),
        ("HELLO   World", "hello world"),
        ("a (b) [c] {d}; e: f? g!", "a b c d e f g"),
        ("\"quoted\" text.", "quoted text"),
        ("rock’n’roll", "rocknroll"),
        ("It is 10 o'clock", "it is 10 oclock"),  # no number normalisation
        ("hello\nworld", "hello world"),  # a newline or a tab separates words
        ("hello\tworld\r\nagain", "hello world again"),
        ("“Hello,” she said", "hello she said"),  # curly quotes are punctuation
        ("‘Tis the ‘best’", "tis the best"),
        ("yes—no – maybe", "yes no maybe"),  # em and en dashes separate words
        ("well‐known non‑stop", "wellknown nonstop"),  # Unicode hyphens join like ASCII ones
        ("wait -- what", "wait what"),
        ("so… fine", "so fine"),
        ("ﬁne\u00a0day", "fine day"),  # NFKC: ligature, no-break space
        ("   ", ""),
        ("", ""),
    ],
)
def test_normaliser(text, expected):
    assert normalise_transcript(text) == expected


def test_whisper_normaliser_equals_the_reference_package():
    """transformers' EnglishTextNormalizer with the shipped spelling table = the whisper-normalizer package's own
    implementation of OpenAI's normaliser."""
    from whisper_normalizer.english import EnglishTextNormalizer

    reference = EnglishTextNormalizer()
    for text in ("Mr. Smith's colour-blind neighbour paid $3.50 for twenty-one apples.",
                 "Um, I've got 2 o'clock meetings; hmm, the theatre’s organised!", "“Hello,”\nworld\tagain",
                 "They analysed the behaviour of 1,000 centre-forwards in the 1990s."):
        assert whisper_normaliser()(text) == reference(text)


def test_wer_whisper_forgives_spelling_and_numbers():
    records = [{"sample_id": "1", "target": "The colour of twenty one apples", "parsed": "the color of 21 apples",
                "status": "ok"}]
    metrics = case_metrics(TASKS.get("LibriSpeech"), records)
    assert metrics["wer_whisper"] == 0.0 and metrics["wer"] > 0.0


# --------------------------------------------------------------------------- columns for comparison with the paper
# An independent implementation of the original scripts' formulas (counted by hand here, not with sklearn), run on
# mixed answer sets: right, wrong, invalid and unusual answers.

def _f1(truths: list[str], preds: list[str], label: str) -> float:
    tp = sum(t == label and p == label for t, p in zip(truths, preds))
    fp = sum(t != label and p == label for t, p in zip(truths, preds))
    fn = sum(t == label and p != label for t, p in zip(truths, preds))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _macro(truths, preds, labels) -> float:
    return 100 * sum(_f1(truths, preds, label) for label in labels) / len(labels)


def _valid(truths, preds, allowed) -> tuple[list[str], list[str]]:
    pairs = [(t, p) for t, p in zip(truths, preds) if t in allowed and p in allowed]
    return [t for t, _ in pairs], [p for _, p in pairs]


def ref_letters_fixed(truths, preds):  # RACE, GTZAN
    t, p = _valid(truths, preds, tuple("ABCD"))
    return _macro(t, p, "ABCD") if t else 0.0


def ref_letters_present(truths, preds):  # SLUE, DESED
    t, p = _valid(truths, preds, tuple("ABCD"))
    return _macro(t, p, sorted(set(t) | set(p))) if t else 0.0


def ref_within_targets(truths, preds):  # TAU, VESUS
    t, p = _valid(truths, preds, set(truths))
    return _macro(t, p, sorted(set(t) | set(p))) if t else 0.0


def ref_fake_positive(truths, preds):  # HAD
    counts = Counter(zip(truths, preds))
    tp = counts["fake", "fake"]
    fp = sum(n for (t, p), n in counts.items() if t == "real" and p != "real")
    fn = sum(n for (t, p), n in counts.items() if t == "fake" and p != "fake")
    return 100 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def ref_groups(truths, preds):  # VoxAge
    t, p = _valid(truths, preds, set(truths))
    return _macro(t, p, sorted(set(truths))) if t else 0.0


def ref_weighted(truths, preds):  # VoxGender
    t, p = _valid(truths, preds, ("male", "female"))
    if not t:
        return 0.0
    support = Counter(t)
    return 100 * sum(support[c] * _f1(t, p, c) for c in support) / len(t)


def _levenshtein(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def _standardise(text: str) -> list[str]:
    text = text.lower().translate(str.maketrans(".!?,;:\"()[]{}", " " * 13)).replace("-", "").replace("'", "")
    return text.split()


def ref_mean_wer(references, hypotheses):  # LibriSpeech
    scores = []
    for reference, hypothesis in zip(references, hypotheses):
        if reference and hypothesis:
            r, h = _standardise(reference), _standardise(hypothesis)
            scores.append(100.0 if not r or not h else 100.0 * _levenshtein(r, h) / len(r))
    return sum(scores) / len(scores) if scores else 100.0


REFERENCE_FORMULAS: dict[str, Callable] = {
    "RACE": ref_letters_fixed, "GTZAN": ref_letters_fixed, "SLUE": ref_letters_present, "DESED": ref_letters_present,
    "TAU": ref_within_targets, "VESUS": ref_within_targets, "HAD": ref_fake_positive, "VoxAge": ref_groups,
    "VoxGender": ref_weighted, "LibriSpeech": ref_mean_wer,
}

TAU_CHOICES = ("Airport - airport", "Traveling by a bus - bus", "Urban park - park", "Metro station - metro_station")
VESUS_CHOICES = ("Angry", "Happy", "Sad", "Monotone (neutral)")
AGE_CHOICES = ("Young Adult (18-30)", "Early Career (31-40)", "Mid Career (41-50)", "Senior (51-70)", "Elderly (71+)")

# What each original extractor makes of a response (read off the scripts' code; docs/metrics.md describes them).
EXTRACTED: dict[str, list[tuple[str, str]]] = {
    "RACE": [("C", "C"), ("ANSWER: C", "A"), ("BECAUSE", "B"), ("The answer is D", "A"), ("d.", "D"), ("xyz", ""),
             ("", ""), ("  c  ", "C")],
    "GTZAN": [("B", "B"), ("It is C", "C"), ("D) Rock", "D"), ("option b", "B"), ("Hmm, a)", "A"), ("xyz", ""),
              ("The genre is Blues", "B"), ("assistant\nC", "C"), ("", "")],
    "SLUE": [("A", "A"), ("B.", "B"), ("D) Rome", "D"), ("It is C", "C"), ("Rome", ""), ("Berlin", "B"), ("", ""),
             ("option c", "C")],
    "DESED": [("A", "A"), ("The dog, C", "C"), ("Dog", "D"), ("cat", "C"), ("xyz", ""), ("assistant\nB", "B")],
    "TAU": [("a", "A"), ("b) bus", "B"), ("c: park", "C"), ("I pick option d", "D"), ("metro station - metro_station",
            "D"), ("urban park", "C"), ("traveling by a bus", "B"), ("airport", ""), ("xyz", ""), ("it is d) now", "D")],
    "VESUS": [("a", "A"), ("b.", "B"), ("(c)", "C"), ("I feel neutral", "D"), ("furious", ""), ("option b", "B"),
              ("xyz", ""), ("sorrow", "")],
    "HAD": [("a", "real"), ("b", "fake"), ("b.", "fake"), ("It is a fake clip", "real"), ("answer a", "real"),
            ("This sounds real", "real"), ("real or fake", ""), ("synthetic", "fake"), ("authentic voice", "real"),
            ("xyz", ""), ("the voice is natural", "")],
    "VoxAge": [("a", "Young Adult (18-30)"), ("e)", "Elderly (71+)"), ("I think b", "Early Career (31-40)"),
               ("answer c", "Mid Career (41-50)"), ("senior (51-70)", "Senior (51-70)"), ("xyz", ""),
               ("a or b", "Early Career (31-40)")],
    "VoxGender": [("a", "male"), ("b.", "female"), ("female", "female"), ("male", "male"),
                  ("the voice is female, not male", ""), ("option a", "male"), ("xyz", "")],
    "LibriSpeech": [("Spoken Content: hello world", "hello world"), ("hello world", "hello world"),
                    ("<transcribed text here>", ""), ("Transcript: A B", "A B"), ("", "")],
}
CHOICES_OF = {"TAU": TAU_CHOICES, "VESUS": VESUS_CHOICES, "VoxAge": AGE_CHOICES, "HAD": ("real", "fake"),
              "VoxGender": ("Male", "Female"), "SLUE": ("Paris", "Berlin", "Madrid", "Rome"),
              "DESED": ("Dog", "Cat", "Running water", "Vacuum cleaner"),
              "RACE": ("In the park", "At school", "At home", "On a bus"),
              "GTZAN": ("Blues - blues", "Hip-hop - hiphop", "Jazz - jazz", "Rock - rock")}


def _seed_record(task: str, target_index: int, parsed_index: int | None, response: str) -> dict:
    if task == "LibriSpeech":
        reference = ["hello world", "a b c", "the cat sat"][target_index % 3]
        hypothesis = None if parsed_index is None else ["hello world", "a b", "dog", "...", reference][parsed_index % 5]
        return {"sample_id": f"u{next(SAMPLE_IDS)}", "target": reference, "parsed": hypothesis, "response": response,
                "status": "invalid" if hypothesis is None else "ok", "choices": [], "letters": []}
    choices = CHOICES_OF[task]
    letters = ("a", "b") if task in ("HAD", "VoxGender") else LETTERS[: len(choices)]
    parsed = None if parsed_index is None else choices[parsed_index % len(choices)]
    return rec(choices[target_index % len(choices)], parsed, "invalid" if parsed is None else "ok", choices,
               response=response, letters=letters)


@pytest.mark.parametrize("task", sorted(EXTRACTED))
def test_original_extractors(task: str):
    recipe = SEED_RECIPES[task]
    for response, expected in EXTRACTED[task]:
        assert recipe.extract(_seed_record(task, 0, 0, response)) == expected, (task, response)


def _truth(task: str, record: dict) -> str:
    if task in ("HAD", "VoxGender"):
        return record["target"].lower()
    if task in ("VoxAge", "LibriSpeech"):
        return record["target"]
    return record["target_letter"]


def _ours(task: str, record: dict) -> str:
    if record["status"] != "ok":
        return ""
    if task in ("HAD", "VoxGender"):
        return record["parsed"].lower()
    if task in ("VoxAge", "LibriSpeech"):
        return record["parsed"]
    return record["parsed_letter"]


@pytest.mark.parametrize("task", sorted(REFERENCE_FORMULAS))
@PROPERTY
@given(data=st.data())
def test_seed_columns_equal_the_original_formulas(task: str, data):
    """Mixed answer sets: our parsed answers right, wrong or invalid, responses from the extractor table."""
    n = data.draw(st.integers(1, 25))
    records = []
    for _ in range(n):
        response, _ = data.draw(st.sampled_from(EXTRACTED[task]))
        parsed = data.draw(st.one_of(st.none(), st.integers(0, 4)))
        records.append(_seed_record(task, data.draw(st.integers(0, 4)), parsed, response))
    metrics = case_metrics(TASKS.get(task), records)
    column = "seed_wer" if task == "LibriSpeech" else "seed_f1"
    truths = [_truth(task, r) for r in records]
    expected_labels = dict(EXTRACTED[task])
    formula = REFERENCE_FORMULAS[task]
    assert metrics[column] == pytest.approx(formula(truths, [_ours(task, r) for r in records]), abs=1e-3)
    assert metrics["seed_e2e"] == pytest.approx(formula(truths, [expected_labels[r["response"]] for r in records]),
                                                abs=1e-3)


def test_seed_columns_hand_values():
    """A few figures by hand (and: nothing valid scores 0.0 F1, and 100 WER, as the scripts print)."""
    race = [_seed_record("RACE", 0, 0, "A"), _seed_record("RACE", 1, 0, "A"), _seed_record("RACE", 2, None, "x")]
    # letters A-D fixed: A (tp1 fp1) -> 2/3; B, C, D -> 0
    assert case_metrics(TASKS.get("RACE"), race)["seed_f1"] == pytest.approx(100 * (2 / 3) / 4, abs=1e-3)
    had = [_seed_record("HAD", 0, None, "xyz"), _seed_record("HAD", 1, 1, "b")]  # real unparsed: a false "fake"
    assert case_metrics(TASKS.get("HAD"), had)["seed_f1"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    nothing = [_seed_record("SLUE", 0, None, "xyz")]
    assert case_metrics(TASKS.get("SLUE"), nothing)["seed_f1"] == 0.0
    assert case_metrics(TASKS.get("SLUE"), nothing)["seed_e2e"] == 0.0
    silent = [_seed_record("LibriSpeech", 0, None, "")]
    assert case_metrics(TASKS.get("LibriSpeech"), silent)["seed_wer"] == 100.0


def test_seed_normaliser_keeps_the_originals_gaps():
    """The original normaliser removes only ASCII apostrophes and hyphens: a curly one stays in the word."""
    records = [_seed_record("LibriSpeech", 0, 4, "x") | {"target": "don’t go", "parsed": "dont go"}]
    assert case_metrics(TASKS.get("LibriSpeech"), records)["seed_wer"] == 50.0
    assert case_metrics(TASKS.get("LibriSpeech"), records)["wer"] == 0.0
