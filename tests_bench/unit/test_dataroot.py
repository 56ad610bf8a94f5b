"""--data-root as users meet it: the release tree as downloaded, the flat layout, a root holding only some
tasks, a bounded search; hf:// roots from an offline hub cache in the real cache structure; the sample
protocol in keys and reports; `marathon data check`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from fixtures.hub import add_snapshot
from marathon_lib import cli
from marathon_lib.dataroot import DataRoot, resolve_data_root
from marathon_lib.errors import ConfigError, DataError
from marathon_lib.report import protocol_markdown
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec
from marathon_lib.synthetic import LAYOUTS, build_synthetic_datasets
from marathon_lib.tasks import TASKS, find_task_folder
from marathon_lib.tasks.folders import SEARCH_DEPTH

REPO = "Hezep/AudioMarathon"
COMMIT_1 = "1" * 40
COMMIT_2 = "2" * 40


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic datasets laid out both ways (2 clips of 4 s per task)."""
    out = {}
    for layout in ("flat", "release"):
        out[layout] = tmp_path_factory.mktemp(layout)
        build_synthetic_datasets(out[layout], seconds=4.0, samples_per_task=2, seed=0, layout=layout)
    return out


def copy_tree(src: Path, dst: Path, *folders: str) -> Path:
    for folder in folders:
        shutil.copytree(src / folder, dst / folder)
    return dst


# --------------------------------------------------------------------------- local roots

@pytest.mark.parametrize("layout", ["flat", "release"])
def test_every_task_resolves_and_loads(trees: dict[str, Path], layout: str):
    root = resolve_data_root(str(trees[layout]), TASKS.names())
    for task in TASKS:
        folder = root.folders[task]
        declared = TASKS.get(task).folders
        assert folder.relative == (declared.release if layout == "release" else declared.flat)
        assert folder.found_by in (layout, "release")  # SLUE and VESUS: one folder in both layouts
        samples = TASKS.get(task).samples(root.path)
        assert samples and all(s.error is None and s.audio_path.is_file() for s in samples), task
        assert all(folder.path in s.audio_path.parents for s in samples), task  # inside the task's folder
    assert (trees["release"] / "VoxCeleb/concatenated_audio_age").is_dir()  # the release's empty sibling
    manifest = root.manifest("full")
    assert manifest["tasks"]["HAD"] == {"folder": root.folders["HAD"].relative, "found_by": root.folders["HAD"].found_by,
                                        "protocol_filter": None}


def test_release_paths_are_relative_to_the_task_folder(trees: dict[str, Path]):
    slue = json.loads((trees["release"] / "SLUE/merged_audio_data.json").read_text())
    assert all(item["path"].startswith("dev/mixed_concatenated_audio/") for item in slue)
    race = json.loads((trees["release"] / "race_audio/race_benchmark.json").read_text())
    assert all((trees["release"] / "race_audio" / item["audio_path"]).is_file() for item in race)


def test_a_root_with_some_tasks(trees: dict[str, Path], tmp_path: Path):
    root = copy_tree(trees["release"], tmp_path, "TAU", "HAD")
    assert set(resolve_data_root(str(root), ["HAD", "TAU"]).folders) == {"HAD", "TAU"}
    with pytest.raises(ConfigError) as err:
        resolve_data_root(str(root), TASKS.names())
    message = str(err.value)
    for task in ("LibriSpeech", "RACE", "SLUE", "GTZAN", "DESED", "VESUS", "VoxAge", "VoxGender"):
        assert f"{task}: no folder under data root {root}" in message
    assert "race_benchmark.json" in message and str(root / "race_audio") in message and str(root / "RACE") in message
    assert "--tasks TAU,HAD" in message


def test_search_finds_a_folder_elsewhere(trees: dict[str, Path], tmp_path: Path):
    shutil.copytree(trees["release"] / "TAU/concatenated_resampled", tmp_path / "mirror/scenes")
    folder = TASKS.get("TAU").folder(tmp_path)
    assert (folder.relative, folder.found_by) == ("mirror/scenes", "search")
    assert len(TASKS.get("TAU").samples(tmp_path)) == 2
    # the root itself may be the task folder
    assert TASKS.get("TAU").folder(tmp_path / "mirror/scenes").relative == "."


def test_search_is_bounded(trees: dict[str, Path], tmp_path: Path):
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(SEARCH_DEPTH + 1)])
    shutil.copytree(trees["flat"] / "TAU", deep)
    with pytest.raises(DataError, match=f"up to {SEARCH_DEPTH} levels"):
        TASKS.get("TAU").folder(tmp_path)
    assert TASKS.get("TAU").folder(deep.parent).found_by == "search"


