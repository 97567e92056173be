//! `MetadataNode`: one node's Raft member, active controller (while Raft leader) and broker
//! duties, as one I/O-free state machine. See the crate docs for the message flow.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use shoal_metadata::{
    Controller, ControllerConfig, ControllerError, ControllerReply, ControllerRequest, Endpoints,
    MetadataImage, RecordBatch,
};
use shoal_raft::{
    Entry, EntryType, MessageType, PersistRequest, RaftConfig, RaftError, RaftNode, Ready,
    Recovered, Role, SoftState,
};
use uuid::Uuid;

use crate::duty::BrokerDuty;
use crate::message::{ClusterMessage, RequestKey};

/// Outstanding requests this node originated (clients and duties).
pub const OUTBOUND_REQUESTS_MAX: usize = 4096;
/// Requests received while leader but not yet active (replaying the log).
pub const HELD_REQUESTS_MAX: usize = 4096;
/// Requests proposed and awaiting commit.
pub const AWAITING_COMMIT_MAX: usize = 16_384;
/// Remembered request keys per term, to drop duplicated deliveries.
pub const SEEN_REQUESTS_MAX: usize = 16_384;
/// Messages buffered for the driver between `take_output` calls.
pub const OUTPUT_MESSAGES_MAX: usize = 65_536;

/// Raft ticks run by one `tick` call; a longer pause (a stalled process) skips the rest, as if
/// the ticks had been lost.
pub const RAFT_TICKS_PER_CALL_MAX: u32 = 100;

/// A client request's local handle.
pub type RequestId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub node_id: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// One Raft tick; election after `election_tick` ticks of silence.
    pub tick_interval_ms: u64,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    pub election_seed: u64,
    pub controller: ControllerConfig,
    /// A client request not answered by then fails with `Timeout`.
    pub request_timeout_ms: u64,
    /// Entries kept in the Raft log before a snapshot of the image replaces them.
    pub snapshot_entries_max: u64,
    /// This process's identity (new at every start): the broker incarnation id.
    pub incarnation_id: Uuid,
    pub endpoints: Endpoints,
    pub rack: Option<String>,
}

