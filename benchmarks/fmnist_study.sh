#!/usr/bin/env bash
# The measurements of issues 3, 4 and 5 on a Fashion-MNIST model (BENCHMARKS.md records them).
#   benchmarks/fmnist_study.sh RUN OUT [FINDINGS_IMAGES FINDINGS_NOISE PROBE_IMAGES PROBE_NOISE]
# Environment: PARTS (default 3,4,5: the issues whose measurements run), PHI_SIGMAS (default
# 12.75,51: the sigmas of the issue-4 stores, the first one clustered), BF16 (default 1; 0 computes
# phi in float32, for CPUs without native bf16).
# Resumable: stores are finished with --resume, and finished steps are skipped.
set -euo pipefail
run=$1 out=$2
n_find=${3:-2000} noise_find=${4:-20} n_probe=${5:-10000} noise_probe=${6:-20}
parts=,${PARTS:-3,4,5}, phi_sigmas=${PHI_SIGMAS:-12.75,51}
bin=${DENOISERLENS:-.venv/bin/denoiserlens}
bf16=(--bf16); [[ ${BF16:-1} == 0 ]] && bf16=()
data=(--data fashion-mnist:test --pad-to 32)
resume() { if [[ -f "$1/meta.json" ]]; then echo --resume; fi; }
mkdir -p "$out"

# Issue 3: every block's inputs and outputs on 2000 test images, sigma_2 grid of Figure 2
# (reference sigma_1 = 127.5/255 = 0.5 as in the paper); phi at sigma 25 for Figures 1, 3-5, 13.
if [[ $parts == *,3,* ]]; then
  N_NOISE=$noise_find benchmarks/paper_findings.sh "$run" "$out/findings" 25 127.5 \
    5,10,25,50,100,127.5,255 "${data[@]}" --limit "$n_find"
fi

# Issue 4: phi of the 10k test images at sigma 12.75 and 51 (0.05 and 0.2), the same for the
# architecture with random weights (the control), then label probes, clusters, neighbours.
if [[ $parts == *,4,* ]]; then
[[ -f "$out/phi/meta.json" && $(grep -c '"complete": true' "$out/phi/meta.json") -ge 1 ]] ||
  "$bin" represent --model "$run" "${data[@]}" --limit "$n_probe" --out "$out/phi" \
    --sigmas "$phi_sigmas" --n-noise "$noise_probe" "${bf16[@]}" --channels-last --batch-size 64 \
    $(resume "$out/phi")
[[ -f "$out/phi-random/meta.json" && $(grep -c '"complete": true' "$out/phi-random/meta.json") -ge 1 ]] ||
  "$bin" represent --model "$run" --random-weights --seed 1 "${data[@]}" --limit "$n_probe" \
    --out "$out/phi-random" --sigmas "$phi_sigmas" --n-noise "$noise_probe" "${bf16[@]}" --channels-last \
    --batch-size 64 $(resume "$out/phi-random")
"$bin" probe --store trained="$out/phi" --store random="$out/phi-random" --out "$out/probe" \
  | tee "$out/probe.txt"
"$bin" cluster --store "$out/phi" --sigma "${phi_sigmas%%,*}" --k 20 --out "$out/clusters" \
  | tee "$out/clusters.txt"
"$bin" neighbours --store "$out/phi" --sigma "${phi_sigmas%%,*}" --query 0,1,2,3,4,5 --k 8 \
  --out "$out/neighbours" | tee "$out/neighbours.txt"
fi

# Issue 5: unconditional samples (Figure 19), reconstructions (Figures 7, 20), distances (Fig. 8).
[[ $parts == *,5,* ]] || exit 0
"$bin" sample --model "$run" --n 16 --size 32 --mean 0.25 --out "$out/samples" | tee "$out/samples.txt"
"$bin" reconstruct --model "$run" "${data[@]}" --rows 0,1,2,3 --n-samples 8 --steps 100 \
  --out "$out/reconstruct" | tee "$out/reconstruct.txt"
"$bin" distance --model "$run" "${data[@]}" --images 6 --n-samples 8 --out "$out/distance" \
  | tee "$out/distance.txt"
