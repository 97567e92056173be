//! Fetch (key 1), v4-18. Sessions are declined (SessionId 0, KIP-227); topic ids from v13.
//! Long poll: if fewer than `min_bytes` are available, every requested partition's owner is asked
//! to wake us when data arrives, bounded by `max_wait_ms` (capped by `fetch_wait_ms_max`).

use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::protocol::StrBytes;
use shoal_protocol::fetch::{
    encode_fetch_response, FetchChunk, FetchFrame, FetchPartitionHead, FetchResponseHead,
    FetchTopicHead,
};

use crate::handlers::{join_all, Piece, Reply};
use crate::partition::{ops, ReadMode, ReadOutcome, RecordData};
use crate::shard::Shard;
use shoal_protocol::errors as ec;
use shoal_sync::Notify;

struct Wanted {
    topic: Option<String>,
    partition: i32,
    offset: i64,
    max_bytes: u32,
    leader_epoch: i32,
}

/// Answers with the encoded frame as pieces: inline bytes, and the records as copies or file
/// ranges (`fetch_zero_copy`).
pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    correlation_id: i32,
    request: FetchRequest,
) -> Reply {
    let meta = shard.metadata();
    let mut wanted: Vec<Vec<Wanted>> = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = if version >= 13 {
            meta.topic_by_id(&t.topic_id).map(|m| m.name.clone())
        } else {
            Some(t.topic.0.to_string())
        };
        wanted.push(
            t.partitions
                .iter()
                .map(|p| Wanted {
                    topic: name.clone(),
                    partition: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as u32,
                    leader_epoch: p.current_leader_epoch,
                })
                .collect(),
        );
    }
    let unknown_topic = if version >= 13 {
        ec::UNKNOWN_TOPIC_ID
    } else {
        ec::UNKNOWN_TOPIC_OR_PARTITION
    };
    let session_error = request.session_id > 0;
    let bytes_max = (request.max_bytes.max(0) as usize).min(shard.ctx.config.fetch_bytes_max);
    let wait_ms = (request.max_wait_ms.max(0) as u64).min(shard.ctx.config.fetch_wait_ms_max);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let min_bytes = request.min_bytes.max(0) as usize;

    let mut results = if session_error {
        Vec::new()
    } else {
        read_all(shard, &wanted, bytes_max, unknown_topic).await
    };
    let available: usize = results.iter().flatten().map(|r| r.bytes()).sum();
    let any_error = results.iter().flatten().any(|r| r.error_code != ec::NONE);
    if !session_error && available < min_bytes.max(1) && !any_error && wait_ms > 0 {
        wait_any(shard, &wanted, deadline).await;
        results = read_all(shard, &wanted, bytes_max, unknown_topic).await;
    }

    let mut topics = Vec::with_capacity(request.topics.len());
    let mut records = Vec::with_capacity(request.topics.len());
    for (ti, t) in request.topics.iter().enumerate() {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        let mut row = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let r = if session_error {
                ReadOutcome::error(ec::FETCH_SESSION_ID_NOT_FOUND)
            } else {
                std::mem::take(&mut results[ti][pi])
            };
            partitions.push(FetchPartitionHead {
                partition_index: p.partition,
                error_code: r.error_code,
                high_watermark: r.high_watermark,
                last_stable_offset: r.high_watermark,
                log_start_offset: if version >= 5 { r.log_start_offset } else { -1 },
                aborted_transactions: Some(Vec::new()),
                records_bytes: Some(r.bytes()),
                ..FetchPartitionHead::default()
            });
            row.push(r.records);
        }
        topics.push(FetchTopicHead {
            name: if version >= 13 {
                StrBytes::default()
            } else {
                t.topic.0.clone()
            },
            topic_id: if version >= 13 {
                t.topic_id
            } else {
                uuid::Uuid::nil()
            },
            partitions,
        });
        records.push(row);
    }
    let head = FetchResponseHead {
        throttle_time_ms: 0,
        error_code: if session_error {
            ec::FETCH_SESSION_ID_NOT_FOUND
        } else {
            ec::NONE
        },
        session_id: 0,
        topics,
    };
    match encode_fetch_response(correlation_id, version, &head) {
        Ok(frame) => Reply::Pieces(pieces(frame, records)),
        Err(e) => {
            log::error!("cannot encode a Fetch response: {e:?}");
            Reply::Close
        }
    }
}

