//! Controller and image tests: placement, fencing, epochs, ISR validation, totality of apply.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::*;

const SESSION_MS: u64 = controller::BROKER_SESSION_TIMEOUT_MS_DEFAULT;

/// A committed image plus the controller deciding on it; every decision is "committed" at once.
struct Harness {
    committed: MetadataImage,
    controller: Controller,
    epochs: BTreeMap<BrokerId, i64>,
}

impl Harness {
    fn new(racks: &[Option<&str>]) -> Harness {
        let committed = MetadataImage::new();
        let controller = Controller::new(ControllerConfig::default(), &committed, 1, 0, 0);
        let mut h = Harness {
            committed,
            controller,
            epochs: BTreeMap::new(),
        };
        for (i, rack) in racks.iter().enumerate() {
            let id = i as BrokerId + 1;
            h.register(id, Uuid::from_u128(id as u128), rack.map(String::from));
            h.heartbeat(id, 0);
        }
        h
    }

    fn run(
        &mut self,
        req: ControllerRequest,
        now_ms: u64,
    ) -> Result<ControllerReply, ControllerError> {
        let d = self.controller.handle(&req, now_ms);
        self.commit(d.records);
        d.reply
    }

    fn commit(&mut self, records: Vec<MetadataRecord>) {
        if records.is_empty() {
            return;
        }
        let batch = RecordBatch::new(records);
        let bytes = batch.encode().unwrap();
        self.committed
            .apply_batch(&RecordBatch::decode(&bytes).unwrap())
            .unwrap();
        self.committed.check_invariants().unwrap();
        assert_eq!(&self.committed, self.controller.pending_image());
    }

    fn register(&mut self, id: BrokerId, incarnation: Uuid, rack: Option<String>) -> i64 {
        let req = ControllerRequest::RegisterBroker {
            broker_id: id,
            incarnation_id: incarnation,
            endpoints: Endpoints {
                kafka: format!("h{id}:9092"),
                cluster: format!("h{id}:9093"),
            },
            rack,
        };
        match self.run(req, 0) {
            Ok(ControllerReply::RegisterBroker { broker_epoch }) => {
                self.epochs.insert(id, broker_epoch);
                broker_epoch
            }
            other => panic!("register: {other:?}"),
        }
    }

    fn heartbeat(&mut self, id: BrokerId, now_ms: u64) {
        let req = ControllerRequest::BrokerHeartbeat {
            broker_id: id,
            broker_epoch: self.epochs[&id],
        };
        assert!(self.run(req, now_ms).is_ok());
    }

    fn create(&mut self, name: &str, partitions: i32, rf: i16) -> Result<Uuid, ControllerError> {
        let req = ControllerRequest::CreateTopics {
            topics: vec![NewTopic {
                name: name.into(),
                partitions,
                replication_factor: rf,
                configs: BTreeMap::new(),
            }],
        };
        match self.run(req, 0) {
            Ok(ControllerReply::CreateTopics(mut r)) => r.remove(0).1,
            other => panic!("create: {other:?}"),
        }
    }

    fn partition(&self, id: Uuid, p: PartitionId) -> PartitionState {
        self.committed.partition(&id, p).unwrap().clone()
    }

    /// Heartbeats every broker but `dead` until `until_ms`, ticking the controller.
    fn run_until(&mut self, until_ms: u64, dead: &[BrokerId]) {
        let mut now = 0;
        while now <= until_ms {
            let ids: Vec<BrokerId> = self.epochs.keys().copied().collect();
            for id in ids.into_iter().filter(|id| !dead.contains(id)) {
                self.heartbeat(id, now);
            }
            for batch in self.controller.tick(now) {
                self.commit(batch);
            }
            now += controller::BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT;
        }
    }
}

fn leader_counts(image: &MetadataImage) -> BTreeMap<BrokerId, usize> {
    let mut counts = BTreeMap::new();
    for (_, _, p) in image.partitions() {
        *counts.entry(p.leader).or_insert(0) += 1;
    }
    counts
}

#[test]
fn placement_spreads_leaders_and_uses_distinct_brokers() {
    let mut h = Harness::new(&[None, None, None]);
    h.create("a", 6, 2).unwrap();
    h.create("b", 3, 3).unwrap();
    let counts = leader_counts(&h.committed);
    assert_eq!(counts, BTreeMap::from([(1, 3), (2, 3), (3, 3)]));
    for (_, _, p) in h.committed.partitions() {
        let mut r = p.replicas.clone();
        r.dedup();
        assert_eq!(r.len(), p.replicas.len());
        assert_eq!(p.leader, p.replicas[0]);
        assert_eq!(p.isr, p.replicas);
    }
}

