"""Adding a model family or a task is one file plus its test: tests_bench/unit/family_example.py declares a family
and a task and nothing else in the repository knows them. Loaded as a plugin
(`pytest -p tests_bench.unit.family_example`), the family's names, keyword, model_type and press support, and the
task's column and category, reach every table; its case is collected by `-k`, runs, and lands in the leaderboard
with its own column."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from marathon_lib.models import FAMILIES, MODELS, register_family
from marathon_lib.models.qwen_omni import QwenOmniThinker

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ["-p", "tests_bench.unit.family_example"]
CASE_ID = "Murmur-tiny-echo-omni-base"


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS" and not k.startswith("PYTEST_XDIST")}
    return e | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env(), capture_output=True, text=True, check=False,
                          timeout=timeout)


def murmur_data(root: Path) -> Path:
    """The Murmur task's folder in the flat layout: two 3 s clips and a four-choice manifest."""
    folder = root / "Murmur"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    items = []
    for index, answer in enumerate(("A", "C")):
        sf.write(folder / f"clip{index}.wav", (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32), 16000)
        items.append({"uniq_id": f"murmur-{index}", "path": f"clip{index}.wav", "question": "What is heard?",
                      "choice_a": "rain", "choice_b": "speech", "choice_c": "music", "choice_d": "traffic",
                      "answer_gt": answer})
    (folder / "murmur_task.json").write_text(json.dumps(items))
    return root


def test_the_declarations_reach_every_table() -> None:
    script = """
import json
import tests_bench.unit.family_example
from marathon_lib.models import MODEL_TYPES, family_keyword, model_policies, press_support, resolve_model
from marathon_lib.tasks import category_columns, leaderboard_columns
hub = resolve_model("example-org/Echo-Omni-1B")
print(json.dumps({
    "tiny": resolve_model("tiny-echo-omni").family, "hub": [hub.family, hub.checkpoint, hub.access],
    "model_type": MODEL_TYPES["echo_omni"], "keyword": family_keyword("echo-omni"),
    "presses": sorted(press_support()["echo-omni"]),
    "policy": model_policies(["tiny-echo-omni"])["tiny-echo-omni"],
    "columns": leaderboard_columns(), "categories": category_columns()}))
"""
    done = run(["-c", script])
    assert done.returncode == 0, done.stderr[-3000:]
    tables = json.loads(done.stdout)
    assert tables["tiny"] == "echo-omni" and tables["hub"] == ["echo-omni", "example-org/Echo-Omni-1B", "local"]
    assert tables["model_type"] == "echo-omni" and tables["keyword"] == "echo"
    assert tables["presses"] == ["knorm", "random_kv", "streaming_llm"]
    assert tables["policy"] == {"family": "echo-omni", "long_audio": "each item ≤ 300 s, as the Qwen2.5-Omni "
                                                                    "thinker it reuses"}
    # the ten tasks keep the paper's order; the new one follows, in its own category
    assert tables["columns"] == ["SER", "SCR", "ASR", "SED", "MC", "ASC", "SD", "ER", "SAR", "SGR", "MUR"]
    assert tables["categories"]["Example Category"] == ["MUR"]
    assert tables["categories"]["Speaker Information"] == ["SD", "ER", "SAR", "SGR"]


def test_the_new_family_and_task_run_as_a_case(tmp_path: Path) -> None:
    data, results = murmur_data(tmp_path / "data"), tmp_path / "results"
    common = ["-m", "pytest", "tests_bench/test_cases.py", *PLUGIN, "--models", "tiny-echo-omni,tiny-qwen2.5-omni",
              "--tasks", "Murmur", "--data-root", str(data), "-k", "echo", "-p", "no:cacheprovider"]
    listed = run([*common, "--collect-only", "-q"])
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    assert [line for line in listed.stdout.splitlines() if "::" in line] == [
        f"tests_bench/test_cases.py::test_case[{CASE_ID}]"]
    done = run([*common, "-q", "--results-dir", str(results)])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    case = json.loads((results / "cases" / f"{CASE_ID}.json").read_text())
    assert case["task_code"] == "MUR" and case["category"] == "Example Category" and case["metrics"]["n"] == 2
    leaderboard = (results / "leaderboard.md").read_text()
    assert "| SGR | MUR |" in leaderboard and "| Example Category |" in leaderboard
    assert "(1/11)" in leaderboard  # one task of eleven run: the average says so


def test_a_clashing_declaration_is_refused_whole() -> None:
    """A family that reuses a registered name, model_type or an unknown press fails at import, naming the class, and
    leaves nothing half-registered."""
    before = (FAMILIES.names(), MODELS.names())
    declarations = [
        ({"tiny_name": "tiny-qwen2.5-omni"}, "registered already"),
        ({"model_types": ("qwen2_5_omni",)}, "registered already"),
        ({"presses": frozenset({"no-such-press"})}, "not registered"),
        ({"access": "ftp"}, "access 'ftp'"),
        ({"family": "qwen2.5-omni"}, "registered already"),
        ({"family": ""}, "set the class attribute `family`"),
    ]
    for fields, message in declarations:
        clash = type("Clash", (QwenOmniThinker,), {"family": "clash", "long_audio": "-", **fields})
        with pytest.raises(ValueError, match=message) as err:
            register_family(clash)
        assert "Clash" in str(err.value)
    assert (FAMILIES.names(), MODELS.names()) == before
