"""Sample-major execution of a sweep (`--order sample`, the default).

All selected cases of one (task, model) see the same prepared inputs per sample and, with
`--reuse-audio-encoder`, the same encoder output. Run case after case, each over all samples, those would have to
be kept for every sample of the task (the bounded caches hold 16, so at release sizes every case decoded,
resampled, extracted features and encoded every sample again). Run sample by sample instead, every method and
ratio back to back on one sample, each sample is prepared once (in the background, a few samples ahead) and
encoded once, and memory stays bounded by the prefetch depth.

Only the order of work changes: the first case of a group to run computes the records of every case of the group
that this process will still run (resume keys, `-k`, `--shard` and xdist `loadgroup` respected: only what is
collected here and not yet done), writes each to its own case's records file as it finishes, and hands them on
(runner.Ahead); every case then finalizes from them in its own pytest test, with its own case JSON, metadata and
pass/fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from .errors import MarathonError
from .models import BenchModel, resolve_model
from .pruning import PRUNERS, PruneHook
from .runner import PREFETCH_DEPTH, Ahead, CaseRunner
from .schema import CaseSpec
from .tasks import Sample
from .textstack import family_limit_refusal


class Refused(MarathonError):
    """A method this model cannot run: its case is skipped with the reason, never run as a silent baseline."""


def case_refusal_before_load(case: CaseSpec) -> str | None:
    """Why the case's model cannot take its method at all (API, remote code), known before any load."""
    refusal = resolve_model(case.model).method_refusal(case.pruner, case.press, case.control)
    return None if refusal is None else f"{case.case_id}: {refusal}"


def case_hook(case: CaseSpec, model: BenchModel) -> PruneHook | None:
    """The case's pruning hook on the loaded model (not installed); Refused where a family limit forbids it."""
    if case.pruner == "base":
        return None
    stack = model.text_stack()
    refusal = family_limit_refusal(stack, case.prune_layer)
    if refusal is not None:  # a family limit (Gemma-3n's KV-shared layers)
        raise Refused(f"{case.case_id}: {refusal}")
    return PruneHook(stack, case.prune_layer, PRUNERS.get(case.pruner), case.prune_ratio)


def case_press(case: CaseSpec, model: BenchModel) -> Any:
    """The case's kvpress press; Refused where kvpress cannot drive it on this family."""
    if case.press is None:
        return None
    from .kv import support

    available = support(model, case.press)
    if not available.ok:
        raise Refused(f"{case.case_id}: {available.reason}")
    from .kv.presses import build_press

    return build_press(case.press, case.compression_ratio, model.text_stack().mrope_section)


@dataclass
class Member:
    """One case of a sample-major group: its runner, its samples (after --shard) and its pruning hook, installed
    around its own work only (the running case's hook is installed by its fixture already)."""

    runner: CaseRunner
    samples: Sequence[Sample]
    hook: PruneHook | None = None

    @property
    def case_id(self) -> str:
        return self.runner.case.case_id

    def method_installed(self) -> AbstractContextManager[Any]:
        return nullcontext() if self.hook is None or self.hook.handles else self.hook


def run_sample_major(members: Sequence[Member], depth: int = PREFETCH_DEPTH) -> dict[str, Ahead]:
    """Compute every member's missing records sample by sample; returns each case's records by resume key."""
    ahead = {m.case_id: Ahead() for m in members}
    todo = {m.case_id: {s.sample_id: (s, g, k) for s, g, k in m.runner.to_compute(m.samples)} for m in members}
    for member in members:  # each case warms up before its first computed sample, as when it runs alone
        if todo[member.case_id]:
            with member.method_installed():
                ahead[member.case_id].warmup_ms = member.runner.warmup(member.samples)
            ahead[member.case_id].warmed = True
    order: dict[str, Sample] = {}
    for member in members:
        for sample, _, _ in todo[member.case_id].values():
            order.setdefault(sample.sample_id, sample)
    feeder = next((m.runner for m in members if m.runner.case.control is None), None)
    prefetcher = feeder.prefetcher(list(order.values()), depth) if feeder is not None else None
    try:
        for index, sample in enumerate(order.values(), 1):
            prepared = prefetcher.take(sample) if prefetcher is not None else None
            for member in members:  # every method and ratio back to back on the same prepared inputs
                planned = todo[member.case_id].get(sample.sample_id)
                if planned is None:
                    continue
                with member.method_installed():
                    record = member.runner.fresh_record(*planned, prepared)
                ahead[member.case_id].records[planned[2]] = record
                member.runner.progress(f"{member.case_id} [sample {index}/{len(order)}] {sample.sample_id}: "
                                       f"{member.runner.describe(record)}")
    finally:
        if prefetcher is not None:
            prefetcher.close()
    return ahead
