"""`marathon` console script: the jobs that are not test cases."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import MarathonError
from .paths import cache_root
from .report import rescore, write_report
from .results import ResultsDir


def _fixtures(args: argparse.Namespace) -> None:
    from .synthetic import build_synthetic_datasets, ensure_synthetic_datasets

    if args.out:
        manifest = build_synthetic_datasets(Path(args.out), seconds=args.seconds, samples_per_task=args.samples,
                                            seed=args.seed)
        print(json.dumps({k: v for k, v in manifest.items() if k != "tasks"}, indent=2))
        print(f"wrote {args.out}")
    else:
        print(ensure_synthetic_datasets(cache_root() / "data", seconds=args.seconds, samples_per_task=args.samples,
                                        seed=args.seed))


def _report(args: argparse.Namespace) -> None:
    results = ResultsDir(args.results_dir)
    summary = write_report(results)
    print((results.root / "leaderboard.md").read_text())
    print(f"{len(summary['cases'])} cases -> {results.root / 'summary.json'}")


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
        dtype=args.dtype or ("bfloat16" if gpu else "float32"),
        tokens=args.tokens or (7500 if gpu else 2000),
        audio_tokens=args.audio_tokens or (7436 if gpu else 1936),
        layer=args.layer,
        ratios=tuple(float(r) for r in args.ratios.split(",")),
        pruners=tuple(args.pruners.split(",")),
        repeats=args.repeats,
    )
    print(format_table(result))
    if args.out:
        save(result, args.out)
        print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="marathon", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    fixtures = sub.add_parser("fixtures", help="build the synthetic datasets (seed formats, long-form audio)")
    fixtures.add_argument("--out", help="write here instead of the content-addressed cache")
    fixtures.add_argument("--seconds", type=float, default=60.0)
    fixtures.add_argument("--samples", type=int, default=3, help="samples per task (per class for HAD)")
    fixtures.add_argument("--seed", type=int, default=0)
    fixtures.set_defaults(func=_fixtures)

    report = sub.add_parser("report", help="summary.json + leaderboard.md from a results directory")
    report.add_argument("results_dir")
    report.set_defaults(func=_report)

    rescore_cmd = sub.add_parser("rescore", help="recompute all metrics from saved sample records (no model)")
    rescore_cmd.add_argument("results_dir")
    rescore_cmd.set_defaults(func=_rescore)

    efficiency = sub.add_parser("efficiency", help="prefill time of each pruner vs the ideal token fraction")
    efficiency.add_argument("--shape", help="shipped config: qwen2.5-omni-7b (GPU default), qwen2.5-omni-3b, small-cpu")
    efficiency.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is present")
    efficiency.add_argument("--dtype", help="default bfloat16 on GPU, float32 on CPU")
    efficiency.add_argument("--tokens", type=int, help="prompt tokens (default 7500 on GPU, 2000 on CPU)")
    efficiency.add_argument("--audio-tokens", type=int, help="audio tokens in the prompt (7436 / 1936)")
    efficiency.add_argument("--layer", type=int, default=2)
    efficiency.add_argument("--ratios", default="0,0.5,0.9")
    efficiency.add_argument("--pruners", default="random,frame,fast_v,dart")
    efficiency.add_argument("--repeats", type=int, default=5)
    efficiency.add_argument("--out", help="also write the table as JSON here")
    efficiency.set_defaults(func=_efficiency)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (MarathonError, FileNotFoundError, ValueError) as err:
        print(f"marathon {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
