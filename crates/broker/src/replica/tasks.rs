//! The tasks behind a role: the leader's push loop (and its ISR proposals) and the follower's
//! append loop. Each stops as soon as its replica's role generation moves on.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::wire::Body;
use super::{now_ms, LogHistory, PartitionReplica, Role, PUSH_BYTES_MAX};
use crate::metadata::ControllerReply;
use shoal_replication::{FollowerAction, IsrProposal, Offset, ToLeader};
use shoal_storage::batch::BatchHeader;
use shoal_storage::PartitionLog;

/// The leader loop wakes at least this often (heartbeats, push timeouts, ISR checks).
const LEADER_TICK_MS: u64 = 50;
/// Follower pushes appended in one `append_replica` call, at most.
const FOLLOWER_APPEND_BYTES_MAX: usize = 4 << 20;

/// Sends a follower's action to its leader (only `Send` actions go out).
pub(super) fn send_action(r: &PartitionReplica, to: i32, action: FollowerAction) {
    if let FollowerAction::Send(message) = action {
        send_to_leader(r, to, message);
    }
}

fn send_to_leader(r: &PartitionReplica, to: i32, message: ToLeader) {
    r.links
        .send(to, r.topic_id, r.partition, Body::ToLeader(message));
}

/// The end offset of the last whole batch in `bytes`.
fn batches_end(bytes: &[u8]) -> Option<Offset> {
    let mut at = 0;
    let mut end = None;
    while at < bytes.len() {
        let header = BatchHeader::parse(&bytes[at..]).ok()?;
        end = Some(header.next_offset());
        at += header.batch_bytes()?;
    }
    end
}

/// Whole batches from `from` (the first whole regardless of size), below `upper`.
async fn read_batches(
    log: &PartitionLog,
    from: Offset,
    bytes_max: u64,
    upper: Offset,
) -> Result<(Bytes, Offset), String> {
    let result = log
        .read(from, bytes_max.min(u32::MAX as u64) as u32, upper, true)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = BytesMut::with_capacity(result.bytes);
    for slice in &result.slices {
        out.extend_from_slice(&slice.read().await.map_err(|e| e.to_string())?);
    }
    let bytes = out.freeze();
    let end = if bytes.is_empty() {
        from
    } else {
        batches_end(&bytes).ok_or("unparseable batches in the log")?
    };
    Ok((bytes, end))
}

fn is_current(r: &PartitionReplica, generation: u64) -> bool {
    r.generation.get() == generation
}

/// Pushes the log to every follower as it is written; proposes ISR changes.
pub(super) async fn lead(r: Rc<PartitionReplica>, generation: u64) {
    let mut read_errors = 0u64;
    while is_current(&r, generation) {
        let now = now_ms();
        let written = r.log.written_end();
        let (plans, proposal) = {
            let mut role = r.role.borrow_mut();
            let Role::Leader(sm) = &mut *role else {
                return;
            };
            r.sync_leader(sm);
            (sm.plan_pushes(now), sm.tick(now))
        };
        if let Some(p) = proposal {
            glommio::spawn_local(propose(r.clone(), p, generation)).detach();
        }
        for plan in plans {
            let (batches, end) = if plan.bytes_max == 0 {
                (Bytes::new(), plan.from)
            } else if plan.from >= written {
                continue; // Assigned, not written yet: the wait below wakes on the write.
            } else {
                let bytes_max = plan.bytes_max.min(PUSH_BYTES_MAX);
                match read_batches(&r.log, plan.from, bytes_max, written).await {
                    Ok((b, end)) if end > plan.from => (b, end),
                    Ok(_) => continue,
                    Err(e) => {
                        read_errors += 1;
                        if read_errors.is_power_of_two() {
                            log::error!(
                                "{}: reading {} for node {}: {e} ({read_errors} errors)",
                                r.log.dir().display(),
                                plan.from,
                                plan.to
                            );
                        }
                        continue;
                    }
                }
            };
            if !is_current(&r, generation) {
                return;
            }
            let message = {
                let mut role = r.role.borrow_mut();
                let Role::Leader(sm) = &mut *role else {
                    return;
                };
                sm.on_pushed(plan.to, plan.from, end, batches.len() as u64, now_ms())
            };
            let body = Body::ToFollower(message, batches);
            r.links.send(plan.to, r.topic_id, r.partition, body);
        }
        let written_more = r.log.wait_written(written + 1);
        let woken = r.wake.notified();
        let tick = glommio::timer::sleep(Duration::from_millis(LEADER_TICK_MS));
        futures_lite::future::or(
            async {
                let _ = written_more.await;
            },
            futures_lite::future::or(woken, async {
                tick.await;
            }),
        )
        .await;
    }
}

