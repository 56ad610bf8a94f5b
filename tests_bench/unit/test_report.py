"""Reports from hand-built case JSONs (the tiny model scores ~0, so scores here are varied on purpose):
leaderboard numbers equal the cases, best bold, efficiency and retained tables, merging, plots."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from marathon_lib.cli import main
from marathon_lib.merge import rescore
from marathon_lib.report import MERGE_FILE, merge_newest, write_report
from marathon_lib.results import ResultsDir
from marathon_lib.schema import CaseRun, CaseSpec
from marathon_lib.scoring import build_case
from marathon_lib.tables import efficiency_rows, ideal_prefill_fraction, leaderboard_rows, retained_rows
from marathon_lib.tasks import TASKS, leaderboard_columns

MODEL_A, MODEL_B = "tiny-qwen2.5-omni", "Qwen/Qwen2.5-Omni-7B"


def make_case(task: str, model: str = MODEL_A, pruner: str = "base", ratio: float = 0.0, score: float | None = 50.0,
              n: int = 100, prefill: float = 100.0, audio: float = 100.0, layers: int | None = 4,
              created: str = "2026-01-01T00:00:00+00:00") -> dict:
    """A case JSON in scoring.build_case's schema (plus model_layers), with the numbers a test needs."""
    case_id = f"{task}-{model}-{pruner}" + ("" if pruner == "base" else f"-r{ratio:g}-L2")
    spec = TASKS.get(task)
    case = {
        "schema_version": 1, "case_id": case_id, "task": task, "model": model, "pruner": pruner,
        "prune_ratio": ratio, "prune_layer": 2, "task_code": spec.code, "category": spec.category,
        "task_version": spec.version, "created": created,
        "metrics": {"n": n, "n_error": 0, "n_scored": n, "accuracy": score, "balanced_accuracy": score, "parse_fail_rate": 0.0,
                    "score": score},
        "timing": {"prefill_ms": prefill, "prefill_ms_median": prefill, "decode_ms": 50.0,
                   "decode_tokens_per_s": 20.0, "audio_seconds": 4.0, "n_timed": n, "warmup_ms": 1.0,
                   "warmup_excluded": True},
        "tokens": {"input": 200.0, "audio": audio, "audio_kept": audio - math.floor(audio * ratio)},
        "errors": [],
    }
    return case | ({"model_layers": layers} if layers else {})


def sweep() -> list[dict]:
    """Two models; model A: 10 tasks base + dart/random at 0.5; model B: 3 tasks base."""
    cases = []
    for i, task in enumerate(TASKS.names()):
        cases.append(make_case(task, score=30.0 + 5 * i, prefill=100.0))
        cases.append(make_case(task, pruner="dart", ratio=0.5, score=27.0 + 5 * i, prefill=50.0))
        cases.append(make_case(task, pruner="random", ratio=0.5, score=20.0 + 5 * i, prefill=80.0))
    cases += [make_case(t, MODEL_B, score=s) for t, s in (("TAU", 91.25), ("HAD", 12.0), ("LibriSpeech", 77.7))]
    return cases


def write_cases(root: Path, cases: list[dict]) -> ResultsDir:
    results = ResultsDir(root).ensure()
    for case in cases:
        results.write_case(case)
    return results


