"""Control conditions: cases that change what the model is given, not how it computes (so not pruners or
presses). A control case runs beside the methods (`TAU-tiny-qwen2.5-omni-no_audio`), is never a method of the
efficiency or retained tables, and its own leaderboard section says how much of each task it scores.

- `no_audio`: the same prompt with every audio item removed (a chat format that needs an audio item gets one
  second of silence instead; `models.base.AudioLM.prepare_without_audio`). What a model scores here is
  answerable without listening: from the question, the options and the model's priors.
"""

from __future__ import annotations

from .errors import ConfigError

CONTROLS = {
    "no_audio": "the same prompt with every audio item removed (1 s of silence where the chat format needs audio)",
}


def check_controls(names: list[str]) -> list[str]:
    """Validated --controls names (ConfigError naming the known ones)."""
    for name in names:
        if name not in CONTROLS:
            raise ConfigError(f"--controls: unknown control {name!r}; known: {', '.join(CONTROLS)}")
    return names
