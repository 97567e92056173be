//! Crash tests: a child process (this test binary re-executed in child mode) appends with
//! sync-before-ack and prints every acknowledged batch; the parent SIGKILLs it at seeded random
//! moments, reopens the log and checks that every acknowledged batch is present and
//! byte-identical and that the log ends on a batch boundary. A variant damages the tail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};
use shoal_storage::batch::{self, BatchHeader};
use shoal_storage::{LogConfig, PartitionLog};
use shoal_testkit::storage::crash_child::{self, Ack};
use shoal_testkit::storage::*;

const CHILD_WRITERS: u64 = 4;
/// A child stops by itself after this long, should the parent vanish.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(60);
/// The parent gives up waiting for a child's output after this long.
const CHILD_SILENCE_MAX: Duration = Duration::from_secs(30);

fn crash_config() -> LogConfig {
    small_config(64 << 10, 1024)
}

/// Child mode: does nothing unless re-executed by the crash tests with the env set.
#[test]
fn crash_child() {
    let Some((dir, round)) = crash_child::child_args() else {
        return;
    };
    run(move || async move {
        let log = crash_child::open_and_report(dir, crash_config()).await;
        let started = Instant::now();
        crash_child::append_until(
            log.clone(),
            round,
            CHILD_WRITERS,
            started,
            CHILD_LIFETIME_MAX,
        )
        .await;
    });
}

/// Runs one child and SIGKILLs it after `acks_before_kill` acks (0: after a random delay
/// from spawn, possibly during recovery). Returns every ack it printed before dying.
fn crash_round(dir: &Path, round: u64, acks_before_kill: usize, delay: Duration) -> Vec<Ack> {
    let (mut child, rx) = crash_child::spawn("crash_child", dir, round);
    let mut acks = crash_child::await_acks(
        &mut child,
        &rx,
        round,
        acks_before_kill,
        delay,
        CHILD_SILENCE_MAX,
    );
    child.kill().expect("SIGKILL child");
    let status = child.wait().unwrap();
    assert!(!status.success(), "child must die by the signal");
    // Lines written before the kill are acknowledged too.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        acks.extend(Ack::parse(&line));
    }
    acks
}

/// Reopens the log and checks it ([`crash_child::check_reopened`]). Returns the batches.
fn verify_log(dir: &Path, acks: &[Ack], close: bool) -> Vec<(i64, Vec<u8>)> {
    let dir = dir.to_path_buf();
    let acks = acks.to_vec();
    run(move || async move {
        let log = PartitionLog::open(dir.clone(), crash_config())
            .await
            .unwrap();
        let batches = crash_child::check_reopened(&log, &dir, &acks, "after SIGKILL").await;
        if close {
            log.close().await.unwrap();
        }
        batches
    })
}

