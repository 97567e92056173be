"""confluent-kafka (bundled librdkafka): create a topic with AdminClient, produce keyed records
with headers and timestamps (murmur2_random = Java's partitioner), consume them all back with
assign() from the beginning, verify (kafkacheck.verify)."""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafkacheck
from kafkacheck import check


def main():
    ap = kafkacheck.parser(__doc__)
    ap.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    ap.add_argument("--idempotence", action="store_true")
    ap.add_argument("--no-create", action="store_true", help="topic already exists")
    args = ap.parse_args()

    if not args.no_create:
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        futures = admin.create_topics(
            [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)],
            operation_timeout=10,
            request_timeout=30,
        )
        futures[args.topic].result(timeout=60)

    records = kafkacheck.make_records(args.count, f"confluent-{args.compression}")
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "partitioner": "murmur2_random",
            "compression.type": args.compression,
            "enable.idempotence": args.idempotence,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": int(args.timeout * 1000),
        }
    )
    delivered = {}
    errors = []

    def on_delivery(err, msg, seq):
        if err is not None:
            errors.append(f"seq {seq}: {err}")
        else:
            delivered[seq] = (msg.partition(), msg.offset())

    for r in records:
        while True:
            try:
                producer.produce(
                    args.topic,
                    **kafkacheck.send_kwargs(r, timestamp="timestamp"),
                    on_delivery=lambda err, msg, seq=r["seq"]: on_delivery(err, msg, seq),
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(args.timeout)
    check(remaining == 0, f"{remaining} messages not delivered within {args.timeout}s")
    check(not errors, f"{len(errors)} delivery errors, first: {errors[:3]}")
    check(len(delivered) == len(records), f"{len(delivered)} delivery reports for {len(records)} records")

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"shoal-test-{args.topic}",  # required by librdkafka; no group is joined
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)])
    consumed = []
    coordinator_errors = []
    deadline = time.monotonic() + args.timeout
    while len(consumed) < len(records):
        check(
            time.monotonic() < deadline,
            f"consumed only {len(consumed)} of {len(records)} records within {args.timeout}s"
            f" (group coordinator errors: {coordinator_errors[:3]})",
        )
        for msg in consumer.consume(num_messages=1000, timeout=1.0):
            if msg.error() is not None:
                # confluent-kafka insists on a group.id, so librdkafka also talks to a group
                # coordinator; with assign() its errors don't stop fetching. Any other error fails.
                if "Coordinator" in str(msg.error()):
                    coordinator_errors.append(str(msg.error()))
                    continue
                check(msg.error().code() == KafkaError._PARTITION_EOF, f"consume error: {msg.error()}")
                continue
            ts_type, ts = msg.timestamp()
            consumed.append(
                {
                    "key": msg.key(),
                    "value": msg.value(),
                    "headers": msg.headers(),
                    "ts": ts,
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                }
            )
    # Nothing beyond what was produced.
    extra = consumer.consume(num_messages=10, timeout=1.0)
    check(not [m for m in extra if m.error() is None], "consumed more records than were produced")
    consumer.close()
    per_partition = kafkacheck.verify(records, consumed, args.partitions, delivered)
    if coordinator_errors:
        print(f"note: {len(coordinator_errors)} group coordinator errors, first: {coordinator_errors[0]}", file=sys.stderr)
    return {"client": "confluent-kafka", "records": len(consumed), "per_partition": per_partition}


if __name__ == "__main__":
    kafkacheck.run(main)
