//! Log compaction on a live `PartitionLog`: a pass keeps the latest record per key at its
//! offset, reads skip the removed ranges, reopening keeps the result, keyless records are
//! refused, a follower accepts a leader's gaps, and an interrupted swap recovers to the old or
//! the new segment set at every step of the protocol.

use std::collections::BTreeMap;
use std::path::Path;

use shoal_storage::batch::{self, BatchHeader, ProducerFields, RecordSpec};
use shoal_storage::compaction::DecodedBatch;
use shoal_storage::log::CLEAN_SWAP_FILE;
use shoal_storage::{AppendError, IoThrottle, LogConfig, PartitionLog};
use shoal_testkit::storage::*;

const KEYS: usize = 20;
const ROUNDS: usize = 30;

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio_permille: 0,
        delete_retention_ms: 1_000,
        ..small_config(2048, 256)
    }
}

fn keyed(key: &str, value: Option<&str>, ts: i64) -> bytes::BytesMut {
    batch::build_batch(
        ts,
        ProducerFields::NONE,
        &[RecordSpec {
            timestamp_delta: 0,
            key: Some(key.as_bytes()),
            value: value.map(str::as_bytes),
            headers: &[],
        }],
    )
}

/// The cleaner groups segments by input size up to segment.bytes (as Kafka does): after
/// filling 2 KiB segments, let them be merged into 64 KiB ones.
fn grow(log: &PartitionLog) {
    log.set_config(grown(log.config())).unwrap();
}

fn grown(config: LogConfig) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        ..config
    }
}

/// Appends ROUNDS updates of KEYS keys; returns key → (offset, value) of the latest.
async fn fill(log: &PartitionLog) -> BTreeMap<String, (i64, String)> {
    let mut latest = BTreeMap::new();
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let (key, value) = (format!("k{k:02}"), format!("v{round}-{k}"));
            let ts = 1_000 + (round * KEYS + k) as i64;
            let info = log
                .append(keyed(&key, Some(&value), ts), 0, ts)
                .await
                .unwrap();
            latest.insert(key, (info.base_offset, value));
        }
    }
    latest
}

/// Every record below the high watermark: (offset, key, value), via reads from the start
/// (each read from the next offset after the last batch, so it crosses the gaps).
async fn records(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let hw = log.high_watermark();
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < hw {
        let result = log.read(offset, 1 << 20, hw, true).await.unwrap();
        if result.slices.is_empty() {
            break;
        }
        let bytes = read_all(&result).await;
        let mut at = 0;
        while at < bytes.len() {
            let header = BatchHeader::parse(&bytes[at..]).unwrap();
            let len = header.batch_bytes().unwrap();
            let stored = &bytes[at..at + len];
            batch::verify(stored).unwrap();
            assert!(
                header.last_offset() >= offset,
                "a read returns batches at or past its offset"
            );
            let decoded = DecodedBatch::decode(stored).unwrap();
            for r in decoded.records().unwrap() {
                let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                let mut tail_at = 0;
                let value = value_of(r.tail, &mut tail_at);
                out.push((header.base_offset + i64::from(r.offset_delta), key, value));
            }
            offset = header.next_offset();
            at += len;
        }
    }
    out
}

/// The value of a record from its tail (key length, key, value length, value, ...).
fn value_of(tail: &[u8], at: &mut usize) -> Option<String> {
    let varint = |at: &mut usize| -> i64 {
        let mut v: u64 = 0;
        let mut shift = 0;
        loop {
            let b = tail[*at];
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return ((v >> 1) as i64) ^ -((v & 1) as i64);
            }
            shift += 7;
        }
    };
    let key_len = varint(at);
    *at += key_len.max(0) as usize;
    let value_len = varint(at);
    (value_len >= 0)
        .then(|| String::from_utf8(tail[*at..*at + value_len as usize].to_vec()).unwrap())
}

/// Checks the compacted invariants: offsets strictly increase, below the active segment each
/// key appears once, and every key's latest value is there at its offset.
fn check_compacted(
    log: &PartitionLog,
    got: &[(i64, String, Option<String>)],
    latest: &BTreeMap<String, (i64, String)>,
) {
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets strictly increase"
    );
    let active_base = *log.segment_base_offsets().last().unwrap();
    let mut seen = BTreeMap::new();
    for (offset, key, _) in got.iter().filter(|r| r.0 < active_base) {
        assert!(
            seen.insert(key.clone(), *offset).is_none(),
            "{key} twice below the active segment"
        );
    }
    for (key, (offset, value)) in latest {
        assert!(
            got.iter()
                .any(|r| r.0 == *offset && &r.1 == key && r.2.as_deref() == Some(value)),
            "latest {key}={value} at {offset} is missing"
        );
    }
}

