"""The results contract: what names a case, and the typed shape of every record, case and manifest session.

Torch-free and import-light on purpose: `marathon merge`, `marathon rescore` and `marathon report` read and
rebuild results on machines without the model stack. docs/results.md describes every field below;
tests_bench/unit/test_schema.py checks the two agree, and every record and case the runner writes is checked
against these types (`check_fields`) before it reaches disk.

Version history: 1 = the first layout (all fields below).
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, NotRequired, TypedDict, get_type_hints

SCHEMA_VERSION = 1
DEFAULT_PRUNE_LAYER = 2  # the decoder layer after which pruners drop audio tokens, unless --prune-layer says


@dataclass(frozen=True)
class CaseSpec:
    """One benchmark case: a task, a model and at most one method (a pruner at a ratio, a press, or a control)."""
    task: str
    model: str
    pruner: str = "base"
    prune_ratio: float = 0.0
    prune_layer: int = DEFAULT_PRUNE_LAYER
    press: str | None = None  # a kvpress method instead of a pruner
    compression_ratio: float = 0.0
    press_scope: str = "audio"
    press_mode: str = "query_agnostic"
    control: str | None = None  # a control condition instead of a method (marathon_lib.controls), e.g. no_audio

    @classmethod
    def from_case(cls, case: Mapping[str, Any]) -> "CaseSpec":
        """The spec back from a case JSON (rescore, merge)."""
        return cls(**{f.name: case[f.name] for f in fields(cls) if f.name in case})

    @property
    def case_id(self) -> str:
        """Reads like TAU-tiny-qwen2.5-omni-base, TAU-tiny-qwen2.5-omni-fast_v-r0.5-L2,
        HAD-tiny-qwen2.5-omni-press:snapkv-c0.5 or TAU-tiny-qwen2.5-omni-no_audio (for `-k`)."""
        if self.control is not None:
            return f"{self.task}-{self.model}-{self.control}"
        if self.press is not None:
            variant = "" if (self.press_scope, self.press_mode) == ("audio", "query_agnostic") else (
                f"-{self.press_scope}-{self.press_mode}")
            return f"{self.task}-{self.model}-press:{self.press}-c{self.compression_ratio:g}{variant}"
        base = f"{self.task}-{self.model}-{self.pruner}"
        return base if self.pruner == "base" else f"{base}-r{self.prune_ratio:g}-L{self.prune_layer}"


def is_base(case: Mapping[str, Any]) -> bool:
    """The unpruned, uncompressed case of its (task, model): the reference for speed-up and retention."""
    return case["pruner"] == "base" and case.get("press") is None and case.get("control") is None


def is_control(case: Mapping[str, Any]) -> bool:
    """A control condition (marathon_lib.controls, e.g. no_audio): compared with base, never a method."""
    return case.get("control") is not None


def method_label(case: Mapping[str, Any]) -> str:
    if is_control(case):
        return case["control"]
    if case.get("press") is not None:
        variant = "" if (case.get("press_scope"), case.get("press_mode")) == ("audio", "query_agnostic") else (
            f" {case['press_scope']}/{case['press_mode']}")
        return f"press:{case['press']} c={case['compression_ratio']:g}{variant}"
    return "base" if case["pruner"] == "base" else f"{case['pruner']} r={case['prune_ratio']:g} L{case['prune_layer']}"


# ---- one sample's record: a line of samples/<case>.jsonl ----

class RecordTiming(TypedDict):
    prefill_ms: float | None
    decode_ms: float | None
    decode_tokens_per_s: float | None
    new_tokens: int | None
    latency_ms: float | None
    compile_ms: float | None
    encoder_ms: NotRequired[float | None]
    llm_prefill_ms: NotRequired[float | None]
    encoder_ms_reused: NotRequired[bool]


class RecordTokens(TypedDict):
    input: int | None
    audio: int | None
    audio_placeholders: int | None
    audio_kept: int | None
    audio_chunks: int | None
    new: int | None


class KvStats(TypedDict):
    kv_bytes: int
    kv_bytes_uncompressed: int
    kept_per_layer: list[int]


class Scoring(TypedDict):
    parser: str
    metrics: str


class Record(TypedDict):
    sample_id: str
    audio_path: str
    target: str
    target_letter: str | None
    choices: list[str]
    letters: list[str]
    meta: dict[str, Any]
    response: str | None
    parsed: str | None
    parsed_letter: str | None
    parse_rule: str | None
    correct: bool | None
    status: Literal["ok", "invalid", "error"]
    error: str | None
    error_kind: Literal["data", "model"] | None
    timing: RecordTiming | None
    tokens: RecordTokens | None
    traceback: NotRequired[str]
    model_revision: NotRequired[str | None]
    audio_sha1: NotRequired[str | None]
    inputs_reused: NotRequired[bool]
    audio_seconds: NotRequired[float]
    decode_mode: NotRequired[str | None]
    control_audio: NotRequired[str]
    encoder_reused: NotRequired[bool]
    api: NotRequired[dict[str, Any]]
    kv: NotRequired[KvStats]
    memory: NotRequired[dict[str, int]]
    key: NotRequired[str]
    generation_key: NotRequired[str]
    scoring: NotRequired[Scoring]


# ---- one case: cases/<case>.json ----

class CaseMetrics(TypedDict):
    n: int
    n_error: int
    n_scored: int
    score_metric: str
    metrics_version: str
    parse_fail_rate: float | None
    score: float | None
    score_ci: list[float] | None
    score_ci_method: str | None
    accuracy: float | None
    accuracy_ci: list[float] | None
    balanced_accuracy: float | None
    chance: float | None
    seed_f1: NotRequired[float | None]
    seed_e2e: NotRequired[float | None]
    seed_wer: NotRequired[float | None]
    wer: NotRequired[float | None]
    wer_capped: NotRequired[float | None]
    wer_whisper: NotRequired[float | None]


class CaseTiming(TypedDict):
    prefill_ms: float | None
    prefill_ms_median: float | None
    encoder_ms: float | None
    llm_prefill_ms: float | None
    decode_ms: float | None
    decode_tokens_per_s: float | None
    latency_ms: float | None
    audio_seconds: float | None
    n_timed: int
    warmup_ms: float | None
    warmup_excluded: bool


class CaseTokens(TypedDict):
    input: float | None
    audio: float | None
    audio_kept: float | None


class CaseError(TypedDict):
    sample_id: str
    kind: Literal["data", "model"]
    error: str


class CaseData(TypedDict):
    source: str | None
    commit: str | None
    folder: str | None
    found_by: str | None
    published: int | None
    selected: int | None


class VsBase(TypedDict):
    base: str
    n_paired: int
    score: float
    base_score: float
    delta: float
    test: Literal["mcnemar_exact", "paired_bootstrap"]
    p_value: float
    significant_drop: bool
    base_only_correct: NotRequired[int]
    case_only_correct: NotRequired[int]
    delta_ci: NotRequired[list[float]]


class Case(TypedDict):
    schema_version: int
    case_id: str
    task: str
    model: str
    pruner: str
    prune_ratio: float
    prune_layer: int
    press: str | None
    compression_ratio: float
    press_scope: str
    press_mode: str
    control: str | None
    task_code: str
    category: str
    task_version: str
    parser_version: str
    created: str
    metrics: CaseMetrics
    timing: CaseTiming
    tokens: CaseTokens
    errors: list[CaseError]
    encoder_reused: int
    inputs_reused: int
    compile_ms: float
    decode_mode: str | None
    session: str | None
    unreadable_lines: int
    model_layers: int | None
    n_resumed: int
    n_rescored: int
    order: str | None
    shard: str | None
    max_new_tokens: int
    generation_capped: bool
    protocol: str | None
    data: CaseData | None
    rescored: NotRequired[str]
    merged: NotRequired[str]
    merged_from: NotRequired[list[str]]
    vs_base: NotRequired[VsBase | None]


@dataclass(frozen=True)
class CaseRun:
    """What only the run that produced a case knows (not derivable from its records). A live run fills it in;
    merge and rescore read it back from the case JSON (`from_case`), so every case field survives them."""
    session: str | None = None
    model_layers: int | None = None
    decode_mode: str | None = None
    max_new_tokens: int = 0
    generation_capped: bool = False
    protocol: str | None = None
    data: CaseData | None = None
    shard: str | None = None
    warmup_ms: float | None = None
    unreadable_lines: int = 0
    n_resumed: int = 0  # records reused without running the model (rescored ones included)
    n_rescored: int = 0
    order: str | None = None  # "sample": its records came from a sample-major pass (marathon_lib.sweep)

    @classmethod
    def from_case(cls, case: Mapping[str, Any]) -> "CaseRun":
        known = {f.name for f in fields(cls)} - {"warmup_ms"}
        return cls(**{name: case[name] for name in known if name in case},
                   warmup_ms=(case.get("timing") or {}).get("warmup_ms"))

    def case_fields(self) -> dict[str, Any]:
        """The case JSON's top-level fields from this run (warmup_ms goes into `timing`)."""
        out = asdict(self)
        del out["warmup_ms"]
        return out


