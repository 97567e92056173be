//! Leader-epoch cache: (epoch, start offset) pairs, persisted as Kafka's
//! `leader-epoch-checkpoint` text file ("0\n<count>\n<epoch> <offset>\n...").

pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;
/// Entries kept; older ones are dropped (only recent epochs matter for truncation).
pub const EPOCH_ENTRIES_MAX: usize = 10_000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    /// Epochs and start offsets, both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// The epoch of the batch holding `offset`: the last entry starting at or before it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|&(_, start)| start <= offset);
        i.checked_sub(1).map(|i| self.entries[i].0)
    }

    /// Records that `epoch` starts at `start_offset`. Returns true if the cache changed.
    /// Epochs older than the latest are ignored (a stale leader's write).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(&(last, _)) if epoch <= last => false,
            Some(&(_, last_start)) if start_offset < last_start => false,
            _ => {
                self.entries.push((epoch, start_offset));
                if self.entries.len() > EPOCH_ENTRIES_MAX {
                    self.entries.remove(0);
                }
                true
            }
        }
    }

    /// Removes entries starting at or after `end_offset` (log truncated to `end_offset`).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end_offset);
        before != self.entries.len()
    }

    /// Log start moved to `start_offset`: drop epochs that ended before it and clamp.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let keep_from = self.entries.partition_point(|&(_, s)| s <= start_offset);
        if keep_from == 0 {
            return false;
        }
        let changed = keep_from > 1 || self.entries[0].1 != start_offset;
        self.entries.drain(..keep_from - 1);
        self.entries[0].1 = start_offset;
        changed
    }

    /// Kafka's OffsetForLeaderEpoch: (largest epoch <= requested, start offset of the next
    /// higher epoch or the log end if requested is the latest).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH || self.entries.is_empty() {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= requested);
        if higher == self.entries.len() {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        let higher_start = self.entries[higher].1;
        if higher == 0 {
            (requested, higher_start)
        } else {
            (self.entries[higher - 1].0, higher_start)
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            out.push_str(&format!("{epoch} {start}\n"));
        }
        out.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some("0") {
            return Err("bad leader-epoch-checkpoint version".into());
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("bad leader-epoch-checkpoint count")?;
        if count > EPOCH_ENTRIES_MAX {
            return Err(format!("{count} epochs, max {EPOCH_ENTRIES_MAX}"));
        }
        let mut cache = LeaderEpochCache::default();
        for _ in 0..count {
            let line = lines.next().ok_or("leader-epoch-checkpoint truncated")?;
            let mut parts = line.split_whitespace();
            let epoch: i32 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or("bad epoch")?;
            let start: i64 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or("bad offset")?;
            if !cache.assign(epoch, start) {
                return Err(format!("epoch entry {epoch} {start} out of order"));
            }
        }
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_at_finds_the_epoch_holding_an_offset() {
        let mut c = LeaderEpochCache::default();
        assert_eq!(c.epoch_at(0), None);
        c.assign(0, 0);
        c.assign(3, 10);
        assert_eq!(c.epoch_at(0), Some(0));
        assert_eq!(c.epoch_at(9), Some(0));
        assert_eq!(c.epoch_at(10), Some(3));
        assert_eq!(c.epoch_at(1_000), Some(3));
        c.truncate_from_start(5);
        assert_eq!(c.epoch_at(4), None);
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let mut cache = LeaderEpochCache::default();
        assert_eq!(cache.end_offset_for(0, 10), (-1, -1));
        assert!(cache.assign(1, 0));
        assert!(cache.assign(3, 100));
        assert!(!cache.assign(2, 150));
        assert_eq!(cache.end_offset_for(3, 200), (3, 200));
        assert_eq!(cache.end_offset_for(1, 200), (1, 100));
        assert_eq!(cache.end_offset_for(2, 200), (1, 100));
        assert_eq!(cache.end_offset_for(0, 200), (0, 0));
        assert_eq!(cache.end_offset_for(4, 200), (-1, -1));
        let decoded = LeaderEpochCache::decode(&cache.encode()).unwrap();
        assert_eq!(decoded, cache);
        assert!(cache.truncate_from_end(100));
        assert_eq!(cache.entries(), &[(1, 0)]);
    }

    #[test]
    fn truncate_from_start_clamps() {
        let mut cache = LeaderEpochCache::default();
        cache.assign(1, 0);
        cache.assign(2, 50);
        cache.assign(3, 90);
        assert!(cache.truncate_from_start(60));
        assert_eq!(cache.entries(), &[(2, 60), (3, 90)]);
    }
}
