//! `shoal consume TOPIC`: reads partitions directly, or as a member of a consumer group
//! (`--group`: partitions assigned by the group, committed offsets, heartbeats), and prints
//! records.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::ConnectArgs;
use shoal_client::{Client, FetchOptions, GroupConfig, GroupConsumer, OffsetSpec};
use shoal_protocol::records::Record;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Start at the earliest offset (default: only new records). With --group: where to start
    /// partitions without a committed offset.
    #[arg(long)]
    pub from_beginning: bool,
    /// Start at this offset (in every consumed partition).
    #[arg(long, short = 'o', conflicts_with_all = ["from_beginning", "group"])]
    pub offset: Option<i64>,
    /// Consume only this partition.
    #[arg(long, short = 'p', conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Join this consumer group: consume the partitions it assigns, from its committed offsets,
    /// committing after printing (periodically and on exit), leaving it on exit.
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Group session timeout (the member is dropped without heartbeats for this long).
    #[arg(long, default_value_t = 10_000)]
    pub session_timeout_ms: i32,
    /// Group heartbeat interval (default: a third of the session timeout).
    #[arg(long)]
    pub heartbeat_interval_ms: Option<u64>,
    /// How often consumed offsets are committed.
    #[arg(long, default_value_t = 1_000)]
    pub commit_interval_ms: u64,
    /// Stop after COUNT records.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Stop when every partition has been read to its end.
    #[arg(long, short = 'e')]
    pub exit_at_end: bool,
    /// Output template: %t topic, %p partition, %o offset, %k key, %v value, %T timestamp (ms),
    /// %h headers (k=v,...), \n newline, \t tab.
    #[arg(long, short = 'f', default_value = "%v\\n")]
    pub format: String,
}

fn render(format: &str, topic: &str, partition: i32, r: &Record, out: &mut Vec<u8>) {
    let bytes = |b: &Option<bytes::Bytes>| b.as_ref().map(|b| b.to_vec()).unwrap_or_default();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('%', Some(n)) => {
                chars.next();
                match n {
                    't' => out.extend_from_slice(topic.as_bytes()),
                    'p' => out.extend_from_slice(partition.to_string().as_bytes()),
                    'o' => out.extend_from_slice(r.offset.to_string().as_bytes()),
                    'k' => out.extend_from_slice(&bytes(&r.key)),
                    'v' => out.extend_from_slice(&bytes(&r.value)),
                    'T' => out.extend_from_slice(r.timestamp_ms.to_string().as_bytes()),
                    'h' => {
                        let hs: Vec<String> = r
                            .headers
                            .iter()
                            .map(|h| {
                                format!(
                                    "{}={}",
                                    String::from_utf8_lossy(&h.key),
                                    String::from_utf8_lossy(&bytes(&h.value))
                                )
                            })
                            .collect();
                        out.extend_from_slice(hs.join(",").as_bytes());
                    }
                    '%' => out.push(b'%'),
                    other => {
                        out.push(b'%');
                        out.extend_from_slice(other.to_string().as_bytes());
                    }
                }
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push(b'\n');
            }
            ('\\', Some('t')) => {
                chars.next();
                out.push(b'\t');
            }
            _ => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
}

/// Set by SIGINT/SIGTERM in group mode: commit, leave and exit.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // Second signal: give up at once (async-signal-safe).
        unsafe { libc::_exit(130) };
    }
}

fn install_stop_handler() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic and calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

fn run_group(mut client: Client, args: &ConsumeArgs, group: &str) -> Result<(), String> {
    client.topic(&args.topic).map_err(|e| e.to_string())?;
    let mut config = GroupConfig::new(group, vec![args.topic.clone()]);
    config.session_timeout_ms = args.session_timeout_ms;
    config.heartbeat_interval_ms = args
        .heartbeat_interval_ms
        .unwrap_or((args.session_timeout_ms.max(3) / 3) as u64);
    config.reset = if args.from_beginning {
        OffsetSpec::Earliest
    } else {
        OffsetSpec::Latest
    };
    let mut consumer = GroupConsumer::new(client, config).map_err(|e| e.to_string())?;
    install_stop_handler();
    let result = consume_group(&mut consumer, args);
    // Commit what was printed and leave, also after an error.
    let closed = consumer
        .close()
        .map_err(|e| format!("leaving group {group}: {e}"));
    result.and(closed)
}

