//! Deterministic tests of the group coordinator: simulated time, a simulated durable log
//! (writes complete when the test says so), seeded randomized member behaviour.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::coordinator::*;
use super::records::{decode_batches, encode_batch, GroupRecord};
use shoal_protocol::errors as e;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const DELAY_MS: i64 = 100;

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        initial_rebalance_delay_ms: DELAY_MS,
        ..CoordinatorConfig::default()
    }
}

/// The coordinator plus a simulated log. Writes are made durable by `flush` (or automatically).
struct Sim {
    c: Coordinator,
    now: i64,
    next_ticket: Ticket,
    replies: HashMap<Ticket, Reply>,
    answered: std::collections::HashSet<Ticket>,
    pending_writes: Vec<Write>,
    log: Vec<GroupRecord>,
    auto_flush: bool,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(config())
    }

    fn with(cfg: CoordinatorConfig) -> Sim {
        Sim {
            c: Coordinator::new(cfg, 42, 0),
            now: 1_000,
            next_ticket: 1,
            replies: HashMap::new(),
            answered: Default::default(),
            pending_writes: Vec::new(),
            log: Vec::new(),
            auto_flush: true,
        }
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn apply(&mut self, fx: Effects) {
        for (t, r) in fx.replies {
            assert!(self.answered.insert(t), "ticket {t} answered twice");
            self.replies.insert(t, r);
        }
        self.pending_writes.extend(fx.writes);
        if self.auto_flush {
            self.flush();
        }
    }

    /// Makes every pending write durable (in order) and runs its completion.
    fn flush(&mut self) {
        while !self.pending_writes.is_empty() {
            let writes = std::mem::take(&mut self.pending_writes);
            for w in writes {
                self.log.extend(w.records);
                if let Some(then) = w.then {
                    let fx = self.c.write_done(self.now, then, e::NONE);
                    for (t, r) in fx.replies {
                        assert!(self.answered.insert(t), "ticket {t} answered twice");
                        self.replies.insert(t, r);
                    }
                    self.pending_writes.extend(fx.writes);
                }
            }
        }
    }

    fn fail_writes(&mut self, code: i16) {
        let writes = std::mem::take(&mut self.pending_writes);
        for w in writes {
            if let Some(then) = w.then {
                let fx = self.c.write_done(self.now, then, code);
                self.apply(fx);
            }
        }
    }

    fn tick(&mut self) {
        let fx = self.c.tick(self.now);
        self.apply(fx);
    }

    /// Advances time in 10 ms steps, ticking the coordinator.
    fn advance(&mut self, ms: i64) {
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + 10).min(end);
            self.tick();
        }
    }

    fn join(&mut self, req: JoinRequest) -> Ticket {
        let t = self.ticket();
        let fx = self.c.join(self.now, req, t);
        self.apply(fx);
        t
    }

    fn sync(&mut self, req: SyncRequest) -> Ticket {
        let t = self.ticket();
        let fx = self.c.sync(self.now, req, t);
        self.apply(fx);
        t
    }

    fn commit(&mut self, req: CommitRequest) -> Ticket {
        let t = self.ticket();
        let fx = self.c.commit(self.now, req, t);
        self.apply(fx);
        t
    }

    fn join_now(&mut self, req: JoinRequest) -> Option<JoinResponse> {
        let t = self.join(req);
        self.take_join(t)
    }

    fn sync_now(&mut self, req: SyncRequest) -> Option<SyncResponse> {
        let t = self.sync(req);
        self.take_sync(t)
    }

    fn commit_now(&mut self, req: CommitRequest) -> Option<Vec<i16>> {
        let t = self.commit(req);
        self.take_commit(t)
    }

    fn take(&mut self, t: Ticket) -> Option<Reply> {
        self.replies.remove(&t)
    }

    fn take_join(&mut self, t: Ticket) -> Option<JoinResponse> {
        match self.take(t)? {
            Reply::Join(j) => Some(j),
            other => panic!("expected a join reply, got {other:?}"),
        }
    }

    fn take_sync(&mut self, t: Ticket) -> Option<SyncResponse> {
        match self.take(t)? {
            Reply::Sync(s) => Some(s),
            other => panic!("expected a sync reply, got {other:?}"),
        }
    }

    fn take_commit(&mut self, t: Ticket) -> Option<Vec<i16>> {
        match self.take(t)? {
            Reply::Commit(c) => Some(c),
            other => panic!("expected a commit reply, got {other:?}"),
        }
    }

    fn heartbeat(&mut self, m: &Client) -> i16 {
        self.c.heartbeat(
            self.now,
            HeartbeatRequest {
                group_id: m.group.clone(),
                generation_id: m.generation,
                member_id: m.member_id.clone(),
                group_instance_id: m.instance.clone(),
            },
        )
    }

    fn leave(&mut self, m: &Client) -> i16 {
        let (top, per, fx) = self.c.leave(
            self.now,
            &m.group,
            &[(m.member_id.clone(), m.instance.clone())],
        );
        self.apply(fx);
        assert_eq!(top, e::NONE);
        per[0]
    }

    fn fetch(&self, group: &str, topic: &str, partition: i32) -> i64 {
        let t = self
            .c
            .fetch_offsets(group, Some(&[(topic.to_string(), vec![partition])]));
        t[0].partitions[0].offset
    }
}

/// A simulated consumer: what a client remembers between requests.
#[derive(Debug, Clone)]
struct Client {
    group: String,
    client_id: String,
    instance: Option<String>,
    member_id: String,
    generation: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
}

impl Client {
    fn new(group: &str, name: &str) -> Client {
        Client {
            group: group.to_string(),
            client_id: name.to_string(),
            instance: None,
            member_id: String::new(),
            generation: -1,
            protocols: vec![("range".into(), Bytes::from(format!("meta-{name}")))],
            assignment: Bytes::new(),
        }
    }

    fn static_member(group: &str, name: &str) -> Client {
        let mut c = Client::new(group, name);
        c.instance = Some(format!("instance-{name}"));
        c
    }

