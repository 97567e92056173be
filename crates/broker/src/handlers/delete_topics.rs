//! DeleteTopics (key 20), v1-6 (by name, or by topic id from v6). The topic leaves the metadata
//! first (no new requests reach it), then every shard closes and deletes its partitions.

use std::rc::Rc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use crate::handlers::str_bytes;
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
        match shard.ctx.metadata.delete_topic(&name) {
            Ok(topic) => {
                for target in 0..shard.ctx.nr_shards {
                    let (name, partitions, id) = (topic.name.clone(), topic.partitions(), topic.id);
                    let _ = shard
                        .invoke_on(target, move |s| async move {
                            s.drop_topic(&name, partitions, id).await
                        })
                        .await;
                }
                log::info!("deleted topic '{name}'");
                responses.push(result.with_topic_id(topic.id).with_error_code(ec::NONE));
            }
            Err(e) => responses.push(
                result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(&e.message))),
            ),
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
