//! PartitionLog behaviour: round trips across rolls, index and timestamp lookups, retention,
//! truncation, idempotence, leader epochs, validation, group commit, recovery of indexes.

use shoal_broker::errors::KafkaCode;
use std::rc::Rc;

use rand::{rngs::StdRng, Rng, SeedableRng};
use shoal_storage::batch::{self, ProducerFields};
use shoal_storage::{AppendError, FlushPolicy, LogConfig, PartitionLog, StorageError};
use shoal_testkit::storage::*;

async fn append_random(
    log: &PartitionLog,
    model: &mut Model,
    rng: &mut StdRng,
    n: usize,
    ts: &mut i64,
) {
    for _ in 0..n {
        let records = rng.gen_range(1..6);
        let value = rng.gen_range(0..300);
        *ts += rng.gen_range(0..20);
        let b = make_batch(rng.gen(), records, value, *ts);
        let info = log.append(b.clone(), 0, *ts).await.unwrap();
        assert_eq!(info.base_offset, model.end());
        assert_eq!(info.last_offset, info.base_offset + records as i64 - 1);
        assert!(
            log.high_watermark() > info.last_offset,
            "acked before durable"
        );
        model.push(info.base_offset, stamped(&b, info.base_offset, 0));
    }
}

#[test]
fn round_trip_across_many_segments_and_reopen() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let config = small_config(4096, 300);
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(1);
        let mut ts = 1_000;
        append_random(&log, &mut model, &mut rng, 150, &mut ts).await;
        assert!(log.segment_count() > 5, "{} segments", log.segment_count());
        check_reads(&log, &model).await;
        // Clean reopen.
        log.close().await.unwrap();
        drop(log);
        let (log, report) = PartitionLog::open_with_report(path.clone(), config)
            .await
            .unwrap();
        assert!(report.clean_shutdown);
        assert_eq!(report.truncated_bytes, 0);
        check_reads(&log, &model).await;
        append_random(&log, &mut model, &mut rng, 20, &mut ts).await;
        // Unclean reopen (no close): the last segment is recovered by scanning.
        drop(log);
        let (log, report) = PartitionLog::open_with_report(path.clone(), config)
            .await
            .unwrap();
        assert!(!report.clean_shutdown);
        assert_eq!(report.truncated_bytes, 0);
        check_reads(&log, &model).await;
        append_random(&log, &mut model, &mut rng, 20, &mut ts).await;
        check_reads(&log, &model).await;
        // Segment files are named by 20-digit base offsets.
        for base in log.segment_base_offsets() {
            assert!(path.join(format!("{base:020}.log")).exists());
        }
    });
}

#[test]
fn timestamp_lookups_match_brute_force() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path().join("t-0"), small_config(2048, 200))
            .await
            .unwrap();
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(2);
        let mut ts = 10_000;
        append_random(&log, &mut model, &mut rng, 80, &mut ts).await;
        assert!(log.segment_count() > 3);
        for target in (9_990..ts + 10).step_by(3) {
            let got = log.offset_for_timestamp(target).await.unwrap();
            assert_eq!(got, model.offset_for_timestamp(target), "ts {target}");
        }
        assert_eq!(log.offset_for_timestamp(ts + 100).await.unwrap(), None);
        let first_ts = model.header(0).base_timestamp;
        assert_eq!(
            log.offset_for_timestamp(0).await.unwrap(),
            Some((0, first_ts))
        );
    });
}

