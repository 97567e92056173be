//! Heartbeat (key 12), v0-4.

use std::rc::Rc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::group::coordinator;
use crate::group::manager::on_coordinator;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    let heartbeat = coordinator::HeartbeatRequest {
        group_id: group_id.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
    };
    let code = on_coordinator(shard, &group_id, move |slot| async move {
        slot.with(move |c, now| (c.heartbeat(now, heartbeat), Default::default()))
    })
    .await
    .unwrap_or_else(|code| code);
    HeartbeatResponse::default().with_error_code(code)
}