    fn join_request(&self) -> JoinRequest {
        JoinRequest {
            group_id: self.group.clone(),
            member_id: self.member_id.clone(),
            group_instance_id: self.instance.clone(),
            client_id: self.client_id.clone(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: self.protocols.clone(),
            require_known_member_id: true,
        }
    }

    /// Sends JoinGroup, handling MEMBER_ID_REQUIRED; returns the parked ticket.
    fn join(&mut self, sim: &mut Sim) -> Ticket {
        let t = sim.join(self.join_request());
        if let Some(Reply::Join(j)) = sim.replies.get(&t) {
            if j.error == e::MEMBER_ID_REQUIRED {
                assert!(
                    j.member_id.starts_with(&format!("{}-", self.client_id)),
                    "{}",
                    j.member_id
                );
                self.member_id = j.member_id.clone();
                sim.take(t);
                return sim.join(self.join_request());
            }
        }
        t
    }

    fn accept_join(&mut self, j: &JoinResponse) {
        assert_eq!(j.error, e::NONE, "join failed: {j:?}");
        self.member_id = j.member_id.clone();
        self.generation = j.generation_id;
    }

    fn sync_request(&self, assignments: Vec<(String, Bytes)>) -> SyncRequest {
        SyncRequest {
            group_id: self.group.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.instance.clone(),
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        }
    }

    fn commit_request(&self, topic: &str, partition: i32, offset: i64) -> CommitRequest {
        CommitRequest {
            group_id: self.group.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.instance.clone(),
            retention_ms: None,
            offsets: vec![CommitOffset {
                topic: topic.into(),
                partition,
                offset,
                leader_epoch: -1,
                metadata: None,
            }],
        }
    }
}

fn assignment_for(member_id: &str) -> Bytes {
    Bytes::from(format!("assigned-to-{member_id}"))
}

/// Runs a full rebalance for `clients` (all join, leader assigns, all sync); returns the leader.
fn rebalance(sim: &mut Sim, clients: &mut [Client]) -> String {
    let tickets: Vec<Ticket> = clients.iter_mut().map(|c| c.join(sim)).collect();
    sim.advance(2 * DELAY_MS + 10);
    let mut leader = String::new();
    let mut members = Vec::new();
    for (c, t) in clients.iter_mut().zip(&tickets) {
        let j = sim.take_join(*t).expect("join completed");
        c.accept_join(&j);
        leader = j.leader.clone();
        if j.leader == j.member_id {
            members = j.members.clone();
        }
    }
    assert_eq!(members.len(), clients.len(), "leader sees every member");
    let syncs: Vec<Ticket> = clients
        .iter()
        .map(|c| {
            let assignments = if c.member_id == leader {
                members
                    .iter()
                    .map(|m| (m.member_id.clone(), assignment_for(&m.member_id)))
                    .collect()
            } else {
                Vec::new()
            };
            sim.sync(c.sync_request(assignments))
        })
        .collect();
    for (c, t) in clients.iter_mut().zip(&syncs) {
        let s = sim.take_sync(*t).expect("sync completed");
        assert_eq!(s.error, e::NONE);
        assert_eq!(s.assignment, assignment_for(&c.member_id));
        c.assignment = s.assignment;
    }
    assert_eq!(
        sim.c.group_state(&clients[0].group),
        Some(GroupState::Stable)
    );
    leader
}

#[test]
fn single_member_join_sync_heartbeat() {
    let mut sim = Sim::new();
    let mut a = Client::new("g", "a");
    // KIP-394: first join without a member id gets MEMBER_ID_REQUIRED and an id.
    let t = sim.join(a.join_request());
    let j = sim.take_join(t).unwrap();
    assert_eq!(j.error, e::MEMBER_ID_REQUIRED);
    assert!(j.member_id.starts_with("a-") && j.member_id.len() == 2 + 36);
    a.member_id = j.member_id;
    let t = sim.join(a.join_request());
    assert!(
        sim.take_join(t).is_none(),
        "parked during the initial rebalance delay"
    );
    assert_eq!(sim.c.group_state("g"), Some(GroupState::PreparingRebalance));
    sim.advance(DELAY_MS);
    let j = sim.take_join(t).expect("completes after the delay");
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.leader, a.member_id);
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.members[0].metadata, Bytes::from("meta-a"));
    a.accept_join(&j);
    assert_eq!(
        sim.c.group_state("g"),
        Some(GroupState::CompletingRebalance)
    );
    assert_eq!(sim.heartbeat(&a), e::NONE);

    sim.auto_flush = false;
    let t = sim.sync(a.sync_request(vec![(a.member_id.clone(), Bytes::from("p0"))]));
    assert!(
        sim.take_sync(t).is_none(),
        "the leader's sync waits for its write"
    );
    assert_eq!(sim.pending_writes.len(), 1);
    sim.flush();
    let s = sim.take_sync(t).unwrap();
    assert_eq!((s.error, s.assignment), (e::NONE, Bytes::from("p0")));
    assert_eq!(sim.c.group_state("g"), Some(GroupState::Stable));
    // Stays alive as long as it heartbeats.
    for _ in 0..10 {
        sim.advance(SESSION_MS as i64 / 2);
        assert_eq!(sim.heartbeat(&a), e::NONE);
    }
    assert_eq!(sim.c.members("g"), vec![a.member_id.clone()]);
    // A repeated sync in Stable returns the current assignment at once.
    let t = sim.sync(a.sync_request(vec![]));
    assert_eq!(sim.take_sync(t).unwrap().assignment, Bytes::from("p0"));
}

