"""Audio-token pruning on the real tiny Qwen2.5-Omni thinker (sdpa and eager, all four pruners).

What is proved here (docs/models.md, "Pruning at layer K", is the method):
* ratio 0 is bit-identical to running without a hook;
* at K=2, r=0.5 the KV cache holds [L, L, L', L'] after prefill and grows by one per decode step, and the
  logits change;
* the pruned prefill equals a reference computed by hand from the unpruned hidden state entering layer K,
  the kept positions and their original mRoPE tables (layers K..N-1 called directly);
* decoding on the pruned cache equals recomputing prompt + generated tokens with the same drop;
* FastV's importance is the real eager attention of the last query at layer K-1;
* random pruning is seeded per (seed, sample id); the hook leaves nothing behind; bad values fail fast;
* one pytest session sweeps base + pruners x ratios, keeping audio - floor(audio * r) tokens per case.

The command-line checks run pytest in subprocesses; they are started in the background when this module
starts (their tests are last), so they overlap the in-process model work.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from marathon_lib.models import load_model, resolve_model
from marathon_lib.models.inputs import span_positions
from marathon_lib.paths import cache_root
from marathon_lib.pruning import PRUNERS, FastVPruner, PruneHook
from marathon_lib.pruning.selectors import select_top_scores
from marathon_lib.runner import CaseRunner, sample_generator
from marathon_lib.schema import CaseSpec
from marathon_lib.textstack import find_text_stack

ROOT = Path(__file__).resolve().parents[2]
ATTNS = ("sdpa", "eager")
PRUNER_NAMES = ("random", "frame", "fast_v", "dart")
K = 2
RATIO = 0.5
NEW_TOKENS = 4
AUDIO_SECONDS = 10.0  # 250 audio tokens
ATOL = 1e-4

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------------
# command-line runs, started in the background as soon as the module starts
# ------------------------------------------------------------------------------------------------------
SWEEP_RATIOS = (0.3, 0.7)
CLI_RUNS: dict[str, list[str]] = {
    "test_cli_prune_layer_beyond_the_model_fails_with_the_range": [
        "--prune-layer", "9", "--pruners", "dart", "-k", "TAU", "--synthetic-seconds", "4", "--synthetic-samples", "1",
    ],
    "test_cli_sweep_runs_base_once_and_every_ratio_per_pruner": [
        "--tasks", "TAU", "--pruners", "base,dart,random", "--prune-ratio", ",".join(map(str, SWEEP_RATIOS)),
        "--synthetic-seconds", "6", "--synthetic-samples", "3",
    ],
}


@dataclass
class CliRun:
    args: list[str]
    results: Path
    log: Path
    process: subprocess.Popen | None = None
    output: str | None = None
    returncode: int | None = None

    def start(self) -> None:
        env = dict(os.environ)
        for name in ("MARATHON_RESULTS_DIR", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS"):
            env.pop(name, None)
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env["OMP_NUM_THREADS"] = "1"  # the tiny model is fastest on one thread; these runs overlap others
        command = [sys.executable, "-m", "pytest", "tests_bench/test_cases.py", *self.args,
                   "--results-dir", str(self.results), "-q"]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def finish(self, timeout: float = 420) -> "CliRun":
        if self.process is None:
            self.start()
        if self.returncode is None:
            try:
                self.returncode = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
            self.output = self.log.read_text(errors="replace")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module", autouse=True)
def cli_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, CliRun]]:
    runs: dict[str, CliRun] = {}
    for name, args in CLI_RUNS.items():
        base = tmp_path_factory.mktemp(name.removeprefix("test_cli_")[:40])
        runs[name] = CliRun(args, base / "results", base / "pytest.log")
    # Start the selected ones now (not under xdist, where each worker would start all of them).
    if "PYTEST_XDIST_WORKER" not in os.environ:
        selected = {item.originalname for item in request.session.items
                    if getattr(item, "module", None) is request.module}
        for name in CLI_RUNS:
            if name in selected:
                runs[name].start()
    yield runs
    for run in runs.values():
        run.stop()


# ------------------------------------------------------------------------------------------------------
# the tiny model, its prompt, and cached runs
# ------------------------------------------------------------------------------------------------------
def cache_lengths(cache: Any) -> list[int]:
    return [0 if layer.keys is None else int(layer.keys.shape[-2]) for layer in cache.layers]


def output_cache(out: Any) -> Any:
    """The returned KV cache (`cache` in transformers 5.2x outputs, `past_key_values` before)."""
    cache = getattr(out, "cache", None)
    return out.past_key_values if cache is None else cache


class CacheWatcher:
    """Forward hooks (after each layer ran) recording that layer's cache length at every call."""

    def __init__(self, layers: torch.nn.ModuleList) -> None:
        self.calls: list[list[int]] = [[] for _ in layers]
        self.handles = [layer.register_forward_hook(self._make(i), with_kwargs=True) for i, layer in enumerate(layers)]

    def _make(self, index: int):
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            self.calls[index].append(int(cache.layers[index].keys.shape[-2]))
        return hook

    def per_step(self) -> list[list[int]]:
        """[step][layer] cache length after the step (step 0 = prefill)."""
        return [list(step) for step in zip(*self.calls)]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@dataclass
