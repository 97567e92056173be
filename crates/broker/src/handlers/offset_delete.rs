//! OffsetDelete (key 47), v0: deletes committed offsets of topics the group does not consume.

use std::rc::Rc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::group::coordinator::Reply;
use crate::group::manager::on_coordinator;
use crate::shard::Shard;
use shoal_protocol::errors as e;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.0.to_string();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let n = partitions.len();
    let gid = group_id.clone();
    let result = on_coordinator(shard, &group_id, move |slot| async move {
        slot.call(move |c, _now, ticket| c.delete_offsets(&gid, &partitions, ticket))
            .await
    })
    .await;
    let (top, per) = match result {
        Ok(Some(Reply::OffsetDelete(top, per))) if per.len() == n => (top, per),
        Ok(_) => (e::UNKNOWN_SERVER_ERROR, vec![e::NONE; n]),
        Err(code) => (code, vec![e::NONE; n]),
    };
    if top != e::NONE {
        return OffsetDeleteResponse::default().with_error_code(top);
    }
    let mut per = per.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(per.next().unwrap_or(e::NONE))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
