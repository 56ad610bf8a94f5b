#!/usr/bin/env bash
# A hostile run of the benchmark, measured (marathon_lib/chaos.py): SIGKILLs at random moments across a sweep
# under xdist -n 2, torn and damaged result files, two sessions on one results folder, damaged inputs of every
# kind. Prints the figures; exits 1 when a record is lost or doubled or a bad input is misreported.
#   scripts/chaos.sh --kills 20 --out results/chaos        (--help for the options)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export MARATHON_CACHE=${MARATHON_CACHE:-$PWD/.cache} HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
exec "$PYTHON" -m marathon_lib.chaos "$@"
