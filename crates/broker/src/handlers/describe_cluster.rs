//! DescribeCluster (key 60), v0-2: the live brokers and the active controller, from this node's
//! committed metadata snapshot.

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use crate::handlers::str_bytes;
use crate::shard::Shard;
use shoal_protocol::errors as ec;

pub fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let meta = shard.metadata();
    DescribeClusterResponse::default()
        .with_error_code(ec::NONE)
        .with_endpoint_type(1)
        .with_cluster_id(str_bytes(&meta.cluster_id))
        .with_controller_id(BrokerId(meta.controller_id))
        .with_brokers(
            meta.live_brokers()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(str_bytes(&b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.as_deref().map(str_bytes))
                })
                .collect(),
        )
        .with_cluster_authorized_operations(i32::MIN)
}