class Run:
    sequences: torch.Tensor
    logits: list[torch.Tensor]
    cache: list[int]
    steps: list[list[int]]
    keep: torch.Tensor | None = None
    kept_audio: torch.Tensor | None = None


@dataclass
class Harness:
    model: Any
    inputs: Any
    positions: torch.Tensor
    runs: dict[tuple, Any] = field(default_factory=dict)

    @property
    def stack(self):
        return find_text_stack(self.model.model)

    @property
    def prompt_len(self) -> int:
        return self.inputs.n_input_tokens

    def generate_kwargs(self) -> dict[str, Any]:
        tok = self.model.tokenizer
        return dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, temperature=None,
                    top_p=None, top_k=None, output_logits=True, return_dict_in_generate=True,
                    pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)

    def _generate(self, hook: PruneHook | None, generator: torch.Generator | None) -> Run:
        watcher = CacheWatcher(self.stack.layers)  # registered after the prune hook's pre-hooks
        try:
            with torch.inference_mode():
                if hook is None:
                    out = self.model.model.generate(**self.inputs.tensors, **self.generate_kwargs())
                    keep = kept_audio = None
                else:
                    with hook.armed(self.positions, generator):
                        out = self.model.model.generate(**self.inputs.tensors, **self.generate_kwargs())
                        keep = hook.keep.clone()
                    kept_audio = hook.last_kept_audio.clone()
        finally:
            watcher.remove()
        return Run(out.sequences.clone(), [t.clone() for t in out.logits], cache_lengths(output_cache(out)),
                   watcher.per_step(), keep, kept_audio)

    def base(self) -> Run:
        if "base" not in self.runs:
            self.runs["base"] = self._generate(None, None)
        return self.runs["base"]

    def pruned(self, name: str, ratio: float, layer: int = K) -> Run:
        key = ("pruned", name, ratio, layer)
        if key not in self.runs:
            with PruneHook(self.stack, layer, PRUNERS.get(name), ratio) as hook:
                self.runs[key] = self._generate(hook, torch.Generator().manual_seed(1234))
        return self.runs[key]

    def reference_pass(self) -> SimpleNamespace:
        """One unhooked prefill: hidden states (+ attentions on eager), the rotary tables layer 0 received,
        the input of layer K, and the position ids handed to the language model."""
        if "reference" in self.runs:
            return self.runs["reference"]
        seen: dict[str, Any] = {}
        lm = self.language_model()

        def on_lm(module, args, kwargs):
            seen["position_ids"] = kwargs.get("position_ids")

        def on_layer0(module, args, kwargs):
            seen["rope"] = tuple(t.clone() for t in kwargs["position_embeddings"])

        def on_layer_k(module, args, kwargs):
            seen["hidden_k"] = (args[0] if args else kwargs["hidden_states"]).clone()

        handles = [lm.register_forward_pre_hook(on_lm, with_kwargs=True),
                   self.stack.layers[0].register_forward_pre_hook(on_layer0, with_kwargs=True),
                   self.stack.layers[K].register_forward_pre_hook(on_layer_k, with_kwargs=True)]
        extra = {"output_attentions": True} if self.model.attn_implementation == "eager" else {}
        try:
            with torch.inference_mode():
                out = self.model.model(**self.inputs.tensors, output_hidden_states=True, **extra)
        finally:
            for handle in handles:
                handle.remove()
        self.runs["reference"] = SimpleNamespace(out=out, **seen)
        return self.runs["reference"]

    def language_model(self) -> torch.nn.Module:
        for module in self.model.model.modules():
            if getattr(module, "layers", None) is self.stack.layers:
                return module
        raise AssertionError("no language model owns the decoder stack")

    def base_prefill(self) -> torch.Tensor:
        if "base_prefill" not in self.runs:
            self.runs["base_prefill"] = self.prefill_logits()
        return self.runs["base_prefill"]

    def prefill_logits(self, hook: PruneHook | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.inference_mode():
            if hook is None:
                return self.model.model(**self.inputs.tensors).logits[0, -1].clone()
            with hook.armed(self.positions, generator):
                return self.model.model(**self.inputs.tensors).logits[0, -1].clone()



@pytest.fixture(scope="module")
def harnesses() -> dict[str, Harness]:
    models = {}
    for attn in ATTNS:
        torch.manual_seed(0)
        models[attn] = load_model(resolve_model("tiny-qwen2.5-omni"), cache_root=cache_root() / "models",
                                  device="cpu", dtype="float32", attn_implementation=attn)
    audio = np.random.default_rng(7).standard_normal(int(16000 * AUDIO_SECONDS)).astype(np.float32) * 0.1
    inputs = models["sdpa"].prepare(audio, "What sound is this?")  # same processor for both: prepare once
    assert inputs.n_audio_tokens == 250
    positions = span_positions(inputs.spans)
    return {attn: Harness(model, inputs, positions) for attn, model in models.items()}


@pytest.fixture(params=ATTNS)
def h(request: pytest.FixtureRequest, harnesses: dict[str, Harness]) -> Harness:
    return harnesses[request.param]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


# ------------------------------------------------------------------------------------------------------
# ratio 0 is the identity
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PRUNER_NAMES)
def test_ratio_zero_is_bit_identical_to_no_hook(h: Harness, name: str) -> None:
    base, pruned = h.base(), h.pruned(name, 0.0)
    assert torch.equal(pruned.sequences, base.sequences)
    assert len(pruned.logits) == len(base.logits) == NEW_TOKENS
    for step, (got, want) in enumerate(zip(pruned.logits, base.logits)):
        assert torch.equal(got, want), f"step {step}: max diff {max_diff(got, want)}"
    assert torch.equal(pruned.kept_audio, h.positions)
    assert pruned.keep.tolist() == list(range(h.prompt_len))
    assert pruned.cache == base.cache