#[test]
fn placement_is_rack_aware_and_deterministic() {
    let racks = [Some("a"), Some("a"), Some("b"), Some("b")];
    let mut h = Harness::new(&racks);
    h.create("t", 8, 2).unwrap();
    for (_, _, p) in h.committed.partitions() {
        let rack = |b: BrokerId| h.committed.broker(b).unwrap().rack.clone();
        assert_ne!(rack(p.replicas[0]), rack(p.replicas[1]), "{p:?}");
    }
    let mut h2 = Harness::new(&racks);
    h2.create("t", 8, 2).unwrap();
    let replicas = |h: &Harness| -> Vec<Vec<BrokerId>> {
        h.committed
            .partitions()
            .map(|(_, _, p)| p.replicas.clone())
            .collect()
    };
    assert_eq!(replicas(&h), replicas(&h2));
}

#[test]
fn create_topic_validation() {
    let mut h = Harness::new(&[None, None]);
    assert_eq!(
        h.create("bad name", 1, 1),
        Err(ControllerError::InvalidTopicName)
    );
    assert!(matches!(
        h.create("t", 0, 1),
        Err(ControllerError::InvalidPartitions(_))
    ));
    assert_eq!(
        h.create("t", 1, 3),
        Err(ControllerError::InvalidReplicationFactor {
            requested: 3,
            available: 2
        })
    );
    assert!(matches!(
        h.create("t", 1, 0),
        Err(ControllerError::InvalidReplicationFactor { .. })
    ));
    let id = h.create("t", 2, 2).unwrap();
    assert_eq!(
        h.create("t", 2, 2),
        Err(ControllerError::TopicAlreadyExists)
    );
    // After a failover the new controller decides on the committed image: still exists.
    h.controller = Controller::new(ControllerConfig::default(), &h.committed, 2, 0, 0);
    assert_eq!(
        h.create("t", 2, 2),
        Err(ControllerError::TopicAlreadyExists)
    );
    assert_eq!(h.committed.topics().count(), 1);
    // A new controller's ids never collide with the old one's.
    assert_ne!(h.create("u", 1, 1).unwrap(), id);
}