#[test]
fn retention_by_size_and_time() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_bytes: 6000,
            retention_ms: 1_000_000,
            ..small_config(2048, 200)
        };
        let log = PartitionLog::open(dir.path().join("t-0"), config)
            .await
            .unwrap();
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(3);
        let mut ts = 5_000;
        append_random(&log, &mut model, &mut rng, 60, &mut ts).await;
        let before = log.segment_count();
        let size_before = log.size_bytes();
        assert!(size_before > 6000);
        // Size: delete oldest segments while what stays is still >= retention.bytes.
        let deleted = log.enforce_retention(ts).await.unwrap();
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), before - deleted);
        let bases = log.segment_base_offsets();
        assert_eq!(log.log_start_offset(), bases[0]);
        assert!(log.size_bytes() >= 6000);
        assert!(
            log.size_bytes() < 6000 + 2048,
            "{} bytes left",
            log.size_bytes()
        );
        let err = log
            .read(0, 100, log.high_watermark(), true)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::OffsetOutOfRange { .. }));
        check_reads(&log, &model).await;
        // Time: everything but the active segment is older than retention.ms at ts + 2e6.
        let deleted = log.enforce_retention(ts + 2_000_000).await.unwrap();
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), 1, "never the active segment");
        check_reads(&log, &model).await;
        // The start offset survives a reopen.
        let start = log.log_start_offset();
        log.close().await.unwrap();
        let log = PartitionLog::open(dir.path().join("t-0"), small_config(2048, 200))
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), start);
    });
}

#[test]
fn slice_pins_segment_against_retention() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_bytes: 0,
            ..small_config(2048, 200)
        };
        let log = PartitionLog::open(dir.path().join("t-0"), config)
            .await
            .unwrap();
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(4);
        let mut ts = 0;
        append_random(&log, &mut model, &mut rng, 40, &mut ts).await;
        let result = log
            .read(0, 1 << 20, log.high_watermark(), true)
            .await
            .unwrap();
        let seg_file = dir.path().join("t-0").join(format!("{:020}.log", 0));
        assert!(seg_file.exists());
        assert!(log.enforce_retention(ts).await.unwrap() > 0);
        assert!(!seg_file.exists(), "segment file unlinked");
        let bytes = result.slices[0].read().await.unwrap();
        let first = &model.batches[0].1;
        assert!(bytes.len() >= first.len());
        assert!(
            bytes[..first.len()] == first[..],
            "pinned slice still reads the deleted file"
        );
    });
}

#[test]
fn truncate_to_offsets() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let config = small_config(2048, 200);
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(5);
        let mut ts = 0;
        append_random(&log, &mut model, &mut rng, 60, &mut ts).await;
        let bases = log.segment_base_offsets();
        assert!(bases.len() > 3);
        // Mid-batch: the batch containing the offset goes.
        let i = 40;
        let h = model.header(i);
        let mid = h.base_offset + i64::from(h.last_offset_delta);
        log.truncate_to(mid).await.unwrap();
        model.truncate(mid);
        assert_eq!(log.log_end_offset(), h.base_offset.min(mid));
        check_reads(&log, &model).await;
        // Exactly at a segment boundary.
        let boundary = log.segment_base_offsets()[2];
        log.truncate_to(boundary).await.unwrap();
        model.truncate(boundary);
        assert_eq!(log.log_end_offset(), boundary);
        assert_eq!(log.segment_count(), 2);
        check_reads(&log, &model).await;
        // Appends continue from the new end and survive an unclean reopen.
        append_random(&log, &mut model, &mut rng, 15, &mut ts).await;
        check_reads(&log, &model).await;
        drop(log);
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        check_reads(&log, &model).await;
        // Beyond the end: no-op. At the start: empty log restarting there.
        log.truncate_to(log.log_end_offset() + 10).await.unwrap();
        check_reads(&log, &model).await;
        log.truncate_to(0).await.unwrap();
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.segment_count(), 1);
        let mut model = Model::default();
        append_random(&log, &mut model, &mut rng, 5, &mut ts).await;
        check_reads(&log, &model).await;
    });
}

fn pf(producer_id: i64, producer_epoch: i16, base_sequence: i32) -> ProducerFields {
    ProducerFields {
        producer_id,
        producer_epoch,
        base_sequence,
    }
}

