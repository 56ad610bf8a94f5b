"""Run one benchmark case (task x model x method): samples -> records -> metrics -> case JSON."""

from __future__ import annotations

import hashlib
import json
import threading
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .audio import MIN_AUDIO_SECONDS, AudioClip, file_sha1, load_audio
from .errors import DataError
from .models.base import BenchModel
from .models.inputs import Generation, ModelInputs, span_positions
from .prefetch import Prefetcher
from .pruning import PruneHook
from .pruning.selectors import kept_count
from .results import ResultsDir, append_record, read_records, rewrite_records
from .schema import CaseRun, CaseSpec, Record, check_fields
from .scoring import (
    build_case,
    record_latency_ms,
    rescore_record,
    score_response,
    scoring_key,
    scoring_versions,
)
from .tasks import DEFAULT_PROTOCOL, Sample, TaskSpec

WARMUP_TOKENS = 2
PREFETCH_DEPTH = 3  # samples whose inputs are prepared ahead, in the background, while the model computes
# Processors (tokenizer state, feature extractor) are called from the prefetch thread and the main thread
PROCESSOR_LOCK = threading.Lock()


@dataclass
class Ahead:
    """Records a sample-major pass (marathon_lib.sweep) computed and wrote for one case in this session, by resume
    key, and the case's warm-up; the case then finalizes from them instead of running its samples."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    warmup_ms: float | None = None
    warmed: bool = False


def _base_record(sample: Sample) -> dict[str, Any]:
    return {
        "sample_id": sample.sample_id,
        "audio_path": str(sample.audio_path),
        "target": sample.target,
        "target_letter": sample.target_letter,
        "choices": list(sample.choices),
        "letters": list(sample.letters),
        "meta": dict(sample.meta),
        "response": None,
        "parsed": None,
        "parsed_letter": None,
        "parse_rule": None,
        "correct": None,
        "status": "error",
        "error": None,
        "error_kind": None,
        "timing": None,
        "tokens": None,
    }


class CaseRunner:
    """Runs the samples of one case through one loaded model and writes everything as it goes."""

    def __init__(
        self,
        case: CaseSpec,
        spec: TaskSpec,
        model: BenchModel,
        results: ResultsDir,
        progress: Callable[[str], None] | None = None,
        hook: PruneHook | None = None,
        seed: int = 0,
        shard: tuple[int, int] | None = None,
        press: Any = None,
        max_new_tokens: int | None = None,
        protocol: str = DEFAULT_PROTOCOL,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self.case, self.spec, self.model, self.results = case, spec, model, results
        self.protocol = protocol  # --protocol: which published items the case evaluates
        self.data = dict(data) if data else None  # where the samples came from (DataRoot.case_data)
        self.progress = progress or (lambda message: None)
        self.hook, self.seed, self.shard, self.press = hook, seed, shard, press
        self.token_cap = max_new_tokens  # --max-new-tokens; None runs each task's own budget
        self.digests: dict[str, str] = {}
        self.unreadable_lines = 0

    def saved_records(self, say: bool = True) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Records of earlier runs this case may reuse: by resume key, and by generation key (to rescore). A
        line cut off by a kill, or damaged, is said (`say`); its sample runs again."""
        unreadable: list[str] = []
        path = self.results.sample_path(self.case.case_id)
        reusable = [r for r in read_records(path, unreadable) if r.get("key") and r.get("error_kind") != "model"]
        for note in unreadable if say else ():
            self.progress(note)
            warnings.warn(note, stacklevel=3)
        self.unreadable_lines = len(unreadable)
        return {r["key"]: r for r in reusable}, {r["generation_key"]: r for r in reusable if r.get("generation_key")}

    def keys(self, sample: Sample) -> tuple[str, str]:
        """(generation key, resume key) of a sample in this case."""
        generation = self.generation_key(sample)
        return generation, scoring_key(generation, self.spec)

    def to_compute(self, samples: Sequence[Sample]) -> list[tuple[Sample, str, str]]:
        """The samples whose record must be computed (neither saved under its key nor rescorable), with keys."""
        done, by_generation = self.saved_records(say=False)
        planned = [(sample, *self.keys(sample)) for sample in samples]
        return [(s, g, k) for s, g, k in planned if k not in done and g not in by_generation]

    def run(self, samples: Sequence[Sample], ahead: Ahead | None = None,
            prefetch: int = PREFETCH_DEPTH) -> dict[str, Any]:
        """Run every sample not already recorded under the same content key; resume-safe at any kill. `ahead`:
        records a sample-major pass computed (and wrote) for this case in this session (marathon_lib.sweep)."""
        path = self.results.sample_path(self.case.case_id)
        done, by_generation = self.saved_records()
        computed = ahead.records if ahead is not None else {}
        warmup_ms, warmed = (ahead.warmup_ms, ahead.warmed) if ahead is not None else (None, False)
        planned = [(sample, *self.keys(sample)) for sample in samples]
        fresh = [s for s, g, k in planned if k not in computed and k not in done and g not in by_generation]
        prefetcher: Prefetcher[ModelInputs] | None = None
        records: list[dict[str, Any]] = []
        reused: dict[str, str] = {}  # sample id -> "resumed" | "rescored"
        try:
            for index, (sample, generation, key) in enumerate(planned, 1):
                if key in computed:  # computed in this session, sample-major: already written and said
                    records.append(computed[key])
                    continue
                record = done.get(key)
                if record is not None:
                    reused[sample.sample_id] = "resumed"
                elif generation in by_generation:  # same generation, other parser/metric versions: rescore it
                    record = rescore_record(self.spec, by_generation[generation])
                    append_record(path, record)
                    reused[sample.sample_id] = "rescored"
                else:
                    if not warmed:
                        warmup_ms, warmed = self.warmup(samples), True
                    if prefetcher is None:  # after the warm-up: it prepared the first usable sample already
                        prefetcher = self.prefetcher(fresh, prefetch)
                    record = self.fresh_record(sample, generation, key, prefetcher.take(sample))
                records.append(record)
                how = reused.get(sample.sample_id)
                self.progress(f"{self.case.case_id} [{index}/{len(samples)}] {sample.sample_id}: "
                              f"{how + ' ' if how else ''}{_brief(record)}")
        finally:
            if prefetcher is not None:
                prefetcher.close()
        rewrite_records(path, records)  # exactly one record per sample, in sample order
        case = build_case(self.case, self.spec, records, CaseRun(
            session=self.results.session,  # its settings: manifest.json's sessions
            model_layers=self.model.layer_count(),
            decode_mode=self.decode_mode(),
            max_new_tokens=self.max_new_tokens,
            # a cut budget truncates long answers (ASR transcripts): the report flags such scores
            generation_capped=self.max_new_tokens < self.spec.max_new_tokens,
            protocol=self.protocol,
            data=self.data,
            shard=f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            warmup_ms=warmup_ms,
            unreadable_lines=self.unreadable_lines,
            n_resumed=len(reused),
            n_rescored=sum(how == "rescored" for how in reused.values()),
            order="sample" if ahead is not None else "case",
        ))
        self.results.write_case(case)
        return case

    @property
    def max_new_tokens(self) -> int:
        """The generation budget samples run (and resume keys) with: the task's, cut to the run's cap."""
        return min(self.spec.max_new_tokens, self.token_cap or self.spec.max_new_tokens)

    def sample_key(self, sample: Sample) -> str:
        """Content hash of everything that determines a sample's record (resume never reuses a stale one)."""
        return scoring_key(self.generation_key(sample), self.spec)

    def generation_key(self, sample: Sample) -> str:
        """Content hash of everything that determines a sample's response (scoring versions excluded)."""
        identity = {
            "task": self.spec.name,
            "task_version": self.spec.version,
            "prompt": None if sample.error else hashlib.sha1(self.spec.prompt(sample).encode()).hexdigest(),
            "sample": [sample.sample_id, sample.target, list(sample.choices), list(sample.letters), sample.error],
            "audio_sha1": self.audio_digest(sample),
            "model": [self.case.model, self.model.revision],
            "method": [{k: v for k, v in asdict(self.case).items() if k not in ("task", "model")},
                       repr(self.hook.pruner) if self.hook else None, repr(self.press) if self.press else None,
                       self.seed],
            "generation": [self.max_new_tokens, str(self.model.dtype), self.model.attn_implementation,
                           str(self.model.device.type)],
            "protocol": self.protocol,
        }
        if self.data and self.data.get("commit"):  # a new dataset revision recomputes; the same one resumes
            identity["data_commit"] = self.data["commit"]
        if self.decode_mode() not in ("eager", None):  # eager keys stay those of runs before decode modes existed
            identity["decode"] = self.decode_mode()
        if getattr(self.model, "encoder_cache", None) is not None:  # prefill timed without the encoder on reuse
            identity["reuse_audio_encoder"] = True
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def decode_mode(self) -> str | None:
        """How new tokens are decoded: the model's mode (models.decode); press cases always run their own
        eager loop over the compressed cache; None for API models."""
        mode = getattr(self.model, "decode_mode", None)
        return "eager" if self.press is not None and mode is not None else mode

    def audio_digest(self, sample: Sample) -> str | None:
        if sample.error or not sample.audio_path.is_file():
            return None
        if sample.sample_id not in self.digests:
            self.digests[sample.sample_id] = file_sha1(sample.audio_path)
        return self.digests[sample.sample_id]

    def fresh_record(self, sample: Sample, generation: str, key: str, prepared: Future | None = None
                     ) -> dict[str, Any]:
        """Run one sample now (its inputs from `prepared`, a prefetch, when given) and append its record."""
        record = self.run_sample(sample, prepared) | {"key": key, "generation_key": generation,
                                                      "scoring": scoring_versions(self.spec)}
        check_fields(Record, record, f"{self.case.case_id} sample {sample.sample_id}")
        append_record(self.results.sample_path(self.case.case_id), record)
        return record

    def prefetcher(self, samples: Sequence[Sample], depth: int) -> Prefetcher[ModelInputs]:
        """Prepares the inputs of the next `depth` samples in the background (the no_audio control has nothing to
        prepare ahead; samples already cached or unusable by their manifest are skipped)."""
        def wanted(sample: Sample) -> bool:
            return (self.case.control is None and not sample.error
                    and self.inputs_key(sample) not in self.model.inputs_cache.entries)

        return Prefetcher(samples, lambda sample: self.prepare(sample, self.spec.prompt(sample)), depth,
                          key=lambda sample: sample.sample_id, wanted=wanted)

    def describe(self, record: Mapping[str, Any]) -> str:
        """One progress line's verdict for a record."""
        return _brief(record)

    def inputs_key(self, sample: Sample) -> tuple:
        """What the model's inputs cache keys a sample's prepared inputs on (audio content, prompt)."""
        prompt_sha1 = hashlib.sha1(self.spec.prompt(sample).encode()).hexdigest()
        if self.case.control == "no_audio":
            return ("no_audio", prompt_sha1)
        return (self.audio_digest(sample), prompt_sha1)

    def inputs_for(self, sample: Sample, prepared: Future | None = None) -> tuple[ModelInputs, bool]:
        """Decoded, resampled and processed inputs; shared by every case of this model in the session. A prefetch
        (`prepared`) supplies them when they are not cached; its DataError is this sample's data error."""
        prompt = self.spec.prompt(sample)
        key = self.inputs_key(sample)
        if self.case.control == "no_audio":
            # the audio is still decoded and checked, so a sample unusable in the base case is unusable here too
            # (paired tests)
            self.usable_audio(sample)

            def build_text_only() -> ModelInputs:
                with PROCESSOR_LOCK:
                    return self.model.prepare_without_audio(prompt)

            return self.model.inputs_cache.get_or_build(key, build_text_only)
        return self.model.inputs_cache.get_or_build(
            key, prepared.result if prepared is not None else lambda: self.prepare(sample, prompt))

    def usable_audio(self, sample: Sample) -> AudioClip:
        """The sample's decoded clip; under MIN_AUDIO_SECONDS it is a data error, the same for every model, method
        and control (never a model error of some pruned cases while the base case scores a clip the model never
        heard)."""
        clip = load_audio(sample.audio_path, self.model.sampling_rate)
        if clip.seconds < MIN_AUDIO_SECONDS:
            raise DataError(f"audio too short: {_ms(clip.seconds)} gives no audio token (the minimum is "
                            f"{_ms(MIN_AUDIO_SECONDS)}, one audio token at 25 per second): {sample.audio_path}")
        return clip

    def prepare(self, sample: Sample, prompt: str) -> ModelInputs:
        """The model's inputs for one sample; a clip the model turns into no audio token is a data error too."""
        clip = self.usable_audio(sample)
        with PROCESSOR_LOCK:  # a prefetch thread may prepare the next sample meanwhile
            inputs = self.model.prepare(clip.samples, prompt)
        if inputs.n_audio_tokens == 0:  # None: the model (an API) does not say
            raise DataError(f"audio too short: {_ms(clip.seconds)} gives no audio token in {self.model.name}: "
                            f"{sample.audio_path}")
        return inputs

    def warmup(self, samples: Sequence[Sample]) -> float | None:
        """One untimed-for-metrics generation on the first usable sample (kernel/alloc warm-up), reported. Models
        warmed once per session (API models: every warm-up is a paid request) report the session's warm-up."""
        per_session = self.model.warmup_scope == "session"
        if per_session and self.model.warmed_up:
            return self.model.warmup_ms
        for sample in samples:
            if sample.error:
                continue
            try:
                inputs, _ = self.inputs_for(sample)
            except DataError:
                continue
            encoder_cache = getattr(self.model, "encoder_cache", None)
            try:
                if per_session:  # one attempt: a warm-up never waits out a retry sequence
                    generation = self.model.warmup_generate(inputs, WARMUP_TOKENS)
                else:
                    with encoder_cache.bypassed() if encoder_cache is not None else nullcontext():
                        generation, _ = self.generate(inputs, sample, WARMUP_TOKENS)
                latency = generation.timing.latency_ms
                warmup_ms = None if latency is None else round(latency, 3)
            except Exception:  # the same failure is recorded per sample (error_kind "model") and fails the case
                warmup_ms = None
            if per_session:
                self.model.warmed_up, self.model.warmup_ms = True, warmup_ms
            return warmup_ms
        return None

    def run_sample(self, sample: Sample, prepared: Future | None = None) -> dict[str, Any]:
        record = _base_record(sample)
        record["model_revision"] = self.model.revision
        if sample.error:
            return record | {"error": sample.error, "error_kind": "data"}
        try:
            record["audio_sha1"] = self.audio_digest(sample)
            inputs, record["inputs_reused"] = self.inputs_for(sample, prepared)
            record["audio_seconds"] = round(inputs.audio_seconds, 3)
        except DataError as err:
            return record | {"error": f"sample {sample.sample_id}: {err}", "error_kind": "data"}
        if self.model.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.model.device)
        encoder_cache = getattr(self.model, "encoder_cache", None)
        hits = encoder_cache.hits if encoder_cache is not None else 0
        encoder_clock = self.model.encoder_clock()
        if encoder_clock is not None:
            encoder_clock.begin()
        try:
            generation, audio_kept = self.generate(inputs, sample, self.max_new_tokens)
        except Exception as err:  # recorded, and the pytest case fails on it after the other samples ran
            return record | {
                "error": f"sample {sample.sample_id}: {type(err).__name__}: {err}",
                "error_kind": "model",
                "traceback": traceback.format_exc(limit=6),
            }
        record.update(score_response(self.spec, sample, generation.text))
        record["response"] = generation.text
        timing = generation.timing if encoder_clock is None else generation.timing.with_encoder(*encoder_clock.reading())
        record["timing"] = timing.as_dict()
        record["tokens"] = {
            "input": inputs.n_input_tokens,
            "audio": inputs.n_audio_tokens,
            "audio_placeholders": inputs.n_placeholder_tokens,
            "audio_kept": audio_kept,
            "audio_chunks": inputs.audio_chunks,
            "new": generation.timing.new_tokens,
        }
        record["decode_mode"] = self.decode_mode()
        if self.case.control is not None:  # what the control sent in place of the audio
            record["control_audio"] = inputs.notes["control_audio"]
        if encoder_cache is not None:  # the encoder did not run: timing carries the time its output took
            record["encoder_reused"] = encoder_cache.hits > hits
        if generation.api is not None:
            record["api"] = generation.api
        if generation.prompt_cache_len is not None:
            from .kv.presses import kv_cache_stats

            record["kv"] = kv_cache_stats(generation.cache, inputs.n_input_tokens, generation.prompt_cache_len)
        if self.model.device.type == "cuda":
            record["memory"] = {"peak_gpu_bytes": torch.cuda.max_memory_allocated(self.model.device)}
        return record

    def generate(self, inputs: ModelInputs, sample: Sample, max_new_tokens: int) -> tuple[Generation, int]:
        """Generate, with the case's pruning hook armed (or press active) for this prompt's audio span;
        returns the generation and the audio tokens kept."""
        if self.press is not None:
            return self.generate_pressed(inputs, max_new_tokens)
        if self.hook is None:
            return self.model.generate(inputs, max_new_tokens), inputs.n_audio_tokens
        with self.hook.armed(content_positions(inputs), sample_generator(self.seed, sample.sample_id)):
            generation = self.model.generate(inputs, max_new_tokens)
        return generation, int(self.hook.last_kept_audio.numel())

    def generate_pressed(self, inputs: ModelInputs, max_new_tokens: int) -> tuple[Generation, int]:
        """query_agnostic (kvpress protocol): prefill up to the end of the audio under the press, then the
        question through the compressed cache; query_aware: compress after the whole prompt."""
        from .kv.presses import pressed

        positions = content_positions(inputs) if self.case.press_scope == "audio" else None
        agnostic = self.case.press_mode == "query_agnostic"
        context_len = inputs.spans[-1].end if agnostic else inputs.n_input_tokens
        stack = self.model.text_stack()

        def prefill(context: dict[str, torch.Tensor], cache: Any) -> Any:
            with pressed(self.press, self.model.model, stack, positions):
                return self.model.model(**context, past_key_values=cache, use_cache=True, logits_to_keep=1)

        generation = self.model.generate_from_cache(inputs, max_new_tokens, context_len, prefill)
        n_audio = inputs.n_audio_tokens
        kept = kept_count(n_audio, self.case.compression_ratio) if positions is not None else n_audio
        return generation, kept


def content_positions(inputs: ModelInputs) -> torch.Tensor:
    """Positions of the audio-content tokens: the candidates for pruning and audio-scoped presses.
    Placeholders past the content (Voxtral pads every clip to 30 s) trail the last chunk and are kept
    like any non-audio token, so kept = audio - floor(audio * r) holds for every family."""
    return span_positions(inputs.spans)[: inputs.n_audio_tokens]


def sample_generator(seed: int, sample_id: str) -> torch.Generator:
    """Seeded per (run seed, sample): random pruning is reproducible and independent of sample order."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _brief(record: Mapping[str, Any]) -> str:
    if record["status"] == "error":
        return f"ERROR {record['error']}"
    timing = record["timing"]
    verdict = "" if record["correct"] is None else (" correct" if record["correct"] else " wrong")
    took = (f"prefill {timing['prefill_ms']:.0f} ms" if timing["prefill_ms"] is not None
            else f"latency {record_latency_ms(timing):.0f} ms")
    return f"{record['status']}{verdict} {took}, {timing['new_tokens']} tokens"
