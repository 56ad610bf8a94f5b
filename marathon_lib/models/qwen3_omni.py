"""Qwen3-Omni thinker (text output only; `Qwen3OmniMoeThinkerForConditionalGeneration`): the real class and
processor (Whisper 128-mel, no 30 s padding and no truncation: the encoder windows any length itself; 13 audio
tokens per second), the Qwen chat structure `<|audio_start|><|audio_pad|>...<|audio_end|>`, MoE text model
with interleaved mRoPE and per-head q/k norms.

The processor needs image and video processors to construct; stubs stand in (no images or videos are passed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..kv import ALL_PRESSES
from .base import AudioLM

from .inputs import ModelInputs, check_feature_coverage
from .processors import StubImageProcessor, load_processor, stub_video_processor_class
from .registry import register_family
from .tiny import save_tiny_model, tokenizer_corpus, train_tokenizer

SPECIAL_TOKENS = {
    "eos_token": "<|im_end|>",
    "pad_token": "<|endoftext|>",
    "audio_token": "<|audio_pad|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
}

TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}<|audio_start|><|audio_pad|><|audio_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@register_family
class Qwen3OmniThinker(AudioLM):
    family = "qwen3-omni"
    long_audio = "one item of any length (the encoder windows it itself)"
    tiny_name = "tiny-qwen3-omni"
    checkpoints = ("Qwen/Qwen3-Omni-30B-A3B-Instruct",)
    model_types = ("qwen3_omni_moe", "qwen3_omni_moe_thinker")
    keyword = "qwen"
    presses = ALL_PRESSES  # its per-head q_norm goes through kv.presses' adapter
    default_system_prompt = None  # the Qwen3-Omni template has no default system turn

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import (Qwen3OmniMoeProcessor, Qwen3OmniMoeThinkerForConditionalGeneration,
                                  WhisperFeatureExtractor)

        model = self.from_pretrained(Qwen3OmniMoeThinkerForConditionalGeneration)
        processor = load_processor(
            Qwen3OmniMoeProcessor, self.checkpoint, WhisperFeatureExtractor,
            image_processor=StubImageProcessor(), video_processor=stub_video_processor_class()(),
        )
        return model, processor

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_token_id)

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        messages: list[dict[str, Any]] = []
        if system or self.default_system_prompt:
            text_part = {"type": "text", "text": system or self.default_system_prompt}
            messages.append({"role": "system", "content": [text_part]})
        messages.append({"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": prompt}]})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.processor(text=text, audio=[audio], return_tensors="pt", padding=True, **self.feature_kwargs())
        fe = self.processor.feature_extractor
        check_feature_coverage([audio], batch["feature_attention_mask"].sum(-1).tolist(), fe.hop_length,
                               self.sampling_rate)
        return self.inputs_from(batch, self.audio_token_id, len(audio) / self.sampling_rate, 1)

    @staticmethod
    def build_tiny(dest: Path) -> None:
        from transformers import (Qwen3OmniMoeProcessor, Qwen3OmniMoeThinkerConfig,
                                  Qwen3OmniMoeThinkerForConditionalGeneration, WhisperFeatureExtractor)

        tok = train_tokenizer(SPECIAL_TOKENS, tokenizer_corpus(), extra_special=["<|im_start|>"])
        ids = {name: tok.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
        config = Qwen3OmniMoeThinkerConfig(
            audio_config=dict(num_mel_bins=128, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
                              d_model=64, output_dim=64, n_window=50, n_window_infer=800, conv_chunksize=500,
                              downsample_hidden_size=32, max_source_positions=1500),
            vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                               deepstack_visual_indexes=[0]),
            text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                             num_experts=4, num_experts_per_tok=2,
                             rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3],
                                              "interleaved": True},
                             pad_token_id=ids["pad_token"], eos_token_id=ids["eos_token"]),
            audio_token_id=ids["audio_token"], image_token_id=ids["image_token"], video_token_id=ids["video_token"],
            audio_start_token_id=ids["audio_bos_token"],
        )
        config.vision_start_token_id = ids["vision_bos_token"]  # read by get_rope_index
        config.audio_end_token_id = ids["audio_eos_token"]
        save_tiny_model(Qwen3OmniMoeThinkerForConditionalGeneration, config, dest, ids["eos_token"], ids["pad_token"])
        # The real checkpoint's extractor: 128 mel bins; the processor pads to the longest clip, never truncates.
        extractor = WhisperFeatureExtractor(feature_size=128, return_attention_mask=True)
        Qwen3OmniMoeProcessor(image_processor=StubImageProcessor(), video_processor=stub_video_processor_class()(),
                              feature_extractor=extractor, tokenizer=tok,
                              chat_template=TINY_CHAT_TEMPLATE).save_pretrained(dest)
