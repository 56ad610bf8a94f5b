"""Tiny random-weight checkpoints of real architectures, built offline and loaded like hub checkpoints.

Each family's `build_tiny(dest)` writes a complete checkpoint directory (config, weights, tokenizer,
feature extractor, chat template) with `save_pretrained`; the adapter then loads it through the very
same `from_pretrained` path a real checkpoint takes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..paths import build_once

TINY_VERSION = "2"  # bump when any tiny builder changes what it writes

_STANDARD = ("bos_token", "eos_token", "pad_token", "unk_token")


def train_tokenizer(
    named_special: Mapping[str, str],
    corpus: Sequence[str],
    extra_special: Sequence[str] = (),
    vocab_size: int = 512,
    tail_special: Sequence[str] = (),
) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained in-process; named specials become attributes such as `tok.audio_token_id`."""
    specials = [s for s in dict.fromkeys([*named_special.values(), *extra_special]) if s not in tail_special]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    if tail_special:  # fixed ids right after the trained vocabulary (layouts that reserve id ranges)
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tail_special])
    standard = {k: v for k, v in named_special.items() if k in _STANDARD}
    extra = {k: v for k, v in named_special.items() if k not in _STANDARD}
    return PreTrainedTokenizerFast(tokenizer_object=backend, **standard, extra_special_tokens=extra)


def tokenizer_corpus() -> list[str]:
    """Text the tiny tokenizers learn from: the benchmark's task sentences and answer vocabulary."""
    from ..tasks import TASKS

    lines = [TASKS.get(name).instruction for name in TASKS]
    lines.append("Listen to this audio. Respond with only the letter of the correct option (A, B, C, or D).")
    lines.append("The answer is A B C D E. Spoken Content: real fake male female airport metro park bus tram.")
    return lines * 4


def ensure_tiny_checkpoint(family: str, build: Callable[[Path], None], cache_root: Path, recipe: str = "") -> Path:
    """Build once per (family, builder version, transformers version[, recipe]); safe under concurrent xdist
    workers. `recipe` content-addresses a trained build (models.canary): any change to it is a new checkpoint."""
    identity = f"{family}|{TINY_VERSION}|{transformers.__version__}" + (f"|{recipe}" if recipe else "")
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]

    def build_checkpoint(staging: Path) -> str:
        build(staging)
        return f"{family} {TINY_VERSION} transformers {transformers.__version__}\n"

    return build_once(cache_root / f"tiny-{family}-{key}", "COMPLETE", build_checkpoint)


def save_tiny_model(model_class: type, config: Any, dest: Path, eos: int | list[int], pad: int) -> None:
    """Seeded random weights from `config`, with the tiny tokenizer's stop and pad ids in the generation config."""
    torch.manual_seed(0)
    model = model_class(config)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.save_pretrained(dest)
