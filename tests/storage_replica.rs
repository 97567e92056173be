//! `PartitionLog::append_replica`, a follower's append of the leader's stored bytes: the
//! follower's log becomes byte-identical to the leader's (offsets, leader epochs, rolls,
//! producer state, across a reopen); what does not continue the log or fails its CRC is
//! refused and changes nothing; after a truncation to the divergence point it continues.

use bytes::Bytes;
use rand::{rngs::StdRng, Rng, SeedableRng};
use shoal_storage::batch::{self, ProducerFields};
use shoal_storage::{AppendError, PartitionLog};
use shoal_testkit::storage::*;

/// Leader batches: the first half in epoch 3, the rest in epoch 5, some idempotent.
async fn leader_log(log: &PartitionLog, batches: usize) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut sequence = 0;
    for i in 0..batches {
        let epoch = if i < batches / 2 { 3 } else { 5 };
        let records = rng.gen_range(1..5);
        let producer = if i % 3 == 0 {
            sequence += records as i32;
            ProducerFields {
                producer_id: 42,
                producer_epoch: 0,
                base_sequence: sequence - records as i32,
            }
        } else {
            ProducerFields::NONE
        };
        let b = make_batch_with(i as u64, records, 200, 1_000 + i as i64, producer);
        log.append(b, epoch, 1_000 + i as i64).await.unwrap();
    }
}

fn concat(batches: &[(i64, Vec<u8>)]) -> Bytes {
    Bytes::from(
        batches
            .iter()
            .flat_map(|(_, b)| b.clone())
            .collect::<Vec<u8>>(),
    )
}

/// A leader log of `batches` batches, its stored batches, and a follower holding the first
/// `pushed` of them.
async fn leader_and_follower(
    dir: &std::path::Path,
    batches: usize,
    pushed: usize,
) -> (
    std::rc::Rc<PartitionLog>,
    Vec<(i64, Vec<u8>)>,
    std::rc::Rc<PartitionLog>,
) {
    let config = small_config(64 << 10, 512);
    let leader = PartitionLog::open(dir.join("leader"), config)
        .await
        .unwrap();
    leader_log(&leader, batches).await;
    let stored = dump(&leader).await;
    let follower = PartitionLog::open(dir.join("f"), config).await.unwrap();
    follower
        .append_replica(concat(&stored[..pushed]), 0)
        .await
        .unwrap();
    (leader, stored, follower)
}

#[test]
fn a_follower_log_becomes_byte_identical_to_the_leaders() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(8 << 10, 512);
        let leader = PartitionLog::open(dir.path().join("leader"), config)
            .await
            .unwrap();
        leader_log(&leader, 60).await;
        let stored = dump(&leader).await;
        let follower_dir = dir.path().join("follower");
        let follower = PartitionLog::open(follower_dir.clone(), config)
            .await
            .unwrap();
        // Pushed in chunks of varying size, as a leader bounded in flight would.
        let mut at = 0;
        let mut rng = StdRng::seed_from_u64(9);
        while at < stored.len() {
            let n = rng.gen_range(1..8).min(stored.len() - at);
            let end = follower
                .append_replica(concat(&stored[at..at + n]), 2_000)
                .await
                .unwrap();
            at += n;
            assert_eq!(
                end,
                batch::BatchHeader::parse(&stored[at - 1].1)
                    .unwrap()
                    .next_offset()
            );
        }
        assert!(follower.segment_count() > 3, "rolls happened");
        assert_eq!(dump(&follower).await, stored, "byte-identical");
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        assert_eq!(
            follower.leader_epochs().len(),
            2,
            "{:?}",
            follower.leader_epochs()
        );
        assert_eq!(follower.producer_count(), 1);
        follower.close().await.unwrap();
        drop(follower);
        let follower = PartitionLog::open(follower_dir, config).await.unwrap();
        assert_eq!(dump(&follower).await, stored, "byte-identical after reopen");
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    });
}

#[test]
fn a_push_that_does_not_continue_the_log_or_fails_its_crc_changes_nothing() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (_leader, stored, follower) = leader_and_follower(dir.path(), 10, 3).await;
        let end = follower.log_end_offset();
        // An overlap (batch 1 again). A gap is no longer refused here: a compacted leader's
        // log has gaps, so a batch may start past the log end (Kafka's rule); a lost push is
        // caught by the replication layer (`FollowerReplica::on_push` wants from == log end).
        for chunk in [&stored[1..2]] {
            let err = follower.append_replica(concat(chunk), 0).await.unwrap_err();
            assert!(matches!(err, AppendError::NotContiguous { .. }), "{err}");
            assert_eq!(follower.log_end_offset(), end);
        }
        // Batches out of order inside one push.
        let mut swapped = stored[3..5].to_vec();
        swapped.swap(0, 1);
        let err = follower
            .append_replica(concat(&swapped), 0)
            .await
            .unwrap_err();
        assert!(matches!(err, AppendError::NotContiguous { .. }), "{err}");
        // A flipped byte in the records.
        let mut bad = stored[3].1.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let err = follower
            .append_replica(Bytes::from(bad), 0)
            .await
            .unwrap_err();
        assert!(matches!(err, AppendError::CorruptMessage(_)), "{err}");
        // A push cut inside a batch.
        let cut = Bytes::copy_from_slice(&stored[3].1[..stored[3].1.len() - 5]);
        assert!(follower.append_replica(cut, 0).await.is_err());
        assert_eq!(follower.log_end_offset(), end, "nothing appended");
        follower
            .append_replica(concat(&stored[3..]), 0)
            .await
            .unwrap();
        assert_eq!(dump(&follower).await, stored);
    });
}

#[test]
fn after_truncating_a_divergent_tail_the_follower_continues_from_there() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (leader, stored, follower) = leader_and_follower(dir.path(), 12, 6).await;
        // A divergent tail of its own (it led epoch 4 briefly): two batches nobody else has.
        for i in 0..2 {
            let b = make_batch(1000 + i, 2, 50, 5_000);
            follower.append(b, 4, 5_000).await.unwrap();
        }
        let (epoch, end) = leader.end_offset_for_leader_epoch(4);
        assert_eq!(epoch, 3, "the leader never had epoch 4");
        let divergence = end.min(follower.log_end_offset());
        follower.truncate_to(divergence).await.unwrap();
        let from = stored
            .iter()
            .position(|(base, _)| *base == divergence)
            .expect("divergence at a batch boundary");
        follower
            .append_replica(concat(&stored[from..]), 0)
            .await
            .unwrap();
        assert_eq!(dump(&follower).await, stored);
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    });
}
