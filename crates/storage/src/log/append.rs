//! Append: validation, producer checks, offset assignment, and the wait for durability.

use super::*;

impl PartitionLog {
    /// Appends one client RecordBatch v2 (BaseOffset 0). See module docs. The batch is not
    /// copied: the writer writes a stamped copy of its 16-byte head (offset and epoch) and then
    /// the rest of this buffer (LogAppendTime, which changes the CRC, is stamped on a copy).
    pub async fn append(
        &self,
        batch: impl Into<Bytes>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let batch: Bytes = batch.into();
        let inner = &self.inner;
        let called = std::time::Instant::now();
        inner.check_usable()?;
        let header = batch::validate_client_batch(&batch)?;
        if inner.config.get().cleanup_compact {
            crate::compaction::check_keys(&batch)?;
        }
        let bytes = batch.len();
        if bytes > inner.config.get().max_message_bytes as usize {
            return Err(AppendError::MessageTooLarge {
                bytes,
                bytes_max: inner.config.get().max_message_bytes,
            });
        }
        if bytes as u64 > inner.config.get().segment_bytes {
            return Err(AppendError::RecordListTooLarge {
                bytes,
                bytes_max: inner.config.get().segment_bytes,
            });
        }

        let permit = {
            // The ticket for the FIFO lock is taken here, on the first poll: call order.
            let permit = inner.lock().await?;
            inner.check_usable()?;
            // Back-pressure, in line: wait while too much is assigned but not yet written.
            inner
                .wait_until(|l| l.queued_write_bytes.get() < QUEUED_WRITE_BYTES_MAX)
                .await?;
            let check = inner.producers.borrow().check(&header);
            if let ProducerCheck::Duplicate(original) = check? {
                drop(permit);
                inner.bump(|s| s.duplicates += 1);
                if inner.config.get().flush == FlushPolicy::SyncBeforeAck {
                    inner.wait_synced(original.last_offset + 1).await?;
                } else {
                    inner.wait_written(original.last_offset + 1).await?;
                }
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: if inner.config.get().log_append_time {
                        original.max_timestamp
                    } else {
                        -1
                    },
                    log_start_offset: inner.log_start_offset.get(),
                });
            }
            let delta = i64::from(header.last_offset_delta);
            inner
                .prepare_append(&permit, bytes as u64, delta, leader_epoch, now_ms)
                .await?;
            permit
        };
        let base_offset = inner.log_end_offset.get();
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        // Everything from here to the spawn is synchronous: offsets are assigned in order.
        let (data, stamped, log_append_time_ms) = if inner.config.get().log_append_time {
            let mut owned = Vec::from(&batch[..]);
            batch::set_base_offset(&mut owned, base_offset);
            batch::set_partition_leader_epoch(&mut owned, leader_epoch);
            batch::set_log_append_time(&mut owned, now_ms);
            let stamped = BatchHeader::parse(&owned).expect("validated header");
            debug_assert!(batch::verify(&owned).is_ok());
            (WriteData::Owned(owned), stamped, now_ms)
        } else {
            let mut stamped = header;
            stamped.base_offset = base_offset;
            stamped.partition_leader_epoch = leader_epoch;
            let stamp = Stamp {
                base_offset,
                leader_epoch,
            };
            let data = WriteData::Shared {
                batch,
                stamp: Some(stamp),
            };
            (data, stamped, -1)
        };
        assert_eq!(stamped.last_offset(), last_offset);
        inner.producers.borrow_mut().record(&stamped);
        inner.place(data, &stamped, now_ms);
        drop(permit);
        inner.timings.borrow().append_queue.record_since(called);
        inner
            .wait_durable(last_offset + 1, header.record_count as u64)
            .await?;
        inner.timings.borrow().append.record_since(called);
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms,
            log_start_offset: inner.log_start_offset.get(),
        })
    }

    /// A follower's append: `batches` exactly as the leader stored them (offsets and leader
    /// epochs stamped). Each batch must pass its CRC and continue this log; the epochs they
    /// carry extend the epoch cache and producer state is rebuilt from them. Returns the new log
    /// end once durable per the flush policy.
    pub async fn append_replica(&self, batches: Bytes, now_ms: i64) -> Result<i64, AppendError> {
        let inner = &self.inner;
        inner.check_usable()?;
        let mut headers = Vec::new();
        let mut at = 0;
        let mut next = None::<i64>;
        while at < batches.len() {
            let header = BatchHeader::parse(&batches[at..])?;
            let len = header
                .batch_bytes()
                .filter(|&n| at + n <= batches.len())
                .ok_or(batch::BatchError::LengthMismatch {
                    length: header.length,
                    actual: batches.len() - at,
                })?;
            let header = batch::verify(&batches[at..at + len])?;
            // A compacted leader's log has gaps: a batch may start past the previous end.
            if next.is_some_and(|n| header.base_offset < n) {
                return Err(AppendError::NotContiguous {
                    expected: next.unwrap_or(-1),
                    base_offset: header.base_offset,
                });
            }
            next = Some(header.next_offset());
            headers.push((at, len, header));
            at += len;
        }
        let permit = inner.lock().await?;
        inner.check_usable()?;
        let mut records = 0;
        for (at, len, header) in headers {
            let expected = inner.log_end_offset.get();
            if header.base_offset < expected {
                return Err(AppendError::NotContiguous {
                    expected,
                    base_offset: header.base_offset,
                });
            }
            // Offsets removed by the leader's cleaner: the log end jumps over them (`place`).
            let delta = header.last_offset() - expected;
            let epoch = header.partition_leader_epoch;
            inner
                .prepare_append(&permit, len as u64, delta, epoch, now_ms)
                .await?;
            let batch = WriteData::Shared {
                batch: batches.slice(at..at + len),
                stamp: None,
            };
            inner.producers.borrow_mut().record(&header);
            inner.place(batch, &header, now_ms);
            records += header.record_count as u64;
        }
        drop(permit);
        let end = inner.log_end_offset.get();
        inner.wait_durable(end, records).await?;
        Ok(end)
    }
}

