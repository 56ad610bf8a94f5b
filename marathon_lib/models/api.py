"""API models: GPT-4o audio through the `openai` SDK, Gemini through `google-genai`.

They get the same prompts, parsing and records as the local models, with three differences that the records
say out loud: the key comes from the environment and is handed to the SDK client only (never stored on the
adapter, never written); only the end-to-end latency of the successful request is measured (prefill/decode
stay None); and no pruner or press can reach inside them (those cases are skipped with the reason).
Retries (429, 408 and 5xx, connection errors) are ours, with exponential backoff and Retry-After, so the
latency never includes a backoff wait and the number of attempts is recorded.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import random
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import torch

from ..errors import ConfigError
from ..timing import Timing
from .base import BenchModel
from .inputs import Generation, InputsCache
from .registry import register_family

API_SAMPLING_RATE = 16_000  # 16 kHz mono PCM16: what both services resample to; about 1.9 MB per minute
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RequestInputs:
    """One request's content: the clip as a WAV file and the prompt. Token counts exist only after the call
    (the service's usage report, recorded under `api`), so the pre-call counts the runner records are None."""

    wav: bytes
    prompt: str
    system: str | None
    audio_seconds: float
    audio_chunks: int = 1
    spans: tuple = ()
    n_input_tokens: None = None
    n_audio_tokens: None = None
    n_placeholder_tokens: None = None


def encode_wav(samples: np.ndarray, sampling_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sampling_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def missing_key(environ: Mapping[str, str], names: tuple[str, ...], model: str) -> str | None:
    """Why `model` cannot run without a key (None when one of `names` is set)."""
    if any(environ.get(name) for name in names):
        return None
    return f"{model}: set {' or '.join(names)} in the environment (keys are read from there only)"


def api_key(environ: Mapping[str, str], names: tuple[str, ...], model: str) -> str:
    """The first of `names` set in the environment; keys are never taken from options or files."""
    refusal = missing_key(environ, names, model)
    if refusal is not None:
        raise ConfigError(refusal)
    return next(environ[name] for name in names if environ.get(name))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # including the first
    initial_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's Retry-After when given, else exponential backoff with jitter (attempt counts from 1)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        return min(self.max_delay_s, self.initial_delay_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Failure:
    """One failed attempt as the SDK reported it."""

    status: int | None  # HTTP status; None = no response (connection error, timeout)
    message: str
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUS

    def describe(self) -> str:
        return f"{'no response' if self.status is None else f'HTTP {self.status}'}: {self.message}"


class ApiRequestError(RuntimeError):
    """A request that failed for good: not retryable, or out of attempts."""


@dataclass(frozen=True)
class Reply:
    text: str
    output_tokens: int | None
    info: dict[str, Any]  # model version, usage, finish reason as the service reported them


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored: backoff applies then)."""
    value = (headers or {}).get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RequestModel(BenchModel):
    """A model that takes a whole clip and a prompt and answers with text: no token ids, spans or decoder
    layers are visible, so nothing but the end-to-end time can be measured."""

    @property
    def sampling_rate(self) -> int:
        return API_SAMPLING_RATE

    def prepare(self, audio: np.ndarray, prompt: str, system: str | None = None) -> RequestInputs:
        return RequestInputs(encode_wav(audio, API_SAMPLING_RATE), prompt, system, len(audio) / API_SAMPLING_RATE)


class ApiModel(RequestModel):
    """Shared part of the API adapters: keys, retries, timing. Subclasses build the SDK request."""

    access = "api"
    name_prefix = "api:"
    key_env: tuple[str, ...]
    sdk_module: str  # importable name of the SDK, for the "install it" message

    @classmethod
    def missing_requirement(cls, name: str, environ: Mapping[str, str]) -> str | None:
        if sdk_missing(cls.sdk_module):
            return f"{name} needs the {cls.sdk_module} SDK: pip install -e '.[api]'"
        return missing_key(environ, cls.key_env, name)

    def __init__(self, name: str, model_id: str, *, base_url: str | None = None,
                 environ: Mapping[str, str] = os.environ, retry: RetryPolicy = RetryPolicy(),
                 timeout_s: float = 600.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self.model_id = model_id
        self.revision = model_id  # the service's own version string is recorded per sample (api.model_version)
        # Nothing runs locally but WAV encoding: cpu keeps the runner's GPU bookkeeping off, and there is
        # no dtype or attention implementation to choose.
        self.device = torch.device("cpu")
        self.dtype = None
        self.attn_implementation = None
        self.inputs_cache = InputsCache()
        self.retry, self.sleep = retry, sleep
        key = api_key(environ, self.key_env, name)
        self.client = self.make_client(key, base_url, timeout_s)
        # An error body may echo the key: failure messages (which reach the records) have it blanked out.
        self._redact = lambda text: text.replace(key, "[api key]")

    warmup_scope = "session"  # a warm-up is a paid request: once per session, not per case

    def warmup_generate(self, inputs: RequestInputs, max_new_tokens: int) -> Generation:
        """One attempt: the first error of any kind ends the warm-up (a dead endpoint costs one request, not a
        retry sequence; the samples' own requests then retry as usual)."""
        return self.generate(inputs, max_new_tokens, attempts=1)

    def generate(self, inputs: RequestInputs, max_new_tokens: int, attempts: int | None = None) -> Generation:
        """One request, retried on 408/429/5xx and connection errors up to `attempts` (the retry policy's by
        default); timing = the successful attempt only."""
        attempts = attempts or self.retry.attempts
        attempt = 0
        while True:
            attempt += 1
            start = time.perf_counter()
            try:
                reply = self.request(inputs, max_new_tokens)
                break
            except self.sdk_errors() as err:
                failure = self.failure(err)
                failure = Failure(failure.status, self._redact(failure.message), failure.retry_after)
                if not failure.retryable:
                    raise ApiRequestError(f"{self.name}: {failure.describe()} (not retryable)") from None
                if attempt >= attempts:
                    raise ApiRequestError(f"{self.name}: gave up after {attempt} attempts; last {failure.describe()}"
                                          ) from None  # the SDK error's text may hold the key
                self.sleep(self.retry.delay(attempt, failure.retry_after))
        latency_ms = (time.perf_counter() - start) * 1000.0
        return Generation(text=reply.text.strip(), new_token_ids=[],
                          timing=Timing.end_to_end(latency_ms, reply.output_tokens),
                          api=reply.info | {"attempts": attempt})

    # --- per SDK --------------------------------------------------------------------------------
    @abstractmethod
    def make_client(self, key: str, base_url: str | None, timeout_s: float) -> Any:
        """The SDK client, with the SDK's own retries off (ours time and count them)."""

    @abstractmethod
    def request(self, inputs: RequestInputs, max_new_tokens: int) -> Reply: ...

    @abstractmethod
    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        """The SDK's request errors (HTTP status and transport); anything else is a bug and propagates."""

    @abstractmethod
    def failure(self, err: BaseException) -> Failure: ...


@register_family
class OpenAIAudio(ApiModel):
    """Chat Completions with an `input_audio` part (base64 WAV), text out."""

    family = "openai-audio"
    long_audio = "the whole clip in one request (16 kHz WAV)"
    checkpoints = ("gpt-4o-audio-preview",)
    key_env = ("OPENAI_API_KEY",)
    sdk_module = "openai"

    def make_client(self, key: str, base_url: str | None, timeout_s: float) -> Any:
        import openai

        # base_url None: the SDK's default or OPENAI_BASE_URL
        return openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout_s)

    def request(self, inputs: RequestInputs, max_new_tokens: int) -> Reply:
        response = self.client.chat.completions.create(
            model=self.model_id, messages=openai_messages(inputs), modalities=["text"], temperature=0,
            max_completion_tokens=max_new_tokens)
        choice, usage = response.choices[0], response.usage
        details = usage.prompt_tokens_details if usage is not None else None
        return Reply(choice.message.content or "", usage.completion_tokens if usage is not None else None, {
            "model_version": response.model,
            "prompt_tokens": usage.prompt_tokens if usage is not None else None,
            "audio_tokens": details.audio_tokens if details is not None else None,
            "finish_reason": choice.finish_reason,
        })

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        import openai

        return openai.APIStatusError, openai.APIConnectionError

    def failure(self, err: BaseException) -> Failure:
        import openai

        if isinstance(err, openai.APIStatusError):
            return Failure(err.status_code, err.message, retry_after_seconds(err.response.headers))
        return Failure(None, str(err))


def openai_messages(inputs: RequestInputs) -> list[dict[str, Any]]:
    """[system], then one user turn: the audio, then the prompt (the suite's [audio, text] order)."""
    import base64

    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(inputs.wav).decode(), "format": "wav"}}
    messages = [{"role": "system", "content": inputs.system}] if inputs.system else []
    return messages + [{"role": "user", "content": [audio, {"type": "text", "text": inputs.prompt}]}]


