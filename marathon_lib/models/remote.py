"""Models whose code lives in their hub repository (remote code): Aero-1-Audio, Baichuan-Omni-1.5, Kimi-Audio.

They run only with `--trust-remote-code`. They get the suite's audio, prompts, parsing and timing, but no pruner
or press: the hook attaches to the decoder stack of a transformers model class the suite validated, and remote
code is not one (the seed's Aero "pruned" runs were silent baselines). Those cases are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..timing import Timing
from .api import RequestInputs, RequestModel, encode_wav, sdk_missing
from .base import AudioLM
from .identity import checkpoint_revision
from .inputs import AudioSpan, Generation, InputsCache, ModelInputs, split_audio
from .registry import register_family

REMOTE_SAMPLING_RATE = 16_000  # all three use Whisper-style 16 kHz front ends


def expect_clip_spans(spans: tuple[AudioSpan, ...], clips: int, family: str) -> tuple[AudioSpan, ...]:
    """One placeholder run per audio clip, or the remote processor laid the prompt out differently than this
    adapter assumes: say so instead of pruning/reporting the wrong tokens."""
    if len(spans) != clips:
        raise DataError(f"{family}: expected {clips} audio placeholder run(s) in input_ids, found {len(spans)}")
    return spans


def spans_between(input_ids: torch.Tensor, start_id: int, end_id: int) -> tuple[AudioSpan, ...]:
    """The tokens strictly between each start marker and the next end marker (Baichuan's audio layout:
    <audio_start> pad... <audio_end>), whatever the pad token is."""
    ids = input_ids.reshape(-1).tolist()
    spans, open_at = [], None
    for pos, token in enumerate(ids):
        if token == start_id:
            if open_at is not None:
                raise DataError(f"audio start marker at {pos} before the one at {open_at} was closed")
            open_at = pos
        elif token == end_id:
            if open_at is None:
                raise DataError(f"audio end marker at {pos} without a start marker")
            spans.append(AudioSpan(open_at + 1, pos - open_at - 1))
            open_at = None
    if open_at is not None:
        raise DataError(f"audio start marker at {open_at} is never closed")
    return tuple(spans)


def wav_file(directory: Path, wav: bytes) -> Path:
    """Remote processors that read audio from a path get a content-named file (written once)."""
    path = directory / f"{hashlib.sha1(wav).hexdigest()}.wav"
    if not path.exists():
        path.write_bytes(wav)
    return path


class RemoteCodeLM(AudioLM):
    """A transformers model whose classes come from its hub repository."""

    access = "remote_code"

    def remote_pretrained(self, auto_class: type) -> torch.nn.Module:
        return auto_class.from_pretrained(self.checkpoint, dtype=self.dtype, attn_implementation=self.attn_implementation,
                                          trust_remote_code=True).to(self.device)

    @property
    def sampling_rate(self) -> int:
        return REMOTE_SAMPLING_RATE

    def layer_count(self) -> int | None:
        return None  # no hook attaches, so there is no ideal pruned-prefill fraction to compute

    def encoder_clock(self) -> None:
        return None  # the hub code names no one audio encoder module: encoder_ms stays None (not measured)


# --- Aero-1-Audio ---------------------------------------------------------------------------------
AERO_AUDIO_TOKEN = "<|AUDIO|>"  # the placeholder Aero's processor expands per clip (lmms-eval's aero adapter)
AERO_CLIP_SECONDS = 30.0  # one Whisper window per audio item, as the model card and the seed split long audio


def aero_messages(clips: int, prompt: str) -> list[dict[str, Any]]:
    """A user turn only: one audio item per ≤ 30 s clip, then the text (the seed's and lmms-eval's layout)."""
    content: list[dict[str, Any]] = [{"type": "audio", "audio_url": "<placeholder>"} for _ in range(clips)]
    return [{"role": "user", "content": content + [{"type": "text", "text": prompt}]}]


@register_family
class Aero1(RemoteCodeLM):
    family = "aero-1"
    long_audio = "split into equal ≤ 30 s clips, one audio item each"
    checkpoints = ("lmms-lab/Aero-1-Audio-1.5B",)

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import AutoModelForCausalLM, AutoProcessor

        processor = AutoProcessor.from_pretrained(self.checkpoint, trust_remote_code=True)
        return self.remote_pretrained(AutoModelForCausalLM), processor

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        clips = split_audio(audio, REMOTE_SAMPLING_RATE, AERO_CLIP_SECONDS)
        text = self.processor.apply_chat_template(aero_messages(len(clips), prompt), tokenize=False,
                                                  add_generation_prompt=True)
        batch = self.processor(text=text, audios=clips, sampling_rate=REMOTE_SAMPLING_RATE, return_tensors="pt")
        audio_id = self.tokenizer.convert_tokens_to_ids(AERO_AUDIO_TOKEN)
        inputs = self.inputs_from(batch, audio_id, len(audio) / REMOTE_SAMPLING_RATE, len(clips))
        expect_clip_spans(inputs.spans, len(clips), self.family)
        return inputs


# --- Baichuan-Omni-1.5 ----------------------------------------------------------------------------
BAICHUAN_ROLES = {"system": "<B_SYS>", "user": "<C_Q>", "assistant": "<C_A>"}
BAICHUAN_SYSTEM = "You are a helpful assistant."  # lmms-eval's choice; the repository documents none for audio QA


def baichuan_prompt(system: str | None, audio_start: str, audio_end: str, wav_path: Path, prompt: str) -> str:
    """Baichuan's raw prompt: role tags, the audio as a JSON path between its start/end markers, then the text;
    the remote processor loads the file and expands the markers into audio placeholders."""
    audio = audio_start + json.dumps({"path": str(wav_path)}, ensure_ascii=False) + audio_end
    head = f"{BAICHUAN_ROLES['system']}{system}" if system else ""
    return f"{head}{BAICHUAN_ROLES['user']}{audio}{prompt}{BAICHUAN_ROLES['assistant']}"


@register_family
class BaichuanOmni(RemoteCodeLM):
    family = "baichuan-omni-1.5"
    long_audio = "one clip, as the model's own processor reads it"
    checkpoints = ("baichuan-inc/Baichuan-Omni-1d5",)
    default_system_prompt = BAICHUAN_SYSTEM

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.checkpoint, trust_remote_code=True)
        model = self.remote_pretrained(AutoModelForCausalLM)
        self.scratch = Path(tempfile.mkdtemp(prefix="marathon-baichuan-"))
        model.bind_processor(tokenizer, training=False, relative_path=str(self.scratch))
        return model, tokenizer

    @property
    def tokenizer(self) -> Any:
        return self.processor  # the "processor" here is the tokenizer; the audio processor is bound to the model

    def markers(self) -> tuple[int, int]:
        audio_config = self.model.config.audio_config
        return audio_config.audio_start_token_id, audio_config.audio_end_token_id

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        start_id, end_id = self.markers()
        start, end = self.tokenizer.convert_ids_to_tokens([start_id, end_id])
        path = wav_file(self.scratch, encode_wav(audio, REMOTE_SAMPLING_RATE))
        text = baichuan_prompt(system or self.default_system_prompt, start, end, path, prompt)
        processed = self.model.processor([text])
        batch = {key: getattr(processed, key) for key in
                 ("input_ids", "attention_mask", "audios", "encoder_length", "bridge_length")
                 if getattr(processed, key, None) is not None}
        tensors = self.to_device(batch)
        spans = expect_clip_spans(spans_between(tensors["input_ids"], start_id, end_id), 1, self.family)
        return ModelInputs(tensors=tensors, spans=spans, audio_seconds=len(audio) / REMOTE_SAMPLING_RATE)

    def generation_kwargs(self) -> dict[str, Any]:
        # Baichuan's generation config does not stop at <|endoftext|> by itself (lmms-eval passes the same)
        return {"tokenizer": self.tokenizer, "stop_strings": ["<|endoftext|>"]}


# --- Kimi-Audio -----------------------------------------------------------------------------------
def kimi_chats(wav_path: Path, prompt: str) -> list[dict[str, str]]:
    """Kimi-Audio's message list as its README writes it: the instruction, then the audio file."""
    return [{"role": "user", "message_type": "text", "content": prompt},
            {"role": "user", "message_type": "audio", "content": str(wav_path)}]


