"""A hostile run: writers killed at random byte offsets, damaged inputs, moved caches, dead builders, dead API
endpoints. Nothing computed may be lost or doubled, and every bad input is a per-sample data error naming it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from marathon_lib.audio import load_audio
from marathon_lib.errors import DataError
from marathon_lib.models.base import BenchModel
from marathon_lib.models.inputs import AudioSpan, Generation, InputsCache, ModelInputs
from marathon_lib.report import write_report
from marathon_lib.results import ResultsDir, read_records, rewrite_records
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec
from marathon_lib.tasks import TASKS
from marathon_lib.timing import Timing

ROOT = Path(__file__).resolve().parents[2]
SR = 16000
CHOICES = ["Airport - airport", "Metro station - metro_station", "Urban park - park", "Public square - public_square"]


class Killed(BaseException):
    """SIGKILL, as far as the runner can tell: nothing after it runs (not an Exception a runner may catch)."""


class ScriptedModel(BenchModel):
    """No weights: 25 audio tokens per second and a fixed answer with multi-byte characters, so that a cut at a
    random byte offset lands inside a character as often as between them. `kill_after` generations, it dies."""

    family = "scripted"

    def __init__(self, answer: str = "B — l’audio ≤ 中文 ✓", kill_after: int | None = None) -> None:
        self.name, self.revision, self.answer, self.kill_after = "scripted", "1", answer, kill_after
        self.device, self.dtype, self.attn_implementation = torch.device("cpu"), torch.float32, "sdpa"
        self.inputs_cache = InputsCache()
        self.calls = 0
        self.before_generate = lambda: None

    @property
    def sampling_rate(self) -> int:
        return SR

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        tokens = int(len(audio) / SR * 25)
        return ModelInputs({"input_ids": torch.zeros(1, 8 + tokens, dtype=torch.long)}, (AudioSpan(4, tokens),),
                           len(audio) / SR)

    def generate(self, inputs: ModelInputs, max_new_tokens: int) -> Generation:
        if self.kill_after is not None and self.calls >= self.kill_after:
            raise Killed
        self.calls += 1
        self.before_generate()
        return Generation(self.answer, [1, 2], Timing(3.0, 2.0, 2))


def tau_item(index: int, path: str, **extra) -> dict:
    return {"path": path, "question": "Which scene?", "answer_gt": "B", "uniq_id": f"t{index}",
            **{f"choice_{c}": CHOICES[j] for j, c in enumerate("abcd")}, **extra}


def write_tau(root: Path, items: list[dict]) -> Path:
    (root / "TAU").mkdir(parents=True, exist_ok=True)
    (root / "TAU" / "acoustic_scene_task_meta.json").write_text(json.dumps(items), encoding="utf-8")
    return root


def wav(path: Path, seconds: float = 0.2, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32), SR,
             format="WAV")
    return path


def records_of(path: Path) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_records(path)


# --------------------------------------------------------------------------- 1. torn records

@pytest.fixture(scope="module")
def five_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("five")
    return write_tau(root, [tau_item(i, str(wav(root / "TAU" / f"t{i}.wav", seed=i).name)) for i in range(5)])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(n_samples=4, kills=[(2, 0.5), (2, 0.3), (1, 0.0)])  # the case: a cut tail, a rerun killed too
@given(n_samples=st.integers(1, 5),
       kills=st.lists(st.tuples(st.integers(0, 5), st.floats(0.0, 1.0)), min_size=1, max_size=6))
def test_kills_at_random_byte_offsets_lose_and_double_nothing(five_clips: Path, n_samples: int,
                                                               kills: list[tuple[int, float]]) -> None:
    """Each run dies after some generations, its last append cut at a random byte offset (the kill landed in the
    write); the next run starts over the damage. However many times in a row: the final run leaves every sample
    exactly once and reuses every record that was written whole."""
    spec = TASKS.get("TAU")
    samples = spec.samples(five_clips)[:n_samples]
    results = ResultsDir(tempfile.mkdtemp(prefix="kills-")).ensure()
    case = CaseSpec("TAU", "scripted")
    path = results.sample_path(case.case_id)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # each run says which cut lines it skips: tested below
            for generations, cut in kills:
                before = path.stat().st_size if path.exists() else 0
                try:
                    CaseRunner(case, spec, ScriptedModel(kill_after=generations), results).run(samples)
                except Killed:
                    data = path.read_bytes() if path.exists() else b""
                    if len(data) > before:  # the kill landed inside the last record being appended
                        start = data.rfind(b"\n", 0, len(data) - 1) + 1
                        path.write_bytes(data[:start + int(cut * (len(data) - start))])
                ids = [r["sample_id"] for r in read_records(path)]
                assert len(ids) == len(set(ids)), ids
            whole = {r["sample_id"] for r in read_records(path)}
            final = CaseRunner(case, spec, ScriptedModel(), results).run(samples)
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["sample_id"] for line in lines] == [s.sample_id for s in samples]
        assert final["n_resumed"] == len(whole) and final["metrics"]["n_error"] == 0
    finally:
        shutil.rmtree(results.root)


def test_a_cut_line_anywhere_is_skipped_and_said_and_its_sample_reruns(tmp_path: Path) -> None:
    spec = TASKS.get("TAU")
    root = write_tau(tmp_path / "data", [tau_item(i, wav(tmp_path / "data" / "TAU" / f"t{i}.wav").name)
                                         for i in range(3)])
    results = ResultsDir(tmp_path / "results").ensure()
    case = CaseSpec("TAU", "scripted")
    CaseRunner(case, spec, ScriptedModel(), results).run(spec.samples(root))
    path = results.sample_path(case.case_id)
    first, second, third = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(first + second[:37] + b"\n" + third[:-20])  # a cut line in the middle and a cut tail

    progress: list[str] = []
    with pytest.warns(UserWarning) as caught:
        again = CaseRunner(case, spec, ScriptedModel(), results, progress=progress.append).run(spec.samples(root))
    assert again["n_resumed"] == 1 and again["unreadable_lines"] == 2
    said = [":2: unreadable line skipped", ":3: unreadable line skipped"]
    assert [str(w.message).split(".jsonl")[1][:27] for w in caught] == said
    assert [line.split(".jsonl")[1][:27] for line in progress[:2]] == said  # on the terminal, before the samples
    assert [r["sample_id"] for r in records_of(path)] == ["t0", "t1", "t2"]


def test_a_rewrite_by_another_process_never_strands_later_appends(tmp_path: Path) -> None:
    """Two sessions on one results folder: one rewrites the case file (its end of case) while the other is still
    appending; the other's next records must land in the file that is there now, not in the replaced one."""
    spec = TASKS.get("TAU")
    root = write_tau(tmp_path / "data", [tau_item(i, wav(tmp_path / "data" / "TAU" / f"t{i}.wav").name)
                                         for i in range(4)])
    results = ResultsDir(tmp_path / "results").ensure()
    case = CaseSpec("TAU", "scripted")
    path = results.sample_path(case.case_id)
    model = ScriptedModel(kill_after=4)  # warm-up + 3 samples, then killed before the 4th
    model.before_generate = lambda: model.calls == 2 and rewrite_records(path, records_of(path))
    with pytest.raises(Killed):
        CaseRunner(case, spec, model, results).run(spec.samples(root))
    assert [r["sample_id"] for r in records_of(path)] == ["t0", "t1", "t2"]


