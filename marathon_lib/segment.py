"""`marathon segment`: build long-form tasks from short clips (TAU, HAD, GTZAN, VoxCeleb) in the JSON formats
the task loaders read, as the original Segment tools did (docs/seed.md, "Data tools").

Fixed against the original tools: labels come from the metadata, never from a truncated directory name (they
filed metro_station segments as "metro"); every shuffle and distractor draw is seeded; names taken from the
data pass through `results.safe_name` (no ':' in file names); unreadable clips are listed, not fatal.
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .audio import load_audio
from .durations import clip_seconds
from .errors import DataError
from .results import safe_name, write_json
from .tasks.labels import GTZAN_GENRES, TAU_SCENES, label_code

# --------------------------------------------------------------------------- shared


@dataclass
class SegmentResult:
    """What one `segment` run wrote (manifest items, in order) and what it left out, with reasons."""

    task_dir: Path
    items: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, source: object, reason: str) -> None:
        self.skipped.append({"source": str(source), "reason": reason})


@dataclass(frozen=True)
class Clip:
    path: Path
    seconds: float


def _fresh_dir(path: Path) -> Path:
    # Stale files of an earlier run would be picked up by the loaders (HAD globs real/*.wav): refuse them.
    if path.exists() and any(path.iterdir()):
        raise DataError(f"{path} exists and is not empty: choose an empty --out")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clips(paths: Iterable[Path], result: SegmentResult) -> list[Clip]:
    clips = []
    for path in paths:
        try:
            clips.append(Clip(path, clip_seconds(path)))
        except DataError as err:
            result.skip(path, str(err))
    return clips


def _concat(clips: Sequence[Clip], sample_rate: int, result: SegmentResult) -> np.ndarray | None:
    """Decoded, mono, resampled clips end to end; None (listed) when one fails to decode."""
    parts = []
    for clip in clips:
        try:
            parts.append(load_audio(clip.path, sample_rate).samples)
        except DataError as err:
            result.skip(clip.path, f"{err}; its segment was dropped")
            return None
    return np.concatenate(parts)


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> float:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sample_rate, subtype="PCM_16")
    return round(len(audio) / sample_rate, 6)


def _four_choices(correct: str, pool: Sequence[str], rng: random.Random) -> tuple[dict[str, str], str]:
    """The correct option and 3 distractors from the pool, shuffled; returns choice_a..d and the answer letter."""
    options = [correct, *rng.sample([p for p in pool if p != correct], 3)]
    rng.shuffle(options)
    return {f"choice_{letter}": text for letter, text in zip("abcd", options)}, "ABCD"[options.index(correct)]


def _item_rng(seed: int, key: str) -> random.Random:
    # one generator per item (str seeds hash with sha512, stable across processes): adding or removing
    # one segment does not change the choices of the others
    return random.Random(f"{seed}:{key}")


def plan_greedy(durations: Sequence[float], max_seconds: float, min_seconds: float) -> list[list[int]]:
    """The seed's TAU packing: append while the total stays ≤ max; a segment that cannot grow is kept
    when ≥ min, else dropped; so is a short final remainder. A clip longer than max on its own is left out
    (the seed exported it as an over-long segment); it still ends the segment before it, so a segment only
    ever joins neighbouring clips."""
    segments, current, total = [], [], 0.0
    for index, seconds in enumerate(durations):
        if total + seconds > max_seconds:
            if total >= min_seconds:
                segments.append(current)
            current, total = [], 0.0
        if seconds > max_seconds:
            continue
        current.append(index)
        total += seconds
    if current and total >= min_seconds:
        segments.append(current)
    return segments


def plan_target(durations: Sequence[float], target_seconds: float) -> list[list[int]]:
    """Consecutive clips until the total reaches the target (the segment is then cut to the target);
    a remainder that never reaches it is dropped."""
    segments, current, total = [], [], 0.0
    for index, seconds in enumerate(durations):
        current.append(index)
        total += seconds
        if total >= target_seconds:
            segments.append(current)
            current, total = [], 0.0
    return segments


def _write_target_segments(groups: dict[str, list[Clip]], audio_root: Path, out_dir: Path, target_seconds: float,
                           sample_rate: int, result: SegmentResult, relpath: Callable[[str, int], str],
                           item: Callable[[str, str, int], dict[str, Any]]) -> None:
    """GTZAN and VoxCeleb: per class (genre, speaker), consecutive clips cut to exactly the target length."""
    target = round(target_seconds * sample_rate)
    for key in sorted(groups):
        clips = groups[key]
        plan = plan_target([c.seconds for c in clips], target_seconds)
        used = {i for segment in plan for i in segment}
        for i, clip in enumerate(clips):
            if i not in used:
                result.skip(clip.path, f"left over: the remaining clips of {key!r} are shorter than the target")
        for number, segment in enumerate(plan, 1):
            members = [clips[i] for i in segment]
            audio = _concat(members, sample_rate, result)
            if audio is None:
                continue
            rel = relpath(key, number)
            seconds = _write_wav(out_dir / rel, audio[:target], sample_rate)
            sources = [c.path.relative_to(audio_root).as_posix() for c in members]
            result.items.append(item(key, rel, len(result.items)) | {"duration_seconds": seconds,
                                                                     "source_clips": sources})


# --------------------------------------------------------------------------- segment: TAU

TAU_HEADER = ["filename", "scene_label", "identifier", "source_label"]
TAU_QUESTION = "What type of acoustic scene is represented in this audio segment?"


def read_tau_meta(meta_csv: Path, result: SegmentResult) -> dict[tuple[str, str], list[str]]:
    """TAU2020-mobile meta.csv (tab-separated filename, scene_label, identifier, source_label) ->
    {(scene_label, identifier): sorted filenames}; rows with an unknown scene or missing fields are listed."""
    known = {label_code(option) for option in TAU_SCENES}
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    with open(meta_csv, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), 1):
            if [c.strip() for c in row] == TAU_HEADER or not any(c.strip() for c in row):
                continue
            if len(row) < 3:
                result.skip(f"{meta_csv}:{number}", f"expected {len(TAU_HEADER)} tab-separated fields, got {row}")
                continue
            filename, scene, identifier = (c.strip() for c in row[:3])
            if scene not in known:
                result.skip(f"{meta_csv}:{number}", f"unknown scene label {scene!r}")
                continue
            groups[(scene, identifier)].append(filename)
    return {key: sorted(files) for key, files in sorted(groups.items())}


def segment_tau(meta_csv: Path, audio_root: Path, out_root: Path, *, max_seconds: float = 210.0,
                min_seconds: float = 90.0, seed: int = 0, sample_rate: int = 16000) -> SegmentResult:
    """Concatenate each scene+recording group greedily to ≤ max_seconds, keep segments ≥ min_seconds, write
    TAU/concatenated_audio/<scene>/<scene>_<identifier>_segment_<n>.wav and acoustic_scene_task_meta.json."""
    result = SegmentResult(_fresh_dir(out_root / "TAU"))
    options = {label_code(option): option for option in TAU_SCENES}
    for (scene, identifier), files in read_tau_meta(meta_csv, result).items():
        clips = _clips((audio_root / f for f in files), result)
        plan = plan_greedy([c.seconds for c in clips], max_seconds, min_seconds)
        if sum(map(len, plan)) < len(clips):
            result.skip(f"{scene}/{identifier}", f"{len(clips) - sum(map(len, plan))} clip(s) not in a segment "
                        f"(remainder < {min_seconds:g} s or a clip > {max_seconds:g} s)")
        for number, segment in enumerate(plan, 1):
            members = [clips[i] for i in segment]
            audio = _concat(members, sample_rate, result)
            if audio is None:
                continue
            rel = f"concatenated_audio/{scene}/{safe_name(f'{scene}_{identifier}_segment_{number}')}.wav"
            seconds = _write_wav(result.task_dir / rel, audio, sample_rate)
            choices, answer = _four_choices(options[scene], TAU_SCENES, _item_rng(seed, rel))
            result.items.append({
                "path": rel, "question": TAU_QUESTION, **choices, "answer_gt": answer,
                "task_name": "acoustic_scene_classification", "dataset_name": "TAU-urban-acoustic-scenes-2020-mobile",
                "scene_label": scene, "identifier": identifier, "uniq_id": f"tau_{len(result.items):05d}",
                "duration_seconds": seconds,
                "source_clips": [c.path.relative_to(audio_root).as_posix() for c in members],
            })
    write_json(result.task_dir / "acoustic_scene_task_meta.json", result.items)
    return result


# --------------------------------------------------------------------------- segment: GTZAN

GTZAN_QUESTION = "What music genre is represented in this audio segment?"


def segment_gtzan(audio_root: Path, out_root: Path, *, target_seconds: float = 120.0, seed: int = 0,
                  sample_rate: int = 16000) -> SegmentResult:
    """GTZAN layout <audio_root>/<genre>/*.wav: same-genre clips in name order, concatenated and cut to
    target_seconds; writes GTZAN/wav/<genre>/<genre>_segment_<n>.wav and music_genre_classification_meta.json."""
    result = SegmentResult(_fresh_dir(out_root / "GTZAN"))
    options = {label_code(option): option for option in GTZAN_GENRES}
    groups = {}
    for folder in sorted(p for p in audio_root.iterdir() if p.is_dir()):
        if folder.name not in options:
            result.skip(folder, f"not a GTZAN genre folder (known: {', '.join(options)})")
            continue
        groups[folder.name] = _clips(sorted(folder.glob("*.wav")), result)

    def relpath(genre: str, number: int) -> str:
        return f"{genre}/{genre}_segment_{number}.wav"

    def item(genre: str, rel: str, index: int) -> dict[str, Any]:
        choices, answer = _four_choices(options[genre], GTZAN_GENRES, _item_rng(seed, rel))
        return {"path": rel, "question": GTZAN_QUESTION, **choices, "answer_gt": answer, "genre_label": genre,
                "uniq_id": f"gtzan_{index:05d}"}

    # audio under GTZAN/wav/ (the Qwen scripts' root; the loader also accepts it)
    _write_target_segments(groups, audio_root, result.task_dir / "wav", target_seconds, sample_rate, result,
                           relpath, item)
    write_json(result.task_dir / "music_genre_classification_meta.json", result.items)
    return result


# --------------------------------------------------------------------------- segment: VoxCeleb gender

VOX_GENDER_QUESTION = "What is the gender of the speaker in this audio segment?"
GENDERS = {"m": "Male", "f": "Female"}


def read_vox_meta(meta_csv: Path) -> dict[str, str]:
    """VoxCeleb meta CSV -> {speaker id: Male|Female}: delimiter sniffed, ID and Gender columns found by name
    (the first header containing "id", e.g. "VoxCeleb1 ID"; the one named "gender"), 'm'/'f' values."""
    lines = meta_csv.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise DataError(f"{meta_csv} is empty: expected a header with ID and Gender columns")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",\t;|")
    except csv.Error as err:
        raise DataError(f"{meta_csv}: cannot tell the delimiter of {lines[0]!r}: {err}") from err
    rows = list(csv.reader(lines, dialect))
    header = [h.strip().lower() for h in rows[0]]
    id_col = next((i for i, h in enumerate(header) if re.search(r"\bid\b", h)), None)
    gender_col = next((i for i, h in enumerate(header) if h == "gender"), None)
    if id_col is None or gender_col is None:
        raise DataError(f"{meta_csv}: needs an ID and a Gender column, found {rows[0]}")
    genders = {}
    for row in rows[1:]:
        if len(row) > max(id_col, gender_col) and row[gender_col].strip().lower() in GENDERS:
            genders[row[id_col].strip()] = GENDERS[row[gender_col].strip().lower()]
    return genders


def segment_voxceleb(audio_root: Path, meta_csv: Path, out_root: Path, *, target_seconds: float = 120.0,
                     sample_rate: int = 16000) -> SegmentResult:
    """VoxCeleb layout <audio_root>/<id>/**/*.wav: same-speaker clips in path order, concatenated and cut to
    target_seconds; writes VoxCeleb/wav/<id>/<id>_segment_<n>.wav and gender_id_task_meta.json."""
    result = SegmentResult(_fresh_dir(out_root / "VoxCeleb"))
    genders = read_vox_meta(meta_csv)
    groups = {}
    for folder in sorted(p for p in audio_root.iterdir() if p.is_dir()):
        if folder.name not in genders:
            result.skip(folder, f"speaker {folder.name!r} has no m/f gender in {meta_csv.name}")
            continue
        groups[folder.name] = _clips(sorted(folder.rglob("*.wav")), result)

    def relpath(speaker: str, number: int) -> str:
        name = safe_name(speaker)
        return f"{name}/{name}_segment_{number}.wav"

    def item(speaker: str, rel: str, index: int) -> dict[str, Any]:
        return {"path": rel, "question": VOX_GENDER_QUESTION, "choice_a": "Male", "choice_b": "Female",
                "answer_gt": genders[speaker], "speaker_id_original": speaker, "uniq_id": f"vox_gender_{index:05d}"}

    _write_target_segments(groups, audio_root, result.task_dir / "wav", target_seconds, sample_rate, result,
                           relpath, item)
    write_json(result.task_dir / "gender_id_task_meta.json", result.items)
    return result


# --------------------------------------------------------------------------- segment: HAD

HAD_QUESTION = ("Is this audio completely authentic (real) or does it contain any artificially synthesized "
                "segments (fake)?")


@dataclass(frozen=True)
class Cut:
    """One labelled span of a HAD source file: tag T (true) or F (fake)."""

    name: str
    start: float
    end: float
    tag: str

    @property
    def seconds(self) -> float:
        return self.end - self.start


def read_had_labels(labels: Path, result: SegmentResult) -> dict[str, list[Cut]]:
    """HAD label file lines `name start-end-T/start-end-F/... label` -> {"real"|"fake": cuts}. A file goes
    to the fake pool when its label is 0 (it has a fake span); all its spans, T and F, go with it."""
    pools: dict[str, list[Cut]] = {"real": [], "fake": []}
    for number, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            name, spans, label = fields
            cuts = [Cut(name, float(start), float(end), tag)
                    for start, end, tag in (span.split("-") for span in spans.split("/"))]
        except ValueError:
            result.skip(f"{labels}:{number}", f"expected 'name start-end-T/start-end-F... label', got {line!r}")
            continue
        pools["fake" if label == "0" else "real"] += [c for c in cuts if c.seconds > 0]
    return pools


def plan_had(durations: Sequence[float], min_seconds: float, max_seconds: float) -> list[list[int]]:
    """The seed's HAD packing: add segments until the next one would pass max while the pack is already
    ≥ min; the last pack takes the remainder (it is padded later when short)."""
    packs, current, total = [], [], 0.0
    for index, seconds in enumerate(durations):
        if current and total + seconds > max_seconds and total >= min_seconds:
            packs.append(current)
            current, total = [], 0.0
        current.append(index)
        total += seconds
    if current:
        packs.append(current)
    return packs


def segment_had(labels: Path, audio_root: Path, out_root: Path, *, min_seconds: float = 180.0,
                max_seconds: float = 300.0, seed: int = 0, sample_rate: int = 16000) -> SegmentResult:
    """Cut every labelled span, shuffle each pool (seeded), pack to min..max seconds (truncated to max; a
    short pack is padded by repeating its own beginning), write HAD/real/ and HAD/fake/ and the seed's
    had_audio_classification_task.json with each pack's sources. A fake pack whose kept audio holds no F
    span would be mislabelled, so it is dropped and listed."""
    result = SegmentResult(_fresh_dir(out_root / "HAD"))
    lo, hi = round(min_seconds * sample_rate), round(max_seconds * sample_rate)
    for category, cuts in read_had_labels(labels, result).items():
        cuts = sorted(cuts, key=lambda c: (c.name, c.start))  # independent of the label file's line order
        random.Random(f"{seed}:HAD:{category}").shuffle(cuts)
        for pack in plan_had([c.seconds for c in cuts], min_seconds, max_seconds):
            pieces, sources, offset = [], [], 0
            for cut in (cuts[i] for i in pack):
                piece = _had_piece(cut, audio_root, sample_rate, result)
                if piece is None or offset >= hi:  # a span past the truncation point is not in the pack
                    continue
                pieces.append(piece)
                sources.append({"file": cut.name, "start": cut.start, "end": cut.end, "tag": cut.tag,
                                "at": round(offset / sample_rate, 6)})
                offset += len(piece)
            if category == "fake" and not any(s["tag"] == "F" for s in sources):
                result.skip(f"fake pack of {[s['file'] for s in sources]}", "holds no F span: would be mislabelled")
                continue
            if not pieces:
                continue
            audio = np.concatenate(pieces)[:hi]
            if len(audio) < lo:
                audio = np.resize(audio, lo)  # repeats the pack's own beginning, as the seed pads
            number = sum(item["category"] == category for item in result.items)
            rel = f"{category}/HAD_train_{category}_{number}.wav"
            result.items.append({
                "path": rel, "question": HAD_QUESTION, "choice_a": "Real", "choice_b": "Fake",
                "answer_gt": "A" if category == "real" else "B", "category": category,
                "uniq_id": f"had_{category}_{number:05d}",
                "duration_seconds": _write_wav(result.task_dir / rel, audio, sample_rate), "sources": sources,
            })
    write_json(result.task_dir / "had_audio_classification_task.json",
               {"metadata": {"task": "HAD audio authenticity", "min_seconds": min_seconds,
                             "max_seconds": max_seconds, "seed": seed, "sample_rate": sample_rate},
                "samples": result.items})
    return result


def _had_piece(cut: Cut, audio_root: Path, sample_rate: int, result: SegmentResult) -> np.ndarray | None:
    # decoded per span, not cached: a real HAD pool is far larger than memory, and its files are seconds long
    try:
        audio = load_audio(audio_root / f"{cut.name}.wav", sample_rate).samples
    except DataError as err:
        result.skip(f"{cut.name} {cut.start:g}-{cut.end:g}", str(err))
        return None
    return audio[round(cut.start * sample_rate):round(cut.end * sample_rate)]
