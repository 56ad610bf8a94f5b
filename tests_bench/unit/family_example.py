"""What adding a model family or a task takes: one module like this one (in the suite, a family is a file in
marathon_lib/models/ imported by models/__init__.py, a task a `register_task` call in marathon_lib/tasks/specs.py).
Nothing else is edited: model names, `-k` keyword, config model_types, press support, options, cases, report
columns and categories are all derived from these declarations.

Loaded as a pytest plugin by tests_bench/unit/test_one_file_extensions.py (`-p tests_bench.unit.family_example`);
it is not a test module and is never imported by the suite's own session, so its names stay out of every other
test."""

from __future__ import annotations

from functools import partial

from marathon_lib.kv import KEY_ONLY_PRESSES
from marathon_lib.models import register_family
from marathon_lib.models.qwen_omni import QwenOmniThinker
from marathon_lib.tasks import TaskFolders, TaskSpec, register_task
from marathon_lib.tasks.loaders import load_choice_manifest
from marathon_lib.tasks.specs import CHOICE_TOKENS, listen_and_select_prompt

MURMUR_MANIFEST = "murmur_task.json"


@register_family
class EchoOmni(QwenOmniThinker):
    """A made-up family that runs on the Qwen2.5-Omni thinker's classes (its tiny build is that family's)."""

    family = "echo-omni"
    long_audio = "each item ≤ 300 s, as the Qwen2.5-Omni thinker it reuses"
    tiny_name = "tiny-echo-omni"
    checkpoints = ("example-org/Echo-Omni-1B",)
    model_types = ("echo_omni",)
    keyword = "echo"
    presses = KEY_ONLY_PRESSES
    press_refusal = "an example family: only the key-only presses are declared"


MURMUR_TASK = register_task(TaskSpec(
    name="Murmur", code="MUR", category="Example Category",
    folders=TaskFolders(release="murmur/long", flat="Murmur", marker=(MURMUR_MANIFEST,)),
    load=partial(load_choice_manifest, manifest=MURMUR_MANIFEST, what="Murmur"),
    instruction="You are a helpful assistant that listens to audio and answers questions about it.",
    format_prompt=listen_and_select_prompt, answer="choice", max_new_tokens=CHOICE_TOKENS,
))
