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

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (MarathonError, FileNotFoundError, ValueError) as err:
        print(f"marathon {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
