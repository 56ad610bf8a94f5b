"""A hostile run of the benchmark, measured: SIGKILLs at random moments across a sweep under xdist, torn and
damaged result files, two sessions on one results folder, and damaged inputs of every kind the loaders meet.

    scripts/chaos.sh --kills 20 --out results/chaos          (python -m marathon_lib.chaos --help)

It prints (and writes to OUT/chaos.json) the figures that must hold: records lost 0, records doubled 0, whole
records recomputed after a kill 0, and every bad input reported as the data error that names it, identically in
every case of its task. The exit status is 1 when one of them does not hold.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .paths import cache_root
from .results import read_records, safe_name
from .synthetic import ensure_synthetic_datasets
from .tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BadInput:
    """One damaged input put into the data, and the report it must get in every case of its task."""

    task: str
    sample_id: str
    what: str
    expect: str | None  # a phrase of the data error; None: the sample must run (a symlink followed as it is)


@dataclass
class Figures:
    kills: int = 0
    kills_landed: int = 0  # the run was still going when the kill came
    torn_tails: int = 0
    damaged_lines: int = 0
    damaged_case_files: int = 0
    damaged_manifests: int = 0
    sessions_started: int = 0
    failed_runs: list[str] = field(default_factory=list)  # runs that were not killed and did not pass
    cases: int = 0
    cases_expected: int = 0
    records_expected: int = 0
    records_lost: int = 0
    records_doubled: int = 0
    unreadable_lines_left: int = 0
    whole_records_before_kills: int = 0
    records_left_for_finals: int = 0  # computed by the two final sessions running at once
    whole_records_recomputed_or_lost: int = 0
    sessions_in_manifest: int = 0
    sessions_after_manifest_damage: int = 0  # what the manifest must list: it restarts after a damaged one
    cases_naming_unknown_session: int = 0
    bad_inputs: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def ok(self) -> bool:
        return (self.records_lost == 0 and self.records_doubled == 0 and self.whole_records_recomputed_or_lost == 0
                and self.unreadable_lines_left == 0 and self.cases == self.cases_expected and not self.failed_runs
                and self.sessions_in_manifest == self.sessions_after_manifest_damage
                and self.cases_naming_unknown_session == 0
                and all(b["ok"] for b in self.bad_inputs))


# --------------------------------------------------------------------------- the damaged data

def prepare_data(out: Path, seconds: float, samples: int, seed: int) -> tuple[Path, list[BadInput]]:
    """TAU, HAD and LibriSpeech of the synthetic data, plus damaged inputs of every kind."""
    source = ensure_synthetic_datasets(cache_root() / "data", seconds=seconds, samples_per_task=samples, seed=seed)
    data = out / "data"
    shutil.rmtree(data, ignore_errors=True)
    for task in ("TAU", "HAD", "LibriSpeech"):
        shutil.copytree(source / task, data / task)
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, 8192, dtype=np.uint8).tobytes()
    good = min((data / "TAU").rglob("*.wav"))
    bad: list[BadInput] = []

    tau = data / "TAU"
    items = json.loads((tau / "acoustic_scene_task_meta.json").read_text(encoding="utf-8"))
    template = {k: v for k, v in items[0].items() if k not in ("path", "uniq_id")}

    def tau_entry(sample_id: str, path: str, what: str, expect: str | None, **extra: object) -> None:
        items.append({**template, **extra, "path": path, "uniq_id": sample_id})
        bad.append(BadInput("TAU", sample_id, what, expect))

    (tau / "bad").mkdir()
    (tau / "bad" / "noise.wav").write_bytes(noise)
    (tau / "bad" / "empty.wav").write_bytes(b"")
    sf.write(tau / "bad" / "cut.wav", np.zeros(16000, dtype=np.float32), 16000, format="WAV", subtype="PCM_16")
    header_only = (tau / "bad" / "cut.wav").read_bytes()[:44 + 2 * 80]  # cut after 80 frames: 5 ms at 16 kHz
    (tau / "bad" / "cut.wav").write_bytes(header_only)
    sf.write(tau / "bad" / "nan.wav", np.full(16000, np.nan, dtype=np.float32), 16000, format="WAV",
             subtype="FLOAT")
    blobs = out / "hub-blobs"  # a Hugging Face snapshot: the task folder holds symlinks into a blob store
    blobs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(good, blobs / "9b1f0c2e")
    (tau / "bad" / "snapshot.wav").symlink_to(os.path.relpath(blobs / "9b1f0c2e", tau / "bad"))
    had_clip = min((data / "HAD" / "real").glob("*.wav")).name
    tau_entry("escape-up", "../../../../etc/passwd", "path ../../../../etc/passwd", "leaves the task folder")
    tau_entry("escape-abs", "/etc/passwd", "absolute path /etc/passwd", "is absolute")
    tau_entry("escape-task", f"../HAD/real/{had_clip}", "another task's clip (../HAD/real/...)",
              "leaves the task folder")
    tau_entry("noise", "bad/noise.wav", "random bytes named .wav", "(not a valid audio file)")
    tau_entry("empty", "bad/empty.wav", "empty file", "the file is empty")
    tau_entry("cut", "bad/cut.wav", "WAV cut after its header (5 ms)", "audio too short: 5 ms gives no audio token")
    tau_entry("nan", "bad/nan.wav", "NaN samples", "NaN or infinite")
    tau_entry("missing", "bad/absent.wav", "missing file", "audio file not found")
    tau_entry("surrogate", "bad/noise.wav", "lone surrogate in the question", "not valid Unicode",
              question="Which scene is \ud800 this?")
    tau_entry("snapshot", "bad/snapshot.wav", "symlink into a blob store outside the task (HF cache)", None)
    (tau / "acoustic_scene_task_meta.json").write_text(json.dumps(items, indent=1), encoding="utf-8")

    for label, name, payload, what, expect in (
            ("real", "noise.wav", noise, "HAD: random bytes", "(not a valid audio file)"),
            ("fake", "cut.wav", header_only, "HAD: WAV cut after its header", "audio too short")):
        (data / "HAD" / label / name).write_bytes(payload)  # one per class: the balancing keeps all
        bad.append(BadInput("HAD", f"{label}/{name}", what, expect))

    chapter = data / "LibriSpeech" / "test-clean" / "9999" / "1"
    chapter.mkdir(parents=True)
    flac = min((data / "LibriSpeech").rglob("*.flac"))
    for utt in ("9999-1-0000", "9999-1-0001"):
        shutil.copyfile(flac, chapter / f"{utt}.flac")
    (chapter / "9999-1-0000.txt").write_bytes("CAFÉ AU LAIT\n".encode("latin-1"))
    (chapter / "9999-1.trans.txt").write_bytes("9999-1-0001 NAÏVE ART\n".encode("latin-1"))
    bad.append(BadInput("LibriSpeech", "9999-1-0000", "Latin-1 transcript <utt>.txt", "is not UTF-8"))
    bad.append(BadInput("LibriSpeech", "9999-1-0001", "Latin-1 line in .trans.txt", "line 1 is not UTF-8"))
    return data, bad


# --------------------------------------------------------------------------- runs, kills and damage

def bench(args: argparse.Namespace, data: Path, results: Path, workers: int) -> list[str]:
    command = [sys.executable, "-m", "pytest", "tests_bench/test_cases.py", "-q", "-p", "no:cacheprovider",
               "--tasks", args.tasks, "--pruners", args.pruners, "--prune-ratio", args.prune_ratio,
               "--max-new-tokens", "8", "--data-root", str(data), "--results-dir", str(results), "--device", "cpu"]
    return command + (["-n", str(workers)] if workers > 1 else [])


def child_env() -> dict[str, str]:
    """The benchmark as a user starts it: no results directory or xdist worker identity inherited from a pytest
    that runs this script."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MARATHON_XDIST"))}
    return env | {"MARATHON_RESULTS_DIR": "", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group: the kill reaches every worker


def appended(results: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (results / "samples").glob("*.jsonl"))


def kill_at_random_moment(proc: subprocess.Popen, results: Path, rng: random.Random, most: int) -> bool:
    """SIGKILL the run's process group after 1..most new records and a random fraction of a sample more;
    False when the run ended before the kill came."""
    target = appended(results) + rng.randint(1, most)
    while proc.poll() is None and appended(results) < target:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 1.0))
    landed = proc.poll() is None
    if landed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return landed


