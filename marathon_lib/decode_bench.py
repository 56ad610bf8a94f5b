"""Decode speed of each decode mode (eager HF `generate`, static cache, compiled step), side by side.

One loaded model (a `shape:` checkpoint on a GPU: the real config with random weights; a tiny checkpoint on CPU),
one synthetic prompt of `prompt_tokens` text tokens, exactly `new_tokens` greedy tokens per run (stopping is
disabled so every mode decodes the same count). With a prune ratio, the hook drops that fraction of a span of
the prompt at layer K, so layers >= K decode over shorter caches. Medians over `repeats` after a warm-up run
(which, for the compiled mode, compiles the bucket; its time is reported separately).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .models import AudioLM, load_model, resolve_model
from .models.decode import DECODE_MODES
from .models.inputs import ModelInputs
from .pruning import PRUNERS, PruneHook
from .schema import DEFAULT_PRUNE_LAYER


@contextmanager
def no_stopping(lm: AudioLM) -> Iterator[None]:
    """Every mode decodes exactly max_new_tokens (a random-weight model may emit EOS at any point)."""
    config = lm.model.generation_config
    eos = config.eos_token_id
    config.eos_token_id = None
    lm.stop_token_ids = lambda: set()  # type: ignore[method-assign]
    try:
        yield
    finally:
        config.eos_token_id = eos
        del lm.stop_token_ids


def synthetic_prompt(lm: AudioLM, tokens: int, seed: int = 0) -> ModelInputs:
    """`tokens` random ordinary-vocabulary tokens (no audio: decode cost depends on cache length, not content)."""
    special = set(lm.tokenizer.all_special_ids)
    vocab = [i for i in range(min(len(lm.tokenizer), lm.model.get_output_embeddings().weight.shape[0]))
             if i not in special]
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(vocab), (1, tokens), generator=generator)
    ids = torch.tensor(vocab)[pick].to(lm.device)
    return ModelInputs(tensors={"input_ids": ids, "attention_mask": torch.ones_like(ids)}, spans=(), audio_seconds=0.0)


def run_decode_bench(
    model: str,
    device: str,
    dtype: str,
    prompt_tokens: int,
    new_tokens: int,
    modes: tuple[str, ...] = DECODE_MODES,
    prune_ratios: tuple[float, ...] = (0.0,),
    layer: int = DEFAULT_PRUNE_LAYER,
    span_start: int = 40,
    repeats: int = 3,
) -> dict[str, Any]:
    for mode in modes:
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode {mode!r} is not one of {', '.join(DECODE_MODES)}")
    if span_start >= prompt_tokens - 8:
        raise ValueError(f"--prompt-tokens {prompt_tokens} leaves no span to prune after position {span_start}")
    torch.manual_seed(0)
    lm = load_model(resolve_model(model), cache_root=_cache(), device=device, dtype=dtype, attn_implementation="sdpa")
    inputs = synthetic_prompt(lm, prompt_tokens)
    span = torch.arange(span_start, prompt_tokens - 8, device=lm.device)  # the "audio" a pruner may drop
    rows: list[dict[str, Any]] = []
    with no_stopping(lm):
        for ratio in prune_ratios:
            reference: list[int] | None = None
            for mode in modes:
                lm.set_decode_mode(mode)
                hook = PruneHook(lm.text_stack(), layer, PRUNERS.get("frame"), ratio) if ratio > 0 else None
                runs = []
                for _ in range(1 + repeats):
                    if hook is None:
                        runs.append(lm.generate(inputs, new_tokens))
                    else:
                        with hook, hook.armed(span):
                            runs.append(lm.generate(inputs, new_tokens))
                warm, timed = runs[0], runs[1:]
                tokens = timed[-1].new_token_ids
                reference = tokens if reference is None else reference
                per_token = [g.timing.decode_ms / (g.timing.new_tokens - 1) for g in timed]
                rows.append({
                    "mode": mode,
                    "prune_ratio": ratio,
                    "prefill_ms": round(statistics.median(g.timing.prefill_ms for g in timed), 3),
                    "ms_per_token": round(statistics.median(per_token), 4),
                    "compile_ms": None if warm.timing.compile_ms is None else round(warm.timing.compile_ms, 1),
                    "first_run_ms_per_token": round(warm.timing.decode_ms / (warm.timing.new_tokens - 1), 4),
                    "tokens_equal_to_first_mode": _common_prefix(tokens, reference),
                })
        lm.set_decode_mode("eager")
    lm_params = sum(p.numel() for p in lm.text_stack().module.parameters())
    return {
        "model": model,
        "device": torch.cuda.get_device_name(lm.device) if lm.device.type == "cuda" else "cpu",
        "dtype": dtype,
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "prune_layer": layer,
        "pruned_span": int(span.numel()),
        "repeats": repeats,
        "language_model_parameters": lm_params,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
    }


def _common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two runs share (bf16 kernels over different cache layouts may drift late)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _cache() -> Path:
    from .paths import cache_root

    return cache_root() / "models"


def format_decode_table(result: dict[str, Any]) -> str:
    title = (f"decode speed: {result['model']} on {result['device']} ({result['dtype']}), {result['prompt_tokens']}-token "
             f"prompt, {result['new_tokens']} new tokens, median of {result['repeats']}")
    header = (f"{'mode':<9} {'prune':>5} {'prefill ms':>11} {'ms/token':>9} {'vs eager':>9} {'compile ms':>11} "
              f"{'same tokens':>11}")
    lines = [title, header]
    eager = {row["prune_ratio"]: row["ms_per_token"] for row in result["rows"] if row["mode"] == "eager"}
    for row in result["rows"]:
        base = eager.get(row["prune_ratio"])
        speedup = f"{base / row['ms_per_token']:.2f}x" if base else "-"
        compile_ms = "-" if row["compile_ms"] is None else f"{row['compile_ms']:.0f}"
        lines.append(f"{row['mode']:<9} {row['prune_ratio']:>5.2f} {row['prefill_ms']:>11.1f} "
                     f"{row['ms_per_token']:>9.3f} {speedup:>9} {compile_ms:>11} "
                     f"{row['tokens_equal_to_first_mode']:>5}/{result['new_tokens']}")
    return "\n".join(lines)
