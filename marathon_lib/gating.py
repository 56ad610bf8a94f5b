"""Regression gating: a committable baseline of per-case score, n and timing, and pure checks against it.

Two gates (docs/gpu-ci.md):
- against a stored baseline: a case fails when its score falls below the baseline's one-sided Wilson lower
  bound at the case's n (vLLM's accuracy gate; z = 1.645, score/100 taken as a proportion), or below
  baseline − `max_score_drop` points when that is given; or when its prefill or decode time per token
  grows by more than `max_slowdown` (a ratio; off by default because timings only compare on the same
  GPU SKU);
- same-run differential: a pruned case must keep `min_retained` % of the score of the `base` case of the
  same (task, model) in the same run (off by default; control cases such as no_audio are not gated).

Everything here is a pure function of dicts (case JSONs, the baseline JSON), so the pytest `--baseline`
option and `marathon compare` share it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .results import now_iso
from .schema import SCHEMA_VERSION, is_base, is_control
from .stats import Z_ONE_SIDED_95, wilson_lower_bound

BASELINE_KIND = "audiomarathon-baseline"


@dataclass(frozen=True)
class GateConfig:
    max_score_drop: float | None = None  # points; None: the Wilson lower bound at the case's n
    max_slowdown: float | None = None  # e.g. 1.2 = fail when 20 % slower; None: timing not gated
    min_retained: float | None = None  # % of the same-run base score; None: not gated
    z: float = Z_ONE_SIDED_95


@dataclass(frozen=True)
class Check:
    case_id: str
    kind: str  # score | prefill | decode | retained | missing
    passed: bool
    message: str
    baseline: float | None = None
    measured: float | None = None
    bound: float | None = None
    n: int | None = None


def case_n(case: Mapping[str, Any]) -> int:
    """Samples behind the score: the scored ones (errors are excluded from the metric)."""
    metrics = case["metrics"]
    return int(metrics.get("n_scored", metrics["n"] - metrics.get("n_error", 0)))


def baseline_entry(case: Mapping[str, Any]) -> dict[str, Any]:
    timing = case["timing"]
    return {
        "task": case["task"], "model": case["model"], "pruner": case["pruner"],
        "prune_ratio": case["prune_ratio"], "prune_layer": case["prune_layer"],
        "task_version": case.get("task_version"),
        "score": case["metrics"]["score"],
        "n": case_n(case),
        "prefill_ms_median": timing.get("prefill_ms_median", timing.get("prefill_ms")),
        "decode_tokens_per_s": timing.get("decode_tokens_per_s"),
    }


def make_baseline(cases: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The committable baseline: one entry per case id, plus where the timings were measured."""
    device = (manifest or {}).get("device", {})
    return {
        "kind": BASELINE_KIND,
        "schema_version": SCHEMA_VERSION,
        "created": now_iso(),
        "device": device.get("cuda") or device.get("cpu"),
        "git_sha": (manifest or {}).get("git", {}).get("sha"),
        "cases": {case["case_id"]: baseline_entry(case) for case in sorted(cases, key=lambda c: c["case_id"])},
    }


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read a baseline JSON; ValueError naming the file when it is not one."""
    try:
        baseline = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(baseline, dict) or baseline.get("kind") != BASELINE_KIND \
            or not isinstance(baseline.get("cases"), Mapping):
        raise ValueError(f"{path} is not a marathon baseline (write one with `marathon baseline RESULTS_DIR`)")
    return baseline


def gate_case(case: Mapping[str, Any], entry: Mapping[str, Any] | None, config: GateConfig) -> list[Check]:
    """Checks of one measured case against its baseline entry (none when the baseline lacks the case)."""
    if entry is None:
        return []
    checks = [_score_check(case, entry, config)]
    if config.max_slowdown is not None:
        checks += _timing_checks(case, entry, config.max_slowdown)
    return checks


def _score_check(case: Mapping[str, Any], entry: Mapping[str, Any], config: GateConfig) -> Check:
    case_id, base, measured, n = case["case_id"], entry["score"], case["metrics"]["score"], case_n(case)
    if base is None:
        return Check(case_id, "score", True, f"{case_id}: baseline has no score, not gated", n=n)
    if config.max_score_drop is not None:
        bound, rule = base - config.max_score_drop, f"baseline − {config.max_score_drop:g} points"
    else:
        bound = 100.0 * wilson_lower_bound(base / 100.0, n, config.z)
        rule = f"Wilson lower bound (z={config.z:g}) at n={n}"
    passed = measured is not None and measured >= bound
    version = ("" if entry.get("task_version") in (None, case.get("task_version"))
               else f" [task version {entry['task_version']} -> {case.get('task_version')}]")
    shown = "none (no scored samples)" if measured is None else f"{measured:.2f}"
    message = (f"{case_id}: score {shown} {'>=' if passed else '<'} {bound:.2f} ({rule}); "
               f"baseline {base:.2f} at n={entry['n']}, measured n={n}{version}")
    return Check(case_id, "score", passed, message, base, measured, round(bound, 4), n)


def _timing_checks(case: Mapping[str, Any], entry: Mapping[str, Any], max_slowdown: float) -> list[Check]:
    case_id, timing = case["case_id"], case["timing"]
    measured_prefill = timing.get("prefill_ms_median", timing.get("prefill_ms"))
    # decode is compared per token (tokens/s), so a longer answer is not a slowdown
    pairs = (("prefill", entry.get("prefill_ms_median"), measured_prefill, "median prefill ms", False),
             ("decode", entry.get("decode_tokens_per_s"), timing.get("decode_tokens_per_s"), "decode tok/s", True))
    checks = []
    for kind, base, measured, what, higher_is_faster in pairs:
        if not base or not measured:
            continue
        slowdown = base / measured if higher_is_faster else measured / base
        passed = slowdown <= max_slowdown
        limit = base / max_slowdown if higher_is_faster else base * max_slowdown  # in the measured unit
        checks.append(Check(
            case_id, kind, passed,
            f"{case_id}: {what} {measured:.2f} vs baseline {base:.2f}: {slowdown:.2f}× "
            f"{'<=' if passed else '>'} allowed {max_slowdown:g}×",
            base, measured, round(limit, 4), case_n(case)))
    return checks


def retained_check(case: Mapping[str, Any], base: Mapping[str, Any], min_retained: float) -> Check:
    """Same-run differential gate: a pruned case keeps ≥ min_retained % of its base case's score."""
    case_id, measured, reference = case["case_id"], case["metrics"]["score"], base["metrics"]["score"]
    if reference is None or reference == 0:
        return Check(case_id, "retained", True, f"{case_id}: base score {reference}, retained is undefined; not gated",
                     reference, measured, min_retained, case_n(case))
    retained = 0.0 if measured is None else 100.0 * measured / reference
    passed = retained >= min_retained
    return Check(case_id, "retained", passed,
                 f"{case_id}: retains {retained:.1f} % of base {reference:.2f} (score "
                 f"{'none' if measured is None else f'{measured:.2f}'}, n={case_n(case)}) "
                 f"{'>=' if passed else '<'} {min_retained:g} %",
                 reference, measured, min_retained, case_n(case))