def damage(results: Path, rng: random.Random, figures: Figures, first: bool) -> None:
    """What a kill inside a write (or a bad disk) leaves: a record cut short at the end of a file, a damaged line
    in the middle, a damaged case file, a damaged manifest. After the first kill all four, then at random."""
    files = sorted((results / "samples").glob("*.jsonl"))
    if files and (first or rng.random() < 0.7):
        path = rng.choice(files)
        last = path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        with open(path, "ab") as handle:  # the beginning of a record whose write the kill cut
            handle.write(last[:rng.randint(1, len(last) - 1)] if len(last) > 1 else b"{")
        figures.torn_tails += 1
    if files and (first or rng.random() < 0.4):
        path = rng.choice(files)
        lines = path.read_bytes().splitlines(keepends=True)
        lines.insert(rng.randint(0, len(lines)), b'{"sample_id": "tau_0\xff\xfe garbage\n')
        path.write_bytes(b"".join(lines))
        figures.damaged_lines += 1
    cases = sorted((results / "cases").glob("*.json"))
    if cases and (first or rng.random() < 0.15):
        path = rng.choice(cases)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        figures.damaged_case_files += 1
    manifest = results / "manifest.json"
    if manifest.is_file() and (first or rng.random() < 0.1):
        manifest.write_bytes(manifest.read_bytes()[:100])
        figures.damaged_manifests += 1
        figures.sessions_after_manifest_damage = 0


