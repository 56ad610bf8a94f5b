"""Answer parsers, table-driven per registered task (docs/architecture.md "Scoring rules", docs/seed.md traps).

Every response goes through `runner.score_response`, the function live runs and `marathon rescore` share,
so these tables pin what the leaderboard counts as correct, wrong and invalid.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marathon_lib.scoring import score_response
from marathon_lib.tasks import TASKS, Sample, parse_choice, parse_transcript

UPPER4 = ("A", "B", "C", "D")

# One realistic sample per task (choice texts as the seed's manifests write them).
CHOICES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {  # task -> (choices, letters, target)
    "RACE": (("In the park", "At school", "At home", "On a bus"), UPPER4, "At home"),
    "SLUE": (("Paris", "Berlin", "Madrid", "Rome"), UPPER4, "Madrid"),
    "TAU": (
        (
            "Airport - airport",
            "Traveling by an underground metro - metro",
            "Metro station - metro_station",
            "Street with medium level of traffic - street_traffic",
        ),
        UPPER4,
        "Metro station - metro_station",
    ),
    "GTZAN": (("Blues - blues", "Hip-hop - hiphop", "Jazz - jazz", "Rock - rock"), UPPER4, "Jazz - jazz"),
    "DESED": (("Dog", "Cat", "Running water", "Vacuum cleaner"), UPPER4, "Running water"),
    "VESUS": (("Angry", "Happy", "Monotone", "Sad"), UPPER4, "Monotone"),
    "HAD": (("real", "fake"), ("a", "b"), "fake"),
    "VoxAge": (
        ("Young Adult (18-30)", "Early Career (31-40)", "Mid Career (41-50)", "Senior (51-70)", "Elderly (71+)"),
        ("A", "B", "C", "D", "E"),
        "Elderly (71+)",
    ),
    "VoxGender": (("Male", "Female"), ("a", "b"), "Female"),
}
CHOICE_TASKS = sorted(CHOICES)


def sample_for(task: str) -> Sample:
    choices, letters, target = CHOICES[task]
    return Sample(f"{task}-s0", Path(f"/nonexistent/{task}.wav"), target, "question?", choices, letters)


def asr_sample() -> Sample:
    return Sample("1089-134686-0000", Path("/nonexistent/a.flac"), "hello world")


def test_every_registered_task_is_covered():
    """A new task must get a parser table here; the text task is covered by the transcript table."""
    registered = {name: TASKS.get(name).answer for name in TASKS}
    assert {n for n, kind in registered.items() if kind == "choice"} == set(CHOICE_TASKS)
    assert {n for n, kind in registered.items() if kind == "text"} == {"LibriSpeech"}


# --------------------------------------------------------------------------- choice tables

# (task, response, expected option text or None for invalid)
CHOICE_CASES = [
    # exact letters and their decorations, for every 4-option task
    *[(t, r, CHOICES[t][0][2]) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS")
      for r in ("C", "(C)", "C.", "c", "[C]", "**C**", " C \n", "C:")],
    *[(t, "C) " + CHOICES[t][0][2], CHOICES[t][0][2]) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED")],
    *[(t, "Option B", CHOICES[t][0][1]) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS")],
    *[(t, "The answer is D.", CHOICES[t][0][3]) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS")],
    # seed trap: the first-letter-anywhere scan turned "ANSWER: C" into A and "BECAUSE" into B
    *[(t, "ANSWER: C", CHOICES[t][0][2]) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS")],
    *[(t, "BECAUSE", None) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS")],
    # two letters, a letter outside the options, nothing at all: invalid, never a guess
    *[(t, "A and B", None) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS")],
    *[(t, "E", None) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS")],
    *[(t, "The answer is E.", None) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS")],
    *[(t, "", None) for t in CHOICE_TASKS],
    *[(t, "   \n ", None) for t in CHOICE_TASKS],
    ("RACE", "I cannot tell from the audio.", None),
    ("RACE", "At home", "At home"),
    ("RACE", "B. At school", "At school"),
    ("SLUE", "The entity mentioned is Berlin.", "Berlin"),
    ("SLUE", "Paris or Rome", None),
    # TAU: "metro station" is the metro_station option, not the underground metro one
    ("TAU", "metro station", "Metro station - metro_station"),
    ("TAU", "Metro station.", "Metro station - metro_station"),
    ("TAU", "metro_station", "Metro station - metro_station"),
    ("TAU", "It sounds like a metro station.", "Metro station - metro_station"),
    ("TAU", "street traffic", "Street with medium level of traffic - street_traffic"),
    ("TAU", "Street traffic", "Street with medium level of traffic - street_traffic"),
    ("TAU", "Airport", "Airport - airport"),
    ("TAU", "airport or metro station", None),
    ("GTZAN", "jazz", "Jazz - jazz"),
    ("GTZAN", "hip-hop", "Hip-hop - hiphop"),
    ("GTZAN", "This is rock music", "Rock - rock"),
    ("DESED", "a dog barking", "Dog"),
    ("DESED", "running water", "Running water"),
    ("DESED", "A dog and a cat", None),
    # VESUS aliases: neutral is Monotone
    ("VESUS", "neutral", "Monotone"),
    ("VESUS", "Neutral.", "Monotone"),
    ("VESUS", "The speaker sounds neutral", "Monotone"),
    ("VESUS", "happiness", "Happy"),
    ("VESUS", "anger", "Angry"),
    ("VESUS", "sad", "Sad"),
    ("VESUS", "C) Monotone", "Monotone"),
    # HAD: letters a/b, and "a" is mostly the English article
    ("HAD", "a", "real"),
    ("HAD", "b", "fake"),
    ("HAD", "A", "real"),
    ("HAD", "B", "fake"),
    ("HAD", "b.", "fake"),
    ("HAD", "(a)", "real"),
    ("HAD", "This is a fake", "fake"),
    ("HAD", "This is a fake.", "fake"),
    ("HAD", "The answer is a fake one", "fake"),
    ("HAD", "The answer is a real recording.", "real"),
    ("HAD", "A fake segment is present.", "fake"),
    ("HAD", "It is a real recording", "real"),
    ("HAD", "The answer is b.", "fake"),
    ("HAD", "Answer: a", "real"),
    ("HAD", "fake", "fake"),
    ("HAD", "real", "real"),
    ("HAD", "synthesized", "fake"),
    ("HAD", "It sounds authentic.", "real"),
    ("HAD", "It is real, not fake", None),
    ("HAD", "c", None),
    ("HAD", "BECAUSE", None),
    # VoxAge: 5 options, group text with a "(18-30)" qualifier
    ("VoxAge", "E", "Elderly (71+)"),
    ("VoxAge", "e", "Elderly (71+)"),
    ("VoxAge", "E) Elderly (71+)", "Elderly (71+)"),
    ("VoxAge", "Young Adult", "Young Adult (18-30)"),
    ("VoxAge", "young adult (18-30)", "Young Adult (18-30)"),
    ("VoxAge", "Senior", "Senior (51-70)"),
    ("VoxAge", "The answer is B.", "Early Career (31-40)"),
    ("VoxAge", "F", None),
    # VoxGender: "male" is a substring of "female"
    ("VoxGender", "female", "Female"),
    ("VoxGender", "Female", "Female"),
    ("VoxGender", "The voice is female.", "Female"),
    ("VoxGender", "This is a female voice", "Female"),
    ("VoxGender", "male", "Male"),
    ("VoxGender", "This is a male voice.", "Male"),
    ("VoxGender", "The speaker is a woman", "Female"),
    ("VoxGender", "a", "Male"),
    ("VoxGender", "b", "Female"),
    ("VoxGender", "The speaker is male, not female", None),
    # hedges naming two options are no answer, whichever letter a later rule would have picked
    *[(t, r, None) for t in ("HAD", "VoxGender") for r in (
        "A or B", "a or b", "A or B.", "Either a or b", "either A or B", "between a and b", "It is between A and B",
        "not sure if a or b", "I'm not sure if it's A or B", "The answer is A or B", "The answer is a or b",
        "A/B", "a / b", "a) or b)", "(a) or (b)", "A) or B)", "a, b", "A, B", "a or maybe b", "a vs b")],
    ("HAD", "a) real or b) fake", None),
    ("HAD", "real or fake", None),
    ("HAD", "It could be either real or fake", None),
    ("HAD", "Either real or fake", None),
    ("VoxGender", "a) male or b) female", None),
    ("VoxGender", "male or female", None),
    ("VoxGender", "Not sure if male or female", None),
    *[(t, r, None) for t in ("RACE", "SLUE", "TAU", "GTZAN", "DESED", "VESUS") for r in (
        "A or B", "Either B or C", "Between C and D", "Not sure if A or B", "The answer is A or B", "C/D",
        "answer: B or C", "B) or C)", "A, D", "Option A or option B")],
    ("TAU", "A. Airport or B. Traveling by an underground metro", None),
    ("TAU", "Airport or metro station", None),
    ("GTZAN", "C. Jazz or D. Rock", None),
    ("GTZAN", "jazz or rock", None),
    ("VESUS", "angry or sad", None),
    # not hedges: one answer with a negated alternative, a sentence break, a list inside the option's own text
    ("HAD", "b. a synthetic voice", "fake"),
    ("HAD", "B, a fake", "fake"),
    ("TAU", "A, not B or C", "Airport - airport"),
    ("TAU", "A. Airport. B is wrong", "Airport - airport"),
    ("TAU", "Answer: A. (B is less likely)", "Airport - airport"),
]


def _case_id(case: tuple) -> str:
    task, response, expected = case
    return f"{task}:{response!r}->{expected}"


@pytest.mark.parametrize("task,response,expected", CHOICE_CASES, ids=[_case_id(c) for c in CHOICE_CASES])
def test_score_choice_response(task: str, response: str, expected: str | None):
    spec = TASKS.get(task)
    sample = sample_for(task)
    scored = score_response(spec, sample, response)
    assert scored["parsed"] == expected, scored
    if expected is None:
        assert scored["status"] == "invalid"
        assert scored["parse_rule"] in ("invalid", "hedge")
        assert scored["parsed_letter"] is None
        assert scored["correct"] is False  # invalid counts as wrong
    else:
        assert scored["status"] == "ok"
        assert scored["parse_rule"] not in ("invalid", "hedge")
        assert scored["parsed_letter"] == sample.letters[sample.choices.index(expected)]
        assert scored["correct"] is (expected == sample.target)


@pytest.mark.parametrize(
    "response,letter,rule",
    [
        ("C", "C", "exact_letter"),
        ("(C)", "C", "exact_letter"),
        ("C.", "C", "exact_letter"),
        ("c", "C", "exact_letter"),
        ("C) Metro station", "C", "leading_letter"),
        ("ANSWER: C", "C", "explicit"),
        ("Option B", "B", "explicit"),
        ("I would pick D here", "D", "lone_letter"),
        ("metro station", "C", "exact_text"),
        ("It sounds like a metro station", "C", "mention"),
        ("A and B", None, "hedge"),
        ("BECAUSE", None, "invalid"),
    ],
)
def test_parse_choice_rule_chain(response: str, letter: str | None, rule: str):
    choices, letters, _ = CHOICES["TAU"]
    parsed = parse_choice(response, choices, letters, TASKS.get("TAU").aliases)
    assert (parsed.letter, parsed.rule) == (letter, rule)
    assert parsed.label == (choices[letters.index(letter)] if letter else None)


def test_option_text_naming_letters_is_no_hedge():
    """RACE options such as "Both A and B" name letters themselves: quoting the option is an answer."""
    choices = ("In the park", "Both A and B", "At home", "All of the above")
    for response in ("B. Both A and B", "Both A and B", "B) Both A and B", "The answer is B: Both A and B"):
        assert parse_choice(response, choices, UPPER4).letter == "B", response
    assert parse_choice("A or C", choices, UPPER4).rule == "hedge"


def test_last_explicit_answer_wins():
    choices, letters, _ = CHOICES["RACE"]
    parsed = parse_choice("Option A looks tempting, but the answer is C.", choices, letters)
    assert parsed.letter == "C" and parsed.label == "At home"


@pytest.mark.parametrize("response", ["C\n\nExplanation: the passage says A.", "C\nB and D are not mentioned."])
def test_bare_leading_letter_on_its_own_line(response: str):
    choices, letters, _ = CHOICES["RACE"]
    parsed = parse_choice(response, choices, letters)
    assert (parsed.letter, parsed.label) == ("C", "At home")


def test_aliases_are_task_specific():
    """"neutral" names Monotone only through VESUS's alias table."""
    choices = ("Angry", "Happy", "Monotone", "Sad")
    assert parse_choice("neutral", choices, UPPER4, TASKS.get("VESUS").aliases).label == "Monotone"
    assert parse_choice("neutral", choices, UPPER4, {}).label is None


