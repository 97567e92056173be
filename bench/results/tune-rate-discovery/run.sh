#!/usr/bin/env bash
# Acceptance 1 of issue 14: the same sweep twice, each against a fresh local Shoal node.
# 4 linger x 3 batch sizes, rate discovery with a p99 goal of 10 ms, 3 repetitions.
#
#   SHOAL_BIN=... SHOAL_TUNE_BIN=... bench/results/tune-rate-discovery/run.sh [run1 run2]
#
# Rate search: runs of 1 s warm-up + 2 s measured (+ ~1.5 s topic setup/drain/delete); start
# 10,000 msg/s, x2 until a fail, then bisection to 10 %; a step whose first run fails is
# repeated until 2 of 3 runs agree; <= 45 s and <= 8 steps per setting (a search that ends
# below the shared grid gets one second look). Then, in 3 shuffled rounds: each setting's curve
# points at 25/50/75/100 % of its own search result (those below the grid), and the shared grid
# (50/67/83/100 % of the highest search result, the same absolute rates for every setting that
# reached it), 1 s warm-up + 3 s measured each. Reference (workload settings, 5,000 msg/s):
# 3 runs at start and end. About 22 min each.
#
# (quiet1, quiet2 and run1-run4 ran the earlier command: single-run search steps of 1 + 3 s
# within 40 s, curves at 25-100 % of each setting's own result, no shared grid. Their
# sweep.json records it.)
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
  for _ in $(seq 1 100); do grep -qs "listening on" "$out/shoal.log" && break; sleep 0.1; done
  "$tune" sweep "$root/bench/workloads/tune-1-topic-16-partitions-1kb-1p-0c.toml" \
    --brokers "127.0.0.1:$port" --broker-info "$info" \
    --linger 0,1,5,20 --batch 16k,128k,1M --repetitions 3 --fractions 0.25,0.5,0.75,1 \
    --max-p99-ms 10 --warmup-s 1 --duration-s 3 \
    --rate-start 10000 --precision 0.1 --search-budget-s 45 --search-steps-max 8 \
    --search-duration-s 2 --search-confirm 3 --grid 0.5,0.667,0.833,1 \
    --reference-rate 5000 --out "$out" 2> "$out/sweep.log" > "$out/stdout.txt" || echo "sweep $name failed" >&2
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
done
