//! CreatePartitions (key 37), v0-3: grows topics to a new partition count. Counts are checked
//! here (above the current, at most `topic_partitions_max`); each topic then goes to the active
//! controller, which places the new partitions, and is answered once committed and visible in
//! this node's snapshot. Manual assignments are checked for known brokers, then placement is
//! the controller's. Internal topics keep their count: the group coordinator's partition of a
//! group is a function of it. `validate_only` changes nothing.

use std::collections::HashSet;
use std::rc::Rc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::errors::KafkaCode;
use crate::handlers::str_bytes;
use crate::metadata::{ControllerReply, ControllerRequest, MetadataSnapshot};
use crate::shard::Shard;
use shoal_protocol::errors as ec;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let duplicated: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let outcome = if duplicated.contains(t.name.0.as_str()) {
            Err((
                ec::INVALID_REQUEST,
                "topic named twice in one request".into(),
            ))
        } else {
            grow(shard, t, request.validate_only).await
        };
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(()) => result.with_error_code(ec::NONE),
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(
    shard: &Rc<Shard>,
    t: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let name = t.name.0.to_string();
    check(&shard.metadata(), t, shard.ctx.config.topic_partitions_max)?;
    if validate_only {
        return Ok(());
    }
    let metadata = &shard.ctx.metadata;
    let request = ControllerRequest::CreatePartitions {
        name: name.clone(),
        count: t.count,
    };
    match metadata.controller(request).await {
        Ok(ControllerReply::CreatePartitions) => {}
        Ok(other) => return Err((ec::UNKNOWN_SERVER_ERROR, format!("unexpected {other:?}"))),
        Err(e) => return Err((e.kafka_code(), e.to_string())),
    }
    let count = t.count;
    let visible = |m: &MetadataSnapshot| m.topic(&name).is_some_and(|t| t.partitions() >= count);
    metadata.wait_for(metadata.reply_timeout(), visible).await;
    log::info!("topic '{name}' now has {count} partitions");
    Ok(())
}

/// What this node can refuse before asking the controller.
fn check(
    meta: &MetadataSnapshot,
    t: &CreatePartitionsTopic,
    partitions_max: i32,
) -> Result<(), (i16, String)> {
    let name = t.name.0.as_str();
    let Some(topic) = meta.topic(name) else {
        return Err((
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        ));
    };
    if topic.internal {
        return Err((
            ec::INVALID_REQUEST,
            format!("internal topic '{name}' keeps its partition count"),
        ));
    }
    let current = topic.partitions();
    if t.count <= current {
        return Err((
            ec::INVALID_PARTITIONS,
            format!(
                "topic '{name}' has {current} partitions; the new count {} must be larger",
                t.count
            ),
        ));
    }
    if t.count > partitions_max {
        return Err((
            ec::INVALID_PARTITIONS,
            format!(
                "{} partitions exceed topic_partitions_max {partitions_max}",
                t.count
            ),
        ));
    }
    let assignments = t.assignments.as_deref().unwrap_or_default();
    if !assignments.is_empty() && assignments.len() as i32 != t.count - current {
        return Err((
            ec::INVALID_REPLICA_ASSIGNMENT,
            format!(
                "{} assignments for {} new partitions",
                assignments.len(),
                t.count - current
            ),
        ));
    }
    if assignments
        .iter()
        .any(|a| a.broker_ids.iter().any(|b| meta.broker(b.0).is_none()))
    {
        return Err((
            ec::INVALID_REPLICA_ASSIGNMENT,
            "assignment names an unknown broker".into(),
        ));
    }
    Ok(())
}