#[test]
fn idempotent_duplicates_gaps_and_epochs() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let config = small_config(4096, 200);
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        // Other traffic interleaved so offsets differ from sequences.
        log.append(make_batch(1, 2, 10, 0), 0, 0).await.unwrap();
        let mut infos = Vec::new();
        for i in 0..7 {
            let b = make_batch_with(i, 3, 10, 0, pf(7, 0, i as i32 * 3));
            infos.push(log.append(b, 0, 0).await.unwrap());
            log.append(make_batch(100 + i, 1, 10, 0), 0, 0)
                .await
                .unwrap();
        }
        let end = log.log_end_offset();
        // Duplicates of any of the last 5 batches: original offsets, nothing appended.
        for i in 2..7 {
            let b = make_batch_with(i, 3, 10, 0, pf(7, 0, i as i32 * 3));
            let info = log.append(b, 0, 0).await.unwrap();
            assert_eq!(info.base_offset, infos[i as usize].base_offset);
            assert_eq!(info.last_offset, infos[i as usize].last_offset);
        }
        assert_eq!(log.log_end_offset(), end);
        // Older than the last 5: out of order.
        let old = log
            .append(make_batch_with(1, 3, 10, 0, pf(7, 0, 3)), 0, 0)
            .await
            .unwrap_err();
        assert_eq!(old.kafka_code(), 45);
        // Gap.
        let gap = log
            .append(make_batch_with(9, 3, 10, 0, pf(7, 0, 22)), 0, 0)
            .await
            .unwrap_err();
        assert!(matches!(
            gap,
            AppendError::OutOfOrderSequence {
                expected: 21,
                received: 22,
                ..
            }
        ));
        assert_eq!(gap.kafka_code(), 45);
        // Stale epoch.
        let stale = log
            .append(make_batch_with(9, 1, 10, 0, pf(8, 2, 0)), 0, 0)
            .await
            .unwrap();
        let _ = stale;
        let err = log
            .append(make_batch_with(9, 1, 10, 0, pf(8, 1, 1)), 0, 0)
            .await
            .unwrap_err();
        assert_eq!(err.kafka_code(), 47);
        // New epoch must restart at sequence 0.
        let err = log
            .append(make_batch_with(9, 1, 10, 0, pf(8, 3, 5)), 0, 0)
            .await
            .unwrap_err();
        assert_eq!(err.kafka_code(), 45);
        log.append(make_batch_with(9, 1, 10, 0, pf(8, 3, 0)), 0, 0)
            .await
            .unwrap();
        // In sequence continues.
        let next = log
            .append(make_batch_with(10, 2, 10, 0, pf(7, 0, 21)), 0, 0)
            .await
            .unwrap();
        // State survives a clean reopen (snapshot) ...
        log.close().await.unwrap();
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        let dup = log
            .append(make_batch_with(10, 2, 10, 0, pf(7, 0, 21)), 0, 0)
            .await
            .unwrap();
        assert_eq!(dup, next);
        // ... and an unclean one (replayed from the log), across rolls.
        for i in 0..30 {
            log.append(
                make_batch_with(50 + i, 2, 200, 0, pf(7, 0, 23 + 2 * i as i32)),
                0,
                0,
            )
            .await
            .unwrap();
        }
        assert!(log.segment_count() > 2);
        let last = log
            .append(make_batch_with(99, 1, 10, 0, pf(7, 0, 83)), 0, 0)
            .await
            .unwrap();
        drop(log);
        let (log, report) = PartitionLog::open_with_report(path.clone(), config)
            .await
            .unwrap();
        assert!(!report.clean_shutdown);
        assert!(report.producer_batches_replayed > 0);
        let dup = log
            .append(make_batch_with(99, 1, 10, 0, pf(7, 0, 83)), 0, 0)
            .await
            .unwrap();
        assert_eq!(dup.base_offset, last.base_offset);
        let gap = log
            .append(make_batch_with(99, 1, 10, 0, pf(7, 0, 85)), 0, 0)
            .await
            .unwrap_err();
        assert_eq!(gap.kafka_code(), 45);
        // Truncation forgets the truncated batches: a retry is appended again.
        log.truncate_to(last.base_offset).await.unwrap();
        let again = log
            .append(make_batch_with(99, 1, 10, 0, pf(7, 0, 83)), 0, 0)
            .await
            .unwrap();
        assert_eq!(again.base_offset, last.base_offset);
    });
}

