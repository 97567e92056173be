//! Metadata (key 3), v0-13. Single node: this node leads every partition (epoch 0) and is the
//! controller. Unknown topics are auto-created when the request and `auto_create_topics_enable`
//! allow it.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use crate::handlers::str_bytes;
use crate::metadata::TopicMeta;
use crate::shard::Shard;
use shoal_protocol::errors as ec;

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn topic_entry(node_id: i32, t: &TopicMeta) -> MetadataResponseTopic {
    let partitions = (0..t.partitions())
        .map(|p| {
            MetadataResponsePartition::default()
                .with_error_code(ec::NONE)
                .with_partition_index(p)
                .with_leader_id(BrokerId(node_id))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(node_id)])
                .with_isr_nodes(vec![BrokerId(node_id)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(ec::NONE)
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_topic_id(t.id)
        .with_is_internal(t.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}

fn error_entry(name: Option<TopicName>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name)
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}

pub async fn handle(shard: &Rc<Shard>, version: i16, request: MetadataRequest) -> MetadataResponse {
    let node = &shard.ctx;
    let node_id = node.config.node_id;
    let auto_create =
        node.config.auto_create_topics_enable && (version < 4 || request.allow_auto_topic_creation);
    let meta = shard.metadata();
    let mut topics = Vec::new();
    match &request.topics {
        // v0: an empty list means all topics; v1+: null means all topics.
        Some(list) if !(version == 0 && list.is_empty()) => {
            for req in list {
                let name = match &req.name {
                    Some(n) => n.0.to_string(),
                    None => match meta.topic_by_id(&req.topic_id) {
                        Some(t) => t.name.clone(),
                        None => {
                            topics.push(error_entry(None, req.topic_id, ec::UNKNOWN_TOPIC_ID));
                            continue;
                        }
                    },
                };
                if let Some(t) = meta.topic(&name) {
                    topics.push(topic_entry(node_id, t));
                    continue;
                }
                if !auto_create {
                    topics.push(error_entry(
                        req.name.clone(),
                        req.topic_id,
                        ec::UNKNOWN_TOPIC_OR_PARTITION,
                    ));
                    continue;
                }
                match node.metadata.create_topic(
                    &name,
                    node.config.num_partitions,
                    BTreeMap::new(),
                    false,
                    false,
                ) {
                    Ok(t) => {
                        log::info!(
                            "auto-created topic '{name}' with {} partition(s)",
                            t.partitions()
                        );
                        topics.push(topic_entry(node_id, &t));
                    }
                    Err(e) if e.code == ec::TOPIC_ALREADY_EXISTS => {
                        match shard.metadata().topic(&name) {
                            Some(t) => topics.push(topic_entry(node_id, t)),
                            None => topics.push(error_entry(
                                req.name.clone(),
                                req.topic_id,
                                ec::LEADER_NOT_AVAILABLE,
                            )),
                        }
                    }
                    Err(e) => topics.push(error_entry(req.name.clone(), req.topic_id, e.code)),
                }
            }
        }
        _ => {
            for t in meta.topics.values() {
                topics.push(topic_entry(node_id, t));
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(node_id))
            .with_host(str_bytes(&node.advertised_host))
            .with_port(node.advertised_port)])
        .with_cluster_id(Some(str_bytes(&meta.cluster_id)))
        .with_controller_id(BrokerId(node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_OMITTED)
}
