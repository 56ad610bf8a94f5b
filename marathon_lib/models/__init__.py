"""Models: registered names -> (family adapter, checkpoint), derived from the family classes (models.registry).
Three kinds of checkpoint: `tiny-<family>` (built locally, random weights; `tiny-qwen2.5-omni-canary` is trained,
see models/canary.py), a hub id, or a local checkpoint
directory. Two opt-in kinds of model beside them: hub remote code (`--trust-remote-code`) and API models
(`api:<model>`, key from the environment); both run base cases only."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ConfigError

# isort: off
# Each family module registers its classes on import (`@register_family`); this order is the order of MODELS: the
# eight native families, then the opt-in API and remote-code families. A new family is one more module here.
from . import qwen_omni, qwen2_audio, audio_flamingo3, voxtral  # noqa: F401
from . import phi4_multimodal, granite_speech, qwen3_omni, gemma3n  # noqa: F401
from . import api, remote  # noqa: F401
# isort: on
from .base import AudioLM, BenchModel
from .canary import CANARY_NAME, ensure_canary
from .inputs import AudioSpan, Generation, ModelInputs, find_audio_spans
from .registry import FAMILIES, MODEL_TYPES, MODELS, ModelEntry, family_keyword, press_support, register_family
from .shape import ensure_shape_checkpoint, meta_parameter_count
from .tiny import ensure_tiny_checkpoint

# The trained canary: the Qwen2.5-Omni family's adapter on a checkpoint the suite trains (models/canary.py)
MODELS.register(CANARY_NAME, ModelEntry(CANARY_NAME, "qwen2.5-omni", None, trained=ensure_canary))

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model(name: str) -> ModelEntry:
    """A registered name, or a local checkpoint directory whose config.json names a known model_type."""
    if name in MODELS:
        return MODELS.get(name)
    config = Path(name) / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type")
        if model_type not in MODEL_TYPES:
            raise ConfigError(f"checkpoint {name}: model_type {model_type!r} has no adapter "
                              f"(known: {sorted(MODEL_TYPES)})")
        return ModelEntry(name, MODEL_TYPES[model_type], name)
    raise ConfigError(MODELS.unknown_message(name) + " (or give a checkpoint directory)")


def checkpoint_of(entry: ModelEntry, cache_root: Path) -> str:
    """Hub id / directory as registered, or the tiny checkpoint (built once and cached)."""
    if entry.checkpoint is not None:
        return entry.checkpoint
    if entry.trained is not None:
        return str(entry.trained(cache_root))
    tiny = ensure_tiny_checkpoint(entry.family, FAMILIES.get(entry.family).build_tiny, cache_root)
    if entry.shape is not None:  # the tiny tokenizer/processor with the real config, no weights
        return str(ensure_shape_checkpoint(entry.shape, tiny, cache_root))
    return str(tiny)


def text_layer_count(entry: ModelEntry, cache_root: Path) -> int:
    """Number of language-model layers, read from the config alone (no weights loaded)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(checkpoint_of(entry, cache_root))
    return FAMILIES.get(entry.family).text_layer_count(config)


def load_model(entry: ModelEntry, *, cache_root: Path, device: str, dtype: str, attn_implementation: str,
               trust_remote_code: bool = False) -> BenchModel:
    refusal = entry.load_refusal(trust_remote_code)
    if refusal is not None:
        raise ConfigError(refusal)
    if entry.access == "api":
        return adapter_class(entry)(entry.name, entry.checkpoint)
    from transformers.utils import logging

    logging.disable_progress_bar()  # one weight-loading bar per case would drown the per-sample progress
    family = adapter_class(entry)
    return family(entry.name, checkpoint_of(entry, cache_root), device, DTYPES[dtype], attn_implementation)


def adapter_class(entry: ModelEntry) -> type[BenchModel]:
    return FAMILIES.get(entry.family)


def model_policies(names: list[str]) -> dict[str, dict[str, str]]:
    """Per model of a run, from its adapter class (nothing loaded): family and long-audio handling (manifest)."""
    policies = {}
    for name in names:
        entry = resolve_model(name)
        policies[name] = {"family": entry.family, "long_audio": adapter_class(entry).long_audio}
    return policies


__all__ = ["FAMILIES", "MODELS", "MODEL_TYPES", "AudioLM", "AudioSpan", "BenchModel", "Generation", "ModelEntry",
           "ModelInputs", "checkpoint_of", "family_keyword", "find_audio_spans", "load_model", "meta_parameter_count",
           "model_policies", "press_support", "register_family", "resolve_model", "text_layer_count"]
