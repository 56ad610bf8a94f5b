"""Resume after a crash: SIGKILL a running benchmark, start the same command again, lose and double nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASE = "TAU-tiny-qwen2.5-omni-base"


def bench(results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "tests_bench/test_cases.py", "-q", "-p", "no:cacheprovider",
            "--tasks", "TAU", "--synthetic-seconds", "6", "--synthetic-samples", "3",
            "--results-dir", str(results), *extra]


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "MARATHON_RESULTS_DIR": ""}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    results = tmp_path_factory.mktemp("full")
    done = subprocess.run(bench(results), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((results / "cases" / f"{CASE}.json").read_text())


def test_sigkill_then_rerun_computes_only_the_missing_samples(tmp_path: Path, uninterrupted: dict) -> None:
    samples = tmp_path / "samples" / f"{CASE}.jsonl"
    proc = subprocess.Popen(bench(tmp_path), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(lines(samples)) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = len(lines(samples))
    assert 1 <= finished_before < 3, "the kill must land while the case is still running"

    rerun = subprocess.run(bench(tmp_path, "-v"), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]

    records = [json.loads(line) for line in lines(samples)]
    ids = [r["sample_id"] for r in records]
    assert len(ids) == len(set(ids)) == 3, ids  # every sample exactly once
    case = json.loads((tmp_path / "cases" / f"{CASE}.json").read_text())
    assert case["n_resumed"] == finished_before  # the rest was computed, the finished ones were not
    assert case["metrics"] == uninterrupted["metrics"]


def test_changed_generation_settings_invalidate_records(tmp_path: Path) -> None:
    first = subprocess.run(bench(tmp_path), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:]
    same = subprocess.run(bench(tmp_path), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert same.returncode == 0
    case_path = tmp_path / "cases" / f"{CASE}.json"
    assert json.loads(case_path.read_text())["n_resumed"] == 3, case_path.read_text()
    changed = subprocess.run(bench(tmp_path, "--attn-impl", "eager"), cwd=ROOT, env=env(),
                             capture_output=True, text=True, timeout=600)
    assert changed.returncode == 0
    assert json.loads(case_path.read_text())["n_resumed"] == 0
    assert len(lines(tmp_path / "samples" / f"{CASE}.jsonl")) == 3
    # the manifest keeps all three sessions (not the first one's options only); the case names the last
    sessions = json.loads((tmp_path / "manifest.json").read_text())["sessions"]
    assert [s["options"]["attn_implementation"] for s in sessions] == ["sdpa", "sdpa", "eager"]
    assert len({s["session"] for s in sessions}) == 3
    assert json.loads(case_path.read_text())["session"] == sessions[-1]["session"]


def _write_many(path: str, worker: int) -> None:
    from marathon_lib.results import write_json

    for index in range(200):
        write_json(Path(path), {"worker": worker, "index": index})


def test_concurrent_writers_of_one_file_never_collide(tmp_path: Path) -> None:
    """xdist workers write the same manifest at once: each uses its own temporary file, the last write wins."""
    import multiprocessing

    target = tmp_path / "manifest.json"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(target), n)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert json.loads(target.read_text())["index"] == 199
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_new_scoring_versions_rescore_saved_records_without_the_model(tmp_path: Path, tiny_models,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Parser and metric versions are part of every record's resume key: after a bump the next run rescores the
    saved responses (never mixing old parses with new ones) and does not run the model again."""
    import marathon_lib.scoring as scoring_module
    from marathon_lib.paths import cache_root
    from marathon_lib.results import ResultsDir
    from marathon_lib.runner import CaseRunner
    from marathon_lib.schema import CaseSpec
    from marathon_lib.synthetic import ensure_synthetic_datasets
    from marathon_lib.tasks import TASKS

    spec = TASKS.get("TAU")
    samples = spec.samples(ensure_synthetic_datasets(cache_root() / "data", seconds=6.0, samples_per_task=3, seed=0))
    model = tiny_models.get("tiny-qwen2.5-omni")
    results = ResultsDir(tmp_path).ensure()
    case = CaseSpec("TAU", "tiny-qwen2.5-omni")
    first = CaseRunner(case, spec, model, results).run(samples)
    assert (first["n_resumed"], first["n_rescored"]) == (0, 0)
    before = results.read_samples(case.case_id)
    assert all(r["scoring"] == {"parser": "2", "metrics": first["metrics"]["metrics_version"]} for r in before)

    def no_model(*args, **kwargs):
        raise AssertionError("the model ran although every response was saved")

    monkeypatch.setattr(model, "generate", no_model)
    monkeypatch.setattr(scoring_module, "METRICS_VERSION", "test-bump")
    second = CaseRunner(case, spec, model, results).run(samples)
    assert (second["n_resumed"], second["n_rescored"]) == (3, 3)
    after = results.read_samples(case.case_id)
    assert [r["scoring"]["metrics"] for r in after] == ["test-bump"] * 3
    assert [r["response"] for r in after] == [r["response"] for r in before]
    assert [r["key"] for r in after] != [r["key"] for r in before]
    assert [r["generation_key"] for r in after] == [r["generation_key"] for r in before]
    third = CaseRunner(case, spec, model, results).run(samples)
    assert (third["n_resumed"], third["n_rescored"]) == (3, 0)
