"""Whole-process cost of a sweep in sample-major order against case order (`marathon sweep-bench`).

Each run is one fresh `pytest tests_bench/test_cases.py` process over the same sweep (tasks x samples, base and
every pruner at every ratio, `--reuse-audio-encoder`), into its own empty results directory, differing only in
`--order`. Orders alternate (sample, case, then case, sample, ...) so drift of a shared machine falls on both;
each pair gives a ratio, and the median ratio is the figure. Per process: wall time, CPU time and peak RSS (the
child's own rusage, `os.wait4`). From the records: how often prepared inputs and encoder output were reused, the
share of the wall spent inside timed generations (the model's busy share: on a GPU, CUDA-event times), whether both
orders gave the same responses, and the projected hours for the release at the measured cost per (sample x case).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .results import ResultsDir

ROOT = Path(__file__).resolve().parents[1]
RELEASE_SAMPLES = 6563  # the release card's total over the 10 tasks
RELEASE_CASES = 1 + 4 * 9  # base + 4 pruners x 9 ratios


def sweep_command(order: str, results_dir: Path, *, model: str, tasks: str, samples: int, seconds: float,
                  pruners: str, ratios: str, device: str, decode: str) -> list[str]:
    cases = ROOT / "tests_bench" / "test_cases.py"
    if not cases.is_file():
        raise FileNotFoundError(f"sweep-bench runs the suite's own cases file, which is not here: {cases} "
                                "(run it from a checkout: pip install -e .)")
    return [sys.executable, "-m", "pytest", str(cases), "-q", "-p", "no:cacheprovider", "--models", model,
            "--tasks", tasks, "--synthetic-seconds", f"{seconds:g}", "--synthetic-samples", str(samples),
            "--sample-limit", str(samples), "--pruners", f"base,{pruners}", "--prune-ratio", ratios,
            "--reuse-audio-encoder", "--order", order, "--device", device, "--decode", decode,
            "--results-dir", str(results_dir)]


def run_once(command: list[str], threads: int) -> dict[str, Any]:
    """One whole process: wall (perf counter), CPU and peak RSS of that child alone."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if child.returncode != 0:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"sweep process failed ({child.returncode}): {' '.join(command)}\n{tail}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def record_figures(results_dir: Path) -> dict[str, Any]:
    """What the records say: reuse counts, the time inside timed generations, responses by (case, sample)."""
    results = ResultsDir(results_dir)
    records = {case["case_id"]: results.read_samples(case["case_id"]) for case in results.read_cases()}
    every = [r for rs in records.values() for r in rs if r["status"] != "error"]
    warmups = [c["timing"]["warmup_ms"] or 0.0 for c in results.read_cases()]
    return {
        "cases": len(records),
        "records": len(every),
        "inputs_reused": sum(bool(r.get("inputs_reused")) for r in every),
        "encoder_reused": sum(bool(r.get("encoder_reused")) for r in every),
        "generation_s": round((sum(r["timing"]["latency_ms"] or 0.0 for r in every) + sum(warmups)) / 1000, 2),
        "encoder_s": round(sum(r["timing"].get("encoder_ms") or 0.0 for r in every
                               if not r["timing"].get("encoder_ms_reused")) / 1000, 2),
        "responses": {f"{case_id}/{r['sample_id']}": r["response"] for case_id, rs in records.items() for r in rs},
    }


def run_sweep_bench(*, model: str = "tiny-qwen2.5-omni", tasks: str = "TAU,HAD", samples: int = 40,
                    seconds: float = 30.0, pruners: str = "random,frame,fast_v,dart", ratios: str = "0.3,0.5,0.7",
                    pairs: int = 2, threads: int = 1, device: str = "cpu", decode: str = "eager",
                    workdir: Path | None = None) -> dict[str, Any]:
    from .models import load_model, resolve_model
    from .paths import cache_root
    from .synthetic import ensure_synthetic_datasets

    # outside the timed processes: the synthetic data and the model's checkpoint, built once and cached
    ensure_synthetic_datasets(cache_root() / "data", seconds=seconds, samples_per_task=samples, seed=0)
    if not model.startswith("shape:"):
        load_model(resolve_model(model), cache_root=cache_root() / "models", device="cpu", dtype="float32",
                   attn_implementation="sdpa")
    settings = dict(model=model, tasks=tasks, samples=samples, seconds=seconds, pruners=pruners, ratios=ratios,
                    device=device, decode=decode)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sweep-bench-", dir=workdir) as scratch:
        for pair in range(pairs):
            orders = ("sample", "case") if pair % 2 == 0 else ("case", "sample")
            for order in orders:
                results_dir = Path(scratch) / f"pair{pair}-{order}"
                figures = run_once(sweep_command(order, results_dir, **settings), threads)
                runs.append({"pair": pair, "order": order, **figures, **record_figures(results_dir)})
                print(f"pair {pair + 1}/{pairs} --order {order}: {figures['wall_s']} s wall, {figures['cpu_s']} s "
                      f"CPU, peak RSS {figures['peak_rss_mb']} MB", file=sys.stderr, flush=True)
    return summarize(runs, settings, pairs, threads)


