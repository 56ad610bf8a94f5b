"""The results directory: append-only per-sample JSONL, one JSON per case, the run manifest.

Layout (design.md):
    manifest.json            git sha, package versions, device, options, seed
    samples/<case>.jsonl     one record per sample, flushed as it finishes
    cases/<case>.json        metrics, timing and token counts of one case
    summary.json, leaderboard.md   written by `marathon report` / at the end of a pytest session
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def is_base(case: dict[str, Any]) -> bool:
    """The unpruned, uncompressed case of its (task, model): the reference for speed-up and retention."""
    return case["pruner"] == "base" and case.get("press") is None and case.get("control") is None


def is_control(case: dict[str, Any]) -> bool:
    """A control condition (marathon_lib.controls, e.g. no_audio): compared with base, never a method."""
    return case.get("control") is not None


def method_label(case: dict[str, Any]) -> str:
    if is_control(case):
        return case["control"]
    if case.get("press") is not None:
        variant = "" if (case.get("press_scope"), case.get("press_mode")) == ("audio", "query_agnostic") else (
            f" {case['press_scope']}/{case['press_mode']}")
        return f"press:{case['press']} c={case['compression_ratio']:g}{variant}"
    return "base" if case["pruner"] == "base" else f"{case['pruner']} r={case['prune_ratio']:g} L{case['prune_layer']}"


def safe_name(case_id: str) -> str:
    """File-system-safe case file name (hub ids contain '/'; ':' breaks some file systems)."""
    return re.sub(r"[^A-Za-z0-9._+=-]", "__", case_id)


class ResultsDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.samples = self.root / "samples"
        self.cases = self.root / "cases"

    def ensure(self) -> "ResultsDir":
        self.samples.mkdir(parents=True, exist_ok=True)
        self.cases.mkdir(parents=True, exist_ok=True)
        return self

    def sample_path(self, case_id: str) -> Path:
        return self.samples / f"{safe_name(case_id)}.jsonl"

    def case_path(self, case_id: str) -> Path:
        return self.cases / f"{safe_name(case_id)}.json"

    def write_case(self, case: dict[str, Any]) -> Path:
        return write_json(self.case_path(case["case_id"]), case)

    def read_cases(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.cases.glob("*.json"))]

    def read_samples(self, case_id: str) -> list[dict[str, Any]]:
        return read_records(self.sample_path(case_id))


class SampleLog:
    """Append one JSON line per finished sample and fsync it, so a crash loses nothing already computed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of an interrupted or finished case; a last line cut off by a kill is ignored."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):  # the write in flight when the process died
                break
            raise ValueError(f"{path}:{number}: not a JSON record: {err}") from err
    return records


def rewrite_records(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = _private_tmp(path)
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


def _private_tmp(path: Path) -> Path:
    """A temporary sibling no other process writes: xdist workers may write the same file at once."""
    return path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")


def write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _private_tmp(path)
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # readers never see a half-written file; the last complete write wins
    return path


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def run_manifest(options: dict[str, Any], device: str) -> dict[str, Any]:
    import torch

    packages = {}
    for name in ("torch", "transformers", "tokenizers", "numpy", "soundfile", "soxr", "scikit-learn", "jiwer",
                 "kvpress", "flash-attn", "audiomarathon-suite"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    status = _git("status", "--porcelain")
    return {
        "schema_version": SCHEMA_VERSION,
        "created": now_iso(),
        "git": {"sha": _git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None},
        "packages": packages,
        "python": platform.python_version(),
        "device": {
            "requested": device,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
        },
        "options": options,
    }
