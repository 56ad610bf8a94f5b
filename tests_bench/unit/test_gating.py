"""Regression gating on hand-built cases: the Wilson bound, a known drop trips the gate and a within-noise
change does not, timing and same-run retained gates, the baseline file and `marathon compare`."""

from __future__ import annotations

from pathlib import Path

import pytest

from marathon_lib.cli import main
from marathon_lib.gating import (
    GateConfig,
    compare,
    failures,
    format_checks,
    gate_case,
    load_baseline,
    make_baseline,
    retained_check,
    wilson_lower_bound,
)
from marathon_lib.results import ResultsDir, write_json


def case(task: str = "TAU", pruner: str = "base", ratio: float = 0.0, score: float | None = 80.0, n: int = 200,
         prefill: float = 100.0, tokens_per_s: float = 40.0) -> dict:
    """The fields of a case JSON (scoring.build_case) that gating reads."""
    case_id = f"{task}-tiny-qwen2.5-omni-{pruner}" + ("" if pruner == "base" else f"-r{ratio:g}-L2")
    return {"case_id": case_id, "task": task, "model": "tiny-qwen2.5-omni", "pruner": pruner, "prune_ratio": ratio,
            "prune_layer": 2, "task_version": "1",
            "metrics": {"n": n, "n_error": 0, "n_scored": n, "score": score},
            "timing": {"prefill_ms": prefill, "prefill_ms_median": prefill, "decode_ms": 100.0,
                       "decode_tokens_per_s": tokens_per_s}}


def entry(**kwargs: float) -> dict:
    return make_baseline([case(**kwargs)])["cases"]["TAU-tiny-qwen2.5-omni-base"]


def test_wilson_lower_bound() -> None:
    # statsmodels proportion_confint(80, 100, alpha=0.10, method="wilson")[0]: the one-sided 95 % bound
    assert wilson_lower_bound(0.8, 100) == pytest.approx(0.72669, abs=1e-5)
    assert wilson_lower_bound(0.8, 400) > wilson_lower_bound(0.8, 100)  # more samples, tighter bound
    assert wilson_lower_bound(0.0, 50) == 0.0 and wilson_lower_bound(0.5, 0) == 0.0
    assert 0 < wilson_lower_bound(1.0, 1) < 0.5  # one perfect sample proves little


def test_known_drop_trips_the_gate_and_noise_does_not() -> None:
    base = entry(score=80.0, n=200)  # Wilson bound at n=200: 74.96
    (noise,) = gate_case(case(score=77.0, n=200), base, GateConfig())
    assert noise.passed and noise.kind == "score"
    (drop,) = gate_case(case(score=70.0, n=200), base, GateConfig())
    assert not drop.passed
    assert (drop.baseline, drop.measured, drop.n, drop.bound) == (80.0, 70.0, 200, pytest.approx(74.9606, abs=1e-3))
    assert drop.message == ("TAU-tiny-qwen2.5-omni-base: score 70.00 < 74.96 (Wilson lower bound (z=1.645) at "
                            "n=200); baseline 80.00 at n=200, measured n=200")
    # the bound is at the case's n: the same 3-point dip on only 20 samples is noise
    assert gate_case(case(score=77.0, n=20), base, GateConfig())[0].passed
    (none,) = gate_case(case(score=None, n=0), base, GateConfig())
    assert not none.passed and "no scored samples" in none.message


def test_fixed_point_tolerance() -> None:
    base = entry(score=80.0)
    assert not gate_case(case(score=77.0), base, GateConfig(max_score_drop=2.0))[0].passed
    (ok,) = gate_case(case(score=77.0), base, GateConfig(max_score_drop=5.0))
    assert ok.passed and ok.bound == 75.0 and "baseline − 5 points" in ok.message


def test_slowdown_gate() -> None:
    base = entry(prefill=100.0, tokens_per_s=40.0)
    assert [c.kind for c in gate_case(case(prefill=500.0), base, GateConfig())] == ["score"]  # off by default
    checks = gate_case(case(prefill=130.0, tokens_per_s=38.0), base, GateConfig(max_slowdown=1.2))
    verdicts = {c.kind: c.passed for c in checks}
    assert verdicts == {"score": True, "prefill": False, "decode": True}
    prefill = next(c for c in checks if c.kind == "prefill")
    assert prefill.message == ("TAU-tiny-qwen2.5-omni-base: median prefill ms 130.00 vs baseline 100.00: 1.30× > "
                               "allowed 1.2×")
    assert prefill.bound == 120.0  # the limit in the measured unit (ms)
    slow_decode = gate_case(case(tokens_per_s=20.0), base, GateConfig(max_slowdown=1.2))  # half the tokens/s
    assert [c.kind for c in failures(slow_decode)] == ["decode"]


