"""The results contract (marathon_lib/schema.py): docs/results.md agrees with the types field by field, writers
are held to the types, and the modules that rebuild cases from records stay torch-free."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from marathon_lib.merge import rescore
from marathon_lib.results import ResultsDir
from marathon_lib.schema import (
    RESULT_TYPES,
    Case,
    CaseRun,
    CaseSpec,
    Record,
    SchemaError,
    check_fields,
    field_names,
    nested_types,
)
from marathon_lib.scoring import build_case
from marathon_lib.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "results.md"


def documented_tables() -> dict[str, dict[str, bool]]:
    """Per heading of docs/results.md (its first word: Record, RecordTiming, ...): field -> optional."""
    tables: dict[str, dict[str, bool]] = {}
    current = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            current = line.lstrip("# ").split()[0]
        elif current and (row := re.match(r"\| `(\w+)` \|(.*)\|(.*)\|(.*)\|$", line)):
            tables.setdefault(current, {})[row.group(1)] = row.group(3).strip() == "optional"
    return tables


def test_docs_describe_exactly_the_typed_fields() -> None:
    documented = documented_tables()
    assert set(documented) == {kind.__name__ for kind in RESULT_TYPES}, "a type without a table, or a stray table"
    for kind in RESULT_TYPES:
        required, optional = field_names(kind)
        table = documented[kind.__name__]
        assert set(table) == required | optional, (kind.__name__, set(table) ^ (required | optional))
        assert {name for name, opt in table.items() if opt} == optional, kind.__name__


def test_every_nested_type_is_in_the_contract() -> None:
    for kind in RESULT_TYPES:
        assert set(nested_types(kind).values()) <= set(RESULT_TYPES), kind.__name__
    assert nested_types(Case)["metrics"].__name__ == "CaseMetrics"
    assert nested_types(Record)["timing"].__name__ == "RecordTiming"


def test_check_fields_names_missing_and_undeclared_fields() -> None:
    with pytest.raises(SchemaError, match=r"sample s1.*missing \['sample_id'\].*undeclared \['surprise'\]"):
        check_fields(Record, {name: None for name in field_names(Record)[0] - {"sample_id"}} | {"surprise": 1},
                     "sample s1")


def records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        target, parsed = ("Dog", "Cat")[i % 2], ("Dog", "Cat")[i % 3 % 2]
        out.append({
            "sample_id": f"s{i}", "audio_path": f"/data/s{i}.wav", "target": target, "target_letter": "A",
            "choices": ["Dog", "Cat"], "letters": ["A", "B"], "meta": {}, "response": parsed, "parsed": parsed,
            "parsed_letter": "A", "parse_rule": "exact_label", "correct": parsed == target, "status": "ok",
            "error": None, "error_kind": None, "audio_seconds": 4.0, "decode_mode": "static", "encoder_reused": True,
            "timing": {"prefill_ms": 10.0, "decode_ms": 5.0, "decode_tokens_per_s": 100.0, "new_tokens": 2,
                       "latency_ms": 15.0, "compile_ms": 3.0},
            "tokens": {"input": 120, "audio": 100, "audio_placeholders": 100, "audio_kept": 100, "audio_chunks": 1,
                       "new": 2}})
    return out


def test_rescore_keeps_every_case_field(tmp_path: Path) -> None:
    """What only the run knew (decode mode, encoder reuse, compile time, shard, data, ...) survives a rescore."""
    results = ResultsDir(tmp_path).ensure()
    spec = CaseSpec("HAD", "tiny-qwen2.5-omni")
    run = CaseRun(session="s-1", model_layers=4, decode_mode="static", max_new_tokens=8, generation_capped=True,
                  protocol="full", shard="0/2", warmup_ms=2.0, unreadable_lines=1, n_resumed=3, n_rescored=1,
                  data={"source": "/d", "commit": None, "folder": "HAD", "found_by": "release", "published": 9,
                        "selected": 9})
    rows = records(9)
    results.sample_path(spec.case_id).write_text("".join(json.dumps(r) + "\n" for r in rows))
    case = build_case(spec, TASKS.get("HAD"), rows, run)
    assert (case["encoder_reused"], case["compile_ms"], case["decode_mode"]) == (9, 27.0, "static")
    results.write_case(case)
    rescore(results)
    (after,) = results.read_cases()
    assert set(after) == set(case) | {"rescored", "vs_base"}
    assert {k: v for k, v in after.items() if k in case} == case
    assert CaseRun.from_case(after) == run


def test_rebuilding_cases_needs_no_torch() -> None:
    code = ("import sys, marathon_lib.schema, marathon_lib.scoring, marathon_lib.merge, marathon_lib.report; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
