"""KV-cache compression through kvpress (runs in the `[kv]` environment: kvpress needs transformers < 5.3)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marathon_lib.kv import PRESS_CLASSES, kvpress_availability, support
from marathon_lib.models import FAMILIES as MODEL_FAMILIES
from marathon_lib.models import AudioLM, press_support

SUPPORTED = press_support()  # derived from the family classes' `presses`

AVAILABLE = kvpress_availability()
pytestmark = [pytest.mark.skipif(not AVAILABLE.ok, reason=AVAILABLE.reason), pytest.mark.usefixtures("one_thread")]


def test_support_matrix_refuses_with_the_family_reason() -> None:
    from marathon_lib.kv import ALL_PRESSES, KEY_ONLY_PRESSES

    for press in ALL_PRESSES:
        assert support(MODEL_FAMILIES.get("qwen3-omni"), press).ok and support(MODEL_FAMILIES.get("voxtral"), press).ok
        gemma = support(MODEL_FAMILIES.get("gemma-3n"), press)
        assert not gemma.ok and "not supported" in gemma.reason and "KV-sharing layers" in gemma.reason
        phi = support(MODEL_FAMILIES.get("phi-4-multimodal"), press)
        assert phi.ok == (press in KEY_ONLY_PRESSES)
        assert phi.ok or "fused qkv_proj" in phi.reason
    undeclared = type("NewFamily", (AudioLM,), {"family": "some-new-family"})  # declares no presses
    assert "not validated" in support(undeclared, "knorm").reason


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


# --- on every family's tiny checkpoint ---------------------------------------------------------------

# (family, press) pairs kvpress drives; the families run on their real tiny classes (random weights).
PAIRS = [(family, press) for family, presses in SUPPORTED.items() for press in sorted(presses)]
FAMILIES = list(SUPPORTED)
# 6 s of audio: every family's context (prompt up to the end of the audio) exceeds SnapKV's 64-token window.
AUDIO_SECONDS = 6
QUESTION = "Is this audio real or fake? Answer with a or b."


@pytest.fixture(scope="module")
def loaded() -> Iterator[dict[str, Any]]:
    """Tiny models and their prepared inputs, loaded once per module and family."""
    cache: dict[str, Any] = {}
    yield cache
    cache.clear()


def _load(loaded: dict[str, Any], family: str) -> tuple[Any, Any]:
    from marathon_lib.models import load_model, resolve_model

    if family not in loaded:
        model = load_model(resolve_model(f"tiny-{family}"), cache_root=Path(os.environ["MARATHON_CACHE"]) / "models",
                           device="cpu", dtype="float32", attn_implementation="sdpa")
        audio = np.random.default_rng(3).standard_normal(16000 * AUDIO_SECONDS).astype(np.float32) * 0.1
        loaded[family] = model, model.prepare(audio, QUESTION)
    return loaded[family]


def _runner(model, press_name: str, ratio: float, scope: str = "audio", mode: str = "query_agnostic"):
    from marathon_lib.kv.presses import build_press
    from marathon_lib.results import ResultsDir
    from marathon_lib.runner import CaseRunner
    from marathon_lib.schema import CaseSpec
    from marathon_lib.tasks import TASKS

    case = CaseSpec("HAD", model.name, press=press_name, compression_ratio=ratio, press_scope=scope, press_mode=mode)
    press = build_press(press_name, ratio, model.text_stack().mrope_section)
    return CaseRunner(case, TASKS.get("HAD"), model, ResultsDir("/nonexistent"), press=press)


@pytest.mark.parametrize(("family", "press"), PAIRS)
def test_ratio_zero_generates_what_the_model_generates_unpressed(loaded, family, press) -> None:
    from transformers import DynamicCache

    model, inputs = _load(loaded, family)
    plain = model.generate(inputs, 4)
    pressed, kept = _runner(model, press, 0.0).generate_pressed(inputs, 4)
    assert pressed.new_token_ids == plain.new_token_ids
    assert kept == inputs.n_audio_tokens
    # context, question (fed at continuation_positions) and decoded tokens hold the keys and values one forward
    # over prompt + generated tokens computes: same RoPE positions, nothing evicted
    fed = pressed.new_token_ids[:-1]
    ids = torch.cat([inputs.tensors["input_ids"], torch.tensor([fed], dtype=torch.long)], dim=-1)
    full = DynamicCache()
    with torch.inference_mode():
        model.model(**dict(inputs.tensors, input_ids=ids, attention_mask=torch.ones_like(ids)),
                    past_key_values=full, use_cache=True)
    for after, reference in zip(pressed.cache.layers, full.layers, strict=True):
        assert after.keys.shape == reference.keys.shape
        torch.testing.assert_close(after.keys, reference.keys, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(after.values, reference.values, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("family", "press"), PAIRS)
def test_audio_scope_evicts_exactly_the_audio_count_and_keeps_the_rest_bit_exact(loaded, family, press) -> None:
    from transformers import DynamicCache

    from marathon_lib.kv.presses import build_press, pressed
    from marathon_lib.pruning.selectors import kept_count
    from marathon_lib.runner import content_positions

    model, inputs = _load(loaded, family)
    positions = content_positions(inputs)  # contiguous: one clip
    n_audio, prompt_len = positions.numel(), inputs.n_input_tokens
    full, squeezed = DynamicCache(), DynamicCache()
    with torch.inference_mode():
        model.model(**inputs.tensors, past_key_values=full, use_cache=True)
        scoped = build_press(press, 0.5, model.text_stack().mrope_section)
        with pressed(scoped, model.model, model.text_stack(), positions):
            model.model(**inputs.tensors, past_key_values=squeezed, use_cache=True)
    assert len(squeezed.layers) == len(model.text_stack().layers)
    kept = kept_count(n_audio, 0.5)
    head, tail = int(positions[0]), prompt_len - int(positions[-1]) - 1
    for before, after in zip(full.layers, squeezed.layers, strict=True):
        assert after.keys.shape[-2] == prompt_len - n_audio + kept
        # the non-audio entries come first and last in the prompt: compare them position by position
        for name in ("keys", "values"):
            new, old = getattr(after, name), getattr(before, name)
            assert torch.equal(new[..., :head, :], old[..., :head, :])
            assert torch.equal(new[..., head + kept:, :], old[..., prompt_len - tail:, :])
        # the kept audio entries are original audio entries, in order, per head
        audio_keys = before.keys[0, :, head:head + n_audio]
        for h in range(after.keys.shape[1]):
            rows = [int((audio_keys[h] == row).all(-1).nonzero()[0]) for row in after.keys[0, h, head:head + kept]]
            assert rows == sorted(set(rows))


@pytest.mark.parametrize("family", FAMILIES)
def test_query_agnostic_question_attends_to_the_compressed_cache(loaded, family) -> None:
    from marathon_lib.pruning.selectors import kept_count

    model, inputs = _load(loaded, family)
    seen: list[int] = []
    attn = model.text_stack().layers[0].self_attn

    def record(module, args, kwargs):
        cache = kwargs.get("past_key_values", kwargs.get("cache"))  # an empty cache is falsy
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
    assert seen == [0, context - (n_audio - kept_count(n_audio, 0.5))]
    assert kept == kept_count(n_audio, 0.5)
    assert generation.prompt_cache_len[0] == inputs.n_input_tokens - (n_audio - kept)


@pytest.mark.parametrize("family", FAMILIES)
def test_query_aware_compresses_after_the_whole_prompt(loaded, family) -> None:
    from marathon_lib.pruning.selectors import kept_count

    model, inputs = _load(loaded, family)
    plain = model.generate(inputs, 1)
    aware, _ = _runner(model, "knorm", 0.5, mode="query_aware").generate_pressed(inputs, 1)
    # the first token is computed before the hook compresses (it runs after attention): identical
    assert aware.new_token_ids == plain.new_token_ids
    n_audio = inputs.n_audio_tokens
    expected = inputs.n_input_tokens - n_audio + kept_count(n_audio, 0.5)
    assert aware.prompt_cache_len == [expected] * len(model.text_stack().layers)


@pytest.mark.parametrize("family", FAMILIES)
def test_scope_all_compresses_every_token(loaded, family) -> None:
    model, inputs = _load(loaded, family)
    generation, kept = _runner(model, "knorm", 0.5, scope="all").generate_pressed(inputs, 2)
    context = inputs.spans[-1].end
    question = inputs.n_input_tokens - context
    assert generation.prompt_cache_len == [int(context * 0.5) + question] * len(model.text_stack().layers)
    assert kept == inputs.n_audio_tokens  # not counted per audio token when the whole context is scored


def test_qwen3_omni_presses_score_the_queries_its_attention_uses(loaded) -> None:
    """kvpress applies q_norm only to its own Qwen3Attention class; the thinker's attention gets it from the
    press wrapper while a press scores, and its own q_proj back afterwards."""
    from kvpress.utils import get_prerope_query_states

    from marathon_lib.kv.presses import normed_queries
    from marathon_lib.textstack import project_qk

    model, _ = _load(loaded, "qwen3-omni")
    attn = model.text_stack().layers[1].self_attn
    hidden = torch.randn(1, 7, model.model.config.text_config.hidden_size, generator=torch.Generator().manual_seed(0))
    projection = attn.q_proj
    with torch.inference_mode():
        reference, _ = project_qk(attn, hidden[0], hidden[0])
        raw = get_prerope_query_states(attn, hidden)[0]
        with normed_queries(attn):
            seen = get_prerope_query_states(attn, hidden)[0]
    assert attn.q_proj is projection
    torch.testing.assert_close(seen, reference)
    assert not torch.allclose(raw, reference, atol=1e-3)  # without it the scores would use unnormed queries


# --- refusals, checked against kvpress itself ---------------------------------------------------------


@pytest.mark.parametrize("press", sorted(set(PRESS_CLASSES) - SUPPORTED["phi-4-multimodal"]))
def test_phi4_refused_presses_cannot_read_its_fused_attention(loaded, press) -> None:
    from transformers import DynamicCache

    from marathon_lib.kv.presses import build_press, pressed
    from marathon_lib.runner import content_positions

    assert not support(MODEL_FAMILIES.get("phi-4-multimodal"), press).ok
    model, inputs = _load(loaded, "phi-4-multimodal")
    scoped = build_press(press, 0.5, None)
    with (torch.inference_mode(), pytest.raises(NotImplementedError, match="Phi4MultimodalAttention"),
          pressed(scoped, model.model, model.text_stack(), content_positions(inputs))):
        model.model(**inputs.tensors, past_key_values=DynamicCache(), use_cache=True)


def test_gemma3n_is_refused_because_kv_shared_layers_have_no_cache_slot(loaded) -> None:
    from transformers import DynamicCache

    from marathon_lib.kv.presses import build_press, pressed
    from marathon_lib.models import load_model, resolve_model

    assert not any(support(MODEL_FAMILIES.get("gemma-3n"), press).ok for press in PRESS_CLASSES)
    model = load_model(resolve_model("tiny-gemma-3n"), cache_root=Path(os.environ["MARATHON_CACHE"]) / "models",
                       device="cpu", dtype="float32", attn_implementation="sdpa")
    stack = model.text_stack()
    shared = [layer.self_attn.is_kv_shared_layer for layer in stack.layers]
    assert any(shared) and not all(shared)
    ids = model.tokenizer(QUESTION, return_tensors="pt").input_ids  # text only: the hook fails before any audio
    with torch.inference_mode(), pytest.raises(IndexError), pressed(build_press("knorm", 0.5, None), model.model,
                                                                    stack, None):
        model.model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True)
