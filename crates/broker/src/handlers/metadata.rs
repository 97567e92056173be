//! Metadata (key 3), v0-13, rendered from this node's committed metadata snapshot: live
//! (unfenced) brokers, each partition's leader, replicas, ISR and offline replicas, and the
//! active controller. Unknown topics are auto-created when the request and `auto_create_topics_enable`
//! allow it.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use crate::errors::KafkaCode;
use crate::handlers::str_bytes;
use crate::metadata::TopicMeta;
use crate::shard::Shard;
use shoal_protocol::errors as ec;

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// A topic's entry: per partition its leader (-1 and LEADER_NOT_AVAILABLE when none), replicas,
/// ISR and offline replicas, from the committed metadata. The leader epoch stays 0: the data path
/// stamps epoch 0 until replication uses the controller's epochs.
pub fn topic_entry(t: &TopicMeta) -> MetadataResponseTopic {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let partitions = t
        .parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            MetadataResponsePartition::default()
                .with_error_code(if p.leader < 0 {
                    ec::LEADER_NOT_AVAILABLE
                } else {
                    ec::NONE
                })
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&p.offline))
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
                    topics.push(topic_entry(t));
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
                let created = node
                    .metadata
                    .create_topic(
                        &name,
                        node.config.num_partitions,
                        crate::handlers::create_topics::DEFAULT_REPLICATION_FACTOR,
                        BTreeMap::new(),
                    )
                    .await
                    .map_err(|e| e.kafka_code());
                match created {
                    Ok(t) => {
                        log::info!(
                            "auto-created topic '{name}' with {} partition(s)",
                            t.partitions()
                        );
                        topics.push(topic_entry(&t));
                    }
                    Err(code) => match shard.metadata().topic(&name) {
                        Some(t) => topics.push(topic_entry(t)),
                        None => topics.push(error_entry(
                            req.name.clone(),
                            req.topic_id,
                            if code == ec::TOPIC_ALREADY_EXISTS {
                                ec::LEADER_NOT_AVAILABLE
                            } else {
                                code
                            },
                        )),
                    },
                }
            }
        }
        _ => {
            for t in meta.topics.values() {
                topics.push(topic_entry(t));
            }
        }
    }
    let meta = shard.metadata();
    MetadataResponse::default()
        .with_brokers(
            meta.live_brokers()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id))
                        .with_host(str_bytes(&b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.as_deref().map(str_bytes))
                })
                .collect(),
        )
        .with_cluster_id(Some(str_bytes(&meta.cluster_id)))
        .with_controller_id(BrokerId(meta.controller_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_OMITTED)
}