fn consume_group(consumer: &mut GroupConsumer, args: &ConsumeArgs) -> Result<(), String> {
    let commit_interval = Duration::from_millis(args.commit_interval_ms);
    let stdout = std::io::stdout();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut printed = 0u64;
    let mut last_commit = Instant::now();
    let done = |printed: u64| args.count.is_some_and(|n| printed >= n);
    while !STOP.load(Ordering::SeqCst) {
        let fetched = consumer.poll().map_err(|e| e.to_string())?;
        let mut consumed = Vec::new();
        for (topic, pf) in &fetched {
            let mut next = None;
            for r in &pf.records {
                if done(printed) {
                    break;
                }
                render(&args.format, topic, pf.partition, r, &mut out);
                next = Some(r.offset + 1);
                printed += 1;
            }
            if let Some(next) = next {
                consumed.push((topic, pf.partition, next));
            }
        }
        let mut lock = stdout.lock();
        lock.write_all(&out).map_err(|e| format!("stdout: {e}"))?;
        lock.flush().map_err(|e| format!("stdout: {e}"))?;
        drop(lock);
        out.clear();
        // Only what reached stdout counts as consumed (and gets committed).
        for (topic, partition, next) in consumed {
            consumer.consumed(topic, partition, next);
        }
        if done(printed) || (args.exit_at_end && consumer.at_end()) {
            break;
        }
        if last_commit.elapsed() >= commit_interval {
            consumer.commit().map_err(|e| e.to_string())?;
            last_commit = Instant::now();
        }
    }
    Ok(())
}

pub fn run(connect: &ConnectArgs, args: ConsumeArgs) -> Result<(), String> {
    let mut client = connect.connect()?;
    if let Some(group) = args.group.clone() {
        return run_group(client, &args, &group);
    }
    let topic = client.topic(&args.topic).map_err(|e| e.to_string())?;
    let partitions: Vec<i32> = match args.partition {
        Some(p) => {
            if !topic.partitions.iter().any(|x| x.partition == p) {
                return Err(format!("topic {} has no partition {p}", args.topic));
            }
            vec![p]
        }
        None => topic.partitions.iter().map(|p| p.partition).collect(),
    };
    let mut positions: Vec<(i32, i64)> = match (args.offset, args.from_beginning) {
        (Some(o), _) => partitions.iter().map(|&p| (p, o)).collect(),
        (None, true) => client
            .list_offsets(&args.topic, &partitions, OffsetSpec::Earliest)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|o| (o.partition, o.offset))
            .collect(),
        (None, false) => client
            .list_offsets(&args.topic, &partitions, OffsetSpec::Latest)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|o| (o.partition, o.offset))
            .collect(),
    };
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let fetched = client
            .fetch(&args.topic, &positions, FetchOptions::default())
            .map_err(|e| e.to_string())?;
        let mut at_end = true;
        for pf in fetched {
            if pf.error_code != 0 {
                return Err(format!(
                    "{}-{}: {}",
                    args.topic,
                    pf.partition,
                    shoal_protocol::errors::name(pf.error_code)
                ));
            }
            let pos = positions
                .iter_mut()
                .find(|(p, _)| *p == pf.partition)
                .expect("fetched a requested partition");
            let start = pos.1;
            for r in pf.records.iter().filter(|r| r.offset >= start) {
                render(&args.format, &args.topic, pf.partition, r, &mut out);
                pos.1 = r.offset + 1;
                printed += 1;
                if args.count.is_some_and(|n| printed >= n) {
                    break;
                }
            }
            if pos.1 < pf.high_watermark {
                at_end = false;
            }
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
        }
        let mut lock = stdout.lock();
        lock.write_all(&out).map_err(|e| format!("stdout: {e}"))?;
        lock.flush().map_err(|e| format!("stdout: {e}"))?;
        out.clear();
        if args.count.is_some_and(|n| printed >= n) || (args.exit_at_end && at_end) {
            return Ok(());
        }
    }
}