#[test]
fn validation_errors_map_to_kafka_codes() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            max_message_bytes: 2000,
            ..small_config(4096, 200)
        };
        let log = PartitionLog::open(dir.path().join("t-0"), config)
            .await
            .unwrap();
        let good = make_batch(1, 2, 10, 0);
        let code = |r: Result<_, AppendError>| r.unwrap_err().kafka_code();

        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 1] ^= 1;
        assert_eq!(code(log.append(bad_crc, 0, 0).await), 2);

        let mut short = good.clone();
        short.truncate(good.len() - 1);
        assert_eq!(code(log.append(short, 0, 0).await), 2);

        assert_eq!(
            code(
                log.append(bytes::Bytes::copy_from_slice(&good[..30]), 0, 0)
                    .await
            ),
            2
        );

        let mut magic1 = good.clone();
        magic1[batch::MAGIC_AT] = 1;
        assert_eq!(code(log.append(magic1, 0, 0).await), 43);

        let mut base = good.clone();
        batch::set_base_offset(&mut base, 5);
        assert_eq!(code(log.append(base, 0, 0).await), 87);

        let mut control = good.clone();
        control[batch::ATTRIBUTES_AT + 1] |= 0x20;
        let crc = batch::compute_crc(&control);
        control[batch::CRC_AT..batch::CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(code(log.append(control, 0, 0).await), 87);

        let mut count = good.clone();
        count[batch::RECORD_COUNT_AT + 3] = 5;
        let crc = batch::compute_crc(&count);
        count[batch::CRC_AT..batch::CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(code(log.append(count, 0, 0).await), 87);

        assert_eq!(code(log.append(make_batch(1, 4, 600, 0), 0, 0).await), 10);

        let bad_seq = make_batch_with(1, 1, 10, 0, pf(3, 0, -1));
        assert_eq!(code(log.append(bad_seq, 0, 0).await), 87);

        // Nothing of the above reached the log; the good batch still goes in at 0.
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.append(good, 0, 0).await.unwrap().base_offset, 0);

        let big = PartitionLog::open(
            dir.path().join("t-1"),
            LogConfig {
                segment_bytes: 1024,
                ..LogConfig::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(code(big.append(make_batch(1, 2, 600, 0), 0, 0).await), 18);
    });
}

#[test]
fn group_commit_shares_syncs_and_single_writer_never_waits() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path().join("t-0"), LogConfig::default())
            .await
            .unwrap();
        // One writer: every append gets its own sync right away.
        for i in 0..10 {
            log.append(make_batch(i, 1, 100, 0), 0, 0).await.unwrap();
        }
        assert_eq!(log.stats().syncs, 10);
        // 64 concurrent writers: syncs are shared.
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    let info = log.append(make_batch(i, 2, 1000, 0), 0, 0).await.unwrap();
                    assert!(log.high_watermark() > info.last_offset);
                    info
                })
            })
            .collect();
        let mut offsets = Vec::new();
        for t in tasks {
            offsets.push(t.await.base_offset);
        }
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len(), 64);
        let stats = log.stats();
        assert_eq!(stats.appends, 74);
        assert!(stats.syncs < 74, "{} syncs for 74 appends", stats.syncs);
        assert_eq!(log.high_watermark(), log.log_end_offset());
    });
}

