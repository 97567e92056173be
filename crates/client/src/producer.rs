//! A batching producer: records accumulate per partition into RecordBatch v2 and are sent
//! when a batch reaches `batch_bytes_max`, when the oldest pending record is `linger` old
//! (checked on each `send`), when `pending_bytes_max` is reached, or on `flush`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::{Acks, Client, ClientError, ProduceAck, Result};
use shoal_protocol::partitioner::partition_for_key;
use shoal_protocol::records::{
    BatchBuilder, BatchOptions, Compression, NewRecord, BATCH_HEADER_BYTES,
};

/// Partition choice for records without a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullKeyPolicy {
    /// Kafka's default (KIP-480): stay on one partition until its batch is sent, then move on.
    Sticky,
    /// One partition after the other, record by record.
    RoundRobin,
}

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub acks: Acks,
    pub linger: Duration,
    /// A batch is sent once adding a record would take it past this size.
    pub batch_bytes_max: usize,
    /// All pending batches are sent once they hold this many bytes.
    pub pending_bytes_max: usize,
    pub null_keys: NullKeyPolicy,
    /// Codec of produced batches.
    pub compression: Compression,
    /// Seed of the null-key partition choice (None: from the clock).
    pub seed: Option<u64>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_bytes_max: 16 * 1024,
            pending_bytes_max: 32 << 20,
            null_keys: NullKeyPolicy::Sticky,
            compression: Compression::None,
            seed: None,
        }
    }
}

/// A batch being filled.
#[derive(Debug)]
struct Pending {
    builder: BatchBuilder,
    first_at: Instant,
}

/// What a flush sent: one ack per batch (none with acks=0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub batches: usize,
    pub records: usize,
    pub acks: Vec<(String, ProduceAck)>,
}

#[derive(Debug)]
pub struct Producer {
    client: Client,
    config: ProducerConfig,
    pending: BTreeMap<(String, i32), Pending>,
    pending_bytes: usize,
    partition_counts: HashMap<String, i32>,
    sticky: HashMap<String, i32>,
    round_robin: HashMap<String, u32>,
    rng: u64,
    /// Sent but not yet reported (flushes triggered inside `send`).
    report: FlushReport,
}

