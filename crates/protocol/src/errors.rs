//! Kafka error codes (Errors.java). Names match `kafka_protocol::ResponseError` variants.

use kafka_protocol::error::ResponseError;

pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const INVALID_FETCH_SIZE: i16 = 4;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const BROKER_NOT_AVAILABLE: i16 = 8;
pub const REPLICA_NOT_AVAILABLE: i16 = 9;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const NETWORK_EXCEPTION: i16 = 13;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const INVALID_TIMESTAMP: i16 = 32;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const NOT_CONTROLLER: i16 = 41;
pub const INVALID_REQUEST: i16 = 42;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub const POLICY_VIOLATION: i16 = 44;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const UNKNOWN_PRODUCER_ID: i16 = 59;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
pub const TOPIC_DELETION_DISABLED: i16 = 73;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
pub const OFFSET_NOT_AVAILABLE: i16 = 78;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const INVALID_RECORD: i16 = 87;
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
pub const PRODUCER_FENCED: i16 = 90;
pub const RESOURCE_NOT_FOUND: i16 = 91;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const INCONSISTENT_TOPIC_ID: i16 = 103;
pub const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

/// Every code above with its `ResponseError` name (for tests and logs).
pub const ALL: &[(i16, &str)] = &[
    (UNKNOWN_SERVER_ERROR, "UnknownServerError"),
    (NONE, "None"),
    (OFFSET_OUT_OF_RANGE, "OffsetOutOfRange"),
    (CORRUPT_MESSAGE, "CorruptMessage"),
    (UNKNOWN_TOPIC_OR_PARTITION, "UnknownTopicOrPartition"),
    (INVALID_FETCH_SIZE, "InvalidFetchSize"),
    (LEADER_NOT_AVAILABLE, "LeaderNotAvailable"),
    (NOT_LEADER_OR_FOLLOWER, "NotLeaderOrFollower"),
    (REQUEST_TIMED_OUT, "RequestTimedOut"),
    (BROKER_NOT_AVAILABLE, "BrokerNotAvailable"),
    (REPLICA_NOT_AVAILABLE, "ReplicaNotAvailable"),
    (MESSAGE_TOO_LARGE, "MessageTooLarge"),
    (OFFSET_METADATA_TOO_LARGE, "OffsetMetadataTooLarge"),
    (NETWORK_EXCEPTION, "NetworkException"),
    (COORDINATOR_LOAD_IN_PROGRESS, "CoordinatorLoadInProgress"),
    (COORDINATOR_NOT_AVAILABLE, "CoordinatorNotAvailable"),
    (NOT_COORDINATOR, "NotCoordinator"),
    (INVALID_TOPIC_EXCEPTION, "InvalidTopicException"),
    (RECORD_LIST_TOO_LARGE, "RecordListTooLarge"),
    (NOT_ENOUGH_REPLICAS, "NotEnoughReplicas"),
    (
        NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        "NotEnoughReplicasAfterAppend",
    ),
    (INVALID_REQUIRED_ACKS, "InvalidRequiredAcks"),
    (ILLEGAL_GENERATION, "IllegalGeneration"),
    (INCONSISTENT_GROUP_PROTOCOL, "InconsistentGroupProtocol"),
    (INVALID_GROUP_ID, "InvalidGroupId"),
    (UNKNOWN_MEMBER_ID, "UnknownMemberId"),
    (INVALID_SESSION_TIMEOUT, "InvalidSessionTimeout"),
    (REBALANCE_IN_PROGRESS, "RebalanceInProgress"),
    (INVALID_COMMIT_OFFSET_SIZE, "InvalidCommitOffsetSize"),
    (TOPIC_AUTHORIZATION_FAILED, "TopicAuthorizationFailed"),
    (GROUP_AUTHORIZATION_FAILED, "GroupAuthorizationFailed"),
    (CLUSTER_AUTHORIZATION_FAILED, "ClusterAuthorizationFailed"),
    (INVALID_TIMESTAMP, "InvalidTimestamp"),
    (UNSUPPORTED_VERSION, "UnsupportedVersion"),
    (TOPIC_ALREADY_EXISTS, "TopicAlreadyExists"),
    (INVALID_PARTITIONS, "InvalidPartitions"),
    (INVALID_REPLICATION_FACTOR, "InvalidReplicationFactor"),
    (INVALID_REPLICA_ASSIGNMENT, "InvalidReplicaAssignment"),
    (INVALID_CONFIG, "InvalidConfig"),
    (NOT_CONTROLLER, "NotController"),
    (INVALID_REQUEST, "InvalidRequest"),
    (
        UNSUPPORTED_FOR_MESSAGE_FORMAT,
        "UnsupportedForMessageFormat",
    ),
    (POLICY_VIOLATION, "PolicyViolation"),
    (OUT_OF_ORDER_SEQUENCE_NUMBER, "OutOfOrderSequenceNumber"),
    (DUPLICATE_SEQUENCE_NUMBER, "DuplicateSequenceNumber"),
    (INVALID_PRODUCER_EPOCH, "InvalidProducerEpoch"),
    (INVALID_TXN_STATE, "InvalidTxnState"),
    (INVALID_PRODUCER_ID_MAPPING, "InvalidProducerIdMapping"),
    (INVALID_TRANSACTION_TIMEOUT, "InvalidTransactionTimeout"),
    (CONCURRENT_TRANSACTIONS, "ConcurrentTransactions"),
    (
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        "TransactionalIdAuthorizationFailed",
    ),
    (KAFKA_STORAGE_ERROR, "KafkaStorageError"),
    (UNKNOWN_PRODUCER_ID, "UnknownProducerId"),
    (NON_EMPTY_GROUP, "NonEmptyGroup"),
    (GROUP_ID_NOT_FOUND, "GroupIdNotFound"),
    (FETCH_SESSION_ID_NOT_FOUND, "FetchSessionIdNotFound"),
    (INVALID_FETCH_SESSION_EPOCH, "InvalidFetchSessionEpoch"),
    (TOPIC_DELETION_DISABLED, "TopicDeletionDisabled"),
    (FENCED_LEADER_EPOCH, "FencedLeaderEpoch"),
    (UNKNOWN_LEADER_EPOCH, "UnknownLeaderEpoch"),
    (UNSUPPORTED_COMPRESSION_TYPE, "UnsupportedCompressionType"),
    (OFFSET_NOT_AVAILABLE, "OffsetNotAvailable"),
    (MEMBER_ID_REQUIRED, "MemberIdRequired"),
    (GROUP_MAX_SIZE_REACHED, "GroupMaxSizeReached"),
    (FENCED_INSTANCE_ID, "FencedInstanceId"),
    (GROUP_SUBSCRIBED_TO_TOPIC, "GroupSubscribedToTopic"),
    (INVALID_RECORD, "InvalidRecord"),
    (UNSTABLE_OFFSET_COMMIT, "UnstableOffsetCommit"),
    (THROTTLING_QUOTA_EXCEEDED, "ThrottlingQuotaExceeded"),
    (PRODUCER_FENCED, "ProducerFenced"),
    (RESOURCE_NOT_FOUND, "ResourceNotFound"),
    (UNKNOWN_TOPIC_ID, "UnknownTopicId"),
    (INCONSISTENT_TOPIC_ID, "InconsistentTopicId"),
    (FETCH_SESSION_TOPIC_ID_ERROR, "FetchSessionTopicIdError"),
];

/// Human-readable name of a code, e.g. `UnsupportedVersion`; `None` for 0.
pub fn name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "None".to_string(),
        Some(e) => e.to_string(),
    }
}

/// Whether a client may retry a request that failed with this code.
pub fn is_retriable(code: i16) -> bool {
    ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_kafka_protocol_names() {
        for &(code, expected) in ALL {
            assert_eq!(name(code), expected, "code {code}");
        }
        assert!(is_retriable(NOT_LEADER_OR_FOLLOWER));
        assert!(!is_retriable(UNSUPPORTED_VERSION));
        assert!(!is_retriable(NONE));
    }
}
