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
from .audio_flamingo3 import AudioFlamingo3
from .gemma3n import Gemma3n
from .granite_speech import GraniteSpeech
from .phi4_multimodal import Phi4Multimodal
from .qwen2_audio import Qwen2Audio
from .qwen3_omni import Qwen3OmniThinker
from .qwen_omni import QwenOmniThinker
from .shape import SHAPE_SPECS, ShapeSpec, ensure_shape_checkpoint, meta_parameter_count
from .tiny import ensure_tiny_checkpoint
from .voxtral import Voxtral

FAMILIES: Registry[type[AudioLM]] = Registry("model family")
for _family in (QwenOmniThinker, Qwen2Audio, AudioFlamingo3, Voxtral, Phi4Multimodal, GraniteSpeech,
                Qwen3OmniThinker, Gemma3n):
    FAMILIES.register(_family.family, _family)

# config.json model_type -> family, for local checkpoint directories given by path
MODEL_TYPES = {
    "qwen2_5_omni": "qwen2.5-omni",
    "qwen2_5_omni_thinker": "qwen2.5-omni",
    "qwen2_audio": "qwen2-audio",
    "audioflamingo3": "audio-flamingo-3",
    "voxtral": "voxtral",
    "phi4_multimodal": "phi-4-multimodal",
    "granite_speech": "granite-speech",
    "qwen3_omni_moe": "qwen3-omni",
    "qwen3_omni_moe_thinker": "qwen3-omni",
    "gemma3n": "gemma-3n",
}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    checkpoint: str | None  # hub id or directory; None = build the tiny checkpoint
    shape: ShapeSpec | None = None  # "shape:<hub id>": the real config, random weights

    @property
    def is_tiny(self) -> bool:
        return self.checkpoint is None and self.shape is None


MODELS: Registry[ModelEntry] = Registry("model")
for _entry in (
    ModelEntry("tiny-qwen2.5-omni", "qwen2.5-omni", None),
    ModelEntry("Qwen/Qwen2.5-Omni-7B", "qwen2.5-omni", "Qwen/Qwen2.5-Omni-7B"),
    ModelEntry("Qwen/Qwen2.5-Omni-3B", "qwen2.5-omni", "Qwen/Qwen2.5-Omni-3B"),
    ModelEntry("tiny-qwen2-audio", "qwen2-audio", None),
    ModelEntry("Qwen/Qwen2-Audio-7B-Instruct", "qwen2-audio", "Qwen/Qwen2-Audio-7B-Instruct"),
    ModelEntry("tiny-audio-flamingo-3", "audio-flamingo-3", None),
    ModelEntry("nvidia/audio-flamingo-3-hf", "audio-flamingo-3", "nvidia/audio-flamingo-3-hf"),
    ModelEntry("tiny-voxtral", "voxtral", None),
    ModelEntry("mistralai/Voxtral-Mini-3B-2507", "voxtral", "mistralai/Voxtral-Mini-3B-2507"),
    ModelEntry("mistralai/Voxtral-Small-24B-2507", "voxtral", "mistralai/Voxtral-Small-24B-2507"),
    ModelEntry("tiny-phi-4-multimodal", "phi-4-multimodal", None),
    ModelEntry("microsoft/Phi-4-multimodal-instruct", "phi-4-multimodal", "microsoft/Phi-4-multimodal-instruct"),
    ModelEntry("tiny-granite-speech", "granite-speech", None),
    ModelEntry("ibm-granite/granite-speech-3.3-2b", "granite-speech", "ibm-granite/granite-speech-3.3-2b"),
    ModelEntry("ibm-granite/granite-speech-3.3-8b", "granite-speech", "ibm-granite/granite-speech-3.3-8b"),
    ModelEntry("tiny-qwen3-omni", "qwen3-omni", None),
    ModelEntry("Qwen/Qwen3-Omni-30B-A3B-Instruct", "qwen3-omni", "Qwen/Qwen3-Omni-30B-A3B-Instruct"),
    ModelEntry("tiny-gemma-3n", "gemma-3n", None),
    ModelEntry("google/gemma-3n-E2B-it", "gemma-3n", "google/gemma-3n-E2B-it"),
    ModelEntry("google/gemma-3n-E4B-it", "gemma-3n", "google/gemma-3n-E4B-it"),
):
    MODELS.register(_entry.name, _entry)
for _shape in SHAPE_SPECS:
    MODELS.register(_shape.name, ModelEntry(_shape.name, _shape.family, None, _shape))

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
    tiny = ensure_tiny_checkpoint(entry.family, FAMILIES.get(entry.family).build_tiny, cache_root)
    if entry.shape is not None:  # the tiny tokenizer/processor with the real config, no weights
        return str(ensure_shape_checkpoint(entry.shape, tiny, cache_root))
    return str(tiny)


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
           "checkpoint_of", "find_audio_spans", "load_model", "meta_parameter_count", "resolve_model",
           "text_layer_count"]
