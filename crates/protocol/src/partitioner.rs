//! Kafka-compatible key partitioning: `toPositive(murmur2(key)) % numPartitions`, exactly as
//! Kafka's Java `BuiltInPartitioner`/`Utils.murmur2` and librdkafka's `murmur2_random`.

/// Kafka's `Utils.murmur2` (MurmurHash2, seed 0x9747b28c), returned as Java's signed int.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    // Java uses an int length; keys over 2 GiB cannot occur in a Kafka record.
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() == 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a non-null `key`.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    assert!(partition_count > 0, "partition count {partition_count}");
    to_positive(murmur2(key)) % partition_count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_positive_clears_the_sign_bit_only() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(5), 5);
        assert_eq!(
            partition_for_key(b"foobar", 8),
            ((-790_332_482i32) & 0x7fff_ffff) % 8
        );
    }
}
