"""Model registry: registered names -> (family adapter, checkpoint). Three kinds of checkpoint:
`tiny-<family>` (built locally, random weights), a hub id, or a local checkpoint directory. Two opt-in kinds
of model beside them: hub remote code (`--trust-remote-code`) and API models (`api:<model>`, key from the
environment); both run base cases only."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from ..registry import Registry
from .api import API_FAMILIES, missing_key, sdk_missing
from .audio_flamingo3 import AudioFlamingo3
from .base import AudioLM, BenchModel
from .gemma3n import Gemma3n
from .granite_speech import GraniteSpeech
from .inputs import AudioSpan, Generation, ModelInputs, find_audio_spans
from .phi4_multimodal import Phi4Multimodal
from .qwen2_audio import Qwen2Audio
from .qwen3_omni import Qwen3OmniThinker
from .qwen_omni import QwenOmniThinker
from .remote import REMOTE_FAMILIES
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
    access: str = "local"  # "local", "remote_code" (hub code: --trust-remote-code) or "api" (checkpoint = API model)

    @property
    def is_tiny(self) -> bool:
        return self.checkpoint is None and self.shape is None

    def load_refusal(self, trust_remote_code: bool, environ: Mapping[str, str] = os.environ) -> str | None:
        """Why this model may not be loaded in this run (checked before any data is built), or None."""
        if self.access == "remote_code" and not trust_remote_code:
            return (f"{self.name} runs Python code from its hub repository ({self.checkpoint}); "
                    "pass --trust-remote-code to allow it")
        if self.access == "api":
            family = API_FAMILIES[self.family]
            if sdk_missing(family.sdk_module):
                return f"{self.name} needs the {family.sdk_module} SDK: pip install -e '.[api]'"
            return missing_key(environ, family.key_env, self.name)
        return None

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
    # opt-in: hub remote code, refused unless --trust-remote-code
    ModelEntry("lmms-lab/Aero-1-Audio-1.5B", "aero-1", "lmms-lab/Aero-1-Audio-1.5B", access="remote_code"),
    ModelEntry("baichuan-inc/Baichuan-Omni-1d5", "baichuan-omni-1.5", "baichuan-inc/Baichuan-Omni-1d5",
               access="remote_code"),
    ModelEntry("moonshotai/Kimi-Audio-7B-Instruct", "kimi-audio", "moonshotai/Kimi-Audio-7B-Instruct",
               access="remote_code"),
    # opt-in: API models, key from the environment
    ModelEntry("api:gpt-4o-audio-preview", "openai-audio", "gpt-4o-audio-preview", access="api"),
    ModelEntry("api:gemini-2.0-flash", "gemini", "gemini-2.0-flash", access="api"),
    ModelEntry("api:gemini-2.5-flash", "gemini", "gemini-2.5-flash", access="api"),
    ModelEntry("api:gemini-2.5-flash-lite", "gemini", "gemini-2.5-flash-lite", access="api"),
):
    MODELS.register(_entry.name, _entry)
for _shape in SHAPE_SPECS:
    MODELS.register(_shape.name, ModelEntry(_shape.name, _shape.family, None, _shape))

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# The word `pytest -k` selects a family by (each case carries it as a marker): -k qwen, -k phi4, -k flamingo ...
FAMILY_KEYWORDS = {
    "qwen2.5-omni": "qwen", "qwen2-audio": "qwen", "qwen3-omni": "qwen", "audio-flamingo-3": "flamingo",
    "voxtral": "voxtral", "phi-4-multimodal": "phi4", "granite-speech": "granite", "gemma-3n": "gemma",
}


def family_keyword(family: str) -> str:
    """`pytest -k` word of a family: the table above, else the family name without punctuation."""
    return FAMILY_KEYWORDS.get(family) or "".join(ch for ch in family if ch.isalnum())


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


def load_model(entry: ModelEntry, *, cache_root: Path, device: str, dtype: str, attn_implementation: str,
               trust_remote_code: bool = False) -> BenchModel:
    refusal = entry.load_refusal(trust_remote_code)
    if refusal is not None:
        raise ConfigError(refusal)
    if entry.access == "api":
        return API_FAMILIES[entry.family](entry.name, entry.checkpoint)
    from transformers.utils import logging

    logging.disable_progress_bar()  # one weight-loading bar per case would drown the per-sample progress
    family = adapter_class(entry)
    return family(entry.name, checkpoint_of(entry, cache_root), device, DTYPES[dtype], attn_implementation)


def adapter_class(entry: ModelEntry) -> type[BenchModel]:
    if entry.access == "api":
        return API_FAMILIES[entry.family]
    return REMOTE_FAMILIES[entry.family] if entry.access == "remote_code" else FAMILIES.get(entry.family)


def model_policies(names: list[str]) -> dict[str, dict[str, str]]:
    """Per model of a run, from its adapter class (nothing loaded): family and long-audio handling (manifest)."""
    policies = {}
    for name in names:
        entry = resolve_model(name)
        policies[name] = {"family": entry.family, "long_audio": adapter_class(entry).long_audio}
    return policies


__all__ = ["FAMILIES", "MODELS", "AudioLM", "AudioSpan", "BenchModel", "Generation", "ModelEntry", "ModelInputs",
           "checkpoint_of", "find_audio_spans", "load_model", "meta_parameter_count", "model_policies", "resolve_model",
           "text_layer_count"]
