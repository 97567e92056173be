#!/usr/bin/env bash
# Issue 12, acceptance 2, in one sitting: shoal-bench's small-1-topic-16-partitions-1kb-1p-1c-10k
# (10k msg/s, acks=all, linger 1, sync before ack)
#   - 3 runs, each on a fresh node;
#   - 3 runs on one node that has just taken FILL_GB (default 5) of 1 KiB acks=all writes
#     (rdkafka_performance -P into another topic of 8 partitions);
#   - the maximum rate (one run, --rate 0), then 3 runs at half of it, each on a fresh node.
# Every run scrapes the broker's /metrics (per-stage breakdown in OUT/*.log).
#   run.sh SHOAL_BIN OUT_DIR      RDKAFKA_PERF=path/to/rdkafka_performance
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
bin=$1; out=$2
perf=${RDKAFKA_PERF:-rdkafka_performance}
fill_gb=${FILL_GB:-5}
workload="$here/bench/workloads/small-1-topic-16-partitions-1kb-1p-1c-10k.toml"
bench="$here/target/release/shoal-bench"
metrics=http://127.0.0.1:19644/metrics
mkdir -p "$out"
line() { # label dir
  local lat
  lat=$(grep "publish latency" "$2/summary.txt" | awk '{print "p50", $3, "p99", $6, "p99.9", $7}')
  echo "$1 publish $lat | load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out/summary.txt"
}
fresh() { # label [extra shoal-bench args]
  local label=$1; shift
  SHOAL_BIN=$bin SHOAL_SERVE_ARGS="--admin-listen 127.0.0.1:19644" \
    "$here/scripts/bench-local" "$workload" "$out/$label" -- --broker-metrics "$metrics" "$@" \
    >"$out/$label.log" 2>&1
  line "$label" "$out/$label"
}
for i in 1 2 3; do fresh "fresh-$i"; done

data=$(mktemp -d /tmp/shoal-tail.XXXXXX)
"$bin" serve --data-dir "$data" --listen 127.0.0.1:19630 --admin-listen 127.0.0.1:19644 \
  2>"$out/filled-node.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$out/filled-node.log" && break; sleep 0.1; done
"$bin" topic create fill -p 8 --brokers 127.0.0.1:19630 >/dev/null
count=$((fill_gb * 1000 * 1000 * 1000 / 1024))
fill=$("$perf" -P -t fill -b 127.0.0.1:19630 -s 1024 -c "$count" -X linger.ms=5 -X acks=all 2>&1 \
  | grep -o "[0-9.]* MB/s" | tail -1)
echo "filled $fill_gb GB at $fill" | tee -a "$out/summary.txt"
for i in 1 2 3; do
  "$bench" run "$workload" --brokers 127.0.0.1:19630 --out "$out/filled-$i" \
    --broker-metrics "$metrics" >"$out/filled-$i.log" 2>&1
  line "filled-$i" "$out/filled-$i"
done
kill $pid; wait $pid 2>/dev/null || true

fresh max --rate 0
max=$(grep -o "publish [0-9]* msg/s" "$out/max/summary.txt" | head -1 | grep -o "[0-9]*")
half=$((max / 2))
echo "max $max msg/s, half $half" | tee -a "$out/summary.txt"
for i in 1 2 3; do fresh "half-$i" --rate "$half"; done