#[test]
fn interval_flush_policy_and_segment_ms_tick() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush: FlushPolicy::Interval {
                flush_ms: 1000,
                flush_messages: 10,
            },
            segment_ms: 60_000,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path().join("t-0"), config)
            .await
            .unwrap();
        for i in 0..3 {
            let info = log.append(make_batch(i, 2, 10, 0), 0, 100).await.unwrap();
            assert!(
                log.high_watermark() > info.last_offset,
                "visible once written"
            );
        }
        assert_eq!(
            log.stats().syncs,
            0,
            "interval policy does not sync per append"
        );
        // flush.messages = 10 crossed by the 5th batch (10 records).
        log.append(make_batch(3, 2, 10, 0), 0, 100).await.unwrap();
        log.append(make_batch(4, 2, 10, 0), 0, 100).await.unwrap();
        storage_util_wait(|| log.stats().syncs >= 1).await;
        log.append(make_batch(5, 1, 10, 0), 0, 100).await.unwrap();
        let syncs = log.stats().syncs;
        log.tick(200).await.unwrap(); // first tick starts the flush.ms clock
        log.tick(1300).await.unwrap();
        assert_eq!(log.stats().syncs, syncs + 1);
        // segment.ms: rolls the non-empty active segment.
        assert_eq!(log.segment_count(), 1);
        log.tick(100 + 60_000).await.unwrap();
        assert_eq!(log.segment_count(), 2);
        log.tick(100 + 120_000).await.unwrap();
        assert_eq!(log.segment_count(), 2, "empty active segment does not roll");
        // Concurrent appends crossing flush.messages and explicit flushes all complete.
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    log.append(make_batch(i, 2, 10, 0), 0, 200_000)
                        .await
                        .unwrap();
                    if i % 7 == 0 {
                        log.flush().await.unwrap();
                    }
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                t.await;
            }
            log.flush().await.unwrap();
            Ok(())
        };
        glommio::timer::timeout(std::time::Duration::from_secs(20), all)
            .await
            .expect("appends and flushes finish within 20 s");
        assert_eq!(log.high_watermark(), log.log_end_offset());
        let dir = log.dir().to_path_buf();
        drop(log);
        let (reopened, report) = PartitionLog::open_with_report(dir, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(reopened.log_end_offset(), 11 + 40 * 2);
    });
}

/// Polls `done` every millisecond, for at most 10 s.
async fn storage_util_wait(done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("condition not reached within 10 s");
}

#[test]
fn leader_epochs_checkpoint_and_rebuild() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let config = small_config(4096, 200);
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        assert_eq!(log.end_offset_for_leader_epoch(0), (-1, -1));
        log.append(make_batch(1, 5, 10, 0), 0, 0).await.unwrap(); // 0..5 epoch 0
        log.append(make_batch(2, 5, 10, 0), 0, 0).await.unwrap(); // 5..10
        log.append(make_batch(3, 5, 10, 0), 2, 0).await.unwrap(); // 10..15 epoch 2
        log.append(make_batch(4, 5, 10, 0), 5, 0).await.unwrap(); // 15..20 epoch 5
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 10), (5, 15)]);
        assert_eq!(log.end_offset_for_leader_epoch(5), (5, 20));
        assert_eq!(log.end_offset_for_leader_epoch(2), (2, 15));
        assert_eq!(log.end_offset_for_leader_epoch(1), (0, 10));
        assert_eq!(log.end_offset_for_leader_epoch(6), (-1, -1));
        // Stored epochs are stamped into the batches.
        let all = dump(&log).await;
        let epochs: Vec<i32> = all
            .iter()
            .map(|(_, b)| batch::BatchHeader::parse(b).unwrap().partition_leader_epoch)
            .collect();
        assert_eq!(epochs, vec![0, 0, 2, 5]);
        // Unclean reopen without the checkpoint: rebuilt from the batches.
        drop(log);
        std::fs::remove_file(path.join("leader-epoch-checkpoint")).unwrap();
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 10), (5, 15)]);
        // Truncation drops epochs that start at or after the new end.
        log.truncate_to(15).await.unwrap();
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 10)]);
        assert_eq!(log.end_offset_for_leader_epoch(2), (2, 15));
        log.close().await.unwrap();
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 10)]);
    });
}

