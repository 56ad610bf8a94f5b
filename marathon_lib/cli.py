"""`marathon` console script: the jobs that are not test cases."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import MarathonError
from .merge import rescore
from .options import add_options, parse_ratios, split_list
from .paths import cache_root
from .report import merge_newest, write_report
from .results import ResultsDir, write_json


def _fixtures(args: argparse.Namespace) -> None:
    from .synthetic import build_synthetic_datasets, ensure_synthetic_datasets

    if args.out:
        manifest = build_synthetic_datasets(Path(args.out), seconds=args.synthetic_seconds,
                                            samples_per_task=args.synthetic_samples,
                                            seed=args.seed, layout=args.layout)
        print(json.dumps({k: v for k, v in manifest.items() if k != "tasks"}, indent=2))
        print(f"wrote {args.out}")
    else:
        print(ensure_synthetic_datasets(cache_root() / "data", seconds=args.synthetic_seconds,
                                        samples_per_task=args.synthetic_samples,
                                        seed=args.seed, layout=args.layout))


def _data_check(args: argparse.Namespace) -> int:
    from .datacheck import check_data, check_table
    from .dataroot import open_data_root
    from .tasks import TASKS

    tasks = args.tasks.split(",") if args.tasks else TASKS.names()
    for task in tasks:
        TASKS.get(task)  # an unknown name stops here, before anything is read or downloaded
    report = check_data(open_data_root(args.root, tasks), tasks, decode=args.decode)
    print(json.dumps(report, indent=2) if args.json else check_table(report))
    gaps = any(c["status"] != "ok" for c in report["tasks"].values())
    return 1 if report["manifest_errors"] or (args.strict and gaps) else 0


def _report(args: argparse.Namespace) -> None:
    if len(args.results_dirs) > 1 and not args.out:
        raise ValueError("several results directories are merged: name the merged directory with --out")
    results = ResultsDir(args.out or args.results_dirs[0])
    if args.out:
        merged = merge_newest(args.results_dirs, results)
        for dup in merged["duplicates"]:
            print(f"{dup['case_id']}: in {len(dup['dropped']) + 1} directories, kept {dup['rule']} "
                  f"({dup['kept']['created']}) from {dup['kept']['source']}")
        print(f"merged {len(merged['cases'])} cases from {len(args.results_dirs)} directories into {results.root}")
    summary = write_report(results, plots=not args.no_plots)
    print((results.root / "leaderboard.md").read_text())
    print(f"{len(summary['cases'])} cases -> {results.root / 'summary.json'}"
          + (f", {len(summary['plots'])} plots in {results.root / 'plots'}" if "plots" in summary else ""))


def _read_manifest(results: ResultsDir) -> dict | None:
    path = results.root / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _read_cases(results_dir: str) -> list[dict]:
    results = ResultsDir(results_dir)
    if not results.cases.is_dir():
        raise FileNotFoundError(f"not a results directory (no cases/): {results.root}")
    return results.read_cases()


def _baseline(args: argparse.Namespace) -> None:
    from .gating import make_baseline

    baseline = make_baseline(_read_cases(args.results_dir), _read_manifest(ResultsDir(args.results_dir)))
    write_json(Path(args.out), baseline)
    print(f"baseline of {len(baseline['cases'])} cases (timed on {baseline['device'] or 'an unknown device'}) "
          f"-> {args.out}")


def _compare(args: argparse.Namespace) -> int:
    from .gating import GateConfig, compare, failures, format_checks, load_baseline, make_baseline

    cases = _read_cases(args.new)
    if Path(args.base).is_dir():  # a results directory: its baseline, built on the fly
        baseline = make_baseline(_read_cases(args.base), _read_manifest(ResultsDir(args.base)))
    else:
        baseline = load_baseline(args.base)
    config = GateConfig(max_score_drop=args.max_score_drop, max_slowdown=args.max_slowdown,
                        min_retained=args.min_retained, z=args.z)
    checks = compare(cases, baseline, config)
    print(format_checks(checks))
    device = (_read_manifest(ResultsDir(args.new)) or {}).get("device", {})
    measured_on = device.get("cuda") or device.get("cpu")
    if args.max_slowdown is not None and measured_on != baseline.get("device"):
        print(f"note: timings compared across machines: baseline on {baseline.get('device')}, "
              f"this run on {measured_on}")
    failed = failures(checks)
    for check in failed:
        print(f"FAIL {check.message}")
    print(f"{len(checks)} checks, {len(failed)} failed")
    return 1 if failed else 0


def _durations(args: argparse.Namespace) -> None:
    from .durations import analyse_durations, durations_histogram, durations_table
    from .tasks import TASKS

    tasks = args.tasks.split(",") if args.tasks else TASKS.names()
    for task in tasks:
        TASKS.get(task)  # an unknown name stops here, before any file is read
    analysis = analyse_durations(Path(args.data_root), tasks)
    print(durations_table(analysis))
    for task, block in analysis["tasks"].items():
        for bad in block["unusable"]:
            print(f"unusable {task} {bad['sample_id'] or '(whole task)'}: {bad['error']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "durations.json", analysis)
    durations_histogram(analysis, out / "durations_histogram.png")
    print(f"wrote {out / 'durations.json'} and {out / 'durations_histogram.png'}")


def _segment(args: argparse.Namespace) -> None:
    from . import segment

    out, rate = Path(args.out), args.sample_rate
    if args.dataset == "tau":
        result = segment.segment_tau(Path(args.meta), Path(args.audio_root), out, max_seconds=args.max_seconds,
                                     min_seconds=args.min_seconds, seed=args.seed, sample_rate=rate)
    elif args.dataset == "had":
        result = segment.segment_had(Path(args.labels), Path(args.audio_root), out, min_seconds=args.min_seconds,
                                     max_seconds=args.max_seconds, seed=args.seed, sample_rate=rate)
    elif args.dataset == "gtzan":
        result = segment.segment_gtzan(Path(args.audio_root), out, target_seconds=args.target_seconds,
                                       seed=args.seed, sample_rate=rate)
    else:
        result = segment.segment_voxceleb(Path(args.audio_root), Path(args.meta), out,
                                          target_seconds=args.target_seconds, sample_rate=rate)
    for skipped in result.skipped:
        print(f"skipped {skipped['source']}: {skipped['reason']}")
    print(f"wrote {len(result.items)} segments under {result.task_dir} ({len(result.skipped)} skipped)")


def _merge(args: argparse.Namespace) -> None:
    from .merge import merge_results

    cases = merge_results([Path(d) for d in args.results_dirs], Path(args.out))
    print(f"merged {len(cases)} cases from {len(args.results_dirs)} shard directories into {args.out}")


def _rescore(args: argparse.Namespace) -> None:
    cases = rescore(ResultsDir(args.results_dir))
    for case in cases:
        print(f"{case['case_id']}: score {case['metrics']['score']}")
    print(f"rescored {len(cases)} cases in {args.results_dir}")


def _efficiency(args: argparse.Namespace) -> None:
    import torch

    from .efficiency import format_table, run_efficiency, save

    gpu = torch.cuda.is_available() and not args.cpu
    result = run_efficiency(
        shape=args.shape or ("qwen2.5-omni-7b" if gpu else "small-cpu"),
        device="cuda" if gpu else "cpu",
        dtype=("bfloat16" if gpu else "float32") if args.dtype == "auto" else args.dtype,
        tokens=args.tokens or (7500 if gpu else 2000),
        audio_tokens=args.audio_tokens or (7436 if gpu else 1936),
        layer=args.prune_layer,
        ratios=tuple(parse_ratios(args.prune_ratio)),
        pruners=tuple(split_list(args.pruners, "--pruners")),
        repeats=args.repeats,
    )
    print(format_table(result))
    if args.out:
        save(result, args.out)
        print(f"wrote {args.out}")


def _decode_bench(args: argparse.Namespace) -> None:
    import torch

    from .decode_bench import format_decode_table, run_decode_bench
    from .efficiency import save

    gpu = torch.cuda.is_available() and not args.cpu
    if not gpu:  # compiled CPU kernels spin on OpenMP threads: any other load on the cores swamps the figures
        torch.set_num_threads(args.threads)
    result = run_decode_bench(
        model=args.model or ("shape:Qwen/Qwen2.5-Omni-7B" if gpu else "tiny-qwen2.5-omni"),
        device="cuda" if gpu else "cpu",
        dtype=("bfloat16" if gpu else "float32") if args.dtype == "auto" else args.dtype,
        prompt_tokens=args.prompt_tokens or (7500 if gpu else 2000),
        new_tokens=args.new_tokens,
        modes=tuple(args.modes.split(",")),
        prune_ratios=tuple(parse_ratios(args.prune_ratio)),
        layer=args.prune_layer,
        repeats=args.repeats,
    )
    print(format_decode_table(result))
    if args.out:
        save(result, args.out)
        print(f"wrote {args.out}")


def _sweep_bench(args: argparse.Namespace) -> None:
    from .efficiency import save
    from .sweep_bench import format_sweep_table, run_sweep_bench

    parse_ratios(args.prune_ratio)  # a bad list stops here, not inside the first timed process
    result = run_sweep_bench(model=args.models, tasks=args.tasks, samples=args.synthetic_samples,
                             seconds=args.synthetic_seconds, pruners=args.pruners, ratios=args.prune_ratio,
                             pairs=args.pairs, threads=args.threads, device=args.device, decode=args.decode)
    print(format_sweep_table(result))
    if args.out:
        save(result, args.out)
        print(f"wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marathon", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    fixtures = sub.add_parser("fixtures", help="build the synthetic datasets (seed formats, long-form audio)")
    fixtures.add_argument("--out", help="write here instead of the content-addressed cache")
    add_options(fixtures.add_argument, ("synthetic_seconds", "synthetic_samples", "seed"))  # the pytest spelling
    fixtures.add_argument("--layout", choices=("flat", "release"), default="flat",
                          help="flat: one folder per dataset; release: the AudioMarathon release tree as downloaded")
    fixtures.set_defaults(func=_fixtures)

    data = sub.add_parser("data", help="data-root tools")
    data_jobs = data.add_subparsers(dest="data_command", required=True)
    check = data_jobs.add_parser("check", help="per task: items, audio present/missing/undecodable, durations, "
                                               "rates, channels, counts against the release")
    check.add_argument("root", help="a data root folder or hf://Hezep/AudioMarathon[@revision]")
    check.add_argument("--tasks", help="comma list (default: every registered task)")
    check.add_argument("--decode", action="store_true", help="decode every file (slow) instead of reading headers")
    check.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    check.add_argument("--strict", action="store_true",
                       help="exit 1 on any gap (missing/undecodable audio, bad items, counts off), not only on a "
                            "missing or unreadable manifest")
    check.set_defaults(func=_data_check)

    report = sub.add_parser("report", help="summary.json, leaderboard.md and plots/ from results directories")
    report.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR")
    report.add_argument("--out", help="merge the directories into this one (newest copy of a repeated case wins)")
    report.add_argument("--no-plots", action="store_true", help="skip plots/ (no matplotlib import)")
    report.set_defaults(func=_report)

    baseline = sub.add_parser("baseline", help="write a committable baseline JSON (score, n, timing per case)")
    baseline.add_argument("results_dir")
    baseline.add_argument("--out", required=True, help="e.g. baselines/tiny-cpu.json")
    baseline.set_defaults(func=_baseline)

    compare = sub.add_parser("compare", help="gate a results directory against a baseline; exit 1 on a failure")
    compare.add_argument("new", help="results directory to check")
    compare.add_argument("base", help="baseline JSON, or a results directory to use as the baseline")
    add_options(compare.add_argument, ("max_score_drop", "max_slowdown", "min_retained"))
    compare.add_argument("--z", type=float, default=1.645, help="z of the Wilson bound (default 1.645)")
    compare.set_defaults(func=_compare)

    durations = sub.add_parser("durations", help="the seed's duration statistics and buckets per task")
    durations.add_argument("data_root")
    durations.add_argument("--tasks", help="comma list (default: every registered task)")
    durations.add_argument("--out", default="durations", help="directory for durations.json and the histogram PNG")
    durations.set_defaults(func=_durations)

    segment = sub.add_parser("segment", help="build long-form tasks from short clips (the seed's Segment tools)")
    datasets = segment.add_subparsers(dest="dataset", required=True)
    tau = datasets.add_parser("tau", help="TAU2020-mobile clips grouped by scene + recording")
    tau.add_argument("--meta", required=True, help="TAU meta.csv (tab-separated filename, scene_label, identifier, …)")
    tau.add_argument("--audio-root", required=True, help="directory the meta's filenames are relative to")
    tau.add_argument("--max-seconds", type=float, default=210.0)
    tau.add_argument("--min-seconds", type=float, default=90.0)
    had = datasets.add_parser("had", help="HAD spans packed into 180-300 s real / fake files")
    had.add_argument("--labels", required=True, help="HAD label file: name start-end-T/start-end-F... label")
    had.add_argument("--audio-root", required=True, help="directory holding <name>.wav")
    had.add_argument("--min-seconds", type=float, default=180.0)
    had.add_argument("--max-seconds", type=float, default=300.0)
    gtzan = datasets.add_parser("gtzan", help="GTZAN clips of one genre concatenated to a target length")
    gtzan.add_argument("--audio-root", required=True, help="GTZAN genres directory: <genre>/*.wav")
    gtzan.add_argument("--target-seconds", type=float, default=120.0)
    vox = datasets.add_parser("voxceleb", help="VoxCeleb clips of one speaker concatenated (gender task)")
    vox.add_argument("--audio-root", required=True, help="VoxCeleb wav directory: <id>/**/*.wav")
    vox.add_argument("--meta", required=True, help="VoxCeleb meta CSV with ID and Gender columns")
    vox.add_argument("--target-seconds", type=float, default=120.0)
    for parser_ in (tau, had, gtzan, vox):
        parser_.add_argument("--out", required=True, help="data root to write <TASK>/ into (must not hold it yet)")
        parser_.add_argument("--sample-rate", type=int, default=16000)
        parser_.add_argument("--seed", type=int, default=0, help="pool shuffles and distractor draws")
    segment.set_defaults(func=_segment)

    merge = sub.add_parser("merge", help="union the sample records of --shard runs (or xdist/node splits) per case")
    merge.add_argument("results_dirs", nargs="+")
    merge.add_argument("--out", required=True)
    merge.set_defaults(func=_merge)

    rescore_cmd = sub.add_parser("rescore", help="recompute all metrics from saved sample records (no model)")
    rescore_cmd.add_argument("results_dir")
    rescore_cmd.set_defaults(func=_rescore)

    efficiency = sub.add_parser("efficiency", help="prefill time of each pruner vs the ideal token fraction")
    efficiency.add_argument("--shape", help="shipped config: qwen2.5-omni-7b (GPU default), qwen2.5-omni-3b, small-cpu")
    efficiency.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is present")
    add_options(efficiency.add_argument, ("dtype",))
    efficiency.add_argument("--tokens", type=int, help="prompt tokens (default 7500 on GPU, 2000 on CPU)")
    efficiency.add_argument("--audio-tokens", type=int, help="audio tokens in the prompt (7436 / 1936)")
    add_options(efficiency.add_argument, ("pruners", "prune_ratio", "prune_layer"), pruners="random,frame,fast_v,dart",
                prune_ratio="0,0.5,0.9")
    efficiency.add_argument("--repeats", type=int, default=5)
    efficiency.add_argument("--out", help="also write the table as JSON here")
    efficiency.set_defaults(func=_efficiency)

    decode = sub.add_parser("decode-bench", help="ms per new token: eager generate vs static cache vs compiled step")
    decode.add_argument("--model", help="default shape:Qwen/Qwen2.5-Omni-7B on GPU, tiny-qwen2.5-omni on CPU")
    decode.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is present")
    add_options(decode.add_argument, ("dtype",))
    decode.add_argument("--prompt-tokens", type=int, help="prompt length (default 7500 on GPU, 2000 on CPU)")
    decode.add_argument("--new-tokens", type=int, default=64)
    decode.add_argument("--modes", default="eager,static,compiled")
    add_options(decode.add_argument, ("prune_ratio", "prune_layer"), prune_ratio="0,0.5")
    decode.add_argument("--repeats", type=int, default=3)
    decode.add_argument("--threads", type=int, default=1, help="CPU threads (CPU runs only; default 1)")
    decode.add_argument("--out", help="also write the table as JSON here")
    decode.set_defaults(func=_decode_bench)

    sweep = sub.add_parser("sweep-bench", help="whole-process wall, CPU and peak RSS of a sweep: --order sample vs "
                                               "--order case, alternated")
    add_options(sweep.add_argument, ("models", "tasks", "synthetic_samples", "synthetic_seconds", "pruners",
                                     "prune_ratio", "device", "decode"),
                tasks="TAU,HAD", synthetic_samples=40, synthetic_seconds=30.0, pruners="random,frame,fast_v,dart",
                prune_ratio="0.3,0.5,0.7", device="cpu")
    sweep.add_argument("--pairs", type=int, default=2, help="alternating (sample, case) pairs; the median ratio")
    sweep.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads of each process (default 1)")
    sweep.add_argument("--out", help="also write the figures as JSON here")
    sweep.set_defaults(func=_sweep_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0  # compare returns 1 when a gate fails
    except (MarathonError, FileNotFoundError, ValueError) as err:
        print(f"marathon {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