def summarize(runs: list[dict[str, Any]], settings: dict[str, Any], pairs: int, threads: int) -> dict[str, Any]:
    by = {(r["pair"], r["order"]): r for r in runs}
    ratios = {key: [by[p, "sample"][key] / by[p, "case"][key] for p in range(pairs)]
              for key in ("wall_s", "cpu_s", "peak_rss_mb")}
    same = all(by[p, "sample"]["responses"] == by[p, "case"]["responses"] for p in range(pairs))
    per_order: dict[str, Any] = {}
    for order in ("sample", "case"):
        mine = [r for r in runs if r["order"] == order]
        units = mine[0]["records"] or 1  # (sample x case) records of one run
        wall = statistics.median(r["wall_s"] for r in mine)
        per_order[order] = {
            "wall_s": wall, "cpu_s": statistics.median(r["cpu_s"] for r in mine),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in mine),
            "records": mine[0]["records"], "inputs_reused": mine[0]["inputs_reused"],
            "encoder_reused": mine[0]["encoder_reused"],
            "busy_share": round(statistics.median(r["generation_s"] / r["wall_s"] for r in mine), 3),
            "encoder_runs_s": statistics.median(r["encoder_s"] for r in mine),
            # the whole release (every sample x base + 4 pruners x 9 ratios) at this run's wall per record
            "projected_release_h": round(wall / units * RELEASE_SAMPLES * RELEASE_CASES / 3600, 1),
        }
    return {
        "settings": settings, "pairs": pairs, "threads": threads, "machine": platform.node(),
        "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": [{k: v for k, v in r.items() if k != "responses"} for r in runs],
        "orders": per_order,
        "ratio": {key: round(statistics.median(values), 3) for key, values in ratios.items()},
        "ratio_per_pair": {key: [round(v, 3) for v in values] for key, values in ratios.items()},
        "responses_identical": same,
    }


def format_sweep_table(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"sweep-bench: {s['model']} on {s['device']} ({s['decode']} decode), {s['tasks']} x {s['samples']} synthetic "
        f"samples x {s['seconds']:g} s, base + {s['pruners']} x {s['ratios']}, --reuse-audio-encoder; "
        f"{result['pairs']} alternating pairs, {result['threads']} torch thread(s), {result['date']}",
        f"{'order':<7} {'wall s':>8} {'CPU s':>8} {'RSS MB':>8} {'records':>8} {'inputs reused':>14} "
        f"{'encoder reused':>15} {'busy':>6} {'release h':>10}",
    ]
    for order, row in result["orders"].items():
        lines.append(f"{order:<7} {row['wall_s']:>8.1f} {row['cpu_s']:>8.1f} {row['peak_rss_mb']:>8.0f} "
                     f"{row['records']:>8} {row['inputs_reused']:>14} {row['encoder_reused']:>15} "
                     f"{row['busy_share']:>6.2f} {row['projected_release_h']:>10.1f}")
    ratio = result["ratio"]
    lines.append(f"sample-major / case order (median of {result['pairs']} pairs): wall {ratio['wall_s']:.3f}x "
                 f"(target <= 0.35x; per pair {result['ratio_per_pair']['wall_s']}), CPU {ratio['cpu_s']:.3f}x, "
                 f"peak RSS {ratio['peak_rss_mb']:.3f}x; responses identical in both orders: "
                 f"{'yes' if result['responses_identical'] else 'NO'}")
    return "\n".join(lines)