#[test]
fn three_members_one_generation_followers_wait_for_leader() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b", "c"]
        .iter()
        .map(|n| Client::new("g", n))
        .collect();
    let tickets: Vec<Ticket> = cs.iter_mut().map(|c| c.join(&mut sim)).collect();
    sim.advance(2 * DELAY_MS + 10);
    let joins: Vec<JoinResponse> = tickets.iter().map(|t| sim.take_join(*t).unwrap()).collect();
    for (c, j) in cs.iter_mut().zip(&joins) {
        c.accept_join(j);
        assert_eq!(j.generation_id, 1);
        assert_eq!(j.leader, joins[0].leader);
    }
    let leader = joins[0].leader.clone();
    assert_eq!(leader, cs[0].member_id, "first joined member leads");
    assert_eq!(joins[0].members.len(), 3);
    assert!(joins[1].members.is_empty() && joins[2].members.is_empty());
    // Followers sync first and wait.
    let tb = sim.sync(cs[1].sync_request(vec![]));
    let tc = sim.sync(cs[2].sync_request(vec![]));
    assert!(sim.take_sync(tb).is_none() && sim.take_sync(tc).is_none());
    let assignments = cs
        .iter()
        .map(|c| (c.member_id.clone(), assignment_for(&c.member_id)))
        .collect();
    let ta = sim.sync(cs[0].sync_request(assignments));
    for (c, t) in cs.iter().zip([ta, tb, tc]) {
        assert_eq!(
            sim.take_sync(t).unwrap().assignment,
            assignment_for(&c.member_id)
        );
    }
    // Group metadata (with assignments) was persisted.
    match sim.log.last().unwrap() {
        GroupRecord::Group { value: Some(v), .. } => {
            assert_eq!(v.generation_id, 1);
            assert_eq!(v.members.len(), 3);
            assert_eq!(v.members[2].assignment, assignment_for(&cs[2].member_id));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn protocol_selection_by_votes_and_inconsistent_protocols() {
    let mut sim = Sim::new();
    let mut a = Client::new("g", "a");
    let mut b = Client::new("g", "b");
    let mut c = Client::new("g", "c");
    a.protocols = vec![
        ("range".into(), Bytes::new()),
        ("roundrobin".into(), Bytes::new()),
    ];
    b.protocols = vec![
        ("roundrobin".into(), Bytes::new()),
        ("range".into(), Bytes::new()),
    ];
    c.protocols = vec![
        ("roundrobin".into(), Bytes::from("rr-c")),
        ("sticky".into(), Bytes::new()),
    ];
    let ts = [a.join(&mut sim), b.join(&mut sim), c.join(&mut sim)];
    sim.advance(2 * DELAY_MS + 10);
    let j = sim.take_join(ts[0]).unwrap();
    assert_eq!(
        j.protocol_name.as_deref(),
        Some("roundrobin"),
        "candidates: roundrobin only (c lacks range)"
    );
    assert_eq!(
        j.members[2].metadata,
        Bytes::from("rr-c"),
        "metadata of the chosen protocol"
    );
    // A member sharing no protocol with the group is refused.
    let mut d = Client::new("g", "d");
    d.protocols = vec![("sticky".into(), Bytes::new())];
    let t = d.join(&mut sim);
    assert_eq!(
        sim.take_join(t).unwrap().error,
        e::INCONSISTENT_GROUP_PROTOCOL
    );
    // As is a different protocol type, and an empty protocol list for a new group.
    let mut x = Client::new("g", "x");
    let mut req = x.join_request();
    req.protocol_type = "connect".into();
    let t = sim.join(req);
    assert_eq!(
        sim.take_join(t).unwrap().error,
        e::INCONSISTENT_GROUP_PROTOCOL
    );
    x.group = "other".into();
    x.protocols.clear();
    let t = sim.join(x.join_request());
    assert_eq!(
        sim.take_join(t).unwrap().error,
        e::INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(
        sim.c.group_state("other"),
        None,
        "a refused join leaves no group behind"
    );
}

#[test]
fn member_leaves_rest_rebalance_last_leaves_group_empty() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b", "c"]
        .iter()
        .map(|n| Client::new("g", n))
        .collect();
    let leader = rebalance(&mut sim, &mut cs);
    assert_eq!(leader, cs[0].member_id);
    // The leader leaves.
    let gone = cs.remove(0);
    assert_eq!(sim.leave(&gone), e::NONE);
    assert_eq!(sim.c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(sim.heartbeat(&cs[0]), e::REBALANCE_IN_PROGRESS);
    assert_eq!(sim.heartbeat(&gone), e::UNKNOWN_MEMBER_ID);
    let leader = rebalance(&mut sim, &mut cs);
    assert_eq!(cs[0].generation, 2);
    assert!(cs.iter().any(|c| c.member_id == leader));
    assert_eq!(sim.leave(&cs[0]), e::NONE);
    let t = cs[1].join(&mut sim);
    let j = sim.take_join(t).unwrap();
    assert_eq!(
        (j.generation_id, j.members.len()),
        (3, 1),
        "remaining member completes alone"
    );
    cs[1].accept_join(&j);
    assert_eq!(sim.leave(&cs[1]), e::NONE);
    assert_eq!(sim.c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(
        sim.c.group_generation("g"),
        Some(4),
        "an emptied group moves to the next generation"
    );
    match sim.log.last().unwrap() {
        GroupRecord::Group { value: Some(v), .. } => {
            assert!(v.members.is_empty() && v.generation_id == 4)
        }
        other => panic!("unexpected {other:?}"),
    }
    // Leaving twice, or an unknown group.
    assert_eq!(sim.leave(&cs[1]), e::UNKNOWN_MEMBER_ID);
    let (top, _, _) = sim.c.leave(sim.now, "nope", &[("x".into(), None)]);
    assert_eq!(top, e::UNKNOWN_MEMBER_ID);
}

#[test]
fn dead_member_expires_after_session_timeout() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b", "c"]
        .iter()
        .map(|n| Client::new("g", n))
        .collect();
    rebalance(&mut sim, &mut cs);
    let dead = cs.remove(1);
    // a and c heartbeat every 3 s; b is silent.
    let mut waited = 0;
    while sim.c.members("g").len() == 3 {
        sim.advance(1_000);
        waited += 1_000;
        if waited % 3_000 == 0 {
            for c in &cs {
                let code = sim.heartbeat(c);
                assert!(code == e::NONE || code == e::REBALANCE_IN_PROGRESS);
            }
        }
        assert!(waited <= SESSION_MS as i64 + 1_000, "not expired in time");
    }
    assert!(
        waited >= SESSION_MS as i64 - 1_000,
        "expired too early ({waited} ms)"
    );
    assert!(!sim.c.members("g").contains(&dead.member_id));
    assert_eq!(sim.heartbeat(&cs[0]), e::REBALANCE_IN_PROGRESS);
    rebalance(&mut sim, &mut cs);
    assert_eq!(cs[0].generation, 2);
    assert_eq!(sim.c.members("g").len(), 2);
    assert_eq!(sim.heartbeat(&dead), e::UNKNOWN_MEMBER_ID);
}

#[test]
fn new_member_triggers_rebalance_and_laggards_are_dropped_at_rebalance_timeout() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b"].iter().map(|n| Client::new("g", n)).collect();
    rebalance(&mut sim, &mut cs);
    let mut d = Client::new("g", "d");
    let td = d.join(&mut sim);
    assert_eq!(sim.c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert!(sim.take_join(td).is_none());
    // a notices through its heartbeat and rejoins; b keeps heartbeating but never rejoins.
    assert_eq!(sim.heartbeat(&cs[0]), e::REBALANCE_IN_PROGRESS);
    let ta = cs[0].join(&mut sim);
    let mut elapsed = 0;
    loop {
        sim.advance(1_000);
        elapsed += 1_000;
        if sim.take_join(ta).is_some() {
            break;
        }
        assert_eq!(sim.heartbeat(&cs[1]), e::REBALANCE_IN_PROGRESS);
        assert!(
            elapsed <= REBALANCE_MS as i64 + 1_000,
            "join never completed"
        );
    }
    assert!(
        elapsed >= REBALANCE_MS as i64 - 1_000,
        "completed before the rebalance timeout"
    );
    let members = sim.c.members("g");
    assert_eq!(members.len(), 2);
    assert!(
        !members.contains(&cs[1].member_id),
        "b did not rejoin and was removed"
    );
    let j = sim.take_join(td).unwrap();
    assert_eq!(j.generation_id, 2);
    assert_eq!(sim.heartbeat(&cs[1]), e::UNKNOWN_MEMBER_ID);
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let mut sim = Sim::new();
    let mut cs = vec![
        Client::static_member("g", "a"),
        Client::static_member("g", "b"),
    ];
    rebalance(&mut sim, &mut cs);
    // Static members skip MEMBER_ID_REQUIRED; their ids start with the instance id.
    assert!(
        cs[0].member_id.starts_with("instance-a-"),
        "{}",
        cs[0].member_id
    );
    let generation = cs[0].generation;
    let old_b = cs[1].clone();
    // b restarts: same instance id, no member id.
    let mut b = Client::static_member("g", "b");
    let t = sim.join(b.join_request());
    let j = sim.take_join(t).expect("answered at once");
    assert_eq!(j.error, e::NONE);
    assert_eq!(j.generation_id, generation, "no new generation");
    assert_ne!(j.member_id, old_b.member_id);
    assert_eq!(j.leader, cs[0].member_id);
    assert!(j.members.is_empty());
    assert_eq!(sim.c.group_state("g"), Some(GroupState::Stable));
    b.accept_join(&j);
    let s = sim.sync_now(b.sync_request(vec![])).unwrap();
    assert_eq!(s.assignment, old_b.assignment, "keeps its assignment");
    // The old incarnation is fenced.
    assert_eq!(sim.heartbeat(&old_b), e::FENCED_INSTANCE_ID);
    let t = sim.commit(old_b.commit_request("t", 0, 5));
    assert_eq!(sim.take_commit(t).unwrap(), vec![e::FENCED_INSTANCE_ID]);
    assert_eq!(sim.heartbeat(&b), e::NONE);
    assert_eq!(sim.heartbeat(&cs[0]), e::NONE);

    // The leader restarts: it learns it must not assign (old leader id, skip_assignment).
    let mut a = Client::static_member("g", "a");
    let j = sim.join_now(a.join_request()).unwrap();
    assert_eq!(j.leader, cs[0].member_id, "returns the old leader id");
    assert!(j.skip_assignment);
    assert_eq!(j.members.len(), 2);
    a.accept_join(&j);
    assert_eq!(sim.c.leader("g"), Some(a.member_id.clone()));
    assert_eq!(sim.c.group_state("g"), Some(GroupState::Stable));

    // A restart with changed subscription forces a rebalance.
    let mut b2 = Client::static_member("g", "b");
    b2.protocols = vec![("range".into(), Bytes::from("new-subscription"))];
    let t = sim.join(b2.join_request());
    assert!(sim.take_join(t).is_none());
    assert_eq!(sim.c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(sim.heartbeat(&b), e::FENCED_INSTANCE_ID);

    // LeaveGroup by instance id (v3+), with a mismatched member id → fenced.
    let (_, per, fx) = sim.c.leave(
        sim.now,
        "g",
        &[
            ("wrong-id".into(), Some("instance-a".into())),
            (String::new(), Some("instance-a".into())),
            (String::new(), Some("instance-zzz".into())),
        ],
    );
    sim.apply(fx);
    assert_eq!(
        per,
        vec![e::FENCED_INSTANCE_ID, e::NONE, e::UNKNOWN_MEMBER_ID]
    );
}

#[test]
fn stale_generations_and_unknown_members_are_fenced() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b"].iter().map(|n| Client::new("g", n)).collect();
    rebalance(&mut sim, &mut cs);
    let stale = cs[1].clone();
    let mut newcomer = Client::new("g", "n");
    let tn = newcomer.join(&mut sim);
    let ta = cs[0].join(&mut sim);
    let tb = cs[1].join(&mut sim);
    for (c, t) in cs.iter_mut().zip([ta, tb]) {
        c.accept_join(&sim.take_join(t).unwrap());
    }
    newcomer.accept_join(&sim.take_join(tn).unwrap());
    assert_eq!(
        sim.c.group_state("g"),
        Some(GroupState::CompletingRebalance)
    );
    // Old generation.
    assert_eq!(sim.heartbeat(&stale), e::ILLEGAL_GENERATION);
    assert_eq!(
        sim.sync_now(stale.sync_request(vec![])).unwrap().error,
        e::ILLEGAL_GENERATION
    );
    let t = sim.commit(stale.commit_request("t", 0, 1));
    assert_eq!(sim.take_commit(t).unwrap(), vec![e::ILLEGAL_GENERATION]);
    // Current generation but not yet synced: commits are refused, heartbeats fine.
    let t = sim.commit(cs[1].commit_request("t", 0, 1));
    assert_eq!(sim.take_commit(t).unwrap(), vec![e::REBALANCE_IN_PROGRESS]);
    assert_eq!(sim.heartbeat(&cs[1]), e::NONE);
    // Unknown member ids.
    let mut ghost = cs[0].clone();
    ghost.member_id = "ghost".into();
    assert_eq!(sim.heartbeat(&ghost), e::UNKNOWN_MEMBER_ID);
    assert_eq!(
        sim.sync_now(ghost.sync_request(vec![])).unwrap().error,
        e::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        sim.join_now(ghost.join_request()).unwrap().error,
        e::UNKNOWN_MEMBER_ID
    );
    let t = sim.commit(ghost.commit_request("t", 0, 1));
    assert_eq!(sim.take_commit(t).unwrap(), vec![e::UNKNOWN_MEMBER_ID]);
    // Wrong protocol name in SyncGroup v5.
    let mut req = cs[1].sync_request(vec![]);
    req.protocol_name = Some("roundrobin".into());
    assert_eq!(
        sim.sync_now(req).unwrap().error,
        e::INCONSISTENT_GROUP_PROTOCOL
    );
    // A heartbeat to an unknown group, a sync to an unknown group.
    ghost.group = "nope".into();
    assert_eq!(sim.heartbeat(&ghost), e::UNKNOWN_MEMBER_ID);
    assert_eq!(
        sim.sync_now(ghost.sync_request(vec![])).unwrap().error,
        e::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn rebalance_during_completing_tells_waiting_followers_to_rejoin() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b"].iter().map(|n| Client::new("g", n)).collect();
    let ts: Vec<Ticket> = cs.iter_mut().map(|c| c.join(&mut sim)).collect();
    sim.advance(2 * DELAY_MS + 10);
    for (c, t) in cs.iter_mut().zip(ts) {
        c.accept_join(&sim.take_join(t).unwrap());
    }
    let tb = sim.sync(cs[1].sync_request(vec![]));
    assert!(sim.take_sync(tb).is_none());
    // The leader dies before syncing; its session expires; b heartbeats meanwhile.
    sim.advance(SESSION_MS as i64 / 2);
    assert_eq!(sim.heartbeat(&cs[1]), e::NONE);
    sim.advance(SESSION_MS as i64 / 2 + 20);
    assert_eq!(sim.take_sync(tb).unwrap().error, e::REBALANCE_IN_PROGRESS);
    assert_eq!(sim.c.members("g"), vec![cs[1].member_id.clone()]);
    let mut b = vec![cs[1].clone()];
    rebalance(&mut sim, &mut b);
    assert_eq!(b[0].generation, 2);
}

#[test]
fn member_that_never_syncs_is_removed_after_rebalance_timeout() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b"].iter().map(|n| Client::new("g", n)).collect();
    let ts: Vec<Ticket> = cs.iter_mut().map(|c| c.join(&mut sim)).collect();
    sim.advance(2 * DELAY_MS + 10);
    for (c, t) in cs.iter_mut().zip(ts) {
        c.accept_join(&sim.take_join(t).unwrap());
    }
    let a = cs[0].clone();
    sim.sync_now(a.sync_request(vec![(a.member_id.clone(), Bytes::from("all"))]))
        .unwrap();
    assert_eq!(sim.c.group_state("g"), Some(GroupState::Stable));
    // b heartbeats but never syncs.
    let mut t = 0;
    while sim.c.members("g").len() == 2 {
        sim.advance(2_000);
        t += 2_000;
        sim.heartbeat(&a);
        sim.heartbeat(&cs[1]);
        assert!(t <= REBALANCE_MS as i64 + 2_000, "never removed");
    }
    assert_eq!(sim.c.members("g"), vec![a.member_id.clone()]);
}

#[test]
fn retried_join_replaces_the_parked_one() {
    let mut sim = Sim::new();
    let mut a = Client::new("g", "a");
    let t1 = a.join(&mut sim);
    let t2 = sim.join(a.join_request());
    assert_eq!(sim.take_join(t1).unwrap().error, e::REBALANCE_IN_PROGRESS);
    sim.advance(2 * DELAY_MS + 10);
    assert_eq!(sim.take_join(t2).unwrap().error, e::NONE);
}

#[test]
fn limits_and_validation() {
    let mut sim = Sim::with(CoordinatorConfig {
        group_members_max: 2,
        ..config()
    });
    let mut a = Client::new("g", "a");
    let mut b = Client::new("g", "b");
    let mut c = Client::new("g", "c");
    a.join(&mut sim);
    b.join(&mut sim);
    let t = c.join(&mut sim);
    assert_eq!(sim.take_join(t).unwrap().error, e::GROUP_MAX_SIZE_REACHED);
    let mut req = c.join_request();
    req.session_timeout_ms = 10;
    assert_eq!(sim.join_now(req).unwrap().error, e::INVALID_SESSION_TIMEOUT);
    req = c.join_request();
    req.group_id.clear();
    assert_eq!(sim.join_now(req).unwrap().error, e::INVALID_GROUP_ID);
    // Metadata over offset.metadata.max.bytes.
    let mut req = Client::new("simple", "s").commit_request("t", 0, 1);
    req.offsets[0].metadata = Some("x".repeat(5000));
    req.offsets.push(CommitOffset {
        topic: "t".into(),
        partition: 1,
        offset: 9,
        leader_epoch: -1,
        metadata: Some("ok".into()),
    });
    let t = sim.commit(req);
    assert_eq!(
        sim.take_commit(t).unwrap(),
        vec![e::OFFSET_METADATA_TOO_LARGE, e::NONE]
    );
    assert_eq!(sim.fetch("simple", "t", 0), -1);
    assert_eq!(sim.fetch("simple", "t", 1), 9);
}

#[test]
fn commits_are_visible_only_after_they_are_durable() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b"].iter().map(|n| Client::new("g", n)).collect();
    rebalance(&mut sim, &mut cs);
    sim.auto_flush = false;
    let t = sim.commit(cs[0].commit_request("orders", 0, 100));
    assert!(
        sim.take_commit(t).is_none(),
        "acknowledged only once durable"
    );
    assert_eq!(sim.fetch("g", "orders", 0), -1);
    sim.flush();
    assert_eq!(sim.take_commit(t).unwrap(), vec![e::NONE]);
    assert_eq!(sim.fetch("g", "orders", 0), 100);
    // A failed append is reported (retriable) and changes nothing.
    let t = sim.commit(cs[1].commit_request("orders", 0, 200));
    sim.fail_writes(56);
    assert_eq!(
        sim.take_commit(t).unwrap(),
        vec![e::COORDINATOR_NOT_AVAILABLE]
    );
    assert_eq!(sim.fetch("g", "orders", 0), 100);
    sim.auto_flush = true;
    // Commits during PreparingRebalance are still accepted (and refresh the session).
    let mut n = Client::new("g", "n");
    n.join(&mut sim);
    assert_eq!(sim.c.group_state("g"), Some(GroupState::PreparingRebalance));
    let t = sim.commit(cs[1].commit_request("orders", 1, 7));
    assert_eq!(sim.take_commit(t).unwrap(), vec![e::NONE]);
    // Fetch all offsets of the group, and of unknown partitions/groups.
    let all = sim.c.fetch_offsets("g", None);
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0]
            .partitions
            .iter()
            .map(|p| (p.partition, p.offset))
            .collect::<Vec<_>>(),
        vec![(0, 100), (1, 7)]
    );
    assert_eq!(sim.fetch("g", "orders", 5), -1);
    assert_eq!(sim.fetch("nope", "orders", 0), -1);
    assert!(sim.c.fetch_offsets("nope", None).is_empty());
}

