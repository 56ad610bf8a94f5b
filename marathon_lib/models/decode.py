"""Fast greedy decoding: a static per-layer KV cache and a compiled one-token step.

HF `generate` with a dynamic cache re-enters Python and grows the cache every token (18-35 ms/token after warm-up,
112 ms on a first call, on a 7B-shaped model with a 7.5k-token prompt on an H200, against a ~3.5 ms
weight-bandwidth floor). Here the prompt
is prefilled exactly as `generate` does (pruning hooks and all), its cache is copied into fixed buffers of a
bucketed size, and each new token runs one compiled step over those buffers.

Pruning leaves layers >= K with fewer cached entries than layers < K. Each layer therefore keeps its own filled
length: new entries go to slot `length[i]`, and a per-layer mask (built in a forward pre-hook, from that layer's
length) hides the slots past it. Masked slots get exactly zero attention weight, so the step computes what the
dynamic cache computes; tokens are checked equal to eager greedy decoding in the tests (CPU, fp32). Decode steps
run a grouped-query attention (eager attention's arithmetic without copying K/V per query head).

Compilation happens once per (model, bucket) per process, outside the timed decode, and is reported as
`compile_ms`. Families whose caches are not plain full-attention layers (sliding windows, Gemma-3n's KV sharing)
are refused with the reason, as are generation configs whose logits processors this loop does not apply.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from transformers import DynamicCache
from transformers.cache_utils import Cache, CacheLayerMixin

from ..textstack import TextStack, layer_hooks
from ..timing import Clock, Timing
from .inputs import Generation, ModelInputs


class DecodingModel(Protocol):
    """What the static decoder needs from a loaded model (models.base.AudioLM provides it)."""

    name: str
    family: str
    model: nn.Module
    device: torch.device
    attn_implementation: str
    clock: Clock

    def text_stack(self) -> TextStack: ...

    def stop_token_ids(self) -> set[int]: ...

    def continuation_positions(self, start: int, length: int) -> torch.Tensor: ...

    def generation_from(self, new_ids: list[int], timing: Timing, **extra: Any) -> Generation: ...

DECODE_MODES = ("eager", "static", "compiled")
BUCKET_TOKENS = 1024  # cache sizes are rounded up to this: one compiled graph serves every prompt in a bucket
MAX_BUCKETS = 32  # compiled graphs kept per decoder (dynamo's recompile limit is raised to match)

# Generation-config fields whose logits processors the loop below does not apply (value: the neutral setting).
UNSUPPORTED_PROCESSORS = {
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
    "renormalize_logits": (None, False),
}


@dataclass(frozen=True)
class DecodeSupport:
    ok: bool
    reason: str = ""


def decode_support(lm: DecodingModel) -> DecodeSupport:
    """Whether the static-cache path computes what eager greedy decoding computes for this model."""
    text = lm.model.config.get_text_config(decoder=True)
    layer_types = set(getattr(text, "layer_types", None) or ["full_attention"])
    if layer_types != {"full_attention"}:
        return DecodeSupport(False, f"{lm.family}: layer types {sorted(layer_types)} need their own cache layouts "
                                    "(only full-attention layers are supported)")
    if getattr(text, "use_sliding_window", False) or getattr(text, "num_kv_shared_layers", 0):
        return DecodeSupport(False, f"{lm.family}: sliding-window or KV-shared layers are not supported")
    if lm.attn_implementation not in ("sdpa", "eager"):
        return DecodeSupport(False, f"attention {lm.attn_implementation!r}: the static decode path is checked "
                                    "against eager decoding with sdpa and eager attention only")
    config = lm.model.generation_config
    for name, neutral in UNSUPPORTED_PROCESSORS.items():
        if getattr(config, name, None) not in neutral:
            return DecodeSupport(False, f"generation config sets {name}={getattr(config, name)!r}, "
                                        "which the static decode loop does not apply")
    return DecodeSupport(True)


def use_decode_mode(model: Any, mode: str) -> None:
    """--decode static/compiled where the model supports it; otherwise eager, said once, and every record
    names the decode mode it ran with (so timings of different paths are never compared unknowingly)."""
    if mode == "eager" or not hasattr(model, "set_decode_mode"):  # API models decode remotely
        return
    support = decode_support(model)
    if not support.ok:
        warnings.warn(f"--decode {mode}: {support.reason}; {model.name} decodes eagerly", stacklevel=2)
        return
    model.set_decode_mode(mode)


class CompactLayer(CacheLayerMixin):
    """One layer's keys/values in fixed (1, H, S, d) buffers, filled left to right up to `length`."""

    is_compileable = True
    is_sliding = False

    def __init__(self, size: int, like: torch.Tensor, value_like: torch.Tensor) -> None:
        super().__init__()
        shape = (like.shape[0], like.shape[1], size)
        self.keys = torch.zeros(*shape, like.shape[-1], dtype=like.dtype, device=like.device)
        self.values = torch.zeros(*shape, value_like.shape[-1], dtype=value_like.dtype, device=value_like.device)
        self.length = torch.zeros((), dtype=torch.long, device=like.device)
        self.size = size
        self.is_initialized = True
        # Fixed addresses let CUDA graphs replay over buffers the step mutates in place.
        for tensor in (self.keys, self.values, self.length):
            torch._dynamo.mark_static_address(tensor)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Buffers are allocated up front, at the bucket size."""

    def fill(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Copy a prefilled layer in (in place: the buffers' addresses must not change)."""
        n = keys.shape[-2]
        if n > self.size:
            raise ValueError(f"{n} cached entries do not fit a {self.size}-slot static cache")
        self.keys[:, :, :n].copy_(keys)
        self.values[:, :, :n].copy_(values)
        self.length.fill_(n)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        slots = self.length + torch.arange(key_states.shape[-2], device=self.length.device)
        self.keys.index_copy_(2, slots, key_states)
        self.values.index_copy_(2, slots, value_states)
        self.length.add_(key_states.shape[-2])
        return self.keys, self.values

    def get_mask_sizes(self, *args: Any) -> tuple[int, int]:
        return self.size, 0

    def get_seq_length(self) -> int:
        return self.size  # only read for positions/masks, which the decode step always passes explicitly

    def get_max_length(self) -> int:
        return self.size

    def get_max_cache_shape(self) -> int:
        return self.size

    def visible(self, dtype: torch.dtype) -> torch.Tensor:
        """(1, 1, 1, S) additive mask for the next token: slots up to and including `length` (where the token's
        own key goes) are visible, the rest get the dtype's minimum (exactly zero weight after softmax)."""
        slots = torch.arange(self.size, device=self.length.device)
        hidden = (slots > self.length).view(1, 1, 1, -1)
        return torch.zeros(hidden.shape, dtype=dtype, device=hidden.device).masked_fill(hidden, torch.finfo(dtype).min)


