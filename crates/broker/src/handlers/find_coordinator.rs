//! FindCoordinator (key 10), v0-6 (v4+ batched). Every group's coordinator is this node (the
//! owning shard is found internally); `__consumer_offsets` is created on first use. Only key
//! type 0 (group): transactions are not supported.

use std::rc::Rc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use crate::group::manager::ensure_offsets_topic;
use crate::handlers::str_bytes;
use crate::shard::Shard;
use shoal_protocol::errors as e;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(
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
    let answer = |key: &str| -> (i16, Option<String>) {
        match request.key_type {
            KEY_TYPE_GROUP if key.is_empty() => (e::INVALID_REQUEST, Some("empty group id".into())),
            KEY_TYPE_GROUP => match ensure_offsets_topic(shard) {
                Ok(()) => (e::NONE, None),
                Err(code) => (code, Some("__consumer_offsets is unavailable".into())),
            },
            KEY_TYPE_TRANSACTION => (
                e::COORDINATOR_NOT_AVAILABLE,
                Some("transactions are not supported".into()),
            ),
            other => (
                e::INVALID_REQUEST,
                Some(format!("unknown key type {other}")),
            ),
        }
    };
    let node = &shard.ctx;
    let located = |code: i16| -> (i32, String, i32) {
        if code == e::NONE {
            (
                node.config.node_id,
                node.advertised_host.clone(),
                node.advertised_port,
            )
        } else {
            (-1, String::new(), -1)
        }
    };
    if version >= 4 {
        let coordinators = keys
            .iter()
            .map(|key| {
                let (code, message) = answer(key);
                let (id, host, port) = located(code);
                Coordinator::default()
                    .with_key(str_bytes(key))
                    .with_node_id(BrokerId(id))
                    .with_host(str_bytes(&host))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message.as_deref().map(str_bytes))
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (code, message) = answer(&keys[0]);
    let (id, host, port) = located(code);
    let mut response = FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(id))
        .with_host(str_bytes(&host))
        .with_port(port);
    if version >= 1 {
        response.error_message = message.as_deref().map(str_bytes);
    }
    response
}
