"""The README walkthrough's Python step: produce lines to a topic with confluent-kafka, then read
the whole topic from the beginning (assign(), no group) and print each value on its own line."""

import argparse
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--produce", action="append", default=[], help="a line to produce (repeatable)")
    ap.add_argument("--expect", type=int, required=True, help="records in the topic after producing")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    producer = Producer({"bootstrap.servers": args.bootstrap})
    for line in args.produce:
        producer.produce(args.topic, value=line.encode())
    if producer.flush(args.timeout) != 0:
        sys.exit("produce: not all lines delivered")

    consumer = Consumer(
        {"bootstrap.servers": args.bootstrap, "group.id": "walkthrough", "enable.auto.commit": False}
    )
    meta = consumer.list_topics(args.topic, timeout=args.timeout)
    partitions = sorted(meta.topics[args.topic].partitions)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    values = []
    deadline = time.monotonic() + args.timeout
    while len(values) < args.expect:
        if time.monotonic() > deadline:
            sys.exit(f"consume: only {len(values)} of {args.expect} records: {values}")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            # group.id is mandatory in confluent-kafka; coordinator errors don't affect assign().
            if "Coordinator" in str(msg.error()):
                continue
            sys.exit(f"consume: {msg.error()}")
        values.append((msg.partition(), msg.offset(), msg.value().decode()))
    consumer.close()
    for _, _, value in sorted(values):
        print(value)


if __name__ == "__main__":
    main()
