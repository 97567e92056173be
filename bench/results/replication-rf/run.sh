#!/usr/bin/env bash
# RF=1 against RF=3 acks=all on a local 3-node cluster (issue 11, acceptance 6), interleaved:
# per round, max rate and a fixed 10,000 msg/s for each RF, each on a fresh topic.
#   bench/results/replication-rf/run.sh [ROUNDS]     (default 3; ~2 min a round)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
rounds=${1:-3}
rm -rf bench/results/replication-rf/r[0-9]*
out=bench/results/replication-rf
bench=${SHOAL_BENCH_BIN:-target/release/shoal-bench}
cluster_dir=$(mktemp -d /tmp/shoal-rf-bench.XXXX)
scripts/cluster up 3 "$cluster_dir" >/dev/null
trap 'scripts/cluster down >/dev/null; rm -rf "$cluster_dir"' EXIT
brokers=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094
uptime >"$out/host.txt"
for round in $(seq 1 "$rounds"); do
    for mode in max 10k; do
        rate=$([[ $mode == max ]] && echo 0 || echo 10000)
        for rf in 1 3; do
            name="r$round-rf$rf-$mode"
            "$bench" run "bench/workloads/replication-16-partitions-1kb-rf$rf.toml" \
                --brokers "$brokers" --rate "$rate" --label "RF=$rf $mode" \
                --topic-prefix "rf$rf-$round-$mode" --out "$out/$name" --quiet
            # Max-rate runs write gigabytes per replica: drop each run's topic before the next.
            for t in $(target/release/shoal topic list | awk -v p="rf$rf-$round-$mode" 'index($1, p) == 1 {print $1}'); do
                target/release/shoal topic delete "$t" >/dev/null
            done
        done
    done
done
uptime >>"$out/host.txt"
python3 - "$out" <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
rows = {}
for d in sorted(out.glob("r*-rf*-*")):
    r = json.loads((d / "result.json").read_text())
    p = dict((q, v / 1000) for q, v in r["histograms"]["publish_latency"]["percentiles"])
    t = r["throughput"]
    key = d.name.split("-", 1)[1]
    rows.setdefault(key, []).append((t["publish_mb_per_s"], t["publish_msgs_per_s"], p[50.0], p[99.0], p[99.9], t["publish_errors"]))
def med(xs): return statistics.median(xs)
lines = ["| run | publish MB/s median [range] | p50 ms | p99 ms median [range] | p99.9 ms median [range] | errors |", "| --- | --- | --- | --- | --- | --- |"]
for key in sorted(rows):
    v = rows[key]
    col = lambda i: [x[i] for x in v]
    lines.append(f"| {key} | {med(col(0)):.1f} [{min(col(0)):.1f}-{max(col(0)):.1f}] | {med(col(2)):.2f} | {med(col(3)):.2f} [{min(col(3)):.2f}-{max(col(3)):.2f}] | {med(col(4)):.2f} [{min(col(4)):.2f}-{max(col(4)):.2f}] | {sum(col(5))} |")
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
