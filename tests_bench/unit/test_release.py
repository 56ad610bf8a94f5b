"""The AudioMarathon release as users meet it, in subprocesses and exactly as the README types it:
`marathon fixtures --layout release` writes the synthetic data as the release tree, the benchmark runs all 10
tasks from it through --data-root; an hf:// data root runs offline from a hub cache in the real cache structure
and recomputes when main moves to a new commit; offline without the snapshot is a usage error saying
what to download; `marathon data check` reads hf:// through HF_HOME. No network: HF_HUB_OFFLINE=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fixtures.hub import add_snapshot
from marathon_lib.tasks import TASKS

pytestmark = pytest.mark.slow  # each subprocess imports torch + transformers

ROOT = Path(__file__).resolve().parents[2]
MARATHON = str(Path(sys.executable).parent / "marathon")
REPO = "Hezep/AudioMarathon"
COMMIT_1 = "a" * 40
COMMIT_2 = "b" * 40
TOKEN = "hf_i12NeverWrittenAnywhere"
QUICK = ["--max-new-tokens", "2", "-p", "no:randomly", "tests_bench/test_cases.py"]
USAGE_ERROR = 4


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("PYTEST_XDIST", "HF_", "MARATHON_RESULTS", "MARATHON_PINNED")) and k != "PYTEST_ADDOPTS"}
    e.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
              "MARATHON_CACHE": os.environ.get("MARATHON_CACHE") or str(ROOT / ".cache")}, **extra)
    return e


def run(command: list[str], timeout: float = 900, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=env(**extra), capture_output=True, text=True, timeout=timeout,
                          check=False)


def pytest_run(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pytest", *args], **extra)


def output(proc: subprocess.CompletedProcess) -> str:
    return (proc.stdout + proc.stderr)[-4000:]


def cases(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "cases").glob("*.json")}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release")
    proc = run([MARATHON, "fixtures", "--layout", "release", "--out", str(out), "--synthetic-seconds", "4", "--synthetic-samples", "2"])
    assert proc.returncode == 0, output(proc)
    return out


@pytest.fixture(scope="module")
def runs(release: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The long run (all 10 tasks from the release tree) next to the quick ones."""
    base = tmp_path_factory.mktemp("runs")
    hub, home = base / "hub", base / "home"
    add_snapshot(hub, REPO, release, COMMIT_1)
    add_snapshot(home / "hub", REPO, release, COMMIT_1)
    jobs = {
        "release": lambda: pytest_run("--data-root", str(release), "--results-dir", str(base / "release"), *QUICK),
        "hf": lambda: pytest_run(*hf_command(base / "hf"), HF_HUB_CACHE=str(hub), HF_TOKEN=TOKEN),
        "missing": lambda: pytest_run("--data-root", f"hf://{REPO}@v9", "--tasks", "TAU,VoxGender", *QUICK,
                                      HF_HUB_CACHE=str(base / "empty-hub")),
        "check": lambda: run([MARATHON, "data", "check", f"hf://{REPO}", "--tasks", "TAU,HAD"], HF_HOME=str(home)),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        done = {name: future.result() for name, future in futures.items()}
    return done | {"base": base, "hub": hub, "release_tree": release}


def test_release_tree_runs_all_ten_tasks_without_a_data_error(runs: dict):
    proc, results = runs["release"], runs["base"] / "release"
    assert proc.returncode == 0, output(proc)
    assert "10 passed" in proc.stdout and "unusable sample" not in proc.stdout + proc.stderr
    by_task = {case["task"]: case for case in cases(results).values()}
    assert set(by_task) == set(TASKS.names())
    for task, case in by_task.items():
        assert case["errors"] == [] and case["metrics"]["n_error"] == 0, (task, case["errors"])
        assert case["protocol"] == "full"
        assert case["data"]["folder"] == TASKS.get(task).folders.release and case["data"]["found_by"] == "release"
        assert case["data"]["published"] == case["data"]["selected"] == case["metrics"]["n"] > 0
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["options"]["protocol"] == "full" and manifest["data"]["protocol"] == "full"
    assert manifest["data"]["tasks"]["DESED"]["folder"] == "DESED/DESED_dataset/concatenated_audio"
    leaderboard = (results / "leaderboard.md").read_text()
    assert "**Sample protocol: full**" in leaderboard and "HAD 4/4" in leaderboard and "VoxGender 4/4" in leaderboard


def test_hf_offline_without_the_snapshot_is_a_usage_error(runs: dict):
    proc = runs["missing"]
    assert proc.returncode == USAGE_ERROR, output(proc)
    text = proc.stdout + proc.stderr
    assert "not in the Hugging Face cache" in text and "Traceback" not in text
    assert ('hf download Hezep/AudioMarathon --repo-type dataset --revision v9 --include '
            '"TAU/concatenated_resampled/*" --include "VoxCeleb/concatenated_audio/*"') in text


def test_data_check_reads_hf_through_hf_home(runs: dict):
    proc = runs["check"]
    assert proc.returncode == 0, output(proc)
    assert f"hf://{REPO} (commit {COMMIT_1})" in proc.stdout
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[3:5]}
    assert rows["TAU"][1:4] == ["TAU/concatenated_resampled", "2", "1145"]
    assert rows["HAD"][1:5] == ["HAD/concatenated_audio", "4", "776", "4"]


def hf_command(results: Path) -> list[str]:
    return ["--data-root", f"hf://{REPO}", "--protocol", "scripts", "--tasks", "TAU,HAD", "--results-dir",
            str(results), *QUICK]


def test_hf_root_runs_offline_and_recomputes_on_a_new_commit(runs: dict):
    """The same commit resumes (keys: test_dataroot.py); a new commit of main recomputes every sample."""
    hub, results, first = runs["hub"], runs["base"] / "hf", runs["hf"]
    assert first.returncode == 0, output(first)
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["options"]["data_root"] == f"hf://{REPO}" and manifest["data"]["commit"] == COMMIT_1
    assert manifest["data"]["tasks"]["HAD"]["protocol_filter"].startswith("classes balanced")
    assert manifest["data"]["path"].endswith(f"datasets--Hezep--AudioMarathon/snapshots/{COMMIT_1}")
    for case in cases(results).values():
        assert (case["protocol"], case["data"]["commit"], case["n_resumed"]) == ("scripts", COMMIT_1, 0)
    assert "Sample protocol: scripts" in (results / "leaderboard.md").read_text()

    add_snapshot(hub, REPO, runs["release_tree"], COMMIT_2)  # main moves to a new commit
    moved = pytest_run(*hf_command(results), HF_HUB_CACHE=str(hub))
    assert moved.returncode == 0, output(moved)
    assert all(case["n_resumed"] == 0 and case["data"]["commit"] == COMMIT_2 for case in cases(results).values())
    assert json.loads((results / "manifest.json").read_text())["data"]["commit"] == COMMIT_2
    written = "".join(p.read_text(errors="replace") for p in results.rglob("*") if p.is_file())
    assert TOKEN not in written