/// Kafka's AlterPartition: the ISR change counts once the controller has committed it.
async fn propose(r: Rc<PartitionReplica>, proposal: IsrProposal, generation: u64) {
    let answer = r
        .ctx
        .metadata
        .alter_partition(
            r.topic_id,
            r.partition,
            proposal.leader_epoch,
            proposal.partition_epoch,
            proposal.isr.clone(),
        )
        .await;
    if !is_current(&r, generation) {
        return;
    }
    let dir = r.log.dir().display().to_string();
    match answer {
        Ok(ControllerReply::AlterPartition(state)) => {
            log::info!(
                "{dir}: isr {:?} at partition epoch {} (proposed {:?})",
                state.isr,
                state.partition_epoch,
                proposal.isr
            );
            r.on_partition_change(&state.isr, state.partition_epoch);
        }
        other => {
            log::warn!("{dir}: isr change to {:?} refused: {other:?}", proposal.isr);
            if let Role::Leader(sm) = &mut *r.role.borrow_mut() {
                sm.on_proposal_rejected();
            }
        }
    }
}

/// Appends what the leader pushes, acknowledging once durable; repeats the handshake or the
/// last ack while the leader is silent.
pub(super) async fn follow(r: Rc<PartitionReplica>, generation: u64) {
    while is_current(&r, generation) {
        let (leader, messages) = {
            let mut role = r.role.borrow_mut();
            let Role::Follower {
                sm,
                inbox,
                inbox_bytes,
            } = &mut *role
            else {
                return;
            };
            *inbox_bytes = 0;
            (sm.leader(), std::mem::take(inbox))
        };
        if messages.is_empty() {
            let action = match &mut *r.role.borrow_mut() {
                Role::Follower { sm, .. } => sm.tick(now_ms()),
                _ => return,
            };
            if let Some(a) = action {
                send_action(&r, leader, a);
            }
            let woken = r.wake.notified();
            let tick = glommio::timer::sleep(Duration::from_millis(super::FOLLOWER_RETRY_MS / 3));
            futures_lite::future::or(woken, async {
                tick.await;
            })
            .await;
            continue;
        }
        let mut pending = BytesMut::new();
        for (message, batches) in messages {
            let actions = match &mut *r.role.borrow_mut() {
                Role::Follower { sm, .. } => sm.on_message(&message, &LogHistory(&r.log), now_ms()),
                _ => return,
            };
            for action in actions {
                match action {
                    FollowerAction::Send(m) => send_to_leader(&r, leader, m),
                    FollowerAction::Truncate(offset) => {
                        if !truncate(&r, offset, generation).await {
                            return;
                        }
                    }
                    FollowerAction::Append { .. } => pending.extend_from_slice(&batches),
                }
            }
            if pending.len() >= FOLLOWER_APPEND_BYTES_MAX
                && !append(&r, leader, &mut pending, generation).await
            {
                return;
            }
        }
        if !append(&r, leader, &mut pending, generation).await {
            return;
        }
    }
}

/// Truncates the divergent tail; on failure the handshake starts over.
async fn truncate(r: &Rc<PartitionReplica>, offset: Offset, generation: u64) -> bool {
    let dir = r.log.dir().display().to_string();
    log::info!(
        "{dir}: truncating to {offset} (log end {})",
        r.log.log_end_offset()
    );
    let result = r.log.truncate_to(offset).await;
    if !is_current(r, generation) {
        return false;
    }
    if let Err(e) = result {
        log::error!("{dir}: truncation to {offset} failed: {e}");
        return restart(r);
    }
    if r.log.log_end_offset() != offset {
        log::error!(
            "{dir}: truncation to {offset} left the log ending at {}",
            r.log.log_end_offset()
        );
        return restart(r);
    }
    true
}

/// Appends the gathered pushes and acknowledges them once durable.
async fn append(
    r: &Rc<PartitionReplica>,
    leader: i32,
    pending: &mut BytesMut,
    generation: u64,
) -> bool {
    if pending.is_empty() {
        return true;
    }
    let batches = pending.split().freeze();
    let result = r
        .log
        .append_replica(batches, shoal_protocol::now_ms())
        .await;
    if !is_current(r, generation) {
        return false;
    }
    match result {
        Ok(end) => {
            let action = match &mut *r.role.borrow_mut() {
                Role::Follower { sm, .. } => sm.on_durable(end),
                _ => return false,
            };
            if let Some(a) = action {
                send_action(r, leader, a);
            }
            true
        }
        Err(e) => {
            log::error!("{}: replica append failed: {e}", r.log.dir().display());
            restart(r)
        }
    }
}

/// The local log is not where the state machine thinks: start following afresh from the log
/// as it is (a new handshake). Returns false: this task's generation is over.
fn restart(r: &Rc<PartitionReplica>) -> bool {
    let Some((leader, epoch)) = r.following() else {
        return false;
    };
    r.become_follower(leader, epoch);
    false
}
