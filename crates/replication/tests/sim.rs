//! Seeded simulation of one partition replicated on three nodes (RF=3, min.insync.replicas=2)
//! with `acks=all` producers: simulated clock, network (loss, duplication, delay, reordering,
//! partitions), disk (appends durable after a delay; a crash loses the rest) and a controller
//! model (fencing after a session timeout, clean leader election from the ISR, AlterPartition
//! fenced by leader and partition epoch). Checked at every step:
//! - an offset is never acknowledged with two different records;
//! - every acknowledged record is in every new leader's log, and in every log after healing;
//! - at most one node appends in any leader epoch;
//! - every replica's log below its high watermark is the one committed history;
//! - after healing, all logs are identical and the ISR is full.
//!
//! `SIM_SEEDS=n` runs n seeds (default 200); `SIM_SEED=s` runs one, to reproduce a failure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shoal_replication::{
    AckCheck, Epoch, EpochHistory, FollowerAction, FollowerReplica, IsrProposal, LeaderReplica,
    LogPosition, NodeId, Offset, ReplicationConfig, ToFollower, ToLeader,
};

const NODES: [NodeId; 3] = [1, 2, 3];
const CONTROLLER: NodeId = 0;
const CLIENT: NodeId = 100;
const ENTRY_BYTES: u64 = 100;
const SESSION_TIMEOUT_MS: u64 = 300;
const HEARTBEAT_MS: u64 = 50;
const RUN_MS: u64 = 12_000;
const HEAL_MS: u64 = 6_000;
const QUIET_MS: u64 = 2_000;
const PRODUCE_IN_FLIGHT_MAX: usize = 8;
const PRODUCE_TIMEOUT_MS: u64 = 500;

fn config() -> ReplicationConfig {
    ReplicationConfig {
        lag_time_max_ms: 400,
        inflight_bytes_max: 20 * ENTRY_BYTES,
        heartbeat_interval_ms: 30,
        push_timeout_ms: 200,
        min_insync_replicas: 2,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    epoch: Epoch,
    value: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    leader: NodeId,
    epoch: Epoch,
    partition_epoch: i32,
    isr: Vec<NodeId>,
}

#[derive(Clone, Debug)]
enum Msg {
    ToFollower(ToFollower, Vec<Entry>),
    ToLeader(ToLeader),
    Meta(View),
    /// Carries the node's incarnation: a restarted node registers anew.
    Heartbeat(u64),
    Propose(IsrProposal),
    ProposalAnswer {
        accepted: bool,
        epoch: Epoch,
    },
    Produce(u64),
    ProduceAnswer {
        value: u64,
        offset: Option<Offset>,
    },
}

struct Log<'a>(&'a [Entry], Offset);

impl EpochHistory for Log<'_> {
    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, Offset) {
        let Some(i) = self.0.iter().rposition(|e| e.epoch <= epoch) else {
            return (-1, 0);
        };
        let found = self.0[i].epoch;
        let end = self.0.iter().position(|e| e.epoch > found);
        (found, end.map_or(self.1, |e| e as Offset))
    }
    fn latest_epoch(&self) -> Epoch {
        self.0.last().map_or(-1, |e| e.epoch)
    }
}

enum Role {
    None,
    Leader(LeaderReplica),
    Follower(FollowerReplica),
}

struct Node {
    id: NodeId,
    alive: bool,
    paused_until: u64,
    log: Vec<Entry>,
    durable: usize,
    /// (due time, end) of appends not yet durable.
    disk: VecDeque<(u64, usize)>,
    role: Role,
    view: Option<View>,
    hw_known: Offset,
    waiters: Vec<(u64, Offset)>,
    last_proposal_ms: u64,
    incarnation: u64,
}

impl Node {
    fn new(id: NodeId) -> Node {
        Node {
            id,
            alive: true,
            paused_until: 0,
            log: Vec::new(),
            durable: 0,
            disk: VecDeque::new(),
            role: Role::None,
            view: None,
            hw_known: 0,
            waiters: Vec::new(),
            last_proposal_ms: 0,
            incarnation: 0,
        }
    }
    fn running(&self, now: u64) -> bool {
        self.alive && now >= self.paused_until
    }
    fn ends(&self) -> LogPosition {
        LogPosition {
            log_end: self.log.len() as Offset,
            durable_end: self.durable as Offset,
            hw: self.hw_known.min(self.durable as Offset),
        }
    }
    fn hw(&self) -> Option<Offset> {
        match &self.role {
            Role::Leader(l) => Some(l.position().hw),
            Role::Follower(f) => Some(f.position().hw),
            Role::None => None,
        }
    }
}

