"""Shared helpers of the consumer-group scripts (groups_*.py): topic creation and producing with
confluent-kafka, committed offsets and high watermarks, and the exactly-once check of what one
group consumed. Failures raise kafkacheck.CheckFailed (scripts exit 1 with the message)."""

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafkacheck
from kafkacheck import check

KEYS = kafkacheck.KEYS


def parser(description):
    ap = kafkacheck.parser(description)
    ap.set_defaults(partitions=6, timeout=60.0)
    return ap


SESSION_TIMEOUT_MS = 6000  # Kafka's group.min.session.timeout.ms


def manual_commit_consumer(bootstrap, group, name):
    """A group member that commits only when told to, with a short session for fast failover."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 500,
        }
    )


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=10,
        request_timeout=30,
    )
    futures[topic].result(timeout=60)


def value_of(seq):
    return f"rec-{seq}".encode()


def produce(bootstrap, topic, count, timeout, first_seq=0):
    """Produces records seq first_seq..first_seq+count-1 (keyed, murmur2); returns
    {seq: (partition, offset)} from the delivery reports."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": int(timeout * 1000),
        }
    )
    delivered = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[int(msg.value()[4:])] = (msg.partition(), msg.offset())

    for seq in range(first_seq, first_seq + count):
        while True:
            try:
                producer.produce(topic, key=f"key-{seq % KEYS}".encode(), value=value_of(seq), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(timeout)
    check(remaining == 0, f"{remaining} records not delivered within {timeout}s")
    check(not errors, f"{len(errors)} delivery errors, first: {errors[:3]}")
    check(len(delivered) == count, f"{len(delivered)} delivery reports for {count} records")
    return delivered


def high_watermarks(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-probe-{topic}", "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()


def committed(bootstrap, group, topic, partitions):
    """The group's committed offsets (OffsetFetch, without joining): {partition: offset}, -1001
    (librdkafka's OFFSET_INVALID) where nothing is committed."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        for tp in tps:
            check(tp.error is None, f"OffsetFetch {group} {topic}/{tp.partition}: {tp.error}")
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def check_exactly_once(what, consumed, delivered, hw):
    """consumed: list of (partition, offset, value) one group received. Every delivered record
    exactly once, at the offset its delivery report gave, nothing else."""
    seen = {}
    dups = []
    for p, o, v in consumed:
        if (p, o) in seen:
            dups.append((p, o))
        seen[(p, o)] = v
    check(not dups, f"{what}: {len(dups)} records consumed more than once, first: {sorted(dups)[:5]}")
    missing = [seq for seq, po in delivered.items() if seen.get(po) != value_of(seq)]
    check(
        not missing,
        f"{what}: {len(missing)} of {len(delivered)} records not consumed (or at another offset), first seqs: {sorted(missing)[:5]}",
    )
    check(len(seen) == len(delivered), f"{what}: consumed {len(seen)} records, produced {len(delivered)}")
    per_partition = {}
    for p, o in seen:
        per_partition[p] = per_partition.get(p, 0) + 1
    for p, n in per_partition.items():
        check(n == hw[p], f"{what}: partition {p}: consumed {n} records, high watermark {hw[p]}")
    return per_partition


def resume_in_order(c, who, nxt, hw, deadline, late, last_commit):
    """Consumes with c until every partition p reaches hw[p], checking that each record comes at
    offset nxt[p] (advanced as records come). late() says what was reached once deadline (a
    time.monotonic() value) has passed; last_commit is quoted on an offset mismatch. Returns the
    (partition, offset) pairs in consumed order."""
    got = []
    while any(nxt[p] < hw[p] for p in hw):
        check(time.monotonic() < deadline, late())
        for m in c.consume(num_messages=1000, timeout=0.2):
            check(m.error() is None, f"{who}: consume: {m.error()}")
            p, o = m.partition(), m.offset()
            check(o == nxt[p], f"{who}: partition {p}: got offset {o}, expected {nxt[p]} (last commit {last_commit.get(p)})")
            got.append((p, o))
            nxt[p] = o + 1
    return got


def wait_until(what, timeout, cond, state=lambda: ""):
    """Bounded wait (polling every 50 ms) for cond(); CheckFailed with what and state()."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise kafkacheck.CheckFailed(f"timed out after {timeout}s waiting for {what}; state: {state()}")
        time.sleep(0.05)
