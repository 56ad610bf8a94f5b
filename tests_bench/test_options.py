"""Every bad option value is refused with a message naming the option, before data or models exist."""

from __future__ import annotations

import pytest
import torch

from marathon_lib.errors import ConfigError
from marathon_lib.options import build_options

GOOD = dict(models="tiny-qwen2.5-omni", tasks=None, pruners="base", prune_ratio="0.0", prune_layer=2,
            sample_limit=0, data_root=None, results_dir="results/x", device="cpu", dtype="auto",
            attn_implementation="sdpa", seed=0, synthetic_seconds=60.0, synthetic_samples=3)


def test_defaults_are_valid() -> None:
    options = build_options(**GOOD)
    assert options.tasks[0] == "LibriSpeech" and len(options.tasks) == 10
    assert options.dtype == "float32" and options.prune_ratios == [0.0] and options.presses == []


@pytest.mark.parametrize(("change", "words"), [
    ({"prune_ratio": "1.2"}, ["--prune-ratio", "1.2"]),
    ({"prune_ratio": "-0.1"}, ["--prune-ratio"]),
    ({"prune_ratio": "half"}, ["--prune-ratio", "half"]),
    ({"prune_ratio": ""}, ["--prune-ratio"]),
    ({"tasks": "TAU,NOPE"}, ["task", "NOPE"]),
    ({"tasks": "tau"}, ["task", "tau", "TAU"]),  # names are case-sensitive; the message suggests the right one
    ({"models": "nope"}, ["model", "nope"]),
    ({"models": ""}, ["--models"]),
    ({"pruners": "base,nope"}, ["--pruners", "nope"]),
    ({"prune_layer": 0}, ["--prune-layer", "0"]),
    ({"sample_limit": -1}, ["--sample-limit", "-1"]),
    ({"max_new_tokens": -1}, ["--max-new-tokens", "-1"]),
    ({"dtype": "int8"}, ["--dtype", "int8"]),
    ({"attn_implementation": "magic"}, ["--attn-impl", "magic"]),
    pytest.param({"device": "cuda"}, ["--device"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ({"data_root": "/nonexistent/data"}, ["--data-root", "/nonexistent/data"]),
    ({"synthetic_seconds": 0.0}, ["--synthetic-seconds"]),
    ({"shard": "3/3"}, ["--shard", "3/3"]),
    ({"presses": "knorm,squash"}, ["press", "squash"]),
    ({"compression_ratio": "1.0"}, ["--compression-ratio", "1.0"]),
    ({"press_scope": "text"}, ["--press-scope", "text"]),
    ({"press_mode": "eager"}, ["--press-mode", "eager"]),
])
def test_bad_value_names_the_option(change: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        build_options(**(GOOD | change))
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


@pytest.mark.parametrize(("given", "kept"), [(0, None), (64, 64)])
def test_max_new_tokens_is_a_recorded_cap(given: int, kept: int | None) -> None:
    """0 means each task's own budget (None); a cap is kept and lands in the run manifest."""
    options = build_options(**GOOD, max_new_tokens=given)
    assert options.max_new_tokens == kept
    assert options.as_manifest()["max_new_tokens"] == kept
