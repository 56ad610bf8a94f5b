"""Gemma-3n (google/gemma-3n-E2B-it, -E4B-it): the real class, processor and audio feature extractor (128-mel,
30 s window), the Gemma chat format; vision tower stubbed (it is a timm model and timm must not be installed).

Limits, enforced rather than worked around:
* one audio item is at most 30 s and always becomes exactly 188 soft tokens (shorter clips are padded inside
  the model), so longer audio is split into equal <= 30 s clips, each its own audio item; a truncating extractor
  is detected (DataError);
* pruning at layer K works only while every KV-"store" layer (whose cache the last `num_kv_shared_layers`
  layers read) is itself pruned, i.e. K <= the first store layer, and only for prompts no longer than the
  sliding window (the sliding cache crops by count while masks use original positions): `text_stack()`
  declares both, and `PruneHook` refuses anything else with the reason (docs/models.md, "Pruning at layer K").

Id layout mirrored from the real checkpoint: text ids < V, vision ids [V, V+8) (tiny: 8, real: 128), audio ids
after them; `<end_of_audio>` is the audio range's first id, `<audio_soft_token>` the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..textstack import TextStack, find_text_stack
from ..errors import DataError
from .base import AudioLM
from .inputs import ModelInputs, split_audio
from .processors import StubImageProcessor, load_chat_template
from .registry import register_family
from .tiny import tokenizer_corpus, train_tokenizer

CLIP_SECONDS = 30.0  # Gemma3nAudioFeatureExtractor's default max_length of 480,000 samples at 16 kHz
TINY_MM_VOCAB = 8  # ids per modality range in the tiny checkpoint
NAMED = {
    "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
    "boi_token": "<start_of_image>", "boa_token": "<start_of_audio>",
}
VISION_TAIL = ["<end_of_image>", "<image_soft_token>", *[f"<image_reserved_{i}>" for i in range(TINY_MM_VOCAB - 2)]]
AUDIO_TAIL = ["<end_of_audio>", "<audio_soft_token>", *[f"<audio_reserved_{i}>" for i in range(TINY_MM_VOCAB - 2)]]

# The structure of the checkpoint's template: system text joins the first user turn; audio -> <audio_soft_token>.
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set first = namespace(system='') %}"
    "{% if messages[0]['role'] == 'system' %}{% set first.system = messages[0]['content'] + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{% if loop.first %}{{ first.system }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}<audio_soft_token>{% elif part['type'] == 'image' %}<image_soft_token>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@contextlib.contextmanager
def no_timm_vision_tower() -> Iterator[None]:
    """Build Gemma3n with an empty module in place of its timm vision tower (no images are ever passed)."""
    from transformers.models.gemma3n import modeling_gemma3n as gm

    real = gm.AutoModel

    class _AutoModel:
        @staticmethod
        def from_config(config: Any, **kwargs: Any) -> nn.Module:
            if getattr(config, "model_type", None) in ("gemma3n_vision", "timm_wrapper"):
                return nn.Module()
            return real.from_config(config, **kwargs)

    gm.AutoModel = _AutoModel
    try:
        yield
    finally:
        gm.AutoModel = real


def patch_audio_mel_mask() -> None:
    """transformers 5.2 (issue #44008): the forward reads `.audio_mel_mask` off the pooled audio tensor."""
    from transformers.models.gemma3n import modeling_gemma3n as gm

    original = gm.Gemma3nModel.get_audio_features
    if getattr(original, "_marathon_patched", False):
        return

    def get_audio_features(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        pooled = getattr(out, "pooler_output", None)
        if isinstance(pooled, torch.Tensor) and getattr(out, "audio_mel_mask", None) is not None:
            pooled.audio_mel_mask = out.audio_mel_mask
        return out

    get_audio_features._marathon_patched = True
    gm.Gemma3nModel.get_audio_features = get_audio_features


def shared_kv_by_reference() -> bool:
    """transformers 5.2x hands KV-sharing layers the store layers' keys/values (`shared_kv_states`); 5.2 makes
    them read the store layer's cache slots at `cache_position`."""
    import inspect

    from transformers.models.gemma3n import modeling_gemma3n as gm

    return "shared_kv_states" in inspect.signature(gm.Gemma3nTextDecoderLayer.forward).parameters


def _check_finite_audio(module: nn.Module, args: tuple, output: Any) -> None:
    hidden = output[0] if isinstance(output, tuple) else getattr(output, "last_hidden_state", output)
    if isinstance(hidden, torch.Tensor) and not bool(torch.isfinite(hidden).all()):
        raise FloatingPointError("Gemma-3n audio encoder returned non-finite values (seen with transformers 5.2)")


@register_family
class Gemma3n(AudioLM):
    family = "gemma-3n"
    long_audio = "split into equal ≤ 30 s clips, 188 tokens each, one audio item per clip"
    tiny_name = "tiny-gemma-3n"
    checkpoints = ("google/gemma-3n-E2B-it", "google/gemma-3n-E4B-it")
    model_types = ("gemma3n",)
    keyword = "gemma"
    press_refusal = ("its KV-sharing layers read the cache of an earlier layer and have no cache slot of their own, so "
                     "kvpress's hook fails on them (IndexError); compressing the shared slot would also change the "
                     "layers that reuse it")
    default_system_prompt = None

    def load(self) -> tuple[torch.nn.Module, Any]:
        from transformers import (AutoTokenizer, Gemma3nAudioFeatureExtractor, Gemma3nForConditionalGeneration,
                                  Gemma3nProcessor)

        patch_audio_mel_mask()
        # The conformer audio encoder has eager attention only on transformers 5.2; the text model takes the choice.
        attn = {"": self.attn_implementation, "text_config": self.attn_implementation, "audio_config": "eager"}
        with no_timm_vision_tower():
            model = self.from_pretrained(Gemma3nForConditionalGeneration, attn_implementation=attn)
        # never score garbage: a non-finite audio encoding fails the sample (recorded as a model error)
        model.model.audio_tower.register_forward_hook(_check_finite_audio)
        tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        processor = Gemma3nProcessor(
            feature_extractor=Gemma3nAudioFeatureExtractor.from_pretrained(self.checkpoint),
            image_processor=StubImageProcessor(), tokenizer=tokenizer,
            chat_template=load_chat_template(self.checkpoint) or getattr(tokenizer, "chat_template", None),
            audio_seq_length=int(model.config.audio_soft_tokens_per_image),
        )
        return model, processor

    @property
    def max_audio_seconds(self) -> float:
        return CLIP_SECONDS  # the extractor's max_length (480,000 samples); prepare checks it truncated nothing

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_token_id)

    @staticmethod
    def prune_limits(text_config: Any) -> tuple[int, int, str]:
        """(max K, max prompt length, reason): K may not exceed the first KV-store layer (the last non-shared
        layer of each attention type that the shared layers read), and the prompt must fit the sliding window.
        On transformers 5.2 the shared layers index the store layer's cache by original `cache_position`, which a
        pruned (shorter) cache breaks: no K at all there."""
        if not shared_kv_by_reference():
            return 0, 0, ("on transformers < 5.3 Gemma-3n's KV-sharing layers index the store layer's cache by "
                          "original cache positions, which a pruned cache breaks; use transformers >= 5.3")
        n = int(text_config.num_hidden_layers)
        first_shared = n - int(text_config.num_kv_shared_layers or 0)
        types = list(text_config.layer_types)
        stores = [max(i for i in range(first_shared) if types[i] == t) for t in set(types[first_shared:])]
        max_k = min(stores) if stores else n - 1
        window = int(text_config.sliding_window)
        reason = (f"Gemma-3n layers {first_shared}..{n - 1} reuse the KV cache of layers {sorted(stores)}, which must "
                  f"be pruned too, so K <= {max_k}; its sliding-window cache holds {window} tokens")
        return max_k, window, reason

    @staticmethod
    def prune_layer_limit(config: Any) -> tuple[int | None, str]:
        max_k, _, reason = Gemma3n.prune_limits(config.get_text_config(decoder=True))
        return max_k, reason

    def text_stack(self) -> TextStack:
        stack = find_text_stack(self.model)
        stack.max_prune_layer, stack.max_prune_length, stack.limit_reason = self.prune_limits(
            self.model.config.get_text_config(decoder=True))
        return stack

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        chunks = split_audio(audio, self.sampling_rate, self.max_audio_seconds)
        content: list[dict[str, Any]] = [{"type": "audio"} for _ in chunks]  # arrays go to the processor
        content.append({"type": "text", "text": prompt})
        messages: list[dict[str, Any]] = []
        if system or self.default_system_prompt:
            messages.append({"role": "system", "content": system or self.default_system_prompt})
        messages.append({"role": "user", "content": content})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.processor(text=text, audio=chunks, return_tensors="pt")
        fe = self.processor.feature_extractor
        valid = batch["input_features_mask"].sum(-1).tolist()
        for index, (chunk, frames) in enumerate(zip(chunks, valid, strict=True)):
            needed = (len(chunk) - fe.frame_length - 1) // fe.hop_length + 1  # frames of the whole chunk
            if frames < needed:
                raise DataError(f"audio clip {index} ({len(chunk) / self.sampling_rate:.1f} s) was truncated by the "
                                f"feature extractor to {frames} of {needed} frames")
        return self.inputs_from(batch, self.audio_token_id, len(audio) / self.sampling_rate, len(chunks))

    @staticmethod
    def build_tiny(dest: Path) -> None:
        from transformers import (Gemma3nAudioFeatureExtractor, Gemma3nConfig, Gemma3nForConditionalGeneration,
                                  Gemma3nProcessor)

        named = {**NAMED, "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
                 "eoa_token": "<end_of_audio>", "audio_token": "<audio_soft_token>"}
        tok = train_tokenizer(named, tokenizer_corpus(), extra_special=["<start_of_turn>", "<end_of_turn>"],
                              tail_special=[*VISION_TAIL, *AUDIO_TAIL])
        tok.chat_template = TINY_CHAT_TEMPLATE
        text_vocab = len(tok) - 2 * TINY_MM_VOCAB
        ids = {t: tok.convert_tokens_to_ids(t) for t in (*NAMED.values(), *VISION_TAIL[:2], *AUDIO_TAIL[:2],
                                                        "<end_of_turn>")}
        assert ids["<end_of_image>"] == text_vocab and ids["<end_of_audio>"] == text_vocab + TINY_MM_VOCAB
        assert tok.audio_token_id == ids["<audio_soft_token>"] and tok.boa_token == "<start_of_audio>"
        layers = 6
        config = Gemma3nConfig(
            text_config=dict(
                vocab_size=text_vocab + 2 * TINY_MM_VOCAB, vocab_size_per_layer_input=text_vocab, hidden_size=64,
                intermediate_size=[128] * layers, num_hidden_layers=layers, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, num_kv_shared_layers=2,
                layer_types=["sliding_attention", "full_attention"] * (layers // 2), sliding_window=512,
                hidden_size_per_layer_input=16, laurel_rank=8,
                activation_sparsity_pattern=[0.95] + [0.0] * (layers - 1),
                pad_token_id=ids["<pad>"], eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
                bos_token_id=ids["<bos>"]),
            audio_config=dict(input_feat_size=128, hidden_size=64, conf_num_attention_heads=4,
                              conf_num_hidden_layers=2, sscp_conv_channel_size=[16, 8], vocab_size=TINY_MM_VOCAB,
                              vocab_offset=text_vocab + TINY_MM_VOCAB),
            vision_config=dict(hidden_size=32, vocab_size=TINY_MM_VOCAB, vocab_offset=text_vocab),
            boi_token_id=ids["<start_of_image>"], eoi_token_id=ids["<end_of_image>"],
            image_token_id=ids["<image_soft_token>"], boa_token_id=ids["<start_of_audio>"],
            eoa_token_id=ids["<end_of_audio>"], audio_token_id=ids["<audio_soft_token>"],
        )
        torch.manual_seed(0)
        with no_timm_vision_tower():
            model = Gemma3nForConditionalGeneration(config)
        model.generation_config.eos_token_id = [ids["<eos>"], ids["<end_of_turn>"]]
        model.generation_config.pad_token_id = ids["<pad>"]
        model.save_pretrained(dest)
        tok.save_pretrained(dest)
        Gemma3nAudioFeatureExtractor().save_pretrained(dest)
        (dest / "chat_template.jinja").write_text(TINY_CHAT_TEMPLATE)
        # the processor class itself must accept these parts
        Gemma3nProcessor(feature_extractor=Gemma3nAudioFeatureExtractor(), image_processor=StubImageProcessor(),
                         tokenizer=tok, chat_template=TINY_CHAT_TEMPLATE)
