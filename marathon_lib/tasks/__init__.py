"""Task registry: `TASKS.get("TAU")` -> TaskSpec."""

from .base import Sample, TaskSpec
from .parsers import Parsed, parse_choice, parse_transcript
from .specs import LEADERBOARD_COLUMNS, TASKS

__all__ = ["LEADERBOARD_COLUMNS", "TASKS", "Parsed", "Sample", "TaskSpec", "parse_choice", "parse_transcript"]
