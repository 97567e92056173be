//! Metadata records (KRaft's vocabulary) and their versioned, deterministic encoding.
//!
//! One Raft entry carries one [`RecordBatch`]: the records a controller decision produced, applied
//! all-or-nothing. Encoding: `[version u8][postcard body]`. postcard is compact (varints), has
//! one encoding per value (maps are `BTreeMap`, so order is fixed) and returns errors on garbage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{BrokerId, PartitionId};

/// Current encoding version, the first byte of every encoded batch.
pub const RECORD_FORMAT_VERSION: u8 = 1;
/// Largest encoded batch accepted by [`RecordBatch::decode`].
pub const BATCH_BYTES_MAX: usize = 4 << 20;
/// Most records in one batch.
pub const BATCH_RECORDS_MAX: usize = 100_000;
/// `leader` value meaning "no leader".
pub const NO_LEADER: BrokerId = -1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// `host:port` Kafka clients connect to.
    pub kafka: String,
    /// `host:port` other nodes use for Raft and replication.
    pub cluster: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    pub broker_id: BrokerId,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub endpoints: Endpoints,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition: PartitionId,
    /// Encoded inline: postcard writes a nested struct's fields as if they were this one's.
    pub state: PartitionState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// A change to one partition; `None` fields stay as they are. Applying it always bumps the
/// partition epoch, and bumps the leader epoch when the leader changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    pub topic_id: Uuid,
    pub partition: PartitionId,
    pub isr: Option<Vec<BrokerId>>,
    /// New leader (`NO_LEADER` allowed), `None` = unchanged.
    pub leader: Option<BrokerId>,
    pub replicas: Option<Vec<BrokerId>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    FenceBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    UnfenceBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    /// The broker asked for a controlled shutdown (KRaft: BrokerRegistrationChangeRecord).
    BrokerShuttingDown {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    Topic(TopicRecord),
    Partition(PartitionRecord),
    PartitionChange(PartitionChangeRecord),
    RemoveTopic {
        topic_id: Uuid,
    },
    /// Set (`Some`) or delete (`None`) one topic config.
    TopicConfig {
        topic_id: Uuid,
        key: String,
        value: Option<String>,
    },
    /// Reserves producer ids `[previous next, next_producer_id)` for `broker_id`.
    ProducerIds {
        broker_id: BrokerId,
        broker_epoch: i64,
        next_producer_id: i64,
    },
}

/// The records of one controller decision; one Raft entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecordBatch {
    pub records: Vec<MetadataRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input")]
    Empty,
    #[error("input of {bytes} bytes exceeds {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("unsupported record format version {0}")]
    UnsupportedVersion(u8),
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the body")]
    TrailingBytes(usize),
    #[error("batch of {count} records exceeds {max}")]
    TooManyRecords { count: usize, max: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("encoded batch of {bytes} bytes exceeds {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("batch of {count} records exceeds {max}")]
    TooManyRecords { count: usize, max: usize },
    #[error("serializer: {0}")]
    Serializer(String),
}

impl RecordBatch {
    pub fn new(records: Vec<MetadataRecord>) -> RecordBatch {
        RecordBatch { records }
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        if self.records.len() > BATCH_RECORDS_MAX {
            return Err(EncodeError::TooManyRecords {
                count: self.records.len(),
                max: BATCH_RECORDS_MAX,
            });
        }
        encode_versioned(self, BATCH_BYTES_MAX)
    }

    /// Decodes a batch; any malformed input is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<RecordBatch, DecodeError> {
        let batch: RecordBatch = decode_versioned(bytes, BATCH_BYTES_MAX)?;
        if batch.records.len() > BATCH_RECORDS_MAX {
            return Err(DecodeError::TooManyRecords {
                count: batch.records.len(),
                max: BATCH_RECORDS_MAX,
            });
        }
        Ok(batch)
    }
}

/// `[version u8][postcard body]`, at most `max` bytes.
pub(crate) fn encode_versioned<T: Serialize>(
    value: &T,
    max: usize,
) -> Result<Vec<u8>, EncodeError> {
    let out = postcard::to_extend(value, vec![RECORD_FORMAT_VERSION])
        .map_err(|e| EncodeError::Serializer(e.to_string()))?;
    if out.len() > max {
        return Err(EncodeError::TooLarge {
            bytes: out.len(),
            max,
        });
    }
    Ok(out)
}

/// The inverse of [`encode_versioned`]; garbage and trailing bytes are errors, never a panic.
pub(crate) fn decode_versioned<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    let body = check_envelope(bytes, max)?;
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Checks size and version byte; returns the body after the version byte.
fn check_envelope(bytes: &[u8], max: usize) -> Result<&[u8], DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            bytes: bytes.len(),
            max,
        });
    }
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != RECORD_FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordBatch {
        let topic_id = Uuid::from_u128(7);
        RecordBatch::new(vec![
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: 1,
                incarnation_id: Uuid::from_u128(99),
                broker_epoch: 3,
                endpoints: Endpoints {
                    kafka: "127.0.0.1:9092".into(),
                    cluster: "127.0.0.1:9093".into(),
                },
                rack: Some("r1".into()),
            }),
            MetadataRecord::Topic(TopicRecord {
                name: "t".into(),
                topic_id,
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            }),
            MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition: 0,
                state: PartitionState {
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                    leader: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                },
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id,
                partition: 0,
                isr: Some(vec![1]),
                leader: None,
                replicas: None,
            }),
            MetadataRecord::ProducerIds {
                broker_id: 1,
                broker_epoch: 3,
                next_producer_id: 1000,
            },
        ])
    }

    #[test]
    fn round_trip() {
        let batch = sample();
        let bytes = batch.encode().unwrap();
        assert_eq!(bytes[0], RECORD_FORMAT_VERSION);
        assert_eq!(RecordBatch::decode(&bytes).unwrap(), batch);
        // Deterministic: same value, same bytes.
        assert_eq!(sample().encode().unwrap(), bytes);
    }

    #[test]
    fn bad_envelope() {
        assert_eq!(RecordBatch::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            RecordBatch::decode(&[9, 0]),
            Err(DecodeError::UnsupportedVersion(9))
        );
        let mut bytes = sample().encode().unwrap();
        bytes.push(0);
        assert_eq!(
            RecordBatch::decode(&bytes),
            Err(DecodeError::TrailingBytes(1))
        );
        let huge = vec![RECORD_FORMAT_VERSION; BATCH_BYTES_MAX + 1];
        assert!(matches!(
            RecordBatch::decode(&huge),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let good = sample().encode().unwrap();
        // Every truncation and every single-byte corruption: an error or some value, never a panic.
        for cut in 0..good.len() {
            let _ = RecordBatch::decode(&good[..cut]);
        }
        for i in 1..good.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = RecordBatch::decode(&bad);
            }
        }
        // Pseudo-random garbage (xorshift, deterministic).
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..2000 {
            let len = (x % 200) as usize;
            let mut buf = vec![RECORD_FORMAT_VERSION];
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            let _ = RecordBatch::decode(&buf);
        }
        // A huge claimed length must not allocate it.
        let mut claim = vec![RECORD_FORMAT_VERSION];
        claim.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(RecordBatch::decode(&claim).is_err());
    }
}