def retained_checks(cases: Sequence[Mapping[str, Any]], min_retained: float) -> list[Check]:
    bases = {(c["task"], c["model"]): c for c in cases if is_base(c)}
    return [retained_check(c, bases[(c["task"], c["model"])], min_retained)
            for c in sorted(cases, key=lambda c: c["case_id"])
            if not is_base(c) and not is_control(c) and (c["task"], c["model"]) in bases]


def compare(cases: Sequence[Mapping[str, Any]], baseline: Mapping[str, Any], config: GateConfig) -> list[Check]:
    """Every gate over one run: each case against the baseline, then the same-run retained gate.

    A baseline case that this run did not produce is reported (kind `missing`) but does not fail: a run
    may select a subset with -k or --tasks."""
    entries = baseline["cases"]
    checks = []
    for case in sorted(cases, key=lambda c: c["case_id"]):
        checks += gate_case(case, entries.get(case["case_id"]), config)
    ran = {c["case_id"] for c in cases}
    checks += [Check(case_id, "missing", True, f"{case_id}: in the baseline, not in this run")
               for case_id in sorted(set(entries) - ran)]
    if config.min_retained is not None:
        checks += retained_checks(cases, config.min_retained)
    return checks


def failures(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if not c.passed]


def format_checks(checks: Sequence[Check]) -> str:
    """A fixed-width table: case, check, baseline, measured, n, bound, verdict."""
    header = ("case", "check", "baseline", "measured", "n", "bound", "result")
    rows = [header] + [(c.case_id, c.kind, _num(c.baseline), _num(c.measured), "" if c.n is None else str(c.n),
                        _num(c.bound), "ok" if c.passed else "FAIL") for c in checks]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
