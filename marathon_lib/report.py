"""summary.json, leaderboard.md and plots/ from a results directory; merging several results directories;
rescoring from saved sample records; paired tests of every method and control against its base case."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .metrics import headline_kind
from .results import ResultsDir, mixed_settings, now_iso, write_json
from .schema import SCHEMA_VERSION
from .tables import (
    CaseArrays,
    control_rows,
    efficiency_rows,
    half_width,
    leaderboard_rows,
    paired_comparisons,
    retained_rows,
)
from .tasks import PROTOCOLS, TASKS, category_columns, leaderboard_columns

MIXED_NOTE = ("> **Mixed settings.** These cases were written by sessions whose settings differ (manifest.json lists "
              "the sessions, each case JSON names its `session`): compare them with care.")
MERGE_FILE = "merged.json"  # provenance of a merged results directory, shown in its leaderboard.md


def _cell(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pm(value: float | None, width: float | None) -> str:
    """"72.4 ± 3.1" (the ± is half the 95 % interval); the value alone where no interval is known."""
    return _cell(value) if value is None or width is None else f"{_cell(value)} ± {width:.1f}"


def _best_cells(values: Sequence[float | None], widths: Sequence[float | None] | None = None) -> list[str]:
    """Cells of one column, the best (highest) value in bold; nothing is bold when every row ties."""
    present = {v for v in values if v is not None}
    best = max(present) if len(present) > 1 else None
    widths = widths or [None] * len(values)
    cells = []
    for value, width in zip(values, widths):
        text = f"**{_cell(value)}**" if value is not None and value == best else _cell(value)
        cells.append(text if value is None or width is None else f"{text} ± {width:.1f}")
    return cells


def headline_note() -> str:
    """Which measure each task column shows, and why (docs/metrics.md has the whole argument)."""
    kinds: dict[str, list[str]] = defaultdict(list)
    for name in TASKS.names():
        spec = TASKS.get(name)
        kinds[headline_kind(spec)].append(spec.code)
    return (f"Each column is the task's headline (docs/metrics.md): **balanced accuracy** (mean over the task's "
            f"classes of the share answered right) for {', '.join(kinds['balanced_accuracy'])}, whose options are a "
            f"fixed class set; **accuracy** for {', '.join(kinds['accuracy'])}, whose options are texts of each "
            f"question; **100 − WER** with each utterance's errors limited to its reference length for "
            f"{', '.join(kinds['word_accuracy'])}. An invalid answer counts as wrong and never scores above a wrong "
            "one. ± is half the 95 % interval (Wilson for accuracy, a seeded bootstrap over samples otherwise; for "
            f"Avg. Score √Σ±² / k). Avg. Score averages the task columns present (k/{len(TASKS.names())} shown when "
            "incomplete). The best value of each column is bold.")


def leaderboard_markdown(summary: dict[str, Any], merged: dict[str, Any] | None = None) -> str:
    """leaderboard.md from the summary (write_report): leaderboard, categories, efficiency, retained with paired
    marks, controls, cases, the paper's columns."""
    rows, cases = summary["leaderboard"], summary["cases"]
    task_columns, categories = leaderboard_columns(), list(category_columns())
    header = ["Rank", "Model", "Method", "Avg. Score", *task_columns]
    lines = [
        "# AudioMarathon leaderboard",
        "",
        headline_note(),
        "",
        *protocol_markdown(cases),
        *_capped_markdown(cases),
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    avg_cells = _best_cells([row["avg"] for row in rows], [row.get("avg_ci_half_width") for row in rows])
    columns = {c: _best_cells([row["scores"][c] for row in rows],
                              [row.get("ci_half_width", {}).get(c) for row in rows]) for c in task_columns}
    for i, row in enumerate(rows):
        complete = row["n_tasks"] == len(task_columns)
        avg = avg_cells[i] + ("" if complete else f" ({row['n_tasks']}/{len(task_columns)})")
        cells = [str(i + 1), row["model"], row["method"], avg, *(columns[c][i] for c in task_columns)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## By category", "", "| Model | Method | " + " | ".join(categories) + " |",
              "|---|---|" + "---|" * len(categories)]
    for row in rows:
        lines.append(f"| {row['model']} | {row['method']} | "
                     + " | ".join(_cell(row["categories"][c]) for c in categories) + " |")
    lines += _efficiency_markdown(summary["efficiency"]) + _retained_markdown(summary["retained"])
    lines += _controls_markdown(summary["controls"]) + _cases_markdown(cases) + _paper_markdown(cases)
    if merged is not None:
        lines += _merged_markdown(merged)
    return "\n".join(lines) + "\n"


def _vs_base_cell(vs_base: dict[str, Any] | None) -> str:
    """"−3.1 (p 0.012) ↓": headline change against base on the same samples, the paired test's p, a mark when the
    drop is significant at 5 %."""
    if not vs_base:
        return "–"
    mark = " ↓" if vs_base["significant_drop"] else ""
    p = "p < 0.001" if vs_base["p_value"] < 0.001 else f"p {vs_base['p_value']:.3f}"
    return f"{vs_base['delta']:+.1f} ({p}){mark}"


def _cases_markdown(cases: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["", "## Cases", "",
             ("score and accuracy ± half the 95 % interval; vs base = score − base score on the samples both scored, "
              "p of the paired test (exact McNemar on correctness; ASR: paired bootstrap), ↓ a drop significant at "
              "5 %."), "",
             ("| Case | n | errors | score | accuracy | vs base | parse fail % | prefill ms | decode ms | tok/s "
              "| audio tok | kept |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in sorted(cases, key=lambda c: c["case_id"]):
        m, t, k = case["metrics"], case["timing"], case["tokens"]
        lines.append(
            f"| {case['case_id']} | {m['n']} | {m['n_error']} | {_pm(m['score'], half_width(case))} | "
            f"{_pm(m.get('accuracy'), half_width(case, 'accuracy'))} | {_vs_base_cell(case.get('vs_base'))} | "
            f"{_cell(m['parse_fail_rate'])} | {_cell(t['prefill_ms'])} | {_cell(t['decode_ms'])} | "
            f"{_cell(t['decode_tokens_per_s'])} | {_cell(k['audio'])} | {_cell(k['audio_kept'])} |"
        )
    return lines


def _paper_markdown(cases: Sequence[dict[str, Any]]) -> list[str]:
    """The original scripts' figures, for comparison with the paper only."""
    lines = ["", "## For comparison with the paper (not the headline)", "",
             ("The original evaluation scripts' formulas (docs/metrics.md): seed F1 / seed WER on our parsed answers; "
              "seed e2e with the scripts' own answer extractors on the raw responses, i.e. what the original "
              "pipeline would have printed. They reward unparseable answers and are never the leaderboard's score."),
             "", "| Case | seed F1 / seed WER | seed e2e |", "|---|---|---|"]
    for case in sorted(cases, key=lambda c: c["case_id"]):
        m = case["metrics"]
        seed = m.get("seed_wer", m.get("seed_f1"))
        lines.append(f"| {case['case_id']} | {_cell(seed)} | {_cell(m.get('seed_e2e'))} |")
    return lines


def _controls_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["", "## Answerable without audio (controls)", "",
             ("The control cases (`--controls no_audio`: the same prompt with the audio removed) beside the base case "
              "and the chance level of a uniform guess among each sample's options: a task a model scores well above "
              "chance without listening does not measure listening. vs base as in the case table."), "",
             "| Model | Control | Task | control score | base score | chance | vs base |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['control']} | {row['task']} ({row['task_code']}) | "
                     f"{_pm(row['score'], row['ci_half_width'])} | {_pm(row['base_score'], row['base_ci_half_width'])} | "
                     f"{_cell(row['chance'])} | {_vs_base_cell(row['vs_base'])} |")
    return lines


def protocol_markdown(cases: Sequence[dict[str, Any]]) -> list[str]:
    """The sample protocol, the data and how many samples each task evaluated: scores under another protocol,
    on other data or cut by --sample-limit / --shard are not comparable."""
    protocols = sorted({case.get("protocol") or "not recorded" for case in cases})
    if len(protocols) == 1:
        name = protocols[0]
        meaning = PROTOCOLS.get(name, "cases written before protocols")
        lines = [f"- **Sample protocol: {name}** (`--protocol`): {meaning}."]
    else:
        differ = f"- **Sample protocols differ between these cases** ({', '.join(protocols)})"
        lines = [f"{differ}: their scores are not comparable."]
    sources = sorted({_data_label(case["data"]) for case in cases if case.get("data")})
    if sources:
        lines.append(f"- Data: {'; '.join(sources)}.")
    evaluated = []
    for task in TASKS.names():
        of_task = [case for case in cases if case["task"] == task]
        if not of_task:
            continue
        counts = ", ".join(str(n) for n in sorted({case["metrics"]["n"] for case in of_task}))
        published = {(case.get("data") or {}).get("published") for case in of_task} - {None}
        filters = sorted({TASKS.get(task).describe_protocol(case["protocol"]) or ""
                          for case in of_task if case.get("protocol")} - {""})
        of = f"/{', '.join(map(str, sorted(published)))}" if published else ""
        evaluated.append(f"{task} {counts}{of}" + (f" ({'; '.join(filters)})" if filters else ""))
    lines.append("- Samples evaluated per task (of the items published in the data used): "
                 + ", ".join(evaluated) + ".")
    return lines + [""]


def _data_label(data: dict[str, Any]) -> str:
    commit = data.get("commit")
    return f"`{data['source']}` at commit `{commit[:12]}`" if commit else f"`{data['source']}`"


def _capped_markdown(cases: Sequence[dict[str, Any]]) -> list[str]:
    """One warning per task whose budget a run cut (--max-new-tokens): truncated answers, mostly ASR
    transcripts, score worse than the model would, so they must not be read as comparable."""
    caps: dict[str, set[int]] = defaultdict(set)
    for case in cases:
        if case.get("generation_capped"):
            caps[case["task"]].add(case["max_new_tokens"])
    lines = []
    for task, values in sorted(caps.items()):
        spec = TASKS.get(task)
        metric = "WER" if spec.answer == "text" else "score"
        lines.append(f"- **Generation capped at {'/'.join(map(str, sorted(values)))} new tokens** "
                     f"(`--max-new-tokens`; the task's own budget is {spec.max_new_tokens}): "
                     f"{task} {metric} is not comparable with uncapped runs.")
    return lines + [""] if lines else []


def _efficiency_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["", "## Efficiency", "",
             ("Means over the method's tasks (speed-ups: geometric means). Speed-up = same-run base prefill ÷ "
              "this prefill, per task; ideal = N·S ÷ (K·S + (N−K)·S') from the prompt tokens S, the tokens S' "
              "left after layer K and the model's N layers (– where the case files do not record N). The prefill "
              "splits into the audio encoder's share and the LLM's: pruning can only cut the LLM's."),
             "",
             ("| Model | Method | prefill ms | encoder % | LLM % | prefill speed-up | ideal | decode ms | decode tok/s "
              "| audio tok | kept | kept % |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        audio, kept = row["audio_tokens"], row["audio_kept"]
        share = 100.0 * kept / audio if audio and kept is not None else None
        encoder = row.get("encoder_share")
        encoder_pct, llm_pct = (None, None) if encoder is None else (100.0 * encoder, 100.0 * (1.0 - encoder))
        lines.append(
            f"| {row['model']} | {row['method']} | {_cell(row['prefill_ms'])} | {_cell(encoder_pct)} | "
            f"{_cell(llm_pct)} | {_cell(row['speedup'], 2)} | "
            f"{_cell(row['ideal_speedup'], 2)} | {_cell(row['decode_ms'])} | {_cell(row['decode_tokens_per_s'])} | "
            f"{_cell(audio)} | {_cell(kept)} | {_cell(share)} |"
        )
    return lines


def _retained_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    ratios = sorted({ratio for row in rows for ratio in row["retained"]})
    lines = ["", "## Accuracy retained vs base (%)", "",
             ("Σ score ÷ Σ base score × 100 over the tasks that have a base case in these results. ↓ marks a drop "
              "significant at 5 %: a seeded paired bootstrap of Σ score − Σ base score, each task resampled over the "
              "samples both cases scored (no mark without sample records).")]
    if not rows:
        return lines + ["", "No pruned case has a base case of the same (task, model)."]
    lines += ["", "| Model | Method | " + " | ".join(f"r={r:g}" for r in ratios) + " |",
              "|---|---|" + "---|" * len(ratios)]
    for row in rows:
        cells = [_cell(row["retained"].get(r)) + (" ↓" if row["significant_drop"].get(r) else "") for r in ratios]
        lines.append(f"| {row['model']} | {row['method']} {row['variant']} | " + " | ".join(cells) + " |")
    return lines


def _merged_markdown(merged: dict[str, Any]) -> list[str]:
    lines = ["", "## Merged from", ""] + [f"- `{source}`" for source in merged["sources"]]
    for dup in merged["duplicates"]:
        dropped = ", ".join(f"`{d['source']}` ({d['created']})" for d in dup["dropped"])
        lines.append(f"- {dup['case_id']}: kept `{dup['kept']['source']}` ({dup['kept']['created']}), "
                     f"{dup['rule']}; dropped {dropped}")
    return lines


def write_report(results: ResultsDir, plots: bool = True) -> dict[str, Any]:
    """summary.json and leaderboard.md (and plots/); every case file gets `vs_base`, its paired test against the
    base case of its (task, model) on the same samples (recomputed from the sample records each time)."""
    cases = results.read_cases()
    arrays = CaseArrays(results)
    comparisons = paired_comparisons(cases, arrays)
    for case in cases:
        if "vs_base" not in case or case["vs_base"] != comparisons[case["case_id"]]:
            case["vs_base"] = comparisons[case["case_id"]]
            results.write_case(case)
    merge_path = results.root / MERGE_FILE
    merged = json.loads(merge_path.read_text(encoding="utf-8")) if merge_path.is_file() else None
    mixed = mixed_settings(results.root, cases)
    summary = {"schema_version": SCHEMA_VERSION, "created": now_iso(), "leaderboard": leaderboard_rows(cases),
               "efficiency": efficiency_rows(cases), "retained": retained_rows(cases, arrays),
               "controls": control_rows(cases), "mixed_settings": mixed, "cases": cases}
    if plots:
        from .plots import write_plots  # matplotlib only when plots are asked for

        summary["plots"] = [str(p.relative_to(results.root)) for p in write_plots(cases, results.root / "plots")]
    write_json(results.root / "summary.json", summary)
    title, _, body = leaderboard_markdown(summary, merged).partition("\n\n")
    note = "\n".join([MIXED_NOTE, *(f"> - {m}" for m in mixed)])
    (results.root / "leaderboard.md").write_text("\n\n".join([title, note, body] if mixed else [title, body]),
                                                encoding="utf-8")
    return summary


def merge_newest(sources: Sequence[str | Path], out: ResultsDir) -> dict[str, Any]:
    """Copy the cases (and their sample records) of several results directories into `out`: runs of other
    machines or days, one leaderboard (merge.merge_results instead unions the samples of one sharded run).

    A case id present in several directories keeps the copy with the newest `created`; on a tie the
    directory named later wins. What was dropped is recorded in `out/merged.json` and the leaderboard."""
    if out.cases.is_dir() and any(out.cases.glob("*.json")):
        raise ValueError(f"{out.root} already holds cases: merge into an empty directory")
    chosen: dict[str, tuple[dict[str, Any], ResultsDir]] = {}
    seen: dict[str, list[dict[str, str]]] = defaultdict(list)
    for source in map(ResultsDir, sources):
        if not source.cases.is_dir():
            raise FileNotFoundError(f"not a results directory (no cases/): {source.root}")
        for case in source.read_cases():
            seen[case["case_id"]].append({"source": str(source.root), "created": case["created"]})
            current = chosen.get(case["case_id"])
            if current is None or _created(case) >= _created(current[0]):
                chosen[case["case_id"]] = (case, source)
    out.ensure()
    for case_id, (case, source) in sorted(chosen.items()):
        out.write_case(case)
        if source.sample_path(case_id).is_file():
            shutil.copyfile(source.sample_path(case_id), out.sample_path(case_id))
    duplicates = []
    for case_id, copies in sorted(seen.items()):
        if len(copies) > 1:
            kept = {"source": str(chosen[case_id][1].root), "created": chosen[case_id][0]["created"]}
            dropped = [c for c in copies if c != kept]
            tie = any(_created(d) == _created(kept) for d in dropped)
            duplicates.append({"case_id": case_id, "kept": kept, "dropped": dropped,
                               "rule": "equally new: the directory named last" if tie else "the newest"})
    merged = {"created": now_iso(), "sources": [str(Path(s)) for s in sources],
              "cases": {case_id: str(source.root) for case_id, (_, source) in sorted(chosen.items())},
              "duplicates": duplicates}
    write_json(out.root / MERGE_FILE, merged)
    return merged


def _created(case: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(case["created"])
