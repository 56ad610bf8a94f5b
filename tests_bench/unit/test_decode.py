"""Static-cache decoding (models.decode): the same scores and tokens as eager greedy `generate`, with and without
pruning (layers >= K then hold shorter caches), on every family it supports; compiled once per cache bucket."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.tiny import TEST_DEVICE, TinyModels
from marathon_lib.models import AudioLM
from marathon_lib.models.decode import BUCKET_TOKENS, CompactLayer, bucket_size, decode_support, use_decode_mode
from marathon_lib.pruning import PRUNERS, PruneHook
from marathon_lib.pruning.selectors import kept_count
from marathon_lib.runner import content_positions, sample_generator

NEW_TOKENS = 8
K = 2
# On CUDA (MARATHON_TEST_DEVICE=cuda, the GPU session) other attention kernels and CUDA-graph steps run.
ATOL = 1e-5 if TEST_DEVICE == "cpu" else 2e-3
pytestmark = pytest.mark.usefixtures("one_thread")
STATIC_FAMILIES = ["tiny-qwen2.5-omni", "tiny-qwen2-audio", "tiny-audio-flamingo-3", "tiny-voxtral",
                   "tiny-phi-4-multimodal", "tiny-granite-speech", "tiny-qwen3-omni"]


def clip(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def get_model(tiny_models: TinyModels, name: str) -> AudioLM:
    model = tiny_models.get(name)
    model.set_decode_mode("eager")
    return model


def eager_run(model: AudioLM, tensors: dict[str, torch.Tensor]) -> tuple[list[int], torch.Tensor]:
    """HF generate, forced to NEW_TOKENS tokens: (tokens, raw logits per step)."""
    tok = model.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.inference_mode():
        out = model.model.generate(**tensors, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                                   temperature=None, top_p=None, top_k=None, output_logits=True,
                                   return_dict_in_generate=True, pad_token_id=pad)
    return out.sequences[0, tensors["input_ids"].shape[-1]:].tolist(), torch.cat(out.logits).float()


def static_run(model: AudioLM, inputs: Any) -> tuple[list[int], torch.Tensor, Any]:
    """model.generate through the static decoder, no early stop: (tokens, raw logits per step, generation)."""
    decoder, recorded = model.decoder, []
    score = decoder.scores

    def recording(logits: torch.Tensor, sequence: list[int]) -> torch.Tensor:
        recorded.append(logits.clone())
        return score(logits, sequence)

    decoder.scores = recording
    model.stop_token_ids = lambda: set()  # as min_new_tokens does for the eager run
    try:
        generation = model.generate(inputs, NEW_TOKENS)
    finally:
        del decoder.scores, model.stop_token_ids
    return generation.new_token_ids, torch.cat(recorded), generation


def pruning(model: AudioLM, inputs: Any, pruner: str | None) -> contextlib.AbstractContextManager:
    if pruner is None:
        return contextlib.nullcontext()
    hook = PruneHook(model.text_stack(), K, PRUNERS.get(pruner), 0.5)

    @contextlib.contextmanager
    def armed() -> Iterator[None]:
        with hook, hook.armed(content_positions(inputs), sample_generator(0, "s")):
            yield

    return armed()


def assert_same(model: AudioLM, inputs: Any, pruner: str | None, atol: float = ATOL) -> Any:
    """Eager `generate` vs model.generate in the model's current (static or compiled) decode mode."""
    with pruning(model, inputs, pruner):
        tokens, scores = eager_run(model, inputs.tensors)
    with pruning(model, inputs, pruner):
        fast_tokens, fast_scores, generation = static_run(model, inputs)
    assert fast_tokens == tokens, (model.name, pruner)
    diff = float((fast_scores - scores).abs().max())
    assert diff <= atol, f"{model.name} {pruner}: logits differ by {diff}"
    return generation


@pytest.mark.parametrize("pruner", [None, "random", "dart"])
@pytest.mark.parametrize("name", STATIC_FAMILIES)
def test_static_decode_equals_eager_greedy(tiny_models: TinyModels, name: str, pruner: str | None) -> None:
    model = get_model(tiny_models, name)
    inputs = model.prepare(clip(2.0, seed=3), "Describe the audio in one sentence.")
    model.set_decode_mode("static")
    assert_same(model, inputs, pruner)