#[test]
fn simple_consumer_commits_only_into_empty_groups() {
    let mut sim = Sim::new();
    let simple = Client::new("standalone", "s"); // generation -1, member ""
    let t = sim.commit(simple.commit_request("t", 0, 5));
    assert_eq!(sim.take_commit(t).unwrap(), vec![e::NONE]);
    assert_eq!(sim.c.group_state("standalone"), Some(GroupState::Empty));
    assert_eq!(sim.fetch("standalone", "t", 0), 5);
    // A commit with a real generation to an unknown group is stale.
    let mut stale = simple.clone();
    stale.group = "unknown".into();
    stale.generation = 3;
    stale.member_id = "m".into();
    let t = sim.commit(stale.commit_request("t", 0, 5));
    assert_eq!(sim.take_commit(t).unwrap(), vec![e::ILLEGAL_GENERATION]);
    // Once the group has members, generation -1 commits are refused.
    let mut cs = vec![Client::new("g", "a")];
    rebalance(&mut sim, &mut cs);
    let mut outsider = simple.clone();
    outsider.group = "g".into();
    let t = sim.commit(outsider.commit_request("t", 0, 5));
    assert_eq!(sim.take_commit(t).unwrap(), vec![e::UNKNOWN_MEMBER_ID]);
}

#[test]
fn empty_group_offsets_expire_after_retention() {
    let retention = 60_000;
    let mut sim = Sim::with(CoordinatorConfig {
        offsets_retention_ms: retention,
        offsets_retention_check_interval_ms: 1_000,
        ..config()
    });
    let mut cs = vec![Client::new("g", "a")];
    rebalance(&mut sim, &mut cs);
    let t = sim.commit(cs[0].commit_request("t", 0, 10));
    sim.take_commit(t).unwrap();
    // While the group is active its (subscribed) offsets never expire... (subscription is not a
    // parseable consumer subscription here, so nothing is known to be unsubscribed).
    for _ in 0..(2 * retention / 5_000) {
        sim.advance(5_000);
        assert_eq!(sim.heartbeat(&cs[0]), e::NONE);
    }
    assert_eq!(sim.fetch("g", "t", 0), 10);
    assert_eq!(sim.leave(&cs[0]), e::NONE);
    sim.tick();
    assert_eq!(sim.c.group_state("g"), Some(GroupState::Empty));
    sim.advance(retention - 2_000);
    assert_eq!(
        sim.fetch("g", "t", 0),
        10,
        "not before retention since the group emptied"
    );
    sim.advance(4_000);
    assert_eq!(sim.fetch("g", "t", 0), -1);
    assert_eq!(
        sim.c.group_state("g"),
        None,
        "an empty group without offsets is removed"
    );
    assert!(sim
        .log
        .iter()
        .any(|r| matches!(r, GroupRecord::Offset { value: None, .. })));
    assert!(matches!(
        sim.log.last().unwrap(),
        GroupRecord::Group { value: None, .. }
    ));
    // Explicit retention (OffsetCommit v2-4).
    let mut req = Client::new("s", "s").commit_request("t", 0, 1);
    req.retention_ms = Some(5_000);
    sim.commit_now(req).unwrap();
    sim.advance(4_000);
    assert_eq!(sim.fetch("s", "t", 0), 1);
    sim.advance(2_000);
    assert_eq!(sim.fetch("s", "t", 0), -1);
}

