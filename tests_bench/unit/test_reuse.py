"""--reuse-audio-encoder: the encoder runs once per sample and model across a sweep, with identical results."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from marathon_lib.models import load_model, resolve_model
from marathon_lib.models.reuse import EncoderClock, EncoderOutputCache
from marathon_lib.paths import cache_root
from marathon_lib.pruning import PRUNERS, PruneHook
from marathon_lib.results import ResultsDir
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec
from marathon_lib.synthetic import ensure_synthetic_datasets
from marathon_lib.tasks import TASKS
from marathon_lib.timing import Clock, Timing


class Doubler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
        self.calls += 1
        return x * scale


def test_cache_matches_equal_inputs_only_and_stays_bounded() -> None:
    module = Doubler()
    cache = EncoderOutputCache(module, size=2).install()
    x = torch.arange(6.0)
    first = module(x)
    assert torch.equal(module(x.clone()), first) and module.calls == 1  # equal values, new tensor: served
    assert module(x, scale=3.0)[1] == 3.0 and module.calls == 2  # other arguments: computed
    assert module(x + 1)[0] == 2.0 and module.calls == 3  # other values: computed
    module(x)  # evicted by the two newer entries (size 2): computed again
    assert module.calls == 4 and (cache.hits, cache.misses) == (1, 4)
    with pytest.raises(RuntimeError, match="twice"):
        cache.install()
    cache.remove()
    module(x)
    assert module.calls == 5 and "forward" not in module.__dict__


def test_encoder_clock_times_computations_and_a_hit_carries_the_computed_time() -> None:
    module = Doubler()
    clock = EncoderClock(module, Clock(torch.device("cpu"))).install()
    cache = EncoderOutputCache(module, size=2, clock=clock).install()
    x = torch.arange(6.0)
    clock.begin()
    module(x)
    measured, carried = clock.reading()
    assert len(clock.spans) == 1 and measured > 0 and carried is None
    clock.begin()
    module(x.clone())  # served: nothing measured, the first computation's time carried
    assert clock.reading() == (0.0, measured) and module.calls == 1
    with cache.bypassed():  # a warm-up: computed, neither stored nor served
        clock.begin()
        module(x)
        assert module.calls == 2 and clock.carried == [] and len(clock.spans) == 1
    assert (cache.hits, cache.misses) == (1, 1)
    cache.remove()
    assert module.forward == clock._forward  # the clock stays
    clock.remove()
    assert "forward" not in module.__dict__


def test_timing_with_encoder_keeps_prefill_comparable() -> None:
    timing = Timing(prefill_ms=30.0, decode_ms=10.0, new_tokens=4)
    own = timing.with_encoder(12.0, None)
    assert (own.prefill_ms, own.encoder_ms, own.llm_prefill_ms, own.encoder_ms_reused) == (30.0, 12.0, 18.0, False)
    reused = timing.with_encoder(0.0, 12.0)  # the prefill ran without the encoder: its time is added back
    assert (reused.prefill_ms, reused.latency_ms, reused.encoder_ms, reused.llm_prefill_ms) == (42.0, 52.0, 12.0, 30.0)
    assert reused.encoder_ms_reused and reused.as_dict()["encoder_ms_reused"] is True
    assert Timing.end_to_end(100.0, 3).with_encoder(0.0, None).encoder_ms is None  # API: nothing to split


def test_sweep_reuses_the_encoder_and_changes_no_result(tmp_path: Path) -> None:
    data = ensure_synthetic_datasets(cache_root() / "data", seconds=6.0, samples_per_task=3, seed=0)
    spec = TASKS.get("TAU")
    samples = spec.samples(data, 2)
    torch.manual_seed(0)
    model = load_model(resolve_model("tiny-qwen2-audio"), cache_root=cache_root() / "models", device="cpu",
                       dtype="float32", attn_implementation="sdpa")
    cases = [CaseSpec("TAU", model.name), CaseSpec("TAU", model.name, "dart", 0.5, 2),
             CaseSpec("TAU", model.name, "dart", 0.9, 2)]

    def sweep(root: Path) -> dict[str, list[dict]]:
        results = ResultsDir(root).ensure()
        out = {}
        for case in cases:
            hook = None if case.pruner == "base" else PruneHook(model.text_stack(), 2, PRUNERS.get(case.pruner),
                                                                 case.prune_ratio).install()
            try:
                CaseRunner(case, spec, model, results, hook=hook).run(samples)
            finally:
                if hook is not None:
                    hook.remove()
            out[case.case_id] = results.read_samples(case.case_id)
        return out

    plain = sweep(tmp_path / "plain")
    model.reuse_audio_encoder()
    reused = sweep(tmp_path / "reused")
    assert model.encoder_cache.misses == len(samples)  # one encoder run per sample for the whole sweep
    for case_id, records in reused.items():
        assert [r["response"] for r in records] == [r["response"] for r in plain[case_id]], case_id
        assert [r["tokens"] for r in records] == [r["tokens"] for r in plain[case_id]], case_id
        assert all(r["encoder_reused"] for r in records[1:]) or case_id.endswith("base")
        assert all("encoder_reused" not in r for r in plain[case_id])
        # reuse changes what prefill_ms measures, so it keys its own records (no resume across the two)
        assert {r["key"] for r in records}.isdisjoint({r["key"] for r in plain[case_id]})
    later = [r for case_id, records in reused.items() if not case_id.endswith("base") for r in records]
    assert all(r["encoder_reused"] for r in later)
    # encoder_ms: measured inside the prefill, carried (and said) where the output was reused
    base = {r["sample_id"]: r["timing"] for r in reused[cases[0].case_id]}
    for record in later:
        assert record["timing"]["encoder_ms_reused"]
        assert record["timing"]["encoder_ms"] == base[record["sample_id"]]["encoder_ms"]
    for timing in [r["timing"] for records in plain.values() for r in records] + list(base.values()):
        assert not timing["encoder_ms_reused"] and 0 < timing["encoder_ms"] < timing["prefill_ms"]
        assert timing["llm_prefill_ms"] == pytest.approx(timing["prefill_ms"] - timing["encoder_ms"], abs=2e-3)
