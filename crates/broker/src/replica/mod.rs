//! A local replica's role and the tasks that drive it, around the `shoal-replication` state
//! machines: the leader's push loop, the follower's append loop, ISR proposals, and the
//! outbound replication channels (`link.rs`). Nothing here knows the shard mesh: the shard
//! routes inbound frames to [`PartitionReplica::on_frame`] on the owning shard and calls
//! [`PartitionReplica::become_leader`] / [`PartitionReplica::become_follower`] when the metadata
//! says so.

mod link;
mod tasks;
pub mod wire;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use uuid::Uuid;

use crate::context::NodeContext;
pub use link::Links;
use shoal_replication::{
    AckCheck, Epoch, EpochHistory, FollowerReplica, LeaderReplica, LogPosition, Offset,
    ReplicationConfig, ToFollower,
};
use shoal_storage::PartitionLog;
use shoal_sync::Notify;
use wire::Body;

/// Bytes of pushes a follower holds unprocessed; more are dropped (the leader resends).
pub const FOLLOWER_INBOX_BYTES_MAX: usize = 32 << 20;
/// Largest push frame's batches (one batch larger than this still goes whole).
pub const PUSH_BYTES_MAX: u64 = 1 << 20;
/// A follower repeats its handshake (or its last ack, when the leader is silent) this often.
pub const FOLLOWER_RETRY_MS: u64 = 300;

/// The replication settings of a node (`NodeConfig`) and topic (`min.insync.replicas`).
pub fn replication_config(lag_time_max_ms: u64, min_insync_replicas: usize) -> ReplicationConfig {
    ReplicationConfig {
        lag_time_max_ms,
        min_insync_replicas,
        ..ReplicationConfig::default()
    }
}

enum Role {
    /// Neither leading nor following (no leader, or not reconciled yet): serves nothing.
    Idle {
        hw: Offset,
    },
    Leader(LeaderReplica),
    Follower {
        sm: FollowerReplica,
        inbox: VecDeque<(ToFollower, Bytes)>,
        inbox_bytes: usize,
    },
}

/// A log's leader-epoch cache, as the state machines ask about it.
pub struct LogHistory<'a>(pub &'a PartitionLog);

impl EpochHistory for LogHistory<'_> {
    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, Offset) {
        let entries = self.0.leader_epochs();
        let at_or_below = entries.iter().rposition(|&(e, _)| e <= epoch);
        match at_or_below {
            None => (-1, self.0.log_start_offset()),
            Some(i) => match entries.get(i + 1) {
                Some(&(_, next_start)) => (entries[i].0, next_start),
                None => (entries[i].0, self.0.log_end_offset()),
            },
        }
    }
    fn latest_epoch(&self) -> Epoch {
        self.0.leader_epochs().last().map_or(-1, |&(e, _)| e)
    }
}

/// Where an `acks=all` produce stands once appended.
#[derive(Debug, PartialEq, Eq)]
pub enum AcksAll {
    Done,
    TooFewReplicasAfterAppend,
    NotLeader,
    TimedOut,
}

/// One local replica of a partition: its role and what its tasks share.
pub struct PartitionReplica {
    pub topic_id: Uuid,
    pub partition: i32,
    pub log: Rc<PartitionLog>,
    /// Notified when the high watermark may have moved (fetch long-polls, `acks=all` waits).
    pub data_ready: Rc<Notify>,
    role: RefCell<Role>,
    /// Bumped by every role change; a task of an older generation stops.
    generation: Cell<u64>,
    /// Wakes the role's task: acks arrived (leader), pushes queued (follower).
    wake: Notify,
    links: Rc<Links>,
    ctx: Arc<NodeContext>,
}

impl PartitionReplica {
    pub fn new(
        topic_id: Uuid,
        partition: i32,
        log: Rc<PartitionLog>,
        data_ready: Rc<Notify>,
        links: Rc<Links>,
        ctx: Arc<NodeContext>,
    ) -> Self {
        PartitionReplica {
            topic_id,
            partition,
            log,
            data_ready,
            role: RefCell::new(Role::Idle { hw: 0 }),
            generation: Cell::new(0),
            wake: Notify::default(),
            links,
            ctx,
        }
    }

    fn local_position(&self, hw: Offset) -> LogPosition {
        LogPosition {
            log_end: self.log.log_end_offset(),
            durable_end: self.log.high_watermark(),
            hw,
        }
    }

    /// Catches the leader's state machine up with the local log.
    fn sync_leader(&self, sm: &mut LeaderReplica) {
        sm.on_append(self.log.log_end_offset());
        sm.on_durable(self.log.high_watermark());
    }

    /// What consumers may see: below the high watermark (on a leader, the minimum durable end
    /// over the ISR).
    pub fn high_watermark(&self) -> Offset {
        match &mut *self.role.borrow_mut() {
            Role::Idle { hw } => *hw,
            Role::Leader(sm) => {
                self.sync_leader(sm);
                sm.position().hw
            }
            Role::Follower { sm, .. } => sm.position().hw,
        }
    }

    /// `(leader epoch, partition epoch)` while leading.
    pub fn leading(&self) -> Option<(Epoch, i32)> {
        match &*self.role.borrow() {
            Role::Leader(sm) => Some((sm.epoch(), sm.partition_epoch())),
            _ => None,
        }
    }

