//! DescribeGroups (key 15), v0-6. Member metadata and assignments only while Stable (as Kafka).

use std::rc::Rc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use crate::group::coordinator::GroupState;
use crate::group::manager::on_coordinator;
use crate::handlers::str_bytes;
use crate::shard::Shard;
use shoal_protocol::errors as e;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for g in &request.groups {
        let group_id = g.0.to_string();
        let gid = group_id.clone();
        let result = on_coordinator(shard, &group_id, move |slot| async move {
            slot.read(|c| c.describe(&gid))
        })
        .await;
        let mut out = DescribedGroup::default().with_group_id(GroupId(g.0.clone()));
        match result {
            Err(code) => out.error_code = code,
            Ok(d) => {
                if d.state == GroupState::Dead && d.members.is_empty() && version >= 6 {
                    out.error_code = e::GROUP_ID_NOT_FOUND;
                    out.error_message = Some(str_bytes(&format!("group {group_id} not found")));
                }
                out.group_state = str_bytes(d.state.name());
                out.protocol_type = str_bytes(&d.protocol_type);
                out.protocol_data = str_bytes(&d.protocol_name);
                out.members = d
                    .members
                    .iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_group_instance_id(if version >= 4 {
                                m.group_instance_id.as_deref().map(str_bytes)
                            } else {
                                None
                            })
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host))
                            .with_member_metadata(m.metadata.clone())
                            .with_member_assignment(m.assignment.clone())
                    })
                    .collect();
            }
        }
        out.authorized_operations = i32::MIN;
        groups.push(out);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
