"""KV-cache compression through the real `kvpress` package, optionally restricted to the audio span.

kvpress (an optional extra: `pip install '.[kv]'`) pins transformers < 5.3. Without it, or for a model
family it cannot drive, press cases are refused with the reason; they never run as a silent baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

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

# Which presses kvpress 0.5.5 drives correctly per family (feasibility.md §4): Qwen2.5-Omni needs the
# mRoPE adapter in .presses for the presses that re-apply RoPE (snapkv, tova, expected_attention).
SUPPORTED = {"qwen2.5-omni": set(PRESS_CLASSES)}


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


def support(family: str, press: str) -> Availability:
    available = kvpress_availability()
    if not available.ok:
        return available
    if press not in SUPPORTED.get(family, set()):
        return Availability(False, f"kvpress {press} is not supported on the {family} family")
    return Availability(True)
