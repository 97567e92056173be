//! A single-voter MetadataNode over the file store: commits, snapshots, survives restarts.

use std::collections::BTreeMap;
use std::path::Path;

use shoal_cluster::metadata::{BrokerState, ControllerReply, ControllerRequest, NewTopic};
use shoal_cluster::raft::{FileLogStore, LogStore};
use shoal_cluster::{MetadataNode, NodeConfig};
use uuid::Uuid;

fn open(dir: &Path, now_ms: u64, incarnation: u128) -> (MetadataNode, FileLogStore) {
    let (store, recovered) = FileLogStore::open(dir).unwrap();
    let mut config = NodeConfig::new(1, vec![1], vec![], Uuid::from_u128(incarnation));
    config.snapshot_entries_max = 20;
    (MetadataNode::new(config, recovered, now_ms).unwrap(), store)
}

/// Drives the node alone for `ms`, persisting every ready; returns the client answers.
fn run(
    node: &mut MetadataNode,
    store: &mut FileLogStore,
    now_ms: &mut u64,
    ms: u64,
) -> Vec<(
    u64,
    Result<ControllerReply, shoal_cluster::metadata::ControllerError>,
)> {
    let mut answers = Vec::new();
    let end = *now_ms + ms;
    while *now_ms < end {
        *now_ms += 10;
        node.tick(*now_ms);
        while let Some(ready) = node.poll_ready() {
            store.persist(&ready.persist).unwrap();
            node.persisted(ready);
        }
        let out = node.take_output();
        assert!(out.messages.is_empty(), "a single voter sends nothing");
        answers.extend(out.answers);
    }
    answers
}

fn create(name: &str) -> ControllerRequest {
    ControllerRequest::CreateTopics {
        topics: vec![NewTopic {
            name: name.into(),
            partitions: 2,
            replication_factor: 1,
            configs: BTreeMap::new(),
        }],
    }
}

#[test]
fn single_node_commits_snapshots_and_restarts_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut now = 0;
    let (mut node, mut store) = open(dir.path(), now, 1);
    run(&mut node, &mut store, &mut now, 1000);
    assert!(node.is_active_controller());
    assert_eq!(node.controller_id(), Some(1));
    assert!(node
        .image()
        .broker(1)
        .is_some_and(|b| b.state == BrokerState::Unfenced));
    let mut ids = Vec::new();
    for i in 0..30 {
        let id = node.client_request(create(&format!("t{i}")));
        let answers = run(&mut node, &mut store, &mut now, 100);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].0, id);
        assert!(matches!(&answers[0].1, Ok(ControllerReply::CreateTopics(r)) if r[0].1.is_ok()));
        ids.push(id);
    }
    let image = node.image();
    assert_eq!(image.topics().count(), 30);
    drop(node);
    drop(store);
    assert!(
        dir.path().join("snapshot").exists(),
        "the log was compacted into a snapshot"
    );
    // Restart (new incarnation): the image comes back from snapshot + log.
    let (mut node, mut store) = open(dir.path(), now, 2);
    run(&mut node, &mut store, &mut now, 1000);
    let back = node.image();
    assert_eq!(back.topics().count(), 30);
    for t in image.topics() {
        let after = &back.topic(&t.id).unwrap().partitions;
        for (old, new) in t.partitions.iter().zip(after) {
            assert_eq!((&old.replicas, old.leader), (&new.replicas, new.leader));
            // The new incarnation's registration fenced the old one (leader -1), and its
            // heartbeat gave the leadership back: two leader changes.
            assert_eq!(new.leader_epoch, old.leader_epoch + 2);
        }
    }
    // Retrying a create after the restart is refused, not repeated.
    node.client_request(create("t0"));
    let answers = run(&mut node, &mut store, &mut now, 100);
    assert!(matches!(
        &answers[0].1,
        Ok(ControllerReply::CreateTopics(r))
            if r[0].1 == Err(shoal_cluster::metadata::ControllerError::TopicAlreadyExists)
    ));
    // The new incarnation registered with a new epoch and is unfenced again.
    let old = image.broker(1).unwrap();
    let new = node.image().broker(1).unwrap().clone();
    assert_eq!(new.incarnation_id, Uuid::from_u128(2));
    assert!(new.broker_epoch > old.broker_epoch);
    assert_eq!(new.state, BrokerState::Unfenced);
}
