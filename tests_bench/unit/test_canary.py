"""The trained canary (models/canary.py) as the suite's own check that pruning keeps what the model hears.

A random-weight model answers noise whatever a hook does to its audio; the canary has learnt tasks, so a hook that
scrambles the prompt or drops most of the audio shows as lost accuracy. Every case runs through the real
`CaseRunner` (prompts, generation, parsing, scoring) on the benchmark's own synthetic test data (seed 0; the
canary trained on seed 9001). Everything is seeded: the data, the canary's build, random pruning per sample.
The canary builds once into the shared cache (a few CPU minutes on a cold cache) and is reused by `make bench`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from marathon_lib.models import AudioLM, load_model, resolve_model
from marathon_lib.models.canary import CANARY_NAME
from marathon_lib.paths import cache_root
from marathon_lib.pruning import PRUNERS, PruneHook
from marathon_lib.results import ResultsDir, read_records
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec
from marathon_lib.synthetic import ensure_synthetic_datasets
from marathon_lib.tasks import TASKS, Sample

pytestmark = [pytest.mark.canary, pytest.mark.usefixtures("one_thread")]

SECONDS = 4.0  # the canary's clip length
SAMPLES = 40  # per task (HAD and VoxGender: per class), enough that one flipped answer moves a score by <= 2.5
LAYER = 2  # the suite's default prune layer
LEARNT = ("GTZAN", "HAD")  # learnt (README: the canary's scores): one chosen among shuffled options, one fixed
PRUNED_TASKS = ("GTZAN", "DESED")  # where dropping audio tokens costs the canary answers (make bench's sweep)
BROKEN_DROP = 25.0  # accuracy points a scrambling hook loses at least, on each LEARNT task
PRUNED_DROP = 4.0  # accuracy points random pruning at 0.9 loses at least, over PRUNED_TASKS' answers together


@pytest.fixture(scope="module")
def canary() -> AudioLM:
    torch.manual_seed(0)
    return load_model(resolve_model(CANARY_NAME), cache_root=cache_root() / "models", device="cpu",
                      dtype="float32", attn_implementation="sdpa")


@pytest.fixture(scope="module")
def data_root() -> Path:
    return ensure_synthetic_datasets(cache_root() / "data", seconds=SECONDS, samples_per_task=SAMPLES, seed=0)


def run_case(model: AudioLM, results: ResultsDir, task: str, hook: PruneHook | None = None,
             pruner: str = "base", ratio: float = 0.0, root: Path | None = None) -> dict:
    """One case through the real runner: its case JSON (metrics) and its per-sample records."""
    spec = TASKS.get(task)
    samples: list[Sample] = list(spec.samples(root))
    case = CaseSpec(task, CANARY_NAME, pruner, ratio, LAYER if pruner != "base" else None)
    return CaseRunner(case, spec, model, results, hook=hook, seed=0).run(samples)


def responses(results: ResultsDir, case: dict) -> list[tuple[str, str | None]]:
    """(sample id, raw response) of every sample of a case, in sample order."""
    return [(r["sample_id"], r.get("response")) for r in read_records(results.sample_path(case["case_id"]), [])]


class ShuffledKeepHook(PruneHook):
    """Broken on purpose: the kept hidden states go on in a shuffled order while their positions (RoPE) and the
    causal mask stay in prompt order, as a hook that loses track of its keep order would do."""

    def _choose(self, hidden: torch.Tensor) -> torch.Tensor:
        keep = super()._choose(hidden)
        return keep[torch.randperm(keep.numel(), generator=torch.Generator().manual_seed(0))]

    def _slice_prefill(self, kwargs: dict) -> dict:
        shuffled, self.keep = self.keep, self.keep.sort().values
        try:
            return super()._slice_prefill(kwargs)
        finally:
            self.keep = shuffled


def n_correct(results: ResultsDir, case: dict) -> int:
    return sum(bool(r.get("correct")) for r in read_records(results.sample_path(case["case_id"])))


def accuracy(case: dict) -> float:
    return case["metrics"]["accuracy"]


@pytest.fixture(scope="module")
def base(canary: AudioLM, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The base case of every task the tests use, run once: task -> case JSON (with its results folder)."""
    results = ResultsDir(tmp_path_factory.mktemp("canary-base"))
    return {task: run_case(canary, results, task, root=data_root) | {"results": results}
            for task in sorted({*LEARNT, *PRUNED_TASKS})}


def test_canary_hears_its_tasks_and_ratio_zero_changes_no_answer(canary: AudioLM, data_root: Path,
                                                                  base: dict[str, dict], tmp_path: Path) -> None:
    results = ResultsDir(tmp_path)
    for task in LEARNT:
        chance = base[task]["metrics"]["chance"]
        # the README's table holds the measured scores; this floor only says the canary has learnt the task
        assert base[task]["metrics"]["score"] >= min(1.5 * chance, chance + 25), (task, base[task]["metrics"])
        with PruneHook(canary.text_stack(), LAYER, PRUNERS.get("random"), 0.0) as hook:
            zero = run_case(canary, results, task, hook, "random", 0.0, root=data_root)
        assert responses(results, zero) == responses(base[task]["results"], base[task]), task
        assert zero["metrics"]["score"] == base[task]["metrics"]["score"]


def test_a_hook_that_scrambles_the_kept_order_loses_accuracy(canary: AudioLM, data_root: Path,
                                                             base: dict[str, dict], tmp_path: Path) -> None:
    results = ResultsDir(tmp_path)
    for task in LEARNT:
        with ShuffledKeepHook(canary.text_stack(), LAYER, PRUNERS.get("random"), 0.0) as hook:
            broken = run_case(canary, results, task, hook, "random", 0.0, root=data_root)
        assert accuracy(broken) <= accuracy(base[task]) - BROKEN_DROP, (task, accuracy(base[task]),
                                                                        accuracy(broken))


def test_random_pruning_at_0_9_loses_accuracy_on_learnt_tasks(canary: AudioLM, data_root: Path,
                                                                base: dict[str, dict], tmp_path: Path) -> None:
    results = ResultsDir(tmp_path)
    right = {"base": 0, "random": 0}
    answered = 0
    for task in PRUNED_TASKS:
        with PruneHook(canary.text_stack(), LAYER, PRUNERS.get("random"), 0.9) as hook:
            pruned = run_case(canary, results, task, hook, "random", 0.9, root=data_root)
        kept = [(r["tokens"]["audio"], r["tokens"]["audio_kept"])
                for r in read_records(results.sample_path(pruned["case_id"]))]
        assert kept and all(k == a - math.floor(a * 0.9) for a, k in kept)
        right["base"] += n_correct(base[task]["results"], base[task])
        right["random"] += n_correct(results, pruned)
        answered += pruned["metrics"]["n"]
    assert 100 * (right["base"] - right["random"]) / answered >= PRUNED_DROP, (right, answered)