#[test]
fn a_pass_keeps_the_latest_value_per_key_at_its_offset_across_reopens() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-0");
        let config = compact_config();
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        let latest = fill(&log).await;
        grow(&log);
        let before = log.size_bytes();
        let segments_before = log.segment_count();
        assert!(segments_before > 10, "{segments_before} segments");
        let hw = log.high_watermark();
        let report = log
            .clean(10_000, hw, &IoThrottle::new(u64::MAX))
            .await
            .unwrap()
            .expect("a pass is due");
        assert!(report.records_dropped > 0, "{report:?}");
        assert!(
            log.size_bytes() < before / 2,
            "{} of {before} bytes",
            log.size_bytes()
        );
        assert!(log.segment_count() < segments_before, "groups merge");
        assert_eq!(log.high_watermark(), hw, "offsets and the end do not move");
        let got = records(&log).await;
        check_compacted(&log, &got, &latest);
        // A read inside a removed range returns the next batch after it.
        let start = log.log_start_offset();
        assert!(got[0].0 > start + 1, "the log's head was removed");
        let result = log.read(start + 1, 1 << 20, hw, true).await.unwrap();
        let first = read_all(&result).await;
        assert_eq!(BatchHeader::parse(&first).unwrap().base_offset, got[0].0);
        // Nothing new is dirty: the next pass is not due.
        assert_eq!(
            log.clean(10_000, hw, &IoThrottle::new(u64::MAX))
                .await
                .unwrap(),
            None
        );
        // Unclean reopen, then clean reopen: the same records.
        drop(log);
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        assert_eq!(records(&log).await, got);
        log.close().await.unwrap();
        drop(log);
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        assert_eq!(records(&log).await, got);
        // Records without a key are refused on a compacted log.
        let keyless = batch::build_batch(
            5,
            ProducerFields::NONE,
            &[RecordSpec {
                key: None,
                value: Some(b"x"),
                ..RecordSpec::default()
            }],
        );
        assert!(matches!(
            log.append(keyless, 0, 5).await,
            Err(AppendError::InvalidRecord(
                batch::BatchError::MissingKey { .. }
            ))
        ));
    });
}

#[test]
fn tombstones_go_after_delete_retention_and_a_follower_accepts_the_gaps() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = compact_config();
        let log = PartitionLog::open(dir.path().join("c-0"), config)
            .await
            .unwrap();
        let mut latest = fill(&log).await;
        let dead = "k03";
        let ts = 100_000;
        log.append(keyed(dead, None, ts), 0, ts).await.unwrap();
        latest.remove(dead);
        // Push the tombstone out of the active segment.
        for i in 0..40 {
            log.append(keyed("filler", Some(&i.to_string()), ts), 0, ts)
                .await
                .unwrap();
        }
        grow(&log);
        let hw = log.high_watermark();
        let throttle = IoThrottle::new(u64::MAX);
        log.clean(200_000, hw, &throttle)
            .await
            .unwrap()
            .expect("due");
        let got = records(&log).await;
        assert!(
            got.iter().any(|r| r.1 == dead && r.2.is_none()),
            "tombstone kept"
        );
        assert!(
            !got.iter().any(|r| r.1 == dead && r.2.is_some()),
            "old values of {dead} gone"
        );
        // Before delete.retention.ms (1 s) nothing is due; at it the tombstone goes.
        assert_eq!(log.clean(200_999, hw, &throttle).await.unwrap(), None);
        let report = log
            .clean(201_000, hw, &throttle)
            .await
            .unwrap()
            .expect("horizon due");
        assert_eq!(report.tombstones_dropped, 1);
        let got = records(&log).await;
        assert!(!got.iter().any(|r| r.1 == dead), "{dead} gone entirely");
        let filler_latest = got.iter().filter(|r| r.1 == "filler").map(|r| r.0).max();
        let mut expected = latest.clone();
        expected.insert("filler".into(), (filler_latest.unwrap(), "39".into()));
        check_compacted(&log, &got, &expected);

        // A follower gets the compacted log as stored: batches with gaps between them.
        let follower = PartitionLog::open(dir.path().join("f-0"), config)
            .await
            .unwrap();
        let mut offset = log.log_start_offset();
        while offset < hw {
            let result = log.read(offset, 4096, hw, true).await.unwrap();
            if result.slices.is_empty() {
                break;
            }
            let bytes = read_all(&result).await;
            let end = follower.append_replica(bytes.into(), 0).await.unwrap();
            offset = end;
        }
        assert_eq!(records(&follower).await, got);
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

