"""The benchmark matrix: one test per (task, model, method) case, built from the command-line options."""

from __future__ import annotations

import json
import warnings

import pytest

from fixtures.sweep import case_runner, case_samples
from marathon_lib.gating import GateConfig, failures, gate_case, retained_check
from marathon_lib.schema import CaseSpec, is_base, is_control

METADATA_KEYS = ("case_id", "task", "task_code", "model", "pruner", "prune_ratio", "prune_layer", "press",
                 "compression_ratio", "press_scope", "press_mode", "control", "max_new_tokens", "generation_capped",
                 "protocol", "data", "metrics", "timing", "tokens")


def live_progress(config: pytest.Config):
    """One line per finished sample on the terminal while the case runs (output capture suspended)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return None

    def write(line: str) -> None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"  {line}")

    return write


def test_case(case: CaseSpec, run_options, dataset, case_model, prune_hook, kv_press, results, gate, sample_major,
              json_metadata: dict, request: pytest.FixtureRequest) -> None:
    if case.task in dataset.missing:  # a data root holding only some tasks: this one is absent (or ambiguous)
        pytest.fail(dataset.missing[case.task], pytrace=False)
    selection, samples = case_samples(case, run_options, dataset)
    if not samples and run_options.shard:
        pytest.skip(f"shard {run_options.shard[0]}/{run_options.shard[1]} holds no sample of {case.case_id}")
    runner = case_runner(case, case_model, run_options, dataset, results, selection, prune_hook, kv_press,
                         live_progress(request.config))
    # --order sample: computed with the rest of its (task, model) group, sample by sample (marathon_lib.sweep)
    summary = runner.run(samples, sample_major.take(request, runner, samples, prune_hook))

    json_metadata.update({key: summary[key] for key in METADATA_KEYS})  # pytest-json-report, per case
    model_errors = [e for e in summary["errors"] if e["kind"] == "model"]
    assert not model_errors, f"model failed on {len(model_errors)} sample(s): {model_errors[:3]}"
    data_errors = [e for e in summary["errors"] if e["kind"] == "data"]
    if data_errors:
        warnings.warn(f"{case.case_id}: {len(data_errors)} unusable sample(s) recorded as errors: {data_errors[:3]}",
                      stacklevel=1)
    assert summary["metrics"]["n_scored"] > 0, f"{case.case_id}: no usable sample among {len(samples)}"
    failed = failures(gate_checks(summary, results, *gate))
    assert not failed, "regression gate:\n" + "\n".join(check.message for check in failed)


def gate_checks(summary: dict, results, baseline: dict | None, config: GateConfig) -> list:
    """Against the committed baseline, and (pruned/press cases) against this run's base case."""
    checks = gate_case(summary, baseline["cases"].get(summary["case_id"]), config) if baseline else []
    base_path = results.case_path(CaseSpec(summary["task"], summary["model"]).case_id)
    if config.min_retained is not None and not is_base(summary) and not is_control(summary) and base_path.is_file():
        checks.append(retained_check(summary, json.loads(base_path.read_text()), config.min_retained))
    return checks
