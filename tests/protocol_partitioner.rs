//! Our murmur2 partitioner against librdkafka's own `murmur2_random` (the partitioner
//! confluent-kafka and kcat use for keyed records), called through rdkafka-sys, and against
//! Kafka's own test vectors.

use rand::{Rng, SeedableRng};
use rdkafka::bindings::rd_kafka_msg_partitioner_murmur2_random;
use shoal_protocol::partitioner::{murmur2, partition_for_key};

/// Kafka's `UtilsTest.testMurmur2`.
#[test]
fn murmur2_matches_kafka_test_vectors() {
    let cases: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];
    for (key, expected) in cases {
        let key_text = String::from_utf8_lossy(key);
        assert_eq!(murmur2(key), expected, "partitioner murmur2({key_text:?})");
    }
}

fn librdkafka_partition(key: &[u8], partition_count: i32) -> i32 {
    // Non-null key: librdkafka only hashes the key; the topic handle is not touched.
    const EMPTY: [u8; 1] = [0];
    let ptr = if key.is_empty() {
        EMPTY.as_ptr()
    } else {
        key.as_ptr()
    };
    unsafe {
        rd_kafka_msg_partitioner_murmur2_random(
            std::ptr::null(),
            ptr.cast(),
            key.len(),
            partition_count,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

#[test]
fn matches_librdkafka_for_random_keys() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for i in 0..20_000 {
        let len = rng.gen_range(0..64);
        let key: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let partitions = rng.gen_range(1..=1024);
        assert_eq!(
            partition_for_key(&key, partitions),
            librdkafka_partition(&key, partitions),
            "case {i}: key {key:?}, {partitions} partitions"
        );
    }
}

#[test]
fn matches_librdkafka_for_typical_keys() {
    for partitions in [1, 3, 8, 12, 100] {
        for i in 0..1000 {
            let key = format!("user-{i}");
            assert_eq!(
                partition_for_key(key.as_bytes(), partitions),
                librdkafka_partition(key.as_bytes(), partitions),
                "{key} over {partitions}"
            );
        }
    }
}
