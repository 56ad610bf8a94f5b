"""Validated run options, shared by the pytest plugin and scripts. Bad values raise ConfigError
before any dataset is built or model is loaded."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .kv import MODES, PRESSES, SCOPES
from .models import DTYPES, MODELS, resolve_model
from .models.decode import DECODE_MODES
from .pruning import METHODS
from .tasks import TASKS

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


def split_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def parse_ratios(value: str, option: str = "--prune-ratio") -> list[float]:
    ratios = []
    for item in split_list(value):
        try:
            ratio = float(item)
        except ValueError:
            raise ConfigError(f"{option}: {item!r} is not a number") from None
        if not 0.0 <= ratio < 1.0:
            raise ConfigError(f"{option}: {ratio} is outside [0, 1): it is the fraction of audio tokens dropped")
        ratios.append(ratio)
    if not ratios:
        raise ConfigError(f"{option}: give at least one value, e.g. 0.5 or 0.1,0.5,0.9")
    return ratios


@dataclass(frozen=True)
class RunOptions:
    models: list[str]
    tasks: list[str]
    pruners: list[str]
    prune_ratios: list[float]
    prune_layer: int
    sample_limit: int | None
    data_root: Path | None
    results_dir: Path
    device: str
    dtype: str
    attn_implementation: str
    seed: int
    synthetic_seconds: float
    synthetic_samples: int
    shard: tuple[int, int] | None = None
    presses: list[str] = field(default_factory=list)
    compression_ratios: list[float] = field(default_factory=lambda: [0.5])
    press_scope: str = "audio"
    press_mode: str = "query_agnostic"
    decode: str = "eager"  # eager | static | compiled (models.decode)
    reuse_audio_encoder: bool = False  # models.reuse: encoder output computed once per sample and model
    trust_remote_code: bool = False  # hub remote code may run (Aero-1, Baichuan-Omni, Kimi-Audio)
    max_new_tokens: int | None = None  # caps every task's generation budget; None = each task's own

    def as_manifest(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """"i/n" -> (i, n) with 0 <= i < n."""
    if not value:
        return None
    index, sep, count = value.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        raise ConfigError(f"--shard: {value!r} is not i/n with 0 <= i < n (e.g. 0/4)")
    return int(index), int(count)


def in_shard(case_id: str, sample_id: str, shard: tuple[int, int] | None) -> bool:
    """Stable assignment of each (case, sample) to one shard: the union of all shards is the full run."""
    if shard is None:
        return True
    digest = hashlib.sha256(f"{case_id}\0{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % shard[1] == shard[0]


def build_options(
    *,
    models: str,
    tasks: str | None,
    pruners: str,
    prune_ratio: str,
    prune_layer: int,
    sample_limit: int,
    data_root: str | None,
    results_dir: str,
    device: str | None,
    dtype: str,
    attn_implementation: str,
    seed: int,
    synthetic_seconds: float,
    synthetic_samples: int,
    shard: str | None = None,
    presses: str | None = None,
    compression_ratio: str = "0.5",
    press_scope: str = "audio",
    press_mode: str = "query_agnostic",
    trust_remote_code: bool = False,
    decode: str = "eager",
    reuse_audio_encoder: bool = False,
    max_new_tokens: int = 0,
) -> RunOptions:
    model_names = split_list(models)
    if not model_names:
        raise ConfigError(f"--models: give at least one of {', '.join(MODELS.names())} or a checkpoint directory")
    for name in model_names:
        refusal = resolve_model(name).load_refusal(trust_remote_code)
        if refusal is not None:
            raise ConfigError(f"--models: {refusal}")
    task_names = split_list(tasks) or TASKS.names()
    for name in task_names:
        TASKS.get(name)
    pruner_names = split_list(pruners) or ["base"]
    for name in pruner_names:
        if name not in METHODS:
            raise ConfigError(f"--pruners: unknown pruner {name!r}; known: {', '.join(METHODS)}")
    if decode not in DECODE_MODES:
        raise ConfigError(f"--decode: {decode!r} is not one of {', '.join(DECODE_MODES)}")
    if prune_layer < 1:
        raise ConfigError(f"--prune-layer: {prune_layer} must be >= 1 (layer 0 would change the cache bookkeeping)")
    if sample_limit < 0:
        raise ConfigError(f"--sample-limit: {sample_limit} must be >= 0 (0 = all samples)")
    if max_new_tokens < 0:
        raise ConfigError(f"--max-new-tokens: {max_new_tokens} must be >= 0 (0 = each task's own budget)")
    if synthetic_seconds <= 0 or synthetic_samples < 1:
        raise ConfigError("--synthetic-seconds must be > 0 and --synthetic-samples >= 1")
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype: {dtype!r} is not one of auto, {', '.join(DTYPES)}")
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"--attn-impl: {attn_implementation!r} is not one of {', '.join(ATTN_IMPLEMENTATIONS)}")
    press_names = split_list(presses)
    for name in press_names:
        PRESSES.get(name)
    if press_scope not in SCOPES:
        raise ConfigError(f"--press-scope: {press_scope!r} is not one of {', '.join(SCOPES)}")
    if press_mode not in MODES:
        raise ConfigError(f"--press-mode: {press_mode!r} is not one of {', '.join(MODES)}")
    root = Path(data_root) if data_root else None
    if root is not None and not root.is_dir():
        raise ConfigError(f"--data-root: {root} is not a directory")
    return RunOptions(
        models=model_names, tasks=task_names, pruners=pruner_names, prune_ratios=parse_ratios(prune_ratio),
        prune_layer=prune_layer, sample_limit=sample_limit or None, data_root=root, results_dir=Path(results_dir),
        device=device, dtype=dtype, attn_implementation=attn_implementation, seed=seed,
        synthetic_seconds=synthetic_seconds, synthetic_samples=synthetic_samples, shard=parse_shard(shard),
        presses=press_names, compression_ratios=parse_ratios(compression_ratio, "--compression-ratio"),
        press_scope=press_scope, press_mode=press_mode, trust_remote_code=trust_remote_code, decode=decode,
        reuse_audio_encoder=reuse_audio_encoder,
        max_new_tokens=max_new_tokens or None,
    )
