"""Qwen2-Audio-7B-Instruct: the real class, processor (Whisper 128-mel extractor) and chat template.

The extractor pads every clip to its 30 s window and cuts anything longer, so audio longer than the window
is split into equal <= 30 s chunks, each its own audio item ("Audio 1: ...", "Audio 2: ...") in the same
user turn, and every chunk's feature mask is checked to cover the whole chunk. 25 audio tokens per second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..kv import ALL_PRESSES
from .base import AudioLM

from .inputs import ModelInputs, check_feature_coverage, split_audio
from .registry import register_family
from .shape import ShapeSpec
from .tiny import save_tiny_model, tokenizer_corpus, train_tokenizer

SPECIAL_TOKENS = {
    "eos_token": "<|im_end|>",
    "pad_token": "<|endoftext|>",
    "audio_token": "<|AUDIO|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}


@register_family
class Qwen2Audio(AudioLM):
    family = "qwen2-audio"
    long_audio = "each item ≤ 30 s (the Whisper window); longer audio split into equal ≤ 30 s items in one turn"
    tiny_name = "tiny-qwen2-audio"
    checkpoints = ("Qwen/Qwen2-Audio-7B-Instruct",)
    shapes = (ShapeSpec("Qwen/Qwen2-Audio-7B-Instruct", "Qwen--Qwen2-Audio-7B-Instruct.json",
                        "Qwen2AudioForConditionalGeneration"),)
    model_types = ("qwen2_audio",)
    keyword = "qwen"
    presses = ALL_PRESSES
    # None: the checkpoint's chat template inserts its own default ("You are a helpful assistant.").
    default_system_prompt = None

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

        model = self.from_pretrained(Qwen2AudioForConditionalGeneration)
        return model, Qwen2AudioProcessor.from_pretrained(self.checkpoint)

    @property
    def max_audio_seconds(self) -> float:
        return float(self.processor.feature_extractor.chunk_length)  # 30 s on the real checkpoint

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_token_index)

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        chunks = split_audio(audio, self.sampling_rate, self.max_audio_seconds)
        content: list[dict[str, Any]] = [{"type": "audio"} for _ in chunks]  # arrays go to the processor
        content.append({"type": "text", "text": prompt})
        messages: list[dict[str, Any]] = []
        if system or self.default_system_prompt:
            messages.append({"role": "system", "content": system or self.default_system_prompt})
        messages.append({"role": "user", "content": content})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.processor(text=text, audio=chunks, sampling_rate=self.sampling_rate, return_tensors="pt",
                               **self.feature_kwargs())
        fe = self.processor.feature_extractor
        check_feature_coverage(chunks, batch["feature_attention_mask"].sum(-1).tolist(), fe.hop_length,
                               self.sampling_rate)
        return self.inputs_from(batch, self.audio_token_id, len(audio) / self.sampling_rate, len(chunks))

    @staticmethod
    def build_tiny(dest: Path) -> None:
        from transformers import (Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                                  WhisperFeatureExtractor)

        tok = train_tokenizer(SPECIAL_TOKENS, tokenizer_corpus(), extra_special=["<|im_start|>"])
        ids = {name: tok.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
        config = Qwen2AudioConfig(
            audio_config=dict(num_mel_bins=128, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
                              d_model=64, max_source_positions=1500),
            text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                             rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                             pad_token_id=ids["pad_token"], eos_token_id=ids["eos_token"]),
            audio_token_index=ids["audio_token"],
        )
        save_tiny_model(Qwen2AudioForConditionalGeneration, config, dest, ids["eos_token"], ids["pad_token"])
        # The real checkpoint's extractor: 128 mel bins, 30 s window (750 tokens), padded to the window.
        extractor = WhisperFeatureExtractor(feature_size=128, chunk_length=30, return_attention_mask=True)
        # chat_template=None -> the processor's own template, the one the hub checkpoint ships.
        Qwen2AudioProcessor(feature_extractor=extractor, tokenizer=tok).save_pretrained(dest)
