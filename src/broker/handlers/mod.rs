//! Kafka API handlers, one file per API with the versions it serves. `dispatch` decodes a frame
//! with `protocol::decode_request` (advertised table in `protocol::versions`) and spawns the
//! handler; the returned task yields the encoded response frame (or none, for `acks=0`).

pub mod api_versions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;

use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use futures_lite::FutureExt;

use bytes::{Bytes, BytesMut};

use crate::broker::error_codes as ec;
use crate::protocol::{decode_request, encode_response, error_response, Request, Response};

use crate::broker::shard::Shard;

/// What the connection does once a request is handled, in request order.
pub enum Reply {
    Frame(BytesMut),
    /// Nothing is sent (Produce with acks=0).
    Nothing,
    /// The request could not be answered (a bug, logged): close this connection.
    Close,
}

pub type Pending = glommio::Task<Reply>;

pub fn dispatch(shard: &Rc<Shard>, frame: Bytes) -> Result<Pending, String> {
    let decoded = match decode_request(frame) {
        Ok(decoded) => decoded,
        // KIP-511 ApiVersions fallback and refused Produce v0-2 get an answer; the rest closes.
        Err(e) => return e.reply().map(ready).ok_or_else(|| e.to_string()),
    };
    let version = decoded.version();
    let correlation_id = decoded.correlation_id();
    let api_key = decoded.api_key;
    let shard = shard.clone();
    let handled = async move {
        let Some(response) = handle(&shard, version, decoded.request).await else {
            return Reply::Nothing;
        };
        match encode_response(correlation_id, version, &response) {
            Ok(frame) => Reply::Frame(frame),
            Err(e) => {
                log::error!("cannot encode {api_key:?} v{version} response: {e:?}");
                Reply::Close
            }
        }
    };
    // A handler bug must cost one connection, never the shard.
    Ok(glommio::spawn_local(async move {
        match AssertUnwindSafe(handled).catch_unwind().await {
            Ok(reply) => reply,
            Err(_) => {
                log::error!("{api_key:?} v{version} handler panicked: closing the connection");
                Reply::Close
            }
        }
    }))
}

fn ready(response: BytesMut) -> Pending {
    glommio::spawn_local(async move { Reply::Frame(response) })
}

async fn handle(shard: &Rc<Shard>, version: i16, request: Request) -> Option<Response> {
    Some(match request {
        Request::ApiVersions(r) => Response::ApiVersions(api_versions::handle(version, r)),
        Request::Produce(r) => Response::Produce(produce::handle(shard, version, r).await?),
        Request::Fetch(r) => Response::Fetch(fetch::handle(shard, version, r).await),
        Request::ListOffsets(r) => {
            Response::ListOffsets(list_offsets::handle(shard, version, r).await)
        }
        Request::Metadata(r) => {
            Response::Metadata(metadata::handle(shard, version, r).await)
        }
        Request::InitProducerId(r) => {
            Response::InitProducerId(init_producer_id::handle(shard, version, r))
        }
        Request::CreateTopics(r) => {
            Response::CreateTopics(create_topics::handle(shard, version, r).await)
        }
        Request::DeleteTopics(r) => {
            Response::DeleteTopics(delete_topics::handle(shard, version, r).await)
        }
        Request::DescribeConfigs(r) => {
            Response::DescribeConfigs(describe_configs::handle(shard, version, r))
        }
        Request::DescribeCluster(r) => {
            Response::DescribeCluster(describe_cluster::handle(shard, version, r))
        }
        Request::OffsetForLeaderEpoch(r) => Response::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(shard, version, r).await,
        ),
        other => {
            log::warn!("no handler for {:?}", other.api_key());
            error_response(&other, version, ec::UNSUPPORTED_VERSION)
        }
    })
}

/// Concurrently awaits tasks spawned on this shard, in order.
pub async fn join_all<T>(tasks: Vec<glommio::Task<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    out
}

pub fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}