# ------------------------------------------------------------------------------------------------------
# ratio 0.5 at K=2: cache lengths, and it really changes the output
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PRUNER_NAMES)
def test_pruned_cache_lengths_per_layer_and_step(h: Harness, name: str) -> None:
    run = h.pruned(name, RATIO)
    n_layers = len(h.stack.layers)
    assert n_layers == 4
    L = h.prompt_len
    L_kept = L - math.floor(h.positions.numel() * RATIO)
    assert L_kept == L - 125
    assert run.kept_audio.numel() == 125 and run.keep.numel() == L_kept
    non_audio = set(range(L)) - set(h.positions.tolist())
    assert set(run.keep.tolist()) == non_audio | set(run.kept_audio.tolist())
    assert len(run.steps) == NEW_TOKENS  # prefill + 3 decode steps
    for step, lengths in enumerate(run.steps):
        assert lengths == [L + step] * K + [L_kept + step] * (n_layers - K), f"step {step}"
    assert run.cache == [L + NEW_TOKENS - 1] * K + [L_kept + NEW_TOKENS - 1] * (n_layers - K)
    base = h.base()
    assert base.steps[0] == [L] * n_layers
    assert max_diff(run.logits[0], base.logits[0]) > 1e-3, "pruning half the audio changed nothing"


def test_prefill_only_cache_is_l_l_lprime_lprime(harnesses: dict[str, Harness]) -> None:
    """The cache a bare prefill returns (no generate), both attention implementations."""
    for attn, h in harnesses.items():
        with PruneHook(h.stack, K, PRUNERS.get("frame"), RATIO) as hook:
            with torch.inference_mode(), hook.armed(h.positions):
                out = h.model.model(**h.inputs.tensors, use_cache=True)
        L = h.prompt_len
        assert cache_lengths(output_cache(out)) == [L, L, L - 125, L - 125], attn


