"""Invariants of audio-token pruning: the pure selectors, every registered pruner, and the hook plumbing.

Part 1 is pure (no model): hypothesis draws audio layouts (one or several disjoint spans inside a
sequence, as with chunked audio), prune ratios in [0, 1), seeds and scores/hidden states (random, tied,
constant), and checks that every method keeps exactly `kept_count(L, r) = L - floor(L * r)` audio tokens,
sorted, unique, a subset of the audio positions, deterministically, plus each method's own rule.

Part 2 drives the real tiny Qwen2.5-Omni thinker (sdpa and eager) with a few hypothesis examples and
watches what the decoder layers receive (observer pre-hooks registered after the prune hook, so they run
after it) and what ends up in the KV cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marathon_lib.pruning import PRUNERS, DartPruner, PruneHook, kept_count
from marathon_lib.pruning.selectors import select_dart, select_frame, select_random, select_top_scores
from marathon_lib.textstack import find_text_stack

PURE = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEL = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                 derandomize=True)


# ------------------------------------------------------------------------------------------------------
# strategies
# ------------------------------------------------------------------------------------------------------
@st.composite
def layouts(draw: Any, max_span: int = 120, max_spans: int = 4, max_total: int | None = None) -> tuple[int, torch.Tensor]:
    """(sequence length, sorted audio positions): 1..4 disjoint spans with text before, between and after."""
    n_spans = draw(st.integers(1, max_spans))
    cursor = draw(st.integers(0, 20))
    positions: list[int] = []
    for index in range(n_spans):
        length = draw(st.integers(1, max_span))
        positions.extend(range(cursor, cursor + length))
        cursor += length + draw(st.integers(1 if index < n_spans - 1 else 0, 15))
    if max_total is not None and cursor > max_total:
        positions = [p for p in positions if p < max_total - 1] or [0]
        cursor = max_total
    return cursor, torch.tensor(positions, dtype=torch.long)


ratios = st.one_of(
    st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0 - 1e-12]),
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False),
)
SCORE_MODES = ("random", "ties", "constant")


def make_scores(n: int, mode: str, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if mode == "random":
        return torch.randn(n, generator=gen)
    if mode == "ties":
        return torch.randint(0, 3, (n,), generator=gen).float()
    return torch.full((n,), 0.25)


def make_hidden(n: int, dim: int, mode: str, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if mode == "random":
        return torch.randn(n, dim, generator=gen)
    if mode == "ties":  # many exact duplicates: only 3 distinct rows
        rows = torch.randn(3, dim, generator=gen)
        return rows[torch.randint(0, 3, (n,), generator=gen)]
    return torch.ones(n, dim)


def expected_keep(n_audio: int, ratio: float) -> int:
    return n_audio - math.floor(n_audio * ratio)


def check_selection(kept: torch.Tensor, positions: torch.Tensor, ratio: float) -> None:
    """Exact count, sorted, unique, inside the audio positions, same dtype."""
    n = expected_keep(positions.numel(), ratio)
    assert kept.dtype == torch.long
    assert kept.dim() == 1 and kept.numel() == n, (kept.numel(), n, positions.numel(), ratio)
    values = kept.tolist()
    assert values == sorted(set(values)), "indices must be sorted and unique"
    assert set(values) <= set(positions.tolist()), "kept indices must be audio positions"


def rank_order(values: torch.Tensor) -> list[int]:
    """Indices by descending value, ties by index (what a stable descending sort gives)."""
    as_float = values.float().tolist()
    return sorted(range(len(as_float)), key=lambda i: (-as_float[i], i))


# ------------------------------------------------------------------------------------------------------
# kept_count
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "ratio", "kept"), [
    (250, 0.0, 250), (250, 0.5, 125), (150, 0.3, 105), (150, 0.7, 45), (10, 0.7, 3), (1, 0.99, 1), (7, 0.5, 4),
    (3000, 0.9, 300), (0, 0.5, 0),
])
def test_kept_count_values(n: int, ratio: float, kept: int) -> None:
    assert kept_count(n, ratio) == kept


@given(n=st.integers(0, 5000), ratio=ratios)
@PURE
def test_kept_count_formula(n: int, ratio: float) -> None:
    kept = kept_count(n, ratio)
    assert kept == n - math.floor(n * ratio)
    assert (kept >= 1) if n >= 1 else kept == 0  # r < 1: never drops every audio token
    assert kept <= n


@pytest.mark.parametrize("ratio", [-0.1, -1e-9, 1.0, 1.2, 2.0, float("inf"), float("-inf"), float("nan")])
def test_kept_count_rejects_ratios_outside_unit_interval(ratio: float) -> None:
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        kept_count(10, ratio)


# ------------------------------------------------------------------------------------------------------
# selectors
# ------------------------------------------------------------------------------------------------------
@given(layout=layouts(), ratio=ratios, seed=st.integers(0, 2**32 - 1))
@PURE
def test_select_random_invariants(layout: tuple[int, torch.Tensor], ratio: float, seed: int) -> None:
    _, positions = layout
    n = kept_count(positions.numel(), ratio)
    kept = select_random(positions, n, torch.Generator().manual_seed(seed))
    check_selection(kept, positions, ratio)
    again = select_random(positions, n, torch.Generator().manual_seed(seed))
    assert torch.equal(kept, again), "same seed must give the same subset"
    if ratio == 0.0:
        assert torch.equal(kept, positions)


def test_select_random_depends_on_the_seed() -> None:
    positions = torch.arange(100, 350)
    picks = {tuple(select_random(positions, 125, torch.Generator().manual_seed(s)).tolist()) for s in range(5)}
    assert len(picks) == 5


@given(layout=layouts(), ratio=ratios)
@PURE
def test_select_frame_is_evenly_strided(layout: tuple[int, torch.Tensor], ratio: float) -> None:
    _, positions = layout
    n_audio = positions.numel()
    n = kept_count(n_audio, ratio)
    kept = select_frame(positions, n)
    check_selection(kept, positions, ratio)
    assert torch.equal(kept, select_frame(positions, n))
    offsets = torch.searchsorted(positions, kept).tolist()  # index within the audio, across spans
    assert offsets == [i * n_audio // n for i in range(n)]
    assert offsets[0] == 0
    gaps = np.diff(offsets + [n_audio])
    assert gaps.max() - gaps.min() <= 1
    assert set(gaps.tolist()) <= {n_audio // n, -(-n_audio // n)}
    if n_audio % n == 0:
        assert set(gaps.tolist()) == {n_audio // n}
    if ratio == 0.0:
        assert torch.equal(kept, positions)


@given(layout=layouts(), ratio=ratios, mode=st.sampled_from(SCORE_MODES), seed=st.integers(0, 2**31))
@PURE
def test_select_top_scores_keeps_the_highest(layout: tuple[int, torch.Tensor], ratio: float, mode: str,
                                             seed: int) -> None:
    _, positions = layout
    scores = make_scores(positions.numel(), mode, seed)
    n = kept_count(positions.numel(), ratio)
    kept = select_top_scores(positions, scores, n)
    check_selection(kept, positions, ratio)
    assert torch.equal(kept, select_top_scores(positions, scores.clone(), n))
    chosen = torch.isin(positions, kept)
    if n < positions.numel():
        assert scores[chosen].min() >= scores[~chosen].max(), "a dropped token outscores a kept one"
    # exact: ties go to the earlier position (stable sort), never to set/hash order
    expected = positions[sorted(rank_order(scores)[:n])]
    assert torch.equal(kept, expected)
    if ratio == 0.0:
        assert torch.equal(kept, positions)


@given(
    layout=layouts(),
    ratio=ratios,
    mode=st.sampled_from(SCORE_MODES),
    seed=st.integers(0, 2**31),
    audio_pivots=st.integers(0, 8),
    text_pivots=st.integers(0, 8),
    n_text=st.integers(0, 12),
)
@PURE
def test_select_dart_invariants(layout: tuple[int, torch.Tensor], ratio: float, mode: str, seed: int,
                                audio_pivots: int, text_pivots: int, n_text: int) -> None:
    _, positions = layout
    n_audio, dim = positions.numel(), 8
    norms = make_scores(n_audio, mode, seed).abs()
    hidden = make_hidden(n_audio, dim, mode, seed + 1)
    text_norms = make_scores(n_text, "random", seed + 2).abs()
    text_hidden = make_hidden(n_text, dim, "random", seed + 3)
    n = kept_count(n_audio, ratio)
    kept = select_dart(positions, n, norms, hidden, text_norms, text_hidden, audio_pivots, text_pivots)
    check_selection(kept, positions, ratio)
    again = select_dart(positions, n, norms.clone(), hidden.clone(), text_norms.clone(), text_hidden.clone(),
                        audio_pivots, text_pivots)
    assert torch.equal(kept, again)
    if ratio == 0.0:
        assert torch.equal(kept, positions)
    if n < n_audio and audio_pivots >= 1:  # the audio pivots (largest key norms, ties by position) are kept
        pivots = rank_order(norms)[: min(audio_pivots, n)]
        assert set(positions[pivots].tolist()) <= set(kept.tolist())
        if n <= audio_pivots:  # fewer slots than pivots: exactly the strongest n
            assert torch.equal(kept, positions[sorted(pivots)])


def dart_with_host_loop(positions: torch.Tensor, n_keep: int, key_norms: torch.Tensor, hidden: torch.Tensor,
                        text_key_norms: torch.Tensor, text_hidden: torch.Tensor, audio_pivots: int,
                        text_pivots: int) -> torch.Tensor:
    """Oracle: select_dart as it was before its picks stayed on the device (each picked index was converted to
    a Python int, a host sync per kept token on CUDA). The device version must keep exactly these tokens."""
    n_audio = positions.numel()
    if n_keep >= n_audio:
        return positions.clone()
    by_norm = torch.sort(key_norms.float(), descending=True, stable=True).indices
    if audio_pivots == 0 and (text_pivots == 0 or text_key_norms.numel() == 0):
        audio_pivots = 1
    n_audio_pivots = min(audio_pivots, n_keep)
    kept = [int(i) for i in by_norm[:n_audio_pivots]]
    text_order = torch.sort(text_key_norms.float(), descending=True, stable=True).indices[:text_pivots]
    unit = torch.nn.functional.normalize(hidden.float(), dim=-1)
    pivots = [unit[i] for i in kept] + [torch.nn.functional.normalize(text_hidden[i].float(), dim=-1)
                                         for i in text_order]
    budget = n_keep - n_audio_pivots
    candidates = torch.ones(n_audio, dtype=torch.bool)
    candidates[kept] = False
    for rank, pivot in enumerate(pivots):
        quota = budget // len(pivots) + (1 if rank < budget % len(pivots) else 0)
        if quota == 0:
            continue
        similarity = unit @ pivot
        similarity[~candidates] = math.inf
        picks = torch.sort(similarity, stable=True).indices[:quota]
        candidates[picks] = False
        kept.extend(int(i) for i in picks)
    return positions[torch.sort(torch.tensor(kept, dtype=torch.long)).values]


@given(
    layout=layouts(),
    ratio=ratios,
    mode=st.sampled_from(SCORE_MODES),
    seed=st.integers(0, 2**31),
    audio_pivots=st.integers(0, 8),
    text_pivots=st.integers(0, 8),
    n_text=st.integers(0, 12),
    dim=st.sampled_from([1, 2, 8, 64]),
)
@PURE
def test_select_dart_keeps_what_the_host_loop_kept(layout: tuple[int, torch.Tensor], ratio: float, mode: str,
                                                   seed: int, audio_pivots: int, text_pivots: int, n_text: int,
                                                   dim: int) -> None:
    """Same keep sets as the per-token host loop, ties included (tied norms, duplicated and constant rows)."""
    _, positions = layout
    n_audio = positions.numel()
    norms = make_scores(n_audio, mode, seed).abs()
    hidden = make_hidden(n_audio, dim, mode, seed + 1)
    text_norms = make_scores(n_text, mode, seed + 2).abs()
    text_hidden = make_hidden(n_text, dim, mode, seed + 3)
    n = kept_count(n_audio, ratio)
    args = (positions, n, norms, hidden, text_norms, text_hidden, audio_pivots, text_pivots)
    assert torch.equal(select_dart(*args), dart_with_host_loop(*args))


def test_select_dart_fewer_slots_than_pivots() -> None:
    positions = torch.arange(10, 20)
    norms = torch.tensor([0.1, 5.0, 0.3, 4.0, 0.2, 3.0, 0.0, 2.0, 0.4, 1.0])
    kept = select_dart(positions, 2, norms, torch.randn(10, 4), torch.rand(3), torch.randn(3, 4), 4, 4)
    assert kept.tolist() == [11, 13]
    assert select_dart(positions, 1, norms, torch.randn(10, 4), torch.rand(3), torch.randn(3, 4), 4, 4).tolist() == [11]


def test_select_dart_drops_duplicates_of_its_pivots() -> None:
    """The rule itself: with one pivot, the remaining slot goes to the token least similar to it."""
    positions = torch.arange(4)
    hidden = torch.tensor([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0], [0.98, 0.02]])
    norms = torch.tensor([9.0, 1.0, 1.0, 1.0])
    kept = select_dart(positions, 2, norms, hidden, torch.empty(0), torch.empty(0, 2), 1, 0)
    assert kept.tolist() == [0, 2]


def test_select_dart_text_pivots_only_without_text_still_keeps_budget() -> None:
    """Regression: audio_pivots=0 with no text after the audio used to have no pivot and keep 0 tokens."""
    positions = torch.arange(5, 15)
    kept = select_dart(positions, 5, torch.rand(10), torch.randn(10, 8), torch.empty(0), torch.empty(0, 8), 0, 4)
    assert kept.numel() == 5
    # the same through the registered pruner type, with the audio at the very end of the sequence
    hook = fake_hook(15, "random", 3)
    kept = DartPruner(audio_pivots=0, text_pivots=4).select(hook, positions, 5, torch.zeros(15, 8))
    check_selection(kept, positions, 0.5)


@pytest.mark.parametrize(("audio_pivots", "text_pivots"), [(0, 0), (-1, 4), (4, -1), (-2, -2)])
def test_dart_pruner_rejects_bad_pivot_counts(audio_pivots: int, text_pivots: int) -> None:
    with pytest.raises(ValueError, match="pivot"):
        DartPruner(audio_pivots=audio_pivots, text_pivots=text_pivots)


# ------------------------------------------------------------------------------------------------------
# every registered pruner through a fake hook (what PruneHook exposes to `select`)
# ------------------------------------------------------------------------------------------------------
@dataclass
class FakeHook:
    """Stands in for PruneHook: the features a pruner may ask for, over the whole sequence."""

    generator: torch.Generator | None
    attention: torch.Tensor  # (seq,)
    key_norms: torch.Tensor  # (seq,)
    normed: torch.Tensor  # (seq, D)
    audio_end: int = 0  # one past the last audio position (PruneHook reads it when armed)

    def text_after_audio(self, length: int, device: torch.device) -> torch.Tensor:
        return torch.arange(self.audio_end, length, device=device)

    def last_query_attention(self) -> torch.Tensor:
        return self.attention

    def key_l1_norms(self, hidden: torch.Tensor) -> torch.Tensor:
        assert hidden.shape[0] == self.key_norms.shape[0]
        return self.key_norms

    def normed_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.normed


def fake_hook(seq_len: int, mode: str, seed: int) -> FakeHook:
    return FakeHook(
        generator=torch.Generator().manual_seed(seed),
        attention=make_scores(seq_len, mode, seed).softmax(-1) if mode == "random" else make_scores(seq_len, mode, seed),
        key_norms=make_scores(seq_len, mode, seed + 1).abs(),
        normed=make_hidden(seq_len, 8, mode, seed + 2),
    )


def test_registry_has_the_four_pruners() -> None:
    assert set(PRUNERS.names()) == {"random", "frame", "fast_v", "dart"}


@pytest.mark.parametrize("name", ["random", "frame", "fast_v", "dart"])
@given(layout=layouts(), ratio=ratios, mode=st.sampled_from(SCORE_MODES), seed=st.integers(0, 2**31))
@PURE
def test_registered_pruner_invariants(name: str, layout: tuple[int, torch.Tensor], ratio: float, mode: str,
                                      seed: int) -> None:
    seq_len, positions = layout
    pruner = PRUNERS.get(name)
    n = kept_count(positions.numel(), ratio)
    hidden = torch.zeros(seq_len, 8)
    end = int(positions.max()) + 1
    kept = pruner.select(replace(fake_hook(seq_len, mode, seed), audio_end=end), positions, n, hidden)
    check_selection(kept, positions, ratio)
    again = pruner.select(replace(fake_hook(seq_len, mode, seed), audio_end=end), positions.clone(), n, hidden)
    assert torch.equal(kept, again), f"{name}: same inputs and seed must select the same tokens"
    if ratio == 0.0:
        assert torch.equal(kept, positions)
    if name == "fast_v":
        attention = fake_hook(seq_len, mode, seed).attention
        assert torch.equal(kept, select_top_scores(positions, attention[positions], n))
    if name == "dart" and n < positions.numel():
        norms = fake_hook(seq_len, mode, seed).key_norms[positions]
        pivots = rank_order(norms)[: min(pruner.audio_pivots, n)]
        assert set(positions[pivots].tolist()) <= set(kept.tolist())


def test_random_pruner_needs_a_generator() -> None:
    hook = fake_hook(30, "random", 0)
    hook.generator = None
    with pytest.raises(ValueError, match="generator"):
        PRUNERS.get("random").select(hook, torch.arange(5, 25), 10, torch.zeros(30, 8))


# ------------------------------------------------------------------------------------------------------
# hook plumbing on the real tiny model
# ------------------------------------------------------------------------------------------------------
AUDIO_SECONDS = 4.0  # 100 audio tokens in a ~230-token prompt


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model is fastest on one thread; two OpenMP threads on a busy 2-core box are ~40x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def model(request: pytest.FixtureRequest):
    import os
    from pathlib import Path

    from marathon_lib.models import load_model, resolve_model

    cache = Path(os.environ.get("MARATHON_CACHE") or Path.home() / ".cache" / "audiomarathon")
    torch.manual_seed(0)
    return load_model(resolve_model("tiny-qwen2.5-omni"), cache_root=cache / "models", device="cpu",
                      dtype="float32", attn_implementation=request.param)


@pytest.fixture(scope="module")
def prompt(model):
    audio = np.random.default_rng(0).standard_normal(int(16000 * AUDIO_SECONDS)).astype(np.float32) * 0.1
    return model.prepare(audio, "What sound is this?")


class Observer:
    """Forward pre-hooks recording what every decoder layer receives (registered after the prune hook)."""

    def __init__(self, layers: torch.nn.ModuleList) -> None:
        self.seen: dict[int, dict[str, Any]] = {}
        self.handles = [layer.register_forward_pre_hook(self._make(i), with_kwargs=True)
                        for i, layer in enumerate(layers)]

    def _make(self, index: int):
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            if hidden.shape[-2] > 1:  # prefill only
                self.seen[index] = {
                    "hidden": hidden.shape,
                    "cos": kwargs["position_embeddings"][0].clone(),
                    "sin": kwargs["position_embeddings"][1].clone(),
                    "mask": None if kwargs.get("attention_mask") is None else kwargs["attention_mask"].clone(),
                    "position_ids": None if kwargs.get("position_ids") is None else kwargs["position_ids"].clone(),
                }
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def cache_lengths(out: Any) -> list[int]:
    """Per-layer cached key lengths of a model output (`cache` in transformers 5.2x, else past_key_values)."""
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = out.past_key_values
    return [int(layer.keys.shape[-2]) for layer in cache.layers]


@st.composite
def prompt_spans(draw: Any, seq_len: int) -> torch.Tensor:
    """Random 'audio' spans inside the real prompt (the hook prunes whatever positions it is armed with)."""
    _, positions = draw(layouts(max_span=60, max_spans=3, max_total=seq_len))
    return positions


@given(data=st.data())
@MODEL
def test_layers_from_k_receive_only_the_kept_tokens(model, prompt, data: st.DataObject) -> None:
    stack = find_text_stack(model.model)
    n_layers = len(stack.layers)
    seq_len = prompt.n_input_tokens
    positions = data.draw(prompt_spans(seq_len), label="audio positions")
    ratio = data.draw(ratios, label="ratio")
    layer = data.draw(st.integers(1, n_layers - 1), label="K")
    name = data.draw(st.sampled_from(PRUNERS.names()), label="pruner")
    seed = data.draw(st.integers(0, 2**31), label="seed")

    n_kept_audio = kept_count(positions.numel(), ratio)
    n_kept = seq_len - positions.numel() + n_kept_audio
    non_audio = sorted(set(range(seq_len)) - set(positions.tolist()))
    with PruneHook(stack, layer, PRUNERS.get(name), ratio) as hook:
        observer = Observer(stack.layers)
        try:
            with torch.inference_mode(), hook.armed(positions, torch.Generator().manual_seed(seed)):
                out = model.model(**prompt.tensors, use_cache=True)
                keep = hook.keep.clone()
        finally:
            observer.remove()
    kept_audio = hook.last_kept_audio

    # the keep set: every non-audio position, the chosen audio positions, sorted
    assert keep.tolist() == sorted(set(keep.tolist()))
    assert keep.numel() == n_kept
    assert set(non_audio) <= set(keep.tolist())
    assert sorted(set(keep.tolist()) & set(positions.tolist())) == kept_audio.tolist()
    check_selection(kept_audio, positions, ratio)

    full = observer.seen[0]
    for index in range(n_layers):
        seen = observer.seen[index]
        length = seq_len if index < layer else n_kept
        assert seen["hidden"][-2] == length, f"layer {index}: hidden length"
        assert seen["cos"].shape[-2] == seen["sin"].shape[-2] == length, f"layer {index}: rope length"
        if index >= layer:  # kept tokens keep their original rotary positions
            assert torch.equal(seen["cos"], full["cos"].index_select(-2, keep))
            assert torch.equal(seen["sin"], full["sin"].index_select(-2, keep))
        if seen["position_ids"] is not None:
            assert seen["position_ids"].shape[-1] == length
            if index >= layer:
                assert torch.equal(seen["position_ids"], full["position_ids"].index_select(-1, keep))
        if model.attn_implementation == "eager":
            assert seen["mask"] is not None and seen["mask"].shape[-2:] == (length, length), f"layer {index}: mask"
            if index >= layer:
                assert torch.equal(seen["mask"], full["mask"].index_select(-2, keep).index_select(-1, keep))
        elif seen["mask"] is not None:
            assert seen["mask"].shape[-1] == length

    assert cache_lengths(out) == [seq_len] * layer + [n_kept] * (n_layers - layer)
    assert out.logits.shape[-2] == n_kept  # the lm head sees the pruned sequence
