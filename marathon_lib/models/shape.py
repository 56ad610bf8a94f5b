"""`shape:<hub id>` models: the real checkpoint's configuration (shipped as JSON under marathon_lib/shapes/) with
random weights, so efficiency runs and parameter counts need no weight download.

A shape checkpoint directory holds the real config.json (special-token ids remapped to the family's tiny
tokenizer, which the directory also holds with its processor and chat template), a SHAPE marker and no
weights; `AudioLM.from_pretrained` builds the model from the config there. On the `meta` device nothing is
allocated, which is how real parameter counts are reported on a CPU box (`meta_parameter_count`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import transformers

from ..paths import build_once

SHAPE_PREFIX = "shape:"
SHAPE_MARKER = "SHAPE"
SHAPE_VERSION = "2"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


@dataclass(frozen=True)
class ShapeSpec:
    """Declared by a family class (`shapes`); the registry fills in the family when it registers the class."""

    hub_id: str
    file: str  # under marathon_lib/shapes/
    model_class: str  # the transformers class the family's adapter loads
    family: str = ""

    @property
    def name(self) -> str:
        return SHAPE_PREFIX + self.hub_id


def shape_dict(spec: ShapeSpec) -> dict[str, Any]:
    text = (resources.files("marathon_lib") / "shapes" / spec.file).read_text()
    data = json.loads(text)
    data.pop("_source", None)
    return data


def shape_config(spec: ShapeSpec) -> Any:
    data = shape_dict(spec)
    config_class = getattr(transformers, spec.model_class).config_class
    return config_class(**{k: v for k, v in data.items() if k != "model_type"})


def meta_parameter_count(spec: ShapeSpec) -> int:
    """Parameters of the real-shaped model, built on the meta device (no memory, no weights)."""
    model_class = getattr(transformers, spec.model_class)
    with torch.device("meta"):
        model = model_class._from_config(shape_config(spec))
    return sum(p.numel() for p in model.parameters())


def is_shape_checkpoint(checkpoint: str | os.PathLike) -> bool:
    return (Path(checkpoint) / SHAPE_MARKER).is_file()


def _is_token_field(key: str) -> bool:
    return isinstance(key, str) and key.endswith(("token_id", "token_index", "token_ids"))


def remap_token_ids(real: dict[str, Any], tiny: dict[str, Any]) -> dict[str, Any]:
    """Every special-token id field of `real` (at any depth) takes the tiny checkpoint's value at the same key
    path (or, for a thinker-only shape of a full tiny Omni config, under its `thinker_config`); sizes stay real."""
    if real.get("model_type") != tiny.get("model_type"):
        for value in tiny.values():
            if isinstance(value, dict) and value.get("model_type") == real.get("model_type"):
                tiny = value
                break
    out = dict(real)
    for key, value in real.items():
        if isinstance(value, dict) and isinstance(tiny.get(key), dict):
            out[key] = remap_token_ids(value, tiny[key])
        elif _is_token_field(key) and key in tiny:
            out[key] = tiny[key]
    for key, value in tiny.items():  # ids the real config leaves to defaults that point into the real vocabulary
        if _is_token_field(key) and key not in out and not isinstance(value, dict):
            out[key] = value
    return out


def ensure_shape_checkpoint(spec: ShapeSpec, tiny_dir: Path, cache_root: Path) -> Path:
    """Build once: the tiny checkpoint's tokenizer/processor files + the real config (ids remapped), no weights."""
    real = shape_dict(spec)
    identity = [spec.name, SHAPE_VERSION, transformers.__version__, real, tiny_dir.name]
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    def build(staging: Path) -> str:
        for item in tiny_dir.iterdir():
            if item.is_file() and not item.name.endswith(_WEIGHT_SUFFIXES) and item.name not in (
                    "config.json", "COMPLETE", "model.safetensors.index.json"):
                shutil.copy2(item, staging / item.name)
        tiny_config = json.loads((tiny_dir / "config.json").read_text())
        config = shape_config(spec)
        remapped = remap_token_ids(config.to_dict(), tiny_config)
        # A thinker-only shape of a full Omni tiny config goes where the tiny one keeps it (`thinker_config`),
        # so AutoConfig reads the directory on every transformers version (5.2 has no standalone thinker type).
        holder = next((k for k, v in tiny_config.items()
                       if isinstance(v, dict) and v.get("model_type") == remapped.get("model_type")), None)
        if holder is not None and tiny_config.get("model_type") != remapped.get("model_type"):
            remapped = {**tiny_config, holder: remapped}
        (staging / "config.json").write_text(json.dumps(remapped, indent=2, sort_keys=True))
        return f"{spec.name}: real config, random weights\n"

    return build_once(cache_root / f"shape-{spec.hub_id.replace('/', '--')}-{key}", SHAPE_MARKER, build)


def model_from_shape(model_class: type, checkpoint: str, dtype: torch.dtype, device: torch.device,
                     attn_implementation: str | dict) -> torch.nn.Module:
    """Random-weight model of a shape checkpoint, allocated directly on `device` (nothing at all on meta)."""
    config = model_class.config_class.from_pretrained(checkpoint)
    torch.manual_seed(0)
    with torch.device(device):
        return model_class._from_config(config, dtype=dtype, attn_implementation=attn_implementation)
