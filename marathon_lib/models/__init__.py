"""Model registry: registered names -> (family adapter, checkpoint). Three kinds of checkpoint:
`tiny-<family>` (built locally, random weights), a hub id, or a local checkpoint directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from ..registry import Registry
from .base import AudioLM, AudioSpan, Generation, ModelInputs, find_audio_spans
from .qwen_omni import QwenOmniThinker
from .tiny import ensure_tiny_checkpoint

FAMILIES: Registry[type[AudioLM]] = Registry("model family")
FAMILIES.register(QwenOmniThinker.family, QwenOmniThinker)

# config.json model_type -> family, for local checkpoint directories given by path
MODEL_TYPES = {"qwen2_5_omni": "qwen2.5-omni", "qwen2_5_omni_thinker": "qwen2.5-omni"}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    checkpoint: str | None  # hub id or directory; None = build the tiny checkpoint

    @property
    def is_tiny(self) -> bool:
        return self.checkpoint is None


MODELS: Registry[ModelEntry] = Registry("model")
for _entry in (
    ModelEntry("tiny-qwen2.5-omni", "qwen2.5-omni", None),
    ModelEntry("Qwen/Qwen2.5-Omni-7B", "qwen2.5-omni", "Qwen/Qwen2.5-Omni-7B"),
    ModelEntry("Qwen/Qwen2.5-Omni-3B", "qwen2.5-omni", "Qwen/Qwen2.5-Omni-3B"),
):
    MODELS.register(_entry.name, _entry)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model(name: str) -> ModelEntry:
    """A registered name, or a local checkpoint directory whose config.json names a known model_type."""
    if name in MODELS:
        return MODELS.get(name)
    config = Path(name) / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type")
        if model_type not in MODEL_TYPES:
            raise ConfigError(f"checkpoint {name}: model_type {model_type!r} has no adapter (known: {sorted(MODEL_TYPES)})")
        return ModelEntry(name, MODEL_TYPES[model_type], name)
    raise ConfigError(MODELS.unknown_message(name) + " (or give a checkpoint directory)")


def checkpoint_of(entry: ModelEntry, cache_root: Path) -> str:
    """Hub id / directory as registered, or the tiny checkpoint (built once and cached)."""
    if entry.checkpoint is not None:
        return entry.checkpoint
    return str(ensure_tiny_checkpoint(entry.family, FAMILIES.get(entry.family).build_tiny, cache_root))


def text_layer_count(entry: ModelEntry, cache_root: Path) -> int:
    """Number of language-model layers, read from the config alone (no weights loaded)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(checkpoint_of(entry, cache_root))
    return FAMILIES.get(entry.family).text_layer_count(config)


def load_model(entry: ModelEntry, *, cache_root: Path, device: str, dtype: str, attn_implementation: str) -> AudioLM:
    from transformers.utils import logging

    logging.disable_progress_bar()  # one weight-loading bar per case would drown the per-sample progress
    family = FAMILIES.get(entry.family)
    return family(entry.name, checkpoint_of(entry, cache_root), device, DTYPES[dtype], attn_implementation)


__all__ = ["FAMILIES", "MODELS", "AudioLM", "AudioSpan", "Generation", "ModelEntry", "ModelInputs",
           "checkpoint_of", "find_audio_spans", "load_model", "resolve_model", "text_layer_count"]