def table(markdown: str, heading: str | None = None) -> list[list[str]]:
    """Body rows of the first table after `heading` (or of the first table), cells stripped."""
    text = markdown.split(f"## {heading}\n", 1)[1] if heading else markdown
    lines = [line for line in text.split("\n\n## ", 1)[0].splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_leaderboard_numbers_equal_the_case_jsons(tmp_path: Path) -> None:
    cases = sweep()
    write_report(write_cases(tmp_path, cases), plots=False)
    rows = table((tmp_path / "leaderboard.md").read_text())
    assert len(rows) == 4  # (model A: base, dart r=0.5, random r=0.5) + (model B: base)
    expected = {(c["model"], "base" if c["pruner"] == "base" else f"{c['pruner']} r=0.5 L2", c["task_code"]):
                c["metrics"]["score"] for c in cases}
    for _rank, model, method, avg, *scores in rows:
        present = []
        for code, cell in zip(leaderboard_columns(), scores):
            value = expected.get((model, method, code))
            assert cell.strip("*") == ("–" if value is None else f"{value:.1f}"), (model, method, code)
            present += [] if value is None else [value]
        assert avg.split(" (")[0].strip("*") == f"{sum(present) / len(present):.1f}"
        assert avg.endswith("(3/10)") == (model == MODEL_B)
    assert [(r[1], r[2]) for r in rows] == [  # sorted by average: B 60.3, A 52.5, 49.5, 42.5
        (MODEL_B, "base"), (MODEL_A, "base"), (MODEL_A, "dart r=0.5 L2"), (MODEL_A, "random r=0.5 L2")]


def test_best_value_of_each_column_is_bold(tmp_path: Path) -> None:
    write_report(write_cases(tmp_path, sweep()), plots=False)
    rows = table((tmp_path / "leaderboard.md").read_text())
    asc = leaderboard_columns().index("ASC") + 4
    sd = leaderboard_columns().index("SD") + 4
    assert [r[asc] for r in rows if r[asc].startswith("**")] == ["**91.2**"]  # model B's TAU (91.25)
    assert [r[sd] for r in rows if r[sd].startswith("**")] == ["**65.0**"]  # model A base HAD (30 + 5·7)
    assert sum(r[3].startswith("**") for r in rows) == 1
    tied = leaderboard_rows([make_case("TAU", score=0.0), make_case("TAU", MODEL_B, score=0.0)])
    write_report(write_cases(tmp_path / "tied", [make_case("TAU", score=0.0), make_case("TAU", MODEL_B, score=0.0)]),
                 plots=False)
    assert len(tied) == 2 and "**" not in "".join(map(str, table((tmp_path / "tied" / "leaderboard.md").read_text())))


def test_efficiency_and_retained_tables(tmp_path: Path) -> None:
    cases = sweep()
    write_report(write_cases(tmp_path, cases), plots=False)
    markdown = (tmp_path / "leaderboard.md").read_text()
    # N=4, K=2, S=200, 50 of 100 audio tokens dropped: S'=150, fraction (2·200 + 2·150)/(4·200) = 0.875
    assert ideal_prefill_fraction(make_case("TAU", pruner="dart", ratio=0.5)) == pytest.approx(0.875)
    assert ideal_prefill_fraction(make_case("TAU", pruner="dart", ratio=0.5, layers=None)) is None
    efficiency = {(r["model"], r["method"]): r for r in efficiency_rows(cases)}
    dart = efficiency[(MODEL_A, "dart r=0.5 L2")]
    assert (dart["speedup"], dart["ideal_speedup"], dart["audio_kept"]) == (2.0, round(1 / 0.875, 3), 50.0)
    assert efficiency[(MODEL_A, "random r=0.5 L2")]["speedup"] == 1.25
    assert efficiency[(MODEL_B, "base")]["speedup"] == 1.0
    eff_rows = {(r[0], r[1]): r for r in table(markdown, "Efficiency")}
    # case files without the encoder split (older runs): its shares are –
    assert eff_rows[(MODEL_A, "dart r=0.5 L2")][2:] == ["50.0", "–", "–", "2.00", "1.14", "50.0", "20.0", "100.0",
                                                         "50.0", "50.0"]
    split = [make_case(task, pruner="dart", ratio=0.5, prefill=prefill) for task, prefill in (("TAU", 50.0),
                                                                                           ("HAD", 150.0))]
    for case, encoder in zip(split, (20.0, 20.0), strict=True):
        case["timing"] |= {"encoder_ms": encoder, "llm_prefill_ms": case["timing"]["prefill_ms"] - encoder}
    row = efficiency_rows(split)[0]
    assert (row["encoder_ms"], row["llm_prefill_ms"], row["encoder_share"]) == (20.0, 80.0, 0.2)  # 40 / 200 ms
    write_report(write_cases(tmp_path / "split", split), plots=False)
    split_row = table((tmp_path / "split" / "leaderboard.md").read_text(), "Efficiency")[0]
    assert split_row[3:5] == ["20.0", "80.0"]  # encoder %, LLM %

    base_sum = sum(30.0 + 5 * i for i in range(10))
    retained = {(r["model"], r["method"]): r["retained"] for r in retained_rows(cases)}
    assert retained == {(MODEL_A, "dart"): {0.5: round(100 * (base_sum - 30) / base_sum, 1)},
                        (MODEL_A, "random"): {0.5: round(100 * (base_sum - 100) / base_sum, 1)}}
    assert table(markdown, "Accuracy retained vs base (%)") == [
        [MODEL_A, "dart L2", f"{100 * (base_sum - 30) / base_sum:.1f}"],
        [MODEL_A, "random L2", f"{100 * (base_sum - 100) / base_sum:.1f}"]]


def test_leaderboard_says_when_generation_was_capped(tmp_path: Path) -> None:
    budget = TASKS.get("LibriSpeech").max_new_tokens
    capped = [make_case("LibriSpeech") | {"max_new_tokens": 64, "generation_capped": True},
              make_case("TAU") | {"max_new_tokens": 10, "generation_capped": False}]  # a cap above TAU's budget
    write_report(write_cases(tmp_path / "capped", capped), plots=False)
    markdown = (tmp_path / "capped" / "leaderboard.md").read_text()
    assert [line for line in markdown.splitlines() if "capped" in line.lower()] == [
        f"- **Generation capped at 64 new tokens** (`--max-new-tokens`; the task's own budget is {budget}): "
        "LibriSpeech WER is not comparable with uncapped runs."]
    assert len(table(markdown)) == 1  # the warning sits above the leaderboard table, which stays intact
    write_report(write_cases(tmp_path / "full", sweep()), plots=False)  # case files without the fields too
    assert "capped" not in (tmp_path / "full" / "leaderboard.md").read_text().lower()


def test_merge_keeps_the_newest_copy_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "monday", tmp_path / "tuesday"
    write_cases(old, [make_case("TAU", score=10.0, created="2026-01-05T10:00:00+00:00"),
                      make_case("HAD", score=20.0, created="2026-01-05T10:00:00+00:00")])
    (ResultsDir(old).sample_path("TAU-tiny-qwen2.5-omni-base")).write_text('{"sample_id": "old"}\n')
    write_cases(new, [make_case("TAU", score=40.0, created="2026-01-06T09:00:00+00:00"),
                      make_case("HAD", score=25.0, created="2026-01-05T10:00:00+00:00"),  # a tie with monday's
                      make_case("GTZAN", MODEL_B, score=60.0, created="2026-01-06T09:00:00+00:00")])
    (ResultsDir(new).sample_path("TAU-tiny-qwen2.5-omni-base")).write_text('{"sample_id": "new"}\n')
    merged_dir = tmp_path / "merged"
    # the older directory named last: "newest" is by `created`, not by argument order
    assert main(["report", str(new), str(old), "--out", str(merged_dir), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "TAU-tiny-qwen2.5-omni-base: in 2 directories, kept the newest (2026-01-06T09:00:00+00:00)" in printed
    assert "HAD-tiny-qwen2.5-omni-base: in 2 directories, kept equally new: the directory named last" in printed
    merged = ResultsDir(merged_dir)
    scores = {c["case_id"]: c["metrics"]["score"] for c in merged.read_cases()}
    assert scores == {"TAU-tiny-qwen2.5-omni-base": 40.0, "HAD-tiny-qwen2.5-omni-base": 20.0,
                      "GTZAN-Qwen/Qwen2.5-Omni-7B-base": 60.0}
    assert merged.read_samples("TAU-tiny-qwen2.5-omni-base") == [{"sample_id": "new"}]
    markdown = (merged_dir / "leaderboard.md").read_text()
    assert "## Merged from" in markdown and f"kept `{new}` (2026-01-06T09:00:00+00:00), the newest; dropped `{old}`" \
        in markdown
    with pytest.raises(ValueError, match="already holds cases"):
        merge_newest([old], merged)  # never mixes into an earlier merge
    assert (merged_dir / MERGE_FILE).is_file()
    assert main(["report", str(old), str(new)]) == 2  # several directories need --out
    assert "--out" in capsys.readouterr().err


def test_plots_are_readable_images(tmp_path: Path) -> None:
    from marathon_lib.plots import speedup_figure

    tasks = ("LibriSpeech", "TAU", "HAD")  # three panels and three radar axes keep rendering quick
    cases = [c for c in sweep() if c["task"] in tasks]
    cases += [make_case(t, pruner="dart", ratio=0.3, score=28.0, prefill=70.0) for t in tasks]
    summary = write_report(write_cases(tmp_path, cases))
    assert sorted(summary["plots"]) == [  # model B ran base only: no ratio plots, a polygon on the radar
        "plots/prefill_speedup_tiny-qwen2.5-omni.png", "plots/radar_task_scores.png",
        "plots/score_vs_ratio_tiny-qwen2.5-omni.png"]
    for name in summary["plots"]:
        image = imread(tmp_path / name)
        assert image.shape[0] >= 400 and image.shape[1] >= 400, name
        assert not np.all(image == image[0, 0]), f"{name} is blank"
    # the ideal line needs the model's layer count, which older case files lack
    labels = [line.get_label() for line in speedup_figure(MODEL_A, cases).axes[0].get_lines()]
    assert "ideal" in labels and {"dart", "random"} <= set(labels)
    no_layers = [case | {"model_layers": None} for case in cases if case["model"] == MODEL_A]
    assert "ideal" not in [line.get_label() for line in speedup_figure(MODEL_A, no_layers).axes[0].get_lines()]
    assert re.search(r"\| dart r=0.3 L2 \| 70.0 \|", (tmp_path / "leaderboard.md").read_text())


# --------------------------------------------------------------------------- intervals, paired tests, controls
# Cases built by scoring.build_case from sample records, as a run writes them.

def record(sample_id: str, target: str, parsed: str | None, choices=("Dog", "Cat", "Bird", "Fish"),
           response: str | None = None) -> dict:
    letters = ("A", "B", "C", "D")[: len(choices)]
    letter = dict(zip(choices, letters))
    return {"sample_id": sample_id, "audio_path": f"/data/{sample_id}.wav", "target": target, "target_letter": letter.get(target), "choices": list(choices),
            "letters": list(letters), "response": response or (letter.get(parsed) or "no idea"), "parsed": parsed,
            "parsed_letter": letter.get(parsed), "parse_rule": "exact_letter" if parsed else "invalid",
            "status": "ok" if parsed is not None else "invalid", "correct": parsed == target, "error": None,
            "error_kind": None, "audio_seconds": 4.0,
            "timing": {"prefill_ms": 100.0, "decode_ms": 10.0, "decode_tokens_per_s": 50.0, "new_tokens": 1},
            "tokens": {"input": 200, "audio": 100, "audio_kept": 100, "new": 1}}


def run_case(results: ResultsDir, spec: CaseSpec, records: list[dict], created: str | None = None) -> dict:
    results.ensure()
    results.sample_path(spec.case_id).write_text("".join(json.dumps(r) + "\n" for r in records))
    case = build_case(spec, TASKS.get(spec.task), records, CaseRun(warmup_ms=1.0, model_layers=4))
    if created:
        case["created"] = created
    results.write_case(case)
    return case


def choice_records(n_right: int, n_wrong: int, prefix: str = "s", start: int = 0) -> list[dict]:
    """Samples start.. : the first n_right answered right, the next n_wrong wrong (two balanced classes)."""
    out = []
    for i in range(start, start + n_right + n_wrong):
        target = ("Dog", "Cat")[i % 2]
        out.append(record(f"{prefix}{i}", target, target if i - start < n_right else ("Cat", "Dog")[i % 2]))
    return out


def test_intervals_show_in_case_json_summary_and_leaderboard(tmp_path: Path) -> None:
    results = ResultsDir(tmp_path)
    case = run_case(results, CaseSpec("TAU", MODEL_A), choice_records(60, 40))
    metrics = case["metrics"]
    low, high = metrics["score_ci"]
    assert low < metrics["score"] < high and metrics["score_ci_method"] == "bootstrap"
    assert metrics["accuracy_ci"][0] < metrics["accuracy"] < metrics["accuracy_ci"][1]
    summary = write_report(results, plots=False)
    row = summary["leaderboard"][0]
    assert row["ci_half_width"]["ASC"] == pytest.approx((high - low) / 2, abs=1e-3)
    markdown = (tmp_path / "leaderboard.md").read_text()
    cell = table(markdown)[0][4 + leaderboard_columns().index("ASC")]
    assert cell == f"{metrics['score']:.1f} ± {(high - low) / 2:.1f}"
    assert f"| {metrics['score']:.1f} ± {(high - low) / 2:.1f} |" in markdown.split("## Cases", 1)[1]
    assert "balanced accuracy" in markdown and "± is half the 95 % interval" in markdown


def test_paired_test_marks_significant_drops(tmp_path: Path) -> None:
    """Same 100 samples: base right on 70; dart r=0.5 loses 25 of them (McNemar p << 0.05), random r=0.5 loses 3
    and gains 2 (no significant change). The mark reaches the case JSON, summary.json and leaderboard.md."""
    results = ResultsDir(tmp_path)
    base = choice_records(70, 30)
    run_case(results, CaseSpec("TAU", MODEL_A), base)
    dart = [record(r["sample_id"], r["target"], ("Cat", "Dog")[i % 2] if 20 <= i < 45 else r["parsed"])
            for i, r in enumerate(base)]
    noisy = [record(r["sample_id"], r["target"], r["target"] if i in (70, 71) else
                    ("Cat", "Dog")[i % 2] if i in (0, 1, 2) else r["parsed"]) for i, r in enumerate(base)]
    run_case(results, CaseSpec("TAU", MODEL_A, "dart", 0.5, 2), dart)
    run_case(results, CaseSpec("TAU", MODEL_A, "random", 0.5, 2), noisy)
    summary = write_report(results, plots=False)
    cases = {c["case_id"]: c for c in results.read_cases()}
    dart_vs = cases["TAU-tiny-qwen2.5-omni-dart-r0.5-L2"]["vs_base"]
    assert dart_vs["test"] == "mcnemar_exact" and dart_vs["n_paired"] == 100
    assert (dart_vs["base_only_correct"], dart_vs["case_only_correct"]) == (25, 0)
    assert dart_vs["p_value"] < 1e-6 and dart_vs["significant_drop"] and dart_vs["delta"] < 0
    random_vs = cases["TAU-tiny-qwen2.5-omni-random-r0.5-L2"]["vs_base"]
    assert (random_vs["base_only_correct"], random_vs["case_only_correct"]) == (3, 2)
    assert random_vs["p_value"] == pytest.approx(1.0) and not random_vs["significant_drop"]
    assert cases["TAU-tiny-qwen2.5-omni-base"]["vs_base"] is None
    assert {c["case_id"]: c["vs_base"] for c in summary["cases"]} == {k: c["vs_base"] for k, c in cases.items()}
    retained = {r["method"]: r for r in summary["retained"]}
    assert retained["dart"]["significant_drop"] == {0.5: True}
    assert retained["random"]["significant_drop"] == {0.5: False}
    markdown = (tmp_path / "leaderboard.md").read_text()
    rows = {r[1]: r for r in table(markdown, "Accuracy retained vs base (%)")}
    assert rows["dart L2"][2].endswith(" ↓") and not rows["random L2"][2].endswith("↓")
    case_rows = {r[0]: r for r in table(markdown, "Cases")}
    assert case_rows["TAU-tiny-qwen2.5-omni-dart-r0.5-L2"][5] == "-25.0 (p < 0.001) ↓"
    assert case_rows["TAU-tiny-qwen2.5-omni-random-r0.5-L2"][5] == "-1.0 (p 1.000)"
    assert case_rows["TAU-tiny-qwen2.5-omni-base"][5] == "–"


def test_asr_drop_is_tested_by_paired_bootstrap(tmp_path: Path) -> None:
    results = ResultsDir(tmp_path)
    refs = [f"the cat sat on the mat number {i}" for i in range(40)]
    base = [record(f"u{i}", ref, ref) for i, ref in enumerate(refs)]
    worse = [record(f"u{i}", ref, ref if i % 2 else "the dog") for i, ref in enumerate(refs)]
    run_case(results, CaseSpec("LibriSpeech", MODEL_A), base)
    run_case(results, CaseSpec("LibriSpeech", MODEL_A, "frame", 0.9, 2), worse)
    write_report(results, plots=False)
    vs_base = ResultsDir(tmp_path).read_cases()[1]["vs_base"]
    assert vs_base["test"] == "paired_bootstrap" and vs_base["significant_drop"]
    assert vs_base["delta_ci"][1] < 0 and vs_base["p_value"] < 0.05


def test_press_cases_get_their_own_retained_rows(tmp_path: Path) -> None:
    results = ResultsDir(tmp_path)
    base = choice_records(50, 50)
    run_case(results, CaseSpec("HAD", MODEL_A), base)
    run_case(results, CaseSpec("HAD", MODEL_A, press="snapkv", compression_ratio=0.5), base)
    summary = write_report(results, plots=False)
    assert [(r["method"], r["variant"], r["retained"]) for r in summary["retained"]] == [
        ("press:snapkv", "", {0.5: 100.0})]


def test_control_cases_have_their_own_section(tmp_path: Path) -> None:
    """no_audio is not a method: not ranked, not in efficiency or retained; its section shows it beside base and
    chance, with the paired test."""
    results = ResultsDir(tmp_path)
    run_case(results, CaseSpec("RACE", MODEL_A), choice_records(80, 20))
    control = run_case(results, CaseSpec("RACE", MODEL_A, control="no_audio"), choice_records(45, 55))
    assert control["case_id"] == "RACE-tiny-qwen2.5-omni-no_audio" and control["control"] == "no_audio"
    summary = write_report(results, plots=False)
    assert [(r["model"], r["method"]) for r in summary["leaderboard"]] == [(MODEL_A, "base")]
    assert [r["method"] for r in summary["efficiency"]] == ["base"] and summary["retained"] == []
    (row,) = summary["controls"]
    assert (row["task"], row["score"], row["base_score"], row["chance"]) == ("RACE", 45.0, 80.0, 25.0)
    assert row["vs_base"]["significant_drop"] and row["vs_base"]["base_only_correct"] == 35
    markdown = (tmp_path / "leaderboard.md").read_text()
    (cells,) = table(markdown, "Answerable without audio (controls)")
    assert cells[:3] == [MODEL_A, "no_audio", "RACE (SCR)"] and cells[3].startswith("45.0 ± ")
    assert cells[5] == "25.0" and cells[6].endswith("↓")


def test_paper_columns_are_labelled_and_never_the_headline(tmp_path: Path) -> None:
    results = ResultsDir(tmp_path)
    records = choice_records(5, 3) + [record("x", "Dog", None, response="xyz")]
    case = run_case(results, CaseSpec("RACE", MODEL_A), records)
    write_report(results, plots=False)
    markdown = (tmp_path / "leaderboard.md").read_text()
    (row,) = table(markdown, "For comparison with the paper (not the headline)")
    assert row == [case["case_id"], f"{case['metrics']['seed_f1']:.1f}", f"{case['metrics']['seed_e2e']:.1f}"]
    assert case["metrics"]["score"] == case["metrics"]["accuracy"] != case["metrics"]["seed_f1"]


def test_rescore_keeps_created_and_merges_pick_by_it(tmp_path: Path) -> None:
    """A rescored old run keeps its creation time (and says when it was rescored), so it never wins the newest-case
    rule of a merge over a newer run."""
    old, new = ResultsDir(tmp_path / "old"), ResultsDir(tmp_path / "new")
    run_case(old, CaseSpec("TAU", MODEL_A), choice_records(10, 10), created="2026-01-01T00:00:00+00:00")
    run_case(new, CaseSpec("TAU", MODEL_A), choice_records(15, 5), created="2026-02-01T00:00:00+00:00")
    (case,) = rescore(old)
    assert case["created"] == "2026-01-01T00:00:00+00:00" and case["rescored"] > "2026-02-01"
    assert old.read_cases()[0]["created"] == "2026-01-01T00:00:00+00:00"
    merged = merge_newest([new.root, old.root], ResultsDir(tmp_path / "merged"))
    assert merged["cases"]["TAU-tiny-qwen2.5-omni-base"] == str(new.root)


def misplaced_texts(fig, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Text artists the figure draws (titles, axis and tick labels, legend entries) whose box leaves the canvas
    or overlaps another drawn text. Text.draw is recorded: tick labels outside an axis's view exist but are
    never drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    drawn: list[Text] = []
    draw = Text.draw

    def record(text: Text, renderer) -> None:
        draw(text, renderer)
        if text.get_visible() and text.get_text().strip():
            drawn.append(text)

    canvas = FigureCanvasAgg(fig)
    with monkeypatch.context() as patch:
        patch.setattr(Text, "draw", record)
        canvas.draw()
    assert drawn, "nothing drawn"
    renderer, box = canvas.get_renderer(), fig.bbox
    extents = [(text.get_text(), text.get_window_extent(renderer)) for text in drawn]
    wrong = [f"{label!r} at {extent.bounds} leaves the canvas {box.bounds}" for label, extent in extents
             if extent.x0 < box.x0 - 1 or extent.y0 < box.y0 - 1 or extent.x1 > box.x1 + 1 or extent.y1 > box.y1 + 1]
    for i, (label, extent) in enumerate(extents):
        wrong += [f"{label!r} overlaps {other!r}" for other, other_extent in extents[i + 1:]
                  if extent.shrunk(0.95, 0.9).overlaps(other_extent.shrunk(0.95, 0.9))]
    return wrong


def test_every_plot_keeps_its_text_inside_the_figure_and_names_its_units(monkeypatch: pytest.MonkeyPatch) -> None:
    from marathon_lib.plots import METHOD_STYLES, report_figures

    long_model = "some-organisation/an-audio-language-model-with-a-very-long-name-7B-instruct"
    cases = sweep() + [make_case(t, long_model, score=s) for t, s in (("TAU", 80.0), ("HAD", 60.0),
                                                                      ("LibriSpeech", 40.0))]
    cases += [make_case(t, pruner=p, ratio=r, score=40.0 - 30 * r) for t in ("TAU", "HAD")
              for p in ("frame", "fast_v") for r in (0.5, 0.9)]
    figures = report_figures(cases)
    assert sorted(figures) == ["prefill_speedup_tiny-qwen2.5-omni.png", "radar_task_scores.png",
                               "score_vs_ratio_tiny-qwen2.5-omni.png"]
    for name, fig in figures.items():
        assert misplaced_texts(fig, monkeypatch) == [], name
    score = figures["score_vs_ratio_tiny-qwen2.5-omni.png"]
    assert "%" in score._supylabel.get_text() and "fraction of audio tokens" in score._supxlabel.get_text()
    assert "× base" in figures["prefill_speedup_tiny-qwen2.5-omni.png"]._supylabel.get_text()
    # a method has one colour in every figure; a model one colour on the radar and in its own figures' titles
    for fig in (figures["score_vs_ratio_tiny-qwen2.5-omni.png"], figures["prefill_speedup_tiny-qwen2.5-omni.png"]):
        for line in fig.axes[0].get_lines():
            if line.get_label() in METHOD_STYLES:
                assert line.get_color() == METHOD_STYLES[line.get_label()]["color"]
    radar_colour = {line.get_label().split(" (avg")[0]: line.get_color()
                    for line in figures["radar_task_scores.png"].axes[0].get_lines()}
    assert len(set(radar_colour.values())) == 3
    assert figures["score_vs_ratio_tiny-qwen2.5-omni.png"]._suptitle.get_color() == radar_colour[MODEL_A]