def test_two_candidates_are_an_error(trees: dict[str, Path], tmp_path: Path):
    both = copy_tree(trees["release"], tmp_path / "both", "TAU")
    shutil.copy(trees["flat"] / "TAU/acoustic_scene_task_meta.json", both / "TAU")
    with pytest.raises(DataError) as err:
        TASKS.get("TAU").folder(both)
    assert "TAU: two folders" in str(err.value)
    assert str(both / "TAU/concatenated_resampled") in str(err.value) and "flat layout" in str(err.value)
    copies = tmp_path / "copies"
    shutil.copytree(trees["flat"] / "TAU", copies / "a/x")
    shutil.copytree(trees["flat"] / "TAU", copies / "b/y")
    with pytest.raises(DataError) as err:
        TASKS.get("TAU").folder(copies)
    assert "TAU: 2 folders" in str(err.value)
    assert str(copies / "a/x") in str(err.value) and str(copies / "b/y") in str(err.value)


def test_no_folder_names_task_root_and_what_was_looked_for(tmp_path: Path):
    (tmp_path / "HAD/concatenated_audio/real").mkdir(parents=True)  # fake/ is missing
    with pytest.raises(DataError) as err:
        find_task_folder("HAD", TASKS.get("HAD").folders, tmp_path)
    message = str(err.value)
    assert message.startswith(f"HAD: no folder under data root {tmp_path} holds real/ and fake/")
    assert str(tmp_path / "HAD/concatenated_audio") in message and "release layout" in message


def test_not_a_directory(tmp_path: Path):
    with pytest.raises(ConfigError, match="is not a directory"):
        resolve_data_root(str(tmp_path / "nope"), ["TAU"])


# --------------------------------------------------------------------------- hf:// from the hub cache

