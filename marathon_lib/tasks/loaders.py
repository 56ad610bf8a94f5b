"""Readers for the seed's on-disk formats (docs/seed.md, "Tasks and their files").

A missing or malformed manifest raises DataError naming the file. A single bad item becomes a
Sample with `error` set, so it is recorded (status `error`) and the rest of the case goes on.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from ..errors import DataError
from .base import Sample

UPPER = ("A", "B", "C", "D", "E")


def read_manifest(path: Path, what: str) -> Any:
    """Parse a JSON manifest; every failure names the file and the expected format."""
    if not path.is_file():
        raise DataError(f"{what} manifest not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{what} manifest {path} is not valid JSON: {err}") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{what} manifest {path} is not UTF-8 text: {err}") from err


def resolve_audio(root: Path, relative: str, audio_dirs: Sequence[str]) -> Path:
    """The audio file of a manifest entry: the first existing root/<dir>/<relative>, else the first candidate
    (reported later as missing). `root` is the task's folder, wherever it was found.

    The entry must stay inside that folder, taken lexically: an absolute path, or `..` that climbs out of it,
    raises DataError naming the entry, before anything outside is opened (so no manifest can have `/etc/passwd`
    hashed into a record, or another task's clip scored). Symlinks inside are followed as they are: a Hugging
    Face cache snapshot is a tree of symlinks into its blob store."""
    if not relative.strip():
        raise DataError("audio path is empty")
    if PurePath(relative).is_absolute():
        raise DataError(f"audio path {relative!r} is absolute: it must be relative to the task folder {root}")
    candidates = []
    for audio_dir in audio_dirs:
        inside = posixpath.normpath(posixpath.join(audio_dir, relative))
        if not (inside == ".." or inside.startswith("../")):
            candidates.append(root / inside)
    if not candidates:
        raise DataError(f"audio path {relative!r} leaves the task folder {root}")
    return next((c for c in candidates if c.is_file()), candidates[0])


def read_text(path: Path, what: str) -> str:
    """A text file the loaders read; not UTF-8 -> DataError naming the file and the offending byte."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{what} {path} is not UTF-8 text ({err.reason} at byte {err.start})") from err


