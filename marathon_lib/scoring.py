"""Scoring: one response to a record's verdict, and a case's records to the case JSON.

Torch-free: live runs, `marathon rescore` and `marathon merge` all score and aggregate through here.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .metrics import METRICS_VERSION, case_metrics
from .results import now_iso
from .schema import SCHEMA_VERSION, Case, CaseRun, CaseSpec, check_fields
from .tasks import Sample, TaskSpec, parse_choice, parse_transcript
from .tasks.parsers import PARSER_VERSIONS


def score_response(spec: TaskSpec, sample: Sample, response: str) -> dict[str, Any]:
    """Parse one response and decide status/correctness; shared by live runs and `marathon rescore`."""
    if spec.answer == "text":
        parsed = parse_transcript(response)
    else:
        parsed = parse_choice(response, sample.choices, sample.letters, spec.aliases)
    status = "ok" if parsed.valid else "invalid"
    return {
        "parsed": parsed.label,
        "parsed_letter": parsed.letter,
        "parse_rule": parsed.rule,
        "status": status,
        "correct": None if spec.answer == "text" else (status == "ok" and parsed.label == sample.target),
    }


def scoring_versions(spec: TaskSpec) -> dict[str, str]:
    """What a record's parse and the case's metrics were computed with; part of every record's resume key."""
    return {"parser": PARSER_VERSIONS[spec.answer], "metrics": METRICS_VERSION}


def scoring_key(generation_key: str, spec: TaskSpec) -> str:
    """The resume key: the generation's identity plus the scoring versions. A record whose generation matches but
    whose scoring versions differ is rescored from its saved response, never mixed with fresh ones."""
    identity = {"generation": generation_key, "scoring": scoring_versions(spec)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def rescore_record(spec: TaskSpec, record: Mapping[str, Any]) -> dict[str, Any]:
    """A saved record parsed again with the current parsers (records without a response are kept as they are)."""
    fresh = dict(record)
    if record["status"] != "error":
        fresh |= score_response(spec, sample_from_record(record), record["response"])
    fresh["scoring"] = scoring_versions(spec)
    if record.get("generation_key"):
        fresh["key"] = scoring_key(record["generation_key"], spec)
    return fresh


def sample_from_record(record: Mapping[str, Any]) -> Sample:
    return Sample(
        sample_id=record["sample_id"],
        audio_path=Path(record["audio_path"]),
        target=record["target"],
        choices=tuple(record.get("choices") or ()),
        letters=tuple(record.get("letters") or ()),
    )



def build_case(case: CaseSpec, spec: TaskSpec, records: Sequence[Mapping[str, Any]], run: CaseRun) -> Case:
    """The case JSON from its records and what its run knew: the one builder used by a live run, `marathon
    merge` and `marathon rescore`, so the three write the same fields."""
    timed = [r for r in records if r["status"] != "error"]
    built: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "case_id": case.case_id,
        **asdict(case),
        "task_code": spec.code,
        "category": spec.category,
        "task_version": spec.version,
        "parser_version": PARSER_VERSIONS[spec.answer],
        "created": now_iso(),
        "metrics": case_metrics(spec, records),
        "timing": {
            "prefill_ms": _mean(r["timing"]["prefill_ms"] for r in timed),
            "prefill_ms_median": _median(r["timing"]["prefill_ms"] for r in timed),
            # the audio encoder's share of the prefill and the rest (what pruning can cut); None when not measured
            "encoder_ms": _mean(r["timing"].get("encoder_ms") for r in timed),
            "llm_prefill_ms": _mean(r["timing"].get("llm_prefill_ms") for r in timed),
            "decode_ms": _mean(r["timing"]["decode_ms"] for r in timed),
            "decode_tokens_per_s": _mean(r["timing"]["decode_tokens_per_s"] for r in timed),
            "latency_ms": _mean(record_latency_ms(r["timing"]) for r in timed),
            "audio_seconds": _mean(r["audio_seconds"] for r in timed),
            "n_timed": len(timed),
            "warmup_ms": run.warmup_ms,
            "warmup_excluded": True,
        },
        "tokens": {
            "input": _mean(r["tokens"]["input"] for r in timed),
            "audio": _mean(r["tokens"]["audio"] for r in timed),
            "audio_kept": _mean(r["tokens"]["audio_kept"] for r in timed),
        },
        "errors": [{"sample_id": r["sample_id"], "kind": r["error_kind"], "error": r["error"]}
                   for r in records if r["status"] == "error"],
        "encoder_reused": sum(bool(r.get("encoder_reused")) for r in records),
        "inputs_reused": sum(bool(r.get("inputs_reused")) for r in records),
        # static decode compiles once per cache bucket, outside every record's decode_ms
        "compile_ms": round(sum((r.get("timing") or {}).get("compile_ms") or 0.0 for r in records), 3),
    } | run.case_fields()
    check_fields(Case, built, f"case {case.case_id}")
    return built  # type: ignore[return-value]


def _mean(values: Any) -> float | None:
    """Mean of the measured values; None marks a quantity the model could not measure (API prefill)."""
    values = [v for v in values if v is not None]
    return round(statistics.fmean(values), 3) if values else None


def _median(values: Any) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def record_latency_ms(timing: Mapping[str, Any]) -> float | None:
    """End-to-end ms; records written before latency_ms existed carry prefill + decode."""
    if timing.get("latency_ms") is not None:
        return timing["latency_ms"]
    if timing["prefill_ms"] is None or timing["decode_ms"] is None:
        return None
    return timing["prefill_ms"] + timing["decode_ms"]
