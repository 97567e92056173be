//! Log compaction on a live log: one cleaning pass and the crash-safe swap.
//!
//! A pass (`PartitionLog::clean`) works on sealed segments below an upper offset (the
//! replicated high watermark), never the active one:
//! 1. pick the cleanable prefix (sealed, below `upper`, older than `min.compaction.lag.ms`) and
//!    decide from the dirty ratio, `max.compaction.lag.ms` or a due tombstone horizon;
//! 2. map key → latest offset over the dirty segments (bounded, `compaction::OffsetMap`);
//! 3. group consecutive segments (at most `segment.bytes`), and per group stream every batch
//!    through `compaction::clean_batch` into `<base>.log.cleaned`, fdatasync it, build and sync
//!    its indexes aside (`.index.cleaned`, `.timeindex.cleaned`);
//! 4. swap under the maintenance lock, not the append lock (detached): see [`SwapManifest`]
//!    for the protocol recovery finishes. Offsets never change, so replicas that clean independently stay consistent.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::*;
use crate::compaction::{self, CleanContext, CleanStats, Cleaned, OffsetMap};
use crate::segment::{INDEX_SUFFIX, TIME_INDEX_SUFFIX};

/// Suffix added to a segment's files while they are written aside.
pub const CLEANED_SUFFIX: &str = "cleaned";
/// The swap manifest: its presence means "the cleaned group replaces these segments".
pub const CLEAN_SWAP_FILE: &str = "cleaner-swap";
const SWAP_MAGIC: &str = "shoal-cleaner-swap v1";
/// Bytes of cleaned output buffered before one write.
const CLEAN_WRITE_BYTES_MAX: usize = 1 << 20;
/// The cleaner's longest run between yields to the shard's other task queues.
const CLEANER_SLICE_US_MAX: u64 = 500;
/// Segments of one swap group.
pub const CLEAN_GROUP_SEGMENTS_MAX: usize = 1024;
/// Env knob for the crash tests: `SHOAL_CLEANER_CRASH_AT=<step>` aborts the process at that
/// step of the swap (read once). Steps: `written`, `manifest`, `deleted`, `renamed`.
pub const CRASH_AT_ENV: &str = "SHOAL_CLEANER_CRASH_AT";

fn crash_point(step: &'static str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var(CRASH_AT_ENV).ok());
    if at.as_deref() == Some(step) {
        log::error!("{CRASH_AT_ENV}={step}: aborting (crash test)");
        std::process::abort();
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_kept: u64,
    pub records_dropped: u64,
    pub tombstones_dropped: u64,
}

/// Paces the cleaner's reads and writes to `bytes_per_second_max` (sleeps, so produce on the
/// same shard keeps the CPU and the disk). `u64::MAX` = unpaced.
#[derive(Debug)]
pub struct IoThrottle {
    bytes_per_second_max: u64,
    started: Instant,
    bytes: Cell<u64>,
    slice_started: Cell<Instant>,
}

impl IoThrottle {
    pub fn new(bytes_per_second_max: u64) -> Self {
        assert!(bytes_per_second_max > 0);
        IoThrottle {
            bytes_per_second_max,
            started: Instant::now(),
            bytes: Cell::new(0),
            slice_started: Cell::new(Instant::now()),
        }
    }

    /// Counts `bytes` and sleeps while ahead of the budget. Every `CLEANER_SLICE_US_MAX` of
    /// running it yields its task queue, so produce on the shard waits at most one slice
    /// (glommio would preempt only after its 100 ms timer).
    pub async fn spend(&self, bytes: u64) {
        self.bytes.set(self.bytes.get().saturating_add(bytes));
        if self.slice_started.get().elapsed() >= Duration::from_micros(CLEANER_SLICE_US_MAX) {
            glommio::executor().yield_task_queue_now().await;
            self.slice_started.set(Instant::now());
        }
        if self.bytes_per_second_max == u64::MAX {
            return;
        }
        let due =
            Duration::from_secs_f64(self.bytes.get() as f64 / self.bytes_per_second_max as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            glommio::timer::sleep(due - elapsed).await;
        }
    }
}

/// The commit record of a swap, written atomically (tmp, fdatasync, rename, directory fsync)
/// once the cleaned files are durable. Protocol:
/// 1. `<new>.{log,index,timeindex}.cleaned` written and fdatasynced;
/// 2. `cleaner-swap` written atomically: from here the new set wins;
/// 3. the old segments' files are deleted;
/// 4. `.index.cleaned`, `.timeindex.cleaned`, then `.log.cleaned` renamed to their final
///    names; directory fsync;
/// 5. `cleaner-swap` removed; directory fsync.
///
/// Recovery: with a manifest, if `<new>.log.cleaned` still exists steps 3-4 are redone (step 4
/// has not renamed the log yet, so step 3 may not be complete), else only leftover index
/// renames; then step 5. Without a manifest every `*.cleaned` file is deleted (the old set is
/// whole). So the log is the old set or the new one, never a mix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapManifest {
    pub new_base: i64,
    pub old_bases: Vec<i64>,
}

