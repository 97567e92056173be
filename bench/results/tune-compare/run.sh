#!/usr/bin/env bash
# `shoal-tune compare` demo: the same sweep against two local Shoal nodes in one sitting,
# interleaved: default durability (fdatasync before ack) vs Kafka-style flushing
# (flush.ms=1000, bench/results/compare-fsync/kafka-style-flush.toml).
# 2 settings x 2 targets, no latency goal (capacity), 3 repetitions at 50 % and 100 %.
#
#   SHOAL_BIN=... SHOAL_TUNE_BIN=... bench/results/tune-compare/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
shoal="${SHOAL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/shoal}"
tune="${SHOAL_TUNE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/shoal-tune}"
a="$(mktemp -d -t shoal-cmp-a.XXXXXX)"; b="$(mktemp -d -t shoal-cmp-b.XXXXXX)"
"$shoal" serve --data-dir "$a" --listen 127.0.0.1:19393 2>"$here/shoal-default.log" &
pa=$!
"$shoal" serve --data-dir "$b" --listen 127.0.0.1:19394 \
  --config "$root/bench/results/compare-fsync/kafka-style-flush.toml" 2>"$here/shoal-flush-ms-1000.log" &
pb=$!
trap 'kill $pa $pb 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$a" "$b"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$here/shoal-default.log" && grep -q "listening on" "$here/shoal-flush-ms-1000.log" && break
  sleep 0.1
done
"$tune" compare "$root/bench/workloads/tune-1-topic-16-partitions-1kb-1p-0c.toml" \
  --brokers 127.0.0.1:19393 --broker-info "shoal 0.1.0 release, default durability (fdatasync before ack)" \
  --brokers 127.0.0.1:19394 --broker-info "shoal 0.1.0 release, flush.ms=1000 (ack after the write)" \
  --linger 1,5 --batch 128k --repetitions 3 --fractions 0.5,1 \
  --warmup-s 1 --duration-s 3 --rate-start 10000 --search-budget-s 25 --search-steps-max 6 \
  --reference-rate 5000 --out "$here" 2> "$here/sweep.log" > "$here/stdout.txt"
