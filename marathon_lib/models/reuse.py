"""The audio encoder's calls: timed in every prefill (`EncoderClock`), and reused across the cases of a sweep
(opt-in: `--reuse-audio-encoder`, `EncoderOutputCache`).

Every (method, ratio) case of one model sees the same prepared inputs for a sample, and pruning and presses act
only inside the language model, so the encoder's output is the same in every case. Calls are matched exactly: same
non-tensor arguments, and tensors equal element for element (`torch.equal` against a kept copy; families reshape
features before the encoder, so identity alone would never match). A case whose encoder call was served from the
cache did not run the encoder: its record carries the encoder time measured when the output was computed (added to
its prefill_ms, so prefills stay comparable) and says so (`encoder_reused`, `timing.encoder_ms_reused`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..timing import Clock


def _tensor_args(args: tuple, kwargs: dict) -> tuple[list[torch.Tensor], tuple]:
    """The call's tensors (compared element-wise) and everything else (compared by value)."""
    tensors, other = [], []
    for key, value in [(None, a) for a in args] + sorted(kwargs.items()):
        if isinstance(value, torch.Tensor):
            tensors.append(value)
            other.append((key, "tensor"))
        else:
            other.append((key, repr(value)))
    return tensors, tuple(other)


class ForwardWrapper:
    """Replaces one module's forward by `_forward` (an instance attribute: nn.Module.__call__ dispatches to it, hooks
    included); `original` is the forward it wraps (possibly another wrapper's)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.original: Callable[..., Any] | None = None

    def install(self) -> Any:
        if self.original is not None:
            raise RuntimeError(f"{type(self).__name__} installed twice")
        self.original = self.module.forward
        self.module.forward = self._forward
        return self

    def remove(self) -> None:
        if self.original is not None:
            if getattr(self.original, "__self__", None) is self.module:
                del self.module.forward  # the class's forward again
            else:
                self.module.forward = self.original  # the wrapper below this one
            self.original = None

    def _forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


Span = tuple[object, object]  # (start, end) marks of models' Clock


class EncoderClock(ForwardWrapper):
    """Clock marks around every real computation of the audio encoder (CUDA events on GPU: no host sync inside
    the prefill), collected per generation between `begin()` and `reading()`. `carried` holds the spans of
    computations whose outputs an EncoderOutputCache served in this generation instead."""

    def __init__(self, module: nn.Module, clock: Clock) -> None:
        super().__init__(module)
        self.clock = clock
        self.spans: list[Span] = []
        self.carried: list[Span] = []

    def _forward(self, *args: Any, **kwargs: Any) -> Any:
        start = self.clock.mark()
        output = self.original(*args, **kwargs)
        self.spans.append((start, self.clock.mark()))
        return output

    def begin(self) -> None:
        self.spans, self.carried = [], []

    def reading(self) -> tuple[float, float | None]:
        """(ms of encoder computations in this generation, ms of reused ones when computed, None if none reused)."""
        measured = sum(self.clock.elapsed_ms(start, end) for start, end in self.spans)
        carried = sum(self.clock.elapsed_ms(start, end) for start, end in self.carried) if self.carried else None
        return measured, carried


class EncoderOutputCache(ForwardWrapper):
    """Bounded LRU around one encoder module's forward; `hits` counts calls served from the cache. Installed over an
    EncoderClock (`clock`), each entry keeps the spans its computation took, handed to the clock on every hit."""

    def __init__(self, module: nn.Module, size: int = 16, clock: EncoderClock | None = None) -> None:
        super().__init__(module)
        self.size, self.clock = size, clock
        self.entries: OrderedDict[int, tuple[tuple, list[torch.Tensor], Any, list[Span]]] = OrderedDict()
        self.hits = self.misses = 0
        self.bypass = False

    def remove(self) -> None:
        super().remove()
        self.entries.clear()

    @contextmanager
    def bypassed(self) -> Iterator[None]:
        """Calls go straight to the encoder, nothing is stored or served: a warm-up's cold encoder time must not
        become the time a sample's records carry."""
        self.bypass = True
        try:
            yield
        finally:
            self.bypass = False

    def _forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.bypass:
            return self.original(*args, **kwargs)
        tensors, other = _tensor_args(args, kwargs)
        signature = (other, tuple((t.shape, t.dtype, t.device) for t in tensors))
        # newest first: in sample-major order the match is the entry the previous case just stored
        for number, (kept_signature, kept, output, spans) in reversed(self.entries.items()):
            if kept_signature == signature and all(torch.equal(a, b) for a, b in zip(kept, tensors, strict=True)):
                self.entries.move_to_end(number)
                self.hits += 1
                if self.clock is not None:
                    self.clock.carried.extend(spans)
                return output
        self.misses += 1
        before = len(self.clock.spans) if self.clock is not None else 0
        output = self.original(*args, **kwargs)
        spans = self.clock.spans[before:] if self.clock is not None else []
        self.entries[self.misses] = (signature, [t.detach().clone() for t in tensors], output, spans)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return output