@register_family
class GeminiAudio(ApiModel):
    """generateContent with an inline audio/wav part, text out."""

    family = "gemini"
    long_audio = "the whole clip in one request (16 kHz WAV)"
    checkpoints = ("gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-flash-lite")
    key_env = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # the SDK's own precedence
    sdk_module = "google.genai"

    def __init__(self, name: str, model_id: str, **kwargs: Any) -> None:
        # Gemini 2.5 models think before answering and the thoughts count against max_output_tokens; a budget
        # of 0 keeps the task's token limit about the answer, as for every other model.
        self.thinking_budget = 0 if model_id.startswith("gemini-2.5") else None
        super().__init__(name, model_id, **kwargs)

    def make_client(self, key: str, base_url: str | None, timeout_s: float) -> Any:
        from google import genai
        from google.genai import types

        # no retry_options: the SDK does not retry; base_url None: the default or GOOGLE_GEMINI_BASE_URL
        options = types.HttpOptions(base_url=base_url, timeout=int(timeout_s * 1000))
        return genai.Client(api_key=key, http_options=options)

    def request(self, inputs: RequestInputs, max_new_tokens: int) -> Reply:
        from google.genai import types

        config = types.GenerateContentConfig(
            temperature=0.0, max_output_tokens=max_new_tokens, system_instruction=inputs.system,
            thinking_config=(None if self.thinking_budget is None
                             else types.ThinkingConfig(thinking_budget=self.thinking_budget)))
        contents = [types.Content(role="user", parts=[types.Part.from_bytes(data=inputs.wav, mime_type="audio/wav"),
                                                      types.Part.from_text(text=inputs.prompt)])]
        response = self.client.models.generate_content(model=self.model_id, contents=contents, config=config)
        usage = response.usage_metadata
        audio_tokens = None
        if usage is not None and usage.prompt_tokens_details:
            audio_tokens = sum(d.token_count or 0 for d in usage.prompt_tokens_details
                               if d.modality == types.MediaModality.AUDIO)
        finish = response.candidates[0].finish_reason if response.candidates else None
        return Reply(response.text or "", usage.candidates_token_count if usage is not None else None, {
            "model_version": response.model_version,
            "prompt_tokens": usage.prompt_token_count if usage is not None else None,
            "audio_tokens": audio_tokens,
            "finish_reason": getattr(finish, "value", finish),
        })

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        from google.genai import errors

        return (errors.APIError, *_transport_errors())

    def failure(self, err: BaseException) -> Failure:
        from google.genai import errors

        if isinstance(err, errors.APIError):
            headers = err.response.headers if err.response is not None else None
            return Failure(err.code, err.message or str(err), retry_after_seconds(headers))
        return Failure(None, f"{type(err).__name__}: {err}")


def sdk_missing(module: str) -> bool:
    """True when `module` (e.g. google.genai) cannot be imported; its parent package may be absent too."""
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection errors and timeouts of the HTTP library under google-genai (httpx2, or httpx in older
    releases); its APIError covers only responses."""
    found = []
    for module in ("httpx2", "httpx"):
        if not sdk_missing(module):
            found.append(importlib.import_module(module).TransportError)
    return tuple(found)

