//! Opening a log: recovery after an unclean shutdown, index loading, producer state.

use super::*;

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering after an unclean shutdown.
    pub async fn open(dir: PathBuf, config: LogConfig) -> Result<Rc<PartitionLog>, StorageError> {
        Ok(Self::open_with_report(dir, config).await?.0)
    }

    pub async fn open_with_report(
        dir: PathBuf,
        config: LogConfig,
    ) -> Result<(Rc<PartitionLog>, RecoveryReport), StorageError> {
        config.validate()?;
        fileio::create_dir_durable(&dir).await?;
        let clean_marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = clean_marker.exists();
        let mut report = RecoveryReport {
            clean_shutdown: clean,
            ..RecoveryReport::default()
        };

        // An interrupted cleaning: the old segment set or the new one, decided before listing.
        clean::recover_swap(&dir).await?;
        let mut bases = Vec::new();
        let mut strays = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| fileio::io_err("read dir", &dir, e))? {
            let entry = entry.map_err(|e| fileio::io_err("read dir", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                strays.push(entry.path());
                continue;
            }
            if let Some((base, LOG_SUFFIX)) = segment::parse_file_name(name) {
                bases.push(base);
            }
        }
        for stray in strays {
            fileio::remove_file(&stray).await?;
        }
        bases.sort_unstable();

        let mut epochs = match fileio::read_file(
            &dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
            METADATA_FILE_BYTES_MAX,
        )
        .await?
        {
            Some(bytes) => LeaderEpochCache::decode(&bytes).unwrap_or_else(|e| {
                log::warn!(
                    "{}: leader-epoch-checkpoint: {e}, rebuilding",
                    dir.display()
                );
                LeaderEpochCache::default()
            }),
            None => LeaderEpochCache::default(),
        };
        let epochs_before = epochs.clone();

        let mut segments = BTreeMap::new();
        let mut prev_next: Option<i64> = None;
        for (i, &base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let recover = is_last && !clean;
            let mut on_batch = |h: &BatchHeader| {
                epochs.assign(h.partition_leader_epoch, h.base_offset);
            };
            let (seg, cut) = LogSegment::open(&dir, base, &config, recover, &mut on_batch).await?;
            if let Some(cut) = cut {
                if !is_last {
                    return Err(StorageError::Corrupt {
                        path: seg.path().to_path_buf(),
                        position: cut.position,
                        reason: format!("sealed segment damaged: {}", cut.reason),
                    });
                }
                report.truncated_bytes += cut.bytes;
            }
            if let Some(prev) = prev_next {
                if base > prev {
                    // Expected after compaction (offsets removed at a segment's end).
                    log::debug!(
                        "{}: offsets {prev}..{base} missing before segment",
                        dir.display()
                    );
                }
                if base < prev {
                    return Err(StorageError::Corrupt {
                        path: seg.path().to_path_buf(),
                        position: 0,
                        reason: format!("segment base {base} overlaps previous end {prev}"),
                    });
                }
            }
            prev_next = Some(seg.next_offset());
            segments.insert(base, Rc::new(seg));
        }
        if segments.is_empty() {
            let seg = LogSegment::create(&dir, 0, &config).await?;
            fileio::sync_dir(&dir).await?;
            segments.insert(0, Rc::new(seg));
        }
        report.segments = segments.len();
        let log_start = *segments.keys().next().expect("one segment");
        let active = segments.values().next_back().expect("one segment").clone();
        let log_end = active.next_offset();
        // Whatever survived in the page cache is made durable before anything is served.
        active
            .file
            .fdatasync()
            .await
            .map_err(|e| fileio::io_err("fdatasync", active.path(), e))?;
        epochs.truncate_from_end(log_end);

        let inner = Rc::new(LogInner {
            dir: dir.clone(),
            config: Cell::new(config),
            timings: RefCell::new(Rc::default()),
            segments: RefCell::new(segments),
            log_start_offset: Cell::new(log_start),
            log_end_offset: Cell::new(log_end),
            written_end: Cell::new(log_end),
            synced_end: Cell::new(log_end),
            write_queue: RefCell::new(std::collections::VecDeque::new()),
            writer_running: Cell::new(false),
            queued_write_bytes: Cell::new(0),
            flusher_running: Cell::new(false),
            unflushed_messages: Cell::new(0),
            last_flush_ms: Cell::new(None),
            producers: RefCell::new(ProducerStateManager::new()),
            epochs: RefCell::new(epochs),
            lock: shoal_sync::FifoLock::new(),
            maintenance: shoal_sync::FifoLock::new(),
            detached_running: Cell::new(false),
            failed: RefCell::new(None),
            closed: Cell::new(false),
            notify: Notify::default(),
            stats: Cell::new(LogStats::default()),
            cleaner_end: Cell::new(i64::MIN),
            tombstone_horizon_ms: Cell::new(i64::MAX),
            generation: Cell::new(0),
        });
        if *inner.epochs.borrow() != epochs_before {
            inner.persist_epochs().await?;
        }
        report.producer_batches_replayed = inner.load_producer_state().await?;
        if clean {
            fileio::remove_file(&clean_marker).await?;
            fileio::sync_dir(&dir).await?;
        }
        Ok((Rc::new(PartitionLog { inner }), report))
    }
}