impl LogInner {
    /// Under the append lock, before a batch of `bytes` ending `delta` past the log end: roll if
    /// it would not fit, and record a newer `leader_epoch` (checkpoint written first). Detached,
    /// so a dropped append cannot leave it half done.
    async fn prepare_append(
        self: &Rc<Self>,
        permit: &shoal_sync::FifoGuard<'_>,
        bytes: u64,
        delta: i64,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let last_offset = self.log_end_offset.get() + delta;
        let needs_roll = self.should_roll(&self.active(), bytes, last_offset, now_ms);
        let needs_epoch = leader_epoch >= 0
            && self
                .epochs
                .borrow()
                .latest_epoch()
                .is_none_or(|latest| leader_epoch > latest);
        if !needs_roll && !needs_epoch {
            return Ok(());
        }
        self.detached(permit, move |log| async move {
            let end = log.log_end_offset.get();
            if log.should_roll(&log.active(), bytes, end + delta, now_ms) {
                if let Err(e) = log.roll().await {
                    log.fail(&e);
                    return Err(e);
                }
            }
            let end = log.log_end_offset.get();
            if log.epochs.borrow_mut().assign(leader_epoch, end) {
                if let Err(e) = log.persist_epochs().await {
                    log.fail(&e);
                    return Err(e);
                }
            }
            Ok(())
        })
        .await
    }

    /// Synchronously places a stamped batch at the log end: index entries, the log end, the
    /// queued write (the caller records producer state).
    fn place(self: &Rc<Self>, batch: WriteData, stamped: &BatchHeader, now_ms: i64) {
        // A follower's batch may start past the log end (offsets its leader's cleaner removed):
        // the write covers the gap too, so written and synced ends jump over it.
        let base_offset = self.log_end_offset.get();
        assert!(stamped.base_offset >= base_offset, "placed at the log end");
        let bytes = batch.len() as u64;
        let active = self.active();
        let position = active.assign(stamped, bytes, now_ms, &self.config.get());
        let next_offset = stamped.next_offset();
        self.log_end_offset.set(next_offset);
        self.bump(|s| {
            s.appends += 1;
            s.appended_bytes += bytes;
        });
        self.enqueue_write(QueuedWrite {
            base_offset,
            next_offset,
            segment: active,
            position,
            data: batch,
        });
    }

    /// Waits until `next_offset` is durable under the flush policy (`records` more unflushed).
    async fn wait_durable(
        self: &Rc<Self>,
        next_offset: i64,
        records: u64,
    ) -> Result<(), StorageError> {
        match self.config.get().flush {
            FlushPolicy::SyncBeforeAck => self.wait_synced(next_offset).await?,
            FlushPolicy::Interval { flush_messages, .. } => {
                self.wait_written(next_offset).await?;
                let unflushed = self.unflushed_messages.get() + records;
                self.unflushed_messages.set(unflushed);
                if unflushed >= flush_messages {
                    self.unflushed_messages.set(0);
                    self.ensure_flusher(true);
                }
            }
        }
        Ok(())
    }
}
