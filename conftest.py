"""pytest surface of the benchmark (the user's card): options -> parametrized cases -> results directory.

    pytest tests_bench/test_cases.py -k "qwen and TAU" --prune-ratio 0.0 --sample-limit 2
"""

from __future__ import annotations

import inspect
import os
from datetime import datetime
from pathlib import Path

import pytest

from marathon_lib.errors import ConfigError
from marathon_lib.models import MODELS, family_keyword, model_policies, resolve_model
from marathon_lib.options import RunOptions, build_options
from marathon_lib.results import ResultsDir, run_manifest, write_json
from marathon_lib.runner import CaseSpec

pytest_plugins = ["fixtures.data", "fixtures.models", "fixtures.pruning", "fixtures.kv", "fixtures.tiny"]

OPTIONS_KEY = pytest.StashKey[RunOptions]()
RESULTS_ENV = "MARATHON_RESULTS_DIR"  # shared by the controller and its xdist workers
GPUS_ENV = "MARATHON_XDIST_GPUS"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("marathon", "AudioMarathon benchmark")
    group.addoption("--models", default="tiny-qwen2.5-omni", help="comma list of model names or checkpoint dirs")
    group.addoption("--tasks", default=None, help="comma list of tasks (default: all 10)")
    group.addoption("--pruners", default="base", help="comma list of pruning methods")
    group.addoption("--prune-ratio", default="0.0", help="fraction of audio tokens dropped; comma list sweeps")
    group.addoption("--prune-layer", type=int, default=2, help="decoder layer K where pruning happens")
    group.addoption("--sample-limit", type=int, default=0, help="samples per case (0 = all)")
    group.addoption("--data-root", default=None, help="AudioMarathon data (seed layout); default: synthetic data")
    group.addoption("--results-dir", default=None, help="results directory (default: results/run-<time>)")
    group.addoption("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    group.addoption("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16")
    group.addoption("--attn-impl", dest="attn_implementation", default="sdpa", help="sdpa, eager or flash_attention_2")
    group.addoption("--seed", type=int, default=0, help="seed for synthetic data and seeded methods")
    group.addoption("--synthetic-seconds", type=float, default=60.0, help="length of each synthetic clip")
    group.addoption("--synthetic-samples", type=int, default=3, help="synthetic samples per task")
    group.addoption("--shard", default=None, help="i/n: run this shard of every case's samples (Slurm arrays)")
    group.addoption("--baseline", default=None, help="baseline JSON (marathon baseline): fail cases that regress")
    group.addoption("--max-score-drop", type=float, default=None,
                    help="allowed score drop in points (default: one-sided Wilson lower bound at the case's n)")
    group.addoption("--max-slowdown", type=float, default=None, help="allowed prefill/decode slowdown ratio, e.g. 1.2")
    group.addoption("--min-retained", type=float, default=None,
                    help="pruned/press cases must keep this %% of the same run's base score")
    group.addoption("--presses", default=None, help="comma list of kvpress methods (knorm, snapkv, tova, ...)")
    group.addoption("--compression-ratio", default="0.5", help="fraction of KV entries evicted; comma list sweeps")
    group.addoption("--press-scope", default="audio", help="audio (only audio entries scored/evicted) or all")
    group.addoption("--press-mode", default="query_agnostic", help="query_agnostic (kvpress protocol) or query_aware")
    group.addoption("--decode", default="eager",
                    help="eager (HF generate), static (static per-layer KV cache) or compiled (that cache, "
                         "torch.compile'd step; compiles once per cache bucket, reported as compile_ms)")
    group.addoption("--max-new-tokens", type=int, default=0,
                    help="cap every task's new-token budget (0 = each task's own; capped ASR WER is not comparable)")
    group.addoption("--reuse-audio-encoder", action="store_true", default=False,
                    help="compute each sample's audio-encoder output once per model and reuse it in every case "
                         "(records say encoder_reused: their prefill time then excludes the encoder)")
    group.addoption("--trust-remote-code", action="store_true", default=False,
                    help="allow models whose code comes from their hub repository (Aero-1, Baichuan-Omni, Kimi-Audio)")


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


def pytest_configure(config: pytest.Config) -> None:
    pin_worker_gpu()
    record_gpus(config)
    config.addinivalue_line("markers", "benchmark_case: one (task, model, method) benchmark case")
    for keyword in sorted({family_keyword(MODELS.get(name).family) for name in MODELS.names()}):
        config.addinivalue_line("markers", f"{keyword}: cases of that model family (pytest -k {keyword})")
    results_dir = config.getoption("--results-dir") or os.environ.get(RESULTS_ENV)
    if not results_dir:
        results_dir = str(Path("results") / datetime.now().strftime("run-%Y%m%d-%H%M%S"))
    os.environ[RESULTS_ENV] = results_dir  # workers inherit it
    try:
        # every build_options parameter is the dest of the pytest option of the same name (listed once, above)
        names = [name for name in inspect.signature(build_options).parameters if name != "results_dir"]
        options = build_options(results_dir=results_dir, **{name: config.getoption(name) for name in names})
        check_prune_layer(options)
    except ConfigError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[OPTIONS_KEY] = options


def check_prune_layer(options: RunOptions) -> None:
    """--prune-layer must name a layer the model has (1..N-1); checked from the config, before any load."""
    if options.pruners == ["base"]:
        return
    from marathon_lib.models import text_layer_count
    from marathon_lib.paths import cache_root

    for name in options.models:
        entry = resolve_model(name)
        if entry.access != "local":
            continue  # no pruner runs on API/remote-code models: their pruned cases are skipped with the reason
        layers = text_layer_count(entry, cache_root() / "models")
        if options.prune_layer >= layers:
            raise ConfigError(
                f"--prune-layer {options.prune_layer}: {name} has {layers} decoder layers, so K must be in [1, {layers - 1}]"
            )


def cases_for(options: RunOptions) -> list[CaseSpec]:
    """base runs once per (task, model); every pruner once per ratio; every press once per compression ratio.
    `--pruners ''` with presses runs press cases only."""
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
def results(run_options: RunOptions) -> ResultsDir:
    results = ResultsDir(run_options.results_dir).ensure()
    manifest = results.root / "manifest.json"
    if not manifest.exists():
        write_json(manifest, run_manifest(run_options.as_manifest(), run_options.device)
                   | {"models": model_policies(run_options.models)})
    return results


@pytest.fixture(scope="session")
def gate(pytestconfig: pytest.Config):
    """(baseline or None, GateConfig) for regression gating in GPU CI."""
    from marathon_lib.gating import GateConfig, load_baseline

    path = pytestconfig.getoption("--baseline")
    config = GateConfig(max_score_drop=pytestconfig.getoption("--max-score-drop"),
                        max_slowdown=pytestconfig.getoption("--max-slowdown"),
                        min_retained=pytestconfig.getoption("--min-retained"))
    return (load_baseline(path) if path else None), config


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
