//! kcat (Debian's, librdkafka 2.0.2: old ApiVersions needs, issue 3 acceptance 1): 10,000
//! keyed lines produced with headers and Java's murmur2 partitioner, consumed back with their
//! partition, offset, timestamp and headers; gzip, snappy, lz4 and zstd batches from this old
//! librdkafka are stored compressed (it only compresses when Produce v0 is advertised).

use std::process::Command;

use shoal_testkit::raw::RawConn;
use shoal_testkit::{
    describe_output, kcat_bin, make_records, now_ms, run, stored_batches, verify, Broker, Checks,
    Consumed, Produced, CLI_TIMEOUT,
};

const PARTITIONS: i32 = 8;
const HEADERS: [(&str, &str); 3] = [("client", "kcat"), ("dup", "first"), ("dup", "second")];

fn kcat(broker: &Broker, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut cmd = Command::new(kcat_bin());
    cmd.arg("-b").arg(broker.addr()).args(args);
    let output = run(cmd, stdin, CLI_TIMEOUT);
    assert!(
        output.status.success(),
        "{}\n--- broker stderr ---\n{}",
        describe_output(&format!("kcat {}", args.join(" ")), &output),
        broker.stderr()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("Delivery failed") && !stderr.contains("ERROR"),
        "kcat {} reported errors:\n{stderr}",
        args.join(" ")
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Produces `records` as `key<TAB>value` lines, returns (start, end) wall clock in ms.
fn kcat_produce(broker: &Broker, topic: &str, records: &[Produced], codec: &str) -> (i64, i64) {
    let mut input = Vec::new();
    for r in records {
        input.extend_from_slice(&r.key);
        input.push(b'\t');
        input.extend_from_slice(&r.value);
        input.push(b'\n');
    }
    let mut args = vec![
        "-P",
        "-t",
        topic,
        "-K",
        "\t",
        "-z",
        codec,
        "-X",
        "partitioner=murmur2_random",
    ];
    let header_args: Vec<String> = HEADERS.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for h in &header_args {
        args.push("-H");
        args.push(h);
    }
    let start = now_ms();
    kcat(broker, &args, Some(&input));
    (start, now_ms())
}

fn kcat_consume(broker: &Broker, topic: &str, expected: usize) -> Vec<Consumed> {
    let count = expected.to_string();
    let stdout = kcat(
        broker,
        &[
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-c",
            &count,
            "-f",
            "%p\t%o\t%T\t%k\t%h\t%s\n",
        ],
        None,
    );
    stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.splitn(6, '\t').collect();
            assert_eq!(fields.len(), 6, "kcat output line {line:?}");
            let headers = fields[4]
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| {
                    let (k, v) = h.split_once('=').unwrap_or((h, ""));
                    (k.to_string(), v.as_bytes().to_vec())
                })
                .collect();
            Consumed {
                partition: fields[0].parse().unwrap(),
                offset: fields[1].parse().unwrap(),
                timestamp: fields[2].parse().unwrap(),
                key: Some(fields[3].as_bytes().to_vec()),
                headers,
                value: fields[5].as_bytes().to_vec(),
            }
        })
        .collect()
}

/// `verify` less headers and timestamps, which kcat sets its own way: the static HEADERS on
/// every record, CreateTime stamped within the produce run.
fn verify_kcat(records: &[Produced], consumed: &[Consumed], window: (i64, i64)) {
    verify(
        records,
        consumed,
        PARTITIONS,
        None,
        Checks {
            headers: false,
            timestamps: false,
        },
    );
    let want: Vec<(String, Vec<u8>)> = HEADERS
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    for c in consumed {
        assert_eq!(c.headers, want, "headers at {}/{}", c.partition, c.offset);
        // kcat stamps CreateTime when it produces: within the produce run (1 s slack).
        assert!(
            c.timestamp >= window.0 - 1000 && c.timestamp <= window.1 + 1000,
            "timestamp {} at {}/{} outside the produce run {window:?}",
            c.timestamp,
            c.partition,
            c.offset
        );
    }
}

#[test]
fn kcat_keyed_records_round_trip() {
    let broker = Broker::start();
    let topic = "kcat-keyed";
    RawConn::connect(&broker.addr()).create_topic(topic, PARTITIONS);
    let metadata = kcat(&broker, &["-L", "-t", topic], None);
    assert!(
        metadata.contains(&format!("topic \"{topic}\" with {PARTITIONS} partitions")),
        "kcat -L:\n{metadata}"
    );
    let records = make_records(10_000, "kcat");
    let window = kcat_produce(&broker, topic, &records, "none");
    let consumed = kcat_consume(&broker, topic, records.len());
    verify_kcat(&records, &consumed, window);
}

#[test]
fn kcat_compressed_batches_are_stored_compressed_and_read_back() {
    let broker = Broker::start();
    for (codec, id) in [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        let topic = format!("kcat-{codec}");
        RawConn::connect(&broker.addr()).create_topic(&topic, PARTITIONS);
        let records = make_records(2_000, &format!("kcat-{codec}"));
        let window = kcat_produce(&broker, &topic, &records, codec);
        let consumed = kcat_consume(&broker, &topic, records.len());
        verify_kcat(&records, &consumed, window);
        for (partition, batch) in stored_batches(&broker.addr(), &topic, PARTITIONS) {
            assert_eq!(
                batch.compression(),
                id,
                "kcat -z {codec} (librdkafka 2.0.2): partition {partition} stored codec {} ({batch:?}); \
                 librdkafka sends uncompressed unless Produce v0 (< 2.11.1, all codecs) and FindCoordinator v0 (lz4) are advertised",
                batch.compression()
            );
            assert!(
                batch.crc_ok,
                "{codec}: partition {partition}: bad CRC {batch:?}"
            );
        }
    }
}
