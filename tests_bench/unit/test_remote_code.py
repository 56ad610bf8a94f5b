"""Remote-code models (Aero-1, Baichuan-Omni-1.5, Kimi-Audio): opt-in only, base cases only, and the offline
parts of their adapters (prompt layouts, audio files handed to the remote processor, span location)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from marathon_lib.errors import ConfigError, DataError
from marathon_lib.models import load_model, resolve_model
from marathon_lib.models.api import encode_wav
from marathon_lib.models.inputs import AudioSpan, find_audio_spans, split_audio
from marathon_lib.models.remote import (
    AERO_CLIP_SECONDS,
    aero_messages,
    baichuan_prompt,
    expect_clip_spans,
    kimi_chats,
    spans_between,
    wav_file,
)
from marathon_lib.options import build_options

REMOTE = ["lmms-lab/Aero-1-Audio-1.5B", "baichuan-inc/Baichuan-Omni-1d5", "moonshotai/Kimi-Audio-7B-Instruct"]


def options(models: str, trust_remote_code: bool):
    return build_options(models=models, tasks="TAU", pruners="base,fast_v", prune_ratio="0.5", results_dir="r",
                         device="cpu", trust_remote_code=trust_remote_code)


@pytest.mark.parametrize("name", REMOTE)
def test_remote_code_needs_the_flag_and_runs_base_only(name: str):
    entry = resolve_model(name)
    assert entry.access == "remote_code" and entry.checkpoint == name
    with pytest.raises(ConfigError, match=f"--models: {name} runs Python code from its hub repository.*"
                                          "--trust-remote-code"):
        options(name, trust_remote_code=False)
    with pytest.raises(ConfigError, match="--trust-remote-code"):  # refused at load too, not only by the options
        load_model(entry, cache_root=Path("unused"), device="cpu", dtype="float32", attn_implementation="sdpa")
    assert options(name, trust_remote_code=True).trust_remote_code
    assert entry.method_refusal("base", None) is None
    for pruner, press in (("fast_v", None), ("dart", None), ("base", "snapkv")):
        reason = entry.method_refusal(pruner, press)
        assert reason.startswith(f"hook cannot attach to remote code ({name})") and "base only" in reason


def test_kimi_audio_says_what_it_needs():
    entry = resolve_model("moonshotai/Kimi-Audio-7B-Instruct")
    with pytest.raises(ConfigError, match="kimia_infer"):  # Moonshot's engine, not on the package index
        load_model(entry, cache_root=Path("unused"), device="cpu", dtype="float32", attn_implementation="sdpa",
                   trust_remote_code=True)


def test_local_models_keep_every_method():
    entry = resolve_model("tiny-qwen2.5-omni")
    assert entry.load_refusal(False) is None and entry.method_refusal("dart", "snapkv") is None


def test_aero_layout_one_audio_item_per_30s_clip():
    audio = np.zeros(75 * 16000, dtype=np.float32)
    clips = split_audio(audio, 16000, AERO_CLIP_SECONDS)
    assert len(clips) == 3 and max(len(c) for c in clips) <= 30 * 16000 and sum(map(len, clips)) == len(audio)
    (turn,) = aero_messages(len(clips), "Which scene?")
    assert turn["role"] == "user"
    assert [item["type"] for item in turn["content"]] == ["audio", "audio", "audio", "text"]
    assert turn["content"][-1]["text"] == "Which scene?"


def test_clip_spans_must_match_clips():
    audio_id = 7
    ids = torch.tensor([[1, 7, 7, 7, 2, 3, 7, 7, 4]])  # two clips: 3 and 2 placeholders, text between them
    spans = expect_clip_spans(find_audio_spans(ids, audio_id), 2, "aero-1")
    assert spans == (AudioSpan(1, 3), AudioSpan(6, 2))
    with pytest.raises(DataError, match="aero-1: expected 3 audio placeholder run"):
        expect_clip_spans(spans, 3, "aero-1")


def test_baichuan_prompt_and_marker_spans(tmp_path: Path):
    path = tmp_path / "clip.wav"
    prompt = baichuan_prompt("You are a helpful assistant.", "<audio_start_baichuan>", "<audio_end_baichuan>",
                             path, "Which scene?")
    head, _, audio_and_text = prompt.partition("<C_Q><audio_start_baichuan>")
    assert head == "<B_SYS>You are a helpful assistant."
    payload, _, tail = audio_and_text.partition("<audio_end_baichuan>")
    assert json.loads(payload) == {"path": str(path)} and tail == "Which scene?<C_A>"
    assert baichuan_prompt(None, "<s>", "</s>", path, "Q").startswith("<C_Q><s>")

    start, end, pad = 90, 91, 5
    ids = torch.tensor([[1, 2, start, pad, pad, pad, end, 3, 4]])
    assert spans_between(ids, start, end) == (AudioSpan(3, 3),)
    for bad, message in (([start, pad, end, end], "without a start"), ([start, pad, start, end], "was closed"),
                         ([1, start, pad], "never closed")):
        with pytest.raises(DataError, match=message):
            spans_between(torch.tensor([bad]), start, end)


def test_kimi_chats_and_the_wav_file_it_reads(tmp_path: Path):
    audio = (0.2 * np.sin(np.linspace(0, 200, 16000))).astype(np.float32)
    wav = encode_wav(audio, 16000)
    path = wav_file(tmp_path, wav)
    assert wav_file(tmp_path, wav) == path and len(list(tmp_path.iterdir())) == 1  # content-named, written once
    decoded, rate = sf.read(io.BytesIO(path.read_bytes()), dtype="float32")
    assert rate == 16000 and np.abs(decoded - audio).max() <= 1.0 / 32767
    assert kimi_chats(path, "Which scene?") == [
        {"role": "user", "message_type": "text", "content": "Which scene?"},
        {"role": "user", "message_type": "audio", "content": str(path)},
    ]
