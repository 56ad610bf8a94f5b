"""What a task is: a declarative spec (loader, prompt, answer kind, parser, generation length)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

AnswerKind = Literal["choice", "text"]


@dataclass(frozen=True)
class Sample:
    """One benchmark item as loaded from the seed's on-disk format.

    `target` is the class name (the text of the correct option) for choice tasks and the
    reference transcript for ASR. `error` is set when the item itself is unusable (missing
    key, answer not among the choices, missing transcript): it is recorded with status
    `error` instead of being silently dropped.
    """

    sample_id: str
    audio_path: Path
    target: str
    question: str = ""
    choices: tuple[str, ...] = ()
    letters: tuple[str, ...] = ()
    meta: Mapping[str, object] = field(default_factory=dict)
    error: str | None = None

    @property
    def target_letter(self) -> str | None:
        if self.target in self.choices:
            return self.letters[self.choices.index(self.target)]
        return None


@dataclass(frozen=True)
class TaskSpec:
    """A task in one place: where its data lives, how it is asked and how it is scored."""

    name: str  # registry name and the `-k` keyword, e.g. "TAU"
    code: str  # leaderboard column, e.g. "ASC"
    category: str
    data_dir: str  # sub-directory of --data-root holding the seed's files
    load: Callable[[Path], list[Sample]]
    instruction: str  # task sentence put above the prompt (seed Qwen-O wording)
    format_prompt: Callable[[Sample], str]
    answer: AnswerKind
    max_new_tokens: int
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # extra words naming a class
    # True where the options are texts of each question (RACE, SLUE, DESED), not a fixed class set: such answer
    # texts are not classes, so the headline is accuracy instead of a macro average over classes.
    per_question_options: bool = False
    version: str = "1"  # bump when prompt, loader or parser semantics change

    def prompt(self, sample: Sample) -> str:
        return f"{self.instruction}\n\n{self.format_prompt(sample)}"

    def samples(self, data_root: Path, limit: int | None = None) -> list[Sample]:
        items = self.load(Path(data_root) / self.data_dir)
        return items[:limit] if limit else items