#[test]
fn damaged_or_missing_indexes_are_rebuilt() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let config = small_config(4096, 100);
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(6);
        let mut ts = 0;
        append_random(&log, &mut model, &mut rng, 60, &mut ts).await;
        let bases = log.segment_base_offsets();
        assert!(bases.len() >= 4);
        log.close().await.unwrap();
        drop(log);
        // Garbage, a torn entry, and missing files.
        std::fs::write(path.join(format!("{:020}.index", bases[0])), [0xff; 24]).unwrap();
        let idx1 = path.join(format!("{:020}.index", bases[1]));
        let mut bytes = std::fs::read(&idx1).unwrap();
        assert!(!bytes.is_empty(), "index has entries");
        bytes.push(7);
        std::fs::write(&idx1, bytes).unwrap();
        std::fs::remove_file(path.join(format!("{:020}.timeindex", bases[2]))).unwrap();
        std::fs::remove_file(path.join(format!("{:020}.index", bases[3]))).unwrap();
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        check_reads(&log, &model).await;
        for target in (0..ts).step_by(7) {
            assert_eq!(
                log.offset_for_timestamp(target).await.unwrap(),
                model.offset_for_timestamp(target)
            );
        }
    });
}

#[test]
fn log_append_time_and_out_of_range() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            log_append_time: true,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path().join("t-0"), config)
            .await
            .unwrap();
        let info = log.append(make_batch(1, 3, 10, 5), 1, 777).await.unwrap();
        assert_eq!(info.log_append_time_ms, 777);
        let stored = dump(&log).await;
        let h = batch::verify(&stored[0].1).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 777);
        assert_eq!(log.offset_for_timestamp(700).await.unwrap(), Some((0, 777)));
        let err = log.read(4, 100, 10, true).await.unwrap_err();
        assert!(matches!(
            err,
            StorageError::OffsetOutOfRange {
                requested: 4,
                start: 0,
                end: 3
            }
        ));
        assert_eq!(err.kafka_code(), 1);
        assert!(log.read(3, 100, 10, true).await.unwrap().slices.is_empty());
        assert!(log.read(0, 100, 0, true).await.unwrap().slices.is_empty());
        let log2 = Rc::clone(&log);
        let dir_path = log.dir().to_path_buf();
        drop(log);
        log2.delete().await.unwrap();
        assert!(!dir_path.exists());
    });
}

#[test]
fn invalid_config_is_rejected() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let err = PartitionLog::open(
            dir.path().join("t-0"),
            LogConfig {
                segment_bytes: 10,
                ..LogConfig::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, StorageError::InvalidConfig(_)));
    });
}

#[test]
fn dropped_append_futures_leave_no_hole_and_no_stuck_flusher() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let log = PartitionLog::open(path.clone(), LogConfig::default())
            .await
            .unwrap();
        // The first append records epoch 0 (a checkpoint write); later ones assign at once.
        log.append(make_batch(100, 2, 500, 0), 0, 0).await.unwrap();
        // Appends polled once (offsets assigned, write queued) and then dropped.
        for i in 0..20 {
            let append = log.append(make_batch(i, 2, 500, 0), 0, 0);
            // (the pinned future is dropped at the end of each iteration)
            futures_lite::pin!(append);
            let first_poll = futures_lite::future::poll_once(&mut append).await;
            assert!(
                first_poll.is_none(),
                "append cannot be durable after one poll"
            );
        }
        assert_eq!(
            log.log_end_offset(),
            42,
            "all 20 were assigned before being dropped"
        );
        // Whatever was assigned still gets written and synced; later appends proceed.
        let info = log.append(make_batch(99, 1, 10, 0), 0, 0).await.unwrap();
        assert_eq!(info.base_offset, 42);
        // A roll and a truncation whose futures are dropped mid-way still complete.
        {
            let truncate = log.truncate_to(30);
            futures_lite::pin!(truncate);
            assert!(futures_lite::future::poll_once(&mut truncate)
                .await
                .is_none());
        }
        let info = log.append(make_batch(98, 1, 10, 0), 0, 0).await.unwrap();
        assert_eq!(
            info.base_offset, 30,
            "the dropped truncation still happened"
        );
        log.flush().await.unwrap();
        assert_eq!(log.high_watermark(), log.log_end_offset());
        let batches = dump(&log).await;
        assert_eq!(batches.len(), 16, "no holes: 15 batches below 30 plus one");
        drop(log);
        let (log, report) = PartitionLog::open_with_report(path, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(dump(&log).await, batches);
    });
}

