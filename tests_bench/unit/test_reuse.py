"""--reuse-audio-encoder: the encoder runs once per sample and model across a sweep, with identical results."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from marathon_lib.models import load_model, resolve_model
from marathon_lib.models.reuse import EncoderOutputCache
from marathon_lib.paths import cache_root
from marathon_lib.pruning import PRUNERS, PruneHook
from marathon_lib.results import ResultsDir
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec
from marathon_lib.synthetic import ensure_synthetic_datasets
from marathon_lib.tasks import TASKS


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