impl NodeConfig {
    /// Defaults: 100 ms ticks, election after 1-2 s, heartbeats 500 ms, session 2 s.
    pub fn new(node_id: u64, voters: Vec<u64>, learners: Vec<u64>, incarnation_id: Uuid) -> Self {
        NodeConfig {
            node_id,
            voters,
            learners,
            tick_interval_ms: 100,
            election_tick: 10,
            heartbeat_tick: 2,
            election_seed: node_id,
            controller: ControllerConfig::default(),
            request_timeout_ms: 5000,
            snapshot_entries_max: 1000,
            incarnation_id,
            endpoints: Endpoints {
                kafka: String::new(),
                cluster: String::new(),
            },
            rack: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Raft(#[from] RaftError),
    #[error("snapshot image: {0}")]
    Snapshot(String),
    #[error("node id {0} does not fit a broker id")]
    BadNodeId(u64),
    #[error("config: {0}")]
    Config(&'static str),
}

/// One committed entry as this node applied it (a change feed for shards, and the simulator's
/// consistency checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Entry {
        index: u64,
        term: u64,
        data: Vec<u8>,
    },
    /// The image was replaced by a snapshot covering every entry up to `index`.
    Snapshot { index: u64 },
}

/// What the driver must do after a call.
#[derive(Debug, Default)]
pub struct Output {
    /// Messages to send (to node id). Raft messages appear only after their ready persisted.
    pub messages: Vec<(u64, ClusterMessage)>,
    /// Answers to `client_request`s; successes only once committed.
    pub answers: Vec<(RequestId, Result<ControllerReply, ControllerError>)>,
    pub applied: Vec<Applied>,
}

/// Durable writes to do, then hand back to [`MetadataNode::persisted`].
pub struct NodeReady {
    pub persist: PersistRequest,
    inner: Ready,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Client,
    Duty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// No leader known yet.
    Queued,
    /// Handled or held by this node as leader.
    Local,
    Sent {
        to: u64,
        term: u64,
    },
}

struct Outbound {
    request: ControllerRequest,
    purpose: Purpose,
    deadline_ms: u64,
    route: Route,
}

struct Waiter {
    term: u64,
    key: RequestKey,
    reply: Result<ControllerReply, ControllerError>,
}

struct Active {
    controller: Controller,
    term: u64,
}

pub struct MetadataNode {
    config: NodeConfig,
    raft: RaftNode,
    image: Arc<MetadataImage>,
    applied_index: u64,
    now_ms: u64,
    next_raft_tick_ms: u64,
    soft: SoftState,
    active: Option<Active>,
    /// While leader and not active: activate once this index is applied.
    activation_index: Option<u64>,
    activations: u8,
    held: VecDeque<(RequestKey, ControllerRequest)>,
    awaiting: BTreeMap<u64, Vec<Waiter>>,
    seen: (BTreeSet<RequestKey>, VecDeque<RequestKey>),
    outbound: BTreeMap<u64, Outbound>,
    next_seq: u64,
    duty: BrokerDuty,
    out: Output,
    ready_outstanding: bool,
    apply_errors: u64,
    /// The last Raft leader other than this node that it knew of.
    last_other_leader: Option<u64>,
}

impl MetadataNode {
    /// A node over what its durable store recovered; starts at time `now_ms`.
    pub fn new(config: NodeConfig, recovered: Recovered, now_ms: u64) -> Result<Self, NodeError> {
        let broker_id =
            i32::try_from(config.node_id).map_err(|_| NodeError::BadNodeId(config.node_id))?;
        if config.tick_interval_ms == 0
            || config.request_timeout_ms == 0
            || config.snapshot_entries_max == 0
            || config.controller.broker_heartbeat_interval_ms == 0
            || config.controller.broker_session_timeout_ms
                <= config.controller.broker_heartbeat_interval_ms
        {
            return Err(NodeError::Config(
                "intervals, timeouts and snapshot_entries_max must be positive, session > heartbeat",
            ));
        }
        let mut image = MetadataImage::new();
        let mut applied_index = 0;
        if let Some(s) = &recovered.snapshot {
            image =
                MetadataImage::decode(&s.data).map_err(|e| NodeError::Snapshot(e.to_string()))?;
            applied_index = s.metadata.as_ref().map_or(0, |m| m.index);
        }
        let mut raft_config = RaftConfig::new(
            config.node_id,
            config.voters.clone(),
            config.learners.clone(),
        );
        raft_config.election_tick = config.election_tick;
        raft_config.heartbeat_tick = config.heartbeat_tick;
        raft_config.election_seed = config.election_seed;
        let mut raft = RaftNode::new(raft_config, recovered)?;
        if config.voters == [config.node_id] {
            raft.campaign()?; // A quorum of one need not wait for an election timeout.
        }
        let duty = BrokerDuty::new(broker_id, config.controller.broker_heartbeat_interval_ms);
        let soft = raft.soft_state();
        Ok(MetadataNode {
            next_raft_tick_ms: now_ms + config.tick_interval_ms,
            config,
            raft,
            image: Arc::new(image),
            applied_index,
            now_ms,
            soft,
            active: None,
            activation_index: None,
            activations: 0,
            held: VecDeque::new(),
            awaiting: BTreeMap::new(),
            seen: (BTreeSet::new(), VecDeque::new()),
            outbound: BTreeMap::new(),
            next_seq: 1,
            duty,
            out: Output::default(),
            ready_outstanding: false,
            apply_errors: 0,
            last_other_leader: None,
        })
    }

    pub fn node_id(&self) -> u64 {
        self.config.node_id
    }
    /// The latest applied image; cheap to clone and hand to shards.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image)
    }
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }
    /// The Raft leader this node knows of: the controller id for Metadata responses.
    pub fn controller_id(&self) -> Option<u64> {
        self.soft.leader_id
    }
    /// True while this node is Raft leader of the current term and has replayed the log.
    pub fn is_active_controller(&self) -> bool {
        self.active.is_some()
    }
    pub fn soft_state(&self) -> SoftState {
        self.soft
    }
    /// This node's broker epoch once registered.
    pub fn broker_epoch(&self) -> Option<i64> {
        self.duty.broker_epoch()
    }
    /// Asks the controller to move this broker's leaderships away (controlled shutdown); once
    /// [`Self::shutdown_ready`], the broker stops heartbeating and the process may exit.
    pub fn begin_controlled_shutdown(&mut self) {
        self.duty.request_shutdown();
    }

