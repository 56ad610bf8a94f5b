"""Where built artefacts (synthetic data, tiny checkpoints) are cached, and how each is built exactly once."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

STAGING = ".tmp-"  # a build in progress: <dest>.tmp-<random>, next to <dest> and its lock <dest>.lock


def cache_root() -> Path:
    """$MARATHON_CACHE, else ~/.cache/audiomarathon (the Makefile points it at ./.cache)."""
    return Path(os.environ.get("MARATHON_CACHE") or Path.home() / ".cache" / "audiomarathon")


def build_once(dest: Path, marker: str, build: Callable[[Path], str]) -> Path:
    """`dest` built by `build(staging)` once, safe under concurrent xdist workers and processes.

    The builder holds `<dest>.lock` from creating its staging directory until it renames it to `dest`, and the
    marker file (the text `build` returns) is written inside before the rename, so `dest` is complete or absent.
    A builder killed on the way leaves its staging directory behind: the next build of any artefact in the same
    cache removes every staging directory whose lock is free (see clear_dead_staging)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(_lock_of(dest))):
        if (dest / marker).is_file():
            return dest
        clear_dead_staging(dest.parent, held=dest)
        staging = Path(tempfile.mkdtemp(prefix=f"{dest.name}{STAGING}", dir=dest.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any directory
        try:
            (staging / marker).write_text(build(staging), encoding="utf-8")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(dest, ignore_errors=True)  # an incomplete leftover of an older layout
        os.replace(staging, dest)
    return dest


def clear_dead_staging(directory: Path, held: Path | None = None) -> list[Path]:
    """Remove the staging directories of builders that died. A live builder holds its artefact's lock for as long
    as its staging directory exists, so a staging directory whose lock can be taken right now (without waiting)
    has no builder left; `held` is the artefact whose lock the caller holds (its stagings are all dead)."""
    removed = []
    for staging in sorted(directory.glob(f"*{STAGING}*")):
        name = staging.name.rpartition(STAGING)[0]
        if not name or not staging.is_dir():
            continue
        dest = directory / name
        if dest == held:
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
            continue
        lock = FileLock(str(_lock_of(dest)))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # a builder is at work on it
        try:
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
        finally:
            lock.release()
    return removed


def _lock_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".lock")