# ------------------------------------------------------------------------------------------------------
# pruned prefill == reference computed by hand
# ------------------------------------------------------------------------------------------------------
def reference_logits(h: Harness, keep: torch.Tensor) -> torch.Tensor:
    ref = h.reference_pass()
    hidden_states = ref.out.hidden_states
    assert torch.equal(hidden_states[K], ref.hidden_k), "hidden_states[K] is the input of layer K"
    # the rotary tables of the ORIGINAL positions, from the text model's 3-D mRoPE ids
    thinker = h.model.model
    lm = h.language_model()
    tensors = h.inputs.tensors
    get_rope_index = getattr(thinker.model, "get_rope_index", None) or thinker.get_rope_index  # 5.2x / 5.2
    position_ids, _ = get_rope_index(
        tensors["input_ids"], None, None, tensors["attention_mask"], False, tensors["feature_attention_mask"].sum(-1), None
    )
    given = ref.position_ids
    if given is not None:
        assert torch.equal(given[-3:], position_ids), "the language model got the get_rope_index positions"
    cos, sin = lm.rotary_emb(hidden_states[0], position_ids)
    assert torch.equal(cos, ref.rope[0]) and torch.equal(sin, ref.rope[1])
    cos, sin = cos.index_select(-2, keep), sin.index_select(-2, keep)

    hidden = hidden_states[K].index_select(-2, keep)
    n = keep.numel()
    if h.model.attn_implementation == "eager":  # eager needs the causal mask spelled out (kept order = original order)
        mask = torch.full((n, n), torch.finfo(hidden.dtype).min).triu(1)[None, None]
    else:
        mask = None  # sdpa: is_causal
    with torch.inference_mode():
        for layer in h.stack.layers[K:]:
            result = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin), position_ids=None,
                           use_cache=False)
            hidden = result[0] if isinstance(result, tuple) else result
        return thinker.lm_head(h.stack.norm(hidden))[0, -1]


@pytest.mark.parametrize("name", PRUNER_NAMES)
def test_pruned_prefill_equals_hand_reference(h: Harness, name: str) -> None:
    run = h.pruned(name, RATIO)
    expected = reference_logits(h, run.keep)
    diff = max_diff(run.logits[0][0], expected)
    assert diff <= ATOL, f"{name}: pruned prefill vs reference max diff {diff}"
    # and the reference is not trivially the unpruned answer
    assert max_diff(h.base().logits[0][0], expected) > 1e-3


def test_hand_reference_with_everything_kept_is_the_model(h: Harness) -> None:
    """Sanity of the reference itself: keeping every position reproduces the unpruned prefill."""
    expected = reference_logits(h, torch.arange(h.prompt_len))
    assert max_diff(h.base().logits[0][0], expected) <= ATOL


# ------------------------------------------------------------------------------------------------------
# incremental decode on the pruned cache == recompute with the same drop
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PRUNER_NAMES)
def test_decode_on_pruned_cache_equals_recompute(h: Harness, name: str) -> None:
    run = h.pruned(name, RATIO)
    assert run.sequences.shape[-1] == h.prompt_len + NEW_TOKENS
    tensors = dict(h.inputs.tensors)
    tensors["input_ids"] = run.sequences[:, :-1]
    tensors["attention_mask"] = torch.ones_like(tensors["input_ids"])
    with PruneHook(h.stack, K, PRUNERS.get(name), RATIO) as hook:
        with torch.inference_mode(), hook.armed(h.positions, None, forced_audio_keep=run.kept_audio):
            out = h.model.model(**tensors, use_cache=True)
        assert torch.equal(hook.last_kept_audio, run.kept_audio)
    diff = max_diff(out.logits[0, -1], run.logits[-1][0])
    assert diff <= ATOL, f"{name}: decode vs recompute max diff {diff}"
    n_layers = len(h.stack.layers)
    L_total = h.prompt_len + NEW_TOKENS - 1
    assert cache_lengths(output_cache(out)) == [L_total] * K + [L_total - 125] * (n_layers - K) == run.cache


