"""Phi-4-multimodal-instruct (native `Phi4MultimodalForCausalLM`): the real class, processor and its
80-mel feature extractor (10 ms hop, 8x compression: 12.5 audio tokens per second), the Phi chat format
`<|user|><|audio|>text<|end|><|assistant|>`.

The audio encoder unfolds any length into 500-frame blocks itself, so there is no window to split for and
nothing is truncated (the extractor's token count is checked against the audio's length). The real image
processor needs torchvision, which must never be installed here: a stub stands in (no images are passed).
The hub checkpoint's speech ability lives in its `speech-lora` adapter, loaded with PEFT when present.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..kv import KEY_ONLY_PRESSES
from .base import AudioLM
from .inputs import ModelInputs
from .processors import StubImageProcessor
from .registry import register_family
from .tiny import save_tiny_model, tokenizer_corpus, train_tokenizer

SPECIAL_TOKENS = {
    "bos_token": "<|endoftext|>",
    "eos_token": "<|end|>",
    "pad_token": "<|dummy_pad|>",
    "image_token": "<|image|>",
    "audio_token": "<|audio|>",
}

# The structure of the native checkpoint's template: <|role|> content <|end|>, audio items as <|audio|>.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|image|>' }}{% elif content['type'] == 'audio' %}{{ '<|audio|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@register_family
class Phi4Multimodal(AudioLM):
    family = "phi-4-multimodal"
    long_audio = "one item of any length (no window in the encoder)"
    tiny_name = "tiny-phi-4-multimodal"
    checkpoints = ("microsoft/Phi-4-multimodal-instruct",)
    model_types = ("phi4_multimodal",)
    keyword = "phi4"
    presses = KEY_ONLY_PRESSES
    press_refusal = ("its attention projects q, k and v with one fused qkv_proj and rotates only part of each head "
                     "(partial RoPE); kvpress's query-based scorers read q_proj and rotate whole heads "
                     "(NotImplementedError), so only key/position-only presses "
                     f"({', '.join(sorted(KEY_ONLY_PRESSES))}) run")
    audio_encoder_path = "model.embed_tokens_extend.audio_embed.encoder"
    default_system_prompt = None  # the original scripts send a user turn only

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import (AutoTokenizer, Phi4MultimodalFeatureExtractor, Phi4MultimodalForCausalLM,
                                  Phi4MultimodalProcessor)
        from transformers.utils import cached_file

        from .processors import load_chat_template

        model = self.from_pretrained(Phi4MultimodalForCausalLM)
        lora = cached_file(self.checkpoint, "speech-lora/adapter_config.json",
                           _raise_exceptions_for_missing_entries=False)
        if lora:  # the hub checkpoint: speech needs its LoRA adapter (requires peft)
            model.load_adapter(self.checkpoint, adapter_name="speech", adapter_kwargs={"subfolder": "speech-lora"})
            model.set_adapter("speech")
        tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        processor = Phi4MultimodalProcessor(
            image_processor=StubImageProcessor(),
            audio_processor=Phi4MultimodalFeatureExtractor.from_pretrained(self.checkpoint),
            tokenizer=tokenizer,
            chat_template=load_chat_template(self.checkpoint) or getattr(tokenizer, "chat_template", None),
        )
        return model, processor

    @staticmethod
    def text_layer_count(config: Any) -> int:
        return int(config.num_hidden_layers)  # the language model is the top-level config

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_config.audio_token_id)

    def expected_audio_tokens(self, n_samples: int) -> int:
        fe = self.processor.audio_processor
        frames = (n_samples - fe.win_length) // fe.hop_length + 1
        return math.ceil(math.ceil(frames / fe.audio_compression_rate) / fe.audio_downsample_rate)

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        fe = self.processor.audio_processor
        if len(audio) < fe.win_length:
            raise DataError(f"audio of {len(audio)} samples is shorter than one analysis window")
        messages: list[dict[str, Any]] = []
        if system or self.default_system_prompt:
            messages.append({"role": "system", "content": system or self.default_system_prompt})
        messages.append({"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": prompt}]})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.processor(text=text, audio=[audio], sampling_rate=self.sampling_rate, return_tensors="pt")
        got, expected = int(batch["audio_embed_sizes"][0]), self.expected_audio_tokens(len(audio))
        if got != expected:
            raise DataError(f"{len(audio) / self.sampling_rate:.1f} s of audio gave {got} audio tokens, expected "
                            f"{expected} (truncated?)")
        return self.inputs_from(batch, self.audio_token_id, len(audio) / self.sampling_rate, 1)

    @staticmethod
    def build_tiny(dest: Path) -> None:
        from transformers import (Phi4MultimodalConfig, Phi4MultimodalFeatureExtractor, Phi4MultimodalForCausalLM,
                                  Phi4MultimodalProcessor)

        tok = train_tokenizer(SPECIAL_TOKENS, tokenizer_corpus(), extra_special=["<|user|>", "<|assistant|>",
                                                                                   "<|system|>"])
        ids = {name: tok.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
        config = Phi4MultimodalConfig(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=131072, original_max_position_embeddings=4096,
            partial_rotary_factor=0.75,  # read from here by transformers 5.2, from rope_parameters by 5.2x
            # the real text model: LongRoPE on 75 % of each head (rotary dims 12 of 16 here)
            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
                             "short_factor": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5], "long_factor": [2.0] * 6},
            bos_token_id=ids["bos_token"], eos_token_id=ids["eos_token"], pad_token_id=ids["pad_token"],
            audio_config=dict(hidden_size=64, intermediate_size=128, num_blocks=2, num_attention_heads=4,
                              ext_pw_out_channel=64, depthwise_separable_out_channel=64, nemo_conv_channels=64,
                              input_size=80, time_reduction=8, audio_token_id=ids["audio_token"]),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                               image_token_id=ids["image_token"]),
        )
        save_tiny_model(Phi4MultimodalForCausalLM, config, dest, ids["eos_token"], ids["pad_token"])
        tok.save_pretrained(dest)
        Phi4MultimodalFeatureExtractor().save_pretrained(dest)
        # the processor itself needs an image processor to construct; only its template is saved here
        processor = Phi4MultimodalProcessor(image_processor=StubImageProcessor(),
                                            audio_processor=Phi4MultimodalFeatureExtractor(), tokenizer=tok,
                                            chat_template=TINY_CHAT_TEMPLATE)
        (dest / "chat_template.jinja").write_text(processor.chat_template)
