"""Audio decoding (marathon_lib.audio.load_audio) and one full CaseRunner case with a stub model.

The stub AudioLM returns canned text, so the run checks the runner's bookkeeping (records, error kinds,
JSONL, case JSON) without any real model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from marathon_lib.audio import load_audio
from marathon_lib.errors import DataError
from marathon_lib.models.base import AudioLM
from marathon_lib.models.inputs import AudioSpan, Generation, ModelInputs
from marathon_lib.results import ResultsDir
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec
from marathon_lib.tasks import TASKS
from marathon_lib.timing import Timing

TARGET_SR = 16000


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


# --------------------------------------------------------------------------- load_audio

def test_stereo_44k_to_mono_16k(tmp_path: Path):
    n = 44100 * 2 + 37
    left = np.linspace(-0.5, 0.5, n, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, left], axis=1), 44100, subtype="FLOAT")
    clip = load_audio(path, TARGET_SR)
    assert clip.samples.dtype == np.float32
    assert clip.samples.ndim == 1
    assert abs(len(clip.samples) - n * TARGET_SR / 44100) <= 1
    assert clip.sampling_rate == TARGET_SR and clip.source_rate == 44100 and clip.source_channels == 2
    assert clip.seconds == pytest.approx(n / 44100, abs=1 / TARGET_SR)
    assert clip.samples.flags["C_CONTIGUOUS"]


def test_downmix_is_the_channel_mean(tmp_path: Path):
    x = sine(440, 1.0, 44100, amp=0.8)
    one_sided = tmp_path / "left_only.wav"
    sf.write(one_sided, np.stack([x, np.zeros_like(x)], axis=1), 44100, subtype="FLOAT")
    mono = load_audio(one_sided, TARGET_SR).samples
    core = mono[1000:-1000]  # away from the resampler's edges
    assert np.max(np.abs(core)) == pytest.approx(0.4, abs=0.01)  # mean, not the first channel (0.8) nor a sum

    cancelling = tmp_path / "opposite.wav"
    sf.write(cancelling, np.stack([x, -x], axis=1), 44100, subtype="FLOAT")
    assert np.max(np.abs(load_audio(cancelling, TARGET_SR).samples)) < 1e-4

    dc = tmp_path / "dc.wav"
    sf.write(dc, np.stack([np.full(8000, 0.6), np.full(8000, 0.2)], axis=1).astype(np.float32), TARGET_SR,
             subtype="FLOAT")
    np.testing.assert_allclose(load_audio(dc, TARGET_SR).samples, 0.4, atol=1e-6)


@pytest.mark.parametrize("source_sr,freq", [(44100, 1000.0), (48000, 3000.0), (22050, 440.0), (8000, 1500.0)])
def test_resampling_keeps_the_frequency(tmp_path: Path, source_sr: int, freq: float):
    path = tmp_path / f"sine_{source_sr}.wav"
    sf.write(path, sine(freq, 2.0, source_sr), source_sr, subtype="FLOAT")
    clip = load_audio(path, TARGET_SR)
    assert abs(len(clip.samples) - 2.0 * TARGET_SR) <= 1
    resolution = TARGET_SR / len(clip.samples)
    assert abs(peak_hz(clip.samples, TARGET_SR) - freq) <= resolution
    # amplitude survives too (VHQ resampler, frequency far below Nyquist)
    assert np.max(np.abs(clip.samples[2000:-2000])) == pytest.approx(0.5, abs=0.01)


def test_same_rate_mono_is_passed_through(tmp_path: Path):
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 4000).astype(np.float32)
    path = tmp_path / "mono.wav"
    sf.write(path, x, TARGET_SR, subtype="FLOAT")
    clip = load_audio(path, TARGET_SR)
    np.testing.assert_array_equal(clip.samples, x)
    assert clip.source_channels == 1


def test_flac_source(tmp_path: Path):
    path = tmp_path / "utt.flac"
    sf.write(path, sine(500, 1.0, TARGET_SR), TARGET_SR)
    clip = load_audio(path, TARGET_SR)
    assert len(clip.samples) == TARGET_SR
    assert abs(peak_hz(clip.samples, TARGET_SR) - 500) <= 1


def _corrupt(path: Path) -> None:
    path.write_bytes(os.urandom(3000))


def _truncated_header(path: Path) -> None:
    sf.write(path, sine(440, 0.5, TARGET_SR), TARGET_SR)
    path.write_bytes(path.read_bytes()[:30])


def _text(path: Path) -> None:
    path.write_text("this is not audio at all\n" * 20)


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _empty(path: Path) -> None:
    sf.write(path, np.zeros(0, dtype=np.float32), TARGET_SR)


def _nan(path: Path) -> None:
    x = sine(440, 0.5, TARGET_SR)
    x[100] = np.nan
    sf.write(path, x, TARGET_SR, subtype="FLOAT")


def _inf(path: Path) -> None:
    x = sine(440, 0.5, TARGET_SR)
    x[-1] = np.inf
    sf.write(path, x, TARGET_SR, subtype="FLOAT")


@pytest.mark.parametrize(
    "make,words",
    [
        (None, "not found"),
        (_corrupt, "decode"),
        (_truncated_header, "decode"),
        (_text, "decode"),
        (_zero_bytes, "decode"),
        (_empty, "empty"),
        (_nan, "NaN"),
        (_inf, "infinite"),
    ],
    ids=["missing", "random-bytes", "truncated-header", "text", "zero-bytes", "zero-frames", "nan", "inf"],
)
def test_bad_audio_raises_data_error_naming_the_file(tmp_path: Path, make, words: str):
    path = tmp_path / "clip_under_test.wav"
    if make is not None:
        make(path)
    with pytest.raises(DataError) as err:
        load_audio(path, TARGET_SR)
    assert str(path) in str(err.value)
    assert words in str(err.value)


def test_directory_is_not_audio(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_audio(tmp_path, TARGET_SR)


# --------------------------------------------------------------------------- a full case with a stub model

def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class _StubNet(torch.nn.Module):
    """Shaped like a decoder stack (embed_tokens, layers, norm, config) for code that inspects the model."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(8, 4)
        self.layers = torch.nn.ModuleList([torch.nn.Identity() for _ in range(4)])
        self.norm = torch.nn.Identity()
        self.config = SimpleNamespace(_commit_hash=None)


