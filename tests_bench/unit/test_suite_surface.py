"""The user's card, end to end: pytest in a subprocess with the suite's options (docs/architecture.md "The pytest surface").

Each subprocess pays the torch/transformers import (~10 s on 2 cores), so the quick ones (collection and
usage errors) run concurrently; one real run of one TAU sample on the tiny model feeds the report and
rescore checks. Names here avoid the words used in -k selections below so the subprocesses never select
this module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from marathon_lib.tasks import TASKS

pytestmark = pytest.mark.slow  # ~10 subprocesses that each import torch + transformers

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = ["--synthetic-seconds", "6", "--synthetic-samples", "3"]  # one dataset shared by the subprocess tests
CASE_NODE = "tests_bench/test_cases.py::test_case[TAU-tiny-qwen2.5-omni-base]"
CASE_ID = "TAU-tiny-qwen2.5-omni-base"
FAMILY_MODELS = "tiny-qwen2.5-omni,tiny-phi-4-multimodal,tiny-audio-flamingo-3"
USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR


@dataclass
class Proc:
    args: list[str]
    returncode: int
    output: str
    seconds: float


def env(cache: Path | None = None) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("MARATHON_RESULTS_DIR", "PYTEST_ADDOPTS") and not k.startswith("PYTEST_XDIST")}
    e["MARATHON_CACHE"] = str(cache) if cache else (os.environ.get("MARATHON_CACHE") or str(ROOT / ".cache"))
    e["HF_HUB_OFFLINE"] = "1"
    e["TOKENIZERS_PARALLELISM"] = "false"
    return e


def run(args: list[str], cache: Path | None = None, timeout: float = 600, exe: list[str] | None = None) -> Proc:
    command = (exe or [sys.executable, "-m", "pytest"]) + args
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env(cache), capture_output=True, text=True, timeout=timeout)
    return Proc(args, proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start)


def collected(proc: Proc) -> list[str]:
    return [line.strip() for line in proc.output.splitlines()
            if "::" in line and not line.startswith(("ERROR", "FAILED"))]


BAD_OPTIONS = {  # id -> (args, words the message must contain); every option's checks: test_options.py
    "prune-ratio-1.2": (["--prune-ratio", "1.2"], ["--prune-ratio", "1.2"]),
    "models-unknown": (["--models", "nope"], ["model", "nope"]),
    "results-dir-file": (["--results-dir", __file__], ["--results-dir", "is a file"]),
    "device-tpu": (["--device", "tpu"], ["--device tpu"]),
    "attn-flash": (["--attn-impl", "flash_attention_2"], ["--attn-impl flash_attention_2"]),
    "empty-item": (["--prune-ratio", "0.5,,0.7"], ["--prune-ratio", "empty item"]),
    "unused-ratio": (["--pruners", "base", "--prune-ratio", "0.5"], ["--prune-ratio 0.5", "no case uses it"]),
    "controls-unknown": (["--controls", "nope"], ["--controls", "nope", "no_audio"]),
}
# The design card's command line, typed as is (no test path); its cases: base and every pruner at 0.5.
CARD = ["-k", "qwen and TAU", "--prune-ratio", "0.5"]
CARD_NODES = [f"tests_bench/test_cases.py::test_case[TAU-tiny-qwen2.5-omni-{method}]"
              for method in ("base", "random-r0.5-L2", "frame-r0.5-L2", "fast_v-r0.5-L2", "dart-r0.5-L2")]
PYTEST = [str(Path(sys.executable).parent / "pytest")]  # the console script a user types


@pytest.fixture(scope="module")
def existing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folders that exist before the run, given as option values (a data root, a results dir of a run 1)."""
    folder = tmp_path_factory.mktemp("existing")
    for name in ("data", "run1"):
        (folder / name).mkdir()
    (folder / "data" / "TAU").mkdir()  # a data root holding one task (a root with none is a usage error)
    (folder / "data" / "TAU" / "acoustic_scene_task_meta.json").write_text("[]")
    return folder


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory: pytest.TempPathFactory, existing: Path) -> dict[str, tuple[Proc, Path | None]]:
    """Collection runs and usage errors, concurrently. Usage errors get an empty cache of their own:
    nothing may be built in it (no synthetic data, no tiny checkpoint) before the option is rejected."""
    relative = Path(os.path.relpath(existing, ROOT))
    jobs: dict[str, tuple[list[str], Path | None]] = {
        "card": ([*CARD, "--collect-only", "-q"], None),
        "card-existing": ([*CARD, "--data-root", str(existing / "data"), "--results-dir", str(existing / "run1"),
                           "--collect-only", "-q"], None),
        "card-existing-relative": ([*CARD, "--data-root", str(relative / "data"), "--results-dir",
                                    str(relative / "run1"), "--collect-only", "-q"], None),
        "card-test-path": (["tests_bench/test_cases.py", *CARD, "--results-dir", str(existing / "run1"),
                            "--collect-only", "-q"], None),
        "keyword": (["--collect-only", "-q", "-k", "qwen and TAU", "--prune-ratio", "0.0", *SYNTHETIC], None),
        "tasks": (["--tasks", "TAU,HAD", "--collect-only", "-q", "tests_bench/test_cases.py", *SYNTHETIC], None),
        "family": (["--tasks", "TAU", "--models", FAMILY_MODELS, "-k", "phi4 or flamingo", "--collect-only", "-q",
                    "tests_bench/test_cases.py", *SYNTHETIC], None),
        "controls": (["--tasks", "TAU,HAD", "--controls", "no_audio", "-k", "TAU", "--collect-only", "-q",
                      "tests_bench/test_cases.py", *SYNTHETIC], None),
    }
    for name, (args, _) in BAD_OPTIONS.items():
        cache = tmp_path_factory.mktemp(f"cache-{name}")
        jobs[name] = ([*args, *SYNTHETIC, "tests_bench/test_cases.py"], cache)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run, args, cache, 300, PYTEST) for name, (args, cache) in jobs.items()}
        return {name: (future.result(), jobs[name][1]) for name, future in futures.items()}


