//! The leader side of one partition.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::{
    Epoch, EpochHistory, LogPosition, NodeId, Offset, ReplicationConfig, ToFollower, ToLeader,
};

/// Where `acks=all` stands for a batch ending at some offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckCheck {
    /// The high watermark covers it and the ISR is large enough.
    Done,
    /// Not yet replicated to the whole ISR.
    Wait,
    /// Covered, but the ISR shrank below `min.insync.replicas` (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    TooFewReplicasAfterAppend,
}

/// An ISR change for the controller (Kafka's AlterPartition), valid only at these epochs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: Epoch,
    pub partition_epoch: i32,
    pub isr: Vec<NodeId>,
}

/// Push the log to `to` from `from`, at most `bytes_max` bytes of whole batches (none: a
/// heartbeat); then report what was sent with [`LeaderReplica::on_pushed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushPlan {
    pub to: NodeId,
    pub from: Offset,
    pub bytes_max: u64,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    end: Offset,
    bytes: u64,
    sent_ms: u64,
    /// The leader's log end when this went out: an ack covering it means caught up then.
    leader_end: Offset,
}

#[derive(Debug)]
struct Progress {
    /// Durable end the follower reported in this epoch (-1: not yet).
    acked_end: Offset,
    /// Next offset to push; `None` until the follower's handshake is done.
    next: Option<Offset>,
    in_flight: VecDeque<InFlight>,
    last_caught_up_ms: u64,
    last_push_ms: Option<u64>,
}

impl Progress {
    fn in_flight_bytes(&self) -> u64 {
        self.in_flight.iter().map(|f| f.bytes).sum()
    }
}

#[derive(Debug)]
pub struct LeaderReplica {
    me: NodeId,
    epoch: Epoch,
    partition_epoch: i32,
    replicas: Vec<NodeId>,
    isr: BTreeSet<NodeId>,
    /// Proposed to the controller, not yet committed.
    pending_isr: Option<BTreeSet<NodeId>>,
    /// The first offset written in this epoch: a follower joins the ISR only past it.
    epoch_start: Offset,
    pos: LogPosition,
    followers: BTreeMap<NodeId, Progress>,
    cfg: ReplicationConfig,
}