@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty hub cache, offline: snapshot_download may only read what the test puts there."""
    import huggingface_hub.constants as hub_constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return cache


def test_hf_root_from_the_cache(trees: dict[str, Path], hub: Path):
    snapshot = add_snapshot(hub, REPO, trees["release"], COMMIT_1)
    repo = hub / "datasets--Hezep--AudioMarathon"
    assert (snapshot / "TAU/concatenated_resampled/acoustic_scene_task_meta.json").is_symlink()
    assert len(list((repo / "blobs").iterdir())) > 20
    for value in (f"hf://{REPO}", f"hf://{REPO}@main", f"hf://{REPO}@{COMMIT_1}", f"hf://datasets/{REPO}"):
        root = resolve_data_root(value, TASKS.names())
        assert (root.path, root.commit, root.repo_id, root.source) == (snapshot, COMMIT_1, REPO, value)
        assert root.pinned == f"hf://{REPO}@{COMMIT_1}"
    root = resolve_data_root(f"hf://{REPO}", TASKS.names())
    assert {f.found_by for f in root.folders.values()} == {"release"}
    sample = TASKS.get("VoxGender").samples(root.path)[0]
    assert sample.audio_path.is_symlink() and sf.info(str(sample.audio_path)).frames > 0
    assert (repo / "blobs") in sample.audio_path.resolve().parents

    add_snapshot(hub, REPO, trees["release"], COMMIT_2)  # main moves on: a new commit
    assert resolve_data_root(f"hf://{REPO}", ["TAU"]).commit == COMMIT_2
    assert resolve_data_root(f"hf://{REPO}@{COMMIT_1}", ["TAU"]).commit == COMMIT_1


def test_hf_offline_without_the_snapshot_says_what_to_download(hub: Path):
    with pytest.raises(ConfigError) as err:
        resolve_data_root(f"hf://{REPO}@v1.0", ["TAU", "VoxAge", "VoxGender"])
    message = str(err.value)
    assert "not in the Hugging Face cache" in message
    assert ('hf download Hezep/AudioMarathon --repo-type dataset --revision v1.0 '
            '--include "TAU/concatenated_resampled/*" --include "VoxCeleb/concatenated_audio/*"') in message
    assert "allow_patterns=['TAU/concatenated_resampled/*', 'VoxCeleb/concatenated_audio/*']" in message


def test_hf_snapshot_without_a_selected_task(trees: dict[str, Path], hub: Path, tmp_path: Path):
    partial = copy_tree(trees["release"], tmp_path / "partial", "TAU")
    add_snapshot(hub, REPO, partial, COMMIT_1)
    assert resolve_data_root(f"hf://{REPO}", ["TAU"]).folders["TAU"].relative == "TAU/concatenated_resampled"
    with pytest.raises(ConfigError) as err:
        resolve_data_root(f"hf://{REPO}", ["TAU", "HAD"])
    assert f"snapshot {COMMIT_1} lacks these files" in str(err.value)
    assert '--include "HAD/concatenated_audio/*"' in str(err.value) and "TAU/" not in str(err.value).split("hf download")[1]
    partial_root = resolve_data_root(f"hf://{REPO}", ["TAU", "HAD"], require_all=False)  # default tasks: HAD fails alone
    assert '--include "HAD/concatenated_audio/*"' in partial_root.missing["HAD"]


@pytest.mark.parametrize("value", ["hf://", "hf://AudioMarathon", f"hf://{REPO}@", "hf://a/b/c"])
def test_hf_malformed(value: str):
    with pytest.raises(ConfigError, match="hf://owner/name"):
        resolve_data_root(value, ["TAU"])


# --------------------------------------------------------------------------- protocol and commit in the key

def key_of(sample, protocol: str, commit: str | None) -> str:
    model = SimpleNamespace(revision="r", dtype=torch.float32, attn_implementation="sdpa",
                            device=torch.device("cpu"))
    runner = CaseRunner(CaseSpec("TAU", "m"), TASKS.get("TAU"), model, results=None, protocol=protocol,
                        data={"source": "x", "commit": commit})
    return runner.sample_key(sample)


def test_resume_key_holds_protocol_and_dataset_commit(trees: dict[str, Path]):
    sample = TASKS.get("TAU").samples(trees["release"])[0]
    assert key_of(sample, "full", COMMIT_1) == key_of(sample, "full", COMMIT_1)  # the same revision resumes
    assert key_of(sample, "full", COMMIT_1) != key_of(sample, "full", COMMIT_2)  # a new one recomputes
    assert key_of(sample, "full", None) != key_of(sample, "scripts", None)


def test_leaderboard_names_the_protocol_and_the_counts():
    def case(task: str, protocol: str, n: int, published: int) -> dict:
        return {"task": task, "protocol": protocol, "metrics": {"n": n},
                "data": {"source": f"hf://{REPO}", "commit": COMMIT_1, "published": published}}

    text = "\n".join(protocol_markdown([case("HAD", "scripts", 630, 776), case("TAU", "scripts", 1145, 1145)]))
    assert "Sample protocol: scripts" in text
    assert f"`hf://{REPO}` at commit `{COMMIT_1[:12]}`" in text
    assert "TAU 1145/1145, HAD 630/776 (classes balanced to the smallest one (seed 42))." in text
    mixed = "\n".join(protocol_markdown([case("HAD", "scripts", 630, 776), case("HAD", "full", 776, 776)]))
    assert "Sample protocols differ between these cases** (full, scripts)" in mixed


# --------------------------------------------------------------------------- marathon data check

def run_check(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = cli.main(["data", "check", *args])
    return code, capsys.readouterr().out


def test_data_check_table_and_json(trees: dict[str, Path], capsys: pytest.CaptureFixture):
    code, out = run_check(capsys, str(trees["release"]))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["task", "folder", "items", "published"]
    row = {line.split()[0]: line.split() for line in lines[3:14]}
    assert row["TAU"][1:4] == ["TAU/concatenated_resampled", "2", "1145"] and row["TAU"][-2:] == ["count", "off"]
    assert row["HAD"][2] == "4" and "48000" in row["TAU"] and row["all"][1:3] == ["24", "6567"]
    code, out = run_check(capsys, str(trees["release"]), "--json", "--tasks", "VESUS")
    report = json.loads(out)
    vesus = report["tasks"]["VESUS"]
    assert (vesus["items"], vesus["present"], vesus["missing"], vesus["published"]) == (2, 2, 0, 185)
    assert vesus["duration"]["min"] == pytest.approx(4.0) and vesus["duration"]["below"] == 2
    assert vesus["sample_rates"] == {"16000": 2} and vesus["channels"] == {"1": 2}
    assert run_check(capsys, str(trees["release"]), "--strict")[0] == 1  # counts differ from the release's


def test_data_check_lists_gaps_and_fails_on_a_bad_manifest(trees: dict[str, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture):
    root = copy_tree(trees["release"], tmp_path, "VESUS", "SLUE", "DESED")
    vesus = TASKS.get("VESUS").samples(root)
    vesus[0].audio_path.unlink()  # a missing WAV, as in the release's known gaps
    slue = TASKS.get("SLUE").samples(root)
    slue[0].audio_path.write_bytes(b"RIFF not really a wav")
    sf.write(slue[1].audio_path, np.full(1600, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    code, out = run_check(capsys, str(root), "--tasks", "VESUS,SLUE")
    assert code == 0, out
    assert f"VESUS {vesus[0].sample_id}: missing: audio file not found: {vesus[0].audio_path}" in out
    assert f"SLUE {slue[0].sample_id}: undecodable: cannot decode audio file {slue[0].audio_path}" in out
    assert "NaN" not in out  # headers only: the NaN file reads as present
    code, out = run_check(capsys, str(root), "--tasks", "SLUE", "--decode")
    assert f"SLUE {slue[1].sample_id}: undecodable: audio file contains NaN" in out
    (root / "DESED/DESED_dataset/concatenated_audio/desed_sound_event_detection_task.json").write_text("{")
    code, out = run_check(capsys, str(root), "--tasks", "VESUS,DESED")
    assert code == 1
    assert "MANIFEST ERROR" in out and "desed_sound_event_detection_task.json is not valid JSON" in out
    code, out = run_check(capsys, str(root), "--tasks", "TAU")
    assert code == 1 and "TAU: no folder under data root" in out


def test_data_check_hf_root(trees: dict[str, Path], hub: Path, capsys: pytest.CaptureFixture):
    add_snapshot(hub, REPO, trees["release"], COMMIT_1)
    code, out = run_check(capsys, f"hf://{REPO}", "--tasks", "TAU,HAD")
    assert code == 0 and f"(commit {COMMIT_1})" in out and "HAD/concatenated_audio" in out


def test_data_root_pinned_for_local_folders(trees: dict[str, Path]):
    root: DataRoot = resolve_data_root(str(trees["flat"]), ["TAU"])
    assert root.pinned == str(trees["flat"]) and root.commit is None


def test_both_layouts_hold_the_same_audio(trees: dict[str, Path]):
    """The release layout moves folders (and SLUE's audio into its split folder); the audio is byte-identical."""
    import hashlib

    def audio(root: Path) -> dict[str, str]:
        """dataset/<path inside its folder> -> content hash (SLUE's split folder read as the flat one's)."""
        manifest = json.loads((root / "fixtures_manifest.json").read_text())
        folders = LAYOUTS[manifest["layout"]]
        return {f"{dataset}/{rel.removeprefix(folders[dataset] + '/').replace('dev/mixed_concatenated_audio', 'audio')}":
                hashlib.sha256((root / rel).read_bytes()).hexdigest()
                for dataset, entry in manifest["tasks"].items() for rel in entry["files"]
                if rel.endswith((".wav", ".flac"))}

    flat, release = audio(trees["flat"]), audio(trees["release"])
    assert flat == release and len(flat) == 24
    manifest = json.loads((trees["release"] / "fixtures_manifest.json").read_text())
    assert manifest["layout"] == "release"
    assert all(rel.startswith("VoxCeleb/concatenated_audio/") for rel in manifest["tasks"]["VoxCeleb"]["files"])
    assert all(rel.startswith("race_audio/") for rel in manifest["tasks"]["RACE"]["files"])


def test_xdist_workers_read_the_commit_the_controller_resolved(trees: dict[str, Path], hub: Path):
    from conftest import pin_data_root, pinned_data_root
    from marathon_lib.options import build_options

    add_snapshot(hub, REPO, trees["release"], COMMIT_1)
    environ: dict[str, str] = {}
    pin_data_root(build_options(results_dir="r", device="cpu", data_root=f"hf://{REPO}", tasks="TAU"), environ)
    assert environ == {"MARATHON_PINNED_DATA_ROOT": f"hf://{REPO}@{COMMIT_1}"}
    add_snapshot(hub, REPO, trees["release"], COMMIT_2)  # main moves while the workers start
    worker = environ | {"PYTEST_XDIST_WORKER": "gw1"}
    value = pinned_data_root(f"hf://{REPO}", worker)
    assert resolve_data_root(value, ["TAU"]).commit == COMMIT_1
    assert pinned_data_root(f"hf://{REPO}", environ) == f"hf://{REPO}"  # the controller itself reads what was given
    assert pinned_data_root(None, worker) is None  # synthetic data: nothing to pin


def test_a_partial_root_without_tasks_runs_the_tasks_present(trees: dict[str, Path], tmp_path: Path):
    """Default tasks (all 10) on a root holding only some: the absent ones are recorded and fail when run, so
    `pytest -k TAU` works; tasks named with --tasks must all be present; a root with no task at all is refused."""
    from marathon_lib.options import build_options

    root = copy_tree(trees["release"], tmp_path / "partial", "TAU")
    options = build_options(results_dir=str(tmp_path / "r"), device="cpu", data_root=str(root))
    assert list(options.data_root.folders) == ["TAU"] and len(options.data_root.missing) == 9
    assert options.data_root.missing["HAD"].startswith(f"HAD: no folder under data root {root}")
    assert options.data_root.manifest("full")["missing"]["HAD"] == options.data_root.missing["HAD"]
    with pytest.raises(ConfigError, match="--tasks TAU"):
        build_options(results_dir=str(tmp_path / "r"), device="cpu", data_root=str(root), tasks="TAU,HAD")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="TAU: no folder"):
        build_options(results_dir=str(tmp_path / "r"), device="cpu", data_root=str(tmp_path / "empty"))
