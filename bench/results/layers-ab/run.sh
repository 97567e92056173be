#!/usr/bin/env bash
# A/B of two shoal binaries with librdkafka's rdkafka_performance (built from the rdkafka-sys
# sources: examples/rdkafka_performance.c linked to the librdkafka.a cargo builds), interleaved,
# ROUNDS rounds: fresh node (2 shards), topic of 8 partitions, 300k x 1 KiB acks=all produce, then
# a catch-up consume of all 8 partitions.
#   run.sh BIN_A BIN_B [ROUNDS]   (RDKAFKA_PERF=path/to/rdkafka_performance, COUNT=records, default 300000)
set -euo pipefail
a=$1; b=$2; rounds=${3:-3}; count=${COUNT:-300000}
perf=${RDKAFKA_PERF:-rdkafka_performance}
port=19500
for round in $(seq 1 "$rounds"); do
  for label in A B; do
    bin=$a; [[ $label == B ]] && bin=$b
    dir=$(mktemp -d /tmp/shoal-ab.XXXXXX)
    "$bin" serve --data-dir "$dir/data" --listen 127.0.0.1:$port --cores 2 2>"$dir/log" &
    pid=$!
    for _ in $(seq 1 100); do grep -q "listening on" "$dir/log" && break; sleep 0.1; done
    "$bin" topic create perf -p 8 --brokers 127.0.0.1:$port >/dev/null
    p=$("$perf" -P -t perf -b 127.0.0.1:$port -s 1024 -c "$count" -X linger.ms=5 -X acks=all 2>&1 | grep -o "[0-9.]* MB/s" | tail -1 || true)
    c=$("$perf" -C -t perf -b 127.0.0.1:$port -p 0 -p 1 -p 2 -p 3 -p 4 -p 5 -p 6 -p 7 -o beginning -c "$count" 2>&1 | grep -o "[0-9.]* MB/s" | tail -1 || true)
    echo "round $round $label produce $p consume $c"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
