//! Sparse indexes of a segment, kept in memory and written whole to `.index` / `.timeindex`
//! when the segment is rolled or the log closed. They are caches: recovery rebuilds them.
//!
//! OffsetIndex entry (8 bytes, big-endian): relative base offset of a batch u32, its file position u32.
//! TimeIndex entry (12 bytes): max timestamp so far i64, relative offset u32 of the batch holding it.

/// Why an index file was rejected (the caller rebuilds it from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDamage(pub String);

/// The first field of an index entry, stored big-endian ahead of the u32 second field.
pub trait IndexKey: Copy + Ord + std::fmt::Display {
    const BYTES: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! index_key {
    ($($t:ty),*) => {$(
        impl IndexKey for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_be_bytes(bytes.try_into().expect("key bytes"))
            }
        }
    )*};
}
index_key!(u32, i64);

/// A sparse index: at most `entries_max` entries (key, u32), both fields strictly increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseIndex<K> {
    entries: Vec<(K, u32)>,
    entries_max: usize,
}

/// (relative offset, position).
pub type OffsetIndex = SparseIndex<u32>;
/// (max timestamp so far, relative offset).
pub type TimeIndex = SparseIndex<i64>;

impl<K: IndexKey> SparseIndex<K> {
    const ENTRY_BYTES: usize = K::BYTES + 4;

    pub fn new(entries_max: usize) -> Self {
        assert!(entries_max > 0);
        SparseIndex {
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
    pub fn entries(&self) -> &[(K, u32)] {
        &self.entries
    }
    pub fn last(&self) -> Option<(K, u32)> {
        self.entries.last().copied()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * Self::ENTRY_BYTES);
        for &(k, v) in &self.entries {
            k.put(&mut out);
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// Parses and sanity-checks an index file; every second field must be below `bound`
    /// (`beyond` says why one is not).
    fn decode_bounded(
        bytes: &[u8],
        entries_max: usize,
        bound: u64,
        beyond: impl Fn(u32) -> String,
    ) -> Result<Self, IndexDamage> {
        if !bytes.len().is_multiple_of(Self::ENTRY_BYTES) {
            return Err(IndexDamage(format!(
                "size {} not a multiple of {}",
                bytes.len(),
                Self::ENTRY_BYTES
            )));
        }
        let mut index = Self::new(entries_max);
        for chunk in bytes.chunks_exact(Self::ENTRY_BYTES) {
            let k = K::get(&chunk[..K::BYTES]);
            let v = u32::get(&chunk[K::BYTES..]);
            if index.is_full() {
                return Err(IndexDamage(
                    "more entries than segment.index.bytes allows".into(),
                ));
            }
            if let Some((lk, lv)) = index.last() {
                if k <= lk || v <= lv {
                    return Err(IndexDamage(format!(
                        "entry ({k}, {v}) not after ({lk}, {lv})"
                    )));
                }
            }
            if u64::from(v) >= bound {
                return Err(IndexDamage(beyond(v)));
            }
            index.entries.push((k, v));
        }
        Ok(index)
    }
}

impl OffsetIndex {
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

    /// Parses and sanity-checks an index file against the log size it indexes.
    pub fn decode(bytes: &[u8], entries_max: usize, log_bytes: u64) -> Result<Self, IndexDamage> {
        Self::decode_bounded(bytes, entries_max, log_bytes, |p| {
            format!("position {p} beyond log size {log_bytes}")
        })
    }
}

impl TimeIndex {
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

    /// Parses and sanity-checks; `next_relative_offset` is the segment's end.
    pub fn decode(
        bytes: &[u8],
        entries_max: usize,
        next_relative_offset: u64,
    ) -> Result<Self, IndexDamage> {
        Self::decode_bounded(bytes, entries_max, next_relative_offset, |o| {
            format!("offset {o} beyond segment end {next_relative_offset}")
        })
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
