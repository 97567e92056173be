//! Helpers shared by the storage tests.

use std::future::Future;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use shoal_storage::batch::{self, ProducerFields, RecordSpec};
use shoal_storage::{LogConfig, PartitionLog, ReadResult};

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

/// What the test expects the log to hold: (base offset, stamped bytes, record count, max ts).
#[derive(Default, Clone)]
pub struct Model {
    pub batches: Vec<(i64, Vec<u8>)>,
}

impl Model {
    pub fn push(&mut self, base: i64, bytes: Vec<u8>) {
        self.batches.push((base, bytes));
    }
    pub fn header(&self, i: usize) -> batch::BatchHeader {
        batch::BatchHeader::parse(&self.batches[i].1).unwrap()
    }
    /// Index of the batch containing `offset`.
    pub fn containing(&self, offset: i64) -> Option<usize> {
        (0..self.batches.len()).find(|&i| self.header(i).last_offset() >= offset)
    }
    pub fn end(&self) -> i64 {
        self.batches
            .last()
            .map(|(_, b)| batch::BatchHeader::parse(b).unwrap().next_offset())
            .unwrap_or(0)
    }
    pub fn truncate(&mut self, offset: i64) {
        self.batches
            .retain(|(_, b)| batch::BatchHeader::parse(b).unwrap().last_offset() < offset);
    }
    /// First record offset with timestamp >= ts (records built by make_batch: ts = base + i).
    pub fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        for (_, bytes) in &self.batches {
            let h = batch::BatchHeader::parse(bytes).unwrap();
            for (delta, ts_delta) in batch::record_timestamps(bytes, 1 << 20).unwrap() {
                if h.base_timestamp + ts_delta >= ts {
                    return Some((
                        h.base_offset + i64::from(delta),
                        h.base_timestamp + ts_delta,
                    ));
                }
            }
        }
        None
    }
}

/// Checks every offset reads back from the batch containing it, byte-identical, and that
/// byte limits return whole batches only.
pub async fn check_reads(log: &PartitionLog, model: &Model) {
    let hw = log.high_watermark();
    let start = log.log_start_offset();
    assert_eq!(hw, model.end().max(start));
    let dumped = dump(log).await;
    let expected: Vec<_> = model
        .batches
        .iter()
        .filter(|(b, _)| *b >= start)
        .cloned()
        .collect();
    assert_eq!(dumped.len(), expected.len());
    for ((ob, ab), (eb, eb_bytes)) in dumped.iter().zip(&expected) {
        assert_eq!(ob, eb);
        assert!(ab == eb_bytes, "batch at {eb} differs");
    }
    for offset in start..hw {
        let i = model.containing(offset).unwrap();
        let result = log.read(offset, 1, hw, true).await.unwrap();
        assert_eq!(result.slices.len(), 1, "offset {offset}");
        let bytes = read_all(&result).await;
        assert!(bytes == model.batches[i].1, "min-one read at {offset}");
        // Exactly k whole batches fit; one byte less drops the last one.
        let k = (i..model.batches.len()).take(3).count();
        let total: usize = model.batches[i..i + k].iter().map(|(_, b)| b.len()).sum();
        let result = log.read(offset, total as u32, hw, false).await.unwrap();
        assert_eq!(result.bytes, total, "k={k} batches at {offset}");
        let result = log.read(offset, total as u32 - 1, hw, false).await.unwrap();
        let less: usize = model.batches[i..i + k - 1]
            .iter()
            .map(|(_, b)| b.len())
            .sum();
        assert_eq!(result.bytes, less);
        // The upper bound stops before the batch containing it.
        if i + 1 < model.batches.len() {
            let upper = model.batches[i + 1].0;
            let result = log.read(offset, u32::MAX, upper, false).await.unwrap();
            assert_eq!(result.bytes, model.batches[i].1.len());
        }
    }
    assert!(log
        .read(hw, 1000, hw, true)
        .await
        .unwrap()
        .slices
        .is_empty());
}

/// Crash tests re-execute their own test binary as a child that writes to a log and prints
/// `READY <end>` and one `ACK <round> <i> <base offset>` line per durable append; the parent
/// kills it (or cuts the power under it) and checks every printed ack.
pub mod crash_child {
    use std::io::{BufRead, BufReader, Write};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::rc::Rc;
    use std::sync::mpsc;

    use bytes::BytesMut;
    use shoal_storage::batch::BatchHeader;
    use shoal_storage::{LogConfig, PartitionLog};

    const DIR_ENV: &str = "SHOAL_CRASH_CHILD_DIR";
    const ROUND_ENV: &str = "SHOAL_CRASH_CHILD_ROUND";

    /// One acknowledged append as the child reported it.
    #[derive(Clone, Copy, Debug)]
    pub struct Ack {
        pub round: u64,
        pub i: u64,
        pub base_offset: i64,
    }

    impl Ack {
        pub fn parse(line: &str) -> Option<Ack> {
            let mut parts = line.strip_prefix("ACK ")?.split(' ');
            Some(Ack {
                round: parts.next()?.parse().ok()?,
                i: parts.next()?.parse().ok()?,
                base_offset: parts.next()?.parse().ok()?,
            })
        }
    }

