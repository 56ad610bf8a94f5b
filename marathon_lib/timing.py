"""One timing definition for every model (docs/architecture.md, "Timing rules").

prefill = from inputs on the device to the first generated token (audio encoder included);
          split into encoder_ms (the audio encoder's own calls inside it) and llm_prefill_ms (the rest);
decode  = the remaining tokens from the same cache; tokens/s = decoded tokens / decode time.
On CUDA the marks are CUDA events recorded in stream order (no host sync per mark); on CPU they
are perf_counter readings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from transformers.generation.streamers import BaseStreamer


class Clock:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def mark(self) -> object:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            return event
        return time.perf_counter()

    def elapsed_ms(self, start: object, end: object) -> float:
        if self.cuda:
            end.synchronize()  # type: ignore[attr-defined]
            return float(start.elapsed_time(end))  # type: ignore[attr-defined]
        return (end - start) * 1000.0  # type: ignore[operator]


class FirstTokenMark(BaseStreamer):
    """`generate` calls put() once with the prompt, then once per new token: mark the first new token."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls = 0
        self.first: object | None = None

    def put(self, value: torch.Tensor) -> None:
        self.calls += 1
        if self.calls == 2:
            self.first = self.clock.mark()

    def end(self) -> None:
        pass


@dataclass(frozen=True)
class Timing:
    """prefill/decode where the adapter drives decoding itself; an API model measures only the end-to-end
    latency of its request, so its prefill/decode stay None rather than a made-up split."""

    prefill_ms: float | None
    decode_ms: float | None
    new_tokens: int | None
    latency_ms: float | None = None  # end to end; prefill + decode when both are measured
    compile_ms: float | None = None  # static decode: first use of a cache bucket compiles; excluded from decode_ms
    encoder_ms: float | None = None  # the audio encoder's share of prefill_ms; None where it is not measured
    encoder_ms_reused: bool = False  # encoder output reused: encoder_ms was measured when it was computed

    def __post_init__(self) -> None:
        if self.latency_ms is None and self.prefill_ms is not None and self.decode_ms is not None:
            object.__setattr__(self, "latency_ms", self.prefill_ms + self.decode_ms)

    @classmethod
    def end_to_end(cls, latency_ms: float, new_tokens: int | None) -> Timing:
        """Only the whole request was timed (API models): no prefill/decode split."""
        return cls(None, None, new_tokens, latency_ms)

    def with_encoder(self, measured_ms: float, carried_ms: float | None) -> Timing:
        """This generation's encoder split: `measured_ms` spent in encoder calls inside the timed prefill, and
        `carried_ms` the time an encoder output reused here took when it was computed (None: nothing reused). The
        carried time is added to prefill_ms (and latency), so a reused record's prefill stays comparable with a
        full one; llm_prefill_ms (prefill - encoder) is what pruning can cut."""
        if self.prefill_ms is None:
            return self
        carried = carried_ms or 0.0
        return replace(self, prefill_ms=self.prefill_ms + carried,
                       latency_ms=None if self.latency_ms is None else self.latency_ms + carried,
                       encoder_ms=measured_ms + carried, encoder_ms_reused=carried_ms is not None)

    @property
    def llm_prefill_ms(self) -> float | None:
        if self.prefill_ms is None or self.encoder_ms is None:
            return None
        return self.prefill_ms - self.encoder_ms

    @property
    def decode_tokens_per_s(self) -> float | None:
        if self.decode_ms is None or self.new_tokens is None:
            return None
        decoded = self.new_tokens - 1  # the first token belongs to the prefill
        return round(decoded / (self.decode_ms / 1000.0), 3) if decoded > 0 and self.decode_ms > 0 else None

    def as_dict(self) -> dict:
        return {
            "prefill_ms": _round(self.prefill_ms),
            "decode_ms": _round(self.decode_ms),
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "new_tokens": self.new_tokens,
            "latency_ms": _round(self.latency_ms),
            "compile_ms": _round(self.compile_ms),
            "encoder_ms": _round(self.encoder_ms),
            "llm_prefill_ms": _round(self.llm_prefill_ms),
            "encoder_ms_reused": self.encoder_ms_reused,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