impl SwapManifest {
    fn encode(&self) -> Vec<u8> {
        let old: Vec<String> = self.old_bases.iter().map(i64::to_string).collect();
        format!(
            "{SWAP_MAGIC}\nnew {}\nold {}\n",
            self.new_base,
            old.join(" ")
        )
        .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<SwapManifest> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != SWAP_MAGIC {
            return None;
        }
        let new_base = lines.next()?.strip_prefix("new ")?.parse().ok()?;
        let old_bases = lines
            .next()?
            .strip_prefix("old ")?
            .split(' ')
            .map(|b| b.parse().ok())
            .collect::<Option<Vec<i64>>>()?;
        (!old_bases.is_empty() && old_bases.contains(&new_base)).then_some(SwapManifest {
            new_base,
            old_bases,
        })
    }
}

fn aside_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    segment::file_path(dir, base, &format!("{suffix}.{CLEANED_SUFFIX}"))
}

async fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    glommio::io::rename(from, to)
        .await
        .map_err(|e| fileio::io_err("rename", to, e))
}

/// Steps 3-5 of the swap; also what recovery runs for a manifest it finds.
async fn finish_swap(dir: &Path, manifest: &SwapManifest) -> Result<(), StorageError> {
    let new = manifest.new_base;
    let log_aside = aside_path(dir, new, LOG_SUFFIX);
    if log_aside.exists() {
        for &old in &manifest.old_bases {
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                fileio::remove_file(&segment::file_path(dir, old, suffix)).await?;
            }
        }
        crash_point("deleted");
    }
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
        let aside = aside_path(dir, new, suffix);
        if aside.exists() {
            rename(&aside, &segment::file_path(dir, new, suffix)).await?;
        }
    }
    fileio::sync_dir(dir).await?;
    crash_point("renamed");
    fileio::remove_file(&dir.join(CLEAN_SWAP_FILE)).await?;
    fileio::sync_dir(dir).await
}

/// On open, before segments are listed: finish a committed swap, drop an uncommitted one.
pub(super) async fn recover_swap(dir: &Path) -> Result<(), StorageError> {
    let path = dir.join(CLEAN_SWAP_FILE);
    if let Some(bytes) = fileio::read_file(&path, METADATA_FILE_BYTES_MAX).await? {
        let manifest = SwapManifest::decode(&bytes).ok_or_else(|| StorageError::Corrupt {
            path: path.clone(),
            position: 0,
            reason: "unreadable cleaner swap manifest".into(),
        })?;
        log::warn!(
            "{}: finishing an interrupted cleaner swap of segments {:?}",
            dir.display(),
            manifest.old_bases
        );
        finish_swap(dir, &manifest).await?;
    }
    let suffix = format!(".{CLEANED_SUFFIX}");
    let mut strays = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| fileio::io_err("read dir", dir, e))? {
        let entry = entry.map_err(|e| fileio::io_err("read dir", dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(&suffix))
        {
            strays.push(entry.path());
        }
    }
    for stray in strays {
        log::warn!("{}: dropping uncommitted cleaner output", stray.display());
        fileio::remove_file(&stray).await?;
    }
    Ok(())
}

/// Consecutive sealed segments cleaned into one.
struct Group {
    segments: Vec<Rc<LogSegment>>,
}

