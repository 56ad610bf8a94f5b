"""What flows between a model adapter and the runner: audio spans located in the prompt, prepared inputs,
a timed generation, and the bounded cache of prepared inputs shared by every case of a model."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..timing import Timing


@dataclass(frozen=True)
class AudioSpan:
    """A contiguous run of audio placeholder tokens in input_ids: positions [start, start + length)."""

    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


def span_positions(spans: tuple[AudioSpan, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    """Sorted absolute positions of every audio token (all chunks' spans together)."""
    if not spans:
        return torch.empty(0, dtype=torch.long, device=device)
    return torch.cat([torch.arange(s.start, s.end, device=device) for s in spans])


def find_audio_spans(input_ids: torch.Tensor, audio_token_id: int) -> tuple[AudioSpan, ...]:
    """Every family scatters audio embeddings at `input_ids == audio_token_id`; one run per clip."""
    positions = (input_ids.reshape(-1) == audio_token_id).nonzero().flatten().tolist()
    spans: list[AudioSpan] = []
    for pos in positions:
        if spans and pos == spans[-1].end:
            spans[-1] = AudioSpan(spans[-1].start, spans[-1].length + 1)
        else:
            spans.append(AudioSpan(pos, 1))
    return tuple(spans)


@dataclass
class ModelInputs:
    tensors: dict[str, torch.Tensor]
    spans: tuple[AudioSpan, ...]
    audio_seconds: float
    audio_chunks: int = 1
    notes: dict[str, Any] = field(default_factory=dict)
    # Audio tokens that carry audio content, where the family's placeholder run also holds padding (Voxtral pads
    # every clip to a multiple of 30 s); None = every placeholder is content. The spans stay the real runs.
    content_audio_tokens: int | None = None

    @property
    def n_input_tokens(self) -> int:
        return int(self.tensors["input_ids"].shape[-1])

    @property
    def n_placeholder_tokens(self) -> int:
        """Audio placeholder tokens in input_ids (what the pruning span covers)."""
        return sum(span.length for span in self.spans)

    @property
    def n_audio_tokens(self) -> int:
        """Audio tokens reported as `tokens.audio`: the content tokens (padding placeholders excluded)."""
        return self.n_placeholder_tokens if self.content_audio_tokens is None else self.content_audio_tokens


@dataclass(frozen=True)
class Generation:
    text: str
    new_token_ids: list[int]
    timing: Timing
    cache: Any = None  # the KV cache, when the adapter drove decoding itself
    prompt_cache_len: list[int] | None = None  # entries per layer right after the prompt
    api: dict[str, Any] | None = None  # what an API reported (model version, token usage, attempts); no secrets


def split_audio(samples: np.ndarray, sampling_rate: int, max_seconds: float | None) -> list[np.ndarray]:
    """Split audio longer than the model's window into equal consecutive chunks (never truncate)."""
    if max_seconds is None or len(samples) <= max_seconds * sampling_rate:
        return [samples]
    n_chunks = math.ceil(len(samples) / (max_seconds * sampling_rate))
    return list(np.array_split(samples, n_chunks))


def check_feature_coverage(chunks: list[np.ndarray], valid_frames: list[int], hop: int, sampling_rate: int) -> None:
    """Raise DataError when a feature extractor kept fewer frames than a chunk has (silent truncation)."""
    for index, (chunk, frames) in enumerate(zip(chunks, valid_frames, strict=True)):
        covered = int(frames) * hop
        if covered + hop < len(chunk):
            raise DataError(
                f"audio chunk {index} ({len(chunk) / sampling_rate:.1f} s) was truncated by the feature "
                f"extractor to {covered / sampling_rate:.1f} s"
            )


class InputsCache:
    """Bounded LRU of prepared inputs per (audio hash, prompt hash): a sweep over methods and ratios decodes,
    resamples and feature-extracts each sample once per model, not once per case."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.entries: OrderedDict[tuple, ModelInputs] = OrderedDict()

    def get_or_build(self, key: tuple, build: Callable[[], ModelInputs]) -> tuple[ModelInputs, bool]:
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key], True
        value = build()
        self.entries[key] = value
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return value, False
