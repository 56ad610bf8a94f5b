"""Strict answer parsers (docs/architecture.md, "Scoring rules").

Choice answers go through one chain and stop at the first rule that decides:
exact letter -> leading letter -> last explicit "answer/option/choice X" -> a lone letter when exactly
one option letter appears -> exact option text -> exactly one option named in the text -> invalid.
A hedge offers two options as alternatives ("A or B", "either a or b", "between C and D", "not sure if A or
B", "A/B", "a, b", "real or fake"); an answer whose deciding letter or option is part of one is no answer
(rule "hedge"), whatever letter the rule would pick. There is no "first letter anywhere" rule and no random
guess: an undecided answer is invalid, counts as wrong and is reported through parse_fail_rate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import pairwise
from dataclasses import dataclass

INVALID = "invalid"
# Bump when a parser's behaviour changes: resume then recomputes exactly the records of that answer kind.
PARSER_VERSIONS = {"choice": "2", "text": "1"}


@dataclass(frozen=True)
class Parsed:
    label: str | None  # class name (choice text) or cleaned transcript; None when invalid
    letter: str | None  # option letter for choice tasks
    rule: str  # the rule that decided, or why there is no answer: "invalid" (undecided) or "hedge"

    @property
    def valid(self) -> bool:
        return self.label is not None


def _letter_pattern(letters: Sequence[str]) -> str:
    return "[" + "".join(sorted({c.upper() for c in letters} | {c.lower() for c in letters})) + "]"


# Words that join alternatives; an article is never followed by one ("a or b" names two letters).
JOINERS = ("or", "and", "nor", "vs", "versus")
_JOINER = r"(?:or|and|nor|vs|versus)"


def _is_article(text: str, start: int, end: int) -> bool:
    """'a'/'A' used as the English article ("This is a fake", "A fake segment") is not an option letter."""
    token = text[start:end]
    following = re.match(r"\s+([A-Za-z]{2,})", text[end:])
    if token not in ("a", "A") or not following or following.group(1).lower() in JOINERS:
        return False
    if token == "a":
        return True
    before = text[:start].rstrip()
    return before == "" or before[-1] in ".!?\n"  # capital "A word" only at a sentence start


def _pick(letters: Sequence[str], token: str) -> str | None:
    for letter in letters:
        if letter.lower() == token.lower():
            return letter
    return None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s/+()-]", " ", text.lower().replace("_", " "))).strip()


def class_names(choice: str, aliases: Mapping[str, Sequence[str]]) -> list[str]:
    """Ways a response may name an option: its text, both halves of "Name - code", the name without a
    trailing "(18-30)"-style qualifier, and the task's aliases."""
    names = [choice]
    if " - " in choice:
        names.extend(part for part in choice.split(" - ") if part.strip())
    names.extend(re.sub(r"\s*\([^)]*\)\s*$", "", n) for n in list(names) if n.rstrip().endswith(")"))
    for key in list(names):
        names.extend(aliases.get(key.strip().lower(), ()))
    return list(dict.fromkeys(_norm(n) for n in names if _norm(n)))