impl PartitionLog {
    /// One cleaning pass if one is due (see module docs); only below `upper_offset`.
    /// `None` when nothing was due.
    pub async fn clean(
        &self,
        now_ms: i64,
        upper_offset: i64,
        throttle: &IoThrottle,
    ) -> Result<Option<CleanReport>, StorageError> {
        let inner = &self.inner;
        inner.check_usable()?;
        let config = inner.config.get();
        if !config.cleanup_compact {
            return Ok(None);
        }
        let upper = upper_offset.min(inner.high_watermark());
        let cleanable = inner.cleanable_segments(now_ms, upper);
        let first_dirty = inner.cleaner_end.get();
        let dirty: Vec<_> = cleanable
            .iter()
            .filter(|s| s.next_offset() > first_dirty)
            .cloned()
            .collect();
        if !inner.clean_due(&cleanable, &dirty, now_ms) {
            return Ok(None);
        }
        let generation = inner.generation.get();
        let mut map = OffsetMap::new();
        let map_end = match dirty.is_empty() {
            // Only a tombstone horizon is due: clean what is clean with an empty map.
            true => cleanable.last().map(|s| s.next_offset()),
            false => map_dirty(&dirty, &mut map, throttle).await?,
        };
        let Some(map_end) = map_end else {
            log::warn!(
                "{}: a segment has more keys than the cleaner's offset map holds",
                inner.dir.display()
            );
            return Ok(None);
        };
        let segments: Vec<_> = cleanable
            .into_iter()
            .filter(|s| s.next_offset() <= map_end)
            .collect();
        let producer_batches = inner.producers.borrow().remembered_batches();
        let mut report = CleanReport {
            segments_before: segments.len(),
            bytes_before: segments.iter().map(|s| s.size()).sum(),
            ..CleanReport::default()
        };
        let mut stats = CleanStats::new();
        for group in groups(segments, &config) {
            let ctx = CleanContext {
                map: &map,
                now_ms,
                delete_retention_ms: config.delete_retention_ms,
                producer_batches: &producer_batches,
            };
            let Some(cleaned) = self.clean_group(&group, &ctx, &mut stats, throttle).await? else {
                return Ok(None);
            };
            report.segments_after += 1;
            report.bytes_after += cleaned.size();
            if !self.swap(group, cleaned, generation).await? {
                return Ok(None);
            }
        }
        inner.cleaner_end.set(first_dirty.max(map_end));
        inner.tombstone_horizon_ms.set(stats.horizon_min_ms);
        report.records_kept = stats.records_kept;
        report.records_dropped = stats.records_dropped;
        report.tombstones_dropped = stats.tombstones_dropped;
        Ok(Some(report))
    }

    /// Writes the group's cleaned segment aside and opens it; None if the log changed.
    async fn clean_group(
        &self,
        group: &Group,
        ctx: &CleanContext<'_>,
        stats: &mut CleanStats,
        throttle: &IoThrottle,
    ) -> Result<Option<LogSegment>, StorageError> {
        let dir = &self.inner.dir;
        let base = group.segments[0].base_offset();
        let path = aside_path(dir, base, LOG_SUFFIX);
        let file = fileio::open_rw(&path, true).await?;
        file.truncate(0)
            .await
            .map_err(|e| fileio::io_err("truncate", &path, e))?;
        let mut out = Vec::with_capacity(CLEAN_WRITE_BYTES_MAX);
        let mut position = 0u64;
        for segment in &group.segments {
            let mut cursor = segment.cursor(0, segment.written_size(), true);
            while let Some((scanned, bytes)) = cursor.next_with_bytes().await? {
                throttle.spend(scanned.bytes).await;
                let cleaned = compaction::clean_batch(&bytes, ctx, stats).map_err(|e| {
                    StorageError::Corrupt {
                        path: segment.path().to_path_buf(),
                        position: scanned.position,
                        reason: format!("cleaner: {e}"),
                    }
                })?;
                match cleaned {
                    Cleaned::Unchanged => out.extend_from_slice(&bytes),
                    Cleaned::Rewritten(new) => out.extend_from_slice(&new),
                    Cleaned::Dropped => {}
                }
                if out.len() >= CLEAN_WRITE_BYTES_MAX {
                    let chunk =
                        std::mem::replace(&mut out, Vec::with_capacity(CLEAN_WRITE_BYTES_MAX));
                    throttle.spend(chunk.len() as u64).await;
                    position = write_chunk(&file, &path, chunk, position).await?;
                }
            }
        }
        if !out.is_empty() {
            throttle.spend(out.len() as u64).await;
            write_chunk(&file, &path, out, position).await?;
        }
        file.fdatasync()
            .await
            .map_err(|e| fileio::io_err("fdatasync", &path, e))?;
        let _ = file.close().await;
        let config = self.inner.config.get();
        let cleaned = LogSegment::open_aside(dir, base, &path, &config).await?;
        cleaned.write_indexes_aside(dir, CLEANED_SUFFIX).await?;
        crash_point("written");
        Ok(Some(cleaned))
    }

    /// Swaps `cleaned` in for `group` under the maintenance lock (appends go on: they touch only
    /// the active segment, which is never in a group), unless retention or truncation changed
    /// those segments meanwhile (then the output is dropped). True if swapped.
    async fn swap(
        &self,
        group: Group,
        cleaned: LogSegment,
        generation: u64,
    ) -> Result<bool, StorageError> {
        self.inner
            .maintenance_detached(move |log| async move {
                let dir = log.dir.clone();
                let base = cleaned.base_offset();
                let unchanged = log.generation.get() == generation
                    && group.segments.iter().all(|s| {
                        log.segments
                            .borrow()
                            .get(&s.base_offset())
                            .is_some_and(|now| Rc::ptr_eq(now, s))
                    });
                if !unchanged {
                    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                        fileio::remove_file(&aside_path(&dir, base, suffix)).await?;
                    }
                    return Ok(false);
                }
                let manifest = SwapManifest {
                    new_base: base,
                    old_bases: group.segments.iter().map(|s| s.base_offset()).collect(),
                };
                let result = async {
                    fileio::write_file_atomic(&dir.join(CLEAN_SWAP_FILE), manifest.encode())
                        .await?;
                    crash_point("manifest");
                    finish_swap(&dir, &manifest).await
                }
                .await;
                if let Err(e) = result {
                    // The files are between two sets: only recovery (on open) may decide.
                    log.fail(&e);
                    return Err(e);
                }
                let mut segments = log.segments.borrow_mut();
                for old in &manifest.old_bases {
                    segments.remove(old);
                }
                segments.insert(base, Rc::new(cleaned));
                Ok(true)
            })
            .await
    }
}

