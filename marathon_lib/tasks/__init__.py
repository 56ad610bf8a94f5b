"""Task registry: `TASKS.get("TAU")` -> TaskSpec."""

from .base import DEFAULT_PROTOCOL, PROTOCOLS, Sample, Selection, TaskSpec
from .folders import TaskFolder, TaskFolders, find_task_folder
from .parsers import Parsed, parse_choice, parse_transcript
from .specs import LEADERBOARD_COLUMNS, TASKS

__all__ = ["DEFAULT_PROTOCOL", "LEADERBOARD_COLUMNS", "PROTOCOLS", "TASKS", "Parsed", "Sample", "Selection",
           "TaskFolder", "TaskFolders", "TaskSpec", "find_task_folder", "parse_choice", "parse_transcript"]
