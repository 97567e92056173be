//! LeaveGroup (key 13), v0-5: one member before v3, a batch of (member id, instance id) after.

use std::rc::Rc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::group::manager::on_coordinator;
use crate::handlers::str_bytes;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group_id = request.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let asked = members.clone();
    let gid = group_id.clone();
    let result = on_coordinator(shard, &group_id, move |slot| async move {
        slot.with(move |c, now| {
            let (top, per, fx) = c.leave(now, &gid, &members);
            ((top, per), fx)
        })
    })
    .await;
    let (top, per) = match result {
        Ok(r) => r,
        Err(code) => (code, vec![code; asked.len()]),
    };
    if version < 3 {
        // One member: its error is the response's.
        let code = if top != 0 {
            top
        } else {
            per.first().copied().unwrap_or(top)
        };
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = asked
        .iter()
        .zip(&per)
        .map(|((member_id, instance), code)| {
            MemberResponse::default()
                .with_member_id(str_bytes(member_id))
                .with_group_instance_id(instance.as_deref().map(str_bytes))
                .with_error_code(*code)
        })
        .collect();
    LeaveGroupResponse::default()
        .with_error_code(top)
        .with_members(members)
}
