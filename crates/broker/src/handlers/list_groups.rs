//! ListGroups (key 16), v0-5: groups of every `__consumer_offsets` partition this node leads
//! (loading each on first use; other nodes list theirs), filtered by state (v4+) and type (v5+; all groups are "classic").

use std::rc::Rc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use crate::group::manager::{ensure_offsets_topic, offsets_partitions, on_partition_slot};
use crate::handlers::str_bytes;
use crate::shard::Shard;
use shoal_protocol::errors as e;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    if let Err(code) = ensure_offsets_topic(shard).await {
        return ListGroupsResponse::default().with_error_code(code);
    }
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    if !types.is_empty() && !types.iter().any(|t| t == "classic") {
        return ListGroupsResponse::default();
    }
    let mut error = e::NONE;
    let mut groups = Vec::new();
    for p in 0..offsets_partitions(shard) {
        match on_partition_slot(
            shard,
            p,
            |slot| async move { slot.read(|c| c.list_groups()) },
        )
        .await
        {
            Ok(listed) => groups.extend(listed),
            // Another node coordinates this partition's groups; it lists them (as in Kafka).
            Err(e::NOT_COORDINATOR) => {}
            Err(code) => error = code,
        }
    }
    let groups = groups
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group_id)))
                .with_protocol_type(str_bytes(&g.protocol_type));
            if version >= 4 {
                listed.group_state = str_bytes(g.state.name());
            }
            if version >= 5 {
                listed.group_type = str_bytes("classic");
            }
            listed
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(error)
        .with_groups(groups)
}