def test_same_run_retained_gate() -> None:
    base = case(score=80.0)
    assert retained_check(case(pruner="dart", ratio=0.5, score=78.0), base, 90.0).passed
    low = retained_check(case(pruner="dart", ratio=0.5, score=60.0), base, 90.0)
    assert not low.passed and "retains 75.0 % of base 80.00" in low.message
    assert retained_check(case(pruner="dart", ratio=0.5, score=0.0), case(score=0.0), 90.0).passed  # undefined
    run = [base, case(pruner="dart", ratio=0.5, score=60.0), case("HAD", pruner="dart", ratio=0.5, score=1.0)]
    control = case(score=20.0) | {"case_id": "TAU-tiny-qwen2.5-omni-no_audio", "control": "no_audio"}
    checks = compare([*run, control], make_baseline([]), GateConfig(min_retained=90.0))
    # HAD has no base; the no_audio control is expected to drop and is not gated
    assert [(c.case_id, c.passed) for c in checks] == [("TAU-tiny-qwen2.5-omni-dart-r0.5-L2", False)]


def test_compare_reports_missing_and_new_cases_without_failing() -> None:
    baseline = make_baseline([case(), case("HAD")])
    checks = compare([case(), case("GTZAN")], baseline, GateConfig())
    assert [(c.case_id, c.kind, c.passed) for c in checks] == [
        ("TAU-tiny-qwen2.5-omni-base", "score", True), ("HAD-tiny-qwen2.5-omni-base", "missing", True)]
    lines = format_checks(checks).splitlines()
    assert lines[0].split() == ["case", "check", "baseline", "measured", "n", "bound", "result"]
    assert lines[2].split() == ["TAU-tiny-qwen2.5-omni-base", "score", "80.00", "80.00", "200", "74.96", "ok"]


def test_baseline_and_compare_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def results(name: str, cases: list[dict]) -> str:
        store = ResultsDir(tmp_path / name).ensure()
        for c in cases:
            store.write_case(c)
        write_json(store.root / "manifest.json", {"device": {"cuda": "NVIDIA H100", "cpu": "x86_64"}})
        return str(store.root)

    before = results("before", [case(), case(pruner="dart", ratio=0.5, score=76.0)])
    baseline_file = tmp_path / "baseline.json"
    assert main(["baseline", before, "--out", str(baseline_file)]) == 0
    stored = load_baseline(baseline_file)  # what the pytest --baseline option reads
    assert stored["device"] == "NVIDIA H100"
    assert stored["cases"]["TAU-tiny-qwen2.5-omni-dart-r0.5-L2"] == {
        "task": "TAU", "model": "tiny-qwen2.5-omni", "pruner": "dart", "prune_ratio": 0.5, "prune_layer": 2,
        "task_version": "1", "score": 76.0, "n": 200, "prefill_ms_median": 100.0, "decode_tokens_per_s": 40.0}

    same = results("same", [case(score=78.0), case(pruner="dart", ratio=0.5, score=75.0)])
    assert main(["compare", same, str(baseline_file)]) == 0
    dropped = results("dropped", [case(score=78.0), case(pruner="dart", ratio=0.5, score=60.0)])
    assert main(["compare", dropped, str(baseline_file)]) == 1
    out = capsys.readouterr().out
    assert "FAIL TAU-tiny-qwen2.5-omni-dart-r0.5-L2: score 60.00 < " in out and "2 checks, 1 failed" in out
    assert main(["compare", same, before, "--min-retained", "99"]) == 1  # a results dir works as the baseline too
    assert "retains 96.2 % of base 78.00" in capsys.readouterr().out
    assert main(["compare", same, str(tmp_path / "before" / "manifest.json")]) == 2  # not a baseline file
    assert "is not a marathon baseline" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        load_baseline(tmp_path / "broken.json")
