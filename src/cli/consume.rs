//! `shoal consume TOPIC`: reads partitions directly (no group) and prints records.

use std::io::Write;

use clap::Args;

use crate::cli::ConnectArgs;
use crate::client::{FetchOptions, OffsetSpec};
use crate::protocol::records::Record;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Start at the earliest offset (default: only new records).
    #[arg(long)]
    pub from_beginning: bool,
    /// Start at this offset (in every consumed partition).
    #[arg(long, short = 'o', conflicts_with = "from_beginning")]
    pub offset: Option<i64>,
    /// Consume only this partition.
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
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

pub fn run(connect: &ConnectArgs, args: ConsumeArgs) -> Result<(), String> {
    let mut client = connect.connect()?;
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
                    crate::protocol::errors::name(pf.error_code)
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
