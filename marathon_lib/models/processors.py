"""Building real processor classes without torchvision (which must never be installed here, see
docs/models.md).

Audio-only benchmarks never pass images or videos, but the multimodal processors type-check an image
and a video processor. We hand them minimal stand-ins and load every *audio/text* component (tokenizer,
feature extractor, chat template) from the checkpoint exactly as `AutoProcessor` would.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import transformers
from transformers import AutoTokenizer
from transformers.image_processing_utils import BaseImageProcessor
from transformers.utils import cached_file


@cache
def stub_video_processor_class() -> type:
    from transformers import video_processing_utils as vpu

    from transformers import processing_utils

    base = getattr(vpu, "VideoProcessorMixin", None) or vpu.BaseVideoProcessor  # 5.2x / 5.2 names
    # Without torchvision the top-level name is a dummy; the processors' class check looks it up on the
    # transformers module object that processing_utils imported (not always `sys.modules["transformers"]`).
    for module in {id(m): m for m in (transformers, processing_utils.transformers_module)}.values():
        if getattr(module, base.__name__, None) is not base:
            setattr(module, base.__name__, base)

    class StubVideoProcessor(base):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            self.temporal_patch_size, self.merge_size, self.patch_size = 2, 2, 14

    return StubVideoProcessor


class StubImageProcessor(BaseImageProcessor):
    def __init__(self, **kwargs: Any) -> None:
        self.merge_size, self.patch_size, self.temporal_patch_size = 2, 14, 2


def load_chat_template(checkpoint: str) -> str | None:
    """The processor's chat template as saved by `save_pretrained` (jinja file, or the legacy json)."""
    path = cached_file(checkpoint, "chat_template.jinja", _raise_exceptions_for_missing_entries=False)
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    path = cached_file(checkpoint, "chat_template.json", _raise_exceptions_for_missing_entries=False)
    if path:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)["chat_template"]
    return None


def load_processor(processor_cls: type, checkpoint: str, feature_extractor_cls: type, **extra: Any) -> Any:
    """Assemble `processor_cls` from the checkpoint's own tokenizer, feature extractor and chat template."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    feature_extractor = feature_extractor_cls.from_pretrained(checkpoint)
    template = load_chat_template(checkpoint) or getattr(tokenizer, "chat_template", None)
    return processor_cls(feature_extractor=feature_extractor, tokenizer=tokenizer, chat_template=template, **extra)


# --- Granite-speech: torchaudio.transforms.MelSpectrogram without torchaudio ---------------------------
class MelSpectrogram:
    """Stand-in for `torchaudio.transforms.MelSpectrogram` with torchaudio's defaults as Granite's extractor uses
    them: hann window (periodic) of `win_length` centred in `n_fft`, center=True with reflect padding, power 2,
    HTK mel scale without filter normalisation, f_min 0, f_max sr/2. Returns (..., n_mels, frames)."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, win_length: int | None = None,
                 hop_length: int | None = None, n_mels: int = 128, **kwargs: Any) -> None:
        import torch
        from transformers.audio_utils import mel_filter_bank

        unsupported = {k: v for k, v in kwargs.items() if v is not None}
        if unsupported:
            raise TypeError(f"MelSpectrogram shim: unsupported arguments {sorted(unsupported)}")
        self.n_fft, self.win_length = n_fft, win_length or n_fft
        self.hop_length = hop_length or self.win_length // 2
        self.window = torch.hann_window(self.win_length)
        self.filters = torch.tensor(
            mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
                            max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm=None, mel_scale="htk"),
            dtype=torch.float32,
        )  # (n_freqs, n_mels)

    def to(self, device: Any) -> "MelSpectrogram":
        self.window, self.filters = self.window.to(device), self.filters.to(device)
        return self

    def __call__(self, waveform: Any) -> Any:
        import torch

        spec = torch.stft(waveform, self.n_fft, self.hop_length, self.win_length, self.window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=True).abs() ** 2
        return (spec.transpose(-1, -2) @ self.filters).transpose(-1, -2)


def install_granite_mel_shim() -> bool:
    """Make `GraniteSpeechFeatureExtractor` constructible without torchaudio (which must not be installed here).
    A no-op where torchaudio imports; returns whether the shim is in use."""
    import types

    from transformers.models.granite_speech import feature_extraction_granite_speech as gfe

    if getattr(gfe, "_marathon_mel_shim", False):
        return True
    try:
        import torchaudio  # noqa: F401

        return False
    except Exception:  # absent, or a CUDA-linked build that cannot load
        pass
    gfe.torchaudio = types.SimpleNamespace(transforms=types.SimpleNamespace(MelSpectrogram=MelSpectrogram))
    original = gfe.requires_backends

    def requires_backends(obj: Any, backends: Any) -> None:
        names = [backends] if isinstance(backends, str) else list(backends)
        rest = [b for b in names if b != "torchaudio"]
        if rest:
            original(obj, rest)

    gfe.requires_backends = requires_backends
    gfe._marathon_mel_shim = True
    return True
