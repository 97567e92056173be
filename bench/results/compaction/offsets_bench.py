"""__consumer_offsets under compaction (issue 13, acceptance 4).

Starts `shoal serve` (a fresh data dir), makes a confluent-kafka consumer group commit offsets
RATE times a second for DURATION seconds, samples the bytes of every `__consumer_offsets-*`
directory every SAMPLE seconds, then restarts the node (SIGTERM, start) and makes the group
fetch its offsets, which loads the coordinator; prints the load time the broker logs
("loaded N group(s) ... in M ms") and the figures as JSON.

    python offsets_bench.py --shoal target/release/shoal --duration 600 --rate 100

`[topic_defaults] segment.ms` is set (default 10 s) so the head segment rolls and becomes
cleanable; the cleaner runs with its defaults (log_cleaner_backoff_ms 15 s)."""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def offsets_bytes(data):
    total = 0
    for d in os.listdir(data):
        if d.startswith("__consumer_offsets-"):
            for f in os.listdir(os.path.join(data, d)):
                total += os.path.getsize(os.path.join(data, d, f))
    return total


def start(args, work, port, n):
    log = open(os.path.join(work, f"stderr.{n}.log"), "w")
    p = subprocess.Popen([args.shoal, "serve", "--config", os.path.join(work, "shoal.toml")],
                         stderr=log, stdout=log)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.1)
    sys.exit("broker did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shoal", required=True)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--sample", type=float, default=10)
    ap.add_argument("--segment-ms", type=int, default=10_000)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="shoal-offsets-bench-")
    data = os.path.join(work, "data")
    port = free_port()
    with open(os.path.join(work, "shoal.toml"), "w") as f:
        f.write(f'listen = "127.0.0.1:{port}"\nadmin_listen = ""\ndata_dir = "{data}"\n'
                f'[topic_defaults]\n"segment.ms" = "{args.segment_ms}"\n')
    broker = start(args, work, port, 0)
    bootstrap = f"127.0.0.1:{port}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("bench-input", 1, 1)])["bench-input"].result(30)
    group = "offsets-bench"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    tp = TopicPartition("bench-input", 0)
    c.assign([tp])
    samples = []
    started = time.time()
    next_sample = started
    commits = 0
    while time.time() - started < args.duration:
        due = started + commits / args.rate
        if due > time.time():
            time.sleep(due - time.time())
        c.commit(offsets=[TopicPartition("bench-input", 0, commits + 1)], asynchronous=False)
        commits += 1
        if time.time() >= next_sample:
            samples.append((round(time.time() - started, 1), offsets_bytes(data)))
            print(f"t={samples[-1][0]:7.1f}s commits={commits} __consumer_offsets={samples[-1][1]} B",
                  flush=True)
            next_sample += args.sample
    c.close()
    size_end = offsets_bytes(data)
    broker.send_signal(signal.SIGTERM)
    broker.wait(30)
    broker = start(args, work, port, 1)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    t0 = time.time()
    committed = c.committed([TopicPartition("bench-input", 0)], timeout=30)[0].offset
    fetch_s = time.time() - t0
    c.close()
    broker.send_signal(signal.SIGTERM)
    broker.wait(30)
    logs = open(os.path.join(work, "stderr.1.log")).read()
    loads = [(int(n), int(ms)) for n, ms in
             re.findall(r"loaded \d+ group\(s\) from __consumer_offsets-\d+ \((\d+) records\) in (\d+) ms", logs)]
    cleaned = sum(open(os.path.join(work, f"stderr.{i}.log")).read().count("cleaned: CleanReport")
                  for i in (0, 1))
    result = {
        "duration_s": args.duration, "rate_per_s": args.rate, "commits": commits,
        "committed_after_restart": committed, "expected_committed": commits,
        "offsets_bytes_samples": samples, "offsets_bytes_end": size_end,
        "offsets_bytes_max": max(s for _, s in samples) if samples else None,
        "cleaner_passes_logged": cleaned,
        "coordinator_load_records_ms": loads,
        "offset_fetch_after_restart_s": round(fetch_s, 3),
    }
    print(json.dumps(result, indent=1))
    if committed != commits:
        sys.exit(f"committed offset after restart {committed}, expected {commits}")


if __name__ == "__main__":
    main()
