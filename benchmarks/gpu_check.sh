#!/usr/bin/env bash
# GPU check (issue 21, item 4), under 8 minutes on one GPU: the CUDA-marked tests, then one table
# (benchmarks/gpu_check.py): training throughput of the paper preset at 64x64 (fp32, bf16,
# bf16 + torch.compile), phi and Algorithm 1 throughput, host synchronizations per step.
#
#   benchmarks/gpu_check.sh            # on a machine with a GPU, from the checkout root
#   benchmarks/gpu_check.sh --dry-run  # anywhere: the plan checked on the CPU (the suite runs it)
# PYTHON names the interpreter (default .venv/bin/python; on a machine without that virtualenv,
# e.g. PYTHON=python3 with torch and this package installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [[ "${1:-}" == "--dry-run" ]]; then
  "$PY" -m pytest -q -m cuda --collect-only tests > /dev/null  # the CUDA tests exist and collect
  "$PY" benchmarks/gpu_check.py --dry-run
  echo "plan holds"
  exit 0
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
status=0
timeout 150 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests || status=$?
timeout 330 "$PY" benchmarks/gpu_check.py --device "${DEVICE:-cuda}" || status=$?
exit "$status"  # the figures are printed even when a CUDA test failed