impl LeaderReplica {
    /// Becomes leader at `epoch` on a log ending at `log_end` (durable to `durable_end`), with
    /// the high watermark it knew as a follower. Every follower gets a full lag period.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: NodeId,
        epoch: Epoch,
        partition_epoch: i32,
        replicas: &[NodeId],
        isr: &[NodeId],
        at: LogPosition,
        now_ms: u64,
        cfg: ReplicationConfig,
    ) -> LeaderReplica {
        assert!(
            replicas.contains(&me),
            "leader {me} not among replicas {replicas:?}"
        );
        let LogPosition {
            log_end,
            durable_end,
            hw,
        } = at;
        assert!(durable_end <= log_end, "durable past the written end");
        let followers = replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| {
                let p = Progress {
                    acked_end: -1,
                    next: None,
                    in_flight: VecDeque::new(),
                    last_caught_up_ms: now_ms,
                    last_push_ms: None,
                };
                (r, p)
            })
            .collect();
        LeaderReplica {
            me,
            epoch,
            partition_epoch,
            replicas: replicas.to_vec(),
            isr: isr.iter().copied().collect(),
            pending_isr: None,
            epoch_start: log_end,
            pos: LogPosition {
                log_end,
                durable_end,
                hw: hw.min(durable_end),
            },
            followers,
            cfg,
        }
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }
    pub fn position(&self) -> LogPosition {
        self.pos
    }
    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }
    pub fn isr(&self) -> Vec<NodeId> {
        self.isr.iter().copied().collect()
    }

    /// `acks=all` may append only while the ISR meets `min.insync.replicas`.
    pub fn can_append_acks_all(&self) -> bool {
        self.isr.len() >= self.cfg.min_insync_replicas
    }

    pub fn check_acks_all(&self, batch_end: Offset) -> AckCheck {
        if self.pos.hw < batch_end {
            AckCheck::Wait
        } else if self.isr.len() < self.cfg.min_insync_replicas {
            AckCheck::TooFewReplicasAfterAppend
        } else {
            AckCheck::Done
        }
    }

    /// The local log now ends at `log_end` (written, perhaps not yet durable).
    pub fn on_append(&mut self, log_end: Offset) {
        assert!(log_end >= self.pos.log_end, "log end moved back");
        self.pos.log_end = log_end;
    }

    /// The local log is durable below `durable_end`.
    pub fn on_durable(&mut self, durable_end: Offset) {
        assert!(durable_end <= self.pos.log_end);
        self.pos.durable_end = self.pos.durable_end.max(durable_end);
        self.advance_hw();
    }

    /// The replicas whose durable end bounds the high watermark: the ISR and, while an
    /// expansion is pending, the members it adds (Kafka's "maximal ISR").
    fn hw_replicas(&self) -> BTreeSet<NodeId> {
        let mut set = self.isr.clone();
        if let Some(p) = &self.pending_isr {
            set.extend(p.iter().copied());
        }
        set
    }

    fn advance_hw(&mut self) {
        let mut hw = self.pos.durable_end;
        for id in self.hw_replicas() {
            if id != self.me {
                hw = hw.min(self.followers.get(&id).map_or(-1, |p| p.acked_end));
            }
        }
        self.pos.hw = self.pos.hw.max(hw);
    }

    /// What to push now: data to every handshaken follower with room in flight, a heartbeat to
    /// those that heard nothing for `heartbeat_interval_ms`; stale in-flight ranges are resent.
    pub fn plan_pushes(&mut self, now_ms: u64) -> Vec<PushPlan> {
        let mut plans = Vec::new();
        for (&to, p) in self.followers.iter_mut() {
            let Some(mut next) = p.next else {
                continue;
            };
            let timed_out = p
                .in_flight
                .front()
                .is_some_and(|f| now_ms.saturating_sub(f.sent_ms) >= self.cfg.push_timeout_ms);
            if timed_out {
                next = p.acked_end.max(0).min(next);
                p.in_flight.clear();
                p.next = Some(next);
            }
            let room = self
                .cfg
                .inflight_bytes_max
                .saturating_sub(p.in_flight_bytes());
            let idle = p
                .last_push_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= self.cfg.heartbeat_interval_ms);
            if next < self.pos.log_end && room > 0 {
                plans.push(PushPlan {
                    to,
                    from: next,
                    bytes_max: room,
                });
            } else if idle {
                plans.push(PushPlan {
                    to,
                    from: next,
                    bytes_max: 0,
                });
            }
        }
        plans
    }

    /// `[from, end)` (`bytes` bytes) went to `to`; returns the message to send.
    pub fn on_pushed(
        &mut self,
        to: NodeId,
        from: Offset,
        end: Offset,
        bytes: u64,
        now_ms: u64,
    ) -> ToFollower {
        let p = self.followers.get_mut(&to).expect("a follower");
        p.last_push_ms = Some(now_ms);
        if end > from {
            p.next = Some(end);
            p.in_flight.push_back(InFlight {
                end,
                bytes,
                sent_ms: now_ms,
                leader_end: self.pos.log_end,
            });
        }
        ToFollower::Push {
            epoch: self.epoch,
            from,
            end,
            hw: self.pos.hw,
        }
    }

    /// A follower's message; returns the answer to send it, if any.
    pub fn on_message(
        &mut self,
        from: NodeId,
        message: &ToLeader,
        history: &impl EpochHistory,
        now_ms: u64,
    ) -> Option<ToFollower> {
        let epoch = self.epoch;
        let p = self.followers.get_mut(&from)?;
        match *message {
            ToLeader::Hello {
                epoch: e,
                last_epoch,
            } if e == epoch => {
                let (found_epoch, end) = history.end_offset_for_epoch(last_epoch);
                p.next = None;
                p.in_flight.clear();
                return Some(ToFollower::EpochEnd {
                    epoch,
                    found_epoch,
                    end: end.min(self.pos.log_end),
                });
            }
            ToLeader::Ack { epoch: e, log_end } if e == epoch => {
                if p.next.is_none() {
                    // The handshake is done: the follower's log is ours below `log_end`.
                    let joined = log_end.min(self.pos.log_end);
                    p.next = Some(joined);
                    p.acked_end = joined;
                } else {
                    p.acked_end = p.acked_end.max(log_end);
                }
                while let Some(f) = p.in_flight.front().copied() {
                    if f.end > p.acked_end {
                        break;
                    }
                    if p.acked_end >= f.leader_end {
                        p.last_caught_up_ms = p.last_caught_up_ms.max(f.sent_ms);
                    }
                    p.in_flight.pop_front();
                }
                if p.acked_end >= self.pos.log_end {
                    p.last_caught_up_ms = now_ms;
                }
            }
            ToLeader::Nack { epoch: e, log_end } if e == epoch && p.next.is_some() => {
                p.next = Some(log_end.min(self.pos.log_end));
                p.in_flight.clear();
            }
            _ => return None,
        }
        self.advance_hw();
        None
    }

    /// An ISR change to propose, when one is due and none is pending: drop followers not caught
    /// up for `lag_time_max_ms`, add those caught up to the high watermark in this epoch.
    pub fn tick(&mut self, now_ms: u64) -> Option<IsrProposal> {
        if self.pending_isr.is_some() {
            return None;
        }
        let mut next = self.isr.clone();
        for (&id, p) in &self.followers {
            let lagging = now_ms.saturating_sub(p.last_caught_up_ms) > self.cfg.lag_time_max_ms;
            let caught_up = p.acked_end >= self.pos.hw.max(self.epoch_start);
            if self.isr.contains(&id) && lagging {
                next.remove(&id);
            } else if !self.isr.contains(&id) && caught_up && !lagging {
                next.insert(id);
            }
        }
        if next == self.isr {
            return None;
        }
        self.pending_isr = Some(next.clone());
        Some(self.proposal(&next))
    }

    fn proposal(&self, isr: &BTreeSet<NodeId>) -> IsrProposal {
        IsrProposal {
            leader_epoch: self.epoch,
            partition_epoch: self.partition_epoch,
            isr: isr.iter().copied().collect(),
        }
    }

    /// The pending proposal, to send again when its answer may have been lost.
    pub fn pending_proposal(&self) -> Option<IsrProposal> {
        self.pending_isr.as_ref().map(|p| self.proposal(p))
    }

    /// The controller committed `isr` at `partition_epoch` (an ISR change or a reassignment at
    /// this leader epoch).
    pub fn on_partition_change(&mut self, isr: &[NodeId], partition_epoch: i32) {
        if partition_epoch <= self.partition_epoch {
            return;
        }
        self.partition_epoch = partition_epoch;
        self.isr = isr.iter().copied().collect();
        self.pending_isr = None;
        self.advance_hw();
    }

    /// The controller refused the pending proposal (stale epochs): propose afresh later.
    pub fn on_proposal_rejected(&mut self) {
        self.pending_isr = None;
    }
}