    /// `(leader, leader epoch)` while following.
    pub fn following(&self) -> Option<(i32, Epoch)> {
        match &*self.role.borrow() {
            Role::Follower { sm, .. } => Some((sm.leader(), sm.epoch())),
            _ => None,
        }
    }

    /// Leading or following (not idle).
    pub fn is_active(&self) -> bool {
        !matches!(&*self.role.borrow(), Role::Idle { .. })
    }

    fn next_generation(&self) -> u64 {
        self.generation.set(self.generation.get() + 1);
        self.wake.notify_all();
        self.data_ready.notify_all();
        self.generation.get()
    }

    /// Stops leading or following (no leader, or no longer a replica).
    pub fn become_idle(&self) {
        let hw = self.high_watermark();
        *self.role.borrow_mut() = Role::Idle { hw };
        self.next_generation();
    }

    /// Leads at `epoch`; followers (if any) are pushed to by a task on this shard.
    pub fn become_leader(
        self: &Rc<Self>,
        epoch: Epoch,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        cfg: ReplicationConfig,
    ) {
        let me = self.ctx.config.node_id;
        let known_hw = self.high_watermark();
        let at = self.local_position(known_hw);
        let sm = LeaderReplica::new(me, epoch, partition_epoch, replicas, isr, at, now_ms(), cfg);
        *self.role.borrow_mut() = Role::Leader(sm);
        let generation = self.next_generation();
        log::info!(
            "{}: leader at epoch {epoch}, replicas {replicas:?}, isr {isr:?}",
            self.log.dir().display()
        );
        if replicas.len() > 1 {
            glommio::spawn_local(tasks::lead(self.clone(), generation)).detach();
        }
    }

    /// Follows `leader` at `epoch`: the handshake goes out now, appends follow pushes.
    pub fn become_follower(self: &Rc<Self>, leader: i32, epoch: Epoch) {
        let known_hw = self.high_watermark();
        let at = self.local_position(known_hw);
        let (sm, hello) = FollowerReplica::new(
            leader,
            epoch,
            at,
            &LogHistory(&self.log),
            now_ms(),
            FOLLOWER_RETRY_MS,
        );
        *self.role.borrow_mut() = Role::Follower {
            sm,
            inbox: VecDeque::new(),
            inbox_bytes: 0,
        };
        let generation = self.next_generation();
        log::info!(
            "{}: following node {leader} at epoch {epoch}",
            self.log.dir().display()
        );
        tasks::send_action(self, leader, hello);
        glommio::spawn_local(tasks::follow(self.clone(), generation)).detach();
    }

    /// The committed partition state changed at the same leader epoch (an ISR change).
    pub fn on_partition_change(&self, isr: &[i32], partition_epoch: i32) {
        if let Role::Leader(sm) = &mut *self.role.borrow_mut() {
            sm.on_partition_change(isr, partition_epoch);
        }
        self.wake.notify_all();
        self.data_ready.notify_all();
    }

    /// A frame from node `from` about this partition.
    pub fn on_frame(&self, from: i32, body: Body) {
        match (&mut *self.role.borrow_mut(), body) {
            (Role::Leader(sm), Body::ToLeader(message)) => {
                self.sync_leader(sm);
                let history = LogHistory(&self.log);
                if let Some(reply) = sm.on_message(from, &message, &history, now_ms()) {
                    let body = Body::ToFollower(reply, Bytes::new());
                    self.links.send(from, self.topic_id, self.partition, body);
                }
                self.wake.notify_all();
                self.data_ready.notify_all();
            }
            (
                Role::Follower {
                    sm,
                    inbox,
                    inbox_bytes,
                },
                Body::ToFollower(message, batches),
            ) if sm.leader() == from => {
                if *inbox_bytes + batches.len() > FOLLOWER_INBOX_BYTES_MAX {
                    log::warn!(
                        "{}: follower inbox full (FOLLOWER_INBOX_BYTES_MAX); dropping a push",
                        self.log.dir().display()
                    );
                    return;
                }
                *inbox_bytes += batches.len();
                inbox.push_back((message, batches));
                self.wake.notify_all();
            }
            _ => {}
        }
    }

    pub fn can_append_acks_all(&self) -> bool {
        match &*self.role.borrow() {
            Role::Leader(sm) => sm.can_append_acks_all(),
            _ => false,
        }
    }

    /// Waits (until `deadline`) for the high watermark to cover `end` at leader `epoch`.
    pub async fn wait_acks_all(&self, end: Offset, epoch: Epoch, deadline: Instant) -> AcksAll {
        loop {
            let seen = self.data_ready.generation();
            let check = match &mut *self.role.borrow_mut() {
                Role::Leader(sm) if sm.epoch() == epoch => {
                    self.sync_leader(sm);
                    sm.check_acks_all(end)
                }
                _ => return AcksAll::NotLeader,
            };
            match check {
                AckCheck::Done => return AcksAll::Done,
                AckCheck::TooFewReplicasAfterAppend => return AcksAll::TooFewReplicasAfterAppend,
                AckCheck::Wait => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return AcksAll::TimedOut;
            }
            let woken = self.data_ready.wait(seen);
            futures_lite::future::or(woken, glommio::timer::sleep(deadline - now)).await;
        }
    }
}

fn now_ms() -> u64 {
    shoal_protocol::now_ms().max(0) as u64
}
