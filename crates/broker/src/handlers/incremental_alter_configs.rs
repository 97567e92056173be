//! IncrementalAlterConfigs (key 44), v0-1: SET, DELETE, APPEND and SUBTRACT on topic configs.
//! Every op is validated here against the resulting value; the topic's ops then go to the active
//! controller as one change and are answered once committed and in effect on this node's
//! shards; other nodes apply them to their open logs on their next tick. Broker configs are static (the config
//! file): a BROKER resource gets INVALID_REQUEST. `validate_only` changes nothing.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use crate::config::{validate_topic_config, TOPIC_CONFIG_DEFAULTS};
use crate::errors::KafkaCode;
use crate::handlers::str_bytes;
use crate::metadata::{ConfigOp, ControllerReply, ControllerRequest};
use crate::shard::Shard;
use shoal_protocol::errors as ec;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;
/// Topic configs whose value is a comma-separated list (APPEND and SUBTRACT apply).
const LIST_CONFIGS: &[&str] = &["cleanup.policy"];

type Refusal = (i16, String);

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut seen = HashSet::new();
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        let outcome = if !seen.insert((r.resource_type, r.resource_name.to_string())) {
            Err((
                ec::INVALID_REQUEST,
                "resource named twice in one request".into(),
            ))
        } else {
            alter(shard, r, request.validate_only).await
        };
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        responses.push(match outcome {
            Ok(()) => response.with_error_code(ec::NONE),
            Err((code, message)) => response
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter(
    shard: &Rc<Shard>,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    match r.resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err((
                ec::INVALID_REQUEST,
                "broker configs are static in Shoal: change the config file and restart".into(),
            ))
        }
        other => return Err((ec::INVALID_REQUEST, format!("resource type {other}"))),
    }
    let name = r.resource_name.to_string();
    let meta = shard.metadata();
    let topic = meta.topic(&name).ok_or_else(|| {
        (
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let ops = topic_ops(r, &topic.configs)?;
    if validate_only || ops.is_empty() {
        return Ok(());
    }
    let metadata = &shard.ctx.metadata;
    let request = ControllerRequest::AlterTopicConfigs {
        name: name.clone(),
        ops: ops.clone(),
    };
    match metadata.controller(request).await {
        Ok(ControllerReply::AlterTopicConfigs) => {}
        Ok(other) => return Err((ec::UNKNOWN_SERVER_ERROR, format!("unexpected {other:?}"))),
        Err(e) => return Err((e.kafka_code(), e.to_string())),
    }
    let applied = |m: &crate::metadata::MetadataSnapshot| {
        m.topic(&name).is_some_and(|t| {
            ops.iter().all(|op| match op {
                ConfigOp::Set { key, value } => t.configs.get(key) == Some(value),
                ConfigOp::Delete { key } => !t.configs.contains_key(key),
            })
        })
    };
    metadata.wait_for(metadata.reply_timeout(), applied).await;
    // In effect on this node's shards before the answer; other nodes follow on their next tick.
    for target in 0..shard.ctx.nr_shards {
        let _ = shard
            .invoke_on(target, |s| async move { s.apply_topic_configs() })
            .await;
    }
    log::info!("topic '{name}': configs altered ({} ops)", ops.len());
    Ok(())
}

/// The request's ops on one topic as SETs and DELETEs of whole values, each validated.
fn topic_ops(
    r: &AlterConfigsResource,
    current: &BTreeMap<String, String>,
) -> Result<Vec<ConfigOp>, Refusal> {
    let mut keys = HashSet::new();
    let mut ops = Vec::with_capacity(r.configs.len());
    for c in &r.configs {
        let key = c.name.to_string();
        if !keys.insert(key.clone()) {
            return Err((ec::INVALID_REQUEST, format!("config '{key}' named twice")));
        }
        let value = c.value.as_ref().map(|v| v.to_string());
        let invalid = |m: String| (ec::INVALID_CONFIG, m);
        let list = |value: &Option<String>| -> Result<Vec<String>, Refusal> {
            if !LIST_CONFIGS.contains(&key.as_str()) {
                return Err(invalid(format!("'{key}' is not a list config")));
            }
            let value = value.as_deref().unwrap_or_default();
            Ok(value
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect())
        };
        let op = match c.config_operation {
            OP_SET => ConfigOp::Set {
                value: value.ok_or_else(|| invalid(format!("SET '{key}' without a value")))?,
                key,
            },
            OP_DELETE if TOPIC_CONFIG_DEFAULTS.iter().any(|(k, _)| *k == key) => {
                ConfigOp::Delete { key }
            }
            OP_DELETE => return Err(invalid(format!("unknown topic config '{key}'"))),
            OP_APPEND | OP_SUBTRACT => {
                let mut items = list(&current.get(&key).cloned())?;
                let change = list(&value)?;
                if c.config_operation == OP_APPEND {
                    for v in change {
                        if !items.contains(&v) {
                            items.push(v);
                        }
                    }
                } else {
                    items.retain(|v| !change.contains(v));
                }
                ConfigOp::Set {
                    value: items.join(","),
                    key,
                }
            }
            other => return Err((ec::INVALID_REQUEST, format!("config operation {other}"))),
        };
        if let ConfigOp::Set { key, value } = &op {
            validate_topic_config(key, value).map_err(invalid)?;
        }
        ops.push(op);
    }
    Ok(ops)
}