impl Producer {
    pub fn new(client: Client, config: ProducerConfig) -> Result<Producer> {
        if config.batch_bytes_max < BATCH_HEADER_BYTES + 16 {
            return Err(ClientError::Invalid(format!(
                "batch_bytes_max {} is too small",
                config.batch_bytes_max
            )));
        }
        let seed = config.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        Ok(Producer {
            client,
            config,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            partition_counts: HashMap::new(),
            sticky: HashMap::new(),
            round_robin: HashMap::new(),
            rng: seed | 1,
            report: FlushReport {
                batches: 0,
                records: 0,
                acks: Vec::new(),
            },
        })
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub fn into_client(self) -> Client {
        self.client
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn partition_count(&mut self, topic: &str) -> Result<i32> {
        if let Some(&n) = self.partition_counts.get(topic) {
            return Ok(n);
        }
        let n = self.client.topic(topic)?.partitions.len() as i32;
        if n == 0 {
            return Err(ClientError::UnknownTopic(topic.to_string()));
        }
        self.partition_counts.insert(topic.to_string(), n);
        Ok(n)
    }

    /// The partition `send` would choose for `key` (for null keys: the current choice).
    pub fn partition_for(&mut self, topic: &str, key: Option<&[u8]>) -> Result<i32> {
        let count = self.partition_count(topic)?;
        if let Some(key) = key {
            return Ok(partition_for_key(key, count));
        }
        Ok(match self.config.null_keys {
            NullKeyPolicy::Sticky => match self.sticky.get(topic) {
                Some(&p) => p,
                None => {
                    let p = (self.next_random() % count as u64) as i32;
                    self.sticky.insert(topic.to_string(), p);
                    p
                }
            },
            NullKeyPolicy::RoundRobin => {
                let start = (self.next_random() % count as u64) as u32;
                let next = self.round_robin.entry(topic.to_string()).or_insert(start);
                let p = (*next % count as u32) as i32;
                *next = next.wrapping_add(1);
                p
            }
        })
    }

    /// Queues `record`; `partition` None means: choose by key. Returns the partition.
    pub fn send(&mut self, topic: &str, partition: Option<i32>, record: NewRecord) -> Result<i32> {
        let partition = match partition {
            Some(p) => {
                let count = self.partition_count(topic)?;
                if !(0..count).contains(&p) {
                    return Err(ClientError::UnknownPartition {
                        topic: topic.to_string(),
                        partition: p,
                    });
                }
                p
            }
            None => self.partition_for(topic, record.key.as_deref())?,
        };
        let key = (topic.to_string(), partition);
        let full = self.pending.get(&key).is_some_and(|p| {
            !p.builder.is_empty()
                && p.builder.batch_bytes() + p.builder.record_bytes(&record)
                    > self.config.batch_bytes_max
        });
        if full {
            self.send_batches(std::slice::from_ref(&key))?;
            if partition_is_sticky(
                &self.config,
                record.key.is_none(),
                partition,
                self.sticky.get(topic),
            ) {
                // Kafka's sticky partitioner moves on once a batch is complete.
                let count = self.partition_count(topic)?;
                let next = if count > 1 {
                    let offset = 1 + (self.next_random() % (count as u64 - 1)) as i32;
                    (partition + offset) % count
                } else {
                    0
                };
                self.sticky.insert(topic.to_string(), next);
            }
        }
        let pending = self.pending.entry(key).or_insert_with(|| Pending {
            builder: BatchBuilder::new(BatchOptions {
                compression: self.config.compression,
                ..BatchOptions::default()
            }),
            first_at: Instant::now(),
        });
        let before = pending.builder.batch_bytes();
        pending.builder.push(&record);
        self.pending_bytes += pending.builder.batch_bytes() - before;
        let linger_expired = self
            .pending
            .values()
            .any(|p| p.first_at.elapsed() >= self.config.linger);
        if linger_expired || self.pending_bytes >= self.config.pending_bytes_max {
            let all: Vec<_> = self.pending.keys().cloned().collect();
            self.send_batches(&all)?;
        }
        Ok(partition)
    }

    /// Sends every pending batch whose linger has expired.
    pub fn poll(&mut self) -> Result<()> {
        let due: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| p.first_at.elapsed() >= self.config.linger)
            .map(|(k, _)| k.clone())
            .collect();
        self.send_batches(&due)
    }

    /// Sends everything pending and reports all batches sent since the last flush.
    pub fn flush(&mut self) -> Result<FlushReport> {
        let all: Vec<_> = self.pending.keys().cloned().collect();
        self.send_batches(&all)?;
        Ok(std::mem::replace(
            &mut self.report,
            FlushReport {
                batches: 0,
                records: 0,
                acks: Vec::new(),
            },
        ))
    }

    fn send_batches(&mut self, keys: &[(String, i32)]) -> Result<()> {
        let mut by_topic: BTreeMap<String, Vec<(i32, bytes::Bytes)>> = BTreeMap::new();
        for key in keys {
            let Some(p) = self.pending.remove(key) else {
                continue;
            };
            if p.builder.is_empty() {
                continue;
            }
            self.pending_bytes -= p.builder.batch_bytes() - BATCH_HEADER_BYTES;
            self.report.records += p.builder.record_count();
            self.report.batches += 1;
            by_topic
                .entry(key.0.clone())
                .or_default()
                .push((key.1, p.builder.finish()));
        }
        for (topic, batches) in by_topic {
            let acks = self
                .client
                .produce_batches(&topic, &batches, self.config.acks)?;
            self.report
                .acks
                .extend(acks.into_iter().map(|a| (topic.clone(), a)));
        }
        Ok(())
    }
}

fn partition_is_sticky(
    config: &ProducerConfig,
    null_key: bool,
    partition: i32,
    sticky: Option<&i32>,
) -> bool {
    null_key && config.null_keys == NullKeyPolicy::Sticky && sticky == Some(&partition)
}
