"""The suite's options in one table: the pytest options (registered by `marathon_lib.pytest_plugin` before
pytest parses the command line), their validation into `RunOptions`, and the checks that need a model's
config. Bad values raise ConfigError naming the option, before any dataset is built or model is loaded."""

from __future__ import annotations

import hashlib
import importlib.util
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from .controls import check_controls
from .dataroot import DataRoot, resolve_data_root
from .errors import ConfigError
from .kv import MODES, PRESSES, SCOPES
from .schema import DEFAULT_PRUNE_LAYER
from .tasks import DEFAULT_PROTOCOL, PROTOCOLS, TASKS

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
ORDERS = ("sample", "case")  # --order (marathon_lib.sweep)

DEFAULT_PRUNE_RATIO = "0.0"
DEFAULT_COMPRESSION_RATIO = "0.5"


@dataclass(frozen=True)
class Option:
    """One command-line option: its spelling, raw type and default, and what it means."""

    flag: str
    default: Any
    help: str
    type: Callable[[str], Any] | None = None
    switch: bool = False  # a flag without a value (store_true)
    dest: str = ""  # defaults to the flag without dashes, '-' -> '_'

    @property
    def name(self) -> str:
        return self.dest or self.flag.lstrip("-").replace("-", "_")


# None as a default means "not given": build_options then applies the rule named in the help text.
SUITE_OPTIONS: tuple[Option, ...] = (
    Option("--models", "tiny-qwen2.5-omni", "comma list of model names or checkpoint dirs"),
    Option("--tasks", None, "comma list of tasks (default: every registered task)"),
    Option("--pruners", None, "comma list of pruning methods (default: base; with a --prune-ratio > 0: base and "
                              "every pruner)"),
    Option("--prune-ratio", None, "fraction of audio tokens dropped; comma list sweeps (default 0.0)"),
    Option("--prune-layer", DEFAULT_PRUNE_LAYER, "decoder layer K where pruning happens", type=int),
    Option("--sample-limit", 0, "samples per case (0 = all)", type=int),
    Option("--data-root", None, "AudioMarathon data: a folder (the release tree as downloaded, or the flat layout) "
                                "or hf://Hezep/AudioMarathon[@revision] (downloaded into the Hugging Face cache); "
                                "default: synthetic data"),
    Option("--protocol", DEFAULT_PROTOCOL, "which published items each task evaluates: full (all) or scripts (the "
                                           "original Qwen scripts' filters: HAD and VoxGender balanced with seed 42, "
                                           "the VESUS filter)"),
    Option("--results-dir", None, "results directory (default: results/run-<time>)"),
    Option("--device", None, "cpu, cuda, cuda:1 ... (default: cuda if available)"),
    Option("--dtype", "auto", "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16"),
    Option("--attn-impl", "sdpa", "sdpa, eager or flash_attention_2", dest="attn_implementation"),
    Option("--seed", 0, "seed for synthetic data and seeded methods", type=int),
    Option("--synthetic-seconds", 60.0, "length of each synthetic clip", type=float),
    Option("--synthetic-samples", 3, "synthetic samples per task", type=int),
    Option("--shard", None, "i/n: run this shard of every case's samples (Slurm arrays)"),
    Option("--baseline", None, "baseline JSON (marathon baseline): fail cases that regress"),
    Option("--max-score-drop", None, "allowed score drop in points (default: one-sided Wilson lower bound at the "
                                     "case's n)", type=float),
    Option("--max-slowdown", None, "allowed prefill/decode slowdown ratio, e.g. 1.2", type=float),
    Option("--min-retained", None, "pruned/press cases must keep this %% of the same run's base score", type=float),
    Option("--presses", None, "comma list of kvpress methods (knorm, snapkv, tova, ...)"),
    Option("--compression-ratio", None, "fraction of KV entries evicted; comma list sweeps (default 0.5)"),
    Option("--press-scope", "audio", "audio (only audio entries scored/evicted) or all"),
    Option("--press-mode", "query_agnostic", "query_agnostic (kvpress protocol) or query_aware"),
    Option("--decode", "eager", "eager (HF generate), static (static per-layer KV cache) or compiled (that cache, "
                                "torch.compile'd step; compiles once per cache bucket, reported as compile_ms)"),
    Option("--max-new-tokens", 0, "cap every task's new-token budget (0 = each task's own; capped ASR WER is not "
                                  "comparable)", type=int),
    Option("--reuse-audio-encoder", False, "compute each sample's audio-encoder output once per model and reuse it "
                                           "in every case (records say encoder_reused: their prefill time then "
                                           "excludes the encoder)", switch=True),
    Option("--order", "sample", "sample: the cases of one (task, model) run sample by sample, every method and ratio "
                                "back to back on one sample's inputs (prepared once, encoded once with "
                                "--reuse-audio-encoder); case: each case over all its samples in turn"),
    Option("--controls", None, "comma list of control cases beside the methods, off by default: no_audio (the same "
                               "prompt with the audio removed)"),
    Option("--trust-remote-code", False, "allow models whose code comes from their hub repository (Aero-1, "
                                         "Baichuan-Omni, Kimi-Audio)", switch=True),
)
OPTION_FLAGS = {option.name: option.flag for option in SUITE_OPTIONS}