    /// Checks a log reopened after a crash: offsets contiguous up to the log end, segment
    /// files that end on batch boundaries, and every acknowledged batch at or after the log
    /// start byte-identical at its offset. `what` names the crash in failures. Returns the
    /// batches.
    pub async fn check_reopened(
        log: &PartitionLog,
        dir: &std::path::Path,
        acks: &[Ack],
        what: &str,
    ) -> Vec<(i64, Vec<u8>)> {
        assert_eq!(log.high_watermark(), log.log_end_offset(), "{what}: HW");
        let start = log.log_start_offset();
        let batches = super::dump(log).await;
        let mut next = start;
        for (base, bytes) in &batches {
            assert_eq!(*base, next, "{what}: offsets contiguous");
            next = BatchHeader::parse(bytes).unwrap().next_offset();
        }
        assert_eq!(
            next,
            log.log_end_offset(),
            "{what}: log ends after the last batch"
        );
        let stored: u64 = batches.iter().map(|(_, b)| b.len() as u64).sum();
        let on_disk: u64 = log
            .segment_base_offsets()
            .iter()
            .map(|b| super::file_len(&dir.join(format!("{b:020}.log"))))
            .sum();
        assert_eq!(
            stored, on_disk,
            "{what}: segment files end on batch boundaries"
        );
        let by_offset: std::collections::HashMap<i64, &Vec<u8>> =
            batches.iter().map(|(o, b)| (*o, b)).collect();
        for a in acks.iter().filter(|a| a.base_offset >= start) {
            let expected = super::stamped(&batch_for(a.round, a.i), a.base_offset, a.round as i32);
            let got = by_offset.get(&a.base_offset).unwrap_or_else(|| {
                panic!(
                    "{what}: acknowledged batch at offset {} is gone (log now {start}..{next}, \
                     {} segments)",
                    a.base_offset,
                    log.segment_count()
                )
            });
            assert!(
                **got == expected,
                "{what}: acknowledged batch at {} differs",
                a.base_offset
            );
        }
        batches
    }

    /// Batch `i` of round `round`: deterministic, so the parent can rebuild it.
    pub fn batch_for(round: u64, i: u64) -> BytesMut {
        let seed = (round << 32) | i;
        let records = 1 + (seed % 4) as usize;
        let value_bytes = 1 + (seed.wrapping_mul(7919) % 500) as usize;
        super::make_batch(seed, records, value_bytes, i as i64)
    }

    /// In the child: its log directory and round; `None` in an ordinary test run.
    pub fn child_args() -> Option<(PathBuf, u64)> {
        let dir = std::env::var(DIR_ENV).ok()?;
        let round = std::env::var(ROUND_ENV).ok()?.parse().expect("child round");
        Some((PathBuf::from(dir), round))
    }

    /// In the child: opens the log and tells the parent where it ends.
    pub async fn open_and_report(dir: PathBuf, config: LogConfig) -> Rc<PartitionLog> {
        let log = PartitionLog::open(dir, config).await.expect("child open");
        // Written to the real stdout handle, past libtest's output capture.
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY {}", log.log_end_offset()).unwrap();
        out.flush().unwrap();
        drop(out);
        log
    }

    /// In the child: `writers` tasks append batches `0, 1, 2, …` of `round` (leader epoch =
    /// round) until `lifetime` has passed since `started`, printing an `ACK` line for each
    /// append as soon as it returns (durable under the log's policy).
    pub async fn append_until(
        log: Rc<PartitionLog>,
        round: u64,
        writers: u64,
        started: std::time::Instant,
        lifetime: std::time::Duration,
    ) {
        let next = Rc::new(std::cell::Cell::new(0u64));
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let log = log.clone();
                let next = next.clone();
                glommio::spawn_local(async move {
                    while started.elapsed() < lifetime {
                        let i = next.get();
                        next.set(i + 1);
                        let info = log
                            .append(batch_for(round, i), round as i32, i as i64)
                            .await
                            .expect("child append");
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {round} {i} {}", info.base_offset).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    }

    /// In the parent: waits `delay` when `acks_min` is 0, else until the child printed
    /// `acks_min` acks (killing it and failing if it stays silent for `silence_max`).
    pub fn await_acks(
        child: &mut Child,
        rx: &mpsc::Receiver<String>,
        round: u64,
        acks_min: usize,
        delay: std::time::Duration,
        silence_max: std::time::Duration,
    ) -> Vec<Ack> {
        let mut acks = Vec::new();
        if acks_min == 0 {
            std::thread::sleep(delay);
        }
        while acks.len() < acks_min {
            match rx.recv_timeout(silence_max) {
                Ok(line) => acks.extend(Ack::parse(&line)),
                Err(e) => {
                    let _ = child.kill();
                    panic!(
                        "round {round}: child silent or gone ({e:?}) after {} acks",
                        acks.len()
                    );
                }
            }
        }
        acks
    }

    /// In the parent: re-executes this test binary running only `child_test`, its stdout lines
    /// on the receiver.
    pub fn spawn(
        child_test: &str,
        dir: &std::path::Path,
        round: u64,
    ) -> (Child, mpsc::Receiver<String>) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([child_test, "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir)
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }
}
