"""Every bad option value is refused with a message naming the option, before data or models exist."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from marathon_lib.errors import ConfigError
from marathon_lib.options import SUITE_OPTIONS, RunOptions, build_options
from marathon_lib.pruning import PRUNERS

GOOD = dict(results_dir="results/x", device="cpu")  # every other option at the table's default


def test_defaults_are_valid() -> None:
    options = build_options(**GOOD)
    assert options.tasks[0] == "LibriSpeech" and len(options.tasks) == 10
    assert options.dtype == "float32" and options.prune_ratios == [0.0] and options.presses == []
    assert options.controls == []  # controls are off by default
    assert build_options(**GOOD | {"controls": "no_audio"}).controls == ["no_audio"]


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
    ({"controls": "no_audio,nope"}, ["--controls", "nope", "no_audio"]),
    ({"pruners": "no_audio"}, ["--pruners", "no_audio"]),  # a control, not a pruner
    ({"prune_layer": 0}, ["--prune-layer", "0"]),
    ({"order": "samples"}, ["--order", "samples", "case"]),
    ({"sample_limit": -1}, ["--sample-limit", "-1"]),
    ({"max_new_tokens": -1}, ["--max-new-tokens", "-1"]),
    ({"dtype": "int8"}, ["--dtype", "int8"]),
    ({"attn_implementation": "magic"}, ["--attn-impl", "magic"]),
    pytest.param({"attn_implementation": "flash_attention_2"}, ["--attn-impl", "flash_attention_2", "flash-attn"],
                 marks=pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None,
                                          reason="flash-attn is installed")),
    pytest.param({"device": "cuda"}, ["--device", "CUDA is not available"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ({"device": "tpu"}, ["--device", "tpu", "not a device torch knows"]),
    ({"device": "cuda:x"}, ["--device", "cuda:x"]),
    ({"device": "meta"}, ["--device", "meta"]),
    ({"prune_ratio": "0.5,,0.7"}, ["--prune-ratio", "empty item"]),
    ({"prune_ratio": "0.5,"}, ["--prune-ratio", "empty item"]),
    ({"tasks": "TAU,,HAD"}, ["--tasks", "empty item"]),
    ({"pruners": "base,,dart", "prune_ratio": "0.5"}, ["--pruners", "empty item"]),
    ({"pruners": "base", "prune_ratio": "0.5"}, ["--prune-ratio 0.5", "no case uses it", "--pruners"]),
    ({"pruners": "", "prune_ratio": "0.3,0.7"}, ["--prune-ratio 0.3,0.7", "no case uses it"]),
    ({"compression_ratio": "0.25"}, ["--compression-ratio 0.25", "no case uses it", "--presses"]),
    ({"results_dir": __file__}, ["--results-dir", "is a file"]),
    ({"results_dir": f"{__file__}/run1"}, ["--results-dir", "which is a file"]),
    ({"baseline": "/nonexistent/baseline.json"}, ["--baseline", "/nonexistent/baseline.json"]),
    ({"data_root": "/nonexistent/data"}, ["--data-root", "/nonexistent/data"]),
    ({"synthetic_seconds": 0.0}, ["--synthetic-seconds"]),
    ({"shard": "3/3"}, ["--shard", "3/3"]),
    ({"presses": "knorm,squash"}, ["press", "squash"]),
    ({"presses": "knorm", "compression_ratio": "1.0"}, ["--compression-ratio", "1.0"]),
    ({"press_scope": "text"}, ["--press-scope", "text"]),
    ({"press_mode": "eager"}, ["--press-mode", "eager"]),
    ({"protocol": "balanced"}, ["--protocol", "balanced", "full", "scripts"]),
    ({"data_root": "hf://AudioMarathon"}, ["--data-root", "hf://owner/name"]),
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


def test_a_ratio_without_pruners_prunes_with_every_pruner() -> None:
    """The card's `--prune-ratio 0.5`: base (the reference) plus every registered pruner at every ratio."""
    options = build_options(**GOOD, prune_ratio="0.5")
    assert options.pruners == ["base", *PRUNERS.names()] and options.prune_ratios == [0.5]
    assert build_options(**GOOD, prune_ratio="0.3,0.7").pruners == ["base", *PRUNERS.names()]
    # ratio 0 drops nothing: it is the base case, alone
    assert build_options(**GOOD, prune_ratio="0.0").pruners == ["base"]
    assert build_options(**GOOD, pruners="base", prune_ratio="0").pruners == ["base"]
    # pruners given: exactly those
    assert build_options(**GOOD, pruners="dart", prune_ratio="0.5").pruners == ["dart"]
    assert build_options(**GOOD, pruners="base,dart", prune_ratio="0,0.5").prune_ratios == [0.0, 0.5]