def add_options(add: Callable[..., Any], names: Sequence[str] | None = None, **defaults: Any) -> None:
    """Declare table options through `add` (pytest's `group.addoption` or argparse's `add_argument`: one
    spelling and help everywhere); `defaults` overrides a default for one command (e.g. a benchmark's ratios)."""
    chosen = [o for o in SUITE_OPTIONS if names is None or o.name in names]
    missing = set(names or ()) - {o.name for o in chosen}
    if missing:
        raise ValueError(f"not in the option table: {sorted(missing)}")
    for option in chosen:
        default = defaults.get(option.name, option.default)
        if option.switch:
            add(option.flag, dest=option.name, action="store_true", default=default, help=option.help)
        else:
            add(option.flag, dest=option.name, default=default, type=option.type, help=option.help)


def split_list(value: str | None, option: str) -> list[str]:
    """Comma list -> items in order, each once. An empty item ('a,,b') is refused: it is a typo, not a value."""
    if value is None or not value.strip():
        return []
    items = [item.strip() for item in value.split(",")]
    if "" in items:
        raise ConfigError(f"{option}: empty item in {value!r} (remove the extra comma)")
    return list(dict.fromkeys(items))


def parse_ratios(value: str, option: str = "--prune-ratio") -> list[float]:
    """Ratios in [0, 1), each once (0.5 and 0.50 are one ratio)."""
    ratios = []
    for item in split_list(value, option):
        try:
            ratio = float(item)
        except ValueError:
            raise ConfigError(f"{option}: {item!r} is not a number") from None
        if not 0.0 <= ratio < 1.0:
            raise ConfigError(f"{option}: {ratio} is outside [0, 1): it is the fraction of audio tokens dropped")
        ratios.append(ratio)
    if not ratios:
        raise ConfigError(f"{option}: give at least one value, e.g. 0.5 or 0.1,0.5,0.9")
    return list(dict.fromkeys(ratios))


@dataclass(frozen=True)
class RunOptions:
    models: list[str]
    tasks: list[str]
    pruners: list[str]
    prune_ratios: list[float]
    prune_layer: int
    sample_limit: int | None
    data_root: DataRoot | None  # None: the synthetic datasets
    results_dir: Path
    device: str
    dtype: str
    attn_implementation: str
    seed: int
    synthetic_seconds: float
    synthetic_samples: int
    shard: tuple[int, int] | None = None
    presses: list[str] = field(default_factory=list)
    compression_ratios: list[float] = field(default_factory=lambda: [0.5])
    press_scope: str = "audio"
    press_mode: str = "query_agnostic"
    decode: str = "eager"  # eager | static | compiled (models.decode)
    reuse_audio_encoder: bool = False  # models.reuse: encoder output computed once per sample and model
    trust_remote_code: bool = False  # hub remote code may run (Aero-1, Baichuan-Omni, Kimi-Audio)
    max_new_tokens: int | None = None  # caps every task's generation budget; None = each task's own
    controls: list[str] = field(default_factory=list)  # control cases beside the methods (marathon_lib.controls)
    baseline: Path | None = None  # regression gating (marathon_lib.gating)
    max_score_drop: float | None = None
    max_slowdown: float | None = None
    min_retained: float | None = None
    protocol: str = DEFAULT_PROTOCOL  # which published items each task evaluates (tasks.base.PROTOCOLS)
    order: str = "sample"  # sample-major or case-major execution of a sweep (marathon_lib.sweep)

    def as_manifest(self) -> dict[str, Any]:
        """The options as given (the resolved data root is the manifest's `data` block)."""
        fields = {f.name: getattr(self, f.name) for f in dataclass_fields(self)}
        fields["data_root"] = self.data_root.source if self.data_root else None
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items()}


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """"i/n" -> (i, n) with 0 <= i < n."""
    if not value:
        return None
    index, sep, count = value.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        raise ConfigError(f"--shard: {value!r} is not i/n with 0 <= i < n (e.g. 0/4)")
    return int(index), int(count)


