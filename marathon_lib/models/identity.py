"""What a checkpoint is, for resume keys: the hub commit, or a digest of the checkpoint's files.

A checkpoint directory is named by its content, never by where it lies: the same cache copied or moved to another
path resumes its records, and changed weights (or config, tokenizer, processor files) recompute them. Hashing a
7B checkpoint reads ~15 GB once; each file's digest is cached by (real path, size, mtime), so later sessions only
stat the files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..paths import cache_root

DIGESTS_FILE = "checkpoint-digests.json"


def checkpoint_revision(config: Any, checkpoint: str) -> str:
    """The identity resume keys hold: the commit of a hub checkpoint (transformers reads it from the hub, or from
    a local `snapshots/<commit>` path), else `content:<digest>` of a checkpoint directory, else the name as given."""
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return commit
    if Path(checkpoint).is_dir():
        return "content:" + checkpoint_digest(Path(checkpoint))
    return checkpoint


def checkpoint_digest(directory: Path, digests_file: Path | None = None) -> str:
    """sha256 over the names and contents of the files at the top of `directory` (symlinks followed, hidden files
    and lock files left out)."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")
                   and not p.name.endswith(".lock"))
    whole = hashlib.sha256()
    for path, digest in zip(files, file_digests(files, digests_file or cache_root() / DIGESTS_FILE), strict=True):
        whole.update(f"{path.name}\0{digest}\n".encode())
    return whole.hexdigest()[:32]


def file_digests(files: list[Path], digests_file: Path) -> list[str]:
    """sha256 of each file, read from `digests_file` when its real path, size and mtime are unchanged."""
    digests_file.parent.mkdir(parents=True, exist_ok=True)
    stats = {path: _stat_key(path) for path in files}
    with FileLock(str(digests_file) + ".lock"):
        known = _read(digests_file)
    fresh = {key: _sha256(path) for path, key in stats.items() if key not in known}
    if fresh:
        with FileLock(str(digests_file) + ".lock"):
            merged = _read(digests_file) | fresh
            tmp = digests_file.with_name(f"{digests_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(merged, indent=0, sort_keys=True), encoding="utf-8")
            os.replace(tmp, digests_file)
    return [fresh.get(key) or known[key] for key in stats.values()]


def _stat_key(path: Path) -> str:
    real = path.resolve()
    info = real.stat()
    return f"{real}|{info.st_size}|{info.st_mtime_ns}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(digests_file: Path) -> dict[str, str]:
    try:
        data = json.loads(digests_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or damaged: the digests are computed again
        return {}
    return data if isinstance(data, dict) else {}
