//! Kafka API handlers, one file per API with the versions it serves. `dispatch` decodes a frame
//! with `protocol::decode_request` (advertised table in `protocol::versions`) and spawns the
//! handler; the returned task yields the encoded response frame (or none, for `acks=0`).

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod fetch;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
// Consumer groups (issue 4).
pub mod delete_groups;
pub mod describe_groups;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod sync_group;

use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use futures_lite::FutureExt;

use bytes::{Bytes, BytesMut};

use kafka_protocol::messages::ApiKey;
use shoal_protocol::{decode_request, encode_response, Request, Response};

use crate::partition::FileRange;
use crate::shard::Shard;

/// What the connection does once a request is handled, in request order.
pub enum Reply {
    Frame(BytesMut),
    /// A frame in pieces, written in order (Fetch: records as copies or file ranges).
    Pieces(Vec<Piece>),
    /// Nothing is sent (Produce with acks=0).
    Nothing,
    /// The request could not be answered (a bug, logged): close this connection.
    Close,
}

pub type Pending = glommio::Task<Reply>;

/// A piece of a response frame: bytes in memory, or a range of a segment file that the
/// connection sends file to socket (`fetch_zero_copy`).
#[derive(Debug)]
pub enum Piece {
    Inline(Bytes),
    /// Record bytes copied out of a segment.
    Records(Bytes),
    File(FileRange),
}

/// Who sent a request (group members are described with their client id and host).
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub client_id: String,
    /// Kafka's form: `/IP`.
    pub client_host: String,
}

pub fn dispatch(shard: &Rc<Shard>, frame: Bytes) -> Result<Pending, String> {
    dispatch_from(shard, frame, "")
}

/// `peer` is the client's `IP:PORT` (may be empty).
pub fn dispatch_from(shard: &Rc<Shard>, frame: Bytes, peer: &str) -> Result<Pending, String> {
    let decoded = match decode_request(frame) {
        Ok(decoded) => decoded,
        // KIP-511 ApiVersions fallback and refused Produce v0-2 get an answer; the rest closes.
        Err(e) => return e.reply().map(ready).ok_or_else(|| e.to_string()),
    };
    let version = decoded.version();
    let correlation_id = decoded.correlation_id();
    let api_key = decoded.api_key;
    let host = peer
        .rsplit_once(':')
        .map_or(peer, |(h, _)| h)
        .trim_matches(['[', ']']);
    let ctx = RequestContext {
        client_id: decoded.client_id().unwrap_or_default().to_string(),
        client_host: format!("/{host}"),
    };
    let shard = shard.clone();
    let handled = async move {
        let started = std::time::Instant::now();
        let m = &shard.metrics;
        m.requests.set(m.requests.get() + 1);
        let reply = match decoded.request {
            Request::Fetch(r) => fetch::handle(&shard, version, correlation_id, r).await,
            request => match handle(&shard, version, request, &ctx).await {
                None => Reply::Nothing,
                Some(response) => match encode_response(correlation_id, version, &response) {
                    Ok(frame) => Reply::Frame(frame),
                    Err(e) => {
                        log::error!("cannot encode {api_key:?} v{version} response: {e:?}");
                        Reply::Close
                    }
                },
            },
        };
        let m = &shard.metrics;
        match api_key {
            ApiKey::Produce => {
                m.produce_request.record_since(started);
                m.produce_requests.set(m.produce_requests.get() + 1);
            }
            ApiKey::Fetch => {
                m.fetch_request.record_since(started);
                m.fetch_requests.set(m.fetch_requests.get() + 1);
            }
            _ => {}
        }
        reply
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

async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: Request,
    ctx: &RequestContext,
) -> Option<Response> {
    Some(match request {
        Request::ApiVersions(r) => Response::ApiVersions(api_versions::handle(version, r)),
        Request::Produce(r) => Response::Produce(produce::handle(shard, version, r).await?),
        Request::Fetch(_) => unreachable!("Fetch is answered in pieces by dispatch_from"),
        Request::ListOffsets(r) => {
            Response::ListOffsets(list_offsets::handle(shard, version, r).await)
        }
        Request::Metadata(r) => Response::Metadata(metadata::handle(shard, version, r).await),
        Request::InitProducerId(r) => {
            Response::InitProducerId(init_producer_id::handle(shard, version, r).await)
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
        Request::CreatePartitions(r) => {
            Response::CreatePartitions(create_partitions::handle(shard, version, r).await)
        }
        Request::IncrementalAlterConfigs(r) => Response::IncrementalAlterConfigs(
            incremental_alter_configs::handle(shard, version, r).await,
        ),
        Request::OffsetForLeaderEpoch(r) => {
            Response::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(shard, version, r).await)
        }
        Request::FindCoordinator(r) => {
            Response::FindCoordinator(find_coordinator::handle(shard, version, r).await)
        }
        Request::JoinGroup(r) => {
            Response::JoinGroup(join_group::handle(shard, version, r, ctx).await)
        }
        Request::SyncGroup(r) => Response::SyncGroup(sync_group::handle(shard, version, r).await),
        Request::Heartbeat(r) => Response::Heartbeat(heartbeat::handle(shard, version, r).await),
        Request::LeaveGroup(r) => {
            Response::LeaveGroup(leave_group::handle(shard, version, r).await)
        }
        Request::OffsetCommit(r) => {
            Response::OffsetCommit(offset_commit::handle(shard, version, r).await)
        }
        Request::OffsetFetch(r) => {
            Response::OffsetFetch(offset_fetch::handle(shard, version, r).await)
        }
        Request::ListGroups(r) => {
            Response::ListGroups(list_groups::handle(shard, version, r).await)
        }
        Request::DescribeGroups(r) => {
            Response::DescribeGroups(describe_groups::handle(shard, version, r).await)
        }
        Request::DeleteGroups(r) => {
            Response::DeleteGroups(delete_groups::handle(shard, version, r).await)
        }
        Request::OffsetDelete(r) => {
            Response::OffsetDelete(offset_delete::handle(shard, version, r).await)
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

/// Spawns `task` for every partition of every topic of a request, all concurrently on this
/// shard, and returns their results in request order.
pub async fn per_partition_tasks<T, P, R, F>(
    topics: &[T],
    partitions: impl Fn(&T) -> &[P],
    mut task: impl FnMut(&T, &P) -> F,
) -> Vec<R>
where
    F: std::future::Future<Output = R> + 'static,
    R: 'static,
{
    let mut tasks = Vec::new();
    for t in topics {
        for p in partitions(t) {
            tasks.push(glommio::spawn_local(task(t, p)));
        }
    }
    join_all(tasks).await
}

/// A response's topics built from the request's, in request order: `partition` answers each
/// request partition with the next of `results` (one per partition, in request order), and
/// `topic` wraps a topic's answers.
pub fn respond_per_partition<T, P, X, PR, TR>(
    topics: &[T],
    partitions: impl Fn(&T) -> &[P],
    results: impl IntoIterator<Item = X>,
    mut partition: impl FnMut(&P, X) -> PR,
    mut topic: impl FnMut(&T, Vec<PR>) -> TR,
) -> Vec<TR> {
    let mut results = results.into_iter();
    topics
        .iter()
        .map(|t| {
            let answers = partitions(t)
                .iter()
                .map(|p| partition(p, results.next().expect("one result per partition")))
                .collect();
            topic(t, answers)
        })
        .collect()
}

pub fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}
