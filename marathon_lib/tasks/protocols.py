"""The filters of the sample protocols (names in base.PROTOCOLS). A protocol is data of the task specs:
each TaskSpec maps a protocol name to the filters it applies (`TaskSpec.protocols`); a task that names no
filter for a protocol evaluates every published item."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .base import Sample


@dataclass(frozen=True)
class BalanceClasses:
    """Down-sample every class to the smallest class's size with a fixed seed (the Qwen HAD and gender
    scripts). Unusable items (loader errors) are kept, so they are still reported."""

    seed: int = 42

    def __call__(self, samples: list[Sample]) -> list[Sample]:
        groups: dict[str, list[Sample]] = {}
        for sample in samples:
            if sample.error is None:
                groups.setdefault(sample.target, []).append(sample)
        if not groups:
            return samples
        size = min(len(g) for g in groups.values())
        rng = random.Random(self.seed)
        kept = {id(s) for g in groups.values() for s in rng.sample(g, size)}
        return [s for s in samples if s.error is not None or id(s) in kept]

    def describe(self) -> str:
        return f"classes balanced to the smallest one (seed {self.seed})"


@dataclass(frozen=True)
class MetaIs:
    """One condition on an item's metadata; `digits` compares only the digits ("person2", 2 and "2")."""

    key: str
    values: tuple[str, ...]
    digits: bool = False

    def __call__(self, sample: Sample) -> bool:
        value = str(sample.meta.get(self.key, ""))
        value = re.sub(r"\D", "", value) if self.digits else value.strip().lower()
        return value in self.values

    def describe(self) -> str:
        return f"{self.key} in {{{', '.join(self.values)}}}"


@dataclass(frozen=True)
class Exclude:
    """Drop the items that meet every condition (the Qwen VESUS script's filter)."""

    where: tuple[MetaIs, ...]

    def __call__(self, samples: list[Sample]) -> list[Sample]:
        return [s for s in samples if s.error is not None or not all(cond(s) for cond in self.where)]

    def describe(self) -> str:
        return "without items where " + " and ".join(cond.describe() for cond in self.where)
