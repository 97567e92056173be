//! JoinGroup (key 11), v0-9. Parks on the coordinator shard until the rebalance completes.
//! v4+: a new member first gets MEMBER_ID_REQUIRED with its id (KIP-394); v5+: static members.

use std::rc::Rc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use crate::group::coordinator::{self, Reply};
use crate::group::manager::on_coordinator;
use crate::handlers::{str_bytes, RequestContext};
use crate::shard::Shard;
use shoal_protocol::errors as e;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: JoinGroupRequest,
    ctx: &RequestContext,
) -> JoinGroupResponse {
    let group_id = request.group_id.0.to_string();
    let join = coordinator::JoinRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let result = on_coordinator(shard, &group_id, move |slot| async move {
        slot.call(move |c, now, ticket| c.join(now, join, ticket))
            .await
    })
    .await;
    let reply = match result {
        Ok(Some(Reply::Join(j))) => j,
        Ok(_) => coordinator::JoinResponse::error(e::UNKNOWN_SERVER_ERROR, &request.member_id),
        Err(code) => coordinator::JoinResponse::error(code, &request.member_id),
    };
    to_wire(version, reply)
}

fn to_wire(version: i16, j: coordinator::JoinResponse) -> JoinGroupResponse {
    let members = j
        .members
        .iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_group_instance_id(if version >= 5 {
                    m.group_instance_id.as_deref().map(str_bytes)
                } else {
                    None
                })
                .with_metadata(m.metadata.clone())
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(j.error)
        .with_generation_id(j.generation_id)
        .with_protocol_type(j.protocol_type.as_deref().map(str_bytes))
        // Non-nullable before v7.
        .with_protocol_name(match j.protocol_name {
            Some(name) => Some(str_bytes(&name)),
            None if version < 7 => Some(str_bytes("")),
            None => None,
        })
        .with_leader(str_bytes(&j.leader))
        .with_skip_assignment(version >= 9 && j.skip_assignment)
        .with_member_id(str_bytes(&j.member_id))
        .with_members(members)
}
