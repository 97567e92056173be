//! ListOffsets (key 2), v1-10: earliest (-2), latest (-1), max timestamp (-3), or by timestamp.

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::handlers::{per_partition_tasks, respond_per_partition};
use crate::shard::Shard;
use shoal_protocol::errors as ec;

pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;
pub const MAX_TIMESTAMP: i64 = -3;

/// (error, offset, timestamp, leader epoch) for one partition, computed on its owner. The
/// epoch is that of the batch holding the offset; for the log end, the partition's current one.
pub async fn lookup(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> (i16, i64, i64, i32) {
    let result = shard
        .on_partition(topic, partition, move |_, p| async move {
            let (error, offset, ts) = match timestamp {
                EARLIEST_TIMESTAMP => (ec::NONE, p.log.log_start_offset(), -1),
                LATEST_TIMESTAMP | MAX_TIMESTAMP => (ec::NONE, p.high_watermark(), -1),
                ts => match p.log.offset_for_timestamp(ts).await {
                    Ok(Some((offset, found_ts))) if offset < p.high_watermark() => {
                        (ec::NONE, offset, found_ts)
                    }
                    Ok(_) => (ec::NONE, -1, -1),
                    Err(e) => {
                        log::error!("offset_for_timestamp: {e}");
                        (ec::KAFKA_STORAGE_ERROR, -1, -1)
                    }
                },
            };
            let epoch = match timestamp {
                _ if offset < 0 => -1,
                LATEST_TIMESTAMP | MAX_TIMESTAMP => p.log.epoch_at(i64::MAX),
                _ => p.log.epoch_at(offset),
            };
            (error, offset, ts, epoch)
        })
        .await;
    result.unwrap_or_else(|code| (code, -1, -1, -1))
}

/// One partition's answer; the leader epoch from v4 on.
fn partition_response(
    p: &ListOffsetsPartition,
    (error, offset, timestamp, epoch): (i16, i64, i64, i32),
    version: i16,
) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_partition_index(p.partition_index)
        .with_error_code(error)
        .with_offset(offset)
        .with_timestamp(timestamp)
        .with_leader_epoch(if error == ec::NONE && version >= 4 {
            epoch
        } else {
            -1
        })
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let results = per_partition_tasks(
        &request.topics,
        |t| &t.partitions,
        |t, p| {
            let shard = shard.clone();
            let topic = t.name.0.to_string();
            let (partition, ts, epoch) = (p.partition_index, p.timestamp, p.current_leader_epoch);
            async move {
                if let Err(code) = shard.check_leader_epoch(&topic, partition, epoch) {
                    return (code, -1, -1, -1);
                }
                lookup(&shard, &topic, partition, ts).await
            }
        },
    )
    .await;
    let topics = respond_per_partition(
        &request.topics,
        |t| &t.partitions,
        results,
        |p, result| partition_response(p, result, version),
        |t, partitions| {
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        },
    );
    ListOffsetsResponse::default().with_topics(topics)
}
