//! Kafka API handlers, one file per API with the versions it serves. `dispatch` parses the request
//! header, checks the version against the advertised range, decodes the body and spawns the
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

use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::broker::shard::Shard;

/// A response being produced; `None` means nothing is sent (Produce with acks=0).
pub type Pending = glommio::Task<Option<BytesMut>>;

pub fn dispatch(shard: &Rc<Shard>, mut frame: Bytes) -> Result<Pending, String> {
    if frame.len() < 8 {
        return Err(format!("request of {} bytes is shorter than a header", frame.len()));
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key =
        ApiKey::try_from(api_key_raw).map_err(|_| format!("unknown api key {api_key_raw}"))?;
    let Some(range) = api_versions::supported(api_key) else {
        return Err(format!("unsupported api {api_key:?}"));
    };
    if version < range.0 || version > range.1 {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer in v0 so the client can retry with a version we support.
            let body = api_versions::unsupported_version_response();
            return Ok(ready(encode(api_key, 0, correlation_id, &ResponseKind::ApiVersions(body))));
        }
        return Err(format!(
            "{api_key:?} v{version} outside the supported range v{}-v{}",
            range.0, range.1
        ));
    }
    let header_version = api_key.request_header_version(version);
    let _header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| format!("bad {api_key:?} v{version} header: {e}"))?;
    let request = RequestKind::decode(api_key, &mut frame, version)
        .map_err(|e| format!("bad {api_key:?} v{version} body: {e}"))?;
    let shard = shard.clone();
    Ok(glommio::spawn_local(async move {
        let response = handle(&shard, version, request).await?;
        Some(encode(api_key, version, correlation_id, &response))
    }))
}

fn ready(response: BytesMut) -> Pending {
    glommio::spawn_local(async move { Some(response) })
}

async fn handle(shard: &Rc<Shard>, version: i16, request: RequestKind) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(version, r)),
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(shard, version, r).await?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(shard, version, r).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(shard, version, r).await)
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(shard, version, r).await),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(shard, version, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(shard, version, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics::handle(shard, version, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(shard, version, r))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(shard, version, r))
        }
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(shard, version, r).await,
        ),
        other => {
            log::warn!("no handler for {other:?}");
            return None;
        }
    })
}

/// Size-prefixed response frame. ApiVersions always uses response header v0.
pub fn encode(api_key: ApiKey, version: i16, correlation_id: i32, body: &ResponseKind) -> BytesMut {
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, header_version)
        .expect("response header encodes");
    body.encode(&mut buf, version).expect("response body encodes");
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf
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