# ------------------------------------------------------------------------------------------------------
# FastV's importance is the real attention
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordingFastV:
    """FastV, recording the importance vector the hook computed during the prefill."""

    record: list = field(default_factory=list)
    name = "fast_v"
    needs_attention = True

    def select(self, hook: PruneHook, positions: torch.Tensor, n_keep: int, hidden: torch.Tensor) -> torch.Tensor:
        self.record.append(hook.last_query_attention().detach().clone())
        return FastVPruner().select(hook, positions, n_keep, hidden)


@pytest.mark.parametrize("layer", [1, K, 3])
def test_fast_v_importance_is_the_eager_attention_of_the_last_query(h: Harness, harnesses: dict[str, Harness],
                                                                     layer: int) -> None:
    pruner = RecordingFastV()
    with PruneHook(h.stack, layer, pruner, RATIO) as hook:
        h.prefill_logits(hook)
        kept = hook.last_kept_audio
    (importance,) = pruner.record
    eager = harnesses["eager"].reference_pass().out.attentions[layer - 1]  # (1, heads, L, L)
    real = eager[0, :, -1, :].float().mean(dim=0)
    assert importance.shape == real.shape == (h.prompt_len,)
    assert max_diff(importance, real) <= 1e-5
    assert abs(float(importance.sum()) - 1.0) < 1e-5
    # FastV kept the audio tokens the last query attends to most (up to float noise between the two)
    scores = real[h.positions]
    chosen = torch.isin(h.positions, kept)
    assert int(chosen.sum()) == 125
    assert float(scores[chosen].min()) >= float(scores[~chosen].max()) - 1e-6
    assert torch.equal(kept, select_top_scores(h.positions, importance[h.positions], 125))


# ------------------------------------------------------------------------------------------------------
# random pruning: seeded per (seed, sample id)
# ------------------------------------------------------------------------------------------------------
def test_random_pruning_is_reproducible_per_sample(harnesses: dict[str, Harness]) -> None:
    h = harnesses["sdpa"]
    runner_kept = {}
    with PruneHook(h.stack, K, PRUNERS.get("random"), RATIO) as hook:
        runner = CaseRunner(CaseSpec("TAU", "tiny-qwen2.5-omni", "random", RATIO, K), None, h.model, None,
                            hook=hook, seed=0)
        for sample_id in ("s1", "s1", "s2"):
            generation, audio_kept = runner.generate(h.inputs, SimpleNamespace(sample_id=sample_id), 2)
            assert audio_kept == 125 and len(generation.new_token_ids) >= 1
            runner_kept.setdefault(sample_id, []).append(hook.last_kept_audio.clone())
        direct = {}
        for seed, sample_id in ((0, "s1"), (0, "s2"), (1, "s1")):
            h.prefill_logits(hook, sample_generator(seed, sample_id))
            direct[(seed, sample_id)] = hook.last_kept_audio.clone()
    first, again = runner_kept["s1"]
    assert torch.equal(first, again), "same (seed, sample id) must drop the same tokens"
    assert torch.equal(first, direct[(0, "s1")])
    assert torch.equal(runner_kept["s2"][0], direct[(0, "s2")])
    assert not torch.equal(direct[(0, "s1")], direct[(0, "s2")]), "sample ids must give different subsets"
    assert not torch.equal(direct[(0, "s1")], direct[(1, "s1")]), "seeds must give different subsets"
    a, b = sample_generator(3, "x"), sample_generator(3, "x")
    assert torch.equal(torch.randperm(50, generator=a), torch.randperm(50, generator=b))


# ------------------------------------------------------------------------------------------------------
# the hook leaves nothing behind
# ------------------------------------------------------------------------------------------------------
def hook_counts(stack) -> list[int]:
    """Pruning callbacks per layer; the module itself only ever holds the one LayerHooks dispatcher."""
    from marathon_lib.textstack import layer_hooks

    counts = [len(layer_hooks(layer).callbacks) for layer in stack.layers]
    assert all(len(layer._forward_pre_hooks) == 1 for layer in stack.layers)
    return counts


