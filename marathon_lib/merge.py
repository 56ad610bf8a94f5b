"""Cases rebuilt from their saved records, without a model: `marathon merge` and `marathon rescore`.

merge: results directories of one benchmark run split into shards (--shard i/n) or machines. Sample records of
the same case are unioned (each sample exactly once) and every metric is recomputed from them, so a merged case
equals the case run in one piece. rescore: every saved response parsed again with the current parsers.
Both go through scoring.build_case, as a live run does, so every case field survives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import DataError
from .report import write_report
from .results import ResultsDir, now_iso, read_records, rewrite_records, run_manifest, write_json
from .schema import CaseRun, CaseSpec
from .scoring import build_case, rescore_record
from .tasks import TASKS


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
        # the run facts of the first part; counts over all parts; a merged case is no longer one shard
        run = replace(CaseRun.from_case(first), shard=None, warmup_ms=min(warmups) if warmups else None,
                      **{name: sum(c.get(name, 0) for c, _ in parts)
                         for name in ("unreadable_lines", "n_resumed", "n_rescored")})
        fresh = build_case(CaseSpec.from_case(first), spec, records, run) | {
            "merged_from": [str(src.root) for _, src in parts]}
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


def rescore(results: ResultsDir) -> list[dict[str, Any]]:
    """Re-parse every saved response with the current parsers and recompute all metrics (no model). A case keeps
    its `created` (when it ran, what merges call newest) and gets `rescored` (when its metrics were recomputed)."""
    updated = []
    for case in results.read_cases():
        spec = TASKS.get(case["task"])
        records = [rescore_record(spec, record) for record in results.read_samples(case["case_id"])]
        rewrite_records(results.sample_path(case["case_id"]), records)
        fresh = build_case(CaseSpec.from_case(case), spec, records, CaseRun.from_case(case)) | {
            "created": case["created"], "rescored": now_iso()}
        fresh |= {name: case[name] for name in ("merged", "merged_from") if name in case}
        updated.append(results.write_case(fresh) and fresh)
    write_report(results)
    return updated
