"""KV-cache compression through the real `kvpress` package, optionally restricted to the audio span.

kvpress (an optional extra: `pip install '.[kv]'`) pins transformers < 5.3. Without it, or for a model
family it cannot drive, press cases are refused with the reason; they never run as a silent baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Protocol

from packaging.version import Version

from ..registry import Registry

# name -> kvpress class name (one dataclass per method, as kvpress defines them)
PRESS_CLASSES = {
    "knorm": "KnormPress",
    "snapkv": "SnapKVPress",
    "tova": "TOVAPress",
    "streaming_llm": "StreamingLLMPress",
    "expected_attention": "ExpectedAttentionPress",
    "random_kv": "RandomPress",
}
PRESSES: Registry[str] = Registry("press")
for _name, _cls in PRESS_CLASSES.items():
    PRESSES.register(_name, _cls)

SCOPES = ("audio", "all")
MODES = ("query_agnostic", "query_aware")

# Which presses a family runs is declared on its class (`presses`, `press_refusal`; models.registry.press_support
# lists them): kvpress 0.5.5 hooks the language model's attention layers (see .presses.press_target), and the mRoPE
# thinkers need the adapter in .presses for the presses that re-apply RoPE (snapkv, tova, expected_attention), the
# Qwen3-Omni thinker its per-head q_norm.
ALL_PRESSES = frozenset(PRESS_CLASSES)
# Presses that score from keys, values or positions alone: no query projection, no RoPE re-application.
KEY_ONLY_PRESSES = frozenset({"knorm", "streaming_llm", "random_kv"})


class PressTarget(Protocol):
    """A model family (its class or a loaded model) as far as press support goes: models.base.BenchModel."""

    family: str
    presses: frozenset[str]
    press_refusal: str


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


def kvpress_availability() -> Availability:
    try:
        version = metadata.version("kvpress")
    except metadata.PackageNotFoundError:
        return Availability(False, "kvpress is not installed (pip install '.[kv]'; it needs transformers < 5.3)")
    transformers = Version(metadata.version("transformers"))
    if transformers >= Version("5.3"):
        return Availability(False, f"kvpress {version} runs only with transformers < 5.3 (found {transformers})")
    return Availability(True)


def support(model: PressTarget, press: str) -> Availability:
    """Whether `press` runs on this family: kvpress installed and usable, and the press declared by the family."""
    available = kvpress_availability()
    if not available.ok:
        return available
    if press not in model.presses:
        return Availability(False, f"kvpress {press} is not supported on the {model.family} family: "
                                   f"{model.press_refusal}")
    return Availability(True)
