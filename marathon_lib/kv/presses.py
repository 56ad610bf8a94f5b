"""Applying a kvpress press to an audio LM: which module the press is given, audio-scope restriction, the
Qwen-Omni mRoPE adapter and the per-head query norm kvpress only applies for its own Qwen3/Gemma3 classes.

Imported only when kvpress is installed (see `marathon_lib.kv.kvpress_availability`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import kvpress
import torch
from kvpress import ScorerPress
from torch import nn
from transformers.models.gemma3.modeling_gemma3 import Gemma3Attention
from transformers.models.qwen3.modeling_qwen3 import Qwen3Attention

from ..pruning.selectors import kept_count
from ..textstack import TextStack, compose_mrope
from . import PRESSES

# The attention classes whose q_norm kvpress.utils.get_prerope_query_states applies itself.
QK_NORM_CLASSES = (Qwen3Attention, Gemma3Attention)


@dataclass
class ScopedPress(ScorerPress):
    """Wraps a kvpress ScorerPress. With an audio span, only audio entries are scored and evicted:
    exactly L - floor(L r) of the span's L entries stay per head and every other entry is kept as is.
    Without a span it is the inner press over all tokens (kvpress semantics)."""

    inner: ScorerPress | None = None
    audio_positions: torch.Tensor | None = None  # the current prompt's audio tokens, set per call
    mrope_section: list[int] | None = None
    kept_per_layer: dict[int, int] = field(default_factory=dict)

    def compress(self, module: nn.Module, hidden_states: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                 attentions: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        kwargs = self._llama_like(kwargs)
        with normed_queries(module):
            if self.audio_positions is None:
                keys, values = self.inner.compress(module, hidden_states, keys, values, attentions, kwargs)
            else:
                keys, values = self._compress_span(module, hidden_states, keys, values, attentions, kwargs)
        self.kept_per_layer[module.layer_idx] = int(keys.shape[-2])
        return keys, values

    def _compress_span(self, module: nn.Module, hidden_states: torch.Tensor, keys: torch.Tensor,
                       values: torch.Tensor, attentions: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        audio = self.audio_positions.to(keys.device)
        n_drop = audio.numel() - kept_count(audio.numel(), self.compression_ratio)
        if n_drop == 0:
            return keys, values
        scores = self.inner.score(module, hidden_states, keys, values, attentions, kwargs).float()
        protected = torch.ones(keys.shape[-2], dtype=torch.bool, device=keys.device)
        protected[audio] = False
        scores[..., protected] = torch.inf  # outside the audio: never evicted
        keep = scores.topk(keys.shape[-2] - n_drop, dim=-1).indices.sort(dim=-1).values
        index = keep.unsqueeze(-1).expand(-1, -1, -1, keys.shape[-1])
        return keys.gather(2, index).contiguous(), values.gather(2, index).contiguous()

    def _llama_like(self, kwargs: dict) -> dict:
        """Qwen-Omni on transformers 5.2 hands (3, B, L, d) mRoPE tables; presses expect (B, L, d)."""
        cos, sin = kwargs.get("position_embeddings") or (None, None)
        if self.mrope_section and cos is not None and cos.dim() == 4:
            composed = (compose_mrope(cos, self.mrope_section), compose_mrope(sin, self.mrope_section))
            return dict(kwargs, position_embeddings=composed)
        return kwargs


class _NormedQueryProjection(nn.Module):
    """q_proj followed by the layer's per-head q_norm: the pre-RoPE queries its attention really uses."""

    def __init__(self, projection: nn.Module, norm: nn.Module, head_dim: int) -> None:
        super().__init__()
        self.projection, self.norm, self.head_dim = projection, norm, head_dim

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        queries = self.projection(hidden_states)
        return self.norm(queries.unflatten(-1, (-1, self.head_dim))).flatten(-2)


