//! CreateTopics (key 19), v2-7. Replication factor must be 1 (or -1) until replication lands;
//! configs are validated by name and value; `validate_only` changes nothing.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use crate::config::{topic_config_value, ConfigSource, TOPIC_CONFIG_DEFAULTS};
use crate::handlers::str_bytes;
use crate::shard::Shard;
use shoal_protocol::errors as ec;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let node = &shard.ctx;
    let mut results = Vec::with_capacity(request.topics.len());
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
        if t.replication_factor != -1 && t.replication_factor != 1 {
            results.push(fail(
                ec::INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {} is larger than the 1 available broker",
                    t.replication_factor
                ),
            ));
            continue;
        }
        if t.assignments
            .iter()
            .any(|a| a.broker_ids.iter().any(|b| b.0 != node.config.node_id))
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
        match node
            .metadata
            .create_topic(&name, partitions, configs, false, request.validate_only)
        {
            Ok(meta) => {
                if !request.validate_only {
                    log::info!("created topic '{name}' with {partitions} partition(s)");
                }
                let mut result = CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_topic_id(meta.id)
                    .with_error_code(ec::NONE)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                if version >= 5 {
                    let configs = TOPIC_CONFIG_DEFAULTS
                        .iter()
                        .filter_map(|(k, _)| {
                            let (v, source) =
                                topic_config_value(k, &node.config.topic_defaults, &meta.configs)?;
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
                results.push(result);
            }
            Err(e) => results.push(fail(e.code, e.message)),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