fn subscription(topics: &[&str]) -> Bytes {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let s = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.to_string()))
            .collect(),
    );
    let mut buf = bytes::BytesMut::new();
    bytes::BufMut::put_i16(&mut buf, 1);
    s.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

#[test]
fn delete_groups_and_offset_delete() {
    let mut sim = Sim::new();
    let mut a = Client::new("g", "a");
    a.protocols = vec![("range".into(), subscription(&["orders"]))];
    let mut cs = vec![a];
    rebalance(&mut sim, &mut cs);
    for (topic, p) in [("orders", 0), ("old", 0), ("old", 1)] {
        let t = sim.commit(cs[0].commit_request(topic, p, 3));
        sim.take_commit(t).unwrap();
    }
    assert_eq!(
        parse_subscription(&subscription(&["orders", "x"])).unwrap(),
        vec!["orders", "x"]
    );
    // OffsetDelete on an active consumer group: subscribed topics are refused.
    let t = sim.ticket();
    let fx = sim
        .c
        .delete_offsets("g", &[("orders".into(), 0), ("old".into(), 0)], t);
    sim.apply(fx);
    assert_eq!(
        sim.take(t).unwrap(),
        Reply::OffsetDelete(e::NONE, vec![e::GROUP_SUBSCRIBED_TO_TOPIC, e::NONE])
    );
    assert_eq!(sim.fetch("g", "old", 0), -1);
    assert_eq!(sim.fetch("g", "orders", 0), 3);
    // DeleteGroups: refused while it has members.
    let t = sim.ticket();
    let fx = sim.c.delete_group("g", t);
    sim.apply(fx);
    assert_eq!(sim.take(t).unwrap(), Reply::Delete(e::NON_EMPTY_GROUP));
    sim.leave(&cs[0]);
    sim.tick();
    let t = sim.ticket();
    let fx = sim.c.delete_offsets("g", &[("orders".into(), 0)], t);
    sim.apply(fx);
    assert_eq!(
        sim.take(t).unwrap(),
        Reply::OffsetDelete(e::NONE, vec![e::NONE])
    );
    let t = sim.ticket();
    sim.auto_flush = false;
    let fx = sim.c.delete_group("g", t);
    sim.apply(fx);
    assert!(
        sim.take(t).is_none(),
        "answered once the tombstones are durable"
    );
    sim.flush();
    assert_eq!(sim.take(t).unwrap(), Reply::Delete(e::NONE));
    assert_eq!(sim.c.group_state("g"), None);
    assert_eq!(sim.fetch("g", "old", 1), -1);
    let t = sim.ticket();
    let fx = sim.c.delete_group("g", t);
    sim.apply(fx);
    assert_eq!(sim.take(t).unwrap(), Reply::Delete(e::GROUP_ID_NOT_FOUND));
    let t = sim.ticket();
    let fx = sim.c.delete_offsets("g", &[("orders".into(), 0)], t);
    sim.apply(fx);
    assert_eq!(
        sim.take(t).unwrap(),
        Reply::OffsetDelete(e::GROUP_ID_NOT_FOUND, vec![e::NONE])
    );
}