def test_pruned_static_cache_holds_the_shorter_layers(tiny_models: TinyModels) -> None:
    model = get_model(tiny_models, "tiny-qwen2-audio")
    inputs = model.prepare(clip(2.0, seed=4), "What do you hear?")
    model.set_decode_mode("static")
    with pruning(model, inputs, "random"):
        static_run(model, inputs)
    n_audio = content_positions(inputs).numel()
    dropped = n_audio - kept_count(n_audio, 0.5)
    total = inputs.n_input_tokens + NEW_TOKENS - 1
    lengths = [int(layer.length) for layer in model.decoder.cache.layers]
    assert lengths == [total] * K + [total - dropped] * (len(lengths) - K)


def test_repetition_penalty_is_applied_like_generate(tiny_models: TinyModels) -> None:
    model = get_model(tiny_models, "tiny-voxtral")
    inputs = model.prepare(clip(2.0, seed=5), "Transcribe.")
    config = model.model.generation_config
    config.repetition_penalty = 1.3
    try:
        model.set_decode_mode("static")
        assert_same(model, inputs, None)
    finally:
        config.repetition_penalty = 1.0


def test_unsupported_settings_are_refused_with_the_reason(tiny_models: TinyModels) -> None:
    gemma = get_model(tiny_models, "tiny-gemma-3n")
    verdict = decode_support(gemma)
    assert not verdict.ok and "sliding_attention" in verdict.reason
    with pytest.raises(ValueError, match="static decoding is not available"):
        gemma.set_decode_mode("static")
    with pytest.warns(UserWarning, match="decodes eagerly"):
        use_decode_mode(gemma, "compiled")
    assert gemma.decode_mode == "eager" and gemma.decoder is None

    voxtral = get_model(tiny_models, "tiny-voxtral")
    voxtral.model.generation_config.no_repeat_ngram_size = 3
    try:
        assert "no_repeat_ngram_size" in decode_support(voxtral).reason
    finally:
        voxtral.model.generation_config.no_repeat_ngram_size = None
    with pytest.raises(ValueError, match="decode mode"):
        voxtral.set_decode_mode("fast")


def test_compiled_step_matches_eager_and_compiles_once_per_bucket(tiny_models: TinyModels) -> None:
    """Real torch.compile (inductor) on CPU, fp32: same tokens as eager greedy; compilation happens on a bucket's
    first use only, outside decode_ms; pruning (shorter caches in layers >= K) reuses the same graph."""
    model = get_model(tiny_models, "tiny-qwen2.5-omni")
    long_inputs = model.prepare(clip(2.0, seed=6), "Describe the audio in one sentence.")
    short_inputs = model.prepare(clip(1.0, seed=7), "Which sound?")
    assert bucket_size(short_inputs.n_input_tokens + NEW_TOKENS) == bucket_size(long_inputs.n_input_tokens + NEW_TOKENS)
    model.set_decode_mode("compiled")
    first = assert_same(model, long_inputs, None, atol=max(ATOL, 1e-4))
    assert first.timing.compile_ms is not None and first.timing.compile_ms > 0
    pruned = assert_same(model, long_inputs, "dart", atol=max(ATOL, 1e-4))
    other = assert_same(model, short_inputs, None, atol=max(ATOL, 1e-4))
    assert pruned.timing.compile_ms is None and other.timing.compile_ms is None
    model.set_decode_mode("eager")


@settings(max_examples=50, deadline=None)
@given(length=st.integers(0, 62), size=st.sampled_from([8, 64]))
def test_compact_layer_mask_shows_exactly_the_filled_slots_and_the_new_one(length: int, size: int) -> None:
    length = min(length, size - 1)
    layer = CompactLayer(size, torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
    layer.fill(torch.randn(1, 2, length, 4), torch.randn(1, 2, length, 4))
    mask = layer.visible(torch.float32)[0, 0, 0]
    assert torch.equal(mask == 0, torch.arange(size) <= length)
    new_key = torch.randn(1, 2, 1, 4)
    keys, _ = layer.update(new_key, new_key)
    assert torch.equal(keys[:, :, length], new_key[:, :, 0]) and int(layer.length) == length + 1
    assert bucket_size(length + 1) % BUCKET_TOKENS == 0


def test_overflowing_the_bucket_is_an_error() -> None:
    layer = CompactLayer(4, torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2))
    with pytest.raises(ValueError, match="do not fit"):
        layer.fill(torch.zeros(1, 1, 5, 2), torch.zeros(1, 1, 5, 2))