def test_choice_letters_are_mapped_through_the_samples_choices():
    """The same letter means different classes in different samples (options are shuffled per item)."""
    spec = TASKS.get("DESED")
    one = Sample("x", Path("/x.wav"), "Dog", "", ("Dog", "Cat", "Blender", "Frying"), UPPER4)
    two = Sample("y", Path("/y.wav"), "Dog", "", ("Cat", "Dog", "Blender", "Frying"), UPPER4)
    assert score_response(spec, one, "A")["correct"] is True
    assert score_response(spec, two, "A")["correct"] is False
    assert score_response(spec, two, "A")["parsed"] == "Cat"
    assert score_response(spec, two, "dog")["correct"] is True


# --------------------------------------------------------------------------- transcripts

TRANSCRIPT_CASES = [
    ("Spoken Content: hello world", "hello world", "marker"),
    ("spoken content: hello world", "hello world", "marker"),
    ("SPOKEN CONTENT: Hello World.", "Hello World.", "marker"),
    ("Sure! Spoken Content: hello world", "hello world", "marker"),
    ("Transcription: the cat sat", "the cat sat", "marker"),
    ("Transcript: the cat sat", "the cat sat", "marker"),
    ("Content: the cat sat", "the cat sat", "marker"),
    ("Spoken Content: <transcribed text here> hello world", "hello world", "marker"),
    ("<transcribed text here>hello world", "hello world", "raw"),
    ("  hello world  ", "hello world", "raw"),
    ("Spoken Content: <transcribed text here>", None, "invalid"),
    ("Spoken Content:", None, "invalid"),
    ("", None, "invalid"),
    ("   \n", None, "invalid"),
]


