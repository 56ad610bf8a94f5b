"""Building real processor classes without torchvision (which must never be installed here, see feasibility.md).

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
