//! DescribeCluster (key 60), v0-2: this node is the whole cluster and its controller.

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
    let node = &shard.ctx;
    DescribeClusterResponse::default()
        .with_error_code(ec::NONE)
        .with_endpoint_type(1)
        .with_cluster_id(str_bytes(&shard.metadata().cluster_id))
        .with_controller_id(BrokerId(node.config.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(node.config.node_id))
            .with_host(str_bytes(&node.advertised_host))
            .with_port(node.advertised_port)])
        .with_cluster_authorized_operations(i32::MIN)
}