def in_shard(case_id: str, sample_id: str, shard: tuple[int, int] | None) -> bool:
    """Stable assignment of each (case, sample) to one shard: the union of all shards is the full run."""
    if shard is None:
        return True
    digest = hashlib.sha256(f"{case_id}\0{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % shard[1] == shard[0]


def build_options(**given: Any) -> RunOptions:
    """Validate raw option values (keyed by option name, as pytest stores them); missing ones take the
    table's defaults."""
    from .models import DTYPES, MODELS, resolve_model  # the registries load torch: only when options are built
    from .models.decode import DECODE_MODES

    unknown = set(given) - set(OPTION_FLAGS)
    if unknown:
        raise TypeError(f"build_options: unknown option(s) {sorted(unknown)}")
    raw = {option.name: option.default for option in SUITE_OPTIONS} | given
    if raw["results_dir"] is None:
        raise ConfigError("--results-dir: no results directory given")

    model_names = split_list(raw["models"], "--models")
    if not model_names:
        raise ConfigError(f"--models: give at least one of {', '.join(MODELS.names())} or a checkpoint directory")
    for name in model_names:
        refusal = resolve_model(name).load_refusal(raw["trust_remote_code"])
        if refusal is not None:
            raise ConfigError(f"--models: {refusal}")
    task_names = split_list(raw["tasks"], "--tasks") or TASKS.names()
    for name in task_names:
        TASKS.get(name)
    prune_ratios = parse_ratios(raw["prune_ratio"] if raw["prune_ratio"] is not None else DEFAULT_PRUNE_RATIO)
    pruner_names = _pruners(raw["pruners"], raw["prune_ratio"], prune_ratios)
    press_names = split_list(raw["presses"], "--presses")
    for name in press_names:
        PRESSES.get(name)
    if raw["compression_ratio"] is not None and not press_names:
        raise ConfigError(f"--compression-ratio {raw['compression_ratio']}: no case uses it without --presses "
                          f"(e.g. --presses knorm,snapkv)")
    compression_ratios = parse_ratios(raw["compression_ratio"] or DEFAULT_COMPRESSION_RATIO, "--compression-ratio")
    if raw["decode"] not in DECODE_MODES:
        raise ConfigError(f"--decode: {raw['decode']!r} is not one of {', '.join(DECODE_MODES)}")
    if raw["prune_layer"] < 1:
        raise ConfigError(f"--prune-layer: {raw['prune_layer']} must be >= 1 (layer 0 would change the cache "
                          "bookkeeping)")
    if raw["sample_limit"] < 0:
        raise ConfigError(f"--sample-limit: {raw['sample_limit']} must be >= 0 (0 = all samples)")
    if raw["max_new_tokens"] < 0:
        raise ConfigError(f"--max-new-tokens: {raw['max_new_tokens']} must be >= 0 (0 = each task's own budget)")
    if raw["synthetic_seconds"] <= 0 or raw["synthetic_samples"] < 1:
        raise ConfigError("--synthetic-seconds must be > 0 and --synthetic-samples >= 1")
    device = check_device(raw["device"])
    dtype = raw["dtype"]
    if dtype == "auto":
        dtype = "float32" if device == "cpu" else "bfloat16"
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype: {dtype!r} is not one of auto, {', '.join(DTYPES)}")
    check_attention(raw["attn_implementation"], device)
    if raw["press_scope"] not in SCOPES:
        raise ConfigError(f"--press-scope: {raw['press_scope']!r} is not one of {', '.join(SCOPES)}")
    if raw["press_mode"] not in MODES:
        raise ConfigError(f"--press-mode: {raw['press_mode']!r} is not one of {', '.join(MODES)}")
    baseline = Path(raw["baseline"]) if raw["baseline"] else None
    if baseline is not None and not baseline.is_file():
        raise ConfigError(f"--baseline: {baseline} is not a file (make one with: marathon baseline RESULTS_DIR)")
    if raw["order"] not in ORDERS:
        raise ConfigError(f"--order: {raw['order']!r} is not one of {', '.join(ORDERS)}")
    if raw["protocol"] not in PROTOCOLS:
        raise ConfigError(f"--protocol: {raw['protocol']!r} is not one of {', '.join(PROTOCOLS)}")
    results_dir = check_results_dir(Path(raw["results_dir"]))
    root = None
    if raw["data_root"]:  # hf:// downloads the selected tasks here; tasks named with --tasks must all be present
        root = resolve_data_root(raw["data_root"], task_names, require_all=raw["tasks"] is not None)
    return RunOptions(
        models=model_names, tasks=task_names, pruners=pruner_names, prune_ratios=prune_ratios,
        prune_layer=raw["prune_layer"], sample_limit=raw["sample_limit"] or None, data_root=root,
        results_dir=results_dir, device=device, dtype=dtype,
        attn_implementation=raw["attn_implementation"], seed=raw["seed"],
        synthetic_seconds=raw["synthetic_seconds"], synthetic_samples=raw["synthetic_samples"],
        shard=parse_shard(raw["shard"]), presses=press_names, compression_ratios=compression_ratios,
        press_scope=raw["press_scope"], press_mode=raw["press_mode"], trust_remote_code=raw["trust_remote_code"],
        decode=raw["decode"], reuse_audio_encoder=raw["reuse_audio_encoder"],
        max_new_tokens=raw["max_new_tokens"] or None, baseline=baseline, max_score_drop=raw["max_score_drop"],
        max_slowdown=raw["max_slowdown"], min_retained=raw["min_retained"], protocol=raw["protocol"],
        controls=check_controls(split_list(raw["controls"], "--controls")), order=raw["order"],
    )


def _pruners(given: str | None, ratio_given: str | None, ratios: list[float]) -> list[str]:
    """A ratio > 0 without --pruners means "prune at this ratio": base (the reference) and every pruner.
    A ratio > 0 that no case would use is refused, never silently dropped."""
    from .pruning import METHODS, PRUNERS

    if given is None:
        return ["base", *PRUNERS.names()] if any(r > 0 for r in ratios) else ["base"]
    names = split_list(given, "--pruners") or ["base"]
    for name in names:
        if name not in METHODS:
            raise ConfigError(f"--pruners: unknown pruner {name!r}; known: {', '.join(METHODS)}")
    if ratio_given is not None and any(r > 0 for r in ratios) and not set(names) - {"base"}:
        raise ConfigError(f"--prune-ratio {ratio_given}: no case uses it, since --pruners {given!r} runs no pruner "
                          f"(add one, e.g. --pruners base,dart, or leave --pruners out to run base and every pruner)")
    return names


def check_device(device: str | None) -> str:
    """A device torch can parse and this machine has; default cuda when available, else cpu."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device}: not a device torch knows (cpu, cuda, cuda:N, mps)") from None
    if parsed.type == "cpu":
        return device
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return device
    if parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {device}: MPS is not available on this machine")
        return device
    raise ConfigError(f"--device {device}: the suite runs on cpu, cuda or mps, not {parsed.type}")


def check_attention(implementation: str, device: str) -> None:
    """An attention implementation the run can use without fetching anything (transformers would otherwise
    try to download a flash-attention kernel from the hub)."""
    if implementation not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"--attn-impl: {implementation!r} is not one of {', '.join(ATTN_IMPLEMENTATIONS)}")
    if implementation == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ConfigError("--attn-impl flash_attention_2: the flash-attn package is not installed "
                              "(pip install flash-attn, or use sdpa)")
        if not device.startswith("cuda"):
            raise ConfigError(f"--attn-impl flash_attention_2 runs on CUDA only, not --device {device}")


def check_results_dir(path: Path) -> Path:
    """A folder that exists or can be made, and can be written (probed with a temporary file)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        blocker = "is" if existing == path else f"lies under {existing}, which is"
        raise ConfigError(f"--results-dir {path}: {blocker} a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".marathon-write-probe-"):
            pass
    except OSError as err:
        raise ConfigError(f"--results-dir {path}: cannot write in {existing} ({err.strerror or err})") from None
    return path


def check_prune_layer(options: RunOptions, models_cache: Path) -> None:
    """--prune-layer must name a layer the model has (1..N-1); checked from the config, before any load."""
    if options.pruners == ["base"] or not set(options.pruners) - {"base"}:
        return
    from .models import resolve_model, text_layer_count

    for name in options.models:
        entry = resolve_model(name)
        if entry.access != "local":
            continue  # no pruner runs on API/remote-code models: their pruned cases are skipped with the reason
        layers = text_layer_count(entry, models_cache)
        if options.prune_layer >= layers:
            raise ConfigError(f"--prune-layer {options.prune_layer}: {name} has {layers} decoder layers, so K must be "
                              f"in [1, {layers - 1}]")
