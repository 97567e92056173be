//! Sparse indexes of a segment, kept in memory and written whole to `.index` / `.timeindex`
//! when the segment is rolled or the log closed. They are caches: recovery rebuilds them.
//!
//! OffsetIndex entry (8 bytes, big-endian): relative base offset of a batch u32, its file position u32.
//! TimeIndex entry (12 bytes): max timestamp so far i64, relative offset u32 of the batch holding it.

/// Why an index file was rejected (the caller rebuilds it from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDamage(pub String);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    /// (relative offset, position), both strictly increasing.
    entries: Vec<(u32, u32)>,
    entries_max: usize,
}

impl OffsetIndex {
    pub fn new(entries_max: usize) -> Self {
        assert!(entries_max > 0);
        OffsetIndex {
            entries: Vec::new(),
            entries_max,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.entries_max
    }
    pub fn entries(&self) -> &[(u32, u32)] {
        &self.entries
    }
    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    pub fn append(&mut self, relative_offset: u32, position: u32) {
        assert!(!self.is_full(), "offset index full");
        if let Some(&(last_offset, last_position)) = self.entries.last() {
            assert!(relative_offset > last_offset && position > last_position);
        }
        self.entries.push((relative_offset, position));
    }

    /// Greatest entry with relative offset <= `relative_offset`, else (0, 0) (segment start).
    pub fn lookup(&self, relative_offset: u32) -> (u32, u32) {
        let at = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if at == 0 {
            (0, 0)
        } else {
            self.entries[at - 1]
        }
    }

    /// Greatest entry with position <= `position`, else (0, 0).
    pub fn lookup_position(&self, position: u32) -> (u32, u32) {
        let at = self.entries.partition_point(|&(_, p)| p <= position);
        if at == 0 {
            (0, 0)
        } else {
            self.entries[at - 1]
        }
    }

    /// Drops entries at or beyond `position` (the segment is being cut there).
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|&(_, p)| p < position);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for &(o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Parses and sanity-checks an index file against the log size it indexes.
    pub fn decode(bytes: &[u8], entries_max: usize, log_bytes: u64) -> Result<Self, IndexDamage> {
        if !bytes.len().is_multiple_of(8) {
            return Err(IndexDamage(format!(
                "size {} not a multiple of 8",
                bytes.len()
            )));
        }
        let mut index = OffsetIndex::new(entries_max);
        for chunk in bytes.chunks_exact(8) {
            let o = u32::from_be_bytes(chunk[..4].try_into().expect("4"));
            let p = u32::from_be_bytes(chunk[4..].try_into().expect("4"));
            if index.is_full() {
                return Err(IndexDamage(
                    "more entries than segment.index.bytes allows".into(),
                ));
            }
            if let Some((lo, lp)) = index.last() {
                if o <= lo || p <= lp {
                    return Err(IndexDamage(format!(
                        "entry ({o}, {p}) not after ({lo}, {lp})"
                    )));
                }
            }
            if u64::from(p) >= log_bytes {
                return Err(IndexDamage(format!(
                    "position {p} beyond log size {log_bytes}"
                )));
            }
            index.entries.push((o, p));
        }
        Ok(index)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    /// (max timestamp so far, relative offset), both strictly increasing.
    entries: Vec<(i64, u32)>,
    entries_max: usize,
}

impl TimeIndex {
    pub fn new(entries_max: usize) -> Self {
        assert!(entries_max > 0);
        TimeIndex {
            entries: Vec::new(),
            entries_max,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.entries_max
    }
    pub fn entries(&self) -> &[(i64, u32)] {
        &self.entries
    }
    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// Appends if `timestamp` grows the max so far (Kafka's maybeAppend).
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        if let Some(&(last_ts, last_offset)) = self.entries.last() {
            if timestamp <= last_ts {
                return;
            }
            if relative_offset <= last_offset {
                return;
            }
        }
        if self.is_full() {
            return;
        }
        self.entries.push((timestamp, relative_offset));
    }

    /// Greatest entry with timestamp < `timestamp`: batches up to (excluding the batch at) that
    /// relative offset all have smaller timestamps. None: search from the segment start.
    pub fn lookup_below(&self, timestamp: i64) -> Option<(i64, u32)> {
        let at = self.entries.partition_point(|&(t, _)| t < timestamp);
        (at > 0).then(|| self.entries[at - 1])
    }

    /// Drops entries at or beyond `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|&(_, o)| o < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for &(t, o) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    /// Parses and sanity-checks; `next_relative_offset` is the segment's end.
    pub fn decode(
        bytes: &[u8],
        entries_max: usize,
        next_relative_offset: u64,
    ) -> Result<Self, IndexDamage> {
        if !bytes.len().is_multiple_of(12) {
            return Err(IndexDamage(format!(
                "size {} not a multiple of 12",
                bytes.len()
            )));
        }
        let mut index = TimeIndex::new(entries_max);
        for chunk in bytes.chunks_exact(12) {
            let t = i64::from_be_bytes(chunk[..8].try_into().expect("8"));
            let o = u32::from_be_bytes(chunk[8..].try_into().expect("4"));
            if index.is_full() {
                return Err(IndexDamage(
                    "more entries than segment.index.bytes allows".into(),
                ));
            }
            if let Some((lt, lo)) = index.last() {
                if t <= lt || o <= lo {
                    return Err(IndexDamage(format!(
                        "entry ({t}, {o}) not after ({lt}, {lo})"
                    )));
                }
            }
            if u64::from(o) >= next_relative_offset {
                return Err(IndexDamage(format!(
                    "offset {o} beyond segment end {next_relative_offset}"
                )));
            }
            index.entries.push((t, o));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_boundaries() {
        let mut index = OffsetIndex::new(10);
        index.append(5, 100);
        index.append(9, 300);
        assert_eq!(index.lookup(0), (0, 0));
        assert_eq!(index.lookup(4), (0, 0));
        assert_eq!(index.lookup(5), (5, 100));
        assert_eq!(index.lookup(8), (5, 100));
        assert_eq!(index.lookup(9), (9, 300));
        assert_eq!(index.lookup(u32::MAX), (9, 300));
        assert_eq!(index.lookup_position(99), (0, 0));
        assert_eq!(index.lookup_position(100), (5, 100));
        assert_eq!(index.lookup_position(299), (5, 100));
        let decoded = OffsetIndex::decode(&index.encode(), 10, 301).unwrap();
        assert_eq!(decoded, index);
        assert!(OffsetIndex::decode(&index.encode(), 10, 300).is_err());
        assert!(OffsetIndex::decode(&index.encode()[..7], 10, 301).is_err());
        index.truncate_to_position(300);
        assert_eq!(index.entries(), &[(5, 100)]);
    }

    #[test]
    fn time_index_lookup_below() {
        let mut index = TimeIndex::new(10);
        index.maybe_append(100, 1);
        index.maybe_append(100, 2); // not growing: skipped
        index.maybe_append(200, 3);
        assert_eq!(index.len(), 2);
        assert_eq!(index.lookup_below(100), None);
        assert_eq!(index.lookup_below(101), Some((100, 1)));
        assert_eq!(index.lookup_below(201), Some((200, 3)));
        let decoded = TimeIndex::decode(&index.encode(), 10, 4).unwrap();
        assert_eq!(decoded, index);
        assert!(TimeIndex::decode(&index.encode(), 10, 3).is_err());
    }
}