@pytest.mark.parametrize("name", PRUNER_NAMES)
def test_hook_is_removed_and_inert_when_unarmed(h: Harness, name: str) -> None:
    stack = h.stack
    before = hook_counts(stack)
    base = h.base_prefill()
    with PruneHook(stack, K, PRUNERS.get(name), RATIO) as hook:
        during = hook_counts(stack)
        extra = [1 if i >= K else 0 for i in range(len(before))]
        if PRUNERS.get(name).needs_attention:
            extra[K - 1] += 1
        assert during == [b + e for b, e in zip(before, extra)]
        unarmed = h.prefill_logits()
        assert torch.equal(unarmed, base), "an installed but unarmed hook changed the output"
        with pytest.raises(RuntimeError, match="twice"):
            hook.install()
        h.prefill_logits(hook, torch.Generator().manual_seed(0))  # armed once ...
        assert hook.keep is None and hook.audio_positions is None and hook.captured == {}
        assert torch.equal(h.prefill_logits(), base)  # ... and unarmed again afterwards
    assert hook_counts(stack) == before
    assert torch.equal(h.prefill_logits(), base)


def test_hook_is_removed_when_the_body_raises(harnesses: dict[str, Harness]) -> None:
    h = harnesses["eager"]
    before = hook_counts(h.stack)
    with pytest.raises(KeyError):
        with PruneHook(h.stack, K, PRUNERS.get("fast_v"), RATIO) as hook:
            with hook.armed(h.positions):
                raise KeyError("boom")
    assert hook_counts(h.stack) == before
    assert hook.keep is None and hook.audio_positions is None


# ------------------------------------------------------------------------------------------------------
# bad values fail fast
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [0, 4, 9, -1])
def test_prune_hook_rejects_layers_outside_the_model(harnesses: dict[str, Harness], layer: int) -> None:
    stack = harnesses["sdpa"].stack
    before = hook_counts(stack)
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        PruneHook(stack, layer, PRUNERS.get("dart"), RATIO)
    assert hook_counts(stack) == before


def test_armed_without_audio_is_an_error(harnesses: dict[str, Harness]) -> None:
    with PruneHook(harnesses["sdpa"].stack, K, PRUNERS.get("frame"), RATIO) as hook:
        with pytest.raises(ValueError, match="no audio"):
            with hook.armed(torch.empty(0, dtype=torch.long)):
                pass


def test_cli_prune_layer_beyond_the_model_fails_with_the_range(cli_runs: dict[str, CliRun]) -> None:
    run = cli_runs["test_cli_prune_layer_beyond_the_model_fails_with_the_range"].finish()
    assert run.returncode != 0, f"--prune-layer 9 on a 4-layer model ran silently:\n{run.output}"
    assert run.returncode in (1, 4), run.output  # failed case or usage error, never a crash or interrupt
    assert re.search(r"prune[- _]layer", run.output, re.IGNORECASE), run.output
    assert "[1, 3]" in run.output, run.output
    assert not re.search(r"\b\d+ passed", run.output), run.output


def test_cli_sweep_runs_base_once_and_every_ratio_per_pruner(cli_runs: dict[str, CliRun]) -> None:
    run = cli_runs["test_cli_sweep_runs_base_once_and_every_ratio_per_pruner"].finish()
    log = f"\n--- pytest output ---\n{run.output[-6000:]}"
    assert run.returncode == 0, log
    assert re.search(r"\b5 passed\b", run.output), log
    assert not re.search(r"\b\d+ (failed|errors?)\b", run.output), log
    cases = {json.loads(p.read_text())["case_id"]: json.loads(p.read_text())
             for p in sorted((run.results / "cases").glob("*.json"))}
    prefix = "TAU-tiny-qwen2.5-omni-"
    expected = {prefix + "base"} | {f"{prefix}{p}-r{r:g}-L2" for p in ("dart", "random") for r in SWEEP_RATIOS}
    assert set(cases) == expected, log
    for case_id, case in cases.items():
        ratio = case["prune_ratio"] if case["pruner"] != "base" else 0.0
        assert case["pruner"] == "base" or case["prune_ratio"] in SWEEP_RATIOS, case
        audio, kept = case["tokens"]["audio"], case["tokens"]["audio_kept"]
        assert audio == 150, case  # 6 s at 25 tokens/s
        assert kept == audio - math.floor(audio * ratio), case
        records = [json.loads(line) for line in (run.results / "samples" / f"{case_id}.jsonl").read_text().splitlines()]
        assert records and all(r["status"] != "error" for r in records), records
        for record in records:
            tokens = record["tokens"]
            assert tokens["audio_kept"] == tokens["audio"] - math.floor(tokens["audio"] * ratio), (case_id, tokens)
