"""API models against a stub HTTP server on 127.0.0.1 that speaks each service's request/response shape
(OpenAI chat.completions with input_audio; Gemini generateContent with inline audio/wav): what was sent, retries,
clear failures, honest timing, and that the key never reaches a written file."""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from marathon_lib.audio import load_audio
from marathon_lib.errors import ConfigError
from marathon_lib.models import load_model, resolve_model
from marathon_lib.models.api import ApiRequestError, GeminiAudio, OpenAIAudio, RetryPolicy
from marathon_lib.options import build_options
from marathon_lib.report import write_report
from marathon_lib.results import ResultsDir
from marathon_lib.runner import CaseRunner
from marathon_lib.schema import CaseSpec
from marathon_lib.tasks import TASKS

pytest.importorskip("openai")
pytest.importorskip("google.genai")

CHOICES = ["Airport - airport", "Metro station - metro_station", "Urban park - park", "Public square - public_square"]


@dataclass
class Sent:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Stub:
    """Answers POSTs from a script of (status, json body, headers), then with `default` once it runs out."""

    url: str = ""
    script: list[tuple[int, dict, dict]] = field(default_factory=list)
    default: tuple[int, dict, dict] | None = None
    sent: list[Sent] = field(default_factory=list)


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.sent.append(Sent(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, payload, headers = state.script.pop(0) if state.script else state.default
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


# --- each service's shapes -----------------------------------------------------------------------
@dataclass(frozen=True)
class Service:
    """How one service is called and answered, as the stub sees it."""

    name: str
    adapter: type
    model_id: str
    key_env: str

    def base_url(self, stub: Stub) -> str:
        return f"{stub.url}/v1" if self.name == "openai" else stub.url

    def ok(self, text: str) -> tuple[int, dict, dict]:
        if self.name == "openai":
            return 200, {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": f"{self.model_id}-2025-06-03",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 120, "completion_tokens": 1, "total_tokens": 121,
                          "prompt_tokens_details": {"audio_tokens": 100, "cached_tokens": 0}}}, {}
        return 200, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 1, "totalTokenCount": 121,
                              "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 100},
                                                      {"modality": "TEXT", "tokenCount": 20}]},
            "modelVersion": f"{self.model_id}-001"}, {}

    def error(self, status: int, message: str, headers: dict | None = None) -> tuple[int, dict, dict]:
        if self.name == "openai":
            return status, {"error": {"message": message, "type": "requests", "code": None}}, headers or {}
        return status, {"error": {"code": status, "message": message, "status": "UNAVAILABLE"}}, headers or {}

    def read(self, sent: Sent) -> tuple[str, bytes, str, str | None]:
        """(model, audio bytes, prompt text, key header) of one request."""
        if self.name == "openai":
            assert sent.path == "/v1/chat/completions"
            user = sent.body["messages"][-1]
            audio, text = user["content"]
            assert audio["type"] == "input_audio" and audio["input_audio"]["format"] == "wav"
            auth = sent.headers.get("authorization")
            return (sent.body["model"], base64.b64decode(audio["input_audio"]["data"]), text["text"],
                    auth.removeprefix("Bearer ") if auth else None)
        model = sent.path.split("/models/")[1].removesuffix(":generateContent")
        audio, text = sent.body["contents"][0]["parts"]
        inline = audio.get("inlineData") or audio["inline_data"]
        assert (inline.get("mimeType") or inline["mime_type"]) == "audio/wav"
        data = inline["data"]  # the SDK sends URL-safe base64 without padding; the service takes both
        wav = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        return model, wav, text["text"], sent.headers.get("x-goog-api-key")


SERVICES = [Service("openai", OpenAIAudio, "gpt-4o-audio-preview", "OPENAI_API_KEY"),
            Service("gemini", GeminiAudio, "gemini-2.5-flash", "GEMINI_API_KEY")]


def make_model(service: Service, stub: Stub, key: str, **kwargs: Any):
    return service.adapter(f"api:{service.model_id}", service.model_id, base_url=service.base_url(stub),
                           environ={service.key_env: key}, retry=RetryPolicy(attempts=3, initial_delay_s=0.01),
                           timeout_s=10, **kwargs)


