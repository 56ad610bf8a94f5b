"""Qwen2.5-Omni thinker (text output only): the real class, processor and chat template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..kv import ALL_PRESSES
from .base import AudioLM
from .inputs import ModelInputs, split_audio
from .processors import StubImageProcessor, load_processor, stub_video_processor_class
from .registry import register_family
from .shape import ShapeSpec
from .tiny import tokenizer_corpus, train_tokenizer

QWEN_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)

# The checkpoint's chat-template structure: every audio item becomes <|audio_bos|><|AUDIO|><|audio_eos|>.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = {
    "eos_token": "<|im_end|>",
    "pad_token": "<|endoftext|>",
    "audio_token": "<|AUDIO|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}


@register_family
class QwenOmniThinker(AudioLM):
    family = "qwen2.5-omni"
    long_audio = "each item ≤ 300 s (the extractor's window); longer audio split into equal ≤ 300 s items in one turn"
    tiny_name = "tiny-qwen2.5-omni"
    checkpoints = ("Qwen/Qwen2.5-Omni-7B", "Qwen/Qwen2.5-Omni-3B")
    shapes = (ShapeSpec("Qwen/Qwen2.5-Omni-7B", "Qwen--Qwen2.5-Omni-7B.thinker.json",
                        "Qwen2_5OmniThinkerForConditionalGeneration"),)
    model_types = ("qwen2_5_omni", "qwen2_5_omni_thinker")
    keyword = "qwen"
    presses = ALL_PRESSES  # the mRoPE thinker through kv.presses' adapter for the presses that re-apply RoPE
    default_system_prompt = QWEN_SYSTEM_PROMPT

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import (
            Qwen2_5OmniProcessor,
            Qwen2_5OmniThinkerForConditionalGeneration,
            WhisperFeatureExtractor,
        )

        # The thinker loads directly from a full Omni checkpoint; talker/token2wav weights are skipped.
        model = self.from_pretrained(Qwen2_5OmniThinkerForConditionalGeneration)
        processor = load_processor(
            Qwen2_5OmniProcessor,
            self.checkpoint,
            WhisperFeatureExtractor,
            image_processor=StubImageProcessor(),
            video_processor=stub_video_processor_class()(),
        )
        return model, processor

    @property
    def max_audio_seconds(self) -> float:
        # The real checkpoint's extractor pads/truncates to chunk_length = 300 s; longer audio is split.
        return float(self.processor.feature_extractor.chunk_length)

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        chunks = split_audio(audio, self.sampling_rate, self.max_audio_seconds)
        content: list[dict[str, Any]] = [{"type": "audio"} for _ in chunks]
        content.append({"type": "text", "text": prompt})
        messages = [
            {"role": "system", "content": [{"type": "text", "text": system or self.default_system_prompt}]},
            {"role": "user", "content": content},
        ]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.processor(text=text, audio=chunks, return_tensors="pt", padding=True, **self.feature_kwargs())
        self._check_not_truncated(chunks, batch["feature_attention_mask"])
        return self.inputs_from(batch, self.audio_token_id, len(audio) / self.sampling_rate, len(chunks))

    @property
    def audio_token_id(self) -> int:
        return int(self.tokenizer.convert_tokens_to_ids(self.processor.audio_token))

    def _check_not_truncated(self, chunks: list[np.ndarray], feature_mask: torch.Tensor) -> None:
        hop = self.processor.feature_extractor.hop_length
        for index, chunk in enumerate(chunks):
            covered = int(feature_mask[index].sum()) * hop
            if covered + hop < len(chunk):
                raise DataError(
                    f"audio chunk {index} ({len(chunk) / self.sampling_rate:.1f} s) was truncated by the feature "
                    f"extractor to {covered / self.sampling_rate:.1f} s"
                )

    @staticmethod
    def build_tiny(dest: Path) -> None:
        from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

        tok = train_tokenizer(SPECIAL_TOKENS, tokenizer_corpus(), extra_special=["<|im_start|>"])
        ids = {name: tok.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
        config = Qwen2_5OmniConfig(thinker_config=tiny_thinker_config(tok), enable_audio_output=False)
        # Defaults of the top level and the (unbuilt) talker point into the real 151k vocabulary.
        for field in ("tts_text_start_token_id", "tts_text_end_token_id", "tts_text_pad_token_id",
                      "vision_start_token_id", "vision_end_token_id", "audio_start_token_id", "audio_end_token_id"):
            if hasattr(config, field):
                setattr(config, field, None)
        config.talker_config.audio_start_token_id = ids["audio_bos_token"]
        config.talker_config.audio_end_token_id = ids["audio_eos_token"]
        torch.manual_seed(0)
        Qwen2_5OmniForConditionalGeneration(config).save_pretrained(dest)
        tiny_processor(tok).save_pretrained(dest)


def tiny_thinker_config(tok: Any, **text: Any) -> dict[str, Any]:
    """The tiny thinker's configuration for tokenizer `tok` (its vocabulary and special-token ids); `text` overrides
    language-model fields (the trained canary ties its embeddings)."""
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
    return dict(
        audio_config=dict(num_mel_bins=128, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
                          d_model=64, output_dim=64, n_window=100, max_source_positions=1500),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           fullatt_block_indexes=[0]),
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                         pad_token_id=ids["pad_token"], eos_token_id=ids["eos_token"]) | text,
        audio_token_index=ids["audio_token"], image_token_index=ids["image_token"],
        video_token_index=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"], vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"],
    )


def tiny_processor(tok: Any) -> Any:
    """The real processor class around `tok`, with the real checkpoint's extractor: 128 mel bins and a 300 s window
    (so 120 s -> 3,000 audio tokens)."""
    from transformers import Qwen2_5OmniProcessor, WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=128, chunk_length=300, return_attention_mask=True)
    return Qwen2_5OmniProcessor(
        image_processor=StubImageProcessor(), video_processor=stub_video_processor_class()(),
        feature_extractor=extractor, tokenizer=tok, chat_template=TINY_CHAT_TEMPLATE,
    )
