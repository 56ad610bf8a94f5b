"""The real tiny Qwen2.5-Omni thinker: audio token counts and spans, greedy generation, the checkpoint dir.

Qwen2.5-Omni turns audio into 25 tokens per second; the processor's window is 300 s, so longer audio is
split into chunks, never truncated (docs/architecture.md "Scoring rules": no silent truncation).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from marathon_lib.models import load_model, resolve_model
from marathon_lib.paths import cache_root

TOKENS_PER_SECOND = 25


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return load_model(resolve_model("tiny-qwen2.5-omni"), cache_root=cache_root() / "models", device="cpu",
                      dtype="float32", attn_implementation="sdpa")


def clip(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def token_id(model, token: str) -> int:
    tid = model.tokenizer.convert_tokens_to_ids(token)
    assert isinstance(tid, int) and tid != model.tokenizer.unk_token_id, token
    return tid


def check_spans(model, inputs) -> None:
    """Every span is a maximal run of <|AUDIO|> between <|audio_bos|> and <|audio_eos|>, and the spans are
    exactly the positions where input_ids == the audio token id."""
    ids = inputs.tensors["input_ids"][0]
    audio, bos, eos = token_id(model, "<|AUDIO|>"), token_id(model, "<|audio_bos|>"), token_id(model, "<|audio_eos|>")
    expected = (ids == audio).nonzero().flatten().tolist()
    covered = [p for span in inputs.spans for p in range(span.start, span.end)]
    assert covered == expected
    for span in inputs.spans:
        assert int(ids[span.start - 1]) == bos
        assert int(ids[span.end]) == eos
        assert bool((ids[span.start:span.end] == audio).all())
    assert int((ids == bos).sum()) == int((ids == eos).sum()) == len(inputs.spans)


def test_audio_token_id_matches_the_model_config(model):
    config = model.model.config
    configured = getattr(config, "audio_token_id", None)
    if configured is None:
        configured = getattr(config, "audio_token_index")
    assert configured == token_id(model, model.processor.audio_token) == token_id(model, "<|AUDIO|>")
    assert model.sampling_rate == 16000


@pytest.mark.parametrize("seconds", [5, 120])
def test_single_clip_token_count(model, seconds: int):
    inputs = model.prepare(clip(seconds), "Describe the audio.")
    assert inputs.audio_chunks == 1
    assert len(inputs.spans) == 1
    assert inputs.n_audio_tokens == seconds * TOKENS_PER_SECOND  # 5 s -> 125, 120 s -> 3,000
    assert inputs.spans[0].length == seconds * TOKENS_PER_SECOND
    assert inputs.audio_seconds == pytest.approx(seconds)
    assert inputs.n_input_tokens == inputs.tensors["input_ids"].shape[-1] > inputs.n_audio_tokens
    check_spans(model, inputs)


def test_full_window_is_not_truncated(model):
    inputs = model.prepare(clip(300), "Describe the audio.")
    assert inputs.audio_chunks == 1
    assert inputs.n_audio_tokens == 300 * TOKENS_PER_SECOND
    check_spans(model, inputs)


def test_long_clip_is_split_into_chunks(model):
    inputs = model.prepare(clip(310), "Describe the audio.")
    assert inputs.audio_chunks == 2
    assert len(inputs.spans) == 2
    assert [s.length for s in inputs.spans] == [155 * TOKENS_PER_SECOND] * 2
    assert inputs.n_audio_tokens == 310 * TOKENS_PER_SECOND
    assert inputs.spans[0].end < inputs.spans[1].start
    assert inputs.audio_seconds == pytest.approx(310)
    check_spans(model, inputs)


def test_prompt_text_is_in_the_input(model):
    inputs = model.prepare(clip(2), "Which scene is this? Respond with only the letter.")
    text = model.tokenizer.decode(inputs.tensors["input_ids"][0])
    assert "Which scene is this? Respond with only the letter." in text
    assert "You are Qwen" in text  # the family's default system prompt
    assert text.rstrip().endswith("assistant")  # generation prompt appended


def test_generation_is_greedy_and_deterministic(model):
    inputs = model.prepare(clip(5, seed=1), "Which scene is this?")
    first = model.generate(inputs, 6)
    second = model.generate(inputs, 6)
    assert first.new_token_ids == second.new_token_ids
    assert first.text == second.text
    assert 1 <= len(first.new_token_ids) <= 6
    eos = model.tokenizer.eos_token_id
    if eos not in first.new_token_ids:
        assert len(first.new_token_ids) == 6  # stops at max_new_tokens, not earlier
    assert first.timing.new_tokens == len(first.new_token_ids)


@pytest.mark.parametrize("max_new_tokens", [1, 3])
def test_generation_respects_max_new_tokens(model, max_new_tokens: int):
    inputs = model.prepare(clip(3, seed=2), "Which scene is this?")
    generation = model.generate(inputs, max_new_tokens)
    assert 1 <= len(generation.new_token_ids) <= max_new_tokens
    assert generation.timing.new_tokens == len(generation.new_token_ids)


def test_timing_is_positive(model):
    inputs = model.prepare(clip(5, seed=3), "Which scene is this?")
    generation = model.generate(inputs, 5)
    assert generation.timing.prefill_ms > 0
    if generation.timing.new_tokens >= 2:
        assert generation.timing.decode_ms > 0
        assert generation.timing.decode_tokens_per_s and generation.timing.decode_tokens_per_s > 0
    timing = generation.timing.as_dict()
    assert set(timing) >= {"prefill_ms", "decode_ms", "decode_tokens_per_s", "new_tokens"}


def test_tiny_checkpoint_is_a_real_pretrained_dir(model):
    from transformers import AutoConfig, AutoTokenizer, Qwen2_5OmniThinkerForConditionalGeneration

    ckpt = Path(model.checkpoint)
    assert ckpt.is_dir()
    names = set(os.listdir(ckpt))
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert names & {"chat_template.jinja", "chat_template.json"}
    assert names & {"preprocessor_config.json", "processor_config.json"}

    config = AutoConfig.from_pretrained(ckpt)
    assert config.model_type == "qwen2_5_omni"

    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    assert tokenizer.convert_tokens_to_ids("<|AUDIO|>") == token_id(model, "<|AUDIO|>")
    template = (ckpt / "chat_template.jinja").read_text() if "chat_template.jinja" in names else \
        (ckpt / "chat_template.json").read_text()
    assert "<|audio_bos|>" in template and "<|audio_eos|>" in template

    reloaded = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(ckpt, dtype=torch.float32)
    ours = model.model.state_dict()
    theirs = reloaded.state_dict()
    assert set(ours) == set(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key

    # a checkpoint given by path resolves to the same family adapter
    entry = resolve_model(str(ckpt))
    assert entry.family == "qwen2.5-omni" and entry.checkpoint == str(ckpt)