class StubLM(AudioLM):
    """No weights: prepare counts 25 audio tokens per second, generate returns canned text."""

    family = "stub"

    def __init__(self, answer: str = "B", fail: str | None = None) -> None:
        self.answer, self.fail = answer, fail  # fail: None, "always", or "long" (audio > 1 s)
        self.generate_calls: list[int] = []
        super().__init__("stub-lm", "no-checkpoint", "cpu", torch.float32, "sdpa")

    def load(self):
        return _StubNet(), None

    @property
    def sampling_rate(self) -> int:
        return TARGET_SR

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> ModelInputs:
        n_audio = max(1, int(len(audio) / TARGET_SR * 25))
        ids = torch.zeros(1, 12 + n_audio + len(prompt.split()), dtype=torch.long)
        return ModelInputs({"input_ids": ids}, (AudioSpan(5, n_audio),), len(audio) / TARGET_SR)

    def generate(self, inputs: ModelInputs, max_new_tokens: int) -> Generation:
        self.generate_calls.append(max_new_tokens)
        if self.fail == "always" or (self.fail == "long" and inputs.audio_seconds > 1.0):
            raise RuntimeError("stub model exploded")
        new = min(3, max_new_tokens)
        return Generation(self.answer, list(range(new)), Timing(7.0, 4.0, new))


TAU_CHOICES = ["Airport - airport", "Metro station - metro_station", "Urban park - park",
               "Public square - public_square"]