# ---- manifest.json: one entry per session that wrote into the results folder ----

class ManifestDevice(TypedDict):
    requested: str
    cuda: str | None
    cpu: str
    torch_threads: int


class ManifestGit(TypedDict):
    sha: str | None
    dirty: bool | None


class Session(TypedDict):
    schema_version: int
    session: str | None
    created: str
    git: ManifestGit
    packages: dict[str, str]
    python: str
    device: ManifestDevice | str
    options: dict[str, Any]
    models: NotRequired[dict[str, dict[str, str]]]
    data: NotRequired[dict[str, Any]]


class SchemaError(ValueError):
    """A record or case about to be written does not match the contract (a programming error, not bad data)."""


def field_names(kind: type) -> tuple[frozenset[str], frozenset[str]]:
    """(required, optional) field names of one of the TypedDicts above."""
    return frozenset(kind.__required_keys__), frozenset(kind.__optional_keys__)


def check_fields(kind: type, value: Mapping[str, Any], where: str) -> None:
    """Raise SchemaError when `value` lacks a required field of `kind` or carries one `kind` does not declare."""
    required, optional = field_names(kind)
    missing, unknown = sorted(required - value.keys()), sorted(value.keys() - required - optional)
    if missing or unknown:
        raise SchemaError(f"{where}: does not match marathon_lib.schema.{kind.__name__} "
                          f"(missing {missing or 'none'}, undeclared {unknown or 'none'}): declare new fields "
                          "in marathon_lib/schema.py and docs/results.md")


def nested_types(kind: type) -> dict[str, type]:
    """The TypedDict-valued fields of `kind` (e.g. Case.metrics -> CaseMetrics), for docs and checks."""
    out = {}
    for name, hint in get_type_hints(kind).items():
        for candidate in getattr(hint, "__args__", (hint,)):
            if isinstance(candidate, type) and hasattr(candidate, "__required_keys__"):
                out[name] = candidate
    return out


RESULT_TYPES: tuple[type, ...] = (Record, RecordTiming, RecordTokens, KvStats, Scoring, Case, CaseMetrics,
                                  CaseTiming, CaseTokens, CaseError, CaseData, VsBase, Session, ManifestGit,
                                  ManifestDevice)
