"""KV-cache compression through kvpress (runs in the `[kv]` environment: kvpress needs transformers < 5.3)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marathon_lib.kv import kvpress_availability, support

AVAILABLE = kvpress_availability()
pytestmark = pytest.mark.skipif(not AVAILABLE.ok, reason=AVAILABLE.reason)


def test_unsupported_family_is_refused_with_a_reason() -> None:
    verdict = support("gemma3n", "knorm")
    assert not verdict.ok and "not supported" in verdict.reason


# --- the audio-scope wrapper on its own (no model) -------------------------------------------------


@dataclass
class _FixedScores:
    """Stands in for a kvpress scorer: fixed scores per (head, position)."""

    scores: torch.Tensor

    def score(self, module, hidden_states, keys, values, attentions, kwargs) -> torch.Tensor:
        return self.scores


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(8, 80),
    data=st.data(),
    ratio=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**16),
)
def test_audio_scope_keeps_exact_count_in_order_and_other_entries_exact(length, data, ratio, seed) -> None:
    from marathon_lib.kv.presses import ScopedPress
    from marathon_lib.pruning.selectors import kept_count

    start = data.draw(st.integers(0, length - 2))
    end = data.draw(st.integers(start + 1, length))
    generator = torch.Generator().manual_seed(seed)
    keys = torch.randn(1, 2, length, 4, generator=generator)
    values = torch.randn(1, 2, length, 4, generator=generator)
    press = ScopedPress(compression_ratio=ratio, inner=_FixedScores(torch.rand(1, 2, length, generator=generator)))
    press.audio_positions = torch.arange(start, end)
    new_keys, new_values = press._compress_span(None, None, keys, values, None, {})

    n_audio = end - start
    kept = length - n_audio + kept_count(n_audio, ratio)
    assert new_keys.shape == (1, 2, kept, 4) and new_values.shape == (1, 2, kept, 4)
    for head in range(2):
        # every kept key is an original key, in original order; everything outside the audio is kept exactly
        rows = [int((keys[0, head] == row).all(dim=-1).nonzero()[0]) for row in new_keys[0, head]]
        assert rows == sorted(rows)
        assert set(range(start)) | set(range(end, length)) <= set(rows)
        assert torch.equal(new_values[0, head], values[0, head, rows])


# --- on the tiny Qwen2.5-Omni thinker --------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    from marathon_lib.models import load_model, resolve_model

    return load_model(resolve_model("tiny-qwen2.5-omni"), cache_root=Path(os.environ["MARATHON_CACHE"]) / "models",
                      device="cpu", dtype="float32", attn_implementation="sdpa")


@pytest.fixture(scope="module")
def inputs(model):
    audio = np.random.default_rng(3).standard_normal(16000 * 6).astype(np.float32) * 0.1
    return model.prepare(audio, "Is this audio real or fake? Answer with a or b.")


def _runner(model, press_name: str, ratio: float, scope: str = "audio", mode: str = "query_agnostic"):
    from marathon_lib.kv.presses import build_press
    from marathon_lib.results import ResultsDir
    from marathon_lib.runner import CaseRunner, CaseSpec
    from marathon_lib.tasks import TASKS

    case = CaseSpec("HAD", model.name, press=press_name, compression_ratio=ratio, press_scope=scope, press_mode=mode)
    press = build_press(press_name, ratio, model.text_stack().mrope_section)
    return CaseRunner(case, TASKS.get("HAD"), model, ResultsDir("/nonexistent"), press=press)


@pytest.mark.parametrize("press", ["knorm", "snapkv", "expected_attention", "tova", "streaming_llm", "random_kv"])
def test_ratio_zero_generates_what_the_model_generates_unpressed(model, inputs, press) -> None:
    plain = model.generate(inputs, 8)
    pressed, kept = _runner(model, press, 0.0).generate_pressed(inputs, 8)
    assert pressed.new_token_ids == plain.new_token_ids
    assert kept == inputs.n_audio_tokens


@pytest.mark.parametrize("press", ["knorm", "snapkv", "expected_attention"])
def test_audio_scope_evicts_exactly_the_audio_count_and_keeps_the_rest_bit_exact(model, inputs, press) -> None:
    from transformers import DynamicCache

    from marathon_lib.kv.presses import build_press, pressed
    from marathon_lib.models.base import span_positions
    from marathon_lib.pruning.selectors import kept_count

    positions = span_positions(inputs.spans)
    n_audio = positions.numel()
    full, squeezed = DynamicCache(), DynamicCache()
    with torch.inference_mode():
        model.model(**inputs.tensors, past_key_values=full, use_cache=True)
        scoped = build_press(press, 0.5, model.text_stack().mrope_section)
        with pressed(scoped, model.model, model.text_stack(), positions):
            model.model(**inputs.tensors, past_key_values=squeezed, use_cache=True)
    prompt_len = inputs.n_input_tokens
    outside = torch.ones(prompt_len, dtype=torch.bool)
    outside[positions] = False
    for before, after in zip(full.layers, squeezed.layers):
        assert after.keys.shape[-2] == prompt_len - n_audio + kept_count(n_audio, 0.5)
        # the non-audio entries come first and last in the prompt: compare them position by position
        head, tail = int(positions[0]), prompt_len - int(positions[-1]) - 1
        assert torch.equal(after.keys[..., :head, :], before.keys[..., :head, :])
        assert torch.equal(after.keys[..., after.keys.shape[-2] - tail:, :], before.keys[..., prompt_len - tail:, :])
        assert torch.equal(after.values[..., :head, :], before.values[..., :head, :])


def test_query_agnostic_question_attends_to_the_compressed_cache(model, inputs) -> None:
    from marathon_lib.pruning.selectors import kept_count

    seen: list[int] = []
    attn = model.text_stack().layers[0].self_attn

    def record(module, args, kwargs):
        cache = kwargs.get("past_key_values") or kwargs.get("cache")
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        if cache is not None and hidden.shape[1] > 1:
            seen.append(cache.get_seq_length(0))

    handle = attn.register_forward_pre_hook(record, with_kwargs=True)
    try:
        generation, kept = _runner(model, "knorm", 0.5).generate_pressed(inputs, 2)
    finally:
        handle.remove()
    context = inputs.spans[-1].end
    n_audio = inputs.n_audio_tokens
    # second prompt forward (the question) starts from a cache already shorter than the context
    assert seen[-1] == context - (n_audio - kept_count(n_audio, 0.5))
    assert kept == kept_count(n_audio, 0.5)
    assert generation.prompt_cache_len[0] == inputs.n_input_tokens - (n_audio - kept)


def test_query_aware_compresses_after_the_whole_prompt(model, inputs) -> None:
    from marathon_lib.pruning.selectors import kept_count

    plain = model.generate(inputs, 1)
    aware, _ = _runner(model, "knorm", 0.5, mode="query_aware").generate_pressed(inputs, 1)
    # the first token is computed before the hook compresses (it runs after attention): identical
    assert aware.new_token_ids == plain.new_token_ids
    n_audio = inputs.n_audio_tokens
    assert aware.prompt_cache_len == [inputs.n_input_tokens - n_audio + kept_count(n_audio, 0.5)] * 4


def test_scope_all_compresses_every_token(model, inputs) -> None:
    generation, kept = _runner(model, "knorm", 0.5, scope="all").generate_pressed(inputs, 2)
    context = inputs.spans[-1].end
    question = inputs.n_input_tokens - context
    assert generation.prompt_cache_len == [int(context * 0.5) + question] * 4
    assert kept == inputs.n_audio_tokens  # not counted per audio token when the whole context is scored