@register_family
class KimiAudio(RequestModel):
    """Kimi-Audio through Moonshot's `kimia_infer` engine. Its hub remote code holds only the language model;
    the GLM-4 speech tokenizer, Whisper features and prompt layout live in kimia_infer, which runs the whole
    request (CUDA only), so, as for an API model, only the end-to-end latency is measured."""

    family = "kimi-audio"
    long_audio = "one clip, as kimia_infer reads it"
    checkpoints = ("moonshotai/Kimi-Audio-7B-Instruct",)
    access = "remote_code"  # its hub repository's code, run by kimia_infer: refused without --trust-remote-code

    def __init__(self, name: str, checkpoint: str, device: str, dtype: torch.dtype, attn_implementation: str) -> None:
        if sdk_missing("kimia_infer"):
            raise ConfigError(f"{name}: Kimi-Audio runs through the kimia_infer package "
                              "(pip install from github.com/MoonshotAI/Kimi-Audio); it is not installed")
        if not device.startswith("cuda"):
            raise ConfigError(f"{name}: kimia_infer runs on CUDA only (got --device {device})")
        from kimia_infer.api.kimia import KimiAudio as Engine

        self.name, self.checkpoint, self.revision = name, checkpoint, checkpoint_revision(None, checkpoint)
        self.device, self.dtype, self.attn_implementation = torch.device(device), dtype, attn_implementation
        self.inputs_cache = InputsCache()
        self.engine = Engine(model_path=checkpoint, load_detokenizer=False)  # text out only: no audio detokenizer
        self.scratch = Path(tempfile.mkdtemp(prefix="marathon-kimi-"))

    def generate(self, inputs: RequestInputs, max_new_tokens: int) -> Generation:
        chats = kimi_chats(wav_file(self.scratch, inputs.wav), inputs.prompt)
        start = time.perf_counter()
        _, text = self.engine.generate(chats, output_type="text", text_temperature=0.0,
                                       max_new_tokens=max_new_tokens)  # temperature 0: greedy
        latency_ms = (time.perf_counter() - start) * 1000.0
        return Generation(text=text.strip(), new_token_ids=[], timing=Timing.end_to_end(latency_ms, None))

