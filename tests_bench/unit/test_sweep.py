"""Sample-major sweeps (`--order sample`, marathon_lib.sweep): beyond the caches' sizes every sample's inputs and
encoder output are reused by every later case, records equal those of case order, `-k` and resume are respected,
a bad file is that sample's data error in every case; the prefetcher; the feature extractor's torch path; the
sweep-bench summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from marathon_lib.errors import DataError
from marathon_lib.models import load_model, resolve_model
from marathon_lib.paths import cache_root
from marathon_lib.prefetch import Prefetcher
from marathon_lib.pruning import PRUNERS, PruneHook
from marathon_lib.results import ResultsDir
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec
from marathon_lib.sweep import Member, run_sample_major
from marathon_lib.sweep_bench import format_sweep_table, summarize
from marathon_lib.synthetic import ensure_synthetic_datasets
from marathon_lib.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tiny-qwen2.5-omni"
N_SAMPLES = 22  # beyond the inputs and encoder caches (16 entries each)
SWEEP = ["--models", MODEL, "--tasks", "TAU", "--synthetic-seconds", "6", "--synthetic-samples", str(N_SAMPLES),
         "--pruners", "base,dart,frame", "--prune-ratio", "0.5", "--reuse-audio-encoder", "-k", "not frame"]


def bench(results: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "tests_bench/test_cases.py", "-q", "-p", "no:cacheprovider", *SWEEP,
           "--results-dir", str(results), *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def records(results: Path, case_id: str) -> list[dict]:
    return ResultsDir(results).read_samples(case_id)


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    runs = {}
    for order in ("sample", "case"):
        runs[order] = tmp_path_factory.mktemp(order)
        bench(runs[order], "--order", order, "--json-report", "--json-report-file", str(runs[order] / "report.json"))
    return runs


def test_sample_major_reuses_inputs_and_encoder_for_every_sample(orders: dict[str, Path]) -> None:
    results = orders["sample"]
    base, dart = records(results, f"TAU-{MODEL}-base"), records(results, f"TAU-{MODEL}-dart-r0.5-L2")
    assert len(base) == len(dart) == N_SAMPLES
    assert all(r["status"] != "error" for r in base + dart)
    # the first case of the group computes each sample; every later case reuses its inputs and encoder output
    assert all(r["inputs_reused"] and r["encoder_reused"] for r in dart)
    assert not any(r["encoder_reused"] for r in base)  # the warm-up's cold encoder output is never served
    assert not any(r["inputs_reused"] for r in base[1:])  # (the warm-up prepared the first sample's inputs)
    for first, later in zip(base, dart, strict=True):
        assert later["timing"]["encoder_ms_reused"] and not first["timing"]["encoder_ms_reused"]
        assert later["timing"]["encoder_ms"] == first["timing"]["encoder_ms"] > 0  # carried from the first case
        assert later["timing"]["prefill_ms"] == pytest.approx(
            later["timing"]["llm_prefill_ms"] + later["timing"]["encoder_ms"], abs=2e-3)
    case = json.loads(ResultsDir(results).case_path(f"TAU-{MODEL}-dart-r0.5-L2").read_text())
    assert case["n_resumed"] == 0 and case["encoder_reused"] == case["inputs_reused"] == N_SAMPLES
    assert case["timing"]["encoder_ms"] > 0 and case["timing"]["llm_prefill_ms"] > 0
    # -k "not frame": the deselected case is neither computed ahead nor written
    assert not ResultsDir(results).sample_path(f"TAU-{MODEL}-frame-r0.5-L2").exists()
    tests = json.loads((results / "report.json").read_text())["tests"]
    assert {t["metadata"]["case_id"] for t in tests} == {f"TAU-{MODEL}-base", f"TAU-{MODEL}-dart-r0.5-L2"}
    assert all(t["outcome"] == "passed" for t in tests)


def test_case_order_gives_the_same_records_and_loses_the_reuse(orders: dict[str, Path]) -> None:
    for case_id in (f"TAU-{MODEL}-base", f"TAU-{MODEL}-dart-r0.5-L2"):
        by_sample, by_case = records(orders["sample"], case_id), records(orders["case"], case_id)
        for a, b in zip(by_sample, by_case, strict=True):
            assert (a["sample_id"], a["response"], a["tokens"], a["key"]) == (b["sample_id"], b["response"],
                                                                              b["tokens"], b["key"])
    # case order: the base case walks all 22 samples through the 16-entry caches before dart starts
    dart = records(orders["case"], f"TAU-{MODEL}-dart-r0.5-L2")
    assert sum(r["encoder_reused"] for r in dart) < N_SAMPLES // 2


@pytest.fixture(scope="module")
def tiny(one_thread):
    torch.manual_seed(0)
    model = load_model(resolve_model(MODEL), cache_root=cache_root() / "models", device="cpu", dtype="float32",
                       attn_implementation="sdpa")
    model.reuse_audio_encoder()
    return model


def group(model, results: ResultsDir, samples: list) -> list[Member]:
    spec = TASKS.get("TAU")
    dart = PruneHook(model.text_stack(), 2, PRUNERS.get("dart"), 0.5)
    return [Member(CaseRunner(CaseSpec("TAU", model.name), spec, model, results), samples),
            Member(CaseRunner(CaseSpec("TAU", model.name, "dart", 0.5, 2), spec, model, results, hook=dart),
                   samples, dart)]


def test_a_bad_file_is_that_samples_data_error_in_every_case_and_resume_holds(tiny, tmp_path: Path) -> None:
    data = ensure_synthetic_datasets(cache_root() / "data", seconds=6.0, samples_per_task=N_SAMPLES, seed=0)
    samples = TASKS.get("TAU").samples(data, 4)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    samples[1] = replace(samples[1], audio_path=broken)
    results = ResultsDir(tmp_path / "results").ensure()
    # one case already has the first two samples (an earlier, interrupted session): they are resumed, not rerun
    CaseRunner(CaseSpec("TAU", tiny.name), TASKS.get("TAU"), tiny, results).run(samples[:2])
    members = group(tiny, results, samples)
    ahead = run_sample_major(members)
    assert len(ahead[members[0].case_id].records) == 2 and len(ahead[members[1].case_id].records) == 4
    for member in members:
        case = member.runner.run(samples, ahead[member.case_id])
        saved = {r["sample_id"]: r for r in results.read_samples(member.case_id)}
        bad = saved[samples[1].sample_id]
        assert bad["error_kind"] == "data" and str(broken) in bad["error"]
        assert all(r["status"] != "error" for sid, r in saved.items() if sid != samples[1].sample_id)
        assert [e["sample_id"] for e in case["errors"]] == [samples[1].sample_id]
        assert case["n_resumed"] == (2 if member.runner.case.pruner == "base" else 0)
    again = group(tiny, results, samples)  # a rerun: nothing left to compute, every record resumed
    assert all(not a.records for a in run_sample_major(again).values())
    assert all(m.runner.run(samples)["n_resumed"] == 4 for m in again)


def test_prefetcher_stays_bounded_and_raises_where_taken() -> None:
    built: list[int] = []
    lock = threading.Lock()

    def build(item: int) -> int:
        with lock:
            built.append(item)
        if item == 3:
            raise DataError("sample 3: cannot decode")
        return item * 10

    prefetcher = Prefetcher(range(10), build, depth=2)
    for item in range(10):
        future = prefetcher.take(item)
        assert len(prefetcher.futures) <= 2 and max(built, default=-1) <= item + 2  # never more than 2 ahead
        if item == 3:
            with pytest.raises(DataError, match="sample 3"):
                future.result()
        else:
            assert future.result() == item * 10
    prefetcher.close()
    assert sorted(built) == list(range(10))
    skipping = Prefetcher(range(4), build, depth=2, wanted=lambda item: item % 2 == 0)
    assert skipping.take(0).result() == 0 and skipping.take(1) is None and skipping.take(2).result() == 20
    skipping.close()
    assert Prefetcher(range(4), build, depth=0).take(0) is None  # depth 0: nothing runs in the background


def test_feature_extractor_torch_path_equals_the_numpy_path() -> None:
    """The Whisper extractor's torch path (what runs, on the model's GPU on GPU runs) against its numpy path:
    log-mel features within 1e-4 (measured: 3e-5) on 30 s of tone and noise in the 300 s window."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=128, chunk_length=300, return_attention_mask=True)
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 30) / 16000
    clip = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    batch = np.pad(clip, (0, 16000 * 300 - clip.size))[None]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    reference = extractor._np_extract_fbank_features(batch, "cpu")
    for device in devices:
        features = extractor._torch_extract_fbank_features(batch, device)
        assert features.shape == reference.shape and np.abs(features - reference).max() < 1e-4, device