#[test]
fn list_and_describe() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b"].iter().map(|n| Client::new("g", n)).collect();
    rebalance(&mut sim, &mut cs);
    sim.commit_now(Client::new("simple", "s").commit_request("t", 0, 1))
        .unwrap();
    let groups = sim.c.list_groups();
    assert_eq!(
        groups,
        vec![
            ListedGroup {
                group_id: "g".into(),
                protocol_type: "consumer".into(),
                state: GroupState::Stable
            },
            ListedGroup {
                group_id: "simple".into(),
                protocol_type: String::new(),
                state: GroupState::Empty
            },
        ]
    );
    let d = sim.c.describe("g");
    assert_eq!(
        (d.state, d.protocol_name.as_str(), d.generation_id),
        (GroupState::Stable, "range", 1)
    );
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.members[1].client_id, "b");
    assert_eq!(d.members[1].client_host, "/127.0.0.1");
    assert_eq!(d.members[1].assignment, assignment_for(&cs[1].member_id));
    assert_eq!(d.members[1].metadata, Bytes::from("meta-b"));
    assert_eq!(sim.c.describe("nope").state, GroupState::Dead);
    // During a rebalance, no metadata or assignments.
    Client::new("g", "c").join(&mut sim);
    let d = sim.c.describe("g");
    assert_eq!(d.state, GroupState::PreparingRebalance);
    assert!(d
        .members
        .iter()
        .all(|m| m.assignment.is_empty() && m.metadata.is_empty()));
}

