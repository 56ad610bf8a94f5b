"""Pruner registry. A pruner maps what the hook exposes (features of the prompt at layer K) to one pure
selection function in `selectors`; `PruneHook` does all the tensor plumbing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from ..registry import Registry
from .hook import PruneHook
from .selectors import kept_count, select_dart, select_frame, select_random, select_top_scores


class Pruner(Protocol):
    """A pruning method: which audio positions survive at layer K. One frozen dataclass per method, registered in
    PRUNERS under `name`; its parameters are its fields (DartPruner's pivots), its work one pure selector."""

    name: ClassVar[str]
    needs_attention: ClassVar[bool]  # the hook computes the last query's attention at layer K-1 (FastV)

    def select(self, hook: PruneHook, positions: torch.Tensor, n_keep: int, hidden: torch.Tensor) -> torch.Tensor:
        """The kept positions (a subset of `positions`, n_keep of them) given the hidden states entering layer K."""
        ...


@dataclass(frozen=True)
class RandomPruner:
    """Uniform random subset, seeded per sample (--seed and the sample id)."""

    name: ClassVar[str] = "random"
    needs_attention: ClassVar[bool] = False

    def select(self, hook: PruneHook, positions: torch.Tensor, n_keep: int, hidden: torch.Tensor) -> torch.Tensor:
        if hook.generator is None:
            raise ValueError("random pruning needs a seeded generator")
        return select_random(positions, n_keep, hook.generator)


@dataclass(frozen=True)
class FramePruner:
    """Evenly strided frames."""

    name: ClassVar[str] = "frame"
    needs_attention: ClassVar[bool] = False

    def select(self, hook: PruneHook, positions: torch.Tensor, n_keep: int, hidden: torch.Tensor) -> torch.Tensor:
        return select_frame(positions, n_keep)


@dataclass(frozen=True)
class FastVPruner:
    """FastV: keep the audio tokens the last prompt token attends to most at layer K-1."""

    name: ClassVar[str] = "fast_v"
    needs_attention: ClassVar[bool] = True

    def select(self, hook: PruneHook, positions: torch.Tensor, n_keep: int, hidden: torch.Tensor) -> torch.Tensor:
        return select_top_scores(positions, hook.last_query_attention()[positions], n_keep)


@dataclass(frozen=True)
class DartPruner:
    """DART: key-norm pivots (audio + post-audio text), keep the tokens least duplicated with them."""

    name: ClassVar[str] = "dart"
    needs_attention: ClassVar[bool] = False
    audio_pivots: int = 4
    text_pivots: int = 4

    def __post_init__(self) -> None:
        if self.audio_pivots < 0 or self.text_pivots < 0 or self.audio_pivots + self.text_pivots == 0:
            raise ValueError("DART needs at least one pivot and no negative pivot counts")

    def select(self, hook: PruneHook, positions: torch.Tensor, n_keep: int, hidden: torch.Tensor) -> torch.Tensor:
        norms = hook.key_l1_norms(hidden)
        normed = hook.normed_hidden(hidden)
        text = hook.text_after_audio(hidden.shape[0], hidden.device)  # no int() of a device tensor
        return select_dart(positions, n_keep, norms[positions], normed[positions], norms[text], normed[text],
                           self.audio_pivots, self.text_pivots)


PRUNERS: Registry[Pruner] = Registry("pruner")
for _pruner in (RandomPruner(), FramePruner(), FastVPruner(), DartPruner()):
    PRUNERS.register(_pruner.name, _pruner)

METHODS = ("base", *PRUNERS.names())  # "base" = no pruning hook at all

__all__ = ["METHODS", "PRUNERS", "PruneHook", "Pruner", "kept_count"]
