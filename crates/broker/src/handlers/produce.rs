//! Produce (key 0): advertised v0-13, served v3-13 (one RecordBatch v2 per partition; topic ids
//! instead of names from v13).
//! Each partition's batch goes to its owner shard as a zero-copy `Bytes` slice of the request;
//! partitions are appended concurrently and the response lists them in request order.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::handlers::{join_all, str_bytes};
use crate::partition::AppendOutcome;
use crate::shard::Shard;
use shoal_protocol::errors as ec;
use shoal_storage::batch::{BatchHeader, Compression};

/// The longest a produce waits for replication, whatever the client asks.
pub const PRODUCE_TIMEOUT_MS_MAX: u64 = 300_000;

/// Returns `None` for acks=0: the client expects no response.
pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let acks_valid = matches!(acks, -1..=1);
    // How long acks=all waits for the ISR (the request's timeout, Kafka's semantics).
    let timeout = Duration::from_millis(
        u64::try_from(request.timeout_ms)
            .unwrap_or(0)
            .clamp(1, PRODUCE_TIMEOUT_MS_MAX),
    );
    if request.transactional_id.is_some() {
        log::warn!("transactional produce refused: transactions are not supported");
    }
    let meta = shard.metadata();
    let mut tasks = Vec::new();
    for topic in &request.topic_data {
        let name = if version >= 13 {
            meta.topic_by_id(&topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.name.0.to_string())
        };
        let unknown_topic = if version >= 13 {
            ec::UNKNOWN_TOPIC_ID
        } else {
            ec::UNKNOWN_TOPIC_OR_PARTITION
        };
        for part in &topic.partition_data {
            let index = part.index;
            let records = part.records.clone();
            let name = name.clone();
            let shard = shard.clone();
            let transactional = request.transactional_id.is_some();
            tasks.push(glommio::spawn_local(async move {
                if !acks_valid {
                    return AppendOutcome::error(ec::INVALID_REQUIRED_ACKS, format!("acks={acks}"));
                }
                if transactional {
                    return AppendOutcome::error(
                        ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                        "transactions are not supported",
                    );
                }
                let Some(batch) = records.filter(|r| !r.is_empty()) else {
                    return AppendOutcome::error(ec::INVALID_RECORD, "no records");
                };
                let compression = BatchHeader::parse(&batch).and_then(|h| h.compression());
                if version < 7 && matches!(compression, Ok(Compression::Zstd)) {
                    return AppendOutcome::error(
                        ec::UNSUPPORTED_COMPRESSION_TYPE,
                        "zstd needs Produce v7 or later",
                    );
                }
                let Some(name) = name else {
                    return AppendOutcome::error(unknown_topic, "unknown topic id");
                };
                if shard.metadata().topic(&name).is_some_and(|t| t.internal) {
                    return AppendOutcome::error(
                        ec::INVALID_TOPIC_EXCEPTION,
                        format!("cannot produce to internal topic {name}"),
                    );
                }
                let owner = match shard.owner_of(&name, index) {
                    Ok(owner) => owner,
                    Err(code) => return AppendOutcome::error(code, "partition unavailable"),
                };
                shard
                    .invoke_on(owner, move |s| async move {
                        s.append_ordered(&name, index, batch, acks, timeout).await
                    })
                    .await
                    .unwrap_or_else(|_| {
                        AppendOutcome::error(ec::NOT_LEADER_OR_FOLLOWER, "shard unavailable")
                    })
            }));
        }
    }
    let mut outcomes = join_all(tasks).await.into_iter();
    if acks == 0 {
        return None;
    }
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in &request.topic_data {
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for part in &topic.partition_data {
            let o = outcomes.next().expect("one outcome per partition");
            partitions.push(
                PartitionProduceResponse::default()
                    .with_index(part.index)
                    .with_error_code(o.error_code)
                    .with_base_offset(o.base_offset)
                    .with_log_append_time_ms(o.log_append_time_ms)
                    .with_log_start_offset(if version >= 5 { o.log_start_offset } else { -1 })
                    .with_error_message(if version >= 8 {
                        o.error_message.as_deref().map(str_bytes)
                    } else {
                        None
                    }),
            );
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    Some(ProduceResponse::default().with_responses(responses))
}
