//! The write and group-commit machinery: queued writes, the writer task, the flusher and its waiters.

use super::*;

impl LogInner {
    pub(super) fn check_failed(&self) -> Result<(), StorageError> {
        match &*self.failed.borrow() {
            Some(reason) => Err(StorageError::LogFailed {
                path: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn check_usable(&self) -> Result<(), StorageError> {
        self.check_failed()?;
        if self.closed.get() {
            return Err(StorageError::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    pub(super) fn fail(&self, error: &StorageError) {
        log::error!("{}: taking log offline: {error}", self.dir.display());
        let mut failed = self.failed.borrow_mut();
        if failed.is_none() {
            *failed = Some(error.to_string());
        }
        drop(failed);
        self.notify.notify_all();
    }

    pub(super) fn active(&self) -> Rc<LogSegment> {
        self.segments
            .borrow()
            .values()
            .next_back()
            .cloned()
            .expect("a log has at least one segment")
    }

    pub(super) fn segments_vec(&self) -> Vec<Rc<LogSegment>> {
        self.segments.borrow().values().cloned().collect()
    }

    pub(super) fn segment_for(&self, offset: i64) -> Option<Rc<LogSegment>> {
        self.segments
            .borrow()
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s.clone())
    }

    pub(super) fn bump(&self, f: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    pub(super) fn high_watermark(&self) -> i64 {
        match self.config.get().flush {
            FlushPolicy::SyncBeforeAck => self.synced_end.get(),
            FlushPolicy::Interval { .. } => self.written_end.get(),
        }
    }

    /// Writes of [base, next_offset) reached the page cache (they complete in offset order).
    pub(super) fn on_write_done(
        &self,
        base: i64,
        next_offset: i64,
        segment: &LogSegment,
        end_position: u64,
    ) {
        assert_eq!(base, self.written_end.get(), "writes complete in order");
        assert!(next_offset > base && next_offset <= self.log_end_offset.get());
        segment.mark_written(end_position, next_offset);
        self.written_end.set(next_offset);
        self.notify.notify_all();
    }

    pub(super) fn enqueue_write(self: &Rc<Self>, write: QueuedWrite) {
        self.queued_write_bytes
            .set(self.queued_write_bytes.get() + write.data.len() as u64);
        self.write_queue.borrow_mut().push_back(write);
        if !self.writer_running.get() {
            self.writer_running.set(true);
            let log = self.clone();
            glommio::spawn_local(async move {
                let result = log.write_loop().await;
                log.writer_running.set(false);
                if let Err(e) = result {
                    log.write_queue.borrow_mut().clear();
                    log.fail(&e);
                }
            })
            .detach();
        }
    }

    /// The log's writer: drains the queue, gathering runs of contiguous batches of one segment
    /// into a single `pwritev` (no user-space copy), so N appends arriving together cost one
    /// system call.
    pub(super) async fn write_loop(&self) -> Result<(), StorageError> {
        loop {
            // Appenders woken by the last sync enqueue first, so their batches share one write
            // (a yield, not a timer: with nothing else runnable it returns at once).
            glommio::executor().yield_now().await;
            let (first, merged) = {
                let mut queue = self.write_queue.borrow_mut();
                let Some(first) = queue.pop_front() else {
                    return Ok(());
                };
                let mut merged: Vec<QueuedWrite> = Vec::new();
                let mut end = first.position + first.data.len() as u64;
                let mut total = first.data.len();
                while let Some(next) = queue.front() {
                    let same_run =
                        Rc::ptr_eq(&next.segment, &first.segment) && next.position == end;
                    if !same_run || total + next.data.len() > WRITE_MERGE_BYTES_MAX {
                        break;
                    }
                    end += next.data.len() as u64;
                    total += next.data.len();
                    merged.push(queue.pop_front().expect("front exists"));
                }
                (first, merged)
            };
            let segment = first.segment.clone();
            let (base, position) = (first.base_offset, first.position);
            let (next_offset, end_position) = match merged.last() {
                Some(last) => (last.next_offset, last.position + last.data.len() as u64),
                None => (first.next_offset, first.position + first.data.len() as u64),
            };
            let len = end_position - position;
            segment.preallocate_for(end_position).await;
            let started = std::time::Instant::now();
            let writes = || std::iter::once(&first.data).chain(merged.iter().map(|w| &w.data));
            let heads: Vec<_> = writes().map(WriteData::stamped_head).collect();
            let mut pieces: Vec<&[u8]> = Vec::with_capacity(heads.len() * 2);
            for (write, head) in writes().zip(&heads) {
                if let Some(head) = head {
                    pieces.push(head);
                }
                pieces.push(write.unstamped_rest());
            }
            debug_assert_eq!(pieces.iter().map(|p| p.len() as u64).sum::<u64>(), len);
            // On the shard thread: an io_uring buffered write is punted to a worker thread on
            // ext4, which costs a wake-up and a context switch for the same page-cache copy.
            fileio::write_gathered_at(&segment.file, segment.path(), &pieces, position)?;
            self.timings.borrow().write.record_since(started);
            assert!(self.queued_write_bytes.get() >= len);
            self.queued_write_bytes
                .set(self.queued_write_bytes.get() - len);
            self.on_write_done(base, next_offset, &segment, end_position);
        }
    }

    pub(super) async fn wait_until(
        &self,
        done: impl Fn(&LogInner) -> bool,
    ) -> Result<(), StorageError> {
        loop {
            let seen = self.notify.generation();
            if done(self) {
                return Ok(());
            }
            if let Some(reason) = &*self.failed.borrow() {
                return Err(StorageError::LogFailed {
                    path: self.dir.clone(),
                    reason: reason.clone(),
                });
            }
            self.notify.wait(seen).await;
        }
    }

    pub(super) async fn wait_written(&self, end: i64) -> Result<(), StorageError> {
        self.wait_until(|l| l.written_end.get() >= end).await
    }

    /// Waits until `end` is covered by an fdatasync, starting the flusher if needed.
    pub(super) async fn wait_synced(self: &Rc<Self>, end: i64) -> Result<(), StorageError> {
        self.wait_written(end).await?;
        loop {
            let seen = self.notify.generation();
            if self.synced_end.get() >= end {
                return Ok(());
            }
            self.check_failed()?;
            // (Re)start the flusher: one started for an earlier target may be finishing.
            self.ensure_flusher(false);
            self.notify.wait(seen).await;
        }
    }

    /// Starts the log's flusher task unless one runs or nothing is unsynced.
    pub(super) fn ensure_flusher(self: &Rc<Self>, once: bool) {
        if self.flusher_running.get() || self.synced_end.get() >= self.written_end.get() {
            return;
        }
        if self.failed.borrow().is_some() {
            return;
        }
        self.flusher_running.set(true);
        let log = self.clone();
        glommio::spawn_local(async move {
            let result = log.flush_loop(once).await;
            log.flusher_running.set(false);
            if let Err(e) = result {
                log.fail(&e);
            }
            log.notify.notify_all();
        })
        .detach();
    }

    /// Syncs until everything written is synced (or one round if `once`).
    pub(super) async fn flush_loop(&self, once: bool) -> Result<(), StorageError> {
        let mut rounds = 0u64;
        loop {
            if rounds > 0 {
                // Appenders woken by the previous sync get to assign their next batches first
                // (a yield, not a timer: with nothing else runnable it returns at once) ...
                glommio::executor().yield_now().await;
            }
            rounds += 1;
            // ... and writes already assigned land in the page cache, so one sync covers them.
            let assigned = self.log_end_offset.get();
            let waited = std::time::Instant::now();
            self.wait_written(assigned).await?;
            let write_wait_us = waited.elapsed().as_micros() as u64;
            let target = self.written_end.get();
            let from = self.synced_end.get();
            if target <= from {
                return Ok(());
            }
            let dirty: Vec<Rc<LogSegment>> = {
                let segments = self.segments.borrow();
                let first = segments
                    .range(..=from)
                    .next_back()
                    .map(|(&b, _)| b)
                    .unwrap_or(i64::MIN);
                segments
                    .range(first..target)
                    .map(|(_, s)| s.clone())
                    .collect()
            };
            let synced = std::time::Instant::now();
            for segment in &dirty {
                let started = std::time::Instant::now();
                segment
                    .file
                    .fdatasync()
                    .await
                    .map_err(|e| fileio::io_err("fdatasync", segment.path(), e))?;
                self.timings.borrow().fsync.record_since(started);
            }
            let sync_us = synced.elapsed().as_micros() as u64;
            if target > self.synced_end.get() {
                self.synced_end.set(target);
            }
            self.unflushed_messages.set(0);
            self.bump(|s| {
                s.syncs += 1;
                s.sync_us += sync_us;
                s.write_wait_us += write_wait_us;
            });
            self.notify.notify_all();
            if once {
                return Ok(());
            }
        }
    }

    /// Maintenance that needs the log usable: checked, locked, checked again (the log may have
    /// failed or closed while waiting for the lock), then `work` runs detached.
    pub(super) async fn locked_detached<T, Fut>(
        self: &Rc<Self>,
        work: impl FnOnce(Rc<LogInner>) -> Fut,
    ) -> Result<T, StorageError>
    where
        T: 'static,
        Fut: std::future::Future<Output = Result<T, StorageError>> + 'static,
    {
        self.check_usable()?;
        let _maintenance = self.maintenance_lock().await?;
        let permit = self.lock().await?;
        self.check_usable()?;
        self.detached(&permit, work).await
    }

    /// Runs `work` under the maintenance lock alone, in a task of its own: appends go on, and a
    /// dropped caller cannot leave it half done (the task holds the lock to the end).
    pub(super) async fn maintenance_detached<T, Fut>(
        self: &Rc<Self>,
        work: impl FnOnce(Rc<LogInner>) -> Fut + 'static,
    ) -> Result<T, StorageError>
    where
        T: 'static,
        Fut: std::future::Future<Output = Result<T, StorageError>> + 'static,
    {
        self.check_usable()?;
        let (reply, result) = shoal_sync::oneshot();
        let log = self.clone();
        glommio::spawn_local(async move {
            let out = async {
                let _held = log.maintenance_lock().await?;
                log.check_usable()?;
                // Work detached under the append lock (a truncation whose caller was dropped)
                // finishes first.
                log.wait_until(|l| !l.detached_running.get()).await?;
                work(log.clone()).await
            }
            .await;
            reply.send(out);
        })
        .detach();
        result.await.map_err(|_| StorageError::Closed {
            path: self.dir.clone(),
        })?
    }

    /// Runs `work` as a detached task and waits for its result; the caller holds the lock.
    /// If the caller's future is dropped, the work still runs to completion and the next lock
    /// holder waits for it: multi-step file operations (roll, truncation, retention, close)
    /// are never left half done by a cancelled request.
    pub(super) async fn detached<T, Fut>(
        self: &Rc<Self>,
        _held: &shoal_sync::FifoGuard<'_>,
        work: impl FnOnce(Rc<LogInner>) -> Fut,
    ) -> Result<T, StorageError>
    where
        T: 'static,
        Fut: std::future::Future<Output = Result<T, StorageError>> + 'static,
    {
        assert!(!self.detached_running.get(), "one detached job at a time");
        self.detached_running.set(true);
        let slot: Rc<RefCell<Option<Result<T, StorageError>>>> = Rc::new(RefCell::new(None));
        let future = work(self.clone());
        let (out, log) = (slot.clone(), self.clone());
        glommio::spawn_local(async move {
            let result = future.await;
            *out.borrow_mut() = Some(result);
            log.detached_running.set(false);
            log.notify.notify_all();
        })
        .detach();
        loop {
            let seen = self.notify.generation();
            if let Some(result) = slot.borrow_mut().take() {
                return result;
            }
            self.notify.wait(seen).await;
        }
    }
}
