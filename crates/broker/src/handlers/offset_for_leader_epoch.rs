//! OffsetForLeaderEpoch (key 23), v2-4: the end offset of the requested leader epoch, from the
//! partition's leader-epoch checkpoint (clients use it to detect log truncation).

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::handlers::{per_partition_tasks, respond_per_partition};
use crate::shard::Shard;
use shoal_protocol::errors as ec;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let results = per_partition_tasks(
        &request.topics,
        |t| &t.partitions,
        |t, p| {
            let shard = shard.clone();
            let topic = t.topic.0.to_string();
            let (partition, epoch, current) = (p.partition, p.leader_epoch, p.current_leader_epoch);
            async move {
                if let Err(code) = shard.check_leader_epoch(&topic, partition, current) {
                    return (code, -1, -1);
                }
                shard
                    .on_partition(&topic, partition, move |_, p| async move {
                        let (e, end) = p.log.end_offset_for_leader_epoch(epoch);
                        (ec::NONE, e, end.min(p.high_watermark()))
                    })
                    .await
                    .unwrap_or_else(|code| (code, -1, -1))
            }
        },
    )
    .await;
    let topics = respond_per_partition(
        &request.topics,
        |t| &t.partitions,
        results,
        |p, (error, epoch, end)| {
            EpochEndOffset::default()
                .with_partition(p.partition)
                .with_error_code(error)
                .with_leader_epoch(epoch)
                .with_end_offset(end)
        },
        |t, partitions| {
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        },
    );
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
