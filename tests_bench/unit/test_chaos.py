"""scripts/chaos.sh in small form, exactly as a user types it: one SIGKILL of an xdist -n 2 sweep at a random moment,
torn and damaged result files, two sessions at once on the folder, and damaged inputs of every kind; nothing lost,
nothing doubled, every bad input reported as the data error that names it (the README's table is the full size)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # five benchmark processes that each import torch + transformers (~50 s of CPU)


def test_chaos_script_small(tmp_path: Path) -> None:
    out = tmp_path / "chaos"
    command = ["scripts/chaos.sh", "--kills", "1", "--tasks", "TAU,LibriSpeech", "--pruners", "base,random",
               "--final-workers", "1", "--seed", "3", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                          text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    figures = json.loads((out / "chaos.json").read_text())
    assert (figures["kills"], figures["kills_landed"], figures["cases"]) == (1, 1, 4)
    assert figures["records_lost"] == figures["records_doubled"] == figures["whole_records_recomputed_or_lost"] == 0
    assert figures["records_expected"] == 2 * (3 + 10) + 2 * (3 + 2)  # TAU: 3 clips + 10 bad; LibriSpeech: 3 + 2
    assert figures["torn_tails"] == figures["damaged_lines"] == 1  # (no case file may exist yet at the kill)
    assert figures["damaged_manifests"] == 1 and figures["sessions_in_manifest"] == 2  # the two after the damage
    assert len(figures["bad_inputs"]) == 12 and all(item["ok"] for item in figures["bad_inputs"])
    assert "| **records lost** (must be 0) | 0 |" in done.stdout
    assert (out / "results" / "manifest.json.damaged").is_file()
