//! LogSegment: one `.log` file of whole RecordBatch v2 batches plus its sparse
//! OffsetIndex and TimeIndex (in memory; written to `.index` / `.timeindex` on roll and close).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use glommio::io::BufferedFile;

use super::batch::{self, BatchHeader, HEADER_BYTES};
use super::config::{LogConfig, SEGMENT_BYTES_MAX};
use super::error::StorageError;
use super::fileio::{self, io_err};
use super::index::{OffsetIndex, TimeIndex};

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
pub const NO_TIMESTAMP: i64 = -1;

/// Bytes read per step when verifying a segment (recovery).
pub const SCAN_CHUNK_BYTES: usize = 1 << 20;
/// Bytes read per step when walking batch headers (lookups).
pub const HEADER_WINDOW_BYTES: usize = 8 << 10;
/// Largest batch a segment may hold (positions are u32, segments <= i32::MAX bytes).
pub const BATCH_BYTES_MAX: u64 = SEGMENT_BYTES_MAX;
/// Blocks reserved ahead of the active segment's writes (fallocate, size kept), so that the
/// fdatasync after an append does not also commit a block allocation in the journal.
pub const PREALLOCATE_BYTES: u64 = 8 << 20;

/// `00000000000000000042.log` etc.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

pub fn file_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(file_name(base_offset, suffix))
}

/// Parses `<20 digits>.<suffix>`.
pub fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

/// A batch found while walking a segment.
#[derive(Clone, Copy, Debug)]
pub struct ScannedBatch {
    pub position: u64,
    pub header: BatchHeader,
    pub bytes: u64,
}

impl ScannedBatch {
    pub fn end(&self) -> u64 {
        self.position + self.bytes
    }
}

pub struct LogSegment {
    pub(crate) base_offset: i64,
    pub(crate) path: PathBuf,
    pub(crate) file: BufferedFile,
    /// Bytes assigned to batches, including writes still in flight.
    size: Cell<u64>,
    /// Offset after the last assigned batch.
    next_offset: Cell<i64>,
    /// Bytes / offset end of the contiguous prefix whose writes completed (what readers may see).
    written_size: Cell<u64>,
    written_next_offset: Cell<i64>,
    offset_index: RefCell<OffsetIndex>,
    time_index: RefCell<TimeIndex>,
    max_timestamp: Cell<i64>,
    offset_of_max_timestamp: Cell<i64>,
    bytes_since_index_entry: Cell<u64>,
    /// Wall time of the first append (segment.ms rolls count from it).
    first_append_ms: Cell<Option<i64>>,
    /// File blocks reserved up to here (`preallocate_for`); `u64::MAX` once the file system
    /// refused (e.g. no fallocate support): no more attempts.
    allocated_end: Cell<u64>,
}

impl std::fmt::Debug for LogSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSegment")
            .field("base_offset", &self.base_offset)
            .field("size", &self.size.get())
            .field("next_offset", &self.next_offset.get())
            .finish()
    }
}

impl LogSegment {
    fn empty(base_offset: i64, path: PathBuf, file: BufferedFile, config: &LogConfig) -> Self {
        LogSegment {
            base_offset,
            path,
            file,
            size: Cell::new(0),
            next_offset: Cell::new(base_offset),
            written_size: Cell::new(0),
            written_next_offset: Cell::new(base_offset),
            offset_index: RefCell::new(OffsetIndex::new(config.offset_index_entries_max())),
            time_index: RefCell::new(TimeIndex::new(config.time_index_entries_max())),
            max_timestamp: Cell::new(NO_TIMESTAMP),
            offset_of_max_timestamp: Cell::new(base_offset),
            bytes_since_index_entry: Cell::new(0),
            first_append_ms: Cell::new(None),
            allocated_end: Cell::new(0),
        }
    }

    /// Reserves blocks past `end` (keeping the file size) before writes reach it. A refusal is
    /// not an error: the write itself reports a full disk.
    pub(crate) async fn preallocate_for(&self, end: u64) {
        if end + PREALLOCATE_BYTES / 2 <= self.allocated_end.get() {
            return;
        }
        let target = end.div_ceil(PREALLOCATE_BYTES) * PREALLOCATE_BYTES + PREALLOCATE_BYTES;
        match self.file.pre_allocate(target, true).await {
            Ok(()) => self.allocated_end.set(target),
            Err(e) => {
                log::debug!("{}: no preallocation: {e}", self.path.display());
                self.allocated_end.set(u64::MAX);
            }
        }
    }