@pytest.mark.parametrize("response,expected,rule", TRANSCRIPT_CASES)
def test_score_transcript(response: str, expected: str | None, rule: str):
    spec = TASKS.get("LibriSpeech")
    scored = score_response(spec, asr_sample(), response)
    assert scored["parsed"] == expected
    assert scored["parse_rule"] == rule
    assert scored["status"] == ("invalid" if expected is None else "ok")
    assert scored["correct"] is None  # ASR is scored by WER, never per-sample correctness
    assert scored["parsed_letter"] is None
    assert parse_transcript(response).label == expected


# --------------------------------------------------------------------------- properties

# No example database: nothing is persisted between runs (hypothesis caches go to the gitignored .hypothesis/).
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])


@st.composite
def task_and_letter(draw):
    task = draw(st.sampled_from(CHOICE_TASKS))
    letter = draw(st.sampled_from(CHOICES[task][1]))
    return task, letter


@PROPERTY_SETTINGS
@given(task_and_letter(), st.sampled_from(["{}", "{}.", "The answer is {}.", "Answer: {}", "({})"]))
def test_letter_answers_parse_to_their_option(task_letter, template):
    task, letter = task_letter
    sample = sample_for(task)
    option = sample.choices[sample.letters.index(letter)]
    scored = score_response(TASKS.get(task), sample, template.format(letter))
    assert scored["status"] == "ok"
    assert scored["parsed"] == option
    assert scored["parsed_letter"] == letter


WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9)


@st.composite
def random_choice_sample(draw):
    """Random option texts (distinct), 2-5 options with the task's letter case."""
    n = draw(st.integers(2, 5))
    texts = draw(st.lists(st.lists(WORD, min_size=1, max_size=3).map(" ".join), min_size=n, max_size=n,
                          unique_by=lambda s: s.lower()))
    letters = draw(st.sampled_from([tuple("ABCDE"[:n]), tuple("abcde"[:n])]))
    return texts, letters


@PROPERTY_SETTINGS
@given(random_choice_sample(), st.data())
def test_letters_parse_with_any_option_texts(sample, data):
    texts, letters = sample
    index = data.draw(st.integers(0, len(letters) - 1))
    for response in (letters[index], f"The answer is {letters[index]}."):
        parsed = parse_choice(response, texts, letters)
        assert (parsed.label, parsed.letter) == (texts[index], letters[index]), response


@PROPERTY_SETTINGS
@given(st.sampled_from(CHOICE_TASKS), st.text(max_size=80))
def test_parse_never_leaves_the_samples_choices(task, response):
    sample = sample_for(task)
    parsed = parse_choice(response, sample.choices, sample.letters, TASKS.get(task).aliases)
    if parsed.rule in ("invalid", "hedge"):
        assert parsed.label is None and parsed.letter is None and not parsed.valid
    else:
        assert parsed.label in sample.choices
        assert parsed.letter == sample.letters[sample.choices.index(parsed.label)]


@PROPERTY_SETTINGS
@given(random_choice_sample(), st.text(alphabet=st.sampled_from(list("ABCDEabcde .():,!?-'\nxyz")), max_size=40))
def test_parse_never_leaves_random_choices(sample, response):
    texts, letters = sample
    parsed = parse_choice(response, texts, letters)
    assert parsed.label is None or parsed.label in texts
    if parsed.label is not None:
        assert parsed.letter == letters[texts.index(parsed.label)]
