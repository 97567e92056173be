//! DeleteTopics (key 20), v1-6 (by name, or by topic id from v6). The controller commits the
//! removal first (no new requests reach the topic), then every shard closes and deletes its
//! partitions.

use std::rc::Rc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use crate::errors::KafkaCode;
use crate::handlers::str_bytes;
use crate::metadata::{ControllerError, ControllerReply, ControllerRequest};
use crate::shard::Shard;
use shoal_protocol::errors as ec;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let meta = shard.metadata();
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => (Some(n.0.to_string()), t.topic_id),
                None => (
                    meta.topic_by_id(&t.topic_id).map(|m| m.name.clone()),
                    t.topic_id,
                ),
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    let mut to_delete: Vec<(usize, String)> = Vec::new();
    for (name, id) in targets {
        let result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(|n| TopicName(str_bytes(n))))
            .with_topic_id(id);
        let Some(name) = name else {
            responses.push(result.with_error_code(ec::UNKNOWN_TOPIC_ID));
            continue;
        };
        if meta.topic(&name).is_some_and(|t| t.internal) {
            responses.push(
                result
                    .with_error_code(ec::INVALID_TOPIC_EXCEPTION)
                    .with_error_message(Some(str_bytes(&format!(
                        "cannot delete internal topic {name}"
                    )))),
            );
            continue;
        }
        to_delete.push((responses.len(), name));
        responses.push(result.with_error_code(ec::REQUEST_TIMED_OUT));
    }
    if to_delete.is_empty() {
        return DeleteTopicsResponse::default().with_responses(responses);
    }
    let names: Vec<String> = to_delete.iter().map(|(_, n)| n.clone()).collect();
    let answer = shard
        .ctx
        .metadata
        .controller(ControllerRequest::DeleteTopics {
            names: names.clone(),
        })
        .await;
    let outcome = |name: &str| -> Result<uuid::Uuid, ControllerError> {
        match &answer {
            Ok(ControllerReply::DeleteTopics(list)) => list
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| r.clone())
                .unwrap_or(Err(ControllerError::Internal("no answer for topic".into()))),
            Ok(other) => Err(ControllerError::Internal(format!(
                "unexpected reply {other:?}"
            ))),
            Err(e) => Err(e.clone()),
        }
    };
    // The topic has left the committed metadata (no new request reaches it); this node's shards
    // close and delete their partitions now, other nodes when they apply the deletion.
    let deleted: Vec<uuid::Uuid> = names.iter().filter_map(|n| outcome(n).ok()).collect();
    shard
        .ctx
        .metadata
        .wait_for(shard.ctx.metadata.reply_timeout(), |m| {
            deleted.iter().all(|id| m.topic_by_id(id).is_none())
        })
        .await;
    for (index, name) in to_delete {
        match outcome(&name) {
            Ok(id) => {
                let partitions = meta.topic(&name).map_or(0, |t| t.partitions());
                for target in 0..shard.ctx.nr_shards {
                    let name = name.clone();
                    let _ = shard
                        .invoke_on(target, move |s| async move {
                            s.drop_topic(&name, partitions, id).await
                        })
                        .await;
                }
                log::info!("deleted topic '{name}'");
                responses[index] = responses[index]
                    .clone()
                    .with_topic_id(id)
                    .with_error_code(ec::NONE);
            }
            Err(e) => {
                responses[index] = responses[index]
                    .clone()
                    .with_error_code(e.kafka_code())
                    .with_error_message(Some(str_bytes(&e.to_string())));
            }
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