def parse_choice(
    response: str,
    choices: Sequence[str],
    letters: Sequence[str],
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> Parsed:
    aliases = aliases or {}
    text = response.strip().replace("**", "")
    letter_re = _letter_pattern(letters)

    names = [class_names(choice, aliases) for choice in choices]
    hedges = _hedges(text, choices, letters, letter_re, names)

    def hit(letter: str | None, rule: str, at: int | None = None) -> Parsed:
        """The option of `letter`, unless the token at `at` or its option is offered as one of two alternatives."""
        assert letter is not None
        index = list(letters).index(letter)
        if any((at if kind == "letter" else index) in (one, two) for kind, one, two in hedges):
            return Parsed(None, None, "hedge")
        return Parsed(choices[index], letter, rule)

    bare = text.strip(" \t\n'\"`*[]().:")
    if (letter := _pick(letters, bare)) and len(bare) == 1:
        return Parsed(choices[list(letters).index(letter)], letter, "exact_letter")

    # "X." / "X)" / "(X)" / "X:" then anything, or a bare "X" alone on the first line
    lead = re.match(rf"^[\(\[]?({letter_re})(?:[\)\]][\.:]?(?=\s|$)|[\.:,](?=\s|$)|[ \t]*(?=\n))", text)
    if lead and (letter := _pick(letters, lead.group(1))):
        return hit(letter, "leading_letter", lead.start(1))

    explicit = [
        m
        for m in re.finditer(
            rf"\b(?:answer|option|choice)\b(?:\s+(?:is|would be|should be))?\s*[:=]?\s*[\(\[\"'*]?({letter_re})(?![\w'])",
            text,
            flags=re.IGNORECASE,
        )
        if not _is_article(text, m.start(1), m.end(1))
    ]
    if explicit and (letter := _pick(letters, explicit[-1].group(1))):
        return hit(letter, "explicit", explicit[-1].start(1))

    lone: set[str] = set()
    unsure: set[str] = set()  # article-looking tokens written in the task's own letter case
    for m in re.finditer(rf"(?<![\w'’-])({letter_re})(?![\w'’-])", text):
        if not _is_article(text, m.start(1), m.end(1)):
            lone.add(m.group(1).lower())
        elif m.group(1) in letters:
            unsure.add(m.group(1).lower())
    if len(lone) == 1 and unsure <= lone:
        return hit(_pick(letters, lone.pop()), "lone_letter")

    normalized = _norm(text)
    for index, options in enumerate(names):
        if normalized in options:
            return Parsed(choices[index], letters[index], "exact_text")

    mentioned = _mentioned(normalized, names)
    if len(mentioned) == 1:
        index = mentioned.pop()
        return Parsed(choices[index], letters[index], "mention")
    return Parsed(None, None, "hedge" if hedges else INVALID)


def _name_spans(normalized: str, names: list[list[str]]) -> list[tuple[int, int, int]]:
    """(start, end, option) of every option name in the text; a name inside a longer matched name does not count
    ("metro" in "metro station")."""
    spans: list[tuple[int, int, int]] = []
    for index, options in enumerate(names):
        for name in options:
            for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", normalized):
                spans.append((m.start(), m.end(), index))
    return sorted((start, end, index) for start, end, index in spans
                  if not any(s <= start and end <= e and (e - s) > (end - start) for s, e, _ in spans))


def _mentioned(normalized: str, names: list[list[str]]) -> set[int]:
    """Options named in the text."""
    return {index for _, _, index in _name_spans(normalized, names)}


# A negation right before the first option ("not B or C", "neither a nor b", "isn't a bus or a tram").
_NEGATED = re.compile(r"(?:\bnot|\bneither|\bnor|n['’ ]t)\s+(?:(?:a|an|the|option|choice)\s+)?\(?$", re.IGNORECASE)
_FILLER = r"(?:(?:maybe|possibly|perhaps|probably|option|choice|answer|a|an|the)\s+)*"
_MASK = "Q"  # fills an option text quoted whole while letters are looked for (no option letter is Q)


def _hedges(text: str, choices: Sequence[str], letters: Sequence[str], letter_re: str,
           names: list[list[str]]) -> list[tuple[str, int, int]]:
    """Pairs of different options offered as alternatives: ("letter", position, position) of two option letters
    joined by or / and / nor / vs / a slash or merely listed ("a, b"), and ("name", option, option) of two option
    names joined by such a word; a negated pair ("not B or C") is none. Option texts quoted whole are masked
    first (same length, so positions hold), so RACE's "D. Both A and B" holds no hedge."""
    masked = text
    for choice in sorted(choices, key=len, reverse=True):  # a word in their place keeps "a <option>" an article
        if len(choice.strip()) > 1:
            masked = re.sub(re.escape(choice.strip()), lambda m: _MASK * len(m.group()), masked, flags=re.IGNORECASE)
    found = [m for m in re.finditer(rf"(?<![\w'’-])({letter_re})(?![\w'’-])", masked)
             if not _is_article(masked, m.start(1), m.end(1))]
    pairs: list[tuple[str, int, int]] = []
    for first, second in pairwise(found):
        one, two = _pick(letters, first.group(1)), _pick(letters, second.group(1))
        if one == two or _NEGATED.search(masked[: first.start()]):
            continue
        between = masked[first.end(): second.start()]
        own = "|".join([f"{_MASK.lower()}+", *(re.escape(n) for n in names[list(letters).index(one)])])
        m = re.fullmatch(rf"\)?\s*(?:(?:{own})\s*)?\)?\s*(?P<join>(?:{_JOINER}|/)\s+{_FILLER})?\(?\s*",
                         _norm(between) + " ")
        # joined by a word or a slash ("A. Airport or B. Bus"), or merely listed without a line or sentence break
        if m and (m.group("join") or not re.search(r"[.!?:;\n]", between)):
            pairs.append(("letter", first.start(1), second.start(1)))
    normalized = _norm(text)
    spans = _name_spans(normalized, names)
    for (start, end, one), (next_start, _, two) in pairwise(spans):
        if one != two and not _NEGATED.search(normalized[:start]) and re.fullmatch(
                rf"\s*(?:{_JOINER}|/)\s+{_FILLER}", normalized[end:next_start] + " "):
            pairs.append(("name", one, two))
    return pairs


TRANSCRIPT_MARKERS = ("spoken content:", "content:", "transcription:", "transcript:")


def parse_transcript(response: str) -> Parsed:
    """Keep the text after the first answer marker (seed clean_response); empty means invalid."""
    text = response.strip()
    lowered = text.lower()
    rule = "raw"
    for marker in TRANSCRIPT_MARKERS:
        at = lowered.find(marker)
        if at >= 0:
            text, rule = text[at + len(marker) :], "marker"
            break
    text = text.replace("<transcribed text here>", "").strip()
    return Parsed(text, None, rule) if text else Parsed(None, None, INVALID)