/// The frame's chunks with each gap filled by its partition's records.
fn pieces(frame: FetchFrame, mut records: Vec<Vec<RecordData>>) -> Vec<Piece> {
    let mut out = Vec::with_capacity(frame.chunks.len());
    for chunk in frame.chunks {
        match chunk {
            FetchChunk::Inline(bytes) => out.push(Piece::Inline(bytes)),
            FetchChunk::Records {
                topic,
                partition,
                bytes,
            } => {
                let data = std::mem::take(&mut records[topic][partition]);
                assert_eq!(data.len(), bytes, "records of {topic}/{partition}");
                match data {
                    RecordData::Copied(b) => out.push(Piece::Records(b)),
                    RecordData::Files(ranges) => out.extend(ranges.into_iter().map(Piece::File)),
                }
            }
        }
    }
    out
}

/// Reads every partition concurrently, then keeps data in request order within `bytes_max`
/// (the first non-empty partition is always kept whole, KIP-74).
async fn read_all(
    shard: &Rc<Shard>,
    wanted: &[Vec<Wanted>],
    bytes_max: usize,
    unknown_topic: i16,
) -> Vec<Vec<ReadOutcome>> {
    let read_mode = if shard.ctx.config.fetch_zero_copy {
        ReadMode::FileRanges
    } else {
        ReadMode::Copy
    };
    let mut tasks = Vec::new();
    for w in wanted.iter().flatten() {
        let shard = shard.clone();
        let topic = w.topic.clone();
        let (partition, offset, max_bytes, epoch) =
            (w.partition, w.offset, w.max_bytes, w.leader_epoch);
        let max_bytes = max_bytes.min(bytes_max as u32);
        tasks.push(glommio::spawn_local(async move {
            let Some(topic) = topic else {
                return ReadOutcome::error(unknown_topic);
            };
            if let Err(code) = shard.check_leader_epoch(&topic, partition, epoch) {
                return ReadOutcome::error(code);
            }
            shard
                .on_partition(&topic, partition, move |_, p| {
                    ops::read(p, offset, max_bytes, true, read_mode)
                })
                .await
                .unwrap_or_else(ReadOutcome::error)
        }));
    }
    let mut flat = join_all(tasks).await.into_iter();
    let mut used = 0usize;
    let mut out = Vec::with_capacity(wanted.len());
    for ws in wanted {
        let mut row = Vec::with_capacity(ws.len());
        for _ in ws {
            let mut r = flat.next().expect("one result per partition");
            let n = r.bytes();
            if n > 0 {
                if used > 0 && used + n > bytes_max {
                    r.records = RecordData::default();
                } else {
                    used += n;
                }
            }
            row.push(r);
        }
        out.push(row);
    }
    out
}

/// Returns when any requested partition may have new data, or at `deadline`.
async fn wait_any(shard: &Rc<Shard>, wanted: &[Vec<Wanted>], deadline: Instant) {
    let woken = Rc::new(Notify::default());
    let notified = woken.notified();
    for w in wanted.iter().flatten() {
        let Some(topic) = w.topic.clone() else {
            continue;
        };
        let (partition, offset) = (w.partition, w.offset);
        let shard = shard.clone();
        let woken = woken.clone();
        glommio::spawn_local(async move {
            let _ = shard
                .on_partition(&topic, partition, move |_, p| {
                    ops::wait_for_data(p, offset, deadline)
                })
                .await;
            woken.notify_all();
        })
        .detach();
    }
    let now = Instant::now();
    if deadline > now {
        futures_lite::future::or(notified, glommio::timer::sleep(deadline - now)).await;
    }
}