/// Encodes the durable log as RecordBatches, decodes it, and replays it into a new coordinator.
fn reload(sim: &Sim) -> Coordinator {
    let encoded: Vec<_> = sim.log.iter().map(|r| r.encode()).collect();
    let mut bytes = bytes::BytesMut::new();
    for (i, chunk) in encoded.chunks(3).enumerate() {
        let mut b = encode_batch(chunk, sim.now);
        b[..8].copy_from_slice(&((i * 3) as i64).to_be_bytes());
        bytes.extend_from_slice(&b);
    }
    let (records, _) = decode_batches(bytes.freeze()).unwrap();
    let mut c = Coordinator::new(config(), 7, sim.now);
    for r in records {
        c.replay(GroupRecord::decode(r.key.unwrap(), r.value).unwrap());
    }
    c.finish_load(sim.now);
    c
}

#[test]
fn state_survives_reload_from_the_log() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b"].iter().map(|n| Client::new("g", n)).collect();
    rebalance(&mut sim, &mut cs);
    for p in 0..4 {
        let t = sim.commit(cs[(p % 2) as usize].commit_request("orders", p, 10 * p as i64));
        sim.take_commit(t).unwrap();
    }
    let t = sim.commit(cs[0].commit_request("orders", 0, 99));
    sim.take_commit(t).unwrap();
    sim.commit_now(Client::new("gone", "x").commit_request("t", 0, 1))
        .unwrap();
    let t = sim.ticket();
    let fx = sim.c.delete_group("gone", t);
    sim.apply(fx);

    let mut sim2 = Sim::new();
    sim2.now = sim.now;
    sim2.c = reload(&sim);
    assert_eq!(sim2.fetch("g", "orders", 0), 99);
    assert_eq!(sim2.fetch("g", "orders", 3), 30);
    assert_eq!(sim2.c.group_state("gone"), None);
    assert_eq!(sim2.c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(sim2.c.group_generation("g"), Some(1));
    assert_eq!(sim2.c.leader("g"), Some(cs[0].member_id.clone()));
    // Members carry on with their generation; a synced member gets its assignment back.
    assert_eq!(sim2.heartbeat(&cs[0]), e::NONE);
    let s = sim2.sync_now(cs[1].sync_request(vec![])).unwrap();
    assert_eq!(s.assignment, assignment_for(&cs[1].member_id));
    // b is gone after the reload: its session expires and a rebalances alone.
    let mut waited = 0;
    while sim2.c.members("g").len() == 2 {
        sim2.advance(1_000);
        waited += 1_000;
        sim2.heartbeat(&cs[0]);
        assert!(waited <= SESSION_MS as i64 + 1_000);
    }
    let mut a = vec![cs[0].clone()];
    rebalance(&mut sim2, &mut a);
    assert_eq!(a[0].generation, 2);
}

/// Random member behaviour (join, sync, heartbeat, commit, leave, crash, restart) against one
/// group with simulated time; checks the protocol's invariants and that the group converges.
#[test]
fn seeded_random_members_converge() {
    let mut generations = 0;
    for seed in 0..40u64 {
        generations += random_run(seed);
    }
    // The chaos really caused rebalances (crashes, leaves, restarts).
    assert!(
        generations > 40 * 5,
        "only {generations} generations in 40 runs"
    );
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Idle,
    Joining(Ticket),
    Syncing(Ticket),
    Stable,
    Crashed,
}

struct Actor {
    client: Client,
    phase: Phase,
    next_heartbeat: i64,
}