def test_damaged_case_files_and_manifests_are_said_and_set_aside(tmp_path: Path) -> None:
    from marathon_lib.results import record_session, run_manifest

    results = ResultsDir(tmp_path).ensure()
    root = write_tau(tmp_path / "data", [tau_item(0, wav(tmp_path / "data" / "TAU" / "a.wav").name)])
    for model in ("scripted-a", "scripted-b"):
        CaseRunner(CaseSpec("TAU", model), TASKS.get("TAU"), ScriptedModel(), results).run(TASKS.get("TAU").samples(root))
    damaged = results.case_path("TAU-scripted-a-base")
    damaged.write_text(damaged.read_text()[:50])
    with pytest.warns(UserWarning, match="TAU-scripted-a-base.json: unreadable case file skipped"):
        assert [c["case_id"] for c in write_report(results, plots=False)["cases"]] == ["TAU-scripted-b-base"]
    (tmp_path / "manifest.json").write_text('{"sessions": [{"sess')
    with pytest.warns(UserWarning, match="unreadable manifest .*kept aside as manifest.json.damaged"):
        manifest = record_session(tmp_path, run_manifest({}, "cpu", "s3"))
    assert [s["session"] for s in manifest["sessions"]] == ["s3"]
    assert (tmp_path / "manifest.json.damaged").read_text() == '{"sessions": [{"sess'


# --------------------------------------------------------------------------- 2. clips without audio tokens

def truncated_after_header(path: Path, frames: int) -> Path:
    """A WAV cut short by a copy: libsndfile just reports fewer frames."""
    wav(path, seconds=1.0)
    data = path.read_bytes()
    path.write_bytes(data[:44 + 2 * frames])
    return path


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("short")
    task = root / "TAU"
    truncated_after_header(task / "five_ms.wav", 80)
    wav(task / "forty_ms.wav", 0.04)
    wav(task / "one_s.wav", 1.0)
    return write_tau(root, [tau_item(0, "five_ms.wav"), tau_item(1, "forty_ms.wav"), tau_item(2, "one_s.wav")])


