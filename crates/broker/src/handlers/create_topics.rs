//! CreateTopics (key 19), v2-7. Replication factor -1 means Kafka's
//! `default.replication.factor` (1); more replicas than unfenced brokers fail
//! INVALID_REPLICATION_FACTOR at the controller. Names and configs are validated here; the topics then go to the active controller in one
//! request and are answered once committed and visible in this node's snapshot. `validate_only`
//! changes nothing. Manual assignments are checked for known brokers, then placement is the
//! controller's.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use crate::config::{topic_config_value, ConfigSource, TOPIC_CONFIG_DEFAULTS};
use crate::context::NodeContext;
use crate::errors::KafkaCode;
use crate::handlers::str_bytes;
use crate::metadata::{ControllerError, ControllerReply, ControllerRequest, NewTopic};
use crate::shard::Shard;
use shoal_protocol::errors as ec;

/// Kafka's `default.replication.factor`: what a topic created with -1 gets.
pub const DEFAULT_REPLICATION_FACTOR: i16 = 1;

fn success(
    version: i16,
    node: &NodeContext,
    name: &str,
    id: uuid::Uuid,
    partitions: i32,
    replication_factor: i16,
    topic_configs: &BTreeMap<String, String>,
) -> CreatableTopicResult {
    let mut result = CreatableTopicResult::default()
        .with_name(kafka_protocol::messages::TopicName(str_bytes(name)))
        .with_topic_id(id)
        .with_error_code(ec::NONE)
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor);
    if version >= 5 {
        let configs = TOPIC_CONFIG_DEFAULTS
            .iter()
            .filter_map(|(k, _)| {
                let (v, source) =
                    topic_config_value(k, &node.config.topic_defaults, topic_configs)?;
                Some(
                    CreatableTopicConfigs::default()
                        .with_name(str_bytes(k))
                        .with_value(Some(str_bytes(v)))
                        .with_config_source(match source {
                            ConfigSource::Topic => 1,
                            ConfigSource::Node => 5,
                            ConfigSource::Default => 5,
                        }),
                )
            })
            .collect();
        result = result.with_configs(Some(configs));
    }
    result
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let node = &shard.ctx;
    let mut results = Vec::with_capacity(request.topics.len());
    let mut wanted: Vec<(usize, i32, i16)> = Vec::new();
    let mut new_topics: Vec<NewTopic> = Vec::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        let fail = |code: i16, msg: String| {
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&msg)))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        };
        let partitions = if t.num_partitions == -1 {
            if t.assignments.is_empty() {
                node.config.num_partitions
            } else {
                t.assignments.len() as i32
            }
        } else {
            t.num_partitions
        };
        if partitions > node.config.topic_partitions_max {
            results.push(fail(
                ec::INVALID_PARTITIONS,
                format!(
                    "{partitions} partitions exceed topic_partitions_max {}",
                    node.config.topic_partitions_max
                ),
            ));
            continue;
        }
        let replication_factor = match t.replication_factor {
            -1 => DEFAULT_REPLICATION_FACTOR,
            rf if rf >= 1 => rf,
            rf => {
                results.push(fail(
                    ec::INVALID_REPLICATION_FACTOR,
                    format!("replication factor must be >= 1 or -1, got {rf}"),
                ));
                continue;
            }
        };
        let meta = shard.metadata();
        if t.assignments
            .iter()
            .any(|a| a.broker_ids.iter().any(|b| meta.broker(b.0).is_none()))
        {
            results.push(fail(
                ec::INVALID_REPLICA_ASSIGNMENT,
                "assignment names an unknown broker".into(),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        if let Err(e) = crate::metadata::validate_topic_name(&name) {
            results.push(fail(e.code, e.message));
            continue;
        }
        if let Some((k, m)) = configs.iter().find_map(|(k, v)| {
            crate::config::validate_topic_config(k, v)
                .err()
                .map(|m| (k, m))
        }) {
            results.push(fail(ec::INVALID_CONFIG, format!("{k}: {m}")));
            continue;
        }
        if partitions < 1 {
            results.push(fail(
                ec::INVALID_PARTITIONS,
                format!("number of partitions must be >= 1, got {partitions}"),
            ));
            continue;
        }
        if request.validate_only {
            if shard.metadata().topic(&name).is_some() {
                results.push(fail(
                    ec::TOPIC_ALREADY_EXISTS,
                    format!("topic '{name}' already exists"),
                ));
            } else {
                results.push(success(
                    version,
                    node,
                    &name,
                    uuid::Uuid::nil(),
                    partitions,
                    replication_factor,
                    &configs,
                ));
            }
            continue;
        }
        wanted.push((results.len(), partitions, replication_factor));
        results.push(fail(ec::REQUEST_TIMED_OUT, "not answered".into()));
        new_topics.push(NewTopic {
            name,
            partitions,
            replication_factor,
            configs,
        });
    }
    if !new_topics.is_empty() {
        let names: Vec<String> = new_topics.iter().map(|t| t.name.clone()).collect();
        let answer = shard
            .ctx
            .metadata
            .controller(ControllerRequest::CreateTopics { topics: new_topics })
            .await;
        let per_topic: Vec<Result<uuid::Uuid, ControllerError>> = match answer {
            Ok(ControllerReply::CreateTopics(list)) => names
                .iter()
                .map(|n| {
                    list.iter()
                        .find(|(name, _)| name == n)
                        .map(|(_, r)| r.clone())
                        .unwrap_or(Err(ControllerError::Internal("no answer for topic".into())))
                })
                .collect(),
            Ok(other) => names
                .iter()
                .map(|_| {
                    Err(ControllerError::Internal(format!(
                        "unexpected reply {other:?}"
                    )))
                })
                .collect(),
            Err(e) => names.iter().map(|_| Err(e.clone())).collect(),
        };
        // Answer once this node's snapshot shows what the controller committed, so the client's
        // next request here finds the topic.
        let created: Vec<(String, uuid::Uuid)> = names
            .iter()
            .zip(&per_topic)
            .filter_map(|(n, r)| r.as_ref().ok().map(|id| (n.clone(), *id)))
            .collect();
        let timeout = shard.ctx.metadata.reply_timeout();
        shard
            .ctx
            .metadata
            .wait_for(timeout, |m| {
                created
                    .iter()
                    .all(|(n, id)| m.topic(n).is_some_and(|t| t.id == *id))
            })
            .await;
        for (((index, partitions, rf), name), result) in
            wanted.into_iter().zip(&names).zip(per_topic)
        {
            let request_topic = &request.topics[index];
            results[index] = match result {
                Ok(id) => {
                    log::info!("created topic '{name}' with {partitions} partition(s), {rf} replica(s) each");
                    let configs: BTreeMap<String, String> = request_topic
                        .configs
                        .iter()
                        .filter_map(|c| {
                            c.value
                                .as_ref()
                                .map(|v| (c.name.to_string(), v.to_string()))
                        })
                        .collect();
                    success(version, node, name, id, partitions, rf, &configs)
                }
                Err(e) => CreatableTopicResult::default()
                    .with_name(request_topic.name.clone())
                    .with_error_code(e.kafka_code())
                    .with_error_message(Some(str_bytes(&e.to_string())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            };
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
