//! The follower side of one partition.

use crate::{Epoch, EpochHistory, LogPosition, NodeId, Offset, ToFollower, ToLeader};

/// What the follower's I/O edge must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowerAction {
    Send(ToLeader),
    /// Remove everything at and above this offset (the divergent tail).
    Truncate(Offset),
    /// Append the pushed batches `[from, end)` as they are; report durability with
    /// [`FollowerReplica::on_durable`].
    Append {
        from: Offset,
        end: Offset,
    },
}

#[derive(Debug)]
pub struct FollowerReplica {
    leader: NodeId,
    epoch: Epoch,
    /// The local log's written and durable ends, and the high watermark the leader sent.
    pos: LogPosition,
    /// The handshake found the divergence point; pushes are appended from here on.
    ready: bool,
    /// The epoch the pending `Hello` asks about, and when it went (it is resent until answered).
    asked_epoch: Epoch,
    hello_ms: u64,
    hello_retry_ms: u64,
    /// When the leader was last heard from (a push, or the handshake's answer).
    heard_ms: u64,
}

fn message_epoch(message: &ToFollower) -> Epoch {
    match *message {
        ToFollower::Push { epoch, .. } | ToFollower::EpochEnd { epoch, .. } => epoch,
    }
}

impl FollowerReplica {
    /// Starts following `leader` at `epoch`; the returned action opens the handshake, which
    /// [`Self::tick`] repeats every `hello_retry_ms` until the leader answers.
    pub fn new(
        leader: NodeId,
        epoch: Epoch,
        at: LogPosition,
        history: &impl EpochHistory,
        now_ms: u64,
        hello_retry_ms: u64,
    ) -> (FollowerReplica, FollowerAction) {
        let f = FollowerReplica {
            leader,
            epoch,
            pos: LogPosition {
                hw: at.hw.min(at.log_end),
                ..at
            },
            ready: false,
            asked_epoch: history.latest_epoch(),
            hello_ms: now_ms,
            hello_retry_ms,
            heard_ms: now_ms,
        };
        let hello = f.hello();
        (f, hello)
    }

    fn hello(&self) -> FollowerAction {
        FollowerAction::Send(ToLeader::Hello {
            epoch: self.epoch,
            last_epoch: self.asked_epoch,
        })
    }

    /// The handshake's `Hello` again when its answer is overdue; after it, the last ack again
    /// when the leader has been silent that long (the ack that ends the handshake may be lost).
    pub fn tick(&mut self, now_ms: u64) -> Option<FollowerAction> {
        if !self.ready {
            if now_ms.saturating_sub(self.hello_ms) < self.hello_retry_ms {
                return None;
            }
            self.hello_ms = now_ms;
            return Some(self.hello());
        }
        if now_ms.saturating_sub(self.heard_ms) < self.hello_retry_ms {
            return None;
        }
        self.heard_ms = now_ms;
        Some(self.ack())
    }

    pub fn leader(&self) -> NodeId {
        self.leader
    }
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    pub fn position(&self) -> LogPosition {
        self.pos
    }

    /// A message from the leader. `history` is the local log's, as it is now.
    pub fn on_message(
        &mut self,
        message: &ToFollower,
        history: &impl EpochHistory,
        now_ms: u64,
    ) -> Vec<FollowerAction> {
        if message_epoch(message) == self.epoch {
            self.heard_ms = now_ms;
        }
        match *message {
            ToFollower::EpochEnd {
                epoch,
                found_epoch,
                end,
            } if epoch == self.epoch && !self.ready => self.on_epoch_end(found_epoch, end, history),
            ToFollower::Push {
                epoch,
                from,
                end,
                hw,
            } if epoch == self.epoch => self.on_push(from, end, hw),
            ToFollower::Push { epoch, .. } if epoch < self.epoch => {
                // A deposed leader: tell it where this follower stands in the newer epoch.
                vec![FollowerAction::Send(ToLeader::Nack {
                    epoch,
                    log_end: self.pos.log_end,
                })]
            }
            _ => Vec::new(),
        }
    }

    /// KIP-279: the leader's history at or below our latest epoch ends at `end`, in
    /// `found_epoch`. If we have that epoch, our log is the leader's up to the smaller of the two
    /// ends; if not, ask again about our largest epoch below it.
    fn on_epoch_end(
        &mut self,
        found_epoch: Epoch,
        end: Offset,
        history: &impl EpochHistory,
    ) -> Vec<FollowerAction> {
        let (ours, our_end) = history.end_offset_for_epoch(found_epoch);
        if ours != found_epoch && ours >= 0 {
            self.asked_epoch = ours;
            return vec![self.hello()];
        }
        let keep = end.min(our_end).min(self.pos.log_end);
        let mut actions = Vec::new();
        if keep < self.pos.log_end {
            actions.push(FollowerAction::Truncate(keep));
            self.pos.log_end = keep;
            self.pos.durable_end = self.pos.durable_end.min(keep);
            self.pos.hw = self.pos.hw.min(keep);
        }
        self.ready = true;
        actions.push(FollowerAction::Send(ToLeader::Ack {
            epoch: self.epoch,
            log_end: self.pos.durable_end,
        }));
        actions
    }

    fn on_push(&mut self, from: Offset, end: Offset, hw: Offset) -> Vec<FollowerAction> {
        if !self.ready {
            return Vec::new();
        }
        let nack = FollowerAction::Send(ToLeader::Nack {
            epoch: self.epoch,
            log_end: self.pos.log_end,
        });
        let mut actions = Vec::new();
        if from == self.pos.log_end && end > from {
            actions.push(FollowerAction::Append { from, end });
            self.pos.log_end = end;
        } else if end > self.pos.log_end || from > self.pos.log_end {
            // A gap (an earlier push lost) or an overlap: resend from our end.
            return vec![nack];
        }
        // Data or a heartbeat we already have: acknowledge what is durable.
        self.pos.hw = self.pos.hw.max(hw.min(self.pos.log_end));
        if actions.is_empty() {
            actions.push(self.ack());
        }
        actions
    }

    fn ack(&self) -> FollowerAction {
        FollowerAction::Send(ToLeader::Ack {
            epoch: self.epoch,
            log_end: self.pos.durable_end,
        })
    }

    /// The local log is durable below `durable_end`: acknowledge it (not before the handshake:
    /// the leader takes the first ack as where this log joins its own).
    pub fn on_durable(&mut self, durable_end: Offset) -> Option<FollowerAction> {
        self.pos.durable_end = self.pos.durable_end.max(durable_end.min(self.pos.log_end));
        self.ready.then(|| self.ack())
    }
}
