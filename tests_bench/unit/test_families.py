"""Native transformers families of the model zoo (Qwen2-Audio, Audio Flamingo 3, Voxtral, Phi-4-multimodal,
Granite-speech, Qwen3-Omni thinker, Gemma-3n), each on its real tiny checkpoint (real class, processor, feature
extractor and prompt format; random weights), on both supported transformers versions (5.2 and 5.2x).

Per family:
* the audio spans are exactly the runs of `input_ids == <the config's audio token id>`, and their length follows
  the family's tokens-per-second rule (docs/models.md, "Audio tokens per family");
* audio longer than the family's window is split into audio items or rejected with a clear error, and a
  truncating feature extractor is detected: never a silent truncation;
* ratio 0 is bit-identical (logits and tokens) with the PruneHook installed and armed vs no hook, and at r=0.5
  decoding on the pruned cache equals recomputing prompt + generated tokens with the same drop;
* FastV's one-row attention is the eager attention the model computes (fused qkv, q/k norms, partial or
  interleaved rotary, Granite's attention multiplier, Gemma-3n's AltUp);
* two tasks (TAU, HAD) x base and DART r=0.5 through `CaseRunner` write records and case files whose metrics
  are present and whose tokens keep audio - floor(audio * 0.5);
* `shape:<hub id>` entries are the real configs with random weights (parameter counts on the meta device).
Audio is short synthetic numpy audio made here; models are loaded once per module.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fixtures.tiny import TinyModels
from marathon_lib.errors import DataError
from marathon_lib.models import FAMILIES, MODEL_TYPES, MODELS, AudioLM, checkpoint_of, load_model, resolve_model
from marathon_lib.models.inputs import find_audio_spans, span_positions
from marathon_lib.paths import cache_root
from marathon_lib.pruning import PRUNERS, PruneHook
from marathon_lib.results import ResultsDir
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec
from marathon_lib.tasks import TASKS
from marathon_lib.textstack import family_limit_refusal

SR = 16000
K = 2
NEW_TOKENS = 3
ATOL = 1e-4


def whisper_tokens(n_samples: int) -> int:
    """Whisper-encoder families: m valid mel frames (hop 160) -> conv stride 2 -> pool 2."""
    frames = math.ceil(n_samples / 160)
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1


@dataclass(frozen=True)
class Family:
    name: str  # registered tiny model
    spans: Callable[[int], list[int]]  # samples of one clip -> expected placeholder run lengths
    content: Callable[[int], int]  # samples -> expected tokens.audio
    long_seconds: float  # a clip longer than the family's window (split or rejected)
    window_seconds: float | None  # the window a split respects


def _qwen2_audio_spans(n: int) -> list[int]:
    chunks = np.array_split(np.zeros(n), math.ceil(n / (30 * SR))) if n > 30 * SR else [np.zeros(n)]
    return [whisper_tokens(len(c)) for c in chunks]


def _phi4_tokens(n: int) -> int:
    """80-mel frames (400-sample window, 160 hop), then 8x compression."""
    return math.ceil(((n - 400) // 160 + 1) / 8)


def _granite_tokens(n: int) -> int:
    """80-mel frames (hop 160) stacked in pairs; every 15 encoder frames -> 3 projector tokens."""
    return math.ceil(((n // 160 + 1) // 2) / 15) * 3


def _qwen3_omni_tokens(n: int) -> int:
    """Whisper frames in 100-frame windows: 13 tokens per full window plus the conv/pool tail."""
    frames = math.ceil(n / 160)
    tail = ((frames % 100) - 1) // 2 + 1
    return ((tail - 1) // 2 + 1 - 1) // 2 + 1 + (frames // 100) * 13


def _gemma3n_spans(n: int) -> list[int]:
    """Fixed 188 soft tokens per <= 30 s clip (shorter clips are padded inside the model)."""
    return [188] * (math.ceil(n / (30 * SR)) if n > 30 * SR else 1)


def _one_run(tokens: Callable[[int], int]) -> Callable[[int], list[int]]:
    return lambda n: [tokens(n)]


FAMILY_SPECS = {
    # 25 tokens/s, 30 s window: longer audio -> equal <= 30 s chunks, one audio item each
    "qwen2-audio": Family("tiny-qwen2-audio", _qwen2_audio_spans, lambda n: sum(_qwen2_audio_spans(n)), 31.0, 30.0),
    # 25 tokens/s over 30 s windows of one clip, one contiguous run, up to 600 s; longer -> DataError
    "audio-flamingo-3": Family("tiny-audio-flamingo-3", _one_run(whisper_tokens), whisper_tokens, 600.5, None),
    # 375 placeholders per started 30 s chunk (padding included); content = 12.5/s = ceil(n / 1280)
    "voxtral": Family("tiny-voxtral", lambda n: [375 * math.ceil(n / (30 * SR))], lambda n: math.ceil(n / 1280),
                      31.0, None),
    # 12.5 tokens/s, no window (the encoder unfolds any length itself): one run per clip
    "phi-4-multimodal": Family("tiny-phi-4-multimodal", _one_run(_phi4_tokens), _phi4_tokens, 65.0, None),
    # 10 tokens/s, no window (block attention over any length): one run per clip
    "granite-speech": Family("tiny-granite-speech", _one_run(_granite_tokens), _granite_tokens, 65.0, None),
    # 13 tokens/s, no window and no padding (the encoder windows any length): one run per clip
    "qwen3-omni": Family("tiny-qwen3-omni", _one_run(_qwen3_omni_tokens), _qwen3_omni_tokens, 65.0, None),
    # 188 tokens per <= 30 s clip: longer audio -> equal <= 30 s clips, one audio item each
    "gemma-3n": Family("tiny-gemma-3n", _gemma3n_spans, lambda n: sum(_gemma3n_spans(n)), 31.0, 30.0),
}
FAMILY_NAMES = list(FAMILY_SPECS)
pytestmark = pytest.mark.usefixtures("one_thread")


def clip(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(params=FAMILY_NAMES)
def family(request: pytest.FixtureRequest) -> Family:
    return FAMILY_SPECS[request.param]


@pytest.fixture
def model(family: Family, tiny_models: TinyModels) -> AudioLM:
    return tiny_models.get(family.name)


def skip_unprunable(model: AudioLM) -> None:
    stack = model.text_stack()
    if stack.max_prune_layer is not None and stack.max_prune_layer < K:
        pytest.skip(f"{model.family}: {stack.limit_reason}")


def audio_token_id(model: AudioLM) -> int:
    config = model.model.config
    for holder in (config, getattr(config, "audio_config", None)):
        for field in ("audio_token_id", "audio_token_index"):
            value = getattr(holder, field, None)
            if isinstance(value, int):
                return value
    raise AssertionError(f"{type(config).__name__}: no audio token id in the config")


def runs(ids: torch.Tensor, token: int) -> list[tuple[int, int]]:
    """Maximal runs (start, length) of `token` in a 1-D id tensor, computed independently of the adapter."""
    out: list[tuple[int, int]] = []
    for pos, is_audio in enumerate((ids == token).tolist()):
        if is_audio and out and out[-1][0] + out[-1][1] == pos:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        elif is_audio:
            out.append((pos, 1))
    return out


# ------------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_is_registered_with_tiny_and_hub_entries(name: str) -> None:
    assert FAMILIES.get(name).family == name
    tiny = resolve_model(f"tiny-{name}")
    assert tiny.family == name and tiny.is_tiny
    assert any(resolve_model(n).family == name and not resolve_model(n).is_tiny for n in MODELS.names())


def test_tiny_checkpoint_directory_resolves_to_its_family(family: Family, model: AudioLM) -> None:
    directory = checkpoint_of(resolve_model(family.name), cache_root() / "models")
    model_type = json.loads((Path(directory) / "config.json").read_text())["model_type"]
    assert MODEL_TYPES[model_type] == model.family
    assert resolve_model(directory).family == model.family


# ------------------------------------------------------------------------------------------------------
# audio spans and token counts
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [2.0, 5.0])
def test_spans_are_the_audio_token_runs_with_the_family_count(family: Family, model: AudioLM, seconds: float) -> None:
    audio = clip(seconds)
    inputs = model.prepare(audio, "Which scene is this? A. park B. metro")
    ids = inputs.tensors["input_ids"][0]
    token = audio_token_id(model)
    assert [(s.start, s.length) for s in inputs.spans] == runs(ids, token)
    assert inputs.spans == find_audio_spans(inputs.tensors["input_ids"], token)
    assert [s.length for s in inputs.spans] == family.spans(len(audio))
    assert inputs.n_audio_tokens == family.content(len(audio))
    assert inputs.audio_seconds == pytest.approx(seconds)
    assert model.sampling_rate == SR
    text = model.tokenizer.decode(ids)
    assert "Which scene is this? A. park B. metro" in text  # the prompt went through the family's format


def test_long_audio_is_split_or_rejected_never_truncated(family: Family, model: AudioLM) -> None:
    audio = clip(family.long_seconds)
    if family.name == "tiny-audio-flamingo-3":
        with pytest.raises(DataError, match="600 s limit"):
            model.prepare(audio, "Describe the audio.")
        inputs = model.prepare(clip(65.0), "Describe the audio.")  # three 30 s windows, one run, no padding
        assert [s.length for s in inputs.spans] == [whisper_tokens(65 * SR)] == [1625]
        return
    inputs = model.prepare(audio, "Describe the audio.")
    assert [s.length for s in inputs.spans] == family.spans(len(audio))
    assert inputs.n_audio_tokens == family.content(len(audio))
    if family.window_seconds is not None:  # split into equal chunks within the window, one item each
        assert inputs.audio_chunks == len(inputs.spans) == math.ceil(family.long_seconds / family.window_seconds)
    else:
        assert inputs.audio_chunks == 1


def test_qwen2_audio_detects_a_truncating_extractor(tiny_models: TinyModels, monkeypatch) -> None:
    """Without the split, the 30 s extractor would cut a 31 s clip: prepare must say so, not go on."""
    model = tiny_models.get("tiny-qwen2-audio")
    monkeypatch.setattr(type(model), "max_audio_seconds", property(lambda self: 60.0))
    with pytest.raises(DataError, match="truncated"):
        model.prepare(clip(31.0), "Describe the audio.")


def test_voxtral_padding_is_not_audio_content(tiny_models: TinyModels, monkeypatch) -> None:
    from marathon_lib.models import voxtral

    model = tiny_models.get("tiny-voxtral")
    inputs = model.prepare(clip(5.0), "Describe the audio.")
    assert inputs.n_placeholder_tokens == 375 and inputs.n_audio_tokens == 63  # 5 s of a 30 s chunk
    ids = inputs.tensors["input_ids"][0].tolist()
    # <s> [INST] [BEGIN_AUDIO] [AUDIO] x 375 text [/INST]: the mistral-common v11 instruct layout
    assert ids[:3] == [1, 3, 25] and ids[3:378] == [24] * 375 and ids[-1] == 4 and 24 not in ids[378:]
    assert inputs.tensors["input_features"].shape == (1, 128, 3000)
    monkeypatch.setattr(voxtral, "MAX_AUDIO_SECONDS", 10.0)
    with pytest.raises(DataError, match="limit"):
        model.prepare(clip(11.0), "Describe the audio.")


# ------------------------------------------------------------------------------------------------------
# the prune hook on each family
# ------------------------------------------------------------------------------------------------------
def generate_raw(model: AudioLM, tensors: dict[str, torch.Tensor]) -> Any:
    tok = model.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.inference_mode():
        return model.model.generate(**tensors, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                                    temperature=None, top_p=None, top_k=None, output_logits=True,
                                    return_dict_in_generate=True, pad_token_id=pad)


def cache_lengths(out: Any) -> list[int]:
    cache = getattr(out, "cache", None)
    cache = out.past_key_values if cache is None else cache
    return [0 if layer.keys is None else int(layer.keys.shape[-2]) for layer in cache.layers]


def test_ratio_zero_is_bit_identical_with_the_hook(model: AudioLM) -> None:
    skip_unprunable(model)
    inputs = model.prepare(clip(3.0, seed=1), "Which scene is this?")
    positions = span_positions(inputs.spans)
    base = generate_raw(model, inputs.tensors)
    base_generation = model.generate(inputs, NEW_TOKENS)
    for name in ("dart", "fast_v"):
        with PruneHook(model.text_stack(), K, PRUNERS.get(name), 0.0) as hook:
            with hook.armed(positions):
                hooked = generate_raw(model, inputs.tensors)
                hooked_generation = model.generate(inputs, NEW_TOKENS)
            assert int(hook.last_kept_audio.numel()) == positions.numel()
        assert torch.equal(hooked.sequences, base.sequences), name
        assert all(torch.equal(a, b) for a, b in zip(hooked.logits, base.logits, strict=True)), name
        assert hooked_generation.new_token_ids == base_generation.new_token_ids, name


@pytest.mark.parametrize("pruner", ["dart", "fast_v"])
def test_pruned_decode_equals_recompute_with_the_same_drop(model: AudioLM, pruner: str) -> None:
    skip_unprunable(model)
    inputs = model.prepare(clip(3.0, seed=2), "Which scene is this?")
    positions = span_positions(inputs.spans)
    n_audio = positions.numel()
    dropped = math.floor(n_audio * 0.5)
    stack = model.text_stack()
    with PruneHook(stack, K, PRUNERS.get(pruner), 0.5) as hook:
        with hook.armed(positions):
            run = generate_raw(model, inputs.tensors)
        kept = hook.last_kept_audio.clone()
        assert kept.numel() == n_audio - dropped
        prompt_len = inputs.n_input_tokens
        n_layers = len(stack.layers)
        total = prompt_len + NEW_TOKENS - 1
        shared = int(getattr(model.model.config.get_text_config(decoder=True), "num_kv_shared_layers", 0) or 0)
        expected = [total] * K + [total - dropped] * (n_layers - K)
        # Gemma-3n's last layers reuse an earlier layer's cache and hold none of their own
        assert cache_lengths(run) == expected[: n_layers - shared] + [0] * shared
        tensors = dict(inputs.tensors)
        tensors["input_ids"] = run.sequences[:, :-1]
        tensors["attention_mask"] = torch.ones_like(tensors["input_ids"])
        with torch.inference_mode(), hook.armed(positions, None, forced_audio_keep=kept):
            recomputed = model.model(**tensors, use_cache=True)
    diff = float((recomputed.logits[0, -1] - run.logits[-1][0]).abs().max())
    assert diff <= ATOL, f"{pruner}: decode on the pruned cache vs recompute max diff {diff}"
    base = generate_raw(model, inputs.tensors)
    assert float((base.logits[0][0] - run.logits[0][0]).abs().max()) > 1e-6, "pruning changed nothing"


# ------------------------------------------------------------------------------------------------------
# benchmark cases through CaseRunner
# ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_root() -> Path:
    from marathon_lib.synthetic import ensure_synthetic_datasets

    return ensure_synthetic_datasets(cache_root() / "data", seconds=6.0, samples_per_task=3, seed=0)  # shared


# ids are the leaderboard codes: `-k "qwen and TAU"` must keep selecting only the benchmark case
@pytest.mark.parametrize("task", ["TAU", "HAD"], ids=["ASC", "SD"])
def test_cases_write_results_and_keep_the_budget(family: Family, model: AudioLM, data_root: Path,
                                                 tmp_path: Path, task: str) -> None:
    skip_unprunable(model)
    spec = TASKS.get(task)
    samples = spec.samples(data_root, 2)
    results = ResultsDir(tmp_path / "results").ensure()
    for pruner, ratio in (("base", 0.0), ("dart", 0.5)):
        case = CaseSpec(task, family.name, pruner, ratio, K)
        hook = None if pruner == "base" else PruneHook(model.text_stack(), K, PRUNERS.get(pruner), ratio)
        if hook is not None:
            hook.install()
        try:
            summary = CaseRunner(case, spec, model, results, hook=hook, seed=0).run(samples)
        finally:
            if hook is not None:
                hook.remove()
        assert not summary["errors"], summary["errors"]
        saved = json.loads(results.case_path(case.case_id).read_text())
        assert saved["case_id"] == case.case_id and saved["model"] == family.name
        for key in ("score", "score_ci", "accuracy", "seed_f1", "seed_e2e", "parse_fail_rate", "n"):
            assert key in saved["metrics"], (key, saved["metrics"])
        assert saved["metrics"]["n"] == len(samples)
        records = results.read_samples(case.case_id)
        assert [r["sample_id"] for r in records] == [s.sample_id for s in samples]
        for record, sample in zip(records, samples, strict=True):
            assert record["status"] in ("ok", "invalid") and record["timing"]["new_tokens"] >= 1
            tokens = record["tokens"]
            inputs, _ = CaseRunner(case, spec, model, results).inputs_for(sample)
            assert tokens["audio"] == inputs.n_audio_tokens == family.content(round(inputs.audio_seconds * SR))
            # the budget applies to the audio content (Voxtral's padding placeholders are kept like text)
            placeholders = inputs.n_placeholder_tokens
            assert tokens["audio_placeholders"] == placeholders >= tokens["audio"]
            assert tokens["audio_kept"] == tokens["audio"] - math.floor(tokens["audio"] * ratio)


def test_no_audio_control_is_the_same_prompt_without_audio(family: Family, model: AudioLM, data_root: Path,
                                                          tmp_path: Path) -> None:
    """The no_audio control on every native family: the prompt's token ids are the base prompt's with the audio
    (placeholders, their markers and item labels, whitespace around them) removed, and the case runs like any
    other."""
    spec = TASKS.get("TAU")
    samples = spec.samples(data_root, 2)
    results = ResultsDir(tmp_path / "results").ensure()
    case = CaseSpec("TAU", family.name, control="no_audio")
    runner = CaseRunner(case, spec, model, results, seed=0)
    for sample in samples:
        without, _ = runner.inputs_for(sample)
        with_audio, _ = CaseRunner(CaseSpec("TAU", family.name), spec, model, results).inputs_for(sample)
        assert without.spans == () and without.n_audio_tokens == 0 and without.audio_seconds == 0.0
        assert without.notes["control_audio"] == "none"
        kept, full = without.tensors["input_ids"][0].tolist(), with_audio.tensors["input_ids"][0].tolist()
        removed = _subsequence_rest(kept, full)
        assert removed is not None, "the text-only prompt is not the audio prompt minus its audio"
        special = set(model.tokenizer.all_special_ids) | set(model.tokenizer.added_tokens_decoder)
        leftovers = model.tokenizer.decode([t for t in removed if t not in special])
        assert not re.sub(r"Audio \d+:", "", leftovers).strip(), leftovers  # Qwen2-Audio labels each audio item
        assert len(removed) >= with_audio.n_placeholder_tokens
    summary = runner.run(samples)
    assert not summary["errors"], summary["errors"]
    assert summary["case_id"] == f"TAU-{family.name}-no_audio" and summary["control"] == "no_audio"
    assert summary["tokens"]["audio"] == 0 and summary["metrics"]["n_scored"] == len(samples)
    records = results.read_samples(case.case_id)
    assert all(r["control_audio"] == "none" and r["tokens"]["audio_placeholders"] == 0 for r in records)


def _subsequence_rest(short: list[int], long: list[int]) -> list[int] | None:
    """The items of `long` left after matching `short` in order (None when `short` is not a subsequence)."""
    rest, position = [], 0
    for item in long:
        if position < len(short) and item == short[position]:
            position += 1
        else:
            rest.append(item)
    return rest if position == len(short) else None


def test_no_audio_control_sends_silence_where_the_chat_format_needs_audio(tiny_models: TinyModels) -> None:
    model = tiny_models.get("tiny-qwen2.5-omni")
    model.needs_audio_item = True
    try:
        inputs = model.prepare_without_audio("Which scene is it? A or B")
    finally:
        del model.needs_audio_item
    assert inputs.notes["control_audio"] == "1 s of silence"
    assert inputs.audio_seconds == 1.0 and inputs.n_audio_tokens == 25  # one second at 25 tokens/s


def test_no_audio_is_a_control_not_a_pruner() -> None:
    from marathon_lib.controls import CONTROLS
    from marathon_lib.pruning import METHODS

    assert "no_audio" in CONTROLS and "no_audio" not in PRUNERS and "no_audio" not in METHODS
    for name in ("api:gpt-4o-audio-preview", "lmms-lab/Aero-1-Audio-1.5B"):  # they build their own prompts
        assert "native families only" in resolve_model(name).method_refusal("base", None, "no_audio")
    assert resolve_model("tiny-gemma-3n").method_refusal("base", None, "no_audio") is None


def test_granite_mel_shim_matches_an_independent_stft() -> None:
    """The torchaudio stand-in equals transformers' numpy spectrogram with torchaudio's conventions (hann
    periodic window of 400 centred in a 512 FFT, reflect-padded centre frames, power 2, HTK filters)."""
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    from marathon_lib.models.processors import MelSpectrogram

    audio = clip(1.3, seed=3)
    shim = MelSpectrogram(sample_rate=SR, n_fft=512, win_length=400, hop_length=160, n_mels=80)
    got = shim(torch.from_numpy(audio)[None])[0].numpy()
    filters = mel_filter_bank(num_frequency_bins=257, num_mel_filters=80, min_frequency=0.0, max_frequency=SR / 2,
                              sampling_rate=SR, norm=None, mel_scale="htk")
    window = np.pad(window_function(400, "hann", periodic=True), (56, 56))  # torch.stft centres the window
    expected = spectrogram(audio.astype(np.float64), window, frame_length=512, hop_length=160, fft_length=512,
                           power=2.0, center=True, pad_mode="reflect", mel_filters=filters, mel_floor=0.0)
    assert got.shape == expected.shape == (80, len(audio) // 160 + 1)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6 * float(expected.max()))


@dataclass(frozen=True)
class RecordingFastV:
    """FastV, recording the importance vector the hook computed from layer K-1's own q/k and RoPE tables."""

    record: list
    name = "fast_v"
    needs_attention = True

    def select(self, hook: PruneHook, positions: torch.Tensor, n_keep: int, hidden: torch.Tensor) -> torch.Tensor:
        self.record.append(hook.last_query_attention().detach().clone())
        return PRUNERS.get("fast_v").select(hook, positions, n_keep, hidden)


