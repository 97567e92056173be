//! shoal-log-bench: N concurrent writers append RecordBatches of 1 KiB records to one
//! PartitionLog with sync-before-ack (group commit) and report throughput, syncs per second
//! and append latency percentiles. Not a test: run it in release mode on the target disk.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use shoal_storage::batch::{self, ProducerFields, RecordSpec};
use shoal_storage::{FlushPolicy, LogConfig, PartitionLog};

#[derive(Parser, Debug, Clone)]
#[command(about = "Append benchmark for the Shoal partition log (sync before ack)")]
struct Args {
    /// Directory for the log (created, and removed afterwards unless --keep).
    #[arg(long, default_value = "/tmp/shoal-log-bench")]
    dir: PathBuf,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Appends each writer keeps in flight (a Kafka producer pipelines up to 5 requests).
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Target batch size in bytes (records of --record-bytes each).
    #[arg(long, default_value_t = 16 << 10)]
    batch_bytes: usize,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Warm-up seconds (appends not measured).
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// segment.bytes.
    #[arg(long, default_value_t = 1 << 30)]
    segment_bytes: u64,
    /// Use the Kafka-style interval policy (no sync per ack) instead, for comparison.
    #[arg(long)]
    no_sync: bool,
    /// Keep the log directory.
    #[arg(long)]
    keep: bool,
}

fn make_batch(writer: usize, records: usize, record_bytes: usize) -> bytes::BytesMut {
    let value: Vec<u8> = (0..record_bytes)
        .map(|i| (i * 31 + writer * 7) as u8)
        .collect();
    let key = (writer as u64).to_be_bytes();
    let specs: Vec<RecordSpec<'_>> = (0..records)
        .map(|r| RecordSpec {
            timestamp_delta: r as i64,
            key: Some(&key),
            value: Some(&value),
            headers: &[],
        })
        .collect();
    batch::build_batch(0, ProducerFields::NONE, &specs)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn main() {
    let args = Args::parse();
    assert!(
        args.writers > 0
            && args.in_flight > 0
            && args.record_bytes > 0
            && args.batch_bytes >= args.record_bytes
    );
    let records = (args.batch_bytes / args.record_bytes).max(1);
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir).expect("clear bench dir");
    }
    let run_args = args.clone();
    let report = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("log-bench")
        .spawn(move || async move { bench(run_args, records).await })
        .expect("executor")
        .join()
        .expect("bench thread");
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    println!("{report}");
}

async fn bench(args: Args, records: usize) -> String {
    let config = LogConfig {
        segment_bytes: args.segment_bytes,
        flush: if args.no_sync {
            FlushPolicy::Interval {
                flush_ms: u64::MAX,
                flush_messages: u64::MAX,
            }
        } else {
            FlushPolicy::SyncBeforeAck
        },
        ..LogConfig::default()
    };
    let log = PartitionLog::open(args.dir.join("bench-0"), config)
        .await
        .expect("open log");
    let hist = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let measured_bytes = Rc::new(RefCell::new(0u64));
    let start = Instant::now();
    let warmup = Duration::from_secs(args.warmup_secs);
    let end = warmup + Duration::from_secs(args.duration_secs);
    let mut stats_at_warmup = None;
    let writers: Vec<_> = (0..args.writers)
        .map(|w| {
            let log = log.clone();
            let hist = hist.clone();
            let measured_bytes = measured_bytes.clone();
            let template = make_batch(w, records, args.record_bytes);
            let in_flight = args.in_flight;
            glommio::spawn_local(async move {
                // The writer's appends are started in order and complete in order (FIFO log
                // lock); `in_flight` of them are outstanding at a time.
                let mut pending = std::collections::VecDeque::new();
                loop {
                    let elapsed = start.elapsed();
                    if elapsed < end {
                        let batch = template.clone();
                        let len = batch.len() as u64;
                        let log = log.clone();
                        let t0 = Instant::now();
                        let append = glommio::spawn_local(async move {
                            log.append(batch, 0, now_ms()).await.expect("append");
                        });
                        pending.push_back((append, t0, elapsed, len));
                        if pending.len() < in_flight {
                            continue;
                        }
                    }
                    let Some((append, t0, started, len)) = pending.pop_front() else {
                        break;
                    };
                    append.await;
                    let us = t0.elapsed().as_micros() as u64;
                    if started >= warmup {
                        hist.borrow_mut().saturating_record(us.max(1));
                        *measured_bytes.borrow_mut() += len;
                    }
                }
            })
        })
        .collect();
    // Sample the counters at the end of warm-up.
    glommio::timer::sleep(warmup).await;
    stats_at_warmup.get_or_insert(log.stats());
    let measure_start = Instant::now();
    for w in writers {
        w.await;
    }
    let measured = measure_start.elapsed().as_secs_f64();
    let s0 = stats_at_warmup.expect("sampled");
    let s1 = log.stats();
    log.close().await.expect("close");
    let bytes = *measured_bytes.borrow() as f64;
    let hist = hist.borrow();
    let syncs = (s1.syncs - s0.syncs) as f64;
    let appends = hist.len() as f64;
    format!(
        "shoal-log-bench: writers={} in_flight={} batch={} B ({} x {} B records) duration={}s sync_before_ack={}\n\
         throughput: {:.1} MB/s ({:.1} MiB/s), {:.0} appends/s\n\
         syncs: {:.0}/s, {:.1} batches per sync, fdatasync avg {:.0} us, write wait before sync avg {:.0} us\n\
         append latency us: p50={} p99={} p99.9={} max={}",
        args.writers,
        args.in_flight,
        template_len(records, args.record_bytes),
        records,
        args.record_bytes,
        args.duration_secs,
        !args.no_sync,
        bytes / measured / 1e6,
        bytes / measured / (1 << 20) as f64,
        appends / measured,
        syncs / measured,
        if syncs > 0.0 { appends / syncs } else { 0.0 },
        (s1.sync_us - s0.sync_us) as f64 / syncs.max(1.0),
        (s1.write_wait_us - s0.write_wait_us) as f64 / syncs.max(1.0),
        hist.value_at_quantile(0.50),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max(),
    )
}

fn template_len(records: usize, record_bytes: usize) -> usize {
    make_batch(0, records, record_bytes).len()
}