def unicode_problem(item: Any) -> str | None:
    """Why the strings of a manifest item cannot be written as UTF-8 (a lone surrogate from a \\udXXX escape
    would break the prompt and the record), or None."""
    try:
        json.dumps(item, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        return f"text is not valid Unicode ({err.reason}: {err.object[err.start:err.end]!r})"
    return None


def name_problem(path: Path) -> str | None:
    """Why a file name found on disk cannot go into a record (bytes that are not UTF-8, which Python keeps as
    surrogate escapes), or None."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        return f"file name {printable(path.name)!r} in {path.parent} is not UTF-8"
    return None


def printable(name: str) -> str:
    """A file name with undecodable bytes shown as U+FFFD (for ids and messages)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _choices_of(item: Mapping[str, Any], layout: str, n_choices: int) -> list[str]:
    if layout == "options":  # RACE: "options": [..]
        options = item["options"]
        if not isinstance(options, list):
            raise ValueError("'options' is not a list")
        return [str(o) for o in options]
    if layout == "choices_dict":  # DESED: "choices": {"A": .., ...}
        choices = item["choices"]
        if not isinstance(choices, Mapping):
            raise ValueError("'choices' is not an object")
        return [str(choices[letter]) for letter in UPPER[:n_choices]]
    return [str(item[f"choice_{letter.lower()}"]) for letter in UPPER[:n_choices]]  # choice_a..


def _answer_index(answer: object, choices: list[str], letters: Sequence[str]) -> int:
    """answer_gt may be a letter or the option text (VoxCeleb stores text); match case-insensitively."""
    text = str(answer).strip()
    lowered = [c.strip().lower() for c in choices]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    upper_letters = [letter.upper() for letter in letters]
    if text.upper().rstrip(".)") in upper_letters:
        return upper_letters.index(text.upper().rstrip(".)"))
    raise ValueError(f"answer {answer!r} is not among the choices {dict(zip(letters, choices))}")


def load_choice_manifest(
    root: Path,
    *,
    manifest: str,
    what: str,
    layout: str = "choice_keys",
    n_choices: int = 4,
    letters: Sequence[str] = UPPER[:4],
    answer_key: str = "answer_gt",
    path_key: str = "path",
    id_keys: Sequence[str] = ("uniq_id",),
    audio_dirs: Sequence[str] = ("",),
    items_key: str | None = None,
    meta_keys: Sequence[str] = (),
) -> list[Sample]:
    """Generic reader for the seed's multiple-choice JSON manifests."""
    manifest_path = root / manifest
    data = read_manifest(manifest_path, what)
    if items_key is not None:
        if not isinstance(data, Mapping) or not isinstance(data.get(items_key), list):
            raise DataError(f"{what} manifest {manifest_path} must be an object with a list under {items_key!r}")
        data = data[items_key]
    if not isinstance(data, list):
        raise DataError(f"{what} manifest {manifest_path} must be a JSON list of items, got {type(data).__name__}")
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        where = f"{what} item {index} of {manifest_path.name}"
        if not isinstance(item, Mapping):
            samples.append(_broken(f"{what}-{index}", root, f"{where}: not a JSON object"))
            continue
        sample_id = _unique_id(_item_id(item, id_keys, path_key, index), seen)
        problem = unicode_problem(item)
        if problem is not None:
            samples.append(_broken(sample_id.encode("utf-8", "replace").decode(), root, f"{where}: {problem}"))
            continue
        try:
            relative = str(item[path_key])
            choices = _choices_of(item, layout, n_choices)
            answer = _answer_index(item[answer_key], choices, letters)
            audio_path = resolve_audio(root, relative, audio_dirs)
        except KeyError as err:
            samples.append(_broken(sample_id, root, f"{where}: missing key {err}"))
            continue
        except (ValueError, DataError) as err:
            samples.append(_broken(sample_id, root, f"{where}: {err}"))
            continue
        if len(set(c.strip().lower() for c in choices)) != len(choices):
            samples.append(_broken(sample_id, root, f"{where}: duplicate choices {choices}"))
            continue
        meta = {key: item[key] for key in meta_keys if key in item}
        samples.append(
            Sample(
                sample_id=sample_id,
                audio_path=audio_path,
                target=choices[answer],
                question=str(item.get("question", "")),
                choices=tuple(choices),
                letters=tuple(letters),
                meta=meta,
            )
        )
    return samples


def _item_id(item: Mapping[str, Any], id_keys: Sequence[str], path_key: str, index: int) -> str:
    parts = [str(item[k]) for k in id_keys if item.get(k) not in (None, "")]
    if parts:
        return "/".join(parts)
    return str(item.get(path_key) or f"item-{index}")


def _unique_id(sample_id: str, seen: dict[str, int]) -> str:
    # Two items may share an audio file (RACE: several questions per passage); ids must stay unique.
    count = seen.get(sample_id, 0)
    seen[sample_id] = count + 1
    return sample_id if count == 0 else f"{sample_id}#{count}"


def _broken(sample_id: str, root: Path, error: str) -> Sample:
    return Sample(sample_id=sample_id, audio_path=root, target="", error=error)


def load_had(root: Path) -> list[Sample]:
    """HAD: every clip of <root>/real/*.wav and <root>/fake/*.wav (the `scripts` protocol balances them)."""
    samples: list[Sample] = []
    for label in ("real", "fake"):
        folder = root / label
        if not folder.is_dir():
            raise DataError(f"HAD folder not found: {folder} (expected {root}/real/*.wav and {root}/fake/*.wav)")
        clips = sorted(folder.glob("*.wav"))
        if not clips:  # one class alone would let a constant answer score 100 %
            raise DataError(f"HAD folder {folder} has no .wav files (both real/ and fake/ are needed)")
        for path in clips:
            problem = name_problem(path)
            samples.append(
                Sample(
                    sample_id=f"{label}/{printable(path.name)}",
                    audio_path=path if problem is None else folder,
                    target=label,
                    choices=("real", "fake"),
                    letters=("a", "b"),
                    meta={"category": label},
                    error=problem and f"HAD {label}: {problem}",
                )
            )
    return samples


def load_librispeech(root: Path) -> list[Sample]:
    """LibriSpeech-long: <root>/test-clean/<spk>/<chapter>/<utt>.flac with <utt>.txt or <spk>-<chapter>.trans.txt."""
    split = root / "test-clean"
    if not split.is_dir():
        raise DataError(f"LibriSpeech split not found: {split} (expected test-clean/<speaker>/<chapter>/*.flac)")
    samples: list[Sample] = []
    transcripts: dict[Path, dict[str, str | DataError]] = {}
    for audio in sorted(split.glob("*/*/*.flac")):
        chapter_dir = audio.parent
        if chapter_dir not in transcripts:
            transcripts[chapter_dir] = _read_trans(chapter_dir)
        utt = audio.stem
        own = audio.with_suffix(".txt")
        speaker = audio.parent.parent.name
        problem = name_problem(audio)
        if problem is not None:
            samples.append(Sample(printable(utt), chapter_dir, "", error=f"LibriSpeech: {problem}"))
            continue
        try:
            text = read_text(own, "transcript").strip() if own.is_file() else transcripts[chapter_dir].get(utt)
        except DataError as err:
            text = err
        if isinstance(text, DataError):  # an undecodable transcript: this sample's error, the others run
            samples.append(Sample(utt, audio, "", error=f"LibriSpeech {utt}: {text}"))
            continue
        if not text:
            samples.append(
                Sample(utt, audio, "", error=f"LibriSpeech {audio}: no transcript in {own.name} or the chapter's .trans.txt")
            )
            continue
        samples.append(Sample(sample_id=utt, audio_path=audio, target=text, meta={"speaker": speaker}))
    if not samples:
        raise DataError(f"LibriSpeech split {split} has no .flac files")
    return samples


def _read_trans(chapter_dir: Path) -> dict[str, str | DataError]:
    """utterance id -> transcript of the chapter's *.trans.txt; a line that is not UTF-8 maps its utterance to
    the DataError naming the file and line (the utterance id itself is ASCII)."""
    table: dict[str, str | DataError] = {}
    for trans in sorted(chapter_dir.glob("*.trans.txt")):
        for number, raw in enumerate(trans.read_bytes().splitlines(), 1):
            utt, _, rest = raw.strip().partition(b" ")
            if not utt:
                continue
            key = utt.decode("utf-8", "replace")
            try:
                table[key] = rest.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                table[key] = DataError(f"transcript {trans} line {number} is not UTF-8 text ({err.reason})")
    return table
