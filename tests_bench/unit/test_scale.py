"""Scale-out: shards whose union is the full run, `marathon merge`, xdist workers and their GPU pinning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GPUS_ENV, pin_worker_gpu
from marathon_lib.errors import ConfigError, DataError
from marathon_lib.merge import merge_results
from marathon_lib.options import in_shard, parse_shard

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--tasks", "TAU,HAD", "--synthetic-seconds", "6", "--synthetic-samples", "3"]


def bench(results: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "tests_bench/test_cases.py", "-q", "-p", "no:cacheprovider", *SMALL,
           "--results-dir", str(results), *extra]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def cases(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "cases").glob("*.json")}


def sample_ids(results: Path, case: str) -> set[str]:
    return {json.loads(line)["sample_id"] for line in (results / "samples" / f"{case}.jsonl").read_text().splitlines()}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("full")
    bench(results)
    return results


def test_shards_partition_every_case_and_merge_back(full_run: Path, tmp_path: Path) -> None:
    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    for index, results in enumerate(shards):
        bench(results, "--shard", f"{index}/2")
    full = cases(full_run)
    for case in full:
        parts = [sample_ids(s, case) if (s / "samples" / f"{case}.jsonl").exists() else set() for s in shards]
        assert not parts[0] & parts[1], "a sample ran in two shards"
        assert parts[0] | parts[1] == sample_ids(full_run, case), "the shards together miss samples"

    merged = {c["case_id"]: c for c in merge_results(shards, tmp_path / "merged")}
    assert set(merged) == set(full)
    # every case field survives the merge; all but the run's own times and session are equal to the one-piece run
    # (reuse counts depend on how the run was split: each shard's warm-up prepares its own first sample)
    run_specific = {"created", "session", "timing", "compile_ms", "inputs_reused"}
    for case_id, case in full.items():
        written = json.loads((tmp_path / "merged" / "cases" / f"{case_id}.json").read_text())
        assert set(written) == set(case) | {"merged", "merged_from"}, case_id
        assert {k: v for k, v in written.items() if k in set(case) - run_specific} == {
            k: v for k, v in case.items() if k not in run_specific}, case_id
        assert written["timing"].keys() == case["timing"].keys()
        assert merged[case_id]["metrics"] == case["metrics"]
    assert (tmp_path / "merged" / "leaderboard.md").is_file()


def test_merge_refuses_records_from_different_settings(full_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "eager"
    bench(other, "--attn-impl", "eager", "--tasks", "TAU")
    with pytest.raises(DataError, match="differs between"):
        merge_results([full_run, other], tmp_path / "merged")


def test_shard_assignment_is_stable_and_total() -> None:
    ids = [f"s{i}" for i in range(200)]
    for n in (1, 2, 3, 7):
        owners = [[i for i in range(n) if in_shard("TAU-x-base", s, (i, n))] for s in ids]
        assert all(len(o) == 1 for o in owners)  # each sample in exactly one shard
        assert owners == [[i for i in range(n) if in_shard("TAU-x-base", s, (i, n))] for s in ids]
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)


def test_xdist_workers_share_one_results_dir_and_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    bench(tmp_path, "-n", "2", "--dist", "loadgroup", "--json-report", "--json-report-file", str(report))
    written = cases(tmp_path)
    assert set(written) == {"TAU-tiny-qwen2.5-omni-base", "HAD-tiny-qwen2.5-omni-base"}
    tests = json.loads(report.read_text())["tests"]
    assert {t["metadata"]["case_id"] for t in tests} == set(written)  # metadata relayed from the workers
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "leaderboard.md").is_file()


@pytest.mark.parametrize(
    ("worker", "gpus", "caller_visible", "expected"),
    [("gw0", "0,1", None, "0"), ("gw1", "0,1", None, "1"), ("gw2", "0,1", None, "0"),
     ("gw1", "3,5,7", "3,5,7", "5"), ("gw0", None, None, None), (None, "0,1", None, None)],
)
def test_worker_gpu_pinning_respects_the_callers_list(worker, gpus, caller_visible, expected) -> None:
    env = {k: v for k, v in {"PYTEST_XDIST_WORKER": worker, GPUS_ENV: gpus,
                             "CUDA_VISIBLE_DEVICES": caller_visible}.items() if v is not None}
    assert pin_worker_gpu(env) == expected
    if expected is not None:
        assert env["CUDA_VISIBLE_DEVICES"] == expected


def test_pytest_baseline_gate_passes_a_rerun_and_trips_on_a_drop(full_run: Path, tmp_path: Path) -> None:
    from marathon_lib.gating import load_baseline, make_baseline

    cases_now = list(cases(full_run).values())
    same = tmp_path / "same.json"
    same.write_text(json.dumps(make_baseline(cases_now)))
    bench(full_run, "--baseline", str(same))  # a rerun (resumed, same records) is within the bound

    higher = load_baseline(same)
    for entry in higher["cases"].values():
        entry["score"], entry["n"] = 90.0, 500
    drop = tmp_path / "higher.json"
    drop.write_text(json.dumps(higher))
    cmd = [sys.executable, "-m", "pytest", "tests_bench/test_cases.py", "-q", "-p", "no:cacheprovider", *SMALL,
           "--results-dir", str(full_run), "--baseline", str(drop)]
    tripped = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                             text=True, timeout=600)
    assert tripped.returncode == 1
    assert "regression gate" in tripped.stdout and "Wilson lower bound" in tripped.stdout
    assert "baseline 90.00 at n=500" in tripped.stdout
