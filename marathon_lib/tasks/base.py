"""What a task is: a declarative spec (folders, loader, sample protocols, prompt, answer kind, parser,
generation length)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, zip_longest
from pathlib import Path
from typing import Literal, Protocol

from .folders import TaskFolder, TaskFolders, find_task_folder

AnswerKind = Literal["choice", "text"]

# Which published items a run evaluates (--protocol); each task's filters per protocol are in its spec.
PROTOCOLS: dict[str, str] = {
    "full": "every published item of every task (macro metrics take care of class imbalance)",
    "scripts": "the original Qwen scripts' filters",
}
DEFAULT_PROTOCOL = "full"


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


class SampleFilter(Protocol):
    """One step of a sample protocol (tasks.protocols): published items in, evaluated items out."""

    def __call__(self, samples: list[Sample]) -> list[Sample]: ...

    def describe(self) -> str: ...


def interleave_by_target(samples: list[Sample]) -> list[Sample]:
    """Round-robin over classes (in order of first appearance) so any prefix (--sample-limit) stays balanced."""
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.target, []).append(sample)
    return [s for s in chain.from_iterable(zip_longest(*groups.values())) if s is not None]


@dataclass(frozen=True)
class Selection:
    """The samples a run evaluates, where they were read from and how many the task publishes."""

    samples: list[Sample]  # after the protocol's filters and --sample-limit
    folder: TaskFolder
    protocol: str
    published: int  # items in the task's manifest (or files, for LibriSpeech and HAD)
    selected: int  # items the protocol keeps, before --sample-limit


@dataclass(frozen=True)
class TaskSpec:
    """A task in one place: where its data lives, which items a protocol evaluates, how it is asked and
    how it is scored."""

    name: str  # registry name and the `-k` keyword, e.g. "TAU"
    code: str  # leaderboard column, e.g. "ASC"
    category: str  # the leaderboard's "By category" group
    folders: TaskFolders  # its folder in the release tree and in the flat layout, and what that folder holds
    load: Callable[[Path], list[Sample]]  # every published item, read from the task's folder
    instruction: str  # task sentence put above the prompt (seed Qwen-O wording)
    format_prompt: Callable[[Sample], str]
    answer: AnswerKind
    max_new_tokens: int
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # extra words naming a class
    # True where the options are texts of each question (RACE, SLUE, DESED), not a fixed class set: such answer
    # texts are not classes, so the headline is accuracy instead of a macro average over classes.
    per_question_options: bool = False
    published: int | None = None  # items the AudioMarathon release publishes (its dataset card)
    protocols: Mapping[str, Sequence[SampleFilter]] = field(default_factory=dict)  # protocol -> its filters
    interleave: bool = False  # classes round-robin, so a --sample-limit prefix stays balanced
    version: str = "1"  # bump when prompt, loader or parser semantics change
    column: int | None = None  # place in the leaderboard (the paper's order); None = after those, as registered

    def prompt(self, sample: Sample) -> str:
        return f"{self.instruction}\n\n{self.format_prompt(sample)}"

    def folder(self, data_root: Path) -> TaskFolder:
        return find_task_folder(self.name, self.folders, Path(data_root))

    def select(self, data_root: Path, protocol: str = DEFAULT_PROTOCOL, limit: int | None = None) -> Selection:
        """Load every published item, apply the protocol's filters, order, then cut to `limit`."""
        folder = self.folder(data_root)
        items = self.load(folder.path)
        published = len(items)
        for sample_filter in self.protocols.get(protocol, ()):
            items = sample_filter(items)
        if self.interleave:
            items = interleave_by_target(items)
        return Selection(items[:limit] if limit else items, folder, protocol, published, len(items))

    def samples(self, data_root: Path, limit: int | None = None, protocol: str = DEFAULT_PROTOCOL) -> list[Sample]:
        return self.select(data_root, protocol, limit).samples

    def describe_protocol(self, protocol: str) -> str | None:
        """What the protocol does to this task, or None when it evaluates every published item."""
        filters = self.protocols.get(protocol, ())
        return "; ".join(f.describe() for f in filters) or None
