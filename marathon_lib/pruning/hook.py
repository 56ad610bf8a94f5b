"""All tensor plumbing of audio-token pruning, in one place, for every model family.

At decoder layer K, during prefill only, the hook keeps a subset of the audio tokens: it slices the
hidden states and, for layers >= K, the per-layer arguments the model hands unchanged to every layer
(position embeddings for 1-D RoPE and 3-D mRoPE, masks, position ids, cache positions). Kept tokens keep
their original RoPE positions. Layers >= K therefore cache fewer keys/values while layer 0 keeps the full
length, so `generate` keeps counting decode positions in original coordinates (L, L+1, ...). During
decode only a 4-D mask needs remapping. Both argument spellings work: `past_key_values`/`cache_position`
(transformers 5.2) and `cache` (5.2x).

Families differ only in what the hook slices and how it projects q/k, all handled generically: positional
per-token arguments (Gemma-3n passes position_embeddings and per_layer_input positionally) are sliced like
the kwargs; AltUp hidden states (n_streams, B, L, D) are sliced along L; q/k come from q_proj/k_proj or a fused
qkv_proj (Phi-4), through q_norm/k_norm where present (Qwen3, Gemma-3n). A `TextStack` may declare limits
(`max_prune_layer`, `max_prune_length`) that the hook enforces with the family's reason.

Batch size 1 only: the benchmark runs one sample at a time, so the keep set is one index vector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .selectors import kept_count


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


def _seq_view(hidden: torch.Tensor) -> torch.Tensor:
    """(L, D) of the one sample: (B=1, L, D) -> [0]; Gemma-3n AltUp (n_streams, B=1, L, D) -> the active stream 0."""
    return hidden.reshape(-1, *hidden.shape[-2:])[0]


def _batch_size(hidden: torch.Tensor) -> int:
    return int(hidden.shape[-3])


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


class PruneHook:
    """Installs forward pre-hooks on layers K-1..N-1; `armed(...)` supplies the audio span per call."""

    def __init__(self, stack: TextStack, layer: int, pruner: Any, ratio: float) -> None:
        n_layers = len(stack.layers)
        if not 1 <= layer < n_layers:
            raise ValueError(f"prune layer {layer} must be in [1, {n_layers - 1}] for a {n_layers}-layer model")
        refusal = family_limit_refusal(stack, layer)
        if refusal is not None:
            raise ValueError(refusal)
        self.stack, self.layer, self.pruner, self.ratio = stack, layer, pruner, ratio
        self.handles: list[Any] = []
        self.audio_positions: torch.Tensor | None = None
        self.generator: torch.Generator | None = None
        self.forced: torch.Tensor | None = None
        self.keep: torch.Tensor | None = None  # kept absolute positions of the current prefill
        self.prompt_len = 0
        self.captured: dict[str, Any] = {}
        self.last_kept_audio: torch.Tensor | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def install(self) -> PruneHook:
        if self.handles:
            raise RuntimeError("prune hook installed twice")
        if getattr(self.pruner, "needs_attention", False):
            self.handles.append(layer_hooks(self.stack.layers[self.layer - 1]).add(self._capture_previous))
        for index in range(self.layer, len(self.stack.layers)):
            self.handles.append(layer_hooks(self.stack.layers[index]).add(self._make_hook(index)))
        return self

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def __enter__(self) -> PruneHook:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    @contextmanager
    def armed(
        self,
        audio_positions: torch.Tensor,
        generator: torch.Generator | None = None,
        forced_audio_keep: torch.Tensor | None = None,
    ) -> Iterator[PruneHook]:
        """Prune this call's audio positions; `forced_audio_keep` replays a previous selection (tests)."""
        if audio_positions.numel() == 0:
            raise ValueError("the prompt has no audio tokens: nothing to prune")
        self.audio_positions, self.generator, self.forced = audio_positions, generator, forced_audio_keep
        self.keep, self.captured, self.last_kept_audio = None, {}, None
        try:
            yield self
        finally:
            self.audio_positions = self.generator = self.forced = None
            self.keep, self.captured = None, {}

    # --- selection ------------------------------------------------------------------------------
    def _capture_previous(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Layer K-1 prefill: keep what FastV needs (its input and position embeddings)."""
        hidden = args[0] if args else kwargs["hidden_states"]
        if self.audio_positions is not None and hidden.shape[-2] > 1:
            rope = kwargs.get("position_embeddings")
            if rope is None:  # passed positionally (Gemma-3n: hidden, position_embeddings, per_layer_input)
                rope = next((a for a in args[1:] if isinstance(a, tuple) and len(a) == 2), None)
            self.captured = {"hidden": hidden, "position_embeddings": rope, "layer": module}

    def last_query_attention(self) -> torch.Tensor:
        """Head-mean softmax attention of the last prompt token to every key at layer K-1, from that
        layer's own q/k projections and RoPE: one query row, never the full L x L matrix."""
        layer = self.captured["layer"]
        attn = layer.self_attn
        hidden = self.captured["hidden"]
        altup = getattr(layer, "altup", None)
        if altup is not None:  # Gemma-3n: attention reads the AltUp prediction of the active stream
            hidden = altup.predict(hidden)[layer.config.altup_active_idx]
        hidden = layer.input_layernorm(_seq_view(hidden))  # (L, D)
        q, k = project_qk(attn, hidden[-1:], hidden)  # (H, 1, d), (Hkv, L, d)
        cos, sin = self._rope_tables(self.captured["position_embeddings"])
        q, k = apply_rope(q, cos[-1:], sin[-1:]), apply_rope(k, cos, sin)
        k = k.repeat_interleave(q.shape[0] // k.shape[0], dim=0)
        scores = (q.float() @ k.float().transpose(-1, -2)) * attn.scaling  # (H, 1, L)
        return scores.softmax(dim=-1).mean(dim=0)[0]

    def _rope_tables(self, position_embeddings: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = position_embeddings
        if cos.dim() == 4:  # 5.2 Qwen-Omni passes (3, B, L, d) and composes inside attention
            cos, sin = compose_mrope(cos, self.stack.mrope_section), compose_mrope(sin, self.stack.mrope_section)
        return cos[0], sin[0]

    def key_l1_norms(self, hidden: torch.Tensor) -> torch.Tensor:
        """L1 norm of layer K's keys (pre-RoPE, all heads flattened) for each position: DART's pivot score."""
        layer = self.stack.layers[self.layer]
        return project_k(layer.self_attn, layer.input_layernorm(hidden)).abs().sum(dim=-1)

    def normed_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.stack.norm(hidden)

    def _choose(self, hidden: torch.Tensor) -> torch.Tensor:
        seq_len = hidden.shape[-2]
        audio = self.audio_positions.to(hidden.device)
        if self.forced is not None:
            kept_audio = self.forced.to(hidden.device)
        else:
            kept_audio = self.pruner.select(self, audio, kept_count(audio.numel(), self.ratio), _seq_view(hidden))
        mask = torch.ones(seq_len, dtype=torch.bool, device=hidden.device)
        mask[audio] = False
        mask[kept_audio] = True
        self.last_kept_audio = kept_audio
        return mask.nonzero().flatten()

    # --- plumbing -------------------------------------------------------------------------------
    def _make_hook(self, index: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
            if self.audio_positions is None:
                return None  # not armed: this call runs unpruned
            hidden = args[0] if args else kwargs["hidden_states"]
            if _batch_size(hidden) != 1:
                raise ValueError("audio-token pruning runs with batch size 1")
            length = hidden.shape[-2]
            if length > 1 and index == self.layer:  # prefill reaches layer K
                limit = self.stack.max_prune_length
                if limit is not None and length > limit:
                    raise ValueError(f"a {length}-token prompt cannot be pruned on this model: at most {limit} "
                                     f"tokens ({self.stack.limit_reason})")
                self.prompt_len = length
                self.keep = self._choose(hidden)
                hidden = hidden.index_select(-2, self.keep)
            if self.keep is None:
                return None
            new_kwargs = self._slice_prefill(kwargs) if length > 1 else self._remap_decode_mask(kwargs)
            if args:
                rest = self._slice_positional(args[1:]) if length > 1 else args[1:]
                return (hidden, *rest), new_kwargs
            new_kwargs["hidden_states"] = hidden
            return args, new_kwargs

        return hook

    def _slice_prefill(self, kwargs: dict) -> dict:
        keep, out = self.keep, dict(kwargs)
        if kwargs.get("position_embeddings") is not None:
            out["position_embeddings"] = tuple(t.index_select(-2, keep) for t in kwargs["position_embeddings"])
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 4:
            out["attention_mask"] = mask.index_select(-2, keep).index_select(-1, keep)
        elif isinstance(mask, torch.Tensor) and mask.dim() == 2:
            out["attention_mask"] = mask.index_select(-1, keep)
        if isinstance(kwargs.get("position_ids"), torch.Tensor):
            out["position_ids"] = kwargs["position_ids"].index_select(-1, keep)
        if isinstance(kwargs.get("cache_position"), torch.Tensor):  # transformers 5.2
            out["cache_position"] = kwargs["cache_position"].index_select(-1, keep)
        return out

    def _slice_positional(self, args: tuple) -> tuple:
        """Positional per-token arguments after the hidden states (Gemma-3n passes position_embeddings and
        per_layer_input positionally): every tensor whose dim -2 is the prompt length, alone or in a tuple,
        is sliced along it; anything else is passed on unchanged."""
        keep, length = self.keep, self.prompt_len

        def cut(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[-2] == length:
                return value.index_select(-2, keep)
            if isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
                return tuple(cut(v) for v in value)
            return value

        return tuple(cut(a) for a in args)

    def _remap_decode_mask(self, kwargs: dict) -> dict:
        """A decode-step 4-D mask spans the full (layer-0) length; layers >= K hold only the kept entries."""
        mask = kwargs.get("attention_mask")
        if not (isinstance(mask, torch.Tensor) and mask.dim() == 4):
            return kwargs
        tail = torch.arange(self.prompt_len, mask.shape[-1], device=mask.device)
        return dict(kwargs, attention_mask=mask.index_select(-1, torch.cat([self.keep, tail])))