def test_a_clip_without_audio_tokens_is_the_same_data_error_for_every_method(short_clips: Path, tiny_models,
                                                                              one_thread, tmp_path: Path) -> None:
    from marathon_lib.pruning import PRUNERS, PruneHook

    model = tiny_models.get("tiny-qwen2.5-omni")
    spec = TASKS.get("TAU")
    results = ResultsDir(tmp_path).ensure()
    errors = {}
    for pruner in ("base", "random", "frame", "fast_v", "dart", "no_audio"):
        case = (CaseSpec("TAU", model.name, control=pruner) if pruner == "no_audio"
                else CaseSpec("TAU", model.name, pruner, 0.0 if pruner == "base" else 0.5, 2))
        hook = None if pruner in ("base", "no_audio") else PruneHook(model.text_stack(), 2, PRUNERS.get(pruner), 0.5)
        runner = CaseRunner(case, spec, model, results, hook=hook, max_new_tokens=2)
        if hook is None:
            summary = runner.run(spec.samples(short_clips))
        else:
            with hook:
                summary = runner.run(spec.samples(short_clips))
        errors[pruner] = [(e["sample_id"], e["kind"], e["error"]) for e in summary["errors"]]
    said = ("sample t0: audio too short: 5 ms gives no audio token (the minimum is 40 ms, one audio token at 25 per "
            f"second): {short_clips / 'TAU' / 'five_ms.wav'}")
    assert errors["base"] == [("t0", "data", said)]
    assert all(found == errors["base"] for found in errors.values()), errors  # 40 ms and 1 s run in every case


def test_a_too_short_clip_never_reaches_the_model(tmp_path: Path) -> None:
    """The minimum holds for models that give short clips audio tokens (Voxtral rounds up) or crash on them."""
    class Refuses(ScriptedModel):
        def prepare(self, audio, prompt, system=None):
            raise AssertionError("prepare saw a clip under the minimum")

    root = write_tau(tmp_path, [tau_item(0, truncated_after_header(tmp_path / "TAU" / "a.wav", 300).name)])
    summary = CaseRunner(CaseSpec("TAU", "scripted"), TASKS.get("TAU"), Refuses(), ResultsDir(tmp_path / "r").ensure()
                         ).run(TASKS.get("TAU").samples(root))
    assert "audio too short: 19 ms gives no audio token" in summary["errors"][0]["error"]


# --------------------------------------------------------------------------- 3. text that is not UTF-8

def test_undecodable_transcripts_are_errors_of_their_samples_only(tmp_path: Path) -> None:
    chapter = tmp_path / "LibriSpeech" / "test-clean" / "61" / "70968"
    chapter.mkdir(parents=True)
    for utt in ("61-70968-0000", "61-70968-0001", "61-70968-0002"):
        sf.write(chapter / f"{utt}.flac", np.zeros(1600, dtype=np.float32), SR)
    (chapter / "61-70968.trans.txt").write_bytes(
        b"61-70968-0000 HE BEGAN A CONFUSED COMPLAINT\n61-70968-0001 CAF\xe9 AU LAIT\n")
    (chapter / "61-70968-0002.txt").write_bytes(b"NA\xefVE\n")
    samples = {s.sample_id: s for s in TASKS.get("LibriSpeech").samples(tmp_path)}
    assert samples["61-70968-0000"].error is None and samples["61-70968-0000"].target.startswith("HE BEGAN")
    assert f"{chapter / '61-70968.trans.txt'} line 2 is not UTF-8" in samples["61-70968-0001"].error
    assert f"{chapter / '61-70968-0002.txt'} is not UTF-8" in samples["61-70968-0002"].error


def test_a_lone_surrogate_in_a_manifest_is_an_error_of_its_item(tmp_path: Path) -> None:
    wav(tmp_path / "TAU" / "a.wav")
    (tmp_path / "TAU").mkdir(exist_ok=True)
    items = json.dumps([tau_item(0, "a.wav"), tau_item(1, "a.wav")]).replace("Which scene?", "Which \\ud800?", 1)
    (tmp_path / "TAU" / "acoustic_scene_task_meta.json").write_text(items, encoding="utf-8")
    samples = TASKS.get("TAU").samples(tmp_path)
    assert "TAU item 0" in samples[0].error and "surrogate" in samples[0].error and samples[1].error is None
    summary = CaseRunner(CaseSpec("TAU", "scripted"), TASKS.get("TAU"), ScriptedModel(),
                         ResultsDir(tmp_path / "r").ensure()).run(samples)
    assert summary["metrics"]["n_error"] == 1 and summary["metrics"]["n_scored"] == 1


