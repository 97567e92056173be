"""aiokafka (asyncio): create a topic with AIOKafkaAdminClient, produce keyed records with
headers and timestamps, consume them all back with assign() from the beginning, verify
(kafkacheck.verify)."""

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import kafkacheck
from kafkacheck import check


async def amain(args):
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)]
        )
    finally:
        await admin.close()

    records = kafkacheck.make_records(args.count, "aiokafka")
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5, acks="all")
    await producer.start()
    delivered = {}
    try:
        futures = []
        for r in records:
            fut = await producer.send(args.topic, **kafkacheck.send_kwargs(r))
            futures.append((r["seq"], fut))
        for seq, fut in futures:
            md = await asyncio.wait_for(fut, timeout=args.timeout)
            delivered[seq] = (md.partition, md.offset)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    consumed = []
    try:
        parts = [TopicPartition(args.topic, p) for p in range(args.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + args.timeout
        while len(consumed) < len(records):
            check(
                time.monotonic() < deadline,
                f"consumed only {len(consumed)} of {len(records)} records within {args.timeout}s",
            )
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for tp, msgs in batches.items():
                for m in msgs:
                    consumed.append(kafkacheck.consumed_record(m))
        extra = await consumer.getmany(timeout_ms=1000)
        check(not any(extra.values()), "consumed more records than were produced")
    finally:
        await consumer.stop()
    per_partition = kafkacheck.verify(records, consumed, args.partitions, delivered)
    return {"client": "aiokafka", "records": len(consumed), "per_partition": per_partition}


def main():
    args = kafkacheck.parser(__doc__).parse_args()
    return asyncio.run(amain(args))


if __name__ == "__main__":
    kafkacheck.run(main)