def snapshot(results: Path) -> dict[tuple[str, str], str]:
    """Every whole record on disk now, by (case file, content key)."""
    whole = {}
    for path in (results / "samples").glob("*.jsonl"):
        for record in read_records(path, []):
            if record.get("key") and record.get("error_kind") != "model":
                whole[(path.name, record["key"])] = json.dumps(record, sort_keys=True)
    return whole


# --------------------------------------------------------------------------- checks

def verify(results: Path, data: Path, bad: list[BadInput], before: dict[tuple[str, str], str],
           figures: Figures) -> None:
    cases = []
    for path in sorted((results / "cases").glob("*.json")):
        cases.append(json.loads(path.read_text(encoding="utf-8")))
    figures.cases = len(cases)
    expected = {task: [s.sample_id for s in TASKS.get(task).samples(data)] for task in {c["task"] for c in cases}}
    records_by_case = {}
    for case in cases:
        path = results / "samples" / f"{safe_name(case['case_id'])}.jsonl"
        skipped: list[str] = []
        records = read_records(path, skipped)
        figures.unreadable_lines_left += len(skipped)
        counts = Counter(r["sample_id"] for r in records)
        figures.records_expected += len(expected[case["task"]])
        figures.records_lost += sum(1 for s in expected[case["task"]] if counts[s] == 0)
        figures.records_doubled += sum(n - 1 for n in counts.values() if n > 1)
        records_by_case[case["case_id"]] = (case, {r["sample_id"]: r for r in records}, path.name)
    final = {(name, r["key"]): json.dumps(r, sort_keys=True)
             for _, records, name in records_by_case.values() for r in records.values() if r.get("key")}
    figures.whole_records_before_kills = len(before)
    figures.records_left_for_finals = len(set(final) - set(before))
    figures.whole_records_recomputed_or_lost = sum(1 for key, text in before.items() if final.get(key) != text)
    for item in bad:
        reports = [records.get(item.sample_id) for case, records, _ in records_by_case.values()
                   if case["task"] == item.task]
        errors = {(r or {}).get("error") for r in reports}
        if item.expect is None:
            ok = bool(reports) and all(r is not None and r["status"] != "error" for r in reports)
            reported = f"ran: {', '.join(sorted({r['status'] for r in reports if r}))}"
        else:
            ok = (bool(reports) and all(r is not None and r["error_kind"] == "data" and item.expect in (r["error"] or "")
                                        for r in reports) and len(errors) == 1)
            reported = next(iter(errors)) if len(errors) == 1 else f"{len(errors)} different reports"
        figures.bad_inputs.append({"task": item.task, "input": item.what, "cases": len(reports),
                                   "reported": _short(reported or "no record", data), "ok": ok})
    sessions = {s["session"] for s in json.loads((results / "manifest.json").read_text()).get("sessions", [])}
    figures.sessions_in_manifest = len(sessions)
    figures.cases_naming_unknown_session = sum(1 for case in cases if case.get("session") not in sessions)


def _short(message: str, data: Path) -> str:
    message = message.replace(str(data) + "/", "")
    return message if len(message) <= 110 else message[:107] + "..."


# --------------------------------------------------------------------------- the table

