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

/// Kafka error codes used by the group coordinator (values from Kafka's `Errors.java`).
pub mod errors {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;
    pub const INVALID_REQUEST: i16 = 42;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
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