@pytest.mark.parametrize("name", ["card", "card-existing", "card-existing-relative", "card-test-path"])
def test_card_command_prunes_at_the_ratio(quick_runs, existing: Path, name: str):
    """`pytest -k "qwen and TAU" --prune-ratio 0.5`: base plus every pruner at 0.5, also when option values are
    existing folders (absolute or relative) and with or without the test path."""
    proc, _ = quick_runs[name]
    assert proc.returncode == 0, proc.output[-3000:]
    assert collected(proc) == CARD_NODES, proc.output[-3000:]
    assert "Unknown pytest.mark" not in proc.output  # the project's pytest.ini was read (its markers)
    written = sorted(p.relative_to(existing).as_posix() for p in existing.rglob("*"))
    assert written == ["data", "data/TAU", "data/TAU/acoustic_scene_task_meta.json", "run1"]  # not rooted in them


def test_keyword_selects_exactly_one_case(quick_runs):
    proc, _ = quick_runs["keyword"]
    assert proc.returncode == 0, proc.output[-3000:]
    assert collected(proc) == [CASE_NODE], proc.output[-3000:]


def test_tasks_option_limits_the_cases(quick_runs):
    proc, _ = quick_runs["tasks"]
    assert proc.returncode == 0, proc.output[-3000:]
    nodes = collected(proc)
    assert nodes == ["tests_bench/test_cases.py::test_case[TAU-tiny-qwen2.5-omni-base]",
                     "tests_bench/test_cases.py::test_case[HAD-tiny-qwen2.5-omni-base]"], proc.output[-3000:]


def test_family_keywords_select_families(quick_runs):
    """-k phi4 / -k flamingo select a family although its model names spell it otherwise."""
    proc, _ = quick_runs["family"]
    assert proc.returncode == 0, proc.output[-3000:]
    assert collected(proc) == ["tests_bench/test_cases.py::test_case[TAU-tiny-phi-4-multimodal-base]",
                               "tests_bench/test_cases.py::test_case[TAU-tiny-audio-flamingo-3-base]"], proc.output[-3000:]


def test_controls_run_beside_the_methods(quick_runs):
    """--controls no_audio adds one control case per (task, model), selected by -k like any case."""
    proc, _ = quick_runs["controls"]
    assert proc.returncode == 0, proc.output[-3000:]
    assert collected(proc) == ["tests_bench/test_cases.py::test_case[TAU-tiny-qwen2.5-omni-base]",
                               "tests_bench/test_cases.py::test_case[TAU-tiny-qwen2.5-omni-no_audio]"], proc.output[-3000:]


@pytest.mark.parametrize("name", sorted(BAD_OPTIONS))
def test_bad_option_is_a_usage_error(quick_runs, name: str):
    proc, cache = quick_runs[name]
    assert proc.returncode == USAGE_ERROR, proc.output[-3000:]
    for word in BAD_OPTIONS[name][1]:
        assert word in proc.output, (word, proc.output[-3000:])
    assert "Traceback" not in proc.output
    assert "Loading weights" not in proc.output
    # rejected before anything was built or loaded: the run's own cache stayed empty
    assert cache is not None and not any(cache.iterdir()), sorted(p.name for p in cache.rglob("*"))
    assert proc.seconds < 240


# --------------------------------------------------------------------------- one real case

def real_args(out: Path) -> list[str]:
    """The README's run, no test path: the second time, the results folder exists (the resume recipe)."""
    return ["-k", "qwen and TAU", "--sample-limit", "1", "--results-dir", str(out / "results"), "--json-report",
            "--json-report-file", str(out / "r.json"), *SYNTHETIC]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Proc, Path]:
    out = tmp_path_factory.mktemp("real-run")
    return run(real_args(out), exe=PYTEST), out


def test_same_command_again_resumes(real_run):
    """Start the same command again: the existing results folder is read as the option's value, and the
    recorded sample is reused, not recomputed."""
    first, out = real_run
    assert first.returncode == 0, first.output[-3000:]
    again = run(real_args(out), exe=PYTEST)
    assert again.returncode == 0, again.output[-3000:]
    assert "1 passed" in again.output and "resumed" in again.output
    case = json.loads((out / "results" / "cases" / f"{CASE_ID}.json").read_text())
    assert case["n_resumed"] == 1 and case["metrics"]["n"] == 1