def table(figures: Figures, args: argparse.Namespace) -> str:
    rows = [
        ("kills (SIGKILL of the run's process group at a random moment)", figures.kills),
        ("kills that landed while the run was going / survived",
         f"{figures.kills_landed} / {figures.kills_landed if not figures.failed_runs else 'see failed runs'}"),
        ("torn tails written (a record cut short at the end of a file)", figures.torn_tails),
        ("damaged lines put in the middle of a records file", figures.damaged_lines),
        ("damaged case files / damaged manifests", f"{figures.damaged_case_files} / {figures.damaged_manifests}"),
        (("sessions started (the last two at once on one folder) / since the last damaged manifest / listed in "
          "manifest.json"),
         f"{figures.sessions_started} / {figures.sessions_after_manifest_damage} / {figures.sessions_in_manifest}"),
        ("cases naming a session manifest.json does not list (must be 0)", figures.cases_naming_unknown_session),
        ("cases written / expected", f"{figures.cases} / {figures.cases_expected}"),
        ("records expected (cases x samples)", figures.records_expected),
        ("**records lost** (must be 0)", figures.records_lost),
        ("**records doubled** (must be 0)", figures.records_doubled),
        ("whole records on disk after kills / later recomputed or lost (must be 0)",
         f"{figures.whole_records_before_kills} / {figures.whole_records_recomputed_or_lost}"),
        ("records left to the two final sessions (computed while both ran)", figures.records_left_for_finals),
        ("unreadable lines left after the final runs", figures.unreadable_lines_left),
        ("runs that failed without being killed", len(figures.failed_runs)),
        ("wall / CPU time of the whole chaos run", f"{figures.wall_s:.0f} s / {figures.cpu_s:.0f} s"),
    ]
    lines = [(f"Chaos run: --tasks {args.tasks} --pruners {args.pruners} --prune-ratio {args.prune_ratio}, "
              f"kills under xdist -n {args.workers}, seed {args.seed}"), "",
             "| figure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows), "",
             "| bad input | task | cases | reported as | as expected |", "|---|---|---|---|---|"]
    for item in figures.bad_inputs:
        lines.append(f"| {item['input']} | {item['task']} | {item['cases']} | {item['reported']} | "
                     f"{'yes' if item['ok'] else '**NO**'} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="xdist workers of the runs that get killed")
    parser.add_argument("--final-workers", type=int, default=2,
                        help="xdist workers of the first of the two final sessions (the second runs without xdist)")
    parser.add_argument("--tasks", default="TAU,HAD,LibriSpeech")
    parser.add_argument("--pruners", default="base,random,frame,fast_v,dart")
    parser.add_argument("--prune-ratio", default="0.5")
    parser.add_argument("--most-records-per-kill", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6.0, help="synthetic clip length")
    parser.add_argument("--samples", type=int, default=3, help="synthetic clips per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/chaos")
    args = parser.parse_args(argv)

    started = time.monotonic()
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    (out / "logs").mkdir(parents=True)
    results = out / "results"
    rng = random.Random(args.seed)
    data, bad = prepare_data(out, args.seconds, args.samples, 0)
    tasks = args.tasks.split(",")
    bad = [b for b in bad if b.task in tasks]
    methods = [p for p in args.pruners.split(",") if p != "base"]
    figures = Figures(cases_expected=len(tasks) * (int("base" in args.pruners.split(","))
                                                   + len(methods) * len(args.prune_ratio.split(","))))
    before: dict[tuple[str, str], str] = {}
    for index in range(args.kills):
        proc = start(bench(args, data, results, args.workers), out / "logs" / f"killed-{index}.log")
        figures.sessions_started += 1
        figures.sessions_after_manifest_damage += 1
        figures.kills += 1
        landed = kill_at_random_moment(proc, results, rng, args.most_records_per_kill)
        figures.kills_landed += landed
        if not landed and proc.returncode != 0:
            figures.failed_runs.append(f"killed-{index}.log (exit {proc.returncode})")
        before |= snapshot(results)
        damage(results, rng, figures, first=index == 0)
    finals = [start(bench(args, data, results, workers), out / "logs" / f"final-{n}.log")
              for n, workers in enumerate((args.final_workers, 1))]  # two sessions on one results folder
    figures.sessions_started += len(finals)
    figures.sessions_after_manifest_damage += len(finals)
    for n, proc in enumerate(finals):
        if proc.wait() != 0:
            figures.failed_runs.append(f"final-{n}.log (exit {proc.returncode})")
    verify(results, data, bad, before, figures)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    figures.wall_s = time.monotonic() - started
    figures.cpu_s = usage.ru_utime + usage.ru_stime + own.ru_utime + own.ru_stime
    text = table(figures, args)
    print(text)
    (out / "chaos.md").write_text(text + "\n", encoding="utf-8")
    (out / "chaos.json").write_text(json.dumps(asdict(figures), indent=2), encoding="utf-8")
    if not figures.ok():
        print("\nCHAOS CHECK FAILED" + (f": runs failed: {figures.failed_runs}" if figures.failed_runs else ""))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