#[test]
fn concurrent_readers_see_only_whole_durable_batches() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path().join("t-0"), small_config(16 << 10, 512))
            .await
            .unwrap();
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    for i in 0..25 {
                        log.append(make_batch(w * 100 + i, 3, 300, 0), 0, 0)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        let reader = {
            let log = log.clone();
            glommio::spawn_local(async move {
                let mut reads = 0;
                while log.high_watermark() < 8 * 25 * 3 {
                    let hw = log.high_watermark();
                    let result = log.read(0, 1 << 20, hw, true).await.unwrap();
                    // Slices end at the HW, on batch boundaries (FileSlice::read also
                    // verifies every batch in debug builds).
                    let bytes = read_all(&result).await;
                    let mut at = 0;
                    let mut next = 0;
                    while at < bytes.len() {
                        let h = batch::verify(
                            &bytes[at..at
                                + batch::BatchHeader::parse(&bytes[at..])
                                    .unwrap()
                                    .batch_bytes()
                                    .unwrap()],
                        )
                        .unwrap();
                        assert_eq!(h.base_offset, next);
                        next = h.next_offset();
                        at += h.batch_bytes().unwrap();
                    }
                    assert_eq!(next, hw);
                    reads += 1;
                    glommio::executor().yield_now().await;
                }
                reads
            })
        };
        for w in writers {
            w.await;
        }
        assert!(reader.await > 0);
    });
}

#[test]
fn concurrent_appends_keep_call_order_across_rolls_and_epoch_changes() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path().join("t-0"), small_config(4096, 256))
            .await
            .unwrap();
        // Spawned in order, so first polled (and queued for the log's lock) in order.
        let tasks: Vec<_> = (0..60u64)
            .map(|i| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    let epoch = (i / 20) as i32;
                    log.append(make_batch(i, 2, 250, 0), epoch, 0)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut bases = Vec::new();
        for t in tasks {
            bases.push(t.await.base_offset);
        }
        let expected: Vec<i64> = (0..60).map(|i| i * 2).collect();
        assert_eq!(bases, expected, "offsets follow call order");
        assert!(log.segment_count() > 5, "rolls happened meanwhile");
        assert_eq!(log.leader_epochs(), vec![(0, 0), (1, 40), (2, 80)]);
    });
}

#[test]
fn compressed_payloads_stay_opaque() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path().join("t-0"), LogConfig::default())
            .await
            .unwrap();
        // A "zstd" batch whose payload is not even valid zstd: the log never decompresses.
        let mut b = make_batch(1, 4, 100, 5_000);
        b[batch::ATTRIBUTES_AT + 1] |= 4;
        let crc = batch::compute_crc(&b);
        b[batch::CRC_AT..batch::CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        log.append(make_batch(0, 1, 10, 1_000), 0, 0).await.unwrap();
        let info = log.append(b.clone(), 0, 0).await.unwrap();
        assert_eq!((info.base_offset, info.last_offset), (1, 4));
        let stored = dump(&log).await;
        assert!(stored[1].1 == stamped(&b, 1, 0), "stored byte-identical");
        // Timestamp lookup inside a compressed batch answers with the batch (base, max ts).
        assert_eq!(
            log.offset_for_timestamp(5_002).await.unwrap(),
            Some((1, 5_003))
        );
        // An unknown codec is corrupt.
        let mut bad = make_batch(2, 1, 10, 0);
        bad[batch::ATTRIBUTES_AT + 1] |= 7;
        let crc = batch::compute_crc(&bad);
        bad[batch::CRC_AT..batch::CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(log.append(bad, 0, 0).await.unwrap_err().kafka_code(), 2);
    });
}
