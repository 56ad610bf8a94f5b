"""Prefill efficiency of audio-token pruning on a real-shaped language model with random weights.

For N decoder layers, S prompt tokens of which A are audio, pruning at layer K with ratio r leaves
S' = S - floor(A r) tokens in layers K..N-1. If prefill cost were linear in tokens, the time fraction
would be the ideal (K S + (N - K) S') / (N S). The benchmark measures the realized fraction side by side
(same process, same inputs, medians over repeats) so selection overhead and kernel effects show up.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .pruning import PRUNERS, PruneHook
from .pruning.selectors import kept_count
from .schema import DEFAULT_PRUNE_LAYER
from .textstack import TextStack
from .timing import Clock


def shape_config(name: str) -> dict[str, Any]:
    """A shipped real config (marathon_lib/shapes/<name>.json): shapes without downloading weights."""
    path = resources.files("marathon_lib") / "shapes" / f"{name}.json"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".json") for p in (resources.files("marathon_lib") / "shapes").iterdir())
        raise ValueError(f"unknown shape {name!r}; shipped: {', '.join(known)}")
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def build_text_model(name: str, device: str, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The Qwen2.5-Omni thinker language model at a real shape, random weights, plus an lm_head."""
    from transformers import Qwen2_5OmniTextConfig
    from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import Qwen2_5OmniThinkerTextModel

    config = Qwen2_5OmniTextConfig(**{k: v for k, v in shape_config(name).items() if k != "model_type"})
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5OmniThinkerTextModel(config).to(dtype).eval()
        head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=False, dtype=dtype)
    return model, head


@dataclass(frozen=True)
class Row:
    pruner: str
    ratio: float
    base_ms: float  # unpruned prefill, measured alternately with the pruned one
    prefill_ms: float
    realized: float  # median of per-pair pruned / unpruned time
    ideal: float

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "realized_over_ideal": round(self.realized / self.ideal, 4)}


def ideal_fraction(n_layers: int, layer: int, tokens: int, tokens_after: int) -> float:
    return (layer * tokens + (n_layers - layer) * tokens_after) / (n_layers * tokens)


def run_efficiency(
    shape: str = "small-cpu",
    device: str = "cpu",
    dtype: str = "float32",
    tokens: int = 2000,
    audio_tokens: int = 1936,
    audio_start: int = 40,
    layer: int = DEFAULT_PRUNE_LAYER,
    ratios: tuple[float, ...] = (0.0, 0.5, 0.9),
    pruners: tuple[str, ...] = ("random", "frame", "fast_v", "dart"),
    repeats: int = 5,
    warmup: int = 2,
) -> dict[str, Any]:
    if audio_start + audio_tokens > tokens:
        raise ValueError(f"audio span [{audio_start}, {audio_start + audio_tokens}) does not fit in {tokens} tokens")
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model, head = build_text_model(shape, device, torch_dtype)
    stack = TextStack(model.layers, model.norm, model.config.rope_parameters.get("mrope_section"))
    clock = Clock(torch.device(device))
    generator = torch.Generator(device=device).manual_seed(0)
    embeds = torch.randn(1, tokens, model.config.hidden_size, generator=generator, device=device).to(torch_dtype)
    positions = torch.arange(audio_start, audio_start + audio_tokens)  # on the host, as the runner arms hooks

    @torch.inference_mode()
    def prefill() -> None:
        hidden = model(inputs_embeds=embeds, use_cache=True).last_hidden_state
        head(hidden[:, -1:])  # first-token logits only, as generate computes them

    def once(hook: PruneHook | None, index: int) -> float:
        start = clock.mark()
        if hook is None:
            prefill()
        else:
            with hook.armed(positions, torch.Generator().manual_seed(index)):
                prefill()
        return clock.elapsed_ms(start, clock.mark())

    def paired(hook: PruneHook) -> tuple[float, float, float]:
        """Alternate unpruned and pruned prefills; the ratio is taken pair by pair, so drift cancels."""
        base, pruned = [], []
        for index in range(warmup + repeats):
            b, p = once(None, index), once(hook, index)
            if index >= warmup:
                base.append(b)
                pruned.append(p)
        ratios = [p / b for p, b in zip(pruned, base)]
        return statistics.median(base), statistics.median(pruned), statistics.median(ratios)

    n_layers = len(model.layers)
    rows = []
    for name in pruners:
        for ratio in ratios:
            with PruneHook(stack, layer, PRUNERS.get(name), ratio) as hook:
                base_ms, ms, realized = paired(hook)
            after = tokens - (audio_tokens - kept_count(audio_tokens, ratio))
            rows.append(Row(name, ratio, round(base_ms, 3), round(ms, 3), round(realized, 4),
                            round(ideal_fraction(n_layers, layer, tokens, after), 4)))
    return {
        "shape": shape,
        "device": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu",
        "dtype": dtype,
        "tokens": tokens,
        "audio_tokens": audio_tokens,
        "layer": layer,
        "n_layers": n_layers,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "rows": [row.as_dict() for row in rows],
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"prefill efficiency: shape {result['shape']} on {result['device']} ({result['dtype']}), "
        f"{result['tokens']} tokens ({result['audio_tokens']} audio), K={result['layer']} of {result['n_layers']} "
        f"layers, median of {result['repeats']}",
        f"{'method':<8} {'ratio':>5} {'base ms':>9} {'pruned ms':>10} {'realized':>9} {'ideal':>7} {'real/ideal':>10}",
    ]
    for row in result["rows"]:
        lines.append(f"{row['pruner']:<8} {row['ratio']:>5.2f} {row['base_ms']:>9.2f} {row['prefill_ms']:>10.2f} "
                     f"{row['realized']:>9.3f} {row['ideal']:>7.3f} {row['realized_over_ideal']:>10.3f}")
    return "\n".join(lines)


def save(result: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
