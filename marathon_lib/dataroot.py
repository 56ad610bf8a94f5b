"""`--data-root`: a local folder (the release tree as downloaded, the flat layout, or a root holding only some
tasks) or `hf://owner/name[@revision]`, a Hugging Face dataset snapshot in the normal hub cache.

`resolve_data_root` is the one entry point (option building, `marathon data check`): it downloads what the
selected tasks need, finds each task's folder (tasks.folders) and reports every failure as a ConfigError
that says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataError
from .tasks import TASKS, Selection, TaskFolder

HF_SCHEME = "hf://"
RELEASE_REPO = "Hezep/AudioMarathon"  # the AudioMarathon release: CC-BY-NC-4.0, about 59 GB for all 10 tasks
COMMIT_RE = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubSource:
    """hf://owner/name[@revision] (revision: a branch, tag or commit; default main)."""

    repo_id: str
    revision: str | None = None

    @classmethod
    def parse(cls, value: str) -> HubSource:
        spec = value.removeprefix(HF_SCHEME).removeprefix("datasets/")
        repo_id, _, revision = spec.partition("@")
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id) or (_ and not revision):
            raise ConfigError(f"--data-root {value!r}: expected hf://owner/name or hf://owner/name@revision, "
                              f"e.g. {HF_SCHEME}{RELEASE_REPO}")
        return cls(repo_id, revision or None)

    def url(self, revision: str | None = None) -> str:
        revision = revision or self.revision
        return f"{HF_SCHEME}{self.repo_id}" + (f"@{revision}" if revision else "")


@dataclass(frozen=True)
class DataRoot:
    """A resolved data root: the local folder, where it came from and every selected task's folder."""

    path: Path
    source: str  # the --data-root value as given
    folders: Mapping[str, TaskFolder] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)  # task -> why it has no folder (its cases fail)
    repo_id: str | None = None
    revision: str | None = None  # as asked (None: main)
    commit: str | None = None  # the snapshot's commit hash: recorded and part of every resume key

    @property
    def pinned(self) -> str:
        """The same data again: hf:// at the resolved commit (xdist workers, reruns), else the folder."""
        return HubSource(self.repo_id).url(self.commit) if self.repo_id else str(self.path)

    def manifest(self, protocol: str) -> dict[str, Any]:
        """The run manifest's `data` block: where the data came from, each task's folder and what the sample
        protocol does to it (null: every published item)."""
        tasks = {task: folder.as_dict() | {"protocol_filter": TASKS.get(task).describe_protocol(protocol)}
                 for task, folder in self.folders.items()}
        return {"source": self.source, "path": str(self.path), "repo_id": self.repo_id, "revision": self.revision,
                "commit": self.commit, "protocol": protocol, "tasks": tasks, "missing": dict(self.missing)}

    def case_data(self, selection: Selection) -> dict[str, Any]:
        """A case JSON's `data` block: source, commit, the task's folder and its published / selected counts."""
        return {"source": self.source, "commit": self.commit, "folder": selection.folder.relative,
                "found_by": selection.folder.found_by, "published": selection.published,
                "selected": selection.selected}


def release_patterns(tasks: Sequence[str]) -> list[str]:
    """allow_patterns of the selected tasks' release folders (VoxAge and VoxGender share one)."""
    return sorted({f"{TASKS.get(task).folders.release}/*" for task in tasks})


def download_hint(source: HubSource, tasks: Sequence[str]) -> str:
    includes = " ".join(f'--include "{pattern}"' for pattern in release_patterns(tasks))
    revision = f" --revision {source.revision}" if source.revision else ""
    return (f"hf download {source.repo_id} --repo-type dataset{revision} {includes}  (or in Python: "
            f"huggingface_hub.snapshot_download({source.repo_id!r}, repo_type='dataset'"
            f"{f', revision={source.revision!r}' if source.revision else ''}, "
            f"allow_patterns={release_patterns(tasks)}))")


def hub_snapshot(source: HubSource, tasks: Sequence[str]) -> Path:
    """The selected tasks' release folders at the revision, downloaded into the normal hub cache (HF_HOME /
    HF_HUB_CACHE); HF_HUB_OFFLINE and a token from the environment (HF_TOKEN) are honoured by huggingface_hub."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"--data-root {source.url()}"
    try:
        path = snapshot_download(source.repo_id, repo_type="dataset", revision=source.revision,
                                 allow_patterns=release_patterns(tasks))
    except LocalEntryNotFoundError as err:  # offline (HF_HUB_OFFLINE=1 or no network) and not in the cache
        raise ConfigError(f"{where}: the snapshot is not in the Hugging Face cache and the hub cannot be reached "
                          f"({_first_line(err)}). Download it first: {download_hint(source, tasks)}") from None
    except RevisionNotFoundError:
        raise ConfigError(f"{where}: the dataset has no revision {source.revision!r}") from None
    except GatedRepoError:
        raise ConfigError(f"{where}: the dataset is gated: accept its terms on the hub and put a token with access "
                          "in HF_TOKEN (or run `hf auth login`)") from None
    except RepositoryNotFoundError:
        raise ConfigError(f"{where}: no dataset {source.repo_id!r} on the hub (or it is private: put a token with "
                          "access in HF_TOKEN)") from None
    except HfHubHTTPError as err:
        raise ConfigError(f"{where}: the hub refused the download: {_first_line(err)}") from None
    return Path(path)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def open_data_root(value: str, tasks: Sequence[str]) -> DataRoot:
    """The local folder behind a --data-root value (hf:// snapshots downloaded for `tasks`), folders unresolved."""
    if value.startswith(HF_SCHEME):
        source = HubSource.parse(value)
        path = hub_snapshot(source, tasks)
        commit = path.name if COMMIT_RE.fullmatch(path.name) else None
        return DataRoot(path, value, repo_id=source.repo_id, revision=source.revision, commit=commit)
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(f"--data-root: {path} is not a directory")
    return DataRoot(path, value)


def resolve_data_root(value: str, tasks: Sequence[str], require_all: bool = True) -> DataRoot:
    """Open the data root and find every selected task's folder. A task without one (or with two) is a
    ConfigError when `require_all` (tasks named with --tasks) or when no task has a folder; otherwise (the
    default: all tasks, a root holding only some) it is recorded in `missing` and its cases fail with the reason,
    while `pytest -k` may select the tasks present."""
    root = open_data_root(value, tasks)
    folders, missing = {}, {}
    for task in tasks:
        try:
            folders[task] = TASKS.get(task).folder(root.path)
        except DataError as err:
            missing[task] = str(err)
    if missing and root.repo_id:
        hint = (f" The snapshot {root.commit} lacks these files; download them: "
                f"{download_hint(HubSource(root.repo_id, root.revision), list(missing))}")
        missing = {task: f"{error}.{hint}" for task, error in missing.items()}
    if missing and (require_all or not folders):
        present = [task for task in tasks if task in folders]
        choose = f" Run only the tasks present with --tasks {','.join(present)}." if present else ""
        raise ConfigError("--data-root: " + " | ".join(missing.values()) + choose)
    return DataRoot(root.path, root.source, folders, missing, root.repo_id, root.revision, root.commit)
