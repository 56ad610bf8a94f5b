"""Tests for marathon_lib.synthetic: formats, audio validity, determinism, cache, label truth."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from marathon_lib import synthetic as syn
from marathon_lib.synthetic import context, music, scenes, speech, speech_tasks, text
from marathon_lib.tasks import labels

SECONDS = 4.0
N = 2
TOL = 0.02


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic")
    manifest = syn.build_synthetic_datasets(root, seconds=SECONDS, samples_per_task=N, seed=0)
    return root, manifest


def _load(root: Path, rel: str):
    return json.loads((root / rel).read_text(encoding="utf-8"))


def _audio(path: Path, sr: int, channels: int = 1) -> np.ndarray:
    info = sf.info(path)
    assert info.samplerate == sr, path
    assert info.channels == channels, path
    assert info.subtype == "PCM_16", path
    data, _ = sf.read(path, dtype="float64", always_2d=True)
    assert abs(len(data) / sr - SECONDS) <= TOL * SECONDS, path
    assert np.all(np.isfinite(data)), path
    assert 0.0 < np.max(np.abs(data)) <= 0.9 + 1e-4, path  # headroom: never clipped
    return data[:, 0] if channels == 1 else data


def _check_letter_mc(options: list[str], answer: str) -> None:
    assert answer in "ABCD"[:len(options)]
    assert len(set(options)) == len(options)
    assert all(isinstance(o, str) and o for o in options)


def _sha_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _f0_track(x: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 450.0) -> np.ndarray:
    """Autocorrelation pitch per 10 ms frame (window-corrected, as in Boersma 1993);
    NaN where unvoiced or quiet."""
    frame, hop = int(0.05 * sr), int(0.01 * sr)
    count = (len(x) - frame) // hop
    window = np.hanning(frame)
    frames = x[np.arange(frame)[None, :] + hop * np.arange(count)[:, None]]
    frames = (frames - frames.mean(axis=1, keepdims=True)) * window
    energy = (frames ** 2).sum(axis=1)
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * frame)) ** 2)[:, :frame]
    window_ac = np.fft.irfft(np.abs(np.fft.rfft(window, 2 * frame)) ** 2)[:frame]
    ac = ac / np.maximum(ac[:, :1], 1e-12) / (window_ac / window_ac[0])
    lo, hi = int(sr / fmax), int(sr / fmin)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    voiced = (ac[np.arange(count), lag] > 0.5) & (energy > 0.1 * np.median(energy))
    return np.where(voiced, sr / lag, np.nan)


def _median_f0(x: np.ndarray, sr: int) -> float:
    return float(np.nanmedian(_f0_track(x, sr)))


def _pitch_spread(x: np.ndarray, sr: int, window_s: float = 1.0) -> float:
    """Octaves between the 95th and 5th percentile of 1 s window median F0s: a voice with
    another pitch spliced in for a second or more widens it, ordinary intonation does not."""
    f0 = _f0_track(x, sr)
    per = int(window_s / 0.01)
    medians = [np.nanmedian(w) for w in (f0[i:i + per] for i in range(0, len(f0) - per + 1, per // 4))
               if np.sum(~np.isnan(w)) >= per // 4]
    return float(np.log2(np.percentile(medians, 95) / np.percentile(medians, 5)))


espeak_only = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                 reason="needs espeak-ng voices; the fallback only models F0")


# --------------------------------------------------------------------------- manifest


def test_manifest(built):
    root, manifest = built
    assert manifest == _load(root, "fixtures_manifest.json")
    assert manifest["generator_version"] == syn.GENERATOR_VERSION
    assert (manifest["seconds"], manifest["samples_per_task"], manifest["seed"]) == (SECONDS, N, 0)
    assert re.fullmatch(r"espeak-ng \S+|formant-fallback", manifest["speech_engine"])
    assert tuple(manifest["tasks"]) == syn.TASK_DIRS
    for task_dir, entry in manifest["tasks"].items():
        assert entry["files"] == sorted(entry["files"])
        for rel in entry["files"]:
            assert rel.startswith(task_dir + "/") and ":" not in rel
            assert (root / rel).is_file()
        audio = [f for f in entry["files"] if f.endswith((".wav", ".flac"))]
        assert entry["n"] == len(audio) > 0
    listed = {f for e in manifest["tasks"].values() for f in e["files"]}
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk - listed == {"fixtures_manifest.json"}


# --------------------------------------------------------------------------- per-task formats


def test_librispeech(built):
    root, _ = built
    base = root / "LibriSpeech" / "test-clean"
    flacs = sorted(base.glob("*/*/*.flac"))
    assert len(flacs) == N
    transcripts = {}
    for trans in base.glob("*/*/*.trans.txt"):
        spk, chapter = trans.parent.parent.name, trans.parent.name
        assert trans.name == f"{spk}-{chapter}.trans.txt"
        for line in trans.read_text().splitlines():
            utt, text = line.split(" ", 1)
            assert re.fullmatch(rf"{spk}-{chapter}-\d{{4}}", utt)
            assert re.fullmatch(r"[A-Z]+( [A-Z]+)*", text)
            transcripts[utt] = text
    assert sorted(transcripts) == [f.stem for f in flacs]
    for flac in flacs:
        assert sf.info(flac).format == "FLAC"
        _audio(flac, 16000)


def test_race(built):
    root, _ = built
    items = _load(root, "RACE/race_benchmark.json")
    assert len(items) == N
    for item in items:
        assert set(item) == {"audio_path", "question", "options", "answer", "article_id",
                             "question_idx"}
        assert len(item["options"]) == 4
        _check_letter_mc(item["options"], item["answer"])
        assert isinstance(item["question_idx"], int)
        assert re.fullmatch(r"audio/(high|middle)/\S+\.wav", item["audio_path"])
        assert ("high" in item["audio_path"]) == item["article_id"].startswith("high")
        _audio(root / "RACE" / item["audio_path"], 16000)


def test_slue(built):
    root, _ = built
    items = _load(root, "SLUE/merged_audio_data.json")
    assert len(items) == N
    keys = {"path", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer_gt",
            "task_name", "dataset_name", "entity_count", "entity_types", "source_count",
            "audio_duration_info", "source_folder", "source_file", "uniq_id"}
    for item in items:
        assert set(item) == keys
        _check_letter_mc([item[f"choice_{c}"] for c in "abcd"], item["answer_gt"])
        assert item["task_name"] == "named_entity_recognition"
        assert item["dataset_name"] == "slue-voxpopuli"
        assert item["entity_count"] == len(item["entity_types"])
        _audio(root / "SLUE" / item["path"], 16000)


def test_tau(built):
    root, _ = built
    items = _load(root, "TAU/acoustic_scene_task_meta.json")
    assert len(items) == N
    for item in items:
        assert set(item) == {"path", "question", "choice_a", "choice_b", "choice_c", "choice_d",
                             "answer_gt", "task_name", "dataset_name", "scene_label", "uniq_id"}
        options = [item[f"choice_{c}"] for c in "abcd"]
        _check_letter_mc(options, item["answer_gt"])
        assert set(options) <= set(labels.TAU_SCENES)
        correct = options["ABCD".index(item["answer_gt"])]
        assert labels.label_code(correct) == item["scene_label"]
        assert item["question"] == "What type of acoustic scene is represented in this audio segment?"
        assert Path(item["path"]).parent.name == item["scene_label"]
        _audio(root / "TAU" / item["path"], 48000, channels=2)


def test_tau_folders_use_full_scene_codes():
    for option in labels.TAU_SCENES:
        code = labels.label_code(option)
        assert Path(scenes._tau_relpath(code, 0)).parent.name == code
    assert "/metro/" not in scenes._tau_relpath("metro_station", 7)


def test_gtzan(built):
    root, _ = built
    items = _load(root, "GTZAN/music_genre_classification_meta.json")
    assert len(items) == N
    for item in items:
        assert set(item) == {"path", "question", "choice_a", "choice_b", "choice_c", "choice_d",
                             "answer_gt", "genre_label", "uniq_id"}
        options = [item[f"choice_{c}"] for c in "abcd"]
        _check_letter_mc(options, item["answer_gt"])
        assert set(options) <= set(labels.GTZAN_GENRES)
        assert labels.label_code(options["ABCD".index(item["answer_gt"])]) == item["genre_label"]
        _audio(root / "GTZAN" / "wav" / item["path"], 22050)


def test_desed(built):
    root, _ = built
    data = _load(root, "DESED/desed_sound_event_detection_task.json")
    assert set(data) == {"task_info", "tasks"}
    assert len(data["tasks"]) == N
    for task in data["tasks"]:
        assert set(task) == {"path", "task_type", "question", "choices", "answer_gt",
                             "all_events", "primary_event", "correct_event",
                             "path_extracted_event", "uniq_id"}
        assert list(task["choices"]) == ["A", "B", "C", "D"]
        _check_letter_mc(list(task["choices"].values()), task["answer_gt"])
        assert set(task["choices"].values()) <= set(labels.DESED_EVENTS)
        assert task["choices"][task["answer_gt"]] == task["correct_event"]
        assert task["all_events"] == [task["correct_event"]] == [task["primary_event"]]
        assert task["path_extracted_event"] in task["path"]
        _audio(root / "DESED" / task["path"], 16000)


def test_vesus(built):
    root, _ = built
    items = _load(root, "VESUS/audio_emotion_dataset.json")
    assert len(items) == N
    for item in items:
        assert set(item) == {"path", "question", "choice_a", "choice_b", "choice_c", "choice_d",
                             "answer_gt", "emotion_label", "person_id"}
        options = [item[f"choice_{c}"] for c in "abcd"]
        _check_letter_mc(options, item["answer_gt"])
        assert item["emotion_label"] in labels.VESUS_EMOTIONS
        assert options["ABCD".index(item["answer_gt"])] == item["emotion_label"].capitalize()
        assert re.fullmatch(r"person([1-9]|10)", item["person_id"])
        assert not (item["emotion_label"] == "happy" and item["person_id"] in ("person2", "person10"))
        _audio(root / "VESUS" / item["path"], 16000)


def test_had_balanced(built):
    root, _ = built
    real, fake = sorted((root / "HAD/real").glob("*.wav")), sorted((root / "HAD/fake").glob("*.wav"))
    assert len(real) == len(fake) == N
    for path in real + fake:
        _audio(path, 16000)


def test_voxceleb_age(built):
    root, _ = built
    items = _load(root, "VoxCeleb/age_classification_task_meta.json")
    assert len(items) == N
    for item in items:
        assert set(item) == {"path", "speaker_id_original", "answer_gt", "speaker_age", "question",
                             "choice_a", "choice_b", "choice_c", "choice_d", "choice_e"}
        options = [item[f"choice_{c}"] for c in "abcde"]
        assert sorted(options) == sorted(labels.VOX_AGE_GROUPS)
        assert item["answer_gt"] in options
        low = int(re.search(r"\d+", item["answer_gt"]).group())
        assert item["speaker_age"] >= low
        assert re.fullmatch(r"id1\d{4}", item["speaker_id_original"])
        assert item["path"].startswith(item["speaker_id_original"] + "/")
        _audio(root / "VoxCeleb" / "wav" / item["path"], 16000)


def test_voxceleb_gender_balanced(built):
    root, _ = built
    items = _load(root, "VoxCeleb/gender_id_task_meta.json")
    assert len(items) == 2 * N
    for item in items:
        assert set(item) == {"path", "question", "choice_a", "choice_b", "answer_gt",
                             "speaker_id_original", "uniq_id"}
        assert (item["choice_a"], item["choice_b"]) == ("Male", "Female")
        assert re.fullmatch(r"id1\d{4}/\d{5}\.wav", item["path"])
        _audio(root / "VoxCeleb" / "wav" / item["path"], 16000)
    genders = [item["answer_gt"] for item in items]
    assert genders.count("Male") == genders.count("Female") == N


def test_answers_vary_across_items():
    """With enough items every answer letter is used (balanced positions)."""
    rng = np.random.default_rng(0)
    positions = context._balanced(rng, 4, 8)
    assert sorted(positions) == [0, 0, 1, 1, 2, 2, 3, 3]
    options = context._choices(rng, "Dog", labels.DESED_EVENTS, 4, 2)
    assert options[2] == "Dog" and len(set(options)) == 4


# --------------------------------------------------------------------------- determinism, cache


def test_deterministic(built, tmp_path):
    root, manifest = built
    again = syn.build_synthetic_datasets(tmp_path / "again", seconds=SECONDS, samples_per_task=N,
                                         seed=0)
    assert again == manifest
    assert _sha_tree(tmp_path / "again") == _sha_tree(root)


def test_seed_changes_output(tmp_path):
    def tau_items(seed: int) -> list[dict]:
        ctx = context._Ctx(tmp_path / str(seed), SECONDS, N, seed, speech._detect_engine())
        scenes._write_tau(ctx)
        return _load(ctx.root, "TAU/acoustic_scene_task_meta.json")

    assert tau_items(0) != tau_items(1)


def test_ensure_builds_once(tmp_path, monkeypatch):
    builds = []
    real_build = syn.build_synthetic_datasets

    def counting_build(*args, **kwargs):
        builds.append(args)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(syn, "build_synthetic_datasets", counting_build)
    with ThreadPoolExecutor(max_workers=3) as pool:  # concurrent callers, as with xdist workers
        roots = list(pool.map(lambda _: syn.ensure_synthetic_datasets(
            tmp_path, seconds=SECONDS, samples_per_task=N), range(3)))
    assert len(builds) == 1 and len(set(roots)) == 1
    first = roots[0]
    assert (first / "COMPLETE").is_file() and (first / "fixtures_manifest.json").is_file()
    assert first.parent == tmp_path and first.name.startswith("synthetic-")
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]

    start = time.perf_counter()
    assert syn.ensure_synthetic_datasets(tmp_path, seconds=SECONDS, samples_per_task=N) == first
    assert time.perf_counter() - start < 1.0
    assert len(builds) == 1
    assert syn.ensure_synthetic_datasets(tmp_path, seconds=SECONDS, samples_per_task=N,
                                         seed=5) != first  # the key covers the arguments
    assert len(builds) == 2


def test_formant_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    manifest = syn.build_synthetic_datasets(tmp_path, seconds=SECONDS, samples_per_task=1)
    assert manifest["speech_engine"] == "formant-fallback"
    for entry in manifest["tasks"].values():
        for rel in entry["files"]:
            if rel.endswith((".wav", ".flac")):
                data, sr = sf.read(tmp_path / rel)
                assert abs(len(data) / sr - SECONDS) <= TOL * SECONDS
                assert np.all(np.isfinite(data)) and 0.01 < np.max(np.abs(data)) <= 0.9 + 1e-4
    male = speech._FormantFallback().speak("hello there my friend.", speech.Voice("m3"))
    female = speech._FormantFallback().speak("hello there my friend.", speech.Voice("f3"))
    assert _median_f0(female, 16000) > 1.5 * _median_f0(male, 16000)


# --------------------------------------------------------------------------- label truth


def test_female_voices_are_higher(built):
    root, _ = built
    items = _load(root, "VoxCeleb/gender_id_task_meta.json")
    f0 = {g: [] for g in ("Male", "Female")}
    for item in items:
        data, sr = sf.read(root / "VoxCeleb" / "wav" / item["path"])
        f0[item["answer_gt"]].append(_median_f0(data, sr))
    assert min(f0["Female"]) > max(f0["Male"]), f0


@espeak_only
def test_had_fake_has_voice_change(built):
    root, _ = built
    spread = {label: [_pitch_spread(*sf.read(p)) for p in sorted((root / "HAD" / label).glob("*.wav"))]
              for label in ("real", "fake")}
    assert min(spread["fake"]) > 0.8 > max(spread["real"]), spread


def test_spoken_facts_answer_the_questions():
    """RACE facts and SLUE entity sentences contain the correct option and no distractor,
    and the neutral filler text around them never mentions any option."""
    rng = np.random.default_rng(0)
    filler = " ".join(islice(text._sentences(rng, text._NARRATIVE), 300))
    for kind in range(3):
        for _ in range(20):
            fact, question, correct, pool = speech_tasks._race_fact(rng, kind)
            assert correct.lower() in fact.lower() and question.endswith("?")
            for option in pool:
                assert option.lower() not in filler.lower()
                assert option == correct or option.lower() not in fact.lower()
    speeches = " ".join(islice(text._sentences(rng, text._PARLIAMENT), 300))
    for _, _, pool in speech_tasks._SLUE_QUESTIONS:
        assert not any(entity.lower() in speeches.lower() for entity in pool)
    lead = speech_tasks._fact_lead(rng, "Tom bought a red kite.", text._sentences(rng, text._NARRATIVE),
                          speech.Voice(), 60.0)
    assert lead[-1] == "Tom bought a red kite."
    assert sum(speech._estimate_seconds(s, speech.Voice()) for s in lead) <= 30.0


def test_vesus_prosody_carriers():
    """Sad speech is slower, quieter and lower than angry speech from the same engine."""
    engine = speech._detect_engine()
    text = "The old sailor walked slowly along the river in the morning."

    def render(emotion: str) -> np.ndarray:
        pitch, speed, amplitude, pitch_range, _ = speech_tasks._EMOTION_PROSODY[emotion]
        return engine.speak(text, speech.Voice("m3", pitch, speed, amplitude, pitch_range))

    sad, angry = render("sad"), render("angry")
    assert len(sad) > 1.3 * len(angry)
    assert np.sqrt(np.mean(sad ** 2)) < 0.7 * np.sqrt(np.mean(angry ** 2))
    assert _median_f0(sad, engine.sr) < _median_f0(angry, engine.sr) * 1.05


def test_disco_has_four_on_the_floor():
    """Onset envelope of synthesized disco repeats every beat at ~120 bpm."""
    sr = 22050
    x = music._genre_disco(np.random.default_rng(0), 8 * sr, sr)
    hop = 256
    env = np.abs(x[: len(x) // hop * hop]).reshape(-1, hop).max(axis=1)
    onset = np.maximum(np.diff(env), 0)
    ac = np.correlate(onset - onset.mean(), onset - onset.mean(), "full")[len(onset) - 1:]
    lags = np.arange(len(ac)) * hop / sr
    window = (lags > 0.3) & (lags < 0.8)
    beat = lags[window][np.argmax(ac[window])]
    assert abs(60 / beat - 120) < 6