def tau_data(root: Path) -> Path:
    """Two TAU samples (48 kHz stereo, so decode, downmix and resampling all happen before encoding)."""
    task = root / "TAU"
    (task / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    items = []
    for i, answer in enumerate(["B", "C"]):
        sf.write(task / f"audio/t{i}.wav", 0.3 * rng.standard_normal((24000, 2)), 48000)
        items.append({"path": f"audio/t{i}.wav", "question": "Which scene?", "answer_gt": answer,
                      **{f"choice_{c}": CHOICES[j] for j, c in enumerate("abcd")}, "uniq_id": f"t{i}"})
    (task / "acoustic_scene_task_meta.json").write_text(json.dumps(items), encoding="utf-8")
    return root


def written_text(results: ResultsDir) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in results.root.rglob("*") if p.is_file()
                     and p.suffix in (".json", ".jsonl", ".md"))


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_case_through_stub_sends_the_sample_and_retries(service: Service, stub: Stub, tmp_path: Path):
    key = f"sk-test-{uuid.uuid4().hex}"
    # warm-up answered; sample t0: rate-limited once (Retry-After 0), then answered; sample t1 answered
    stub.script = [service.ok("B"), service.error(429, "Rate limit reached", {"Retry-After": "0"}),
                   service.ok("B"), service.ok("The answer is C.")]
    model = make_model(service, stub, key)
    spec, data = TASKS.get("TAU"), tau_data(tmp_path / "data")
    samples = spec.samples(data)
    results = ResultsDir(tmp_path / "results").ensure()
    case = CaseRunner(CaseSpec("TAU", model.name), spec, model, results).run(samples)
    write_report(results, plots=False)  # the leaderboard must take a case with no prefill/decode split

    assert len(stub.sent) == 4
    for sent, sample in zip(stub.sent[2:], samples, strict=True):  # the two answered sample requests
        model_id, wav, prompt, sent_key = service.read(sent)
        assert model_id == service.model_id and prompt == spec.prompt(sample) and sent_key == key
        decoded, rate = sf.read(io.BytesIO(wav), dtype="float32")
        expected = load_audio(sample.audio_path, 16000).samples
        assert rate == 16000 and decoded.ndim == 1 and decoded.shape == expected.shape
        assert np.abs(decoded - expected).max() <= 1.0 / 32767  # the sample itself, quantized to PCM16
    assert service.read(stub.sent[1])[2] == spec.prompt(samples[0])  # the retried request is the same one

    records = {r["sample_id"]: r for r in map(json.loads, results.sample_path(case["case_id"]).read_text().splitlines())}
    assert [records[s]["correct"] for s in ("t0", "t1")] == [True, True]
    first = records["t0"]
    assert first["api"]["attempts"] == 2 and records["t1"]["api"]["attempts"] == 1
    assert first["api"]["audio_tokens"] == 100 and first["api"]["prompt_tokens"] == 120
    assert first["api"]["model_version"].startswith(service.model_id)
    assert first["timing"]["prefill_ms"] is None and first["timing"]["decode_ms"] is None
    assert first["timing"]["decode_tokens_per_s"] is None and first["timing"]["latency_ms"] > 0
    assert first["tokens"]["input"] is None and first["tokens"]["new"] == 1
    assert case["timing"]["prefill_ms"] is None and case["timing"]["latency_ms"] > 0
    assert case["model_layers"] is None and case["timing"]["warmup_ms"] > 0
    assert key not in written_text(results) and "latency" in written_text(results)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_non_retryable_error_fails_each_sample_clearly(service: Service, stub: Stub, tmp_path: Path):
    key = f"sk-test-{uuid.uuid4().hex}"
    stub.default = service.error(401, f"Incorrect API key provided: {key}")  # an error body echoing the key
    model = make_model(service, stub, key)
    spec = TASKS.get("TAU")
    results = ResultsDir(tmp_path / "results").ensure()
    case = CaseRunner(CaseSpec("TAU", model.name), spec, model, results).run(spec.samples(tau_data(tmp_path / "d")))

    assert len(stub.sent) == 3  # warm-up and two samples, none retried
    assert [e["kind"] for e in case["errors"]] == ["model", "model"]
    message = case["errors"][0]["error"]
    assert "ApiRequestError" in message and "HTTP 401" in message and "not retryable" in message
    assert "Incorrect API key provided: [api key]" in message
    assert key not in written_text(results)  # nor in the recorded tracebacks


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_warm_up_is_one_request_per_session_not_per_case(service: Service, stub: Stub, tmp_path: Path):
    stub.default = service.ok("B")
    model = make_model(service, stub, "k")
    spec, data = TASKS.get("TAU"), tau_data(tmp_path / "data")
    cases = [CaseRunner(CaseSpec("TAU", model.name), spec, model, ResultsDir(tmp_path / name).ensure()
                        ).run(spec.samples(data)) for name in ("first", "second")]
    assert len(stub.sent) == 1 + 2 + 2  # one warm-up, then the two samples of each case
    assert cases[0]["timing"]["warmup_ms"] > 0 and cases[1]["timing"]["warmup_ms"] == cases[0]["timing"]["warmup_ms"]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_a_failing_warm_up_is_not_retried(service: Service, stub: Stub, tmp_path: Path):
    """A dead endpoint costs the warm-up one request; each sample then runs its own retry sequence."""
    stub.default = service.error(503, "The model is overloaded.")
    waits: list[float] = []
    model = make_model(service, stub, "k", sleep=waits.append)
    spec = TASKS.get("TAU")
    case = CaseRunner(CaseSpec("TAU", model.name), spec, model, ResultsDir(tmp_path / "results").ensure()
                      ).run(spec.samples(tau_data(tmp_path / "data")))
    assert len(stub.sent) == 1 + 3 + 3 and len(waits) == 2 + 2  # the warm-up never backs off
    assert case["timing"]["warmup_ms"] is None and [e["kind"] for e in case["errors"]] == ["model", "model"]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_retryable_errors_back_off_then_give_up(service: Service, stub: Stub):
    stub.default = service.error(503, "The model is overloaded.")
    waits: list[float] = []
    model = make_model(service, stub, "k", sleep=waits.append)
    inputs = model.prepare(np.zeros(1600, dtype=np.float32), "Which scene?")
    with pytest.raises(ApiRequestError, match=r"gave up after 3 attempts; last HTTP 503: .*overloaded"):
        model.generate(inputs, 5)
    assert len(stub.sent) == 3 and len(waits) == 2
    assert 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02  # exponential, jittered in [1/2, 1] x


