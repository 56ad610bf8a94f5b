"""Where a task's files live under a data root: the AudioMarathon release tree as downloaded
(`Hezep/AudioMarathon`), the flat one-folder-per-dataset layout, or anywhere a bounded search finds them.

Each task declares its folders and what its folder must hold (TaskFolders, a field of its TaskSpec);
`find_task_folder` is the one resolver. The folder it returns is the task's boundary: manifest paths are
read relative to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

SEARCH_DEPTH = 5  # levels below the data root searched when neither known folder holds the task


@dataclass(frozen=True)
class TaskFolders:
    """A task's folder in the release tree and in the flat layout, and the names its folder holds
    (a trailing "/" names a sub-folder, e.g. HAD's "real/" and "fake/")."""

    release: str  # e.g. "TAU/concatenated_resampled"
    flat: str  # e.g. "TAU"
    marker: tuple[str, ...]  # e.g. ("acoustic_scene_task_meta.json",)

    def holds(self, folder: Path) -> bool:
        return all((folder / name.rstrip("/")).is_dir() if name.endswith("/") else (folder / name).is_file()
                   for name in self.marker)

    def describe(self) -> str:
        return " and ".join(self.marker)


@dataclass(frozen=True)
class TaskFolder:
    """The folder a task is read from, and how it was found (recorded in the run manifest)."""

    path: Path
    relative: str  # to the data root, POSIX; "." when the root itself is the task folder
    found_by: str  # "release", "flat" or "search"

    def as_dict(self) -> dict[str, str]:
        return {"folder": self.relative, "found_by": self.found_by}


def find_task_folder(task: str, folders: TaskFolders, root: Path) -> TaskFolder:
    """The task's folder under `root`: its release folder or its flat folder, else the only folder within
    SEARCH_DEPTH levels that holds its marker. None, or two candidates, is a DataError naming the task, the
    root and what was looked for."""
    root = Path(root)
    known: dict[str, str] = {}  # relative folder -> layout; SLUE and VESUS have one folder in both layouts
    for layout, relative in (("release", folders.release), ("flat", folders.flat)):
        if relative not in known and folders.holds(root / relative):
            known[relative] = layout
    if len(known) == 1:
        ((relative, layout),) = known.items()
        return TaskFolder(root / relative, relative, layout)
    if len(known) > 1:
        listed = " and ".join(f"{root / rel} ({layout} layout)" for rel, layout in known.items())
        raise DataError(f"{task}: two folders under data root {root} hold {folders.describe()}: {listed}; "
                        "keep one of them (which one the run should read is ambiguous)")
    found = search(root, folders)
    if len(found) == 1:
        relative = found[0].relative_to(root).as_posix()
        return TaskFolder(found[0], relative or ".", "search")
    looked = (f"looked in {root / folders.release} (release layout) and {root / folders.flat} (flat layout), "
              f"then in every folder up to {SEARCH_DEPTH} levels below {root}")
    if not found:
        expected = ", ".join(str(root / folders.flat / name) for name in folders.marker)
        raise DataError(f"{task}: no folder under data root {root} holds {folders.describe()} "
                        f"(expected e.g. {expected}): {looked}")
    raise DataError(f"{task}: {len(found)} folders under data root {root} hold {folders.describe()}: "
                    f"{', '.join(map(str, found))} ({looked}); keep one of them or point --data-root at one tree")


def search(root: Path, folders: TaskFolders) -> list[Path]:
    """Folders within SEARCH_DEPTH levels of root (root included) that hold the marker; hidden folders
    (.cache, .git) are skipped. Symlinked folders are followed: the depth bound ends any loop."""
    first = folders.marker[0].rstrip("/")
    found = []
    for current, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(current)
        if (first in filenames or first in dirnames) and folders.holds(here):
            found.append(here)
        depth = len(here.relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < SEARCH_DEPTH else []
    return found
