"""Granite-speech 3.3 (ibm-granite/granite-speech-3.3-{2b,8b}): the real class, processor and feature extractor
(80-mel log-mel stacked in pairs; a Q-Former projector turns every 15 encoder frames into 3 tokens: 10 audio
tokens per second), the Granite chat format with `<|audio|>` in the user text, as on the model card.

torchaudio must not be installed here, so `install_granite_mel_shim` gives the real extractor a
`MelSpectrogram` stand-in (same STFT and HTK filters; see processors.py). The conformer encoder attends in
blocks, so there is no window and nothing to split; the processor's token count is checked against the audio.
The hub checkpoint's LoRA adapter (enabled by the model only when audio is present) needs peft.
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
from .processors import install_granite_mel_shim
from .registry import register_family
from .tiny import save_tiny_model, tokenizer_corpus, train_tokenizer

# The model card's example system prompt (a fixed date keeps prompts deterministic).
GRANITE_SYSTEM_PROMPT = (
    "Knowledge Cutoff Date: April 2024.\nToday's Date: April 9, 2025.\n"
    "You are Granite, developed by IBM. You are a helpful AI assistant"
)
SPECIAL_TOKENS = {"eos_token": "<|end_of_text|>", "pad_token": "<|pad|>", "audio_token": "<|audio|>"}
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|start_of_role|>{{ message['role'] }}<|end_of_role|>"
    "{{ message['content'] }}<|end_of_text|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{% endif %}"
)


@register_family
class GraniteSpeech(AudioLM):
    family = "granite-speech"
    long_audio = "one item of any length (block attention over the whole clip)"
    tiny_name = "tiny-granite-speech"
    checkpoints = ("ibm-granite/granite-speech-3.3-2b", "ibm-granite/granite-speech-3.3-8b")
    model_types = ("granite_speech",)
    keyword = "granite"
    presses = ALL_PRESSES
    audio_encoder_path = "model.encoder"
    default_system_prompt = GRANITE_SYSTEM_PROMPT

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import GraniteSpeechForConditionalGeneration, GraniteSpeechProcessor

        install_granite_mel_shim()
        # The Q-Former projector has eager attention only on transformers 5.2; the language model takes the choice.
        attn = {"": self.attn_implementation, "text_config": self.attn_implementation, "projector_config": "eager"}
        model = self.from_pretrained(GraniteSpeechForConditionalGeneration, attn_implementation=attn)
        return model, GraniteSpeechProcessor.from_pretrained(self.checkpoint)

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_token_index)

    def expected_audio_tokens(self, n_samples: int) -> int:
        fe = self.processor.audio_processor
        encoder_frames = (n_samples // fe.melspec_kwargs["hop_length"] + 1) // 2
        per_block = fe.projector_window_size // fe.projector_downsample_rate
        return math.ceil(encoder_frames / fe.projector_window_size) * per_block

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        messages = [
            {"role": "system", "content": system or self.default_system_prompt},
            {"role": "user", "content": f"{self.processor.audio_token}{prompt}"},
        ]
        text = self.processor.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.processor(text=text, audio=[torch.from_numpy(np.ascontiguousarray(audio))],
                               device="cpu", return_tensors="pt")
        got = int(batch["input_features_mask"].sum())
        expected = self.expected_audio_tokens(len(audio))
        if got != expected:
            raise DataError(f"{len(audio) / self.sampling_rate:.1f} s of audio gave {got} audio tokens, expected "
                            f"{expected} (truncated?)")
        return self.inputs_from(batch, self.audio_token_id, len(audio) / self.sampling_rate, 1)

    @staticmethod
    def build_tiny(dest: Path) -> None:
        from transformers import (GraniteSpeechConfig, GraniteSpeechFeatureExtractor,
                                  GraniteSpeechForConditionalGeneration, GraniteSpeechProcessor)

        install_granite_mel_shim()
        tok = train_tokenizer(SPECIAL_TOKENS, tokenizer_corpus(), extra_special=["<|start_of_role|>",
                                                                                   "<|end_of_role|>"])
        tok.chat_template = TINY_CHAT_TEMPLATE
        ids = {name: tok.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
        config = GraniteSpeechConfig(
            encoder_config=dict(input_dim=160, num_layers=2, hidden_dim=64, feedforward_mult=2, num_heads=4,
                                dim_head=16, dropout=0.0),
            projector_config=dict(model_type="blip_2_qformer", hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, encoder_hidden_size=64,
                                  cross_attention_frequency=1),
            # Granite's scaled residual stream and attention_multiplier (not 1/sqrt(d)) as in the real model
            text_config=dict(model_type="granite", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                             embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.0625,
                             logits_scaling=8.0, pad_token_id=ids["pad_token"], eos_token_id=ids["eos_token"],
                             bos_token_id=ids["eos_token"], tie_word_embeddings=True),
            audio_token_index=ids["audio_token"],
            has_lora_adapter=False,
        )
        save_tiny_model(GraniteSpeechForConditionalGeneration, config, dest, ids["eos_token"], ids["pad_token"])
        GraniteSpeechProcessor(audio_processor=GraniteSpeechFeatureExtractor(), tokenizer=tok).save_pretrained(dest)