    /// Whether the controller last told this broker it is fenced (true until first unfenced).
    pub fn broker_fenced(&self) -> bool {
        self.duty.fenced()
    }

    pub fn shutdown_ready(&self) -> bool {
        self.duty.shutdown_done()
    }

    /// Committed batches that did not apply (a controller bug if ever non-zero).
    pub fn apply_errors(&self) -> u64 {
        self.apply_errors
    }
    /// Takes what the driver must send and deliver.
    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }

    /// Advances time: Raft ticks, controller fencing, request timeouts, broker duties.
    pub fn tick(&mut self, now_ms: u64) {
        assert!(now_ms >= self.now_ms, "time went backwards");
        self.now_ms = now_ms;
        let mut ticks = 0;
        while self.next_raft_tick_ms <= now_ms {
            if ticks == RAFT_TICKS_PER_CALL_MAX {
                self.next_raft_tick_ms = now_ms + self.config.tick_interval_ms;
                break;
            }
            self.raft.tick();
            ticks += 1;
            self.next_raft_tick_ms += self.config.tick_interval_ms;
        }
        self.update_role();
        if let Some(active) = &mut self.active {
            for records in active.controller.tick(now_ms) {
                self.propose_records(records, None);
            }
        }
        self.expire_requests();
        self.dispatch_queued();
        self.run_duty();
    }

    /// A message from node `from`.
    pub fn receive(&mut self, from: u64, msg: ClusterMessage) {
        match msg {
            ClusterMessage::Raft(m) => {
                if m.from == from && m.to == self.config.node_id {
                    // A refused message (stale, unknown peer) is dropped like a lost one.
                    let _ = self.raft.step(m);
                    self.update_role();
                }
            }
            ClusterMessage::ControllerRequest { term, key, request } => {
                if key.node_id != from {
                    return;
                }
                self.on_controller_request(term, key, request);
            }
            ClusterMessage::ControllerReply { key, reply } => {
                let own = key.node_id == self.config.node_id
                    && key.incarnation_id == self.config.incarnation_id;
                let sent_there = self
                    .outbound
                    .get(&key.seq)
                    .is_some_and(|o| matches!(o.route, Route::Sent { to, .. } if to == from));
                if own && sent_there {
                    self.complete(key.seq, reply);
                }
            }
        }
    }

    /// Submits a controller request (CreateTopics, ...); its answer comes in `Output::answers`.
    pub fn client_request(&mut self, request: ControllerRequest) -> RequestId {
        self.submit(request, Purpose::Client, self.config.request_timeout_ms)
    }

    /// Durable writes to do, if any (and no earlier ones are still outstanding).
    pub fn poll_ready(&mut self) -> Option<NodeReady> {
        if self.ready_outstanding {
            return None;
        }
        let inner = self.raft.drain_ready()?;
        self.ready_outstanding = true;
        Some(NodeReady {
            persist: inner.persist.clone(),
            inner,
        })
    }

    /// Call once `ready.persist` is durable: releases its messages and applies committed entries.
    pub fn persisted(&mut self, ready: NodeReady) {
        assert!(
            self.ready_outstanding,
            "persisted() without an outstanding ready"
        );
        self.ready_outstanding = false;
        let advanced = self.raft.persisted(ready.inner);
        for m in advanced.messages {
            if m.msg_type == MessageType::MsgSnapshot as i32 {
                // Optimistic: if it is lost, the follower's next probe asks for another.
                self.raft.report_snapshot(m.to, true);
            }
            self.send(m.to, ClusterMessage::Raft(m));
        }
        if let Some(s) = advanced.snapshot {
            self.load_snapshot(&s.data, s.metadata.map_or(0, |m| m.index));
        }
        for e in advanced.committed {
            self.apply_entry(e);
        }
        self.maybe_compact();
        self.update_role();
    }

    fn send(&mut self, to: u64, msg: ClusterMessage) {
        if self.out.messages.len() < OUTPUT_MESSAGES_MAX {
            self.out.messages.push((to, msg));
        }
    }

    fn load_snapshot(&mut self, data: &[u8], index: u64) {
        match MetadataImage::decode(data) {
            Ok(image) => {
                self.image = Arc::new(image);
                self.applied_index = index;
                self.out.applied.push(Applied::Snapshot { index });
            }
            Err(_) => self.apply_errors += 1,
        }
        // Whatever awaited entries the snapshot covers, its term is unknown here: outcome unknown.
        let covered: Vec<u64> = self.awaiting.range(..=index).map(|(&i, _)| i).collect();
        for i in covered {
            for w in self.awaiting.remove(&i).unwrap_or_default() {
                self.deliver(w.key, Err(ControllerError::NotController));
            }
        }
    }

    fn apply_entry(&mut self, e: Entry) {
        if e.index <= self.applied_index {
            return; // Covered by the snapshot this node started from.
        }
        assert_eq!(e.index, self.applied_index + 1, "entries apply in order");
        self.applied_index = e.index;
        if e.entry_type == EntryType::EntryNormal as i32 && !e.data.is_empty() {
            let applied = RecordBatch::decode(&e.data)
                .ok()
                .is_some_and(|batch| Arc::make_mut(&mut self.image).apply_batch(&batch).is_ok());
            if !applied {
                self.apply_errors += 1; // Every node skips the same batch: still deterministic.
            }
        }
        self.out.applied.push(Applied::Entry {
            index: e.index,
            term: e.term,
            data: e.data,
        });
        for w in self.awaiting.remove(&e.index).unwrap_or_default() {
            let reply = if w.term == e.term {
                w.reply
            } else {
                Err(ControllerError::NotController)
            };
            self.deliver(w.key, reply);
        }
    }

    fn maybe_compact(&mut self) {
        let applied = self.raft.applied_index();
        if applied == self.applied_index
            && applied > self.raft.snapshot_index()
            && self.raft.log_entries() >= self.config.snapshot_entries_max
        {
            if let Ok(data) = self.image.encode() {
                let _ = self.raft.compact(applied, data);
            }
        }
    }

    /// Follows Raft's role: deactivates the controller the moment this node is not the leader
    /// of the term it activated in; activates once a new leader has applied its whole log.
    fn update_role(&mut self) {
        let soft = self.raft.soft_state();
        let changed = soft != self.soft;
        if let Some(l) = self.soft.leader_id.filter(|&l| l != self.config.node_id) {
            self.last_other_leader = Some(l);
        }
        self.soft = soft;
        let leader = soft.role == Role::Leader;
        if self
            .active
            .as_ref()
            .is_some_and(|a| !leader || a.term != soft.term)
        {
            self.deactivate();
        }
        if !leader {
            self.activation_index = None;
            self.refuse_held();
        } else if self.active.is_none() && self.activation_index.is_none() {
            self.activation_index = Some(self.raft.last_index());
        }
        if changed {
            self.reroute_sent();
        }
        self.try_activate();
    }

    fn try_activate(&mut self) {
        let Some(index) = self.activation_index else {
            return;
        };
        if self.applied_index < index || self.raft.applied_index() < index {
            return;
        }
        self.activation_index = None;
        self.activations = self.activations.wrapping_add(1);
        let mut controller = Controller::new(
            self.config.controller.clone(),
            &self.image,
            self.soft.term,
            self.activations,
            self.now_ms,
        );
        // The node this one took over from stopped answering Raft for an election timeout:
        // unless it heartbeats at once, it is fenced without the full session the others get.
        if let Some(previous) = self.last_other_leader.take() {
            controller.shorten_session(previous as i32, self.now_ms);
        }
        self.active = Some(Active {
            controller,
            term: self.soft.term,
        });
        self.seen.0.clear();
        self.seen.1.clear();
        while let Some((key, request)) = self.held.pop_front() {
            self.handle_as_controller(key, request);
        }
    }

    fn deactivate(&mut self) {
        self.active = None;
        let awaiting = std::mem::take(&mut self.awaiting);
        for w in awaiting.into_values().flatten() {
            self.deliver(w.key, Err(ControllerError::NotController));
        }
    }

    fn refuse_held(&mut self) {
        while let Some((key, _)) = self.held.pop_front() {
            self.deliver(key, Err(ControllerError::NotController));
        }
    }

    fn on_controller_request(&mut self, term: u64, key: RequestKey, request: ControllerRequest) {
        let for_me = self.soft.role == Role::Leader && term == self.soft.term;
        if !for_me {
            self.deliver(key, Err(ControllerError::NotController));
        } else if self.active.is_some() {
            self.handle_as_controller(key, request);
        } else if self.held.len() < HELD_REQUESTS_MAX {
            self.held.push_back((key, request));
        } else {
            self.deliver(key, Err(ControllerError::NotController));
        }
    }

    fn remember(&mut self, key: RequestKey) -> bool {
        if !self.seen.0.insert(key) {
            return false;
        }
        self.seen.1.push_back(key);
        if self.seen.1.len() > SEEN_REQUESTS_MAX {
            let old = self.seen.1.pop_front().expect("non-empty");
            self.seen.0.remove(&old);
        }
        true
    }

    /// Decides a request as active controller; the answer waits for the commit of its records,
    /// or of an empty barrier entry when it has none (so even "nothing to do" answers are given
    /// only by a leader the quorum still follows, after everything proposed before them).
    fn handle_as_controller(&mut self, key: RequestKey, request: ControllerRequest) {
        if !self.remember(key) {
            return; // A duplicate delivery; the first one will be answered.
        }
        let Some(active) = &mut self.active else {
            return self.deliver(key, Err(ControllerError::NotController));
        };
        let decision = active.controller.handle(&request, self.now_ms);
        if decision.records.is_empty() && request.is_broker_lifecycle() {
            return self.deliver(key, decision.reply);
        }
        self.propose_records(decision.records, Some((key, decision.reply)));
    }

    fn propose_records(
        &mut self,
        records: Vec<shoal_metadata::MetadataRecord>,
        waiter: Option<(RequestKey, Result<ControllerReply, ControllerError>)>,
    ) {
        let data = if records.is_empty() {
            Ok(Vec::new())
        } else {
            RecordBatch::new(records).encode()
        };
        let proposed = match data {
            Ok(data) if self.awaiting.len() < AWAITING_COMMIT_MAX => {
                self.raft.propose(data).map_err(|e| e.to_string())
            }
            Ok(_) => Err("too many proposals awaiting commit".into()),
            Err(e) => Err(e.to_string()),
        };
        match proposed {
            Ok(pid) => {
                if let Some((key, reply)) = waiter {
                    let w = Waiter {
                        term: pid.term,
                        key,
                        reply,
                    };
                    self.awaiting.entry(pid.index).or_default().push(w);
                }
            }
            Err(why) => {
                // The controller's pending image now holds records that will never commit:
                // rebuild it from the log once everything proposed so far is applied.
                if let Some((key, _)) = waiter {
                    self.deliver(key, Err(ControllerError::Internal(why)));
                }
                self.deactivate();
                if self.soft.role == Role::Leader {
                    self.activation_index = Some(self.raft.last_index());
                }
            }
        }
    }

    /// Sends an answer where the request came from.
    fn deliver(&mut self, key: RequestKey, reply: Result<ControllerReply, ControllerError>) {
        let own =
            key.node_id == self.config.node_id && key.incarnation_id == self.config.incarnation_id;
        if own {
            self.complete(key.seq, reply);
        } else {
            self.send(key.node_id, ClusterMessage::ControllerReply { key, reply });
        }
    }

    fn submit(&mut self, request: ControllerRequest, purpose: Purpose, timeout_ms: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.outbound.len() >= OUTBOUND_REQUESTS_MAX {
            let reply = Err(ControllerError::InvalidRequest(
                "too many requests in flight".into(),
            ));
            self.finish(seq, purpose, reply);
            return seq;
        }
        let o = Outbound {
            request,
            purpose,
            deadline_ms: self.now_ms + timeout_ms,
            route: Route::Queued,
        };
        self.outbound.insert(seq, o);
        self.dispatch(seq);
        seq
    }

    fn key(&self, seq: u64) -> RequestKey {
        RequestKey {
            node_id: self.config.node_id,
            incarnation_id: self.config.incarnation_id,
            seq,
        }
    }

    /// Routes a queued request: to this node's controller, or to the known leader.
    fn dispatch(&mut self, seq: u64) {
        let Some(o) = self.outbound.get_mut(&seq) else {
            return;
        };
        if o.route != Route::Queued {
            return;
        }
        let me = self.config.node_id;
        let request = o.request.clone();
        if self.soft.role == Role::Leader {
            o.route = Route::Local;
            let key = self.key(seq);
            self.on_controller_request(self.soft.term, key, request);
        } else if let Some(to) = self.soft.leader_id.filter(|&l| l != me) {
            let term = self.soft.term;
            o.route = Route::Sent { to, term };
            let key = self.key(seq);
            self.send(to, ClusterMessage::ControllerRequest { term, key, request });
        }
    }

    fn dispatch_queued(&mut self) {
        let queued: Vec<u64> = self
            .outbound
            .iter()
            .filter(|(_, o)| o.route == Route::Queued)
            .map(|(&s, _)| s)
            .collect();
        for seq in queued {
            self.dispatch(seq);
        }
    }

    /// A request sent to a leader that is no longer leader (or of an older term) may or may not
    /// have been decided: fail it as NotController (the client retries; dedupe by name makes a
    /// retried CreateTopics safe).
    fn reroute_sent(&mut self) {
        let (leader, term) = (self.soft.leader_id, self.soft.term);
        let stale: Vec<u64> = self
            .outbound
            .iter()
            .filter(|(_, o)| matches!(o.route, Route::Sent { to, term: t } if Some(to) != leader || t != term))
            .map(|(&s, _)| s)
            .collect();
        for seq in stale {
            self.complete(seq, Err(ControllerError::NotController));
        }
    }

    fn expire_requests(&mut self) {
        let now = self.now_ms;
        let expired: Vec<u64> = self
            .outbound
            .iter()
            .filter(|(_, o)| o.deadline_ms <= now)
            .map(|(&s, _)| s)
            .collect();
        for seq in expired {
            self.complete(seq, Err(ControllerError::Timeout));
        }
    }

    /// Completes an outbound request (at most once).
    fn complete(&mut self, seq: u64, reply: Result<ControllerReply, ControllerError>) {
        if let Some(o) = self.outbound.remove(&seq) {
            self.finish(seq, o.purpose, reply);
        }
    }

    fn finish(
        &mut self,
        seq: u64,
        purpose: Purpose,
        reply: Result<ControllerReply, ControllerError>,
    ) {
        match purpose {
            Purpose::Client => self.out.answers.push((seq, reply)),
            Purpose::Duty => self.duty.on_reply(reply, self.now_ms),
        }
    }

    fn run_duty(&mut self) {
        let (incarnation_id, endpoints, rack) = (
            self.config.incarnation_id,
            self.config.endpoints.clone(),
            self.config.rack.clone(),
        );
        if let Some((request, timeout_ms)) =
            self.duty
                .next_request(self.now_ms, incarnation_id, &endpoints, &rack)
        {
            self.submit(request, Purpose::Duty, timeout_ms);
        }
    }
}
