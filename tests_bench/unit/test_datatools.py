"""`marathon durations` and `marathon segment` on synthetic short clips built here (8 kHz, constant-valued
clips, so every output sample can be traced to its source clip), with exact expected outputs; the
segments must load with the project's own task loaders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from matplotlib.image import imread

from marathon_lib.cli import main
from marathon_lib.durations import analyse_durations
from marathon_lib.errors import DataError
from marathon_lib.segment import (
    plan_greedy,
    plan_target,
    segment_gtzan,
    segment_had,
    segment_tau,
    segment_voxceleb,
)
from marathon_lib.tasks import TASKS

SR = 8000


def clip(path: Path, *parts: tuple[float, float], sr: int = SR) -> Path:
    """A mono clip of constant-valued parts (seconds, value), e.g. clip(p, (1.0, 0.1), (0.5, 0.2))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.concatenate([np.full(round(s * sr), v, np.float32) for s, v in parts]), sr,
             subtype="PCM_16")
    return path


def pcm(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float32")[0]


def same_audio(path: Path, *parts: tuple[float, float]) -> bool:
    expected = np.concatenate([np.full(round(s * SR), v, np.float32) for s, v in parts])
    audio = pcm(path)
    return audio.shape == expected.shape and bool(np.allclose(audio, expected, atol=1e-4))


def tau_item(uniq_id: str, path: str) -> dict:
    return {"path": path, "question": "q", "choice_a": "Airport - airport", "choice_b": "Urban park - park",
            "choice_c": "Traveling by a bus - bus", "choice_d": "Traveling by a tram - tram", "answer_gt": "A",
            "uniq_id": uniq_id}


def test_durations_statistics_buckets_and_unusable_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    for name, seconds in (("t1", 1.0), ("t2", 2.5), ("t3", 3.0)):
        clip(root / "TAU" / f"{name}.wav", (seconds, 0.1))
    (root / "TAU" / "t5.wav").write_bytes(b"not a wav file")
    no_answer = {k: v for k, v in tau_item("t6", "t1.wav").items() if k != "answer_gt"}
    items = [tau_item(n, f"{n}.wav") for n in ("t1", "t2", "t3", "t4", "t5")] + [no_answer]
    (root / "TAU" / "acoustic_scene_task_meta.json").write_text(json.dumps(items))
    clip(root / "HAD" / "real" / "r1.wav", (12.0, 0.1), sr=100)
    clip(root / "HAD" / "fake" / "f1.wav", (700.0, 0.1), sr=100)  # 100 Hz keeps an 11-minute file small

    analysis = analyse_durations(root, ["TAU", "HAD", "GTZAN"])
    tau = analysis["tasks"]["TAU"]
    assert tau["durations"] == {"t1": 1.0, "t2": 2.5, "t3": 3.0}
    assert tau["statistics"] == pytest.approx({
        "count": 3, "mean": 6.5 / 3, "median": 2.5, "min": 1.0, "max": 3.0, "total": 6.5,
        "std": math.sqrt(((1 - 6.5 / 3) ** 2 + (2.5 - 6.5 / 3) ** 2 + (3 - 6.5 / 3) ** 2) / 3),
        "p25": 1.75, "p75": 2.75, "p90": 2.9, "p95": 2.95, "p99": 2.99})
    assert {k: v for k, v in tau["buckets"].items() if v} == {"0-2 s": 1, "2-5 s": 2}
    assert list(tau["buckets"])[-1] == "600+ s" and len(tau["buckets"]) == 16
    assert [(u["sample_id"], u["error"].split(":")[0]) for u in tau["unusable"]] == [
        ("t4", "audio file not found"), ("t5", f"cannot decode {root / 'TAU' / 't5.wav'} (not a valid audio file)"),
        ("t6", "TAU item 5 of acoustic_scene_task_meta.json")]
    assert {k: v for k, v in analysis["tasks"]["HAD"]["buckets"].items() if v} == {"10-15 s": 1, "600+ s": 1}
    gtzan = analysis["tasks"]["GTZAN"]
    assert gtzan["statistics"]["count"] == 0 and gtzan["unusable"][0]["sample_id"] is None
    assert "GTZAN: no folder under data root" in gtzan["unusable"][0]["error"]
    assert analysis["all"]["statistics"]["count"] == 5 and analysis["all"]["statistics"]["total"] == 718.5

    out = tmp_path / "analysis"
    assert main(["durations", str(root), "--tasks", "TAU,HAD,GTZAN", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "unusable TAU t4: audio file not found" in printed and "unusable GTZAN (whole task)" in printed
    assert printed.splitlines()[2].split()[:6] == ["TAU", "3", "2.2", "2.5", "1.0", "3.0"]
    assert json.loads((out / "durations.json").read_text())["tasks"]["TAU"]["durations"] == tau["durations"]
    image = imread(out / "durations_histogram.png")
    assert image.shape[0] > 300 and image.shape[1] > 600 and not np.all(image == image[0, 0])
    assert main(["durations", str(root), "--tasks", "TAUU"]) == 2  # unknown task: usage error, nothing read


def test_packing_plans() -> None:
    assert plan_greedy([2, 2, 2, 2, 2], max_seconds=5, min_seconds=3) == [[0, 1], [2, 3]]  # 2 s remainder dropped
    assert plan_greedy([2, 6, 2, 1, 2.5], max_seconds=5, min_seconds=3) == [[2, 3]]  # 6 > max; [0] < min
    assert plan_target([1.5, 1.5, 1.5, 1.5, 1.5], 2.0) == [[0, 1], [2, 3]]


@pytest.fixture
def tau_source(tmp_path: Path) -> tuple[Path, Path]:
    audio = tmp_path / "tau-src"
    rows = [("audio/metro_station-lisbon-1-a.wav", "metro_station", "lisbon-1", 2.0, 0.1),
            ("audio/metro_station-lisbon-1-c.wav", "metro_station", "lisbon-1", 2.0, 0.3),  # out of order on purpose
            ("audio/metro_station-lisbon-1-b.wav", "metro_station", "lisbon-1", 2.0, 0.2),
            ("audio/metro_station-lisbon-1-d.wav", "metro_station", "lisbon-1", 2.0, 0.4),
            ("audio/street_traffic-1.wav", "street_traffic", "paris:7", 2.0, 0.5),
            ("audio/street_traffic-2.wav", "street_traffic", "paris:7", 2.0, 0.6),
            ("audio/street_traffic-3.wav", "street_traffic", "paris:7", 2.0, 0.7),
            ("audio/park-long.wav", "park", "vienna-2", 6.0, 0.8),
            ("audio/metro-m1.wav", "metro", "helsinki-3", 1.5, 0.15),
            ("audio/metro-m2.wav", "metro", "helsinki-3", 1.5, 0.25),
            ("audio/beach.wav", "beach", "x", 2.0, 0.9)]
    lines = ["filename\tscene_label\tidentifier\tsource_label"]
    for name, scene, identifier, seconds, value in rows:
        clip(audio / name, (seconds, value))
        lines.append(f"{name}\t{scene}\t{identifier}\ta")
    lines.append("audio/metro-m3.wav\tmetro\thelsinki-3\ta")  # listed in the meta, file absent
    (audio / "meta.csv").write_text("\n".join(lines) + "\n")
    return audio / "meta.csv", audio


def test_segment_tau(tmp_path: Path, tau_source: tuple[Path, Path]) -> None:
    meta, audio = tau_source
    out = tmp_path / "out"
    result = segment_tau(meta, audio, out, max_seconds=5, min_seconds=3, sample_rate=SR)
    expected = [  # (path, scene_label, source clips, seconds)
        ("concatenated_audio/metro/metro_helsinki-3_segment_1.wav", "metro",
         ["audio/metro-m1.wav", "audio/metro-m2.wav"], 3.0),
        ("concatenated_audio/metro_station/metro_station_lisbon-1_segment_1.wav", "metro_station",
         ["audio/metro_station-lisbon-1-a.wav", "audio/metro_station-lisbon-1-b.wav"], 4.0),
        ("concatenated_audio/metro_station/metro_station_lisbon-1_segment_2.wav", "metro_station",
         ["audio/metro_station-lisbon-1-c.wav", "audio/metro_station-lisbon-1-d.wav"], 4.0),
        ("concatenated_audio/street_traffic/street_traffic_paris__7_segment_1.wav", "street_traffic",
         ["audio/street_traffic-1.wav", "audio/street_traffic-2.wav"], 4.0),  # no ':' in the file name
    ]
    manifest = json.loads((out / "TAU" / "acoustic_scene_task_meta.json").read_text())
    assert [(i["path"], i["scene_label"], i["source_clips"], i["duration_seconds"]) for i in manifest] == expected
    assert [i["uniq_id"] for i in manifest] == ["tau_00000", "tau_00001", "tau_00002", "tau_00003"]
    assert same_audio(out / "TAU" / expected[1][0], (2.0, 0.1), (2.0, 0.2))
    assert same_audio(out / "TAU" / expected[0][0], (1.5, 0.15), (1.5, 0.25))
    assert sorted(s["reason"].split(" (")[0].split(":")[0] for s in result.skipped) == [
        "1 clip(s) not in a segment", "1 clip(s) not in a segment", "audio file not found",
        "unknown scene label 'beach'"]

    samples = TASKS.get("TAU").samples(out)
    assert [s.target for s in samples] == [  # labels from the meta: metro_station is never "metro"
        "Traveling by an underground metro - metro", "Metro station - metro_station",
        "Metro station - metro_station", "Street with medium level of traffic - street_traffic"]
    for sample in samples:
        assert sample.error is None and sample.audio_path.is_file()
        assert len(set(sample.choices)) == 4 and sample.target_letter in "ABCD"

    again = segment_tau(meta, audio, tmp_path / "again", max_seconds=5, min_seconds=3, sample_rate=SR)
    assert again.items == result.items  # deterministic under the same --seed
    other = segment_tau(meta, audio, tmp_path / "other", max_seconds=5, min_seconds=3, sample_rate=SR, seed=1)
    assert [i["choice_a"] for i in other.items] != [i["choice_a"] for i in result.items]
    with pytest.raises(DataError, match="not empty"):
        segment_tau(meta, audio, out, sample_rate=SR)  # stale segments would mix into the new ones


def test_segment_gtzan_and_voxceleb(tmp_path: Path) -> None:
    genres = tmp_path / "genres"
    for i, value in enumerate((0.1, 0.2, 0.3, 0.4, 0.5)):
        clip(genres / "blues" / f"blues.{i:05d}.wav", (1.5, value))
    clip(genres / "rock" / "rock.00000.wav", (1.0, 0.6))
    clip(genres / "rock" / "rock.00001.wav", (1.0, 0.7))
    (genres / "rock" / "rock.00002.wav").write_bytes(b"RIFF broken")
    (genres / "notagenre").mkdir()
    out = tmp_path / "out"
    result = segment_gtzan(genres, out, target_seconds=2.0, sample_rate=SR)
    assert [(i["path"], i["genre_label"], i["source_clips"], i["duration_seconds"]) for i in result.items] == [
        ("blues/blues_segment_1.wav", "blues", ["blues/blues.00000.wav", "blues/blues.00001.wav"], 2.0),
        ("blues/blues_segment_2.wav", "blues", ["blues/blues.00002.wav", "blues/blues.00003.wav"], 2.0),
        ("rock/rock_segment_1.wav", "rock", ["rock/rock.00000.wav", "rock/rock.00001.wav"], 2.0)]
    assert same_audio(out / "GTZAN" / "wav" / "blues" / "blues_segment_1.wav", (1.5, 0.1), (0.5, 0.2))  # cut to 2 s
    assert sorted(Path(s["source"]).name for s in result.skipped) == ["blues.00004.wav", "notagenre",
                                                                       "rock.00002.wav"]
    gtzan = TASKS.get("GTZAN").samples(out)
    assert [s.target for s in gtzan] == ["Blues - blues", "Blues - blues", "Rock - rock"]
    assert all(s.error is None and s.audio_path.is_file() and len(set(s.choices)) == 4 for s in gtzan)

    speakers = tmp_path / "vox"
    clip(speakers / "id00001" / "vidA" / "00001.wav", (1.0, 0.1))
    clip(speakers / "id00001" / "vidA" / "00002.wav", (1.0, 0.2))
    clip(speakers / "id00001" / "vidB" / "00001.wav", (1.0, 0.3))
    clip(speakers / "id00002" / "v" / "00001.wav", (1.2, 0.4))
    clip(speakers / "id00002" / "v" / "00002.wav", (1.2, 0.5))
    clip(speakers / "id00003" / "v" / "00001.wav", (3.0, 0.6))
    meta = tmp_path / "vox2_meta.csv"  # VoxCeleb2's own spelling: padded headers and values
    meta.write_text("VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \nid00001 ,n000001 ,m ,test \nid00002 ,n000002 ,f ,dev \n")
    vox = segment_voxceleb(speakers, meta, out, target_seconds=2.0, sample_rate=SR)
    assert [(i["path"], i["answer_gt"], i["source_clips"], i["duration_seconds"]) for i in vox.items] == [
        ("id00001/id00001_segment_1.wav", "Male", ["id00001/vidA/00001.wav", "id00001/vidA/00002.wav"], 2.0),
        ("id00002/id00002_segment_1.wav", "Female", ["id00002/v/00001.wav", "id00002/v/00002.wav"], 2.0)]
    assert same_audio(out / "VoxCeleb" / "wav" / "id00002" / "id00002_segment_1.wav", (1.2, 0.4), (0.8, 0.5))
    assert sorted(Path(s["source"]).name for s in vox.skipped) == ["00001.wav", "id00003"]  # leftover, no gender
    gender = TASKS.get("VoxGender").samples(out)
    assert [(s.target, s.audio_path.is_file(), s.error) for s in gender] == [("Male", True, None),
                                                                             ("Female", True, None)]
    durations = analyse_durations(out, ["GTZAN", "VoxGender"])["tasks"]
    assert [durations[t]["statistics"]["total"] for t in ("GTZAN", "VoxGender")] == [6.0, 4.0]


def test_segment_had(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audio = tmp_path / "had-src"
    clip(audio / "a.wav", (1.0, 0.1), (1.0, 0.2))
    clip(audio / "b.wav", (1.0, 0.3), (0.5, 0.35))
    clip(audio / "c.wav", (1.0, 0.4), (1.0, 0.5))
    clip(audio / "d.wav", (0.5, 0.6), (0.5, 0.7))
    labels = tmp_path / "HAD_train_label.txt"
    labels.write_text("a 0.00-1.00-T/1.00-2.00-T 1\nb 0.00-1.50-T 1\nc 0.00-1.00-T/1.00-2.00-F 0\n"
                      "d 0.00-0.50-T/0.50-1.00-F 0\nnot a label line at all\n")
    out = tmp_path / "out"
    assert main(["segment", "had", "--labels", str(labels), "--audio-root", str(audio), "--out", str(out),
                 "--min-seconds", "2", "--max-seconds", "3", "--sample-rate", str(SR)]) == 0
    assert "wrote 3 segments" in capsys.readouterr().out
    task = json.loads((out / "HAD" / "had_audio_classification_task.json").read_text())["samples"]
    # seeded shuffles (seed 0): real a1-2, a0-1 | b0-1.5; fake c1-2, c0-1, d.5-1, d0-.5 (3.0 s, not cut)
    assert [(s["path"], [(x["file"], x["start"], x["tag"], x["at"]) for x in s["sources"]], s["duration_seconds"])
            for s in task] == [
        ("real/HAD_train_real_0.wav", [("a", 1.0, "T", 0.0), ("a", 0.0, "T", 1.0)], 2.0),
        ("real/HAD_train_real_1.wav", [("b", 0.0, "T", 0.0)], 2.0),
        ("fake/HAD_train_fake_0.wav", [("c", 1.0, "F", 0.0), ("c", 0.0, "T", 1.0), ("d", 0.5, "F", 2.0),
                                       ("d", 0.0, "T", 2.5)], 3.0)]
    assert same_audio(out / "HAD" / "real" / "HAD_train_real_0.wav", (1.0, 0.2), (1.0, 0.1))
    # 1.5 s pack padded to the 2 s minimum by repeating its own beginning
    assert same_audio(out / "HAD" / "real" / "HAD_train_real_1.wav", (1.0, 0.3), (0.5, 0.35), (0.5, 0.3))
    assert same_audio(out / "HAD" / "fake" / "HAD_train_fake_0.wav", (1.0, 0.5), (1.0, 0.4), (0.5, 0.7), (0.5, 0.6))
    had = TASKS.get("HAD").samples(out, protocol="scripts")
    assert sorted((s.target, s.audio_path.name) for s in had) == [("fake", "HAD_train_fake_0.wav"),
                                                                  ("real", "HAD_train_real_0.wav")]  # balanced 1:1
    assert len(TASKS.get("HAD").samples(out)) == 3  # the full protocol: every segment

    clip(audio / "y.wav", (1.25, 0.1), (1.25, 0.2))
    clip(audio / "z.wav", (1.0, 0.3))
    labels.write_text("y 0.00-2.50-T 1\nz 0.00-1.00-T 0\n")  # z is labelled fake but has no F span
    guard = segment_had(labels, audio, tmp_path / "guard", min_seconds=1, max_seconds=2, sample_rate=SR)
    assert [i["path"] for i in guard.items] == ["real/HAD_train_real_0.wav"]
    assert same_audio(tmp_path / "guard" / "HAD" / "real" / "HAD_train_real_0.wav", (1.25, 0.1), (0.75, 0.2))
    assert guard.skipped == [{"source": "fake pack of ['z']", "reason": "holds no F span: would be mislabelled"}]
