"""The model registry, derived from the family classes: `@register_family` reads a class's declaration
(`BenchModel`'s ClassVars) and fills every table the suite reads — the families, the registered model names
(tiny, hub checkpoints, `shape:` names, remote-code and `api:` names), the config model_types of local checkpoint
directories, the `-k` keywords and the press support. Native, remote-code and API families go through it alike."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from ..kv import PRESSES
from ..registry import Registry
from .base import BenchModel
from .shape import ShapeSpec

ACCESS_KINDS = ("local", "remote_code", "api")
F = TypeVar("F", bound=type[BenchModel])

FAMILIES: Registry[type[BenchModel]] = Registry("model family")
# config.json model_type -> family, for local checkpoint directories given by path
MODEL_TYPES: dict[str, str] = {}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    checkpoint: str | None  # hub id or directory; None = build the tiny checkpoint
    shape: ShapeSpec | None = None  # "shape:<hub id>": the real config, random weights
    access: str = "local"  # "local", "remote_code" (hub code: --trust-remote-code) or "api" (checkpoint = API model)
    # a trained tiny checkpoint: (cache root) -> its directory, built once and cached (None: random weights)
    trained: Callable[[Path], Path] | None = None

    @property
    def is_tiny(self) -> bool:
        return self.checkpoint is None and self.shape is None

    def load_refusal(self, trust_remote_code: bool, environ: Mapping[str, str] = os.environ) -> str | None:
        """Why this model may not be loaded in this run (checked before any data is built), or None."""
        if self.access == "remote_code" and not trust_remote_code:
            return (f"{self.name} runs Python code from its hub repository ({self.checkpoint}); "
                    "pass --trust-remote-code to allow it")
        return FAMILIES.get(self.family).missing_requirement(self.name, environ)

    def method_refusal(self, pruner: str, press: str | None, control: str | None = None) -> str | None:
        """Why a pruner/press/control cannot run on this model (the case is skipped, never run as a silent
        baseline)."""
        if pruner == "base" and press is None and control is None:
            return None
        if control is not None and self.access != "local":
            return (f"the {control} control runs on the native families only ({self.name} builds its own "
                    "requests or prompts)")
        if self.access == "api":
            return (f"{self.name} is an API model: no pruning hook or KV press can reach inside it "
                    "(supported methods: base only)")
        if self.access == "remote_code":
            return (f"hook cannot attach to remote code ({self.checkpoint}): no pruner or press is validated on "
                    "its classes (supported methods: base only)")
        return None


MODELS: Registry[ModelEntry] = Registry("model")


def own(family: type[BenchModel], name: str) -> Any:
    """A declaration the class makes itself: names and model_types are never inherited (a family built on another's
    adapter has its own checkpoints), while policies (keyword, presses, access, long_audio) are."""
    return vars(family).get(name, getattr(BenchModel, name))


def declared_entries(family: type[BenchModel]) -> list[ModelEntry]:
    """The model names a family class declares: its tiny build, its checkpoints, its `shape:` configs."""
    tiny = own(family, "tiny_name")
    entries = [ModelEntry(tiny, family.family, None)] if tiny else []
    entries += [ModelEntry(family.name_prefix + checkpoint, family.family, checkpoint, access=family.access)
                for checkpoint in own(family, "checkpoints")]
    for shape in own(family, "shapes"):
        shape = replace(shape, family=family.family)
        entries.append(ModelEntry(shape.name, family.family, None, shape))
    return entries


def register_family(family: F) -> F:
    """Class decorator: register a family and every name, model_type and keyword it declares. A clash with an
    earlier family, an unknown access kind or press is an error at import, naming the class."""
    where = f"{family.__module__}.{family.__qualname__}"
    if not getattr(family, "family", ""):
        raise ValueError(f"{where}: set the class attribute `family`")
    if family.access not in ACCESS_KINDS:
        raise ValueError(f"{where}: access {family.access!r} is not one of {', '.join(ACCESS_KINDS)}")
    unknown = sorted(set(family.presses) - set(PRESSES.names()))
    if unknown:
        raise ValueError(f"{where}: presses {unknown} are not registered ({', '.join(PRESSES.names())})")
    model_types = own(family, "model_types")
    clashes = [family.family] if family.family in FAMILIES else []
    clashes += [t for t in model_types if t in MODEL_TYPES] + [
        e.name for e in declared_entries(family) if e.name in MODELS]
    if clashes:
        raise ValueError(f"{where}: {clashes} are registered already")
    FAMILIES.register(family.family, family)
    MODEL_TYPES.update(dict.fromkeys(model_types, family.family))
    for entry in declared_entries(family):
        MODELS.register(entry.name, entry)
    return family


def family_keyword(family: str) -> str:
    """`pytest -k` word of a family (each case carries it as a marker): its declared keyword, else the family name
    without punctuation."""
    declared = FAMILIES.get(family).keyword if family in FAMILIES else None
    return declared or "".join(ch for ch in family if ch.isalnum())


def press_support() -> dict[str, frozenset[str]]:
    """Family -> the kvpress methods validated on it, for every family that runs any (derived from the classes)."""
    return {name: FAMILIES.get(name).presses for name in FAMILIES if FAMILIES.get(name).presses}