def test_retry_delay_honours_retry_after_and_caps():
    policy = RetryPolicy(attempts=5, initial_delay_s=1.0, max_delay_s=8.0)
    assert policy.delay(1, 3.0) == 3.0 and policy.delay(1, 100.0) == 8.0
    assert all(2.0 <= policy.delay(3, None) <= 4.0 for _ in range(20))  # 1 s x 2^2, jittered in [1/2, 1] x
    assert policy.delay(10, None) <= 8.0


def test_api_models_are_opt_in_and_base_only(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    entry = resolve_model("api:gpt-4o-audio-preview")
    assert entry.access == "api" and entry.checkpoint == "gpt-4o-audio-preview"
    assert "OPENAI_API_KEY" in entry.load_refusal(False)
    with pytest.raises(ConfigError, match="--models: api:gpt-4o-audio-preview: set OPENAI_API_KEY"):
        build_options(models="api:gpt-4o-audio-preview", tasks="TAU", results_dir="r", device="cpu")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load_model(entry, cache_root=Path("unused"), device="cpu", dtype="float32", attn_implementation="sdpa")
    gemini = resolve_model("api:gemini-2.5-flash-lite")
    assert gemini.load_refusal(False, {"GEMINI_API_KEY": "x"}) is None
    assert "GOOGLE_API_KEY or GEMINI_API_KEY" in gemini.load_refusal(False, {})
    assert entry.method_refusal("base", None) is None
    for pruner, press in (("fast_v", None), ("base", "snapkv")):
        assert "API model" in entry.method_refusal(pruner, press)


def test_gemini_25_thinking_is_off_and_sent(stub: Stub):
    service = SERVICES[1]
    stub.default = service.ok("A")
    model = make_model(service, stub, "k")
    model.generate(model.prepare(np.zeros(1600, dtype=np.float32), "Q?"), 7)
    config = stub.sent[0].body["generationConfig"]
    assert config["maxOutputTokens"] == 7 and config["temperature"] == 0.0
    thinking = config["thinkingConfig"]  # the SDK spells the inner field in snake case; the service takes both
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 0  # thoughts eat the answer's budget
    older = GeminiAudio("api:gemini-2.0-flash", "gemini-2.0-flash", base_url=stub.url, environ={"GEMINI_API_KEY": "k"})
    older.generate(older.prepare(np.zeros(1600, dtype=np.float32), "Q?"), 7)
    assert "thinkingConfig" not in stub.sent[1].body.get("generationConfig", {})
