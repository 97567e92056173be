#!/usr/bin/env bash
# Broker CPU per GB produced (issue 12, acceptance 4), binaries interleaved, ROUNDS rounds.
# Each run: a fresh node (2 shards), a topic of 8 partitions, COUNT x 1 KiB records from
# rdkafka_performance -P (acks=all, linger.ms=5). Broker CPU = utime+stime of all its threads
# (/proc/PID/stat) over the produce, divided by the GB produced.
#   run.sh ROUNDS LABEL=SHOAL_BIN...
#   RDKAFKA_PERF=path/to/rdkafka_performance COUNT=records (default 2100000: 2.1 GB)
#   WARM_MB=N: before each run, write and delete an N MB file, so that the page cache the run
#   fills comes from pages the guest touched recently (on this VM a page the host took back
#   costs a fault on first touch: dd of 2 GB into fresh pages took 5.4 s of system time, into
#   just-freed ones 0.5 s). 0 (the default) skips it.
set -euo pipefail
rounds=$1; shift
perf=${RDKAFKA_PERF:-rdkafka_performance}
count=${COUNT:-2100000}
port=19610
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "# $(date -u +%FT%TZ) count=$count rounds=$rounds"
for round in $(seq 1 "$rounds"); do
  for arm in "$@"; do
    label=${arm%%=*} bin=${arm#*=}
    dir=$(mktemp -d /tmp/shoal-pcpu.XXXXXX)
    if [[ ${WARM_MB:-0} -gt 0 ]]; then
      dd if=/dev/zero of="$dir/warm" bs=1M count="$WARM_MB" status=none && rm "$dir/warm"
    fi
    "$bin" serve --data-dir "$dir/data" --listen 127.0.0.1:$port --cores 2 --admin-listen "" \
      2>"$dir/log" &
    pid=$!
    for _ in $(seq 1 100); do grep -q "listening on" "$dir/log" && break; sleep 0.1; done
    "$bin" topic create perf -p 8 --brokers 127.0.0.1:$port >/dev/null
    before=$(cpu_ticks $pid)
    mbs=$("$perf" -P -t perf -b 127.0.0.1:$port -s 1024 -c "$count" -X linger.ms=5 -X acks=all \
      2>&1 | grep -o "[0-9.]* MB/s" | tail -1 || true)
    after=$(cpu_ticks $pid)
    cpu=$(awk -v t=$((after - before)) -v k="$tck" -v b=$((count * 1024)) \
      'BEGIN { printf "%.3f", (t / k) / (b / 1e9) }')
    echo "round $round $label produce $mbs cpu_s_per_gb $cpu load $(cut -d' ' -f1 /proc/loadavg)"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