def build_tau_case_data(root: Path) -> Path:
    """tau_000 ok (answer B), tau_001 corrupt wav, tau_002 answer_gt not among choices, tau_003 ok (answer A),
    tau_004 ok and 1.5 s long (answer B)."""
    task = root / "TAU"
    (task / "audio").mkdir(parents=True)
    items = []
    for i, answer in enumerate(["B", "B", "Z", "A", "B"]):
        rel = f"audio/tau_{i}.wav"
        seconds = 1.5 if i == 4 else 0.5
        sf.write(task / rel, sine(300 + 100 * i, seconds, 48000), 48000)
        items.append({"path": rel, "question": "Which scene?", "choice_a": TAU_CHOICES[0],
                      "choice_b": TAU_CHOICES[1], "choice_c": TAU_CHOICES[2], "choice_d": TAU_CHOICES[3],
                      "answer_gt": answer, "scene_label": "x", "uniq_id": f"tau_{i:03d}"})
    _corrupt(task / "audio/tau_1.wav")
    (task / "acoustic_scene_task_meta.json").write_text(json.dumps(items), encoding="utf-8")
    return root


def run_case(tmp_path: Path, model: StubLM):
    root = build_tau_case_data(tmp_path / "data")
    spec = TASKS.get("TAU")
    case = CaseSpec("TAU", model.name)
    results = ResultsDir(tmp_path / "results").ensure()
    progress: list[str] = []
    summary = CaseRunner(case, spec, model, results, progress=progress.append).run(spec.samples(root))
    return summary, results, case, progress


def test_stub_case_records_every_sample(tmp_path: Path):
    model = StubLM(answer="B")
    summary, results, case, progress = run_case(tmp_path, model)

    lines = (results.sample_path(case.case_id)).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5  # one JSON line per sample, errors included
    records = {r["sample_id"]: r for r in read_jsonl(results.sample_path(case.case_id))}
    assert list(records) == [f"tau_{i:03d}" for i in range(5)]

    corrupt, outside = records["tau_001"], records["tau_002"]
    assert corrupt["status"] == "error" and corrupt["error_kind"] == "data"
    assert "tau_001" in corrupt["error"] and "tau_1.wav" in corrupt["error"]
    assert outside["status"] == "error" and outside["error_kind"] == "data"
    assert "'Z'" in outside["error"] and "item 2" in outside["error"]
    for r in (corrupt, outside):
        assert r["response"] is None and r["correct"] is None and r["timing"] is None

    ok = [records[k] for k in ("tau_000", "tau_003", "tau_004")]
    assert [r["status"] for r in ok] == ["ok"] * 3
    assert [r["correct"] for r in ok] == [True, False, True]
    assert all(r["response"] == "B" and r["parsed"] == TAU_CHOICES[1] and r["parsed_letter"] == "B" for r in ok)
    assert records["tau_000"]["target"] == TAU_CHOICES[1] and records["tau_003"]["target_letter"] == "A"
    assert records["tau_004"]["audio_seconds"] == pytest.approx(1.5, abs=1e-3)
    assert records["tau_004"]["tokens"]["audio"] == 37 and records["tau_004"]["tokens"]["audio_kept"] == 37
    assert records["tau_000"]["timing"]["prefill_ms"] == 7.0
    assert len(records["tau_000"]["audio_sha1"]) == 40

    metrics = summary["metrics"]
    assert (metrics["n"], metrics["n_error"], metrics["n_scored"]) == (5, 2, 3)
    assert metrics["accuracy"] == pytest.approx(200 / 3, abs=1e-3)
    assert metrics["parse_fail_rate"] == 0.0
    assert {(e["sample_id"], e["kind"]) for e in summary["errors"]} == {("tau_001", "data"), ("tau_002", "data")}
    assert summary["timing"]["n_timed"] == 3 and summary["timing"]["prefill_ms"] == 7.0
    assert summary["timing"]["warmup_ms"] == pytest.approx(11.0)
    assert summary["tokens"]["audio"] == pytest.approx((12 + 12 + 37) / 3, abs=1e-3)

    case_json = results.case_path(case.case_id)
    assert case_json.is_file()
    assert json.loads(case_json.read_text())["metrics"] == metrics
    # warm-up + the three usable samples; the case's own generation length was used for them
    assert model.generate_calls[1:] == [TASKS.get("TAU").max_new_tokens] * 3
    assert len(progress) == 5 and "ERROR" in progress[1]