def test_the_processor_takes_the_feature_device(tiny) -> None:
    """feature_kwargs reach the extractor through the processor (on CPU the device changes nothing)."""
    clip = np.random.default_rng(1).standard_normal(16000 * 3).astype(np.float32) * 0.1
    default = tiny.processor(text="<|AUDIO|>", audio=[clip], return_tensors="pt", padding=True)
    explicit = tiny.processor(text="<|AUDIO|>", audio=[clip], return_tensors="pt", padding=True, device="cpu")
    assert torch.equal(default["input_features"], explicit["input_features"])
    assert tiny.feature_kwargs() == {}


def test_sweep_bench_summary_pairs_the_orders() -> None:
    def run(pair: int, order: str, wall: float, rss: float, reused: int) -> dict:
        return {"pair": pair, "order": order, "wall_s": wall, "cpu_s": wall * 0.9, "peak_rss_mb": rss, "cases": 2,
                "records": 40, "inputs_reused": reused, "encoder_reused": reused, "generation_s": wall / 2,
                "encoder_s": 1.0, "responses": {"a/1": "x"}}

    runs = [run(0, "sample", 30.0, 900.0, 20), run(0, "case", 100.0, 1000.0, 2),
            run(1, "case", 120.0, 1000.0, 2), run(1, "sample", 30.0, 950.0, 20)]
    result = summarize(runs, {"model": MODEL, "device": "cpu", "decode": "eager", "tasks": "TAU", "samples": 20,
                              "seconds": 30.0, "pruners": "dart", "ratios": "0.5"}, pairs=2, threads=1)
    assert result["ratio_per_pair"]["wall_s"] == [0.3, 0.25] and result["ratio"]["wall_s"] == 0.275
    assert result["orders"]["sample"]["inputs_reused"] == 20 and result["responses_identical"]
    table = format_sweep_table(result)
    assert "wall 0.275x" in table and "responses identical in both orders: yes" in table