async fn write_chunk(
    file: &glommio::io::BufferedFile,
    path: &Path,
    chunk: Vec<u8>,
    position: u64,
) -> Result<u64, StorageError> {
    let len = chunk.len() as u64;
    fileio::write_all_at(file, path, chunk, position).await?;
    Ok(position + len)
}

/// Maps the dirty segments in order; returns the end of the last segment mapped whole
/// (None if not even the first fits).
async fn map_dirty(
    dirty: &[Rc<LogSegment>],
    map: &mut OffsetMap,
    throttle: &IoThrottle,
) -> Result<Option<i64>, StorageError> {
    let mut end = None;
    for segment in dirty {
        let mut cursor = segment.cursor(0, segment.written_size(), true);
        while let Some((scanned, bytes)) = cursor.next_with_bytes().await? {
            throttle.spend(scanned.bytes).await;
            let put = map.put_batch(&bytes).map_err(|e| StorageError::Corrupt {
                path: segment.path().to_path_buf(),
                position: scanned.position,
                reason: format!("cleaner: {e}"),
            })?;
            if put.is_err() {
                return Ok(end);
            }
        }
        end = Some(segment.next_offset());
    }
    Ok(end)
}

/// Consecutive segments whose sum fits one segment (bytes, u32 relative offsets, index).
fn groups(segments: Vec<Rc<LogSegment>>, config: &LogConfig) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let mut bytes = 0u64;
    let mut entries = 0usize;
    for segment in segments {
        let fits = out.last().is_some_and(|g| {
            g.segments.len() < CLEAN_GROUP_SEGMENTS_MAX
                && bytes + segment.size() <= config.segment_bytes
                && entries + segment.offset_index_len() < config.offset_index_entries_max() / 2
                && segment.next_offset() - g.segments[0].base_offset() <= i64::from(i32::MAX)
        });
        if fits {
            out.last_mut().expect("fits").segments.push(segment.clone());
        } else {
            bytes = 0;
            entries = 0;
            out.push(Group {
                segments: vec![segment.clone()],
            });
        }
        bytes += segment.size();
        entries += segment.offset_index_len() + 1;
    }
    out
}

impl LogInner {
    /// Sealed segments below `upper` older than min.compaction.lag.ms: a prefix of the log.
    fn cleanable_segments(&self, now_ms: i64, upper: i64) -> Vec<Rc<LogSegment>> {
        let config = self.config.get();
        let mut all = self.segments_vec();
        all.pop(); // the active segment is never cleaned
        all.into_iter()
            .take_while(|s| {
                s.next_offset() <= upper
                    && now_ms.saturating_sub(s.max_timestamp()) >= config.min_compaction_lag_ms
            })
            .collect()
    }

    /// Dirty ratio >= min.cleanable.dirty.ratio, a dirty segment older than
    /// max.compaction.lag.ms, or a kept tombstone's horizon passed.
    fn clean_due(
        &self,
        cleanable: &[Rc<LogSegment>],
        dirty: &[Rc<LogSegment>],
        now_ms: i64,
    ) -> bool {
        let config = self.config.get();
        if now_ms >= self.tombstone_horizon_ms.get() && !cleanable.is_empty() {
            return true;
        }
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size()).sum();
        if dirty_bytes == 0 {
            return false;
        }
        let total: u64 = cleanable.iter().map(|s| s.size()).sum();
        let overdue = dirty.iter().any(|s| {
            s.max_timestamp() >= 0
                && now_ms.saturating_sub(s.max_timestamp()) >= config.max_compaction_lag_ms
        });
        overdue
            || dirty_bytes * 1000 >= total * u64::from(config.min_cleanable_dirty_ratio_permille)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_refuses_garbage() {
        let m = SwapManifest {
            new_base: 10,
            old_bases: vec![10, 20, 35],
        };
        assert_eq!(SwapManifest::decode(&m.encode()), Some(m));
        assert_eq!(
            SwapManifest::decode(b"shoal-cleaner-swap v1\nnew 1\nold 2\n"),
            None
        );
        assert_eq!(SwapManifest::decode(b"nonsense"), None);
    }
}