@pytest.mark.parametrize(("option", "given", "kept"), [
    ("tasks", "TAU,HAD,TAU", ["TAU", "HAD"]),
    ("prune_ratio", "0.5,0.50,0.7", [0.5, 0.7]),
    ("models", "tiny-qwen2.5-omni, tiny-qwen2.5-omni", ["tiny-qwen2.5-omni"]),
    ("pruners", "dart,dart,frame", ["dart", "frame"]),
])
def test_repeated_items_run_once(option: str, given: str, kept: list) -> None:
    extra = {"prune_ratio": "0.5"} if option == "pruners" else {}
    options = build_options(**(GOOD | extra | {option: given}))
    field = {"prune_ratio": "prune_ratios"}.get(option, option)
    assert getattr(options, field) == kept


def test_unwritable_results_dir_is_refused(tmp_path: Path) -> None:
    """A folder the run cannot write in is refused up front (probed with a real file, so root is caught too)."""
    if os.geteuid() == 0:
        target = Path("/proc/marathon-results")  # not writable even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "run1"
    with pytest.raises(ConfigError, match="--results-dir.*cannot write"):
        build_options(**(GOOD | {"results_dir": str(target)}))
    assert not target.exists()


def test_existing_and_new_results_dirs_are_fine(tmp_path: Path) -> None:
    existing = tmp_path / "run1"
    existing.mkdir()
    assert build_options(**(GOOD | {"results_dir": str(existing)})).results_dir == existing
    deep = tmp_path / "a" / "b" / "run2"
    assert build_options(**(GOOD | {"results_dir": str(deep)})).results_dir == deep
    assert not deep.exists() and not list(tmp_path.glob(".marathon-write-probe-*"))  # the probe leaves nothing


def test_one_option_table() -> None:
    """Every option of the table is a RunOptions field (or the raw form of one); nothing is declared twice."""
    fields = set(RunOptions.__dataclass_fields__)
    plural = {"prune_ratio": "prune_ratios", "compression_ratio": "compression_ratios"}
    names = [option.name for option in SUITE_OPTIONS]
    assert len(names) == len(set(names)) and len({o.flag for o in SUITE_OPTIONS}) == len(names)
    assert {plural.get(name, name) for name in names} == fields
    with pytest.raises(TypeError, match="unknown option"):
        build_options(**GOOD, prune_ratios="0.5")


@pytest.mark.parametrize("command", [["efficiency"], ["decode-bench"], ["compare", "new", "base"], ["fixtures"],
                                     ["sweep-bench"]])
def test_cli_spells_options_as_pytest_does(command: list[str]) -> None:
    """`marathon` subcommands take the table's spelling (--prune-ratio, --prune-layer, ...), never their own."""
    from marathon_lib.cli import build_parser

    parser = build_parser()
    shared = {"efficiency": ["--prune-ratio", "0.3,0.7", "--prune-layer", "3", "--dtype", "bfloat16"],
              "decode-bench": ["--prune-ratio", "0.3,0.7", "--prune-layer", "3", "--dtype", "bfloat16"],
              "compare": ["--max-score-drop", "2", "--max-slowdown", "1.2", "--min-retained", "90"],
              "fixtures": ["--synthetic-seconds", "4", "--synthetic-samples", "2", "--seed", "7"],
              "sweep-bench": ["--prune-ratio", "0.3,0.7", "--synthetic-samples", "40", "--synthetic-seconds", "30",
                              "--decode", "compiled"]}[command[0]]
    args = parser.parse_args([*command, *shared])
    for flag, value in zip(shared[::2], shared[1::2]):
        option = next(o for o in SUITE_OPTIONS if o.flag == flag)
        assert getattr(args, option.name) == (option.type(value) if option.type else value)
    for old in ("--ratios", "--prune-ratios", "--layer", "--seconds", "--samples"):
        with pytest.raises(SystemExit):
            parser.parse_args([*command, old, "1"])


def test_the_default_prune_layer_has_one_home() -> None:
    """CaseSpec, `marathon efficiency` and `marathon decode-bench` take the table's default K, not their own."""
    import inspect

    from marathon_lib.decode_bench import run_decode_bench
    from marathon_lib.efficiency import run_efficiency
    from marathon_lib.schema import DEFAULT_PRUNE_LAYER, CaseSpec

    assert CaseSpec("TAU", "m").prune_layer == DEFAULT_PRUNE_LAYER
    for function in (run_efficiency, run_decode_bench):
        assert inspect.signature(function).parameters["layer"].default == DEFAULT_PRUNE_LAYER
    assert next(o for o in SUITE_OPTIONS if o.name == "prune_layer").default == DEFAULT_PRUNE_LAYER


def test_protocol_is_recorded() -> None:
    assert build_options(**GOOD).protocol == "full"
    options = build_options(**GOOD, protocol="scripts")
    assert options.protocol == "scripts" and options.as_manifest()["protocol"] == "scripts"