def test_unparseable_answers_are_invalid_not_errors(tmp_path: Path):
    summary, results, case, _ = run_case(tmp_path, StubLM(answer="I am not sure."))
    records = list(read_jsonl(results.sample_path(case.case_id)))
    assert [r["status"] for r in records] == ["invalid", "error", "error", "invalid", "invalid"]
    assert summary["metrics"]["parse_fail_rate"] == 100.0 and summary["metrics"]["accuracy"] == 0.0


def test_model_error_on_one_sample_is_recorded(tmp_path: Path):
    summary, results, case, _ = run_case(tmp_path, StubLM(answer="B", fail="long"))
    records = {r["sample_id"]: r for r in read_jsonl(results.sample_path(case.case_id))}
    failed = records["tau_004"]
    assert failed["status"] == "error" and failed["error_kind"] == "model"
    assert "tau_004" in failed["error"] and "RuntimeError" in failed["error"]
    assert "stub model exploded" in failed["error"]
    assert "traceback" in failed and "stub model exploded" in failed["traceback"]
    assert records["tau_000"]["status"] == "ok" and records["tau_003"]["status"] == "ok"
    assert summary["metrics"]["n_error"] == 3 and summary["metrics"]["n_scored"] == 2
    assert ("tau_004", "model") in {(e["sample_id"], e["kind"]) for e in summary["errors"]}
    assert results.case_path(case.case_id).is_file()


def test_model_that_always_fails_is_recorded(tmp_path: Path):
    summary, results, case, _ = run_case(tmp_path, StubLM(fail="always"))
    records = list(read_jsonl(results.sample_path(case.case_id)))
    assert len(records) == 5
    assert [r["error_kind"] for r in records] == ["model", "data", "data", "model", "model"]
    assert results.case_path(case.case_id).is_file()
    assert summary["metrics"]["n_scored"] == 0


def test_token_cap_is_used_recorded_and_keyed_for_resume(tmp_path: Path):
    """--max-new-tokens cuts the task's budget (TAU: 10): samples run with it, the case records it, and the
    resume key holds the effective budget, so a cap above the budget reuses the uncapped records."""
    root, spec = build_tau_case_data(tmp_path / "data"), TASKS.get("TAU")
    samples, results = spec.samples(root), ResultsDir(tmp_path / "results").ensure()

    def run(cap: int | None) -> tuple[dict, list[int]]:
        model = StubLM(answer="B")
        case = CaseRunner(CaseSpec("TAU", model.name), spec, model, results, max_new_tokens=cap).run(samples)
        return case, model.generate_calls

    capped, calls = run(4)
    assert calls[1:] == [4, 4, 4]  # after the warm-up, the three usable samples
    assert (capped["max_new_tokens"], capped["generation_capped"], capped["n_resumed"]) == (4, True, 0)
    uncapped, calls = run(None)
    assert calls[1:] == [spec.max_new_tokens] * 3  # the capped records were not reused
    assert (uncapped["max_new_tokens"], uncapped["generation_capped"], uncapped["n_resumed"]) == (10, False, 0)
    loose, calls = run(50)
    assert calls == [] and (loose["max_new_tokens"], loose["generation_capped"], loose["n_resumed"]) == (10, False, 5)
    assert json.loads(results.case_path(loose["case_id"]).read_text())["max_new_tokens"] == 10
