//! DeleteGroups (key 42), v0-2: only groups without members; answered once tombstones are durable.

use std::rc::Rc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};

use crate::group::coordinator::Reply;
use crate::group::manager::on_coordinator;
use crate::shard::Shard;
use shoal_protocol::errors as e;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for g in &request.groups_names {
        let group_id = g.0.to_string();
        let code = if group_id.is_empty() {
            e::INVALID_GROUP_ID
        } else {
            let gid = group_id.clone();
            let result = on_coordinator(shard, &group_id, move |slot| async move {
                slot.call(move |c, _now, ticket| c.delete_group(&gid, ticket))
                    .await
            })
            .await;
            match result {
                Ok(Some(Reply::Delete(code))) => code,
                Ok(_) => e::UNKNOWN_SERVER_ERROR,
                Err(code) => code,
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(GroupId(g.0.clone()))
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
