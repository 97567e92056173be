#!/usr/bin/env bash
# Acceptance 5 of issue 13: publish latency on a compacted partition, with and without the
# cleaner running, interleaved in one sitting.
#
#   produce-while-cleaning.sh ROUNDS OUT_DIR ARM...      ARM = label:node-config:shoal-binary
#
# node-config is node-cleaning or node-no-cleaning (the .toml beside this script). Each round
# runs every arm once, in the order given; one line per run is appended to OUT_DIR/rounds.txt:
# the publish latency columns (p50 p75 p95 p99 p99.9 p99.99 max samples), the cleaner passes
# the node logged, and the load average.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
rounds="$1" out="$2"
shift 2
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for arm in "$@"; do
    IFS=: read -r label config bin <<<"$arm"
    dir="$out/round-$round-$label"
    SHOAL_BIN="$bin" SHOAL_SERVE_ARGS="--config $here/$config.toml" SHOAL_BENCH_LABEL="$label" \
      "$repo/scripts/bench-local" "$here/produce-while-cleaning.toml" "$dir" >"$dir.stdout" 2>&1
    line="$(grep -m1 '^   publish latency' "$dir/summary.txt" | sed 's/^ *publish latency *//')"
    passes="$(grep -c 'cleaned:' "$dir/shoal.log" || true)"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    printf 'round %s %-14s %s passes %s load %s\n' "$round" "$label" "$line" "$passes" "$load" |
      tee -a "$out/rounds.txt"
  done
done