fn random_run(seed: u64) -> i32 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sim = Sim::new();
    sim.auto_flush = false;
    let n = rng.gen_range(1..=6);
    let mut actors: Vec<Actor> = (0..n)
        .map(|i| {
            let mut c = if rng.gen_bool(0.3) {
                Client::static_member("g", &format!("m{i}"))
            } else {
                Client::new("g", &format!("m{i}"))
            };
            c.protocols = vec![("range".into(), Bytes::from(format!("m{i}")))];
            Actor {
                client: c,
                phase: Phase::Idle,
                next_heartbeat: 0,
            }
        })
        .collect();
    let mut generations: BTreeMap<i32, (String, String)> = BTreeMap::new();
    let mut last_generation = 0;
    let chaos_until = sim.now + 120_000;
    let end = chaos_until + 3 * REBALANCE_MS as i64;
    while sim.now < end {
        let chaos = sim.now < chaos_until;
        for a in actors.iter_mut() {
            match a.phase {
                Phase::Idle => {
                    if !chaos || rng.gen_bool(0.2) {
                        a.phase = Phase::Joining(a.client.join(&mut sim));
                    }
                }
                Phase::Joining(t) => {
                    if let Some(j) = sim.take_join(t) {
                        if j.error == e::NONE {
                            a.client.accept_join(&j);
                            let entry = generations.entry(j.generation_id).or_insert_with(|| {
                                (
                                    j.leader.clone(),
                                    j.protocol_name.clone().unwrap_or_default(),
                                )
                            });
                            assert_eq!(entry.0, j.leader, "seed {seed}: one leader per generation");
                            let assignments = if j.leader == j.member_id && !j.skip_assignment {
                                j.members
                                    .iter()
                                    .map(|m| (m.member_id.clone(), assignment_for(&m.member_id)))
                                    .collect()
                            } else {
                                Vec::new()
                            };
                            a.phase = Phase::Syncing(sim.sync(a.client.sync_request(assignments)));
                        } else {
                            if j.error == e::UNKNOWN_MEMBER_ID || j.error == e::FENCED_INSTANCE_ID {
                                a.client.member_id.clear();
                            }
                            a.phase = Phase::Idle;
                        }
                    }
                }
                Phase::Syncing(t) => {
                    if let Some(s) = sim.take_sync(t) {
                        if s.error == e::NONE {
                            // Static members that replaced themselves keep the old id's assignment.
                            let prefix = a
                                .client
                                .instance
                                .clone()
                                .unwrap_or(a.client.client_id.clone());
                            let expected = format!("assigned-to-{prefix}-");
                            assert!(
                                s.assignment.starts_with(expected.as_bytes()),
                                "seed {seed}: {:?}",
                                s.assignment
                            );
                            a.client.assignment = s.assignment;
                            a.phase = Phase::Stable;
                            a.next_heartbeat = sim.now + 3_000;
                        } else {
                            if s.error == e::UNKNOWN_MEMBER_ID || s.error == e::FENCED_INSTANCE_ID {
                                a.client.member_id.clear();
                            }
                            a.phase = Phase::Idle;
                        }
                    }
                }
                Phase::Stable => {
                    if chaos && rng.gen_bool(0.002) {
                        a.phase = Phase::Crashed; // stops talking
                    } else if chaos && rng.gen_bool(0.002) {
                        let code = sim.leave(&a.client);
                        assert!(
                            code == e::NONE || code == e::UNKNOWN_MEMBER_ID,
                            "seed {seed}: {code}"
                        );
                        a.client.member_id.clear();
                        a.phase = Phase::Idle;
                    } else if sim.now >= a.next_heartbeat {
                        a.next_heartbeat = sim.now + 3_000;
                        let code = sim.heartbeat(&a.client);
                        match code {
                            e::NONE => {
                                if rng.gen_bool(0.3) {
                                    let t = sim.commit(a.client.commit_request("t", 0, sim.now));
                                    sim.flush();
                                    let c = sim.take_commit(t).expect("durable commit answered");
                                    assert!(
                                        [e::NONE, e::REBALANCE_IN_PROGRESS].contains(&c[0]),
                                        "seed {seed}: {c:?}"
                                    );
                                }
                            }
                            e::REBALANCE_IN_PROGRESS | e::ILLEGAL_GENERATION => {
                                a.phase = Phase::Idle
                            }
                            e::UNKNOWN_MEMBER_ID | e::FENCED_INSTANCE_ID => {
                                a.client.member_id.clear();
                                a.phase = Phase::Idle;
                            }
                            other => panic!("seed {seed}: heartbeat error {other}"),
                        }
                    }
                }
                Phase::Crashed => {
                    if !chaos || rng.gen_bool(0.001) {
                        // Restart: a new process keeps only its static identity.
                        a.client.member_id.clear();
                        a.client.generation = -1;
                        a.phase = Phase::Idle;
                    }
                }
            }
        }
        // Writes complete with some delay.
        if rng.gen_bool(0.5) {
            sim.flush();
        }
        sim.now += rng.gen_range(1..=50);
        sim.tick();
        if let Some(g) = sim.c.group_generation("g") {
            assert!(g >= last_generation, "seed {seed}: generation went back");
            last_generation = g;
        }
    }
    sim.flush();
    // Converged: everyone alive is a Stable member of one generation.
    assert_eq!(
        sim.c.group_state("g"),
        Some(GroupState::Stable),
        "seed {seed}"
    );
    let members = sim.c.members("g");
    assert_eq!(
        members.len(),
        actors.len(),
        "seed {seed}: {:?}",
        actors.iter().map(|a| a.phase).collect::<Vec<_>>()
    );
    let generation = sim.c.group_generation("g").unwrap();
    for a in &actors {
        assert_eq!(a.phase, Phase::Stable, "seed {seed}");
        assert!(members.contains(&a.client.member_id), "seed {seed}");
        assert_eq!(a.client.generation, generation, "seed {seed}");
    }
    generation
}

#[test]
fn pending_member_ids_expire_and_can_leave() {
    let mut sim = Sim::new();
    let mut cs: Vec<Client> = ["a", "b"].iter().map(|n| Client::new("g", n)).collect();
    rebalance(&mut sim, &mut cs);
    // c gets an id (MEMBER_ID_REQUIRED) but never comes back; a rejoins (rebalance).
    let c = Client::new("g", "c");
    let t = sim.join(c.join_request());
    let pending_id = sim.take_join(t).unwrap().member_id;
    let ta = cs[0].join(&mut sim);
    let tb = cs[1].join(&mut sim);
    assert!(sim.take_join(ta).is_none(), "waits for the pending member");
    let mut waited = 0;
    loop {
        sim.advance(1_000);
        waited += 1_000;
        if let Some(j) = sim.take_join(ta) {
            assert_eq!((j.error, j.generation_id), (e::NONE, 2));
            break;
        }
        assert!(
            waited <= SESSION_MS as i64 + 1_000,
            "pending member never expired"
        );
    }
    assert!(
        waited >= SESSION_MS as i64 - 1_000,
        "pending member expired early"
    );
    assert_eq!(sim.take_join(tb).unwrap().error, e::NONE);
    // Its id is now unknown.
    let mut late = c.clone();
    late.member_id = pending_id;
    assert_eq!(
        sim.join_now(late.join_request()).unwrap().error,
        e::UNKNOWN_MEMBER_ID
    );

    // A pending member may also leave, which lets a waiting rebalance complete at once.
    let mut cs2: Vec<Client> = ["x", "y"].iter().map(|n| Client::new("h", n)).collect();
    rebalance(&mut sim, &mut cs2);
    let d = Client::new("h", "d");
    let t = sim.join(d.join_request());
    let mut d = d;
    d.member_id = sim.take_join(t).unwrap().member_id;
    let tx = cs2[0].join(&mut sim);
    let ty = cs2[1].join(&mut sim);
    assert!(sim.take_join(tx).is_none());
    assert_eq!(sim.leave(&d), e::NONE);
    assert_eq!(sim.take_join(tx).unwrap().error, e::NONE);
    assert_eq!(sim.take_join(ty).unwrap().error, e::NONE);
}

#[test]
fn non_consumer_protocol_types_and_old_clients_without_member_id_required() {
    let mut sim = Sim::new();
    // JoinGroup v0-3: no KIP-394 round trip; any protocol type (e.g. Kafka Connect) works.
    let mut req = Client::new("connect-cluster", "w").join_request();
    req.require_known_member_id = false;
    req.protocol_type = "connect".into();
    req.protocols = vec![("sessioned".into(), Bytes::from("cfg"))];
    let t = sim.join(req);
    sim.advance(2 * DELAY_MS + 10);
    let j = sim.take_join(t).unwrap();
    assert_eq!(j.error, e::NONE);
    assert_eq!(j.protocol_type.as_deref(), Some("connect"));
    assert_eq!(j.protocol_name.as_deref(), Some("sessioned"));
    assert_eq!(sim.c.list_groups()[0].protocol_type, "connect");
    // OffsetDelete on a non-consumer group with members: NON_EMPTY_GROUP.
    let t = sim.ticket();
    let fx = sim
        .c
        .delete_offsets("connect-cluster", &[("t".into(), 0)], t);
    sim.apply(fx);
    assert_eq!(
        sim.take(t).unwrap(),
        Reply::OffsetDelete(e::NON_EMPTY_GROUP, vec![e::NONE])
    );
}