def test_a_file_name_that_is_not_utf8_is_an_error_of_its_sample(tmp_path: Path) -> None:
    for label in ("real", "fake"):
        wav(tmp_path / "HAD" / label / "a.wav")
        os.rename(wav(tmp_path / "HAD" / label / "b.wav"), bytes(tmp_path / "HAD" / label) + b"/b\xff.wav")
    samples = TASKS.get("HAD").samples(tmp_path)
    broken = [s for s in samples if s.error]
    assert sorted(s.sample_id for s in broken) == ["fake/b\ufffd.wav", "real/b\ufffd.wav"]
    assert all("is not UTF-8" in s.error for s in broken)
    summary = CaseRunner(CaseSpec("HAD", "scripted"), TASKS.get("HAD"), ScriptedModel(),
                         ResultsDir(tmp_path / "r").ensure()).run(samples)
    assert (summary["metrics"]["n_error"], summary["metrics"]["n_scored"]) == (2, 2)


# --------------------------------------------------------------------------- 4. sessions in one folder

def test_the_report_says_when_a_folder_mixes_settings(tmp_path: Path) -> None:
    from marathon_lib.results import record_session, run_manifest

    results = ResultsDir(tmp_path).ensure()
    for session, attn, task in (("s1", "sdpa", "TAU"), ("s2", "eager", "HAD")):
        record_session(tmp_path, run_manifest({"attn_implementation": attn, "tasks": [task]}, "cpu", session))
        root = write_tau(tmp_path / f"data-{task}", [tau_item(0, wav(tmp_path / f"data-{task}" / "TAU" / "a.wav").name)])
        runner = CaseRunner(CaseSpec("TAU", f"scripted-{task}"), TASKS.get("TAU"), ScriptedModel(),
                            ResultsDir(tmp_path, session=session))
        assert runner.run(TASKS.get("TAU").samples(root))["session"] == session
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["session"] for s in manifest["sessions"]] == ["s1", "s2"] and manifest["session"] == "s2"
    summary = write_report(results, plots=False)
    assert summary["mixed_settings"] == ['options.attn_implementation: "sdpa" (1 case); "eager" (1 case)']
    board = (tmp_path / "leaderboard.md").read_text()
    assert "Mixed settings" in board and "options.attn_implementation" in board and "options.tasks" not in board


# --------------------------------------------------------------------------- 5. paths that leave the task folder

def test_manifest_paths_stay_inside_the_task_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    secret = wav(tmp_path / "outside" / "secret.wav", seed=7)
    other_task = wav(data / "HAD" / "real" / "r.wav", seed=8)
    wav(data / "TAU" / "ok.wav", seed=9)
    blob = wav(tmp_path / "hub" / "blobs" / "5f1e0c", seed=10)  # a Hugging Face snapshot: symlinks into blobs/
    (data / "TAU" / "snap").mkdir(parents=True)
    (data / "TAU" / "snap" / "clip.wav").symlink_to(os.path.relpath(blob, data / "TAU" / "snap"))
    entries = ["../../outside/secret.wav", str(secret), "../HAD/real/r.wav", "sub/../ok.wav", "snap/clip.wav",
               "sub/../../TAU/ok.wav"]
    write_tau(data, [tau_item(i, path) for i, path in enumerate(entries)])

    opened: list[str] = []
    sys.addaudithook(lambda event, args: event == "open" and opened.append(str(args[0])))
    real_read, real_info = sf.read, sf.info
    monkeypatch.setattr(sf, "read", lambda file, *a, **k: opened.append(str(file)) or real_read(file, *a, **k))
    monkeypatch.setattr(sf, "info", lambda file, *a, **k: opened.append(str(file)) or real_info(file, *a, **k))
    opened.clear()
    samples = TASKS.get("TAU").samples(data)
    summary = CaseRunner(CaseSpec("TAU", "scripted"), TASKS.get("TAU"), ScriptedModel(),
                         ResultsDir(tmp_path / "r").ensure()).run(samples)

    errors = {e["sample_id"]: e["error"] for e in summary["errors"]}
    assert sorted(errors) == ["t0", "t1", "t2", "t5"]  # t5 leaves and comes back: lexically, it leaves
    assert "'../../outside/secret.wav' leaves the task folder" in errors["t0"]
    assert f"{str(secret)!r} is absolute" in errors["t1"] and "'../HAD/real/r.wav' leaves" in errors["t2"]
    assert all(f"TAU item {i} of acoustic_scene_task_meta.json" in errors[f"t{i}"] for i in (0, 1, 2, 5))
    assert summary["metrics"]["n_scored"] == 2  # inside after normalising, and the symlink into the blob store
    assert not [p for p in opened if Path(p).resolve() in (secret.resolve(), other_task.resolve())]
    assert any(Path(p).resolve() == blob.resolve() for p in opened)


