//! OffsetFetch (key 9), v1-9: one group before v8 (null topics = all, v2+), several after.

use std::rc::Rc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use crate::group::coordinator::FetchedTopic;
use crate::group::manager::on_coordinator;
use crate::handlers::str_bytes;
use crate::shard::Shard;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

async fn fetch_group(
    shard: &Rc<Shard>,
    group_id: String,
    wanted: Wanted,
) -> Result<Vec<FetchedTopic>, i16> {
    let gid = group_id.clone();
    on_coordinator(shard, &group_id, move |slot| async move {
        slot.read(|c| c.fetch_offsets(&gid, wanted.as_deref()))
    })
    .await
}

/// The requested partitions with `code` each (a group-level error before v2).
fn failed(wanted: &Wanted, code: i16) -> Vec<FetchedTopic> {
    wanted
        .iter()
        .flatten()
        .map(|(t, ps)| FetchedTopic {
            topic: t.clone(),
            partitions: ps
                .iter()
                .map(|p| crate::group::coordinator::FetchedPartition {
                    partition: *p,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    error: code,
                })
                .collect(),
        })
        .collect()
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in &request.groups {
            let wanted: Wanted = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let (code, topics) = match fetch_group(shard, g.group_id.0.to_string(), wanted).await {
                Ok(topics) => (0, topics),
                Err(code) => (code, Vec::new()),
            };
            let topics = topics
                .into_iter()
                .map(|t| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(str_bytes(&t.topic)))
                        .with_partitions(
                            t.partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p.partition)
                                        .with_committed_offset(p.offset)
                                        .with_committed_leader_epoch(p.leader_epoch)
                                        .with_metadata(p.metadata.as_deref().map(str_bytes))
                                        .with_error_code(p.error)
                                })
                                .collect(),
                        )
                })
                .collect();
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(g.group_id.0.clone()))
                    .with_topics(topics)
                    .with_error_code(code),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Wanted = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let (code, topics) =
        match fetch_group(shard, request.group_id.0.to_string(), wanted.clone()).await {
            Ok(topics) => (0, topics),
            Err(code) if version < 2 => (0, failed(&wanted, code)),
            Err(code) => (code, failed(&wanted, code)),
        };
    let topics = topics
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(&t.topic)))
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition)
                                .with_committed_offset(p.offset)
                                .with_committed_leader_epoch(if version >= 5 {
                                    p.leader_epoch
                                } else {
                                    -1
                                })
                                .with_metadata(p.metadata.as_deref().map(str_bytes))
                                .with_error_code(p.error)
                        })
                        .collect(),
                )
        })
        .collect();
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.error_code = code;
    }
    response
}
