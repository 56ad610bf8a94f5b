"""Audio Flamingo 3 (nvidia/audio-flamingo-3-hf): the real class, processor (Whisper 128-mel) and chat template.

The processor cuts one clip into consecutive 30 s windows (no padding tokens: 25 audio tokens per second of
real audio, one contiguous `<sound>` run per clip) up to `max_audio_len` = 600 s, and truncates beyond that
with only a log warning. The chat template renders one `<sound>` per message, so a prompt holds one clip:
longer audio is rejected with a DataError before the processor can truncate it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..kv import ALL_PRESSES
from .base import AudioLM
from .inputs import ModelInputs, check_feature_coverage
from .registry import register_family
from .shape import ShapeSpec
from .tiny import save_tiny_model, tokenizer_corpus, train_tokenizer

AUDIO_TOKEN = "<sound>"
SPECIAL_TOKENS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "audio_token": AUDIO_TOKEN}

# The structure of the hub checkpoint's processor template: default system turn, then per message one
# <sound> when it holds any audio, followed by its text parts.
TINY_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages if m['content'] is not none %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% set state = namespace(audio=False, text='') %}"
    "{% for c in m['content'] %}"
    "{% if c.get('type') == 'audio' or 'audio' in c %}{% set state.audio = True %}"
    "{% elif c.get('type') == 'text' or 'text' in c %}{% set state.text = state.text + c['text'] %}{% endif %}"
    "{% endfor %}"
    "{% if state.audio %}<sound>{% endif %}{{ state.text }}"
    "{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@register_family
class AudioFlamingo3(AudioLM):
    family = "audio-flamingo-3"
    long_audio = "one item of up to 600 s (the model card's limit); longer audio refused as a data error"
    tiny_name = "tiny-audio-flamingo-3"
    checkpoints = ("nvidia/audio-flamingo-3-hf",)
    shapes = (ShapeSpec("nvidia/audio-flamingo-3-hf", "nvidia--audio-flamingo-3-hf.json",
                        "AudioFlamingo3ForConditionalGeneration"),)
    model_types = ("audioflamingo3",)
    keyword = "flamingo"
    presses = ALL_PRESSES
    default_system_prompt = None  # the template's own "You are a helpful assistant."

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import AudioFlamingo3ForConditionalGeneration, AudioFlamingo3Processor

        model = self.from_pretrained(AudioFlamingo3ForConditionalGeneration)
        return model, AudioFlamingo3Processor.from_pretrained(self.checkpoint)

    @property
    def max_audio_seconds(self) -> float:
        return float(self.processor.max_audio_len)  # 600 s: 20 windows of 30 s

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_token_id)

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        seconds = len(audio) / self.sampling_rate
        if seconds > self.max_audio_seconds:
            raise DataError(
                f"audio of {seconds:.1f} s exceeds Audio Flamingo 3's {self.max_audio_seconds:.0f} s limit "
                "(its processor would truncate it; one prompt holds one clip)"
            )
        messages: list[dict[str, Any]] = []
        if system or self.default_system_prompt:
            messages.append({"role": "system", "content": system or self.default_system_prompt})
        messages.append({"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "audio"}]})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.processor(text=text, audio=[audio], sampling_rate=self.sampling_rate, return_tensors="pt",
                               **self.feature_kwargs())
        fe = self.processor.feature_extractor
        valid = int(batch["input_features_mask"].sum())  # every 30 s window of the one clip
        check_feature_coverage([audio], [valid], fe.hop_length, self.sampling_rate)
        return self.inputs_from(batch, self.audio_token_id, seconds, 1,
                                notes={"windows": int(batch["input_features"].shape[0])})

    @staticmethod
    def build_tiny(dest: Path) -> None:
        from transformers import (AudioFlamingo3Config, AudioFlamingo3ForConditionalGeneration,
                                  AudioFlamingo3Processor, WhisperFeatureExtractor)

        tok = train_tokenizer(SPECIAL_TOKENS, tokenizer_corpus(), extra_special=["<|im_start|>"])
        ids = {name: tok.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
        config = AudioFlamingo3Config(
            audio_config=dict(num_mel_bins=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                              hidden_size=64, max_source_positions=1500),
            text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                             rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                             pad_token_id=ids["pad_token"], eos_token_id=ids["eos_token"]),
            audio_token_id=ids["audio_token"],
        )
        save_tiny_model(AudioFlamingo3ForConditionalGeneration, config, dest, ids["eos_token"], ids["pad_token"])
        extractor = WhisperFeatureExtractor(feature_size=128, chunk_length=30, return_attention_mask=True)
        AudioFlamingo3Processor(feature_extractor=extractor, tokenizer=tok, chat_template=TINY_CHAT_TEMPLATE,
                                audio_token=AUDIO_TOKEN).save_pretrained(dest)
