//! OffsetCommit (key 8), v2-9. Acknowledged only once the offsets are durable in
//! `__consumer_offsets`. Generation -1 commits (no group management) go into empty groups only.

use std::rc::Rc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::group::coordinator::{self, CommitOffset, Reply};
use crate::group::manager::on_coordinator;
use crate::handlers::respond_per_partition;
use crate::shard::Shard;
use shoal_protocol::errors as e;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_id = request.group_id.0.to_string();
    let meta = shard.metadata();
    // Per request partition: Some(error) decided here, or None if it goes to the coordinator.
    let mut decided: Vec<Option<i16>> = Vec::new();
    let mut offsets = Vec::new();
    for t in &request.topics {
        let topic = meta.topic(t.name.0.as_str());
        for p in &t.partitions {
            let known =
                topic.is_some_and(|m| p.partition_index >= 0 && p.partition_index < m.partitions());
            if !known {
                decided.push(Some(e::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            }
            decided.push(None);
            offsets.push(CommitOffset {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let n = offsets.len();
    let codes: Vec<i16> = if n == 0 {
        Vec::new()
    } else {
        let commit = coordinator::CommitRequest {
            group_id: group_id.clone(),
            generation_id: request.generation_id_or_member_epoch,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            retention_ms: if (2..=4).contains(&version) && request.retention_time_ms >= 0 {
                Some(request.retention_time_ms)
            } else {
                None
            },
            offsets,
        };
        let result = on_coordinator(shard, &group_id, move |slot| async move {
            slot.call(move |c, now, ticket| c.commit(now, commit, ticket))
                .await
        })
        .await;
        match result {
            Ok(Some(Reply::Commit(codes))) if codes.len() == n => codes,
            Ok(_) => vec![e::UNKNOWN_SERVER_ERROR; n],
            Err(code) => vec![code; n],
        }
    };
    let mut codes = codes.into_iter();
    let per_partition = decided
        .into_iter()
        .map(|d| d.unwrap_or_else(|| codes.next().unwrap_or(e::UNKNOWN_SERVER_ERROR)));
    let topics = respond_per_partition(
        &request.topics,
        |t| &t.partitions,
        per_partition,
        |p, code| {
            OffsetCommitResponsePartition::default()
                .with_partition_index(p.partition_index)
                .with_error_code(code)
        },
        |t, partitions| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        },
    );
    OffsetCommitResponse::default().with_topics(topics)
}
