//! Append: validation, producer checks, offset assignment, and the wait for durability.

use super::*;

impl PartitionLog {
    /// Appends one client RecordBatch v2 (BaseOffset 0). See module docs.
    pub async fn append(
        &self,
        mut batch: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let inner = &self.inner;
        inner.check_usable()?;
        let header = batch::validate_client_batch(&batch)?;
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
            let last_offset = inner.log_end_offset.get() + delta;
            let needs_roll = inner.should_roll(&inner.active(), bytes as u64, last_offset, now_ms);
            let needs_epoch = leader_epoch >= 0
                && inner
                    .epochs
                    .borrow()
                    .latest_epoch()
                    .is_none_or(|latest| leader_epoch > latest);
            if needs_roll || needs_epoch {
                // Roll / epoch checkpoint: async file work, detached so a dropped append cannot
                // leave it half done; this append keeps its place (the lock) meanwhile.
                inner
                    .detached(&permit, move |log| async move {
                        let end = log.log_end_offset.get();
                        if log.should_roll(&log.active(), bytes as u64, end + delta, now_ms) {
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
                    .await?;
            }
            permit
        };
        let base_offset = inner.log_end_offset.get();
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        // Everything from here to the spawn is synchronous: offsets are assigned in order.
        assert_eq!(base_offset, inner.log_end_offset.get());
        batch::set_base_offset(&mut batch, base_offset);
        batch::set_partition_leader_epoch(&mut batch, leader_epoch);
        let log_append_time_ms = if inner.config.get().log_append_time {
            batch::set_log_append_time(&mut batch, now_ms);
            now_ms
        } else {
            -1
        };
        let stamped = BatchHeader::parse(&batch).expect("validated header");
        debug_assert!(batch::verify(&batch).is_ok());
        assert_eq!(stamped.last_offset(), last_offset);
        let active = inner.active();
        let position = active.assign(&stamped, bytes as u64, now_ms, &inner.config.get());
        let next_offset = last_offset + 1;
        inner.log_end_offset.set(next_offset);
        inner.producers.borrow_mut().record(&stamped);
        inner.bump(|s| {
            s.appends += 1;
            s.appended_bytes += bytes as u64;
        });
        inner.enqueue_write(QueuedWrite {
            base_offset,
            next_offset,
            segment: active,
            position,
            data: Vec::from(batch),
        });
        drop(permit);

        match inner.config.get().flush {
            FlushPolicy::SyncBeforeAck => inner.wait_synced(next_offset).await?,
            FlushPolicy::Interval { flush_messages, .. } => {
                inner.wait_written(next_offset).await?;
                let unflushed = inner.unflushed_messages.get() + header.record_count as u64;
                inner.unflushed_messages.set(unflushed);
                if unflushed >= flush_messages {
                    inner.unflushed_messages.set(0);
                    inner.ensure_flusher(true);
                }
            }
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms,
            log_start_offset: inner.log_start_offset.get(),
        })
    }
}
