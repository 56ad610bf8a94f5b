"""Strict answer parsers (design.md "Scoring rules").

Choice answers go through one chain and stop at the first rule that decides:
exact letter -> leading letter -> last explicit "answer/option/choice X" -> a lone letter when exactly
one option letter appears -> exact option text -> exactly one option named in the text -> invalid.
There is no "first letter anywhere" rule and no random guess: an undecided answer is `invalid`,
counts as wrong and is reported through parse_fail_rate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INVALID = "invalid"
# Bump when a parser's behaviour changes: resume then recomputes exactly the records of that answer kind.
PARSER_VERSIONS = {"choice": "1", "text": "1"}


@dataclass(frozen=True)
class Parsed:
    label: str | None  # class name (choice text) or cleaned transcript; None when invalid
    letter: str | None  # option letter for choice tasks
    rule: str  # the rule that decided, or "invalid"


def _letter_pattern(letters: Sequence[str]) -> str:
    return "[" + "".join(sorted({c.upper() for c in letters} | {c.lower() for c in letters})) + "]"


def _is_article(text: str, start: int, end: int) -> bool:
    """'a'/'A' used as the English article ("This is a fake", "A fake segment") is not an option letter."""
    token = text[start:end]
    if token not in ("a", "A") or not re.match(r"\s+[A-Za-z]{2,}", text[end:]):
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

    def hit(letter: str | None, rule: str) -> Parsed:
        assert letter is not None
        return Parsed(choices[list(letters).index(letter)], letter, rule)

    bare = text.strip(" \t\n'\"`*[]().:")
    if (letter := _pick(letters, bare)) and len(bare) == 1:
        return hit(letter, "exact_letter")

    # "X." / "X)" / "(X)" / "X:" then anything, or a bare "X" alone on the first line
    lead = re.match(rf"^[\(\[]?({letter_re})(?:[\)\]][\.:]?(?=\s|$)|[\.:,](?=\s|$)|[ \t]*(?=\n))", text)
    if lead and (letter := _pick(letters, lead.group(1))):
        return hit(letter, "leading_letter")

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
        return hit(letter, "explicit")

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
    names = [class_names(choice, aliases) for choice in choices]
    for index, options in enumerate(names):
        if normalized in options:
            return Parsed(choices[index], letters[index], "exact_text")

    mentioned = _mentioned(normalized, names)
    if len(mentioned) == 1:
        index = mentioned.pop()
        return Parsed(choices[index], letters[index], "mention")
    return Parsed(None, None, INVALID)


def _mentioned(normalized: str, names: list[list[str]]) -> set[int]:
    """Options named in the text; a name inside a longer matched name does not count ("metro" in "metro station")."""
    spans: list[tuple[int, int, int]] = []
    for index, options in enumerate(names):
        for name in options:
            for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", normalized):
                spans.append((m.start(), m.end(), index))
    return {
        index
        for start, end, index in spans
        if not any(s <= start and end <= e and (e - s) > (end - start) for s, e, _ in spans)
    }


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
