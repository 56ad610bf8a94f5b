"""`make test` leaves the work tree as it found it: the suite's own benchmark cases (test_cases.py with the default
options) write into a temporary results directory, and a run that leaves a new results/run-* behind fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make_test(test_args: str) -> subprocess.CompletedProcess:
    """`make test TEST_ARGS=...` as a user types it (no results directory inherited from this pytest)."""
    env = {k: v for k, v in os.environ.items()
           if k != "MARATHON_RESULTS_DIR" and not k.startswith(("PYTEST_", "MAKE", "MFLAGS"))}
    return subprocess.run(["make", "--no-print-directory", "test", f"TEST_ARGS={test_args}"], cwd=ROOT, env=env,
                          check=False, capture_output=True, text=True, timeout=600)


def runs_in_tree() -> set[str]:
    return {p.name for p in (ROOT / "results").glob("run-*")}


def test_benchmark_cases_write_outside_the_work_tree() -> None:
    before = runs_in_tree()
    done = make_test("tests_bench/test_cases.py -q --tasks TAU --sample-limit 1 --synthetic-seconds 6 "
                     "--synthetic-samples 3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout
    assert "MARATHON_RESULTS_DIR=" in done.stdout  # the recipe says where the cases went
    assert runs_in_tree() == before


def test_a_run_that_writes_into_the_tree_fails(tmp_path: Path) -> None:
    planted = f"run-planted-{uuid.uuid4().hex[:8]}"
    existed = (ROOT / "results").exists()
    plant = tmp_path / "test_plant.py"
    plant.write_text("from pathlib import Path\n\n\ndef test_plant():\n"
                     f"    Path('results/{planted}').mkdir(parents=True)\n")
    try:
        done = make_test(f"{plant} -q")
        assert done.returncode != 0
        assert f"make test wrote into the work tree: results/{planted}" in done.stdout
    finally:
        shutil.rmtree(ROOT / "results" / planted, ignore_errors=True)
        if not existed:
            (ROOT / "results").rmdir()
