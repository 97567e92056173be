"""confluent-kafka consumer groups under failure and scale (issue 4, acceptance 3, 4 and 5).
Members are separate processes (--role member) that subscribe, commit manually after each
processed batch and report on stdout: 'A p,p,...' per assignment (on_assign), 'A' on revoke,
'R partition offset' per record, 'C p:o ...' per commit, 'HANG' when a victim stops.

--mode failover: 3 members settle 2/2/2, records are produced; one member commits until
  --commit-until records, processes --uncommitted more without committing and is SIGKILLed.
  Its partitions must move to the other two within session.timeout.ms + one rebalance, who
  resume at its last commit; everything is consumed; duplicates are exactly its uncommitted tail.
--mode scale: 3 members (2 each), then a 4th and 5th (every member >= 1, disjoint, all 6), then a
  6th (1 each) and a 7th, which gets none and stays idle while records are consumed.
--mode phase1 / phase2 (broker SIGKILLed and restarted in between by the Rust test, state in
  --state): phase1 commits part of the topic, processes an uncommitted tail and exits without
  leaving; phase2 in the same group must see the same high watermarks and committed offsets and
  resume exactly there (nothing before the commit re-read, nothing lost)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException

import groupcheck
import kafkacheck
from kafkacheck import check

SESSION_TIMEOUT_MS = groupcheck.SESSION_TIMEOUT_MS
REBALANCE_S_MAX = 9.0  # one rebalance after the session expired, bounded generously


consumer = groupcheck.manual_commit_consumer


def commit(c):
    """Synchronous commit of the consumed positions; the committed 'p:o' list (o >= 0), or None
    when the group is rebalancing (the records are then redelivered: at-least-once)."""
    try:
        tps = c.commit(asynchronous=False)
    except KafkaException as e:
        print(f"E commit: {e}", flush=True)
        return None
    return [(tp.partition, tp.offset) for tp in tps if tp.offset >= 0 and tp.error is None]


def member(args):
    c = consumer(args.bootstrap, args.group, args.name)

    def on_assign(_c, tps):
        print("A " + ",".join(str(tp.partition) for tp in tps), flush=True)

    def on_revoke(_c, _tps):
        print("A", flush=True)

    c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    processed = 0
    limit = args.commit_until if args.commit_until >= 0 else None
    while True:
        msgs = c.consume(num_messages=args.batch, timeout=0.1)
        lines = []
        for m in msgs:
            if m.error() is not None:
                raise RuntimeError(f"consume: {m.error()}")
            lines.append(f"R {m.partition()} {m.offset()}")
        if not lines:
            continue
        processed += len(lines)
        print("\n".join(lines), flush=True)
        if limit is None or processed <= limit:
            done = commit(c)
            if done:
                print("C " + " ".join(f"{p}:{o}" for p, o in done), flush=True)
        elif processed >= limit + args.uncommitted:
            print("HANG", flush=True)
            while True:
                time.sleep(3600)


class Member:
    """A member process and what it reported (read by a thread)."""

    def __init__(self, args, group, name, commit_until=-1, uncommitted=0, batch=100):
        cmd = [sys.executable, "-u", os.path.abspath(__file__), "--bootstrap", args.bootstrap, "--topic", args.topic]
        cmd += ["--mode", "member", "--group", group, "--name", name, "--batch", str(batch)]
        cmd += ["--commit-until", str(commit_until), "--uncommitted", str(uncommitted)]
        self.name = name
        self.lock = threading.Lock()
        self.assignment = None  # None until the first on_assign
        self.assignments = []
        self.records = []  # (partition, offset) in order
        self.commits = {}  # partition -> last committed offset
        self.hang = False
        self.errors = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            with self.lock:
                if kind == "A":
                    self.assignment = frozenset(int(p) for p in rest.split(",") if p)
                    self.assignments.append(sorted(self.assignment))
                elif kind == "R":
                    p, o = rest.split()
                    self.records.append((int(p), int(o)))
                elif kind == "C":
                    for p, o in (map(int, x.split(":")) for x in rest.split()):
                        self.commits[p] = o
                elif kind == "HANG":
                    self.hang = True
                elif kind == "E":
                    self.errors.append(rest)

    def alive(self):
        if self.proc.poll() is not None:
            raise kafkacheck.CheckFailed(
                f"member {self.name} exited {self.proc.returncode}: {self.proc.stderr.read()[-2000:]}"
            )
        return True

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.reader.join(10)


def settled(members, partitions, sizes):
    """Every member has an assignment of a size in sizes; disjoint; union = all partitions."""
    for m in members:
        m.alive()
    with_locks = []
    for m in members:
        with m.lock:
            with_locks.append(m.assignment)
    if any(a is None or len(a) not in sizes for a in with_locks):
        return False
    return sum(len(a) for a in with_locks) == partitions and frozenset().union(*with_locks) == frozenset(range(partitions))


def state(members):
    return {m.name: {"assignments": m.assignments[-4:], "records": len(m.records), "errors": m.errors[-2:]} for m in members}


def all_consumed(members, hw):
    seen = set()
    for m in members:
        with m.lock:
            seen.update(m.records)
    return all((p, o) in seen for p, n in hw.items() for o in range(n))


def failover(args):
    group = f"failover-{args.topic}"
    groupcheck.create_topic(args.bootstrap, args.topic, args.partitions)
    victim = Member(args, group, "victim", args.commit_until, args.uncommitted, batch=50)
    members = [Member(args, group, f"m{i}") for i in range(2)] + [victim]
    survivors = members[:2]
    try:
        t0 = time.monotonic()
        groupcheck.wait_until("3 members to settle 2/2/2", 20, lambda: settled(members, args.partitions, {2}), lambda: state(members))
        settle_s = time.monotonic() - t0
        groupcheck.produce(args.bootstrap, args.topic, args.count, 30)
        hw = groupcheck.high_watermarks(args.bootstrap, args.topic, args.partitions)
        victim_parts = victim.assignment
        check(sum(hw[p] for p in victim_parts) > args.commit_until + args.uncommitted, f"victim partitions {sorted(victim_parts)} hold too few records: {hw}")

        def survivors_done():
            # Survivors processed and committed all of their partitions: nothing of theirs is uncommitted.
            for m in survivors:
                with m.lock:
                    if any(m.commits.get(p, 0) < hw[p] for p in m.assignment):
                        return False
            return victim.alive() and victim.hang

        groupcheck.wait_until("the victim to stop after its uncommitted tail and the survivors to commit all", 20, survivors_done, lambda: state(members))
        t_kill = time.monotonic()
        victim.kill()
        check(victim.proc.returncode == -signal.SIGKILL, f"victim exit status {victim.proc.returncode}")
        last_commit = {p: victim.commits.get(p, 0) for p in victim_parts}
        vrec = list(victim.records)
        uncommitted = {(p, o) for p, o in vrec if o >= last_commit[p]}
        check(uncommitted, "the victim processed nothing after its last commit: the crash tested nothing")
        check(any(o > 0 for o in last_commit.values()), f"the victim committed nothing: {victim.commits}")
        marks = {m.name: len(m.records) for m in survivors}

        groupcheck.wait_until(
            f"the victim's partitions {sorted(victim_parts)} to move to the survivors",
            SESSION_TIMEOUT_MS / 1000 + REBALANCE_S_MAX,
            lambda: settled(survivors, args.partitions, {3}),
            lambda: state(survivors),
        )
        takeover_s = time.monotonic() - t_kill
        groupcheck.wait_until("everything below the high watermarks to be consumed", 15, lambda: all_consumed(members, hw), lambda: state(survivors))
        groupcheck.wait_until(
            "the committed offsets to reach the high watermarks",
            10,
            lambda: groupcheck.committed(args.bootstrap, group, args.topic, args.partitions) == hw,
            lambda: groupcheck.committed(args.bootstrap, group, args.topic, args.partitions),
        )
        after = [r for m in survivors for r in m.records[marks[m.name] :]]
        for p in victim_parts:
            offsets = [o for q, o in after if q == p]
            check(offsets and min(offsets) == last_commit[p], f"partition {p}: survivors resumed at {min(offsets) if offsets else None}, last commit {last_commit[p]}")
        everything = vrec + [r for m in survivors for r in m.records]
        counts = {}
        for r in everything:
            counts[r] = counts.get(r, 0) + 1
        dups = {r for r, n in counts.items() if n > 1}
        check(all(counts[r] == 2 for r in dups), "a record was consumed more than twice")
        check(dups == uncommitted, f"duplicates {sorted(dups - uncommitted)[:5]}.. != the victim's uncommitted tail ({len(dups)} vs {len(uncommitted)})")
        check(len(counts) == sum(hw.values()), f"consumed {len(counts)} distinct records, high watermarks sum {sum(hw.values())}")
        return {
            "settle_s": round(settle_s, 2),
            "takeover_s": round(takeover_s, 2),
            "victim_partitions": sorted(victim_parts),
            "victim_committed": last_commit,
            "redelivered": len(dups),
            "survivors": {m.name: sorted(m.assignment) for m in survivors},
        }
    finally:
        for m in members:
            m.kill()


def scale(args):
    group = f"scale-{args.topic}"
    groupcheck.create_topic(args.bootstrap, args.topic, args.partitions)
    members = [Member(args, group, f"m{i}") for i in range(3)]
    times = {}
    try:
        t0 = time.monotonic()
        groupcheck.wait_until("3 members to settle 2/2/2", 20, lambda: settled(members, args.partitions, {2}), lambda: state(members))
        times["3"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        members += [Member(args, group, f"m{i}") for i in (3, 4)]
        groupcheck.wait_until("5 members to spread 6 partitions", 20, lambda: settled(members, args.partitions, {1, 2}), lambda: state(members))
        times["5"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        members.append(Member(args, group, "m5"))
        groupcheck.wait_until("6 members to hold one partition each", 20, lambda: settled(members, args.partitions, {1}), lambda: state(members))
        times["6"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        idle = Member(args, group, "m6")
        groupcheck.wait_until(
            "the 7th member to get an empty assignment while 6 hold one each",
            20,
            lambda: idle.alive() and idle.assignment == frozenset() and settled(members, args.partitions, {1}),
            lambda: state(members + [idle]),
        )
        times["7"] = round(time.monotonic() - t0, 2)
        delivered = groupcheck.produce(args.bootstrap, args.topic, args.count, 30)
        hw = groupcheck.high_watermarks(args.bootstrap, args.topic, args.partitions)
        groupcheck.wait_until("the 6 members to consume everything", 15, lambda: all_consumed(members, hw), lambda: state(members + [idle]))
        check(settled(members, args.partitions, {1}), f"rebalanced while consuming: {state(members)}")
        check(idle.alive() and not idle.records, f"the 7th member consumed {len(idle.records)} records")
        check(all(a == [] for a in idle.assignments), f"the 7th member was assigned partitions: {idle.assignments}")
        consumed = [r for m in members for r in m.records]
        check(len(consumed) == len(set(consumed)) == len(delivered), f"{len(consumed)} consumed ({len(set(consumed))} distinct), {len(delivered)} produced")
        return {"settle_s": times, "assignments": {m.name: sorted(m.assignment) for m in members + [idle]}}
    finally:
        for m in members:
            m.kill()
        if "idle" in locals():
            idle.kill()


def phase1(args):
    group = f"restart-{args.topic}"
    groupcheck.create_topic(args.bootstrap, args.topic, args.partitions)
    delivered = groupcheck.produce(args.bootstrap, args.topic, args.count, 30)
    hw = groupcheck.high_watermarks(args.bootstrap, args.topic, args.partitions)
    c = consumer(args.bootstrap, group, "phase1")
    c.subscribe([args.topic])
    records = []
    last_commit = {}
    deadline = time.monotonic() + 20
    while len(records) < args.commit_until + args.uncommitted:
        check(time.monotonic() < deadline, f"phase1 consumed only {len(records)} records in 20s")
        batch = c.consume(num_messages=100, timeout=0.2)
        for m in batch:
            check(m.error() is None, f"consume: {m.error()}")
            records.append((m.partition(), m.offset()))
        # Commit only after a processed batch (an empty commit fails with _NO_OFFSET).
        if batch and len(records) <= args.commit_until:
            done = commit(c)
            check(done is not None, "phase1 commit failed")
            last_commit.update(dict(done))
    with open(args.state, "w") as f:
        json.dump({"hw": hw, "delivered": len(delivered), "commit": last_commit, "records": records}, f)
    print(json.dumps({"ok": True, "records": len(records), "commit": last_commit}), flush=True)
    os._exit(0)  # no close: no LeaveGroup, no further commit


def phase2(args):
    group = f"restart-{args.topic}"
    with open(args.state) as f:
        st = json.load(f)
    hw_before = {int(p): o for p, o in st["hw"].items()}
    last_commit = {int(p): o for p, o in st["commit"].items()}
    before = [tuple(r) for r in st["records"]]
    hw = groupcheck.high_watermarks(args.bootstrap, args.topic, args.partitions)
    check(hw == hw_before, f"high watermarks after the restart {hw} != before {hw_before}")
    got = groupcheck.committed(args.bootstrap, group, args.topic, args.partitions)
    want = {p: last_commit.get(p, -1001) for p in range(args.partitions)}
    check(got == want, f"committed offsets after the restart {got} != committed before {want}")
    start = {p: last_commit.get(p, 0) for p in range(args.partitions)}
    t0 = time.monotonic()
    c = consumer(args.bootstrap, group, "phase2")
    c.subscribe([args.topic])
    nxt = dict(start)
    after = groupcheck.resume_in_order(
        c, "phase2", nxt, hw, time.monotonic() + 20, lambda: f"phase2 reached only {nxt} of {hw} in 20s", last_commit
    )
    resume_s = time.monotonic() - t0
    check(commit(c) is not None, "phase2 commit failed")
    c.close()
    union = set(before) | set(after)
    check(len(union) == sum(hw.values()) == st["delivered"], f"union {len(union)} records, high watermarks {hw}, produced {st['delivered']}")
    dups = set(before) & set(after)
    tail = {(p, o) for p, o in before if o >= start[p]}
    check(tail, "phase1 left no uncommitted tail: the restart tested nothing")
    check(any(o > 0 for o in last_commit.values()), "phase1 committed nothing: the restart tested nothing")
    check(dups == tail, f"re-read {len(dups)} records, the uncommitted tail is {len(tail)}")
    check(groupcheck.committed(args.bootstrap, group, args.topic, args.partitions) == hw, "final commit != high watermarks")
    return {"resume_s": round(resume_s, 2), "reread": len(dups), "phase2_records": len(after)}


def main():
    ap = groupcheck.parser(__doc__)
    ap.add_argument("--mode", required=True, choices=["failover", "scale", "phase1", "phase2", "member"])
    ap.add_argument("--group")
    ap.add_argument("--name")
    ap.add_argument("--state")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--commit-until", type=int, default=-1)
    ap.add_argument("--uncommitted", type=int, default=0)
    args = ap.parse_args()
    if args.mode == "member":
        member(args)
        return None
    return {"failover": failover, "scale": scale, "phase1": phase1, "phase2": phase2}[args.mode](args)


if __name__ == "__main__":
    kafkacheck.run(main)
