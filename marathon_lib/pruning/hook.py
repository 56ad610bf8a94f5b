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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..textstack import TextStack, apply_rope, compose_mrope, family_limit_refusal, layer_hooks, project_k, project_qk
from .selectors import kept_count


def _seq_view(hidden: torch.Tensor) -> torch.Tensor:
    """(L, D) of the one sample: (B=1, L, D) -> [0]; Gemma-3n AltUp (n_streams, B=1, L, D) -> the active stream 0."""
    return hidden.reshape(-1, *hidden.shape[-2:])[0]


def _batch_size(hidden: torch.Tensor) -> int:
    return int(hidden.shape[-3])


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
        self.audio_end = 0  # one past the last audio position of the armed prompt

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

    def text_after_audio(self, length: int, device: torch.device) -> torch.Tensor:
        """Positions after the last audio token of a `length`-token prefill (DART's text pivot candidates)."""
        return torch.arange(self.audio_end, length, device=device)

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
        self.audio_end = int(audio_positions.max()) + 1  # read here, on the host: no device sync in the prefill
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
