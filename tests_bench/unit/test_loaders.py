"""Seed-format readers (docs/seed.md, "Tasks and their files") on small hand-built datasets in tmp_path.

Every task in TASKS gets a dataset in its seed format, laid out both as the flat layout and as the
AudioMarathon release tree; then the sample protocols; then the broken inputs: a missing or malformed
manifest raises DataError naming the file, a single bad item becomes a Sample with `.error`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from marathon_lib.errors import DataError
from marathon_lib.tasks import TASKS, Sample

SR = 16000
UPPER4 = ("A", "B", "C", "D")
LAYOUTS = ("flat", "release")


def task_dir(root: Path, task: str, layout: str = "flat") -> Path:
    """The task's folder in the flat layout or in the release tree (as the task spec declares them)."""
    folders = TASKS.get(task).folders
    return root / (folders.release if layout == "release" else folders.flat)


def write_audio(path: Path, seconds: float = 0.1, sr: int = SR, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = 0.05 * np.random.default_rng(seed).standard_normal(int(seconds * sr))
    sf.write(path, data.astype(np.float32), sr)
    return path


def write_json(path: Path, payload) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return path


def choice_fields(options) -> dict:
    return {f"choice_{letter}": option for letter, option in zip("abcde", options)}


def load(task: str, root: Path, limit: int | None = None, protocol: str = "full") -> list[Sample]:
    return TASKS.get(task).samples(root, limit, protocol)


def assert_well_formed(samples: list[Sample], letters: tuple[str, ...]) -> None:
    ids = [s.sample_id for s in samples]
    assert len(ids) == len(set(ids)), ids
    for s in samples:
        assert s.error is None, s.error
        assert s.letters == letters
        assert len(s.choices) == len(letters)
        assert s.target in s.choices
        assert s.target_letter == letters[s.choices.index(s.target)]
        assert s.audio_path.is_file(), s.audio_path


# --------------------------------------------------------------------------- dataset builders

TAU_OPTIONS = [
    ["Airport - airport", "Metro station - metro_station", "Urban park - park", "Traveling by a bus - bus"],
    ["Traveling by an underground metro - metro", "Public square - public_square", "Airport - airport",
     "Metro station - metro_station"],
    ["Urban park - park", "Airport - airport", "Public square - public_square", "Traveling by a tram - tram"],
]


def build_tau(root: Path, items: list[dict] | None = None, layout: str = "flat") -> Path:
    task = task_dir(root, "TAU", layout)
    if items is None:
        items = []
        for i, (options, answer) in enumerate(zip(TAU_OPTIONS, "BDA")):
            code = options["ABCD".index(answer)].split(" - ")[1]
            rel = f"audio/{code}/tau_{i}.wav"
            write_audio(task / rel, seed=i)
            items.append({"path": rel, "question": "What type of acoustic scene is represented in this audio segment?",
                          **choice_fields(options), "answer_gt": answer, "task_name": "scene",
                          "dataset_name": "TAU", "scene_label": code, "uniq_id": f"tau_{i:03d}"})
    write_json(task / "acoustic_scene_task_meta.json", items)
    return task


def build_race(root: Path, layout: str = "flat") -> None:
    task = task_dir(root, "RACE", layout)  # audio paths relative to this folder in both layouts
    write_audio(task / "audio/high/high1.wav")
    write_audio(task / "audio/middle/middle7.wav", seed=1)
    options = ["In the park", "At school", "At home", "On a bus"]
    items = [
        {"audio_path": "audio/high/high1.wav", "question": "Where was Tom?", "options": options, "answer": "C",
         "article_id": "high1", "question_idx": 0},
        {"audio_path": "audio/high/high1.wav", "question": "Who came?", "options": ["Ann", "Bob", "Cy", "Di"],
         "answer": "a", "article_id": "high1", "question_idx": 1},
        {"audio_path": "audio/middle/middle7.wav", "question": "When?", "options": ["Monday", "Tuesday", "Friday",
                                                                                     "Sunday"],
         "answer": "D", "article_id": "middle7", "question_idx": 0},
        # the same (article, question) twice: ids must stay unique
        {"audio_path": "audio/middle/middle7.wav", "question": "When?", "options": ["Monday", "Tuesday", "Friday",
                                                                                     "Sunday"],
         "answer": "B", "article_id": "middle7", "question_idx": 0},
    ]
    write_json(task / "race_benchmark.json", items)


SLUE_AUDIO = {"flat": "slue_audio", "release": "dev/mixed_concatenated_audio"}  # the release's split folders


def build_slue(root: Path, layout: str = "flat") -> None:
    task = task_dir(root, "SLUE", layout)
    items = []
    for i, (options, answer) in enumerate([(["Paris", "Berlin", "Madrid", "Rome"], "C"),
                                           (["Angela Merkel", "Jacques Delors", "Olaf", "Ursula"], "A")]):
        rel = f"{SLUE_AUDIO[layout]}/slue_{i}.wav"
        write_audio(task / rel, seed=i)
        items.append({"path": rel, "question": "Which place is mentioned?", **choice_fields(options),
                      "answer_gt": answer, "task_name": "named_entity_recognition", "dataset_name": "slue-voxpopuli",
                      "entity_count": 1, "entity_types": ["PLACE"], "uniq_id": f"slue_{i}"})
    write_json(task / "merged_audio_data.json", items)


def build_gtzan(root: Path, audio_dir: str, layout: str = "flat") -> Path:
    task = task_dir(root, "GTZAN", layout)
    items = []
    for i, (options, answer) in enumerate([(["Blues - blues", "Jazz - jazz", "Rock - rock", "Pop - pop"], "B"),
                                           (["Metal - metal", "Disco - disco", "Reggae - reggae", "Country - country"],
                                            "D")]):
        rel = f"{options['ABCD'.index(answer)].split(' - ')[1]}/clip{i}.wav"
        write_audio(task / audio_dir / rel, sr=22050, seed=i)
        items.append({"path": rel, "question": "What genre?", **choice_fields(options), "answer_gt": answer,
                      "genre_label": rel.split("/")[0], "uniq_id": f"gtzan_{i}"})
    write_json(task / "music_genre_classification_meta.json", items)
    return task


def build_desed(root: Path, layout: str = "flat") -> None:
    task = task_dir(root, "DESED", layout)
    tasks = []
    for i, (options, answer) in enumerate([(["Dog", "Cat", "Blender", "Frying"], "A"),
                                           (["Speech", "Running water", "Dishes", "Vacuum cleaner"], "B")]):
        rel = f"audio/desed_{i}.wav"
        write_audio(task / rel, seed=i)
        tasks.append({"path": rel, "task_type": "event_identification", "question": "Which event?",
                      "choices": dict(zip(UPPER4, options)), "answer_gt": answer,
                      "correct_event": options["ABCD".index(answer)], "uniq_id": f"desed_{i}"})
    write_json(task / "desed_sound_event_detection_task.json", {"task_info": {"name": "x"}, "tasks": tasks})


VESUS_ITEMS = [  # (person_id, emotion_label, kept?)
    ("person1", "happy", True),
    ("person2", "happy", False),  # the seed drops persons 2 and 10 for "happy"
    ("person10", "Happy", False),
    ("person2", "sad", True),
    (10, "angry", True),
    ("person3", "monotone", True),
]


def build_vesus(root: Path, layout: str = "flat") -> None:
    task = task_dir(root, "VESUS", layout)
    emotions = ["Angry", "Happy", "Sad", "Monotone"]
    items = []
    for i, (person, emotion, _) in enumerate(VESUS_ITEMS):
        rel = f"audio/p{person}/{emotion}_{i}.wav"
        write_audio(task / rel, seed=i)
        items.append({"path": rel, "question": "What emotion?", **choice_fields(emotions),
                      "answer_gt": "ABCD"[emotions.index(emotion.capitalize())], "emotion_label": emotion,
                      "person_id": person, "uniq_id": f"vesus_{i}"})
    write_json(task / "audio_emotion_dataset.json", items)


def build_had(root: Path, n_real: int = 3, n_fake: int = 5, layout: str = "flat") -> Path:
    task = task_dir(root, "HAD", layout)
    for label, n in (("real", n_real), ("fake", n_fake)):
        (task / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_audio(task / label / f"HAD_{label}_{i:05d}.wav", seed=i)
    return task


AGE_GROUPS = ["Young Adult (18-30)", "Early Career (31-40)", "Mid Career (41-50)", "Senior (51-70)", "Elderly (71+)"]


def build_vox_age(root: Path, layout: str = "flat") -> None:
    task = task_dir(root, "VoxAge", layout)
    if layout == "release":
        (task.parent / "concatenated_audio_age").mkdir(parents=True, exist_ok=True)  # empty in the release
    items = []
    for i, (answer, order) in enumerate([("Senior (51-70)", [4, 3, 2, 1, 0]),
                                         ("young adult (18-30)", [1, 0, 3, 4, 2]),
                                         ("Elderly (71+)", [0, 1, 2, 3, 4])]):
        rel = f"id1050{i}/00001.wav"
        write_audio(task / "wav" / rel, seed=i)
        items.append({"path": rel, "speaker_id_original": f"id1050{i}", "answer_gt": answer, "speaker_age": 40,
                      "question": "What is the age group?", **choice_fields([AGE_GROUPS[j] for j in order])})
    write_json(task / "age_classification_task_meta.json", items)


VOX_GENDERS = ["Male", "Male", "Male", "female", "Female", "Female", "Male"]  # 4 male, 3 female


def build_vox_gender(root: Path, layout: str = "flat") -> None:
    task = task_dir(root, "VoxGender", layout)
    items = []
    for i, answer in enumerate(VOX_GENDERS):
        rel = f"id2000{i}/00001.wav"
        write_audio(task / "wav" / rel, seed=i)
        items.append({"path": rel, "question": "What is the gender?", "choice_a": "Male", "choice_b": "Female",
                      "answer_gt": answer, "speaker_id_original": f"id2000{i}", "uniq_id": f"vox_gender_{i}"})
    write_json(task / "gender_id_task_meta.json", items)


def build_librispeech(root: Path, with_missing: bool = False, layout: str = "flat") -> Path:
    split = task_dir(root, "LibriSpeech", layout) / "test-clean"
    chapter = split / "1089" / "134686"
    write_audio(chapter / "1089-134686-0000.flac")
    write_audio(chapter / "1089-134686-0001.flac", seed=1)
    (chapter / "1089-134686.trans.txt").write_text(
        "1089-134686-0000 HE HOPED THERE WOULD BE STEW FOR DINNER\n1089-134686-0001 STUFF IT INTO YOU\n",
        encoding="utf-8")
    other = split / "121" / "121726"
    write_audio(other / "121-121726-0000.flac", seed=2)
    (other / "121-121726-0000.txt").write_text("ALSO A POPULAR CONTRIVANCE\n", encoding="utf-8")
    if with_missing:
        write_audio(other / "121-121726-0001.flac", seed=3)  # no .txt and no .trans.txt line
    return split


def build_all(root: Path, layout: str = "flat") -> Path:
    build_librispeech(root, layout=layout)
    build_race(root, layout)
    build_slue(root, layout)
    build_tau(root, layout=layout)
    build_gtzan(root, "wav", layout)
    build_desed(root, layout)
    build_vesus(root, layout)
    build_had(root, layout=layout)
    build_vox_age(root, layout)
    build_vox_gender(root, layout)
    return root


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def full_root(tmp_path: Path, layout: str) -> Path:
    return build_all(tmp_path, layout)


# --------------------------------------------------------------------------- every task loads

def test_every_task_loads(full_root: Path, layout: str):
    counts = {name: len(load(name, full_root)) for name in TASKS}
    assert counts == {"LibriSpeech": 3, "RACE": 4, "SLUE": 2, "TAU": 3, "GTZAN": 2, "DESED": 2, "VESUS": 6,
                      "HAD": 8, "VoxAge": 3, "VoxGender": 7}
    for name in TASKS:
        folder = TASKS.get(name).folder(full_root)
        assert folder.path == task_dir(full_root, name, layout)
        assert folder.found_by == layout or (layout == "flat" and name in ("SLUE", "VESUS"))  # one folder in both


def test_scripts_protocol_counts(full_root: Path):
    """The original Qwen scripts' filters: HAD and VoxGender balanced with seed 42, VESUS without persons 2
    and 10 'happy'; the other tasks evaluate every item under both protocols."""
    counts = {name: len(load(name, full_root, protocol="scripts")) for name in TASKS}
    assert counts == {"LibriSpeech": 3, "RACE": 4, "SLUE": 2, "TAU": 3, "GTZAN": 2, "DESED": 2, "VESUS": 4,
                      "HAD": 6, "VoxAge": 3, "VoxGender": 6}
    selection = TASKS.get("HAD").select(full_root, "scripts", 2)
    assert (selection.published, selection.selected, len(selection.samples)) == (8, 6, 2)


def test_race(full_root: Path, layout: str):
    samples = load("RACE", full_root)
    assert_well_formed(samples, UPPER4)
    assert [s.sample_id for s in samples] == ["high1/0", "high1/1", "middle7/0", "middle7/0#1"]
    assert [s.target for s in samples] == ["At home", "Ann", "Sunday", "Tuesday"]
    assert samples[0].question == "Where was Tom?"
    assert samples[0].audio_path == task_dir(full_root, "RACE", layout) / "audio/high/high1.wav"
    assert samples[0].meta == {"article_id": "high1", "question_idx": 0}


def test_slue(full_root: Path, layout: str):
    samples = load("SLUE", full_root)
    assert_well_formed(samples, UPPER4)
    assert [(s.sample_id, s.target) for s in samples] == [("slue_0", "Madrid"), ("slue_1", "Angela Merkel")]
    assert samples[0].audio_path == task_dir(full_root, "SLUE", layout) / SLUE_AUDIO[layout] / "slue_0.wav"
    assert samples[0].meta["task_name"] == "named_entity_recognition"


def test_tau(full_root: Path):
    samples = load("TAU", full_root)
    assert_well_formed(samples, UPPER4)
    assert [s.sample_id for s in samples] == ["tau_000", "tau_001", "tau_002"]
    assert [s.target for s in samples] == ["Metro station - metro_station", "Metro station - metro_station",
                                           "Urban park - park"]
    assert [s.target_letter for s in samples] == ["B", "D", "A"]
    assert samples[1].choices == tuple(TAU_OPTIONS[1])
    assert samples[0].meta == {"scene_label": "metro_station"}


@pytest.mark.parametrize("audio_dir", ["wav", ""])
def test_gtzan_audio_under_wav_or_root(tmp_path: Path, audio_dir: str):
    build_gtzan(tmp_path, audio_dir)
    samples = load("GTZAN", tmp_path)
    assert_well_formed(samples, UPPER4)
    assert [s.target for s in samples] == ["Jazz - jazz", "Country - country"]
    base = tmp_path / "GTZAN" / audio_dir if audio_dir else tmp_path / "GTZAN"
    assert [s.audio_path for s in samples] == [base / "jazz/clip0.wav", base / "country/clip1.wav"]


def test_desed(full_root: Path):
    samples = load("DESED", full_root)
    assert_well_formed(samples, UPPER4)
    assert [(s.sample_id, s.target, s.target_letter) for s in samples] == [
        ("desed_0", "Dog", "A"), ("desed_1", "Running water", "B")]
    assert samples[0].choices == ("Dog", "Cat", "Blender", "Frying")


def test_vesus_scripts_protocol_drops_person2_and_person10_happy(full_root: Path):
    samples = load("VESUS", full_root, protocol="scripts")
    assert_well_formed(samples, UPPER4)
    kept = [f"vesus_{i}" for i, (_, _, keep) in enumerate(VESUS_ITEMS) if keep]
    assert [s.sample_id for s in samples] == kept
    assert [s.target for s in samples] == ["Happy", "Sad", "Angry", "Monotone"]
    everything = load("VESUS", full_root)  # full: every published item
    assert [s.sample_id for s in everything] == [f"vesus_{i}" for i in range(len(VESUS_ITEMS))]


def test_had_full_protocol_keeps_every_clip_interleaved(full_root: Path):
    samples = load("HAD", full_root)
    assert_well_formed(samples, ("a", "b"))
    assert [s.target for s in samples] == ["real", "fake"] * 3 + ["fake", "fake"]
    assert sorted(s.sample_id for s in samples) == sorted(
        [f"real/HAD_real_{i:05d}.wav" for i in range(3)] + [f"fake/HAD_fake_{i:05d}.wav" for i in range(5)])


def test_had_scripts_protocol_balanced_and_interleaved(full_root: Path, layout: str):
    samples = load("HAD", full_root, protocol="scripts")
    assert_well_formed(samples, ("a", "b"))
    assert [s.target for s in samples] == ["real", "fake"] * 3  # 3 real, 5 fake -> 3 + 3, alternating
    assert all(s.choices == ("real", "fake") for s in samples)
    real_ids = [s.sample_id for s in samples if s.target == "real"]
    assert real_ids == [f"real/HAD_real_{i:05d}.wav" for i in range(3)]
    fake_ids = [s.sample_id for s in samples if s.target == "fake"]
    assert len(set(fake_ids)) == 3 and set(fake_ids) <= {f"fake/HAD_fake_{i:05d}.wav" for i in range(5)}
    for s in samples:
        assert s.audio_path == task_dir(full_root, "HAD", layout) / s.sample_id
    assert [s.sample_id for s in load("HAD", full_root, protocol="scripts")] == [s.sample_id for s in samples]  # seeded


def test_had_more_real_than_fake(tmp_path: Path):
    build_had(tmp_path, n_real=4, n_fake=2)
    samples = load("HAD", tmp_path, protocol="scripts")
    assert [s.target for s in samples] == ["real", "fake", "real", "fake"]
    assert {s.sample_id for s in samples if s.target == "fake"} == {"fake/HAD_fake_00000.wav",
                                                                    "fake/HAD_fake_00001.wav"}


def test_vox_age(full_root: Path, layout: str):
    samples = load("VoxAge", full_root)
    assert_well_formed(samples, ("A", "B", "C", "D", "E"))
    assert [s.target for s in samples] == ["Senior (51-70)", "Young Adult (18-30)", "Elderly (71+)"]
    assert [s.target_letter for s in samples] == ["B", "B", "E"]
    assert samples[0].audio_path == task_dir(full_root, "VoxAge", layout) / "wav/id10500/00001.wav"
    assert samples[0].meta == {"speaker_id_original": "id10500", "speaker_age": 40}


def test_vox_gender_interleaved(full_root: Path, layout: str):
    samples = load("VoxGender", full_root)
    assert_well_formed(samples, ("a", "b"))
    # "female" in the manifest is the Female option; full keeps the 4th male voice at the end
    assert [s.target for s in samples] == ["Male", "Female"] * 3 + ["Male"]
    assert [s.sample_id for s in samples] == [f"vox_gender_{i}" for i in (0, 3, 1, 4, 2, 5, 6)]
    assert samples[1].audio_path == task_dir(full_root, "VoxGender", layout) / "wav/id20003/00001.wav"
    assert all(s.choices == ("Male", "Female") for s in samples)
    balanced = load("VoxGender", full_root, protocol="scripts")  # the Qwen gender script: seed 42, 3 + 3
    assert [s.target for s in balanced] == ["Male", "Female"] * 3
    assert {s.sample_id for s in balanced} >= {f"vox_gender_{i}" for i in (3, 4, 5)}


def test_librispeech(full_root: Path):
    samples = load("LibriSpeech", full_root)
    by_id = {s.sample_id: s for s in samples}
    assert len(by_id) == len(samples) == 3
    assert by_id["1089-134686-0000"].target == "HE HOPED THERE WOULD BE STEW FOR DINNER"
    assert by_id["1089-134686-0001"].target == "STUFF IT INTO YOU"
    assert by_id["121-121726-0000"].target == "ALSO A POPULAR CONTRIVANCE"  # per-utterance .txt
    for s in samples:
        assert s.error is None and s.choices == () and s.audio_path.is_file()
        assert s.audio_path.suffix == ".flac"
    assert by_id["121-121726-0000"].meta == {"speaker": "121"}


# --------------------------------------------------------------------------- --sample-limit prefix

@pytest.mark.parametrize("task", ["RACE", "TAU", "HAD", "VoxGender", "LibriSpeech"])
def test_samples_limit_is_a_prefix(full_root: Path, task: str):
    everything = load(task, full_root)
    assert load(task, full_root, None) == everything
    assert load(task, full_root, 0) == everything
    for limit in (1, 2, 3):
        assert load(task, full_root, limit) == everything[:limit]
    assert load(task, full_root, 1000) == everything


@pytest.mark.parametrize("task,limit", [("HAD", 2), ("HAD", 4), ("VoxGender", 2), ("VoxGender", 4)])
def test_balanced_prefix(full_root: Path, task: str, limit: int):
    targets = [s.target for s in load(task, full_root, limit)]
    assert len(targets) == limit
    assert len(set(targets)) == 2 and targets.count(targets[0]) == limit // 2


# --------------------------------------------------------------------------- broken manifests

MANIFESTS = {
    "RACE": "RACE/race_benchmark.json",
    "SLUE": "SLUE/merged_audio_data.json",
    "TAU": "TAU/acoustic_scene_task_meta.json",
    "GTZAN": "GTZAN/music_genre_classification_meta.json",
    "DESED": "DESED/desed_sound_event_detection_task.json",
    "VESUS": "VESUS/audio_emotion_dataset.json",
    "VoxAge": "VoxCeleb/age_classification_task_meta.json",
    "VoxGender": "VoxCeleb/gender_id_task_meta.json",
}


@pytest.mark.parametrize("task", sorted(MANIFESTS))
def test_missing_manifest_names_the_path(tmp_path: Path, task: str):
    with pytest.raises(DataError) as err:
        load(task, tmp_path)
    assert str(tmp_path / MANIFESTS[task]) in str(err.value)


@pytest.mark.parametrize("task", sorted(MANIFESTS))
def test_invalid_json_names_the_file(tmp_path: Path, task: str):
    path = tmp_path / MANIFESTS[task]
    path.parent.mkdir(parents=True)
    path.write_text('[{"path": "x.wav", ', encoding="utf-8")
    with pytest.raises(DataError) as err:
        load(task, tmp_path)
    assert str(path) in str(err.value)
    assert "JSON" in str(err.value)


@pytest.mark.parametrize("task", ["RACE", "SLUE", "TAU", "GTZAN", "VESUS", "VoxAge", "VoxGender"])
def test_dict_instead_of_list(tmp_path: Path, task: str):
    write_json(tmp_path / MANIFESTS[task], {"items": []})
    with pytest.raises(DataError) as err:
        load(task, tmp_path)
    assert Path(MANIFESTS[task]).name in str(err.value) and "list" in str(err.value)


@pytest.mark.parametrize("payload", [[], {"task_info": {}}, {"tasks": {"0": {}}}])
def test_desed_needs_tasks_list(tmp_path: Path, payload):
    write_json(tmp_path / MANIFESTS["DESED"], payload)
    with pytest.raises(DataError) as err:
        load("DESED", tmp_path)
    assert "desed_sound_event_detection_task.json" in str(err.value) and "tasks" in str(err.value)


def _tau_item(i: int, **overrides) -> dict:
    item = {"path": f"audio/tau_{i}.wav", "question": "Which scene?", **choice_fields(TAU_OPTIONS[0]),
            "answer_gt": "B", "scene_label": "metro_station", "uniq_id": f"tau_{i:03d}"}
    item.update(overrides)
    return {k: v for k, v in item.items() if v is not None}


def test_bad_items_become_error_samples(tmp_path: Path):
    task = tmp_path / "TAU"
    for i in range(6):
        write_audio(task / f"audio/tau_{i}.wav", seed=i)
    items = [
        _tau_item(0),
        _tau_item(1, choice_c=None),  # missing key
        _tau_item(2, answer_gt="E"),  # letter outside the options
        _tau_item(3, choice_d="airport - AIRPORT "),  # duplicate of choice_a (case/space-insensitive)
        "not an object",
        _tau_item(5, answer_gt="Urban park - park"),  # answer given as option text
    ]
    build_tau(tmp_path, items)
    samples = load("TAU", tmp_path)
    assert len(samples) == 6
    good = [s for s in samples if s.error is None]
    assert [s.sample_id for s in good] == ["tau_000", "tau_005"]
    assert [s.target for s in good] == ["Metro station - metro_station", "Urban park - park"]
    errors = {s.sample_id: s.error for s in samples if s.error}
    assert len(errors) == 4
    missing, outside, duplicate = errors["tau_001"], errors["tau_002"], errors["tau_003"]
    assert "item 1" in missing and "acoustic_scene_task_meta.json" in missing and "choice_c" in missing
    assert "item 2" in outside and "'E'" in outside and "not among the choices" in outside
    assert "item 3" in duplicate and "duplicate" in duplicate
    (other,) = [e for sid, e in errors.items() if sid not in {"tau_001", "tau_002", "tau_003"}]
    assert "item 4" in other and "not a JSON object" in other
    assert all(s.target == "" for s in samples if s.error)


def test_vox_age_answer_text_not_among_choices(tmp_path: Path):
    build_vox_age(tmp_path)
    path = tmp_path / MANIFESTS["VoxAge"]
    items = json.loads(path.read_text())
    items[1]["answer_gt"] = "Teenager (13-17)"
    del items[2]["choice_e"]
    write_json(path, items)
    samples = load("VoxAge", tmp_path)
    assert samples[0].error is None and samples[0].target == "Senior (51-70)"
    assert "Teenager (13-17)" in samples[1].error and "item 1" in samples[1].error
    assert "choice_e" in samples[2].error and "item 2" in samples[2].error


def test_race_missing_options_key(tmp_path: Path):
    build_race(tmp_path)
    path = tmp_path / MANIFESTS["RACE"]
    items = json.loads(path.read_text())
    del items[1]["options"]
    items[2]["options"] = "A or B"
    write_json(path, items)
    samples = load("RACE", tmp_path)
    assert [s.error is None for s in samples] == [True, False, False, True]
    assert "options" in samples[1].error and "item 1" in samples[1].error
    assert "options" in samples[2].error and "item 2" in samples[2].error


def test_desed_choices_missing_letter(tmp_path: Path):
    build_desed(tmp_path)
    path = tmp_path / MANIFESTS["DESED"]
    data = json.loads(path.read_text())
    del data["tasks"][0]["choices"]["D"]
    write_json(path, data)
    samples = load("DESED", tmp_path)
    assert samples[0].error and "item 0" in samples[0].error and "'D'" in samples[0].error
    assert samples[1].error is None and samples[1].target == "Running water"


def test_librispeech_utterance_without_transcript(tmp_path: Path):
    build_librispeech(tmp_path, with_missing=True)
    samples = load("LibriSpeech", tmp_path)
    by_id = {s.sample_id: s for s in samples}
    assert len(samples) == 4
    broken = by_id["121-121726-0001"]
    assert broken.error and "121-121726-0001.flac" in broken.error and "transcript" in broken.error
    assert sum(s.error is None for s in samples) == 3


def test_librispeech_without_split_or_audio(tmp_path: Path):
    with pytest.raises(DataError) as err:
        load("LibriSpeech", tmp_path)
    assert str(tmp_path / "LibriSpeech" / "test-clean") in str(err.value)
    (tmp_path / "LibriSpeech" / "test-clean" / "1" / "2").mkdir(parents=True)
    with pytest.raises(DataError, match="no .flac"):
        load("LibriSpeech", tmp_path)


def test_had_without_real_folder(tmp_path: Path):
    build_had(tmp_path)
    for path in (tmp_path / "HAD" / "real").iterdir():
        path.unlink()
    (tmp_path / "HAD" / "real").rmdir()
    with pytest.raises(DataError) as err:
        load("HAD", tmp_path)
    assert str(tmp_path / "HAD" / "real") in str(err.value)


def test_had_without_any_wav(tmp_path: Path):
    (tmp_path / "HAD" / "real").mkdir(parents=True)
    (tmp_path / "HAD" / "fake").mkdir()
    with pytest.raises(DataError, match="no .wav"):
        load("HAD", tmp_path)


def test_missing_audio_file_is_resolved_to_its_first_candidate(tmp_path: Path):
    """A manifest entry whose audio is absent still loads; the run reports the missing file later."""
    build_vox_gender(tmp_path)
    (tmp_path / "VoxCeleb/wav/id20000/00001.wav").unlink()
    samples = load("VoxGender", tmp_path)
    first = next(s for s in samples if s.sample_id == "vox_gender_0")
    assert first.error is None and first.audio_path == tmp_path / "VoxCeleb/wav/id20000/00001.wav"
    assert not first.audio_path.exists()


@pytest.mark.parametrize("empty", ["fake", "real"])
def test_had_with_an_empty_class_folder(tmp_path: Path, empty: str):
    build_had(tmp_path, n_real=0 if empty == "real" else 3, n_fake=0 if empty == "fake" else 3)
    with pytest.raises(DataError) as err:
        load("HAD", tmp_path)
    assert empty in str(err.value)
