"""Pure selection functions: which audio tokens survive. No model, no hooks, no global state.

Every function takes the sorted absolute positions of the audio tokens and the number to keep
(`kept_count(L, r) = L - floor(L * r)`), and returns a sorted, unique subset of those positions of
exactly that size. Ties are broken by position (stable sorts), so results never depend on set order.
"""

from __future__ import annotations

import math

import torch


def kept_count(n_audio: int, ratio: float) -> int:
    """Audio tokens kept at prune ratio r: L - floor(L * r), the same for every method."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"prune ratio {ratio} is outside [0, 1)")
    return n_audio - math.floor(n_audio * ratio)


def _take(positions: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    return positions[torch.sort(offsets).values]


def select_frame(positions: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Evenly strided: offsets floor(i * L / n) for i < n (the seed's frame method)."""
    n_audio = positions.numel()
    offsets = torch.div(torch.arange(n_keep, device=positions.device) * n_audio, n_keep, rounding_mode="floor")
    return positions[offsets] if n_keep else positions[:0]


def select_random(positions: torch.Tensor, n_keep: int, generator: torch.Generator) -> torch.Tensor:
    """Uniformly random subset from a seeded generator (reproducible; the seed's was unseeded)."""
    order = torch.randperm(positions.numel(), generator=generator, device=generator.device)
    return _take(positions, order[:n_keep].to(positions.device))


def select_top_scores(positions: torch.Tensor, scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Keep the n highest-scoring tokens (FastV: attention received from the last prompt token)."""
    order = torch.sort(scores.float(), descending=True, stable=True).indices
    return _take(positions, order[:n_keep])


def select_dart(
    positions: torch.Tensor,
    n_keep: int,
    key_norms: torch.Tensor,
    hidden: torch.Tensor,
    text_key_norms: torch.Tensor,
    text_hidden: torch.Tensor,
    audio_pivots: int = 4,
    text_pivots: int = 4,
) -> torch.Tensor:
    """DART ("duplication matters more"): keep pivots plus the tokens least similar to them.

    positions/key_norms/hidden describe the audio tokens (hidden: (L, D) normed hidden states);
    text_* describe the candidate text pivots after the audio. Audio pivots are the audio tokens with
    the largest key L1 norm and count inside the budget, so exactly n_keep tokens are kept. The rest
    of the budget is split evenly over all pivots (remainder to the strongest); each pivot in turn keeps
    the remaining candidates with the lowest cosine similarity to it.
    """
    n_audio = positions.numel()
    if n_keep >= n_audio:
        return positions.clone()
    # Tensor ops only: on CUDA nothing here waits for the device (no .item()/int() per picked token).
    by_norm = torch.sort(key_norms.float(), descending=True, stable=True).indices
    if audio_pivots == 0 and (text_pivots == 0 or text_key_norms.numel() == 0):
        audio_pivots = 1  # no text after the audio to pivot on: the strongest audio token is the pivot
    n_audio_pivots = min(audio_pivots, n_keep)
    audio_pivot_index = by_norm[:n_audio_pivots]
    text_order = torch.sort(text_key_norms.float(), descending=True, stable=True).indices[:text_pivots]
    unit = torch.nn.functional.normalize(hidden.float(), dim=-1)
    pivots = [*unit.index_select(0, audio_pivot_index).unbind(0),
              *(torch.nn.functional.normalize(row.float(), dim=-1)
                for row in text_hidden.index_select(0, text_order).unbind(0))]
    budget = n_keep - n_audio_pivots
    candidates = torch.ones(n_audio, dtype=torch.bool, device=hidden.device)
    candidates[audio_pivot_index] = False
    kept = [audio_pivot_index]
    for rank, pivot in enumerate(pivots):
        quota = budget // len(pivots) + (1 if rank < budget % len(pivots) else 0)
        if quota == 0:
            continue
        similarity = (unit @ pivot).masked_fill(~candidates, math.inf)
        picks = torch.sort(similarity, stable=True).indices[:quota]
        candidates[picks] = False
        kept.append(picks)
    return _take(positions, torch.cat(kept).to(positions.device))
