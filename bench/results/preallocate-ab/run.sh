#!/usr/bin/env bash
# Publish tail latency with and without segment preallocation: shoal-bench's
# small-1-topic-16-partitions-1kb-1p-1c-10k (10k msg/s, acks=all, linger 1, sync before ack) on
# a fresh node per run, A and B interleaved, ROUNDS rounds, with the broker-side breakdown.
#   run.sh BIN_A BIN_B [ROUNDS] [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
a=$1; b=$2; rounds=${3:-3}; out=${4:-/tmp/preallocate-ab}
workload="$here/bench/workloads/small-1-topic-16-partitions-1kb-1p-1c-10k.toml"
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for label in A B; do
    bin=$a; [[ $label == B ]] && bin=$b
    dir="$out/$label-$round"
    SHOAL_BIN=$bin SHOAL_SERVE_ARGS="--admin-listen 127.0.0.1:19644" \
      "$here/scripts/bench-local" "$workload" "$dir" -- \
      --broker-metrics http://127.0.0.1:19644/metrics >"$dir.log" 2>&1
    lat=$(grep "publish latency" "$dir/summary.txt" | awk '{print "p50", $3, "p99", $6, "p99.9", $7}')
    fsync=$(grep "shoal_log_fsync_seconds" "$dir.log" | awk '{print "fsync_mean_ms", $3, "p99<=", $5, "p99.9<=", $6}')
    echo "round $round $label publish $lat | $fsync | load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
