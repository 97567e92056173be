//! Faults: a full disk (RLIMIT_FSIZE in a child process) and a damaged sealed segment give
//! typed errors for that partition, never a panic, and lose no acknowledged batch.

use shoal_broker::errors::KafkaCode;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use shoal_storage::batch::BatchHeader;
use shoal_storage::{LogConfig, PartitionLog, StorageError};
use shoal_testkit::storage::*;

const CHILD_DIR_ENV: &str = "SHOAL_DISK_FULL_CHILD_DIR";
/// The child's file size limit: the log hits it after a few dozen batches.
const FILE_BYTES_MAX: u64 = 96 << 10;

fn fault_config() -> LogConfig {
    small_config(1 << 20, 1024)
}

/// Child mode (no-op unless re-executed by `full_disk_takes_log_offline_without_losing_acks`).
#[test]
fn disk_full_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    // SAFETY: plain libc calls on this process before any I/O; SIGXFSZ would kill us otherwise.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: FILE_BYTES_MAX,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    run(move || async move {
        let log = PartitionLog::open(PathBuf::from(dir), fault_config())
            .await
            .unwrap();
        let mut out = std::io::stdout().lock();
        // libtest's "test disk_full_child ... " has no newline yet: end that line first.
        writeln!(out).unwrap();
        let mut acked = 0u64;
        for i in 0..10_000u64 {
            match log.append(make_batch(i, 2, 1000, i as i64), 0, 0).await {
                Ok(info) => {
                    writeln!(out, "ACK {i} {}", info.base_offset).unwrap();
                    acked += 1;
                }
                Err(e) => {
                    writeln!(out, "ERR {} {e}", e.kafka_code()).unwrap();
                    break;
                }
            }
        }
        assert!(log.is_failed());
        let again = log.append(make_batch(0, 1, 10, 0), 0, 0).await.unwrap_err();
        writeln!(out, "ERR2 {}", again.kafka_code()).unwrap();
        // Reads of what was acknowledged still work on an offline log.
        let batches = dump(&log).await;
        writeln!(out, "READ {} {acked}", batches.len()).unwrap();
        out.flush().unwrap();
    });
}

#[test]
fn full_disk_takes_log_offline_without_losing_acks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full-0");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "disk_full_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed:\n{stdout}");
    let mut acks = Vec::new();
    let (mut err, mut err2, mut read) = (None, None, None);
    for line in stdout.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[0] {
            "ACK" => acks.push((
                parts[1].parse::<u64>().unwrap(),
                parts[2].parse::<i64>().unwrap(),
            )),
            "ERR" => err = Some(line.to_string()),
            "ERR2" => err2 = Some(parts[1].to_string()),
            "READ" => {
                read = Some((
                    parts[1].parse::<usize>().unwrap(),
                    parts[2].parse::<usize>().unwrap(),
                ))
            }
            _ => {}
        }
    }
    let err = err.expect("the child hit the file size limit");
    assert!(
        err.starts_with("ERR 56 "),
        "KAFKA_STORAGE_ERROR expected: {err}"
    );
    assert_eq!(err2.as_deref(), Some("56"), "log stays offline");
    assert!(acks.len() > 10, "{} acks before the limit", acks.len());
    let (read_batches, acked) = read.expect("reads after the failure");
    assert_eq!(acked, acks.len());
    assert!(read_batches >= acks.len());
    // Reopen without the limit: every acked batch is there, the partial write is cut off.
    run(move || async move {
        let (log, report) = PartitionLog::open_with_report(path.clone(), fault_config())
            .await
            .unwrap();
        assert!(!report.clean_shutdown);
        let batches = dump(&log).await;
        assert!(batches.len() >= acks.len());
        for (i, base) in &acks {
            let expected = stamped(&make_batch(*i, 2, 1000, *i as i64), *base, 0);
            let got = batches
                .iter()
                .find(|(o, _)| o == base)
                .expect("acked batch present");
            assert!(got.1 == expected, "acked batch {i} at {base} identical");
        }
        let stored: usize = batches.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(
            stored as u64,
            file_len(&path.join(format!("{:020}.log", 0)))
        );
        // And it serves again.
        let info = log.append(make_batch(7, 1, 10, 0), 0, 0).await.unwrap();
        assert_eq!(
            info.base_offset,
            BatchHeader::parse(&batches.last().unwrap().1)
                .unwrap()
                .next_offset()
        );
    });
}

#[test]
fn damaged_sealed_segment_is_a_typed_error() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let config = small_config(4096, 256);
        let log = PartitionLog::open(path.clone(), config).await.unwrap();
        for i in 0..40 {
            log.append(make_batch(i, 3, 200, 0), 0, 0).await.unwrap();
        }
        let bases = log.segment_base_offsets();
        assert!(bases.len() > 3);
        drop(log);
        // Flip a byte in the first (sealed) segment and drop its index so open must verify it.
        let seg = path.join(format!("{:020}.log", bases[0]));
        let mut bytes = std::fs::read(&seg).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&seg, bytes).unwrap();
        std::fs::remove_file(path.join(format!("{:020}.index", bases[0]))).unwrap();
        let err = PartitionLog::open(path.clone(), config).await.unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
        assert_eq!(err.kafka_code(), 56);
    });
}
