"""The language model's decoder stack, below models, pruning and kv: where it is inside a multimodal wrapper
(`find_text_stack`), its RoPE/mRoPE helpers, its q/k projections, and the one forward pre-hook per decoder layer
(`LayerHooks`) through which pruning callbacks and the static decode path reach each layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def compose_mrope(table: torch.Tensor, section: list[int]) -> torch.Tensor:
    """(3, B, L, d) multimodal cos/sin (transformers 5.2 Omni) -> the (B, L, d) table attention applies."""
    parts = table.split(list(section) * 2, dim=-1)
    return torch.cat([part[i % 3] for i, part in enumerate(parts)], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Standard rotate-half RoPE; cos/sin (L, r) with r <= head_dim (partial rotary rotates the first r dims)."""
    rot = cos.shape[-1]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    return torch.cat((x_rot * cos + _rotate_half(x_rot) * sin, x_pass), dim=-1)


@dataclass
class TextStack:
    """What the hook needs from a language model: its decoder layers and its final norm.

    `max_prune_layer` / `max_prune_length`: limits of families whose layers share state the hook cannot slice
    (Gemma-3n: KV-sharing layers read the cache of an earlier "store" layer, and its sliding-window cache crops
    by count); `limit_reason` explains them. None = no limit."""

    layers: nn.ModuleList
    norm: nn.Module
    mrope_section: list[int] | None = None
    max_prune_layer: int | None = None
    max_prune_length: int | None = None
    limit_reason: str = ""
    module: nn.Module | None = None  # the text model holding `layers` (what the static decode step calls)


def project_qk(
    attn: nn.Module, query_hidden: torch.Tensor, key_hidden: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-RoPE query heads of `query_hidden` (Lq, D) and key heads of `key_hidden` (L, D) through a layer's own
    projections: (H, Lq, d), (Hkv, L, d). Separate q_proj/k_proj, or a fused qkv_proj (Phi-4); per-head
    q_norm/k_norm where the family has them (Qwen3, Gemma-3n)."""
    head_dim = attn.head_dim
    if hasattr(attn, "q_proj"):
        q, k = attn.q_proj(query_hidden), attn.k_proj(key_hidden)
    else:  # fused [q | k | v]
        n_q = attn.config.num_attention_heads * head_dim
        q = attn.qkv_proj(query_hidden)[..., :n_q]
        k = project_k(attn, key_hidden)
    q = q.view(query_hidden.shape[0], -1, head_dim)
    k = k.view(key_hidden.shape[0], -1, head_dim)
    if getattr(attn, "q_norm", None) is not None:
        q = attn.q_norm(q)
    if getattr(attn, "k_norm", None) is not None:
        k = attn.k_norm(k)
    return q.transpose(0, 1), k.transpose(0, 1)


def project_k(attn: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Raw (pre-norm, pre-RoPE) key projection of `hidden` (L, D), all heads flattened: (L, Hkv * d)."""
    if hasattr(attn, "k_proj"):
        return attn.k_proj(hidden)
    n_q = attn.config.num_attention_heads * attn.head_dim
    n_kv = attn.config.num_key_value_heads * attn.head_dim
    return attn.qkv_proj(hidden)[..., n_q : n_q + n_kv]


def find_text_stack(model: nn.Module) -> TextStack:
    """The language model inside a multimodal wrapper: the module with embed_tokens, layers and norm."""
    for _, module in model.named_modules():
        layers = getattr(module, "layers", None)
        if isinstance(layers, nn.ModuleList) and hasattr(module, "embed_tokens") and hasattr(module, "norm"):
            config = getattr(module, "config", None)
            rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
            section = rope.get("mrope_section") if isinstance(rope, dict) else None
            return TextStack(layers, module.norm, list(section) if section else None, module=module)
    raise ValueError(f"{type(model).__name__}: no decoder stack (module with embed_tokens, layers, norm) found")


def owns_decode_masks(kwargs: dict) -> bool:
    """A decoder-layer call over the static decode cache (models.decode.CompactCache), which builds each layer's
    mask from that layer's own filled length, pruned or not."""
    return any(getattr(value, "owns_decode_masks", False) for value in kwargs.values())


class LayerHooks:
    """The one forward pre-hook of a decoder layer, installed on first use and never removed. Pruning callbacks
    come and go with each case; a compiled decode step guards on every layer's hook count, so they live in a
    list here instead of on the module. Static decode steps only run `decode_mask` (no pruning state is read)."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[nn.Module, tuple, dict], tuple[tuple, dict] | None]] = []
        self.decode_mask: Callable[[nn.Module, tuple, dict], tuple[tuple, dict]] | None = None

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if owns_decode_masks(kwargs):
            return None if self.decode_mask is None else self.decode_mask(module, args, kwargs)
        changed = False
        for callback in list(self.callbacks):
            result = callback(module, args, kwargs)
            if result is not None:
                (args, kwargs), changed = result, True
        return (args, kwargs) if changed else None

    def add(self, callback: Callable) -> _Removal:
        self.callbacks.append(callback)
        return _Removal(self.callbacks, callback)


@dataclass
class _Removal:
    callbacks: list
    callback: Callable

    def remove(self) -> None:
        if self.callback in self.callbacks:
            self.callbacks.remove(self.callback)


def layer_hooks(layer: nn.Module) -> LayerHooks:
    """The layer's LayerHooks, installed once."""
    hooks = layer.__dict__.get("_marathon_hooks")
    if hooks is None:
        hooks = LayerHooks()
        layer.register_forward_pre_hook(hooks, with_kwargs=True)
        layer.__dict__["_marathon_hooks"] = hooks
    return hooks


def family_limit_refusal(stack: TextStack, layer: int) -> str | None:
    """Why this model cannot prune at layer K (a family limit such as Gemma-3n's KV-shared layers), or None."""
    if stack.max_prune_layer is None:
        return None
    if stack.max_prune_layer < 1:
        return f"audio-token pruning is not supported by this model ({stack.limit_reason})"
    if layer > stack.max_prune_layer:
        return (f"prune layer {layer} is not supported by this model: K must be in [1, {stack.max_prune_layer}] "
                f"({stack.limit_reason})")
    return None
