"""pytest surface of the benchmark (the user's card): options -> parametrized cases -> results directory.

    pytest tests_bench/test_cases.py -k "qwen and TAU" --prune-ratio 0.0 --sample-limit 2
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from marathon_lib.errors import ConfigError
from marathon_lib.models import MODELS, family_keyword, model_policies, resolve_model
from marathon_lib.options import SUITE_OPTIONS, RunOptions, build_options, check_prune_layer
from marathon_lib.paths import cache_root
from marathon_lib.results import ResultsDir, new_session_id, record_session, run_manifest
from marathon_lib.schema import CaseSpec

pytest_plugins = ["fixtures.data", "fixtures.models", "fixtures.pruning", "fixtures.kv", "fixtures.sweep",
                  "fixtures.tiny"]

OPTIONS_KEY = pytest.StashKey[RunOptions]()
SESSION_KEY = pytest.StashKey[str]()  # this session's id; xdist workers get the controller's (workerinput)
RESULTS_ENV = "MARATHON_RESULTS_DIR"  # shared by the controller and its xdist workers
DATA_ENV = "MARATHON_PINNED_DATA_ROOT"  # the controller's resolved data root (hf:// at its commit), for workers
GPUS_ENV = "MARATHON_XDIST_GPUS"


def pin_worker_gpu(environ: dict[str, str] | os._Environ = os.environ) -> str | None:
    """Under xdist, worker gwN sees only GPU list[N % len]; list = the caller's CUDA_VISIBLE_DEVICES
    (or all GPUs), captured by the controller. Must run before anything initialises CUDA."""
    worker, gpus = environ.get("PYTEST_XDIST_WORKER"), environ.get(GPUS_ENV)
    if not worker or not gpus:
        return None
    visible = gpus.split(",")
    chosen = visible[int(worker.removeprefix("gw")) % len(visible)]
    environ["CUDA_VISIBLE_DEVICES"] = chosen
    return chosen


def record_gpus(config: pytest.Config) -> None:
    """Controller of an xdist run: remember which GPUs the workers share out."""
    if not getattr(config.option, "numprocesses", None) or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        import torch

        visible = ",".join(str(i) for i in range(torch.cuda.device_count()))
    if visible:
        os.environ[GPUS_ENV] = visible


def pin_data_root(options: RunOptions, environ: dict[str, str] | os._Environ = os.environ) -> None:
    """Controller: hand the resolved data root (hf:// at its commit) to the xdist workers it starts."""
    if options.data_root is not None and not environ.get("PYTEST_XDIST_WORKER"):
        environ[DATA_ENV] = options.data_root.pinned


def pinned_data_root(given: str | None, environ: dict[str, str] | os._Environ = os.environ) -> str | None:
    """Worker: the controller's data root, so every worker reads one dataset commit even if the branch moves."""
    if environ.get("PYTEST_XDIST_WORKER") and given and environ.get(DATA_ENV):
        return environ[DATA_ENV]
    return given


def pytest_configure(config: pytest.Config) -> None:
    pin_worker_gpu()
    record_gpus(config)
    config.stash[SESSION_KEY] = getattr(config, "workerinput", {}).get("marathon_session") or new_session_id()
    config.addinivalue_line("markers", "benchmark_case: one (task, model, method) benchmark case")
    for keyword in sorted({family_keyword(MODELS.get(name).family) for name in MODELS.names()}):
        config.addinivalue_line("markers", f"{keyword}: cases of that model family (pytest -k {keyword})")
    results_dir = config.getoption("--results-dir") or os.environ.get(RESULTS_ENV)
    if not results_dir:
        results_dir = str(Path("results") / datetime.now().strftime("run-%Y%m%d-%H%M%S"))
    os.environ[RESULTS_ENV] = results_dir  # workers inherit it
    try:
        # the options are declared once, in marathon_lib.options.SUITE_OPTIONS (registered by the pytest11 plugin)
        given = {option.name: config.getoption(option.name) for option in SUITE_OPTIONS}
        given["data_root"] = pinned_data_root(given["data_root"])
        options = build_options(**(given | {"results_dir": results_dir}))
        pin_data_root(options)
        check_prune_layer(options, cache_root() / "models")
    except ConfigError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[OPTIONS_KEY] = options


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: its workers write under the controller's session id."""
    node.workerinput["marathon_session"] = node.config.stash[SESSION_KEY]


def cases_for(options: RunOptions) -> list[CaseSpec]:
    """base runs once per (task, model); every pruner once per ratio; every press once per compression ratio;
    every control (--controls) once."""
    cases = []
    for model in options.models:
        for task in options.tasks:
            for pruner in options.pruners:
                if pruner == "base":
                    cases.append(CaseSpec(task, model))
                else:
                    cases.extend(CaseSpec(task, model, pruner, r, options.prune_layer) for r in options.prune_ratios)
            for press in options.presses:
                cases.extend(CaseSpec(task, model, press=press, compression_ratio=c, press_scope=options.press_scope,
                                      press_mode=options.press_mode) for c in options.compression_ratios)
            cases.extend(CaseSpec(task, model, control=control) for control in options.controls)
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = cases_for(metafunc.config.stash[OPTIONS_KEY])
        metafunc.parametrize(
            "case",
            [pytest.param(c, id=c.case_id, marks=[pytest.mark.xdist_group(c.model), pytest.mark.benchmark_case,
                                                  getattr(pytest.mark, family_keyword(resolve_model(c.model).family))])
             for c in cases],
        )


@pytest.fixture(scope="session")
def run_options(pytestconfig: pytest.Config) -> RunOptions:
    return pytestconfig.stash[OPTIONS_KEY]


@pytest.fixture(scope="session")
def results(run_options: RunOptions, dataset, pytestconfig: pytest.Config) -> ResultsDir:
    session = pytestconfig.stash[SESSION_KEY]
    results = ResultsDir(run_options.results_dir, session=session).ensure()
    record_session(results.root, run_manifest(run_options.as_manifest(), run_options.device, session)
                   | {"models": model_policies(run_options.models), "data": dataset.manifest(run_options.protocol)})
    return results


@pytest.fixture(scope="session")
def gate(pytestconfig: pytest.Config):
    """(baseline or None, GateConfig) for regression gating in GPU CI."""
    from marathon_lib.gating import GateConfig, load_baseline

    options = pytestconfig.stash[OPTIONS_KEY]
    config = GateConfig(max_score_drop=options.max_score_drop, max_slowdown=options.max_slowdown,
                        min_retained=options.min_retained)
    return (load_baseline(options.baseline) if options.baseline else None), config


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # xdist worker: the controller writes the report once
    options = session.config.stash.get(OPTIONS_KEY, None)
    if options is None:
        return
    results = ResultsDir(options.results_dir)
    if results.cases.is_dir() and any(results.cases.glob("*.json")):
        from marathon_lib.report import write_report

        write_report(results)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("-", f"marathon results: {results.root} (leaderboard.md, summary.json)")