struct Controller {
    view: View,
    fenced: BTreeSet<NodeId>,
    last_heartbeat: BTreeMap<NodeId, u64>,
    incarnations: BTreeMap<NodeId, u64>,
}

struct Sim {
    now: u64,
    rng: StdRng,
    seed: u64,
    nodes: Vec<Node>,
    controller: Controller,
    network: Vec<(u64, NodeId, NodeId, Msg)>,
    /// Unordered pairs of ids whose link is cut.
    cuts: BTreeSet<(NodeId, NodeId)>,
    faults: bool,
    producing: bool,
    loss: f64,
    next_value: u64,
    /// Produce requests without an answer yet, by value: when they went out.
    in_flight: BTreeMap<u64, u64>,
    acked: BTreeMap<Offset, u64>,
    writers: BTreeMap<Epoch, NodeId>,
    committed: Vec<u64>,
    appended: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let rng = StdRng::seed_from_u64(seed);
        let view = View {
            leader: 1,
            epoch: 0,
            partition_epoch: 0,
            isr: NODES.to_vec(),
        };
        let mut sim = Sim {
            now: 0,
            rng,
            seed,
            nodes: NODES.iter().map(|&id| Node::new(id)).collect(),
            controller: Controller {
                view,
                fenced: BTreeSet::new(),
                last_heartbeat: NODES.iter().map(|&n| (n, 0)).collect(),
                incarnations: NODES.iter().map(|&n| (n, 0)).collect(),
            },
            network: Vec::new(),
            cuts: BTreeSet::new(),
            faults: true,
            producing: true,
            loss: 0.0,
            next_value: 1,
            in_flight: BTreeMap::new(),
            acked: BTreeMap::new(),
            writers: BTreeMap::new(),
            committed: Vec::new(),
            appended: 0,
        };
        sim.loss = sim.rng.gen_range(0.0..0.05);
        sim.broadcast_view();
        sim
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("{:>6} ms: {}", self.now, what());
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {} at {} ms: {what}", self.seed, self.now);
    }

    fn node(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn cut(&self, a: NodeId, b: NodeId) -> bool {
        self.cuts.contains(&(a.min(b), a.max(b)))
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        if self.cut(from, to) || self.rng.gen_bool(self.loss) {
            return;
        }
        let copies = if self.rng.gen_bool(0.02) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.rng.gen_range(1..15);
            self.network.push((self.now + delay, from, to, msg.clone()));
        }
    }

    fn broadcast_view(&mut self) {
        let view = self.controller.view.clone();
        for id in NODES {
            self.send(CONTROLLER, id, Msg::Meta(view.clone()));
        }
    }

    // ---- controller model ----

    fn controller_change(&mut self, change: impl FnOnce(&mut View, &BTreeSet<NodeId>)) {
        let before = self.controller.view.clone();
        let fenced = self.controller.fenced.clone();
        change(&mut self.controller.view, &fenced);
        let v = &mut self.controller.view;
        if v.leader != before.leader {
            v.epoch += 1;
        }
        if *v != before {
            v.partition_epoch = before.partition_epoch + 1;
            self.broadcast_view();
        }
    }

    fn elect(v: &mut View, fenced: &BTreeSet<NodeId>) {
        if v.leader >= 0 && !fenced.contains(&v.leader) {
            return;
        }
        v.leader = v
            .isr
            .iter()
            .copied()
            .find(|n| !fenced.contains(n))
            .unwrap_or(-1);
    }

    /// KRaft on a fenced broker: out of every ISR it is not the last member of, and its
    /// leaderships go to another ISR member.
    fn fence(&mut self, n: NodeId) {
        self.controller.fenced.insert(n);
        self.controller_change(|v, fenced| {
            if v.isr.len() > 1 {
                v.isr.retain(|&r| r != n);
            }
            Self::elect(v, fenced);
        });
    }

    fn controller_tick(&mut self) {
        let now = self.now;
        let newly_fenced: Vec<NodeId> = NODES
            .iter()
            .copied()
            .filter(|n| !self.controller.fenced.contains(n))
            .filter(|n| now - self.controller.last_heartbeat[n] > SESSION_TIMEOUT_MS)
            .collect();
        for n in newly_fenced {
            self.fence(n);
        }
        if now % 200 == 0 {
            self.broadcast_view();
        }
    }

    fn controller_receive(&mut self, from: NodeId, msg: Msg) {
        match msg {
            Msg::Heartbeat(incarnation) => {
                // A new incarnation is a restart: whatever it led before is fenced first, so
                // its leaderships move (or get a new epoch) before it serves again.
                if self.controller.incarnations.insert(from, incarnation) != Some(incarnation) {
                    self.fence(from);
                }
                self.controller.last_heartbeat.insert(from, self.now);
                if self.controller.fenced.remove(&from) {
                    self.controller_change(Self::elect);
                }
            }
            Msg::Propose(p) => {
                let v = &self.controller.view;
                let accepted = from == v.leader
                    && p.leader_epoch == v.epoch
                    && p.partition_epoch == v.partition_epoch
                    && p.isr.contains(&from)
                    && p.isr.iter().all(|n| !self.controller.fenced.contains(n));
                if accepted {
                    self.controller_change(|v, _| v.isr = p.isr.clone());
                }
                let epoch = p.leader_epoch;
                self.send(CONTROLLER, from, Msg::ProposalAnswer { accepted, epoch });
            }
            _ => {}
        }
    }

    // ---- nodes ----

    fn on_view(&mut self, id: NodeId, view: View) {
        let now = self.now;
        self.trace(|| format!("node {id} gets {view:?}"));
        let n = self.node(id);
        let newer = n
            .view
            .as_ref()
            .is_none_or(|v| (view.epoch, view.partition_epoch) > (v.epoch, v.partition_epoch));
        if !newer {
            return;
        }
        n.view = Some(view.clone());
        if let Some(hw) = n.hw() {
            n.hw_known = n.hw_known.max(hw);
        }
        if let Role::Leader(l) = &mut n.role {
            if view.leader == id && view.epoch == l.epoch() {
                l.on_partition_change(&view.isr, view.partition_epoch);
                return;
            }
        }
        if let Role::Follower(f) = &n.role {
            if view.leader == f.leader() && view.epoch == f.epoch() {
                return;
            }
        }
        self.fail_waiters(id);
        let n = self.node(id);
        if view.leader == id {
            let l = LeaderReplica::new(
                id,
                view.epoch,
                view.partition_epoch,
                &NODES,
                &view.isr,
                n.ends(),
                now,
                config(),
            );
            n.role = Role::Leader(l);
            self.check_new_leader(id);
        } else if view.leader > 0 {
            let ends = n.ends();
            let log = Log(&n.log, ends.log_end);
            let retry = config().push_timeout_ms;
            let (f, hello) = FollowerReplica::new(view.leader, view.epoch, ends, &log, now, retry);
            n.role = Role::Follower(f);
            self.do_follower_actions(id, vec![hello]);
        } else {
            n.role = Role::None;
        }
    }

    fn check_new_leader(&mut self, id: NodeId) {
        let log: Vec<u64> = self.node(id).log.iter().map(|e| e.value).collect();
        for (&o, &v) in &self.acked {
            if log.get(o as usize) != Some(&v) {
                self.fail(format!(
                    "new leader {id} lacks acknowledged record {v} at offset {o} (log {} long)",
                    log.len()
                ));
            }
        }
    }

    fn fail_waiters(&mut self, id: NodeId) {
        let waiters = std::mem::take(&mut self.node(id).waiters);
        for (value, _) in waiters {
            let answer = Msg::ProduceAnswer {
                value,
                offset: None,
            };
            self.send(id, CLIENT, answer);
        }
    }

    fn do_follower_actions(&mut self, id: NodeId, actions: Vec<FollowerAction>) {
        // Pushed entries are staged by the caller in `staged`; see `node_receive`.
        let leader = match &self.node(id).role {
            Role::Follower(f) => f.leader(),
            _ => return,
        };
        for a in actions {
            match a {
                FollowerAction::Send(m) => self.send(id, leader, Msg::ToLeader(m)),
                FollowerAction::Truncate(at) => {
                    let n = self.node(id);
                    n.log.truncate(at as usize);
                    n.durable = n.durable.min(at as usize);
                    n.disk.retain(|&(_, end)| end <= at as usize);
                }
                FollowerAction::Append { .. } => {
                    unreachable!("appends are handled with their data")
                }
            }
        }
    }

    fn node_receive(&mut self, id: NodeId, from: NodeId, msg: Msg) {
        let now = self.now;
        match msg {
            Msg::Meta(view) => self.on_view(id, view),
            Msg::ToFollower(m, entries) => {
                if matches!(m, ToFollower::EpochEnd { .. }) {
                    let len = self.node(id).log.len();
                    self.trace(|| format!("{from} -> follower {id} (log {len}): {m:?}"));
                }
                let n = self.node(id);
                let Role::Follower(f) = &mut n.role else {
                    return;
                };
                if f.leader() != from {
                    return;
                }
                let end = n.log.len() as Offset;
                let actions = f.on_message(&m, &Log(&n.log, end), now);
                let mut rest = Vec::new();
                for a in actions {
                    if let FollowerAction::Append { from: at, end } = a {
                        let n = self.node(id);
                        assert_eq!(at as usize, n.log.len(), "append continues the log");
                        assert_eq!((end - at) as usize, entries.len());
                        n.log.extend_from_slice(&entries);
                        let due = now + self.rng.gen_range(0..4);
                        self.node(id).disk.push_back((due, end as usize));
                    } else {
                        rest.push(a);
                    }
                }
                self.do_follower_actions(id, rest);
            }
            Msg::ToLeader(m) => {
                if !matches!(m, ToLeader::Ack { .. }) {
                    self.trace(|| format!("{from} -> leader {id}: {m:?}"));
                }
                let n = self.node(id);
                let Role::Leader(l) = &mut n.role else {
                    return;
                };
                let end = n.log.len() as Offset;
                if let Some(answer) = l.on_message(from, &m, &Log(&n.log, end), now) {
                    self.send(id, from, Msg::ToFollower(answer, Vec::new()));
                }
            }
            Msg::ProposalAnswer { accepted, epoch } => {
                if let Role::Leader(l) = &mut self.node(id).role {
                    if !accepted && l.epoch() == epoch {
                        l.on_proposal_rejected();
                    }
                }
            }
            Msg::Produce(value) => self.on_produce(id, value),
            _ => {}
        }
    }

    fn on_produce(&mut self, id: NodeId, value: u64) {
        let n = self.node(id);
        let epoch = match &n.role {
            Role::Leader(l) if l.can_append_acks_all() => l.epoch(),
            _ => {
                let answer = Msg::ProduceAnswer {
                    value,
                    offset: None,
                };
                return self.send(id, CLIENT, answer);
            }
        };
        n.log.push(Entry { epoch, value });
        let end = n.log.len();
        n.waiters.push((value, end as Offset));
        if let Role::Leader(l) = &mut n.role {
            l.on_append(end as Offset);
        }
        let due = self.now + self.rng.gen_range(0..4);
        self.node(id).disk.push_back((due, end));
        self.appended += 1;
        if let Some(&w) = self.writers.get(&epoch) {
            if w != id {
                self.fail(format!("nodes {w} and {id} both appended in epoch {epoch}"));
            }
        }
        self.writers.insert(epoch, id);
    }

    fn node_tick(&mut self, id: NodeId) {
        let now = self.now;
        while let Some(&(due, end)) = self.node(id).disk.front() {
            if due > now {
                break;
            }
            let n = self.node(id);
            n.disk.pop_front();
            n.durable = n.durable.max(end.min(n.log.len()));
            let durable = n.durable as Offset;
            match &mut n.role {
                Role::Leader(l) => l.on_durable(durable),
                Role::Follower(f) => {
                    let ack = f.on_durable(durable);
                    self.do_follower_actions(id, ack.into_iter().collect());
                }
                Role::None => {}
            }
        }
        if now % HEARTBEAT_MS == id as u64 {
            let incarnation = self.node(id).incarnation;
            self.send(id, CONTROLLER, Msg::Heartbeat(incarnation));
        }
        if now % 5 != 0 {
            return;
        }
        if let Role::Follower(f) = &mut self.node(id).role {
            let hello = f.tick(now);
            self.do_follower_actions(id, hello.into_iter().collect());
        }
        let n = self.node(id);
        let Role::Leader(l) = &mut n.role else {
            return;
        };
        let mut sends = Vec::new();
        for plan in l.plan_pushes(now) {
            let from = plan.from as usize;
            if from > n.log.len() {
                let what = format!(
                    "leader {id} (epoch {}) plans a push to {} from {from}, past its log end {}",
                    l.epoch(),
                    plan.to,
                    n.log.len()
                );
                self.fail(what);
            }
            let count = (plan.bytes_max / ENTRY_BYTES) as usize;
            let entries: Vec<Entry> = n.log[from..(from + count).min(n.log.len())].to_vec();
            let end = plan.from + entries.len() as Offset;
            let bytes = entries.len() as u64 * ENTRY_BYTES;
            let m = l.on_pushed(plan.to, plan.from, end, bytes, now);
            sends.push((plan.to, Msg::ToFollower(m, entries)));
        }
        let proposal = l.tick(now).or_else(|| {
            let resend = now.saturating_sub(n.last_proposal_ms) > 250;
            l.pending_proposal().filter(|_| resend)
        });
        if proposal.is_some() {
            n.last_proposal_ms = now;
        }
        let hw = l.position().hw;
        let mut answers = Vec::new();
        n.waiters
            .retain(|&(value, end)| match l.check_acks_all(end) {
                AckCheck::Wait => true,
                AckCheck::Done => {
                    answers.push((value, Some(end - 1)));
                    false
                }
                AckCheck::TooFewReplicasAfterAppend => {
                    answers.push((value, None));
                    false
                }
            });
        let prefix: Vec<u64> = n.log[..hw as usize].iter().map(|e| e.value).collect();
        for (to, m) in sends {
            self.send(id, to, m);
        }
        if let Some(p) = proposal {
            self.send(id, CONTROLLER, Msg::Propose(p));
        }
        for (value, offset) in answers {
            self.send(id, CLIENT, Msg::ProduceAnswer { value, offset });
        }
        self.check_committed(id, &prefix);
    }

    /// A replica's log below its high watermark must be the one committed history.
    fn check_committed(&mut self, id: NodeId, prefix: &[u64]) {
        let common = prefix.len().min(self.committed.len());
        if prefix[..common] != self.committed[..common] {
            let at = (0..common)
                .find(|&i| prefix[i] != self.committed[i])
                .unwrap();
            self.fail(format!(
                "node {id}'s log below its high watermark differs from the committed history at {at}"
            ));
        }
        if prefix.len() > self.committed.len() {
            self.committed.extend_from_slice(&prefix[common..]);
        }
    }

    fn follower_hw_check(&mut self) {
        for i in 0..NODES.len() {
            let n = &self.nodes[i];
            if let (Role::Follower(f), true) = (&n.role, n.alive) {
                let hw = f.position().hw as usize;
                let prefix: Vec<u64> = n.log[..hw.min(n.log.len())]
                    .iter()
                    .map(|e| e.value)
                    .collect();
                let id = n.id;
                self.check_committed(id, &prefix);
            }
        }
    }

    // ---- client ----

    fn client_tick(&mut self) {
        let now = self.now;
        // A request unanswered this long has an unknown outcome; the client moves on.
        self.in_flight
            .retain(|_, sent| now - *sent < PRODUCE_TIMEOUT_MS);
        if !self.producing || self.now % 2 != 0 || self.in_flight.len() >= PRODUCE_IN_FLIGHT_MAX {
            return;
        }
        let leader = self.controller.view.leader;
        if leader <= 0 {
            return;
        }
        let value = self.next_value;
        self.next_value += 1;
        self.in_flight.insert(value, now);
        self.send(CLIENT, leader, Msg::Produce(value));
    }

    fn client_receive(&mut self, msg: Msg) {
        let Msg::ProduceAnswer { value, offset } = msg else {
            return;
        };
        self.in_flight.remove(&value);
        if let Some(o) = offset {
            if let Some(&other) = self.acked.get(&o) {
                if other != value {
                    self.fail(format!("offset {o} acknowledged as {other} and as {value}"));
                }
            }
            self.acked.insert(o, value);
        }
    }

    // ---- faults and the loop ----

    fn faults(&mut self) {
        if !self.faults {
            return;
        }
        let now = self.now;
        let r: f64 = self.rng.gen();
        let id = NODES[self.rng.gen_range(0..NODES.len())];
        if r < 0.0006 {
            let n = self.node(id);
            if n.alive {
                let (len, durable) = (n.log.len(), n.durable);
                self.trace(|| format!("node {id} crashes: log {len}, durable {durable}"));
                let n = self.node(id);
                n.alive = false;
                n.log.truncate(n.durable);
                n.disk.clear();
                n.role = Role::None;
                n.view = None;
                n.waiters.clear();
            }
        } else if r < 0.0015 {
            let n = self.node(id);
            if !n.alive {
                n.alive = true;
                n.hw_known = 0;
                n.incarnation += 1;
            }
        } else if r < 0.0018 {
            let pause = self.rng.gen_range(100..800);
            self.node(id).paused_until = now + pause;
        } else if r < 0.0021 {
            let other = [CONTROLLER, 1, 2, 3][self.rng.gen_range(0..4)];
            if other != id {
                self.cuts.insert((id.min(other), id.max(other)));
            }
        } else if r < 0.0030 {
            self.cuts.clear();
        }
        // Reordering beyond random delays: occasionally swap two queued messages' times.
        if r > 0.999 && self.network.len() > 1 {
            let a = self.rng.gen_range(0..self.network.len());
            let b = self.rng.gen_range(0..self.network.len());
            let (ta, tb) = (self.network[a].0, self.network[b].0);
            self.network[a].0 = tb.max(now + 1);
            self.network[b].0 = ta.max(now + 1);
        }
    }

    fn step(&mut self) {
        self.now += 1;
        let now = self.now;
        self.faults();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|m| m.0 <= now);
        self.network = later;
        for (at, from, to, msg) in due {
            match to {
                CONTROLLER => self.controller_receive(from, msg),
                CLIENT => self.client_receive(msg),
                id => {
                    let n = self.node(id);
                    if !n.alive {
                        continue;
                    }
                    if n.paused_until > now {
                        let until = n.paused_until;
                        self.network.push((until.max(at), from, to, msg));
                        continue;
                    }
                    self.node_receive(id, from, msg);
                }
            }
        }
        self.controller_tick();
        for id in NODES {
            if self.node(id).running(now) {
                self.node_tick(id);
            }
        }
        self.follower_hw_check();
        self.client_tick();
    }

    fn heal(&mut self) {
        self.faults = false;
        self.loss = 0.0;
        self.cuts.clear();
        for id in NODES {
            let n = self.node(id);
            if !n.alive {
                n.alive = true;
                n.hw_known = 0;
                n.incarnation += 1;
            }
            n.paused_until = 0;
        }
    }

    fn check_healed(&self) {
        let v = &self.controller.view;
        if v.leader <= 0 || v.isr.len() != NODES.len() {
            let logs: Vec<(usize, usize)> = self
                .nodes
                .iter()
                .map(|n| (n.log.len(), n.durable))
                .collect();
            let leader = match &self.nodes[(v.leader.max(1) - 1) as usize].role {
                Role::Leader(l) => format!("{l:?}"),
                _ => "not leading".into(),
            };
            self.fail(format!(
                "after healing: leader {} ISR {:?}; logs (len, durable) {logs:?}; {leader}",
                v.leader, v.isr
            ));
        }
        let leader_log = &self.nodes[(v.leader - 1) as usize].log;
        for n in &self.nodes {
            if n.log != *leader_log {
                self.fail(format!(
                    "after healing: node {} log ({} entries) differs from leader {}'s ({})",
                    n.id,
                    n.log.len(),
                    v.leader,
                    leader_log.len()
                ));
            }
        }
        for (&o, &value) in &self.acked {
            if leader_log.get(o as usize).map(|e| e.value) != Some(value) {
                self.fail(format!(
                    "after healing: acknowledged {value} at {o} is gone"
                ));
            }
        }
    }
}

fn run(seed: u64) -> (usize, u64) {
    let mut sim = Sim::new(seed);
    while sim.now < RUN_MS {
        sim.step();
    }
    sim.heal();
    while sim.now < RUN_MS + HEAL_MS {
        sim.step();
    }
    // The last stretch without new records, so every replica can catch up.
    sim.producing = false;
    while sim.now < RUN_MS + HEAL_MS + QUIET_MS {
        sim.step();
    }
    sim.check_healed();
    (sim.acked.len(), sim.appended)
}

#[test]
fn replication_keeps_every_acknowledged_record_across_seeds() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("SIM_SEEDS").map_or(200, |s| s.parse().expect("SIM_SEEDS"));
            (0..n).collect()
        }
    };
    let (mut acked, mut appended) = (0, 0);
    for &seed in &seeds {
        let (a, w) = run(seed);
        assert!(
            a > 0,
            "seed {seed}: nothing was acknowledged ({w} appended)"
        );
        acked += a;
        appended += w;
    }
    eprintln!(
        "{} seeds: {acked} acknowledged of {appended} appended records",
        seeds.len()
    );
}
