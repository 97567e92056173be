//! Replica placement at topic creation: distinct brokers, leaders spread evenly, rack-aware.
//!
//! Greedy and deterministic given the image: each new partition's leader is the live broker with
//! the fewest leaderships (then fewest replicas, then lowest id); each follower is the live broker
//! not yet chosen with the fewest replicas, preferring a rack not yet used by the partition. Loads
//! count the partitions already in the image, so leaders spread across topics too.

use std::collections::BTreeMap;

use crate::image::{BrokerState, MetadataImage};
use crate::BrokerId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("replication factor {requested} exceeds the {available} live brokers")]
pub struct NotEnoughBrokers {
    pub requested: usize,
    pub available: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Load {
    leaders: usize,
    replicas: usize,
}

struct Candidate {
    id: BrokerId,
    /// A broker without a rack is its own rack.
    rack: String,
    load: Load,
}

/// Replica lists (leader first) for `count` new partitions of replication factor `rf`.
pub fn place(
    image: &MetadataImage,
    count: usize,
    rf: usize,
) -> Result<Vec<Vec<BrokerId>>, NotEnoughBrokers> {
    assert!(rf > 0, "replication factor must be positive");
    let mut candidates = live_candidates(image);
    if rf > candidates.len() {
        return Err(NotEnoughBrokers {
            requested: rf,
            available: candidates.len(),
        });
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let replicas = place_one(&mut candidates, rf);
        debug_assert_eq!(replicas.len(), rf);
        out.push(replicas);
    }
    Ok(out)
}

fn live_candidates(image: &MetadataImage) -> Vec<Candidate> {
    let mut loads: BTreeMap<BrokerId, Load> = BTreeMap::new();
    for (_, _, p) in image.partitions() {
        for b in &p.replicas {
            loads.entry(*b).or_default().replicas += 1;
        }
        if p.leader >= 0 {
            loads.entry(p.leader).or_default().leaders += 1;
        }
    }
    image
        .brokers()
        .filter(|b| b.state == BrokerState::Unfenced)
        .map(|b| Candidate {
            id: b.broker_id,
            rack: b
                .rack
                .clone()
                .unwrap_or_else(|| format!("\0broker-{}", b.broker_id)),
            load: loads.get(&b.broker_id).copied().unwrap_or_default(),
        })
        .collect()
}

fn place_one(candidates: &mut [Candidate], rf: usize) -> Vec<BrokerId> {
    let leader = (0..candidates.len())
        .min_by_key(|&i| {
            let c = &candidates[i];
            (c.load.leaders, c.load.replicas, c.id)
        })
        .expect("at least rf candidates");
    candidates[leader].load.leaders += 1;
    candidates[leader].load.replicas += 1;
    let mut chosen = vec![leader];
    while chosen.len() < rf {
        let next = (0..candidates.len())
            .filter(|i| !chosen.contains(i))
            .min_by_key(|&i| {
                let c = &candidates[i];
                let rack_used = chosen.iter().any(|&j| candidates[j].rack == c.rack);
                (rack_used, c.load.replicas, c.id)
            })
            .expect("at least rf candidates");
        candidates[next].load.replicas += 1;
        chosen.push(next);
    }
    chosen.into_iter().map(|i| candidates[i].id).collect()
}
