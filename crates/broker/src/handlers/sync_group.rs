//! SyncGroup (key 14), v0-5. Followers park until the leader's assignment is stored.

use std::rc::Rc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use crate::group::coordinator::{self, Reply};
use crate::group::manager::on_coordinator;
use crate::handlers::str_bytes;
use crate::shard::Shard;
use shoal_protocol::errors as e;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let group_id = request.group_id.0.to_string();
    let sync = coordinator::SyncRequest {
        group_id: group_id.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let result = on_coordinator(shard, &group_id, move |slot| async move {
        slot.call(move |c, now, ticket| c.sync(now, sync, ticket))
            .await
    })
    .await;
    let reply = match result {
        Ok(Some(Reply::Sync(s))) => s,
        Ok(_) => coordinator::SyncResponse::error(e::UNKNOWN_SERVER_ERROR),
        Err(code) => coordinator::SyncResponse::error(code),
    };
    let mut response = SyncGroupResponse::default()
        .with_error_code(reply.error)
        .with_assignment(reply.assignment);
    if version >= 5 {
        response.protocol_type = reply.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = reply.protocol_name.as_deref().map(str_bytes);
    }
    response
}
