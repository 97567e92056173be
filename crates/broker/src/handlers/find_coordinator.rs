//! FindCoordinator (key 10), v0-6 (v4+ batched). A group's coordinator is the broker leading its
//! `__consumer_offsets` partition (created on first use); that broker loads the partition on the
//! group's first request, before serving it. Only key
//! type 0 (group): transactions are not supported.

use std::rc::Rc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use crate::group::manager::ensure_offsets_topic;
use crate::group::{partition_for, OFFSETS_TOPIC};
use crate::handlers::str_bytes;
use crate::shard::Shard;
use shoal_protocol::errors as e;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        request
            .coordinator_keys
            .iter()
            .map(|k| k.to_string())
            .collect()
    } else {
        vec![request.key.to_string()]
    };
    let mut answers = Vec::with_capacity(keys.len());
    for key in &keys {
        answers.push(locate(shard, request.key_type, key).await);
    }
    if version >= 4 {
        let coordinators = keys
            .iter()
            .zip(answers)
            .map(|(key, a)| {
                Coordinator::default()
                    .with_key(str_bytes(key))
                    .with_node_id(BrokerId(a.id))
                    .with_host(str_bytes(&a.host))
                    .with_port(a.port)
                    .with_error_code(a.code)
                    .with_error_message(a.message.as_deref().map(str_bytes))
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let a = answers.pop().expect("one key");
    let mut response = FindCoordinatorResponse::default()
        .with_error_code(a.code)
        .with_node_id(BrokerId(a.id))
        .with_host(str_bytes(&a.host))
        .with_port(a.port);
    if version >= 1 {
        response.error_message = a.message.as_deref().map(str_bytes);
    }
    response
}

struct Located {
    code: i16,
    message: Option<String>,
    id: i32,
    host: String,
    port: i32,
}

fn failed(code: i16, message: impl Into<String>) -> Located {
    Located {
        code,
        message: Some(message.into()),
        id: -1,
        host: String::new(),
        port: -1,
    }
}

/// The coordinator of a group is the broker leading its `__consumer_offsets` partition.
async fn locate(shard: &Rc<Shard>, key_type: i8, key: &str) -> Located {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => return failed(e::INVALID_REQUEST, "empty group id"),
        KEY_TYPE_GROUP => {}
        KEY_TYPE_TRANSACTION => {
            return failed(
                e::COORDINATOR_NOT_AVAILABLE,
                "transactions are not supported",
            )
        }
        other => return failed(e::INVALID_REQUEST, format!("unknown key type {other}")),
    }
    if let Err(code) = ensure_offsets_topic(shard).await {
        return failed(code, "__consumer_offsets is unavailable");
    }
    let meta = shard.metadata();
    let Some(topic) = meta.topic(OFFSETS_TOPIC) else {
        return failed(
            e::COORDINATOR_NOT_AVAILABLE,
            "__consumer_offsets is unavailable",
        );
    };
    let partition = partition_for(key, topic.partitions());
    let leader = topic.parts[partition as usize].leader;
    let broker = meta.live_brokers().find(|b| b.id == leader).cloned();
    match broker {
        Some(b) => Located {
            code: e::NONE,
            message: None,
            id: b.id,
            host: b.host.clone(),
            port: b.port,
        },
        None => failed(
            e::COORDINATOR_NOT_AVAILABLE,
            format!("{OFFSETS_TOPIC}-{partition} has no live leader"),
        ),
    }
}
