"""The model adapter protocol: messages -> inputs + audio spans -> timed greedy generation. A family class
declares, as class attributes, everything the suite's tables need (names, checkpoints, `-k` keyword, config
model_types, long-audio policy, press support); `models.registry.register_family` derives the tables from them."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from ..textstack import TextStack, find_text_stack
from ..timing import Clock, FirstTokenMark, Timing
from .identity import checkpoint_revision
from .inputs import Generation, InputsCache, ModelInputs, find_audio_spans
from .shape import ShapeSpec

NOT_VALIDATED = "kvpress was not validated on it"


class BenchModel(Protocol):
    """What CaseRunner needs from a model: prepared inputs per sample and a timed generation. AudioLM (a local
    torch model) and the request/response adapters (API models, models.api) both implement it.

    The ClassVars are the family's declaration, read by the registry (models.registry) without loading anything:
    a new family is one file that subclasses an adapter, sets them and is decorated with `register_family`."""

    family: ClassVar[str]
    tiny_name: ClassVar[str | None] = None  # a random-weight build of the real classes (`build_tiny`), or None
    checkpoints: ClassVar[tuple[str, ...]] = ()  # hub ids (or API model ids) registered under their own name
    shapes: ClassVar[tuple[ShapeSpec, ...]] = ()  # `shape:<hub id>`: the real config, random weights
    model_types: ClassVar[tuple[str, ...]] = ()  # config.json model_types a local checkpoint directory maps from
    keyword: ClassVar[str | None] = None  # the `pytest -k` word; None = the family name without punctuation
    access: ClassVar[str] = "local"  # "local", "remote_code" (needs --trust-remote-code) or "api"
    name_prefix: ClassVar[str] = ""  # registered name = prefix + checkpoint ("api:" for API models)
    presses: ClassVar[frozenset[str]] = frozenset()  # kvpress methods validated on the family (kv.PRESSES names)
    press_refusal: ClassVar[str] = NOT_VALIDATED  # why the other presses are refused (the skip reason)
    long_audio: ClassVar[str] = "not stated"  # how audio beyond the model's window is handled (in the manifest)

    name: str
    revision: str  # what resume keys on: the hub commit, or the checkpoint's content (models.identity)
    warmup_scope: str = "case"  # "session": warmed up once per loaded model (API models: each warm-up is paid)
    warmed_up: bool = False
    warmup_ms: float | None = None  # the session's warm-up, for warmup_scope "session"
    device: torch.device
    dtype: Any
    attn_implementation: str | None
    inputs_cache: InputsCache

    @classmethod
    def missing_requirement(cls, name: str, environ: Mapping[str, str]) -> str | None:
        """Why `name` cannot load on this machine (an SDK or key missing), checked before any data is built."""
        return None

    @property
    @abstractmethod
    def sampling_rate(self) -> int: ...

    @abstractmethod
    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> Any:
        """Inputs for one audio + prompt (ModelInputs for local models)."""

    @abstractmethod
    def generate(self, inputs: Any, max_new_tokens: int) -> Generation:
        """Greedy generation, timed."""

    def warmup_generate(self, inputs: Any, max_new_tokens: int) -> Generation:
        """The warm-up generation of a warmup_scope "session" model."""
        return self.generate(inputs, max_new_tokens)

    def layer_count(self) -> int | None:
        """Decoder layers (the report's ideal prefill fraction); None where the model exposes none."""
        return None

    def encoder_clock(self) -> Any:
        """models.reuse.EncoderClock timing the audio encoder inside each prefill; None where nothing is timed
        locally (API models)."""
        return None


class AudioLM(BenchModel):
    """One adapter per model family. Subclasses load the model/processor and build inputs."""

    default_system_prompt: str | None = None
    audio_encoder_path: str | None = None  # module path of the audio encoder; None = the module named audio_tower
    # The chat format cannot hold a user turn without an audio item: the no_audio control then sends 1 s of
    # silence instead of removing the audio (no native family needs it today; a new family may).
    needs_audio_item: bool = False

    def __init__(self, name: str, checkpoint: str, device: str, dtype: torch.dtype, attn_implementation: str) -> None:
        self.name = name
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.dtype = dtype
        self.attn_implementation = attn_implementation
        self.model, self.processor = self.load()
        self.model.eval()
        # What resume keys on: the hub commit, else the checkpoint's content (never its path)
        self.revision = checkpoint_revision(self.model.config, checkpoint)
        self.clock = Clock(self.device)
        self.inputs_cache = InputsCache()
        self.encoder_cache: Any = None  # models.reuse.EncoderOutputCache with --reuse-audio-encoder
        self._encoder_clock: Any = None  # models.reuse.EncoderClock, installed on first use
        self.decode_mode = "eager"
        self.decoder: Any = None  # models.decode.StaticDecoder for decode modes "static" / "compiled"

    # --- family specifics -------------------------------------------------------------------
    @abstractmethod
    def load(self) -> tuple[torch.nn.Module, Any]:
        """Return (model on self.device, processor)."""

    @abstractmethod
    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        """Chat-format one audio + prompt, run the processor, locate the audio spans."""

    @property
    def audio_token_id(self) -> int:
        """The placeholder id the family scatters audio embeddings at (every native family has one)."""
        raise NotImplementedError(f"{self.family}: no single audio placeholder id")

    def prepare_without_audio(self, prompt: str, system: str | None = None) -> ModelInputs:
        """The no_audio control (marathon_lib.controls): the same prompt with every audio item removed, or with
        one second of silence where the chat format needs an audio item (`inputs.notes["control_audio"]`)."""
        if self.needs_audio_item:
            inputs = self.prepare(np.zeros(self.sampling_rate, dtype=np.float32), prompt, system)
            inputs.notes["control_audio"] = "1 s of silence"
            return inputs
        inputs = self.prepare_text(prompt, system)
        if inputs.spans:
            raise ValueError(f"{self.family}: the text-only prompt still holds {inputs.n_placeholder_tokens} audio "
                             "placeholders (set needs_audio_item on the family)")
        inputs.notes["control_audio"] = "none"
        return inputs

    def prepare_text(self, prompt: str, system: str | None = None) -> ModelInputs:
        """The family's chat format with a text-only user turn (string contents, which every template takes)."""
        messages: list[dict[str, Any]] = []
        if system or self.default_system_prompt:
            messages.append({"role": "system", "content": system or self.default_system_prompt})
        messages.append({"role": "user", "content": prompt})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.processor(text=text, return_tensors="pt")
        return self.inputs_from(batch, self.audio_token_id, 0.0, 0)

    @property
    def sampling_rate(self) -> int:
        """The rate the processor's audio feature extractor expects."""
        processor = self.processor
        extractor = getattr(processor, "feature_extractor", None) or processor.audio_processor
        return int(extractor.sampling_rate)

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def text_stack(self) -> TextStack:
        """The language model's decoder layers and final norm, where pruning hooks attach."""
        return find_text_stack(self.model)

    def layer_count(self) -> int | None:
        return len(self.text_stack().layers)

    @cached_property
    def mrope_section(self) -> list[int] | None:
        """The text model's mRoPE split (None for 1-D RoPE); read once, positions are built every token."""
        return self.text_stack().mrope_section

    @staticmethod
    def text_layer_count(config: Any) -> int:
        """Decoder layers of the language model, from the checkpoint's config (checked before loading); for a full
        Omni config, the thinker's (not the talker's)."""
        config = getattr(config, "thinker_config", config)
        return int(config.get_text_config(decoder=True).num_hidden_layers)

    def from_pretrained(self, model_class: type, attn_implementation: str | dict | None = None) -> torch.nn.Module:
        """`model_class.from_pretrained(self.checkpoint)` on self.device/dtype, or, for a `shape:` checkpoint (the
        real config, no weights), the model built from that config with random weights."""
        from .shape import is_shape_checkpoint, model_from_shape

        attn = self.attn_implementation if attn_implementation is None else attn_implementation
        if is_shape_checkpoint(self.checkpoint):
            return model_from_shape(model_class, self.checkpoint, self.dtype, self.device, attn)
        return model_class.from_pretrained(self.checkpoint, dtype=self.dtype, attn_implementation=attn).to(self.device)

    @staticmethod
    def prune_layer_limit(config: Any) -> tuple[int | None, str]:
        """The largest prune layer K this family supports, from the checkpoint's config (checked before loading),
        and why; (None, "") = any K in [1, N-1]. PruneHook enforces the same limit through `text_stack()`."""
        return None, ""

    def generation_kwargs(self) -> dict[str, Any]:
        return {}

    def feature_kwargs(self) -> dict[str, Any]:
        """Processor kwargs of the Whisper-style feature extractors: their torch path (transformers' default when
        torch is present) computes the log-mel features on the model's GPU instead of the CPU; on CPU nothing to
        add. tests_bench/unit/test_sweep.py checks that path against the numpy one."""
        return {"device": str(self.device)} if self.device.type == "cuda" else {}

    # --- shared -----------------------------------------------------------------------------
    def to_device(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        moved = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
                moved[key] = value
        return moved

    def inputs_from(self, batch: dict[str, Any], audio_token_id: int, audio_seconds: float, audio_chunks: int = 1,
                    **extra: Any) -> ModelInputs:
        """Processor output -> ModelInputs on the device, with the audio spans located in input_ids."""
        tensors = self.to_device(dict(batch))
        spans = find_audio_spans(tensors["input_ids"], audio_token_id)
        return ModelInputs(tensors=tensors, spans=spans, audio_seconds=audio_seconds, audio_chunks=audio_chunks,
                           **extra)

    def find_audio_encoder(self) -> torch.nn.Module | None:
        """The audio encoder module (what --reuse-audio-encoder caches and encoder_ms times); None when the model
        has no single one (no audio_encoder_path, not exactly one module named audio_tower)."""
        if self.audio_encoder_path is not None:
            return self.model.get_submodule(self.audio_encoder_path)
        found = [module for name, module in self.model.named_modules() if name.split(".")[-1] == "audio_tower"]
        return found[0] if len(found) == 1 else None

    def audio_encoder(self) -> torch.nn.Module:
        encoder = self.find_audio_encoder()
        if encoder is None:
            raise ValueError(f"{self.family}: no single module named audio_tower; set audio_encoder_path")
        return encoder

    def encoder_clock(self) -> Any:
        """The clock around the audio encoder's forward (models.reuse.EncoderClock), installed on first use; None
        for a model without one audio encoder module (no audio_tower, no audio_encoder_path): its records then
        carry encoder_ms null, not measured."""
        from .reuse import EncoderClock

        if self._encoder_clock is None:
            encoder = self.find_audio_encoder()
            self._encoder_clock = False if encoder is None else EncoderClock(encoder, self.clock).install()
        return self._encoder_clock or None

    def reuse_audio_encoder(self, size: int = 16) -> None:
        """Serve repeated encoder calls on the same features from a bounded cache (models.reuse); installed over
        the encoder clock, so a served call hands on the time its computation took."""
        from .reuse import EncoderOutputCache

        if self.encoder_cache is None:
            clock = self.encoder_clock()
            self.encoder_cache = EncoderOutputCache(self.audio_encoder(), size, clock).install()

    def set_decode_mode(self, mode: str) -> None:
        """eager: HF `generate`; static: a static per-layer KV cache; compiled: that cache with a compiled step.
        Raises ValueError with the reason where this model cannot use the static cache."""
        from .decode import DECODE_MODES, StaticDecoder

        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode {mode!r} is not one of {', '.join(DECODE_MODES)}")
        if self.decoder is not None:
            self.decoder.close()
        self.decoder = None if mode == "eager" else StaticDecoder(self, compiled=mode == "compiled")
        self.decode_mode = mode

    @torch.inference_mode()
    def generate(self, inputs: ModelInputs, max_new_tokens: int) -> Generation:
        """Greedy decoding (sampling off), timed as prefill (first token) + decode (the rest)."""
        if self.decoder is not None:
            return self.decoder.generate(inputs, max_new_tokens)
        marker = FirstTokenMark(self.clock)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        start = self.clock.mark()
        output = self.model.generate(
            **inputs.tensors,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
            streamer=marker,
            **self.generation_kwargs(),
        )
        end = self.clock.mark()
        sequences = output.sequences if hasattr(output, "sequences") else output
        new_ids = sequences[0, inputs.n_input_tokens :].tolist()
        first = marker.first if marker.first is not None else end
        timing = Timing(self.clock.elapsed_ms(start, first), self.clock.elapsed_ms(first, end), len(new_ids))
        return self.generation_from(new_ids, timing)

    def generation_from(self, new_ids: list[int], timing: Timing, **extra: Any) -> Generation:
        """The decoded answer of greedy new tokens (every decode path ends here)."""
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        return Generation(text=text.strip(), new_token_ids=new_ids, timing=timing, **extra)

    def continuation_positions(self, start: int, length: int) -> torch.Tensor:
        """Position ids of prompt tokens [start, start + length) fed after a (compressed) cache: their original
        indices. mRoPE families (the Qwen-Omni thinkers) continue text at index + the rope delta their context
        prefill stored, on all three axes, as their own forward does when it derives positions itself."""
        positions = torch.arange(start, start + length, device=self.device)[None]
        if self.mrope_section is None:
            return positions
        return (positions + self.rope_deltas())[None].expand(3, -1, -1)

    def rope_deltas(self) -> torch.Tensor | int:
        """The mRoPE offset of text after the audio, stored by the last prefill: on the thinker itself in
        transformers 5.2, on its inner model in later versions; 0 before any prefill."""
        for module in (self.model, getattr(self.model, "model", None)):
            delta = getattr(module, "rope_deltas", None)
            if delta is not None:
                return delta
        return 0

    def stop_token_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        return ids | ({self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set())

    @torch.inference_mode()
    def generate_from_cache(
        self, inputs: ModelInputs, max_new_tokens: int, context_len: int, prefill_context: Callable[..., Any]
    ) -> Generation:
        """Greedy decoding where the first `context_len` prompt tokens are prefilled by `prefill_context`
        (e.g. under a KV press), the rest of the prompt then goes through that cache at its original
        positions, and decoding continues at original positions. The cache may be shorter than the
        prompt, so positions are passed explicitly (as kvpress's own pipeline does)."""
        from transformers import DynamicCache

        ids = inputs.tensors["input_ids"]
        prompt_len = ids.shape[-1]
        context = dict(inputs.tensors, input_ids=ids[:, :context_len])
        if "attention_mask" in context:
            context["attention_mask"] = context["attention_mask"][:, :context_len]
        cache = DynamicCache()
        start = self.clock.mark()
        logits = prefill_context(context, cache).logits[:, -1]
        if context_len < prompt_len:
            logits = self.model(input_ids=ids[:, context_len:], past_key_values=cache, use_cache=True,
                                position_ids=self.continuation_positions(context_len, prompt_len - context_len)
                                ).logits[:, -1]
        stats_cache_len = [int(layer.keys.shape[-2]) for layer in cache.layers]
        token = logits.argmax(-1)
        first = self.clock.mark()
        new_ids, stops = [int(token)], self.stop_token_ids()
        while len(new_ids) < max_new_tokens and new_ids[-1] not in stops:
            position = prompt_len + len(new_ids) - 1
            logits = self.model(input_ids=token[:, None], past_key_values=cache, use_cache=True,
                                position_ids=self.continuation_positions(position, 1)).logits[:, -1]
            token = logits.argmax(-1)
            new_ids.append(int(token))
        end = self.clock.mark()
        timing = Timing(self.clock.elapsed_ms(start, first), self.clock.elapsed_ms(first, end), len(new_ids))
        return self.generation_from(new_ids, timing, cache=cache, prompt_cache_len=stats_cache_len)