@contextmanager
def normed_queries(attention: nn.Module) -> Iterator[None]:
    """kvpress's query-based scorers apply q_norm only to Qwen3Attention/Gemma3Attention; other classes with a
    per-head q_norm (the Qwen3-Omni thinker) would be scored with unnormed queries. While a press scores (after
    the layer's own forward, inside kvpress's hook) their q_proj is the normed projection."""
    if getattr(attention, "q_norm", None) is None or isinstance(attention, QK_NORM_CLASSES):
        yield
        return
    projection = attention.q_proj
    attention.q_proj = _NormedQueryProjection(projection, attention.q_norm, attention.head_dim)
    try:
        yield
    finally:
        attention.q_proj = projection


class MRopeAsRope(nn.Module):
    """A rotary module that takes 1-D positions and returns composed (B, L, d) tables, for presses that
    re-apply RoPE themselves (ExpectedAttention) on an mRoPE model."""

    def __init__(self, rotary: nn.Module, section: list[int]) -> None:
        super().__init__()
        self.rotary, self.section = rotary, section

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if position_ids.dim() == 2:
            position_ids = position_ids[None].expand(3, -1, -1)
        cos, sin = self.rotary(x, position_ids)
        if cos.dim() == 4:
            return compose_mrope(cos, self.section), compose_mrope(sin, self.section)
        return cos, sin


def build_press(name: str, compression_ratio: float, mrope_section: list[int] | None) -> ScopedPress:
    inner = getattr(kvpress, PRESSES.get(name))(compression_ratio=compression_ratio)
    return ScopedPress(compression_ratio=compression_ratio, inner=inner, mrope_section=mrope_section)


def press_target(model: nn.Module, stack: TextStack) -> nn.Module:
    """The module to hand to `press(...)` so that kvpress hooks exactly `stack`'s layers: kvpress reaches
    them as `m.model.language_model.layers`, or `m.model.layers` when `m.model` has no language_model. That
    is the thinker itself for Qwen-Omni and Phi-4, the wrapped `language_model` (a *ForCausalLM) for
    Qwen2-Audio, Audio Flamingo 3, Voxtral and Granite-speech; the forward still runs through `model`."""
    for module in model.modules():
        inner = getattr(module, "model", None)
        text_model = getattr(inner, "language_model", inner)  # kvpress's own lookup
        if isinstance(text_model, nn.Module) and getattr(text_model, "layers", None) is stack.layers:
            return module
    raise ValueError(f"{type(model).__name__}: no module holds the text stack as .model(.language_model).layers")


@contextmanager
def pressed(press: ScopedPress, model: nn.Module, stack: TextStack, audio_positions: torch.Tensor | None
            ) -> Iterator[None]:
    """The press active on every decoder layer of `model`'s text stack for one prefill (run through `model`),
    then removed without trace."""
    target = press_target(model, stack)
    press.audio_positions, press.kept_per_layer = audio_positions, {}
    press.inner.post_init_from_model(target)
    attentions = [layer.self_attn for layer in stack.layers]
    before = [getattr(a, "rotary_emb", None) for a in attentions]
    try:
        with press(target):
            if stack.mrope_section:
                text_model = next(m for m in target.modules() if getattr(m, "layers", None) is stack.layers)
                for attn in attentions:  # after kvpress's own assignment
                    attn.rotary_emb = MRopeAsRope(text_model.rotary_emb, stack.mrope_section)
            yield
    finally:
        press.audio_positions = None
        for attn, rotary in zip(attentions, before):
            if rotary is None:
                attn.__dict__.pop("rotary_emb", None)
                attn._modules.pop("rotary_emb", None)
            else:
                attn.rotary_emb = rotary


def kv_cache_stats(cache: Any, prompt_len: int, kept_per_layer: list[int]) -> dict[str, Any]:
    """KV bytes held right after the prompt, the bytes an uncompressed cache would hold, kept per layer."""
    held = full = 0
    for layer, kept in zip(cache.layers, kept_per_layer):
        per_entry = (layer.keys[..., :1, :].numel() + layer.values[..., :1, :].numel()) * layer.keys.element_size()
        held += kept * per_entry
        full += prompt_len * per_entry
    return {"kv_bytes": held, "kv_bytes_uncompressed": full, "kept_per_layer": kept_per_layer}