def test_real_run_passes(real_run):
    proc, out = real_run
    assert proc.returncode == 0, proc.output[-4000:]
    assert "1 passed" in proc.output


def test_json_report_metadata_matches_case_json(real_run):
    proc, out = real_run
    report = json.loads((out / "r.json").read_text())
    tests = [t for t in report["tests"] if t["nodeid"] == CASE_NODE]
    assert len(tests) == 1 and len(report["tests"]) == 1, [t["nodeid"] for t in report["tests"]]
    entry = tests[0]
    assert entry["outcome"] == "passed"
    meta = entry["metadata"]
    case = json.loads((out / "results" / "cases" / f"{CASE_ID}.json").read_text())

    for key in ("task", "model", "pruner", "prune_ratio", "prune_layer", "metrics", "timing", "tokens"):
        assert key in meta, key
        assert meta[key] == case[key], key
    assert (meta["task"], meta["model"], meta["pruner"]) == ("TAU", "tiny-qwen2.5-omni", "base")
    assert meta["prune_ratio"] == 0.0 and meta["prune_layer"] == 2
    assert set(meta["metrics"]) >= {"score", "score_ci", "accuracy", "accuracy_ci", "seed_f1", "seed_e2e",
                                   "parse_fail_rate", "n", "n_error"}
    assert set(meta["timing"]) >= {"prefill_ms", "decode_ms", "decode_tokens_per_s", "audio_seconds"}
    assert set(meta["tokens"]) >= {"input", "audio", "audio_kept"}
    assert meta["metrics"]["n"] == 1 and meta["metrics"]["n_error"] == 0
    assert meta["timing"]["audio_seconds"] == pytest.approx(float(SYNTHETIC[1]), abs=0.01)
    assert meta["tokens"]["audio"] == float(SYNTHETIC[1]) * 25 == meta["tokens"]["audio_kept"]
    assert meta["timing"]["prefill_ms"] > 0


def test_results_directory_layout(real_run):
    proc, out = real_run
    results = out / "results"
    assert (results / "manifest.json").is_file()
    assert (results / "summary.json").is_file()
    assert (results / "leaderboard.md").is_file()
    jsonl = sorted((results / "samples").glob("*.jsonl"))
    assert [p.name for p in jsonl] == [f"{CASE_ID}.jsonl"]
    records = [json.loads(line) for line in jsonl[0].read_text().splitlines() if line.strip()]
    assert len(records) == 1
    assert records[0]["status"] in ("ok", "invalid")
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["options"]["tasks"] == TASKS.names()  # -k selects cases; --tasks was left at "all"
    assert manifest["options"]["sample_limit"] == 1
    assert "300 s" in manifest["models"]["tiny-qwen2.5-omni"]["long_audio"]  # what long audio gets, per model
    summary = json.loads((results / "summary.json").read_text())
    assert [c["case_id"] for c in summary["cases"]] == [CASE_ID]
    assert CASE_ID in (results / "leaderboard.md").read_text()


def marathon(*args: str) -> Proc:
    exe = Path(sys.executable).parent / "marathon"
    assert exe.is_file(), f"console script missing: {exe}"
    return run(list(args), exe=[str(exe)], timeout=300)


def read_metrics(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text())["metrics"] for p in sorted((results / "cases").glob("*.json"))}


def test_rescore_leaves_metrics_unchanged_then_follows_an_edit(real_run, tmp_path: Path):
    proc, out = real_run
    assert proc.returncode == 0, proc.output[-2000:]
    results = tmp_path / "results"
    shutil.copytree(out / "results", results)
    before = read_metrics(results)
    assert list(before) == [CASE_ID]

    again = marathon("rescore", str(results))
    assert again.returncode == 0, again.output[-3000:]
    assert read_metrics(results) == before

    # Edit one saved response, rescore: the case follows the edited answer.
    jsonl = results / "samples" / f"{CASE_ID}.jsonl"
    records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    record = next(r for r in records if r["status"] != "error")
    n_scored = before[CASE_ID]["n_scored"]
    if record["correct"]:
        wrong = next(letter for letter in record["letters"] if letter != record["target_letter"])
        record["response"], delta = wrong, -100.0 / n_scored
    else:
        record["response"], delta = record["target_letter"], 100.0 / n_scored
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    edited = marathon("rescore", str(results))
    assert edited.returncode == 0, edited.output[-3000:]
    after = read_metrics(results)[CASE_ID]
    assert after["accuracy"] == pytest.approx(before[CASE_ID]["accuracy"] + delta, abs=1e-3)
    assert after["n"] == before[CASE_ID]["n"]
    rescored = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    fixed = next(r for r in rescored if r["sample_id"] == record["sample_id"])
    assert fixed["status"] == "ok" and fixed["correct"] is (delta > 0)
    assert fixed["parse_rule"] == "exact_letter"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["cases"][0]["metrics"]["accuracy"] == after["accuracy"]
