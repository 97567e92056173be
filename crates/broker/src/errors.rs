//! Typed errors of the lower layers mapped to Kafka error codes: the one place where storage
//! outcomes become wire codes (the codes themselves are `shoal_protocol::errors`).

use shoal_protocol::errors as ec;
use shoal_storage::{AppendError, StorageError};

/// The Kafka error code a typed error is answered with.
pub trait KafkaCode {
    fn kafka_code(&self) -> i16;
}

impl KafkaCode for StorageError {
    fn kafka_code(&self) -> i16 {
        match self {
            StorageError::OffsetOutOfRange { .. } => ec::OFFSET_OUT_OF_RANGE,
            _ => ec::KAFKA_STORAGE_ERROR,
        }
    }
}

impl KafkaCode for AppendError {
    fn kafka_code(&self) -> i16 {
        match self {
            AppendError::CorruptMessage(_) => ec::CORRUPT_MESSAGE,
            AppendError::InvalidRecord(_) => ec::INVALID_RECORD,
            AppendError::UnsupportedForMessageFormat(_) => ec::UNSUPPORTED_FOR_MESSAGE_FORMAT,
            AppendError::MessageTooLarge { .. } => ec::MESSAGE_TOO_LARGE,
            AppendError::RecordListTooLarge { .. } => ec::RECORD_LIST_TOO_LARGE,
            AppendError::OutOfOrderSequence { .. } => ec::OUT_OF_ORDER_SEQUENCE_NUMBER,
            AppendError::InvalidProducerEpoch { .. } => ec::INVALID_PRODUCER_EPOCH,
            AppendError::Storage(_) => ec::KAFKA_STORAGE_ERROR,
            // Replication only; a follower's answer, never a client's.
            AppendError::NotContiguous { .. } => ec::INVALID_RECORD,
        }
    }
}

impl KafkaCode for shoal_cluster::metadata::ControllerError {
    fn kafka_code(&self) -> i16 {
        use shoal_cluster::metadata::ControllerError as E;
        match self {
            E::NotController => ec::NOT_CONTROLLER,
            E::Timeout => ec::REQUEST_TIMED_OUT,
            E::InvalidRequest(_) => ec::INVALID_REQUEST,
            E::InvalidTopicName => ec::INVALID_TOPIC_EXCEPTION,
            E::TopicAlreadyExists => ec::TOPIC_ALREADY_EXISTS,
            E::UnknownTopicOrPartition => ec::UNKNOWN_TOPIC_OR_PARTITION,
            E::InvalidPartitions(_) => ec::INVALID_PARTITIONS,
            E::InvalidReplicationFactor { .. } => ec::INVALID_REPLICATION_FACTOR,
            E::InvalidConfig(_) => ec::INVALID_CONFIG,
            E::NotLeader(_) => ec::NOT_LEADER_OR_FOLLOWER,
            E::FencedLeaderEpoch { .. } => ec::FENCED_LEADER_EPOCH,
            // Broker-to-controller only; never a client's answer in practice.
            E::UnknownBroker(_)
            | E::StaleBrokerEpoch { .. }
            | E::InvalidUpdateVersion { .. }
            | E::InvalidIsr(_)
            | E::IneligibleReplica(_) => ec::INVALID_REQUEST,
            E::Internal(_) => ec::UNKNOWN_SERVER_ERROR,
        }
    }
}
