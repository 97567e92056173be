//! RaftNode over MemLogStore: single-node quorum, replication, restart, snapshot catch-up.

use shoal_raft::{codec, LogStore, MemLogStore, Message, RaftConfig, RaftNode, Role};

struct Peer {
    node: RaftNode,
    store: MemLogStore,
    applied: Vec<Vec<u8>>,
    snapshots_loaded: usize,
    up: bool,
}

fn peers(n: u64) -> Vec<Peer> {
    let voters: Vec<u64> = (1..=n).collect();
    voters
        .iter()
        .map(|&id| Peer {
            node: RaftNode::new(
                RaftConfig::new(id, voters.clone(), vec![]),
                Default::default(),
            )
            .unwrap(),
            store: MemLogStore::new(),
            applied: Vec::new(),
            snapshots_loaded: 0,
            up: true,
        })
        .collect()
}

/// Runs readies and delivers messages (through the wire codec) until quiet.
fn settle(peers: &mut [Peer]) {
    for _ in 0..1000 {
        let mut msgs: Vec<Message> = Vec::new();
        for p in peers.iter_mut().filter(|p| p.up) {
            while let Some(ready) = p.node.drain_ready() {
                p.store.persist(&ready.persist).unwrap();
                let out = p.node.persisted(ready);
                if let Some(s) = out.snapshot {
                    p.snapshots_loaded += 1;
                    p.applied = vec![s.data];
                }
                p.applied.extend(
                    out.committed
                        .into_iter()
                        .filter(|e| !e.data.is_empty())
                        .map(|e| e.data),
                );
                msgs.extend(out.messages);
            }
        }
        if msgs.is_empty() {
            return;
        }
        for m in msgs {
            let frame = codec::encode_message_frame(&m).unwrap();
            let (body, _) = codec::split_frame(&frame, codec::FRAME_BYTES_MAX)
                .unwrap()
                .unwrap();
            let m = codec::decode_message(body).unwrap();
            let to = &mut peers[(m.to - 1) as usize];
            if to.up {
                to.node.step(m).unwrap();
            }
        }
    }
    panic!("did not settle");
}

#[test]
fn single_voter_is_a_quorum_of_one() {
    let mut p = peers(1);
    p[0].node.campaign().unwrap();
    settle(&mut p);
    assert_eq!(p[0].node.soft_state().role, Role::Leader);
    p[0].node.propose(b"a".to_vec()).unwrap();
    settle(&mut p);
    assert_eq!(p[0].applied, vec![b"a".to_vec()]);
}

#[test]
fn three_voters_replicate_restart_and_catch_up_by_snapshot() {
    let mut p = peers(3);
    p[0].node.campaign().unwrap();
    settle(&mut p);
    assert!(p[0].node.is_leader());
    let id = p[0].node.propose(b"x".to_vec()).unwrap();
    settle(&mut p);
    for peer in &p {
        assert_eq!(peer.applied, vec![b"x".to_vec()]);
    }
    // Followers refuse proposals.
    assert!(p[1].node.propose(b"no".to_vec()).is_err());
    // Node 3 goes down; the others commit more and compact.
    p[2].up = false;
    for i in 0..20u8 {
        p[0].node.propose(vec![i]).unwrap();
        settle(&mut p);
    }
    for peer in p.iter_mut().take(2) {
        let applied = peer.node.applied_index();
        peer.node.compact(applied, b"image".to_vec()).unwrap();
        settle(&mut []);
    }
    settle(&mut p);
    assert!(p[0].node.snapshot_index() > id.index);
    // Node 3 restarts from its store and catches up through the leader's snapshot.
    let recovered = p[2].store.recover();
    p[2].node = RaftNode::new(RaftConfig::new(3, vec![1, 2, 3], vec![]), recovered).unwrap();
    p[2].up = true;
    for _ in 0..30 {
        for peer in p.iter_mut() {
            peer.node.tick();
        }
        settle(&mut p);
    }
    assert_eq!(p[2].snapshots_loaded, 1);
    assert_eq!(p[2].node.applied_index(), p[0].node.applied_index());
}

#[test]
fn config_is_validated() {
    for (voters, learners) in [
        (vec![1, 2], vec![]),
        (vec![1, 1, 2], vec![]),
        (vec![2, 3, 4], vec![]),
    ] {
        assert!(RaftNode::new(RaftConfig::new(1, voters, learners), Default::default()).is_err());
    }
    assert!(RaftNode::new(
        RaftConfig::new(4, vec![1, 2, 3], vec![4]),
        Default::default()
    )
    .is_ok());
}
