"""Consumer groups with subscribe(): one script for the distributed queue and for pub/sub, with
confluent-kafka, kafka-python or aiokafka consumers (each member a thread; aiokafka members run
their own event loop). --groups "NAME:MEMBERS,...": every group's members must settle on a
balanced, disjoint assignment covering all partitions; then --count records are produced
(confluent-kafka) and every group must receive each of them exactly once (no gaps, no
duplicates), with no rebalance meanwhile; members commit manually, and the committed offsets
must equal the high watermarks."""

import asyncio
import threading
import time

import groupcheck
import kafkacheck
from kafkacheck import check


class Member:
    def __init__(self, client, bootstrap, topic, group, name):
        self.client = client
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.name = name
        self.assignment = frozenset()
        self.assignments = []  # every distinct assignment seen, in order
        self.records = []  # (partition, offset, value)
        self.stop = threading.Event()
        self.done = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _saw(self, partitions):
        a = frozenset(partitions)
        if a != self.assignment or not self.assignments:
            self.assignment = a
            self.assignments.append(sorted(a))

    def _main(self):
        try:
            if self.client == "confluent":
                self._run_confluent()
            elif self.client == "kafka-python":
                self._run_kafka_python()
            else:
                asyncio.run(self._run_aiokafka())
        except Exception as e:  # reported by the main thread
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.done.set()

    def _run_confluent(self):
        from confluent_kafka import Consumer

        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "client.id": self.name,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
            }
        )
        c.subscribe([self.topic])
        while not self.stop.is_set():
            for m in c.consume(num_messages=1000, timeout=0.1):
                if m.error() is not None:
                    raise RuntimeError(f"consume: {m.error()}")
                self.records.append((m.partition(), m.offset(), m.value()))
            self._saw(tp.partition for tp in c.assignment())
        c.commit(asynchronous=False)
        c.close()

    def _python_config(self):
        """kafka-python and aiokafka take the same consumer settings."""
        return dict(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )

    def _run_kafka_python(self):
        from kafka import KafkaConsumer

        c = KafkaConsumer(**self._python_config())
        c.subscribe([self.topic])
        while not self.stop.is_set():
            for tp, msgs in c.poll(timeout_ms=100, max_records=1000).items():
                for m in msgs:
                    self.records.append((m.partition, m.offset, m.value))
            self._saw(tp.partition for tp in c.assignment())
        c.commit()
        c.close()

    async def _run_aiokafka(self):
        from aiokafka import AIOKafkaConsumer

        c = AIOKafkaConsumer(**self._python_config())
        c.subscribe([self.topic])
        await c.start()
        try:
            while not self.stop.is_set():
                batches = await c.getmany(timeout_ms=100, max_records=1000)
                for tp, msgs in batches.items():
                    for m in msgs:
                        self.records.append((m.partition, m.offset, m.value))
                self._saw(tp.partition for tp in c.assignment())
            await c.commit()
        finally:
            await c.stop()


def main():
    ap = groupcheck.parser(__doc__)
    ap.add_argument("--client", required=True, choices=["confluent", "kafka-python", "aiokafka"])
    ap.add_argument("--groups", required=True, help='"NAME:MEMBERS,..."')
    ap.add_argument("--no-create", action="store_true", help="the topic already exists")
    args = ap.parse_args()
    groups = {}
    for spec in args.groups.split(","):
        name, n = spec.split(":")
        groups[f"{name}-{args.topic}"] = int(n)

    if not args.no_create:
        groupcheck.create_topic(args.bootstrap, args.topic, args.partitions)
    members = {g: [Member(args.client, args.bootstrap, args.topic, g, f"{g}-m{i}") for i in range(n)] for g, n in groups.items()}
    everyone = [m for ms in members.values() for m in ms]
    for m in everyone:
        m.thread.start()

    def failed():
        for m in everyone:
            if m.done.is_set():
                raise kafkacheck.CheckFailed(f"member {m.name} stopped early: {m.error}")
        return False

    def state():
        return {m.name: m.assignments for m in everyone}

    def stable():
        failed()
        for g, ms in members.items():
            want = args.partitions // len(ms)
            seen = [m.assignment for m in ms]
            if any(len(a) not in (want, want + 1) for a in seen):
                return False
            if sum(len(a) for a in seen) != args.partitions or frozenset().union(*seen) != frozenset(range(args.partitions)):
                return False
        return True

    t0 = time.monotonic()
    groupcheck.wait_until("every group to settle on a balanced assignment", args.timeout, stable, state)
    settle_s = time.monotonic() - t0
    settled = {m.name: m.assignment for m in everyone}
    for g, ms in members.items():
        if args.partitions % len(ms) == 0:
            for m in ms:
                check(len(m.assignment) == args.partitions // len(ms), f"{m.name}: assignment {sorted(m.assignment)}")

    t1 = time.monotonic()
    delivered = groupcheck.produce(args.bootstrap, args.topic, args.count, args.timeout)
    produce_s = time.monotonic() - t1

    def total(g):
        return sum(len(m.records) for m in members[g])

    for g in members:
        groupcheck.wait_until(
            f"group {g} to consume {args.count} records",
            args.timeout,
            lambda: failed() or total(g) >= args.count,
            lambda: {"consumed": total(g), "assignments": state()},
        )
        groupcheck.wait_until(
            f"group {g} to consume {args.count} distinct records",
            10,
            lambda: failed() or len({(p, o) for m in members[g] for p, o, _ in m.records}) >= args.count,
            lambda: {"consumed": total(g), "distinct": len({(p, o) for m in members[g] for p, o, _ in m.records})},
        )
    consume_s = time.monotonic() - t1
    for m in everyone:
        m.stop.set()
    for m in everyone:
        check(m.done.wait(30), f"member {m.name} did not stop (commit + close) within 30s")
        check(m.error is None, f"member {m.name}: {m.error}")
        check(
            m.assignment == settled[m.name],
            f"{m.name}: rebalanced after the group settled: assignments {m.assignments}",
        )

    hw = groupcheck.high_watermarks(args.bootstrap, args.topic, args.partitions)
    summary = {"settle_s": round(settle_s, 2), "produce_s": round(produce_s, 2), "consume_s": round(consume_s, 2)}
    for g, ms in members.items():
        consumed = [r for m in ms for r in m.records]
        groupcheck.check_exactly_once(f"group {g}", consumed, delivered, hw)
        got = groupcheck.committed(args.bootstrap, g, args.topic, args.partitions)
        check(got == hw, f"group {g}: committed offsets {got} != high watermarks {hw}")
        summary[g] = {m.name: {"partitions": sorted(m.assignment), "records": len(m.records)} for m in ms}
    return summary


if __name__ == "__main__":
    kafkacheck.run(main)
