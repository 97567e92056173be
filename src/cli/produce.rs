//! `shoal produce TOPIC`: one record per stdin line.

use std::io::BufRead;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;

use crate::cli::{parse_key_value, ConnectArgs};
use shoal_client::{Acks, NullKeyPolicy, Producer, ProducerConfig};
use shoal_protocol::records::{NewRecord, RecordHeader};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Split each line at the first SEP into key and value (else the line is the value, no key).
    #[arg(long, short = 'K')]
    pub key_separator: Option<String>,
    /// Send every record to this partition (default: murmur2 of the key, sticky for no key).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// Wait up to this long for a batch to fill.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Maximum batch size in bytes.
    #[arg(long, default_value_t = 16384)]
    pub batch_bytes: usize,
    /// Header added to every record (repeatable): -H source=cli
    #[arg(long = "header", short = 'H', value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
}

pub fn run(connect: &ConnectArgs, args: ProduceArgs) -> Result<(), String> {
    let acks = Acks::parse(&args.acks)
        .ok_or_else(|| format!("--acks {}: expected 0, 1 or all", args.acks))?;
    let client = connect.connect()?;
    let mut producer = Producer::new(
        client,
        ProducerConfig {
            acks,
            linger: Duration::from_millis(args.linger_ms),
            batch_bytes_max: args.batch_bytes,
            null_keys: NullKeyPolicy::Sticky,
            ..ProducerConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let headers: Vec<RecordHeader> = args
        .headers
        .iter()
        .map(|(k, v)| RecordHeader {
            key: Bytes::from(k.clone()),
            value: Some(Bytes::from(v.clone())),
        })
        .collect();
    let mut count = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        let record = NewRecord {
            key,
            value: Some(Bytes::from(value)),
            headers: headers.clone(),
            timestamp_ms: shoal_protocol::now_ms(),
        };
        producer
            .send(&args.topic, args.partition, record)
            .map_err(|e| e.to_string())?;
        producer.poll().map_err(|e| e.to_string())?;
        count += 1;
    }
    let report = producer.flush().map_err(|e| e.to_string())?;
    eprintln!(
        "produced {count} record(s) to {} in {} batch(es)",
        args.topic, report.batches
    );
    Ok(())
}
