//! Consumer groups: Kafka's classic group protocol and committed offsets.
//!
//! - `coordinator`: the group state machine of one `__consumer_offsets` partition. Plain and
//!   deterministic: time comes in as `now_ms`, output is `Effects` (replies to parked requests,
//!   records to persist). No I/O, no executor.
//! - `records`: the stored form of group metadata and offsets (versioned key/value, tombstones) and
//!   a minimal uncompressed RecordBatch v2 codec.
//! - `manager`: the shard-side driver: loads a partition's groups on first use, parks requests,
//!   appends records through the partition log (replies only after they are durable), ticks timers.

pub mod coordinator;
pub mod manager;
pub mod records;

#[cfg(test)]
mod tests;

pub use coordinator::{Coordinator, CoordinatorConfig, GroupState};
pub use manager::ShardGroups;

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` over UTF-16 code units, as Kafka hashes group ids.
pub fn java_string_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h
}

/// Kafka's `Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount`.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0);
    let h = java_string_hash(group_id);
    // Utils.abs maps i32::MIN to 0 (h & 0x7fffffff).
    (h & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        // Values of "x".hashCode() in Java.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("consumer-group-1"), 147_483_020);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert_eq!(partition_for("consumer-group-1", 50), 20);
        for g in ["", "g", "a much longer group name ü", "polygenelubricants"] {
            assert!((0..50).contains(&partition_for(g, 50)));
        }
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
