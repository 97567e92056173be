//! A group-less consumer: reads chosen partitions of one topic from a start position,
//! tracking offsets itself (what `shoal consume` needs; no commits).

use std::collections::BTreeMap;

use super::{Client, ClientError, FetchOptions, OffsetSpec, Result};
use shoal_protocol::errors;
use shoal_protocol::records::Record;

/// Where reading starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    /// An absolute offset (clamped into [log start, log end]).
    Offset(i64),
    /// The first record at or after this timestamp (ms); log end if there is none.
    Timestamp(i64),
}

/// A record with its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub record: Record,
}

#[derive(Debug)]
pub struct Consumer {
    client: Client,
    topic: String,
    options: FetchOptions,
    /// Next offset to read, per partition.
    positions: BTreeMap<i32, i64>,
    /// Last high watermark seen, per partition.
    high_watermarks: BTreeMap<i32, i64>,
}

impl Consumer {
    /// Reads `partitions` of `topic` (None: all) from `start`.
    pub fn new(
        mut client: Client,
        topic: &str,
        partitions: Option<&[i32]>,
        start: StartOffset,
        options: FetchOptions,
    ) -> Result<Consumer> {
        let info = client.topic(topic)?;
        let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
        let chosen = match partitions {
            None => all,
            Some(ps) => {
                for p in ps {
                    if !all.contains(p) {
                        return Err(ClientError::UnknownPartition {
                            topic: topic.to_string(),
                            partition: *p,
                        });
                    }
                }
                ps.to_vec()
            }
        };
        let earliest = client.list_offsets(topic, &chosen, OffsetSpec::Earliest)?;
        let latest = client.list_offsets(topic, &chosen, OffsetSpec::Latest)?;
        let mut positions = BTreeMap::new();
        let mut high_watermarks = BTreeMap::new();
        for ((&p, e), l) in chosen.iter().zip(&earliest).zip(&latest) {
            let position = match start {
                StartOffset::Earliest => e.offset,
                StartOffset::Latest => l.offset,
                StartOffset::Offset(o) => o.clamp(e.offset, l.offset),
                StartOffset::Timestamp(ms) => {
                    let found = client.list_offsets(topic, &[p], OffsetSpec::Timestamp(ms))?;
                    if found[0].offset < 0 {
                        l.offset
                    } else {
                        found[0].offset
                    }
                }
            };
            positions.insert(p, position);
            high_watermarks.insert(p, l.offset);
        }
        Ok(Consumer {
            client,
            topic: topic.to_string(),
            options,
            positions,
            high_watermarks,
        })
    }

    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// True when every partition has been read up to the last high watermark seen.
    pub fn caught_up(&self) -> bool {
        self.positions
            .iter()
            .all(|(p, pos)| *pos >= self.high_watermarks.get(p).copied().unwrap_or(0))
    }

    pub fn into_client(self) -> Client {
        self.client
    }

    /// One Fetch round over all partitions (waiting up to `max_wait_ms` for data). Records
    /// come in offset order per partition; positions advance past them.
    pub fn poll(&mut self) -> Result<Vec<ConsumedRecord>> {
        let positions: Vec<(i32, i64)> = self.positions.iter().map(|(&p, &o)| (p, o)).collect();
        let fetched = self.client.fetch(&self.topic, &positions, self.options)?;
        let mut out = Vec::new();
        for pf in fetched {
            if pf.error_code == errors::OFFSET_OUT_OF_RANGE {
                // Retention moved the log start past us: continue from the earliest offset.
                let earliest =
                    self.client
                        .list_offsets(&self.topic, &[pf.partition], OffsetSpec::Earliest)?;
                self.positions.insert(pf.partition, earliest[0].offset);
                continue;
            }
            super::check(
                pf.error_code,
                || format!("fetch {}-{}", self.topic, pf.partition),
                None,
            )?;
            self.high_watermarks.insert(pf.partition, pf.high_watermark);
            let position = self.positions.get_mut(&pf.partition).expect("asked for it");
            for record in pf.records {
                if record.offset < *position {
                    continue;
                }
                *position = record.offset + 1;
                out.push(ConsumedRecord {
                    partition: pf.partition,
                    record,
                });
            }
        }
        Ok(out)
    }
}