# --------------------------------------------------------------------------- 6. files that are not audio

def test_random_bytes_are_not_a_valid_audio_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"cannot decode .*noise\.wav \(not a valid audio file\)"):
        load_audio(noise, SR)

    def misleading(*args, **kwargs):  # what some libsndfile builds answer for a file they cannot parse
        raise sf.LibsndfileError(7, f"Error opening {str(noise)!r}: ")

    monkeypatch.setattr(sf, "read", misleading)
    with pytest.raises(DataError) as err:
        load_audio(noise, SR)
    assert "(not a valid audio file)" in str(err.value) and "does not exist" not in str(err.value)


# --------------------------------------------------------------------------- 7. builders killed on the way

BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import marathon_lib.synthetic as syn

    def stuck(root, **kwargs):
        Path(root, "half-written.wav").write_bytes(b"RIFF")
        print("building", flush=True)
        time.sleep(600)

    syn.build_synthetic_datasets = stuck
    syn.ensure_synthetic_datasets(Path(sys.argv[1]), seconds=float(sys.argv[2]), samples_per_task=1)
""")


@pytest.fixture
def builders(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def start_builder(cache: Path, seconds: float, started: list[subprocess.Popen]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", BUILDER, str(cache), str(seconds)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    started.append(proc)
    assert proc.stdout.readline().strip() == "building"
    return proc


def test_the_next_build_removes_dead_builders_temporaries_only(tmp_path: Path, builders) -> None:
    from marathon_lib.synthetic import ensure_synthetic_datasets

    start_builder(tmp_path, 6.0, builders)  # alive, building another size
    dead = start_builder(tmp_path, 5.0, builders)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    assert len(list(tmp_path.glob("synthetic-*.tmp-*"))) == 2
    ensure_synthetic_datasets(tmp_path, seconds=4.0, samples_per_task=1)
    left = list(tmp_path.glob("synthetic-*.tmp-*"))
    assert len(left) == 1 and (left[0] / "half-written.wav").is_file()  # the live builder's, untouched


# --------------------------------------------------------------------------- 8. resume keys of moved checkpoints

def test_a_moved_checkpoint_resumes_and_changed_weights_recompute(tmp_path: Path, one_thread) -> None:
    from safetensors.torch import load_file, save_file

    from marathon_lib.models import FAMILIES, checkpoint_of, resolve_model
    from marathon_lib.paths import cache_root

    entry = resolve_model("tiny-qwen2-audio")
    first = tmp_path / "cache-a" / "tiny"
    shutil.copytree(checkpoint_of(entry, cache_root() / "models"), first)
    root = write_tau(tmp_path / "data", [tau_item(i, wav(tmp_path / "data" / "TAU" / f"t{i}.wav").name)
                                         for i in range(2)])
    results, spec = ResultsDir(tmp_path / "results").ensure(), TASKS.get("TAU")

    def run(checkpoint: Path) -> dict:
        torch.manual_seed(0)
        model = FAMILIES.get(entry.family)(entry.name, str(checkpoint), "cpu", torch.float32, "sdpa")
        return CaseRunner(CaseSpec("TAU", entry.name), spec, model, results, max_new_tokens=2).run(spec.samples(root))

    assert run(first)["n_resumed"] == 0
    moved = tmp_path / "cache-b" / "elsewhere"
    shutil.move(first.parent, moved.parent)
    shutil.move(moved.parent / "tiny", moved)
    assert run(moved)["n_resumed"] == 2
    weights = next(moved.glob("*.safetensors"))
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    assert run(moved)["n_resumed"] == 0


def test_a_hub_checkpoint_keeps_its_commit() -> None:
    from types import SimpleNamespace

    from marathon_lib.models.identity import checkpoint_revision

    assert checkpoint_revision(SimpleNamespace(_commit_hash="0123abcd"), "Qwen/Qwen2.5-Omni-7B") == "0123abcd"
    assert checkpoint_revision(None, "moonshotai/Kimi-Audio-7B-Instruct") == "moonshotai/Kimi-Audio-7B-Instruct"