    /// Frees the blocks reserved past the end (a sealed segment keeps only what it holds).
    pub(crate) async fn release_preallocation(&self) -> Result<(), StorageError> {
        let allocated = self.allocated_end.get();
        if allocated == 0 || allocated == u64::MAX {
            return Ok(());
        }
        assert_eq!(self.size.get(), self.written_size.get(), "writes in flight");
        self.allocated_end.set(0);
        self.file
            .truncate(self.written_size.get())
            .await
            .map_err(|e| io_err("truncate", &self.path, e))
    }

    /// Creates (or empties) the segment files for `base_offset`.
    pub async fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<Self, StorageError> {
        assert!(base_offset >= 0);
        let path = file_path(dir, base_offset, LOG_SUFFIX);
        let file = fileio::open_rw(&path, true).await?;
        file.truncate(0)
            .await
            .map_err(|e| io_err("truncate", &path, e))?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            fileio::remove_file(&file_path(dir, base_offset, suffix)).await?;
        }
        Ok(Self::empty(base_offset, path, file, config))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size.get()
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset.get()
    }
    pub fn written_size(&self) -> u64 {
        self.written_size.get()
    }
    pub fn written_next_offset(&self) -> i64 {
        self.written_next_offset.get()
    }
    pub fn is_empty(&self) -> bool {
        self.size.get() == 0
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.get()
    }
    pub fn first_append_ms(&self) -> Option<i64> {
        self.first_append_ms.get()
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn offset_index_len(&self) -> usize {
        self.offset_index.borrow().len()
    }
    pub fn index_entries(&self) -> Vec<(u32, u32)> {
        self.offset_index.borrow().entries().to_vec()
    }
    pub fn indexes_full(&self) -> bool {
        self.offset_index.borrow().is_full() || self.time_index.borrow().is_full()
    }

    fn relative(&self, offset: i64) -> u32 {
        let rel = offset - self.base_offset;
        assert!(
            (0..=i64::from(i32::MAX)).contains(&rel),
            "relative offset {rel}"
        );
        rel as u32
    }

    /// True if a batch ending at `last_offset` still fits the u32 relative offsets.
    pub fn fits_offset(&self, last_offset: i64) -> bool {
        last_offset - self.base_offset <= i64::from(i32::MAX)
    }

    /// Assigns the next position to a batch (already stamped) and maintains the indexes.
    /// Returns the file position. The write itself is the caller's.
    pub fn assign(&self, header: &BatchHeader, bytes: u64, now_ms: i64, config: &LogConfig) -> u64 {
        let position = self.size.get();
        assert!(header.base_offset >= self.next_offset.get());
        assert!(position + bytes <= SEGMENT_BYTES_MAX);
        if self.first_append_ms.get().is_none() {
            self.first_append_ms.set(Some(now_ms));
        }
        self.index_batch(header, position, bytes, config);
        self.size.set(position + bytes);
        self.next_offset.set(header.next_offset());
        position
    }

    /// Kafka's LogSegment.append index rule, shared by append and recovery.
    fn index_batch(&self, header: &BatchHeader, position: u64, bytes: u64, config: &LogConfig) {
        if header.max_timestamp > self.max_timestamp.get() {
            self.max_timestamp.set(header.max_timestamp);
            self.offset_of_max_timestamp.set(header.base_offset);
        }
        if self.bytes_since_index_entry.get() > u64::from(config.index_interval_bytes) {
            let mut offsets = self.offset_index.borrow_mut();
            if !offsets.is_full() {
                offsets.append(self.relative(header.base_offset), position as u32);
            }
            let mut times = self.time_index.borrow_mut();
            times.maybe_append(
                self.max_timestamp.get(),
                self.relative(self.offset_of_max_timestamp.get()),
            );
            self.bytes_since_index_entry.set(0);
        }
        self.bytes_since_index_entry
            .set(self.bytes_since_index_entry.get() + bytes);
    }

    /// Records that writes up to `end_position` / `next_offset` completed.
    pub fn mark_written(&self, end_position: u64, next_offset: i64) {
        assert!(end_position <= self.size.get() && end_position >= self.written_size.get());
        assert!(next_offset <= self.next_offset.get());
        self.written_size.set(end_position);
        self.written_next_offset.set(next_offset);
    }

    /// Final time index entry when the segment stops being active (Kafka does the same).
    pub fn on_become_inactive(&self) {
        if self.size.get() > 0 {
            let rel = self.relative(self.offset_of_max_timestamp.get());
            self.time_index
                .borrow_mut()
                .maybe_append(self.max_timestamp.get(), rel);
        }
    }

    /// Writes `.index` and `.timeindex` from memory and syncs them.
    pub async fn write_indexes(&self, dir: &Path) -> Result<(), StorageError> {
        self.write_indexes_at(|suffix| file_path(dir, self.base_offset, suffix))
            .await
    }

    /// Writes `.index.<extra>` and `.timeindex.<extra>` (the cleaner's files written aside).
    pub(crate) async fn write_indexes_aside(
        &self,
        dir: &Path,
        extra: &str,
    ) -> Result<(), StorageError> {
        self.write_indexes_at(|suffix| {
            file_path(dir, self.base_offset, &format!("{suffix}.{extra}"))
        })
        .await
    }

    /// Writes both indexes from memory, synced, at the paths `path` gives for their suffixes.
    async fn write_indexes_at(&self, path: impl Fn(&str) -> PathBuf) -> Result<(), StorageError> {
        let offsets = self.offset_index.borrow().encode();
        let times = self.time_index.borrow().encode();
        fileio::write_file_synced(&path(INDEX_SUFFIX), offsets).await?;
        fileio::write_file_synced(&path(TIME_INDEX_SUFFIX), times).await
    }

    /// Opens a sealed segment written aside at `file` (a cleaned segment) under the name it
    /// will have once swapped in; every batch is verified and the indexes are built.
    pub(crate) async fn open_aside(
        dir: &Path,
        base_offset: i64,
        file: &Path,
        config: &LogConfig,
    ) -> Result<Self, StorageError> {
        let opened = fileio::open_rw(file, false).await?;
        let file_size = opened
            .file_size()
            .await
            .map_err(|e| io_err("stat", file, e))?;
        let segment = Self::empty(
            base_offset,
            file_path(dir, base_offset, LOG_SUFFIX),
            opened,
            config,
        );
        if let Some(cut) = segment.rebuild(config, file_size, &mut |_| {}).await? {
            return Err(StorageError::Corrupt {
                path: file.to_path_buf(),
                position: cut.position,
                reason: format!("cleaned segment does not verify: {}", cut.reason),
            });
        }
        segment.on_become_inactive();
        Ok(segment)
    }

    pub async fn delete_files(&self, dir: &Path) -> Result<(), StorageError> {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            fileio::remove_file(&file_path(dir, self.base_offset, suffix)).await?;
        }
        Ok(())
    }

    /// Reads `len` bytes at `position` (must be within written data).
    pub async fn read_bytes(&self, position: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let bytes = fileio::read_at(&self.file, &self.path, position, len).await?;
        if bytes.len() != len {
            return Err(StorageError::Corrupt {
                path: self.path.clone(),
                position,
                reason: format!("short read: {} of {len} bytes", bytes.len()),
            });
        }
        Ok(bytes)
    }

    /// First batch whose last offset >= `offset`, among written batches. None if past the end.
    pub async fn find_batch(&self, offset: i64) -> Result<Option<ScannedBatch>, StorageError> {
        if offset >= self.written_next_offset.get() {
            return Ok(None);
        }
        let target = offset.max(self.base_offset);
        let (_, position) = self.offset_index.borrow().lookup(self.relative(target));
        let mut cursor = self.cursor(u64::from(position), self.written_size.get(), false);
        while let Some(batch) = cursor.next_valid().await? {
            if batch.header.last_offset() >= target {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    /// Position of the first batch whose last offset >= `offset`, or the written end.
    pub async fn position_of(&self, offset: i64) -> Result<u64, StorageError> {
        Ok(match self.find_batch(offset).await? {
            Some(batch) => batch.position,
            None => self.written_size.get(),
        })
    }

    /// Greatest batch boundary <= `limit`, walking from the boundary `from`.
    pub async fn boundary_at_or_before(&self, from: u64, limit: u64) -> Result<u64, StorageError> {
        let bound = self.written_size.get();
        if limit >= bound {
            return Ok(bound);
        }
        let (_, indexed) = self.offset_index.borrow().lookup_position(limit as u32);
        let start = from.max(u64::from(indexed));
        let mut cursor = self.cursor(start, bound, false);
        let mut boundary = start;
        while let Some(batch) = cursor.next_valid().await? {
            if batch.end() > limit {
                break;
            }
            boundary = batch.end();
        }
        Ok(boundary)
    }

    /// First written batch with max timestamp >= `timestamp`, starting from the time index hint.
    pub async fn find_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<ScannedBatch>, StorageError> {
        let hint = self.time_index.borrow().lookup_below(timestamp);
        let position = match hint {
            Some((_, rel)) => self.offset_index.borrow().lookup(rel).1,
            None => 0,
        };
        let mut cursor = self.cursor(u64::from(position), self.written_size.get(), false);
        while let Some(batch) = cursor.next_valid().await? {
            if batch.header.max_timestamp >= timestamp {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    pub(crate) fn cursor(&self, position: u64, end: u64, verify: bool) -> BatchCursor<'_> {
        BatchCursor {
            segment: self,
            position,
            end,
            verify,
            buffer: Vec::new(),
            buffer_at: 0,
            expected_offset: None,
        }
    }

    /// Opens an existing segment. `recover`: verify every batch (CRC, framing, offsets),
    /// truncate at the first bad one and rebuild the indexes. Otherwise load the index files,
    /// rebuilding them only if missing or damaged. `on_batch` sees every batch scanned in full.
    pub async fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        recover: bool,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<(Self, Option<Truncation>), StorageError> {
        let path = file_path(dir, base_offset, LOG_SUFFIX);
        let file = fileio::open_rw(&path, false).await?;
        let file_size = file
            .file_size()
            .await
            .map_err(|e| io_err("stat", &path, e))?;
        let segment = Self::empty(base_offset, path, file, config);
        if !recover {
            if let Some(()) = segment.load_indexes(dir, config, file_size).await? {
                match segment.load_tail(file_size).await {
                    Ok(()) => return Ok((segment, None)),
                    Err(StorageError::Corrupt { reason, .. }) => {
                        log::warn!("{}: {reason}, rebuilding indexes", segment.path.display());
                    }
                    Err(e) => return Err(e),
                }
            } else {
                log::warn!(
                    "{}: index missing or damaged, rebuilding",
                    segment.path.display()
                );
            }
        }
        let truncation = segment.rebuild(config, file_size, on_batch).await?;
        Ok((segment, truncation))
    }

    /// Loads both index files; Some(()) if sane.
    async fn load_indexes(
        &self,
        dir: &Path,
        config: &LogConfig,
        log_bytes: u64,
    ) -> Result<Option<()>, StorageError> {
        let bytes_max = u64::from(config.segment_index_bytes) * 2;
        let Some(offsets) =
            fileio::read_file(&file_path(dir, self.base_offset, INDEX_SUFFIX), bytes_max).await?
        else {
            return Ok(None);
        };
        let Some(times) = fileio::read_file(
            &file_path(dir, self.base_offset, TIME_INDEX_SUFFIX),
            bytes_max,
        )
        .await?
        else {
            return Ok(None);
        };
        let offsets =
            match OffsetIndex::decode(&offsets, config.offset_index_entries_max(), log_bytes) {
                Ok(index) => index,
                Err(damage) => {
                    log::warn!("{}: offset index: {}", self.path.display(), damage.0);
                    return Ok(None);
                }
            };
        let times =
            match TimeIndex::decode(&times, config.time_index_entries_max(), i32::MAX as u64) {
                Ok(index) => index,
                Err(damage) => {
                    log::warn!("{}: time index: {}", self.path.display(), damage.0);
                    return Ok(None);
                }
            };
        if log_bytes == 0 && !times.is_empty() {
            return Ok(None);
        }
        *self.offset_index.borrow_mut() = offsets;
        *self.time_index.borrow_mut() = times;
        Ok(Some(()))
    }

    /// After loading indexes of a clean segment: walk from the last index entry to the end to
    /// learn next offset, max timestamp and the index cursor. Any bad batch is corruption.
    async fn load_tail(&self, file_size: u64) -> Result<(), StorageError> {
        let (rel, position) = self.offset_index.borrow().last().unwrap_or((0, 0));
        if let Some((ts, ts_rel)) = self.time_index.borrow().last() {
            self.max_timestamp.set(ts);
            self.offset_of_max_timestamp
                .set(self.base_offset + i64::from(ts_rel));
        }
        let mut cursor = self.cursor(u64::from(position), file_size, false);
        let mut next = self.base_offset + i64::from(rel);
        let mut first = true;
        while let Some(batch) = cursor.next_batch().await? {
            let batch = batch.map_err(|bad| StorageError::Corrupt {
                path: self.path.clone(),
                position: bad.position,
                reason: bad.reason,
            })?;
            if first && position > 0 && batch.header.base_offset != next {
                return Err(StorageError::Corrupt {
                    path: self.path.clone(),
                    position: batch.position,
                    reason: "offset index disagrees with the log".into(),
                });
            }
            first = false;
            if batch.header.max_timestamp > self.max_timestamp.get() {
                self.max_timestamp.set(batch.header.max_timestamp);
                self.offset_of_max_timestamp.set(batch.header.base_offset);
            }
            next = batch.header.next_offset();
        }
        if let Some((_, ts_rel)) = self.time_index.borrow().last() {
            if self.base_offset + i64::from(ts_rel) >= next.max(self.base_offset + 1) {
                return Err(StorageError::Corrupt {
                    path: self.path.clone(),
                    position: 0,
                    reason: format!("time index entry at relative offset {ts_rel} past the end"),
                });
            }
        }
        self.size.set(file_size);
        self.next_offset.set(next);
        self.written_size.set(file_size);
        self.written_next_offset.set(next);
        self.bytes_since_index_entry
            .set(file_size - u64::from(position));
        Ok(())
    }

    /// Verifies every batch from the start, rebuilding indexes; cuts the file at the first bad
    /// batch. Returns what was cut, if anything.
    async fn rebuild(
        &self,
        config: &LogConfig,
        file_size: u64,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<Option<Truncation>, StorageError> {
        *self.offset_index.borrow_mut() = OffsetIndex::new(config.offset_index_entries_max());
        *self.time_index.borrow_mut() = TimeIndex::new(config.time_index_entries_max());
        self.max_timestamp.set(NO_TIMESTAMP);
        self.bytes_since_index_entry.set(0);
        let mut cursor = self.cursor(0, file_size, true);
        cursor.expected_offset = Some(self.base_offset);
        let mut valid_end = 0;
        let mut next = self.base_offset;
        let mut bad = None;
        while let Some(batch) = cursor.next_batch().await? {
            match batch {
                Ok(batch) => {
                    if !self.fits_offset(batch.header.last_offset()) {
                        bad = Some(Truncation {
                            position: batch.position,
                            bytes: file_size - batch.position,
                            reason: "relative offset overflow".into(),
                        });
                        break;
                    }
                    self.index_batch(&batch.header, batch.position, batch.bytes, config);
                    on_batch(&batch.header);
                    valid_end = batch.end();
                    next = batch.header.next_offset();
                }
                Err(invalid) => {
                    bad = Some(Truncation {
                        position: invalid.position,
                        bytes: file_size - invalid.position,
                        reason: invalid.reason,
                    });
                    break;
                }
            }
        }
        if let Some(cut) = &bad {
            assert_eq!(cut.position, valid_end);
            log::warn!(
                "{}: truncating {} bytes at position {}: {}",
                self.path.display(),
                cut.bytes,
                cut.position,
                cut.reason
            );
            self.truncate_file(valid_end).await?;
        }
        self.size.set(valid_end);
        self.next_offset.set(next);
        self.written_size.set(valid_end);
        self.written_next_offset.set(next);
        Ok(bad)
    }

    /// Cuts the file at `position` and makes the new size durable.
    async fn truncate_file(&self, position: u64) -> Result<(), StorageError> {
        if self.allocated_end.get() != u64::MAX {
            self.allocated_end.set(0);
        }
        self.file
            .truncate(position)
            .await
            .map_err(|e| io_err("truncate", &self.path, e))?;
        self.file
            .fdatasync()
            .await
            .map_err(|e| io_err("fdatasync", &self.path, e))
    }

    /// Cuts the segment at batch boundary `position` (its batch starting at `next_offset`).
    pub async fn truncate_to(&self, position: u64, next_offset: i64) -> Result<(), StorageError> {
        assert!(position <= self.written_size.get());
        assert_eq!(self.size.get(), self.written_size.get(), "writes in flight");
        self.truncate_file(position).await?;
        self.offset_index
            .borrow_mut()
            .truncate_to_position(position as u32);
        let rel = if next_offset > self.base_offset {
            self.relative(next_offset)
        } else {
            0
        };
        self.time_index.borrow_mut().truncate_to_offset(rel);
        self.max_timestamp.set(NO_TIMESTAMP);
        self.offset_of_max_timestamp.set(self.base_offset);
        self.load_tail(position).await?;
        assert_eq!(self.next_offset.get(), next_offset.max(self.base_offset));
        if position == 0 {
            self.first_append_ms.set(None);
        }
        Ok(())
    }
}

/// Bytes cut from the end of a segment by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub position: u64,
    pub bytes: u64,
    pub reason: String,
}

/// A batch that failed framing or CRC at `position`.
#[derive(Clone, Debug)]
pub struct InvalidBatch {
    pub position: u64,
    pub reason: String,
}

/// Walks batches of a segment from a batch boundary, reading in windows.
pub(crate) struct BatchCursor<'a> {
    segment: &'a LogSegment,
    position: u64,
    end: u64,
    verify: bool,
    buffer: Vec<u8>,
    buffer_at: u64,
    expected_offset: Option<i64>,
}

impl BatchCursor<'_> {
    /// Bytes [position, position+len) if buffered, reading a new window if not.
    async fn window(&mut self, position: u64, len: u64) -> Result<&[u8], StorageError> {
        let buffered_end = self.buffer_at + self.buffer.len() as u64;
        if position < self.buffer_at || position + len > buffered_end {
            let chunk = if self.verify {
                SCAN_CHUNK_BYTES
            } else {
                HEADER_WINDOW_BYTES
            } as u64;
            let want = len.max(chunk).min(self.end - position);
            debug_assert!(want >= len);
            self.buffer = fileio::read_at(
                &self.segment.file,
                &self.segment.path,
                position,
                want as usize,
            )
            .await?;
            self.buffer_at = position;
            if (self.buffer.len() as u64) < len {
                return Err(StorageError::Corrupt {
                    path: self.segment.path.clone(),
                    position,
                    reason: "file shorter than expected".into(),
                });
            }
        }
        let from = (position - self.buffer_at) as usize;
        Ok(&self.buffer[from..from + len as usize])
    }

    /// Next batch: Ok(None) at the end, Ok(Some(Err)) for a bad batch (cursor then stops).
    pub(crate) async fn next_batch(
        &mut self,
    ) -> Result<Option<Result<ScannedBatch, InvalidBatch>>, StorageError> {
        if self.position >= self.end {
            return Ok(None);
        }
        let position = self.position;
        let invalid = |reason: String| Ok(Some(Err(InvalidBatch { position, reason })));
        if self.end - position < HEADER_BYTES as u64 {
            self.position = self.end;
            return invalid(format!(
                "{} trailing bytes, no room for a header",
                self.end - position
            ));
        }
        let header = match BatchHeader::parse(self.window(position, HEADER_BYTES as u64).await?) {
            Ok(header) => header,
            Err(e) => {
                self.position = self.end;
                return invalid(e.to_string());
            }
        };
        let bytes = match header.batch_bytes() {
            Some(bytes) if (bytes as u64) <= BATCH_BYTES_MAX => bytes as u64,
            _ => {
                self.position = self.end;
                return invalid(format!("bad batch length {}", header.length));
            }
        };
        if position + bytes > self.end {
            self.position = self.end;
            return invalid(format!("batch of {bytes} bytes cut off by end of file"));
        }
        if let Some(expected) = self.expected_offset {
            if header.base_offset < expected || header.record_count < 0 {
                self.position = self.end;
                return invalid(format!(
                    "base offset {} below expected {expected}",
                    header.base_offset
                ));
            }
        }
        if self.verify {
            let data = self.window(position, bytes).await?;
            if let Err(e) = batch::verify(data) {
                self.position = self.end;
                return invalid(e.to_string());
            }
        }
        if self.expected_offset.is_some() {
            self.expected_offset = Some(header.next_offset());
        }
        self.position = position + bytes;
        debug_assert!(header.last_offset() >= header.base_offset);
        Ok(Some(Ok(ScannedBatch {
            position,
            header,
            bytes,
        })))
    }

    /// Next batch with its bytes (a verifying cursor reads 1 MiB windows), bad = corruption.
    pub(crate) async fn next_with_bytes(
        &mut self,
    ) -> Result<Option<(ScannedBatch, Vec<u8>)>, StorageError> {
        let Some(batch) = self.next_valid().await? else {
            return Ok(None);
        };
        let bytes = self.window(batch.position, batch.bytes).await?.to_vec();
        Ok(Some((batch, bytes)))
    }

    /// Next batch, treating a bad one as corruption (for data already recovered).
    pub(crate) async fn next_valid(&mut self) -> Result<Option<ScannedBatch>, StorageError> {
        match self.next_batch().await? {
            None => Ok(None),
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(bad)) => Err(StorageError::Corrupt {
                path: self.segment.path.clone(),
                position: bad.position,
                reason: bad.reason,
            }),
        }
    }
}
