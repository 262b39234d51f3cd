#!/usr/bin/env bash
# Issue 3's must-show: paper section 2 (Figures 1-5, 13) measured on a model trained here.
#   benchmarks/paper_findings.sh RUN OUT SIGMA REFERENCE SIGMAS [data options...]
# RUN: the model; OUT: output folder (the store in OUT/store, figures and metrics.json in OUT);
# SIGMA: the noise level of phi for Figures 1, 3-5, 13; REFERENCE: sigma_1 of Figure 2; SIGMAS:
# the sigma_2 grid (comma list, holding SIGMA and REFERENCE); all in [0, 255] units.
# Example (the Fashion-MNIST model of BENCHMARKS.md):
#   benchmarks/paper_findings.sh work/runs/fmnist-small bench-out/findings-fmnist 50 127.5 \
#     10,25,50,75,100,127.5,175,255 --data fashion-mnist:test --pad-to 32 --limit 2000
# BF16=0 computes the store in float32 (for CPUs without native bf16).
set -euo pipefail
run=$1 out=$2 sigma=$3 reference=$4 sigmas=$5
shift 5
bin=${DENOISERLENS:-.venv/bin/denoiserlens}
mkdir -p "$out"
bf16=(--bf16); [[ ${BF16:-1} == 0 ]] && bf16=()
# Every block's inputs and outputs at every sigma (Figures 1, 2, 3, 4, 13); --resume finishes an
# interrupted store.
resume=(); [[ -f "$out/store/meta.json" ]] && resume=(--resume)
"$bin" represent --model "$run" --out "$out/store" --sigmas "$sigmas" --n-noise "${N_NOISE:-20}" \
  --blocks all --inputs "${bf16[@]}" --channels-last --batch-size 32 "${resume[@]}" "$@"
"$bin" analyze --store "$out/store" --out "$out" --model "$run" --sigma "$sigma" \
  --reference "$reference" --map-images 512 | tee "$out/analyze.txt"
