"""Compaction with a real client (confluent-kafka or kafka-python): KEYS keys updated UPDATES
times each on a compacted topic; once cleaned, a consumer from the beginning reads exactly one
record per key, the latest value, at increasing offsets with gaps; after tombstones for DELETES
keys and delete.retention.ms, those keys are gone entirely. Exits non-zero on any mismatch."""

import argparse
import sys
import time


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def produce(args, items):
    if args.lib == "confluent":
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5,
                      "compression.type": "lz4", "acks": "all",
                      "batch.size": 65536})
        errors = []
        for key, value in items:
            while True:
                try:
                    p.produce(args.topic, key=key, value=value,
                              on_delivery=lambda e, m: e and errors.append(e))
                    break
                except BufferError:
                    p.poll(0.05)
        p.flush(60)
        if errors:
            fail(f"delivery errors: {errors[:3]}")
    else:
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5,
                          compression_type="gzip")
        futures = [p.send(args.topic, key=k, value=v) for k, v in items]
        p.flush(60)
        for f in futures:
            f.get(timeout=60)
        p.close()


def consume_all(args):
    """(offset, key, value) of every record from the beginning to the high watermark."""
    out = []
    if args.lib == "confluent":
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "compaction-check",
                      "enable.auto.commit": False})
        tp = TopicPartition(args.topic, 0, -2)
        _, hw = c.get_watermark_offsets(tp, timeout=10)
        c.assign([tp])
        idle_since = time.time()
        last = -1
        while last + 1 < hw and time.time() - idle_since < 2:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            idle_since = time.time()
            last = m.offset()
            out.append((m.offset(), m.key(), m.value()))
        c.close()
    else:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False)
        tp = TopicPartition(args.topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        hw = c.end_offsets([tp])[tp]
        idle_since = time.time()
        while c.position(tp) < hw and time.time() - idle_since < 2:
            for msgs in c.poll(timeout_ms=200).values():
                for m in msgs:
                    idle_since = time.time()
                    out.append((m.offset, m.key, m.value))
        c.close()
    return out


def wait_compacted(args, expected, what):
    deadline = time.time() + args.timeout
    got = []
    while time.time() < deadline:
        got = consume_all(args)
        if len(got) == len(expected) and all(expected.get(k) == v for _, k, v in got):
            offsets = [o for o, _, _ in got]
            if any(b <= a for a, b in zip(offsets, offsets[1:])):
                fail(f"{what}: offsets not increasing")
            # The log starts at 0, so removed records show as offsets missing from 0..last.
            if offsets[-1] + 1 <= len(offsets):
                fail(f"{what}: no gaps in 0..{offsets[-1]}")
            print(f"{what}: {len(got)} records, offsets {offsets[0]}..{offsets[-1]}")
            return
        time.sleep(0.5)
    stale = sum(1 for _, k, v in got if expected.get(k) != v)
    fail(f"{what}: after {args.timeout}s read {len(got)} records ({stale} not latest), "
         f"want {len(expected)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--lib", choices=["confluent", "kafka-python"], required=True)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--deletes", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    expected = {}
    items = []
    for u in range(args.updates):
        for k in range(args.keys):
            key, value = f"k{k:05}".encode(), f"{k}-{u}".encode()
            items.append((key, value))
            expected[key] = value
    produce(args, items)
    wait_compacted(args, expected, "updates")
    dead = [f"k{k:05}".encode() for k in range(args.deletes)]
    produce(args, [(k, None) for k in dead])
    for k in dead:
        del expected[k]
    wait_compacted(args, expected, "deletes")
    if args.lib == "confluent":
        check_configs(args)


def check_configs(args):
    """DescribeConfigs shows the policy; IncrementalAlterConfigs changes it to compact,delete."""
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, ResourceType)

    admin = AdminClient({"bootstrap.servers": args.bootstrap})

    def policy():
        r = ConfigResource(ResourceType.TOPIC, args.topic)
        return admin.describe_configs([r])[r].result(timeout=30)["cleanup.policy"].value

    if policy() != "compact":
        fail(f"cleanup.policy described as {policy()!r}")
    entry = ConfigEntry("cleanup.policy", "compact,delete",
                        incremental_operation=AlterConfigOpType.SET)
    r = ConfigResource(ResourceType.TOPIC, args.topic, incremental_configs=[entry])
    admin.incremental_alter_configs([r])[r].result(timeout=30)
    if policy() != "compact,delete":
        fail(f"cleanup.policy after SET described as {policy()!r}")
    print("configs: cleanup.policy compact -> compact,delete")


if __name__ == "__main__":
    main()
