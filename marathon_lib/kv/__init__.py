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

# Which presses kvpress 0.5.5 drives correctly per family (feasibility.md §4). The press hooks the language
# model's attention layers (see .presses.press_target); the mRoPE thinkers need the adapter in .presses for the
# presses that re-apply RoPE (snapkv, tova, expected_attention), the Qwen3-Omni thinker its per-head q_norm.
ALL_PRESSES = frozenset(PRESS_CLASSES)
# Presses that score from keys, values or positions alone: no query projection, no RoPE re-application.
KEY_ONLY_PRESSES = frozenset({"knorm", "streaming_llm", "random_kv"})
SUPPORTED: dict[str, frozenset[str]] = {
    "qwen2.5-omni": ALL_PRESSES,
    "qwen2-audio": ALL_PRESSES,
    "audio-flamingo-3": ALL_PRESSES,
    "voxtral": ALL_PRESSES,
    "granite-speech": ALL_PRESSES,
    "qwen3-omni": ALL_PRESSES,
    "phi-4-multimodal": KEY_ONLY_PRESSES,
}
# Why a family runs fewer presses (or none): shown as the skip reason of every refused press case.
REFUSALS = {
    "phi-4-multimodal": "its attention projects q, k and v with one fused qkv_proj and rotates only part of each "
                        "head (partial RoPE); kvpress's query-based scorers read q_proj and rotate whole heads "
                        "(NotImplementedError), so only key/position-only presses "
                        f"({', '.join(sorted(KEY_ONLY_PRESSES))}) run",
    "gemma-3n": "its KV-sharing layers read the cache of an earlier layer and have no cache slot of their own, "
                "so kvpress's hook fails on them (IndexError); compressing the shared slot would also change the "
                "layers that reuse it",
}


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
    if press not in SUPPORTED.get(family, frozenset()):
        reason = REFUSALS.get(family, "kvpress was not validated on it")
        return Availability(False, f"kvpress {press} is not supported on the {family} family: {reason}")
    return Availability(True)
