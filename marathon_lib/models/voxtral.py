"""Voxtral (mistralai/Voxtral-Mini-3B-2507): the real class, Whisper 128-mel features through the real
`VoxtralProcessor._retrieve_input_features`, and the mistral-common (tekken v11) instruct layout built by hand.

Prompt ids: `<s> [INST] [BEGIN_AUDIO] [AUDIO] x N <user text> [/INST]`, the layout mistral-common's
`encode_chat_completion` produces for one user turn `[audio, text]` (docs/models.md, "Building without the hub").
Hand-building keeps one code path on transformers 5.2 (whose `apply_chat_template` crashes, fixed by PR #44132) and
without mistral-common; the real checkpoint still needs mistral-common for its tekken tokenizer, the tiny one does
not.

Audio is padded to a multiple of 30 s and every 30 s chunk becomes 375 `[AUDIO]` placeholders (12.5 per s), so
the placeholder run includes padding: `tokens.audio` reports the content tokens (ceil(samples / 1280)) while the
pruning span stays the whole placeholder run. The model card's limit for understanding is 40 minutes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..kv import ALL_PRESSES
from .base import AudioLM
from .inputs import ModelInputs
from .registry import register_family
from .shape import ShapeSpec
from .tiny import tokenizer_corpus, train_tokenizer

AUDIO_TOKEN_ID = 24  # hard-coded in VoxtralProcessor
CHUNK_SECONDS = 30.0
SAMPLES_PER_TOKEN = 1280  # 160-sample hop x conv stride 2 x projector stack 4 (80 ms per token at 16 kHz)
MAX_AUDIO_SECONDS = 40 * 60.0  # model card: up to 40 minutes for audio understanding

# The tekken v11 control-token ranks the prompt uses (0..25); ranks with no role here are fillers.
TEKKEN_SPECIALS = [
    "<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]",
    "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]", "<SPECIAL_20>", "<SPECIAL_21>",
    "<SPECIAL_22>", "<SPECIAL_23>", "[AUDIO]", "[BEGIN_AUDIO]",
]


@register_family
class Voxtral(AudioLM):
    family = "voxtral"
    long_audio = "one item padded to a multiple of 30 s (375 placeholders per 30 s; padding not counted as audio); over 40 min refused"
    tiny_name = "tiny-voxtral"
    checkpoints = ("mistralai/Voxtral-Mini-3B-2507", "mistralai/Voxtral-Small-24B-2507")
    shapes = (ShapeSpec("mistralai/Voxtral-Mini-3B-2507", "mistralai--Voxtral-Mini-3B-2507.json",
                        "VoxtralForConditionalGeneration"),)
    model_types = ("voxtral",)
    keyword = "voxtral"
    presses = ALL_PRESSES
    default_system_prompt = None  # Voxtral's instruct format has no default system prompt

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import (AutoTokenizer, VoxtralForConditionalGeneration, VoxtralProcessor,
                                  WhisperFeatureExtractor)

        model = self.from_pretrained(VoxtralForConditionalGeneration)
        # The hub checkpoint's tokenizer is tekken.json (MistralCommonBackend, needs mistral-common).
        tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        processor = VoxtralProcessor(feature_extractor=WhisperFeatureExtractor.from_pretrained(self.checkpoint),
                                     tokenizer=tokenizer)
        return model, processor

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_token_id)

    def _special_id(self, token: str) -> int:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        if not isinstance(tid, int) or tid < 0 or (token != "<unk>" and tid == self.tokenizer.unk_token_id):
            raise ValueError(f"{self.checkpoint}: tokenizer has no {token} control token")
        return tid

    def prompt_ids(self, n_audio_tokens: int, prompt: str, system: str | None = None) -> list[int]:
        """`<s>[INST][BEGIN_AUDIO][AUDIO]*n text[/INST]` (with `[SYSTEM_PROMPT]...` first when a system is given);
        without audio (n = 0) the plain instruct turn `<s>[INST]text[/INST]`."""
        ids = [self.tokenizer.bos_token_id]
        if system:
            ids += [self._special_id("[SYSTEM_PROMPT]"), *self.tokenizer.encode(system, add_special_tokens=False),
                    self._special_id("[/SYSTEM_PROMPT]")]
        ids.append(self._special_id("[INST]"))
        if n_audio_tokens:
            ids += [self._special_id("[BEGIN_AUDIO]")] + [self.audio_token_id] * n_audio_tokens
        ids += self.tokenizer.encode(prompt, add_special_tokens=False)
        ids.append(self._special_id("[/INST]"))
        return ids

    def prepare_text(self, prompt: str, system: str | None = None) -> ModelInputs:
        input_ids = torch.tensor([self.prompt_ids(0, prompt, system or self.default_system_prompt)], dtype=torch.long)
        return self.inputs_from({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)},
                                self.audio_token_id, 0.0, 0)

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        sr = self.sampling_rate
        seconds = len(audio) / sr
        if seconds > MAX_AUDIO_SECONDS:
            raise DataError(f"audio of {seconds:.1f} s exceeds Voxtral's {MAX_AUDIO_SECONDS / 60:.0f}-minute limit")
        if len(audio) == 0:
            raise DataError("empty audio")
        features = self.processor._retrieve_input_features(
            [audio], 3000, sampling_rate=sr, padding=True, truncation=False,
            pad_to_multiple_of=int(CHUNK_SECONDS * sr), return_tensors="pt",
        )  # (n_chunks, 128, 3000): every 30 s chunk, the last one zero-padded
        n_chunks = int(features.shape[0])
        if n_chunks != math.ceil(len(audio) / (CHUNK_SECONDS * sr)):
            raise DataError(f"{seconds:.1f} s of audio gave {n_chunks} feature chunks of 30 s (truncated?)")
        per_chunk = self.model.config.audio_config.max_source_positions // 4  # 1500 encoder frames -> 375
        ids = self.prompt_ids(per_chunk * n_chunks, prompt, system or self.default_system_prompt)
        input_ids = torch.tensor([ids], dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "input_features": features}
        return self.inputs_from(
            batch, self.audio_token_id, seconds, 1,
            notes={"windows": n_chunks, "placeholder_tokens": per_chunk * n_chunks},
            content_audio_tokens=min(per_chunk * n_chunks, math.ceil(len(audio) / SAMPLES_PER_TOKEN)),
        )

    @staticmethod
    def build_tiny(dest: Path) -> None:
        from transformers import VoxtralConfig, VoxtralForConditionalGeneration, WhisperFeatureExtractor

        named = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
        tok = train_tokenizer(named, tokenizer_corpus(), extra_special=TEKKEN_SPECIALS)
        tok.pad_token = "<pad>"
        for rank, token in enumerate(TEKKEN_SPECIALS):
            assert tok.convert_tokens_to_ids(token) == rank, (token, rank)
        config = VoxtralConfig(
            # the projector stacks 4 encoder frames: intermediate_size must be 4 x hidden_size
            audio_config=dict(num_mel_bins=128, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                              num_attention_heads=4, max_source_positions=1500),
            text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                             rope_parameters={"rope_type": "default", "rope_theta": 1e8},
                             bos_token_id=1, eos_token_id=2, pad_token_id=11),
            audio_token_id=AUDIO_TOKEN_ID,
        )
        torch.manual_seed(0)
        model = VoxtralForConditionalGeneration(config)
        model.generation_config.bos_token_id, model.generation_config.eos_token_id = 1, 2
        model.generation_config.pad_token_id = 11
        model.save_pretrained(dest)
        tok.save_pretrained(dest)
        WhisperFeatureExtractor(feature_size=128, chunk_length=30).save_pretrained(dest)
