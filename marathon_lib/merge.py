"""Merge results directories of one benchmark run split into shards (--shard i/n) or machines.

Sample records of the same case are unioned (each sample exactly once) and every metric is recomputed
from them, so a merged case equals the case run in one piece.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import DataError
from .report import write_report
from .results import ResultsDir, read_records, rewrite_records, run_manifest, write_json
from .runner import CaseSpec, build_case
from .tasks import TASKS

# case fields that come from the model, the run's generation budget or its data, not from the records
CARRIED = ("model_layers", "max_new_tokens", "generation_capped", "protocol", "data")


def merge_results(sources: Sequence[Path], out: Path) -> list[dict[str, Any]]:
    if not sources:
        raise DataError("merge: give at least one results directory")
    target = ResultsDir(out).ensure()
    cases: dict[str, list[tuple[dict[str, Any], ResultsDir]]] = {}
    for source in map(ResultsDir, sources):
        if not source.cases.is_dir():
            raise DataError(f"merge: {source.root} has no cases/ directory (not a results directory)")
        for case in source.read_cases():
            cases.setdefault(case["case_id"], []).append((case, source))
    merged = []
    for case_id, parts in sorted(cases.items()):
        records = _union(case_id, [(src.root, read_records(src.sample_path(case_id))) for _, src in parts])
        first = parts[0][0]
        spec = TASKS.get(first["task"])
        warmups = [c["timing"]["warmup_ms"] for c, _ in parts if c["timing"]["warmup_ms"] is not None]
        fresh = build_case(CaseSpec.from_case(first), spec, records, min(warmups) if warmups else None) | {
            k: first[k] for k in CARRIED if k in first} | {"merged_from": [str(src.root) for _, src in parts]}
        # when the shards ran, not when they were merged: `marathon report` merges pick the newest by it
        fresh |= {"created": max((c["created"] for c, _ in parts), key=datetime.fromisoformat),
                  "merged": fresh["created"]}
        rewrite_records(target.sample_path(case_id), records)
        target.write_case(fresh)
        merged.append(fresh)
    write_json(target.root / "manifest.json", run_manifest({"merged_from": [str(s) for s in sources]}, "merged"))
    write_report(target)
    return merged


def _union(case_id: str, parts: list[tuple[Path, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    seen: dict[str, tuple[Path, dict[str, Any]]] = {}
    for root, records in parts:
        for record in records:
            sample = record["sample_id"]
            if sample in seen:
                other_root, other = seen[sample]
                if other.get("key") != record.get("key"):
                    raise DataError(f"merge: {case_id} sample {sample} differs between {other_root} and {root} "
                                    "(different settings or data): refusing to mix them")
                continue
            seen[sample] = (root, record)
    return [record for _, record in seen.values()]