def test_fast_v_importance_is_the_real_attention(family: Family, tiny_models: TinyModels) -> None:
    """The hook's one-row attention (fused qkv, q/k norms, partial or interleaved rotary, attention multipliers)
    equals the eager attention weights the model itself computes at layer K-1."""
    eager = tiny_models.get(family.name, "eager")
    skip_unprunable(eager)
    inputs = eager.prepare(clip(2.0, seed=4), "Which scene is this?")
    with torch.inference_mode():
        out = eager.model(**inputs.tensors, output_attentions=True)
    real = out.attentions[K - 1][0, :, -1, :].float().mean(dim=0)
    record: list = []
    with PruneHook(eager.text_stack(), K, RecordingFastV(record), 0.5) as hook:
        with torch.inference_mode(), hook.armed(span_positions(inputs.spans)):
            eager.model(**inputs.tensors)
    (importance,) = record
    assert importance.shape == real.shape == (inputs.n_input_tokens,)
    assert float((importance - real).abs().max()) <= 1e-5


def test_gemma3n_refuses_unsupported_pruning(tiny_models: TinyModels) -> None:
    """K beyond the first KV-store layer, or a prompt longer than the sliding window, would be silently wrong."""
    model = tiny_models.get("tiny-gemma-3n")
    stack = model.text_stack()
    from marathon_lib.models.gemma3n import shared_kv_by_reference

    if not shared_kv_by_reference():  # transformers 5.2: no K at all
        assert stack.max_prune_layer == 0 and type(model).prune_layer_limit(model.model.config)[0] == 0
        with pytest.raises(ValueError, match="not supported by this model.*transformers >= 5.3"):
            PruneHook(stack, 1, PRUNERS.get("dart"), 0.5)
        return
    assert (stack.max_prune_layer, stack.max_prune_length) == (2, 512)  # 6 layers; layers 4, 5 read layers 2, 3
    assert type(model).prune_layer_limit(model.model.config)[0] == 2
    with pytest.raises(ValueError, match=r"K must be in \[1, 2\].*reuse the KV cache"):
        PruneHook(stack, 3, PRUNERS.get("dart"), 0.5)
    # the prune_hook fixture skips such a case with the same reason (family_limit_refusal)
    assert "K must be in [1, 2]" in family_limit_refusal(stack, 3) and family_limit_refusal(stack, 2) is None
    inputs = model.prepare(clip(65.0), "Describe the audio.")  # 3 clips x 188 soft tokens: past the window
    assert inputs.n_input_tokens > 512 and inputs.audio_chunks == 3
    with PruneHook(stack, K, PRUNERS.get("dart"), 0.5) as hook:
        with pytest.raises(ValueError, match="cannot be pruned"), hook.armed(span_positions(inputs.spans)):
            model.generate(inputs, 1)
    assert model.generate(inputs, 1).new_token_ids  # unpruned (base) still runs


