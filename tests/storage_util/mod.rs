//! Helpers shared by the storage tests.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use shoal::storage::batch::{self, ProducerFields, RecordSpec};
use shoal::storage::{LogConfig, PartitionLog, ReadResult};

/// Runs `f` on a fresh glommio executor (small io memory keeps setup cheap).
pub fn run<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(f)
        .expect("spawn glommio executor")
        .join()
        .expect("executor thread")
}

/// A client batch of `records` records of `value_bytes` bytes each, deterministic in `seed`.
pub fn make_batch(seed: u64, records: usize, value_bytes: usize, timestamp: i64) -> BytesMut {
    make_batch_with(seed, records, value_bytes, timestamp, ProducerFields::NONE)
}

pub fn make_batch_with(
    seed: u64,
    records: usize,
    value_bytes: usize,
    timestamp: i64,
    producer: ProducerFields,
) -> BytesMut {
    let values: Vec<Vec<u8>> = (0..records)
        .map(|r| {
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (r as u64);
            (0..value_bytes)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    let key = seed.to_be_bytes();
    let specs: Vec<RecordSpec<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| RecordSpec {
            timestamp_delta: i as i64,
            key: Some(&key),
            value: Some(v),
            headers: &[],
        })
        .collect();
    batch::build_batch(timestamp, producer, &specs)
}

/// The bytes the log must hold for `batch` appended at `base_offset` in `leader_epoch`.
pub fn stamped(batch: &[u8], base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut out = batch.to_vec();
    batch::set_base_offset(&mut out, base_offset);
    batch::set_partition_leader_epoch(&mut out, leader_epoch);
    out
}

pub async fn read_all(result: &ReadResult) -> Vec<u8> {
    let mut out = Vec::with_capacity(result.bytes);
    for slice in &result.slices {
        let bytes: Bytes = slice.read().await.expect("read slice");
        assert_eq!(bytes.len(), slice.len());
        out.extend_from_slice(&bytes);
    }
    assert_eq!(out.len(), result.bytes);
    out
}

/// Every batch from the log start to the high watermark, as (base offset, bytes).
pub async fn dump(log: &PartitionLog) -> Vec<(i64, Vec<u8>)> {
    let hw = log.high_watermark();
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < hw {
        let result = log.read(offset, 1 << 20, hw, true).await.expect("read");
        assert!(
            !result.slices.is_empty(),
            "no data at {offset} below hw {hw}"
        );
        let bytes = read_all(&result).await;
        let mut at = 0;
        while at < bytes.len() {
            let parsed = batch::BatchHeader::parse(&bytes[at..]).expect("header");
            let len = parsed.batch_bytes().expect("length");
            assert!(at + len <= bytes.len(), "slice ends inside a batch");
            batch::verify(&bytes[at..at + len]).expect("stored batch verifies");
            out.push((parsed.base_offset, bytes[at..at + len].to_vec()));
            offset = parsed.next_offset();
            at += len;
        }
    }
    out
}

pub fn small_config(segment_bytes: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        ..LogConfig::default()
    }
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
