//! Multi-step file work under the log's locks: truncation, retention, rolls, producer snapshots and their reload.

use super::*;

impl LogInner {
    pub(super) fn size_bytes(&self) -> u64 {
        self.segments.borrow().values().map(|s| s.size()).sum()
    }

    pub(super) async fn truncate_locked(&self, offset: i64) -> Result<(), StorageError> {
        let inner = self;
        inner.generation.set(inner.generation.get() + 1);
        inner.cleaner_end.set(inner.cleaner_end.get().min(offset));
        let dir = inner.dir.clone();
        let new_end;
        if offset <= inner.log_start_offset.get() {
            let new_start = offset.max(0);
            // Newest first: a crash part-way leaves a shorter log, never one with a hole.
            for segment in inner.segments_vec().into_iter().rev() {
                if segment.base_offset() != new_start {
                    segment.delete_files(&dir).await?;
                }
            }
            // Recreates (empties) the file if a segment already starts at new_start.
            let seg = Rc::new(LogSegment::create(&dir, new_start, &inner.config.get()).await?);
            {
                let mut segments = inner.segments.borrow_mut();
                segments.clear();
                segments.insert(new_start, seg);
            }
            inner.log_start_offset.set(new_start);
            new_end = new_start;
        } else {
            let doomed: Vec<_> = {
                let mut segments = inner.segments.borrow_mut();
                let keys: Vec<i64> = segments.range(offset..).map(|(&k, _)| k).collect();
                keys.iter().filter_map(|k| segments.remove(k)).collect()
            };
            for segment in doomed.into_iter().rev() {
                segment.delete_files(&dir).await?;
            }
            let active = inner.active();
            if let Some(batch) = active.find_batch(offset).await? {
                let cut = batch.header.base_offset;
                active.truncate_to(batch.position, cut).await?;
            }
            new_end = active.next_offset();
            active.write_indexes(&dir).await?;
        }
        fileio::sync_dir(&dir).await?;
        assert!(
            inner.write_queue.borrow().is_empty(),
            "writes drained before truncation"
        );
        inner.log_end_offset.set(new_end);
        inner.written_end.set(new_end);
        inner.synced_end.set(new_end);
        if inner.epochs.borrow_mut().truncate_from_end(new_end) {
            inner.persist_epochs().await?;
        }
        inner.load_producer_state().await?;
        inner.notify.notify_all();
        Ok(())
    }