/// Every intermediate on-disk state of the swap protocol (docs/ARCHITECTURE.md, "Compaction"),
/// built from the old and the new directory; recovery must give exactly one of the two.
#[test]
fn an_interrupted_swap_recovers_to_the_old_or_the_new_set_at_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (dir.path().join("old"), dir.path().join("new"));
    let config = compact_config();
    let (old_records, new_records) = {
        let (o, n) = (old_dir.clone(), new_dir.clone());
        run(move || async move {
            let log = PartitionLog::open(o.clone(), config).await.unwrap();
            fill(&log).await;
            log.close().await.unwrap();
            let old = records(&log).await;
            drop(log);
            copy_dir(&o, &n);
            let log = PartitionLog::open(n, grown(config)).await.unwrap();
            let hw = log.high_watermark();
            log.clean(10_000, hw, &IoThrottle::new(u64::MAX))
                .await
                .unwrap()
                .unwrap();
            log.close().await.unwrap();
            (old, records(&log).await)
        })
    };
    assert_ne!(old_records, new_records);
    let old_names = names(&old_dir);
    let new_names = names(&new_dir);
    let old_segments: Vec<i64> = old_names
        .iter()
        .filter_map(|n| n.strip_suffix(".log")?.parse().ok())
        .collect();
    let new_segments: Vec<i64> = new_names
        .iter()
        .filter_map(|n| n.strip_suffix(".log")?.parse().ok())
        .collect();
    // The first group is the one whose base both share; its old members are the old segments
    // below the next new segment.
    let new_base = new_segments[0];
    let next_new = new_segments[1];
    let group: Vec<i64> = old_segments
        .iter()
        .copied()
        .filter(|&b| b < next_new)
        .collect();
    assert!(
        group.len() > 1,
        "the first group merges segments: {group:?}"
    );
    let seg = |base: i64, suffix: &str| format!("{base:020}.{suffix}");
    let manifest = format!(
        "shoal-cleaner-swap v1\nnew {new_base}\nold {}\n",
        group
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Build a state: the old dir (minus the first group's later segments after the new set's
    // files, i.e. everything after the first group stays old), plus the given steps.
    struct State {
        name: &'static str,
        cleaned: &'static [&'static str],
        manifest: bool,
        deleted_old: usize,
        renamed: &'static [&'static str],
        expect_new: bool,
    }
    let all = &["log", "index", "timeindex"][..];
    let states = [
        State {
            name: "log written aside",
            cleaned: &["log"],
            manifest: false,
            deleted_old: 0,
            renamed: &[],
            expect_new: false,
        },
        State {
            name: "all written aside",
            cleaned: all,
            manifest: false,
            deleted_old: 0,
            renamed: &[],
            expect_new: false,
        },
        State {
            name: "manifest",
            cleaned: all,
            manifest: true,
            deleted_old: 0,
            renamed: &[],
            expect_new: true,
        },
        State {
            name: "one old deleted",
            cleaned: all,
            manifest: true,
            deleted_old: 1,
            renamed: &[],
            expect_new: true,
        },
        State {
            name: "all old deleted",
            cleaned: all,
            manifest: true,
            deleted_old: usize::MAX,
            renamed: &[],
            expect_new: true,
        },
        State {
            name: "index renamed",
            cleaned: &["log", "timeindex"],
            manifest: true,
            deleted_old: usize::MAX,
            renamed: &["index"],
            expect_new: true,
        },
        State {
            name: "log renamed",
            cleaned: &[],
            manifest: true,
            deleted_old: usize::MAX,
            renamed: all,
            expect_new: true,
        },
    ];
    for state in states {
        let case = dir.path().join(state.name.replace(' ', "_"));
        copy_dir(&old_dir, &case);
        std::fs::remove_file(case.join(".clean-shutdown")).ok();
        for &base in group.iter().take(state.deleted_old) {
            for suffix in all {
                std::fs::remove_file(case.join(seg(base, suffix))).ok();
            }
        }
        for suffix in state.cleaned {
            std::fs::copy(
                new_dir.join(seg(new_base, suffix)),
                case.join(format!("{}.cleaned", seg(new_base, suffix))),
            )
            .unwrap();
        }
        for suffix in state.renamed {
            std::fs::copy(
                new_dir.join(seg(new_base, suffix)),
                case.join(seg(new_base, suffix)),
            )
            .unwrap();
        }
        if state.manifest {
            std::fs::write(case.join(CLEAN_SWAP_FILE), &manifest).unwrap();
        }
        let (case2, name) = (case.clone(), state.name);
        let got = run(move || async move {
            let log = PartitionLog::open(case2, config).await.unwrap();
            records(&log).await
        });
        // The later groups stay old in every state, so compare the first group's range only.
        let in_group = |r: &&(i64, String, Option<String>)| r.0 < next_new;
        let got_group: Vec<_> = got.iter().filter(in_group).cloned().collect();
        let want: Vec<_> = if state.expect_new {
            &new_records
        } else {
            &old_records
        }
        .iter()
        .filter(in_group)
        .cloned()
        .collect();
        assert_eq!(got_group, want, "{name}: recovered to the wrong set");
        let after_group: Vec<_> = got.iter().filter(|r| r.0 >= next_new).cloned().collect();
        let old_after: Vec<_> = old_records
            .iter()
            .filter(|r| r.0 >= next_new)
            .cloned()
            .collect();
        assert_eq!(after_group, old_after, "{name}: later segments untouched");
        let left = names(&case);
        assert!(
            !left
                .iter()
                .any(|n| n.ends_with(".cleaned") || n == CLEAN_SWAP_FILE),
            "{name}: leftovers {left:?}"
        );
    }
}
