//! The simulator: nodes, network, clients and the checker.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shoal_cluster::metadata::{
    BrokerState, ConfigOp, ControllerError, ControllerReply, ControllerRequest, MetadataImage,
    MetadataRecord, NewTopic, RecordBatch,
};
use shoal_cluster::raft::{LogStore, MemLogStore, Role};
use shoal_cluster::{Applied, ClusterMessage, MetadataNode, NodeConfig, NodeReady, RequestId};
use uuid::Uuid;

const STEP_MS: u64 = 10;
const CHAOS_MS: u64 = 20_000;
/// After healing, all nodes must agree within this much simulated time.
const CONVERGE_MS_MAX: u64 = 20_000;
const SESSION_MS: u64 = 2000;
/// Fencing a dead broker may take the session timeout plus, if the dead node was the leader,
/// an election (up to 2 election timeouts of 2 s with pre-vote) and the new controller's grace.
const FENCE_SLACK_MS: u64 = 2 * 2000 + SESSION_MS + 1000;
/// With a live controller: the last heartbeat may be up to one interval old, plus the commit.
const FENCE_LIVE_SLACK_MS: u64 = 600;
const DELAY_MS_MAX: u64 = 40;
const CLIENTS: usize = 3;
const CLIENT_TIMEOUT_MS: u64 = 8000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOutcome {
    pub nodes: usize,
    pub committed_entries: u64,
    pub acked_ops: u64,
    pub converged_after_ms: u64,
    /// Time until every node saw the dead broker fenced, and whether it was the controller.
    pub fence_detect_ms: Option<(u64, bool)>,
    pub digest: u64,
    pub stats: Stats,
}

/// What happened during a run (to see that the faults are exercised).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub crashes: u64,
    pub partitions: u64,
    pub messages_lost: u64,
    pub messages_duplicated: u64,
    pub snapshots_loaded: u64,
    pub leader_terms: u64,
    pub not_controller_answers: u64,
    pub timeout_answers: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.messages_lost += o.messages_lost;
        self.messages_duplicated += o.messages_duplicated;
        self.snapshots_loaded += o.snapshots_loaded;
        self.leader_terms += o.leader_terms;
        self.not_controller_answers += o.not_controller_answers;
        self.timeout_answers += o.timeout_answers;
    }
}

struct SimNode {
    id: u64,
    node: Option<MetadataNode>,
    store: MemLogStore,
    /// A ready being persisted: it becomes durable at the given time (a crash before loses it).
    persisting: Option<(NodeReady, u64)>,
    last_applied: u64,
    restarts: u64,
}

struct InFlight {
    at_ms: u64,
    seq: u64,
    from: u64,
    to: u64,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at_ms, self.seq) == (o.at_ms, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.seq).cmp(&(o.at_ms, o.seq))
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        name: String,
        partitions: i32,
        rf: i16,
    },
    Delete {
        name: String,
    },
    Grow {
        name: String,
        count: i32,
    },
    Config {
        name: String,
        value: String,
    },
    /// Broker-side requests, built from the target node's own image and epoch.
    ProducerIds {
        broker: i32,
        epoch: i64,
    },
    AlterIsr {
        broker: i32,
        epoch: i64,
        topic_id: Uuid,
        partition: i32,
        epochs: (i32, i32),
        isr: Vec<i32>,
    },
}

struct Client {
    outstanding: Option<(u64, RequestId, Op, u64)>,
    next_at_ms: u64,
    counter: u64,
    /// Topics this client created (acknowledged) and their partition counts.
    topics: BTreeMap<String, i32>,
    retry: Option<Op>,
}

struct Checker {
    /// The one committed sequence: index → (term, data).
    global: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Image built by applying `global` in order.
    reference: MetadataImage,
    leaders_by_term: BTreeMap<u64, u64>,
    controllers_by_term: BTreeMap<u64, u64>,
    created_names: BTreeSet<String>,
    created_ids: BTreeSet<Uuid>,
    removed_ids: BTreeSet<Uuid>,
    partition_counts_max: BTreeMap<String, usize>,
    config_history: BTreeSet<(String, String, String)>,
    producer_blocks: Vec<(i64, i64)>,
    acked: u64,
}