#[test]
fn retried_create_before_commit_is_already_exists() {
    let mut h = Harness::new(&[None]);
    let req = ControllerRequest::CreateTopics {
        topics: vec![NewTopic {
            name: "t".into(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
        }],
    };
    let first = h.controller.handle(&req, 0);
    let second = h.controller.handle(&req, 0);
    assert!(!first.records.is_empty());
    assert!(second.records.is_empty());
    assert_eq!(
        second.reply,
        Ok(ControllerReply::CreateTopics(vec![(
            "t".into(),
            Err(ControllerError::TopicAlreadyExists)
        )]))
    );
}

#[test]
fn registration_epochs() {
    let mut h = Harness::new(&[None, None]);
    let e1 = h.epochs[&1];
    assert_eq!(
        h.register(1, Uuid::from_u128(1), None),
        e1,
        "retry keeps the epoch"
    );
    let e1b = h.register(1, Uuid::from_u128(100), None);
    assert!(e1b > e1 && e1b > h.epochs[&2], "new incarnation, new epoch");
    assert_eq!(h.committed.broker(1).unwrap().state, BrokerState::Fenced);
    let stale = ControllerRequest::BrokerHeartbeat {
        broker_id: 1,
        broker_epoch: e1,
    };
    assert!(matches!(
        h.run(stale, 0),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
}

#[test]
fn reregistration_moves_leadership_first() {
    let mut h = Harness::new(&[None, None]);
    let t = h.create("t", 2, 2).unwrap();
    h.register(1, Uuid::from_u128(100), None);
    for p in 0..2 {
        let s = h.partition(t, p);
        assert_eq!(s.leader, 2);
        assert_eq!(s.isr, vec![2]);
    }
}

#[test]
fn fencing_moves_leaders_and_bumps_epochs() {
    let mut h = Harness::new(&[None, None, None]);
    let t = h.create("t", 3, 3).unwrap();
    let before: Vec<PartitionState> = (0..3).map(|p| h.partition(t, p)).collect();
    h.run_until(SESSION_MS - 1, &[]);
    assert!(h
        .committed
        .brokers()
        .all(|b| b.state == BrokerState::Unfenced));
    // Broker 1 stops heartbeating at 0; it is fenced once its session expires.
    let mut h2 = Harness::new(&[None, None, None]);
    let t2 = h2.create("t", 3, 3).unwrap();
    h2.run_until(SESSION_MS + 500, &[1]);
    assert_eq!(h2.committed.broker(1).unwrap().state, BrokerState::Fenced);
    for p in 0..3 {
        let old = &before[p as usize];
        let s = h2.partition(t2, p);
        assert!(!s.isr.contains(&1));
        assert_ne!(s.leader, 1);
        assert!(h2.committed.is_unfenced(s.leader));
        assert_eq!(s.partition_epoch, old.partition_epoch + 1);
        let expect = old.leader_epoch + i32::from(old.leader == 1);
        assert_eq!(s.leader_epoch, expect);
    }
}

#[test]
fn rf1_partition_goes_leaderless_and_comes_back() {
    let mut h = Harness::new(&[None, None]);
    let t = h.create("t", 2, 1).unwrap();
    let p = (0..2).find(|&p| h.partition(t, p).leader == 1).unwrap();
    let before = h.partition(t, p);
    h.run_until(SESSION_MS + 500, &[1]);
    let fenced = h.partition(t, p);
    assert_eq!(fenced.leader, NO_LEADER);
    assert_eq!(fenced.isr, vec![1]);
    assert_eq!(fenced.leader_epoch, before.leader_epoch + 1);
    h.heartbeat(1, SESSION_MS + 600);
    let back = h.partition(t, p);
    assert_eq!(back.leader, 1);
    assert_eq!(back.leader_epoch, before.leader_epoch + 2);
    assert_eq!(back.partition_epoch, before.partition_epoch + 2);
}

#[test]
fn new_controller_grants_a_full_session() {
    let mut h = Harness::new(&[None, None]);
    h.controller = Controller::new(ControllerConfig::default(), &h.committed, 2, 0, 10_000);
    assert!(h.controller.tick(10_000 + SESSION_MS - 1).is_empty());
    assert_eq!(h.controller.tick(10_000 + SESSION_MS).len(), 2);
}

fn alter(
    h: &mut Harness,
    by: BrokerId,
    t: Uuid,
    le: i32,
    pe: i32,
    isr: Vec<BrokerId>,
) -> Result<ControllerReply, ControllerError> {
    let req = ControllerRequest::AlterPartition {
        broker_id: by,
        broker_epoch: h.epochs[&by],
        topic_id: t,
        partition: 0,
        leader_epoch: le,
        partition_epoch: pe,
        new_isr: isr,
    };
    h.run(req, 0)
}

#[test]
fn alter_partition_validation() {
    let mut h = Harness::new(&[None, None, None]);
    let t = h.create("t", 1, 3).unwrap();
    let s = h.partition(t, 0);
    let l = s.leader;
    let f: Vec<BrokerId> = s.replicas.iter().copied().filter(|&b| b != l).collect();
    let (le, pe) = (s.leader_epoch, s.partition_epoch);
    assert_eq!(
        alter(&mut h, f[0], t, le, pe, vec![f[0]]),
        Err(ControllerError::NotLeader(f[0]))
    );
    assert!(matches!(
        alter(&mut h, l, t, le + 1, pe, vec![l]),
        Err(ControllerError::FencedLeaderEpoch { .. })
    ));
    assert!(matches!(
        alter(&mut h, l, t, le, pe + 1, vec![l]),
        Err(ControllerError::InvalidUpdateVersion { .. })
    ));
    assert!(matches!(
        alter(&mut h, l, t, le, pe, vec![f[0]]),
        Err(ControllerError::InvalidIsr(_))
    ));
    assert!(matches!(
        alter(&mut h, l, t, le, pe, vec![l, l]),
        Err(ControllerError::InvalidIsr(_))
    ));
    assert!(matches!(
        alter(&mut h, l, t, le, pe, vec![l, 9]),
        Err(ControllerError::InvalidIsr(_))
    ));
    // Shrink: partition epoch bumps, leader epoch does not.
    let r = alter(&mut h, l, t, le, pe, vec![l, f[0]]).unwrap();
    let ControllerReply::AlterPartition(new) = r else {
        panic!()
    };
    assert_eq!((new.leader_epoch, new.partition_epoch), (le, pe + 1));
    // The old partition epoch is now stale.
    assert!(matches!(
        alter(&mut h, l, t, le, pe, vec![l]),
        Err(ControllerError::InvalidUpdateVersion { .. })
    ));
    // Expanding with a fenced broker is refused.
    h.run_until(SESSION_MS + 500, &[f[1]]);
    let s = h.partition(t, 0);
    let r = alter(
        &mut h,
        l,
        t,
        s.leader_epoch,
        s.partition_epoch,
        vec![l, f[0], f[1]],
    );
    assert_eq!(r, Err(ControllerError::IneligibleReplica(f[1])));
}

#[test]
fn controlled_shutdown_moves_leadership() {
    let mut h = Harness::new(&[None, None]);
    let t = h.create("t", 4, 2).unwrap();
    let req = ControllerRequest::ControlledShutdown {
        broker_id: 1,
        broker_epoch: h.epochs[&1],
    };
    assert!(h.run(req, 0).is_ok());
    assert_eq!(
        h.committed.broker(1).unwrap().state,
        BrokerState::ShuttingDown
    );
    for p in 0..4 {
        assert_eq!(h.partition(t, p).leader, 2);
    }
    // A shutting-down broker gets no new replicas.
    assert!(matches!(
        h.create("u", 1, 2),
        Err(ControllerError::InvalidReplicationFactor { .. })
    ));
}

#[test]
fn producer_id_blocks_are_disjoint() {
    let mut h = Harness::new(&[None, None]);
    let mut firsts = Vec::new();
    for b in [1, 2, 1] {
        let req = ControllerRequest::AllocateProducerIds {
            broker_id: b,
            broker_epoch: h.epochs[&b],
        };
        let Ok(ControllerReply::ProducerIds { first, count }) = h.run(req, 0) else {
            panic!()
        };
        assert_eq!(count, controller::PRODUCER_ID_BLOCK_LEN);
        firsts.push(first);
    }
    assert_eq!(firsts, vec![0, 1000, 2000]);
}

#[test]
fn configs_and_partitions() {
    let mut h = Harness::new(&[None, None]);
    let t = h.create("t", 1, 2).unwrap();
    let set = ControllerRequest::AlterTopicConfigs {
        name: "t".into(),
        ops: vec![ConfigOp::Set {
            key: "retention.ms".into(),
            value: "5".into(),
        }],
    };
    assert!(h.run(set.clone(), 0).is_ok());
    assert!(h.controller.handle(&set, 0).records.is_empty(), "no-op set");
    assert_eq!(h.committed.topic(&t).unwrap().configs["retention.ms"], "5");
    let grow = |n| ControllerRequest::CreatePartitions {
        name: "t".into(),
        count: n,
    };
    assert!(h.run(grow(3), 0).is_ok());
    assert_eq!(h.committed.topic(&t).unwrap().partitions.len(), 3);
    assert!(matches!(
        h.run(grow(2), 0),
        Err(ControllerError::InvalidPartitions(_))
    ));
    let del = ControllerRequest::DeleteTopics {
        names: vec!["t".into(), "x".into()],
    };
    let Ok(ControllerReply::DeleteTopics(r)) = h.run(del, 0) else {
        panic!()
    };
    assert_eq!(r[0].1, Ok(t));
    assert_eq!(r[1].1, Err(ControllerError::UnknownTopicOrPartition));
    assert!(h.committed.topic_by_name("t").is_none());
}

#[test]
fn apply_is_total() {
    let mut h = Harness::new(&[None, None]);
    let t = h.create("t", 1, 2).unwrap();
    let before = h.committed.clone();
    let bad = [
        MetadataRecord::FenceBroker {
            broker_id: 9,
            broker_epoch: 0,
        },
        MetadataRecord::UnfenceBroker {
            broker_id: 1,
            broker_epoch: h.epochs[&1],
        },
        MetadataRecord::RemoveTopic {
            topic_id: Uuid::from_u128(5),
        },
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: t,
            partition: 0,
            isr: Some(vec![]),
            leader: None,
            replicas: None,
        }),
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: Uuid::from_u128(5),
            configs: BTreeMap::new(),
        }),
        MetadataRecord::ProducerIds {
            broker_id: 1,
            broker_epoch: h.epochs[&1],
            next_producer_id: -1,
        },
    ];
    for r in &bad {
        assert!(h.committed.apply(r).is_err(), "{r:?}");
        assert_eq!(h.committed, before);
    }
    // A batch whose second record fails changes nothing.
    let batch = RecordBatch::new(vec![
        MetadataRecord::RemoveTopic { topic_id: t },
        MetadataRecord::RemoveTopic { topic_id: t },
    ]);
    assert!(h.committed.apply_batch(&batch).is_err());
    assert_eq!(h.committed, before);
}

