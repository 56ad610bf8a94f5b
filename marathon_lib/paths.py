"""Where built artefacts (synthetic data, tiny checkpoints) are cached."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$MARATHON_CACHE, else ~/.cache/audiomarathon (the Makefile points it at ./.cache)."""
    return Path(os.environ.get("MARATHON_CACHE") or Path.home() / ".cache" / "audiomarathon")
