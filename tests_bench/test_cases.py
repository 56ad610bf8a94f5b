"""The benchmark matrix: one test per (task, model, method) case, built from the command-line options."""

from __future__ import annotations

import json
import warnings

import pytest

from marathon_lib.gating import GateConfig, failures, gate_case, retained_check
from marathon_lib.options import in_shard
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec, is_base, is_control
from marathon_lib.tasks import TASKS

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


def test_case(case: CaseSpec, run_options, dataset, case_model, prune_hook, kv_press, results, gate,
              json_metadata: dict, request: pytest.FixtureRequest) -> None:
    spec = TASKS.get(case.task)
    if case.task in dataset.missing:  # a data root holding only some tasks: this one is absent (or ambiguous)
        pytest.fail(dataset.missing[case.task], pytrace=False)
    selection = spec.select(dataset.path, run_options.protocol, run_options.sample_limit)
    samples = [s for s in selection.samples if in_shard(case.case_id, s.sample_id, run_options.shard)]
    if not samples and run_options.shard:
        pytest.skip(f"shard {run_options.shard[0]}/{run_options.shard[1]} holds no sample of {case.case_id}")
    progress = live_progress(request.config)
    runner = CaseRunner(case, spec, case_model, results, progress=progress, hook=prune_hook, seed=run_options.seed,
                        shard=run_options.shard, press=kv_press, max_new_tokens=run_options.max_new_tokens,
                        protocol=run_options.protocol, data=dataset.case_data(selection))
    summary = runner.run(samples)

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
