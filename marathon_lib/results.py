"""The results directory: append-only per-sample JSONL, one JSON per case, the run manifest.

Layout:
    manifest.json            every session that wrote here: time, git sha, package versions, device, options
    samples/<case>.jsonl     one record per sample, appended and fsynced as it finishes
    cases/<case>.json        metrics, timing and token counts of one case, and the session that wrote it
    summary.json, leaderboard.md   written by `marathon report` / at the end of a pytest session
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import subprocess
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock

from .schema import SCHEMA_VERSION, Session, check_fields


def safe_name(case_id: str) -> str:
    """File-system-safe case file name (hub ids contain '/'; ':' breaks some file systems)."""
    return re.sub(r"[^A-Za-z0-9._+=-]", "__", case_id)


class ResultsDir:
    def __init__(self, root: str | Path, session: str | None = None) -> None:
        self.root = Path(root)
        self.samples = self.root / "samples"
        self.cases = self.root / "cases"
        self.session = session  # the session writing here (named by every case it writes), None when reading

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
        """Every readable case file; a damaged one is skipped with a warning naming it (its case reruns)."""
        cases = []
        for path in sorted(self.cases.glob("*.json")):
            try:
                cases.append(json.loads(path.read_text(encoding="utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                warnings.warn(f"{path}: unreadable case file skipped ({err})", stacklevel=2)
        return cases

    def read_samples(self, case_id: str) -> list[dict[str, Any]]:
        return read_records(self.sample_path(case_id))


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    """An fd of `path` (created if missing) under an exclusive lock. A rewrite replaces the file while holding the
    lock, so a writer that waited on the replaced file locks the new one instead of appending to a ghost."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one sample record as one JSON line and fsync it, so a kill loses nothing already computed.

    The append starts on a fresh line: when a kill cut the file's last line short, that fragment stays a line
    of its own (which read_records skips) instead of swallowing this record. One write under an exclusive lock
    keeps records of two processes on one results folder from interleaving."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with _locked(path) as fd:
        end = os.lseek(fd, 0, os.SEEK_END)
        if end and os.pread(fd, 1, end - 1) != b"\n":
            data = b"\n" + data
        _write_all(fd, data)
        os.fsync(fd)


def read_records(path: Path, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """The records of an interrupted or finished case. A line that is not a whole record (cut off by a kill,
    damaged) is skipped wherever it is, and said: appended to `skipped`, or else warned about. Its sample simply
    has no record, so a resumed run computes it again."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
            problem = None if isinstance(record, dict) and "sample_id" in record else "not a sample record"
        except UnicodeDecodeError:
            problem = "not UTF-8 text, cut inside a character"
        except json.JSONDecodeError as err:
            problem = f"not whole JSON ({err.msg} at column {err.colno})"
        if problem is None:
            records.append(record)
            continue
        note = f"{path}:{number}: unreadable line skipped ({problem}, {len(line)} bytes)"
        if skipped is None:
            warnings.warn(note, stacklevel=2)
        else:
            skipped.append(note)
    return records


def rewrite_records(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Replace the file with exactly `records`, atomically and under the append lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        _replace(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _private_tmp(path: Path) -> Path:
    """A temporary sibling no other process writes: xdist workers may write the same file at once."""
    return path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")


def _replace(path: Path, text: str) -> None:
    """Readers never see a half-written file; the last complete write wins."""
    tmp = _private_tmp(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        _write_all(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return path


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def run_manifest(options: dict[str, Any], device: str, session: str | None = None) -> dict[str, Any]:
    """One session's entry of manifest.json."""
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
        "session": session,
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


def new_session_id() -> str:
    """Names one pytest session (shared by its xdist workers) in manifest.json and in every case it writes."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def record_session(root: Path, session: dict[str, Any]) -> dict[str, Any]:
    """Add a session (run_manifest's entry with its `session` id) to root/manifest.json once, whichever xdist
    worker comes first. The manifest keeps every session that wrote into the folder under `sessions`; its top
    level repeats the newest one (what readers of a one-session manifest expect)."""
    check_fields(Session, session, f"{root}/manifest.json session {session.get('session')}")
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.json"
    with FileLock(str(root / ".manifest.lock")):
        sessions = read_sessions(path, set_aside_damaged=True)
        if all(s.get("session") != session["session"] for s in sessions):
            sessions.append(session)
        manifest = {**session, "sessions": sessions}
        write_json(path, manifest)
    return manifest


def read_sessions(path: Path, set_aside_damaged: bool = False) -> list[dict[str, Any]]:
    """The sessions of a manifest; a manifest written before sessions were kept counts as one (id None).
    A damaged manifest is warned about (and, when about to be rewritten, kept aside as manifest.json.damaged)."""
    if not path.is_file():
        return []
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(manifest, dict) else "not a JSON object"
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        manifest, problem = None, str(err)
    if problem is not None:
        if set_aside_damaged:
            os.replace(path, path.with_name(path.name + ".damaged"))
        warnings.warn(f"{path}: unreadable manifest ({problem})"
                      + ("; kept aside as manifest.json.damaged" if set_aside_damaged else ""), stacklevel=2)
        return []
    if isinstance(manifest.get("sessions"), list):
        return [s for s in manifest["sessions"] if isinstance(s, dict)]
    return [{**manifest, "session": manifest.get("session")}]


# Options that choose which cases run, not how a case runs: sessions may differ in them freely.
SELECTION_OPTIONS = frozenset({"models", "tasks", "pruners", "prune_ratios", "prune_layer", "presses",
                               "compression_ratios", "press_scope", "press_mode", "results_dir", "shard",
                               "trust_remote_code"})


def session_settings(session: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two sessions' cases comparable: code, packages, device, and every option but the selection."""
    settings: dict[str, Any] = {"git": (session.get("git") or {}).get("sha"),
                                "git dirty": (session.get("git") or {}).get("dirty")}
    for group in ("packages", "device", "options"):
        for key, value in sorted((session.get(group) or {}).items()):
            if not (group == "options" and key in SELECTION_OPTIONS):
                settings[f"{group}.{key}"] = value
    return settings


def mixed_settings(root: Path, cases: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per setting that differs between the sessions that wrote the cases of a results folder, with
    how many cases ran under each value; [] when every case ran under the same settings."""
    sessions = {s.get("session"): s for s in read_sessions(root / "manifest.json")}
    writers: dict[str | None, int] = {}
    for case in cases:
        writers[case.get("session")] = writers.get(case.get("session"), 0) + 1
    known = {sid: session_settings(session) for sid, session in sessions.items() if sid in writers}  # in run order
    lines = []
    for name in sorted({name for settings in known.values() for name in settings}):
        counts: dict[str, int] = {}
        for sid, settings in known.items():
            value = json.dumps(settings.get(name))
            counts[value] = counts.get(value, 0) + writers[sid]
        if len(counts) > 1:
            lines.append(f"{name}: " + "; ".join(f"{value} ({_cases(n)})" for value, n in counts.items()))
    unknown = sum(n for sid, n in writers.items() if sid not in known)
    if lines and unknown:
        lines.append(f"{_cases(unknown)} name no session recorded in manifest.json (settings unknown)")
    return lines


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"
