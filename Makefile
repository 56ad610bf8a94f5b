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

.PHONY: install bench test report clean

install: $(STAMP)

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# torchvision/torchaudio builds from the registry are CUDA-linked and break transformers imports
	@if $(BIN)/python -c "import torchvision" 2>/dev/null; then echo "torchvision is installed in $(VENV): remove it"; exit 1; fi
	rm -f $(VENV)/.installed-*
	touch $@

# The embedded default: all 10 tasks x tiny-qwen2.5-omni x base on synthetic seed-format data.
bench: $(STAMP)
	rm -rf $(RESULTS)
	$(BIN)/python -m pytest tests_bench/test_cases.py -v --results-dir $(RESULTS) \
		--json-report --json-report-file $(RESULTS)/report.json $(BENCH_ARGS)
	@echo; cat $(RESULTS)/leaderboard.md

test: $(STAMP)
	$(BIN)/python -m pytest $(TEST_ARGS)

report: $(STAMP)
	$(BIN)/marathon report $(RESULTS)

clean:
	rm -rf results .cache