    /// Caller holds the lock (via `detached`).
    pub(super) async fn enforce_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let inner = self;
        let config = inner.config.get();
        if !config.cleanup_delete {
            return Ok(0);
        }
        let mut total: i64 = inner.size_bytes() as i64;
        let mut doomed = Vec::new();
        loop {
            let (first, next_base) = {
                let segments = inner.segments.borrow();
                let mut it = segments.values();
                match (it.next(), it.next()) {
                    (Some(first), Some(next)) => (first.clone(), next.base_offset()),
                    _ => break,
                }
            };
            let by_time = config.retention_ms >= 0
                && first.max_timestamp() >= 0
                && now_ms.saturating_sub(first.max_timestamp()) > config.retention_ms;
            let by_size = config.retention_bytes >= 0
                && total - first.size() as i64 >= config.retention_bytes;
            if !(by_time || by_size) || next_base > inner.high_watermark() {
                break;
            }
            inner.segments.borrow_mut().remove(&first.base_offset());
            inner.log_start_offset.set(next_base);
            total -= first.size() as i64;
            doomed.push(first);
        }
        let start = inner.log_start_offset.get();
        if !doomed.is_empty() && inner.epochs.borrow_mut().truncate_from_start(start) {
            inner.persist_epochs().await?;
        }
        // Readers holding slices keep the unlinked files open.
        for segment in &doomed {
            segment.delete_files(&inner.dir).await?;
        }
        Ok(doomed.len())
    }

    /// The log's FIFO lock (appends keep call order). Also waits out detached work started
    /// by a holder whose future was dropped.
    pub(super) async fn lock(&self) -> Result<shoal_sync::FifoGuard<'_>, StorageError> {
        let guard = self.lock.lock().await.map_err(|_| StorageError::Closed {
            path: self.dir.clone(),
        })?;
        self.wait_until(|l| !l.detached_running.get()).await?;
        Ok(guard)
    }

    /// The maintenance lock (see `LogInner::maintenance`); take it before `lock`.
    pub(super) async fn maintenance_lock(&self) -> Result<shoal_sync::FifoGuard<'_>, StorageError> {
        self.maintenance
            .lock()
            .await
            .map_err(|_| StorageError::Closed {
                path: self.dir.clone(),
            })
    }

    pub(super) async fn persist_epochs(&self) -> Result<(), StorageError> {
        let bytes = self.epochs.borrow().encode();
        fileio::write_file_atomic(&self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE), bytes).await
    }

    pub(super) async fn take_snapshot(&self, offset: i64) -> Result<(), StorageError> {
        let bytes = self.producers.borrow().encode();
        fileio::write_file_atomic(&snapshot_path(&self.dir, offset), bytes).await?;
        let mut offsets = list_snapshots(&self.dir)?;
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        for old in offsets.into_iter().skip(SNAPSHOTS_MAX) {
            fileio::remove_file(&snapshot_path(&self.dir, old)).await?;
        }
        Ok(())
    }

    /// Rolls to a new active segment at the log end. Caller holds the lock.
    pub(super) async fn roll(&self) -> Result<(), StorageError> {
        let end = self.log_end_offset.get();
        self.wait_written(end).await?;
        let old = self.active();
        old.file
            .fdatasync()
            .await
            .map_err(|e| fileio::io_err("fdatasync", old.path(), e))?;
        if end > self.synced_end.get() {
            // Only this segment can hold unsynced data: earlier ones were synced when rolled.
            self.synced_end.set(end);
            self.notify.notify_all();
        }
        old.on_become_inactive();
        old.release_preallocation().await?;
        old.write_indexes(&self.dir).await?;
        let new = Rc::new(LogSegment::create(&self.dir, end, &self.config.get()).await?);
        fileio::sync_dir(&self.dir).await?;
        self.segments.borrow_mut().insert(end, new);
        self.take_snapshot(end).await?;
        self.bump(|s| s.rolls += 1);
        Ok(())
    }

    pub(super) fn should_roll(
        &self,
        active: &LogSegment,
        bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if active.is_empty() {
            return false;
        }
        active.size() + bytes > self.config.get().segment_bytes
            || active.indexes_full()
            || !active.fits_offset(last_offset)
            || active
                .first_append_ms()
                .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.get().segment_ms as i64)
    }

    /// Replays producer state from the newest usable snapshot <= log end.
    pub(super) async fn load_producer_state(&self) -> Result<u64, StorageError> {
        let end = self.log_end_offset.get();
        let mut offsets = list_snapshots(&self.dir)?;
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        let mut state = ProducerStateManager::new();
        let mut from = self.log_start_offset.get();
        for offset in offsets {
            let path = snapshot_path(&self.dir, offset);
            if offset > end {
                fileio::remove_file(&path).await?;
                continue;
            }
            match fileio::read_file(&path, METADATA_FILE_BYTES_MAX).await? {
                Some(bytes) => match ProducerStateManager::decode(&bytes) {
                    Ok(loaded) => {
                        state = loaded;
                        from = offset;
                        break;
                    }
                    Err(e) => {
                        log::warn!("{}: {e}, ignoring", path.display());
                        fileio::remove_file(&path).await?;
                    }
                },
                None => continue,
            }
        }
        let mut replayed = 0;
        for segment in self.segments_vec() {
            if segment.next_offset() <= from {
                continue;
            }
            let mut cursor = segment.cursor(0, segment.written_size(), false);
            if from > segment.base_offset() {
                if let Some(batch) = segment.find_batch(from).await? {
                    cursor = segment.cursor(batch.position, segment.written_size(), false);
                }
            }
            while let Some(batch) = cursor.next_valid().await? {
                if batch.header.base_offset >= from {
                    state.record(&batch.header);
                    replayed += 1;
                }
            }
        }
        *self.producers.borrow_mut() = state;
        Ok(replayed)
    }
}
