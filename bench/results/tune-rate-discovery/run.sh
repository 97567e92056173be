#!/usr/bin/env bash
# Acceptance 1 of issue 14: the same sweep twice, each against a fresh local Shoal node.
# 4 linger x 3 batch sizes, rate discovery with a p99 goal of 10 ms, 3 repetitions.
#
#   SHOAL_BIN=... SHOAL_TUNE_BIN=... bench/results/tune-rate-discovery/run.sh [run1 run2]
#
# Step = 1 s warm-up + 3 s measured (+ ~1 s topic setup/drain/delete). Rate search: start
# 10,000 msg/s, x2 until a fail, then bisection to 10 %; <= 40 s and <= 8 steps per setting
# (12 settings: <= 8 min). Curves: 25/50/75/100 % x 3 repetitions = 144 runs (~12 min).
# Reference (workload settings, 5,000 msg/s): 3 runs at start and end. About 20 min each.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
shoal="${SHOAL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/shoal}"
tune="${SHOAL_TUNE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/shoal-tune}"
port="${SHOAL_PORT:-19392}"
info="${BROKER_INFO:-shoal 0.1.0, release build, default durability (fdatasync before ack)}"
runs=("$@")
[[ ${#runs[@]} -gt 0 ]] || runs=(run1 run2)
for name in "${runs[@]}"; do
  out="$here/$name"
  data="$(mktemp -d -t shoal-tune-data.XXXXXX)"
  mkdir -p "$out"
  "$shoal" serve --data-dir "$data" --listen "127.0.0.1:$port" 2>"$out/shoal.log" &
  pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$out/shoal.log" && break; sleep 0.1; done
  "$tune" sweep "$root/bench/workloads/tune-1-topic-16-partitions-1kb-1p-0c.toml" \
    --brokers "127.0.0.1:$port" --broker-info "$info" \
    --linger 0,1,5,20 --batch 16k,128k,1M --repetitions 3 --fractions 0.25,0.5,0.75,1 \
    --max-p99-ms 10 --warmup-s 1 --duration-s 3 \
    --rate-start 10000 --precision 0.1 --search-budget-s 40 --search-steps-max 8 \
    --reference-rate 5000 --out "$out" 2> "$out/sweep.log" > "$out/stdout.txt" || echo "sweep $name failed" >&2
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
done
