"""Shared helpers of the client scripts: Kafka's murmur2 partitioner (an oracle written here,
independent of the broker and of the clients), the records every script produces, and the
checks every script runs on what it consumed back.

A check failure raises CheckFailed; scripts exit 1 with the message.
"""

import argparse
import json
import sys
import time


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def murmur2(data: bytes) -> int:
    """org.apache.kafka.common.utils.Utils.murmur2: signed 32-bit result."""
    mask = 0xFFFFFFFF
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    length = len(data)
    h = (seed ^ length) & mask
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    tail = data[4 * n4 :]
    if rest >= 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# Kafka's own test vectors (UtilsTest.testMurmur2).
_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def self_test():
    for data, want in _VECTORS.items():
        got = murmur2(data)
        check(got == want, f"murmur2({data!r}) = {got}, Kafka says {want}")


KEYS = 97  # distinct keys: several per partition, many records per key


def make_records(count, client, now_ms=None):
    """Deterministic keyed records with headers (incl. a duplicated header key, which Kafka
    allows) and explicit CreateTime timestamps in the recent past."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    base_ts = now_ms - 10 * 60 * 1000
    records = []
    for i in range(count):
        key = f"key-{i % KEYS}".encode()
        records.append(
            {
                "key": key,
                "value": f"{client}-value-{i}-{'x' * (i % 50)}".encode(),
                "headers": [
                    ("seq", str(i).encode()),
                    ("client", client.encode()),
                    ("dup", b"first"),
                    ("dup", b"second"),
                ],
                "ts": base_ts + i,
                "seq": i,
            }
        )
    return records


def send_kwargs(r, timestamp="timestamp_ms"):
    """A record of make_records as a producer's keyword arguments (confluent-kafka calls the
    timestamp `timestamp`, kafka-python and aiokafka `timestamp_ms`)."""
    return {"key": r["key"], "value": r["value"], "headers": r["headers"], timestamp: r["ts"]}


def consumed_record(m):
    """A kafka-python/aiokafka ConsumerRecord as the dict `verify` takes."""
    return {
        "key": m.key,
        "value": m.value,
        "headers": m.headers,
        "ts": m.timestamp,
        "partition": m.partition,
        "offset": m.offset,
    }


def norm_headers(headers):
    if headers is None:
        return []
    return [(k if isinstance(k, str) else k.decode(), bytes(v) if v is not None else None) for k, v in headers]


def verify(produced, consumed, partitions, delivered=None, check_timestamps=True):
    """produced: make_records() output. consumed: dicts with key, value, headers, ts, partition,
    offset. delivered: optional {seq: (partition, offset)} from delivery reports."""
    check(
        len(consumed) == len(produced),
        f"consumed {len(consumed)} records, produced {len(produced)}",
    )
    by_value = {}
    for c in consumed:
        check(c["value"] not in by_value, f"duplicate record consumed: {c['value'][:40]!r}")
        by_value[c["value"]] = c
    per_partition = {}
    for p in produced:
        c = by_value.get(p["value"])
        check(c is not None, f"record seq {p['seq']} (key {p['key']!r}) was not consumed")
        check(c["key"] == p["key"], f"seq {p['seq']}: key {c['key']!r} != {p['key']!r}")
        want_partition = kafka_partition(p["key"], partitions)
        check(
            c["partition"] == want_partition,
            f"key {p['key']!r} landed in partition {c['partition']}, Kafka's murmur2 partitioner picks {want_partition}",
        )
        got_headers = norm_headers(c["headers"])
        check(
            got_headers == p["headers"],
            f"seq {p['seq']}: headers {got_headers} != produced {p['headers']}",
        )
        if check_timestamps:
            check(c["ts"] == p["ts"], f"seq {p['seq']}: timestamp {c['ts']} != produced {p['ts']}")
        if delivered is not None:
            dp, do = delivered[p["seq"]]
            check(
                (dp, do) == (c["partition"], c["offset"]),
                f"seq {p['seq']}: delivery report said {dp}/{do}, consumed at {c['partition']}/{c['offset']}",
            )
        per_partition.setdefault(c["partition"], []).append((c["offset"], p["seq"], p["key"]))
    # Offsets of each partition are 0..n-1 and per-key order is produce order.
    for part, rows in per_partition.items():
        rows.sort()
        offsets = [o for o, _, _ in rows]
        check(
            offsets == list(range(len(rows))),
            f"partition {part}: offsets are not 0..{len(rows) - 1}: first gaps near {_first_gap(offsets)}",
        )
        last_seq = {}
        for offset, seq, key in rows:
            check(
                last_seq.get(key, -1) < seq,
                f"partition {part}: key {key!r} out of order at offset {offset} (seq {seq} after {last_seq.get(key)})",
            )
            last_seq[key] = seq
    return {str(p): len(rows) for p, rows in sorted(per_partition.items())}


def _first_gap(offsets):
    for i, o in enumerate(offsets):
        if o != i:
            return i
    return None


def parser(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds for produce and for consume")
    return ap


def run(main):
    """Runs main(); prints a JSON summary or the failure, exit code 0/1."""
    try:
        self_test()
        summary = main()
    except CheckFailed as e:
        print(f"CHECK FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"ok": True, **(summary or {})}))
    sys.exit(0)
