# Two commands on a fresh machine:  make bench  (the benchmark on the embedded default)  and  make test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The local CPU wheel here; on a GPU box use e.g. TORCH_SPEC="torch==2.11.0" (never torchvision/torchaudio/timm).
TORCH_SPEC ?= torch==2.13.0
RESULTS ?= results/bench
export MARATHON_CACHE ?= $(CURDIR)/.cache
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
# A second environment with kvpress (which pins transformers < 5.3): press cases and the 5.2 code paths.
KV_VENV ?= .venv-kv
KV_STAMP := $(KV_VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
KV_TESTS ?= tests_bench/unit/test_kv.py tests_bench/unit/test_pruning_model.py tests_bench/unit/test_model_inputs.py tests_bench/unit/test_decode.py

.PHONY: install install-kv bench test test-kv report clean

install: $(STAMP)

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# torchvision/torchaudio builds from the registry are CUDA-linked and break transformers imports
	@if $(BIN)/python -c "import torchvision" 2>/dev/null; then echo "torchvision is installed in $(VENV): remove it"; exit 1; fi
	rm -f $(VENV)/.installed-*
	touch $@

# The embedded default, two pytest sessions:
# 1. all 10 tasks x every native family's tiny checkpoint x base on synthetic seed-format data (3 clips of 120 s
#    per task). Random weights rarely stop early, so LibriSpeech's 1100-token budget would dominate the run
#    (~31 min on 2 cores even with 60 s clips): generation is capped, and leaderboard.md says so.
# 2. the pruning sweep on the trained canary (models/canary.py: built once into .cache, a few CPU minutes cold) over
#    the tasks it has learnt, on clips of its training length and enough of them for a trend: `--prune-ratio`
#    without `--pruners` runs base and every pruner at each ratio, so its leaderboard.md gets the efficiency and
#    retained tables and plots/ the score-vs-ratio and speed-up-vs-ratio figures. Its data differ from session 1's
#    (clip length, count), so it has its own results folder: one folder's scores stay comparable.
# Uncapped: make bench BENCH_ARGS="--max-new-tokens 0"   (BENCH_ARGS come last, so they override these)
BENCH_MODELS ?= tiny-qwen2.5-omni,tiny-qwen2-audio,tiny-audio-flamingo-3,tiny-voxtral,tiny-phi-4-multimodal,tiny-granite-speech,tiny-qwen3-omni,tiny-gemma-3n
BENCH_MAX_NEW_TOKENS ?= 64
BENCH_SECONDS ?= 120
BENCH_SWEEP_MODEL ?= tiny-qwen2.5-omni-canary
BENCH_SWEEP_TASKS ?= GTZAN,DESED
BENCH_SWEEP_RATIOS ?= 0.5,0.9,0.98
BENCH_SWEEP_SECONDS ?= 4
BENCH_SWEEP_SAMPLES ?= 40
BENCH_SWEEP_RESULTS ?= $(RESULTS)/sweep
bench: $(STAMP)
	rm -rf $(RESULTS)
	$(BIN)/python -m pytest tests_bench/test_cases.py -v --results-dir $(RESULTS) --models $(BENCH_MODELS) \
		--max-new-tokens $(BENCH_MAX_NEW_TOKENS) --synthetic-seconds $(BENCH_SECONDS) \
		--json-report --json-report-file $(RESULTS)/report.json $(BENCH_ARGS)
	$(BIN)/python -m pytest tests_bench/test_cases.py -v --results-dir $(BENCH_SWEEP_RESULTS) \
		--models $(BENCH_SWEEP_MODEL) --tasks $(BENCH_SWEEP_TASKS) --prune-ratio $(BENCH_SWEEP_RATIOS) \
		--synthetic-seconds $(BENCH_SWEEP_SECONDS) --synthetic-samples $(BENCH_SWEEP_SAMPLES) \
		--json-report --json-report-file $(BENCH_SWEEP_RESULTS)/report.json $(BENCH_ARGS)
	@echo; cat $(RESULTS)/leaderboard.md; echo; cat $(BENCH_SWEEP_RESULTS)/leaderboard.md; echo
	ls $(RESULTS)/plots $(BENCH_SWEEP_RESULTS)/plots

# pytest exits 5 when it collects nothing; make would turn that into its own code 2, so say it here.
NO_TESTS_EXIT ?= 5
PYTEST_NO_TESTS = status=$$?; if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit $(NO_TESTS_EXIT); fi; exit $$status

# The suite's own benchmark cases (tests_bench/test_cases.py with the default options) write into a fresh temporary
# results directory, removed afterwards; a run that leaves a new results/run-* in the work tree fails.
test: $(STAMP)
	@before=$$(ls -d results/run-* 2>/dev/null); tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/marathon-test-XXXXXX"); \
	echo "MARATHON_RESULTS_DIR=$$tmp $(BIN)/python -m pytest $(TEST_ARGS)"; \
	MARATHON_RESULTS_DIR=$$tmp $(BIN)/python -m pytest $(TEST_ARGS); status=$$?; rm -rf "$$tmp"; \
	after=$$(ls -d results/run-* 2>/dev/null); if [ "$$before" != "$$after" ]; then \
		echo "make test wrote into the work tree: $$(echo "$$after" | grep -vxF "$$before" | tr '\n' ' ')"; exit 1; fi; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit $(NO_TESTS_EXIT); fi; exit $$status

install-kv: $(KV_STAMP)

$(KV_STAMP):
	test -x $(KV_VENV)/bin/python || $(PYTHON) -m venv $(KV_VENV)
	$(KV_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(KV_VENV)/bin/python -m pip install -q -e ".[dev,kv]"
	@if $(KV_VENV)/bin/python -c "import torchvision" 2>/dev/null; then echo "torchvision is installed in $(KV_VENV): remove it"; exit 1; fi
	rm -f $(KV_VENV)/.installed-*
	touch $@

# kvpress + transformers 5.2: the press tests, the 5.2 pruning paths and a press sweep through the matrix
# (an mRoPE thinker, a wrapped *ForCausalLM, and Phi-4, whose snapkv cases are refused with the reason).
test-kv: $(KV_STAMP)
	$(KV_VENV)/bin/python -m pytest $(KV_TESTS) $(TEST_ARGS) || { $(PYTEST_NO_TESTS); }
	$(KV_VENV)/bin/python -m pytest tests_bench/test_cases.py -q --tasks HAD,LibriSpeech --pruners base,dart \
		--prune-ratio 0.5 --presses knorm,snapkv --compression-ratio 0.5 --synthetic-seconds 8 \
		--synthetic-samples 1 --models tiny-qwen2.5-omni,tiny-qwen2-audio,tiny-phi-4-multimodal \
		--results-dir results/test-kv

report: $(STAMP)
	$(BIN)/marathon report $(RESULTS)

clean:
	rm -rf results .cache