struct Sim {
    rng: ChaCha8Rng,
    now_ms: u64,
    nodes: Vec<SimNode>,
    voters: Vec<u64>,
    learners: Vec<u64>,
    net: BinaryHeap<Reverse<InFlight>>,
    net_seq: u64,
    blocked: BTreeSet<(u64, u64)>,
    loss: f64,
    dup: f64,
    clients: Vec<Client>,
    clients_on: bool,
    check: Checker,
    stats: Stats,
}

pub fn run_seed(seed: u64) -> Result<SimOutcome, String> {
    let mut sim = Sim::new(seed);
    // Let a first leader emerge before the faults start.
    sim.run_for(3000)?;
    sim.chaos()?;
    let converged_after_ms = sim.heal_and_converge()?;
    let fence_detect_ms = sim.dead_broker_is_fenced()?;
    Ok(SimOutcome {
        nodes: sim.nodes.len(),
        committed_entries: sim.check.global.len() as u64,
        acked_ops: sim.check.acked,
        converged_after_ms,
        fence_detect_ms,
        digest: sim.digest(),
        stats: Stats {
            leader_terms: sim.check.leaders_by_term.len() as u64,
            ..sim.stats
        },
    })
}

/// Controlled shutdown of one broker of a healthy 3-voter cluster: it ends up leading nothing
/// and shutting down in every image, is fenced once it stops heartbeating, and comes back.
pub fn run_controlled_shutdown(seed: u64) -> Result<(), String> {
    let mut sim = Sim::new(seed * 4 + 1);
    sim.run_for(8000)?;
    let victim = 1 + sim.rng.gen_range(0..3u64);
    let vi = sim.index(victim);
    let node = sim.nodes[vi].node.as_mut().ok_or("down")?;
    if node.broker_fenced() {
        return Err("broker fenced in a healthy cluster".into());
    }
    node.begin_controlled_shutdown();
    let start = sim.now_ms;
    while !sim.nodes[sim.index(victim)]
        .node
        .as_ref()
        .is_some_and(|n| n.shutdown_ready())
    {
        if sim.now_ms - start > 3000 {
            return Err(format!("controlled shutdown not done: {}", sim.describe()));
        }
        sim.step()?;
    }
    sim.run_for(100)?;
    for n in sim.nodes.iter().filter_map(|n| n.node.as_ref()) {
        let image = n.image();
        let b = image.broker(victim as i32).ok_or("unregistered")?;
        if b.state != BrokerState::ShuttingDown || image.leads_any(victim as i32) {
            return Err(format!(
                "node {}: {:?}, leads {}",
                n.node_id(),
                b.state,
                image.leads_any(victim as i32)
            ));
        }
    }
    sim.run_for(SESSION_MS + 1000)?;
    let image = sim.nodes[0].node.as_ref().ok_or("down")?.image();
    if image.broker(victim as i32).map(|b| b.state) != Some(BrokerState::Fenced) {
        return Err("a shut-down broker that stopped heartbeating is not fenced".into());
    }
    sim.crash(victim);
    sim.heal_and_converge().map(|_| ())
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (voters, learners): (Vec<u64>, Vec<u64>) = match seed % 4 {
            0 => (vec![1], vec![]),
            1 => (vec![1, 2, 3], vec![]),
            2 => (vec![1, 2, 3, 4, 5], vec![]),
            _ => (vec![1, 2, 3], vec![4]),
        };
        let all: Vec<u64> = voters.iter().chain(&learners).copied().collect();
        let election_seed = rng.gen();
        let mut sim = Sim {
            nodes: Vec::new(),
            rng,
            now_ms: 0,
            voters,
            learners,
            net: BinaryHeap::new(),
            net_seq: 0,
            blocked: BTreeSet::new(),
            loss: 0.0,
            dup: 0.0,
            clients: (0..CLIENTS)
                .map(|_| Client {
                    outstanding: None,
                    next_at_ms: 0,
                    counter: 0,
                    topics: BTreeMap::new(),
                    retry: None,
                })
                .collect(),
            clients_on: true,
            stats: Stats::default(),
            check: Checker {
                global: BTreeMap::new(),
                reference: MetadataImage::new(),
                leaders_by_term: BTreeMap::new(),
                controllers_by_term: BTreeMap::new(),
                created_names: BTreeSet::new(),
                created_ids: BTreeSet::new(),
                removed_ids: BTreeSet::new(),
                partition_counts_max: BTreeMap::new(),
                config_history: BTreeSet::new(),
                producer_blocks: Vec::new(),
                acked: 0,
            },
        };
        for id in all {
            sim.nodes.push(SimNode {
                id,
                node: None,
                store: MemLogStore::new(),
                persisting: None,
                last_applied: 0,
                restarts: election_seed,
            });
            sim.start(id);
        }
        sim
    }

    fn index(&self, id: u64) -> usize {
        (id - 1) as usize
    }

    fn start(&mut self, id: u64) {
        let incarnation = Uuid::from_u128(self.rng.gen());
        let i = self.index(id);
        let n = &mut self.nodes[i];
        n.restarts = n.restarts.wrapping_add(1);
        let mut config =
            NodeConfig::new(id, self.voters.clone(), self.learners.clone(), incarnation);
        config.election_seed = n.restarts.wrapping_mul(0x9e37_79b9) ^ id;
        config.snapshot_entries_max = 50; // Small, so snapshots and catch-up by snapshot happen.
        config.endpoints.kafka = format!("node{id}:9092");
        config.endpoints.cluster = format!("node{id}:9093");
        config.rack = Some(format!("rack{}", id % 2));
        let recovered = n.store.recover();
        let node = MetadataNode::new(config, recovered, self.now_ms).expect("node starts");
        n.last_applied = node.applied_index();
        n.node = Some(node);
        n.persisting = None;
    }

    fn crash(&mut self, id: u64) {
        self.stats.crashes += 1;
        let i = self.index(id);
        self.nodes[i].node = None;
        self.nodes[i].persisting = None; // Not yet durable: lost.
        for c in &mut self.clients {
            if c.outstanding.as_ref().is_some_and(|o| o.0 == id) {
                let (_, _, op, _) = c.outstanding.take().expect("checked");
                c.retry = Some(op);
            }
        }
    }

    fn up(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.node.is_some())
            .map(|n| n.id)
            .collect()
    }

    fn run_for(&mut self, ms: u64) -> Result<(), String> {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.step()?;
        }
        Ok(())
    }

    fn chaos(&mut self) -> Result<(), String> {
        self.loss = 0.03;
        self.dup = 0.02;
        let end = self.now_ms + CHAOS_MS;
        while self.now_ms < end {
            self.fault();
            self.step()?;
        }
        Ok(())
    }

    fn fault(&mut self) {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        let roll: f64 = self.rng.gen();
        if roll < 0.003 {
            let up = self.up();
            if !up.is_empty() {
                let id = up[self.rng.gen_range(0..up.len())];
                self.crash(id);
            }
        } else if roll < 0.008 {
            let down: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| !self.up().contains(id))
                .collect();
            if !down.is_empty() {
                let id = down[self.rng.gen_range(0..down.len())];
                self.start(id);
            }
        } else if roll < 0.010 && ids.len() > 1 {
            // A partition: a random group cut off from the rest, both ways or one way.
            self.stats.partitions += 1;
            let one_way = self.rng.gen_bool(0.3);
            let side: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|_| self.rng.gen_bool(0.5))
                .collect();
            for &a in &side {
                for &b in ids.iter().filter(|b| !side.contains(b)) {
                    self.blocked.insert((a, b));
                    if !one_way {
                        self.blocked.insert((b, a));
                    }
                }
            }
        } else if roll < 0.013 {
            self.blocked.clear();
        }
    }

    fn heal_and_converge(&mut self) -> Result<u64, String> {
        self.blocked.clear();
        self.loss = 0.0;
        self.dup = 0.0;
        let down: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| n.node.is_none())
            .map(|n| n.id)
            .collect();
        for id in down {
            self.start(id);
        }
        self.clients_on = false;
        let start = self.now_ms;
        while self.now_ms - start < CONVERGE_MS_MAX {
            self.step()?;
            if self.converged() {
                return Ok(self.now_ms - start);
            }
        }
        Err(format!(
            "no convergence within {CONVERGE_MS_MAX} ms: {}",
            self.describe()
        ))
    }

    /// All nodes up, same applied index and image, equal to the reference, all brokers
    /// unfenced, an active controller, no client op outstanding.
    fn converged(&self) -> bool {
        let nodes: Vec<&MetadataNode> = self.nodes.iter().filter_map(|n| n.node.as_ref()).collect();
        if nodes.len() != self.nodes.len() || !nodes.iter().any(|n| n.is_active_controller()) {
            return false;
        }
        let head = *self.check.global.keys().last().unwrap_or(&0);
        let image = nodes[0].image();
        nodes
            .iter()
            .all(|n| n.applied_index() == head && *n.image() == *image)
            && *image == self.check.reference
            && image.brokers().count() == self.nodes.len()
            && image.brokers().all(|b| b.state == BrokerState::Unfenced)
            && self.clients.iter().all(|c| c.outstanding.is_none())
    }

    fn dead_broker_is_fenced(&mut self) -> Result<Option<(u64, bool)>, String> {
        if self.voters.len() < 3 {
            return Ok(None);
        }
        let victim = self.nodes[self.rng.gen_range(0..self.nodes.len())].id;
        let was_controller = self.nodes[self.index(victim)]
            .node
            .as_ref()
            .is_some_and(|n| n.is_active_controller());
        // A live controller fences after the session; a dead controller must first be replaced.
        let bound_ms = if was_controller {
            FENCE_SLACK_MS
        } else {
            SESSION_MS + FENCE_LIVE_SLACK_MS
        };
        self.crash(victim);
        let start = self.now_ms;
        while self.now_ms - start <= bound_ms {
            self.step()?;
            let fenced_everywhere = self.nodes.iter().filter_map(|n| n.node.as_ref()).all(|n| {
                n.image()
                    .broker(victim as i32)
                    .is_some_and(|b| b.state == BrokerState::Fenced)
            });
            if fenced_everywhere {
                let took = self.now_ms - start;
                self.start(victim);
                return Ok(Some((took, was_controller)));
            }
        }
        Err(format!(
            "broker {victim} not fenced within {bound_ms} ms: {}",
            self.describe()
        ))
    }

    fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.node {
                None => format!("{}:down", n.id),
                Some(m) => {
                    let s = m.soft_state();
                    format!(
                        "{}:{:?}/t{}/leader{:?}/applied{}/active{}",
                        n.id,
                        s.role,
                        s.term,
                        s.leader_id,
                        m.applied_index(),
                        m.is_active_controller()
                    )
                }
            })
            .collect();
        format!(
            "t={} head={:?} {}",
            self.now_ms,
            self.check.global.keys().last(),
            nodes.join(" ")
        )
    }

    fn digest(&self) -> u64 {
        let mut h: u64 = self.now_ms;
        for (i, (t, d)) in &self.check.global {
            h = h.rotate_left(7) ^ i ^ t.wrapping_mul(31) ^ crc(d);
        }
        h
    }

    /// One simulated step: deliver, tick, persist, route output, run clients, check.
    fn step(&mut self) -> Result<(), String> {
        self.now_ms += STEP_MS;
        self.deliver()?;
        for i in 0..self.nodes.len() {
            if let Some(node) = self.nodes[i].node.as_mut() {
                node.tick(self.now_ms);
            }
            self.drive(i)?;
        }
        self.run_clients()?;
        self.check_step()
    }

    fn deliver(&mut self) -> Result<(), String> {
        while self.net.peek().is_some_and(|m| m.0.at_ms <= self.now_ms) {
            let m = self.net.pop().expect("peeked").0;
            if self.blocked.contains(&(m.from, m.to)) {
                continue;
            }
            let i = self.index(m.to);
            let Some(node) = self.nodes[i].node.as_mut() else {
                continue;
            };
            let (msg, used) = ClusterMessage::decode(&m.bytes)
                .map_err(|e| format!("decode: {e}"))?
                .ok_or("short frame")?;
            if used != m.bytes.len() {
                return Err("frame length mismatch".into());
            }
            node.receive(m.from, msg);
            self.drive(i)?;
        }
        Ok(())
    }

    /// Persists readies (taking 0-20 ms each) and routes the node's output.
    fn drive(&mut self, i: usize) -> Result<(), String> {
        loop {
            let now = self.now_ms;
            let n = &mut self.nodes[i];
            let Some(node) = n.node.as_mut() else {
                return Ok(());
            };
            if let Some((_, at)) = &n.persisting {
                if *at > now {
                    break;
                }
                let (ready, _) = n.persisting.take().expect("checked");
                n.store.persist(&ready.persist).map_err(|e| e.to_string())?;
                node.persisted(ready);
            }
            match node.poll_ready() {
                Some(ready) => {
                    let delay = STEP_MS * self.rng.gen_range(0..=2);
                    self.nodes[i].persisting = Some((ready, now + delay));
                }
                None => break,
            }
        }
        self.route_output(i)
    }

    fn route_output(&mut self, i: usize) -> Result<(), String> {
        let id = self.nodes[i].id;
        let Some(node) = self.nodes[i].node.as_mut() else {
            return Ok(());
        };
        let out = node.take_output();
        for applied in out.applied {
            self.check_applied(i, applied)?;
        }
        for (to, msg) in out.messages {
            self.send(id, to, &msg)?;
        }
        for (request_id, reply) in out.answers {
            self.on_answer(id, request_id, reply)?;
        }
        Ok(())
    }

    fn send(&mut self, from: u64, to: u64, msg: &ClusterMessage) -> Result<(), String> {
        let bytes = msg.encode().map_err(|e| format!("encode: {e}"))?;
        if self.rng.gen_bool(self.loss) {
            self.stats.messages_lost += 1;
            return Ok(());
        }
        let copies = if self.rng.gen_bool(self.dup) {
            self.stats.messages_duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.net_seq += 1;
            let at_ms = self.now_ms + self.rng.gen_range(1..=DELAY_MS_MAX);
            self.net.push(Reverse(InFlight {
                at_ms,
                seq: self.net_seq,
                from,
                to,
                bytes: bytes.clone(),
            }));
        }
        Ok(())
    }

    fn check_applied(&mut self, i: usize, applied: Applied) -> Result<(), String> {
        let id = self.nodes[i].id;
        match applied {
            Applied::Snapshot { index } => {
                if index > 0 && !self.check.global.contains_key(&index) {
                    return Err(format!(
                        "node {id} loaded a snapshot at {index} beyond the committed log"
                    ));
                }
                self.nodes[i].last_applied = index;
                self.stats.snapshots_loaded += 1;
            }
            Applied::Entry { index, term, data } => {
                let last = self.nodes[i].last_applied;
                if index != last + 1 {
                    return Err(format!("node {id} applied {index} after {last}"));
                }
                self.nodes[i].last_applied = index;
                match self.check.global.get(&index) {
                    Some((t, d)) if (*t, d) != (term, &data) => {
                        return Err(format!("node {id} applied a different entry at {index}"));
                    }
                    Some(_) => {}
                    None => {
                        if index > 1 && !self.check.global.contains_key(&(index - 1)) {
                            return Err(format!("committed log has a hole before {index}"));
                        }
                        self.check.commit(index, term, data)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn check_step(&mut self) -> Result<(), String> {
        for n in &self.nodes {
            let Some(node) = &n.node else { continue };
            let s = node.soft_state();
            if s.role == Role::Leader {
                let first = *self.check.leaders_by_term.entry(s.term).or_insert(n.id);
                if first != n.id {
                    return Err(format!(
                        "two leaders in term {}: {first} and {}",
                        s.term, n.id
                    ));
                }
            }
            if node.is_active_controller() {
                let first = *self.check.controllers_by_term.entry(s.term).or_insert(n.id);
                if first != n.id || s.role != Role::Leader {
                    return Err(format!("two controllers in term {}", s.term));
                }
            }
            if node.apply_errors() != 0 {
                return Err(format!("node {} skipped committed batches", n.id));
            }
            node.image()
                .check_invariants()
                .map_err(|e| format!("node {} image: {e}", n.id))?;
        }
        Ok(())
    }

    fn run_clients(&mut self) -> Result<(), String> {
        let now = self.now_ms;
        for c in 0..self.clients.len() {
            let client = &mut self.clients[c];
            if let Some((_, _, op, since)) = &client.outstanding {
                if now - since > CLIENT_TIMEOUT_MS {
                    return Err(format!("client {c}: {op:?} never answered"));
                }
                continue;
            }
            if !self.clients_on || now < client.next_at_ms {
                continue;
            }
            let up = self.up();
            if up.is_empty() {
                continue;
            }
            let target = up[self.rng.gen_range(0..up.len())];
            let op = match self.clients[c].retry.take() {
                Some(op) => op,
                None => match self.broker_op(target) {
                    Some(op) => op,
                    None => self.next_op(c),
                },
            };
            let request = to_request(&op);
            let i = self.index(target);
            let node = self.nodes[i].node.as_mut().expect("up");
            let request_id = node.client_request(request);
            self.clients[c].outstanding = Some((target, request_id, op, now));
            self.drive(i)?;
        }
        Ok(())
    }

    /// Now and then, a request the target's broker side would send: a producer id block, or an
    /// ISR change for a partition it leads (shrink by one follower, or expand by one replica).
    fn broker_op(&mut self, target: u64) -> Option<Op> {
        if !self.rng.gen_bool(0.2) {
            return None;
        }
        let node = self.nodes[self.index(target)].node.as_ref()?;
        let (broker, epoch) = (target as i32, node.broker_epoch()?);
        if self.rng.gen_bool(0.4) {
            return Some(Op::ProducerIds { broker, epoch });
        }
        let image = node.image();
        let led: Vec<_> = image
            .partitions()
            .filter(|(_, _, p)| p.leader == broker && p.replicas.len() > 1)
            .map(|(t, i, p)| (t, i, p.clone()))
            .collect();
        if led.is_empty() {
            return None;
        }
        let (topic_id, partition, p) = led[self.rng.gen_range(0..led.len())].clone();
        let outside: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|b| !p.isr.contains(b))
            .collect();
        let mut isr = p.isr.clone();
        if !outside.is_empty() && self.rng.gen_bool(0.5) {
            isr.push(outside[self.rng.gen_range(0..outside.len())]);
        } else if isr.len() > 1 {
            let k = 1 + self.rng.gen_range(0..isr.len() - 1);
            let drop = isr.iter().copied().filter(|&b| b != broker).nth(k - 1)?;
            isr.retain(|&b| b != drop);
        } else {
            return None;
        }
        Some(Op::AlterIsr {
            broker,
            epoch,
            topic_id,
            partition,
            epochs: (p.leader_epoch, p.partition_epoch),
            isr,
        })
    }

    fn next_op(&mut self, c: usize) -> Op {
        let max_rf = self.nodes.len().min(3) as i16;
        let roll: f64 = self.rng.gen();
        let known: Vec<(String, i32)> = self.clients[c]
            .topics
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if roll < 0.45 || known.is_empty() {
            let client = &mut self.clients[c];
            client.counter += 1;
            return Op::Create {
                name: format!("t{c}-{}", client.counter),
                partitions: self.rng.gen_range(1..=4),
                rf: self.rng.gen_range(1..=max_rf),
            };
        }
        let (name, count) = known[self.rng.gen_range(0..known.len())].clone();
        if roll < 0.6 {
            Op::Delete { name }
        } else if roll < 0.8 {
            Op::Grow {
                name,
                count: count + 1,
            }
        } else {
            Op::Config {
                name,
                value: self.rng.gen_range(1..1000).to_string(),
            }
        }
    }

    fn on_answer(
        &mut self,
        node: u64,
        request_id: RequestId,
        reply: Result<ControllerReply, ControllerError>,
    ) -> Result<(), String> {
        let Some(c) = self.clients.iter().position(|c| {
            c.outstanding
                .as_ref()
                .is_some_and(|o| o.0 == node && o.1 == request_id)
        }) else {
            return Ok(()); // An answer to a request whose client gave up on a crash.
        };
        let (_, _, op, _) = self.clients[c].outstanding.take().expect("found");
        match &reply {
            Err(ControllerError::NotController) => self.stats.not_controller_answers += 1,
            Err(ControllerError::Timeout) => self.stats.timeout_answers += 1,
            _ => {}
        }
        self.clients[c].next_at_ms = self.now_ms + self.rng.gen_range(0..300);
        let retryable = matches!(
            reply,
            Err(ControllerError::NotController | ControllerError::Timeout)
        ) || matches!(&reply, Ok(ControllerReply::CreateTopics(r)) if matches!(r[0].1, Err(ControllerError::NotController)));
        let broker_op = matches!(op, Op::ProducerIds { .. } | Op::AlterIsr { .. });
        if retryable && !broker_op {
            self.clients[c].retry = Some(op);
            return Ok(());
        }
        self.check_acknowledged(c, &op, &reply)
    }

    /// An acknowledged request's effect must be in the committed log.
    fn check_acknowledged(
        &mut self,
        c: usize,
        op: &Op,
        reply: &Result<ControllerReply, ControllerError>,
    ) -> Result<(), String> {
        let chk = &mut self.check;
        let client = &mut self.clients[c];
        let fail = |why: &str| Err(format!("client {c}: {op:?} answered {reply:?} but {why}"));
        match (op, reply) {
            (
                Op::Create {
                    name, partitions, ..
                },
                Ok(ControllerReply::CreateTopics(r)),
            ) => match &r[0].1 {
                Ok(id) => {
                    chk.acked += 1;
                    if !chk.created_ids.contains(id) {
                        return fail("no such topic record is committed");
                    }
                    client.topics.insert(name.clone(), *partitions);
                }
                Err(ControllerError::TopicAlreadyExists) => {
                    // A retry of a create that did commit.
                    if !chk.created_names.contains(name) {
                        return fail("the topic was never created");
                    }
                    if let Some(t) = chk.reference.topic_by_name(name) {
                        client
                            .topics
                            .insert(name.clone(), t.partitions.len() as i32);
                    }
                }
                Err(_) => {}
            },
            (Op::Delete { name }, Ok(ControllerReply::DeleteTopics(r))) => {
                client.topics.remove(name);
                if let Ok(id) = &r[0].1 {
                    chk.acked += 1;
                    if !chk.removed_ids.contains(id) {
                        return fail("no removal is committed");
                    }
                }
            }
            (Op::Grow { name, count }, Ok(ControllerReply::CreatePartitions)) => {
                chk.acked += 1;
                if chk.partition_counts_max.get(name).copied().unwrap_or(0) < *count as usize {
                    return fail("the partitions are not committed");
                }
                client.topics.insert(name.clone(), *count);
            }
            (Op::Config { name, value }, Ok(ControllerReply::AlterTopicConfigs)) => {
                chk.acked += 1;
                let key = (name.clone(), "retention.ms".to_string(), value.clone());
                if !chk.config_history.contains(&key) {
                    return fail("the config is not committed");
                }
            }
            (
                Op::Delete { name } | Op::Grow { name, .. } | Op::Config { name, .. },
                Err(ControllerError::UnknownTopicOrPartition),
            ) => {
                client.topics.remove(name);
            }
            (Op::ProducerIds { .. }, Ok(ControllerReply::ProducerIds { first, count })) => {
                chk.acked += 1;
                let (lo, hi) = (*first, first + count);
                if chk.producer_blocks.iter().any(|&(a, b)| lo < b && a < hi) {
                    return fail("the block overlaps one handed out before");
                }
                if chk.reference.producer_id_next() < hi {
                    return fail("the block is not committed");
                }
                chk.producer_blocks.push((lo, hi));
            }
            (
                Op::AlterIsr {
                    topic_id,
                    partition,
                    isr,
                    ..
                },
                Ok(ControllerReply::AlterPartition(state)),
            ) => {
                chk.acked += 1;
                if &state.isr != isr {
                    return fail("the reply's ISR is not the requested one");
                }
                if let Some(now) = chk.reference.partition(topic_id, *partition) {
                    let same = now.partition_epoch == state.partition_epoch;
                    if now.partition_epoch < state.partition_epoch || (same && now != state) {
                        return fail("the change is not the committed state");
                    }
                }
            }
            (Op::Grow { name, .. }, Err(ControllerError::InvalidPartitions(_))) => {
                if let Some(t) = chk.reference.topic_by_name(name) {
                    client
                        .topics
                        .insert(name.clone(), t.partitions.len() as i32);
                }
            }
            (_, Err(_)) => {}
            (_, Ok(other)) => return fail(&format!("unexpected reply {other:?}")),
        }
        Ok(())
    }
}

impl Checker {
    /// Appends the next committed entry and applies it to the reference image.
    fn commit(&mut self, index: u64, term: u64, data: Vec<u8>) -> Result<(), String> {
        if !data.is_empty() {
            let batch = RecordBatch::decode(&data).map_err(|e| format!("entry {index}: {e}"))?;
            self.reference
                .apply_batch(&batch)
                .map_err(|e| format!("entry {index} does not apply: {e}"))?;
            for r in &batch.records {
                self.observe(r)?;
            }
        }
        self.global.insert(index, (term, data));
        Ok(())
    }

    fn observe(&mut self, r: &MetadataRecord) -> Result<(), String> {
        match r {
            MetadataRecord::Topic(t) => {
                if !self.created_names.insert(t.name.clone()) {
                    return Err(format!("topic {} created twice", t.name));
                }
                self.created_ids.insert(t.topic_id);
                for (k, v) in &t.configs {
                    self.config_history
                        .insert((t.name.clone(), k.clone(), v.clone()));
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                self.removed_ids.insert(*topic_id);
            }
            MetadataRecord::Partition(p) => {
                if let Some(t) = self.reference.topic(&p.topic_id) {
                    let n = self.partition_counts_max.entry(t.name.clone()).or_insert(0);
                    *n = (*n).max(t.partitions.len());
                }
            }
            MetadataRecord::TopicConfig {
                topic_id,
                key,
                value: Some(v),
            } => {
                if let Some(t) = self.reference.topic(topic_id) {
                    self.config_history
                        .insert((t.name.clone(), key.clone(), v.clone()));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn to_request(op: &Op) -> ControllerRequest {
    match op {
        Op::Create {
            name,
            partitions,
            rf,
        } => ControllerRequest::CreateTopics {
            topics: vec![NewTopic {
                name: name.clone(),
                partitions: *partitions,
                replication_factor: *rf,
                configs: BTreeMap::new(),
            }],
        },
        Op::Delete { name } => ControllerRequest::DeleteTopics {
            names: vec![name.clone()],
        },
        Op::Grow { name, count } => ControllerRequest::CreatePartitions {
            name: name.clone(),
            count: *count,
        },
        Op::ProducerIds { broker, epoch } => ControllerRequest::AllocateProducerIds {
            broker_id: *broker,
            broker_epoch: *epoch,
        },
        Op::AlterIsr {
            broker,
            epoch,
            topic_id,
            partition,
            epochs,
            isr,
        } => ControllerRequest::AlterPartition {
            broker_id: *broker,
            broker_epoch: *epoch,
            topic_id: *topic_id,
            partition: *partition,
            leader_epoch: epochs.0,
            partition_epoch: epochs.1,
            new_isr: isr.clone(),
        },
        Op::Config { name, value } => ControllerRequest::AlterTopicConfigs {
            name: name.clone(),
            ops: vec![ConfigOp::Set {
                key: "retention.ms".into(),
                value: value.clone(),
            }],
        },
    }
}

fn crc(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