#[test]
fn image_codec_round_trip_and_garbage() {
    let mut h = Harness::new(&[Some("r"), None]);
    h.create("t", 3, 2).unwrap();
    let bytes = h.committed.encode().unwrap();
    assert_eq!(MetadataImage::decode(&bytes).unwrap(), h.committed);
    for cut in 0..bytes.len() {
        assert!(MetadataImage::decode(&bytes[..cut]).is_err());
    }
    for i in 1..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0xa5;
        let _ = MetadataImage::decode(&bad);
    }
}

/// Heartbeats every broker at `now_ms`, then ticks the controller and commits what it decides.
fn live_tick(h: &mut Harness, now_ms: u64) {
    let ids: Vec<BrokerId> = h.epochs.keys().copied().collect();
    for id in ids {
        h.heartbeat(id, now_ms);
    }
    for batch in h.controller.tick(now_ms) {
        h.commit(batch);
    }
}

#[test]
fn preferred_leader_comes_back_once_in_the_isr() {
    let interval = controller::LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT;
    let mut h = Harness::new(&[None, None, None]);
    let t = h.create("t", 1, 3).unwrap();
    let preferred = h.partition(t, 0).replicas[0];
    h.run_until(SESSION_MS + 500, &[preferred]);
    let moved = h.partition(t, 0);
    assert_ne!(moved.leader, preferred);
    assert!(!moved.isr.contains(&preferred));
    // Unfenced but not in the ISR: the leadership stays where it is, however long.
    let mut now = SESSION_MS + 600;
    for _ in 0..3 {
        now += interval;
        live_tick(&mut h, now);
    }
    assert_eq!(h.partition(t, 0).leader, moved.leader);
    // The leader takes it back into the ISR; the next check hands the leadership back.
    let mut isr = moved.isr.clone();
    isr.push(preferred);
    let s = h.partition(t, 0);
    alter(&mut h, s.leader, t, s.leader_epoch, s.partition_epoch, isr).unwrap();
    now += interval;
    live_tick(&mut h, now);
    let back = h.partition(t, 0);
    assert_eq!(back.leader, preferred);
    assert_eq!(back.leader_epoch, s.leader_epoch + 1);
    // Disabled: nothing moves.
    let config = ControllerConfig {
        auto_leader_rebalance_enable: false,
        ..ControllerConfig::default()
    };
    let mut h = Harness::new(&[None, None]);
    h.controller = Controller::new(config, &h.committed, 2, 0, 0);
    let t = h.create("u", 1, 2).unwrap();
    let preferred = h.partition(t, 0).replicas[0];
    h.run_until(SESSION_MS + 500, &[preferred]);
    let s = h.partition(t, 0);
    let isr = vec![s.leader, preferred];
    live_tick(&mut h, SESSION_MS + 600);
    alter(&mut h, s.leader, t, s.leader_epoch, s.partition_epoch, isr).unwrap();
    live_tick(&mut h, SESSION_MS + 600 + 3 * interval);
    assert_ne!(h.partition(t, 0).leader, preferred);
}

#[test]
fn the_replaced_controller_gets_two_heartbeats_not_a_session() {
    let mut h = Harness::new(&[None, None, None]);
    h.controller = Controller::new(ControllerConfig::default(), &h.committed, 2, 0, 10_000);
    h.controller.shorten_session(1, 10_000);
    let heartbeat = controller::BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT;
    assert!(h.controller.tick(10_000 + 2 * heartbeat - 1).is_empty());
    let batches = h.controller.tick(10_000 + 2 * heartbeat);
    assert_eq!(batches.len(), 1, "only broker 1 is fenced");
    for b in batches {
        h.commit(b);
    }
    assert_eq!(h.committed.broker(1).unwrap().state, BrokerState::Fenced);
    assert_eq!(h.committed.broker(2).unwrap().state, BrokerState::Unfenced);
}
