"""kafka-python 3.x (pure Python, idempotent producer by default): create a topic with
KafkaAdminClient, produce keyed records with headers and timestamps, consume them all back with
assign() from the beginning, verify (kafkacheck.verify)."""

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

import kafkacheck
from kafkacheck import check


def main():
    args = kafkacheck.parser(__doc__).parse_args()

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=30_000)
    admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)])
    admin.close()

    records = kafkacheck.make_records(args.count, "kafka-python")
    # Defaults on purpose (acks=all, enable_idempotence=True in 3.x): what users get.
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5)
    check(
        producer.config.get("enable_idempotence") is True,
        f"kafka-python disabled idempotence (inferred broker version {producer.config.get('api_version')})",
    )
    futures = []
    for r in records:
        futures.append((r["seq"], producer.send(args.topic, **kafkacheck.send_kwargs(r))))
    producer.flush(timeout=args.timeout)
    delivered = {}
    for seq, fut in futures:
        md = fut.get(timeout=args.timeout)
        delivered[seq] = (md.partition, md.offset)
    producer.close(timeout=10)

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    parts = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    consumed = []
    deadline = time.monotonic() + args.timeout
    while len(consumed) < len(records):
        check(
            time.monotonic() < deadline,
            f"consumed only {len(consumed)} of {len(records)} records within {args.timeout}s",
        )
        batches = consumer.poll(timeout_ms=1000, max_records=2000)
        for tp, msgs in batches.items():
            for m in msgs:
                consumed.append(kafkacheck.consumed_record(m))
    extra = consumer.poll(timeout_ms=1000)
    check(not any(extra.values()), "consumed more records than were produced")
    consumer.close()
    per_partition = kafkacheck.verify(records, consumed, args.partitions, delivered)
    return {"client": "kafka-python", "records": len(consumed), "per_partition": per_partition}


if __name__ == "__main__":
    kafkacheck.run(main)