# ------------------------------------------------------------------------------------------------------
# shape:<hub id> -- the real config with random weights, counted on the meta device
# ------------------------------------------------------------------------------------------------------
SHAPE_LAYERS = {"shape:Qwen/Qwen2.5-Omni-7B": 28, "shape:Qwen/Qwen2-Audio-7B-Instruct": 32,
                "shape:nvidia/audio-flamingo-3-hf": 28, "shape:mistralai/Voxtral-Mini-3B-2507": 30}


def test_qwen_omni_7b_thinker_shape_has_the_real_parameter_count() -> None:
    from marathon_lib.models import meta_parameter_count

    entry = resolve_model("shape:Qwen/Qwen2.5-Omni-7B")
    assert entry.family == "qwen2.5-omni" and not entry.is_tiny
    n = meta_parameter_count(entry.shape)
    assert 7.6e9 <= n <= 9.0e9, n  # 8.93 B: 7.07 B language model + 0.54 B head + 0.64 B audio + 0.68 B vision


@pytest.mark.parametrize("name", sorted(SHAPE_LAYERS))
def test_shape_checkpoint_is_the_real_config_with_the_tiny_tokenizer(name: str) -> None:
    from transformers import AutoConfig, AutoTokenizer

    from marathon_lib.models import meta_parameter_count, text_layer_count
    from marathon_lib.models.shape import is_shape_checkpoint

    entry = resolve_model(name)
    directory = checkpoint_of(entry, cache_root() / "models")
    assert is_shape_checkpoint(directory) and not list(Path(directory).glob("*.safetensors"))
    assert text_layer_count(entry, cache_root() / "models") == SHAPE_LAYERS[name]
    config = AutoConfig.from_pretrained(directory)
    thinker = getattr(config, "thinker_config", config)
    text = thinker.get_text_config(decoder=True)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert text.vocab_size > 100_000 > len(tokenizer)  # real embedding sizes, tiny tokenizer ids inside them
    audio_id = next(getattr(thinker, f) for f in ("audio_token_id", "audio_token_index") if hasattr(thinker, f))
    assert audio_id == tokenizer.convert_tokens_to_ids(
        {"voxtral": "[AUDIO]", "audio-flamingo-3": "<sound>"}.get(entry.family, "<|AUDIO|>"))
    if entry.family != "qwen2.5-omni":  # (the Qwen2.5-Omni adapter loads weights only: see the report)
        model = load_model(entry, cache_root=cache_root() / "models", device="meta", dtype="bfloat16",
                           attn_implementation="sdpa")
        assert sum(p.numel() for p in model.model.parameters()) == meta_parameter_count(entry.shape)
        assert len(model.text_stack().layers) == SHAPE_LAYERS[name]


def test_every_registered_model_states_its_long_audio_handling() -> None:
    """The manifest names, per model, what happens to audio beyond its window (split, padded, refused)."""
    from marathon_lib.models import MODELS, model_policies

    policies = model_policies(MODELS.names())
    assert all(p["long_audio"] != "not stated" for p in policies.values()), policies
    assert "30 s" in policies["tiny-gemma-3n"]["long_audio"] and "600 s" in policies["tiny-audio-flamingo-3"]["long_audio"]
