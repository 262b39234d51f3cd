#!/usr/bin/env bash
# Issue 4, "what makes phi semantic" on data where pixels fail: 64x64 grid patches of the 68
# Berkeley test photos (Set68; no model here saw them), each labelled by its source photo.
# kNN and linear-probe retrieval of the source for phi of each model (e.g. snapshots along one
# training run), for the same architecture with random weights, and for pixels; then Figures 5/14
# (neighbours) and 6 (clusters) for the last model.
#   benchmarks/patch_study.sh OUT NAME=RUN [NAME=RUN ...]
# Environment: SIGMAS (default 5,25,50), N_NOISE (default 8). Stores hold the encoder blocks and
# the middle block (E1,E2,E3,M); probes of each are in probe-KEY/. Resumable (stores finish with
# --resume; complete stores are kept).
set -euo pipefail
out=$1; shift
bin=${DENOISERLENS:-.venv/bin/denoiserlens}
sigmas=${SIGMAS:-5,25,50} n_noise=${N_NOISE:-8}
data=(--data ../shared/data/test_images/grayscale/Set68 --channels 1 --patch-size 64 --patch-mode grid)
mkdir -p "$out"
store() {  # store NAME RUN [extra represent options]
  local name=$1 run=$2; shift 2
  local dir="$out/phi-$name"
  if [[ -f "$dir/meta.json" ]] && grep -q '"complete": true' "$dir/meta.json"; then return; fi
  "$bin" represent --model "$run" "${data[@]}" --out "$dir" --sigmas "$sigmas" \
    --n-noise "$n_noise" --blocks E1,E2,E3,M --bf16 --channels-last --batch-size 64 "$@" \
    $([[ -f "$dir/meta.json" ]] && echo --resume)
}
stores=() last=
for pair in "$@"; do
  name=${pair%%=*} run=${pair#*=}
  store "$name" "$run"
  stores+=(--store "$name=$out/phi-$name") last=$run
done
store random "$last" --random-weights --seed 1
stores+=(--store "random=$out/phi-random")
for key in M E3 E2 E1; do
  "$bin" probe "${stores[@]}" --key "$key" --out "$out/probe-$key" | tee "$out/probe-$key.txt"
done
final="$out/phi-${pair%%=*}"
"$bin" cluster --store "$final" --sigma 25 --k 20 --out "$out/clusters" | tee "$out/clusters.txt"
"$bin" neighbours --store "$final" --sigma 25 --query 0,200,400,800,1200,1600 --k 8 \
  --out "$out/neighbours" | tee "$out/neighbours.txt"