class CompactCache(Cache):
    """A cache of CompactLayers, one per decoder layer, each with its own filled length."""

    owns_decode_masks = True  # the pruning hook leaves decode masks to StaticDecoder

    def __init__(self, layers: list[CompactLayer]) -> None:
        super().__init__(layers=layers)

    @classmethod
    def from_prefill(cls, prefill: Any, size: int) -> CompactCache:
        return cls([CompactLayer(size, layer.keys, layer.values) for layer in prefill.layers])

    def fill(self, prefill: Any) -> None:
        for layer, source in zip(self.layers, prefill.layers, strict=True):
            layer.fill(source.keys, source.values)


GROUPED_ATTENTION = "marathon_grouped_decode"


def grouped_decode_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor, scaling: float | None = None, dropout: float = 0.0,
                             **kwargs: Any) -> tuple[torch.Tensor, None]:
    """One decode step's attention over a grouped-query cache, as eager attention computes it (scaled scores +
    mask, fp32 softmax, weighted values) but without copying K/V for every query head: the query heads that
    share a KV head become query rows of it. (Masked sdpa would repeat the whole bucket per layer and step.)"""
    batch, heads, length, dim = query.shape
    groups = key.shape[1]
    if length != 1:
        raise ValueError(f"grouped decode attention takes one new token, got {length}")
    rows = query.reshape(batch, groups, heads // groups, dim)
    scores = torch.matmul(rows, key.transpose(-1, -2)) * (dim ** -0.5 if scaling is None else scaling)
    weights = (scores + attention_mask).softmax(dim=-1, dtype=torch.float32).to(value.dtype)
    out = torch.matmul(weights, value)  # (batch, groups, heads // groups, dim)
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


@contextmanager
def attention_implementation(configs: list[Any], name: str) -> Iterator[None]:
    """Decode steps use the grouped attention; the prefill keeps the model's own implementation."""
    from transformers import AttentionInterface

    AttentionInterface.register(name, grouped_decode_attention)
    before = [config._attn_implementation for config in configs]
    for config in configs:
        config._attn_implementation = name
    try:
        yield
    finally:
        for config, value in zip(configs, before):
            config._attn_implementation = value


def _compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def bucket_size(tokens: int, bucket: int = BUCKET_TOKENS) -> int:
    return bucket * math.ceil(tokens / bucket)


class StaticDecoder:
    """Greedy decoding for one loaded model through a CompactCache; `compiled` wraps the step in torch.compile
    (CUDA graphs on GPU). One instance per model: compiled graphs and cache buffers persist across samples."""

    def __init__(self, lm: DecodingModel, compiled: bool) -> None:
        support = decode_support(lm)
        if not support.ok:
            raise ValueError(f"static decoding is not available for {lm.name}: {support.reason}")
        self.lm, self.compiled = lm, compiled
        self.stack = lm.text_stack()
        self.text_model = self.stack.module
        self.lm_head = lm.model.get_output_embeddings()
        # A Granite causal LM divides its logits by config.logits_scaling after lm_head (the 5.2 speech model runs one;
        # 5.2x's speech model has its own unscaled head): follow whichever module owns the head.
        owner = next(m for m in lm.model.modules() if getattr(m, "lm_head", None) is self.lm_head)
        self.logits_scaling = float(getattr(owner.config, "logits_scaling", 1.0))
        params = inspect.signature(self.text_model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.pass_cache_position = "cache_position" in params  # transformers 5.2 derives it from the cache otherwise
        self.prefill_cache_arg = "cache" if "cache" in inspect.signature(lm.model.forward).parameters else (
            "past_key_values")
        # every config object the decoder layers read their attention implementation from
        self.attn_configs = list({id(layer.self_attn.config): layer.self_attn.config
                                  for layer in self.stack.layers}.values())
        self.caches: dict[int, CompactCache] = {}
        self.warm: set[int] = set()  # buckets whose step is compiled
        self.cache: CompactCache | None = None
        for index, layer in enumerate(self.stack.layers):
            layer_hooks(layer).decode_mask = self._layer_mask(index)
        penalty = lm.model.generation_config.repetition_penalty
        self.repetition_penalty = None if penalty in (None, 1.0) else float(penalty)
        step = self._step
        if compiled:
            for limit in ("recompile_limit", "cache_size_limit"):  # renamed across torch versions
                if hasattr(torch._dynamo.config, limit):
                    setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), MAX_BUCKETS))
            mode = "reduce-overhead" if lm.device.type == "cuda" else None
            step = torch.compile(step, mode=mode, dynamic=False, fullgraph=False)
        self.step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = step

    def close(self) -> None:
        for layer in self.stack.layers:
            layer_hooks(layer).decode_mask = None
        self.caches.clear()

    def _layer_mask(self, index: int) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            if "attention_mask" not in kwargs:
                raise RuntimeError(f"decoder layer {index} takes no attention_mask keyword: static decoding cannot "
                                   "mask its cache")
            layer = self.cache.layers[index]
            return args, dict(kwargs, attention_mask=layer.visible(layer.keys.dtype))

        return hook

    def _step(self, token: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """One token through the language model over the compact cache -> next-token logits (1, V)."""
        kwargs: dict[str, Any] = {self.cache_arg: self.cache}
        if self.pass_cache_position:
            kwargs["cache_position"] = position_ids.reshape(-1)[-1:]
        # Any 4-D mask makes the model skip building its own; each layer's hook replaces it with the real one.
        placeholder = self.cache.layers[0].visible(self.cache.layers[0].keys.dtype)
        hidden = self.text_model(input_ids=token, position_ids=position_ids, attention_mask=placeholder,
                                 use_cache=True, **kwargs).last_hidden_state
        return self.lm_head(hidden[:, -1]).float() / self.logits_scaling

    def scores(self, logits: torch.Tensor, sequence: list[int]) -> torch.Tensor:
        """The next-token scores greedy search takes the argmax of (what `generate` reports as `scores`)."""
        if self.repetition_penalty is not None:  # as transformers' RepetitionPenaltyLogitsProcessor
            seen = torch.tensor(sorted(set(sequence)), device=logits.device)
            picked = logits.gather(-1, seen[None])
            picked = torch.where(picked < 0, picked * self.repetition_penalty, picked / self.repetition_penalty)
            logits = logits.scatter(-1, seen[None], picked)
        return logits

    def _bind(self, prefill: Any, tokens: int) -> int:
        """Point the step at this bucket's cache, filled with the prefill; returns the bucket size. Each bucket
        keeps its buffers: the compiled step is specialised to them, so a new buffer would mean a recompile."""
        size = bucket_size(tokens)
        if size not in self.caches:
            if len(self.caches) >= MAX_BUCKETS:
                raise ValueError(f"more than {MAX_BUCKETS} cache buckets of {BUCKET_TOKENS} tokens in one session")
            self.caches[size] = CompactCache.from_prefill(prefill, size)
        self.cache = self.caches[size]
        self.cache.fill(prefill)
        return size

    def _compile_bucket(self, size: int, token: torch.Tensor, positions: torch.Tensor) -> None:
        """Run the step on the real next input without keeping its effect: the write to slot `length` is
        repeated identically by the first timed step. CUDA graphs need a warm-up run and a recording run."""
        saved = [layer.length.clone() for layer in self.cache.layers]
        for _ in range(3 if self.lm.device.type == "cuda" else 2):
            self.step(token, positions)
            for layer, length in zip(self.cache.layers, saved):
                layer.length.copy_(length)
        self.warm.add(size)

    @torch.inference_mode()
    def generate(self, inputs: ModelInputs, max_new_tokens: int) -> Generation:
        lm, clock = self.lm, self.lm.clock
        ids = inputs.tensors["input_ids"]
        prompt_len = ids.shape[-1]
        prefill_cache = DynamicCache()
        start = clock.mark()
        logits = lm.model(**inputs.tensors, **{self.prefill_cache_arg: prefill_cache}, use_cache=True,
                          logits_to_keep=1).logits[:, -1].float()
        sequence = ids[0].tolist()
        token = self.scores(logits, sequence).argmax(-1)
        first = clock.mark()
        new_ids, stops = [int(token)], lm.stop_token_ids()
        compile_ms = None
        prompt_cache_len = [int(layer.keys.shape[-2]) for layer in prefill_cache.layers]
        if max_new_tokens > 1 and new_ids[-1] not in stops:
            with attention_implementation(self.attn_configs, GROUPED_ATTENTION):
                size = self._bind(prefill_cache, max(prompt_cache_len) + max_new_tokens)
                del prefill_cache
                if self.compiled and size not in self.warm:
                    before = clock.mark()
                    self._compile_bucket(size, token[:, None], lm.continuation_positions(prompt_len, 1))
                    compile_ms = clock.elapsed_ms(before, clock.mark())
                graphs = _compiled_graphs()
                while len(new_ids) < max_new_tokens and new_ids[-1] not in stops:
                    position = prompt_len + len(new_ids) - 1
                    logits = self.step(token[:, None], lm.continuation_positions(position, 1))
                    token = self.scores(logits, sequence + new_ids).argmax(-1)
                    new_ids.append(int(token))
                if self.compiled and _compiled_graphs() != graphs:  # never expected: would put compilation in decode_ms
                    raise RuntimeError(f"the decode step recompiled inside the timed loop (bucket {size}); "
                                       "run with TORCH_LOGS=recompiles to see which guard failed")
        end = clock.mark()
        decode_ms = clock.elapsed_ms(first, end) - (compile_ms or 0.0)  # compilation is reported, not timed
        timing = Timing(clock.elapsed_ms(start, first), decode_ms, len(new_ids), compile_ms=compile_ms)
        return lm.generation_from(new_ids, timing)
