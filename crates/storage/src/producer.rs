//! Idempotent-producer state: per producer id its epoch and the last 5 batches' sequences
//! and offsets. Pure: the log persists snapshots and replays the log tail through `record`.

use std::collections::{HashMap, VecDeque};

use super::batch::BatchHeader;
use super::error::AppendError;

/// Batches remembered per producer (Kafka: max.in.flight.requests.per.connection <= 5).
pub const PRODUCER_BATCHES_MAX: usize = 5;
/// Producer ids remembered per partition; beyond this the least recently written is forgotten.
pub const PRODUCER_IDS_MAX: usize = 100_000;

const SNAPSHOT_MAGIC: u32 = 0x5348_5053; // "SHPS"
const SNAPSHOT_VERSION: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
}

impl ProducerEntry {
    fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }
}

/// Outcome of checking a batch against the producer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerCheck {
    /// Not idempotent, or next in sequence: append it.
    Append,
    /// Already in the log: answer with the original offsets.
    Duplicate(BatchMetadata),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// (producer id, first offset) of every batch remembered: the cleaner keeps these batches,
    /// even emptied, so the state rebuilt from a cleaned log is this one.
    pub fn remembered_batches(&self) -> std::collections::HashSet<(i64, i64)> {
        self.producers
            .iter()
            .flat_map(|(&id, e)| e.batches.iter().map(move |b| (id, b.first_offset)))
            .collect()
    }

    /// Kafka's sequence and epoch rules. An unknown producer may start at any sequence.
    pub fn check(&self, header: &BatchHeader) -> Result<ProducerCheck, AppendError> {
        if !header.has_producer_id() {
            return Ok(ProducerCheck::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return Ok(ProducerCheck::Append);
        };
        if header.producer_epoch < entry.epoch {
            return Err(AppendError::InvalidProducerEpoch {
                producer_id: header.producer_id,
                current: entry.epoch,
                received: header.producer_epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            if header.base_sequence != 0 {
                return Err(AppendError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected: 0,
                    received: header.base_sequence,
                });
            }
            return Ok(ProducerCheck::Append);
        }
        let last_seq = header.last_sequence();
        if let Some(original) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
        {
            return Ok(ProducerCheck::Duplicate(*original));
        }
        match entry.batches.back() {
            None => Ok(ProducerCheck::Append),
            Some(last) if in_sequence(last.last_seq, header.base_sequence) => {
                Ok(ProducerCheck::Append)
            }
            Some(last) => Err(AppendError::OutOfOrderSequence {
                producer_id: header.producer_id,
                expected: last.last_seq.wrapping_add(1).max(0),
                received: header.base_sequence,
            }),
        }
    }

    /// Records an appended batch (header carries its assigned base offset). Also used to replay
    /// the log tail on recovery, where no check is made.
    pub fn record(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() {
            return;
        }
        let batch = BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
        };
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::with_capacity(PRODUCER_BATCHES_MAX),
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == PRODUCER_BATCHES_MAX {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        debug_assert!(entry.batches.len() <= PRODUCER_BATCHES_MAX);
        if self.producers.len() > PRODUCER_IDS_MAX {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self
            .producers
            .iter()
            .min_by_key(|(_, e)| e.last_offset())
            .map(|(&id, _)| id)
        {
            self.producers.remove(&oldest);
        }
    }

    /// Forgets batches at or after `offset` (log truncation); callers replay from a snapshot
    /// instead when exactness matters.
    pub fn remove_from(&mut self, offset: i64) {
        self.producers.retain(|_, entry| {
            entry.batches.retain(|b| b.last_offset < offset);
            !entry.batches.is_empty()
        });
    }

    /// Snapshot bytes: magic, version, count, entries, CRC-32C of everything before it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.producers.len() * 64);
        out.extend_from_slice(&SNAPSHOT_MAGIC.to_be_bytes());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[&id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 14 {
            return Err("snapshot too short".into());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_be_bytes(crc.try_into().expect("4"));
        if crc32c::crc32c(body) != crc {
            return Err("snapshot CRC mismatch".into());
        }
        let mut r = Reader { buf: body, at: 0 };
        if r.u32()? != SNAPSHOT_MAGIC || r.u16()? != SNAPSHOT_VERSION {
            return Err("bad snapshot magic or version".into());
        }
        let count = r.u32()? as usize;
        if count > PRODUCER_IDS_MAX {
            return Err(format!(
                "snapshot holds {count} producers, max {PRODUCER_IDS_MAX}"
            ));
        }
        let mut state = ProducerStateManager::new();
        for _ in 0..count {
            let id = r.u64()? as i64;
            let epoch = r.u16()? as i16;
            let n = r.u8()? as usize;
            if n > PRODUCER_BATCHES_MAX {
                return Err(format!("producer {id} has {n} batches"));
            }
            let mut batches = VecDeque::with_capacity(PRODUCER_BATCHES_MAX);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.u32()? as i32,
                    last_seq: r.u32()? as i32,
                    first_offset: r.u64()? as i64,
                    last_offset: r.u64()? as i64,
                    max_timestamp: r.u64()? as i64,
                });
            }
            state.producers.insert(id, ProducerEntry { epoch, batches });
        }
        if r.at != body.len() {
            return Err("trailing bytes in snapshot".into());
        }
        Ok(state)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at + n;
        if end > self.buf.len() {
            return Err("snapshot truncated".into());
        }
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
}
