"""confluent-kafka, manual commit after processing (enable.auto.commit=false): a consumer
process commits after each processed batch, then polls and processes more records without
committing and is SIGKILLed. A new consumer in the same group must resume exactly at the last
commit: the union of both has no gaps (at-least-once) and the only duplicates are records after
the last commit."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer

import groupcheck
import kafkacheck
from kafkacheck import check

SESSION_TIMEOUT_MS = groupcheck.SESSION_TIMEOUT_MS


consumer = groupcheck.manual_commit_consumer


def victim(args):
    """Prints 'R partition offset' per processed record, 'C p:o ...' per commit, then 'HANG'."""
    c = consumer(args.bootstrap, args.group, "victim")
    c.subscribe([args.topic])
    processed = 0
    committing = True
    while True:
        msgs = c.consume(num_messages=200, timeout=0.2)
        lines = []
        for m in msgs:
            if m.error() is not None:
                raise RuntimeError(f"consume: {m.error()}")
            lines.append(f"R {m.partition()} {m.offset()}")
        processed += len(lines)
        if lines:
            print("\n".join(lines), flush=True)
        if committing and lines:
            tps = c.commit(asynchronous=False)
            print("C " + " ".join(f"{tp.partition}:{tp.offset}" for tp in tps), flush=True)
            if processed >= args.commit_until:
                committing = False
                target = processed + args.uncommitted
        elif not committing and processed >= target:
            print("HANG", flush=True)
            time.sleep(3600)


def main():
    ap = groupcheck.parser(__doc__)
    ap.add_argument("--role", default="parent", choices=["parent", "victim"])
    ap.add_argument("--group")
    ap.add_argument("--commit-until", type=int, default=2000, help="victim commits until it processed this many")
    ap.add_argument("--uncommitted", type=int, default=500, help="then processes this many more without committing")
    args = ap.parse_args()
    if args.role == "victim":
        victim(args)
        return None

    group = f"manual-{args.topic}"
    groupcheck.create_topic(args.bootstrap, args.topic, args.partitions)
    delivered = groupcheck.produce(args.bootstrap, args.topic, args.count, args.timeout)
    hw = groupcheck.high_watermarks(args.bootstrap, args.topic, args.partitions)

    cmd = [sys.executable, "-u", os.path.abspath(__file__), "--bootstrap", args.bootstrap, "--topic", args.topic]
    cmd += ["--role", "victim", "--group", group, "--commit-until", str(args.commit_until)]
    cmd += ["--uncommitted", str(args.uncommitted)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.rstrip("\n")) for l in proc.stdout] and None, daemon=True).start()
    victim_records = []
    last_commit = {}
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise kafkacheck.CheckFailed(
                    f"victim did not reach its uncommitted tail within {args.timeout}s (exit {proc.poll()}, "
                    f"{len(victim_records)} records); stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
                )
            if line == "HANG":
                break
            kind, _, rest = line.partition(" ")
            if kind == "R":
                p, o = rest.split()
                victim_records.append((int(p), int(o)))
            elif kind == "C":
                # librdkafka returns every assigned partition but commits only valid positions.
                for p, o in (map(int, x.split(":")) for x in rest.split()):
                    if o >= 0:
                        last_commit[p] = o
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    check(proc.returncode == -signal.SIGKILL, f"victim exit status {proc.returncode}, not SIGKILL")

    # What the broker holds is exactly the victim's last commit.
    start = {p: (o if o >= 0 else 0) for p, o in last_commit.items()}
    for p in range(args.partitions):
        start.setdefault(p, 0)
    broker_committed = groupcheck.committed(args.bootstrap, group, args.topic, args.partitions)
    want = {p: last_commit.get(p, -1001) for p in range(args.partitions)}
    check(broker_committed == want, f"committed offsets {broker_committed} != the victim's last commit {want}")
    uncommitted = [(p, o) for p, o in victim_records if o >= start[p]]
    check(uncommitted, "the victim processed nothing after its last commit: the crash tested nothing")

    t0 = time.monotonic()
    c = consumer(args.bootstrap, group, "survivor")
    c.subscribe([args.topic])
    nxt = dict(start)
    survivor = groupcheck.resume_in_order(
        c,
        "survivor",
        nxt,
        hw,
        time.monotonic() + args.timeout,
        lambda: f"survivor reached only {nxt} of high watermarks {hw} within {args.timeout}s "
        f"(assignment {[tp.partition for tp in c.assignment()]})",
        last_commit,
    )
    resume_s = time.monotonic() - t0
    c.commit(asynchronous=False)
    c.close()

    union = set(victim_records) | set(survivor)
    gaps = [(p, o) for p in range(args.partitions) for o in range(hw[p]) if (p, o) not in union]
    check(not gaps, f"{len(gaps)} records consumed by neither consumer, first: {gaps[:5]}")
    check(len(union) == len(delivered), f"union has {len(union)} records, produced {len(delivered)}")
    dups = set(victim_records) & set(survivor)
    check(all(o >= start[p] for p, o in dups), "a record before the last commit was delivered again")
    check(dups == set(uncommitted), f"duplicates {len(dups)} != the victim's uncommitted tail {len(uncommitted)}")
    check(len(set(victim_records)) == len(victim_records), "victim got a record twice")
    final = groupcheck.committed(args.bootstrap, group, args.topic, args.partitions)
    check(final == hw, f"final committed offsets {final} != high watermarks {hw}")
    return {
        "victim_records": len(victim_records),
        "uncommitted_redelivered": len(dups),
        "survivor_records": len(survivor),
        "resume_s": round(resume_s, 2),
    }


if __name__ == "__main__":
    kafkacheck.run(main)
