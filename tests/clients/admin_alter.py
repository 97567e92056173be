"""confluent-kafka AdminClient against CreatePartitions and IncrementalAlterConfigs: grow a topic
and write to its new partitions; set, read back, refuse and delete topic configs; see a changed
max.message.bytes refuse a record the old limit accepted. Prints one JSON line."""

import argparse
import json
import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def expect_error(future, code, what):
    try:
        future.result(timeout=30)
    except KafkaException as e:
        got = e.args[0].code()
        if got != code:
            fail(f"{what}: expected {KafkaError(code).name()}, got {e}")
        return
    fail(f"{what}: succeeded, expected {KafkaError(code).name()}")


def topic_configs(admin, topic):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(timeout=30)


def alter(admin, topic, entries):
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    return admin.incremental_alter_configs([resource])[resource]


def produce(bootstrap, topic, partition, size):
    """Sends one record of `size` bytes; returns the delivery error or None."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 20000})
    outcome = []
    producer.produce(topic, value=b"x" * size, partition=partition, on_delivery=lambda err, msg: outcome.append(err))
    producer.flush(30)
    if not outcome:
        fail(f"no delivery report for partition {partition}")
    return outcome[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    args = ap.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = args.topic

    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=60)
    admin.create_partitions([NewPartitions(topic, 6)])[topic].result(timeout=60)
    partitions = len(admin.list_topics(topic, timeout=30).topics[topic].partitions)
    if partitions != 6:
        fail(f"after growing to 6 the topic has {partitions} partitions")
    for p in range(6):
        err = produce(args.bootstrap, topic, p, 100)
        if err is not None:
            fail(f"produce to partition {p} after growing: {err}")
    expect_error(admin.create_partitions([NewPartitions(topic, 3)])[topic], KafkaError.INVALID_PARTITIONS, "shrink to 3")
    missing = f"{topic}-missing"
    expect_error(
        admin.create_partitions([NewPartitions(missing, 3)])[missing],
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        "grow a missing topic",
    )

    alter(
        admin,
        topic,
        [
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET),
        ],
    ).result(timeout=30)
    configs = topic_configs(admin, topic)
    if configs["retention.ms"].value != "3600000" or configs["max.message.bytes"].value != "2000":
        fail(f"configs after SET: retention.ms={configs['retention.ms'].value} max.message.bytes={configs['max.message.bytes'].value}")
    if configs["retention.ms"].source != 1:
        fail(f"retention.ms source {configs['retention.ms'].source}, expected 1 (topic)")
    err = produce(args.bootstrap, topic, 0, 5000)
    if err is None or err.code() != KafkaError.MSG_SIZE_TOO_LARGE:
        fail(f"a 5000-byte record under max.message.bytes=2000: {err}")

    expect_error(
        alter(admin, topic, [ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)]),
        KafkaError.INVALID_CONFIG,
        "retention.ms=soon",
    )
    expect_error(
        alter(admin, topic, [ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)]),
        KafkaError.INVALID_CONFIG,
        "unknown config",
    )
    alter(
        admin,
        topic,
        [
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
            ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    ).result(timeout=30)
    configs = topic_configs(admin, topic)
    if configs["retention.ms"].source == 1 or configs["max.message.bytes"].source == 1:
        fail("configs still the topic's own after DELETE")
    err = produce(args.bootstrap, topic, 0, 5000)
    if err is not None:
        fail(f"a 5000-byte record after max.message.bytes was deleted: {err}")
    print(json.dumps({"ok": True, "partitions": partitions}))


if __name__ == "__main__":
    main()
