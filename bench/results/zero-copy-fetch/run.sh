#!/usr/bin/env bash
# Catch-up consume, zero-copy fetch against copying fetch (and optionally a baseline binary),
# interleaved, ROUNDS rounds. Each run: a fresh node (2 shards), a topic of 8 partitions,
# COUNT x 1 KiB records produced with acks=all, then rdkafka_performance consumes all 8
# partitions from the beginning (page cache warm). Reports consume MB/s and the broker's
# CPU-seconds (utime+stime of all its threads, /proc/PID/stat) per GB produced and consumed.
#   run.sh SHOAL_BIN [ROUNDS] [BASE_BIN]
#   RDKAFKA_PERF=path/to/rdkafka_performance COUNT=records (default 2100000: 2.1 GB)
set -euo pipefail
bin=$1; rounds=${2:-3}; base=${3:-}
perf=${RDKAFKA_PERF:-rdkafka_performance}
count=${COUNT:-2100000}
port=19600
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
modes="zerocopy copy"; [[ -n $base ]] && modes="$modes base"
echo "# $(date -u +%FT%TZ) count=$count rounds=$rounds"
for round in $(seq 1 "$rounds"); do
  for mode in $modes; do
    dir=$(mktemp -d /tmp/shoal-zc.XXXXXX)
    b=$bin; [[ $mode == base ]] && b=$base
    zc=true; [[ $mode == copy ]] && zc=false
    echo "fetch_zero_copy = $zc" >"$dir/node.toml"
    args=(serve --data-dir "$dir/data" --listen 127.0.0.1:$port --cores 2 --admin-listen "")
    [[ $mode != base ]] && args+=(--config "$dir/node.toml")
    "$b" "${args[@]}" 2>"$dir/log" &
    pid=$!
    for _ in $(seq 1 100); do grep -q "listening on" "$dir/log" && break; sleep 0.1; done
    "$b" topic create perf -p 8 --brokers 127.0.0.1:$port >/dev/null
    pbefore=$(cpu_ticks $pid)
    p=$("$perf" -P -t perf -b 127.0.0.1:$port -s 1024 -c "$count" -X linger.ms=5 -X acks=all 2>&1 \
      | grep -o "[0-9.]* MB/s" | tail -1 || true)
    pafter=$(cpu_ticks $pid)
    pcpu=$(awk -v t=$((pafter - pbefore)) -v k=$tck -v b=$((count * 1024)) \
      'BEGIN { printf "%.3f", (t / k) / (b / 1e9) }')
    sleep 1
    before=$(cpu_ticks $pid)
    out=$("$perf" -C -t perf -b 127.0.0.1:$port -p 0 -p 1 -p 2 -p 3 -p 4 -p 5 -p 6 -p 7 \
      -o beginning -c "$count" 2>&1 || true)
    after=$(cpu_ticks $pid)
    c=$(echo "$out" | grep -o "[0-9.]* MB/s" | tail -1)
    mb=$(echo "$out" | grep -o "[0-9]* bytes" | tail -1 | grep -o "[0-9]*")
    cpu=$(awk -v t=$((after - before)) -v k=$tck -v b="${mb:-0}" \
      'BEGIN { if (b > 0) printf "%.3f", (t / k) / (b / 1e9); else print "?" }')
    echo "round $round $mode produce $p cpu_s_per_gb $pcpu consume $c cpu_s_per_gb $cpu bytes ${mb:-?}"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