#[test]
fn sigkill_at_random_moments_loses_no_acked_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash-0");
    let mut rng = StdRng::seed_from_u64(0x5107_ab1e);
    let mut all_acks = Vec::new();
    let rounds = 24;
    let mut killed_early = 0;
    for round in 0..rounds {
        let (acks_before_kill, delay) = if rng.gen_bool(0.2) {
            killed_early += 1;
            (0, Duration::from_millis(rng.gen_range(0..30)))
        } else {
            (rng.gen_range(1..250), Duration::ZERO)
        };
        let acks = crash_round(&path, round, acks_before_kill, delay);
        assert!(acks.len() >= acks_before_kill);
        all_acks.extend(acks);
        verify_log(&path, &all_acks, rng.gen_bool(0.3));
    }
    assert!(killed_early > 0 || rounds < 10);
    assert!(
        all_acks.len() > 500,
        "only {} acks over {rounds} rounds",
        all_acks.len()
    );
    let segments = std::fs::read_dir(&path)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
        .count();
    assert!(
        segments > 3,
        "crashes should span segment rolls, got {segments} segments"
    );
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// Cut the file inside the last batch.
    CutLastBatch,
    /// Flip a byte inside the last batch (CRC mismatch).
    FlipByte,
    /// Random garbage after the last batch.
    Garbage,
    /// Zeros after the last batch (e.g. a torn extension).
    Zeros,
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some("log".as_ref()))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn damaged_tail_is_truncated_to_last_valid_batch_and_log_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash-1");
    let mut rng = StdRng::seed_from_u64(0x00da_3a6e);
    let mut acks = Vec::new();
    let damages = [
        Damage::CutLastBatch,
        Damage::FlipByte,
        Damage::Garbage,
        Damage::Zeros,
        Damage::CutLastBatch,
        Damage::FlipByte,
    ];
    for (round, damage) in damages.into_iter().enumerate() {
        let round = round as u64;
        acks.extend(crash_round(
            &path,
            round,
            rng.gen_range(20..120),
            Duration::ZERO,
        ));
        let batches = verify_log(&path, &acks, false);
        let segment = last_segment(&path);
        let len = file_len(&segment);
        let seg_base: i64 = segment
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let in_last: Vec<&(i64, Vec<u8>)> =
            batches.iter().filter(|(o, _)| *o >= seg_base).collect();
        let damage = if in_last.is_empty() {
            Damage::Garbage
        } else {
            damage
        };
        // What must survive: every batch before the damaged one.
        let mut survivors: Vec<(i64, Vec<u8>)> = batches.clone();
        match damage {
            Damage::CutLastBatch | Damage::FlipByte => {
                let (_, last) = in_last.last().unwrap();
                let start = len - last.len() as u64;
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&segment)
                    .unwrap();
                if let Damage::CutLastBatch = damage {
                    f.set_len(start + rng.gen_range(1..last.len() as u64))
                        .unwrap();
                } else {
                    use std::os::unix::fs::FileExt;
                    let at = start + rng.gen_range(batch::ATTRIBUTES_AT as u64..last.len() as u64);
                    let mut byte = [0u8];
                    f.read_at(&mut byte, at).unwrap();
                    f.write_at(&[byte[0] ^ 0x40], at).unwrap();
                }
                survivors.pop();
            }
            Damage::Garbage | Damage::Zeros => {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&segment)
                    .unwrap();
                let n = rng.gen_range(1..5000);
                let bytes: Vec<u8> = match damage {
                    Damage::Garbage => (0..n).map(|_| rng.gen()).collect(),
                    _ => vec![0; n],
                };
                f.write_all(&bytes).unwrap();
            }
        }
        // Only acks that survived the damage are expected from here on.
        let survivor_offsets: std::collections::HashSet<i64> =
            survivors.iter().map(|(o, _)| *o).collect();
        acks.retain(|a| survivor_offsets.contains(&a.base_offset));
        let expected_end = survivors
            .last()
            .map(|(_, b)| BatchHeader::parse(b).unwrap().next_offset())
            .unwrap_or(0);
        let reopen = path.clone();
        run(move || async move {
            let (log, report) = PartitionLog::open_with_report(reopen.clone(), crash_config())
                .await
                .unwrap();
            assert!(!report.clean_shutdown);
            assert!(report.truncated_bytes > 0, "{damage:?} must be cut off");
            assert_eq!(log.log_end_offset(), expected_end, "{damage:?}");
            let now = dump(&log).await;
            assert!(
                now == survivors,
                "{damage:?}: batches before the damage intact"
            );
            // Keeps serving: append, read back, survive another reopen.
            let b = make_batch(0xfeed, 2, 100, 1);
            let info = log.append(b.clone(), 99, 1).await.unwrap();
            assert_eq!(info.base_offset, expected_end);
            let read = log
                .read(info.base_offset, 1 << 20, log.high_watermark(), true)
                .await
                .unwrap();
            assert_eq!(read_all(&read).await, stamped(&b, info.base_offset, 99));
            drop(log);
            let log = PartitionLog::open(reopen, crash_config()).await.unwrap();
            assert_eq!(log.log_end_offset(), info.last_offset + 1);
            // The next child continues in a later epoch than 99 would be wrong for the cache;
            // truncate the probe batch away so the rounds keep their epochs.
            log.truncate_to(info.base_offset).await.unwrap();
            log.close().await.unwrap();
        });
    }
    assert!(!acks.is_empty());
}
