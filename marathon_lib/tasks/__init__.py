"""Task registry: `TASKS.get("TAU")` -> TaskSpec."""

from .base import DEFAULT_PROTOCOL, PROTOCOLS, Sample, Selection, TaskSpec
from .folders import TaskFolder, TaskFolders, find_task_folder
from .parsers import Parsed, parse_choice, parse_transcript
from .specs import TASKS, category_columns, leaderboard_columns, register_task

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOLS", "TASKS", "Parsed", "Sample", "Selection", "TaskFolder", "TaskFolders",
           "TaskSpec", "category_columns", "find_task_folder", "leaderboard_columns", "parse_choice", "parse_transcript",
           "register_task"]
